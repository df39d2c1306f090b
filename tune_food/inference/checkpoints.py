"""Which checkpoint of a sweep answers: a ranked row of its ``leaderboard.csv``
(rank 1, or a trial named), located on this machine even when the sweep was moved
(docs/architecture.md, decision 7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from tune_food.common.errors import SweepError
from tune_food.sweepdir.columns import (
    CHECKPOINT_EPOCH,
    CHECKPOINT_PATH,
    EPOCHS_DONE,
    RANK,
    RANKED_BY,
    TRIAL_ID,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import LEADERBOARD_FILE


@dataclass(frozen=True)
class ChosenCheckpoint:
    """The checkpoint ``predict --sweep`` (rank 1), ``export`` (rank 1, or the trial
    named) or a benchmark uses: a ranked row of the leaderboard."""

    path: str          # absolute checkpoint folder
    trial_name: str
    trial_id: str
    epoch: int         # the epoch the checkpoint holds (= the epoch the row shows)
    ranked_by: str
    score: float       # the ranking metric's value


def _locate(path: str, sweep_dir: str) -> str:
    """A path from ``leaderboard.csv`` as a folder on this machine: relative paths are
    relative to the sweep folder. An absolute path written by an older version that no
    longer exists (the sweep was moved) is looked for under the sweep folder by its last
    two parts (``<trial>/<checkpoint_NNNNNN>``); the original place is never read."""
    if not os.path.isabs(path):
        return os.path.join(os.path.abspath(sweep_dir), path)
    moved = os.path.join(os.path.abspath(sweep_dir), *path.rstrip("/").split("/")[-2:])
    return moved if os.path.isdir(moved) else path


def best_checkpoint(sweep_dir: str) -> ChosenCheckpoint:
    """The checkpoint of the rank-1 trial in ``<sweep_dir>/leaderboard.csv``
    (:func:`trial_checkpoint` with no trial named; it raises what that raises)."""
    return trial_checkpoint(sweep_dir)


def trial_checkpoint(sweep_dir: str, trial: str | None = None) -> ChosenCheckpoint:
    """The checkpoint of trial ``trial`` (its name or id) in ``<sweep_dir>/leaderboard.csv``;
    None: rank 1.

    Never falls back to another trial: a trial that cannot be used is an error.

    Returns:
        the :class:`ChosenCheckpoint` of the row: its folder as an absolute path on this
        machine (a moved sweep's own copy), and the epoch and score the row ranks.

    Raises:
        SweepError: no leaderboard, no such trial (the message names some), the trial is
            not ranked (it did not run to its end), it has no checkpoint, or its
            checkpoint holds another epoch than the one its row shows.
    """
    path = os.path.join(sweep_dir, LEADERBOARD_FILE)
    if not os.path.isfile(path):
        raise SweepError(f"{path} not found; pass a finished sweep folder, or rebuild it with "
                         f"python -m tune_food.report {sweep_dir}")
    board = pd.read_csv(path)
    if trial is not None:
        rows = board[(board[TRIAL_NAME].astype(str) == trial)
                     | (board[TRIAL_ID].astype(str) == trial)]
        if rows.empty:
            names = ", ".join(board[TRIAL_NAME].astype(str).head(5))
            raise SweepError(f"no trial {trial!r} in {path} (its trials: {names}"
                             f"{', ...' if len(board) > 5 else ''})")
        best = rows.iloc[0]
        if RANK not in board or pd.isna(best[RANK]):
            raise SweepError(f"trial {trial} of {path} is not ranked (status "
                             f"{best.get('status')}): it did not run to its end; resume the "
                             "sweep, or choose a ranked trial")
    else:
        ranked = board[board[RANK] == 1] if RANK in board else board[0:0]
        if ranked.empty:
            raise SweepError(f"no trial in {path} is ranked (none ran to its end or was "
                             "stopped by the scheduler); resume the sweep, or pass "
                             "--checkpoint DIR")
        best = ranked.iloc[0]
    which = "the best trial" if trial is None else "trial"
    ckpt = best.get(CHECKPOINT_PATH)
    if not isinstance(ckpt, str) or not ckpt:
        raise SweepError(f"{which} {best[TRIAL_NAME]} of {path} has no checkpoint; "
                         "pass another trial's folder with --checkpoint DIR")
    epoch = best.get(CHECKPOINT_EPOCH)
    if pd.isna(epoch) or int(epoch) != int(best[EPOCHS_DONE]):
        raise SweepError(f"the checkpoint of {which} {best[TRIAL_NAME]} holds epoch "
                         f"{epoch}, not epoch {best[EPOCHS_DONE]} whose metrics rank it; pass "
                         "a checkpoint with --checkpoint DIR")
    metric = str(best.get(RANKED_BY, "")).split(" ")[0]
    return ChosenCheckpoint(_locate(ckpt, sweep_dir), str(best[TRIAL_NAME]),
                            str(best[TRIAL_ID]), int(epoch), str(best.get(RANKED_BY, "")),
                            float(best[metric]) if metric in best else float("nan"))
