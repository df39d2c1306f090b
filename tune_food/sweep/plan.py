"""Plan a sweep before anything runs: search space + options -> trials and feature sets.

:func:`plan_sweep` resolves every dataset and every model's weights (listing all
downloads this machine cannot reach at once), decodes each split once to find bad
images, refuses test images that are also training images (leakage), picks the shared
validation set, lists the grid's trials in Ray Tune's own order (so the plan's numbers
are the trial folders' numbers) and the (model, split) feature sets to compute once.
Nothing here starts Ray or writes a file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import pandas as pd
from ray.tune.search.variant_generator import generate_variants

from tune_food.common.errors import SweepError, WeightsError
from tune_food.common.progress import Counter
from tune_food.data.datasets import (
    DATASETS,
    dataset_fingerprint,
    resolve_data_root,
    resolve_dataset,
    url_reachable,
)
from tune_food.data.splits import split_samples, validate_image_folder
from tune_food.data.validation import (
    find_leakage,
    group_duplicates,
    images_fingerprint,
    leakage_error,
    shared_validation,
)
from tune_food.models.registry import ensure_weights, weights_path, weights_url
from tune_food.sweep.options import SweepOptions
from tune_food.sweep.spaces import SearchSpace
from tune_food.sweepdir.record import Confirmation
from tune_food.sweepdir.state import read_state
from tune_food.train.hparams import is_cacheable, split_dirs

MAX_TRIAL_NAME = 120     # trial folder names are cut to this many characters (+ the id)


@dataclass(frozen=True)
class ExtensionPlan:
    """What a ``--resume`` adds to the sweep it resumes, decided once while planning
    (:func:`tune_food.sweep.run.run_sweep`): a search's ``--num-samples N`` above the
    trials it planned, a grid widened by ``--space wider.yaml`` (its new combinations),
    or an extension interrupted before its new trials began, which this resume finishes;
    or ``--confirm``'s new seeds of the top configurations (``confirm``).
    ``sweep.json`` records it as a :class:`~tune_food.sweepdir.record.Extension` (a
    confirmation: a :class:`~tune_food.sweepdir.record.Confirmation`)."""

    start: int                                  # the trials the sweep had planned
    to: int                                     # the trials it will hold
    added: list[dict[str, Any]] | None = None   # a widened grid's new combinations
    pending: bool = False                       # recorded before: a plain --resume finishes it
    confirm: Confirmation | None = None         # --confirm: added holds its trials' configs


@dataclass(frozen=True)
class Plan:
    """Everything checked before launch; not changed once planned (a resume's extension
    and a warm start's history are part of it when :func:`tune_food.sweep.run.run_sweep`
    has planned it)."""

    space: SearchSpace
    data_root: str
    datasets: dict[str, str]                  # name -> absolute folder
    exclude: list[str]                        # skipped bad images (absolute paths)
    bad_images: list[tuple[str, str]]
    weights: dict[str, str]                   # model -> weights file (or "will download")
    trials: list[dict[str, Any]]              # the grid's trial configs; [] for a search
    pairs: list[tuple[str, str]]              # (model, split dir) feature sets needed
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)   # planning's phase -> seconds
    validation: Any = None                    # tune_food.data.validation.ValidationPlan
    test_sets: dict[str, dict] = field(default_factory=dict)  # test label -> images_fingerprint
    history: Any = None                       # earlier trials for Optuna (sweep.history.History)
    extension: ExtensionPlan | None = None    # what a --resume adds, or None

    def relative(self, path: str) -> str:
        """``path`` relative to the data root: what ``sweep.json`` records, so a sweep
        folder names nothing absolute and stays valid when moved or copied."""
        return os.path.relpath(path, self.data_root)


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

    def __init__(self, varied: Sequence[str], with_id: bool, first: int = 0):
        self.varied, self.with_id, self.first = list(varied), with_id, first

    def __call__(self, trial) -> str:
        """The trial's name, with ``with_id`` its folder's: ``<name>_<id>``, the end of
        its trial id: a search's random id, or a grid's number plus ``first`` (a grid
        widened by a second Tuner numbers its folders on from the first's)."""
        name = trial_name(trial.config, self.varied)[:MAX_TRIAL_NAME]  # a folder name
        end = trial.trial_id.split("_")[-1]
        if "_" in trial.trial_id and end.isdigit():
            end = f"{int(end) + getattr(self, 'first', 0):05d}"   # (older pickles: no first)
        return f"{name}_{end}" if self.with_id else name


def expand_grid(space: SearchSpace) -> list[dict[str, Any]]:
    """Every configuration of a grid space, in the order Ray Tune creates the trials
    (Ray's own ``generate_variants``): the i-th config is trial ``..._{i:05d}``."""
    return [config for _, config in generate_variants(space.param_space)]


def plan_sweep(space: SearchSpace, options: SweepOptions, out=None) -> Plan:
    """Resolve and validate data and weights for ``space``; list trials and feature sets.
    With ``out``, decoding every image counts on it (:class:`~tune_food.common.progress.Counter`:
    a line each :data:`~tune_food.common.progress.PROGRESS_EVERY_S` while it lasts).

    Raises:
        DataError, WeightsError: see :mod:`tune_food.data` and :mod:`tune_food.models.registry`.
    """

    data_root = resolve_data_root(options.data_dir)
    datasets, weights, notes = _resolve_downloads(space, data_root, options.dry_run)
    bad, train_samples, test_samples = _scan(space, datasets, options.skip_bad_images, out)
    notes += _check_content(train_samples, test_samples, space, options.allow_leakage)
    val_fraction = space.values["val_fraction"][0] if space.values["val_fraction"] else 0.0
    validation = shared_validation(train_samples, float(val_fraction or 0.0), options.seed)
    if validation.warning:
        notes.append("warning: " + validation.warning)
    trials = expand_grid(space) if space.is_grid else []
    combos = trials or [dict(model=m, data=d, test_data=t) for m in space.models
                        for d in space.values["data"] for t in space.values["test_data"]]
    pairs = [(cfg["model"], split) for cfg in combos
             if is_cacheable(dict(cfg, feature_cache=options.feature_cache))
             for split in split_dirs(cfg, datasets)]
    return Plan(space=space, data_root=data_root, datasets=datasets,
                exclude=sorted(p for p, _ in bad), bad_images=bad, weights=weights,
                trials=trials, pairs=list(dict.fromkeys(pairs)), notes=notes,
                validation=validation,
                test_sets={label: images_fingerprint(samples)
                           for label, samples in sorted(test_samples.items())})


def _resolve_downloads(space: SearchSpace, data_root: str, dry_run: bool):
    """Datasets and weights: present, or reachable for download (a dry run only notes
    it; a real run downloads them now, before any trial).

    Returns:
        ``(datasets, weights, notes)``: name -> folder, model -> weights file.

    Raises:
        WeightsError: every download this machine cannot reach, listed at once.
    """

    notes: list[str] = []
    datasets: dict[str, str] = {}
    weights: dict[str, str] = {}
    unreachable: list[str] = []
    for name in space.datasets:
        path = os.path.join(data_root, name)
        if os.path.isdir(path) or name not in DATASETS:
            datasets[name] = resolve_dataset(name, data_root, download=False)
            continue
        datasets[name] = path
        if not url_reachable(DATASETS[name].url):
            unreachable.append(f"dataset {name} ({DATASETS[name].url} -> {path})")
        elif dry_run:
            notes.append(f"dataset {name} is not in {data_root}: it will be downloaded")
    for model in space.models:
        path = weights_path(model)
        if os.path.isfile(path) or not weights_url(model):   # no URL: weights ship with pip
            weights[model] = ensure_weights(model, download=False)
            continue
        weights[model] = "will be downloaded"
        if not url_reachable(weights_url(model)):
            unreachable.append(f"weights of {model} ({weights_url(model)} -> {path})")
        else:
            notes.append(f"weights of {model} are not in {os.path.dirname(path)}: they will "
                         "be downloaded")
    if unreachable:
        raise WeightsError(
            f"{len(unreachable)} download(s) needed and this machine cannot reach them: "
            + "; ".join(unreachable) + "; download each on a machine with internet and put it "
            "at the path shown (torchvision weights go to $TORCH_HOME/hub/checkpoints), or "
            "point --data-dir at a folder that has the datasets")
    if not dry_run:
        datasets = {n: p if os.path.isdir(p) else resolve_dataset(n, data_root)
                    for n, p in datasets.items()}
        weights = {m: ensure_weights(m) for m in space.models}
    return datasets, weights, notes


def _scan(space: SearchSpace, datasets: dict[str, str], skip_bad_images: bool, out=None):
    """Decode every split the sweep uses, once each (counted on ``out``).

    Returns:
        ``(bad, train, test)``: bad images as (path, reason); training samples per
        dataset; test samples per test label (:func:`test_label`).

    Raises:
        DataError: a malformed dataset, or bad images without ``skip_bad_images``.
    """

    bad: list[tuple[str, str]] = []
    scanned: dict = {}   # each split folder decoded once, however many pairs use it
    train: dict[str, list[tuple[str, int]]] = {}
    test: dict[str, list[tuple[str, int]]] = {}
    counter = Counter(None, "img", "checking images", out)
    try:
        for name in space.values["data"]:
            _scan_dataset(space, datasets, name, skip_bad_images, scanned, counter.update,
                          bad, train, test)
    finally:
        counter.close()
    return bad, train, test


def _scan_dataset(space, datasets, name, skip_bad_images, scanned, progress, bad, train,
                  test) -> None:
    """:func:`_scan` of one training dataset and each of its test splits."""

    if not os.path.isdir(datasets[name]):
        return  # dry run of a dataset still to download
    for test_value in space.values["test_data"]:
        for test_name in test_names(test_value, name):
            test_dir = os.path.join(datasets[test_name], "test")
            info = validate_image_folder(datasets[name], skip_bad_images,
                                         test_dir=test_dir if os.path.isdir(test_dir) else None,
                                         scanned=scanned, progress=progress)
            bad.extend(b for b in info.bad_images if b not in bad)
            train[name] = info.train.samples
        test_split = split_dirs({"data": name, "test_data": test_value}, datasets)[1]
        test[test_label(test_value, name)] = split_samples(test_split, [p for p, _ in bad])[1]


def test_names(test_value, data: str) -> list[str]:
    """The datasets whose test splits test a trial (``test_data`` may be a list)."""
    if isinstance(test_value, (list, tuple)):
        return list(test_value)
    return [test_value or data]


def test_label(test_value, data: str) -> str:
    """One name for a trial's test set, e.g. ``pizza_steak_sushi+pizza_steak_sushi_20_percent``."""
    return "+".join(test_names(test_value, data))


def _check_content(train: dict, test: dict, space: SearchSpace, allow_leakage: bool) -> list[str]:
    """Leakage (a test image's bytes in a training split) is an error unless
    ``allow_leakage``; duplicates inside a split are a warning. Returns notes.

    Raises:
        DataError: leaked test images, named (see :func:`tune_food.data.validation.leakage_error`).
    """

    leaks = {}
    for name, samples in train.items():
        for test_value in space.values["test_data"]:
            label = test_label(test_value, name)
            found = find_leakage(samples, test.get(label, []))
            if found:
                leaks[(name, label)] = found
    notes = []
    if leaks and not allow_leakage:
        raise leakage_error(leaks)
    if leaks:
        total = sum(len(v) for v in leaks.values())
        notes.append(f"warning: {total} test image(s) are also training images "
                     "(--allow-leakage; recorded in sweep.json)")
    splits = {f"{n}/train": s for n, s in train.items()}
    splits.update({f"{n} test": s for n, s in test.items()})
    for name, groups in group_duplicates(splits).items():
        extra = sum(len(g) - 1 for g in groups)
        shown = "; ".join(" = ".join(g) for g in groups[:3])
        more = f"; and {len(groups) - 3} more" if len(groups) > 3 else ""
        notes.append(f"warning: {name} holds {len(groups)} image(s) more than once "
                     f"({extra} extra copies): {shown}{more}")
    return notes


def check_same_data(plan: Plan, sweep_dir: str, name: str) -> None:
    """A resumed sweep must see the data its finished trials saw: the same files with
    the same bytes (a sweep started before ``content_sha256`` was recorded: the same
    names and sizes).

    Raises:
        SweepError: a dataset whose files differ from the fingerprint in the sweep's
            ``sweep.json``, naming it, its files and bytes then and now.
    """
    saved = read_state(sweep_dir).datasets
    changed = []
    for n, path in plan.datasets.items():
        if n not in saved or not os.path.isdir(path):
            continue
        then, now = saved[n], dataset_fingerprint(path, plan.data_root)
        key = "content_sha256" if "content_sha256" in then else "sha256"
        if now[key] != then[key]:
            what = ("an image's bytes changed" if now["sha256"] == then.get("sha256") else
                    "a file was added, removed, renamed or changed size")
            changed.append(f"{n} ({then['files']} files of {then.get('bytes', '?')} bytes "
                           f"then, {now['files']} files of {now['bytes']} bytes now: {what})")
    if changed:
        raise SweepError(f"the data changed since sweep {name!r} started: {', '.join(changed)}; "
                         "its trials would be ranked on different images: restore the data, "
                         "or start a new sweep with another --name")


def print_plan(plan: Plan, options: SweepOptions, cluster, concurrent: int,
               out=sys.stdout) -> None:
    """The trial table (numbered like the trial folders: ``00000`` is ``..._00000``),
    the resources, the feature sets, skipped images, validation and notes."""
    space = plan.space
    shown = space.varied or ["model", "data", "epochs"]
    print(f"search space: {space.path}  (ranked by {space.metric}, {space.mode})", file=out)
    if plan.trials:
        rows = [{"trial": f"{i:05d}", "name": trial_name(t, space.varied),
                 **{k: t[k] for k in shown}} for i, t in enumerate(plan.trials)]
        print(f"{len(plan.trials)} trials:", file=out)
        print(pd.DataFrame(rows).to_string(index=False), file=out)
    else:
        print(f"{options.samples} trials sampled by {options.search} from:", file=out)
        for k in space.varied:
            print(f"  {k}: {space.raw['parameters'].get(k, space.values[k])}", file=out)
    print(cluster.describe(options, concurrent), file=out)
    if plan.pairs:
        print(f"feature sets to compute once (or read from the cache): {len(plan.pairs)}", file=out)
        for model, split in plan.pairs:
            shown_split = " + ".join(split) if isinstance(split, tuple) else split
            print(f"  {model}  {shown_split}", file=out)
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
    for note in plan.notes:   # warnings go where errors go; notes with the plan
        if note.startswith("warning:"):
            print(note, file=sys.stderr)
        else:
            print(f"note: {note}", file=out)
