"""Hosts for multi-host tests: a GlusterFS storage host and XAPI-like
hosts, each in its own network and mount namespaces, all made and removed
by the tests (nothing of the machine's own gluster or XAPI state is read or
written).

Layout (addresses only exist inside our own network namespaces):

    storage host  netns zl<pid>s  bridge br0 10.213.0.1/24, glusterd, brick
    host a        netns zl<pid>a  eth0 10.213.0.11/24 (veth to br0)
    host b        netns zl<pid>b  eth0 10.213.0.12/24
    host c        netns zl<pid>c  eth0 10.213.0.13/24 (up to 3 hosts)

Every node has a persistent mount namespace (a file under <tmp>/ns, made
with `unshare --mount=<file>`) entered with `nsenter --mount=<file>
--net=/run/netns/<netns>`.  In it:

  storage  a private tmpfs over /run (glusterd's socket is
           /run/glusterd.socket, not under /run/gluster) and
           /var/lib/glusterd (no hook scripts: the package's hooks would
           edit the machine's samba and NFS-Ganesha configuration); its
           own directory over /var/log/glusterfs (<tmp>/<node>/log, kept
           for diagnosis).
  hosts    /etc/xensource-inventory from <tmp>/<host>/etc (a read-only
           overlay over /etc: the machine has no inventory file to bind
           over), a realistic XCP-ng 8.3 one with the host's own
           INSTALLATION_UUID; a private tmpfs over /run/zfs-live; its own
           /var/log/glusterfs; the gluster volume FUSE-mounted at the same
           path on every host (Cluster.mnt).

Commands run on a host have ZFS_LIVE_INVENTORY, ZFS_LIVE_HOST_UUID and
ZFS_LIVE_RUN removed from their environment (env -u, in the argv prefix),
so the host's UUID comes from its inventory and its runtime state lives in
its own /run/zfs-live.

Use the `cluster` fixture (conftest.py, module scope): a storage host and
hosts a, b, the volume mounted on both (cluster_of makes it).  Teardown unmounts, stops the volume, kills
every process left in our namespaces, deletes them and asserts that no
namespace, mount or process of ours is left."""

import os
import shutil
import signal
import subprocess
import sys
import uuid as uuidlib

from conftest import CLI, WRAP, Datapath, Plugin, need, sanitizer_clean, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
INVENTORY = os.path.join(HERE, "..", "unit", "data", "inventory", "xcp-ng-8.3")
NET = "10.213.0"
STORAGE_IP = f"{NET}.1"
PYTHON = sys.executable
HOST_IPS = {"a": f"{NET}.11", "b": f"{NET}.12", "c": f"{NET}.13"}
VOLUME = "zlshared"
# what commands on a host must not inherit from the test session
HOST_UNSET = ("ZFS_LIVE_INVENTORY", "ZFS_LIVE_HOST_UUID", "ZFS_LIVE_RUN")
# What a shared SR needs of the filesystem (docs/design.md, "Shared SRs"):
# a file opened on one host after another host renamed it into place, or
# wrote and closed it, has the new content.  GlusterFS's client caches
# break that by default: with md-cache (stat-prefetch), quick-read and
# open-behind on, host b went on reading the old content of a file host a
# had replaced, for up to a second (or got ESTALE); io-cache and
# read-ahead cache file data, flush-behind lets close() return before the
# data is on the brick.  test_shared_file.py checks the result.
VOLUME_OPTIONS = {
    "performance.stat-prefetch": "off",
    "performance.quick-read": "off",
    "performance.open-behind": "off",
    "performance.io-cache": "off",
    "performance.read-ahead": "off",
    "performance.flush-behind": "off",
}
TOOLS = ("glusterd", "gluster", "glusterfs", "glusterfsd", "mount.glusterfs", "ip",
         "nsenter", "unshare")


def sh(argv, check=True, timeout=120, **kw):
    """Run argv (no shell) on the machine; fail with its stderr."""
    kw.setdefault("capture_output", True)
    proc = subprocess.run(list(argv), timeout=timeout, **kw)
    if check:
        assert proc.returncode == 0, f"{argv}: rc={proc.returncode}: {proc.stderr!r}"
    return proc


def ns_inode(path):
    return os.stat(path).st_ino


