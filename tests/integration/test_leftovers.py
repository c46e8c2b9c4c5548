"""Nothing is left behind: for every fault-injection point of every
operation, on both SR types, kill the call there, make the next call, and
compare everything the SR is made of (files of the directory and of its
private area, ZFS datasets and snapshots, the host-local state) with what
its volumes account for.  Temporaries, intent records, lock files of
volumes that are gone, half-made objects: none may remain."""
import json
import os
import subprocess
import uuid

import pytest

from conftest import CLI, RUN_DIR, FileSR, ZfsSR, cli, zfs_cmd, zfs_pool

MiB = 1 << 20


def points():
    out = subprocess.run([CLI, "fault-points"], capture_output=True, check=True)
    return out.stdout.decode().split()


def walk(top):
    out = set()
    for dp, dns, fns in os.walk(top):
        for n in dns + fns:
            out.add(os.path.relpath(os.path.join(dp, n), top))
    return out


def zfs_keys(zsr):
    """Every key the ZFS SR's objects carry (hidden volumes too)."""
    keys = set()
    for props in zsr.objects().values():
        meta = zsr.meta_of(props)
        if meta:
            keys.add(meta["key"])
    return keys


def leftovers(sr):
    """What the SR holds beyond what its volumes account for."""
    if isinstance(sr, FileSR):
        keys = {v["key"] for v in sr.ls()}
        allowed = {".zfs-live", ".zfs-live/sr.json", ".zfs-live/lock", ".zfs-live/made-dir",
                   ".zfs-live/locks", ".zfs-live/journal", ".zfs-live/journal/spare",
                   ".zfs-live/cbt"}
        for k in keys:
            allowed |= {f"{k}.img", f"{k}.meta.json", f".zfs-live/locks/{k}",
                        f".zfs-live/cbt/{k}.cbt"}
        return sorted(walk(sr.path) - allowed)
    sr.ls()
    sr.check_consistent()  # datasets: no partial, stray or half-reverted object
    keys = zfs_keys(sr)
    state_ok = {"lock", "locks", "journal", "journal/spare", "snapidx", "zfs.json",
                "sr.json"}
    priv_ok = {"sr.json", "zfs.json", "cbt"}
    for k in keys:
        state_ok |= {f"locks/{k}", f"snapidx/{k}"}
        priv_ok.add(f"cbt/{k}.cbt")
    left = [f"state:{p}" for p in walk(sr.state_dir()) - state_ok]
    left += [f"priv:{p}" for p in walk(os.path.join(sr.path, ".zfs-live")) - priv_ok]
    return sorted(left)


@pytest.fixture(params=["file-live", "zfs-live"])
def any_sr(request, plugin, zplugin, tmp_path, tmp_path_factory):
    if request.param == "file-live":
        return FileSR(plugin, str(tmp_path / "sr"))
    pool = zfs_pool(tmp_path_factory)
    return ZfsSR(zplugin, f"{pool}/l{uuid.uuid4().hex[:8]}")


def world(sr):
    v = sr.create(size=4 * MiB, name="victim")
    sr.write(v["key"], b"data" * 1024)
    s = v5_key(sr.call("Volume.snapshot", key=v["key"]))
    doomed = sr.create(size=2 * MiB, name="doomed")
    return v["key"], s, doomed["key"]


def v5_key(rec):
    return rec["key"]


def run_killed(sr, point, method, **params):
    res = sr.plugin.run(method, dict(dbg="leftovers", sr=sr.key, **params),
                        env={"ZFS_LIVE_FAULT": point})
    return res


