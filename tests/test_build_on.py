"""Sweeps that build on each other (tune_food.sweep.history): a warm start from an earlier
sweep, a search extended with more trials, a grid extended with more values; each a real
Ray Tune sweep on real photos."""

from __future__ import annotations

import json
import os
import re
import shutil

import pandas as pd
import pytest
from conftest import make_subset, run_cli, run_sweep, signal_at

SEARCH = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  test_data: {test}\n"
          "  epochs: 2\n  lr: {{loguniform: [0.001, 0.3]}}\n  batch_size: {{choice: [4, 8]}}\n")


@pytest.fixture(scope="module")
def two_test_sets(tiny_root, tmp_path_factory) -> str:
    """A data root with ``tiny`` (the session's) and ``tiny2``: other test photos."""
    root = tmp_path_factory.mktemp("two_test_sets")
    os.symlink(os.path.join(tiny_root, "tiny"), root / "tiny")
    make_subset(str(root / "tiny2"), {"train": 8, "test": 4}, offset=4)
    return str(root)


def _search(tmp_path, cache, root, name, test="tiny", *extra):
    space = tmp_path / f"{name}.yaml"
    space.write_text(SEARCH.format(test=test))
    return run_sweep("--search", "optuna", "--scheduler", "fifo", "--space", str(space),
                     "--data-dir", root, "--results-dir", str(tmp_path / "results"),
                     "--cache-dir", cache, "--name", name, *extra)


def optuna_study(exp_dir):
    """The Optuna study the sweep's ``OptunaSearch`` saved last (Ray Tune's searcher
    state file, restored with Ray's own ``Searcher.restore_from_dir``)."""
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch()
    searcher.restore_from_dir(str(exp_dir))
    return searcher._ot_study


@pytest.mark.slow
def test_warm_start_refused_for_another_test_set_accepted_otherwise(
        tmp_path, two_test_sets, shared_cache):
    first = _search(tmp_path, shared_cache, two_test_sets, "a", "tiny", "--num-samples", "4")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    a = tmp_path / "results" / "a"
    board = pd.read_csv(a / "leaderboard.csv")
    assert len(board) == 4 and board["rank"].notna().all()
    assert json.loads((a / "sweep.json").read_text())["test_sets"]["tiny"]["images"] == 12

    other = _search(tmp_path, shared_cache, two_test_sets, "b", "tiny2", "--num-samples", "2",
                    "--warm-start", str(a))
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        f"python -m tune_food.sweep: error: --warm-start {a} ranked on another test set than this "
        "sweep (12 images then, 12 now, other bytes): its rewards are not comparable; use "
        "the same data and val_fraction, or no --warm-start"], other.stderr
    assert not (tmp_path / "results" / "b").exists()   # refused before launching

    # the other refusals, checked in-process on the plan the sweep would make
    from tune_food.common.errors import SweepError
    from tune_food.sweep.cli import parse_options
    from tune_food.sweep.history import warm_start
    from tune_food.sweep.plan import plan_sweep
    from tune_food.sweep.spaces import load_space

    for extra, why in (("  dropout: {uniform: [0.0, 0.5]}\n",
                        "sampled lr, batch_size, this space samples lr, batch_size, dropout: "
                        "Optuna needs the same parameter names"),
                       ("metric: test_loss\n", "ranked by test_acc (max), this sweep by "
                        "test_loss (min)")):
        other_space = tmp_path / "other.yaml"
        other_space.write_text(SEARCH.format(test="tiny") + extra if extra.startswith(" ")
                               else extra + SEARCH.format(test="tiny"))
        opts = parse_options(["--search", "optuna", "--space", str(other_space), "--data-dir",
                              two_test_sets, "--warm-start", str(a)])
        plan = plan_sweep(load_space(str(other_space)), opts)
        with pytest.raises(SweepError, match=re.escape(f"--warm-start {a} {why}")):
            warm_start(str(a), plan, opts)

    warm = _search(tmp_path, shared_cache, two_test_sets, "c", "tiny", "--num-samples", "3",
                   "--warm-start", str(a), "--seed", "5")
    assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
    assert f"note: Optuna starts from the 4 completed trials of {a} (--warm-start)" in warm.stdout
    c = tmp_path / "results" / "c"
    assert json.loads((c / "sweep.json").read_text())["warm_start"] == {"sweep": str(a),
                                                                        "trials": 4}
    assert len(pd.read_csv(c / "leaderboard.csv")) == 3
    trials = optuna_study(c).trials
    assert len(trials) == 7   # the 4 earlier ones first, then the 3 it suggested
    def rounded(rows):
        return sorted((round(lr, 12), int(bs), round(v, 12)) for lr, bs, v in rows)

    assert rounded((t.params["lr"], t.params["batch_size"], t.value) for t in trials[:4]) == \
        rounded(zip(board["lr"], board["batch_size"], board["test_acc"]))
    assert all(t.state.name == "COMPLETE" for t in trials)


