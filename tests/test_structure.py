"""Structural checks of the package (docs/architecture.md): the folders are layers and
imports flow downward only, no cycle, library modules import at the top, the map in
docs/architecture.md is the real import graph, how long functions get, and that the CLIs
answer without loading Ray or torch.

Run them alone with ``python -m pytest tests/test_structure.py`` (a few seconds)."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

PACKAGE = Path(__file__).resolve().parent.parent / "tune_food"
REPO = PACKAGE.parent
MAX_FUNCTION_LINES = 60

#: the layers, bottom first: a module may import its own layer and the ones below
LAYERS = [
    ["common", "moved", "demo"],
    ["data"],
    ["models"],
    ["sweepdir"],
    ["features"],
    ["train"],
    ["results"],
    ["inference"],
    ["sweep"],
    ["predict", "report", "export"],
    ["api"],
    ["app"],
    ["__main__", "__init__"],
]
#: command-line modules (and the package root, whose API names load on first use): the only
#: ones whose imports of the package may sit inside
#: functions (so that --help answers before Ray, torch or pandas load)
CLI_MODULES = {"__main__", "__init__", "report", "predict", "export", "sweep.run", "sweep.__main__", "sweep.cli",
               "data.cli", "data.__main__", "app.cli", "app.__main__"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    """``tune_food/sweep/plan.py`` -> ``sweep.plan``; a package's ``__init__`` is the
    package's own name (``sweep``), the root's ``__init__``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


NAMES = {_name(p) for p in _modules()}


def _imports(path: Path, package: list[str] | None = None,
             tree: ast.Module | None = None) -> list[tuple[str, ast.AST]]:
    """(module of the package imported, node) for every import of ``path``, relative
    imports resolved against ``package`` (default: the package ``path`` is in);
    ``from tune_food.x import y`` counts as importing ``x.y`` when that is a module."""
    package = package or list(path.relative_to(REPO).parent.parts)
    found = []
    for node in ast.walk(tree or ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            if base == "tune_food" or base.startswith("tune_food."):
                short = base[len("tune_food."):] if base != "tune_food" else ""
                for a in node.names:
                    sub = f"{short}.{a.name}".strip(".")
                    found.append((sub if sub in NAMES else short or "__init__", node))
        elif isinstance(node, ast.Import):
            found += [(a.name[len("tune_food."):], node) for a in node.names
                      if a.name.startswith("tune_food.")]
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in _modules():
        me = _name(path)
        graph[me] = {m for m, _ in _imports(path) if m != me and m}
    return graph


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_module_belongs_to_a_layer_and_imports_flow_downward():
    against = [f"{m} -> {d}" for m, deps in sorted(_graph().items()) for d in sorted(deps)
               if _layer(d) > _layer(m)]
    assert against == []


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [m, d]) if d in stack
                              else f"{m} -> {d}")
            elif d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert cycles == []


def test_library_modules_import_the_package_at_the_top():
    lazy = []
    for path in _modules():
        me = _name(path)
        if me in CLI_MODULES:
            continue
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        lazy += [f"{me}:{node.lineno} imports {m}" for m, node in _imports(path, tree=tree)
                 if id(node) not in top]
    assert lazy == []


#: what says why an import sits inside a function: ``# lazy: <the reason>`` on its line, or
#: on the first line of its block of imports or in the comment just above the block
#: (docs/architecture.md, "Rules")
LAZY_REASON = re.compile(r"#\s*lazy:\s*\S")


