#!/usr/bin/python3
"""bench/zfs.py: per-call cost of the zfs-live SMAPIv3 plugin on a zfs-fuse
SR (dataset layout), beside the floor: the bare zfs commands the same call
runs, timed the same way in the same run.

The floor's command lines are not guessed: each call is run once with
ZFS_LIVE_DEBUG=1, its `exec:` log lines are the commands it ran, and the
floor replays them (with fresh names where the call creates something).
Calls and floors alternate, so both see the same machine.  Target (issue
3): each call <= 1.2x its floor.  This reports; it fails nothing."""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid


def run(argv, stdin=None, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(argv, input=stdin, capture_output=True, env=env)
    return time.perf_counter() - t0, p


class Bench:
    def __init__(self, root, pool):
        self.dir = os.path.join(root, "usr/libexec/xapi-storage-script/volume",
                                "org.xen.xapi.storage.zfs-live")
        self.pool = pool

    def call(self, method, debug=False, **params):
        params.setdefault("dbg", "bench")
        env = dict(os.environ, ZFS_LIVE_DEBUG="1") if debug else None
        dt, p = run([os.path.join(self.dir, method), "--json"],
                    json.dumps(params).encode(), env)
        if p.returncode != 0:
            sys.exit(f"{method}: {p.stdout.decode()} {p.stderr.decode()}")
        return dt, json.loads(p.stdout), p.stderr.decode()


EXEC = re.compile(r"exec: (.*?) -> (\d+) in")


def commands(log):
    return [m.group(1).split(" ") for m in EXEC.finditer(log)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--pool", required=True, help="an imported pool to use (zfs-fuse)")
    ap.add_argument("--volumes", type=int, default=200)
    ap.add_argument("--samples", type=int, default=30)
    a = ap.parse_args()
    b = Bench(a.root, a.pool)
    parent = f"{a.pool}/bench{uuid.uuid4().hex[:6]}"
    _, cfg, _ = b.call("SR.create", uuid=str(uuid.uuid4()), name="bench", description="",
                       configuration={"path": parent})
    _, sr, _ = b.call("SR.attach", configuration=cfg)
    keys = [b.call("Volume.create", sr=sr, name=f"v{i}", description="", size=1 << 30,
                   sharable=False)[1]["key"] for i in range(a.volumes)]

    results = {}

    def measure(name, make_params, fix):
        """fix(argv, params, result) -> the argv the call ran for this sample.
        The command lines come from one debug run of the call (its exec:
        log); the timed runs log nothing."""
        _, res0, log = b.call(name, debug=True, sr=sr, **make_params(0))
        template = (commands(log), make_params(0), res0)
        ours, floor = [], []
        for i in range(1, a.samples + 1):
            params = make_params(i)
            dt, res, _ = b.call(name, sr=sr, **params)
            ours.append(dt)
            t = 0.0
            for c in template[0]:
                c = fix(c, template[1], template[2], params)
                d, p = run(c)
                if p.returncode != 0:
                    sys.exit(f"floor {c}: {p.stderr.decode()}")
                t += d
            floor.append(t)
        results[name] = (statistics.median(ours), statistics.median(floor),
                         len(template[0]))

    def rename(argv, old, new):
        return [x.replace(old, new) for x in argv]

    same = lambda c, p0, r0, p: c  # noqa: E731
    # a stat of another key: the same command on that key
    stat_fix = lambda c, p0, r0, p: rename(c, p0["key"], p["key"])  # noqa: E731
    # a create/snapshot makes a new name each time: the floor does too
    new_fix = lambda c, p0, r0, p: rename(rename(c, r0["key"], "f" + uuid.uuid4().hex),  # noqa: E731
                                          p0.get("key", "\0"), p.get("key", "\0"))

    measure("SR.ls", lambda i: {}, same)
    measure("Volume.stat", lambda i: {"key": keys[i % len(keys)]}, stat_fix)
    measure("Volume.create",
            lambda i: {"name": "n", "description": "", "size": 1 << 30, "sharable": False},
            new_fix)
    measure("Volume.snapshot", lambda i: {"key": keys[i % len(keys)]}, new_fix)

    # the least any plugin call costs: xapi starts a process for it
    empty = statistics.median(run(["/bin/true"])[0] for _ in range(a.samples))

    print(f"zfs-live on zfs-fuse (dataset layout), {a.volumes} volumes in the SR, "
          f"{a.samples} samples, medians")
    print(f"{'call':<16} {'zfs procs':>9} {'call ms':>9} {'floor ms':>9} {'ratio':>7}"
          f"  {'vs floor+1 process':>18}  target")
    ok = True
    for name, (ours, floor, n) in results.items():
        ratio = ours / floor if floor else float("inf")
        ok &= ratio <= 1.2
        print(f"{name:<16} {n:>9} {ours*1e3:>9.2f} {floor*1e3:>9.2f} {ratio:>6.2f}x"
              f"  {ours / (floor + empty):>17.2f}x  <= 1.2x floor "
              f"{'ok' if ratio <= 1.2 else 'MISSED'}")
    print(f"(an empty process, /bin/true, costs {empty*1e3:.2f} ms here: the part of a "
          f"plugin call no plugin can avoid)")
    print("all targets met" if ok else "some targets missed")
    subprocess.run(["zfs", "destroy", "-r", parent], capture_output=True)


if __name__ == "__main__":
    main()
