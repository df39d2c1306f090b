"""The Ray Tune function trainable: one trial, start to finish.

``train_food(config, datasets=..., features=..., exclude=...)`` reads like Ray Tune's
PyTorch example: build (:func:`prepare`), resume from ``tune.get_checkpoint()`` if the
trial is restarted, loop epochs (:func:`run_epoch`), ``tune.report`` the metrics with a
small checkpoint (head, optimizer, RNG states and the metadata ``predict`` needs).

When the configuration is cacheable (frozen backbone, no random augmentation) and the
sweep handed over feature sets, the head trains on the features (``feature_cache``
``"shared"``: computed in this sweep, or ``"disk"``: read from the cache); otherwise the
full image pipeline runs (``"off"``). Feature sets arrive as object refs; their NumPy
arrays are read-only views of the Ray object store's shared memory, wrapped by
``torch.from_numpy`` without a copy, and fetched one gather per batch
(:func:`feature_loaders`). Both paths build the head from the same seed,
see the same batches in the same order and draw the same dropout masks, so they give
the same numbers (tests/test_features.py checks to 1e-5).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from tune_food.common.files import cached_sha256
from tune_food.common.stats import wilson_interval
from tune_food.data.images import split_folders
from tune_food.data.loaders import make_dataloaders, split_indices, workers_for
from tune_food.data.splits import split_samples
from tune_food.features.extract import FeatureSet, feature_key
from tune_food.models.devices import assigned_device, gpu_math
from tune_food.models.registry import (
    build_model,
    describe_transform,
    get_spec,
    head_dropout,
    make_head,
    train_transform,
)
from tune_food.models.runtime import use_runtime
from tune_food.sweepdir.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from tune_food.sweepdir.columns import TRIAL_NAME
from tune_food.sweepdir.layout import PREDICTIONS_FILE
from tune_food.train.engine import evaluate, train_epoch
from tune_food.train.hparams import is_cacheable, split_dirs, with_defaults

CHECKPOINT_EVERY_S = float(os.environ.get("TUNE_FOOD_CHECKPOINT_EVERY_S", "1.0"))
#: the most of a trial's time that checkpoints it does not have to save may take
CHECKPOINT_SHARE = 0.1


class CheckpointTimer:
    """When a trial's optional checkpoint (not the last epoch's, not a rung's) is due.

    Due once ``every_s`` seconds have passed since the previous checkpoint ended, and at
    least ``(1 - share) / share`` times what that checkpoint took (9x for ``share`` 0.1),
    so optional checkpoints cost at most ``share`` of the trial's time. Cached-feature
    epochs (milliseconds) then checkpoint about once a second, image-pipeline epochs
    (seconds) every epoch, and Food-101-sized epochs, whose checkpoint writes a 25 MB
    ``predictions.csv`` in 3 to 6 s, every 30 to 60 s instead of every epoch. Times in
    seconds of ``time.monotonic()``.
    """

    def __init__(self, every_s: float = CHECKPOINT_EVERY_S, share: float = CHECKPOINT_SHARE,
                 now: float | None = None):
        self.every_s, self.share = every_s, share
        self.last_end = time.monotonic() if now is None else now
        self.last_cost = 0.0

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        wait = max(self.every_s, self.last_cost * (1 - self.share) / self.share)
        return now - self.last_end >= wait

    def saved(self, started: float, ended: float) -> None:
        """Record a checkpoint (any: optional or not) that took ``started`` to ``ended``."""
        self.last_cost, self.last_end = ended - started, ended


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators (``torch.manual_seed`` seeds
    the CPU's and every CUDA device's)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _get_features(features: dict[str, Any] | None, model: str, split: str) -> FeatureSet | None:
    value = (features or {}).get(feature_key(model, split))
    if value is None or isinstance(value, FeatureSet):
        return value
    import ray  # lazy: no Ray where benchmarks/gpu_check.py runs trials (tests/test_devices.py)

    return ray.get(value)


class FeatureRows(torch.utils.data.Dataset):
    """Rows ``index`` of a feature matrix, fetched a whole batch at a time.

    ``rows[[i, j, ...]]`` -> ``(features float32 [B, D], labels int64 [B])``: one gather
    per batch instead of B item fetches and a stack (at Food-101 scale, 75,750 rows, that
    is most of an epoch). ``features`` may be read-only shared memory: it is only read.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, index=None):
        self.features, self.labels = features, labels
        self.index = None if index is None else torch.as_tensor(index, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels) if self.index is None else len(self.index)

    def __getitem__(self, rows):
        rows = torch.as_tensor(rows, dtype=torch.int64)
        if self.index is not None:
            rows = self.index[rows]
        return self.features[rows], self.labels[rows]


