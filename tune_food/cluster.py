"""Where a sweep runs: start or join Ray, and check the resource request against it.

:func:`check_resources` refuses a per-trial request no node can satisfy (trials would
stay PENDING forever) before anything launches; :func:`init_ray` starts a new local Ray
or joins ``--address`` (refusing at once an address where nothing listens, which Ray
itself would retry for minutes). The signal helpers make SIGTERM end a sweep the way
Ctrl-C does.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from .errors import ResourceError
from .options import SweepOptions


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
    """What a local Ray started by this process would have: this machine's CPUs/GPUs."""
    import torch

    return ClusterInfo([{"CPU": float(os.cpu_count() or 1),
                         "GPU": float(torch.cuda.device_count())}], None)


def connected_cluster() -> ClusterInfo:
    """The alive nodes of the Ray cluster this process is connected to."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return ClusterInfo([{"CPU": r.get("CPU", 0.0), "GPU": r.get("GPU", 0.0)} for r in nodes],
                       ray.get_runtime_context().gcs_address)


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
    fits = [min(n.get("CPU", 0) // cpt, (n.get("GPU", 0) // gpt) if gpt else math.inf)
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


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` or ``ray://host:port`` address must accept a TCP connection
    within ``timeout`` seconds (Ray itself retries an unreachable GCS for minutes).

    Raises:
        ResourceError: nothing listens there.
    """
    target = address.split("://", 1)[-1]
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot connect to the Ray cluster at --address {address} "
                            f"({exc}); start it (ray start --head, or ray up cluster.yaml) or "
                            "fix the address") from None


def init_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address``, or start a new local Ray (None); no-op
    when Ray is already initialised. Ray's own SIGTERM handler (an abort) is replaced
    by :func:`sigterm_as_sigint`.

    Raises:
        ResourceError: the cluster at ``address`` cannot be reached.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict[str, Any] = dict(logging_level="ERROR", log_to_driver=False)
    if address:
        check_reachable(address)
        kwargs["address"] = address
    else:
        # "local": always a new local Ray. Plain ray.init() would join a cluster named in
        # /tmp/ray/ray_current_cluster, and hang on a stale one left by a crashed `ray start`.
        kwargs.update(address="local", include_dashboard=False)
    try:
        ray.init(**kwargs)
        if in_main_thread():
            signal.signal(signal.SIGTERM, sigterm_as_sigint)
    except (ConnectionError, TimeoutError, ValueError) as exc:
        if not address:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ResourceError(f"cannot connect to the Ray cluster at --address {address} "
                            f"({type(exc).__name__}: {first}); start it (ray start --head, or "
                            "ray up cluster.yaml) or fix the address") from None


def shutdown_ray() -> None:
    """Disconnect from (or stop the local) Ray, if this process started or joined one."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def sigterm_as_sigint(signum, frame) -> None:
    """SIGTERM ends a sweep the way Ctrl-C does (Ray Tune stops its trials gracefully)."""
    os.kill(os.getpid(), signal.SIGINT)


def in_main_thread() -> bool:
    """True in the main thread (the only one that may install signal handlers)."""
    return threading.current_thread() is threading.main_thread()
