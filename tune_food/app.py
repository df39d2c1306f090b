"""The web page of a sweep: ``python -m tune_food.app [results/<name>]`` (Gradio).

::

    python -m tune_food.app                      # the newest sweep under ./results
    python -m tune_food.app results/grid-run1 --port 7861
    python -m tune_food.app --host 0.0.0.0 --auth me:secret

Three pages, all built on the sweep folder's own files and on the functions the CLIs use
(nothing here re-implements the leaderboard or the classifier):

* **Classify**: drop photos (or pick test images of the sweep); each gets its top classes
  from :func:`tune_food.predict.predict` with the classifier of the chosen trial
  (:func:`tune_food.predict.load_classifier`, loaded once per trial and kept), the time
  per image in ms, and which trial and checkpoint answered.
* **Leaderboard**: ``leaderboard.csv`` as a table, the plots, and per trial its
  hyperparameters, curves (``progress.csv``), the test images it gets wrong and its
  confusion matrix. While the sweep runs, the page rebuilds every few seconds from the
  trial folders with :func:`tune_food.outputs.build_outputs`, the code the sweep and
  ``python -m tune_food.report`` write their outputs with.
* **Sweeps**: the sweeps under the results folder with their status and best result;
  start one (a space file of ``search_spaces/`` and a few flags) as a background
  ``python -m tune_food.sweep`` process in its own session, watch its output, stop it
  (SIGINT: the sweep ends "interrupted") and resume it (``--resume``).

Offline: Gradio's analytics are switched off and the theme uses the system's fonts, so no
request leaves the machine. Uploads above :data:`MAX_FILE_SIZE` are refused by Gradio.
"""

from __future__ import annotations

import datetime as _dt
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

import pandas as pd

from .errors import DataError, SweepError, TuneFoodError, cli_call, quiet_broken_pipe

PROG = "python -m tune_food.app"
MAX_FILE_SIZE = "20mb"     # Gradio refuses larger uploads (HTTP 413)
MAX_IMAGES = 64            # images per request; more are refused with a message
EXAMPLES_PER_CLASS = 2     # test images per class offered as examples
BOARD_REFRESH_S = 5.0      # Leaderboard page refresh while the selected sweep runs
SWEEPS_REFRESH_S = 2.0     # Sweeps page: table and log refresh
LOG_TAIL_CHARS = 20_000    # how much of a sweep's output the page shows
APP_DIR = ".app"           # <results>/.app/<name>.log / .json: sweeps started from the page
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
STATE_FILE = "sweep.json"


# --------------------------------------------------------------------------- sweep folders

def wait_until_serving(url: str, process, timeout: float = 120.0) -> bool:
    """Poll ``url`` every 0.5 s until it answers (True), or until ``process`` (a
    ``subprocess.Popen`` of the app) has exited or ``timeout`` seconds have passed
    (False)."""
    import urllib.request

    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return True
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                return False
            time.sleep(0.5)


def is_sweep(path: str) -> bool:
    """True when ``path`` is a folder holding a ``sweep.json``."""
    return os.path.isfile(os.path.join(path, STATE_FILE))


