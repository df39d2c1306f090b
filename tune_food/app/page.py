"""The Gradio ``Blocks`` of the page: the sweep chooser, the three pages (Classify,
Leaderboard, Sweeps) and the events that tie them together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace

from tune_food.app.boards import SweepBoards
from tune_food.app.classify import Classifiers, ClassifyPage
from tune_food.app.launcher import Launcher
from tune_food.app.leaderboard_page import BOARD_REFRESH_S, LeaderboardPage
from tune_food.app.sweeps_page import SWEEPS_REFRESH_S, SweepsPage
from tune_food.results.images import test_images
from tune_food.sweep.spaces import default_space_dir
from tune_food.sweepdir.state import list_sweeps, newest_sweep

EXAMPLES_PER_CLASS = 2     # test images per class offered as examples
PICKER = "tf-picker"       # the CSS class of the sweep and trial dropdowns
#: the page's CSS (pass to ``demo.launch(css=...)``): a picker's text stops before its
#: arrow (Gradio draws the arrow over the input's last 40 px) and ends in an ellipsis
#: when it is longer than the picker
CSS = f"""
.{PICKER} input {{ padding-right: 44px !important; text-overflow: ellipsis; }}
"""


@dataclass
class AppConfig:
    """What :func:`build_app` serves."""

    results_dir: str
    sweep: str | None = None          # the sweep shown first (a name under results_dir)
    spaces_dir: str | None = None     # default: the repository's search_spaces/
    data_dir: str | None = None       # passed to sweeps started from the page
    cache_dir: str | None = None      # passed to sweeps started from the page


def theme():
    """Gradio's default theme on the system's fonts (the default would fetch Google
    Fonts from the internet)."""
    import gradio as gr  # lazy: optional dependency: Gradio (~3.5 s) only once the page is built

    return gr.themes.Default(font=["system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial",
                                   "sans-serif"],
                             font_mono=["ui-monospace", "SFMono-Regular", "Menlo",
                                        "monospace"])


def default_spaces_dir() -> str:
    """The repository's ``search_spaces/`` (:func:`tune_food.sweep.spaces.default_space_dir`)."""

    return default_space_dir()


def build_app(config: AppConfig):
    """The Gradio ``Blocks`` of the page, and the folders it must be allowed to serve.

    Returns:
        ``(demo, allowed_paths)``: pass ``allowed_paths`` (and :data:`CSS`) to
        ``demo.launch``. The demo's
        attribute ``tune_food`` holds the ``launcher``, the ``classifiers``, the sweep
        shown ``first`` and its rank-1 trial ``trial0``.
    """
    import gradio as gr  # lazy: optional dependency: Gradio (~3.5 s) only once the page is built

    results_dir = os.path.abspath(config.results_dir)
    launcher = Launcher(results_dir, config.spaces_dir or default_spaces_dir(),
                        config.data_dir, config.cache_dir)
    classifiers = Classifiers()
    boards = SweepBoards(results_dir)
    pages = SimpleNamespace(classify=ClassifyPage(boards, classifiers),
                            board=LeaderboardPage(boards, classifiers),
                            sweeps=SweepsPage(launcher))
    sweeps = list_sweeps(results_dir)
    first = config.sweep if config.sweep in sweeps else newest_sweep(results_dir)
    examples = _examples(os.path.join(results_dir, first)) if first else []
    allowed = sorted({results_dir, pages.board.exports_dir}
                     | {os.path.dirname(p) for p in examples}
                     | {os.path.dirname(os.path.realpath(p)) for p in examples})
    with gr.Blocks(title="tune_food") as demo:
        with gr.Row():
            gr.Markdown("## tune_food: try the models of a sweep, read its leaderboard, run "
                        "sweeps")
            sweep_dd = gr.Dropdown(sweeps, value=first, label="sweep", allow_custom_value=True,
                                   elem_id="sweep", elem_classes=[PICKER], scale=0,
                                   min_width=440)   # a name of 40 characters shows whole
        with gr.Tab("Classify", id="classify"):
            classify = pages.classify.layout(first, examples)
        with gr.Tab("Leaderboard", id="leaderboard"):
            board = pages.board.layout()
        with gr.Tab("Sweeps", id="sweeps"):
            sweeps_ui = pages.sweeps.layout()
        _wire(demo, pages, sweep_dd, classify, board, sweeps_ui)
    demo.queue(default_concurrency_limit=1)
    demo.tune_food = {"launcher": launcher, "classifiers": classifiers, "first": first,
                      "trial0": classify.trial0}
    return demo, allowed


