"""The Sweeps page: the sweeps under the results folder with their status and best
result; start one (a space file and a few flags), watch its output, stop it and resume
it, through a :class:`tune_food.app.launcher.Launcher`."""

from __future__ import annotations

from types import SimpleNamespace

from tune_food.app.launcher import KINDS, Launcher
from tune_food.common.errors import TuneFoodError
from tune_food.sweepdir.state import list_sweeps

SWEEPS_REFRESH_S = 2.0     # Sweeps page: table and log refresh


class SweepsPage:
    """The Sweeps page's layout and event handlers."""

    def __init__(self, launcher: Launcher):
        self.launcher = launcher

    def layout(self) -> SimpleNamespace:
        """The page's components (inside ``gr.Tab``)."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        launcher, ui = self.launcher, SimpleNamespace()
        ui.table = gr.Dataframe(launcher.table(), interactive=False, elem_id="sweeps",
                                label="sweeps under " + launcher.results_dir)
        with gr.Row():
            ui.space = gr.Dropdown(launcher.spaces(), value=(launcher.spaces() or [None])[0],
                                   label="space file (search_spaces/)", elem_id="space")
            ui.kind = gr.Radio(list(KINDS), value="grid", label="grid or search", elem_id="kind")
            ui.name = gr.Textbox(label="name (empty: space-date-time)", elem_id="name")
        with gr.Row():
            ui.num_samples = gr.Number(1, label="num-samples (search only: trials; a grid runs "
                                       "each combination once)", precision=0, minimum=1,
                                       elem_id="num-samples")
            ui.cpus = gr.Number(1, label="cpus per trial", minimum=0.1, elem_id="cpus")
            ui.gpus = gr.Number(0, label="gpus per trial", minimum=0, elem_id="gpus")
            ui.start_btn = gr.Button("Start sweep", variant="primary", elem_id="start")
        ui.msg = gr.Markdown(elem_id="sweep-msg")
        with gr.Row():
            ui.watch = gr.Dropdown(launcher.names(), value=(launcher.names() or [None])[0],
                                   label="sweep to watch", allow_custom_value=True,
                                   elem_id="watch")
            ui.stop_btn = gr.Button("Stop (SIGINT)", elem_id="stop")
            ui.resume_btn = gr.Button("Resume", elem_id="resume")
        ui.log = gr.Textbox(label="output", lines=16, max_lines=16, autoscroll=True,
                            elem_id="log")
        return ui

    def sweeps_view(self, watch: str | None):
        """The table, the watch dropdown (``watch`` chosen if it exists) and its log."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        names = self.launcher.names()
        value = watch if watch in names else (names[0] if names else None)
        return (self.launcher.table(), gr.update(choices=names, value=value),
                self.launcher.log(value) if value else "")

    def sweeps_tick(self, watch: str | None):
        """Timer: the table, the sweeps to watch and the watched sweep's log."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        names = self.launcher.names()
        return (self.launcher.table(), gr.update(choices=names) if watch in names or not watch
                else gr.update(choices=names, value=names[0] if names else None),
                self.launcher.log(watch) if watch else gr.skip())

    def start(self, space, kind, name, num_samples, cpus, gpus):
        """Start a sweep: a message, the table, the watch dropdown on it, its log."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        try:
            name = self.launcher.start(space, kind, name, num_samples or None, cpus, gpus)
        except TuneFoodError as exc:
            return f"Not started: {exc}", gr.skip(), gr.skip(), gr.skip()
        table, dd, _ = self.sweeps_view(name)
        return (f"Started sweep **{name}** (its output follows below).", table,
                gr.update(choices=dd["choices"], value=name), self.launcher.log(name))

    def stop(self, watch):
        """SIGINT to the watched sweep; a message."""
        try:
            self.launcher.stop(watch)
        except TuneFoodError as exc:
            return f"Not stopped: {exc}"
        return f"Sent SIGINT to sweep **{watch}**: it saves its state and ends as interrupted."

    def resume(self, watch, cpus, gpus):
        """Resume the watched sweep; a message."""
        try:
            self.launcher.resume(watch, cpus, gpus)
        except TuneFoodError as exc:
            return f"Not resumed: {exc}"
        return f"Resuming sweep **{watch}** (`--resume --name {watch}`)."

    def confirm(self, sweep, cpus, gpus):
        """The Leaderboard page's "Confirm the winner": ``--resume --confirm`` of the
        sweep shown, with the Sweeps page's resources; a message."""
        try:
            self.launcher.confirm(sweep, cpus, gpus)
        except TuneFoodError as exc:
            return f"Not confirmed: {exc}"
        return (f"Confirming sweep **{sweep}** (`--resume --name {sweep} --confirm`): its "
                "configurations tied with the best, 5 new seeds each; its output is on the "
                "Sweeps page, the verdict appears here when it ends.")

    def sweep_choices(self):
        """The sweep dropdown's choices: every sweep under the results folder."""
        # lazy: optional dependency: Gradio (~3.5 s) only once the page is built
        import gradio as gr

        return gr.update(choices=list_sweeps(self.launcher.results_dir))
