#!/usr/bin/python3
"""bench/nbd.py: the zfs-live NBD server against nbdkit and qemu-nbd.

One 1 GiB raw file of random data (a file-live volume), served at the same
time by the three servers over Unix sockets:

  zfs-live  zfs-live serve               (buffered I/O through the page
                                          cache, io_uring for reads,
                                          fsync on FLUSH/FUA)
  nbdkit    nbdkit -U S -t 16 file IMG   (page cache, fsync on FLUSH)
  qemu-nbd  qemu-nbd -f raw --aio=io_uring --cache=writeback
            --persistent --shared=16     (page cache, fsync on FLUSH)

Cache settings are equal: all three go through the page cache and make
data durable only on FLUSH/FUA.  The file is read once first so that every
server starts from a warm cache.  In each round the servers take turns on
every workload (alternating, so drift hits all alike):

  nbdcopy URI null:            sequential read, 1 GiB (MiB/s)
  nbdcopy SRC URI              sequential write, 1 GiB (MiB/s)
  fio nbd 4k randread  QD32    (IOPS)
  fio nbd 4k randwrite QD32    (IOPS)
  fio nbd 64k read     QD16    (MiB/s)
  nbdcopy over TLS-PSK read    (MiB/s; each server with --tls=require)
  fio nbd 4k randread, 100 and 1,000 clients at QD1 each (one connection
      per fio thread): total IOPS and p99 completion latency (issue 16)

plus fio psync directly on the file as the ceiling.  Medians over the
rounds, [min-max], and the ratios to each peer.  Targets (issue 4):
>= 1.2x nbdkit on 4k random read and write IOPS, >= 1.0x nbdkit on
sequential throughput, >= 2x nbdkit's TLS throughput.  This script
reports; it does not fail a build (timings are not tests).  The data
each server returns is checked (sha256) before anything is timed.

Before the rounds, the cost of 1,000 idle connections to each server
(threads and RSS of its process, after they settled)."""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

SIZE = 1 << 30
MiB = 1 << 20
TOOLS = ["nbdkit", "qemu-nbd", "nbdcopy", "nbdinfo", "fio", "psktool"]


def run(argv, **kw):
    kw.setdefault("check", True)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.run(argv, **kw)


