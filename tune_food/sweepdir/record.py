"""``sweep.json`` as a typed record: :class:`SweepState` and its parts, read
(:meth:`SweepState.load`, :meth:`SweepState.from_dict`) and written
(:meth:`SweepState.save`, :meth:`SweepState.to_dict`) here and nowhere else.

Every key of ``sweep.json`` is a field here, under the same name (``from`` of an
extension is :attr:`Extension.start`). Sweeps written by every earlier version load: a
key they lack is ``None`` (or empty), a key this version does not know (``driver_pid``,
``driver_host`` of the sweeps before the lock file) is kept as read in
:attr:`SweepState.unknown` and written back. A file that is not JSON, misses a key every
version wrote or holds a value of the wrong kind (a hand edit) is refused in one line
naming the file and the key (:class:`~tune_food.common.errors.SweepFileError`).

The values that are another module's format stay plain JSON values here: ``args``
(:meth:`tune_food.sweep.options.SweepOptions.saved`), a dataset's fingerprint
(:func:`tune_food.data.datasets.dataset_fingerprint`), ``validation``
(:mod:`tune_food.data.validation`), ``deployment`` (:mod:`tune_food.models.deploy`),
``mlflow`` (:mod:`tune_food.results.tracking`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from tune_food.common.errors import SweepFileError
from tune_food.common.files import write_json_atomic
from tune_food.sweepdir.layout import SPACE_FILE, STATE_FILE, SWEEP_COMMAND
from tune_food.sweepdir.status import SweepStatus

#: the format written now (``schema_version``); files written before it have none
SCHEMA_VERSION = 1


@dataclass
class Planned:
    """``planned``: how many trials the sweep runs (a grid's trials, a search's
    samples) and, for a grid, each one's configuration (the leaderboard lists those
    that never started)."""

    trials: int
    configs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Extension:
    """An entry of ``extended``: ``--resume --num-samples N`` or ``--resume --space
    wider.yaml`` (``from`` -> ``to`` trials, ``at`` when). ``started`` turns true when
    the new Tuner starts (None: an older sweep's entry, begun)."""

    at: str
    start: int                      # "from" in the file
    to: int
    started: bool | None = None
    added: list[dict[str, Any]] | None = None   # a wider grid's new configurations
    space: str | None = None                    # and the space they came from


@dataclass
class Confirmation:
    """An entry of ``confirmations``: ``--resume --confirm K --confirm-seeds N`` of a
    finished sweep (:mod:`tune_food.sweep.confirm`). The ``K`` configurations it retrains
    (``configs``: each as Ray Tune gave the trial it comes from, ``sources``: those
    trials' ids, best first), the ``N`` new ``seeds`` each runs with (the same for every
    configuration: the verdict pairs them by seed), the sweep's trials before it
    (``from``) and after it (``to``), ``at`` when it was asked for, and ``started``: true
    once its Tuner started (false: a plain ``--resume`` starts it)."""

    at: str
    start: int                      # "from" in the file
    to: int
    sources: list[str]
    configs: list[dict[str, Any]]
    seeds: list[int]
    started: bool = False

    def trial_configs(self) -> list[dict[str, Any]]:
        """Its trials' configurations: each configuration with each of its seeds, in the
        order they run (configuration by configuration)."""
        return [dict(c, seed=s) for c in self.configs for s in self.seeds]


@dataclass
class WarmStart:
    """``warm_start``: the sweep whose completed trials Optuna started from."""

    sweep: str
    trials: int


@dataclass
class SweepState:
    """The record of ``sweep.json`` (docs/architecture.md, "The sweep folder").

    Only ``name``, ``metric`` and ``mode`` were written by every version; everything
    else is None (or empty) where an older version did not write it.
    """

    name: str
    metric: str
    mode: str
    status: SweepStatus = SweepStatus.RUNNING
    schema_version: int | None = SCHEMA_VERSION   # None: written before it was recorded
    space_file: str | None = None            # the sweep's space.yaml (older: the path given)
    space: dict[str, Any] = field(default_factory=dict)   # the YAML as read
    args: dict[str, Any] = field(default_factory=dict)    # the options it started with
    versions: dict[str, str] = field(default_factory=dict)
    data_root: str | None = None             # the data root it resolved where it ran
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)   # fingerprints
    skipped_bad_images: list[dict[str, str]] = field(default_factory=list)
    validation: dict[str, Any] | None = None
    test_sets: dict[str, dict[str, Any]] | None = None   # the images that rank, by content
    allow_leakage: bool | None = None
    started: str | None = None
    warm_start: WarmStart | None = None
    backbone_runtime: str | None = None
    planned: Planned | None = None
    mlflow: dict[str, Any] | None = None
    resumed: list[str] | None = None         # when each --resume started
    feature_sets: list[dict[str, Any]] | None = None
    feature_extraction_s: float | None = None
    deployment: dict[str, dict[str, Any]] | None = None   # backbone -> cpu_ms, ...
    extended: list[Extension] | None = None
    confirmations: list[Confirmation] | None = None   # --confirm (sweep.confirm)
    finished: str | None = None
    wall_s: float | None = None
    timings: dict[str, float] | None = None
    comparison: str | None = None             # the McNemar summary line
    trials: int | None = None
    errored: list[str] | None = None
    warnings: list[str] | None = None
    resume: str | None = None                 # how to continue it (interrupted, failed)
    error: str | None = None                  # why it failed
    unknown: dict[str, Any] = field(default_factory=dict)   # keys of other versions, kept

    # ------------------------------------------------------------------ reading

    @classmethod
    def load(cls, exp_dir: str) -> SweepState:
        """The ``sweep.json`` of the sweep folder ``exp_dir``.

        Raises:
            SweepFileError: the file is missing, not JSON, or a key is missing or holds a
                value of the wrong kind (one line naming the file and the key).
        """
        path = os.path.join(exp_dir, STATE_FILE)
        if not os.path.isfile(path):
            raise SweepFileError(f"{exp_dir} is not a tune_food sweep (no {STATE_FILE}); "
                                 "pass results/<sweep-name>")
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise SweepFileError(f"{path} is damaged ({type(exc).__name__}: {exc}); it is "
                                 f"written by {SWEEP_COMMAND}") from None
        return cls.from_dict(data, path)

    @classmethod
    def from_dict(cls, data: Any, path: str = STATE_FILE) -> SweepState:
        """The record of ``data``, ``sweep.json``'s content as JSON gives it (``path``:
        the file, for the message).

        Raises:
            SweepFileError: ``data`` is not an object, a key every version wrote is
                missing, a value has the wrong kind, or the schema is newer than this
                version reads.
        """
        if not isinstance(data, dict):
            raise SweepFileError(f"{path} is damaged: it holds {_kind(data)}, not an object "
                                 f"of keys; it is written by {SWEEP_COMMAND}")
        values = {}
        for f in dataclasses.fields(cls):
            key = _json_key(f.name)
            if f.name == "unknown" or key not in data:
                if f.name in _REQUIRED:
                    raise _bad(path, key, "is missing")
                continue
            values[f.name] = _read(path, key, data[key], _TYPES[f.name])
        # (read, it is an int: a null was refused above)
        if "schema_version" in values and values["schema_version"] > SCHEMA_VERSION:
            raise _bad(path, "schema_version", f"is {values['schema_version']}: written by a "
                       f"newer tune_food (this one reads up to {SCHEMA_VERSION}); upgrade "
                       "tune_food to read it")
        values["schema_version"] = values.get("schema_version")   # none: before it was recorded
        values["unknown"] = {k: v for k, v in data.items() if k not in _KNOWN}
        return cls(**values)

    # ------------------------------------------------------------------ writing

    def to_dict(self) -> dict[str, Any]:
        """``sweep.json``'s content: every field that is set (None is left out), the
        kept keys of other versions last."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "unknown" and value is not None:
                out[_json_key(f.name)] = _write(value)
        out.update((k, v) for k, v in self.unknown.items() if k not in out)
        return out

    def save(self, local_dir: str) -> None:
        """Write the record to ``<local_dir>/sweep.json`` atomically (a reader never
        sees half a file)."""
        write_json_atomic(self.to_dict(), os.path.join(local_dir, STATE_FILE))

    # ------------------------------------------------------------------ what it says

    def space_path(self, sweep_dir: str) -> str:
        """The sweep's own copy of its search space (older sweeps: the path recorded)."""
        return os.path.join(sweep_dir, self.space_file or SPACE_FILE)

    def pending_extension(self) -> Extension | None:
        """The last extension when its new trials never began (an extension interrupted
        while it finished the trials planned before it); None otherwise (entries of
        older sweeps count as begun)."""
        last = self.extended[-1] if self.extended else None
        return last if last is not None and last.started is False else None

    def pending_confirmation(self) -> Confirmation | None:
        """The last confirmation when its Tuner never started (interrupted before its new
        trials began: a plain ``--resume`` starts them); None otherwise."""
        last = self.confirmations[-1] if self.confirmations else None
        return last if last is not None and not last.started else None

    def confirmation_configs(self) -> list[dict[str, Any]]:
        """Every trial configuration the confirmations run: each configuration with
        each of its seeds, in the order they run (configuration by configuration)."""
        return [c for entry in self.confirmations or [] for c in entry.trial_configs()]

    def with_data_dir(self, data_dir: str | None) -> SweepState:
        """A copy whose ``--data-dir`` is ``data_dir`` (absolute); ``self`` when None."""
        if not data_dir:
            return self
        return dataclasses.replace(self, args=dict(self.args, data_dir=os.path.abspath(
            data_dir)))


