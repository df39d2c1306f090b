"""Where users already work (issue 16): a subset cut from a Food-101 copy
(``python -m tune_food.data subset``), a sweep logged to MLflow (``--mlflow``), and the
sweep's tables as Parquet. The Food-101 copy is made of the real photos in
``../shared/data`` (symlinks in a temporary folder) with Food-101's own meta JSON; one
real sweep (Lite0, one trial, 2 epochs) runs on a subset of it with ``--mlflow``."""

from __future__ import annotations

import hashlib
import json
import math
import os

import pandas as pd
import pytest
from conftest import CLASSES, run_cli, run_sweep, shared_dataset

from tune_food.sweep.run import main as sweep_main

SETS = ("pizza_steak_sushi", "pizza_steak_sushi_20_percent")


def sha(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def tree(folder: str) -> dict[str, str]:
    """relative path -> SHA-256 of every file under ``folder``."""
    return {os.path.relpath(os.path.join(r, f), folder): sha(os.path.join(r, f))
            for r, _, fs in os.walk(folder) for f in fs}


@pytest.fixture(scope="module")
def food101(tmp_path_factory) -> str:
    """A Food-101 copy in Food-101's layout: ``images/<class>/<id>.jpg`` (symlinks to
    the real photos of both shipped sets, each id once) and ``meta/{train,test}.json``
    (``{"pizza": ["pizza/1001116", ...]}``, ids without extension) plus ``classes.txt``."""
    root = tmp_path_factory.mktemp("food101_root") / "food-101"
    meta = {"train": {}, "test": {}}
    for split in meta:
        for cls in CLASSES:
            os.makedirs(root / "images" / cls, exist_ok=True)
            ids = set()
            for name in SETS:
                folder = os.path.join(shared_dataset(name), split, cls)
                for f in sorted(os.listdir(folder)):
                    dst = root / "images" / cls / f
                    if not os.path.lexists(dst):
                        os.symlink(os.path.join(folder, f), dst)
                    ids.add(f"{cls}/{os.path.splitext(f)[0]}")
            meta[split][cls] = sorted(ids)
    os.makedirs(root / "meta")
    for split, content in meta.items():
        (root / "meta" / f"{split}.json").write_text(json.dumps(content))
    (root / "meta" / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return str(root)


def meta(food101: str, split: str) -> dict[str, list[str]]:
    return json.load(open(os.path.join(food101, "meta", f"{split}.json")))


# --------------------------------------------------------------------------- subsets

def test_subset_is_deterministic_per_class_and_disjoint(food101, tmp_path):
    from tune_food.data.datasets import verify_manifest
    from tune_food.data.food101 import build_subset

    a = build_subset(food101, "pizza,sushi,steak", 0.3, 7, str(tmp_path / "a" / "sub"))
    b = build_subset(food101, "all", 0.3, 7, str(tmp_path / "b" / "sub"))
    assert a.classes == b.classes == ["pizza", "steak", "sushi"]
    files_a, files_b = tree(a.out), tree(b.out)
    assert files_a == files_b                         # byte for byte, manifest included
    manifest = json.load(open(os.path.join(a.out, "manifest.json")))
    assert manifest["files"] == {k: v for k, v in files_a.items() if k != "manifest.json"}
    verify_manifest(a.out, manifest["files"])
    verify_manifest(a.out, manifest)          # the whole manifest.json as the README says
    assert (manifest["fraction"], manifest["seed"], manifest["classes"]) == \
        (0.3, 7, ["pizza", "steak", "sushi"])
    for split in ("train", "test"):
        official = meta(food101, split)
        for cls in CLASSES:
            names = sorted(os.listdir(os.path.join(a.out, split, cls)))
            n = len(official[cls])
            assert len(names) == math.floor(0.3 * n + 0.5) == a.counts[split][cls]
            assert {f"{cls}/{x[:-4]}" for x in names} <= set(official[cls])
    train = {p for p in files_a if p.startswith("train/")}
    test = {p for p in files_a if p.startswith("test/")}
    assert not {os.path.basename(p) for p in train} & {os.path.basename(p) for p in test}
    assert not {files_a[p] for p in train} & {files_a[p] for p in test}   # by content too
    assert a.bytes == sum(os.path.getsize(os.path.join(a.out, p)) for p in manifest["files"])
    # a class's images do not depend on the other classes chosen; another seed differs
    c = build_subset(food101, "sushi,pizza", 0.3, 7, str(tmp_path / "c" / "sub"))
    assert sorted(os.listdir(os.path.join(c.out, "train", "pizza"))) == \
        sorted(os.listdir(os.path.join(a.out, "train", "pizza")))
    d = build_subset(food101, "all", 0.3, 8, str(tmp_path / "d" / "sub"))
    assert sorted(os.listdir(os.path.join(d.out, "train", "pizza"))) != \
        sorted(os.listdir(os.path.join(a.out, "train", "pizza")))
    # fraction 1 keeps every image; the folder is complete, not links
    e = build_subset(food101, "steak,sushi", 1.0, 0, str(tmp_path / "e" / "all"))
    assert e.counts["test"] == {c: len(meta(food101, "test")[c]) for c in ("steak", "sushi")}
    assert not any(os.path.islink(os.path.join(r, f)) for r, _, fs in os.walk(e.out) for f in fs)


def subset_cli(capsys, *args: str) -> tuple[int, str]:
    from tune_food.data.cli import main

    try:
        code = main(["subset", *args])
    except SystemExit as exc:   # argparse usage errors
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def test_subset_errors_are_one_line(food101, tmp_path, capsys):
    base = ["--food101", food101, "--seed", "1"]
    out = str(tmp_path / "out")
    cases = [
        (["--classes", "pizza,suhsi", "--fraction", "0.2", "--out", out], ["'suhsi'", "sushi"]),
        (["--classes", "pizza,sushi", "--fraction", "0", "--out", out], ["outside (0, 1]"]),
        (["--classes", "pizza,sushi", "--fraction", "1.5", "--out", out], ["outside (0, 1]"]),
        (["--classes", "pizza", "--fraction", "0.2", "--out", out], ["at least two"]),
        (["--classes", "pizza,sushi", "--fraction", "0.001", "--out", out], ["leaves no"]),
        (["--classes", "pizza,sushi", "--fraction", "x", "--out", out], ["invalid float"]),
    ]
    for args, words in cases:
        code, err = subset_cli(capsys, *base, *args)
        assert code == 2 and err.count("\n") == 1, (args, err)
        assert all(w in err for w in words), (args, err)
        assert not os.path.exists(out)
    not_food = str(tmp_path / "not_food")
    os.makedirs(os.path.join(not_food, "images"))
    code, err = subset_cli(capsys, "--food101", not_food, "--classes", "all", "--fraction",
                           "0.1", "--out", out)
    assert code == 2 and "is not a Food-101 copy" in err and "meta/train.json" in err
    code, err = subset_cli(capsys, *base, "--classes", "pizza,steak", "--fraction", "0.1",
                           "--out", out)
    assert code == 0 and os.path.isfile(os.path.join(out, "manifest.json"))
    before = tree(out)
    code, err = subset_cli(capsys, *base, "--classes", "pizza,sushi", "--fraction", "0.1",
                           "--out", out)
    assert code == 2 and "exists" in err and "--force" in err and tree(out) == before
    # --force replaces; --download with a copy already in PATH/food-101 fetches nothing
    code, err = subset_cli(capsys, "--food101", os.path.dirname(food101), "--download",
                           "--seed", "1", "--classes", "pizza,sushi", "--fraction", "0.1",
                           "--out", out, "--force")
    assert code == 0, err
    assert sorted(os.listdir(os.path.join(out, "train"))) == ["pizza", "sushi"]
    assert [e for e in os.listdir(tmp_path) if e.startswith(".")] == []   # no temp left


# --------------------------------------------------------------------------- a real sweep

@pytest.fixture(scope="module")
def subset_sweep(food101, shared_cache, tmp_path_factory):
    """``python -m tune_food.data subset`` (5 % of each class) and a 1-trial Lite0 sweep
    on it with ``--mlflow`` (the default SQLite store beside the results)."""
    tmp = tmp_path_factory.mktemp("subset_sweep")
    make = run_cli("tune_food.data", "subset", "--food101", food101, "--classes", "all",
                   "--fraction", "0.05", "--seed", "42", "--out",
                   str(tmp / "data" / "food_5_percent"))
    assert make.returncode == 0, make.stderr
    space = tmp / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: food_5_percent\n"
                     "  epochs: 2\n  batch_size: 8\n  lr: 0.01\n")
    proc = run_sweep("--grid", "--space", str(space), "--data-dir",
                     str(tmp / "data"), "--results-dir", str(tmp / "results"), "--cache-dir",
                     shared_cache, "--name", "food", "--mlflow")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return make, str(tmp / "results"), str(tmp / "results" / "food")


@pytest.mark.slow
def test_a_sweep_runs_on_a_subset(subset_sweep, food101):
    make, _, exp = subset_sweep
    assert "food_5_percent" in make.stdout and "MB" in make.stdout
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    test_counts = {c: math.floor(0.05 * len(v) + 0.5) for c, v in meta(food101, "test").items()}
    assert list(board["status"]) == ["TERMINATED"] and list(board["data"]) == ["food_5_percent"]
    assert board["test_images"].iloc[0] == sum(test_counts.values())
    assert 0 <= board["test_acc"].iloc[0] <= 1


@pytest.mark.slow
def test_mlflow_holds_the_sweep(subset_sweep, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    _, results, exp = subset_sweep
    uri = f"sqlite:///{results}/mlflow.db"
    state = json.load(open(os.path.join(exp, "sweep.json")))
    assert state["mlflow"]["tracking_uri"] == uri
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["food"])
    assert len(runs) == 2
    parent = runs[runs["tags.role"] == "sweep"].iloc[0]
    trial = runs[runs["tags.role"] == "trial"].iloc[0]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    results_csv = pd.read_csv(os.path.join(exp, "results.csv")).sort_values("epoch")
    assert parent["run_id"] == state["mlflow"]["parent_run_id"]
    assert (parent["tags.sweep"], parent["tags.status"], parent["status"]) == \
        ("food", "finished", "FINISHED")
    assert trial["tags.mlflow.parentRunId"] == parent["run_id"]
    assert trial["tags.sweep"] == "food" and trial["status"] == "FINISHED"
    assert trial["tags.trial_id"] == board["trial_id"].iloc[0]
    assert trial["tags.status"] == "TERMINATED" and trial["tags.rank"] == "1"
    assert (trial["params.model"], trial["params.data"], trial["params.epochs"],
            trial["params.lr"], trial["params.batch_size"]) == \
        ("efficientnet_lite0", "food_5_percent", "2", "0.01", "8")
    client = MlflowClient(uri)
    for metric in ("train_loss", "train_acc", "test_loss", "test_acc", "test_correct"):
        history = client.get_metric_history(trial["run_id"], metric)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(list(results_csv[metric]), rel=1e-12)
    artifacts = {a.path for a in client.list_artifacts(parent["run_id"])}
    assert {"leaderboard.csv", "results.csv", "leaderboard.parquet", "results.parquet",
            "sweep.json", "space.yaml", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent["run_id"], "plots")}
    assert "plots/leaderboard.png" in plots and "plots/curves.png" in plots
    local = client.download_artifacts(parent["run_id"], "leaderboard.csv", str(tmp_path))
    assert sha(local) == sha(os.path.join(exp, "leaderboard.csv"))
    assert os.path.isdir(os.path.join(results, "mlartifacts", "food"))   # beside the database


