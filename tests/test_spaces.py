"""Search spaces: the shipped files, and errors that name the file, key and fix."""

from __future__ import annotations

import os

import pytest
from ray import tune

from tune_food.common.errors import SpaceError
from tune_food.sweep.plan import expand_grid, trial_name
from tune_food.sweep.spaces import default_space_dir, load_space

SPACES = default_space_dir()


def test_grid_space_is_the_seed_grid_on_lite_models():
    space = load_space(os.path.join(SPACES, "grid.yaml"))
    trials = expand_grid(space)
    assert len(trials) == 8
    assert {t["model"] for t in trials} == {"efficientnet_lite0", "efficientnet_lite2"}
    assert {t["data"] for t in trials} == {"pizza_steak_sushi", "pizza_steak_sushi_20_percent"}
    assert {t["epochs"] for t in trials} == {5, 10}
    assert {(t["lr"], t["batch_size"], t["seed"], tuple(t["test_data"])) for t in trials} == \
        {(0.001, 32, 42, ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"))}
    assert (space.metric, space.mode) == ("test_acc", "max")
    names = {trial_name(t, space.varied) for t in trials}
    assert "efficientnet_lite2-pizza_steak_sushi_20_percent-10_epochs" in names
    assert len(names) == 8


def test_seed_space_uses_b0_and_b2():
    space = load_space(os.path.join(SPACES, "seed.yaml"))
    assert space.models == ["efficientnet_b0", "efficientnet_b2"]
    assert len(expand_grid(space)) == 8


def test_optuna_space_samples():
    space = load_space(os.path.join(SPACES, "optuna.yaml"))
    assert not space.is_grid and space.metric == "val_acc"
    assert isinstance(space.param_space["lr"], tune.search.sample.Float)
    assert space.values["lr"] == [0.0001, 0.03]


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


BASE = "parameters:\n  model: efficientnet_lite0\n  data: tiny\n"


@pytest.mark.parametrize("extra,fragment", [
    ("  learning_rate: 0.1\n", "parameters.learning_rate: unknown parameter"),
    ("  seeds: [0, 1]\n", "parameters.seeds: seeds is a top-level key, beside parameters"),
    ("  lr: 0\n", "parameters.lr: 0 is not allowed"),
    ("  lr: {loguniform: [0, 1]}\n", "low must be > 0"),
    ("  epochs: 0\n", "parameters.epochs: 0 is not allowed"),
    ("  batch_size: 0\n", "parameters.batch_size: 0 is not allowed"),
    ("  dropout: 1.0\n", "parameters.dropout: 1.0 is not allowed"),
    ("  epochs: {grid_search: [5, 5]}\n", "lists a value twice"),
    ("  epochs: {between: [1, 3]}\n", "exactly one key out of grid_search"),
    ("  lr: {uniform: [0.1, 0.01]}\n", "must be below high"),
])
def test_bad_values_name_file_and_key(tmp_path, extra, fragment):
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert path in str(err.value) and fragment in str(err.value)


def test_unknown_model_lists_allowed(tmp_path):
    path = _write(tmp_path, "parameters:\n  model: {grid_search: [efficientnet_lite0, effnetb9]}\n"
                            "  data: tiny\n")
    with pytest.raises(SpaceError, match="'effnetb9' is not allowed; use one of efficientnet_b0"):
        load_space(path)


def test_syntax_error_has_line(tmp_path):
    path = _write(tmp_path, "parameters:\n  model: [efficientnet_lite0\n  data: x\n")
    with pytest.raises(SpaceError, match=r"YAML syntax error at line \d+"):
        load_space(path)


def test_missing_file_and_top_level_key(tmp_path):
    with pytest.raises(SpaceError, match="not found"):
        load_space(str(tmp_path / "nope.yaml"))
    with pytest.raises(SpaceError, match="unknown key 'metrics'"):
        load_space(_write(tmp_path, "metrics: test_acc\n" + BASE))
    with pytest.raises(SpaceError, match="parameters.model: missing"):
        load_space(_write(tmp_path, "parameters:\n  data: tiny\n"))


def test_seeds_repeat_every_configuration(tmp_path):
    space = load_space(_write(tmp_path, BASE + "  epochs: {grid_search: [1, 2]}\nseeds: [1, 2, 3]\n"))
    trials = expand_grid(space)
    assert len(trials) == 6 and sorted({t["seed"] for t in trials}) == [1, 2, 3]


def test_random_search_gets_rays_seeded_variant_generator_and_asha(tmp_path):
    """``--search random`` (end to end only the Optuna search runs a real sweep, in
    test_truth.py): Ray's variant generator, 20 samples by default, and ASHA
    with rungs at epochs 2 and 6 of 9."""
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search import BasicVariantGenerator

    from tune_food.sweep.options import NUM_SAMPLES, SweepOptions
    from tune_food.sweep.search import make_search, rungs_of

    space = load_space(_write(tmp_path, BASE + "  lr: {loguniform: [0.001, 0.1]}\n"
                                               "  epochs: 9\n"))
    alg, scheduler, samples = make_search(space, SweepOptions(search="random", seed=7))
    assert isinstance(alg, BasicVariantGenerator) and samples == NUM_SAMPLES == 20
    assert isinstance(scheduler, AsyncHyperBandScheduler)
    assert rungs_of(scheduler, space) == (2, 6, 9)
    assert make_search(space, SweepOptions(search="random", num_samples=5))[2] == 5
    _, fifo, once = make_search(space, SweepOptions(grid=True))
    assert not isinstance(fifo, AsyncHyperBandScheduler) and once == 1
    _, asha, _ = make_search(space, SweepOptions(grid=True, scheduler="asha"))
    assert isinstance(asha, AsyncHyperBandScheduler)


@pytest.mark.parametrize("text, message", [
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {choice: []}\n",
     "parameters.epochs.choice: needs a non-empty list of values"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {grid_search: 3}\n",
     "parameters.epochs.grid_search: needs a non-empty list of values"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {choice: [2, 0]}\n",
     "parameters.epochs.choice: 0 is not allowed; use an integer >= 1"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {choice: [2, 2]}\n",
     "parameters.epochs.choice: lists a value twice: [2, 2]"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [2]}\n",
     "parameters.epochs.randint: needs [low, high], two numbers"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [2, x]}\n",
     "parameters.epochs.randint: needs [low, high], two numbers"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: 2}\n",
     "parameters.epochs.randint: needs [low, high], two numbers"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [5, 5]}\n",
     "parameters.epochs.randint: low 5 must be below high 5"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [1.5, 5]}\n",
     "parameters.epochs.randint: needs integer bounds [low, high) "),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [2, 5.0]}\n",
     "parameters.epochs.randint: needs integer bounds [low, high) "),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {randint: [0, 5]}\n",
     "parameters.epochs.randint: 0 is not allowed; use an integer >= 1"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  val_fraction: {randint: [0, 2]}\n",
     "parameters.val_fraction.randint: 1 is not allowed; use a number in [0, 1)"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  lr: {loguniform: [-1, 1]}\n",
     "parameters.lr.loguniform: low must be > 0 for a log scale, got -1"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  dropout: {uniform: [0.5, 1]}\n",
     "parameters.dropout.uniform: 1 is not allowed; use a number in [0, 1), or null for "
     "the model's default"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {uniform: [1, 2], "
     "choice: [1]}\n", "parameters.epochs: a mapping must have exactly one key out of "
     "grid_search, choice, loguniform, uniform, randint; got ['uniform', 'choice']"),
    ("metric: val_f1\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "metric: 'val_f1' is not reported; use one of test_acc, test_loss, val_acc, val_loss, "
     "train_acc, train_loss"),
    ("metric: val_loss\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "metric: val_loss needs parameters.val_fraction > 0 in every trial"),
    ("metric: val_acc\nparameters:\n  model: efficientnet_lite0\n  data: d\n"
     "  val_fraction: {grid_search: [0.0, 0.2]}\n",
     "metric: val_acc needs parameters.val_fraction > 0 in every trial"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n"
     "  val_fraction: {grid_search: [0.1, 0.2]}\n",
     "parameters.val_fraction: must be one constant, so that every trial is validated on "
     "the same images; got {'grid_search': [0.1, 0.2]}"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n"
     "  val_fraction: {uniform: [0.1, 0.2]}\n",
     "parameters.val_fraction: must be one constant, so that every trial is validated on "
     "the same images; got {'uniform': [0.1, 0.2]}"),
    ("mode: up\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "mode: 'up' is not allowed; use max or min"),
    ("mode: min\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "mode: min would rank the worst test_acc first; use mode: max (or leave mode out)"),
    ("metric: test_loss\nmode: max\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "mode: max would rank the worst test_loss first; use mode: min (or leave mode out)"),
    ("seeds: [1, 1]\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "seeds: needs a list of distinct integers >= 0, got [1, 1]"),
    ("seeds: []\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "seeds: needs a list of distinct integers >= 0, got []"),
    ("seeds: [-1]\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "seeds: needs a list of distinct integers >= 0, got [-1]"),
    ("seeds: 3\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "seeds: needs a list of distinct integers >= 0, got 3"),
    ("seeds: [1]\nparameters:\n  model: efficientnet_lite0\n  data: d\n  seed: 3\n",
     "seeds: use either seeds or parameters.seed, not both"),
    ("- a\n- b\n", "expected a mapping with keys metric, mode, parameters, seeds"),
    ("metric: test_acc\n", "parameters: needs a mapping of hyperparameters (model, data, "
     "test_data, epochs, lr, batch_size, seed, dropout, weight_decay, label_smoothing, "
     "val_fraction, augment)"),
    ("parameters: {}\n", "parameters: needs a mapping of hyperparameters (model, data, "
     "test_data, epochs, lr, batch_size, seed, dropout, weight_decay, label_smoothing, "
     "val_fraction, augment)"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  test_data: a/b\n",
     "parameters.test_data: 'a/b' is not allowed; use a dataset folder name whose test/ split "
     "tests every trial, a list of them (their test splits united, each distinct image "
     "once), or null (each dataset's own test/)"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  test_data: ''\n",
     "parameters.test_data: '' is not allowed; use a dataset folder name whose test/ split "
     "tests every trial, a list of them (their test splits united, each distinct image "
     "once), or null (each dataset's own test/)"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  test_data: [a, 3]\n",
     "parameters.test_data: ['a', 3] is not allowed; use a dataset folder name whose test/ "
     "split tests every trial, a list of them (their test splits united, each distinct image "
     "once), or null (each dataset's own test/)"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  val_fraction: {choice: [0.2]}\n",
     "parameters.val_fraction: must be one constant, so that every trial is validated on "
     "the same images; got {'choice': [0.2]}"),
    ("parameters: \x01\n", "YAML syntax error: unacceptable character #x0001: special "
     "characters are not allowed"),
    ("metrics: test_acc\nparameters:\n  model: efficientnet_lite0\n  data: d\n",
     "unknown key 'metrics'; allowed top-level keys: metric, mode, parameters, seeds"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  learning_rate: 0.1\n",
     "parameters.learning_rate: unknown parameter; allowed: model, data, test_data, epochs, "
     "lr, batch_size, seed, dropout, weight_decay, label_smoothing, val_fraction, augment"),
])
def test_every_refusal_of_a_space_is_its_exact_message(tmp_path, text, message):
    """Each way a space is refused, with the whole message: the file, the key, the rule."""
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(err.value) == f"{path}: {message}"


def test_every_sampler_parses_to_its_domain_values_metric_and_mode(tmp_path):
    """The parsed space of each sampler kind, with a metric and mode written out: the Ray
    Tune domain and its bounds, the values the trials can take (a randint's high bound
    excluded), which parameters vary, and the defaults filled in."""
    from ray.tune.search.sample import Categorical, Float, Integer

    path = _write(tmp_path, "metric: val_loss\nmode: min\nparameters:\n"
                  "  model: {choice: [efficientnet_lite0, efficientnet_lite1]}\n  data: d\n"
                  "  epochs: {randint: [3, 6]}\n  lr: {loguniform: [0.001, 0.1]}\n"
                  "  dropout: {uniform: [0.1, 0.4]}\n  batch_size: {grid_search: [8, 16]}\n"
                  "  val_fraction: 0.25\n")
    space = load_space(path)
    assert (space.metric, space.mode) == ("val_loss", "min")
    ps = space.param_space
    assert isinstance(ps["epochs"], Integer) and (ps["epochs"].lower, ps["epochs"].upper) == (3, 6)
    assert space.values["epochs"] == [3, 5]
    assert isinstance(ps["lr"], Float) and (ps["lr"].lower, ps["lr"].upper) == (0.001, 0.1)
    assert type(ps["lr"].sampler).__name__ == "_LogUniform"
    assert type(ps["dropout"].sampler).__name__ == "_Uniform"
    assert space.values["lr"] == [0.001, 0.1] and space.values["dropout"] == [0.1, 0.4]
    assert isinstance(ps["model"], Categorical)
    assert ps["model"].categories == ["efficientnet_lite0", "efficientnet_lite1"]
    assert ps["batch_size"] == {"grid_search": [8, 16]} and space.values["batch_size"] == [8, 16]
    assert space.varied == ["model", "epochs", "lr", "batch_size", "dropout"]
    assert ps["val_fraction"] == 0.25 and ps["seed"] == 42 and ps["weight_decay"] == 0.0
    assert space.values["seed"] == [42] and space.models == ["efficientnet_lite0",
                                                            "efficientnet_lite1"]
    defaults = load_space(_write(tmp_path, "parameters:\n  model: efficientnet_lite0\n"
                                 "  data: d\n  val_fraction: 0.2\n"))
    assert (defaults.metric, defaults.mode) == ("val_acc", "max")
    loss = load_space(_write(tmp_path, "metric: train_loss\nparameters:\n"
                             "  model: efficientnet_lite0\n  data: d\n"))
    assert (loss.metric, loss.mode) == ("train_loss", "min")


@pytest.mark.parametrize("text, message", [
    ("parameters:\n  model: efficientnet_lite0\n  data: [d\n",
     "YAML syntax error at line 4, column 1: expected ',' or ']', but got '<stream end>'"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\n  model: efficientnet_lite1\n",
     "YAML syntax error at line 4, column 3: key 'model' is given twice"),
    ("parameters:\n  model: efficientnet_lite0\n  data: d\nparameters:\n  data: e\n",
     "YAML syntax error at line 4, column 1: key 'parameters' is given twice"),
])
def test_yaml_errors_say_where(tmp_path, text, message):
    """A syntax error and a key given twice (PyYAML would let the last one win), with the
    line and column (1-based) where the problem is."""
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(err.value) == f"{path}: {message}"


def test_an_exponent_without_a_dot_is_a_number(tmp_path):
    space = load_space(_write(tmp_path, "parameters:\n  model: efficientnet_lite0\n  data: d\n"
                              "  lr: 1e-3\n  weight_decay: {loguniform: [1e-6, 1E-2]}\n"))
    assert space.param_space["lr"] == 0.001 and space.values["weight_decay"] == [1e-6, 0.01]


def test_a_folder_is_not_a_space_and_the_defaults_are_beside_the_package(tmp_path):
    from tune_food.train.hparams import PARAMS, with_defaults

    with pytest.raises(SpaceError) as err:
        load_space(str(tmp_path))
    assert str(err.value) == (f"search space {tmp_path} is a folder; pass a YAML file with "
                              f"--space (examples in {SPACES})")
    # the repository's search_spaces/, installed as the package tune_food.search_spaces
    assert os.path.basename(SPACES) == "search_spaces"
    assert sorted(f for f in os.listdir(SPACES) if f.endswith(".yaml")) == [
        "grid.yaml", "optuna.yaml", "seed.yaml"]
    assert with_defaults({"model": "m", "data": "d", "lr": 0.5}) == {
        **{k: p.default for k, p in PARAMS.items() if k not in ("model", "data")},
        "model": "m", "data": "d", "lr": 0.5}


def test_the_parsed_space_keeps_its_file_its_text_and_single_choices(tmp_path):
    text = ("parameters:\n  model: efficientnet_lite0\n  data: d\n  epochs: {choice: [3]}\n"
            "seeds: [4, 5]\n")
    path = _write(tmp_path, text)
    space = load_space(path)
    assert space.path == path and space.raw == {
        "parameters": {"model": "efficientnet_lite0", "data": "d", "epochs": {"choice": [3]}},
        "seeds": [4, 5]}
    assert space.values["seed"] == [4, 5] and space.param_space["seed"] == {
        "grid_search": [4, 5]}
    assert space.varied == ["epochs", "seed"]   # a sampler varies even with one value
