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
from tune_food.sweepdir.record import SCHEMA_VERSION, Extension, Planned, SweepState, WarmStart
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
    assert state.space_path(str(tmp_path)).endswith(".yaml")
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


@pytest.mark.parametrize("edit, key, what", [
    ({"metric": None}, "metric", "holds null, not a string"),
    ({"status": "done"}, "status", "is 'done', not one of 'running', 'interrupted'"),
    ({"planned": {"trials": "two"}}, "planned.trials", "holds a string, not a number"),
    ({"planned": {"configs": []}}, "planned.trials", "is missing"),
    ({"extended": [{"at": "t", "to": 2}]}, "extended.from", "is missing"),
    ({"wall_s": "1 min"}, "wall_s", "holds a string, not a number"),
    ({"trials": True}, "trials", "holds true/false, not a number"),
    ({"datasets": []}, "datasets", "holds a list, not an object"),
    ({"schema_version": SCHEMA_VERSION + 1}, "schema_version", "written by a newer tune_food"),
])
def test_a_hand_edited_sweep_json_is_one_line_naming_the_file_and_the_key(tmp_path, edit,
                                                                          key, what):
    data = json.loads((FIXTURES / SHAPES[-1]).read_text())
    data.update(edit)
    (tmp_path / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(SweepFileError) as exc:
        SweepState.load(str(tmp_path))
    line = str(exc.value)
    assert "\n" not in line and line.startswith(f"{tmp_path / 'sweep.json'}: key {key!r} ")
    assert what in line


def test_a_sweep_json_that_is_not_a_record_is_one_line(tmp_path):
    (tmp_path / "sweep.json").write_text("{\"name\": ")
    with pytest.raises(SweepFileError, match=r"sweep.json is damaged \(JSONDecodeError"):
        SweepState.load(str(tmp_path))
    (tmp_path / "sweep.json").write_text("[]")
    with pytest.raises(SweepFileError, match="holds a list, not an object of keys"):
        SweepState.load(str(tmp_path))
    (tmp_path / "sweep.json").write_text("{}")
    with pytest.raises(SweepFileError, match="key 'name' is missing"):
        SweepState.load(str(tmp_path))
    assert peek_state(str(tmp_path)) is None   # the page's views: nothing to show yet


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
