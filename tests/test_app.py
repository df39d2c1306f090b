"""The web page (``python -m tune_food.app``): the real server in a subprocess over a real
small sweep, driven over HTTP with ``gradio_client`` and in a real headless Chromium."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest
from conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    free_port,
    make_subset,
    run_cli,
    shared_dataset,
)
from PIL import Image

from tune_food.app import wait_until_serving

TINY_SPACE = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n"
              "  batch_size: 5\n  lr: 0.01\n")


def pizza_photo() -> str:
    return sorted(glob.glob(os.path.join(shared_dataset(), "test", "pizza", "*.jpg")))[0]


def _log_lines(path, timeout: float = 30.0) -> list[str]:
    """The lines of an app's log once it has one: the page answers HTTP a moment before
    the app prints its serving line (printed when Gradio's launch returns)."""
    deadline = time.time() + timeout
    while True:
        with open(path) as fh:
            lines = fh.read().splitlines()
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.2)


@pytest.fixture(scope="module")
def app_log(tmp_path_factory) -> str:
    """The file that the :func:`app` server's stdout and stderr go to."""
    return str(tmp_path_factory.mktemp("applog") / "app.log")


@pytest.fixture(scope="module")
def app(small_sweep, tiny_root, tmp_path_factory, app_log):
    """``python -m tune_food.app <small sweep>`` on a free port; yields (url, sweep dir)."""
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-2000:]
    spaces = tmp_path_factory.mktemp("spaces")
    (spaces / "tiny.yaml").write_text(TINY_SPACE)
    cache = os.path.join(os.path.dirname(os.path.dirname(exp)), "cache")
    port = free_port()
    log = open(app_log, "w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "tune_food.app", exp, "--port", str(port), "--spaces-dir",
         str(spaces), "--data-dir", tiny_root, "--cache-dir", cache],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}"
    if not wait_until_serving(url, server):
        log.seek(0)
        pytest.fail(f"the app did not start: {log.read()[-3000:]}")
    yield url, exp
    # sweeps started from the page run in their own sessions: end any still running
    from tune_food.app import Launcher

    launcher = Launcher(os.path.dirname(exp), str(spaces))
    for name in launcher.names():
        pid = launcher.pid(name)   # only a live tune_food.sweep process of that name
        if pid is not None:
            os.kill(pid, signal.SIGINT)
            for _ in range(60):
                if launcher.pid(name) is None:
                    break
                time.sleep(0.5)
    server.send_signal(signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


def classify(client, paths, sweep="small", trial=None):
    from gradio_client import handle_file

    return client.predict([handle_file(p) for p in paths], trial, sweep, api_name="/classify")


def _probs(rows):
    return [{p["class"]: p["probability"] for p in r["predictions"]} for r in rows]


def _in_process(exp: str, paths):
    from tune_food.inference.checkpoints import best_checkpoint
    from tune_food.inference.classifier import classify, load_classifier

    model, classes = load_classifier(best_checkpoint(exp).path)
    return classify(model, classes, paths, top_k=len(classes))


# --------------------------------------------------------------------------- CLI

def test_cli_refuses_a_folder_that_is_not_a_sweep_and_an_open_host(tmp_path):
    bad = run_cli("tune_food.app", str(tmp_path))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "is not a tune_food sweep (no sweep.json)" in bad.stderr
    missing = run_cli("tune_food.app", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    open_host = run_cli("tune_food.app", "--host", "0.0.0.0", "--results-dir", str(tmp_path))
    assert open_host.returncode == 2 and len(open_host.stderr.strip().splitlines()) == 1
    assert "--auth USER:PASSWORD" in open_host.stderr and "Traceback" not in open_host.stderr
    bad_auth = run_cli("tune_food.app", "--host", "0.0.0.0", "--auth", "nopassword")
    assert bad_auth.returncode == 2 and "USER:PASSWORD" in bad_auth.stderr


@pytest.mark.slow
def test_auth_is_required_when_given(small_sweep, tmp_path):
    """(Started without a sweep: it serves the newest under --results-dir and says so.)"""
    from gradio_client import Client

    from tune_food.sweepdir.state import newest_sweep

    results = os.path.dirname(small_sweep[1])
    newest = newest_sweep(results)
    port = free_port()
    out = open(tmp_path / "app.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tune_food.app", "--results-dir", results, "--port", str(port),
         "--auth", "cook:s3cret"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until_serving(url, server), "app did not start"
        assert _log_lines(tmp_path / "app.log")[0] == (
            f"serving sweep {os.path.join(results, newest)} (the newest under {results}) at "
            f"{url}/ (Ctrl-C stops)")
        with pytest.raises(Exception, match="credentials were not provided"):
            Client(url, verbose=False)  # no login: the API is closed
        with pytest.raises(ValueError, match="Could not login"):
            Client(url, auth=("cook", "wrong"), verbose=False)
        client = Client(url, auth=("cook", "s3cret"), verbose=False)
        assert classify(client, [pizza_photo()])[0]["label"] == "pizza"
    finally:
        server.terminate()
        server.wait(30)
        out.close()


@pytest.mark.slow
def test_the_app_prints_its_url_and_sweep_and_no_share_hint(app, app_log):
    """One line: the sweep served and the page's address; nothing of Gradio's (its
    "set `share=True`" hint is no use on the command line)."""
    url, exp = app
    lines = _log_lines(app_log)
    text = "\n".join(lines)
    assert lines[0] == f"serving sweep {exp} at {url}/ (Ctrl-C stops)", text
    for gradio_line in ("share=True", "public link", "Running on local URL"):
        assert gradio_line not in text, text


# --------------------------------------------------------------------------- API

@pytest.mark.slow
def test_api_pizza_matches_predict(client, app):
    photo = pizza_photo()
    label, table, note, details = classify(client, [photo])
    assert label["label"] == "pizza"
    got = _probs(details["results"])[0]
    want = _probs(_in_process(app[1], [photo]))[0]
    assert set(got) == {"pizza", "steak", "sushi"}
    for cls, p in want.items():
        assert got[cls] == pytest.approx(p, abs=1e-6)
    assert "ms per image" in note and "trial #1" in note
    assert details["checkpoint"].startswith(app[1])
    assert details["ms_per_image"] > 0


def _bomb_png(path):
    """A PNG whose header claims 40000 x 40000 pixels (1.6 gigapixels) with no data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def _make_bad(kind: str, tmp_path) -> str:
    src = pizza_photo()
    if kind == "not_an_image":
        p = tmp_path / "notes.jpg"
        p.write_text("this is text, not a photo")
    elif kind == "truncated_jpeg":
        p = tmp_path / "truncated.jpg"
        data = open(src, "rb").read()
        p.write_bytes(data[:len(data) // 2])
    elif kind == "bomb_png":
        p = tmp_path / "bomb.png"
        _bomb_png(p)
    elif kind == "empty":
        p = tmp_path / "empty.jpg"
        p.write_bytes(b"")
    return str(p)


BAD_REASONS = {"not_an_image": "cannot identify image file",
               "truncated_jpeg": "truncated",
               "bomb_png": "DecompressionBombError",
               "empty": "empty file (0 bytes)"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(BAD_REASONS))
def test_bad_file_gets_a_message_and_the_rest_an_answer(client, tmp_path, kind):
    bad = _make_bad(kind, tmp_path)
    label, table, note, details = classify(client, [bad, pizza_photo()])
    rows = details["results"]
    assert "error" in rows[0] and BAD_REASONS[kind] in rows[0]["error"], rows[0]
    assert "1 file(s) could not be read as images" in note
    assert os.path.basename(bad) in note
    assert rows[1]["predictions"][0]["class"] == "pizza"   # the good photo still answered
    assert label["label"] == "pizza"
    assert classify(client, [pizza_photo()])[0]["label"] == "pizza"  # still serving


def _odd_mode(kind: str, tmp_path) -> str:
    img = Image.open(pizza_photo())
    if kind == "cmyk":
        p = tmp_path / "cmyk.jpg"
        img.convert("CMYK").save(p, quality=95)
    elif kind == "16bit":
        p = tmp_path / "grey16.png"
        grey = img.convert("L")
        Image.frombytes("I;16", grey.size, bytes(b for v in grey.tobytes() for b in (0, v))) \
            .save(p)
    elif kind == "rgba":
        p = tmp_path / "rgba.png"
        rgba = img.convert("RGBA")
        rgba.putalpha(200)
        rgba.save(p)
    elif kind == "exif_rotated":
        # pixels stored turned by 90 degrees; EXIF orientation 6 tells viewers to turn them back
        p = tmp_path / "rotated.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(p, quality=95, exif=exif)
    return str(p)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cmyk", "16bit", "rgba", "exif_rotated"])
def test_odd_image_modes_get_the_answer_predict_gives(client, app, tmp_path, kind):
    path = _odd_mode(kind, tmp_path)
    with Image.open(path) as img:  # the file really is of that kind
        expected_mode = {"cmyk": "CMYK", "16bit": "I;16", "rgba": "RGBA",
                         "exif_rotated": "RGB"}[kind]
        assert img.mode == expected_mode
    label, table, note, details = classify(client, [path])
    got = _probs(details["results"])[0]
    want = _probs(_in_process(app[1], [path]))[0]
    for cls, p in want.items():
        assert got[cls] == pytest.approx(p, abs=1e-6)
    if kind == "16bit":  # scaled to 8 bits: the same answer as the 8-bit grey photo
        grey8 = tmp_path / "grey8.png"
        Image.open(pizza_photo()).convert("L").save(grey8)
        assert got == pytest.approx(_probs(_in_process(app[1], [str(grey8)]))[0], abs=1e-6)
    else:
        assert label["label"] == "pizza"


@pytest.mark.slow
def test_fifty_files_at_once(client, app):
    photos = sorted(glob.glob(os.path.join(shared_dataset(), "test", "*", "*.jpg")))[:50]
    assert len(photos) == 50
    label, table, note, details = classify(client, photos)
    rows = details["results"]
    assert len(rows) == 50 and len(table["data"]) == 50
    assert [r["image"] for r in rows] == [os.path.basename(p) for p in photos]
    assert all(sum(p["probability"] for p in r["predictions"]) == pytest.approx(1, abs=1e-5)
               for r in rows)
    assert "50 image(s)" in note
    want = _probs(_in_process(app[1], photos[:3]))
    for g, w in zip(_probs(rows[:3]), want):
        assert g == pytest.approx(w, abs=1e-6)


@pytest.mark.slow
def test_upload_over_20_mb_is_refused(client, tmp_path):
    big = tmp_path / "big.jpg"
    data = open(pizza_photo(), "rb").read()
    big.write_bytes(data + b"\0" * (21 * 1024 * 1024))   # a valid JPEG with 21 MB of padding
    with pytest.raises(Exception) as info:
        classify(client, [str(big)])
    assert "413" in str(info.value) or "too large" in str(info.value).lower() \
        or "exceeds" in str(info.value).lower(), str(info.value)
    assert classify(client, [pizza_photo()])[0]["label"] == "pizza"  # still serving


@pytest.mark.slow
def test_sweeps_page_takes_only_space_files_and_safe_names(client, app):
    from gradio_client.exceptions import AppError

    from tune_food.app import Launcher
    from tune_food.common.errors import SweepError

    results = os.path.dirname(app[1])
    before = sorted(os.listdir(results))
    for space in ("../../etc/passwd", "grid"):   # Gradio's own check of the choices
        with pytest.raises(AppError, match="not in the list of choices"):
            client.predict(space, "grid", "ok-name", 1, 1, 0, api_name="/start")
    for name, message in {"../escape": "is not allowed", "small": "exists already",
                          "a b": "is not allowed"}.items():
        msg = client.predict("tiny.yaml", "grid", name, 1, 1, 0, api_name="/start")[0]
        assert msg.startswith("Not started:") and message in msg, msg
    with pytest.raises(AppError, match="less than minimum value 0.1"):
        client.predict("tiny.yaml", "grid", "ok-name", 1, 0, 0, api_name="/start")
    assert "not running" in client.predict("small", api_name="/stop")
    assert "nothing to resume" in client.predict("small", 1, 0, api_name="/resume")
    # the Leaderboard's "Confirm the winner" takes the sweep and the Sweeps page's resources
    with pytest.raises(AppError, match="less than minimum value 0.1"):
        client.predict("small", 0, 0, api_name="/confirm")
    msg = client.predict("../small", 1, 0, api_name="/confirm")
    assert msg.startswith("Not confirmed: no sweep named '../small'"), msg
    assert sorted(os.listdir(results)) == before   # nothing started, nothing written
    # and the same checks below the page, whatever a caller sends
    launcher = Launcher(results, os.path.join(REPO, "search_spaces"))
    with pytest.raises(SweepError, match="unknown space file '../../etc/passwd'"):
        launcher.start("../../etc/passwd", "grid", "ok-name", 1, 1, 0)
    with pytest.raises(SweepError, match="unknown kind"):
        launcher.start("grid.yaml", "rm -rf", "ok-name", 1, 1, 0)
    with pytest.raises(SweepError, match="cpus per trial must be > 0"):
        launcher.start("grid.yaml", "grid", "ok-name", 1, 0, 0)


@pytest.mark.slow
def test_a_sweep_without_checkpoints_says_so(client, app):
    results = os.path.dirname(app[1])
    empty = os.path.join(results, "no-trials-yet")
    os.makedirs(empty, exist_ok=True)
    # the sweep.json of a sweep whose trials have not reported yet
    shutil.copy(os.path.join(app[1], "sweep.json"), os.path.join(empty, "sweep.json"))
    try:
        label, table, note, details = classify(client, [pizza_photo()], sweep="no-trials-yet")
        assert not label and not details
        assert "no checkpoint yet" in note
    finally:
        shutil.rmtree(empty)


@pytest.mark.slow
def test_leaderboard_trial_view_counts_the_wrong_test_images(client, app):
    import pandas as pd

    board = pd.read_csv(os.path.join(app[1], "leaderboard.csv"))
    for _, row in board.iterrows():
        params, curves, gallery, confusion, note = client.predict(
            "small", row["trial_id"], api_name="/trial_view")
        wrong = int(row["test_images"] - row["test_correct"])
        assert note.startswith(f"{wrong} of {int(row['test_images'])} test images wrong"), note
        assert len(gallery) == wrong and params["epochs"] == row["epochs"]
        assert curves is not None and confusion is not None
        for item in gallery:   # "true steak → pizza (0.62)": a wrong answer each
            true, pred = item["caption"].split("true ", 1)[1].split(" (")[0].split(" → ")
            assert true != pred


@pytest.mark.slow
def test_export_returns_the_chosen_trial_as_a_demo_zip(client, app, tmp_path):
    import json
    import zipfile

    import pandas as pd
    from gradio_client.exceptions import AppError

    board = pd.read_csv(os.path.join(app[1], "leaderboard.csv"))
    second = board.iloc[1]   # not rank 1: the trial chosen on the page
    path = client.predict("small", str(second["trial_id"]), api_name="/export")
    top = f"{second['trial_name']}-demo"
    assert os.path.basename(path) == f"{top}.zip"
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        card = json.loads(zf.read(f"{top}/model.json"))
    assert {f"{top}/{n}" for n in ("app.py", "preprocess.py", "model.onnx", "model.json",
                                     "README.md", "requirements.txt")} <= names
    assert sum(n.startswith(f"{top}/examples/") and not n.endswith("/") for n in names) == 3
    assert card["trial"] == second["trial_name"] and card["classes"] == ["pizza", "steak", "sushi"]
    with pytest.raises(AppError, match="no trial 'nope'"):
        client.predict("small", "nope", api_name="/export")


@pytest.mark.slow
def test_trial_view_reads_predictions_csv_and_relative_paths(client, app):
    """A sweep whose leaderboard stores paths relative to the sweep folder and whose
    trials keep a predictions.csv (image, label, predicted, prob_<class>): the page reads
    them instead of predicting."""
    import pandas as pd

    results = os.path.dirname(app[1])
    copy = os.path.join(results, "with-predictions")
    shutil.copytree(app[1], copy, symlinks=True)
    try:
        board = pd.read_csv(os.path.join(copy, "leaderboard.csv"))
        for col in ("checkpoint_path", "logdir"):   # the sweep wrote them relative
            assert not any(os.path.isabs(p) for p in board[col])
        row = board.iloc[0]
        images = sorted(glob.glob(os.path.join(shared_dataset(), "test", "*", "*.jpg")))[:5]
        rows = _in_process(app[1], images)
        preds = pd.DataFrame({
            "split": "test", "image": images, "label": [os.path.basename(os.path.dirname(p)) for p in images],
            # every answer marked wrong on purpose: the page must show what the file says
            "predicted": ["sushi" if "pizza" in p.split(os.sep)[-2] else "pizza"
                          for p in images]})
        for cls in ("pizza", "steak", "sushi"):
            preds[f"prob_{cls}"] = [{q["class"]: q["probability"] for q in r["predictions"]}[cls]
                                    for r in rows]
        preds.to_csv(os.path.join(copy, row["checkpoint_path"], "predictions.csv"), index=False)
        params, curves, gallery, confusion, note = client.predict(
            "with-predictions", row["trial_id"], api_name="/trial_view")
        assert note.startswith("5 of 5 test images wrong") and "predictions.csv" in note, note
        assert len(gallery) == 5 and curves is not None
        label, table, cnote, details = classify(client, [pizza_photo()], "with-predictions")
        assert details["checkpoint"].startswith(copy)   # the relative checkpoint path, resolved
    finally:
        shutil.rmtree(copy)


@pytest.mark.slow
def test_every_image_table_has_real_headers(client, app):
    """The Classify page's "every image" table, as the page first shows it (Gradio's
    config), after a classification and after a refused request, and the leaderboard
    before it loads: named columns, never Gradio's default 1 2 3."""
    import json
    import urllib.request

    from tune_food.app.classify import PER_IMAGE_COLUMNS

    url, _ = app
    with urllib.request.urlopen(f"{url}/config", timeout=30) as response:
        config = json.load(response)
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
    headers = ["image", "top class", "probability", "all classes"]
    assert list(PER_IMAGE_COLUMNS) == headers
    assert props["per-image"]["value"]["headers"] == headers
    assert props["board"]["value"]["headers"] == ["rank", "trial", "status"]
    photo = pizza_photo()
    label, table, note, details = classify(client, [photo])
    assert table["headers"] == headers
    assert table["data"][0][:2] == [os.path.basename(photo), "pizza"]
    label, table, note, details = classify(client, [])
    assert note.startswith("Drop one or more photos") and table["headers"] == headers
    assert table["data"] == []


def test_display_board_shows_the_columns_a_sweep_has():
    import pandas as pd

    from tune_food.app import display_board

    board = pd.DataFrame({
        "rank": [1, 2], "trial_id": ["a", "b"], "trial_name": ["x", "y"],
        "status": ["TERMINATED", "EARLY_STOPPED"], "ranked_by": ["test_acc (max)"] * 2,
        "model": ["efficientnet_lite0"] * 2, "data": ["d"] * 2, "epochs": [5, 10],
        "lr": [1e-3, 1e-3], "seed": [0, 1], "test_acc": [0.9333, 0.88],
        "test_acc_ci_low": [0.85, 0.79], "test_acc_ci_high": [0.97, 0.93],
        "p_vs_best": [1.0, 0.2891], "tied_with_best": [True, True], "epochs_done": [5, 3],
        "epochs_planned": [5, 10]})
    shown = display_board(board)
    assert list(shown.columns) == ["rank", "trial", "status", "model", "data", "epochs", "seed",
                                   "test_acc", "test_acc 95% CI", "p_vs_best",
                                   "tied_with_best", "epochs_done", "epochs_planned"]
    assert shown["test_acc 95% CI"].tolist() == ["0.850 – 0.970", "0.790 – 0.930"]
    older = display_board(board.drop(columns=["p_vs_best", "tied_with_best", "epochs_done",
                                              "epochs_planned"]))
    assert "p_vs_best" not in older and list(older["status"]) == ["TERMINATED", "EARLY_STOPPED"]


@pytest.mark.slow
def test_a_running_sweep_is_rebuilt_from_its_trial_folders(app, tmp_path):
    """A sweep whose sweep.json says running and that has no leaderboard.csv yet (its
    state mid-run): the page's board comes from the trial folders, through report's
    load_results + make_leaderboard, and equals the board the sweep wrote at its end;
    the sweep folder is not written to."""
    import json

    import pandas as pd

    from tune_food.app import load_board

    exp = tmp_path / "results" / "running"
    shutil.copytree(app[1], exp, symlinks=True)
    final = pd.read_csv(exp / "leaderboard.csv")
    os.remove(exp / "leaderboard.csv")
    shutil.rmtree(exp / "plots")
    state = json.loads((exp / "sweep.json").read_text())
    (exp / "sweep.json").write_text(json.dumps(dict(state, status="running")))
    before = sorted(os.listdir(exp))
    board = load_board(str(exp), plots_cache=str(tmp_path / "plots"))
    assert board.live and board.state.status == "running"
    assert list(board.board["trial_id"]) == list(final["trial_id"])
    assert list(board.board["test_acc"]) == pytest.approx(list(final["test_acc"]))
    assert {"confusion.png", "curves.png", "leaderboard.png"} <= \
        {os.path.basename(p) for p in board.plots}
    assert all(p.startswith(str(tmp_path / "plots")) for p in board.plots)
    assert sorted(os.listdir(exp)) == before


# --------------------------------------------------------------------------- browser

@pytest.mark.slow
def test_real_browser_classify_leaderboard_and_a_sweep(app, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    url, exp = app
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.locator("#photos input[type=file]").set_input_files(pizza_photo())
        page.click("#classify-btn")
        expect(page.locator("#top")).to_contain_text("pizza", timeout=60_000)
        expect(page.locator("#classify-note")).to_contain_text("ms per image")
        page.screenshot(path=str(tmp_path / "classify.png"), full_page=True)
        top = page.locator("#top h2, #top .output-class").first.inner_text().strip()
        assert top == "pizza"

        page.get_by_role("tab", name="Leaderboard").click()
        # the small sweep's two trials: a header row and two data rows
        expect(page.locator("#board [role=grid]")).to_have_attribute("aria-rowcount", "3",
                                                                      timeout=30_000)
        expect(page.locator("#board [role=row]")).to_have_count(3)
        expect(page.locator("#board [role=row]").nth(1)).to_contain_text("TERMINATED")
        expect(page.locator("#board-head")).to_contain_text("small")
        expect(page.locator("#tradeoff img")).to_be_visible()
        page.click("#export-btn")
        expect(page.locator("#export-file a")).to_have_attribute(
            "href", re.compile(r"-demo\.zip$"), timeout=120_000)
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

        page.get_by_role("tab", name="Sweeps").click()
        page.locator("#name textarea, #name input").first.fill("from-browser")
        page.click("#start")
        expect(page.locator("#sweep-msg")).to_contain_text("Started sweep", timeout=30_000)
        row = page.locator("#sweeps [role=row]", has_text="from-browser")
        expect(row).to_contain_text("finished", timeout=180_000)
        expect(page.locator("#log textarea")).to_have_value(re.compile("sweep finished after"))
        page.screenshot(path=str(tmp_path / "sweeps.png"), full_page=True)
        browser.close()
    hosts = {u.split("/")[2] for u in requests if u.startswith(("http:", "https:", "ws"))}
    assert hosts == {url.split("/")[2]}, hosts   # offline: nothing but the app itself
    for name in ("classify.png", "leaderboard.png", "sweeps.png"):
        with Image.open(tmp_path / name) as img:
            assert img.width == 1280 and img.height >= 600
    state = os.path.join(os.path.dirname(exp), "from-browser", "sweep.json")
    import json

    assert json.load(open(state))["status"] == "finished"


LONG_SWEEP = "grid-efficientnet-lite-all-data-2025-01-01"   # 41 characters
LONG_TRIAL = "efficientnet_lite2-pizza_steak_sushi_20_percent-{}_epochs-lr=0.001-batch_size=32"
#: how much of a picker's text shows, and where its arrow is (Gradio draws the arrow
#: over the input's right end)
FIT_JS = """e => { const i = e.querySelector('input'), a = e.querySelector('.icon-wrap');
  const s = getComputedStyle(i);
  return {value: i.value, overflow: i.scrollWidth - i.clientWidth,
          textEnd: i.getBoundingClientRect().right - parseFloat(s.paddingRight),
          arrow: a.getBoundingClientRect().left}; }"""


def _long_named_copy(exp: str) -> str:
    """A copy of sweep ``exp`` under a long name, its trials under long names; returns
    the copy's path."""
    import pandas as pd

    copy = os.path.join(os.path.dirname(exp), LONG_SWEEP)
    shutil.copytree(exp, copy, symlinks=True)
    board = pd.read_csv(os.path.join(copy, "leaderboard.csv"))
    board["trial_name"] = [LONG_TRIAL.format(e) + f"_{i:05d}" for i, e in
                           zip(board.index, board["epochs"])]
    board.to_csv(os.path.join(copy, "leaderboard.csv"), index=False)
    return copy


@pytest.mark.slow
def test_real_browser_pickers_show_long_names_whole(app):
    """A 41-character sweep name and its 90-character trial names show whole in the
    sweep picker and in both trial pickers, their text ending before the arrow."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import expect, sync_playwright

    url, exp = app
    copy = _long_named_copy(exp)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            sweep = page.locator("#sweep input")
            sweep.fill(LONG_SWEEP)
            sweep.press("Enter")
            expect(page.locator("#trial input")).to_have_value(
                re.compile(r"^#1 efficientnet_lite2-pizza_steak_sushi_20_percent-"),
                timeout=30_000)
            fits = {sel: page.locator(sel).evaluate(FIT_JS) for sel in ("#sweep", "#trial")}
            page.get_by_role("tab", name="Leaderboard").click()
            expect(page.locator("#board-trial input")).to_have_value(
                re.compile(r"^#1 efficientnet_lite2-"), timeout=30_000)
            fits["#board-trial"] = page.locator("#board-trial").evaluate(FIT_JS)
            browser.close()
    finally:
        shutil.rmtree(copy)
    assert fits["#sweep"]["value"] == LONG_SWEEP
    assert len(fits["#trial"]["value"]) > 100, fits   # the name and its metric
    for sel, fit in fits.items():
        assert fit["overflow"] <= 0, (sel, fit)              # the whole text shows
        assert fit["textEnd"] <= fit["arrow"], (sel, fit)    # none of it under the arrow


@pytest.mark.slow
def test_stop_and_resume_a_sweep_started_from_the_page(tmp_path, tiny_root, shared_cache):
    """Stop = SIGINT to the driver: the sweep ends "interrupted" (exit 130); Resume
    continues it to "finished" with every trial complete."""
    import pandas as pd

    from tune_food.app import Launcher

    spaces = tmp_path / "spaces"
    spaces.mkdir()
    (spaces / "long.yaml").write_text(
        "parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 400\n"
        "  batch_size: 4\nseeds: [0, 1, 2, 3]\n")
    launcher = Launcher(str(tmp_path / "results"), str(spaces), tiny_root, shared_cache)
    name = launcher.start("long.yaml", "grid", "long", None, 1, 0)
    deadline = time.time() + 300
    while "[1/4]" not in launcher.log(name) and time.time() < deadline:
        assert launcher.alive(name), launcher.log(name)
        time.sleep(0.5)
    launcher.stop(name)
    proc = launcher.procs[name]
    assert proc.wait(timeout=60) == 130, launcher.log(name)
    assert launcher.status(name) == "interrupted"
    board = pd.read_csv(tmp_path / "results" / name / "leaderboard.csv")
    assert (board["status"] != "TERMINATED").any()
    launcher.resume(name, 1, 0)
    assert launcher.procs[name].wait(timeout=600) == 0, launcher.log(name)
    assert launcher.status(name) == "finished"
    board = pd.read_csv(tmp_path / "results" / name / "leaderboard.csv")
    assert (board["status"] == "TERMINATED").all() and (board["epochs_done"] == 400).all()


def test_test_images_of_a_sweep_with_a_united_test_set(tmp_path):
    """The default grid tests every trial on two datasets' test splits united (a list in
    ``test_data``), and ``sweep.json`` names datasets relative to the data root: the
    page's example images are that united set, each distinct image once, found from any
    working directory."""
    import json

    from tune_food.results.images import test_images

    root = tmp_path / "data"
    make_subset(str(root / "a"), {"train": 2, "test": 2})
    make_subset(str(root / "b"), {"train": 2, "test": 3})   # holds a's 2 test images + 1
    exp = tmp_path / "results" / "grid"
    exp.mkdir(parents=True)
    state = {"name": "grid", "metric": "test_acc", "mode": "max",
             "args": {"data_dir": str(root)},
             "datasets": {"a": {"path": "a"}, "b": {"path": "b"}},
             "space": {"parameters": {"data": {"grid_search": ["a", "b"]},
                                      "test_data": ["a", "b"]}}}
    (exp / "sweep.json").write_text(json.dumps(state))
    images = test_images(str(exp))
    assert len(images) == 9                                  # 3 classes x 3 distinct images
    assert all(p.startswith(str(root / "a" / "test")) for p in images if "/a/" in p)
    assert sum("/b/test/" in p for p in images) == 3         # b's one extra image per class
    assert test_images(str(exp), {"data": "a", "test_data": None}) == sorted(
        str(p) for p in (root / "a" / "test").glob("*/*"))


@pytest.mark.slow
def test_more_images_than_one_request_takes_are_refused_with_the_limit(client):
    """MAX_IMAGES photos in one request are classified; one more is a message naming the
    limit, with nothing classified, and the page keeps serving."""
    from tune_food.app.classify import MAX_IMAGES

    label, table, note, details = classify(client, [pizza_photo()] * (MAX_IMAGES + 1))
    assert note == (f"{MAX_IMAGES + 1} files at once; at most {MAX_IMAGES} per request: "
                    "send them in parts.")
    assert not (details or {}).get("results")
    label, table, note, details = classify(client, [pizza_photo()] * MAX_IMAGES)
    assert len(details["results"]) == MAX_IMAGES and f"{MAX_IMAGES} image(s)" in note
    assert label["label"] == "pizza"
