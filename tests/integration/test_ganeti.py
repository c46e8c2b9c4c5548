"""The Ganeti ExtStorage provider, run exactly as Ganeti's noded runs it:
the installed script path with no arguments, cwd = the provider directory,
stdin a pipe closed at once, and nothing but the environment (VOL_*,
EXTP_*, LC_ALL=C and PATH, plus the test's knobs: run directory, node name,
allowed-paths file, sanitizer options).  The call orders replayed are those
of reference/ganeti-extstorage.md §1.7, for a file directory and a ZFS pool
(zfs-fuse: the dataset layout; the zvol layout runs where /dev/zfs exists).

Two nodes sharing the storage are two network namespaces, each with its own
node name (ZFS_LIVE_NODE: namespaces share the host name) and its own
runtime directory (a real node has its own /run)."""
import ctypes
import fcntl
import json
import mmap
import os
import shutil
import stat
import struct
import subprocess
import uuid

import pytest

from conftest import CLI, ROOT, RUN_DIR, SANITIZER_DIR, cli, destroy_pool, need, \
    sanitizer_clean, zfs_cmd, zfs_pool

MiB = 1 << 20
PROVIDER = os.path.join(ROOT, "srv/ganeti/extstorage/zfs-live")
SCRIPTS = ["create", "attach", "detach", "remove", "grow", "setinfo", "verify",
           "snapshot", "open", "close"]
BLKGETSIZE64 = 0x80081272


class Run:
    def __init__(self, proc, action):
        self.rc, self.action = proc.returncode, action
        self.out = proc.stdout.decode()
        self.err = proc.stderr.decode(errors="replace")


class Node:
    """One Ganeti node: runs the provider's scripts as noded does."""

    def __init__(self, name, tmp, netns=None, allowed=None, provider=PROVIDER,
                 preexec=None):
        self.name, self.netns, self.provider = name, netns, provider
        self.preexec = preexec  # e.g. without_mount(): this node's mounts
        self.run_dir = os.path.join(RUN_DIR, f"node-{name}-{uuid.uuid4().hex[:6]}")
        self.allowed = allowed

    def cleanup(self):
        """Release loop devices a failed test left on this node (the records
        attach keeps in the node's run directory)."""
        recs = os.path.join(self.run_dir, "blockdev")
        for name in os.listdir(recs) if os.path.isdir(recs) else []:
            if not name.endswith(".json"):
                continue
            with open(os.path.join(recs, name)) as f:
                dev = json.load(f)["dev"]
            if loop_backing(dev) is not None:
                subprocess.run(["losetup", "-d", dev], check=False)

    def env(self, extra):
        env = {"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
               "ZFS_LIVE_RUN": self.run_dir, "ZFS_LIVE_NODE": self.name,
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", ""),
               "UBSAN_OPTIONS": os.environ.get("UBSAN_OPTIONS", "")}
        if self.allowed:
            env["ZFS_LIVE_FILE_STORAGE_PATHS"] = self.allowed
        env.update({k: str(v) for k, v in extra.items() if v is not None})
        return env

    def run(self, action, **env):
        script = os.path.join(self.provider, action)
        # nsenter --net: the node's network namespace only (ip netns exec would
        # add a mount namespace, hiding zfs-fuse's mounts made meanwhile)
        argv = [script] if not self.netns else [
            "nsenter", f"--net=/run/netns/{self.netns}", script]
        proc = subprocess.run(argv, cwd=self.provider, input=b"", capture_output=True,
                              env=self.env(env), timeout=120, preexec_fn=self.preexec)
        res = Run(proc, action)
        sanitizer_clean(res.err)
        return res

    def ok(self, action, **env):
        res = self.run(action, **env)
        assert res.rc == 0, f"{self.name} {action} failed rc={res.rc}: {res.err}"
        if action != "attach":
            assert res.out == "", f"{action} wrote to stdout: {res.out!r}"
        return res

    def err(self, action, **env):
        res = self.run(action, **env)
        assert res.rc != 0, f"{self.name} {action} unexpectedly succeeded: {res.out!r}"
        assert res.err.strip(), f"{action} failed without a message"
        return res.err

    def attach(self, **env):
        """attach: line 1 is a block device; nothing else on stdout."""
        out = self.ok("attach", **env).out
        assert out.endswith("\n") and out.count("\n") == 1, repr(out)
        dev = out[:-1]
        assert dev.startswith("/dev/") and dev == dev.strip(), repr(out)
        assert stat.S_ISBLK(os.stat(dev).st_mode), f"{dev} is not a block device"
        return dev


def loop_backing(dev):
    """The file a loop device serves, or None if it is released."""
    name = os.path.basename(os.path.realpath(dev))
    path = f"/sys/block/{name}/loop/backing_file"
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def released(dev, vol):
    if not dev.startswith("/dev/loop"):
        return True  # a zvol is its own device: nothing to release
    back = loop_backing(dev)
    return back is None or vol not in back


def dev_size(dev):
    fd = os.open(dev, os.O_RDONLY)
    try:
        buf = fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8)
        return struct.unpack("Q", buf)[0]
    finally:
        os.close(fd)


def write_dev(dev, data, offset=0):
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_dev(dev, length, offset=0):
    """Read through the device with O_DIRECT (no stale page cache of this
    device when another node wrote through its own)."""
    size = (length + 4095) // 4096 * 4096
    buf = mmap.mmap(-1, size)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        n = os.preadv(fd, [buf], offset)
    finally:
        os.close(fd)
    return bytes(buf[:min(n, length)])


# --- places: a file directory and a ZFS pool --------------------------------


class Place:
    """Where the disks live, as Ganeti's disk parameters say it."""

    def __init__(self, kind, params, tmp):
        self.kind, self.params, self.tmp = kind, params, tmp

    def env(self, vol=None, **more):
        e = dict(self.params, EXTP_PROVIDER="zfs-live", EXTP_ACCESS="kernelspace")
        if vol:
            e["VOL_NAME"] = vol
        e.update(more)
        return e

    def sr_key(self):
        if self.kind == "file":
            return self.params["EXTP_DIR"]
        out = zfs_cmd("zfs", "get", "-H", "-r", "-o", "name,value,source", "zfs-live:sr",
                      self.params["EXTP_POOL"]).stdout
        for line in out.splitlines():
            name, value, source = line.split("\t")
            if source == "local":
                return f"/run/sr-mount/{value}"
        raise AssertionError("no SR made")

    def volumes(self):
        out = cli("vol", "list", "--json", self.sr_key()).stdout
        return {v["key"]: v for v in json.loads(out)}

    def read(self, key, offset, length):
        return cli("vol", "read", self.sr_key(), key, "--offset", str(offset), "--length",
                   str(length)).stdout

    def stored_meta(self, key):
        """The volume's metadata object as the storage holds it."""
        if self.kind == "file":
            with open(os.path.join(self.sr_key(), key + ".meta.json")) as f:
                return json.load(f)
        from conftest import ZfsSR, META_PROPS
        ds = [line.split("\t") for line in zfs_cmd(
            "zfs", "get", "-Hpr", "-o", "name,property,value", META_PROPS,
            self.params["EXTP_POOL"]).stdout.splitlines()]
        props = {}
        for name, prop, value in ds:
            if name.endswith("/" + key):
                props[prop] = value
        return ZfsSR.meta_of(props)


