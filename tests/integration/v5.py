"""Strict checks of SMAPIv3 (xapi-storage v5) records, as xapi's rpclib
unmarshals them (reference smapiv3.md section 1.6 and 2): required fields
present, types exact (an int is not a bool, an int64 is not a float), no
null anywhere (optional fields are omitted, never null), string maps are
objects of strings, variants are ["Tag", value]."""

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _no_null(value, where):
    assert value is not None, f"null at {where}"
    if isinstance(value, dict):
        for k, v in value.items():
            _no_null(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_null(v, f"{where}[{i}]")


def _is_str(v):
    return type(v) is str


def _is_int64(v):
    return type(v) is int and INT64_MIN <= v <= INT64_MAX


def _is_bool(v):
    return type(v) is bool


def _is_strmap(v):
    return type(v) is dict and all(_is_str(k) and _is_str(x) for k, x in v.items())


def _check_record(rec, required, optional, what):
    assert type(rec) is dict, f"{what} must be an object, got {rec!r}"
    _no_null(rec, what)
    for field, check in required.items():
        assert field in rec, f"{what}: required field {field!r} missing in {rec!r}"
        assert check(rec[field]), f"{what}: field {field!r} has the wrong type: {rec[field]!r}"
    for field, check in optional.items():
        if field in rec:
            assert check(rec[field]), f"{what}: optional {field!r} wrong type: {rec[field]!r}"


VOLUME_REQUIRED = {
    "key": _is_str, "name": _is_str, "description": _is_str, "read_write": _is_bool,
    "sharable": _is_bool, "virtual_size": _is_int64, "physical_utilisation": _is_int64,
    "uri": lambda v: type(v) is list and all(_is_str(u) for u in v), "keys": _is_strmap,
}
VOLUME_OPTIONAL = {
    "uuid": _is_str,
    "volume_type": lambda v: v in ("Data", "CBT_Metadata", "Data_and_CBT_Metadata"),
    "cbt_enabled": _is_bool,
}


def volume(rec):
    _check_record(rec, VOLUME_REQUIRED, VOLUME_OPTIONAL, "volume")
    assert rec["uri"], "volume: uri list is empty: no datapath could be chosen"
    assert rec["virtual_size"] >= 0 and rec["physical_utilisation"] >= 0
    return rec


def _health(v):
    return (type(v) is list and len(v) == 2 and
            v[0] in ("Healthy", "Recovering", "Unreachable", "Unavailable") and _is_str(v[1]))


SR_STAT_REQUIRED = {
    "sr": _is_str, "name": _is_str, "description": _is_str, "free_space": _is_int64,
    "total_space": _is_int64, "datasources": lambda v: type(v) is list and all(map(_is_str, v)),
    "clustered": _is_bool, "health": _health,
}


def sr_stat(rec):
    _check_record(rec, SR_STAT_REQUIRED, {"uuid": _is_str}, "sr_stat")
    return rec


QUERY_REQUIRED = {
    "plugin": _is_str, "name": _is_str, "description": _is_str, "vendor": _is_str,
    "copyright": _is_str, "version": _is_str, "required_api_version": _is_str,
    "features": lambda v: type(v) is list and all(map(_is_str, v)),
    "configuration": _is_strmap,
    "required_cluster_stack": lambda v: type(v) is list and all(map(_is_str, v)),
}


def query(rec):
    _check_record(rec, QUERY_REQUIRED, {}, "query_result")
    return rec


def probe_result(rec):
    _check_record(rec, {"configuration": _is_strmap, "complete": _is_bool,
                        "extra_info": _is_strmap}, {}, "probe_result")
    if "sr" in rec:
        sr_stat(rec["sr"])
    # xapi's own consistency rules (smapiv3.md 2.3)
    has_uuid = "sr_uuid" in rec["configuration"]
    assert not (rec["complete"] is False and has_uuid), "incomplete result with sr_uuid"
    assert not ("sr" in rec and not has_uuid), "sr without sr_uuid"
    return rec


def error(obj):
    """The error object a failing script prints (smapiv3.md 1.7)."""
    assert type(obj) is dict and set(obj) == {"code", "params", "backtrace"}, obj
    assert _is_str(obj["code"]) and obj["code"], obj
    assert type(obj["params"]) is list and all(map(_is_str, obj["params"])), obj
    bt = obj["backtrace"]
    assert type(bt) is dict and set(bt) == {"error", "files", "lines"}, bt
    assert _is_str(bt["error"])
    assert type(bt["files"]) is list and all(map(_is_str, bt["files"]))
    assert type(bt["lines"]) is list and all(type(x) is int for x in bt["lines"])
    return obj
