"""The sweep CLI: ``python -m tune_food.sweep``. Plan, check, run and resume a sweep.

Order of work (DESIGN.md, "fail before launching"): read the search space, resolve and
validate every dataset, make sure every model's weights are here, check the resource
request against the cluster; only then start Ray Tune. The backbone features each
trial needs are computed once per (model, split) as Ray tasks and shared with the
trials through the object store. After the sweep: ``leaderboard.csv``, ``results.csv``,
``sweep.json`` and the TensorBoard command.

Every user-fixable problem is a :class:`~tune_food.errors.TuneFoodError`; :func:`main`
prints it as one line on stderr and returns 2.
"""

from __future__ import annotations

if __name__ == "__main__":   # a signal while the modules below import: nothing was written yet
    import os as _os
    import signal as _signal

    def _early_exit(signum, frame):
        _os.write(2, b"python -m tune_food.sweep: interrupted before the sweep started; "
                     b"nothing was written\n")
        _os._exit(130)

    _signal.signal(_signal.SIGINT, _early_exit)
    _signal.signal(_signal.SIGTERM, _early_exit)

import argparse
import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

from ray.tune import Callback

from .cliargs import Parser, path_arg
from .errors import ResourceError, SweepError, TuneFoodError, cli_call, quiet_broken_pipe
from .outputs import SPACE_FILE, STATE_FILE, write_outputs
from .search import Relocatable, check_search, make_search, rungs_of
from .spaces import SearchSpace, default_space_dir, load_space
from .trainable import split_dirs

PROG = "python -m tune_food.sweep"
MAX_NAME_BYTES = 200     # sweep names; file systems allow 255 bytes per path component
MAX_TRIAL_NAME = 120     # trial folder names are cut to this many characters (+ the id)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Run a Ray Tune sweep of frozen-backbone EfficientNet "
                "classifiers and write a ranked leaderboard.")
    what = p.add_argument_group("what to run")
    what.add_argument("--grid", action="store_true",
                      help="run every combination of the space's grid_search values "
                      "(default space: search_spaces/grid.yaml)")
    what.add_argument("--search", choices=["optuna", "random"],
                      help="sample the space instead: Optuna (TPE) or random search "
                      "(default space: search_spaces/optuna.yaml)")
    what.add_argument("--space", metavar="FILE", type=path_arg, help="search-space YAML file")
    what.add_argument("--num-samples", type=int, default=None, metavar="N",
                      help="trials to sample with --search (default 20); with --grid, "
                      "repeats of the grid (default 1)")
    what.add_argument("--scheduler", choices=["fifo", "asha"], default=None,
                      help="trial scheduler: asha stops poor trials early (default: asha "
                      "with --search, fifo with --grid)")
    where = p.add_argument_group("where")
    where.add_argument("--data-dir", metavar="DIR", type=path_arg,
                       help="data root holding the datasets (default: $TUNE_FOOD_DATA_DIR, "
                       "else ./data)")
    where.add_argument("--results-dir", "--storage-path", dest="results_dir", metavar="DIR",
                       type=path_arg, default="results", help="where sweeps are written: a folder or a "
                       "URI such as s3://bucket/path (default: results)")
    where.add_argument("--name", help="sweep name: the sweep's folder under --results-dir "
                       "(default: <space>-<date>-<time>)")
    where.add_argument("--cache-dir", metavar="DIR", default=None, type=path_arg,
                       help="feature cache folder (default: $TUNE_FOOD_CACHE_DIR, else "
                       "~/.cache/tune_food/features)")
    how = p.add_argument_group("resources and behaviour")
    how.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="N",
                     help="CPUs reserved for each trial (default 1)")
    how.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="F",
                     help="GPUs for each trial; fractions share a GPU (default 0)")
    how.add_argument("--max-concurrent", type=int, default=0, metavar="N",
                     help="at most N trials at once (default: as many as resources allow)")
    how.add_argument("--address", metavar="ADDR",
                     help="Ray cluster to join, e.g. auto or ray://host:10001 (default: "
                     "start a local Ray)")
    how.add_argument("--autoscale", action="store_true",
                     help="the cluster has an autoscaler (ray up) that adds nodes on "
                     "demand: accept requests no current node can satisfy")
    how.add_argument("--feature-cache", choices=["auto", "off"], default="auto",
                     help="auto: compute backbone features once and train heads on them "
                     "where exact; off: run the full image pipeline in every trial")
    how.add_argument("--allow-leakage", action="store_true",
                     help="run even when test images are byte-identical to training images "
                     "(recorded in sweep.json)")
    how.add_argument("--skip-bad-images", action="store_true",
                     help="leave out images that cannot be decoded instead of stopping")
    how.add_argument("--max-failures", type=int, default=1, metavar="N",
                     help="retries of a trial whose worker fails (default 1)")
    how.add_argument("--resume", action="store_true",
                     help="continue the interrupted sweep --name: finished trials are kept, "
                     "unfinished and errored ones run again")
    how.add_argument("--dry-run", action="store_true",
                     help="check everything, print the trial table and the resource plan, exit")
    how.add_argument("--seed", type=int, default=0,
                     help="seed of the search algorithm (--search) (default 0)")
    how.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


