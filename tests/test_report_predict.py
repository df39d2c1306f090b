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


def test_predict_checkpoint_not_found(capsys, tmp_path):
    """--checkpoint naming a folder that does not exist: one line "not found", exit 2."""
    from tune_food.predict import main

    image = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(image)
    code = main(["--checkpoint", str(tmp_path / "no_such_checkpoint"), str(image)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("python -m tune_food.predict: error: checkpoint ")
    assert "no_such_checkpoint not found" in err[0] and "Traceback" not in err[0]


@pytest.mark.slow
def test_curves_colour_by_rank_and_dash_hidden_twins(small_sweep):
    """curves.png's figure: rank 1 in the first (strongest) rank colour and thickest, not
    grey; the 1-epoch trial, whose curve is the 2-epoch trial's first epoch (same seed,
    same batches), dashed with a note naming its twin."""
    from matplotlib.colors import to_hex

    from tune_food.plots import RANK_COLOURS, curves_figure, hidden_twins

    proc, exp = small_sweep
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    results = pd.read_csv(os.path.join(exp, "results.csv"))
    one = board.loc[board["epochs"] == 1, "trial_id"].item()
    two = board.loc[board["epochs"] == 2, "trial_id"].item()
    assert hidden_twins(board, results) == {one: (two, 1)}
    fig = curves_figure(board, results, list(board["trial_name"]))
    try:
        for ax in fig.axes:
            lines = {line.get_label(): line for line in ax.get_lines()}
            best = next(line for label, line in lines.items() if label.startswith("#1 "))
            second = next(line for label, line in lines.items() if label.startswith("#2 "))
            assert to_hex(best.get_color()) == RANK_COLOURS[0] != to_hex(second.get_color())
            assert best.get_linewidth() > second.get_linewidth()
            rank_one = int(board.index[board["trial_id"] == one][0]) + 1
            hidden = best if rank_one == 1 else second
            shown = second if rank_one == 1 else best
            assert hidden.get_linestyle() == "--" and shown.get_linestyle() == "-"
            rank_two = int(board.index[board["trial_id"] == two][0]) + 1
            assert f"same curve as #{rank_two} up to epoch 1" in hidden.get_label()
            assert hidden.get_zorder() > shown.get_zorder()   # drawn over its twin
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_hidden_twins_need_identical_curves():
    """A shorter trial whose curve differs from the longer one's is no twin."""
    from tune_food.plots import hidden_twins

    board = pd.DataFrame({"trial_id": ["a", "b"]})
    results = pd.DataFrame({"trial_id": ["a", "a", "a", "b", "b"], "epoch": [1, 2, 3, 1, 2],
                            "test_acc": [0.5, 0.6, 0.7, 0.5, 0.6],
                            "test_loss": [1.0, 0.9, 0.8, 1.0, 0.9]})
    assert hidden_twins(board, results) == {"b": ("a", 2)}
    results.loc[4, "test_loss"] = 0.85
    assert hidden_twins(board, results) == {}


@pytest.mark.slow
def test_leaderboard_is_points_with_whiskers(small_sweep):
    """leaderboard.png's figure: one errorbar (point + Wilson whiskers) per ranked trial
    at its test accuracy, no bars."""
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from tune_food.plots import leaderboard_figure

    proc, exp = small_sweep
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    fig = leaderboard_figure(board, list(board["trial_name"]), "small")
    try:
        ax = fig.axes[0]
        bars = [c for c in ax.containers if not isinstance(c, ErrorbarContainer)]
        points = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert bars == [] and not ax.patches and len(points) == len(board)
        xs = sorted(float(c.lines[0].get_xdata()[0]) for c in points)
        assert xs == pytest.approx(sorted(board["test_acc"]))
        lows = sorted(float(c.lines[2][0].get_segments()[0][0][0]) for c in points)
        assert lows == pytest.approx(sorted(board["test_acc_ci_low"]))
    finally:
        plt.close(fig)
