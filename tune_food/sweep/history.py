"""Earlier trials for a new Optuna study: a warm start from another sweep, and a search
extended with more trials.

Both hand Ray Tune's ``OptunaSearch`` the completed trials (the ranked rows of a
sweep's leaderboard: each its sampled hyperparameters and the ranking metric of the
epoch it shows) as ``points_to_evaluate`` / ``evaluated_rewards``, its public API:
``OptunaSearch`` adds them to its study as completed Optuna trials before it suggests
anything (:func:`tune_food.sweep.search.make_search`).

* ``--warm-start results/<sweep>`` (:func:`warm_start`): refused, before anything
  launches, when the earlier sweep ranked by another metric, on other images (the
  validation set's images when a validation metric ranks, the test set's otherwise,
  compared by content: ``sweep.json``'s ``validation`` / ``test_sets``) or sampled other
  hyperparameters.
* ``--resume --num-samples N`` of a search (:func:`own_trials`): the sweep's own
  completed trials (and those of its warm start) seed the new study that samples the
  remaining trials.
* ``--resume --space wider.yaml`` of a grid (:func:`widen_grid`): only the combinations
  the sweep had not planned run; a space that changes what ran (the metric, a constant,
  a value that ran, the test set) is refused with one line naming the difference.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from tune_food.common.errors import SweepError
from tune_food.results.importance import completed
from tune_food.results.outputs import build_outputs
from tune_food.sweep.search import check_search
from tune_food.sweep.spaces import SearchSpace, load_space
from tune_food.sweepdir.columns import TRIAL_ID, TRIAL_NAME
from tune_food.sweepdir.record import Extension, SweepState
from tune_food.sweepdir.state import check_sweep_folder, is_sweep, read_state
from tune_food.train.hparams import PARAMS


@dataclass
class History:
    """Completed trials handed to a new Optuna study."""

    points: list[dict[str, Any]] = field(default_factory=list)   # sampled hyperparameters
    rewards: list[float] = field(default_factory=list)           # the metric of each point
    sources: list[str] = field(default_factory=list)             # the sweep folders read

    def __add__(self, other: History) -> History:
        return History(self.points + other.points, self.rewards + other.rewards,
                       self.sources + other.sources)


def completed_trials(sweep_dir: str, space: SearchSpace) -> History:
    """The completed trials of the sweep at ``sweep_dir`` as Optuna points of ``space``
    (its sampled parameters) and rewards (``space.metric``), read from the trial folders
    (:func:`tune_food.results.outputs.build_outputs`, as ``report`` does). Each point is
    the trial's own configuration, as the search drew it (a ``null`` stays None; the
    leaderboard's columns show the default it stands for).

    Raises:
        SweepError: the folder has no trial yet, or a completed trial lacks a sampled
            parameter (it was sampled from another space).
    """
    state = read_state(sweep_dir)
    outputs = build_outputs(sweep_dir, state)
    rows = completed(outputs.board, space.metric)
    points = []
    for _, row in rows.iterrows():
        config = outputs.configs.get(str(row[TRIAL_ID]), {})
        missing = [k for k in space.sampled if k not in config]
        if missing:
            raise SweepError(f"trial {row[TRIAL_NAME]} of {sweep_dir} has no "
                             f"{', '.join(missing)} in its configuration: it was not sampled "
                             f"from a space that samples {', '.join(space.sampled)}")
        points.append({k: config[k] for k in space.sampled})
    rewards = [float(v) for v in rows[space.metric]] if points else []   # none completed
    return History(points, rewards, [sweep_dir])


def _varied(state: SweepState, sweep_dir: str) -> list[str]:
    """The sampled parameters of the sweep at ``sweep_dir`` (its own ``space.yaml``)."""
    return load_space(state.space_path(sweep_dir)).sampled


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


def check_same_ranking(source: SweepState, plan, space: SearchSpace, source_dir: str) -> None:
    """The sweep ``source`` (its ``sweep.json``) ranked what ``space`` ranks, on the same
    images (``plan``: the new sweep's :class:`~tune_food.sweep.plan.Plan`), with the same
    sampled parameters.

    Raises:
        SweepError: one line naming the first difference.
    """
    where = f"--warm-start {source_dir}"
    if (source.metric, source.mode) != (space.metric, space.mode):
        raise SweepError(f"{where} ranked by {source.metric} ({source.mode}), this "
                         f"sweep by {space.metric} ({space.mode}): its rewards would mislead "
                         "the search; warm-start from a sweep ranked by the same metric")
    what, then = ranking_images(source.validation, source.test_sets, space.metric)
    now = ranking_images(plan.validation.summary(), plan.test_sets, space.metric)[1]
    if then is None:
        raise SweepError(f"{where}: its sweep.json does not record the hashes of its {what} "
                         "(a sweep of an older tune_food): it cannot be checked that it "
                         "ranked on the same images; warm-start from a newer sweep")
    if then != now:
        raise SweepError(f"{where} ranked on another {what} than this sweep ({_count(then)} "
                         f"images then, {_count(now)} now, other bytes): its rewards are not "
                         f"comparable; use the same data and val_fraction, or no --warm-start")
    theirs, ours = _varied(source, source_dir), space.sampled
    if sorted(theirs) != sorted(ours):
        raise SweepError(f"{where} sampled {', '.join(theirs) or 'nothing'}, this space "
                         f"samples {', '.join(ours) or 'nothing'}: Optuna needs the same "
                         "parameter names; warm-start from a sweep of the same parameters")


def _count(fingerprint: Any) -> int:
    """The number of images a :func:`ranking_images` fingerprint stands for."""
    if fingerprint and isinstance(fingerprint[0], tuple):   # test sets: (images, hash)
        return sum(images for images, _ in fingerprint)
    return len(fingerprint or [])


def warm_start(source_dir: str, plan, options) -> History:
    """The completed trials of sweep ``source_dir`` for ``--warm-start``, checked against
    the new sweep (``plan``, ``options``: :class:`~tune_food.sweep.options.SweepOptions`).

    Raises:
        SweepError: not ``--search optuna``; not a sweep folder; other metric, images or
            parameter names (:func:`check_same_ranking`); no completed trial in it.
    """
    if options.search != "optuna":
        raise SweepError(f"--warm-start needs --search optuna (it hands the earlier trials to "
                         f"Optuna's study); got {'--grid' if options.grid else '--search ' + str(options.search)}")
    check_sweep_folder(source_dir)
    source = read_state(source_dir)
    check_same_ranking(source, plan, plan.space, source_dir)
    history = completed_trials(source_dir, plan.space)
    if not history.points:
        raise SweepError(f"--warm-start {source_dir} has no completed trial to start from")
    bad = [(p, r) for p, r in zip(history.points, history.rewards) if not math.isfinite(r)]
    if bad:
        raise SweepError(f"--warm-start {source_dir}: a completed trial has "
                         f"{plan.space.metric} = {bad[0][1]}; Optuna needs finite values")
    return history


def extension(options, sweep_dir: str) -> int | None:
    """How many trials the resumed search sweep at ``sweep_dir`` planned before, when
    ``--resume --num-samples N`` asks for more (``N`` above it: the sweep adds the
    difference); None for a plain resume (no ``--num-samples``, or the same number).

    Raises:
        SweepError: ``N`` below the trials the sweep planned (a sweep never drops trials).
    """
    if not (options.resume and options.search and "num_samples" in options.given):
        return None
    planned = read_state(sweep_dir).planned
    planned = planned.trials if planned is not None else 0
    if options.num_samples < planned:
        raise SweepError(f"--num-samples {options.num_samples}: sweep {options.name!r} holds "
                         f"{planned} trials already and never drops any; pass more than "
                         f"{planned} to add trials, or leave --num-samples out to resume it")
    return planned if options.num_samples > planned else None


def pending_extension(sweep_dir: str) -> Extension | None:
    """The last extension of the sweep at ``sweep_dir`` when its new trials never began
    (the extension was interrupted while it finished the trials planned before it): a
    plain ``--resume`` finishes it. None otherwise (entries of older sweeps count as
    begun; :meth:`~tune_food.sweepdir.record.SweepState.pending_extension`)."""
    return read_state(sweep_dir).pending_extension()


def check_extension(options, plan, sweep_dir: str) -> None:
    """Before anything launches, hand the extended search's Optuna study the sweep's
    completed trials as the extension will (:func:`own_trials`), so that a trial it
    cannot take is refused now, with ``sweep.json`` untouched.

    Raises:
        SweepError: a completed trial lies outside the space, or lacks a sampled parameter.
    """
    if options.search != "optuna":
        return
    history = own_trials(sweep_dir, plan.space, read_state(sweep_dir))
    check_search(plan.space, options.search, options.seed, options.max_concurrent, history)


def own_trials(sweep_dir: str, space: SearchSpace, state: SweepState) -> History:
    """The history an extended search's new study starts from: the completed trials of
    the sweep at ``sweep_dir`` (every Tuner run of it) and, when it was warm-started
    (``state.warm_start``), those of that sweep where it still is."""
    history = completed_trials(sweep_dir, space)
    source = state.warm_start.sweep if state.warm_start else None
    if source and is_sweep(source):
        history = completed_trials(source, space) + history
    return history


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


def widen_grid(options, plan, sweep_dir: str, name: str) -> list[dict[str, Any]] | None:
    """On ``--resume --space wider.yaml`` of a grid sweep: the configurations of
    ``plan`` (the wider grid's) that the sweep at ``sweep_dir`` had not planned; None for
    any other resume.

    Raises:
        SweepError: the wider space changes what ran (:func:`space_difference`).
    """
    if not (options.resume and options.grid and "space" in options.given):
        return None
    state = read_state(sweep_dir)
    old = load_space(state.space_path(sweep_dir))
    diff = space_difference(old, plan.space)
    if diff:
        raise SweepError(f"--space {options.space} changes what sweep {name!r} ran: {diff}; "
                         "a wider grid may only add values (start a new sweep with another "
                         "--name to change them)")
    done = {_key(c) for c in (state.planned.configs if state.planned else [])}
    return [c for c in plan.trials if _key(c) not in done]
