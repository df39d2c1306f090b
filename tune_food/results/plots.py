"""The pictures of a sweep: :func:`make_plots` draws, with matplotlib, into
``results/<name>/plots/``:

* ``leaderboard.png``: a point per trial, best on top, its test accuracy with the 95 %
  Wilson interval as whiskers (no bars, so no truncated axis exaggerates differences),
  labelled by the trial's hyperparameters;
* ``curves.png``: test accuracy and test loss per epoch, a line per trial, coloured in
  rank order (:func:`curves_figure`); a trial whose curve lies under a twin's is dashed.
* ``confusion.png`` and ``errors.png``: the best trial's confusion matrix and the test
  images it gets wrong (:func:`error_plots`);
* ``tradeoff.png``: test accuracy against ``cpu_ms``, when the sweep has deployment
  figures (:func:`tradeoff_figure`).

:func:`tune_food.results.outputs.write_outputs` calls it for the sweep and for
``python -m tune_food.report``; the web page draws a running sweep's plots with it.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from tune_food.common.errors import optional_step
from tune_food.common.stats import ALPHA
from tune_food.data.images import rgb_loader
from tune_food.models.figures import CPU_MS
from tune_food.results.tradeoff import fastest_tied, pareto_front
from tune_food.sweepdir.columns import EPOCH, RANK, RANKED_BY, TIED_WITH_BEST, TRIAL_ID, TRIAL_NAME
from tune_food.sweepdir.layout import (
    CONFUSION_PNG,
    CURVES_PNG,
    ERRORS_PNG,
    LEADERBOARD_PNG,
    PLOTS_DIR,
    TRADEOFF_PNG,
)

MAX_BARS = 25     # leaderboard.png shows the best 25 trials
MAX_CURVES = 10   # curves.png colours the best 10 trials (the rest in grey)
MAX_ERRORS = 24   # errors.png shows at most 24 wrong test images
ERROR_COLUMNS = 6   # ... in rows of at most 6
#: curves.png colours by rank, strongest first (matplotlib's tab10 without its grey)
RANK_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                "#e377c2", "#17becf", "#bcbd22", "#aec7e8")


def make_plots(exp_dir: str, board: pd.DataFrame, results: pd.DataFrame,
               predictions: pd.DataFrame | None = None, data_root: str | None = None,
               warnings: list[str] | None = None) -> list[str]:
    """Write ``plots/leaderboard.png`` (points with 95 % Wilson whiskers, the trials
    tied with the best marked), ``plots/curves.png`` and, given the best trial's
    ``predictions``, ``plots/confusion.png`` and ``plots/errors.png``, and given
    deployment figures (``cpu_ms``), ``plots/tradeoff.png`` under ``exp_dir``.

    Each figure is optional (:func:`tune_food.common.errors.optional_step`): one that
    fails is a ``warning:`` line (appended to ``warnings``) and the others are drawn.

    Args:
        board: the leaderboard (:func:`~tune_food.results.leaderboard.make_leaderboard`).
        results: every reported row (one per trial and epoch) with ``trial_id``,
            ``epoch``, ``test_acc``, ``test_loss``.

    Returns:
        The paths written (none when no trial reported a metric).
    """
    import matplotlib  # lazy: Agg backend set when drawing (an optional step), not on import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is set

    warnings = [] if warnings is None else warnings
    if RANK in board:
        board = board[board[RANK].notna()]   # complete trials only
    board = board.dropna(subset=["test_acc"]) if "test_acc" in board else board.iloc[0:0]
    if board.empty:
        return []
    out_dir = os.path.join(exp_dir, PLOTS_DIR)
    names = board[TRIAL_NAME].astype(str).tolist()
    labels = [n.rsplit("_", 1)[0] if n.rsplit("_", 1)[-1].isdigit() else n for n in names]

    def save(file: str, draw) -> list[str]:
        fig = draw()
        if fig is None:
            return []
        try:
            os.makedirs(out_dir, exist_ok=True)
            fig.savefig(os.path.join(out_dir, file), dpi=110, bbox_inches="tight")
        finally:
            plt.close(fig)
        return [os.path.join(out_dir, file)]

    def plot(file: str, draw) -> list[str]:
        return optional_step(f"{PLOTS_DIR}/{file}", lambda: save(file, draw), warnings, [])

    paths = plot(LEADERBOARD_PNG, lambda: leaderboard_figure(board, labels,
                                                             os.path.basename(exp_dir)))
    if not results.empty and EPOCH in results:
        paths += plot(CURVES_PNG, lambda: curves_figure(board, results, labels))
    paths += plot(TRADEOFF_PNG, lambda: tradeoff_figure(board, os.path.basename(exp_dir)))
    if predictions is not None and not predictions.empty:
        tests = predictions[predictions["split"] == "test"]
        best = str(board.iloc[0][TRIAL_NAME])
        paths += optional_step(f"{PLOTS_DIR}/{CONFUSION_PNG} and {ERRORS_PNG}",
                               lambda: error_plots(out_dir, tests, best, data_root),
                               warnings, [])
    return paths


#: leaderboard.png's kinds of point: colour and legend text, in legend order
POINT_KINDS = {"best": ("#c44e52", "best (rank 1)"),
               "tied": ("#dd8452", f"indistinguishable from the best (McNemar p >= {ALPHA:g})"),
               "worse": ("#4c72b0", f"worse than the best (p < {ALPHA:g})"),
               "untested": ("#8c8c8c", "not compared with the best (no per-image predictions)")}


def point_kinds(bars: pd.DataFrame) -> list[str]:
    """The kind (a key of :data:`POINT_KINDS`) of each row of ``bars`` (ranked, best
    first): ``best`` for the first, then ``tied`` / ``worse`` by ``tied_with_best``, and
    ``untested`` where that is empty (no paired predictions). Without the column, every
    row after the first is ``worse``, as the leaderboard of older sweeps drew them."""
    if TIED_WITH_BEST not in bars:
        return ["best"] + ["worse"] * (len(bars) - 1)
    return ["best" if i == 0 else "untested" if pd.isna(t) else "tied" if t else "worse"
            for i, t in enumerate(bars[TIED_WITH_BEST])]


def leaderboard_figure(board: pd.DataFrame, labels: list[str], name: str):
    """The figure of ``leaderboard.png``: for the best :data:`MAX_BARS` ranked rows of
    ``board`` (``labels`` in the same order), a point at the test accuracy with its 95 %
    Wilson interval as whiskers (no bars: a cut axis would exaggerate differences), rank
    1 red, the trials McNemar cannot tell from it orange, the worse ones blue, those not
    compared grey (:func:`point_kinds`); the legend lists only the kinds drawn. Returns
    the matplotlib ``Figure`` (the caller closes it)."""
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt

    n_test = int(board["test_images"].iloc[0]) if "test_images" in board else None
    total = len(board)
    bars = board.head(MAX_BARS)
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(bars)), layout="constrained")
    acc = bars["test_acc"].to_numpy(dtype=float)
    err = [acc - bars["test_acc_ci_low"].to_numpy(dtype=float),
           bars["test_acc_ci_high"].to_numpy(dtype=float) - acc]
    y = list(range(len(bars)))[::-1]
    kinds = point_kinds(bars)
    colors = [POINT_KINDS[k][0] for k in kinds]
    for yi, a, lo, hi, c in zip(y, acc, err[0], err[1], colors):  # points, not truncated bars
        ax.errorbar(a, yi, xerr=[[lo], [hi]], fmt="o", color=c, ecolor=c, capsize=4, ms=6)
        ax.text(a, yi + 0.28, f"{a:.3f}", va="center", ha="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_ylim(-0.6, len(bars) - 0.35)   # room for the top point's value
    ax.set_yticklabels([f"#{r}  {lab}" for r, lab in zip(bars[RANK], labels)], fontsize=8)
    ax.set_xlim(max(0.0, float(np.nanmin(acc - err[0])) - 0.03), 1.005)
    ax.set_xlabel("test accuracy (point) with 95 % Wilson interval"
                  + (f", {n_test} test images" if n_test else ""))
    if TIED_WITH_BEST in bars and bars[TIED_WITH_BEST].notna().any():
        # lazy: Agg backend set when drawing (an optional step), not on import
        from matplotlib.lines import Line2D

        shown = [k for k in POINT_KINDS if k in kinds]   # only the kinds some point has
        fig.legend(handles=[Line2D([], [], marker="o", ls="", color=POINT_KINDS[k][0],
                                   label=POINT_KINDS[k][1]) for k in shown], fontsize=8,
                   loc="outside lower center", ncol=len(shown) if len(shown) < 4 else 2,
                   frameon=False)   # below the axis label: covers no point, no text
    ranked = board[RANKED_BY].iloc[0] if RANKED_BY in board else ""
    shown = f"top {len(bars)} of {total} trials" if total > len(bars) else f"{total} trials"
    ax.set_title(f"leaderboard: {name}, {shown}, ranked by {ranked}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def hidden_twins(board: pd.DataFrame, results: pd.DataFrame) -> dict:
    """Trials whose curves lie under another trial's: ``{trial_id: (twin_id, epochs)}``
    for every trial whose test accuracy and loss equal (to 1e-9) those of a trial with
    more epochs at each of its epochs, e.g. the 5-epoch trial of a grid under the
    10-epoch trial with the same other hyperparameters (same seed, same batches). The
    twin is the best-ranked such trial; ``epochs`` is the hidden trial's last epoch."""
    curves = {}
    for trial_id in board[TRIAL_ID]:
        rows = results[results[TRIAL_ID] == trial_id].sort_values(EPOCH)
        curves[trial_id] = rows[[EPOCH, "test_acc", "test_loss"]].to_numpy(dtype=float)
    twins = {}
    for trial_id, mine in curves.items():
        if not len(mine):
            continue
        for other_id, other in curves.items():
            if other_id == trial_id or len(other) <= len(mine):
                continue
            if np.allclose(other[:len(mine)], mine, rtol=0, atol=1e-9):
                twins[trial_id] = (other_id, int(mine[-1, 0]))
                break
    return twins