def unexplained_function_imports(path: Path) -> list[str]:
    """``module:line imports x`` for each import inside a function of ``path`` (standard
    library, third-party or the package's own) without a ``# lazy:`` reason on its line,
    on the first line of the block of imports it belongs to, or just above that block."""
    text = path.read_text()
    lines, tree = text.splitlines(), ast.parse(text)
    inside = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef,
                                                                ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        for body in (v for v in vars(node).values() if isinstance(v, list)):
            block: list[ast.stmt] = []
            for stmt in body + [None]:
                if isinstance(stmt, (ast.Import, ast.ImportFrom)) and id(stmt) in inside:
                    block.append(stmt)
                    continue
                if block:
                    said = bool(LAZY_REASON.search(lines[block[0].lineno - 1]))  # its first line
                    i = block[0].lineno - 2   # or the comment lines just above
                    while i >= 0 and lines[i].strip().startswith("#") and not said:
                        said, i = bool(LAZY_REASON.search(lines[i])), i - 1
                    own = [s for s in block if any(LAZY_REASON.search(lines[i - 1])
                                                   for i in range(s.lineno, s.end_lineno + 1))]
                    found += [f"{_name(path)}:{s.lineno} imports "
                              f"{getattr(s, 'module', None) or s.names[0].name}"
                              for s in block if not said and s not in own]
                block = []
    return found


def test_every_import_inside_a_function_says_why():
    """Imports sit at the top of a module, except where a ``# lazy:`` comment says why:
    an optional dependency, a command's ``--help`` speed (measured), Ray not installed
    where a module also runs, or a real cycle. Every import counts: the standard
    library's, third-party and the package's own."""
    assert [i for p in _modules() for i in unexplained_function_imports(p)] == []


def test_the_wheel_lists_every_package_folder():
    packages = tomllib.load(open(REPO / "pyproject.toml", "rb"))["tool"]["setuptools"]["packages"]
    folders = {".".join(p.relative_to(REPO).parts) for p in PACKAGE.rglob("*")
               if p.is_dir() and p.name != "__pycache__"}
    assert set(packages) == folders | {"tune_food", "tune_food.search_spaces"}


