"""TensorBoard: what its HParams dashboard reads back from a real sweep's event files."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from tune_food.results.tb import TensorBoardCallback, short_labels
from tune_food.sweepdir.layout import HPARAMS_RUN

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
        if metadata.SESSION_START_INFO_TAG not in tags:   # the sweep's hparams run
            continue
        start = metadata.parse_session_start_info_plugin_data(
            tags[metadata.SESSION_START_INFO_TAG])
        sessions[run] = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    scalars = provider.list_scalars(request, experiment_id="", plugin_name="scalars")
    return experiment, sessions, {run: set(tags) for run, tags in scalars.items()}


@pytest.mark.slow
def test_hparams_dashboard_reads_back_the_sweep(small_sweep):
    """The 2-trial sweep (Lite0, epochs 1 and 2, batch 5, lr 0.01): the varied
    hyperparameter is marked differing and listed first, numbers are numbers (so the
    HParams table sorts 10 after 5) and only names are text, the dropout resolved to
    Lite0's 0.2, metrics are the per-epoch tags."""
    from tensorboard.plugins.hparams import api_pb2

    proc, exp = small_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = pd.read_csv(os.path.join(exp, "leaderboard.csv"))
    experiment, sessions, scalars = dashboard_view(exp)
    infos = [(h.name, h.differs, api_pb2.DataType.Name(h.type)) for h in experiment.hparam_infos]
    assert infos[0] == ("epochs", True, "DATA_TYPE_FLOAT64")
    assert [n for n, differs, _ in infos if differs] == ["epochs"]
    names = [n for n, _, _ in infos]
    assert sorted(names) == sorted(["model", "data", "test_data", "epochs", "lr", "batch_size",
                                    "seed", "dropout", "weight_decay", "label_smoothing",
                                    "val_fraction", "augment"])
    types = {n: t for n, _, t in infos}
    assert {n for n, t in types.items() if t == "DATA_TYPE_FLOAT64"} == {
        "epochs", "lr", "batch_size", "seed", "dropout", "weight_decay", "label_smoothing",
        "val_fraction"}
    assert {n for n, t in types.items() if t == "DATA_TYPE_STRING"} == {
        "model", "data", "test_data"}
    assert types["augment"] == "DATA_TYPE_BOOL"
    epochs = next(h for h in experiment.hparam_infos if h.name == "epochs")
    assert sorted(v.number_value for v in epochs.domain_discrete.values) == [1.0, 2.0]
    assert [m.name.tag for m in experiment.metric_infos] == [
        "accuracy/test", "loss/test", "accuracy/train", "loss/train"]
    assert {os.path.basename(r) for r in sessions} == set(board["logdir"])
    for _, row in board.iterrows():
        values = sessions[row["logdir"]]
        assert values["epochs"] == float(row["epochs"])        # a number, not "2"
        assert all(type(values[k]) is float for k in ("epochs", "batch_size", "seed", "lr",
                                                       "dropout", "val_fraction"))
        assert values["batch_size"] == 5.0 and values["seed"] == 42.0
        assert values["lr"] == 0.01 and values["dropout"] == 0.2   # resolved, not None
        assert values["model"] == "efficientnet_lite0" and values["data"] == "tiny"
        assert values["augment"] is False and values["test_data"] == "null"
        assert row["dropout"] == 0.2   # the leaderboard shows the same dropout
        tags = scalars[row["logdir"]]
        assert {"accuracy/test", "loss/test", "accuracy/train", "loss/train"} <= tags
        assert not [t for t in tags if t.startswith("final/")]


