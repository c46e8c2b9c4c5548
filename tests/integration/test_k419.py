"""The Linux 4.19 system call profile (tests/tools/k419-exec, XCP-ng 8.3's
dom0 kernel): that the launcher blocks what it says it blocks, and that
zfs-live takes its old-kernel paths under it: doctor reports them, a
datapath attach gets a loop device (LOOP_SET_FD, direct I/O by
LOOP_SET_DIRECT_IO) and an NBD server running under the filter.

Runs in `make integration` (the launcher named by ZFS_LIVE_K419_EXEC,
put before the calls here) and in `make integration-k419` (ZFS_LIVE_K419=1:
every invocation is under the profile already)."""
import json
import os
import platform
import subprocess
import sys

import pytest

from conftest import CLI, RUN_DIR, Attached, Datapath, need, stop_nbd_server_and_wait

K419 = os.environ.get("ZFS_LIVE_K419_EXEC", "")
UNDER = os.environ.get("ZFS_LIVE_K419") == "1"
FALLBACK = {"io_uring": "pread/pwrite", "loop": "LOOP_SET_FD",
            "copy_file_range": "syscall", "getrandom": "syscall",
            "memfd_create": "syscall", "close_range": "fallback", "openat2": "fallback"}
# in 4.19 already (their glibc wrappers are not in 2.17; compat calls syscall())
IN_419 = ("memfd_create", "getrandom", "copy_file_range")

# Each call made from Python with arguments the call refuses (or takes
# harmlessly): the errno it answers, 0 for success.  x86_64 numbers.
PROBE = r"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *a):
    r = libc.syscall(nr, *a)
    return 0 if r >= 0 else ctypes.get_errno()
ctl = os.open("/dev/loop-control", os.O_RDWR)
n = libc.ioctl(ctl, 0x4C82)  # LOOP_CTL_GET_FREE
lfd = os.open(f"/dev/loop{n}", os.O_RDONLY)
cfg = ctypes.create_string_buffer(b"\xff\xff\xff\xff", 304)  # struct loop_config, fd -1
r = libc.ioctl(lfd, 0x4C0A, cfg)  # LOOP_CONFIGURE
loop_configure = 0 if r == 0 else ctypes.get_errno()
buf = ctypes.create_string_buffer(8)
print(json.dumps({
    "io_uring_setup": call(425, 1, None),
    "memfd_create": call(319, b"probe", 1),
    "getrandom": call(318, buf, 1, 1),
    "copy_file_range": call(326, -1, None, -1, None, 0, 0),
    "close_range": call(436, 0xffffffff, 0xffffffff, 0),
    "openat2": call(437, -1, b"", None, 0),
    "LOOP_CONFIGURE": loop_configure,
}))
"""


@pytest.fixture
def launcher():
    need(K419 and os.access(K419, os.X_OK),
         "ZFS_LIVE_K419_EXEC must name the k419-exec launcher (libseccomp-dev)")
    need(platform.machine() == "x86_64", "the probe's system call numbers are x86_64's")
    return K419


def probe(prefix):
    out = subprocess.run([*prefix, sys.executable, "-c", PROBE], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_launcher_blocks_the_new_calls(launcher):
    under = probe([launcher])
    assert {c: under[c] for c in under if c not in IN_419} == {
        "io_uring_setup": 38, "close_range": 38, "openat2": 38,
        "LOOP_CONFIGURE": 22}  # ENOSYS, and EINVAL as 4.19's loop driver
    assert all(under[c] != 38 for c in IN_419), under  # 4.19 has them
    if not UNDER and tuple(map(int, platform.release().split(".")[:2])) >= (5, 8):
        # this kernel has them all: the answers above are the filter's
        native = probe([])
        assert native["io_uring_setup"] == 14  # EFAULT: no parameters given
        assert native["LOOP_CONFIGURE"] == 9  # EBADF: no file -1
        assert all(native[c] != 38 for c in native), native


def doctor_host(prefix):
    out = subprocess.run([*prefix, CLI, "doctor", "--json"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["host"]


def test_doctor_reports_the_fallbacks(launcher):
    host = doctor_host([launcher])
    assert {k: host[k] for k in FALLBACK} == FALLBACK
    text = subprocess.run([launcher, CLI, "doctor"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "  loop             LOOP_SET_FD " in text
    assert "  io_uring         pread/pwrite " in text
    if not UNDER:
        native = doctor_host([])
        assert native["memfd_create"] == "syscall"  # 3.17: every kernel here has it
        assert native.keys() >= FALLBACK.keys() and "kernel" in native


def seccomp_mode(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Seccomp:"))


def test_attach_and_serve_under_the_profile(file_sr, launcher):
    """A volume attached by the datapath plugin under the profile: a loop
    device with direct I/O (LOOP_SET_FD, LOOP_SET_DIRECT_IO) holding the
    data, and an NBD server (pread/pwrite) that runs under the filter."""
    stop_nbd_server_and_wait()  # the attach below starts one under the filter
    dp = Datapath()
    dp.plugin.wrap = [] if UNDER else [launcher]
    v = file_sr.create(size=16 << 20)
    a = Attached(file_sr, v, dp)
    try:
        pid = int(open(os.path.join(RUN_DIR, "nbd.pid")).read())
        assert seccomp_mode(pid) == 2  # SECCOMP_MODE_FILTER
        assert a.blockdev, a.backend  # a loop device, though LOOP_CONFIGURE is refused
        dev = os.path.basename(a.blockdev)
        with open(f"/sys/block/{dev}/loop/dio") as f:
            assert f.read().strip() == "1"
        with open(a.blockdev, "r+b", buffering=0) as f:
            f.seek(3 << 20)
            f.write(b"old kernel".ljust(4096, b"!"))
            os.fsync(f.fileno())
        out = subprocess.run(["nbdcopy", a.nbd_uri, "-"], capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout[3 << 20:(3 << 20) + 10] == b"old kernel"
        assert len(out.stdout) == 16 << 20
    finally:
        a.detach()
        stop_nbd_server_and_wait()  # later tests get a server as they expect
