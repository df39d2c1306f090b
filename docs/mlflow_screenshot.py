"""Take docs/mlflow.png: the MLflow UI of a sweep run with --mlflow, in headless Debian
chromium through Playwright.

    python docs/mlflow_screenshot.py results/mlflow.db grid docs/mlflow.png

`mlflow ui` is not part of mlflow-skinny (no Flask): point $MLFLOW at the `mlflow`
command of an environment with the full package of the same version (e.g.
`python -m venv /tmp/mlflow-ui && /tmp/mlflow-ui/bin/pip install mlflow==3.17.2`).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

db, experiment, out = sys.argv[1:4]
mlflow = os.environ.get("MLFLOW", "/tmp/mlflow-ui/bin/mlflow")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
ui = subprocess.Popen([mlflow, "ui", "--backend-store-uri", f"sqlite:///{os.path.abspath(db)}",
                       "--host", "127.0.0.1", "--port", str(port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                      env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
try:
    base = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            urllib.request.urlopen(base + "/health", timeout=2)
            break
        except OSError:
            time.sleep(1)
    url = f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
    exp_id = json.load(urllib.request.urlopen(url))["experiment"]["experiment_id"]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning",
                  timeout=240000)
        page.wait_for_selector("text=matching runs", timeout=240000)
        page.get_by_role("button", name="Close", exact=True).click()   # the assistant panel
        page.get_by_role("button", name="Columns").click()
        for label in ["Dataset", "Source", "Models", "model", "data", "epochs", "test_acc",
                      "test_loss", "status", "rank"]:   # hide the first three, show the rest
            page.get_by_text(label, exact=True).last.click()
            page.wait_for_timeout(700)
        page.keyboard.press("Escape")
        page.wait_for_timeout(1500)
        page.mouse.click(319, 265)                     # expand the sweep's parent run
        page.wait_for_timeout(1500)
        page.get_by_text("test_acc", exact=True).first.click()   # sort by test_acc
        page.mouse.move(900, 800)
        page.wait_for_timeout(4000)
        page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 1600, "height": 580})
        browser.close()
finally:
    os.killpg(ui.pid, signal.SIGTERM)
    try:
        ui.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(ui.pid, signal.SIGKILL)
