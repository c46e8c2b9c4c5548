"""100 concurrent mixed calls on one SR (xapi runs plugin calls
concurrently since v24.40.0): every call answers with valid JSON, and the
SR is consistent afterwards."""
import json
import random
from concurrent.futures import ThreadPoolExecutor

import v5

MiB = 1 << 20


def test_100_concurrent_mixed_calls(sr):
    seed = [sr.create(size=4 * MiB, name=f"seed{i}") for i in range(8)]
    snaps = [sr.call("Volume.snapshot", key=v["key"]) for v in seed[:4]]
    keys = [v["key"] for v in seed]
    rnd = random.Random(4242)

    calls = []
    for i in range(100):
        k = rnd.choice(keys)
        kind = i % 10
        if kind == 0:
            calls.append(("Volume.create", {"name": f"c{i}", "description": "",
                                            "size": MiB * (1 + i % 3), "sharable": False}))
        elif kind == 1:
            calls.append(("Volume.snapshot", {"key": k}))
        elif kind == 2:
            calls.append(("Volume.clone", {"key": rnd.choice(snaps)["key"]}))
        elif kind == 3:
            calls.append(("Volume.set", {"key": k, "k": f"tags{i}", "v": str(i)}))
        elif kind == 4:
            calls.append(("Volume.resize", {"key": k, "new_size": (5 + i % 7) * MiB}))
        elif kind == 5:
            calls.append(("Volume.stat", {"key": k}))
        elif kind == 6:
            calls.append(("SR.ls", {}))
        elif kind == 7:
            calls.append(("Volume.set_name", {"key": k, "new_name": f"name{i}"}))
        elif kind == 8:
            # destroy one of the later-made seeds at most once each
            calls.append(("Volume.destroy", {"key": keys[4 + (i // 10) % 4]}))
        else:
            calls.append(("SR.stat", {}))
    rnd.shuffle(calls)

    def run(call):
        method, params = call
        res = sr.plugin.run(method, dict(dbg=f"conc-{method}", sr=sr.key, **params))
        return method, params, res

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(run, calls))

    created = set()
    destroyed = set()
    for method, params, res in results:
        assert not res.killed
        value = res.value()  # exactly one JSON value, either way
        if res.rc != 0:
            v5.error(value)
            # the only legitimate failures: work on a volume destroyed meanwhile,
            # or a shrink because another resize grew it first
            assert value["params"][0] in ("Volume_does_not_exist", "VDI Invalid size"), value
            continue
        if method in ("Volume.create", "Volume.snapshot", "Volume.clone"):
            created.add(v5.volume(value)["key"])
        elif method == "Volume.stat":
            v5.volume(value)
        elif method == "SR.ls":
            [v5.volume(x) for x in value]
        elif method == "SR.stat":
            v5.sr_stat(value)
        elif method == "Volume.destroy":
            destroyed.add(params["key"])
            assert value is None
        else:
            assert value is None
    assert len([1 for m, _, r in results if m == "Volume.create" and r.rc == 0]) == 10

    listed = {v["key"] for v in sr.check_consistent()}
    expected = ({v["key"] for v in seed} | {s["key"] for s in snaps} | created) - destroyed
    assert listed == expected
    # every successful set is visible
    for method, params, res in results:
        if method == "Volume.set" and res.rc == 0 and params["key"] in listed:
            assert sr.call("Volume.stat", key=params["key"])["keys"][params["k"]] == params["v"]
