"""``ImageSplit``: the images of a split as torchvision's ``DatasetFolder``.

The one way tune_food lists a split (:func:`tune_food.data.images.split_samples`,
:func:`tune_food.data.images.scan_split`, the DataLoaders and feature extraction all use it):
torchvision's ``make_dataset`` file discovery and order, :func:`tune_food.data.images.rgb_loader`
(EXIF orientation applied) as the loader, hidden folders not counted as classes, and
several split folders united into one (a test set drawn from several datasets). Its
own module because it imports torchvision (about 4 s): import it only where images are
listed or decoded.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import make_dataset

from tune_food.common.errors import DataError
from tune_food.common.files import cached_sha256
from tune_food.data.images import (
    SPLITS,
    check_image,
    class_folders,
    image_extensions,
    is_image_file,
    rgb_loader,
    split_folders,
    split_id,
)


class ImageSplit(DatasetFolder):
    """The images of a split as torchvision's ``DatasetFolder``, decoded by
    :func:`~tune_food.data.images.rgb_loader`. Item ``i``: ``(transform(image), class index)``.

    Args:
        split: a split folder (one sub-folder per class), or a tuple of split folders
            with the same class folders that are united: their images in folder order,
            each distinct content (SHA-256) once (the first copy kept), so a test set
            drawn from overlapping datasets counts every image once.
        transform: PIL image -> tensor (e.g. ``float32 [3, S, S]``); None keeps the
            PIL image.
        exclude: image paths to leave out (bad images the user chose to skip).

    Attributes (``DatasetFolder``'s): ``classes`` (sorted class folders), ``class_to_idx``,
    ``samples`` (``(absolute path, class index)`` in ``ImageFolder`` order: class, then
    path), ``targets``, ``root`` (:func:`~tune_food.data.images.split_id`); ``folders``: the split folders.

    Raises:
        DataError: a folder is missing, has loose images or no class folder, or united
            folders have different class folders.
    """

    def __init__(self, split, transform: Callable | None = None, exclude: Iterable[str] = ()):
        self.folders = split_folders(split)
        self._exclude = frozenset(os.path.abspath(p) for p in exclude)
        super().__init__(split_id(split), loader=rgb_loader, transform=transform,
                         is_valid_file=self._is_valid, allow_empty=True)

    def _is_valid(self, path: str) -> bool:
        return is_image_file(path) and os.path.abspath(path) not in self._exclude

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """The class folders of every folder of the split (``directory`` is its id)."""
        classes: list[str] | None = None
        for folder in self.folders:
            these = class_folders(folder)
            if classes is not None and these != classes:
                raise DataError("the test splits united in test_data have different class "
                                f"folders: {classes} and {these} in {folder}")
            classes = these
        return classes, {c: i for i, c in enumerate(classes)}

    def make_dataset(self, directory: str, class_to_idx: dict[str, int],
                     extensions=None, is_valid_file=None, allow_empty: bool = True):
        """torchvision's ``make_dataset`` over each folder of the split, united."""
        samples: list[tuple[str, int]] = []
        seen: set[str] = set()
        for folder in self.folders:
            for path, target in make_dataset(folder, class_to_idx, is_valid_file=is_valid_file,
                                             allow_empty=True):
                if len(self.folders) > 1:
                    digest = cached_sha256(path)
                    if digest in seen:
                        continue
                    seen.add(digest)
                samples.append((os.path.abspath(path), target))
        return samples

    def subset(self, indices: Sequence[int]) -> "ImageSplit":
        """A copy holding only ``samples[i]`` for ``i`` in ``indices`` (in that order),
        e.g. the training or the validation part of a training split."""
        part = copy.copy(self)
        part.samples = [self.samples[i] for i in indices]
        part.targets = [t for _, t in part.samples]
        return part


def split_samples(split, exclude: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, samples)`` of a split listed by
    :class:`ImageSplit` (one split folder or a tuple of them
    united), without ``exclude``.

    Raises:
        DataError: see :class:`ImageSplit`.
    """
    images = ImageSplit(split, exclude=exclude)
    return images.classes, images.samples


# --------------------------------------------------------------------------- validation

@dataclass
class SplitInfo:
    """The images of one split.

    Attributes:
        dir: absolute split folder.
        classes: sorted class-folder names.
        samples: ``(absolute path, class index)`` of every usable image, in
            ``ImageFolder`` order (class, then file name).
        bad: ``(absolute path, reason)`` of every image that failed to decode.
    """

    dir: str
    classes: list[str]
    samples: list[tuple[str, int]]
    bad: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class DatasetInfo:
    """A validated dataset: its folder, class names and both splits."""

    root: str
    classes: list[str]
    train: SplitInfo
    test: SplitInfo

    @property
    def bad_images(self) -> list[tuple[str, str]]:
        return self.train.bad + self.test.bad


def scan_split(split_dir: str, check_images: bool = True,
               progress: Callable[[int], None] | None = None) -> SplitInfo:
    """List (:class:`ImageSplit`) and optionally decode-check the
    images of one split folder; ``progress(1)`` is called after each image is decoded
    (e.g. :meth:`tune_food.common.progress.Counter.update`).

    Raises:
        DataError: the folder is missing, holds images outside class folders, has
            no class folder, or has an empty class folder.
    """
    images = ImageSplit(split_dir)
    counts = {i: 0 for i in range(len(images.classes))}
    for target in images.targets:
        counts[target] += 1
    empty = [images.classes[i] for i, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"class folder {os.path.join(images.root, empty[0])} has no images "
                        f"(extensions: {', '.join(image_extensions())}); add images or remove "
                        "the folder")
    samples = images.samples
    bad: list[tuple[str, str]] = []
    if check_images:
        reasons = []
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
            for reason in pool.map(check_image, [p for p, _ in samples]):
                reasons.append(reason)
                if progress is not None:
                    progress(1)
        bad = [(p, r) for (p, _), r in zip(samples, reasons) if r is not None]
        bad_set = {p for p, _ in bad}
        samples = [s for s in samples if s[0] not in bad_set]
    return SplitInfo(images.root, images.classes, samples, bad)


def validate_image_folder(dataset_dir: str, skip_bad_images: bool = False,
                          test_dir: str | None = None,
                          scanned: dict[str, SplitInfo] | None = None,
                          progress: Callable[[int], None] | None = None) -> DatasetInfo:
    """Validate a dataset before any trial uses it.

    Args:
        dataset_dir: folder with ``train/`` and ``test/``.
        skip_bad_images: when true, undecodable images are left out (and listed in
            ``DatasetInfo.bad_images``) instead of raising.
        test_dir: use this split folder as the test split instead of
            ``<dataset_dir>/test`` (a sweep may test every trial on one shared split).
        scanned: split folder -> its :func:`scan_split`, kept across calls, so a sweep
            that pairs one training split with several test splits decodes each once.
        progress: called with 1 after each image decoded (:func:`scan_split`).

    Returns:
        A :class:`DatasetInfo` with absolute paths.

    Raises:
        DataError: missing folders, different class folders in train and test, an
            empty class, a single class, loose images, or undecodable images (all of
            them listed with path and reason) when ``skip_bad_images`` is false.
    """
    dataset_dir = os.path.abspath(dataset_dir)
    if not os.path.isdir(dataset_dir):
        raise DataError(f"dataset folder {dataset_dir} does not exist")
    missing = [s for s in SPLITS if not os.path.isdir(os.path.join(dataset_dir, s))]
    if missing and not (missing == ["test"] and test_dir):
        raise DataError(f"dataset folder {dataset_dir} has no {' or '.join(m + '/' for m in missing)} "
                        "folder; a dataset needs train/ and test/, each with one folder per class")
    scanned = {} if scanned is None else scanned
    for split_dir in (os.path.join(dataset_dir, "train"),
                      os.path.abspath(test_dir or os.path.join(dataset_dir, "test"))):
        if split_dir not in scanned:
            scanned[split_dir] = scan_split(split_dir, progress=progress)
    train = scanned[os.path.join(dataset_dir, "train")]
    test = scanned[os.path.abspath(test_dir or os.path.join(dataset_dir, "test"))]
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        raise DataError(f"class folders differ between {train.dir} and {test.dir}: only in "
                        f"train {only_train}, only in test {only_test}; both splits need the "
                        "same class folders")
    if len(train.classes) < 2:
        raise DataError(f"{train.dir} has a single class ({train.classes[0]}); a classifier "
                        "needs at least two class folders")
    info = DatasetInfo(dataset_dir, train.classes, train, test)
    if info.bad_images and not skip_bad_images:
        listing = "; ".join(f"{p} ({r})" for p, r in info.bad_images)
        raise DataError(f"{len(info.bad_images)} images in {dataset_dir} cannot be decoded: "
                        f"{listing}; delete or replace them, or pass --skip-bad-images")
    return info