def curves_figure(board: pd.DataFrame, results: pd.DataFrame, labels: list[str]):
    """The figure of ``curves.png``: test accuracy (left) and test loss (right) per
    epoch, a line per trial of ``board`` (ranked rows, best first; ``labels`` in the same
    order). The best :data:`MAX_CURVES` are coloured in rank order (:data:`RANK_COLOURS`:
    #1 red, thickest and on top), the rest thin and grey; a trial hidden under a
    twin (:func:`hidden_twins`) is dashed, drawn above its twin, and its legend entry says
    whose curve hides it. Returns the matplotlib ``Figure`` (the caller closes it)."""
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    total = len(board)
    twins = hidden_twins(board, results)
    rank_of = {t: i + 1 for i, t in enumerate(board[TRIAL_ID])}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    # drawn worst first, so that better ranks lie on top
    for i, (trial_id, label) in reversed(list(enumerate(zip(board[TRIAL_ID], labels)))):
        rows = results[results[TRIAL_ID] == trial_id].sort_values(EPOCH)
        if i < MAX_CURVES:
            style = dict(color=RANK_COLOURS[i % len(RANK_COLOURS)], marker="o",
                         ms=4 if i else 5, lw=2.6 if i == 0 else 1.6,
                         label=f"#{i + 1} {label}", zorder=3 + MAX_CURVES - i)
        else:
            style = dict(color="0.75", lw=0.7, zorder=1)
        if trial_id in twins:
            twin, last = twins[trial_id]
            style.update(ls="--", dashes=(3, 3), marker="s", zorder=3 + 2 * MAX_CURVES)
            if "label" in style:
                style["label"] += f"  (dashed: same curve as #{rank_of[twin]} up to epoch {last})"
        ax1.plot(rows[EPOCH], rows["test_acc"], **style)
        ax2.plot(rows[EPOCH], rows["test_loss"], **style)
    handles, names_ = ax2.get_legend_handles_labels()
    order = sorted(range(len(names_)), key=lambda k: int(names_[k][1:].split()[0]))
    ax1.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy per epoch"
            + (f" (best {MAX_CURVES} in colour)" if total > MAX_CURVES else ""))
    ax2.set(xlabel="epoch", ylabel="test loss (cross-entropy per image)",
            title="test loss per epoch")
    for a in (ax1, ax2):
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    fig.legend([handles[k] for k in order], [names_[k] for k in order], fontsize=8,
               loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=1 if total > 4 else 2,
               frameon=False)
    return fig


