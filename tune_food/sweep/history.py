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

This module reads the sweep folders; the rules it applies to what it read (the
comparisons, the refusals and their messages) are pure functions in
:mod:`tune_food.sweep.building_rules`.
"""

from __future__ import annotations

from typing import Any

from tune_food.common.errors import SweepError
from tune_food.results.importance import completed
from tune_food.results.outputs import build_outputs

# the pure rules; History, ranking_images and space_difference were defined here first
# and are still importable from here
from tune_food.sweep.building_rules import (  # noqa: F401
    History,
    check_same_images,
    check_same_metric,
    check_same_parameters,
    check_warm_start_search,
    check_warm_start_trials,
    check_wider_space,
    extension_start,
    new_configurations,
    ranking_images,
    space_difference,
)
from tune_food.sweep.search import check_search
from tune_food.sweep.spaces import SearchSpace, load_space
from tune_food.sweepdir.columns import TRIAL_ID, TRIAL_NAME
from tune_food.sweepdir.record import Extension, SweepState
from tune_food.sweepdir.state import check_sweep_folder, is_sweep, read_state


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


def check_same_ranking(source: SweepState, plan, space: SearchSpace, source_dir: str) -> None:
    """The sweep ``source`` (its ``sweep.json``) ranked what ``space`` ranks, on the same
    images (``plan``: the new sweep's :class:`~tune_food.sweep.plan.Plan`), with the same
    sampled parameters.

    Raises:
        SweepError: one line naming the first difference.
    """
    where = f"--warm-start {source_dir}"
    check_same_metric(where, source, space)
    check_same_images(where, source, plan.validation.summary(), plan.test_sets, space.metric)
    check_same_parameters(where, _varied(source, source_dir), space.sampled)


def warm_start(source_dir: str, plan, options) -> History:
    """The completed trials of sweep ``source_dir`` for ``--warm-start``, checked against
    the new sweep (``plan``, ``options``: :class:`~tune_food.sweep.options.SweepOptions`).

    Raises:
        SweepError: not ``--search optuna``; not a sweep folder; other metric, images or
            parameter names (:func:`check_same_ranking`); no completed trial in it.
    """
    check_warm_start_search(options)
    check_sweep_folder(source_dir)
    source = read_state(source_dir)
    check_same_ranking(source, plan, plan.space, source_dir)
    history = completed_trials(source_dir, plan.space)
    check_warm_start_trials(history, plan.space.metric, source_dir)
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
    return extension_start(options.num_samples, read_state(sweep_dir).planned, options.name)


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
    check_wider_space(load_space(state.space_path(sweep_dir)), plan.space, options.space, name)
    return new_configurations(plan.trials, state.planned)
