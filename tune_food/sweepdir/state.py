"""``sweep.json``: starting, reopening and finding a sweep's own record (the record
itself, its keys, load and save: :mod:`tune_food.sweepdir.record`).

It holds the status (``running``, ``finished``, ``finished with errors``,
``interrupted`` + how to resume, ``failed`` + the reason and how to resume), the search space, the options the sweep started
with, versions, dataset fingerprints, skipped images, the validation set, the plan of
trials, feature-extraction figures, timings and the McNemar summary. Everything in it
that points into the sweep or at the data is relative, so a moved folder stays valid.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import importlib.metadata as md
import os
import platform
import shlex
import shutil
import socket
from dataclasses import dataclass
from typing import Any

from tune_food.common.errors import SweepError
from tune_food.data.datasets import DATA_DIR_ENV, DEFAULT_DATA_DIR, dataset_fingerprint
from tune_food.sweepdir.layout import (
    DRIVER_LOCK,
    RESULTS_DIR,
    SPACE_FILE,
    STATE_FILE,
    SWEEP_COMMAND,
)
from tune_food.sweepdir.record import SCHEMA_VERSION, Planned, SweepState, WarmStart
from tune_food.sweepdir.status import SweepStatus

PROG = SWEEP_COMMAND


def now() -> str:
    """The local time in ISO format, to the second (``started``, ``finished``)."""
    return _dt.datetime.now().isoformat(timespec="seconds")


def read_state(exp_dir: str) -> SweepState:
    """The ``sweep.json`` of a sweep folder (:meth:`SweepState.load`).

    Raises:
        SweepFileError: the folder is not a tune_food sweep, or its ``sweep.json`` is
            damaged (one line naming the file and the key).
    """
    return SweepState.load(exp_dir)


def peek_state(exp_dir: str) -> SweepState | None:
    """``sweep.json`` as far as it can be read now: None when it is missing,
    half-written or damaged (for views that poll a sweep while it runs)."""
    try:
        return SweepState.load(exp_dir)
    except SweepError:
        return None


def write_state(state: SweepState, local_dir: str) -> None:
    """Write ``state`` to ``<local_dir>/sweep.json`` atomically (:meth:`SweepState.save`)."""
    state.save(local_dir)


def versions() -> dict[str, str]:
    """Python's and the key packages' versions (``not installed`` where absent)."""
    out = {"python": platform.python_version()}
    for pkg in ("tune_food", "torch", "torchvision", "timm", "openvino", "ray", "optuna",
                "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass(frozen=True)
class SweepStart:
    """What a sweep starts with, as the sweep layer hands it down to :func:`start_state`
    (built by :meth:`tune_food.sweep.launch.Launch.sweep_start` from the plan and the options).

    Attributes:
        name: the sweep's name; space_path: the search space file (copied as
            ``space.yaml``); space: its YAML as read; metric, mode: what ranks.
        args: the options as ``sweep.json`` keeps them
            (:meth:`tune_food.sweep.options.SweepOptions.saved`).
        data_root: the data root resolved; datasets: dataset name -> absolute folder.
        skipped_bad_images: ``{"path", "reason"}`` of each image left out (paths
            relative to the data root); validation: the validation set's summary;
            test_sets: the images that rank on the test split, by content.
        allow_leakage: ``--allow-leakage``; backbone_runtime: what runs the frozen
            backbone on the CPU (the requested one resolved).
        planned: the trials the sweep runs; warm_start: ``--warm-start``'s source, or
            None; mlflow: ``--mlflow``'s runs, or None; resume: ``--resume`` (reopen
            the sweep's own ``sweep.json`` when there is one).
    """

    name: str
    space_path: str
    space: dict[str, Any]
    metric: str
    mode: str
    args: dict[str, Any]
    data_root: str
    datasets: dict[str, str]
    skipped_bad_images: list[dict[str, str]]
    validation: dict[str, Any]
    test_sets: dict[str, dict[str, Any]] | None
    allow_leakage: bool
    backbone_runtime: str
    planned: Planned
    warm_start: WarmStart | None = None
    mlflow: dict[str, Any] | None = None
    resume: bool = False


def start_state(start: SweepStart, local_dir: str) -> SweepState:
    """Create (or on ``--resume``, reopen) ``sweep.json`` with status ``running`` and
    keep a copy of the search space in the sweep folder (``space.yaml``).

    Returns:
        the record as written.

    Raises:
        SweepFileError: on ``--resume``, the sweep's ``sweep.json`` is damaged.
    """
    os.makedirs(local_dir, exist_ok=True)
    if start.resume and is_sweep(local_dir):
        state = SweepState.load(local_dir)
        state.resumed = (state.resumed or []) + [now()]
        state.schema_version = SCHEMA_VERSION   # every key of an older file is optional
    else:
        shutil.copyfile(start.space_path, os.path.join(local_dir, SPACE_FILE))
        state = SweepState(
            name=start.name, space_file=SPACE_FILE, space=start.space, metric=start.metric,
            mode=start.mode, args=start.args, versions=versions(), data_root=start.data_root,
            datasets={n: dataset_fingerprint(p, start.data_root)
                      for n, p in start.datasets.items()},
            skipped_bad_images=start.skipped_bad_images, validation=start.validation,
            test_sets=start.test_sets, allow_leakage=start.allow_leakage, started=now(),
            warm_start=start.warm_start)
    # what runs the frozen backbone on the CPU (what really ran is on the leaderboard and
    # with each feature set: computed_by); a resume may choose another
    state.backbone_runtime = start.backbone_runtime
    if state.planned is None:
        state.planned = start.planned
    if start.mlflow:
        state.mlflow = start.mlflow
    state.status = SweepStatus.RUNNING   # who drives it: the lock's (claim_driver)
    state.resume = state.error = None
    state.save(local_dir)
    return state


def resume_command(name: str, results_dir: str | None) -> str:
    """The command that continues sweep ``name``. ``results_dir`` None (what
    ``sweep.json`` records) names the results folder by what it is, not where it was."""
    if results_dir is None:
        return (f"{PROG} --resume --name {shlex.quote(name)} --results-dir "
                f"<the folder that holds {name}>")
    results = "" if results_dir == RESULTS_DIR else f" --results-dir {shlex.quote(results_dir)}"
    return f"{PROG} --resume --name {shlex.quote(name)}{results}"


def saved_args(sweep_dir: str, name: str, results_dir: str) -> dict[str, Any]:
    """The ``args`` a sweep started with, from the ``sweep.json`` of ``sweep_dir``.

    Raises:
        SweepError: there is no such sweep (wrong ``--name`` or ``--results-dir``).
        SweepFileError: its ``sweep.json`` is damaged.
    """
    if not is_sweep(sweep_dir):
        raise SweepError(f"no sweep named {name!r} in {os.path.abspath(results_dir)} "
                         f"({os.path.join(sweep_dir, STATE_FILE)} not found); check --name "
                         "and --results-dir")
    return SweepState.load(sweep_dir).args


def data_root_candidates(state: SweepState) -> list[tuple[str, str | None]]:
    """``(what, folder)`` of every place the sweep's images may be on this machine, in the
    order :func:`data_root` tries them: the sweep's ``--data-dir``, the data root the
    sweep resolved (``data_root`` in ``sweep.json``, e.g. from ``$TUNE_FOOD_DATA_DIR``
    where it ran), ``$TUNE_FOOD_DATA_DIR`` here, ``./data``. A folder is None when unset."""
    return [("the sweep's --data-dir", state.args.get("data_dir")),
            ("the sweep's data root", state.data_root),
            (f"${DATA_DIR_ENV}", os.environ.get(DATA_DIR_ENV)),
            (f"./{DEFAULT_DATA_DIR}", DEFAULT_DATA_DIR)]


def data_root(state: SweepState) -> str | None:
    """Where the sweep's images are on this machine (prediction files name images
    relative to it; a sweep copied to another machine finds its images through
    ``$TUNE_FOOD_DATA_DIR``): the first of :func:`data_root_candidates` that holds every
    dataset of the sweep, else the first that exists; None when none exists."""
    folders = [os.path.abspath(os.path.expanduser(f))
               for _, f in data_root_candidates(state) if f and os.path.isdir(os.path.expanduser(f))]
    names = [d.get("path", n) for n, d in state.datasets.items()]
    for folder in folders:
        if all(os.path.isdir(os.path.join(folder, n)) for n in names):
            return folder
    return folders[0] if folders else None


def running_driver(sweep_dir: str) -> str | None:
    """``"pid N on host H"`` when a live driver holds the sweep at ``sweep_dir``
    (:func:`claim_driver`'s lock), else None. A driver that died, SIGKILL included,
    holds nothing: the kernel releases its lock with its files."""
    path = os.path.join(sweep_dir, DRIVER_LOCK)
    try:
        fh = open(path)
    except OSError:   # no lock file (an older sweep, or never run): no driver holds it
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fh)
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def _holder(fh) -> str:
    """``"pid N on host H"`` as the driver wrote it in its lock file (``fh``, open)."""
    fh.seek(0)
    holder = fh.read().split()
    return f"pid {holder[0]} on host {holder[1]}" if len(holder) == 2 else "another process"


@contextlib.contextmanager
def claim_driver(sweep_dir: str):
    """Be the one driver of the sweep at ``sweep_dir`` (created when missing) while the
    block runs: an exclusive ``flock`` on its :data:`~tune_food.sweepdir.layout.DRIVER_LOCK`
    file, which names this process's pid and host for :func:`running_driver`.

    Raises:
        SweepError: another live driver holds it (one line naming its pid and host).
    """
    os.makedirs(sweep_dir, exist_ok=True)
    fh = open(os.path.join(sweep_dir, DRIVER_LOCK), "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(refused_while_running(sweep_dir, _holder(fh))) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()} {socket.gethostname()}\n")
        fh.flush()
        yield
    finally:
        fh.close()   # releases the lock


def refused_while_running(sweep_dir: str, holder: str) -> str:
    """The one line that refuses to drive the sweep at ``sweep_dir`` while ``holder``
    (:func:`running_driver`'s words: ``"pid N on host H"``) drives it."""
    return (f"sweep {os.path.basename(os.path.abspath(sweep_dir))} is being run by another "
            f"driver ({holder}); wait until it ends, or stop it (Ctrl-C, "
            "or the web page's Stop) and try again")


# ------------------------------------------------------------------ finding sweep folders

def is_sweep(path: str) -> bool:
    """True when ``path`` is a folder holding a ``sweep.json``."""
    return os.path.isfile(os.path.join(path, STATE_FILE))


def list_sweeps(results_dir: str) -> list[str]:
    """Names of the sweep folders directly under ``results_dir``, newest first (by the
    ``started`` time of their ``sweep.json``, else its modification time)."""
    if not os.path.isdir(results_dir):
        return []
    found = []
    for name in os.listdir(results_dir):
        path = os.path.join(results_dir, name)
        if is_sweep(path):
            state = peek_state(path)
            key = (state and state.started) or _dt.datetime.fromtimestamp(
                os.path.getmtime(os.path.join(path, STATE_FILE))).isoformat(timespec="seconds")
            found.append((key, name))
    return [n for _, n in sorted(found, reverse=True)]


def newest_sweep(results_dir: str) -> str | None:
    """The name of the newest sweep folder directly under ``results_dir`` (the first of
    :func:`list_sweeps`): what ``python -m tune_food.app``, ``report`` and ``predict``
    take when no sweep is named.

    Returns:
        the folder's name, or None when ``results_dir`` holds no sweep or does not exist.

    Raises:
        SweepError: ``results_dir`` is a file.
    """
    if os.path.exists(results_dir) and not os.path.isdir(results_dir):
        raise SweepError(f"--results-dir {results_dir} is a file, not a folder")
    names = list_sweeps(results_dir)
    return names[0] if names else None


def check_sweep_folder(path: str) -> None:
    """Return None when ``path`` is a sweep folder (one holding a ``sweep.json``).

    Raises:
        SweepError: ``path`` does not exist, is a file, or holds no ``sweep.json``; the
            message names the sweeps beside it (the newest few), if any.
    """
    if not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise SweepError(f"sweep folder {path} {what}; pass results/<name>{_beside(path)}")
    if not is_sweep(path):
        raise SweepError(f"{path} is not a tune_food sweep (no {STATE_FILE}); pass "
                         f"results/<sweep-name>{_beside(path)}")


def _beside(path: str, shown: int = 5) -> str:
    """``"; sweeps in <folder>: a, b, ..."``: the newest sweeps in ``path``'s folder."""
    folder = os.path.dirname(os.path.abspath(path))
    names = list_sweeps(folder)
    if not names:
        return ""
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return f"; sweeps in {folder}: {', '.join(names[:shown])}{more}"
