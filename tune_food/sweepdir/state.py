"""``sweep.json``: a sweep's own record, written only through this module.

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
import json
import os
import platform
import shlex
import shutil
import socket
from typing import Any

from tune_food.common.errors import SweepError
from tune_food.common.files import write_json_atomic
from tune_food.data.datasets import DATA_DIR_ENV, DEFAULT_DATA_DIR, dataset_fingerprint
from tune_food.models.devices import requested_runtime
from tune_food.sweepdir.layout import (
    DRIVER_LOCK,
    RESULTS_DIR,
    SPACE_FILE,
    STATE_FILE,
    SWEEP_COMMAND,
)
from tune_food.sweepdir.status import SweepStatus

PROG = SWEEP_COMMAND


def now() -> str:
    """The local time in ISO format, to the second (``started``, ``finished``)."""
    return _dt.datetime.now().isoformat(timespec="seconds")


def read_state(exp_dir: str) -> dict:
    """The ``sweep.json`` of a sweep folder.

    Raises:
        SweepError: the folder is not a tune_food sweep, or its ``sweep.json`` is damaged.
    """
    state_file = os.path.join(exp_dir, STATE_FILE)
    if not os.path.isfile(state_file):
        raise SweepError(f"{exp_dir} is not a tune_food sweep (no {STATE_FILE}); pass "
                         "results/<sweep-name>")
    try:
        with open(state_file) as fh:
            state = json.load(fh)
        state["metric"], state["mode"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SweepError(f"{state_file} is damaged ({type(exc).__name__}: {exc}); it is "
                         f"written by {PROG}") from None
    return state


def peek_state(exp_dir: str) -> dict:
    """``sweep.json`` as far as it can be read now: ``{}`` when it is missing or
    half-written (for views that poll a sweep while it runs)."""
    try:
        with open(os.path.join(exp_dir, STATE_FILE)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def write_state(state: dict, local_dir: str) -> None:
    """Write ``state`` to ``<local_dir>/sweep.json`` atomically."""
    write_json_atomic(state, os.path.join(local_dir, STATE_FILE))


def versions() -> dict[str, str]:
    """Python's and the key packages' versions (``not installed`` where absent)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("tune_food", "torch", "torchvision", "timm", "openvino", "ray", "optuna",
                "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def start_state(plan, options, name: str, local_dir: str, planned_trials: int,
                mlflow: dict | None = None) -> dict:
    """Create (or on ``--resume``, reopen) ``sweep.json`` with status ``running`` and
    keep a copy of the search space in the sweep folder (``space.yaml``).

    Args:
        plan: the :class:`tune_food.sweep.plan.Plan`; options: the
            :class:`tune_food.sweep.options.SweepOptions`.
        planned_trials: how many trials the sweep runs (a grid's trials, a search's
            samples): ``planned``, from which the leaderboard lists the trials that never
            started.
        mlflow: ``--mlflow``'s runs (:func:`tune_food.results.tracking.start_runs`), or None.
    """

    os.makedirs(local_dir, exist_ok=True)
    state_file = os.path.join(local_dir, STATE_FILE)
    if options.resume and os.path.isfile(state_file):
        with open(state_file) as fh:
            state = json.load(fh)
        state.setdefault("resumed", []).append(now())
    else:
        space = plan.space
        shutil.copyfile(space.path, os.path.join(local_dir, SPACE_FILE))
        state = {"name": name, "space_file": SPACE_FILE,
                 "space": space.raw, "metric": space.metric, "mode": space.mode,
                 "args": options.saved(), "versions": versions(),
                 "data_root": plan.data_root,
                 "datasets": {n: dataset_fingerprint(p, plan.data_root)
                              for n, p in plan.datasets.items()},
                 "skipped_bad_images": [{"path": plan.relative(p), "reason": r}
                                        for p, r in plan.bad_images],
                 "validation": plan.validation.summary(),
                 # the images that rank on the test split, by content (a warm start checks them)
                 "test_sets": plan.test_sets,
                 "allow_leakage": options.allow_leakage, "started": now()}
        if getattr(plan, "history", None) is not None and options.warm_start:
            # --warm-start: where Optuna's first trials came from
            state["warm_start"] = {"sweep": os.path.abspath(options.warm_start),
                                   "trials": len(plan.history.points)}
    # what runs the frozen backbone on the CPU (what really ran is on the leaderboard and
    # with each feature set: computed_by); a resume may choose another
    state["backbone_runtime"] = requested_runtime(options.backbone_runtime)
    state.setdefault("planned", {"trials": planned_trials,
                                 "configs": [dict(t) for t in plan.trials]})
    if mlflow:
        state["mlflow"] = mlflow
    state.update(status=SweepStatus.RUNNING)   # who drives it: the lock's (claim_driver)
    state.pop("resume", None)
    state.pop("error", None)
    write_state(state, local_dir)
    return state


def resume_command(name: str, results_dir: str | None) -> str:
    """The command that continues sweep ``name``. ``results_dir`` None (what
    ``sweep.json`` records) names the results folder by what it is, not where it was."""
    if results_dir is None:
        return (f"{PROG} --resume --name {shlex.quote(name)} --results-dir "
                f"<the folder that holds {name}>")
    results = "" if results_dir == RESULTS_DIR else f" --results-dir {shlex.quote(results_dir)}"
    return f"{PROG} --resume --name {shlex.quote(name)}{results}"


def saved_args(state_file: str, name: str, results_dir: str) -> dict[str, Any]:
    """The ``args`` a sweep started with, from its ``sweep.json`` at ``state_file``.

    Raises:
        SweepError: there is no such sweep (wrong ``--name`` or ``--results-dir``).
    """
    if not os.path.isfile(state_file):
        raise SweepError(f"no sweep named {name!r} in {os.path.abspath(results_dir)} "
                         f"({state_file} not found); check --name and --results-dir")
    with open(state_file) as fh:
        return json.load(fh)["args"]


def data_root_candidates(state: dict) -> list[tuple[str, str | None]]:
    """``(what, folder)`` of every place the sweep's images may be on this machine, in the
    order :func:`data_root` tries them: the sweep's ``--data-dir``, the data root the
    sweep resolved (``data_root`` in ``sweep.json``, e.g. from ``$TUNE_FOOD_DATA_DIR``
    where it ran), ``$TUNE_FOOD_DATA_DIR`` here, ``./data``. A folder is None when unset."""
    return [("the sweep's --data-dir", (state.get("args") or {}).get("data_dir")),
            ("the sweep's data root", state.get("data_root")),
            (f"${DATA_DIR_ENV}", os.environ.get(DATA_DIR_ENV)),
            (f"./{DEFAULT_DATA_DIR}", DEFAULT_DATA_DIR)]


def data_root(state: dict) -> str | None:
    """Where the sweep's images are on this machine (prediction files name images
    relative to it; a sweep copied to another machine finds its images through
    ``$TUNE_FOOD_DATA_DIR``): the first of :func:`data_root_candidates` that holds every
    dataset of the sweep, else the first that exists; None when none exists."""
    folders = [os.path.abspath(os.path.expanduser(f))
               for _, f in data_root_candidates(state) if f and os.path.isdir(os.path.expanduser(f))]
    names = [d.get("path", n) for n, d in (state.get("datasets") or {}).items()]
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
            key = state.get("started") or _dt.datetime.fromtimestamp(
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
