"""The sweep's command line: argparse in, one :class:`~tune_food.sweep.options.SweepOptions` out.

Only the standard library and :mod:`tune_food.sweep.options` are imported here, so ``--help``
and argument errors answer in well under a second (Ray, torch and pandas are imported
later, by the modules that run the sweep).
"""

from __future__ import annotations

import argparse
from typing import Callable, NoReturn, Sequence

from tune_food.common.cliargs import Parser, path_arg
from tune_food.data.datasets import DATA_DIR_ENV, DEFAULT_DATA_DIR
from tune_food.features.cachedir import CACHE_DIR_ENV, DEFAULT_CACHE_DIR
from tune_food.models.devices import DEFAULT_RUNTIME, RUNTIME_ENV, RUNTIMES
from tune_food.sweep.options import (
    CONFIRM_AT_MOST,
    DEFAULT_SPACES,
    NUM_SAMPLES,
    OPTUNA_IN_FLIGHT,
    SEARCHES,
    SweepOptions,
)
from tune_food.sweepdir.layout import MLFLOW_DEFAULT, SWEEP_COMMAND

PROG = SWEEP_COMMAND
_D = SweepOptions()   # the defaults, stated once in SweepOptions


def build_parser() -> argparse.ArgumentParser:
    """The sweep's parser. Every flag's default is ``SUPPRESS``: the parsed namespace
    holds only the flags given, and :func:`parse_options` fills the rest from
    :class:`SweepOptions` (so a resumed sweep knows which flags were given)."""
    p = Parser(prog=PROG, argument_default=argparse.SUPPRESS,
               description="Run a Ray Tune sweep of frozen-backbone EfficientNet "
               "classifiers and write a ranked leaderboard.")
    _what_flags(p.add_argument_group("what to run"))
    _where_flags(p.add_argument_group("where"))
    _how_flags(p.add_argument_group("resources and behaviour"))
    return p


def _what_flags(g) -> None:
    g.add_argument("--grid", action="store_true",
                   help="run every combination of the space's grid_search values "
                   f"(default space: search_spaces/{DEFAULT_SPACES['grid']})")
    g.add_argument("--search", choices=list(SEARCHES),
                   help="sample the space instead: Optuna (TPE) or random search "
                   f"(default space: search_spaces/{DEFAULT_SPACES['search']})")
    g.add_argument("--space", metavar="FILE", type=path_arg, help="search-space YAML file")
    g.add_argument("--num-samples", type=int, metavar="N",
                   help=f"trials to sample with --search (default {NUM_SAMPLES}; with --resume: "
                   "the trials the search holds once extended); not with --grid, which runs "
                   "each combination once")
    g.add_argument("--warm-start", metavar="SWEEP", type=path_arg,
                   help="with --search optuna: Optuna's study starts from the completed "
                   "trials of the sweep folder SWEEP (results/<name>), which must rank by the "
                   "same metric on the same images and sample the same parameters")
    g.add_argument("--confirm", type=int, nargs="?", const=0, metavar="K",
                   help="with --resume --name S of a finished sweep: train its top K "
                   "configurations again with new seeds (default K: those tied with the "
                   f"best, at most {CONFIRM_AT_MOST}) and write the verdict, confirmed.csv")
    g.add_argument("--confirm-seeds", type=int, metavar="N",
                   help=f"new seeds per configuration with --confirm (default "
                   f"{_D.confirm_seeds}; at least 2)")
    g.add_argument("--scheduler", choices=["fifo", "asha"],
                   help="trial scheduler: asha stops poor trials early (default: "
                   f"{SweepOptions(search='random').scheduler_name} with --search, "
                   f"{SweepOptions(grid=True).scheduler_name} with --grid)")


