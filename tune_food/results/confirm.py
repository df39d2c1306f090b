"""The verdict of a confirmation (``--confirm``): ``confirmed.csv`` and what to ship.

A confirmation (:mod:`tune_food.sweep.confirm`) trains a finished sweep's top
configurations again, each with the same new seeds. :func:`verdict` reads those trials
from the leaderboard and their per-image predictions and gives, per configuration (one
row of ``confirmed.csv``, best mean first):

* the sweep's ranking metric over the seeds: mean, standard deviation (the seeds'
  spread) and t-interval of the mean (:func:`tune_food.common.stats.t_interval`);
  the split that ranked the sweep ranks the confirmation (a validation metric stays a
  validation metric: the test split is only reported);
* the test accuracy pooled over the seeds: every seed's test predictions counted
  together (correct / seeds x images) with its Wilson interval
  (:func:`tune_food.common.stats.wilson_interval`; the same images count once per seed,
  so the interval says how steady the seeds are on these images, not how the
  configuration does on new ones);
* ``p_vs_best``: the paired t-test over seeds against the configuration with the best
  mean (:func:`tune_food.common.stats.paired_t_test`, where the choice is argued), and
  ``tied_with_best``: ``p >= ALPHA``.

The seeds' trials alone count: the trial each configuration comes from won the sweep's
draw and would carry that luck into the mean. One sentence (:attr:`Verdict.sentence`)
says what to ship: the confirmed best, or where the tie survives, the fastest
(``cpu_ms``) of the configurations tied with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tune_food.common.stats import (
    ALPHA,
    CONFIDENCE,
    paired_t_test,
    t_interval,
    wilson_interval,
)
from tune_food.models.figures import CPU_MS
from tune_food.sweepdir.columns import (
    CONFIRMS,
    DEPLOYMENT_COLUMNS,
    NEW_SEEDS,
    P_VS_BEST,
    POOLED_TEST_ACC,
    POOLED_TEST_CI_HIGH,
    POOLED_TEST_CI_LOW,
    RANK,
    SWEEP_RANK,
    TIED_WITH_BEST,
    TRIAL_ID,
    TRIAL_NAME,
    over_seeds,
)
from tune_food.sweepdir.record import SweepState
from tune_food.train.hparams import PARAMS

TEST_ACC = "test_acc"   # the leaderboard's metric column the verdict reports beside


@dataclass
class Verdict:
    """What :func:`verdict` found: ``table`` (``confirmed.csv``'s rows, best first) and
    ``sentence`` (what to ship, which split chose)."""

    table: pd.DataFrame
    sentence: str


def config_key(config: dict[str, Any], seed: bool = False) -> str:
    """A configuration as one string (its hyperparameters, :data:`PARAMS`); without
    ``seed`` the seed is left out, so a configuration's trials share it."""
    return json.dumps({k: config.get(k) for k in PARAMS if seed or k != "seed"},
                      sort_keys=True, default=str)


def confirmation_trials(state: SweepState, configs: dict[str, dict]) -> dict[str, tuple]:
    """trial_id -> ``(index of its configuration in the confirmation, seed)`` for every
    trial of the sweep that a confirmation of ``state`` ran (found by its configuration:
    the confirmation's seeds are new to the sweep, so none of its other trials has one).

    Args:
        configs: trial_id -> the configuration Ray Tune gave the trial.
    """
    wanted = {}
    for entry in state.confirmations or []:
        for i, c in enumerate(entry.configs):
            for s in entry.seeds:
                wanted[config_key(dict(c, seed=s), seed=True)] = (i, s)
    return {t: wanted[k] for t, c in configs.items()
            if (k := config_key(c, seed=True)) in wanted}


def mark_confirmations(board: pd.DataFrame, state: SweepState,
                       configs: dict[str, dict]) -> pd.DataFrame:
    """``board`` with :data:`~tune_food.sweepdir.columns.CONFIRMS` (the trial id of the
    configuration a confirmation trial retrains; empty for the sweep's own trials) when
    the sweep was confirmed; ``board`` as it is otherwise."""
    if not state.confirmations or board.empty:
        return board
    entry = state.confirmations[-1]
    found = confirmation_trials(state, configs)
    board = board.copy()
    board[CONFIRMS] = [entry.sources[found[t][0]] if t in found else None
                       for t in board[TRIAL_ID]]
    return board


def _test_counts(predictions: pd.DataFrame | None) -> tuple[int, int]:
    """``(correct, images)`` of a trial's test predictions (each image once)."""
    if predictions is None or predictions.empty:
        return 0, 0
    p = predictions[predictions["split"] == "test"].drop_duplicates("sha256")
    return int((p["label"] == p["predicted"]).sum()), len(p)


def _row(source: pd.Series, seeds: dict[int, pd.Series], metric: str,
         predictions: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """One configuration's row of ``confirmed.csv``, before ranking: ``source`` its row
    in the leaderboard (its ``SWEEP_RANK`` set), ``seeds`` seed -> its completed
    confirmation trial's row."""
    values = [float(r[metric]) for r in seeds.values()]
    mean, std, low, high = t_interval(values) if values else (math.nan,) * 4
    row = {TRIAL_NAME: source[TRIAL_NAME], TRIAL_ID: source[TRIAL_ID],
           SWEEP_RANK: source[SWEEP_RANK], NEW_SEEDS: " ".join(map(str, sorted(seeds))),
           over_seeds(metric, "mean"): mean, over_seeds(metric, "std"): std,
           over_seeds(metric, "ci_low"): low, over_seeds(metric, "ci_high"): high}
    if metric != TEST_ACC and values:
        row[over_seeds(TEST_ACC, "mean")] = sum(float(r[TEST_ACC]) for r in seeds.values()) / len(values)
    correct = total = 0
    for r in seeds.values():
        c, n = _test_counts(predictions.get(r[TRIAL_ID]))
        correct, total = correct + c, total + n
    row[POOLED_TEST_ACC] = correct / total if total else math.nan
    row[POOLED_TEST_CI_LOW], row[POOLED_TEST_CI_HIGH] = \
        wilson_interval(correct, total) if total else (math.nan, math.nan)
    row.update({k: source.get(k) for k in DEPLOYMENT_COLUMNS if k in source})
    row.update({k: source.get(k) for k in PARAMS if k != "seed" and k in source})
    return row


def verdict(board: pd.DataFrame, configs: dict[str, dict], predictions: dict[str, pd.DataFrame],
            state: SweepState) -> Verdict | None:
    """The verdict of the sweep's last confirmation, or None when it has none, or none
    of its trials completed.

    Args:
        board: the sweep's leaderboard (ranked rows carry ``state.metric``; deployment
            figures where measured).
        configs: trial_id -> the configuration Ray Tune gave the trial.
        predictions: trial_id -> the ``predictions.csv`` of the epoch its row shows.
        state: ``sweep.json``'s record (``metric``, ``mode``, ``confirmations``).
    """
    if not state.confirmations or board.empty or RANK not in board:
        return None
    entry, metric = state.confirmations[-1], state.metric
    found = confirmation_trials(state, configs)
    ranked = board[board[RANK].notna()].set_index(TRIAL_ID, drop=False)
    per_config: list[dict[int, pd.Series]] = [{} for _ in entry.configs]
    for trial, (i, seed) in found.items():
        if trial in ranked.index and pd.notna(ranked.loc[trial, metric]):
            per_config[i][seed] = ranked.loc[trial]
    if not any(per_config):
        return None
    # the rank each trial had among the sweep's own (the confirmation's trials rank too)
    own = ranked[~ranked[TRIAL_ID].isin(found)]
    sources = own.assign(**{SWEEP_RANK: range(1, len(own) + 1)})
    rows = [_row(sources.loc[t], per_config[i], metric, predictions)
            for i, t in enumerate(entry.sources) if t in sources.index]
    table = pd.DataFrame(rows).sort_values(
        [over_seeds(metric, "mean"), SWEEP_RANK], ascending=[state.mode == "min", True], kind="stable",
        na_position="last").reset_index(drop=True)
    table = _compare(table, per_config, entry.sources, metric)
    table.insert(0, RANK, range(1, len(table) + 1))
    return Verdict(table, verdict_sentence(table, state))


def _compare(table: pd.DataFrame, per_config: list[dict], sources: list[str],
             metric: str) -> pd.DataFrame:
    """``table`` with ``p_vs_best`` and ``tied_with_best``: each configuration's
    metric against the first row's over the seeds both completed (paired t-test)."""
    by_source = dict(zip(sources, per_config))
    best = by_source[table.iloc[0][TRIAL_ID]]
    ps = []
    for source in table[TRIAL_ID]:
        other = by_source[source]
        common = sorted(set(best) & set(other))
        ps.append(paired_t_test([float(best[s][metric]) for s in common],
                                [float(other[s][metric]) for s in common]))
    table[P_VS_BEST] = ps
    table[TIED_WITH_BEST] = [bool(p >= ALPHA) if not math.isnan(p) else None for p in ps]
    return table


def verdict_sentence(table: pd.DataFrame, state: SweepState) -> str:
    """What to ship, and which split chose: the confirmed best, or the fastest
    (``cpu_ms``) of those still tied with it. ``table``: :func:`verdict`'s (or
    ``confirmed.csv`` as read back: the web page's); ``state``: the sweep's record, its
    last confirmation the one ``table`` shows ("" when it has none, or ``table`` is
    empty)."""
    if table.empty or not state.confirmations:
        return ""
    metric, best, seeds = state.metric, table.iloc[0], len(state.confirmations[-1].seeds)
    split = metric.split("_")[0]
    honest = (f"the validation split chose and ranks ({metric}); the test split only reports "
              f"({POOLED_TEST_ACC})" if split == "val" else
              f"the test split both chose and ranks ({metric}): its figures are not those of "
              "photos it has not seen")
    interval = f"{best[over_seeds(metric, 'mean')]:.4f}"
    if pd.notna(best[over_seeds(metric, "ci_low")]):
        interval += (f" [{best[over_seeds(metric, 'ci_low')]:.4f}, "
                     f"{best[over_seeds(metric, 'ci_high')]:.4f}]")
    same = "the sweep's rank 1" if best[SWEEP_RANK] == 1 else \
        f"rank {int(best[SWEEP_RANK])} in the sweep"
    text = (f"confirmation, {len(table)} configuration(s) x {seeds} new seeds ({honest}): "
            f"the best is {best[TRIAL_NAME]} ({same}), {metric} {interval} "
            f"({int(CONFIDENCE * 100)} % t-interval over its seeds)")
    tied = table[table[TIED_WITH_BEST].astype("boolean").fillna(False).astype(bool)]
    if len(tied) <= 1:
        return text + f"; no other configuration ties with it (paired t-test over seeds, " \
            f"p < {ALPHA:g}): ship {best[TRIAL_NAME]}"
    text += (f"; {len(tied) - 1} other(s) still tie with it (paired t-test over seeds, "
             f"p >= {ALPHA:g})")
    if CPU_MS not in tied or tied[CPU_MS].isna().all():
        return text + f": ship {best[TRIAL_NAME]} (no deployment figures to prefer a faster one)"
    fastest = tied.dropna(subset=[CPU_MS]).sort_values([CPU_MS, RANK], kind="stable").iloc[0]
    if fastest[TRIAL_ID] == best[TRIAL_ID]:
        return text + f": ship {best[TRIAL_NAME]}, the fastest of them too " \
            f"({fastest[CPU_MS]:.1f} ms per photo)"
    return text + (f": ship the fastest of the tied, {fastest[TRIAL_NAME]} "
                   f"({fastest[CPU_MS]:.1f} ms per photo against {best[CPU_MS]:.1f})")

