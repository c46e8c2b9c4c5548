"""TLS on the NBD server: PSK (psktool) and X.509 (certtool), over TCP where
TLS is required by default; plain TCP refused; Unix sockets take either
when TLS is offered.  A second server with its own runtime directory."""
import json
import os
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import CLI, FileSR, need


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_x509(d):
    d.mkdir()
    (d / "ca.info").write_text("cn = zfs-live test CA\nca\ncert_signing_key\n")
    (d / "server.info").write_text("organization = zfs-live\ncn = localhost\n"
                                   "dns_name = localhost\nip_address = 127.0.0.1\n"
                                   "tls_www_server\nencryption_key\nsigning_key\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("certtool", "--generate-privkey", "--outfile", str(d / "ca-key.pem"))
    run("certtool", "--generate-self-signed", "--load-privkey", str(d / "ca-key.pem"),
        "--template", str(d / "ca.info"), "--outfile", str(d / "ca-cert.pem"))
    run("certtool", "--generate-privkey", "--outfile", str(d / "server-key.pem"))
    run("certtool", "--generate-certificate", "--load-privkey", str(d / "server-key.pem"),
        "--load-ca-certificate", str(d / "ca-cert.pem"), "--load-ca-privkey",
        str(d / "ca-key.pem"), "--template", str(d / "server.info"), "--outfile",
        str(d / "server-cert.pem"))


@pytest.fixture(scope="module")
def tls_env(plugin, tmp_path_factory):
    need(subprocess.run(["which", "psktool", "certtool"], capture_output=True).returncode == 0,
         "gnutls-bin (psktool, certtool) is not installed")
    base = tmp_path_factory.mktemp("tls")
    run_dir = base / "run"
    env = dict(os.environ, ZFS_LIVE_RUN=str(run_dir))
    subprocess.run(["psktool", "-u", "alice", "-p", str(base / "keys.psk")], check=True,
                   capture_output=True)
    make_x509(base / "pki")
    sr = FileSR(plugin, str(base / "sr"))
    v = sr.create(size=8 << 20, name="tls")
    sr.write(v["key"], b"secret data")
    name = subprocess.run([CLI, "vol", "export", sr.key, v["key"]], env=env, check=True,
                          capture_output=True, text=True).stdout.split("///")[1].split("?")[0]
    port = free_port()
    sock = str(base / "tls.sock")
    subprocess.run([CLI, "serve", "--daemon", "--socket", sock, "--tcp", f"127.0.0.1:{port}",
                    "--tls-psk", str(base / "keys.psk"), "--tls-certificates",
                    str(base / "pki")], env=env, check=True)
    yield {"base": base, "port": port, "name": name, "sock": sock, "env": env}
    pid = int((run_dir / "nbd.pid").read_text())
    os.kill(pid, signal.SIGTERM)


def nbdinfo(uri):
    return subprocess.run(["nbdinfo", "--json", uri], capture_output=True, text=True,
                          timeout=60)


def test_psk_over_tcp(tls_env):
    e = tls_env
    uri = (f"nbds://alice@127.0.0.1:{e['port']}/{e['name']}"
           f"?tls-psk-file={e['base']}/keys.psk")
    p = nbdinfo(uri)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["protocol"] == "newstyle-fixed"
    assert json.loads(p.stdout)["TLS"] is True
    out = subprocess.run(["nbdcopy", uri, "-"], capture_output=True, timeout=60)
    assert out.stdout.startswith(b"secret data")


def test_x509_over_tcp(tls_env):
    e = tls_env
    uri = (f"nbds://127.0.0.1:{e['port']}/{e['name']}"
           f"?tls-certificates={e['base']}/pki")
    p = nbdinfo(uri)
    assert p.returncode == 0, p.stderr
    out = subprocess.run(["qemu-io", "--image-opts",
                          f"driver=nbd,server.type=inet,server.host=127.0.0.1,"
                          f"server.port={e['port']},export={e['name']},tls-creds=tls0",
                          "--object", f"tls-creds-x509,id=tls0,endpoint=client,"
                          f"dir={e['base']}/pki", "-c", "read -v 0 11"],
                         capture_output=True, text=True, timeout=60)
    assert "73 65 63 72 65 74 20 64 61 74 61" in out.stdout, out.stderr  # "secret data"


def test_plain_tcp_is_refused(tls_env):
    e = tls_env
    p = nbdinfo(f"nbd://127.0.0.1:{e['port']}/{e['name']}")
    assert p.returncode != 0
    # on the wire: GO without TLS is answered NBD_REP_ERR_TLS_REQD
    s = socket.create_connection(("127.0.0.1", e["port"]), timeout=10)
    s.recv(18, socket.MSG_WAITALL)
    s.sendall(struct.pack(">I", 3))
    name = e["name"].encode()
    data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 7, len(data)) + data)
    magic, opt, rtype, rlen = struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))
    assert (opt, rtype) == (7, (1 << 31) + 5), hex(rtype)
    assert b"TLS" in s.recv(rlen, socket.MSG_WAITALL)
    s.close()
    # the old EXPORT_NAME path: the server hangs up rather than serve in clear
    s = socket.create_connection(("127.0.0.1", e["port"]), timeout=10)
    s.recv(18, socket.MSG_WAITALL)
    s.sendall(struct.pack(">I", 3))
    name = e["name"].encode()
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)
    assert s.recv(200) == b""


def test_wrong_psk_fails_the_handshake(tls_env, tmp_path):
    bad = tmp_path / "bad.psk"
    subprocess.run(["psktool", "-u", "alice", "-p", str(bad)], check=True,
                   capture_output=True)
    e = tls_env
    p = nbdinfo(f"nbds://alice@127.0.0.1:{e['port']}/{e['name']}?tls-psk-file={bad}")
    assert p.returncode != 0


