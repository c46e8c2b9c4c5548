"""The NBD server against real clients: qemu-img, qemu-io, nbdinfo,
nbdcopy, fio's nbd engine, libnbd (what nbdsh drives) for every option and
command including the error paths, and a real ext4 filesystem on an export
through nbdfuse and a loop device."""
import hashlib
import json
import os
import random
import shutil
import subprocess

import nbd
import pytest

from conftest import Attached, need, wait_for

MiB = 1 << 20


def run(*argv, **kw):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, (argv, p.stdout, p.stderr)
    return p.stdout


def handle(a, structured=True, meta=(), opt_mode=False):
    h = nbd.NBD()
    h.set_request_structured_replies(structured)
    for m in meta:
        h.add_meta_context(m)
    if opt_mode:
        h.set_opt_mode(True)
    h.set_export_name(a.export)
    h.connect_unix(a.socket)
    return h


def test_qemu_img_and_qemu_io(attached, tmp_path):
    info = json.loads(run("qemu-img", "info", "--output=json", attached.nbd_uri))
    assert info["virtual-size"] == 64 * MiB and info["format"] == "raw"
    out = run("qemu-io", "-f", "raw", attached.nbd_uri,
              "-c", "write -P 0xab 1M 64k", "-c", "write -z 4M 1M", "-c", "write -P 7 8M 1M",
              "-c", "write -z -u 8M 512k", "-c", "discard 9M 64k", "-c", "flush",
              "-c", "read -P 0xab 1M 64k", "-c", "read -P 0 4M 1M", "-c", "read -P 0 8M 512k",
              "-c", "read -P 7 8704k 64k", "-c", "read -P 0 0 4k")
    assert "Pattern verification failed" not in out
    src = tmp_path / "src.raw"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", attached.nbd_uri, str(src))
    assert os.path.getsize(src) == 64 * MiB
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(src), attached.nbd_uri)
    # convert into the export and compare back
    data = tmp_path / "rand.raw"
    data.write_bytes(random.Random(3).randbytes(8 * MiB) + b"\0" * (56 * MiB))
    run("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(data), attached.nbd_uri)
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(data), attached.nbd_uri)


def test_nbdinfo_list_and_map(attached):
    lst = json.loads(run("nbdinfo", "--list", "--json",
                         f"nbd+unix:///?socket={attached.socket}"))
    assert attached.export in [e["export-name"] for e in lst["exports"]]
    run("qemu-io", "-f", "raw", attached.nbd_uri, "-c", "write -P 1 1M 1M",
        "-c", "write -P 2 10M 64k")
    m = json.loads(run("nbdinfo", "--map", "--json", attached.nbd_uri))
    data = [(e["offset"], e["length"]) for e in m if e["type"] == 0]
    assert data == [(1 * MiB, 1 * MiB), (10 * MiB, 64 << 10)]  # holes from the storage
    assert sum(e["length"] for e in m) == 64 * MiB
    assert all(e["type"] == 3 for e in m if e["type"] != 0)  # hole+zero
    info = json.loads(run("nbdinfo", "--json", attached.nbd_uri))["exports"][0]
    for k in ("can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache",
              "can_multi_conn", "can_df"):
        assert info[k] is True, k
    assert info["block_size_preferred"] == 4096


