"""Export and import of images (`vol export --format`, `vol import`):
round trips in raw, qcow2 and VHD on a plain directory, on ext4 (loop) and
on a zfs-fuse SR, checked byte for byte by qemu-img and for allocation
(holes stay holes); qemu-img and libvhdi's vhdiinfo accept our images;
corrupt, truncated and hostile images are refused leaving nothing behind;
a kill at every fault point of import and export is repaired by the next
call; the progress bar as a terminal shows it, --json progress lines, and
silence on a non-TTY.  Also the old spelling of `vol share`."""
import hashlib
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import uuid

import pytest

from conftest import (CLI, FileSR, Plugin, ZfsSR, cli, gone, make_fs, need, wait_for,
                      zfs_pool)

MiB = 1 << 20
SIZE = 64 * MiB
# scattered data: (offset, length); the rest of the volume is a hole
EXTENTS = [(0, MiB), (17 * MiB + 4096, 300 * 1024), (40 * MiB, 2 * MiB), (SIZE - MiB, MiB)]
DATA_BYTES = sum(n for _, n in EXTENTS)
ZEROS = (50 * MiB, 2 * MiB)  # written as zeros: a hole in every image
QEMU_FMT = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc"}
FORMATS = ["raw", "qcow2", "vhd"]


@pytest.fixture(scope="module")
def ext4(tmp_path_factory):
    where = tmp_path_factory.mktemp("ext4")
    img, mnt = make_fs("ext4", str(where))
    yield mnt
    subprocess.run(["umount", mnt], check=False)
    os.unlink(img)


@pytest.fixture(params=["dir", "ext4", "zfs"])
def xsr(request, plugin, tmp_path, tmp_path_factory):
    if request.param == "dir":
        return FileSR(plugin, str(tmp_path / "sr"))
    if request.param == "ext4":
        ext4 = request.getfixturevalue("ext4")
        return FileSR(plugin, os.path.join(ext4, uuid.uuid4().hex[:8]))
    pool = zfs_pool(tmp_path_factory)
    return ZfsSR(Plugin("zfs-live"), f"{pool}/x{uuid.uuid4().hex[:8]}")


def filled(sr, key="src"):
    """A volume with scattered random data; its content as bytes."""
    cli("vol", "create", sr.key, "--name", "src", "--size", str(SIZE), "--key", key)
    content = bytearray(SIZE)
    for off, n in EXTENTS:
        data = os.urandom(n)
        sr.write(key, data, offset=off)
        content[off:off + n] = data
    sr.write(key, bytes(ZEROS[1]), offset=ZEROS[0])  # allocated, but zeros
    return bytes(content)


def export(sr, key, fmt, out, *extra, env=None):
    return cli("vol", "export", sr.key, key, "--format", fmt, "-o", out, *extra, env=env)


def allocated(path):
    return os.stat(path).st_blocks * 512


def data_segments(path):
    """[(start, end)] of the file's data segments (SEEK_DATA/SEEK_HOLE)."""
    out, off = [], 0
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        while off < size:
            try:
                start = os.lseek(f.fileno(), off, os.SEEK_DATA)
            except OSError:
                break
            end = os.lseek(f.fileno(), start, os.SEEK_HOLE)
            out.append((start, end))
            off = end
    return out


def dir_state(sr):
    """Everything in a file SR's directory but locks, with sizes."""
    if not isinstance(sr, FileSR):
        return None
    out = {}
    for dp, _, fns in os.walk(sr.path):
        for n in fns:
            rel = os.path.relpath(os.path.join(dp, n), sr.path)
            if rel == ".zfs-live/lock" or rel.startswith(".zfs-live/locks/"):
                continue
            out[rel] = os.path.getsize(os.path.join(dp, n))
    return out


def zfs_state(sr):
    if not isinstance(sr, ZfsSR):
        return None
    return sorted(sr.objects())


