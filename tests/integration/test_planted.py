"""Planted objects: a symlink (to a directory or a file outside the SR), a
FIFO or a device node put at each path of an SR's private area (and of
the host's runtime directory) must never make a call touch anything
outside, block, or write through to a device.  Calls may fail (with a
clear error) or work; afterwards the outside is unchanged and the planted
object is still what was planted."""
import hashlib
import os
import shutil
import stat
import subprocess

import pytest

from conftest import RUN_DIR, cli, FileSR, ZfsSR, need, zfs_pool

MiB = 1 << 20
KINDS = ["symlink-dir", "symlink-file", "fifo", "device"]

# relative to the SR directory; {key} is the victim volume's key
FILE_SR_PATHS = [
    ".zfs-live",
    "{key}.img",
    "{key}.meta.json",
    ".zfs-live/lock",
    ".zfs-live/locks",
    ".zfs-live/locks/{key}",
    ".zfs-live/journal",
    ".zfs-live/cbt",
    ".zfs-live/cbt/{key}.cbt",
    ".zfs-live/sr.json",
]
# relative to the ZFS SR's state directory (host-local, in the run dir)
ZFS_STATE_PATHS = ["lock", "locks", "locks/{key}", "journal", "snapidx", "sr.json",
                   "zfs.json"]
# relative to the run directory
RUN_PATHS = ["cbt.gen"]


@pytest.fixture(scope="module")
def loopdev(tmp_path_factory):
    """A loop device over a file outside every SR: the planted device node
    has its numbers, so anything written through it shows in the file."""
    need(os.geteuid() == 0, "loop devices need root")
    backing = str(tmp_path_factory.mktemp("planted-dev") / "backing")
    with open(backing, "wb") as f:
        f.write(b"\0" * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", backing], check=True,
                         capture_output=True, text=True).stdout.strip()
    yield dev, backing
    subprocess.run(["losetup", "-d", dev], check=False)


class Outside:
    """A directory outside the SR (a 'passwd' file and a target file) and
    the file behind the loop device a planted device node points at."""

    def __init__(self, where, loopdev):
        self.dir = os.path.join(where, "outside")
        self.dev, self.backing = loopdev
        os.makedirs(self.dir, exist_ok=True)
        for n in ("passwd", "target"):
            with open(os.path.join(self.dir, n), "w") as f:
                f.write(f"do not touch {n}\n")
        self.before = self.snap()

    def snap(self):
        out = {}
        for dp, dns, fns in os.walk(self.dir):
            for n in fns + dns:
                p = os.path.join(dp, n)
                st = os.lstat(p)
                body = open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None
                out[os.path.relpath(p, self.dir)] = (stat.S_IFMT(st.st_mode), body)
        subprocess.run(["blockdev", "--flushbufs", self.dev], check=False)
        with open(self.backing, "rb") as f:
            out["<device>"] = hashlib.sha256(f.read()).hexdigest()
        return out

    def check(self, what):
        assert self.snap() == self.before, f"{what}: something outside the SR changed"


