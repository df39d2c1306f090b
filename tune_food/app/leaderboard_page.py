"""The Leaderboard page: ``leaderboard.csv`` as a table, the plots, and per trial its
hyperparameters, curves, the test images it gets wrong and its confusion matrix, and an
"Export" button that returns the trial as a web demo folder in a zip
(:func:`tune_food.export.export`). While
the sweep runs, the board is rebuilt every :data:`BOARD_REFRESH_S` seconds from the
trial folders (:func:`tune_food.app.folders.load_board`)."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import threading
from types import SimpleNamespace

import pandas as pd

from tune_food.app.boards import SweepBoards
from tune_food.app.classify import Classifiers, classify_images
from tune_food.app.figures import confusion_figure, curves_figure, thumb
from tune_food.app.folders import PLOT_FILES, Board, abs_in, display_board, read_predictions
from tune_food.common.errors import SweepError, TuneFoodError
from tune_food.export import export
from tune_food.results.images import test_images
from tune_food.sweepdir.columns import (
    CHECKPOINT_PATH,
    LOGDIR,
    RANK,
    RANKED_BY,
    TRIAL_ID,
    TRIAL_NAME,
)
from tune_food.sweepdir.layout import (
    CONFIRMED_FILE,
    CURVES_PNG,
    IMPORTANCE_PNG,
    LEADERBOARD_PNG,
    PARALLEL_PNG,
    PREDICTIONS_FILE,
    TRADEOFF_PNG,
)
from tune_food.sweepdir.state import list_sweeps
from tune_food.sweepdir.status import SweepStatus
from tune_food.train.hparams import PARAMS

BOARD_REFRESH_S = 5.0      # Leaderboard page refresh while the selected sweep runs


class LeaderboardPage:
    """The Leaderboard page's layout and event handlers."""

    def __init__(self, boards: SweepBoards, classifiers: Classifiers):
        self.boards = boards
        self.classifiers = classifiers
        self._predictions: dict[str, pd.DataFrame] = {}   # checkpoint -> computed ones
        # the zips served: removed with the page (Gradio serves its own copy of each), and
        # an earlier export's when the next is made
        self._exports = tempfile.TemporaryDirectory(prefix="tune_food-exports-")
        self.exports_dir = self._exports.name
        self._export_lock = threading.Lock()   # one export at a time (a few seconds of CPU)

    @staticmethod
    def layout() -> SimpleNamespace:
        """The page's components (inside ``gr.Tab``)."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        ui = SimpleNamespace()
        ui.head = gr.Markdown(elem_id="board-head")
        with gr.Row():   # --confirm: the top configurations again with new seeds
            ui.confirm_btn = gr.Button("Confirm the winner", elem_id="confirm-btn", scale=0,
                                       min_width=180)
            ui.confirm_msg = gr.Markdown(elem_id="confirm-msg")
        ui.table = gr.Dataframe(display_board(pd.DataFrame()), interactive=False, wrap=True,
                                elem_id="board", label="leaderboard (click a header to sort)")
        with gr.Row():
            ui.lb_img = gr.Image(label=LEADERBOARD_PNG, type="filepath", interactive=False)
            ui.cv_img = gr.Image(label=CURVES_PNG, type="filepath", interactive=False)
            ui.tr_img = gr.Image(label=TRADEOFF_PNG, type="filepath", interactive=False,
                                 elem_id="tradeoff")
        with gr.Row():   # which hyperparameters mattered (a finished sweep's)
            ui.imp_img = gr.Image(label=IMPORTANCE_PNG, type="filepath", interactive=False)
            ui.par_img = gr.Image(label=PARALLEL_PNG, type="filepath", interactive=False)
        # the picker takes the page's whole width: a long trial name shows whole
        ui.trial = gr.Dropdown(label="trial", allow_custom_value=True, elem_id="board-trial",
                               elem_classes=["tf-picker"])
        with gr.Row():
            ui.export_btn = gr.Button("Export", elem_id="export-btn", scale=0, min_width=120)
            ui.export_file = gr.File(label="web demo of the trial (zip: app.py, model.onnx, "
                                     "README.md; python app.py)", elem_id="export-file",
                                     interactive=False)
        ui.trial_note = gr.Markdown()
        with gr.Row():
            ui.params = gr.JSON(label="hyperparameters")
            ui.curves = gr.Plot(label="curves (progress.csv)")
        with gr.Row():
            ui.wrong = gr.Gallery(label="test images it gets wrong (true → predicted, p)",
                                  columns=4, height=360)
            ui.confusion = gr.Plot(label="confusion matrix (test split)")
        return ui

    def board_view(self, sweep: str | None):
        """Head line, table, the plots (:data:`tune_food.app.folders.PLOT_FILES`, in the
        order of the page's images; None where not drawn) and the trial dropdown of sweep
        ``sweep``."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        if not sweep:
            return ("No sweep yet.", display_board(pd.DataFrame()), *(None,) * len(PLOT_FILES),
                    gr.update(choices=[], value=None))
        try:
            _, b = self.boards.get(sweep)
        except SweepError as exc:
            return (str(exc), display_board(pd.DataFrame()), *(None,) * len(PLOT_FILES),
                    gr.update(choices=[], value=None))
        plots = {os.path.basename(p): p for p in self.boards.plots(sweep, b)}
        trials = [(f"#{r[RANK]} {r[TRIAL_NAME]}", str(r[TRIAL_ID]))
                  for _, r in b.board.iterrows()] if not b.board.empty else []
        return (_head(sweep, b), display_board(b.board), *(plots.get(n) for n in PLOT_FILES),
                gr.update(choices=trials, value=trials[0][1] if trials else None))

    def refresh_board(self, sweep: str | None):
        """Timer: rebuild only while the sweep runs (and once when it has just ended)."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        if not sweep or sweep not in list_sweeps(self.boards.results_dir) or \
                self.boards.status(sweep) != SweepStatus.RUNNING:
            last = self.boards.cached(sweep) if sweep else None
            if last is not None and last.live and self.boards.status(sweep) != SweepStatus.RUNNING:
                return self.board_view(sweep)[:-1] + (gr.skip(),)  # it just ended: the final board
            return (gr.skip(),) * (len(PLOT_FILES) + 3)
        return self.board_view(sweep)[:-1] + (gr.skip(),)

    def trial_view(self, sweep: str | None, trial: str | None):
        """Hyperparameters, curves, wrong test images, confusion matrix and a note of
        trial ``trial`` of sweep ``sweep``."""

        if not sweep or not trial:
            return ({}, None, [], None, "")
        try:
            exp, b = self.boards.get(sweep)
        except SweepError as exc:
            return ({}, None, [], None, str(exc))
        rows = b.board[b.board[TRIAL_ID].astype(str) == str(trial)] if not b.board.empty \
            else b.board
        if rows.empty:
            return ({}, None, [], None, f"no trial {trial!r} in {sweep}")
        row = rows.iloc[0]
        params = {k: _plain(row[k]) for k in PARAMS if k in row}
        curves = curves_figure(abs_in(exp, row.get(LOGDIR)), str(row.get(TRIAL_NAME)))
        ckpt = abs_in(exp, row.get(CHECKPOINT_PATH))
        if not ckpt or not os.path.isdir(ckpt):
            return params, curves, [], None, "This trial has no checkpoint (yet): no predictions."
        try:
            preds = self.trial_predictions(exp, row, ckpt)
        except TuneFoodError as exc:
            return params, curves, [], None, str(exc)
        if preds is None or preds.empty:
            return params, curves, [], None, ("The test images of this sweep are not on this "
                                              "machine; no predictions to show.")
        gallery, note = _wrong_images(preds)
        return params, curves, gallery, confusion_figure(preds), note

    def export_zip(self, sweep: str | None, trial: str | None) -> str:
        """The web demo folder of trial ``trial`` (its id) of sweep ``sweep``
        (:func:`tune_food.export.export`) as a zip; returns the zip's path.

        Raises:
            gradio.Error: no trial chosen, or the export refused (its one-line reason).
        """
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        if not sweep or not trial:
            raise gr.Error("Choose a sweep and a trial first.")
        try:
            exp, b = self.boards.get(sweep)
            rows = b.board[b.board[TRIAL_ID].astype(str) == str(trial)] \
                if not b.board.empty else b.board
            name = str(rows.iloc[0][TRIAL_NAME]) if not rows.empty else str(trial)
            with self._export_lock:
                for earlier in os.listdir(self.exports_dir):   # this page's own exports
                    shutil.rmtree(os.path.join(self.exports_dir, earlier), ignore_errors=True)
                work = tempfile.mkdtemp(dir=self.exports_dir)
                folder = export(exp, os.path.join(work, f"{name}-demo"), str(trial))
                return shutil.make_archive(folder, "zip", os.path.dirname(folder),
                                           os.path.basename(folder))
        except TuneFoodError as exc:
            raise gr.Error(str(exc)) from None

    def trial_predictions(self, exp: str, row: pd.Series, ckpt: str) -> pd.DataFrame | None:
        """image, label, predicted, probability (of the prediction) per test image: the
        trial's ``predictions.csv`` when the sweep wrote one, else computed with
        :func:`tune_food.inference.classifier.classify` from its checkpoint (cached); None
        when the test images are not on this machine."""
        logdir = abs_in(exp, row.get(LOGDIR))
        for folder in (ckpt, logdir):
            csv = os.path.join(folder, PREDICTIONS_FILE) if folder else None
            if csv and os.path.isfile(csv):
                return read_predictions(csv, exp)
        with self.boards.lock:
            if ckpt in self._predictions:
                return self._predictions[ckpt]
        config = {k: row.get(k) for k in ("data", "test_data")}
        config = {k: (None if pd.isna(v) else v) for k, v in config.items()}
        images = test_images(exp, config)
        if not images:
            return None
        preds = self._predict(ckpt, images)
        with self.boards.lock:
            self._predictions[ckpt] = preds
        return preds

    def _predict(self, ckpt: str, images: list[str]) -> pd.DataFrame:
        """The predictions of checkpoint ``ckpt`` for ``images`` (of the test split)."""
        model, classes = self.classifiers.get(ckpt)
        rows, _ = classify_images(model, classes, images)
        rows = [r for r in rows if "predictions" in r]
        preds = pd.DataFrame({
            "image": [r["image"] for r in rows],
            "label": [os.path.basename(os.path.dirname(r["image"])) for r in rows],
            "predicted": [r["predictions"][0]["class"] for r in rows],
            "probability": [r["predictions"][0]["probability"] for r in rows]})
        preds.attrs["source"] = "its checkpoint (predict over the test split)"
        return preds


def _head(sweep: str, b: Board) -> str:
    """The line above the board: status, trials, ranking, when it was rebuilt."""
    status = b.state.status if b.state else "unknown"
    head = f"**{sweep}**: {status}, {len(b.board)} trial(s)"
    if not b.board.empty and RANKED_BY in b.board:
        head += f", ranked by {b.board[RANKED_BY].iloc[0]}"
    if b.live:
        head += (f"; rebuilt from the trial folders at "
                 f"{_dt.datetime.fromtimestamp(b.built):%H:%M:%S}")
        if status == SweepStatus.RUNNING:
            head += f" (refreshes every {BOARD_REFRESH_S:g} s)"
    if status == SweepStatus.FAILED:
        head += f"\n\nIt failed before its trials ran: {b.state.error or ''}"
    if b.note:
        head += f"\n\n{b.note}"
    if b.verdict:
        head += f"\n\n**Confirmed** ({CONFIRMED_FILE}): {b.verdict}"
    return head


def _wrong_images(preds: pd.DataFrame) -> tuple[list, str]:
    """``(gallery of the wrongly classified test images, a note with the counts)``."""
    wrong = preds[preds["label"] != preds["predicted"]]
    gallery = [(thumb(p), f"true {t} → {pr} ({prob:.2f})")
               for p, t, pr, prob in zip(wrong["image"], wrong["label"], wrong["predicted"],
                                         wrong["probability"]) if os.path.isfile(p)]
    note = (f"{len(wrong)} of {len(preds)} test images wrong "
            f"(accuracy {1 - len(wrong) / len(preds):.4f}), from {preds.attrs.get('source')}")
    return gallery, note


def _plain(v):
    """A table cell as a plain Python value for JSON (NaN: None)."""
    if isinstance(v, float) and pd.isna(v):
        return None
    return v.item() if hasattr(v, "item") else v
