"""The self-contained release binary (make release) from an empty root.

The root holds only the binary, its plugin links (scripts/install.sh), the
SR's directory and three character devices: no /lib, no /usr/lib, no /etc.
The plugins are invoked inside it exactly as xapi-storage-script invokes
them (argv[0] a link in the plugin directory, --json, the request on stdin),
chroot(2) standing in for a host that has nothing else.  The NBD server runs
in it too, with TLS-PSK required, and real clients (libnbd: nbdinfo,
nbdcopy) reach it through its socket from outside -- the GnuTLS clients
against the binary's OpenSSL.

ZFS SRs are not run here: the zfs command the release binary drives is the
host's own (dynamically linked) tool, which no empty root can hold.

ZFS_LIVE_RELEASE names the binary (make integration sets it)."""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import need, wait_for

RELEASE = os.environ.get("ZFS_LIVE_RELEASE", "")
REPO = os.path.join(os.path.dirname(__file__), "..", "..")
HOST = "5b2b3f0e-6a59-4f43-9d2b-7c1b8d6f2a10"
VOLUME_DIR = "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.file-live"


@pytest.fixture
def root(tmp_path):
    need(RELEASE and os.path.exists(RELEASE), "ZFS_LIVE_RELEASE (make release) is not built")
    need(os.geteuid() == 0, "chroot needs root")
    r = tmp_path / "root"
    subprocess.run([os.path.join(REPO, "scripts/install.sh"), RELEASE, str(r), "/usr"],
                   check=True, capture_output=True)
    shutil.rmtree(r / "usr/lib")  # the systemd units install.sh adds: not needed here
    for d in ("srv", "run", "tmp", "dev"):
        (r / d).mkdir(exist_ok=True)
    for name, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
        os.mknod(r / "dev" / name, 0o666 | 0o020000, os.makedev(1, minor))
    for lib in ("lib", "lib64", "usr/lib", "etc"):
        assert not (r / lib).exists(), f"the root has /{lib}"
    assert not [p for p in r.rglob("*") if ".so" in p.name], "a shared object in the root"
    return r


def chroot(root, argv, stdin=None, **kw):
    env = {"ZFS_LIVE_HOST_UUID": HOST, "ZFS_LIVE_RUN": "/run/zfs-live"}
    return subprocess.run(["/usr/sbin/chroot", str(root)] + argv, input=stdin, env=env,
                          capture_output=True, text=True, timeout=60, **kw)


def call(root, method, **params):
    params.setdefault("dbg", "test_release")
    r = chroot(root, [f"/{VOLUME_DIR}/{method}", "--json"], stdin=json.dumps(params))
    assert r.returncode == 0, f"{method}: {r.stdout} {r.stderr}"
    return json.loads(r.stdout)


def test_binary_is_static():
    need(RELEASE and os.path.exists(RELEASE), "ZFS_LIVE_RELEASE (make release) is not built")
    r = subprocess.run([os.path.join(REPO, "scripts/check-release.sh"), RELEASE],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["file", "-L", RELEASE], capture_output=True, text=True).stdout
    assert "statically linked" in out, out


def test_volume_plugin_in_an_empty_root(root):
    q = call(root, "Plugin.Query")
    assert q["plugin"] == "file-live" and "VDI_SNAPSHOT" in q["features"]
    (root / "srv/sr").mkdir()
    sr = call(root, "SR.create", uuid="9a1d3b0c-0f57-4f6b-8e0e-2f6c1a7c4d11", name="rel",
              description="", configuration={"path": "/srv/sr"})
    key = call(root, "SR.attach", configuration=sr)
    vol = call(root, "Volume.create", sr=key, name="disk", description="d",
               size=64 << 20, sharable=False)
    snap = call(root, "Volume.snapshot", sr=key, key=vol["key"])
    clone = call(root, "Volume.clone", sr=key, key=snap["key"])
    assert call(root, "Volume.resize", sr=key, key=vol["key"], new_size=128 << 20) is None
    assert call(root, "Volume.stat", sr=key, key=vol["key"])["virtual_size"] == 128 << 20
    assert {v["key"] for v in call(root, "SR.ls", sr=key)} == \
        {vol["key"], snap["key"], clone["key"]}
    for k in (clone["key"], snap["key"], vol["key"]):
        assert call(root, "Volume.destroy", sr=key, key=k) is None
    assert call(root, "SR.ls", sr=key) == []
    assert call(root, "SR.destroy", sr=key) is None