def procs_in(inodes):
    """pids of every live process whose network or mount namespace is one
    of inodes (zombies excluded: they hold nothing)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            mine = {os.stat(f"/proc/{d}/ns/{k}").st_ino for k in ("net", "mnt")}
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        if mine & inodes:
            found.append(int(d))
    return found


class Node:
    """A network namespace and a persistent mount namespace."""

    def __init__(self, cluster, name, ip):
        self.cluster, self.name, self.ip = cluster, name, ip
        self.netns = f"zl{os.getpid()}{name}"
        self.dir = os.path.join(cluster.tmp, name)
        self.mntns = os.path.join(cluster.nsdir, name)
        self.holder = None
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)

    def enter(self):
        return ["nsenter", f"--mount={self.mntns}", f"--net=/run/netns/{self.netns}"]

    def argv(self, cmd):
        """cmd run in this node's namespaces."""
        return [*self.enter(), *cmd]

    def run(self, cmd, check=True, timeout=120, **kw):
        return sh(self.argv(cmd), check=check, timeout=timeout, **kw)

    def popen(self, cmd, **kw):
        return subprocess.Popen(self.argv(cmd), **kw)

    def make(self):
        """The namespaces, lo up, and a holder process (for path())."""
        sh(["ip", "netns", "add", self.netns])
        open(self.mntns, "w").close()
        sh(["unshare", f"--mount={self.mntns}", "--propagation", "private", "true"])
        # the copies of the other nodes' namespace files are not ours to hold
        self.run(["umount", "--recursive", "--lazy", self.cluster.nsdir])
        self.run(["ip", "link", "set", "lo", "up"])
        # a process that lives as long as the node: /proc/<it>/root is the
        # node's view of the filesystem, for the test process to read
        self.holder = self.popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def path(self, p):
        """Path under which the test process sees p as this node does."""
        return f"/proc/{self.holder.pid}/root{p}"

    def inodes(self):
        out = set()
        for p in (self.mntns, f"/run/netns/{self.netns}"):
            try:
                out.add(ns_inode(p))
            except FileNotFoundError:
                pass
        return out


class StorageHost(Node):
    """glusterd and one volume over a brick directory."""

    def make(self):
        super().make()
        for d in ("/run", "/var/lib/glusterd"):
            self.run(["mount", "-t", "tmpfs", "-o", "mode=0755", f"zl-{self.name}", d])
        self.run(["mount", "--bind", os.path.join(self.dir, "log"), "/var/log/glusterfs"])
        self.run(["ip", "link", "add", "br0", "type", "bridge"])
        self.run(["ip", "addr", "add", f"{self.ip}/24", "dev", "br0"])
        self.run(["ip", "link", "set", "br0", "up"])
        self.run(["glusterd", "-p", "/run/glusterd.pid"])  # returns once it serves
        self.glusterd = int(open(self.path("/run/glusterd.pid")).read())
        self.brick = os.path.join(self.dir, "brick")
        os.makedirs(self.brick)
        self.gluster("volume", "create", VOLUME, f"{self.ip}:{self.brick}", "force")
        for k, v in VOLUME_OPTIONS.items():
            self.gluster("volume", "set", VOLUME, k, v)
        self.gluster("volume", "start", VOLUME)

    def gluster(self, *args, check=True):
        return self.run(["gluster", "--mode=script", *args], check=check, text=True)

    def stop(self):
        """Stop the volume (its brick process goes) and glusterd."""
        if getattr(self, "glusterd", None):
            self.gluster("volume", "stop", VOLUME, "force", check=False)
            os.kill(self.glusterd, signal.SIGTERM)
            wait_for(lambda: not alive([self.glusterd]), "glusterd to exit")


def alive(pids):
    """Those of pids that are live processes (not zombies)."""
    alive = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.add(p)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return alive


