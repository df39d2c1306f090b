"""Where a sweep runs: the cluster's nodes, and the resource request checked against them.

:func:`check_resources` refuses a per-trial request no node can satisfy (trials would
stay PENDING forever) before anything launches. Ray itself is started or joined by
:mod:`tune_food.sweep.ray_start`. The signal helpers make SIGTERM end a sweep the way Ctrl-C
does.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from dataclasses import dataclass

from tune_food.common.errors import ResourceError
from tune_food.sweep.options import SweepOptions


@dataclass
class ClusterInfo:
    """The alive nodes a sweep can use and the cluster's address (None: local Ray)."""

    nodes: list[dict[str, float]]   # per alive node: {"CPU": n, "GPU": n}
    address: str | None

    @property
    def cpus(self) -> float:
        return sum(n.get("CPU", 0) for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n.get("GPU", 0) for n in self.nodes)

    def describe(self, options: SweepOptions, concurrent: int) -> str:
        """One line: the per-trial request, the cluster and how many trials fit."""
        gpu = f", {options.gpus_per_trial:g} GPU" if options.gpus_per_trial else ", no GPU"
        where = f"Ray cluster {self.address}" if self.address else "local Ray on this machine"
        return (f"resources: {options.cpus_per_trial:g} CPU{gpu} per trial; {where}: "
                f"{len(self.nodes)} node(s), {self.cpus:g} CPUs, {self.gpus:g} GPUs "
                f"-> {concurrent} trial(s) at a time")


def local_cluster() -> ClusterInfo:
    """What a local Ray started by this process would have: this machine's CPUs/GPUs;
    when this process is connected to a Ray already (a notebook's own ``ray.init``, which
    :func:`tune_food.sweep.ray_start.start_ray` uses as it is), that Ray's nodes
    (:func:`connected_cluster`)."""
    import ray  # lazy: --help speed: the sweep's main imports this module first; Ray ~0.4 s
    import torch  # lazy: --help speed: the sweep's main imports this module first; torch ~2.2 s

    if ray.is_initialized():
        return connected_cluster()

    return ClusterInfo([{"CPU": float(os.cpu_count() or 1),
                         "GPU": float(torch.cuda.device_count())}], None)


def connected_cluster() -> ClusterInfo:
    """The alive nodes of the Ray cluster this process is connected to."""
    import ray  # lazy: --help speed: the sweep's main imports this module first; Ray ~0.4 s

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo([{"CPU": r.get("CPU", 0.0), "GPU": r.get("GPU", 0.0)} for r in nodes],
                       ray.get_runtime_context().gcs_address)


#: Ray's scheduler counts resources in fixed point, in units of 1/10,000
#: (``RESOURCE_UNIT_SCALING`` in Ray's ``src/ray/common/scheduling/fixed_point.h``): one
#: GPU holds exactly five requests of 0.2
RESOURCE_UNITS = 10_000


def _fit(available: float, per_trial: float) -> int:
    """How many requests of ``per_trial`` fit in ``available``, counted as Ray counts
    (fixed point: ``1 // 0.2`` is 4 in floating point, and Ray runs 5)."""
    return int(round(available * RESOURCE_UNITS)) // int(round(per_trial * RESOURCE_UNITS))


def check_resources(options: SweepOptions, cluster: ClusterInfo) -> int:
    """Check the per-trial request against the cluster; return how many trials fit at
    once (all nodes together, capped by ``max_concurrent``).

    Raises:
        ResourceError: a request no node can satisfy (CPUs <= 0, more CPUs or GPUs
            than the largest node has), so trials would stay PENDING forever; with
            ``autoscale`` such a request is accepted (the autoscaler adds a node).
    """
    cpt, gpt = options.cpus_per_trial, options.gpus_per_trial
    if not cpt > 0:
        raise ResourceError(f"--cpus-per-trial must be > 0, got {cpt:g}; a trial needs at "
                            "least part of a CPU")
    if gpt < 0:
        raise ResourceError(f"--gpus-per-trial must be >= 0, got {gpt:g}")
    if gpt > 1 and gpt != int(gpt):
        raise ResourceError(f"--gpus-per-trial {gpt:g}: above 1 a trial needs whole GPUs")
    if options.max_concurrent < 0:
        raise ResourceError(f"--max-concurrent must be >= 0 (0: no limit), got "
                            f"{options.max_concurrent}")
    fits = [min(_fit(n.get("CPU", 0), cpt), _fit(n.get("GPU", 0), gpt) if gpt else math.inf)
            for n in cluster.nodes]
    if not any(f >= 1 for f in fits):
        if options.autoscale:
            return options.max_concurrent or 1
        where = f"the Ray cluster at {cluster.address}" if cluster.address else "this machine"
        biggest_cpu = max((n.get("CPU", 0) for n in cluster.nodes), default=0)
        biggest_gpu = max((n.get("GPU", 0) for n in cluster.nodes), default=0)
        raise ResourceError(
            f"no node of {where} can run a trial with {cpt:g} CPUs and {gpt:g} GPUs (largest "
            f"node: {biggest_cpu:g} CPUs, {biggest_gpu:g} GPUs); lower --cpus-per-trial / "
            "--gpus-per-trial, add nodes that have them, or on an autoscaling cluster "
            "(ray up) pass --autoscale")
    slots = int(sum(f for f in fits if f >= 1))
    return min(slots, options.max_concurrent) if options.max_concurrent else slots


def sigterm_as_sigint(signum, frame) -> None:
    """SIGTERM ends a sweep the way Ctrl-C does (Ray Tune stops its trials gracefully)."""
    os.kill(os.getpid(), signal.SIGINT)


def in_main_thread() -> bool:
    """True in the main thread (the only one that may install signal handlers)."""
    return threading.current_thread() is threading.main_thread()
