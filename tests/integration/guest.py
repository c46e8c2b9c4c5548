"""A real QEMU guest for the migration tests (issue 13).

build_image(workdir) makes, into workdir (a tmp dir, never the repository),
an initramfs: busybox-static, the virtio modules the installed Debian kernel
needs for a virtio-blk disk on PCI (those its config builds as modules, with
their dependencies from modules.dep, insmod-ed in dependency order), and
tests/tools/recwriter.c compiled static at test time (musl-gcc, else
gcc -static).  The guest's /init loads the modules, waits for /dev/vda and
runs the record writer on it (see recwriter.c for the record format): it
writes record i at i * 4096, makes it durable (O_DIRECT|O_DSYNC and
fdatasync: the virtio-blk flush reaches the NBD server as NBD_CMD_FLUSH),
then prints "REC <i>" on ttyS0; it stops at the end of the disk ("END n").

Guest runs qemu-system-x86_64 (TCG, one vCPU, small RAM) whose virtio-blk
disk is an NBD export (unix socket, export name).  Every process it starts
is started under an argv prefix (e.g. ["nsenter", "--net=...",
"--mount=..."]), so a guest can run on another "host".  QMP and the serial
console are socketpairs inherited by QEMU (chardev socket,fd=N): they need
no path that the test's mount namespace and the host's have in common.  The
kernel, the initramfs and the NBD socket are paths: they must be visible in
the host's mount namespace.

Migration follows xenopsd's order: the destination QEMU is started with
"-incoming defer -S" (it connects to its NBD export at start but runs
nothing), migrate-incoming on it, migrate on the source, query-migrate
polled until completed; then the handoff callable runs (source
Datapath.deactivate, destination Datapath.activate) and only then `cont`
on the destination.  The destination has the late-block-activate
capability: QEMU activates its block nodes at `cont`, not at migration
completion."""

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECWRITER_C = os.path.join(HERE, "..", "tools", "recwriter.c")

REC_SIZE = 4096
REC_MAGIC = 0x3130764345524C5A  # "ZLRECv01" little-endian, as in recwriter.c
M64 = (1 << 64) - 1

# What the guest needs for a virtio-blk disk on PCI: the drivers, as kernel
# config symbols and module names.  Those built as modules (=m) go in with
# their dependencies from modules.dep (virtio, virtio_ring, the virtio PCI
# libraries); built-in ones (=y) need nothing.
NEEDED = [("CONFIG_VIRTIO_PCI", "virtio_pci"), ("CONFIG_VIRTIO_BLK", "virtio_blk")]


# --- the image ---------------------------------------------------------------

class Image:
    """Kernel + initramfs of the test guest."""

    def __init__(self, kernel, initrd, modules, writer, writer_cc):
        self.kernel, self.initrd = kernel, initrd
        self.writer = writer  # the record writer, also runnable on the host
        self.modules = modules  # insmod order
        self.writer_cc = writer_cc


def kernel_version():
    """The newest kernel with both /boot/vmlinuz-<v> and /lib/modules/<v>
    ($ZFS_LIVE_GUEST_KERNEL names one)."""
    want = os.environ.get("ZFS_LIVE_GUEST_KERNEL")
    if want:
        return want
    vers = [v for v in os.listdir("/lib/modules")
            if os.path.exists(f"/boot/vmlinuz-{v}")] if os.path.isdir("/lib/modules") else []
    if not vers:
        return None
    return sorted(vers, key=lambda v: [int(x) if x.isdigit() else x
                                       for x in re.split(r"[.-]", v)])[-1]


def missing_prerequisites():
    """What the guest cannot be built or run without (empty: all there)."""
    miss = []
    if not shutil.which("qemu-system-x86_64"):
        miss.append("qemu-system-x86_64 (qemu-system-x86)")
    if not os.path.exists("/bin/busybox"):
        miss.append("/bin/busybox (busybox-static)")
    if not (shutil.which("musl-gcc") or shutil.which("gcc")):
        miss.append("a C compiler (musl-tools or gcc)")
    if not kernel_version():
        miss.append("a kernel in /boot with modules (linux-image-amd64)")
    return miss


def kernel_config(ver):
    conf = {}
    with open(f"/boot/config-{ver}") as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep and not k.startswith("#"):
                conf[k] = v
    return conf