# --------------------------------------------------------------------------- Parquet

@pytest.mark.slow
def test_parquet_gives_back_the_sweeps_frames(subset_sweep, tmp_path):
    from tune_food.results.outputs import build_outputs, write_outputs
    from tune_food.results.tables import typed_frame
    from tune_food.sweepdir.record import SweepState

    _, _, exp = subset_sweep
    state = SweepState.load(exp)
    out = build_outputs(exp, state)
    board = pd.read_parquet(os.path.join(exp, "leaderboard.parquet"))
    results = pd.read_parquet(os.path.join(exp, "results.parquet"))
    pd.testing.assert_frame_equal(board, typed_frame(out.board))
    pd.testing.assert_frame_equal(results, typed_frame(out.results))
    assert str(board["model"].dtype) == "category" and str(results["config/data"].dtype) == "category"
    assert str(board["rank"].dtype) == "Int64" and board["test_correct"].dtype == "int64"
    assert board["augment"].dtype == bool and results["epoch"].tolist() == [1, 2]
    assert results["test_acc"].tolist() == pytest.approx(
        pd.read_csv(os.path.join(exp, "results.csv"))["test_acc"].tolist(), rel=1e-12)
    # report rewrites them with the same bytes
    before = {f: sha(os.path.join(exp, f)) for f in ("leaderboard.parquet", "results.parquet")}
    write_outputs(exp, str(tmp_path), state)
    assert {f: sha(os.path.join(tmp_path, f)) for f in before} == before


def test_typed_frame_keeps_integers_and_booleans_with_missing_values():
    from tune_food.results.tables import typed_frame

    frame = pd.DataFrame({
        "rank": [1.0, 2.0, float("nan")], "epochs_done": [3.0, 3.0, 0.0],
        "test_correct": [7.0, None, 5.0], "test_acc": [1.0, 0.0, 1.0],
        "augment": [True, None, False], "tied_with_best": [True, False, True],
        "should_checkpoint": [True, False, None], "config/dropout": [0.2, None, 0.3],
        "model": ["efficientnet_lite0", "efficientnet_lite2", "efficientnet_lite0"],
        "data": ["a", "b", "a"], "error": [None, "boom", None]})
    frame["augment"] = frame["augment"].astype(object)
    frame["config/dropout"] = pd.Series([0.2, None, 0.3], dtype=object)   # as results hold it
    typed = typed_frame(frame)
    assert {c: str(t) for c, t in typed.dtypes.items()} == {
        "rank": "Int64", "epochs_done": "int64", "test_correct": "Int64", "test_acc": "float64",
        "augment": "boolean", "tied_with_best": "bool", "should_checkpoint": "boolean",
        "config/dropout": "Float64", "model": "category", "data": "category",
        "error": str(frame["error"].dtype)}
    assert typed["rank"].tolist()[:2] == [1, 2] and typed["rank"].isna().tolist()[2]
    assert typed["test_acc"].tolist() == [1.0, 0.0, 1.0]   # a metric stays a float


