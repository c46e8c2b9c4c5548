"""The zfs-live SR type on real ZFS (zfs-fuse, dataset layout): SR
placement and markers, nesting, probing without importing, tunables and
their sources, thick provisioning, hide-and-collect of pinned snapshots,
revert by rollback and by clone swap (with its crash points), metadata
that travels with zfs send/receive, and doctor."""
import json
import os
import subprocess
import uuid

import pytest

import v5
from conftest import CLI, ZfsSR, cli, wait_for, zfs_cmd

MiB = 1 << 20


@pytest.fixture
def zsr(zplugin, zpool):
    return ZfsSR(zplugin, f"{zpool}/z{uuid.uuid4().hex[:8]}")


def zget(name, prop):
    return zfs_cmd("zfs", "get", "-Hp", "-o", "value,source", prop, name).stdout.split("\t")


def names_under(dataset):
    out = zfs_cmd("zfs", "list", "-H", "-t", "all", "-o", "name", "-r", dataset).stdout
    return set(out.split())


def test_sr_dataset_marker_mount_and_config(zsr, zplugin):
    assert zsr.key == f"/run/sr-mount/{zsr.uuid}"
    assert zget(zsr.dataset, "zfs-live:sr") == [zsr.uuid, "local\n"]
    assert zget(zsr.dataset, "mountpoint")[0] == zsr.key
    assert zsr.config["layout"] == "dataset" and zsr.config["sr_uuid"] == zsr.uuid
    assert zplugin.ok("SR.attach", configuration=zsr.config) == zsr.key  # idempotent
    st = v5.sr_stat(zsr.call("SR.stat"))
    used = int(zget(zsr.dataset, "used")[0])
    avail = int(zget(zsr.dataset, "available")[0])
    assert st["free_space"] == avail and st["total_space"] == used + avail
    assert "zfs=zfs-fuse-0.7.0" in st["health"][1] and "layout=dataset" in st["health"][1]
    # volumes inherit the marker as a user property; only the SR has it local
    v = zsr.create()
    assert zget(f"{zsr.dataset}/{v['key']}", "zfs-live:sr")[1].startswith("inherited")
    assert zplugin.ok("SR.detach", sr=zsr.key) is None


def sr_create_err(zplugin, path):
    return zplugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                     "configuration": {"path": path}, "name": "n",
                                     "description": ""})["backtrace"]["error"]


def test_nested_srs_refused(zsr, zplugin, zpool):
    """Inside an SR: refused; a second SR directly in the same parent:
    refused, naming the first (one SR per parent dataset)."""
    before = names_under(zpool)
    for path in (zsr.dataset, f"{zsr.dataset}/below"):
        assert "nested" in sr_create_err(zplugin, path), path
    parent = zsr.dataset.rsplit("/", 1)[0]
    err = sr_create_err(zplugin, parent)
    assert f"holds the SR {zsr.dataset} already" in err, err
    assert names_under(zpool) == before


def test_sr_of_a_place_is_a_direct_child(zplugin, zpool):
    """SRs in P and in P/other (either made first) are two SRs, each found
    from its own path with or without sr_uuid; one is never taken for the
    other.  sr_uuid names exactly <path>/<uuid>."""
    base = f"{zpool}/zp{uuid.uuid4().hex[:8]}"
    inner = ZfsSR(zplugin, f"{base}/other")
    outer = ZfsSR(zplugin, base)  # after the one deeper down: not nested
    deeper = ZfsSR(zplugin, f"{base}/other/x/y")
    for sr, path in ((outer, base), (inner, f"{base}/other"), (deeper, f"{base}/other/x/y")):
        assert zplugin.ok("SR.attach", configuration={"path": path}) == sr.key
        assert zplugin.ok("SR.attach", configuration=sr.config) == sr.key
        res = [v5.probe_result(r) for r in
               zplugin.ok("SR.probe", configuration={"path": path})]
        assert [r["configuration"]["sr_uuid"] for r in res if r["complete"]] == [sr.uuid]
    # nothing directly in P/other/x: no SR there (the one deeper is not it)
    err = zplugin.err("SR.attach", {"dbg": "x", "configuration": {"path": f"{base}/other/x"}})
    assert "no SR in" in err["backtrace"]["error"]
    # an sr_uuid names <path>/<uuid> only: another place's SR is not found
    err = zplugin.err("SR.attach", {"dbg": "x", "configuration": {
        "path": base, "sr_uuid": inner.uuid}})
    assert f"no SR {inner.uuid} in {base}" in err["backtrace"]["error"]
    err = zplugin.err("SR.attach", {"dbg": "x", "configuration": {
        "path": base, "sr_uuid": "../other"}})
    assert "not a UUID" in err["backtrace"]["error"]
    # two SRs directly in one parent (made by hand: zfs-live never makes a
    # second there): found by sr_uuid; without it, an error listing both
    other = str(uuid.uuid4())
    zfs_cmd("zfs", "create", "-o", f"zfs-live:sr={other}", "-o", "mountpoint=none",
            f"{base}/{other}")
    assert zplugin.ok("SR.attach", configuration=outer.config) == outer.key
    err = zplugin.err("SR.attach", {"dbg": "x", "configuration": {"path": base}})
    msg = err["backtrace"]["error"]
    assert "several SRs" in msg and outer.dataset in msg and f"{base}/{other}" in msg, msg
    zfs_cmd("zfs", "destroy", f"{base}/{other}")
    for sr in (deeper, inner, outer):
        sr.call("SR.destroy")


