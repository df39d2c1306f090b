"""Backbone features of images, computed in this process: :func:`extract_images` (a
batch of paths -> ``float32 [N, D]``) and :func:`extract_features` (a whole split, through
the store), each image's vector the frozen backbone's pooled output under the weights'
eval transform. :class:`FeatureSet` is what a trial trains on.

The forward pass is :func:`tune_food.models.runtime.frozen_forward` (OpenVINO float32 on
the CPU, PyTorch on a GPU), the same one the image pipeline (``--feature-cache off``),
``predict`` and the web page use, so every path agrees. JPEG decode and resize run in
threads one batch ahead of the forward (Pillow releases the GIL while it decodes and
resizes; ``benchmarks/extract_settings.py`` measured it).
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from tune_food.common.files import cached_sha256
from tune_food.data.images import rgb_loader, split_folders, split_id
from tune_food.data.splits import split_samples
from tune_food.features.store import FeatureStore, extractor_id
from tune_food.models.devices import gpu_math
from tune_food.models.registry import describe_transform, get_spec, get_transform
from tune_food.models.runtime import FrozenForward, frozen_forward

#: images per forward pass of the extraction (measured: benchmarks/extract_settings.py)
BATCH_SIZE = 32


@dataclass
class FeatureSet:
    """Pooled backbone features of one split.

    Attributes:
        model: registry name of the backbone.
        split_dir: the split's id (:func:`tune_food.data.images.split_id`).
        features: NumPy ``float32 [N, D]`` pooled backbone outputs (D = the model's
            ``num_features``), in ``ImageFolder`` order. Read-only shared memory when
            it came out of the Ray object store.
        labels: NumPy ``int64 [N]`` class indices into ``classes``.
        classes: class-folder names.
        paths: NumPy unicode ``[N]``: the absolute image paths.
        fingerprint: see :func:`fingerprint`.
        transform: description of the transform the images went through.
        source: ``"computed"`` (some of its images ran through the backbone now) or
            ``"disk"`` (all read from a :class:`FeatureStore`).
        seconds: wall time spent producing it.
        hashes: NumPy unicode ``[N]``: the images' SHA-256 (hex), their identity
            across datasets. (Arrays, not lists: like the features they cross the object
            store without a per-trial copy.)
        computed: how many of its images ran through the backbone for it.
        computed_by: what computed its vectors (runtime and version, precision, device
            class: :func:`tune_food.models.devices.computed_by`).
    """

    model: str
    split_dir: str
    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    paths: np.ndarray
    fingerprint: str
    transform: str = ""
    source: str = "computed"
    seconds: float = 0.0
    hashes: np.ndarray = field(default_factory=lambda: np.array([], dtype=str))
    computed: int = 0
    computed_by: str = ""

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features float32 [N, D], labels int64 [N])`` as torch tensors that share
        the arrays' memory (``torch.from_numpy``: no copy, also of read-only shared
        memory, which nothing here writes to)."""
        with warnings.catch_warnings():  # "non-writable": the head never writes its inputs
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.features), torch.from_numpy(self.labels)


