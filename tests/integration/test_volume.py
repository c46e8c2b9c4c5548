"""Volume.* semantics (smapiv3.md 1.11, 2.4) on the file backend."""
import os

import pytest

import v5
from conftest import cli

MiB = 1 << 20


def test_create_is_thin_and_rounded_up(sr):
    v = sr.create(size=10 * MiB + 1)
    assert v["virtual_size"] == 11 * MiB  # at least what was asked, MiB granularity
    assert v["physical_utilisation"] == 0
    assert v["read_write"] is True and v["sharable"] is False
    assert v["key"] == v["uuid"] and v["keys"] == {}
    assert v["uri"] == [f"zfs-live://{sr.plugin.sr_type}/{sr.key}|{v['key']}"]
    assert sr.call("Volume.stat", key=v["key"])["virtual_size"] == 11 * MiB
    assert len(sr.read(v["key"])) == 11 * MiB


def test_zero_size_volume(sr):
    assert sr.create(size=0)["virtual_size"] == 0


def test_stat_matches_ls_and_create(sr):
    v = sr.create(name="x", description="y", sharable=True)
    st = sr.call("Volume.stat", key=v["key"])
    # create reports what it made; stat adds what the storage says of it
    # (tunables and their sources) and the allocation as it settles
    for k in set(v) | set(st):
        if k not in ("storage", "physical_utilisation"):
            assert st[k] == v[k], k
    assert sr.check_consistent() == [st] or [x["key"] for x in sr.ls()] == [v["key"]]


def test_keys_round_trip_exactly(sr):
    v = sr.create()
    entries = {
        "vdi-type": "user", "content_id": "c0ffee", "snapshot_time": "20261122T10:00:00Z",
        "is_a_snapshot": "false", "_sm_config_foo": "bar baz", "tagsimportant": "important",
        'tagswith "quotes" & $(sh)': 'v\nwith newline',
        "_sm_config_unicode": "ünïcødé ✓",
    }
    for k, val in entries.items():
        assert sr.call("Volume.set", key=v["key"], k=k, v=val) is None
    assert sr.call("Volume.stat", key=v["key"])["keys"] == entries
    sr.call("Volume.set", key=v["key"], k="content_id", v="new")
    sr.call("Volume.unset", key=v["key"], k="tagsimportant")
    sr.call("Volume.unset", key=v["key"], k="tagsimportant")  # absent: fine
    entries["content_id"] = "new"
    del entries["tagsimportant"]
    assert sr.call("Volume.stat", key=v["key"])["keys"] == entries


def test_names_and_descriptions_are_data(sr):
    v = sr.create()
    name = 'it\'s "quoted" ../../etc/passwd; rm -rf / $(id) `id` | & *'
    desc = "first line\nsecond line"
    sr.call("Volume.set_name", key=v["key"], new_name=name)
    sr.call("Volume.set_description", key=v["key"], new_description=desc)
    got = sr.call("Volume.stat", key=v["key"])
    assert (got["name"], got["description"]) == (name, desc)
    # no object named after the name: the SR holds the one volume
    assert [x["key"] for x in sr.check_consistent()] == [v["key"]]
    assert not any("passwd" in n or "rm -rf" in n for n in os.listdir(sr.path))


def test_snapshot_is_read_only_and_keys_not_copied(sr):
    v = sr.create(name="base", description="d")
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    s = v5.volume(sr.call("Volume.snapshot", key=v["key"]))
    assert s["key"] != v["key"]
    assert s["read_write"] is False
    assert s["keys"] == {}  # the daemon sets a snapshot's keys itself
    assert (s["name"], s["description"], s["virtual_size"]) == ("base", "d", v["virtual_size"])
    # a snapshot can still be read and cloned
    c = v5.volume(sr.call("Volume.clone", key=s["key"]))
    assert c["read_write"] is True and c["keys"] == {}
    # but not resized or written
    err = sr.plugin.err("Volume.resize", {"dbg": "x", "sr": sr.key, "key": s["key"],
                                          "new_size": 64 * MiB})
    assert "snapshot" in err["backtrace"]["error"]
    proc = cli("vol", "write", sr.key, s["key"], input=b"x", check=False)
    assert proc.returncode == 1 and b"read-only" in proc.stderr


@pytest.mark.parametrize("off", [str(2 ** 63 - 1), str(2 ** 63 - 4096), "8191P"])
def test_cli_offsets_near_2_63(sr, off):
    """Offsets past any volume: read gives nothing, write is refused as past
    the end, and neither overflows on the way (UBSan fails the call)."""
    v = sr.create(size=MiB)
    assert cli("vol", "read", sr.key, v["key"], "--offset", off, "--length", "8192"
               ).stdout == b""
    proc = cli("vol", "write", sr.key, v["key"], "--offset", off, input=b"x" * 8192,
               check=False)
    assert proc.returncode == 1 and b"past the end" in proc.stderr, proc.stderr


