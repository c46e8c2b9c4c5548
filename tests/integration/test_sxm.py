"""Storage migration (SXM, issue 13 item 4): Data.mirror of a volume being
written through its NBD export, to a volume of another SR reached through
Datapath.import_activate, with the test playing xapi's nbdproxy: it
listens on a Unix socket P and hands every client it accepts to the
import socket by SCM_RIGHTS (or, for the failure tests, relays the bytes
itself so that it can stall or kill the remote).

The source volume has changed block tracking on, which the datapath
attaches NBD-only (no loop device): Data.mirror refuses a volume attached
through a block device, whose writes the NBD server cannot see."""
import array
import hashlib
import os
import random
import socket
import threading

import pytest

from conftest import Attached, FileSR, wait_for

nbd = pytest.importorskip("nbd")

BLOCK = 4096
SIZE = 64 << 20


class Proxy:
    """xapi's nbdproxy: clients of self.path reach the import socket.
    relay=False: each client's fd is passed as it is (what xapi does);
    relay=True: a socketpair's end is passed and the bytes are relayed
    here, so that stall() holds them and kill() cuts every connection."""

    def __init__(self, tmp_path, import_socket, relay=False):
        os.makedirs(tmp_path, exist_ok=True)
        self.path = str(tmp_path / "proxy.sock")
        self.import_socket = import_socket
        self.relay = relay
        self.flowing = threading.Event()
        self.flowing.set()
        self.dead = False
        self.socks = []
        self.relayed = 0
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(16)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def uri(self):
        return f"nbd+unix:///?socket={self.path}"

    def _pass(self, fd):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.import_socket)
            socket.send_fds(s, [b"x"], [fd])

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(1 << 20)
                if not data:
                    break
                self.flowing.wait()
                if self.dead:
                    break
                b.sendall(data)
                with self.lock:
                    self.relayed += len(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if not self.relay:
                self._pass(c.fileno())
                c.close()
                continue
            mine, theirs = socket.socketpair()
            self._pass(theirs.fileno())
            theirs.close()
            with self.lock:
                self.socks += [c, mine]
            for a, b in ((c, mine), (mine, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def stall(self):
        self.flowing.clear()

    def kill(self):
        self.dead = True
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.flowing.set()

    def close(self):
        self.kill()
        self.srv.close()


class Writer:
    """A guest: random 4 KiB blocks of known content written through the
    source's NBD export, in a thread, until stop().  self.model is what
    each written block holds; self.errors what failed."""

    def __init__(self, uri, size=SIZE, seed=1):
        self.h = nbd.NBD()
        self.h.connect_uri(uri)
        self.size = size
        self.rng = random.Random(seed)
        self.model = {}
        self.count = 0
        self.errors = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            blk = self.rng.randrange(self.size // BLOCK)
            data = self.rng.randbytes(BLOCK)
            try:
                if self.rng.random() < 0.05:
                    self.h.zero(BLOCK, blk * BLOCK)
                    data = bytes(BLOCK)
                else:
                    self.h.pwrite(data, blk * BLOCK)
            except nbd.Error as e:
                self.errors.append(str(e))
                continue
            self.model[blk] = data
            self.count += 1

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the writer is stuck"
        self.h.flush()
        self.h.shutdown()


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fill(uri, size=SIZE, seed=7):
    """Random data all over the volume, through NBD."""
    rng = random.Random(seed)
    h = nbd.NBD()
    h.connect_uri(uri)
    for off in range(0, size, 1 << 20):
        h.pwrite(rng.randbytes(1 << 20), off)
    h.flush()
    h.shutdown()


def stat(dp, op):
    return dp.ok("Data.stat", operation=op)


@pytest.fixture
def pair(plugin, datapath, tmp_path):
    """A written source volume of SR 1 attached NBD-only, a destination
    volume of SR 2 imported (its socket), and their SRs."""
    sr1 = FileSR(plugin, str(tmp_path / "sr1"))
    sr2 = FileSR(plugin, str(tmp_path / "sr2"))
    v = sr1.create(size=SIZE, name="source")
    sr1.call("Volume.enable_cbt", key=v["key"])  # NBD only (no loop device)
    src = Attached(sr1, v, datapath)
    assert src.blockdev is None
    fill(src.nbd_uri)
    d = sr2.create(size=SIZE, name="destination")
    imp = datapath.ok("Datapath.import_activate", uri=d["uri"][0], domain="1")
    assert isinstance(imp, str) and os.path.exists(imp)
    # idempotent: the same socket again
    assert datapath.ok("Datapath.import_activate", uri=d["uri"][0], domain="1") == imp
    yield src, sr2, d, imp
    for op in datapath.ok("Data.ls"):
        datapath.ok("Data.destroy", operation=op)
    datapath.ok("Datapath.deactivate", uri=d["uri"][0], domain="1")
    datapath.ok("Datapath.detach", uri=d["uri"][0], domain="1")
    src.detach()


def test_mirror_copies_and_follows_writes(datapath, pair, tmp_path):
    src, sr2, d, imp = pair
    proxy = Proxy(tmp_path, imp)
    writer = Writer(src.nbd_uri)
    try:
        wait_for(lambda: writer.count > 100, "the guest's first writes")
        op = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
        assert op[0] == "MirrorV1"
        assert op in datapath.ok("Data.ls")
        st = wait_for(lambda: (lambda s: s if s["complete"] or s["failed"] else None)(
            stat(datapath, op)), "the mirror to complete", timeout=120)
        assert st == {"failed": False, "complete": True, "progress": 1.0}
        # writes go on, mirrored synchronously
        n = writer.count
        wait_for(lambda: writer.count > n + 200, "writes after the copy completed")
        assert stat(datapath, op)["complete"]
    finally:
        writer.stop()
    assert not writer.errors
    assert not stat(datapath, op)["failed"]
    assert sha(src.sr.img(src.vol["key"])) == sha(sr2.img(d["key"]))
    datapath.ok("Data.destroy", operation=op)
    assert op not in datapath.ok("Data.ls")
    datapath.ok("Data.destroy", operation=op)  # gone already: fine
    proxy.close()


def check_source(src, writer):
    """The source holds every block the guest wrote, and still takes
    writes."""
    h = nbd.NBD()
    h.connect_uri(src.nbd_uri)
    for blk, data in writer.model.items():
        assert h.pread(BLOCK, blk * BLOCK) == data, f"block {blk}"
    h.pwrite(b"\xaa" * BLOCK, 0)
    h.flush()
    assert h.pread(BLOCK, 0) == b"\xaa" * BLOCK
    h.shutdown()


def test_cancel_mid_copy(datapath, pair, tmp_path):
    src, sr2, d, imp = pair
    proxy = Proxy(tmp_path, imp, relay=True)
    writer = Writer(src.nbd_uri, seed=2)
    try:
        op = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
        wait_for(lambda: proxy.relayed > 4 << 20, "part of the copy")
        proxy.stall()  # the remote stops answering: the copy is held mid-way
        st = stat(datapath, op)
        assert not st["complete"] and not st["failed"] and st["progress"] < 1.0
        assert datapath.ok("Data.cancel", operation=op) is None
        st = stat(datapath, op)
        assert st["failed"] and not st["complete"]
        n = writer.count
        wait_for(lambda: writer.count > n + 100, "writes after the cancel")
    finally:
        writer.stop()
        proxy.close()
    assert not writer.errors
    check_source(src, writer)
    assert op in datapath.ok("Data.ls")  # cancelled, not destroyed
    assert stat(datapath, op)["failed"]
    datapath.ok("Data.destroy", operation=op)
    assert op not in datapath.ok("Data.ls")
    err = datapath.err("Data.stat", {"dbg": "x", "operation": op})
    assert "no mirror" in str(err)


def test_remote_dying_fails_the_mirror_not_the_guest(datapath, pair, tmp_path):
    src, sr2, d, imp = pair
    proxy = Proxy(tmp_path, imp, relay=True)
    writer = Writer(src.nbd_uri, seed=3)
    try:
        op = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
        wait_for(lambda: proxy.relayed > 4 << 20, "part of the copy")
        proxy.kill()
        wait_for(lambda: stat(datapath, op)["failed"], "the mirror to fail")
        assert not stat(datapath, op)["complete"]
        n = writer.count
        wait_for(lambda: writer.count > n + 100, "writes after the remote died")
    finally:
        writer.stop()
        proxy.close()
    assert not writer.errors
    check_source(src, writer)
    # xapi retries with a new mirror (it never destroys the failed one)
    proxy = Proxy(tmp_path / "again", imp)
    op2 = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
    assert op2 != op
    wait_for(lambda: stat(datapath, op2)["complete"], "the second mirror to complete",
             timeout=120)
    assert stat(datapath, op)["failed"]
    assert sha(src.sr.img(src.vol["key"])) == sha(sr2.img(d["key"]))
    proxy.close()


def test_detach_releases_the_mirror(datapath, pair, tmp_path):
    src, sr2, d, imp = pair
    proxy = Proxy(tmp_path, imp)
    op = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
    wait_for(lambda: stat(datapath, op)["complete"], "the mirror to complete", timeout=120)
    src.detach()  # the guest has moved: nothing writes the source here
    assert op not in datapath.ok("Data.ls")
    proxy.close()


def test_mirror_refuses_a_volume_on_a_block_device(plugin, datapath, tmp_path):
    sr = FileSR(plugin, str(tmp_path / "sr"))
    v = sr.create(size=SIZE, name="loop")
    a = Attached(sr, v, datapath)
    try:
        assert a.blockdev, "this host gives no loop device: nothing to check"
        err = datapath.err("Data.mirror", {"dbg": "x", "uri": a.uri, "domain": "1",
                                           "remote": "nbd+unix:///?socket=/nonexistent"})
        assert "block device" in str(err)
        assert datapath.ok("Data.ls") == []
    finally:
        a.detach()


def test_features(plugin, datapath):
    import v5
    assert "VDI_MIRROR_IN" in v5.query(datapath.ok("Plugin.Query"))["features"]
    assert "VDI_MIRROR" in v5.query(plugin.ok("Plugin.Query"))["features"]


def test_an_sr_made_with_datapath_nbd_mirrors_any_volume(plugin, datapath, tmp_path):
    """device-config datapath=nbd: every guest attach is NBD only (qdisk),
    so storage migration can mirror a plain volume (no CBT) of a local SR;
    a bad value is refused at SR.create."""
    from conftest import SR as BaseSR

    class NbdSR(FileSR):
        def __init__(self, plugin, path):
            BaseSR.__init__(self, plugin, {"path": path, "datapath": "nbd"})

    err = plugin.err("SR.create", {"dbg": "x", "uuid": "6d3c4a1e-7b1f-4c55-9d0e-0c1d2e3f4a5b",
                                   "configuration": {"path": str(tmp_path / "bad"),
                                                     "datapath": "loop"},
                                   "name": "x", "description": ""})
    assert "datapath" in str(err)
    sr1 = NbdSR(plugin, str(tmp_path / "sr1"))
    sr2 = FileSR(plugin, str(tmp_path / "sr2"))
    v = sr1.create(size=SIZE, name="plain")
    src = Attached(sr1, v, datapath)
    d = sr2.create(size=SIZE, name="destination")
    imp = datapath.ok("Datapath.import_activate", uri=d["uri"][0], domain="1")
    proxy = Proxy(tmp_path, imp)
    try:
        impls = dict((i[0], i[1]) for i in src.backend["implementations"])
        assert src.blockdev is None and impls["XenDisk"]["backend_type"] == "qdisk"
        fill(src.nbd_uri)
        writer = Writer(src.nbd_uri)
        try:
            op = datapath.ok("Data.mirror", uri=src.uri, domain="1", remote=proxy.uri)
            wait_for(lambda: stat(datapath, op)["complete"] or stat(datapath, op)["failed"],
                     "the mirror to complete", timeout=120)
            assert stat(datapath, op) == {"failed": False, "complete": True, "progress": 1.0}
            n = writer.count
            wait_for(lambda: writer.count > n + 100, "writes after the copy completed")
        finally:
            writer.stop()
        assert not writer.errors
        assert sha(sr1.img(v["key"])) == sha(sr2.img(d["key"]))
        datapath.ok("Data.destroy", operation=op)
    finally:
        proxy.close()
        datapath.ok("Datapath.deactivate", uri=d["uri"][0], domain="1")
        datapath.ok("Datapath.detach", uri=d["uri"][0], domain="1")
        src.detach()