def _architecture_table() -> dict[str, set[str]]:
    """The module table of docs/architecture.md: module -> the modules it imports."""
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([\w.]+)` \| [^|]+ \| ([^|]*) \|$", text, re.M)
    return {m: set(re.findall(r"`([\w.]+)`", deps)) for m, deps in rows}


def test_the_architecture_map_lists_every_module_with_its_real_imports():
    table, graph = _architecture_table(), _graph()
    assert sorted(table) == sorted(graph), "modules missing from or extra in the map"
    wrong = {m: (sorted(table[m]), sorted(graph[m])) for m in graph if table[m] != graph[m]}
    assert wrong == {}


def test_no_function_is_longer_than_60_lines():
    long = [f"{p.relative_to(REPO)}:{n.lineno} {n.name} "
            f"({n.end_lineno - n.lineno + 1} lines)"
            for p in _modules() for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted("
                          "m for m in ('ray', 'torch', 'pandas', 'gradio', 'tune_food.sweep.run') "
                          "if m in sys.modules)))"],
                         capture_output=True, text=True, timeout=120,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_predict_imports_no_ray():
    assert "ray" not in _loaded_after("import tune_food.predict")


@pytest.mark.parametrize("module", ["tune_food.report", "tune_food.predict", "tune_food.export",
                                    "tune_food.app.cli",
                                    "tune_food.data.cli", "tune_food.sweep.cli",
                                    "tune_food.__main__"])
def test_the_clis_parse_before_loading_anything_heavy(module):
    """Each command's module imports its heavy modules after parsing."""
    assert _loaded_after(f"import {module}") == set(), module


def test_python_m_tune_food_data_hands_over_before_importing_torch():
    """``python -m tune_food.data subset ...`` runs :mod:`tune_food.data.cli` without the
    DataLoader module (torch) (here: an argument error, exit 2)."""
    code = ("import runpy, sys\nsys.argv = ['data', 'subset']\ntry:\n"
            "    runpy.run_module('tune_food.data', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    assert exc.code == 2, exc.code")
    assert _loaded_after(code) == set()


def test_the_sweep_parser_loads_neither_ray_nor_torch_nor_pandas():
    """What makes ``--help`` and an argument error answer in well under a second
    (benchmarks/cli_latency.py measures it)."""
    assert _loaded_after("from tune_food.sweep.cli import parse_options\n"
                         "parse_options(['--grid', '--cpus-per-trial', '2'])") == set()


def test_older_module_paths_still_load_what_older_sweeps_pickled():
    """A sweep saved before the folders moved names ``tune_food.trainable.train_food``
    and the like in its ``tuner.pkl``: they load (tune_food/moved.py); without the
    forwarding they would not."""
    code = ("import pickle, sys, tune_food\n"
            "f = pickle.loads(b'ctune_food.trainable\\ntrain_food\\n.')\n"
            "assert f.__module__ == 'tune_food.train.trainable', f.__module__\n"
            "from tune_food.features import FeatureSet\n"
            "assert FeatureSet.__module__ == 'tune_food.features.extract'\n"
            "from tune_food.moved import MOVED, MovedModules\n"
            "import importlib\n"
            "for old, new in MOVED.items():\n"
            "    assert importlib.import_module(old) is importlib.import_module(new), old\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, MovedModules)]\n"
            "del sys.modules['tune_food.search']\n"
            "try:\n    importlib.import_module('tune_food.search')\nexcept ImportError:\n"
            "    print('gone without it')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gone without it"


# ------------------------------------------------ the sweep folder's words have one owner

def _literals(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of every string constant of ``path`` that is no docstring
    (f-strings' constant parts included)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def _spelled_outside(words: set[str], owners: set[str],
                     allowed: dict[str, set[str]] | None = None) -> list[str]:
    """``module:line 'word'`` of each of ``words`` written as a string outside the
    ``owners`` (module names) and the ``allowed`` (module -> words) exceptions."""
    allowed = allowed or {}
    return [f"{_name(p)}:{line} {text!r}" for p in _modules() if _name(p) not in owners
            for line, text in _literals(p)
            if text in words and text not in allowed.get(_name(p), set())]


def test_status_words_are_spelled_only_in_sweepdir_status():
    """``running`` ... ``failed`` (sweep.json) and ``TERMINATED`` ... ``ERROR`` (the
    leaderboard): every other module uses ``SweepStatus`` / ``TrialStatus``."""
    from tune_food.sweepdir.status import SweepStatus, TrialStatus

    words = {s.value for s in SweepStatus} | {s.value for s in TrialStatus}
    # Ray's own logging level, not a trial's status (ray.init(logging_level=...)); the
    # record's key "finished" (when the sweep ended), not the status
    allowed = {"sweep.ray_start": {"ERROR"}, "sweepdir.record": {"finished"}}
    assert _spelled_outside(words, {"sweepdir.status"}, allowed) == []


#: sweep.json keys that are also words of other formats (a leaderboard column, a
#: SweepOptions flag, Ray's or MLflow's names): checked where they index a sweep's record
SHARED_KEYS = {"name", "metric", "mode", "status", "space", "args", "error", "trials",
               "started", "finished", "resume", "sweep", "at", "to", "from", "added",
               "configs", "backbone_runtime", "mlflow", "warm_start", "allow_leakage",
               "warnings", "data_root", "datasets", "validation", "deployment"}


def _state_keys() -> set[str]:
    """Every key of sweep.json, from its record (tune_food.sweepdir.record)."""
    import dataclasses

    from tune_food.sweepdir import record

    keys = set()
    for part in (record.SweepState, record.Planned, record.Extension, record.WarmStart):
        keys |= {record._KEY.get(f.name, f.name) for f in dataclasses.fields(part)}
    return keys - {"unknown"}


def test_sweep_json_keys_are_spelled_only_in_its_record():
    """A key only sweep.json has (``planned``, ``extended``, ``test_sets``, ...) written
    as a string outside :mod:`tune_food.sweepdir.record` fails; so does any key of it
    indexing something named ``state`` (``state["metric"]``, ``state.get("status")``)."""
    keys = _state_keys()
    assert {"planned", "extended", "schema_version", "space_file"} <= keys
    owners = {"sweepdir.record"}
    found = _spelled_outside(keys - SHARED_KEYS, owners)
    for path in _modules():
        if _name(path) in owners:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            target, key = None, None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                target, key = node.value, node.slice.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("get", "pop", "setdefault") and node.args and \
                    isinstance(node.args[0], ast.Constant):
                target, key = node.func.value, node.args[0].value
            name = ast.unparse(target) if target is not None else ""
            if key in keys and (name == "state" or name.endswith((".state", "_state"))):
                found.append(f"{_name(path)}:{node.lineno} {name}[{key!r}]")
    assert found == []


def test_the_sweep_folders_file_names_are_spelled_only_in_sweepdir_layout():
    """``sweep.json``, ``leaderboard.csv``, ``checkpoint.pt``, Ray's ``progress.csv``,
    ``result.json``, ``params.json``, ``error.txt`` ...: named in sweepdir/layout.py,
    imported everywhere else."""
    from tune_food.sweepdir import layout

    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)
             and re.fullmatch(r"[\w-]+\.(json|csv|parquet|pt|txt|png|yaml|lock|db)", v)}
    assert {"sweep.json", "checkpoint.pt", "progress.csv", "result.json", "params.json",
            "error.txt", "leaderboard.csv"} <= names
    # common is below sweepdir: its one marker of a sweep folder (check_replaceable's
    # refusal to replace one) cannot import the name
    allowed = {"common.files": {"sweep.json"}}
    assert _spelled_outside(names, {"sweepdir.layout"}, allowed) == []


#: columns of the leaderboard that are common words, used by other formats as well
COMMON_COLUMN_WORDS = {"rank", "status", "error", "epoch"}


def _column_words() -> set[str]:
    """The leaderboard's own columns that are no common word (trial_name, logdir, ...)."""
    from tune_food.sweepdir import columns

    return {v for k, v in vars(columns).items() if k.isupper() and isinstance(v, str)
            } - COMMON_COLUMN_WORDS


def test_the_leaderboards_columns_are_spelled_only_in_sweepdir_columns():
    """``trial_name``, ``epochs_done``, ``checkpoint_path``, ``tied_with_best`` ...: named in
    sweepdir/columns.py, imported everywhere else (the words that are also common,
    ``rank``, ``status``, ``error``, ``epoch``, are constants there too, but not held by
    this rule: other formats use them as well)."""
    words = _column_words()
    assert {"trial_name", "trial_id", "epochs_done", "checkpoint_path", "tied_with_best",
            "p_vs_best", "ranked_by", "logdir"} <= words
    # the exported demo's app.py runs without tune_food: it reads model.json's cpu_ms itself
    allowed = {"demo.app": {"cpu_ms"}}
    assert _spelled_outside(words, {"sweepdir.columns", "models.figures"}, allowed) == []


MAX_PARAMETERS = 6
#: functions over MAX_PARAMETERS today: a debt to pay (issue 35's launch object paid
#: sweep.launch's six), not a licence; the test fails on any other, and on one of these
#: that grows
OVER_MAX_PARAMETERS = {
    "features/extract.py:assemble_feature_set": 11, "features/extract.py:extract_features": 9,
    "features/extract.py:extract_images": 8, "features/extract.py:fingerprint": 7,
    "features/tasks.py:compute_feature_sets": 8, "data/loaders.py:make_dataloaders": 9,
    "sweep/plan.py:_scan_dataset": 9, "train/trainable.py:_image_data": 9,
    "train/trainable.py:prepare": 8, "train/trainable.py:train_food": 8,
    "data/cli.py:subset": 7,
}


def test_no_function_takes_more_than_6_parameters():
    """Parameters (``self``/``cls`` aside, ``*args``/``**kwargs`` one each) of every
    function: more than 6 is a bundle that wants to be an object."""
    over = {}
    for p in _modules():
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = n.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                count = len(names) - (names[:1] in (["self"], ["cls"])) + \
                    (a.vararg is not None) + (a.kwarg is not None)
                if count > MAX_PARAMETERS:
                    over[f"{p.relative_to(PACKAGE)}:{n.name}"] = count
    assert {k: v for k, v in over.items() if v > OVER_MAX_PARAMETERS.get(k, MAX_PARAMETERS)} == {}
