"""The Python API (tune_food.api; issue 38): tune_food.run / resume / load and the
SweepResult they return, on real sweeps of the real photos, in this process, as a
notebook's kernel runs them: the leaderboard the CLI writes, earlier versions' sweep
folders, errors as the CLI's one line, an interrupt from another thread then a resume,
two sweeps one after the other, and a Ray the user started left running."""

from __future__ import annotations

import _thread
import glob
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import CLASSES, REPO, run_cli

import tune_food
from tune_food.common.errors import SpaceError, SweepError, TuneFoodError, one_line
from tune_food.sweep import run as sweep_run
from tune_food.sweepdir.layout import LEADERBOARD_FILE, RESULT_FILE, STATE_FILE
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.status import SweepStatus, TrialStatus

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sweep_json"
#: the conftest small_sweep's space, as a dict: the API's sweep is the CLI's sweep
SMALL_SPACE = {"parameters": {"model": "efficientnet_lite0", "data": "tiny",
                              "epochs": {"grid_search": [1, 2]}, "batch_size": 5, "lr": 0.01}}


def _photo(cls: str = "pizza") -> str:
    folder = os.path.join(os.environ.get("TUNE_FOOD_DATA_DIR", os.path.join(REPO, "..", "shared",
                                                                             "data")),
                          "pizza_steak_sushi", "test", cls)
    return os.path.join(folder, sorted(os.listdir(folder))[0])


@pytest.fixture(scope="module")
def api_sweep(tiny_root, shared_cache, tmp_path_factory):
    """The conftest small_sweep's grid run through tune_food.run, in this process."""
    results = tmp_path_factory.mktemp("api") / "results"
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    start = time.perf_counter()
    result = tune_food.run(SMALL_SPACE, grid=True, data_dir=tiny_root, results_dir=str(results),
                           cache_dir=shared_cache, name="small")
    return result, time.perf_counter() - start, before


@pytest.mark.slow
def test_run_returns_the_sweep_whose_leaderboard_is_the_csv_report_writes(api_sweep,
                                                                          small_sweep):
    """tune_food.run writes the sweep folder the command writes: its leaderboard
    DataFrame is leaderboard.csv, `python -m tune_food.report` rewrites that CSV byte for
    byte, and it ranks the same trials with the same accuracies as the CLI's sweep of
    the same grid (conftest's small_sweep). The Ray it started is stopped, the signal
    handlers are the ones before."""
    import ray

    result, seconds, before = api_sweep
    print(f"api sweep: {seconds:.1f} s")
    assert isinstance(result, tune_food.SweepResult)
    assert result.status is SweepStatus.FINISHED and result.name == "small"
    assert not ray.is_initialized()
    assert {sig: signal.getsignal(sig) for sig in before} == before
    csv = os.path.join(result.path, LEADERBOARD_FILE)
    pd.testing.assert_frame_equal(result.leaderboard, pd.read_csv(csv))
    written = Path(csv).read_bytes()
    proc = run_cli("tune_food.report", result.path)
    assert proc.returncode == 0, proc.stderr
    assert Path(csv).read_bytes() == written
    proc, cli_dir = small_sweep
    assert proc.returncode == 0, proc.stderr
    cli = pd.read_csv(os.path.join(cli_dir, LEADERBOARD_FILE))
    same = ["rank", "trial_name", "status", "epochs_done", "test_correct", "test_images",
            "test_acc", "p_vs_best"]
    pd.testing.assert_frame_equal(result.leaderboard[same], cli[same])
    assert list(result.leaderboard.columns) == list(cli.columns)
    assert SweepState.load(result.path).args == SweepState.load(cli_dir).args | \
        {"space": result.state.args["space"], "cache_dir": result.state.args["cache_dir"]}


