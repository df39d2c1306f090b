"""Run a frozen backbone once per distinct image and keep the pooled features.

A frozen backbone in eval mode, fed the weights' deterministic eval transform, maps each
image to a constant feature vector: a pure function of (backbone, weights file,
decoder + transform, image bytes). Training the head on those vectors is the same
computation as running the whole network every epoch (docs: "features are computed
once"), so:

- :class:`FeatureStore` keeps one vector per image under exactly that key, in an SQLite
  database (stdlib ``sqlite3``: ACID transactions that are safe across processes), so
  overlapping datasets share work and a grown dataset computes only its new images;
- :func:`compute_feature_sets` (the sweep) looks every image of every needed
  ``(model, split)`` up in the store, runs the backbone as Ray tasks over the distinct
  missing images only (each once, however many splits contain it), writes them to the
  store and puts one :class:`FeatureSet` per split into the Ray object store, as NumPy
  arrays: every trial on a node maps the same read-only shared memory, no copy;
- :func:`extract_features` does the same for one split in this process.

The forward pass (:func:`tune_food.models.forward_settings`: ``channels_last``, ``torch.inference_mode``,
float32) is the same one the image pipeline (``--feature-cache off``) uses, so both paths
agree.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TextIO

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .devices import assigned_device, computed_by, gpu_math
from .errors import DataError
from .files import cached_sha256
from tune_food.images import LOADER, rgb_loader, split_folders, split_id
from tune_food.imagesplit import split_samples
from .models import (backbone_features, build_backbone, describe_transform, forward_settings,
                     get_spec, get_transform, weights_sha256)
from .progress import PROGRESS_EVERY_S, Counter

#: images per forward pass of the extraction (measured: benchmarks/extract_settings.py)
BATCH_SIZE = 32
#: images per extraction task: small enough that the tasks of several models balance
#: over the cores (and progress shows every few seconds), large enough that a task's
#: fixed cost (about 0.1 s once the worker holds the backbone) does not matter
CHUNK_IMAGES = 96
#: the store's file. ``-v2``: the key holds what computed a vector (``computed_by``); a
#: store of the earlier layout (``features.sqlite``) is left alone and not read
STORE_FILE = "features-v2.sqlite"


@dataclass
class FeatureSet:
    """Pooled backbone features of one split.

    Attributes:
        model: registry name of the backbone.
        split_dir: the split's id (:func:`tune_food.images.split_id`).
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

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(features float32 [N, D], labels int64 [N])`` as torch tensors that share
        the arrays' memory (``torch.from_numpy``: no copy, also of read-only shared
        memory, which nothing here writes to)."""
        with warnings.catch_warnings():  # "non-writable": the head never writes its inputs
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(self.features), torch.from_numpy(self.labels)


def extractor_id(model: str, device: str = "cpu") -> tuple[str, str, str, str]:
    """The part of a feature's key that is not the image: ``(backbone name, SHA-256 of
    its weights file, decoder + eval transform description, what computed it)``; the
    last is :func:`tune_food.devices.computed_by` (runtime, precision, device class of
    ``device``), so vectors a GPU computed are never read for a CPU sweep, nor the
    reverse.

    Raises:
        WeightsError: unknown model or missing weights.
    """
    return (model, weights_sha256(model),
            f"{LOADER} | {describe_transform(get_transform(model))}", computed_by(device))


def fingerprint(model: str, samples: list[tuple[str, int]], classes: list[str],
                split_dir, hashes: list[str] | None = None, device: str = "cpu") -> str:
    """SHA-256 (hex) identifying a feature set.

    It covers the model name, the SHA-256 of its weights file, how images are decoded
    (:data:`tune_food.images.LOADER`: EXIF orientation), the transform's description, the
    class names, and for every image its path relative to the split folder (the folders'
    common parent for a united split), its size and the SHA-256 of its bytes; so a
    changed, added, removed or relabelled image, other weights, another transform or
    another device class give another fingerprint. ``hashes``: the images' SHA-256 when
    already known; ``device``: where the vectors are computed.
    """
    digest = hashlib.sha256()
    head = [*extractor_id(model, device), *classes]
    digest.update("\n".join(head).encode())
    root = os.path.commonpath(split_folders(split_dir))
    hashes = hashes if hashes is not None else [cached_sha256(p) for p, _ in samples]
    for (path, label), sha in zip(samples, hashes):
        rel = os.path.relpath(path, root)
        digest.update(f"\n{rel}\t{label}\t{os.path.getsize(path)}\t{sha}".encode())
    return digest.hexdigest()


def check_store(directory: str) -> None:
    """The feature store in ``directory``, where there is one, must be a readable SQLite
    database (read only: nothing is created or changed).

    Raises:
        DataError: the file is damaged or not a database, with the fix (it is a cache:
            delete it, or use another ``--cache-dir``).
    """
    path = os.path.join(os.path.abspath(os.path.expanduser(directory)), STORE_FILE)
    if not os.path.isfile(path):
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"the feature store {path} is damaged ({exc}); it is a cache of "
                        "backbone features: delete it (they are computed again) or pass "
                        "another --cache-dir") from None


class FeatureStore:
    """Per-image backbone features on disk: ``<directory>/`` + :data:`STORE_FILE`.

    One row per (backbone, weights SHA-256, transform description, what computed it
    (:func:`tune_food.devices.computed_by`), image SHA-256), the vector a ``float32``
    BLOB. SQLite (the stdlib's ``sqlite3``) gives atomic
    transactions that are safe with several processes writing at once (file locks, a
    busy timeout, write-ahead log); ``INSERT OR IGNORE`` makes a second writer of the
    same image harmless. Local disks (or a shared disk with working POSIX locks) only.

    Raises (constructor):
        OSError: the folder cannot be created.
        DataError: the file is damaged or not a database (:func:`check_store`).
    """

    def __init__(self, directory: str, timeout_s: float = 120.0):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, STORE_FILE)
        check_store(self.directory)
        self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS extractors (id INTEGER PRIMARY KEY, "
                "backbone TEXT NOT NULL, weights_sha256 TEXT NOT NULL, transform TEXT NOT NULL, "
                "computed_by TEXT NOT NULL, dim INTEGER NOT NULL, "
                "UNIQUE (backbone, weights_sha256, transform, computed_by))")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS features (extractor INTEGER NOT NULL "
                "REFERENCES extractors(id), image_sha256 TEXT NOT NULL, vector BLOB NOT NULL, "
                "PRIMARY KEY (extractor, image_sha256)) WITHOUT ROWID")

    def _transaction(self):
        conn = self._conn

        class _Tx:
            def __enter__(self):
                conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no deadlocks

            def __exit__(self, kind, value, tb):
                conn.execute("COMMIT" if kind is None else "ROLLBACK")
        return _Tx()

    def close(self) -> None:
        self._conn.close()

    def _extractor(self, key: tuple[str, ...], dim: int | None) -> int | None:
        row = self._conn.execute(
            "SELECT id, dim FROM extractors WHERE backbone=? AND weights_sha256=? AND "
            "transform=? AND computed_by=?", key).fetchone()
        if row is not None or dim is None:
            return None if row is None else row[0]
        self._conn.execute("INSERT OR IGNORE INTO extractors (backbone, weights_sha256, "
                           "transform, computed_by, dim) VALUES (?, ?, ?, ?, ?)", (*key, dim))
        return self._extractor(key, None)

    def get(self, key: tuple[str, ...], hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors (``float32 [D]``, read-only) of those of ``hashes`` that
        the store has for extractor ``key`` (:func:`extractor_id`)."""
        ext = self._extractor(key, None)
        if ext is None:
            return {}
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = self._conn.execute(
                f"SELECT image_sha256, vector FROM features WHERE extractor=? AND "
                f"image_sha256 IN ({','.join('?' * len(part))})", (ext, *part))
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, key: tuple[str, ...], hashes: Sequence[str], vectors: np.ndarray) -> int:
        """Store ``vectors`` (``float32 [N, D]``, row i the image ``hashes[i]``) in one
        transaction; images already stored keep their vector. Returns rows added."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(hashes) != vectors.shape[0]:
            raise ValueError(f"{len(hashes)} hashes for {vectors.shape[0]} vectors")
        with self._transaction():
            ext = self._extractor(key, int(vectors.shape[1]))
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO features (extractor, image_sha256, vector) VALUES (?, ?, ?)",
                ((ext, sha, vec.tobytes()) for sha, vec in zip(hashes, vectors)))
            return self._conn.total_changes - before

    def count(self, key: tuple[str, ...] | None = None) -> int:
        """Stored vectors (of extractor ``key``, or all)."""
        if key is None:
            return self._conn.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        ext = self._extractor(key, None)
        return 0 if ext is None else self._conn.execute(
            "SELECT COUNT(*) FROM features WHERE extractor=?", (ext,)).fetchone()[0]


# ----------------------------------------------------------------------------- forward

def _backbone(model: str, device: str) -> torch.nn.Module:
    """The backbone of ``model`` on ``device``, built once per process and weights file
    (a Ray worker runs many extraction tasks; a replaced weights file is another
    backbone, as it is another key of the store)."""
    return _built_backbone(model, device, weights_sha256(model))


@functools.lru_cache(maxsize=2)
def _built_backbone(model: str, device: str, weights: str) -> torch.nn.Module:
    return forward_settings(build_backbone(model).to(device))


class _Images(Dataset):
    """Item ``i``: ``(transform(rgb_loader(paths[i])), 0)``: images from anywhere
    (the distinct images of several splits), decoded as every split is."""

    def __init__(self, paths: Sequence[str], transform: Callable):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(rgb_loader(self.paths[i])), 0


def extract_images(model: str, paths: Sequence[str], batch_size: int = BATCH_SIZE,
                   device: torch.device | str = "cpu", num_workers: int = 0,
                   allow_tf32: bool = False) -> np.ndarray:
    """Pooled features of images: ``float32 [len(paths), D]`` NumPy array.

    Decodes with :func:`tune_food.images.rgb_loader`, applies the weights' eval transform,
    runs the frozen backbone under ``torch.inference_mode`` in ``channels_last`` layout
    in float32 (:func:`tune_food.models.backbone_features`; on CUDA without TF32,
    :func:`tune_food.devices.gpu_math`; ``allow_tf32`` only to measure TF32),
    ``batch_size`` images at a time; ``num_workers`` DataLoader processes decode ahead of
    the forward pass.

    Raises:
        WeightsError: the model's weights are missing.
    """
    device = str(torch.device(device))
    gpu_math(device, allow_tf32)
    backbone = _backbone(model, device)
    out = np.empty((len(paths), get_spec(model).num_features), dtype=np.float32)
    if not len(paths):
        return out
    loader = DataLoader(_Images(paths, get_transform(model)),
                        batch_size=batch_size, num_workers=num_workers)
    row = 0
    with torch.inference_mode():
        for x, _ in loader:
            y = backbone_features(backbone, x, device).cpu().numpy()
            out[row:row + len(y)] = y
            row += len(y)
    return out


def _assemble(model: str, split, classes, samples, hashes, vectors: dict[str, np.ndarray],
              transform: str, source: str, seconds: float, computed: int,
              device: str = "cpu") -> FeatureSet:
    dim = get_spec(model).num_features
    features = np.empty((len(samples), dim), dtype=np.float32)
    for i, sha in enumerate(hashes):
        features[i] = vectors[sha]
    return FeatureSet(model, split_id(split), features,
                      np.array([t for _, t in samples], dtype=np.int64), classes,
                      np.array([p for p, _ in samples], dtype=str),
                      fingerprint(model, samples, classes, split, hashes, device),
                      transform, source, seconds, np.array(hashes, dtype=str), computed)


def extract_features(model: str, split_dir, exclude: Iterable[str] = (),
                     batch_size: int = BATCH_SIZE, num_workers: int = 0,
                     device: torch.device | str = "cpu",
                     store: FeatureStore | None = None) -> FeatureSet:
    """The features of every image of a split, computed in this process.

    Args:
        model: a registry name (:data:`tune_food.models.MODELS`).
        split_dir: absolute split folder (one sub-folder per class), or a tuple of
            them united (:class:`tune_food.imagesplit.ImageSplit`).
        exclude: image paths to leave out (bad images the user chose to skip).
        batch_size, num_workers, device: see :func:`extract_images`.
        store: when given, images it holds are read from it, the others (each
            distinct content once) run through the backbone and are added to it.

    Returns:
        A :class:`FeatureSet` (NumPy ``features float32 [N, D]``).

    Raises:
        WeightsError: the model's weights are missing.
    """
    start = time.perf_counter()
    classes, samples = split_samples(split_dir, exclude)
    hashes = [cached_sha256(p) for p, _ in samples]
    key = extractor_id(model, str(device))
    vectors = store.get(key, hashes) if store is not None else {}
    missing = {sha: p for (p, _), sha in zip(samples, hashes) if sha not in vectors}
    if missing:
        new = extract_images(model, list(missing.values()), batch_size, device, num_workers)
        vectors.update(zip(missing, new))
        if store is not None:
            store.put(key, list(missing), new)
    return _assemble(model, split_dir, classes, samples, hashes, vectors,
                     describe_transform(get_transform(model)),
                     "computed" if missing or store is None else "disk",
                     time.perf_counter() - start, len(missing), device=str(device))


# ----------------------------------------------------------------------------- sweep

def _extract_task(model: str, paths: list[str], batch_size: int) -> tuple[np.ndarray, dict]:
    """Ray task: the features of ``paths`` (:func:`extract_images`) on the device Ray
    assigned (:func:`tune_food.devices.assigned_device`; on a GPU its CPUs decode in as
    many DataLoader workers), and where and how fast they were computed."""
    import ray

    start = time.perf_counter()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))
    device = assigned_device()
    # on a GPU the forward no longer fills the CPUs: they decode ahead of it
    workers = int(cpus) if device != "cpu" and cpus >= 1 else 0
    vectors = extract_images(model, paths, batch_size, device, workers)
    ctx = ray.get_runtime_context()
    return vectors, {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                     "device": device, "seconds": time.perf_counter() - start}


@dataclass
class _Pending:
    """One (model, split) feature set being assembled by :func:`compute_feature_sets`."""

    model: str
    split: Any
    classes: list[str]
    samples: list[tuple[str, int]]
    hashes: list[str]
    waiting: set[str]          # hashes not yet computed
    computed: int              # its images that run through the backbone for it
    fresh: bool                # some of its images were not in the store
    node_id: str = ""
    node_ip: str = ""
    device: str = "cpu"


def extraction_options(cpus: float, gpus: float) -> dict[str, Any]:
    """``ray.remote`` options of an extraction task with a trial's ``cpus`` and ``gpus``.
    With GPUs, ``max_calls=1``: a worker process that held one GPU is never handed
    another (Ray reuses workers across GPU assignments when the GPUs come through
    ``.options()``, which cannot set ``max_calls``; CUDA and the cached backbone stay on
    the first GPU a process touched)."""
    return {"num_cpus": cpus, "num_gpus": gpus, "max_calls": 1 if gpus else 0}


def compute_feature_sets(pairs: Iterable[tuple[str, str]], cpus: float, gpus: float,
                         cache_dir: str | None, exclude: Iterable[str] = (),
                         batch_size: int = BATCH_SIZE, out: TextIO | None = None
                         ) -> tuple[dict[str, Any], list[dict]]:
    """The feature set of each distinct ``(model, split_dir)``, each image computed once.

    Every image of every split is looked up by content in the :class:`FeatureStore` in
    ``cache_dir`` (None: no store); per model the distinct missing images run through
    the backbone as Ray tasks of :data:`CHUNK_IMAGES` images, each with ``cpus`` CPUs
    and ``gpus`` GPUs (the trial's resources), the most expensive first. This process
    writes their vectors to the store and puts each set in the Ray object store as
    NumPy arrays. With ``out``, an images count (:class:`~tune_food.progress.Counter`, at
    least every :data:`~tune_food.progress.PROGRESS_EVERY_S`) and one line
    per finished set (images, source, seconds, images/s) are printed. Blocks until done.

    Returns:
        ``(refs, infos)``: ``refs[feature_key(model, split_dir)]`` is the object ref of
        the :class:`FeatureSet`; ``infos`` holds per set ``model, split_dir`` (its id),
        ``split_dirs`` (its folders), ``images``, ``computed`` (its images that ran
        through the backbone for it: an image shared with another set counts once, so
        the sum over sets is the number of backbone passes), ``source`` (computed |
        disk), ``seconds`` (from the start until the set was complete), ``node_id,
        node_ip, device`` (where its last images were computed; this process's node for
        a set read whole from the store).

    Raises:
        ray.exceptions.RayTaskError: wrapping the task's exception (e.g. WeightsError).
        WeightsError: unknown model or missing weights (raised here, before any task).
    """
    import ray

    device = "cuda" if gpus else "cpu"   # the device class the tasks compute on
    job = _Extraction(FeatureStore(cache_dir) if cache_dir else None, out, device)
    try:
        for model, split in dict.fromkeys(pairs):
            job.add(model, split, sorted(exclude))
        job.run(ray.remote(**extraction_options(cpus, gpus))(_extract_task), batch_size)
    finally:
        job.close()
    return job.refs, job.infos


class _Extraction:
    """The state of one :func:`compute_feature_sets` call: per model the vectors known
    so far (store hits and finished tasks) and the distinct images still to compute;
    per set what it waits for. Sets are put in the object store as they complete."""

    def __init__(self, store: FeatureStore | None, out: TextIO | None, device: str = "cpu"):
        import ray

        self.store, self.out, self.start = store, out, time.perf_counter()
        self.device = device
        self.sets: dict[str, _Pending] = {}
        self.vectors: dict[str, dict[str, np.ndarray]] = {}   # model -> sha -> vector
        self.todo: dict[str, dict[str, str]] = {}              # model -> missing sha -> path
        self.keys: dict[str, tuple[str, str, str]] = {}
        self.refs: dict[str, Any] = {}
        self.infos: list[dict] = []
        self.running: dict[Any, tuple[str, list[str]]] = {}
        self.bar = None
        self.here = {"node_id": ray.get_runtime_context().get_node_id(),
                     "node_ip": ray.util.get_node_ip_address(), "device": "cpu"}

    def add(self, model: str, split, exclude: list[str]) -> None:
        """List ``split``, hash its images, look them up in the store."""
        classes, samples = split_samples(split, exclude)
        hashes = [cached_sha256(p) for p, _ in samples]
        if model not in self.keys:
            self.keys[model] = extractor_id(model, self.device)
            self.vectors[model], self.todo[model] = {}, {}
        known, todo = self.vectors[model], self.todo[model]
        if self.store is not None:
            known.update(self.store.get(self.keys[model], [h for h in hashes if h not in known]))
        waiting = {h for h in hashes if h not in known}
        own = 0   # images first needed by this set: each distinct image counts once
        for (path, _), sha in zip(samples, hashes):
            if sha in waiting and sha not in todo:
                todo[sha] = path
                own += 1
        self.sets[feature_key(model, split)] = _Pending(model, split, classes, samples, hashes,
                                                        waiting, own, bool(waiting))

    def _chunks(self) -> list[tuple[int, str, list[str], list[str]]]:
        """``(cost, model, hashes, paths)`` of :data:`CHUNK_IMAGES` images each, the
        most expensive (pixels) first, so that the last tasks finish together."""
        chunks = []
        for model, missing in self.todo.items():
            items = list(missing.items())
            for i in range(0, len(items), CHUNK_IMAGES):
                part = items[i:i + CHUNK_IMAGES]
                chunks.append((len(part) * get_spec(model).input_size ** 2, model,
                               [h for h, _ in part], [p for _, p in part]))
        return sorted(chunks, key=lambda c: c[0], reverse=True)

    def run(self, remote, batch_size: int) -> None:
        """Launch the tasks and collect them (a progress line at least every
        :data:`~tune_food.progress.PROGRESS_EVERY_S`)."""
        import ray

        chunks = self._chunks()
        self.running = {remote.remote(model, paths, batch_size): (model, hashes)
                        for _, model, hashes, paths in chunks}
        total = sum(len(h) for _, _, h, _ in chunks)
        self.bar = Counter(total, "img", "features", self.out)
        for key in [k for k, s in self.sets.items() if not s.waiting]:
            self._finish(key, self.here)
        while self.running:
            done, _ = ray.wait(list(self.running), num_returns=1, timeout=PROGRESS_EVERY_S)
            self.bar.update(0)   # a line when PROGRESS_EVERY_S passed without a finished task
            for ref in done:
                model, hashes = self.running.pop(ref)
                new, where = ray.get(ref)
                self.vectors[model].update(zip(hashes, new))
                if self.store is not None:
                    self.store.put(self.keys[model], hashes, new)
                self.bar.update(len(hashes))
                for key in [k for k, s in self.sets.items() if s.model == model]:
                    self.sets[key].waiting -= set(hashes)
                    if not self.sets[key].waiting:
                        self._finish(key, where)

    def _finish(self, key: str, where: dict) -> None:
        import ray

        fs = self.sets.pop(key)
        seconds = time.perf_counter() - self.start
        feature_set = _assemble(fs.model, fs.split, fs.classes, fs.samples, fs.hashes,
                                self.vectors[fs.model], describe_transform(get_transform(fs.model)),
                                "computed" if fs.fresh or self.store is None else "disk",
                                seconds, fs.computed, device=self.device)
        self.refs[key] = ray.put(feature_set)
        info = {"model": fs.model, "split_dir": split_id(fs.split),
                "split_dirs": split_folders(fs.split), "images": len(feature_set),
                "computed": fs.computed, "source": feature_set.source, "seconds": seconds,
                **{k: where[k] for k in ("node_id", "node_ip", "device")}}
        self.infos.append(info)
        if self.bar is not None:
            self.bar.write(f"  {fs.model:<20} {len(feature_set):>5} images ({fs.computed} "
                           f"computed) {feature_set.source:<8} {seconds:6.1f} s "
                           f"{len(feature_set) / seconds:7.1f} img/s  {info['split_dir']}")

    def close(self) -> None:
        """Cancel what still runs (an interrupt), close the progress line and the store."""
        import ray

        for ref in self.running:
            ray.cancel(ref)
        if self.bar is not None:
            self.bar.close()
        if self.store is not None:
            self.store.close()


def feature_key(model: str, split_dir) -> str:
    """The key of a feature set in the mapping handed to trials: ``"<model>|<split id>"``
    (:func:`tune_food.images.split_id`)."""
    return f"{model}|{split_id(split_dir)}"
