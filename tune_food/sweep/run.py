"""``python -m tune_food.sweep``: plan, check, run and resume a sweep, in that order.

1. :mod:`tune_food.sweep.cli` turns the command line into :class:`~tune_food.sweep.options.SweepOptions`.
2. :func:`run_sweep` checks the options, reads the search space, names the sweep
   (:func:`check_sweep`), checks the resource request against the cluster
   (:mod:`tune_food.sweep.cluster`) and plans the trials and feature sets
   (:mod:`tune_food.sweep.plan`; on ``--resume`` what it adds, once, as the plan's
   :class:`~tune_food.sweep.plan.ExtensionPlan`): everything that can fail fails here,
   before anything launches (docs/architecture.md, "fail before launching").
   :func:`dry_run_checks` runs the same checks without starting Ray (a dry run without
   its Ray start; the tests of what a sweep refuses use it).
3. A :class:`tune_food.sweep.launch.Launch` of the plan runs it and writes the outputs.

Every user-fixable problem is a :class:`~tune_food.common.errors.TuneFoodError`; :func:`main`
prints it as one line on stderr and returns 2. Heavy modules (Ray, torch, pandas) are
imported only after the command line is parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import signal
import sys
import threading
import time
from typing import Any, NamedTuple, Sequence

from tune_food.common.cliargs import cli_call
from tune_food.common.errors import RayStartError, SweepError
from tune_food.common.files import folder_problem
from tune_food.sweep.cli import PROG, parse_options
from tune_food.sweep.options import SweepOptions, resume_options
from tune_food.sweepdir.layout import SPACE_FILE, experiment_dir, is_uri, local_dir

MAX_NAME_BYTES = 200     # sweep names; file systems allow 255 bytes per path component
#: checked (tune_food.common.environment), then imported, before the sweep's first check
IMPORTS = ("torch", "torchvision", "ray")


class Checked(NamedTuple):
    """A sweep's options once checked (those saved by the sweep on ``--resume``), its
    search space, name and experiment folder, and on ``--resume --num-samples N`` the
    trials the search had planned (:func:`check_sweep`)."""

    options: SweepOptions
    space: Any                  # tune_food.sweep.spaces.SearchSpace
    name: str
    exp_dir: str
    extend_from: int | None = None   # tune_food.sweep.history.extension
    confirm: Any = None         # --confirm: its tune_food.sweepdir.record.Confirmation


def run_sweep(options: SweepOptions, out=None) -> int:
    """Run (or with ``dry_run`` only plan) a sweep; return the exit code.

    Returns:
        0 when every trial finished (or the dry run passed), 1 when some errored
        (their names are printed), 130 when interrupted.

    Raises:
        TuneFoodError: any problem found before launch.
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.plan import print_plan
    from tune_food.sweep.ray_start import shutdown_ray

    out = out or sys.stdout
    checked = check_sweep(options)
    options, name, exp_dir = checked.options, checked.name, checked.exp_dir
    plan, cluster, concurrent = _start_ray_and_plan(checked, out)
    print_plan(plan, options, cluster, concurrent, out)
    if options.dry_run:
        shutdown_ray()
        trials = len(plan.trials) or options.samples
        print(f"dry run: every check passed and Ray started; nothing was run or written "
              f"({trials} trial(s) planned). Drop --dry-run to run them.", file=out)
        return 0
    if not is_uri(exp_dir) and len(cluster.nodes) > 1:
        print(f"warning: --results-dir {options.results_dir} is a local path on a "
              f"{len(cluster.nodes)}-node cluster; Ray does not copy trial folders to the "
              "head node, so use shared storage (an NFS mount on every node, or "
              "s3://... / gs://...)", file=sys.stderr)
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.launch import Launch

    return Launch(plan, options, name, exp_dir, out).run()


def check_sweep(options: SweepOptions) -> Checked:
    """The checks before planning, none of which needs Ray: on ``--resume`` the saved
    sweep's options (and that no driver runs it), the options, the search space, the
    sweep's name and the folders and stores it writes to.

    Raises:
        TuneFoodError: the first problem found.
    """
    options.check_confirm()   # --confirm's own flags: before the saved sweep's are read
    if options.resume:
        options = _resumed(options)   # a saved sweep passed the checks when it started
    options.check()
    extend_from = confirm = None
    if options.resume:
        # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
        from tune_food.sweep.history import extension

        # a --num-samples that drops trials is refused here, before anything else
        extend_from = extension(options, options.sweep_dir)
    if options.confirm is not None:
        # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
        from tune_food.sweep.confirm import plan_confirmation

        # what cannot be confirmed is refused here, before Ray starts
        confirm = plan_confirmation(options, options.sweep_dir)
    space = _read_space(options)
    name = _sweep_name(options, space.path)
    exp_dir = experiment_dir(options.results_dir, name)
    _check_where_it_writes(options, exp_dir, name)
    return Checked(options, space, name, exp_dir, extend_from, confirm)


