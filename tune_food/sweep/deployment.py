"""A sweep's deployment figures: what serving each of its backbones costs, measured once
per sweep and backbone at the end of its trials.

For each model whose trials reported results, one Ray task on a node that ran one of
them measures :func:`tune_food.models.deploy.deployment_figures` (one photo end to end,
batch 1, one thread, ONNX Runtime; a few seconds per backbone, plus about 8 s to export
it the first time a node sees it: :func:`tune_food.models.deploy.exported_dir`). The
tasks run one after another, each with one CPU, so no measurement shares its core with
another. The figures go to
``sweep.json`` (``deployment``: model -> figures and conditions), from which the
leaderboard's ``cpu_ms`` and ``model_mb`` columns and ``plots/tradeoff.png`` are built
(:mod:`tune_food.results.tradeoff`). A measurement that fails is a warning and an
``error`` entry, never a failed sweep. Figures are measured once per (backbone, weights,
classes, PyTorch, CPU model, ONNX Runtime version, threads) and reused by later sweeps
(``reused``, ``measured_at``: :func:`tune_food.models.deploy.cached_figures`); a reuse on
the driver's own node starts no task.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tune_food.common.errors import one_line
from tune_food.models.deploy import cached_figures, deployment_figures, is_measured
from tune_food.results.images import first_test_photo


def _measure_task(model: str, num_classes: int, photo: bytes, name: str) -> dict:
    """The Ray task: the figures of ``model`` on the node it runs on (those it measured
    before, when it has them). The photo comes as bytes (the node may hold no images:
    trials on cached features read none), written under its own file ``name``."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as fh:
            fh.write(photo)
        figures = deployment_figures(model, num_classes, path)
    return {**figures, "node_id": ray.get_runtime_context().get_node_id()}


def _trial_nodes(results) -> dict[str, tuple[dict, list[str]]]:
    """model -> (a config of its trials, the nodes that ran them), from Ray Tune's
    ``ResultGrid``; trials that reported nothing are left out."""
    models: dict[str, tuple[dict, list[str]]] = {}
    for result in results:
        metrics = result.metrics or {}
        config = dict(metrics.get("config") or result.config or {})
        if not config.get("model") or not metrics.get("node_id"):
            continue
        models.setdefault(config["model"], (config, []))[1].append(metrics["node_id"])
    return models


def measure_models(results, datasets: dict[str, str], known: dict[str, Any],
                   out=sys.stderr) -> dict[str, Any]:
    """The deployment figures of every model in ``results`` not in ``known`` (a resumed
    sweep keeps what it measured before).

    Args:
        results: the ``ResultGrid`` of ``Tuner.fit()``.
        datasets: dataset name -> absolute folder (the plan's).
        known: ``sweep.json``'s ``deployment`` so far.
        out: where a failed measurement's warning goes.

    Returns:
        ``known`` with the new models' figures (or ``{"error": ...}``) added. Called only
        when every trial ended (an interrupted sweep measures when resumed: the caller
        reads Ray Tune's saved state, since after a SIGINT the ``ResultGrid`` shows the
        stopped trials as ``TERMINATED``).
    """
    figures = dict(known)
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    here = ray.get_runtime_context().get_node_id()
    for model, (config, nodes) in sorted(_trial_nodes(results).items()):
        if is_measured(figures.get(model)):
            continue
        node = next((n for n in nodes if n in alive), None)
        try:
            if node is None:
                raise RuntimeError("no node that ran its trials is alive")
            photo, num_classes = first_test_photo(config, datasets)
            start = time.perf_counter()
            # measured before on this node (the driver's): no task, no export, no timing
            measured = cached_figures(model, num_classes) if node == here else None
            if measured is None:
                with open(photo, "rb") as fh:
                    data = fh.read()
                task = ray.remote(num_cpus=1, max_retries=0)(_measure_task).options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                measured = ray.get(task.remote(model, num_classes, data,
                                               os.path.basename(photo)))
            figures[model] = {**measured, "node_id": measured.get("node_id", node),
                              "took_s": round(time.perf_counter() - start, 1)}
        except Exception as exc:   # noqa: BLE001 - a figure missing must not fail the sweep
            reason = one_line(str(getattr(exc, "cause", None) or exc)) or type(exc).__name__
            figures[model] = {"error": reason[:300]}
            print(f"tune_food: warning: the deployment figures of {model} were not "
                  f"measured ({reason[:200]})", file=out, flush=True)
    return figures