def test_numbers_stay_numbers_and_only_names_are_text():
    """optuna.yaml: drawn (uniform, loguniform, randint) and listed (choice, constant)
    numbers are numbers, ints staying ints (TensorBoard sorts them in numeric order and
    can plot them on an axis); dataset and model names are text."""
    from tune_food.sweep.spaces import load_space

    space = load_space(os.path.join(SPACES, "optuna.yaml"))
    cb = TensorBoardCallback.for_space(space)
    config = {"model": "efficientnet_lite1", "data": "pizza_steak_sushi_20_percent",
              "test_data": "pizza_steak_sushi", "lr": 0.00123, "weight_decay": 1e-5,
              "dropout": 0.25, "batch_size": 64, "epochs": 7, "label_smoothing": 0.1,
              "val_fraction": 0.2, "seed": 42, "augment": False}
    values = cb.hparam_values(config, {"head_dropout": 0.25})
    assert values == {"model": "efficientnet_lite1", "data": "pss_20%", "test_data": "pss",
                      "lr": 0.00123, "weight_decay": 1e-5, "dropout": 0.25,
                      "batch_size": 64, "epochs": 7, "label_smoothing": 0.1,
                      "val_fraction": 0.2, "seed": 42, "augment": False}
    assert all(type(values[k]) is float for k in ("lr", "weight_decay", "dropout",
                                                   "label_smoothing", "val_fraction"))
    assert all(type(values[k]) is int for k in ("batch_size", "epochs", "seed"))


def test_default_dropout_is_resolved_per_model():
    """seed.yaml leaves dropout null: B0 trains with 0.2, B2 with 0.3 (torchvision's)."""
    from tune_food.sweep.spaces import load_space

    cb = TensorBoardCallback.for_space(load_space(os.path.join(SPACES, "seed.yaml")))
    config = {"model": "efficientnet_b2", "data": "pizza_steak_sushi", "dropout": None}
    assert cb.hparam_values(config, {"head_dropout": 0.3})["dropout"] == 0.3


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


EVERY_DOMAIN = """\
parameters:
  model: {grid_search: [efficientnet_lite0, efficientnet_lite1]}
  data: {choice: [pss_a, pss_b]}
  test_data: {choice: [null, pss_a, [pss_a, pss_b]]}
  epochs: {choice: [2, 10]}
  batch_size: {randint: [8, 10]}
  lr: {loguniform: [0.0001, 0.1]}
  weight_decay: {uniform: [0, 1]}
  dropout: {grid_search: [null, 0.3]}
  label_smoothing: {choice: [0, 0.1]}
  val_fraction: 0
  seed: {randint: [0, 1000]}
  augment: {choice: [true, false]}
"""


def _tune_with_callback(tmp_path, space, fn, num_samples, max_failures=0):
    """A real Ray Tune run of ``fn`` over ``space``'s param_space with the sweep's
    TensorBoard callback alone; returns the experiment folder."""
    import ray
    from ray import tune

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    callback = TensorBoardCallback.for_space(space)
    callback.write_experiment(str(tmp_path / "exp"))   # as the sweep does before its Tuner
    try:
        tune.Tuner(fn, param_space=space.param_space,
                   tune_config=tune.TuneConfig(num_samples=num_samples),
                   run_config=tune.RunConfig(
                       name="exp", storage_path=str(tmp_path), verbose=0,
                       callbacks=[callback],
                       failure_config=tune.FailureConfig(max_failures=max_failures))).fit()
    finally:
        ray.shutdown()
    return str(tmp_path / "exp")


