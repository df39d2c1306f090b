"""The same sweep on one node and on a local 3-node Ray cluster, side by side.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/multinode.py [--space FILE]

Both clusters are real Ray clusters started with ``ray.cluster_utils.Cluster`` on this
machine and get the same 2 logical CPUs for trials: (a) one node with 2 CPUs;
(b) a head node with 0 CPUs (as in cluster.yaml) and two worker nodes with 1 CPU each.
Each runs ``python -m tune_food.sweep --grid --address <cluster>`` with a cold feature
cache. Prints the wall times, their ratio, and how many trials and feature sets ran on
each node. On one physical machine the 3-node run cannot be faster: it measures what
distribution costs (object transfers between node object stores, scheduling).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(address: str, space: str, work: str, name: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "tune_food.sweep", "--grid", "--space", space, "--address",
           address, "--results-dir", os.path.join(work, "results"), "--name", name,
           "--cache-dir", os.path.join(work, f"cache-{name}")]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, os.path.join(work, "results", name)


def describe(exp: str, labels: dict[str, str]) -> str:
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    trials = collections.Counter(labels.get(n, n[:8]) for n in board["node_id"])
    sets = collections.Counter(labels.get(s["node_id"], s["node_id"][:8])
                               for s in json.load(open(os.path.join(exp, "sweep.json")))["feature_sets"])
    return (f"trials per node {dict(sorted(trials.items()))}, feature sets per node "
            f"{dict(sorted(sets.items()))}, best {board['trial_name'][0]} "
            f"test_acc {board['test_acc'][0]:.4f}")


def main() -> None:
    from ray.cluster_utils import Cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=os.path.join(REPO, "search_spaces", "grid.yaml"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        one = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
        one.wait_for_nodes()
        wall1, exp1 = run(one.address, args.space, work, "one-node")
        labels1 = {one.head_node.node_id: "node1"}
        one.shutdown()
        print(f"1 node  (2 CPUs):             {wall1:6.1f} s  {describe(exp1, labels1)}", flush=True)

        three = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        workers = [three.add_node(num_cpus=1) for _ in range(2)]
        three.wait_for_nodes()
        wall3, exp3 = run(three.address, args.space, work, "three-nodes")
        labels3 = {three.head_node.node_id: "head", workers[0].node_id: "worker1",
                   workers[1].node_id: "worker2"}
        three.shutdown()
        print(f"3 nodes (0 + 1 + 1 CPUs):     {wall3:6.1f} s  {describe(exp3, labels3)}")
        print(f"3 nodes / 1 node: {wall3 / wall1:.2f}x")


if __name__ == "__main__":
    main()