# --------------------------------------------------------------------------- planning

@dataclass
class Plan:
    """Everything checked before launch."""

    space: SearchSpace
    data_root: str
    datasets: dict[str, str]                  # name -> absolute folder
    exclude: list[str]                        # skipped bad images (absolute paths)
    bad_images: list[tuple[str, str]]
    weights: dict[str, str]                   # model -> weights file (or "will download")
    trials: list[dict[str, Any]]              # listable trial configs (grid), or samples
    pairs: list[tuple[str, str]]              # (model, split dir) feature sets needed
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # phase -> seconds
    validation: Any = None                    # tune_food.validation.ValidationPlan


def trial_name(config: dict[str, Any], varied: Sequence[str]) -> str:
    """Readable trial name from the hyperparameters that vary, e.g.
    ``efficientnet_lite2-pizza_steak_sushi_20_percent-10_epochs``."""
    parts = []
    for key in varied or ["model", "data", "epochs"]:
        value = config.get(key)
        if key in ("model", "data"):
            parts.append(str(value))
        elif key == "epochs":
            parts.append(f"{value}_epochs")
        elif isinstance(value, float):
            parts.append(f"{key}={value:.3g}")
        else:
            parts.append(f"{key}={value}")
    return "-".join(parts)


class TrialNamer:
    """``trial_name_creator`` / ``trial_dirname_creator`` for Ray Tune (picklable)."""

    def __init__(self, varied: Sequence[str], with_id: bool):
        self.varied, self.with_id = list(varied), with_id

    def __call__(self, trial) -> str:
        name = trial_name(trial.config, self.varied)[:MAX_TRIAL_NAME]  # a folder name
        return f"{name}_{trial.trial_id.split('_')[-1]}" if self.with_id else name


def expand_grid(space: SearchSpace) -> list[dict[str, Any]]:
    """Every configuration of a grid space (constants and ``grid_search`` lists)."""
    keys = list(space.param_space)
    choices = [space.values[k] for k in keys]   # a constant lists itself alone
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices)]


def plan_sweep(space: SearchSpace, args: argparse.Namespace) -> Plan:
    """Resolve and validate data and weights for ``space``; list trials and feature sets.

    Raises:
        DataError, WeightsError: see :mod:`tune_food.data` and :mod:`tune_food.models`.
    """
    from .data import (DATASETS, resolve_data_root, resolve_dataset, split_samples,
                       url_reachable, validate_image_folder)
    from .validation import shared_validation
    from .errors import WeightsError
    from .models import ensure_weights, get_spec, weights_path, weights_url

    data_root = resolve_data_root(args.data_dir)
    notes: list[str] = []
    datasets: dict[str, str] = {}
    unreachable: list[str] = []
    for name in space.datasets:
        path = os.path.join(data_root, name)
        if not os.path.isdir(path) and name in DATASETS:
            if not url_reachable(DATASETS[name].url):
                unreachable.append(f"dataset {name} ({DATASETS[name].url} -> {path})")
            elif args.dry_run:
                notes.append(f"dataset {name} is not in {data_root}: it will be downloaded")
            datasets[name] = path
            continue
        datasets[name] = resolve_dataset(name, data_root, download=False)
    weights: dict[str, str] = {}
    for model in space.models:
        path = weights_path(model)
        if not os.path.isfile(path) and get_spec(model).family == "torchvision":
            url = weights_url(model)
            if not url_reachable(url):
                unreachable.append(f"weights of {model} ({url} -> {path})")
            else:
                notes.append(f"weights of {model} are not in {os.path.dirname(path)}: they will "
                             "be downloaded")
            weights[model] = "will be downloaded"
            continue
        weights[model] = ensure_weights(model, download=False)
    if unreachable:
        raise WeightsError(
            f"{len(unreachable)} download(s) needed and this machine cannot reach them: "
            + "; ".join(unreachable) + "; download each on a machine with internet and put it "
            "at the path shown (torchvision weights go to $TORCH_HOME/hub/checkpoints), or "
            "point --data-dir at a folder that has the datasets")
    if not args.dry_run:  # reachable: fetch them now, before any trial
        for name, path in datasets.items():
            if not os.path.isdir(path):
                datasets[name] = resolve_dataset(name, data_root)
        weights = {m: ensure_weights(m) for m in space.models}
    bad: list[tuple[str, str]] = []
    scanned: dict = {}   # each split folder decoded once, however many pairs use it
    train_samples: dict[str, list[tuple[str, int]]] = {}
    test_samples: dict[str, list[tuple[str, int]]] = {}
    for name in space.values["data"]:
        for test_value in space.values["test_data"]:
            if not os.path.isdir(datasets[name]):
                continue  # dry run of a dataset still to download
            for test_name in _test_names(test_value, name):
                test_dir = os.path.join(datasets[test_name], "test")
                info = validate_image_folder(datasets[name], args.skip_bad_images,
                                             test_dir=test_dir if os.path.isdir(test_dir) else None,
                                             scanned=scanned)
                bad.extend(b for b in info.bad_images if b not in bad)
                train_samples[name] = info.train.samples
            test_split = split_dirs({"data": name, "test_data": test_value}, datasets)[1]
            test_samples[_test_label(test_value, name)] = \
                split_samples(test_split, [p for p, _ in bad])[1]
    notes += _check_content(train_samples, test_samples, space, args)
    val_fraction = space.values["val_fraction"][0] if space.values["val_fraction"] else 0.0
    validation = shared_validation(train_samples, float(val_fraction or 0.0), args.seed)
    if validation.warning:
        notes.append("warning: " + validation.warning)
    if space.is_grid:
        trials = expand_grid(space) * max(1, args.num_samples or 1)
    else:
        trials = []
    pairs: list[tuple[str, str]] = []
    combos = trials or [dict(model=m, data=d, test_data=t) for m in space.models
                        for d in space.values["data"] for t in space.values["test_data"]]
    for cfg in combos:
        if cfg.get("augment") or args.feature_cache == "off":
            continue
        train_dir, test_dir = split_dirs(cfg, datasets)
        pairs.extend([(cfg["model"], train_dir), (cfg["model"], test_dir)])
    pairs = list(dict.fromkeys(pairs))
    return Plan(space, data_root, datasets, sorted(p for p, _ in bad), bad,
                weights, trials, pairs, notes, validation=validation)


