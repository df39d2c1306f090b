"""Is this Python environment one tune_food can run in? Checked by every CLI before
anything heavy runs, so a broken install is one line naming the versions and the fix
instead of a traceback from deep inside a sweep.

* :func:`python_problem`: the Python version (``requires-python`` in ``pyproject.toml``).
* :func:`torchvision_problem`: torch and torchvision from different releases. Every
  torchvision release is built against exactly one torch release; since torch 2.0 the
  pairs are torch ``2.N`` / torchvision ``0.(N + 15)`` (the table in torchvision's README,
  "Installation"). A mismatch fails at ``import torchvision`` with errors such as
  ``operator torchvision::nms does not exist``, which do not point at the install.
* :func:`requirement_problems`: a dependency of the installed ``tune_food`` distribution
  that is missing or outside its version range (read from the distribution's own
  metadata, so ``pyproject.toml`` stays the one list).
* :func:`check_environment`: all of the above, then the imports a command needs.

Only the standard library is imported at module level (``packaging``, a dependency, when
requirements are compared, and only if it is installed); versions are read from package
metadata without importing the packages.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import re
import sys

from tune_food.common.errors import TuneFoodError

DIST = "tune_food"
MIN_PYTHON = (3, 10)        # pyproject.toml's requires-python (tests/test_environment.py)
TORCHVISION_OFFSET = 15     # torch 2.N <-> torchvision 0.(N + 15) (torchvision's README)
REINSTALL = ('reinstall tune_food: pip install -e ".[dev]" in a clone, '
             'or pip install tune_food')


class InstallError(TuneFoodError):
    """The Python environment cannot run tune_food: wrong Python, a missing dependency,
    or packages that do not belong together (the message names versions and the fix)."""


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (e.g. ``"2.14.1+cpu"``), or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_string() -> str:
    """What ``--version`` prints: tune_food's version and where it is installed, with
    the versions of Python, torch, torchvision and Ray (from metadata, nothing imported)."""
    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the package
    deps = ", ".join(f"{n} {installed_version(n) or 'missing'}"
                     for n in ("torch", "torchvision", "ray"))
    python = ".".join(map(str, sys.version_info[:3]))
    return (f"tune_food {installed_version(DIST) or 'unknown (not installed)'} from {where} "
            f"(Python {python}, {deps})")


def python_problem(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> str | None:
    """The problem with running on Python ``version``, or None when it is supported."""
    if tuple(version[:2]) >= MIN_PYTHON:
        return None
    need = ".".join(map(str, MIN_PYTHON))
    have = ".".join(map(str, version))
    return (f"tune_food needs Python >= {need}, this is Python {have} ({sys.executable}): "
            f"make the virtual environment with python{need} or newer")


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``"2.14.1+cpu"`` or ``"0.29"``."""
    found = re.match(r"(\d+)\.(\d+)", version)
    return (int(found[1]), int(found[2])) if found else (-1, -1)


def torchvision_problem(torch: str | None, torchvision: str | None) -> str | None:
    """The problem with torch ``torch`` beside torchvision ``torchvision`` (version
    strings as installed, local tags such as ``+cpu`` allowed), or None when they belong
    together or one of them is not installed (:func:`requirement_problems` says that)."""
    if torch is None or torchvision is None:
        return None
    t_major, t_minor = _release(torch)
    v_major, v_minor = _release(torchvision)
    if t_major != 2 or (v_major, v_minor) == (0, t_minor + TORCHVISION_OFFSET):
        return None
    belongs = f"0.{t_minor + TORCHVISION_OFFSET}"
    torch_for_tv = f"2.{v_minor - TORCHVISION_OFFSET}" if v_major == 0 else "?"
    return (f"torch {torch} and torchvision {torchvision} do not belong together "
            f"(torch 2.{t_minor} needs torchvision {belongs}.*): pip install "
            f"'torchvision=={belongs}.*' (or 'torch=={torch_for_tv}.*'), from the same "
            f"index as torch (e.g. --index-url https://download.pytorch.org/whl/cpu)")


def requirement_problems(dist: str = DIST) -> list[str]:
    """Each dependency of the installed distribution ``dist`` that is missing or whose
    version is outside the range ``dist`` requires, as ``"name (needs SPEC, have V)"``.
    Optional extras are not checked. Empty when ``dist`` itself is not installed (a
    checkout run without ``pip install``: nothing to compare against)."""
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    problems = []
    for line in requires:
        name, spec, wanted = _requirement(line)
        if not wanted:
            continue
        have = installed_version(name)
        if have is None:
            problems.append(f"{name} (needs {spec or 'any version'}, not installed)")
        elif spec and not _satisfies(spec, have):
            problems.append(f"{name} (needs {spec}, have {have})")
    return problems


def _requirement(line: str) -> tuple[str, str, bool]:
    """(name, version specifier, needed here) of one ``Requires-Dist`` line. Read with
    ``packaging`` when it is installed; without it (itself a missing dependency) the
    name and specifier are cut from the line and only extras' markers are understood."""
    try:
        # lazy: --help speed: every command imports this module; packaging costs ~15-40 ms
        # (measured)
        from packaging.requirements import Requirement
    except ImportError:
        head, _, marker = line.partition(";")
        name, spec = re.match(r"\s*([A-Za-z0-9._-]+)(?:\[[^]]*\])?\s*(.*)", head).groups()
        return name, spec.strip(), "extra" not in marker
    req = Requirement(line)
    wanted = req.marker is None or req.marker.evaluate({"extra": ""})
    return req.name, str(req.specifier), wanted


def _satisfies(spec: str, version: str) -> bool:
    try:
        # lazy: --help speed: every command imports this module; packaging costs ~15-40 ms
        # (measured)
        from packaging.specifiers import SpecifierSet
    except ImportError:
        return True   # packaging itself is then reported missing
    return SpecifierSet(spec).contains(version, prereleases=True)


def _import_problem(module: str) -> str | None:
    try:
        importlib.import_module(module)
    except Exception as exc:   # noqa: BLE001 - any failure of a dependency's import
        cause = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        if module in ("torch", "torchvision"):
            versions = ", ".join(f"{n} {installed_version(n) or 'missing'}"
                                 for n in ("torch", "torchvision"))
            fix = ("reinstall torch and torchvision together from one index, e.g. "
                   "pip install --force-reinstall torch torchvision")
        else:
            versions = f"{module} {installed_version(module) or 'missing'}"
            fix = f"pip install --force-reinstall {module}"
        return f"import {module} failed ({cause}) with {versions}: {fix}"
    return None


def check_environment(imports: tuple[str, ...] = ()) -> None:
    """Check the Python version, torch beside torchvision, the installed distribution's
    dependencies, and then that each module of ``imports`` imports (the heavy modules a
    command will need, e.g. ``("torchvision",)``).

    Raises:
        InstallError: the first problem found, one line with the versions and the fix.
    """
    problem = python_problem() or torchvision_problem(installed_version("torch"),
                                                      installed_version("torchvision"))
    if problem:
        raise InstallError(problem)
    missing = requirement_problems()
    if missing:
        raise InstallError(f"tune_food's dependencies are not installed as it needs: "
                           f"{'; '.join(missing)}: {REINSTALL}")
    for module in imports:
        problem = _import_problem(module)
        if problem:
            raise InstallError(problem)
