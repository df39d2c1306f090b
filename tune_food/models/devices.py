"""Which device a trial or an extraction task computes on: the one Ray assigned.

Ray 2.60 no longer hides the GPUs from work that asked for none (``num_gpus=0`` leaves
``CUDA_VISIBLE_DEVICES`` as it was, ``RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO`` being off by
default), so "CUDA if torch sees it" would put every CPU trial of a GPU node on GPU 0,
which Ray never gave it. The rule here reads Ray's assignment instead
(:func:`choose_device`, a pure function; :func:`assigned_device` feeds it from Ray and
torch), and :func:`gpu_math` fixes the numerics of a process that computes on a GPU.
"""

from __future__ import annotations

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
    import torch

    if not device.startswith("cuda"):
        return
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = not allow_tf32


def computed_by(device: str) -> str:
    """What computes a backbone's features on ``device``, as the feature store's key
    holds it: runtime, precision, device class (``"torch float32 cpu"``, ``"torch
    float32 cuda"``): vectors of one are never read for the other."""
    return f"torch float32 {device.split(':')[0]}"
