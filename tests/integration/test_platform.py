"""What the installed plugin tells XAPI depends on the XAPI it runs under
(smapiv3.md 0, 2.8, 4 "Metadata gaps"): the inventories of XCP-ng 8.2 and
8.3 and XenServer 8.4 (tests/unit/data/inventory/, via ZFS_LIVE_INVENTORY)
and the daemon's version (ZFS_LIVE_XAPI_VERSION)."""
import json
import os

import pytest

import v5
from conftest import cli

INVENTORY = os.path.join(os.path.dirname(__file__), "..", "unit", "data", "inventory")

BASE = ["SR_PROBE", "VDI_CREATE", "VDI_SNAPSHOT", "VDI_CLONE", "VDI_DESTROY", "VDI_RESIZE"]
EXTRA = ["THIN_PROVISIONING", "LARGE_VDI"]
MIRROR = ["VDI_MIRROR"]  # XAPI >= 25.20 (Data.mirror, Data.stat)


def under(monkeypatch, inventory, xapi=None):
    monkeypatch.setenv("ZFS_LIVE_INVENTORY", os.path.join(INVENTORY, inventory))
    if xapi:
        monkeypatch.setenv("ZFS_LIVE_XAPI_VERSION", xapi)
    else:
        monkeypatch.delenv("ZFS_LIVE_XAPI_VERSION", raising=False)


@pytest.mark.parametrize("inventory,xapi,features", [
    ("no-such-file", None, BASE + ["VDI_REVERT", "VDI_CONFIG_CBT"] + MIRROR + EXTRA),
    ("xcp-ng-8.2", None, BASE + EXTRA),
    ("xcp-ng-8.2", "1.249.37", BASE + EXTRA),
    ("xcp-ng-8.3", None, BASE + ["VDI_CONFIG_CBT"] + MIRROR + EXTRA),  # assumed 26.1
    ("xcp-ng-8.3", "24.19.2", BASE + ["VDI_CONFIG_CBT"] + EXTRA),
    ("xcp-ng-8.3", "26.1.11", BASE + ["VDI_CONFIG_CBT"] + MIRROR + EXTRA),
    ("xenserver-8.4", None, BASE + ["VDI_CONFIG_CBT"] + MIRROR + EXTRA),  # platform 3.4
    ("xenserver-8.4", "26.16.0", BASE + ["VDI_REVERT", "VDI_CONFIG_CBT"] + MIRROR
     + EXTRA),
])
def test_query_features_per_platform(plugin, monkeypatch, inventory, xapi, features):
    under(monkeypatch, inventory, xapi)
    q = v5.query(plugin.ok("Plugin.Query"))
    assert q["features"] == features


def snapshot_of_typed_volume(sr):
    v = sr.create()
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    return v5.volume(sr.call("Volume.snapshot", key=v["key"]))


def test_old_daemon_gets_the_shims(file_sr, monkeypatch):
    """CA-412420: the snapshot carries its parent's vdi-type, stored (stat,
    ls); CA-431606: snapshots read_write to XAPI."""
    under(monkeypatch, "xcp-ng-8.2")
    s = snapshot_of_typed_volume(file_sr)
    assert s["keys"] == {"vdi-type": "user"}
    assert s["read_write"] is True
    st = v5.volume(file_sr.call("Volume.stat", key=s["key"]))
    assert st["keys"] == {"vdi-type": "user"} and st["read_write"] is True
    listed = {v["key"]: v for v in file_sr.ls()}
    assert listed[s["key"]]["read_write"] is True
    # the data stays read-only whatever XAPI is told
    out = cli("vol", "write", file_sr.key, s["key"], input=b"x", check=False)
    assert out.returncode != 0 and b"read-only" in out.stderr


def test_new_daemon_and_no_xapi_get_no_shims(file_sr, monkeypatch):
    for inventory, xapi in (("xenserver-8.4", "27.0.0"), ("no-such-file", None)):
        under(monkeypatch, inventory, xapi)
        s = snapshot_of_typed_volume(file_sr)
        assert s["keys"] == {} and s["read_write"] is False
        st = v5.volume(file_sr.call("Volume.stat", key=s["key"]))
        assert st["keys"] == {} and st["read_write"] is False


def test_fixed_vdi_type_daemon_keeps_read_write_shim(file_sr, monkeypatch):
    under(monkeypatch, "xcp-ng-8.3", "26.1.11")
    s = snapshot_of_typed_volume(file_sr)
    assert s["keys"] == {} and s["read_write"] is True


def test_sr_create_refuses_an_old_platform(plugin, monkeypatch, tmp_path):
    under(monkeypatch, "xenserver-7.1")
    err = plugin.err("SR.create", {"dbg": "x", "uuid": "0b6c3a1e-5d2f-4e8a-9c7b-1a2b3c4d5e6f",
                                   "configuration": {"path": str(tmp_path / "sr")},
                                   "name": "n", "description": ""})
    assert "XenServer 7.1.2 (platform 2.2.2) is not supported" in err["backtrace"]["error"]
    assert not (tmp_path / "sr").exists()
    for supported in ("xcp-ng-8.2", "xcp-ng-8.3", "xenserver-8.4"):
        under(monkeypatch, supported)
        cfg = plugin.ok("SR.create", uuid="1c7d4b2f-6e3a-4f9b-8d8c-2b3c4d5e6f7a",
                        configuration={"path": str(tmp_path / supported)}, name="n",
                        description="")
        key = plugin.ok("SR.attach", configuration=cfg)
        assert plugin.ok("SR.destroy", sr=key) is None


def test_diagnostics_and_doctor_report_the_platform(plugin, monkeypatch):
    under(monkeypatch, "xcp-ng-8.3", "25.3.0")
    d = plugin.ok("Plugin.diagnostics")
    assert "XAPI: XCP-ng 8.3.0 (platform XCP 3.4.0" in d
    assert "xapi 25.3.0 (ZFS_LIVE_XAPI_VERSION)" in d
    assert "vdi-type on snapshots on, snapshots read_write on" in d
    out = cli("doctor").stdout.decode()
    assert "XAPI: XCP-ng 8.3.0" in out
    rep = json.loads(cli("doctor", "--json").stdout)["xapi"]
    assert rep["brand"] == "XCP-ng" and rep["xapi_version"] == "25.3.0"
    assert rep["features_withheld"] == ["VDI_MIRROR", "VDI_REVERT"]
    assert rep["shims"] == {"vdi_type_on_snapshots": True, "snapshots_read_write": True}
    under(monkeypatch, "no-such-file")
    assert "XAPI: not a XAPI host" in plugin.ok("Plugin.diagnostics")
