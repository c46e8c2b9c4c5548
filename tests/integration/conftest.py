"""Harness: drive the *installed* zfs-live plugin links exactly as
xapi-storage-script does (argv [path, "--json"], the named parameters as one
JSON object on stdin, stdout parsed strictly as one JSON value), and make
real filesystems (ext4, XFS, btrfs) on loop devices.

ZFS_LIVE_ROOT names the install root (make integration sets it).  In CI
(CI=true) a missing prerequisite is a failure, never a skip.

ZFS_LIVE_TEST_WRAP (optional) is a command put before every plugin and
CLI invocation of the helpers here, e.g. tests/tools/k419-exec (the Linux
4.19 system call profile).  `make integration-k419` goes further: its
install root's binary is the launcher itself, so that every invocation,
the tests' own and the NBD server's, runs under the profile
(ZFS_LIVE_K419=1 tells the tests so)."""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid as uuidlib

import pytest

import v5

IN_CI = os.environ.get("CI") == "true"
ROOT = os.environ.get("ZFS_LIVE_ROOT", "")
PLUGIN_ROOT = os.path.join(ROOT, "usr/libexec/xapi-storage-script")
CLI = os.path.join(ROOT, "usr/sbin/zfs-live")
WRAP = os.environ.get("ZFS_LIVE_TEST_WRAP", "").split()

# Runtime state (exports, attachments, the NBD socket, ZFS SR state) of this
# test session, apart from the host's /run/zfs-live.
RUN_DIR = os.environ.setdefault("ZFS_LIVE_RUN", f"/tmp/zfs-live-test-run-{os.getpid()}")

# Sanitizer settings for the ASan+UBSan build under test: any report fails
# the call (non-zero exit), and leaks are reports.
# The NBD server runs detached (stdio on /dev/null), so sanitizer reports of
# every process also go to files in SANITIZER_DIR, checked after each test.
SANITIZER_DIR = os.path.join(RUN_DIR, "sanitizer")
os.makedirs(SANITIZER_DIR, exist_ok=True)
os.environ.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1:exitcode=86:"
                      f"log_path={SANITIZER_DIR}/asan")
os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87:"
                      f"log_path={SANITIZER_DIR}/ubsan")


@pytest.fixture(autouse=True)
def no_sanitizer_reports():
    yield
    reports = os.listdir(SANITIZER_DIR) if os.path.isdir(SANITIZER_DIR) else []
    texts = []
    for r in reports:
        with open(os.path.join(SANITIZER_DIR, r), errors="replace") as f:
            texts.append(f.read())
        os.unlink(os.path.join(SANITIZER_DIR, r))
    assert not texts, "sanitizer reports:\n" + "\n".join(texts)


def wait_for(cond, what, timeout=20, interval=0.05):
    """Poll cond() until it returns something true, and return that; after
    timeout seconds fail, naming what was awaited.  what: a string, or a
    callable giving one (called only on failure, so it can report the state
    seen then: a log, a command's last stderr).  The one way tests wait:
    never sleep in the hope that something has happened."""
    end = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= end:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {text}")
        time.sleep(interval)


def gone(pid):
    """Has process pid exited?  For processes that are not our children (a
    child of ours stays a zombie until reaped: use Popen.poll for those)."""
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True


def need(cond, why):
    """A prerequisite: fail in CI, skip elsewhere."""
    if cond:
        return
    if IN_CI:
        pytest.fail(f"missing prerequisite in CI: {why}")
    pytest.skip(why)


def sanitizer_clean(stderr):
    assert "ERROR: AddressSanitizer" not in stderr, stderr
    assert "ERROR: LeakSanitizer" not in stderr, stderr
    assert "runtime error:" not in stderr, stderr


def sanitizer_file_reports():
    return [r for r in os.listdir(SANITIZER_DIR)] if os.path.isdir(SANITIZER_DIR) else []


class Result:
    def __init__(self, proc, method):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.method = method

    @property
    def killed(self):
        return self.rc == -signal.SIGKILL

    def value(self):
        """The one JSON value on stdout, parsed strictly."""
        text = self.stdout.decode("utf-8")
        assert text.strip(), f"{self.method}: empty stdout"
        # json.loads raises on anything after the value but whitespace
        return json.loads(text)


