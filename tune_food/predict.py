"""Classify images with a trained head: ``python -m tune_food.predict``.

::

    python -m tune_food.predict --sweep results/<name> photo.jpg [more.jpg ...]
    python -m tune_food.predict --checkpoint results/<name>/<trial>/checkpoint_000000 photo.jpg

``--sweep`` takes the best trial of the sweep's ``leaderboard.csv`` (rank 1). The frozen
backbone is rebuilt from its pretrained weights with its own transform; the checkpoint
holds only the head and metadata. Prints each image's top-k classes with probabilities
(``--top-k``, default 3) or JSON (``--json``).

The command line only: choosing, loading and classifying are :mod:`tune_food.inference`'s.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, exit_program, path_arg, quiet_broken_pipe
from tune_food.common.errors import SweepError
from tune_food.sweepdir.layout import RESULTS_DIR

PROG = "python -m tune_food.predict"


def _newest(results_dir: str) -> str:
    """``results_dir/<the newest sweep>`` (:func:`tune_food.sweepdir.state.newest_sweep`).

    Raises:
        SweepError: there is no sweep under ``results_dir``.
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.sweepdir.state import newest_sweep

    name = newest_sweep(results_dir)
    if name is None:
        raise SweepError(f"no sweep under {results_dir}; pass --sweep results/<name> or "
                         "--checkpoint DIR")
    return os.path.join(results_dir, name)


def _chosen(sweep_dir: str):
    """The rank-1 checkpoint of ``sweep_dir``
    (:func:`tune_food.inference.checkpoints.best_checkpoint`; it raises what that raises)."""
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.inference.checkpoints import best_checkpoint

    return best_checkpoint(sweep_dir)


def build_parser() -> Parser:
    """The command line of :func:`main`."""
    parser = Parser(prog=PROG, description="Classify images with the best model of a sweep.")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--sweep", metavar="DIR", type=path_arg,
                     help="sweep folder: use its best trial (rank 1) (default: the newest "
                     f"sweep under {RESULTS_DIR})")
    src.add_argument("--checkpoint", metavar="DIR", type=path_arg,
                     help="a trial checkpoint folder")
    parser.add_argument("images", nargs="+", metavar="IMAGE", type=path_arg)
    parser.add_argument("--top-k", type=int, default=3, help="classes per image (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0, or 2 after one line on stderr)."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.top_k < 1:
            raise SweepError(f"--top-k must be >= 1, got {args.top_k}")
        if not args.sweep and not args.checkpoint:
            args.sweep = _newest(RESULTS_DIR)
        chosen = _chosen(args.sweep) if args.sweep else None
        ckpt = chosen.path if chosen else args.checkpoint
        # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
        from tune_food.inference.classifier import classify, load_classifier

        model, classes = load_classifier(ckpt)
        rows = classify(model, classes, args.images, args.top_k)
        used = {"checkpoint": os.path.abspath(ckpt)}
        if chosen:
            used.update(trial=chosen.trial_name, trial_id=chosen.trial_id, rank=1,
                        epoch=chosen.epoch, ranked_by=chosen.ranked_by, score=chosen.score)
        if args.json:
            print(json.dumps({**used, "results": rows}, indent=2))
            return 0
        if chosen:
            print(f"using rank 1 of {args.sweep}: trial {chosen.trial_name} "
                  f"({chosen.ranked_by.split(' ')[0]} {chosen.score:.4f}), checkpoint "
                  f"{used['checkpoint']} (epoch {chosen.epoch})")
        else:
            print(f"using checkpoint {used['checkpoint']}")
        for row in rows:
            top = ", ".join(f"{p['class']} {p['probability']:.3f}" for p in row["predictions"])
            print(f"{row['image']}: {top}")
        return 0

    return cli_call(PROG, args.debug, body, imports=("torch", "torchvision"))


if __name__ == "__main__":
    quiet_broken_pipe()  # only as a program: in-process callers keep their SIGPIPE handling
    exit_program(main())
