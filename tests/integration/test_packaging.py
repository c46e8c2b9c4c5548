"""Packages and the Ansible role: rpmbuild -bb and dpkg-buildpackage -b
(from a copy of the tree, into a temporary directory) give packages whose
file lists are checked against the dispatch table's layout; the RPMs and
.debs install into and leave a throwaway root (their maintainer scripts
run chrooted there, where systemd is absent, and must not fail);
zfs-live-deploy installs from either package; the Ansible role is run
twice with `ansible-playbook -c local` and changes nothing the second
time; scripts/check-units.sh fails a unit above exposure 4.0."""

import hashlib
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import need

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE = os.environ.get("ZFS_LIVE_RELEASE") or os.path.join(TOP, "build-release/zfs-live")
VERSION = re.search(r"version\s*:\s*'([^']+)'", open(os.path.join(TOP, "meson.build")).read())[1]


def run(*args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    proc = subprocess.run(list(args), **kw)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def release():
    need(os.path.isfile(RELEASE), f"no release binary {RELEASE} (make release)")
    return RELEASE


@pytest.fixture(scope="module")
def layout(release):
    """The plugin links and Ganeti scripts, from the dispatch table."""
    xapi = run(release, "install-layout").stdout.split()
    ganeti = run(release, "install-layout", "--ganeti").stdout.split()
    return xapi, ganeti


@pytest.fixture(scope="module")
def rpms(release, tmp_path_factory):
    need(shutil.which("rpmbuild"), "rpmbuild is not installed (package rpm)")
    out = tmp_path_factory.mktemp("rpm")
    run(os.path.join(TOP, "scripts/build-packages.sh"), "rpm", release, str(out))
    return {n.split(f"-{VERSION}-")[0]: str(out / n) for n in os.listdir(out)}


@pytest.fixture(scope="module")
def debs(release, tmp_path_factory):
    need(shutil.which("dpkg-buildpackage") and shutil.which("dh"),
         "dpkg-buildpackage/debhelper are not installed")
    out = tmp_path_factory.mktemp("deb")
    run(os.path.join(TOP, "scripts/build-packages.sh"), "deb", release, str(out))
    return {n.split("_")[0]: str(out / n) for n in os.listdir(out)}


def rpm_files(path):
    return set(run("rpm", "-qlp", path).stdout.split())


COMMON = {
    "/usr/libexec/zfs-live", "/usr/libexec/zfs-live/zfs-live", "/usr/sbin/zfs-live",
    "/usr/sbin/zfs-live-deploy", "/usr/lib/systemd/system/zfs-live-nbd.service",
    "/usr/lib/systemd/system/zfs-live-nbd.socket", "/usr/share/zfs-live",
    "/usr/share/zfs-live/systemd", "/usr/share/zfs-live/systemd/zfs-live-nbd.service",
    "/usr/share/zfs-live/systemd/zfs-live-nbd.socket",
}


def ganeti_files(ganeti):
    share = "/usr/share/ganeti/extstorage/zfs-live"
    return ({share, f"{share}/parameters.list", "/srv/ganeti/extstorage/zfs-live",
             "/var/log/ganeti/extstorage"} | {f"{share}/{a}" for a in ganeti})


def test_rpm_file_lists(rpms, layout):
    xapi, ganeti = layout
    assert set(rpms) == {"zfs-live", "zfs-live-xapi", "zfs-live-ganeti"}, rpms
    main = rpm_files(rpms["zfs-live"])
    assert COMMON <= main
    assert "/etc/sysconfig/zfs-live" in main
    # the man pages (zfs-live-ganeti(8) among them) are the main package's
    assert not [f for f in main if ("xapi-storage-script" in f or "ganeti" in f)
                and "/man/" not in f]
    plugins = rpm_files(rpms["zfs-live-xapi"])
    root = "/usr/libexec/xapi-storage-script"
    dirs = {f"{root}/{os.path.dirname(e)}" for e in xapi}
    assert plugins == dirs | {f"{root}/{e}" for e in xapi}
    assert rpm_files(rpms["zfs-live-ganeti"]) == ganeti_files(ganeti)
    # the binary in it is the release binary, byte for byte
    info = run("rpm", "-qp", "--qf", "%{PAYLOADCOMPRESSOR} %{ARCH} %{VERSION}",
               rpms["zfs-live"]).stdout
    assert info == f"gzip x86_64 {VERSION}"  # rpm 4.11 (XCP-ng 8.3) reads gzip


def test_rpm_scripts_are_safe_without_systemd(rpms):
    for name in ("zfs-live", "zfs-live-xapi"):
        scripts = run("rpm", "-qp", "--scripts", rpms[name]).stdout
        assert "try-restart" in scripts
        # every systemctl call is guarded and cannot fail the transaction
        for line in scripts.splitlines():
            if "systemctl" in line:
                assert line.rstrip().endswith("|| :"), line
        assert scripts.count("[ -d /run/systemd/system ]") >= 2


def busybox_root(root):
    """A throwaway root where maintainer scripts can run chrooted: a static
    /bin/sh and nothing else (no systemd)."""
    need(shutil.which("busybox"), "busybox-static is not installed")
    bb = shutil.which("busybox")
    out = subprocess.run(["file", "-L", bb], capture_output=True, text=True).stdout
    need("statically linked" in out, "busybox is not the static one (busybox-static)")
    (root / "bin").mkdir(parents=True)
    shutil.copy(bb, root / "bin/busybox")
    os.symlink("busybox", root / "bin/sh")


def test_rpm_install_and_erase_in_a_throwaway_root(rpms, tmp_path, layout):
    xapi, _ = layout
    root = tmp_path / "root"
    busybox_root(root)
    run("rpm", "--root", str(root), "--initdb")
    run("rpm", "--root", str(root), "-i", "--nodeps", rpms["zfs-live"], rpms["zfs-live-xapi"])
    link = root / "usr/libexec/xapi-storage-script" / xapi[0]
    assert os.path.realpath(link) == str(root / "usr/libexec/zfs-live/zfs-live")
    got = run(str(root / "usr/sbin/zfs-live"), "version").stdout
    assert VERSION in got
    refused_over_the_package(root, rpms["zfs-live"])
    run("rpm", "--root", str(root), "-e", "zfs-live-xapi", "zfs-live")
    assert not os.path.lexists(root / "usr/libexec/zfs-live/zfs-live")
    assert not os.path.lexists(link)


def refused_over_the_package(root, pkg):
    """zfs-live-deploy leaves files a package owns to the package manager."""
    proc = subprocess.run(["bash", os.path.join(TOP, "scripts/deploy.sh"), "--root", str(root),
                           "install", pkg], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "installed here by the package zfs-live" in proc.stderr


def deb_files(path):
    """Paths in a .deb (dpkg -c), without the leading '.' and '/'."""
    out = {}
    for line in run("dpkg", "-c", path).stdout.splitlines():
        parts = line.split()
        name = parts[5].lstrip(".").rstrip("/") or "/"
        out[name] = parts[7] if len(parts) > 7 and parts[6] == "->" else None
    return out


def test_deb_file_lists(debs, layout):
    _, ganeti = layout
    assert set(debs) == {"zfs-live", "zfs-live-ganeti"}, debs
    main = deb_files(debs["zfs-live"])
    assert COMMON <= set(main)
    assert "/etc/default/zfs-live" in main
    # the man pages (zfs-live-ganeti(8) among them) are the main package's
    assert not [f for f in main if ("xapi-storage-script" in f or "ganeti" in f)
                and "/man/" not in f]
    prov = deb_files(debs["zfs-live-ganeti"])
    assert ganeti_files(ganeti) <= set(prov)
    # Ganeti's default search path leads to the packaged provider
    assert prov["/srv/ganeti/extstorage/zfs-live"].endswith(
        "usr/share/ganeti/extstorage/zfs-live")
    for a in ganeti:
        assert prov[f"/usr/share/ganeti/extstorage/zfs-live/{a}"] == \
            "../../../../libexec/zfs-live/zfs-live"
    assert not [f for f in prov if "libexec" in f]


def test_deb_install_remove_purge_in_a_throwaway_root(debs, layout, tmp_path):
    _, ganeti = layout
    root = tmp_path / "root"
    busybox_root(root)
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").touch()
    run("dpkg", f"--root={root}", "--force-depends", "-i", debs["zfs-live"],
        debs["zfs-live-ganeti"])
    st = run("dpkg", f"--root={root}", "-s", "zfs-live-ganeti").stdout
    assert "Status: install ok installed" in st
    share = root / "usr/share/ganeti/extstorage/zfs-live"
    for a in ganeti:
        assert os.path.realpath(share / a) == str(root / "usr/libexec/zfs-live/zfs-live")
        assert os.access(share / a, os.X_OK)
    assert (share / "parameters.list").read_text()
    assert (root / "var/log/ganeti/extstorage").is_dir()
    refused_over_the_package(root, debs["zfs-live"])
    run("dpkg", f"--root={root}", "-r", "zfs-live-ganeti", "zfs-live")
    assert not os.path.lexists(root / "usr/libexec/zfs-live/zfs-live")
    assert not os.path.lexists(share)
    assert (root / "etc/default/zfs-live").exists()  # a conffile stays until purge
    run("dpkg", f"--root={root}", "-P", "zfs-live-ganeti", "zfs-live")
    assert not (root / "etc/default/zfs-live").exists()


@pytest.mark.parametrize("kind", ["rpm", "deb"])
def test_deploy_installs_from_a_package(kind, rpms, debs, release, tmp_path):
    pkg = rpms["zfs-live"] if kind == "rpm" else debs["zfs-live"]
    root = tmp_path / "root"
    run("bash", os.path.join(TOP, "scripts/deploy.sh"), "--root", str(root), "install", pkg)
    with open(release, "rb") as f:
        want = f"{VERSION}-{hashlib.sha256(f.read()).hexdigest()[:12]}"
    assert os.readlink(root / "usr/libexec/zfs-live/current") == f"versions/{want}"
    link = root / "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.zfs-live"
    q = run(str(link / "Plugin.Query"), "--json", input='{"dbg": "test"}', cwd="/")
    assert json.loads(q.stdout)["plugin"] == "zfs-live"
    # the package's units, not the tree's, went in (they are the same here)
    with open(root / "usr/lib/systemd/system/zfs-live-nbd.service") as f:
        assert "ProtectSystem=strict" in f.read()


def playbook(*extra):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP="/tmp/.ansible-zl",
               ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run(["ansible-playbook", "-c", "local", "-i", "localhost,",
                           os.path.join(TOP, "packaging/ansible/site.yml"), *extra],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+).*failed=(\d+)", proc.stdout)
    assert recap, proc.stdout
    return int(recap[2]), proc.stdout


def test_ansible_role_is_idempotent(release, tmp_path):
    need(shutil.which("ansible-playbook"), "ansible-playbook is not installed (ansible-core)")
    root = tmp_path / "root"
    root.mkdir()
    args = ["-e", f"zfs_live_root={root}", "-e", f"zfs_live_artifact={release}"]
    changed, _ = playbook(*args)
    assert changed > 0
    link = root / "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.file-live"
    q = run(str(link / "Plugin.Query"), "--json", input='{"dbg": "test"}', cwd="/")
    assert json.loads(q.stdout)["plugin"] == "file-live"
    changed, out = playbook(*args)
    assert changed == 0, out
    # and removal, twice
    changed, _ = playbook(*args, "-e", "zfs_live_state=absent")
    assert changed > 0
    assert not os.path.lexists(root / "usr/libexec/zfs-live")
    changed, out = playbook(*args, "-e", "zfs_live_state=absent")
    assert changed == 0, out


def test_units_exposure_is_checked(tmp_path):
    """check-units.sh passes the units as shipped and fails one whose
    hardening is gone (the service as it was: 9.6 UNSAFE)."""
    need(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
    ok = run(os.path.join(TOP, "scripts/check-units.sh"))
    figures = re.findall(r"zfs-live-nbd.service: exposure ([0-9.]+) \(ok\)", ok.stdout)
    assert figures and float(figures[0]) <= 4.0, ok.stdout
    print(ok.stdout)
    src = open(os.path.join(TOP, "packaging/systemd/zfs-live-nbd.service")).read()
    bare = "\n".join(line for line in src.splitlines()
                     if not re.match(r"(Protect|Private|Restrict|Capability|SystemCall|NoNew|"
                                     r"Device|ReadWrite|Lock|Memory|Keyring|SecureBits|UMask)",
                                     line))
    unit = tmp_path / "zfs-live-nbd.service"
    unit.write_text(bare)
    bad = subprocess.run([os.path.join(TOP, "scripts/check-units.sh"), str(unit)],
                         capture_output=True, text=True)
    assert bad.returncode == 1, bad.stdout
    assert "ABOVE 4.0" in bad.stdout
    # a misspelt directive (systemd ignores it, and its protection with it)
    unit.write_text(src.replace("ProtectClock=yes", "ProtectClok=yes"))
    bad = subprocess.run([os.path.join(TOP, "scripts/check-units.sh"), str(unit)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "ProtectClok" in bad.stdout + bad.stderr
