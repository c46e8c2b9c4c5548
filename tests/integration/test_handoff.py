"""The datapath handoff between two hosts, in xenopsd's order, and the
fence that makes it hold: after Datapath.deactivate, the old host's NBD
connections (those opened before it too) can no longer write -- refused
with EPERM, not dropped -- while the new host's connections, opened before
its activate, read all along and write once it has activated.

The two "hosts" here share one machine and one SR directory: each has its
own host UUID and its own runtime directory (its own NBD server, attach
records and fence pages).  The same handoff between hosts in their own
namespaces over GlusterFS is in test_shared_file.py / test_migration.py."""
import errno
import os
import signal
import subprocess

import pytest

from conftest import Attached, cli, gone, wait_for

HOST_B = "bbbbbbbb-0000-4000-8000-00000000000b"


class OtherHost:
    """The datapath plugin run as another host: its own UUID and run dir."""

    def __init__(self, datapath, tmp_path):
        self.dp = datapath
        self.run_dir = str(tmp_path / "run-b")
        self.env = {"ZFS_LIVE_HOST_UUID": HOST_B, "ZFS_LIVE_RUN": self.run_dir}

    def ok(self, method, **params):
        params.setdefault("dbg", "test")
        res = self.dp.run(method, params, env=self.env)
        assert res.rc == 0, (method, res.stdout, res.stderr)
        return res.value()

    def err(self, method, **params):
        params.setdefault("dbg", "test")
        return self.dp.err(method, params, env=self.env)

    def stop(self):
        try:
            pid = int(open(os.path.join(self.run_dir, "nbd.pid")).read())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        wait_for(lambda: gone(pid), f"host B's NBD server (pid {pid}) to stop")


@pytest.fixture
def host_b(datapath, tmp_path):
    b = OtherHost(datapath, tmp_path)
    yield b
    b.stop()


def connect(socket, export):
    import nbd
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{export}?socket={socket}")
    return h


def refused(h, data, offset):
    import nbd
    with pytest.raises(nbd.Error) as e:
        h.pwrite(data, offset)
    assert e.value.errno in ("EPERM", errno.EPERM), e.value
    return True


def attach_on(plugin, uri, domain):
    be = plugin.ok("Datapath.attach", uri=uri, domain=domain)
    nbd_uri = dict((i[0], i[1]) for i in be["implementations"])["Nbd"]["uri"]
    sock, _, name = nbd_uri.partition("nbd:unix:")[2].partition(":exportname=")
    return sock, name, be


def test_handoff_fences_the_old_hosts_connections(file_sr, datapath, host_b):
    v = file_sr.create(size=8 << 20, name="vm-disk")
    uri = v["uri"][0]
    a = Attached(file_sr, v, datapath, domain="7")
    try:
        datapath.ok("Datapath.activate", uri=uri, domain="7")
        ha = connect(a.socket, a.export)
        ha.pwrite(b"A" * 4096, 0)

        # destination: attach (both hosts attached), reads work, writes not
        sock_b, name_b, be = attach_on(host_b, uri, "9")
        assert "BlockDevice" not in dict((i[0], i[1]) for i in be["implementations"]) or True
        hb = connect(sock_b, name_b)
        assert hb.pread(4096, 0) == b"A" * 4096
        assert refused(hb, b"b" * 4096, 4096)

        # source deactivate: A's connection, opened before, can write no more
        datapath.ok("Datapath.deactivate", uri=uri, domain="7")
        assert refused(ha, b"a" * 4096, 8192)
        assert ha.pread(4096, 0) == b"A" * 4096  # reads still served
        assert refused(hb, b"b" * 4096, 4096)  # nobody holds it between the two

        # destination activate: B's connection, opened before, now writes
        host_b.ok("Datapath.activate", uri=uri, domain="9")
        hb.pwrite(b"B" * 4096, 4096)
        hb.flush()
        assert refused(ha, b"a" * 4096, 8192)

        # source detach: B keeps it; A cannot take it back
        a.detach()
        a = None
        err = datapath.err("Datapath.activate", {"dbg": "t", "uri": uri, "domain": "7"})
        assert err["params"][0] == "Activated_on_another_host"
        hb.pwrite(b"C" * 4096, 8192)
        hb.flush()
        assert file_sr.read(v["key"], 0, 3 * 4096) == b"A" * 4096 + b"B" * 4096 + b"C" * 4096
        ha.shutdown()
        hb.shutdown()
        host_b.ok("Datapath.deactivate", uri=uri, domain="9")
        host_b.ok("Datapath.detach", uri=uri, domain="9")
    finally:
        if a:
            a.detach()


