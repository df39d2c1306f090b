"""Structural checks of the package (docs/architecture.md): what imports what, how long
functions get, and that the CLIs answer without loading Ray or torch.

Run them alone with ``python -m pytest tests/test_structure.py`` (a few seconds)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tune_food"
MAX_FUNCTION_LINES = 60


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _imported(path: Path, package: list[str] | None = None) -> list[tuple[str, ast.AST]]:
    """(module imported, node) for every import in ``path``, relative ones resolved
    against ``package`` (default: the package ``path`` is in, ``tune_food`` or a
    subpackage)."""
    package = package or list(path.relative_to(PACKAGE.parent).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            found += [(base, node)] + [(f"{base}.{a.name}", node) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names]
    return found


def _in_main_block(tree: ast.Module, node: ast.AST) -> bool:
    for top in tree.body:
        if isinstance(top, ast.If) and "__main__" in ast.unparse(top.test):
            if any(n is node for n in ast.walk(top)):
                return True
    return False


def test_only_the_entry_point_imports_the_cli():
    """``tune_food.sweep`` is the program; ``tune_food.cli`` its parser. No library
    module imports either (the program imports the library, never the other way)."""
    offenders = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        for name, node in _imported(path):
            if name not in ("tune_food.sweep", "tune_food.cli"):
                continue
            if path.name == "sweep.py" and name == "tune_food.cli":
                continue   # the entry point parses its command line
            if not _in_main_block(tree, node):
                offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert offenders == []


def test_no_function_is_longer_than_60_lines():
    long = [f"{p.relative_to(PACKAGE.parent)}:{n.lineno} {n.name} "
            f"({n.end_lineno - n.lineno + 1} lines)"
            for p in _modules() for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted("
                          "m for m in ('ray', 'torch', 'pandas', 'gradio', 'tune_food.sweep') "
                          "if m in sys.modules)))"],
                         capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_predict_imports_no_ray():
    assert "ray" not in _loaded_after("import tune_food.predict")


def test_the_other_clis_parse_before_loading_anything_heavy():
    """``report``, ``predict`` and ``app`` import their heavy modules after parsing."""
    for module in ("tune_food.report", "tune_food.predict", "tune_food.app.cli",
                   "tune_food.datacli"):
        assert _loaded_after(f"import {module}") == set(), module


def test_python_m_tune_food_data_hands_over_before_importing_torch():
    """``python -m tune_food.data subset ...`` runs :mod:`tune_food.datacli` from the top
    of ``data.py``, before the DataLoader module imports torch (here: an argument error,
    exit 2)."""
    code = ("import runpy, sys\nsys.argv = ['data', 'subset']\ntry:\n"
            "    runpy.run_module('tune_food.data', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    assert exc.code == 2, exc.code")
    assert _loaded_after(code) == set()


def test_the_sweep_parser_loads_neither_ray_nor_torch_nor_pandas():
    """What makes ``--help`` and an argument error answer in well under a second
    (benchmarks/cli_latency.py measures it)."""
    assert _loaded_after("from tune_food.cli import parse_options\n"
                         "parse_options(['--grid', '--cpus-per-trial', '2'])") == set()


def test_the_checker_sees_a_long_function_and_a_cli_import(tmp_path):
    """The two AST checks above can fail: fed a module that breaks both rules, they
    report it."""
    bad = tmp_path / "bad.py"
    bad.write_text("from .cli import parse_options\n\ndef f():\n" + "    x = 1\n" * 61)
    assert "tune_food.cli" in [n for n, _ in _imported(bad, ["tune_food"])]
    assert "tune_food.app.cli" in [n for n, _ in _imported(bad, ["tune_food", "app"])]
    tree = ast.parse(bad.read_text())
    fn = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)][0]
    assert fn.end_lineno - fn.lineno + 1 == 62 > MAX_FUNCTION_LINES
