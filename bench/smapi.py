#!/usr/bin/python3
"""bench/smapi.py: control-plane cost of the SMAPIv3 volume plugin.

Median wall time per call of Plugin.Query, Volume.create, Volume.stat,
Volume.snapshot and SR.ls with 1,000 volumes in a file SR, printed beside
the start-up time of /usr/bin/python3 -c pass (the floor of any Python
plugin, which the existing drivers are), measured in the same run the same
way: posix_spawn of the program with its stdin from a file, until waitpid.

Targets (issue 2): single calls <= 5 ms median and <= 0.25x the Python
floor; SR.ls of 1,000 volumes <= 50 ms.  This script reports; it does not
fail a build (timings are not tests)."""
import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid

PYTHON = "/usr/bin/python3"


def spawn(argv, stdin_bytes, workdir):
    """Run argv with stdin_bytes; return (seconds, rc, stdout bytes)."""
    inp = os.path.join(workdir, "in")
    out = os.path.join(workdir, "out")
    with open(inp, "wb") as f:
        f.write(stdin_bytes)
    infd = os.open(inp, os.O_RDONLY)
    outfd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    nullfd = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, infd, 0),
                                           (os.POSIX_SPAWN_DUP2, outfd, 1),
                                           (os.POSIX_SPAWN_DUP2, nullfd, 2)])
        _, status = os.waitpid(pid, 0)
        dt = time.perf_counter() - t0
    finally:
        os.close(infd)
        os.close(outfd)
        os.close(nullfd)
    with open(out, "rb") as f:
        return dt, os.waitstatus_to_exitcode(status), f.read()


class Plugin:
    def __init__(self, root, workdir):
        self.dir = os.path.join(root, "usr/libexec/xapi-storage-script/volume",
                                "org.xen.xapi.storage.file-live")
        self.workdir = workdir

    def call(self, method, **params):
        params.setdefault("dbg", "bench")
        dt, rc, out = spawn([os.path.join(self.dir, method), "--json"],
                            json.dumps(params).encode(), self.workdir)
        if rc != 0:
            sys.exit(f"{method} failed: {out.decode(errors='replace')}")
        return dt, json.loads(out)


def ms(samples):
    return statistics.median(samples) * 1e3


def p90(samples):
    s = sorted(samples)
    return s[int(len(s) * 0.9)] * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="install root (make install DESTDIR)")
    ap.add_argument("--dir", default="/var/tmp", help="where to make the SR")
    ap.add_argument("--volumes", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="zl-bench-", dir=args.dir)
    try:
        p = Plugin(args.root, work)
        srpath = os.path.join(work, "sr")
        _, cfg = p.call("SR.create", uuid=str(uuid.uuid4()), configuration={"path": srpath},
                        name="bench", description="")
        _, sr = p.call("SR.attach", configuration=cfg)

        t = {"Plugin.Query": [], "python3 -c pass": [], "Volume.create": [],
             "Volume.stat": [], "Volume.snapshot": [], "SR.ls": []}
        keys = []
        for i in range(args.volumes):
            dt, v = p.call("Volume.create", sr=sr, name=f"v{i}", description="",
                           size=10 << 30, sharable=False)
            t["Volume.create"].append(dt)
            keys.append(v["key"])
        # the floor and the cheapest call, interleaved under the same conditions
        for _ in range(args.samples):
            t["Plugin.Query"].append(p.call("Plugin.Query")[0])
            t["python3 -c pass"].append(spawn([PYTHON, "-c", "pass"], b"", work)[0])
        rnd = random.Random(1)
        for _ in range(args.samples):
            t["Volume.stat"].append(p.call("Volume.stat", sr=sr, key=rnd.choice(keys))[0])
        for _ in range(max(20, args.samples // 10)):
            dt, listed = p.call("SR.ls", sr=sr)
            assert len(listed) == args.volumes
            t["SR.ls"].append(dt)
        for _ in range(args.samples // 2):
            t["Volume.snapshot"].append(p.call("Volume.snapshot", sr=sr,
                                               key=rnd.choice(keys))[0])

        floor = ms(t["python3 -c pass"])
        print(f"zfs-live SMAPIv3 control plane, file SR in {args.dir}, "
              f"{args.volumes} volumes; {os.uname().release}, {os.cpu_count()} CPUs")
        print(f"{'call':<18} {'median ms':>10} {'p90 ms':>8} {'x python':>9}  target")
        rows = [("python3 -c pass", None, None)]
        for name in ("Plugin.Query", "Volume.create", "Volume.stat", "Volume.snapshot"):
            rows.append((name, 5.0, 0.25))
        rows.append(("SR.ls", 50.0, None))
        verdict = True
        for name, limit_ms, limit_ratio in rows:
            med, ratio = ms(t[name]), ms(t[name]) / floor
            ok = (limit_ms is None or med <= limit_ms) and (limit_ratio is None or
                                                            ratio <= limit_ratio)
            verdict &= ok
            target = "" if limit_ms is None else f"<= {limit_ms:g} ms" + (
                f" and <= {limit_ratio}x python" if limit_ratio else "")
            mark = "" if limit_ms is None else ("  ok" if ok else "  MISSED")
            print(f"{name:<18} {med:>10.2f} {p90(t[name]):>8.2f} {ratio:>8.3f}x  "
                  f"{target}{mark}")
        print("all targets met" if verdict else "some targets missed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