def plant(path, kind, outside):
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if kind == "symlink-dir":
        os.symlink(outside.dir, path)
    elif kind == "symlink-file":
        os.symlink(os.path.join(outside.dir, "target"), path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:  # a block device node: the outside loop device's numbers
        rdev = os.stat(outside.dev).st_rdev
        os.mknod(path, 0o600 | stat.S_IFBLK, rdev)
    return os.lstat(path)


def same_object(path, st):
    """Still the planted object; or removed (a destroy removes the volume's
    lock and record: unlinking a symlink never touches its target); or
    replaced by a regular file of our own (a cache rewritten atomically by
    rename(2), which replaces a symlink rather than following it)."""
    if not os.path.lexists(path):
        return True
    now = os.lstat(path)
    if stat.S_ISREG(now.st_mode) and now.st_ino != st.st_ino:
        return True
    return stat.S_IFMT(now.st_mode) == stat.S_IFMT(st.st_mode) and now.st_ino == st.st_ino


def calls(sr, key):
    """The calls a toolstack makes; each must end (no FIFO may block it)."""
    yield "SR.stat", {}
    yield "SR.ls", {}
    yield "Volume.stat", {"key": key}
    yield "Volume.set_name", {"key": key, "new_name": "renamed"}
    yield "Volume.set", {"key": key, "k": "vdi-type", "v": "user"}
    yield "Volume.enable_cbt", {"key": key}
    yield "Volume.create", {"name": "new", "description": "", "size": MiB,
                            "sharable": False}
    yield "Volume.snapshot", {"key": key}
    yield "Volume.resize", {"key": key, "new_size": 8 * MiB}
    yield "Volume.destroy", {"key": key}


def exercise(sr, key, outside, path, st):
    assert os.path.lexists(path)
    for method, params in calls(sr, key):
        res = sr.plugin.run(method, dict(dbg="planted", sr=sr.key, **params), timeout=30)
        assert not res.killed
        if res.rc != 0:  # a failure is one clear error object
            err = res.value()
            assert err.get("code"), err
        outside.check(f"{path}: {method}")
        assert same_object(path, st), f"{path}: {method} replaced or removed the planted object"


def file_sr_with_victim(plugin, where):
    sr = FileSR(plugin, os.path.join(where, "sr"))
    cli("vol", "create", sr.key, "--key", "passwd", "--name", "v", "--size", "4M")
    return sr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rel", FILE_SR_PATHS)
def test_planted_in_file_sr(plugin, loopdev, tmp_path, rel, kind):
    outside = Outside(str(tmp_path), loopdev)
    sr = FileSR(plugin, str(tmp_path / "sr"))
    v = sr.create(size=4 * MiB, name="victim")
    sr.call("Volume.enable_cbt", key=v["key"])
    key = v["key"]
    path = os.path.join(sr.path, rel.format(key=key))
    st = plant(path, kind, outside)
    exercise(sr, key, outside, path, st)


@pytest.mark.parametrize("kind", ["symlink-dir", "fifo", "device"])
@pytest.mark.parametrize("parent", [".zfs-live/locks", ".zfs-live/journal", ".zfs-live/cbt"])
def test_planted_directory_does_not_reach_outside_by_key(plugin, loopdev, tmp_path, parent, kind):
    """The reported case: locks/ a symlink to a directory holding 'passwd',
    and a volume whose key is 'passwd': destroy must not unlink the outside
    file, and no call may create files there."""
    outside = Outside(str(tmp_path), loopdev)
    sr = file_sr_with_victim(plugin, str(tmp_path))
    sr.call("Volume.enable_cbt", key="passwd")
    path = os.path.join(sr.path, parent)
    st = plant(path, kind, outside)
    exercise(sr, "passwd", outside, path, st)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rel", RUN_PATHS)
def test_planted_in_run_dir(plugin, loopdev, tmp_path, rel, kind):
    outside = Outside(str(tmp_path), loopdev)
    sr = FileSR(plugin, str(tmp_path / "sr"))
    v = sr.create(size=4 * MiB, name="victim")
    path = os.path.join(RUN_DIR, rel)
    saved = None
    if os.path.lexists(path) and not os.path.isdir(path):
        saved = path + ".saved-by-test"
        os.rename(path, saved)
    try:
        st = plant(path, kind, outside)
        exercise(sr, v["key"], outside, path, st)
    finally:
        if os.path.lexists(path):
            os.unlink(path)
        if saved:
            os.rename(saved, path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rel", ZFS_STATE_PATHS)
def test_planted_in_zfs_state(zplugin, loopdev, tmp_path, tmp_path_factory, rel, kind):
    import uuid
    outside = Outside(str(tmp_path), loopdev)
    pool = zfs_pool(tmp_path_factory)
    sr = ZfsSR(zplugin, f"{pool}/p{uuid.uuid4().hex[:8]}")
    v = sr.create(size=4 * MiB, name="victim")
    sr.call("Volume.snapshot", key=v["key"])  # makes snapidx
    sr.call("Volume.stat", key=v["key"])
    path = os.path.join(sr.state_dir(), rel.format(key=v["key"]))
    st = plant(path, kind, outside)
    try:
        exercise(sr, v["key"], outside, path, st)
    finally:
        # let the SR go: put the state back as it was made (a fresh state
        # directory is rebuilt from the dataset)
        shutil.rmtree(sr.state_dir(), ignore_errors=True)
        sr.call("SR.ls")