def test_idle_volume_is_open_to_writers_that_never_activate(file_sr, datapath):
    """After a VM's shutdown (deactivate, detach) the volume is writable
    again by a client that never activates (vol share, Ganeti): the fence
    holds only while some host's activation is in force."""
    v = file_sr.create(size=8 << 20)
    uri = v["uri"][0]
    a = Attached(file_sr, v, datapath, domain="3")
    datapath.ok("Datapath.activate", uri=uri, domain="3")
    datapath.ok("Datapath.deactivate", uri=uri, domain="3")
    h = connect(a.socket, a.export)
    assert refused(h, b"x" * 512, 0)
    h.shutdown()
    a.detach()
    a = Attached(file_sr, v, datapath, domain="4")  # attached, never activated
    try:
        h = connect(a.socket, a.export)
        h.pwrite(b"y" * 512, 0)
        h.shutdown()
    finally:
        a.detach()


def test_takeover_of_a_host_that_died_while_active(file_sr, datapath, host_b):
    v = file_sr.create(size=8 << 20)
    uri = v["uri"][0]
    sock_b, name_b, _ = attach_on(host_b, uri, "9")
    host_b.ok("Datapath.activate", uri=uri, domain="9")
    hb = connect(sock_b, name_b)
    hb.pwrite(b"B" * 4096, 0)
    hb.flush()
    host_b.stop()  # host B "dies" while active: nothing deactivates
    a = Attached(file_sr, v, datapath, domain="7")
    try:
        err = datapath.err("Datapath.activate", {"dbg": "t", "uri": uri, "domain": "7"})
        assert err["params"][0] == "Activated_on_another_host"
        h = connect(a.socket, a.export)
        assert refused(h, b"a" * 4096, 4096)  # B's claim holds while nobody acts
        r = cli("vol", "takeover", file_sr.key, v["key"], "--domain", "7")
        assert f"taken over from host {HOST_B}" in r.stderr.decode(), r.stderr
        assert h.pread(4096, 0) == b"B" * 4096  # data intact up to B's flush
        h.pwrite(b"A" * 4096, 4096)  # the same connection: A holds it now
        h.shutdown()
        datapath.ok("Datapath.deactivate", uri=uri, domain="7")
    finally:
        a.detach()


def test_takeover_fences_an_old_host_that_is_still_alive(file_sr, datapath, host_b):
    """The lease: a takeover while the old host's server still runs (cut off
    from its toolstack, say) -- that server sees the new generation within a
    second and refuses its connections' writes before the takeover returns."""
    v = file_sr.create(size=8 << 20)
    uri = v["uri"][0]
    sock_b, name_b, _ = attach_on(host_b, uri, "9")
    host_b.ok("Datapath.activate", uri=uri, domain="9")
    hb = connect(sock_b, name_b)
    hb.pwrite(b"B" * 4096, 0)
    a = Attached(file_sr, v, datapath, domain="7")
    try:
        r = cli("vol", "takeover", file_sr.key, v["key"], "--domain", "7")
        assert f"taken over from host {HOST_B}" in r.stderr.decode(), r.stderr
        assert refused(hb, b"b" * 4096, 0)
        assert hb.pread(4096, 0) == b"B" * 4096
        h = connect(a.socket, a.export)
        h.pwrite(b"A" * 4096, 4096)
        h.shutdown()
        hb.shutdown()
        datapath.ok("Datapath.deactivate", uri=uri, domain="7")
        host_b.ok("Datapath.detach", uri=uri, domain="9")
    finally:
        a.detach()