def read_state(exp_dir: str) -> dict:
    """The ``sweep.json`` of a sweep folder (``{}`` when it is missing or half-written)."""
    try:
        with open(os.path.join(exp_dir, STATE_FILE)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def list_sweeps(results_dir: str) -> list[str]:
    """Names of the sweep folders directly under ``results_dir``, newest first (by the
    ``started`` time of their ``sweep.json``, else its modification time)."""
    if not os.path.isdir(results_dir):
        return []
    found = []
    for name in os.listdir(results_dir):
        path = os.path.join(results_dir, name)
        if is_sweep(path):
            state = read_state(path)
            key = state.get("started") or _dt.datetime.fromtimestamp(
                os.path.getmtime(os.path.join(path, STATE_FILE))).isoformat(timespec="seconds")
            found.append((key, name))
    return [n for _, n in sorted(found, reverse=True)]


def _abs_in(exp_dir: str, path: Any) -> str | None:
    """A path of a leaderboard row made absolute (new leaderboards store them relative
    to the sweep folder)."""
    if not isinstance(path, str) or not path:
        return None
    return path if os.path.isabs(path) else os.path.join(exp_dir, path)


def test_images(exp_dir: str, config: dict | None = None) -> list[str]:
    """The test-split images of a sweep (of the trial with ``config``; default: the
    first trial's), sorted, from the dataset folders recorded in ``sweep.json``.

    Returns ``[]`` when the folders are not there (another machine's sweep).
    """
    from .trainable import split_dirs

    state = read_state(exp_dir)
    datasets = {n: d.get("path") for n, d in (state.get("datasets") or {}).items()
                if isinstance(d, dict) and d.get("path")}
    if config is None:
        params = (state.get("space") or {}).get("parameters") or {}
        config = {}
        for key in ("data", "test_data"):
            value = params.get(key)
            if isinstance(value, dict):  # grid_search / choice: the first value
                value = next(iter(value.values()), [None])
                value = value[0] if isinstance(value, list) and value else None
            config[key] = value
    if not config.get("data"):
        return []
    try:
        _, test_dir = split_dirs(config, datasets)
    except (ValueError, KeyError):
        return []
    return sorted(p for p in glob.glob(os.path.join(test_dir, "*", "*")) if os.path.isfile(p))


@dataclass
class Board:
    """What the Leaderboard page shows of one sweep."""

    board: pd.DataFrame           # leaderboard rows, best first
    results: pd.DataFrame         # one row per trial and epoch
    state: dict                   # sweep.json
    plots: list[str]              # leaderboard.png / curves.png paths
    live: bool                    # rebuilt from the trial folders (the sweep is running)
    note: str = ""                # why the board is empty, if it is
    built: float = field(default_factory=time.time)   # when it was read (epoch seconds)


def load_board(exp_dir: str, plots_cache: str | None = None) -> Board:
    """The leaderboard of a sweep folder.

    A finished (or interrupted) sweep: its ``leaderboard.csv``, ``results.csv`` and
    ``plots/``. A running one, or one without ``leaderboard.csv`` yet: rebuilt in memory
    from the trial folders with :func:`tune_food.outputs.build_outputs` (what the sweep
    and ``python -m tune_food.report`` write), its plots drawn by
    :func:`tune_food.report.make_plots` under ``plots_cache``
    (the sweep folder is never written to).
    """
    state = read_state(exp_dir)
    csv = os.path.join(exp_dir, "leaderboard.csv")
    if state.get("status") != "running" and os.path.isfile(csv):
        board = pd.read_csv(csv)
        res_csv = os.path.join(exp_dir, "results.csv")
        results = pd.read_csv(res_csv) if os.path.isfile(res_csv) else pd.DataFrame()
        plots = [p for p in (os.path.join(exp_dir, "plots", n)
                             for n in ("leaderboard.png", "curves.png")) if os.path.isfile(p)]
        return Board(board, results, state, plots, live=False)
    from .outputs import build_outputs, data_root
    from .report import make_plots

    try:
        built = build_outputs(exp_dir, state)
    except SweepError as exc:
        return Board(pd.DataFrame(), pd.DataFrame(), state, [], live=True, note=str(exc))
    board, frame = built.board, built.results
    plots = []
    if plots_cache and not board.empty:
        out = os.path.join(plots_cache, os.path.basename(os.path.abspath(exp_dir)))
        plots = make_plots(out, board, frame, built.best_predictions, data_root(state))
    return Board(board, frame, state, plots, live=True)


def checkpointed(board: pd.DataFrame, exp_dir: str) -> pd.DataFrame:
    """The rows of ``board`` whose checkpoint folder exists, best first, with the
    checkpoint as an absolute path in ``checkpoint``."""
    if board.empty or "checkpoint_path" not in board:
        return board.iloc[0:0].assign(checkpoint=[])
    ckpt = board["checkpoint_path"].map(lambda p: _abs_in(exp_dir, p))
    rows = board.assign(checkpoint=ckpt)
    keep = rows["checkpoint"].map(lambda p: bool(p) and os.path.isdir(p))
    return rows[keep].sort_values("rank")


def display_board(board: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard's columns a person reads: rank, trial, status, the
    hyperparameters that differ between trials (and model, data, epochs), the ranking
    metric, test accuracy with its 95 % interval, and ``p_vs_best``,
    ``tied_with_best``, ``epochs_done`` / ``epochs_planned`` when the sweep has them."""
    from .spaces import PARAMS

    if board.empty:
        return pd.DataFrame({"rank": [], "trial": [], "status": []})
    out = pd.DataFrame({"rank": board["rank"], "trial": board.get("trial_name"),
                        "status": board.get("status")})
    for key in PARAMS:
        if key in board and (key in ("model", "data", "epochs") or
                             board[key].astype(str).nunique() > 1):
            out[key] = board[key]
    ranked = str(board["ranked_by"].iloc[0]).split()[0] if "ranked_by" in board else "test_acc"
    if ranked != "test_acc" and ranked in board:
        out[ranked] = board[ranked].round(4)
    if "test_acc" in board:
        out["test_acc"] = board["test_acc"].round(4)
        if {"test_acc_ci_low", "test_acc_ci_high"} <= set(board):
            out["test_acc 95% CI"] = [
                "" if pd.isna(lo) else f"{lo:.3f} – {hi:.3f}"
                for lo, hi in zip(board["test_acc_ci_low"], board["test_acc_ci_high"])]
    for col in ("p_vs_best", "tied_with_best", "epochs_done", "epochs_planned"):
        if col in board:
            out[col] = board[col].round(4) if col == "p_vs_best" else board[col]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- classifying

class Classifiers:
    """Trained classifiers, loaded once per checkpoint folder and kept (thread-safe)."""

    def __init__(self):
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, checkpoint: str):
        """``(model, classes)`` of ``checkpoint`` (see :func:`tune_food.predict.load_classifier`)."""
        from .predict import load_classifier

        with self._lock:
            if checkpoint not in self._models:
                self._models[checkpoint] = load_classifier(checkpoint)
            return self._models[checkpoint]


def classify_images(model, classes: list[str], paths: Sequence[str]) -> tuple[list[dict], float]:
    """Every class's probability for each image, with :func:`tune_food.predict.predict`.

    Images that cannot be read do not stop the others: their row has ``"error"`` (the
    reason) instead of ``"predictions"``.

    Returns:
        ``(rows, seconds)``: one dict per path in order (``{"image", "predictions"}`` as
        ``predict`` returns them, or ``{"image", "error"}``) and the wall time of the
        predictions in seconds.
    """
    from .predict import predict

    t0 = time.perf_counter()
    try:
        rows = predict(model, classes, list(paths), top_k=len(classes))
    except (DataError, OSError, ValueError, RuntimeError):  # find the bad ones; the rest answer
        rows = []
        for p in paths:
            try:
                rows.extend(predict(model, classes, [p], top_k=len(classes)))
            except DataError as exc:
                reason = str(exc).split(f"{p} (", 1)[-1]
                reason = reason[:-1] if reason.endswith(")") else reason
                rows.append({"image": p, "error": reason})
            except (OSError, ValueError, RuntimeError) as exc:  # decoded, but not classifiable
                rows.append({"image": p, "error": f"{type(exc).__name__}: {exc}"})
    return rows, time.perf_counter() - t0


# --------------------------------------------------------------------------- sweeps

@dataclass
class Launcher:
    """Starts, stops and resumes ``python -m tune_food.sweep`` processes.

    Each runs in its own session (it outlives the browser tab and the page's requests),
    with its output in ``<results>/.app/<name>.log`` and its process id in
    ``<results>/.app/<name>.json``.
    """

    results_dir: str
    spaces_dir: str
    data_dir: str | None = None
    cache_dir: str | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _app_file(self, name: str, ext: str) -> str:
        return os.path.join(self.results_dir, APP_DIR, f"{name}.{ext}")

    def spaces(self) -> list[str]:
        """The space files that may be started (``*.yaml`` in the spaces folder)."""
        return sorted(os.path.basename(p) for p in glob.glob(os.path.join(self.spaces_dir,
                                                                          "*.yaml")))

    def _spawn(self, name: str, args: list[str]) -> None:
        os.makedirs(os.path.join(self.results_dir, APP_DIR), exist_ok=True)
        cmd = [sys.executable, "-m", "tune_food.sweep", *args,
               "--results-dir", os.path.abspath(self.results_dir), "--name", name]
        if self.data_dir:
            cmd += ["--data-dir", self.data_dir]
        if self.cache_dir:
            cmd += ["--cache-dir", self.cache_dir]
        log = open(self._app_file(name, "log"), "a")
        log.write(f"$ python {' '.join(cmd[1:])}\n")
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        self.procs[name] = proc
        with open(self._app_file(name, "json"), "w") as fh:
            json.dump({"pid": proc.pid, "cmd": cmd, "started": time.time()}, fh)

    def start(self, space: str, kind: str, name: str, num_samples: int | None,
              cpus_per_trial: float, gpus_per_trial: float) -> str:
        """Start a sweep; returns its name.

        Args:
            space: a file name from :meth:`spaces`.
            kind: ``"grid"``, ``"optuna"`` or ``"random"``.
            name: the sweep's folder name (letters, digits, ``_ . -``); empty: one is made
                from the space and the time.

        Raises:
            SweepError: an unknown space or kind, a bad or taken name, bad numbers.
        """
        if space not in self.spaces():
            raise SweepError(f"unknown space file {space!r}; choose one of "
                             f"{', '.join(self.spaces()) or '(none in ' + self.spaces_dir + ')'}")
        if kind not in ("grid", "optuna", "random"):
            raise SweepError(f"unknown kind {kind!r}; choose grid, optuna or random")
        name = (name or "").strip() or \
            f"{os.path.splitext(space)[0]}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
        if not NAME_RE.match(name):
            raise SweepError(f"sweep name {name!r} is not allowed: use letters, digits, "
                             "'_', '.', '-' (at most 80, starting with a letter or digit)")
        if os.path.exists(os.path.join(self.results_dir, name)) or self.alive(name):
            raise SweepError(f"a sweep named {name!r} exists already; choose another name")
        if num_samples is not None and (num_samples != int(num_samples) or num_samples < 1):
            raise SweepError(f"num-samples must be a whole number >= 1, got {num_samples}")
        if not cpus_per_trial or cpus_per_trial <= 0 or gpus_per_trial is None \
                or gpus_per_trial < 0:
            raise SweepError("cpus per trial must be > 0 and gpus per trial >= 0")
        args = ["--grid"] if kind == "grid" else ["--search", kind]
        args += ["--space", os.path.join(os.path.abspath(self.spaces_dir), space),
                 "--cpus-per-trial", f"{cpus_per_trial:g}",
                 "--gpus-per-trial", f"{gpus_per_trial:g}"]
        if num_samples:
            args += ["--num-samples", str(int(num_samples))]
        self._spawn(name, args)
        return name

    def pid(self, name: str) -> int | None:
        """The pid of ``name``'s sweep process when it is alive (also one started by an
        earlier run of the page: checked against its command line)."""
        proc = self.procs.get(name)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        try:
            with open(self._app_file(name, "json")) as fh:
                pid = int(json.load(fh)["pid"])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().split(b"\0")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return pid if b"tune_food.sweep" in cmdline and name.encode() in cmdline else None

    def alive(self, name: str) -> bool:
        return self.pid(name) is not None

    def stop(self, name: str) -> None:
        """SIGINT to the sweep's driver (as Ctrl-C): it ends with status "interrupted".

        Raises:
            SweepError: no running sweep of that name was started here.
        """
        pid = self.pid(name)
        if pid is None:
            raise SweepError(f"sweep {name!r} is not running from this page; nothing to stop")
        os.kill(pid, signal.SIGINT)

    def resume(self, name: str, cpus_per_trial: float, gpus_per_trial: float) -> None:
        """``python -m tune_food.sweep --resume --name <name>`` with these resources.

        Raises:
            SweepError: the sweep is unknown, still running, or finished without errors.
        """
        if name not in list_sweeps(self.results_dir):
            raise SweepError(f"no sweep named {name!r} in {self.results_dir}")
        if self.alive(name):
            raise SweepError(f"sweep {name!r} is running; stop it first")
        if read_state(os.path.join(self.results_dir, name)).get("status") == "finished":
            raise SweepError(f"sweep {name!r} finished; there is nothing to resume")
        if not cpus_per_trial or cpus_per_trial <= 0 or gpus_per_trial is None \
                or gpus_per_trial < 0:
            raise SweepError("cpus per trial must be > 0 and gpus per trial >= 0")
        self._spawn(name, ["--resume", "--cpus-per-trial", f"{cpus_per_trial:g}",
                           "--gpus-per-trial", f"{gpus_per_trial:g}"])

    def status(self, name: str) -> str:
        """``running``, ``finished``, ``interrupted``, ``finished with errors`` (from
        ``sweep.json``), ``starting`` (process up, no ``sweep.json`` yet), ``failed to
        start`` or ``stopped`` (the driver is gone while ``sweep.json`` says running)."""
        state = read_state(os.path.join(self.results_dir, name))
        alive = self.alive(name)
        if not state:
            if alive:
                return "starting"
            return "failed to start" if os.path.isfile(self._app_file(name, "log")) else "unknown"
        status = state.get("status", "unknown")
        if status == "running" and not alive and (name in self.procs or os.path.isfile(
                self._app_file(name, "json"))):
            return "stopped"
        if status != "running" and alive:
            return "resuming"
        return status

    def log(self, name: str) -> str:
        """The last :data:`LOG_TAIL_CHARS` characters of the output of ``name``'s sweep."""
        path = self._app_file(name, "log")
        if not os.path.isfile(path):
            return ""
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - LOG_TAIL_CHARS))
            return fh.read().decode("utf-8", "replace")

    def names(self) -> list[str]:
        """Sweeps under the results folder and those started here that have none yet."""
        names = list_sweeps(self.results_dir)
        logs = glob.glob(os.path.join(self.results_dir, APP_DIR, "*.log"))
        extra = sorted((os.path.getmtime(p), os.path.basename(p)[:-4]) for p in logs)
        return [n for _, n in reversed(extra) if n not in names] + names

    def table(self) -> pd.DataFrame:
        """One row per sweep: name, status, started, trials, best trial, its metric."""
        rows = []
        for name in self.names():
            exp = os.path.join(self.results_dir, name)
            state = read_state(exp)
            row = {"sweep": name, "status": self.status(name),
                   "started": state.get("started", ""), "trials": state.get("trials", ""),
                   "best trial": "", "best": ""}
            csv = os.path.join(exp, "leaderboard.csv")
            if os.path.isfile(csv):
                try:
                    board = pd.read_csv(csv)
                except (OSError, ValueError, pd.errors.EmptyDataError):
                    board = pd.DataFrame()
                metric = state.get("metric", "test_acc")
                if not board.empty and metric in board and board[metric].notna().any():
                    best = board.sort_values("rank").iloc[0]
                    row.update({"trials": row["trials"] or len(board),
                                "best trial": best.get("trial_name", ""),
                                "best": f"{metric} {best[metric]:.4f}"})
            rows.append(row)
        return pd.DataFrame(rows, columns=["sweep", "status", "started", "trials",
                                           "best trial", "best"])