def test_probe_finds_srs_and_never_imports(zsr, zplugin, tmp_path):
    res = [v5.probe_result(r) for r in
           zplugin.ok("SR.probe", configuration={"path": zsr.dataset.rsplit("/", 1)[0]})]
    found = [r for r in res if r["complete"]]
    assert [r["configuration"]["sr_uuid"] for r in found] == [zsr.uuid]
    assert found[0]["sr"]["uuid"] == zsr.uuid
    # an exported pool (on a device, as pools are) is reported, and stays
    # exported
    img = str(tmp_path / "other.img")
    with open(img, "wb") as f:
        f.truncate(256 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", img], capture_output=True,
                         text=True, check=True).stdout.strip()
    name = f"zlx{os.getpid()}"
    zfs_cmd("zpool", "create", name, dev)
    zfs_cmd("zpool", "export", name)
    try:
        res = zplugin.ok("SR.probe", configuration={"path": name})
        assert res[0]["complete"] is False and res[0]["extra_info"]["can_create"] == "false"
        assert "not imported" in res[0]["extra_info"]["reason"]
        assert zfs_cmd("zpool", "list", "-H", name, check=False).returncode != 0
        err = zplugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                        "configuration": {"path": name}, "name": "n",
                                        "description": ""})
        assert f"zpool import {name}" in err["backtrace"]["error"]
        assert zfs_cmd("zpool", "list", "-H", name, check=False).returncode != 0
    finally:
        zfs_cmd("zpool", "import", name, check=False)
        zfs_cmd("zpool", "destroy", name, check=False)
        subprocess.run(["losetup", "-d", dev], check=False)


def test_sr_defaults_and_per_volume_tunables(zplugin, zpool):
    s = ZfsSR(zplugin, f"{zpool}/tun{uuid.uuid4().hex[:6]}", compression="gzip-3",
              copies="2", logbias="throughput", primarycache="metadata")
    assert zget(s.dataset, "compression") == ["gzip-3", "local\n"]
    v = s.create()
    vol = f"{s.dataset}/{v['key']}"
    t = s.call("Volume.stat", key=v["key"])["storage"]["tunables"]
    assert t["compression"] == {"value": "gzip-3", "source": "inherited"}
    assert t["copies"] == {"value": "2", "source": "inherited"}
    assert t["logbias"]["value"] == "throughput"
    # per volume through XAPI's sm-config keys
    s.call("Volume.set", key=v["key"], k="_sm_config_compression", v="lzjb")
    assert zget(vol, "compression") == ["lzjb", "local\n"]
    got = s.call("Volume.stat", key=v["key"])
    assert got["keys"] == {"_sm_config_compression": "lzjb"}
    assert got["storage"]["tunables"]["compression"] == {"value": "lzjb", "source": "local"}
    s.call("Volume.unset", key=v["key"], k="_sm_config_compression")
    assert zget(vol, "compression")[0] == "gzip-3"
    # invalid values change nothing and say what is supported
    before = s.state()
    err = s.plugin.err("Volume.set", {"dbg": "x", "sr": s.key, "key": v["key"],
                                      "k": "_sm_config_compression", "v": "lz4"})
    assert "supported: on, off, lzjb" in err["backtrace"]["error"]
    err = s.plugin.err("Volume.set", {"dbg": "x", "sr": s.key, "key": v["key"],
                                      "k": "_sm_config_volblocksize", "v": "16K"})
    assert "fixed when a volume is created" in err["backtrace"]["error"]
    err = s.plugin.err("Volume.set", {"dbg": "x", "sr": s.key, "key": v["key"],
                                      "k": "_sm_config_recordsize", "v": "16K"})
    assert "recordsize is fixed when a volume is created" in err["backtrace"]["error"]
    err = s.plugin.err("Volume.set", {"dbg": "x", "sr": s.key, "key": v["key"],
                                      "k": "_sm_config_sync", "v": "always"})
    assert "zfs-fuse" in err["backtrace"]["error"]
    assert s.state() == before
    # other sm-config keys are only stored
    s.call("Volume.set", key=v["key"], k="_sm_config_host_x", v="RW")
    assert s.call("Volume.stat", key=v["key"])["keys"] == {"_sm_config_host_x": "RW"}


