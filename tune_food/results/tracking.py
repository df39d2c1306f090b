"""MLflow tracking of a sweep (``python -m tune_food.sweep ... --mlflow [TRACKING_URI]``).

Each trial becomes an MLflow run through :class:`TrialRuns`, a Ray Tune
``LoggerCallback`` (running in the driver) on MLflow's public client: the
trial's hyperparameters as params, every reported number per epoch as metrics (step =
``training_iteration`` = the epoch), tags ``sweep`` (the sweep's name), ``trial_name``
and ``trial_id``. The sweep is one MLflow experiment named like the sweep, holding a
parent run (named like the sweep too) under which the trial runs are nested
(``mlflow.parentRunId``); :func:`start_runs` opens them before the sweep writes anything,
so a store that cannot be reached stops the sweep with nothing left behind. When the sweep's outputs are written, :func:`log_sweep` adds
each trial's final ``status`` (and ``rank``) from the leaderboard as tags, ends trial
runs that Tune left open, and logs the leaderboard and results tables (CSV and Parquet),
``sweep.json``, ``space.yaml`` and the plots as artifacts of the parent run.

The default tracking URI is ``sqlite:///<results folder>/mlflow.db`` (one database for
all sweeps of a results folder; with URI storage, the local ``./results`` that holds the
sweep's outputs), with artifacts in ``<results folder>/mlartifacts/<sweep name>/``.
Needs MLflow: ``pip install "tune_food[mlflow]"`` (``mlflow-skinny``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time

import pandas as pd
from ray.tune.logger import LoggerCallback

from tune_food.common.errors import SweepError
from tune_food.common.files import folder_problem
from tune_food.sweepdir.columns import RANK, STATUS, TRIAL_ID, TRIAL_NAME
from tune_food.sweepdir.layout import (
    MLFLOW_ARTIFACTS_DIR,
    MLFLOW_DB,
    MLFLOW_DEFAULT,
    SPACE_FILE,
    STATE_FILE,
    without_internal_keys,
)
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.status import SweepStatus, TrialStatus

#: leaderboard status -> MLflow's status of a trial run Tune left open (RUNNING)
RUN_STATUS = {TrialStatus.TERMINATED: "FINISHED", TrialStatus.EARLY_STOPPED: "FINISHED",
              TrialStatus.ERROR: "FAILED", TrialStatus.INTERRUPTED: "KILLED",
              TrialStatus.NOT_STARTED: "KILLED"}
#: sweep status (sweep.json) -> MLflow's status of the parent run
SWEEP_STATUS = {SweepStatus.FINISHED: "FINISHED", SweepStatus.FINISHED_WITH_ERRORS: "FAILED",
                SweepStatus.INTERRUPTED: "KILLED", SweepStatus.FAILED: "FAILED"}


def tracking_uri(option: str, local_dir: str) -> str:
    """The tracking URI that ``--mlflow option`` means for the sweep folder ``local_dir``:
    :data:`tune_food.sweep.options.MLFLOW_DEFAULT` -> ``sqlite:////abs/<parent of
    local_dir>/mlflow.db``; anything else as given."""
    if option == MLFLOW_DEFAULT:
        return "sqlite:///" + os.path.join(os.path.dirname(os.path.abspath(local_dir)), MLFLOW_DB)
    return option


def _artifact_location(uri: str, name: str) -> str | None:
    """Artifacts of a SQLite store go beside the database file (MLflow would put them in
    ``./mlruns`` of whatever folder the sweep was started from); other stores decide."""
    if uri.startswith("sqlite:///"):
        return os.path.join(os.path.dirname(uri[len("sqlite:///"):]), MLFLOW_ARTIFACTS_DIR, name)
    return None


def _client(uri: str):
    # "Creating initial MLflow database tables..." on a new SQLite store: not news
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    try:
        # lazy: optional dependency: MLflow (the [mlflow] extra) only with --mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise SweepError("--mlflow needs MLflow, which is not installed: pip install "
                         "\"tune_food[mlflow]\" (or pip install mlflow-skinny)") from None
    return MlflowClient(tracking_uri=uri)


#: how long a tracking server may take to answer one request before the sweep gives
#: up on it (s); no retries while the sweep checks and opens its runs (MLflow's own
#: defaults retry with back-off for minutes, which looks like a hang)
PROBE_TIMEOUT_S = 10


@contextlib.contextmanager
def _fail_fast():
    """MLflow's HTTP client with no retries and a :data:`PROBE_TIMEOUT_S` timeout
    (``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` / ``MLFLOW_HTTP_REQUEST_TIMEOUT``), for the
    requests of this block only."""
    settings = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_TIMEOUT_S)}
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fail(uri: str, exc: Exception) -> SweepError:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(reason) > 300:   # MLflow's HTTP errors nest urllib3's: keep the start and the cause
        cause = reason.rfind("Caused by ")
        reason = f"{reason[:150]} ... {reason[cause:] if cause > 150 else reason[-140:]}"[:400]
    return SweepError(f"MLflow tracking at {uri} failed ({reason}); check the --mlflow "
                      "tracking URI (e.g. sqlite:///abs/path/mlflow.db or http://host:5000)")


def check_store(option: str | None, local_dir: str) -> None:
    """Fail before launch (``--dry-run`` included) when ``--mlflow`` cannot work: MLflow
    not installed, a SQLite store whose folder cannot be created, or a tracking server
    that does not answer a read-only request within :data:`PROBE_TIMEOUT_S` seconds.
    Writes nothing.

    Raises:
        SweepError: one line naming the URI and the cause.
    """
    if not option:
        return
    uri = tracking_uri(option, local_dir)
    if uri.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(uri[len("sqlite:///"):]))
        problem = folder_problem(folder)
        if problem:
            raise _fail(uri, OSError(f"its folder {folder} {problem}"))
        _client(uri)   # installed?
        return
    try:
        with _fail_fast():
            _client(uri).search_experiments(max_results=1)
    except SweepError:
        raise
    except Exception as exc:   # MlflowException, HTTP and OS errors alike
        raise _fail(uri, exc) from None


def start_runs(option: str | None, name: str, local_dir: str,
               saved: dict | None = None) -> dict | None:
    """Open the MLflow side of the sweep ``name`` before anything else of it is written:
    create (or on ``--resume`` find) the experiment ``name`` and the sweep's parent run.

    Args:
        option: ``--mlflow`` (a tracking URI or :data:`tune_food.sweep.options.MLFLOW_DEFAULT`);
            None: no MLflow.
        local_dir: the sweep folder on this machine (the default store is beside it).
        saved: on ``--resume``, ``sweep.json``'s ``mlflow`` (the parent run is marked
            running again and reused).

    Returns:
        None without ``option``, else ``{"tracking_uri", "experiment_id",
        "parent_run_id"}`` for ``sweep.json``, :func:`mlflow_callbacks` and
        :func:`log_sweep`.

    Raises:
        SweepError: MLflow is not installed, or the tracking store cannot be reached.
    """
    if not option:
        return None
    saved = saved or {}
    uri = saved.get("tracking_uri") or tracking_uri(option, local_dir)
    try:
        if uri.startswith("sqlite:///"):   # the results folder may not exist yet
            os.makedirs(os.path.dirname(uri[len("sqlite:///"):]) or ".", exist_ok=True)
        return _open_runs(_client(uri), uri, name, saved)
    except SweepError:
        raise
    except Exception as exc:   # MlflowException, SQLAlchemy, OS and HTTP errors alike
        raise _fail(uri, exc) from None


def _open_runs(client, uri: str, name: str, saved: dict) -> dict:
    with _fail_fast():
        experiment = client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            name, artifact_location=_artifact_location(uri, name),
            # the MLflow 3 UI then opens on the runs table, not on the GenAI overview
            tags={"mlflow.experimentKind": "custom_model_development"})
        parent = saved.get("parent_run_id")
        if parent:   # --resume: the sweep's run is running again
            client.update_run(parent, status="RUNNING")
        else:
            parent = client.create_run(experiment_id, run_name=name,
                                       tags={"sweep": name, "role": "sweep"}).info.run_id
    return {"tracking_uri": uri, "experiment_id": experiment_id, "parent_run_id": parent}


def mlflow_callbacks(info: dict | None, name: str) -> list:
    """The Tune callbacks that log each trial of the sweep ``name`` as an MLflow run
    nested under its parent run: ``[]`` when ``info`` (from :func:`start_runs`) is None,
    else one :class:`TrialRuns`. A resumed sweep's restored Tuner keeps the callback it
    was pickled with (same store and parent run)."""
    if not info:
        return []
    return [TrialRuns(info["tracking_uri"], name,
                      {"sweep": name, "role": "trial", "mlflow.parentRunId": info["parent_run_id"]})]


class TrialRuns(LoggerCallback):
    """Each trial as an MLflow run, through Ray Tune's public ``LoggerCallback`` and
    MLflow's public ``MlflowClient`` (in the driver): the run is named like the trial and
    tagged ``trial_name`` and ``trial_id`` (besides ``tags``), its config is its params
    (nested keys joined by ``/``), every numeric result its metrics at step = the epoch
    (``training_iteration``), and it ends ``FINISHED`` or ``FAILED`` with the trial. A
    trial that has a run already (a resumed sweep) logs into that run: the run is found
    by its ``trial_id`` tag.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, tags: dict[str, str]):
        self.tracking_uri, self.experiment_name, self.tags = tracking_uri, experiment_name, tags
        self._runs: dict[str, str] = {}   # trial_id -> run_id
        self._mlflow = None               # the client, made on first use (not pickled)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_mlflow"}

    def __setstate__(self, state: dict) -> None:
        # a sweep saved before this class (Ray's MLflowLoggerCallback underneath) holds
        # the same three settings; its runs are found again by their trial_id tags
        self.__init__(state["tracking_uri"], state["experiment_name"], state.get("tags") or {})
        self._runs = dict(state.get("_runs") or {})

    def _client(self):
        if self._mlflow is None:
            self._mlflow = _client(self.tracking_uri)
        return self._mlflow

    def log_trial_start(self, trial) -> None:
        # lazy: optional dependency: MLflow (the [mlflow] extra) only with --mlflow
        from mlflow.entities import Param

        client = self._client()
        experiment_id = client.get_experiment_by_name(self.experiment_name).experiment_id
        run_id = self._runs.get(trial.trial_id) or self._existing_run(experiment_id,
                                                                      trial.trial_id)
        if run_id:
            client.update_run(run_id, status="RUNNING")
        else:
            run_id = client.create_run(
                experiment_id, run_name=str(trial),
                tags={**self.tags, TRIAL_NAME: str(trial), TRIAL_ID: trial.trial_id},
            ).info.run_id
        self._runs[trial.trial_id] = run_id
        client.log_batch(run_id, params=[Param(key, str(value))
                                         for key, value in _flat(trial.config).items()])

    def _existing_run(self, experiment_id: str, trial_id: str) -> str | None:
        found = self._client().search_runs([experiment_id],
                                           filter_string=f"tags.trial_id = '{trial_id}'")
        return found[0].info.run_id if found else None

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        # lazy: optional dependency: MLflow (the [mlflow] extra) only with --mlflow
        from mlflow.entities import Metric

        step = int(result.get("training_iteration") or iteration)
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step)
                   for key, value in _flat(without_internal_keys(result)).items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)
                   and math.isfinite(value)]
        self._client().log_batch(self._runs[trial.trial_id], metrics=metrics)

    def log_trial_end(self, trial, failed: bool = False) -> None:
        run_id = self._runs.get(trial.trial_id)
        if run_id:
            self._client().set_terminated(run_id, "FAILED" if failed else "FINISHED")


def _flat(values: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}`` (as Ray Tune flattens results)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_sweep(state: SweepState, local_dir: str, outputs) -> None:
    """After the sweep's outputs are written: tag each trial run with its leaderboard
    ``status`` and ``rank``, end the runs Tune left open, log the sweep's files as
    artifacts of the parent run and end it with the sweep's status. Does nothing for a
    sweep without ``--mlflow``.

    Args:
        state: the sweep's record (its ``mlflow`` runs, ``status``, ``metric``).
        local_dir: the sweep folder holding the outputs.
        outputs: :class:`tune_food.results.outputs.Outputs`, or None when no trial was created.

    A store that fails now (the sweep's own files are all written by then) is one
    warning line on stderr, not an error: the sweep's result and exit code stand.
    """
    info = state.mlflow
    if not info:
        return
    parent = info["parent_run_id"]
    try:
        client = _client(info["tracking_uri"])
        rows = {} if outputs is None else \
            {r[TRIAL_ID]: r for r in outputs.board.to_dict("records") if r[TRIAL_ID]}
        runs = client.search_runs([info["experiment_id"]], max_results=50000)
        for run in runs:
            tags = run.data.tags
            if tags.get("mlflow.parentRunId") != parent or tags.get(TRIAL_ID) not in rows:
                continue
            row = rows[tags[TRIAL_ID]]
            client.set_tag(run.info.run_id, STATUS, row[STATUS])
            if pd.notna(row.get(RANK)):
                client.set_tag(run.info.run_id, RANK, str(int(row[RANK])))
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, RUN_STATUS.get(row[STATUS], "KILLED"))
        client.log_param(parent, "metric", f"{state.metric} ({state.mode})")
        client.set_tag(parent, "status", state.status.value)
        for path in (outputs.files if outputs is not None else []) + \
                [os.path.join(local_dir, f) for f in (STATE_FILE, SPACE_FILE)]:
            if os.path.isfile(path):
                sub = os.path.relpath(os.path.dirname(os.path.abspath(path)),
                                      os.path.abspath(local_dir))
                client.log_artifact(parent, path, None if sub == "." else sub)
        client.set_terminated(parent, SWEEP_STATUS.get(state.status, "FINISHED"))
    except Exception as exc:   # MlflowException, SQLAlchemy, OS and HTTP errors alike
        print(f"warning: {_fail(info['tracking_uri'], exc)}; the sweep's own files are "
              "complete", file=sys.stderr)
