"""Training and evaluation loops (one epoch each) and the accuracy confidence interval.

The loops work on any module and any loader of ``(inputs, int64 labels)`` batches: the
full image pipeline (a :class:`~tune_food.models.registry.FrozenBackboneClassifier` over image
batches) and the cached-feature pipeline (the head alone over feature batches) run the
same code. Metrics are per image: loss is the mean over images (not a mean of batch
means) and accuracy is correct images / images, so an uneven last batch weighs what
its images weigh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader


@dataclass(frozen=True)
class EpochMetrics:
    """Per-image metrics of one pass: ``loss`` (mean loss per image, nats: the training
    criterion for :func:`train_epoch`, plain cross-entropy for :func:`evaluate`),
    ``acc`` (correct / images, in [0, 1]), ``correct`` and ``images`` (counts); from
    :func:`evaluate` with ``keep_probs``: ``probs`` ``float32 [N, C]`` (softmax) and
    ``labels`` ``int64 [N]`` in loader order."""

    loss: float
    acc: float
    correct: int
    images: int
    probs: torch.Tensor | None = field(default=None, compare=False, repr=False)
    labels: torch.Tensor | None = field(default=None, compare=False, repr=False)


def _to(batch, device: torch.device):
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def _autocast(device: torch.device, enabled: bool):
    # bfloat16 autocast on CUDA only: the loss and the optimizer step stay in float32.
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                loss_fn: nn.Module, device: torch.device | str = "cpu",
                mixed_precision: bool = False) -> EpochMetrics:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: maps ``inputs [B, ...]`` to logits ``[B, C]``; put in train mode here
            (a :class:`FrozenBackboneClassifier` keeps its backbone in eval mode).
        loader: yields ``(inputs [B, ...], labels int64 [B])``.
        optimizer: steps once per batch.
        loss_fn: a criterion with ``reduction="mean"`` (e.g. ``nn.CrossEntropyLoss``).
        device: where the batches go (the model must already be there).
        mixed_precision: bfloat16 autocast for the forward pass on CUDA.

    Returns:
        :class:`EpochMetrics` of the training pass (loss and accuracy of the batches as
        trained, with dropout active).

    Raises:
        ValueError: the loader is empty.
    """
    device = torch.device(device)
    model.train()
    loss_sum, correct, images = 0.0, 0, 0
    for batch in loader:
        x, y = _to(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, mixed_precision):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        loss.backward()
        optimizer.step()
        n = y.numel()
        loss_sum += loss.item() * n
        correct += int((logits.argmax(dim=1) == y).sum())
        images += n
    if images == 0:
        raise ValueError("the training loader yielded no images")
    return EpochMetrics(loss_sum / images, correct / images, correct, images)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str = "cpu",
             mixed_precision: bool = False, keep_probs: bool = False) -> EpochMetrics:
    """Evaluate ``model`` (in eval mode) on every image of ``loader``.

    The loss is plain cross-entropy (no label smoothing, whatever the training loss
    was), so every trial's evaluation loss is the same quantity and tie-breaks compare
    like with like.

    Returns:
        :class:`EpochMetrics`: mean cross-entropy per image (nats) and correct /
        images; with ``keep_probs`` also every image's softmax probabilities and label.

    Raises:
        ValueError: the loader is empty.
    """
    device = torch.device(device)
    model.eval()
    loss_sum, correct, images = 0.0, 0, 0
    probs = labels = None
    for batch in loader:
        x, y = _to(batch, device)
        with _autocast(device, mixed_precision):
            logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits.float(), y).item() * y.numel()
        correct += int((logits.argmax(dim=1) == y).sum())
        if keep_probs:
            if probs is None:   # filled in place: no list of batches and no cat (2x peak)
                total = len(loader.dataset)
                probs = torch.empty(total, logits.shape[1], dtype=torch.float32)
                labels = torch.empty(total, dtype=torch.int64)
            probs[images:images + y.numel()] = logits.float().softmax(dim=1).cpu()
            labels[images:images + y.numel()] = y.cpu()
        images += y.numel()
    if images == 0:
        raise ValueError("the evaluation loader yielded no images")
    if keep_probs:
        return EpochMetrics(loss_sum / images, correct / images, correct, images,
                            probs[:images], labels[:images])
    return EpochMetrics(loss_sum / images, correct / images, correct, images)