# ---------------------------------------------------------------------- the file's keys

#: fields that every version wrote
_REQUIRED = ("name", "metric", "mode")
#: field -> key where the key is no Python name
_KEY = {"start": "from"}
#: field -> the JSON kinds it may hold (int where a float is wanted too)
_TYPES: dict[str, Any] = {
    "name": str, "metric": str, "mode": str, "status": SweepStatus, "schema_version": int,
    "space_file": str, "space": dict, "args": dict, "versions": dict, "data_root": str,
    "datasets": dict, "skipped_bad_images": list, "validation": dict, "test_sets": dict,
    "allow_leakage": bool, "started": str, "warm_start": WarmStart,
    "backbone_runtime": str, "planned": Planned, "mlflow": dict, "resumed": list,
    "feature_sets": list, "feature_extraction_s": float, "deployment": dict,
    "extended": [Extension], "confirmations": [Confirmation], "finished": str, "wall_s": float, "timings": dict,
    "comparison": str, "trials": int, "errored": list, "warnings": list, "resume": str,
    "error": str}


def _json_key(name: str) -> str:
    """The key in the file of the field ``name`` (``from`` for :attr:`Extension.start`,
    the field's own name for every other)."""
    return _KEY.get(name, name)


_KNOWN = {_json_key(f.name) for f in dataclasses.fields(SweepState)} - {"unknown"}


def _kind(value: Any) -> str:
    """What a JSON value is, in words (``a string``, ``null``)."""
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _bad(path: str, key: str, what: str) -> SweepFileError:
    return SweepFileError(f"{path}: key {key!r} {what}; the file is written by "
                          f"{SWEEP_COMMAND} (restore it from a copy, or undo the edit)")


def _read(path: str, key: str, value: Any, kind: Any) -> Any:
    """``value`` of ``key`` as ``kind`` (a JSON kind, an enum, a part, a list of parts).

    Raises:
        SweepFileError: ``value`` is not of that kind.
    """
    if isinstance(kind, list):   # a list of parts
        if not isinstance(value, list):
            raise _bad(path, key, f"holds {_kind(value)}, not a list")
        return [_read(path, key, v, kind[0]) for v in value]
    if dataclasses.is_dataclass(kind):
        return _part(path, key, value, kind)
    if isinstance(kind, type) and issubclass(kind, SweepStatus):
        if value not in set(SweepStatus):
            raise _bad(path, key, f"is {value!r}, not one of "
                       f"{', '.join(repr(s.value) for s in SweepStatus)}")
        return SweepStatus(value)
    number = kind is float and isinstance(value, int) and not isinstance(value, bool)
    if not (isinstance(value, kind) or number) or (kind is int and isinstance(value, bool)):
        raise _bad(path, key, f"holds {_kind(value)}, not {_kind(kind())}")
    return float(value) if number else value


def _part(path: str, key: str, value: Any, kind: Any) -> Any:
    """A part of the record (:class:`Planned`, :class:`Extension`, :class:`Confirmation`,
    :class:`WarmStart`)
    from its JSON object; ``key`` names it in a message (``planned.trials``)."""
    if not isinstance(value, dict):
        raise _bad(path, key, f"holds {_kind(value)}, not an object")
    fields = {}
    for f in dataclasses.fields(kind):
        sub = _json_key(f.name)
        if sub not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise _bad(path, f"{key}.{sub}", "is missing")
            continue
        fields[f.name] = _read(path, f"{key}.{sub}", value[sub], _PART_TYPES[f.name])
    return kind(**fields)


#: the parts' fields -> their JSON kinds
_PART_TYPES: dict[str, Any] = {
    "trials": int, "configs": list, "at": str, "start": int, "to": int, "started": bool,
    "added": list, "space": str, "sweep": str, "sources": list, "seeds": list}


def _write(value: Any) -> Any:
    """A field's JSON value: parts as objects (their None fields left out), enums as
    their words."""
    if isinstance(value, SweepStatus):
        return value.value
    if isinstance(value, list):
        return [_write(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {_json_key(f.name): _write(getattr(value, f.name))
                for f in dataclasses.fields(value) if getattr(value, f.name) is not None}
    return value
