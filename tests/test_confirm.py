"""``--resume --confirm K --confirm-seeds N``: a finished sweep's top configurations
trained again with new seeds, and the verdict (confirmed.csv) recomputed here from the
trials' own predictions; an interrupted confirmation resumed; what it refuses."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from conftest import make_subset, run_cli, run_sweep, signal_at, sweep_checks

GRID = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n"
        "  lr: {grid_search: [0.001, 0.01, 0.03]}\n  batch_size: 6\n")


def _hashes(exp: Path, trials_only: bool = False) -> dict[str, str]:
    """relative path -> SHA-256 of every file in ``exp`` (``trials_only``: in its trial
    folders, those holding a params.json)."""
    roots = [p for p in exp.iterdir() if (p / "params.json").is_file()] if trials_only \
        else [exp]
    return {str(f.relative_to(exp)): hashlib.sha256(f.read_bytes()).hexdigest()
            for root in roots for f in sorted(root.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def finished_grid(tiny_root, shared_cache, tmp_path_factory):
    """A finished 3-configuration grid (Lite0, 1 epoch, lr 0.001 / 0.01 / 0.03) as
    ``results/g``, and a copy of it as ``copy/g`` (the interrupted confirmation's)."""
    tmp = tmp_path_factory.mktemp("confirm")
    space = tmp / "grid.yaml"
    space.write_text(GRID)
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root,
                     "--results-dir", str(tmp / "results"), "--cache-dir", shared_cache,
                     "--name", "g")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shutil.copytree(tmp / "results" / "g", tmp / "copy" / "g", symlinks=True)
    return tmp


def _checkpoint_predictions(trial: Path) -> pd.DataFrame:
    """The predictions.csv of a trial's last checkpoint."""
    last = sorted(trial.glob("checkpoint_*"))[-1]
    return pd.read_csv(last / "predictions.csv")


