"""Shared file-live SRs: one GlusterFS volume FUSE-mounted on two hosts
(tests/integration/hosts.py), each host with its own inventory (host UUID),
/run/zfs-live and NBD server.  What the locks give on that filesystem, then
an SR used from both hosts at once."""
import copy
import json
import os
import signal
import subprocess
import uuid

import pytest

import v5
from conftest import WRAP, Attached, FileSR, wait_for
from hosts import PYTHON, Locker, is_gluster_client, procs_in, try_lock
from test_migration import guest_image  # noqa: F401  (the guest, built once)

MiB = 1 << 20
FLOCK_SYSCALL = 73  # x86_64: what a process blocked in flock(2) shows in /proc/<pid>/syscall


# --- the filesystem ----------------------------------------------------------

def test_hosts_see_one_filesystem(cluster):
    a, b = cluster["a"], cluster["b"]
    assert a.uuid != b.uuid
    assert a.fstype(cluster.mnt) == b.fstype(cluster.mnt) == "fuse.glusterfs"
    a.run(["sh", "-c", f"echo from-a > {cluster.mnt}/hello"])
    assert b.run(["cat", f"{cluster.mnt}/hello"], text=True).stdout == "from-a\n"
    # hosts reach each other (QEMU's migration stream goes host to host)
    server = b.popen([PYTHON, "-c", "import socket, sys\n"
                      "s = socket.create_server(('0.0.0.0', 4567)); print('up', flush=True)\n"
                      "c, _ = s.accept(); c.sendall(open('/etc/xensource-inventory', 'rb')"
                      ".read())"], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "up"
    got = a.run([PYTHON, "-c", "import socket, sys\n"
                 f"c = socket.create_connection(('{b.ip}', 4567))\n"
                 "sys.stdout.buffer.write(c.makefile('rb').read())"], text=True).stdout
    assert f"INSTALLATION_UUID='{b.uuid}'" in got
    server.wait(timeout=30)
    # each host is its own XAPI host (and the test session's overrides are gone)
    for h in (a, b):
        inv = h.run(["cat", "/etc/xensource-inventory"], text=True).stdout
        assert f"INSTALLATION_UUID='{h.uuid}'" in inv
        env = h.run(["env"], text=True).stdout
        assert "ZFS_LIVE_INVENTORY" not in env and "ZFS_LIVE_RUN" not in env


REPLACER = r"""
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(d, ".meta.tmp"), "w") as f:
        f.write(str(i))
        f.flush()
        os.fsync(f.fileno())
    os.rename(os.path.join(d, ".meta.tmp"), os.path.join(d, "meta"))
    print(i, flush=True)
    sys.stdin.readline()
"""

READER = r"""
import sys
for _ in sys.stdin:
    try:
        with open(sys.argv[1]) as f:
            print(f.read(), flush=True)
    except OSError as e:
        print(f"error {e}", flush=True)
"""


def test_a_file_replaced_on_one_host_is_read_new_on_the_other(cluster):
    """What every metadata change relies on: a file written to a temporary,
    fsynced and renamed into place on host a is, from then on, what a new
    open on host b reads (close-to-open consistency).  Fails on a default
    GlusterFS volume (client caches: hosts.VOLUME_OPTIONS)."""
    a, b = cluster["a"], cluster["b"]
    d = f"{cluster.mnt}/{uuid.uuid4().hex[:8]}"
    a.run(["mkdir", d])
    w = a.popen([PYTHON, "-c", REPLACER, d, "10"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
    r = b.popen([PYTHON, "-c", READER, f"{d}/meta"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
    seen = []
    for i in range(10):
        assert w.stdout.readline().strip() == str(i)
        r.stdin.write("read\n")
        r.stdin.flush()
        seen.append(r.stdout.readline().strip())
        w.stdin.write("next\n")
        w.stdin.flush()
    r.stdin.close()
    w.stdin.close()
    r.wait(timeout=30)
    w.wait(timeout=30)
    assert seen == [str(i) for i in range(10)]


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


UPGRADER = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_SH)
print("shared", flush=True)
sys.stdin.readline()
fcntl.flock(fd, fcntl.LOCK_EX)
print("exclusive", flush=True)
fcntl.flock(fd, fcntl.LOCK_UN)
"""


def test_two_hosts_trading_shared_up_to_exclusive_do_not_deadlock(cluster):
    """zl_sr_lock trades LOCK_SH up to LOCK_EX to recover: two hosts may
    do it at once.  flock conversion drops the old lock (Linux), so one
    gets it, then the other; a record-lock upgrade would deadlock."""
    path = f"{cluster.mnt}/lock-upgrade"
    procs = [h.popen([PYTHON, "-c", UPGRADER, path], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True) for h in (cluster["a"], cluster["b"])]
    for p in procs:
        assert p.stdout.readline().strip() == "shared"
    for p in procs:
        p.stdin.write("up\n")
        p.stdin.flush()
    try:
        outs = [p.communicate(timeout=30)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert outs == ["exclusive\n", "exclusive\n"]


def test_a_hosts_locks_go_when_its_client_dies(cluster):
    """A host whose glusterfs client dies (a host crash closes its
    connections) loses its locks: the other hosts can recover.  Not always
    at once: host b's attempt blocked up to 13 s in some runs."""
    c = cluster.hosts.get("c") or cluster.add_host("c")
    path = f"{cluster.mnt}/lock-client-death"
    holder = Locker(c, path)
    assert holder.locked()
    assert not try_lock(cluster["b"], path)
    clients = [p for p in procs_in(c.inodes()) if is_gluster_client(p)]
    assert len(clients) == 1
    os.kill(clients[0], signal.SIGKILL)
    wait_for(lambda: try_lock(cluster["b"], path), "host b to get the lock of the dead client",
             timeout=120)
    holder.kill()
    c.unmount()  # a dead FUSE mount: gone without the client
    c.mount()


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
def shared(cluster):
    """A fresh SR made on host a (in a directory of its own on the shared
    mount: sa.place), and the same SR attached on host b."""
    place = f"{cluster.mnt}/{uuid.uuid4().hex[:8]}"
    cluster["a"].run(["mkdir", place])
    sa = SharedSR(cluster["a"], f"{place}/sr")
    sa.place = place
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
        "SR.probe", configuration={"path": sa.place})]
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


def churn(sr, tag, rounds, kept):
    """Volume changes on one host: create, snapshot, clone, destroy."""
    for i in range(rounds):
        v = sr.create(size=2 * MiB, name=f"{tag}-{i}")
        s = v5.volume(sr.call("Volume.snapshot", key=v["key"]))
        c = v5.volume(sr.call("Volume.clone", key=s["key"]))
        sr.call("Volume.destroy", key=s["key"])
        if i % 2:
            sr.call("Volume.destroy", key=c["key"])
        else:
            kept.append(c["key"])
        kept.append(v["key"])


def test_changes_made_from_both_hosts_at_once_leave_a_consistent_sr(shared):
    import threading
    sa, sb = shared
    kept, errors = [], []

    def worker(sr, tag):
        try:
            churn(sr, tag, 3, kept)
        except BaseException as e:  # reported below, with the SR's state
            errors.append(f"{tag}: {e}")
    threads = [threading.Thread(target=worker, args=(s, f"{s.host.name}{n}"))
               for s in (sa, sb) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    listed = sb.check_consistent()
    assert sorted(v["key"] for v in listed) == sorted(kept)
    assert sorted(v["key"] for v in sa.ls()) == sorted(kept)
    assert len(kept) == 4 * (3 + 2)


def test_metadata_changes_from_both_hosts_at_once_lose_nothing(shared):
    """Volume.set on one volume from both hosts at once: each call reads,
    changes and rewrites the volume's metadata under the volume lock, so
    a lock that does not exclude across hosts, or a read that does not
    see the other host's last rename, loses keys."""
    import threading
    sa, sb = shared
    v = sa.create(name="busy")
    errors = []

    def setter(sr, n):
        try:
            for i in range(n):
                sr.call("Volume.set", key=v["key"], k=f"tags{sr.host.name}{i}", v="x")
        except BaseException as e:
            errors.append(f"{sr.host.name}: {e}")
    threads = [threading.Thread(target=setter, args=(s, 8)) for s in (sa, sb)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    keys = v5.volume(sb.call("Volume.stat", key=v["key"]))["keys"]
    want = {f"tags{h}{i}" for h in "ab" for i in range(8)}
    assert want <= set(keys), f"lost: {sorted(want - set(keys))}"


CRASHES = {  # fault point -> (method, params(v, s)), what survives
    "create:data": ("Volume.create", lambda v, s: dict(name="x", description="",
                                                       size=MiB, sharable=False)),
    "snapshot:data": ("Volume.snapshot", lambda v, s: dict(key=v)),
    "clone:journaled": ("Volume.clone", lambda v, s: dict(key=s)),
    "destroy:unlisted": ("Volume.destroy", lambda v, s: dict(key=s)),
    "resize:committed": ("Volume.resize", lambda v, s: dict(key=v, new_size=8 * MiB)),
}


@pytest.mark.parametrize("point", sorted(CRASHES))
def test_a_crash_on_one_host_is_repaired_by_the_next_call_on_the_other(shared, point):
    sa, sb = shared
    v = sa.create(size=4 * MiB, name="victim")
    sa.write(v["key"], b"precious" * 512, offset=MiB)
    s = v5.volume(sa.call("Volume.snapshot", key=v["key"]))
    before = sorted(x["key"] for x in sa.ls())
    method, params = CRASHES[point]
    res = sa.plugin.run(method, dict(dbg="crash", sr=sa.key, **params(v["key"], s["key"])),
                        env={"ZFS_LIVE_FAULT": point})
    assert res.killed, f"{point}: {method} was not killed (rc={res.rc})"
    records = sa.journal()
    assert records, "the killed call left no intent record"
    # host a's kernel drops the dead process's flocks by an asynchronous
    # FUSE release: what host b sees is the record unlocked, soon after
    for r in records:
        path = f"{sa.key}/.zfs-live/journal/{r}"
        wait_for(lambda: try_lock(sb.host, path), f"host b to see record {r} unlocked")
    listed = sb.check_consistent()  # SR.ls on host b is the next call
    keys = sorted(x["key"] for x in listed)
    if point.startswith("destroy"):
        assert keys == sorted(k for k in before if k != s["key"])  # finished
    else:
        assert keys == before  # rolled back or finished in place
    if point.startswith("resize"):
        assert v5.volume(sb.call("Volume.stat", key=v["key"]))["virtual_size"] == 8 * MiB
    assert sb.read(v["key"], offset=MiB, length=4096) == b"precious" * 512


def changed(sr, a, b):
    """The 64 KiB blocks list_changed_blocks reports between a and b."""
    import base64
    res = sr.call("Volume.list_changed_blocks", key=a, key2=b, offset=0, length=-1)
    raw = base64.b64decode(res["bitmap"])
    return {i for i in range(len(raw) * 8) if raw[i >> 3] & (0x80 >> (i & 7))}


def test_changes_written_on_one_host_are_listed_on_the_other(shared):
    """CBT: enabled on host a, a write through host a's NBD server, the
    changed blocks asked for on host b."""
    sa, sb = shared
    G = 65536
    v = sa.create(size=4 * MiB, name="cbt")
    assert sa.call("Volume.enable_cbt", key=v["key"]) is None
    s1 = v5.volume(sa.call("Volume.snapshot", key=v["key"]))["key"]
    dp = sa.host.datapath()
    at = Attached(sa, v, dp)
    try:
        dp.ok("Datapath.activate", uri=at.uri, domain="1")
        sa.host.run([PYTHON, "-m", "nbd", "-u", at.nbd_uri, "-c",  # nbdsh
                     f"h.pwrite(b'\\xab' * {G}, {5 * G}); h.pwrite(b'z', {40 * G + 7});"
                     "h.flush()"])
        # while host a's NBD server has the volume open
        assert changed(sb, s1, v["key"]) == {5, 40}
    finally:
        dp.ok("Datapath.deactivate", uri=at.uri, domain="1")
        at.detach()
    s2 = v5.volume(sb.call("Volume.snapshot", key=v["key"]))["key"]
    assert changed(sb, s1, s2) == {5, 40}
    assert sb.read(s2, offset=5 * G, length=G) == b"\xab" * G


def test_activation_on_one_host_is_refused_on_the_other(shared):
    sa, sb = shared
    v = sa.create()
    uri = v["uri"][0]
    da, db = sa.host.datapath(), sb.host.datapath()
    assert da.ok("Datapath.activate", uri=uri, domain="1") is None
    err = db.err("Datapath.activate", {"dbg": "t", "uri": uri, "domain": "2"})
    assert err["params"][0] == "Activated_on_another_host"
    db.ok("Datapath.deactivate", uri=uri, domain="2")  # not b's to release
    err = db.err("Datapath.activate", {"dbg": "t", "uri": uri, "domain": "2"})
    assert err["params"][0] == "Activated_on_another_host"
    da.ok("Datapath.deactivate", uri=uri, domain="1")
    assert db.ok("Datapath.activate", uri=uri, domain="2") is None
    err = da.err("Datapath.activate", {"dbg": "t", "uri": uri, "domain": "1"})
    assert err["params"][0] == "Activated_on_another_host"
    db.ok("Datapath.deactivate", uri=uri, domain="2")


# --- a real guest moved between the hosts -----------------------------------------

def test_live_migration_of_a_guest_between_the_hosts(shared, guest_image, tmp_path):
    """A QEMU guest on host a writes checksummed records to its disk, a
    volume of the shared SR attached through a's datapath (NBD: a shared
    SR's volumes never get a local device); it is live-migrated over TCP to
    a QEMU on host b, with a's deactivate and b's activate between the
    migration's completion and cont.  The old source resumed afterwards is
    refused by a's fence (the guest sees an I/O error); b goes on; every
    record reported is on the shared storage."""
    import guest as guestlib
    from test_migration import AFTER, BEFORE, VOL_SIZE, Run, check_all_reported, volume_reader
    sa, sb = shared
    v = sa.create(size=VOL_SIZE, name="guest")
    da, db = sa.host.datapath(), sb.host.datapath()
    run = Run(guest_image, str(tmp_path))
    att_a = Attached(sa, v, da, domain="1")
    try:
        impls = dict((i[0], i[1]) for i in att_a.backend["implementations"])
        assert impls["XenDisk"]["backend_type"] == "qdisk" and "BlockDevice" not in impls
        da.ok("Datapath.activate", uri=att_a.uri, domain="1")
        src = run.guest(att_a, prefix=sa.host.argv([]), name="src")
        boot = src.wait_boot()
        src.wait_records(BEFORE)
        att_b = Attached(sb, v, db, domain="1")
        dst = run.guest(att_b, prefix=sb.host.argv([]), name="dst", incoming=True,
                        records=src.records)
        hand = {}

        def handoff():
            import time
            t0 = time.monotonic()
            da.ok("Datapath.deactivate", uri=att_a.uri, domain="1")
            db.ok("Datapath.activate", uri=att_b.uri, domain="1")
            hand["s"] = time.monotonic() - t0
        src.migrate_to(dst, handoff=handoff, uri=f"tcp:{sb.host.ip}:0")
        dst.wait_first_record_after_migration()
        src.resume()  # split brain attempt from the old host
        _, line = src.records.wait_line(r"ERR \d+ \d+", who="src", timeout=60)
        target = src.records.last() + AFTER
        src.records.wait(lambda: max(src.records.recs) >= target, f"record {target}", 120,
                         fail_on_error=False)
        assert [e for e in src.records.errors() if e[0] == "dst"] == []
        run.stop()
        att_a.detach()
        db.ok("Datapath.deactivate", uri=att_b.uri, domain="1")
        att_b.detach()
        idx = check_all_reported(src.records)
        on_a = [i for i in idx if src.records.recs[i][1] == "src"]
        on_b = [i for i in idx if src.records.recs[i][1] == "dst"]
        assert len(on_a) >= BEFORE and len(on_b) >= AFTER and max(on_a) < min(on_b)
        n = guestlib.verify(volume_reader(sa, v), idx, run.run_id)
        print(f"\nmigration (shared file-live SR on GlusterFS, hosts in namespaces, TCP): "
              f"boot {boot:.2f} s, handoff {hand['s']:.3f} s, the old source's {line!r} "
              f"refused, {len(on_a)} records on a, {len(on_b)} on b, {n} verified", flush=True)
    finally:
        run.stop()


def test_a_host_killed_while_active_is_taken_over(shared, guest_image, tmp_path):
    import guest as guestlib
    from test_migration import BEFORE, VOL_SIZE, Run, volume_reader
    sa, sb = shared
    v = sa.create(size=VOL_SIZE, name="guest")
    da, db = sa.host.datapath(), sb.host.datapath()
    run = Run(guest_image, str(tmp_path))
    att_a = Attached(sa, v, da, domain="1")
    try:
        da.ok("Datapath.activate", uri=att_a.uri, domain="1")
        src = run.guest(att_a, prefix=sa.host.argv([]), name="src")
        src.wait_boot()
        src.wait_records(BEFORE)
        src.kill()  # host a dies: its guest and its NBD server
        pid = int(sa.host.run(["cat", "/run/zfs-live/nbd.pid"], text=True).stdout)
        sa.host.run(["kill", "-9", str(pid)])
        reported = src.records.indices()
        att_b = Attached(sb, v, db, domain="2")
        err = db.err("Datapath.activate", {"dbg": "t", "uri": att_b.uri, "domain": "2"})
        assert err["params"][0] == "Activated_on_another_host"
        r = sb.host.cli("vol", "takeover", sb.key, v["key"], "--domain", "2")
        assert f"taken over from host {sa.host.uuid}" in r.stderr.decode(), r.stderr
        n = guestlib.verify(volume_reader(sb, v), reported, run.run_id)
        again = guestlib.Guest(run.image, att_b.socket, att_b.export, run.workdir,
                               prefix=sb.host.argv([]), name="again", run_id=run.run_id + 1)
        run.guests.append(again)
        again.start()
        again.wait_boot()
        again.wait_records(10)
        run.stop()
        db.ok("Datapath.deactivate", uri=att_b.uri, domain="2")
        att_b.detach()
        print(f"\nhost a killed while active (GlusterFS): {n} reported records verified "
              f"after the takeover on b; the VM restarted on b wrote 10 more", flush=True)
    finally:
        run.stop()


def test_an_aborted_migration_leaves_the_guest_writing_on_its_host(shared, guest_image,
                                                                     tmp_path):
    """migrate_cancel while the migration to host b is active: the guest
    stays on host a and keeps writing (a's activation untouched), b's QEMU
    never ran nor wrote, b detaches; every record is on the storage."""
    import guest as guestlib
    from test_migration import AFTER, BEFORE, VOL_SIZE, WRITES, Run, check_all_reported
    from test_migration import volume_reader
    sa, sb = shared
    v = sa.create(size=VOL_SIZE, name="guest")
    da, db = sa.host.datapath(), sb.host.datapath()
    run = Run(guest_image, str(tmp_path))
    att_a = Attached(sa, v, da, domain="1")
    try:
        da.ok("Datapath.activate", uri=att_a.uri, domain="1")
        src = run.guest(att_a, prefix=sa.host.argv([]), name="src")
        src.wait_boot()
        src.wait_records(BEFORE)
        att_b = Attached(sb, v, db, domain="1")
        dst = run.guest(att_b, prefix=sb.host.argv([]), name="dst", incoming=True,
                        records=src.records)
        src.start_migration(dst, uri=f"tcp:{sb.host.ip}:0", max_bandwidth=1 << 20)
        src.wait_migration(states=("active",))
        src.wait_record(src.last_record() + 10)  # the guest runs on a meanwhile
        src.cancel_migration()
        assert src.status() == "running"
        dst.stop()
        att_b.detach()
        src.wait_records(src.last_record() + 1 + AFTER)
        run.stop()
        da.ok("Datapath.deactivate", uri=att_a.uri, domain="1")
        att_a.detach()
        assert not any(w == "dst" for _, w in src.records.recs.values())
        assert not [r for r in dst.nbd_requests() if r[1] in WRITES]
        idx = check_all_reported(src.records)
        n = guestlib.verify(volume_reader(sa, v), idx, run.run_id)
        print(f"\naborted migration a -> b (GlusterFS): {n} records verified, all written "
              f"on a", flush=True)
    finally:
        run.stop()


# --- a shared zfs-live SR seen from hosts in their own namespaces ----------------

def test_live_migration_on_a_shared_zfs_sr_between_namespaced_hosts(cluster, guest_image,
                                                                      tmp_path,
                                                                      tmp_path_factory):
    """The storage host S (the cluster's storage network namespace, 10.213.0.1;
    the machine's zfs-fuse pool) serves a zfs-live SR over NBD with TLS;
    hosts a and b, each in its own network and mount namespaces with its own
    inventory and PSK, use it remotely: every call runs on S, each QEMU
    reaches the volume through its host's relay.  A live migration a -> b
    over TCP in xenopsd's order; the old source resumed afterwards is refused
    by S's fence; every record verified on S."""
    import guest as guestlib
    from conftest import CLI, zfs_cmd, zfs_pool
    from test_migration import AFTER, BEFORE, VOL_SIZE, Run, check_all_reported
    pool = zfs_pool(tmp_path_factory)
    a, b = cluster["a"], cluster["b"]
    s_uuid, s_run = str(uuid.uuid4()), str(tmp_path / "run-s")
    os.makedirs(s_run, mode=0o700)
    s_env = ["env", f"ZFS_LIVE_RUN={s_run}", f"ZFS_LIVE_HOST_UUID={s_uuid}"]
    s_prefix = ["nsenter", f"--net=/run/netns/{cluster.storage.netns}", *s_env]
    keys = str(tmp_path / "keys.psk")
    with open(keys, "w") as f:
        for h in (a, b):
            h.psk = os.urandom(32).hex()
            f.write(f"{h.uuid}:{h.psk}\n")
            with open(h.path("/run/zfs-live/host.psk"), "w") as hf:
                hf.write(f"{h.uuid}:{h.psk}\n")
    port = 10809
    subprocess.run([*s_prefix, *WRAP, CLI, "serve", "--daemon", "--socket",
                    f"{s_run}/nbd.sock", "--tcp", f"10.213.0.1:{port}", "--tls", "require",
                    "--tls-psk", keys, "--pidfile", f"{s_run}/nbd.pid"], check=True, timeout=60)
    ds = f"{pool}/ns{uuid.uuid4().hex[:6]}"
    run = Run(guest_image, str(tmp_path))
    sp = a.plugin("zfs-live")
    sp.wrap = [*s_prefix, *WRAP]  # the storage host's own plugin
    pa, pb = a.plugin("zfs-live"), b.plugin("zfs-live")
    da, db = a.datapath(), b.datapath()
    try:
        config = {"path": ds, "storage-host": f"10.213.0.1:{port}",
                  "storage-host-uuid": s_uuid, "tls-psk": "/run/zfs-live/host.psk"}
        out = pa.ok("SR.create", uuid=str(uuid.uuid4()), configuration=config,
                    name="shared zfs", description="")  # from host a: runs on S
        key = sp.ok("SR.attach", configuration=out)
        assert pa.ok("SR.attach", configuration=out) == key
        assert pb.ok("SR.attach", configuration=out) == key
        assert pb.ok("SR.stat", sr=key)["clustered"] is True
        v = v5.volume(pa.ok("Volume.create", sr=key, name="guest", description="",
                            size=VOL_SIZE, sharable=False))
        uri = v["uri"][0]
        att_a = Attached(None, v, da, domain="1")
        assert att_a.socket.startswith("/run/zfs-live/remote/")  # a's relay, in a
        da.ok("Datapath.activate", uri=uri, domain="1")
        src = run.guest(att_a, prefix=a.argv([]), name="src")
        boot = src.wait_boot()
        src.wait_records(BEFORE)
        att_b = Attached(None, v, db, domain="1")
        dst = run.guest(att_b, prefix=b.argv([]), name="dst", incoming=True,
                        records=src.records)
        hand = {}

        def handoff():
            import time
            t0 = time.monotonic()
            da.ok("Datapath.deactivate", uri=uri, domain="1")
            db.ok("Datapath.activate", uri=uri, domain="1")
            hand["s"] = time.monotonic() - t0
        src.migrate_to(dst, handoff=handoff, uri=f"tcp:{b.ip}:0")
        dst.wait_first_record_after_migration()
        src.resume()
        _, line = src.records.wait_line(r"ERR \d+ \d+", who="src", timeout=60)
        target = src.records.last() + AFTER
        src.records.wait(lambda: max(src.records.recs) >= target, f"record {target}", 120,
                         fail_on_error=False)
        assert [e for e in src.records.errors() if e[0] == "dst"] == []
        run.stop()
        att_a.detach()
        db.ok("Datapath.deactivate", uri=uri, domain="1")
        att_b.detach()
        idx = check_all_reported(src.records)
        on_a = [i for i in idx if src.records.recs[i][1] == "src"]
        on_b = [i for i in idx if src.records.recs[i][1] == "dst"]
        assert len(on_a) >= BEFORE and len(on_b) >= AFTER and max(on_a) < min(on_b)
        data = subprocess.run([*s_prefix, *WRAP, CLI, "vol", "read", key, v["key"]],
                              capture_output=True, check=True, timeout=120).stdout
        n = guestlib.verify(lambda off, ln: data[off:off + ln], idx, run.run_id)
        pa.ok("Volume.destroy", sr=key, key=v["key"])
        print(f"\nmigration (shared zfs-live SR, S and hosts a, b in their own namespaces, "
              f"TLS between them): boot {boot:.2f} s, handoff {hand['s']:.3f} s, the old "
              f"source's {line!r} refused, {len(on_a)} records on a, {len(on_b)} on b, {n} "
              f"verified on S", flush=True)
    finally:
        run.stop()
        try:
            pid = int(open(f"{s_run}/nbd.pid").read())
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not os.path.exists(f"/proc/{pid}"), "S's server to stop")
        except (OSError, ValueError):
            pass
        zfs_cmd("zfs", "destroy", "-r", ds, check=False)