def _folder_bytes(exp) -> dict[str, dict[str, bytes]]:
    """trial folder -> {relative file path: bytes} of every trial folder of ``exp``."""
    out = {}
    for trial in sorted(p for p in exp.iterdir() if (p / "params.json").is_file()):
        out[trial.name] = {str(f.relative_to(trial)): f.read_bytes()
                           for f in sorted(trial.rglob("*")) if f.is_file()}
    return out


@pytest.mark.slow
def test_a_search_extended_from_5_to_10_trials_continues_its_optuna_study(
        tmp_path, tiny_root, shared_cache):
    first = _search(tmp_path, shared_cache, tiny_root, "s", "tiny", "--num-samples", "5",
                    "--seed", "2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    exp = tmp_path / "results" / "s"
    before = _folder_bytes(exp)
    board5 = pd.read_csv(exp / "leaderboard.csv")
    assert len(before) == 5 and len(board5) == 5

    more = run_sweep("--resume", "--name", "s", "--results-dir",
                     str(tmp_path / "results"), "--num-samples", "10")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "adding 5 trials to the 5 of sweep s; Optuna starts from its 5 completed " \
           "trials" in more.stdout
    after = _folder_bytes(exp)
    assert {k: after[k] for k in before} == before          # the first 5 untouched
    assert len(after) == 10
    board = pd.read_csv(exp / "leaderboard.csv")             # one leaderboard for all
    assert len(board) == 10 and board["rank"].notna().all()
    assert len(set(zip(board["lr"], board["batch_size"]))) == 10
    state = json.loads((exp / "sweep.json").read_text())
    assert state["planned"]["trials"] == 10 and state["status"] == "finished"
    assert [(e["from"], e["to"]) for e in state["extended"]] == [(5, 10)]

    trials = optuna_study(exp).trials   # the new study: 5 given, then 5 suggested
    assert [t.number for t in trials] == list(range(10))
    assert all(t.state.name == "COMPLETE" for t in trials)
    first5 = sorted(zip(board5["lr"].round(12), board5["test_acc"].round(12)))
    assert sorted((round(t.params["lr"], 12), round(t.value, 12)) for t in trials[:5]) == first5
    new = set(board["lr"].round(12)) - set(board5["lr"].round(12))
    assert {round(t.params["lr"], 12) for t in trials[5:]} == new and len(new) == 5

    rep = run_cli("tune_food.report", str(exp))   # report reads both Tuner runs too
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert len(pd.read_csv(exp / "leaderboard.csv")) == 10


GRID = ("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: {{grid_search: {epochs}}}\n"
        "  batch_size: 6\n  lr: {lr}\n")


@pytest.mark.slow
def test_a_grid_widened_by_one_epoch_value_runs_exactly_the_new_trial(
        tmp_path, tiny_root, shared_cache):
    results = tmp_path / "results"
    common = ["--data-dir", tiny_root, "--results-dir", str(results), "--cache-dir",
              shared_cache, "--name", "g"]
    space = tmp_path / "grid.yaml"
    space.write_text(GRID.format(epochs="[1, 2]", lr=0.01))
    first = run_sweep("--grid", "--space", str(space), *common)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    exp = results / "g"
    before = _folder_bytes(exp)
    assert len(before) == 2

    changed = tmp_path / "changed.yaml"   # lr was a constant 0.01: what ran would change
    changed.write_text(GRID.format(epochs="[1, 2, 3]", lr=0.02))
    refused = run_sweep("--resume", "--space", str(changed), *common)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"python -m tune_food.sweep: error: --space {changed} changes what sweep 'g' ran: "
        "the constant parameters.lr: 0.01 ran and is not in the new space; a wider grid may "
        "only add values (start a new sweep with another --name to change them)"]
    assert _folder_bytes(exp) == before

    wider = tmp_path / "wider.yaml"
    wider.write_text(GRID.format(epochs="[1, 2, 3]", lr=0.01))
    more = run_sweep("--resume", "--space", str(wider), *common)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "adding 1 trials to the 2 of sweep g" in more.stdout
    after = _folder_bytes(exp)
    assert {k: after[k] for k in before} == before          # the finished ones kept
    new = sorted(set(after) - set(before))
    assert new == ["3_epochs_00002"]          # numbered on from the first two
    assert json.loads(after[new[0]]["params.json"])["epochs"] == 3
    board = pd.read_csv(exp / "leaderboard.csv")
    assert sorted(board["epochs"]) == [1, 2, 3] and (board["status"] == "TERMINATED").all()
    state = json.loads((exp / "sweep.json").read_text())
    assert state["planned"]["trials"] == 3 and state["status"] == "finished"
    assert (exp / "space.yaml").read_text() == wider.read_text()


def test_the_flags_that_build_on_a_sweep_refuse_what_they_cannot_do(tmp_path):
    from tune_food.common.errors import SweepError
    from tune_food.sweep.cli import parse_options
    from tune_food.sweep.history import extension
    from tune_food.sweep.options import resume_options

    with pytest.raises(SweepError, match=r"^--warm-start .* it needs --search optuna$"):
        parse_options(["--search", "random", "--warm-start", "results/a"]).check()
    again = parse_options(["--resume", "--name", "g", "--num-samples", "5"])
    with pytest.raises(SweepError, match="--num-samples extends a --search sweep; 'g' is a grid"):
        resume_options(again, {"grid": True, "space": "grid.yaml"}, str(tmp_path))
    search = resume_options(again, {"search": "optuna", "num_samples": 3}, str(tmp_path))
    assert search.num_samples == 5 and search.samples == 5
    # a search that planned 10 trials: 5 would drop some, 10 is a plain resume, 12 adds 2
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"name": "g", "metric": "val_acc", "mode": "max", "planned": {"trials": 10, "configs": []}}))
    with pytest.raises(SweepError, match="holds 10 trials already and never drops any"):
        extension(search, str(tmp_path))
    for n, expected in ((10, None), (12, 10)):
        opts = resume_options(parse_options(["--resume", "--name", "g", "--num-samples", str(n)]),
                              {"search": "optuna", "num_samples": 10}, str(tmp_path))
        assert extension(opts, str(tmp_path)) == expected


@pytest.mark.slow
def test_an_interrupted_search_finishes_its_trials_then_grows(tmp_path, tiny_root, shared_cache):
    """SIGINT after the first of 6 planned trials; --resume --num-samples 8 runs the 5 it
    had planned (Tuner.restore), then adds 2 with a study that holds all 6."""
    space = tmp_path / "i.yaml"
    space.write_text(SEARCH.format(test="tiny"))
    results = tmp_path / "results"
    code, out = _sweep_popen(["--search", "optuna", "--scheduler", "fifo", "--space",
                              str(space), "--data-dir", tiny_root, "--results-dir",
                              str(results), "--cache-dir", shared_cache, "--name", "i",
                              "--num-samples", "6", "--max-concurrent", "1"], "[1/6] done")
    assert code == 130, out[-3000:]
    exp = results / "i"
    assert json.loads((exp / "sweep.json").read_text())["status"] == "interrupted"

    more = run_sweep("--resume", "--name", "i", "--results-dir", str(results),
                     "--num-samples", "8")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "finishing the 6 trials the sweep had planned ..." in more.stdout
    assert "adding 2 trials to the 6 of sweep i; Optuna starts from its 6 completed " \
           "trials" in more.stdout
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 8 and (board["status"] == "TERMINATED").all()
    assert len(set(zip(board["lr"], board["batch_size"]))) == 8
    trials = optuna_study(exp).trials
    assert len(trials) == 8 and all(t.state.name == "COMPLETE" for t in trials)
    assert json.loads((exp / "sweep.json").read_text())["status"] == "finished"