@pytest.fixture
def allowed(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    f = tmp_path / "file-storage-paths"
    f.write_text(f"# Ganeti's file-storage-paths\n\n{store}\n")
    return str(f), str(store)


@pytest.fixture(params=["file", "zfs"])
def place(request, tmp_path, tmp_path_factory, allowed, installed):
    if request.param == "file":
        return Place("file", {"EXTP_DIR": os.path.join(allowed[1], "ganeti")}, tmp_path)
    pool = zfs_pool(tmp_path_factory)
    return Place("zfs", {"EXTP_POOL": f"{pool}/g{uuid.uuid4().hex[:8]}"}, tmp_path)


@pytest.fixture
def shared_place(allowed, tmp_path, installed):
    """A place two nodes share: a directory on shared storage (dir=).  A pool
    is imported on one host at a time, so pool= disks never move between
    nodes (test_pool_disks_do_not_move)."""
    return Place("file", {"EXTP_DIR": os.path.join(allowed[1], "ganeti")}, tmp_path)


@pytest.fixture
def node(allowed, tmp_path):
    n = Node("node-a", tmp_path, allowed=allowed[0])
    yield n
    n.cleanup()


NETNS = []


@pytest.fixture
def two_nodes(allowed, tmp_path):
    """Nodes A and B in their own network namespaces, sharing the storage."""
    need(os.geteuid() == 0, "network namespaces need root")
    need(shutil.which("ip") is not None, "iproute2 (ip netns) is not installed")
    need(shutil.which("nsenter") is not None, "util-linux nsenter is not installed")
    nodes = []
    for n in ("a", "b"):
        ns = f"zlg-{n}-{os.getpid()}-{uuid.uuid4().hex[:4]}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        NETNS.append(ns)
        nodes.append(Node(f"node-{n}", tmp_path, netns=ns, allowed=allowed[0]))
    yield nodes
    for n in nodes:
        n.cleanup()
        subprocess.run(["ip", "netns", "del", n.netns], check=False)
        NETNS.remove(n.netns)
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n.netns in left for n in nodes), left


def vol_name():
    return f"{uuid.uuid4()}.ext.disk0"


def create_instance(node, place, vol, size_mib=16, data=b"", **params):
    """Instance create: create -> attach -> open(True) -> setinfo (§1.7)."""
    node.ok("create", **place.env(vol, VOL_SIZE=size_mib, VOL_UUID=str(uuid.uuid4()),
                                  **params))
    dev = node.attach(**place.env(vol))
    node.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    node.ok("setinfo", **place.env(vol, VOL_METADATA="originstname+inst1.example.com"))
    if data:
        write_dev(dev, data, offset=MiB)
    return dev


def blockdev_remove(node, **env):
    """noded's BlockdevRemove (lib/backend.py) for one ext disk, as its code
    decides: _RecursiveFindBD runs attach; a non-zero exit, or a first line
    that is not a block device, means "already gone" (the disk is dropped,
    remove never runs); otherwise ExtStorageDevice.Remove runs detach, then
    remove.  "gone", "removed", or "failed" (Ganeti keeps the disk)."""
    res = node.run("attach", **env)
    dev = res.out.split("\n")[0]
    try:
        if res.rc != 0 or not stat.S_ISBLK(os.stat(dev).st_mode):
            return "gone"
    except OSError:
        return "gone"
    if node.run("detach", **env).rc != 0:
        return "failed"
    return "removed" if node.run("remove", **env).rc == 0 else "failed"


def check_standin(dev):
    """A stand-in: a block device of size 0, read-only."""
    assert dev_size(dev) == 0
    with open(f"/sys/block/{os.path.basename(dev)}/ro") as f:
        assert f.read().strip() == "1"


# --- installation -------------------------------------------------------------


def test_provider_installed(installed):
    """make install's layout: every script a link to the one binary (regular
    file, owner-exec, as Ganeti checks), parameters.list, the log directory."""
    binary = os.path.realpath(CLI)
    for s in SCRIPTS:
        p = os.path.join(PROVIDER, s)
        assert os.path.islink(p) and os.path.realpath(p) == binary, p
        st = os.stat(p)
        assert stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IXUSR
    with open(os.path.join(PROVIDER, "parameters.list")) as f:
        lines = f.read().splitlines()
    names = [line.split(None, 1)[0] for line in lines]
    assert names[:2] == ["dir", "pool"] and "provisioning" in names
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # name description
    assert os.path.isdir(os.path.join(ROOT, "var/log/ganeti/extstorage"))


# --- call orders (§1.7) ------------------------------------------------------------


def test_instance_lifecycle(node, place):
    """create, stop, start, grow-disk, remove; the volume is an ordinary
    volume of its SR throughout; attach is idempotent; detach releases."""
    vol = vol_name()
    data = os.urandom(64 << 10)
    dev = create_instance(node, place, vol, size_mib=16, data=data)
    assert node.attach(**place.env(vol)) == dev  # idempotent: the same device
    vols = place.volumes()
    assert vols[vol]["virtual_size"] == 16 * MiB
    assert vols[vol]["description"] == "originstname+inst1.example.com"
    assert place.read(vol, MiB, len(data)) == data  # written through the device
    assert place.stored_meta(vol)["opened"] == {"node-a": "exclusive"}

    # stop: attach -> detach (no close): detach closes and releases
    node.attach(**place.env(vol))
    node.ok("detach", **place.env(vol))
    assert released(dev, vol)
    assert "opened" not in place.stored_meta(vol)
    node.ok("detach", **place.env(vol))  # idempotent

    # start: attach -> open(True), twice over
    for _ in range(2):
        dev = node.attach(**place.env(vol))
        node.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    assert read_dev(dev, len(data), MiB) == data

    # grow-disk: assemble, dry run (attach only), real run (attach, grow)
    node.attach(**place.env(vol))
    node.attach(**place.env(vol))
    node.ok("grow", **place.env(vol, VOL_SIZE=16, VOL_NEW_SIZE=48))
    assert place.volumes()[vol]["virtual_size"] == 48 * MiB
    assert dev_size(dev) == 48 * MiB  # the running instance sees it
    write_dev(dev, b"tail" * 1024, offset=47 * MiB)
    assert place.read(vol, 47 * MiB, 4096) == b"tail" * 1024

    # remove: attach -> detach -> remove (a stopped instance)
    node.attach(**place.env(vol))
    node.ok("detach", **place.env(vol))
    node.ok("remove", **place.env(vol))
    assert released(dev, vol)
    assert vol not in place.volumes()
    # gone: remove succeeds, attach fails (so Ganeti sees it as gone)
    node.ok("remove", **place.env(vol))
    assert "does not exist" in node.err("attach", **place.env(vol))