def module_order(ver):
    """[(name, path)] of the modules to insmod, dependencies first."""
    base = f"/lib/modules/{ver}"
    deps = {}
    with open(os.path.join(base, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
    by_name = {modname(p): p for p in deps}
    conf = kernel_config(ver)
    order = []

    def add(path):
        for d in deps[path]:
            add(d)
        if path not in order:
            order.append(path)
    for sym, name in NEEDED:
        if conf.get(sym) == "m":
            assert name in by_name, f"{sym}=m but no {name} in modules.dep"
            add(by_name[name])
        else:
            assert conf.get(sym) == "y", f"kernel {ver}: {sym} is neither built in nor a module"
    return [(modname(p), os.path.join(base, p)) for p in order]


def modname(path):
    name = os.path.basename(path)
    for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if name.endswith(ext):
            name = name[:-len(ext)]
    return name.replace("-", "_")


def module_bytes(path):
    if path.endswith(".ko.xz"):
        import lzma
        return lzma.open(path).read()
    if path.endswith(".ko.gz"):
        import gzip
        return gzip.open(path).read()
    if path.endswith(".ko.zst"):
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    with open(path, "rb") as f:
        return f.read()


def compile_writer(out):
    """recwriter.c, static: musl-gcc, else gcc -static.  Returns the compiler."""
    for cc in (["musl-gcc"], ["gcc"]):
        if shutil.which(cc[0]):
            subprocess.run([*cc, "-std=c17", "-O2", "-static", "-Wall", "-Wextra", "-Werror",
                            "-o", out, RECWRITER_C], check=True, capture_output=True)
            return cc[0]
    raise AssertionError("no C compiler for the record writer")


INIT = """#!/bin/busybox sh
# zfs-live migration test guest (tests/integration/guest.py)
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in {modules}; do
    $B insmod /lib/modules/$m.ko || echo "INSMOD FAILED $m"
done
n=0
while [ ! -b /dev/vda ]; do
    n=$((n + 1))
    if [ $n -gt 3000 ]; then echo "NO DISK"; break; fi
    $B usleep 10000
done
echo "BOOTED"
/bin/recwriter /dev/vda "$zlrun" "$zlinterval"
echo "WRITER EXIT $?"
while :; do $B sleep 3600; done
"""


def cpio_newc(entries):
    """An uncompressed newc archive of [(name, mode, data, rdev)]."""
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate(entries + [("TRAILER!!!", 0, b"", (0, 0))],
                                                    start=1):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0]
        out += b"070701" + b"".join(b"%08X" % f for f in fields) + nb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_image(workdir):
    """Build kernel + initramfs into workdir (made if needed)."""
    os.makedirs(workdir, exist_ok=True)
    ver = kernel_version()
    mods = module_order(ver)
    writer = os.path.join(workdir, "recwriter")
    cc = compile_writer(writer)
    d, f, x, c = 0o040755, 0o100644, 0o100755, 0o020600
    entries = [(n, d, b"", (0, 0)) for n in ("bin", "dev", "proc", "sys", "lib", "lib/modules")]
    entries.append(("dev/console", c, b"", (5, 1)))
    with open("/bin/busybox", "rb") as fh:
        entries.append(("bin/busybox", x, fh.read(), (0, 0)))
    with open(writer, "rb") as fh:
        entries.append(("bin/recwriter", x, fh.read(), (0, 0)))
    for name, path in mods:
        entries.append((f"lib/modules/{name}.ko", f, module_bytes(path), (0, 0)))
    init = INIT.format(modules=" ".join(n for n, _ in mods)).encode()
    entries.append(("init", x, init, (0, 0)))
    initrd = os.path.join(workdir, "initramfs.cpio")
    with open(initrd, "wb") as fh:
        fh.write(cpio_newc(entries))
    return Image(f"/boot/vmlinuz-{ver}", initrd, [n for n, _ in mods], writer, cc)


# --- records -----------------------------------------------------------------

def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def make_record(i, run):
    """Record i of run, byte for byte as recwriter.c writes it."""
    x = (run ^ ((i * 0x9E3779B97F4A7C15) & M64)) | 1
    words = []
    for _ in range(32, REC_SIZE, 8):
        x ^= (x << 13) & M64
        x ^= x >> 7
        x ^= (x << 17) & M64
        words.append(x)
    body = struct.pack("<QQQQ", REC_MAGIC, i, run, 0) + struct.pack(f"<{len(words)}Q", *words)
    return body[:24] + struct.pack("<Q", fnv1a(body)) + body[32:]


def check_record(data, i, run):
    """None if data is record i of run (magic, index, run, checksum, payload),
    else what is wrong."""
    if len(data) != REC_SIZE:
        return f"short read ({len(data)} bytes)"
    magic, idx, rrun, csum = struct.unpack_from("<QQQQ", data)
    if magic != REC_MAGIC:
        return f"bad magic {magic:#x}"
    if idx != i or rrun != run:
        return f"holds record {idx} of run {rrun}"
    if fnv1a(data[:24] + b"\0" * 8 + data[32:]) != csum:
        return "bad checksum"
    if data != make_record(i, run):
        return "payload differs"
    return None


def verify(read, records, run):
    """Check every record in records (indices the guest reported written)
    on the storage, read through read(offset, length) -> bytes.  Reads
    contiguous runs of records at once.  Returns the number checked; raises
    AssertionError naming every bad record (up to 20)."""
    idx = sorted(set(records))
    bad = []
    k = 0
    while k < len(idx):
        j = k
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1 and j + 1 - k < 256:
            j += 1
        first, n = idx[k], j - k + 1
        data = read(first * REC_SIZE, n * REC_SIZE)
        for m in range(n):
            why = check_record(data[m * REC_SIZE:(m + 1) * REC_SIZE], first + m, run)
            if why:
                bad.append(f"record {first + m}: {why}")
        k = j + 1
    assert not bad, f"{len(bad)} of {len(idx)} records bad: " + "; ".join(bad[:20])
    return len(idx)


# --- QMP ---------------------------------------------------------------------

class QmpError(Exception):
    pass


class Qmp:
    """A QMP client on a connected socket: greeting, qmp_capabilities,
    commands answered in order; events are kept in self.events."""

    def __init__(self, sock, timeout=60):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.file = sock.makefile("rb")
        self.events = []
        self.lock = threading.Lock()
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise QmpError("QMP connection closed")
        return json.loads(line)

    def cmd(self, name, **args):
        with self.lock:
            msg = {"execute": name}
            if args:
                msg["arguments"] = args
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            while True:
                reply = self._read()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if "error" in reply:
                    raise QmpError(f"{name}: {reply['error']}")
                return reply["return"]

    def close(self):
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


# --- console -----------------------------------------------------------------

class Records:
    """What the guest reported on its consoles (one Records shared by the
    source and the destination of a migration): REC indices with the time
    and the guest that reported them; all console lines for diagnosis."""

    def __init__(self):
        self.cond = threading.Condition()
        self.recs = {}  # index -> (monotonic time, guest name)
        self.lines = []
        self.other = []  # lines that are not REC (START, END, ERR, kernel...)

    def add_line(self, who, line):
        with self.cond:
            self.lines.append((time.monotonic(), who, line))
            m = re.fullmatch(r"REC (\d+)", line)
            if m:
                self.recs.setdefault(int(m.group(1)), (time.monotonic(), who))
            else:
                self.other.append((who, line))
            self.cond.notify_all()

    def count(self):
        with self.cond:
            return len(self.recs)

    def last(self):
        with self.cond:
            return max(self.recs) if self.recs else None

    def indices(self):
        with self.cond:
            return sorted(self.recs)

    def wait_line(self, pattern, who=None, timeout=60):
        """Wait for a console line matching the regular expression pattern
        (from guest who, if given); returns (who, line)."""
        rx = re.compile(pattern)
        found = []

        def seen():
            found[:] = [(w, ln) for _, w, ln in self.lines
                        if rx.fullmatch(ln) and (who is None or w == who)]
            return found
        self.wait(seen, f"a line {pattern!r}", timeout, fail_on_error=False)
        return found[0]

    def first_after(self, t):
        """(index, time, guest) of the first record reported after t."""
        with self.cond:
            later = [(ts, i, who) for i, (ts, who) in self.recs.items() if ts > t]
        if not later:
            return None
        ts, i, who = min(later)
        return i, ts, who

    def tail(self, n=30):
        with self.cond:
            return "\n".join(f"[{who}] {line}" for _, who, line in self.lines[-n:])

    def errors(self):
        """Lines telling the writer failed or stopped (ERR, WRITER EXIT,
        NO DISK, INSMOD FAILED)."""
        with self.cond:
            return [(who, line) for who, line in self.other
                    if line.startswith(("ERR", "WRITER EXIT", "NO DISK", "INSMOD FAILED"))]

    def wait(self, cond, what, timeout, fail_on_error=True):
        """Wait until cond() (called under the lock) is true; fail at once
        if the writer reports an error (unless fail_on_error is false)."""
        end = time.monotonic() + timeout
        with self.cond:
            while not cond():
                if fail_on_error and self.errors():
                    raise AssertionError(f"the guest failed while waiting for {what}: "
                                         f"{self.errors()}; console:\n{self.tail()}")
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                         f"console:\n{self.tail()}")
                self.cond.wait(left)