def _sweep_popen(args, stop_at: str):
    """A sweep sent SIGINT (as Ctrl-C) when a line of its output starts with ``stop_at``;
    returns ``(exit code, output)``."""
    proc = run_sweep(*args, popen=True, merge=True)
    out, _, _ = signal_at(proc, stop_at)
    return proc.returncode, out


def _sweep_files(exp) -> dict[str, bytes]:
    """sweep.json, space.yaml and every trial folder's files of ``exp``: what a refused
    command must leave as it was."""
    out = {name: (exp / name).read_bytes() for name in ("sweep.json", "space.yaml")}
    for trial, files in _folder_bytes(exp).items():
        out.update({f"{trial}/{k}": v for k, v in files.items()})
    return out


@pytest.mark.slow
def test_widening_an_interrupted_grid_finishes_it_and_adds_the_new_values(
        tmp_path, tiny_root, shared_cache):
    """Issue 33, failure 2: a 3-trial grid stopped after its first trial, resumed with lr
    (a constant) made a list: Ray refused the wider param_space in Tuner.restore and the
    sweep could not be finished any more. Now the 2 planned trials finish, the 3 new run,
    and a plain --resume afterwards still works."""
    results = tmp_path / "results"
    common = ["--data-dir", tiny_root, "--results-dir", str(results), "--cache-dir",
              shared_cache, "--name", "w"]
    space = tmp_path / "w.yaml"
    space.write_text(GRID.format(epochs="[20, 30, 40]", lr=0.01))
    code, out = _sweep_popen(["--grid", "--space", str(space), "--max-concurrent", "1",
                              *common], "[1/3] done")
    assert code == 130, out[-3000:]
    exp = results / "w"
    first = _folder_bytes(exp)
    done = [t for t in first if first[t].get("result.json", b"").strip() and
            json.loads(first[t]["result.json"].splitlines()[-1])["epoch"] ==
            json.loads(first[t]["params.json"])["epochs"]]
    assert len(done) == 1

    narrower = tmp_path / "narrower.yaml"   # a list that becomes a constant: refused
    narrower.write_text(GRID.format(epochs="[20]", lr="{grid_search: [0.01, 0.02]}")
                        .replace("{grid_search: [20]}", "20"))
    kept = _sweep_files(exp)
    refused = run_sweep("--resume", "--space", str(narrower), *common)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "parameters.epochs: 30, 40 ran and is not in the new space" in refused.stderr
    assert _sweep_files(exp) == kept

    wider = tmp_path / "w2.yaml"
    wider.write_text(GRID.format(epochs="[20, 30, 40]", lr="{grid_search: [0.01, 0.02]}"))
    more = run_sweep("--resume", "--space", str(wider), *common)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "finishing the 3 trials the sweep had planned ..." in more.stdout
    assert "adding 3 trials to the 3 of sweep w" in more.stdout
    after = _folder_bytes(exp)
    assert after[done[0]] == first[done[0]]                 # the finished trial kept
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 6 and (board["status"] == "TERMINATED").all()
    assert sorted(zip(board["epochs"], board["lr"])) == [
        (e, lr) for e in (20, 30, 40) for lr in (0.01, 0.02)]
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "finished" and state["planned"]["trials"] == 6
    assert [(e["from"], e["to"], e["started"]) for e in state["extended"]] == [(3, 6, True)]

    # TensorBoard's HParams view: every trial, and the filter offers the new lr
    from test_tb import dashboard_view

    experiment, sessions, _ = dashboard_view(str(exp))
    assert {os.path.basename(r) for r in sessions} == set(board["logdir"])
    lr = next(h for h in experiment.hparam_infos if h.name == "lr")
    assert sorted(v.number_value for v in lr.domain_discrete.values) == [0.01, 0.02]
    assert lr.differs

    again = run_sweep("--resume", *common)   # a plain resume still works
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((exp / "sweep.json").read_text())["status"] == "finished"
    assert len(pd.read_csv(exp / "leaderboard.csv")) == 6