def test_export_of_running_instance(node, place):
    """snapshot -> attach/read <vol>.snap -> detach -> remove; the snapshot
    is a read-only volume of its own with the data as it was."""
    vol = vol_name()
    old = os.urandom(32 << 10)
    dev = create_instance(node, place, vol, data=old)
    snap = vol + ".snap"
    if place.kind == "file":
        # ext4 has no reflinks: a snapshot is a copy, which a running
        # instance would tear: refused, nothing made; the export then runs
        # with the instance shut down (gnt-backup export's default)
        err = node.err("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=snap,
                                                VOL_SNAPSHOT_SIZE=16))
        assert "in use" in err and "torn" in err, err
        assert snap not in place.volumes()
        node.ok("close", **place.env(vol))
        node.ok("detach", **place.env(vol))
        node.ok("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=snap, VOL_SNAPSHOT_SIZE=16))
        dev = node.attach(**place.env(vol))
        node.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    else:
        node.ok("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=snap, VOL_SNAPSHOT_SIZE=16))
    write_dev(dev, b"N" * len(old), offset=MiB)  # the instance keeps running
    sdev = node.attach(**place.env(snap))
    assert sdev != dev  # its own device (#1251: not the origin's)
    if sdev.startswith("/dev/loop"):
        with open(f"/sys/block/{os.path.basename(sdev)}/ro") as f:
            assert f.read().strip() == "1"
    assert read_dev(sdev, len(old), MiB) == old  # dd if=<dev> iflag=direct
    assert not place.volumes()[snap]["read_write"]
    node.ok("detach", **place.env(snap))
    assert released(sdev, snap)
    node.ok("remove", **place.env(snap))
    assert snap not in place.volumes()
    assert read_dev(dev, len(old), MiB) == b"N" * len(old)
    node.ok("detach", **place.env(vol))
    node.ok("remove", **place.env(vol))


def test_export_gives_ganetis_dump(node, place, tmp_path):
    """gnt-backup export's order (snapshot -> attach <vol>.snap -> read ->
    detach -> remove) with `vol export --format raw` as the reader: the
    stream is byte for byte what Ganeti's dump is (`dd if=<device>
    iflag=direct`, or an OS export script reading EXPORT_DEVICE), the file
    is sparse; and `vol import` of a dump gives a disk that attach serves
    with the same data."""
    vol = vol_name()
    data = os.urandom(64 << 10)
    create_instance(node, place, vol, data=data)
    if place.kind == "file":  # ext4 copies: the instance is shut down first
        node.ok("close", **place.env(vol))
        node.ok("detach", **place.env(vol))
    snap = vol + ".snap"
    node.ok("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=snap, VOL_SNAPSHOT_SIZE=16))
    sdev = node.attach(**place.env(snap))
    dump = read_dev(sdev, 16 * MiB)  # what dd bs=1M count=16 iflag=direct reads
    assert len(dump) == 16 * MiB and dump[MiB:MiB + len(data)] == data
    stream = cli("vol", "export", place.sr_key(), snap, "--format", "raw", "-o", "-")
    assert stream.stdout == dump
    out = tmp_path / "disk0.raw"
    cli("vol", "export", place.sr_key(), snap, "--format", "raw", "-o", str(out))
    assert out.read_bytes() == dump
    assert os.stat(out).st_blocks * 512 < 2 * MiB  # holes, not 16 MiB of zeros
    node.ok("detach", **place.env(snap))
    node.ok("remove", **place.env(snap))
    assert snap not in place.volumes()

    new = vol_name()
    cli("vol", "import", place.sr_key(), str(out), "--format", "raw", "--key", new)
    ndev = node.attach(**place.env(new))
    assert read_dev(ndev, 16 * MiB) == dump
    node.ok("detach", **place.env(new))
    node.ok("remove", **place.env(new))
    node.ok("detach", **place.env(vol))
    node.ok("remove", **place.env(vol))


def test_live_migration(two_nodes, shared_place):
    """A -> B (§1.7 live migration): close B, open shared on A and B, the
    hypervisor moves, close A, open exclusive B, detach A."""
    place = shared_place
    a, b = two_nodes
    vol = vol_name()
    data = os.urandom(64 << 10)
    adev = create_instance(a, place, vol, data=data)
    # while A holds it exclusively, B can neither open it at all
    assert "exclusively on node node-a" in b.err(
        "open", **place.env(vol, VOL_OPEN_EXCLUSIVE="False"))
    # 1. B: attach + close (first mapping on B, A still exclusive)
    bdev = b.attach(**place.env(vol))
    b.ok("close", **place.env(vol))
    # 2. A: attach + open(False); B: attach + open(False)
    a.attach(**place.env(vol))
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="False"))
    b.attach(**place.env(vol))
    b.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="False"))
    assert place.stored_meta(vol)["opened"] == {"node-a": "shared", "node-b": "shared"}
    # 3. the hypervisor migrates: B sees what A wrote
    assert read_dev(bdev, len(data), MiB) == data
    # 4. success: A close, B open(True), A detach
    a.attach(**place.env(vol))
    a.ok("close", **place.env(vol))
    assert b.attach(**place.env(vol)) == bdev
    b.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    a.attach(**place.env(vol))
    a.ok("detach", **place.env(vol))
    assert place.stored_meta(vol)["opened"] == {"node-b": "exclusive"}
    if adev != bdev:
        assert released(adev, vol)
    write_dev(bdev, b"on B" * 1024, offset=2 * MiB)
    assert place.read(vol, 2 * MiB, 4096) == b"on B" * 1024
    # A cannot take it back while B runs it
    assert "exclusively on node node-b" in a.err(
        "open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    # and A cannot remove it either: nothing changed
    assert "open on node node-b" in a.err("remove", **place.env(vol))
    assert vol in place.volumes()
    b.ok("detach", **place.env(vol))
    b.ok("remove", **place.env(vol))


def test_live_migration_failure(two_nodes, shared_place):
    """Failure after both opened shared (_RevertDiskStatus): B close, B
    attach + detach, A open(True); the instance keeps running on A."""
    place = shared_place
    a, b = two_nodes
    vol = vol_name()
    adev = create_instance(a, place, vol, data=b"x" * 4096)
    b.attach(**place.env(vol))
    b.ok("close", **place.env(vol))
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="False"))
    bdev = b.attach(**place.env(vol))
    b.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="False"))
    # the hypervisor migration failed
    b.ok("close", **place.env(vol))
    b.attach(**place.env(vol))
    b.ok("detach", **place.env(vol))
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    assert place.stored_meta(vol)["opened"] == {"node-a": "exclusive"}
    if bdev != adev:
        assert released(bdev, vol)
    assert not released(adev, vol)
    write_dev(adev, b"still A" + b"\0" * 4089, offset=MiB)
    assert place.read(vol, MiB, 7) == b"still A"
    a.ok("detach", **place.env(vol))
    a.ok("remove", **place.env(vol))


def test_attach_after_grow_on_another_node(two_nodes, shared_place):
    """migrate --cleanup leaves A's device in place; grow-disk runs on B;
    migrating back, A's attach must give a device of the new size (the
    instance would read nothing past the old end), the data B wrote there
    readable through it."""
    place = shared_place
    a, b = two_nodes
    vol = vol_name()
    adev = create_instance(a, place, vol, size_mib=16)
    # the instance runs on B now; A still has its device (no detach)
    a.ok("close", **place.env(vol))
    bdev = b.attach(**place.env(vol))
    b.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    # grow-disk on B: assemble, dry run, real run
    b.attach(**place.env(vol))
    b.ok("grow", **place.env(vol, VOL_SIZE=16, VOL_NEW_SIZE=48))
    assert dev_size(bdev) == 48 * MiB
    write_dev(bdev, b"tail" * 1024, offset=47 * MiB)
    assert dev_size(adev) == 16 * MiB  # A's device, as A left it
    # migrate back: B close, A attach (+ open)
    b.ok("close", **place.env(vol))
    dev = a.attach(**place.env(vol))
    assert dev_size(dev) == 48 * MiB
    assert read_dev(dev, 4096, 47 * MiB) == b"tail" * 1024
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    for n in (b, a):
        n.ok("detach", **place.env(vol))
    assert released(dev, vol) and released(adev, vol)
    a.ok("remove", **place.env(vol))


def test_attach_replaces_a_recorded_device_that_does_not_fit(node, place):
    """The recorded device is reused only as the volume is now: a recorded
    device that is read-only for a writable volume, or of another size that
    cannot be corrected, is replaced (and released), never printed."""
    vol = vol_name()
    dev = create_instance(node, place, vol, size_mib=8)
    recs = os.path.join(node.run_dir, "blockdev")
    (rec_name,) = [n for n in os.listdir(recs) if vol in n]
    with open(os.path.join(recs, rec_name)) as f:
        rec = json.load(f)
    backing = loop_backing(dev) if dev.startswith("/dev/loop") else None
    if backing is None:
        pytest.skip("the volume is its own block device (zvol)")
    node.ok("detach", **place.env(vol))
    # a read-only device of the same file recorded as the volume's
    ro = subprocess.run(["losetup", "--find", "--show", "--read-only", backing],
                        capture_output=True, text=True, check=True).stdout.strip()
    try:
        st = os.stat(backing)
        rec.update(dev=ro, st_dev=st.st_dev, st_ino=st.st_ino)
        with open(os.path.join(recs, rec_name), "w") as f:
            json.dump(rec, f)
        new = node.attach(**place.env(vol))
        assert new != ro
        with open(f"/sys/block/{os.path.basename(new)}/ro") as f:
            assert f.read().strip() == "0"
        write_dev(new, b"w" * 4096)  # writable
        assert loop_backing(ro) is None  # the misfit was released
        # a device limited to a smaller size (LOOP_SET_CAPACITY cannot fix it)
        node.ok("detach", **place.env(vol))
        small = subprocess.run(["losetup", "--find", "--show", "--sizelimit", str(4 * MiB),
                                backing], capture_output=True, text=True,
                               check=True).stdout.strip()
        rec.update(dev=small)
        with open(os.path.join(recs, rec_name), "w") as f:
            json.dump(rec, f)
        new = node.attach(**place.env(vol))
        assert new != small and dev_size(new) == 8 * MiB
        assert loop_backing(small) is None
    finally:
        for d in (ro, locals().get("small")):
            if d and loop_backing(d) is not None:
                subprocess.run(["losetup", "-d", d], check=False)
    node.ok("detach", **place.env(vol))
    node.ok("remove", **place.env(vol))


