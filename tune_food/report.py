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

import json
import os
import sys
from typing import Sequence

import pandas as pd

from .cliargs import Parser, path_arg
from .errors import SweepError, cli_call, quiet_broken_pipe
from .outputs import STATE_FILE

PROG = "python -m tune_food.report"
MAX_BARS = 25     # leaderboard.png shows the best 25 trials
MAX_CURVES = 10   # curves.png colours the best 10 trials (the rest in grey)


def make_plots(exp_dir: str, board: pd.DataFrame, results: pd.DataFrame,
               predictions: pd.DataFrame | None = None, data_root: str | None = None) -> list[str]:
    """Write ``plots/leaderboard.png`` (points with 95 % Wilson whiskers, the trials
    tied with the best marked), ``plots/curves.png`` and, given the best trial's
    ``predictions``, ``plots/confusion.png`` and ``plots/errors.png`` under ``exp_dir``.

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

    import numpy as np

    if "rank" in board:
        board = board[board["rank"].notna()]   # complete trials only
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
    acc = bars["test_acc"].to_numpy(dtype=float)
    err = [acc - bars["test_acc_ci_low"].to_numpy(dtype=float),
           bars["test_acc_ci_high"].to_numpy(dtype=float) - acc]
    y = list(range(len(bars)))[::-1]
    tied = (bars["tied_with_best"].fillna(False).astype(bool).to_numpy()
            if "tied_with_best" in bars else [False] * len(bars))
    colors = ["#c44e52" if i == 0 else "#dd8452" if t else "#4c72b0"
              for i, t in enumerate(tied)]
    for yi, a, lo, hi, c in zip(y, acc, err[0], err[1], colors):  # points, not truncated bars
        ax.errorbar(a, yi, xerr=[[lo], [hi]], fmt="o", color=c, ecolor=c, capsize=4, ms=6)
        ax.text(a, yi + 0.28, f"{a:.3f}", va="center", ha="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"#{r}  {lab}" for r, lab in zip(bars["rank"], labels)], fontsize=8)
    ax.set_xlim(max(0.0, float(np.nanmin(acc - err[0])) - 0.03), 1.005)
    ax.set_xlabel("test accuracy (point) with 95 % Wilson interval"
                  + (f", {n_test} test images" if n_test else ""))
    if "tied_with_best" in bars and bars["tied_with_best"].notna().any():
        from matplotlib.lines import Line2D

        ax.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=t) for c, t in (
            ("#c44e52", "best (rank 1)"),
            ("#dd8452", "indistinguishable from the best (McNemar p >= 0.05)"),
            ("#4c72b0", "worse than the best (p < 0.05)"))], fontsize=8, loc="lower left")
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
    if predictions is not None and not predictions.empty:
        paths += error_plots(out_dir, predictions[predictions["split"] == "test"],
                             str(board.iloc[0]["trial_name"]), data_root)
    return paths


def error_plots(out_dir: str, predictions: pd.DataFrame, trial: str,
                data_root: str | None) -> list[str]:
    """``confusion.png`` (the best trial's confusion matrix on the test split: counts,
    rows = true class, and per-class recall) and ``errors.png`` (the test images it gets
    wrong: thumbnails with true / predicted class and the predicted probability; drawn
    when the images are found under ``data_root``)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    classes = [c[len("prob_"):] for c in predictions.columns if c.startswith("prob_")]
    matrix = confusion_matrix(predictions["label"], predictions["predicted"], labels=classes)
    recall = matrix.diagonal() / matrix.sum(axis=1).clip(min=1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(classes), 1.2 + 1.0 * len(classes)))
    ConfusionMatrixDisplay(matrix, display_labels=[
        f"{c}\nrecall {r:.2f}" for c, r in zip(classes, recall)]).plot(
        ax=ax, colorbar=False, cmap="Blues")
    ax.set_xticklabels(classes)
    ax.set_title(f"{trial}: {len(predictions)} test images, "
                 f"{int(matrix.trace())} correct", fontsize=9)
    paths = [os.path.join(out_dir, "confusion.png")]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)
    wrong = predictions[predictions["label"] != predictions["predicted"]]
    if wrong.empty or not data_root:
        return paths
    from .images import rgb_loader

    wrong = wrong.head(24)
    cols = min(6, len(wrong))
    rows = (len(wrong) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (_, row) in zip(axes.flat, wrong.iterrows()):
        path = os.path.join(data_root, row["image"])
        if os.path.isfile(path):
            img = rgb_loader(path)
            img.thumbnail((200, 200))
            ax.imshow(img)
        ax.set_title(f"true {row['label']}\npred {row['predicted']} "
                     f"{row['prob_' + row['predicted']]:.2f}", fontsize=8)
    fig.suptitle(f"{trial}: the {len(wrong)} test images it gets wrong", fontsize=10)
    paths.append(os.path.join(out_dir, "errors.png"))
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


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
                         "written by python -m tune_food.sweep") from None
    return state


def rebuild(exp_dir: str, out=None) -> pd.DataFrame:
    """Rebuild the CSV files and plots of ``exp_dir`` from its trial folders (the same
    :func:`tune_food.outputs.write_outputs` the sweep ends with); print and return the
    leaderboard. A sweep whose ``sweep.json`` still says ``running`` while its driver is
    gone (killed) is marked with the status its trials show (``interrupted``)."""
    from .files import write_json_atomic
    from .outputs import driver_alive, write_outputs

    out = out or sys.stdout
    state = read_state(exp_dir)
    result = write_outputs(exp_dir, exp_dir, state)
    board = result.board
    changed = state.get("comparison", "") != result.summary
    state["comparison"] = result.summary
    if state.get("status") == "running" and not driver_alive(state):
        state["status"], changed = result.status, True
    if changed:   # a finished sweep's sweep.json stays byte-identical
        write_json_atomic(state, os.path.join(exp_dir, STATE_FILE))
    cols = [c for c in ["rank", "trial_name", "status", "epochs_done", state["metric"],
                        "test_acc", "test_acc_ci_low", "test_acc_ci_high", "test_loss",
                        "p_vs_best"]
            if c in board]
    print(f"sweep {os.path.basename(os.path.abspath(exp_dir))}: {state.get('status')}", file=out)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(board[list(dict.fromkeys(cols))].to_string(index=False), file=out)
    if result.summary:
        print(result.summary, file=out)
    for p in result.files:
        if p.endswith(".png"):
            print(f"plot: {p}", file=out)
    return board


def main(argv: Sequence[str] | None = None) -> int:
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
    sys.exit(main())