NULL_CHOICE = ("metric: test_acc\nmode: max\nparameters:\n  model: efficientnet_lite0\n"
               "  data: tiny\n  epochs: 2\n  lr: {loguniform: [0.001, 0.1]}\n"
               "  dropout: {choice: [null, 0.5]}\n  augment: {choice: [true, false]}\n")


@pytest.mark.slow
def test_a_null_choice_extends_and_warm_starts_with_the_trials_own_values(
        tmp_path, tiny_root, shared_cache):
    """Issue 33, failure 3: the earlier trials' values were read from the leaderboard's
    resolved columns (dropout 0.2, the default null stands for), which Optuna's
    distribution (None, 0.5) refused. Now they are the trials' own configurations."""
    space = tmp_path / "o.yaml"
    space.write_text(NULL_CHOICE)
    results = tmp_path / "results"
    common = ["--data-dir", tiny_root, "--results-dir", str(results), "--cache-dir",
              shared_cache, "--scheduler", "fifo"]
    first = run_sweep("--search", "optuna", "--space", str(space),
                      "--num-samples", "4", "--name", "o", *common)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    exp = results / "o"
    drawn = {json.loads((t / "params.json").read_text())["dropout"]
             for t in exp.iterdir() if (t / "params.json").is_file()}
    more = run_sweep("--resume", "--name", "o", "--num-samples", "6",
                     "--results-dir", str(results))
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "Optuna starts from its 4 completed trials" in more.stdout
    trials = optuna_study(exp).trials
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    assert {t.params["dropout"] for t in trials[:4]} == drawn <= {None, 0.5}
    assert all(isinstance(t.params["augment"], bool) for t in trials)
    assert json.loads((exp / "sweep.json").read_text())["status"] == "finished"

    warm = run_sweep("--search", "optuna", "--space", str(space),
                     "--num-samples", "7", "--name", "o2", "--warm-start", str(exp), *common)
    assert warm.returncode == 0, warm.stdout[-3000:] + warm.stderr[-3000:]
    assert f"Optuna starts from the 6 completed trials of {exp} (--warm-start)" in warm.stdout
    study = optuna_study(results / "o2").trials
    assert len(study) == 13

    def params(ts):
        return sorted(json.dumps(t.params, sort_keys=True) for t in ts)

    assert params(study[:6]) == params(trials)   # the earlier trials, as they were drawn

    # the extended sweep moved to another folder: report, predict and a further extension
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(exp), str(moved / "o"))
    assert run_cli("tune_food.report", str(moved / "o")).returncode == 0
    photo = _a_test_photo(tiny_root)
    pred = run_cli("tune_food.predict", "--sweep", str(moved / "o"), photo)
    assert pred.returncode == 0 and f"using rank 1 of {moved / 'o'}" in pred.stdout, pred.stderr
    again = run_sweep("--resume", "--name", "o", "--num-samples", "7",
                      "--results-dir", str(moved))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Optuna starts from its 6 completed trials" in again.stdout
    assert len(optuna_study(moved / "o").trials) == 7
    assert len(pd.read_csv(moved / "o" / "leaderboard.csv")) == 7
    assert not exp.exists()   # nothing was written where the sweep was


def _a_test_photo(root: str) -> str:
    """The first test photo of the pizza class of the data root's ``tiny`` set."""
    folder = os.path.join(root, "tiny", "test", "pizza")
    return os.path.join(folder, sorted(os.listdir(folder))[0])


@pytest.mark.slow
def test_an_extension_interrupted_before_its_new_trials_is_finished_by_a_plain_resume(
        tmp_path, tiny_root, shared_cache):
    """Ctrl-C while --resume --num-samples finishes the trials the sweep had planned;
    a plain --resume then finishes them and adds the new ones (sweep.json's extended
    entry says its new trials had not begun)."""
    space = tmp_path / "e.yaml"
    space.write_text(SEARCH.format(test="tiny").replace("epochs: 2", "epochs: 40"))
    results = tmp_path / "results"
    common = ["--results-dir", str(results), "--name", "e"]
    code, out = _sweep_popen(["--search", "random", "--scheduler", "fifo", "--space",
                              str(space), "--data-dir", tiny_root, "--cache-dir",
                              shared_cache, "--num-samples", "3",
                              "--max-concurrent", "1", *common], "[1/3] done")
    assert code == 130, out[-3000:]
    code, out = _sweep_popen(["--resume", "--num-samples", "5", *common],
                             "finishing the 3 trials")
    assert code == 130, out[-3000:]
    exp = results / "e"
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "interrupted"
    assert [(e["from"], e["to"], e["started"]) for e in state["extended"]] == [(3, 5, False)]

    plain = run_sweep("--resume", *common)
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
    assert "sweep e was being extended from 3 to 5 trials: this resume finishes that" \
        in plain.stdout
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 5 and (board["status"] == "TERMINATED").all(), board
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "finished"
    assert [(e["from"], e["to"], e["started"]) for e in state["extended"]] == [(3, 5, True)]