def _test_names(test_value, data: str) -> list[str]:
    """The datasets whose test splits test a trial (``test_data`` may be a list)."""
    if isinstance(test_value, (list, tuple)):
        return list(test_value)
    return [test_value or data]


def _test_label(test_value, data: str) -> str:
    return "+".join(_test_names(test_value, data))


def _check_content(train: dict, test: dict, space: SearchSpace, args) -> list[str]:
    """Leakage (a test image's bytes in a training split) is an error unless
    ``--allow-leakage``; duplicates inside a split are a warning. Returns notes.

    Raises:
        DataError: leaked test images, named (see :func:`tune_food.validation.leakage_error`).
    """
    from .validation import find_leakage, group_duplicates, leakage_error

    leaks = {}
    for name, samples in train.items():
        for test_value in space.values["test_data"]:
            label = _test_label(test_value, name)
            found = find_leakage(samples, test.get(label, []))
            if found:
                leaks[(name, label)] = found
    notes = []
    if leaks and not args.allow_leakage:
        raise leakage_error(leaks)
    if leaks:
        total = sum(len(v) for v in leaks.values())
        notes.append(f"warning: {total} test image(s) are also training images "
                     "(--allow-leakage; recorded in sweep.json)")
    splits = {f"{n}/train": s for n, s in train.items()}
    splits.update({f"{n} test": s for n, s in test.items()})
    for name, (images, extra) in group_duplicates(splits).items():
        notes.append(f"warning: {name} holds {images} image(s) more than once "
                     f"({extra} extra copies)")
    return notes


@dataclass
class ClusterInfo:
    nodes: list[dict[str, float]]   # per alive node: {"CPU": n, "GPU": n}
    address: str | None

    @property
    def cpus(self) -> float:
        return sum(n.get("CPU", 0) for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.get("GPU", 0) for n in self.nodes)


def local_cluster() -> ClusterInfo:
    """What a local Ray started by this process would have: this machine's CPUs/GPUs."""
    import torch

    return ClusterInfo([{"CPU": float(os.cpu_count() or 1),
                         "GPU": float(torch.cuda.device_count())}], None)


