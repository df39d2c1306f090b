"""Every path tells the truth: interrupted sweeps (SIGINT in extraction and in trials,
SIGTERM), early-stopped trials and their checkpoints, moved sweep folders, the dry run
as the real run's gatekeeper, ``~`` in path flags, and resume without repeated epochs.
Real Ray, real images, real weights."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest
from conftest import REPO, run_cli, run_sweep, signal_at, sweep_checks

LONG = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: {epochs}\n"
        "  batch_size: 4\nseeds: [0, 1, 2, 3, 4, 5]\n")


def _state(exp) -> dict:
    return json.loads((exp / "sweep.json").read_text())


@pytest.mark.slow
def test_sigint_during_trials_then_move_report_predict_and_resume(tmp_path, tiny_root,
                                                                 shared_cache):
    """Failures 1, 3, 6 and 7 of the issue, on one real sweep: SIGINT while trials run,
    a ``~`` results dir, the folder moved, report / predict / resume on the moved copy."""
    space = tmp_path / "space.yaml"
    space.write_text(LONG.format(epochs=600))
    home = tmp_path / "home"
    home.mkdir()
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root, "--results-dir",
                     "~/res", "--name", "a", "--cache-dir", shared_cache, "--max-concurrent",
                     "2", env={"HOME": str(home)}, popen=True)
    out, err, took = signal_at(proc, "[2/6]", signal.SIGINT, 1.5)
    assert proc.returncode == 130, out[-3000:] + err[-3000:]
    assert took < 10
    assert not os.path.exists(os.path.join(REPO, "~"))      # ~ was expanded
    exp = home / "res" / "a"
    state = _state(exp)
    assert state["status"] == "interrupted"
    assert state["resume"].startswith("python -m tune_food.sweep --resume --name a")
    assert err.strip().splitlines() == [   # one line of ours, no Ray noise
        f"sweep interrupted; continue it with: python -m tune_food.sweep --resume --name a "
        f"--results-dir {home / 'res'}"], err
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 6 and (board["epochs_planned"] == 600).all()
    done = board[board["status"] == "TERMINATED"]
    assert len(done) == 2 and (done["epochs_done"] == 600).all()
    assert list(done["rank"]) == [1, 2] and (done["checkpoint_epoch"] == 600).all()
    rest = board[board["status"] != "TERMINATED"]
    assert set(rest["status"]) <= {"INTERRUPTED", "NOT_STARTED"}
    assert "INTERRUPTED" in set(rest["status"]) and rest["rank"].isna().all()
    assert (rest["epochs_done"] < 600).all()
    assert (board.loc[board["status"] == "NOT_STARTED", "epochs_done"] == 0).all()
    statuses = dict(zip(board["trial_id"], board["status"]))
    # TensorBoard holds every epoch the interrupted trials reported, the last one too
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for _, row in board[board["status"] == "INTERRUPTED"].iterrows():
        acc = EventAccumulator(str(exp / row["logdir"]))
        acc.Reload()
        assert sorted(e.step for e in acc.Scalars("accuracy/test")) == \
            list(range(1, int(row["epochs_done"]) + 1)), row["trial_name"]

    # a moved sweep: every path in it is relative, nothing reads the original place
    moved = tmp_path / "elsewhere" / "b"
    moved.parent.mkdir()
    shutil.move(str(exp), str(moved))
    for name in ("leaderboard.csv", "sweep.json", "results.csv"):
        assert str(home) not in (moved / name).read_text(), name
    rep = run_cli("tune_food.report", str(moved))
    assert rep.returncode == 0, rep.stderr[-3000:]
    again = pd.read_csv(moved / "leaderboard.csv")
    assert dict(zip(again["trial_id"], again["status"])) == statuses
    pizzas = os.path.join(tiny_root, "tiny", "test", "pizza")
    image = os.path.join(pizzas, sorted(os.listdir(pizzas))[0])
    pred = run_cli("tune_food.predict", "--sweep", str(moved), image)
    assert pred.returncode == 0, pred.stderr[-3000:]
    best = again.iloc[0]
    first = pred.stdout.splitlines()[0]
    assert best["trial_name"] in first and "epoch 600" in first
    assert os.path.join(str(moved), best["checkpoint_path"]) in first

    # resume the moved copy: each (trial, epoch) once in results.csv and TensorBoard
    res = run_sweep("--resume", "--name", "b", "--results-dir",
                    str(moved.parent))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert not exp.exists()   # trials not yet created at the interrupt went to the copy too
    assert _state(moved)["status"] == "finished"
    final = pd.read_csv(moved / "leaderboard.csv")
    assert (final["status"] == "TERMINATED").all() and (final["epochs_done"] == 600).all()
    # six seeds of one configuration: one row of leaderboard_by_config.csv (the
    # aggregation itself is unit-tested in test_leaderboard.py)
    assert sorted(final["seed"]) == [0, 1, 2, 3, 4, 5]
    by = pd.read_csv(moved / "leaderboard_by_config.csv")
    assert len(by) == 1 and "seed" not in by and by["test_acc_count"][0] == 6
    mean, std = final["test_acc"].mean(), final["test_acc"].std()
    assert by["test_acc_mean"][0] == pytest.approx(mean)
    assert by["test_acc_std"][0] == pytest.approx(std, abs=1e-12)
    half = 2.5705818356 * std / 6 ** 0.5   # t(0.975, 5 degrees of freedom)
    assert by["test_acc_mean_ci_low"][0] == pytest.approx(mean - half)
    assert by["test_acc_mean_ci_high"][0] == pytest.approx(mean + half)
    results = pd.read_csv(moved / "results.csv")
    assert len(results) == 6 * 600
    assert not results.duplicated(["trial_id", "epoch"]).any()
    assert "should_checkpoint" not in results
    replayed = 0
    for _, row in final.iterrows():
        # Ray's progress.csv stays readable across the resume (no row wider than its header)
        progress = pd.read_csv(moved / row["logdir"] / "progress.csv")
        assert "should_checkpoint" not in progress
        replayed += len(progress) - progress["epoch"].nunique()
        acc = EventAccumulator(str(moved / row["logdir"]))
        acc.Reload()
        steps = [e.step for e in acc.Scalars("accuracy/test")]
        assert sorted(steps) == list(range(1, 601)), row["trial_name"]
    assert replayed > 0  # the resumed trials did replay epochs after their checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_feature_extraction(tmp_path, tiny_root, sig):
    space = tmp_path / "space.yaml"
    space.write_text(LONG.format(epochs=3))
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root, "--results-dir",
                     str(tmp_path / "results"), "--name", "x", "--cache-dir",
                     str(tmp_path / "cold-cache"), popen=True)   # so that it computes
    out, err, took = signal_at(proc, "computing", sig, 0.5)
    assert proc.returncode == 130, out[-3000:] + err[-3000:]
    assert took < 10
    assert _state(tmp_path / "results" / "x")["status"] == "interrupted"
    board = pd.read_csv(tmp_path / "results" / "x" / "leaderboard.csv")   # every trial listed
    assert len(board) == 6 and (board["status"] == "NOT_STARTED").all() and board["rank"].isna().all()
    # one line of ours, no Ray noise, no traceback
    assert err.strip().splitlines() == [
        f"sweep interrupted; continue it with: python -m tune_food.sweep --resume --name x "
        f"--results-dir {tmp_path / 'results'}"], err


@pytest.mark.slow
def test_optuna_asha_search_early_stopped_trials_have_the_checkpoint_of_their_last_epoch(
        tmp_path, tiny_root, shared_cache):
    """Failure 2 on a real Optuna (TPE) + ASHA search with a validation split: ASHA stops
    most trials; each ranked row carries the checkpoint of the epoch it shows, and
    predict uses rank 1 or fails, never another trial. (One sweep for both: this was
    also test_resume's Optuna test.)"""
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                     "  lr: {loguniform: [0.3, 3]}\n  dropout: {uniform: [0.0, 0.5]}\n"
                     "  batch_size: {choice: [4, 8]}\n  epochs: 9\n  val_fraction: 0.25\n")
    out = run_sweep("--search", "optuna", "--num-samples", "16", "--space",
                    str(space), "--data-dir", tiny_root, "--results-dir",
                    str(tmp_path / "results"), "--name", "e", "--cache-dir",
                    shared_cache, "--seed", "3")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exp = tmp_path / "results" / "e"
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 16 and board["rank"].notna().all()
    # what Optuna sampled, and the validation split that ranks
    assert board["lr"].nunique() == 16 and board["lr"].between(0.3, 3).all()
    assert set(board["batch_size"]) <= {4, 8} and board["dropout"].between(0, 0.5).all()
    assert board["ranked_by"][0] == "val_acc (max)"
    assert board["val_acc"].is_monotonic_decreasing
    assert {"val_acc", "val_acc_ci_low", "test_acc", "test_acc_ci_high"} <= set(board.columns)
    assert (board["val_images"] == 6).all() and (board["test_images"] == 12).all()
    stopped = board[board["status"] == "EARLY_STOPPED"]
    assert len(stopped) >= 4                                   # ASHA did stop trials
    assert set(stopped["epochs_done"]) <= {2, 6}               # its rungs (grace 2, factor 3)
    assert set(board["status"]) <= {"TERMINATED", "EARLY_STOPPED"}
    assert board["checkpoint_path"].notna().all()
    assert (board["checkpoint_epoch"] == board["epochs_done"]).all()
    for _, row in board.iterrows():
        meta = json.loads((exp / row["checkpoint_path"] / "meta.json").read_text())
        assert meta["epoch"] == row["epochs_done"]
        assert meta["metrics"]["val_acc"] == pytest.approx(row["val_acc"])

    from tune_food.common.errors import SweepError
    from tune_food.inference.checkpoints import best_checkpoint

    chosen = best_checkpoint(str(exp))
    assert chosen.trial_id == board["trial_id"][0] and chosen.epoch == board["epochs_done"][0]
    # rank 1 without its checkpoint: an error that names it, not rank 2
    broken = board.copy()
    broken.loc[0, "checkpoint_path"] = None
    broken.to_csv(exp / "leaderboard.csv", index=False)
    with pytest.raises(SweepError, match=f"best trial {board['trial_name'][0]}.* no checkpoint"):
        best_checkpoint(str(exp))


