"""The statuses a sweep folder records, as string enums: the words themselves are the
format (``sweep.json``'s ``status``, the leaderboard's ``status`` column, Ray Tune's
saved trial status), so each member *is* its word (``SweepStatus.FINISHED ==
"finished"``) and is written as it (``str()``, ``format()``, ``json.dumps``).

This module is the one place those words are spelled; ``tests/test_structure.py``
fails on a status word written as a string anywhere else in the package.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    """A member that is its word everywhere a string goes (Python 3.10's ``str, Enum``
    formats as ``Class.MEMBER``; 3.11's ``StrEnum`` is not there yet)."""

    def __str__(self) -> str:
        return str.__str__(self)

    __format__ = str.__format__


class SweepStatus(_Word):
    """``sweep.json``'s ``status``: what became of the sweep as a whole."""

    RUNNING = "running"            # a driver runs it (or it was killed: report finds out)
    INTERRUPTED = "interrupted"    # stopped (Ctrl-C, SIGTERM) or some trial did not end
    FINISHED = "finished"          # every trial ended, none with an error
    FINISHED_WITH_ERRORS = "finished with errors"   # every trial ended, some raised
    FAILED = "failed"              # something raised before the trials ended (+ error)


class TrialStatus(_Word):
    """The leaderboard's ``status`` of a trial: the truth about how it ended
    (``results.leaderboard.trial_status`` decides it; docs/architecture.md, decision 8)."""

    TERMINATED = "TERMINATED"          # ran all its epochs
    EARLY_STOPPED = "EARLY_STOPPED"    # the scheduler (ASHA) stopped it
    INTERRUPTED = "INTERRUPTED"        # stopped by the user, a crash or a killed driver
    NOT_STARTED = "NOT_STARTED"        # planned, never reported an epoch
    ERROR = "ERROR"                    # raised (after its retries)


#: trials whose results are complete: only these are ranked
RANKED_STATUSES = (TrialStatus.TERMINATED, TrialStatus.EARLY_STOPPED)


class RayStatus(_Word):
    """Ray Tune's own status of a trial (``Trial.status``, saved in its experiment
    state): ``TERMINATED`` both for a trial that ran all its epochs and for one its
    scheduler stopped."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"
    NOT_CREATED = "NOT_CREATED"   # tune_food's: a planned trial Ray Tune never created


#: Ray statuses of a trial that ended (one that did not is resumed by ``--resume``)
RAY_ENDED = (RayStatus.TERMINATED, RayStatus.ERROR)