def dry_run_checks(options: SweepOptions, out=None):
    """Every check of a sweep (its dry run's) that needs no Ray, in :func:`run_sweep`'s
    order and by the same functions: :func:`check_sweep`, the resource request against
    this machine (with ``--address`` the cluster's nodes are known only once joined, so
    that check is left to the real dry run), the plan (data, weights, bad images,
    leakage; on ``--resume`` the same data and the extension rules; ``--warm-start``) and
    what is checked before Ray is asked (the address answers as Ray; Ray's temporary
    folder). Starts no Ray, writes nothing; the tests of what a dry run refuses go
    through it.

    Returns:
        ``(plan, cluster, trials at once)``; cluster and trials are None with ``--address``.

    Raises:
        TuneFoodError: the problem the dry run (and the run) would report.
    """
    return _start_ray_and_plan(check_sweep(options), out or sys.stdout, ray=False)


def _start_ray_and_plan(checked: Checked, out, ray: bool = True):
    """Join the cluster and plan, or plan while a local Ray starts; return ``(plan,
    cluster, trials at once)``. The resource request is checked before Ray starts
    locally; a problem of the input is reported before one of Ray's. With ``ray`` false
    (:func:`dry_run_checks`) Ray is neither started nor joined: the same checks and plan,
    and those :func:`~tune_food.sweep.ray_start.start_ray` makes before it asks Ray (the
    address answers as a Ray cluster; Ray's temporary folder), without the joined
    cluster's resources (None).

    Raises:
        TuneFoodError: a problem of the input, the resources or Ray's start.
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.cluster import check_resources, connected_cluster, local_cluster
    from tune_food.sweep.ray_start import (
        check_address,
        check_temp_folder,
        ray_connected,
        shutdown_ray,
        start_ray,
    )

    options = checked.options
    if options.address:   # the cluster's nodes decide how many trials fit
        if not ray:   # what start_ray checks before it asks Ray: something answers as Ray
            check_address(options.address)
            return _planned(checked, out), None, None
        ray_start = time.perf_counter()
        print(f"joining the Ray cluster at {options.address} ...", file=out, flush=True)
        start_ray(options.address)
        cluster = connected_cluster()
        ray_s = time.perf_counter() - ray_start
        concurrent = check_resources(options, cluster)
        plan = _planned(checked, out)
    else:
        cluster = local_cluster()
        concurrent = check_resources(options, cluster)
        if not ray:   # the plan, then what start_ray checks before it asks Ray
            plan = _planned(checked, out)
            check_temp_folder()
            return plan, cluster, concurrent
        # the local Ray starts while the sweep is planned (imports, listing, hashing and
        # decoding every image): seconds each, and neither needs the other
        planning = _Planning(checked, out)
        ray_start = time.perf_counter()
        print("using this process's Ray (started before the sweep) ..." if ray_connected()
              else "starting a local Ray ...", file=out, flush=True)
        try:
            start_ray(None)
        except RayStartError:
            planning.result()   # a problem of the input is reported before Ray's
            raise
        ray_s = time.perf_counter() - ray_start
        try:
            plan = planning.result()
        except BaseException:
            shutdown_ray()
            raise
    return dataclasses.replace(plan, timings=dict(plan.timings, ray_init_s=ray_s)), cluster, \
        concurrent


def _planned(checked: Checked, out):
    """:func:`tune_food.sweep.plan.plan_sweep`, then, as one new plan: on ``--resume``
    the check that the data did not change and what the resume adds
    (:func:`_extension`), with ``--warm-start`` the earlier sweep's trials, checked and
    added to an Optuna study as the sweep will (:mod:`tune_food.sweep.history`); its time
    is the plan's ``checks_s``."""
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.history import warm_start
    from tune_food.sweep.plan import check_same_data, plan_sweep
    from tune_food.sweep.search import check_search

    space, options, name = checked.space, checked.options, checked.name
    start = time.perf_counter()
    plan = plan_sweep(space, options, out)
    extension, history, notes = None, None, []
    if options.resume:
        check_same_data(plan, options.sweep_dir, name)
        extension, note = _extension(checked, plan)
        notes = [note] if note else []
    elif options.warm_start:
        history = warm_start(options.warm_start, plan, options)
        check_search(space, options.search, options.seed, options.max_concurrent, history)
        notes = [f"Optuna starts from the {len(history.points)} completed trials of "
                 f"{options.warm_start} (--warm-start)"]
    return dataclasses.replace(plan, extension=extension, history=history,
                               notes=plan.notes + notes,
                               timings=dict(plan.timings,
                                            checks_s=time.perf_counter() - start))


def _extension(checked: Checked, plan):
    """What ``--resume`` adds to the sweep (a :class:`~tune_food.sweep.plan.ExtensionPlan`,
    or None) and the note that says so: a wider grid's new combinations (with those of a
    widening interrupted before it began), a search's ``--num-samples N``
    (``checked.extend_from``), or an extension interrupted before its new trials began.

    Raises:
        SweepError: a wider space that changes what ran; a completed trial the extended
            Optuna study cannot take (:func:`tune_food.sweep.history.check_extension`).
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.history import check_extension, pending_extension, widen_grid
    from tune_food.sweep.plan import ExtensionPlan

    options, name, sweep_dir = checked.options, checked.name, checked.options.sweep_dir
    confirmation = _confirmation(checked, sweep_dir)
    if confirmation is not None:
        return confirmation
    added = widen_grid(options, plan, sweep_dir, name)
    pending = pending_extension(sweep_dir)
    if added and pending is not None and pending.added:
        # a wider grid again before an interrupted widening began: both run now
        # (its combinations are planned already, so widen_grid does not list them)
        added = [dict(c) for c in pending.added] + added
    if added:
        extension = ExtensionPlan(len(plan.trials) - len(added), len(plan.trials), added)
        return extension, (f"--space {options.space}: sweep {name} runs the {len(added)} new "
                           f"combinations only; the {extension.start} it had planned are kept")
    if checked.extend_from is not None:
        check_extension(options, plan, sweep_dir)   # Optuna takes its trials
        return ExtensionPlan(checked.extend_from, options.samples), \
            (f"--num-samples {options.num_samples}: sweep {name} adds trials to the "
             f"{checked.extend_from} it had planned")
    if pending is not None:   # an extension interrupted before its new trials began
        extension = ExtensionPlan(pending.start, pending.to,
                                  [dict(c) for c in pending.added or []] or None, pending=True)
        if not extension.added:
            check_extension(options, plan, sweep_dir)   # Optuna takes its trials
        return extension, (f"sweep {name} was being extended from {extension.start} to "
                           f"{extension.to} trials: this resume finishes that")
    return None, None


def _confirmation(checked: Checked, sweep_dir: str):
    """``--confirm``'s :class:`~tune_food.sweep.plan.ExtensionPlan` and its note, or one
    interrupted before its trials began (a plain ``--resume`` starts them); None when
    neither."""
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.plan import ExtensionPlan
    from tune_food.sweepdir.state import read_state

    entry = checked.confirm
    pending = entry is None
    if pending:
        entry = read_state(sweep_dir).pending_confirmation()
        if entry is None:
            return None
    added = entry.trial_configs()
    extension = ExtensionPlan(entry.start, entry.to, added, pending=pending, confirm=entry)
    seeds = " ".join(map(str, entry.seeds))
    what = "this resume starts the confirmation it was interrupted before: " if pending else ""
    return extension, (f"--confirm: sweep {checked.name} {what}trains its top "
                       f"{len(entry.configs)} configuration(s) again with seeds {seeds} "
                       f"({len(added)} new trials after its {entry.start})")


class _Planning:
    """:func:`_planned` in a daemon thread (Ctrl-C while Ray starts ends the process
    without waiting for it); :meth:`result` waits, interruptibly, and raises what the
    plan raised."""

    def __init__(self, checked: Checked, out):
        self._out: dict = {}
        self._thread = threading.Thread(target=self._run, args=(checked, out),
                                        name="plan", daemon=True)
        self._thread.start()

    def _run(self, *args) -> None:
        try:
            self._out["plan"] = _planned(*args)
        except BaseException as exc:   # noqa: BLE001 - raised again in the main thread
            self._out["error"] = exc

    def result(self):
        while self._thread.is_alive():
            self._thread.join(0.1)   # short waits: Ctrl-C reaches the main thread
        if "error" in self._out:
            raise self._out["error"]
        return self._out["plan"]


def _resumed(options: SweepOptions) -> SweepOptions:
    """The options of the sweep ``--name`` being resumed (see
    :func:`tune_food.sweep.options.resume_options`).

    Raises:
        SweepError: no ``--name``, or no such sweep.
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweepdir.state import refused_while_running, running_driver, saved_args

    if options.grid and options.search:
        options.check()   # the contradiction is in this command, not in the saved sweep
    if not options.name:
        raise SweepError("--resume needs --name, the sweep to continue")
    sweep_dir = local_dir(experiment_dir(options.results_dir, options.name), options.name)
    saved = saved_args(sweep_dir, options.name, options.results_dir)
    driver = running_driver(sweep_dir)
    if driver:   # checked again, for good, when the sweep starts (launch.claim_driver)
        raise SweepError(refused_while_running(sweep_dir, driver))
    return resume_options(options, saved, sweep_dir)


