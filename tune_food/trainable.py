"""The Ray Tune function trainable: one trial, start to finish.

``train_food(config, datasets=..., features=...)`` seeds everything, builds the frozen
model, trains its head for ``config["epochs"]`` epochs with Adam and cross-entropy, and
calls ``tune.report`` once per epoch with the metrics and a small checkpoint (the head,
the optimizer, the RNG states and the metadata ``predict`` needs). A restarted trial
resumes from its last checkpoint (``tune.get_checkpoint()``).

When the configuration is cacheable (frozen backbone, no random augmentation) and the
sweep handed over feature sets, the head trains on the features (``feature_cache``
``"shared"`` or ``"disk"``); otherwise it runs the full image pipeline (``"off"``). Both
paths see the same batches in the same order and give the same numbers.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from .data import make_dataloaders, split_samples, stratified_split, workers_for
from .engine import accuracy_ci, evaluate, train_epoch
from .features import FeatureSet, feature_key
from .models import (build_model, describe_transform, get_spec, get_transform, make_head,
                     train_transform)

CHECKPOINT_FILE = "checkpoint.pt"
META_FILE = "meta.json"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def split_dirs(config: dict[str, Any], datasets: dict[str, str] | None) -> tuple[str, str]:
    """Absolute ``(train split, test split)`` folders of a trial.

    ``datasets`` maps dataset names to absolute folders (the sweep resolves them in the
    driver); without it ``config["data"]`` and ``config["test_data"]`` must be absolute
    dataset folders themselves.

    Raises:
        ValueError: a dataset that is neither in ``datasets`` nor an absolute path.
    """
    def resolve(name: str) -> str:
        if datasets and name in datasets:
            return datasets[name]
        if os.path.isabs(name):
            return name
        raise ValueError(f"dataset {name!r} was not resolved by the sweep and is not an "
                         "absolute path")

    train_root = resolve(config["data"])
    test_root = resolve(config.get("test_data") or config["data"])
    return os.path.join(train_root, "train"), os.path.join(test_root, "test")


def is_cacheable(config: dict[str, Any]) -> bool:
    """True when training on cached features is exact for ``config``: the feature cache
    is not switched off and there is no random train-time augmentation."""
    return config.get("feature_cache", "auto") != "off" and not config.get("augment", False)


def _get_features(features: dict[str, Any] | None, model: str, split: str) -> FeatureSet | None:
    if not features:
        return None
    value = features.get(feature_key(model, split))
    if value is None:
        return None
    if isinstance(value, FeatureSet):
        return value
    import ray

    return ray.get(value)


def _loaders(config, train_dir, test_dir, transform, cpus, features, exclude):
    """Train / val / test loaders and the feature-cache mode of a trial."""
    bs, seed = int(config["batch_size"]), int(config["seed"])
    val_fraction = float(config.get("val_fraction") or 0.0)
    model = config["model"]
    train_fs = test_fs = None
    if is_cacheable(config):
        train_fs = _get_features(features, model, train_dir)
        test_fs = _get_features(features, model, test_dir)
    if train_fs is not None and test_fs is not None:
        mode = "disk" if "disk" in (train_fs.source, test_fs.source) else "shared"
        train_ds = TensorDataset(train_fs.features, train_fs.labels)
        train_idx, val_idx = stratified_split(train_fs.labels.tolist(), val_fraction, seed)
        generator = torch.Generator().manual_seed(seed)
        train = DataLoader(Subset(train_ds, train_idx), batch_size=bs, shuffle=True,
                           generator=generator)
        val = DataLoader(Subset(train_ds, val_idx), batch_size=bs) if val_idx else None
        test = DataLoader(TensorDataset(test_fs.features, test_fs.labels), batch_size=bs)
        return train, val, test, train_fs.classes, mode
    train, val, test, classes = make_dataloaders(
        train_dir, test_dir, transform, bs, num_workers=workers_for(cpus), exclude=exclude,
        seed=seed, val_fraction=val_fraction)
    if config.get("augment"):
        train.dataset.transform = train_transform(config["model"])
    return train, val, test, classes, "off"


def save_checkpoint(directory: str, *, model_name: str, classes: list[str], dropout: float,
                    transform: str, head: nn.Module, optimizer: torch.optim.Optimizer | None,
                    epoch: int, generator: torch.Generator | None, metrics: dict) -> None:
    """Write a trial checkpoint into ``directory``: ``checkpoint.pt`` (head weights,
    optimizer state, RNG states; about 20 KB for 3 classes, the backbone is not saved)
    and ``meta.json`` (model name, classes, dropout, transform, epoch, metrics)."""
    meta = {"model": model_name, "classes": classes, "dropout": dropout,
            "transform": transform, "epoch": epoch, "metrics": metrics,
            "num_features": get_spec(model_name).num_features}
    torch.save({"head": head.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer else None,
                "torch_rng": torch.get_rng_state(),
                "loader_rng": generator.get_state() if generator is not None else None,
                "meta": meta}, os.path.join(directory, CHECKPOINT_FILE))
    with open(os.path.join(directory, META_FILE), "w") as fh:
        json.dump(meta, fh, indent=2)


def train_food(config: dict[str, Any], datasets: dict[str, str] | None = None,
               features: dict[str, Any] | None = None,
               exclude: list[str] | None = None) -> None:
    """Ray Tune function trainable: train one frozen-backbone classifier's head.

    Args:
        config: one trial's hyperparameters (:data:`tune_food.spaces.PARAMS`): ``model,
            data, test_data, epochs, lr, batch_size, seed, dropout, weight_decay,
            label_smoothing, val_fraction, augment`` and ``feature_cache`` (auto|off).
        datasets: dataset name -> absolute folder (resolved in the driver).
        features: :func:`~tune_food.features.feature_key` -> FeatureSet or its object ref.
        exclude: absolute paths of images to leave out (skipped bad images).

    Reports once per epoch (``tune.report``): ``epoch, train_loss, train_acc,
    [val_loss, val_acc, val_acc_ci_low, val_acc_ci_high,] test_loss, test_acc,
    test_acc_ci_low, test_acc_ci_high, test_correct, test_images, trainable_params,
    total_params, feature_cache, device, node_id``; losses are mean cross-entropy per
    image (nats), accuracies correct / images with 95 % Wilson intervals.
    """
    import ray
    from ray import tune

    start = time.perf_counter()
    seed = int(config["seed"])
    seed_everything(seed)
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1) \
        if ray.is_initialized() else 1
    torch.set_num_threads(max(1, int(cpus)))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = device.type == "cuda"

    train_dir, test_dir = split_dirs(config, datasets)
    spec = get_spec(config["model"])
    dropout = spec.default_dropout if config.get("dropout") is None else float(config["dropout"])
    classes = split_samples(train_dir, exclude or ())[0]
    cacheable = is_cacheable(config) and _get_features(features, spec.name, train_dir) is not None
    if cacheable:  # the head alone, on features; the backbone is never built
        transform = get_transform(spec.name)
        net = head = make_head(spec.num_features, len(classes), dropout)
        trainable_params = sum(p.numel() for p in head.parameters())
        total_params = trainable_params + _backbone_params(spec.name)
    else:
        net = build_model(spec.name, len(classes), dropout)
        transform, head = net.transform, net.head
        trainable_params, total_params = net.trainable_params, net.total_params
    train_loader, val_loader, test_loader, classes, cache_mode = _loaders(
        config, train_dir, test_dir, transform, cpus, features, exclude or ())
    net.to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=float(config["lr"]),
                                 weight_decay=float(config.get("weight_decay") or 0.0))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config.get("label_smoothing") or 0.0))
    generator = getattr(train_loader, "generator", None)

    start_epoch = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as ckpt_dir:
            state = torch.load(os.path.join(ckpt_dir, CHECKPOINT_FILE), map_location="cpu",
                               weights_only=True)
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if generator is not None and state["loader_rng"] is not None:
            generator.set_state(state["loader_rng"])
        start_epoch = int(state["meta"]["epoch"])

    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
    for epoch in range(start_epoch, int(config["epochs"])):
        tr = train_epoch(net, train_loader, optimizer, loss_fn, device, amp)
        te = evaluate(net, test_loader, loss_fn, device, amp)
        low, high = accuracy_ci(te.correct, te.images)
        metrics: dict[str, Any] = {
            "epoch": epoch + 1, "train_loss": tr.loss, "train_acc": tr.acc,
            "test_loss": te.loss, "test_acc": te.acc, "test_acc_ci_low": low,
            "test_acc_ci_high": high, "test_correct": te.correct, "test_images": te.images}
        if val_loader is not None:
            va = evaluate(net, val_loader, loss_fn, device, amp)
            vlow, vhigh = accuracy_ci(va.correct, va.images)
            metrics.update(val_loss=va.loss, val_acc=va.acc, val_acc_ci_low=vlow,
                           val_acc_ci_high=vhigh, val_images=va.images)
        metrics.update(trainable_params=trainable_params, total_params=total_params,
                       feature_cache=cache_mode, device=str(device), node_id=node_id,
                       train_seconds=time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(tmp, model_name=spec.name, classes=classes, dropout=dropout,
                            transform=describe_transform(transform), head=head,
                            optimizer=optimizer, epoch=epoch + 1, generator=generator,
                            metrics={k: v for k, v in metrics.items() if k != "node_id"})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _backbone_params(name: str) -> int:
    """Parameter count of the backbone of ``name`` (built on the meta device: no weights
    are read and no memory is used)."""
    spec = get_spec(name)
    with torch.device("meta"):
        if spec.family == "torchvision":
            import torchvision

            net = torchvision.models.get_model(name, weights=None)
            net.classifier = nn.Identity()
        else:
            import timm

            net = timm.create_model(f"tf_{name}", pretrained=False, num_classes=0)
    return sum(p.numel() for p in net.parameters())