def feature_loaders(train: FeatureRows, val: FeatureRows | None, test: FeatureRows,
                    batch_size: int, seed: int):
    """``(train, val or None, test)`` loaders over feature rows that yield exactly the
    batches :func:`tune_food.data.loaders.seeded_loaders` yields over images: the same samplers
    (``RandomSampler`` for train, sequential otherwise) drawing from the same seeded
    generators in the same order, batched by ``BatchSampler``, fetched one gather per
    batch (:class:`FeatureRows`)."""
    def loader(ds, shuffle, offset):
        generator = torch.Generator().manual_seed(seed + offset)
        sampler = RandomSampler(ds, generator=generator) if shuffle else SequentialSampler(ds)
        return DataLoader(ds, batch_size=None, generator=generator,
                          sampler=BatchSampler(sampler, batch_size, drop_last=False))

    return (loader(train, True, 0), loader(val, False, 1) if val is not None else None,
            loader(test, False, 2))


@dataclass
class Trial:
    """Everything one trial trains with (built by :func:`prepare`)."""

    config: dict[str, Any]
    net: nn.Module            # the head (cached features) or the whole frozen model
    head: nn.Sequential
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module        # the training criterion (evaluation is plain cross-entropy)
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader
    classes: list[str]
    dropout: float
    transform: str            # description of the eval transform
    feature_cache: str        # shared | disk | off
    backbone_runtime: str     # what computed the features (devices.computed_by)
    trainable_params: int
    total_params: int
    device: torch.device
    # split (test | val) -> (image paths, their SHA-256): lists, or NumPy string arrays
    # shared with the feature set (no per-trial copy of 25,000 strings at Food-101 scale)
    image_ids: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    data_root: str = ""       # the datasets' parent: predictions name images relative to it
    last_probs: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def mixed_precision(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class _Data:
    """What :func:`prepare` reads trials' data from: the loaders, and what they hold."""

    loaders: tuple            # (train, val or None, test) DataLoaders
    classes: list[str]
    image_ids: dict[str, tuple[Any, Any]]
    feature_cache: str        # shared | disk | off
    transform: str            # description of the eval transform
    backbone_runtime: str     # what computed the features (devices.computed_by)
    model: nn.Module | None = None   # the whole frozen model (image pipeline only)


def _feature_data(config: dict[str, Any], features, train_dir, test_dir,
                  val_paths) -> _Data | None:
    """Loaders over the sweep's feature sets of this trial, or None without them."""
    model = config["model"]
    train_fs = _get_features(features, model, train_dir)
    test_fs = _get_features(features, model, test_dir)
    if train_fs is None or test_fs is None:
        return None
    seed = int(config["seed"])
    # torch views of the object store's read-only shared memory: no copy per trial
    train_x, train_y = train_fs.tensors()
    train_idx, val_idx = split_indices(train_fs.paths, train_fs.labels.tolist(), val_paths,
                                       float(config["val_fraction"]), seed)
    # without a validation split every row trains, in order: no index to keep
    loaders = feature_loaders(FeatureRows(train_x, train_y, train_idx if val_idx else None),
                              FeatureRows(train_x, train_y, val_idx) if val_idx else None,
                              FeatureRows(*test_fs.tensors()), int(config["batch_size"]), seed)
    ids = {"test": (test_fs.paths, test_fs.hashes),
           "val": (train_fs.paths[val_idx], train_fs.hashes[val_idx])}
    cache_mode = "disk" if "disk" in (train_fs.source, test_fs.source) else "shared"
    # the transform's description: timm is not even imported
    return _Data(loaders, train_fs.classes, ids, cache_mode, train_fs.transform,
                 train_fs.computed_by)


def _image_data(config: dict[str, Any], train_dir, test_dir, val_paths, exclude,
                dropout: float, device: torch.device, runtime: str | None,
                cache_dir: str | None) -> _Data:
    """Loaders over the images through the whole frozen model (``feature_cache`` off,
    augmentation, or no feature sets handed over); the backbone's forward is
    :func:`~tune_food.models.runtime.use_runtime` (``runtime`` on the CPU, with
    the process's threads: the CPUs Ray assigned)."""
    name = get_spec(config["model"]).name
    model = build_model(name, len(split_samples(train_dir, exclude)[0]), dropout)
    computed = use_runtime(model, str(device), runtime, cache_dir)
    *loaders, classes = make_dataloaders(train_dir, test_dir, model.transform,
                                         int(config["batch_size"]),
                                         num_workers=workers_for(_assigned_cpus()),
                                         exclude=exclude, seed=int(config["seed"]),
                                         val_fraction=float(config["val_fraction"]),
                                         val_paths=val_paths)
    ids = {split: ([p for p, _ in loader.dataset.samples],
                   [cached_sha256(p) for p, _ in loader.dataset.samples])
           for split, loader in (("test", loaders[2]), ("val", loaders[1])) if loader}
    if config["augment"]:
        loaders[0].dataset.transform = train_transform(name)
    return _Data(tuple(loaders), classes, ids, "off", describe_transform(model.transform),
                 computed, model)


def prepare(config: dict[str, Any], datasets: dict[str, str] | None = None,
            features: dict[str, Any] | None = None, exclude: list[str] | None = None,
            device: torch.device | str = "cpu",
            val_sets: dict[str, list[str]] | None = None, runtime: str | None = None,
            cache_dir: str | None = None) -> Trial:
    """Build a trial: data loaders (features or images), head, optimizer, loss.

    Hyperparameters ``config`` leaves out take their defaults
    (:func:`tune_food.sweep.spaces.with_defaults`). Seeds everything from ``config["seed"]``;
    the head is initialised right after seeding in both paths, so cached and uncached
    trials start from the same weights. ``device``: where the trial computes (the sweep
    passes the one Ray assigned, :func:`tune_food.models.devices.assigned_device`; on CUDA,
    :func:`tune_food.models.devices.gpu_math` is applied). ``val_sets`` maps a dataset name to the absolute
    paths of its images that form the sweep's validation set (the same images, by
    content, for every dataset); without it a stratified ``val_fraction`` of the trial's
    own training split is held out. ``runtime`` and ``cache_dir``: the backbone's
    forward in the image pipeline (:func:`tune_food.models.runtime.frozen_forward`).

    Raises:
        ValueError: unresolved dataset names (see :func:`split_dirs`).
        WeightsError: the model's weights are missing (image pipeline only).
    """
    config = with_defaults(config)
    spec = get_spec(config["model"])
    device = torch.device(device)
    gpu_math(str(device))
    dropout = head_dropout(spec.name, config["dropout"])
    train_dir, test_dir = split_dirs(config, datasets)
    val_paths = (val_sets or {}).get(config["data"])
    data = _feature_data(config, features, train_dir, test_dir, val_paths) \
        if is_cacheable(config) else None
    if data is None:
        data = _image_data(config, train_dir, test_dir, val_paths, exclude or (), dropout,
                           device, runtime, cache_dir)
    seed_everything(int(config["seed"]))
    head = make_head(spec.num_features, len(data.classes), dropout)
    if data.model is not None:
        data.model.head = head
        net, total = data.model, data.model.total_params
    else:
        net, total = head, sum(p.numel() for p in head.parameters()) + spec.backbone_params
    net.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=float(config["lr"]),
                                 weight_decay=float(config["weight_decay"]))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config["label_smoothing"]))
    roots = [os.path.dirname(os.path.dirname(d))   # <root>/<dataset>/<split>
             for d in split_folders(train_dir) + split_folders(test_dir)]
    train_loader, val_loader, test_loader = data.loaders
    return Trial(config=config, net=net, head=head, optimizer=optimizer, loss_fn=loss_fn,
                 train_loader=train_loader, val_loader=val_loader, test_loader=test_loader,
                 classes=data.classes, dropout=dropout, transform=data.transform,
                 feature_cache=data.feature_cache, backbone_runtime=data.backbone_runtime,
                 trainable_params=sum(p.numel() for p in head.parameters()),
                 total_params=total, device=device, image_ids=data.image_ids,
                 data_root=os.path.commonpath(roots))


