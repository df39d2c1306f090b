"""Run a frozen backbone once over a split and keep the pooled features.

A frozen backbone in eval mode, fed the weights' deterministic eval transform, maps each
image to a constant feature vector. Training the head on those vectors is the same
computation as running the whole network every epoch (DESIGN.md, decision 3), so a
sweep computes each (model, split) :class:`FeatureSet` once, as a Ray task
(:func:`compute_feature_sets`), shares it with every trial through the Ray object
store, and keeps it on disk (:class:`FeatureCache`) keyed by a fingerprint of the
weights, the transform and the image files.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch.utils.data import DataLoader

from .files import atomic_write, cached_sha256
from .images import LOADER, split_folders, split_id
from .models import build_backbone, describe_transform, get_transform, weights_sha256


@dataclass
class FeatureSet:
    """Pooled backbone features of one split.

    Attributes:
        model: registry name of the backbone.
        split_dir: absolute split folder.
        features: ``float32 [N, D]`` pooled backbone outputs (D = the model's
            ``num_features``), in ``ImageFolder`` order.
        labels: ``int64 [N]`` class indices into ``classes``.
        classes: class-folder names.
        paths: the N absolute image paths.
        fingerprint: see :func:`fingerprint`.
        hashes: the N images' SHA-256 (hex): their identity across datasets.
        transform: description of the transform the images went through.
        source: ``"computed"`` (this process ran the backbone) or ``"disk"`` (read from
            a :class:`FeatureCache`).
        seconds: wall time spent producing it (extraction or disk read).
    """

    model: str
    split_dir: str
    features: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    paths: list[str]
    fingerprint: str
    transform: str = ""
    source: str = "computed"
    seconds: float = 0.0
    hashes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.labels.numel()


def fingerprint(model: str, samples: list[tuple[str, int]], classes: list[str],
                split_dir, hashes: list[str] | None = None) -> str:
    """SHA-256 (hex) identifying a feature set.

    It covers the model name, the SHA-256 of its weights file, how images are decoded
    (:data:`tune_food.images.LOADER`: EXIF orientation), the transform's description, the
    class names, and for every image its path relative to the split folder (the folders'
    common parent for a united split), its size and the SHA-256 of its bytes; so a
    changed, added, removed or relabelled image, other weights or another transform give
    another fingerprint. ``hashes``: the images' SHA-256 when already known.
    """
    digest = hashlib.sha256()
    head = [model, weights_sha256(model), LOADER, describe_transform(get_transform(model)),
            *classes]
    digest.update("\n".join(head).encode())
    root = os.path.commonpath(split_folders(split_dir))
    hashes = hashes if hashes is not None else [cached_sha256(p) for p, _ in samples]
    for (path, label), sha in zip(samples, hashes):
        rel = os.path.relpath(path, root)
        digest.update(f"\n{rel}\t{label}\t{os.path.getsize(path)}\t{sha}".encode())
    return digest.hexdigest()


class FeatureCache:
    """Feature sets on disk, one ``<model>-<fingerprint[:24]>.pt`` file each.

    Writes go to a temporary file that is renamed into place, so a crash never leaves
    a half file and concurrent writers of the same key are harmless.
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(os.path.expanduser(directory))

    def path(self, model: str, fp: str) -> str:
        return os.path.join(self.directory, f"{model}-{fp[:24]}.pt")

    def load(self, model: str, fp: str) -> FeatureSet | None:
        """The cached set for ``(model, fp)``, or None when absent or unreadable."""
        path = self.path(model, fp)
        if not os.path.isfile(path):
            return None
        start = time.perf_counter()
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a corrupt cache entry is only a cache miss
            return None
        if blob.get("fingerprint") != fp or "transform" not in blob:  # other or older entry
            return None
        return FeatureSet(model, blob["split_dir"], blob["features"], blob["labels"],
                          blob["classes"], blob["paths"], fp, blob["transform"], "disk",
                          time.perf_counter() - start, blob.get("hashes", []))

    def save(self, fs: FeatureSet) -> str:
        """Write ``fs`` atomically; return its path."""
        blob = {"fingerprint": fs.fingerprint, "split_dir": fs.split_dir,
                "features": fs.features, "labels": fs.labels, "classes": fs.classes,
                "paths": fs.paths, "transform": fs.transform, "hashes": fs.hashes}
        path = atomic_write(self.path(fs.model, fs.fingerprint), lambda tmp: torch.save(blob, tmp))
        return path


