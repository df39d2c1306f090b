"""The README and the docs site say what the code does: every search-space example loads
with the product's own loader, every command example parses with the command's own
parser, stated defaults are the code's, and the site builds in strict mode."""

from __future__ import annotations

import glob
import importlib
import os
import re
import shlex
import subprocess
import sys

import pytest
from conftest import REPO

from tune_food.sweep import spaces

PAGES = [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?:python3? -m (tune_food(?:\.\w+)*)|\btune-food)\b([^'|&;#\n]*)")
# the module of each command whose build_parser() reads its command line
PARSERS = {"sweep": "tune_food.sweep.cli", "report": "tune_food.report",
           "predict": "tune_food.predict", "app": "tune_food.app.cli",
           "data": "tune_food.data.cli", "export": "tune_food.export"}


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _name(path: str) -> str:
    return os.path.relpath(path, REPO)


def test_the_readme_is_a_front_door_not_a_manual():
    size = os.path.getsize(os.path.join(REPO, "README.md"))
    assert size < 10_000, f"README.md is {size} bytes; move details into docs/"


def test_the_readme_commands_are_the_ones_ci_runs():
    readme, ci = _read(os.path.join(REPO, "README.md")), _read(os.path.join(REPO, ".ci", "run"))
    install = 'pip install -e ".[dev]"'
    test = "TUNE_FOOD_DATA_DIR=../shared/data python -m pytest"
    assert f"python -m venv .venv && . .venv/bin/activate && {install}\n" in readme
    assert f"\n{test}\n" in readme
    assert f"\n{install}\n" in ci
    assert f"\n{test}\n" in ci


def yaml_blocks():
    for path in PAGES:
        for i, m in enumerate(FENCE.finditer(_read(path))):
            if m[1] == "yaml":
                yield pytest.param(m[2], id=f"{_name(path)}#{i}")


@pytest.mark.parametrize("text", list(yaml_blocks()))
def test_every_search_space_example_loads(text, tmp_path):
    """Every ``yaml`` block of the README and the docs is a search space the product's
    loader accepts (other YAML, such as cluster files, is shown as files, not blocks)."""
    path = tmp_path / "space.yaml"
    path.write_text(text)
    space = spaces.load_space(str(path))
    assert space.param_space["model"]


def test_the_shipped_spaces_load_and_the_docs_show_them_verbatim():
    shipped = sorted(glob.glob(os.path.join(spaces.default_space_dir(), "*.yaml")))
    assert [os.path.basename(p) for p in shipped] == ["grid.yaml", "optuna.yaml", "seed.yaml"]
    page = _read(os.path.join(REPO, "docs", "search-spaces.md"))
    for path in shipped:
        spaces.load_space(path)
        assert f"<!-- file: search_spaces/{os.path.basename(path)} -->" in page


def command_examples():
    """``(page, module, args)`` of every ``python -m tune_food...`` / ``tune-food ...``
    in a code block or code span of the README and the docs."""
    for path in PAGES:
        text = _read(path)
        code = [m[2] for m in FENCE.finditer(text) if m[1] in ("bash", "")]
        code += INLINE.findall(FENCE.sub("", text))
        for block in code:
            for line in block.replace("\\\n", " ").splitlines():
                for m in COMMAND.finditer(line):
                    args = shlex.split(m[2].replace("...", ""))
                    if len(args) < (1 if m[1] else 2):   # a command named, no example
                        continue
                    yield pytest.param(m[1] or "tune_food", args,
                                       id=f"{_name(path)}: {m[0].strip()[:70]}")


def _parse(module: str, args: list[str]) -> None:
    if module == "tune_food":
        if not args or args[0].startswith("-"):
            return
        module, args = f"tune_food.{args[0]}", args[1:]
    command = module.split(".", 1)[1]
    if command == "sweep":
        from tune_food.sweep.cli import parse_options

        options = parse_options(args)
        if not options.resume:   # a resumed sweep's --grid/--search come from the sweep
            options.check()
        return
    importlib.import_module(PARSERS[command]).build_parser().parse_args(args)


@pytest.mark.parametrize("module, args", list(command_examples()))
def test_every_command_example_parses(module, args):
    try:
        _parse(module, args)
    except SystemExit as exc:   # --help and --version exit 0; an error exits 2
        assert exc.code == 0, f"{module} {shlex.join(args)}"


def test_there_are_command_examples_of_every_command():
    seen = {m.values[0] for m in command_examples()}
    assert {f"tune_food.{c}" for c in ("sweep", "report", "predict", "app", "data",
                                                   "export")} <= seen


def test_the_parameter_table_states_the_code_defaults():
    page = _read(os.path.join(REPO, "docs", "search-spaces.md"))
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", page, re.M))
    assert list(rows) == list(spaces.PARAMS)
    for key, param in spaces.PARAMS.items():
        stated = rows[key].strip().strip("`")
        if param.required:
            assert stated == "required"
        else:
            default = param.default
            expected = ("null" if default is None else str(default).lower()
                        if isinstance(default, bool) else f"{default:g}")
            assert stated == expected, key


def test_the_generated_parts_of_the_pages_are_up_to_date():
    """Each command's --help and each shipped file shown in the docs is what the code
    gives now (``python docs/hooks.py`` refreshes them)."""
    sys.path.insert(0, os.path.join(REPO, "docs"))
    try:
        from hooks import render
    finally:
        sys.path.pop(0)
    stale = [_name(p) for p in PAGES[1:] if render(_read(p)) != _read(p)]
    assert not stale, f"run python docs/hooks.py: {stale} differ from the code"
    assert "usage: python -m tune_food.sweep" in _read(os.path.join(REPO, "docs", "cli.md"))


def test_the_docs_site_builds_strict_with_the_commands_help(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    cli = _read(str(tmp_path / "site" / "cli" / "index.html"))
    for usage in ("usage: tune-food COMMAND", "usage: python -m tune_food.sweep",
                  "usage: python -m tune_food.report", "usage: python -m tune_food.data subset"):
        assert usage in cli
    assert "OPTUNA" not in cli and "at most 4" in cli   # the constant's value, not its name


def _notebook_run():
    """docs/notebook_run.py: how the notebook is executed (for the test and for its page)."""
    sys.path.insert(0, os.path.join(REPO, "docs"))
    try:
        import notebook_run
    finally:
        sys.path.pop(0)
    return notebook_run


@pytest.mark.slow
def test_the_notebook_runs_a_sweep_and_shows_its_leaderboard_plots_and_prediction(
        tmp_path, shared_cache):
    """docs/notebook.ipynb, executed in a Jupyter kernel against the real photos: its
    outputs are the leaderboard table of the sweep it ran (HTML, each trial's row),
    the plots inline (PNG), the best trial's classes for a photo, the exported demo's
    files and the typed error."""
    from conftest import CLASSES, SHARED_DATA

    import pandas as pd

    run = _notebook_run()
    notebook = run.execute(run.NOTEBOOK, str(tmp_path), {
        "TUNE_FOOD_DATA_DIR": SHARED_DATA, "TUNE_FOOD_CACHE_DIR": shared_cache,
        "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))})
    notebook = run.as_shown(notebook)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    shown = [o.data for o in outputs if o.output_type == "execute_result"]
    html = [d["text/html"] for d in shown if "text/html" in d]
    sweep = os.path.join(str(tmp_path), "results")
    names = os.listdir(sweep)
    assert len(names) == 1
    board = pd.read_csv(os.path.join(sweep, names[0], "leaderboard.csv"))
    result_view = html[0]   # the SweepResult's own view
    assert f"sweep {names[0]}</b>: finished, 2 trials" in result_view
    assert all(f"<td>{n}</td>" in result_view for n in board["trial_name"])
    assert 'src="data:image/png;base64,iVBORw0KGgo' in result_view
    assert "<table" in html[1] and all(n in html[1] for n in board["trial_name"])
    assert any("image/png" in d for d in shown)   # the leaderboard plot
    texts = [d.get("text/plain", "") for d in shown]
    best = board.loc[board["rank"] == 1, "trial_name"].iloc[0]
    assert any(t.startswith(f"('{best}'") for t in texts)
    predicted = next(t for t in texts if t.startswith("[('"))
    assert predicted.split("'")[1] in CLASSES
    assert any("'app.py'" in t and "'model.onnx'" in t for t in texts)
    assert any(t == "(<SweepStatus.FINISHED: 'finished'>, 2)" for t in texts)
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SpaceError : " in printed and "parameters.epochz: unknown parameter" in printed
    sweep_cell = next(c for c in notebook.cells if c.source.startswith("result = tune_food.run("))
    progress = [o.text for o in sweep_cell.outputs if o.output_type == "stream"]
    assert len(progress) == 1 and progress[0].count("\n") == 1   # one line, redrawn
    assert progress[0].startswith("sweep finished after ") and "2/2 trials" in progress[0]
