"""What an SR holds is accounted for: metadata updates are atomic whatever
their size; a volume whose metadata cannot be read is still listed (with
its health), never destroyed as a side effect, and keeps SR.destroy from
destroying the SR; anything in the storage that is not a volume keeps
SR.destroy from taking it too."""
import json
import os
import subprocess
import uuid

import pytest

import v5
from conftest import FileSR, ZfsSR, cli, zfs_cmd

MiB = 1 << 20
BIG = "d" * 9000  # two metadata chunks on ZFS


@pytest.fixture
def zsr(zplugin, zpool):
    return ZfsSR(zplugin, f"{zpool}/a{uuid.uuid4().hex[:8]}")


def exists(name):
    return zfs_cmd("zfs", "list", "-H", "-t", "all", name, check=False).returncode == 0


def stat(sr, key):
    return v5.volume(sr.call("Volume.stat", key=key))


@pytest.mark.parametrize("first", ["small", BIG], ids=["small", "big"])
def test_crash_between_metadata_chunks(zsr, first):
    """The reported case: a 9,000-character description, the plugin killed
    between the `zfs set`s of a metadata update.  The volume keeps its
    previous metadata, whole; the next update works."""
    v = zsr.create(size=4 * MiB, name="victim")
    zsr.call("Volume.set_description", key=v["key"], new_description=first)
    res = zsr.plugin.run("Volume.set_description",
                         {"dbg": "x", "sr": zsr.key, "key": v["key"],
                          "new_description": "e" * 9500},
                         env={"ZFS_LIVE_FAULT": "set-meta:chunks"})
    assert res.killed, res.stdout
    assert [x["key"] for x in zsr.ls()] == [v["key"]]
    assert stat(zsr, v["key"])["description"] == first
    zsr.call("Volume.set_description", key=v["key"], new_description="f" * 9800)
    assert stat(zsr, v["key"])["description"] == "f" * 9800
    zsr.check_consistent()


def test_every_update_flips_the_bank(zsr):
    """Two big updates in a row: each writes the bank the header does not
    name, so the previous object stays whole until the header moves."""
    v = zsr.create(size=4 * MiB, name="victim")
    ds = f"{zsr.dataset}/{v['key']}"
    banks = []
    for d in (BIG, "x" * 9100, "y" * 9200):
        zsr.call("Volume.set_description", key=v["key"], new_description=d)
        head = zfs_cmd("zfs", "get", "-H", "-o", "value", "zfs-live:meta", ds).stdout
        banks.append(head.split(":")[1])
        assert stat(zsr, v["key"])["description"] == d
    assert banks[0] != banks[1] and banks[1] != banks[2]


def damage_zfs(zsr, key):
    """Metadata that fails its checksum (what a crash between the chunk
    writes of earlier versions left)."""
    zsr.call("Volume.set_description", key=key, new_description=BIG)
    ds = f"{zsr.dataset}/{key}"
    head = zfs_cmd("zfs", "get", "-H", "-o", "value", "zfs-live:meta", ds).stdout
    bank = head.split(":")[1] if head.startswith("v2:") else "a"
    chunk = "zfs-live:meta.1" if bank == "a" else "zfs-live:meta.b1"
    zfs_cmd("zfs", "set", f"{chunk}=garbage", ds)
    return ds


def damage_file(sr, key):
    with open(os.path.join(sr.path, key + ".meta.json"), "w") as f:
        f.write("{not json")
    return os.path.join(sr.path, key + ".img")


@pytest.mark.parametrize("kind", ["file-live", "zfs-live"])
def test_unreadable_metadata_is_listed_and_kept(kind, plugin, zplugin, zpool, tmp_path):
    if kind == "file-live":
        sr = FileSR(plugin, str(tmp_path / "sr"))
    else:
        sr = ZfsSR(zplugin, f"{zpool}/a{uuid.uuid4().hex[:8]}")
    v = sr.create(size=4 * MiB, name="victim")
    sr.write(v["key"], b"precious" * 64)
    other = sr.create(size=MiB, name="bystander")
    if kind == "file-live":
        where = damage_file(sr, v["key"])
        still_there = lambda: os.path.exists(where)  # noqa: E731
    else:
        where = damage_zfs(sr, v["key"])
        still_there = lambda: exists(where)  # noqa: E731

    # listed, with its health, under its key; stat says the same
    listed = {x["key"]: x for x in sr.call("SR.ls")}
    assert set(listed) == {v["key"], other["key"]}
    bad = listed[v["key"]]
    assert bad["health"][0] == "Unavailable" and bad["read_write"] is False
    assert bad["virtual_size"] == (4 * MiB if kind == "file-live" else bad["virtual_size"])
    st = sr.call("Volume.stat", key=v["key"])
    assert st["health"] == bad["health"]
    out = cli("sr", "ls", sr.key).stdout.decode()
    assert "DAMAGED" in out

    # never acted on: destroy, snapshot, resize, set refuse; the data stays
    for method, extra in (("Volume.destroy", {}), ("Volume.snapshot", {}),
                          ("Volume.resize", {"new_size": 8 * MiB}),
                          ("Volume.set_name", {"new_name": "x"})):
        err = sr.plugin.err(method, dict(dbg="x", sr=sr.key, key=v["key"], **extra))
        assert err["params"][0] == "Volume_metadata_unreadable", (method, err)
        assert still_there(), method

    # and SR.destroy refuses the SR that holds it (the bystander gone first)
    sr.call("Volume.destroy", key=other["key"])
    err = sr.plugin.err("SR.destroy", {"dbg": "x", "sr": sr.key})
    assert "metadata cannot be read" in err["backtrace"]["error"], err
    assert still_there()
    assert v5.sr_stat(sr.call("SR.stat"))["uuid"] == sr.uuid


