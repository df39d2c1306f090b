"""Unit tests of the sweep's options: parsing, checks, resuming, and the resource check
against a cluster description (no Ray, no data needed)."""

import pytest

from tune_food.common.errors import ResourceError, SweepError
from tune_food.sweep.cli import parse_options
from tune_food.sweep.cluster import ClusterInfo, check_resources
from tune_food.sweep.options import SweepOptions, resume_options
from tune_food.sweepdir.layout import MLFLOW_DEFAULT


def test_parsing_fills_defaults_from_the_options_and_records_the_flags_given():
    options = parse_options(["--grid", "--cpus-per-trial", "1", "--name", "x"])
    assert options == SweepOptions(grid=True, cpus_per_trial=1.0, name="x")
    assert options.given == {"grid", "cpus_per_trial", "name"}
    assert isinstance(options.max_concurrent, int) and options.results_dir == "results"
    with pytest.raises(Exception):   # frozen: nothing below the CLI changes them
        options.grid = False


def test_saved_options_leave_out_where_the_sweep_is():
    saved = parse_options(["--grid", "--results-dir", "/tmp/r"]).saved()
    assert "results_dir" not in saved and "sweep_dir" not in saved and "given" not in saved
    assert saved["grid"] is True and saved["cpus_per_trial"] == 1.0


@pytest.mark.parametrize("argv,message", [
    (["--grid", "--search", "optuna"], "--grid and --search exclude each other: --grid runs "
     "every combination of a grid space, --search samples a space; pass one"),
    ([], "choose what to run: --grid (every combination of a grid space) or --search "
     "optuna|random (sample a space)"),
    (["--grid", "--num-samples", "1"], "--num-samples applies to --search only; --grid runs "
     "each combination once (a repeat would be an identical trial, same seed): to repeat "
     "configurations with other seeds add seeds: [0, 1, 2] to the space"),
    (["--search", "random", "--num-samples", "0"], "--num-samples must be >= 1, got 0"),
    (["--grid", "--max-failures", "-1"], "--max-failures must be >= 0, got -1"),
    (["--grid", "--autoscale"], "--autoscale needs --address of a cluster started by `ray "
     "up` (its autoscaler adds nodes); a local Ray cannot add nodes, so drop --autoscale or "
     "pass --address auto on the cluster's head node"),
])
def test_option_checks(argv, message):
    """Each contradiction or range error, with its whole message."""
    with pytest.raises(SweepError) as err:
        parse_options(argv).check()
    assert str(err.value) == message


def test_an_unknown_backbone_runtime_and_a_warm_start_without_optuna_are_refused():
    with pytest.raises(SweepError) as err:
        SweepOptions(grid=True, backbone_runtime="tflite").check()
    assert str(err.value) == _runtime_error("tflite") and "tflite" in str(err.value)
    for search in ("random", None):
        opts = SweepOptions(search=search, grid=search is None, warm_start="results/a")
        with pytest.raises(SweepError) as err:
            opts.check()
        assert str(err.value) == ("--warm-start hands an earlier sweep's trials to Optuna's "
                                  "study: it needs --search optuna")
    SweepOptions(search="optuna", warm_start="results/a").check()   # the one it fits


def _runtime_error(value: str) -> str:
    """The message tune_food.models.devices.requested_runtime raises for ``value``."""
    from tune_food.models.devices import requested_runtime

    with pytest.raises(ValueError) as err:
        requested_runtime(value)
    return str(err.value)


@pytest.mark.parametrize("argv", [["--grid", "--max-failures", "0"],
                                  ["--search", "random", "--num-samples", "1"],
                                  ["--grid", "--autoscale", "--address", "auto"]])
def test_the_edges_of_the_option_checks_pass(argv):
    parse_options(argv).check()   # no exception: 0 retries, 1 sample, a cluster to scale


def test_a_search_with_its_samples_passes_the_checks():
    parse_options(["--search", "optuna", "--num-samples", "5"]).check()   # no exception


SAVED = SweepOptions(search="optuna", num_samples=30, space="/spaces/s.yaml", seed=7,
                     cpus_per_trial=2.0, max_concurrent=3, data_dir="/data").saved()


def test_resume_keeps_what_was_swept_and_takes_resources_given_now():
    now = parse_options(["--resume", "--name", "s", "--cpus-per-trial", "1",
                         "--results-dir", "/moved"])
    merged = resume_options(now, SAVED, "/moved/s")
    # what is swept: from the saved sweep
    assert (merged.search, merged.num_samples, merged.seed, merged.space) == \
        ("optuna", 30, 7, "/spaces/s.yaml")
    # given now, even when equal to the default (1 CPU): taken
    assert merged.cpus_per_trial == 1.0
    # not given now: the saved value stays
    assert merged.max_concurrent == 3 and merged.data_dir == "/data"
    # where the sweep is now, never where it was
    assert (merged.results_dir, merged.sweep_dir, merged.resume) == ("/moved", "/moved/s", True)


