"""Pieces every CLI of tune_food shares (sweep, report, predict, app), kept free of
heavy imports so that ``--help`` and argument errors answer at once.

* :class:`Parser`: argparse that reports a usage error as one line on stderr, exit 2.
* :func:`path_arg`: the ``type=`` of every path flag: ``~`` and ``$VARS`` expanded
  the way a shell user expects (argparse would keep ``~/res`` literally).
* :func:`cli_call`: the environment check, then the command's body; a
  :class:`~tune_food.common.errors.TuneFoodError` becomes one line on stderr and exit 2.
* :func:`exit_program`, :func:`quiet_broken_pipe`: how a CLI ends as a program.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import signal
import sys

from tune_food.common.environment import check_environment, version_string
from tune_food.common.errors import TuneFoodError, one_line

MODULE_PREFIX = "python -m tune_food."   # a command as a module ...
CONSOLE = "tune-food"                    # ... and as a subcommand of the console command


class _Version(argparse.Action):
    """``--version``: print :func:`tune_food.common.environment.version_string` and exit 0 (read
    when asked, so building a parser reads no package metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print tune_food's version, where it is installed, and the versions "
                 "of Python, torch, torchvision and Ray, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):

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


# ------------------------------------------------------------------ running a CLI

def cli_call(prog: str, debug: bool, fn, *args, imports: tuple[str, ...] = ()) -> int:
    """Check the environment (:func:`tune_food.common.environment.check_environment`, which then
    imports ``imports``), then run a CLI body; a :class:`TuneFoodError` (or an
    ``OSError`` no check foresaw, e.g. a full disk) becomes one line on stderr and exit 2.

    ``fn(*args)`` returns the exit code. With ``debug`` the exception propagates with its
    traceback instead.
    """

    try:
        check_environment(imports)
        return fn(*args)
    except TuneFoodError as exc:
        if debug:
            raise
        print(f"{program(prog)}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:   # a file the checks could not foresee (disk full, permissions)
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{program(prog)}: error: {exc.strerror or exc}{where} (--debug shows where)",
              file=sys.stderr)
        return 2


def exit_program(code: int) -> None:
    """End a CLI run as a program with exit status ``code``, skipping the interpreter's
    final cyclic garbage collection (``gc.freeze()``, then ``sys.exit``).

    After a sweep the driver holds about 700,000 objects (Ray Tune's results, pandas,
    matplotlib); collecting them while the interpreter shuts down took about 4 s, after
    every output was written: 40 % of the time a Ctrl-C took to give the prompt back
    (10 s -> 6.5 s measured). Objects are still freed by reference counting and files are
    closed by their owners before ``main`` returns; only garbage cycles are left to the OS.
    """
    no_colour_reset_at_exit()
    gc.freeze()
    sys.exit(code)


def no_colour_reset_at_exit() -> None:
    """Keep ``ESC[0m`` off the terminal after the program's last line.

    Workaround for ray-project/ray#17979 (open since 2021): ``ray.init`` imports Ray's
    ``cli_logger``, which calls ``colorama.init(strip=False)`` at import; colorama then
    registers an exit handler that writes ``ESC[0m`` to stdout when it is a terminal,
    after everything the CLI printed. The handler is unregistered here through
    ``atexit``'s public API (``tests/test_front_door.py`` checks that a bare ``import
    ray`` still writes it, i.e. that this is still needed). No-op without colorama.
    """
    colorama = sys.modules.get("colorama")
    reset = getattr(getattr(colorama, "initialise", None), "reset_all", None)
    if reset is not None:
        atexit.unregister(reset)


def quiet_broken_pipe() -> None:
    """Let ``... | head`` end a CLI quietly, as Unix tools do, instead of with a
    ``BrokenPipeError`` traceback (restores the default SIGPIPE action)."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
