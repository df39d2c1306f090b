"""The Classify page: photos in, each image's classes out, from the classifier of the
chosen trial (:func:`tune_food.inference.classifier.load_classifier`, loaded once and
kept) with :func:`tune_food.inference.classifier.classify`; the time per image in ms and which trial and
checkpoint answered."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any, Sequence

import pandas as pd

from tune_food.app.boards import SweepBoards
from tune_food.app.folders import checkpointed, ranked_by
from tune_food.common.errors import DataError, SweepError, TuneFoodError
from tune_food.inference.classifier import classify, load_classifier
from tune_food.sweepdir.columns import RANK, TRIAL_ID, TRIAL_NAME
from tune_food.sweepdir.status import SweepStatus

MAX_IMAGES = 64            # images per request; more are refused with a message
#: the headers of the "every image" table (:func:`_result`)
PER_IMAGE_COLUMNS = ("image", "top class", "probability", "all classes")


class Classifiers:
    """Trained classifiers, loaded once per checkpoint folder and kept (thread-safe)."""

    def __init__(self):
        self._models: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def get(self, checkpoint: str):
        """``(model, classes)`` of ``checkpoint`` (see
        :func:`tune_food.inference.classifier.load_classifier`)."""

        with self._lock:
            if checkpoint not in self._models:
                self._models[checkpoint] = load_classifier(checkpoint)
            return self._models[checkpoint]


def classify_images(model, classes: list[str], paths: Sequence[str]) -> tuple[list[dict], float]:
    """Every class's probability for each image, with
    :func:`tune_food.inference.classifier.classify`.

    Images that cannot be read do not stop the others: their row has ``"error"`` (the
    reason) instead of ``"predictions"``.

    Returns:
        ``(rows, seconds)``: one dict per path in order (``{"image", "predictions"}`` as
        ``classify`` returns them, or ``{"image", "error"}``) and the wall time of the
        predictions in seconds.
    """

    t0 = time.perf_counter()
    try:
        rows = classify(model, classes, list(paths), top_k=len(classes))
    except (DataError, OSError, ValueError, RuntimeError):  # find the bad ones; the rest answer
        rows = []
        for p in paths:
            try:
                rows.extend(classify(model, classes, [p], top_k=len(classes)))
            except DataError as exc:
                reason = str(exc).split(f"{p} (", 1)[-1]
                reason = reason[:-1] if reason.endswith(")") else reason
                rows.append({"image": p, "error": reason})
            except (OSError, ValueError, RuntimeError) as exc:  # decoded, but not classifiable
                rows.append({"image": p, "error": f"{type(exc).__name__}: {exc}"})
    return rows, time.perf_counter() - t0


class ClassifyPage:
    """The Classify page's layout and event handlers."""

    def __init__(self, boards: SweepBoards, classifiers: Classifiers):
        self.boards = boards
        self.classifiers = classifiers

    def layout(self, first: str | None, examples: list[str]) -> SimpleNamespace:
        """The page's components (inside ``gr.Tab``), the trials of sweep ``first``
        offered; ``examples``: test images to offer."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        choices0, trial0, note0 = self.trial_choices(first)
        ui = SimpleNamespace(trial0=trial0)
        # the page's full width: a trial's name and metric show whole
        ui.trial_dd = gr.Dropdown(choices0, value=trial0, label="trial (rank 1 by default)",
                                  allow_custom_value=True, elem_id="trial",
                                  elem_classes=["tf-picker"])
        with gr.Row():
            with gr.Column():
                ui.files = gr.File(file_count="multiple", file_types=["image"],
                                   type="filepath", label="photos", elem_id="photos")
                ui.run_btn = gr.Button("Classify", variant="primary", elem_id="classify-btn")
                if examples:
                    gr.Examples([[[p]] for p in examples], inputs=[ui.files],
                                label="test images of this sweep")
            with gr.Column():
                ui.note = gr.Markdown(note0, elem_id="classify-note")
                ui.label = gr.Label(num_top_classes=3, label="top classes (first image)",
                                    elem_id="top")
                ui.table = gr.Dataframe(per_image_table([]), label="every image",
                                        interactive=False, elem_id="per-image")
                with gr.Accordion("JSON (as python -m tune_food.predict --json)", open=False):
                    ui.details = gr.JSON(label="details")
        return ui

    def trial_choices(self, sweep: str | None) -> tuple[list, str | None, str]:
        """Dropdown choices (label, trial_id), the default (rank 1) and a note."""
        if not sweep:
            return [], None, "No sweep yet under the results folder: start one on the Sweeps page."
        try:
            exp, b = self.boards.get(sweep)
        except SweepError as exc:
            return [], None, str(exc)
        rows = checkpointed(b.board, exp)
        if rows.empty:
            return [], None, (f"Sweep **{sweep}** has no checkpoint yet "
                              f"({b.state.status if b.state else 'unknown status'}): its trials save one "
                              "after their first epoch. Come back in a moment.")
        metric = ranked_by(rows)
        choices = [(f"#{r[RANK]} {r[TRIAL_NAME]} ({metric} {r[metric]:.3f})"
                    if metric in r and pd.notna(r[metric]) else f"#{r[RANK]} {r[TRIAL_NAME]}",
                    str(r[TRIAL_ID])) for _, r in rows.iterrows()]
        return choices, choices[0][1], ""

    def on_sweep(self, sweep):
        """Another sweep chosen: its trials, rank 1 selected."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        choices, value, text = self.trial_choices(sweep)
        return gr.update(choices=choices, value=value), text

    def refresh_trials(self, sweep, trial):
        """Timer: a running sweep's first checkpoints become classifiable without a
        reload (the chosen trial stays chosen)."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        if not sweep or self.boards.status(sweep) != SweepStatus.RUNNING:
            return gr.skip(), gr.skip()
        choices, value, text = self.trial_choices(sweep)
        values = [v for _, v in choices]
        return gr.update(choices=choices, value=trial if trial in values else value), text

    def checkpoint_of(self, sweep: str, trial: str | None) -> tuple[str, pd.Series]:
        """``(checkpoint folder, leaderboard row)`` of ``trial`` (None: rank 1).

        Raises:
            SweepError: no such sweep, no checkpoint yet, or no such trial with one.
        """
        exp, b = self.boards.get(sweep)
        rows = checkpointed(b.board, exp)
        if rows.empty:
            raise SweepError(f"sweep {sweep} has no checkpoint yet: its trials save one after "
                             "their first epoch")
        if trial:
            rows = rows[rows[TRIAL_ID].astype(str) == str(trial)]
            if rows.empty:
                raise SweepError(f"trial {trial!r} of sweep {sweep} has no checkpoint; pick "
                                 "one from the list")
        row = rows.iloc[0]
        return row["checkpoint"], row

    def classify_batch(self, files_b: list, trial_b: list, sweep_b: list):
        """Gradio batch function: lists in (one entry per request), lists out. Requests
        for the same checkpoint are classified together."""
        groups: dict[tuple, list[int]] = {}
        outs: list[Any] = [None] * len(files_b)
        for i, (files, trial, sweep) in enumerate(zip(files_b, trial_b, sweep_b)):
            ckpt, problem = self._checkpoint_for(_paths(files), trial, sweep)
            if problem:
                outs[i] = _message(problem)
            else:
                groups.setdefault((ckpt, sweep), []).append(i)
        for (ckpt, sweep), idx in groups.items():
            self._classify_group(ckpt, sweep, idx, files_b, trial_b, outs)
        return tuple(list(col) for col in zip(*outs))

    def _checkpoint_for(self, paths: list[str], trial, sweep) -> tuple[str | None, str]:
        """``(checkpoint, "")`` for one request, or ``(None, what is wrong)``."""
        if not paths:
            return None, "Drop one or more photos (JPEG, PNG, WebP...) or pick an example."
        if len(paths) > MAX_IMAGES:
            return None, (f"{len(paths)} files at once; at most {MAX_IMAGES} per request: "
                          "send them in parts.")
        try:
            ckpt, _ = self.checkpoint_of(sweep, trial)
        except TuneFoodError as exc:
            return None, str(exc)
        return ckpt, ""

    def _classify_group(self, ckpt: str, sweep: str, idx: list[int], files_b: list,
                        trial_b: list, outs: list) -> None:
        """Classify the images of requests ``idx`` (one checkpoint) at once; their
        answers into ``outs``."""
        try:
            model, classes = self.classifiers.get(ckpt)
        except TuneFoodError as exc:
            for i in idx:
                outs[i] = _message(str(exc))
            return
        all_paths = [p for i in idx for p in _paths(files_b[i])]
        rows, seconds = classify_images(model, classes, all_paths)
        ms = 1000 * seconds / max(1, len(all_paths))
        _, trow = self.checkpoint_of(sweep, str(trial_b[idx[0]]) if trial_b[idx[0]] else None)
        at = 0
        for i in idx:
            n = len(_paths(files_b[i]))
            outs[i] = _result(rows[at:at + n], ms, sweep, trow, ckpt, self.boards.results_dir)
            at += n


def _paths(files) -> list[str]:
    """The file paths of a ``gr.File`` value (paths, file objects or dicts)."""
    out = []
    for f in files or []:
        p = f if isinstance(f, str) else getattr(f, "name", None) or (
            f.get("path") if isinstance(f, dict) else None)
        if p:
            out.append(p)
    return out


def _message(text: str):
    """The page's four outputs when there is only ``text`` to say."""
    return None, per_image_table([]), text, {}