def connected_cluster() -> ClusterInfo:
    """The alive nodes of the Ray cluster this process is connected to."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo([{"CPU": r.get("CPU", 0.0), "GPU": r.get("GPU", 0.0)} for r in nodes],
                       ray.get_runtime_context().gcs_address)


def check_resources(args: argparse.Namespace, cluster: ClusterInfo) -> int:
    """Check the per-trial request against the cluster; return how many trials fit at once.

    Raises:
        ResourceError: a request no node can satisfy (CPUs <= 0, more CPUs or GPUs
            than the largest node has), so trials would stay PENDING forever.
    """
    cpt, gpt = args.cpus_per_trial, args.gpus_per_trial
    if not cpt > 0:
        raise ResourceError(f"--cpus-per-trial must be > 0, got {cpt:g}; a trial needs at "
                            "least part of a CPU")
    if gpt < 0:
        raise ResourceError(f"--gpus-per-trial must be >= 0, got {gpt:g}")
    if gpt > 1 and gpt != int(gpt):
        raise ResourceError(f"--gpus-per-trial {gpt:g}: above 1 a trial needs whole GPUs")
    if args.max_concurrent < 0:
        raise ResourceError(f"--max-concurrent must be >= 0 (0: no limit), got {args.max_concurrent}")
    where = f"the Ray cluster at {cluster.address}" if cluster.address else "this machine"
    fits = [min(n.get("CPU", 0) // cpt, (n.get("GPU", 0) // gpt) if gpt else math.inf)
            for n in cluster.nodes]
    if not any(f >= 1 for f in fits) and getattr(args, "autoscale", False):
        return args.max_concurrent or 1
    if not any(f >= 1 for f in fits):
        biggest_cpu = max((n.get("CPU", 0) for n in cluster.nodes), default=0)
        biggest_gpu = max((n.get("GPU", 0) for n in cluster.nodes), default=0)
        raise ResourceError(
            f"no node of {where} can run a trial with {cpt:g} CPUs and {gpt:g} GPUs (largest "
            f"node: {biggest_cpu:g} CPUs, {biggest_gpu:g} GPUs); lower --cpus-per-trial / "
            "--gpus-per-trial, add nodes that have them, or on an autoscaling cluster "
            "(ray up) pass --autoscale")
    slots = int(sum(f for f in fits if f >= 1))
    return min(slots, args.max_concurrent) if args.max_concurrent else slots


# --------------------------------------------------------------------------- output

def _print_plan(plan: Plan, args: argparse.Namespace, cluster: ClusterInfo, concurrent: int,
                out=sys.stdout) -> None:
    import pandas as pd

    space = plan.space
    shown = space.varied or ["model", "data", "epochs"]
    print(f"search space: {space.path}  (ranked by {space.metric}, {space.mode})", file=out)
    if plan.trials:
        rows = [{"#": i + 1, "trial": trial_name(t, space.varied),
                 **{k: t[k] for k in shown}} for i, t in enumerate(plan.trials)]
        print(f"{len(plan.trials)} trials:", file=out)
        print(pd.DataFrame(rows).to_string(index=False), file=out)
    else:
        n = args.num_samples or 20
        print(f"{n} trials sampled by {args.search} from:", file=out)
        for k in space.varied:
            print(f"  {k}: {space.raw['parameters'].get(k, space.values[k])}", file=out)
    gpu = f", {args.gpus_per_trial:g} GPU" if args.gpus_per_trial else ", no GPU"
    where = f"Ray cluster {cluster.address}" if cluster.address else "local Ray on this machine"
    print(f"resources: {args.cpus_per_trial:g} CPU{gpu} per trial; {where}: "
          f"{len(cluster.nodes)} node(s), {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs "
          f"-> {concurrent} trial(s) at a time", file=out)
    if plan.pairs:
        print(f"feature sets to compute once (or read from the cache): {len(plan.pairs)}", file=out)
        for model, split in plan.pairs:
            print(f"  {model}  {split}", file=out)
    else:
        print("feature cache: off (every trial runs the full image pipeline)", file=out)
    if plan.bad_images:
        print(f"skipping {len(plan.bad_images)} image(s) that cannot be decoded "
              "(--skip-bad-images; listed in sweep.json):", file=out)
        for path, reason in plan.bad_images[:10]:
            print(f"  {path}: {reason}", file=out)
    v = plan.validation
    if v is not None and v.source != "none":
        print(f"validation: {v.images} images, {v.source}"
              + (" by every training dataset (same images for every trial)"
                 if v.source == "shared" else ""), file=out)
    for note in plan.notes:
        print(note if note.startswith("warning:") else f"note: {note}", file=out)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("tune_food", "torch", "torchvision", "timm", "ray", "optuna", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _dataset_fingerprint(path: str, data_root: str) -> dict[str, Any]:
    """Files, bytes and a SHA-256 over (relative path, size) of every file of a dataset;
    its ``path`` relative to the data root."""
    digest, files, size = hashlib.sha256(), 0, 0
    for root, dirs, names in sorted(os.walk(path)):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            st = os.stat(p)
            digest.update(f"{os.path.relpath(p, path)}\t{st.st_size}\n".encode())
            files, size = files + 1, size + st.st_size
    return {"path": os.path.relpath(path, data_root), "files": files, "bytes": size,
            "sha256": digest.hexdigest()}


# --------------------------------------------------------------------------- running

def _is_uri(path: str) -> bool:
    return "://" in path


def _local_dir(exp_dir: str, name: str) -> str:
    """Where the sweep's own files (CSV, JSON, plots) are written on this machine: the
    experiment folder itself, or for a URI ``./results/<name>`` (then uploaded)."""
    return os.path.abspath(os.path.join("results", name)) if _is_uri(exp_dir) else exp_dir


def _upload(local_dir: str, exp_dir: str) -> None:
    """Copy the sweep's own files to a URI experiment folder with pyarrow's filesystems
    (the same ones Ray Tune uses for ``storage_path``)."""
    if not _is_uri(exp_dir):
        return
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(exp_dir)
    for entry in ("leaderboard.csv", "leaderboard_by_config.csv", "results.csv", STATE_FILE,
                  SPACE_FILE, "plots"):
        src = os.path.join(local_dir, entry)
        if os.path.isdir(src):
            fs.create_dir(f"{root}/{entry}", recursive=True)
        if os.path.exists(src):
            pyarrow.fs.copy_files(src, f"{root}/{entry}", destination_filesystem=fs)


def _experiment_dir(results_dir: str, name: str) -> str:
    return f"{results_dir.rstrip('/')}/{name}" if _is_uri(results_dir) else \
        os.path.join(os.path.abspath(results_dir), name)


def run_sweep(args: argparse.Namespace, out=None) -> int:
    """Run (or with ``--dry-run`` only plan) a sweep; return the exit code.

    Returns:
        0 when every trial finished, 1 when some errored (their names are printed).

    Raises:
        TuneFoodError: any problem found before launch.
    """
    out = out or sys.stdout
    if args.grid and args.search:
        raise SweepError("--grid and --search exclude each other: --grid runs every "
                         "combination of a grid space, --search samples a space; pass one")
    if args.resume:
        args = _resume_args(args)   # a saved sweep passed the checks above when it started
    if not args.grid and not args.search:
        raise SweepError("choose what to run: --grid (every combination of a grid space) "
                         "or --search optuna|random (sample a space)")
    if args.grid and (args.num_samples or 1) > 1:
        raise SweepError(f"--grid with --num-samples {args.num_samples} would repeat identical "
                         "trials (same seed); to repeat configurations with other seeds add "
                         "seeds: [0, 1, 2] to the space")
    if args.num_samples is not None and args.num_samples < 1:
        raise SweepError(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.max_failures < 0:
        raise SweepError(f"--max-failures must be >= 0, got {args.max_failures}")
    if args.autoscale and not args.address:
        raise SweepError("--autoscale needs --address of a cluster started by `ray up` (its "
                         "autoscaler adds nodes); a local Ray cannot add nodes, so drop "
                         "--autoscale or pass --address auto on the cluster's head node")
    space_path = args.space or os.path.join(default_space_dir(),
                                            "grid.yaml" if args.grid else "optuna.yaml")
    if args.resume and os.path.isfile(os.path.join(args.sweep_dir, SPACE_FILE)):
        space_path = os.path.join(args.sweep_dir, SPACE_FILE)  # the sweep's own copy
    space = load_space(space_path)
    if args.search == "optuna" and any(k == "seed" for k in space.varied) and "seeds" in space.raw:
        raise SweepError(f"{space.path}: seeds repeats grid configurations; with --search "
                         "optuna sample the seed instead (parameters.seed: {randint: [0, 1000]})")
    if args.grid and not space.is_grid:
        raise SweepError(f"{space.path} samples parameters ({', '.join(space.varied)}); "
                         "--grid needs constants and grid_search lists only; use --search "
                         "optuna or --search random for this space")
    check_search(space, args.search, args.seed, args.max_concurrent)
    name = args.name if args.name is not None else \
        f"{os.path.splitext(os.path.basename(space.path))[0]}-" \
        f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise SweepError(f"--name {name!r} must be a plain, non-empty folder name")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise SweepError(f"--name is {len(name.encode())} bytes long; file systems hold "
                         f"folder names up to 255 bytes and tune_food allows {MAX_NAME_BYTES}: "
                         "choose a shorter name")
    exp_dir = _experiment_dir(args.results_dir, name)
    if not args.resume and not _is_uri(exp_dir) and os.path.exists(exp_dir):
        raise SweepError(f"sweep {exp_dir} exists already; choose another --name or add "
                         "--resume to continue it")
    for flag, folder in (("--results-dir", args.results_dir), ("--cache-dir", args.cache_dir)):
        if folder and not _is_uri(folder):
            _check_writable_folder(flag, folder)

    cluster = local_cluster()
    if args.address:
        _init_ray(args)
        cluster = connected_cluster()
    concurrent = check_resources(args, cluster)
    checks_start = time.perf_counter()
    plan = plan_sweep(space, args)
    if args.resume:
        _check_same_data(plan, args)
    plan.timings["checks_s"] = time.perf_counter() - checks_start
    _print_plan(plan, args, cluster, concurrent, out)
    if args.dry_run:
        return 0
    if not _is_uri(exp_dir):
        _warn_local_storage(args, cluster, out)
    return _launch(plan, args, name, exp_dir, concurrent, out)


def _check_same_data(plan: Plan, args: argparse.Namespace) -> None:
    """A resumed sweep must see the data its finished trials saw.

    Raises:
        SweepError: a dataset whose files (names, sizes) differ from the fingerprint in
            the sweep's ``sweep.json``.
    """
    with open(os.path.join(args.sweep_dir, STATE_FILE)) as fh:
        saved = json.load(fh).get("datasets", {})
    changed = [f"{name} ({saved[name]['files']} files then, {now['files']} now)"
               for name, path in plan.datasets.items() if name in saved and os.path.isdir(path)
               for now in [_dataset_fingerprint(path, plan.data_root)]
               if now["sha256"] != saved[name].get("sha256")]
    if changed:
        raise SweepError(f"the data changed since sweep {args.name!r} started: "
                         f"{', '.join(changed)}; its trials would be ranked on different "
                         "images: restore the data, or start a new sweep with another --name")


def _check_writable_folder(flag: str, folder: str) -> None:
    """A folder flag must name a folder this process can create or write in.

    Raises:
        SweepError: it is a file, or its nearest existing ancestor is a file or is not
            writable.
    """
    path = os.path.abspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        raise SweepError(f"{flag} {folder} is a file, not a folder; pass a folder (it is "
                         "created when missing)")
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise SweepError(f"{flag} {folder} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SweepError(f"{flag} {folder} cannot be written: no write permission in {probe}; "
                         "pass a folder you can write to")


def _warn_local_storage(args, cluster: ClusterInfo, out) -> None:
    if len(cluster.nodes) > 1:
        print(f"warning: --results-dir {args.results_dir} is a local path on a "
              f"{len(cluster.nodes)}-node cluster; Ray does not copy trial folders to the "
              "head node, so use shared storage (an NFS mount on every node, or "
              "s3://... / gs://...)", file=out)


class _Progress(Callback):
    """Tune callback printing one line per finished or failed trial."""

    def __init__(self, total: int | None, metric: str, out):
        self.total, self.metric, self.out, self.done = total, metric, out, 0

    def _line(self, trial, what: str) -> None:
        self.done += 1
        r, metric = trial.last_result or {}, self.metric
        total_s = f"/{self.total}" if self.total else ""
        score = f"{metric} {r[metric]:.4f}" if isinstance(r.get(metric), float) else ""
        if "test_acc" in r and metric != "test_acc":
            score += f"  test_acc {r['test_acc']:.4f}"
        ci = (f" [{r['test_acc_ci_low']:.3f}, {r['test_acc_ci_high']:.3f}]"
              if "test_acc_ci_low" in r else "")
        print(f"[{self.done}{total_s}] {what:<7} {trial.trial_id}  {str(trial):<60} "
              f"{score}{ci}  epochs {r.get('epoch', 0)}", file=self.out, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = (trial.last_result or {}).get("epoch", 0)
        self._line(trial, "done" if epochs >= int(trial.config.get("epochs", 0)) else "stopped")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, "ERROR")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` or ``ray://host:port`` address must accept a TCP connection
    (Ray itself retries an unreachable GCS for minutes).

    Raises:
        ResourceError: nothing listens there.
    """
    target = address.split("://", 1)[-1]
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot connect to the Ray cluster at --address {address} "
                            f"({exc}); start it (ray start --head, or ray up cluster.yaml) or "
                            "fix the address") from None