def test_resume_refuses_another_space():
    now = parse_options(["--resume", "--name", "s", "--space", "/spaces/other.yaml"])
    with pytest.raises(SweepError) as err:
        resume_options(now, SAVED, "/r/s")
    assert str(err.value) == (
        "--resume continues sweep 's' with its own search space (/spaces/s.yaml); drop "
        "--space /spaces/other.yaml, or start a new sweep with another --name")


def test_resume_of_an_old_grid_that_saved_num_samples_1_still_passes_the_checks():
    saved = dict(SweepOptions(grid=True).saved(), num_samples=1)
    merged = resume_options(parse_options(["--resume", "--name", "g"]), saved, "/r/g")
    merged.check()
    assert merged.grid and merged.num_samples is None


def test_resume_takes_a_wider_space_for_a_grid_and_more_samples_for_a_search_only():
    """A grid may be resumed with a wider space (sweep.history.widen_grid checks it); a
    search keeps its own and takes --num-samples (an extension); a grid refuses it."""
    grid = SweepOptions(grid=True, space="/spaces/g.yaml").saved()
    wider = resume_options(parse_options(["--resume", "--name", "g", "--space",
                                          "/spaces/wider.yaml"]), grid, "/r/g")
    assert wider.space == "/spaces/wider.yaml" and wider.grid and wider.num_samples is None
    plain = resume_options(parse_options(["--resume", "--name", "g"]), grid, "/r/g")
    assert plain.space == "/spaces/g.yaml"
    with pytest.raises(SweepError) as err:
        resume_options(parse_options(["--resume", "--name", "g", "--num-samples", "4"]), grid,
                       "/r/g")
    assert str(err.value) == ("--num-samples extends a --search sweep; 'g' is a grid (each "
                              "combination once): to add combinations, resume it with --space "
                              "naming a wider grid")
    more = resume_options(parse_options(["--resume", "--name", "s", "--num-samples", "40"]),
                          SAVED, "/r/s")
    assert more.num_samples == 40 and more.space == "/spaces/s.yaml"
    assert resume_options(parse_options(["--resume", "--name", "s"]), SAVED,
                          "/r/s").num_samples == 30
    same = resume_options(parse_options(["--resume", "--name", "s", "--space",
                                         "/spaces/s.yaml"]), SAVED, "/r/s")
    assert same.space == "/spaces/s.yaml"   # its own space again is no change


def test_mlflow_without_a_value_means_the_store_beside_the_results():
    assert parse_options(["--grid"]).mlflow is None
    assert parse_options(["--grid", "--mlflow"]).mlflow == MLFLOW_DEFAULT
    assert parse_options(["--grid", "--mlflow", "http://h:5000"]).mlflow == "http://h:5000"
    assert parse_options(["--grid", "--mlflow"]).saved()["mlflow"] == MLFLOW_DEFAULT


def test_resume_keeps_the_sweeps_own_mlflow_tracking():
    """A restored Tuner keeps the callbacks it was started with: --mlflow cannot change
    on --resume, and saying the same again is fine."""
    saved = SweepOptions(grid=True, mlflow=MLFLOW_DEFAULT).saved()
    for argv in (["--resume", "--name", "g"], ["--resume", "--name", "g", "--mlflow"]):
        assert resume_options(parse_options(argv), saved, "/r/g").mlflow == MLFLOW_DEFAULT
    with pytest.raises(SweepError) as err:
        resume_options(parse_options(["--resume", "--name", "g", "--mlflow", "http://h:5000"]),
                       saved, "/r/g")
    assert str(err.value) == (
        "--resume continues sweep 'g' with its own MLflow tracking (--mlflow): Ray Tune "
        "restores it with the loggers it started with; drop --mlflow, or start a new sweep "
        "with another --name")
    other = SweepOptions(grid=True, mlflow="http://h:5000").saved()
    with pytest.raises(SweepError, match=r"tracking \(--mlflow http://h:5000\): Ray Tune"):
        resume_options(parse_options(["--resume", "--name", "g", "--mlflow"]), other, "/r/g")
    merged = resume_options(parse_options(["--resume", "--name", "g", "--dry-run"]), saved,
                            "/r/g")
    assert (merged.dry_run, merged.name, merged.given) == (True, "g", {"resume", "name",
                                                                       "dry_run"})
    old = SweepOptions(grid=True).saved()
    del old["mlflow"]   # a sweep.json from before --mlflow
    assert resume_options(parse_options(["--resume", "--name", "g"]), old, "/r/g").mlflow is None
    with pytest.raises(SweepError) as err:
        resume_options(parse_options(["--resume", "--name", "g", "--mlflow"]), old, "/r/g")
    assert "its own MLflow tracking (none: it was started without --mlflow): Ray Tune" in \
        str(err.value)