class Host(Node):
    """An XAPI-like host: its own inventory (host UUID), /run/zfs-live, NBD
    server and FUSE mount of the shared volume.

    Running things there: host.plugin("file-live").ok(...) and
    host.datapath().ok("Datapath.attach", ...) as xapi-storage-script on
    that host (the NBD server an attach starts runs in the host, its
    socket host.nbd_socket); host.cli("serve", ...) for zfs-live itself;
    host.popen(["qemu-system-x86_64", ...]) for a guest (its NBD URI the
    Nbd implementation of the attach, valid inside the host).  The test
    process reaches a host's files, unix sockets included, at
    host.path(p).  Everything still running on a host at teardown is
    killed."""

    nbd_socket = "/run/zfs-live/nbd.sock"

    def __init__(self, cluster, name, ip):
        super().__init__(cluster, name, ip)
        self.uuid = str(uuidlib.uuid4())

    def argv(self, cmd):
        unset = [a for v in HOST_UNSET for a in ("-u", v)]
        return [*self.enter(), "env", *unset, *cmd]

    def inventory(self):
        with open(INVENTORY) as f:
            text = f.read()
        out = []
        for line in text.splitlines():
            key = line.split("=", 1)[0]
            if key == "INSTALLATION_UUID":
                line = f"INSTALLATION_UUID='{self.uuid}'"
            elif key == "CONTROL_DOMAIN_UUID":
                line = f"CONTROL_DOMAIN_UUID='{uuidlib.uuid4()}'"
            out.append(line)
        return "\n".join(out) + "\n"

    def make(self):
        super().make()
        etc = os.path.join(self.dir, "etc")
        os.makedirs(etc)
        with open(os.path.join(etc, "xensource-inventory"), "w") as f:
            f.write(self.inventory())
        self.run(["mount", "-t", "overlay", "-o", f"lowerdir={etc}:/etc", f"zl-{self.name}",
                  "/etc"])
        # the mount point; made as zfs-live makes it, if the machine has none
        os.makedirs("/run/zfs-live", mode=0o700, exist_ok=True)
        self.run(["mount", "-t", "tmpfs", "-o", "mode=0700", f"zl-{self.name}",
                  "/run/zfs-live"])
        self.run(["mount", "--bind", os.path.join(self.dir, "log"), "/var/log/glusterfs"])
        s = self.cluster.storage
        # made from the machine's namespace (which sees every /run/netns
        # entry), each end directly in its own namespace
        sh(["ip", "link", "add", "name", "eth0", "netns", self.netns, "type", "veth",
            "peer", "name", f"v{self.name}", "netns", s.netns])
        s.run(["ip", "link", "set", f"v{self.name}", "master", "br0", "up"])
        self.run(["ip", "addr", "add", f"{self.ip}/24", "dev", "eth0"])
        self.run(["ip", "link", "set", "eth0", "up"])
        self.mount()

    def mount(self):
        """The volume at Cluster.mnt (mount.glusterfs returns once the
        client serves)."""
        self.run(["mount", "-t", "glusterfs", "-o",
                  f"log-file={os.path.join(self.dir, 'log', 'client.log')}",
                  f"{STORAGE_IP}:/{VOLUME}", self.cluster.mnt])
        wait_for(lambda: self.fstype(self.cluster.mnt) == "fuse.glusterfs",
                 f"the gluster mount on host {self.name}")

    def fstype(self, mnt):
        out = self.run(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", mnt],
                       check=False, text=True)
        return out.stdout.strip()

    def unmount(self):
        if self.holder and self.fstype(self.cluster.mnt):
            self.run(["umount", self.cluster.mnt], check=False)

    # --- zfs-live on this host ---------------------------------------------

    def plugin(self, sr_type="file-live"):
        """The volume plugin of sr_type, invoked in this host."""
        p = Plugin(sr_type)
        p.wrap = self.argv(list(WRAP))
        return p

    def datapath(self):
        dp = Datapath()
        dp.plugin.wrap = self.argv(list(WRAP))
        return dp

    def cli(self, *args, check=True, input=None, timeout=120):
        """zfs-live <args> on this host (e.g. serve, vol read)."""
        proc = sh(self.argv([*WRAP, CLI, *args]), check=False, input=input, timeout=timeout)
        sanitizer_clean(proc.stderr.decode(errors="replace"))
        if check:
            assert proc.returncode == 0, (args, proc.stderr.decode(errors="replace"))
        return proc

    def loop_devices(self):
        """Loop devices (global, not namespaced) whose backing file is on
        the shared mount, as this host sees them."""
        out = self.run(["losetup", "-l", "-n", "-O", "NAME,BACK-FILE"], check=False,
                       text=True).stdout
        devs = []
        for line in out.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].startswith(self.cluster.mnt + "/"):
                devs.append(parts[0])
        return devs


