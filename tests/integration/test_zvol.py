"""The zvol layout on real OpenZFS.  These run automatically on a host
with /dev/zfs (the OpenZFS kernel module); elsewhere (zfs-fuse, this CI)
they are reported as skipped: zvols need the kernel module.  The command
lines and capability decisions they rely on are unit-tested per version
row in tests/unit/test-zfs.c."""
import os
import subprocess
import uuid

import pytest

from conftest import Plugin, ZfsSR, zfs_cmd

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/zfs"),
    reason="no /dev/zfs: the zvol layout needs the OpenZFS kernel module (not run here)")


@pytest.fixture(scope="module")
def opool(tmp_path_factory, installed):
    img = str(tmp_path_factory.mktemp("ozfs") / "pool.img")
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    name = f"zlz{os.getpid()}"
    zfs_cmd("zpool", "create", name, img)
    yield name
    zfs_cmd("zpool", "destroy", "-f", name, check=False)


@pytest.fixture
def vsr(opool):
    return ZfsSR(Plugin("zfs-live"), f"{opool}/v{uuid.uuid4().hex[:6]}", layout="zvol")


def prop(name, p):
    return zfs_cmd("zfs", "get", "-Hp", "-o", "value", p, name).stdout.strip()


def test_thin_and_thick_zvols(vsr, opool):
    v = vsr.create(size=64 * MiB)
    ds = f"{vsr.dataset}/{v['key']}"
    assert prop(ds, "type") == "volume" and prop(ds, "refreservation") == "0"
    assert int(prop(ds, "volsize")) == 64 * MiB
    thick = ZfsSR(Plugin("zfs-live"), f"{opool}/t{uuid.uuid4().hex[:6]}", layout="zvol",
                  provisioning="thick")
    t = thick.create(size=64 * MiB)
    tds = f"{thick.dataset}/{t['key']}"
    r1 = int(prop(tds, "refreservation"))
    assert r1 >= 64 * MiB
    thick.call("Volume.resize", key=t["key"], new_size=128 * MiB)
    assert int(prop(tds, "refreservation")) > r1


def test_data_snapshots_clones_revert_on_zvols(vsr):
    v = vsr.create(size=16 * MiB)
    vsr.write(v["key"], b"first")
    s = vsr.call("Volume.snapshot", key=v["key"])
    vsr.write(v["key"], b"later")
    assert vsr.read(s["key"], 0, 5) == b"first"
    c = vsr.call("Volume.clone", key=s["key"])
    assert vsr.read(c["key"], 0, 5) == b"first"
    vsr.call("Volume.revert", key=v["key"], snapshot=s["key"])
    assert vsr.read(v["key"], 0, 5) == b"first"
    err = vsr.plugin.err("Volume.resize", {"dbg": "x", "sr": vsr.key, "key": v["key"],
                                           "new_size": MiB})
    assert err["code"] == "SR_BACKEND_FAILURE_79"
    for k in (s["key"], v["key"], c["key"]):
        vsr.call("Volume.destroy", key=k)
    assert vsr.check_consistent() == []


def test_device_is_a_block_device(vsr):
    v = vsr.create(size=8 * MiB)
    dev = f"/dev/zvol/{vsr.dataset}/{v['key']}"
    vsr.write(v["key"], b"x")  # waits for the udev link
    import stat
    assert stat.S_ISBLK(os.stat(dev).st_mode)
    subprocess.run(["udevadm", "settle"], check=False)


