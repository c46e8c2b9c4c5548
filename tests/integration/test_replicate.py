"""Replication between hosts (issue 14 item 2): `zfs-live replicate` and
`vol copy --to-host`, over the destination host's NBD server with TLS and
the sending host's PSK.

Host A sends, host B receives: each has its own host UUID, run directory
and configuration directory (A's PSK in <conf>/tls/host.psk; B's server
knows A's key only).  The tests run them on this machine with B's server
on 127.0.0.1, and across two network namespaces joined by a veth pair
(the interrupted-sender tests).  Data is compared byte for byte; the
destination is checked after every interruption: a full copy cut off
leaves no volume, an incremental one leaves the replica as the last
complete replication made it, and the next run completes from there."""
import hashlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import uuid as uuidlib

import pytest

from conftest import CLI, WRAP, FileSR, ZfsSR, gone, sanitizer_clean, wait_for, zfs_pool

MiB = 1 << 20
A, B, C = (f"{c * 8}-0000-4000-8000-{c * 12}" for c in "abc")
NET = "10.215.0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    def __init__(self, uuid, tmp, ns=None):
        self.uuid, self.ns = uuid, ns
        self.run = str(tmp / f"run-{uuid[:1]}")
        self.conf = str(tmp / f"etc-{uuid[:1]}")
        os.makedirs(os.path.join(self.conf, "tls"), exist_ok=True)
        os.makedirs(self.run, exist_ok=True)
        self.key = os.urandom(32).hex()
        with open(os.path.join(self.conf, "tls", "host.psk"), "w") as f:
            f.write(f"{uuid}:{self.key}\n")
        self.env = {**os.environ, "ZFS_LIVE_HOST_UUID": uuid, "ZFS_LIVE_RUN": self.run,
                    "ZFS_LIVE_CONF_DIR": self.conf}
        self.env.pop("ZFS_LIVE_FAULT", None)

    def argv(self, *args):
        # the network namespace only: mounts (zfs-fuse's) stay the machine's
        pre = ["nsenter", f"--net=/run/netns/{self.ns}"] if self.ns else []
        return [*pre, *WRAP, CLI, *args]

    def cli(self, *args, check=True, fault=None, input=None):
        env = dict(self.env, **({"ZFS_LIVE_FAULT": fault} if fault else {}))
        p = subprocess.run(self.argv(*args), capture_output=True, env=env, timeout=300,
                           input=input)
        if not fault:
            sanitizer_clean(p.stderr.decode(errors="replace"))
        if check:
            assert p.returncode == 0, (args, p.stderr.decode(errors="replace"))
        return p

    def json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def vols(self, sr):
        """The volumes B's users see (this call also runs B's recovery)."""
        return {v["key"]: v for v in self.json("vol", "list", sr.key)}

    def digest(self, sr, key):
        return hashlib.sha256(self.cli("vol", "read", sr.key, key).stdout).hexdigest()


class Server:
    """B's NBD server: TLS required, knows A's PSK (and C's where asked)."""

    def __init__(self, host, tmp, ip="127.0.0.1", knows=()):
        self.host, self.ip, self.port = host, ip, free_port()
        self.keys = str(tmp / f"keys-{host.uuid[:1]}.psk")
        with open(self.keys, "w") as f:
            for h in knows:
                f.write(f"{h.uuid}:{h.key}\n")
        self.pidfile = os.path.join(host.run, "nbd.pid")
        self.addr = f"{ip}:{self.port}"

    def start(self, fault=None):
        env = dict(self.host.env, **({"ZFS_LIVE_FAULT": fault} if fault else {}))
        subprocess.run(self.host.argv("serve", "--daemon", "--socket",
                                      os.path.join(self.host.run, "nbd.sock"), "--tcp",
                                      self.addr, "--tls", "require", "--tls-psk", self.keys,
                                      "--pidfile", self.pidfile),
                       env=env, check=True, timeout=30)
        self.pid = int(open(self.pidfile).read())
        return self

    def alive(self):
        return not gone(self.pid)

    def stop(self):
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            wait_for(lambda: gone(self.pid), f"B's server {self.pid} to stop")


