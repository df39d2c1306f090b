"""The exported demo against in-process ``predict``: latency for one photo, and the size
of each one's environment.

Exports the sweep's trial to ship (the fastest tied with the best; else rank 1) with
``python -m tune_food.export``, installs its ``requirements.txt`` into a fresh virtual
environment (from PyPI, or ``--venv`` to reuse one), starts ``python app.py`` there and
sends real test photos one per request with ``gradio_client``. In the same rounds, the
same photos go through :func:`tune_food.inference.classifier.classify` in this process,
one at a time (the training environment's way to classify). Prints p50 / p95 per photo, their ratio,
and the two environments' sizes on disk (``du``), with the load average.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/demo_latency.py [results/<sweep>]

Issue 24 asks for these figures, not a goal; the demo's own model time (the exported
model and preprocessing in this process, one thread: what ``cpu_ms`` measures) is printed
beside them, so the share of Gradio's HTTP upload and queue is seen.
"""

from __future__ import annotations

import argparse
import glob
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.results.images import test_images  # noqa: E402
from tune_food.sweepdir.state import newest_sweep  # noqa: E402


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def du_mb(path: str) -> float:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ship_trial(sweep: str) -> str | None:
    """The trial the sweep's summary names to ship (None: rank 1)."""
    import pandas as pd

    from tune_food.results.tradeoff import fastest_tied

    row = fastest_tied(pd.read_csv(os.path.join(sweep, "leaderboard.csv")))
    return None if row is None else str(row["trial_name"])


def start_demo(folder: str, venv: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.Popen([os.path.join(venv, "bin", "python"), "app.py"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(env, GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1"))
    for line in proc.stdout:
        if "Running on local URL" in line:
            return proc, f"http://127.0.0.1:{port}"
    raise RuntimeError("the demo did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", help="sweep folder (default: newest under results/)")
    parser.add_argument("--images", type=int, default=30, help="test photos (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both (default 3)")
    parser.add_argument("--venv", help="a virtual environment holding the demo's "
                        "requirements (default: a fresh one, installed from PyPI)")
    args = parser.parse_args()
    sweep = args.sweep or os.path.join(REPO, "results", newest_sweep(os.path.join(REPO, "results")))
    work = tempfile.mkdtemp(prefix="demo-bench-")
    folder = os.path.join(work, "demo")
    trial = ship_trial(sweep)
    subprocess.run([sys.executable, "-m", "tune_food.export", sweep, "--out", folder]
                   + (["--trial", trial] if trial else []), check=True)
    venv = args.venv
    if not venv:
        venv = os.path.join(work, "venv")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "-r",
                        os.path.join(folder, "requirements.txt")], check=True)
        print(f"demo environment installed in {time.perf_counter() - start:.0f} s")
    photos = test_images(sweep)[:args.images]

    import torch
    from gradio_client import Client, handle_file

    from tune_food.demo.preprocess import load_rgb, to_input
    from tune_food.models.deploy import INPUT_NAME, ONNX_FILE, onnx_session
    from tune_food.models.registry import preprocessing
    from tune_food.inference.checkpoints import trial_checkpoint
    from tune_food.inference.classifier import classify, load_classifier

    model, classes = load_classifier(trial_checkpoint(sweep, trial).path)
    proc, url = start_demo(folder, venv)
    try:
        client = Client(url, verbose=False)
        client.predict(handle_file(photos[0]), api_name="/classify")   # warm-up
        classify(model, classes, photos[:1])
        demo_ms, local_ms, model_ms = [], [], []
        session = onnx_session(os.path.join(folder, ONNX_FILE))
        steps = preprocessing(model.model_name)
        for _ in range(args.rounds):
            for photo in photos:
                t = time.perf_counter()
                client.predict(handle_file(photo), api_name="/classify")
                demo_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                classify(model, classes, [photo])
                local_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                session.run(None, {INPUT_NAME: to_input(load_rgb(photo), steps)})
                model_ms.append((time.perf_counter() - t) * 1000)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"sweep {sweep}, trial {trial or 'rank 1'}, {len(photos)} photos x {args.rounds} "
          f"rounds; load average {os.getloadavg()[0]:.2f}")
    print(f"demo (python app.py, ONNX Runtime, HTTP): p50 {statistics.median(demo_ms):.1f} ms, "
          f"p95 {pct(demo_ms, 95):.1f} ms")
    print(f"in-process predict (training env, {torch.get_num_threads()} threads): p50 {statistics.median(local_ms):.1f} ms, "
          f"p95 {pct(local_ms, 95):.1f} ms")
    print(f"the demo's model alone (this process, 1 thread): p50 "
          f"{statistics.median(model_ms):.1f} ms, p95 {pct(model_ms, 95):.1f} ms")
    print(f"ratio demo / predict at p50: {statistics.median(demo_ms) / statistics.median(local_ms):.2f}")
    demo_mb, train_mb = du_mb(venv), du_mb(sys.prefix)
    model_mb = sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, "**"),
                                                         recursive=True) if os.path.isfile(p)) / 1e6
    print(f"environment: demo {demo_mb:.0f} MB (+ the folder {model_mb:.0f} MB) against "
          f"training {train_mb:.0f} MB ({sys.prefix}): {train_mb / demo_mb:.1f}x smaller")
    return 0


if __name__ == "__main__":
    sys.exit(main())
