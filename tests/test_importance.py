"""Which hyperparameters mattered (tune_food.results.importance), on a real search: Ray
Tune's Optuna search over real photos, Optuna's own fANOVA on its completed trials."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from conftest import run_cli, run_sweep


@pytest.mark.slow
def test_lr_over_three_decades_matters_more_than_the_seed(tmp_path, tiny_root, shared_cache):
    space = tmp_path / "lr_seed.yaml"
    space.write_text("metric: test_loss\nparameters:\n  model: efficientnet_lite0\n"
                     "  data: tiny\n  epochs: 4\n  batch_size: 8\n"
                     "  lr: {loguniform: [0.0001, 0.1]}\n  seed: {choice: [0, 1]}\n")
    results = tmp_path / "results"
    out = run_sweep("--search", "optuna", "--num-samples", "12",
                    "--scheduler", "fifo", "--space", str(space), "--data-dir", tiny_root,
                    "--results-dir", str(results), "--name", "imp", "--cache-dir",
                    shared_cache, "--seed", "1")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exp = results / "imp"
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 12 and board["rank"].notna().all()
    assert board["lr"].max() / board["lr"].min() > 100 and set(board["seed"]) == {0, 1}
    table = pd.read_csv(exp / "importance.csv")
    assert list(table.columns[:5]) == ["parameter", "importance", "evaluator", "trials", "metric"]
    assert set(table["parameter"]) == {"lr", "seed"}   # only what varies
    assert (table["trials"] == 12).all() and (table["metric"] == "test_loss").all()
    assert table["importance"].sum() == pytest.approx(1.0)
    imp = dict(zip(table["parameter"], table["importance"]))
    assert imp["lr"] > imp["seed"], table
    assert table.loc[table["parameter"] == "seed", "configs_with_seeds"].iloc[0] == 0
    for png in ("importance.png", "parallel.png"):
        assert os.path.getsize(exp / "plots" / png) > 10_000
        assert f"plot: {exp / 'plots' / png}" in out.stdout

    # report rebuilds them, byte for byte
    before = {p: (exp / p).read_bytes() for p in ("importance.csv", "plots/importance.png")}
    rep = run_cli("tune_food.report", str(exp))
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert {p: (exp / p).read_bytes() for p in before} == before
    assert f"plot: {exp / 'plots' / 'parallel.png'}" in rep.stdout


@pytest.mark.slow   # reads the output of a real sweep (small_sweep)
def test_too_few_trials_for_importance_is_one_line(small_sweep):
    """A 2-trial grid: no importance.csv, one line instead; the parallel view is drawn."""
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [x for x in proc.stdout.splitlines() if x.startswith("importance:")]
    assert lines == ["importance: 2 completed trial(s), fewer than the 10 fANOVA needs here: "
                     "importance.csv and plots/importance.png not written"]
    assert not os.path.exists(os.path.join(exp, "importance.csv"))
    assert os.path.isfile(os.path.join(exp, "plots", "parallel.png"))


@pytest.mark.slow
def test_a_grid_with_repeated_seeds_says_how_much_the_seed_alone_moves_the_metric(
        tmp_path, tiny_root, shared_cache):
    space = tmp_path / "seeds.yaml"
    space.write_text("metric: test_loss\nparameters:\n  model: efficientnet_lite0\n"
                     "  data: tiny\n  epochs: 3\n  batch_size: 8\n"
                     "  lr: {grid_search: [0.0001, 0.001, 0.01, 0.03, 0.1]}\nseeds: [0, 1]\n")
    out = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root,
                    "--results-dir", str(tmp_path / "results"), "--name", "seeds",
                    "--cache-dir", shared_cache)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    exp = tmp_path / "results" / "seeds"
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 10 and board["rank"].notna().all()
    table = pd.read_csv(exp / "importance.csv").set_index("parameter")
    assert set(table.index) == {"lr", "seed"} and table.loc["lr", "importance"] > \
        table.loc["seed", "importance"]
    # the seed's row: the mean over the 5 learning rates of the std of its 2 seeds' loss
    spread = board.groupby("lr")["test_loss"].std(ddof=1).mean()
    assert table.loc["seed", "configs_with_seeds"] == 5
    assert table.loc["seed", "metric_std_across_seeds"] == pytest.approx(spread, rel=1e-9)
    assert pd.isna(table.loc["lr", "metric_std_across_seeds"])