@pytest.fixture(params=["file", "zfs"])
def pair(request, plugin, zplugin, tmp_path, tmp_path_factory):
    """Host A with an SR holding a volume, host B with an SR and a server."""
    tag = uuidlib.uuid4().hex[:6]
    if request.param == "file":
        src, dst = FileSR(plugin, str(tmp_path / "a")), FileSR(plugin, str(tmp_path / "b"))
    else:
        pool = zfs_pool(tmp_path_factory)
        src, dst = ZfsSR(zplugin, f"{pool}/ra{tag}"), ZfsSR(zplugin, f"{pool}/rb{tag}")
    a, b = Host(A, tmp_path), Host(B, tmp_path)
    srv = Server(b, tmp_path, knows=[a]).start()
    yield request.param, a, b, srv, src, dst
    srv.stop()


def fill(sr, key, size, seed, chunks=12):
    """Scattered data: chunks of 64 KiB .. 1 MiB at random offsets."""
    rnd = random.Random(seed)
    for _ in range(chunks):
        n = rnd.choice([64 << 10, 256 << 10, MiB])
        off = rnd.randrange(0, (size - n) // 4096) * 4096
        sr.write(key, rnd.randbytes(n), offset=off)


def replicate(a, src, key, srv, dst, *extra, check=True, fault=None):
    p = a.cli("replicate", src.key, key, "--to-host", srv.addr, "--to", dst.key, "--json",
              *extra, check=check, fault=fault)
    return json.loads(p.stdout) if check else p


def replicas(b, dst):
    vs = b.vols(dst)
    point = lambda v: v["name"].endswith("(replica point)")  # noqa: E731
    return ({k: v for k, v in vs.items() if not point(v)},
            {k: v for k, v in vs.items() if point(v)})


def points_of(a, src, key):
    return [v for v in a.vols(src).values() if "(replication point for " in v["name"]]


def test_full_then_incremental(pair):
    kind, a, b, srv, src, dst = pair
    size = 96 * MiB
    v = src.create(size=size, name="web", description="the web server")
    fill(src, v["key"], size, seed=1)
    r1 = replicate(a, src, v["key"], srv, dst)
    assert r1["mode"] == "full" and r1["from"] is None
    vols, snaps = replicas(b, dst)
    assert list(vols) == [r1["key"]]
    rep = vols[r1["key"]]
    assert rep["name"] == "web" and rep["virtual_size"] == size
    assert not rep["read_write"]  # only replication changes a replica
    p = b.cli("vol", "write", dst.key, r1["key"], check=False, input=b"x")
    assert p.returncode == 1 and b"read-only" in p.stderr, p.stderr
    assert b.digest(dst, r1["key"]) == src.digest(v["key"])
    # sparse: only the data travelled and was allocated
    data = r1["sent"]
    assert data <= 12 * MiB, r1
    if kind == "file":
        assert os.stat(dst.img(r1["key"])).st_blocks * 512 <= data + MiB
    # one replica point on B, one replication point on A
    assert len(snaps) == 1
    [point] = points_of(a, src, v["key"])

    # changes: new data, a range zeroed, the volume grown
    src.write(v["key"], os.urandom(3 * MiB), offset=40 * MiB)
    src.write(v["key"], bytes(MiB), offset=0)
    src.call("Volume.resize", key=v["key"], new_size=128 * MiB)
    src.write(v["key"], os.urandom(MiB), offset=127 * MiB)
    r2 = replicate(a, src, v["key"], srv, dst)
    assert r2["mode"] == "incremental" and r2["key"] == r1["key"], r2
    assert r2["from"] == point["uuid"]
    assert r2["sent"] <= 4 * MiB + 64 * 1024 * 8, r2  # the changes, not the volume
    vols, snaps = replicas(b, dst)
    assert list(vols) == [r1["key"]] and vols[r1["key"]]["virtual_size"] == 128 * MiB
    assert b.digest(dst, r1["key"]) == src.digest(v["key"])
    assert len(snaps) == 1 and len(points_of(a, src, v["key"])) == 1
    # nothing changed: an incremental run with nothing to send
    r3 = replicate(a, src, v["key"], srv, dst)
    assert r3["mode"] == "incremental" and r3["sent"] == 0
    assert b.digest(dst, r1["key"]) == src.digest(v["key"])


def test_copy_to_host(pair):
    kind, a, b, srv, src, dst = pair
    v = src.create(size=32 * MiB, name="golden", description="template")
    fill(src, v["key"], 32 * MiB, seed=2, chunks=6)
    snap = src.call("Volume.snapshot", key=v["key"])
    p = a.cli("vol", "copy", src.key, v["key"], "--to-host", srv.addr, "--to", dst.key,
              "--name", "copy of golden", "--json")
    c = json.loads(p.stdout)
    assert c["mode"] == "full" and c["name"] == "copy of golden"
    vols, snaps = replicas(b, dst)
    assert list(vols) == [c["key"]] and snaps == {}  # a plain copy: no replica point
    assert vols[c["key"]]["read_write"]
    assert b.digest(dst, c["key"]) == src.digest(v["key"])
    # a snapshot is copied as it is; nothing is left on A either way
    c2 = json.loads(a.cli("vol", "copy", src.key, snap["key"], "--to-host", srv.addr,
                          "--to", dst.key, "--json").stdout)
    assert b.digest(dst, c2["key"]) == src.digest(snap["key"])
    assert sorted(a.vols(src)) == sorted([v["key"], snap["key"]])


def test_refusals_change_nothing(pair, tmp_path):
    kind, a, b, srv, src, dst = pair
    v = src.create(size=16 * MiB)
    src.write(v["key"], os.urandom(MiB))
    before_a = sorted(a.vols(src))
    # a host B's server does not know
    c = Host(C, tmp_path)
    p = c.cli("replicate", src.key, v["key"], "--to-host", srv.addr, "--to", dst.key,
              check=False)
    assert p.returncode == 1 and b"TLS" in p.stderr or b"handshake" in p.stderr, p.stderr
    # an SR B does not have
    p = a.cli("replicate", src.key, v["key"], "--to-host", srv.addr, "--to",
              dst.key + "-nope", check=False)
    assert p.returncode == 1 and b"does not exist" in p.stderr, p.stderr
    # nothing listening
    p = a.cli("replicate", src.key, v["key"], "--to-host", f"127.0.0.1:{free_port()}",
              "--to", dst.key, check=False)
    assert p.returncode == 1 and b"refused" in p.stderr.lower(), p.stderr
    assert b.vols(dst) == {} and sorted(a.vols(src)) == before_a
    assert not a.vols(src)[v["key"]]["cbt_enabled"]  # the failed runs turned it off
    # plain NBD without TLS: the option is refused before anything happens
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        assert s.recv(18)[:8] == b"NBDMAGIC"
        s.sendall(struct.pack(">I", 3))
        body = json.dumps({"sr": dst.key, "source": {}}).encode()
        s.sendall(struct.pack(">QII", 0x49484156454F5054, 0x5a4c0002, len(body)) + body)
        h = s.recv(20)
        assert struct.unpack(">QIII", h)[2] == (1 << 31) + 5  # NBD_REP_ERR_TLS_REQD
    assert b.vols(dst) == {}
    # a replica in use on B takes no changes
    r = replicate(a, src, v["key"], srv, dst)
    src.write(v["key"], os.urandom(MiB), offset=4 * MiB)
    b.cli("vol", "share", dst.key, r["key"], "--readonly")
    try:
        before = b.digest(dst, r["key"])
        p = replicate(a, src, v["key"], srv, dst, check=False)
        assert p.returncode == 1 and b"in use" in p.stderr or b"attached" in p.stderr, p
        assert b.digest(dst, r["key"]) == before
    finally:
        b.cli("vol", "unshare", dst.key, r["key"])
    assert len(points_of(a, src, v["key"])) == 1  # the failed run's point went


# --- interruptions --------------------------------------------------------------


@pytest.fixture
def netns_pair(pair, tmp_path):
    """The same, with A and B in two network namespaces (veth 10.215.0.1-2)."""
    kind, a, b, srv, src, dst = pair
    srv.stop()
    tag = os.getpid() % 100000
    na, nb = f"zlra{tag}", f"zlrb{tag}"
    run = lambda *x: subprocess.run(x, check=True, capture_output=True)  # noqa: E731
    made = []
    try:
        for ns in (na, nb):
            run("ip", "netns", "add", ns)
            made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", na, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", nb)
        run("ip", "-n", na, "addr", "add", f"{NET}.1/24", "dev", "eth0")
        run("ip", "-n", nb, "addr", "add", f"{NET}.2/24", "dev", "eth0")
        run("ip", "-n", na, "link", "set", "eth0", "up")
        run("ip", "-n", nb, "link", "set", "eth0", "up")
        a.ns, b.ns = na, nb
        srv2 = Server(b, tmp_path, ip=f"{NET}.2", knows=[a]).start()
        yield kind, a, b, srv2, src, dst
        srv2.stop()
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert na not in left and nb not in left