# --------------------------------------------------------------------------- dry run

def _rejections(tmp_path, tiny_root):
    """(case, argv) pairs the real run rejects before launch."""
    lite = "parameters:\n  model: efficientnet_lite0\n"
    spaces = {   # file name -> its YAML
        "optuna_grid": lite + "  data: {grid_search: [tiny, tiny2]}\n"
                              "  lr: {loguniform: [0.001, 0.1]}\n",
        "grid": lite + "  data: tiny\n  epochs: 1\n",
        "sampled": lite + "  data: tiny\n  lr: {loguniform: [0.001, 0.1]}\n",
        "b": "parameters:\n  model: {grid_search: [efficientnet_b0, efficientnet_b3]}\n"
             "  data: tiny\n",
        "unknown": lite + "  data: nowhere\n",
        "val": lite + "  data: tiny\n  val_fraction: 0.95\n",
        "worst": "metric: test_acc\nmode: min\n" + lite + "  data: tiny\n",
    }
    for name, text in spaces.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    optuna_grid, grid, sampled, b_models, unknown_data, big_val, worst_first = (
        tmp_path / f"{name}.yaml" for name in spaces)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "results" / "taken").mkdir(parents=True)
    base = ["--data-dir", tiny_root, "--results-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache")]
    return [
        ("optuna with grid_search", ["--search", "optuna", "--space", str(optuna_grid), *base]),
        ("autoscale without a cluster", ["--grid", "--space", str(grid), "--autoscale",
                                         "--gpus-per-trial", "1", *base]),
        ("name too long", ["--grid", "--space", str(grid), "--name", "n" * 300, *base]),
        ("results dir is a file", ["--grid", "--space", str(grid), "--data-dir", tiny_root,
                                   "--results-dir", str(a_file)]),
        ("results dir under a file", ["--grid", "--space", str(grid), "--data-dir", tiny_root,
                                      "--results-dir", str(a_file / "sub")]),
        ("cache dir is a file", ["--grid", "--space", str(grid), "--data-dir", tiny_root,
                                 "--results-dir", str(tmp_path / "results"), "--cache-dir",
                                 str(a_file)]),
        ("weights offline", ["--grid", "--space", str(b_models), *base]),
        ("unknown dataset", ["--grid", "--space", str(unknown_data), *base]),
        ("grid of a sampled space", ["--grid", "--space", str(sampled), *base]),
        ("val_fraction too large", ["--grid", "--space", str(big_val), *base]),
        ("GPU on a CPU machine", ["--grid", "--space", str(grid), "--gpus-per-trial", "1", *base]),
        ("existing name", ["--grid", "--space", str(grid), "--name", "taken", *base]),
        ("resume of an unknown sweep", ["--resume", "--name", "nope", *base]),
        ("accuracy ranked worst first", ["--grid", "--space", str(worst_first), *base]),
        ("grid and search on resume", ["--grid", "--search", "random", "--resume", "--name",
                                       "taken", *base]),
        ("nothing listens at the address", ["--grid", "--space", str(grid), "--address",
                                            "127.0.0.1:1", *base]),
    ]


