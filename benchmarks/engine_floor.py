"""What a sweep costs against bare Ray Tune doing the same work, side by side.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/engine_floor.py [--pairs 2]
        [--num-samples 100] [--skip-grid]

The reference (``--reference search|grid``, run by this script in a subprocess of its
own) imports nothing of tune_food: Ray Tune with the shipped search's shape
(``search_spaces/optuna.yaml``: ``OptunaSearch`` with a seeded TPE sampler,
``ASHAScheduler(time_attr="epoch", max_t=20, grace_period=2, reduction_factor=3)``; or
the default grid's 8 configurations with FIFO), 1 CPU per trial, ``reuse_actors=True``,
Ray's default loggers, one ``tune.report`` per epoch, and a function trainable doing a
trial's work on cached features: a dropout + linear head on float32 vectors of 1,280
values (360 training rows and 90 validation rows, 3 classes, as the 20 % set with a 20 %
validation split; 225 / 75 for the 10 % set), AdamW with the config's lr and weight
decay, label smoothing, the config's batch size and epochs, one torch thread, and a
checkpoint (head and optimizer state) at ASHA's rungs and at the last epoch.

The product: ``python -m tune_food.sweep --search optuna --num-samples N --space
search_spaces/optuna.yaml`` (and ``--grid``) on the real photos, warm: the feature
store and the per-user caches filled by a first run this script makes (not timed).

For each pair it prints both processes' wall times (from the fork to the exit), the
ratio product / reference, and the load average when the pair started; the goals
(issue 36) are warm search <= 1.3x and warm grid <= 1.2x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = 1280
CLASSES = 3
ROWS = {"pizza_steak_sushi": (180, 45), "pizza_steak_sushi_20_percent": (360, 90)}
ASHA = dict(max_t=20, grace_period=2, reduction_factor=3)   # optuna.yaml's epochs: 3..20


def _rungs(max_t: int, grace_period: int, reduction_factor: int) -> set[int]:
    """ASHA's decision epochs (one bracket), plus max_t: where a trial checkpoints."""
    out, r = {max_t}, grace_period
    while r < max_t:
        out.add(r)
        r *= reduction_factor
    return out


def reference(kind: str, samples: int, storage: str) -> None:
    """The bare Ray Tune sweep (no tune_food import): ``kind`` is search or grid."""
    import ray
    from ray import tune

    def trainable(config):
        import tempfile as tf

        import torch
        from torch import nn

        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(int(config["seed"]))
        n_train, n_val = ROWS[config["data"]]
        x = torch.randn(n_train, FEATURES, generator=gen)
        y = torch.randint(0, CLASSES, (n_train,), generator=gen)
        xv = torch.randn(n_val, FEATURES, generator=gen)
        yv = torch.randint(0, CLASSES, (n_val,), generator=gen)
        head = nn.Sequential(nn.Dropout(float(config["dropout"])), nn.Linear(FEATURES, CLASSES))
        opt = torch.optim.AdamW(head.parameters(), lr=float(config["lr"]),
                                weight_decay=float(config["weight_decay"]))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=float(config["label_smoothing"]))
        rungs = config["rungs"]
        epochs = int(config["epochs"])
        batch = int(config["batch_size"])
        for epoch in range(1, epochs + 1):
            head.train()
            order = torch.randperm(n_train, generator=gen)
            total = 0.0
            for i in range(0, n_train, batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = loss_fn(head(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += float(loss) * len(idx)
            head.eval()
            with torch.no_grad():
                out = head(xv)
                val_loss = float(loss_fn(out, yv))
                val_acc = float((out.argmax(1) == yv).float().mean())
            metrics = {"epoch": epoch, "train_loss": total / n_train, "val_loss": val_loss,
                       "val_acc": val_acc}
            if epoch in rungs or epoch == epochs:
                with tf.TemporaryDirectory() as folder:
                    torch.save({"head": head.state_dict(), "opt": opt.state_dict()},
                               os.path.join(folder, "checkpoint.pt"))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            else:
                tune.report(metrics)

    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    rungs = sorted(_rungs(**ASHA))
    if kind == "search":
        import optuna
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
        from ray.tune.schedulers import ASHAScheduler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space = {"data": tune.choice(list(ROWS)), "lr": tune.loguniform(1e-4, 0.03),
                 "weight_decay": tune.loguniform(1e-6, 0.01), "dropout": tune.uniform(0, 0.6),
                 "batch_size": tune.choice([16, 32, 64]), "epochs": tune.randint(3, 21),
                 "label_smoothing": tune.uniform(0, 0.2), "seed": 42, "rungs": rungs}
        config = tune.TuneConfig(
            metric="val_acc", mode="max", num_samples=samples, reuse_actors=True,
            search_alg=ConcurrencyLimiter(OptunaSearch(
                sampler=optuna.samplers.TPESampler(seed=0)), max_concurrent=4),
            scheduler=ASHAScheduler(time_attr="epoch", **ASHA))
    else:
        space = {"data": tune.grid_search(list(ROWS)), "epochs": tune.grid_search([5, 10]),
                 "model": tune.grid_search(["lite0", "lite2"]), "lr": 0.001,
                 "weight_decay": 0.0, "dropout": 0.2, "batch_size": 32,
                 "label_smoothing": 0.0, "seed": 42, "rungs": []}
        config = tune.TuneConfig(metric="val_acc", mode="max", reuse_actors=True)
    tune.Tuner(tune.with_resources(trainable, {"cpu": 1}), param_space=space,
               tune_config=config,
               run_config=tune.RunConfig(name="ref", storage_path=storage, verbose=0)).fit()
    ray.shutdown()


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}"
                 f"\n{proc.stderr[-2000:]}")
    return took


def product_cmd(kind: str, samples: int, work: str, name: str) -> list[str]:
    what = ["--search", "optuna", "--num-samples", str(samples), "--space",
            os.path.join(REPO, "search_spaces", "optuna.yaml")] if kind == "search" \
        else ["--grid"]
    return [sys.executable, "-m", "tune_food.sweep", *what, "--name", name,
            "--results-dir", os.path.join(work, "results"),
            "--cache-dir", os.path.join(work, "store")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--reference", choices=["search", "grid"])
    parser.add_argument("--storage")
    args = parser.parse_args()
    if args.reference:
        reference(args.reference, args.num_samples, args.storage)
        return
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    work = tempfile.mkdtemp(prefix="engine-floor-")
    kinds = ["search"] + ([] if args.skip_grid else ["grid"])
    print(f"work folder {work}; warming the feature store and caches (not timed) ...",
          flush=True)
    for kind in kinds:
        _timed(product_cmd(kind, 4 if kind == "search" else 0, work, f"warm-{kind}"), env)
    for kind in kinds:
        for i in range(args.pairs):
            load = os.getloadavg()
            ref = _timed([sys.executable, os.path.abspath(__file__), "--reference", kind,
                          "--num-samples", str(args.num_samples), "--storage",
                          os.path.join(work, f"ref-{kind}-{i}")], env)
            ours = _timed(product_cmd(kind, args.num_samples, work, f"{kind}-{i}"), env)
            goal = 1.3 if kind == "search" else 1.2
            print(f"{kind:6} pair {i + 1}: bare Ray Tune {ref:6.1f} s, tune_food {ours:6.1f} s, "
                  f"ratio {ours / ref:.2f}x (goal <= {goal}x); load average at start "
                  f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)


if __name__ == "__main__":
    main()
