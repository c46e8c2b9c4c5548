"""What destroys or tears data in use is refused (VDIInUse): destroy of an
attached or active volume, revert of an attached one, and a snapshot of a
volume something writes to where the snapshot is a copy (no reflinks).
Where a snapshot is one step of the storage (reflinks, ZFS) it is taken
under a running writer, as toolstacks expect."""
import os
import subprocess
import uuid

import pytest

import v5
from conftest import Attached, FileSR, ZfsSR, make_fs, zfs_pool

MiB = 1 << 20


def in_use(err):
    assert err["code"] == "SR_BACKEND_FAILURE_24", err
    assert err["params"][0] == "VDIInUse", err
    return err["params"][1]


def test_destroy_and_revert_of_attached_or_active_volume(file_sr, datapath):
    v = file_sr.create(size=4 * MiB, name="vm disk")
    file_sr.write(v["key"], b"guest data")
    snap = file_sr.call("Volume.snapshot", key=v["key"])["key"]
    a = Attached(file_sr, v5.volume(v), datapath)
    uri = a.uri
    p = {"dbg": "x", "sr": file_sr.key, "key": v["key"]}
    # attached, not active: still refused (the datapath holds it)
    assert "attached" in in_use(file_sr.plugin.err("Volume.destroy", p))
    datapath.ok("Datapath.activate", uri=uri, domain="1")
    msg = in_use(file_sr.plugin.err("Volume.destroy", p))
    assert "active on host" in msg
    assert "active on host" in in_use(
        file_sr.plugin.err("Volume.revert", dict(p, snapshot=snap)))
    # another host's activation counts too (a shared SR)
    datapath.ok("Datapath.deactivate", uri=uri, domain="1")
    other = str(uuid.uuid4())
    res = datapath.run("Datapath.activate", {"dbg": "x", "uri": uri, "domain": "2"},
                       env={"ZFS_LIVE_HOST_UUID": other})
    assert res.rc == 0
    in_use(file_sr.plugin.err("Volume.destroy", p))
    datapath.run("Datapath.deactivate", {"dbg": "x", "uri": uri, "domain": "2"},
                 env={"ZFS_LIVE_HOST_UUID": other})
    # the data is intact throughout; detached, both work
    assert file_sr.read(v["key"], 0, 10) == b"guest data"
    a.detach()
    file_sr.call("Volume.revert", key=v["key"], snapshot=snap)
    file_sr.call("Volume.destroy", key=v["key"])
    assert v["key"] not in {x["key"] for x in file_sr.ls()}


def test_nonpersistent_reset_still_works_at_close(file_sr, datapath):
    """Datapath.close reverts a non-persistent disk while it is attached (after
    deactivate): that revert is not refused."""
    v = file_sr.create(size=4 * MiB, name="np")
    file_sr.write(v["key"], b"before")
    a = Attached(file_sr, v5.volume(v), datapath)
    datapath.ok("Datapath.open", uri=a.uri, persistent=False)
    datapath.ok("Datapath.activate", uri=a.uri, domain="1")
    file_sr.write(v["key"], b"during")
    datapath.ok("Datapath.deactivate", uri=a.uri, domain="1")
    datapath.ok("Datapath.close", uri=a.uri)
    assert file_sr.read(v["key"], 0, 6) == b"before"
    a.detach()


@pytest.fixture(params=["ext4", "xfs", "btrfs", "zfs"])
def any_fs_sr(request, plugin, zplugin, tmp_path, tmp_path_factory):
    if request.param == "zfs":
        pool = zfs_pool(tmp_path_factory)
        yield request.param, ZfsSR(zplugin, f"{pool}/u{uuid.uuid4().hex[:8]}")
        return
    img, mnt = make_fs(request.param, str(tmp_path), size_mb=320)
    yield request.param, FileSR(plugin, os.path.join(mnt, "sr"))
    subprocess.run(["umount", mnt], check=False)
    os.unlink(img)


def test_snapshot_of_a_running_volume(any_fs_sr, datapath):
    kind, sr = any_fs_sr
    v = sr.create(size=8 * MiB, name="running")
    sr.write(v["key"], b"A" * MiB)
    a = Attached(sr, v5.volume(v), datapath)
    datapath.ok("Datapath.activate", uri=a.uri, domain="1")
    p = {"dbg": "x", "sr": sr.key, "key": v["key"]}
    before = {x["key"] for x in sr.ls()}
    if kind == "ext4":  # a copy: refused while something writes, nothing made
        msg = in_use(sr.plugin.err("Volume.snapshot", p))
        assert "torn" in msg and "active on host" in msg
        assert {x["key"] for x in sr.ls()} == before
        sr.check_consistent()
    else:  # reflink (btrfs, XFS) or ZFS: one step, taken under the writer
        s = sr.call("Volume.snapshot", key=v["key"])["key"]
        assert sr.read(s, 0, 4) == b"AAAA"
    datapath.ok("Datapath.deactivate", uri=a.uri, domain="1")
    s = sr.call("Volume.snapshot", key=v["key"])["key"]  # no writer: fine anywhere
    assert sr.read(s, 0, 4) == b"AAAA"
    a.detach()