class Plugin:
    """One volume plugin directory, e.g. org.xen.xapi.storage.file-live."""

    def __init__(self, sr_type):
        self.sr_type = sr_type
        self.dir = os.path.join(PLUGIN_ROOT, "volume", f"org.xen.xapi.storage.{sr_type}")
        self.wrap = list(WRAP)  # a launcher to run the links under

    def path(self, method):
        return os.path.join(self.dir, method)

    def run(self, method, params, env=None, raw=None, timeout=120):
        """Invoke like xapi-storage-script: exec, no shell, --json, JSON on
        stdin without a trailing newline, then EOF."""
        data = raw if raw is not None else json.dumps(params).encode()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.run([*self.wrap, self.path(method), "--json"], input=data,
                              capture_output=True, cwd="/", env=full_env, timeout=timeout)
        res = Result(proc, method)
        if not res.killed:
            sanitizer_clean(proc.stderr.decode(errors="replace"))
        return res

    def ok(self, method, **params):
        params.setdefault("dbg", "test")
        res = self.run(method, params)
        assert res.rc == 0, (f"{method} failed rc={res.rc}: {res.stdout!r} "
                             f"{res.stderr.decode(errors='replace')}")
        return res.value()

    def err(self, method, params=None, raw=None, env=None):
        res = self.run(method, params, raw=raw, env=env)
        assert res.rc != 0, f"{method} unexpectedly succeeded: {res.stdout!r}"
        assert not res.killed
        return v5.error(res.value())


@pytest.fixture(scope="session")
def installed():
    need(ROOT and os.path.isdir(PLUGIN_ROOT),
         "ZFS_LIVE_ROOT must name an install root (run `make integration`)")
    return ROOT


@pytest.fixture(scope="session")
def plugin(installed):
    p = Plugin("file-live")
    assert os.path.islink(p.path("SR.create"))
    return p


def cli(*args, check=True, input=None, env=None):
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run([*WRAP, CLI, *args], capture_output=True, input=input, env=full_env,
                          timeout=120)
    sanitizer_clean(proc.stderr.decode(errors="replace"))
    if check:
        assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


def zfs_cmd(*args, check=True):
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stderr)
    return proc


class SR:
    """An SR made through the plugin, with helpers that do not depend on how
    its backend stores volumes."""

    # after which fault-injection step a new volume is committed
    COMMITS_AT = {"create": {"committed"}, "snapshot": {"committed"},
                  "clone": {"committed"}}

    def __init__(self, plugin, config):
        self.plugin = plugin
        self.uuid = str(uuidlib.uuid4())
        self.config = plugin.ok("SR.create", uuid=self.uuid, configuration=config,
                                name="test SR", description="")
        self.key = plugin.ok("SR.attach", configuration=self.config)
        self.path = self.key

    def call(self, method, **params):
        return self.plugin.ok(method, sr=self.key, **params)

    def create(self, size=16 << 20, name="disk", description="", sharable=False):
        return v5.volume(self.call("Volume.create", name=name, description=description,
                                   size=size, sharable=sharable))

    def ls(self):
        return [v5.volume(v) for v in self.call("SR.ls")]

    def read(self, key, offset=0, length=None):
        args = ["vol", "read", self.key, key, "--offset", str(offset)]
        if length is not None:
            args += ["--length", str(length)]
        return cli(*args).stdout

    def write(self, key, data, offset=0):
        return cli("vol", "write", self.key, key, "--offset", str(offset), input=data)

    def digest(self, key):
        import hashlib
        return hashlib.sha256(self.read(key)).hexdigest()

    def state_dir(self):
        """Where the SR keeps locks and intent records."""
        return os.path.join(self.path, ".zfs-live")

    def journal_dir(self):
        return os.path.join(self.state_dir(), "journal")

    def journal(self):
        """Intent records (the journal's spare record is not one)."""
        jdir = self.journal_dir()
        return [n for n in os.listdir(jdir) if n != "spare"] if os.path.isdir(jdir) else []

    def check_stats(self, listed):
        for v in listed:
            got = v5.volume(self.call("Volume.stat", key=v["key"]))
            # allocation may move as the storage settles; everything else not
            got.pop("physical_utilisation")
            want = dict(v)
            want.pop("physical_utilisation")
            assert got == want


