"""A shared zfs-live SR: the pool on a storage host S, hosts A and B
elsewhere.  Every call A or B makes about the SR runs on S, carried by the
NBD handshake over TLS with the calling host's own PSK; A's and B's
datapaths attach through a local relay socket (qdisk over NBD) whose
connections reach S's server over TLS, where the fence knows them by
their PSK identity.

Here the three hosts share one machine: each has its own host UUID, run
directory (NBD server, relays, records) and PSK; S's server listens on
127.0.0.1.  The same across network namespaces is in test_migration.py."""
import os
import signal
import socket
import subprocess
import uuid as uuidlib

import pytest

from conftest import CLI, gone, wait_for, zfs_cmd, zfs_pool
from test_handoff import connect, refused

S, A, B, C = (f"{c * 8}-0000-4000-8000-{c * 12}" for c in "5abc")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Host:
    def __init__(self, uuid, tmp, plugin, datapath):
        self.uuid = uuid
        self.run = str(tmp / f"run-{uuid[:1]}")
        self.conf = str(tmp / f"etc-{uuid[:1]}")
        os.makedirs(os.path.join(self.conf, "tls"), exist_ok=True)
        self.key = os.urandom(32).hex()
        with open(os.path.join(self.conf, "tls", "host.psk"), "w") as f:
            f.write(f"{uuid}:{self.key}\n")
        self.env = {"ZFS_LIVE_HOST_UUID": uuid, "ZFS_LIVE_RUN": self.run,
                    "ZFS_LIVE_CONF_DIR": self.conf}
        self.plugin, self.dp = plugin, datapath

    def _run(self, p, method, params):
        params.setdefault("dbg", "test")
        return p.run(method, params, env=self.env)

    def ok(self, method, **params):
        p = self.dp.plugin if method.startswith("Datapath.") else self.plugin
        res = self._run(p, method, params)
        assert res.rc == 0, (method, res.stdout, res.stderr.decode(errors="replace"))
        return res.value()

    def err(self, method, **params):
        p = self.dp.plugin if method.startswith("Datapath.") else self.plugin
        res = self._run(p, method, params)
        assert res.rc != 0, (method, res.stdout)
        return res.value()

    def pids(self):
        out = []
        for root, _, files in os.walk(self.run):
            out += [os.path.join(root, f) for f in files if f.endswith(".pid")]
        return out

    def stop(self):
        for pf in self.pids():
            try:
                pid = int(open(pf).read())
                os.kill(pid, signal.SIGTERM)
                wait_for(lambda: gone(pid), f"process {pid} of {pf} to stop")
            except (OSError, ValueError):
                pass


@pytest.fixture
def cluster(zplugin, datapath, tmp_path, tmp_path_factory):
    pool = zfs_pool(tmp_path_factory)
    hosts = {u: Host(u, tmp_path, zplugin, datapath) for u in (S, A, B, C)}
    keys = str(tmp_path / "keys.psk")  # S's server knows A and B, not C
    with open(keys, "w") as f:
        for u in (A, B):
            f.write(f"{u}:{hosts[u].key}\n")
    port = free_port()
    s = hosts[S]
    os.makedirs(s.run, exist_ok=True)
    subprocess.run([CLI, "serve", "--daemon", "--socket", os.path.join(s.run, "nbd.sock"),
                    "--tcp", f"127.0.0.1:{port}", "--tls", "require", "--tls-psk", keys,
                    "--pidfile", os.path.join(s.run, "nbd.pid")],
                   env={**os.environ, **s.env}, check=True, timeout=30)
    ds = f"{pool}/shared{uuidlib.uuid4().hex[:6]}"
    config = {"path": ds, "storage-host": f"127.0.0.1:{port}", "storage-host-uuid": S}
    yield hosts, config, ds
    for h in hosts.values():
        h.stop()
    zfs_cmd("zfs", "destroy", "-r", ds, check=False)


def test_calls_from_other_hosts_run_on_the_storage_host(cluster):
    hosts, config, ds = cluster
    s, a, b, c = (hosts[u] for u in (S, A, B, C))
    # SR.create from a host that is not the storage host (xapi's master)
    out = a.ok("SR.create", uuid=str(uuidlib.uuid4()), configuration=config,
               name="shared", description="")
    assert out["storage-host"] == config["storage-host"]
    key_s = s.ok("SR.attach", configuration=out)
    # probe from another host: S answers, the SR is there, complete
    found = b.ok("SR.probe", configuration=config)
    assert [p["sr"]["sr"] for p in found if p["complete"]] == [key_s], found
    key_a = a.ok("SR.attach", configuration=out)  # found through S
    assert key_a == key_s
    st = a.ok("SR.stat", sr=key_a)
    assert st["clustered"] is True
    v = a.ok("Volume.create", sr=key_a, name="vm", description="", size=8 << 20,
             sharable=False)
    # made on S's pool, seen the same from every host
    assert [x["key"] for x in s.ok("SR.ls", sr=key_s)] == [v["key"]]
    assert b.ok("SR.attach", configuration=out) == key_s
    assert b.ok("Volume.stat", sr=key_s, key=v["key"])["uuid"] == v["uuid"]
    # a host whose key S does not know gets a clear refusal, nothing else
    e = c.err("SR.attach", configuration=out)
    assert "storage host" in " ".join(map(str, e["params"])), e
    assert [x["key"] for x in s.ok("SR.ls", sr=key_s)] == [v["key"]]
    # SR.detach on A lets go on A only
    assert a.ok("SR.detach", sr=key_a) is None
    assert s.ok("SR.stat", sr=key_s)["sr"] == key_s
    a.ok("SR.attach", configuration=out)
    a.ok("Volume.destroy", sr=key_a, key=v["key"])
    assert s.ok("SR.ls", sr=key_s) == []