@pytest.mark.slow
def test_a_grids_top_3_confirmed_with_3_seeds(finished_grid, tiny_root, tmp_path, capsys):
    results = finished_grid / "results"
    exp = results / "g"
    before = _hashes(exp, trials_only=True)
    everything = _hashes(exp)
    assert len({Path(p).parts[0] for p in before}) == 3

    # refused before Ray starts, in one line, nothing changed: K above the configurations
    # that ran; images that changed since the sweep ran (the same dataset name, other photos)
    code, _ = sweep_checks("--resume", "--name", "g", "--results-dir", str(results),
                           "--confirm", "4")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["python -m tune_food.sweep: error: --confirm 4: the sweep ran "
                                 "3 configuration(s) that completed; confirm at most 3"]
    other = make_subset(str(tmp_path / "other" / "tiny"), {"train": 8, "test": 4}, offset=1)
    code, _ = sweep_checks("--resume", "--name", "g", "--results-dir", str(results),
                           "--confirm", "--data-dir", str(Path(other).parent))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "the data changed since sweep 'g' started" in err[0]
    assert _hashes(exp) == everything

    ranks = dict(pd.read_csv(exp / "leaderboard.csv")[["trial_id", "rank"]].values)
    proc = run_sweep("--resume", "--name", "g", "--results-dir", str(results),
                     "--confirm", "3", "--confirm-seeds", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(exp / "confirmed.csv")   # each from its trial, at its rank before
    assert sorted(zip(table["trial_id"], table["sweep_rank"])) == sorted(ranks.items())
    assert "confirming: 3 configuration(s) x 3 new seeds = 9 trials added to the 3 of " \
           "sweep g" in proc.stdout
    after = _hashes(exp, trials_only=True)
    assert {k: after[k] for k in before} == before       # the earlier trials byte for byte
    new = sorted({Path(p).parts[0] for p in after} - {Path(p).parts[0] for p in before})
    assert len(new) == 9
    params = {t: json.loads((exp / t / "params.json").read_text()) for t in new}
    assert sorted((p["lr"], p["seed"]) for p in params.values()) == sorted(
        (lr, s) for lr in (0.001, 0.01, 0.03) for s in (0, 1, 2))
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "finished" and state["planned"]["trials"] == 12
    assert state["confirmations"][0]["seeds"] == [0, 1, 2]
    assert state["confirmations"][0]["started"] is True
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 12 and (board["status"] == "TERMINATED").all()
    assert board["confirms"].notna().sum() == 9

    _check_verdict(exp, params, proc.stdout)

    # the verdict is the report's too, byte for byte; a second confirmation is refused
    confirmed = (exp / "confirmed.csv").read_bytes()
    report = run_cli("tune_food.report", str(exp))
    assert report.returncode == 0, report.stderr[-3000:]
    assert "confirmation, 3 configuration(s) x 3 new seeds" in report.stdout
    assert (exp / "confirmed.csv").read_bytes() == confirmed
    code, _ = sweep_checks("--resume", "--name", "g", "--results-dir", str(results), "--confirm")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "was confirmed already" in err[0]
    _the_web_page_shows_the_verdict_and_refuses_a_second_confirmation(results, proc.stdout)


def _the_web_page_shows_the_verdict_and_refuses_a_second_confirmation(results: Path,
                                                                      stdout: str) -> None:
    """The Leaderboard page's head holds the verdict (read back from confirmed.csv, the
    sentence the sweep printed), and its Confirm button's launcher refuses the
    confirmed sweep without starting anything."""
    from tune_food.app import Launcher
    from tune_food.app.folders import load_board
    from tune_food.app.leaderboard_page import _head
    from tune_food.common.errors import SweepError

    sentence = next(x for x in stdout.splitlines() if x.startswith("confirmation, "))
    head = _head("g", load_board(str(results / "g")))
    assert f"**Confirmed** (confirmed.csv): {sentence}" in head
    launcher = Launcher(str(results), str(results))
    with pytest.raises(SweepError, match="^sweep 'g' was confirmed already"):
        launcher.confirm("g", 1, 0)
    with pytest.raises(SweepError, match="^no sweep named 'h'"):
        launcher.confirm("h", 1, 0)
    assert launcher.procs == {}


def _check_verdict(exp: Path, params: dict[str, dict], stdout: str) -> None:
    """confirmed.csv against what the new trials' own predictions.csv say: each
    configuration's mean, standard deviation and 95 % t-interval of test_acc over its 3
    seeds, the pooled test accuracy and its Wilson interval, and the paired t-test
    against the best mean (scipy, independently of tune_food.common.stats)."""
    per_lr: dict[float, dict[int, tuple[int, int]]] = {}
    for trial, p in params.items():
        pred = _checkpoint_predictions(exp / trial)
        test = pred[pred["split"] == "test"]
        per_lr.setdefault(p["lr"], {})[p["seed"]] = (
            int((test["label"] == test["predicted"]).sum()), len(test))
    table = pd.read_csv(exp / "confirmed.csv")
    assert len(table) == 3 and list(table["rank"]) == [1, 2, 3]
    accs = {lr: [c / n for _, (c, n) in sorted(seeds.items())] for lr, seeds in per_lr.items()}
    best_lr = table.iloc[0]["lr"]
    for _, row in table.iterrows():
        a = accs[row["lr"]]
        mean, sd = sum(a) / 3, pd.Series(a).std()
        assert row["new_seeds"] == "0 1 2"
        assert row["test_acc_mean"] == pytest.approx(mean, abs=1e-12)
        assert row["test_acc_std"] == pytest.approx(sd, abs=1e-12)
        if sd > 0:
            low, high = stats.t.interval(0.95, 2, loc=mean, scale=stats.sem(a))
            assert (row["test_acc_ci_low"], row["test_acc_ci_high"]) == pytest.approx(
                (low, high), abs=1e-12)
        correct = sum(c for c, _ in per_lr[row["lr"]].values())
        total = sum(n for _, n in per_lr[row["lr"]].values())
        ci = stats.binomtest(correct, total).proportion_ci(method="wilson")
        assert row["pooled_test_acc"] == pytest.approx(correct / total, abs=1e-12)
        assert (row["pooled_test_acc_ci_low"], row["pooled_test_acc_ci_high"]) == \
            pytest.approx((ci.low, ci.high), abs=1e-12)
        diffs = [x - y for x, y in zip(accs[best_lr], a)]
        if row["lr"] == best_lr or all(d == 0 for d in diffs):
            assert row["p_vs_best"] == 1.0
        elif len(set(diffs)) > 1:
            assert row["p_vs_best"] == pytest.approx(
                stats.ttest_rel(accs[best_lr], a).pvalue, abs=1e-12)
        assert bool(row["tied_with_best"]) == (row["p_vs_best"] >= 0.05)
    means = table["test_acc_mean"].tolist()
    assert means == sorted(means, reverse=True)
    tied = table[table["tied_with_best"]]
    sentence = next(x for x in stdout.splitlines() if x.startswith("confirmation, "))
    assert "the test split both chose and ranks (test_acc)" in sentence
    shipped = tied.sort_values(["cpu_ms", "rank"]).iloc[0]["trial_name"] if len(tied) > 1 \
        else table.iloc[0]["trial_name"]
    assert f"ship {shipped}" in sentence or f"ship the fastest of the tied, {shipped}" in sentence


@pytest.mark.slow
def test_a_confirmation_interrupted_by_ctrl_c_is_finished_by_a_plain_resume(finished_grid,
                                                                           capsys):
    results = finished_grid / "copy"
    exp = results / "g"
    before = _hashes(exp, trials_only=True)
    _a_pending_confirmation_is_planned_by_a_plain_resume(results, capsys)
    proc = run_sweep("--resume", "--name", "g", "--results-dir", str(results), "--confirm", "2",
                     "--confirm-seeds", "2", "--max-concurrent", "1", popen=True, merge=True)
    out, _, _ = signal_at(proc, "[1/4] done")
    assert proc.returncode == 130, out[-3000:]
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "interrupted" and state["confirmations"][0]["started"] is True
    board = pd.read_csv(exp / "leaderboard.csv")
    assert (board["status"] != "TERMINATED").any()

    more = run_sweep("--resume", "--name", "g", "--results-dir", str(results))
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    after = _hashes(exp, trials_only=True)
    assert {k: after[k] for k in before} == before
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 7 and (board["status"] == "TERMINATED").all()
    assert board["confirms"].notna().sum() == 4
    table = pd.read_csv(exp / "confirmed.csv")
    assert len(table) == 2 and (table["new_seeds"] == "0 1").all()
    assert json.loads((exp / "sweep.json").read_text())["status"] == "finished"
    assert "confirmation, 2 configuration(s) x 2 new seeds" in more.stdout


def _sweep_json(folder: Path, **keys) -> Path:
    """A sweep folder holding only a sweep.json (a grid's, ranked by test_acc)."""
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(
        {"name": folder.name, "metric": "test_acc", "mode": "max",
         "args": {"grid": True}, **keys}))
    return folder


