"""The leaderboards the page's requests share: each sweep's board read once and read
again only when the sweep's files change (one trial reports, the sweep ends)."""

from __future__ import annotations

import glob
import os
import tempfile
import threading

from tune_food.app.folders import Board, load_board
from tune_food.common.errors import SweepError
from tune_food.results.importance import write_importance
from tune_food.results.plots import make_plots
from tune_food.sweepdir.layout import LEADERBOARD_FILE, RESULT_FILE, STATE_FILE
from tune_food.sweepdir.state import list_sweeps, peek_state


class SweepBoards:
    """The boards of the sweeps under ``results_dir`` (thread-safe; ``lock`` also
    guards the pages' own caches)."""

    def __init__(self, results_dir: str):
        self.results_dir = results_dir
        # plots drawn for running sweeps: removed with the page
        self._plots_cache = tempfile.TemporaryDirectory(prefix="tune_food_app_plots_")
        self.plots_cache = self._plots_cache.name
        self.lock = threading.Lock()
        self._boards: dict[str, tuple] = {}   # sweep -> (signature, Board)

    def exp_dir(self, sweep: str | None) -> str:
        """The folder of sweep ``sweep``.

        Raises:
            SweepError: no sweep of that name under the results folder.
        """
        if not sweep or sweep not in list_sweeps(self.results_dir):
            raise SweepError(f"no sweep named {sweep!r} under {self.results_dir}; pick one of "
                             "the list (or start one on the Sweeps page)")
        return os.path.join(self.results_dir, sweep)

    def status(self, sweep: str) -> str | None:
        """The status in sweep ``sweep``'s ``sweep.json`` (None when it has none yet)."""
        state = peek_state(os.path.join(self.results_dir, sweep))
        return state.status if state else None

    def get(self, sweep: str) -> tuple[str, Board]:
        """``(sweep folder, its Board)``; the board without plots (see :meth:`plots`).

        Raises:
            SweepError: no sweep of that name under the results folder.
        """
        exp = self.exp_dir(sweep)
        sig = _signature(exp)
        with self.lock:
            cached = self._boards.get(sweep)
            if cached is None or cached[0] != sig:
                cached = self._boards[sweep] = (sig, load_board(exp))  # classify needs no plots
        return exp, cached[1]

    def cached(self, sweep: str) -> Board | None:
        """The board of ``sweep`` as last read, if it was."""
        cached = self._boards.get(sweep)
        return cached[1] if cached else None

    def plots(self, sweep: str, b: Board) -> list[str]:
        """The board's plots; a live board's drawn once on demand, into the page's own
        cache folder (by plots.make_plots, and importance.write_importance: the
        importance once 10 trials have completed, the parallel view)."""
        if b.live and not b.plots and not b.board.empty:

            with self.lock:
                if not b.plots:
                    where = os.path.join(self.plots_cache, sweep)
                    drawn = make_plots(where, b.board, b.results)
                    if b.state is not None:
                        drawn += [p for p in write_importance(where, b.board, b.state).files
                                  if p.endswith(".png")]
                    b.plots = drawn
        return b.plots


def _signature(exp: str) -> tuple:
    """Changes whenever a trial reports (Ray's ``result.json``) or the sweep's files
    change."""
    files = [os.path.join(exp, f) for f in (STATE_FILE, LEADERBOARD_FILE)]
    files += glob.glob(os.path.join(exp, "*", RESULT_FILE))
    sig = []
    for f in files:
        try:
            sig.append((f, os.path.getmtime(f), os.path.getsize(f)))
        except OSError:  # not written yet, or replaced just now
            continue
    return tuple(sorted(sig))