@pytest.mark.slow
def test_trials_that_all_tie_end_finished_with_a_sentence_for_the_importances(
        tmp_path, tiny_root, shared_cache):
    """Issue 33, failure 4: 10 trials with one test accuracy made fANOVA raise inside
    the outputs, and the sweep stayed "running". An lr of 1e-12 leaves every head as its
    seed made it: every trial predicts alike."""
    space = tmp_path / "tie.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 1\n"
                     "  lr: {loguniform: [1.0e-12, 2.0e-12]}\n  batch_size: 8\n")
    proc = run_sweep("--search", "random", "--scheduler", "fifo", "--space",
                     str(space), "--num-samples", "10", "--data-dir", tiny_root, "--results-dir",
                     str(tmp_path / "results"), "--cache-dir", shared_cache,
                     "--name", "tie")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "results" / "tie"
    board = pd.read_csv(exp / "leaderboard.csv")
    assert len(board) == 10 and board["test_acc"].nunique() == 1
    assert f"importance: all 10 completed trials reached the same test_acc " \
           f"({board['test_acc'].iloc[0]:.4g}), so no hyperparameter explains any of it: " \
           "importance.csv not written" in proc.stdout
    assert not (exp / "importance.csv").exists() and (exp / "plots" / "leaderboard.png").exists()
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "finished" and "warnings" not in state


def test_a_search_stopped_before_any_trial_completed_extends_from_nothing(tmp_path):
    """An Optuna search interrupted before any trial reported has no metric column on its
    leaderboard: its history is empty (was a KeyError traceback from --resume
    --num-samples, found by trying it)."""
    from tune_food.sweep.history import completed_trials
    from tune_food.sweep.spaces import load_space

    space = tmp_path / "s.yaml"
    space.write_text(SEARCH.format(test="tiny"))
    (tmp_path / "sweep.json").write_text(json.dumps(
        {"name": "s", "metric": "test_acc", "mode": "max",
         "planned": {"trials": 4, "configs": []}}))
    history = completed_trials(str(tmp_path), load_space(str(space)))
    assert (history.points, history.rewards, history.sources) == ([], [], [str(tmp_path)])


def test_a_wider_space_that_writes_a_number_another_way_changes_nothing(tmp_path):
    """``weight_decay: 0`` against a sweep that ran 0.0 (YAML's int and float) is no
    change; a value that truly differs is (found by trying it: the first was refused as
    "0.0 ran and is not in the new space")."""
    from tune_food.sweep.building_rules import _key, space_difference
    from tune_food.sweep.spaces import load_space

    def space(name: str, text: str):
        (tmp_path / name).write_text(text)
        return load_space(str(tmp_path / name))

    ran = space("ran.yaml", GRID.format(epochs="[1, 2]", lr=0.01) + "  weight_decay: 0.0\n")
    same = space("same.yaml", GRID.format(epochs="[1, 2, 3]", lr=0.01) + "  weight_decay: 0\n")
    assert space_difference(ran, same) is None
    other = space("other.yaml", GRID.format(epochs="[1, 2]", lr=0.01) + "  weight_decay: 0.5\n")
    assert space_difference(ran, other) == (
        "the constant parameters.weight_decay: 0 ran and is not in the new space")
    assert _key({"weight_decay": 0.0, "epochs": 2}) == _key({"weight_decay": 0, "epochs": 2.0})
    assert _key({"augment": True}) != _key({"augment": 1})
