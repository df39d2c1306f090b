"""Extraction settings side by side: decode threads, batch size, threads, overlap.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/extract_settings.py [--images 96]

On real images (the first N test images of pizza_steak_sushi_20_percent), in this
process, for Lite0 and Lite2:

* decode + transform alone (the weights' own transform), in 1 thread and in as many
  threads as CPUs (Pillow releases the GIL while it decodes and resizes);
* the frozen backbone's forward alone in OpenVINO float32 (what tune_food runs,
  :func:`tune_food.models.runtime.frozen_forward`) for batch 16 / 32 / 64 and 1 / all
  threads, beside PyTorch eager in the default layout at batch 32 (the plain loop's);
* the whole of :func:`tune_food.features.extract.extract_images`: decode then forward
  one after the other (no overlap), decode threads one batch ahead of the forward (1 and
  all CPUs), and one DataLoader worker process;
* the sweep's layout on this machine: one extraction task per CPU, each with one
  forward thread and one decode thread (two processes at once, each half the images).

Prints images/s and the ratio to the plain forward. These figures chose
:data:`tune_food.features.extract.BATCH_SIZE`, the decode threads and the task layout.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.data.datasets import resolve_data_root  # noqa: E402
from tune_food.data.splits import split_samples  # noqa: E402
from tune_food.features.extract import _Images, _threaded_batches, extract_images  # noqa: E402
from tune_food.models.registry import build_backbone, get_transform  # noqa: E402
from tune_food.models.runtime import frozen_forward  # noqa: E402


def rate(fn, images: int) -> float:
    start = time.perf_counter()
    fn()
    return images / (time.perf_counter() - start)


def _task(model: str, paths: list[str], cache: str) -> None:
    """One extraction task as the sweep runs it on a 1-CPU slot."""
    torch.set_num_threads(1)
    extract_images(model, paths, forward=frozen_forward(model, threads=1, cache_dir=cache))


def parallel_tasks(model: str, paths: list[str], cache: str, tasks: int) -> float:
    """``tasks`` processes, each extracting its share of ``paths`` with 1 thread: images/s
    of the whole (the workers' start-up and model load excluded: each warms up first)."""
    ctx = mp.get_context("spawn")
    shares = [paths[i::tasks] for i in range(tasks)]
    with ctx.Pool(tasks) as pool:
        pool.starmap(_task, [(model, s[:8], cache) for s in shares])   # warm: load, compile
        start = time.perf_counter()
        pool.starmap(_task, [(model, s, cache) for s in shares])
        return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    args = parser.parse_args()
    split = os.path.join(resolve_data_root(None), "pizza_steak_sushi_20_percent", "test")
    paths = [p for p, _ in split_samples(split)[1]][:args.images]
    n = len(paths)
    cpus = os.cpu_count() or 1
    cache = tempfile.mkdtemp(prefix="extract-settings-")   # converted backbones
    print(f"{n} images, {cpus} CPUs; load average {os.getloadavg()}", flush=True)
    for model in args.models:
        ds = _Images(paths, get_transform(model))
        for threads in sorted({1, cpus}):
            r = rate(lambda: list(_threaded_batches(ds, 32, threads)), n)
            print(f"{model}: decode + transform, {threads} thread(s): {r:6.1f} img/s", flush=True)
        x = torch.stack([ds[i][0] for i in range(n)])
        torch.set_num_threads(cpus)
        net = build_backbone(model)

        def plain():
            with torch.inference_mode():
                for i in range(0, n, 32):
                    net(x[i:i + 32])
        plain()
        base = rate(plain, n)
        print(f"  forward PyTorch eager, default layout, batch 32, {cpus} threads: "
              f"{base:6.1f} img/s 1.00x (the plain loop's)", flush=True)
        for threads in sorted({1, cpus}):
            forward = frozen_forward(model, threads=threads, cache_dir=cache)
            for bs in (16, 32, 64):
                def run():
                    for i in range(0, n, bs):
                        forward(x[i:i + bs])
                run()
                r = rate(run, n)
                print(f"  forward OpenVINO f32, {threads} thread(s), batch {bs:>2}: {r:6.1f} "
                      f"img/s {r / base:.2f}x", flush=True)
        forward = frozen_forward(model, threads=cpus, cache_dir=cache)

        def sequential():
            batch = [ds[i][0] for i in range(n)]
            for i in range(0, n, 32):
                forward(torch.stack(batch[i:i + 32]))
        variants = {"decode, then forward (no overlap)": sequential}
        for threads in sorted({1, cpus}):
            variants[f"decode {threads} thread(s) ahead of the forward"] = \
                lambda t=threads: extract_images(model, paths, forward=forward, decode_threads=t)
        variants["decode in 1 DataLoader worker process"] = \
            lambda: extract_images(model, paths, num_workers=1, forward=forward)
        for name, fn in variants.items():
            r = rate(fn, n)
            print(f"  extract_images, {name}: {r:6.1f} img/s {r / base:.2f}x", flush=True)
        r = parallel_tasks(model, paths, cache, cpus)
        print(f"  {cpus} extraction tasks at once (1 forward + 1 decode thread each): "
              f"{r:6.1f} img/s {r / base:.2f}x", flush=True)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
