"""A full disk: freeing space always works.  Outside testing found that
Volume.destroy failed with No_space because its intent record could not
be written.  On real ext4, XFS and btrfs filled to the last block, destroy
(of a volume, of a CBT snapshot) works and gives the space back, and what
cannot be done for lack of space fails cleanly, leaving nothing behind."""
import os
import subprocess

import pytest

from conftest import FileSR, make_fs

MiB = 1 << 20


@pytest.fixture(params=["ext4", "xfs", "btrfs"])
def small_fs(request, tmp_path):
    img, mnt = make_fs(request.param, str(tmp_path), size_mb=320)
    yield request.param, mnt
    subprocess.run(["umount", mnt], check=False)
    os.unlink(img)


def fill(path):
    """Write until the filesystem refuses (ENOSPC), then sync."""
    with open(path, "wb") as f:
        chunk = b"\xa5" * MiB
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
        try:
            os.fsync(f.fileno())
        except OSError:
            pass
    # the last bytes: small writes into what is left
    try:
        with open(path + ".tail", "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
                os.fsync(f.fileno())
    except OSError:
        pass


def free_bytes(mnt):
    os.sync()  # btrfs gives freed extents back at its transaction commit
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def test_destroy_on_a_full_disk(small_fs, plugin):
    kind, mnt = small_fs
    sr = FileSR(plugin, os.path.join(mnt, "sr"))
    v = sr.create(size=64 * MiB, name="big")
    sr.call("Volume.enable_cbt", key=v["key"])
    sr.write(v["key"], os.urandom(32 * MiB))
    snap = sr.call("Volume.snapshot", key=v["key"])["key"]
    sr.write(v["key"], os.urandom(16 * MiB), offset=32 * MiB)
    other = sr.create(size=4 * MiB, name="other")
    fill(os.path.join(mnt, "filler"))
    assert free_bytes(mnt) < 8 * MiB, free_bytes(mnt)
    before = free_bytes(mnt)

    # what needs space fails cleanly and leaves nothing
    res = plugin.run("Volume.snapshot", {"dbg": "x", "sr": sr.key, "key": v["key"]})
    keys = {x["key"] for x in sr.ls()}
    if res.rc != 0:
        assert keys == {v["key"], snap, other["key"]}
    sr.check_consistent()

    # freeing space always works, whatever the journal needs
    for key in sorted(keys - {v["key"], other["key"]}) + [v["key"]]:
        sr.call("Volume.destroy", key=key)
    assert {x["key"] for x in sr.ls()} == {other["key"]}
    assert free_bytes(mnt) > before + 40 * MiB
    sr.check_consistent()
    # and the SR goes on: the spare record is made again, a new volume works
    os.unlink(os.path.join(mnt, "filler"))
    sr.create(size=MiB, name="after")
    assert os.path.exists(os.path.join(sr.path, ".zfs-live", "journal", "spare"))
