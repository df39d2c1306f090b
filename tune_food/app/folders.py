"""Reading sweep folders for the page: which sweeps there are, their leaderboard (read,
or rebuilt while the sweep runs), their test images and a trial's predictions.

Nothing here writes into a sweep folder; the file names are those of
:mod:`tune_food.sweepdir.layout`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tune_food.common.errors import SweepError
from tune_food.results.confirm import verdict_sentence
from tune_food.results.outputs import build_outputs
from tune_food.results.plots import make_plots
from tune_food.sweepdir.columns import (
    CHECKPOINT_PATH,
    EPOCHS_DONE,
    EPOCHS_PLANNED,
    P_VS_BEST,
    RANK,
    RANKED_BY,
    STATUS,
    TIED_WITH_BEST,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import (
    CONFIRMED_FILE,
    CURVES_PNG,
    IMPORTANCE_PNG,
    LEADERBOARD_FILE,
    LEADERBOARD_PNG,
    PARALLEL_PNG,
    PLOTS_DIR,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    STATE_FILE,
    TRADEOFF_PNG,
)
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.state import data_root, peek_state
from tune_food.sweepdir.status import SweepStatus
from tune_food.train.hparams import PARAMS

# shown on the Leaderboard tab, in the order of its images: of tune_food.results.plots.make_plots
# and of tune_food.results.importance (app.boards draws them for a running sweep)
PLOT_FILES = (LEADERBOARD_PNG, CURVES_PNG, TRADEOFF_PNG, IMPORTANCE_PNG, PARALLEL_PNG)


def abs_in(exp_dir: str, path: Any) -> str | None:
    """A path of a leaderboard row made absolute (new leaderboards store them relative
    to the sweep folder); None for an empty or missing one."""
    if not isinstance(path, str) or not path:
        return None
    return path if os.path.isabs(path) else os.path.join(exp_dir, path)


@dataclass
class Board:
    """What the Leaderboard page shows of one sweep."""

    board: pd.DataFrame           # leaderboard rows, best first
    results: pd.DataFrame         # one row per trial and epoch
    state: SweepState | None      # sweep.json (None: not readable yet)
    plots: list[str]              # paths of the PLOT_FILES drawn
    live: bool                    # rebuilt from the trial folders (the sweep is running)
    note: str = ""                # why the board is empty, if it is
    verdict: str = ""             # a confirmation's (confirmed.csv): what to ship
    built: float = field(default_factory=time.time)   # when it was read (epoch seconds)


def load_board(exp_dir: str, plots_cache: str | None = None) -> Board:
    """The leaderboard of a sweep folder.

    A finished (or interrupted) sweep: its ``leaderboard.csv``, ``results.csv`` and
    ``plots/``. A running one, or one without ``leaderboard.csv`` yet: rebuilt in memory
    from the trial folders with :func:`tune_food.results.outputs.build_outputs` (what the sweep
    and ``python -m tune_food.report`` write), its plots drawn by
    :func:`tune_food.results.plots.make_plots` under ``plots_cache``
    (the sweep folder is never written to).
    """
    state = peek_state(exp_dir)
    csv = os.path.join(exp_dir, LEADERBOARD_FILE)
    if (state is None or state.status != SweepStatus.RUNNING) and os.path.isfile(csv):
        board = pd.read_csv(csv)
        res_csv = os.path.join(exp_dir, RESULTS_FILE)
        results = pd.read_csv(res_csv) if os.path.isfile(res_csv) else pd.DataFrame()
        plots = [p for p in (os.path.join(exp_dir, PLOTS_DIR, n) for n in PLOT_FILES)
                 if os.path.isfile(p)]
        confirmed = os.path.join(exp_dir, CONFIRMED_FILE)
        verdict = verdict_sentence(pd.read_csv(confirmed), state) \
            if state is not None and os.path.isfile(confirmed) else ""
        return Board(board, results, state, plots, live=False, verdict=verdict)
    return _rebuild_board(exp_dir, state, plots_cache)


def _rebuild_board(exp_dir: str, state: SweepState | None, plots_cache: str | None) -> Board:
    """The live board of :func:`load_board`: built from the trial folders."""
    if state is None:   # a sweep starting (or a damaged sweep.json): nothing to build from
        return Board(pd.DataFrame(), pd.DataFrame(), None, [], live=True,
                     note=f"{os.path.join(exp_dir, STATE_FILE)} cannot be read (yet)")
    try:
        built = build_outputs(exp_dir, state)
    except SweepError as exc:
        return Board(pd.DataFrame(), pd.DataFrame(), state, [], live=True, note=str(exc))
    board, frame = built.board, built.results
    plots = []
    if plots_cache and not board.empty:
        out = os.path.join(plots_cache, os.path.basename(os.path.abspath(exp_dir)))
        plots = make_plots(out, board, frame, built.best_predictions, data_root(state))
    return Board(board, frame, state, plots, live=True,
                 verdict=built.verdict.sentence if built.verdict is not None else "")


def checkpointed(board: pd.DataFrame, exp_dir: str) -> pd.DataFrame:
    """The rows of ``board`` whose checkpoint folder exists, best first, with the
    checkpoint as an absolute path in ``checkpoint``."""
    if board.empty or CHECKPOINT_PATH not in board:
        return board.iloc[0:0].assign(checkpoint=[])
    ckpt = board[CHECKPOINT_PATH].map(lambda p: abs_in(exp_dir, p))
    rows = board.assign(checkpoint=ckpt)
    keep = rows["checkpoint"].map(lambda p: bool(p) and os.path.isdir(p))
    return rows[keep].sort_values(RANK)


def display_board(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's columns a person reads: rank, trial, status, the
    hyperparameters that differ between trials (and model, data, epochs), the ranking
    metric, test accuracy with its 95 % interval, and ``p_vs_best``,
    ``tied_with_best``, ``epochs_done`` / ``epochs_planned`` when the sweep has them."""

    if board.empty:
        return pd.DataFrame({RANK: [], "trial": [], STATUS: []})
    out = pd.DataFrame({RANK: board[RANK], "trial": board.get(TRIAL_NAME),
                        STATUS: board.get(STATUS)})
    for key in PARAMS:
        if key in board and (key in ("model", "data", "epochs") or
                             board[key].astype(str).nunique() > 1):
            out[key] = board[key]
    ranked = ranked_by(board)
    if ranked != "test_acc" and ranked in board:
        out[ranked] = board[ranked].round(4)
    if "test_acc" in board:
        out["test_acc"] = board["test_acc"].round(4)
        if {"test_acc_ci_low", "test_acc_ci_high"} <= set(board):
            out["test_acc 95% CI"] = [
                "" if pd.isna(lo) else f"{lo:.3f} – {hi:.3f}"
                for lo, hi in zip(board["test_acc_ci_low"], board["test_acc_ci_high"])]
    for col in (P_VS_BEST, TIED_WITH_BEST, EPOCHS_DONE, EPOCHS_PLANNED):
        if col in board:
            out[col] = board[col].round(4) if col == P_VS_BEST else board[col]
    return out.reset_index(drop=True)