class FileSR(SR):
    def __init__(self, plugin, path):
        super().__init__(plugin, {"path": path})

    def img(self, key):
        return os.path.join(self.path, key + ".img")

    def state(self):
        """Everything observable: the directory (names, sizes, metadata
        content) and what SR.ls says.  Equal states = unchanged SR."""
        files = {}
        for dirpath, _, names in os.walk(self.path):
            for n in names:
                p = os.path.join(dirpath, n)
                rel = os.path.relpath(p, self.path)
                if rel == ".zfs-live/lock" or rel.startswith(".zfs-live/locks/"):
                    continue
                st = os.lstat(p)
                content = None
                if n.endswith(".json"):
                    with open(p, "rb") as f:
                        content = f.read()
                files[rel] = (st.st_size, content)
        return files, sorted(json.dumps(v, sort_keys=True) for v in self.ls())

    def check_consistent(self):
        """No partial objects: every image has metadata and vice versa, no
        temporaries, no pending intent records; every listed volume stats.
        The listing is the "next call" that runs recovery."""
        listed = self.ls()
        names = os.listdir(self.path)
        imgs = {n[:-4] for n in names if n.endswith(".img") and not n.startswith(".")}
        metas = {n[:-10] for n in names if n.endswith(".meta.json") and not n.startswith(".")}
        assert imgs == metas, f"images without metadata or metadata without image: {imgs ^ metas}"
        temps = [n for n in names if n.startswith(".") and n != ".zfs-live"]
        assert not temps, f"leftover temporaries: {temps}"
        assert not self.journal(), f"unrecovered intent records: {self.journal()}"
        assert {v["key"] for v in listed} == metas
        self.check_stats(listed)
        for v in listed:
            assert os.path.getsize(self.img(v["key"])) == v["virtual_size"]
        return listed


META_PROPS = ",".join(["zfs-live:meta"] + [f"zfs-live:meta.{i}" for i in range(1, 8)] +
                      [f"zfs-live:meta.b{i}" for i in range(1, 8)])


class ZfsSR(SR):
    """A zfs-live SR (dataset layout here: zfs-fuse has no zvols)."""

    # ZFS stores data and metadata in one command: committed from "data" on
    COMMITS_AT = {"create": {"data", "committed"}, "snapshot": {"data", "committed"},
                  "clone": {"data", "committed"}}

    def __init__(self, plugin, dataset_path, **extra):
        super().__init__(plugin, dict({"path": dataset_path}, **extra))
        self.dataset = f"{dataset_path}/{self.uuid}"

    def state_dir(self):
        # pools are host-local: runtime state lives in /run
        return f"{RUN_DIR}/sr/" + self.key.replace("/", "%2F")

    def objects(self):
        """{zfs name: {prop: value}} of everything in the SR dataset."""
        out = zfs_cmd("zfs", "get", "-Hpr", "-o", "name,property,value",
                      "type,origin,volsize,refreservation,compression,zfs-live:size," +
                      META_PROPS,
                      self.dataset).stdout
        objs = {}
        for line in out.splitlines():
            name, prop, value = line.split("\t")
            objs.setdefault(name, {})[prop] = value
        return objs

    @staticmethod
    def meta_of(props):
        v0 = props.get("zfs-live:meta", "-")
        if v0 == "-":
            return None
        head, _, rest = v0.partition(":")  # v1:<n>:<sum>:<text>, v2:<bank>:...
        bank = ""
        if head == "v2":
            bank, _, rest = rest.partition(":")
            bank = "" if bank == "a" else bank
        n = int(rest.split(":")[0])
        text = rest.split(":", 2)[2] + "".join(props[f"zfs-live:meta.{bank}{i}"]
                                               for i in range(1, n))
        return json.loads(text)

    def state(self):
        objs = self.objects()
        return ({k: v for k, v in objs.items()}, sorted(os.listdir(os.path.join(
            self.path, ".zfs-live"))), self.journal(),
            sorted(json.dumps(v, sort_keys=True) for v in self.ls()))

    def check_state_dir(self):
        assert os.path.isdir(self.journal_dir()) or not self.journal()

    def pool_origins(self):
        """The origins of every clone in the pool."""
        out = zfs_cmd("zfs", "get", "-Hr", "-o", "value", "origin",
                      self.dataset.split("/")[0]).stdout
        return {v for v in out.split() if v != "-"}

    def check_consistent(self):
        listed = self.ls()
        assert not self.journal(), f"unrecovered intent records: {self.journal()}"
        objs = self.objects()
        visible, hidden = set(), set()
        clones = {n.rsplit("/", 1)[1] for n in objs if "@" not in n}
        snaps = {n.split("@", 1)[1] for n in objs if "@" in n}
        for name, props in objs.items():
            if name == self.dataset:
                continue
            rel = name[len(self.dataset) + 1:]
            last = rel.split("@", 1)[1] if "@" in rel else rel
            assert not last.startswith("_zl-rv-"), f"revert left half done: {name}"
            if last.startswith("_zl-ro-"):
                assert last[len("_zl-ro-"):] in snaps, f"stray read clone {name}"
                continue
            if last.startswith("_zl-origin-"):
                # its clone may be a copy in another SR of the pool (vol copy)
                assert last[len("_zl-origin-"):] in clones or name in self.pool_origins(), \
                    f"stray clone origin {name}"
                continue
            meta = self.meta_of(props)
            assert meta is not None, f"object without metadata (partial): {name}"
            assert meta["key"] == last, f"{name} carries the metadata of {meta['key']}"
            (hidden if meta.get("hidden") else visible).add(last)
            if props["type"] == "filesystem":
                assert props["zfs-live:size"] != "-", f"{name} has no size"
                disk = os.path.join(self.path, rel, "disk.img")
                if os.path.isfile(disk):  # made on first use
                    assert os.path.getsize(disk) == int(props["zfs-live:size"]), name
        bm = os.path.join(self.key, ".zfs-live", "bookmarked")
        if os.path.isdir(bm):  # data destroyed where the pool has bookmarks
            visible |= {n[:-5] for n in os.listdir(bm) if n.endswith(".json")}
        assert {v["key"] for v in listed} == visible
        self.check_stats(listed)
        return listed


