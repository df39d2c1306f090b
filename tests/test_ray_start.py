"""Every way Ray can fail to start or join that this machine can reproduce ends in one
line on stderr and exit 2, within a bound, before the sweep folder exists; a failure
after the folder exists leaves the sweep ``failed`` with every planned trial listed.

What the sweep finds before Ray starts (its temporary folder, an address that is not a
Ray cluster's, a damaged feature store) is tested with the command in-process
(:func:`_in_process`); what needs Ray to start, or the sweep as a program, is marked slow."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import REPO, free_port, run_cli, run_sweep

#: a generous bound on any failure (Ray's own retries last minutes; a slow day is slow)
BOUND_S = 60


@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory, tiny_root):
    space = tmp_path_factory.mktemp("space") / "tiny.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                     "  epochs: {grid_search: [1, 2]}\n  batch_size: 8\n")
    return str(space)


@pytest.fixture
def ray_tmp():
    """A short folder of its own for Ray's temporary files (pytest's tmp_path is too long
    for Ray's socket paths)."""
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="tf", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _sweep(tmp_path, tiny_root, space, *args, env=None, name="s"):
    """The sweep command, with Ray's temporary folder in ``env["RAY_TMPDIR"]``; returns
    (CompletedProcess, seconds, the sweep folder)."""
    start = time.time()
    proc = run_sweep("--grid", "--space", space, "--data-dir", tiny_root, "--results-dir",
                     str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                     "--name", name, *args, timeout=BOUND_S + 60,
                     env={"RAY_ADDRESS": None, "RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None,
                          **(env or {})})
    return proc, time.time() - start, tmp_path / "results" / name


def _in_process(monkeypatch, capfd, tmp_path, tiny_root, space, *args, env=None, name="s"):
    """:func:`_sweep`'s command in-process (``tune_food.sweep.run.main``), for what it
    refuses before Ray starts; returns (its exit code, stdout and stderr as a
    CompletedProcess has them, seconds, the sweep folder). ``capfd``: what Ray's C++ code
    writes to file descriptor 2 is read too."""
    from tune_food.sweep.run import main

    for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    for var, value in (env or {}).items():
        monkeypatch.setenv(var, value)
    start = time.time()
    code = main(["--grid", "--space", space, "--data-dir", tiny_root, "--results-dir",
                 str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--name",
                 name, *args])
    out, err = capfd.readouterr()
    return (SimpleNamespace(returncode=code, stdout=out, stderr=err), time.time() - start,
            tmp_path / "results" / name)


