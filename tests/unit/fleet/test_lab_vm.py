"""The pure logic of the lab's VM hosts (fleet/lab/vm.py): suite names, the mirror, KVM or TCG, qemu's command line,
the image's own files, the inventory and known_hosts entries, and `fleet lab up` refusing bad input."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fleet import cli
from fleet.errors import UsageError
from fleet.lab import LabConfig, hosts, vm


def test_suites_parse_in_order_without_duplicates():
    assert vm.parse_suites("bookworm") == ["bookworm"]
    assert vm.parse_suites(" trixie,bookworm,trixie, ") == ["trixie", "bookworm"]


@pytest.mark.parametrize("text,needle", [("", "at least one"), ("Bookworm", "'Bookworm'"), ("../x", "'../x'"),
                                         ("bookworm,nosuchsuite", "'nosuchsuite'")])
def test_bad_suites_are_usage_errors_naming_the_input(text, needle):
    with pytest.raises(UsageError, match=needle):
        vm.parse_suites(text)


def test_lab_up_refuses_bad_vm_input_with_status_2_before_doing_anything(tmp_path):
    runner = CliRunner()
    for args, needle in ((["--vm", "bad suite"], "'bad suite'"), (["--hosts", "0"], "--hosts 0")):
        res = runner.invoke(cli.app, ["lab", "up", "--name", "flunitvm", "--inventory-out", str(tmp_path / "i.yml")]
                            + args)
        assert res.exit_code == 2, res.output
        assert needle in res.output
    assert not Path("/var/lib/fleet-lab/flunitvm").exists() and not (tmp_path / "i.yml").exists()


def test_hosts_zero_is_allowed_with_vms():
    assert LabConfig(name="x", hosts=0, vms=["bookworm"]).hosts == 0
    with pytest.raises(UsageError):
        LabConfig(name="x", hosts=0)


def test_the_mirror_is_the_one_apt_uses():
    deb822 = ("Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\n"
              "Types: deb\nURIs: http://security.example/debian-security\n")
    assert vm.mirror_from_sources(deb822) == "http://mirror.example/debian"
    legacy = "# deb http://old/ x main\ndeb http://security.debian.org/ bookworm-security main\n" \
             "deb [arch=amd64] https://m.example/debian bookworm main\n"
    assert vm.mirror_from_sources(legacy) == "https://m.example/debian"
    assert vm.mirror_from_sources("") == "http://deb.debian.org/debian"


def test_kvm_is_tried_first_unless_it_hung_since_this_host_booted():
    assert vm.choose_accels(False, None, "b1") == ["tcg"]
    assert vm.choose_accels(True, None, "b1") == ["kvm", "tcg"]
    assert vm.choose_accels(True, {"boot_id": "b1", "kvm": False}, "b1") == ["tcg"]
    assert vm.choose_accels(True, {"boot_id": "b0", "kvm": False}, "b1") == ["kvm", "tcg"]
    assert vm.choose_accels(True, {"boot_id": "b1", "kvm": True}, "b1") == ["kvm", "tcg"]


def test_qemu_command_line():
    argv = vm.qemu_argv("vm-bookworm", "tcg", Path("/c/base"), Path("/s/vms/vm-bookworm"), 2222)
    joined = " ".join(argv)
    assert argv[0] == vm.QEMU and argv[argv.index("-accel") + 1] == "tcg" and argv[argv.index("-cpu") + 1] == "max"
    assert "-kernel /c/base/vmlinuz -initrd /c/base/initrd.img" in joined
    assert argv[argv.index("-append") + 1] == "root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=10"
    assert "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22" in argv and "file:/s/vms/vm-bookworm/serial.log" in argv
    assert "file=/s/vms/vm-bookworm/disk.img,format=raw,if=virtio" in argv
    assert "unix:/s/vms/vm-bookworm/monitor.sock,server=on,wait=off" in argv
    assert argv[argv.index("-smp") + 1] == "2" and argv[argv.index("-m") + 1] == "1536"
    kvm = vm.qemu_argv("vm-bookworm", "kvm", Path("/c/base"), Path("/s"), 2222)
    assert kvm[kvm.index("-cpu") + 1] == "host"


def test_base_image_key_follows_suite_and_packages(tmp_path):
    assert vm.base_key("bookworm") == vm.base_key("bookworm", tuple(reversed(vm.PACKAGES)))
    assert vm.base_key("bookworm") != vm.base_key("trixie")
    assert vm.base_key("bookworm") != vm.base_key("bookworm", vm.PACKAGES + ("curl",))
    assert vm.base_dir(tmp_path, "trixie") == tmp_path / "vm" / ("trixie-" + vm.base_key("trixie"))
    assert {"systemd", "libpam-systemd", "dbus", "openssh-server", "python3", "linux-image-amd64"} <= set(vm.PACKAGES)


def test_debugfs_script_replaces_each_guest_file(tmp_path):
    lines = vm.debugfs_script(tmp_path).splitlines()
    assert lines[0] == "mkdir /etc/fleet"
    i = lines.index("cd /root/.ssh")
    assert lines[i + 1:i + 3] == ["rm authorized_keys", "write {}/authorized_keys authorized_keys".format(tmp_path)]
    assert "write {}/daemon.json daemon.json".format(tmp_path) in lines
    assert "write {}/ssh_host_ed25519_key ssh_host_ed25519_key".format(tmp_path) in lines


def test_vm_hosts_in_inventory_and_known_hosts(tmp_path):
    vms = [{"name": "vm-bookworm", "port": 40022}, {"name": "vm-trixie", "port": 40023}]
    text = hosts.render_inventory("lab", [], tmp_path / "key", tmp_path / "kh", {}, {"vm": vm.inventory_group(vms)})
    doc = yaml.safe_load(text)
    assert doc["all"]["children"] == {"vm": {"hosts": {
        "vm-bookworm": {"ansible_host": "127.0.0.1", "ansible_port": 40022},
        "vm-trixie": {"ansible_host": "127.0.0.1", "ansible_port": 40023}}}}
    assert vm.known_hosts_line(40022, "ssh-ed25519 AAAAkey root@vm-bookworm\n") == \
        "[127.0.0.1]:40022 ssh-ed25519 AAAAkey\n"
    kh = hosts.write_known_hosts(tmp_path, [], [vm.known_hosts_line(40022, "ssh-ed25519 K c")])
    assert kh.read_text() == "[127.0.0.1]:40022 ssh-ed25519 K\n"