def test_thick_provisioning(zplugin, zpool):
    s = ZfsSR(zplugin, f"{zpool}/thick{uuid.uuid4().hex[:6]}", provisioning="thick")
    v = s.create(size=64 * MiB)
    vol = f"{s.dataset}/{v['key']}"
    res1 = int(zget(vol, "refreservation")[0])
    assert res1 >= 64 * MiB
    assert s.call("Volume.stat", key=v["key"])["storage"]["provisioning"] == "thick"
    s.call("Volume.resize", key=v["key"], new_size=128 * MiB)
    res2 = int(zget(vol, "refreservation")[0])
    assert res2 >= 128 * MiB and res2 > res1  # re-kept after resize
    c = s.call("Volume.clone", key=v["key"])
    assert int(zget(f"{s.dataset}/{c['key']}", "refreservation")[0]) >= 128 * MiB
    thin = ZfsSR(zplugin, f"{zpool}/thin{uuid.uuid4().hex[:6]}")
    t = thin.create(size=64 * MiB)
    assert zget(f"{thin.dataset}/{t['key']}", "refreservation")[0] == "0"


def test_pinned_snapshots_are_hidden_then_collected(zsr):
    v = zsr.create(size=4 * MiB)
    zsr.write(v["key"], b"origin data")
    s = zsr.call("Volume.snapshot", key=v["key"])
    c = zsr.call("Volume.clone", key=s["key"])
    snapname = f"{zsr.dataset}/{v['key']}@{s['key']}"
    zsr.call("Volume.destroy", key=s["key"])  # the clone pins it: hidden
    assert snapname in names_under(zsr.dataset)
    assert {x["key"] for x in zsr.ls()} == {v["key"], c["key"]}
    err = zsr.plugin.err("Volume.stat", {"dbg": "x", "sr": zsr.key, "key": s["key"]})
    assert err["params"][0] == "Volume_does_not_exist"
    zsr.call("Volume.destroy", key=v["key"])  # its (hidden) snapshot pins it
    assert {x["key"] for x in zsr.check_consistent()} == {c["key"]}
    assert zsr.read(c["key"], 0, 11) == b"origin data"
    zsr.call("Volume.destroy", key=c["key"])  # the last dependent: all collected
    assert names_under(zsr.dataset) == {zsr.dataset}
    assert zsr.ls() == []


def test_clone_of_a_volume_uses_an_internal_origin_that_goes_with_it(zsr):
    v = zsr.create(size=4 * MiB)
    c = zsr.call("Volume.clone", key=v["key"])
    origin = zfs_cmd("zfs", "get", "-H", "-o", "value", "origin",
                     f"{zsr.dataset}/{c['key']}").stdout.strip()
    assert origin == f"{zsr.dataset}/{v['key']}@_zl-origin-{c['key']}"
    assert {x["key"] for x in zsr.ls()} == {v["key"], c["key"]}  # origin not a volume
    zsr.call("Volume.destroy", key=c["key"])
    assert names_under(zsr.dataset) == {zsr.dataset, f"{zsr.dataset}/{v['key']}"}


def make_history(zsr):
    v = zsr.create(size=4 * MiB, name="history")
    zsr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    zsr.write(v["key"], b"AAAA")
    s1 = zsr.call("Volume.snapshot", key=v["key"])
    zsr.write(v["key"], b"BBBB")
    s2 = zsr.call("Volume.snapshot", key=v["key"])
    zsr.write(v["key"], b"CCCC")
    return v, s1, s2


