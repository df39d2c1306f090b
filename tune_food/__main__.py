"""``tune-food COMMAND ...`` (the console command a wheel installs) and
``python -m tune_food COMMAND ...``: one entry point for every CLI of the package.

``tune-food sweep --grid`` is ``python -m tune_food.sweep --grid``, and so on for
``report``, ``predict``, ``export``, ``app`` and ``data``: each command's own parser reads the rest
of the line. Nothing heavy is imported before the command is known.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

from tune_food.common.cliargs import Parser, exit_program, quiet_broken_pipe

PROG = "tune-food"
# command -> (module whose main() runs it, one line for --help)
COMMANDS = {
    "sweep": ("tune_food.sweep.run", "run, dry-run or resume a sweep (the grid, Optuna, random)"),
    "report": ("tune_food.report", "rebuild a sweep's leaderboard, tables and plots"),
    "predict": ("tune_food.predict", "classify photos with a sweep's best trial or a checkpoint"),
    "export": ("tune_food.export", "ship a trial as a web demo: ONNX model, Gradio app, card"),
    "app": ("tune_food.app.cli", "the web page: classify, leaderboard, start and stop sweeps"),
    "data": ("tune_food.data.cli", "cut a subset of Food-101 into the image-folder layout"),
}


def _parser() -> Parser:
    lines = "\n".join(f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items())
    parser = Parser(prog=PROG, usage=f"{PROG} COMMAND [options]  ({PROG} COMMAND --help)",
                    description=f"commands:\n{lines}",
                    formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``COMMAND``'s ``main`` on the rest of the line; returns its exit code.

    Raises:
        SystemExit: 2 after one line on stderr for an unknown or missing command; 0 after
            ``--help`` or ``--version``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        _parser().parse_args(argv)   # --help / --version exit 0, no command exits 2
    if argv[0] not in COMMANDS:
        _parser().parse_args(argv[:1])             # the unknown command: one line, exit 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


def console() -> None:
    """The ``tune-food`` console command: :func:`main` as a program."""
    quiet_broken_pipe()
    exit_program(main())


if __name__ == "__main__":
    console()
