"""tune_food: Ray Tune sweeps of frozen-backbone EfficientNet image classifiers.

The commands are ``python -m tune_food.sweep`` (or ``tune-food sweep``), ``report``,
``predict``, ``app`` and ``data``; ``docs/architecture.md`` maps the modules. From Python
(a notebook, a script): ``tune_food.run``, ``resume``, ``load`` -> ``SweepResult``
(:mod:`tune_food.api`, imported on first use).

Importing the package checks the Python version first (:mod:`tune_food.common.environment`), so
an unsupported Python is one line, not a syntax error from deep inside a module.
"""

import sys as _sys

from tune_food.common.environment import python_problem as _python_problem
from tune_food.moved import install as _install_moved

if _python_problem():
    _arg0 = _sys.argv[0] if _sys.argv else ""
    if _arg0 in ("-m", "-c") or _arg0.endswith("tune-food"):
        print(f"error: {_python_problem()}", file=_sys.stderr)   # a command: one line
        raise SystemExit(2)
    raise ImportError(_python_problem())

_install_moved()   # module paths that older sweeps' pickles name (tune_food/moved.py)

#: the Python API (tune_food.api), imported on first use: it loads Ray, torch and pandas
#: (seconds), and every command imports this package first
_API = ("run", "resume", "load", "SweepResult", "Trial", "TuneFoodError")


def __getattr__(name: str):
    """``tune_food.run``, ``resume``, ``load``, ``SweepResult``, ``Trial``,
    ``TuneFoodError``: the names of :mod:`tune_food.api`, imported when first asked for."""
    if name in _API:
        from tune_food import api   # lazy: every command's --help imports this package

        return getattr(api, name)
    raise AttributeError(f"module 'tune_food' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_API))
