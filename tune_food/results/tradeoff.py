"""Accuracy against serving cost: which trial to ship.

A sweep's deployment figures (``sweep.json``'s ``deployment``, measured per backbone by
:mod:`tune_food.sweep.deployment` or ``report --deployment``) become the leaderboard's
:data:`DEPLOYMENT_COLUMNS`; :func:`fastest_tied` picks the trial to ship: the one with
the smallest ``cpu_ms`` among those the exact McNemar test cannot tell from the best
(``tied_with_best``, rank 1 included), ties broken by rank; :func:`tune_food.results.plots.tradeoff_figure`
draws ``plots/tradeoff.png``: test accuracy with its 95 % Wilson interval against
``cpu_ms``, the Pareto front (no other trial is both faster and more accurate), the
trials tied with the best marked. The parameter count is the leaderboard's
``total_params`` (every parameter, backbone included; reported by each trial).
"""

from __future__ import annotations

import shlex

import pandas as pd

from tune_food.sweepdir.layout import EXPORT_COMMAND

#: leaderboard columns read from sweep.json's ``deployment`` (by the trial's model)
DEPLOYMENT_COLUMNS = ("cpu_ms", "model_mb")


def add_deployment(board: pd.DataFrame, deployment: dict | None) -> pd.DataFrame:
    """``board`` with :data:`DEPLOYMENT_COLUMNS` filled from ``deployment`` (model ->
    figures) for each row's ``model``; unchanged when nothing was measured."""
    measured = {m: f for m, f in (deployment or {}).items() if "cpu_ms" in f}
    if not measured or "model" not in board:
        return board
    board = board.copy()
    for col in DEPLOYMENT_COLUMNS:
        board[col] = board["model"].map(lambda m, c=col: measured.get(m, {}).get(c))
        board[col] = pd.to_numeric(board[col], errors="coerce")
    return board


def fastest_tied(board: pd.DataFrame) -> pd.Series | None:
    """The ranked row with the smallest ``cpu_ms`` among those tied with the best (rank
    1 included), ties broken by rank; None without deployment figures or ranks."""
    if "cpu_ms" not in board or "rank" not in board:
        return None
    ranked = board[board["rank"].notna() & board["cpu_ms"].notna()]
    if "tied_with_best" in ranked:
        ranked = ranked[(ranked["rank"] == 1) | (ranked["tied_with_best"] == True)]  # noqa: E712
    else:
        ranked = ranked[ranked["rank"] == 1]
    if ranked.empty:
        return None
    return ranked.sort_values(["cpu_ms", "rank"], kind="stable").iloc[0]


def pareto_front(board: pd.DataFrame) -> pd.DataFrame:
    """The ranked rows no other row beats on both ``cpu_ms`` (lower) and ``test_acc``
    (higher), sorted by ``cpu_ms``: the steps of ``tradeoff.png``'s front."""
    rows = board.dropna(subset=["cpu_ms", "test_acc"]).sort_values(
        ["cpu_ms", "test_acc"], ascending=[True, False], kind="stable")
    best, keep = -1.0, []
    for idx, acc in rows["test_acc"].items():
        if acc > best:
            keep.append(idx)
            best = acc
    return rows.loc[keep]


def ship_summary(board: pd.DataFrame, sweep_dir: str) -> str:
    """Two lines: the fastest trial tied with the best (its model, ``cpu_ms``, test
    accuracy) and the command that exports it; ``""`` without figures."""
    row = fastest_tied(board)
    if row is None:
        return ""
    best = board[board["rank"] == 1].iloc[0]
    acc = f"test_acc {row['test_acc']:.3f}" if pd.notna(row.get("test_acc")) else ""
    what = (f"{row['trial_name']} ({row['model']}, {row['cpu_ms']:.1f} ms per photo on one "
            f"CPU thread, {acc})")
    if row["trial_name"] == best["trial_name"]:
        text = f"to ship: the best trial is also the fastest of those tied with it: {what}"
    else:
        text = (f"to ship: the fastest trial statistically tied with the best: {what}; the best "
                f"takes {best['cpu_ms']:.1f} ms")
    out = shlex.quote(f"{row['trial_name']}-demo")
    return (f"{text}\nexport it: {EXPORT_COMMAND} {shlex.quote(sweep_dir)} "
            f"--trial {shlex.quote(str(row['trial_name']))} --out {out}")
