"""The SMAPIv3 calling convention itself (smapiv3.md 1.2-1.7, 2.2, 2.8)."""
import json
import os
import subprocess

import pytest

import v5
from conftest import PLUGIN_ROOT, Plugin

# what xapi's smint.ml knows; anything else would be dropped with a warning
XAPI_FEATURES = {
    "SR_CREATE", "SR_DELETE", "SR_ATTACH", "SR_DETACH", "SR_SCAN", "SR_PROBE", "SR_UPDATE",
    "SR_SUPPORTS_LOCAL_CACHING", "SR_METADATA", "SR_TRIM", "SR_MULTIPATH", "SR_CACHING",
    "SR_STATS", "VDI_CREATE", "VDI_DELETE", "VDI_DESTROY", "VDI_ATTACH", "VDI_DETACH",
    "VDI_MIRROR", "VDI_MIRROR_IN", "VDI_RESIZE", "VDI_RESIZE_ONLINE", "VDI_CLONE",
    "VDI_SNAPSHOT", "VDI_ACTIVATE", "VDI_ACTIVATE_READONLY", "VDI_DEACTIVATE", "VDI_UPDATE",
    "VDI_INTRODUCE", "VDI_GENERATE_CONFIG", "VDI_ATTACH_OFFLINE", "VDI_RESET_ON_BOOT",
    "VDI_CONFIG_CBT", "VDI_COMPOSE", "LARGE_VDI", "THIN_PROVISIONING", "VDI_READ_CACHING",
    "VDI_REVERT",
}

# feature -> the method whose link must exist for the feature to be honest
FEATURE_METHOD = {
    "VDI_CREATE": "Volume.create", "VDI_DESTROY": "Volume.destroy",
    "VDI_SNAPSHOT": "Volume.snapshot", "VDI_CLONE": "Volume.clone",
    "VDI_RESIZE": "Volume.resize", "VDI_REVERT": "Volume.revert", "SR_PROBE": "SR.probe",
}

IMPLEMENTED = {
    "Plugin.Query", "Plugin.diagnostics", "SR.probe", "SR.create", "SR.attach", "SR.detach",
    "SR.destroy", "SR.stat", "SR.set_name", "SR.set_description", "SR.ls", "Volume.create",
    "Volume.snapshot", "Volume.clone", "Volume.destroy", "Volume.set_name",
    "Volume.set_description", "Volume.set", "Volume.unset", "Volume.resize", "Volume.stat",
    "Volume.revert", "Volume.enable_cbt", "Volume.disable_cbt", "Volume.list_changed_blocks",
    "Volume.data_destroy", "Volume.compare",
}

CBT_METHODS = ["Volume.enable_cbt", "Volume.disable_cbt", "Volume.list_changed_blocks",
               "Volume.data_destroy", "Volume.compare"]


def test_links_are_exactly_the_implemented_methods(plugin):
    entries = set(os.listdir(plugin.dir))
    assert entries == IMPLEMENTED
    for e in entries:
        p = os.path.join(plugin.dir, e)
        assert os.path.islink(p) and os.access(p, os.X_OK)


def test_query(plugin):
    q = v5.query(plugin.ok("Plugin.Query"))
    # the daemon files SR calls under org.xen.xapi.storage.<plugin>
    assert q["plugin"] == "file-live" == plugin.dir.rsplit(".", 1)[1]
    assert q["required_api_version"] == "5.0"
    assert set(q["features"]) <= XAPI_FEATURES
    for f in q["features"]:
        if f in FEATURE_METHOD:
            assert os.path.exists(plugin.path(FEATURE_METHOD[f])), f
    # CBT: declared once, and only with every one of its methods linked
    assert q["features"].count("VDI_CONFIG_CBT") == 1
    for m in CBT_METHODS:
        assert os.path.exists(plugin.path(m)), m
    assert "path" in q["configuration"]


def test_query_under_lower_case_name(plugin, tmp_path):
    """The daemon calls Plugin.query and finds Plugin.Query case-insensitively;
    the binary must accept whatever case the link has."""
    out = run_as(plugin, tmp_path, "file-live", "plugin.query")
    assert out.returncode == 0
    assert v5.query(json.loads(out.stdout))["plugin"] == "file-live"


def test_diagnostics_is_a_string(plugin):
    d = plugin.ok("Plugin.diagnostics")
    assert type(d) is str and "zfs-live" in d


def test_stdout_is_exactly_one_value_and_logs_go_elsewhere(plugin, file_sr):
    sr = file_sr
    res = plugin.run("Volume.create", {"dbg": "x", "sr": sr.key, "name": "n",
                                       "description": "", "size": 1 << 20,
                                       "sharable": False})
    assert res.rc == 0
    text = res.stdout.decode()
    assert text.endswith("\n") and text.count("\n") == 1
    v5.volume(json.loads(text))
    assert b"zfs-live" in res.stderr  # the log line went to stderr


def test_unit_methods_print_null(plugin, file_sr):
    sr = file_sr
    v = sr.create()
    res = plugin.run("Volume.set_name", {"dbg": "x", "sr": sr.key, "key": v["key"],
                                         "new_name": "x"})
    assert res.rc == 0 and res.stdout.strip() == b"null"


def test_dbg_may_carry_a_newline_and_trace_context(plugin, file_sr):
    sr = file_sr
    dbg = 'OpaqueRef:1\n{"traceparent":"00-abc-def-01"}'
    assert plugin.ok("SR.stat", sr=sr.key, dbg=dbg)["sr"] == sr.key


def test_params_arrive_without_trailing_newline_or_with_one(plugin, file_sr):
    sr = file_sr
    for raw in (json.dumps({"dbg": "x", "sr": sr.key}).encode(),
                json.dumps({"dbg": "x", "sr": sr.key}).encode() + b"\n"):
        res = plugin.run("SR.stat", None, raw=raw)
        assert res.rc == 0
        v5.sr_stat(res.value())


def test_debug_logging_reads_only_the_params(plugin, file_sr):
    """ZFS_LIVE_DEBUG=1 logs the parameters; they arrive without a NUL, so
    the log line must stop at their end (it read past the buffer)."""
    sr = file_sr
    for method, raw in (("Plugin.Query", b'{"dbg":"x"}'),
                        ("SR.stat", json.dumps({"dbg": "y", "sr": sr.key}).encode())):
        res = plugin.run(method, None, raw=raw, env={"ZFS_LIVE_DEBUG": "1"})
        assert res.rc == 0, res.stderr.decode(errors="replace")
        assert b"params=" + raw + b"\n" in res.stderr


def run_as(plugin, tmp_path, sr_type, method):
    """Run the binary under a link <tmp>/volume/org.xen.xapi.storage.<type>/<method>."""
    d = tmp_path / "volume" / f"org.xen.xapi.storage.{sr_type}"
    d.mkdir(parents=True)
    os.symlink(os.path.realpath(plugin.path("Plugin.Query")), d / method)
    return subprocess.run([str(d / method), "--json"], input=b'{"dbg":"x"}',
                          capture_output=True, cwd="/")


def test_method_not_in_this_plugin_is_an_error_object(plugin, tmp_path):
    out = run_as(plugin, tmp_path, "file-live", "Volume.compose")
    assert out.returncode != 0
    err = v5.error(json.loads(out.stdout))
    assert "not implemented" in err["backtrace"]["error"]


def test_unknown_plugin_type_is_an_error_object(plugin, tmp_path):
    out = run_as(plugin, tmp_path, "nosuch", "Plugin.Query")
    assert out.returncode != 0
    assert "unknown SR type" in v5.error(json.loads(out.stdout))["backtrace"]["error"]