def sr_state(sr):
    return (sorted(v["key"] for v in sr.ls()), dir_state(sr), zfs_state(sr), sr.journal())


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(xsr, fmt, tmp_path):
    """export then import: same bytes (qemu-img compare against the
    volume's data), same SHA-256, holes kept in the raw image and in the
    imported volume, and the image accepted by qemu-img info (and
    vhdiinfo: a dynamic VHD)."""
    sr = xsr
    content = filled(sr)
    want_sha = hashlib.sha256(content).hexdigest()
    ref = tmp_path / "ref.raw"
    ref.write_bytes(content)
    img = str(tmp_path / f"out.{fmt}")
    res = json.loads(export(sr, "src", fmt, img, "--json").stdout)
    assert res["sha256"] == want_sha and res["size"] == SIZE and res["format"] == fmt
    assert not os.path.exists(img + ".zfs-live-partial")

    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", "-f",
                                      QEMU_FMT[fmt], img], check=True,
                                     capture_output=True).stdout)
    assert info["format"] == QEMU_FMT[fmt] and info["virtual-size"] == SIZE
    cmp = subprocess.run(["qemu-img", "compare", "-f", QEMU_FMT[fmt], "-F", "raw", img,
                          str(ref)], capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    # the image holds the data, not the size
    assert allocated(img) < DATA_BYTES + 4 * MiB, allocated(img)
    if fmt == "raw":
        assert os.path.getsize(img) == SIZE
        segs = data_segments(img)
        assert segs and segs[0][0] == 0 and segs[-1][1] == SIZE
        assert any(s <= 40 * MiB < e for s, e in segs)
        assert not any(s <= 30 * MiB < e for s, e in segs), segs  # a hole stays one
        assert not any(s < ZEROS[0] + ZEROS[1] and e > ZEROS[0] for s, e in segs), segs
    if fmt == "vhd" and shutil.which("vhdiinfo"):
        out = subprocess.run(["vhdiinfo", img], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "Dynamic" in out.stdout and f"({SIZE} bytes)" in out.stdout, out.stdout

    res = json.loads(cli("vol", "import", sr.key, img, "--format", fmt, "--key", "back",
                         "--name", "imported", "--sha256", want_sha, "--json").stdout)
    assert res["key"] == "back" and res["sha256"] == want_sha
    assert res["virtual_size"] == SIZE and res["name"] == "imported"
    assert sr.read("back") == content
    if isinstance(sr, FileSR):
        assert allocated(sr.img("back")) < DATA_BYTES + 4 * MiB
        segs = data_segments(sr.img("back"))
        assert not any(s < ZEROS[0] + ZEROS[1] and e > ZEROS[0] for s, e in segs), segs
    assert sorted(v["key"] for v in sr.ls()) == ["back", "src"]
    assert not sr.journal()


def test_raw_stream_through_a_pipe(file_sr):
    """export -o - piped into import -: the data on stdout, every byte
    (holes as zeros), the checksum on stderr."""
    sr = file_sr
    content = filled(sr)
    exp = subprocess.Popen([CLI, "vol", "export", sr.key, "src", "--format", "raw", "-o",
                            "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    imp = subprocess.run([CLI, "vol", "import", sr.key, "-", "--format", "raw", "--size",
                          str(SIZE), "--key", "piped"], stdin=exp.stdout,
                         capture_output=True, text=True)
    exp.stdout.close()
    err = exp.stderr.read().decode()
    assert exp.wait() == 0 and imp.returncode == 0, err + imp.stderr
    sha = hashlib.sha256(content).hexdigest()
    assert err.strip() == f"sha256 {sha}"
    assert f"sha256       {sha}" in imp.stdout
    assert sr.read("piped") == content
    assert allocated(sr.img("piped")) < DATA_BYTES + 4 * MiB  # zeros not written
    segs = data_segments(sr.img("piped"))
    assert not any(s < ZEROS[0] + ZEROS[1] and e > ZEROS[0] for s, e in segs), segs

    out = cli("vol", "export", sr.key, "src", "--format", "raw", "-o", "-")
    assert out.stdout == content


@pytest.mark.parametrize("fmt", ["qcow2", "vhd"])
def test_image_to_stdout(file_sr, fmt, tmp_path):
    sr = file_sr
    content = filled(sr)
    (tmp_path / "ref.raw").write_bytes(content)
    out = cli("vol", "export", sr.key, "src", "--format", fmt, "-o", "-")
    img = tmp_path / f"s.{fmt}"
    img.write_bytes(out.stdout)
    assert out.stderr.decode().strip() == f"sha256 {hashlib.sha256(content).hexdigest()}"
    cmp = subprocess.run(["qemu-img", "compare", "-f", QEMU_FMT[fmt], "-F", "raw", str(img),
                          str(tmp_path / "ref.raw")], capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    # nothing left in the temporary directory
    assert not [n for n in os.listdir(os.environ.get("TMPDIR", "/tmp"))
                if n.startswith("zfs-live-export.")]


def truncate(src, dst, keep):
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[:keep])


BAD = ["qcow2-truncated", "vhd-truncated", "raw-stream-truncated", "raw-stream-long",
       "raw-as-qcow2", "bad-sha256", "qcow2-backing", "qcow2-over-limit",
       "qcow2-corrupt-header", "qcow2-from-stdin"]


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize("kind", ["dir", "zfs"])
def test_bad_input_refused(kind, case, plugin, tmp_path, tmp_path_factory):
    """Refused with a clear error; the SR as it was (volumes, files,
    datasets, journal)."""
    if kind == "dir":
        sr = FileSR(plugin, str(tmp_path / "sr"))
    else:
        sr = ZfsSR(Plugin("zfs-live"), f"{zfs_pool(tmp_path_factory)}/b{uuid.uuid4().hex[:8]}")
    content = filled(sr)
    sha = hashlib.sha256(content).hexdigest()
    fmt = case.split("-")[0]
    src = str(tmp_path / "good")
    if fmt in ("qcow2", "vhd"):
        export(sr, "src", fmt, src)
    bad = str(tmp_path / "bad")
    stdin, args, why = None, None, None
    if case.endswith("truncated") and fmt in ("qcow2", "vhd"):
        truncate(src, bad, os.path.getsize(src) - 700 * 1024)
        args, why = [bad, "--format", fmt], "truncated"
    elif case == "raw-stream-truncated":
        stdin, args, why = content[:SIZE - 5000], ["-", "--format", "raw", "--size",
                                                   str(SIZE)], "truncated"
    elif case == "raw-stream-long":
        stdin, args, why = content + b"x", ["-", "--format", "raw", "--size", str(SIZE)], \
            "longer"
    elif case == "raw-as-qcow2":
        with open(bad, "wb") as f:
            f.write(content)
        args, why = [bad, "--format", "qcow2"], "not in qcow2 format"
    elif case == "bad-sha256":
        with open(bad, "wb") as f:
            f.write(content[:-1] + bytes([content[-1] ^ 1]))
        args, why = [bad, "--format", "raw", "--sha256", sha], "does not match its checksum"
    elif case == "qcow2-backing":
        base = str(tmp_path / "secret.raw")
        with open(base, "wb") as f:
            f.write(b"secret" * 1000)
        subprocess.run(["qemu-img", "create", "-f", "qcow2", "-F", "raw", "-b", base, bad],
                       check=True, capture_output=True)
        args, why = [bad, "--format", "qcow2"], "backing"
    elif case == "qcow2-over-limit":
        args, why = [src, "--format", "qcow2", "--size", str(SIZE // 2)], "over the limit"
    elif case == "qcow2-corrupt-header":
        with open(src, "rb") as f:
            data = bytearray(f.read())
        data[40:48] = (1 << 62).to_bytes(8, "big")  # l1_table_offset far away
        with open(bad, "wb") as f:
            f.write(data)
        args, why = [bad, "--format", "qcow2"], "qemu-img"
    elif case == "qcow2-from-stdin":
        with open(src, "rb") as f:
            stdin = f.read()
        args, why = ["-", "--format", "qcow2"], "give a file"
    before = sr_state(sr)
    res = cli("vol", "import", sr.key, *args, "--key", "new", check=False, input=stdin)
    err = res.stderr.decode()
    assert res.returncode == 1, err
    assert why in err, err
    assert sr_state(sr) == before
    cli("sr", "ls", sr.key)  # the next call finds nothing to repair either
    assert sr_state(sr) == before


# an import is a zl_recv (core/model/copy.c): receive:* around its own steps
IMPORT_POINTS = ["receive:journaled", "import:created", "import:filled", "receive:committed"]


@pytest.mark.parametrize("point", IMPORT_POINTS)
@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_import_killed(file_sr, point, fmt, tmp_path):
    """Killed at each step: the volume is never listed half-made; the next
    call removes it, or keeps it complete once committed."""
    sr = file_sr
    content = filled(sr)
    img = str(tmp_path / "img")
    export(sr, "src", fmt, img)
    res = cli("vol", "import", sr.key, img, "--format", fmt, "--key", "new", check=False,
              env={"ZFS_LIVE_FAULT": point})
    assert res.returncode == -9, res.stderr
    # before any other call: the metadata says transient until committed
    meta = os.path.join(sr.path, "new.meta.json")
    if point in ("import:created", "import:filled"):
        with open(meta) as f:
            assert json.load(f)["transient"] is True
    assert sr.journal()
    keys = sorted(v["key"] for v in sr.ls())  # the next call: recovery
    assert not sr.journal()
    if point == "receive:committed":
        assert keys == ["new", "src"]
        assert sr.read("new") == content
    else:
        assert keys == ["src"]
        assert not os.path.exists(meta) and not os.path.exists(sr.img("new"))
    sr.check_consistent()
    # and the import can be made again
    cli("vol", "import", sr.key, img, "--format", fmt, "--key", "again")
    assert sr.read("again") == content


def test_export_killed(file_sr, tmp_path):
    """Killed before the rename: FILE does not exist (no half image under
    its name); the next export to it replaces the partial one."""
    sr = file_sr
    content = filled(sr)
    out = str(tmp_path / "o.raw")
    res = cli("vol", "export", sr.key, "src", "--format", "raw", "-o", out, check=False,
              env={"ZFS_LIVE_FAULT": "export:written"})
    assert res.returncode == -9
    assert not os.path.exists(out) and os.path.exists(out + ".zfs-live-partial")
    export(sr, "src", "raw", out)
    assert not os.path.exists(out + ".zfs-live-partial")
    with open(out, "rb") as f:
        assert f.read() == content


def run_in_pty(argv):
    """Run argv with stderr (and stdin) on a pseudo-terminal, stdout a
    pipe: what the terminal received, and stdout."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        assert r, "no output from the terminal for 60 s"
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        screen += chunk
    out = proc.stdout.read()
    assert proc.wait() == 0, screen
    os.close(master)
    return screen.decode(), out


def last_line(screen):
    """What a terminal shows last: each \\r redraws the line."""
    lines = [ln.split("\r")[-1] for ln in screen.replace("\r\n", "\n").split("\n")]
    return [ln for ln in lines if ln.strip()][-1]


def test_progress_bar_on_a_terminal(file_sr, tmp_path):
    sr = file_sr
    cli("vol", "create", sr.key, "--name", "big", "--size", "1G", "--key", "big")
    sr.write("big", os.urandom(8 * MiB), offset=512 * MiB)
    screen, out = run_in_pty([CLI, "vol", "export", sr.key, "big", "--format", "qcow2",
                              "-o", str(tmp_path / "b.qcow2")])
    line = last_line(screen)
    assert line.startswith("export 100% [") and "MiB/s" in line and "done" in line, screen
    assert out.decode().startswith("sha256 ")
    # every redraw is a bar with a percent, a rate and an ETA or the end
    draws = [d for d in screen.replace("\n", "\r").split("\r") if d.strip()]
    for d in draws:
        assert d.startswith("export ") and "%" in d and "MiB/s" in d, d
        assert "ETA " in d or "done" in d, d


def test_progress_json_lines(file_sr, tmp_path):
    sr = file_sr
    filled(sr)
    res = cli("vol", "export", sr.key, "src", "--format", "vhd", "-o", str(tmp_path / "j.vhd"),
              "--json")
    lines = [json.loads(ln) for ln in res.stderr.decode().splitlines()]
    assert lines, "no progress lines"
    prog = [ln["progress"] for ln in lines]
    assert all(p["what"] == "export" and p["total"] == 2 * SIZE for p in prog)
    assert prog[-1]["done"] == prog[-1]["total"]
    assert [p["done"] for p in prog] == sorted(p["done"] for p in prog)
    assert all(p["rate"] >= 0 and p["eta_s"] >= 0 for p in prog)
    assert json.loads(res.stdout)["format"] == "vhd"  # stdout: the one result

    res = cli("vol", "import", sr.key, str(tmp_path / "j.vhd"), "--format", "vhd", "--json")
    prog = [json.loads(ln)["progress"] for ln in res.stderr.decode().splitlines()]
    assert prog and prog[-1]["done"] == prog[-1]["total"] and prog[-1]["what"] == "import"


def test_nothing_on_a_non_tty(file_sr, tmp_path):
    sr = file_sr
    filled(sr)
    res = export(sr, "src", "qcow2", str(tmp_path / "n.qcow2"))
    assert res.stderr == b""
    assert res.stdout.decode().startswith("sha256 ")
    res = cli("vol", "import", sr.key, str(tmp_path / "n.qcow2"), "--format", "qcow2")
    assert res.stderr == b""


def test_share_and_the_old_spelling(file_sr, tmp_path):
    """vol share/unshare publish over NBD; vol export without --format and
    vol unexport still do, with a note on stderr."""
    need(shutil.which("nbdinfo") is not None, "nbdinfo is not installed")
    sr = file_sr
    filled(sr)
    run = tmp_path / "run"
    env = {"ZFS_LIVE_RUN": str(run)}
    pidfile = str(tmp_path / "s.pid")
    cli("serve", "--daemon", "--socket", str(run / "nbd.sock"), "--pidfile", pidfile,
        env=env)
    pid = int(open(pidfile).read())
    try:
        uri = cli("vol", "share", sr.key, "src", env=env).stdout.decode().strip()
        assert uri.startswith("nbd+unix:///") and str(run) in uri
        info = subprocess.run(["nbdinfo", "--size", uri], capture_output=True, text=True)
        assert info.returncode == 0 and int(info.stdout) == SIZE, info.stderr
        res = cli("vol", "unshare", sr.key, "src", env=env)
        assert res.stderr == b""
        assert subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode != 0

        res = cli("vol", "export", sr.key, "src", env=env)
        assert res.stdout.decode().strip() == uri
        assert "deprecated" in res.stderr.decode() and "vol share" in res.stderr.decode()
        assert subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode == 0
        res = cli("vol", "unexport", sr.key, "src", env=env)
        assert "deprecated" in res.stderr.decode() and "vol unshare" in res.stderr.decode()
        assert subprocess.run(["nbdinfo", "--size", uri], capture_output=True).returncode != 0
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone(pid), "the NBD server to stop")


@pytest.mark.parametrize("kind", ["dir", "zfs"])
def test_other_calls_during_an_import(kind, plugin, tmp_path, tmp_path_factory):
    """While data flows the SR is not locked: a destroy (which on ZFS
    collects hidden volumes nothing depends on) and a create go through,
    the import in progress is not listed and not taken, and completes."""
    if kind == "dir":
        sr = FileSR(plugin, str(tmp_path / "sr"))
    else:
        sr = ZfsSR(Plugin("zfs-live"), f"{zfs_pool(tmp_path_factory)}/c{uuid.uuid4().hex[:8]}")
    doomed = sr.create(size=MiB, name="doomed")
    imp = subprocess.Popen([CLI, "vol", "import", sr.key, "-", "--format", "raw", "--size",
                            str(4 * MiB), "--key", "slow"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = os.urandom(MiB)
    imp.stdin.write(first)
    imp.stdin.flush()
    # the volume exists, hidden, once the import holds its record
    wait_for(lambda: sr.journal(), "the import's intent record")
    assert "slow" not in [v["key"] for v in sr.ls()]
    assert cli("vol", "stat", sr.key, "slow", check=False).returncode != 0
    sr.call("Volume.destroy", key=doomed["key"])
    sr.create(size=MiB, name="made meanwhile")
    rest = os.urandom(3 * MiB)
    imp.stdin.write(rest)
    imp.stdin.close()
    try:
        rc = imp.wait(timeout=120)
    except subprocess.TimeoutExpired:
        imp.kill()  # e.g. blocked on a dataset destroyed under it
        imp.wait()
        raise
    err = imp.stderr.read()
    assert rc == 0, err
    assert sr.read("slow") == first + rest
    assert not sr.journal()


def test_no_checksum(file_sr, tmp_path):
    """--no-checksum: no SHA-256 printed (JSON: null), the same image; an
    import that both skips and verifies a checksum is refused."""
    sr = file_sr
    content = filled(sr)
    img = str(tmp_path / "n.qcow2")
    res = export(sr, "src", "qcow2", img, "--no-checksum")
    assert res.stdout == b"" and res.stderr == b""
    res = json.loads(export(sr, "src", "raw", str(tmp_path / "n.raw"), "--no-checksum",
                            "--json").stdout)
    assert res["sha256"] is None
    out = cli("vol", "import", sr.key, img, "--format", "qcow2", "--no-checksum", "--key",
              "n").stdout.decode()
    assert "sha256" not in out
    assert sr.read("n") == content
    res = cli("vol", "import", sr.key, img, "--format", "qcow2", "--no-checksum",
              "--sha256", hashlib.sha256(content).hexdigest(), check=False)
    assert res.returncode == 1 and b"none to compute" in res.stderr


def test_revert_by_copy_shows_progress(plugin, ext4, tmp_path):
    """ext4 has no reflinks: revert copies the snapshot's data, and says how
    far it is (a bar on a terminal, JSON lines with --json)."""
    sr = FileSR(plugin, os.path.join(ext4, uuid.uuid4().hex[:8]))
    content = filled(sr)
    snap = json.loads(cli("vol", "snapshot", sr.key, "src", "--json").stdout)["key"]
    sr.write("src", b"changed" * 1000, offset=0)
    res = cli("vol", "revert", sr.key, "src", "--to", snap, "--json")
    prog = [json.loads(ln)["progress"] for ln in res.stderr.decode().splitlines()]
    assert prog and prog[-1] == dict(prog[-1], what="revert", done=SIZE, total=SIZE)
    assert sr.read("src") == content
    sr.write("src", b"changed" * 1000, offset=0)
    screen, _ = run_in_pty([CLI, "vol", "revert", sr.key, "src", "--to", snap])
    line = last_line(screen)
    assert line.startswith("revert 100% [") and "MiB/s" in line, screen
    assert sr.read("src") == content
    res = cli("vol", "revert", sr.key, "src", "--to", snap)  # not a terminal
    assert res.stderr == b""
