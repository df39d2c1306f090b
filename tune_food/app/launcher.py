"""Starting, stopping and resuming ``python -m tune_food.sweep`` processes from the page,
and the table of the sweeps under the results folder (the Sweeps page's data)."""

from __future__ import annotations

import datetime as _dt
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pandas as pd

from tune_food.common.errors import SweepError
from tune_food.sweep.options import SEARCHES
from tune_food.sweepdir.columns import RANK, TRIAL_NAME
from tune_food.sweepdir.layout import LEADERBOARD_FILE
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.state import list_sweeps, peek_state, refused_while_running, running_driver
from tune_food.sweepdir.status import SweepStatus

LOG_TAIL_CHARS = 20_000    # how much of a sweep's output the page shows
APP_DIR = ".app"           # <results>/.app/<name>.log / .json: sweeps started from the page
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
KINDS = ("grid", *SEARCHES)   # what the page starts: a grid, or a --search kind


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
        if kind not in KINDS:
            raise SweepError(f"unknown kind {kind!r}; choose {', '.join(KINDS[:-1])} or "
                             f"{KINDS[-1]}")
        name = (name or "").strip() or \
            f"{os.path.splitext(space)[0]}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
        if not NAME_RE.match(name):
            raise SweepError(f"sweep name {name!r} is not allowed: use letters, digits, "
                             "'_', '.', '-' (at most 80, starting with a letter or digit)")
        if os.path.exists(os.path.join(self.results_dir, name)) or self.alive(name):
            raise SweepError(f"a sweep named {name!r} exists already; choose another name")
        if num_samples is not None and (num_samples != int(num_samples) or num_samples < 1):
            raise SweepError(f"num-samples must be a whole number >= 1, got {num_samples}")
        _check_resources(cpus_per_trial, gpus_per_trial)
        args = ["--grid"] if kind == "grid" else ["--search", kind]
        args += ["--space", os.path.join(os.path.abspath(self.spaces_dir), space),
                 "--cpus-per-trial", f"{cpus_per_trial:g}",
                 "--gpus-per-trial", f"{gpus_per_trial:g}"]
        if num_samples and kind != "grid":   # a grid runs each combination once
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

    def _idle_sweep(self, name: str, while_running: str) -> SweepState | None:
        """The record of sweep ``name`` (None where it cannot be read), which no driver runs.

        Raises:
            SweepError: no such sweep; this page runs it (``while_running`` says what to
                do); another driver runs it (a terminal's, another page's).
        """
        if name not in list_sweeps(self.results_dir):
            raise SweepError(f"no sweep named {name!r} in {self.results_dir}")
        if self.alive(name):
            raise SweepError(f"sweep {name!r} is running; {while_running}")
        driver = running_driver(os.path.join(self.results_dir, name))
        if driver:
            raise SweepError(refused_while_running(name, driver))
        return peek_state(os.path.join(self.results_dir, name))

    def resume(self, name: str, cpus_per_trial: float, gpus_per_trial: float) -> None:
        """``python -m tune_food.sweep --resume --name <name>`` with these resources.

        Raises:
            SweepError: the sweep is unknown, still running, or finished without errors.
        """
        state = self._idle_sweep(name, "stop it first")
        if state is not None and state.status == SweepStatus.FINISHED:
            raise SweepError(f"sweep {name!r} finished; there is nothing to resume")
        _check_resources(cpus_per_trial, gpus_per_trial)
        self._spawn(name, ["--resume", "--cpus-per-trial", f"{cpus_per_trial:g}",
                           "--gpus-per-trial", f"{gpus_per_trial:g}"])

    def confirm(self, name: str, cpus_per_trial: float, gpus_per_trial: float) -> None:
        """``python -m tune_food.sweep --resume --name <name> --confirm`` with these
        resources: the configurations tied with the best (at most 5) trained again with 5
        new seeds each (:mod:`tune_food.sweep.confirm`, which refuses the rest in the
        sweep's log).

        Raises:
            SweepError: the sweep is unknown, running, not finished, or confirmed already.
        """
        state = self._idle_sweep(name, "let it finish first")
        if state is None or state.status not in (SweepStatus.FINISHED,
                                                 SweepStatus.FINISHED_WITH_ERRORS):
            status = state.status if state is not None else "unreadable"
            raise SweepError(f"sweep {name!r} is {status}: only a finished sweep is "
                             "confirmed (resume it first)")
        if state.confirmations:
            raise SweepError(f"sweep {name!r} was confirmed already: its verdict is above")
        _check_resources(cpus_per_trial, gpus_per_trial)
        self._spawn(name, ["--resume", "--confirm", "--cpus-per-trial", f"{cpus_per_trial:g}",
                           "--gpus-per-trial", f"{gpus_per_trial:g}"])

    def status(self, name: str) -> str:
        """``running``, ``finished``, ``interrupted``, ``finished with errors`` (from
        ``sweep.json``), ``starting`` (process up, no ``sweep.json`` yet), ``failed to
        start`` or ``stopped`` (the driver is gone while ``sweep.json`` says running)."""
        state = peek_state(os.path.join(self.results_dir, name))
        alive = self.alive(name)
        if not state:
            if alive:
                return "starting"
            return "failed to start" if os.path.isfile(self._app_file(name, "log")) else "unknown"
        status = state.status
        if status == SweepStatus.RUNNING and not alive and (name in self.procs or os.path.isfile(
                self._app_file(name, "json"))):
            return "stopped"
        if status != SweepStatus.RUNNING and alive:
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
        return pd.DataFrame([self._row(name) for name in self.names()],
                            columns=["sweep", "status", "started", "trials", "best trial",
                                     "best"])

    def _row(self, name: str) -> dict:
        """The :meth:`table` row of sweep ``name``."""
        exp = os.path.join(self.results_dir, name)
        state = peek_state(exp)
        row = {"sweep": name, "status": self.status(name),
               "started": (state and state.started) or "",
               "trials": state.trials if state and state.trials is not None else "",
               "best trial": "", "best": ""}
        csv = os.path.join(exp, LEADERBOARD_FILE)
        if os.path.isfile(csv):
            try:
                board = pd.read_csv(csv)
            except (OSError, ValueError, pd.errors.EmptyDataError):
                board = pd.DataFrame()
            metric = state.metric if state else "test_acc"
            if not board.empty and metric in board and board[metric].notna().any():
                best = board.sort_values(RANK).iloc[0]
                row.update({"trials": row["trials"] or len(board),
                            "best trial": best.get(TRIAL_NAME, ""),
                            "best": f"{metric} {best[metric]:.4f}"})
        return row


def _check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Raise :class:`SweepError` unless cpus > 0 and gpus >= 0 (None: not given)."""
    if not cpus_per_trial or cpus_per_trial <= 0 or gpus_per_trial is None \
            or gpus_per_trial < 0:
        raise SweepError("cpus per trial must be > 0 and gpus per trial >= 0")
