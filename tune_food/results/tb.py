"""TensorBoard logging for sweeps: one run per trial, the scalar tags, the HParams tab.

:class:`TensorBoardCallback` is a Ray Tune ``LoggerCallback`` (Tune's public logger
interface) that writes with tensorboardX, in the driver, into each trial's folder:

* scalars ``loss/train``, ``loss/test``, ``accuracy/train``, ``accuracy/test`` (and
  ``loss/val``, ``accuracy/val`` with a validation split) at step = epoch;
* with the trial's first result (so a running sweep's table fills as it goes), the
  HParams summaries, written with TensorBoard's own
  public ``tensorboard.plugins.hparams.summary_v2`` protos through tensorboardX's file
  writer: the experiment (every hyperparameter of the search space with its domain,
  the ones that vary marked ``differs``, and the metrics) and the trial's values.

What the HParams table shows, and why:

* TensorBoard lists hyperparameters that differ first and ticks the first five; only
  the experiment summary says which differ (tensorboardX's ``hparams()`` helper writes
  none as differing, hence TensorBoard's own protos here).
* Values as they were used: the head dropout resolved to the model's default
  (:func:`tune_food.results.leaderboard.resolved_dropout`, the leaderboard's own rule), not
  ``None``.
* Numbers stay numbers, so the table sorts them in numeric order (``5`` before ``10``;
  text would sort ``10`` first) and the dashboard can filter and plot them on an axis,
  at the cost of TensorBoard printing ``32`` as ``32.000``. A hyperparameter whose
  values can be listed (a constant, ``grid_search``, ``choice``, a ``randint`` of at most
  :data:`MAX_LISTED` values) gets a discrete domain of those values; one drawn from a
  range (``uniform``, ``loguniform``, a wider ``randint``) an interval domain. Only a
  hyperparameter with a value that is not a number (a name, ``null``, a list) is
  written as text: ``null``, ``a+b`` for a list; booleans stay booleans.
* Dataset names that share a long common start are shortened so the narrow columns
  still tell them apart: ``pizza_steak_sushi`` -> ``pss``,
  ``pizza_steak_sushi_20_percent`` -> ``pss_20%`` (the hyperparameter's description in
  the experiment summary lists the full names).
* The HParams metrics are the last value of each per-epoch tag (``accuracy/test``
  etc.: the epoch the trial ended at), so no extra tags are written.

A resumed trial replays the epochs after its last checkpoint (all of them when it had
none). Every event file starts with a purge record at its first epoch (what tensorboardX's ``purge_step``
writes), so TensorBoard drops the earlier file's events from that step on and shows one
curve without doubled steps. Records are written synchronously (:class:`EventFile`), so
each epoch is in the trial's folder when Tune syncs it, a Ctrl-C included.

The sweep sets ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` and passes Tune's own CSV and
JSON logger callbacks beside this one, so Tune adds no second TensorBoard logger.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import time
from typing import Any, Dict, Iterable, Mapping, Sequence

import numpy as np
from ray.tune.logger import LoggerCallback
from ray.tune.search.sample import Categorical, Domain, Integer
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import scalar

from tune_food.models.registry import get_spec
from tune_food.results.leaderboard import resolved_dropout
from tune_food.sweepdir.layout import HPARAMS_RUN


class EventFile:
    """One TensorBoard event file, written synchronously with tensorboardX's
    ``EventsWriter``: after :meth:`flush` every record is in the file.

    Not tensorboardX's ``SummaryWriter``: it hands records to a background thread, and
    ``flush()`` does not wait for that thread. Ray Tune copies a trial folder from the
    driver's staging folder to the sweep folder on its own schedule, and on Ctrl-C for the
    last time *before* it calls the callbacks' ``on_experiment_end``: a record still in
    the queue then (the last epoch of each running trial, seen with Ray 2.60) never
    reached the sweep folder.

    Args:
        logdir: the trial's folder (``trial.local_path``).
        purge_step: the first step this file holds: TensorBoard then drops the earlier
            files' events from that step on (a ``SessionLog.START`` record, as
            ``SummaryWriter(purge_step=...)`` writes it), so a resumed trial's replayed
            epochs show once; None writes no such record.
    """

    def __init__(self, logdir: str, purge_step: int | None = None):
        os.makedirs(logdir, exist_ok=True)
        self._events = EventsWriter(os.path.join(logdir, "events"))
        if purge_step is not None:
            self._events.write_event(Event(step=purge_step, wall_time=time.time(),
                                           session_log=SessionLog(status=SessionLog.START)))

    def add(self, summary, step: int = 0) -> None:
        """Append a ``Summary`` proto (tensorboardX's, or TensorBoard's own, e.g. the
        HParams plugin's) at ``step``."""
        if not isinstance(summary, Summary):
            summary = Summary.FromString(summary.SerializeToString())
        self._events.write_event(Event(wall_time=time.time(), step=step, summary=summary))

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


#: reported metric -> TensorBoard tag
TAGS = {"train_loss": "loss/train", "test_loss": "loss/test", "train_acc": "accuracy/train",
        "test_acc": "accuracy/test", "val_loss": "loss/val", "val_acc": "accuracy/val"}
#: HParams metrics: tag -> the column title TensorBoard shows (the tag's last value)
METRIC_TITLES = {"accuracy/test": "test accuracy", "loss/test": "test loss",
                 "accuracy/val": "val accuracy", "loss/val": "val loss",
                 "accuracy/train": "train accuracy", "loss/train": "train loss"}
#: parameters whose values are dataset names (shortened, see the module doc)
DATASET_PARAMS = ("data", "test_data")
#: a ``randint`` range with at most this many values gets a discrete domain; wider: an
#: interval
MAX_LISTED = 100


def short_labels(names: Iterable[str]) -> Dict[str, str]:
    """Short labels that keep dataset names apart in a narrow column.

    Names sharing a start of two or more ``_``-separated words have that start replaced
    by its initials, and ``_N_percent`` becomes ``_N%``: ``pizza_steak_sushi`` and
    ``pizza_steak_sushi_20_percent`` -> ``pss`` and ``pss_20%``. A lone name, or names
    without such a common start, only get the ``%`` rule.

    Returns:
        ``{name: label}``; the labels are distinct whenever the names are.
    """
    names = sorted(set(names))
    words = [n.split("_") for n in names]
    common = 0
    if len(names) > 1:
        while all(len(w) > common and w[common] == words[0][common] for w in words):
            common += 1
    labels = {}
    for name, w in zip(names, words):
        head = ["".join(x[:1] for x in w[:common])] if common >= 2 else w[:common]
        label = "_".join(head + w[common:]).replace("_percent", "%")
        labels[name] = label
    if len(set(labels.values())) < len(labels):   # never merge two names
        return {n: n for n in names}
    return labels


def _is_number(value: Any) -> bool:
    """True for an int or float (NumPy's included), False for a bool and anything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _number(value: Any) -> int | float:
    """``value`` (a number, :func:`_is_number`) as a plain Python int or float."""
    return value.item() if hasattr(value, "item") else value


def _text(value: Any, labels: Mapping[str, str], keep_bool: bool = True) -> Any:
    """A value of a hyperparameter that is not all numbers, as TensorBoard shows it:
    text, except a boolean of a parameter whose values are all booleans (``keep_bool``).
    TensorBoard's discrete domains hold values of one type, so ``choice: [true, 1]``
    shows ``true`` and ``1``, ``[null, 0.3]`` ``null`` and ``0.3``.

    Returns:
        a ``str``, or the ``bool`` itself."""
    if isinstance(value, bool):
        return value if keep_bool else str(value).lower()
    if isinstance(value, (list, tuple)):
        return "+".join(str(_text(v, labels, False)) for v in value)
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return labels.get(value, value)
    return str(value)


class TensorBoardCallback(LoggerCallback):
    """Write the scalar tags per epoch and the HParams of every trial (module doc).

    Args:
        varied: the hyperparameters that vary across the sweep (the search space's
            ``varied``); marked ``differs`` and so listed first by TensorBoard.
        values: every value each hyperparameter can take (the space's ``values``:
            constants, ``grid_search`` and ``choice`` lists; for a ``uniform``,
            ``loguniform`` or ``randint`` parameter its ``[low, high]`` bounds). Its keys,
            in order, are the hyperparameters shown.
        ranges: the parameters in ``values`` drawn from a range (their values are the
            bounds, both included): ``uniform``/``loguniform`` floats, ``randint``
            integers.
        int_ranges: those of ``ranges`` that draw integers (``randint``).
        default_dropout: ``{model: head dropout}`` used where ``dropout`` is ``None``
            (to list the dropout's domain before any trial ran).

    Without ``values`` (e.g. a test driving the callback alone) every scalar entry of a
    trial's config is shown, none marked as differing.
    """

    def __init__(self, varied: Sequence[str] = (), values: Mapping[str, Sequence] | None = None,
                 ranges: Sequence[str] = (), default_dropout: Mapping[str, float] | None = None,
                 int_ranges: Sequence[str] = ()) -> None:
        self._writers: Dict[Any, Any] = {}
        self._varied = list(varied)
        self._values = {k: list(v) for k, v in (values or {}).items()}
        self._ranges = set(ranges)
        self._int_ranges = set(int_ranges) & self._ranges
        datasets = set()
        for key in DATASET_PARAMS:
            for v in self._values.get(key, []):
                datasets.update(v if isinstance(v, (list, tuple)) else [v] if v else [])
        self._labels = {k: v for k, v in short_labels(datasets).items() if k != v}
        if "dropout" in self._values and default_dropout:
            self._values["dropout"] = sorted({
                default_dropout[m] if d is None else d
                for d in self._values["dropout"] for m in self._values.get("model", [])
                if d is not None or m in default_dropout}) or self._values["dropout"]
        self._experiment = self._experiment_summary() if self._values else None

    @classmethod
    def for_space(cls, space) -> "TensorBoardCallback":
        """The callback for a :class:`~tune_food.sweep.spaces.SearchSpace`: its ``varied``
        parameters, listed values and ranges, and each model's default dropout."""
        ranges = [k for k, v in space.param_space.items()
                  if isinstance(v, Domain) and not isinstance(v, Categorical)]
        return cls(varied=space.varied, values=space.values, ranges=ranges,
                   default_dropout={m: get_spec(m).default_dropout for m in space.models},
                   int_ranges=[k for k in ranges if isinstance(space.param_space[k], Integer)])

    # ------------------------------------------------------------------ values, domains

    def _listed(self, key: str) -> bool:
        """Whether ``key`` gets a discrete domain of its values (else an interval)."""
        if key not in self._ranges:
            return True
        low, high = self._values[key]
        return key in self._int_ranges and high - low < MAX_LISTED

    def _keep_bool(self, key: str) -> bool:
        """Booleans stay booleans where every value of ``key`` is one."""
        values = self._values.get(key)
        return values is None or all(isinstance(v, bool) for v in values)

    def _numeric(self, key: str) -> bool:
        """Whether ``key``'s values are all numbers (written as numbers, not text)."""
        values = self._values.get(key)
        return key in self._ranges or bool(values) and all(_is_number(v) for v in values)

    def _domain_values(self, key: str) -> list:
        """Every value a trial can show for a listed ``key``: a ``randint`` range's
        integers from its low to its high bound, both included (the space's ``values``
        hold ``randint: [low, high)`` as ``[low, high - 1]``); floats for a numeric
        ``key`` (TensorBoard's discrete domains hold one type), else text or booleans."""
        vals = self._values[key]
        if key in self._ranges:
            vals = list(range(vals[0], vals[1] + 1))
        if self._numeric(key):
            return list(dict.fromkeys(float(v) for v in vals))
        return list(dict.fromkeys(_text(v, self._labels, self._keep_bool(key)) for v in vals))

    def hparam_values(self, config: Dict[str, Any], result: Dict[str, Any]) -> Dict[str, Any]:
        """A trial's hyperparameters as TensorBoard shows them: ``{name: bool | int |
        float | str}`` (module doc): numbers as numbers where every value of the
        hyperparameter is one, else text; the dropout resolved to the one the head used."""
        config = dict(config, dropout=resolved_dropout(config, result)) \
            if "dropout" in config else config
        keys = list(self._values) or [k for k, v in config.items()
                                      if isinstance(v, (bool, int, float, str, list))]
        params: Dict[str, Any] = {}
        for key in keys:
            value = config.get(key)
            numeric = self._numeric(key) if self._values else _is_number(value)
            if numeric and _is_number(value):
                params[key] = _number(value)
            else:
                params[key] = _text(value, self._labels, self._keep_bool(key))
        return params

    def _experiment_summary(self):
        """TensorBoard's experiment summary: hyperparameters (varied ones ``differs``)
        with domains and descriptions, and the metrics (tensorboard's protos)."""
        params = []
        for key in self._values:
            if self._listed(key):
                domain = hp.Discrete(self._domain_values(key))
            elif key in self._int_ranges:
                domain = hp.IntInterval(*self._values[key])
            else:
                domain = hp.RealInterval(*map(float, self._values[key]))
            names = [f"{s} = {n}" for n, s in sorted(self._labels.items())
                     if key in DATASET_PARAMS]
            params.append(hp.HParam(key, domain, description="; ".join(names) or None))
        metrics = [hp.Metric(tag, display_name=title) for tag, title in METRIC_TITLES.items()
                   if not tag.endswith("/val") or self._values.get("val_fraction", [0]) != [0]]
        summary = hp.hparams_config_pb(params, metrics, time_created_secs=time.time())
        # summary_v2 has no `differs`: set it on its experiment proto
        meta = summary.value[0].metadata.plugin_data
        data = plugin_data_pb2.HParamsPluginData.FromString(meta.content)
        varied = set(self._varied)
        for info in data.experiment.hparam_infos:
            info.differs = info.name in varied or len(info.domain_discrete.values) > 1
        meta.content = data.SerializeToString()
        return summary

    # ------------------------------------------------------------------ writing

    def write_experiment(self, sweep_dir: str) -> str | None:
        """Write the experiment summary (the hyperparameters' domains, which differ, the
        metrics) as the sweep folder's one run that holds it, ``<sweep_dir>/hparams``
        (:data:`~tune_food.sweepdir.layout.HPARAMS_RUN`), replacing the one an earlier
        Tuner run of the sweep wrote. TensorBoard's HParams plugin reads the experiment
        summary of the first run it finds that has one (``backend_context.
        _find_experiment_tag``: "arbitrarily pick the first one"): were it in every
        trial's run, a widened or extended sweep's first trials would hold the narrower
        domains, and the filters would hide the new values. Returns the folder, or None
        when there is nothing to describe (no space)."""
        if self._experiment is None:
            return None
        folder = os.path.join(sweep_dir, HPARAMS_RUN)
        shutil.rmtree(folder, ignore_errors=True)   # this sweep's own summary run only
        writer = EventFile(folder)
        writer.add(self._experiment)
        writer.close()
        return folder

    def _writer(self, trial, first_step: int, result: Dict) -> "EventFile":
        if trial not in self._writers:
            # steps >= first_step in earlier event files are dropped by TensorBoard: a
            # trial resumed before its first checkpoint replays from epoch 1, so the
            # record is written for every new file, the first one's included
            writer = EventFile(trial.local_path, first_step)
            writer.add(hp.hparams_pb(self.hparam_values(trial.config, result),
                                     trial_id=str(trial.trial_id)))
            self._writers[trial] = writer
        return self._writers[trial]

    def log_trial_result(self, iteration: int, trial, result: Dict) -> None:
        step = int(result.get("epoch", iteration))
        writer = self._writer(trial, step, result)
        for key, tag in TAGS.items():
            value = result.get(key)
            if isinstance(value, (int, float)) and not math.isnan(value):
                writer.add(scalar(tag, float(value)), step)
        writer.flush()   # on disk before Tune's next sync of the trial folder

    def log_trial_end(self, trial, failed: bool = False) -> None:
        writer = self._writers.pop(trial, None)
        if writer is not None:
            writer.close()

    def on_trial_recover(self, iteration: int, trials, trial, **info) -> None:
        """A failed trial that Ray Tune runs again (``--max-failures``) replays the epochs
        after its last checkpoint: its next result opens a new event file that purges
        from the first replayed epoch."""
        self.log_trial_end(trial, failed=True)

    def on_experiment_end(self, trials, **info) -> None:
        for trial in list(self._writers):
            self.log_trial_end(trial)
