"""Cut your own subset of Food-101 into the image-folder layout tune_food reads.

:func:`build_subset` (the command ``python -m tune_food.data subset --food101 PATH
--classes ramen,sushi --fraction 0.2 --seed 42 --out data/ramen_sushi_20_percent``, see
:mod:`tune_food.data.cli`) reads a Food-101 copy in its own layout::

    PATH/images/<class>/<id>.jpg
    PATH/meta/train.json     {"<class>": ["<class>/<id>", ...], ...}   (ids without .jpg)
    PATH/meta/test.json

(``PATH`` may also be the folder holding ``food-101/``, as torchvision downloads it),
takes the same fraction of each chosen class's official train and test lists, and
writes ``OUT/{train,test}/<class>/<id>.jpg`` plus ``OUT/manifest.json`` (the SHA-256 of
every file, like the manifests of the shipped datasets). Sampling uses one seeded
generator per (split, class), so a class's images do not depend on which other classes
were chosen, and the same inputs give the same folder byte for byte. ``--force``
replaces only an earlier subset (a folder with its ``manifest.json``), never the Food-101
copy read nor a folder holding it (:func:`tune_food.common.files.check_replaceable`).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from typing import Sequence

from tune_food.common.errors import DataError
from tune_food.common.files import Replaceable, atomic_folder, cached_sha256, check_replaceable
from tune_food.data.images import SPLITS

FOOD101_DIR = "food-101"          # what torchvision.datasets.Food101 downloads into
MANIFEST_FILE = "manifest.json"   # in the subset folder
MANIFEST_KEYS = ("source", "classes", "fraction", "seed", "files")   # how --force knows one
SUBSET_COMMAND = "python -m tune_food.data subset"
LAYOUT = "images/<class>/<id>.jpg, meta/train.json and meta/test.json"


@dataclass(frozen=True)
class Subset:
    """A subset written by :func:`build_subset`.

    Attributes:
        out: absolute subset folder.
        classes: class names, sorted.
        counts: ``{split: {class: images}}``.
        available: ``{split: {class: images in Food-101's official list}}``.
        bytes: total size of the images written (bytes).
        seconds: wall time of the build (s).
    """

    out: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    available: dict[str, dict[str, int]]
    bytes: int
    seconds: float


def find_food101(path: str) -> str:
    """The Food-101 folder at ``path``: ``path`` itself or ``path/food-101``.

    Raises:
        DataError: neither holds Food-101's layout (the message says what is missing).
    """
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise DataError(f"--food101 {path} does not exist; point it at a Food-101 copy "
                        f"({LAYOUT}) or add --download to fetch one there")
    for candidate in (path, os.path.join(path, FOOD101_DIR)):
        if all(os.path.isfile(os.path.join(candidate, "meta", f"{s}.json")) for s in SPLITS) \
                and os.path.isdir(os.path.join(candidate, "images")):
            return candidate
    missing = [p for p in ("images/", "meta/train.json", "meta/test.json")
               if not os.path.exists(os.path.join(path, p.rstrip("/")))]
    raise DataError(f"{path} is not a Food-101 copy: {', '.join(missing)} missing (neither "
                    f"there nor in {FOOD101_DIR}/ below it); Food-101's layout is {LAYOUT}, "
                    "or add --download to fetch it")


def read_meta(root: str) -> dict[str, dict[str, list[str]]]:
    """``{split: {class: [id, ...]}}`` from ``root/meta/{train,test}.json``.

    Raises:
        DataError: a file that is not JSON of that shape, or different classes in the
            two files.
    """
    meta = {}
    for split in SPLITS:
        path = os.path.join(root, "meta", f"{split}.json")
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} cannot be read as JSON ({exc}); it should map each class "
                            'to its image ids, e.g. {"pizza": ["pizza/1001116", ...]}') from None
        if not isinstance(data, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v)
                for k, v in data.items()):
            raise DataError(f"{path} is not Food-101's meta format: it should map each class to "
                            'a list of image ids, e.g. {"pizza": ["pizza/1001116", ...]}')
        meta[split] = data
    if set(meta["train"]) != set(meta["test"]):
        diff = sorted(set(meta["train"]) ^ set(meta["test"]))
        raise DataError(f"{root}/meta: train.json and test.json list different classes "
                        f"({', '.join(diff[:10])}); use an unmodified Food-101 copy")
    return meta


def parse_classes(spec: str, available: Sequence[str]) -> list[str]:
    """The sorted class names of ``spec`` (``"ramen,sushi"`` or ``"all"``).

    Raises:
        DataError: an empty name, a class named twice, fewer than two classes, or an
            unknown class (with the closest Food-101 names, from
            :func:`difflib.get_close_matches`).
    """
    names = sorted(available) if spec.strip() == "all" else [c.strip() for c in spec.split(",")]
    if not any(names) or "" in names:
        raise DataError(f"--classes {spec!r} has an empty name; give class names separated by "
                        "commas (e.g. ramen,sushi) or all")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise DataError(f"--classes names {', '.join(twice)} more than once; name each class once")
    problems = []
    for name in names:
        if name not in available:
            close = difflib.get_close_matches(name, list(available), n=3)
            problems.append(f"{name!r} (did you mean {' or '.join(close)}?)" if close
                            else repr(name))
    if problems:
        raise DataError(f"unknown Food-101 class {'; '.join(problems)}; the {len(available)} "
                        "classes are the keys of meta/train.json (e.g. "
                        f"{', '.join(sorted(available)[:5])})")
    if len(names) < 2:
        raise DataError(f"--classes {spec!r} gives {len(names)} class; a classifier needs at "
                        "least two")
    return sorted(names)


def sample_ids(ids: Sequence[str], fraction: float, seed: int, split: str, cls: str) -> list[str]:
    """``round(fraction x len(ids))`` of ``ids`` (half up), sorted, drawn by a generator
    seeded with ``(seed, split, cls)``.

    Only ``random.Random(str).random()`` decides the draw (each id, in sorted order, gets
    a random key; the smallest keys win), which Python guarantees to reproduce across
    versions.

    Raises:
        DataError: the fraction leaves no image of this class and split.
    """
    k = math.floor(fraction * len(ids) + 0.5)
    if k == 0:
        raise DataError(f"--fraction {fraction} leaves no {split} image of class {cls!r} "
                        f"(it has {len(ids)}); choose a larger fraction")
    rng = random.Random(f"tune_food.data.food101:{seed}:{split}:{cls}")
    keyed = [(rng.random(), i) for i in sorted(ids)]
    return sorted(i for _, i in sorted(keyed)[:k])


def check_fraction(fraction: float) -> float:
    """``fraction`` when it is in (0, 1].

    Raises:
        DataError: otherwise (NaN included).
    """
    if not (0 < fraction <= 1):
        raise DataError(f"--fraction {fraction} is outside (0, 1]; give the share of each "
                        "class's images to keep, e.g. 0.2 for 20 %")
    return fraction


def build_subset(food101: str, classes: str | Sequence[str], fraction: float, seed: int,
                 out: str, force: bool = False) -> Subset:
    """Write a Food-101 subset as an image-folder dataset with a SHA-256 manifest.

    Args:
        food101: a Food-101 copy (:func:`find_food101`).
        classes: ``"all"``, ``"a,b"`` or a list of class names.
        fraction: share of each class's official train and of its test list, in (0, 1].
        seed: seeds the per-(split, class) generators (:func:`sample_ids`).
        out: the dataset folder to create (its name is the dataset's name in a search
            space; its parent is the data root).
        force: replace ``out`` when it is an earlier subset (:func:`replaceable`).

    Returns:
        A :class:`Subset` (counts, bytes, seconds).

    Raises:
        DataError: a bad layout, unknown classes, a fraction outside (0, 1], an ``out``
            that exists without ``force``, image files listed but missing, or ids that are
            in both the train and the test list.
        OutputError: ``force`` and ``out`` is not an earlier subset, or is or holds the
            Food-101 copy (:func:`check_out`); nothing is touched.
    """
    start = time.perf_counter()
    check_fraction(fraction)
    out = os.path.abspath(os.path.expanduser(out))
    check_out(food101, out, force)
    root = find_food101(food101)
    meta = read_meta(root)
    spec = classes if isinstance(classes, str) else ",".join(classes)
    chosen = parse_classes(spec, list(meta["train"]))
    picked = {s: {c: sample_ids(meta[s][c], fraction, seed, s, c) for c in chosen}
              for s in SPLITS}
    sources = _sources(root, meta, picked)
    counts = {s: {c: len(picked[s][c]) for c in chosen} for s in SPLITS}
    size = _write_dataset(out, replaceable(food101) if force else None, sources, {
        "dataset": os.path.basename(out), "source": "Food-101 (meta/train.json, meta/test.json)",
        "classes": chosen, "fraction": fraction, "seed": seed, "counts": counts})
    return Subset(out, chosen, counts, {s: {c: len(meta[s][c]) for c in chosen} for s in SPLITS},
                  size, time.perf_counter() - start)


def replaceable(food101: str) -> Replaceable:
    """What ``--force`` may replace: an earlier subset (its ``manifest.json`` with
    :data:`MANIFEST_KEYS`, and nothing but its splits and manifest), never the Food-101
    copy (``food101`` as given, and the ``food-101/`` below it that :func:`find_food101`
    may take) nor a folder holding it."""
    path = os.path.abspath(os.path.expanduser(food101))
    return Replaceable(MANIFEST_FILE, MANIFEST_KEYS, SUBSET_COMMAND, keep={
        path: "the Food-101 copy it reads",
        os.path.join(path, FOOD101_DIR): "the Food-101 copy it reads"},
        entries=(*SPLITS, MANIFEST_FILE))   # a subset holds nothing else (a data root...)


def check_out(food101: str, out: str, force: bool) -> None:
    """Refuse an ``out`` that exists without ``force``, or, with it, one that is not an
    earlier subset (:func:`replaceable`). Asked before anything is read or downloaded.

    Raises:
        DataError: ``out`` exists and ``force`` is false.
        OutputError: see :func:`tune_food.common.files.check_replaceable`.
    """
    if os.path.lexists(out) and not force:
        raise DataError(f"--out {out} exists; choose another folder or pass --force to "
                        "replace it if it is an earlier subset")
    check_replaceable(out, replaceable(food101))


def _sources(root: str, meta: dict[str, dict[str, list[str]]],
             picked: dict[str, dict[str, list[str]]]) -> dict[str, str]:
    """``{"<split>/<class>/<id>.jpg": absolute image path in the Food-101 copy}`` of the
    picked ids.

    Raises:
        DataError: an id in both official lists of a class, a listed image missing, or
            two ids of one class with the same file name.
    """
    for cls in picked["train"]:
        shared = set(meta["train"][cls]) & set(meta["test"][cls])
        if shared:
            raise DataError(f"{root}/meta lists {len(shared)} ids of {cls!r} in both train.json "
                            f"and test.json (e.g. {sorted(shared)[0]}); use an unmodified "
                            "Food-101 copy")
    sources = {f"{s}/{c}/{os.path.basename(i)}.jpg": os.path.join(root, "images", f"{i}.jpg")
               for s in SPLITS for c, ids in picked[s].items() for i in ids}
    missing = sorted(src for src in sources.values() if not os.path.isfile(src))
    if missing:
        raise DataError(f"{len(missing)} images listed in {root}/meta are missing (e.g. "
                        f"{', '.join(missing[:3])}); the copy is incomplete: fetch it again "
                        "(--download into an empty folder)")
    if len(sources) != sum(len(ids) for s in SPLITS for ids in picked[s].values()):
        raise DataError(f"{root}/meta lists two ids with the same file name in one class; use "
                        "an unmodified Food-101 copy")
    return sources


def _write_dataset(out: str, rule: Replaceable | None, sources: dict[str, str],
                   manifest: dict) -> int:
    """Copy ``sources`` (relative path -> source file) into a new folder ``out`` with
    ``manifest.json`` (``manifest`` plus ``files``: relative path -> SHA-256), replacing
    ``out`` when ``rule`` allows (None: never; :func:`tune_food.common.files.atomic_folder`: written
    beside ``out`` and renamed, so ``out`` appears only complete). Returns the bytes of
    the images written."""
    size = 0

    def write(tmp: str) -> None:
        nonlocal size
        files = {}
        for rel in sorted(sources):
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(sources[rel], dst)
            files[rel] = cached_sha256(dst)
            size += os.path.getsize(dst)
        with open(os.path.join(tmp, MANIFEST_FILE), "w") as fh:
            json.dump({**manifest, "files": files}, fh, indent=0)
            fh.write("\n")

    atomic_folder(out, write, replace=rule)
    return size


def download_food101(root: str) -> str:
    """Fetch Food-101 (about 5 GB) into ``root/food-101`` through
    ``torchvision.datasets.Food101(download=True)`` (nothing is fetched when it is
    there already); return that folder.

    Raises:
        DataError: the download failed (no network, disk full...), in one line.
    """
    # lazy: --help speed: the CLIs' parsers import this module; torchvision costs ~2.5-5 s
    # (measured)
    from torchvision.datasets import Food101

    root = os.path.abspath(os.path.expanduser(root))
    made = [] if os.path.isdir(root) else [root]   # folders this call made: removed on failure
    while made and not os.path.isdir(os.path.dirname(made[-1])):
        made.append(os.path.dirname(made[-1]))
    try:
        os.makedirs(root, exist_ok=True)
        Food101(root, split="train", download=True)
    except Exception as exc:  # urllib, ssl, tarfile, OSError: all "could not download"
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise DataError(f"downloading Food-101 from {Food101._URL} into {root} failed "
                        f"({reason}); without network, copy Food-101 ({LAYOUT}) there "
                        "yourself and run again without --download") from None
    return os.path.join(root, FOOD101_DIR)