# --------------------------------------------------------------------------- the page

@dataclass
class AppConfig:
    """What :func:`build_app` serves."""

    results_dir: str
    sweep: str | None = None          # the sweep shown first (a name under results_dir)
    spaces_dir: str | None = None     # default: the repository's search_spaces/
    data_dir: str | None = None       # passed to sweeps started from the page
    cache_dir: str | None = None      # passed to sweeps started from the page


def _theme():
    import gradio as gr

    # system fonts: the default theme would fetch Google Fonts from the internet
    return gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial",
                                   "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo",
                                        "monospace"])


def build_app(config: AppConfig):
    """The Gradio ``Blocks`` of the page, and the folders it must be allowed to serve.

    Returns:
        ``(demo, allowed_paths)``: pass ``allowed_paths`` to ``demo.launch``.
    """
    import gradio as gr

    results_dir = os.path.abspath(config.results_dir)
    launcher = Launcher(results_dir, config.spaces_dir or _default_spaces_dir(),
                        config.data_dir, config.cache_dir)
    classifiers = Classifiers()
    plots_cache = tempfile.mkdtemp(prefix="tune_food_app_plots_")
    predictions_cache: dict[str, pd.DataFrame] = {}
    boards: dict[str, tuple] = {}   # sweep -> (signature, Board)
    lock = threading.Lock()

    def exp_dir(sweep: str | None) -> str:
        if not sweep or sweep not in list_sweeps(results_dir):
            raise SweepError(f"no sweep named {sweep!r} under {results_dir}; pick one of the "
                             "list (or start one on the Sweeps page)")
        return os.path.join(results_dir, sweep)

    def signature(exp: str) -> tuple:
        """Changes whenever a trial reports or the sweep's files change."""
        files = [os.path.join(exp, f) for f in (STATE_FILE, "leaderboard.csv")]
        files += glob.glob(os.path.join(exp, "*", "result.json"))
        sig = []
        for f in files:
            try:
                sig.append((f, os.path.getmtime(f), os.path.getsize(f)))
            except OSError:  # not written yet, or replaced just now
                continue
        return tuple(sorted(sig))

    def board_of(sweep: str) -> tuple[str, Board]:
        exp = exp_dir(sweep)
        sig = signature(exp)
        with lock:
            cached = boards.get(sweep)
            if cached is None or cached[0] != sig:
                cached = boards[sweep] = (sig, load_board(exp))  # no plots: classify needs none
        return exp, cached[1]

    def plots_of(sweep: str, b: Board) -> list[str]:
        """The board's plots; a live board's drawn once (by report.make_plots) on demand."""
        if b.live and not b.plots and not b.board.empty:
            from .report import make_plots

            with lock:
                if not b.plots:
                    b.plots = make_plots(os.path.join(plots_cache, sweep), b.board, b.results)
        return b.plots

    # ---- Classify
    def trial_choices(sweep: str | None) -> tuple[list, str | None, str]:
        """Dropdown choices (label, trial_id), the default (rank 1) and a note."""
        if not sweep:
            return [], None, "No sweep yet under the results folder: start one on the Sweeps page."
        try:
            exp, b = board_of(sweep)
        except SweepError as exc:
            return [], None, str(exc)
        rows = checkpointed(b.board, exp)
        if rows.empty:
            return [], None, (f"Sweep **{sweep}** has no checkpoint yet "
                              f"({b.state.get('status', 'unknown status')}): its trials save one "
                              "after their first epoch. Come back in a moment.")
        metric = str(rows["ranked_by"].iloc[0]).split()[0] if "ranked_by" in rows else "test_acc"
        choices = [(f"#{r['rank']} {r['trial_name']} ({metric} {r[metric]:.3f})"
                    if metric in r and pd.notna(r[metric]) else f"#{r['rank']} {r['trial_name']}",
                    str(r["trial_id"])) for _, r in rows.iterrows()]
        return choices, choices[0][1], ""

    def checkpoint_of(sweep: str, trial: str | None) -> tuple[str, pd.Series]:
        exp, b = board_of(sweep)
        rows = checkpointed(b.board, exp)
        if rows.empty:
            raise SweepError(f"sweep {sweep} has no checkpoint yet: its trials save one after "
                             "their first epoch")
        if trial:
            rows = rows[rows["trial_id"].astype(str) == str(trial)]
            if rows.empty:
                raise SweepError(f"trial {trial!r} of sweep {sweep} has no checkpoint; pick "
                                 "one from the list")
        row = rows.iloc[0]
        return row["checkpoint"], row

    def _paths(files) -> list[str]:
        out = []
        for f in files or []:
            p = f if isinstance(f, str) else getattr(f, "name", None) or (
                f.get("path") if isinstance(f, dict) else None)
            if p:
                out.append(p)
        return out

    def classify_batch(files_b: list, trial_b: list, sweep_b: list):
        """Gradio batch function: lists in (one entry per request), lists out."""
        groups: dict[tuple, list[int]] = {}
        outs: list[Any] = [None] * len(files_b)
        for i, (files, trial, sweep) in enumerate(zip(files_b, trial_b, sweep_b)):
            paths = _paths(files)
            if not paths:
                outs[i] = _classify_message("Drop one or more photos (JPEG, PNG, WebP...) "
                                            "or pick an example.")
                continue
            if len(paths) > MAX_IMAGES:
                outs[i] = _classify_message(f"{len(paths)} files at once; at most {MAX_IMAGES} "
                                            "per request: send them in parts.")
                continue
            try:
                ckpt, row = checkpoint_of(sweep, trial)
            except TuneFoodError as exc:
                outs[i] = _classify_message(str(exc))
                continue
            groups.setdefault((ckpt, sweep), []).append(i)
        for (ckpt, sweep), idx in groups.items():
            try:
                model, classes = classifiers.get(ckpt)
            except TuneFoodError as exc:
                for i in idx:
                    outs[i] = _classify_message(str(exc))
                continue
            all_paths = [p for i in idx for p in _paths(files_b[i])]
            rows, seconds = classify_images(model, classes, all_paths)
            ms = 1000 * seconds / max(1, len(all_paths))
            _, trow = checkpoint_of(sweep, str(trial_b[idx[0]]) if trial_b[idx[0]] else None)
            at = 0
            for i in idx:
                n = len(_paths(files_b[i]))
                outs[i] = _classify_result(rows[at:at + n], ms, sweep, trow, ckpt, results_dir)
                at += n
        return tuple(list(col) for col in zip(*outs))

    # ---- Leaderboard
    def board_view(sweep: str | None):
        if not sweep:
            return ("No sweep yet.", pd.DataFrame(), None, None, gr.update(choices=[], value=None))
        try:
            exp, b = board_of(sweep)
        except SweepError as exc:
            return (str(exc), pd.DataFrame(), None, None, gr.update(choices=[], value=None))
        status = b.state.get("status", "unknown")
        head = f"**{sweep}**: {status}, {len(b.board)} trial(s)"
        if not b.board.empty and "ranked_by" in b.board:
            head += f", ranked by {b.board['ranked_by'].iloc[0]}"
        if b.live:
            head += (f"; rebuilt from the trial folders at "
                     f"{_dt.datetime.fromtimestamp(b.built):%H:%M:%S}")
            if status == "running":
                head += f" (refreshes every {BOARD_REFRESH_S:g} s)"
        if b.note:
            head += f"\n\n{b.note}"
        plots = plots_of(sweep, b)
        lb = next((p for p in plots if p.endswith("leaderboard.png")), None)
        cv = next((p for p in plots if p.endswith("curves.png")), None)
        trials = [(f"#{r['rank']} {r['trial_name']}", str(r["trial_id"]))
                  for _, r in b.board.iterrows()] if not b.board.empty else []
        return (head, display_board(b.board), lb, cv,
                gr.update(choices=trials, value=trials[0][1] if trials else None))

    def refresh_board(sweep: str | None):
        """Timer: rebuild only while the sweep runs."""
        if not sweep or sweep not in list_sweeps(results_dir) or \
                read_state(os.path.join(results_dir, sweep)).get("status") != "running":
            if sweep and sweep in boards and boards[sweep][1].live and \
                    read_state(os.path.join(results_dir, sweep)).get("status") != "running":
                return board_view(sweep)[:4] + (gr.skip(),)  # it just ended: the final board
            return (gr.skip(),) * 5
        head, table, lb, cv, _ = board_view(sweep)
        return head, table, lb, cv, gr.skip()

    def trial_view(sweep: str | None, trial: str | None):
        empty = ({}, None, [], None, "")
        if not sweep or not trial:
            return empty
        try:
            exp, b = board_of(sweep)
        except SweepError as exc:
            return ({}, None, [], None, str(exc))
        rows = b.board[b.board["trial_id"].astype(str) == str(trial)] if not b.board.empty \
            else b.board
        if rows.empty:
            return ({}, None, [], None, f"no trial {trial!r} in {sweep}")
        row = rows.iloc[0]
        from .spaces import PARAMS

        params = {k: _plain(row[k]) for k in PARAMS if k in row}
        logdir = _abs_in(exp, row.get("logdir"))
        curves = _curves_figure(logdir, str(row.get("trial_name")))
        ckpt = _abs_in(exp, row.get("checkpoint_path"))
        if not ckpt or not os.path.isdir(ckpt):
            return params, curves, [], None, "This trial has no checkpoint (yet): no predictions."
        try:
            preds = trial_predictions(exp, row, ckpt)
        except TuneFoodError as exc:
            return params, curves, [], None, str(exc)
        if preds is None or preds.empty:
            return params, curves, [], None, ("The test images of this sweep are not on this "
                                              "machine; no predictions to show.")
        wrong = preds[preds["label"] != preds["predicted"]]
        gallery = [(_thumb(p), f"true {t} → {pr} ({prob:.2f})")
                   for p, t, pr, prob in zip(wrong["image"], wrong["label"], wrong["predicted"],
                                             wrong["probability"]) if os.path.isfile(p)]
        note = (f"{len(wrong)} of {len(preds)} test images wrong "
                f"(accuracy {1 - len(wrong) / len(preds):.4f}), from {preds.attrs.get('source')}")
        return params, curves, gallery, _confusion_figure(preds), note

    def trial_predictions(exp: str, row: pd.Series, ckpt: str) -> pd.DataFrame | None:
        """image, label, predicted, probability (of the prediction) per test image: the
        trial's ``predictions.csv`` when the sweep wrote one, else computed with
        ``predict`` from its checkpoint (cached)."""
        logdir = _abs_in(exp, row.get("logdir"))
        for folder in (ckpt, logdir):
            csv = os.path.join(folder, "predictions.csv") if folder else None
            if csv and os.path.isfile(csv):
                return _read_predictions(csv, exp)
        with lock:
            if ckpt in predictions_cache:
                return predictions_cache[ckpt]
        config = {k: row.get(k) for k in ("data", "test_data")}
        config = {k: (None if pd.isna(v) else v) for k, v in config.items()}
        images = test_images(exp, config)
        if not images:
            return None
        model, classes = classifiers.get(ckpt)
        rows, _ = classify_images(model, classes, images)
        rows = [r for r in rows if "predictions" in r]
        preds = pd.DataFrame({
            "image": [r["image"] for r in rows],
            "label": [os.path.basename(os.path.dirname(r["image"])) for r in rows],
            "predicted": [r["predictions"][0]["class"] for r in rows],
            "probability": [r["predictions"][0]["probability"] for r in rows]})
        preds.attrs["source"] = "its checkpoint (predict over the test split)"
        with lock:
            predictions_cache[ckpt] = preds
        return preds

    # ---- Sweeps
    def sweeps_view(watch: str | None):
        names = launcher.names()
        value = watch if watch in names else (names[0] if names else None)
        return (launcher.table(), gr.update(choices=names, value=value),
                launcher.log(value) if value else "")

    def sweeps_tick(watch: str | None):
        names = launcher.names()
        return (launcher.table(), gr.update(choices=names) if watch in names or not watch
                else gr.update(choices=names, value=names[0] if names else None),
                launcher.log(watch) if watch else gr.skip())

    def start(space, kind, name, num_samples, cpus, gpus):
        try:
            name = launcher.start(space, kind, name, num_samples or None, cpus, gpus)
        except TuneFoodError as exc:
            return f"Not started: {exc}", gr.skip(), gr.skip(), gr.skip()
        table, dd, _ = sweeps_view(name)
        return (f"Started sweep **{name}** (its output follows below).", table,
                gr.update(choices=dd["choices"], value=name), launcher.log(name))

    def stop(watch):
        try:
            launcher.stop(watch)
        except TuneFoodError as exc:
            return f"Not stopped: {exc}"
        return f"Sent SIGINT to sweep **{watch}**: it saves its state and ends as interrupted."

    def resume(watch, cpus, gpus):
        try:
            launcher.resume(watch, cpus, gpus)
        except TuneFoodError as exc:
            return f"Not resumed: {exc}"
        return f"Resuming sweep **{watch}** (`--resume --name {watch}`)."

    def sweep_choices():
        names = list_sweeps(results_dir)
        return gr.update(choices=names)

    # ---- layout
    sweeps = list_sweeps(results_dir)
    first = config.sweep if config.sweep in sweeps else (sweeps[0] if sweeps else None)
    examples = []
    if first:
        by_class: dict[str, list[str]] = {}
        for p in test_images(os.path.join(results_dir, first)):
            by_class.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
        examples = [p for ps in by_class.values() for p in ps[:EXAMPLES_PER_CLASS]]
    allowed = sorted({results_dir} | {os.path.dirname(p) for p in examples}
                     | {os.path.dirname(os.path.realpath(p)) for p in examples})
    choices0, trial0, note0 = trial_choices(first)

    with gr.Blocks(title="tune_food") as demo:
        with gr.Row():
            gr.Markdown("## tune_food: try the models of a sweep, read its leaderboard, run "
                        "sweeps")
            sweep_dd = gr.Dropdown(sweeps, value=first, label="sweep", allow_custom_value=True,
                                   elem_id="sweep", scale=0, min_width=320)
        with gr.Tab("Classify", id="classify"):
            with gr.Row():
                with gr.Column():
                    trial_dd = gr.Dropdown(choices0, value=trial0, label="trial (rank 1 by "
                                           "default)", allow_custom_value=True,
                                           elem_id="trial")
                    files = gr.File(file_count="multiple", file_types=["image"], type="filepath",
                                    label="photos", elem_id="photos")
                    run_btn = gr.Button("Classify", variant="primary", elem_id="classify-btn")
                    if examples:
                        gr.Examples([[[p]] for p in examples], inputs=[files],
                                    label="test images of this sweep")
                with gr.Column():
                    note = gr.Markdown(note0, elem_id="classify-note")
                    label = gr.Label(num_top_classes=3, label="top classes (first image)",
                                     elem_id="top")
                    table = gr.Dataframe(label="every image", interactive=False,
                                         elem_id="per-image")
                    with gr.Accordion("JSON (as python -m tune_food.predict --json)",
                                      open=False):
                        details = gr.JSON(label="details")
        with gr.Tab("Leaderboard", id="leaderboard"):
            board_head = gr.Markdown(elem_id="board-head")
            board_table = gr.Dataframe(interactive=False, wrap=True, elem_id="board",
                                       label="leaderboard (click a header to sort)")
            with gr.Row():
                lb_img = gr.Image(label="leaderboard.png", type="filepath", interactive=False)
                cv_img = gr.Image(label="curves.png", type="filepath", interactive=False)
            board_trial = gr.Dropdown(label="trial", allow_custom_value=True,
                                      elem_id="board-trial")
            trial_note = gr.Markdown()
            with gr.Row():
                params = gr.JSON(label="hyperparameters")
                curves = gr.Plot(label="curves (progress.csv)")
            with gr.Row():
                wrong = gr.Gallery(label="test images it gets wrong (true → predicted, p)",
                                   columns=4, height=360)
                confusion = gr.Plot(label="confusion matrix (test split)")
        with gr.Tab("Sweeps", id="sweeps"):
            sweeps_table = gr.Dataframe(launcher.table(), interactive=False, elem_id="sweeps",
                                        label="sweeps under " + results_dir)
            with gr.Row():
                space_dd = gr.Dropdown(launcher.spaces(), value=(launcher.spaces() or [None])[0],
                                       label="space file (search_spaces/)", elem_id="space")
                kind = gr.Radio(["grid", "optuna", "random"], value="grid", label="grid or search",
                                elem_id="kind")
                name_tb = gr.Textbox(label="name (empty: space-date-time)", elem_id="name")
            with gr.Row():
                num_samples = gr.Number(1, label="num-samples (search: trials; grid: "
                                        "repeats)", precision=0, minimum=1, elem_id="num-samples")
                cpus = gr.Number(1, label="cpus per trial", minimum=0.1, elem_id="cpus")
                gpus = gr.Number(0, label="gpus per trial", minimum=0, elem_id="gpus")
                start_btn = gr.Button("Start sweep", variant="primary", elem_id="start")
            sweep_msg = gr.Markdown(elem_id="sweep-msg")
            with gr.Row():
                watch = gr.Dropdown(launcher.names(), value=(launcher.names() or [None])[0],
                                    label="sweep to watch", allow_custom_value=True,
                                    elem_id="watch")
                stop_btn = gr.Button("Stop (SIGINT)", elem_id="stop")
                resume_btn = gr.Button("Resume", elem_id="resume")
            log = gr.Textbox(label="output", lines=16, max_lines=16, autoscroll=True,
                             elem_id="log")

        # events
        def on_sweep(sweep):
            choices, value, text = trial_choices(sweep)
            return gr.update(choices=choices, value=value), text

        sweep_dd.change(on_sweep, sweep_dd, [trial_dd, note]).then(
            board_view, sweep_dd, [board_head, board_table, lb_img, cv_img, board_trial])
        run_btn.click(classify_batch, [files, trial_dd, sweep_dd], [label, table, note, details],
                      api_name="classify", batch=True, max_batch_size=16)
        demo.load(board_view, sweep_dd, [board_head, board_table, lb_img, cv_img, board_trial])
        board_trial.change(trial_view, [sweep_dd, board_trial],
                           [params, curves, wrong, confusion, trial_note])
        board_timer = gr.Timer(BOARD_REFRESH_S)
        board_timer.tick(refresh_board, sweep_dd,
                         [board_head, board_table, lb_img, cv_img, board_trial],
                         show_progress="hidden", api_visibility="private")
        kind.change(lambda k: 1 if k == "grid" else 20, kind, num_samples,
                    api_visibility="private")
        start_btn.click(start, [space_dd, kind, name_tb, num_samples, cpus, gpus],
                        [sweep_msg, sweeps_table, watch, log]).then(sweep_choices, None, sweep_dd)
        stop_btn.click(stop, watch, sweep_msg)
        resume_btn.click(resume, [watch, cpus, gpus], sweep_msg)
        watch.change(lambda w: launcher.log(w) if w else "", watch, log, api_name="log")
        sweeps_timer = gr.Timer(SWEEPS_REFRESH_S)
        sweeps_timer.tick(sweeps_tick, watch, [sweeps_table, watch, log],
                          show_progress="hidden", api_visibility="private")
        # a sweep that appears (started here) becomes selectable on the other pages
        sweeps_timer.tick(sweep_choices, None, sweep_dd, show_progress="hidden",
                          api_visibility="private")
        # a running sweep's first checkpoints become classifiable without a reload
        board_timer.tick(_refresh_trials(trial_choices, read_state, results_dir), [sweep_dd,
                         trial_dd], [trial_dd, note], show_progress="hidden",
                         api_visibility="private")
    demo.queue(default_concurrency_limit=1)
    demo.tune_food = {"launcher": launcher, "classifiers": classifiers, "first": first,
                      "trial0": trial0}
    return demo, allowed