def run_epoch(trial: Trial, epoch: int) -> dict[str, Any]:
    """Train one epoch and evaluate; return the metrics of epoch ``epoch`` (1-based).

    Returns ``epoch, train_loss, train_acc, test_loss, test_acc, test_acc_ci_low,
    test_acc_ci_high, test_correct, test_images`` and, with a validation split,
    ``val_loss, val_acc, val_acc_ci_low, val_acc_ci_high, val_correct, val_images``. Losses are
    means per image (nats): ``train_loss`` of the training criterion (cross-entropy with
    the trial's label smoothing), ``test_loss`` and ``val_loss`` plain cross-entropy;
    accuracies correct / images with 95 % Wilson intervals
    (:func:`~tune_food.common.stats.wilson_interval`).
    """
    amp = trial.mixed_precision
    # the previous epoch's probabilities are only for its checkpoint, written by now: drop
    # them before this epoch's are made (at Food-101 scale 10 MB per split and trial)
    trial.last_probs.clear()
    train = train_epoch(trial.net, trial.train_loader, trial.optimizer, trial.loss_fn,
                         trial.device, amp)
    test = evaluate(trial.net, trial.test_loader, trial.device, amp, keep_probs=True)
    trial.last_probs["test"] = (test.probs, test.labels)
    low, high = wilson_interval(test.correct, test.images)
    metrics: dict[str, Any] = {
        "epoch": epoch, "train_loss": train.loss, "train_acc": train.acc, "test_loss": test.loss,
        "test_acc": test.acc, "test_acc_ci_low": low, "test_acc_ci_high": high,
        "test_correct": test.correct, "test_images": test.images}
    if trial.val_loader is not None:
        val = evaluate(trial.net, trial.val_loader, trial.device, amp, keep_probs=True)
        trial.last_probs["val"] = (val.probs, val.labels)
        vlow, vhigh = wilson_interval(val.correct, val.images)
        metrics.update(val_loss=val.loss, val_acc=val.acc, val_acc_ci_low=vlow,
                       val_acc_ci_high=vhigh, val_correct=val.correct, val_images=val.images)
    return metrics


