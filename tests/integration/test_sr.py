"""SR.* methods on the file backend."""
import json
import os
import uuid

import v5
from conftest import FileSR as SR


def test_create_attach_stat(plugin, tmp_path):
    path = str(tmp_path / "newdir")
    u = str(uuid.uuid4())
    cfg = plugin.ok("SR.create", uuid=u, configuration={"path": path}, name="nm",
                    description="ds")
    assert cfg == {"path": path, "sr_uuid": u}
    key = plugin.ok("SR.attach", configuration=cfg)
    assert key == path
    assert plugin.ok("SR.attach", configuration=cfg) == key  # idempotent
    st = v5.sr_stat(plugin.ok("SR.stat", sr=key))
    assert (st["sr"], st["name"], st["description"], st["uuid"]) == (key, "nm", "ds", u)
    assert 0 < st["free_space"] <= st["total_space"]
    assert st["health"][0] == "Healthy"
    assert st["clustered"] is False and st["datasources"] == []


def test_create_in_existing_directory_keeps_other_files(plugin, tmp_path):
    d = tmp_path / "existing"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    s = SR(plugin, str(d))
    assert s.ls() == []
    plugin.ok("SR.destroy", sr=s.key)
    assert (d / "notes.txt").read_text() == "keep me"
    assert not (d / ".zfs-live").exists()


def test_destroy_removes_a_directory_it_made(plugin, tmp_path):
    s = SR(plugin, str(tmp_path / "made"))
    assert plugin.ok("SR.destroy", sr=s.key) is None
    assert not os.path.exists(s.path)


def test_destroy_refuses_while_volumes_exist(file_sr, plugin):
    v = file_sr.create()
    err = plugin.err("SR.destroy", {"dbg": "x", "sr": file_sr.key})
    assert "still holds 1 volume" in err["backtrace"]["error"]
    assert file_sr.ls()[0]["key"] == v["key"]


def test_detach_is_idempotent_and_unknown_sr_succeeds(plugin, file_sr):
    assert plugin.ok("SR.detach", sr=file_sr.key) is None
    assert plugin.ok("SR.detach", sr=file_sr.key) is None
    assert plugin.ok("SR.detach", sr="/nonexistent/sr") is None
    assert plugin.ok("SR.detach", sr="not even a path") is None


def test_set_name_and_description_round_trip(plugin, file_sr):
    name = 'Bob\'s "disks" & more; $(x) `y` ../z'
    desc = "line one\nline two\twith tab"
    plugin.ok("SR.set_name", sr=file_sr.key, new_name=name)
    plugin.ok("SR.set_description", sr=file_sr.key, new_description=desc)
    st = plugin.ok("SR.stat", sr=file_sr.key)
    assert st["name"] == name and st["description"] == desc


def test_second_create_at_same_place_is_refused(plugin, file_sr):
    err = plugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                   "configuration": {"path": file_sr.path}, "name": "n",
                                   "description": ""})
    assert "already an SR" in err["backtrace"]["error"]


def test_nested_srs_are_refused_both_ways(plugin, tmp_path):
    outer = SR(plugin, str(tmp_path / "outer"))
    err = plugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                   "configuration": {"path": outer.path + "/inner"},
                                   "name": "n", "description": ""})
    assert "nested" in err["backtrace"]["error"]
    assert not os.path.exists(outer.path + "/inner")
    err = plugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                   "configuration": {"path": str(tmp_path)}, "name": "n",
                                   "description": ""})
    assert "nested" in err["backtrace"]["error"]


def test_system_directories_are_refused(plugin):
    for p in ("/", "/etc", "/etc/xensource", "/usr/lib/x", "/proc/sr", "/boot"):
        err = plugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                       "configuration": {"path": p}, "name": "n",
                                       "description": ""})
        assert "system directory" in err["backtrace"]["error"], p


