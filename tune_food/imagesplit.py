"""``ImageSplit``: the images of a split as torchvision's ``DatasetFolder``.

The one way tune_food lists a split (:func:`tune_food.images.split_samples`,
:func:`tune_food.images.scan_split`, the DataLoaders and feature extraction all use it):
torchvision's ``make_dataset`` file discovery and order, :func:`tune_food.images.rgb_loader`
(EXIF orientation applied) as the loader, hidden folders not counted as classes, and
several split folders united into one (a test set drawn from several datasets). Its
own module because it imports torchvision (about 4 s): import it only where images are
listed or decoded.
"""

from __future__ import annotations

import copy
import os
from typing import Callable, Iterable, Sequence

from torchvision.datasets import DatasetFolder
from torchvision.datasets.folder import make_dataset

from .errors import DataError
from .files import cached_sha256
from .images import class_folders, is_image_file, rgb_loader, split_folders, split_id


class ImageSplit(DatasetFolder):
    """The images of a split as torchvision's ``DatasetFolder``, decoded by
    :func:`~tune_food.images.rgb_loader`. Item ``i``: ``(transform(image), class index)``.

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
    path), ``targets``, ``root`` (:func:`~tune_food.images.split_id`); ``folders``: the split folders.

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
