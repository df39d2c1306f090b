"""``python -m tune_food.report results/<name>``: rebuild a sweep's leaderboard, CSV files
and plots from its trial folders and print the leaderboard.

It works on a finished, an interrupted or a killed sweep (Ray Tune's
``ExperimentAnalysis`` reads the trial folders; no cluster needed), through the same
:func:`tune_food.outputs.write_outputs` the sweep ends with, so on a finished sweep every
file stays byte-identical. Heavy modules are imported after the command line is parsed.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from .cliargs import Parser, path_arg
from .errors import SweepError, cli_call, exit_program, quiet_broken_pipe

PROG = "python -m tune_food.report"


def rebuild(exp_dir: str, out=None):
    """Rebuild the CSV files and plots of ``exp_dir`` from its trial folders (the same
    :func:`tune_food.outputs.write_outputs` the sweep ends with); print and return the
    leaderboard. A sweep whose ``sweep.json`` still says ``running`` while its driver is
    gone (killed) is marked with the status its trials show (``interrupted``).

    Returns:
        the leaderboard (a ``pandas.DataFrame``, one row per trial, ranked first).

    Raises:
        SweepError: not a sweep folder, a damaged ``sweep.json``, or no trial yet.
    """
    import pandas as pd

    from .outputs import write_outputs
    from .state import driver_alive, read_state, write_state

    out = out or sys.stdout
    state = read_state(exp_dir)
    result = write_outputs(exp_dir, exp_dir, state)
    board = result.board
    changed = state.get("comparison", "") != result.summary
    state["comparison"] = result.summary
    if state.get("status") == "running" and not driver_alive(state):
        state["status"], changed = result.status, True
    if changed:   # a finished sweep's sweep.json stays byte-identical
        write_state(state, exp_dir)
    cols = [c for c in ["rank", "trial_name", "status", "epochs_done", state["metric"],
                        "test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss",
                        "p_vs_best"]
            if c in board]
    why = f" ({state['error']})" if state.get("status") == "failed" and state.get("error") else ""
    print(f"sweep {os.path.basename(os.path.abspath(exp_dir))}: {state.get('status')}{why}",
          file=out)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(board[list(dict.fromkeys(cols))].to_string(index=False), file=out)
    if result.summary:
        print(result.summary, file=out)
    for p in result.files:
        if p.endswith(".png"):
            print(f"plot: {p}", file=out)
    return board


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0, or 2 after one line on stderr)."""
    parser = Parser(prog=PROG, description="Rebuild the leaderboard and plots of a sweep.")
    parser.add_argument("sweep", type=path_arg, help="the sweep folder, results/<name>")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)

    def body() -> int:
        if not os.path.isdir(args.sweep):
            what = "is a file, not a folder" if os.path.exists(args.sweep) else "does not exist"
            raise SweepError(f"sweep folder {args.sweep} {what}; pass results/<name>")
        rebuild(args.sweep)
        return 0

    return cli_call(PROG, args.debug, body)


if __name__ == "__main__":
    quiet_broken_pipe()  # only as a program: in-process callers keep their SIGPIPE handling
    exit_program(main())
