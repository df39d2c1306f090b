"""Choosing the model to ship and shipping it: the deployment figures a sweep measures,
``plots/tradeoff.png``, ``report --deployment``, and ``python -m tune_food.export``: a
folder that runs in a fresh virtual environment holding only its ``requirements.txt``,
served by ``python app.py`` and driven in a real Chromium and with ``gradio_client``."""

from __future__ import annotations

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, CLASSES, free_port, run_cli, shared_dataset
from PIL import Image

from tune_food.demo.preprocess import load_rgb, to_input
from tune_food.models.registry import MODELS, get_transform, preprocessing


def _real_photos(tmp_path) -> list[str]:
    """Two test photos per class (landscape and portrait among them) and a copy of one
    saved sideways with EXIF orientation 6, as a phone stores it."""
    photos = [p for cls in CLASSES
              for p in sorted(glob.glob(os.path.join(shared_dataset(), "test", cls, "*.jpg")))[:2]]
    with Image.open(photos[0]) as img:
        exif = img.getexif()
        exif[0x0112] = 6
        img.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "sideways.jpg", exif=exif)
    return photos + [str(tmp_path / "sideways.jpg")]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_numpy_preprocessing_equals_the_weights_transform(model, tmp_path, request):
    """Every model of the registry: the demo's Pillow + NumPy preprocessing equals the
    weights' own transform (torchvision's or timm's) to 1e-6 on real photos."""
    from tune_food.data.images import rgb_loader

    if model.startswith("efficientnet_b"):
        request.getfixturevalue("use_torch_home")
    steps = preprocessing(model)
    transform = get_transform(model)
    for photo in _real_photos(tmp_path):
        want = transform(rgb_loader(photo)).numpy()
        got = to_input(load_rgb(photo), steps)
        assert got.shape == (1, *want.shape) and got.dtype == np.float32
        assert np.abs(got[0] - want).max() <= 1e-6, (model, photo)
    assert steps["crop"] == MODELS[model].input_size


# ------------------------------------------------------------------ the sweep's figures

@pytest.mark.slow
def test_a_sweep_measures_its_backbones_and_names_the_trial_to_ship(small_sweep):
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(exp, "sweep.json")) as fh:
        figures = json.load(fh)["deployment"]["efficientnet_lite0"]
    assert 1 < figures["cpu_ms"] < 1000 and figures["threads"] == 1
    assert figures["runtime"].startswith("onnxruntime ") and figures["cpu"]
    # Lite0: 3,371,008 backbone parameters + a 1280 x 3 head with biases
    assert figures["params"] == 3_374_851
    assert 12 < figures["model_mb"] < 16   # float32 weights: 4 bytes a parameter
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    assert (board["cpu_ms"] == figures["cpu_ms"]).all()
    assert (board["model_mb"] == figures["model_mb"]).all()
    assert (board["total_params"] == figures["params"]).all()
    with Image.open(os.path.join(exp, "plots", "tradeoff.png")) as img:
        assert img.width >= 600
    best = board[board["rank"] == 1].iloc[0]["trial_name"]   # one backbone: rank 1 is fastest
    assert f"to ship: the best trial is also the fastest of those tied with it: {best}" \
        in proc.stdout
    assert f"export it: python -m tune_food.export {exp} --trial {best} --out {best}-demo" \
        in proc.stdout
    assert "deployment" in proc.stdout.split("time: ")[1]


def test_the_fastest_tied_trial_is_chosen_and_the_pareto_front_drawn():
    from tune_food.results.tradeoff import fastest_tied, pareto_front

    board = pd.DataFrame({
        "trial_name": ["b2-10", "lite0-10", "lite2-5", "lite0-1"],
        "rank": [1, 2, 3, 4], "test_acc": [0.97, 0.96, 0.95, 0.80],
        "tied_with_best": [True, True, True, False],
        "cpu_ms": [30.0, 12.0, 25.0, 12.0]})
    assert fastest_tied(board)["trial_name"] == "lite0-10"
    assert list(pareto_front(board)["trial_name"]) == ["lite0-10", "b2-10"]
    untied = board.assign(tied_with_best=[True, False, False, False])
    assert fastest_tied(untied)["trial_name"] == "b2-10"
    assert fastest_tied(board.drop(columns="cpu_ms")) is None


