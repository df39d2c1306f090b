"""The frozen backbone's forward pass on the CPU, in the fastest float32 runtime.

A frozen backbone never needs autograd, so on the CPU it runs in OpenVINO rather than
PyTorch eager: the same float32 features (max abs difference about 1e-5) about three
times faster on this project's reference machine (``benchmarks/backbone_runtimes.py``;
figures in the docs' Scale page). ONNX Runtime was measured too and was slower than
OpenVINO on both Lite0 and Lite2, so it is not offered. On a GPU the backbone runs in
PyTorch (:func:`tune_food.models.devices.gpu_math`).

:func:`frozen_forward` is the one entry point: extraction tasks, image-pipeline trials,
``predict`` and the web page all get their backbone forward from it.

* The PyTorch module is converted by ``openvino.convert_model`` (its PyTorch frontend,
  no ONNX file) once per (backbone, weights file, OpenVINO version) and kept as
  OpenVINO IR under ``<cache folder>/backbones/``, on each node that needs it. The IR is
  written into a temporary folder and renamed into place, and a lock file makes
  concurrent converters on a node wait for the first one: two processes never read a
  half-written model, and the model is converted once.
* OpenVINO is asked for float32 explicitly (``INFERENCE_PRECISION_HINT=f32``): on CPUs
  with AVX512-BF16 or AMX it picks bfloat16 by itself, which moves features by ~1e-2.
* It uses exactly ``threads`` threads (inside Ray: the CPUs Ray assigned) and does not
  pin them to cores (``ENABLE_CPU_PINNING`` off): several tasks on one node would
  otherwise pin their threads to the same cores.
* A conversion or compilation that fails falls back to PyTorch, with one warning line
  that says why; :attr:`FrozenForward.computed_by` then says ``torch``, so the feature
  store files the vectors under what really computed them.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass, field
from typing import Callable, TextIO

import numpy as np
import torch

from tune_food.common.files import exclusive_lock
from tune_food.models.devices import computed_by, requested_runtime, runtime_version
from tune_food.models.registry import (
    FrozenBackboneClassifier,
    backbone_features,
    build_backbone,
    forward_settings,
    get_spec,
    weights_sha256,
)

#: sub-folder of the cache folder that holds converted backbones
CONVERTED_DIR = "backbones"


@dataclass
class FrozenForward:
    """A frozen backbone's forward pass: call it with images ``float32 [B, 3, S, S]``
    (any memory layout, on :attr:`device`) to get the pooled features ``float32 [B, D]``
    (a CPU tensor on the CPU). Thread-safe (the web page classifies from several
    threads).

    Attributes:
        model: the registry name.
        device: ``"cpu"`` or ``"cuda:N"``.
        runtime: what runs it: ``"openvino"`` or ``"torch"``.
        computed_by: :func:`computed_by` of what runs it (the feature store's key).
        threads: threads the runtime computes with (PyTorch: the process's setting).
        fallback: why the requested runtime is not the one running (``""``: it is).
    """

    model: str
    device: str
    runtime: str
    computed_by: str
    threads: int
    fallback: str = ""
    _run: Callable[[torch.Tensor], torch.Tensor] = field(default=None, repr=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)


def converted_path(cache_dir: str, model: str) -> str:
    """Where the OpenVINO IR of ``model`` is kept: ``<cache_dir>/backbones/<model>-<first
    16 hex of the weights' SHA-256>-openvino-<version>/backbone.xml`` (+ ``.bin``).

    Raises:
        WeightsError: unknown model or missing weights.
    """
    folder = f"{model}-{weights_sha256(model)[:16]}-openvino-{runtime_version('openvino')}"
    return os.path.join(os.path.expanduser(cache_dir), CONVERTED_DIR, folder, "backbone.xml")


def _convert(model: str):
    """The ``openvino.Model`` of ``model``'s frozen backbone, any batch size."""
    import openvino as ov  # lazy: here, not at the top: a broken OpenVINO falls back to PyTorch

    size = get_spec(model).input_size
    # the PyTorch frontend traces with torch.jit.trace, which warns that it is deprecated
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.convert_model(build_backbone(model), example_input=torch.zeros(1, 3, size, size),
                                input=[(-1, 3, size, size)])


def _read_or_convert(core, model: str, cache_dir: str | None):
    """The converted model: read from the cache folder, else converted (and kept there
    when there is a cache folder). A kept model that cannot be read is converted again
    and replaced."""
    # lazy: optional dependency: a missing or broken OpenVINO falls back to PyTorch
    import openvino as ov

    if not cache_dir:
        return _convert(model)
    xml = converted_path(cache_dir, model)
    folder = os.path.dirname(xml)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with exclusive_lock(folder + ".lock"):
        if os.path.isfile(xml):
            try:
                return core.read_model(xml)
            except Exception:   # damaged by hand or by a full disk: convert again
                shutil.rmtree(folder, ignore_errors=True)
        converted = _convert(model)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(folder))
        try:
            ov.save_model(converted, os.path.join(tmp, "backbone.xml"), compress_to_fp16=False)
            os.rename(tmp, folder)   # atomic: a reader sees no folder or a whole one
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return converted


def _openvino(model: str, threads: int, cache_dir: str | None) -> tuple[Callable, int]:
    # lazy: optional dependency: a missing or broken OpenVINO falls back to PyTorch
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(_read_or_convert(core, model, cache_dir), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": False, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})
    request, lock = compiled.create_infer_request(), threading.Lock()
    threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))   # what it really uses

    def run(x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", memory_format=torch.contiguous_format).float().numpy()
        with lock:   # one request, reused; its output buffer is copied out before release
            out = request.infer({0: array})[0]
            return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))
    return run, threads