def test_the_dry_run_rejects_what_the_real_run_rejects(tmp_path, tiny_root, monkeypatch):
    """Each case runs twice in process, with and without --dry-run: exit 2 and the same
    one line on stderr both times. Through the checks without Ray
    (``conftest.sweep_checks``: ``run_sweep``'s own checks, which a real run makes while
    its local Ray starts)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for case, argv in _rejections(tmp_path, tiny_root):
        lines = []
        for extra in (["--dry-run"], []):
            err, out = io.StringIO(), io.StringIO()
            with redirect_stderr(err), redirect_stdout(out):
                code, _ = sweep_checks(*argv, *extra)
            assert code == 2, (case, extra, out.getvalue()[-2000:], err.getvalue())
            text = err.getvalue().strip().splitlines()
            assert len(text) == 1 and text[0].startswith("python -m tune_food.sweep: error:"), \
                (case, text)
            lines.append(text[0])
        assert lines[0] == lines[1], case
        if case == "weights offline":   # every missing file at once, in the right folder
            hub = os.path.join(str(tmp_path / "empty-torch-home"), "hub", "checkpoints")
            assert "efficientnet_b0" in lines[0] and "efficientnet_b3" in lines[0]
            assert hub in lines[0]
        if case == "optuna with grid_search":
            assert "choice" in lines[0]
    assert not os.path.exists(tmp_path / "results" / ("n" * 300))


def test_path_flags_expand_home_and_variables(tmp_path, monkeypatch):
    from tune_food.predict import main as predict_main
    from tune_food.report import main as report_main
    from tune_food.sweep.cli import parse_options

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SWEEPS", str(tmp_path / "sweeps"))
    args = parse_options(["--grid", "--results-dir", "~/res", "--data-dir",
                                      "$SWEEPS/data", "--cache-dir", "~/c", "--space",
                                      "${SWEEPS}/s.yaml"])
    assert args.results_dir == str(tmp_path / "res")
    assert args.data_dir == str(tmp_path / "sweeps" / "data")
    assert args.cache_dir == str(tmp_path / "c")
    assert args.space == str(tmp_path / "sweeps" / "s.yaml")
    assert parse_options(["--grid", "--results-dir", "s3://b/~x"]).results_dir == "s3://b/~x"
    for main, argv, shown in (
            (report_main, ["~/gone"], str(tmp_path / "gone")),
            (predict_main, ["--checkpoint", "~/ck", "img.jpg"], str(tmp_path / "ck")),
            (predict_main, ["--sweep", "$SWEEPS/s", "img.jpg"], str(tmp_path / "sweeps" / "s"))):
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            assert main(argv) == 2
        assert shown in err.getvalue() and "~" not in err.getvalue(), err.getvalue()


def test_resume_refuses_data_that_changed_since_the_sweep_started(tmp_path, tiny_root):
    """The trials already done saw other images: resuming would rank trials on
    different data. Refused before launch, in --dry-run too (the checks without Ray,
    ``conftest.sweep_checks``)."""
    exp = tmp_path / "results" / "old"
    exp.mkdir(parents=True)
    (exp / "space.yaml").write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                                    "  epochs: 1\n")
    from tune_food.sweep.cli import parse_options

    args = parse_options(["--grid", "--data-dir", tiny_root]).saved()
    (exp / "sweep.json").write_text(json.dumps({
        "name": "old", "metric": "test_acc", "mode": "max", "status": "interrupted",
        "args": args, "datasets": {"tiny": {"path": "tiny", "files": 35, "bytes": 1,
                                            "sha256": "0" * 64}}}))
    for extra in (["--dry-run"], []):
        err = io.StringIO()
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            assert sweep_checks("--resume", "--name", "old", "--results-dir",
                                str(tmp_path / "results"), *extra)[0] == 2
        assert "the data changed since sweep 'old' started: tiny (35 files of 1 bytes then, " \
            "36 files of " in err.getvalue(), err.getvalue()
