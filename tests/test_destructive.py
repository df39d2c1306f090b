"""A destructive flag touches only what its command made (issue 33): ``--force`` of
``python -m tune_food.export`` and of ``python -m tune_food.data subset`` replaces an
earlier output of the same command (its ``model.json``, its ``manifest.json``) and
refuses everything else (the sweep exported, a results folder, the current folder, a
home folder, a git checkout, the Food-101 copy, a folder of datasets) with one line on
stderr, exit 2, and every file exactly as before. The rule is one function,
:func:`tune_food.common.files.check_replaceable`."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest
from conftest import CLASSES, REPO, shared_dataset

from tune_food.common.files import FOREIGN_MARKERS
from tune_food.export import main as export_main
from tune_food.sweepdir.layout import STATE_FILE


# where ``import onnxruntime`` writes into $HOME by itself (.cache/Microsoft/...: its
# device id), refused or not
ORT_HOME_CACHE = os.path.join("home", ".cache")


def tree(folder) -> dict[str, str]:
    """relative path -> SHA-256 of every file (and link) under ``folder``; folders as
    ``<dir>``, so an emptied or added folder shows too (ONNX Runtime's own
    :data:`ORT_HOME_CACHE` left out)."""
    found = {}
    for root, dirs, files in os.walk(folder):
        if os.path.relpath(root, folder) == os.path.dirname(ORT_HOME_CACHE):
            dirs[:] = [d for d in dirs if d != os.path.basename(ORT_HOME_CACHE)]
        for d in dirs:
            found[os.path.relpath(os.path.join(root, d), folder)] = "<dir>"
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return found


def run(module: str, *args: str, cwd: str = REPO, env: dict | None = None):
    """``python -m module args`` in ``cwd``: the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, PYTHONUNBUFFERED="1",
                                                       **(env or {})), timeout=600)


def refused_here(main, *args: str, cwd: str = REPO, env: dict | None = None):
    """A command's ``main(args)`` in this process, in ``cwd`` with ``env`` laid over the
    environment, for what it refuses (before anything heavy: a new interpreter costs 3 s
    a case); restores both. Returns what :func:`run` returns: returncode, stdout, stderr."""
    from types import SimpleNamespace

    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        os.environ.update(env or {})
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def refused_alone(proc, *words: str) -> None:
    """Exit 2, one stderr line holding ``words``, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(w in lines[0] for w in words), (words, lines[0])
    assert "--force replaces only an earlier output of" in lines[0]


def test_the_rule_knows_a_sweep_folder_by_its_state_file():
    assert FOREIGN_MARKERS[STATE_FILE] == "a sweep folder"


# ------------------------------------------------------------------ export --force

@pytest.mark.slow
def test_export_force_replaces_only_an_earlier_export(small_sweep, tmp_path):
    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = tmp_path / "results"
    sweep = results / "g"
    shutil.copytree(exp, sweep, symlinks=True)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("mine")
    trial_dir = next(e.path for e in os.scandir(sweep) if e.is_dir() and e.name != "plots")
    cases = [   # (--out, cwd, HOME, words of the one line)
        (str(sweep), REPO, None, ["is the sweep this export reads"]),
        (str(results), REPO, None, [f"holds the sweep this export reads ({sweep})"]),
        (".", str(results), None, ["--out . is the current folder"]),
        (str(tmp_path / "plain"), REPO, None, ["has no model.json"]),
        (str(home), REPO, str(home), ["is a home folder"]),
        (trial_dir, REPO, None, ["has no model.json"]),
        (str(tmp_path / "plain" / "notes.txt"), REPO, None, ["is a file, not a folder"]),
    ]
    before = tree(tmp_path)
    for out, cwd, home_env, words in cases:
        done = refused_here(export_main, str(sweep), "--out", out, "--force", cwd=cwd,
                            env={"HOME": home_env} if home_env else None)
        refused_alone(done, *words)
        assert tree(tmp_path) == before, out
    # a new export inside the sweep folder is fine; --force then replaces it, and only it
    demo = sweep / "demo"
    board = pd.read_csv(sweep / "leaderboard.csv")
    first = run("tune_food.export", str(sweep), "--out", str(demo))
    assert first.returncode == 0, first.stderr[-2000:]
    second = board[board["rank"] != 1].iloc[0]
    again = run("tune_food.export", str(sweep), "--trial", str(second["trial_id"]), "--out",
                str(demo), "--force")
    assert again.returncode == 0, again.stderr[-2000:]
    with open(demo / "model.json") as fh:
        assert json.load(fh)["trial"] == second["trial_name"]
    after = {k: v for k, v in tree(tmp_path).items() if not k.startswith("results/g/demo")}
    assert after == before
    # with an export inside it, the sweep folder is still refused
    refused_alone(refused_here(export_main, str(sweep), "--out", str(sweep), "--force"),
                  "is the sweep this export reads")
    # an earlier export that now holds something export does not write (a data root)
    (demo / "data").mkdir()
    (demo / "data" / "photo.jpg").write_bytes(b"mine")
    kept = tree(tmp_path)
    refused_alone(refused_here(export_main, str(sweep), "--out", str(demo), "--force"),
                  "holds data, which python -m tune_food.export does not write")
    assert tree(tmp_path) == kept


# ------------------------------------------------------------------ data subset --force

@pytest.fixture
def food101(tmp_path) -> str:
    """``<tmp>/src/food-101``: Food-101's layout (``images/<class>/<id>.jpg`` symlinks to
    real photos, 6 train and 3 test ids a class, and ``meta/{train,test}.json``)."""
    root = tmp_path / "src" / "food-101"
    meta = {"train": {}, "test": {}}
    for split, n in (("train", 6), ("test", 3)):
        for cls in CLASSES:
            os.makedirs(root / "images" / cls, exist_ok=True)
            folder = os.path.join(shared_dataset(), split, cls)
            files = sorted(os.listdir(folder))[:n]
            for f in files:
                os.symlink(os.path.join(folder, f), root / "images" / cls / f)
            meta[split][cls] = [f"{cls}/{os.path.splitext(f)[0]}" for f in files]
    (root / "meta").mkdir()
    for split, content in meta.items():
        (root / "meta" / f"{split}.json").write_text(json.dumps(content))
    return str(root)


def subset(*args: str, cwd: str = REPO, env: dict | None = None):
    return run("tune_food.data", "subset", "--classes", "pizza,sushi", "--fraction", "0.5",
               *args, cwd=cwd, env=env)


def test_subset_force_replaces_only_an_earlier_subset(food101, tmp_path):
    data = tmp_path / "data"
    made = subset("--food101", food101, "--out", str(data / "sub"))
    assert made.returncode == 0, made.stderr
    sweep = tmp_path / "results" / "g"
    sweep.mkdir(parents=True)
    (sweep / STATE_FILE).write_text("{}")
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("mine")
    checkout = tmp_path / "checkout"   # a git checkout holding a copied subset's manifest
    shutil.copytree(data / "sub", checkout)
    (checkout / ".git").mkdir()
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    holding = tmp_path / "holding"   # an earlier subset that now holds a data root
    shutil.copytree(data / "sub", holding)
    shutil.copytree(data / "sub", holding / "root" / "mine")
    cases = [   # (--out, --food101, cwd, HOME, words of the one line)
        (str(holding), food101, REPO, None,
         ["holds root, which python -m tune_food.data subset does not write"]),
        (food101, food101, REPO, None, ["is the Food-101 copy it reads"]),
        (os.path.dirname(food101), food101, REPO, None,
         [f"holds the Food-101 copy it reads ({food101})"]),
        (str(tmp_path), str(tmp_path / "src"), REPO, None,
         [f"holds the Food-101 copy it reads ({tmp_path / 'src'})"]),
        (str(data), food101, REPO, None, ["has no manifest.json"]),   # a data root
        (".", food101, str(data), None, ["--out . is the current folder"]),
        (str(sweep), food101, REPO, None, ["is a sweep folder (it holds sweep.json)"]),
        (str(tmp_path / "results"), food101, REPO, None, ["has no manifest.json"]),
        (str(home), food101, REPO, str(home), ["is a home folder"]),
        (str(checkout), food101, REPO, None, ["is a git checkout (it holds .git)"]),
        (str(home / "thesis.tex"), food101, REPO, None, ["is a file, not a folder"]),
        # refused before anything is downloaded: no food-101/ appears in the new folder
        (str(data), str(tmp_path / "new"), REPO, None, ["has no manifest.json"]),
    ]
    before = tree(tmp_path)
    for out, source, cwd, home_env, words in cases:
        extra = ("--download",) if source.endswith("new") else ()
        done = subset("--food101", source, "--out", out, "--force", *extra, cwd=cwd,
                      env={"HOME": home_env} if home_env else None)
        refused_alone(done, *words)
        assert tree(tmp_path) == before, out
    # an earlier subset is replaced
    again = subset("--food101", food101, "--out", str(data / "sub"), "--force", "--seed", "3",
                   "--classes", "steak,sushi")
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(data / "sub" / "train")) == ["steak", "sushi"]
    with open(data / "sub" / "manifest.json") as fh:
        assert json.load(fh)["seed"] == 3
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("data/sub")} == \
        {k: v for k, v in before.items() if not k.startswith("data/sub")}
    assert [e for e in os.listdir(data) if e.startswith(".")] == []   # no temporary left
