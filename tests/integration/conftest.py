"""Harness: drive the *installed* zfs-live plugin links exactly as
xapi-storage-script does (argv [path, "--json"], the named parameters as one
JSON object on stdin, stdout parsed strictly as one JSON value), and make
real filesystems (ext4, XFS, btrfs) on loop devices.

ZFS_LIVE_ROOT names the install root (make integration sets it).  In CI
(CI=true) a missing prerequisite is a failure, never a skip."""

import json
import os
import shutil
import signal
import subprocess
import uuid as uuidlib

import pytest

import v5

IN_CI = os.environ.get("CI") == "true"
ROOT = os.environ.get("ZFS_LIVE_ROOT", "")
PLUGIN_ROOT = os.path.join(ROOT, "usr/libexec/xapi-storage-script")
CLI = os.path.join(ROOT, "usr/sbin/zfs-live")

# Sanitizer settings for the ASan+UBSan build under test: any report fails
# the call (non-zero exit), and leaks are reports.
os.environ.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1:exitcode=86")
os.environ.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1:exitcode=87")


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

    def path(self, method):
        return os.path.join(self.dir, method)

    def run(self, method, params, env=None, raw=None, timeout=120):
        """Invoke like xapi-storage-script: exec, no shell, --json, JSON on
        stdin without a trailing newline, then EOF."""
        data = raw if raw is not None else json.dumps(params).encode()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.run([self.path(method), "--json"], input=data,
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
    proc = subprocess.run([CLI, *args], capture_output=True, input=input, env=full_env,
                          timeout=120)
    sanitizer_clean(proc.stderr.decode(errors="replace"))
    if check:
        assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
    return proc


class SR:
    """A file-live SR made through the plugin, with helpers."""

    def __init__(self, plugin, path):
        self.plugin = plugin
        self.uuid = str(uuidlib.uuid4())
        cfg = plugin.ok("SR.create", uuid=self.uuid, configuration={"path": path},
                        name="test SR", description="")
        self.key = plugin.ok("SR.attach", configuration=cfg)
        self.path = self.key

    def call(self, method, **params):
        return self.plugin.ok(method, sr=self.key, **params)

    def create(self, size=16 << 20, name="disk", description="", sharable=False):
        return v5.volume(self.call("Volume.create", name=name, description=description,
                                   size=size, sharable=sharable))

    def ls(self):
        return [v5.volume(v) for v in self.call("SR.ls")]

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
        jdir = os.path.join(self.path, ".zfs-live/journal")
        pending = os.listdir(jdir) if os.path.isdir(jdir) else []
        assert not pending, f"unrecovered intent records: {pending}"
        assert {v["key"] for v in listed} == metas
        for v in listed:
            assert v5.volume(self.call("Volume.stat", key=v["key"])) == v
            assert os.path.getsize(self.img(v["key"])) == v["virtual_size"]
        return listed


@pytest.fixture
def sr(plugin, tmp_path):
    return SR(plugin, str(tmp_path / "sr"))


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