def drive(sr, point, tmp_path):
    """Run the operation that reaches point; True if it was killed there."""
    op, step = point.split(":")
    v, s, doomed = world(sr)
    if op == "create":
        res = run_killed(sr, point, "Volume.create", name="n", description="", size=MiB,
                         sharable=False)
    elif op in ("snapshot", "clone"):
        res = run_killed(sr, point, "Volume." + op, key=v)
    elif op == "destroy" and step == "hidden":
        res = run_killed(sr, point, "Volume.destroy", key=v)  # pinned by s on ZFS
    elif op == "destroy":
        res = run_killed(sr, point, "Volume.destroy", key=doomed)
    elif op == "resize":
        res = run_killed(sr, point, "Volume.resize", key=v, new_size=8 * MiB)
    elif op == "revert":
        res = run_killed(sr, point, "Volume.revert", key=v, snapshot=s)
    elif op == "set-meta":
        res = run_killed(sr, point, "Volume.set_description", key=v,
                         new_description="x" * 9000)
    elif op == "write-file":
        # a file written atomically: metadata (file SR), the snapshot
        # index (ZFS)
        method = "Volume.set_name" if isinstance(sr, FileSR) else "Volume.snapshot"
        res = run_killed(sr, point, method, key=v, new_name="renamed") \
            if method == "Volume.set_name" else run_killed(sr, point, method, key=v)
    elif op == "cbt-rotate":
        sr.call("Volume.enable_cbt", key=v)
        res = run_killed(sr, point, "Volume.snapshot", key=v)
    elif op == "data-destroy":
        sr.call("Volume.enable_cbt", key=v)
        s2 = sr.call("Volume.snapshot", key=v)["key"]
        res = run_killed(sr, point, "Volume.data_destroy", key=s2)
    elif op == "adopt":
        if isinstance(sr, FileSR):
            src = os.path.join(os.path.dirname(sr.path), "adopt-me.img")
            with open(src, "wb") as f:
                f.truncate(MiB)
        else:
            src = f"{sr.dataset.split('/', 1)[0]}/adopt{uuid.uuid4().hex[:6]}"
            zfs_cmd("zfs", "create", src)
            mnt = zfs_cmd("zfs", "get", "-H", "-o", "value", "mountpoint", src).stdout.strip()
            with open(os.path.join(mnt, "disk.img"), "wb") as f:
                f.truncate(MiB)
        proc = subprocess.run([CLI, "vol", "adopt", sr.key, src],
                              env=dict(os.environ, ZFS_LIVE_FAULT=point),
                              capture_output=True)
        return proc.returncode == -9
    elif op == "import":
        img = os.path.join(str(tmp_path), "import.raw")
        with open(img, "wb") as f:
            f.truncate(2 * MiB)
            f.seek(MiB)
            f.write(b"imported" * 512)
        proc = subprocess.run([CLI, "vol", "import", sr.key, img, "--format", "raw"],
                              env=dict(os.environ, ZFS_LIVE_FAULT=point),
                              capture_output=True)
        return proc.returncode == -9
    else:
        raise AssertionError(f"no operation reaches {point}")
    return res.killed


VOLUME_OPS = {"create", "snapshot", "clone", "destroy", "resize", "revert", "set-meta",
              "write-file", "cbt-rotate", "data-destroy", "adopt", "import"}


@pytest.mark.parametrize("point", [p for p in points() if p.split(":")[0] in VOLUME_OPS])
def test_nothing_left_behind(any_sr, point, tmp_path):
    sr = any_sr
    killed = drive(sr, point, tmp_path)
    unreachable = {  # steps one SR type does not have
        ("set-meta:chunks", "FileSR"), ("destroy:hidden", "FileSR"),
        ("adopt:linked", "ZfsSR"), ("adopt:committed", "ZfsSR"),  # a rename
        ("cbt-rotate:switched", "ZfsSR"),  # ZFS: changes from zfs send,
        ("cbt-rotate:map-written", "ZfsSR")}  # no tracked bitmaps
    assert killed == ((point, type(sr).__name__) not in unreachable), point
    sr.call("SR.ls")  # the next call
    assert not sr.journal(), sr.journal()
    assert leftovers(sr) == []


@pytest.mark.parametrize("point", ["sr-destroy:unmarked", "sr-create:prepared"])
@pytest.mark.parametrize("kind", ["file-live", "zfs-live"])
def test_sr_crash_leaves_nothing(kind, point, plugin, zplugin, tmp_path, tmp_path_factory):
    """SR.create cut off then retried, SR.destroy cut off then the place
    used again and destroyed: nothing of either remains."""
    if kind == "file-live":
        p, path = plugin, str(tmp_path / "place")
        before = None
    else:
        pool = zfs_pool(tmp_path_factory)
        p, path = zplugin, f"{pool}/s{uuid.uuid4().hex[:8]}"
        zfs_cmd("zfs", "create", path)
        before = set(zfs_cmd("zfs", "list", "-H", "-r", "-t", "all", "-o", "name",
                             path).stdout.split())
    params = {"dbg": "x", "uuid": str(uuid.uuid4()), "configuration": {"path": path},
              "name": "n", "description": ""}
    if point == "sr-create:prepared":
        assert p.run("SR.create", params, env={"ZFS_LIVE_FAULT": point}).killed
        cfg = p.ok("SR.create", **params)  # the retry completes it
        key = p.ok("SR.attach", configuration=cfg)
    else:
        cfg = p.ok("SR.create", **params)
        key = p.ok("SR.attach", configuration=cfg)
        assert p.run("SR.destroy", {"dbg": "x", "sr": key},
                     env={"ZFS_LIVE_FAULT": point}).killed
        err = p.err("SR.stat", {"dbg": "x", "sr": key})
        assert err["params"][0] == "SR_does_not_exist"
        params["uuid"] = str(uuid.uuid4())
        cfg = p.ok("SR.create", **params)  # the place takes a new SR
        key = p.ok("SR.attach", configuration=cfg)
    p.ok("SR.destroy", sr=key)
    if kind == "file-live":
        assert not os.path.exists(path)
    else:
        after = set(zfs_cmd("zfs", "list", "-H", "-r", "-t", "all", "-o", "name",
                            path).stdout.split())
        assert after == before
        state = os.path.join(RUN_DIR, "sr")
        assert not [d for d in os.listdir(state) if key.replace("/", "%2F") in d]
