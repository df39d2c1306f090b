"""Turn a sweep's trials into a ranked leaderboard and the full results table.

Input is one :class:`TrialRecord` per trial (read from the sweep folder by
:func:`tune_food.results.outputs.load_trials`). :func:`make_leaderboard` gives every trial a
status that says what really happened to it (:data:`STATUSES`), ranks the complete
trials (``TERMINATED``, ``EARLY_STOPPED``) by the space's metric, ties broken by the
lower loss on the same split (test_loss for test_acc, val_loss for val_acc), and keeps
the others visible below them, unranked. Paths in the leaderboard are relative to the
sweep folder, so a moved or copied sweep still works. :func:`leaderboard_by_config`
aggregates repeated seeds; :func:`results_dataframe` holds every (trial, epoch) once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from tune_food.common.stats import ALPHA, mcnemar_exact, t_half_width
from tune_food.sweepdir.columns import (
    CHECKPOINT_EPOCH,
    CHECKPOINT_PATH,
    EPOCH,
    EPOCHS_DONE,
    EPOCHS_PLANNED,
    ERROR,
    INFO_COLUMNS,
    LOGDIR,
    METRIC_COLUMNS,
    P_VS_BEST,
    RANK,
    RANKED_BY,
    STATUS,
    TIED_WITH_BEST,
    TRIAL_ID,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import TUNE_INTERNAL_KEYS
from tune_food.sweepdir.status import RANKED_STATUSES, RayStatus, TrialStatus

#: the sort that keeps equal keys in their order (numpy's default quicksort does not from
#: 17 keys on); mutmut: "STABLE" is equivalent, numpy reads the kind case-insensitively
STABLE = "stable"  # pragma: no mutate
#: every status a leaderboard row can have (:class:`~tune_food.sweepdir.status.TrialStatus`)
STATUSES = tuple(TrialStatus)



@dataclass
class TrialRecord:
    """What the sweep folder says about one trial.

    Attributes:
        trial_id: Ray Tune's trial id (``"a7a6a_00003"``).
        ray_status: Ray Tune's saved status (``TERMINATED``, ``ERROR``, ``PENDING``,
            ``RUNNING``, ``PAUSED``). Ray saves ``TERMINATED`` both for a trial that
            ran all its epochs and for one its scheduler stopped.
        config: the trial's hyperparameters.
        history: one row per reported epoch (each epoch once, the last report of it
            kept), sorted by epoch; empty when the trial never reported.
        path: the trial folder (absolute, or a path on the storage filesystem).
        checkpoint: the trial's latest checkpoint folder (same kind of path), or None.
        error: the last line of the trial's error, or None.
    """

    trial_id: str
    ray_status: str
    config: dict[str, Any]
    history: pd.DataFrame
    path: str
    checkpoint: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """The last reported epoch's metrics ({} when none)."""
        return {} if self.history.empty else self.history.iloc[-1].to_dict()


def cell(value: Any) -> Any:
    """A hyperparameter as one table cell: a list (``test_data`` naming several
    datasets) becomes ``"a+b"``."""
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def resolved_dropout(config: dict, metrics: dict) -> float | None:
    """The head dropout a trial used: its config's ``dropout``, or where that is
    ``None`` the model's default, as the trial reported it (``head_dropout``; ``None``
    before its first report)."""
    value = config.get("dropout")
    return metrics.get("head_dropout") if value is None else value


def dedupe_history(history: pd.DataFrame | None) -> pd.DataFrame:
    """Each epoch once, sorted. A resumed trial replays the epochs after its last
    checkpoint and Ray appends them to ``progress.csv`` again; the later report of an
    epoch is the one the trial's final state descends from, so it is kept. Ray Tune's
    internal ``should_checkpoint`` flag (left in the first result after a restore) is
    not a metric and is dropped."""
    if history is None or history.empty or EPOCH not in history:
        return pd.DataFrame()
    history = history.dropna(subset=[EPOCH]).drop(columns=list(TUNE_INTERNAL_KEYS),
                                                    errors="ignore")
    # mutmut: the sort's kind is equivalent: the epochs are unique once deduplicated
    return (history.drop_duplicates(EPOCH, keep="last")
            .sort_values(EPOCH, kind="stable")  # pragma: no mutate
            .reset_index(drop=True))


