"""The datapath plugin (scheme zfs-live), invoked exactly as
xapi-storage-script does: Plugin.Query, Datapath.open/attach/activate/
activate_readonly/deactivate/detach/close, all idempotent."""
import json
import os
import stat
import subprocess
import time

import pytest

import v5
from conftest import DP_ROOT, RUN_DIR, Attached, Datapath, cli, stop_nbd_server_and_wait

DP_METHODS = {"Plugin.Query", "Plugin.diagnostics", "Datapath.open", "Datapath.attach",
              "Datapath.activate", "Datapath.activate_readonly", "Datapath.deactivate",
              "Datapath.detach", "Datapath.close", "Datapath.import_activate",
              "Data.mirror", "Data.stat", "Data.cancel", "Data.destroy", "Data.ls"}


def test_plugin_directory_and_query(datapath):
    assert set(os.listdir(DP_ROOT)) == DP_METHODS
    q = v5.query(datapath.ok("Plugin.Query"))
    # the daemon registers datapaths by directory name = URI scheme
    assert q["plugin"] == "zfs-live" == os.path.basename(DP_ROOT)
    assert q["required_api_version"] == "5.0"
    assert "NONPERSISTENT" in q["features"]


def test_volume_records_carry_the_zfs_live_uri(sr):
    v = sr.create()
    assert v["uri"][0].startswith("zfs-live://")


def check_backend(backend):
    impls = backend["implementations"]
    assert type(impls) is list and impls
    kinds = [i[0] for i in impls]
    for tag, payload in impls:
        assert tag in ("XenDisk", "BlockDevice", "File", "Nbd")
        assert type(payload) is dict
        v5._no_null(payload, tag)
    x = dict(impls)["XenDisk"]
    assert x["backend_type"] in ("vbd", "vbd3", "qdisk") and type(x["extra"]) is dict
    nbd = dict(impls)["Nbd"]["uri"]
    assert nbd.startswith("nbd:unix:") and ":exportname=" in nbd
    sock = nbd[len("nbd:unix:"):].split(":exportname=")[0]
    assert ":" not in sock  # xapi splits on ':'
    return kinds