def test_nbd_server_with_tls_in_an_empty_root(root, tmp_path):
    need(shutil.which("psktool") and shutil.which("nbdcopy"), "psktool and nbdcopy")
    subprocess.run(["psktool", "-u", "alice", "-p", str(root / "srv/keys.psk")],
                   check=True, capture_output=True)
    r = chroot(root, ["/usr/sbin/zfs-live", "sr", "create", "--type", "file-live",
                      "--path", "/srv/sr"])
    assert r.returncode == 0, r.stderr
    r = chroot(root, ["/usr/sbin/zfs-live", "vol", "create", "/srv/sr", "--name", "d",
                      "--size", "8M", "--key", "d"])
    assert r.returncode == 0, r.stderr
    r = chroot(root, ["/usr/sbin/zfs-live", "vol", "share", "/srv/sr", "d"])
    assert r.returncode == 0, r.stderr
    export = r.stdout.split("///", 1)[1].split("?", 1)[0]
    sock = root / "run/nbd.sock"
    server = subprocess.Popen(
        ["/usr/sbin/chroot", str(root), "/usr/sbin/zfs-live", "serve", "--socket",
         "/run/nbd.sock", "--tls", "require", "--tls-psk", "/srv/keys.psk"],
        env={"ZFS_LIVE_HOST_UUID": HOST, "ZFS_LIVE_RUN": "/run/zfs-live"},
        stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sock.exists() or server.poll() is not None, "the server's socket")
        assert server.poll() is None, server.stderr.read()
        uri = (f"nbds+unix://alice@/{export}?socket={sock}"
               f"&tls-psk-file={root}/srv/keys.psk")
        data = os.urandom(8 << 20)
        (tmp_path / "in").write_bytes(data)
        subprocess.run(["nbdcopy", str(tmp_path / "in"), uri], check=True, timeout=60)
        subprocess.run(["nbdcopy", uri, str(tmp_path / "out")], check=True, timeout=60)
        assert hashlib.sha256((tmp_path / "out").read_bytes()).digest() == \
            hashlib.sha256(data).digest()
        plain = f"nbd+unix:///{export}?socket={sock}"
        r = subprocess.run(["nbdinfo", plain], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0, "plain NBD was served though TLS is required"
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_export_checksum_in_an_empty_root(root):
    """The release build's SHA-256 (OpenSSL EVP): what `vol export` prints
    is hashlib's digest of the image, and `vol import --sha256` verifies
    with it (raw: qemu-img is not in the empty root)."""
    zl = "/usr/sbin/zfs-live"
    assert chroot(root, [zl, "sr", "create", "--type", "file-live", "--path",
                         "/srv/sr"]).returncode == 0
    assert chroot(root, [zl, "vol", "create", "/srv/sr", "--name", "d", "--size", "8M",
                         "--key", "d"]).returncode == 0
    data = os.urandom(1 << 19).hex()  # text: chroot() speaks text
    r = chroot(root, [zl, "vol", "write", "/srv/sr", "d", "--offset", "3M"], stdin=data)
    assert r.returncode == 0, r.stderr
    r = chroot(root, [zl, "vol", "export", "/srv/sr", "d", "--format", "raw", "-o",
                      "/srv/d.raw"])
    assert r.returncode == 0, r.stderr
    image = (root / "srv/d.raw").read_bytes()
    assert image == bytes(3 << 20) + data.encode() + bytes(4 << 20)
    sha = hashlib.sha256(image).hexdigest()
    assert r.stdout.strip() == f"sha256 {sha}"
    r = chroot(root, [zl, "vol", "import", "/srv/sr", "/srv/d.raw", "--format", "raw",
                      "--key", "e", "--sha256", sha])
    assert r.returncode == 0, r.stderr
    r = chroot(root, [zl, "vol", "import", "/srv/sr", "/srv/d.raw", "--format", "raw",
                      "--key", "f", "--sha256", "0" * 64])
    assert r.returncode != 0 and "does not match" in r.stderr