def _refresh_trials(trial_choices, read_state, results_dir):
    import gradio as gr

    def tick(sweep, trial):
        if not sweep or read_state(os.path.join(results_dir, sweep)).get("status") != "running":
            return gr.skip(), gr.skip()
        choices, value, text = trial_choices(sweep)
        values = [v for _, v in choices]
        return gr.update(choices=choices, value=trial if trial in values else value), text
    return tick


def _default_spaces_dir() -> str:
    from .spaces import default_space_dir

    return default_space_dir()


def _plain(v):
    if isinstance(v, float) and pd.isna(v):
        return None
    return v.item() if hasattr(v, "item") else v


def _classify_message(text: str):
    return None, pd.DataFrame({"image": [], "result": []}), text, {}


def _classify_result(rows: list[dict], ms: float, sweep: str, trow: pd.Series, ckpt: str,
                     results_dir: str):
    ok = [r for r in rows if "predictions" in r]
    table = pd.DataFrame({
        "image": [os.path.basename(r["image"]) for r in rows],
        "top class": [r["predictions"][0]["class"] if "predictions" in r else "" for r in rows],
        "probability": [round(r["predictions"][0]["probability"], 4) if "predictions" in r
                        else None for r in rows],
        "all classes": [", ".join(f"{p['class']} {p['probability']:.3f}"
                                  for p in r["predictions"]) if "predictions" in r
                        else "cannot be read: " + r["error"] for r in rows]})
    first = ok[0] if ok else None
    label = {p["class"]: p["probability"] for p in first["predictions"]} if first else None
    rel = os.path.relpath(ckpt, results_dir)
    text = (f"Answered by **trial #{trow['rank']} {trow['trial_name']}** of sweep {sweep}, "
            f"checkpoint `{rel}`: {len(ok)} image(s) in **{ms:.1f} ms per image**.")
    bad = [r for r in rows if "error" in r]
    if bad:
        text += (f"\n\n{len(bad)} file(s) could not be read as images: "
                 + "; ".join(f"{os.path.basename(r['image'])} ({r['error']})" for r in bad))
    details = {"checkpoint": ckpt, "trial_id": str(trow["trial_id"]),
               "trial_name": str(trow["trial_name"]), "ms_per_image": ms,
               "results": [dict(r, image=os.path.basename(r["image"])) for r in rows]}
    return label, table, text, details


