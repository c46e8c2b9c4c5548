"""Both snapshot paths for real: reflink (FICLONE) on btrfs and XFS, a
hole-preserving copy on ext4, on filesystems made on loop devices.  Data is
verified byte for byte and the hole map must survive every copy."""
import errno
import hashlib
import os
import random

import pytest

from conftest import FileSR as SR, cli

MiB = 1 << 20
REFLINK = {"btrfs": True, "xfs": True, "ext4": False}

# (offset, length) of the data written; everything else stays a hole
PATTERN = [(0, 64 << 10), (MiB + 4096, 200 << 10), (37 * MiB, 3 * MiB),
           (100 * MiB, 4096), (256 * MiB - (128 << 10), 128 << 10)]


def data_map(path):
    """[(start, end)] of the data segments (SEEK_DATA/SEEK_HOLE)."""
    segs = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            try:
                d = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = os.lseek(fd, d, os.SEEK_HOLE)
            segs.append((d, h))
            pos = h
    finally:
        os.close(fd)
    return segs


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def free_bytes(path):
    os.sync()
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


@pytest.fixture
def fs_sr(fs, plugin):
    kind, mnt = fs
    d = os.path.join(mnt, f"sr-{random.randrange(1 << 30)}")
    return kind, SR(plugin, d)


def fill(sr, key, seed):
    rnd = random.Random(seed)
    for off, length in PATTERN:
        cli("vol", "write", sr.key, key, "--offset", str(off), input=rnd.randbytes(length))


def test_snapshot_clone_revert_paths(fs_sr):
    kind, sr = fs_sr
    health = sr.call("SR.stat")["health"][1]
    assert f"filesystem={kind}" in health
    assert ("reflink=yes" in health) is REFLINK[kind], health

    v = sr.create(size=256 * MiB)
    fill(sr, v["key"], 1)
    src = sr.img(v["key"])
    src_map, src_digest = data_map(src), digest(src)
    assert len(src_map) >= 3 and src_map[0][0] == 0  # really sparse
    allocated = os.stat(src).st_blocks * 512
    assert allocated < 16 * MiB

    free0 = free_bytes(sr.path)
    s = sr.call("Volume.snapshot", key=v["key"])
    snap = sr.img(s["key"])
    assert digest(snap) == src_digest, "snapshot data differs"
    assert data_map(snap) == src_map, "holes not preserved by the snapshot"
    used = free0 - free_bytes(sr.path)
    if REFLINK[kind]:
        assert used < 2 * MiB, f"reflink snapshot consumed {used} bytes"
    else:
        assert allocated - 2 * MiB <= used <= allocated + 2 * MiB, used
        assert os.stat(snap).st_blocks * 512 == allocated

    # writing the volume after the snapshot leaves the snapshot alone
    cli("vol", "write", sr.key, v["key"], "--offset", str(37 * MiB), input=b"\xaa" * MiB)
    assert digest(snap) == src_digest

    c = sr.call("Volume.clone", key=s["key"])
    clone = sr.img(c["key"])
    assert digest(clone) == src_digest and data_map(clone) == src_map
    cli("vol", "write", sr.key, c["key"], input=b"clone writes")
    assert digest(snap) == src_digest

    sr.call("Volume.revert", key=v["key"], snapshot=s["key"])
    assert digest(src) == src_digest and data_map(src) == src_map
    sr.check_consistent()


def test_thick_volumes_reserve_space(fs_sr):
    kind, sr = fs_sr
    out = cli("vol", "create", sr.key, "--name", "thick", "--size", "32M", "--thick",
              "--json")
    import json
    v = json.loads(out.stdout)
    assert os.stat(sr.img(v["key"])).st_blocks * 512 >= 32 * MiB
    assert v["physical_utilisation"] >= 32 * MiB
    sr.call("Volume.resize", key=v["key"], new_size=48 * MiB)
    assert os.stat(sr.img(v["key"])).st_blocks * 512 >= 48 * MiB
    s = sr.call("Volume.snapshot", key=v["key"])
    assert os.path.getsize(sr.img(s["key"])) == 48 * MiB


def test_copy_of_a_large_sparse_volume_costs_the_data_only(fs_sr):
    kind, sr = fs_sr
    v = sr.create(size=1 << 40)  # 1 TiB, thin
    cli("vol", "write", sr.key, v["key"], "--offset", str((1 << 40) - MiB),
        input=b"\x55" * MiB)
    c = sr.call("Volume.clone", key=v["key"])
    assert data_map(sr.img(c["key"])) == data_map(sr.img(v["key"]))
    assert os.stat(sr.img(c["key"])).st_blocks * 512 <= 2 * MiB
