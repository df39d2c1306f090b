"""DataLoaders of an image-folder dataset: train / validation / test, seeded.

The rest of the data layer lives in modules by job: :mod:`tune_food.data.datasets` (the data
root, known datasets, download and manifest verification), :mod:`tune_food.data.images`
(decode, list and validate the images of a split; the listing itself is
:class:`tune_food.data.splits.ImageSplit`); file hashes: :func:`tune_food.common.files.cached_sha256`.

``python -m tune_food.data COMMAND`` (e.g. ``subset``: cut a Food-101 subset) is the
dataset tools' command line, :mod:`tune_food.data.cli` (``tune_food/data/__main__.py``).
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Sequence

import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from tune_food.common.errors import DataError
from tune_food.data.splits import ImageSplit


def workers_for(cpus: float) -> int:
    """DataLoader worker processes for a trial that was given ``cpus`` CPUs.

    0 for one CPU (decode in the training process); otherwise half the CPUs, leaving
    the rest to torch's compute threads.
    """
    return max(0, int(cpus) // 2)


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split sample indices into (train, validation) keeping class proportions.

    Uses scikit-learn's ``train_test_split(stratify=labels)``. ``fraction`` is the
    validation share in (0, 1); 0 returns all indices as train.

    Raises:
        DataError: a class has too few images to be split.
    """
    indices = list(range(len(labels)))
    if fraction <= 0:
        return indices, []
    try:
        train_idx, val_idx = train_test_split(indices, test_size=fraction, random_state=seed,
                                              stratify=list(labels))
    except ValueError as exc:
        raise DataError(f"cannot hold out val_fraction={fraction} of {len(labels)} images "
                        f"stratified by class ({' '.join(str(exc).split())}); choose a "
                        "val_fraction that leaves at least one image of every class on both "
                        "sides (e.g. 0.1 to 0.5)") from None
    return sorted(train_idx), sorted(val_idx)


def split_indices(paths: Sequence[str], labels: Sequence[int], val_paths: Sequence[str] | None,
                  fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """``(train indices, validation indices)`` of a training split's samples.

    With ``val_paths`` (the sweep's validation images in this dataset: the same content
    for every trial, :func:`tune_food.data.validation.shared_validation`) exactly those are
    held out; without it a stratified ``fraction`` is (:func:`stratified_split`, seeded
    by ``seed``)."""
    if val_paths is None or fraction <= 0:
        return stratified_split(labels, fraction, seed)
    held = set(val_paths)
    return ([i for i, p in enumerate(paths) if p not in held],
            [i for i, p in enumerate(paths) if p in held])


def make_dataloaders(train_dir: str, test_dir: str, transform: Callable, batch_size: int,
                     num_workers: int = 0, exclude: Iterable[str] = (), seed: int = 0,
                     val_fraction: float = 0.0, val_paths: Sequence[str] | None = None
                     ) -> tuple[DataLoader, DataLoader | None, DataLoader, list[str]]:
    """Build the train, validation and test DataLoaders of an image-folder dataset.

    Args:
        train_dir, test_dir: absolute split folders (one sub-folder per class).
        transform: PIL image -> ``float32 [3, S, S]`` (the model's own transform).
        batch_size: images per batch; the last batch may be smaller.
        num_workers: loader processes, from the trial's CPUs (:func:`workers_for`).
        exclude: image paths to leave out (bad images skipped by the user).
        seed: seeds the shuffling generator and the validation split.
        val_fraction: share of the training images held out, stratified (0: none).
        val_paths: hold out exactly these training images instead (the sweep's shared
            validation set).

    Returns:
        ``(train_loader, val_loader or None, test_loader, class names)``. Batches are
        ``(float32 [B, 3, S, S], int64 [B])``; only the train loader shuffles. Each
        loader's dataset is an :class:`~tune_food.data.splits.ImageSplit` of its own
        (setting one's ``transform`` leaves the others alone).

    Raises:
        ValueError: relative paths (trials run in other processes and nodes).
        DataError: train and test class folders differ.
    """
    for path in [train_dir, *([test_dir] if isinstance(test_dir, str) else test_dir)]:
        if not os.path.isabs(path):
            raise ValueError(f"make_dataloaders needs absolute paths, got {path!r}")

    train_split = ImageSplit(train_dir, transform, exclude)
    test = ImageSplit(test_dir, transform, exclude)
    if train_split.classes != test.classes:
        raise DataError(f"class folders differ between {train_dir} {train_split.classes} and "
                        f"{test_dir} {test.classes}")
    train_idx, val_idx = split_indices([p for p, _ in train_split.samples], train_split.targets,
                                       val_paths, val_fraction, seed)
    val = train_split.subset(val_idx) if val_idx else None
    return (*seeded_loaders(train_split.subset(train_idx), val, test, batch_size, seed,
                            num_workers), train_split.classes)


def seeded_loaders(train, val, test, batch_size: int, seed: int, num_workers: int = 0):
    """``(train, val or None, test)`` DataLoaders, each with its own seeded generator.

    Only the train loader shuffles. Giving every loader a generator keeps the global
    torch RNG for dropout alone, so the image pipeline and the cached-feature pipeline
    draw the same shuffles and the same dropout masks.
    """
    def loader(ds, shuffle, offset):
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                          generator=torch.Generator().manual_seed(seed + offset))

    return (loader(train, True, 0), loader(val, False, 1) if val is not None else None,
            loader(test, False, 2))
