"""Find and download datasets: the data root, the known datasets and their manifests.

A dataset is a folder with ``train/`` and ``test/``, each holding one folder per class
with the images inside (torchvision's ``ImageFolder`` layout)::

    <data root>/pizza_steak_sushi/train/pizza/1234.jpg

The data root is ``--data-dir``, else ``$TUNE_FOOD_DATA_DIR``, else ``./data``. The
known datasets (:data:`DATASETS`) are downloaded when missing and every file is checked
against the SHA-256 manifest shipped in ``tune_food/data/manifests/``. What is inside a
dataset (class folders, images) is :mod:`tune_food.data.images`' business.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from typing import Any

from tune_food.common.errors import DataError
from tune_food.common.files import cached_sha256

DATA_DIR_ENV = "TUNE_FOOD_DATA_DIR"   # the data root when --data-dir is not given, else:
DEFAULT_DATA_DIR = "data"              # (relative to the working folder)


@dataclass(frozen=True)
class KnownDataset:
    """A dataset tune_food can download: its archive URL, its SHA-256 manifest file,
    and where its images come from and under what terms (the model card of an exported
    demo quotes it)."""

    name: str
    url: str
    manifest: str
    terms: str = ""


_COURSE = "https://github.com/mrdbourke/pytorch-deep-learning/raw/main/data"
#: Food-101's own statement about its images (https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/)
FOOD101_TERMS = ("photos of Food-101 (Bossard, Guillaumin and Van Gool, ECCV 2014), which "
                 "collected them from foodspotting.com; the dataset's authors do not own "
                 "them, and any use beyond scientific fair use must be agreed with the "
                 "photos' owners under the Foodspotting terms of use")
DATASETS: dict[str, KnownDataset] = {
    "pizza_steak_sushi": KnownDataset(
        "pizza_steak_sushi", f"{_COURSE}/pizza_steak_sushi.zip", "pizza_steak_sushi.json",
        FOOD101_TERMS),
    "pizza_steak_sushi_20_percent": KnownDataset(
        "pizza_steak_sushi_20_percent", f"{_COURSE}/pizza_steak_sushi_20_percent.zip",
        "pizza_steak_sushi_20_percent.json", FOOD101_TERMS),
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
        return os.path.abspath(DEFAULT_DATA_DIR)
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
    text = resources.files("tune_food.data.manifests").joinpath(DATASETS[name].manifest).read_text()
    return json.loads(text)["files"]


def verify_manifest(dataset_dir: str, manifest: dict) -> None:
    """Check that every file of ``manifest`` exists under ``dataset_dir`` with its hash.

    Args:
        manifest: ``{relative path: sha256}``, or a whole manifest file's content with
            those under ``"files"`` (the shipped manifests, a subset's ``manifest.json``).

    Raises:
        DataError: listing the missing and mismatching files (first ten of each).
    """
    if isinstance(manifest.get("files"), dict):
        manifest = manifest["files"]
    missing, wrong = [], []
    for rel, sha in manifest.items():
        path = os.path.join(dataset_dir, rel)
        if not os.path.isfile(path):
            missing.append(rel)
        elif cached_sha256(path) != sha:
            wrong.append(rel)
    if missing or wrong:
        raise DataError(
            f"{dataset_dir} does not match its manifest: {len(missing)} files missing "
            f"{missing[:10]}, {len(wrong)} with a wrong SHA-256 {wrong[:10]}; "
            "make it again (a known dataset: delete the folder and it is downloaded again; "
            "a Food-101 subset: run the same subset command again)")


def url_reachable(url: str, timeout: float = 10.0) -> bool:
    """True when an HTTP(S) ``HEAD`` request for ``url`` gets any answer within
    ``timeout`` seconds (a ``file://`` URL: when the file exists). Used before launch,
    so that a download the sweep would need and cannot make is an error up front, in
    ``--dry-run`` too."""
    # lazy: --help speed: urllib.request costs ~50 ms (measured); only a URL needs it
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
        DataError: ``<data_root>/<name>`` exists (it is never replaced), no network, a
            failed download, or files that fail verification.
    """
    # lazy: --help speed: the CLIs' parsers import this module; torchvision costs ~2.5-5 s
    # (measured)
    from torchvision.datasets.utils import download_and_extract_archive

    known = DATASETS[name]
    url = url or known.url
    target = os.path.join(data_root, name)
    if os.path.lexists(target):   # only a new folder: nothing of the user's is replaced
        raise DataError(f"dataset {name}: {target} exists already and is not replaced by a "
                        "download; move it away, or point --data-dir at another folder")
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


def dataset_fingerprint(path: str, data_root: str) -> dict[str, Any]:
    """What ``--resume`` compares of a dataset: its ``path`` relative to the data root,
    its ``files`` and ``bytes``, ``sha256`` over every file's (relative path, size) and
    ``content_sha256`` over every file's (relative path, SHA-256 of its bytes), so an
    image replaced by another of the same size is a change too. The file hashes are the
    ones the plan computed already (:func:`tune_food.common.files.cached_sha256`)."""
    names, contents, files, size = hashlib.sha256(), hashlib.sha256(), 0, 0
    for root, dirs, entries in sorted(os.walk(path)):
        dirs.sort()
        for n in sorted(entries):
            p = os.path.join(root, n)
            rel, st = os.path.relpath(p, path), os.stat(p)
            names.update(f"{rel}\t{st.st_size}\n".encode())
            contents.update(f"{rel}\t{cached_sha256(p)}\n".encode())
            files, size = files + 1, size + st.st_size
    return {"path": os.path.relpath(path, data_root), "files": files, "bytes": size,
            "sha256": names.hexdigest(), "content_sha256": contents.hexdigest()}
