"""A wheel works like a clone: built from this checkout, installed without the checkout on
``sys.path``, run from an unrelated folder. The test environment supplies the
dependencies (``pip install --no-deps --target``), so torch is not installed again."""

from __future__ import annotations

import csv
import glob
import os
import subprocess
import sys

import pytest
import tomllib
from conftest import REPO

# every test runs the installed wheel's commands as programs, the sweep among them
pytestmark = pytest.mark.slow

VERSION = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))["project"]["version"]


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    """(the folder the wheel was installed into, the wheel file)."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist"), REPO], check=True, capture_output=True)
    (wheel,) = glob.glob(str(tmp / "dist" / "tune_food-*.whl"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), wheel], check=True, capture_output=True)
    return site, wheel


def _run(site, args, cwd, python=sys.executable, timeout=600, **env):
    """``args`` (a console command of the install, or ``-m module ...``) from ``cwd`` with
    only the install on PYTHONPATH (the checkout is neither the cwd nor on the path)."""
    cmd = [str(site / "bin" / args[0]), *args[1:]] if args[0] == "tune-food" else [python, *args]
    full_env = dict(os.environ, PYTHONPATH=str(site), PYTHONUNBUFFERED="1", **env)
    full_env.pop("TUNE_FOOD_DATA_DIR", None)
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_wheel_holds_the_shipped_spaces_and_the_console_command(wheel_site, tmp_path):
    import zipfile

    site, wheel = wheel_site
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(f for f in os.listdir(os.path.join(REPO, "search_spaces"))
                     if f.endswith((".yaml", ".py")))
    assert sorted(n.rsplit("/", 1)[1] for n in names
                  if n.startswith("tune_food/search_spaces/")) == shipped
    assert "tune_food/data/manifests/pizza_steak_sushi.json" in names
    proc = _run(site, ["tune-food", "--version"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"tune_food {VERSION} from {site / 'tune_food'} (Python ")
    proc = _run(site, ["-m", "tune_food.sweep", "--version"], cwd=tmp_path)
    assert f"from {site / 'tune_food'} " in proc.stdout
    # errors and usage name the command as typed
    proc = _run(site, ["tune-food", "sweep", "--grid", "--bogus"], cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (2, "tune-food sweep: error: unrecognized "
                                                 "arguments: --bogus (see --help)\n")
    proc = _run(site, ["tune-food", "report", "nope"], cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (2, "tune-food report: error: sweep folder nope "
                                                 "does not exist; pass results/<name>\n")
    assert _run(site, ["tune-food", "predict", "--help"], cwd=tmp_path).stdout.startswith(
        "usage: tune-food predict ")


def test_the_default_grid_dry_run_and_a_tiny_grid_run_from_a_wheel(wheel_site, tmp_path,
                                                                     default_grid_root,
                                                                     tiny_root):
    site, _ = wheel_site
    proc = _run(site, ["tune-food", "sweep", "--grid", "--dry-run", "--data-dir",
                       default_grid_root, "--results-dir", str(tmp_path / "results")],
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(   # Ray starts while the sweep is planned
        f"starting a local Ray ...\nsearch space: "
        f"{site / 'tune_food' / 'search_spaces' / 'grid.yaml'}  ")
    assert "8 trials:" in proc.stdout
    space = tmp_path / "tiny.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n")
    proc = _run(site, ["tune-food", "sweep", "--grid", "--space", "tiny.yaml", "--data-dir",
                       tiny_root, "--results-dir", "results", "--cache-dir", "cache",
                       "--name", "w"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "results" / "w" / "leaderboard.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["status"], row["rank"], row["test_images"]) == ("TERMINATED", "1", "12")


def test_a_python_without_the_dependencies_is_one_line(wheel_site, tmp_path):
    """The wheel alone in a virtual environment with nothing else installed: every
    command names what is missing, one line, exit 2 (not an ImportError traceback)."""
    site, _ = wheel_site
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bare = str(venv / "bin" / "python")
    # the wheel's own metadata is what the check reads: put it where that Python sees it
    proc = _run(site, ["-m", "tune_food", "sweep", "--grid", "--dry-run"], cwd=tmp_path,
                python=bare)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("python -m tune_food.sweep: error: tune_food's dependencies are "
                           "not installed as it needs: ")
    for name in ("ray", "torch", "torchvision", "pandas", "packaging"):
        assert f"{name} (needs " in line
    assert line.endswith('reinstall tune_food: pip install -e ".[dev]" in a clone, '
                         "or pip install tune_food")
    proc = _run(site, ["-m", "tune_food", "--version"], cwd=tmp_path, python=bare)
    assert proc.returncode == 0
    assert "torch missing, torchvision missing, ray missing)" in proc.stdout
