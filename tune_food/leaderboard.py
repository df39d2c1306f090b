"""Turn a sweep's results into a ranked leaderboard (and its CSV files).

:func:`make_leaderboard` builds one row per trial, best first by the space's metric
(ties broken by the lower loss on the same split: test_loss for test_acc, val_loss
for val_acc), with every hyperparameter, the final metrics with
their 95 % Wilson intervals, parameter counts, training time, checkpoint path and log
dir. :func:`leaderboard_by_config` aggregates repeated seeds. The CSV files are written
with :func:`tune_food.files.write_csv_atomic`.
"""

from __future__ import annotations

import os
from typing import Iterable

import pandas as pd

METRIC_COLUMNS = ["test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss",
                  "val_acc", "val_acc_ci_low", "val_acc_ci_high", "val_loss",
                  "train_acc", "train_loss"]
INFO_COLUMNS = ["epoch", "test_correct", "test_images", "val_images", "trainable_params", "total_params",
                "feature_cache", "device", "node_id", "node_ip", "time_total_s"]


def _status(result) -> str:
    if result.error is not None:
        return "ERROR"
    return "TERMINATED" if result.metrics else "NOT_STARTED"  # e.g. an interrupted sweep


def make_leaderboard(results: Iterable, metric: str, mode: str,
                     param_keys: list[str]) -> pd.DataFrame:
    """Rank trials: best ``metric`` first, ties by lower loss on the same split.

    Args:
        results: ``ray.tune.Result`` objects (a ``ResultGrid`` iterates as these).
        metric: column that ranks (e.g. ``"test_acc"``); mode ``"max"`` or ``"min"``.
        param_keys: hyperparameters to show as columns, in this order.

    Returns:
        A DataFrame with columns ``rank, trial_id, trial_name, status, ranked_by``, the
        parameters, :data:`METRIC_COLUMNS` that any trial reported, ``epoch``
        (epochs run), counts, ``time_total_s`` (seconds), ``checkpoint_path``,
        ``logdir`` and ``error``. Best first; trials without the metric (errored) last.
    """
    rows = []
    for result in results:
        m = result.metrics or {}
        row = {"trial_id": m.get("trial_id") or os.path.basename(result.path or ""),
               "trial_name": m.get("trial_name") or os.path.basename(result.path or ""),
               "status": _status(result), "ranked_by": f"{metric} ({mode})"}
        config = result.config or {}
        row.update({k: config.get(k) for k in param_keys})
        if row.get("dropout") is None and "dropout" in param_keys:
            row["dropout"] = m.get("head_dropout")  # the model's default, as used
        row.update({k: m.get(k) for k in METRIC_COLUMNS + INFO_COLUMNS})
        row["checkpoint_path"] = result.checkpoint.path if result.checkpoint else None
        row["logdir"] = result.path
        row["error"] = (str(result.error).strip().splitlines() or [""])[-1][:300] \
            if result.error is not None else None
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    empty = [c for c in METRIC_COLUMNS + INFO_COLUMNS if c in df and df[c].isna().all()]
    df = df.drop(columns=empty)  # e.g. val_* when no trial held out a validation split
    # ties: lower loss on the same split (val_acc -> val_loss: the test split never
    # takes part in choosing a winner when a validation split ranks)
    tie = f"{metric.split('_')[0]}_loss"
    sort_cols = [metric] + ([tie] if tie != metric and tie in df else [])
    ascending = [mode == "min"] + [True] * (len(sort_cols) - 1)
    if metric in df:
        df = df.sort_values(sort_cols, ascending=ascending, na_position="last", kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    return df.reset_index(drop=True)


def leaderboard_by_config(board: pd.DataFrame, param_keys: list[str], metric: str,
                          mode: str) -> pd.DataFrame:
    """Aggregate repeated seeds: one row per configuration (every parameter but
    ``seed``) with ``mean``, ``std`` and ``count`` of each metric, ranked by the
    metric's mean."""
    keys = [k for k in param_keys if k != "seed" and k in board]
    metrics = [c for c in METRIC_COLUMNS if c in board and not c.endswith(("_low", "_high"))]
    grouped = board.dropna(subset=[metric] if metric in board else None)
    grouped = grouped.astype({k: str for k in keys}).groupby(keys, dropna=False)[metrics]
    agg = grouped.agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{stat}" for m, stat in agg.columns]
    agg = agg.reset_index().sort_values(f"{metric}_mean", ascending=mode == "min",
                                        kind="stable")
    agg.insert(0, "rank", range(1, len(agg) + 1))
    return agg.reset_index(drop=True)


def results_dataframe(results: Iterable, param_keys: list[str]) -> pd.DataFrame:
    """Every reported row of every trial (one row per trial and epoch), with the
    trial's parameters as ``config/<key>`` columns."""
    frames = []
    for result in results:
        df = result.metrics_dataframe
        if df is None or df.empty:
            continue
        df = df.copy()
        for k in param_keys:
            df[f"config/{k}"] = result.config.get(k)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
