"""Start a local Ray or join a cluster, or say in one line why not.

:func:`start_ray` is the only place the package calls ``ray.init``. Ray can fail to start
or to join in many ways, and on its own it answers most of them with a flood of its C++
client's log lines (``gcs_client.cc ... Failed to get cluster ID``, one a second), with a
traceback, or not at all (an address where something that is not Ray listens makes
``ray.init`` wait for minutes). Here every way found in Ray 2.60's ``ray.init`` ends in one
:class:`~tune_food.common.errors.RayStartError` whose message names the cause and the fix:

=========================================  ===========================================
cause                                      how it is found
=========================================  ===========================================
Ray's temporary folder too long            before Ray starts: the longest socket path
                                           Ray would make is over 107 bytes (ray#7945)
Ray's temporary folder not writable        before Ray starts: :func:`files.folder_problem`
address malformed / nothing listens        before Ray starts: a TCP connection (5 s)
something that is not Ray listens          before Ray starts: the standard gRPC health
                                           check that Ray's GCS answers (5 s)
``--address auto`` and no cluster          Ray's ``ConnectionError``
authentication token missing or wrong      Ray's ``AuthenticationError``, or its C++
                                           client's first ``InvalidAuthToken`` line (the
                                           watchdog answers then: Ray alone retries 20 s)
Ray or Python version differs from the     Ray's "Version mismatch" ``RuntimeError``
cluster's
the object store does not fit /dev/shm     Ray's ``ValueError``
anything else, or no answer in            the first line of Ray's exception (and of its
:data:`START_TIMEOUT_S`                    captured log); a watchdog ends the process
=========================================  ===========================================

While ``ray.init`` runs, the process's standard error (file descriptor 2, where Ray's
C++ code writes) goes to a temporary file: Ray's own lines are read for the cause, never
shown. The sweep calls this before it writes its folder, so a sweep whose Ray cannot
start leaves nothing behind and the same command works once the cause is fixed.
"""

from __future__ import annotations

import datetime as _dt
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import grpc
import ray

from tune_food.common.errors import RayStartError
from tune_food.common.files import folder_problem
from tune_food.sweep.cluster import sigterm_as_sigint
from tune_food.sweepdir.state import PROG

#: seconds ``ray.init`` may take before the process ends with one line (a local start takes
#: 3 to 10 s here)
START_TIMEOUT_S = 60.0
#: seconds between the watchdog's reads of Ray's held log lines (a wrong authentication
#: token shows there within a second, while Ray's ``ray.init`` retries for 20 s)
WATCH_EVERY_S = 0.25
#: what Ray's C++ client logs when the cluster refuses its token (ray.init retries it)
_WRONG_TOKEN_LOG = ("InvalidAuthToken", "Unauthenticated")
#: seconds for each check of an address before Ray is asked (TCP, then gRPC health)
PROBE_TIMEOUT_S = 5.0
#: Linux's limit on an ``AF_UNIX`` socket path (108 bytes with the final NUL), which Ray
#: checks itself only after it started some of its processes
MAX_SOCKET_PATH = 107
#: the longest socket Ray makes in its session folder
_LONGEST_SOCKET = os.path.join("sockets", "plasma_store")
_FIX_ADDRESS = "start it (ray start --head, or ray up cluster.yaml) or fix the address"
#: whether this process's Ray connection was made by :func:`start_ray` (then
#: :func:`shutdown_ray` ends it) or found made already, by the user's own ``ray.init``
#: in a notebook (then it is theirs and is left running). Ray's connection is itself one
#: per process (``ray.is_initialized``), so who made it is kept beside it.
_CONNECTION = {"ours": False}


def ray_temp_root() -> str:
    """The folder Ray puts its ``ray/`` temporary folder in, as Ray 2.60 chooses it
    (``ray._common.utils.get_default_system_temp_dir``): ``$RAY_TMPDIR``, else
    ``$TMPDIR``, else ``/tmp``."""
    return os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"


def check_temp_folder() -> None:
    """Ray's temporary folder must be writable and short enough for Ray's Unix sockets.

    The longest path Ray creates is ``<root>/ray/session_<date>_<time>_<µs>_<pid>/sockets/
    plasma_store`` (the session name of Ray 2.60's ``Node``); Linux refuses socket paths
    over 107 bytes, and Ray finds out only after it started its GCS (ray#7945).

    Raises:
        RayStartError: the folder cannot be written, or its path is too long.
    """
    root = ray_temp_root()
    source = "RAY_TMPDIR" if os.environ.get("RAY_TMPDIR") else \
        "TMPDIR" if os.environ.get("TMPDIR") else "Ray's temporary folder"
    problem = folder_problem(os.path.join(root, "ray"))
    if problem:
        raise RayStartError(f"{source} {root}: {os.path.join(root, 'ray')} {problem}; Ray "
                            "keeps its sockets and logs there (set RAY_TMPDIR to a folder "
                            "you can write, e.g. /tmp)")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    longest = os.path.join(os.path.abspath(root), "ray", f"session_{stamp}_{os.getpid()}",
                           _LONGEST_SOCKET)
    if len(longest.encode()) > MAX_SOCKET_PATH:
        raise RayStartError(
            f"{source} {root} is too long for Ray: its socket paths "
            f"({len(longest.encode())} bytes, e.g. {longest}) exceed Linux's limit of "
            f"{MAX_SOCKET_PATH} bytes (ray#7945); set RAY_TMPDIR to a folder of at most "
            f"{len(root.encode()) - (len(longest.encode()) - MAX_SOCKET_PATH)} characters, "
            "e.g. RAY_TMPDIR=/tmp")


def check_address(address: str) -> None:
    """Something must answer at ``address`` (``host:port`` or ``ray://host:port``) as a
    Ray cluster does, each step within :data:`PROBE_TIMEOUT_S`: a TCP connection, then
    the standard gRPC health check (``grpc.health.v1.Health/Check``) that Ray's GCS
    answers ``SERVING``. ``auto`` is left to Ray.

    Raises:
        RayStartError: a malformed address, nothing listening, or a server that is not
            a Ray cluster's.
    """
    if address == "auto":
        _check_auto()
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RayStartError(f"--address {address} is not an address of a Ray cluster: give "
                            "HOST:PORT (the head's GCS port, 6379 by default), "
                            "ray://HOST:10001 for Ray Client, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise RayStartError(f"cannot connect to the Ray cluster at --address {address} "
                            f"({exc.strerror or exc}); {_FIX_ADDRESS}") from None
    problem = _grpc_health(target, client=address.startswith("ray://"))
    if problem:
        raise RayStartError(f"--address {address} answers, but not as a Ray cluster "
                            f"({problem}); give the head node's GCS port (6379 unless "
                            "`ray start --head --port` said otherwise), or ray://HOST:10001 "
                            "for Ray Client")


def _check_auto() -> None:
    """``--address auto`` joins ``$RAY_ADDRESS``, else the cluster that ``ray start`` on
    this machine recorded in ``<Ray's temporary folder>/ray/ray_current_cluster``. A
    record left by a cluster that is gone makes ``ray.init`` wait for ever, so the
    address it names is checked as any other.

    Raises:
        RayStartError: the address named there does not answer as a Ray cluster.
    """
    named = os.environ.get("RAY_ADDRESS")
    record = os.path.join(ray_temp_root(), "ray", "ray_current_cluster")
    if not named and os.path.isfile(record):
        with open(record) as fh:
            named = fh.read().strip()
        source = f"{record} (written by `ray start` on this machine)"
    else:
        source = "RAY_ADDRESS"
    if not named or named == "auto":
        return
    try:
        check_address(named)
    except RayStartError as exc:
        raise RayStartError(f"--address auto joins {named}, named by {source}, and there: "
                            f"{exc}; if that cluster is gone, run `ray stop` (or delete the "
                            "file) and start a new one") from None


