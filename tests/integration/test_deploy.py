"""zfs-live-deploy (scripts/deploy.sh): one-command install into a
throwaway root, verified through the installed plugin links as
xapi-storage-script runs them; rollback; a fault injected at every step
restoring the previous installation byte for byte; uninstall leaving SR
data alone; the Python predecessor refused, then taken over with its SRs
adopted in place and restored by rollback."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import uuid as uuidlib

import pytest

from conftest import ROOT, cli, need, wait_for, zfs_cmd, zfs_pool  # noqa: F401

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(TOP, "scripts", "deploy.sh")

INSTALL_STEPS = ["backup", "stage", "verify-staged", "takeover", "units", "links", "switch",
                 "verify-installed", "adopt-srs", "restart", "prune"]
ROLLBACK_STEPS = ["backup", "units", "switch", "verify-installed", "restart"]
UNINSTALL_STEPS = ["backup", "remove", "restart"]


@pytest.fixture(scope="module")
def binaries(installed, tmp_path_factory):
    """Two versions of the binary under test: A is the build, B the same
    program with a byte appended (another checksum, so another version)."""
    built = os.path.realpath(os.path.join(ROOT, "usr/libexec/zfs-live/zfs-live"))
    where = tmp_path_factory.mktemp("bins")
    a, b = str(where / "zfs-live-a"), str(where / "zfs-live-b")
    shutil.copy(built, a)
    shutil.copy(built, b)
    with open(b, "ab") as f:
        f.write(b"\0")
    return a, b


def deploy(root, *args, fault=None, check=True):
    env = dict(os.environ)
    env.pop("ZFS_LIVE_DEPLOY_FAULT", None)
    if fault:
        env["ZFS_LIVE_DEPLOY_FAULT"] = fault
    proc = subprocess.run(["bash", DEPLOY, "--root", str(root), *args], capture_output=True,
                          text=True, env=env, timeout=300)
    if check:
        assert proc.returncode == 0, (args, fault, proc.stdout, proc.stderr)
    return proc


def tree(root):
    """Every entry under root: type, mode, content checksum or link target."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", stat.S_IMODE(st.st_mode),
                                hashlib.sha256(f.read()).hexdigest())
    return out


