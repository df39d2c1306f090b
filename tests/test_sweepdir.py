"""The sweep folder's contract (tune_food.sweepdir): the status words, the record of
``sweep.json`` and the ``sweep.json`` shapes earlier versions wrote."""

import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import sweep_checks

from tune_food.common.errors import SweepFileError
from tune_food.data.datasets import dataset_fingerprint
from tune_food.sweepdir.record import (
    SCHEMA_VERSION,
    Confirmation,
    Extension,
    Planned,
    SweepState,
    WarmStart,
)
from tune_food.sweepdir.state import peek_state
from tune_food.sweepdir.status import RANKED_STATUSES, SweepStatus, TrialStatus


def test_status_members_are_written_as_their_words(tmp_path):
    """A member goes wherever its word went: JSON, f-strings, CSV cells, comparisons."""
    assert json.dumps({"status": SweepStatus.FINISHED_WITH_ERRORS}) == \
        '{"status": "finished with errors"}'
    assert f"{SweepStatus.INTERRUPTED} / {TrialStatus.NOT_STARTED}" == \
        "interrupted / NOT_STARTED"
    assert str(TrialStatus.EARLY_STOPPED) == "EARLY_STOPPED"
    assert [s.value for s in SweepStatus] == ["running", "interrupted", "finished",
                                              "finished with errors", "failed"]
    assert [s.value for s in TrialStatus] == ["TERMINATED", "EARLY_STOPPED", "INTERRUPTED",
                                              "NOT_STARTED", "ERROR"]
    assert RANKED_STATUSES == ("TERMINATED", "EARLY_STOPPED")
    pd.DataFrame({"status": list(TrialStatus)}).to_csv(tmp_path / "t.csv", index=False)
    assert (tmp_path / "t.csv").read_text().split() == ["status"] + [s.value for s in TrialStatus]
    assert SweepStatus("finished") is SweepStatus.FINISHED
    # a word read back from a file finds its member's entry (dicts keyed by members)
    assert {SweepStatus.FINISHED_WITH_ERRORS: 1}["finished with errors"] == 1


# ------------------------------------------------------------------ the record of sweep.json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sweep_json"
SHAPES = sorted(p.name for p in FIXTURES.glob("*.json"))


def test_every_earlier_shape_is_kept_as_a_fixture():
    """The four shapes of sweep.json since the first version (tests/fixtures/sweep_json/README.md)."""
    assert len(SHAPES) == 4
    readme = (FIXTURES / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in SHAPES)


@pytest.mark.parametrize("shape", SHAPES)
def test_an_earlier_shape_loads_and_is_written_back_whole(shape, tmp_path):
    """Each earlier sweep.json loads; keys this version does not write (driver_pid) are
    kept; saved again it holds every key it held, with the same values."""
    data = json.loads((FIXTURES / shape).read_text())
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    state = SweepState.load(str(tmp_path))
    assert (state.name, state.metric, state.mode) == ("small", "test_acc", "max")
    assert state.status in SweepStatus and state.status == data["status"]
    assert state.schema_version is None   # written before the version was recorded
    assert state.space_path(str(tmp_path)) == os.path.join(str(tmp_path), data["space_file"])
    state.save(str(tmp_path))
    assert json.loads((tmp_path / "sweep.json").read_text()) == data
    if "driver_pid" in data:
        assert state.unknown == {"driver_pid": data["driver_pid"],
                                 "driver_host": data["driver_host"]}
    if "extended" in data:
        assert state.extended[0].start == 1 and state.extended[0].to == 2
        assert state.pending_extension() is None   # its new trials began
    if "planned" in data:
        assert state.planned.trials == 2 and len(state.planned.configs) == 2


def test_a_new_record_round_trips_with_its_schema_version(tmp_path):
    state = SweepState("s", "val_acc", "max", status=SweepStatus.FINISHED_WITH_ERRORS,
                       planned=Planned(3), warm_start=WarmStart("/x/a", 2),
                       extended=[Extension(at="t", start=1, to=3, started=False)])
    state.save(str(tmp_path))
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["status"] == "finished with errors"
    assert data["extended"] == [{"at": "t", "from": 1, "to": 3, "started": False}]
    assert data["planned"] == {"trials": 3, "configs": []}
    again = SweepState.load(str(tmp_path))
    assert again == state
    assert again.pending_extension() == Extension(at="t", start=1, to=3, started=False)


