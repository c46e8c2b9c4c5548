"""The NBD server under bad input and load: malformed handshakes, oversize
lengths, unknown options and commands, reads past the end, writes to
read-only exports, disconnects in the middle of a request.  Each time the
server answers with the right NBD error or closes that one connection,
keeps serving the others, and never writes outside the export.  Then 64
connections writing and checking their own patterns, with flat memory."""
import hashlib
import os
import random
import socket
import struct
import threading
import time

import nbd
import pytest

from conftest import RUN_DIR, Attached

MiB = 1 << 20
REQ = 0x25609513
OPT_GO, OPT_INFO, OPT_STRUCTURED = 7, 6, 8


class Raw:
    """A hand-driven NBD client for what real clients never send."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(20)
        self.s.connect(path)
        hello = self.recv(18)
        assert hello[:16] == b"NBDMAGICIHAVEOPT"

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                return b
            b += c
        return b

    def send(self, b):
        self.s.sendall(b)

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return True

    def option(self, opt, data=b""):
        """Send one option and read its first reply."""
        self.send(b"IHAVEOPT" + struct.pack(">II", opt, len(data)) + data)
        return self.reply(opt)

    def reply(self, opt):
        """Read one option reply (GO and INFO send several)."""
        magic, o, rtype, rlen = struct.unpack(">QIII", self.recv(20))
        assert magic == 0x3e889045565a9 and o == opt, (hex(magic), o)
        return rtype, self.recv(rlen)

    def go_replies(self, data):
        """Send GO; read its INFO replies up to the final one."""
        rtype, _ = self.option(OPT_GO, data)
        while rtype == 3:  # NBD_REP_INFO
            rtype, _ = self.reply(OPT_GO)
        return rtype

    def go(self, name, structured=False):
        self.send(struct.pack(">I", 3))
        if structured:
            assert self.option(OPT_STRUCTURED)[0] == 1
        data = struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0)
        assert self.go_replies(data) == 1  # INFO replies, then ACK

    def request(self, typ, off, length, flags=0, cookie=1, payload=b""):
        self.send(struct.pack(">IHHQQI", REQ, flags, typ, cookie, off, length) + payload)

    def simple_reply(self):
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        assert magic == 0x67446698
        return err, cookie


@pytest.fixture
def victim(file_sr, datapath):
    """An attached volume, a bystander volume next to it, and a way to
    prove neither was written outside what the tests wrote."""
    v = file_sr.create(size=4 * MiB, name="victim")
    by = file_sr.create(size=4 * MiB, name="bystander")
    file_sr.write(by["key"], random.Random(5).randbytes(MiB))
    a = Attached(file_sr, v, datapath)

    def sums():
        return {n: hashlib.sha256(open(os.path.join(file_sr.path, n), "rb").read()).hexdigest()
                for n in os.listdir(file_sr.path) if n.endswith(".img")}
    before = sums()
    yield a, before, sums
    a.detach()


def victim_data(a, before, sums):
    """Assert no volume but the victim was written; return the victim's bytes."""
    after = sums()
    key = a.vol["key"] + ".img"
    for n in after:
        if n != key:
            assert after[n] == before.get(n), f"{n} was written"
    return open(os.path.join(a.sr.path, key), "rb").read()


def good_client_works(a):
    h = nbd.NBD()
    h.set_export_name(a.export)
    h.connect_unix(a.socket)
    h.pwrite(b"ok" * 256, 3 * MiB)
    assert h.pread(512, 3 * MiB) == b"ok" * 256
    h.shutdown()


