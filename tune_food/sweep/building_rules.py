"""The rules of building on a sweep, as pure functions: what a new sweep may take from an
earlier one (``--warm-start``), how many trials an extended search adds (``--resume
--num-samples N``) and what a wider grid may change (``--resume --space wider.yaml``).

Nothing here reads a file, starts Ray or builds a leaderboard: each rule takes the values
:mod:`tune_food.sweep.history` read from the sweep folders (``sweep.json``'s record, the
search spaces, the completed trials) and answers, or raises one
:class:`~tune_food.common.errors.SweepError` line naming the first difference. That keeps
them under mutation testing with quick tests (``[tool.mutmut]`` in pyproject.toml).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from tune_food.common.errors import SweepError
from tune_food.sweep.spaces import SearchSpace
from tune_food.sweepdir.record import Planned, SweepState
from tune_food.train.hparams import PARAMS


@dataclass
class History:
    """Completed trials handed to a new Optuna study."""

    points: list[dict[str, Any]] = field(default_factory=list)   # sampled hyperparameters
    rewards: list[float] = field(default_factory=list)           # the metric of each point
    sources: list[str] = field(default_factory=list)             # the sweep folders read

    def __add__(self, other: History) -> History:
        """Both histories, ``self``'s trials first (their order is the study's)."""
        return History(self.points + other.points, self.rewards + other.rewards,
                       self.sources + other.sources)


# ---------------------------------------------------------------------- --warm-start

def ranking_images(validation: dict | None, test_sets: dict | None,
                   metric: str) -> tuple[str, Any]:
    """``(what, fingerprint)`` of the images that rank a sweep (its ``validation``
    summary and ``test_sets``, as ``sweep.json`` records them): the validation images'
    hashes for a ``val_*`` metric, else the fingerprints of its test sets, whatever their
    names (None where ``sweep.json`` does not record them)."""
    if metric.startswith("val_"):
        return "validation set", (validation or {}).get("sha256")
    sets = test_sets
    return "test set", None if sets is None else sorted(
        (int(v["images"]), v["sha256"]) for v in sets.values())


def _count(fingerprint: Any) -> int:
    """The number of images a :func:`ranking_images` fingerprint stands for."""
    if fingerprint and isinstance(fingerprint[0], tuple):   # test sets: (images, hash)
        return sum(images for images, _ in fingerprint)
    return len(fingerprint or [])


def check_warm_start_search(options) -> None:
    """``--warm-start`` hands the earlier trials to Optuna's study: it needs ``--search
    optuna`` (``options``: :class:`~tune_food.sweep.options.SweepOptions`).

    Raises:
        SweepError: another search, or a grid.
    """
    if options.search != "optuna":
        raise SweepError(f"--warm-start needs --search optuna (it hands the earlier trials to "
                         f"Optuna's study); got {'--grid' if options.grid else '--search ' + str(options.search)}")


def check_same_metric(where: str, source: SweepState, space: SearchSpace) -> None:
    """The earlier sweep (``source``, its ``sweep.json``) ranked by ``space``'s metric,
    in its direction (``where``: the flag that names it, for the message).

    Raises:
        SweepError: another metric or mode: its rewards would mislead the search.
    """
    if (source.metric, source.mode) != (space.metric, space.mode):
        raise SweepError(f"{where} ranked by {source.metric} ({source.mode}), this "
                         f"sweep by {space.metric} ({space.mode}): its rewards would mislead "
                         "the search; warm-start from a sweep ranked by the same metric")


def check_same_images(where: str, source: SweepState, validation: dict | None,
                      test_sets: dict | None, metric: str) -> None:
    """The earlier sweep ranked on the images the new sweep ranks by ``metric`` on
    (``validation``: its validation set's summary; ``test_sets``: its test sets'
    fingerprints), compared by content (:func:`ranking_images`).

    Raises:
        SweepError: ``source`` does not record them (an older sweep), or they differ.
    """
    what, then = ranking_images(source.validation, source.test_sets, metric)
    now = ranking_images(validation, test_sets, metric)[1]
    if then is None:
        raise SweepError(f"{where}: its sweep.json does not record the hashes of its {what} "
                         "(a sweep of an older tune_food): it cannot be checked that it "
                         "ranked on the same images; warm-start from a newer sweep")
    if then != now:
        raise SweepError(f"{where} ranked on another {what} than this sweep ({_count(then)} "
                         f"images then, {_count(now)} now, other bytes): its rewards are not "
                         f"comparable; use the same data and val_fraction, or no --warm-start")


def check_same_parameters(where: str, theirs: list[str], ours: list[str]) -> None:
    """The earlier sweep sampled the parameters the new space samples (``theirs``,
    ``ours``: their names), in any order: Optuna's study is keyed by the names.

    Raises:
        SweepError: other names.
    """
    if sorted(theirs) != sorted(ours):
        raise SweepError(f"{where} sampled {', '.join(theirs) or 'nothing'}, this space "
                         f"samples {', '.join(ours) or 'nothing'}: Optuna needs the same "
                         "parameter names; warm-start from a sweep of the same parameters")


def check_warm_start_trials(history: History, metric: str, source_dir: str) -> None:
    """The earlier sweep's completed trials can start a study: at least one, and each
    reward (its ``metric``) a finite number.

    Raises:
        SweepError: no completed trial, or a reward that is NaN or infinite.
    """
    if not history.points:
        raise SweepError(f"--warm-start {source_dir} has no completed trial to start from")
    bad = [(p, r) for p, r in zip(history.points, history.rewards) if not math.isfinite(r)]
    if bad:
        raise SweepError(f"--warm-start {source_dir}: a completed trial has "
                         f"{metric} = {bad[0][1]}; Optuna needs finite values")


# ---------------------------------------------------------------------- --resume --num-samples N

def extension_start(num_samples: int, planned: Planned | None, name: str) -> int | None:
    """The trials the search sweep ``name`` planned before (``planned``: its
    ``sweep.json``'s; none: 0) when ``--num-samples num_samples`` asks for more (the
    sweep adds the difference); None when it asks for as many (a plain resume).

    Raises:
        SweepError: ``num_samples`` below the trials planned (a sweep never drops trials).
    """
    before = planned.trials if planned is not None else 0
    if num_samples < before:
        raise SweepError(f"--num-samples {num_samples}: sweep {name!r} holds "
                         f"{before} trials already and never drops any; pass more than "
                         f"{before} to add trials, or leave --num-samples out to resume it")
    return before if num_samples > before else None


# ---------------------------------------------------------------------- --resume --space wider.yaml

def _canonical(value: Any) -> Any:
    """``value`` as values are compared across spaces: a float with an integer value is
    that integer (YAML's ``0`` and ``0.0`` are one weight decay), in lists too; booleans
    and everything else as they are."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _key(config: dict) -> str:
    """A grid configuration as a comparable string (every hyperparameter, JSON)."""
    return json.dumps({k: _canonical(config.get(k)) for k in PARAMS}, sort_keys=True,
                      default=str)


def _values(values: list) -> list[str]:
    """A parameter's values in a space as comparable strings (:func:`_canonical`, JSON)."""
    return [json.dumps(_canonical(v), sort_keys=True, default=str) for v in values]


def space_difference(old: SearchSpace, new: SearchSpace) -> str | None:
    """What ``new`` changes of what ``old`` ran (None when it only adds values): the
    metric, the test set, a constant, or values that ran and are missing."""
    if (old.metric, old.mode) != (new.metric, new.mode):
        return f"the metric ({old.metric} ({old.mode}) then, {new.metric} ({new.mode}) now)"
    for key in PARAMS:
        then, now = _values(old.values[key]), _values(new.values[key])
        gone = [v for v in then if v not in now]
        if not gone:
            continue
        what = "the test set (parameters.test_data" if key == "test_data" else \
            f"the constant parameters.{key}" if len(then) == 1 else f"parameters.{key}"
        if key == "test_data":
            return f"{what}: {', '.join(then)} then, {', '.join(now)} now)"
        return f"{what}: {', '.join(gone)} ran and is not in the new space"
    return None


def check_wider_space(old: SearchSpace, new: SearchSpace, space_file: str, name: str) -> None:
    """``--space space_file`` (``new``) only adds values to the grid sweep ``name`` ran
    (``old``: its own ``space.yaml``).

    Raises:
        SweepError: it changes what ran (:func:`space_difference`).
    """
    diff = space_difference(old, new)
    if diff:
        raise SweepError(f"--space {space_file} changes what sweep {name!r} ran: {diff}; "
                         "a wider grid may only add values (start a new sweep with another "
                         "--name to change them)")


def new_configurations(trials: list[dict[str, Any]],
                       planned: Planned | None) -> list[dict[str, Any]]:
    """The configurations of ``trials`` (the wider grid's, in its order) that ``planned``
    (the sweep's) does not hold, compared as :func:`_key` compares them."""
    done = {_key(c) for c in (planned.configs if planned else [])}
    return [c for c in trials if _key(c) not in done]
