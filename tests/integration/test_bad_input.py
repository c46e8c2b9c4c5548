"""Bad input: each gets the error object, a non-zero exit, and leaves the SR
exactly as it was (directory contents, metadata bytes and SR.ls)."""
import json
import os
import subprocess
import uuid

import pytest

import v5
from conftest import ZfsSR

MiB = 1 << 20

ODD_NAMES = ["a\nb", 'quote"d', "../../etc/passwd", "..", ".", "/etc/passwd", "$(id)",
             "`id`", "a;b", "a b", "a|b", "-rf", "", "x" * 300, "a/b", "\u00e9t\u00e9",
             "key\x00nul"]


@pytest.fixture
def loaded(sr):
    v = sr.create(size=2 * MiB, name="victim")
    sr.call("Volume.set", key=v["key"], k="vdi-type", v="user")
    s = sr.call("Volume.snapshot", key=v["key"])
    return sr, v["key"], s["key"]


def expect_refused(sr, method, params=None, raw=None, kind=None):
    before = sr.state()
    err = sr.plugin.err(method, params, raw=raw)
    if kind:
        assert err["params"][0] == kind, err
    assert sr.state() == before, "the SR changed"
    return err


def base(sr, **kw):
    p = {"dbg": "bad", "sr": sr.key}
    p.update(kw)
    return p


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"str"', b"null", b"{} {}",
                                 b'{"dbg":"x","dbg":"y"}', b"\xff\xfe", b'{"dbg": x}',
                                 # the parser's message quotes half a character
                                 b'{"dbg":"\\u00e\xc7\x8b"}'])
def test_malformed_json(loaded, raw):
    sr, key, _ = loaded
    err = expect_refused(sr, "Volume.stat", raw=raw)
    assert err["params"][0] == "Invalid_argument"


@pytest.mark.parametrize("method,params,missing", [
    ("Volume.create", {"name": "n", "description": "", "sharable": False}, "size"),
    ("Volume.create", {"name": "n", "size": MiB, "sharable": False}, "description"),
    ("Volume.create", {"description": "", "size": MiB, "sharable": False}, "name"),
    ("Volume.create", {"name": "n", "description": "", "size": MiB}, "sharable"),
    ("Volume.resize", {}, "new_size"),
    ("Volume.set", {"k": "vdi-type"}, "v"),
    ("Volume.set", {"v": "x"}, "k"),
    ("Volume.set_name", {}, "new_name"),
    ("Volume.revert", {}, "snapshot"),
    ("Volume.stat", {}, "key"),
])
def test_missing_params(loaded, method, params, missing):
    sr, key, _ = loaded
    p = base(sr, **params)
    if method != "Volume.create" and missing != "key":
        p["key"] = key
    err = expect_refused(sr, method, p, kind="Invalid_argument")
    assert f"'{missing}' is missing" in err["backtrace"]["error"]


def test_missing_sr_and_dbg(loaded):
    sr, key, _ = loaded
    expect_refused(sr, "Volume.stat", {"dbg": "x", "key": key}, kind="Invalid_argument")
    expect_refused(sr, "Volume.stat", {"sr": sr.key, "key": key}, kind="Invalid_argument")
    expect_refused(sr, "SR.create", {"dbg": "x", "configuration": {"path": "/tmp/q"},
                                     "name": "n", "description": ""})


@pytest.mark.parametrize("field,value", [
    ("size", "1048576"), ("size", 1.5), ("size", True), ("size", None), ("size", [1]),
    ("sharable", "false"), ("sharable", 0), ("name", 5), ("name", None),
    ("description", {"a": 1}),
])
def test_wrong_types_in_create(loaded, field, value):
    sr, _, _ = loaded
    p = base(sr, name="n", description="", size=MiB, sharable=False)
    p[field] = value
    err = expect_refused(sr, "Volume.create", p, kind="Invalid_argument")
    assert field in err["backtrace"]["error"]


def test_wrong_types_elsewhere(loaded):
    sr, key, _ = loaded
    expect_refused(sr, "Volume.stat", base(sr, key=7), kind="Invalid_argument")
    expect_refused(sr, "Volume.stat", {"dbg": "x", "sr": 7, "key": key})
    expect_refused(sr, "Volume.resize", base(sr, key=key, new_size="9"))
    expect_refused(sr, "Volume.set", base(sr, key=key, k="vdi-type", v=1))
    expect_refused(sr, "SR.attach", {"dbg": "x", "configuration": {"path": 5}})
    expect_refused(sr, "SR.attach", {"dbg": "x", "configuration": "path=/x"})


def test_unknown_sr(loaded, tmp_path):
    sr, key, _ = loaded
    for bad in (str(tmp_path / "nope"), str(tmp_path), "/", "relative/path", "",
                sr.key + "/../" + os.path.basename(sr.key), sr.key + "/"):
        err = expect_refused(sr, "Volume.stat", {"dbg": "x", "sr": bad, "key": key})
        assert err["params"][0] == "SR_does_not_exist", (bad, err)
    expect_refused(sr, "Volume.create", {"dbg": "x", "sr": str(tmp_path / "nope"),
                                         "name": "n", "description": "", "size": 1,
                                         "sharable": False}, kind="SR_does_not_exist")
    assert not (tmp_path / "nope").exists()