def ranked_by(board: pd.DataFrame) -> str:
    """The metric the leaderboard ``board`` (non-empty) is ranked by (``test_acc`` when
    it does not say)."""
    return str(board[RANKED_BY].iloc[0]).split()[0] if RANKED_BY in board else "test_acc"


def read_predictions(csv: str, exp: str) -> pd.DataFrame:
    """A ``predictions.csv`` (columns ``image, label, predicted, prob_<class>``) as
    image (absolute), label, predicted, probability of the prediction.

    Raises:
        SweepError: the file lacks one of the columns image, label, predicted.
    """
    df = pd.read_csv(csv)
    missing = {"image", "label", "predicted"} - set(df)
    if missing:
        raise SweepError(f"{csv} lacks the column(s) {', '.join(sorted(missing))}")
    if "split" in df:   # the sweep's own file: test and validation rows
        df = df[df["split"] == "test"].reset_index(drop=True)
    state = peek_state(exp)
    base, root = os.path.dirname(csv), data_root(state) if state else None   # images: data-root relative
    df["image"] = [p if os.path.isabs(p) else next(
        (c for c in [os.path.join(d, p) for d in (root, base, exp) if d] if os.path.exists(c)), p)
        for p in df["image"].astype(str)]
    probs = [f"prob_{c}" for c in df["predicted"]]
    df["probability"] = [row.get(c, float("nan")) for (_, row), c in zip(df.iterrows(), probs)]
    df.attrs["source"] = f"{os.path.basename(os.path.dirname(csv))}/{PREDICTIONS_FILE}"
    return df[["image", "label", "predicted", "probability"]]
