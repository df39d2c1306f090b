"""``python -m tune_food.app``: the flags, their checks, and serving the page until
Ctrl-C (exit 2 with one line on stderr on bad arguments)."""

from __future__ import annotations

import os
import time
from typing import Sequence

from ..errors import SweepError, TuneFoodError, cli_call
from ..layout import STATE_FILE

PROG = "python -m tune_food.app"
MAX_FILE_SIZE = "20mb"     # Gradio refuses larger uploads (HTTP 413)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: serve the page until Ctrl-C; 2 on bad arguments."""
    args = _parser().parse_args(argv)
    try:
        return cli_call(PROG, args.debug, serve, args)
    except KeyboardInterrupt:
        return 0


def _parser():
    """The argument parser of :func:`main`."""
    from ..cliargs import Parser, path_arg

    parser = Parser(prog=PROG, description="The web page of a sweep: classify photos, read "
                    "the leaderboard, start and stop sweeps.")
    parser.add_argument("sweep", nargs="?", type=path_arg, help="the sweep folder, "
                        "results/<name> (default: the newest under --results-dir)")
    parser.add_argument("--results-dir", default="results", metavar="DIR", type=path_arg,
                        help="the folder of sweeps (default results)")
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
    """Check the flags, build the page, load the first sweep's rank-1 classifier and
    serve until Ctrl-C; 0.

    Raises:
        SweepError: a bad flag, or the port cannot be served on.
    """
    from .page import AppConfig, build_app, default_spaces_dir, theme

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
    try:
        demo.launch(server_name=args.host, server_port=args.port, auth=auth,
                    max_file_size=MAX_FILE_SIZE, allowed_paths=allowed, theme=theme(),
                    show_error=True, footer_links=["api"], quiet=False, ssr_mode=False)
    except OSError as exc:
        raise SweepError(f"cannot serve on {args.host}:{args.port} ({exc}); choose "
                         "another --port") from None
    return 0


def _preload(info: dict, results_dir: str) -> None:
    """Load the default classifier (the first sweep's rank 1) before serving."""
    from .folders import checkpointed, load_board

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
    """``(results_dir, sweep name or None)`` for the CLI's arguments.

    Raises:
        SweepError: ``sweep`` is not a sweep folder.
    """
    from .folders import is_sweep, list_sweeps

    if sweep:
        if not os.path.isdir(sweep):
            what = "is a file, not a folder" if os.path.exists(sweep) else "does not exist"
            raise SweepError(f"sweep folder {sweep} {what}; pass results/<name>")
        if not is_sweep(sweep):
            raise SweepError(f"{sweep} is not a tune_food sweep (no {STATE_FILE}); pass "
                             "results/<sweep-name>")
        path = os.path.abspath(sweep)
        return os.path.dirname(path), os.path.basename(path)
    if os.path.exists(results_dir) and not os.path.isdir(results_dir):
        raise SweepError(f"--results-dir {results_dir} is a file, not a folder")
    names = list_sweeps(results_dir)
    return os.path.abspath(results_dir), (names[0] if names else None)


def _is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    import ipaddress

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
