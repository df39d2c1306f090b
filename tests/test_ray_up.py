"""``ray up`` for real: Ray's own cluster launcher starts a three-node cluster (a head
and two workers, each a network namespace with its own sshd, ``/tmp`` and home; see
:mod:`netns_cluster`) from a cluster file derived from ``cluster-local.yaml``; the
default grid is submitted with ``ray exec`` and with ``ray job submit``, and checked
against a one-node run; a small grid writes to a ``file://`` URI; a worker is lost
mid-sweep; ``ray down`` (and ``ray stop`` on the workers, which the local provider's
``ray down`` leaves running) stops Ray everywhere; everything is torn down and checked.

Needs root, ``ip``, ``unshare``, ``ssh``, ``rsync`` and Debian's ``openssh-server``
(``.ci/run`` installs the last two when missing); skipped otherwise. The commands typed
are the README's (section "Machines you already have"), with this machine's addresses,
key and shared folder. Each step's wall time is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, SHARED_DATA, make_subset
from netns_cluster import Nodes, missing_tools, ray_process_name

pytestmark = [pytest.mark.ray_up,
              pytest.mark.skipif(bool(missing_tools()), reason="ray up test needs "
                                 + ", ".join(missing_tools()))]

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
CLUSTER_NAME = "tune-food-local"   # cluster-local.yaml's
TINY_SPACE = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
              "  epochs: {{grid_search: {epochs}}}\n  batch_size: 6\n  lr: 0.01\n")
ALIVE_PY = ("import json, ray\nray.init(address='auto', logging_level='ERROR')\n"
            "print('ALIVE', json.dumps(sorted(n['NodeManagerAddress'] for n in ray.nodes() "
            "if n['Alive'])))\n")


class Cluster:
    """The client side: a home and temp folder of its own (so nothing lands in this
    machine's ~ or /tmp), the derived cluster file, and the ``ray`` CLI."""

    def __init__(self, nodes: Nodes):
        self.nodes = nodes
        self.home = os.path.join(nodes.work, "client")
        self.tmp = os.path.join(nodes.work, "tmp")
        os.makedirs(self.home)
        os.makedirs(self.tmp)
        self.env = dict(os.environ, HOME=self.home, TMPDIR=self.tmp, RAY_AUTH_MODE="token",
                        RAY_UP_enable_autoscaler_v2="0",
                        RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
                        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        self.env.pop("RAY_ADDRESS", None)
        self.file = os.path.join(nodes.work, "cluster.yaml")
        self.up = False

    def ray(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run([RAY, *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        return proc

    def write_cluster_file(self) -> dict:
        """cluster-local.yaml with this machine's addresses, user, key and token, and
        setup commands that use the installed environment instead of a pip install."""
        with open(os.path.join(REPO, "cluster-local.yaml")) as fh:
            cfg = yaml.safe_load(fh)
        head, *workers = self.nodes.ips
        assert cfg["cluster_name"] == CLUSTER_NAME
        cfg["provider"].update(head_ip=head, worker_ips=workers)
        cfg["auth"] = {"ssh_user": "root", "ssh_private_key": self.nodes.key}
        assert cfg["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
        env = (f"export PATH={os.path.dirname(sys.executable)}:$PATH PYTHONPATH=$HOME/tune_food "
               f"TUNE_FOOD_DATA_DIR={SHARED_DATA} RAY_USAGE_STATS_ENABLED=0")
        auth = [c for c in cfg["setup_commands"] if "RAY_AUTH_MODE=token" in c]
        assert len(auth) == 1, cfg["setup_commands"]
        cfg["setup_commands"] = [f"echo {shlex.quote(env)} > ~/.bashrc"] + auth
        # this machine has 2 cores for 3 nodes: the head runs drivers only (as in
        # cluster.yaml), each worker offers 1 CPU; the head has no default route here
        cfg["head_start_ray_commands"] = [
            c + f" --node-ip-address={head} --num-cpus=0" if c.startswith("ray start") else c
            for c in cfg["head_start_ray_commands"]]
        cfg["worker_start_ray_commands"] = [
            c + " --num-cpus=1" if c.startswith("ray start") else c
            for c in cfg["worker_start_ray_commands"]]
        with open(self.file, "w") as fh:
            yaml.safe_dump(cfg, fh, sort_keys=False)
        return cfg

    def exec(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.ray("exec", self.file, command, timeout=timeout)

    def alive(self) -> list[str]:
        proc = self.exec(f"python {self.nodes.shared}/alive.py", timeout=120)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ALIVE ")]
        return json.loads(lines[-1][6:]) if lines else []


@pytest.fixture
def cluster():
    """Three nodes and a client; on the way out (pass or fail): ``ray down``, every
    namespace, link, process and file removed, and checked."""
    # the checkout too: an editable install maps tune_food.search_spaces to its
    # search_spaces/ folder, which the nodes must see when it lies under /tmp or /root
    nodes = Nodes(visible=[sys.prefix, sys.base_prefix, SHARED_DATA, REPO])
    client = None
    try:
        nodes.setup()
        client = Cluster(nodes)
        yield client
    finally:
        if client is not None and client.up:
            try:
                client.ray("down", "-y", client.file, timeout=180)
            except subprocess.TimeoutExpired:
                pass
        nodes.teardown(cluster_name=CLUSTER_NAME)
        assert nodes.leftovers(CLUSTER_NAME) == []


def _board(folder: str) -> pd.DataFrame:
    return pd.read_csv(os.path.join(folder, "leaderboard.csv"))


def _state(folder: str) -> dict:
    with open(os.path.join(folder, "sweep.json")) as fh:
        return json.load(fh)


def _same_accuracies(a: pd.DataFrame, b: pd.DataFrame) -> None:
    merged = a.merge(b, on="trial_name", suffixes=("_a", "_b"))
    assert len(merged) == len(a) == len(b)
    for col in ("test_acc", "test_loss", "train_loss"):
        diff = (merged[f"{col}_a"] - merged[f"{col}_b"]).abs().max()
        assert diff <= 1e-6, (col, diff)


def test_ray_up_three_nodes_grid_ray_down(cluster):
    nodes, times, log = cluster.nodes, {}, []
    head, *workers = nodes.ips
    shared = nodes.shared
    results, cache = os.path.join(shared, "results"), os.path.join(shared, "features")
    with open(os.path.join(shared, "alive.py"), "w") as fh:
        fh.write(ALIVE_PY)

    def note(name, value):
        log.append((name, value))
        print(f"[ray_up] {name}: {json.dumps(value, indent=1, default=str)}", flush=True)

    def step(name, fn):
        start = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - start
        print(f"[ray_up] {name}: {times[name]:.1f} s", flush=True)
        return out

    def ok(proc, what):
        assert proc.returncode == 0, f"{what}: rc {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc

    # 1. ray up: the head over SSH, then its autoscaler starts the two workers over SSH
    cluster.write_cluster_file()
    ok(cluster.ray("get-auth-token", "--generate"), "ray get-auth-token")
    assert os.path.getsize(os.path.join(cluster.home, ".ray", "auth_token")) > 0
    cluster.up = True

    def up():
        ok(cluster.ray("up", "-y", "--no-config-cache", cluster.file), "ray up")
        deadline = time.time() + 300
        while (alive := cluster.alive()) != sorted(nodes.ips) and time.time() < deadline:
            time.sleep(3)
        return alive
    assert step("ray up (until 3 nodes alive)", up) == sorted(nodes.ips)
    procs = nodes.ray_processes()
    assert all(any("raylet" in c for c in procs[ip]) for ip in nodes.ips), procs

    # 2a. the default grid with ray exec, cold feature cache in shared storage
    sweep = (f"cd ~/tune_food && python -m tune_food.sweep --grid --address auto "
             f"--results-dir {results} --cache-dir {cache}")
    step("ray exec: default grid (cold features)",
         lambda: ok(cluster.exec(f"{sweep} --name grid-exec"), "ray exec grid"))
    exec_dir = os.path.join(results, "grid-exec")
    board, state = _board(exec_dir), _state(exec_dir)
    assert state["status"] == "finished" and len(board) == 8
    assert (board["status"] == "TERMINATED").all()
    # on the workers (the head has no CPU for trials); not necessarily on both: Ray Tune
    # hands a finished trial's actor to a pending trial while the other worker's actor
    # still starts, and the default grid's trials last milliseconds (CI found all 8 on
    # one worker). That trials spread over nodes is test_cluster's, with long trials.
    assert set(board["node_ip"]) <= set(workers), board["node_ip"].tolist()
    sets = state["feature_sets"]
    pairs = [(s["model"], s["split_dir"]) for s in sets]
    assert len(sets) == 6 and len(set(pairs)) == 6                 # each set once ...
    assert all(s["source"] == "computed" for s in sets)            # ... computed, not read
    assert {s["node_ip"] for s in sets} <= set(workers)
    note("grid-exec trials", board[["trial_name", "node_ip", "test_acc"]].to_dict("records"))
    note("grid-exec feature sets", [(s["model"], s["split_dir"],   # relative to the data root
                                     s["node_ip"], round(s["seconds"], 1)) for s in sets])

    # 2b. the same grid through Ray's Jobs API (the working dir is uploaded to the head)
    step("ray job submit: default grid (features from the shared cache)", lambda: ok(cluster.ray(
        "job", "submit", "--address", f"http://{head}:8265", "--working-dir", ".", "--",
        "python", "-m", "tune_food.sweep", "--grid", "--address", "auto", "--results-dir",
        results, "--cache-dir", cache, "--name", "grid-job"), "ray job submit"))
    job_dir = os.path.join(results, "grid-job")
    job_board, job_state = _board(job_dir), _state(job_dir)
    assert job_state["status"] == "finished" and (job_board["status"] == "TERMINATED").all()
    assert set(job_board["node_ip"]) <= set(workers)   # (spread: see above)
    assert all(s["source"] == "disk" for s in job_state["feature_sets"])
    _same_accuracies(board, job_board)
    note("grid-job trials", job_board[["trial_name", "node_ip"]].to_dict("records"))

    # 3. the same grid on one node (this machine, a local Ray): the same leaderboard
    step("one node: default grid (local Ray)", lambda: ok(subprocess.run(
        [sys.executable, "-m", "tune_food.sweep", "--grid", "--results-dir",
         os.path.join(nodes.work, "local"), "--cache-dir", cache, "--name", "grid-one"],
        cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=600), "one node"))
    one_board = _board(os.path.join(nodes.work, "local", "grid-one"))
    _same_accuracies(board, one_board)
    assert list(one_board["trial_name"]) == list(board["trial_name"])   # same ranking

    # 4. a file:// URI as storage (a shared mount seen at the same path by every node)
    data_root = os.path.join(shared, "data")
    make_subset(os.path.join(data_root, "tiny"), {"train": 8, "test": 4})
    space = os.path.join(shared, "tiny.yaml")
    with open(space, "w") as fh:
        fh.write(TINY_SPACE.format(epochs="[1, 2]"))
    uri = f"file://{shared}/uri"
    step("ray exec: 2-trial grid to a file:// URI", lambda: ok(cluster.exec(
        f"cd ~/tune_food && python -m tune_food.sweep --grid --space {space} --data-dir "
        f"{data_root} --address auto --results-dir {uri} --cache-dir {cache} --name tiny-uri"),
        "file:// run"))
    uri_dir = os.path.join(shared, "uri", "tiny-uri")
    uri_board = _board(uri_dir)
    assert _state(uri_dir)["status"] == "finished" and len(uri_board) == 2
    assert all(os.path.isfile(os.path.join(uri_dir, os.path.basename(p), "result.json"))
               for p in uri_board["logdir"])

    # (a node lost mid-sweep: tests/test_cluster.py's test_killing_a_worker_node_loses_no_trial,
    # which runs without root too; tested once)

    # 5. ray down. With the local provider it runs `ray stop` on the head only and marks
    # the workers terminated in its state file: their raylets exit a minute after the
    # head is gone, their log monitor never (Ray 2.60). So, as the README says, `ray
    # stop` on each worker over SSH too; then no Ray process is left on any node.
    def down():
        ok(cluster.ray("down", "-y", cluster.file, timeout=300), "ray down")
        deadline = time.time() + 30
        while nodes.ray_processes()[head] and time.time() < deadline:
            time.sleep(1)
        after_down = nodes.ray_processes()
        for ip in workers:
            proc = subprocess.run(nodes.ssh_args(ip) + ["bash -ic 'ray stop'"],
                                  capture_output=True, text=True, timeout=120)
            ok(proc, f"ray stop on {ip}")
        deadline = time.time() + 30
        while any(nodes.ray_processes().values()) and time.time() < deadline:
            time.sleep(1)
        return after_down, nodes.ray_processes()
    after_down, left = step("ray down, then ray stop on each worker", down)
    cluster.up = False
    assert after_down[head] == [], after_down
    note("left on the workers by ray down alone",
         {ip: sorted(ray_process_name(c) for c in cmds) for ip, cmds in after_down.items()})
    assert left == {ip: [] for ip in nodes.ips}, left
    print("[ray_up] times: " + json.dumps({k: round(v, 1) for k, v in times.items()}))
