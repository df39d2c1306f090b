"""Classify images with a trained head: ``python -m tune_food.predict``.

::

    python -m tune_food.predict --sweep results/<name> photo.jpg [more.jpg ...]
    python -m tune_food.predict --checkpoint results/<name>/<trial>/checkpoint_000000 photo.jpg

``--sweep`` takes the best trial of the sweep's ``leaderboard.csv`` (rank 1). The frozen
backbone is rebuilt from its pretrained weights with its own transform; the checkpoint
holds only the head and metadata. Prints each image's top-k classes with probabilities
(``--top-k``, default 3) or JSON (``--json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, exit_program, path_arg, quiet_broken_pipe
from tune_food.common.errors import DataError, SweepError
from tune_food.sweepdir.layout import LEADERBOARD_FILE, RESULTS_DIR

PROG = "python -m tune_food.predict"


@dataclass(frozen=True)
class ChosenCheckpoint:
    """The checkpoint ``predict --sweep`` (rank 1) or ``export`` (rank 1, or the trial
    named) uses: a ranked row of the leaderboard."""

    path: str          # absolute checkpoint folder
    trial_name: str
    trial_id: str
    epoch: int         # the epoch the checkpoint holds (= the epoch the row shows)
    ranked_by: str
    score: float       # the ranking metric's value


def _locate(path: str, sweep_dir: str) -> str:
    """A path from ``leaderboard.csv`` as a folder on this machine: relative paths are
    relative to the sweep folder. An absolute path written by an older version that no
    longer exists (the sweep was moved) is looked for under the sweep folder by its last
    two parts (``<trial>/<checkpoint_NNNNNN>``); the original place is never read."""
    if not os.path.isabs(path):
        return os.path.join(os.path.abspath(sweep_dir), path)
    moved = os.path.join(os.path.abspath(sweep_dir), *path.rstrip("/").split("/")[-2:])
    return moved if os.path.isdir(moved) else path


def best_checkpoint(sweep_dir: str) -> ChosenCheckpoint:
    """The checkpoint of the rank-1 trial in ``<sweep_dir>/leaderboard.csv``
    (:func:`trial_checkpoint` with no trial named)."""
    return trial_checkpoint(sweep_dir)


def trial_checkpoint(sweep_dir: str, trial: str | None = None) -> ChosenCheckpoint:
    """The checkpoint of trial ``trial`` (its name or id) in ``<sweep_dir>/leaderboard.csv``;
    None: rank 1.

    Never falls back to another trial: a trial that cannot be used is an error.

    Raises:
        SweepError: no leaderboard, no such trial (the message names some), the trial is
            not ranked (it did not run to its end), it has no checkpoint, or its
            checkpoint holds another epoch than the one its row shows.
    """
    import pandas as pd

    path = os.path.join(sweep_dir, LEADERBOARD_FILE)
    if not os.path.isfile(path):
        raise SweepError(f"{path} not found; pass a finished sweep folder, or rebuild it with "
                         f"python -m tune_food.report {sweep_dir}")
    board = pd.read_csv(path)
    if trial is not None:
        rows = board[(board["trial_name"].astype(str) == trial)
                     | (board["trial_id"].astype(str) == trial)]
        if rows.empty:
            names = ", ".join(board["trial_name"].astype(str).head(5))
            raise SweepError(f"no trial {trial!r} in {path} (its trials: {names}"
                             f"{', ...' if len(board) > 5 else ''})")
        best = rows.iloc[0]
        if "rank" not in board or pd.isna(best["rank"]):
            raise SweepError(f"trial {trial} of {path} is not ranked (status "
                             f"{best.get('status')}): it did not run to its end; resume the "
                             "sweep, or choose a ranked trial")
    else:
        ranked = board[board["rank"] == 1] if "rank" in board else board[0:0]
        if ranked.empty:
            raise SweepError(f"no trial in {path} is ranked (none ran to its end or was "
                             "stopped by the scheduler); resume the sweep, or pass "
                             "--checkpoint DIR")
        best = ranked.iloc[0]
    which = "the best trial" if trial is None else "trial"
    ckpt = best.get("checkpoint_path")
    if not isinstance(ckpt, str) or not ckpt:
        raise SweepError(f"{which} {best['trial_name']} of {path} has no checkpoint; "
                         "pass another trial's folder with --checkpoint DIR")
    epoch = best.get("checkpoint_epoch")
    if pd.isna(epoch) or int(epoch) != int(best["epochs_done"]):
        raise SweepError(f"the checkpoint of {which} {best['trial_name']} holds epoch "
                         f"{epoch}, not epoch {best['epochs_done']} whose metrics rank it; pass "
                         "a checkpoint with --checkpoint DIR")
    metric = str(best.get("ranked_by", "")).split(" ")[0]
    return ChosenCheckpoint(_locate(ckpt, sweep_dir), str(best["trial_name"]),
                            str(best["trial_id"]), int(epoch), str(best.get("ranked_by", "")),
                            float(best[metric]) if metric in best else float("nan"))


def load_classifier(checkpoint_dir: str, device="cpu", runtime: str | None = None):
    """Rebuild the trained classifier of a trial checkpoint.

    Returns:
        ``(model, classes)``: a :class:`~tune_food.models.registry.FrozenBackboneClassifier` in
        eval mode with the checkpoint's head, and the class names (index order). On the
        CPU its backbone runs in :func:`tune_food.models.runtime.use_runtime`'s runtime
        (OpenVINO unless ``$TUNE_FOOD_BACKBONE_RUNTIME`` says ``torch``) with
        ``torch.get_num_threads()`` threads, the converted backbone kept in the feature
        cache folder; ``runtime="torch"`` keeps it in PyTorch (what ``export`` converts).

    Raises:
        SweepError: the folder has no ``checkpoint.pt``, or the checkpoint's transform
            differs from the one the model registry builds now.
        WeightsError: the backbone's pretrained weights are missing.
    """
    from tune_food.models.registry import build_model, describe_transform
    from tune_food.models.runtime import use_runtime
    from tune_food.sweep.options import SweepOptions
    from tune_food.sweepdir.checkpoint import checkpoint_folder, read_checkpoint

    checkpoint_dir = checkpoint_folder(checkpoint_dir)   # the file given for its folder
    saved = read_checkpoint(checkpoint_dir)
    meta = saved.meta
    model = build_model(meta["model"], len(meta["classes"]), meta["dropout"])
    if describe_transform(model.transform) != meta["transform"]:
        raise SweepError(f"the transform of {meta['model']} changed since {checkpoint_dir} was "
                         f"trained ({meta['transform']}); predictions would be off")
    model.head.load_state_dict(saved.head)
    use_runtime(model, device, runtime, cache_dir=SweepOptions().feature_store_dir)
    return model.to(device).eval(), list(meta["classes"])


def predict(model, classes: list[str], images: Sequence[str], top_k: int = 3,
            batch_size: int = 32) -> list[dict]:
    """Top-k classes of each image.

    Returns:
        One dict per image: ``{"image": path, "predictions": [{"class": name,
        "probability": p}, ...]}``, probabilities from the softmax, highest first.

    Raises:
        DataError: images that are missing or cannot be decoded (all listed).
    """
    import torch

    from tune_food.data.images import check_image, rgb_loader

    # up to one batch (the web page's case) each image is decoded once, here; more are
    # checked first and decoded batch by batch (memory stays at one batch)
    once = len(images) <= batch_size
    decoded: dict[str, torch.Tensor] = {}

    def problem(path: str) -> str | None:
        if os.path.isdir(path):
            return "a folder, not an image"
        if not os.path.isfile(path):
            return "not found"
        if not once or os.path.getsize(path) == 0:
            return check_image(path)
        try:
            decoded[path] = model.transform(rgb_loader(path))
        except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
            return f"{type(exc).__name__}: {exc}"
        return None

    problems = [(p, r) for p in images if (r := problem(p))]
    if problems:
        raise DataError(f"{len(problems)} image(s) cannot be read: "
                        + "; ".join(f"{p} ({r})" for p, r in problems))
    device = next(model.head.parameters()).device
    k = max(1, min(top_k, len(classes)))
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        x = torch.stack([decoded[p] if p in decoded else model.transform(rgb_loader(p))
                         for p in chunk]).to(device)
        with torch.inference_mode():
            values, indices = model(x).softmax(dim=1).cpu().topk(k, dim=1)
        for path, vs, ix in zip(chunk, values.tolist(), indices.tolist()):
            out.append({"image": path, "predictions": [{"class": classes[j], "probability": v}
                                                       for v, j in zip(vs, ix)]})
    return out


def _newest(results_dir: str) -> str:
    """``results_dir/<the newest sweep>`` (:func:`tune_food.sweepdir.state.newest_sweep`).

    Raises:
        SweepError: there is no sweep under ``results_dir``.
    """
    from tune_food.sweepdir.state import newest_sweep

    name = newest_sweep(results_dir)
    if name is None:
        raise SweepError(f"no sweep under {results_dir}; pass --sweep results/<name> or "
                         "--checkpoint DIR")
    return os.path.join(results_dir, name)


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
        chosen = best_checkpoint(args.sweep) if args.sweep else None
        ckpt = chosen.path if chosen else args.checkpoint
        model, classes = load_classifier(ckpt)
        rows = predict(model, classes, args.images, args.top_k)
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
