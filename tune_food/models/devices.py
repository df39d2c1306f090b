"""Which device a trial or an extraction task computes on: the one Ray assigned.

Ray 2.60 no longer hides the GPUs from work that asked for none (``num_gpus=0`` leaves
``CUDA_VISIBLE_DEVICES`` as it was, ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO`` being off by
default), so "CUDA if torch sees it" would put every CPU trial of a GPU node on GPU 0,
which Ray never gave it. The rule here reads Ray's assignment instead
(:func:`choose_device`, a pure function; :func:`assigned_device` feeds it from Ray and
torch), and :func:`gpu_math` fixes the numerics of a process that computes on a GPU.

What runs a frozen backbone's forward is named here too (:data:`RUNTIMES`,
:func:`requested_runtime`, :func:`computed_by`, the feature store's key); the forward
itself is :func:`tune_food.models.runtime.frozen_forward`.
"""

from __future__ import annotations

import os
import socket
from typing import Sequence

from tune_food.common.errors import ResourceError


def choose_device(gpu_ids: Sequence, cuda_available: bool, cuda_devices: int,
                  node: str) -> str:
    """The device of work that Ray gave ``gpu_ids`` (``ray.get_gpu_ids()``).

    Ray sets ``CUDA_VISIBLE_DEVICES`` to exactly the assigned GPUs in a process that
    asked for some, so torch numbers them from 0: the work computes on ``cuda:0`` (a
    trial of several GPUs uses the first one; the head is small). No GPU assigned: the
    CPU, whatever torch can see.

    Args:
        gpu_ids: the GPU ids Ray assigned (empty: none).
        cuda_available, cuda_devices: ``torch.cuda.is_available()`` and
            ``torch.cuda.device_count()`` in this process.
        node: this node's name or address, for the error.

    Returns:
        ``"cpu"`` or ``"cuda:0"``.

    Raises:
        ResourceError: Ray assigned GPUs that torch cannot see (a CPU-only torch build,
            a driver too old for it, or GPUs hidden from the process).
    """
    if not gpu_ids:
        return "cpu"
    if not cuda_available or cuda_devices < len(gpu_ids):
        seen = f"{cuda_devices} CUDA device(s)" if cuda_available else "no CUDA device"
        raise ResourceError(
            f"Ray assigned GPU {', '.join(map(str, gpu_ids))} on node {node}, but torch "
            f"there sees {seen}; install a CUDA build of torch that the node's NVIDIA "
            "driver supports (python -c 'import torch; print(torch.cuda.is_available())' "
            "must print True), or run with --gpus-per-trial 0")
    return "cuda:0"


def assigned_device() -> str:
    """:func:`choose_device` for this process: inside a Ray task or actor, the GPUs Ray
    assigned to it; outside Ray, none (the CPU).

    Raises:
        ResourceError: see :func:`choose_device`.
    """
    # lazy: no Ray where benchmarks/gpu_check.py runs trials (tests/test_devices.py); --help speed:
    # sweep.cli imports this module; torch costs ~2.2 s (measured); --help speed: sweep.cli imports
    # this module; torch costs ~2.2 s (measured)
    import ray
    import torch

    gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
    if not gpu_ids:   # torch.cuda is never touched by CPU work
        return "cpu"
    return choose_device(gpu_ids, torch.cuda.is_available(), torch.cuda.device_count(),
                         socket.gethostname())


def gpu_math(device: str, allow_tf32: bool = False) -> None:
    """On a CUDA device: full float32 (no TF32 in convolutions or matrix products, so GPU
    features agree with the CPU's to 1e-4) and deterministic cuDNN kernels (no
    benchmark autotuning, which may pick a different kernel each run). A no-op on the
    CPU. These are process-wide torch flags; a process computes on one device.
    ``allow_tf32`` (torch's own default) is for measuring what TF32 would change
    (``benchmarks/gpu_check.py``): the feature store's key says ``float32``."""
    import torch  # lazy: --help speed: sweep.cli imports this module; torch costs ~2.2 s (measured)

    if not device.startswith("cuda"):
        return
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = not allow_tf32


# ------------------------------------------------------ what runs the backbone's forward

#: runtimes of the frozen backbone's CPU forward; ``torch`` forces PyTorch eager
RUNTIMES = ("openvino", "torch")
#: the runtime used unless ``--backbone-runtime`` or :data:`RUNTIME_ENV` says otherwise
DEFAULT_RUNTIME = "openvino"
#: environment variable choosing the runtime for every command (``torch`` forces PyTorch)
RUNTIME_ENV = "TUNE_FOOD_BACKBONE_RUNTIME"


def requested_runtime(value: str | None = None) -> str:
    """The runtime asked for: ``value`` (a ``--backbone-runtime`` flag), else
    ``$TUNE_FOOD_BACKBONE_RUNTIME``, else :data:`DEFAULT_RUNTIME`.

    Raises:
        ValueError: a name not in :data:`RUNTIMES`.
    """
    name = (value or os.environ.get(RUNTIME_ENV) or DEFAULT_RUNTIME).strip().lower()
    if name not in RUNTIMES:
        source = "--backbone-runtime" if value else RUNTIME_ENV
        raise ValueError(f"{source} {name!r} is not a backbone runtime; choose one of "
                         f"{', '.join(RUNTIMES)}")
    return name


def runtime_version(runtime: str) -> str:
    """The installed version of ``runtime`` (``"2026.4.1"``, ``"2.14.1"``), or ``""``
    when it cannot be imported."""
    if runtime == "torch":
        # lazy: --help speed: sweep.cli imports this module; torch costs ~2.2 s (measured)
        import torch

        return torch.__version__.split("+")[0]
    try:
        # lazy: optional dependency: a missing or broken OpenVINO falls back to PyTorch
        import openvino
    except ImportError:
        return ""
    return openvino.__version__.split("-")[0]


def computed_by(device: str, runtime: str = "torch") -> str:
    """What computes a backbone's features, as the feature store's key holds it: runtime
    and its version, precision, device class (``"openvino 2026.4.1 f32 cpu"``, ``"torch
    2.14.1 float32 cuda"``). Vectors of one are never read for another. On a GPU the
    runtime is always PyTorch."""
    kind = device.split(":")[0]
    if kind != "cpu" or runtime == "torch":
        return f"torch {runtime_version('torch')} float32 {kind}"
    return f"{runtime} {runtime_version(runtime)} f32 {kind}"
