"""Seeing and using the results: plots, the report CLI, predict with the best model."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pandas as pd
import pytest
from PIL import Image

from conftest import run_cli


@pytest.mark.slow
def test_sweep_draws_both_plots(small_sweep):
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("leaderboard.png", "curves.png"):
        path = os.path.join(exp, "plots", name)
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width >= 600 and img.height >= 150
    with Image.open(os.path.join(exp, "plots", "confusion.png")) as img:
        assert img.format == "PNG" and img.width >= 200
    best = pd.read_csv(os.path.join(exp, "leaderboard.csv")).iloc[0]
    # the thumbnails of the best trial's wrong test images, when it has any
    assert os.path.isfile(os.path.join(exp, "plots", "errors.png")) == \
        bool(best["test_correct"] < best["test_images"])


@pytest.mark.slow
def test_report_rebuilds_from_trial_folders(small_sweep, tmp_path):
    proc, shared = small_sweep
    exp = str(tmp_path / "copy")   # a copy: other tests read the shared sweep as it was
    shutil.copytree(shared, exp)
    before = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    os.remove(os.path.join(exp, "leaderboard.csv"))
    os.remove(os.path.join(exp, "plots", "curves.png"))
    rep = run_cli("tune_food.report", exp)
    assert rep.returncode == 0, rep.stderr[-2000:]
    after = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    assert list(after["trial_id"]) == list(before["trial_id"])
    assert list(after["test_acc"]) == pytest.approx(list(before["test_acc"]))
    assert os.path.isfile(os.path.join(exp, "plots", "curves.png"))
    assert before["trial_name"].iloc[0] in rep.stdout
    bad = run_cli("tune_food.report", str(tmp_path / "nope"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "does not exist" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_predict_agrees_with_the_leaderboard(small_sweep, tiny_root):
    """predict on every test image counts as many correct as the best trial's test_correct."""
    proc, exp = small_sweep
    best = pd.read_csv(os.path.join(exp, "leaderboard.csv")).iloc[0]
    images = sorted(glob.glob(os.path.join(tiny_root, "tiny", "test", "*", "*.jpg")))
    assert len(images) == 12
    out = run_cli("tune_food.predict", "--sweep", exp, "--json", "--top-k", "2", *images)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["checkpoint"] == os.path.join(exp, best["checkpoint_path"])
    assert doc["trial"] == best["trial_name"] and doc["rank"] == 1
    assert doc["epoch"] == best["epochs_done"]
    correct = 0
    for row in doc["results"]:
        preds = row["predictions"]
        assert len(preds) == 2 and preds[0]["probability"] >= preds[1]["probability"]
        correct += preds[0]["class"] == os.path.basename(os.path.dirname(row["image"]))
    assert correct == best["test_correct"]
    ckpt = os.path.join(exp, best["checkpoint_path"])
    text = run_cli("tune_food.predict", "--checkpoint", ckpt, images[0])
    assert text.returncode == 0, text.stderr
    used, line = text.stdout.splitlines()
    assert used == f"using checkpoint {ckpt}" and line.startswith(images[0] + ": ")
    assert len(line.split(": ")[1].split(", ")) == 3


@pytest.mark.slow
def test_predict_bad_image_is_one_line(small_sweep, tmp_path, capsys):
    """In process (the CLI's own main; the subprocess path of the same error handler is
    run by test_report_rebuilds_from_trial_folders)."""
    from tune_food.predict import main as predict_main

    proc, exp = small_sweep
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    assert predict_main(["--sweep", exp, str(fake), str(tmp_path / "missing.jpg")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "2 image(s) cannot be read" in lines[0]
    assert "fake.jpg" in lines[0] and "missing.jpg (not found)" in lines[0]