def test_error_messages_are_utf8(loaded):
    """A message that quotes the caller's text cut at a byte limit still
    makes a JSON reply (found by fuzz/fuzz-smapi.c: stdout stayed empty)."""
    sr, _, _ = loaded
    err = expect_refused(sr, "Volume.stat", base(sr, key="x" + "\u00e9" * 40))
    assert err["params"][0] == "Invalid_argument"
    assert "x" + "\u00e9" * 31 + "?..." in err["params"][1], err


@pytest.mark.parametrize("bad", ODD_NAMES)
def test_odd_keys(loaded, bad):
    sr, key, snap = loaded
    if "\x00" in bad:  # a NUL inside a JSON string: refused by the parser
        raw = ('{"dbg":"x","sr":%s,"key":"key\\u0000nul"}' % json.dumps(sr.key)).encode()
        expect_refused(sr, "Volume.destroy", raw=raw)
        return
    for method, extra in (("Volume.stat", {}), ("Volume.destroy", {}),
                          ("Volume.snapshot", {}), ("Volume.clone", {}),
                          ("Volume.resize", {"new_size": 8 * MiB}),
                          ("Volume.set", {"k": "vdi-type", "v": "user"}),
                          ("Volume.set_name", {"new_name": "x"})):
        err = expect_refused(sr, method, base(sr, key=bad, **extra))
        assert err["params"][0] in ("Invalid_argument", "Volume_does_not_exist"), err
    expect_refused(sr, "Volume.revert", base(sr, key=key, snapshot=bad))
    expect_refused(sr, "Volume.revert", base(sr, key=bad, snapshot=snap))


def test_unknown_keys_do_not_exist(loaded):
    sr, _, _ = loaded
    for m in ("Volume.stat", "Volume.snapshot", "Volume.clone", "Volume.set_name"):
        expect_refused(sr, m, base(sr, key="0a0a0a0a-0000-4000-8000-000000000000",
                                   new_name="x"), kind="Volume_does_not_exist")


@pytest.mark.parametrize("size", [-1, -(2 ** 63), 2 ** 63 - 1, 2 ** 63, 2 ** 64 + 5,
                                  10 ** 30])
def test_negative_and_overflowing_sizes(loaded, size):
    sr, key, _ = loaded
    raw_create = ('{"dbg":"x","sr":%s,"name":"n","description":"","size":%d,'
                  '"sharable":false}' % (json.dumps(sr.key), size)).encode()
    expect_refused(sr, "Volume.create", raw=raw_create)
    raw_resize = ('{"dbg":"x","sr":%s,"key":"%s","new_size":%d}'
                  % (json.dumps(sr.key), key, size)).encode()
    expect_refused(sr, "Volume.resize", raw=raw_resize)


# Sizes that round up past 2^63 - 1 (1 MiB steps): a size error, never an
# overflow on the way (UBSan fails the call).
@pytest.mark.parametrize("size", [2 ** 63 - 1, 2 ** 63 - 2 ** 20 + 1])
def test_sizes_rounding_past_2_63_are_size_errors(loaded, size):
    sr, key, _ = loaded
    expect_refused(sr, "Volume.create", base(sr, name="n", description="", size=size,
                                             sharable=False), kind="VDI Invalid size")
    expect_refused(sr, "Volume.resize", base(sr, key=key, new_size=size),
                   kind="VDI Invalid size")


def made_or_size_error(res):
    """True if made, False after a clean size or space error."""
    if res.rc != 0:
        err = v5.error(res.value())
        assert err["params"][0] in ("VDI Invalid size", "No_space"), err
    return res.rc == 0


# The largest sizes that round within int64: made where the storage takes
# them (a thin ZFS volume), else a clean error (ext4: file too large; thick
# ZFS: no pool holds the reservation) -- never an overflow.
def largest_sizes(sr):
    small = sr.create(size=MiB)
    top = 2 ** 63 - 2 ** 20
    for size in (top, top - 1):
        res = sr.plugin.run("Volume.create", base(sr, name="n", description="", size=size,
                                                  sharable=False))
        if made_or_size_error(res):
            v = res.value()
            assert v["virtual_size"] == top
            sr.call("Volume.destroy", key=v["key"])
        res = sr.plugin.run("Volume.resize", base(sr, key=small["key"], new_size=size))
        grown = made_or_size_error(res)
        assert sr.call("Volume.stat", key=small["key"])["virtual_size"] == (top if grown
                                                                             else MiB)
    sr.check_consistent()


def test_largest_sizes_are_made_or_refused_cleanly(sr):
    largest_sizes(sr)


