"""Which hyperparameters mattered: ``importance.csv``, ``plots/importance.png`` and
``plots/parallel.png``.

The importances are Optuna's own (``optuna.importance.get_param_importances`` with its
fANOVA evaluator, seeded): the completed trials of a sweep (its ranked rows:
``TERMINATED`` and ``EARLY_STOPPED``, each with the metric of the epoch it shows) are
put into an in-memory Optuna study (``optuna.trial.create_trial`` + ``Study.add_trial``)
with the distribution each varied parameter was drawn from (its sampler in the sweep's
space: ``loguniform`` a log-scale float, ``uniform`` a float, ``randint`` an integer,
``choice`` / ``grid_search`` / ``seeds`` a categorical). fANOVA's importance of a
parameter is the share of the metric's variance (over the space) that the parameter
alone explains, normalised over the parameters so that they sum to 1.

With repeated seeds (``seed`` varied) the seed is one of the parameters: its importance
row says how much of the spread the seed alone explains, and where configurations were
run with several seeds, ``metric_std_across_seeds`` (on the seed's row) is the mean
standard deviation of the metric across seeds at equal other hyperparameters: a
difference smaller than that between two configurations is noise, not signal.

Fewer than :data:`MIN_TRIALS` completed trials (fANOVA's own minimum is 2): no
``importance.csv`` nor ``importance.png``, one line that says so instead
(:attr:`Importance.note`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator, get_param_importances

from tune_food.common.files import write_csv_atomic
from tune_food.sweepdir.columns import RANK
from tune_food.sweepdir.layout import IMPORTANCE_FILE, IMPORTANCE_PNG, PARALLEL_PNG, PLOTS_DIR
from tune_food.sweepdir.record import SweepState
from tune_food.train.hparams import FLOAT_SAMPLERS, INT_SAMPLERS, LOG_SAMPLERS, PARAMS

MIN_TRIALS = 10          # completed trials below which no importance is computed
FANOVA_MIN_TRIALS = 2    # Optuna's fANOVA evaluator needs more than one trial
EVALUATOR = "fANOVA"     # the evaluator named in importance.csv and on the plot
EVALUATOR_SEED = 0       # fANOVA's random forest is seeded: report writes the same bytes
SEED_PARAM = "seed"      # the parameter whose spread is noise
#: a space's samplers (tune_food.sweep.spaces) drawn as Optuna distributions


@dataclass
class Importance:
    """What :func:`write_importance` produced."""

    table: pd.DataFrame | None = None   # importance.csv's rows, most important first
    files: list[str] = field(default_factory=list)
    note: str = ""                      # the one line said instead of the importances


def completed(board: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ranked rows of ``board`` (complete trials) that have a value of ``metric``."""
    if RANK not in board or metric not in board:
        return board.iloc[0:0]
    return board[board[RANK].notna()].dropna(subset=[metric])


def varied_params(space: dict, rows: pd.DataFrame) -> list[str]:
    """The hyperparameters (:data:`~tune_food.train.hparams.PARAMS` order) that differ
    between the rows of ``rows``, or that the sweep's space (``sweep.json``'s ``space``:
    the parsed YAML) samples or lists with several values."""
    params = (space or {}).get("parameters") or {}
    out = []
    for key in PARAMS:
        spec = params.get(key)
        listed = isinstance(spec, dict) or (key == SEED_PARAM and "seeds" in (space or {}))
        differs = key in rows and rows[key].astype(str).nunique() > 1
        if listed or differs:
            out.append(key)
    return [k for k in out if k in rows]


def _sampler(space: dict, key: str) -> tuple[str | None, Any]:
    """``(sampler name, its argument)`` of parameter ``key`` in the space, or (None, None)."""
    spec = ((space or {}).get("parameters") or {}).get(key)
    if isinstance(spec, dict) and len(spec) == 1:
        return next(iter(spec.items()))
    return None, None


