"""Feature extraction for a sweep: :func:`compute_feature_sets` looks every image of every
needed ``(model, split)`` up in the store, runs the backbone as Ray tasks over the
distinct missing images only (each once, however many splits contain it), writes them to
the store and puts one :class:`~tune_food.features.extract.FeatureSet` per split into the
Ray object store as NumPy arrays: every trial on a node maps the same read-only shared
memory, no copy.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, TextIO

import numpy as np
import ray
import torch

from tune_food.common.files import cached_sha256
from tune_food.common.progress import PROGRESS_EVERY_S, Counter
from tune_food.data.images import split_folders, split_id
from tune_food.data.splits import split_samples
from tune_food.features.extract import BATCH_SIZE, assemble_feature_set, extract_images, feature_key
from tune_food.features.store import FeatureStore, extractor_id
from tune_food.models.devices import assigned_device, requested_runtime
from tune_food.models.registry import get_spec
from tune_food.models.runtime import frozen_forward

#: images per extraction task: small enough that the tasks of several models balance
#: over the cores (and progress shows every few seconds), large enough that a task's
#: fixed cost (about 0.1 s once the worker holds the backbone) does not matter
CHUNK_IMAGES = 96


# ----------------------------------------------------------------------------- sweep

def _extract_task(model: str, paths: list[str], batch_size: int, runtime: str,
                  cache_dir: str | None) -> tuple[np.ndarray, dict]:
    """Ray task: the features of ``paths`` (:func:`extract_images`) on the device Ray
    assigned (:func:`tune_food.models.devices.assigned_device`; on a GPU its CPUs decode in as
    many DataLoader workers), through :func:`~tune_food.models.runtime.frozen_forward` with
    exactly the CPUs Ray assigned as threads (converted backbones kept in ``cache_dir``
    on this node); and where, how fast and by what they were computed (``computed_by``,
    ``fallback``: why the requested runtime did not run, or ``""``)."""
    start = time.perf_counter()
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    device = assigned_device()
    # on a GPU the forward no longer fills the CPUs: they decode ahead of it
    workers = int(cpus) if device != "cpu" and cpus >= 1 else 0
    forward = frozen_forward(model, device, runtime, threads, cache_dir, warn=None)
    vectors = extract_images(model, paths, batch_size, device, workers, forward=forward)
    ctx = ray.get_runtime_context()
    return vectors, {"node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                     "device": device, "seconds": time.perf_counter() - start,
                     "computed_by": forward.computed_by, "fallback": forward.fallback,
                     "threads": forward.threads}


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
    computed_by: str = ""      # what computed its newest vectors


def extraction_options(cpus: float, gpus: float) -> dict[str, Any]:
    """``ray.remote`` options of an extraction task with a trial's ``cpus`` and ``gpus``.
    With GPUs, ``max_calls=1``: a worker process that held one GPU is never handed
    another (Ray reuses workers across GPU assignments when the GPUs come through
    ``.options()``, which cannot set ``max_calls``; CUDA and the cached backbone stay on
    the first GPU a process touched)."""
    return {"num_cpus": cpus, "num_gpus": gpus, "max_calls": 1 if gpus else 0}


def compute_feature_sets(pairs: Iterable[tuple[str, str]], cpus: float, gpus: float,
                         cache_dir: str | None, exclude: Iterable[str] = (),
                         batch_size: int = BATCH_SIZE, out: TextIO | None = None,
                         runtime: str | None = None) -> tuple[dict[str, Any], list[dict]]:
    """The feature set of each distinct ``(model, split_dir)``, each image computed once.

    Every image of every split is looked up by content in the :class:`FeatureStore` in
    ``cache_dir`` (None: no store); per model the distinct missing images run through
    the backbone as Ray tasks of :data:`CHUNK_IMAGES` images, each with ``cpus`` CPUs
    and ``gpus`` GPUs (the trial's resources), the most expensive first, in ``runtime``
    (:func:`~tune_food.models.devices.requested_runtime`; converted backbones are kept
    in ``cache_dir`` too, or converted in memory without it). This process
    writes their vectors to the store and puts each set in the Ray object store as
    NumPy arrays. With ``out``, an images count (:class:`~tune_food.common.progress.Counter`, at
    least every :data:`~tune_food.common.progress.PROGRESS_EVERY_S`) and one line
    per finished set (images, source, seconds, images/s) are printed. Blocks until done.

    Returns:
        ``(refs, infos)``: ``refs[feature_key(model, split_dir)]`` is the object ref of
        the :class:`FeatureSet`; ``infos`` holds per set ``model, split_dir`` (its id),
        ``split_dirs`` (its folders), ``images``, ``computed`` (its images that ran
        through the backbone for it: an image shared with another set counts once, so
        the sum over sets is the number of backbone passes), ``source`` (computed |
        disk), ``seconds`` (from the start until the set was complete), ``node_id,
        node_ip, device`` (where its last images were computed; this process's node for
        a set read whole from the store), ``threads`` (of its last task's forward: the
        CPUs Ray assigned), ``computed_by`` (what computed its vectors:
        :func:`tune_food.models.devices.computed_by`). A task whose runtime fell back
        to PyTorch gives one warning line per reason, on stderr.

    Raises:
        ray.exceptions.RayTaskError: wrapping the task's exception (e.g. WeightsError).
        WeightsError: unknown model or missing weights (raised here, before any task).
    """
    device = "cuda" if gpus else "cpu"   # the device class the tasks compute on
    runtime = requested_runtime(runtime)
    job = _Extraction(FeatureStore(cache_dir) if cache_dir else None, out, device, runtime)
    try:
        for model, split in dict.fromkeys(pairs):
            job.add(model, split, sorted(exclude))
        job.run(ray.remote(**extraction_options(cpus, gpus))(_extract_task), batch_size,
                cache_dir)
    finally:
        job.close()
    return job.refs, job.infos


class _Extraction:
    """The state of one :func:`compute_feature_sets` call: per model the vectors known
    so far (store hits and finished tasks) and the distinct images still to compute;
    per set what it waits for. Sets are put in the object store as they complete."""

    def __init__(self, store: FeatureStore | None, out: TextIO | None, device: str = "cpu",
                 runtime: str = "torch"):
        self.store, self.out, self.start = store, out, time.perf_counter()
        self.device, self.runtime = device, runtime
        self.warned: set[str] = set()
        self.sets: dict[str, _Pending] = {}
        self.vectors: dict[str, dict[str, np.ndarray]] = {}   # model -> sha -> vector
        self.missing: dict[str, dict[str, str]] = {}              # model -> missing sha -> path
        self.keys: dict[str, tuple[str, str, str]] = {}
        self.refs: dict[str, Any] = {}
        self.infos: list[dict] = []
        self.running: dict[Any, tuple[str, list[str]]] = {}
        self.bar = None
        self.driver_node = {"node_id": ray.get_runtime_context().get_node_id(),
                     "node_ip": ray.util.get_node_ip_address(), "device": "cpu"}

    def add(self, model: str, split, exclude: list[str]) -> None:
        """List ``split``, hash its images, look them up in the store."""
        classes, samples = split_samples(split, exclude)
        hashes = [cached_sha256(p) for p, _ in samples]
        if model not in self.keys:
            self.keys[model] = extractor_id(model, self.device, self.runtime)
            self.vectors[model], self.missing[model] = {}, {}
        known, missing = self.vectors[model], self.missing[model]
        if self.store is not None:
            known.update(self.store.get(self.keys[model], [h for h in hashes if h not in known]))
        waiting = {h for h in hashes if h not in known}
        first_here = 0   # images first needed by this set: each distinct image counts once
        for (path, _), sha in zip(samples, hashes):
            if sha in waiting and sha not in missing:
                missing[sha] = path
                first_here += 1
        self.sets[feature_key(model, split)] = _Pending(
            model=model, split=split, classes=classes, samples=samples, hashes=hashes,
            waiting=waiting, computed=first_here, fresh=bool(waiting))

    def _chunks(self) -> list[tuple[int, str, list[str], list[str]]]:
        """``(cost, model, hashes, paths)`` of :data:`CHUNK_IMAGES` images each: one
        chunk of every model first (the first task of a model on a node converts its
        backbone for the runtime, a few seconds: different models convert side by side
        instead of one waiting for the other's lock), then the most expensive (pixels)
        first, so that the last tasks finish together."""
        chunks = []
        for model, missing in self.missing.items():
            items = list(missing.items())
            for i in range(0, len(items), CHUNK_IMAGES):
                part = items[i:i + CHUNK_IMAGES]
                chunks.append((len(part) * get_spec(model).input_size ** 2, model,
                               [h for h, _ in part], [p for _, p in part]))
        chunks.sort(key=lambda c: c[0], reverse=True)
        first = {}   # model -> index of its most expensive chunk
        for i, chunk in enumerate(chunks):
            first.setdefault(chunk[1], i)
        lead = sorted(first.values())
        return [chunks[i] for i in lead] + [c for i, c in enumerate(chunks) if i not in lead]

    def run(self, remote, batch_size: int, cache_dir: str | None) -> None:
        """Launch the tasks and collect them (a progress line at least every
        :data:`~tune_food.common.progress.PROGRESS_EVERY_S`)."""
        chunks = self._chunks()
        self.running = {remote.remote(model, paths, batch_size, self.runtime, cache_dir):
                        (model, hashes)
                        for _, model, hashes, paths in chunks}
        total = sum(len(h) for _, _, h, _ in chunks)
        self.bar = Counter(total, "img", "features", self.out)
        for key in [k for k, s in self.sets.items() if not s.waiting]:
            self._finish(key, self.driver_node)
        while self.running:
            done, _ = ray.wait(list(self.running), num_returns=1, timeout=PROGRESS_EVERY_S)
            self.bar.update(0)   # a line when PROGRESS_EVERY_S passed without a finished task
            for ref in done:
                model, hashes = self.running.pop(ref)
                new, where = ray.get(ref)
                self.vectors[model].update(zip(hashes, new))
                if where["fallback"] and where["fallback"] not in self.warned:
                    self.warned.add(where["fallback"])
                    print(f"tune_food: warning: on {where['node_ip']}: {where['fallback']}",
                          file=sys.stderr, flush=True)
                if self.store is not None:   # filed under what really computed them
                    self.store.put(extractor_id(model, computed=where["computed_by"]),
                                   hashes, new)
                self.bar.update(len(hashes))
                for key in [k for k, s in self.sets.items() if s.model == model]:
                    self.sets[key].computed_by = where["computed_by"]
                    self.sets[key].waiting -= set(hashes)
                    if not self.sets[key].waiting:
                        self._finish(key, where)

    def _finish(self, key: str, where: dict) -> None:
        fs = self.sets.pop(key)
        seconds = time.perf_counter() - self.start
        feature_set = assemble_feature_set(
            model=fs.model, split=fs.split, classes=fs.classes, samples=fs.samples,
            hashes=fs.hashes, vectors=self.vectors[fs.model],
            source="computed" if fs.fresh or self.store is None else "disk",
            seconds=seconds, computed=fs.computed, device=self.device,
            computed_by=fs.computed_by or self.keys[fs.model][3])
        self.refs[key] = ray.put(feature_set)
        info = {"model": fs.model, "split_dir": split_id(fs.split),
                "split_dirs": split_folders(fs.split), "images": len(feature_set),
                "computed": fs.computed, "source": feature_set.source, "seconds": seconds,
                "computed_by": feature_set.computed_by,
                **{k: where[k] for k in ("node_id", "node_ip", "device", "threads")
                   if k in where}}
        self.infos.append(info)
        if self.bar is not None:
            self.bar.write(f"  {fs.model:<20} {len(feature_set):>5} images ({fs.computed} "
                           f"computed) {feature_set.source:<8} {seconds:6.1f} s "
                           f"{len(feature_set) / seconds:7.1f} img/s  {info['split_dir']}")

    def close(self) -> None:
        """Cancel what still runs (an interrupt), close the progress line and the store."""
        for ref in self.running:
            ray.cancel(ref)
        if self.bar is not None:
            self.bar.close()
        if self.store is not None:
            self.store.close()