def test_attach_gives_a_real_block_device_holding_the_data(file_sr, datapath):
    v = file_sr.create(size=16 << 20)
    a = Attached(file_sr, v, datapath)
    kinds = check_backend(a.backend)
    assert kinds == ["XenDisk", "BlockDevice", "Nbd"]
    dev = a.blockdev
    assert stat.S_ISBLK(os.stat(dev).st_mode)
    # direct I/O where the filesystem allows it (ext4 here)
    with open(f"/sys/block/{os.path.basename(dev)}/loop/dio") as f:
        assert f.read().strip() == "1"
    # write through the block device, read back through the CLI
    fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
    import mmap
    buf = mmap.mmap(-1, 4096)
    buf.write(b"via the block device".ljust(4096, b"."))
    os.pwrite(fd, buf, 1 << 20)
    os.fsync(fd)
    os.close(fd)
    assert file_sr.read(v["key"], 1 << 20, 20) == b"via the block device"
    # and through NBD
    out = subprocess.run(["qemu-io", "-f", "raw", a.nbd_uri, "-c", "read -P 0x2e 1048596 4076"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "read 4076/4076" in out.stdout, out.stderr
    # attach again (another VBD, same domain): same answer
    assert datapath.ok("Datapath.attach", uri=a.uri, domain="1") == a.backend
    a.detach()
    a.detach()  # idempotent, never fails
    assert not os.path.exists(f"/sys/block/{os.path.basename(dev)}/loop/backing_file")
    # the export is gone: the server refuses the name now
    out = subprocess.run(["nbdinfo", a.nbd_uri], capture_output=True, text=True)
    assert out.returncode != 0


def losetup(*args):
    return subprocess.run(["losetup", "--find", "--show", *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def blk_size(dev):
    with open(f"/sys/block/{os.path.basename(dev)}/size") as f:
        return int(f.read()) * 512


def test_attach_reuses_a_loop_device_only_as_the_volume_is_now(file_sr, datapath):
    """A loop device of the volume's file found on the host is reused only
    if it is right for the volume now: never a read-only one for a writable
    volume, and one made before a resize takes the new size first."""
    v = file_sr.create(size=8 << 20)
    img = file_sr.img(v["key"])
    ro = losetup("--read-only", img)
    planted = [ro]
    try:
        a = Attached(file_sr, v, datapath)
        assert a.blockdev != ro
        with open(f"/sys/block/{os.path.basename(a.blockdev)}/ro") as f:
            assert f.read().strip() == "0"
        a.detach()
        # a writable device made before a resize: it takes the new size
        old = losetup(img)
        planted.append(old)
        file_sr.call("Volume.resize", key=v["key"], new_size=24 << 20)
        assert blk_size(old) == 8 << 20
        a = Attached(file_sr, v, datapath)
        assert blk_size(a.blockdev) == 24 << 20
        a.detach()
    finally:
        for d in planted:
            subprocess.run(["losetup", "-d", d], capture_output=True)


def test_attach_starts_the_server_detached(file_sr, datapath):
    """No server running: attach starts one that does not hold the caller's
    stdout/stderr (xapi-storage-script waits for EOF on both)."""
    stop_nbd_server_and_wait()
    v = file_sr.create(size=1 << 20)
    t0 = time.monotonic()
    a = Attached(file_sr, v, datapath)  # capture_output: waits for EOF on both pipes
    assert time.monotonic() - t0 < 30
    pid = int(open(os.path.join(RUN_DIR, "nbd.pid")).read())
    fds = {os.readlink(f"/proc/{pid}/fd/{n}") for n in ("0", "1", "2")}
    assert fds == {"/dev/null"}
    assert os.getsid(pid) == pid  # its own session
    a.detach()


def test_activate_is_exclusive_per_host(file_sr, datapath):
    v = file_sr.create()
    uri = v["uri"][0]
    assert datapath.ok("Datapath.activate", uri=uri, domain="5") is None
    assert datapath.ok("Datapath.activate", uri=uri, domain="5") is None  # again: fine
    other = {"ZFS_LIVE_HOST_UUID": "11111111-2222-4333-8444-555555555555"}
    err = datapath.err("Datapath.activate", {"dbg": "x", "uri": uri, "domain": "3"}, env=other)
    assert err["params"][0] == "Activated_on_another_host"
    assert len(err["params"]) == 2 and err["params"][1]  # exactly the pair xapi matches
    # the other host's deactivate does not release ours
    res = datapath.run("Datapath.deactivate", {"dbg": "x", "uri": uri, "domain": "3"},
                       env=other)
    assert res.rc == 0
    err = datapath.err("Datapath.activate", {"dbg": "x", "uri": uri, "domain": "3"}, env=other)
    assert err["params"][0] == "Activated_on_another_host"
    datapath.ok("Datapath.deactivate", uri=uri, domain="5")
    datapath.ok("Datapath.deactivate", uri=uri, domain="5")  # idempotent
    res = datapath.run("Datapath.activate", {"dbg": "x", "uri": uri, "domain": "3"},
                       env=other)
    assert res.rc == 0
    # readers: on the writer's host, fine (dom0 copies); on another host,
    # refused too (the disk would change under it)
    res = datapath.run("Datapath.activate_readonly", {"dbg": "x", "uri": uri, "domain": "8"},
                       env=other)
    assert res.rc == 0
    err = datapath.err("Datapath.activate_readonly", {"dbg": "x", "uri": uri, "domain": "8"})
    assert err["params"][0] == "Activated_on_another_host"
    datapath.run("Datapath.deactivate", {"dbg": "x", "uri": uri, "domain": "3"}, env=other)
    assert datapath.ok("Datapath.activate_readonly", uri=uri, domain="8") is None


def test_nonpersistent_disk_is_reset_at_close(file_sr, datapath):
    v = file_sr.create(size=4 << 20)
    file_sr.write(v["key"], b"golden")
    uri = v["uri"][0]
    assert datapath.ok("Datapath.open", uri=uri, persistent=False) is None
    assert datapath.ok("Datapath.open", uri=uri, persistent=False) is None  # idempotent
    a = Attached(file_sr, v, datapath)
    subprocess.run(["qemu-io", "-f", "raw", a.nbd_uri, "-c", "write -P 0x58 0 512"],
                   check=True, capture_output=True)
    assert file_sr.read(v["key"], 0, 6) == b"XXXXXX"
    a.detach()
    assert datapath.ok("Datapath.close", uri=uri) is None
    assert datapath.ok("Datapath.close", uri=uri) is None
    assert file_sr.read(v["key"], 0, 6) == b"golden"
    # the reset point was never visible and is gone
    assert [x["key"] for x in file_sr.check_consistent()] == [v["key"]]
    # persistent opens change nothing
    datapath.ok("Datapath.open", uri=uri, persistent=True)
    file_sr.write(v["key"], b"stays!")
    datapath.ok("Datapath.close", uri=uri)
    assert file_sr.read(v["key"], 0, 6) == b"stays!"


def test_snapshots_attach_read_only(file_sr, datapath):
    v = file_sr.create(size=4 << 20)
    file_sr.write(v["key"], b"snapdata")
    s = file_sr.call("Volume.snapshot", key=v["key"])
    a = Attached(file_sr, s, datapath)
    out = subprocess.run(["nbdinfo", "--json", a.nbd_uri], capture_output=True, text=True)
    assert json.loads(out.stdout)["exports"][0]["is_read_only"] is True
    out = subprocess.run(["qemu-io", "-f", "raw", a.nbd_uri, "-c", "write -P 1 0 512"],
                         capture_output=True, text=True)
    assert "Operation not permitted" in out.stdout + out.stderr or out.returncode != 0
    assert file_sr.read(s["key"], 0, 8) == b"snapdata"
    a.detach()


def test_zfs_volumes_attach_too(sr, datapath):
    v = sr.create(size=8 << 20)
    a = Attached(sr, v, datapath)
    check_backend(a.backend)
    subprocess.run(["qemu-io", "-f", "raw", a.nbd_uri, "-c", "write -P 0x5a 0 64k"],
                   check=True, capture_output=True)
    assert sr.read(v["key"], 0, 4) == b"ZZZZ"
    a.detach()


def test_bad_uris_are_refused(datapath):
    for uri in ("tapdisk://x", "zfs-live://nosuch//srv|k", "zfs-live://file-live/nosep",
                "zfs-live://file-live//nonexistent/sr|k", "zfs-live://file-live//tmp|../x"):
        err = datapath.err("Datapath.attach", {"dbg": "x", "uri": uri, "domain": "1"})
        assert err["backtrace"]["error"]
    datapath.err("Datapath.attach", {"dbg": "x", "uri": "zfs-live://x"})  # no domain


def nbd_size(uri):
    out = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def export_name_size(a):
    """The old style (Xen Orchestra's): NBD_OPT_EXPORT_NAME, size in the
    bare reply."""
    import socket
    import struct
    s = socket.socket(socket.AF_UNIX)
    s.connect(a.socket)
    assert s.recv(18, socket.MSG_WAITALL)[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 3))
    name = a.export.encode()
    s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, len(name)) + name)
    size, _ = struct.unpack(">QH", s.recv(10, socket.MSG_WAITALL))
    s.close()
    return size


def test_new_connections_see_the_size_after_a_resize(sr, datapath):
    """Attach, keep a connection open, detach, resize, attach again: every
    new connection (nbdinfo: GO; qemu-img: its own open; nbdsh: EXPORT_NAME
    and INFO) sees the new size although the old connection still holds the
    export.  The old connection keeps the size it was given (NBD cannot
    change it): a read past it is refused, not served."""
    import nbd
    v = sr.create(size=8 << 20)
    a = Attached(sr, v, datapath)
    old = nbd.NBD()
    old.set_strict_mode(0)  # let the server judge what is past the end
    old.connect_uri(a.nbd_uri)
    assert old.get_size() == 8 << 20
    a.detach()
    sr.call("Volume.resize", key=v["key"], new_size=24 << 20)
    a = Attached(sr, v, datapath)
    try:
        assert nbd_size(a.nbd_uri) == 24 << 20
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", a.nbd_uri],
                                         capture_output=True, text=True,
                                         check=True).stdout)
        assert info["virtual-size"] == 24 << 20
        h = nbd.NBD()
        h.set_opt_mode(True)
        h.connect_uri(a.nbd_uri)
        h.opt_info()  # NBD_OPT_INFO
        assert h.get_size() == 24 << 20
        h.opt_go()
        h.pwrite(b"past the old end", 20 << 20)
        h.shutdown()
        assert export_name_size(a) == 24 << 20
        # the old connection: still the old size
        assert old.get_size() == 8 << 20
        with pytest.raises(nbd.Error):
            old.pread(512, 20 << 20)
        assert old.pread(4, 0) == bytes(4)
        # and a grow while attached is seen by the next connection too
        sr.call("Volume.resize", key=v["key"], new_size=40 << 20)
        assert nbd_size(a.nbd_uri) == 40 << 20
    finally:
        old.shutdown()
        a.detach()
    assert sr.read(v["key"], 20 << 20, 16) == b"past the old end"


def test_new_connections_see_the_data_after_a_revert(sr, datapath):
    """The server must not keep serving a file the volume no longer has:
    attach, keep a connection open, detach, revert (the file backend renames
    the snapshot's copy over the image), attach again: a new connection
    reads the reverted data, not the old file the old connection holds."""
    import nbd
    v = sr.create(size=4 << 20)
    sr.write(v["key"], b"before")
    s = sr.call("Volume.snapshot", key=v["key"])
    a = Attached(sr, v, datapath)
    old = nbd.NBD()
    old.connect_uri(a.nbd_uri)
    old.pwrite(b"after!", 0)
    old.flush()
    a.detach()
    sr.call("Volume.revert", key=v["key"], snapshot=s["key"])
    a = Attached(sr, v, datapath)
    try:
        h = nbd.NBD()
        h.connect_uri(a.nbd_uri)
        assert h.pread(6, 0) == b"before"
        h.shutdown()
    finally:
        old.shutdown()
        a.detach()
    assert sr.read(v["key"], 0, 6) == b"before"