def save_checkpoint(trial: Trial, directory: str, epoch: int, metrics: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` (head weights, optimizer state, RNG states: CPU, the train
    loader's and, on a GPU, CUDA's; about 60 KB
    for 3 classes: the backbone is not saved) and ``meta.json`` (model, classes,
    dropout, transform, epoch, metrics) into ``directory``, in the format of
    :mod:`tune_food.sweepdir.checkpoint`, and ``predictions.csv`` beside them."""
    meta = {"model": trial.config["model"], "classes": trial.classes, "dropout": trial.dropout,
            "num_features": get_spec(trial.config["model"]).num_features,
            "transform": trial.transform, "epoch": epoch, "metrics": metrics,
            "config": {k: v for k, v in trial.config.items()
                       if isinstance(v, (str, int, float, bool, type(None)))}}
    write_checkpoint(directory, Checkpoint(
        head=trial.head.state_dict(), optimizer=trial.optimizer.state_dict(), meta=meta,
        torch_rng=torch.get_rng_state(), loader_rng=trial.train_loader.generator.get_state(),
        cuda_rng=_cuda_rng(trial)))
    write_predictions(trial, os.path.join(directory, PREDICTIONS_FILE))


#: rows of predictions.csv built and written at a time. A trial's private memory after a
#: checkpoint of a Food-101-sized test set (25,250 rows x 101 probabilities), beyond the
#: same trial on 101 images: all rows at once ~80 MB, 2,048 rows 26 MB, 256 rows 7 MB
#: (what pandas' CSV writer and Python's allocator keep of the strings); the file's bytes
#: and the write time (~5 s on 2 slow cores) are the same
PREDICTION_ROWS = 256


def write_predictions(trial: Trial, path: str) -> None:
    """Per-image predictions of the last evaluated epoch, as CSV: one row per image of
    the test split and of the validation split, with ``split`` (test|val), ``image``
    (path relative to the data root), ``sha256`` (the image's identity across
    datasets, by which trials are paired), ``label`` and ``predicted`` (class names)
    and ``prob_<class>`` (softmax probabilities). Written :data:`PREDICTION_ROWS` rows
    at a time (the same bytes as one frame)."""
    header = True
    with open(path, "w", newline="") as fh:
        for split, (probs, labels) in trial.last_probs.items():
            paths, hashes = trial.image_ids.get(split, ((), ()))
            if probs is None or len(paths) != len(labels):
                continue
            values, labels, predicted = probs.numpy(), labels.tolist(), probs.argmax(1).tolist()
            for start in range(0, len(labels), PREDICTION_ROWS):
                rows = slice(start, start + PREDICTION_ROWS)
                columns = {"split": split,
                           "image": [os.path.relpath(p, trial.data_root) for p in paths[rows]],
                           "sha256": list(hashes[rows]),
                           "label": [trial.classes[i] for i in labels[rows]],
                           "predicted": [trial.classes[i] for i in predicted[rows]]}
                # all columns at once: one by one fragments the frame (101 classes)
                columns.update((f"prob_{name}", values[rows, j])
                               for j, name in enumerate(trial.classes))
                pd.DataFrame(columns).to_csv(fh, index=False, header=header)
                header = False
    if header:   # nothing to write: no file, as before
        os.remove(path)


def _cuda_rng(trial: Trial) -> torch.Tensor | None:
    """The state of the trial's CUDA generator (dropout on the GPU draws from it, not
    from the CPU's); None on the CPU."""
    if trial.device.type != "cuda":
        return None
    return torch.cuda.get_rng_state(trial.device)


def load_checkpoint(trial: Trial, directory: str) -> int:
    """Restore head, optimizer and every random stream saved by :func:`save_checkpoint`
    (CPU, the train loader's generator, and CUDA's when the trial computes there); return
    the number of epochs already done."""
    saved = read_checkpoint(directory, map_location=trial.device)
    trial.head.load_state_dict(saved.head)
    trial.optimizer.load_state_dict(saved.optimizer)
    torch.set_rng_state(saved.torch_rng.cpu())
    if trial.device.type == "cuda" and saved.cuda_rng is not None:   # dropout on the GPU draws here
        torch.cuda.set_rng_state(saved.cuda_rng.cpu(), trial.device)
    trial.train_loader.generator.set_state(saved.loader_rng.cpu())
    return saved.epoch


def _assigned_cpus() -> float:
    """The CPUs Ray assigned to this trial; outside Ray (not even imported: a GPU check,
    a notebook), the machine's."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return float(os.cpu_count() or 1)
    return ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)


def train_food(config: dict[str, Any], datasets: dict[str, str] | None = None,
               features: dict[str, Any] | None = None,
               exclude: list[str] | None = None,
               checkpoint_epochs: tuple[int, ...] = (),
               val_sets: dict[str, list[str]] | None = None, runtime: str | None = None,
               cache_dir: str | None = None) -> None:
    """Ray Tune function trainable: train one frozen-backbone classifier's head.

    Args:
        config: one trial's hyperparameters (:data:`tune_food.sweep.spaces.PARAMS`) and
            ``feature_cache`` (auto|off).
        datasets: dataset name -> absolute folder (resolved in the driver).
        features: :func:`~tune_food.features.extract.feature_key` -> FeatureSet or its object ref.
        exclude: absolute paths of images to leave out (skipped bad images).
        checkpoint_epochs: epochs after which a checkpoint is always saved: the
            scheduler's decision points (ASHA's rungs), so a trial it stops has the
            checkpoint of the epoch it stopped at.
        val_sets, runtime, cache_dir: see :func:`prepare`.

    Reports once per epoch (``tune.report``) the metrics of :func:`run_epoch` plus
    ``trainable_params, total_params, feature_cache, backbone_runtime, device, node_id, node_ip,
    trial_name, resumed_from_epoch`` and ``checkpoint_saved`` (whether this report
    carries a checkpoint, :func:`save_checkpoint`). Checkpoints are saved after the last
    epoch, after each of ``checkpoint_epochs``, and after any epoch when
    :class:`CheckpointTimer` says one is due (at least :data:`CHECKPOINT_EVERY_S` seconds
    after the previous one, and long enough that they cost at most
    :data:`CHECKPOINT_SHARE` of the trial's time).
    """
    import ray  # lazy: no Ray where benchmarks/gpu_check.py runs trials (tests/test_devices.py)
    from ray import tune

    torch.set_num_threads(max(1, int(_assigned_cpus())))
    trial = prepare(config, datasets, features, exclude, assigned_device(), val_sets=val_sets,
                    runtime=runtime, cache_dir=cache_dir)
    start_epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as ckpt_dir:
            start_epoch = load_checkpoint(trial, ckpt_dir)
    context = tune.get_context()
    info = {"trainable_params": trial.trainable_params, "total_params": trial.total_params,
            "feature_cache": trial.feature_cache, "backbone_runtime": trial.backbone_runtime,
            "device": str(trial.device),
            "head_dropout": trial.dropout,
            "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            TRIAL_NAME: context.get_trial_name(), "resumed_from_epoch": start_epoch}
    timer = CheckpointTimer()
    must = set(checkpoint_epochs) | {int(config["epochs"])}
    for epoch in range(start_epoch + 1, int(config["epochs"]) + 1):
        metrics = {**run_epoch(trial, epoch), **info}
        metrics["checkpoint_saved"] = epoch in must or timer.due()
        if metrics["checkpoint_saved"]:
            started = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                save_checkpoint(trial, tmp, epoch, metrics)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
            timer.saved(started, time.monotonic())
        else:
            tune.report(metrics)
