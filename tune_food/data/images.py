"""The images of a dataset: list a split, check it, decode it.

A split folder holds one folder per class with the images inside (torchvision's
``ImageFolder`` layout). :class:`tune_food.data.splits.ImageSplit` is the one way
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

from PIL import Image

from tune_food.common.errors import DataError
from tune_food.demo.preprocess import load_rgb

SPLITS = ("train", "test")

#: what :func:`rgb_loader` does to the bytes; part of every feature fingerprint, so a
#: change here never reuses features decoded the old way
LOADER = "PIL decode; EXIF orientation applied (ImageOps.exif_transpose); 16-bit scaled; RGB"


def rgb_loader(path: str) -> Image.Image:
    """Open an image file as 3-channel RGB the way every viewer shows it: the EXIF
    ``Orientation`` tag applied (``ImageOps.exif_transpose``: a phone photo saved
    sideways with orientation 6 comes out upright), whatever its mode (L, P, RGBA,
    CMYK, I;16...). The one loader of tune_food: feature extraction, the image
    pipeline and predict all decode through it (:data:`LOADER`). Its code is
    :func:`tune_food.demo.preprocess.load_rgb`, which an exported demo carries as it is,
    so the demo decodes exactly as training did."""
    return load_rgb(path)


def image_extensions() -> tuple[str, ...]:
    # lazy: torchvision (about 4 s to import) only where needed: a trial training on
    # cached features never loads it, nor the sweep's and the data command's --help
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def is_image_file(path: str) -> bool:
    """True for a non-hidden file with one of torchvision's ``IMG_EXTENSIONS``
    (case-insensitive)."""
    return not os.path.basename(path).startswith(".") and path.lower().endswith(image_extensions())


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