def _read_space(options: SweepOptions):
    """The search space: the sweep's own copy on ``--resume``, else ``--space``, else
    the packaged default; checked against the search algorithm.

    Raises:
        SpaceError, SweepError: a bad space, or one the chosen search cannot run.
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.search import check_search
    from tune_food.sweep.spaces import default_space_dir, load_space

    path = options.space or os.path.join(default_space_dir(), options.default_space_file)
    if options.resume and "space" not in options.given and \
            os.path.isfile(os.path.join(options.sweep_dir, SPACE_FILE)):
        path = os.path.join(options.sweep_dir, SPACE_FILE)
    space = load_space(path)
    if options.search == "optuna" and "seed" in space.varied and "seeds" in space.raw:
        raise SweepError(f"{space.path}: seeds repeats grid configurations; with --search "
                         "optuna sample the seed instead (parameters.seed: {randint: [0, 1000]})")
    if options.grid and not space.is_grid:
        raise SweepError(f"{space.path} samples parameters ({', '.join(space.varied)}); "
                         "--grid needs constants and grid_search lists only; use --search "
                         "optuna or --search random for this space")
    check_search(space, options.search, options.seed, options.max_concurrent)
    return space


def _sweep_name(options: SweepOptions, space_path: str) -> str:
    """``--name``, else ``<space file stem>-<date>-<time>``.

    Raises:
        SweepError: a name that is not a plain folder name, or too long.
    """
    name = options.name if options.name is not None else \
        f"{os.path.splitext(os.path.basename(space_path))[0]}-" \
        f"{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise SweepError(f"--name {name!r} must be a plain, non-empty folder name")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise SweepError(f"--name is {len(name.encode())} bytes long; file systems hold "
                         f"folder names up to 255 bytes and tune_food allows {MAX_NAME_BYTES}: "
                         "choose a shorter name")
    return name


def _check_where_it_writes(options: SweepOptions, exp_dir: str, name: str) -> None:
    """The sweep folder is new (or resumed), the folders can be written, and the stores
    it will write to (the feature store, ``--mlflow``'s) can be opened.

    Raises:
        SweepError, DataError: one of them cannot.
    """
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.features.store import check_store as check_feature_store

    if not options.resume and not is_uri(exp_dir) and os.path.exists(exp_dir):
        raise SweepError(f"sweep {exp_dir} exists already; choose another --name or add "
                         "--resume to continue it")
    for flag, folder in (("--results-dir", options.results_dir), ("--cache-dir", options.cache_dir)):
        if folder and not is_uri(folder):
            _check_writable_folder(flag, folder)
    check_feature_store(options.feature_store_dir)
    if options.mlflow:
        # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
        from tune_food.results.tracking import check_store as check_mlflow_store

        check_mlflow_store(options.mlflow, local_dir(exp_dir, name))


def _check_writable_folder(flag: str, folder: str) -> None:
    """A folder flag must name a folder this process can create or write in.

    Raises:
        SweepError: it cannot (:func:`tune_food.common.files.folder_problem` says why).
    """
    problem = folder_problem(folder)
    if problem:
        raise SweepError(f"{flag} {folder} {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (0 finished, 1 trials failed,
    2 bad input, 130 interrupted by SIGINT or SIGTERM)."""
    # lazy: --help speed: 0.08 s, not the ~5 s of Ray, torch and pandas (measured)
    from tune_food.sweep.cluster import in_main_thread, sigterm_as_sigint

    options = parse_options(argv)
    previous = {}
    if in_main_thread():
        # a job started in the background by a non-interactive shell inherits SIGINT
        # ignored; `kill -INT` must still stop the sweep
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, sigterm_as_sigint)}
    try:
        return cli_call(PROG, options.debug, run_sweep, options, imports=IMPORTS)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted before the sweep started; nothing was written",
              file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