def test_clone_of_a_writable_volume(sr):
    """clone-on-boot clones the VDI itself, not a snapshot."""
    v = sr.create()
    cli("vol", "write", sr.key, v["key"], "--offset", "1M", input=b"A" * 4096)
    c = sr.call("Volume.clone", key=v["key"])
    assert c["read_write"] is True
    assert sr.read(c["key"], MiB, 4096) == b"A" * 4096
    sr.write(v["key"], b"B" * 4096, MiB)  # the clone does not see later writes
    assert sr.read(c["key"], MiB, 4096) == b"A" * 4096


def test_resize_grows_and_refuses_shrink(sr):
    v = sr.create(size=8 * MiB)
    assert sr.call("Volume.resize", key=v["key"], new_size=20 * MiB) is None
    assert sr.call("Volume.stat", key=v["key"])["virtual_size"] == 20 * MiB
    assert sr.call("Volume.resize", key=v["key"], new_size=20 * MiB) is None  # same: no-op
    err = sr.plugin.err("Volume.resize", {"dbg": "x", "sr": sr.key, "key": v["key"],
                                          "new_size": 8 * MiB})
    assert err["code"] == "SR_BACKEND_FAILURE_79"
    assert err["params"][0] == "VDI Invalid size" and "shrinking not allowed" in err["params"][1]
    assert sr.call("Volume.stat", key=v["key"])["virtual_size"] == 20 * MiB


def test_destroy_is_idempotent(sr):
    v = sr.create()
    assert sr.call("Volume.destroy", key=v["key"]) is None
    assert sr.call("Volume.destroy", key=v["key"]) is None
    assert sr.call("Volume.destroy", key="00000000-0000-4000-8000-000000000000") is None
    assert sr.ls() == []
    err = sr.plugin.err("Volume.stat", {"dbg": "x", "sr": sr.key, "key": v["key"]})
    assert err["params"][0] == "Volume_does_not_exist"


def test_destroy_snapshot_with_clones_keeps_clones_and_invents_nothing(sr):
    v = sr.create()
    cli("vol", "write", sr.key, v["key"], input=b"payload")
    s = sr.call("Volume.snapshot", key=v["key"])
    c = sr.call("Volume.clone", key=s["key"])
    sr.call("Volume.destroy", key=s["key"])
    keys = {x["key"] for x in sr.ls()}
    assert keys == {v["key"], c["key"]}
    assert sr.read(c["key"], 0, 7) == b"payload"
    sr.call("Volume.destroy", key=v["key"])
    assert {x["key"] for x in sr.ls()} == {c["key"]}
    sr.check_consistent()


def test_revert(sr):
    v = sr.create(size=4 * MiB)
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    cli("vol", "write", sr.key, v["key"], input=b"before")
    s = sr.call("Volume.snapshot", key=v["key"])
    cli("vol", "write", sr.key, v["key"], input=b"AFTER!")
    sr.call("Volume.resize", key=v["key"], new_size=8 * MiB)
    assert sr.call("Volume.revert", key=v["key"], snapshot=s["key"]) is None
    got = sr.call("Volume.stat", key=v["key"])
    assert got["keys"] == {"vdi-type": "user"}  # identity kept
    assert got["virtual_size"] == 4 * MiB  # the snapshot's content, size included
    assert cli("vol", "read", sr.key, v["key"], "--length", "6").stdout == b"before"
    assert {x["key"] for x in sr.ls()} == {v["key"], s["key"]}


def test_revert_refuses_foreign_snapshot_and_non_snapshot(sr):
    a, b = sr.create(), sr.create()
    sb = sr.call("Volume.snapshot", key=b["key"])
    err = sr.plugin.err("Volume.revert", {"dbg": "x", "sr": sr.key, "key": a["key"],
                                          "snapshot": sb["key"]})
    assert "is not a snapshot of" in err["backtrace"]["error"]
    err = sr.plugin.err("Volume.revert", {"dbg": "x", "sr": sr.key, "key": a["key"],
                                          "snapshot": b["key"]})
    assert "is not a snapshot of" in err["backtrace"]["error"]


def test_large_sparse_volume(sr):
    v = sr.create(size=4 << 40)  # 4 TiB, thin
    assert v["virtual_size"] == 4 << 40 and v["physical_utilisation"] == 0
    s = sr.call("Volume.snapshot", key=v["key"])
    assert s["physical_utilisation"] == 0