def _thumb(path: str, size: int = 256):
    from .images import rgb_loader

    img = rgb_loader(path)
    img.thumbnail((size, size))
    return img


def _read_predictions(csv: str, exp: str) -> pd.DataFrame:
    """A ``predictions.csv`` (columns ``image, label, predicted, prob_<class>``) as
    image (absolute), label, predicted, probability of the prediction."""
    from .outputs import data_root

    df = pd.read_csv(csv)
    missing = {"image", "label", "predicted"} - set(df)
    if missing:
        raise SweepError(f"{csv} lacks the column(s) {', '.join(sorted(missing))}")
    if "split" in df:   # the sweep's own file: test and validation rows
        df = df[df["split"] == "test"].reset_index(drop=True)
    base, root = os.path.dirname(csv), data_root(read_state(exp))   # images: data-root relative
    df["image"] = [p if os.path.isabs(p) else next(
        (c for c in [os.path.join(d, p) for d in (root, base, exp) if d] if os.path.exists(c)), p)
        for p in df["image"].astype(str)]
    probs = [f"prob_{c}" for c in df["predicted"]]
    df["probability"] = [row.get(c, float("nan")) for (_, row), c in zip(df.iterrows(), probs)]
    df.attrs["source"] = os.path.basename(os.path.dirname(csv)) + "/predictions.csv"
    return df[["image", "label", "predicted", "probability"]]