def _init_ray(args: argparse.Namespace) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict[str, Any] = dict(logging_level="ERROR", log_to_driver=False)
    if args.address:
        _check_reachable(args.address)
        kwargs["address"] = args.address
    else:
        # "local": always a new local Ray. Plain ray.init() would join a cluster named in
        # /tmp/ray/ray_current_cluster, and hang on a stale one left by a crashed `ray start`.
        kwargs["address"] = "local"
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
        if threading_main():   # Ray's core worker installs its own SIGTERM handler (abort)
            signal.signal(signal.SIGTERM, _sigterm_as_sigint)
    except (ConnectionError, TimeoutError, ValueError) as exc:
        if not args.address:
            raise
        raise ResourceError(f"cannot connect to the Ray cluster at --address {args.address} "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                            "start it (ray start --head, or ray up cluster.yaml) or fix the "
                            "address") from None


def _launch(plan: Plan, args: argparse.Namespace, name: str, exp_dir: str, concurrent: int,
            out) -> int:
    """Write ``sweep.json``, compute the feature sets, run the trials, write the outputs.

    A SIGINT (or SIGTERM, turned into SIGINT by :func:`main`) in any phase ends the
    sweep as ``interrupted``: Ray Tune stops its trials itself, the outputs are written
    from what the trials reported, ``sweep.json`` says ``interrupted`` and how to resume,
    and the exit code is 130.
    """
    local_dir = _local_dir(exp_dir, name)
    state = _start_state(plan, args, name, local_dir)
    started = time.time()
    interrupted = False
    try:
        _run_trials(plan, args, name, exp_dir, local_dir, state, out)
    except KeyboardInterrupt:
        interrupted = True
    try:
        code = _finish(plan, name, exp_dir, local_dir, state, started, interrupted,
                       _resume_command(args, name, portable=True), out)
    except KeyboardInterrupt:
        state.update(status="interrupted", resume=_resume_command(args, name, portable=True))
        _write_state(state, local_dir)
        code = 130
    if code == 130:
        print(f"sweep interrupted; continue it with: {_resume_command(args, name)}",
              file=sys.stderr)
    _shutdown_ray()
    return code


