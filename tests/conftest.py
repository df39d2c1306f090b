"""Shared fixtures: the real pizza/steak/sushi images from ../shared/data, small
subsets of them (symlinked into a temporary folder, never copied into the repo), and a
temporary TORCH_HOME holding torchvision EfficientNet checkpoints.

And the quick tier's guard (:class:`QuickGuard`): a test marked neither ``slow`` nor
``ray_up`` fails if it starts Ray, a sweep subprocess or a browser, so
``-m "not slow and not ray_up"`` stays quick as tests are added."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The README's test command sets TUNE_FOOD_DATA_DIR=../shared/data; without it the
# tests look beside the checkout.
# (its real path: the ray up test's nodes each have a private /tmp, where a link may lie)
SHARED_DATA = os.path.realpath(os.environ.get("TUNE_FOOD_DATA_DIR")
                               or os.path.join(REPO, "..", "shared", "data"))
CLASSES = ("pizza", "steak", "sushi")
# the browser tests drive Debian's chromium (Playwright cannot download its own here)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_dataset(name: str = "pizza_steak_sushi") -> str:
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.fail(f"real images not found at {path}; set TUNE_FOOD_DATA_DIR to the folder "
                    "holding pizza_steak_sushi/ (see README)")
    return path


def make_subset(dest: str, per_class: dict[str, int], source: str | None = None,
                offset: int = 0) -> str:
    """A dataset folder at ``dest`` whose images are symlinks to the first
    ``per_class[split]`` real images of each class (after ``offset``)."""
    source = source or shared_dataset()
    for split, n in per_class.items():
        for cls in CLASSES:
            os.makedirs(os.path.join(dest, split, cls), exist_ok=True)
            files = sorted(os.listdir(os.path.join(source, split, cls)))[offset:offset + n]
            for f in files:
                os.symlink(os.path.join(source, split, cls, f), os.path.join(dest, split, cls, f))
    return dest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> str:
    """A data root with ``tiny`` (8 train / 4 test images per class, real photos)."""
    root = tmp_path_factory.mktemp("data")
    make_subset(str(root / "tiny"), {"train": 8, "test": 4})
    return str(root)


@pytest.fixture(scope="session")
def default_grid_root(tmp_path_factory) -> str:
    """A data root holding the two datasets the default grid names
    (``pizza_steak_sushi``, ``pizza_steak_sushi_20_percent``), each 2 train / 1 test
    real images per class: a dry run of the default grid checks 18 images, not 900."""
    root = tmp_path_factory.mktemp("default_grid_data")
    for name in ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"):
        make_subset(str(root / name), {"train": 2, "test": 1}, source=shared_dataset(name))
    return str(root)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> str:
    """A TORCH_HOME whose hub cache holds B0, B2, B3 and B4 checkpoints (random weights saved
    under the exact file names torchvision looks for), so the torchvision path of the
    registry runs without the network."""
    import torch
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name in ("efficientnet_b0", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4"):
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        torch.manual_seed(0)
        net = torchvision.models.get_model(name, weights=None)
        torch.save(net.state_dict(), ckpt / os.path.basename(url))
    return str(home)


@pytest.fixture
def use_torch_home(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", torch_home)  # torch.hub.get_dir() follows it
    return torch_home


def run_cli(module: str, *args: str, env: dict | None = None, timeout: float = 600):
    """Run ``python -m module args`` in a subprocess; return the CompletedProcess."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=REPO)