def test_sender_killed_across_namespaces(netns_pair):
    """Kill the sender in the middle, on the first run (full) and a later
    one (incremental): B shows nothing half-received, and the next run
    completes from where the last complete one left the replica."""
    kind, a, b, srv, src, dst = netns_pair
    size = 64 * MiB
    v = src.create(size=size, name="db")
    src.write(v["key"], os.urandom(16 * MiB), offset=8 * MiB)
    # the first run, killed after its first chunk: no volume on B
    p = replicate(a, src, v["key"], srv, dst, check=False, fault="replicate:sent")
    assert p.returncode == -signal.SIGKILL, p
    wait_for(lambda: b.vols(dst) == {}, "B to drop the half-received copy")
    assert srv.alive()
    r1 = replicate(a, src, v["key"], srv, dst)
    assert r1["mode"] == "full"
    good = b.digest(dst, r1["key"])
    assert good == src.digest(v["key"])
    # a later run, killed in the middle of the changes
    src.write(v["key"], os.urandom(12 * MiB), offset=30 * MiB)
    p = replicate(a, src, v["key"], srv, dst, check=False, fault="replicate:sent")
    assert p.returncode == -signal.SIGKILL

    def reverted():
        vols, _ = replicas(b, dst)
        p = b.cli("vol", "read", dst.key, r1["key"], check=False)
        if p.returncode != 0:  # refused while B puts it back: never half-received data
            assert b"try again when the replication has finished" in p.stderr, p.stderr
            return False
        return list(vols) == [r1["key"]] and hashlib.sha256(p.stdout).hexdigest() == good
    wait_for(reverted, "B to put the replica back as the last complete run made it")
    r2 = replicate(a, src, v["key"], srv, dst)
    assert r2["mode"] == "incremental" and r2["key"] == r1["key"]
    assert 12 * MiB <= r2["sent"] <= 13 * MiB, r2
    assert b.digest(dst, r1["key"]) == src.digest(v["key"])
    # A's points: the killed runs' were offered and then removed
    assert len(points_of(a, src, v["key"])) == 1
    _, snaps = replicas(b, dst)
    assert len(snaps) == 1