def _torch(model: str, device: str) -> Callable:
    backbone = forward_settings(build_backbone(model).to(device))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return backbone_features(backbone, x, device)
    return run


def frozen_forward(model: str, device: str = "cpu", runtime: str | None = None,
                   threads: int | None = None, cache_dir: str | None = None,
                   warn: TextIO | None = sys.stderr) -> FrozenForward:
    """The forward pass of ``model``'s frozen backbone on ``device``, built once per
    process and (weights file, runtime, threads, cache folder).

    Args:
        model: a registry name.
        device: ``"cpu"`` or ``"cuda:N"`` (a GPU always runs PyTorch).
        runtime: :func:`requested_runtime`'s argument (None: the environment or the
            default, OpenVINO).
        threads: threads of the OpenVINO forward (None: ``torch.get_num_threads()``,
            the machine's cores unless ``OMP_NUM_THREADS`` or the caller set fewer).
        cache_dir: the cache folder holding converted backbones (None: converted in
            memory, about 3 s per process).
        warn: where the one-line warning of a fallback to PyTorch goes (None: nowhere;
            it is in :attr:`FrozenForward.fallback` either way).

    Raises:
        WeightsError: unknown model or missing weights.
        ValueError: an unknown runtime name.
    """
    device = str(torch.device(device))
    runtime = requested_runtime(runtime) if device == "cpu" else "torch"
    threads = max(1, int(threads or torch.get_num_threads()))
    forward = _built(model, device, weights_sha256(model), runtime, threads,
                     os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir else None)
    if forward.fallback and warn is not None:
        print(f"tune_food: warning: {forward.fallback}", file=warn, flush=True)
    return forward


@functools.lru_cache(maxsize=4)
def _built(model: str, device: str, weights: str, runtime: str, threads: int,
           cache_dir: str | None) -> FrozenForward:
    fallback = ""
    if runtime == "openvino":
        try:
            run, used = _openvino(model, threads, cache_dir)
            return FrozenForward(model, device, runtime, computed_by(device, runtime), used,
                                 _run=run)
        except Exception as exc:   # any failure of the runtime: PyTorch computes the same
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            fallback = (f"OpenVINO {runtime_version('openvino') or '(not importable)'} could "
                        f"not run the backbone of {model} ({type(exc).__name__}: {reason}); "
                        "it runs in PyTorch instead (about 3x slower on the CPU)")
    return FrozenForward(model, device, "torch", computed_by(device), threads, fallback,
                         _run=_torch(model, device))


def use_runtime(classifier: FrozenBackboneClassifier, device: str = "cpu",
                runtime: str | None = None, cache_dir: str | None = None) -> str:
    """Hand ``classifier``'s backbone forward to the runtime (:func:`frozen_forward`
    with the process's threads) where that is not PyTorch; PyTorch (a GPU,
    ``runtime="torch"``, a fallback) keeps the classifier's own backbone, with no second
    copy built. Returns what computes its features (:func:`computed_by`).

    Raises:
        WeightsError: the model's weights are missing.
        ValueError: an unknown runtime name.
    """
    device = str(torch.device(device))
    if device != "cpu" or requested_runtime(runtime) == "torch":
        return computed_by(device)
    forward = frozen_forward(classifier.model_name, device, runtime, cache_dir=cache_dir)
    if forward.runtime != "torch":
        classifier.use_forward(forward)
    return forward.computed_by
