"""The project's exceptions.

Every problem the user can fix (a missing folder, a bad image, an unknown key in a
search space, a resource request no node can satisfy) is raised as a
:class:`TuneFoodError` subclass whose message says what is wrong, where (file, key,
path) and how to fix it. The CLIs turn these into one line on stderr and exit 2
(:func:`tune_food.common.cliargs.cli_call`).
"""

from __future__ import annotations

import sys
from typing import Any, Callable


class TuneFoodError(Exception):
    """Base class of every user-facing error in tune_food."""


class DataError(TuneFoodError):
    """A dataset is missing, malformed, or fails verification."""


class WeightsError(TuneFoodError):
    """Pretrained weights are missing or cannot be loaded."""


class SpaceError(TuneFoodError):
    """A search-space YAML file is missing, unparsable, or has bad keys/values."""


class ResourceError(TuneFoodError):
    """A resource request (CPUs, GPUs per trial) that the cluster cannot satisfy."""


class RayStartError(TuneFoodError):
    """Ray cannot be started here, or the cluster named by ``--address`` cannot be joined
    (the message names the cause and the fix; see :mod:`tune_food.sweep.ray_start`)."""


class SweepError(TuneFoodError):
    """A sweep cannot be started, resumed or reported (for example: unknown name)."""


class SweepFileError(SweepError):
    """A sweep folder's ``sweep.json`` is missing, damaged or hand-edited: the message
    names the file and the key (:class:`tune_food.sweepdir.record.SweepState`)."""


class OutputError(TuneFoodError):
    """An output path a command must not write or replace (``--force`` on a folder that
    is not an earlier output of the same command:
    :func:`tune_food.common.files.check_replaceable`)."""


def one_line(message: str) -> str:
    """``message`` on one line: a cause quoted from a library may span several."""
    return " ".join(message.split())


def optional_step(what: str, step: Callable[[], Any], warnings: list[str],
                  default: Any = None) -> Any:
    """Run ``step()``, an output a sweep can do without (a plot, the importances, the
    deployment figures, MLflow's records): when it raises, print one ``warning:`` line
    naming ``what`` and why on stderr, append it to ``warnings`` and return ``default``,
    so that the other outputs are still written and the sweep ends with its true status.
    ``KeyboardInterrupt`` and ``SystemExit`` are not caught."""
    try:
        return step()
    except Exception as exc:   # noqa: BLE001 - any failure of an optional output
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        line = f"warning: {what} failed ({type(exc).__name__}: {first}); the other outputs " \
               "are written"
        print(line, file=sys.stderr, flush=True)
        warnings.append(line)
        return default
