"""Which images validate and which test a sweep, decided by content before launch.

Two datasets can hold the same photo under different paths (the 10 % and 20 %
pizza/steak/sushi training sets share 195 of 225 images byte for byte), so images
are identified by the SHA-256 of their bytes:

* :func:`shared_validation` draws one validation set for the whole sweep from the
  images every training dataset holds, stratified by class and seeded, and holds it out
  of every training split: every trial, whatever its ``data``, is ranked on the same
  images. Where the datasets share too few images, each dataset's own stratified split
  is used instead (``per-dataset``) and the sweep warns that ``val_acc`` then compares
  different images.
* :func:`images_fingerprint` names a test set by its images' bytes and classes, so that
  two sweeps ranked on the same test images can be told apart from two that were not
  (a warm start, :mod:`tune_food.sweep.history`).
* :func:`find_leakage` lists test images whose bytes are also in a training split
  (a leaked test image measures memory, not generalisation) and images repeated inside
  a split.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from sklearn.model_selection import train_test_split

from tune_food.common.errors import DataError
from tune_food.common.files import cached_sha256
from tune_food.data.loaders import stratified_split


@dataclass
class ValidationPlan:
    """The sweep's validation images.

    Attributes:
        source: ``"shared"`` (the same images for every dataset), ``"per-dataset"``
            (each dataset's own split: val metrics compare different images) or
            ``"none"`` (no ``val_fraction``).
        images: validation images per trial.
        sets: dataset name -> absolute paths of its copies of the validation images.
        sha256: the validation images' SHA-256, sorted (identical for every dataset
            when ``source`` is ``shared``).
        warning: why ``per-dataset`` was used, else ``""``.
    """

    source: str
    images: int = 0
    sets: dict[str, list[str]] = field(default_factory=dict)
    sha256: list[str] = field(default_factory=list)
    warning: str = ""

    def summary(self) -> dict:
        """What ``sweep.json`` records (no absolute paths)."""
        return {"source": self.source, "images": self.images, "sha256": self.sha256,
                **({"warning": self.warning} if self.warning else {})}


def shared_validation(train: dict[str, Sequence[tuple[str, int]]], fraction: float,
                      seed: int) -> ValidationPlan:
    """One validation set for every training dataset of a sweep.

    Args:
        train: dataset name -> its training samples ``(absolute path, class index)``
            (class indices agree: the datasets have the same class folders).
        fraction: ``val_fraction``: the validation set has ``round(fraction * n)``
            images, n = the smallest training split, so no dataset loses more than its
            share.
        seed: seeds the stratified draw (scikit-learn ``train_test_split``).

    Returns:
        A :class:`ValidationPlan`; ``shared`` when the images all datasets hold (same
        bytes, same class) can supply a stratified set of that size, else
        ``per-dataset``.

    Raises:
        DataError: a class too small to be split (see
            :func:`tune_food.data.loaders.stratified_split`).
    """
    if fraction <= 0 or not train:
        return ValidationPlan("none")
    by_hash: dict[str, dict[str, tuple[str, int]]] = {}
    for name, samples in train.items():
        seen: dict[str, tuple[str, int]] = {}
        for path, label in samples:
            seen.setdefault(cached_sha256(path), (path, label))
        by_hash[name] = seen
    names = list(train)
    common = set.intersection(*(set(h) for h in by_hash.values()))
    common = sorted(h for h in common if len({by_hash[n][h][1] for n in names}) == 1)
    size = round(fraction * min(len(s) for s in train.values()))
    # mutmut: names[1] is equivalent: a common image has one label in every dataset
    labels = [by_hash[names[0]][h][1] for h in common]  # pragma: no mutate
    n_classes = len({label for _, label in train[names[0]]})
    # mutmut: min's default is never read (an empty ``common`` fails the test before it)
    enough = min(Counter(labels).values(), default=0)  # pragma: no mutate
    if size >= n_classes and len(common) - size >= n_classes and enough >= 2 and \
            len(set(labels)) == n_classes:
        chosen = train_test_split(common, test_size=size, random_state=seed, stratify=labels)[1]
        sets = {n: sorted(by_hash[n][h][0] for h in chosen) for n in names}
        return ValidationPlan("shared", len(chosen), sets, sorted(chosen))
    sets, hashes = {}, set()
    for name, samples in train.items():
        _, picked = stratified_split([t for _, t in samples], fraction, seed)
        sets[name] = sorted(samples[i][0] for i in picked)
        hashes |= {cached_sha256(p) for p in sets[name]}
    warning = (f"the training datasets {', '.join(names)} share {len(common)} images, too few "
               f"for a shared validation set of {size}: each dataset holds out its own "
               "images, so val_* metrics of trials on different datasets compare different "
               "images")
    return ValidationPlan("per-dataset", max(len(v) for v in sets.values()), sets,
                          sorted(hashes), warning)


def images_fingerprint(samples: Sequence[tuple[str, int]]) -> dict:
    """What identifies a set of images whatever their paths: ``{"images": n, "sha256":
    SHA-256 over the sorted lines "<class folder>\\t<SHA-256 of the image's bytes>"}``.
    ``samples``: ``(absolute path, class index)`` pairs (the class is the image's folder)."""
    lines = sorted(f"{os.path.basename(os.path.dirname(p))}\t{cached_sha256(p)}\n"
                   for p, _ in samples)
    return {"images": len(lines), "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}


def find_leakage(train: Sequence[tuple[str, int]], test: Sequence[tuple[str, int]]
                 ) -> list[tuple[str, str]]:
    """``(training image, test image)`` pairs with the same bytes (SHA-256)."""
    train_by_hash: dict[str, str] = {}
    for path, _ in train:
        train_by_hash.setdefault(cached_sha256(path), path)
    return [(train_by_hash[h], path) for path, _ in test
            if (h := cached_sha256(path)) in train_by_hash]


def duplicates(samples: Sequence[tuple[str, int]]) -> list[list[str]]:
    """The files of a split that hold the same bytes: one list of paths (in the split's
    order) per image that appears more than once; ``[]`` when every image is distinct."""
    groups: dict[str, list[str]] = {}
    for path, _ in samples:
        groups.setdefault(cached_sha256(path), []).append(path)
    return [paths for paths in groups.values() if len(paths) > 1]


def leakage_error(leaks: dict[tuple[str, str], list[tuple[str, str]]]) -> DataError:
    """The error for test images found in training splits, naming the files."""
    parts = []
    for (train_name, test_name), pairs in leaks.items():
        shown = "; ".join(f"{t} = {tr}" for tr, t in pairs[:5])
        more = f" and {len(pairs) - 5} more" if len(pairs) > 5 else ""
        parts.append(f"{len(pairs)} test image(s) of {test_name} are also in the training "
                     f"split of {train_name}: {shown}{more}")
    return DataError(" | ".join(parts) + "; a leaked test image inflates test accuracy: "
                     "remove it from one side, or pass --allow-leakage to proceed (recorded "
                     "in sweep.json)")


def group_duplicates(named: dict[str, Sequence[tuple[str, int]]]) -> dict[str, list[list[str]]]:
    """:func:`duplicates` of each named split that has any."""
    found = {name: duplicates(samples) for name, samples in named.items()}
    return {name: groups for name, groups in found.items() if groups}
