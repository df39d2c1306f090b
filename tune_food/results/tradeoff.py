"""Accuracy against serving cost: which trial to ship.

A sweep's deployment figures (``sweep.json``'s ``deployment``, measured per backbone by
:mod:`tune_food.sweep.deployment` or ``report --deployment``) become the leaderboard's
:data:`~tune_food.sweepdir.columns.DEPLOYMENT_COLUMNS`; :func:`fastest_tied` picks the
trial to ship: the one with the smallest ``cpu_ms`` among those the exact McNemar test cannot tell from the best
(``tied_with_best``, rank 1 included), ties broken by rank; :func:`tune_food.results.plots.tradeoff_figure`
draws ``plots/tradeoff.png``: test accuracy with its 95 % Wilson interval against
``cpu_ms``, the Pareto front (no other trial is both faster and more accurate), the
trials tied with the best marked. The parameter count is the leaderboard's
``total_params`` (every parameter, backbone included; reported by each trial).
"""

from __future__ import annotations

import shlex

import pandas as pd

from tune_food.models.figures import CPU_MS
from tune_food.sweepdir.columns import DEPLOYMENT_COLUMNS, RANK, TIED_WITH_BEST, TRIAL_NAME
from tune_food.sweepdir.layout import EXPORT_COMMAND


def add_deployment(board: pd.DataFrame, deployment: dict | None) -> pd.DataFrame:
    """``board`` with :data:`~tune_food.sweepdir.columns.DEPLOYMENT_COLUMNS` filled from ``deployment`` (model ->
    figures) for each row's ``model``; unchanged when nothing was measured."""
    measured = {m: f for m, f in (deployment or {}).items() if CPU_MS in f}
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
    if CPU_MS not in board or RANK not in board:
        return None
    ranked = board[board[RANK].notna() & board[CPU_MS].notna()]
    if TIED_WITH_BEST in ranked:
        ranked = ranked[(ranked[RANK] == 1) | (ranked[TIED_WITH_BEST] == True)]  # noqa: E712
    else:
        ranked = ranked[ranked[RANK] == 1]
    if ranked.empty:
        return None
    return ranked.sort_values([CPU_MS, RANK], kind="stable").iloc[0]


def pareto_front(board: pd.DataFrame) -> pd.DataFrame:
    """The ranked rows no other row beats on both ``cpu_ms`` (lower) and ``test_acc``
    (higher), sorted by ``cpu_ms``: the steps of ``tradeoff.png``'s front."""
    rows = board.dropna(subset=[CPU_MS, "test_acc"]).sort_values(
        [CPU_MS, "test_acc"], ascending=[True, False], kind="stable")
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
    best = board[board[RANK] == 1].iloc[0]
    acc = f"test_acc {row['test_acc']:.3f}" if pd.notna(row.get("test_acc")) else ""
    what = (f"{row[TRIAL_NAME]} ({row['model']}, {row[CPU_MS]:.1f} ms per photo on one "
            f"CPU thread, {acc})")
    if row[TRIAL_NAME] == best[TRIAL_NAME]:
        text = f"to ship: the best trial is also the fastest of those tied with it: {what}"
    else:
        text = (f"to ship: the fastest trial statistically tied with the best: {what}; the best "
                f"takes {best[CPU_MS]:.1f} ms")
    out = shlex.quote(f"{row[TRIAL_NAME]}-demo")
    return (f"{text}\nexport it: {EXPORT_COMMAND} {shlex.quote(sweep_dir)} "
            f"--trial {shlex.quote(str(row[TRIAL_NAME]))} --out {out}")
