"""Pictures and the leaderboard of a sweep: ``python -m tune_food.report results/<name>``.

:func:`make_plots` draws, with matplotlib, into ``results/<name>/plots/``:

* ``leaderboard.png``: a horizontal bar per trial, best on top, its test accuracy with
  the 95 % Wilson interval as whiskers, labelled by the trial's hyperparameters;
* ``curves.png``: test accuracy and test loss per epoch, a line per trial.

The CLI rebuilds both, and the CSV files, from the trial folders of a finished or an
interrupted sweep (Ray Tune's ``ExperimentAnalysis`` reads them; no cluster needed)
and prints the leaderboard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import pandas as pd

from .errors import SweepError, cli_call, quiet_broken_pipe

PROG = "python -m tune_food.report"
MAX_BARS = 25     # leaderboard.png shows the best 25 trials
MAX_CURVES = 10   # curves.png colours the best 10 trials (the rest in grey)


def make_plots(exp_dir: str, board: pd.DataFrame, results: pd.DataFrame) -> list[str]:
    """Write ``plots/leaderboard.png`` and ``plots/curves.png`` under ``exp_dir``.

    Args:
        board: the leaderboard (:func:`~tune_food.leaderboard.make_leaderboard`).
        results: every reported row (one per trial and epoch) with ``trial_id``,
            ``epoch``, ``test_acc``, ``test_loss``.

    Returns:
        The paths written (none when no trial reported a metric).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = board.dropna(subset=["test_acc"]) if "test_acc" in board else board.iloc[0:0]
    if board.empty:
        return []
    out_dir = os.path.join(exp_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    names = board["trial_name"].astype(str).tolist()
    labels = [n.rsplit("_", 1)[0] if n.rsplit("_", 1)[-1].isdigit() else n for n in names]
    n_test = int(board["test_images"].iloc[0]) if "test_images" in board else None

    total = len(board)
    bars = board.head(MAX_BARS)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(bars)))
    acc = bars["test_acc"].to_numpy()
    err = [acc - bars["test_acc_ci_low"].to_numpy(), bars["test_acc_ci_high"].to_numpy() - acc]
    y = range(len(bars))[::-1]
    ax.barh(list(y), acc, xerr=err, capsize=4, color="#4c72b0", ecolor="#333333")
    for yi, a in zip(y, acc):  # the value inside the bar's end
        ax.text(a - 0.002, yi + 0.25, f"{a:.3f}", va="center", ha="right", color="white",
                fontsize=8)
    ax.set_yticks(list(y))
    ax.set_yticklabels([f"#{r}  {lab}" for r, lab in zip(bars["rank"], labels)], fontsize=8)
    low = max(0.0, float(bars["test_acc_ci_low"].min()) - 0.05)
    ax.set_xlim(low, 1.0)
    ax.set_xlabel("test accuracy (bars) with 95 % Wilson interval (whiskers)"
                  + (f", {n_test} test images" if n_test else ""))
    ranked = board["ranked_by"].iloc[0] if "ranked_by" in board else ""
    shown = f"top {len(bars)} of {total} trials" if total > len(bars) else f"{total} trials"
    ax.set_title(f"leaderboard: {os.path.basename(exp_dir)}, {shown}, ranked by {ranked}")
    ax.grid(axis="x", alpha=0.3)
    paths = [os.path.join(out_dir, "leaderboard.png")]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)

    if not results.empty and "epoch" in results:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
        # the best MAX_CURVES trials in colour (legend, best first); the rest thin and grey
        for i, (trial_id, label) in reversed(list(enumerate(zip(board["trial_id"], labels)))):
            rows = results[results["trial_id"] == trial_id].sort_values("epoch")
            style = (dict(marker="o", ms=3, label=f"#{i + 1} {label}", zorder=3)
                     if i < MAX_CURVES else dict(color="0.75", lw=0.7, zorder=1))
            ax1.plot(rows["epoch"], rows["test_acc"], **style)
            ax2.plot(rows["epoch"], rows["test_loss"], **style)
        handles, names_ = ax2.get_legend_handles_labels()
        ax1.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch"
                + (f" (best {MAX_CURVES} in colour)" if total > MAX_CURVES else ""))
        ax2.set(xlabel="epoch", ylabel="test loss (cross-entropy per image)",
                title="test loss per epoch")
        from matplotlib.ticker import MaxNLocator

        for a in (ax1, ax2):
            a.grid(alpha=0.3)
            a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        fig.tight_layout()
        fig.legend(handles[::-1], names_[::-1], fontsize=8, loc="upper center",
                   bbox_to_anchor=(0.5, 0.0), ncol=1 if total > 4 else 2, frameon=False)
        paths.append(os.path.join(out_dir, "curves.png"))
        fig.savefig(paths[1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return paths


def load_results(exp_dir: str) -> tuple[list, dict]:
    """The ``ray.tune.Result`` of every trial of a sweep folder and its ``sweep.json``.

    Raises:
        SweepError: the folder is not a tune_food sweep.
    """
    from ray.tune import ExperimentAnalysis, ResultGrid

    state_file = os.path.join(exp_dir, "sweep.json")
    if not os.path.isfile(state_file):
        raise SweepError(f"{exp_dir} is not a tune_food sweep (no sweep.json); pass "
                         "results/<sweep-name>")
    try:
        with open(state_file) as fh:
            state = json.load(fh)
        state["metric"], state["mode"]
    except (ValueError, KeyError) as exc:
        raise SweepError(f"{state_file} is damaged ({type(exc).__name__}: {exc}); it is "
                         "written by python -m tune_food.sweep") from None
    try:
        analysis = ExperimentAnalysis(os.path.abspath(exp_dir))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())
        raise SweepError(f"{exp_dir}: no trial results yet ({reason})") from None
    return list(ResultGrid(analysis)), state


def rebuild(exp_dir: str, out=None) -> pd.DataFrame:
    """Rebuild the CSV files and plots of ``exp_dir``; print and return the leaderboard."""
    from .files import write_csv_atomic
    from .leaderboard import make_leaderboard, results_dataframe
    from .spaces import PARAMS

    out = out or sys.stdout
    results, state = load_results(exp_dir)
    keys = list(PARAMS)
    board = make_leaderboard(results, state["metric"], state["mode"], keys)
    frame = results_dataframe(results, keys)
    write_csv_atomic(board, os.path.join(exp_dir, "leaderboard.csv"))
    write_csv_atomic(frame, os.path.join(exp_dir, "results.csv"))
    paths = make_plots(exp_dir, board, frame)
    cols = [c for c in ["rank", "trial_name", "status", state["metric"], "test_acc",
                        "test_acc_ci_low", "test_acc_ci_high", "test_loss", "epoch"] if c in board]
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(board[list(dict.fromkeys(cols))].to_string(index=False), file=out)
    for p in paths:
        print(f"plot: {p}", file=out)
    return board


def main(argv: Sequence[str] | None = None) -> int:
    from .sweep import _Parser

    parser = _Parser(prog=PROG, description="Rebuild the leaderboard and plots of a sweep.")
    parser.add_argument("sweep", help="the sweep folder, results/<name>")
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
    sys.exit(main())
