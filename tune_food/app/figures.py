"""The figures of one trial on the Leaderboard page: its curves, its confusion matrix
and thumbnails of the images it gets wrong (matplotlib, drawn off-screen)."""

from __future__ import annotations

import os

import pandas as pd

from tune_food.data.images import rgb_loader
from tune_food.results.leaderboard import dedupe_history
from tune_food.sweepdir.columns import EPOCH
from tune_food.sweepdir.layout import PROGRESS_FILE



def thumb(path: str, size: int = 256):
    """The image at ``path`` as RGB, at most ``size`` x ``size`` pixels (PIL image)."""

    img = rgb_loader(path)
    img.thumbnail((size, size))
    return img


def curves_figure(logdir: str | None, title: str):
    """Accuracy and loss per epoch and split of the trial in ``logdir`` (from its
    ``progress.csv``, a resumed trial's replayed epochs once); None when there is none."""
    if not logdir or not os.path.isfile(os.path.join(logdir, PROGRESS_FILE)):
        return None
    import matplotlib  # lazy: Agg backend set when drawing (an optional step), not on import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is set
    from matplotlib.ticker import MaxNLocator


    try:
        df = pd.read_csv(os.path.join(logdir, PROGRESS_FILE))
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if EPOCH not in df:
        return None
    df = dedupe_history(df)   # a resumed trial's replayed epochs once
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for split in ("train", "val", "test"):
        if f"{split}_acc" in df:
            ax1.plot(df[EPOCH], df[f"{split}_acc"], marker="o", ms=3, label=split)
        if f"{split}_loss" in df:
            ax2.plot(df[EPOCH], df[f"{split}_loss"], marker="o", ms=3, label=split)
    ax1.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax2.set(xlabel="epoch", ylabel="loss (per image)", title="loss")
    for a in (ax1, ax2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def confusion_figure(preds: pd.DataFrame):
    """The confusion matrix (counts; rows: true class) of ``preds`` (columns ``label``,
    ``predicted``)."""
    import matplotlib  # lazy: Agg backend set when drawing (an optional step), not on import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is set
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = sorted(set(preds["label"]) | set(preds["predicted"]))
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ConfusionMatrixDisplay.from_predictions(preds["label"], preds["predicted"], labels=labels,
                                            ax=ax, colorbar=False)
    ax.set_title("rows: true class, columns: predicted", fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig
