"""The frozen backbone's forward pass in each float32 inference runtime, side by side.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/backbone_runtimes.py [--rounds 5]

The product's own Lite backbones (``build_backbone``, the packaged weights), on a batch
of 32 real test photos through the weights' own transform, 2 threads, interleaved rounds
(every runtime once per round, so a machine whose speed drifts slows them alike), medians:

* PyTorch eager, default memory format (what a plain timm loop does);
* PyTorch eager, ``channels_last`` (what tune_food runs today,
  :func:`tune_food.models.registry.backbone_features`);
* ONNX Runtime, CPU execution provider, float32 (the model exported by ``torch.onnx``);
* OpenVINO, CPU, ``INFERENCE_PRECISION_HINT=f32`` (OpenVINO picks bfloat16 by itself on
  CPUs that have it, such as this one, which would change the features by ~1e-2).

For each: images/s, the ratio to ``channels_last``, and the largest absolute difference
of its pooled features from PyTorch float32 in the default layout. The forward alone is
the ceiling of extraction (decode and resize come on top). These figures chose OpenVINO
as tune_food's backbone runtime (:mod:`tune_food.models.runtime`); ONNX Runtime is not a
dependency: ``pip install onnxruntime onnx`` to measure it (a runtime that is not
installed is skipped, and said).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.data.datasets import resolve_data_root  # noqa: E402
from tune_food.data.images import rgb_loader  # noqa: E402
from tune_food.data.splits import split_samples  # noqa: E402
from tune_food.models.registry import backbone_features, build_backbone, get_transform  # noqa: E402

THREADS = 2
BATCH = 32


def _batch(model: str) -> torch.Tensor:
    """``float32 [32, 3, S, S]``: the first 32 test photos of the 20 % set, transformed."""
    split = os.path.join(resolve_data_root(None), "pizza_steak_sushi_20_percent", "test")
    _, samples = split_samples(split)
    transform = get_transform(model)
    return torch.stack([transform(rgb_loader(p)) for p, _ in samples[:BATCH]])


def _runners(model: str, x: torch.Tensor, workdir: str) -> dict:
    """name -> a function that returns the pooled features of ``x`` as NumPy."""
    default = build_backbone(model)
    last = build_backbone(model).to(memory_format=torch.channels_last)
    runners = {
        "PyTorch eager, default layout": lambda: default(x).numpy(),
        "PyTorch eager, channels_last": lambda: backbone_features(last, x).numpy(),
    }
    onnx_path = os.path.join(workdir, f"{model}.onnx")
    torch.onnx.export(default, (x,), onnx_path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        runners[f"ONNX Runtime {ort.__version__}, fp32"] = \
            lambda: session.run(None, {"x": x.numpy()})[0]
    except ImportError:
        print("ONNX Runtime is not installed: skipped")
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(onnx_path), "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": THREADS})
        runners[f"OpenVINO {ov.__version__.split('-')[0]}, f32"] = \
            lambda: compiled(x.numpy())[0]
    except ImportError:
        print("OpenVINO is not installed: skipped")
    return runners


def _measure(runners: dict, rounds: int) -> dict:
    """name -> (median images/s, features of the last call)."""
    times = {name: [] for name in runners}
    out = {}
    with torch.inference_mode():
        for name, run in runners.items():   # warm-up: first calls compile and allocate
            run()
        for _ in range(rounds):
            for name, run in runners.items():
                start = time.perf_counter()
                out[name] = run()
                times[name].append(time.perf_counter() - start)
    return {name: (BATCH / statistics.median(t), out[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{THREADS} threads, batch {BATCH}, {args.rounds} interleaved rounds, medians")
    with tempfile.TemporaryDirectory() as workdir:
        for model in ("efficientnet_lite0", "efficientnet_lite2"):
            x = _batch(model)
            results = _measure(_runners(model, x, workdir), args.rounds)
            reference = results["PyTorch eager, default layout"][1]
            base = results["PyTorch eager, channels_last"][0]
            print(f"\n{model}: img/s, vs channels_last, max |features - PyTorch float32|")
            for name, (rate, feats) in results.items():
                diff = float(np.abs(np.asarray(feats) - reference).max())
                print(f"  {name:<34} {rate:7.1f}  {rate / base:5.2f}x  {diff:.1e}")
    print(f"\nload average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
