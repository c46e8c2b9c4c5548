"""The operator's command line as a person and a script meet it: help on
every command, options in any order, exit status 0/1/2, --json on every
command and on its errors, sizes as qemu-img takes them, a terminal's view
(pseudo-terminal); doctor on a whole install root (a copy made here with
scripts/install.sh); the SMlog lines of a plugin call (dbg and duration);
the configuration file; the man pages."""
import itertools
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import CLI, ROOT, WRAP, Plugin, cli, gone, need, wait_for

REPO = os.path.join(os.path.dirname(__file__), "..", "..")
INTERNAL = {"relay", "install-layout", "fault-points"}


def run(*args, env=None, input=None):
    """The CLI, whatever its exit status."""
    return cli(*args, check=False, env=env, input=input)


def listed_commands():
    out = run("help", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["commands"]


def usage_error(p, what):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert what.encode() in p.stderr, p.stderr


def json_error(p, status, code=None):
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    err = json.loads(p.stdout)["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code, err
    return err


# --- help ---------------------------------------------------------------------

def test_help_lists_the_commands_but_not_the_internal_ones(installed):
    text = run("help").stdout.decode()
    names = {c["command"] for c in listed_commands()}
    assert {"sr create", "vol create", "doctor", "serve", "version"} <= names
    assert not names & INTERNAL
    for internal in INTERNAL:
        assert f"\n  {internal} " not in text
        # still there for those who call them, with their help
        assert run(internal, "--help").returncode == 0
    for n in names:
        assert f"\n  {n} " in text


def test_no_command_prints_the_list_and_is_a_usage_error(installed):
    p = run()
    assert p.returncode == 2 and b"vol create" in p.stderr
    for asked in (["--help"], ["-h"], ["help"]):
        p = run(*asked)
        assert p.returncode == 0 and b"vol create" in p.stdout, asked


@pytest.mark.parametrize("group", ["sr", "vol"])
def test_a_group_alone_lists_its_subcommands(installed, group):
    p = run(group)
    assert p.returncode == 2, p.stderr
    assert f"{group} create".encode() in p.stderr and b"needs a subcommand" in p.stderr
    for asked in ([group, "--help"], [group, "-h"], ["help", group]):
        p = run(*asked)
        assert p.returncode == 0 and f"  {group} create ".encode() in p.stdout, asked
        assert b"\n  serve " not in p.stdout  # its own subcommands only
    err = json_error(run(group, "--json"), 2, "usage")
    assert "subcommand" in err["message"]


def test_every_command_has_help_three_ways(installed):
    for c in listed_commands() + [{"command": n} for n in INTERNAL]:
        words = c["command"].split()
        outs = [run(*words, "--help"), run(*words, "-h"), run("help", *words),
                run("--help", *words)]
        for p in outs:
            assert p.returncode == 0, (words, p.stderr)
            assert p.stdout == outs[0].stdout, words
        text = outs[0].stdout.decode()
        assert text.startswith(f"usage: zfs-live {c['command']}"), text
        assert "--json" in text and "Exit status" in text


def test_help_after_the_arguments_and_options(installed):
    p = run("vol", "create", "/nowhere", "--name", "x", "--size", "1G", "--help")
    assert p.returncode == 0 and p.stdout.startswith(b"usage: zfs-live vol create SR")
    assert not os.path.exists("/nowhere")


def test_every_option_in_a_usage_is_accepted(installed):
    """The options a command's help shows are the ones it parses: each one
    with a value where it takes one, then --help (parsing happens first: an
    unknown option would be exit 2)."""
    for c in listed_commands() + [{"command": n} for n in INTERNAL]:
        words = c["command"].split()
        opts = json.loads(run(*words, "--help", "--json").stdout)["options"]
        assert {"option": "--json", "value": False} in opts
        for o in opts:
            args = [o["option"]] + (["v"] if o["value"] else [])
            p = run(*words, *args, "--help")
            assert p.returncode == 0, (words, args, p.stderr)
            if o["value"]:  # and without its value: a usage error
                usage_error(run(*words, o["option"]), "needs a value")


def test_unknown_options_and_commands_are_usage_errors(installed):
    for c in listed_commands():
        words = c["command"].split()
        p = run(*words, "--bogus")
        usage_error(p, "unknown option --bogus")
        assert f"usage: zfs-live {c['command']}".encode() in p.stderr
        assert json_error(run(*words, "--bogus", "--json"), 2, "usage")["message"] == \
            "unknown option --bogus"
        usage_error(run(*words, "-q"), "unknown option -q")
    usage_error(run("frobnicate"), "unknown command 'frobnicate'")
    usage_error(run("vol", "frobnicate"), "unknown command 'vol frobnicate'")
    json_error(run("--json", "frobnicate"), 2, "usage")
    usage_error(run("sr", "stat"), "wrong number of arguments")
    usage_error(run("vol", "stat", "/a", "b", "c"), "wrong number of arguments")


# --- option order, exit status ------------------------------------------------

def test_options_in_any_order(file_sr):
    groups = [[file_sr.key], ["--name", "n"], ["--size", "1M"], ["--description", "d"]]
    keys = set()
    for i, perm in enumerate(itertools.permutations(groups)):
        args = [a for g in perm for a in g]
        p = run("vol", "create", *args, "--key", f"k{i}", "--json")
        assert p.returncode == 0, (args, p.stderr)
        v = json.loads(p.stdout)
        assert (v["name"], v["description"], v["virtual_size"]) == ("n", "d", 1 << 20)
        keys.add(v["key"])
    assert len(keys) == 24
    # --json before the command, between the words, "--option=value"
    for args in (["--json", "vol", "stat", file_sr.key, "k0"],
                 ["vol", "--json", "stat", file_sr.key, "k0"],
                 ["vol", "stat", file_sr.key, "--json", "k0"]):
        p = run(*args)
        assert p.returncode == 0 and json.loads(p.stdout)["key"] == "k0", args
    p = run("vol", "snapshot", "--key=snap", file_sr.key, "--json", "k0")
    assert p.returncode == 0 and json.loads(p.stdout)["key"] == "snap", p.stderr
    p = run("vol", "set", file_sr.key, "--type", "file-live", "k0", "vdi-type", "user")
    assert p.returncode == 0, p.stderr
    # "--" ends the options: a value that starts with a dash
    p = run("vol", "set", file_sr.key, "k0", "--", "tagsb", "-x")
    assert p.returncode == 0, p.stderr
    assert json.loads(run("vol", "stat", file_sr.key, "k0", "--json").stdout)["keys"] == \
        {"vdi-type": "user", "tagsb": "-x"}


def test_exit_status(file_sr):
    assert run("vol", "list", file_sr.key).returncode == 0
    p = run("vol", "stat", file_sr.key, "nosuchkey")
    assert p.returncode == 1 and b"nosuchkey" in p.stderr
    usage_error(run("vol", "create", file_sr.key, "--name", "x"), "needs --name and --size")
    usage_error(run("vol", "create", file_sr.key, "--name"), "--name needs a value")


# --- --json on every command --------------------------------------------------

def json_ok(*args, input=None):
    p = run(*args, "--json", input=input)
    assert p.returncode == 0, (args, p.stderr)
    return json.loads(p.stdout)


def test_json_on_every_command(file_sr, tmp_path):
    """Each listed command once with --json, stdout parsed as JSON; the
    walk fails on a listed command this table lacks."""
    sr = file_sr.key
    done = set()

    def ok(cmd, *args, input=None):
        done.add(cmd)
        return json_ok(*cmd.split(), *args, input=input)

    ok("sr create", "--type", "file-live", "--path", str(tmp_path / "sr2"))
    ok("sr probe", "--type", "file-live", "--path", str(tmp_path / "sr2"))
    assert ok("sr stat", sr)["sr"] == sr
    ok("sr set-name", sr, "new name")
    ok("sr set-description", sr, "text")
    v = ok("vol create", sr, "--name", "v", "--size", "1M")
    k = v["key"]
    assert ok("vol stat", sr, k)["key"] == k
    assert [x["key"] for x in ok("vol list", sr)] == [k]
    assert [x["key"] for x in ok("sr ls", sr)] == [k]
    ok("vol cbt-enable", sr, k)
    s1 = ok("vol snapshot", sr, k)["key"]
    assert ok("vol write", sr, k, "--offset", "64k", input=b"x" * 4096) == {}
    s2 = ok("vol snapshot", sr, k)["key"]
    cb = ok("vol changed-blocks", sr, s1, s2)
    assert cb["ranges"] == [{"offset": 65536, "length": 65536}]
    assert cb["changed_blocks"] == 1 and cb["block_size"] == 65536
    ok("vol data-destroy", sr, s1)
    c = ok("vol clone", sr, s2)["key"]
    ok("vol rename", sr, c, "renamed")
    ok("vol set-description", sr, c, "d")
    ok("vol set", sr, c, "vdi-type", "user")
    ok("vol unset", sr, c, "vdi-type")
    ok("vol resize", sr, c, "2M")
    ok("vol revert", sr, k, "--to", s2)
    ok("vol cbt-disable", sr, k)
    assert "disk" in ok("vol xen-disk", sr, c, "--driver", "file")
    ok("vol takeover", sr, c)
    with open(tmp_path / "raw.img", "wb") as f:
        f.truncate(1 << 20)
    ok("vol adopt", sr, str(tmp_path / "raw.img"), "--key", "adopted")
    e = ok("vol share", sr, c)
    assert e["uri"].startswith("nbd+unix:///") and e["export"] in e["uri"]
    ok("vol unshare", sr, c)
    e = ok("vol export", sr, c)  # the old spelling, still working
    assert e["uri"].startswith("nbd+unix:///") and e["export"] in e["uri"]
    ok("vol unexport", sr, c)
    img = str(tmp_path / "c.qcow2")
    x = ok("vol export", sr, c, "--format", "qcow2", "-o", img)
    assert len(x["sha256"]) == 64
    i = ok("vol import", sr, img, "--format", "qcow2", "--sha256", x["sha256"])
    cp = ok("vol copy", sr, i["key"], "--to", sr, "--name", "copied")
    assert cp["name"] == "copied" and cp["key"] != i["key"]
    ok("vol destroy", sr, "adopted")
    d = ok("doctor")
    assert d["problems"] == 0 and d["checks"]
    assert ok("version")["version"]
    assert ok("help")["commands"]
    # the ones whose success is no JSON document: their errors are
    done.add("vol read")
    err = json_error(run("vol", "read", sr, k, "--json"), 2, "usage")
    assert "--json" in err["message"]
    done.add("serve")
    err = json_error(run("serve", "--tls=require", "--socket", str(tmp_path / "s"),
                         "--control", "", "--json"), 1)
    assert "credentials" in err["message"]
    done.add("replicate")  # its results: test_replicate.py; its errors are JSON
    err = json_error(run("replicate", sr, k, "--to-host", "127.0.0.1:1", "--to", sr,
                         "--json"), 1)
    assert "127.0.0.1:1" in err["message"]
    assert not ok("vol stat", sr, k)["cbt_enabled"]  # a failed run changed nothing
    done.add("sr destroy")
    json_error(run("sr", "destroy", sr, "--json"), 1)  # not empty
    missing = {c["command"] for c in listed_commands()} - done
    assert not missing, f"commands without a --json case here: {missing}"


def test_json_errors(file_sr):
    err = json_error(run("vol", "stat", file_sr.key, "nosuchkey", "--json"), 1, "no-volume")
    assert "nosuchkey" in err["message"] and err["errno"]
    json_error(run("--json", "sr", "stat", "/nonexistent-sr"), 1, "no-sr")
    json_error(run("vol", "create", "--json", file_sr.key, "--name", "x", "--size", "-1"),
               2, "usage")


# --- sizes --------------------------------------------------------------------

@pytest.mark.parametrize("text,size", [
    ("3145728", 3 << 20), ("1.5G", 1536 << 20), ("512M", 512 << 20),
    ("10GiB", 10 << 30), ("2m", 2 << 20), ("2MB", 2 << 20), ("0.5g", 512 << 20),
    ("4194304b", 4 << 20), ("1.25G", 1280 << 20),
])
def test_sizes(file_sr, text, size):
    v = json_ok("vol", "create", file_sr.key, "--name", "s", "--size", text)
    assert v["virtual_size"] == size


def test_small_sizes_and_offsets(file_sr):
    v = json_ok("vol", "create", file_sr.key, "--name", "s", "--size", "1M")
    data = bytes(range(256)) * 16
    assert run("vol", "write", file_sr.key, v["key"], input=data).returncode == 0
    p = run("vol", "read", file_sr.key, v["key"], "--offset", "1k", "--length", "0.5k")
    assert p.returncode == 0 and p.stdout == data[1024:1536]
    p = run("vol", "read", file_sr.key, v["key"], "--offset", "1.5K", "--length", "4")
    assert p.stdout == data[1536:1540]


@pytest.mark.parametrize("text", ["-1", "-1M", "1.5", "1X", "", "G", "1GG", "1 G",
                                  " 1G", "1e3", "1.2.3M", "16E", "99999999999999999999",
                                  "9223372036854775808", "+1M", "0x10", "1bB"])
def test_bad_sizes_are_refused(file_sr, text):
    p = run("vol", "create", file_sr.key, "--name", "bad", "--size", text)
    assert p.returncode == 2, (text, p.stderr)
    assert b"size" in p.stderr
    assert json.loads(run("vol", "list", file_sr.key, "--json").stdout) == []


# --- a terminal's view --------------------------------------------------------

def on_terminal(*args):
    """Run the CLI on a pseudo-terminal as a person would; its output as
    the terminal shows it, and the exit status."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv((WRAP or [CLI])[0], [*WRAP, CLI, *args])
    out = b""
    while True:
        r, _, _ = select.select([fd], [], [], 60)
        assert r, "no output within 60 s"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return out.decode(), os.waitstatus_to_exitcode(status)


def test_interactive_output_on_a_terminal(file_sr):
    text, rc = on_terminal("help")
    assert rc == 0
    lines = text.split("\r\n")
    assert lines[0].startswith("zfs-live ") and "usage: zfs-live COMMAND" in text
    assert any(line.startswith("  vol create ") and "create a volume" in line
               for line in lines)
    v = json_ok("vol", "create", file_sr.key, "--name", "my disk", "--size", "1.5G")
    text, rc = on_terminal("vol", "list", file_sr.key)
    assert rc == 0
    header, row = text.split("\r\n")[:2]
    assert header.split() == ["KEY", "KIND", "SIZE", "ALLOCATED", "NAME"]
    assert row.split()[:4] == [v["key"], "volume", "1.5", "GiB"]
    assert row.endswith("my disk")
    text, rc = on_terminal("vol", "stat", file_sr.key, "nosuchkey")
    assert rc == 1 and text.startswith("zfs-live: ") and "nosuchkey" in text
    text, rc = on_terminal("vol", "create", "--bogus")
    assert rc == 2 and "usage: zfs-live vol create SR --name N --size SIZE" in text


# --- doctor -------------------------------------------------------------------

@pytest.fixture
def root(installed, tmp_path):
    """An install root of its own (scripts/install.sh DESTDIR), to break."""
    dest = tmp_path / "root"
    binary = os.path.join(ROOT, "usr/libexec/zfs-live/zfs-live")
    subprocess.run([os.path.join(REPO, "scripts/install.sh"), binary, str(dest), "/usr"],
                   check=True, capture_output=True, timeout=120)
    return dest


def doctor(root, *args, conf=None):
    env = dict(os.environ)
    env["ZFS_LIVE_CONF_DIR"] = str(conf or root / "etc/zfs-live")
    p = subprocess.run([*WRAP, str(root / "usr/sbin/zfs-live"), "doctor", "--json", *args],
                       capture_output=True, env=env, timeout=120)
    rep = json.loads(p.stdout)
    checks = {}
    for c in rep["checks"]:
        checks.setdefault(c["check"], []).append(c)
    return p.returncode, checks, rep


def problems(checks):
    return {k: [c["message"] for c in v if c["status"] == "problem"]
            for k, v in checks.items() if any(c["status"] == "problem" for c in v)}


def test_doctor_on_a_fresh_install(root):
    rc, checks, rep = doctor(root)
    assert rc == 0 and rep["problems"] == 0, problems(checks)
    for name in ("config", "xapi-plugins", "xapi-sr-types", "xapi-storage-script",
                 "ganeti-provider", "ganeti-log-dir", "nbd-server", "tls-psk",
                 "kernel-loop", "kernel-io_uring", "zfs"):
        assert name in checks, name
    assert str(root) in checks["xapi-plugins"][0]["message"]
    assert "file-live, zfs-live" in checks["xapi-sr-types"][0]["message"]
    # the human form: one line per check, and the count
    env = dict(os.environ, ZFS_LIVE_CONF_DIR=str(root / "etc/zfs-live"))
    text = subprocess.run([*WRAP, str(root / "usr/sbin/zfs-live"), "doctor"],
                          capture_output=True, text=True, env=env, timeout=120).stdout
    assert "\nchecks:\n" in text and "\n0 problems," in text
    assert "  ok       xapi-plugins " in text


def test_doctor_names_a_broken_plugin_link(root):
    link = root / "usr/libexec/xapi-storage-script/volume/org.xen.xapi.storage.file-live" \
        / "SR.create"
    os.unlink(link)
    os.symlink("/bin/true", link)
    rc, checks, _ = doctor(root)
    assert rc == 1
    assert list(problems(checks)) == ["xapi-plugins"]
    assert f"{link} does not lead to" in problems(checks)["xapi-plugins"][0]
    os.unlink(link)
    os.symlink("../../../zfs-live/nonexistent", link)
    rc, checks, _ = doctor(root)
    assert rc == 1 and f"{link} is missing or broken" in problems(checks)["xapi-plugins"][0]


def test_doctor_names_a_missing_provider_dir_and_log_dir(root):
    shutil.rmtree(root / "srv/ganeti/extstorage/zfs-live")
    rc, checks, _ = doctor(root)
    assert rc == 1 and list(problems(checks)) == ["ganeti-provider"]
    assert "provider directory is missing" in problems(checks)["ganeti-provider"][0]
    assert f"{root}/srv/ganeti/extstorage/zfs-live" in problems(checks)["ganeti-provider"][0]
    # no trace of Ganeti at all: an XAPI host, fine
    os.rmdir(root / "var/log/ganeti/extstorage")
    rc, checks, _ = doctor(root)
    assert rc == 0 and "not a Ganeti node" in checks["ganeti-provider"][0]["message"]
    # Ganeti's configuration is there: both are missing
    os.makedirs(root / "etc/ganeti")
    rc, checks, _ = doctor(root)
    assert rc == 1 and set(problems(checks)) == {"ganeti-provider", "ganeti-log-dir"}
    assert "/var/log/ganeti/extstorage is missing" in problems(checks)["ganeti-log-dir"][0]


def test_doctor_on_a_root_with_neither_side(root):
    shutil.rmtree(root / "srv")
    shutil.rmtree(root / "var")
    shutil.rmtree(root / "usr/libexec/xapi-storage-script")
    rc, checks, _ = doctor(root)
    assert rc == 1 and list(problems(checks)) == ["install"]


def test_doctor_bad_pool_is_a_problem(installed):
    p = run("doctor", "--pool", "nosuchpool-zl", "--json")
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    bad = [c for c in rep["checks"] if c["status"] == "problem"]
    assert bad and all("nosuchpool-zl" in c["message"] or c["check"] == "zfs" for c in bad)
    assert bad[0]["check"] in ("zfs-pool", "zfs")
    text = run("doctor", "--pool", "nosuchpool-zl").stdout.decode()
    assert "PROBLEM" in text and "nosuchpool-zl" in text


def test_doctor_names_a_bad_config_line(root, tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "zfs-live.conf").write_text("# ok\nlog_level = info\nnbd_tsl = on\n")
    rc, checks, _ = doctor(root, conf=conf)
    assert rc == 1 and list(problems(checks)) == ["config"]
    msg = problems(checks)["config"][0]
    assert f"{conf}/zfs-live.conf:3: unknown key 'nbd_tsl'" in msg


def test_doctor_sees_the_running_server_and_a_stale_socket(root, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, ZFS_LIVE_RUN=str(run_dir))
    zl = str(root / "usr/sbin/zfs-live")
    p = subprocess.run([*WRAP, zl, "serve", "--daemon"], env=env, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    pid = int((run_dir / "nbd.pid").read_text())
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setenv("ZFS_LIVE_RUN", str(run_dir))
            rc, checks, _ = doctor(root)
        assert rc == 0, problems(checks)
        assert checks["nbd-server"][0]["message"].startswith("answering on")
        assert checks["nbd-version"][0]["status"] == "ok"
        assert "as installed" in checks["nbd-version"][0]["message"]
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone(pid), "the server to stop")
    # a socket nobody answers on
    sock = run_dir / "nbd.sock"
    if sock.exists():
        sock.unlink()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))
    s.close()
    with pytest.MonkeyPatch.context() as m:
        m.setenv("ZFS_LIVE_RUN", str(run_dir))
        rc, checks, _ = doctor(root)
    assert rc == 1 and list(problems(checks)) == ["nbd-server"]
    assert "no server answers" in problems(checks)["nbd-server"][0]


# --- logging ------------------------------------------------------------------

def log_lines(res):
    return [line for line in res.stderr.decode().splitlines()
            if line.startswith("zfs-live[")]


def test_every_smlog_line_carries_dbg_and_the_last_the_duration(file_sr, tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "zfs-live.conf").write_text("log_level = debug\n")
    p = Plugin("file-live")
    dbg = "OpaqueRef:5b1c-task\n{\"traceparent\":\"00-ab-cd-01\"}"
    res = p.run("Volume.create", {"dbg": dbg, "sr": file_sr.key, "name": "d",
                                  "description": "", "size": 1 << 20, "sharable": False},
                env={"ZFS_LIVE_CONF_DIR": str(conf)})
    assert res.rc == 0
    lines = log_lines(res)
    assert len(lines) >= 2, lines  # the debug lines of the call, then its end
    want = 'Volume.create dbg=OpaqueRef:5b1c-task\\n{"traceparent":"00-ab-cd-01"}: '
    for line in lines:
        assert want in line, line
    assert any("params=" in line for line in lines)
    end = lines[-1].rsplit(": ", 1)[1]
    assert end.startswith("ok in ") and end.endswith(" ms"), end
    float(end[len("ok in "):-len(" ms")])
    # a failure: its line too
    res = p.run("Volume.stat", {"dbg": "task-77", "sr": file_sr.key, "key": "nope"})
    assert res.rc != 0
    last = log_lines(res)[-1]
    assert "Volume.stat dbg=task-77: failed in " in last and " ms: " in last


def test_log_level_from_the_config_file(file_sr, tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    p = Plugin("file-live")
    params = {"dbg": "t1", "sr": file_sr.key}
    env = {"ZFS_LIVE_CONF_DIR": str(conf), "ZFS_LIVE_DEBUG": ""}
    assert [line for line in log_lines(p.run("SR.stat", params, env=env))
            if "ok in" in line]  # info by default
    (conf / "zfs-live.conf").write_text("log_level = warning\n")
    assert log_lines(p.run("SR.stat", params, env=env)) == []
    (conf / "zfs-live.conf").write_text("log_level = loud\n")
    res = p.run("SR.stat", params, env=env)
    assert res.rc == 0  # a bad file does not stop the plugins: they say so
    assert any(f"configuration ignored: {conf}/zfs-live.conf:1: log_level must be" in line
               for line in log_lines(res)), log_lines(res)


# --- the configuration file and serve ----------------------------------------

@pytest.mark.parametrize("text,line,what", [
    ("nbd_socket /x\n", 1, "not 'key = value'"),
    ("\n# c\nbogus = 1\n", 3, "unknown key 'bogus'"),
    ("nbd_tls = maybe\n", 1, "nbd_tls must be off, on or require"),
    ("tls_psk = relative/path\n", 1, "tls_psk must be an absolute path"),
    ("log_level = info\nlog_level = debug\n", 2, "key 'log_level' given twice"),
])
def test_serve_refuses_a_bad_config_line(installed, tmp_path, text, line, what):
    (tmp_path / "zfs-live.conf").write_text(text)
    p = run("serve", "--socket", str(tmp_path / "s.sock"), "--control", "",
            env={"ZFS_LIVE_CONF_DIR": str(tmp_path), "ZFS_LIVE_RUN": str(tmp_path / "run")})
    assert p.returncode == 1
    assert f"{tmp_path}/zfs-live.conf:{line}: {what}".encode() in p.stderr, p.stderr
    assert not (tmp_path / "s.sock").exists()


def test_serve_takes_its_defaults_from_the_config(installed, tmp_path):
    sock = tmp_path / "from-conf.sock"
    (tmp_path / "zfs-live.conf").write_text(
        f"# the NBD server\n  nbd_socket = {sock}  \n\nnbd_tls=off\n")
    run_dir = tmp_path / "run"
    env = {"ZFS_LIVE_CONF_DIR": str(tmp_path), "ZFS_LIVE_RUN": str(run_dir)}
    p = run("serve", "--daemon", "--control", "", "--pidfile", str(tmp_path / "pid"),
            env=env)
    assert p.returncode == 0, p.stderr
    pid = int((tmp_path / "pid").read_text())
    try:
        assert sock.exists() and not (run_dir / "nbd.sock").exists()
        info = subprocess.run(["nbdinfo", "--list", f"nbd+unix://?socket={sock}"],
                              capture_output=True, timeout=60)
        assert info.returncode == 0, info.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: gone(pid), "the server to stop")


# --- man pages ----------------------------------------------------------------

PAGES = ["zfs-live.8", "zfs-live-serve.8", "zfs-live-ganeti.8", "zfs-live-xapi.8"]


@pytest.mark.parametrize("page", PAGES)
def test_man_page_renders_without_warnings(page):
    need(shutil.which("groff"), "groff")
    path = os.path.join(REPO, "docs", page)
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with open(path) as f:
        sections = [line[4:].strip() for line in f if line.startswith(".SH ")]
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXAMPLES", "TROUBLESHOOTING",
                    "EXIT STATUS", "SEE ALSO"):
        assert section in sections, (page, section)
    if shutil.which("man"):
        p = subprocess.run(["man", "-l", "-Tutf8", path], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, MANWIDTH="80"))
        assert p.returncode == 0 and "warning" not in p.stderr, p.stderr


def test_man_pages_document_what_the_cli_does():
    def page(name):
        with open(os.path.join(REPO, "docs", name)) as f:
            return f.read()
    main = page("zfs-live.8")
    for text in ('"error"', "usage", "no\\-volume", "zfs\\-live.conf", "log_level",
                 "ZFS_LIVE_CONF_DIR", "\\-\\-root", "1.5G"):
        assert text in main, text
    g = page("zfs-live-ganeti.8")
    assert "enabled\\-disk\\-templates" in g and "every node" in g and "2.14" in g
    x = page("zfs-live-xapi.8")
    assert "host\\-uuid=" in x and "shared=true" in x and "sm\\-list" in x