def test_a_confirmation_round_trips_and_lists_its_trials_configurations(tmp_path):
    """``confirmations`` (``--confirm``): each configuration with each new seed, in the
    order its trials run; pending until its Tuner starts."""
    entry = Confirmation(at="t", start=3, to=7, sources=["a_00001", "a_00000"],
                         configs=[{"lr": 0.01, "seed": 42}, {"lr": 0.1, "seed": 42}],
                         seeds=[0, 1])
    state = SweepState("s", "test_acc", "max", status=SweepStatus.INTERRUPTED,
                       confirmations=[entry])
    state.save(str(tmp_path))
    data = json.loads((tmp_path / "sweep.json").read_text())
    assert data["confirmations"] == [{"at": "t", "from": 3, "to": 7,
                                      "sources": ["a_00001", "a_00000"],
                                      "configs": [{"lr": 0.01, "seed": 42},
                                                  {"lr": 0.1, "seed": 42}],
                                      "seeds": [0, 1], "started": False}]
    again = SweepState.load(str(tmp_path))
    assert again == state and again.pending_confirmation() == entry
    assert again.confirmation_configs() == [{"lr": 0.01, "seed": 0}, {"lr": 0.01, "seed": 1},
                                            {"lr": 0.1, "seed": 0}, {"lr": 0.1, "seed": 1}]
    again.confirmations[0].started = True
    assert again.pending_confirmation() is None
    assert SweepState("s", "test_acc", "max").pending_confirmation() is None


#: what every message about a key of sweep.json ends with
WRITTEN_BY = ("; the file is written by python -m tune_food.sweep (restore it from a copy, or "
              "undo the edit)")


@pytest.mark.parametrize("edit, key, what", [
    ({"metric": None}, "metric", "holds null, not a string"),
    ({"status": "done"}, "status", "is 'done', not one of 'running', 'interrupted', "
                                   "'finished', 'finished with errors', 'failed'"),
    ({"planned": {"trials": "two"}}, "planned.trials", "holds a string, not a number"),
    ({"planned": {"configs": []}}, "planned.trials", "is missing"),
    ({"planned": "2 trials"}, "planned", "holds a string, not an object"),
    ({"warm_start": [1]}, "warm_start", "holds a list, not an object"),
    ({"extended": [{"at": "t", "to": 2}]}, "extended.from", "is missing"),
    ({"extended": [{"at": "t", "from": 1}]}, "extended.to", "is missing"),
    ({"extended": {"at": "t"}}, "extended", "holds an object, not a list"),
    ({"extended": [[]]}, "extended", "holds a list, not an object"),
    ({"extended": [{"at": "t", "from": 1, "to": 2, "started": "yes"}]}, "extended.started",
     "holds a string, not true/false"),
    ({"confirmations": [{"at": "t", "from": 3, "to": 9, "sources": ["a_00000"],
                         "configs": [{}], "seeds": "0 1"}]}, "confirmations.seeds",
     "holds a string, not a list"),
    ({"confirmations": [{"at": "t", "from": 3, "to": 9, "configs": [{}], "seeds": [0, 1]}]},
     "confirmations.sources", "is missing"),
    ({"wall_s": "1 min"}, "wall_s", "holds a string, not a number"),
    ({"wall_s": False}, "wall_s", "holds true/false, not a number"),
    ({"trials": True}, "trials", "holds true/false, not a number"),
    ({"trials": 2.5}, "trials", "holds a number, not a number"),
    ({"datasets": []}, "datasets", "holds a list, not an object"),
    ({"warnings": "one"}, "warnings", "holds a string, not a list"),
    ({"schema_version": SCHEMA_VERSION + 1}, "schema_version",
     f"is {SCHEMA_VERSION + 1}: written by a newer tune_food (this one reads up to "
     f"{SCHEMA_VERSION}); upgrade tune_food to read it"),
    ({"schema_version": "1"}, "schema_version", "holds a string, not a number"),
])
def test_a_hand_edited_sweep_json_is_one_line_naming_the_file_and_the_key(tmp_path, edit,
                                                                          key, what):
    data = json.loads((FIXTURES / SHAPES[-1]).read_text())
    data.update(edit)
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(SweepFileError) as exc:
        SweepState.load(str(tmp_path))
    assert str(exc.value) == f"{tmp_path / 'sweep.json'}: key {key!r} {what}{WRITTEN_BY}"


def _refusal(call, *args) -> str:
    """The one line of the SweepFileError ``call(*args)`` raises."""
    with pytest.raises(SweepFileError) as exc:
        call(*args)
    return str(exc.value)


def test_a_sweep_json_that_is_not_a_record_is_one_line(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text("{\"name\": ")
    assert _refusal(SweepState.load, str(tmp_path)) == (
        f"{path} is damaged (JSONDecodeError: Expecting value: line 1 column 10 (char 9)); "
        "it is written by python -m tune_food.sweep")
    path.write_text("[]")
    assert _refusal(SweepState.load, str(tmp_path)) == (
        f"{path} is damaged: it holds a list, not an object of keys; it is written by "
        "python -m tune_food.sweep")
    path.write_text("{}")
    assert _refusal(SweepState.load, str(tmp_path)) == f"{path}: key 'name' is missing{WRITTEN_BY}"
    assert peek_state(str(tmp_path)) is None   # the page's views: nothing to show yet
    os.remove(path)
    assert _refusal(SweepState.load, str(tmp_path)) == (
        f"{tmp_path} is not a tune_food sweep (no sweep.json); pass results/<sweep-name>")


@pytest.mark.parametrize("data, kind", [
    (None, "null"), ("{}", "a string"), (3, "a number"), (2.5, "a number"), (True, "true/false"),
    ([{}], "a list"), (("name",), "tuple"), ({"name"}, "set")])
def test_a_record_that_is_no_object_names_what_it_is(data, kind):
    """from_dict of what JSON gives, or of a Python value handed to it (a tuple, a set)."""
    assert _refusal(SweepState.from_dict, data, "/r/sweep.json") == (
        f"/r/sweep.json is damaged: it holds {kind}, not an object of keys; it is written by "
        "python -m tune_food.sweep")
    assert _refusal(SweepState.from_dict, data).startswith("sweep.json is damaged: ")


@pytest.mark.parametrize("missing", ["name", "metric", "mode"])
def test_the_keys_every_version_wrote_are_required(missing):
    data = {"name": "s", "metric": "test_acc", "mode": "max"}
    SweepState.from_dict(dict(data), "/r/sweep.json")
    del data[missing]
    assert _refusal(SweepState.from_dict, data, "/r/sweep.json") == (
        f"/r/sweep.json: key {missing!r} is missing{WRITTEN_BY}")


def test_a_number_where_a_float_is_wanted_loads_as_a_float():
    """JSON writes 12.0 as 12 when a float field holds a whole number; an int field keeps
    its int; true/false is no number."""
    state = SweepState.from_dict({"name": "s", "metric": "test_acc", "mode": "max",
                                  "wall_s": 12, "feature_extraction_s": 0.5, "trials": 3,
                                  "schema_version": SCHEMA_VERSION})
    assert state.wall_s == 12.0 and type(state.wall_s) is float
    assert state.feature_extraction_s == 0.5 and type(state.feature_extraction_s) is float
    assert state.trials == 3 and type(state.trials) is int
    assert state.schema_version == SCHEMA_VERSION
    assert state.to_dict()["wall_s"] == 12.0


def test_the_schema_version_is_read_as_written_and_none_when_absent():
    base = {"name": "s", "metric": "test_acc", "mode": "max"}
    assert SweepState.from_dict(dict(base)).schema_version is None
    assert SweepState.from_dict(dict(base, schema_version=SCHEMA_VERSION)).schema_version == \
        SCHEMA_VERSION
    assert SweepState.from_dict(dict(base, schema_version=0)).schema_version == 0
    assert "schema_version" not in SweepState.from_dict(dict(base)).to_dict()   # kept absent
    assert SweepState("s", "test_acc", "max").schema_version == SCHEMA_VERSION   # a new one


def test_a_key_named_like_no_field_is_kept_even_unknown(tmp_path):
    """Keys of other versions are kept as read and written back last, even one named
    ``unknown`` (the record's own field for them is no key of the file)."""
    data = {"name": "s", "metric": "test_acc", "mode": "max", "unknown": {"a": 1},
            "driver_pid": 7}
    state = SweepState.from_dict(data)
    assert state.unknown == {"unknown": {"a": 1}, "driver_pid": 7}
    assert list(state.to_dict()) == ["name", "metric", "mode", "status", "space", "args",
                                     "versions", "datasets", "skipped_bad_images",
                                     "unknown", "driver_pid"]   # empty, not None: written
    state.save(str(tmp_path))
    assert SweepState.load(str(tmp_path)) == state


def test_an_extension_without_started_keeps_its_later_keys():
    """An older sweep's entry has no ``started`` (begun); what follows it is read."""
    data = {"name": "s", "metric": "test_acc", "mode": "max",
            "extended": [{"at": "t", "from": 1, "to": 2, "added": [{"epochs": 3}],
                          "space": "w.yaml"}],
            "planned": {"trials": 2}, "warm_start": {"sweep": "/x/a", "trials": 4}}
    state = SweepState.from_dict(data)
    assert state.extended == [Extension("t", 1, 2, None, [{"epochs": 3}], "w.yaml")]
    assert state.planned == Planned(2, [])
    assert state.warm_start == WarmStart("/x/a", 4)
    assert state.pending_extension() is None
    assert state.to_dict()["extended"] == data["extended"]   # "from", no "started": null


def test_the_sweeps_space_is_its_own_copy_or_the_path_an_older_sweep_recorded():
    state = SweepState("s", "test_acc", "max")
    assert state.space_path("/r/s") == "/r/s/space.yaml"
    state.space_file = "other.yaml"
    assert state.space_path("/r/s") == "/r/s/other.yaml"
    state.space_file = "/home/old/small.yaml"   # the first version: the path given
    assert state.space_path("/r/s") == "/home/old/small.yaml"


def test_a_record_with_another_data_dir_is_a_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = SweepState("s", "test_acc", "max", args={"grid": True, "data_dir": "/old"})
    assert state.with_data_dir(None) is state and state.with_data_dir("") is state
    moved = state.with_data_dir("data")
    assert moved.args == {"grid": True, "data_dir": str(tmp_path / "data")}
    assert state.args == {"grid": True, "data_dir": "/old"}   # untouched
    assert (moved.name, moved.metric, moved.mode) == ("s", "test_acc", "max")


def test_report_on_a_hand_edited_sweep_json_is_one_line_and_exit_2(tmp_path, capsys):
    """The command line: one line on stderr naming the file and the key, exit 2, the
    file untouched."""
    from tune_food.report import main

    data = json.loads((FIXTURES / SHAPES[-1]).read_text())
    data["metric"] = 3
    text = json.dumps(data)
    (tmp_path / "sweep.json").write_text(text)
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m tune_food.report: error: {tmp_path / 'sweep.json'}: key "
                   "'metric' holds a number, not a string; the file is written by python -m "
                   "tune_food.sweep (restore it from a copy, or undo the edit)"]
    assert (tmp_path / "sweep.json").read_text() == text