def test_nbdcopy_both_ways(attached, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(random.Random(7).randbytes(64 * MiB))
    run("nbdcopy", str(src), attached.nbd_uri)
    out = tmp_path / "out.bin"
    run("nbdcopy", attached.nbd_uri, str(out))
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    run("nbdcopy", "-C", "1", "--request-size=4194304", attached.nbd_uri, str(out))
    assert out.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("rw", ["randwrite", "write"])
def test_fio_nbd_engine_with_verify(attached, rw, tmp_path):
    # cwd: fio writes its verify state file there (never into the repository)
    out = run("fio", "--name=v", "--ioengine=nbd", f"--uri={attached.nbd_uri}",
              f"--rw={rw}", "--bs=4k", "--iodepth=32", "--size=32m", "--verify=crc32c",
              "--do_verify=1", "--output-format=json", cwd=str(tmp_path))
    j = json.loads(out[out.index("{"):])
    assert j["jobs"][0]["error"] == 0
    assert j["jobs"][0]["write"]["io_bytes"] == 32 * MiB


def test_options_through_libnbd(attached):
    # LIST, INFO then GO with the same answer, unknown export refused
    h = handle(attached, opt_mode=True)
    names = []
    h.opt_list(lambda name, desc: names.append(name) or 0)
    assert attached.export in names
    h.opt_info()
    size_info = h.get_size()
    assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 * MiB
    ctxs = []
    h.opt_list_meta_context(lambda name: ctxs.append(name) or 0)
    assert ctxs == ["base:allocation"]
    h.set_export_name("no-such-export")
    with pytest.raises(nbd.Error):
        h.opt_info()
    h.set_export_name(attached.export)
    h.opt_go()
    assert h.get_size() == size_info == 64 * MiB
    assert h.get_structured_replies_negotiated()
    assert h.can_meta_context("base:allocation") is False  # none was asked for
    h.shutdown()
    # ABORT ends the negotiation cleanly
    h = handle(attached, opt_mode=True)
    h.opt_abort()
    # no structured replies: simple replies, no meta contexts, no DF
    h = handle(attached, structured=False, meta=["base:allocation"])
    assert not h.get_structured_replies_negotiated() and not h.can_df()
    assert h.pread(512, 0) == b"\0" * 512
    h.shutdown()


def test_every_command_and_its_errors(attached):
    h = handle(attached, meta=["base:allocation"])
    size = h.get_size()
    h.pwrite(b"A" * 8192, 0, nbd.CMD_FLAG_FUA)
    assert h.pread(8192, 0) == b"A" * 8192
    chunks = []
    buf = h.pread_structured(
        65536, 0, lambda sub, off, status, err: chunks.append((off, status, len(sub))) or 0,
        nbd.CMD_FLAG_DF)
    assert buf[:8192] == b"A" * 8192
    assert chunks == [(0, nbd.READ_DATA, 65536)]  # DF: one chunk
    h.flush()
    h.zero(4096, 0, nbd.CMD_FLAG_NO_HOLE)
    assert h.pread(4096, 0) == b"\0" * 4096
    h.zero(4096, 4096, nbd.CMD_FLAG_FAST_ZERO)
    h.trim(65536, 1 << 20, nbd.CMD_FLAG_FUA)
    h.cache(1 << 20, 0)
    seen = []
    h.block_status(2 * MiB, 0, lambda ctx, off, ents, err: seen.append((ctx, list(ents))) or 0)
    assert seen[0][0] == "base:allocation" and sum(seen[0][1][0::2]) >= 2 * MiB
    seen.clear()
    h.block_status(2 * MiB, 0, lambda ctx, off, ents, err: seen.append(list(ents)) or 0,
                   nbd.CMD_FLAG_REQ_ONE)
    assert len(seen[0]) == 2
    # error paths: past the end, unknown flags
    h.set_strict_mode(0)  # let libnbd send what a careless client would
    assert h.pread(0, 0) == b""  # zero-length read: unspecified by the spec; we answer
    for call, err in ((lambda: h.pread(4096, size), "EINVAL"),
                      (lambda: h.pwrite(b"x" * 4096, size - 1024), "ENOSPC"),
                      (lambda: h.trim(4096, size), "EINVAL"),
                      (lambda: h.zero(4096, size), "ENOSPC"),
                      (lambda: h.block_status(4096, size, lambda *a: 0), "EINVAL"),
                      (lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE), "EINVAL"),
                      (lambda: h.cache(4096, size), "EINVAL")):
        with pytest.raises(nbd.Error) as e:
            call()
        assert e.value.errnum == getattr(__import__("errno"), err), (err, e.value)
    # the connection survives all of it
    assert h.pread(4, 0) == b"\0" * 4
    h.shutdown()


def test_export_name_with_padding_and_simple_replies(attached):
    """Xen Orchestra's client: NBD_OPT_EXPORT_NAME without NO_ZEROES (the
    124-byte padding path) and simple replies only."""
    import socket
    import struct
    s = socket.socket(socket.AF_UNIX)
    s.connect(attached.socket)
    hello = s.recv(18, socket.MSG_WAITALL)
    assert hello[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 1))  # FIXED_NEWSTYLE only
    name = attached.export.encode()
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)
    reply = s.recv(134, socket.MSG_WAITALL)
    assert len(reply) == 134 and reply[10:] == b"\0" * 124
    size, flags = struct.unpack(">QH", reply[:10])
    assert size == 64 * MiB and flags & 1
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 99, 0, 65536))
    r = s.recv(16, socket.MSG_WAITALL)
    assert struct.unpack(">IIQ", r) == (0x67446698, 0, 99)
    assert len(s.recv(65536, socket.MSG_WAITALL)) == 65536
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 2, 0, 0, 0))  # DISC
    assert s.recv(1) == b""


def test_a_filesystem_on_an_export(attached, tmp_path):
    """nbdfuse turns the export into a file; a loop device over it carries
    ext4; files written through the mount survive fsck and a remount."""
    need(shutil.which("nbdfuse") is not None, "nbdfuse (libnbd-bin) is not installed")
    mnt, fuse = tmp_path / "mnt", tmp_path / "fuse"
    mnt.mkdir()
    fuse.mkdir()
    p = subprocess.Popen(["nbdfuse", str(fuse / "disk"), attached.nbd_uri])
    loop = None
    try:
        wait_for(lambda: (fuse / "disk").exists() or p.poll() is not None,
                 "nbdfuse to create its file")
        assert p.poll() is None, f"nbdfuse exited with status {p.returncode}"
        loop = run("losetup", "--find", "--show", str(fuse / "disk")).strip()
        run("mkfs.ext4", "-q", "-F", loop)
        run("mount", loop, str(mnt))
        payload = random.Random(11).randbytes(3 * MiB)
        for i in range(5):
            (mnt / f"f{i}").write_bytes(payload[i:])
        run("umount", str(mnt))
        run("e2fsck", "-f", "-n", loop)
        run("mount", loop, str(mnt))
        for i in range(5):
            assert (mnt / f"f{i}").read_bytes() == payload[i:]
        run("umount", str(mnt))
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
        subprocess.run(["fusermount3", "-u", str(fuse)], capture_output=True)
        p.wait(timeout=30)


def test_multi_conn_flush_is_visible_everywhere(attached):
    a, b = handle(attached), handle(attached)
    assert a.can_multi_conn()
    a.pwrite(b"M" * 4096, 8192)
    a.flush()
    assert b.pread(4096, 8192) == b"M" * 4096
    a.shutdown()
    b.shutdown()