def test_malformed_handshakes(victim):
    a, before, sums = victim
    cases = [
        lambda r: r.send(struct.pack(">I", 1 << 7)),  # unknown client flag
        lambda r: r.send(os.urandom(4) + b"garbage" * 10),
        lambda r: (r.send(struct.pack(">I", 3)), r.send(b"NOTAMAGIC" + b"\0" * 20)),
        lambda r: (r.send(struct.pack(">I", 3)),  # 4 GiB option that never comes
                   r.send(b"IHAVEOPT" + struct.pack(">II", 7, 0xffffffff) + b"x" * 100)),
        lambda r: (r.send(struct.pack(">I", 3)),  # truncated payload, then EOF
                   r.send(b"IHAVEOPT" + struct.pack(">II", 7, 100) + b"x" * 10),
                   r.s.shutdown(socket.SHUT_WR)),
        lambda r: (r.send(struct.pack(">I", 3)),  # EXPORT_NAME of nothing: hang up
                   r.send(b"IHAVEOPT" + struct.pack(">II", 1, 7) + b"nothing")),
    ]
    for case in cases:
        r = Raw(a.socket)
        case(r)
        assert r.closed()
        good_client_works(a)
    # errors that keep the session: unknown options, bad INFO lengths
    r = Raw(a.socket)
    r.send(struct.pack(">I", 3))
    assert r.option(99)[0] == (1 << 31) + 1  # ERR_UNSUP
    assert r.option(4)[0] == (1 << 31) + 1  # PEEK_EXPORT (withdrawn)
    assert r.option(OPT_INFO, b"\0\0\0\x50abc")[0] == (1 << 31) + 3  # ERR_INVALID
    assert r.option(3, b"data")[0] == (1 << 31) + 3  # LIST with data
    assert r.option(10, b"\0" * 8)[0] == (1 << 31) + 3  # SET_META without structured
    rtype, msg = r.option(OPT_GO, struct.pack(">I", 4) + b"nope" + b"\0\0")
    assert rtype == (1 << 31) + 6 and msg  # ERR_UNKNOWN, with a message
    data = struct.pack(">I", len(a.export)) + a.export.encode() + b"\0\0"
    assert r.go_replies(data) == 1
    r.request(0, 0, 512)
    assert r.simple_reply()[0] == 0 and len(r.recv(512)) == 512
    # only the good clients wrote, and only where they wrote
    data = victim_data(a, before, sums)
    assert data == bytes(3 * MiB) + b"ok" * 256 + bytes(MiB - 512)


def test_every_option_holds_names_to_the_same_rules(victim):
    """A name with a NUL inside, or over 4096 bytes, is no export name on any
    option that carries one (reference nbd.md 1): GO and INFO answer
    ERR_INVALID, the META_CONTEXT options too (also for such a query), and
    EXPORT_NAME, which cannot answer an error, hangs up instead of serving
    the name before the NUL."""
    a, before, sums = victim
    INVALID = (1 << 31) + 3
    good = a.export.encode()
    for bad in (good + b"\0junk", b"\0" + good, good + b"x" * 4097):
        r = Raw(a.socket)
        r.send(struct.pack(">I", 3))
        go = struct.pack(">I", len(bad)) + bad + b"\0\0"
        assert r.go_replies(go) == INVALID
        assert r.option(OPT_INFO, go)[0] == INVALID
        meta = struct.pack(">I", len(bad)) + bad + struct.pack(">I", 0)
        assert r.option(9, meta)[0] == INVALID  # LIST_META_CONTEXT
        assert r.option(OPT_STRUCTURED)[0] == 1
        assert r.option(10, meta)[0] == INVALID  # SET_META_CONTEXT
        # the session goes on, and the good name still works
        assert r.go_replies(struct.pack(">I", len(good)) + good + b"\0\0") == 1
        r = Raw(a.socket)
        r.send(struct.pack(">I", 3))
        r.send(b"IHAVEOPT" + struct.pack(">II", 1, len(bad)) + bad)  # EXPORT_NAME
        assert r.closed(), bad[:80]
    # a context query with a NUL inside is malformed too
    r = Raw(a.socket)
    r.send(struct.pack(">I", 3))
    q = b"base:allocation\0x"
    meta = struct.pack(">I", len(good)) + good + struct.pack(">I", 1) + \
        struct.pack(">I", len(q)) + q
    assert r.option(9, meta)[0] == INVALID
    good_client_works(a)
    victim_data(a, before, sums)


