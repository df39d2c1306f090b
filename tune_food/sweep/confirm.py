"""``--resume --name S --confirm K --confirm-seeds N``: what a confirmation retrains.

A confirmation takes a finished sweep's top ``K`` configurations by the sweep's own
ranking metric (``K`` left out: those the leaderboard cannot tell from the best,
``tied_with_best``, at most :data:`~tune_food.sweep.options.CONFIRM_AT_MOST`) and trains
each again with ``N`` new seeds, as new trials of the same sweep
(:meth:`tune_food.sweep.launch.Launch.confirmation_tuner`). The seeds are the ``N``
smallest integers no trial of the sweep used, the same for every configuration, so that
the verdict (:mod:`tune_food.results.confirm`) can pair the configurations seed by seed.
The trial a configuration comes from is not one of its seeds: it was chosen because it
scored best, and counting it would carry that luck into the verdict.

:func:`plan_confirmation` reads the sweep folder (its ``sweep.json`` and its trials, as
``report`` does; no Ray is started) and refuses, in one line, what cannot be confirmed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tune_food.common.errors import SweepError
from tune_food.results.confirm import config_key
from tune_food.results.outputs import build_outputs
from tune_food.sweep.options import CONFIRM_AT_MOST, SweepOptions
from tune_food.sweepdir.columns import RANK, TIED_WITH_BEST, TRIAL_ID
from tune_food.sweepdir.record import Confirmation
from tune_food.sweepdir.state import now, read_state
from tune_food.sweepdir.status import SweepStatus
from tune_food.train.hparams import PARAMS

#: the sweep states a confirmation starts from
CONFIRMABLE = (SweepStatus.FINISHED, SweepStatus.FINISHED_WITH_ERRORS)


def top_configurations(board, configs: dict[str, dict], k: int) -> list[str]:
    """The trial ids of the sweep's best ``k`` configurations: for each configuration its
    best-ranked trial, best first (``k`` 0: the configurations with a trial tied with the
    best, at most :data:`~tune_food.sweep.options.CONFIRM_AT_MOST`, at least rank 1's).

    Args:
        board: the sweep's leaderboard (:func:`tune_food.results.outputs.build_outputs`).
        configs: trial_id -> the configuration Ray Tune gave the trial.

    Raises:
        SweepError: ``k`` above the configurations that ran (ranked).
    """
    ranked = board[board[RANK].notna()] if RANK in board else board.iloc[0:0]
    firsts: dict[str, str] = {}   # configuration -> its best trial
    tied: set[str] = set()
    for _, row in ranked.iterrows():
        key = config_key(configs.get(str(row[TRIAL_ID]), {}))
        firsts.setdefault(key, str(row[TRIAL_ID]))
        if pd.notna(row.get(TIED_WITH_BEST)) and bool(row[TIED_WITH_BEST]):
            tied.add(key)
    if k > len(firsts):
        raise SweepError(f"--confirm {k}: the sweep ran {len(firsts)} configuration(s) that "
                         f"completed; confirm at most {len(firsts)}")
    if not k:
        k = min(max(len(tied), 1), CONFIRM_AT_MOST, len(firsts))
    return list(firsts.values())[:k]


def new_seeds(configs: list[dict[str, Any]], n: int) -> list[int]:
    """The ``n`` smallest seeds (integers >= 0) that none of ``configs`` (every trial of
    the sweep) ran with."""
    used = {c.get("seed", PARAMS["seed"].default) for c in configs}
    seeds, candidate = [], 0
    while len(seeds) < n:
        if candidate not in used:
            seeds.append(candidate)
        candidate += 1
    return seeds


def plan_confirmation(options: SweepOptions, sweep_dir: str) -> Confirmation:
    """What ``--confirm`` retrains in the sweep at ``sweep_dir`` (``options``: the
    resumed sweep's, ``confirm`` set): the configurations, their new seeds, the trials
    before and after it, as ``sweep.json`` will record it (``started`` false).

    Raises:
        SweepError: the sweep is not finished, it was confirmed before, it has no trial
            that completed, or ``K`` is above the configurations that ran.
    """
    state = read_state(sweep_dir)
    if state.status not in CONFIRMABLE:
        raise SweepError(f"sweep {state.name!r} is {state.status}, not finished: --confirm "
                         "retrains the top configurations of a finished sweep; finish it "
                         f"first with --resume --name {state.name}")
    if state.confirmations:
        raise SweepError(f"sweep {state.name!r} was confirmed already ({state.confirmations[-1].at}); "
                         "its verdict is confirmed.csv (python -m tune_food.report prints it)")
    outputs = build_outputs(sweep_dir, state)
    if outputs.board.empty or RANK not in outputs.board or not outputs.board[RANK].notna().any():
        raise SweepError(f"sweep {state.name!r} has no trial that completed: nothing to confirm")
    sources = top_configurations(outputs.board, outputs.configs, options.confirm or 0)
    seeds = new_seeds(list(outputs.configs.values()), options.confirm_seeds)
    held = len(outputs.configs)
    return Confirmation(at=now(), start=held, to=held + len(sources) * len(seeds),
                        sources=sources, configs=[dict(outputs.configs[t]) for t in sources],
                        seeds=seeds)