def trial_status(record: TrialRecord) -> TrialStatus:
    """The truth about a trial, one of :data:`STATUSES`.

    ``ERROR``: the trial raised (after its retries). ``NOT_STARTED``: it never reported
    an epoch. ``TERMINATED``: it ran all its ``epochs``. ``EARLY_STOPPED``: Ray saved it
    as ``TERMINATED`` before its last epoch, which only the scheduler does (ASHA).
    ``INTERRUPTED``: stopped before its last epoch by the user, a crash or a killed
    driver (Ray saved it as running, pending or paused).
    """
    if record.error is not None or record.ray_status == RayStatus.ERROR:
        return TrialStatus.ERROR
    done = _epochs_done(record)
    if not done:
        return TrialStatus.NOT_STARTED
    if done >= _planned(record):
        return TrialStatus.TERMINATED
    return TrialStatus.EARLY_STOPPED if record.ray_status == RayStatus.TERMINATED else \
        TrialStatus.INTERRUPTED


def _planned(record: TrialRecord) -> int:
    value = record.config.get("epochs")
    return int(value) if isinstance(value, (int, float)) else 0


def _epochs_done(record: TrialRecord) -> int:
    return 0 if record.history.empty else int(record.history[EPOCH].max())


def _checkpoint_epoch(record: TrialRecord) -> int | None:
    """Epoch saved in the latest checkpoint: the last epoch reported with
    ``checkpoint_saved`` (the trainable flags each report that carries one)."""
    h = record.history
    if record.checkpoint is None or h.empty or "checkpoint_saved" not in h:
        return None
    # mutmut: fillna(None) is equivalent: astype(bool) reads a missing flag as False
    saved = h[h["checkpoint_saved"].fillna(False).astype(bool)]  # pragma: no mutate
    return int(saved[EPOCH].max()) if not saved.empty else None


def relative_to(path: str | None, root: str) -> str | None:
    """``path`` relative to the sweep folder ``root`` (both absolute paths or both paths
    on one storage filesystem); paths outside ``root`` stay as they are."""
    if not path:
        return None
    root = root.rstrip("/")
    if path == root:
        return "."
    return path[len(root) + 1:] if path.startswith(root + "/") else path


def _name(record: TrialRecord) -> str:
    """A trial's name from its folder ``<trial name>_<number>`` (for a trial that never
    reported the name it runs under)."""
    name = os.path.basename(record.path.rstrip("/"))
    # Ray's ids: <experiment>_<number>; mutmut: any maxsplit gives the same last part
    number = record.trial_id.rsplit("_", 1)[-1]  # pragma: no mutate
    if "_" in record.trial_id and number.isdigit() and name.endswith("_" + number):
        name = name[:-len(number) - 1]
    return name


def make_leaderboard(records: Iterable[TrialRecord], metric: str, mode: str,
                     param_keys: list[str], root: str) -> pd.DataFrame:
    """Rank trials: complete ones first, best ``metric`` first, ties by lower loss.

    Args:
        records: one :class:`TrialRecord` per trial.
        metric: column that ranks (e.g. ``"test_acc"``); mode ``"max"`` or ``"min"``.
        param_keys: hyperparameters to show as columns, in this order.
        root: the sweep folder; ``checkpoint_path`` and ``logdir`` are given relative
            to it.

    Returns:
        One row per trial with ``rank`` (1.. for ``TERMINATED`` / ``EARLY_STOPPED``
        trials that reported the metric; empty for the rest, which follow them),
        ``trial_id, trial_name, status, epochs_done, epochs_planned, ranked_by``, the
        parameters, the :data:`METRIC_COLUMNS` and :data:`INFO_COLUMNS` any trial
        reported (values of its last epoch; ``time_total_s`` in seconds),
        ``checkpoint_path`` and ``checkpoint_epoch`` (its latest checkpoint and the
        epoch it holds: for ranked rows the epoch the row shows), ``logdir`` and
        ``error``.
    """
    df = pd.DataFrame([_row(r, metric, mode, param_keys, root) for r in records])
    if df.empty:
        return df
    empty = [c for c in METRIC_COLUMNS + INFO_COLUMNS if c in df and df[c].isna().all()]
    return _ranked(df.drop(columns=empty), metric, mode)   # e.g. no val_* without a split