def test_a_refused_set_meta_context_leaves_no_selection(victim):
    """SET_META_CONTEXT replaces the selection even when it fails: after a
    refused one, BLOCK_STATUS has no context to answer from (EINVAL), as
    after none at all -- not the selection from before."""
    a, _, _ = victim
    good = a.export.encode()

    def set_meta(queries, name=good):
        data = struct.pack(">I", len(name)) + name + struct.pack(">I", len(queries))
        for q in queries:
            data += struct.pack(">I", len(q)) + q
        r.send(b"IHAVEOPT" + struct.pack(">II", 10, len(data)) + data)
        replies = [r.reply(10)]
        while replies[-1][0] == 4:  # NBD_REP_META_CONTEXT
            replies.append(r.reply(10))
        return replies

    for bad in ([b"base:allocation"], [b"base:allocation\0x"], None):
        r = Raw(a.socket)
        r.send(struct.pack(">I", 3))
        assert r.option(OPT_STRUCTURED)[0] == 1
        replies = set_meta([b"base:allocation"])
        assert [t for t, _ in replies] == [4, 1]
        if bad == [b"base:allocation"]:  # an unknown export: ERR_UNKNOWN
            assert set_meta(bad, name=b"no/such")[-1][0] == (1 << 31) + 6
        elif bad:
            assert set_meta(bad)[-1][0] == (1 << 31) + 3
        assert r.go_replies(struct.pack(">I", len(good)) + good + b"\0\0") == 1
        r.request(7, 0, 4096, cookie=5)  # BLOCK_STATUS
        magic, flags, rtype, cookie, plen = struct.unpack(">IHHQI", r.recv(20))
        body = r.recv(plen)
        if bad is None:  # the selection stands: a status chunk
            assert rtype == 5 and cookie == 5
        else:
            assert rtype == (1 << 15) + 1 and struct.unpack(">I", body[:4])[0] == 22


def test_bad_requests(victim):
    a, before, sums = victim
    r = Raw(a.socket)
    r.go(a.export)
    r.request(42, 0, 512)  # unknown command
    assert r.simple_reply() == (22, 1)
    r.request(0, 4 * MiB, 512, cookie=2)  # read past the end
    assert r.simple_reply() == (22, 2)
    r.request(0, 4 * MiB - 256, 512, cookie=3)  # read across the end
    assert r.simple_reply() == (22, 3)
    r.request(1, 4 * MiB - 256, 512, cookie=4, payload=b"E" * 512)  # write across the end
    assert r.simple_reply() == (28, 4)
    r.request(4, 2 * MiB, 8 * MiB, cookie=5)  # trim past the end
    assert r.simple_reply() == (22, 5)
    r.request(0, 0, 512, flags=1 << 9, cookie=6)  # unknown flag
    assert r.simple_reply() == (22, 6)
    r.request(0, (1 << 64) - 512, 1024, cookie=7)  # offset wrapping around
    assert r.simple_reply() == (22, 7)
    r.request(3, 5, 0, cookie=8)  # FLUSH with an offset
    assert r.simple_reply() == (22, 8)
    r.request(7, 0, 512, cookie=9)  # BLOCK_STATUS without the context
    assert r.simple_reply() == (22, 9)
    r.request(0, 0, 40 * MiB, cookie=10)  # larger than the maximum payload
    assert r.simple_reply()[1] == 10
    r.request(0, 0, 16, cookie=11)  # and the connection still works
    assert r.simple_reply() == (0, 11) and len(r.recv(16)) == 16
    r.request(1, 0, 64 * MiB)  # a write too large to take: hang up
    assert r.closed()
    r = Raw(a.socket)
    r.go(a.export)
    r.send(b"\xde\xad\xbe\xef" + b"\0" * 24)  # bad request magic: hang up
    assert r.closed()
    # a write cut off in the middle: nothing of it lands
    r = Raw(a.socket)
    r.go(a.export)
    r.request(1, MiB, 65536, cookie=12, payload=b"P" * 1000)
    r.s.close()
    good_client_works(a)
    data = victim_data(a, before, sums)
    assert len(data) == 4 * MiB and b"E" not in data and b"P" not in data