def _examples(exp_dir: str) -> list[str]:
    """The first :data:`EXAMPLES_PER_CLASS` test images of each class of a sweep."""
    by_class: dict[str, list[str]] = {}
    for p in test_images(exp_dir):
        by_class.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
    return [p for ps in by_class.values() for p in ps[:EXAMPLES_PER_CLASS]]


def _wire(demo, pages: SimpleNamespace, sweep_dd, c: SimpleNamespace, b: SimpleNamespace,
          s: SimpleNamespace) -> None:
    """The events of the page (inside ``demo``): ``c``, ``b``, ``s`` are the components
    of the Classify, Leaderboard and Sweeps pages. The API names are those the tests
    and clients call (``/classify``, ``/trial_view``, ``/start``, ``/stop``,
    ``/resume``, ``/confirm``, ``/log``, ``/export``)."""
    import gradio as gr  # lazy: optional dependency: Gradio (~3.5 s) only once the page is built

    classify, board, sweeps = pages.classify, pages.board, pages.sweeps
    board_out = [b.head, b.table, b.lb_img, b.cv_img, b.tr_img, b.imp_img, b.par_img, b.trial]
    sweep_dd.change(classify.on_sweep, sweep_dd, [c.trial_dd, c.note]).then(
        board.board_view, sweep_dd, board_out)
    c.run_btn.click(classify.classify_batch, [c.files, c.trial_dd, sweep_dd],
                    [c.label, c.table, c.note, c.details], api_name="classify", batch=True,
                    max_batch_size=16)
    demo.load(board.board_view, sweep_dd, board_out)
    b.trial.change(board.trial_view, [sweep_dd, b.trial],
                   [b.params, b.curves, b.wrong, b.confusion, b.trial_note])
    b.export_btn.click(board.export_zip, [sweep_dd, b.trial], b.export_file,
                       api_name="export")
    board_timer = gr.Timer(BOARD_REFRESH_S)
    board_timer.tick(board.refresh_board, sweep_dd, board_out, show_progress="hidden",
                     api_visibility="private")
    s.kind.change(lambda k: 1 if k == "grid" else 20, s.kind, s.num_samples,
                  api_visibility="private")
    s.start_btn.click(sweeps.start, [s.space, s.kind, s.name, s.num_samples, s.cpus, s.gpus],
                      [s.msg, s.table, s.watch, s.log]).then(sweeps.sweep_choices, None,
                                                             sweep_dd)
    s.stop_btn.click(sweeps.stop, s.watch, s.msg)
    s.resume_btn.click(sweeps.resume, [s.watch, s.cpus, s.gpus], s.msg)
    b.confirm_btn.click(sweeps.confirm, [sweep_dd, s.cpus, s.gpus], b.confirm_msg,
                        api_name="confirm")
    s.watch.change(lambda w: sweeps.launcher.log(w) if w else "", s.watch, s.log,
                   api_name="log")
    sweeps_timer = gr.Timer(SWEEPS_REFRESH_S)
    sweeps_timer.tick(sweeps.sweeps_tick, s.watch, [s.table, s.watch, s.log],
                      show_progress="hidden", api_visibility="private")
    # a sweep that appears (started here) becomes selectable on the other pages
    sweeps_timer.tick(sweeps.sweep_choices, None, sweep_dd, show_progress="hidden",
                      api_visibility="private")
    # a running sweep's first checkpoints become classifiable without a reload
    board_timer.tick(classify.refresh_trials, [sweep_dd, c.trial_dd], [c.trial_dd, c.note],
                     show_progress="hidden", api_visibility="private")