def _resume_command(args: argparse.Namespace, name: str, portable: bool = False) -> str:
    """The command that continues sweep ``name``; ``portable`` (for ``sweep.json``)
    names the results folder by what it is, not where it was."""
    if portable:
        return (f"{PROG} --resume --name {shlex.quote(name)} --results-dir "
                f"<the folder that holds {name}>")
    results = "" if args.results_dir == "results" else \
        f" --results-dir {shlex.quote(args.results_dir)}"
    return f"{PROG} --resume --name {shlex.quote(name)}{results}"


def _write_state(state: dict, local_dir: str) -> None:
    from .files import write_json_atomic

    write_json_atomic(state, os.path.join(local_dir, STATE_FILE))


def _relative_to_data(path: str, plan: Plan) -> str:
    """Data paths in ``sweep.json`` are relative to the data root, so the sweep folder
    names nothing absolute and stays valid when moved or copied."""
    return os.path.relpath(path, plan.data_root)


def _start_state(plan: Plan, args: argparse.Namespace, name: str, local_dir: str) -> dict:
    """Create (or on --resume, reopen) ``sweep.json`` with status ``running`` and keep a
    copy of the search space in the sweep folder (``space.yaml``)."""
    os.makedirs(local_dir, exist_ok=True)
    state_file = os.path.join(local_dir, STATE_FILE)
    space = plan.space
    if args.resume and os.path.isfile(state_file):
        with open(state_file) as fh:
            state = json.load(fh)
        state.setdefault("resumed", []).append(_dt.datetime.now().isoformat(timespec="seconds"))
    else:
        shutil.copyfile(space.path, os.path.join(local_dir, SPACE_FILE))
        state = {"name": name, "space_file": SPACE_FILE,
                 "space": space.raw, "metric": space.metric, "mode": space.mode,
                 # the sweep is where its folder is: --results-dir is not saved, so a
                 # moved or copied sweep names no place it was once in
                 "args": {k: v for k, v in vars(args).items()
                          if k not in ("sweep_dir", "results_dir")},
                 "versions": _versions(),
                 "datasets": {n: _dataset_fingerprint(p, plan.data_root)
                              for n, p in plan.datasets.items()},
                 "skipped_bad_images": [{"path": _relative_to_data(p, plan), "reason": r}
                                        for p, r in plan.bad_images],
                 "validation": plan.validation.summary(),
                 "allow_leakage": bool(args.allow_leakage),
                 "started": _dt.datetime.now().isoformat(timespec="seconds")}
    state.update(status="running", driver_pid=os.getpid(), driver_host=socket.gethostname())
    state.pop("resume", None)
    _write_state(state, local_dir)
    return state