def test_unknown_config_key_is_refused_naming_the_known_ones(plugin, tmp_path):
    err = plugin.err("SR.create", {"dbg": "x", "uuid": str(uuid.uuid4()),
                                   "configuration": {"path": str(tmp_path / "a"),
                                                     "provisoning": "thick"},
                                   "name": "n", "description": ""})
    msg = err["backtrace"]["error"]
    assert "provisoning" in msg and "path" in msg and "provisioning" in msg
    assert not (tmp_path / "a").exists()


def test_probe(plugin, tmp_path):
    base = tmp_path / "probe"
    base.mkdir()
    a = SR(plugin, str(base / "a"))
    res = [v5.probe_result(r) for r in plugin.ok("SR.probe", configuration={"path": str(base)})]
    found = [r for r in res if r["complete"]]
    assert len(found) == 1
    assert found[0]["configuration"] == {"path": a.path, "sr_uuid": a.uuid}
    assert found[0]["sr"]["uuid"] == a.uuid
    hint = [r for r in res if not r["complete"]]
    assert hint[0]["extra_info"]["can_create"] == "false"  # would contain an SR
    res = [v5.probe_result(r) for r in plugin.ok("SR.probe", configuration={"path": a.path})]
    assert [r["configuration"]["sr_uuid"] for r in res if r["complete"]] == [a.uuid]
    res = plugin.ok("SR.probe", configuration={"path": str(tmp_path / "fresh")})
    assert [r["extra_info"]["can_create"] for r in res] == ["true"]
    assert not (tmp_path / "fresh").exists()  # probing changes nothing


def test_thick_sr_default(plugin, tmp_path):
    u = str(uuid.uuid4())
    cfg = plugin.ok("SR.create", uuid=u, name="t", description="",
                    configuration={"path": str(tmp_path / "thick"), "provisioning": "thick"})
    key = plugin.ok("SR.attach", configuration=cfg)
    v = plugin.ok("Volume.create", sr=key, name="t", description="", size=8 << 20,
                  sharable=False)
    assert v["physical_utilisation"] >= 8 << 20
    assert os.stat(os.path.join(key, v["key"] + ".img")).st_blocks * 512 >= 8 << 20


def test_attach_of_a_directory_without_sr(plugin, tmp_path):
    err = plugin.err("SR.attach", {"dbg": "x", "configuration": {"path": str(tmp_path)}})
    assert err["params"][0] == "SR_does_not_exist"
    err = plugin.err("SR.stat", {"dbg": "x", "sr": str(tmp_path)})
    assert err["params"][0] == "SR_does_not_exist"


def test_create_refuses_a_declared_mount_point_that_is_not_mounted(plugin, tmp_path):
    """An SR in a directory below a mount point the host declares (fstab)
    while it is not mounted would land on the filesystem beneath and be
    hidden once the share is back: refused, nothing made; probe says why.
    Mounted: made on the share."""
    import subprocess
    if os.geteuid() != 0:
        import pytest
        pytest.skip("mounting needs root")
    mnt = tmp_path / "share"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"nas:/export {mnt} nfs4 defaults 0 0\n")
    env = {"ZFS_LIVE_FSTAB": str(fstab)}
    params = {"dbg": "x", "uuid": str(uuid.uuid4()),
              "configuration": {"path": str(mnt / "sr")}, "name": "n", "description": ""}
    err = plugin.err("SR.create", params, env=env)
    assert f"mounted at {mnt} (nas:/export, nfs4, in {fstab})" in err["backtrace"]["error"]
    assert os.listdir(mnt) == []
    res = plugin.run("SR.probe", {"dbg": "x", "configuration": {"path": str(mnt / "sr")}},
                     env=env)
    hint = [v5.probe_result(r) for r in res.value()][-1]
    assert hint["extra_info"]["can_create"] == "false"
    assert "not mounted" in hint["extra_info"]["reason"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "zlsrshare", str(mnt)],
                   check=True)
    try:
        res = plugin.run("SR.create", params, env=env)
        assert res.rc == 0, res.stderr
        key = plugin.ok("SR.attach", configuration=res.value())
        assert os.listdir(mnt) == ["sr"]
        plugin.ok("SR.destroy", sr=key)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
