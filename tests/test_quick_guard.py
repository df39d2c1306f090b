"""The quick tier's guard (conftest.py): a test without the slow or ray_up mark that
starts Ray, a sweep subprocess or a browser fails, with a message that says what to do;
the same test marked slow runs unchanged. Shown on a pytest run of deliberately bad
tests in a subprocess (Ray is refused before it starts, so this test stays quick)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from xml.etree import ElementTree

import pytest
from conftest import REPO, started_by

BAD_TESTS = '''
import subprocess, sys, threading

import pytest


def test_starts_ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False)


def test_starts_a_ray_cluster():
    from ray.cluster_utils import Cluster

    Cluster(initialize_head=True, head_node_args={"num_cpus": 1})


def test_starts_ray_in_a_thread_that_swallows_the_failure():
    def start():
        import ray

        try:
            ray.init(address="local", num_cpus=1, include_dashboard=False)
        except BaseException:
            pass

    t = threading.Thread(target=start)
    t.start()
    t.join()


def test_runs_a_dry_run_as_a_process():
    subprocess.run([sys.executable, "-m", "tune_food.sweep", "--grid", "--dry-run"])


def test_runs_the_console_command_in_a_shell():
    subprocess.run("tune-food sweep --grid --dry-run | head -2", shell=True)


def test_starts_a_browser():
    subprocess.run(["/usr/bin/chromium", "--headless", "--version"])


def test_asks_the_sweep_for_help():
    proc = subprocess.run([sys.executable, "-m", "tune_food.sweep", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout


@pytest.mark.slow
def test_marked_slow_runs_a_sweep_process():
    proc = subprocess.run([sys.executable, "-m", "tune_food.sweep", "--grid",
                           "--cpus-per-trial", "two"], capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid float value" in proc.stderr
'''

REFUSED = {
    "test_starts_ray": "a quick test may not start Ray (ray._private.node.Node",
    "test_starts_a_ray_cluster": "a quick test may not start Ray (ray._private.node.Node",
    "test_starts_ray_in_a_thread_that_swallows_the_failure":
        "a quick test may not start Ray (ray._private.node.Node",
    "test_runs_a_dry_run_as_a_process": "a quick test may not start a sweep subprocess",
    "test_runs_the_console_command_in_a_shell": "a quick test may not start a sweep subprocess",
    "test_starts_a_browser": "a quick test may not start a browser",
}


def test_the_guard_fails_a_quick_test_that_starts_ray_a_sweep_or_a_browser(tmp_path):
    shutil.copy(os.path.join(REPO, "tests", "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text(textwrap.dedent("""\
        [pytest]
        markers =
            slow: runs a real Ray sweep
            ray_up: a ray up cluster
        """))
    (tmp_path / "test_bad.py").write_text(BAD_TESTS)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--junitxml", "report.xml", "test_bad.py"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, RAY_USAGE_STATS_ENABLED="0"))
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "6 failed, 2 passed" in proc.stdout, proc.stdout[-3000:]
    failed = {case.get("name"): case.find("failure").get("message")
              for case in ElementTree.parse(tmp_path / "report.xml").iter("testcase")
              if case.find("failure") is not None}
    assert set(failed) == set(REFUSED), failed
    for name, message in REFUSED.items():
        assert message in failed[name], failed[name]
        assert "mark it @pytest.mark.slow or test the logic in-process" in failed[name]
    # refused before it started: no Ray instance came up
    assert "Started a local Ray instance" not in proc.stdout + proc.stderr

@pytest.mark.parametrize("argv,what", [
    ([sys.executable, "-m", "tune_food.sweep", "--grid"], "a sweep subprocess"),
    ([sys.executable, "-m", "tune_food", "sweep", "--resume", "--name", "x"], "a sweep subprocess"),
    (["/venv/bin/tune-food", "sweep", "--grid", "--dry-run"], "a sweep subprocess"),
    (f"{sys.executable} -m tune_food.sweep --grid --dry-run | head -2", "a sweep subprocess"),
    ("cd /x && tune-food sweep --grid", "a sweep subprocess"),
    ([sys.executable, "-m", "tune_food.sweep", "--help"], None),
    (["tune-food", "sweep", "--version"], None),
    ([sys.executable, "-m", "tune_food.report", "results/x"], None),
    ([sys.executable, "-m", "tune_food", "app", "--port", "0"], None),
    (["tune-food", "--help"], None),
    (["/usr/bin/chromium", "--headless"], "a browser"),
    (["/root/.cache/ms-playwright/node", "cli.js", "run-driver"], "a browser"),
    (["/venv/lib/python3.12/site-packages/ray/core/src/ray/raylet/raylet", "--x"], "Ray"),
    (["/venv/.../ray/core/src/ray/gcs/gcs_server", "--x"], "Ray"),
    (["ray", "start", "--head"], "Ray"),
    (["ray", "up", "-y", "cluster.yaml"], "Ray"),
    (["ray", "--version"], None),
    (["git", "status"], None),
    ([sys.executable, "-c", "print('tune_food.sweep')"], None),
    ([sys.executable, "-c", "import ray; ray.init(address='local'); print('x')"], "Ray"),
    ([sys.executable, "-c", "from tune_food.sweep.ray_start import start_ray; start_ray(None)"],
     "Ray"),
    ([sys.executable, "-c", "import ray; print(ray.__version__)"], None),
])
def test_what_the_guard_calls_starting_ray_a_sweep_or_a_browser(argv, what):
    assert started_by(argv) == what
