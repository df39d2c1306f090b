"""What a sweep was asked to do: :class:`SweepOptions`, one typed, frozen object.

The command line (:mod:`tune_food.sweep.cli`) builds it; every module below the CLI
(planning, cluster checks, launching, outputs) reads it and never sees argparse. The
defaults are stated here once: the parser takes its defaults and help texts from
these fields. ``sweep.json`` keeps the options a sweep started with (``args``), and
:func:`resume_options` rebuilds them on ``--resume``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from tune_food.common.errors import SweepError
from tune_food.features.cachedir import cache_folder
from tune_food.models.devices import requested_runtime
from tune_food.sweepdir.layout import MLFLOW_DEFAULT, RESULTS_DIR

NUM_SAMPLES = 20        # trials --search samples without --num-samples
SEARCHES = ("optuna", "random")   # --search's kinds; a sweep is a --grid or one of these
# the shipped space each mode runs without --space (files of spaces.default_space_dir())
DEFAULT_SPACES = {"grid": "grid.yaml", "search": "optuna.yaml"}
OPTUNA_IN_FLIGHT = 4   # Optuna suggestions in flight when --max-concurrent is 0 (TPE learns
                       # from finished trials: more at once is closer to random search)
# Flags a resumed sweep takes from the command that resumes it (where it runs and with
# what), when given there; everything else (what is swept) comes from the saved sweep.
RESUME_OVERRIDES = ("address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "debug",
                    "max_failures", "data_dir", "cache_dir", "backbone_runtime")
CONFIRM_SEEDS = 5      # --confirm-seeds: new seeds per configuration a confirmation trains
CONFIRM_AT_MOST = 5    # --confirm without K: the configurations tied with the best, at most these
# Not saved in sweep.json: the sweep is where its folder is (it may be moved or copied);
# a confirmation is recorded as its own entry (confirmations), not as an option
NOT_SAVED = ("results_dir", "sweep_dir", "given", "confirm", "confirm_seeds")


@dataclass(frozen=True)
class SweepOptions:
    """The options of one ``python -m tune_food.sweep`` run (see ``--help`` for each)."""

    grid: bool = False                 # every combination of a grid space
    search: str | None = None          # "optuna" | "random": sample the space instead
    space: str | None = None           # search-space YAML (default: the packaged one)
    num_samples: int | None = None     # trials to sample with --search (None: NUM_SAMPLES)
    scheduler: str | None = None       # "fifo" | "asha" (None: scheduler_name's rule)
    data_dir: str | None = None        # data root (None: $TUNE_FOOD_DATA_DIR, else ./data)
    results_dir: str = RESULTS_DIR     # folder or storage URI holding sweep folders
    name: str | None = None            # sweep folder name (None: <space>-<date>-<time>)
    cache_dir: str | None = None       # feature cache (None: features.cachedir's rule)
    mlflow: str | None = None          # MLflow tracking URI, MLFLOW_DEFAULT, or None: no MLflow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0            # 0: as many trials at once as resources allow
    address: str | None = None         # Ray cluster to join (None: a new local Ray)
    autoscale: bool = False            # the cluster's autoscaler adds nodes on demand
    feature_cache: str = "auto"        # "auto" | "off"
    backbone_runtime: str | None = None  # CPU forward: None: devices.requested_runtime's rule
    allow_leakage: bool = False
    skip_bad_images: bool = False
    max_failures: int = 1              # retries of a trial whose worker fails
    resume: bool = False
    warm_start: str | None = None      # --search optuna: a sweep folder whose trials seed Optuna
    dry_run: bool = False
    seed: int = 0                      # seed of the search algorithm
    confirm: int | None = None         # --confirm K: retrain the top K configurations (0:
                                       # those tied with the best, at most CONFIRM_AT_MOST)
    confirm_seeds: int = CONFIRM_SEEDS  # new seeds per configuration --confirm trains
    debug: bool = False                # tracebacks instead of one-line errors
    sweep_dir: str | None = None       # on --resume: the sweep folder being continued
    given: frozenset[str] = field(default=frozenset(), compare=False)  # flags on the command line

    @property
    def scheduler_name(self) -> str:
        """``--scheduler``, else ``"asha"`` for a search and ``"fifo"`` for a grid."""
        return self.scheduler or ("asha" if self.search else "fifo")

    @property
    def samples(self) -> int:
        """Trials the search samples (``--num-samples``, else :data:`NUM_SAMPLES`), or 1
        for a grid (each combination once)."""
        return self.num_samples or (NUM_SAMPLES if self.search else 1)

    @property
    def default_space_file(self) -> str:
        """The file name, in the shipped spaces' folder, that runs without ``--space``."""
        return DEFAULT_SPACES["grid" if self.grid else "search"]

    @property
    def feature_store_dir(self) -> str:
        """The feature store's folder: ``--cache-dir``, else the cache folder's default
        (:func:`tune_food.features.cachedir.cache_folder`)."""
        return cache_folder(self.cache_dir)

    def check(self) -> None:
        """Checks that need nothing but the options (run after :func:`resume_options`).

        Raises:
            SweepError: contradicting or out-of-range options, with the fix.
        """
        self.check_confirm()
        if self.grid and self.search:
            raise SweepError("--grid and --search exclude each other: --grid runs every "
                             "combination of a grid space, --search samples a space; pass one")
        if not self.grid and not self.search:
            raise SweepError("choose what to run: --grid (every combination of a grid space) "
                             "or --search optuna|random (sample a space)")
        if self.num_samples is not None and self.num_samples < 1:
            raise SweepError(f"--num-samples must be >= 1, got {self.num_samples}")
        if self.grid and self.num_samples is not None:
            raise SweepError("--num-samples applies to --search only; --grid runs each "
                             "combination once (a repeat would be an identical trial, same "
                             "seed): to repeat configurations with other seeds add seeds: "
                             "[0, 1, 2] to the space")
        if self.max_failures < 0:
            raise SweepError(f"--max-failures must be >= 0, got {self.max_failures}")
        try:
            requested_runtime(self.backbone_runtime)
        except ValueError as exc:
            raise SweepError(str(exc)) from None
        if self.warm_start and self.search != "optuna":
            raise SweepError("--warm-start hands an earlier sweep's trials to Optuna's study: "
                             "it needs --search optuna")
        if self.autoscale and not self.address:
            raise SweepError("--autoscale needs --address of a cluster started by `ray up` "
                             "(its autoscaler adds nodes); a local Ray cannot add nodes, so "
                             "drop --autoscale or pass --address auto on the cluster's head node")

    def check_confirm(self) -> None:
        """``--confirm``'s checks that need nothing but the options.

        Raises:
            SweepError: ``--confirm`` without ``--resume``, with flags that change what
                the sweep runs, K below 0, or fewer than 2 seeds.
        """
        if self.confirm is None:
            if "confirm_seeds" in self.given:
                raise SweepError("--confirm-seeds is the number of seeds of --confirm: add "
                                 "--confirm")
            return
        if not self.resume:
            raise SweepError("--confirm retrains the top configurations of a finished sweep: "
                             "add --resume --name <the sweep>")
        if self.confirm < 0:
            raise SweepError(f"--confirm K must be >= 1 (or left out: the configurations "
                             f"tied with the best, at most {CONFIRM_AT_MOST}), got {self.confirm}")
        if self.confirm_seeds < 2:
            raise SweepError(f"--confirm-seeds must be >= 2 (a spread over seeds needs two), "
                             f"got {self.confirm_seeds}")
        for flag in ("space", "num_samples", "warm_start"):
            if flag in self.given:
                raise SweepError(f"--confirm retrains the sweep's own configurations: drop "
                                 f"--{flag.replace('_', '-')}")

    def saved(self) -> dict[str, Any]:
        """The options as ``sweep.json`` keeps them (``args``): JSON values, without
        where the sweep folder is."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_SAVED}


def resume_options(options: SweepOptions, saved: dict[str, Any], sweep_dir: str) -> SweepOptions:
    """The options of the sweep being resumed: what it swept comes from ``saved`` (its
    ``sweep.json`` ``args``); where and with what resources it runs comes from
    ``options`` for every flag of :data:`RESUME_OVERRIDES` given on the command line, and
    ``--num-samples`` for a search: how many trials the sweep holds once extended.
    ``--mlflow`` is the sweep's own too: the restored Ray Tune run keeps the callbacks it
    was started with, so a resumed sweep logs to MLflow exactly when it did before.

    Raises:
        SweepError: ``--space`` names another space than a search sweep's own (a grid
            may be resumed with a wider one), ``--mlflow``
            another tracking than the sweep's own, or ``--num-samples`` for a grid.
    """
    known = {f.name for f in dataclasses.fields(SweepOptions)} - set(NOT_SAVED)
    kept = {k: v for k, v in saved.items() if k in known}
    if kept.get("grid"):
        kept["num_samples"] = None   # older sweeps saved --num-samples 1 with --grid
    if options.space and saved.get("space") and not saved.get("grid") and \
            os.path.abspath(options.space) != os.path.abspath(saved["space"]):
        raise SweepError(f"--resume continues sweep {options.name!r} with its own search space "
                         f"({saved['space']}); drop --space {options.space}, or start a new "
                         "sweep with another --name")
    if "mlflow" in options.given and options.mlflow != saved.get("mlflow"):
        raise SweepError(f"--resume continues sweep {options.name!r} with its own MLflow "
                         f"tracking ({_mlflow_flag(saved.get('mlflow'))}): Ray Tune restores "
                         f"it with the loggers it started with; drop --mlflow, or start a new "
                         "sweep with another --name")
    kept.update({k: getattr(options, k) for k in RESUME_OVERRIDES if k in options.given})
    if "num_samples" in options.given and kept.get("search"):
        kept["num_samples"] = options.num_samples   # extend the search (sweep.history)
    elif "num_samples" in options.given:
        raise SweepError(f"--num-samples extends a --search sweep; {options.name!r} is a grid "
                         "(each combination once): to add combinations, resume it with "
                         "--space naming a wider grid")
    if options.space and saved.get("grid"):
        kept["space"] = options.space   # a wider grid (sweep.history.widen_grid checks it)
    kept.update(results_dir=options.results_dir, sweep_dir=sweep_dir, resume=True,
                dry_run=options.dry_run, name=options.name, given=options.given,
                confirm=options.confirm, confirm_seeds=options.confirm_seeds)
    return SweepOptions(**kept)


def _mlflow_flag(value: str | None) -> str:
    """How a saved ``--mlflow`` value reads on a command line."""
    if value is None:
        return "none: it was started without --mlflow"
    return "--mlflow" if value == MLFLOW_DEFAULT else f"--mlflow {value}"
