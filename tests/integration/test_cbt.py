"""Changed block tracking, from each source, through the real interfaces:
SMAPIv3 calls as xapi-storage-script makes them, writes through the NBD
server (libnbd), ZFS through zfs-fuse, FIEMAP on real btrfs and XFS, the
tracked bitmaps on ext4 (no reflinks).

The rule under test: a change is never missed; extra blocks only come
from rounding to 64 KiB.  Every exact check is backed by a brute-force
read-and-compare of the two volumes."""

import base64
import os
import random
import signal
import struct
import subprocess

import nbd
import pytest

import v5
from conftest import (RUN_DIR, Attached, FileSR, Plugin, ZfsSR, cli, gone, make_fs, need,
                      stop_nbd_server_and_wait, wait_for, zfs_pool)

G = 65536
SIZE = 8 << 20
SOURCES = ["tracked-ext4", "fiemap-btrfs", "fiemap-xfs", "zfs"]


@pytest.fixture(scope="module")
def mounts(tmp_path_factory):
    made = {}
    for kind in ("ext4", "btrfs", "xfs"):
        where = tmp_path_factory.mktemp(f"cbt-{kind}")
        made[kind] = make_fs(kind, str(where), size_mb=384)
    yield {k: m for k, (_, m) in made.items()}
    for img, mnt in made.values():
        subprocess.run(["umount", mnt], check=False)
        os.unlink(img)


@pytest.fixture(params=SOURCES)
def src(request, plugin, mounts, tmp_path_factory):
    """An SR whose changed blocks come from the named source."""
    kind = request.param
    if kind == "zfs":
        pool = zfs_pool(tmp_path_factory)
        sr = ZfsSR(Plugin("zfs-live"), f"{pool}/c{os.urandom(4).hex()}")
    else:
        fs = kind.split("-")[1]
        path = os.path.join(mounts[fs], os.urandom(4).hex())
        sr = FileSR(plugin, path)
    sr.kind = kind
    return sr


