"""MkDocs hook: ``<!-- help: COMMAND -->`` in a page becomes that command's ``--help``,
produced by the command's own parser when the site is built, so the CLI reference can
never disagree with the code (``COMMAND`` as typed after ``tune-food``; ``tune-food``
alone is the entry point's own help)."""

from __future__ import annotations

import contextlib
import io
import os
import re

MARKER = re.compile(r"<!-- help: ([\w -]+?) -->")


def command_help(command: str) -> str:
    """What ``tune-food COMMAND --help`` prints, 76 columns wide (a code block fits).

    Raises:
        RuntimeError: the command did not print its help and exit 0.
    """
    from tune_food.__main__ import main

    os.environ["COLUMNS"] = "76"
    words = [] if command == "tune-food" else command.split()
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            main([*words, "--help"])
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(f"tune-food {command} --help exited {exc.code}") from None
    return text.getvalue().rstrip()


def on_page_markdown(markdown: str, **kwargs) -> str:
    """Replace every marker of the page with a fenced block of the command's help."""
    return MARKER.sub(lambda m: f"```text\n{command_help(m[1])}\n```", markdown)
