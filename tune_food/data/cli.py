"""``python -m tune_food.data COMMAND``: the dataset tools' command line.

One command so far, ``subset``: cut a Food-101 subset into the image-folder layout a
sweep reads (:func:`tune_food.data.food101.build_subset`). ``tune_food/data/loaders.py`` hands its
``python -m`` run to :func:`main` before it imports torch, so ``--help``, argument errors
and a subset build (which copies and hashes files) load neither torch nor Ray; only
``--download`` imports torchvision.
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, path_arg
from tune_food.data.food101 import (
    LAYOUT,
    MANIFEST_FILE,
    SPLITS,
    build_subset,
    check_out,
    download_food101,
)

PROG = "python -m tune_food.data"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m tune_food.data``, one sub-parser per command."""
    p = Parser(prog=PROG, description="Dataset tools of tune_food.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("subset", help="cut a subset of Food-101 into an image-folder dataset",
                       description="Take the same fraction of each chosen class's official "
                       "Food-101 train and test lists (seeded) and write "
                       "OUT/{train,test}/<class>/<id>.jpg with a SHA-256 manifest.")
    s.add_argument("--food101", required=True, metavar="PATH", type=path_arg,
                   help=f"a Food-101 copy ({LAYOUT}), or the folder holding food-101/")
    s.add_argument("--classes", required=True,
                   help="class names separated by commas (e.g. ramen,sushi), or all")
    s.add_argument("--fraction", required=True, type=float,
                   help="share of each class's train and test images to keep, in (0, 1]")
    s.add_argument("--seed", type=int, default=42, help="sampling seed (default 42)")
    s.add_argument("--out", required=True, metavar="DIR", type=path_arg,
                   help="dataset folder to write; its name is the dataset's name and its "
                   "parent the --data-dir of a sweep")
    s.add_argument("--force", action="store_true", help="replace --out when it is an "
                   "earlier subset (a folder with its manifest.json)")
    s.add_argument("--download", action="store_true",
                   help="first download Food-101 (about 5 GB) into PATH/food-101 with "
                   "torchvision, unless it is there")
    s.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def subset(food101: str, classes: str, fraction: float, seed: int, out: str,
           force: bool = False, download: bool = False) -> int:
    """The ``subset`` command: (download and) build the subset, print what was written and
    how to sweep on it; return 0.

    Raises:
        DataError: see :func:`tune_food.data.food101.build_subset` and
            :func:`tune_food.data.food101.download_food101`.
        OutputError: ``--out`` refused (:func:`tune_food.data.food101.check_out`), before
            any download.
    """
    check_out(food101, out, force)
    if download:
        download_food101(food101)
    result = build_subset(food101, classes, fraction, seed, out, force)
    total = {s: sum(result.counts[s].values()) for s in SPLITS}
    print(f"{result.out}: {len(result.classes)} classes, {total['train']} train + "
          f"{total['test']} test images ({result.bytes / 1e6:.1f} MB) in {result.seconds:.1f} s; "
          f"manifest {MANIFEST_FILE}")
    print(f"use it: python -m tune_food.sweep ... --data-dir {os.path.dirname(result.out)} "
          f"with data: {os.path.basename(result.out)} in the search space")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``sys.argv[1:]`` when ``argv`` is None); returns the exit code
    (0, or 2 after one line on stderr).

    Raises:
        SystemExit: 2 after one line on stderr for an argument error; 0 after ``--help``.
    """
    args = vars(build_parser().parse_args(argv))
    command, debug = args.pop("command"), args.pop("debug")
    commands = {"subset": subset}
    return cli_call(f"{PROG} {command}", debug, lambda: commands[command](**args))