def test_writes_to_a_read_only_export(file_sr, datapath):
    v = file_sr.create(size=MiB)
    file_sr.write(v["key"], b"frozen")
    s = file_sr.call("Volume.snapshot", key=v["key"])
    a = Attached(file_sr, s, datapath)
    r = Raw(a.socket)
    r.go(a.export, structured=True)
    for typ, payload in ((1, b"W" * 512), (4, b""), (6, b"")):
        r.request(typ, 0, 512, payload=payload, cookie=typ)
        h = r.recv(20)
        magic, flags, rtype, cookie, plen = struct.unpack(">IHHQI", h)
        body = r.recv(plen)
        if magic == 0x67446698:  # simple
            err = struct.unpack(">I", h[4:8])[0]
        else:
            assert rtype == (1 << 15) + 1
            err = struct.unpack(">I", body[:4])[0]
        assert err == 1, (typ, err)  # EPERM
    assert file_sr.read(s["key"], 0, 6) == b"frozen"
    a.detach()


def test_random_bytes_after_the_handshake(victim):
    a, before, sums = victim
    rnd = random.Random(1234)
    for i in range(40):
        r = Raw(a.socket)
        r.go(a.export, structured=bool(i % 2))
        try:
            r.send(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 400))))
            r.s.shutdown(socket.SHUT_WR)
            while r.s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        r.s.close()
    good_client_works(a)
    assert len(victim_data(a, before, sums)) == 4 * MiB


def server_rss_kib():
    pid = int(open(os.path.join(RUN_DIR, "nbd.pid")).read())
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_64_connections_under_load(file_sr, datapath):
    v = file_sr.create(size=64 * MiB, name="load")
    a = Attached(file_sr, v, datapath)
    stop = time.monotonic() + 12
    errors, rounds, rss = [], [0] * 64, []

    def worker(i):
        try:
            h = nbd.NBD()
            h.set_export_name(a.export)
            h.connect_unix(a.socket)
            rnd = random.Random(i)
            base = i * MiB
            while time.monotonic() < stop:
                off = base + rnd.randrange(0, MiB - 65536, 4096)
                data = bytes([i]) * 4096 + rnd.randbytes(60 * 1024)
                h.pwrite(data, off)
                if h.pread(len(data), off) != data:
                    errors.append(f"connection {i}: corrupt at {off}")
                    return
                rounds[i] += 1
            h.shutdown()
        except Exception as e:  # noqa: BLE001
            errors.append(f"connection {i}: {e}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(64)]
    for t in threads:
        t.start()
    # the server's RSS, sampled every half second while the load runs: a
    # measurement at intervals, not a wait (the workers end themselves at
    # `stop`; one still running 60 s later is stuck in a request)
    while any(t.is_alive() for t in threads):
        assert time.monotonic() < stop + 60, \
            f"connections {[i for i, t in enumerate(threads) if t.is_alive()]} still " \
            "running 60 s after the load's end"
        rss.append(server_rss_kib())
        time.sleep(0.5)
    assert not errors, errors[:5]
    assert min(rounds) > 0 and sum(rounds) > 640
    # memory flat: after the first seconds (buffers touched), no growth
    settled = rss[len(rss) // 3:]
    assert max(settled) <= min(settled) * 1.15 + 8192, rss
    # every region holds its own connection's byte where it wrote
    data = open(os.path.join(file_sr.path, v["key"] + ".img"), "rb").read()
    for i in range(64):
        region = data[i * MiB:(i + 1) * MiB]
        assert region.count(bytes([i]) * 4096) > 0 or i == 0
    a.detach()
    print(f"\n64 connections: {sum(rounds)} write+verify rounds; server RSS "
          f"{min(settled)}-{max(settled)} KiB after warm-up")