def blocks(off, length):
    return set(range(off // G, (off + length - 1) // G + 1)) if length else set()


def changed(sr, a, b, offset=0, length=-1):
    res = sr.call("Volume.list_changed_blocks", key=a, key2=b, offset=offset, length=length)
    assert res["granularity"] == G
    raw = base64.b64decode(res["bitmap"])
    got = {i for i in range(len(raw) * 8) if raw[i >> 3] & (0x80 >> (i & 7))}
    return got


def differing(sr, a, b):
    """Brute force: the 64 KiB blocks whose bytes differ."""
    x, y = sr.read(a), sr.read(b)
    n = max(len(x), len(y))
    x, y = x.ljust(n, b"\0"), y.ljust(n, b"\0")
    return {i // G for i in range(0, n, G) if x[i:i + G] != y[i:i + G]}


def snap(sr, key):
    return sr.call("Volume.snapshot", key=key)["key"]


def fresh(sr, size=SIZE, fill=True):
    """A CBT-enabled volume full of random data (so trims make real holes)."""
    v = sr.create(size=size, name="cbt")
    if fill:
        sr.write(v["key"], os.urandom(size))
    assert sr.call("Volume.enable_cbt", key=v["key"]) is None
    return v


class Writer:
    """The volume attached through the datapath plugin, written over NBD."""

    def __init__(self, sr, vol, datapath):
        self.a = Attached(sr, vol, datapath)
        self.h = nbd.NBD()
        self.h.connect_uri(self.a.nbd_uri)

    def close(self):
        try:
            self.h.shutdown()
        except nbd.Error:
            pass
        self.a.detach()


PATTERN = [  # (what, offset, length)
    ("write", 1 << 20, G),                 # aligned, one block
    ("write", 900000, 10),                 # unaligned, inside one block
    ("write", 3 * G - 1000, 100000),       # spans three blocks
    ("zero", 5 << 20, 70000),              # zero write
    ("trim", 6 << 20, 2 * G),              # trim (aligned: frees blocks)
]


def apply(h, pattern, sr=None):
    """Run the pattern; the blocks it changes.  zfs-fuse cannot punch holes:
    there a trim changes nothing (the server treats it as the hint it is)."""
    expect = set()
    for what, off, length in pattern:
        if what == "trim" and sr is not None and sr.kind == "zfs":
            h.trim(length, off)
            continue
        if what == "write":
            h.pwrite(os.urandom(length), off)
        elif what == "zero":
            h.zero(length, off)
        else:
            h.trim(length, off)
        expect |= blocks(off, length)
    h.flush()
    return expect


def test_plugin_declares_cbt_and_volumes_show_it(plugin, zplugin):
    for p in (plugin, zplugin):
        q = p.ok("Plugin.Query")
        assert "VDI_CONFIG_CBT" in q["features"]
        for m in ("enable_cbt", "disable_cbt", "list_changed_blocks", "data_destroy",
                  "compare"):
            assert os.path.islink(p.path(f"Volume.{m}"))


def test_patterns_exact(src, datapath):
    sr = src
    v = fresh(sr)
    assert sr.call("Volume.stat", key=v["key"])["cbt_enabled"] is True
    a = snap(sr, v["key"])
    assert sr.call("Volume.stat", key=a)["cbt_enabled"] is True
    w = Writer(sr, v, datapath)
    try:
        expect = apply(w.h, PATTERN, sr)
        b = snap(sr, v["key"])  # taken while attached, as XAPI does
        # live volume against b: nothing since b, in either order
        assert changed(sr, b, v["key"]) == set()
        assert changed(sr, v["key"], b) == set()
        more = apply(w.h, [("write", 7 * G + 5, 3)])
    finally:
        w.close()
    c = snap(sr, v["key"])
    got = changed(sr, a, b)
    assert got == expect, (sr.kind, sorted(got), sorted(expect))
    assert differing(sr, a, b) <= got
    assert changed(sr, b, c) == more
    # A -> C across B: every change of both intervals
    assert changed(sr, a, c) == expect | more
    # the order of the two keys does not matter
    assert changed(sr, c, a) == expect | more
    # compare: the same as ranges of blocks
    cmp = sr.call("Volume.compare", key=a, key2=b)
    assert cmp["blocksize"] == G
    assert {s + i for s, n in cmp["ranges"] for i in range(n)} == expect
    # a window: offset and length select blocks of the bitmap
    win = changed(sr, a, b, offset=16 * G, length=80 * G)
    assert win == {x - 16 for x in expect if 16 <= x < 96}


def test_growth_by_resize(src, datapath):
    sr = src
    v = fresh(sr)
    a = snap(sr, v["key"])
    sr.call("Volume.resize", key=v["key"], new_size=SIZE + (2 << 20))
    w = Writer(sr, sr.call("Volume.stat", key=v["key"]), datapath)
    try:
        expect = apply(w.h, [("write", SIZE + G + 7, 100)])
    finally:
        w.close()
    b = snap(sr, v["key"])
    got = changed(sr, a, b)
    # every block past the old end reads as zeros in a: changed
    grown = set(range(SIZE // G, (SIZE + (2 << 20)) // G))
    assert got == grown | expect
    assert differing(sr, a, b) <= got


def xo_changed(bitmap, nblocks):
    """Xen Orchestra's reader of the bitmap (XapiVhdCbt.mjs): big-endian
    32-bit words, one per 2 MiB (32 blocks of 64 KiB), most significant bit
    first.  struct raises on a partial word as XO's DataView throws
    RangeError.  Returns the changed blocks and the bits past nblocks."""
    raw = base64.b64decode(bitmap)
    words = [struct.unpack_from(">I", raw, i)[0] for i in range(0, len(raw), 4)]
    bits = {w * 32 + i for w, word in enumerate(words) for i in range(32)
            if word & (0x80000000 >> i)}
    assert len(words) == (nblocks + 31) // 32, (len(raw), nblocks)
    return {b for b in bits if b < nblocks}, {b for b in bits if b >= nblocks}


def test_bitmap_is_whole_32_bit_words_for_xo(sr):
    """A 37 MiB volume has 592 blocks: 74 bytes, padded to 76 (19 words)."""
    v = fresh(sr, size=37 << 20, fill=False)
    a = snap(sr, v["key"])
    nblocks = (37 << 20) // G
    written = {0, 31, 32, 300, nblocks - 1}
    for b in sorted(written):
        sr.write(v["key"], b"x" * 10, offset=b * G + 5)
    b_ = snap(sr, v["key"])
    res = sr.call("Volume.list_changed_blocks", key=a, key2=b_, offset=0, length=-1)
    assert len(base64.b64decode(res["bitmap"])) == 76
    got, past = xo_changed(res["bitmap"], nblocks)
    assert written <= got and not past
    if not isinstance(sr, ZfsSR):  # zfs-fuse may add neighbours (docs/design.md)
        assert got == written
    # windows: whole words too, bits past the window zero, whatever the start
    for first, length in [(16, 80 * G), (32, -1), (3, -1), (5, 7 * G), (0, 0),
                          (1, 2 ** 63 - 1), (nblocks - 1, G)]:
        res = sr.call("Volume.list_changed_blocks", key=a, key2=b_, offset=first * G,
                      length=length)
        n = nblocks - first if length < 0 else min(nblocks - first, -(-length // G))
        wgot, wpast = xo_changed(res["bitmap"], n)
        assert not wpast, (first, length)
        assert wgot == {x - first for x in got if first <= x < first + n}, (first, length)


def test_random_workload_against_brute_force(src, datapath):
    sr = src
    rnd = random.Random(1234)
    v = fresh(sr)
    keys = [snap(sr, v["key"])]
    written = [set()]
    log = [[]]
    w = Writer(sr, v, datapath)
    try:
        for _ in range(3):
            touched = set()
            log.append([])
            for _ in range(40):
                what = rnd.choice(["write", "write", "write", "zero", "trim"])
                length = rnd.choice([1, 512, 4096, 10000, G, 3 * G + 17])
                if what == "trim":
                    length = rnd.choice([8192, G, 2 * G])
                    off = rnd.randrange(0, SIZE - length, 8192)
                else:
                    off = rnd.randrange(0, SIZE - length)
                touched |= apply(w.h, [(what, off, length)], sr)
                log[-1].append((what, off, length))
            keys.append(snap(sr, v["key"]))
            written.append(touched)
    finally:
        w.close()
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            got = changed(sr, keys[i], keys[j])
            truth = differing(sr, keys[i], keys[j])
            assert truth <= got, f"{sr.kind}: missed {sorted(truth - got)}"
            extra = got - set().union(*written[i + 1:j + 1])
            if sr.kind == "zfs":
                # ZFS reports blocks born after the earlier snapshot.  Two
                # kinds of extra come from zfs-fuse: pools without hole_birth
                # (version 23) send every hole under a changed indirect block
                # as freed, and FUSE write-back can write a page again (same
                # bytes) in the next transaction group.  So extras there may
                # only be holes, or blocks written in an earlier interval.
                x, y = sr.read(keys[i]), sr.read(keys[j])
                extra = {b for b in extra - set().union(*written[:j + 1])
                         if x[b * G:(b + 1) * G].strip(b"\0") or y[b * G:(b + 1) * G].strip(b"\0")}
            assert not extra, (f"{sr.kind}: {i}->{j} extra {sorted(extra)} truth {sorted(truth)} "
                               f"earlier {[sorted(w & extra) for w in written]}")


def test_cow_sources_answer_without_tracking(src, datapath):
    """A snapshot taken before CBT was enabled: the copy-on-write layer still
    knows (ZFS, reflinks); tracked bitmaps do not, and say so."""
    sr = src
    v = sr.create(size=SIZE, name="late")
    sr.write(v["key"], os.urandom(SIZE))
    a = snap(sr, v["key"])
    sr.call("Volume.enable_cbt", key=v["key"])
    sr.write(v["key"], b"x" * 5000, offset=2 * G + 1)
    b = snap(sr, v["key"])
    if sr.kind.startswith("tracked"):
        err = sr.plugin.err("Volume.list_changed_blocks",
                            dict(dbg="t", sr=sr.key, key=a, key2=b, offset=0, length=-1))
        assert "no record" in str(err) or "not enabled" in str(err)
    else:
        assert changed(sr, a, b) == {2}


def test_disable_then_enable(src):
    sr = src
    v = fresh(sr)
    a = snap(sr, v["key"])
    sr.write(v["key"], b"y" * 10, offset=G)
    assert sr.call("Volume.disable_cbt", key=v["key"]) is None
    assert sr.call("Volume.stat", key=v["key"])["cbt_enabled"] is False
    sr.write(v["key"], b"z" * 10, offset=4 * G)  # untracked, for the bitmaps
    assert sr.call("Volume.enable_cbt", key=v["key"]) is None
    sr.write(v["key"], b"w" * 10, offset=6 * G)
    c = snap(sr, v["key"])
    if sr.kind.startswith("tracked"):
        # the record has a gap: refuse rather than miss block 4
        sr.plugin.err("Volume.list_changed_blocks",
                      dict(dbg="t", sr=sr.key, key=a, key2=c, offset=0, length=-1))
    else:
        assert changed(sr, a, c) == {1, 4, 6}
    # from the first snapshot after enable, every source is exact
    sr.write(v["key"], b"v" * 10, offset=7 * G)
    d = snap(sr, v["key"])
    assert changed(sr, c, d) == {7}


def test_data_destroy(src):
    sr = src
    v = fresh(sr)
    a = snap(sr, v["key"])
    sr.write(v["key"], b"1" * 10, offset=3 * G)
    b = snap(sr, v["key"])
    sr.write(v["key"], b"2" * 10, offset=5 * G)
    c = snap(sr, v["key"])
    expect_ab, expect_ac = changed(sr, a, b), changed(sr, a, c)
    assert sr.call("Volume.data_destroy", key=a) is None
    st = sr.call("Volume.stat", key=a)
    assert st["volume_type"] == "CBT_Metadata" and st["cbt_enabled"] is True
    assert st["virtual_size"] == SIZE
    if sr.kind != "zfs":  # ZFS keeps the snapshot's blocks (no bookmarks on zfs-fuse)
        assert os.stat(sr.img(a)).st_blocks == 0
    # its data is gone: not readable, not attachable
    proc = cli("vol", "read", sr.key, a, check=False)
    assert proc.returncode != 0 and b"CBT metadata" in proc.stderr
    # but its changes are still known
    assert changed(sr, a, b) == expect_ab == {3}
    assert changed(sr, a, c) == expect_ac == {3, 5}
    assert changed(sr, a, v["key"]) == {3, 5}
    # destroying b in between keeps a -> c whole (b's changes move on)
    sr.call("Volume.destroy", key=b)
    assert changed(sr, a, c) == {3, 5}
    # again: idempotent; and it refuses what it must
    assert sr.call("Volume.data_destroy", key=a) is None
    sr.plugin.err("Volume.data_destroy", dict(dbg="t", sr=sr.key, key=v["key"]))
    plain = sr.create(size=G, name="plain")
    ps = snap(sr, plain["key"])
    before = sr.state()
    err = sr.plugin.err("Volume.data_destroy", dict(dbg="t", sr=sr.key, key=ps))
    assert "without changed block tracking" in str(err)
    assert sr.state() == before
    sr.check_consistent()


def test_bad_input_changes_nothing(file_sr):
    sr = file_sr
    v = fresh(sr, size=1 << 20, fill=False)
    other = sr.create(size=1 << 20, name="other")
    a = snap(sr, v["key"])
    o = snap(sr, other["key"])
    before = sr.state()
    bad = [
        dict(key=a, key2=o, offset=0, length=-1),            # different volumes
        dict(key=a, key2="no-such", offset=0, length=-1),    # unknown key
        dict(key=a, key2=v["key"], offset=100, length=-1),   # offset not in blocks
        dict(key=a, key2=v["key"], offset=-G, length=-1),
        dict(key=a, key2=v["key"], offset=64 * G, length=-1),  # past the end
    ]
    for p in bad:
        res = sr.plugin.run("Volume.list_changed_blocks", dict(dbg="t", sr=sr.key, **p))
        assert res.rc != 0, p
        v5.error(res.value())
    for m in ("Volume.enable_cbt", "Volume.disable_cbt", "Volume.data_destroy"):
        sr.plugin.err(m, dict(dbg="t", sr=sr.key, key="no-such"))
    sr.plugin.err("Volume.list_changed_blocks", dict(dbg="t", sr=sr.key, key=a))  # no key2
    assert sr.state() == before


def test_server_killed_mid_write(file_sr, datapath):
    """kill -9 of the NBD server while writes are in flight: every block
    that changed is in the bitmap (bits are set before a write is issued and
    live in the page cache)."""
    sr = file_sr
    v = fresh(sr)
    a = snap(sr, v["key"])
    w = Writer(sr, v, datapath)
    pid = int(open(os.path.join(RUN_DIR, "nbd.pid")).read())
    rnd = random.Random(7)
    issued = set()
    for i in range(300):
        off = rnd.randrange(0, SIZE - 4096, 4096)
        issued |= blocks(off, 4096)
        if i < 100:  # acknowledged ones
            w.h.pwrite(os.urandom(4096), off)
        else:  # in flight when the server dies
            w.h.aio_pwrite(os.urandom(4096), off)
            if i == 250:
                os.kill(pid, signal.SIGKILL)
                break
    try:
        w.h.shutdown()
    except nbd.Error:
        pass
    wait_for(lambda: gone(pid), f"the killed NBD server (pid {pid}) to exit")
    w.a.detach()
    b = snap(sr, v["key"])
    got = changed(sr, a, b)
    truth = differing(sr, a, b)
    assert truth, "the kill came too early to test anything"
    assert truth <= got
    assert got <= issued


def test_host_crash_marks_everything(file_sr, datapath):
    """A record left open for writing by another boot (the host crashed
    before the bits were written back): every block counts as changed."""
    sr = file_sr
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    rec = os.path.join(sr.path, ".zfs-live", "cbt", v["key"] + ".cbt")
    with open(rec, "r+b") as f:  # writers = 1, boot id of another boot
        f.seek(40)
        f.write((1).to_bytes(4, "little"))
        f.seek(48)
        f.write(b"00000000-0000-0000-0000-000000000000\0")
    sr.write(v["key"], b"q", offset=G)  # the next writer finds it
    b = snap(sr, v["key"])
    assert changed(sr, a, b) == set(range(16))


def test_snapshot_while_attached_as_block_device(file_sr, datapath):
    """Writes through a loop device pass the tracking layer by, so a
    tracked volume is attached over NBD only; one attached as a block device
    before CBT was enabled counts as changed everywhere."""
    sr = file_sr
    v = sr.create(size=1 << 20, name="blk")
    att = Attached(sr, v, datapath)
    try:
        sr.call("Volume.enable_cbt", key=v["key"])
        a = snap(sr, v["key"])
        if att.blockdev:
            with open(att.blockdev, "r+b", buffering=0) as f:
                f.seek(3 * G)
                f.write(b"\1" * 4096)
                os.fsync(f.fileno())
        b = snap(sr, v["key"])
        got = changed(sr, a, b)
        if att.blockdev:
            assert got == set(range(16))
    finally:
        att.detach()
    att2 = Attached(sr, sr.call("Volume.stat", key=v["key"]), datapath)
    try:
        assert att2.blockdev is None  # NBD only now
    finally:
        att2.detach()


def test_dirty_bitmap_over_nbd(src, datapath):
    """The same changes through the NBD meta context, read by nbdinfo --map
    and qemu-img map (x-dirty-bitmap), as backup tools read them."""
    need(subprocess.run(["which", "nbdinfo"], capture_output=True).returncode == 0,
         "nbdinfo is not installed")
    sr = src
    v = fresh(sr)
    a = snap(sr, v["key"])
    w = Writer(sr, v, datapath)
    try:
        expect = apply(w.h, PATTERN, sr)
        b = snap(sr, v["key"])
    finally:
        w.close()
    assert changed(sr, a, b) == expect
    bv = sr.call("Volume.stat", key=b)
    att = Attached(sr, bv, datapath)
    try:
        ctx = f"qemu:dirty-bitmap:{a}"
        lst = subprocess.run(["nbdinfo", "--list", "--content", att.nbd_uri],
                             capture_output=True, text=True, timeout=60)
        assert ctx in lst.stdout, lst.stdout
        out = subprocess.run(["nbdinfo", f"--map={ctx}", att.nbd_uri], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        dirty = set()
        for line in out.splitlines():
            off, length, flag = line.split()[:3]
            if int(flag) & 1:
                dirty |= blocks(int(off), int(length))
        assert dirty == expect
        opts = (f"driver=nbd,server.type=unix,server.path={att.socket},"
                f"export={att.export},x-dirty-bitmap={ctx}")
        proc = subprocess.run(["qemu-img", "map", "--output=json", "--image-opts", opts],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        import json
        qdirty = set()
        for ext in json.loads(proc.stdout):
            if not ext["data"]:  # qemu reports dirty areas as unallocated
                qdirty |= blocks(ext["start"], ext["length"])
        assert qdirty == expect
        # a bitmap name that is not a snapshot of this volume is not offered
        h = nbd.NBD()
        h.add_meta_context("qemu:dirty-bitmap:no-such")
        h.set_export_name(att.export)
        h.connect_unix(att.socket)
        assert not h.can_meta_context("qemu:dirty-bitmap:no-such")
        h.shutdown()
    finally:
        att.detach()


def crash(sr, point, method, **params):
    """Call method and have it killed at the fault point."""
    res = sr.plugin.run(method, dict(dbg="crash", sr=sr.key, **params),
                        env={"ZFS_LIVE_FAULT": point})
    assert res.killed, f"{point}: {method} was not killed (rc={res.rc})"


ROTATE_POINTS = ["snapshot:journaled", "cbt-rotate:switched", "snapshot:data",
                 "snapshot:committed", "cbt-rotate:map-written"]


@pytest.mark.parametrize("point", ROTATE_POINTS)
def test_crash_during_cbt_snapshot(file_sr, point):
    """A snapshot of a tracked volume killed at each step: the next call
    recovers, nothing is missed from the earlier snapshot, and a snapshot
    that stands can start a comparison."""
    sr = file_sr
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    sr.write(v["key"], b"x" * 10, offset=2 * G)
    keys = {x["key"] for x in sr.ls()}
    crash(sr, point, "Volume.snapshot", key=v["key"])
    sr.check_consistent()  # the next call recovers
    made = {x["key"] for x in sr.ls()} - keys
    sr.write(v["key"], b"y" * 10, offset=5 * G)
    c = snap(sr, v["key"])
    assert changed(sr, a, c) == {2, 5}
    for b in made:  # the crashed snapshot stood: it works as a start
        assert changed(sr, b, c) == {5}
        assert changed(sr, a, b) == {2}


def test_crash_during_cbt_data_destroy(file_sr):
    sr = file_sr
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    sr.write(v["key"], b"x" * 10, offset=3 * G)
    b = snap(sr, v["key"])
    crash(sr, "data-destroy:marked", "Volume.data_destroy", key=a)
    # marked first: it already counts as metadata only, never as whole data
    assert sr.call("Volume.stat", key=a)["volume_type"] == "CBT_Metadata"
    assert cli("vol", "read", sr.key, a, check=False).returncode != 0
    assert changed(sr, a, b) == {3}
    assert sr.call("Volume.data_destroy", key=a) is None  # finishes the job
    assert os.stat(sr.img(a)).st_blocks == 0
    assert changed(sr, a, b) == {3}


def test_crash_during_revert_marks_everything(file_sr):
    sr = file_sr
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    sr.write(v["key"], b"x" * 10, offset=3 * G)
    crash(sr, "revert:copied", "Volume.revert", key=v["key"], snapshot=a)
    sr.check_consistent()
    b = snap(sr, v["key"])
    assert changed(sr, a, b) == set(range(16))


def test_sr_destroy_removes_cbt_records(file_sr):
    """Records go with their volumes, and the directory with the SR (a
    writer never makes it by itself)."""
    sr = file_sr
    plain = sr.create(size=1 << 20, name="plain")
    sr.write(plain["key"], b"no cbt here")
    assert not os.path.exists(os.path.join(sr.path, ".zfs-live", "cbt"))
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    assert len(os.listdir(os.path.join(sr.path, ".zfs-live", "cbt"))) == 2
    for k in (a, v["key"], plain["key"]):
        sr.call("Volume.destroy", key=k)
    assert os.listdir(os.path.join(sr.path, ".zfs-live", "cbt")) == []
    assert sr.plugin.ok("SR.destroy", sr=sr.key) is None
    assert not os.path.exists(os.path.join(sr.path, ".zfs-live"))


def test_enable_while_attached_and_written(file_sr, datapath):
    """CBT switched on while the server has the volume open and is writing
    it (exported over NBD only, no block device), and snapshots right after:
    the server must track from the first snapshot on, not a moment later."""
    sr = file_sr
    v = sr.create(size=1 << 20, name="busy")
    sr.write(v["key"], os.urandom(1 << 20))
    w = Writer(sr, v, datapath)  # makes sure the server runs
    w.close()
    uri = cli("vol", "export", sr.key, v["key"]).stdout.decode().strip()
    h = nbd.NBD()
    h.connect_uri(uri)
    try:
        h.pwrite(b"0" * 4096, 0)  # the export is open and written
        for round_ in range(3):
            sr.call("Volume.enable_cbt", key=v["key"])
            a = snap(sr, v["key"])
            h.pwrite(os.urandom(4096), (3 + round_) * G)
            h.flush()
            b = snap(sr, v["key"])
            got = changed(sr, a, b)
            # exact: the server looked again before its next write
            assert got == {3 + round_}, (round_, sorted(got))
            assert differing(sr, a, b) <= got
            sr.call("Volume.disable_cbt", key=v["key"])
    finally:
        h.shutdown()
        cli("vol", "unexport", sr.key, v["key"])


def test_stale_comparison_snapshot_is_collected(zplugin, tmp_path_factory):
    """A comparison with the volume itself takes a temporary ZFS snapshot; one
    left by a process that died goes at the next listing, a live one stays."""
    from conftest import zfs_cmd
    pool = zfs_pool(tmp_path_factory)
    sr = ZfsSR(zplugin, f"{pool}/s{os.urandom(4).hex()}")
    sr.kind = "zfs"
    v = fresh(sr, size=1 << 20)
    a = snap(sr, v["key"])
    assert changed(sr, a, v["key"]) == set()
    ds = f"{sr.dataset}/{v['key']}"
    boot = open("/proc/sys/kernel/random/boot_id").read()[:8]
    dead = f"{ds}@_zl-cbt-999999999-{boot}-deadbeef"
    alive = f"{ds}@_zl-cbt-{os.getpid()}-{boot}-0badcafe"
    zfs_cmd("zfs", "snapshot", dead)
    zfs_cmd("zfs", "snapshot", alive)
    sr.ls()
    snaps = zfs_cmd("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r",
                    ds).stdout.split()
    assert dead not in snaps and alive in snaps
    zfs_cmd("zfs", "destroy", alive)
    sr.check_consistent()


@pytest.mark.parametrize("kind", ["tracked-ext4", "zfs"])
def test_snapshots_taken_during_writes(kind, plugin, mounts, tmp_path_factory, datapath):
    """Snapshots taken while writes are in flight through the NBD server (the
    race the two-slot rotation is built for): between every pair of
    consecutive snapshots, every block that differs is in the bitmap."""
    import threading
    if kind == "zfs":
        sr = ZfsSR(Plugin("zfs-live"), f"{zfs_pool(tmp_path_factory)}/r{os.urandom(4).hex()}")
    else:
        sr = FileSR(plugin, os.path.join(mounts["ext4"], os.urandom(4).hex()))
    sr.kind = kind
    v = fresh(sr)
    # a server that holds each round of writes 20 ms between tracking and
    # issuing them: most snapshots then fall inside a round
    stop_nbd_server_and_wait()
    res = datapath.run("Datapath.attach", dict(dbg="t", uri=v["uri"][0], domain="race"),
                       env={"ZFS_LIVE_TEST_WRITE_DELAY_US": "20000"})
    assert res.rc == 0, res.stderr
    datapath.ok("Datapath.detach", uri=v["uri"][0], domain="race")
    w = Writer(sr, v, datapath)
    stop = threading.Event()
    errors = []
    rounds = [0]  # rounds of writes issued so far

    def writer():
        rnd = random.Random(99)
        try:
            while not stop.is_set():
                for _ in range(16):
                    off = rnd.randrange(0, SIZE - 4096, 512)
                    w.h.aio_pwrite(os.urandom(4096), off)
                rounds[0] += 1
                while w.h.aio_in_flight() > 0:
                    w.h.poll(-1)
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    keys = []
    try:
        for _ in range(8):
            # writes issued since the previous snapshot (or the writer died:
            # its error is reported below)
            seen = rounds[0]
            wait_for(lambda: rounds[0] > seen or not t.is_alive(),
                     "the writer to issue a round of writes")
            keys.append(snap(sr, v["key"]))
    finally:
        stop.set()
        t.join()
        w.close()
    assert not errors, errors
    keys.append(snap(sr, v["key"]))
    for x, y in zip(keys, keys[1:]):
        truth = differing(sr, x, y)
        got = changed(sr, x, y)
        assert truth <= got, f"{kind}: missed {sorted(truth - got)}"
    total = changed(sr, keys[0], keys[-1])
    assert differing(sr, keys[0], keys[-1]) <= total
    stop_nbd_server_and_wait()  # the next test gets a server without the delay
