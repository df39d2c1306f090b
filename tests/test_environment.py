"""The environment check: an install that cannot run tune_food is one line naming the
versions and the fix, exit 2, before anything heavy runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomllib
from conftest import REPO, run_sweep

from tune_food.common import environment as env


def test_the_python_floor_is_the_one_pyproject_declares():
    declared = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))
    assert declared["project"]["requires-python"] == ">=" + ".".join(map(str, env.MIN_PYTHON))
    assert env.python_problem((3, 10, 0)) is None
    assert env.python_problem((4, 0, 0)) is None
    problem = env.python_problem((3, 9, 18))
    assert problem == (f"tune_food needs Python >= 3.10, this is Python 3.9.18 "
                       f"({sys.executable}): make the virtual environment with python3.10 "
                       "or newer")


@pytest.mark.parametrize("torch, torchvision", [
    ("2.14.1", "0.29.1"), ("2.14.1+cpu", "0.29.1+cpu"), ("2.2.0", "0.17.2"),
    ("2.0.1", "0.15.2"), ("2.13.0", "0.28.0"), (None, "0.29.1"), ("2.14.1", None)])
def test_torch_and_torchvision_that_belong_together(torch, torchvision):
    assert env.torchvision_problem(torch, torchvision) is None


def test_torch_and_torchvision_from_different_releases():
    assert env.torchvision_problem("2.14.1", "0.28.0") == (
        "torch 2.14.1 and torchvision 0.28.0 do not belong together (torch 2.14 needs "
        "torchvision 0.29.*): pip install 'torchvision==0.29.*' (or 'torch==2.13.*'), from "
        "the same index as torch (e.g. --index-url https://download.pytorch.org/whl/cpu)")
    assert "(torch 2.13 needs torchvision 0.28.*)" in env.torchvision_problem("2.13.0+cpu",
                                                                              "0.29.0")


def test_this_environment_passes_and_lists_its_versions():
    env.check_environment(("torch", "torchvision"))
    assert env.requirement_problems() == []
    line = env.version_string()
    assert line.startswith(f"tune_food {env.installed_version('tune_food')} from "
                           f"{os.path.join(REPO, 'tune_food')} (Python {sys.version.split()[0]}")
    assert f"torch {env.installed_version('torch')}," in line


@pytest.fixture(scope="module")
def old_torchvision(tmp_path_factory):
    """A real torchvision 0.28.0 (built for torch 2.13) installed into a folder that is
    put before this environment's packages: what a CPU-only install from the wrong index
    leaves. Downloaded from PyPI once (pip caches it)."""
    tmp = tmp_path_factory.mktemp("tv028")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                           "--target", str(tmp), "torchvision==0.28.0"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"needs PyPI to fetch torchvision 0.28.0: {proc.stderr}"
    return str(tmp)


@pytest.mark.slow   # the sweep as a program, with an old torchvision on its path
def test_a_mismatched_torchvision_ends_the_sweep_with_one_line(old_torchvision, tmp_path):
    proc = run_sweep("--grid", "--dry-run", "--results-dir", str(tmp_path),
                     env={"PYTHONPATH": old_torchvision}, cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 2
    torch = env.installed_version("torch")
    minor = int(torch.split(".")[1])
    assert proc.stderr == (
        f"python -m tune_food.sweep: error: torch {torch} and torchvision 0.28.0 do not "
        f"belong together (torch 2.{minor} needs torchvision 0.{minor + 15}.*): pip install "
        f"'torchvision==0.{minor + 15}.*' (or 'torch==2.13.*'), from the same index as torch "
        "(e.g. --index-url https://download.pytorch.org/whl/cpu)\n")
    assert not os.listdir(tmp_path)   # nothing written


def test_a_torchvision_that_cannot_import_is_named_with_the_versions(old_torchvision):
    """The import itself, checked by the commands that need it: the real error of this
    mismatch (``operator torchvision::nms does not exist``) with the versions and fix."""
    code = ("from tune_food.common.environment import _import_problem; "
            "print(_import_problem('torchvision'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=old_torchvision), timeout=120)
    assert proc.stdout.strip() == (
        "import torchvision failed (RuntimeError: operator torchvision::nms does not exist) "
        f"with torch {env.installed_version('torch')}, torchvision 0.28.0: reinstall torch "
        "and torchvision together from one index, e.g. pip install --force-reinstall torch "
        "torchvision")