@pytest.mark.slow
def test_report_adds_the_figures_to_an_older_sweep_only_when_asked(small_sweep, tmp_path):
    exp = str(tmp_path / "older")
    shutil.copytree(small_sweep[1], exp, symlinks=True)
    state_file = os.path.join(exp, "sweep.json")
    with open(state_file) as fh:
        state = json.load(fh)
    measured = state.pop("deployment")
    with open(state_file, "w") as fh:
        json.dump(state, fh)
    os.remove(os.path.join(exp, "plots", "tradeoff.png"))
    plain = run_cli("tune_food.report", exp)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert f"add them with python -m tune_food.report {exp} --deployment" in plain.stdout
    assert "cpu_ms" not in pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    assert not os.path.exists(os.path.join(exp, "plots", "tradeoff.png"))
    asked = run_cli("tune_food.report", exp, "--deployment")
    assert asked.returncode == 0, asked.stderr[-2000:]
    assert "deployment figures of efficientnet_lite0: " in asked.stdout
    with open(state_file) as fh:
        figures = json.load(fh)["deployment"]["efficientnet_lite0"]
    assert figures["model_mb"] == measured["efficientnet_lite0"]["model_mb"]
    assert figures["params"] == measured["efficientnet_lite0"]["params"]
    # measured once per backbone, weights, CPU, runtime and threads: the sweep's figures
    # are taken again, with when they were measured
    assert figures["reused"] is True
    for key in ("cpu_ms", "measured_at", "cpu", "runtime", "threads", "photo"):
        assert figures[key] == measured["efficientnet_lite0"][key], key
    assert "cpu_ms" in pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    assert os.path.isfile(os.path.join(exp, "plots", "tradeoff.png"))


# ------------------------------------------------------------------ export

@pytest.fixture(scope="module")
def exported(small_sweep, tmp_path_factory) -> str:
    """``python -m tune_food.export <small sweep> --out <tmp>/demo`` (rank 1)."""
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = str(tmp_path_factory.mktemp("export") / "demo")
    done = run_cli("tune_food.export", exp, "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"to {out} (model.onnx" in done.stdout
    return out


def _predict_json(exp: str, photo: str) -> dict[str, float]:
    """``python -m tune_food.predict --sweep exp --json photo``: class -> probability."""
    out = run_cli("tune_food.predict", "--sweep", exp, "--json", "--top-k", "3", photo)
    assert out.returncode == 0, out.stderr[-2000:]
    (row,) = json.loads(out.stdout)["results"]
    return {p["class"]: p["probability"] for p in row["predictions"]}


@pytest.mark.slow
def test_the_exported_folder_is_self_contained_and_agrees_with_predict(exported, small_sweep):
    import onnxruntime as ort

    exp = small_sweep[1]
    assert sorted(os.listdir(exported)) == ["README.md", "app.py", "examples", "model.json",
                                            "model.onnx", "preprocess.py", "requirements.txt"]
    examples = sorted(os.listdir(os.path.join(exported, "examples")))
    assert [e.split("_")[0] for e in examples] == list(CLASSES)
    with open(os.path.join(exported, "model.json")) as fh:
        card = json.load(fh)
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    best = board[board["rank"] == 1].iloc[0]
    assert card["classes"] == list(CLASSES) and card["trial"] == best["trial_name"]
    assert card["preprocessing"] == preprocessing("efficientnet_lite0")
    assert card["model_mb"] == round(os.path.getsize(os.path.join(exported, "model.onnx")) / 1e6, 3)
    assert card["threads"] == 1   # what cpu_ms was measured with, and what app.py uses
    imported = set()   # no tune_food, no PyTorch: what requirements.txt installs, and Python's
    for name in ("app.py", "preprocess.py"):
        with open(os.path.join(exported, name)) as fh:
            for node in ast.walk(ast.parse(fh.read())):
                if isinstance(node, ast.Import):
                    imported |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    imported.add(node.module.split(".")[0])
    assert imported == {"json", "os", "gradio", "onnxruntime", "numpy", "PIL", "preprocess"}
    with open(os.path.join(exported, "app.py")) as fh:
        assert len(fh.read().splitlines()) <= 60   # short enough to read in a minute
    with open(os.path.join(exported, "requirements.txt")) as fh:
        pins = dict(line.strip().split("==") for line in fh)
    assert sorted(pins) == ["gradio", "numpy", "onnxruntime", "pillow"]
    from importlib.metadata import distribution, version

    from packaging.specifiers import SpecifierSet
    assert all(pins[p] == version(p) for p in pins)
    with open(os.path.join(exported, "README.md")) as fh:
        readme = fh.read()
    front = readme.split("---\n")[1]
    assert "sdk: gradio\n" in front and "app_file: app.py\n" in front
    assert f"sdk_version: {version('gradio')}\n" in front
    # the Space runs the Python it was exported with, and every pin installs on it
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f'python_version: "{python}"\n' in front
    needs = {p: distribution(p).metadata.get("Requires-Python") for p in pins}
    assert needs["numpy"] and SpecifierSet(needs["numpy"]).contains("3.11")
    assert not SpecifierSet(needs["numpy"]).contains("3.10")   # why the front matter says it
    assert all(SpecifierSet(n or "").contains(f"{python}.{sys.version_info.micro}")
               for n in needs.values())
    for needle in (f"{best['test_acc']:.3f} (95 % Wilson interval {best['test_acc_ci_low']:.3f}",
                   "ONNX Runtime with intra_op_num_threads = inter_op_num_threads = 1 (as "
                   "`app.py` runs it)",
                   "rank 1 by test_acc (max); the best trial", f"{card['cpu_ms']:.1f} ms per photo",
                   f"trial `{best['trial_name']}`", "lr=0.01", "It knows only pizza, steak, sushi",
                   "`examples/` holds one test photo per class"):
        assert needle in readme, needle
    # the exported graph and its preprocessing, against predict, on a photo the sweep never saw
    photo = sorted(glob.glob(os.path.join(shared_dataset(), "test", "sushi", "*.jpg")))[-1]
    session = ort.InferenceSession(os.path.join(exported, "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (probs,) = session.run(None, {"image": to_input(load_rgb(photo), card["preprocessing"])})
    want = _predict_json(exp, photo)
    assert np.abs(probs[0] - [want[c] for c in card["classes"]]).max() <= 1e-5
    # any batch size
    batch = np.concatenate([to_input(load_rgb(photo), card["preprocessing"])] * 3)
    assert session.run(None, {"image": batch})[0].shape == (3, 3)


def test_requirements_refuse_a_python_a_pin_does_not_support():
    """Every pin is checked against its installed distribution's Requires-Python: on
    Python 3.10 (the Hub's default), onnxruntime and numpy of this environment need 3.11."""
    from importlib.metadata import version

    from tune_food.common.errors import SweepError
    from tune_food.export import requirements

    here = requirements()
    assert here == "".join(f"{p}=={version(p)}\n" for p in
                           ("gradio", "onnxruntime", "numpy", "pillow"))
    with pytest.raises(SweepError) as err:
        requirements("3.10.12")
    assert str(err.value).startswith(f"onnxruntime=={version('onnxruntime')} needs Python "
                                     ">=3.11, not 3.10.12")


# the exported app.py imported as `python /elsewhere/app.py` runs it: its own folder first
# on sys.path, the working folder another one
_APP_ELSEWHERE = """
import json, os, runpy, sys
folder = sys.argv[1]
sys.path.insert(0, folder)
app = runpy.run_path(os.path.join(folder, "app.py"), run_name="elsewhere")
options = app["SESSION"].get_session_options()
examples = [row[0] for row in app["demo"].examples]
print(json.dumps({"cwd": os.getcwd(), "intra": options.intra_op_num_threads,
                  "inter": options.inter_op_num_threads, "examples": examples,
                  "top": [max(p, key=p.get) for p in map(app["classify"], examples)]}))
"""


@pytest.mark.slow
def test_the_demo_finds_its_files_from_another_folder_and_uses_the_cards_threads(
        exported, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", _APP_ELSEWHERE, exported], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False"))
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["cwd"] == str(elsewhere)
    assert (got["intra"], got["inter"]) == (1, 1)   # model.json's threads, as cpu_ms measured
    folder = os.path.join(exported, "examples")
    assert got["examples"] == [os.path.join(folder, f) for f in sorted(os.listdir(folder))]
    assert all(t in CLASSES for t in got["top"]) and len(got["top"]) == len(CLASSES)


def _leftovers(folder: str) -> list[str]:
    return [n for n in os.listdir(folder) if n.startswith(".")]


@pytest.mark.slow
def test_bad_exports_are_one_line_and_leave_nothing(exported, small_sweep, tmp_path):
    exp = small_sweep[1]
    broken = str(tmp_path / "broken")   # rank 1 without its checkpoint, rank 2 unranked
    shutil.copytree(exp, broken, symlinks=True)
    board = pd.read_csv(os.path.join(broken, "leaderboard.csv"))
    first, second = board.iloc[0]["trial_name"], board.iloc[1]["trial_name"]
    board.loc[0, "checkpoint_path"] = None
    board.loc[1, "rank"] = None
    board.to_csv(os.path.join(broken, "leaderboard.csv"), index=False)
    (tmp_path / "a_file").write_text("x")
    cases = [
        ((exp, "--trial", "no-such-trial", "--out", str(tmp_path / "o")), "no trial 'no-such-trial'"),
        ((broken, "--out", str(tmp_path / "o")), f"the best trial {first} of"),
        ((broken, "--trial", second, "--out", str(tmp_path / "o")), "is not ranked"),
        ((exp, "--out", exported), "exists; choose a new folder, or pass --force"),
        ((exp, "--out", str(tmp_path / "a_file" / "demo")), "is not a folder"),
        ((exp, "--out", "/proc/tune_food-demo"), "cannot write into /proc"),
        ((str(tmp_path / "nope"), "--out", str(tmp_path / "o")), "does not exist"),
    ]
    before = sorted(os.listdir(exported))
    for args, message in cases:
        out = run_cli("tune_food.export", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not os.path.exists(tmp_path / "o") and _leftovers(str(tmp_path)) == []
    assert sorted(os.listdir(exported)) == before and _leftovers(os.path.dirname(exported)) == []


@pytest.mark.slow
def test_force_replaces_an_export_with_another_trial(exported, small_sweep, tmp_path):
    exp = small_sweep[1]
    out = str(tmp_path / "demo")
    shutil.copytree(exported, out)
    second = pd.read_csv(os.path.join(exp, "leaderboard.csv")).iloc[1]
    done = run_cli("tune_food.export", exp, "--trial", str(second["trial_id"]), "--out", out,
                   "--force")
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(out, "model.json")) as fh:
        card = json.load(fh)
    assert card["trial"] == second["trial_name"] and card["epoch"] == second["epochs_done"]
    assert _leftovers(str(tmp_path)) == []


# ------------------------------------------------------------------ the demo, deployed

@pytest.fixture(scope="module")
def demo(exported, tmp_path_factory):
    """The exported folder served by ``python app.py`` from a fresh virtual environment
    holding only its requirements.txt (from PyPI); yields its URL."""
    venv = str(tmp_path_factory.mktemp("demo_venv") / "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    pip = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                          "-r", "requirements.txt"], cwd=exported, capture_output=True,
                         text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    port = free_port()
    log = open(tmp_path_factory.mktemp("demo_log") / "app.log", "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    elsewhere = str(tmp_path_factory.mktemp("elsewhere"))   # not the exported folder
    server = subprocess.Popen([os.path.join(venv, "bin", "python"),
                               os.path.join(exported, "app.py")], cwd=elsewhere,
                              stdout=log, stderr=subprocess.STDOUT,
                              env=dict(env, GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
                                       GRADIO_ANALYTICS_ENABLED="False"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while "Running on local URL" not in open(log.name).read():
        if server.poll() is not None or time.time() > deadline:
            server.kill()
            pytest.fail(f"the demo did not start: {open(log.name).read()[-3000:]}")
        time.sleep(0.5)
    yield url
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.mark.slow
def test_the_demo_runs_in_its_own_environment_and_agrees_with_predict(demo, small_sweep,
                                                                       exported, tmp_path):
    import urllib.request

    from gradio_client import Client, handle_file
    from playwright.sync_api import expect, sync_playwright

    exp = small_sweep[1]
    photo = sorted(glob.glob(os.path.join(shared_dataset(), "test", "steak", "*.jpg")))[-1]
    want = _predict_json(exp, photo)
    answer = Client(demo, verbose=False).predict(handle_file(photo), api_name="/classify")
    got = {c["label"]: c["confidence"] for c in answer["confidences"]}
    assert sorted(got) == sorted(want)
    assert max(abs(got[c] - want[c]) for c in want) <= 1e-5
    # started from another folder, it serves its example photos, byte for byte
    config = json.load(urllib.request.urlopen(f"{demo}/config"))
    samples = [row[0] for c in config["components"] if c.get("type") == "dataset"
               for row in c["props"]["samples"]]
    names = sorted(os.listdir(os.path.join(exported, "examples")))
    assert [s["orig_name"] for s in samples] == names
    for sample, name in zip(samples, names):
        with open(os.path.join(exported, "examples", name), "rb") as fh:
            assert urllib.request.urlopen(sample["url"]).read() == fh.read()
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: install Debian's chromium (.ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(demo)
        page.locator("input[type=file]").first.set_input_files(photo)
        page.get_by_role("button", name="Submit").click()
        top = max(want, key=want.get)
        expect(page.locator(".output-class")).to_have_text(top, timeout=60_000)
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        browser.close()
    with Image.open(tmp_path / "demo.png") as img:
        assert img.width == 1280