def wait_socket(path, proc, what):
    for _ in range(200):
        if os.path.exists(path):
            return
        if proc.poll() is not None:
            sys.exit(f"bench/nbd: {what} exited: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    sys.exit(f"bench/nbd: {what} did not listen on {path}")


class Server:
    def __init__(self, name, uri, tls_uri, procs):
        self.name, self.uri, self.tls_uri, self.procs = name, uri, tls_uri, procs


def start(argv, sock, what, env=None):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    wait_socket(sock, p, what)
    return p


def make_volume(zl, work, env):
    """A file-live SR with one 1 GiB volume full of random data."""
    srdir = os.path.join(work, "sr")
    os.mkdir(srdir)
    run([zl, "sr", "create", "--type", "file-live", "--path", srdir], env=env)
    run([zl, "vol", "create", srdir, "--name", "bench", "--size", "1G", "--key", "bench"],
        env=env)
    img = os.path.join(srdir, "bench.img")
    assert os.path.getsize(img) == SIZE, img
    fill_random(img)
    return srdir, img


def fill_random(path):
    """SIZE bytes of random data, on disk (no holes for block status)."""
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        for _ in range(SIZE // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
        f.flush()
        os.fsync(f.fileno())


def start_servers(zl, work, srdir, img, env, baseline=None):
    """Each server twice: plain, and TLS-PSK required.  baseline: another
    zfs-live binary (an earlier build) serving the same export, for a
    same-run comparison of two builds."""
    psk = os.path.join(work, "keys.psk")
    run(["psktool", "-u", "alice", "-p", psk])
    qdir = os.path.join(work, "qemu-psk")  # qemu wants <dir>/keys.psk
    os.mkdir(qdir)
    shutil.copy(psk, os.path.join(qdir, "keys.psk"))
    out = run([zl, "vol", "export", srdir, "bench"], env=env).stdout.decode().strip()
    export = out.split("///", 1)[1].split("?", 1)[0]
    servers = []

    s1, s2 = os.path.join(work, "zl.sock"), os.path.join(work, "zl-tls.sock")
    p1 = start([zl, "serve", "--socket", s1], s1, "zfs-live serve", env)
    p2 = start([zl, "serve", "--socket", s2, "--tls", "require", "--tls-psk", psk,
                "--pidfile", os.path.join(work, "zl-tls.pid")], s2, "zfs-live serve --tls", env)
    servers.append(Server("zfs-live", f"nbd+unix:///{export}?socket={s1}",
                          f"nbds+unix://alice@/{export}?socket={s2}&tls-psk-file={psk}",
                          [p1, p2]))
    if baseline:
        s1, s2 = os.path.join(work, "base.sock"), os.path.join(work, "base-tls.sock")
        p1 = start([baseline, "serve", "--socket", s1], s1, "baseline serve", env)
        p2 = start([baseline, "serve", "--socket", s2, "--tls", "require", "--tls-psk", psk,
                    "--pidfile", os.path.join(work, "base-tls.pid")], s2,
                   "baseline serve --tls", env)
        servers.append(Server("baseline", f"nbd+unix:///{export}?socket={s1}",
                              f"nbds+unix://alice@/{export}?socket={s2}&tls-psk-file={psk}",
                              [p1, p2]))

    s1, s2 = os.path.join(work, "nbdkit.sock"), os.path.join(work, "nbdkit-tls.sock")
    p1 = start(["nbdkit", "-f", "-U", s1, "-t", "16", "file", img], s1, "nbdkit")
    p2 = start(["nbdkit", "-f", "-U", s2, "-t", "16", "--tls=require", f"--tls-psk={psk}",
                "file", img], s2, "nbdkit --tls")
    servers.append(Server("nbdkit", f"nbd+unix:///?socket={s1}",
                          f"nbds+unix://alice@/?socket={s2}&tls-psk-file={psk}", [p1, p2]))

    s1, s2 = os.path.join(work, "qemu.sock"), os.path.join(work, "qemu-tls.sock")
    q = ["qemu-nbd", "-f", "raw", "--persistent", "--shared=0", "--cache=writeback",
         "--aio=io_uring"]
    p1 = start(q + ["-k", s1, img], s1, "qemu-nbd")
    p2 = start(q + ["-k", s2, "--object",
                    f"tls-creds-psk,id=tls0,endpoint=server,dir={qdir}",
                    "--tls-creds=tls0", img], s2, "qemu-nbd --tls")
    servers.append(Server("qemu-nbd", f"nbd+unix:///?socket={s1}",
                          f"nbds+unix://alice@/?socket={s2}&tls-psk-file={psk}", [p1, p2]))
    return servers


def pct(job, rw, p):
    """A completion latency percentile of job, in ms."""
    return job[rw]["clat_ns"]["percentile"][f"{p:.6f}"] / 1e6


def clients(n):
    """n connections at QD1 each doing 4k random reads: (IOPS, p99 ms)."""
    def fn(s, a):
        try:
            job = fio(["--rw=randread", "--bs=4k", "--iodepth=1", f"--numjobs={n}",
                       "--thread", "--percentile_list=99"], a.runtime, s.uri)
        except subprocess.CalledProcessError as e:  # a server that turns clients away
            err = [x for x in e.stderr.decode(errors="replace").splitlines()
                   if "connected to NBD" not in x]
            print(f"bench/nbd: {s.name}, {n} clients: fio failed: "
                  f"{err[0] if err else e}", file=sys.stderr)
            return (float("nan"), float("nan"))
        return (iops(job, "read"), pct(job, "read", 99))
    return fn


def recv_exact(s, n):
    """n bytes from s (MSG_WAITALL does not wait on a socket with a timeout)."""
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError(f"the server closed after {len(b)} of {n} bytes")
        b += c
    return b


def go(path, export):
    """A plain client through NBD_OPT_GO over a Unix socket, left idle."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    recv_exact(s, 18)
    name = export.encode()
    s.sendall(struct.pack(">I", 3) + b"IHAVEOPT" + struct.pack(">II", 7, 4 + len(name) + 2) +
              struct.pack(">I", len(name)) + name + b"\0\0")
    while True:
        _, _, rtype, rlen = struct.unpack(">QIII", recv_exact(s, 20))
        if rlen:
            recv_exact(s, rlen)
        if rtype == 1:
            return s
        if rtype != 3:
            raise OSError(f"GO refused ({rtype:#x})")


def proc_cost(pid):
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(status["Threads"]), int(status["VmRSS"].split()[0]) / 1024


def idle_cost(servers, n=1000):
    """Threads and RSS of each plain server process with n idle clients."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"\n{n} idle connections (Unix socket, through NBD_OPT_GO, then silent):")
    print(f"{'server':12}{'threads':>16}{'RSS MiB':>20}")
    for s in servers:
        sock = s.uri.split("socket=")[1]
        export = s.uri.split("///")[1].split("?")[0]
        pid = s.procs[0].pid
        t0, r0 = proc_cost(pid)
        conns = []
        try:
            for _ in range(n):
                conns.append(go(sock, export))
        except (OSError, EOFError) as e:
            print(f"{s.name:12}  refused connection {len(conns) + 1}: {e!r}")
            continue
        finally:
            if len(conns) < n:
                for c in conns:
                    c.close()
        time.sleep(3)  # a measurement: let per-connection threads park or settle
        t1, r1 = proc_cost(pid)
        for c in conns:
            c.close()
        print(f"{s.name:12}{f'{t0} -> {t1}':>16}{f'{r0:.0f} -> {r1:.0f}':>20}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def timed(argv):
    t0 = time.perf_counter()
    run(argv)
    return time.perf_counter() - t0


def fio(args, runtime, uri=None, filename=None):
    argv = ["fio", "--name=bench", "--output-format=json", "--time_based",
            f"--runtime={runtime}", "--ramp_time=1", "--group_reporting"] + args
    # psync on the file itself: --invalidate=0, or fio drops the file from
    # the page cache first and the "ceiling" measures the disk
    argv += ["--ioengine=nbd", f"--uri={uri}"] if uri else \
        ["--ioengine=psync", f"--filename={filename}", f"--size={SIZE}", "--invalidate=0"]
    out = run(argv).stdout.decode()
    job = json.loads(out[out.index("{"):])["jobs"][0]
    return job


def iops(job, rw):
    return job[rw]["iops"]


def mibs(job, rw):
    return job[rw]["bw_bytes"] / MiB


WORKLOADS = [
    # name, unit, how to run it against a server
    ("nbdcopy read", "MiB/s",
     lambda s, a: SIZE / MiB / timed(["nbdcopy", s.uri, "null:"])),
    ("nbdcopy write", "MiB/s",
     lambda s, a: SIZE / MiB / timed(["nbdcopy", a.src, s.uri])),
    ("fio 4k randread QD32", "IOPS",
     lambda s, a: iops(fio(["--rw=randread", "--bs=4k", "--iodepth=32"], a.runtime, s.uri),
                       "read")),
    ("fio 4k randwrite QD32", "IOPS",
     lambda s, a: iops(fio(["--rw=randwrite", "--bs=4k", "--iodepth=32"], a.runtime, s.uri),
                       "write")),
    ("fio 64k seq read QD16", "MiB/s",
     lambda s, a: mibs(fio(["--rw=read", "--bs=64k", "--iodepth=16"], a.runtime, s.uri),
                       "read")),
    ("nbdcopy TLS-PSK read", "MiB/s",
     lambda s, a: SIZE / MiB / timed(["nbdcopy", s.tls_uri, "null:"])),
    # connection scaling: (IOPS, p99 ms) -> two rows each
    ("100 clients 4k randread", "IOPS+p99", clients(100)),
    ("1000 clients 4k randread", "IOPS+p99", clients(1000)),
]

CEILING = [  # psync: one job, one request at a time, on the file itself
    ("fio 4k randread QD32", "read", iops, ["--rw=randread", "--bs=4k"]),
    ("fio 4k randwrite QD32", "write", iops, ["--rw=randwrite", "--bs=4k"]),
    ("fio 64k seq read QD16", "read", mibs, ["--rw=read", "--bs=64k"]),
]

TARGETS = {  # workload: minimum ratio to nbdkit
    "fio 4k randread QD32": 1.2,
    "fio 4k randwrite QD32": 1.2,
    "nbdcopy read": 1.0,
    "nbdcopy write": 1.0,
    "fio 64k seq read QD16": 1.0,
    "nbdcopy TLS-PSK read": 2.0,
    # connection scaling: no target in issue 16, ratios reported
}


def check_data(servers, img, work):
    want = hashlib.sha256(open(img, "rb").read()).hexdigest()
    for s in servers:
        for uri in (s.uri, s.tls_uri):
            out = os.path.join(work, "check.img")
            run(["nbdcopy", uri, out])
            got = hashlib.sha256(open(out, "rb").read()).hexdigest()
            os.unlink(out)
            if got != want:
                sys.exit(f"bench/nbd: {s.name} returned wrong data through {uri}")
    print(f"data checked: every server returns sha256 {want[:16]}... plain and over TLS")


def fmt(v, unit):
    return f"{v:,.0f}" if unit == "IOPS" else f"{v:,.2f}" if unit == "ms" else f"{v:,.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zfs-live", default="build/zfs-live")
    ap.add_argument("--baseline", help="an earlier zfs-live binary to compare in the same run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", type=int, default=8, help="seconds per fio job")
    ap.add_argument("--dir", help="work directory (default: a new one in /var/tmp)")
    ap.add_argument("--only", help="run the workloads whose names contain this")
    a = ap.parse_args()
    if a.only:
        WORKLOADS[:] = [w for w in WORKLOADS if a.only in w[0]]
        CEILING[:] = [c for c in CEILING if a.only in c[0]]
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        sys.exit(f"bench/nbd: missing {', '.join(missing)} (scripts/deps.sh bench)")
    zl = os.path.abspath(a.zfs_live)
    work = a.dir or tempfile.mkdtemp(prefix="zfs-live-bench-nbd.", dir="/var/tmp")
    env = dict(os.environ, ZFS_LIVE_RUN=os.path.join(work, "run"))
    servers = []
    try:
        srdir, img = make_volume(zl, work, env)
        a.src = os.path.join(work, "src.img")
        fill_random(a.src)
        servers = start_servers(zl, work, srdir, img, env,
                                os.path.abspath(a.baseline) if a.baseline else None)
        check_data(servers, img, work)
        if not a.only or "idle" in a.only:
            idle_cost(servers)
        results = {(w[0], s.name): [] for w in WORKLOADS for s in servers}
        ceiling = {c[0]: [] for c in CEILING}
        for r in range(a.rounds):
            for name, unit, fn in WORKLOADS:
                order = servers[r % len(servers):] + servers[:r % len(servers)]
                for s in order:
                    results[(name, s.name)].append(fn(s, a))
            for name, rw, metric, args in CEILING:
                ceiling[name].append(metric(fio(args, a.runtime, filename=img), rw))
            print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
        report(results, ceiling, servers, a)
    finally:
        for s in servers:
            for p in s.procs:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


def report(results, ceiling, servers, a):
    print(f"\nbench/nbd: 1 GiB file, Unix sockets, {a.rounds} rounds, fio {a.runtime} s per job,"
          f" {os.cpu_count()} CPUs shared by clients and servers")
    print("median [min-max]; ratio = zfs-live / peer (latency: peer / zfs-live)\n")
    names = [s.name for s in servers]
    head = f"{'workload':28} {'unit':6}" + "".join(f"{n:>26}" for n in names) + \
        f"{'psync ceiling':>16}{'vs nbdkit':>11}{'vs qemu':>9}" + \
        (f"{'vs base':>9}" if "baseline" in names else "") + "  target"
    print(head)
    print("-" * len(head))
    verdicts = []
    rows = []
    for name, unit, _ in WORKLOADS:
        if unit != "IOPS+p99":
            rows.append((name, unit, lambda v: v, False))
            continue
        rows.append((name, "IOPS", lambda v: v[0], False))
        rows.append((name + " p99", "ms", lambda v: v[1], True))
    for name, unit, pick, lower in rows:
        base = name[:-4] if lower else name
        cells, med = "", {}
        for n in names:
            v = [pick(x) for x in results[(base, n)]]
            med[n] = statistics.median(v)
            cells += f"{fmt(med[n], unit) + ' [' + fmt(min(v), unit) + '-' + fmt(max(v), unit) + ']':>26}"
        ceil = f"{fmt(statistics.median(ceiling[name]), unit):>16}" if name in ceiling \
            else f"{'':>16}"
        # ratios: > 1 is better for zfs-live (latency: peer / zfs-live)
        r = (lambda x, y: y / x) if lower else (lambda x, y: x / y)
        rk = r(med["zfs-live"], med["nbdkit"])
        rq = r(med["zfs-live"], med["qemu-nbd"])
        rb = f"{r(med['zfs-live'], med['baseline']):>8.2f}x" if "baseline" in med else ""
        want = TARGETS.get(name)
        if want is None:
            verdict = "(no target)"
        else:
            ok = "met" if rk >= want else "MISSED"
            verdicts.append(ok)
            verdict = f">= {want}x nbdkit: {ok}"
        print(f"{name:28} {unit:6}{cells}{ceil}{rk:>10.2f}x{rq:>8.2f}x{rb}  {verdict}")
    print(f"\n{verdicts.count('met')}/{len(verdicts)} targets met")


if __name__ == "__main__":
    main()