def error_plots(out_dir: str, predictions: pd.DataFrame, trial: str,
                data_root: str | None) -> list[str]:
    """``confusion.png`` (the best trial's confusion matrix on the test split: counts,
    rows = true class, and per-class recall) and ``errors.png`` (:func:`errors_figure`:
    the test images it gets wrong, drawn when they are found under ``data_root``).

    Returns:
        the paths written: ``confusion.png``, and ``errors.png`` when it was drawn.
    """
    # lazy: Agg backend set when drawing (an optional step), not on import
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
    paths = [os.path.join(out_dir, CONFUSION_PNG)]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    plt.close(fig)
    fig = errors_figure(predictions, trial, data_root)
    if fig is None:
        return paths
    paths.append(os.path.join(out_dir, ERRORS_PNG))
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


def errors_figure(predictions: pd.DataFrame, trial: str, data_root: str | None):
    """The figure of ``errors.png``: a tile per test image of ``predictions`` (columns
    ``image`` relative to ``data_root`` or absolute, ``label``, ``predicted``,
    ``prob_<class>``) that ``trial`` gets wrong and that is found on disk, at most
    :data:`MAX_ERRORS`: its thumbnail titled with its file name, true and predicted class
    and the predicted class's probability. The grid holds exactly the tiles shown (as
    square as 6 columns allow); the title counts the wrong images and those not found.

    Returns:
        the matplotlib ``Figure`` (the caller closes it), or None when no wrong image
        is found (none wrong, no ``data_root``, or the images are not under it).
    """
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt


    wrong = predictions[predictions["label"] != predictions["predicted"]]
    if wrong.empty or not data_root:
        return None
    paths = [os.path.join(data_root, p) for p in wrong["image"].astype(str)]
    found = [(path, row) for path, (_, row) in zip(paths, wrong.iterrows())
             if os.path.isfile(path)]
    if not found:
        return None
    shown = found[:MAX_ERRORS]
    rows = -(-len(shown) // ERROR_COLUMNS)
    cols = -(-len(shown) // rows)            # 7 images: 2 rows of 4, not 6 + 1
    fig = plt.figure(figsize=(2.2 * cols, 0.4 + 2.7 * rows), layout="constrained")
    for i, (path, row) in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.axis("off")
        img = rgb_loader(path)
        img.thumbnail((200, 200))
        ax.imshow(img)
        ax.set_title(f"{_short_name(os.path.basename(path))}\ntrue {row['label']}\n"
                     f"pred {row['predicted']} {row['prob_' + row['predicted']]:.2f}",
                     fontsize=8)
    what = (f"the {len(shown)} test image{'s' * (len(shown) != 1)} it gets wrong"
            if len(shown) == len(wrong) else
            f"{len(shown)} of the {len(wrong)} test images it gets wrong")
    missing = len(wrong) - len(found)
    fig.suptitle(f"{trial}: {what}" + (f" ({missing} not found under {data_root})"
                                       if missing else ""), fontsize=10)
    return fig


def _short_name(name: str, width: int = 26) -> str:
    """``name`` cut to ``width`` characters (its start replaced by an ellipsis), so a
    tile's title stays within the tile."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def tradeoff_figure(board: pd.DataFrame, name: str):
    """The figure of ``tradeoff.png`` for the ranked rows of ``board`` that have
    ``cpu_ms`` (:mod:`tune_food.results.tradeoff`: test accuracy with its Wilson
    interval against ``cpu_ms``, the Pareto front, the trial to ship); None when none
    has. Trials of one backbone share its ``cpu_ms`` (measured once per backbone), so
    they stand on one vertical line. Returns the matplotlib ``Figure`` (the caller
    closes it)."""
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt

    rows = board[board[RANK].notna()].dropna(subset=[CPU_MS, "test_acc"]) \
        if {RANK, CPU_MS, "test_acc"} <= set(board) else board.iloc[0:0]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    kinds = point_kinds(rows)
    for kind in POINT_KINDS:
        part = rows[[k == kind for k in kinds]]
        if part.empty:
            continue
        colour, label = POINT_KINDS[kind]
        acc = part["test_acc"].to_numpy(dtype=float)
        ax.errorbar(part[CPU_MS], acc, yerr=[acc - part["test_acc_ci_low"].to_numpy(dtype=float),
                                               part["test_acc_ci_high"].to_numpy(dtype=float) - acc],
                    fmt="o", color=colour, ecolor=colour, alpha=0.8, capsize=3, label=label)
    front = pareto_front(rows)
    # the front's trials ringed (a front of one trial is a ring, not a line), joined by steps
    ax.step(front[CPU_MS], front["test_acc"], where="post", color="#333333", lw=1,
            ls="--", marker="o", markersize=11, markerfacecolor="none",
            label="Pareto front (nothing both faster and more accurate)")
    ship = fastest_tied(rows)
    if ship is not None:
        ax.annotate(f"ship: {ship[TRIAL_NAME]}", (ship[CPU_MS], ship["test_acc"]),
                    xytext=(12, -18), textcoords="offset points", fontsize=8,
                    arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_xlabel("cpu_ms: one photo end to end, batch 1, one CPU thread, ONNX Runtime (ms)")
    ax.set_ylabel("test accuracy with 95 % Wilson interval")
    ax.set_title(f"accuracy against serving cost: {name}, {len(rows)} ranked trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig
