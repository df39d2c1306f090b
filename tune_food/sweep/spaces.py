"""YAML search spaces -> Ray Tune ``param_space``, validated before anything runs.

A search space file::

    metric: test_acc          # what ranks trials (default: val_acc if val_fraction > 0, else test_acc)
    mode: max                 # max or min (default: max for *_acc, min for *_loss)
    parameters:
      model: {grid_search: [efficientnet_lite0, efficientnet_lite2]}
      data: {grid_search: [pizza_steak_sushi, pizza_steak_sushi_20_percent]}
      epochs: {grid_search: [5, 10]}
      test_data: pizza_steak_sushi   # every trial is tested on this dataset's test split
      lr: 0.001
      batch_size: 32
    seeds: [0, 1, 2]          # optional: repeat every configuration with these seeds

A parameter is a constant or a one-key mapping naming a Ray Tune sampler:
``grid_search: [..]``, ``choice: [..]``, ``loguniform: [low, high]``,
``uniform: [low, high]``, ``randint: [low, high)``. Unknown keys, unknown samplers and
out-of-range values raise :class:`~tune_food.common.errors.SpaceError` naming the file, the key
and what is allowed.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tune_food.common.errors import SpaceError
from tune_food.train.hparams import PARAMS, SAMPLERS, is_int, is_number


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, plus: ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3`` and
    would read a string), and a key given twice in one mapping is an error instead of
    the last one silently winning."""

    # mutmut: the default of deep is equivalent: PyYAML passes it on every call
    def construct_mapping(self, node, deep=False):  # pragma: no mutate
        seen = set()
        for key_node, _ in node.value:
            # mutmut: deep=None or no deep is the same falsy default (equivalent)
            key = self.construct_object(key_node, deep=deep)  # pragma: no mutate
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)  # pragma: no mutate (deep's default)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


TOP_KEYS = ("metric", "mode", "parameters", "seeds")
METRICS = ("test_acc", "test_loss", "val_acc", "val_loss", "train_acc", "train_loss")


@dataclass
class SearchSpace:
    """A validated search space.

    Attributes:
        path: absolute YAML path.
        metric, mode: what ranks the trials.
        param_space: the Ray Tune ``param_space`` (constants and ``tune`` samplers).
        values: every value each parameter can take that can be listed (grid and
            choice values, constants); ranges are listed as their bounds.
        varied: the parameters that differ between trials, in file order.
        raw: the parsed YAML (recorded in ``sweep.json``).
    """

    path: str
    metric: str
    mode: str
    param_space: dict[str, Any]
    values: dict[str, list[Any]]
    varied: list[str]
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.values["model"]))

    @property
    def datasets(self) -> list[str]:
        """Every dataset a trial may train or test on."""
        names = list(self.values["data"])
        for t in self.values["test_data"]:
            names += [t] if isinstance(t, str) else list(t or [])
        return list(dict.fromkeys(names))

    @property
    def sampled(self) -> list[str]:
        """The parameters drawn by a sampler (not a grid), in :data:`PARAMS` order: the
        parameters of an Optuna study of this space."""
        return [k for k in self.varied if _is_sampler(self.param_space[k])]

    @property
    def is_grid(self) -> bool:
        """True when every parameter is a constant or a ``grid_search`` list."""
        return all(not _is_sampler(v) for v in self.param_space.values())


def _is_sampler(value: Any) -> bool:
    # lazy: the web page imports this module; Ray Tune (~1.8 s, measured) loads to read a space
    from ray.tune.search.sample import Domain

    return isinstance(value, Domain)


def _fail(path: str, key: str, msg: str) -> SpaceError:
    return SpaceError(f"{path}: {key}: {msg}")


def _parse_param(path: str, key: str, spec: Any) -> tuple[Any, list[Any]]:
    """Return ``(param_space value, listable values)`` for one parameter."""
    # lazy: the web page imports this module; Ray Tune (~1.8 s, measured) loads to read a space
    from ray import tune

    param = PARAMS[key]

    def check(value: Any, where: str) -> None:
        if not param.check(value):
            raise _fail(path, where, f"{value!r} is not allowed; use {param.allowed}")

    if not isinstance(spec, dict):
        check(spec, f"parameters.{key}")
        return spec, [spec]
    if len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
        raise _fail(path, f"parameters.{key}",
                    f"a mapping must have exactly one key out of {', '.join(SAMPLERS)}; "
                    f"got {list(spec)}")
    kind, arg = next(iter(spec.items()))
    where = f"parameters.{key}.{kind}"
    if kind in ("grid_search", "choice"):
        if not isinstance(arg, list) or not arg:
            raise _fail(path, where, "needs a non-empty list of values")
        for v in arg:
            check(v, where)
        if len(set(map(repr, arg))) != len(arg):
            raise _fail(path, where, f"lists a value twice: {arg}")
        return (tune.grid_search(arg) if kind == "grid_search" else tune.choice(arg)), list(arg)
    if not (isinstance(arg, list) and len(arg) == 2 and all(is_number(v) for v in arg)):
        raise _fail(path, where, "needs [low, high], two numbers")
    low, high = arg
    if not low < high:
        raise _fail(path, where, f"low {low} must be below high {high}")
    if kind == "randint":
        if not (is_int(low) and is_int(high)):
            raise _fail(path, where, "needs integer bounds [low, high) ")
        check(low, where)
        check(high - 1, where)
        return tune.randint(low, high), [low, high - 1]
    if kind == "loguniform" and low <= 0:
        raise _fail(path, where, f"low must be > 0 for a log scale, got {low}")
    for v in (low, high):
        check(v, where)
    sampler = tune.loguniform(low, high) if kind == "loguniform" else tune.uniform(low, high)
    return sampler, [low, high]


def default_space_dir() -> str:
    """The folder of the shipped search spaces (``grid.yaml``, ``optuna.yaml``, ...).

    The repository keeps them in its top-level ``search_spaces/``; the build installs that
    folder as the package ``tune_food.search_spaces`` (``pyproject.toml``), so a wheel and
    an editable install both find it through the import system.
    """
    return str(importlib.resources.files("tune_food.search_spaces"))


def load_space(path: str) -> SearchSpace:
    """Read and validate a search-space YAML file.

    Returns:
        A :class:`SearchSpace`; parameters the file leaves out get their defaults
        (:data:`PARAMS`), and ``seeds: [..]`` turns ``seed`` into a grid over those seeds.

    Raises:
        SpaceError: file missing, YAML syntax error, unknown key, unknown sampler, a
            value out of range, or a metric/mode that does not exist; the message
            names the file and the key and says what is allowed.
    """
    path = os.path.abspath(path)
    raw = _read_yaml(path)
    params = _check_keys(path, raw)
    param_space, values = _parse_params(path, params)
    if "seeds" in raw:
        param_space["seed"], values["seed"] = _parse_seeds(path, raw["seeds"], params)
    metric, mode = _metric_and_mode(path, raw, params, param_space, values)
    varied = [k for k in PARAMS if len(values[k]) > 1 or _is_sampler(param_space[k])]
    return SearchSpace(path, metric, mode, param_space, values, varied, raw)


