"""The controller's caches (fleet/cache.py): the validated inventory (fleet/inventory/cache.py) and the built payload
(fleet/transport/pyzcache.py).  A hit must skip the work, and no change to anything the value is derived from may
ever be answered from the cache: each such change is made here (same size and mtime where that matters) and
must be seen."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleet import cache as store
from fleet.errors import InventoryError
from fleet.inventory import cache, loader
from fleet.transport import payload, pyzcache

INV = "all:\n  vars:\n    port_base: 2200\n  hosts:\n    a:\n      ansible_port: '{{ port_base + 1 }}'\n    b:\n"


@pytest.fixture
def counted(monkeypatch):
    """Count real loads (cache misses)."""
    calls = []
    real = loader.load_inventory

    def load(paths):
        calls.append(list(paths))
        return real(paths)
    monkeypatch.setattr(loader, "load_inventory", load)
    return calls


def test_a_second_load_is_a_hit_equal_to_a_fresh_load(tmp_path, counted):
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    first, second = cache.load([str(inv)]), cache.load([str(inv)])
    assert len(counted) == 1
    assert second == first == loader.load_inventory([str(inv)])
    assert second.hosts["a"].port == 2201 and second.hosts["b"].warm is True


def _same_stat_rewrite(path: Path, text: str) -> None:
    st = path.stat()
    assert len(text.encode()) == st.st_size
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_edit_with_the_same_size_and_mtime_is_seen(tmp_path, counted):
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    assert cache.load([str(inv)]).hosts["a"].port == 2201
    _same_stat_rewrite(inv, INV.replace("2200", "3300"))
    assert cache.load([str(inv)]).hosts["a"].port == 3301
    assert len(counted) == 2


@pytest.mark.parametrize("where", ["group_vars/all.yml", "group_vars/all/x.yml", "host_vars/a.yml", "host_vars/a"])
def test_group_and_host_vars_files_appearing_or_changing_are_seen(tmp_path, counted, where):
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    assert cache.load([str(inv)]).hosts["a"].vars.get("extra") is None
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("extra: 1\n")
    assert cache.load([str(inv)]).hosts["a"].vars["extra"] == 1
    _same_stat_rewrite(target, "extra: 2\n")
    assert cache.load([str(inv)]).hosts["a"].vars["extra"] == 2
    target.unlink()
    assert cache.load([str(inv)]).hosts["a"].vars.get("extra") is None
    assert len(counted) == 4


def test_another_set_of_files_or_order_is_another_entry(tmp_path, counted):
    one, two = tmp_path / "one.yml", tmp_path / "two.yml"
    one.write_text("all:\n  hosts:\n    a:\n      ansible_port: 1\n")
    two.write_text("all:\n  hosts:\n    a:\n      ansible_port: 2\n")
    assert cache.load([str(one), str(two)]).hosts["a"].port == 2
    assert cache.load([str(two), str(one)]).hosts["a"].port == 1
    assert cache.load([str(one)]).hosts["a"].port == 1
    assert cache.load([str(one), str(two)]).hosts["a"].port == 2
    assert len(counted) == 3


def test_errors_are_never_cached(tmp_path, counted):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    a:\n      fleet_warm: maybe\n")
    for _ in range(2):
        with pytest.raises(InventoryError, match="fleet_warm"):
            cache.load([str(inv)])
    with pytest.raises(InventoryError, match="cannot read"):
        cache.load([str(tmp_path / "missing.yml")])
    assert len(counted) == 3


def test_entries_are_private_and_a_foreign_writable_one_is_ignored(tmp_path, counted):
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    cache.load([str(inv)])
    base = store.cache_dir()
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    entries = list(base.glob("inventory-*.pickle"))
    assert len(entries) == 1 and stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    assert not list(base.glob(".tmp-*"))
    os.chmod(entries[0], 0o666)  # anyone could have planted it: never unpickled
    cache.load([str(inv)])
    assert len(counted) == 2 and stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    os.chmod(base, 0o777)
    cache.load([str(inv)])
    assert len(counted) == 3 and stat.S_IMODE(base.stat().st_mode) == 0o700


def test_a_damaged_entry_is_a_miss(tmp_path, counted):
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    cache.load([str(inv)])
    entry, = store.cache_dir().glob("inventory-*.pickle")
    entry.write_bytes(b"garbage")
    assert cache.load([str(inv)]).hosts["a"].port == 2201
    assert len(counted) == 2


def test_empty_fleet_cache_dir_turns_caching_off(tmp_path, counted, monkeypatch):
    monkeypatch.setenv("FLEET_CACHE_DIR", "")
    inv = tmp_path / "inv.yml"
    inv.write_text(INV)
    cache.load([str(inv)])
    cache.load([str(inv)])
    assert len(counted) == 2


def test_xdg_cache_home_is_the_default_place(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.cache_dir() == tmp_path / "xdg" / "fleet"


def test_the_cache_stays_small(tmp_path):
    for n in range(20):
        inv = tmp_path / "inv{}.yml".format(n)
        inv.write_text(INV)
        cache.load([str(inv)])
    assert len(list(store.cache_dir().glob("inventory-*.pickle"))) == 16


# ------------------------------------------------------------------------------------------------- the payload

def test_the_cached_payload_is_the_built_one_and_a_hit_builds_nothing(monkeypatch):
    built = payload.build()
    assert pyzcache.current() == built
    monkeypatch.setattr(payload, "build", lambda root=None: pytest.fail("built again"))
    assert pyzcache.current() == built


def test_a_changed_payload_source_is_rebuilt(tmp_path):
    copy = tmp_path / "agent_payload"
    shutil.copytree(payload.source_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    first = pyzcache.current(copy)
    assert first == payload.build(copy)
    target = copy / "protocol.py"
    text = target.read_text()
    _same_stat_rewrite(target, text.replace("PROTOCOL_VERSION = 1", "PROTOCOL_VERSION = 7"))
    second = pyzcache.current(copy)
    assert second.sha256 != first.sha256 and second == payload.build(copy)
    (copy / "new_module.py").write_text("")
    assert pyzcache.current(copy) == payload.build(copy) != second


def test_a_tampered_payload_entry_cannot_pass_for_the_real_one():
    built = pyzcache.current()
    entry, = store.cache_dir().glob("payload-*.pyz")
    entry.write_bytes(built.data + b"x")
    assert pyzcache.current().sha256 != built.sha256  # the name on the wire is the hash of what is sent


# ----------------------------------------------------------------------------------------------- import sets

def _modules_after_two_runs(tmp_path, argv):
    """sys.modules at the end of the second of two `fleet` runs (the first fills the caches)."""
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n    fleet_known_hosts: {}\n  hosts:\n    a:\n      ansible_host: 127.0.0.1\n"
                   .format(tmp_path / "no-known-hosts"))
    code = ("import sys\nsys.argv = ['fleet', '-i', {inv!r}] + {argv!r}\nfrom fleet import cli\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(sorted(sys.modules)))\n").format(inv=str(inv), argv=argv)
    env = dict(os.environ)
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        out = proc.stdout + proc.stderr
        assert "no known_hosts file" in out, out  # got as far as connecting: nothing contacted
    return set(proc.stdout.split("\n")[-2].split())


@pytest.mark.parametrize("argv", [["ping", "-H", "all"], ["ps", "-H", "all"]])
def test_warm_ping_and_ps_import_only_what_they_use(tmp_path, argv):
    modules = _modules_after_two_runs(tmp_path, argv)
    assert "asyncssh" in modules and "fleet.inventory.models" in modules
    # (tabulate renders their tables; zipfile comes with importlib.metadata, which pydantic uses)
    heavy = {"yaml", "jinja2", "fleet.inventory.loader", "fleet.compose", "fleet.deploy", "fleet.build",
             "fleet.lab", "fleet.check", "fleet.cli.images", "fleet.cli.deploy", "fleet.cli.lab", "fleet.cli.netvol"}
    assert not heavy & modules, sorted(heavy & modules)
