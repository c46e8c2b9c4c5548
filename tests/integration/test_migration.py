"""Live migration of a real QEMU guest (issue 13): a Debian kernel and a
busybox initramfs (tests/integration/guest.py) whose virtio disk is a volume
attached through the installed datapath plugin; the guest writes numbered,
checksummed records and reports them on its serial console.  The test
migrates it in the middle of the writes, making the datapath handoff in
xenopsd's order (destination Datapath.attach before the destination QEMU
starts; after the migration completes, source Datapath.deactivate and
destination Datapath.activate; then `cont`), lets it write on the
destination, and verifies every record it reported on the volume's data.

These run on one host (the source and the destination are two QEMUs and
two domains of this machine); the two-host runs use the same Guest with
an argv prefix that enters each host's namespaces."""
import os
import subprocess
import time

import pytest

import guest as guestlib
import uuid

from conftest import Attached, FileSR, Plugin, ZfsSR, need, zfs_pool

VOL_SIZE = 64 << 20
BEFORE = 100  # records on the source before migrating
AFTER = 100  # records on the destination (or after a cancel) before stopping


@pytest.fixture(scope="session")
def guest_image(tmp_path_factory):
    miss = guestlib.missing_prerequisites()
    need(not miss, "the migration guest needs " + ", ".join(miss))
    need(os.geteuid() == 0, "the datapath (loop devices) needs root")
    t0 = time.monotonic()
    img = guestlib.build_image(str(tmp_path_factory.mktemp("guest-image")))
    print(f"\nguest image: {img.kernel}, modules {img.modules}, writer by {img.writer_cc}, "
          f"built in {time.monotonic() - t0:.2f} s", flush=True)
    return img


class Run:
    """One test's guests, stopped (and checked gone) at the end."""

    def __init__(self, image, workdir):
        self.image, self.workdir = image, workdir
        self.run_id = int.from_bytes(os.urandom(7), "little")
        self.guests = []

    def guest(self, att, prefix=(), **kw):
        g = guestlib.Guest(self.image, att.socket, att.export, self.workdir, prefix=prefix,
                           run_id=self.run_id, **kw)
        self.guests.append(g)
        return g.start()

    def stop(self):
        for g in self.guests:
            g.stop()
        for g in self.guests:
            assert g.proc.poll() is not None, f"QEMU {g.name} still running"


@pytest.fixture
def run(guest_image, tmp_path):
    r = Run(guest_image, str(tmp_path))
    yield r
    r.stop()


def make_sr(sr_type, plugin, tmp_path, tmp_path_factory):
    if sr_type == "file-live":
        return FileSR(plugin, str(tmp_path / "sr"))
    pool = zfs_pool(tmp_path_factory)
    return ZfsSR(Plugin("zfs-live"), f"{pool}/t{uuid.uuid4().hex[:8]}")


def volume_reader(sr, vol):
    """read(offset, length) on the volume's data as stored: the image file
    of a file-live SR; a zfs-live volume through `zfs-live vol read`."""
    if not isinstance(sr, FileSR):
        return lambda offset, length: sr.read(vol["key"], offset, length)
    path = sr.img(vol["key"])

    def read(offset, length):
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)
    return read


def image_stamp(sr, vol):
    """Changes with every write to a file-live volume's image (mtime,
    ctime); None for other SRs."""
    if not isinstance(sr, FileSR):
        return None
    st = os.stat(sr.img(vol["key"]))
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size


WRITES = ("write", "flush", "trim", "write_zeroes", "cache")


def summary(reqs):
    """{type: count} of NBD requests."""
    out = {}
    for _, typ, _, _ in reqs:
        out[typ] = out.get(typ, 0) + 1
    return out


def check_all_reported(records):
    """Every record from 0 to the last reported was reported: the console
    lost nothing across the move."""
    idx = records.indices()
    assert idx == list(range(len(idx))), f"gaps in the reported records: {idx[:5]}...{idx[-5:]}"
    return idx


# unix: the destination QEMU runs under a prefix, in a network namespace of
# its own (the way a guest runs on another "host"), the migration stream on
# a unix socket; tcp: on 127.0.0.1, the port the destination binds (0: any)
TRANSPORTS = {"unix": (["unshare", "--net"], None), "tcp": ((), "tcp:127.0.0.1:0")}


