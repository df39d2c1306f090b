"""Everything a sweep folder holds besides Ray's own trial folders, written by one
function for the sweep and for ``python -m tune_food.report`` alike.

:func:`load_trials` reads every trial of a sweep folder (Ray Tune's
``ExperimentAnalysis``: saved trial statuses, ``progress.csv``, checkpoints, errors;
no cluster needed). :func:`write_outputs` turns them into ``leaderboard.csv``,
``results.csv``, their Parquet copies with dtypes (:mod:`tune_food.results.tables`),
``leaderboard_by_config.csv`` (repeated seeds), the plots and which hyperparameters
mattered (``importance.csv``, :mod:`tune_food.results.importance`), and
works out the sweep's status (:func:`sweep_status`). Because the sweep calls the same
function at its end that ``report`` calls later, both write the same bytes.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from dataclasses import dataclass, field

import pandas as pd
from ray.tune import ExperimentAnalysis, ResultGrid

from tune_food.common.errors import SweepError, optional_step
from tune_food.common.files import write_csv_atomic
from tune_food.results.confirm import Verdict, mark_confirmations, verdict
from tune_food.results.importance import write_importance
from tune_food.results.leaderboard import (
    TrialRecord,
    compare_with_best,
    dedupe_history,
    leaderboard_by_config,
    make_leaderboard,
    results_dataframe,
    tie_summary,
)
from tune_food.results.plots import make_plots
from tune_food.results.tables import write_parquet_atomic
from tune_food.results.tradeoff import add_deployment, ship_summary
from tune_food.sweepdir.columns import (
    CHECKPOINT_PATH,
    EPOCHS_DONE,
    P_VS_BEST,
    RANK,
    STATUS,
    TRIAL_ID,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import (
    BY_CONFIG_FILE,
    CONFIRMED_FILE,
    ERROR_FILE,
    EXPERIMENT_STATES,
    LEADERBOARD_FILE,
    LEADERBOARD_PARQUET,
    PREDICTIONS_FILE,
    RESULTS_FILE,
    RESULTS_PARQUET,
    SWEEP_COMMAND,
    SWEEP_FILES,
    is_uri,
)
from tune_food.sweepdir.record import Planned, SweepState
from tune_food.sweepdir.state import data_root
from tune_food.sweepdir.status import RayStatus, SweepStatus, TrialStatus
from tune_food.train.hparams import PARAMS


@dataclass
class Outputs:
    """What :func:`write_outputs` produced."""

    board: pd.DataFrame
    results: pd.DataFrame
    status: SweepStatus               # finished | finished with errors | interrupted
    files: list[str] = field(default_factory=list)
    summary: str = ""                 # how many trials tie with the best
    best_predictions: pd.DataFrame | None = None   # rank 1's predictions.csv
    ship: str = ""                    # the fastest trial tied with the best, its export command
    importance: str = ""              # why importance.csv was not written (too few trials)
    # trial_id -> the configuration Ray Tune gave the trial (what the search drew: a
    # ``null`` stays None where the leaderboard's columns show the default it stands for)
    configs: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)   # optional outputs that failed
    verdict: Verdict | None = None    # --confirm's (results.confirm): confirmed.csv, what to ship


def _experiment_states(path: str) -> list[str]:
    """Every Ray Tune experiment state file (``experiment_state-<time>.json``) of the
    experiment folder or URI ``path``, oldest first (Ray names them by their start time):
    one per ``Tuner.fit`` of the folder."""
    import pyarrow.fs  # lazy: pyarrow.fs (~0.4 s, measured) only for a sweep on a storage URI

    fs, root = pyarrow.fs.FileSystem.from_uri(path) if is_uri(path) else \
        (pyarrow.fs.LocalFileSystem(), path)
    names = [os.path.basename(i.path) for i in fs.get_file_info(pyarrow.fs.FileSelector(root))]
    found = sorted(fnmatch.filter(names, EXPERIMENT_STATES))
    return [f"{path.rstrip('/')}/{n}" for n in found]


def _analyses(path: str, every_session: bool) -> list[tuple]:
    """``(trial, result)`` pairs of Ray Tune's ``ExperimentAnalysis`` and ``ResultGrid``
    for the experiment at ``path``: its newest state file's trials, or with
    ``every_session`` those of every state file (a search extended by a second Tuner
    in the same folder, :mod:`tune_food.sweep.history`), each trial once, as its newest
    state file saved it, in the order they were created."""
    sources = _experiment_states(path) if every_session else []
    pairs: dict[str, tuple] = {}
    for source in sources or [path]:
        analysis = ExperimentAnalysis(source)
        for trial, result in zip(analysis.trials, ResultGrid(analysis)):
            pairs[trial.trial_id] = (trial, result)   # a newer state file wins
    return list(pairs.values())


def load_trials(exp_path: str, every_session: bool = False) -> tuple[list[TrialRecord], str]:
    """Every trial of the sweep at ``exp_path`` (a folder or a storage URI); with
    ``every_session``, those of every Tuner run in the folder (an extended search).

    Returns:
        ``(records, root)``: one :class:`~tune_food.results.leaderboard.TrialRecord` per trial
        (its saved Ray status, config, each epoch once, latest checkpoint, error) and
        the experiment folder as the trials' paths spell it.

    Raises:
        SweepError: no trial state in the folder yet (the sweep stopped before its
            first trial was created).
    """
    path = exp_path if is_uri(exp_path) else os.path.abspath(exp_path)
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis_log.level
    analysis_log.setLevel(logging.ERROR)  # "Failed to fetch metrics" of trials never started
    try:
        pairs = _analyses(path, every_session)
    except (ValueError, FileNotFoundError, RuntimeError):
        raise SweepError(f"{exp_path}: no trial has been created yet (the sweep stopped before "
                         "Ray Tune saved any); continue it with "
                         f"{SWEEP_COMMAND} --resume --name <its name>") from None
    finally:
        analysis_log.setLevel(level)
    records = []
    for trial, result in pairs:
        error = None
        if result.error is not None:
            error = (str(result.error).strip().splitlines() or [""])[-1][:300]
        elif str(trial.status) != RayStatus.TERMINATED and not is_uri(path) and \
                os.path.isfile(os.path.join(result.path, ERROR_FILE)):
            # a trial whose worker died with no retries left: Ray wrote its error.txt
            # but may have saved the trial as still running
            with open(os.path.join(result.path, ERROR_FILE)) as fh:
                lines = [x for x in fh.read().strip().splitlines() if x.strip()]
            error = (lines[-1] if lines else "the trial's worker died")[:300]
        records.append(TrialRecord(
            trial_id=trial.trial_id, ray_status=str(trial.status),
            # the resolved config as the trial reported it; Ray's saved trial may hold
            # the unresolved search domain (e.g. {"grid_search": [4]}) after a restart
            config=dict((result.metrics or {}).get("config") or result.config or trial.config or {}),
            history=dedupe_history(result.metrics_dataframe), path=result.path,
            checkpoint=result.checkpoint.path if result.checkpoint else None, error=error))
    root = os.path.dirname(records[0].path.rstrip("/")) if records else path
    return records, root


def _config_key(config: dict, keys) -> str:
    return json.dumps({k: config.get(k) for k in keys}, sort_keys=True, default=str)


def unstarted_records(records: list[TrialRecord], planned: Planned | None,
                      root: str) -> list[TrialRecord]:
    """Rows for planned trials Ray Tune never created (an interrupted sweep with
    ``--max-concurrent`` creates trials only as slots free up).

    Args:
        planned: ``sweep.json``'s planned trials (None: a sweep older than the record);
            the configurations are listed for grids, a search only knows its count.
    """
    if planned is None:
        return []
    configs = planned.configs
    if configs:
        seen = {}
        for r in records:
            key = _config_key(r.config, PARAMS)
            seen[key] = seen.get(key, 0) + 1
        missing = []
        for cfg in configs:
            key = _config_key(cfg, PARAMS)
            if seen.get(key):
                seen[key] -= 1
            else:
                missing.append(cfg)
    else:
        missing = [{}] * max(0, planned.trials - len(records))
    varied = [k for k in PARAMS if len({json.dumps(c.get(k), default=str)
                                         for c in (configs or [])}) > 1]

    def name(cfg: dict) -> str:
        return "-".join(f"{k}={cfg.get(k)}" for k in varied) or "(not created)"

    return [TrialRecord(trial_id="", ray_status=RayStatus.NOT_CREATED, config=dict(cfg),
                        history=pd.DataFrame(), path=os.path.join(root, "(not created)"),
                        extra={TRIAL_NAME: name(cfg)})
            for cfg in missing]


#: the leaderboard's columns the summary prints (the sweep's end and ``report``), in this
#: order, where the board has them; the ranking metric comes after ``epochs_done``
SUMMARY_COLUMNS = (RANK, TRIAL_NAME, STATUS, EPOCHS_DONE)
SUMMARY_METRICS = ("test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss", P_VS_BEST)


def summary_columns(board: pd.DataFrame, metric: str, *more: str) -> list[str]:
    """The columns of ``board`` the summary prints, each once: :data:`SUMMARY_COLUMNS`,
    ``metric``, :data:`SUMMARY_METRICS`, then ``more`` (the sweep's end adds
    ``feature_cache``, ``time_total_s``)."""
    cols = [*SUMMARY_COLUMNS, metric, *SUMMARY_METRICS, *more]
    return list(dict.fromkeys(c for c in cols if c in board))


def sweep_status(board: pd.DataFrame) -> SweepStatus:
    """``interrupted`` when a trial did not run to its end for a reason other than its
    scheduler, else ``finished with errors`` when a trial failed, else ``finished``."""
    if board.empty:
        return SweepStatus.INTERRUPTED
    statuses = set(board[STATUS])
    if statuses & {TrialStatus.INTERRUPTED, TrialStatus.NOT_STARTED}:
        return SweepStatus.INTERRUPTED
    return SweepStatus.FINISHED_WITH_ERRORS if TrialStatus.ERROR in statuses else \
        SweepStatus.FINISHED


def build_outputs(exp_path: str, state: SweepState) -> Outputs:
    """The leaderboard (statuses, ranks, ``p_vs_best``), the results table and the
    sweep's status, computed from the trial folders without writing anything: what
    :func:`write_outputs` writes, and what the web page shows of a running sweep.

    Raises:
        SweepError: see :func:`load_trials`.
    """

    try:
        records, root = load_trials(exp_path, every_session=bool(state.extended or
                                                                 state.confirmations))
    except SweepError:
        if state.planned is None:
            raise
        records, root = [], exp_path   # stopped before Ray Tune saved any trial
    records += unstarted_records(records, state.planned, root)
    keys = list(PARAMS)
    board = make_leaderboard(records, state.metric, state.mode, keys, root)
    split = state.metric.split("_")[0]
    predictions = read_predictions(board, root, exp_path)
    board = compare_with_best(board, predictions, split)
    if "val_acc" in board:   # which validation set ranked: shared or per-dataset
        board["val_set"] = (state.validation or {}).get("source", "per-dataset")
    board = add_deployment(board, state.deployment)
    configs = {r.trial_id: dict(r.config) for r in records if r.trial_id}
    board = mark_confirmations(board, state, configs)
    best = board.iloc[0][TRIAL_ID] if not board.empty and board[RANK].notna().any() else None
    return Outputs(board, results_dataframe(records, keys), sweep_status(board),
                   summary=tie_summary(board, split), best_predictions=predictions.get(best),
                   ship=ship_summary(board, exp_path), configs=configs,
                   verdict=verdict(board, configs, predictions, state))


def write_outputs(exp_path: str, local_dir: str, state: SweepState) -> Outputs:
    """Write the leaderboard and results (CSV and Parquet), per-configuration table,
    plots and hyperparameter importances (:func:`tune_food.results.importance.write_importance`)
    of a sweep.

    Args:
        exp_path: the sweep's experiment folder or storage URI (where trials are).
        local_dir: where to write the files (the sweep folder; for URI storage a local
            folder that is uploaded afterwards).
        state: the sweep's ``sweep.json`` content (``metric``, ``mode``).

    Returns:
        :class:`Outputs` (board, results, sweep status, files written).

    Raises:
        SweepError: see :func:`load_trials`.
    """

    out = build_outputs(exp_path, state)
    board, frame = out.board, out.results
    out.files = [write_csv_atomic(board, os.path.join(local_dir, LEADERBOARD_FILE)),
                 write_csv_atomic(frame, os.path.join(local_dir, RESULTS_FILE)),
                 write_parquet_atomic(board, os.path.join(local_dir, LEADERBOARD_PARQUET)),
                 write_parquet_atomic(frame, os.path.join(local_dir, RESULTS_PARQUET))]
    if "seed" in board and board["seed"].nunique() > 1 and board[RANK].notna().any():
        out.files += optional_step(BY_CONFIG_FILE, lambda: [write_csv_atomic(
            leaderboard_by_config(board, list(PARAMS), state.metric, state.mode),
            os.path.join(local_dir, BY_CONFIG_FILE))], out.warnings, [])
    if out.verdict is not None:
        out.files.append(write_csv_atomic(out.verdict.table,
                                          os.path.join(local_dir, CONFIRMED_FILE)))
    out.files += make_plots(local_dir, board, frame, out.best_predictions, data_root(state),
                            warnings=out.warnings)
    importance = optional_step("the hyperparameter importances", lambda: write_importance(
        local_dir, board, state), out.warnings)
    if importance is not None:
        out.files += importance.files
        out.importance = importance.note
    return out


def read_predictions(board: pd.DataFrame, root: str, exp_path: str) -> dict[str, pd.DataFrame]:
    """trial_id -> the ``predictions.csv`` beside the checkpoint of each ranked row (the
    epoch the row shows); trials without one are left out."""
    import pyarrow.fs  # lazy: pyarrow.fs (~0.4 s, measured) only for a sweep on a storage URI

    out = {}
    if is_uri(exp_path):
        fs, _ = pyarrow.fs.FileSystem.from_uri(exp_path)
    else:
        fs = pyarrow.fs.LocalFileSystem()
    for _, row in board[board[RANK].notna()].iterrows():
        ckpt = row.get(CHECKPOINT_PATH)
        if not isinstance(ckpt, str):
            continue
        path = ckpt if ckpt.startswith("/") else f"{root}/{ckpt}"
        try:
            with fs.open_input_file(f"{path}/{PREDICTIONS_FILE}") as fh:
                out[row[TRIAL_ID]] = pd.read_csv(fh)
        except (FileNotFoundError, OSError):
            continue
    return out


def upload(local_dir: str, exp_dir: str) -> None:
    """Copy the sweep's own files (:data:`tune_food.sweepdir.layout.SWEEP_FILES`) to a URI
    experiment folder with pyarrow's filesystems (the ones Ray Tune uses for
    ``storage_path``); nothing to do for a local folder."""
    if not is_uri(exp_dir):
        return
    import pyarrow.fs  # lazy: pyarrow.fs (~0.4 s, measured) only for a sweep on a storage URI

    fs, root = pyarrow.fs.FileSystem.from_uri(exp_dir)
    for entry in SWEEP_FILES:
        src = os.path.join(local_dir, entry)
        if os.path.isdir(src):
            fs.create_dir(f"{root}/{entry}", recursive=True)
        if os.path.exists(src):
            pyarrow.fs.copy_files(src, f"{root}/{entry}", destination_filesystem=fs)
