#!/usr/bin/python3
"""bench/mirror.py: storage migration (SXM) throughput against nbdcopy.

Two file-live SRs, a 1 GiB volume of random data in the first (changed
block tracking on, so the datapath attaches it NBD-only, as a mirrored
volume must be) and a 1 GiB volume in the second, both attached through
the installed datapath plugin: one NBD server serves both.  In each round,
alternating:

  nbdcopy SRC DST          nbdcopy between the two exports (its defaults:
                           several connections, many requests in flight)
  Data.mirror              Data.mirror of the source to the destination,
                           through Datapath.import_activate and a proxy
                           that passes each client fd by SCM_RIGHTS (as
                           xapi's nbdproxy); the time from the call to
                           Data.stat reporting complete (polled every
                           10 ms), with an idle guest

Before each, the destination is deallocated (truncated to 0 and back);
both end with a FLUSH.  Medians over the rounds, [min-max], and the ratio;
target (issue 13): mirror >= 0.9x nbdcopy.  The destination is checked
against the source (sha256) after every mirror.  This script reports; it
does not fail a build (timings are not tests).

    bench/mirror.py --root INSTALL_ROOT [--rounds N]
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SIZE = 1 << 30
MiB = 1 << 20


class Plugin:
    def __init__(self, path, env):
        self.path, self.env = path, env

    def __call__(self, method, **params):
        params.setdefault("dbg", "bench")
        p = subprocess.run([os.path.join(self.path, method), "--json"],
                           input=json.dumps(params).encode(), capture_output=True,
                           env=self.env, cwd="/")
        if p.returncode != 0:
            sys.exit(f"bench/mirror: {method}: {p.stdout.decode()} {p.stderr.decode()}")
        return json.loads(p.stdout)


class Proxy(threading.Thread):
    """xapi's nbdproxy: every client of path goes to the import socket."""

    def __init__(self, path, import_socket):
        super().__init__(daemon=True)
        self.path, self.import_socket = path, import_socket
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(16)
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(self.import_socket)
                socket.send_fds(s, [b"x"], [c.fileno()])
            c.close()


def nbd_uri(backend):
    impls = dict((i[0], i[1]) for i in backend["implementations"])
    rest = impls["Nbd"]["uri"].partition("nbd:unix:")[2]
    sock, _, name = rest.partition(":exportname=")
    return f"nbd+unix:///{name}?socket={sock}"


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(16 * MiB):
            h.update(chunk)
    return h.hexdigest()


