#!/usr/bin/python3
"""bench/handoff.py: the storage part of a live migration's downtime.

What xenopsd does between pausing the guest on host A and resuming it on
host B: Datapath.deactivate on A, Datapath.activate on B.  Measured here
from the start of A's deactivate to the completion of the first write
served on B, through an NBD connection B opened before (as the incoming
QEMU has), while a writer on A had writes in flight until the deactivate.
Two "hosts" share the machine and one file SR (each its own host UUID, run
directory and NBD server), the plugins are spawned as xapi-storage-script
does.  Median and spread over --runs handoffs, back and forth.

Target (issue 13): handoff <= 50 ms median.  This script reports; it does
not fail a build."""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

# bench/nbd.py would shadow libnbd's module of the same name
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]
import nbd  # noqa: E402

HOSTS = {"A": "aaaaaaaa-0000-4000-8000-00000000000a",
         "B": "bbbbbbbb-0000-4000-8000-00000000000b"}


class Host:
    def __init__(self, name, root, work):
        self.name, self.uuid = name, HOSTS[name]
        self.run = os.path.join(work, f"run-{name}")
        self.env = {**os.environ, "ZFS_LIVE_HOST_UUID": self.uuid, "ZFS_LIVE_RUN": self.run,
                    "ZFS_LIVE_INVENTORY": "/nonexistent"}
        base = os.path.join(root, "usr/libexec/xapi-storage-script")
        self.vol = os.path.join(base, "volume/org.xen.xapi.storage.file-live")
        self.dp = os.path.join(base, "datapath/zfs-live")

    def call(self, method, **params):
        params.setdefault("dbg", "bench")
        d = self.dp if method.startswith("Datapath.") else self.vol
        p = subprocess.run([os.path.join(d, method), "--json"], input=json.dumps(params).encode(),
                           capture_output=True, env=self.env, cwd="/")
        if p.returncode != 0:
            raise RuntimeError(f"{self.name} {method}: {p.stdout!r} {p.stderr!r}")
        return json.loads(p.stdout)

    def stop(self):
        try:
            os.kill(int(open(os.path.join(self.run, "nbd.pid")).read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def connect(backend):
    uri = dict((i[0], i[1]) for i in backend["implementations"])["Nbd"]["uri"]
    sock, _, name = uri.partition("nbd:unix:")[2].partition(":exportname=")
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{name}?socket={sock}")
    return h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="install root (make install DESTDIR)")
    ap.add_argument("--dir", default="/var/tmp", help="where to make the SR")
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        a, b = Host("A", args.root, work), Host("B", args.root, work)
        try:
            run(a, b, work, args.runs)
        finally:
            a.stop()
            b.stop()


def run(a, b, work, runs):
    cfg = a.call("SR.create", uuid=str(uuid.uuid4()), configuration={"path": f"{work}/sr"},
                 name="bench", description="")
    sr = a.call("SR.attach", configuration=cfg)
    b.call("SR.attach", configuration=cfg)
    v = a.call("Volume.create", sr=sr, name="vm", description="", size=64 << 20,
               sharable=False)
    uri = v["uri"][0]
    conns = {h.name: connect(h.call("Datapath.attach", uri=uri, domain="1")) for h in (a, b)}
    src, dst = a, b
    src.call("Datapath.activate", uri=uri, domain="1")
    times = []
    buf = b"x" * 4096
    for i in range(runs):
        stop = threading.Event()

        def writer(h=conns[src.name]):  # the guest, writing until it is paused
            n = 0
            while not stop.is_set():
                try:
                    h.pwrite(buf, (n % 1024) * 4096)
                except nbd.Error:
                    return
                n += 1
        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.05)
        stop.set()  # xenopsd pauses the guest, then hands the disk over
        t0 = time.perf_counter()
        src.call("Datapath.deactivate", uri=uri, domain="1")
        dst.call("Datapath.activate", uri=uri, domain="1")
        conns[dst.name].pwrite(buf, 0)
        times.append((time.perf_counter() - t0) * 1e3)
        t.join()
        src, dst = dst, src
    for h in conns.values():
        h.shutdown()
    src.call("Datapath.deactivate", uri=uri, domain="1")
    for h in (a, b):
        h.call("Datapath.detach", uri=uri, domain="1")
    med = statistics.median(times)
    print(f"handoff (deactivate on A .. first write served on B), {runs} runs: "
          f"median {med:.1f} ms, min {min(times):.1f}, max {max(times):.1f}")
    print(f"  target <= 50 ms: {'met' if med <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