def attach(host, uri, domain):
    be = host.ok("Datapath.attach", uri=uri, domain=domain)
    impls = dict((i[0], i[1]) for i in be["implementations"])
    assert impls["XenDisk"]["backend_type"] == "qdisk"  # no device: NBD over the relay
    assert "BlockDevice" not in impls
    sock, _, name = impls["Nbd"]["uri"].partition("nbd:unix:")[2].partition(":exportname=")
    assert sock.startswith(host.run)  # a local socket, this host's relay
    return sock, name


def test_remote_datapath_handoff_is_fenced_on_the_storage_host(cluster):
    hosts, config, ds = cluster
    s, a, b = (hosts[u] for u in (S, A, B))
    out = s.ok("SR.create", uuid=str(uuidlib.uuid4()), configuration=config,
               name="shared", description="")
    key = a.ok("SR.attach", configuration=out)
    b.ok("SR.attach", configuration=out)
    v = a.ok("Volume.create", sr=key, name="vm", description="", size=8 << 20,
             sharable=False)
    uri = v["uri"][0]

    sock_a, name = attach(a, uri, "1")
    a.ok("Datapath.activate", uri=uri, domain="1")
    ha = connect(sock_a, name)
    ha.pwrite(b"A" * 4096, 0)
    ha.flush()

    sock_b, name_b = attach(b, uri, "1")  # the same domain id on another host
    hb = connect(sock_b, name_b)
    assert hb.pread(4096, 0) == b"A" * 4096
    assert refused(hb, b"b" * 4096, 4096)  # A holds it: B's writes refused on S

    a.ok("Datapath.deactivate", uri=uri, domain="1")
    assert refused(ha, b"a" * 4096, 4096)  # opened before the deactivate
    b.ok("Datapath.activate", uri=uri, domain="1")
    hb.pwrite(b"B" * 4096, 4096)
    hb.flush()
    assert refused(ha, b"a" * 4096, 4096)
    err = a.err("Datapath.activate", uri=uri, domain="1")
    assert err["params"][0] == "Activated_on_another_host"
    assert err["params"][1] == B  # the host, as S's fence knows it: B's identity

    ha.shutdown()
    a.ok("Datapath.detach", uri=uri, domain="1")
    wait_for(lambda: not os.path.exists(sock_a), "A's relay to stop after its last detach")
    hb.pwrite(b"C" * 4096, 8192)
    hb.flush()
    assert hb.pread(3 * 4096, 0) == b"A" * 4096 + b"B" * 4096 + b"C" * 4096
    hb.shutdown()
    b.ok("Datapath.deactivate", uri=uri, domain="1")
    b.ok("Datapath.detach", uri=uri, domain="1")
    b.ok("Volume.destroy", sr=key, key=v["key"])


def test_takeover_of_a_dead_host_runs_on_the_storage_host(cluster):
    hosts, config, ds = cluster
    s, a, b = (hosts[u] for u in (S, A, B))
    out = s.ok("SR.create", uuid=str(uuidlib.uuid4()), configuration=config,
               name="shared", description="")
    key = a.ok("SR.attach", configuration=out)
    b.ok("SR.attach", configuration=out)
    v = a.ok("Volume.create", sr=key, name="vm", description="", size=8 << 20,
             sharable=False)
    uri = v["uri"][0]
    sock_a, name = attach(a, uri, "1")
    a.ok("Datapath.activate", uri=uri, domain="1")
    ha = connect(sock_a, name)
    ha.pwrite(b"A" * 4096, 0)
    ha.flush()
    a.stop()  # host A dies: its relay and connections with it
    sock_b, _ = attach(b, uri, "2")
    hb = connect(sock_b, name)
    assert refused(hb, b"b" * 4096, 4096)
    err = b.err("Datapath.activate", uri=uri, domain="2")
    assert err["params"][0] == "Activated_on_another_host"
    r = subprocess.run([CLI, "vol", "takeover", key, v["key"], "--domain", "2"],
                       env={**os.environ, **b.env}, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"taken over from host {A}" in r.stderr.decode(), r.stderr
    assert hb.pread(4096, 0) == b"A" * 4096  # intact up to A's last flush
    hb.pwrite(b"B" * 4096, 4096)  # the connection B opened before
    hb.flush()
    hb.shutdown()
    b.ok("Datapath.deactivate", uri=uri, domain="2")
    b.ok("Datapath.detach", uri=uri, domain="2")
