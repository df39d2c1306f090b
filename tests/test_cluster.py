"""Multi-node behaviour on a real local Ray cluster (``ray.cluster_utils.Cluster``: a
head and two worker nodes on this machine), and the cluster launcher configs."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_sweep

SPACE = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
         "  epochs: {{grid_search: {epochs}}}\n  batch_size: 6\n  lr: 0.01\n")


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-local.yaml"])
def test_cluster_configs_pass_rays_own_validation(name):
    """The checks `ray up` runs before it starts anything: defaults filled in by
    ``prepare_config`` and the JSON-schema / consistency checks of ``validate_config``."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    with open(os.path.join(REPO, name)) as fh:
        config = yaml.safe_load(fh)
    prepared = prepare_config(config)
    validate_config(prepared)
    if name == "cluster.yaml":
        gpu = prepared["available_node_types"]["gpu_worker"]
        assert gpu["resources"]["GPU"] == 1 and gpu["min_workers"] == 0
        assert gpu["max_workers"] == prepared["max_workers"] == 4
    else:
        assert prepared["provider"]["type"] == "local"
        assert len(prepared["provider"]["worker_ips"]) == 2
    assert any("pip install" in c for c in prepared["setup_commands"])
    # token authentication, the same everywhere (README "Multi-node")
    assert prepared["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert any("export RAY_AUTH_MODE=token" in c for c in prepared["setup_commands"])


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def _sweep(cluster_address, tmp_path, data_root, epochs, *extra, popen=False):
    """A grid on the cluster, with its own cache folder: the features of its images are
    computed in this sweep, on the nodes Ray picks."""
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.format(epochs=epochs))
    return run_sweep("--grid", "--space", str(space), "--data-dir", data_root, "--results-dir",
                     str(tmp_path / "results"), "--name", "mn", "--cache-dir",
                     str(tmp_path / "cache"), "--address", cluster_address, *extra,
                     popen=popen)


@pytest.mark.slow
def test_trials_spread_over_nodes_and_features_are_computed_once(cluster, tmp_path, tiny_root):
    c, _ = cluster
    # Tune reuses a finished trial's actor for a PENDING trial and removes the actor that
    # trial was waiting for (TuneController._maybe_reuse_cached_actor): trials of a few
    # milliseconds all ran on the head's actor while the workers' actors were still
    # importing torch (seen in CI). Epochs of cached features cost about 5 ms (Tune's
    # report), so 800+ epochs keep each trial running longer than an actor takes to start.
    proc = _sweep(c.address, tmp_path, tiny_root, "[800, 850, 900, 950, 1000, 1050]")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "is a local path on a 3-node cluster" in proc.stderr  # storage warning
    exp = tmp_path / "results" / "mn"
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 6 and (board["status"] == "TERMINATED").all()
    assert board["node_id"].nunique() >= 2, board["node_id"].tolist()
    state = json.load(open(exp / "sweep.json"))
    sets = state["feature_sets"]
    assert sorted(s["images"] for s in sets) == [12, 24]  # each (model, split) once
    assert all(s["source"] == "computed" for s in sets)
    assert (board["feature_cache"] == "shared").all()
    extraction_nodes = {s["node_id"] for s in sets}
    assert set(board["node_id"]) - extraction_nodes, "no trial read features on another node"


@pytest.mark.slow
def test_gpu_request_on_a_cpu_cluster_fails_before_launch(cluster, tmp_path, tiny_root):
    c, _ = cluster
    proc = _sweep(c.address, tmp_path, tiny_root, "[1]", "--gpus-per-trial", "1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no node of the Ray cluster" in lines[0] and "0 GPUs" in lines[0]
    assert not (tmp_path / "results" / "mn").exists()


@pytest.mark.slow
def test_killing_a_worker_node_loses_no_trial(cluster, tmp_path, tiny_root):
    """Three image-pipeline trials (slow enough to be caught running); one worker node is
    removed while it runs a trial; the trial is retried on another node and the
    leaderboard is complete. The victim is a node whose trial has reported and is 10
    epochs or more from its end (result.json lags behind the worker under load: waiting
    for that state, not for a time)."""
    c, workers = cluster
    proc = _sweep(c.address, tmp_path, tiny_root, "[20, 25, 30]", "--feature-cache", "off",
                  "--max-failures", "3", popen=True)
    exp = tmp_path / "results" / "mn"
    victim = None
    deadline = time.time() + 300
    while victim is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        for trial_dir in exp.glob("*/result.json") if exp.exists() else []:
            rows = [json.loads(line) for line in trial_dir.read_text().splitlines()]
            if not rows or rows[-1]["epoch"] > rows[-1]["config"]["epochs"] - 10:
                continue
            match = [w for w in workers if w.node_id == rows[-1].get("node_id")]
            if match:
                victim = match[0]
    assert victim is not None, "no trial reported from a worker node"
    c.remove_node(victim)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 3 and (board["status"] == "TERMINATED").all()
    assert sorted(board["epochs_done"]) == [20, 25, 30]
    assert victim.node_id not in set(board["node_id"])  # finished elsewhere
