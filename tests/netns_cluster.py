"""Three "machines" on this one host for the ``ray up`` test: network namespaces joined
by a bridge, one sshd per namespace, each in its own mount and PID namespace with a
private ``/tmp`` and a private home.

Each node is ``ip netns`` namespace ``tfnode<i>`` with address ``10.77.0.<i+1>/24`` on a
veth pair whose host end sits on the bridge ``tfbr0`` (the host is ``10.77.0.254``).
There is no default route in a namespace, so the nodes reach only each other and the
host. Its sshd runs as PID 1 of

    ip netns exec NS unshare --mount --pid --fork --mount-proc sh -c \
        'mount -t tmpfs tmpfs /tmp && mount --bind HOME_i /root && exec sshd -D -f CONFIG'

so every SSH session into the node (and every process Ray starts there) sees its own
empty ``/tmp`` (Ray's session folders and sockets), its own ``/root`` (``~/.ray``,
``~/.bashrc``, ``~/ray_bootstrap_config.yaml``) and only its own processes (``ray
stop`` kills every Ray process it can see), while the rest of the file system is
shared, as an NFS mount would be. Paths the nodes must see that lie under ``/tmp`` or
``/root`` (a virtual environment made by ``mktemp``, a pyenv Python) are bound through
to the same path.

Everything lives in one work folder under ``/var/tmp`` (keys, sshd configs, homes,
shared storage); :meth:`Nodes.teardown` removes every namespace, link, process and file
the setup made, and :meth:`Nodes.leftovers` says what, if anything, is still there.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

BRIDGE = "tfbr0"
HOST_IP = "10.77.0.254"
PREFIX = "10.77.0"
NETNS = ["tfnode0", "tfnode1", "tfnode2"]     # head, worker 1, worker 2
RAY_PROCESS_WORDS = ("raylet", "gcs_server", "ray::", "default_worker.py", "dashboard",
                     "log_monitor.py", "monitor.py", "runtime_env", "ray/_private", "ray start")


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check,
                          timeout=timeout)


def missing_tools() -> list[str]:
    """What this machine lacks to make the nodes (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", "rsync"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not os.path.exists("/usr/sbin/sshd"):
        missing.append("sshd (apt-get install openssh-server)")
    return missing


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def netns_pids(ns: str) -> list[int]:
    proc = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def is_ray_process(cmdline: str) -> bool:
    return any(word in cmdline for word in RAY_PROCESS_WORDS)


def ray_process_name(cmdline: str) -> str:
    """A short name for a Ray process: ``raylet``, ``log_monitor.py``, ``ray::IDLE``."""
    if cmdline.startswith("ray::"):
        return cmdline.split()[0]
    name = next((w for w in RAY_PROCESS_WORDS if w in cmdline), cmdline[:40])
    return os.path.basename(cmdline.split()[1]) if name == "ray/_private" and " " in cmdline else name


class Nodes:
    """Make (:meth:`setup`) and remove (:meth:`teardown`) the three nodes.

    Attributes:
        work: the work folder (outside /tmp); ``shared`` below it is seen by every node.
        ips: node addresses, head first.
        key: the SSH private key authorised on every node (user root).
    """

    def __init__(self, visible: list[str] = ()):
        self.work = tempfile.mkdtemp(prefix="tune_food_ray_up-", dir="/var/tmp")
        self.ips = [f"{PREFIX}.{i + 1}" for i in range(len(NETNS))]
        self.key = os.path.join(self.work, "keys", "id_ed25519")
        self.shared = os.path.join(self.work, "shared")
        self.visible = [os.path.realpath(p) for p in visible
                        if os.path.realpath(p).startswith(("/tmp/", "/root/"))]
        self.procs: dict[str, subprocess.Popen] = {}

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        self._remove_network()  # a run killed before its teardown leaves these names
        os.makedirs(os.path.dirname(self.key))
        os.makedirs(self.shared)
        os.makedirs("/run/sshd", exist_ok=True)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tune_food-ray-up-test",
           "-f", self.key)
        host_key = os.path.join(self.work, "keys", "ssh_host_ed25519_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key)
        shutil.copy(self.key + ".pub", os.path.join(self.work, "keys", "authorized_keys"))
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i, (ns, ip) in enumerate(zip(NETNS, self.ips)):
            host_end, node_end = f"tfveth{i}", f"tfveth{i}n"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", node_end)
            sh("ip", "link", "set", host_end, "master", BRIDGE)
            sh("ip", "link", "set", host_end, "up")
            sh("ip", "link", "set", node_end, "netns", ns)
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", node_end)
            sh("ip", "-n", ns, "link", "set", node_end, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            self._start_sshd(i, ns, ip, host_key)
        for ip in self.ips:
            self.wait_ssh(ip)
            # a safety check, not a formality: `ray stop` on a node that could see the
            # host's processes would kill every Ray on this machine
            seen = self.ssh(ip, "ls /proc | grep -c '^[0-9]'").stdout.strip()
            if not seen.isdigit() or int(seen) > 20:
                raise RuntimeError(f"node {ip} sees {seen} processes: its PID namespace "
                                   "is not private")

    def _start_sshd(self, i: int, ns: str, ip: str, host_key: str) -> None:
        node = os.path.join(self.work, f"node{i}")
        home = os.path.join(node, "home")
        os.makedirs(home)
        pid_file = os.path.join(node, "sshd.pid")
        config = os.path.join(node, "sshd_config")
        with open(config, "w") as fh:
            fh.write(f"ListenAddress {ip}\nPort 22\nHostKey {host_key}\n"
                     f"AuthorizedKeysFile {self.work}/keys/authorized_keys\n"
                     "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                     "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                     f"PidFile {pid_file}\nMaxSessions 100\nMaxStartups 100\n"
                     "Subsystem sftp internal-sftp\n")
        stage_binds, rebinds = [], []
        for j, path in enumerate(self.visible):  # bound through, same path inside
            stage = os.path.join(node, f"visible{j}")
            os.makedirs(stage)
            stage_binds.append(f"mount --bind {shlex.quote(path)} {stage}")  # before the tmpfs hides it
            rebinds.append(f"mkdir -p {shlex.quote(path)} && mount --bind {stage} {shlex.quote(path)}")
        script = " && ".join(stage_binds + ["mount -t tmpfs tmpfs /tmp",
                                            f"mount --bind {shlex.quote(home)} /root"] +
                             rebinds + [f"exec /usr/sbin/sshd -D -f {shlex.quote(config)}"])
        # its own PID namespace and /proc too: `ray stop` (run by `ray up` and `ray down`
        # on every node) kills every Ray process it can see, so a node must not see the
        # host's or the other nodes' processes. sshd -D is the namespace's PID 1.
        log = open(os.path.join(node, "sshd.log"), "w")
        self.procs[ns] = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--mount", "--pid", "--fork",
             "--mount-proc", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()

    def ssh_args(self, ip: str) -> list[str]:
        return ["ssh", "-i", self.key, "-o", "StrictHostKeyChecking=no", "-o",
                "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o",
                "ConnectTimeout=5", "-o", "BatchMode=yes", f"root@{ip}"]

    def ssh(self, ip: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.ssh_args(ip) + [command], capture_output=True, text=True,
                              timeout=timeout)

    def wait_ssh(self, ip: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while True:
            proc = self.ssh(ip, "true", timeout=15)
            if proc.returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"sshd on {ip} does not answer: {proc.stderr.strip()}")
            time.sleep(0.3)

    # ----------------------------------------------------------------- inspection
    def ray_processes(self) -> dict[str, list[str]]:
        """Per node address: command lines of the Ray processes running there."""
        out = {}
        for ns, ip in zip(NETNS, self.ips):
            out[ip] = [c for c in (_cmdline(p) for p in netns_pids(ns)) if is_ray_process(c)]
        return out

    def ssh_control_dir(self, cluster_name: str) -> str:
        """The folder of the SSH ControlMaster sockets Ray's launcher keeps on this host."""
        user = hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]
        cluster = hashlib.sha256(cluster_name.encode()).hexdigest()[:10]
        return f"/tmp/ray_ssh_{user}/{cluster}"

    def leftovers(self, cluster_name: str | None = None) -> list[str]:
        """Everything of the setup still present (empty after a clean teardown)."""
        left = []
        if cluster_name and os.path.exists(self.ssh_control_dir(cluster_name)):
            left.append(f"folder {self.ssh_control_dir(cluster_name)}")
        netns = sh("ip", "netns", "list", check=False).stdout
        left += [f"netns {ns}" for ns in NETNS if ns in netns.split()]
        links = sh("ip", "-o", "link", "show", check=False).stdout
        left += [f"link {name}" for name in [BRIDGE] + [f"tfveth{i}" for i in range(len(NETNS))]
                 if f" {name}:" in links or f" {name}@" in links]
        for pid in self._own_pids():
            left.append(f"process {pid}: {_cmdline(pid)}")
        if os.path.exists(self.work):
            left.append(f"folder {self.work}")
        return left

    def _own_pids(self) -> list[int]:
        """Host processes that belong to the setup: anything using its key or its folder
        (sshd daemons, SSH ControlMaster connections)."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                cmd = _cmdline(int(entry))
                if self.work in cmd:
                    pids.append(int(entry))
        return pids

    # ----------------------------------------------------------------- teardown
    def teardown(self, cluster_name: str | None = None) -> None:
        """Kill every process of the nodes and of the setup, delete namespaces, veths,
        bridge, SSH control sockets and the work folder. Safe to call twice and after a
        partial setup."""
        for _ in range(3):
            pids = [p for ns in NETNS for p in netns_pids(ns)] + self._own_pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._remove_network()
        if cluster_name:
            control = self.ssh_control_dir(cluster_name)
            shutil.rmtree(control, ignore_errors=True)
            try:
                os.rmdir(os.path.dirname(control))  # only when no other cluster uses it
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)

    def _remove_network(self) -> None:
        listed = sh("ip", "netns", "list", check=False).stdout.split()
        for ns in NETNS:
            if ns in listed:
                for pid in netns_pids(ns):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
                sh("ip", "netns", "del", ns, check=False)
        for i in range(len(NETNS)):
            sh("ip", "link", "del", f"tfveth{i}", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