def test_revert_by_rollback_and_by_clone_swap(zsr):
    v, s1, s2 = make_history(zsr)
    vol = f"{zsr.dataset}/{v['key']}"
    zsr.call("Volume.revert", key=v["key"], snapshot=s2["key"])  # newest: rollback
    assert zsr.read(v["key"], 0, 4) == b"BBBB"
    assert zfs_cmd("zfs", "get", "-H", "-o", "value", "origin", vol).stdout.strip() == "-"
    zsr.write(v["key"], b"DDDD")
    zsr.call("Volume.revert", key=v["key"], snapshot=s1["key"])  # older: clone swap
    assert zsr.read(v["key"], 0, 4) == b"AAAA"
    # identity kept, newer snapshot kept and readable, nothing invented
    got = zsr.call("Volume.stat", key=v["key"])
    assert (got["uuid"], got["name"], got["keys"]) == (v["uuid"], "history",
                                                     {"vdi-type": "user"})
    assert zsr.read(s2["key"], 0, 4) == b"BBBB"
    assert {x["key"] for x in zsr.check_consistent()} == {v["key"], s1["key"], s2["key"]}
    # the volume is writable and independent
    zsr.write(v["key"], b"EEEE")
    assert zsr.read(s1["key"], 0, 4) == b"AAAA"
    # everything goes when the user destroys everything
    for k in (v["key"], s1["key"], s2["key"]):
        zsr.call("Volume.destroy", key=k)
    assert zsr.check_consistent() == []
    assert names_under(zsr.dataset) == {zsr.dataset}


def test_revert_while_a_clone_is_in_use_copies_instead(zsr):
    """zfs-fuse cannot rename a dataset while clones of its snapshots are
    mounted: the revert copies the data and still keeps every snapshot."""
    v, s1, s2 = make_history(zsr)
    c = zsr.call("Volume.clone", key=s2["key"])  # mounted: a VM's disk
    zsr.call("Volume.revert", key=v["key"], snapshot=s1["key"])
    assert zsr.read(v["key"], 0, 4) == b"AAAA"
    assert zsr.read(s2["key"], 0, 4) == b"BBBB"
    assert zsr.read(c["key"], 0, 4) == b"BBBB"
    assert {x["key"] for x in zsr.check_consistent()} == {v["key"], s1["key"], s2["key"],
                                                          c["key"]}


@pytest.mark.parametrize("point", ["revert:journaled", "revert:copied", "revert:swapped"])
def test_clone_swap_crash_points(zsr, point):
    v, s1, s2 = make_history(zsr)
    res = zsr.plugin.run("Volume.revert", {"dbg": "x", "sr": zsr.key, "key": v["key"],
                                           "snapshot": s1["key"]},
                         env={"ZFS_LIVE_FAULT": point})
    assert res.killed
    listed = {x["key"] for x in zsr.check_consistent()}  # the next call recovers
    assert listed == {v["key"], s1["key"], s2["key"]}
    assert zsr.read(v["key"], 0, 4) == b"AAAA"
    assert zsr.read(s2["key"], 0, 4) == b"BBBB"
    assert zsr.call("Volume.stat", key=v["key"])["keys"] == {"vdi-type": "user"}


def test_metadata_travels_with_send_receive(zsr, zplugin, zpool):
    v = zsr.create(size=4 * MiB, name="travelling disk", description="made in A")
    zsr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    zsr.call("Volume.set", key=v["key"], k="tagsbackup", v="backup")
    zsr.write(v["key"], b"payload")
    b = ZfsSR(zplugin, f"{zpool}/b{uuid.uuid4().hex[:6]}")
    src = f"{zsr.dataset}/{v['key']}"
    zfs_cmd("zfs", "snapshot", f"{src}@move")
    # -p: with the properties, where zfs-live keeps name, description, keys
    send = subprocess.Popen(["zfs", "send", "-p", f"{src}@move"], stdout=subprocess.PIPE)
    subprocess.run(["zfs", "receive", f"{b.dataset}/{v['key']}"], stdin=send.stdout,
                   check=True)
    send.wait()
    got = b.call("Volume.stat", key=v["key"])
    assert (got["name"], got["description"], got["keys"]) == (
        "travelling disk", "made in A", {"vdi-type": "user", "tagsbackup": "backup"})
    assert b.read(v["key"], 0, 7) == b"payload"
    assert v["key"] in {x["key"] for x in b.ls()}


def test_doctor(zpool):
    out = cli("doctor", "--pool", zpool).stdout.decode()
    assert "zfs-fuse 0.7.0, pool version 23" in out
    assert "zvols            no" in out
    rep = json.loads(cli("doctor", "--pool", zpool, "--json").stdout)
    z = rep["zfs-live"]
    assert z["flavour"] == "zfs-fuse" and z["raw"]["zvols"] is False
    assert z["default_compression"] == "on"
    assert {r["capability"] for r in z["capabilities"]} >= {"zvols", "lz4", "zstd", "sync_prop"}
    # pool v23 has no bookmarks: doctor says what that means for data_destroy
    assert "bookmarks        no     none: data_destroy keeps the snapshot's data on this " \
        "pool (no bookmarks)" in out
    bm = next(r for r in z["capabilities"] if r["capability"] == "bookmarks")
    assert bm["value"] is False and "keeps the snapshot's data" in bm["use"]