def test_largest_sizes_thick_zfs(zplugin, zpool):
    largest_sizes(ZfsSR(zplugin, f"{zpool}/k{uuid.uuid4().hex[:8]}", provisioning="thick"))


def test_names_with_control_characters_are_data(loaded):
    """Names are data (xapi's name labels and Ganeti's disk names are any
    string): control characters included, stored and returned exactly.
    Descriptions keep to newlines and tabs."""
    sr, key, _ = loaded
    for name in ("two\nlines", "tab\there", "bell\x07", "del\x7f", "\x1b[31m red"):
        v = sr.plugin.ok("Volume.create", sr=sr.key, name=name, description="", size=MiB,
                         sharable=False)
        assert v["name"] == name
        assert sr.call("Volume.stat", key=v["key"])["name"] == name
        sr.call("Volume.set_name", key=key, new_name=name)
        assert sr.call("Volume.stat", key=key)["name"] == name
        sr.call("SR.set_name", new_name=name)
        assert sr.call("SR.stat")["name"] == name
        sr.call("Volume.destroy", key=v["key"])
    expect_refused(sr, "Volume.set_description", base(sr, key=key, new_description="\x1b[31m"))


@pytest.mark.parametrize("k", ["unknown", "../../x", "vdi-type\n", "a\x01b", "", "tags",
                               "_sm_config_", "$(reboot)", "x" * 300, "VDI-TYPE",
                               " vdi-type"])
def test_unknown_set_keys(loaded, k):
    sr, key, _ = loaded
    err = expect_refused(sr, "Volume.set", base(sr, key=key, k=k, v="v"),
                         kind="Invalid_argument")
    assert err["backtrace"]["error"]
    expect_refused(sr, "Volume.unset", base(sr, key=key, k=k), kind="Invalid_argument")


def test_bad_values_for_known_keys(loaded):
    sr, key, _ = loaded
    expect_refused(sr, "Volume.set", base(sr, key=key, k="is_a_snapshot", v="yes"))
    expect_refused(sr, "Volume.set", base(sr, key=key, k="vdi-type", v="User Disk"))
    expect_refused(sr, "Volume.set", base(sr, key=key, k="content_id", v="x" * 70000))


def test_bad_sr_create(file_sr, tmp_path):
    sr = file_sr
    for cfg in ({}, {"path": "relative"}, {"path": str(tmp_path) + "/a/../b"},
                {"path": str(tmp_path / "x y")}, {"path": str(tmp_path / "a|b")},
                {"path": str(tmp_path / "no/such/parent")},
                {"path": str(tmp_path / "t"), "provisioning": "fat"}):
        err = expect_refused(sr, "SR.create", {"dbg": "x", "uuid": "8d1f0c1e-1111-4222-8333-444455556666",
                                               "configuration": cfg, "name": "n",
                                               "description": ""})
        assert err["backtrace"]["error"]
    expect_refused(sr, "SR.create", {"dbg": "x", "uuid": "not-a-uuid", "name": "n",
                                     "configuration": {"path": str(tmp_path / "u")},
                                     "description": ""})
    assert sorted(os.listdir(tmp_path)) == ["sr"]


def test_bad_zfs_sr_create(zplugin, zpool):
    def refused(cfg):
        err = zplugin.err("SR.create", {"dbg": "x", "uuid": "8d1f0c1e-1111-4222-8333-444455556666",
                                        "configuration": cfg, "name": "n", "description": ""})
        return err["backtrace"]["error"]
    before = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", zpool],
                            capture_output=True, text=True).stdout
    assert "path is required" in refused({})
    assert "not a ZFS pool or dataset name" in refused({"path": "/abs/path"})
    assert "not a ZFS pool or dataset name" in refused({"path": zpool + "//x"})
    assert "no ZFS pool" in refused({"path": "nosuchpool/x"})
    assert "lz4" not in refused({"path": zpool, "compression": "lz4"}).split("supported:")[1]
    assert "supported: on, off" in refused({"path": zpool, "compression": "fast"})
    assert "sync is not a property" in refused({"path": zpool, "sync": "always"})
    assert "copies must be" in refused({"path": zpool, "copies": "4"})
    assert "layout=zvol needs zvols" in refused({"path": zpool, "layout": "zvol"})
    assert "layout must be" in refused({"path": zpool, "layout": "lvm"})
    assert "block size" in refused({"path": zpool, "volblocksize": "12K"})
    assert "unknown device-config key" in refused({"path": zpool, "compresion": "on"})
    after = subprocess.run(["zfs", "list", "-H", "-o", "name", "-r", zpool],
                           capture_output=True, text=True).stdout
    assert before == after


def test_wrong_operations(loaded):
    sr, key, snap = loaded
    expect_refused(sr, "Volume.revert", base(sr, key=snap, snapshot=snap))
    expect_refused(sr, "Volume.resize", base(sr, key=snap, new_size=8 * MiB))
    expect_refused(sr, "Volume.revert", base(sr, key=key, snapshot=key))