def test_changed_blocks_from_zvol_send_streams(vsr):
    """CBT on a zvol: object 1 of `zfs send -c -L -e -i`, exact to the
    64 KiB block on a pool with hole_birth (every OpenZFS pool)."""
    import base64
    G = 65536
    v = vsr.create(size=8 * MiB)
    vsr.write(v["key"], os.urandom(8 * MiB))
    vsr.call("Volume.enable_cbt", key=v["key"])
    a = vsr.call("Volume.snapshot", key=v["key"])["key"]
    vsr.write(v["key"], b"x" * 10, offset=900000)       # block 13
    vsr.write(v["key"], b"y" * 100000, offset=3 * G - 1000)  # blocks 2-4
    b = vsr.call("Volume.snapshot", key=v["key"])["key"]
    res = vsr.call("Volume.list_changed_blocks", key=a, key2=b, offset=0, length=-1)
    raw = base64.b64decode(res["bitmap"])
    got = {i for i in range(len(raw) * 8) if raw[i >> 3] & (0x80 >> (i & 7))}
    # volblocksize (16K by default) is below 64 KiB: exact after rounding
    assert got == {2, 3, 4, 13}
    # the volume itself against b (a temporary snapshot), and data_destroy
    assert vsr.call("Volume.list_changed_blocks", key=b, key2=v["key"], offset=0,
                    length=-1)["bitmap"].strip("A=") == ""
    vsr.call("Volume.data_destroy", key=a)
    res2 = vsr.call("Volume.list_changed_blocks", key=a, key2=b, offset=0, length=-1)
    assert res2 == res


def test_data_destroy_frees_space_with_bookmarks(vsr):
    """OpenZFS pools have bookmarks: data_destroy bookmarks the snapshot
    (<vol>#zl-<key>), destroys it (its space is freed), and changes since
    it are sent from the bookmark; destroying its CBT metadata destroys the
    bookmark (none leaks).  On zfs-fuse see test_zfs.py (data kept)."""
    import base64
    G = 65536
    v = vsr.create(size=8 * MiB)
    vsr.write(v["key"], os.urandom(8 * MiB))
    vsr.call("Volume.enable_cbt", key=v["key"])
    a = vsr.call("Volume.snapshot", key=v["key"])["key"]
    vsr.write(v["key"], os.urandom(4 * MiB))  # a holds 4 MiB no one else does
    b = vsr.call("Volume.snapshot", key=v["key"])["key"]
    vsr.write(v["key"], b"z" * 10, offset=7 * G)
    c = vsr.call("Volume.snapshot", key=v["key"])["key"]
    res = vsr.call("Volume.list_changed_blocks", key=a, key2=c, offset=0, length=-1)
    vol = f"{vsr.dataset}/{v['key']}"
    assert int(prop(vol, "usedbysnapshots")) >= 4 * MiB
    vsr.call("Volume.data_destroy", key=a)
    assert zfs_cmd("zfs", "list", f"{vol}@{a}", check=False).returncode != 0
    marks = zfs_cmd("zfs", "list", "-H", "-o", "name", "-t", "bookmark", "-r",
                    vol).stdout.split()
    assert marks == [f"{vol}#zl-{a}"]
    assert vsr.call("Volume.stat", key=a)["volume_type"] == "CBT_Metadata"
    assert a in {x["key"] for x in vsr.ls()}
    # from the bookmark: the same answer, either order, and against the volume
    assert vsr.call("Volume.list_changed_blocks", key=a, key2=c, offset=0,
                    length=-1) == res
    assert vsr.call("Volume.list_changed_blocks", key=c, key2=a, offset=0,
                    length=-1) == res
    raw = base64.b64decode(vsr.call("Volume.list_changed_blocks", key=a, key2=v["key"],
                                    offset=0, length=-1)["bitmap"])
    assert raw == base64.b64decode(res["bitmap"])
    # again: done; then its metadata goes, and the bookmark with it
    vsr.call("Volume.data_destroy", key=a)
    vsr.call("Volume.destroy", key=a)
    assert zfs_cmd("zfs", "list", "-H", "-o", "name", "-t", "bookmark", "-r",
                   vol).stdout.split() == []
    assert a not in {x["key"] for x in vsr.ls()}
    for k in (b, c, v["key"]):
        vsr.call("Volume.destroy", key=k)
    assert vsr.check_consistent() == []