def fingerprint(model: str, samples: list[tuple[str, int]], classes: list[str],
                split_dir, hashes: list[str] | None = None, device: str = "cpu",
                computed: str | None = None) -> str:
    """SHA-256 (hex) identifying a feature set.

    It covers the model name, the SHA-256 of its weights file, how images are decoded
    (:data:`tune_food.data.images.LOADER`: EXIF orientation), the transform's description, the
    class names, and for every image its path relative to the split folder (the folders'
    common parent for a united split), its size and the SHA-256 of its bytes; so a
    changed, added, removed or relabelled image, other weights, another transform or
    another runtime or device class give another fingerprint. ``hashes``: the images'
    SHA-256 when already known; ``device``, ``computed``: see :func:`extractor_id`.
    """
    digest = hashlib.sha256()
    head = [*extractor_id(model, device, computed=computed), *classes]
    digest.update("\n".join(head).encode())
    root = os.path.commonpath(split_folders(split_dir))
    hashes = hashes if hashes is not None else [cached_sha256(p) for p, _ in samples]
    for (path, label), sha in zip(samples, hashes):
        rel = os.path.relpath(path, root)
        digest.update(f"\n{rel}\t{label}\t{os.path.getsize(path)}\t{sha}".encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- forward

class _Images(Dataset):
    """Item ``i``: ``(transform(rgb_loader(paths[i])), 0)``: images from anywhere
    (the distinct images of several splits), decoded as every split is."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(rgb_loader(self.paths[i])), 0


def _threaded_batches(images: _Images, batch_size: int, threads: int) -> Iterable[torch.Tensor]:
    """Batches ``float32 [B, 3, S, S]`` of ``images``, decoded by ``threads`` threads
    while the caller runs the forward of the previous batch (one batch ahead, so memory
    stays at two batches)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")

    def submit(start: int) -> list:
        return [pool.submit(lambda i: images[i][0], i)
                for i in range(start, min(start + batch_size, len(images)))]

    try:
        pending = submit(0)
        for start in range(batch_size, len(images) + batch_size, batch_size):
            current = torch.stack([f.result() for f in pending])
            pending = submit(start)   # empty past the end
            yield current
    finally:
        pool.shutdown(cancel_futures=True)


def extract_images(model: str, paths: Sequence[str], batch_size: int = BATCH_SIZE,
                   device: torch.device | str = "cpu", num_workers: int = 0,
                   allow_tf32: bool = False, forward: FrozenForward | None = None,
                   decode_threads: int | None = None) -> np.ndarray:
    """Pooled features of images: ``float32 [len(paths), D]`` NumPy array.

    Decodes with :func:`tune_food.data.images.rgb_loader`, applies the weights' eval
    transform and runs the frozen backbone ``batch_size`` images at a time through
    ``forward`` (None: :func:`tune_food.models.runtime.frozen_forward` of ``model`` on
    ``device``, without a cache folder; on CUDA without TF32,
    :func:`tune_food.models.devices.gpu_math`; ``allow_tf32`` only to measure TF32).
    Decoding: ``num_workers`` > 0 DataLoader processes (a GPU task's CPUs), else
    ``decode_threads`` threads (None: the forward's threads) one batch ahead of the
    forward.

    Raises:
        WeightsError: the model's weights are missing.
    """
    device = str(torch.device(device))
    gpu_math(device, allow_tf32)
    forward = forward or frozen_forward(model, device)
    out = np.empty((len(paths), get_spec(model).num_features), dtype=np.float32)
    if not len(paths):
        return out
    images = _Images(paths, get_transform(model))
    if num_workers:
        batches = (x for x, _ in DataLoader(images, batch_size=batch_size,
                                             num_workers=num_workers))
    else:
        batches = _threaded_batches(images, batch_size, decode_threads or forward.threads)
    row = 0
    with torch.inference_mode():
        for x in batches:
            y = forward(x).cpu().numpy()
            out[row:row + len(y)] = y
            row += len(y)
    return out


def assemble_feature_set(*, model: str, split, classes: list[str],
                         samples: list[tuple[str, int]], hashes: list[str],
                         vectors: dict[str, np.ndarray], source: str, seconds: float,
                         computed: int, computed_by: str, device: str = "cpu") -> FeatureSet:
    """The :class:`FeatureSet` of ``split`` (its ``samples`` as ``(path, label)`` and
    their ``hashes``) from ``vectors`` (SHA-256 -> ``float32 [D]``), in sample order.
    ``source``: ``"computed"`` or ``"disk"``; ``seconds``: what the set took;
    ``computed``: how many of its images ran through the backbone for it;
    ``computed_by``: what computed the vectors (the last part of :func:`extractor_id`)."""
    dim = get_spec(model).num_features
    features = np.empty((len(samples), dim), dtype=np.float32)
    for i, sha in enumerate(hashes):
        features[i] = vectors[sha]
    return FeatureSet(
        model=model, split_dir=split_id(split), features=features,
        labels=np.array([t for _, t in samples], dtype=np.int64), classes=classes,
        paths=np.array([p for p, _ in samples], dtype=str),
        fingerprint=fingerprint(model, samples, classes, split, hashes, device, computed_by),
        transform=describe_transform(get_transform(model)), source=source, seconds=seconds,
        hashes=np.array(hashes, dtype=str), computed=computed, computed_by=computed_by)


def extract_features(model: str, split_dir, exclude: Iterable[str] = (),
                     batch_size: int = BATCH_SIZE, num_workers: int = 0,
                     device: torch.device | str = "cpu",
                     store: FeatureStore | None = None, runtime: str | None = None,
                     cache_dir: str | None = None) -> FeatureSet:
    """The features of every image of a split, computed in this process.

    Args:
        model: a registry name (:data:`tune_food.models.registry.MODELS`).
        split_dir: absolute split folder (one sub-folder per class), or a tuple of
            them united (:class:`tune_food.data.splits.ImageSplit`).
        exclude: image paths to leave out (bad images the user chose to skip).
        batch_size, num_workers, device: see :func:`extract_images`.
        store: when given, images it holds are read from it, the others (each
            distinct content once) run through the backbone and are added to it.
        runtime, cache_dir: see :func:`tune_food.models.runtime.frozen_forward`.

    Returns:
        A :class:`FeatureSet` (NumPy ``features float32 [N, D]``).

    Raises:
        WeightsError: the model's weights are missing.
    """
    start = time.perf_counter()
    classes, samples = split_samples(split_dir, exclude)
    hashes = [cached_sha256(p) for p, _ in samples]
    forward = frozen_forward(model, str(device), runtime, cache_dir=cache_dir)
    key = extractor_id(model, str(device), computed=forward.computed_by)
    vectors = store.get(key, hashes) if store is not None else {}
    missing = {sha: p for (p, _), sha in zip(samples, hashes) if sha not in vectors}
    if missing:
        new = extract_images(model, list(missing.values()), batch_size, device, num_workers,
                             forward=forward)
        vectors.update(zip(missing, new))
        if store is not None:
            store.put(key, list(missing), new)
    return assemble_feature_set(
        model=model, split=split_dir, classes=classes, samples=samples, hashes=hashes,
        vectors=vectors, source="computed" if missing or store is None else "disk",
        seconds=time.perf_counter() - start, computed=len(missing), device=str(device),
        computed_by=forward.computed_by)


def feature_key(model: str, split_dir) -> str:
    """The key of a feature set in the mapping handed to trials: ``"<model>|<split id>"``
    (:func:`tune_food.data.images.split_id`)."""
    return f"{model}|{split_id(split_dir)}"