def test_file_sr_destroy_refuses_an_image_without_metadata(file_sr, plugin):
    v = file_sr.create(size=MiB)
    os.unlink(os.path.join(file_sr.path, v["key"] + ".meta.json"))
    assert file_sr.ls() == []
    err = plugin.err("SR.destroy", {"dbg": "x", "sr": file_sr.key})
    assert v["key"] + ".img" in err["backtrace"]["error"]
    assert os.path.exists(file_sr.img(v["key"]))
    # other files in the directory were never the SR's: they do not block
    os.unlink(file_sr.img(v["key"]))
    with open(os.path.join(file_sr.path, "notes.txt"), "w") as f:
        f.write("keep me")
    plugin.ok("SR.destroy", sr=file_sr.key)
    assert open(os.path.join(file_sr.path, "notes.txt")).read() == "keep me"


@pytest.mark.parametrize("what", ["dataset", "snapshot-of-sr", "snapshot-of-volume",
                                  "child-of-volume", "file"])
def test_zfs_sr_destroy_refuses_what_is_not_its_own(zsr, zplugin, what):
    v = zsr.create(size=MiB)
    vol = f"{zsr.dataset}/{v['key']}"
    if what == "dataset":
        obj = f"{zsr.dataset}/operators-own"
        zfs_cmd("zfs", "create", obj)
    elif what == "snapshot-of-sr":
        obj = f"{zsr.dataset}@operators-own"
        zfs_cmd("zfs", "snapshot", obj)
    elif what == "snapshot-of-volume":
        obj = f"{vol}@operators-own"
        zfs_cmd("zfs", "snapshot", obj)
    elif what == "child-of-volume":
        obj = f"{vol}/operators-own"
        zfs_cmd("zfs", "create", obj)
    else:
        obj = os.path.join(zsr.key, "operators-notes.txt")
        with open(obj, "w") as f:
            f.write("keep")
    if what == "child-of-volume":
        # ZFS will not destroy a dataset with children: a clear refusal
        err = zplugin.err("Volume.destroy", {"dbg": "x", "sr": zsr.key, "key": v["key"]})
        assert "has children" in err["backtrace"]["error"]
        assert exists(obj) and exists(vol)
    else:
        zsr.call("Volume.destroy", key=v["key"])
        assert zsr.ls() == []
    err = zplugin.err("SR.destroy", {"dbg": "x", "sr": zsr.key})
    assert "not volumes" in err["backtrace"]["error"] or \
        "still" in err["backtrace"]["error"], err
    assert exists(zsr.dataset)
    if what == "file":
        assert open(obj).read() == "keep"
    else:
        assert exists(obj)
    # the SR still works
    assert v5.sr_stat(zsr.call("SR.stat"))["uuid"] == zsr.uuid


def test_adopt_refuses_another_srs_volume(plugin, tmp_path):
    """The reported case: `vol adopt /srA /srB/<key>.img` took SR B's volume
    (gone from B, its metadata and CBT record left behind)."""
    a = FileSR(plugin, str(tmp_path / "srA"))
    b = FileSR(plugin, str(tmp_path / "srB"))
    v = b.create(size=MiB, name="b's")
    b.write(v["key"], b"B data")
    b.call("Volume.enable_cbt", key=v["key"])
    before = sorted(os.listdir(b.path)), sorted(os.listdir(os.path.join(b.path, ".zfs-live",
                                                                          "cbt")))
    for src in (b.img(v["key"]), os.path.join(b.path, v["key"] + ".meta.json")):
        r = cli("vol", "adopt", a.key, src, check=False)
        assert r.returncode != 0 and b"belongs to the SR at" in r.stderr, r.stderr
        r = cli("vol", "adopt", a.key, src, "--key", v["key"], check=False)
        assert r.returncode != 0 and b"belongs to the SR at" in r.stderr, r.stderr
    # also a file below an SR's directory, and a half-destroyed SR's
    os.makedirs(os.path.join(b.path, "sub"))
    nested = os.path.join(b.path, "sub", "x.img")
    with open(nested, "wb") as f:
        f.truncate(MiB)
    r = cli("vol", "adopt", a.key, nested, check=False)
    assert r.returncode != 0 and b"belongs to the SR at" in r.stderr
    os.unlink(nested)
    os.rmdir(os.path.join(b.path, "sub"))
    assert (sorted(os.listdir(b.path)),
            sorted(os.listdir(os.path.join(b.path, ".zfs-live", "cbt")))) == before
    assert [x["key"] for x in b.ls()] == [v["key"]] and a.ls() == []
    assert b.read(v["key"], 0, 6) == b"B data"