@pytest.mark.parametrize("sr_type,transport", [("file-live", "tcp"), ("file-live", "unix"),
                                               ("zfs-live", "unix")])
def test_live_migration_one_host(plugin, datapath, run, sr_type, transport, tmp_path,
                                 tmp_path_factory):
    prefix, uri = TRANSPORTS[transport]
    sr = make_sr(sr_type, plugin, tmp_path, tmp_path_factory)
    vol = sr.create(size=VOL_SIZE, name="guest")
    t0 = time.monotonic()
    a = Attached(sr, vol, datapath, domain="11")
    datapath.ok("Datapath.activate", uri=a.uri, domain="11")
    src = run.guest(a, name="src")
    boot = src.wait_boot()
    src.wait_records(BEFORE)

    # xenopsd: the destination attaches (non exclusive), its QEMU starts
    # waiting for the migration
    b = Attached(sr, vol, datapath, domain="12")
    dst = run.guest(b, prefix=prefix, name="dst", incoming=True, records=src.records)
    handoff = {}

    def do_handoff():
        # the source is paused with its disk flushed and inactive, the
        # destination paused: nothing writes now
        handoff["stamp"] = image_stamp(sr, vol)
        h0 = time.monotonic()
        handoff["deactivate_wall"] = time.time()
        datapath.ok("Datapath.deactivate", uri=a.uri, domain="11")
        h1 = time.monotonic()
        datapath.ok("Datapath.activate", uri=b.uri, domain="12")
        handoff["deactivate"], handoff["activate"] = h1 - h0, time.monotonic() - h1
        assert image_stamp(sr, vol) == handoff["stamp"], \
            "the volume changed between migration completion and cont"
    src.migrate_to(dst, handoff=do_handoff, uri=uri)
    dst.wait_first_record_after_migration()
    moved_at = dst.timings["last_rec_on_source"]
    dst.wait_records(moved_at + 1 + AFTER)
    src.stop()
    a.detach()  # xenopsd: the source detaches after the move
    dst.stop()
    datapath.ok("Datapath.deactivate", uri=b.uri, domain="12")
    b.detach()

    idx = check_all_reported(src.records)
    on_src = [i for i in idx if src.records.recs[i][1] == "src"]
    on_dst = [i for i in idx if src.records.recs[i][1] == "dst"]
    assert len(on_src) >= BEFORE and len(on_dst) >= AFTER, (len(on_src), len(on_dst))
    assert max(on_src) < min(on_dst)  # the guest went on where it stopped
    n = guestlib.verify(volume_reader(sr, vol), idx, run.run_id)
    t = dst.timings
    # what each QEMU sent the NBD server around the handoff (both have
    # exited: their traces are complete)
    src_reqs, dst_reqs = src.nbd_requests(), dst.nbd_requests()
    dst_before = [r for r in dst_reqs if r[0] < t["cont_wall"]]
    assert not [r for r in dst_before if r[1] in WRITES], \
        f"the destination QEMU wrote before cont: {dst_before}"
    src_during = [r for r in src_reqs if src.timings["migrate_wall"] <= r[0] < t["completed_wall"]]
    src_after = [r for r in src_reqs if r[0] >= t["completed_wall"]]
    dst_writes = [r for r in dst_reqs if r[1] == "write"]
    first_write = min(r[0] for r in dst_writes)
    assert first_write > t["cont_wall"]
    # the guest goes on where it stopped: the destination's first write is
    # the record after the source's last (whose REC may be printed on
    # either side: the vCPU stops anywhere between the flush and the print)
    last_src_rec = max(r[2] for r in src_reqs if r[1] == "write") // guestlib.REC_SIZE
    assert min(r[2] for r in dst_writes) == (last_src_rec + 1) * guestlib.REC_SIZE
    new_rec_after = src.records.recs[last_src_rec + 1][0] - t["completed_at"]

    def rel(reqs, t0):
        return [(typ, off, ln, f"{(ts - t0) * 1000:+.1f} ms") for ts, typ, off, ln in reqs]
    print(f"\nNBD requests: destination before cont {rel(dst_before, t['cont_wall'])} "
          f"(times from cont); source from migrate to completion {summary(src_during)}, "
          f"the last ones {rel(src_during[-4:], t['completed_wall'])} (times from completion "
          f"seen); source after completion (at its quit) {summary(src_after)}", flush=True)
    print(f"\nmigration (one host, {sr_type}, {transport}): boot {boot:.2f} s; "
          f"migrate->completed {t['migration']:.3f} s "
          f"(QEMU total {t['qemu_total_ms']} ms, downtime {t['qemu_downtime_ms']} ms); "
          f"handoff {t['handoff']:.3f} s (deactivate {handoff['deactivate']:.3f} s, "
          f"activate {handoff['activate']:.3f} s); completed->first REC printed on the "
          f"destination {t['first_rec_after']:.3f} s (cont->it {t['cont_to_rec']:.3f} s), "
          f"->first REC of a record the destination wrote {new_rec_after:.3f} s; deactivate->"
          f"first write sent by the destination "
          f"{first_write - handoff['deactivate_wall']:.3f} s; "
          f"{len(on_src)} records on the source, {len(on_dst)} on the destination, "
          f"{n} verified; test {time.monotonic() - t0:.1f} s", flush=True)


