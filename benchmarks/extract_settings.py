"""Extraction settings side by side: memory format, batch size, threads, decode overlap.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/extract_settings.py [--images 96]

On real images (the first N test images of pizza_steak_sushi_20_percent), in this
process: decode + transform alone; the Lite0 and Lite2 backbone forward in the default
memory format and in ``channels_last`` (under ``torch.inference_mode``, float32) for
batch sizes 16 / 32 / 64 and 1 / all threads; and the whole of
:func:`tune_food.features.extract.extract_images` with 0 and 1 decode workers. Prints images/s
and the ratio to the default-format forward at batch 32 (what a plain timm loop does).
These figures chose :data:`tune_food.features.extract.BATCH_SIZE` and the task layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.data.datasets import resolve_data_root  # noqa: E402
from tune_food.data.splits import split_samples  # noqa: E402
from tune_food.features.extract import _Images, extract_images  # noqa: E402
from tune_food.models.registry import build_backbone, get_transform  # noqa: E402


def rate(fn, images: int) -> float:
    start = time.perf_counter()
    fn()
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2"])
    args = parser.parse_args()
    split = os.path.join(resolve_data_root(None), "pizza_steak_sushi_20_percent", "test")
    paths = [p for p, _ in split_samples(split)[1]][:args.images]
    n = len(paths)
    threads = os.cpu_count() or 1
    print(f"{n} images, {threads} CPUs; load: {os.getloadavg()}", flush=True)
    for model in args.models:
        transform = get_transform(model)
        ds = _Images(paths, transform)
        decode = rate(lambda: [ds[i] for i in range(n)], n)
        x = torch.stack([ds[i][0] for i in range(n)])
        print(f"{model}: decode + transform {decode:.1f} img/s", flush=True)
        net = build_backbone(model)
        base = None
        for fmt in ("default", "channels_last"):
            if fmt == "channels_last":
                net = net.to(memory_format=torch.channels_last)
            for t in sorted({1, threads}):
                torch.set_num_threads(t)
                for bs in (16, 32, 64):
                    def run():
                        with torch.inference_mode():
                            for i in range(0, n, bs):
                                b = x[i:i + bs]
                                if fmt == "channels_last":
                                    b = b.contiguous(memory_format=torch.channels_last)
                                net(b)
                    run() if base is None else None   # warm-up once
                    r = rate(run, n)
                    if fmt == "default" and bs == 32 and t == threads:
                        base = r
                    ratio = f"{r / base:.2f}x" if base else ""
                    print(f"  forward {fmt:<13} threads {t} batch {bs:>2}: {r:6.1f} img/s {ratio}",
                          flush=True)
        torch.set_num_threads(threads)
        for workers in (0, 1):
            r = rate(lambda: extract_images(model, paths, 32, "cpu", workers), n)
            print(f"  extract_images (decode + forward) decode workers {workers}: {r:6.1f} img/s"
                  f" = {r / base:.2f}x the plain forward", flush=True)


if __name__ == "__main__":
    main()