def test_concurrent_attaches_agree_on_one_device(node, allowed):
    """Ganeti runs attach from queries too, unlocked: attaches of one volume
    at once print one device, and no other is left bound to the file.
    (A race: rounds of 32 at once make it show without the lock.)"""
    from concurrent.futures import ThreadPoolExecutor
    env = {"EXTP_DIR": os.path.join(allowed[1], "g"), "VOL_NAME": vol_name(),
           "VOL_SIZE": "4"}
    node.ok("create", **env)
    img = os.path.join(env["EXTP_DIR"], env["VOL_NAME"] + ".img")
    for _ in range(6):
        with ThreadPoolExecutor(32) as pool:
            runs = list(pool.map(lambda _: node.run("attach", **env), range(32)))
        assert all(r.rc == 0 for r in runs), [r.err for r in runs if r.rc]
        devs = {r.out for r in runs}
        bound = subprocess.run(["losetup", "-j", img], capture_output=True, text=True,
                               check=True).stdout.splitlines()
        try:
            assert len(devs) == 1 and len(bound) == 1, (devs, bound)
        finally:
            for line in bound[1:]:
                subprocess.run(["losetup", "-d", line.split(":")[0]], check=False)
        node.ok("detach", **env)
        assert released(runs[0].out[:-1], env["VOL_NAME"])
    node.ok("remove", **env)

