"""TensorBoard: what its HParams dashboard reads back from a real sweep's event files."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tune_food.tb import TensorBoardCallback, short_labels

SPACES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "search_spaces")


def dashboard_view(logdir: str):
    """The HParams experiment exactly as TensorBoard's hparams plugin serves it to the
    dashboard (its backend over TensorBoard's data provider), each run's hyperparameter
    values (session start info) and the run's scalar tags."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, metadata

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    ctx = backend_context.Context(base_plugin.TBContext(logdir=logdir, multiplexer=mux,
                                                        data_provider=provider))
    request = tb_context.RequestContext()
    content = ctx.hparams_metadata(request, "")
    experiment = ctx.experiment_from_metadata(
        request, "", True, content, ctx.hparams_from_data_provider(request, "", None))
    sessions = {}
    for run, tags in content.items():
        start = metadata.parse_session_start_info_plugin_data(
            tags[metadata.SESSION_START_INFO_TAG])
        sessions[run] = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    scalars = provider.list_scalars(request, experiment_id="", plugin_name="scalars")
    return experiment, sessions, {run: set(tags) for run, tags in scalars.items()}


@pytest.mark.slow
def test_hparams_dashboard_reads_back_the_sweep(small_sweep):
    """The 2-trial sweep (Lite0, epochs 1 and 2, batch 5, lr 0.01): the varied
    hyperparameter is marked differing and listed first, integers are shown as
    integers, the dropout resolved to Lite0's 0.2, metrics are the per-epoch tags."""
    from tensorboard.plugins.hparams import api_pb2

    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    experiment, sessions, scalars = dashboard_view(exp)
    infos = [(h.name, h.differs, api_pb2.DataType.Name(h.type)) for h in experiment.hparam_infos]
    assert infos[0] == ("epochs", True, "DATA_TYPE_STRING")
    assert [n for n, differs, _ in infos if differs] == ["epochs"]
    names = [n for n, _, _ in infos]
    assert sorted(names) == sorted(["model", "data", "test_data", "epochs", "lr", "batch_size",
                                    "seed", "dropout", "weight_decay", "label_smoothing",
                                    "val_fraction", "augment"])
    epochs = next(h for h in experiment.hparam_infos if h.name == "epochs")
    assert sorted(v.string_value for v in epochs.domain_discrete.values) == ["1", "2"]
    assert [m.name.tag for m in experiment.metric_infos] == [
        "accuracy/test", "loss/test", "accuracy/train", "loss/train"]
    assert {os.path.basename(r) for r in sessions} == set(board["logdir"])
    for _, row in board.iterrows():
        values = sessions[row["logdir"]]
        assert values["epochs"] == str(row["epochs"])          # "2", not 2.0
        assert values["batch_size"] == "5" and values["seed"] == "42"
        assert values["lr"] == "0.01" and values["dropout"] == "0.2"   # resolved, not None
        assert values["model"] == "efficientnet_lite0" and values["data"] == "tiny"
        assert values["augment"] is False and values["test_data"] == "null"
        assert row["dropout"] == 0.2   # the leaderboard shows the same dropout
        tags = scalars[row["logdir"]]
        assert {"accuracy/test", "loss/test", "accuracy/train", "loss/train"} <= tags
        assert not [t for t in tags if t.startswith("final/")]


def test_search_ranges_stay_numbers_and_listed_values_are_text():
    """optuna.yaml: uniform/loguniform parameters are numbers (TensorBoard can filter and
    plot them on an axis), choice and randint values are text; every drawn one differs."""
    from tune_food.spaces import load_space

    space = load_space(os.path.join(SPACES, "optuna.yaml"))
    cb = TensorBoardCallback.for_space(space)
    config = {"model": "efficientnet_lite1", "data": "pizza_steak_sushi_20_percent",
              "test_data": "pizza_steak_sushi", "lr": 0.00123, "weight_decay": 1e-5,
              "dropout": 0.25, "batch_size": 64, "epochs": 7, "label_smoothing": 0.1,
              "val_fraction": 0.2, "seed": 42, "augment": False}
    values = cb.hparam_values(config, {"head_dropout": 0.25})
    assert values == {"model": "efficientnet_lite1", "data": "pss_20%", "test_data": "pss",
                      "lr": 0.00123, "weight_decay": 1e-5, "dropout": 0.25,
                      "batch_size": "64", "epochs": "7", "label_smoothing": 0.1,
                      "val_fraction": "0.2", "seed": "42", "augment": False}
    assert all(type(values[k]) is float for k in ("lr", "weight_decay", "dropout"))


def test_default_dropout_is_resolved_per_model():
    """seed.yaml leaves dropout null: B0 trains with 0.2, B2 with 0.3 (torchvision's)."""
    from tune_food.spaces import load_space

    cb = TensorBoardCallback.for_space(load_space(os.path.join(SPACES, "seed.yaml")))
    config = {"model": "efficientnet_b2", "data": "pizza_steak_sushi", "dropout": None}
    assert cb.hparam_values(config, {"head_dropout": 0.3})["dropout"] == "0.3"


def test_short_labels_keep_names_apart():
    assert short_labels(["pizza_steak_sushi", "pizza_steak_sushi_20_percent"]) == {
        "pizza_steak_sushi": "pss", "pizza_steak_sushi_20_percent": "pss_20%"}
    assert short_labels(["tiny"]) == {"tiny": "tiny"}
    # one shared word is no long start: only the % rule
    assert short_labels(["food_10_percent", "food_a"]) == {
        "food_10_percent": "food_10%", "food_a": "food_a"}
    # shortening that would merge two names is not done
    assert short_labels(["a_b_1_percent", "a_b_1%"]) == {
        "a_b_1_percent": "a_b_1_percent", "a_b_1%": "a_b_1%"}
