"""Food-101 scale on SYNTHETIC features: per-epoch time, memory of 8 trials, fetch-once.

    python benchmarks/scale.py [--epochs 2] [--trials 8] [--quick] [--skip-cluster]

THE FEATURES ARE SYNTHETIC (random class centres plus noise), sized like Food-101 through
a 1280-feature backbone (EfficientNet-Lite0..2, B0): 101 classes, 75,750 train and
25,250 test vectors of 1280 float32 (388 MB + 129 MB). No image is decoded; what is
measured is everything after extraction, with the product's own code:

1. one node: ``--trials`` (8) concurrent trials of the real trainable
   (``tune_food.train.trainable.train_food`` under ``ray.tune.Tuner``, 1 CPU each), the two
   feature sets handed over as object refs exactly as the sweep does. Prints the
   per-epoch time (Tune's ``time_this_iter_s``) and the peak memory of all Ray worker
   processes together, sampled from ``/proc/<pid>/smaps_rollup`` every 0.2 s: private
   memory (USS: what a process owns alone) and RSS (which counts the shared object-store
   pages once per process that maps them). The same trials (1 epoch) with 101-vector
   feature sets give the baseline; goal: (peak USS - baseline USS + one copy of the features) /
   one copy <= 1.2 (a copy per trial would make it 1 + trials).
2. a local 3-node ``ray.cluster_utils.Cluster``: the driver puts the sets on the head;
   tasks pinned to each node (2 per node) fetch them through the trainable's own
   ``_get_features`` and build a trial (``prepare``). Prints each fetch's time (the first
   on a node transfers, later ones map the node's copy) and the nodes holding each
   set (``ray.experimental.get_object_locations``): one copy per node, each fetched once.

``--quick`` divides the sizes by 10 (development only). Prints the load average: figures
from a loaded machine are not comparable.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")

from tune_food.features.extract import FeatureSet, feature_key  # noqa: E402

MODEL = "efficientnet_lite0"          # any 1280-feature backbone: only the name is used
ROOT = "/synthetic/food101"           # no such folder: nothing reads images
CLASSES = 101
DIM = 1280


def synthetic(n: int, split: str, seed: int) -> FeatureSet:
    """SYNTHETIC feature set: ``n`` vectors, class centre + Gaussian noise (learnable)."""
    centres = np.random.default_rng(0).standard_normal((CLASSES, DIM), dtype=np.float32)
    labels = np.arange(n, dtype=np.int64) % CLASSES
    features = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    features *= 3.0
    features += centres[labels]
    paths = np.array([f"{ROOT}/{split}/class_{t:03d}/{i:06d}.jpg" for i, t in enumerate(labels)])
    hashes = np.array([f"{seed:08x}{i:056x}" for i in range(n)])
    return FeatureSet(MODEL, f"{ROOT}/{split}", features, labels,
                      [f"class_{c:03d}" for c in range(CLASSES)], paths, "synthetic",
                      "synthetic", "synthetic", 0.0, hashes)


def one_copy(*sets: FeatureSet) -> int:
    return sum(fs.features.nbytes + fs.labels.nbytes + fs.paths.nbytes + fs.hashes.nbytes
               for fs in sets)


def _descendants(root: int) -> set[int]:
    parent = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                parent[int(pid)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def worker_memory() -> tuple[int, int]:
    """(sum of USS, sum of RSS) in bytes over the Ray worker processes this script
    started (descendants of this process with command line ``ray::...``: trial actors,
    tasks and idle workers; other users' Ray processes on the machine are not counted)."""
    uss = rss = 0
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if not fh.read(5).startswith(b"ray::"):
                    continue
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                fields = {line.split(":")[0]: int(line.split()[1]) * 1024
                          for line in fh if line.split()[-1] == "kB"}
        except OSError:   # the process ended meanwhile, or is not ours to read
            continue
        uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        rss += fields.get("Rss", 0)
    return uss, rss


class Peak:
    """Samples :func:`worker_memory` every 0.2 s in a thread; keeps the peaks."""

    def __init__(self):
        self.uss = self.rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            uss, rss = worker_memory()
            self.uss, self.rss = max(self.uss, uss), max(self.rss, rss)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_trials(train: FeatureSet, test: FeatureSet, trials: int, epochs: int,
               batch_size: int) -> tuple[Peak, list[float], list[float], float]:
    """``trials`` concurrent trials of train_food on a fresh local Ray; returns the
    memory peaks, first-epoch and later-epoch times (s) and the wall time (s)."""
    import ray
    from ray import tune

    from tune_food.train.trainable import train_food

    ray.init(address="local", num_cpus=trials, include_dashboard=False, log_to_driver=False,
             object_store_memory=int(max(1e9, 3 * one_copy(train, test))))
    try:
        refs = {feature_key(MODEL, train.split_dir): ray.put(train),
                feature_key(MODEL, test.split_dir): ray.put(test)}
        space = {"model": MODEL, "data": "food101", "test_data": None, "epochs": epochs,
                 "lr": 1e-3, "batch_size": batch_size, "seed": tune.grid_search(list(range(trials))),
                 "dropout": 0.2, "weight_decay": 0.0, "label_smoothing": 0.0,
                 "val_fraction": 0.0, "augment": False, "feature_cache": "auto"}
        trainable = tune.with_resources(
            tune.with_parameters(train_food, datasets={"food101": ROOT}, features=refs),
            {"cpu": 1})
        with tempfile.TemporaryDirectory() as storage, Peak() as peak:
            start = time.perf_counter()
            grid = tune.Tuner(trainable, param_space=space,
                              tune_config=tune.TuneConfig(metric="test_acc", mode="max"),
                              run_config=tune.RunConfig(storage_path=storage, verbose=0)).fit()
            wall = time.perf_counter() - start
        if grid.errors:
            sys.exit(f"trials failed: {grid.errors[0]}")
        first, later = [], []
        for result in grid:
            df = result.metrics_dataframe
            first += df.loc[df["epoch"] == 1, "time_this_iter_s"].tolist()
            later += df.loc[df["epoch"] > 1, "time_this_iter_s"].tolist()
        accs = [r.metrics["test_acc"] for r in grid]
        print(f"    test_acc {min(accs):.3f}..{max(accs):.3f} (synthetic)", flush=True)
        return peak, first, later, wall
    finally:
        ray.shutdown()


def one_node(args, train: FeatureSet, test: FeatureSet) -> None:
    copy = one_copy(train, test)
    print(f"1. one node, {args.trials} concurrent trials x {args.epochs} epochs, batch "
          f"{args.batch_size}; one copy of the features {copy / 1e6:.0f} MB", flush=True)
    base = run_trials(synthetic(CLASSES, "train", 1), synthetic(CLASSES, "test", 2), args.trials,
                      1, args.batch_size)
    print(f"  baseline (101-vector sets): peak USS {base[0].uss / 1e6:.0f} MB, RSS "
          f"{base[0].rss / 1e6:.0f} MB, wall {base[3]:.1f} s", flush=True)
    full = run_trials(train, test, args.trials, args.epochs, args.batch_size)
    peak, first, later, wall = full
    extra_uss = peak.uss - base[0].uss
    print(f"  full sets: peak USS {peak.uss / 1e6:.0f} MB (+{extra_uss / 1e6:.0f} MB), RSS "
          f"{peak.rss / 1e6:.0f} MB (+{(peak.rss - base[0].rss) / 1e6:.0f} MB, shared pages "
          f"counted per process), wall {wall:.1f} s", flush=True)
    ratio = (extra_uss + copy) / copy
    print(f"  memory of all trial processes beyond baseline, with the object store's one "
          f"copy: {ratio:.2f}x one copy  (goal <= 1.2x; a copy per trial: "
          f"{1 + args.trials}x)", flush=True)
    print(f"  per-epoch time per trial: first epoch (prepare + fetch) "
          f"{np.mean(first):.2f} s, later epochs {np.mean(later) if later else float('nan'):.2f} s"
          f" ({args.trials} trials sharing {os.cpu_count()} cores)", flush=True)


def cluster(args, train: FeatureSet, test: FeatureSet) -> None:
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    store = int(max(1e9, 2 * one_copy(train, test)))
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store})
    for _ in range(2):
        c.add_node(num_cpus=2, object_store_memory=store)
    ray.init(address=c.address, log_to_driver=False)
    try:
        c.wait_for_nodes()
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        print(f"2. local 3-node cluster ({len(nodes)} nodes alive)", flush=True)
        refs = {feature_key(MODEL, train.split_dir): ray.put(train),
                feature_key(MODEL, test.split_dir): ray.put(test)}

        splits = (train.split_dir, test.split_dir)

        @ray.remote(num_cpus=1)
        def fetch(features):
            from tune_food.train.trainable import _get_features, prepare

            start = time.perf_counter()
            sets = [_get_features(features, MODEL, s) for s in splits]
            seconds = time.perf_counter() - start
            config = {"model": MODEL, "data": "food101", "test_data": None, "epochs": 1,
                      "lr": 1e-3, "batch_size": 64, "seed": 0, "dropout": 0.2}
            trial = prepare(config, {"food101": ROOT}, features, device="cpu")
            return (ray.get_runtime_context().get_node_id(), seconds,
                    all(not fs.features.flags.writeable for fs in sets), trial.feature_cache)

        for node in nodes:   # one node after the other: each fetch's time is its own
            strategy = NodeAffinitySchedulingStrategy(node, soft=False)
            for i in range(2):
                node_id, seconds, shared, mode = ray.get(
                    fetch.options(scheduling_strategy=strategy).remote(refs))
                print(f"  node {node_id[:8]} task {i + 1}: fetched both sets in {seconds:.2f} s "
                      f"(read-only shared: {shared}, trial feature_cache {mode})", flush=True)
        from ray.experimental import get_object_locations

        locations = get_object_locations(list(refs.values()))
        for key, ref in refs.items():
            held = locations[ref]["node_ids"]
            print(f"  {key.split('|')[1]}: {locations[ref]['object_size'] / 1e6:.0f} MB, copies on "
                  f"{len(held)} nodes, {len(set(held))} distinct (each node fetched it once: "
                  f"{sorted(held) == sorted(set(held)) and set(held) == set(nodes)})", flush=True)
    finally:
        ray.shutdown()
        c.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="sizes / 10 (development only)")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"SYNTHETIC features (not images): {CLASSES} classes, {75_750 // scale} train and "
          f"{25_250 // scale} test vectors of {DIM} float32; {os.cpu_count()} CPUs, load "
          f"average {os.getloadavg()}", flush=True)
    train, test = synthetic(75_750 // scale, "train", 1), synthetic(25_250 // scale, "test", 2)
    one_node(args, train, test)
    if not args.skip_cluster:
        cluster(args, train, test)
    print(f"load average at the end {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