ZFS_POOL = {}


def zfs_pool(tmp_path_factory):
    """One zfs-fuse pool for the session, on a sparse file."""
    if ZFS_POOL:
        return ZFS_POOL["name"]
    need(shutil.which("zfs-fuse") is not None and shutil.which("zpool") is not None,
         "zfs-fuse is not installed")
    need(os.geteuid() == 0, "zfs-fuse needs root")
    if zfs_cmd("zpool", "list", "-H", check=False).returncode != 0:
        # no daemon serving: start one (it daemonizes), wait for its socket.
        # zfs-fuse silently refuses to start over the pid file of a daemon
        # that was killed or is still exiting: wait for that one to go, then
        # remove its file.
        wait_for(lambda: subprocess.run(["pgrep", "-x", "zfs-fuse"],
                                        capture_output=True).returncode != 0,
                 "the previous zfs-fuse daemon to exit", timeout=30, interval=0.1)
        for stale in ("/run/zfs-fuse.pid", "/var/run/zfs-fuse.pid"):
            if os.path.exists(stale):
                os.unlink(stale)
        subprocess.run(["zfs-fuse", "--pidfile", "/run/zfs-fuse.pid"], check=True)
        last = {}

        def serving():
            last["r"] = zfs_cmd("zpool", "list", "-H", check=False)
            return last["r"].returncode == 0
        wait_for(serving, lambda: "zfs-fuse to answer zpool list (last: "
                 f"{last['r'].stderr.strip()!r})", timeout=30, interval=0.1)
    where = tmp_path_factory.mktemp("zpool")
    img = str(where / "pool.img")
    with open(img, "wb") as f:
        f.truncate(4 << 30)
    name = f"zlt{os.getpid()}"
    zfs_cmd("zpool", "create", name, img)
    ZFS_POOL.update(name=name, img=img)
    return name


def zfs_pool_cleanup():
    """Destroy the session's pool.  zfs-fuse answers "busy" for a moment
    after use: wait for the destroy to go through (bounded), so no pool
    outlives the session."""
    if not ZFS_POOL:
        return
    destroy_pool(ZFS_POOL["name"])


def destroy_pool(name, timeout=30):
    """zpool destroy -f name, retried while zfs-fuse answers "busy" for a
    moment after use; fails, with zpool's last answer, if the pool is still
    there after timeout seconds."""
    last = {}

    def destroyed():
        last["r"] = zfs_cmd("zpool", "destroy", "-f", name, check=False)
        return last["r"].returncode == 0
    wait_for(destroyed, lambda: f"zpool destroy {name} (last: "
             f"{last['r'].stderr.strip()!r})", timeout=timeout, interval=0.1)