def test_failover(two_nodes, shared_place):
    """Failover (§1.7): shut down on A, A attach + close, A attach + detach,
    then B attach + open(True) and start.  A dead node's exclusive open
    blocks B until it is taken over explicitly."""
    place = shared_place
    a, b = two_nodes
    vol = vol_name()
    data = os.urandom(16 << 10)
    adev = create_instance(a, place, vol, data=data)
    a.attach(**place.env(vol))
    a.ok("close", **place.env(vol))
    a.attach(**place.env(vol))
    a.ok("detach", **place.env(vol))
    assert released(adev, vol)
    bdev = b.attach(**place.env(vol))
    b.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    assert read_dev(bdev, len(data), MiB) == data

    # B dies holding it: A (the new target) is refused until it takes over
    msg = a.err("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    assert "exclusively on node node-b" in msg and "takeover" in msg
    assert place.stored_meta(vol)["opened"] == {"node-b": "exclusive"}
    take = cli("vol", "takeover", place.sr_key(), vol, env={"ZFS_LIVE_NODE": "node-a"})
    assert b"1 other open dropped" in take.stderr
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    assert place.stored_meta(vol)["opened"] == {"node-a": "exclusive"}
    adev = a.attach(**place.env(vol))
    assert read_dev(adev, len(data), MiB) == data
    # the old holder, back, is refused now
    assert "exclusively on node node-a" in b.err(
        "open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
    for n in (a, b):
        n.ok("detach", **place.env(vol))
    a.ok("remove", **place.env(vol))


def test_pool_disks_do_not_move(two_nodes, tmp_path_factory, installed):
    """pool= disks: the pool is imported on one host at a time, so Ganeti's
    handovers stop at their first close, before anything moves: migrate
    (close on the target) and failover (close on the source, after the
    shutdown, before the configuration names the new primary).  The disk
    stays where it is, usable."""
    a, b = two_nodes
    pool = zfs_pool(tmp_path_factory)
    place = Place("zfs", {"EXTP_POOL": f"{pool}/gm{uuid.uuid4().hex[:6]}"}, None)
    vol = vol_name()
    data = os.urandom(8192)
    adev = create_instance(a, place, vol, data=data)
    # migrate A -> B, step 1: B attach + close
    b.attach(**place.env(vol))
    msg = b.err("close", **place.env(vol))
    assert "cannot migrate or fail over" in msg and "zpool export" in msg, msg
    # failover A -> B: shutdown on A, then A attach + close
    a.attach(**place.env(vol))
    assert "cannot migrate or fail over" in a.err("close", **place.env(vol))
    assert place.stored_meta(vol)["opened"] == {"node-a": "exclusive"}
    a.ok("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))  # started again on A
    assert a.attach(**place.env(vol)) == adev
    assert read_dev(adev, len(data), MiB) == data
    for n in (b, a):
        n.ok("detach", **place.env(vol))
    a.ok("remove", **place.env(vol))


# --- what the CLI sees ----------------------------------------------------------------


def test_ganeti_volume_is_an_sr_volume(node, place):
    vol = vol_name()
    node.ok("create", **place.env(vol, VOL_SIZE=8, VOL_CNAME="data-disk",
                                  EXTP_PROVISIONING="thin"))
    v = place.volumes()[vol]
    assert v["name"] == "data-disk" and v["virtual_size"] == 8 * MiB
    cli("vol", "write", place.sr_key(), vol, "--offset", "4096", input=b"via CLI")
    dev = node.attach(**place.env(vol))
    assert read_dev(dev, 7, 4096) == b"via CLI"
    node.ok("detach", **place.env(vol))
    cli("vol", "destroy", place.sr_key(), vol)
    node.ok("remove", **place.env(vol))  # gone already: fine
    res = node.run("verify", **place.env())
    assert res.rc == 0 and "parameters valid" in res.err


DISK_NAMES = ["tab\there", "two\nlines\n", "ctl\x01\x1b[31m\x7f", "-leading dash",
              "../../etc/passwd", "$(reboot) `id`; rm -rf / | & * ?", "it's \"q\" \\",
              "\u00e9\u2603 \U0001f4be", " spaced ", "=", "x" * 1024]


def test_disk_names_are_data(node, place):
    """VOL_CNAME is any string Ganeti allows for a disk name (NonEmptyString):
    stored and returned byte for byte, never a path or an argument; one the
    metadata cannot hold is reported and the disk still made."""
    vols = {}
    for name in DISK_NAMES:
        vol = vol_name()
        node.ok("create", **place.env(vol, VOL_SIZE=4, VOL_CNAME=name))
        vols[vol] = name
    listed = place.volumes()
    for vol, name in vols.items():
        assert listed[vol]["name"] == name, (vol, name)
    # setinfo (after an instance rename) takes the disk's current name too
    vol = next(iter(vols))
    node.ok("setinfo", **place.env(vol, VOL_CNAME="renamed\tdisk",
                                   VOL_METADATA="originstname+inst2.example.com"))
    v = place.volumes()[vol]
    assert (v["name"], v["description"]) == ("renamed\tdisk", "originstname+inst2.example.com")
    # nothing on the storage is named after a name
    if place.kind == "file":
        objs = os.listdir(place.sr_key())
    else:
        objs = zfs_cmd("zfs", "list", "-H", "-r", "-t", "all", "-o", "name",
                       place.params["EXTP_POOL"]).stdout.split("\n")
    assert not [o for o in objs if "passwd" in o or "reboot" in o or "leading" in o], objs
    # not UTF-8 (Ganeti's Python passes undecodable bytes through: \udcff is
    # the byte 0xff), or too long: the disk is made, named VOL_NAME
    for name in ("bad\udcffbyte", "y" * 1025):
        vol = vol_name()
        res = node.run("create", **place.env(vol, VOL_SIZE=4, VOL_CNAME=name))
        assert res.rc == 0 and f"named {vol} instead" in res.err, res.err
        assert place.volumes()[vol]["name"] == vol
        vols[vol] = None
    for vol in vols:
        node.ok("remove", **place.env(vol))


def test_zfs_tunables_and_layout(node, tmp_path_factory, installed):
    pool = zfs_pool(tmp_path_factory)
    place = Place("zfs", {"EXTP_POOL": f"{pool}/gt{uuid.uuid4().hex[:6]}"}, None)
    vol = vol_name()
    node.ok("create", **place.env(vol, VOL_SIZE=8, EXTP_COMPRESSION="off",
                                  EXTP_COPIES="2", EXTP_LAYOUT="dataset"))
    ds = f"{place.params['EXTP_POOL']}/{place.sr_key().rsplit('/', 1)[1]}/{vol}"
    got = zfs_cmd("zfs", "get", "-H", "-o", "property,value,source", "compression,copies",
                  ds).stdout
    assert "compression\toff\tlocal" in got and "copies\t2\tlocal" in got
    # a bad tunable value: refused, nothing made
    bad = vol_name()
    assert "EXTP_COPIES='7' is not one of: 1, 2, 3" in node.err(
        "create", **place.env(bad, VOL_SIZE=8, EXTP_COPIES="7"))
    err = node.err("create", **place.env(bad, VOL_SIZE=8, EXTP_COMPRESSION="nosuch"))
    assert "compression" in err
    assert bad not in place.volumes()
    node.ok("remove", **place.env(vol))


@pytest.mark.skipif(not os.path.exists("/dev/zfs"),
                    reason="no /dev/zfs: zvols need the OpenZFS kernel module (not run here)")
def test_zvol_attach(node, tmp_path_factory, installed):
    """On OpenZFS: attach prints the zvol's stable path; detach leaves it."""
    img = str(tmp_path_factory.mktemp("gz") / "pool.img")
    with open(img, "wb") as f:
        f.truncate(1 << 30)
    pool = f"zlg{os.getpid()}"
    zfs_cmd("zpool", "create", pool, img)
    try:
        place = Place("zfs", {"EXTP_POOL": f"{pool}/g", "EXTP_LAYOUT": "zvol"}, None)
        vol = vol_name()
        node.ok("create", **place.env(vol, VOL_SIZE=8))
        dev = node.attach(**place.env(vol))
        assert dev == f"/dev/zvol/{pool}/g/{place.sr_key().rsplit('/', 1)[1]}/{vol}"
        write_dev(dev, b"zvol" * 1024)
        assert place.read(vol, 0, 4096) == b"zvol" * 1024
        node.ok("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=vol + ".snap"))
        sdev = node.attach(**place.env(vol + ".snap"))
        assert "_zl-ro-" in sdev and read_dev(sdev, 4096) == b"zvol" * 1024
        for v in (vol + ".snap", vol):
            node.ok("detach", **place.env(v))
            node.ok("remove", **place.env(v))
    finally:
        zfs_cmd("zpool", "destroy", "-f", pool, check=False)


# --- bad environments: clear errors, nothing changed ---------------------------------


def tree(path):
    out = {}
    for dp, dns, fns in os.walk(path):
        for n in fns + dns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
    return out


BAD = [
    # (action, env changes, words the message must have)
    ("create", {"VOL_NAME": None}, "VOL_NAME is not set"),
    ("attach", {"VOL_NAME": None}, "VOL_NAME is not set"),
    ("create", {"VOL_SIZE": "ten"}, "not a number of MiB"),
    ("create", {"VOL_SIZE": "-5"}, "negative"),
    ("create", {"VOL_SIZE": ""}, "not a number of MiB"),
    ("create", {"VOL_SIZE": "0"}, "at least 1 MiB"),
    ("create", {"VOL_SIZE": None}, "VOL_SIZE is not set"),
    ("create", {"VOL_NAME": "../escape"}, "not a valid volume name"),
    ("create", {"VOL_NAME": "a/b.ext.disk0"}, "no '/'"),
    ("create", {"EXTP_FOO": "bar"}, "unknown parameter EXTP_FOO (known: EXTP_DIR, EXTP_POOL"),
    ("create", {"EXTP_DIR": None}, "neither EXTP_DIR nor EXTP_POOL"),
    ("create", {"EXTP_POOL": "tank"}, "both set"),
    ("create", {"EXTP_COMPRESSION": "lz4"}, "applies to ZFS SRs"),
    ("create", {"EXTP_PROVISIONING": "fat"}, "not one of: thin, thick"),
    ("create", {"EXTP_ACCESS": "userspace"}, "userspace access is not offered"),
    ("create", {"EXTP_DIR": "relative/dir"}, "not an absolute path"),
    ("create", {"EXTP_DIR": "/etc/ganeti-disks"}, "system directory"),
    ("create", {"EXTP_DIR": "/tmp/not-allowed-zfs-live"}, "outside every directory"),
    ("grow", {"VOL_SIZE": "16", "VOL_NEW_SIZE": "8"}, "only grow"),
    ("grow", {"VOL_NEW_SIZE": "x"}, "not a number of MiB"),
    ("open", {}, "VOL_OPEN_EXCLUSIVE must be True or False"),
    ("open", {"VOL_OPEN_EXCLUSIVE": "yes"}, "must be True or False"),
    ("snapshot", {"VOL_SNAPSHOT_NAME": "x/y"}, "VOL_SNAPSHOT_NAME"),
    ("setinfo", {}, "VOL_METADATA is not set"),
]


@pytest.mark.parametrize("action,change,words", BAD,
                         ids=[f"{a}-{'-'.join(c) or 'none'}" for a, c, _ in BAD])
def test_bad_environment(node, allowed, action, change, words):
    store = allowed[1]
    existing = "keep.ext.disk0"
    base = {"EXTP_DIR": os.path.join(store, "ganeti"), "EXTP_PROVIDER": "zfs-live",
            "EXTP_ACCESS": "kernelspace"}
    node.ok("create", **dict(base, VOL_NAME=existing, VOL_SIZE=4))
    before = tree(store)
    env = dict(base, VOL_NAME=f"{uuid.uuid4()}.ext.disk0", VOL_SIZE="4")
    if action in ("grow", "open", "snapshot", "setinfo"):
        env["VOL_NAME"] = existing
    for k, v in change.items():
        env[k] = v
    env = {k: v for k, v in env.items() if v is not None}
    msg = node.err(action, **env)
    assert words in msg, msg
    assert msg.startswith(f"zfs-live {action}"), msg
    assert tree(store) == before


def test_bad_environment_zfs_pool(node, tmp_path_factory, installed):
    pool = zfs_pool(tmp_path_factory)
    where = f"{pool}/gbad{uuid.uuid4().hex[:6]}"
    env = {"EXTP_POOL": where, "VOL_NAME": vol_name(), "VOL_SIZE": "4"}
    assert "no ZFS pool" in node.err("create", **dict(env, EXTP_POOL="nosuchpool/x"))
    assert "EXTP_POOL" in node.err("create", **dict(env, EXTP_POOL="/abs"))
    assert "not one of: zvol, dataset" in node.err("create", **dict(env, EXTP_LAYOUT="x"))
    assert zfs_cmd("zfs", "list", where, check=False).returncode != 0  # nothing made
    # a volume in a place without an SR: nothing is known about it, so
    # attach prints a stand-in (Ganeti would drop the disk on a failure),
    # open and remove refuse, never "gone"; detach releases the stand-in
    res = node.run("attach", **env)
    assert res.rc == 0 and "no SR" in res.err and "stand-in" in res.err, res.err
    dev = res.out[:-1]
    check_standin(dev)
    assert "stand-in" in node.err("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))
    assert "not reported removed" in node.err("remove", **env)
    node.ok("detach", **env)
    assert loop_backing(dev) is None
    assert blockdev_remove(node, **env) == "failed"
    assert not [n for n in os.listdir(os.path.join(node.run_dir, "blockdev"))
                if n.startswith("standin.") and n.endswith(".json")]


def test_provider_directory_incomplete(tmp_path, allowed, installed):
    """A provider directory without its files: every script refuses, naming
    what is missing, and changes nothing."""
    binary = os.path.realpath(CLI)
    for missing in ("remove", "parameters.list"):
        d = tmp_path / f"x-{missing}" / "extstorage" / "zfs-live"
        d.mkdir(parents=True)
        for s in SCRIPTS:
            if s != missing:
                os.symlink(binary, d / s)
        if missing != "parameters.list":
            shutil.copy(os.path.join(PROVIDER, "parameters.list"), d)
        n = Node("node-a", tmp_path, allowed=allowed[0], provider=str(d))
        before = tree(allowed[1])
        msg = n.err("create", EXTP_DIR=os.path.join(allowed[1], "g"), VOL_NAME=vol_name(),
                    VOL_SIZE=4)
        assert "incomplete" in msg and missing in msg, msg
        assert tree(allowed[1]) == before
    # an optional script present but not executable counts too
    d = tmp_path / "x-exec" / "extstorage" / "zfs-live"
    d.mkdir(parents=True)
    for s in SCRIPTS:
        if s != "open":
            os.symlink(binary, d / s)
    (d / "open").write_text("#!/bin/sh\n")
    shutil.copy(os.path.join(PROVIDER, "parameters.list"), d)
    msg = Node("node-a", tmp_path, allowed=allowed[0], provider=str(d)).err(
        "verify", EXTP_DIR=os.path.join(allowed[1], "g"))
    assert "open" in msg and "incomplete" in msg


def test_allowed_paths(node, allowed, tmp_path):
    store = allowed[1]
    env = {"EXTP_DIR": os.path.join(store, "sub", "g"), "VOL_NAME": vol_name(),
           "VOL_SIZE": "4"}
    os.makedirs(os.path.join(store, "sub"))
    node.ok("create", **env)  # below an allowed directory: fine, SR made
    # through a symlink from outside into the allowed tree: its real path counts
    link = tmp_path / "link"
    os.symlink(store, link)
    node.ok("attach", **dict(env, EXTP_DIR=str(link / "sub" / "g")))
    node.ok("detach", **dict(env, EXTP_DIR=str(link / "sub" / "g")))
    # and the other way round: a symlink inside pointing out is refused
    os.symlink(str(tmp_path), os.path.join(store, "out"))
    assert "outside every directory" in node.err(
        "create", **dict(env, EXTP_DIR=os.path.join(store, "out", "g2")))
    # no allowed-paths file: nothing is allowed
    nofile = Node("node-a", tmp_path, allowed=str(tmp_path / "missing"))
    res = nofile.run("attach", **env)  # a stand-in: the disk is not dropped
    assert res.rc == 0 and "cannot be read" in res.err and "stand-in" in res.err
    check_standin(res.out[:-1])
    assert "cannot be read" in nofile.err("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))
    assert "cannot be read" in nofile.err("remove", **env)
    nofile.ok("detach", **env)
    # a forbidden prefix stays forbidden even when listed, and allows nothing
    f = tmp_path / "paths2"
    f.write_text("/etc\n/usr/lib\nrelative\n")
    listed = Node("node-a", tmp_path, allowed=str(f))
    assert "system directory (/etc)" in listed.err("verify", EXTP_DIR="/etc/x")
    assert "names no valid directory" in listed.err("verify", EXTP_DIR=str(tmp_path / "x"))
    node.ok("detach", **env)
    node.ok("remove", **env)


def test_remove_refuses_open_elsewhere_and_unreachable_sr(node, allowed, tmp_path):
    env = {"EXTP_DIR": os.path.join(allowed[1], "g"), "VOL_NAME": vol_name(),
           "VOL_SIZE": "4"}
    node.ok("create", **env)
    other = Node("node-z", tmp_path, allowed=allowed[0])
    other.ok("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))
    assert "open on node node-z" in node.err("remove", **env)
    assert env["VOL_NAME"] in cli("vol", "list", env["EXTP_DIR"]).stdout.decode()
    other.ok("close", **env)
    # the SR directory is gone (an unmounted share): gnt-instance remove
    # fails and keeps the disk, whose data still exists; start fails too
    moved = env["EXTP_DIR"] + ".away"
    os.rename(env["EXTP_DIR"], moved)
    assert "not reported removed" in node.err("remove", **env)
    assert blockdev_remove(node, **env) == "failed"
    node.attach(**env)
    assert "stand-in" in node.err("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))
    node.ok("detach", **env)
    os.rename(moved, env["EXTP_DIR"])
    assert os.path.exists(os.path.join(env["EXTP_DIR"], env["VOL_NAME"] + ".img"))
    # back: the stand-in is replaced by the volume's device, then removed
    dev = node.attach(**env)
    assert dev_size(dev) == 4 * MiB
    node.ok("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))
    assert blockdev_remove(node, **env) == "removed"
    assert not os.path.exists(os.path.join(env["EXTP_DIR"], env["VOL_NAME"] + ".img"))
    assert blockdev_remove(node, **env) == "gone"


# --- places: one SR per place, found among the place's direct children ----------------


def sr_datasets(dataset):
    """{SR dataset: uuid} of every SR at or below dataset (the local marks)."""
    out = zfs_cmd("zfs", "get", "-Hpr", "-o", "name,value,source", "zfs-live:sr",
                  dataset).stdout
    return {n: v for n, v, s in (line.split("\t") for line in out.splitlines())
            if s == "local" and "@" not in n}


def datasets_named(dataset, vol):
    out = zfs_cmd("zfs", "list", "-H", "-r", "-t", "all", "-o", "name", dataset).stdout
    return [n for n in out.split() if vol in n]


@pytest.mark.parametrize("outer_first", [True, False], ids=["outer-first", "inner-first"])
def test_places_nested_in_one_pool(node, tmp_path_factory, installed, outer_first):
    """EXTP_POOL=P and EXTP_POOL=P/other are two places, each with its own SR
    (P/<uuid>, P/other/<uuid>), in either order of first use: disks of both
    attach, and remove really removes a disk's data, never another's."""
    pool = zfs_pool(tmp_path_factory)
    outer = Place("zfs", {"EXTP_POOL": f"{pool}/gp{uuid.uuid4().hex[:6]}"}, None)
    inner = Place("zfs", {"EXTP_POOL": outer.params["EXTP_POOL"] + "/other"}, None)
    disks = {}
    for place in (outer, inner) if outer_first else (inner, outer):
        vol = vol_name()
        node.ok("create", **place.env(vol, VOL_SIZE=8))
        disks[vol] = place
    srs = sr_datasets(outer.params["EXTP_POOL"])
    parents = sorted(name.rsplit("/", 1)[0] for name in srs)
    assert parents == sorted([outer.params["EXTP_POOL"], inner.params["EXTP_POOL"]]), srs
    for vol, place in disks.items():
        dev = node.attach(**place.env(vol))
        write_dev(dev, vol.encode() * 64, offset=MiB)
        assert node.attach(**place.env(vol)) == dev
    for vol, place in disks.items():
        dev = node.attach(**place.env(vol))
        assert read_dev(dev, len(vol) * 64, MiB) == vol.encode() * 64
        node.ok("detach", **place.env(vol))
    # remove (attach -> detach -> remove): the data goes, the other disk stays
    (first, fplace), (second, splace) = list(disks.items())
    node.attach(**fplace.env(first))
    node.ok("detach", **fplace.env(first))
    node.ok("remove", **fplace.env(first))
    assert datasets_named(outer.params["EXTP_POOL"], first) == []
    assert "does not exist" in node.err("attach", **fplace.env(first))
    dev = node.attach(**splace.env(second))
    assert read_dev(dev, len(second) * 64, MiB) == second.encode() * 64
    node.ok("detach", **splace.env(second))
    node.ok("remove", **splace.env(second))
    assert datasets_named(outer.params["EXTP_POOL"], second) == []


def test_pool_not_imported_keeps_disks(node, tmp_path, installed):
    """A pool= disk on a node where its pool is not imported (it is
    imported on one host at a time): gnt-instance remove fails and keeps
    the disk, start fails at open; imported again, everything works."""
    img = str(tmp_path / "pool.img")
    with open(img, "wb") as f:
        f.truncate(256 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", img], capture_output=True,
                         text=True, check=True).stdout.strip()
    pool = f"zlgx{os.getpid()}{uuid.uuid4().hex[:4]}"
    zfs_cmd("zpool", "create", pool, dev)
    try:
        place = Place("zfs", {"EXTP_POOL": f"{pool}/g"}, None)
        vol = vol_name()
        data = os.urandom(8192)
        create_instance(node, place, vol, size_mib=8, data=data)
        node.ok("detach", **place.env(vol))
        zfs_cmd("zpool", "export", pool)
        assert blockdev_remove(node, **place.env(vol)) == "failed"
        sdev = node.attach(**place.env(vol))
        check_standin(sdev)
        msg = node.err("open", **place.env(vol, VOL_OPEN_EXCLUSIVE="True"))
        assert "not imported" in msg and "stand-in" in msg, msg
        node.ok("detach", **place.env(vol))
        zfs_cmd("zpool", "import", "-d", os.path.dirname(dev), pool)
        adev = node.attach(**place.env(vol))
        assert dev_size(adev) == 8 * MiB
        assert read_dev(adev, len(data), MiB) == data
        assert blockdev_remove(node, **place.env(vol)) == "removed"
        assert datasets_named(pool, vol) == []
    finally:
        zfs_cmd("zpool", "import", "-d", os.path.dirname(dev), pool, check=False)
        # zfs-fuse answers "busy" for a moment after use: wait for the
        # destroy to go through (bounded), so no pool outlives the test
        destroy_pool(pool)
        assert pool not in zfs_cmd("zpool", "list", "-H", "-o", "name").stdout.split()
        subprocess.run(["losetup", "-d", dev], check=False)


def test_snapshot_without_a_file_is_removed(node, tmp_path_factory, installed):
    """A snapshot of a never-written dataset-layout volume has no file, so
    no device: attach prints a stand-in (open refuses it, with the reason),
    and gnt-backup's remove of <vol>.snap really removes it (a failed attach
    would have made Ganeti skip remove and leak the snapshot)."""
    pool = zfs_pool(tmp_path_factory)
    place = Place("zfs", {"EXTP_POOL": f"{pool}/gs{uuid.uuid4().hex[:6]}"}, None)
    vol = vol_name()
    node.ok("create", **place.env(vol, VOL_SIZE=8))
    snap = vol + ".snap"
    node.ok("snapshot", **place.env(vol, VOL_SNAPSHOT_NAME=snap, VOL_SNAPSHOT_SIZE=8))
    check_standin(node.attach(**place.env(snap)))
    assert "no file" in node.err("open", **place.env(snap, VOL_OPEN_EXCLUSIVE="False"))
    assert blockdev_remove(node, **place.env(snap)) == "removed"
    assert snap not in place.volumes()
    assert blockdev_remove(node, **place.env(snap)) == "gone"
    assert blockdev_remove(node, **place.env(vol)) == "removed"


# --- the filesystem a place must be on ------------------------------------------------


def without_mount(path):
    """preexec_fn: run in a private mount namespace where nothing is mounted
    at path: a node on which the share is not mounted."""
    def hook():
        libc = ctypes.CDLL(None, use_errno=True)
        if (libc.unshare(0x00020000) != 0  # CLONE_NEWNS
                or libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0  # MS_REC|MS_PRIVATE
                or libc.umount2(path.encode(), 2) != 0):  # MNT_DETACH
            os._exit(99)
    return hook


def is_mountpoint(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def share(allowed, tmp_path):
    """The mount point of a share (allowed for file storage), declared in a
    test fstab as an NFS export; unmounted at the end."""
    mnt = os.path.join(allowed[1], "share")
    os.mkdir(mnt)
    fstab = tmp_path / "fstab"
    fstab.write_text("# <file system> <mount point> <type> <options> <dump> <pass>\n"
                     "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n"
                     f"nas:/export/ganeti {mnt} nfs4 defaults,_netdev 0 0\n")
    yield mnt, str(fstab)
    while is_mountpoint(mnt):
        subprocess.run(["umount", mnt], check=True)


def test_create_refuses_a_share_that_is_not_mounted(node, share, tmp_path, allowed):
    """A place below a mount point the host declares (fstab, a systemd mount
    unit, or EXTP_MOUNTPOINT) that is not mounted: create refuses and makes
    nothing in the directory beneath; every other action treats the place as
    unreachable.  Mounted: everything works."""
    need(os.geteuid() == 0, "mounting needs root")
    mnt, fstab = share
    vol = vol_name()
    env = {"EXTP_DIR": os.path.join(mnt, "ganeti"), "VOL_NAME": vol, "VOL_SIZE": "4",
           "ZFS_LIVE_FSTAB": fstab}
    msg = node.err("create", **env)
    assert f"mounted at {mnt} (nas:/export/ganeti, nfs4, in {fstab})" in msg, msg
    assert "not mounted" in msg and os.listdir(mnt) == []
    assert "not mounted" in node.err("verify", **env)
    # mounted: the first create makes the SR on the share
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "zlshare", mnt], check=True)
    node.ok("create", **env)
    dev = node.attach(**env)
    assert os.listdir(mnt) == ["ganeti"]
    write_dev(dev, b"on the share" * 100)
    node.ok("open", **dict(env, VOL_OPEN_EXCLUSIVE="True"))

    # a node where the share is not mounted
    b = Node("node-b", tmp_path, allowed=allowed[0], preexec=without_mount(mnt))
    try:
        other = dict(env, VOL_NAME=vol_name())
        assert "not mounted" in b.err("create", **other)
        beneath = subprocess.run(["ls", "-A", mnt], capture_output=True, text=True,
                                 preexec_fn=without_mount(mnt), check=True).stdout
        assert beneath == ""  # nothing made on the filesystem beneath
        res = b.run("attach", **env)
        assert res.rc == 0 and "not mounted" in res.err
        check_standin(res.out[:-1])
        assert "not mounted" in b.err("open", **dict(env, VOL_OPEN_EXCLUSIVE="False"))
        assert blockdev_remove(b, **env) == "failed"
        # declared by a systemd mount unit instead of fstab
        units = tmp_path / "units"
        units.mkdir()
        (units / "srv-share.mount").write_text(
            f"[Unit]\nDescription=the share\n[Mount]\nWhat=nas:/export/ganeti\n"
            f"Where={mnt}\nType=nfs4\n")
        unit_env = dict(other, ZFS_LIVE_FSTAB="/dev/null", ZFS_LIVE_MOUNT_UNITS=str(units))
        assert "srv-share.mount" in b.err("create", **unit_env)
        # declared by the disk's own parameter (a mount no file declares)
        bare = dict(other, ZFS_LIVE_FSTAB="/dev/null")
        assert "EXTP_MOUNTPOINT" in b.err("create", **dict(bare, EXTP_MOUNTPOINT=mnt))
        assert subprocess.run(["ls", "-A", mnt], capture_output=True, text=True,
                              preexec_fn=without_mount(mnt)).stdout == ""
    finally:
        b.cleanup()
    # where it is mounted, EXTP_MOUNTPOINT is satisfied; "yes" asks the
    # directory itself to be the mount point; another tree is refused
    bare = dict(env, ZFS_LIVE_FSTAB="/dev/null")
    assert node.attach(**dict(bare, EXTP_MOUNTPOINT=mnt)) == dev
    assert "not mounted" in node.err("verify", **dict(bare, EXTP_MOUNTPOINT="yes"))
    assert "not on it" in node.err("verify", **dict(bare, EXTP_MOUNTPOINT="/srv"))
    assert "neither yes nor" in node.err("verify", **dict(bare, EXTP_MOUNTPOINT="no"))
    assert read_dev(dev, 12) == b"on the share"
    node.ok("detach", **env)
    node.ok("remove", **env)


# --- file-storage design: adopt, Xen disk specs ----------------------------------------


def test_adopt_raw_file(allowed, node):
    store = allowed[1]
    env = {"EXTP_DIR": os.path.join(store, "g"), "VOL_NAME": "seed.ext.disk0",
           "VOL_SIZE": "4"}
    node.ok("create", **env)  # the SR
    img = os.path.join(store, "existing.img")
    data = os.urandom(1 << 20)
    with open(img, "wb") as f:
        f.write(data)
        f.truncate(8 * MiB)
    ino = os.stat(img).st_ino
    out = cli("vol", "adopt", env["EXTP_DIR"], img, "--key", "old.ext.disk0").stdout
    assert out == b"old.ext.disk0\n"
    assert not os.path.exists(img)  # moved in ...
    assert os.stat(os.path.join(env["EXTP_DIR"], "old.ext.disk0.img")).st_ino == ino  # no copy
    v = json.loads(cli("vol", "stat", "--json", env["EXTP_DIR"], "old.ext.disk0").stdout)
    assert v["virtual_size"] == 8 * MiB and v["name"] == "existing.img"
    # ... and Ganeti can use it
    dev = node.attach(**dict(env, VOL_NAME="old.ext.disk0"))
    assert read_dev(dev, len(data)) == data
    node.ok("detach", **dict(env, VOL_NAME="old.ext.disk0"))
    # refused: not a raw image, odd size, in the SR already, a system path
    odd = os.path.join(store, "odd.img")
    with open(odd, "wb") as f:
        f.write(b"x" * 1000)
    assert b"multiple of 512" in cli("vol", "adopt", env["EXTP_DIR"], odd, check=False).stderr
    assert os.path.exists(odd)
    r = cli("vol", "adopt", env["EXTP_DIR"], os.path.join(env["EXTP_DIR"], "seed.ext.disk0.img"),
            check=False)
    assert r.returncode != 0 and b"SR's directory" in r.stderr
    r = cli("vol", "adopt", env["EXTP_DIR"], "/etc/hostname", check=False)
    assert r.returncode != 0 and b"system directory" in r.stderr
    r = cli("vol", "adopt", env["EXTP_DIR"], odd, "--key", "old.ext.disk0", check=False)
    assert r.returncode != 0 and b"already exists" in r.stderr


@pytest.mark.parametrize("point", ["adopt:linked", "adopt:committed"])
def test_adopt_crash(allowed, node, point):
    """Killed during adopt: the data is never lost; after adopt:linked the
    volume does not exist and adopting again completes."""
    store = allowed[1]
    sr = os.path.join(store, "g")
    node.ok("create", EXTP_DIR=sr, VOL_NAME="seed.ext.disk0", VOL_SIZE=4)
    img = os.path.join(store, "crash.img")
    data = os.urandom(MiB)
    with open(img, "wb") as f:
        f.write(data)
    proc = subprocess.run([CLI, "vol", "adopt", sr, img, "--key", "c.ext.disk0"],
                          env=dict(os.environ, ZFS_LIVE_FAULT=point), capture_output=True)
    assert proc.returncode == -9
    # the next call finishes (committed) or undoes (linked) it: the data
    # ends up under exactly one name
    listed = "c.ext.disk0" in cli("vol", "list", sr).stdout.decode()
    assert listed == (point == "adopt:committed")
    assert not [n for n in os.listdir(sr) if n.startswith(".") and n != ".zfs-live"]
    assert os.listdir(os.path.join(sr, ".zfs-live", "journal")) in ([], ["spare"])
    if point == "adopt:linked":
        assert open(img, "rb").read() == data  # the old name holds it, alone
        assert os.stat(img).st_nlink == 1
        assert not os.path.exists(os.path.join(sr, "c.ext.disk0.img"))
        cli("vol", "adopt", sr, img)  # the retry, as documented, with a new key
        keys = [v["key"] for v in json.loads(cli("vol", "list", "--json", sr).stdout)
                if v["key"] != "seed.ext.disk0"]
        assert len(keys) == 1
        cli("vol", "destroy", sr, keys[0])
        with open(img, "wb") as f:
            f.write(data)
        cli("vol", "adopt", sr, img, "--key", "c.ext.disk0")
    assert not os.path.exists(img)
    assert os.stat(os.path.join(sr, "c.ext.disk0.img")).st_nlink == 1
    assert cli("vol", "read", sr, "c.ext.disk0").stdout == data


def test_adopt_zfs_dataset(tmp_path_factory, node, installed):
    pool = zfs_pool(tmp_path_factory)
    place = Place("zfs", {"EXTP_POOL": f"{pool}/ga{uuid.uuid4().hex[:6]}"}, None)
    node.ok("create", **place.env("seed.ext.disk0", VOL_SIZE=4))
    src = f"{pool}/img{uuid.uuid4().hex[:6]}"
    zfs_cmd("zfs", "create", src)
    mnt = zfs_cmd("zfs", "get", "-H", "-o", "value", "mountpoint", src).stdout.strip()
    data = os.urandom(MiB)
    with open(os.path.join(mnt, "disk.img"), "wb") as f:
        f.write(data)
        f.truncate(4 * MiB)
    cli("vol", "adopt", place.sr_key(), src, "--key", "z.ext.disk0")
    assert zfs_cmd("zfs", "list", src, check=False).returncode != 0  # renamed into the SR
    v = place.volumes()["z.ext.disk0"]
    assert v["virtual_size"] == 4 * MiB
    assert place.read("z.ext.disk0", 0, MiB) == data
    dev = node.attach(**place.env("z.ext.disk0"))
    assert read_dev(dev, MiB) == data
    node.ok("detach", **place.env("z.ext.disk0"))
    node.ok("remove", **place.env("z.ext.disk0"))
    # refused: not in the SR's pool, a snapshot, missing
    r = cli("vol", "adopt", place.sr_key(), "otherpool/x", check=False)
    assert r.returncode != 0 and b"pool" in r.stderr


def test_xen_disk(node, allowed):
    sr = os.path.join(allowed[1], "g")
    vol = "x.ext.disk0"
    node.ok("create", EXTP_DIR=sr, VOL_NAME=vol, VOL_SIZE=4)
    img = os.path.join(sr, vol + ".img")

    def spec(*args, check=True):  # on this node (its loop device records)
        return cli("vol", "xen-disk", sr, *args, check=check,
                   env={"ZFS_LIVE_RUN": node.run_dir})

    assert spec(vol, "--driver", "file").stdout.decode() == f"file:{img},xvda,w\n"
    assert spec(vol, "--driver", "tap", "--vdev", "sdb").stdout.decode() == \
        f"tap:aio:{img},sdb,w\n"
    assert spec(vol, "--driver", "tap2", "--vdev", "sdd", "--readonly").stdout.decode() == \
        f"tap2:tapdisk:aio:{img},sdd,r\n"
    phy = spec(vol).stdout.decode()
    assert phy.startswith("phy:/dev/loop") and phy.endswith(",xvda,w\n")
    dev = phy[4:].split(",")[0]
    assert dev == node.attach(EXTP_DIR=sr, VOL_NAME=vol)  # the device attach gives
    r = spec(vol, "--driver", "qcow", check=False)
    assert r.returncode != 0 and b"unknown Xen disk driver" in r.stderr
    r = spec(vol, "--vdev", "xv/da", check=False)
    assert r.returncode != 0 and b"virtual device" in r.stderr
    node.ok("detach", EXTP_DIR=sr, VOL_NAME=vol)
    assert released(dev, vol)
    # (a snapshot copies on this filesystem: taken with the device released)
    node.ok("snapshot", EXTP_DIR=sr, VOL_NAME=vol, VOL_SNAPSHOT_NAME=vol + ".snap")
    assert spec(vol + ".snap", "--driver", "file").stdout.decode().endswith(",xvda,r\n")
    node.ok("detach", EXTP_DIR=sr, VOL_NAME=vol + ".snap")