def _bound(shape: str, data_root: str) -> dict:
    """The fixture ``shape`` bound to the real ``tiny`` dataset under ``data_root``: its
    fingerprint's values (the fixture's own keys only, its path absolute or relative as
    that version wrote it), the data root and --data-dir where that version recorded them."""
    data = json.loads((FIXTURES / shape).read_text())
    real = dataset_fingerprint(os.path.join(data_root, "tiny"), data_root)
    for fp in data["datasets"].values():
        fp.update({k: real[k] for k in fp if k != "path"})
        fp["path"] = os.path.join(data_root, "tiny") if os.path.isabs(fp["path"]) else "tiny"
    if "data_root" in data:
        data["data_root"] = data_root
    if data["args"].get("data_dir"):
        data["args"]["data_dir"] = data_root
    return data


@pytest.mark.parametrize("shape", SHAPES)
def test_resume_accepts_every_earlier_shape(shape, tmp_path, tiny_root, capsys):
    """``--resume`` of a sweep whose sweep.json an earlier version wrote passes every
    check (its saved options, its own space, the same data), as the dry run runs them."""
    exp = tmp_path / "results" / "small"
    exp.mkdir(parents=True)
    (exp / "space.yaml").write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                                    "  epochs: {grid_search: [1, 2]}\n  batch_size: 5\n"
                                    "  lr: 0.01\n")
    (exp / "sweep.json").write_text(json.dumps(_bound(shape, tiny_root)))
    code, plan = sweep_checks("--resume", "--name", "small", "--results-dir",
                              str(tmp_path / "results"), "--data-dir", tiny_root,
                              "--cache-dir", str(tmp_path / "cache"), "--dry-run")
    assert code == 0, capsys.readouterr().err
    assert len(plan.trials) == 2


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_report_works_on_every_earlier_shape(shape, small_sweep, tiny_root, tmp_path):
    """``report`` on a real sweep's trial folders under each earlier sweep.json: the same
    leaderboard as with the sweep's own, and the status it had (or, a sweep left
    ``running``, the trials' own)."""
    from tune_food.report import rebuild

    exp = tmp_path / "small"
    shutil.copytree(small_sweep[1], exp, symlinks=True)
    own = pd.read_csv(exp / "leaderboard.csv")
    data = _bound(shape, tiny_root)
    if "planned" in data:   # the trials the real sweep planned (their configs in full)
        data["planned"] = json.loads((exp / "sweep.json").read_text())["planned"]
    (exp / "sweep.json").write_text(json.dumps(data))
    board = rebuild(str(exp), out=io.StringIO())
    assert list(board["trial_name"]) == list(own["trial_name"])
    assert list(board["status"]) == list(own["status"])
    pd.testing.assert_frame_equal(pd.read_csv(exp / "leaderboard.csv")[own.columns.drop(
        ["cpu_ms", "params", "model_mb"], errors="ignore")], own.drop(
        columns=["cpu_ms", "params", "model_mb"], errors="ignore"))
    after = json.loads((exp / "sweep.json").read_text())
    assert after["status"] == data["status"]
    assert set(after) >= set(data)   # nothing an earlier version wrote is lost