@pytest.mark.parametrize("argv, message", [
    (["--grid", "--confirm"], "--confirm retrains the top configurations of a finished "
     "sweep: add --resume --name <the sweep>"),
    (["--resume", "--name", "g", "--confirm", "--confirm-seeds", "1"],
     "--confirm-seeds must be >= 2 (a spread over seeds needs two), got 1"),
    (["--resume", "--name", "g", "--confirm", "-1"],
     "--confirm K must be >= 1 (or left out: the configurations tied with the best, at most "
     "5), got -1"),
    (["--resume", "--name", "g", "--confirm-seeds", "3"],
     "--confirm-seeds is the number of seeds of --confirm: add --confirm"),
    (["--resume", "--name", "g", "--confirm", "--num-samples", "9"],
     "--confirm retrains the sweep's own configurations: drop --num-samples"),
    (["--resume", "--name", "i", "--confirm"],
     "sweep 'i' is interrupted, not finished: --confirm retrains the top configurations of "
     "a finished sweep; finish it first with --resume --name i"),
])
def test_what_a_confirmation_refuses_before_anything_starts(tmp_path, capsys, argv, message):
    results = tmp_path / "results"
    g = _sweep_json(results / "g", status="finished")
    _sweep_json(results / "i", status="interrupted")
    before = (g / "sweep.json").read_bytes()
    code, plan = sweep_checks(*argv, "--results-dir", str(results))
    assert code == 2 and plan is None
    assert capsys.readouterr().err.strip().splitlines() == \
        [f"python -m tune_food.sweep: error: {message}"]
    assert (g / "sweep.json").read_bytes() == before
    assert sorted(p.name for p in results.iterdir()) == ["g", "i"]


def _a_pending_confirmation_is_planned_by_a_plain_resume(results: Path, capsys) -> None:
    """The plan of ``--confirm 3 --confirm-seeds 3`` (no Ray): its 9 trials; recorded as
    interrupted before its Tuner started, a plain ``--resume`` plans the same 9 trials
    (sweep.json put back as it was afterwards)."""
    from tune_food.sweepdir.record import SweepState
    from tune_food.sweepdir.status import SweepStatus

    exp = results / "g"
    saved = (exp / "sweep.json").read_bytes()
    code, plan = sweep_checks("--resume", "--name", "g", "--results-dir", str(results),
                              "--confirm", "3", "--confirm-seeds", "3")
    assert code == 0, capsys.readouterr().err
    extension = plan.extension
    assert (extension.start, extension.to, extension.pending) == (3, 12, False)
    assert extension.confirm.seeds == [0, 1, 2] and len(extension.added) == 9
    assert [c["lr"] for c in extension.confirm.configs] == [
        float(lr) for lr in pd.read_csv(exp / "leaderboard.csv")["lr"]]   # best first
    assert (exp / "sweep.json").read_bytes() == saved
    state = SweepState.load(str(exp))
    state.status, state.confirmations = SweepStatus.INTERRUPTED, [extension.confirm]
    state.save(str(exp))
    try:
        code, again = sweep_checks("--resume", "--name", "g", "--results-dir", str(results))
        assert code == 0, capsys.readouterr().err
        assert again.extension.pending and again.extension.added == extension.added
        assert any("this resume starts the confirmation it was interrupted before" in n
                   for n in again.notes)
    finally:
        (exp / "sweep.json").write_bytes(saved)