def per_image_table(rows: list[dict]) -> pd.DataFrame:
    """The "every image" table of ``rows`` (:func:`classify_images`' rows): a row per
    image, its :data:`PER_IMAGE_COLUMNS` (file name, top class, its probability, every
    class's probability or why the file cannot be read).

    Returns:
        the table (no rows for ``[]``: the headers alone).
    """
    return pd.DataFrame({
        "image": [os.path.basename(r["image"]) for r in rows],
        "top class": [r["predictions"][0]["class"] if "predictions" in r else "" for r in rows],
        "probability": [round(r["predictions"][0]["probability"], 4) if "predictions" in r
                        else None for r in rows],
        "all classes": [", ".join(f"{p['class']} {p['probability']:.3f}"
                                  for p in r["predictions"]) if "predictions" in r
                        else "cannot be read: " + r["error"] for r in rows]},
        columns=list(PER_IMAGE_COLUMNS))


def _result(rows: list[dict], ms: float, sweep: str, trow: pd.Series, ckpt: str,
            results_dir: str):
    """The page's four outputs for one request: top classes of the first image, a
    table of every image, a note (who answered, ms per image, unreadable files) and
    the JSON details."""
    ok = [r for r in rows if "predictions" in r]
    table = per_image_table(rows)
    first = ok[0] if ok else None
    label = {p["class"]: p["probability"] for p in first["predictions"]} if first else None
    rel = os.path.relpath(ckpt, results_dir)
    text = (f"Answered by **trial #{trow[RANK]} {trow[TRIAL_NAME]}** of sweep {sweep}, "
            f"checkpoint `{rel}`: {len(ok)} image(s) in **{ms:.1f} ms per image**.")
    bad = [r for r in rows if "error" in r]
    if bad:
        text += (f"\n\n{len(bad)} file(s) could not be read as images: "
                 + "; ".join(f"{os.path.basename(r['image'])} ({r['error']})" for r in bad))
    details = {"checkpoint": ckpt, TRIAL_ID: str(trow[TRIAL_ID]),
               TRIAL_NAME: str(trow[TRIAL_NAME]), "ms_per_image": ms,
               "results": [dict(r, image=os.path.basename(r["image"])) for r in rows]}
    return label, table, text, details
