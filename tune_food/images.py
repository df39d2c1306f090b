"""The images of a dataset: list a split, check it, decode it.

A split folder holds one folder per class with the images inside (torchvision's
``ImageFolder`` layout). :class:`tune_food.imagesplit.ImageSplit` is the one way
tune_food lists a split (:func:`split_samples` and :func:`scan_split` use it):
torchvision's ``DatasetFolder`` with :func:`rgb_loader` as its loader. Files without an
image extension (torchvision's ``IMG_EXTENSIONS``) are ignored, as ``ImageFolder``
ignores them; hidden folders are not classes. This module does not import torchvision
(about 4 s) until a split is listed, so a trial training on cached features never
loads it.

Every dataset is validated before a sweep starts (:func:`validate_image_folder`): the
same class folders in both splits, no empty class, at least two classes, no images
loose in a split folder, and every image decodable; all bad images of a split are
reported together.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

from PIL import Image

from .errors import DataError

SPLITS = ("train", "test")

#: what :func:`rgb_loader` does to the bytes; part of every feature fingerprint, so a
#: change here never reuses features decoded the old way
LOADER = "PIL decode; EXIF orientation applied (ImageOps.exif_transpose); 16-bit scaled; RGB"


def rgb_loader(path: str) -> Image.Image:
    """Open an image file as 3-channel RGB the way every viewer shows it: the EXIF
    ``Orientation`` tag applied (``ImageOps.exif_transpose``: a phone photo saved
    sideways with orientation 6 comes out upright), whatever its mode (L, P, RGBA,
    CMYK, I;16...). The one loader of tune_food: feature extraction, the image
    pipeline and predict all decode through it (:data:`LOADER`)."""
    from PIL import ImageOps

    with open(path, "rb") as fh:
        img = Image.open(fh)
        img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale to 8 bits
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


def _img_extensions() -> tuple[str, ...]:
    # torchvision (about 4 s to import) is imported only where needed: a trial training
    # on cached features never loads it.
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def is_image_file(path: str) -> bool:
    """True for a non-hidden file with one of torchvision's ``IMG_EXTENSIONS``
    (case-insensitive)."""
    return not os.path.basename(path).startswith(".") and path.lower().endswith(_img_extensions())


def check_image(path: str) -> str | None:
    """None when ``path`` decodes completely as an image, else the reason it does not
    (``"empty file (0 bytes)"``, or the decoder's exception type and message)."""
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return f"{type(exc).__name__}: {exc}"
    return None


def split_folders(split) -> list[str]:
    """The absolute folders of a split: one split folder, or a tuple of them united (a
    test set drawn from several datasets)."""
    return [os.path.abspath(d) for d in ([split] if isinstance(split, str) else split)]


def split_id(split) -> str:
    """A split as one string: the absolute folder, or several joined by ``+``."""
    return "+".join(split_folders(split))


def class_folders(split_dir: str) -> list[str]:
    """The sorted class folders of one split folder (hidden folders are not classes).

    Raises:
        DataError: the folder is missing, holds images outside class folders, or has no
            class folder.
    """
    if not os.path.isdir(split_dir):
        raise DataError(f"split folder {split_dir} is missing; a dataset needs train/ and "
                        "test/ folders, each with one sub-folder per class")
    entries = sorted(os.scandir(split_dir), key=lambda e: e.name)
    loose = [e.name for e in entries if e.is_file() and is_image_file(e.name)]
    if loose:
        raise DataError(f"{len(loose)} images lie directly in {split_dir} (e.g. {loose[0]}); "
                        "move each image into a folder named after its class")
    classes = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not classes:
        raise DataError(f"{split_dir} has no class folders; put each class's images in "
                        f"{split_dir}/<class name>/")
    return classes


def split_samples(split, exclude: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, samples)`` of a split listed by
    :class:`~tune_food.imagesplit.ImageSplit` (one split folder or a tuple of them
    united), without ``exclude``.

    Raises:
        DataError: see :class:`~tune_food.imagesplit.ImageSplit`.
    """
    from .imagesplit import ImageSplit

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
    """List (:class:`~tune_food.imagesplit.ImageSplit`) and optionally decode-check the
    images of one split folder; ``progress(1)`` is called after each image is decoded
    (e.g. :meth:`tune_food.progress.Counter.update`).

    Raises:
        DataError: the folder is missing, holds images outside class folders, has
            no class folder, or has an empty class folder.
    """
    from .imagesplit import ImageSplit

    images = ImageSplit(split_dir)
    counts = {i: 0 for i in range(len(images.classes))}
    for target in images.targets:
        counts[target] += 1
    empty = [images.classes[i] for i, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"class folder {os.path.join(images.root, empty[0])} has no images "
                        f"(extensions: {', '.join(_img_extensions())}); add images or remove "
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