def _one_line(proc, seconds, folder, *words):
    """Exit 2, one line naming ``words`` on stderr, no Ray log line, within the bound, and
    no sweep folder left behind."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("python -m tune_food.sweep: error: "), lines
    for w in words:
        assert w in lines[0], lines[0]
    assert "gcs_client" not in proc.stderr and "Traceback" not in proc.stderr
    assert seconds < BOUND_S
    assert not folder.exists()
    return lines[0]


@contextlib.contextmanager
def _http_server():
    """A web server on a free port of this machine: it accepts TCP but is not Ray."""
    class Quiet(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_ray_temp_folder_too_long_for_its_sockets(tmp_path, tiny_root, tiny_space, ray_tmp,
                                                    monkeypatch, capfd):
    """ray#7945: the socket paths exceed 107 bytes. A real run (not a dry run) refuses
    before the sweep folder exists; the same check passes once RAY_TMPDIR is short
    (that the command then works: :func:`test_a_short_ray_temp_folder_works`)."""
    from pathlib import Path

    from tune_food.sweep.ray_start import check_temp_folder

    long_dir = Path(ray_tmp) / ("a" * (67 - len(ray_tmp) - 1))
    long_dir.mkdir()
    assert len(str(long_dir)) == 67
    proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root, tiny_space,
                                        env={"RAY_TMPDIR": str(long_dir)}, name="longtmp")
    line = _one_line(proc, seconds, folder, f"RAY_TMPDIR {long_dir} is too long", "ray#7945",
                     "107 bytes")
    assert "RAY_TMPDIR=/tmp" in line
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    check_temp_folder()


@pytest.mark.slow   # a dry run as a program: it starts Ray
def test_a_short_ray_temp_folder_works(tmp_path, tiny_root, tiny_space, ray_tmp):
    fixed, _, _ = _sweep(tmp_path, tiny_root, tiny_space, "--dry-run",
                         env={"RAY_TMPDIR": ray_tmp}, name="longtmp")
    assert fixed.returncode == 0, fixed.stderr[-2000:]


def test_a_ray_temp_folder_that_cannot_be_written(tmp_path, tiny_root, tiny_space,
                                                  monkeypatch, capfd):
    proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root, tiny_space,
                                        "--dry-run", env={"RAY_TMPDIR": "/proc/tune_food_ray"})
    _one_line(proc, seconds, folder, "RAY_TMPDIR /proc/tune_food_ray", "cannot be created")


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_something_else_listens(tmp_path, tiny_root, tiny_space, scheme,
                                                 ray_tmp, monkeypatch, capfd):
    """A web server is not Ray: Ray alone waits minutes, printing a gcs_client.cc warning
    every second; the sweep says so in one line, real run and dry run alike."""
    with _http_server() as address:
        for extra in ([], ["--dry-run"]):
            proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root,
                                                tiny_space, "--address", scheme + address,
                                                *extra, env={"RAY_TMPDIR": ray_tmp})
            _one_line(proc, seconds, folder, f"--address {scheme}{address} answers, but not "
                      "as a Ray cluster", "does not speak gRPC")


@pytest.mark.parametrize("address, words", [
    ("127.0.0.1:{closed}", ["cannot connect to the Ray cluster", "Connection refused"]),
    ("localhost:port", ["is not an address of a Ray cluster", "HOST:PORT"]),
    ("auto", ["--address auto found no running Ray cluster", "ray start --head"]),
])
def test_addresses_without_a_cluster(tmp_path, tiny_root, tiny_space, address, words, ray_tmp,
                                     monkeypatch, capfd):
    if address == "auto":
        from ray._private.services import find_gcs_addresses

        if find_gcs_addresses():   # Ray's "auto" joins any Ray running here (its legacy rule)
            pytest.skip(f"a Ray runs on this machine ({find_gcs_addresses()}): --address "
                        "auto would join it, so there is no 'no cluster' to test")
    proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root, tiny_space,
                                        "--dry-run", "--address",
                                        address.format(closed=free_port()),
                                        env={"RAY_TMPDIR": ray_tmp})
    _one_line(proc, seconds, folder, *words)


def test_auto_with_the_record_of_a_cluster_that_is_gone(tmp_path, tiny_root, tiny_space,
                                                         ray_tmp, monkeypatch, capfd):
    """`ray start` records its address in <tmp>/ray/ray_current_cluster; a record left by
    a crashed cluster makes ray.init(address="auto") wait for ever (seen: > 60 s)."""
    os.makedirs(os.path.join(ray_tmp, "ray"))
    port = free_port()
    with open(os.path.join(ray_tmp, "ray", "ray_current_cluster"), "w") as fh:
        fh.write(f"127.0.0.1:{port}\n")
    proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root, tiny_space,
                                        "--address", "auto", env={"RAY_TMPDIR": ray_tmp})
    _one_line(proc, seconds, folder, f"--address auto joins 127.0.0.1:{port}",
              "ray_current_cluster", "ray stop")


@pytest.mark.slow
def test_a_cluster_that_needs_an_authentication_token(tmp_path, tiny_root, tiny_space, ray_tmp):
    """A head started with RAY_AUTH_MODE=token: no token, a wrong one (Ray alone logs
    ``InvalidAuthToken`` every second for 20 s, then a bare ConnectionError; the sweep
    answers at the first of those lines, within seconds), and the right one, which
    joins."""
    port, token = free_port(), "0123456789abcdef0123456789abcdef"
    head_env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token,
                    RAY_TMPDIR=ray_tmp)
    with _ray_head(port, head_env):
        address = f"127.0.0.1:{port}"
        for env, words in (({}, ["requires an authentication token", "RAY_AUTH_TOKEN"]),
                           ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "f" * 32},
                            ["a wrong one", "ray get-auth-token"]),
                           ({"RAY_AUTH_MODE": "token", "HOME": str(tmp_path)},
                            ["and this machine has none"])):
            proc, seconds, folder = _sweep(tmp_path, tiny_root, tiny_space, "--dry-run",
                                           "--address", address,
                                           env=dict(env, RAY_TMPDIR=ray_tmp))
            _one_line(proc, seconds, folder, f"the Ray cluster at --address {address}", *words)
            assert seconds < 20 or "wrong" not in words[0], seconds   # not after Ray's 20 s
        proc, _, _ = _sweep(tmp_path, tiny_root, tiny_space, "--dry-run", "--address",
                            address, env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                                          "RAY_TMPDIR": ray_tmp})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Ray cluster " in proc.stdout and f":{port}: 1 node(s)" in proc.stdout


@contextlib.contextmanager
def _ray_head(port: int, env: dict):
    """A Ray head of its own (``ray start --head --block`` in a new session), stopped by
    killing that session's process group: ``ray stop`` would stop every Ray on the machine,
    a developer's own and another test run's among them (it finds Ray's processes by name,
    whatever their temporary folder)."""
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:   # up once its GCS takes connections on the port
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not start in 120 s"
            time.sleep(0.5)
        yield
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(wait)
                if not _session_alive(head.pid):
                    break


def _session_alive(sid: int) -> bool:
    """Whether any process of session ``sid`` still runs."""
    return any(_session_of(pid) == sid for pid in os.listdir("/proc") if pid.isdigit())


def _session_of(pid: str) -> int | None:
    with contextlib.suppress(OSError, IndexError, ValueError):
        # /proc/PID/stat: "pid (comm) state ppid pgrp session ...", comm may hold spaces
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[3])
    return None


def test_the_message_for_a_version_mismatch():
    """A mismatch needs two Ray versions, so the message is checked on the exception
    Ray's own check raises for a cluster of another version."""
    import ray._private.utils as ray_utils

    from tune_food.sweep.ray_start import explain

    with pytest.raises(RuntimeError) as caught:
        ray_utils.check_version_info({"ray_version": "2.9.3", "python_version": "3.9.18"},
                                     "node 10.0.0.2")
    line = explain(caught.value, "", "10.0.0.1:6379")
    assert "\n" not in line and "runs other Ray or Python versions" in line
    assert "2.9.3" in line and "3.9.18" in line and "pip install ray==" in line


