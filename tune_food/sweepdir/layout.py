"""The layout of a sweep folder: the names of the files tune_food writes there, and
where the folder is (a local folder, or a storage URI such as ``s3://bucket/path``).

::

    <results dir>/<sweep name>/
        sweep.json  space.yaml  leaderboard.csv  leaderboard_by_config.csv  confirmed.csv  results.csv
        leaderboard.parquet  results.parquet  importance.csv
        plots/  <trial folders>/checkpoint_NNNNNN/{checkpoint.pt, meta.json, predictions.csv}
    <results dir>/mlflow.db  <results dir>/mlartifacts/<sweep name>/   (--mlflow's default)
"""

from __future__ import annotations

import os

SWEEP_COMMAND = "python -m tune_food.sweep"   # what sweep.json's resume command runs
EXPORT_COMMAND = "python -m tune_food.export"   # what the summary tells to ship a trial
REPORT_COMMAND = "python -m tune_food.report"   # rebuilds a sweep's outputs
RESULTS_DIR = "results"             # the default folder of sweep folders (--results-dir)
STATE_FILE = "sweep.json"
DRIVER_LOCK = ".driver.lock"   # flock-ed by the one driver of a sweep (sweepdir.state.claim_driver)
LEADERBOARD_FILE = "leaderboard.csv"
RESULTS_FILE = "results.csv"
LEADERBOARD_PARQUET = "leaderboard.parquet"   # the same tables with their dtypes (tables.py)
RESULTS_PARQUET = "results.parquet"
BY_CONFIG_FILE = "leaderboard_by_config.csv"
CONFIRMED_FILE = "confirmed.csv"    # --confirm's verdict: a row per configuration (results.confirm)
SPACE_FILE = "space.yaml"           # the sweep's own copy of its search space
PLOTS_DIR = "plots"
# TensorBoard's HParams experiment summary (the hyperparameters' domains): the one run of
# the sweep folder that holds it, rewritten by each Tuner run (tune_food.results.tb)
HPARAMS_RUN = "hparams"
CHECKPOINT_FILE = "checkpoint.pt"   # in each checkpoint_NNNNNN folder: head, optimizer, meta
PREDICTIONS_FILE = "predictions.csv"   # beside it: per-image predictions of that epoch
META_FILE = "meta.json"             # beside it: model, classes, dropout, transform, epoch
# Ray Tune's own files in each trial folder (read, never written, by tune_food)
ERROR_FILE = "error.txt"            # Ray Tune's record of the trial's failure
PROGRESS_FILE = "progress.csv"      # the trial's reports, one row per epoch (app.figures)
RESULT_FILE = "result.json"         # the same, one JSON line per report (grows while it runs)
TRIAL_CONFIG_FILE = "params.json"   # the trial's config as Ray Tune resolved it (export)
EXPERIMENT_STATES = "experiment_state-*.json"   # Ray Tune's state file, one per Tuner run
# plots/: the figures tune_food.results.plots draws
LEADERBOARD_PNG, CURVES_PNG = "leaderboard.png", "curves.png"
CONFUSION_PNG, ERRORS_PNG = "confusion.png", "errors.png"
TRADEOFF_PNG = "tradeoff.png"       # accuracy against cpu_ms (results.tradeoff)
# which hyperparameters mattered (results.importance): fANOVA importances, parallel view
IMPORTANCE_FILE = "importance.csv"
IMPORTANCE_PNG, PARALLEL_PNG = "importance.png", "parallel.png"
# what the sweep writes itself (besides Ray's trial folders); uploaded to URI storage
SWEEP_FILES = (LEADERBOARD_FILE, BY_CONFIG_FILE, CONFIRMED_FILE, RESULTS_FILE, LEADERBOARD_PARQUET,
               RESULTS_PARQUET, IMPORTANCE_FILE, STATE_FILE, SPACE_FILE, PLOTS_DIR,
               HPARAMS_RUN)
# beside the sweep folders (in the results folder): --mlflow's default SQLite store and
# the artifacts of its runs (tune_food.results.tracking)
MLFLOW_DB = "mlflow.db"
# --mlflow without a value: a SQLite store beside the sweep folders (tune_food.results.tracking)
MLFLOW_DEFAULT = f"sqlite:///<results folder>/{MLFLOW_DB}"
MLFLOW_ARTIFACTS_DIR = "mlartifacts"


def is_uri(path: str) -> bool:
    """True for a storage URI (``s3://...``, ``gs://...``), False for a local path."""
    return "://" in path


def experiment_dir(results_dir: str, name: str) -> str:
    """The sweep folder: ``<results_dir>/<name>``, absolute unless a URI."""
    return f"{results_dir.rstrip('/')}/{name}" if is_uri(results_dir) else \
        os.path.join(os.path.abspath(results_dir), name)


def local_dir(exp_dir: str, name: str) -> str:
    """Where the sweep's own files (CSV, JSON, plots) are written on this machine: the
    experiment folder itself, or for a URI ``./results/<name>`` (:data:`RESULTS_DIR`;
    then uploaded)."""
    return os.path.abspath(os.path.join(RESULTS_DIR, name)) if is_uri(exp_dir) else exp_dir


#: keys Ray Tune adds to a trial's result that are no metric (Tune leaves its
#: ``should_checkpoint`` flag in the first result after a restore): kept out of
#: progress.csv, results.csv and MLflow
TUNE_INTERNAL_KEYS = ("should_checkpoint",)


def without_internal_keys(result: dict) -> dict:
    """``result`` without :data:`TUNE_INTERNAL_KEYS`: what the per-result loggers
    (progress.csv, MLflow) record."""
    return {k: v for k, v in result.items() if k not in TUNE_INTERNAL_KEYS}
