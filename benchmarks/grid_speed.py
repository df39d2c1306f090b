"""Feature cache speed: the same grids cached and uncached, side by side, in one run.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/grid_speed.py [--skip-uncached]

On real images, one after the other:

1. the floor: feature extraction alone for the (model, split) pairs of the default
   8-trial grid (search_spaces/grid.yaml), in this process, all cores, no Ray: what any
   exact method must spend at least;
2. that grid as a user runs it, ``python -m tune_food.sweep --grid`` in a subprocess
   (Ray start-up and everything else included), cold feature cache:
   prints grid wall / floor;
3. the same grid restricted to the 10 % training set (4 trials: Lite0/Lite2 x 5/10
   epochs), once with the feature cache (cold) and once with ``--feature-cache off``
   (every trial runs every image through the backbone every epoch): prints
   uncached / cached. The restriction keeps the uncached side near 10 minutes on 2 cores.

Each sweep's own phase timings (from its sweep.json) are printed too.
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

from tune_food.datasets import resolve_data_root  # noqa: E402
from tune_food.features import extract_features  # noqa: E402
from tune_food.spaces import load_space  # noqa: E402
from tune_food.plan import expand_grid  # noqa: E402


def run_sweep(space: str, work: str, name: str, data_root: str, *extra: str) -> float:
    cmd = [sys.executable, "-m", "tune_food.sweep", "--grid", "--space", space,
           "--results-dir", os.path.join(work, "results"), "--name", name, "--data-dir",
           data_root, "--cache-dir", os.path.join(work, f"cache-{name}"), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep {name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    with open(os.path.join(work, "results", name, "sweep.json")) as fh:
        timings = json.load(fh)["timings"]
    print(f"  {name}: {wall:.1f} s = " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timings.items())
          + f", the rest (interpreter start, imports, plan) {wall - sum(timings.values()):.1f} s",
          flush=True)
    return wall


def write_space(raw: dict, work: str, name: str) -> str:
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(raw, fh)
    return path


def floor(space_path: str, data_root: str) -> float:
    trials = expand_grid(load_space(space_path))
    pairs = sorted({(t["model"], os.path.join(data_root, t["data"], "train")) for t in trials}
                   | {(t["model"], os.path.join(data_root, t["test_data"], "test")) for t in trials})
    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    images = 0
    for model, split in pairs:
        fs = extract_features(model, split, batch_size=64)
        images += len(fs)
        print(f"  floor  {model:<20} {len(fs):>4} images  {fs.seconds:6.1f} s  {split}", flush=True)
    seconds = time.perf_counter() - start
    print(f"floor: {len(pairs)} feature sets, {images} images, {seconds:.1f} s "
          f"({os.cpu_count()} threads, in process)", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-uncached", action="store_true",
                        help="only the floor and the cached 8-trial grid")
    args = parser.parse_args()
    data_root = resolve_data_root(None)
    with open(os.path.join(REPO, "search_spaces", "grid.yaml")) as fh:
        raw = yaml.safe_load(fh)
    with tempfile.TemporaryDirectory() as work:
        full = write_space(raw, work, "grid")
        print(f"1. default grid ({len(expand_grid(load_space(full)))} trials), data root "
              f"{data_root}, {os.cpu_count()} CPUs", flush=True)
        floor_s = floor(full, data_root)
        grid_s = run_sweep(full, work, "grid-cached", data_root)
        print(f"grid, feature cache on (cold): {grid_s:.1f} s;  grid / floor = "
              f"{grid_s / floor_s:.2f}x  (goal <= 1.3x)", flush=True)
        if args.skip_uncached:
            return
        raw["parameters"]["data"] = "pizza_steak_sushi"
        ten = write_space(raw, work, "grid10")
        print("2. the grid on the 10 % training set (4 trials)", flush=True)
        cached = run_sweep(ten, work, "grid10-cached", data_root)
        uncached = run_sweep(ten, work, "grid10-uncached", data_root, "--feature-cache", "off")
        print(f"cached {cached:.1f} s, uncached {uncached:.1f} s;  uncached / cached = "
              f"{uncached / cached:.1f}x  (goal >= 10x)")


if __name__ == "__main__":
    main()