class Cluster:
    """A storage host and hosts a, b (c on demand) under tmp."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.nsdir = os.path.join(self.tmp, "ns")
        self.mnt = os.path.join(self.tmp, "shared")
        self.nodes = []
        self.hosts = {}
        self.storage = None

    def start(self, names=("a", "b")):
        os.makedirs(self.nsdir)
        os.makedirs(self.mnt)
        # a private mount to hold the namespace files (unshare needs that)
        sh(["mount", "--bind", self.nsdir, self.nsdir])
        sh(["mount", "--make-private", self.nsdir])
        self.storage = StorageHost(self, "s", STORAGE_IP)
        self.nodes.append(self.storage)
        self.storage.make()
        for n in names:
            self.add_host(n)
        return self

    def add_host(self, name):
        assert name in HOST_IPS and name not in self.hosts
        h = Host(self, name, HOST_IPS[name])
        self.nodes.append(h)
        h.make()
        self.hosts[name] = h
        return h

    def __getitem__(self, name):
        return self.hosts[name]

    def logs(self):
        """The gluster logs (for failure messages)."""
        text = []
        for n in self.nodes:
            for dirpath, _, files in os.walk(os.path.join(n.dir, "log")):
                for f in files:
                    p = os.path.join(dirpath, f)
                    with open(p, errors="replace") as fh:
                        text.append(f"--- {p}\n" + "".join(fh.readlines()[-20:]))
        return "\n".join(text)

    def close(self):
        """Undo everything start() did, then check that nothing is left:
        no namespace, no mount under tmp, no process in our namespaces."""
        hosts = [n for n in self.nodes if isinstance(n, Host)]
        inodes = set()
        for n in self.nodes:
            inodes |= n.inodes()
        for h in hosts:
            for dev in h.loop_devices() if h.holder else []:
                sh(["losetup", "-d", dev], check=False)
        # everything a host runs (NBD servers, qemu) goes before its mount
        for h in hosts:
            kill_all([p for p in procs_in(h.inodes()) if p != (h.holder and h.holder.pid)
                      and not is_gluster_client(p)])
        for h in hosts:
            h.unmount()
        if self.storage:
            self.storage.stop()
        kill_all(procs_in(inodes - {None}))
        for n in self.nodes:
            if n.holder:
                n.holder.stdin.close()
                n.holder.wait(timeout=30)
        for n in self.nodes:
            if os.path.exists(n.mntns):
                sh(["umount", n.mntns], check=False)
            sh(["ip", "netns", "delete", n.netns], check=False)
        if os.path.isdir(self.nsdir):
            sh(["umount", self.nsdir], check=False)
        left_ns = [n.netns for n in self.nodes
                   if n.netns in sh(["ip", "netns", "list"], text=True).stdout.split()]
        left_mounts = [line for line in open("/proc/self/mountinfo")
                       if f" {self.tmp}" in line]
        left_procs = procs_in(inodes)
        assert not (left_ns or left_mounts or left_procs), \
            f"left behind: netns {left_ns}, mounts {left_mounts}, processes {left_procs}"


def is_gluster_client(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "glusterfs"
    except FileNotFoundError:
        return False


def kill_all(pids):
    """SIGTERM, then SIGKILL what is still there after a while."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        try:
            wait_for(lambda: not alive(pids), f"processes {pids} to exit", timeout=10)
            return
        except AssertionError:
            if sig == signal.SIGKILL:
                raise


def prerequisites():
    need(os.geteuid() == 0, "namespaces, mounts and glusterd need root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    need(not missing, f"missing {missing} (scripts/deps.sh test installs them)")
    need(os.path.exists("/dev/fuse"), "no /dev/fuse")


def cluster_of(tmp_path_factory, names=("a", "b")):
    """Generator for a fixture: a storage host serving one GlusterFS volume
    and hosts names with it mounted at cluster.mnt; everything removed
    (and checked gone) after the yield.  conftest.cluster is one."""
    prerequisites()
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start(names)
    except BaseException:
        c.close()
        raise
    yield c
    c.close()


# --- locks, as a process on a host takes them --------------------------------

LOCKER = r"""
import fcntl, os, struct, sys
path, kind, mode, wait = sys.argv[1:5]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    if kind == "flock":
        op = fcntl.LOCK_EX if mode == "x" else fcntl.LOCK_SH
        fcntl.flock(fd, op | (0 if wait == "wait" else fcntl.LOCK_NB))
    else:  # fcntl record locks over the whole file: OFD or classic POSIX
        setlk, setlkw = {"ofd": (37, 38), "posix": (fcntl.F_SETLK, fcntl.F_SETLKW)}[kind]
        typ = fcntl.F_WRLCK if mode == "x" else fcntl.F_RDLCK
        fcntl.fcntl(fd, setlkw if wait == "wait" else setlk,
                    struct.pack("hhqqi4x", typ, 0, 0, 0, 0))
except BlockingIOError:
    print("busy", flush=True)
    sys.exit(0)
print("locked", flush=True)
if wait != "try":
    sys.stdin.read()  # hold until stdin closes or the process is killed
"""


class Locker:
    """A process on a host holding a lock on path: kind "flock", "ofd"
    (F_OFD_SETLKW) or "posix" (F_SETLKW); mode "x" or "s".  Started, it
    waits for the lock (wait=True) or fails at once if busy."""

    def __init__(self, host, path, kind="flock", mode="x", wait=True):
        self.proc = host.popen([PYTHON, "-c", LOCKER, path, kind, mode,
                                "wait" if wait else "nowait"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def locked(self):
        """Block until the lock is held (True) or refused (False)."""
        line = self.proc.stdout.readline().strip()
        assert line in ("locked", "busy"), f"locker said {line!r}"
        return line == "locked"

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def try_lock(host, path, kind="flock", mode="x"):
    """Can a new process on host take the lock now?  (It lets go at once.)"""
    out = host.run([PYTHON, "-c", LOCKER, path, kind, mode, "try"], text=True).stdout
    assert out.strip() in ("locked", "busy"), out
    return out.strip() == "locked"
