"""facts.overlay_state: what is true of overlayfs on a host (loaded / loadable / absent), from its kernel's files."""

import pytest

from agent_payload import facts

REL = "6.1.0-99-amd64"
NO_OVERLAY = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n"


def _modules(tmp_path, files=(), **indexes):
    base = tmp_path / REL
    base.mkdir()
    for rel in files:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(b"")
    for name, text in indexes.items():
        (base / name.replace("_", ".")).write_text(text)
    return str(tmp_path)


def test_loaded_when_proc_filesystems_lists_it(tmp_path):
    assert facts.overlay_state(NO_OVERLAY + "nodev\toverlay\n", _modules(tmp_path), REL) == "loaded"


@pytest.mark.parametrize("files,indexes", [
    (["kernel/fs/overlayfs/overlay.ko"], {}),
    (["kernel/fs/overlayfs/overlay.ko.xz"], {}),
    (["kernel/fs/overlayfs/overlay.ko.zst"], {}),
    ([], {"modules_dep": "kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz\n"
                        "kernel/fs/overlayfs/overlay.ko.xz:\n"}),
    ([], {"modules_builtin": "kernel/fs/ext4/ext4.ko\nkernel/fs/overlayfs/overlay.ko\n"}),
])
def test_loadable_when_the_running_kernel_has_the_module(tmp_path, files, indexes):
    assert facts.overlay_state(NO_OVERLAY, _modules(tmp_path, files, **indexes), REL) == "loadable"


def test_absent_otherwise(tmp_path):
    base = _modules(tmp_path, ["kernel/fs/overlayfs2/other.ko"],
                    modules_dep="kernel/fs/overlayfs2/other.ko:\nkernel/fs/overlayfs/overlay.kox:\n")
    assert facts.overlay_state(NO_OVERLAY, base, REL) == "absent"
    # another kernel's module does not count: only /lib/modules/<running release>
    other = tmp_path / "5.10.0-1-amd64" / "kernel/fs/overlayfs"
    other.mkdir(parents=True)
    (other / "overlay.ko").write_bytes(b"")
    assert facts.overlay_state(NO_OVERLAY, base, REL) == "absent"
    assert facts.overlay_state(NO_OVERLAY, str(tmp_path / "missing"), REL) == "absent"


def test_gather_keeps_the_boolean_and_adds_the_state(tmp_path, monkeypatch):
    from agent_payload.state.paths import Paths

    for state, usable in (("loaded", True), ("loadable", True), ("absent", False)):
        monkeypatch.setattr(facts, "overlay_state", lambda s=state: s)
        got = facts.gather(Paths(str(tmp_path), str(tmp_path / "etc")))
        assert (got["overlay"], got["overlay_state"]) == (usable, state)
