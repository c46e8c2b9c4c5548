"""The NBD server's life: reload (SIGHUP) re-reads the TLS credentials and
keeps every connection and export; a graceful stop (SIGTERM) answers what
it has taken in, refuses nothing it acknowledged, and leaves the exports
attached for the next server; systemd socket activation (LISTEN_FDS) with
a socket the server must not remove.  Each test runs its own server on its
own socket, beside the datapath's."""
import os
import shutil
import signal
import subprocess
import threading

import nbd
import pytest

from conftest import CLI, gone, need, wait_for
from test_nbd_tls import free_port, make_x509

MiB = 1 << 20


@pytest.fixture
def exported(file_sr, tmp_path):
    """A volume exported in a runtime directory of its own."""
    env = dict(os.environ, ZFS_LIVE_RUN=str(tmp_path / "run"))
    v = file_sr.create(size=8 * MiB, name="life")
    out = subprocess.run([CLI, "vol", "export", file_sr.key, v["key"]], env=env, check=True,
                         capture_output=True, text=True).stdout
    name = out.split("///")[1].split("?")[0]
    return {"env": env, "name": name, "vol": v, "sr": file_sr, "base": tmp_path,
            "run": tmp_path / "run"}


def serve(e, *args):
    sock = str(e["base"] / "s.sock")
    pidfile = str(e["base"] / "s.pid")
    subprocess.run([CLI, "serve", "--daemon", "--socket", sock, "--pidfile", pidfile, *args],
                   env=e["env"], check=True)
    return sock, int(open(pidfile).read())


def connect(sock, name):
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_unix(sock)
    return h


def x509_client(host, port, name, pki):
    h = nbd.NBD()
    h.set_export_name(name)
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_certificates(str(pki))
    h.connect_tcp(host, str(port))
    return h


def tls_args(e):
    """A fresh CA and server certificate, a free port: (pki, port, args)."""
    need(subprocess.run(["which", "certtool"], capture_output=True).returncode == 0,
         "gnutls-bin (certtool) is not installed")
    pki = e["base"] / "pki"
    make_x509(pki)
    port = free_port()
    return pki, port, ["--tcp", f"127.0.0.1:{port}", "--tls-certificates", str(pki)]


def tls_server(e):
    pki, port, args = tls_args(e)
    sock, pid = serve(e, *args)
    return pki, port, pid


class Foreground:
    """The server as systemd runs zfs-live-nbd.service: in the foreground,
    its log lines on stderr, which go to a file here (self.log)."""

    def __init__(self, e, *args):
        self.log = e["base"] / "serve.log"
        with open(self.log, "wb") as f:
            self.p = subprocess.Popen([CLI, "serve", "--socket", str(e["base"] / "s.sock"),
                                       *args], env=e["env"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=f)
        try:
            self.wait_logged("serving NBD on", "the server to listen")
        except BaseException:
            self.kill()
            raise

    def logged(self):
        return self.log.read_text(errors="replace")

    def wait_logged(self, line, what):
        """Wait until the log has a line containing `line` (fails at once
        if the server exits)."""
        wait_for(lambda: line in self.logged() or self.p.poll() is not None,
                 lambda: f"{what}: a log line with {line!r}; the log:\n{self.logged()}")
        assert line in self.logged(), \
            f"the server exited ({self.p.returncode}); the log:\n{self.logged()}"

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(30)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def stop(pid):
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: gone(pid), "the server to stop")


def test_reload_rereads_certificates_and_keeps_connections(exported):
    """X.509 credentials are loaded when the server starts and again on
    SIGHUP (PSK files GnuTLS reads at each handshake anyway)."""
    e = exported
    pki, port, pid = tls_server(e)
    old = e["base"] / "old-pki"
    shutil.copytree(pki, old)
    h = x509_client("127.0.0.1", port, e["name"], old)
    h.pwrite(b"A" * 4096, 0)

    # a new CA and server certificate in place of the old, then reload
    shutil.rmtree(pki)
    make_x509(pki)
    os.kill(pid, signal.SIGHUP)
    # the open connection carries on, on its old session
    h.pwrite(b"B" * 4096, 4096)
    assert h.pread(8192, 0) == b"A" * 4096 + b"B" * 4096

    # new connections are served with the new certificate, not the old
    def new_ca_works():
        try:
            x509_client("127.0.0.1", port, e["name"], pki).shutdown()
            return True
        except nbd.Error:
            return False
    wait_for(new_ca_works, "the reload")
    with pytest.raises(nbd.Error):
        x509_client("127.0.0.1", port, e["name"], old)
    h.shutdown()
    assert not gone(pid)
    stop(pid)


