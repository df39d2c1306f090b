"""A 100-trial Optuna search, cold and warm, and where its time goes.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/optuna_speed.py [--num-samples 100]

Runs ``python -m tune_food.sweep --search optuna --num-samples N --space
search_spaces/optuna.yaml`` twice in subprocesses, as a user runs it: first with an
empty feature store and cache folder (cold, model conversion included; goal <= 45 s for
100 trials, issue 21), then again on the store the first run filled (warm; goal <= 25 s). For each it prints the wall time split into the
sweep's own phases (its ``sweep.json`` timings: checks, Ray start, features, trials,
outputs; the rest is interpreter start, imports and planning) and, for the trials
phase, the per-trial overhead in seconds:

    (trials phase x concurrent trials - training compute of all trials) / trials

where each trial's training compute (prepare + its epochs, no Ray, no Tune) is replayed
in this process from the warm store with the trial's own config. The overhead is what
Ray Tune costs a trial besides training: actor start or reuse, scheduling, Optuna's
suggestion, the per-epoch reports, checkpoints and the driver's loggers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def run(work: str, name: str, samples: int, data_root: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "tune_food.sweep", "--search", "optuna", "--num-samples",
           str(samples), "--space", os.path.join(REPO, "search_spaces", "optuna.yaml"),
           "--results-dir", os.path.join(work, "results"), "--name", name, "--data-dir",
           data_root, "--cache-dir", os.path.join(work, "store"), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"sweep {name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    exp = os.path.join(work, "results", name)
    with open(os.path.join(exp, "sweep.json")) as fh:
        state = json.load(fh)
    trials = []
    for path in glob.glob(os.path.join(exp, "*", "result.json")):
        with open(path) as fh:
            lines = [json.loads(line) for line in fh if line.strip()]
        if lines:
            trials.append(lines[-1])
    return {"wall": wall, "timings": state["timings"], "trials": trials, "exp": exp}


def compute_seconds(trials: list[dict], store: str, datasets: dict[str, str]) -> float:
    """Training compute of every trial, replayed in this process (no Ray): prepare from
    the store's features + the trial's epochs. Returns the sum in seconds."""
    import torch

    from tune_food.features.extract import extract_features, feature_key
    from tune_food.features.store import FeatureStore
    from tune_food.train.hparams import split_dirs
    from tune_food.train.trainable import prepare, run_epoch

    torch.set_num_threads(1)   # each trial has 1 CPU
    cache, features, total = FeatureStore(store), {}, 0.0
    for result in trials:
        config = {k: v for k, v in result["config"].items() if k != "feature_cache"}
        for split in split_dirs(config, datasets):
            key = feature_key(config["model"], split)
            if key not in features:
                features[key] = extract_features(config["model"], split, store=cache)
        start = time.perf_counter()
        trial = prepare(config, datasets, features, device="cpu")
        for epoch in range(1, int(result["epoch"]) + 1):
            run_epoch(trial, epoch)
        total += time.perf_counter() - start
    cache.close()
    return total


def report(name: str, r: dict, compute: float | None, concurrency: int, goal: float) -> None:
    t = r["timings"]
    rest = r["wall"] - sum(t.values())
    n = len(r["trials"])
    print(f"{name}: {r['wall']:.1f} s for {n} trials (goal <= {goal:.0f} s) = "
          + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in t.items())
          + f", rest (interpreter, imports, plan) {rest:.1f} s", flush=True)
    in_trials = sum(x.get("time_total_s", 0.0) for x in r["trials"])
    slots = t.get("trials_s", 0.0) * concurrency
    print(f"  trials phase {t.get('trials_s', 0):.1f} s x {concurrency} slots = {slots:.1f} "
          f"slot-s; inside the trainables {in_trials:.1f} s; outside "
          f"(actor start/reuse, scheduling, Optuna) {(slots - in_trials) / n:.2f} s per trial",
          flush=True)
    if compute is not None:
        print(f"  training compute (replayed without Ray) {compute:.1f} s; per-trial overhead "
              f"{(slots - compute) / n:.2f} s, of which inside the trainable (reports, "
              f"checkpoints) {(in_trials - compute) / n:.2f} s", flush=True)


def main() -> None:
    from tune_food.data.datasets import resolve_data_root

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=100)
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    args = parser.parse_args()
    data_root = resolve_data_root(None)
    concurrency = max(1, int((os.cpu_count() or 1) // args.cpus_per_trial))
    extra = ["--cpus-per-trial", str(args.cpus_per_trial)]
    print(f"{args.num_samples}-trial Optuna search, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as work:
        cold = run(work, "cold", args.num_samples, data_root, extra)
        warm = run(work, "warm", args.num_samples, data_root, extra)
        datasets = {d: os.path.join(data_root, d) for d in
                    ("pizza_steak_sushi", "pizza_steak_sushi_20_percent")}
        compute = compute_seconds(warm["trials"], os.path.join(work, "store"), datasets)
        report("cold store", cold, None, concurrency, 45)
        report("warm store", warm, compute, concurrency, 25)
    print(f"load average at the end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