def test_cancelled_migration_stays_on_the_source(file_sr, datapath, run):
    vol = file_sr.create(size=VOL_SIZE, name="guest")
    t0 = time.monotonic()
    a = Attached(file_sr, vol, datapath, domain="21")
    datapath.ok("Datapath.activate", uri=a.uri, domain="21")
    src = run.guest(a, name="src")
    boot = src.wait_boot()
    src.wait_records(BEFORE)
    b = Attached(file_sr, vol, datapath, domain="22")
    dst = run.guest(b, name="dst", incoming=True, records=src.records)
    # slow enough (1 MiB/s: the guest's tens of MiB of non-zero RAM take
    # many seconds) that the cancel lands while the migration is active
    src.start_migration(dst, max_bandwidth=1 << 20)
    src.wait_migration(states=("active",))
    during = src.last_record()
    src.wait_record(during + 10)  # the guest runs on the source meanwhile
    assert src.query_migrate()["status"] == "active"
    src.cancel_migration()
    assert src.status() == "running"
    # the destination's incoming migration failed: it never ran
    assert not any(w == "dst" for _, w in src.records.recs.values())
    dst.stop()
    b.detach()
    src.wait_records(src.last_record() + 1 + AFTER)
    src.stop()
    datapath.ok("Datapath.deactivate", uri=a.uri, domain="21")
    a.detach()
    idx = check_all_reported(src.records)
    n = guestlib.verify(volume_reader(file_sr, vol), idx, run.run_id)
    assert not [r for r in dst.nbd_requests() if r[1] in WRITES]
    print(f"\ndestination of the cancelled migration sent {summary(dst.nbd_requests())}")
    print(f"\ncancelled migration: boot {boot:.2f} s; {n} records verified, all on the source; "
          f"test {time.monotonic() - t0:.1f} s", flush=True)


def test_verify_detects_a_bad_record(guest_image, tmp_path):
    """The check can fail: records written by the guest's writer itself (on
    a file, here on the host), then one byte of one record flipped."""
    img = str(tmp_path / "disk")
    with open(img, "wb") as f:
        f.truncate(64 * guestlib.REC_SIZE)
    out = subprocess.run([guest_image.writer, img, "77", "0"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")
    assert lines[0] == "START run=77 records=64" and lines[-2] == "END 64", out.stdout
    recs = [int(x.split()[1]) for x in lines if x.startswith("REC ")]
    assert recs == list(range(64))

    def read(offset, length):
        with open(img, "rb") as f:
            f.seek(offset)
            return f.read(length)
    assert guestlib.verify(read, recs, 77) == 64
    with pytest.raises(AssertionError, match="record 5: bad checksum"):
        with open(img, "r+b") as f:
            f.seek(5 * guestlib.REC_SIZE + 100)
            b = f.read(1)
            f.seek(5 * guestlib.REC_SIZE + 100)
            f.write(bytes([b[0] ^ 1]))
        guestlib.verify(read, recs, 77)
    with pytest.raises(AssertionError, match="record 0: holds record 0 of run 77"):
        guestlib.verify(read, [0], 76)