def distributions(space: dict, rows: pd.DataFrame, keys: list[str]) -> dict[str, Any]:
    """The Optuna distribution of each parameter in ``keys``: the space's range for a
    ``loguniform`` (log-scale float), ``uniform`` (float) or ``randint`` (integer,
    ``high`` excluded as in Ray Tune) sampler; otherwise a categorical over the values
    the rows hold (as strings where they are not plain numbers)."""
    out = {}
    for key in keys:
        kind, arg = _sampler(space, key)
        values = rows[key].tolist()
        if kind in LOG_SAMPLERS + FLOAT_SAMPLERS:
            low = min([float(arg[0])] + [float(v) for v in values])
            high = max([float(arg[1])] + [float(v) for v in values])
            out[key] = FloatDistribution(low, high, log=kind in LOG_SAMPLERS)
        elif kind in INT_SAMPLERS:
            low = min([int(arg[0])] + [int(v) for v in values])
            high = max([int(arg[1]) - 1] + [int(v) for v in values])
            out[key] = IntDistribution(low, high)
        else:
            out[key] = CategoricalDistribution(sorted({_choice(v) for v in values}, key=str))
    return out


def _choice(value: Any) -> Any:
    """A value as an Optuna categorical choice: None, bool, int, float or str."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"
    if hasattr(value, "item"):
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _param_value(dist, value: Any) -> Any:
    """``value`` as ``dist`` holds it (an int for an integer range, float for floats)."""
    if isinstance(dist, FloatDistribution):
        return float(value)
    if isinstance(dist, IntDistribution):
        return int(value)
    return _choice(value)


def param_importances(rows: pd.DataFrame, metric: str, mode: str, dists: dict) -> dict[str, float]:
    """Optuna's fANOVA importance of each parameter of ``dists`` for ``metric`` over
    ``rows`` (completed trials): parameter -> share of the variance it explains alone,
    normalised to sum to 1, most important first.

    Raises:
        ValueError: fewer than :data:`FANOVA_MIN_TRIALS` rows (Optuna's own check).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for _, row in rows.iterrows():
        study.add_trial(optuna.trial.create_trial(
            params={k: _param_value(d, row[k]) for k, d in dists.items()},
            distributions=dists, value=float(row[metric])))
    evaluator = FanovaImportanceEvaluator(seed=EVALUATOR_SEED)
    return dict(get_param_importances(study, evaluator=evaluator, params=list(dists)))


def seed_spread(rows: pd.DataFrame, metric: str, keys: list[str]) -> tuple[float, int]:
    """``(mean standard deviation of metric across seeds at equal other hyperparameters,
    configurations it is taken over)``: over the configurations (the ``keys`` other than
    the seed) run with at least two seeds; ``(nan, 0)`` when there is none."""
    if SEED_PARAM not in rows:
        return float("nan"), 0
    others = [k for k in keys if k != SEED_PARAM]
    grouped = rows.groupby([rows[k].astype(str) for k in others]) if others else [((), rows)]
    groups = [g for _, g in grouped if g[SEED_PARAM].nunique() > 1]
    if not groups:
        return float("nan"), 0
    stds = [float(g[metric].astype(float).std(ddof=1)) for g in groups]
    return sum(stds) / len(stds), len(groups)


def importance_table(board: pd.DataFrame, state: SweepState) -> Importance:
    """``importance.csv``'s rows for a sweep: ``parameter``, ``importance`` (fANOVA,
    sums to 1), ``evaluator``, ``trials`` (completed trials used), ``metric``, and on the
    seed's row ``metric_std_across_seeds`` / ``configs_with_seeds`` (:func:`seed_spread`).

    Returns:
        :class:`Importance` with the table, or with only a :attr:`~Importance.note` when
        there are fewer than :data:`MIN_TRIALS` completed trials or nothing varies.
    """
    metric, mode, space = state.metric, state.mode, state.space
    rows = completed(board, metric)
    need = max(MIN_TRIALS, FANOVA_MIN_TRIALS)
    if len(rows) < need:
        return Importance(note=f"importance: {len(rows)} completed trial(s), fewer than the "
                               f"{need} {EVALUATOR} needs here: {IMPORTANCE_FILE} and "
                               f"{PLOTS_DIR}/{IMPORTANCE_PNG} not written")
    keys = varied_params(space, rows)
    if not keys:
        return Importance(note=f"importance: no hyperparameter varies: {IMPORTANCE_FILE} "
                               "not written")
    values = rows[metric].astype(float)
    if not values.map(math.isfinite).all():
        return Importance(note=f"importance: a completed trial's {metric} is not a finite "
                               f"number: {IMPORTANCE_FILE} not written")
    if values.nunique() == 1:   # fANOVA divides by the variance: nothing to attribute
        return Importance(note=f"importance: all {len(rows)} completed trials reached the "
                               f"same {metric} ({values.iloc[0]:.4g}), so no hyperparameter "
                               f"explains any of it: {IMPORTANCE_FILE} not written")
    scores = param_importances(rows, metric, mode, distributions(space, rows, keys))
    table = pd.DataFrame({"parameter": list(scores), "importance": list(scores.values()),
                          "evaluator": EVALUATOR, "trials": len(rows), "metric": metric})
    if SEED_PARAM in keys:
        std, groups = seed_spread(rows, metric, keys)
        is_seed = table["parameter"] == SEED_PARAM
        table["metric_std_across_seeds"] = [std if s else float("nan") for s in is_seed]
        table["configs_with_seeds"] = [groups if s else pd.NA for s in is_seed]
    return Importance(table=table)


def write_importance(local_dir: str, board: pd.DataFrame, state: SweepState) -> Importance:
    """Write ``importance.csv`` and ``plots/importance.png`` (:func:`importance_table`)
    and ``plots/parallel.png`` (:func:`parallel_figure`, whenever two completed trials
    differ in a hyperparameter) under ``local_dir``.

    Returns:
        :class:`Importance`: the table, the paths written, and the one line said
        instead of the importances when there are too few trials.
    """
    import matplotlib  # lazy: Agg backend set when drawing (an optional step), not on import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is set

    result = importance_table(board, state)
    plots = os.path.join(local_dir, PLOTS_DIR)
    if result.table is not None:
        result.files.append(write_csv_atomic(result.table, os.path.join(local_dir,
                                                                        IMPORTANCE_FILE)))
        fig = importance_figure(result.table, os.path.basename(local_dir))
        os.makedirs(plots, exist_ok=True)
        result.files.append(os.path.join(plots, IMPORTANCE_PNG))
        fig.savefig(result.files[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    rows = completed(board, state.metric)
    keys = varied_params(state.space, rows)
    if len(rows) >= 2 and keys:
        fig = parallel_figure(rows, keys, state, os.path.basename(local_dir))
        os.makedirs(plots, exist_ok=True)
        result.files.append(os.path.join(plots, PARALLEL_PNG))
        fig.savefig(result.files[-1], dpi=110, bbox_inches="tight")
        plt.close(fig)
    return result


def importance_figure(table: pd.DataFrame, name: str):
    """The figure of ``importance.png``: a horizontal bar per parameter (most important
    on top), its fANOVA importance written beside it; the seed's bar grey, labelled as
    the noise it measures, with the metric's spread across seeds when known. Returns
    the matplotlib ``Figure`` (the caller closes it)."""
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt

    rows = table.iloc[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.45 * len(rows)), layout="constrained")
    colours = ["#8c8c8c" if p == SEED_PARAM else "#4c72b0" for p in rows["parameter"]]
    labels = [f"{p} (noise)" if p == SEED_PARAM else p for p in rows["parameter"]]
    ax.barh(labels, rows["importance"], color=colours)
    for y, v in enumerate(rows["importance"]):
        ax.text(v + 0.01, y, f"{v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    metric, trials = table["metric"].iloc[0], int(table["trials"].iloc[0])
    ax.set_xlabel(f"share of the variance of {metric} it explains alone "
                  f"({EVALUATOR}, Optuna; sums to 1)")
    title = f"which hyperparameters mattered: {name}, {trials} completed trials"
    if "metric_std_across_seeds" in table:
        std = table["metric_std_across_seeds"].dropna()
        if not std.empty:
            n = int(table["configs_with_seeds"].dropna().iloc[0])
            title += (f"\nseed alone: std of {metric} across seeds at equal other "
                      f"hyperparameters {std.iloc[0]:.4f} ({n} configurations)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _axis(space: dict, key: str, values: pd.Series) -> tuple[list[float], list[float], list[str]]:
    """One axis of the parallel view: ``(each row's position in [0, 1], tick positions,
    tick labels)``. Numbers are placed linearly, or on a log scale when the space samples
    them ``loguniform`` or lists positive values two decades or more apart (a grid of
    learning rates); ``uniform`` and ``randint`` ranges stay linear. Anything else is a
    category, evenly spaced in sorted order."""
    kind, _ = _sampler(space, key)
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and (kind not in ("choice", "grid_search") or
                                  numeric.nunique() > 4):
        x = numeric.to_numpy(dtype=float)
        log = kind in LOG_SAMPLERS or (kind not in FLOAT_SAMPLERS + INT_SAMPLERS and
                                       x.min() > 0 and x.max() / x.min() >= 100)
        t = np.log10(x) if log else x
        low, high = float(t.min()), float(t.max())
        span = high - low or 1.0
        ticks = np.linspace(low, high, 5) if high > low else np.array([low])
        fmt = [f"{10 ** v:.2g}" if log else f"{v:.3g}" for v in ticks]
        return list((t - low) / span), list((ticks - low) / span), fmt
    cats = sorted({str(v) for v in values}, key=lambda s: (pd.to_numeric(s, errors="coerce"), s)
                  if pd.notna(pd.to_numeric(s, errors="coerce")) else (math.inf, s))
    where = {c: (i / (len(cats) - 1) if len(cats) > 1 else 0.5) for i, c in enumerate(cats)}
    return [where[str(v)] for v in values], list(where.values()), cats


def parallel_figure(rows: pd.DataFrame, keys: list[str], state: SweepState, name: str):
    """The figure of ``parallel.png``: an axis per varied hyperparameter (``keys``) and a
    last one for the metric, a line per completed trial through its values, coloured by
    the metric (best on top). Log-sampled numbers such as ``lr`` are on a log scale,
    categories evenly spaced (:func:`_axis`). Returns the matplotlib ``Figure``."""
    # lazy: Agg backend set when drawing (an optional step), not on import
    import matplotlib.pyplot as plt

    metric, mode, space = state.metric, state.mode, state.space
    rows = rows.sort_values(metric, ascending=mode == "max")   # best drawn last, on top
    axes = [_axis(space, k, rows[k]) for k in keys] + [_axis({}, metric, rows[metric])]
    pos = np.array([a[0] for a in axes]).T
    score = rows[metric].to_numpy(dtype=float)
    cmap = plt.get_cmap("viridis" if mode == "max" else "viridis_r")
    norm = plt.Normalize(score.min(), score.max() if score.max() > score.min() else score.min() + 1)
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(axes), 5.5), layout="constrained")
    for line, s in zip(pos, score):
        ax.plot(range(len(axes)), line, color=cmap(norm(s)), alpha=0.8, lw=1.2)
    for i, (_, ticks, labels) in enumerate(axes):
        ax.axvline(i, color="0.3", lw=0.8)
        for t, lab in zip(ticks, labels):
            ax.text(i + 0.03, t, lab, fontsize=7, va="center")
    ax.set_xticks(range(len(axes)), keys + [metric])
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(axes) - 0.6)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    ax.set_title(f"{name}: {len(rows)} completed trials, coloured by {metric} "
                 "(yellow is best)", fontsize=10)
    return fig
