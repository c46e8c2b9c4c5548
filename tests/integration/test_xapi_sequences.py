"""The plugin call sequences xapi-storage-script makes for each SMAPIv2 call
(reference smapiv3.md section 1.10), replayed in order."""
import uuid

import pytest

import v5
from conftest import cli, zfs_pool, Plugin

MiB = 1 << 20


@pytest.mark.parametrize("sr_type", ["file-live", "zfs-live"])
def test_sr_lifecycle_as_xapi_drives_it(plugin, tmp_path, tmp_path_factory, sr_type):
    # SR.create -> returned configuration becomes device_config -> PBD.plug
    u = str(uuid.uuid4())
    if sr_type == "file-live":
        config = {"path": str(tmp_path / "sr")}
    else:
        plugin = Plugin("zfs-live")
        config = {"path": f"{zfs_pool(tmp_path_factory)}/x{uuid.uuid4().hex[:8]}"}
    cfg = plugin.ok("SR.create", uuid=u, configuration=config,
                    name="Local SR", description="")
    sr = plugin.ok("SR.attach", configuration=cfg)
    v5.sr_stat(plugin.ok("SR.stat", sr=sr))
    # SR.scan: SR.stat then SR.ls
    v5.sr_stat(plugin.ok("SR.stat", sr=sr))
    assert plugin.ok("SR.ls", sr=sr) == []
    v = v5.volume(plugin.ok("Volume.create", sr=sr, name="d", description="", size=MiB,
                            sharable=False))
    # SR.destroy: SR.attach, VDI.destroy for the listed VDIs, SR.destroy
    assert plugin.ok("SR.attach", configuration=cfg) == sr
    for vol in plugin.ok("SR.ls", sr=sr):
        plugin.ok("Volume.stat", sr=sr, key=vol["key"])
        plugin.ok("Volume.destroy", sr=sr, key=vol["key"])
    assert plugin.ok("SR.destroy", sr=sr) is None
    # PBD.unplug after destroy, and a retried detach: both fine
    assert plugin.ok("SR.detach", sr=sr) is None
    err = plugin.err("Volume.stat", {"dbg": "x", "sr": sr, "key": v["key"]})
    assert err["params"][0] == "SR_does_not_exist"


def test_vdi_create_then_set_vdi_type(sr):
    v = sr.create(size=10 * MiB, name="VM disk")
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    got = v5.volume(sr.call("Volume.stat", key=v["key"]))
    assert got["keys"] == {"vdi-type": "user"}
    assert got["virtual_size"] >= 10 * MiB


def test_vdi_snapshot_and_the_keys_the_daemon_sets(sr):
    v = sr.create(name="root disk")
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    sr.call("Volume.set", key=v["key"], k="content_id", v="cid-1")
    # VDI.snapshot
    s = v5.volume(sr.call("Volume.snapshot", key=v["key"]))
    assert s["keys"] == {}
    for k, val in (("snapshot_time", "20261122T21:00:00Z"), ("is_a_snapshot", "true"),
                   ("snapshot_of", v["key"]), ("content_id", "cid-1"),
                   ("vdi-type", "user")):
        sr.call("Volume.set", key=s["key"], k=k, v=val)
    sr.call("Volume.set", key=v["key"], k="tagsbackup", v="backup")
    snap = sr.call("Volume.stat", key=s["key"])
    assert snap["keys"] == {"snapshot_time": "20261122T21:00:00Z", "is_a_snapshot": "true",
                            "snapshot_of": v["key"], "content_id": "cid-1",
                            "vdi-type": "user"}
    assert snap["read_write"] is False
    assert sr.call("Volume.stat", key=v["key"])["keys"] == {
        "vdi-type": "user", "content_id": "cid-1", "tagsbackup": "backup"}


def test_vdi_destroy_twice(sr):
    v = sr.create()
    # VDI.destroy: Volume.stat, Volume.destroy (+ the daemon's extra destroy)
    sr.call("Volume.stat", key=v["key"])
    assert sr.call("Volume.destroy", key=v["key"]) is None
    assert sr.call("Volume.destroy", key=v["key"]) is None
    assert sr.ls() == []


def test_clone_on_boot(sr):
    v = sr.create(size=4 * MiB)
    cli("vol", "write", sr.key, v["key"], input=b"pristine")
    # VDI.epoch_begin(persistent=false), no NONPERSISTENT datapath:
    sr.call("Volume.stat", key=v["key"])
    c = v5.volume(sr.call("Volume.clone", key=v["key"]))
    sr.call("Volume.set", key=v["key"], k="clone-on-boot", v=c["key"])
    # VDI.attach3/activate3 stat the volume (and follow clone-on-boot)
    assert sr.call("Volume.stat", key=v["key"])["keys"]["clone-on-boot"] == c["key"]
    sr.call("Volume.stat", key=c["key"])
    # the VM writes to the clone
    cli("vol", "write", sr.key, c["key"], input=b"scribble")
    # SR.scan hides volumes named in clone-on-boot keys; both are listed by us
    assert {x["key"] for x in sr.ls()} == {v["key"], c["key"]}
    # VDI.epoch_end: Volume.stat, destroy the clone, unset the key
    sr.call("Volume.stat", key=v["key"])
    sr.call("Volume.destroy", key=c["key"])
    sr.call("Volume.unset", key=v["key"], k="clone-on-boot")
    assert sr.call("Volume.stat", key=v["key"])["keys"] == {}
    assert cli("vol", "read", sr.key, v["key"], "--length", "8").stdout == b"pristine"
    # next boot: a clone-on-boot key exists and VDI.destroy destroys twice
    c2 = sr.call("Volume.clone", key=v["key"])
    sr.call("Volume.set", key=v["key"], k="clone-on-boot", v=c2["key"])
    sr.call("Volume.stat", key=v["key"])
    sr.call("Volume.destroy", key=v["key"])
    sr.call("Volume.destroy", key=v["key"])
    assert {x["key"] for x in sr.ls()} == {c2["key"]}


def test_vdi_resize_then_stat(sr):
    v = sr.create(size=MiB)
    sr.call("Volume.resize", key=v["key"], new_size=3 * MiB + 5)
    assert sr.call("Volume.stat", key=v["key"])["virtual_size"] >= 3 * MiB + 5


def test_sm_config_and_tags_and_names(sr):
    v = sr.create()
    sr.call("Volume.set", key=v["key"], k="_sm_config_host_OpaqueRef:1", v="RW")
    sr.call("Volume.set", key=v["key"], k="tagsfoo", v="foo")
    sr.call("Volume.unset", key=v["key"], k="tagsfoo")
    sr.call("Volume.set_name", key=v["key"], new_name="renamed")
    sr.call("Volume.set_description", key=v["key"], new_description="described")
    got = sr.call("Volume.stat", key=v["key"])
    assert got["keys"] == {"_sm_config_host_OpaqueRef:1": "RW"}
    assert (got["name"], got["description"]) == ("renamed", "described")


def test_vdi_revert(sr):
    v = sr.create(size=MiB)
    cli("vol", "write", sr.key, v["key"], input=b"good")
    s = sr.call("Volume.snapshot", key=v["key"])
    cli("vol", "write", sr.key, v["key"], input=b"bad!")
    sr.call("Volume.revert", snapshot=s["key"], key=v["key"])
    assert cli("vol", "read", sr.key, v["key"], "--length", "4").stdout == b"good"