def stop_nbd_server():
    pidfile = os.path.join(RUN_DIR, "nbd.pid")
    if os.path.exists(pidfile):
        try:
            os.kill(int(open(pidfile).read()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass


def stop_nbd_server_and_wait():
    """Stop the session's NBD server (if one runs) and wait until it has
    exited, so the next attach starts a new one."""
    try:
        pid = int(open(os.path.join(RUN_DIR, "nbd.pid")).read())
    except (OSError, ValueError):
        return
    stop_nbd_server()
    wait_for(lambda: gone(pid), f"the NBD server (pid {pid}) to stop")


def pytest_sessionfinish(session, exitstatus):
    stop_nbd_server()
    zfs_pool_cleanup()


@pytest.fixture(scope="session")
def zpool(installed, tmp_path_factory):
    return zfs_pool(tmp_path_factory)


@pytest.fixture(scope="session")
def zplugin(installed):
    p = Plugin("zfs-live")
    assert os.path.islink(p.path("SR.create"))
    return p


SR_TYPES = ["file-live", "zfs-live"]


@pytest.fixture(params=SR_TYPES)
def sr(request, plugin, tmp_path, tmp_path_factory):
    """A fresh SR of each type: the volume suite runs against both."""
    if request.param == "file-live":
        return FileSR(plugin, str(tmp_path / "sr"))
    pool = zfs_pool(tmp_path_factory)
    zp = Plugin("zfs-live")
    return ZfsSR(zp, f"{pool}/t{uuidlib.uuid4().hex[:8]}")


@pytest.fixture
def file_sr(plugin, tmp_path):
    return FileSR(plugin, str(tmp_path / "sr"))


# --- real filesystems on loop devices ----------------------------------------

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}


def make_fs(kind, where, size_mb=768):
    need(os.geteuid() == 0, "loop devices and mount need root")
    need(shutil.which(MKFS[kind][0]) is not None, f"{MKFS[kind][0]} is not installed")
    img = os.path.join(where, f"{kind}.img")
    mnt = os.path.join(where, f"{kind}-mnt")
    os.makedirs(mnt, exist_ok=True)
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(MKFS[kind] + [img], check=True, capture_output=True)
    proc = subprocess.run(["mount", "-o", "loop", img, mnt], capture_output=True)
    need(proc.returncode == 0, f"cannot loop-mount {kind}: {proc.stderr.decode()}")
    return img, mnt


@pytest.fixture(scope="module", params=["ext4", "xfs", "btrfs"])
def fs(request, tmp_path_factory):
    where = tmp_path_factory.mktemp(request.param)
    img, mnt = make_fs(request.param, str(where))
    yield request.param, mnt
    subprocess.run(["umount", mnt], check=False)
    os.unlink(img)


# --- data path --------------------------------------------------------------

DP_ROOT = os.path.join(PLUGIN_ROOT, "datapath", "zfs-live")


class Datapath:
    """The datapath plugin, invoked like xapi-storage-script does."""

    def __init__(self):
        self.plugin = Plugin("zfs-live")
        self.plugin.dir = DP_ROOT

    def ok(self, method, **params):
        return self.plugin.ok(method, **params)

    def err(self, method, params=None, env=None):
        return self.plugin.err(method, params, env=env)

    def run(self, method, params, env=None):
        return self.plugin.run(method, params, env=env)


@pytest.fixture(scope="session")
def datapath(installed):
    return Datapath()


class Attached:
    """A volume attached through Datapath.attach: its URI, export, socket."""

    def __init__(self, sr, vol, dp, domain="1"):
        self.sr, self.vol, self.dp, self.domain = sr, vol, dp, domain
        self.uri = vol["uri"][0]
        self.backend = dp.ok("Datapath.attach", uri=self.uri, domain=domain)
        impls = dict((i[0], i[1]) for i in self.backend["implementations"])
        nbd = impls["Nbd"]["uri"]  # nbd:unix:<socket>:exportname=<name>
        _, _, rest = nbd.partition("nbd:unix:")
        self.socket, _, name = rest.partition(":exportname=")
        self.export = name
        self.blockdev = impls.get("BlockDevice", {}).get("path")
        self.nbd_uri = f"nbd+unix:///{name}?socket={self.socket}"

    def detach(self):
        self.dp.ok("Datapath.detach", uri=self.uri, domain=self.domain)


@pytest.fixture
def attached(file_sr, datapath):
    v = file_sr.create(size=64 << 20, name="nbd")
    a = Attached(file_sr, v, datapath)
    yield a
    a.detach()


@pytest.fixture(scope="module")
def cluster(installed, tmp_path_factory):
    """Hosts a and b and a GlusterFS storage host, each in its own network
    and mount namespaces, the volume mounted at cluster.mnt on both
    (tests/integration/hosts.py)."""
    import hosts  # it imports this module
    yield from hosts.cluster_of(tmp_path_factory)


# Tests never read this host's XAPI inventory (core/host/platform.c); the
# ones about platforms point ZFS_LIVE_INVENTORY at tests/unit/data/inventory.
os.environ.setdefault("ZFS_LIVE_INVENTORY", "/nonexistent/xensource-inventory")