def fill_random(path):
    with open(path, "r+b") as f:
        for _ in range(SIZE // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
        f.flush()
        os.fsync(f.fileno())


def timed_nbdcopy(src, dst):
    t0 = time.perf_counter()
    subprocess.run(["nbdcopy", "--flush", src, dst], check=True)
    return time.perf_counter() - t0


def control(run_dir, req):
    """One request on the NBD server's control channel (nbd/control.c)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(os.path.join(run_dir, "control.sock"))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            buf += s.recv(65536)
    return json.loads(buf)


def timed_mirror(dp, src_uri, remote, run_dir):
    """(seconds from Data.mirror to Data.stat complete, seconds of the copy
    in the server)."""
    t0 = time.perf_counter()
    op = dp("Data.mirror", uri=src_uri, domain="1", remote=remote)
    while True:
        st = dp("Data.stat", operation=op)
        if st["failed"]:
            sys.exit(f"bench/mirror: the mirror failed: {st}")
        if st["complete"]:
            break
        time.sleep(0.05)
    t = time.perf_counter() - t0
    inside = control(run_dir, {"op": "mirror-stat", "id": op[1]})["copy_seconds"]
    dp("Data.destroy", operation=op)
    return t, inside


def summary(xs):
    return f"{statistics.median(xs):7.1f} MiB/s [{min(xs):.1f}-{max(xs):.1f}]"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="install root (scripts/install.sh)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    for tool in ("nbdcopy",):
        if not shutil.which(tool):
            sys.exit(f"bench/mirror: {tool} is not installed")
    work = tempfile.mkdtemp(prefix="zl-bench-mirror-")
    env = dict(os.environ, ZFS_LIVE_RUN=os.path.join(work, "run"),
               ZFS_LIVE_INVENTORY="/nonexistent/xensource-inventory")
    scripts = os.path.join(a.root, "usr/libexec/xapi-storage-script")
    vol = Plugin(os.path.join(scripts, "volume/org.xen.xapi.storage.file-live"), env)
    dp = Plugin(os.path.join(scripts, "datapath/zfs-live"), env)
    attached = []
    try:
        srs = []
        for n in (1, 2):
            cfg = vol("SR.create", uuid=str(uuid.uuid4()),
                      configuration={"path": os.path.join(work, f"sr{n}")},
                      name=f"sr{n}", description="")
            srs.append(vol("SR.attach", configuration=cfg))
        src = vol("Volume.create", sr=srs[0], name="src", description="", size=SIZE,
                  sharable=False)
        dst = vol("Volume.create", sr=srs[1], name="dst", description="", size=SIZE,
                  sharable=False)
        src_img = os.path.join(srs[0], src["key"] + ".img")
        dst_img = os.path.join(srs[1], dst["key"] + ".img")
        fill_random(src_img)
        vol("Volume.enable_cbt", sr=srs[0], key=src["key"])  # NBD only
        src_uri, dst_uri = src["uri"][0], dst["uri"][0]
        src_nbd = nbd_uri(dp("Datapath.attach", uri=src_uri, domain="1"))
        attached.append(src_uri)
        dst_nbd = nbd_uri(dp("Datapath.attach", uri=dst_uri, domain="1"))
        attached.append(dst_uri)
        imp = dp("Datapath.import_activate", uri=dst_uri, domain="1")
        proxy = Proxy(os.path.join(work, "proxy.sock"), imp)
        remote = f"nbd+unix:///?socket={proxy.path}"
        want = sha(src_img)  # also warms the page cache

        runs = {"nbdcopy": [], "mirror": [], "copy": []}
        for r in range(a.rounds):
            os.truncate(dst_img, 0)  # both write a deallocated destination
            os.truncate(dst_img, SIZE)
            t = timed_nbdcopy(src_nbd, dst_nbd)
            runs["nbdcopy"].append(SIZE / MiB / t)
            os.truncate(dst_img, 0)  # and the check below sees the mirror's copy
            os.truncate(dst_img, SIZE)
            t, inside = timed_mirror(dp, src_uri, remote, env["ZFS_LIVE_RUN"])
            runs["mirror"].append(SIZE / MiB / t)
            runs["copy"].append(SIZE / MiB / inside)
            got = sha(dst_img)
            if got != want:
                sys.exit("bench/mirror: the destination differs from the source")
            print(f"round {r + 1}: nbdcopy {runs['nbdcopy'][-1]:.1f} MiB/s, "
                  f"mirror {runs['mirror'][-1]:.1f} MiB/s "
                  f"(its copy in the server: {runs['copy'][-1]:.1f})", flush=True)
        m, c = statistics.median(runs["mirror"]), statistics.median(runs["nbdcopy"])
        print(f"\n1 GiB of data, {a.rounds} rounds (median [min-max]):")
        print(f"  nbdcopy SRC DST   {summary(runs['nbdcopy'])}")
        print(f"  Data.mirror       {summary(runs['mirror'])}  (as xapi sees it: "
              "from the call to Data.stat complete, polled every 50 ms)")
        print(f"   its copy         {summary(runs['copy'])}  (in the server)")
        print(f"  ratio mirror/nbdcopy: {m / c:.2f}x (target >= 0.9x)")
    finally:
        for uri in attached:
            subprocess.run([os.path.join(scripts, "datapath/zfs-live/Datapath.detach"),
                            "--json"], input=json.dumps({"dbg": "b", "uri": uri,
                                                         "domain": "1"}).encode(),
                           capture_output=True, env=env)
        try:
            os.kill(int(open(os.path.join(work, "run", "nbd.pid")).read()), 15)
        except (OSError, ValueError):
            pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