def test_mlflow_tracking_uri_default_and_unreachable_store(tmp_path):
    from tune_food.common.errors import SweepError
    from tune_food.results import tracking
    from tune_food.sweepdir.layout import MLFLOW_DEFAULT

    assert tracking.tracking_uri(MLFLOW_DEFAULT, "/srv/results/grid") == \
        "sqlite:////srv/results/mlflow.db"
    assert tracking.tracking_uri("http://host:5000", "/srv/results/grid") == "http://host:5000"
    assert tracking.start_runs(None, "grid", str(tmp_path / "grid")) is None
    assert tracking.mlflow_callbacks(None, "grid") == []
    (tmp_path / "a_file").write_text("")   # a folder that cannot be made
    bad = f"sqlite:///{tmp_path}/a_file/mlflow.db"
    with pytest.raises(SweepError, match="MLflow tracking at " + bad):
        tracking.start_runs(bad, "grid", str(tmp_path / "grid"))
    # the checks try to make a folder where permissions alone would let them (/proc)
    with pytest.raises(SweepError, match="cannot be created: making a folder in /proc"):
        tracking.check_store("sqlite:////proc/tune_food_nope/mlflow.db", str(tmp_path / "grid"))
    # the default store goes beside the sweep folder, whose parent need not exist yet
    info = tracking.start_runs(MLFLOW_DEFAULT, "grid", str(tmp_path / "results" / "grid"))
    assert info["tracking_uri"] == f"sqlite:///{tmp_path}/results/mlflow.db"
    assert os.path.isfile(tmp_path / "results" / "mlflow.db")
    callbacks = tracking.mlflow_callbacks(info, "grid")
    assert callbacks[0].tags["mlflow.parentRunId"] == info["parent_run_id"]
    assert callbacks[0].tags["sweep"] == "grid"
    # --resume: the same experiment and parent run, running again
    again = tracking.start_runs(MLFLOW_DEFAULT, "grid", str(tmp_path / "results" / "grid"),
                                saved=info)
    assert again == info


def test_an_unreachable_mlflow_store_stops_the_sweep_before_it_writes(tiny_root, tmp_path,
                                                                    capsys):
    """One line, exit 2, and no sweep folder: fixing the URI and running the same command
    again works (no "exists already"). (The command in-process: it refuses before Ray.)"""
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n")
    (tmp_path / "a_file").write_text("")
    bad = f"sqlite:///{tmp_path}/a_file/mlflow.db"
    code = sweep_main(["--grid", "--space", str(space), "--data-dir", tiny_root,
                       "--results-dir", str(tmp_path / "results"), "--cache-dir",
                       str(tmp_path / "cache"), "--name", "s", "--mlflow", bad])
    out, err = capsys.readouterr()
    assert code == 2, out[-2000:] + err[-2000:]
    assert err.count("\n") == 1 and f"MLflow tracking at {bad} failed" in err
    assert not os.path.exists(tmp_path / "results" / "s")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_tracking_server_that_does_not_answer_is_one_line_in_seconds(tiny_root, tmp_path,
                                                                      dry_run, capsys):
    """A refused connection (port 1) fails the checks, --dry-run included, without
    MLflow's minutes of retries; nothing is written. (The command in-process: it refuses
    before Ray.)"""
    import time

    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n")
    start = time.perf_counter()
    code = sweep_main(["--grid", "--space", str(space), "--data-dir", tiny_root,
                       "--results-dir", str(tmp_path / "results"), "--name", "s",
                       "--mlflow", "http://127.0.0.1:1", *(["--dry-run"] if dry_run else [])])
    took = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, out[-2000:] + err[-2000:]
    assert err.count("\n") == 1, err
    assert "MLflow tracking at http://127.0.0.1:1 failed" in err
    assert "Connection refused" in err
    assert took < 60   # MLflow's default retries take about 4 minutes here
    assert not os.path.exists(tmp_path / "results")