def query(root, sr_type, kind="volume"):
    """Plugin.Query through the installed link, as xapi-storage-script
    runs it: exec, --json, the parameters on stdin."""
    d = (f"volume/org.xen.xapi.storage.{sr_type}" if kind == "volume" else
         f"datapath/{sr_type}")
    link = os.path.join(root, "usr/libexec/xapi-storage-script", d, "Plugin.Query")
    proc = subprocess.run([link, "--json"], input=b'{"dbg": "test"}', capture_output=True,
                          cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def version_id(binary):
    with open(binary, "rb") as f:
        return "0.1.0-" + hashlib.sha256(f.read()).hexdigest()[:12]


def current(root):
    return os.readlink(os.path.join(root, "usr/libexec/zfs-live/current"))


def test_install_links_lead_through_current(binaries, tmp_path):
    a, _ = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    assert current(root) == "versions/" + version_id(a)
    for t in ("zfs-live", "file-live"):
        assert query(root, t)["plugin"] == t
        link = root / f"usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.{t}"
        assert os.readlink(link).startswith("../../zfs-live/current/")
    assert query(root, "zfs-live", "datapath")["plugin"] == "zfs-live"
    # the CLI and the Ganeti provider (both places) reach the same binary
    real = os.path.realpath(root / "usr/sbin/zfs-live")
    assert real == str(root / "usr/libexec/zfs-live/versions" / version_id(a) / "zfs-live")
    for g in ("srv/ganeti/extstorage/zfs-live", "usr/share/ganeti/extstorage/zfs-live"):
        assert os.path.realpath(root / g / "create") == real
        assert (root / g / "parameters.list").read_text()
    with open(a, "rb") as f1, open(real, "rb") as f2:
        assert f1.read() == f2.read()
    # installing the same version again changes nothing
    before = tree(root)
    assert "installed already" in deploy(root, "install", a).stdout
    assert tree(root) == before


def test_upgrade_then_rollback(binaries, tmp_path):
    a, b = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    deploy(root, "install", b)
    assert current(root) == "versions/" + version_id(b)
    assert os.readlink(root / "usr/libexec/zfs-live/previous") == "versions/" + version_id(a)
    out = deploy(root, "rollback").stdout
    assert "rolled back" in out
    assert current(root) == "versions/" + version_id(a)
    assert os.readlink(root / "usr/libexec/zfs-live/previous") == "versions/" + version_id(b)
    assert query(root, "zfs-live")["plugin"] == "zfs-live"
    # a third version: the oldest not current or previous goes
    c = str(tmp_path / "zfs-live-c")
    shutil.copy(b, c)
    with open(c, "ab") as f:
        f.write(b"\1")
    deploy(root, "install", c)
    assert sorted(os.listdir(root / "usr/libexec/zfs-live/versions")) == sorted(
        [version_id(a), version_id(c)])


def test_broken_version_is_not_switched_to(binaries, tmp_path):
    """A binary that runs but does not answer Plugin.Query: refused at
    verify-staged, the installation before left byte for byte."""
    a, _ = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    bad = tmp_path / "zfs-live-bad"
    built = os.path.realpath(a)
    bad.write_text(f"#!/bin/sh\ncase \"$(basename \"$0\")\" in Plugin.Query) exit 1;; esac\n"
                   f"exec {built} \"$@\"\n")
    bad.chmod(0o755)
    before = tree(root)
    proc = deploy(root, "install", str(bad), check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Plugin.Query failed" in proc.stderr
    assert "previous installation restored" in proc.stderr
    assert tree(root) == before


@pytest.mark.parametrize("step", INSTALL_STEPS)
@pytest.mark.parametrize("start", ["empty", "installed", "install.sh"])
def test_install_fault_restores_byte_for_byte(binaries, tmp_path, step, start):
    a, b = binaries
    root = tmp_path / "root"
    root.mkdir()
    if start == "installed":
        deploy(root, "install", a)
    elif start == "install.sh":  # the layout of make install / scripts/install.sh
        subprocess.run([os.path.join(TOP, "scripts/install.sh"), a, str(root), "/usr"],
                       check=True, capture_output=True)
    before = tree(root)
    proc = deploy(root, "install", b, fault=step, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"fault injected at step {step}" in proc.stderr
    assert tree(root) == before


@pytest.mark.parametrize("step", ["stage", "switch", "verify-installed", "prune"])
def test_install_killed_is_restored_by_the_next_run(binaries, tmp_path, step):
    a, b = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    before = tree(root)
    proc = deploy(root, "install", b, fault=f"{step}:kill", check=False)
    assert proc.returncode == -9
    assert "interrupted transaction" in deploy(root, "status").stdout
    assert tree(root) != before
    proc = deploy(root, "recover")
    assert "restoring" in proc.stderr
    assert tree(root) == before


@pytest.mark.parametrize("step", ROLLBACK_STEPS)
def test_rollback_fault_restores_byte_for_byte(binaries, tmp_path, step):
    a, b = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    deploy(root, "install", b)
    before = tree(root)
    proc = deploy(root, "rollback", fault=step, check=False)
    assert proc.returncode == 1 and f"step {step}" in proc.stderr
    assert tree(root) == before


@pytest.mark.parametrize("step", UNINSTALL_STEPS)
def test_uninstall_fault_restores_byte_for_byte(binaries, tmp_path, step):
    a, b = binaries
    root = tmp_path / "root"
    deploy(root, "install", a)
    deploy(root, "install", b)
    before = tree(root)
    proc = deploy(root, "uninstall", fault=step, check=False)
    assert proc.returncode == 1
    assert tree(root) == before


def test_uninstall_leaves_sr_data(binaries, tmp_path):
    """An SR made and written through the deployed plugin and CLI keeps
    every byte after uninstall; nothing of zfs-live is left in the root."""
    a, _ = binaries
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").mkdir()
    empty = tree(root)
    deploy(root, "install", a)
    plug = root / "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.file-live"

    def call(method, **params):
        params.setdefault("dbg", "test")
        p = subprocess.run([str(plug / method), "--json"], input=json.dumps(params).encode(),
                           capture_output=True, cwd="/", timeout=60)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    srdir = tmp_path / "sr"
    config = call("SR.create", uuid=str(uuidlib.uuid4()), configuration={"path": str(srdir)},
                  name="sr", description="")
    key = call("SR.attach", configuration=config)
    vol = call("Volume.create", sr=key, name="d", description="", size=1 << 20,
               sharable=False)
    data = os.urandom(1 << 20)
    w = subprocess.run([str(root / "usr/sbin/zfs-live"), "vol", "write", key, vol["key"]],
                       input=data, capture_output=True, timeout=60)
    assert w.returncode == 0, w.stderr
    sr_before = tree(srdir)
    out = deploy(root, "uninstall").stdout
    assert "SR data" in out
    assert tree(srdir) == sr_before
    # no file or link is left, nothing named zfs-live; directories that a
    # host has anyway (usr/lib/systemd/system, ...) may stay
    left = tree(root)
    assert all(v[0] == "d" for v in left.values()), left
    assert not [p for p in left if "zfs-live" in p], left
    assert set(empty) <= set(left)
    with open(srdir / (vol["key"] + ".img"), "rb") as f:
        assert f.read() == data


# --- the Python predecessor ---------------------------------------------------

VOLUME_METHODS = ["Plugin.Query", "SR.create", "SR.attach", "SR.ls", "Volume.create"]
DATAPATH_METHODS = ["Plugin.Query", "Datapath.attach"]


def make_predecessor(root):
    """Its installer's layout (reference/predecessor-zfs-live.md 2.13):
    plugin scripts under /usr/libexec/zfs-live-plugins, symlinked (by
    absolute path) into the xapi-storage-script roots, the shim libraries,
    and the xe wrapper with the real xe kept as xe.real."""
    proot = root / "usr/libexec/zfs-live-plugins"
    vol = proot / "volume/org.xen.xapi.storage.zfs-live"
    dp = proot / "datapath/raw+qdisk"
    for d, script, methods in ((vol, "volume.py", VOLUME_METHODS),
                               (dp, "datapath.py", DATAPATH_METHODS)):
        d.mkdir(parents=True)
        (d / script).write_text("#!/usr/bin/python2\n# the predecessor\n")
        (d / script).chmod(0o755)
        for m in methods:
            os.symlink(script, d / m)
    xss = root / "usr/libexec/xapi-storage-script"
    (xss / "volume").mkdir(parents=True)
    (xss / "datapath").mkdir(parents=True)
    os.symlink("/usr/libexec/zfs-live-plugins/volume/org.xen.xapi.storage.zfs-live",
               xss / "volume/org.xen.xapi.storage.zfs-live")
    os.symlink("/usr/libexec/zfs-live-plugins/datapath/raw+qdisk", xss / "datapath/raw+qdisk")
    shim = root / "usr/lib/python3.6/site-packages/shim"
    shim.mkdir(parents=True)
    (shim / "xapi_compat.py").write_text("# shim\n")
    xe = root / "opt/xensource/bin"
    xe.mkdir(parents=True)
    (xe / "xe").write_text("#!/usr/bin/python3\n# the xe wrapper\n")
    (xe / "xe.real").write_bytes(b"\x7fELF the real xe")
    (xe / "xe").chmod(0o755)
    (xe / "xe.real").chmod(0o755)


def test_predecessor_is_refused_with_what_was_found(binaries, tmp_path):
    a, _ = binaries
    root = tmp_path / "root"
    make_predecessor(root)
    before = tree(root)
    proc = deploy(root, "install", a, check=False)
    assert proc.returncode == 3
    for what in ("usr/libexec/zfs-live-plugins", "org.xen.xapi.storage.zfs-live",
                 "datapath/raw+qdisk", "opt/xensource/bin/xe.real", "--takeover"):
        assert what in proc.stderr, what
    assert tree(root) == before


def test_make_install_refuses_the_predecessor_and_deploys_layout(binaries, tmp_path):
    """scripts/install.sh (make install) wrote through the predecessor's
    plugin directory and deleted two of its links; now it refuses, as it
    does over zfs-live-deploy's layout, and changes nothing."""
    a, _ = binaries
    install = os.path.join(TOP, "scripts/install.sh")
    for make in (make_predecessor, lambda r: deploy(r, "install", a)):
        root = tmp_path / f"root{id(make)}"
        make(root)
        before = tree(root)
        proc = subprocess.run([install, a, str(root), "/usr"], capture_output=True, text=True)
        assert proc.returncode == 3, proc.stderr
        assert "refusing" in proc.stderr and "zfs-live-deploy" in proc.stderr
        assert tree(root) == before


@pytest.mark.parametrize("step", INSTALL_STEPS)
def test_takeover_fault_restores_the_predecessor(binaries, tmp_path, step):
    a, _ = binaries
    root = tmp_path / "root"
    make_predecessor(root)
    before = tree(root)
    proc = deploy(root, "install", "--takeover", "--no-adopt", a, fault=step,
                  check=False)
    assert proc.returncode == 1, proc.stderr
    assert tree(root) == before


def test_takeover_then_rollback_restores_the_predecessor(binaries, tmp_path):
    a, _ = binaries
    root = tmp_path / "root"
    make_predecessor(root)
    before = tree(root)
    deploy(root, "install", "--takeover", "--no-adopt", a)
    assert query(root, "zfs-live")["plugin"] == "zfs-live"
    assert not (root / "usr/libexec/zfs-live-plugins").exists()
    assert not os.path.lexists(root / "usr/libexec/xapi-storage-script/datapath/raw+qdisk")
    assert (root / "opt/xensource/bin/xe").read_bytes() == b"\x7fELF the real xe"
    out = deploy(root, "rollback").stdout
    assert "Python driver" in out
    assert tree(root) == before


def make_predecessor_sr(pool, parent, data):
    """An SR as the predecessor's SR.create leaves it: <parent>/<sr-uuid>
    marked xcp:sr=<uuid>, mounted at /var/run/sr-mount/<uuid>, meta.json and
    its metabase inside; a VDI <sr>/<vdi-uuid>.  Stand-in: zfs-fuse has no
    zvols, so the VDI is a dataset holding disk.img (what a zfs-live SR of
    layout=dataset holds); the real driver's VDIs are zvols."""
    sr, vdi = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    zfs_cmd("zfs", "create", "-o", "mountpoint=none", f"{pool}/{parent}")
    ds = f"{pool}/{parent}/{sr}"
    mnt = f"/var/run/sr-mount/{sr}"
    zfs_cmd("zfs", "create", "-o", f"mountpoint={mnt}", "-o", f"xcp:sr={sr}", ds)
    with open(f"{mnt}/meta.json", "w") as f:
        json.dump({"name": "old SR", "uuid": sr, "zpool": pool, "dataset": f"{parent}/{sr}"}, f)
    with open(f"{mnt}/sqlite3-metadata.db", "wb") as f:
        f.write(b"SQLite format 3\0")
    zfs_cmd("zfs", "create", f"{ds}/{vdi}")  # mounted at {mnt}/{vdi}, inherited
    with open(f"{mnt}/{vdi}/disk.img", "wb") as f:
        f.write(data)
    return sr, vdi, ds, mnt


def test_takeover_adopts_the_predecessors_srs_in_place(binaries, tmp_path, tmp_path_factory):
    a, _ = binaries
    pool = zfs_pool(tmp_path_factory)
    root = tmp_path / "root"
    make_predecessor(root)
    before = tree(root)
    data = os.urandom(1 << 20)
    parent = "old" + uuidlib.uuid4().hex[:6]
    sr, vdi, ds, mnt = make_predecessor_sr(pool, parent, data)
    # a VDI with a snapshot (as its snapshot VDIs leave): cannot be adopted
    snapped = str(uuidlib.uuid4())
    zfs_cmd("zfs", "create", f"{ds}/{snapped}")
    with open(f"{mnt}/{snapped}/disk.img", "wb") as f:
        f.write(data[:65536])
    zfs_cmd("zfs", "snapshot", f"{ds}/{snapped}@{uuidlib.uuid4()}")
    try:
        # refused before any change: xapi would forget that VDI
        proc = deploy(root, "install", "--takeover", "--pool", pool, a, check=False)
        assert proc.returncode == 3 and snapped in proc.stderr and "--force" in proc.stderr
        assert tree(root) == before
        # a failure while adopting: files restored, the data where it was
        proc = deploy(root, "install", "--takeover", "--force", "--pool", pool, a,
                      fault="adopt-srs", check=False)
        assert proc.returncode == 1 and tree(root) == before
        deploy(root, "install", "--takeover", "--force", "--pool", pool, a)
        # the PBD's device-config as the predecessor's SR.create returned it
        plug = root / "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfs-live"

        def call(method, **params):
            params.setdefault("dbg", "test")
            p = subprocess.run([str(plug / method), "--json"],
                               input=json.dumps(params).encode(), capture_output=True,
                               cwd="/", timeout=60)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout)
        config = {"path": f"{pool}/{parent}", "zpool": pool, "dataset": f"{parent}/{sr}",
                  "volblocksize": "8K", "provisioning": "thin", "datapath": "raw-qdisk",
                  "sr_uuid": sr}
        key = call("SR.attach", configuration=config)
        assert key.rstrip("/").endswith(sr)
        listed = call("SR.ls", sr=key)
        assert [v["key"] for v in listed] == [vdi]
        assert listed[0]["virtual_size"] == len(data)
        got = subprocess.run([str(root / "usr/sbin/zfs-live"), "vol", "read", key, vdi],
                             capture_output=True, timeout=60)
        assert got.returncode == 0, got.stderr
        assert got.stdout == data
        # same objects, same names: nothing copied, nothing moved for good
        names = zfs_cmd("zfs", "list", "-H", "-r", "-o", "name", ds).stdout.split()
        assert sorted(names) == sorted([ds, f"{ds}/{vdi}", f"{ds}/{snapped}"])
        with open(f"{mnt}/{snapped}/disk.img", "rb") as f:
            assert f.read() == data[:65536]
        assert zfs_cmd("zfs", "get", "-H", "-o", "value", "xcp:sr", ds).stdout.strip() == sr
        # rollback: the predecessor's files back byte for byte, its SR intact
        deploy(root, "rollback")
        assert tree(root) == before
        with open(f"{mnt}/{vdi}/disk.img", "rb") as f:
            assert f.read() == data
        assert os.path.exists(f"{mnt}/meta.json")
    finally:
        zfs_cmd("zfs", "destroy", "-r", f"{pool}/{parent}", check=False)


def test_attach_takes_the_predecessors_device_config(plugin, tmp_path):
    """xapi keeps in each PBD the configuration the Python driver's
    SR.create returned (path plus zpool, dataset, its datapath value...);
    after a takeover SR.attach gets it and must accept it.  SR.create still
    refuses those keys."""
    config = plugin.ok("SR.create", uuid=str(uuidlib.uuid4()),
                       configuration={"path": str(tmp_path / "sr")}, name="s", description="")
    old = dict(config, zpool="tank", dataset="pp/x", datapath="raw-qdisk", adopt="true",
               auto_cleanup_orphans="false", orphan_grace_period_seconds="3600")
    assert plugin.ok("SR.attach", configuration=old) == plugin.ok("SR.attach",
                                                                  configuration=config)
    err = plugin.err("SR.create", {"dbg": "t", "uuid": str(uuidlib.uuid4()),
                                   "configuration": dict(old, path=str(tmp_path / "sr2")),
                                   "name": "s", "description": ""})
    assert "zpool" in json.dumps(err)