@torch.no_grad()
def extract_features(model: str, split_dir, exclude: Iterable[str] = (),
                     batch_size: int = 32, num_workers: int = 0,
                     device: torch.device | str = "cpu",
                     cache: FeatureCache | None = None) -> FeatureSet:
    """Run the frozen, eval-mode backbone of ``model`` once over every image of a split.

    Args:
        model: a registry name (:data:`tune_food.models.MODELS`).
        split_dir: absolute split folder (one sub-folder per class), or a tuple of
            them united (:class:`tune_food.imagesplit.ImageSplit`).
        exclude: image paths to leave out (bad images the user chose to skip).
        batch_size: images per forward pass.
        num_workers: DataLoader processes decoding images.
        device: where the backbone runs.
        cache: when given, a hit is returned without running the backbone and a miss
            is written to it.

    Returns:
        A :class:`FeatureSet` with ``features float32 [N, D]`` on the CPU.

    Raises:
        WeightsError: the model's weights are missing.
    """
    start = time.perf_counter()
    from .imagesplit import ImageSplit  # torchvision: imported only where images are read

    images = ImageSplit(split_dir, exclude=exclude)
    classes, samples = images.classes, images.samples
    hashes = [cached_sha256(p) for p, _ in samples]
    fp = fingerprint(model, samples, classes, split_dir, hashes)
    split_dir = split_id(split_dir)
    if cache is not None:
        hit = cache.load(model, fp)
        if hit is not None:
            hit.seconds = time.perf_counter() - start
            return hit
    device = torch.device(device)
    backbone = build_backbone(model).to(device)
    images.transform = transform = get_transform(model)
    loader = DataLoader(images, batch_size=batch_size, num_workers=num_workers)
    chunks = [backbone(x.to(device)).float().cpu() for x, _ in loader]
    fs = FeatureSet(model, split_dir, torch.cat(chunks),
                    torch.tensor([t for _, t in samples], dtype=torch.int64), classes,
                    [p for p, _ in samples], fp, describe_transform(transform), "computed",
                    time.perf_counter() - start, hashes)
    if cache is not None:
        cache.save(fs)
    return fs


def _extract_task(model: str, split_dir, exclude: list[str], cache_dir: str | None,
                  batch_size: int) -> tuple[FeatureSet, dict]:
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fs = extract_features(model, split_dir, exclude, batch_size=batch_size,
                          device=device, cache=FeatureCache(cache_dir) if cache_dir else None)
    info = {"model": model, "split_dir": split_id(split_dir),
            "split_dirs": split_folders(split_dir), "images": len(fs), "source": fs.source,
            "seconds": fs.seconds, "node_id": ray.get_runtime_context().get_node_id(),
            "node_ip": ray.util.get_node_ip_address(), "device": device}
    return fs, info


def compute_feature_sets(pairs: Iterable[tuple[str, str]], cpus: float, gpus: float,
                         cache_dir: str | None, exclude: Iterable[str] = (),
                         batch_size: int = 64) -> tuple[dict[str, "ray.ObjectRef"], list[dict]]:
    """Compute each distinct ``(model, split_dir)`` feature set once, as Ray tasks.

    Each task gets ``cpus`` CPUs and ``gpus`` GPUs (the trial's resources), reads the
    disk cache first, and leaves its :class:`FeatureSet` in the Ray object store.
    Blocks until every task is done.

    Returns:
        ``(refs, infos)``: ``refs[feature_key(model, split_dir)]`` is the object ref of
        the set; ``infos`` holds per set ``model, split_dir`` (its id),
        ``split_dirs`` (its folders), ``images, source, seconds, node_id, node_ip,
        device``.

    Raises:
        ray.exceptions.RayTaskError: wrapping the task's exception (e.g. WeightsError).
    """
    import ray

    remote = ray.remote(num_returns=2)(_extract_task).options(num_cpus=cpus, num_gpus=gpus)
    exclude = sorted(exclude)
    refs, info_refs = {}, []
    for model, split_dir in sorted(dict.fromkeys(pairs), key=_cost, reverse=True):
        fs_ref, info_ref = remote.remote(model, split_dir, exclude, cache_dir, batch_size)
        refs[feature_key(model, split_dir)] = fs_ref
        info_refs.append(info_ref)
    return refs, ray.get(info_refs)


def _cost(pair: tuple[str, str]) -> float:
    """Rough cost of a feature set (images x pixels of the model's input), so the
    largest start first and the tasks finish together (longest-processing-time order)."""
    from .models import get_spec

    model, split = pair
    images = sum(len(files) for d in split_folders(split) for _, _, files in os.walk(d))
    return images * get_spec(model).input_size ** 2


def feature_key(model: str, split_dir) -> str:
    """The key of a feature set in the mapping handed to trials: ``"<model>|<split id>"``
    (:func:`tune_food.images.split_id`)."""
    return f"{model}|{split_id(split_dir)}"
