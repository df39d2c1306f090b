"""End to end: the sweep CLI on real images, a real local Ray, real Lite0 weights."""

from __future__ import annotations

import importlib.metadata as md
import json
import os

import pandas as pd
import pytest
from conftest import REPO, run_sweep, sweep_checks

LEADERBOARD_COLUMNS = [
    "rank", "trial_id", "trial_name", "status", "model", "data", "epochs", "lr", "batch_size",
    "seed", "test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss", "train_acc",
    "train_loss", "trainable_params", "total_params", "node_id", "node_ip", "time_total_s", "checkpoint_path",
    "logdir"]
TAGS = ["loss/train", "loss/test", "accuracy/train", "accuracy/test"]


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """Scalars of the TensorBoard event files in ``logdir``, read with TensorBoard's own
    event reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_small_sweep_writes_a_complete_leaderboard(small_sweep):
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    missing = [c for c in LEADERBOARD_COLUMNS if c not in board.columns]
    assert missing == []
    assert len(board) == 2 and list(board["rank"]) == [1, 2]
    assert sorted(board["epochs"]) == [1, 2]
    assert (board["status"] == "TERMINATED").all()
    assert board["test_acc"].is_monotonic_decreasing
    assert (board["test_images"] == 12).all()
    assert list(board["test_acc"]) == pytest.approx(list(board["test_correct"] / 12))
    assert (board["test_acc_ci_low"] <= board["test_acc"]).all()
    assert (board["test_acc"] <= board["test_acc_ci_high"]).all()
    assert (board["trainable_params"] == 3843).all()
    assert (board["feature_cache"] == "shared").all()
    assert list(board["checkpoint_epoch"]) == list(board["epochs_done"])
    for rel in board["checkpoint_path"]:
        assert not os.path.isabs(rel)  # relative to the sweep folder
        path = os.path.join(exp, rel)
        files = sorted(os.listdir(path))
        assert files == ["checkpoint.pt", "meta.json", "predictions.csv"]
        assert os.path.getsize(os.path.join(path, "checkpoint.pt")) < 100_000  # head only
        meta = json.load(open(os.path.join(path, "meta.json")))
        assert meta["model"] == "efficientnet_lite0"
        assert meta["classes"] == ["pizza", "steak", "sushi"]
    assert "leaderboard.csv" in proc.stdout and "tensorboard --logdir" in proc.stdout


@pytest.mark.slow
def test_small_sweep_tensorboard_has_the_four_tags_per_trial(small_sweep):
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    for _, row in board.iterrows():
        logdir = os.path.join(exp, row["logdir"])
        scalars = read_scalars(logdir)
        assert all(tag in scalars for tag in TAGS), sorted(scalars)
        progress = pd.read_csv(os.path.join(logdir, "progress.csv")).sort_values("epoch")
        assert [s for s, _ in scalars["accuracy/test"]] == list(range(1, row["epochs"] + 1))
        assert [v for _, v in scalars["accuracy/test"]] == pytest.approx(
            list(progress["test_acc"]), abs=1e-6)
        assert [v for _, v in scalars["loss/train"]] == pytest.approx(
            list(progress["train_loss"]), rel=1e-5)
        assert os.path.basename(row["logdir"]).startswith(row["trial_name"].rsplit("_", 1)[0])


@pytest.mark.slow
def test_small_sweep_records_its_inputs(small_sweep):
    proc, exp = small_sweep
    state = json.load(open(os.path.join(exp, "sweep.json")))
    assert state["status"] == "finished" and state["trials"] == 2
    assert state["versions"]["torch"] == md.version("torch")   # not "not installed"
    assert state["versions"]["ray"] == md.version("ray")
    assert state["datasets"]["tiny"]["files"] == 36
    assert state["args"]["name"] == "small"
    assert {s["images"] for s in state["feature_sets"]} == {24, 12}
    # the backbone ran in OpenVINO with exactly the CPU Ray gave each task (1 per trial)
    assert state["backbone_runtime"] == "openvino"
    ov = f"openvino {md.version('openvino')} f32 cpu"
    assert [s["computed_by"] for s in state["feature_sets"]] == [ov, ov]
    assert [s["threads"] for s in state["feature_sets"]] == [1, 1]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    assert (board["backbone_runtime"] == ov).all()


def test_the_checks_list_the_default_grid(default_grid_root, capsys):
    """The dry run's plan of the default grid, from its checks without Ray
    (conftest.sweep_checks): every trial, named, the resources and the feature sets."""
    code, plan = sweep_checks("--grid", "--dry-run", "--data-dir", default_grid_root)
    out = capsys.readouterr().out
    assert code == 0 and len(plan.trials) == 8
    assert "8 trials" in out
    assert "efficientnet_lite2-pizza_steak_sushi_20_percent-10_epochs" in out
    assert "1 CPU, no GPU per trial" in out and "trial(s) at a time" in out
    assert "feature sets to compute once" in out


@pytest.mark.slow   # the dry run as a program: it starts Ray
def test_dry_run_lists_the_default_grid(default_grid_root):
    results = os.path.join(REPO, "results")   # the default --results-dir, from the CLI's cwd

    def entries() -> set[str]:
        return set(os.listdir(results)) if os.path.isdir(results) else set()

    before = entries()
    proc = run_sweep("--grid", "--dry-run", "--data-dir", default_grid_root)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "8 trials" in out and "starting a local Ray ..." in out
    assert out.splitlines()[-1] == ("dry run: every check passed and Ray started; nothing was "
                                    "run or written (8 trial(s) planned). Drop --dry-run to "
                                    "run them.")
    assert entries() - before == set()   # no sweep folder (grid-<date>-<time>) written


@pytest.mark.slow
def test_storage_uri(tiny_root, tmp_path, shared_cache):
    """--results-dir takes a URI (pyarrow filesystems, as Ray Tune's storage_path): trial
    folders and the sweep's own files land there, and a local copy of the leaderboard
    is kept in ./results/<name> of the working directory."""
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n")
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root, "--results-dir",
                     f"file://{tmp_path}/bucket", "--name", "u", "--cache-dir", shared_cache,
                     cwd=str(tmp_path))   # a URI's local copy goes to ./results
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    remote = tmp_path / "bucket" / "u"
    for name in ("leaderboard.csv", "results.csv", "sweep.json", "plots/leaderboard.png"):
        assert (remote / name).is_file(), name
        assert (tmp_path / "results" / "u" / name).is_file(), name
    assert len(list(remote.glob("*/checkpoint_*/checkpoint.pt"))) == 1
    assert pd.read_csv(remote / "leaderboard.csv")["test_images"].tolist() == [12]
