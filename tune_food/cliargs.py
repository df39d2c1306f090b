"""Pieces every CLI of tune_food shares (sweep, report, predict, app), kept free of
heavy imports so that ``--help`` and argument errors answer at once.

* :class:`Parser`: argparse that reports a usage error as one line on stderr, exit 2.
* :func:`path_arg`: the ``type=`` of every path flag: ``~`` and ``$VARS`` expanded
  the way a shell user expects (argparse would keep ``~/res`` literally).
"""

from __future__ import annotations

import argparse
import os
import sys

MODULE_PREFIX = "python -m tune_food."   # a command as a module ...
CONSOLE = "tune-food"                    # ... and as a subcommand of the console command


class _Version(argparse.Action):
    """``--version``: print :func:`tune_food.environment.version_string` and exit 0 (read
    when asked, so building a parser reads no package metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print tune_food's version, where it is installed, and the versions "
                 "of Python, torch, torchvision and Ray, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from .environment import version_string

        print(version_string())   # stdout, as argparse's own "version" action
        parser.exit(0)


def program(prog: str) -> str:
    """``prog`` (``"python -m tune_food.sweep"``) as this process was started: ``"tune-food
    sweep"`` under the console command, so usage lines and errors name what was typed."""
    if os.path.basename(sys.argv[0] if sys.argv else "") == CONSOLE and \
            prog.startswith(MODULE_PREFIX):
        return f"{CONSOLE} {prog[len(MODULE_PREFIX):]}"
    return prog


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exit code 2, and
    answers ``--version``; its ``prog`` is :func:`program`'s."""

    def __init__(self, *args, **kwargs):
        if "prog" in kwargs:
            kwargs["prog"] = program(kwargs["prog"])
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action=_Version)

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def expand_path(value: str) -> str:
    """``value`` with ``~`` / ``~user`` and ``$VAR`` / ``${VAR}`` expanded. URIs
    (``s3://...``) are returned unchanged."""
    if "://" in value:
        return value
    return os.path.expanduser(os.path.expandvars(value))


def path_arg(value: str) -> str:
    """argparse ``type=`` for path flags: see :func:`expand_path`."""
    return expand_path(value)