def _grpc_health(target: str, client: bool) -> str | None:
    """Why ``target`` is not a Ray GCS (or, ``client``, a Ray Client server), or None.
    Ray depends on grpcio; an empty request is ``HealthCheckRequest(service="")``."""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda _: b"",
                                    response_deserializer=lambda raw: raw)
        try:
            check(None, timeout=PROBE_TIMEOUT_S)
            return None
        except grpc.RpcError as exc:
            code, details = exc.code(), (exc.details() or "").splitlines()[0:1]
    if code == grpc.StatusCode.UNIMPLEMENTED:
        # a gRPC server: Ray Client's has no health service, Ray's GCS has
        return None if client else "a gRPC server without the health service Ray's GCS has"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no gRPC answer within {PROBE_TIMEOUT_S:g} s"
    return "it does not speak gRPC: " + (details[0][-120:] if details else code.name)


def start_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address``, or start a new local Ray (None); a no-op when
    this process is connected already. Ray's own log lines are held back (module doc) and
    Ray's SIGTERM handler (an abort) is replaced by SIGTERM-as-SIGINT, so a sweep ends
    on SIGTERM as on Ctrl-C.

    A connection this process had already (the user's ``ray.init`` in a notebook, for
    :mod:`tune_food.api`) is used as it is and left to its owner: :func:`shutdown_ray`
    does not end it.

    Raises:
        RayStartError: Ray cannot start or join, with the cause and the fix (module doc).
    """
    if ray.is_initialized():
        return
    _CONNECTION["ours"] = True
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict[str, Any] = dict(logging_level="ERROR", log_to_driver=False)
    if address:   # a cluster's sockets are in the temporary folder its head chose
        check_address(address)
        kwargs["address"] = address
    else:
        check_temp_folder()
        # "local": always a new local Ray. Plain ray.init() would join a cluster named in
        # /tmp/ray/ray_current_cluster, and hang on a stale one left by a crashed `ray start`.
        kwargs.update(address="local", include_dashboard=False)
    with _HeldStderr() as held, _watchdog(address, held):
        try:
            ray.init(**kwargs)
        except Exception as exc:   # noqa: BLE001 - every cause becomes one line
            _shutdown_quietly()
            raise RayStartError(explain(exc, held.text(), address)) from None
    if not address:
        _warn_slow_object_store()
    if threading.current_thread() is threading.main_thread():

        signal.signal(signal.SIGTERM, sigterm_as_sigint)


def _warn_slow_object_store() -> None:
    """One line on stderr when the local Ray's object store did not fit in /dev/shm: Ray
    then keeps it in its temporary folder on disk, slower, and says so only in a log
    record below the level the sweep shows (Ray 2.60's
    ``services.determine_plasma_store_config``)."""
    try:
        shm = os.statvfs("/dev/shm")
    except OSError:
        return
    free = shm.f_bavail * shm.f_frsize
    store = ray.cluster_resources().get("object_store_memory", 0)
    if free < store:
        print(f"warning: /dev/shm has {free / 2**20:.0f} MiB free, less than Ray's object "
              f"store ({store / 2**30:.1f} GiB): Ray keeps it in {ray_temp_root()} instead, "
              "which is slower; give the machine a larger /dev/shm (docker run "
              "--shm-size=...)", file=sys.stderr)


def _token_line(where: str, has: str) -> str:
    """The one line for a cluster that refused this machine's authentication token
    (``has``: ``"none"`` or ``"a wrong one"``)."""
    return (f"{where} requires an authentication token and this machine has {has}: set "
            "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the "
            "cluster's token (`ray get-auth-token` on its head node)")


def explain(exc: BaseException, log: str, address: str | None) -> str:
    """The one line for an exception of ``ray.init`` (``log``: what Ray wrote on standard
    error meanwhile). Public so that the messages for causes this machine cannot
    reproduce (a version mismatch needs two Ray versions) are tested with the exception
    Ray raises."""
    text = str(exc)
    first = (text.strip().splitlines() or [""])[0]
    where, fix = _where_and_fix(address)
    if "AF_UNIX path length" in text:
        return (f"Ray's temporary folder {ray_temp_root()} is too long for Ray's socket paths "
                f"({first.split(': ', 1)[-1]}); set RAY_TMPDIR to a short folder, e.g. /tmp")
    if type(exc).__name__ == "AuthenticationError":
        return _token_line(where, "none")
    if any(word in log for word in _WRONG_TOKEN_LOG):
        return _token_line(where, "a wrong one")
    if "Version mismatch" in text:
        versions = " ".join(" ".join(line.split()) for line in text.splitlines()[1:3])
        return (f"{where} runs other Ray or Python versions than this machine ({versions}); "
                "install the cluster's versions here (pip install ray==<its version>, same "
                "Python), or start the cluster with this machine's")
    if "Could not find any running Ray instance" in text:
        return ("--address auto found no running Ray cluster on this machine; start one "
                "(ray start --head), or give the cluster's address")
    if "exceeds /dev/shm" in text or "object store memory" in text:
        return (f"{where}: Ray's object store does not fit in shared memory ({first}); give "
                "the machine a larger /dev/shm (docker run --shm-size=...), or set "
                "RAY_OBJECT_STORE_ALLOW_SLOW_STORAGE=1 to keep it in RAY_TMPDIR instead")
    said = _last_log_line(log)
    cause = f"{type(exc).__name__}: {first}" + (f"; Ray said: {said}" if said else "")
    return f"cannot start or join Ray ({where}): {cause[:400]}; {fix}"


def _where_and_fix(address: str | None) -> tuple[str, str]:
    """What the one line calls the Ray being started or joined, and the general fix."""
    if address:
        return f"the Ray cluster at --address {address}", _FIX_ADDRESS
    return "a local Ray", ("see the Ray logs in "
                           + os.path.join(ray_temp_root(), "ray", "session_latest", "logs"))


def _last_log_line(log: str) -> str:
    """The last line Ray logged as a warning or error, without its ``[time W pid]``
    prefix."""
    lines = [line for line in log.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return (last.split("] ", 1)[-1] if last.startswith("[") else last).strip()[:300]


class _HeldStderr:
    """While active, file descriptor 2 goes to a temporary file (Ray's C++ code writes
    there, Python's ``sys.stderr`` too); :attr:`real` is the saved real standard error."""

    def __enter__(self) -> "_HeldStderr":
        sys.stderr.flush()
        self.real = os.dup(2)
        self._file = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._file.fileno(), 2)
        return self

    def text(self) -> str:
        """What was written to standard error so far (read with ``pread``, which leaves
        the file's offset, shared with the writers of descriptor 2, where it is: another
        thread may call this while Ray writes)."""
        sys.stderr.flush()
        fd = self._file.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def __exit__(self, *exc) -> None:
        sys.stderr.flush()
        os.dup2(self.real, 2)
        os.close(self.real)
        self._file.close()


