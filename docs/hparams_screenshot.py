"""Screenshot TensorBoard's HParams table of a sweep into docs/hparams.png.

    python docs/hparams_screenshot.py results/hp_demo [docs/hparams.png]

Serves the sweep with a real ``tensorboard`` on a free local port, opens its HParams
dashboard in headless Chromium (Playwright; ``/usr/bin/chromium`` when present, else
Playwright's own) and saves the table view. Used for the README's picture.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(logdir: str, out: str = "docs/hparams.png") -> int:
    from playwright.sync_api import sync_playwright

    port = free_port()
    tb = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
                           "--host", "127.0.0.1", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        chromium = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 2100, "height": 500},
                                    device_scale_factor=1)
            page.goto(f"{url}/#hparams", wait_until="networkidle")
            page.wait_for_timeout(6000)   # the dashboard fetches the experiment, then sessions
            page.screenshot(path=out)
            browser.close()
    finally:
        tb.terminate()
        tb.wait(timeout=30)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