TWO_NODES = ClusterInfo([{"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 0.0}], "10.0.0.1:6379")


@pytest.mark.parametrize("cpus,gpus,max_concurrent,fits", [
    (1.0, 0.0, 0, 6),      # 4 + 2 trials
    (2.0, 0.0, 0, 3),      # 2 + 1
    (3.0, 0.0, 0, 1),      # only the 4-CPU node, once
    (1.0, 0.5, 0, 2),      # GPU-bound: 2 halves on the GPU node, none on the other
    (1.0, 0.0, 4, 4),      # capped by --max-concurrent
    (0.5, 0.0, 0, 12),     # fractions of a CPU
])
def test_check_resources_counts_trials_per_node(cpus, gpus, max_concurrent, fits):
    options = SweepOptions(grid=True, cpus_per_trial=cpus, gpus_per_trial=gpus,
                           max_concurrent=max_concurrent)
    assert check_resources(options, TWO_NODES) == fits


@pytest.mark.parametrize("cpus,gpus,max_concurrent,fragment", [
    (0.0, 0.0, 0, "--cpus-per-trial must be > 0"),
    (1.0, -1.0, 0, "--gpus-per-trial must be >= 0"),
    (1.0, 1.5, 0, "above 1 a trial needs whole GPUs"),
    (1.0, 0.0, -1, "--max-concurrent must be >= 0"),
    (5.0, 0.0, 0, "no node of the Ray cluster at 10.0.0.1:6379 can run a trial with 5 CPUs"),
    (1.0, 2.0, 0, "largest node: 4 CPUs, 1 GPUs"),
])
def test_check_resources_refuses_what_no_node_can_run(cpus, gpus, max_concurrent, fragment):
    options = SweepOptions(grid=True, cpus_per_trial=cpus, gpus_per_trial=gpus,
                           max_concurrent=max_concurrent)
    with pytest.raises(ResourceError, match=fragment.replace("(", r"\(")):
        check_resources(options, TWO_NODES)


def test_an_autoscaling_cluster_accepts_a_node_it_does_not_have_yet():
    options = SweepOptions(grid=True, cpus_per_trial=8.0, address="auto", autoscale=True)
    assert check_resources(options, TWO_NODES) == 1
    assert check_resources(SweepOptions(grid=True, cpus_per_trial=8.0, address="auto",
                                        autoscale=True, max_concurrent=5), TWO_NODES) == 5


@pytest.mark.parametrize("argv, message", [
    (["--grid", "--confirm"], "--confirm retrains the top configurations of a finished sweep: "
     "add --resume --name <the sweep>"),
    (["--grid", "--confirm-seeds", "3"],
     "--confirm-seeds is the number of seeds of --confirm: add --confirm"),
    (["--resume", "--name", "g", "--confirm", "-1"],
     "--confirm K must be >= 1 (or left out: the configurations tied with the best, at most "
     "5), got -1"),
    (["--resume", "--name", "g", "--confirm", "--confirm-seeds", "1"],
     "--confirm-seeds must be >= 2 (a spread over seeds needs two), got 1"),
    (["--resume", "--name", "g", "--confirm", "--space", "s.yaml"],
     "--confirm retrains the sweep's own configurations: drop --space"),
    (["--resume", "--name", "g", "--confirm", "--num-samples", "9"],
     "--confirm retrains the sweep's own configurations: drop --num-samples"),
    (["--resume", "--name", "g", "--confirm", "--warm-start", "w"],
     "--confirm retrains the sweep's own configurations: drop --warm-start"),
])
def test_what_confirm_refuses_from_its_flags_alone(argv, message):
    with pytest.raises(SweepError) as refused:
        parse_options(argv).check_confirm()
    assert str(refused.value) == message


@pytest.mark.parametrize("argv", [
    ["--grid"], ["--resume", "--name", "g", "--confirm"],
    ["--resume", "--name", "g", "--confirm", "0", "--confirm-seeds", "2"],
    ["--resume", "--name", "g", "--confirm", "3", "--cpus-per-trial", "2"],
])
def test_the_edges_of_confirms_checks_pass(argv):
    assert parse_options(argv).check_confirm() is None


def test_resume_carries_confirm_and_its_seeds_from_the_command_line():
    merged = resume_options(parse_options(["--resume", "--name", "s", "--confirm", "3",
                                           "--confirm-seeds", "4"]), SAVED, "/r/s")
    assert (merged.confirm, merged.confirm_seeds) == (3, 4)
    plain = resume_options(parse_options(["--resume", "--name", "s"]), SAVED, "/r/s")
    assert (plain.confirm, plain.confirm_seeds) == (None, SweepOptions().confirm_seeds)
