"""Process budgets of the ZFS backend (issue: one batched zfs list/get per
call): with 1,000 volumes in the SR, SR.ls runs one zfs process,
Volume.stat at most 1, Volume.create at most 2, Volume.snapshot at most 2.
The real zfs is on PATH behind a counting wrapper."""
import os
import stat
import subprocess
import uuid

from conftest import ZfsSR

VOLUMES = 1000


def counting_path(tmp_path):
    d = tmp_path / "wrap"
    d.mkdir()
    log = tmp_path / "calls.log"
    for prog in ("zfs", "zpool"):
        real = subprocess.run(["sh", "-c", f"command -v {prog}"], capture_output=True,
                              text=True, check=True).stdout.strip()
        w = d / prog
        w.write_text(f'#!/bin/sh\necho "{prog} $*" >> "{log}"\nexec {real} "$@"\n')
        w.chmod(w.stat().st_mode | stat.S_IXUSR)
    return f"{d}:{os.environ['PATH']}", log


def test_process_budgets_with_1000_volumes(zplugin, zpool, tmp_path):
    s = ZfsSR(zplugin, f"{zpool}/budget{uuid.uuid4().hex[:6]}")
    keys = [s.create(size=1 << 20, name=f"v{i}")["key"] for i in range(VOLUMES)]
    path, log = counting_path(tmp_path)
    env = {"PATH": path}

    def count(method, **params):
        log.write_text("")
        res = s.plugin.run(method, dict(dbg="budget", sr=s.key, **params), env=env)
        assert res.rc == 0, res.stdout
        calls = log.read_text().splitlines()
        return len(calls), calls, res.value()

    count("SR.stat")  # the wrapper is "new tools": the SR re-probes once, here
    n, calls, listed = count("SR.ls")
    assert len(listed) == VOLUMES
    assert n == 1, calls
    n, calls, _ = count("Volume.stat", key=keys[500])
    assert n <= 1, calls
    n, calls, v = count("Volume.create", name="new", description="", size=1 << 20,
                        sharable=False)
    assert n <= 2, calls
    n, calls, snap = count("Volume.snapshot", key=keys[7])
    assert n <= 2, calls
    n, calls, _ = count("Volume.stat", key=snap["key"])  # a snapshot too
    assert n <= 1, calls
    print(f"\nzfs processes per call with {VOLUMES} volumes: SR.ls 1, Volume.stat "
          f"<=1, Volume.create <=2, Volume.snapshot <=2 (log: {log})")
