#!/usr/bin/python3
"""bench/soak.py: many NBD clients doing mixed, verified I/O for a while.

  bench/soak.py --uri nbd+unix:///EXPORT?socket=S [--clients 64]
                [--duration 600] [--pid SERVER_PID]

Each client (a thread with its own libnbd connection) owns a slice of the
export and writes known patterns there (every 16 KiB block carries its
client, block number and generation), reads them back and checks them,
flushes now and then, zeroes a block now and then; it goes quiet for up
to 1.5 s every few hundred requests (so the server parks and wakes its
connection) and reconnects now and then (a new handshake).  The server's
RSS (--pid) is sampled every second and printed.  Exit status 1 on any
corruption or error; 0 otherwise.  tests/integration/test_nbd_scale.py
runs it for 30 s; issue 16 asks for 64 clients x 10 minutes."""
import argparse
import os
import random
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/nbd.py would shadow libnbd's module
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
import nbd  # noqa: E402

BLOCK = 16 << 10


def pattern(client, block, gen):
    head = struct.pack("<QQQ", client, block, gen) + b"zfs-live soak...."  # 41 bytes
    return (head * (BLOCK // len(head) + 1))[:BLOCK]


class Client(threading.Thread):
    def __init__(self, i, uri, first, nblocks, stop, seed):
        super().__init__(daemon=True)
        self.i, self.uri, self.first, self.n, self.stop = i, uri, first, nblocks, stop
        self.rng = random.Random(seed)
        self.gen = {}  # block -> generation written (0: zeroed)
        self.ops = self.bytes = self.bad = self.errors = 0
        self.msgs = []

    def connect(self):
        h = nbd.NBD()
        h.connect_uri(self.uri)
        return h

    def expect(self, b):
        g = self.gen.get(b)
        if g is None:
            return None
        return bytes(BLOCK) if g == 0 else pattern(self.i, b, g)

    def run(self):
        try:
            self.loop()
        except Exception as e:  # noqa: BLE001 - reported, the soak fails
            self.errors += 1
            self.msgs.append(f"client {self.i}: {e!r}")

    def loop(self):
        h = self.connect()
        since_pause = 0
        while not self.stop.is_set():
            b = self.rng.randrange(self.n)
            k = min(self.rng.randint(1, 4), self.n - b)
            off = (self.first + b) * BLOCK
            op = self.rng.random()
            if op < 0.45:
                data = b""
                for j in range(b, b + k):
                    self.gen[j] = self.gen.get(j, 0) + 1
                    data += pattern(self.i, j, self.gen[j])
                h.pwrite(data, off, nbd.CMD_FLAG_FUA if self.rng.random() < 0.05 else 0)
            elif op < 0.93:
                got = h.pread(k * BLOCK, off)
                for j in range(k):
                    want = self.expect(b + j)
                    if want is not None and got[j * BLOCK:(j + 1) * BLOCK] != want:
                        self.bad += 1
                        self.msgs.append(f"client {self.i}: block {b + j} differs "
                                         f"(generation {self.gen.get(b + j)})")
            elif op < 0.97:
                h.zero(BLOCK, off)
                self.gen[b] = 0
                k = 1
            else:
                h.flush()
                k = 0
            self.ops += 1
            self.bytes += k * BLOCK
            since_pause += 1
            if since_pause >= 300:
                since_pause = 0
                if self.rng.random() < 0.3:
                    h.shutdown()
                    del h  # libnbd closes the handle when it goes
                    h = self.connect()
                self.stop.wait(self.rng.uniform(0, 1.5))
        h.shutdown()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", required=True)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=600, help="seconds")
    ap.add_argument("--pid", type=int, help="the server's pid, for its RSS")
    ap.add_argument("--seed", type=int, default=16)
    a = ap.parse_args()

    h = nbd.NBD()
    h.connect_uri(a.uri)
    size = h.get_size()
    h.shutdown()
    per = size // BLOCK // a.clients
    if per < 4:
        sys.exit("bench/soak: the export is too small for that many clients")
    stop = threading.Event()
    clients = [Client(i, a.uri, i * per, per, stop, a.seed * 1000 + i) for i in range(a.clients)]
    for c in clients:
        c.start()
    samples, t0 = [], time.monotonic()
    while time.monotonic() - t0 < a.duration:
        stop.wait(1)
        if a.pid:
            samples.append(rss_mib(a.pid))
        if len(samples) % 10 == 0 and samples:
            ops = sum(c.ops for c in clients)
            print(f"{time.monotonic() - t0:6.0f} s  {ops:9d} requests  "
                  f"RSS {samples[-1]:.0f} MiB", flush=True)
    stop.set()
    for c in clients:
        c.join(60)
    took = time.monotonic() - t0
    ops, nbytes = sum(c.ops for c in clients), sum(c.bytes for c in clients)
    bad, errors = sum(c.bad for c in clients), sum(c.errors for c in clients)
    for c in clients:
        for m in c.msgs[:5]:
            print(m, file=sys.stderr)
    print(f"soak: {a.clients} clients, {took:.0f} s, {ops} requests "
          f"({ops / took:,.0f}/s), {nbytes / (1 << 20):,.0f} MiB moved, "
          f"{bad} corrupt blocks, {errors} client errors")
    if samples:
        q = max(1, len(samples) // 4)
        print(f"server RSS MiB: first {samples[0]:.0f}, max of the first quarter "
              f"{max(samples[:q]):.0f}, max of the last quarter {max(samples[-q:]):.0f}, "
              f"max {max(samples):.0f}, last {samples[-1]:.0f}")
    sys.exit(1 if bad or errors else 0)


if __name__ == "__main__":
    main()