def test_data_destroy_keeps_the_snapshot_without_bookmarks(zplugin, zpool):
    """zfs-fuse (pool v23) has no bookmarks: data_destroy marks the snapshot
    CBT metadata only, and its ZFS snapshot (and data) stays, so that its
    changes can still be sent; no bookmark record is made.  The bookmark
    path runs on OpenZFS in test_zvol.py."""
    s = ZfsSR(zplugin, f"{zpool}/b{uuid.uuid4().hex[:6]}")
    v = s.create(size=4 * MiB)
    s.call("Volume.enable_cbt", key=v["key"])
    a = s.call("Volume.snapshot", key=v["key"])["key"]
    s.write(v["key"], b"x" * 10, offset=2 << 20)
    b = s.call("Volume.snapshot", key=v["key"])["key"]
    before = s.call("Volume.list_changed_blocks", key=a, key2=b, offset=0, length=-1)
    assert s.call("Volume.data_destroy", key=a) is None
    assert s.call("Volume.stat", key=a)["volume_type"] == "CBT_Metadata"
    assert f"{s.dataset}/{v['key']}@{a}" in names_under(s.dataset)
    assert not os.path.exists(os.path.join(s.key, ".zfs-live", "bookmarked"))
    assert s.call("Volume.list_changed_blocks", key=a, key2=b, offset=0,
                  length=-1) == before
    for k in (a, b, v["key"]):
        s.call("Volume.destroy", key=k)
    assert s.check_consistent() == []


def test_sr_destroy_clears_internal_objects(zplugin, zpool):
    s = ZfsSR(zplugin, f"{zpool}/d{uuid.uuid4().hex[:6]}")
    v = s.create(size=4 * MiB)
    snap = s.call("Volume.snapshot", key=v["key"])
    s.read(snap["key"], 0, 16)  # makes the internal read clone
    assert f"{s.dataset}/_zl-ro-{snap['key']}" in names_under(s.dataset)
    err = zplugin.err("SR.destroy", {"dbg": "x", "sr": s.key})
    assert "still holds 2 volumes" in err["backtrace"]["error"]
    s.call("Volume.destroy", key=v["key"])  # hidden: its snapshot pins it
    s.call("Volume.destroy", key=snap["key"])  # then both go, read clone first
    assert zplugin.ok("SR.destroy", sr=s.key) is None
    assert zfs_cmd("zfs", "list", s.dataset, check=False).returncode != 0
    assert not os.path.exists(s.key)


def test_runtime_state_is_host_local_and_rebuilt_after_a_restart(zsr):
    """Locks, intent records and the snapshot index live in /run (a pool is
    imported on one host); after a reboot the ZFS objects say what a cut-off
    call left: here a revert whose clone swap was interrupted, an orphaned
    clone origin, and an index to rebuild."""
    import shutil
    v, s1, s2 = make_history(zsr)
    c = zsr.call("Volume.clone", key=v["key"])
    assert os.path.isdir(zsr.journal_dir())
    # a revert killed right after the old dataset was renamed away
    res = zsr.plugin.run("Volume.revert", {"dbg": "x", "sr": zsr.key, "key": v["key"],
                                           "snapshot": s1["key"]},
                         env={"ZFS_LIVE_FAULT": "revert:copied"})
    assert res.killed
    # and a clone destroy cut between its two steps: the origin stays behind
    last = {}

    def destroyed():  # zfs-fuse says "busy" for a moment after use
        last["r"] = zfs_cmd("zfs", "destroy", f"{zsr.dataset}/{c['key']}", check=False)
        return last["r"].returncode == 0
    wait_for(destroyed, lambda: f"zfs destroy of the clone (last: {last['r'].stderr.strip()!r})",
             interval=0.1)
    assert any("_zl-origin-" in n for n in names_under(zsr.dataset))
    shutil.rmtree(zsr.state_dir())  # the reboot: /run is empty
    listed = {x["key"] for x in zsr.check_consistent()}
    assert listed == {v["key"], s1["key"], s2["key"]}
    assert not any("_zl-origin-" in n or "_zl-rv-" in n for n in names_under(zsr.dataset))
    assert zsr.read(s2["key"], 0, 4) == b"BBBB"  # the index was rebuilt
    assert sorted(os.listdir(os.path.join(zsr.state_dir(), "snapidx"))) == sorted(
        [s1["key"], s2["key"]])
