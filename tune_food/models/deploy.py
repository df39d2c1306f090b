"""The trained classifier as one ONNX graph, and what it costs to serve.

* :func:`export_onnx`: backbone, head and softmax in one ONNX file (PyTorch's
  ``torch.onnx.export`` with its default exporter, ``torch.export`` + onnxscript; any
  batch size; the weights inside the file), run by ONNX Runtime without PyTorch.
* :func:`measure` / :func:`deployment_figures`: the deployment figures of a backbone
  (``cpu_ms``, ``params``, ``model_mb``), measured with the exported model the way the
  exported demo runs it: one photo end to end (decode, the weights' transform in
  Pillow and NumPy, backbone, head), batch 1, one thread, the median after a warm-up.
  The head adds nothing measurable (3,843 of Lite0's 3.4 million parameters), so the
  sweep measures each backbone once, with an untrained head of the right shape.

Where the numbers come from: ``cpu_ms`` is wall-clock time (``time.perf_counter``)
around :func:`tune_food.demo.preprocess.load_rgb`, :func:`~tune_food.demo.preprocess.to_input`
and ``InferenceSession.run``, with ``intra_op_num_threads = inter_op_num_threads = 1``;
``model_mb`` is the ONNX file's size in 10^6 bytes; ``params`` counts every parameter.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import statistics
import time
import warnings

import torch
from torch import nn

from tune_food.common.files import atomic_write, exclusive_lock
from tune_food.demo.preprocess import load_rgb, to_input
from tune_food.models.figures import CPU_MS, MODEL_MB, PARAMS_SERVED
from tune_food.models.registry import (
    FrozenBackboneClassifier,
    build_model,
    get_spec,
    preprocessing,
    weights_sha256,
)

INPUT_NAME, OUTPUT_NAME = "image", "probabilities"   # the ONNX graph's input and output
WARMUP, REPEATS = 3, 15          # cpu_ms: runs before timing, and timed runs (the median)
THREADS = 1                      # cpu_ms: the cheapest deployment, one thread
ONNX_FILE = "model.onnx"


def exported_dir() -> str:
    """Where the models :func:`deployment_figures` measures are kept:
    ``$XDG_CACHE_HOME/tune_food/onnx`` (default ``~/.cache/tune_food/onnx``). Per user,
    not per feature cache: an exported model depends only on the weights, the number of
    classes and PyTorch, like the weights in torch's hub cache; exporting one takes
    about 8 s."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "tune_food", "onnx")


class _Deployed(nn.Module):
    """``float32 [N, 3, S, S]`` preprocessed images -> class probabilities ``[N, C]``."""

    def __init__(self, classifier: FrozenBackboneClassifier):
        super().__init__()
        self.backbone = classifier.backbone
        self.head = classifier.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.backbone(x)), dim=1)


def export_onnx(classifier: FrozenBackboneClassifier, path: str) -> str:
    """Write ``classifier`` (its PyTorch backbone, head, then softmax) as one ONNX file.

    The graph's input ``image`` is ``float32 [N, 3, S, S]`` (any ``N``; the output of
    :func:`tune_food.demo.preprocess.to_input`), its output ``probabilities`` is
    ``float32 [N, num_classes]``. The file is written beside ``path`` and renamed into
    place. Returns the absolute ``path``.

    Raises:
        RuntimeError: PyTorch's exporter failed (its message).
    """
    size = get_spec(classifier.model_name).input_size
    module = _Deployed(classifier).eval()
    example = torch.zeros(2, 3, size, size)   # 2, not 1: a batch of 1 would be fixed to 1

    def write(tmp: str) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), tmp, dynamo=True, external_data=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_shapes=({0: torch.export.Dim("batch")},),
                              verbose=False)

    return atomic_write(path, write)


def onnx_session(path: str, threads: int = THREADS):
    """An ONNX Runtime CPU session of ``path`` computing with ``threads`` threads."""
    # lazy: optional dependency: ONNX Runtime only to measure or check an exported model
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = threads
    opts.log_severity_level = 3   # errors only
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(onnx_path: str, steps: dict, photo: str, warmup: int = WARMUP,
            repeats: int = REPEATS) -> float:
    """The median milliseconds of one photo end to end (decode, ``steps``'
    preprocessing, the ONNX model at batch 1 on :data:`THREADS` thread), over
    ``repeats`` runs after ``warmup`` runs."""
    session = onnx_session(onnx_path)
    name = session.get_inputs()[0].name
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        session.run(None, {name: to_input(load_rgb(photo), steps)})
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def measured_onnx(model: str, num_classes: int) -> str:
    """The ONNX file :func:`deployment_figures` measures: ``model`` with an untrained
    head for ``num_classes`` classes, exported once per (model, weights, classes, torch
    version) and kept under :func:`exported_dir`. Concurrent callers on a node export
    it once."""
    folder = os.path.join(exported_dir(), _export_tag(model, num_classes))
    path = os.path.join(folder, ONNX_FILE)
    os.makedirs(folder, exist_ok=True)
    with exclusive_lock(folder + ".lock"):
        if not os.path.isfile(path):
            export_onnx(build_model(model, num_classes).eval(), path)
    return path


