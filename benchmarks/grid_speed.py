"""Feature cache speed: the same grid cached and uncached, side by side, in one run.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/grid_speed.py [--data 10|all]

Runs, one after the other on real images:
  1. the floor: feature extraction alone for the grid's (model, split) pairs, in this
     process, all cores, no Ray (what any exact method must spend at least);
  2. the grid with the feature cache (``--feature-cache auto``, cold disk cache),
     as a user runs it: ``python -m tune_food.sweep --grid`` in a subprocess, Ray
     start-up included;
  3. the same grid with ``--feature-cache off`` (every trial runs every image through
     the backbone every epoch).
It prints the three wall times, uncached / cached and cached / floor.

``--data 10`` (default) runs the grid of search_spaces/grid.yaml restricted to the 10 %
training set (4 trials: Lite0/Lite2 x 5/10 epochs), which keeps the uncached side near
10 minutes on 2 cores; ``--data all`` runs all 8 trials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.data import resolve_data_root  # noqa: E402
from tune_food.features import extract_features  # noqa: E402
from tune_food.spaces import load_space  # noqa: E402
from tune_food.sweep import expand_grid  # noqa: E402


def run_sweep(space: str, work: str, name: str, *extra: str) -> float:
    cmd = [sys.executable, "-m", "tune_food.sweep", "--grid", "--space", space,
           "--results-dir", os.path.join(work, "results"), "--name", name,
           "--cache-dir", os.path.join(work, f"cache-{name}"), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep {name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    with open(os.path.join(work, "results", name, "sweep.json")) as fh:
        timings = json.load(fh)["timings"]
    print(f"  {name}: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items())
          + f", the rest (interpreter start, imports, plan) {wall - sum(timings.values()):.1f} s",
          flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["10", "all"], default="10")
    args = parser.parse_args()
    data_root = resolve_data_root(None)
    with open(os.path.join(REPO, "search_spaces", "grid.yaml")) as fh:
        raw = yaml.safe_load(fh)
    if args.data == "10":
        raw["parameters"]["data"] = "pizza_steak_sushi"
    with tempfile.TemporaryDirectory() as work:
        space_path = os.path.join(work, "grid.yaml")
        with open(space_path, "w") as fh:
            yaml.safe_dump(raw, fh)
        trials = expand_grid(load_space(space_path))
        pairs = sorted({(t["model"], os.path.join(data_root, t["data"], "train")) for t in trials}
                       | {(t["model"], os.path.join(data_root, t["test_data"], "test"))
                          for t in trials})
        print(f"grid: {len(trials)} trials, {len(pairs)} (model, split) feature sets, "
              f"data root {data_root}, {os.cpu_count()} CPUs", flush=True)

        torch.set_num_threads(os.cpu_count() or 1)
        start = time.perf_counter()
        images = 0
        for model, split in pairs:
            fs = extract_features(model, split, batch_size=64)
            images += len(fs)
            print(f"  floor  {model:<20} {len(fs):>4} images  {fs.seconds:6.1f} s  {split}",
                  flush=True)
        floor = time.perf_counter() - start
        print(f"floor (extraction alone, in process): {floor:7.1f} s for {images} images", flush=True)

        cached = run_sweep(space_path, work, "cached", "--feature-cache", "auto",
                           "--data-dir", data_root)
        print(f"grid, feature cache on (cold):        {cached:7.1f} s", flush=True)
        uncached = run_sweep(space_path, work, "uncached", "--feature-cache", "off",
                             "--data-dir", data_root)
        print(f"grid, feature cache off:              {uncached:7.1f} s", flush=True)
        print(f"uncached / cached: {uncached / cached:5.1f}x   (goal >= 10x)")
        print(f"cached / floor:    {cached / floor:5.2f}x   (goal <= 1.3x)")


if __name__ == "__main__":
    main()
