"""The web page's latency and throughput against in-process prediction (the floor).

Starts ``python -m tune_food.app`` on a real sweep, sends real test images over HTTP with
``gradio_client`` (one image per request) from 1 client and from 8 concurrent clients,
and prints p50 / p95 latency per request and images/s beside the same images through
:func:`tune_food.inference.classifier.classify` in this process: one at a time (latency
floor) and in batches of 32 (throughput floor). Uses the best EfficientNet-Lite0 trial of the sweep.

    TUNE_FOOD_DATA_DIR=../shared/data python benchmarks/app_latency.py [results/<sweep>]

Goals (issue 12): p50 for one photo within 1.5x of in-process, 8 clients without errors,
throughput within 1.3x of in-process batch prediction. Issue 21: the page's p50 for one
photo over REST at most half of in-process ``predict`` with the backbone in PyTorch
(what predicted before the OpenVINO runtime), measured in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tune_food.app import checkpointed, load_board, wait_until_serving  # noqa: E402
from tune_food.results.images import test_images  # noqa: E402
from tune_food.sweepdir.state import list_sweeps  # noqa: E402


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", nargs="?", help="sweep folder (default: newest under results/)")
    parser.add_argument("--images", type=int, default=40, help="test images used (default 40)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    exp = args.sweep or next((os.path.join("results", n) for n in list_sweeps("results")), None)
    if not exp:
        print("no sweep under results/; run python -m tune_food.sweep --grid first",
              file=sys.stderr)
        return 2
    exp = os.path.abspath(exp)
    rows = checkpointed(load_board(exp).board, exp)
    rows = rows[rows["model"] == "efficientnet_lite0"]
    if rows.empty:
        print(f"{exp} has no EfficientNet-Lite0 trial with a checkpoint", file=sys.stderr)
        return 2
    trial, ckpt = str(rows["trial_id"].iloc[0]), rows["checkpoint"].iloc[0]
    images = test_images(exp)[:args.images]
    print(f"sweep {exp}\ntrial {rows['trial_name'].iloc[0]} ({trial}), {len(images)} test "
          f"images, torch threads {__import__('torch').get_num_threads()}")

    # ---- in process (the floor)
    from tune_food.inference.classifier import classify, load_classifier

    model, classes = load_classifier(ckpt)
    runtime = model.frozen_forward.runtime if model.frozen_forward else "torch"
    pytorch, _ = load_classifier(ckpt)
    pytorch.use_forward(None)   # the backbone in PyTorch eager: the earlier predict
    classify(model, classes, images[:4])  # warm up
    classify(pytorch, classes, images[:4])

    def in_process(net=model):
        single = []
        for p in images:
            t0 = time.perf_counter()
            classify(net, classes, [p])
            single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        classify(net, classes, images, batch_size=32)
        return single, len(images) / (time.perf_counter() - t0)

    # ---- over HTTP
    from gradio_client import Client, handle_file

    port = free_port()
    log = tempfile.TemporaryFile()
    server = subprocess.Popen([sys.executable, "-m", "tune_food.app", exp, "--port", str(port)],
                              cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONPATH=REPO))
    url = f"http://127.0.0.1:{port}"
    sweep = os.path.basename(exp)

    def session(paths):
        """gradio_client, one image per request."""
        client = Client(url, verbose=False)
        client.predict([handle_file(paths[0])], trial, sweep, api_name="/classify")  # warm up
        lat, errors = [], 0
        for p in paths:
            t0 = time.perf_counter()
            try:
                out = client.predict([handle_file(p)], trial, sweep, api_name="/classify")
                errors += not out[3].get("results") or "error" in out[3]["results"][0]
            except Exception as exc:  # any failure counts as an error
                print(f"error: {exc}", file=sys.stderr)
                errors += 1
            lat.append(time.perf_counter() - t0)
        return lat, errors

    def rest_session(paths):
        """Gradio's REST API with httpx: POST /gradio_api/upload, POST
        /gradio_api/call/classify, GET its event stream (no client-side polling)."""
        import httpx

        http = httpx.Client(base_url=url, timeout=120)

        def call(p):
            with open(p, "rb") as fh:
                up = http.post("/gradio_api/upload", files={"files": (os.path.basename(p), fh)})
            data = [[{"path": up.json()[0], "orig_name": os.path.basename(p),
                      "meta": {"_type": "gradio.FileData"}}], trial, sweep]
            eid = http.post("/gradio_api/call/classify", json={"data": data}).json()["event_id"]
            text = http.get(f"/gradio_api/call/classify/{eid}").text
            return "event: complete" in text and '"predictions"' in text

        call(paths[0])
        lat, errors = [], 0
        for p in paths:
            t0 = time.perf_counter()
            try:
                errors += not call(p)
            except Exception as exc:
                print(f"error: {exc}", file=sys.stderr)
                errors += 1
            lat.append(time.perf_counter() - t0)
        return lat, errors

    def noop(_paths):
        """gradio_client calling the page's cheapest endpoint (/log of no sweep): what
        the client and Gradio's queue cost without any work."""
        client = Client(url, verbose=False)
        client.predict("", api_name="/log")
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            client.predict("", api_name="/log")
            lat.append(time.perf_counter() - t0)
        return lat, 0

    def clients(fn, n):
        """(latencies, errors, images/s) of ``n`` concurrent clients."""
        if n == 1:
            t0 = time.perf_counter()
            lat, err = fn(images)
            return lat, err, len(images) / (time.perf_counter() - t0)
        parts = [images[i::n] * 2 for i in range(n)]  # 2 rounds each
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            outs = list(pool.map(fn, parts))
        wall = time.perf_counter() - t0
        lat = [x for part, _ in outs for x in part]
        return lat, sum(e for _, e in outs), (len(lat) + n) / wall  # + each warm-up request

    rows_out: dict[str, list] = {}
    try:
        if not wait_until_serving(url, server):
            log.seek(0)
            print(log.read().decode()[-3000:], file=sys.stderr)
            return 1
        # rounds interleave the floor and the app, so a busy machine affects both alike
        for r in range(args.rounds):
            single, batch_ips = in_process()
            rows_out.setdefault("in-process predict, 1 image", []).append(
                (single, 0, 1 / statistics.median(single)))
            rows_out.setdefault("in-process predict, batch 32", []).append(([], 0, batch_ips))
            single, batch_ips = in_process(pytorch)
            rows_out.setdefault("in-process, PyTorch backbone, 1", []).append(
                (single, 0, 1 / statistics.median(single)))
            lat, _ = noop(None)
            rows_out.setdefault("gradio_client, no-op call", []).append((lat, 0, float("nan")))
            for how, fn in (("gradio_client", session), ("REST (httpx)", rest_session)):
                for n in (1, args.clients):
                    key = f"app, {how}, {n} client{'s' if n > 1 else ''}"
                    rows_out.setdefault(key, []).append(clients(fn, n))
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    finally:
        server.terminate()
        server.wait(30)

    def med(key, what):
        vals = [what(x) for x in rows_out[key]]
        return statistics.median(vals)

    p50 = lambda x: 1000 * statistics.median(x[0]) if x[0] else float("nan")  # noqa: E731
    p95 = lambda x: 1000 * pct(x[0], 95) if x[0] else float("nan")  # noqa: E731
    print(f"\nmedians over {args.rounds} rounds; latency per request of one image "
          "(8-client latency includes waiting in the queue)")
    print(f"{'':34}{'p50 ms':>9}{'p95 ms':>9}{'images/s':>10}{'errors':>8}")
    def cell(v, width):
        return f"{'-':>{width}}" if v != v else f"{v:{width}.1f}"  # NaN: not measured

    for key in rows_out:
        errors = sum(x[1] for x in rows_out[key])
        print(f"{key:34}{cell(med(key, p50), 9)}{cell(med(key, p95), 9)}"
              f"{cell(med(key, lambda x: x[2]), 10)}{errors:8d}")
    floor = med("in-process predict, 1 image", p50)
    before = med("in-process, PyTorch backbone, 1", p50)
    rest = med("app, REST (httpx), 1 client", p50)
    print(f"backbone runtime {runtime}: REST p50 1 client / in-process PyTorch-backbone p50 "
          f"{rest / before:.2f}x (goal <= 0.5x)")
    batch = med("in-process predict, batch 32", lambda x: x[2])
    for how in ("gradio_client", "REST (httpx)"):
        one = med(f"app, {how}, 1 client", p50)
        many = f"app, {how}, {args.clients} clients"
        errors = sum(x[1] for x in rows_out[many])
        print(f"{how}: p50 1 client / in-process 1 image {one / floor:.2f}x (goal <= 1.5x); "
              f"in-process batch / {args.clients} clients images/s "
              f"{batch / med(many, lambda x: x[2]):.2f}x (goal <= 1.3x); "
              f"errors with {args.clients} clients {errors} (goal 0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
