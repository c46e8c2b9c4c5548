"""Crash safety: for every fault-injection point of create, snapshot, clone,
resize, destroy and revert (and SR create/destroy), kill the process there
with SIGKILL, run the next call, and check the SR is consistent: no
leftover files, no lost volume, sizes, keys and data right."""
import hashlib
import subprocess
import uuid

import pytest

import v5
from conftest import CLI, FileSR, FileSR as SR, cli

MiB = 1 << 20


def fault_points():
    out = subprocess.run([CLI, "fault-points"], capture_output=True, check=True)
    return out.stdout.decode().split()


def data_of(sr, key):
    return sr.digest(key)


@pytest.fixture
def world(sr):
    """An SR with a volume (data, keys), its snapshot, and a bystander."""
    v = sr.create(size=4 * MiB, name="victim")
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    cli("vol", "write", sr.key, v["key"], "--offset", "1M", input=b"old data" * 512)
    s = sr.call("Volume.snapshot", key=v["key"])
    cli("vol", "write", sr.key, v["key"], "--offset", "1M", input=b"NEW DATA" * 512)
    by = sr.create(size=2 * MiB, name="bystander")
    cli("vol", "write", sr.key, by["key"], input=b"bystander")
    doomed = sr.create(size=2 * MiB, name="doomed")
    cli("vol", "write", sr.key, doomed["key"], input=b"doomed")
    return sr, v, s, by, doomed


def kill_at(sr, point, method, **params):
    res = sr.plugin.run(method, dict(dbg="crash", sr=sr.key, **params),
                        env={"ZFS_LIVE_FAULT": point})
    assert res.killed, f"{point}: {method} was not killed (rc={res.rc}): {res.stdout!r}"


def stable(rec):
    """A record without what the storage changes on its own (allocation
    settles after a transaction group on ZFS)."""
    return {k: v for k, v in rec.items() if k != "physical_utilisation"}


def snapshot_world(sr, keys):
    return {k: (stable(sr.call("Volume.stat", key=k)), data_of(sr, k)) for k in keys}


OPS = {
    # op -> (method, params(world), check(world, before, after_keys))
    "create": "Volume.create", "snapshot": "Volume.snapshot", "clone": "Volume.clone",
    "resize": "Volume.resize", "destroy": "Volume.destroy", "revert": "Volume.revert",
}


def test_every_fault_point_is_covered():
    points = fault_points()
    ops = {p.split(":")[0] for p in points}
    # adopt's points are exercised in test_ganeti.py (test_adopt_crash_*),
    # CBT's in test_cbt.py (test_crash_during_cbt_*)
    # set-meta's (ZFS) in test_accounting.py (test_crash_between_metadata_chunks);
    # import's and export's in test_export.py (test_import_killed,
    # test_export_killed); copy's and receive's in test_copy.py
    # (test_copy_killed); replicate's and replica's in test_replicate.py
    # (test_sender_killed_across_namespaces, test_receiver_killed); every
    # point on both SR types in test_leftovers.py
    assert ops == set(OPS) | {"sr-create", "sr-destroy", "adopt", "cbt-rotate",
                              "data-destroy", "set-meta", "write-file", "import",
                              "export", "copy", "receive", "replicate", "replica"}
    for op in OPS:
        assert f"{op}:journaled" in points