def _run_trials(plan: Plan, args: argparse.Namespace, name: str, exp_dir: str, local_dir: str,
                state: dict, out) -> None:
    """Start Ray, compute the feature sets once, run the Tuner (interruptible)."""
    import ray
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from .features import compute_feature_sets
    from .tb import TensorBoardCallback
    from .trainable import train_food

    space = plan.space
    # Our TensorBoardCallback is a plain LoggerCallback: keep Tune from adding its own
    # TensorBoard logger beside it; the CSV and JSON loggers (progress.csv, result.json)
    # are Tune's own, passed explicitly.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not _is_uri(exp_dir):  # cheap on local disk; makes --resume lose at most 2 s of work
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    ray_start = time.perf_counter()
    _init_ray(args)
    plan.timings["ray_init_s"] = time.perf_counter() - ray_start
    search_alg, scheduler, num_samples = make_search(
        space, args.search, args.scheduler, args.seed, args.max_concurrent, args.num_samples)
    state.setdefault("planned", {"trials": len(plan.trials) or num_samples,
                                 "configs": [dict(t) for t in plan.trials]})
    _write_state(state, local_dir)
    cache_dir = args.cache_dir or os.environ.get("TUNE_FOOD_CACHE_DIR") or \
        os.path.join(os.path.expanduser("~"), ".cache", "tune_food", "features")
    features, feature_info = {}, []
    t0 = time.perf_counter()
    if plan.pairs:
        print(f"computing {len(plan.pairs)} feature sets once ...", file=out, flush=True)
        try:
            features, feature_info = compute_feature_sets(
                plan.pairs, args.cpus_per_trial, args.gpus_per_trial, cache_dir, plan.exclude,
                out=out)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, TuneFoodError):
                raise cause from None
            raise
        for info in feature_info:
            info["split_dir"] = "+".join(_relative_to_data(d, plan)
                                         for d in info.pop("split_dirs"))
    plan.timings["features_s"] = time.perf_counter() - t0
    state.update(feature_sets=feature_info, feature_extraction_s=plan.timings["features_s"])
    _write_state(state, local_dir)

    rungs = rungs_of(scheduler, space)
    param_space = dict(space.param_space, feature_cache=args.feature_cache)
    trainable = tune.with_resources(
        tune.with_parameters(train_food, datasets=plan.datasets, features=features,
                             exclude=plan.exclude, checkpoint_epochs=rungs,
                             val_sets=plan.validation.sets or None),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
    namer_name, namer_dir = TrialNamer(space.varied, False), TrialNamer(space.varied, True)
    run_config = tune.RunConfig(
        name=name, storage_path=os.path.dirname(exp_dir) if not _is_uri(exp_dir)
        else exp_dir.rsplit("/", 1)[0],
        callbacks=[TensorBoardCallback(), CSVLoggerCallback(), JsonLoggerCallback(),
                   _Progress(len(plan.trials) or num_samples, space.metric, out)],
        failure_config=tune.FailureConfig(max_failures=args.max_failures),
        # keep every checkpoint (about 60 KB each): with num_to_keep set, Tune
        # snapshots the whole experiment state after every checkpoint
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        verbose=0)
    # trials created from here on go where the sweep is now (see tune_food.search)
    Relocatable.location = None if _is_uri(exp_dir) else (os.path.dirname(exp_dir), name)
    if args.resume and tune.Tuner.can_restore(exp_dir):
        tuner = tune.Tuner.restore(exp_dir, trainable=trainable, param_space=param_space,
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space=param_space, run_config=run_config,
            tune_config=tune.TuneConfig(
                metric=space.metric, mode=space.mode, num_samples=num_samples,
                search_alg=search_alg, scheduler=scheduler,
                max_concurrent_trials=args.max_concurrent or None, reuse_actors=True,
                trial_name_creator=namer_name, trial_dirname_creator=namer_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fit_start = time.perf_counter()
        try:
            tuner.fit()  # Ray Tune handles SIGINT itself: it stops the trials and returns
        finally:
            plan.timings["trials_s"] = time.perf_counter() - fit_start


def _finish(plan: Plan, name: str, exp_dir: str, local_dir: str, state: dict, started: float,
            interrupted: bool, resume: str, out) -> int:
    """Write the outputs (:func:`tune_food.outputs.write_outputs`) and the final
    ``sweep.json``; print the summary; return the exit code (0 finished, 1 some trial
    failed, 130 interrupted)."""
    outputs_start = time.perf_counter()
    try:
        result = write_outputs(exp_dir, local_dir, state)
    except SweepError:   # interrupted before Tune saved any trial
        if not interrupted:
            raise
        result = None
    status = "interrupted" if interrupted or result is None else result.status
    plan.timings["outputs_s"] = time.perf_counter() - outputs_start
    wall = time.time() - started
    board = result.board if result is not None else None
    errored = [] if board is None or board.empty else \
        list(board.loc[board["status"] == "ERROR", "trial_name"])
    state.update(status=status, finished=_dt.datetime.now().isoformat(timespec="seconds"),
                 wall_s=wall, timings=plan.timings,
                 comparison=result.summary if result is not None else "",
                 trials=0 if board is None else len(board), errored=errored)
    if status == "interrupted":
        state["resume"] = resume
    _write_state(state, local_dir)
    if board is not None:
        _print_summary(board, plan.space, local_dir, exp_dir, wall, status, out)
        if result.summary:
            print(result.summary, file=out)
        print("time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in plan.timings.items()),
              file=out)
        for path in result.files:
            if path.endswith(".png"):
                print(f"plot: {path}", file=out)
    _upload(local_dir, exp_dir)
    if status == "interrupted":
        return 130
    if errored:
        print(f"{len(errored)} trial(s) failed: {', '.join(errored)}; see their error.txt in "
              "the trial folders", file=sys.stderr)
        return 1
    return 0


def _shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _print_summary(board, space: SearchSpace, local_dir: str, exp_dir: str, wall: float,
                   status: str, out) -> None:
    import pandas as pd

    cols = [c for c in ["rank", "trial_name", "status", "epochs_done", space.metric, "test_acc",
                        "test_acc_ci_low", "test_acc_ci_high", "test_loss", "p_vs_best",
                        "feature_cache", "time_total_s"]
            if c in board]
    cols = list(dict.fromkeys(cols))
    counts = board["status"].value_counts()
    detail = ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"\nsweep {status} after {wall:.1f} s: {len(board)} trials ({detail}), ranked by "
          f"{space.metric} ({space.mode})", file=out)
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.4f}".format):
        print(board[cols].head(10).to_string(index=False), file=out)
    print(f"\nleaderboard: {local_dir}/leaderboard.csv", file=out)
    print(f"TensorBoard: tensorboard --logdir {shlex.quote(exp_dir)}", file=out)


def _resume_args(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments of the sweep being resumed, with this call's resource flags."""
    if not args.name:
        raise SweepError("--resume needs --name, the sweep to continue")
    exp_dir = _experiment_dir(args.results_dir, args.name)
    state_file = os.path.join(_local_dir(exp_dir, args.name), STATE_FILE)
    if not os.path.isfile(state_file):
        raise SweepError(f"no sweep named {args.name!r} in {os.path.abspath(args.results_dir)} "
                         f"({state_file} not found); check --name and --results-dir")
    with open(state_file) as fh:
        saved = json.load(fh)["args"]
    if args.space and os.path.abspath(args.space) != os.path.abspath(saved.get("space") or
                                                                      args.space):
        raise SweepError(f"--resume continues sweep {args.name!r} with its own search space "
                         f"({saved.get('space') or 'the default'}); drop --space {args.space}, "
                         "or start a new sweep with another --name")
    merged = argparse.Namespace(**{**vars(build_parser().parse_args(["--grid"])), **saved})
    for key in ("address", "cpus_per_trial", "gpus_per_trial", "max_concurrent", "debug",
                "max_failures", "data_dir", "cache_dir"):
        if getattr(args, key) != build_parser().get_default(key):
            setattr(merged, key, getattr(args, key))
    # the sweep is where it is now (it may have been moved or copied): never the original
    merged.results_dir, merged.sweep_dir = args.results_dir, os.path.dirname(state_file)
    merged.resume, merged.dry_run, merged.name = True, args.dry_run, args.name
    return merged


def _sigterm_as_sigint(signum, frame) -> None:
    """SIGTERM ends a sweep the way Ctrl-C does (Ray Tune stops its trials gracefully)."""
    os.kill(os.getpid(), signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (0 finished, 1 trials failed,
    2 bad input, 130 interrupted by SIGINT or SIGTERM)."""
    args = build_parser().parse_args(argv)
    previous = {}
    if threading_main():
        # a job started in the background by a non-interactive shell inherits SIGINT
        # ignored; `kill -INT` must still stop the sweep
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, _sigterm_as_sigint)}
    try:
        return cli_call(PROG, args.debug, run_sweep, args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the sweep started; nothing was written",
              file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def threading_main() -> bool:
    """True in the main thread (the only one that may install signal handlers)."""
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    quiet_broken_pipe()  # only as a program: in-process callers keep their SIGPIPE handling
    sys.exit(main())