@pytest.mark.slow   # a dry run as a program: it starts Ray
def test_too_little_shared_memory_is_a_warning(tmp_path, tiny_root, tiny_space, ray_tmp):
    """/dev/shm of 1 MiB (a new mount namespace, as root): Ray puts its object store in
    its temporary folder, which it says only in a log record the sweep hides; the sweep
    says it in one warning line and goes on."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("needs root for a mount namespace (unshare -m)")
    cmd = (f"mount -t tmpfs -o size=1m tmpfs /dev/shm && exec {sys.executable} -m "
           f"tune_food.sweep --grid --space {tiny_space} --data-dir {tiny_root} "
           f"--results-dir {tmp_path / 'results'} --cache-dir {tmp_path / 'cache'} --dry-run")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ, RAY_TMPDIR=ray_tmp),
                          timeout=BOUND_S + 60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: /dev/shm has 1 MiB free"), lines
    assert f"Ray keeps it in {ray_tmp} instead" in lines[0]


def test_a_damaged_feature_store_is_refused_before_launch(tmp_path, tiny_root, tiny_space,
                                                          ray_tmp, monkeypatch, capfd):
    from tune_food.features.store import STORE_FILE

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / STORE_FILE).write_bytes(b"not a database" * 100)
    proc, seconds, folder = _in_process(monkeypatch, capfd, tmp_path, tiny_root, tiny_space,
                                        env={"RAY_TMPDIR": ray_tmp})
    _one_line(proc, seconds, folder, "the feature store", "is damaged", "delete it")


@pytest.mark.slow
def test_a_failure_after_the_folder_is_written_leaves_the_sweep_failed(tmp_path, tiny_root,
                                                                        torch_home, ray_tmp):
    """B0's checkpoint truncated in the hub cache: the extraction task fails after
    sweep.json exists. The sweep is ``failed`` with the reason, both planned trials are
    NOT_STARTED, report and the web page say so, and --resume (weights repaired) runs it."""
    from tune_food.app.folders import load_board
    from tune_food.app.leaderboard_page import _head

    home = tmp_path / "torch"
    (home / "hub").mkdir(parents=True)
    ckpt = home / "hub" / "checkpoints"
    good = os.path.join(torch_home, "hub", "checkpoints")
    ckpt.mkdir()
    name = next(f for f in os.listdir(good) if f.startswith("efficientnet_b0"))
    (ckpt / name).write_bytes(open(os.path.join(good, name), "rb").read()[:5000])
    space = tmp_path / "b0.yaml"
    space.write_text("parameters:\n  model: efficientnet_b0\n  data: tiny\n"
                     "  epochs: {grid_search: [1, 2]}\n  batch_size: 8\n")
    proc, seconds, exp = _sweep(tmp_path, tiny_root, str(space),
                                env={"TORCH_HOME": str(home), "RAY_TMPDIR": ray_tmp})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert f"cannot read the weights of efficientnet_b0 from {ckpt / name}" in lines[0]
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "failed" and state["error"] in lines[0]
    assert state["resume"].startswith("python -m tune_food.sweep --resume --name s")
    board = pd.read_csv(exp / "leaderboard.csv")
    assert list(board["status"]) == ["NOT_STARTED", "NOT_STARTED"]
    assert sorted(board["epochs"]) == [1, 2] and board["rank"].isna().all()

    report = run_cli("tune_food.report", str(exp))
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0] == f"sweep s: failed ({state['error']})"
    assert "It failed before its trials ran: cannot read the weights" in \
        _head("s", load_board(str(exp)))

    (ckpt / name).write_bytes(open(os.path.join(good, name), "rb").read())
    resumed = run_sweep("--resume", "--name", "s", "--results-dir",
                        str(tmp_path / "results"), env={"TORCH_HOME": str(home),
                                                         "RAY_TMPDIR": ray_tmp})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((exp / "sweep.json").read_text())
    assert state["status"] == "finished" and "error" not in state
    board = pd.read_csv(exp / "leaderboard.csv")
    assert (board["status"] == "TERMINATED").all() and len(board) == 2
    # the time of both runs, and of this one
    line = next(x for x in resumed.stdout.splitlines() if x.startswith("sweep finished after"))
    total, this_run = line.split("after ")[1].split(" s (")[0], line.split("(")[1].split(" s")[0]
    assert float(total) > float(this_run) > 0 and state["wall_s"] == pytest.approx(
        float(total), abs=0.1)