def _curves_figure(logdir: str | None, title: str):
    if not logdir or not os.path.isfile(os.path.join(logdir, "progress.csv")):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .leaderboard import dedupe_history

    try:
        df = pd.read_csv(os.path.join(logdir, "progress.csv"))
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if "epoch" not in df:
        return None
    df = dedupe_history(df)   # a resumed trial's replayed epochs once
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for split in ("train", "val", "test"):
        if f"{split}_acc" in df:
            ax1.plot(df["epoch"], df[f"{split}_acc"], marker="o", ms=3, label=split)
        if f"{split}_loss" in df:
            ax2.plot(df["epoch"], df[f"{split}_loss"], marker="o", ms=3, label=split)
    ax1.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.set(xlabel="epoch", ylabel="loss (per image)", title="loss")
    from matplotlib.ticker import MaxNLocator

    for a in (ax1, ax2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _confusion_figure(preds: pd.DataFrame):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = sorted(set(preds["label"]) | set(preds["predicted"]))
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ConfusionMatrixDisplay.from_predictions(preds["label"], preds["predicted"], labels=labels,
                                            ax=ax, colorbar=False)
    ax.set_title("rows: true class, columns: predicted", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


# --------------------------------------------------------------------------- CLI

def _resolve_sweep(sweep: str | None, results_dir: str) -> tuple[str, str | None]:
    """``(results_dir, sweep name or None)`` for the CLI's arguments.

    Raises:
        SweepError: ``sweep`` is not a sweep folder.
    """
    if sweep:
        if not os.path.isdir(sweep):
            what = "is a file, not a folder" if os.path.exists(sweep) else "does not exist"
            raise SweepError(f"sweep folder {sweep} {what}; pass results/<name>")
        if not is_sweep(sweep):
            raise SweepError(f"{sweep} is not a tune_food sweep (no {STATE_FILE}); pass "
                             "results/<sweep-name>")
        path = os.path.abspath(sweep)
        return os.path.dirname(path), os.path.basename(path)
    if os.path.exists(results_dir) and not os.path.isdir(results_dir):
        raise SweepError(f"--results-dir {results_dir} is a file, not a folder")
    names = list_sweeps(results_dir)
    return os.path.abspath(results_dir), (names[0] if names else None)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_auth(auth: str | None, host: str) -> tuple[str, str] | None:
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise SweepError("--auth takes USER:PASSWORD (both non-empty)")
        return user, password
    if not _is_loopback(host):
        raise SweepError(f"listening on {host} makes the page reachable from other machines; "
                         "add --auth USER:PASSWORD, or use --host 127.0.0.1")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve the page until Ctrl-C; 2 on bad arguments."""
    from .cliargs import Parser, path_arg

    parser = Parser(prog=PROG, description="The web page of a sweep: classify photos, read "
                     "the leaderboard, start and stop sweeps.")
    parser.add_argument("sweep", nargs="?", type=path_arg, help="the sweep folder, results/<name> (default: "
                        "the newest under --results-dir)")
    parser.add_argument("--results-dir", default="results", metavar="DIR", type=path_arg,
                        help="the folder of sweeps (default results)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need --auth)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require this login")
    parser.add_argument("--spaces-dir", metavar="DIR", type=path_arg, help="space files offered on the "
                        "Sweeps page (default: the repository's search_spaces/)")
    parser.add_argument("--data-dir", metavar="DIR", type=path_arg, help="data root for sweeps started from "
                        "the page (default $TUNE_FOOD_DATA_DIR, else ./data)")
    parser.add_argument("--cache-dir", metavar="DIR", type=path_arg, help="feature cache for sweeps started "
                        "from the page")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)

    def body() -> int:
        auth = _parse_auth(args.auth, args.host)
        if not 1 <= args.port <= 65535:
            raise SweepError(f"--port must be 1..65535, got {args.port}")
        spaces_dir = args.spaces_dir or _default_spaces_dir()
        if not os.path.isdir(spaces_dir):
            raise SweepError(f"--spaces-dir {spaces_dir} is not a folder")
        results_dir, first = _resolve_sweep(args.sweep, args.results_dir)
        demo, allowed = build_app(AppConfig(results_dir, first, spaces_dir, args.data_dir,
                                            args.cache_dir))
        info = demo.tune_food
        if info["first"] and info["trial0"]:  # load the default classifier before serving
            try:
                ckpt = os.path.join(results_dir, info["first"])
                b = load_board(ckpt)
                rows = checkpointed(b.board, ckpt)
                if not rows.empty:
                    info["classifiers"].get(rows["checkpoint"].iloc[0])
            except TuneFoodError:
                pass  # the page says what is wrong
        try:
            demo.launch(server_name=args.host, server_port=args.port, auth=auth,
                        max_file_size=MAX_FILE_SIZE, allowed_paths=allowed, theme=_theme(),
                        show_error=True, footer_links=["api"], quiet=False, ssr_mode=False)
        except OSError as exc:
            raise SweepError(f"cannot serve on {args.host}:{args.port} ({exc}); choose "
                             "another --port") from None
        return 0

    try:
        return cli_call(PROG, args.debug, body)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    quiet_broken_pipe()
    sys.exit(main())
