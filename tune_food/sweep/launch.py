"""Run a planned sweep: ``sweep.json``, the feature sets, the Ray Tune trials, the outputs.

A :class:`Launch` is the whole running phase of ``python -m tune_food.sweep`` after the
checks, one object: the plan and options it runs, the sweep's name and folders, its
``sweep.json`` record, the terminal it prints to, and what this run measured. Its
:meth:`~Launch.run` writes ``sweep.json`` (status ``running``; :meth:`~Launch.start`),
computes every (model, split) feature set once (:meth:`~Launch.compute_features`), runs
the trials with ``tune.Tuner`` (:meth:`~Launch.tuner`; restored on ``--resume``,
:meth:`~Launch.extension_tuner` when the resume adds trials), measures the deployment
figures, then writes the leaderboard, results and plots
(:func:`tune_food.results.outputs.write_outputs`) and the final ``sweep.json``
(:meth:`~Launch.finish`). With ``--mlflow`` it opens the sweep's MLflow runs before
writing anything and closes them at the end (:mod:`tune_food.results.tracking`). A SIGINT
(or SIGTERM, turned into SIGINT) in any phase ends the sweep as ``interrupted`` with exit
code 130 and the resume command on stderr.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import shutil
import sys
import threading
import time
import warnings
from typing import Any

import pandas as pd
import ray
from ray import tune
from ray.tune import Callback
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from tune_food.common.errors import SweepError, TuneFoodError, one_line, optional_step
from tune_food.common.progress import PROGRESS_EVERY_S
from tune_food.features.tasks import compute_feature_sets
from tune_food.models.devices import requested_runtime
from tune_food.results.outputs import load_trials, summary_columns, upload, write_outputs
from tune_food.results.tb import TensorBoardCallback
from tune_food.results.tracking import log_sweep, mlflow_callbacks, start_runs
from tune_food.sweep.deployment import measure_models
from tune_food.sweep.history import own_trials
from tune_food.sweep.moved_sweep import Location, RelocatableVariants, place_new_trials
from tune_food.sweep.options import SweepOptions
from tune_food.sweep.plan import Plan, TrialNamer
from tune_food.sweep.ray_start import shutdown_ray
from tune_food.sweep.search import make_search, rungs_of
from tune_food.sweepdir.columns import STATUS, TRIAL_NAME
from tune_food.sweepdir.layout import (
    LEADERBOARD_FILE,
    REPORT_COMMAND,
    SPACE_FILE,
    is_uri,
    without_internal_keys,
)
from tune_food.sweepdir.layout import local_dir as local_dir_of
from tune_food.sweepdir.record import Extension, Planned, SweepState, WarmStart
from tune_food.sweepdir.state import (
    SweepStart,
    claim_driver,
    now,
    peek_state,
    resume_command,
    start_state,
    write_state,
)
from tune_food.sweepdir.status import RAY_ENDED, RayStatus, SweepStatus, TrialStatus
from tune_food.train.trainable import train_food


class Launch:
    """One run of a planned sweep (its first, or a ``--resume``), from ``sweep.json``'s
    ``running`` to its exit code. What it runs: ``plan``
    (:class:`~tune_food.sweep.plan.Plan`, a resume's extension included), ``options``,
    the sweep's ``name`` and folders (``exp_dir``: the experiment folder, a storage URI
    too; ``local_dir``: the folder it writes), ``out`` (its progress lines and summary).
    What it keeps while it runs: ``state`` (``sweep.json``'s record, from :meth:`start`
    on), ``features`` (the feature sets' object references, from
    :meth:`compute_features` on), ``callbacks`` (``--mlflow``'s Ray Tune callbacks),
    ``timings`` (phase -> seconds: the plan's, then this run's), ``warnings`` (the
    optional steps that failed) and ``started`` (when its trials' phase began).

    Ray is running already (:func:`tune_food.sweep.ray_start.start_ray`); :meth:`run`
    runs it, the methods below are its phases in order."""

    def __init__(self, plan: Plan, options: SweepOptions, name: str, exp_dir: str, out):
        self.plan, self.options, self.name, self.exp_dir, self.out = \
            plan, options, name, exp_dir, out
        self.local_dir = local_dir_of(exp_dir, name)
        #: where its trials go, given to each search algorithm it makes or restores (a
        #: Ray Tune workaround, :mod:`tune_food.sweep.moved_sweep`); None for a URI
        self.location: Location | None = None if is_uri(exp_dir) else \
            (os.path.dirname(exp_dir), name)
        self.state: SweepState | None = None
        self.features: dict[str, Any] = {}
        self.callbacks: list = []
        self.timings: dict[str, float] = dict(plan.timings)
        self.warnings: list[str] = []
        self.started = 0.0

    def run(self) -> int:
        """Run the sweep; return the exit code (0 finished, 1 some trial failed, 130
        interrupted).

        A failure after ``sweep.json`` is written and before the trials end (a bad image
        an extraction task found, a store that broke, Ray Tune refusing to start) leaves
        the sweep ``failed`` with the reason, and its leaderboard lists every planned
        trial that never ran as ``NOT_STARTED``; ``--resume`` runs it.

        Raises:
            TuneFoodError: a problem a feature-extraction task found (e.g. a bad image).
            SweepError: ``--mlflow`` names a store that cannot be reached (checked first:
                the sweep folder is not created then).
        """
        with claim_driver(self.local_dir):   # one driver per sweep (a second is refused)
            return self._run()

    def _run(self) -> int:
        """:meth:`run` while this process is the sweep's one driver."""
        search = self.start()
        self.started, interrupted = time.time(), False
        try:
            self.run_trials(search)
        except KeyboardInterrupt:
            interrupted = True
        except BaseException as exc:
            self.fail(exc)
            shutdown_ray()
            raise
        # the outputs read the sweep folder only: Ray stops meanwhile (about a second)
        stopping = threading.Thread(target=shutdown_ray, name="ray-shutdown")
        stopping.start()
        state = self.state
        try:
            code = self.finish(interrupted)
        except KeyboardInterrupt:
            state.status, state.resume = SweepStatus.INTERRUPTED, resume_command(self.name, None)
            write_state(state, self.local_dir)
            code = 130
        except BaseException as exc:   # the leaderboard itself could not be written
            self.fail(exc, outputs=False)
            raise SweepError(f"sweep {self.name}: its trials ended but its leaderboard could "
                             f"not be written ({state.error}); the trials are kept: "
                             f"{REPORT_COMMAND} {shlex.quote(self.local_dir)} writes it "
                             "again") from None
        finally:
            stopping.join()
        if code == 130:
            print(f"sweep interrupted; continue it with: "
                  f"{resume_command(self.name, self.options.results_dir)}", file=sys.stderr)
        return code

    def start(self) -> tuple:
        """``sweep.json`` ``running`` (``--mlflow``'s runs opened first), and an
        extension the resume starts recorded in it. Returns the search:
        :func:`tune_food.sweep.search.make_search`'s ``(search_alg, scheduler,
        num_samples)``."""
        plan, options = self.plan, self.options
        search = make_search(plan.space, options, plan.history, location=self.location)
        earlier = peek_state(self.local_dir) if options.resume else None
        mlflow = start_runs(options.mlflow, self.name, self.local_dir,
                            earlier.mlflow if earlier else None)
        self.state = start_state(self.sweep_start(len(plan.trials) or search[2], mlflow),
                                 self.local_dir)
        if plan.extension is not None and not plan.extension.pending:
            if plan.extension.confirm is not None:
                self.record_confirmation()
            else:
                self.record_extension()   # --num-samples N, a wider grid
        return search

    def sweep_start(self, planned_trials: int, mlflow: dict | None) -> SweepStart:
        """What ``sweep.json`` starts with (:class:`~tune_food.sweepdir.state.SweepStart`):
        the plan's space, data and trials and the options, as the sweep folder keeps them.
        ``planned_trials``: a grid's trials, a search's samples; ``mlflow``: ``--mlflow``'s
        runs (:func:`tune_food.results.tracking.start_runs`), or None."""
        plan, options, space = self.plan, self.options, self.plan.space
        warm = WarmStart(os.path.abspath(options.warm_start), len(plan.history.points)) \
            if plan.history is not None and options.warm_start else None
        return SweepStart(
            name=self.name, space_path=space.path, space=space.raw, metric=space.metric,
            mode=space.mode, args=options.saved(), data_root=plan.data_root,
            datasets=dict(plan.datasets),
            skipped_bad_images=[{"path": plan.relative(p), "reason": r}
                                for p, r in plan.bad_images],
            validation=plan.validation.summary(), test_sets=plan.test_sets,
            allow_leakage=options.allow_leakage,
            backbone_runtime=requested_runtime(options.backbone_runtime),
            planned=Planned(planned_trials, [dict(t) for t in plan.trials]), warm_start=warm,
            mlflow=mlflow, resume=options.resume)

    def record_extension(self) -> None:
        """``sweep.json`` of an extended sweep: what it now plans (a search's ``N``, or
        the wider grid's every combination, its space then the sweep's own
        ``space.yaml``) and the extension in ``extended`` (``from``, ``to``, ``at``)."""
        plan, state, extension = self.plan, self.state, self.plan.extension
        state.planned = Planned(extension.to,
                                [dict(t) for t in plan.trials] if extension.added else [])
        # "started" turns true when the new Tuner starts: a sweep interrupted before then
        # finishes the extension on a plain --resume (sweep.history.pending_extension)
        entry = Extension(at=now(), start=extension.start, to=extension.to, started=False)
        if extension.added:
            entry.added = [dict(c) for c in extension.added]
            shutil.copyfile(plan.space.path, os.path.join(self.local_dir, SPACE_FILE))
            state.space = plan.space.raw
            state.args = dict(state.args, space=self.options.space)
            entry.space = self.options.space
        state.extended = (state.extended or []) + [entry]
        write_state(state, self.local_dir)

    def record_confirmation(self) -> None:
        """``sweep.json`` of a sweep being confirmed (``--confirm``): its planned trials
        grow by the confirmation's (a grid's configurations listed with theirs, so that
        an interrupted confirmation lists the trials it did not start), and the
        confirmation is recorded in ``confirmations``, not started yet."""
        state, extension = self.state, self.plan.extension
        planned = state.planned or Planned(extension.start)
        configs = planned.configs + [dict(c) for c in extension.added] if planned.configs \
            else []
        state.planned = Planned(extension.to, configs)
        state.confirmations = (state.confirmations or []) + [extension.confirm]
        write_state(state, self.local_dir)

    def run_trials(self, search: tuple) -> None:
        """Compute the feature sets once, run the Tuner (interruptible), measure the
        deployment figures. ``search``: :meth:`start`'s."""
        plan = self.plan
        # Our TensorBoardCallback is a plain LoggerCallback: keep Tune from adding its own
        # TensorBoard logger beside it (the CSV and JSON loggers are passed explicitly).
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        if not is_uri(self.exp_dir):  # cheap on local disk; --resume loses at most 2 s
            os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
        search_alg, scheduler, num_samples = search
        self.features = self.compute_features()
        # TensorBoard's HParams domains: the space this run plans (a wider grid's, too)
        optional_step("TensorBoard's HParams experiment summary", lambda: TensorBoardCallback
                      .for_space(plan.space).write_experiment(self.local_dir), self.warnings)
        self.callbacks = mlflow_callbacks(self.state.mlflow, self.name)
        if plan.extension is not None:
            tuner = self.extension_tuner(scheduler)
        else:
            tuner = self.tuner(search_alg, scheduler, num_samples)
        results = self.fit(tuner)
        # after a SIGINT Ray Tune returns with its trials stopped (TERMINATED in memory,
        # still running in its saved state): measuring then would delay the exit by
        # seconds per backbone; a resumed sweep measures what it lacks
        if not _unfinished(self.exp_dir, 0):
            self.measure_deployment(results)

    def compute_features(self) -> dict[str, Any]:
        """Compute (or read from the cache) every feature set of the plan, once; record
        what each cost in ``sweep.json``. Returns feature key -> object reference."""
        plan, options, state = self.plan, self.options, self.state
        features, feature_info = {}, []
        t0 = time.perf_counter()
        if plan.pairs:
            print(f"computing {len(plan.pairs)} feature sets once ...", file=self.out,
                  flush=True)
            try:
                features, feature_info = compute_feature_sets(
                    plan.pairs, options.cpus_per_trial, options.gpus_per_trial,
                    options.feature_store_dir, plan.exclude, out=self.out,
                    runtime=options.backbone_runtime)
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, TuneFoodError):   # the task's own exception
                    raise exc.cause from None
                raise
            for info in feature_info:
                info["split_dir"] = "+".join(plan.relative(d) for d in info.pop("split_dirs"))
        self.timings["features_s"] = time.perf_counter() - t0
        state.feature_sets, state.feature_extraction_s = feature_info, self.timings["features_s"]
        write_state(state, self.local_dir)
        return features

    def tuner(self, search_alg, scheduler, num_samples: int, fresh: bool = False,
              first: int = 0):
        """A new ``tune.Tuner`` for the plan, or on ``--resume`` (unless ``fresh``) the
        restored one (which keeps the callbacks it was started with: ``--mlflow``'s go
        unused then). ``first``: the number of the new Tuner's first trial folder
        (``_00010`` after 10 trials of an extended search)."""
        plan, options, space = self.plan, self.options, self.plan.space
        param_space = dict(space.param_space, feature_cache=options.feature_cache)
        trainable = self.trainable(scheduler)
        if options.resume and not fresh and tune.Tuner.can_restore(self.exp_dir):
            # no param_space: Ray Tune restores the one its Tuner started with (a
            # re-specified one must have the same keys, and a widened grid's has more)
            tuner = tune.Tuner.restore(self.exp_dir, trainable=trainable,
                                       resume_unfinished=True, resume_errored=False,
                                       restart_errored=True)
            # trials its search algorithm creates go where the sweep is now (a Ray Tune
            # workaround: that algorithm was unpickled from the sweep folder)
            place_new_trials(tuner, self.location)
            return tuner
        return tune.Tuner(
            trainable, param_space=param_space, run_config=self.run_config(num_samples),
            tune_config=tune.TuneConfig(
                metric=space.metric, mode=space.mode, num_samples=num_samples,
                search_alg=search_alg, scheduler=scheduler,
                max_concurrent_trials=options.max_concurrent or None, reuse_actors=True,
                trial_name_creator=TrialNamer(space.varied, False),
                trial_dirname_creator=TrialNamer(space.varied, True, first)))

    def trainable(self, scheduler):
        """``train_food`` with the plan's data and feature sets, the epochs it
        checkpoints (``scheduler``'s rungs), and the resources each trial asks for."""
        plan, options = self.plan, self.options
        return tune.with_resources(
            tune.with_parameters(train_food, datasets=plan.datasets, features=self.features,
                                 exclude=plan.exclude,
                                 checkpoint_epochs=rungs_of(scheduler, plan.space),
                                 val_sets=plan.validation.sets or None,
                                 runtime=options.backbone_runtime,
                                 cache_dir=options.feature_store_dir),
            {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})

    def extension_tuner(self, scheduler):
        """The Tuner that extends the sweep (``--resume --num-samples N``, a wider grid):
        first the trials the sweep had planned are finished (Ray Tune's
        ``Tuner.restore``, when some are not), then a new ``Tuner`` in the same
        experiment folder runs the trials added (a search samples the ``N - held`` left,
        its Optuna study given every completed trial of the sweep first:
        :func:`tune_food.sweep.history.own_trials`; a grid runs its new combinations),
        its trial folders numbered on from the sweep's. Random search draws them with
        ``--seed`` plus the trials held, so that it does not draw the same
        configurations again."""
        plan, options, extension, exp_dir = \
            self.plan, self.options, self.plan.extension, self.exp_dir
        if extension.confirm is not None:
            return self.confirmation_tuner()
        if tune.Tuner.can_restore(exp_dir) and _unfinished(exp_dir, extension.start):
            print(f"finishing the {extension.start} trials the sweep had planned ...",
                  file=self.out, flush=True)
            self.fit(self.tuner(None, scheduler, 0))
            if _unfinished(exp_dir, extension.start):   # Ray Tune stopped them on a SIGINT
                raise KeyboardInterrupt
        held = len(load_trials(exp_dir, every_session=True)[0]) if \
            tune.Tuner.can_restore(exp_dir) else 0
        if extension.added:   # a wider grid: exactly its new combinations, one trial each
            search_alg = RelocatableVariants(points_to_evaluate=[
                {k: c[k] for k in plan.space.varied} for c in extension.added],
                location=self.location)
            samples, history = len(extension.added), None
        else:
            history = own_trials(self.local_dir, plan.space, self.state) if held else None
            search_alg, scheduler, samples = make_search(
                plan.space, dataclasses.replace(options, seed=options.seed + held), history,
                samples=extension.to - held, location=self.location)
        print(f"adding {samples} trials to the {held} of sweep {self.name}" +
              (f"; Optuna starts from its {len(history.points)} completed trials"
               if history and options.search == "optuna" else ""), file=self.out, flush=True)
        self.state.extended[-1].started = True
        write_state(self.state, self.local_dir)
        return self.tuner(search_alg, scheduler, samples, fresh=True, first=held)

    def confirmation_tuner(self):
        """The Tuner of a confirmation (``--confirm``): a new ``Tuner`` in the sweep's
        folder whose trials are exactly the confirmation's configurations with their new
        seeds (Ray Tune's ``BasicVariantGenerator`` given them as ``points_to_evaluate``
        over a space of constants), every epoch run (no early stopping: each seed's
        result is whole), folders numbered on from the sweep's and named with their seed.
        ``sweep.json`` records it started."""
        plan, extension = self.plan, self.plan.extension
        added = [dict(c) for c in extension.added]
        search_alg = RelocatableVariants(points_to_evaluate=[dict(c) for c in added],
                                         location=self.location)
        print(f"confirming: {len(extension.confirm.configs)} configuration(s) x "
              f"{len(extension.confirm.seeds)} new seeds = {len(added)} trials added to the "
              f"{extension.start} of sweep {self.name}", file=self.out, flush=True)
        self.state.confirmations[-1].started = True
        write_state(self.state, self.local_dir)
        names = [*plan.space.varied, "seed"] if "seed" not in plan.space.varied \
            else list(plan.space.varied)
        return tune.Tuner(
            self.trainable(None), param_space=dict(added[0]),
            run_config=self.run_config(len(added), total=len(added)),
            tune_config=tune.TuneConfig(
                metric=plan.space.metric, mode=plan.space.mode, num_samples=len(added),
                search_alg=search_alg, scheduler=None,
                max_concurrent_trials=self.options.max_concurrent or None, reuse_actors=True,
                trial_name_creator=TrialNamer(names, False),
                trial_dirname_creator=TrialNamer(names, True, extension.start)))

    def run_config(self, num_samples: int, total: int | None = None):
        """Ray Tune's ``RunConfig``: where, the loggers (TensorBoard, CSV, JSON, progress
        lines, and ``--mlflow``'s: :func:`tune_food.results.tracking.mlflow_callbacks`),
        retries, and every checkpoint kept. ``total``: the trials the progress lines
        count to (default: the plan's grid, else ``num_samples``)."""
        plan, options, exp_dir = self.plan, self.options, self.exp_dir
        return tune.RunConfig(
            name=self.name, storage_path=os.path.dirname(exp_dir) if not is_uri(exp_dir)
            else exp_dir.rsplit("/", 1)[0],
            callbacks=[TensorBoardCallback.for_space(plan.space), _csv_logger(),
                       JsonLoggerCallback(),
                       Progress(total or len(plan.trials) or num_samples, plan.space.metric,
                                self.out,
                                options.max_failures), *self.callbacks],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            # keep every checkpoint (about 60 KB each): with num_to_keep set, Tune
            # snapshots the whole experiment state after every checkpoint
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            verbose=0)

    def fit(self, tuner):
        """``tuner.fit()``, its time in ``timings``, Ray Tune's trial-failure records
        kept off the terminal (:class:`TrialFailureLines`). Returns Ray's ``ResultGrid``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            fit_start = time.perf_counter()
            quiet = TrialFailureLines()
            logging.getLogger(TrialFailureLines.LOGGER).addFilter(quiet)
            try:
                results = tuner.fit()  # Ray Tune handles SIGINT itself: it stops the trials
            finally:
                logging.getLogger(TrialFailureLines.LOGGER).removeFilter(quiet)
                self.timings["trials_s"] = self.timings.get("trials_s", 0.0) + \
                    time.perf_counter() - fit_start
        return results

    def measure_deployment(self, results) -> None:
        """Each backbone's deployment figures (:func:`tune_food.sweep.deployment.measure_models`)
        in ``sweep.json``'s record, those it holds already kept; optional."""
        measure_start = time.perf_counter()
        known = self.state.deployment or {}
        self.state.deployment = optional_step(
            "measuring the deployment figures",
            lambda: measure_models(results, self.plan.datasets, known), self.warnings, known)
        self.timings["deployment_s"] = time.perf_counter() - measure_start

    def outputs(self, interrupted: bool):
        """The leaderboard, results and plots
        (:func:`tune_food.results.outputs.write_outputs`); None when the sweep was
        interrupted before Tune saved any trial."""
        outputs_start = time.perf_counter()
        try:
            result = write_outputs(self.exp_dir, self.local_dir, self.state)
        except SweepError:   # interrupted before Tune saved any trial
            if not interrupted:
                raise
            result = None
        self.timings["outputs_s"] = time.perf_counter() - outputs_start
        return result

    def finish(self, interrupted: bool) -> int:
        """Write the outputs and the final ``sweep.json``; print the summary; return the
        exit code (0 finished, 1 some trial failed, 130 interrupted)."""
        state, local_dir = self.state, self.local_dir
        result = self.outputs(interrupted)
        status = SweepStatus.INTERRUPTED if interrupted or result is None else result.status
        wall = time.time() - self.started
        earlier = state.wall_s or 0.0   # the runs before a --resume
        board = result.board if result is not None else None
        errored = [] if board is None or board.empty else \
            list(board.loc[board[STATUS] == TrialStatus.ERROR, TRIAL_NAME])
        warned = self.warnings + (result.warnings if result is not None else [])
        state.status, state.finished, state.wall_s = status, now(), earlier + wall
        state.timings, state.errored = self.timings, errored
        state.comparison = result.summary if result is not None else ""
        state.trials = 0 if board is None else len(board)
        # what this run could not write (the other outputs are there)
        state.warnings = list(warned) or None   # a copy: the steps below may add to warned
        if status == SweepStatus.INTERRUPTED:
            state.resume = resume_command(state.name, None)
        write_state(state, local_dir)
        # --mlflow: statuses, ranks, the files as artifacts
        optional_step("MLflow's records of the sweep",
                      lambda: log_sweep(state, local_dir, result), warned)
        if result is not None:
            optional_step("the summary",
                          lambda: self.print_summary(result, (earlier, wall), status), warned)
        optional_step(f"copying the sweep's files to {self.exp_dir}",
                      lambda: upload(local_dir, self.exp_dir), warned)
        if warned != (state.warnings or []):   # one of the steps above failed: keep its line
            state.warnings = warned
            write_state(state, local_dir)
        if status == SweepStatus.INTERRUPTED:
            return 130
        if errored:
            print(f"{len(errored)} trial(s) failed: {', '.join(errored)}; see their error.txt "
                  "in the trial folders", file=sys.stderr)
            return 1
        return 0

    def print_summary(self, result, wall: tuple[float, float], status: SweepStatus) -> None:
        """The top of the leaderboard, the tie summary, the time per phase, the files.
        ``wall``: seconds of the earlier runs of a resumed sweep, and of this run."""
        board, space, out = result.board, self.plan.space, self.out
        cols = summary_columns(board, space.metric, "feature_cache", "time_total_s")
        detail = ", ".join(f"{n} {s}" for s, n in board[STATUS].value_counts().items())
        earlier, this_run = wall
        took = f"{earlier + this_run:.1f} s ({this_run:.1f} s in this run)" if earlier else \
            f"{this_run:.1f} s"
        print(f"\nsweep {status} after {took}: {len(board)} trials ({detail}), ranked by "
              f"{space.metric} ({space.mode})", file=out)
        with pd.option_context("display.width", 200, "display.max_columns", 20,
                               "display.float_format", "{:.4f}".format):
            print(board[cols].head(10).to_string(index=False), file=out)
        print(f"\nleaderboard: {os.path.join(self.local_dir, LEADERBOARD_FILE)}", file=out)
        print(f"TensorBoard: tensorboard --logdir {shlex.quote(self.exp_dir)}", file=out)
        for line in (result.summary, result.ship, result.importance,
                     result.verdict.sentence if result.verdict else ""):
            if line:
                print(line, file=out)
        print("time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in self.timings.items()),
              file=out)
        for path in result.files:
            if path.endswith(".png"):
                print(f"plot: {path}", file=out)

    def fail(self, exc: BaseException, outputs: bool = True) -> None:
        """Leave the sweep ``failed``: the reason (the error's first line) in
        ``sweep.json``, and (``outputs``) the leaderboard and results as far as there are
        trials (planned trials that never ran: ``NOT_STARTED``). Anything that fails here
        is left out: the first error counts."""
        state, local_dir, exp_dir = self.state, self.local_dir, self.exp_dir
        reason = one_line(str(exc)) if isinstance(exc, TuneFoodError) else \
            f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
        state.status, state.error, state.finished = SweepStatus.FAILED, reason, now()
        state.wall_s = (state.wall_s or 0.0) + time.time() - self.started
        state.resume = resume_command(state.name, None)
        result = None
        try:
            if outputs:
                result = write_outputs(exp_dir, local_dir, state)
                state.trials = len(result.board)
        except Exception:   # noqa: BLE001 - the sweep's own failure is what is reported
            pass
        write_state(state, local_dir)
        optional_step("MLflow's records of the sweep",
                      lambda: log_sweep(state, local_dir, result), [])
        optional_step(f"copying the sweep's files to {exp_dir}",
                      lambda: upload(local_dir, exp_dir), [])


def _unfinished(exp_dir: str, planned: int) -> bool:
    """True when the sweep at ``exp_dir`` holds fewer than ``planned`` trials or one that
    did not end (neither ``TERMINATED`` nor ``ERROR`` in Ray Tune's saved state)."""
    try:
        records, _ = load_trials(exp_dir, every_session=True)
    except SweepError:
        return True
    return len(records) < planned or any(r.ray_status not in RAY_ENDED
                                         for r in records)


def _csv_logger():
    """Ray Tune's ``CSVLoggerCallback`` (each trial's ``progress.csv``) without Tune's
    internal ``should_checkpoint`` flag. Tune leaves that flag in the first result after
    a trial is restored when that result carries a checkpoint; the CSV logger, which
    keeps the header it wrote before the interrupt, then writes rows one column wider
    than their header (seen with Ray 2.60: ``pd.read_csv`` fails on the resumed file)."""
    class ProgressCSV(CSVLoggerCallback):
        def log_trial_result(self, iteration: int, trial, result: dict) -> None:
            super().log_trial_result(iteration, trial, without_internal_keys(result))

    return ProgressCSV()


class Progress(Callback):
    """A Ray Tune callback printing one line per finished, stopped or failed trial:
    ``[3/8] done    <trial id>  <name>  test_acc 0.9242 [0.885, 0.951]  epochs 10``,
    and, when :data:`~tune_food.common.progress.PROGRESS_EVERY_S` passed without a line, where
    the trials are: ``[3/8] 2 running (epoch 4 of 10, epoch 7 of 10), 3 pending, 41 s``."""

    def __init__(self, total: int | None, metric: str, out, max_failures: int = 0):
        self.total, self.metric, self.out, self.done = total, metric, out, 0
        self.max_failures = max_failures
        self.start = self.last = time.monotonic()

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self.last = time.monotonic()
            print(self.status(trials), file=self.out, flush=True)

    def status(self, trials) -> str:
        """The "still alive" line for ``trials`` (Ray Tune's ``Trial`` objects)."""
        running = [t for t in trials if t.status == RayStatus.RUNNING]
        epochs = ", ".join(f"epoch {t.last_result['epoch']} of {t.config.get('epochs', '?')}"
                           if (t.last_result or {}).get("epoch") else "starting"
                           for t in running[:4])
        more = ", ..." if len(running) > 4 else ""
        pending = sum(t.status == RayStatus.PENDING for t in trials)
        of = f"/{self.total}" if self.total else ""
        return (f"[{self.done}{of}] {len(running)} running" +
                (f" ({epochs}{more})" if running else "") +
                f", {pending} pending, {time.monotonic() - self.start:.0f} s")

    def _line(self, trial, what: str) -> None:
        self.done += 1
        r, metric = trial.last_result or {}, self.metric
        score = f"{metric} {r[metric]:.4f}" if isinstance(r.get(metric), float) else ""
        if "test_acc" in r and metric != "test_acc":
            score += f"  test_acc {r['test_acc']:.4f}"
        ci = (f" [{r['test_acc_ci_low']:.3f}, {r['test_acc_ci_high']:.3f}]"
              if "test_acc_ci_low" in r else "")
        of = f"/{self.total}" if self.total else ""
        self.last = time.monotonic()
        print(f"[{self.done}{of}] {what:<7} {trial.trial_id}  {str(trial):<60} "
              f"{score}{ci}  epochs {r.get('epoch', 0)}", file=self.out, flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = (trial.last_result or {}).get("epoch", 0)
        self._line(trial, "done" if epochs >= int(trial.config.get("epochs", 0)) else "stopped")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trial, TrialStatus.ERROR)

    def on_trial_recover(self, iteration, trials, trial, **info):
        """A trial that failed and is retried: one line on stderr, in place of Ray Tune's
        own traceback (:class:`TrialFailureLines`)."""
        retries = f"retry {trial.num_failures}" + \
            (f" of {self.max_failures}" if self.max_failures >= 0 else "")
        print(f"warning: trial {trial} failed ({_last_error_line(trial)}); Ray Tune runs "
              f"it again from its last checkpoint ({retries})", file=sys.stderr, flush=True)


def _last_error_line(trial) -> str:
    """The last line of the error Ray Tune saved for ``trial`` (its ``error.txt``)."""
    try:
        with open(trial.error_file) as fh:
            lines = [x.strip() for x in fh if x.strip()]
        return lines[-1][:300] if lines else "no error text"
    except (OSError, TypeError):
        return "its worker died"


class TrialFailureLines(logging.Filter):
    """Drops Ray Tune's ``Trial task failed for trial ...`` records (an ERROR with the
    whole traceback, logged by ``ray.tune.execution.tune_controller`` for every failure,
    retried or not): :class:`Progress` says it in one line, and the traceback is in the
    trial's ``error.txt``."""

    LOGGER = "ray.tune.execution.tune_controller"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Trial task failed for trial")
