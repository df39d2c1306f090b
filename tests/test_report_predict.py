"""Seeing and using the results: plots, the report CLI, predict with the best model."""

from __future__ import annotations

import glob
import json
import os
import shutil

import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image


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


@pytest.mark.slow
def test_predict_takes_the_newest_sweep_and_a_wrong_name_lists_the_sweeps(
        small_sweep, tiny_root, tmp_path, capsys, monkeypatch):
    """No --sweep or --checkpoint: rank 1 of the newest sweep under ./results, as report
    and the app take it; a sweep folder that does not exist names those that do."""
    from tune_food.predict import main
    from tune_food.report import main as report

    image = sorted(glob.glob(os.path.join(tiny_root, "tiny", "test", "*", "*.jpg")))[0]
    monkeypatch.chdir(tmp_path)
    assert main([image]) == 2
    assert capsys.readouterr().err == ("python -m tune_food.predict: error: no sweep under "
                                       "results; pass --sweep results/<name> or --checkpoint "
                                       "DIR\n")
    _copy_sweep(small_sweep[1], tmp_path / "results" / "older", started="2026-01-01T00:00:00")
    _copy_sweep(small_sweep[1], tmp_path / "results" / "newer", started="2026-02-01T00:00:00")
    assert main([image]) == 0
    assert capsys.readouterr().out.startswith("using rank 1 of results/newer: trial ")
    assert report(["results/nope"]) == 2
    assert capsys.readouterr().err == (
        "python -m tune_food.report: error: sweep folder results/nope does not exist; pass "
        f"results/<name>; sweeps in {tmp_path / 'results'}: newer, older\n")


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

    from tune_food.results.plots import RANK_COLOURS, curves_figure, hidden_twins

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
    from tune_food.results.plots import hidden_twins

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

    from tune_food.results.plots import leaderboard_figure

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


# ------------------------------------------------------------------ report without a sweep

def _copy_sweep(src: str, dest, started: str | None = None, **args) -> str:
    """A copy of sweep ``src`` at ``dest`` (its sweep.json's ``started`` and ``args``
    entries replaced as given)."""
    shutil.copytree(src, dest, symlinks=True)
    state_file = os.path.join(dest, "sweep.json")
    with open(state_file) as fh:
        state = json.load(fh)
    if started:
        state["started"] = started
    state["args"] = dict(state.get("args") or {}, **args)
    with open(state_file, "w") as fh:
        json.dump(state, fh)
    return str(dest)


def _edit_state(exp: str, **entries) -> None:
    """Set ``entries`` in the sweep.json of ``exp``."""
    state_file = os.path.join(exp, "sweep.json")
    with open(state_file) as fh:
        state = json.load(fh)
    state.update(entries)
    with open(state_file, "w") as fh:
        json.dump(state, fh)


def test_the_data_root_is_the_first_place_that_holds_the_sweeps_datasets(tmp_path,
                                                                         monkeypatch):
    """A sweep run with TUNE_FOOD_DATA_DIR (no --data-dir) and read later without it, from
    a folder whose ./data holds other things: its recorded data root is the one that
    holds its datasets (the first run of a new user: report drew no errors.png)."""
    from tune_food.sweepdir.record import SweepState
    from tune_food.sweepdir.state import data_root

    real, elsewhere = tmp_path / "shared", tmp_path / "here"
    (real / "pss" / "train").mkdir(parents=True)
    (elsewhere / "data").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("TUNE_FOOD_DATA_DIR", raising=False)
    state = SweepState("s", "test_acc", "max", args={"data_dir": None}, data_root=str(real),
                       datasets={"pss": {"path": "pss"}})
    assert data_root(state) == str(real)
    monkeypatch.setenv("TUNE_FOOD_DATA_DIR", str(elsewhere / "data"))   # no pss there
    assert data_root(state) == str(real)
    state.data_root = str(tmp_path / "gone")                             # moved machines
    monkeypatch.setenv("TUNE_FOOD_DATA_DIR", str(real))
    assert data_root(state) == str(real)
    monkeypatch.delenv("TUNE_FOOD_DATA_DIR")
    assert data_root(state) == str(elsewhere / "data")   # exists, lacks it: report says so
    bare = SweepState("s", "test_acc", "max")
    assert data_root(bare) == str(elsewhere / "data")
    monkeypatch.chdir(tmp_path)
    assert data_root(bare) is None


@pytest.mark.slow
def test_report_without_a_sweep_takes_the_newest_as_the_app_does(small_sweep, tmp_path,
                                                                  capsys, monkeypatch):
    """No sweep named: report rebuilds the newest under --results-dir (the app's own
    choice, newest_sweep) and says which; none there: one line, exit 2."""
    from tune_food.app.cli import _resolve_sweep
    from tune_food.report import main
    from tune_food.sweepdir.state import newest_sweep

    results = tmp_path / "results"
    old = _copy_sweep(small_sweep[1], results / "old", started="2020-01-01T00:00:00")
    new = _copy_sweep(small_sweep[1], results / "new", started="2021-01-01T00:00:00")
    for exp in (old, new):
        os.remove(os.path.join(exp, "leaderboard.csv"))
    assert newest_sweep(str(results)) == "new"
    assert _resolve_sweep(None, str(results)) == (str(results), "new")   # what the app serves
    assert main(["--results-dir", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"the newest sweep under {results}: {new}"
    assert out[1] == "sweep new: finished"
    assert os.path.isfile(os.path.join(new, "leaderboard.csv"))
    assert not os.path.exists(os.path.join(old, "leaderboard.csv"))   # only the newest
    monkeypatch.chdir(tmp_path / "results" / "old")   # no ./results here
    for argv, message in (([], "no sweep under results; pass results/<name>, or "
                                "--results-dir DIR"),
                          (["--results-dir", old], f"no sweep under {old};"),
                          ([new, "--data-dir", str(tmp_path / "nope")],
                           f"--data-dir {tmp_path / 'nope'} is not a folder")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def _mark_wrong(exp: str, n: int) -> list[str]:
    """Make the rank-1 trial's predictions.csv get its first ``n`` test images wrong;
    returns those images (relative to the data root)."""
    best = pd.read_csv(os.path.join(exp, "leaderboard.csv")).iloc[0]
    csv = os.path.join(exp, best["checkpoint_path"], "predictions.csv")
    preds = pd.read_csv(csv)
    rows = preds.index[preds["split"] == "test"][:n]
    other = {"pizza": "steak", "steak": "sushi", "sushi": "pizza"}
    preds.loc[rows, "predicted"] = preds.loc[rows, "label"].map(other)
    preds.to_csv(csv, index=False)
    return list(preds.loc[rows, "image"])


@pytest.mark.slow
def test_report_says_why_errors_png_is_not_drawn(small_sweep, tiny_root, tmp_path, capsys,
                                                 monkeypatch):
    """The best trial gets test images wrong but report cannot find them: one line names
    where it looked and the fix; with --data-dir it draws errors.png and says nothing."""
    from tune_food.report import main

    gone = str(tmp_path / "moved-away")
    exp = _copy_sweep(small_sweep[1], tmp_path / "results" / "small", data_dir=gone)
    _edit_state(exp, data_root=gone)   # the data root it resolved is gone too
    _mark_wrong(exp, 3)
    errors_png = os.path.join(exp, "plots", "errors.png")
    monkeypatch.delenv("TUNE_FOOD_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)   # no ./data here
    fix = "pass --data-dir DIR (the folder holding the datasets) or set TUNE_FOOD_DATA_DIR"
    assert main([exp]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (f"plots/errors.png not drawn: no data folder found (the sweep's "
                       f"--data-dir {gone}, the sweep's data root {gone}, $TUNE_FOOD_DATA_DIR "
                       f"(not set), ./data: none is a folder); {fix}")
    assert not os.path.exists(errors_png)
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("TUNE_FOOD_DATA_DIR", str(empty))
    assert main([exp]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"plots/errors.png not drawn: the best trial's wrong test images are not under the "
        f"data folder {empty}; {fix}")
    assert main([exp, "--data-dir", tiny_root]) == 0
    out = capsys.readouterr().out
    assert "not drawn" not in out and f"plot: {errors_png}" in out.splitlines()
    with Image.open(errors_png) as img:
        assert img.format == "PNG"


# ------------------------------------------------------------------ the figures' contents

def _board(tied: list) -> pd.DataFrame:
    """A ranked leaderboard of len(tied) trials with these ``tied_with_best`` values."""
    n = len(tied)
    acc = [0.9 - 0.05 * i for i in range(n)]
    return pd.DataFrame({"rank": range(1, n + 1), "trial_name": [f"t{i}" for i in range(n)],
                         "test_acc": acc, "test_acc_ci_low": [a - 0.1 for a in acc],
                         "test_acc_ci_high": [a + 0.05 for a in acc], "test_images": 40,
                         "ranked_by": "test_acc (max)", "tied_with_best": tied})


def test_leaderboard_legend_lists_only_the_kinds_drawn():
    """No trial tied with the best: no "indistinguishable" entry; all tied: no "worse"
    entry; a trial not compared (no predictions) is grey and says so; each entry's colour
    is that of the points of its kind."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from tune_food.results.plots import POINT_KINDS, leaderboard_figure

    best, tied, worse, untested = (POINT_KINDS[k][1] for k in POINT_KINDS)
    cases = {(True, False, False): [best, worse], (True, True, True): [best, tied],
             (True, True, False, None): [best, tied, worse, untested], (True,): [best]}
    for flags, want in cases.items():
        board = _board(list(flags))
        fig = leaderboard_figure(board, list(board["trial_name"]), "s")
        try:
            (legend,) = fig.legends
            assert [t.get_text() for t in legend.get_texts()] == want, flags
            entry = {t.get_text(): to_hex(h.get_color())
                     for t, h in zip(legend.get_texts(), legend.legend_handles)}
            points = [to_hex(c.lines[0].get_color()) for c in fig.axes[0].containers]
            assert set(points) == set(entry.values()), flags
            assert points[0] == entry[best]
        finally:
            plt.close(fig)


def _wrong_predictions(n_wrong: int, n_right: int, missing: int = 0) -> pd.DataFrame:
    """Test-split predictions of real images (relative to the shared data root): the
    first ``n_wrong`` wrong, ``missing`` more wrong ones naming files that do not exist."""
    from conftest import SHARED_DATA, shared_dataset

    images = sorted(glob.glob(os.path.join(shared_dataset(), "test", "*", "*.jpg")))
    images = images[::max(1, len(images) // (n_wrong + n_right))][:n_wrong + n_right]
    labels = [os.path.basename(os.path.dirname(p)) for p in images]
    images = [os.path.relpath(p, SHARED_DATA) for p in images]
    images += [f"pizza_steak_sushi/test/pizza/gone_{i}.jpg" for i in range(missing)]
    labels += ["pizza"] * missing
    wrong = {"pizza": "steak", "steak": "sushi", "sushi": "pizza"}
    predicted = [wrong[l] if i < n_wrong or i >= n_wrong + n_right else l
                 for i, l in enumerate(labels)]
    frame = pd.DataFrame({"split": "test", "image": images, "label": labels,
                          "predicted": predicted})
    for cls in ("pizza", "steak", "sushi"):
        frame[f"prob_{cls}"] = [0.7 if p == cls else 0.15 for p in predicted]
    return frame


def test_errors_figure_has_a_named_tile_per_wrong_image():
    """7 wrong images found (and 1 not): 7 axes in 2 rows of 4, each titled with its file
    name, true and predicted class and probability; the title counts the one not found."""
    import matplotlib.pyplot as plt
    from conftest import SHARED_DATA

    from tune_food.results.plots import errors_figure

    preds = _wrong_predictions(7, 3, missing=1)
    fig = errors_figure(preds, "t0", SHARED_DATA)
    try:
        assert len(fig.axes) == 7
        assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 4)}
        wrong = preds[preds["label"] != preds["predicted"]].head(7)
        titles = [ax.get_title() for ax in fig.axes]
        for title, (_, row) in zip(titles, wrong.iterrows()):
            assert title == (f"{os.path.basename(row['image'])}\ntrue {row['label']}\n"
                             f"pred {row['predicted']} 0.70")
        assert all(ax.get_images() for ax in fig.axes)   # a thumbnail in every tile
        assert fig.get_suptitle() == (f"t0: 7 of the 8 test images it gets wrong "
                                      f"(1 not found under {SHARED_DATA})")
    finally:
        plt.close(fig)
    one = errors_figure(_wrong_predictions(1, 2), "t0", SHARED_DATA)
    try:
        assert len(one.axes) == 1 and one.get_suptitle() == "t0: the 1 test image it gets wrong"
    finally:
        plt.close(one)
    assert errors_figure(_wrong_predictions(0, 3), "t0", SHARED_DATA) is None
    assert errors_figure(_wrong_predictions(2, 1), "t0", None) is None
    assert errors_figure(_wrong_predictions(0, 1, missing=2), "t0", SHARED_DATA) is None


@pytest.mark.slow
def test_an_output_that_cannot_be_written_is_one_warning_and_the_rest_are_written(
        small_sweep, tmp_path):
    """An optional output failing for real (plots/tradeoff.png is a folder here, so
    matplotlib cannot save it): report says so in one warning line naming it, writes the
    leaderboard and the other plots, and leaves the finished sweep finished (issue 33:
    nothing after the trials leaves a sweep "running")."""
    exp = tmp_path / "s"
    shutil.copytree(small_sweep[1], exp, symlinks=True)
    for name in ("leaderboard.csv", "plots/curves.png"):
        os.remove(exp / name)
    os.remove(exp / "plots" / "tradeoff.png")
    os.mkdir(exp / "plots" / "tradeoff.png")
    done = run_cli("tune_food.report", str(exp))
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [x for x in done.stderr.splitlines() if x.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("warning: plots/tradeoff.png failed (IsADirectoryError: ")
    assert warnings[0].endswith("; the other outputs are written")
    assert (exp / "leaderboard.csv").is_file() and (exp / "plots" / "curves.png").is_file()
    assert json.loads((exp / "sweep.json").read_text())["status"] == "finished"