def test_unix_socket_takes_tls_or_plain_when_offered(tls_env):
    e = tls_env
    assert nbdinfo(f"nbd+unix:///{e['name']}?socket={e['sock']}").returncode == 0
    p = nbdinfo(f"nbds+unix://alice@/{e['name']}?socket={e['sock']}"
                f"&tls-psk-file={e['base']}/keys.psk")
    assert p.returncode == 0 and json.loads(p.stdout)["TLS"] is True


def test_tcp_without_tls_credentials_does_not_start(tmp_path):
    env = dict(os.environ, ZFS_LIVE_RUN=str(tmp_path / "run"))
    p = subprocess.run([CLI, "serve", "--tcp", f"127.0.0.1:{free_port()}", "--socket", ""],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "TLS is required on TCP" in p.stderr


def raw_option(port, opt, data=b"", host="127.0.0.1"):
    """A plain TCP client sending one option: (reply type, message), or None
    if the server hung up instead of answering."""
    s = socket.create_connection((host, port), timeout=10)
    try:
        assert s.recv(18, socket.MSG_WAITALL)[:16] == b"NBDMAGICIHAVEOPT"
        s.sendall(struct.pack(">I", 3))
        s.sendall(b"IHAVEOPT" + struct.pack(">II", opt, len(data)) + data)
        head = s.recv(20, socket.MSG_WAITALL)
        if len(head) < 20:
            return None
        _, o, rtype, rlen = struct.unpack(">QIII", head)
        assert o == opt
        return rtype, s.recv(rlen, socket.MSG_WAITALL)
    finally:
        s.close()


@pytest.fixture(scope="module")
def tls_on(tls_env):
    """A second server started with --tls=on: TCP must still demand TLS."""
    e = tls_env
    port = free_port()
    sock, pidfile = str(e["base"] / "on.sock"), str(e["base"] / "on.pid")
    subprocess.run([CLI, "serve", "--daemon", "--tls=on", "--socket", sock, "--pidfile",
                    pidfile, "--tcp", f"127.0.0.1:{port}", "--tls-psk",
                    str(e["base"] / "keys.psk")], env=e["env"], check=True)
    yield dict(e, port=port, sock=sock)
    os.kill(int(open(pidfile).read()), signal.SIGTERM)


def test_tls_on_still_demands_tls_on_tcp(tls_on):
    e = tls_on
    name = e["name"].encode()
    go = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
    meta = struct.pack(">I", len(name)) + name + struct.pack(">I", 0)
    # FORCEDTLS (reference nbd.md 1.4): every option but STARTTLS and ABORT
    for opt, data in [(7, go), (6, go), (3, b""), (8, b""), (9, meta), (10, meta)]:
        got = raw_option(e["port"], opt, data)
        assert got is not None and got[0] == (1 << 31) + 5, (opt, got)  # ERR_TLS_REQD
    assert raw_option(e["port"], 1, name) is None  # EXPORT_NAME: hang up
    assert nbdinfo(f"nbd://127.0.0.1:{e['port']}/{e['name']}").returncode != 0
    p = nbdinfo(f"nbds://alice@127.0.0.1:{e['port']}/{e['name']}"
                f"?tls-psk-file={e['base']}/keys.psk")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["TLS"] is True
    # the Unix socket takes plain NBD (offered, not demanded)
    assert nbdinfo(f"nbd+unix:///{e['name']}?socket={e['sock']}").returncode == 0


@pytest.mark.parametrize("tls", [None, "on", "require"])
def test_tcp_without_credentials_is_refused_whatever_the_tls_mode(tmp_path, tls):
    env = dict(os.environ, ZFS_LIVE_RUN=str(tmp_path / "run"))
    port = free_port()
    p = subprocess.run([CLI, "serve", "--tcp", f"127.0.0.1:{port}", "--socket",
                        str(tmp_path / "s.sock"), *([f"--tls={tls}"] if tls else [])],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "TLS is required on TCP" in p.stderr
    assert not os.path.exists(tmp_path / "s.sock")  # nothing listened


def test_unix_tls_require_without_credentials_is_refused(tmp_path):
    env = dict(os.environ, ZFS_LIVE_RUN=str(tmp_path / "run"))
    p = subprocess.run([CLI, "serve", "--tls=require", "--socket", str(tmp_path / "s.sock")],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "--tls=require needs credentials" in p.stderr


def test_socket_activated_tcp_without_credentials_is_refused(tmp_path):
    """systemd hands over a TCP socket (LISTEN_FDS): the same rule as --tcp."""
    need(subprocess.run(["which", "systemd-socket-activate"], capture_output=True)
         .returncode == 0, "systemd-socket-activate (systemd) is not installed")
    env = dict(os.environ, ZFS_LIVE_RUN=str(tmp_path / "run"))
    port = free_port()
    keep = [a for v in ("ZFS_LIVE_RUN", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PATH")
            if v in env for a in ("-E", v)]
    p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", *keep, CLI,
                          "serve", "--tls=on"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):  # until systemd-socket-activate listens
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        else:
            raise AssertionError("systemd-socket-activate never listened")
        # the first connection starts the server, which must refuse to run
        s.settimeout(20)
        try:
            hello = s.recv(18)
        except ConnectionResetError:
            hello = b""
        assert hello == b"", "the server answered without credentials"
        s.close()
        assert p.wait(30) == 1
        assert "TLS is required on TCP" in p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