@pytest.mark.slow   # a real Ray Tune run
def test_hparams_filter_offers_every_value_the_trials_used(tmp_path, monkeypatch):
    """Every kind of domain a space can hold (grid_search of strings, numbers and mixed
    values with null, choice, randint, uniform with integer bounds, loguniform, a
    constant): TensorBoard's HParams filter, read back through its plugin backend, offers
    exactly the values each randint or list can take (randint [8, 10) gives 8 and 9) or a
    range holding every drawn value, and every trial is in view."""
    from tensorboard.plugins.hparams import api_pb2

    from tune_food.sweep.spaces import load_space

    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    path = tmp_path / "every.yaml"
    path.write_text(EVERY_DOMAIN)
    space = load_space(str(path))
    default_dropout = {"efficientnet_lite0": 0.2, "efficientnet_lite1": 0.2}

    def trainable(config):
        from ray import tune
        dropout = config["dropout"] if config["dropout"] is not None else \
            default_dropout[config["model"]]
        tune.report({"epoch": 1, "test_acc": 0.5, "head_dropout": dropout})

    exp = _tune_with_callback(tmp_path, space, trainable, num_samples=5)
    experiment, sessions, _ = dashboard_view(exp)
    assert len(sessions) == 20   # 2 models x 2 dropouts x 5 samples
    infos = {h.name: h for h in experiment.hparam_infos}
    listed = {name: {getattr(v, v.WhichOneof("kind")) for v in h.domain_discrete.values}
              for name, h in infos.items() if h.HasField("domain_discrete")}
    assert listed["batch_size"] == {8.0, 9.0}
    assert listed["model"] == {"efficientnet_lite0", "efficientnet_lite1"}
    assert listed["epochs"] == {2.0, 10.0}
    assert listed["label_smoothing"] == {0.0, 0.1}
    assert listed["dropout"] == {0.2, 0.3}               # null resolved to the model's
    assert listed["augment"] == {True, False}
    assert listed["val_fraction"] == {0.0}
    # numbers sort as numbers in the HParams table (10 after 2), names and lists as text
    for name in ("batch_size", "epochs", "label_smoothing", "dropout", "val_fraction"):
        assert api_pb2.DataType.Name(infos[name].type) == "DATA_TYPE_FLOAT64", name
    for name in ("model", "data", "test_data"):
        assert api_pb2.DataType.Name(infos[name].type) == "DATA_TYPE_STRING", name
    assert len(listed["test_data"]) == 3 and "null" in listed["test_data"]
    for name in ("lr", "weight_decay", "seed"):
        assert infos[name].HasField("domain_interval"), name
    assert (infos["seed"].domain_interval.min_value, infos["seed"].domain_interval.max_value) \
        == (0, 999)
    # uniform with integer bounds still draws floats: a real interval, not an integer one
    assert api_pb2.DataType.Name(infos["weight_decay"].type) == "DATA_TYPE_FLOAT64"
    assert (infos["weight_decay"].domain_interval.min_value,
            infos["weight_decay"].domain_interval.max_value) == (0, 1)
    for values in sessions.values():   # every trial's value is one the filter offers
        for name, options in listed.items():
            assert values[name] in options, (name, values[name], options)
        for name in ("lr", "weight_decay", "seed"):
            box = infos[name].domain_interval
            assert box.min_value <= values[name] <= box.max_value, (name, values[name])
    used = {v["batch_size"] for v in sessions.values()}
    assert used == {8.0, 9.0}
    assert sorted({v["epochs"] for v in sessions.values()}) == [2.0, 10.0]


def _fast_loader_steps(logdir: str, run: str, tag: str) -> list[int]:
    """The steps TensorBoard serves for ``run``/``tag`` with its fast loader (the Rust
    ``tensorboard-data-server``, ``--load_fast=true``), through its HTTP API."""
    import json
    import socket
    import subprocess
    import sys
    import time
    import urllib.parse
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
                             "--port", str(port), "--host", "127.0.0.1", "--load_fast=true"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    points = json.loads(response.read())
                if points:
                    return [int(step) for _, step, _ in points]
            except OSError:
                pass
            assert time.time() < deadline, "TensorBoard's fast loader served nothing in 90 s"
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow   # a real Ray Tune run
def test_a_trial_replayed_from_its_start_shows_each_epoch_once(tmp_path, monkeypatch):
    """A trial that fails before its first checkpoint is run again from epoch 1 (Ray
    Tune's retry, as --resume does): its second event file purges from epoch 1, so both
    TensorBoard loaders (EventAccumulator and the fast Rust loader) serve epochs 1..3
    once each (tensorboard#1272)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tune_food.sweep.spaces import load_space

    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    path = tmp_path / "one.yaml"
    path.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n  epochs: 3\n")
    space = load_space(str(path))
    marker = str(tmp_path / "failed-once")

    def trainable(config):
        import os

        from ray import tune
        for epoch in range(1, 4):
            tune.report({"epoch": epoch, "train_loss": 1.0 / epoch})
            if epoch == 2 and not os.path.exists(marker):
                open(marker, "w").close()
                raise RuntimeError("the worker died before any checkpoint")

    exp = _tune_with_callback(tmp_path, space, trainable, num_samples=1, max_failures=1)
    (trial_dir,) = [d for d in os.listdir(exp) if os.path.isdir(os.path.join(exp, d))
                    and d != HPARAMS_RUN]
    events = [f for f in os.listdir(os.path.join(exp, trial_dir)) if "tfevents" in f]
    assert len(events) == 2   # the failed attempt's file and the retry's
    acc = EventAccumulator(os.path.join(exp, trial_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2, 3]
    assert _fast_loader_steps(exp, trial_dir, "loss/train") == [1, 2, 3]