def _export_tag(model: str, num_classes: int) -> str:
    """The folder name, under :func:`exported_dir`, of ``model``'s export with a head of
    ``num_classes`` classes: what it depends on (model, weights, classes, PyTorch)."""
    return f"{model}-{weights_sha256(model)[:16]}-{num_classes}c-torch{torch.__version__}"


def _figures_path(model: str, num_classes: int) -> str:
    """Where :func:`deployment_figures` keeps its figures of ``model`` on this machine:
    beside the exported model, one file per (CPU model, ONNX Runtime version, threads),
    what the figures depend on besides the export."""
    # lazy: optional dependency: ONNX Runtime only to measure or check an exported model
    import onnxruntime

    conditions = f"{cpu_model()}|onnxruntime {onnxruntime.__version__}|{THREADS}"
    digest = hashlib.sha256(conditions.encode()).hexdigest()[:16]
    return os.path.join(exported_dir(), _export_tag(model, num_classes),
                        f"figures-{digest}.json")


def cached_figures(model: str, num_classes: int) -> dict | None:
    """The deployment figures :func:`deployment_figures` measured earlier of ``model``
    (``num_classes`` classes) on a machine like this one (same weights, PyTorch, CPU
    model, ONNX Runtime, threads), marked ``"reused": True``; None when there are none
    (or the file cannot be read)."""
    try:
        with open(_figures_path(model, num_classes)) as fh:
            figures = json.load(fh)
    except (OSError, ValueError):
        return None
    if not is_measured(figures):
        return None
    return {**figures, "reused": True}


def is_measured(figures) -> bool:
    """True when ``figures`` (a model's entry of ``sweep.json``'s ``deployment``, or a
    kept file's) holds the measured figures: the rule by which the sweep, ``report
    --deployment`` and the cache skip a model; False for None, ``{"error": ...}`` or
    anything else."""
    return isinstance(figures, dict) and CPU_MS in figures


def deployment_figures(model: str, num_classes: int, photo: str, reuse: bool = True) -> dict:
    """What serving ``model`` costs on this machine (see the module's docstring); the
    exported model is kept for the next sweep (:func:`measured_onnx`), and so are the
    figures: measured once per (model, weights, classes, PyTorch, CPU model, ONNX Runtime
    version, threads) and reused after (``reuse``; :func:`cached_figures`), with
    ``measured_at`` (when) and ``photo`` (with which photo, its file name) recorded.

    Args:
        model: a registry name.
        num_classes: the classifier's number of classes.
        photo: a real photo (the sweep's first test image).

    Returns:
        ``{"cpu_ms", "params", "model_mb"}`` and the conditions: ``threads``,
        ``runtime`` (``"onnxruntime 1.32.0"``), ``cpu`` (:func:`cpu_model`), ``node``
        (the host name), ``warmup``, ``repeats``, ``measured_at``, ``photo``, and
        ``reused`` (True when an earlier measurement was taken).

    Raises:
        WeightsError: unknown model or missing weights.
    """
    # lazy: optional dependency: ONNX Runtime only to measure or check an exported model
    import onnxruntime

    if reuse:
        earlier = cached_figures(model, num_classes)
        if earlier is not None:
            return earlier
    path = measured_onnx(model, num_classes)
    spec = get_spec(model)
    figures = {CPU_MS: round(measure(path, preprocessing(model), photo), 3),
               PARAMS_SERVED: spec.backbone_params + (spec.num_features + 1) * num_classes,
               MODEL_MB: round(os.path.getsize(path) / 1e6, 3),
               "threads": THREADS, "runtime": f"onnxruntime {onnxruntime.__version__}",
               "cpu": cpu_model(), "node": platform.node(), "warmup": WARMUP,
               "repeats": REPEATS, "photo": os.path.basename(photo),
               "measured_at": datetime.datetime.now().isoformat(timespec="seconds")}

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(figures, fh, indent=1)

    atomic_write(_figures_path(model, num_classes), write)
    return {**figures, "reused": False}


def describe(figures: dict) -> str:
    """One line: ``"12.3 ms per photo (1 thread, onnxruntime 1.32.0, <cpu>)"``."""
    return (f"{figures[CPU_MS]:.1f} ms per photo ({figures['threads']} thread, "
            f"{figures['runtime']}, {figures['cpu']})")