def _read_yaml(path: str) -> Any:
    """The parsed YAML of the file at ``path`` (absolute)."""
    if os.path.isdir(path):
        raise SpaceError(f"search space {path} is a folder; pass a YAML file with --space "
                         f"(examples in {default_space_dir()})")
    if not os.path.isfile(path):
        raise SpaceError(f"search space file {path} not found; pass an existing YAML file "
                         f"with --space (examples in {default_space_dir()})")
    try:
        with open(path) as fh:
            return yaml.load(fh, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{path}: YAML syntax error{where}: {problem}") from None


def _check_keys(path: str, raw: Any) -> dict[str, Any]:
    """The ``parameters`` mapping of ``raw``, once the top-level and parameter keys
    are known ones."""
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = [k for k in raw if k not in TOP_KEYS]
    if unknown:
        raise SpaceError(f"{path}: unknown key {unknown[0]!r}; allowed top-level keys: "
                         f"{', '.join(TOP_KEYS)}")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise SpaceError(f"{path}: parameters: needs a mapping of hyperparameters "
                         f"({', '.join(PARAMS)})")
    unknown = [k for k in params if k not in PARAMS]
    if unknown:
        top = [k for k in unknown if k in TOP_KEYS]
        if top:   # e.g. seeds under parameters
            raise SpaceError(f"{path}: parameters.{top[0]}: {top[0]} is a top-level key, "
                             f"beside parameters (e.g. '{top[0]}: ...' unindented)")
        raise SpaceError(f"{path}: parameters.{unknown[0]}: unknown parameter; allowed: "
                         f"{', '.join(PARAMS)}")
    return params


def _parse_params(path: str, params: dict[str, Any]) -> tuple[dict[str, Any],
                                                               dict[str, list[Any]]]:
    """``(param_space, values)`` of every known parameter, in :data:`PARAMS` order;
    those the file leaves out get their default."""
    param_space: dict[str, Any] = {}
    values: dict[str, list[Any]] = {}
    for key, param in PARAMS.items():
        if key in params:
            param_space[key], values[key] = _parse_param(path, key, params[key])
        elif param.required:
            raise SpaceError(f"{path}: parameters.{key}: missing; it is required "
                             f"({param.allowed})")
        else:
            param_space[key], values[key] = param.default, [param.default]
    return param_space, values


def _parse_seeds(path: str, seeds: Any, params: dict[str, Any]) -> tuple[Any, list[Any]]:
    """``seeds: [..]`` as ``(a grid over the seeds, the seeds)``."""
    if not (isinstance(seeds, list) and seeds and all(PARAMS["seed"].check(s) for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise SpaceError(f"{path}: seeds: needs a list of distinct integers >= 0, got {seeds!r}")
    if "seed" in params:
        raise SpaceError(f"{path}: seeds: use either seeds or parameters.seed, not both")
    # lazy: the web page imports this module; Ray Tune (~1.8 s, measured) loads to read a space
    from ray import tune

    return tune.grid_search(list(seeds)), list(seeds)


def _metric_and_mode(path: str, raw: dict[str, Any], params: dict[str, Any],
                     param_space: dict[str, Any], values: dict[str, list[Any]]) -> tuple[str, str]:
    """The ranking metric and mode: given, or the defaults (``val_acc`` when trials
    validate, else ``test_acc``; ``max`` for accuracies, ``min`` for losses)."""
    uses_val = any(v > 0 for v in values["val_fraction"])
    metric = raw.get("metric", "val_acc" if uses_val else "test_acc")
    if metric not in METRICS:
        raise SpaceError(f"{path}: metric: {metric!r} is not reported; use one of "
                         f"{', '.join(METRICS)}")
    if metric.startswith("val_") and not all(v > 0 for v in values["val_fraction"]):
        raise SpaceError(f"{path}: metric: {metric} needs parameters.val_fraction > 0 in "
                         "every trial")
    if uses_val and (len(values["val_fraction"]) > 1 or _is_sampler(param_space["val_fraction"])):
        raise SpaceError(f"{path}: parameters.val_fraction: must be one constant, so that every "
                         "trial is validated on the same images; got "
                         f"{params.get('val_fraction')!r}")
    mode = raw.get("mode", "max" if metric.endswith("_acc") else "min")
    if mode not in ("max", "min"):
        raise SpaceError(f"{path}: mode: {mode!r} is not allowed; use max or min")
    natural = "max" if metric.endswith("_acc") else "min"
    if mode != natural:
        raise SpaceError(f"{path}: mode: {mode} would rank the worst {metric} first; use "
                         f"mode: {natural} (or leave mode out)")
    return metric, mode
