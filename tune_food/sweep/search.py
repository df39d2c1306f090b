"""The search algorithm and the scheduler of a sweep (Ray Tune's own), checked up front.

* :func:`make_search`: ``(search_alg, scheduler, num_samples)`` for the ``Tuner``:
  every combination of a grid, Optuna's TPE or random sampling; FIFO or ASHA.
* :func:`check_search`: the search algorithm reads the space before launch (and in
  ``--dry-run``), so a space it cannot search is an error, not a crash after the
  feature extraction.
* :func:`asha_rungs`: the epochs at which ASHA may stop a trial (trials checkpoint
  there, so an early-stopped trial has the checkpoint of the epoch it stopped at).
* The search algorithms are those of :mod:`tune_food.sweep.moved_sweep` (a workaround
  for Ray Tune: a sweep resumed from a moved or copied folder creates its remaining
  trials there, not in the folder the search algorithm's saved state remembers).
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tune_food.common.errors import SweepError
from tune_food.sweep.moved_sweep import (
    Location,
    RelocatableSearchGenerator,
    RelocatableVariants,
)
from tune_food.sweep.options import OPTUNA_IN_FLIGHT, SweepOptions
from tune_food.sweep.spaces import SearchSpace

ASHA_GRACE, ASHA_REDUCTION = 2, 3   # ASHA: epochs before a first stop, keep 1 in 3


def asha_rungs(max_t: int, grace_period: int, reduction_factor: int) -> tuple[int, ...]:
    """The epochs at which Ray Tune's ``ASHAScheduler`` (one bracket) may stop a trial:
    ``grace_period * reduction_factor**k`` below ``max_t`` (Ray's ``_Bracket``:
    ``int(log(max_t / grace) / log(rf) + 1)`` rungs), plus ``max_t``."""
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return tuple(sorted({grace_period * reduction_factor ** k for k in range(count)} | {max_t}))


def _searcher(search: str | None, seed: int, max_concurrent: int, history=None):
    """The bare Ray Tune ``Searcher`` of ``--search`` (None for grid and random).
    ``history``: a :class:`tune_food.sweep.history.History` whose completed trials the
    Optuna study holds before its first suggestion (Ray Tune's ``points_to_evaluate``
    with ``evaluated_rewards``)."""
    if search != "optuna":
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # no line per study and trial
    earlier = dict(points_to_evaluate=history.points, evaluated_rewards=history.rewards) \
        if history is not None and history.points else {}
    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed), **earlier)
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent or OPTUNA_IN_FLIGHT)


def make_search(space: SearchSpace, options: SweepOptions, history=None,
                samples: int | None = None, location: Location | None = None
                ) -> tuple[Any, Any, int]:
    """``(search_alg, scheduler, num_samples)`` for ``tune.TuneConfig``, as ``options``
    resolve them: ``search`` None (grid), ``"optuna"`` (TPE seeded by ``seed``, at most
    ``max_concurrent`` or :data:`~tune_food.sweep.options.OPTUNA_IN_FLIGHT` suggestions in
    flight) or ``"random"`` (seeded); :attr:`~tune_food.sweep.options.SweepOptions.scheduler_name`
    (ASHA on ``epoch``: grace period :data:`ASHA_GRACE`, reduction factor
    :data:`ASHA_REDUCTION`); :attr:`~tune_food.sweep.options.SweepOptions.samples`, or
    ``samples`` when given (an extended search runs only the trials it adds).
    ``history``: earlier completed trials the Optuna study starts from (see :func:`_searcher`).
    ``location``: where the sweep's trials go (the search algorithm places every trial it
    creates there: :class:`~tune_food.sweep.moved_sweep.Relocatable`), None to leave them
    where Ray puts them.
    """
    max_epochs = max(int(v) for v in space.values["epochs"])
    sched = (ASHAScheduler(time_attr="epoch", max_t=max_epochs,
                           grace_period=min(ASHA_GRACE, max_epochs),
                           reduction_factor=ASHA_REDUCTION)
             if options.scheduler_name == "asha" else FIFOScheduler())
    samples = options.samples if samples is None else samples
    searcher = _searcher(options.search, options.seed, options.max_concurrent, history)
    if searcher is not None:
        return RelocatableSearchGenerator(searcher, location=location), sched, samples
    if options.search == "random":
        return RelocatableVariants(random_state=options.seed, location=location), sched, samples
    return RelocatableVariants(location=location), sched, samples


def rungs_of(scheduler, space: SearchSpace) -> tuple[int, ...]:
    """Epochs after which trials must checkpoint for ``scheduler`` (ASHA's rungs)."""
    if not isinstance(scheduler, ASHAScheduler):   # (an alias of AsyncHyperBandScheduler)
        return ()
    max_epochs = max(int(v) for v in space.values["epochs"])
    return asha_rungs(max_epochs, min(ASHA_GRACE, max_epochs), ASHA_REDUCTION)


def check_search(space: SearchSpace, search: str | None, seed: int, max_concurrent: int,
                 history=None) -> None:
    """Let the search algorithm read the space now, as the Tuner would (and, given a
    ``history``, add its earlier trials to Optuna's study).

    Raises:
        SweepError: e.g. ``grid_search`` parameters with ``--search optuna``, or an
            earlier trial whose value lies outside this space.
    """
    searcher = _searcher(search, seed, max_concurrent, history)
    if searcher is None:
        return
    try:
        searcher.set_search_properties(space.metric, space.mode, dict(space.param_space))
    except (ValueError, TypeError) as exc:
        if history is not None and history.points:
            raise SweepError(f"{space.path}: a trial of {', '.join(history.sources)} lies "
                             f"outside this space ({' '.join(str(exc).split())[:200]}); widen "
                             "the space to hold the earlier trials") from None
        grids = [k for k in space.varied if isinstance(space.raw["parameters"].get(k), dict)
                 and "grid_search" in space.raw["parameters"][k]]
        hint = (f"; replace grid_search by choice for {', '.join(grids)}, or run it with --grid"
                if grids else "")
        raise SweepError(f"{space.path}: --search {search} cannot search this space "
                         f"({' '.join(str(exc).split())[:200]}){hint}") from None
