"""Shared file-live SRs: one GlusterFS volume FUSE-mounted on two hosts
(tests/integration/hosts.py), each host with its own inventory (host UUID),
/run/zfs-live and NBD server.  What the locks give on that filesystem, then
an SR used from both hosts at once."""
import copy
import json
import os
import subprocess

import pytest

import v5
from conftest import WRAP, FileSR, wait_for
from hosts import Locker, cluster, try_lock  # noqa: F401 (cluster: a fixture)

MiB = 1 << 20
FLOCK_SYSCALL = 73  # x86_64: what a process blocked in flock(2) shows in /proc/<pid>/syscall


# --- the filesystem ----------------------------------------------------------

def test_hosts_see_one_filesystem(cluster):
    a, b = cluster["a"], cluster["b"]
    assert a.uuid != b.uuid
    assert a.fstype(cluster.mnt) == b.fstype(cluster.mnt) == "fuse.glusterfs"
    a.run(["sh", "-c", f"echo from-a > {cluster.mnt}/hello"])
    assert b.run(["cat", f"{cluster.mnt}/hello"], text=True).stdout == "from-a\n"
    # each host is its own XAPI host (and the test session's overrides are gone)
    for h in (a, b):
        inv = h.run(["cat", "/etc/xensource-inventory"], text=True).stdout
        assert f"INSTALLATION_UUID='{h.uuid}'" in inv
        env = h.run(["env"], text=True).stdout
        assert "ZFS_LIVE_INVENTORY" not in env and "ZFS_LIVE_RUN" not in env


# --- locks -------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["flock", "ofd", "posix"])
def test_a_lock_on_one_host_excludes_the_other_until_its_holder_is_killed(cluster, kind):
    """flock is what our SR, volume, journal and temporary-file locks are
    (src/core/model/lock.c, journal.c, util/fsutil.c); OFD and POSIX
    record locks are checked too, to record what GlusterFS gives."""
    a, b = cluster["a"], cluster["b"]
    path = f"{cluster.mnt}/lock-{kind}"
    holder = Locker(a, path, kind)
    assert holder.locked()
    assert not try_lock(b, path, kind, "x")
    assert not try_lock(b, path, kind, "s")
    assert not try_lock(a, path, kind, "x")  # another process on the same host
    holder.kill()  # SIGKILL: the process's files are closed by the kernel
    # the FUSE release that drops a flock is sent asynchronously: wait for it
    wait_for(lambda: try_lock(b, path, kind, "x"), f"host b to get the {kind} lock")


def test_shared_locks_are_shared_across_hosts(cluster):
    a, b = cluster["a"], cluster["b"]
    path = f"{cluster.mnt}/lock-shared"
    holder = Locker(a, path, "flock", "s")
    assert holder.locked()
    assert try_lock(b, path, "flock", "s")
    assert not try_lock(b, path, "flock", "x")
    holder.release()
    assert try_lock(b, path, "flock", "x")


@pytest.mark.parametrize("held,tried", [("flock", "ofd"), ("ofd", "flock"),
                                        ("flock", "posix")])
def test_flock_and_record_locks_conflict_on_glusterfs(cluster, held, tried):
    """Unlike a local filesystem (where flock and fcntl locks never
    interact), the GlusterFS client maps flock to a whole-file lock in the
    same table as fcntl locks (as the NFS client does): recorded, not
    relied on."""
    a, b = cluster["a"], cluster["b"]
    path = f"{cluster.mnt}/lock-{held}-{tried}"
    holder = Locker(a, path, held)
    assert holder.locked()
    assert not try_lock(b, path, tried, "x")
    holder.release()
    assert try_lock(b, path, tried, "x")


# --- an SR on the shared mount ------------------------------------------------

class SharedSR(FileSR):
    """A file-live SR at a path on the shared mount, driven from one host;
    the test process reads its files through that host's view of the mount
    (hosts.Node.path)."""

    def __init__(self, host, path):
        self.host = host
        super().__init__(host.plugin(), path)
        self.path = host.path(self.key)

    def on(self, host):
        """The same SR driven from another host (attached there first)."""
        other = copy.copy(self)
        other.host, other.plugin = host, host.plugin()
        other.key = other.plugin.ok("SR.attach", configuration=self.config)
        other.path = host.path(other.key)
        return other

    def read(self, key, offset=0, length=None):
        args = ["vol", "read", self.key, key, "--offset", str(offset)]
        if length is not None:
            args += ["--length", str(length)]
        return self.host.cli(*args).stdout

    def write(self, key, data, offset=0):
        return self.host.cli("vol", "write", self.key, key, "--offset", str(offset),
                             input=data)

    def start(self, method, **params):
        """method running on this SR's host, in the background."""
        params = dict(params, dbg="test", sr=self.key)
        p = self.host.popen([*WRAP, self.plugin.path(method), "--json"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
        p.stdin.write(json.dumps(params).encode())
        p.stdin.close()
        p.stdin = None  # sent: communicate() must not flush it
        return p


@pytest.fixture
def shared(cluster, request):
    """A fresh SR made on host a, and the same SR attached on host b."""
    path = f"{cluster.mnt}/sr-{request.node.name[:40].replace('[', '-').replace(']', '')}"
    sa = SharedSR(cluster["a"], path)
    return sa, sa.on(cluster["b"])


def blocked_in_flock(proc):
    try:
        with open(f"/proc/{proc.pid}/syscall") as f:
            return f.read().split()[0] == str(FLOCK_SYSCALL)
    except (FileNotFoundError, IndexError):
        return False


def test_the_sr_lock_held_on_one_host_holds_a_call_on_the_other(shared):
    """The SR lock (.zfs-live/lock, flock LOCK_EX) taken by a process on
    host a makes Volume.create on host b wait, until that process is
    killed."""
    sa, sb = shared
    holder = Locker(sa.host, f"{sa.key}/.zfs-live/lock")
    assert holder.locked()
    create = sb.start("Volume.create", name="waits", description="", size=MiB,
                      sharable=False)
    wait_for(lambda: blocked_in_flock(create) or create.poll() is not None,
             "Volume.create on host b to wait for the SR lock")
    assert create.poll() is None, "Volume.create ran while host a held the SR lock"
    assert sa.ls() == []
    holder.kill()
    out, err = create.communicate(timeout=60)
    assert create.returncode == 0, err
    made = v5.volume(json.loads(out))
    assert [v["key"] for v in sa.ls()] == [made["key"]]


def test_an_sr_made_on_one_host_is_found_and_attached_on_the_other(cluster, shared, plugin,
                                                                    tmp_path):
    sa, sb = shared
    v = sa.create(name="from-a")
    assert sb.key == sa.key  # the same path on every host: the same key
    res = [v5.probe_result(r) for r in sb.plugin.ok(
        "SR.probe", configuration={"path": cluster.mnt})]
    found = [r for r in res if r["complete"]]
    assert [r["configuration"] for r in found] == [{"path": sa.key, "sr_uuid": sa.uuid}]
    assert found[0]["sr"]["clustered"] is True
    assert [x["key"] for x in sb.ls()] == [v["key"]]
    for s in (sa, sb):
        st = v5.sr_stat(s.call("SR.stat"))
        assert st["uuid"] == sa.uuid
        assert st["clustered"] is True  # fuse.glusterfs: other hosts use it too
    # a local filesystem is not shared
    local = FileSR(plugin, str(tmp_path / "local"))
    assert v5.sr_stat(local.call("SR.stat"))["clustered"] is False