def test_reload_with_broken_certificates_keeps_the_old_ones(exported):
    """A reload (SIGHUP) that cannot read the new credentials keeps serving
    with the old ones.  The server logs the reload's outcome: the test waits
    for that line, so it knows the reload was attempted and is over."""
    e = exported
    pki, port, args = tls_args(e)
    server = Foreground(e, *args)
    try:
        good = e["base"] / "good-pki"
        shutil.copytree(pki, good)
        (pki / "server-cert.pem").write_text("not a certificate\n")
        server.p.send_signal(signal.SIGHUP)
        server.wait_logged("reload failed, keeping the old credentials", "the reload's outcome")
        h = x509_client("127.0.0.1", port, e["name"], good)  # still the old credentials
        h.pwrite(b"x" * 512, 0)
        h.shutdown()
        assert server.p.poll() is None
        server.stop()
    finally:
        server.kill()


def test_graceful_stop_then_restart_keeps_exports_and_acknowledged_writes(exported):
    e = exported
    sock, pid = serve(e)
    h = connect(sock, e["name"])
    acked, failed, halt = [], [], threading.Event()

    def writer():
        i = 0
        while not halt.is_set() and i < 8 * 16:
            off = (i % 128) * 65536
            data = bytes([i % 251 + 1]) * 65536
            try:
                h.pwrite(data, off)
            except nbd.Error as err:
                failed.append(str(err))
                return
            acked.append((off, data))
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: len(acked) > 10, "some writes")
    stop(pid)
    halt.set()
    t.join(30)
    assert not os.path.exists(sock), "the socket was left behind"
    assert not os.path.exists(e["base"] / "s.pid"), "the pid file was left behind"
    # the export is still attached: a new server serves it by the same name
    sock, pid = serve(e)
    h2 = connect(sock, e["name"])
    last = {}
    for off, data in acked:
        last[off] = data
    for off, data in last.items():
        assert h2.pread(len(data), off) == data, f"acknowledged write at {off} lost"
    h2.shutdown()
    stop(pid)


def test_stop_refuses_new_connections_while_draining(exported):
    """A server stopping closes its listening socket first: clients get
    'connection refused' (and reconnect to the next one), never a hang."""
    e = exported
    sock, pid = serve(e)
    h = connect(sock, e["name"])
    stop(pid)
    with pytest.raises(nbd.Error):
        connect(sock, e["name"])
    with pytest.raises(nbd.Error):
        h.pread(512, 0)


def test_socket_activation(exported):
    """As systemd runs zfs-live-nbd.service from zfs-live-nbd.socket: the
    listening socket comes as fd 3 with LISTEN_PID/LISTEN_FDS; the server
    uses it, opens no other, and leaves the socket file to its owner."""
    e = exported
    need(subprocess.run(["which", "systemd-socket-activate"], capture_output=True)
         .returncode == 0, "systemd-socket-activate (systemd) is not installed")
    sock = str(e["base"] / "act.sock")
    keep = [a for v in ("ZFS_LIVE_RUN", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PATH")
            if v in e["env"] for a in ("-E", v)]  # it passes on nothing else
    p = subprocess.Popen(["systemd-socket-activate", "-l", sock, *keep, CLI, "serve"],
                         env=e["env"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(sock), "the activation socket")
        h = connect(sock, e["name"])  # the first connection starts the server
        h.pwrite(b"activated", 0)
        assert h.pread(9, 0) == b"activated"
        h.shutdown()
        # it did not make the default socket of its runtime directory
        assert not os.path.exists(e["run"] / "nbd.sock")
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        assert p.returncode == 0, p.stderr.read().decode()
        assert os.path.exists(sock), "the server removed systemd's socket"
    finally:
        if p.poll() is None:
            p.kill()
    assert e["sr"].read(e["vol"]["key"], 0, 9) == b"activated"