@contextmanager
def _watchdog(address: str | None, held: _HeldStderr) -> Iterator[None]:
    """End the process with one line on the real standard error and exit code 2 when the
    block (``ray.init``) has not returned within :data:`START_TIMEOUT_S`, or as soon as
    Ray's held log says the cluster refused this machine's authentication token: Ray's
    own retries last 20 s to minutes, and a thread cannot interrupt them. A local Ray
    started meanwhile is ended by Ray's reaper process once this process is gone."""
    where, fix = _where_and_fix(address)
    done = threading.Event()

    def end(line: str) -> None:
        os.write(held.real, f"{PROG}: error: {line}\n".encode())
        os._exit(2)

    def watch() -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not done.wait(WATCH_EVERY_S):
            if address and any(word in held.text() for word in _WRONG_TOKEN_LOG):
                end(_token_line(where, "a wrong one"))
            if time.monotonic() > deadline:
                end(f"{where} did not answer within {START_TIMEOUT_S:g} s; {fix}")

    watcher = threading.Thread(target=watch, name="ray-start-watchdog", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _shutdown_quietly() -> None:
    """Undo a half-made start (Ray may have started processes before it failed)."""
    try:
        ray.shutdown()
    except Exception:   # noqa: BLE001 - already failing; the first cause is what counts
        pass


def ray_connected() -> bool:
    """True when this process is connected to a Ray (its own, or one it joined) now."""
    return ray.is_initialized()


def shutdown_ray() -> None:
    """Disconnect from (or stop the local) Ray, if :func:`start_ray` started or joined it;
    a Ray this process was connected to before (the user's own ``ray.init``) is left
    running."""
    if ray.is_initialized() and _CONNECTION["ours"]:
        ray.shutdown()
    _CONNECTION["ours"] = False
