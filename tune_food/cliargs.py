"""Pieces every CLI of tune_food shares (sweep, report, predict, app), kept free of
heavy imports so that ``--help`` and argument errors answer at once.

* :class:`Parser`: argparse that reports a usage error as one line on stderr, exit 2.
* :func:`path_arg`: the ``type=`` of every path flag: ``~`` and ``$VARS`` expanded
  the way a shell user expects (argparse would keep ``~/res`` literally).
"""

from __future__ import annotations

import argparse
import os


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exit code 2."""

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