def _row(record: TrialRecord, metric: str, mode: str, param_keys: list[str],
         root: str) -> dict[str, Any]:
    """One trial's leaderboard row (:func:`make_leaderboard`), before ranking."""
    m = record.metrics
    row = {TRIAL_ID: record.trial_id, TRIAL_NAME: m.get(TRIAL_NAME) or _name(record),
           STATUS: trial_status(record).value, EPOCHS_DONE: _epochs_done(record),
           EPOCHS_PLANNED: _planned(record), RANKED_BY: f"{metric} ({mode})"}
    row.update({k: cell(record.config.get(k)) for k in param_keys})
    if "dropout" in param_keys:
        row["dropout"] = resolved_dropout(record.config, m)
    row.update({k: m.get(k) for k in METRIC_COLUMNS + INFO_COLUMNS})
    row[CHECKPOINT_PATH] = relative_to(record.checkpoint, root)
    row[CHECKPOINT_EPOCH] = _checkpoint_epoch(record)
    row[LOGDIR] = relative_to(record.path, root) if record.trial_id else None
    row[ERROR] = record.error
    row.update(record.extra)
    return row


def _ranked(df: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """``df`` with a ``rank`` column first: the complete trials that reported ``metric``,
    best first (ties: the lower loss on the same split), then the others by status and
    trial order (trials never created last), unranked."""
    ranked = df[STATUS].isin(RANKED_STATUSES) & (df[metric].notna() if metric in df else False)
    # ties: lower loss on the same split (val_acc -> val_loss: the test split never takes
    # part in choosing a winner); mutmut: the metric as its own tie-break sorts the same
    tie = f"{metric.split('_')[0]}_loss"
    sort_cols = [metric] + ([tie] if tie != metric and tie in df else [])  # pragma: no mutate
    ascending = [mode == "min"] + [True] * (len(sort_cols) - 1)
    top = df[ranked]
    if not top.empty:
        top = top.sort_values(sort_cols, ascending=ascending, kind=STABLE)
    order = {s: i for i, s in enumerate(STATUSES)}
    rest = df[~ranked]   # a sort on several columns is stable in pandas whatever its kind
    rest = rest.assign(_status=rest[STATUS].map(order), _never=rest[TRIAL_ID] == "") \
        .sort_values(["_status", "_never", TRIAL_ID]) \
        .drop(columns=["_status", "_never"])
    df = pd.concat([top, rest])
    df.insert(0, RANK, pd.array(list(range(1, len(top) + 1)) + [pd.NA] * len(rest),
                                  dtype="Int64"))
    return df.reset_index(drop=True)


def compare_with_best(board: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                      split: str, alpha: float = ALPHA) -> pd.DataFrame:
    """Add ``p_vs_best`` and ``tied_with_best`` to a ranked leaderboard.

    Each ranked trial is compared with rank 1 by :func:`~tune_food.common.stats.mcnemar_exact` on the images of
    ``split`` (``val`` or ``test``: the split that ranks) that both have predictions
    for, paired by content (``sha256``). ``tied_with_best`` is ``p >= alpha``: the
    difference from the best is not significant at that level. Rank 1 gets p = 1.
    Rows without predictions (unranked, or images that differ) get empty values.

    Args:
        predictions: trial_id -> that trial's ``predictions.csv`` (the epoch its row
            shows).
    """
    board = board.copy()
    # mutmut: an empty Series in place of the NA list gives the same all-empty column
    board[P_VS_BEST] = pd.Series([pd.NA] * len(board), dtype="Float64")  # pragma: no mutate
    board[TIED_WITH_BEST] = pd.Series([pd.NA] * len(board), dtype="boolean")  # pragma: no mutate
    if RANK not in board:
        return board
    ranked = board[board[RANK].notna()]
    if ranked.empty or ranked.iloc[0][TRIAL_ID] not in predictions:
        return board

    def correct(trial_id: str) -> pd.Series:
        p = predictions[trial_id]
        p = p[p["split"] == split].drop_duplicates("sha256").set_index("sha256")
        # mutmut: `!=` is equivalent: McNemar's p is the same for "wrong" as for "right"
        return p["label"] == p["predicted"]  # pragma: no mutate

    best = correct(ranked.iloc[0][TRIAL_ID])
    for idx, row in ranked.iterrows():
        if row[TRIAL_ID] not in predictions:
            continue
        other = correct(row[TRIAL_ID])
        if set(other.index) != set(best.index):   # not the same images: no paired test
            continue
        other = other.loc[best.index]
        p = mcnemar_exact(best.tolist(), other.tolist())
        board.loc[idx, P_VS_BEST] = p
        board.loc[idx, TIED_WITH_BEST] = p >= alpha
    return board


def tie_summary(board: pd.DataFrame, split: str) -> str:
    """One sentence: how many trials the data cannot tell from the best."""
    if TIED_WITH_BEST not in board or board[TIED_WITH_BEST].notna().sum() < 2:
        return ""   # nothing to compare the best with
    # rank 1 itself; mutmut: fillna(None) is equivalent (sum() skips NA)
    tied = int(board[TIED_WITH_BEST].fillna(False).sum()) - 1  # pragma: no mutate
    images = board.iloc[0].get(f"{split}_images")
    on = f" on these {int(images)} {split} images" if pd.notna(images) and images else ""
    who = "trial is" if tied == 1 else "trials are"
    text = (f"{tied} {who} statistically indistinguishable from the best{on} "
            f"(exact McNemar test, p >= {ALPHA:g})")
    ranked = board[board[RANK].notna()] if RANK in board else board
    apart = int(ranked[P_VS_BEST].isna().sum()) if P_VS_BEST in ranked else 0
    if apart:
        text += (f"; {apart} ranked trial(s) were evaluated on other images and cannot be "
                 "compared with it (p_vs_best empty)")
    return text


def leaderboard_by_config(board: pd.DataFrame, param_keys: list[str], metric: str,
                          mode: str) -> pd.DataFrame:
    """Aggregate repeated seeds: one row per configuration (every parameter but
    ``seed``) with ``mean``, ``std``, ``count`` of each metric over its ranked
    (complete) trials and the 95 % t-interval of the mean (``<metric>_ci_low`` /
    ``_ci_high``: mean -/+ :func:`tune_food.common.stats.t_half_width`; empty
    for a single seed), ranked by the metric's mean."""
    keys = [k for k in param_keys if k != "seed" and k in board]
    metrics = [c for c in METRIC_COLUMNS if c in board and not c.endswith(("_low", "_high"))]
    grouped = board[board[RANK].notna()] if RANK in board else board
    grouped = grouped.dropna(subset=[metric])
    # mutmut: dropna=None is as falsy as False (equivalent)
    grouped = grouped.astype({k: str for k in keys}).groupby(keys, dropna=False)[metrics]  # pragma: no mutate
    agg = grouped.agg(["mean", "std", "count"])
    agg.columns = [f"{m}_{stat}" for m, stat in agg.columns]
    for m in metrics:
        n = agg[f"{m}_count"]
        half = t_half_width(agg[f"{m}_std"], n)
        agg[f"{m}_mean_ci_low"] = agg[f"{m}_mean"] - half
        agg[f"{m}_mean_ci_high"] = agg[f"{m}_mean"] + half
    agg = agg.reset_index().sort_values(f"{metric}_mean", ascending=mode == "min",
                                        kind=STABLE)
    agg.insert(0, RANK, range(1, len(agg) + 1))
    return agg.reset_index(drop=True)


def results_dataframe(records: Iterable[TrialRecord], param_keys: list[str]) -> pd.DataFrame:
    """Every reported epoch of every trial, each (trial, epoch) once, with the trial's
    parameters as ``config/<key>`` columns; trials in the given order, epochs sorted.
    With no reported epoch at all (a sweep that stopped before its first result) the
    table is empty but keeps its key columns, so ``results.csv`` still has a header."""
    frames = []
    for record in records:
        if record.history.empty:
            continue
        df = record.history.copy()
        for k in param_keys:
            df[f"config/{k}"] = cell(record.config.get(k))
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else \
        pd.DataFrame(columns=[TRIAL_ID, EPOCH, *(f"config/{k}" for k in param_keys)])