class Console:
    """The serial console of one QEMU, read by a thread into Records.  A
    partial line left when the guest moves on (migration stops the vCPU at
    any character) is handed to the destination's console by take_partial/
    give_partial."""

    def __init__(self, sock, who, records):
        self.sock, self.who, self.records = sock, who, records
        self.lock = threading.Lock()
        self.buf = b""
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"console-{who}")
        self.thread.start()

    def _feed(self, data):
        with self.lock:
            self.buf += data.replace(b"\r", b"")
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                self.records.add_line(self.who, line.decode(errors="replace").strip())

    def _run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self._feed(data)

    def drain(self):
        """Feed everything already in the socket (non-blocking), so that
        what the source guest printed before migration completed is
        counted before the destination runs."""
        while True:
            try:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except (BlockingIOError, OSError):
                return
            if not data:
                return
            self._feed(data)

    def take_partial(self):
        with self.lock:
            part, self.buf = self.buf, b""
            return part

    def give_partial(self, part):
        if part:
            self._feed(part)


# --- the guest ---------------------------------------------------------------

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork


def _die_with_parent():
    # a QEMU must not outlive a test run that was killed
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Guest:
    """One QEMU of the test guest.

    Guest(image, nbd_socket, export, workdir, prefix=(), name="src",
          incoming=False, records=None, run_id=1, interval_ms=20,
          mem_mb=128, trace_nbd=True, reconnect_delay=None)
    start() launches `prefix + [qemu-system-x86_64, ...]`; with
    incoming=True it waits, paused, for a migration (migrate_to on the
    source).  records: the Records to report into (a destination shares its
    source's).  workdir (the test's side) holds QEMU's stderr and, by
    default, the unix socket of a migration to this guest.  trace_nbd: QEMU
    logs every NBD request it sends (nbd_requests()).  reconnect_delay:
    QEMU's nbd reconnect-delay (seconds)."""

    def __init__(self, image, nbd_socket, export, workdir, prefix=(), name="src",
                 incoming=False, records=None, run_id=1, interval_ms=20, mem_mb=128,
                 trace_nbd=True, reconnect_delay=None):
        self.image, self.nbd_socket, self.export = image, nbd_socket, export
        self.workdir, self.prefix, self.name = workdir, list(prefix), name
        self.incoming = incoming
        self.records = records if records is not None else Records()
        self.run_id, self.interval_ms, self.mem_mb = run_id, interval_ms, mem_mb
        self.proc = self.qmp = self.console = None
        self.started_at = None
        self.stderr_path = os.path.join(workdir, f"qemu-{name}.stderr")
        self.trace_nbd = trace_nbd
        self.reconnect_delay = reconnect_delay
        self.timings = {}
        self.mig_socket = None

    def argv(self, qmp_fd, ser_fd):
        append = (f"console=ttyS0 quiet loglevel=1 panic=-1 "
                  f"zlrun={self.run_id} zlinterval={self.interval_ms}")
        blockdev = (f"driver=nbd,server.type=unix,server.path={self.nbd_socket},"
                    f"export={self.export},node-name=disk0,"
                    "cache.direct=on,cache.no-flush=off")
        if self.reconnect_delay is not None:
            # after a lost connection, reconnect and retry requests for this
            # many seconds instead of failing them
            blockdev += f",reconnect-delay={self.reconnect_delay}"
        args = ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
                "-machine", "pc,accel=tcg", "-cpu", "qemu64", "-smp", "1",
                "-m", str(self.mem_mb), "-no-reboot",
                "-kernel", self.image.kernel, "-initrd", self.image.initrd, "-append", append,
                "-chardev", f"socket,id=qmp,fd={qmp_fd}", "-mon", "chardev=qmp,mode=control",
                "-chardev", f"socket,id=ser0,fd={ser_fd}", "-serial", "chardev:ser0",
                "-blockdev", blockdev,
                "-device", "virtio-blk-pci,drive=disk0,id=vd0"]
        if self.trace_nbd:
            # every NBD request QEMU sends, with its wall-clock time, on
            # its stderr (a file the test opened: no path in the host)
            args += ["-trace", "enable=nbd_send_request", "-msg", "timestamp=on"]
        if self.incoming:
            args += ["-incoming", "defer", "-S"]
        return [*self.prefix, *args]

    def start(self):
        qa, qb = socket.socketpair()
        sa, sb = socket.socketpair()
        with open(self.stderr_path, "wb") as err:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(self.argv(qb.fileno(), sb.fileno()),
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         pass_fds=[qb.fileno(), sb.fileno()],
                                         start_new_session=True,
                                         preexec_fn=_die_with_parent)
        qb.close()
        sb.close()
        self.console = Console(sa, self.name, self.records)
        try:
            self.qmp = Qmp(qa)
        except Exception as e:
            self.kill()
            raise AssertionError(f"QEMU {self.name} did not answer QMP ({e}): "
                                 f"{self.stderr()}") from e
        if self.incoming:
            # activate the block nodes at `cont`, after the datapath handoff
            self.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "late-block-activate", "state": True}])
        return self

    def stderr(self):
        """QEMU's stderr but the NBD trace, the end of it."""
        try:
            with open(self.stderr_path, errors="replace") as f:
                lines = [ln for ln in f if ":nbd_send_request " not in ln]
            return "".join(lines)[-4000:]
        except OSError:
            return ""

    def nbd_requests(self):
        """[(wall time, type, offset, length)] of the NBD requests this QEMU
        sent (trace_nbd; complete once it has exited).  type: read, write,
        flush, trim, write_zeroes, block_status, disconnect..."""
        out = []
        pat = re.compile(r"^\d+@(\d+\.\d+):nbd_send_request .*\.from = (\d+), \.len = (\d+),"
                         r".*\.type = \d+ \((\w+)\)")
        with open(self.stderr_path, errors="replace") as f:
            for line in f:
                m = pat.match(line)
                if m:
                    out.append((float(m.group(1)), m.group(4), int(m.group(2)),
                                int(m.group(3))))
        return out

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        return self.qmp.cmd("query-status")["status"]

    # -- records --

    def wait_records(self, n, timeout=120):
        """Wait until n records in all have been reported (on this guest or
        on the one it migrated from)."""
        self.records.wait(lambda: len(self.records.recs) >= n, f"{n} records", timeout)
        return self.records.last()

    def wait_record(self, index, timeout=120):
        """Wait until record index has been reported."""
        self.records.wait(lambda: index in self.records.recs, f"record {index}", timeout)

    def wait_boot(self, timeout=180):
        """Wait for the first record; returns the boot time (QEMU start to
        REC 0) in seconds."""
        self.wait_record(0, timeout)
        self.timings["boot"] = self.records.recs[0][0] - self.started_at
        return self.timings["boot"]

    def last_record(self):
        return self.records.last()

    # -- migration --

    def start_migration(self, dest, uri=None, connect_uri=None, max_bandwidth=None):
        """Start migrating to dest (a Guest started with incoming=True).
        uri: what dest listens on (default unix:<dest.workdir>/mig-<name>.sock;
        "tcp:<addr>:<port>" across network namespaces, port 0 for any);
        connect_uri: what the source connects to (default: uri, with the
        port dest bound if uri's port was 0)."""
        if uri is None:
            path = os.path.join(dest.workdir, f"mig-{dest.name}.sock")
            if len(path) > 100:  # sun_path holds 108 bytes
                path = f"/tmp/zl-mig-{os.getpid()}-{id(dest)}.sock"
            dest.mig_socket = path  # removed by dest.kill()
            uri = f"unix:{path}"
        dest.qmp.cmd("migrate-incoming", uri=uri)
        if connect_uri is None:
            connect_uri = uri
            if uri.startswith("tcp:") and uri.endswith(":0"):
                addrs = dest.qmp.cmd("query-migrate").get("socket-address", [])
                port = [a["port"] for a in addrs if a.get("type") in ("inet", "tcp")][0]
                connect_uri = uri[:-1] + str(port)
        params = {"max-bandwidth": max_bandwidth or (1 << 30), "downtime-limit": 300}
        self.qmp.cmd("migrate-set-parameters", **params)
        self.timings["migrate_start"] = time.monotonic()
        self.timings["migrate_wall"] = time.time()
        self.qmp.cmd("migrate", uri=connect_uri)

    def query_migrate(self):
        return self.qmp.cmd("query-migrate")

    def wait_migration(self, states=("completed",), timeout=120):
        """Poll query-migrate until its status is in states; fail on
        "failed" (unless awaited).  Returns the last answer."""
        end = time.monotonic() + timeout
        while True:
            info = self.query_migrate()
            st = info.get("status")
            if st in states:
                return info
            if st == "failed":
                raise AssertionError(f"migration failed: {info}; source: {self.stderr()}")
            if time.monotonic() >= end:
                raise AssertionError(f"timed out waiting for migration {states}: {info}")
            time.sleep(0.02)

    def migrate_to(self, dest, handoff=None, uri=None, connect_uri=None, timeout=120):
        """Live-migrate to dest, in xenopsd's order: migrate, wait for
        completion (the source is then paused, its disk flushed and
        inactive), handoff() (source Datapath.deactivate, destination
        Datapath.activate), `cont` on dest.  Records timings in
        dest.timings (seconds): migration (migrate to completed), handoff,
        and first_rec_after (completion to the first record the destination
        reports).  Returns dest."""
        self.start_migration(dest, uri, connect_uri)
        info = self.wait_migration(timeout=timeout)
        done = time.monotonic()
        dest.timings["completed_wall"] = time.time()
        assert self.status() == "postmigrate", self.status()
        # count what the source printed before it stopped; a partial line
        # goes on at the destination
        self.console.drain()
        dest.console.give_partial(self.console.take_partial())
        dest_status = dest.status()
        assert dest_status in ("paused", "prelaunch", "inmigrate"), dest_status
        t = dest.timings
        t["migration"] = done - self.timings["migrate_start"]
        t["qemu_total_ms"] = info.get("total-time")
        t["qemu_downtime_ms"] = info.get("downtime")
        t["dest_status_before_cont"] = dest_status
        t["last_rec_on_source"] = self.records.last()
        h0 = time.monotonic()
        if handoff:
            handoff()
        t["handoff"] = time.monotonic() - h0
        t["completed_at"] = done
        t["cont_wall"] = time.time()
        dest.qmp.cmd("cont")
        t["cont_at"] = time.monotonic()
        return dest

    def wait_first_record_after_migration(self, timeout=60):
        """On the destination: wait for its first record; records
        first_rec_after (completion to it) and cont_to_rec (cont to it)."""
        t = self.timings
        self.records.wait(lambda: any(w == self.name for _, w in self.records.recs.values()),
                          f"a record from {self.name}", timeout)
        i, ts, _ = self.records.first_after(t["completed_at"])
        t["first_rec_index"] = i
        t["first_rec_after"] = ts - t["completed_at"]
        t["cont_to_rec"] = ts - t["cont_at"]
        return i

    def resume(self):
        """`cont`: on a source after a completed migration QEMU 7.2 accepts
        it, re-activates its block nodes and the guest writes again from
        the old host (what fencing after the handoff must refuse)."""
        self.qmp.cmd("cont")

    def cancel_migration(self, timeout=60):
        """migrate_cancel on the source: it stays (or goes back to) running."""
        self.qmp.cmd("migrate_cancel")
        info = self.wait_migration(states=("cancelled",), timeout=timeout)
        return info

    # -- end --

    def stop(self, timeout=30):
        """quit over QMP, wait for exit; SIGKILL the process group if QEMU
        does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.cmd("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self.kill()

    def kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        else:
            # the prefix (nsenter...) may have forked: end its group too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.mig_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.mig_socket)
        if self.qmp:
            self.qmp.close()
        if self.console:
            with contextlib.suppress(OSError):
                self.console.sock.close()