def run_sweep(*args: str, env: dict | None = None, popen: bool = False,
              merge: bool = False, timeout: float = 600, cwd: str = REPO):
    """``python -m tune_food.sweep ARGS`` as a process from the checkout, unbuffered: the one
    way the tests start a sweep program. ``env`` is laid over this process's environment
    (a value of None removes that variable). Returns the CompletedProcess; with
    ``popen=True`` the running Popen instead (text; its own session, so a signal the test
    sends reaches the driver alone, as Ctrl-C reaches a terminal's foreground process;
    ``merge=True``: stderr into stdout). ``cwd``: the checkout unless told."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1")
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    cmd = [sys.executable, "-m", "tune_food.sweep", *args]
    if not popen:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                              timeout=timeout, cwd=cwd)
    return subprocess.Popen(cmd, cwd=cwd, env=full_env, text=True, start_new_session=True,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge else subprocess.PIPE)


def signal_at(proc, marker: str, sig: int = signal.SIGINT, delay: float = 0.0,
              limit: float = 300):
    """Read a :func:`run_sweep` ``popen``'s stdout until a line starts with ``marker``,
    wait ``delay`` s, send ``sig`` (SIGINT: Ctrl-C); the test fails, naming what the sweep
    said, when no such line comes within ``limit`` s. Returns ``(stdout, stderr, seconds
    from the signal to the exit)``; stderr is "" for a merged popen."""
    lines, deadline = [], time.time() + limit
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker) or time.time() > deadline:
            break
    if not (lines and lines[-1].startswith(marker)):
        proc.kill()
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"never saw {marker!r}:\n{''.join(lines)[-3000:]}{out[-2000:]}\n"
                    f"{(err or '')[-3000:]}")
    time.sleep(delay)
    proc.send_signal(sig)
    sent = time.time()
    out, err = proc.communicate(timeout=300)
    return "".join(lines) + out, err or "", time.time() - sent


def sweep_checks(*argv: str):
    """``python -m tune_food.sweep ARGV`` up to launch, in-process and without Ray: the
    command's own parsing and one-line errors (exit 2) around
    :func:`tune_food.sweep.run.dry_run_checks` (every check that needs no Ray, the dry
    run's), then the plan printed as the dry run prints it. For the tests of what a sweep
    refuses (read with capsys). Returns ``(exit code, plan or None)``."""
    from tune_food.common.cliargs import cli_call
    from tune_food.sweep import run
    from tune_food.sweep.cli import PROG, parse_options
    from tune_food.sweep.plan import print_plan

    options = parse_options(list(argv))
    plans = []

    def checks(opts):
        plan, cluster, concurrent = run.dry_run_checks(opts, sys.stdout)
        if cluster is not None:   # with --address, only a joined cluster tells
            print_plan(plan, opts, cluster, concurrent, sys.stdout)
        plans.append(plan)
        return 0

    code = cli_call(PROG, options.debug, checks, options, imports=run.IMPORTS)
    return code, (plans[0] if plans else None)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> str:
    """The cache folder (``--cache-dir``: the feature store, the converted backbones, the
    deployment figures) of every test sweep that does not test the cache itself: each
    image's features are computed once per session, as a user's second sweep finds them,
    not once per test (9 s of a tiny sweep's 41 s here). A test of what a cold cache does
    gives its own folder."""
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def small_sweep(tiny_root, tmp_path_factory):
    """A 2-trial grid (Lite0 x 1 / 2 epochs) on 24 train / 12 test real images, batch 5
    so every epoch ends on an uneven batch."""
    tmp = tmp_path_factory.mktemp("sweep")
    space = tmp / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                     "  epochs: {grid_search: [1, 2]}\n  batch_size: 5\n  lr: 0.01\n")
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root,
                     "--results-dir", str(tmp / "results"), "--cache-dir", str(tmp / "cache"),
                     "--name", "small")   # a cold cache: test_sweep reads what computed it
    return proc, str(tmp / "results" / "small")


# -- the quick tier's guard ------------------------------------------------------------
#
# A test marked neither `slow` nor `ray_up` is quick: it may not start Ray (a Node made in
# this process: ray.init, a ray.cluster_utils.Cluster; or Ray's own gcs_server / raylet /
# `ray start`, `ray up` as processes), a sweep as a process (`python -m tune_food.sweep`,
# `python -m tune_food sweep`, `tune-food sweep`; --help and --version excepted) or a
# browser (chromium, Playwright's driver); a `python -c CODE` child whose code calls
# ray.init, Cluster or start_ray counts as starting Ray (a child's own Popen is not
# guarded). The guard wraps subprocess.Popen.__init__ and ray._private.node.Node.__init__:
# for a quick test it refuses before anything starts (pytest.fail, a BaseException that
# the code's `except Exception` does not swallow) and records the refusal, which fails the
# test even where a thread ate the exception; for every other test, and outside tests, it
# calls the original unchanged. tests/test_quick_guard.py shows it at work.

QUICK_GUARD_HINT = ("mark it @pytest.mark.slow or test the logic in-process (e.g. "
                    "tune_food.sweep.run.main([...]) for a refusal, "
                    "tune_food.sweep.run.dry_run_checks for a dry run)")
BROWSERS = {"chromium", "chromium-browser", "chrome", "google-chrome", "headless_shell"}
RAY_PROCESSES = {"gcs_server", "raylet"}
RAY_CALLS = ("ray.init(", "Cluster(", "start_ray(")
NOT_A_RUN = {"--help", "-h", "--version"}


def started_by(args) -> str | None:
    """What the command line ``args`` (a list, or one shell string) starts that a quick
    test may not: ``"Ray"``, ``"a sweep subprocess"``, ``"a browser"``, or None."""
    if isinstance(args, (str, bytes, os.PathLike)):
        text = os.fsdecode(args)
        try:
            tokens = shlex.split(text)
        except ValueError:
            tokens = text.split()
    else:
        tokens = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a)
                  for a in args]
    for i, tok in enumerate(tokens):
        name, rest = os.path.basename(tok), tokens[i + 1:]
        if name in BROWSERS or "playwright" in tok:
            return "a browser"
        if name in RAY_PROCESSES or (name == "ray" and rest[:1] in (["start"], ["up"])):
            return "Ray"
        if tok == "-c" and rest and any(call in rest[0] for call in RAY_CALLS):
            return "Ray"
        sweep = ((tok == "-m" and rest[:1] == ["tune_food.sweep"])
                 or (tok == "-m" and rest[:2] == ["tune_food", "sweep"])
                 or (name == "tune-food" and rest[:1] == ["sweep"]))
        if sweep and not NOT_A_RUN & set(rest):
            return "a sweep subprocess"
    return None


class QuickGuard:
    """The guard's state: the test that runs now and whether it is quick, and what it
    was refused. One per session, installed by :func:`pytest_configure`."""

    def __init__(self):
        self.item = None
        self.quick = False
        self.refused: list[str] = []
        self.lock = threading.Lock()

    def refuse(self, what: str, detail: str) -> None:
        """Called before ``what`` starts: fails a quick test, else does nothing."""
        if not self.quick:
            return
        msg = (f"a quick test may not start {what} ({detail}): {QUICK_GUARD_HINT}; "
               f"quick tests are those without the slow and ray_up marks")
        with self.lock:
            self.refused.append(msg)
        pytest.fail(msg, pytrace=False)

    def install(self) -> None:
        guard = self
        popen_init = subprocess.Popen.__init__

        def guarded_popen_init(self, args, *a, **kw):
            what = started_by(args)
            if what:
                guard.refuse(what, f"subprocess {args!r}"[:300])
            return popen_init(self, args, *a, **kw)

        subprocess.Popen.__init__ = guarded_popen_init
        if "ray._private.node" in sys.modules:
            self._guard_ray_node(sys.modules["ray._private.node"])
        else:   # importing Ray takes seconds: wrap its Node when something imports it
            sys.meta_path.insert(0, _OnImport("ray._private.node", self._guard_ray_node))

    def _guard_ray_node(self, module) -> None:
        guard = self
        node_init = module.Node.__init__

        def guarded_node_init(self, *a, **kw):
            guard.refuse("Ray", "ray._private.node.Node: ray.init or a Ray Cluster")
            return node_init(self, *a, **kw)

        module.Node.__init__ = guarded_node_init


class _OnImport(importlib.abc.MetaPathFinder):
    """Calls ``then(module)`` once the module ``name`` has been executed."""

    def __init__(self, name: str, then):
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        loader, then = spec.loader, self.then
        exec_module = loader.exec_module

        def exec_and_guard(module):
            exec_module(module)
            then(module)

        loader.exec_module = exec_and_guard
        sys.meta_path.remove(self)
        return spec


QUICK_GUARD = QuickGuard()


def pytest_configure(config):
    QUICK_GUARD.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The guard watches the test's setup (session fixtures it starts included), call
    and teardown."""
    QUICK_GUARD.item = item
    QUICK_GUARD.quick = not any(item.get_closest_marker(m) for m in ("slow", "ray_up"))
    QUICK_GUARD.refused = []
    try:
        return (yield)
    finally:
        QUICK_GUARD.item, QUICK_GUARD.quick = None, False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A refusal the test swallowed (an exception in a thread) still fails it."""
    report = yield
    if QUICK_GUARD.item is item and QUICK_GUARD.refused and report.passed \
            and report.when == "call":
        report.outcome = "failed"
        report.longrepr = QUICK_GUARD.refused[0]
    return report
