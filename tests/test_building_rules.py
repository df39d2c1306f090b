"""The rules of building on a sweep (tune_food.sweep.building_rules): what a warm start
may take, how many trials an extension adds, what a wider grid may change. Quick: real
records, real search spaces from YAML, real options; no sweep folder is read. These are
the tests mutmut runs against the module ([tool.mutmut] in pyproject.toml)."""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath

import pytest

from tune_food.common.errors import SweepError
from tune_food.sweep.building_rules import (
    History,
    _canonical,
    _count,
    _key,
    _values,
    check_same_images,
    check_same_metric,
    check_same_parameters,
    check_warm_start_search,
    check_warm_start_trials,
    check_wider_space,
    extension_start,
    new_configurations,
    ranking_images,
    space_difference,
)
from tune_food.sweep.options import SweepOptions
from tune_food.sweep.spaces import load_space
from tune_food.sweepdir.record import Planned, SweepState
from tune_food.train.hparams import PARAMS

WHERE = "--warm-start results/a"
VALIDATION = {"source": "shared", "images": 3, "sha256": ["a1", "b2", "c3"]}
TEST_SETS = {"tiny": {"images": 12, "sha256": "t1"}, "tiny2": {"images": 4, "sha256": "t2"}}


@pytest.fixture
def space(tmp_path):
    """A search space read from its YAML: ``space(parameters, head)``."""
    def load(parameters: str, head: str = "", name: str = "s.yaml"):
        path = tmp_path / name
        path.write_text(f"{head}parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                        f"  batch_size: 6\n{parameters}")
        return load_space(str(path))
    return load


def _raises(call, *args) -> str:
    """The one line of the SweepError ``call(*args)`` raises."""
    with pytest.raises(SweepError) as exc:
        call(*args)
    return str(exc.value)


# ---------------------------------------------------------------------- History

def test_histories_add_up_in_order_and_start_empty():
    first = History([{"lr": 0.1}], [0.5], ["results/a"])
    second = History([{"lr": 0.2}, {"lr": 0.3}], [0.7, 0.6], ["results/b"])
    both = first + second
    assert both == History([{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}], [0.5, 0.7, 0.6],
                           ["results/a", "results/b"])
    assert (second + first).sources == ["results/b", "results/a"]
    assert first.points == [{"lr": 0.1}] and second.rewards == [0.7, 0.6]   # untouched
    assert History() == History([], [], []) and History().points is not History().points


# ---------------------------------------------------------------------- --warm-start

def test_the_images_that_rank_are_the_validation_sets_for_a_val_metric():
    assert ranking_images(VALIDATION, TEST_SETS, "val_acc") == ("validation set",
                                                                ["a1", "b2", "c3"])
    assert ranking_images(VALIDATION, None, "val_loss") == ("validation set",
                                                            ["a1", "b2", "c3"])
    assert ranking_images(None, TEST_SETS, "val_acc") == ("validation set", None)
    assert ranking_images({"source": "none"}, TEST_SETS, "val_acc") == ("validation set",
                                                                        None)


def test_the_images_that_rank_are_the_test_sets_by_content_otherwise():
    """Whatever their names: (images, hash) pairs, sorted; the count made an int."""
    renamed = {"b": {"images": "4", "sha256": "t2"}, "a": {"images": 12.0, "sha256": "t1"}}
    assert ranking_images(VALIDATION, TEST_SETS, "test_acc") == ("test set",
                                                                 [(4, "t2"), (12, "t1")])
    what, fingerprint = ranking_images(None, renamed, "test_loss")
    assert (what, fingerprint) == ("test set", [(4, "t2"), (12, "t1")])
    assert [type(n) for n, _ in fingerprint] == [int, int]
    assert ranking_images(VALIDATION, None, "test_acc") == ("test set", None)
    assert ranking_images(VALIDATION, {}, "test_acc") == ("test set", [])


def test_a_fingerprint_counts_its_images():
    assert _count([(4, "t2"), (12, "t1")]) == 16
    assert _count([(7, "t1")]) == 7
    assert _count(["a1", "b2", "c3"]) == 3   # a validation set: one hash per image
    assert _count(["a1"]) == 1
    assert _count([]) == 0 and _count(None) == 0


def test_a_warm_start_needs_an_optuna_search():
    check_warm_start_search(SweepOptions(search="optuna"))
    assert _raises(check_warm_start_search, SweepOptions(search="random")) == (
        "--warm-start needs --search optuna (it hands the earlier trials to Optuna's study); "
        "got --search random")
    assert _raises(check_warm_start_search, SweepOptions(grid=True)) == (
        "--warm-start needs --search optuna (it hands the earlier trials to Optuna's study); "
        "got --grid")


def test_a_warm_start_needs_the_same_metric_and_mode(space):
    source = SweepState("a", "val_acc", "max")
    check_same_metric(WHERE, source, space("  val_fraction: 0.2\n", "metric: val_acc\n"))
    by_test = space("  val_fraction: 0.2\n", "metric: test_acc\n")
    assert _raises(check_same_metric, WHERE, source, by_test) == (
        "--warm-start results/a ranked by val_acc (max), this sweep by test_acc (max): its "
        "rewards would mislead the search; warm-start from a sweep ranked by the same metric")
    # a space's mode is its metric's (spaces.py refuses another): a record that says min
    minimised = SweepState("a", "val_acc", "min")
    by_val = space("  val_fraction: 0.2\n", "metric: val_acc\n")
    assert _raises(check_same_metric, WHERE, minimised, by_val).startswith(
        "--warm-start results/a ranked by val_acc (min), this sweep by val_acc (max): ")


def test_a_warm_start_needs_the_same_ranking_images():
    source = SweepState("a", "val_acc", "max", validation=VALIDATION, test_sets=TEST_SETS)
    check_same_images(WHERE, source, dict(VALIDATION), None, "val_acc")
    check_same_images(WHERE, source, None, dict(TEST_SETS), "test_acc")
    other = dict(VALIDATION, sha256=["a1", "b2", "d4", "e5"])
    assert _raises(check_same_images, WHERE, source, other, TEST_SETS, "val_acc") == (
        "--warm-start results/a ranked on another validation set than this sweep (3 images "
        "then, 4 now, other bytes): its rewards are not comparable; use the same data and "
        "val_fraction, or no --warm-start")
    fewer = {"tiny": {"images": 12, "sha256": "t1"}}
    assert _raises(check_same_images, WHERE, source, VALIDATION, fewer, "test_acc") == (
        "--warm-start results/a ranked on another test set than this sweep (16 images then, "
        "12 now, other bytes): its rewards are not comparable; use the same data and "
        "val_fraction, or no --warm-start")


def test_a_warm_start_from_a_sweep_that_did_not_record_its_images_is_refused():
    older = SweepState("a", "test_acc", "max")
    assert _raises(check_same_images, WHERE, older, VALIDATION, TEST_SETS, "test_acc") == (
        "--warm-start results/a: its sweep.json does not record the hashes of its test set "
        "(a sweep of an older tune_food): it cannot be checked that it ranked on the same "
        "images; warm-start from a newer sweep")
    assert "the hashes of its validation set " in _raises(
        check_same_images, WHERE, older, VALIDATION, TEST_SETS, "val_acc")


def test_a_warm_start_needs_the_same_parameter_names_in_any_order():
    check_same_parameters(WHERE, ["lr", "batch_size"], ["batch_size", "lr"])
    check_same_parameters(WHERE, [], [])
    assert _raises(check_same_parameters, WHERE, ["lr"], ["lr", "dropout"]) == (
        "--warm-start results/a sampled lr, this space samples lr, dropout: Optuna needs the "
        "same parameter names; warm-start from a sweep of the same parameters")
    assert _raises(check_same_parameters, WHERE, ["lr", "seed"], ["seed"]).startswith(
        "--warm-start results/a sampled lr, seed, this space samples seed: ")
    assert _raises(check_same_parameters, WHERE, [], ["lr"]).startswith(
        "--warm-start results/a sampled nothing, this space samples lr: ")
    assert _raises(check_same_parameters, WHERE, ["lr"], []).startswith(
        "--warm-start results/a sampled lr, this space samples nothing: ")


def test_a_warm_start_needs_completed_trials_with_finite_rewards():
    check_warm_start_trials(History([{"lr": 0.1}, {"lr": 0.2}], [0.5, 0.0], ["a"]),
                            "val_acc", "results/a")
    assert _raises(check_warm_start_trials, History(), "val_acc", "results/a") == (
        "--warm-start results/a has no completed trial to start from")
    nan = History([{"lr": 0.1}, {"lr": 0.2}], [0.5, math.nan], ["a"])
    assert _raises(check_warm_start_trials, nan, "val_loss", "results/a") == (
        "--warm-start results/a: a completed trial has val_loss = nan; Optuna needs finite "
        "values")
    inf = History([{"lr": 0.1}], [-math.inf], ["a"])
    assert _raises(check_warm_start_trials, inf, "val_loss", "results/a").endswith(
        "val_loss = -inf; Optuna needs finite values")


# ---------------------------------------------------------------------- --num-samples N

def test_an_extension_adds_trials_and_never_drops_any():
    assert extension_start(12, Planned(10), "g") == 10
    assert extension_start(11, Planned(10), "g") == 10
    assert extension_start(10, Planned(10), "g") is None   # a plain resume
    assert extension_start(5, None, "g") == 0              # planned nothing it recorded
    assert extension_start(0, None, "g") is None
    assert _raises(extension_start, 9, Planned(10), "g") == (
        "--num-samples 9: sweep 'g' holds 10 trials already and never drops any; pass more "
        "than 10 to add trials, or leave --num-samples out to resume it")


# ---------------------------------------------------------------------- a wider grid

def test_values_compare_across_spaces_whichever_way_yaml_wrote_a_number():
    assert _canonical(0.0) == 0 and type(_canonical(0.0)) is int
    assert _canonical(2.0) == 2 and type(_canonical(2.0)) is int
    assert _canonical(0.5) == 0.5 and type(_canonical(0.5)) is float
    assert _canonical([1.0, 2.5, [3.0]]) == [1, 2.5, [3]]
    assert _canonical((1.0, "a")) == [1, "a"]
    assert _canonical(True) is True and _canonical(None) is None and _canonical("x") == "x"
    assert _values([0.0, 1, "a", None, [1.0], {"b": 1, "a": 2.5}, PurePosixPath("p")]) == [
        "0", "1", '"a"', "null", "[1]", '{"a": 2.5, "b": 1}', '"p"']


def test_a_configuration_key_names_every_hyperparameter_sorted():
    key = _key({"epochs": 2.0, "lr": 0.01, "test_data": PurePosixPath("tiny2")})
    expected = {name: None for name in PARAMS}
    expected.update(epochs=2, lr=0.01, test_data="tiny2")
    assert key == json.dumps(expected, sort_keys=True)
    assert _key({"epochs": 2}) == _key({"epochs": 2.0, "unknown": 1})
    assert _key({"augment": True}) != _key({"augment": 1})


GRID = "  epochs: {{grid_search: {epochs}}}\n  lr: {lr}\n"


def test_a_wider_space_only_adds_values(space):
    ran = space(GRID.format(epochs="[1, 2]", lr=0.01), name="ran.yaml")
    wider = space(GRID.format(epochs="[1, 2, 3]", lr=0.01) + "  weight_decay: 0\n",
                  name="wider.yaml")
    assert space_difference(ran, wider) is None
    assert space_difference(ran, ran) is None
    check_wider_space(ran, wider, "wider.yaml", "g")


def test_a_wider_space_that_changes_what_ran_names_the_change(space):
    ran = space(GRID.format(epochs="[1, 2]", lr=0.01) + "  test_data: tiny\n"
                "  dropout: {grid_search: [0.1, 0.2]}\n", name="ran.yaml")

    def changed(parameters: str, head: str = "") -> str | None:
        return space_difference(ran, space(parameters, head, name="new.yaml"))

    base = "  test_data: tiny\n  dropout: {grid_search: [0.1, 0.2]}\n"
    assert changed(GRID.format(epochs="[1, 2]", lr=0.01) + base, "metric: test_loss\n") == (
        "the metric (test_acc (max) then, test_loss (min) now)")
    assert changed(GRID.format(epochs="[2]", lr=0.01) + base) == (
        "parameters.epochs: 1 ran and is not in the new space")
    assert changed(GRID.format(epochs="[1, 2]", lr=0.02) + base) == (
        "the constant parameters.lr: 0.01 ran and is not in the new space")
    assert changed(GRID.format(epochs="[1, 2]", lr=0.01) + base.replace("0.1, ", "")) == (
        "parameters.dropout: 0.1 ran and is not in the new space")
    assert changed(GRID.format(epochs="[1, 2]", lr=0.01) + base.replace(
        "test_data: tiny", "test_data: {grid_search: [tiny2, tiny3]}")) == (
        'the test set (parameters.test_data: "tiny" then, "tiny2", "tiny3" now)')
    ran_on_two = space(GRID.format(epochs="[1]", lr=0.01) + "  test_data: {grid_search: "
                       "[tiny, tiny2]}\n", name="two.yaml")
    assert space_difference(ran_on_two, space(GRID.format(epochs="[1]", lr=0.01) +
                                              "  test_data: tiny3\n", name="new.yaml")) == (
        'the test set (parameters.test_data: "tiny", "tiny2" then, "tiny3" now)')
    assert changed(GRID.format(epochs="[3, 4]", lr=0.01) + base) == (
        "parameters.epochs: 1, 2 ran and is not in the new space")
    new = space(GRID.format(epochs="[2]", lr=0.01) + base, name="new.yaml")
    assert _raises(check_wider_space, ran, new, "new.yaml", "g") == (
        "--space new.yaml changes what sweep 'g' ran: parameters.epochs: 1 ran and is not in "
        "the new space; a wider grid may only add values (start a new sweep with another "
        "--name to change them)")


def test_a_wider_grid_runs_only_the_configurations_not_planned():
    trials = [{"epochs": 1, "lr": 0.01}, {"epochs": 2, "lr": 0.01}, {"epochs": 3, "lr": 0.01},
              {"epochs": 1, "lr": 0.02}]
    planned = Planned(2, [{"epochs": 1.0, "lr": 0.01}, {"epochs": 2, "lr": 0.01}])
    assert new_configurations(trials, planned) == [trials[2], trials[3]]
    assert new_configurations(trials, Planned(0)) == trials
    assert new_configurations(trials, None) == trials
