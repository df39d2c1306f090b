"""The GPU path, checked on a machine with CUDA: feature extraction and the default grid.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/gpu_check.py [--data-dir DIR]

1. Feature extraction (``tune_food.features.extract_features``, the function the sweep's
   feature tasks run) for EfficientNet-Lite0 and Lite2 over the 20 % training split
   (``pizza_steak_sushi_20_percent/train``, 450 images): on the CPU (the reference), then
   on the GPU in float32 (torch's defaults, TF32 convolutions allowed), in float32 with
   TF32 off, and under bfloat16 autocast. For each: images/s (a warm-up pass first, so
   CUDA start-up and cuDNN autotuning are not counted) and the largest relative
   difference to the CPU's features, max_i ||gpu_i - cpu_i|| / ||cpu_i|| over images i.
   float32 must agree to 1e-3; bfloat16 keeps 8 bits of mantissa (about 4e-3 relative
   per operation), so its figure is printed, not required.
2. The default grid (search_spaces/grid.yaml, 8 trials) with ``--gpus-per-trial 0.25``
   (four trials share the GPU) and, for comparison, on the CPU, each with a cold feature
   cache: wall time, and per trial the device it trained on and its test accuracy.

Prints one table per part. Exit codes: 0 all checks hold, 1 a check failed (named),
2 no CUDA device (one line on stderr) or bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

MODELS = ("efficientnet_lite0", "efficientnet_lite2")
SPLIT = ("pizza_steak_sushi_20_percent", "train")
RTOL = 1e-3


def rel_diff(a, b) -> float:
    """max over rows of ||a_i - b_i|| / ||b_i|| (float32 [N, D] arrays or tensors)."""
    import torch

    a, b = torch.as_tensor(a), torch.as_tensor(b)
    return float(((a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-12)).max())


def extraction(split_dir: str, batch_size: int) -> tuple[list[dict], list[str]]:
    import torch

    from tune_food.features import extract_features

    rows, failures = [], []
    for model in MODELS:
        start = time.perf_counter()
        cpu = extract_features(model, split_dir, batch_size=batch_size, device="cpu")
        cpu_s = time.perf_counter() - start
        rows.append(dict(model=model, device="cpu", precision="float32", images=len(cpu),
                         seconds=cpu_s, images_per_s=len(cpu) / cpu_s, rel_diff=0.0))
        variants = [("float32 (TF32 allowed)", True, False), ("float32 (TF32 off)", False, False),
                    ("bfloat16 autocast", True, True)]
        for label, tf32, bf16 in variants:
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                extract_features(model, split_dir, batch_size=batch_size, device="cuda")  # warm-up
                torch.cuda.synchronize()
                start = time.perf_counter()
                gpu = extract_features(model, split_dir, batch_size=batch_size, device="cuda")
                torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            diff = rel_diff(gpu.features, cpu.features)
            rows.append(dict(model=model, device=torch.cuda.get_device_name(0),
                             precision=label, images=len(gpu), seconds=seconds,
                             images_per_s=len(gpu) / seconds, rel_diff=diff))
            if not bf16 and diff > RTOL:
                failures.append(f"{model} {label}: features differ from the CPU's by "
                                f"{diff:.2e} relative (> {RTOL:g})")
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    return rows, failures


def grid(data_root: str, work: str, name: str, *extra: str) -> tuple[float, "pd.DataFrame", dict]:
    import pandas as pd

    cmd = [sys.executable, "-m", "tune_food.sweep", "--grid", "--data-dir", data_root,
           "--results-dir", os.path.join(work, "results"), "--cache-dir",
           os.path.join(work, f"cache-{name}"), "--name", name, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:])} failed ({proc.returncode}): "
                           f"{(proc.stderr.strip().splitlines() or [''])[-1]}")
    exp = os.path.join(work, "results", name)
    with open(os.path.join(exp, "sweep.json")) as fh:
        state = json.load(fh)
    return wall, pd.read_csv(os.path.join(exp, "leaderboard.csv")), state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="data root (default $TUNE_FOOD_DATA_DIR, else ./data)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--skip-grid", action="store_true", help="feature extraction only")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}); run it on a machine with an NVIDIA GPU and a CUDA "
              "build of torch", file=sys.stderr)
        return 2
    import pandas as pd

    from tune_food.datasets import resolve_data_root, resolve_dataset
    from tune_food.errors import TuneFoodError

    try:
        data_root = resolve_data_root(args.data_dir)
        split_dir = os.path.join(resolve_dataset(SPLIT[0], data_root), SPLIT[1])
    except TuneFoodError as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0)}; {os.cpu_count()} CPU cores; {split_dir}", flush=True)
    rows, failures = extraction(split_dir, args.batch_size)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("\nfeature extraction, 20 % training split (rel_diff: max_i ||x_i - cpu_i|| / ||cpu_i||)")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"), flush=True)
    if not args.skip_grid:
        with tempfile.TemporaryDirectory() as work:
            gpu_wall, gpu_board, gpu_state = grid(data_root, work, "grid-gpu",
                                                  "--gpus-per-trial", "0.25")
            cpu_wall, cpu_board, _ = grid(data_root, work, "grid-cpu")
        merged = gpu_board.merge(cpu_board, on="trial_name", suffixes=("_gpu", "_cpu"))
        merged["diff"] = merged["test_acc_gpu"] - merged["test_acc_cpu"]
        cols = ["rank_gpu", "trial_name", "device_gpu", "test_acc_gpu", "test_acc_cpu", "diff",
                "time_total_s_gpu", "time_total_s_cpu"]
        print(f"\ndefault grid: --gpus-per-trial 0.25 {gpu_wall:.1f} s "
              f"(features {gpu_state['feature_extraction_s']:.1f} s on "
              f"{sorted({s['device'] for s in gpu_state['feature_sets']})}), "
              f"CPU {cpu_wall:.1f} s")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(merged[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        if not (gpu_board["device"].astype(str).str.startswith("cuda")).all():
            failures.append("some trials of the --gpus-per-trial grid did not train on CUDA: "
                            f"{sorted(set(gpu_board['device'].astype(str)))}")
        if len(merged) != len(cpu_board) or (gpu_board["status"] != "TERMINATED").any():
            failures.append("the GPU grid did not finish every trial")
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
