"""``python -m tune_food.report [results/<name>]``: rebuild a sweep's leaderboard, CSV
files and plots from its trial folders and print the leaderboard. Without a sweep it
takes the newest under ``--results-dir`` (default ``results``), as ``python -m
tune_food.app`` does (:func:`tune_food.sweepdir.state.newest_sweep`), and says which.

It works on a finished, an interrupted or a killed sweep (Ray Tune's
``ExperimentAnalysis`` reads the trial folders; no cluster needed), through the same
:func:`tune_food.results.outputs.write_outputs` the sweep ends with, so on a finished sweep every
file stays byte-identical. Heavy modules are imported after the command line is parsed.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, exit_program, path_arg, quiet_broken_pipe
from tune_food.common.errors import DataError, SweepError
from tune_food.sweepdir.columns import STATUS
from tune_food.sweepdir.layout import ERRORS_PNG, REPORT_COMMAND, RESULTS_DIR
from tune_food.sweepdir.status import SweepStatus, TrialStatus

PROG = REPORT_COMMAND


def rebuild(exp_dir: str, out=None, data_dir: str | None = None, deployment: bool = False):
    """Rebuild the CSV files and plots of ``exp_dir`` from its trial folders (the same
    :func:`tune_food.results.outputs.write_outputs` the sweep ends with); print and return the
    leaderboard. A sweep whose ``sweep.json`` still says ``running`` while its driver is
    gone (killed) is marked with the status its trials show (``interrupted``).
    ``data_dir``: where the sweep's images are (else the sweep's ``--data-dir``,
    ``$TUNE_FOOD_DATA_DIR``, ``./data``); without them ``plots/errors.png`` is not drawn
    and a line says so (:func:`errors_plot_note`). ``deployment``: first measure the
    deployment figures of the models that have none (:func:`measure_deployment`).

    Returns:
        the leaderboard (a ``pandas.DataFrame``, one row per trial, ranked first).

    Raises:
        SweepError: not a sweep folder, a damaged ``sweep.json``, or no trial yet.
        WeightsError: ``deployment`` and a model's weights are missing.
        DataError: ``deployment`` and a model's test photos are not on this machine.
    """
    import pandas as pd  # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)

    from tune_food.results.outputs import summary_columns, write_outputs
    from tune_food.sweepdir.state import read_state, running_driver, write_state

    out = out or sys.stdout
    state = read_state(exp_dir)
    result = write_outputs(exp_dir, exp_dir, state.with_data_dir(data_dir))
    changed = False
    if deployment and measure_deployment(result.board, state, data_dir, out):
        changed = True
        result = write_outputs(exp_dir, exp_dir, state.with_data_dir(data_dir))
    board = result.board
    changed = changed or (state.comparison or "") != result.summary
    state.comparison = result.summary
    if state.status == SweepStatus.RUNNING and not running_driver(exp_dir):
        state.status, changed = result.status, True
    if changed:   # a finished sweep's sweep.json stays byte-identical
        write_state(state, exp_dir)
    cols = summary_columns(board, state.metric)
    why = f" ({state.error})" if state.status == SweepStatus.FAILED and state.error else ""
    print(f"sweep {os.path.basename(os.path.abspath(exp_dir))}: {state.status}{why}",
          file=out)
    with pd.option_context("display.width", 200, "display.float_format", "{:.4f}".format):
        print(board[cols].to_string(index=False), file=out)
    for line in (result.summary, result.ship, result.importance,
                     result.verdict.sentence if result.verdict else ""):
        if line:
            print(line, file=out)
    if not state.deployment and not board.empty:
        print("no deployment figures (cpu_ms, model_mb) in this sweep: add them with "
              f"{PROG} {exp_dir} --deployment", file=out)
    for p in result.files:
        if p.endswith(".png"):
            print(f"plot: {p}", file=out)
    note = errors_plot_note(result.best_predictions, result.files,
                            state.with_data_dir(data_dir))
    if note:
        print(note, file=out)
    return board


def measure_deployment(board, state, data_dir: str | None, out) -> bool:
    """Measure here the deployment figures (:func:`tune_food.models.deploy.deployment_figures`)
    of each model of ``board``'s finished trials that ``state``'s deployment figures lack
    (or hold an error for), with the first test photo of one of its trials; add them to
    ``state`` (a :class:`~tune_food.sweepdir.record.SweepState`) and print a line per
    model. Returns whether any was added.

    Raises:
        WeightsError: a model's weights are missing.
        DataError: a model's test photos are not on this machine.
    """
    import pandas as pd  # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)

    from tune_food.models.deploy import deployment_figures, describe, is_measured
    from tune_food.results.images import dataset_folders, first_test_photo

    figures = dict(state.deployment or {})
    datasets = dataset_folders(state.with_data_dir(data_dir))
    done = board[board[STATUS] == TrialStatus.TERMINATED] if STATUS in board else board.iloc[0:0]
    added = False
    for model, rows in done.groupby("model", sort=True):
        if is_measured(figures.get(model)):
            continue
        config = {k: (None if pd.isna(v) else v) for k, v in rows.iloc[0].items()
                  if k in ("data", "test_data")}
        try:
            photo, num_classes = first_test_photo(config, datasets)
        except ValueError as exc:
            raise DataError(f"cannot measure {model}: {exc}; pass --data-dir DIR") from None
        figures[model] = deployment_figures(model, num_classes, photo)
        print(f"deployment figures of {model}: {describe(figures[model])}", file=out)
        added = True
    state.deployment = figures
    return added


def errors_plot_note(predictions, files: list[str], state) -> str | None:
    """The line that says why ``plots/errors.png`` was not drawn although the best trial
    gets test images wrong: its images were not found (no data root, or not under it).
    ``state``: the sweep's :class:`~tune_food.sweepdir.record.SweepState`.

    Returns:
        the line, naming where it looked and how to point it at the data; None when
        errors.png was drawn or there is nothing to draw.
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.sweepdir.state import data_root, data_root_candidates

    if predictions is None or predictions.empty or any(
            os.path.basename(p) == ERRORS_PNG for p in files):
        return None
    test = predictions[predictions["split"] == "test"] if "split" in predictions else predictions
    if not (test["label"] != test["predicted"]).any():
        return None
    root = data_root(state)
    fix = "pass --data-dir DIR (the folder holding the datasets) or set TUNE_FOOD_DATA_DIR"
    if root is None:
        looked = [what if what.startswith("./") else f"{what}={folder}" if what.startswith("$")
                  else f"{what} {folder}" for what, folder in data_root_candidates(state)
                  if folder or what.startswith("$")]
        looked = [x.replace("=None", " (not set)") for x in looked]
        return (f"plots/errors.png not drawn: no data folder found ({', '.join(looked)}: "
                f"none is a folder); {fix}")
    return (f"plots/errors.png not drawn: the best trial's wrong test images are not "
            f"under the data folder {root}; {fix}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0, or 2 after one line on stderr)."""
    args = build_parser().parse_args(argv)
    return cli_call(PROG, args.debug, _body, args)


def build_parser() -> Parser:
    """The argument parser of :func:`main`."""
    parser = Parser(prog=PROG, description="Rebuild the leaderboard and plots of a sweep.")
    parser.add_argument("sweep", nargs="?", type=path_arg, help="the sweep folder, "
                        "results/<name> (default: the newest under --results-dir)")
    parser.add_argument("--results-dir", default=RESULTS_DIR, metavar="DIR", type=path_arg,
                        help=f"the folder of sweeps (default {RESULTS_DIR})")
    parser.add_argument("--data-dir", metavar="DIR", type=path_arg, help="where the "
                        "sweep's datasets are, for plots/errors.png (default: the sweep's "
                        "--data-dir, else $TUNE_FOOD_DATA_DIR, else ./data)")
    parser.add_argument("--deployment", action="store_true", help="first measure the "
                        "deployment figures (cpu_ms, model_mb) of the models that have none, "
                        "on this machine: a sweep made before they existed (a few seconds "
                        "per backbone)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _body(args) -> int:
    """:func:`main` after parsing: the sweep (named, or the newest), rebuilt; 0.

    Raises:
        SweepError: no such sweep folder, none under ``--results-dir``, or a
            ``--data-dir`` that is not a folder.
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.sweepdir.state import check_sweep_folder, newest_sweep

    if args.data_dir and not os.path.isdir(args.data_dir):
        raise SweepError(f"--data-dir {args.data_dir} is not a folder")
    exp_dir = args.sweep
    if exp_dir:
        check_sweep_folder(exp_dir)
    else:
        name = newest_sweep(args.results_dir)
        if name is None:
            raise SweepError(f"no sweep under {args.results_dir}; pass results/<name>, or "
                             "--results-dir DIR")
        exp_dir = os.path.join(args.results_dir, name)
        print(f"the newest sweep under {args.results_dir}: {exp_dir}", flush=True)
    rebuild(exp_dir, data_dir=args.data_dir, deployment=args.deployment)
    return 0


if __name__ == "__main__":
    quiet_broken_pipe()  # only as a program: in-process callers keep their SIGPIPE handling
    exit_program(main())