@pytest.mark.parametrize("point", [p for p in fault_points() if p.split(":")[0] in OPS])
def test_crash_point(world, point):
    sr, v, s, by, doomed = world
    op, step = point.split(":")
    keys_before = {x["key"] for x in sr.ls()}
    before = snapshot_world(sr, keys_before)

    if op == "create":
        kill_at(sr, point, "Volume.create", name="new", description="", size=3 * MiB,
                sharable=False)
    elif op in ("snapshot", "clone"):
        kill_at(sr, point, OPS[op], key=v["key"])
    elif op == "resize":
        kill_at(sr, point, "Volume.resize", key=v["key"], new_size=9 * MiB)
    elif op == "destroy" and step == "hidden":
        # destroying a volume that has a snapshot: hidden where snapshots pin
        # their volume (ZFS); a file SR removes it outright and never hides
        if isinstance(sr, FileSR):
            assert sr.call("Volume.destroy", key=v["key"]) is None
            assert v["key"] not in {x["key"] for x in sr.check_consistent()}
            assert sr.call("Volume.stat", key=s["key"])["read_write"] is False
            return
        kill_at(sr, point, "Volume.destroy", key=v["key"])
    elif op == "destroy":
        kill_at(sr, point, "Volume.destroy", key=doomed["key"])
    elif op == "revert":
        kill_at(sr, point, "Volume.revert", key=v["key"], snapshot=s["key"])

    # the next call on the SR recovers; then everything must be consistent
    listed = {x["key"]: x for x in sr.check_consistent()}
    after_keys = set(listed)
    new_keys = after_keys - keys_before

    # bystanders are never touched
    assert snapshot_world(sr, [by["key"], s["key"]]) == {
        k: before[k] for k in (by["key"], s["key"])}

    if op in ("create", "snapshot", "clone"):
        committed = step in sr.COMMITS_AT[op]
        assert len(new_keys) == (1 if committed else 0), (point, new_keys)
        assert keys_before <= after_keys
        assert snapshot_world(sr, [v["key"]]) == {v["key"]: before[v["key"]]}
        if committed:
            n = listed[new_keys.pop()]
            if op == "create":
                assert n["virtual_size"] == 3 * MiB and n["name"] == "new"
            else:
                assert n["read_write"] is (op == "clone") and n["keys"] == {}
                assert data_of(sr, n["key"]) == before[v["key"]][1]
    elif op == "resize":
        # completed by recovery: the size asked for, data and keys intact
        assert after_keys == keys_before
        got = sr.call("Volume.stat", key=v["key"])
        assert got["virtual_size"] == 9 * MiB and got["keys"] == {"vdi-type": "user"}
        assert sr.read(v["key"], MiB, 4096) == b"NEW DATA" * 512
    elif op == "destroy" and step == "hidden":
        # hidden, not removed: gone from the user's view, storage kept for
        # the snapshot, destroying again succeeds, the snapshot still reads
        assert after_keys == keys_before - {v["key"]}
        assert sr.call("Volume.destroy", key=v["key"]) is None
        assert data_of(sr, s["key"]) == before[s["key"]][1]
    elif op == "destroy":
        # completed by recovery: only the destroyed volume is gone
        assert after_keys == keys_before - {doomed["key"]}
    elif op == "revert":
        # completed by recovery: the snapshot's content, the volume's identity
        assert after_keys == keys_before
        got = sr.call("Volume.stat", key=v["key"])
        assert got["keys"] == {"vdi-type": "user"} and got["uuid"] == v["uuid"]
        assert data_of(sr, v["key"]) == before[s["key"]][1]


def test_crash_during_sr_create_then_retry(plugin, tmp_path):
    path = str(tmp_path / "half")
    params = {"dbg": "x", "uuid": str(uuid.uuid4()), "configuration": {"path": path},
              "name": "n", "description": ""}
    res = plugin.run("SR.create", params, env={"ZFS_LIVE_FAULT": "sr-create:prepared"})
    assert res.killed
    err = plugin.err("SR.attach", {"dbg": "x", "configuration": {"path": path}})
    assert err["params"][0] == "SR_does_not_exist"
    cfg = plugin.ok("SR.create", **params)  # the retry completes it
    key = plugin.ok("SR.attach", configuration=cfg)
    assert v5.sr_stat(plugin.ok("SR.stat", sr=key))["uuid"] == params["uuid"]


def test_crash_during_sr_destroy(plugin, tmp_path):
    s = SR(plugin, str(tmp_path / "doomed"))
    res = plugin.run("SR.destroy", {"dbg": "x", "sr": s.key},
                     env={"ZFS_LIVE_FAULT": "sr-destroy:unmarked"})
    assert res.killed
    # the SR is gone for everyone; the place can take a new SR
    err = plugin.err("SR.stat", {"dbg": "x", "sr": s.key})
    assert err["params"][0] == "SR_does_not_exist"
    SR(plugin, str(tmp_path / "doomed"))


def test_a_live_operation_is_never_rolled_back(world):
    """Recovery only touches records of dead processes: an intent record
    held by a live process (flock) is left alone by a concurrent call."""
    import fcntl
    import json
    import os
    sr, v, s, by, doomed = world
    jdir = sr.journal_dir()
    os.makedirs(jdir, exist_ok=True)
    rec = os.path.join(jdir, "11111111-2222-4333-8444-555555555555")
    with open(rec, "w") as f:
        json.dump({"op": "destroy", "key": by["key"]}, f)
    fd = os.open(rec, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # "alive"
    try:
        sr.call("Volume.stat", key=by["key"])
        assert by["key"] in {x["key"] for x in sr.ls()}
        assert os.path.exists(rec)
    finally:
        os.close(fd)  # the owner "dies"
    sr.ls()  # now the next call completes the destroy
    assert by["key"] not in {x["key"] for x in sr.ls()}
    assert not os.path.exists(rec)
