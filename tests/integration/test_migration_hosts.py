"""Live migration of a real QEMU guest between two hosts of a shared SR
(issue 13), with the datapath handoff in xenopsd's order, the failure
paths, and every record the guest reported verified on the storage.

Shared zfs-live SR: the pool on a storage host S, hosts A and B remote:
every call they make runs on S over TLS with their own PSK, their QEMUs
reach the volume through their own relay sockets, and S's fence knows
their writes by their PSK identity.  The three hosts share this machine
(own host UUIDs, run directories, PSKs; S's server on 127.0.0.1); B's QEMU
runs in a network namespace of its own, the migration stream on a unix
socket.  The shared file-live SR on GlusterFS with hosts in their own
network and mount namespaces is in test_shared_file.py."""
import os
import subprocess
import time
import uuid as uuidlib

import pytest

import guest as guestlib
from conftest import CLI, wait_for
from test_migration import AFTER, BEFORE, VOL_SIZE, Run, check_all_reported, guest_image  # noqa: F401
from test_shared_zfs import A, B, S, cluster  # noqa: F401


@pytest.fixture
def run(guest_image, tmp_path):  # noqa: F811
    r = Run(guest_image, str(tmp_path))
    yield r
    r.stop()


class Att:
    """A volume attached on one host through the datapath: its relay."""

    def __init__(self, host, uri, domain):
        self.host, self.uri, self.domain = host, uri, domain
        be = host.ok("Datapath.attach", uri=uri, domain=domain)
        nbd = dict((i[0], i[1]) for i in be["implementations"])["Nbd"]["uri"]
        self.socket, _, self.export = nbd.partition("nbd:unix:")[2].partition(":exportname=")

    def detach(self):
        self.host.ok("Datapath.detach", uri=self.uri, domain=self.domain)


def shared_volume(cluster):  # noqa: F811
    hosts, config, ds = cluster
    s, a, b = (hosts[u] for u in (S, A, B))
    out = s.ok("SR.create", uuid=str(uuidlib.uuid4()), configuration=config,
               name="shared", description="")
    key = s.ok("SR.attach", configuration=out)
    assert a.ok("SR.attach", configuration=out) == key
    assert b.ok("SR.attach", configuration=out) == key
    v = a.ok("Volume.create", sr=key, name="guest", description="", size=VOL_SIZE,
             sharable=False)

    def read(offset, length):  # the data as stored, on the storage host
        r = subprocess.run([CLI, "vol", "read", key, v["key"], "--offset", str(offset),
                            "--length", str(length)], env={**os.environ, **s.env},
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout
    return s, a, b, key, v, read


def test_live_migration_shared_zfs_sr(cluster, run):  # noqa: F811
    s, a, b, key, v, read = shared_volume(cluster)
    uri = v["uri"][0]
    t0 = time.monotonic()
    att_a = Att(a, uri, "1")
    a.ok("Datapath.activate", uri=uri, domain="1")
    src = run.guest(att_a, name="src")
    boot = src.wait_boot()
    src.wait_records(BEFORE)

    att_b = Att(b, uri, "1")  # the same domain id: another host's
    dst = run.guest(att_b, prefix=["unshare", "--net"], name="dst", incoming=True,
                    records=src.records)
    handoff = {}

    def do_handoff():
        h0 = time.monotonic()
        a.ok("Datapath.deactivate", uri=uri, domain="1")
        h1 = time.monotonic()
        b.ok("Datapath.activate", uri=uri, domain="1")
        handoff["deactivate"], handoff["activate"] = h1 - h0, time.monotonic() - h1
    src.migrate_to(dst, handoff=do_handoff)
    dst.wait_first_record_after_migration()
    moved_at = dst.timings["last_rec_on_source"]
    dst.wait_records(moved_at + 1 + AFTER // 2)

    # split brain attempt: the old source resumed after the handoff writes
    # through A's connection, opened before the deactivate: refused on S
    src.resume()
    who, line = src.records.wait_line(r"ERR \d+ \d+", who="src", timeout=60)
    refused_at = int(line.split()[1])
    target = src.records.last() + AFTER // 2  # B is not disturbed
    src.records.wait(lambda: max(src.records.recs) >= target, f"record {target} from B", 120,
                     fail_on_error=False)
    assert [e for e in src.records.errors() if e[0] == "dst"] == []
    src.stop()
    att_a.detach()
    dst.stop()
    b.ok("Datapath.deactivate", uri=uri, domain="1")
    att_b.detach()

    idx = check_all_reported(src.records)
    on_src = [i for i in idx if src.records.recs[i][1] == "src"]
    on_dst = [i for i in idx if src.records.recs[i][1] == "dst"]
    assert len(on_src) >= BEFORE and len(on_dst) >= AFTER // 2
    assert max(on_src) < min(on_dst)
    assert refused_at > max(on_src)
    n = guestlib.verify(read, idx, run.run_id)
    print(f"\nmigration (shared zfs-live SR, A and B over TLS): boot {boot:.2f} s; "
          f"handoff: deactivate on A {handoff['deactivate']:.3f} s, activate on B "
          f"{handoff['activate']:.3f} s; the resumed source's write of record {refused_at} "
          f"refused; {len(on_src)} records on A, {len(on_dst)} on B, {n} verified on S; "
          f"test {time.monotonic() - t0:.1f} s", flush=True)


def test_host_killed_while_active_is_taken_over(cluster, run):  # noqa: F811
    s, a, b, key, v, read = shared_volume(cluster)
    uri = v["uri"][0]
    att_a = Att(a, uri, "1")
    a.ok("Datapath.activate", uri=uri, domain="1")
    src = run.guest(att_a, name="src")
    src.wait_boot()
    src.wait_records(BEFORE)
    # host A dies: its QEMU and its relay, nothing deactivates
    src.kill()
    a.stop()
    reported = src.records.indices()

    att_b = Att(b, uri, "7")
    err = b.err("Datapath.activate", uri=uri, domain="7")
    assert err["params"][0] == "Activated_on_another_host"
    r = subprocess.run([CLI, "vol", "takeover", key, v["key"], "--domain", "7"],
                       env={**os.environ, **b.env}, capture_output=True, timeout=60)
    assert r.returncode == 0 and f"taken over from host {A}" in r.stderr.decode(), r.stderr
    # every record A's guest reported (each after its flush) is there
    n = guestlib.verify(read, reported, run.run_id)
    # the VM starts again on B, on the same disk, and writes
    again = guestlib.Guest(run.image, att_b.socket, att_b.export, run.workdir, name="again",
                           run_id=run.run_id + 1)
    run.guests.append(again)
    again.start()
    again.wait_boot()
    again.wait_records(10)
    again.stop()
    b.ok("Datapath.deactivate", uri=uri, domain="7")
    att_b.detach()
    wait_for(lambda: not os.path.exists(att_b.socket), "B's relay to stop")
    print(f"\nhost A killed while active: {n} records it reported verified after the "
          f"takeover on B; the VM restarted on B wrote 10 more", flush=True)
