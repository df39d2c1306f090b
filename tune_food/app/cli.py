"""``python -m tune_food.app``: the flags, their checks, and serving the page until
Ctrl-C (exit 2 with one line on stderr on bad arguments)."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, path_arg
from tune_food.common.errors import SweepError, TuneFoodError
from tune_food.sweepdir.layout import RESULTS_DIR

PROG = "python -m tune_food.app"
MAX_FILE_SIZE = "20mb"     # Gradio refuses larger uploads (HTTP 413)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve the page until Ctrl-C; 2 on bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        return cli_call(PROG, args.debug, serve, args, imports=("torch", "torchvision"))
    except KeyboardInterrupt:
        return 0


def build_parser():
    """The argument parser of :func:`main` (a :class:`tune_food.common.cliargs.Parser`)."""
    parser = Parser(prog=PROG, description="The web page of a sweep: classify photos, read "
                    "the leaderboard, start and stop sweeps.")
    parser.add_argument("sweep", nargs="?", type=path_arg, help="the sweep folder, "
                        "results/<name> (default: the newest under --results-dir)")
    parser.add_argument("--results-dir", default=RESULTS_DIR, metavar="DIR", type=path_arg,
                        help=f"the folder of sweeps (default {RESULTS_DIR})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need --auth)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require this login")
    parser.add_argument("--spaces-dir", metavar="DIR", type=path_arg, help="space files "
                        "offered on the Sweeps page (default: the repository's "
                        "search_spaces/)")
    parser.add_argument("--data-dir", metavar="DIR", type=path_arg, help="data root for "
                        "sweeps started from the page (default $TUNE_FOOD_DATA_DIR, else "
                        "./data)")
    parser.add_argument("--cache-dir", metavar="DIR", type=path_arg, help="feature cache for "
                        "sweeps started from the page")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def serve(args) -> int:
    """Check the flags, build the page, load the first sweep's rank-1 classifier, print
    :func:`serving_line` and serve until Ctrl-C (KeyboardInterrupt propagates).

    Raises:
        SweepError: a bad flag, or the port cannot be served on.
    """
    # lazy: --help speed: 0.06 s, not the ~4 s of Gradio and pandas (measured)
    from tune_food.app.page import CSS, AppConfig, build_app, default_spaces_dir, theme

    auth = _parse_auth(args.auth, args.host)
    if not 1 <= args.port <= 65535:
        raise SweepError(f"--port must be 1..65535, got {args.port}")
    spaces_dir = args.spaces_dir or default_spaces_dir()
    if not os.path.isdir(spaces_dir):
        raise SweepError(f"--spaces-dir {spaces_dir} is not a folder")
    results_dir, first = _resolve_sweep(args.sweep, args.results_dir)
    demo, allowed = build_app(AppConfig(results_dir, first, spaces_dir, args.data_dir,
                                        args.cache_dir))
    _preload(demo.tune_food, results_dir)
    try:   # quiet: Gradio's own lines (a share=True hint) are not for a CLI user
        demo.launch(server_name=args.host, server_port=args.port, auth=auth,
                    max_file_size=MAX_FILE_SIZE, allowed_paths=allowed, theme=theme(), css=CSS,
                    show_error=True, footer_links=["api"], quiet=True, ssr_mode=False,
                    prevent_thread_lock=True)
    except OSError as exc:
        raise SweepError(f"cannot serve on {args.host}:{args.port} ({exc}); choose "
                         "another --port") from None
    print(serving_line(demo.local_url, results_dir, first, args.sweep is None,
                       args.host), flush=True)
    try:
        while True:   # until Ctrl-C (KeyboardInterrupt, caught by main)
            time.sleep(3600)
    finally:
        demo.close(verbose=False)


def serving_line(url: str, results_dir: str, sweep: str | None, newest: bool,
                 host: str = "127.0.0.1") -> str:
    """The line ``python -m tune_food.app`` prints once it serves: the sweep shown
    (``sweep`` under ``results_dir``; ``newest``: taken as the newest there) and the
    page's ``url``.

    Returns:
        e.g. ``serving sweep /abs/results/grid (the newest under /abs/results) at
        http://127.0.0.1:7860/ (Ctrl-C stops)``.
    """
    if sweep is None:
        what = f"no sweep yet (none under {results_dir}; start one on the Sweeps page)"
    else:
        what = f"sweep {os.path.join(results_dir, sweep)}" + (
            f" (the newest under {results_dir})" if newest else "")
    where = "" if _is_loopback(host) else f", listening on {host}"
    return f"serving {what} at {url}{where} (Ctrl-C stops)"


def _preload(info: dict, results_dir: str) -> None:
    """Load the default classifier (the first sweep's rank 1) before serving."""
    # lazy: --help speed: 0.06 s, not the ~4 s of Gradio and pandas (measured)
    from tune_food.app.folders import checkpointed, load_board

    if not (info["first"] and info["trial0"]):
        return
    try:
        exp = os.path.join(results_dir, info["first"])
        rows = checkpointed(load_board(exp).board, exp)
        if not rows.empty:
            info["classifiers"].get(rows["checkpoint"].iloc[0])
    except TuneFoodError:
        pass  # the page says what is wrong


def _resolve_sweep(sweep: str | None, results_dir: str) -> tuple[str, str | None]:
    """``(results_dir, sweep name or None)`` for the CLI's arguments: ``sweep``, else
    the newest under ``results_dir`` (:func:`tune_food.sweepdir.state.newest_sweep`).

    Raises:
        SweepError: ``sweep`` is not a sweep folder, or ``results_dir`` is a file.
    """
    # lazy: --help speed: 0.06 s, not the ~4 s of Gradio and pandas (measured)
    from tune_food.sweepdir.state import check_sweep_folder, newest_sweep

    if sweep:
        check_sweep_folder(sweep)
        path = os.path.abspath(sweep)
        return os.path.dirname(path), os.path.basename(path)
    return os.path.abspath(results_dir), newest_sweep(results_dir)


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_auth(auth: str | None, host: str) -> tuple[str, str] | None:
    """``--auth USER:PASSWORD`` as ``(user, password)``; None on a loopback host
    without it.

    Raises:
        SweepError: a malformed ``--auth``, or another host than loopback without it.
    """
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise SweepError("--auth takes USER:PASSWORD (both non-empty)")
        return user, password
    if not _is_loopback(host):
        raise SweepError(f"listening on {host} makes the page reachable from other machines; "
                         "add --auth USER:PASSWORD, or use --host 127.0.0.1")
    return None


def wait_until_serving(url: str, process, timeout: float = 120.0) -> bool:
    """Poll ``url`` every 0.5 s until it answers (True), or until ``process`` (a
    ``subprocess.Popen`` of the app) has exited or ``timeout`` seconds have passed
    (False)."""
    # lazy: --help speed: urllib.request costs ~50 ms (measured); only a URL needs it
    import urllib.request

    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return True
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                return False
            time.sleep(0.5)
