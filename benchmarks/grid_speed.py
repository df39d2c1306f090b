"""Feature speed: the product against the plain loop a user would write, side by side.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/grid_speed.py [--skip-uncached]

On real images, one after the other, in one run:

1. the reference: the plain loop a user would write for the (model, split) passes of
   the default 8-trial grid (search_spaces/grid.yaml): timm's ``tf_efficientnet_liteN``
   (the Lite weights, loaded as tune_food loads them: timm cannot download them here)
   with its pretrained-config transform (``resolve_data_config`` / ``create_transform``)
   over ``torchvision.datasets.ImageFolder``, batch 32, ``torch.inference_mode``, default
   memory format, all cores, in this process; then tune_food's own
   ``extract_images`` over the same passes (OpenVINO float32, decode threads ahead of the
   forward; the backbone's one-time conversion timed apart): prints img/s per model,
   ours / plain (goal >= 3.5x for Lite0 and Lite2) and the ceiling: the forward alone,
   in PyTorch eager and in OpenVINO, on the same images;
2. that grid as a user runs it, ``python -m tune_food.sweep --grid`` in a subprocess
   (Ray start-up, model conversion and everything else included), cold feature store
   and cache folder: prints grid wall / plain loop (goal <= 0.35x), then the same grid
   again on the warm store (goal <= 0.15x);
3. the same grid restricted to the 10 % training set (4 trials: Lite0/Lite2 x 5/10
   epochs), once with the feature store (cold) and once with ``--feature-cache off``
   (every trial runs every image through the backbone every epoch): prints
   uncached / cached (goal >= 10x). The restriction keeps the uncached side near 10
   minutes on 2 cores.

Each sweep's own phase timings (from its sweep.json) are printed too, and the load
average when it started (figures from a loaded machine are not comparable).
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

from tune_food.data.datasets import resolve_data_root  # noqa: E402
from tune_food.data.splits import split_samples  # noqa: E402
from tune_food.features.extract import extract_images  # noqa: E402
from tune_food.models.registry import build_backbone  # noqa: E402
from tune_food.models.runtime import frozen_forward  # noqa: E402
from tune_food.sweep.plan import expand_grid  # noqa: E402
from tune_food.sweep.spaces import load_space  # noqa: E402


def run_sweep(space: str, work: str, name: str, data_root: str, *extra: str,
              cache: str | None = None) -> float:
    """Run one sweep in a subprocess (feature store ``cache-<cache or name>``); print its
    phase timings; return its wall time (s)."""
    cmd = [sys.executable, "-m", "tune_food.sweep", "--grid", "--space", space,
           "--results-dir", os.path.join(work, "results"), "--name", name, "--data-dir",
           data_root, "--cache-dir", os.path.join(work, f"cache-{cache or name}"), *extra]
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


def grid_passes(space_path: str, data_root: str) -> list[tuple[str, object]]:
    """The grid's (model, split) passes, as the sweep plans them (a united test split
    is a tuple of folders)."""
    passes = []
    for t in expand_grid(load_space(space_path)):
        tests = t["test_data"] if isinstance(t["test_data"], list) else [t["test_data"] or t["data"]]
        united = tuple(os.path.join(data_root, d, "test") for d in tests)
        passes += [(t["model"], os.path.join(data_root, t["data"], "train")),
                   (t["model"], united if len(united) > 1 else united[0])]
    return list(dict.fromkeys(passes))


def plain_loop(model: str, split) -> tuple[int, float]:
    """The loop a user would write: ImageFolder + timm transform + batch 32 +
    inference_mode, default memory format. Returns (images, seconds)."""
    import timm
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    start = time.perf_counter()
    cfg = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(
        f"tf_{model}.in1k").to_dict())
    folders = [split] if isinstance(split, str) else list(split)
    dataset = ImageFolder(folders[0], create_transform(**cfg, is_training=False))
    dataset.samples = split_samples(split)[1]   # a united split: the same distinct images
    net = build_backbone(model)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32)
    with torch.inference_mode():
        n = sum(len(net(x)) for x, _ in loader)
    return n, time.perf_counter() - start


def forward_ceiling(model: str, forward, images: list[str]) -> float:
    """Images/s of ``forward`` alone on ``images`` already decoded (batches of 32)."""
    from tune_food.features.extract import _Images
    from tune_food.models.registry import get_transform

    ds = _Images(images, get_transform(model))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.inference_mode():
        forward(x[:32])
        start = time.perf_counter()
        for i in range(0, len(x), 32):
            forward(x[i:i + 32])
    return len(x) / (time.perf_counter() - start)


def reference(space_path: str, data_root: str, work: str) -> tuple[float, dict[str, float]]:
    """Plain loop, then tune_food's extract_images over the same passes; prints per
    model img/s, the ratio and the forward-alone ceilings. Returns (plain loop seconds,
    {model: ours / plain})."""
    torch.set_num_threads(os.cpu_count() or 1)
    plain_s, ours_s, images, forwards = {}, {}, {}, {}
    for model, split in grid_passes(space_path, data_root):
        n, seconds = plain_loop(model, split)
        if model not in forwards:
            start = time.perf_counter()
            forwards[model] = frozen_forward(model, cache_dir=os.path.join(work, "converted"))
            print(f"  {model:<20} converted for {forwards[model].runtime} once: "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        extract_images(model, [p for p, _ in split_samples(split)[1]], forward=forwards[model])
        ours = time.perf_counter() - start
        for d, v in ((plain_s, seconds), (ours_s, ours), (images, n)):
            d[model] = d.get(model, 0) + v
        name = split if isinstance(split, str) else "+".join(split)
        print(f"  {model:<20} {n:>4} images  plain {seconds:6.1f} s  ours {ours:6.1f} s  "
              f"{os.path.relpath(name, data_root)}", flush=True)
    ratios = {}
    for model in plain_s:
        ratios[model] = plain_s[model] / ours_s[model]
        sample = [p for p, _ in split_samples(grid_passes(space_path, data_root)[0][1])[1]][:64]
        eager = forward_ceiling(model, build_backbone(model), sample)
        ov = forward_ceiling(model, forwards[model], sample)
        plain = images[model] / plain_s[model]
        print(f"{model}: plain loop {plain:.1f} img/s, tune_food extract_images "
              f"{images[model] / ours_s[model]:.1f} img/s: {ratios[model]:.2f}x  (goal >= 3.5x); "
              f"ceiling, the forward alone: PyTorch eager {eager:.1f} img/s ({eager / plain:.2f}x), "
              f"{forwards[model].runtime} {ov:.1f} img/s ({ov / plain:.2f}x)", flush=True)
    total = sum(plain_s.values())
    print(f"plain loop: {sum(images.values())} image passes, {total:.1f} s "
          f"({os.cpu_count()} threads, in process)", flush=True)
    return total, ratios


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
              f"{data_root}, {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
        plain_s, _ = reference(full, data_root, work)
        grid_s = run_sweep(full, work, "grid-cold", data_root)
        print(f"grid, feature store cold: {grid_s:.1f} s;  grid / plain loop = "
              f"{grid_s / plain_s:.2f}x  (goal <= 0.35x)", flush=True)
        warm_s = run_sweep(full, work, "grid-warm", data_root, cache="grid-cold")
        print(f"grid, feature store warm: {warm_s:.1f} s;  warm / plain loop = "
              f"{warm_s / plain_s:.2f}x  (goal <= 0.15x)", flush=True)
        print(f"load average at the end {os.getloadavg()}", flush=True)
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
