"""Search spaces: the shipped files, and errors that name the file, key and fix."""

from __future__ import annotations

import os

import pytest
from ray import tune

from tune_food.errors import SpaceError
from tune_food.spaces import default_space_dir, load_space
from tune_food.plan import expand_grid, trial_name

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

    from tune_food.search import make_search, rungs_of

    space = load_space(_write(tmp_path, BASE + "  lr: {loguniform: [0.001, 0.1]}\n"
                                               "  epochs: 9\n"))
    alg, scheduler, samples = make_search(space, "random", None, 7, 0, None)
    assert isinstance(alg, BasicVariantGenerator) and samples == 20
    assert isinstance(scheduler, AsyncHyperBandScheduler)
    assert rungs_of(scheduler, space) == (2, 6, 9)
    assert make_search(space, "random", None, 7, 0, 5)[2] == 5
    _, fifo, once = make_search(space, None, None, 7, 0, None)
    assert not isinstance(fifo, AsyncHyperBandScheduler) and once == 1
