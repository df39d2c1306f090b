"""Generated parts of the docs pages, kept in the Markdown files themselves so the pages
read whole on GitHub, and re-rendered from the code (a MkDocs hook) when the site is built:

* ``<!-- help: COMMAND -->`` ... ``<!-- /help -->``: that command's ``--help`` (``COMMAND``
  as typed after ``tune-food``; ``tune-food`` alone is the entry point's own help);
* ``<!-- file: PATH -->`` ... ``<!-- /file -->``: the repository file ``PATH`` (e.g. a
  shipped search space), as a fenced block.

``python docs/hooks.py`` rewrites the pages in place; ``tests/test_docs.py`` fails when a
page is not what this renders (the code changed, the page was not refreshed).
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import re
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = re.compile(r"(<!-- (help|file): ([^>]+?) -->\n).*?(<!-- /\2 -->)", re.S)
LANGUAGES = {".yaml": "yaml", ".yml": "yaml", ".py": "python"}


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


def _block(kind: str, what: str) -> str:
    if kind == "help":
        return f"```text\n{command_help(what)}\n```\n"
    with open(os.path.join(REPO, what), encoding="utf-8") as fh:
        body = fh.read().rstrip("\n")
    return f"```{LANGUAGES.get(os.path.splitext(what)[1], 'text')}\n{body}\n```\n"


def render(markdown: str) -> str:
    """``markdown`` with every generated block rendered afresh."""
    return BLOCK.sub(lambda m: m[1] + _block(m[2], m[3]) + m[4], markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    """MkDocs hook: the page as :func:`render` gives it."""
    return render(markdown)


def main() -> int:
    """Rewrite every ``docs/*.md`` whose generated blocks are out of date; print which."""
    for path in sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = render(text)
        if new != text:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(new)
            print(f"updated {os.path.relpath(path, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
