"""Find, download, verify and validate image-folder datasets; build DataLoaders.

A dataset is a folder with ``train/`` and ``test/``, each holding one folder per class
with the images inside (torchvision's ``ImageFolder`` layout)::

    <data root>/pizza_steak_sushi/train/pizza/1234.jpg

The data root is ``--data-dir``, else ``$TUNE_FOOD_DATA_DIR``, else ``./data``. The
known datasets (:data:`DATASETS`) are downloaded when missing and every file is checked
against the SHA-256 manifest shipped in ``tune_food/manifests/``. Every dataset is
validated before a sweep starts (:func:`validate_image_folder`): the same class folders
in both splits, no empty class, at least two classes, no images loose in a split folder,
and every image decodable; all bad images of a split are reported together.
Files without an image extension (torchvision's ``IMG_EXTENSIONS``) are ignored, as
``ImageFolder`` ignores them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable, Iterable, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader

from .errors import DataError

DATA_DIR_ENV = "TUNE_FOOD_DATA_DIR"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class KnownDataset:
    """A dataset tune_food can download: its archive URL and its SHA-256 manifest file."""

    name: str
    url: str
    manifest: str


_COURSE = "https://github.com/mrdbourke/pytorch-deep-learning/raw/main/data"
DATASETS: dict[str, KnownDataset] = {
    "pizza_steak_sushi": KnownDataset(
        "pizza_steak_sushi", f"{_COURSE}/pizza_steak_sushi.zip", "pizza_steak_sushi.json"),
    "pizza_steak_sushi_20_percent": KnownDataset(
        "pizza_steak_sushi_20_percent", f"{_COURSE}/pizza_steak_sushi_20_percent.zip",
        "pizza_steak_sushi_20_percent.json"),
}


# --------------------------------------------------------------------------- locating

def resolve_data_root(data_dir: str | None = None) -> str:
    """The absolute data root: ``data_dir``, else ``$TUNE_FOOD_DATA_DIR``, else ``./data``.

    Raises:
        DataError: an explicitly given root (flag or variable) does not exist.
    """
    if data_dir:
        source = f"--data-dir {data_dir}"
    elif os.environ.get(DATA_DIR_ENV):
        data_dir, source = os.environ[DATA_DIR_ENV], f"${DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]}"
    else:
        return os.path.abspath("data")
    root = os.path.abspath(os.path.expanduser(data_dir))
    if os.path.exists(root) and not os.path.isdir(root):
        raise DataError(f"data root {root} (from {source}) is a file, not a folder; point "
                        f"--data-dir / ${DATA_DIR_ENV} at the folder that holds your datasets")
    if not os.path.isdir(root):
        raise DataError(f"data root {root} (from {source}) does not exist; "
                        f"create it or point --data-dir / ${DATA_DIR_ENV} at the folder "
                        "that holds your datasets")
    return root


def load_manifest(name: str) -> dict[str, str]:
    """The committed ``{relative path: sha256}`` manifest of known dataset ``name``."""
    text = resources.files("tune_food").joinpath("manifests", DATASETS[name].manifest).read_text()
    return json.loads(text)["files"]


def file_sha256(path: str) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_manifest(dataset_dir: str, manifest: dict[str, str]) -> None:
    """Check that every file of ``manifest`` exists under ``dataset_dir`` with its hash.

    Raises:
        DataError: listing the missing and mismatching files (first ten of each).
    """
    missing, wrong = [], []
    for rel, sha in manifest.items():
        path = os.path.join(dataset_dir, rel)
        if not os.path.isfile(path):
            missing.append(rel)
        elif file_sha256(path) != sha:
            wrong.append(rel)
    if missing or wrong:
        raise DataError(
            f"{dataset_dir} does not match its manifest: {len(missing)} files missing "
            f"{missing[:10]}, {len(wrong)} with a wrong SHA-256 {wrong[:10]}; "
            "delete the folder to download it again")


def url_reachable(url: str, timeout: float = 10.0) -> bool:
    """True when an HTTP(S) ``HEAD`` request for ``url`` gets any answer within
    ``timeout`` seconds (a ``file://`` URL: when the file exists). Used before launch,
    so that a download the sweep would need and cannot make is an error up front, in
    ``--dry-run`` too."""
    import urllib.error
    import urllib.request

    if url.startswith("file://"):
        return os.path.exists(url[len("file://"):])
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return True   # the server answered (redirects and 403s still mean reachable)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return True


def download_dataset(name: str, data_root: str, url: str | None = None) -> str:
    """Download known dataset ``name`` into ``<data_root>/<name>`` and verify it.

    ``url`` overrides the archive's address (a mirror, or a ``file://`` URL).

    The archive is fetched and extracted into a temporary folder beside the target,
    verified against the manifest, then renamed into place, so an interrupted download
    never leaves a half dataset.

    Returns:
        The absolute dataset folder.

    Raises:
        DataError: no network, a failed download, or files that fail verification.
    """
    from torchvision.datasets.utils import download_and_extract_archive

    known = DATASETS[name]
    url = url or known.url
    target = os.path.join(data_root, name)
    os.makedirs(data_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=data_root)
    try:
        try:
            download_and_extract_archive(url, download_root=tmp, extract_root=tmp,
                                         remove_finished=True)
        except Exception as exc:  # urllib, ssl, zipfile errors: all "could not download"
            raise DataError(
                f"dataset {name} is not in {data_root} and downloading {url} failed "
                f"({type(exc).__name__}: {exc}); put the dataset (train/ and test/ folders) "
                f"at {target}, or point --data-dir / ${DATA_DIR_ENV} at a folder that has it"
            ) from None
        content = tmp
        entries = [e for e in os.listdir(tmp) if not e.startswith(".")]
        if "train" not in entries and len(entries) == 1:  # archive with one top folder
            content = os.path.join(tmp, entries[0])
        verify_manifest(content, load_manifest(name))
        os.replace(content, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_dataset(name: str, data_root: str, download: bool = True) -> str:
    """The absolute folder of dataset ``name`` under ``data_root``.

    A known dataset (:data:`DATASETS`) that is missing is downloaded when ``download``
    is true. Any other name must be a folder under the data root.

    Raises:
        DataError: the folder is missing and cannot be downloaded; the message names
            ``--data-dir`` and ``$TUNE_FOOD_DATA_DIR``.
    """
    path = os.path.join(data_root, name)
    if os.path.isdir(path):
        return path
    if name in DATASETS and download:
        return download_dataset(name, data_root)
    present = sorted(e for e in os.listdir(data_root) if not e.startswith(".")
                     and os.path.isdir(os.path.join(data_root, e))) if os.path.isdir(data_root) else []
    hint = (f"dataset {name!r} not found at {path} (folders there: "
            f"{', '.join(present) if present else 'none'}); fix the name in the search space, "
            f"or point --data-dir or ${DATA_DIR_ENV} at the folder that contains it")
    if name not in DATASETS:
        hint += f" (datasets tune_food can download: {', '.join(DATASETS)})"
    raise DataError(hint)


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


def _img_extensions() -> tuple[str, ...]:
    # torchvision is imported only where needed: a trial training on cached features
    # never loads it, which saves about a second per trial process.
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def is_image_file(path: str) -> bool:
    """True for a non-hidden file with one of torchvision's ``IMG_EXTENSIONS``
    (case-insensitive)."""
    return not os.path.basename(path).startswith(".") and path.lower().endswith(_img_extensions())


def _check_image(path: str) -> str | None:
    """None when ``path`` decodes completely as an image, else the reason it does not."""
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        return f"{type(exc).__name__}: {exc}"
    return None


def scan_split(split_dir: str, check_images: bool = True) -> SplitInfo:
    """List (and optionally decode-check) the images of one split folder.

    Raises:
        DataError: the folder is missing, holds images outside class folders, has
            no class folder, or has an empty class folder.
    """
    if not os.path.isdir(split_dir):
        raise DataError(f"split folder {split_dir} is missing; a dataset needs train/ and "
                        "test/ folders, each with one sub-folder per class")
    entries = sorted(os.listdir(split_dir))
    loose = [e for e in entries if is_image_file(e) and os.path.isfile(os.path.join(split_dir, e))]
    if loose:
        raise DataError(f"{len(loose)} images lie directly in {split_dir} (e.g. {loose[0]}); "
                        "move each image into a folder named after its class")
    classes = [e for e in entries if os.path.isdir(os.path.join(split_dir, e))
               and not e.startswith(".")]
    if not classes:
        raise DataError(f"{split_dir} has no class folders; put each class's images in "
                        f"{split_dir}/<class name>/")
    samples: list[tuple[str, int]] = []
    for idx, cls in enumerate(classes):
        cdir = os.path.join(split_dir, cls)
        files = sorted(os.path.join(root, f) for root, _, fs in os.walk(cdir, followlinks=True)
                       for f in fs if is_image_file(f))
        if not files:
            raise DataError(f"class folder {cdir} has no images (extensions: "
                            f"{', '.join(_img_extensions())}); add images or remove the folder")
        samples.extend((f, idx) for f in files)
    bad: list[tuple[str, str]] = []
    if check_images:
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
            reasons = list(pool.map(_check_image, [p for p, _ in samples]))
        bad = [(p, r) for (p, _), r in zip(samples, reasons) if r is not None]
        bad_set = {p for p, _ in bad}
        samples = [s for s in samples if s[0] not in bad_set]
    return SplitInfo(os.path.abspath(split_dir), classes, samples, bad)


def validate_image_folder(dataset_dir: str, skip_bad_images: bool = False,
                          test_dir: str | None = None,
                          scanned: dict[str, SplitInfo] | None = None) -> DatasetInfo:
    """Validate a dataset before any trial uses it.

    Args:
        dataset_dir: folder with ``train/`` and ``test/``.
        skip_bad_images: when true, undecodable images are left out (and listed in
            ``DatasetInfo.bad_images``) instead of raising.
        test_dir: use this split folder as the test split instead of
            ``<dataset_dir>/test`` (a sweep may test every trial on one shared split).
        scanned: split folder -> its :func:`scan_split`, kept across calls, so a sweep
            that pairs one training split with several test splits decodes each once.

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
            scanned[split_dir] = scan_split(split_dir)
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


# --------------------------------------------------------------------------- loading

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


class ImageList(torch.utils.data.Dataset):
    """A dataset over explicit ``(path, class index)`` samples (an ``ImageFolder`` whose
    file list was validated up front). Item: ``(transform(image), class index)``."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable):
        self.samples = list(samples)
        self.targets = [t for _, t in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        return self.transform(rgb_loader(path)), target


def _visible_classes(directory: str) -> tuple[list[str], dict[str, int]]:
    """``ImageFolder.find_classes`` without hidden folders (``.ipynb_checkpoints``...),
    as :func:`scan_split` sees them."""
    classes = sorted(e.name for e in os.scandir(directory)
                     if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{directory} has no class folders")
    return classes, {c: i for i, c in enumerate(classes)}


def split_folders(split) -> list[str]:
    """The absolute folders of a split: one split folder, or a tuple of them united (a
    test set drawn from several datasets)."""
    return [os.path.abspath(d) for d in ([split] if isinstance(split, str) else split)]


def split_id(split) -> str:
    """A split as one string: the absolute folder, or several joined by ``+``."""
    return "+".join(split_folders(split))


def split_samples(split, exclude: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, samples)`` of a split in ``ImageFolder`` order, without ``exclude``.

    ``split`` is a split folder, or a tuple of split folders with the same class folders
    that are united: their images in folder order, each distinct content (SHA-256) once
    (the first copy kept), so a test set drawn from overlapping datasets counts every
    image once.

    Uses torchvision's ``ImageFolder`` file discovery (``make_dataset``), so the order
    of samples and how classes are indexed are torchvision's; hidden folders are not
    classes.

    Raises:
        DataError: united folders whose class folders differ.
    """
    from torchvision.datasets.folder import make_dataset

    skip = {os.path.abspath(p) for p in exclude}
    dirs = split_folders(split)
    classes: list[str] | None = None
    samples: list[tuple[str, int]] = []
    seen: set[str] = set()
    for split_dir in dirs:
        these, class_to_idx = _visible_classes(split_dir)
        if classes is not None and these != classes:
            raise DataError(f"the test splits united in test_data have different class folders: "
                            f"{classes} and {these} in {split_dir}")
        classes = these
        found = make_dataset(split_dir, class_to_idx,
                             is_valid_file=lambda p: is_image_file(p) and os.path.abspath(p) not in skip,
                             allow_empty=True)
        for p, t in found:
            if len(dirs) > 1:
                digest = cached_sha256(p)
                if digest in seen:
                    continue
                seen.add(digest)
            samples.append((os.path.abspath(p), t))
    return classes or [], samples


@functools.lru_cache(maxsize=None)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def cached_sha256(path: str) -> str:
    """:func:`file_sha256`, memoised per (path, size, modification time)."""
    st = os.stat(path)
    return _sha256_memo(os.path.abspath(path), st.st_size, st.st_mtime_ns)


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
    from sklearn.model_selection import train_test_split

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
    for every trial, :func:`tune_food.validation.shared_validation`) exactly those are
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
        ``(float32 [B, 3, S, S], int64 [B])``; only the train loader shuffles.

    Raises:
        ValueError: relative paths (trials run in other processes and nodes).
        DataError: train and test class folders differ.
    """
    for path in [train_dir, *([test_dir] if isinstance(test_dir, str) else test_dir)]:
        if not os.path.isabs(path):
            raise ValueError(f"make_dataloaders needs absolute paths, got {path!r}")
    classes, train_samples = split_samples(train_dir, exclude)
    test_classes, test_samples = split_samples(test_dir, exclude)
    if classes != test_classes:
        raise DataError(f"class folders differ between {train_dir} {classes} and "
                        f"{test_dir} {test_classes}")
    train_idx, val_idx = split_indices([p for p, _ in train_samples],
                                       [t for _, t in train_samples], val_paths,
                                       val_fraction, seed)
    train = ImageList([train_samples[i] for i in train_idx], transform)
    val = ImageList([train_samples[i] for i in val_idx], transform) if val_idx else None
    return (*seeded_loaders(train, val, ImageList(test_samples, transform), batch_size, seed,
                            num_workers), classes)


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