@pytest.mark.slow
def test_the_result_holds_trials_plots_an_html_view_and_predicts(api_sweep):
    """best / trials from the leaderboard's rows (config, metrics, checkpoint), the
    plots' files, the notebook's HTML (the table and the tradeoff plot inline), and
    predict on a real photo with the best trial's classifier."""
    result = api_sweep[0]
    board = result.leaderboard
    assert [t.name for t in result.trials] == list(board["trial_name"])
    best = result.best
    assert best is result.trials[0] and best.rank == 1 and best.status is TrialStatus.TERMINATED
    assert best.config["model"] == "efficientnet_lite0" and best.config["epochs"] in (1, 2)
    assert best.metrics["test_acc"] == board.loc[0, "test_acc"]
    assert os.path.isfile(os.path.join(best.checkpoint, "checkpoint.pt"))
    assert result.trial(best.trial_id) is best
    with pytest.raises(SweepError, match="no trial 'nope'"):
        result.trial("nope")
    assert {"leaderboard", "tradeoff"} <= set(result.plots)
    assert all(p.endswith(".png") and os.path.isfile(p) for p in result.plots.values())
    page = result._repr_html_()
    assert page.count("<tr") == 1 + len(board)   # the header and a row per trial
    assert all(f"<td>{name}</td>" in page for name in board["trial_name"])
    assert 'src="data:image/png;base64,iVBORw0KGgo' in page   # a PNG's signature
    answers = best.predict([_photo("pizza"), _photo("sushi")], top_k=2)
    assert [a["image"] for a in answers] == [_photo("pizza"), _photo("sushi")]
    for answer in answers:
        probs = [p["probability"] for p in answer["predictions"]]
        assert len(probs) == 2 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
        assert {p["class"] for p in answer["predictions"]} <= set(CLASSES)
    assert best.predict(_photo("pizza"), top_k=3)[0]["predictions"][0]["class"] == \
        answers[0]["predictions"][0]["class"]


@pytest.mark.slow
def test_load_reads_a_cli_sweep_and_earlier_versions_folders(small_sweep, tmp_path):
    """load of the CLI's sweep, and of the same folder with each earlier version's
    sweep.json (tests/fixtures/sweep_json) and of a folder holding only that file."""
    proc, cli_dir = small_sweep
    result = tune_food.load(cli_dir)
    assert result.status is SweepStatus.FINISHED
    pd.testing.assert_frame_equal(result.leaderboard,
                                  pd.read_csv(os.path.join(cli_dir, LEADERBOARD_FILE)))
    assert result.best.name == result.leaderboard.loc[0, "trial_name"]
    for shape in sorted(FIXTURES.glob("*.json")):
        data = json.loads(shape.read_text())
        old = tmp_path / shape.stem / "small"
        shutil.copytree(cli_dir, old, symlinks=True)
        (old / STATE_FILE).write_text(json.dumps(data))
        loaded = tune_food.load(old)
        assert loaded.status == data["status"] and loaded.state.metric == "test_acc"
        assert [t.name for t in loaded.trials] == [t.name for t in result.trials]
        assert loaded.best.checkpoint == os.path.join(str(old), os.path.relpath(
            result.best.checkpoint, cli_dir))
        alone = tmp_path / shape.stem / "alone"
        alone.mkdir()
        (alone / STATE_FILE).write_text(json.dumps(data))
        bare = tune_food.load(alone)
        assert bare.status == data["status"] and bare.leaderboard.empty
        assert bare.trials == [] and bare.best is None and bare.plots == {}
        assert "no leaderboard yet" in bare._repr_html_()


def test_errors_are_the_commands_one_line_typed(tmp_path, tiny_root, capsys):
    """A bad space raises SpaceError whose message is the line `python -m
    tune_food.sweep` prints for it; contradicting options and an argument argparse
    refuses are the command's lines too; a keyword that is no option is a TypeError.
    Nothing is written, no Ray starts (the quick tier's guard)."""
    space = tmp_path / "bad.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochz: 3\n")
    results = tmp_path / "results"
    cases = [({"space": str(space), "grid": True}, ["--grid", "--space", str(space)], SpaceError),
             ({"grid": True, "search": "optuna"}, ["--grid", "--search", "optuna"], SweepError),
             ({"search": "bogus"}, ["--search", "bogus"], SweepError),   # argparse's
             ({"grid": True, "num_samples": "x"}, ["--grid", "--num-samples", "x"], SweepError)]
    for kwargs, argv, kind in cases:
        with pytest.raises(kind) as raised:
            tune_food.run(**kwargs, data_dir=tiny_root, results_dir=str(results))
        assert one_line(str(raised.value)) == _cli_line(
            [*argv, "--data-dir", tiny_root, "--results-dir", str(results)], capsys)
    assert isinstance(raised.value, TuneFoodError)
    assert not results.exists()
    with pytest.raises(TypeError, match="epochz"):
        tune_food.run(grid=True, epochz=3)
    with pytest.raises(SweepError, match="--grid is a switch"):
        tune_food.run(grid="yes")
    with pytest.raises(TypeError, match="name"):
        tune_food.resume(tmp_path, name="x")
    for door in (tune_food.resume, tune_food.load):
        with pytest.raises(SweepError, match="is not a tune_food sweep"):
            door(tmp_path)


def _cli_line(argv: list[str], capsys) -> str:
    """The one line `python -m tune_food.sweep ARGV` prints (in this process), less its
    prefix and argparse's " (see --help)"; its exit code is 2."""
    try:
        code = sweep_run.main(argv)
    except SystemExit as exc:   # argparse's errors end the program
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m tune_food.sweep: error: ")
    return err[0].split(": error: ", 1)[1].removesuffix(" (see --help)")


def _interrupt_when(path: Path, pattern: str, seen: dict, limit: float = 300) -> threading.Thread:
    """A thread that interrupts the main thread (as a kernel's interrupt does) once a
    file matching ``pattern`` under ``path`` holds something; just before, it loads the
    running sweep (the folder of that file's folder) into ``seen["running"]``."""
    def watch():
        deadline = time.time() + limit
        while time.time() < deadline:
            found = [f for f in glob.glob(str(path / pattern)) if os.path.getsize(f)]
            if found:
                try:
                    running = tune_food.load(os.path.dirname(os.path.dirname(found[0])))
                    seen["running"] = (running.status, running.leaderboard)
                finally:
                    _thread.interrupt_main()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_interrupted_from_another_thread_then_resumed_in_the_same_process_on_users_ray(
        api_sweep, tiny_root, shared_cache, tmp_path):
    """A second sweep in the process (after api_sweep's, whose Ray was stopped),
    interrupted by KeyboardInterrupt from another thread once its first trial reported:
    it returns the interrupted result, resumable; then, on a Ray the user started with
    ray.init, tune_food.resume finishes it and leaves that Ray running."""
    import ray

    assert api_sweep[0].status is SweepStatus.FINISHED and not ray.is_initialized()
    results = tmp_path / "results"
    # the 1-epoch trial's report: the 1000-epoch one (seconds) is still running then
    space = {"parameters": dict(SMALL_SPACE["parameters"], epochs={"grid_search": [1, 1000]})}
    seen: dict = {}
    watcher = _interrupt_when(results, f"stop/1_epochs_*/{RESULT_FILE}", seen)
    start = time.perf_counter()
    stopped = tune_food.run(space, grid=True, data_dir=tiny_root, results_dir=str(results),
                            cache_dir=shared_cache, name="stop")
    interrupted_s = time.perf_counter() - start
    watcher.join()
    status, board = seen["running"]   # load while it ran: the board rebuilt in memory
    assert status is SweepStatus.RUNNING
    assert set(board["trial_name"]) == {"1_epochs", "1000_epochs"}, board
    assert stopped.status is SweepStatus.INTERRUPTED, stopped.leaderboard
    board = stopped.leaderboard.set_index("trial_name")
    assert board.loc["1000_epochs", "status"] in (TrialStatus.INTERRUPTED, TrialStatus.NOT_STARTED)
    assert stopped.state.resume and not ray.is_initialized()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    try:
        address = ray.get_runtime_context().gcs_address
        start = time.perf_counter()
        resumed = tune_food.resume(stopped.path)
        print(f"interrupted sweep: {interrupted_s:.1f} s, resume: "
              f"{time.perf_counter() - start:.1f} s")
        assert ray.is_initialized() and ray.get_runtime_context().gcs_address == address
        assert ray.get(ray.put(41)) + 1 == 42   # the user's Ray still answers
    finally:
        ray.shutdown()
    assert resumed.path == stopped.path and resumed.status is SweepStatus.FINISHED
    assert set(resumed.leaderboard["status"]) == {TrialStatus.TERMINATED}
    assert set(resumed.leaderboard["trial_name"]) == {"1_epochs", "1000_epochs"}
    assert resumed.trial("1000_epochs").metrics["test_acc"] > 0


def test_every_keyword_is_the_commands_flag_and_the_package_loads_the_api_on_first_use():
    """The keywords are SweepOptions' fields, each the sweep command's flag of that name
    (a field whose flag is spelled otherwise would fail here); `import tune_food` (what
    every command's --help imports) does not load the API, `tune_food.run` does."""
    import subprocess
    import sys

    from tune_food import api
    from tune_food.sweep.cli import build_parser

    flags = {s for action in build_parser()._actions for s in action.option_strings}
    assert "grid" in api.KEYWORDS and "num_samples" in api.KEYWORDS
    assert [k for k in api.KEYWORDS if "--" + k.replace("_", "-") not in flags] == []
    assert set(api.NOT_KEYWORDS) | set(api.KEYWORDS) == \
        {f for f in api.SweepOptions.__dataclass_fields__}
    code = "import sys, tune_food; print(sorted(m for m in sys.modules if 'tune_food.' in m))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0 and "tune_food.api" not in proc.stdout, proc.stderr
    assert "tune_food.common.environment" in proc.stdout
    assert tune_food.run is api.run and tune_food.SweepResult is api.SweepResult
    with pytest.raises(AttributeError):
        tune_food.no_such_name