def _where_flags(g) -> None:
    g.add_argument("--data-dir", metavar="DIR", type=path_arg,
                   help=f"data root holding the datasets (default: ${DATA_DIR_ENV}, "
                   f"else ./{DEFAULT_DATA_DIR})")
    g.add_argument("--results-dir", "--storage-path", dest="results_dir", metavar="DIR",
                   type=path_arg, help="where sweeps are written: a folder or a URI such "
                   f"as s3://bucket/path (default: {_D.results_dir})")
    g.add_argument("--name", help="sweep name: the sweep's folder under --results-dir "
                   "(default: <space>-<date>-<time>)")
    g.add_argument("--cache-dir", metavar="DIR", type=path_arg,
                   help=f"feature cache folder (default: ${CACHE_DIR_ENV}, else "
                   f"{DEFAULT_CACHE_DIR})")
    g.add_argument("--mlflow", nargs="?", const=MLFLOW_DEFAULT, metavar="TRACKING_URI",
                   help="also log every trial as an MLflow run (default URI: "
                   f"{MLFLOW_DEFAULT}; a store beside the sweep folders)")


def _how_flags(g) -> None:
    g.add_argument("--cpus-per-trial", type=float, metavar="N",
                   help=f"CPUs reserved for each trial (default {_D.cpus_per_trial:g})")
    g.add_argument("--gpus-per-trial", type=float, metavar="F",
                   help=f"GPUs for each trial; fractions share a GPU (default "
                   f"{_D.gpus_per_trial:g})")
    g.add_argument("--max-concurrent", type=int, metavar="N",
                   help=f"at most N trials at once (default {_D.max_concurrent}: as many as "
                   f"resources allow; --search optuna: at most {OPTUNA_IN_FLIGHT} suggestions "
                   "in flight, or N)")
    g.add_argument("--address", metavar="ADDR",
                   help="Ray cluster to join, e.g. auto or ray://host:10001 (default: "
                   "start a local Ray)")
    g.add_argument("--autoscale", action="store_true",
                   help="the cluster has an autoscaler (ray up) that adds nodes on demand: "
                   "accept requests no current node can satisfy")
    g.add_argument("--feature-cache", choices=["auto", "off"],
                   help="auto: compute backbone features once and train heads on them "
                   "where exact; off: run the full image pipeline in every trial "
                   f"(default {_D.feature_cache})")
    g.add_argument("--backbone-runtime", choices=list(RUNTIMES),
                   help="what runs the frozen backbone on the CPU: openvino (float32, the "
                   "same features about 3x faster) or torch (PyTorch eager); a GPU always "
                   f"runs PyTorch (default: ${RUNTIME_ENV}, else {DEFAULT_RUNTIME})")
    g.add_argument("--allow-leakage", action="store_true",
                   help="run even when test images are byte-identical to training images "
                   "(recorded in sweep.json)")
    g.add_argument("--skip-bad-images", action="store_true",
                   help="leave out images that cannot be decoded instead of stopping")
    g.add_argument("--max-failures", type=int, metavar="N",
                   help=f"retries of a trial whose worker fails (default {_D.max_failures})")
    g.add_argument("--resume", action="store_true",
                   help="continue the interrupted sweep --name: finished trials are kept, "
                   "unfinished and errored ones run again; with --num-samples N a search "
                   "grows to N trials, with --space a grid runs a wider grid's new "
                   "combinations")
    g.add_argument("--dry-run", action="store_true",
                   help="check everything, print the trial table and the resource plan, exit")
    g.add_argument("--seed", type=int,
                   help="seed of the search algorithm (--search) and of the draw of the "
                   f"validation set (val_fraction > 0) (default {_D.seed}; each trial's own "
                   "seed comes from the space)")
    g.add_argument("--debug", action="store_true", help="show tracebacks")


def parse_options(argv: Sequence[str] | None = None,
                  error: Callable[[str], NoReturn] | None = None) -> SweepOptions:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None). ``error``: what
    an argument error does instead of the command's one line and exit 2 (the Python
    API, :mod:`tune_food.api`, raises it), called with argparse's message.

    Raises:
        SystemExit: 2 after one line on stderr for an argument error; 0 after ``--help``.
    """
    parser = build_parser()
    if error is not None:
        parser.error = error   # argparse reports every argument error through error()
    given = vars(parser.parse_args(argv))
    return SweepOptions(**given, given=frozenset(given))