@pytest.mark.parametrize("point", ["replica:receiving", "replica:data", "replica:received",
                                   "replica:committed"])
def test_receiver_killed(pair, point):
    """B's server dies at each step of an incremental run; the next call on
    B's SR repairs it (reverted, or kept when it was committed), and the
    next run completes."""
    kind, a, b, srv, src, dst = pair
    v = src.create(size=32 * MiB, name="app")
    src.write(v["key"], os.urandom(4 * MiB), offset=MiB)
    r1 = replicate(a, src, v["key"], srv, dst)
    good = b.digest(dst, r1["key"])
    src.write(v["key"], os.urandom(3 * MiB), offset=20 * MiB)
    want = src.digest(v["key"])
    srv.stop()
    srv.start(fault=point)
    p = replicate(a, src, v["key"], srv, dst, check=False)
    assert p.returncode == 1, p
    wait_for(lambda: not srv.alive(), "B's server to die at " + point)
    vols, snaps = replicas(b, dst)  # B's next call: recovery
    assert list(vols) == [r1["key"]]
    got = b.digest(dst, r1["key"])
    assert got == (want if point == "replica:committed" else good), point
    srv.start()
    r2 = replicate(a, src, v["key"], srv, dst)
    assert r2["key"] == r1["key"] and b.digest(dst, r1["key"]) == want
    vols, snaps = replicas(b, dst)
    assert list(vols) == [r1["key"]] and len(snaps) == 1, snaps
    assert len(points_of(a, src, v["key"])) == 1
