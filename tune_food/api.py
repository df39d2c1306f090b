"""The Python API: a sweep run, resumed or read from a notebook or a script, with typed
results (docs/notebook.ipynb shows it at work).

* :func:`run` is ``python -m tune_food.sweep`` in this process: the same checks, plan,
  Ray Tune trials and sweep folder, and the same options, each a keyword argument named
  as :class:`~tune_food.sweep.options.SweepOptions` names it (``num_samples`` is
  ``--num-samples``): the keywords are turned into that command line and parsed by the
  command's own parser (:func:`tune_food.sweep.cli.parse_options`), so their types,
  choices and defaults have one owner. The search space is a YAML file or a dict.
* :func:`resume` continues a sweep folder (``--resume``); :func:`load` reads any sweep
  folder, finished or not, written by this version or an earlier one.
* Each returns a :class:`SweepResult` built on the sweep folder's contract
  (:mod:`tune_food.sweepdir`): ``status``, ``leaderboard`` (``leaderboard.csv`` as a
  DataFrame), ``trials`` and ``best`` (:class:`Trial`: config, metrics, checkpoint,
  ``predict``), ``plots``, ``export`` and an HTML view for notebooks.

How it behaves in a kernel:

* A problem the command would report in one line raises the
  :class:`~tune_food.common.errors.TuneFoodError` (or subclass) whose message is that
  line, never ``SystemExit``; an unknown keyword is a ``TypeError``.
* Interrupting the kernel (``KeyboardInterrupt``) while trials run ends the sweep
  ``interrupted`` (its trials' checkpoints kept) and returns its :class:`SweepResult`,
  as Ray Tune's own ``Tuner.fit`` returns its results; :func:`resume` continues it.
  An interrupt before the trials start (while Ray starts or the sweep is planned)
  raises ``KeyboardInterrupt`` again: nothing was written.
* A Ray this process was connected to before the call (the user's ``ray.init``) is
  used and left running; a Ray the call started is stopped when it returns, so sweeps
  run one after another in one process. The signal handlers Ray and the sweep set
  (SIGINT, SIGTERM) are restored.
* Progress: in a Jupyter kernel one updating line (tqdm's bar: trials done of planned,
  and the sweep's latest line); elsewhere the command's own lines on standard output.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
import re
import signal
import sys
import tempfile
import threading
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd
import ray
import yaml
from tqdm.std import tqdm

from tune_food.common.environment import check_environment
from tune_food.common.errors import SweepError, TuneFoodError
from tune_food.export import export as export_trial
from tune_food.inference.checkpoints import trial_checkpoint
from tune_food.inference.classifier import classify, load_classifier
from tune_food.results.outputs import build_outputs, summary_columns
from tune_food.sweep.cli import parse_options
from tune_food.sweep.options import SweepOptions
from tune_food.sweep.ray_start import shutdown_ray
from tune_food.sweep.run import IMPORTS, check_sweep, run_sweep
from tune_food.sweepdir.columns import (
    DEPLOYMENT_COLUMNS,
    LOGDIR,
    METRIC_COLUMNS,
    P_VS_BEST,
    RANK,
    STATUS,
    TIED_WITH_BEST,
    TRIAL_ID,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import (
    LEADERBOARD_FILE,
    LEADERBOARD_PNG,
    PLOTS_DIR,
    SPACE_FILE,
    TRADEOFF_PNG,
    experiment_dir,
    local_dir,
)
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.state import check_sweep_folder, read_state
from tune_food.sweepdir.status import SweepStatus, TrialStatus
from tune_food.train.hparams import PARAMS

__all__ = ["run", "resume", "load", "SweepResult", "Trial", "TuneFoodError", "KEYWORDS"]

#: the fields of SweepOptions that are not keywords of :func:`run`: ``resume`` is
#: :func:`resume`; ``sweep_dir`` and ``given`` are the options' own bookkeeping;
#: ``debug`` (tracebacks instead of one line) is what an exception in Python has anyway
NOT_KEYWORDS = ("resume", "sweep_dir", "given", "debug")
#: the keyword arguments of :func:`run` (and, less ``name`` and ``results_dir``, of
#: :func:`resume`): the sweep command's options, named as SweepOptions names them
KEYWORDS = tuple(f.name for f in dataclasses.fields(SweepOptions) if f.name not in NOT_KEYWORDS)
#: the switches (``--grid``): options whose default is a bool
_SWITCHES = {f.name for f in dataclasses.fields(SweepOptions) if isinstance(f.default, bool)}
#: a progress line of the trials: ``[3/8] done ...``
_TRIALS_LINE = re.compile(r"^\[(\d+)/(\d+)\]")


# ------------------------------------------------------------------ the three doors

def run(space: str | os.PathLike | Mapping[str, Any] | None = None, **options: Any
        ) -> SweepResult | None:
    """Run a sweep in this process, as ``python -m tune_food.sweep`` with the same options.

    Args:
        space: the search space: a YAML file's path, or the YAML's content as a dict
            (``{"parameters": {...}}``, written to a temporary ``space.yaml`` that the
            sweep copies into its folder); None: the packaged default of the mode.
        **options: any of :data:`KEYWORDS`, each the command's option of the same name
            (``grid=True`` is ``--grid``, ``num_samples=4`` is ``--num-samples 4``,
            ``mlflow=True`` is a bare ``--mlflow``); None or False: not given.

    Returns:
        the sweep's :class:`SweepResult` (status ``finished``, ``finished with errors``
        or, after a ``KeyboardInterrupt``, ``interrupted``); None for ``dry_run=True``
        (every check passed, nothing written).

    Raises:
        TuneFoodError: the problem the command would print as its one line (its message
            is that line): a bad space, options that contradict, missing data, ...
        TypeError: a keyword that is not an option of the sweep.
        KeyboardInterrupt: an interrupt before the trials started (nothing written).
    """
    check_environment(IMPORTS)   # first, as the command checks it
    with _space_file(space) as path:
        argv = _argv(options, "tune_food.run")
        if path is not None:
            argv.append(f"--space={path}")
        parsed = _parse(argv)
        if parsed.name is None and not parsed.dry_run:
            # the default name (<space>-<date>-<time>) is chosen once, here, so that the
            # folder the result reads is the one the sweep writes
            argv.append(f"--name={check_sweep(parsed).name}")
            parsed = _parse(argv)
        return _sweep(parsed)


def resume(path: str | os.PathLike, space: str | os.PathLike | Mapping[str, Any] | None = None,
           **options: Any) -> SweepResult | None:
    """Continue the sweep folder ``path`` (``--resume``): finished trials are kept,
    interrupted, errored and unstarted ones run. ``space``: a wider grid (``--space``);
    ``options``: as :func:`run`'s (without ``name`` and ``results_dir``: the folder
    says them), e.g. ``num_samples`` to extend a search, ``max_concurrent``.

    Returns, raises: as :func:`run`.
    """
    taken = sorted({"name", "results_dir"} & set(options))
    if taken:
        raise TypeError(f"tune_food.resume takes the sweep's folder, not {', '.join(taken)}")
    check_environment(IMPORTS)   # first, as the command checks it
    folder = os.path.abspath(os.fspath(path))
    check_sweep_folder(folder)
    with _space_file(space) as space_path:
        argv = ["--resume", f"--name={os.path.basename(folder)}",
                f"--results-dir={os.path.dirname(folder)}", *_argv(options, "tune_food.resume")]
        if space_path is not None:
            argv.append(f"--space={space_path}")
        return _sweep(_parse(argv))


def load(path: str | os.PathLike) -> SweepResult:
    """The sweep folder ``path`` (finished, interrupted, failed or running; written by
    this version or an earlier one) as a :class:`SweepResult`.

    Raises:
        SweepError: ``path`` is not a sweep folder (no ``sweep.json``).
        SweepFileError: its ``sweep.json`` is damaged or hand-edited (the file, the key).
    """
    return SweepResult(path)


# ------------------------------------------------------------------ options

def _argv(options: Mapping[str, Any], caller: str) -> list[str]:
    """The sweep's command line for the keyword arguments ``options``.

    Raises:
        TypeError: a keyword that is not in :data:`KEYWORDS`.
        SweepError: a switch given a value other than True or False.
    """
    unknown = sorted(set(options) - set(KEYWORDS))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"it takes the sweep's options: {', '.join(KEYWORDS)}")
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if key in _SWITCHES and not isinstance(value, bool):
            raise SweepError(f"{flag} is a switch: {key}=True or False, not {value!r}")
        if value is None or value is False:
            continue
        value = os.fspath(value) if isinstance(value, os.PathLike) else value
        argv.append(flag if value is True else f"{flag}={value}")
    return argv


def _argument_error(message: str):
    """The sweep parser's argument error as the API's exception (the command prints the
    same message as its one line)."""
    raise SweepError(message)


def _parse(argv: list[str]) -> SweepOptions:
    return parse_options(argv, error=_argument_error)


@contextmanager
def _space_file(space) -> Iterator[str | None]:
    """A path for ``space``: the path given, or a dict written as YAML to a temporary
    ``space.yaml`` (removed afterwards: the sweep keeps its own copy)."""
    if space is None or isinstance(space, (str, os.PathLike)):
        yield None if space is None else os.path.abspath(os.path.expanduser(os.fspath(space)))
        return
    if not isinstance(space, Mapping):
        raise TypeError(f"space is a YAML file's path or a dict, not {type(space).__name__}")
    with tempfile.TemporaryDirectory(prefix="tune_food-space-") as folder:
        path = os.path.join(folder, SPACE_FILE)
        with open(path, "w") as fh:
            yaml.safe_dump(dict(space), fh, sort_keys=False)
        yield path


# ------------------------------------------------------------------ running

def _sweep(options: SweepOptions) -> SweepResult | None:
    """:func:`tune_food.sweep.run.run_sweep` in this process, as a good citizen of a
    kernel: the environment checked (as the command checks it), the signal handlers kept,
    a Ray it started stopped (one found running left alone), progress shown
    (:func:`_progress`)."""
    check_environment(IMPORTS)
    theirs = ray.is_initialized()
    out = _progress()
    _ACTIVE.append(out)
    try:
        with _handlers_kept():
            run_sweep(options, out)   # its exit code: the result's status says it
    finally:
        _ACTIVE.remove(out)
        out.close()
        if not theirs:
            shutdown_ray()   # a failure before the launch leaves no Ray of ours behind
    if options.dry_run:
        return None
    folder = local_dir(experiment_dir(options.results_dir, options.name), options.name)
    result = SweepResult(folder)
    if result.status == SweepStatus.INTERRUPTED:
        print(f"sweep {options.name} interrupted; continue it with "
              f"tune_food.resume({folder!r})", file=sys.stderr)
    return result


@contextmanager
def _handlers_kept() -> Iterator[None]:
    """SIGINT's and SIGTERM's handlers as they were before the block (Ray's start sets
    SIGTERM's to the sweep's; the kernel keeps its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            if handler is not None:
                signal.signal(sig, handler)


def in_notebook() -> bool:
    """True in a Jupyter kernel (IPython's kernel app; tqdm's own test)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


#: the progress stream of the API call running now. Ray Tune pickles the sweep's
#: callbacks with the stream they print to (``tuner.pkl``) and a resume unpickles them:
#: the streams below unpickle as the one running then (the command's ``sys.stdout`` is
#: pickled by reference the same way, by cloudpickle)
_ACTIVE: list = []


def _active():
    """The progress stream of the running call (:data:`_ACTIVE`), else standard output."""
    return _ACTIVE[-1] if _ACTIVE else _Stdout()


def _progress():
    """Where the sweep prints its lines: a :class:`ProgressLine` in a Jupyter kernel,
    else standard output as the command (with a ``close`` that does nothing)."""
    return ProgressLine() if in_notebook() else _Stdout()


class _Stdout:
    """Standard output as the sweep's ``out`` (looked up at each write: a notebook's or
    pytest's capture replaces ``sys.stdout``)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return sys.stdout.isatty()

    def close(self) -> None:
        """Nothing to close: standard output is not the sweep's."""

    def __reduce__(self):
        return _active, ()


class ProgressLine:
    """The sweep's lines as one updating line (tqdm's bar on standard error; a notebook
    shows it redrawn in place): the trials done of those planned (from the lines
    ``[3/8] done ...`` of :class:`tune_food.sweep.launch.Progress`) and the latest
    line. The summary printed when the sweep ends is left out: the
    :class:`SweepResult` shows it."""

    def __init__(self):
        self.bar = tqdm(total=None, unit="trial", file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc} {n_fmt}/{total_fmt} trials [{elapsed}]")
        self.pending, self.ended = "", False

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self._line(line.rstrip())
        return len(text)

    def _line(self, line: str) -> None:
        if self.ended or not line:
            return
        if line.startswith("sweep "):   # the summary's first line: what it shows ends here
            self.ended = True
        trials = _TRIALS_LINE.match(line)
        if trials:
            self.bar.total, self.bar.n = int(trials[2]), int(trials[1])
        self.bar.set_description_str(" ".join(line.split())[:100], refresh=True)

    def flush(self) -> None:
        """Lines are shown as they end."""

    def isatty(self) -> bool:
        return False

    def close(self) -> None:
        self.bar.close()

    def __reduce__(self):   # the bar and the kernel's stream are not picklable
        return _active, ()


# ------------------------------------------------------------------ results

@dataclasses.dataclass(frozen=True)
class Trial:
    """One trial of a sweep: a row of its ``leaderboard.csv``.

    ``name`` and ``trial_id`` as the leaderboard names it; ``status`` a
    :class:`~tune_food.sweepdir.status.TrialStatus`; ``rank`` 1 for the best (None: not
    ranked: it did not run to its end); ``config`` its hyperparameters
    (:data:`tune_food.train.hparams.PARAMS`' names); ``metrics`` those of the epoch the
    row shows (accuracies 0 ... 1, losses, the deployment figures ``cpu_ms`` and
    ``model_mb``, ``p_vs_best``); ``checkpoint`` the absolute folder of that epoch's
    checkpoint (ranked trials only, else None); ``folder`` the trial's folder; ``sweep``
    the sweep's folder.
    """

    name: str
    trial_id: str
    status: TrialStatus
    rank: int | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    checkpoint: str | None
    folder: str | None
    sweep: str
    _loaded: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def predict(self, images: str | os.PathLike | Sequence[str | os.PathLike],
                top_k: int = 3) -> list[dict]:
        """Classify ``images`` (a path or a list of paths) with this trial's classifier
        (:func:`tune_food.inference.classifier.load_classifier`, loaded once per trial).

        Returns:
            one dict per image, in order: ``{"image": path, "predictions": [{"class":
            name, "probability": p}, ...]}``, ``top_k`` classes, highest ``p`` (0 ... 1)
            first (:func:`tune_food.inference.classifier.classify`).

        Raises:
            SweepError: the trial has no usable checkpoint (not ranked, or its checkpoint
                holds another epoch: :func:`tune_food.inference.checkpoints.trial_checkpoint`).
            DataError: images that are missing or cannot be decoded (all named).
        """
        if "model" not in self._loaded:
            # no checkpoint: trial_checkpoint raises the reason, as predict and export say it
            checkpoint = self.checkpoint or trial_checkpoint(self.sweep, self.trial_id).path
            self._loaded["model"] = load_classifier(checkpoint)
        model, classes = self._loaded["model"]
        paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        return classify(model, classes, [os.fspath(p) for p in paths], top_k=top_k)


class SweepResult:
    """A sweep folder read through its contract (:mod:`tune_food.sweepdir`).

    ``path`` is the folder (absolute), ``state`` its ``sweep.json``
    (:class:`~tune_food.sweepdir.record.SweepState`, any earlier shape), ``status`` a
    :class:`~tune_food.sweepdir.status.SweepStatus`. The tables are read when first
    used; :func:`load` again to see a running sweep's newer files.

    Raises (on construction):
        SweepError: ``path`` is not a sweep folder; SweepFileError: a damaged ``sweep.json``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.path.abspath(os.fspath(path))
        check_sweep_folder(self.path)
        self.state: SweepState = read_state(self.path)

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def status(self) -> SweepStatus:
        """The sweep's status as ``sweep.json`` records it."""
        return self.state.status

    @cached_property
    def leaderboard(self) -> pd.DataFrame:
        """``leaderboard.csv`` as pandas reads it (a row per trial, best first; the
        columns of :mod:`tune_food.sweepdir.columns`). A running sweep has none yet: its
        leaderboard is rebuilt in memory from the trial folders as the web page shows it
        (:func:`tune_food.results.outputs.build_outputs`; planned trials not begun are
        ``NOT_STARTED``); an empty DataFrame when there is nothing to rebuild."""
        path = os.path.join(self.path, LEADERBOARD_FILE)
        if os.path.isfile(path):
            return pd.read_csv(path)
        if self.status != SweepStatus.RUNNING:
            return pd.DataFrame()
        try:
            return build_outputs(self.path, self.state).board
        except (TuneFoodError, OSError, ValueError):   # files being written meanwhile
            return pd.DataFrame()

    @cached_property
    def trials(self) -> list[Trial]:
        """Every trial, in the leaderboard's order (ranked first)."""
        return [self._trial(row) for _, row in self.leaderboard.iterrows()]

    @property
    def best(self) -> Trial | None:
        """The rank-1 trial (None when no trial is ranked)."""
        return next((t for t in self.trials if t.rank == 1), None)

    def trial(self, name: str) -> Trial:
        """The trial named ``name`` (its name or id).

        Raises:
            SweepError: no such trial (the message names some).
        """
        for t in self.trials:
            if name in (t.name, t.trial_id):
                return t
        names = ", ".join(t.name for t in self.trials[:5])
        raise SweepError(f"no trial {name!r} in sweep {self.name} (its trials: {names})")

    @property
    def plots(self) -> dict[str, str]:
        """The sweep's figures: file stem (``"leaderboard"``, ``"tradeoff"``, ...) ->
        absolute path of the PNG in ``plots/``; empty when none was drawn."""
        folder = os.path.join(self.path, PLOTS_DIR)
        if not os.path.isdir(folder):
            return {}
        return {os.path.splitext(f)[0]: os.path.join(folder, f)
                for f in sorted(os.listdir(folder)) if f.endswith(".png")}

    def export(self, out: str | os.PathLike, trial: str | None = None,
               force: bool = False) -> str:
        """The web demo folder of ``trial`` (None: rank 1) at ``out``, as
        ``python -m tune_food.export`` writes it (:func:`tune_food.export.export`).
        Returns the absolute ``out``; raises what that raises (a ``TuneFoodError``)."""
        return export_trial(self.path, os.fspath(out), trial, force)

    def _trial(self, row: pd.Series) -> Trial:
        def present(names) -> dict[str, Any]:
            return {k: _plain(row[k]) for k in names if k in row.index and not _missing(row[k])}

        ranked = not _missing(row.get(RANK))
        folder = row.get(LOGDIR)
        return Trial(
            name=str(row[TRIAL_NAME]), trial_id=str(row[TRIAL_ID]),
            status=TrialStatus(row[STATUS]), rank=int(row[RANK]) if ranked else None,
            config=present(PARAMS),
            metrics=present([*METRIC_COLUMNS, *DEPLOYMENT_COLUMNS, P_VS_BEST, TIED_WITH_BEST]),
            checkpoint=self._checkpoint(str(row[TRIAL_ID])) if ranked else None,
            folder=os.path.join(self.path, folder) if isinstance(folder, str) else None,
            sweep=self.path)

    def _checkpoint(self, trial_id: str) -> str | None:
        """The checkpoint folder of the ranked trial ``trial_id``; None when it cannot be
        used (:meth:`Trial.predict` says why)."""
        try:
            return trial_checkpoint(self.path, trial_id).path
        except SweepError:
            return None

    def __repr__(self) -> str:
        return (f"SweepResult({self.path!r}: {self.status}, {len(self.leaderboard)} trials"
                + (f", best {self.best.name}" if self.best else "") + ")")

    def _repr_html_(self) -> str:
        """The notebook's view: the sweep's line, the leaderboard's summary columns, and
        the tradeoff plot (else the leaderboard plot) inline."""
        board, state = self.leaderboard, self.state
        head = (f"<p><b>sweep {html.escape(self.name)}</b>: {html.escape(str(self.status))}, "
                f"{len(board)} trials, ranked by {html.escape(state.metric)} "
                f"({html.escape(state.mode)}) &middot; <code>{html.escape(self.path)}</code></p>")
        table = board[summary_columns(board, state.metric)].to_html(
            index=False, float_format=lambda v: f"{v:.4f}", na_rep="") if len(board) else \
            "<p>no leaderboard yet</p>"
        plots = self.plots
        figure = plots.get(os.path.splitext(TRADEOFF_PNG)[0]) or \
            plots.get(os.path.splitext(LEADERBOARD_PNG)[0])
        image = ""
        if figure:
            with open(figure, "rb") as fh:
                data = base64.b64encode(fh.read()).decode()
            image = (f'<img alt="{html.escape(os.path.basename(figure))}" '
                     f'style="max-width: 720px" src="data:image/png;base64,{data}"/>')
        return f"<div>{head}{table}{image}</div>"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    """A pandas/NumPy scalar as the Python value (``numpy.int64(3)`` -> ``3``)."""
    return value.item() if hasattr(value, "item") else value
