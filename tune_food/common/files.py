"""Files: atomic writes (a crash never leaves half a file behind) and content hashes.

Every file tune_food writes for the user (leaderboards, results, ``sweep.json``,
feature-cache entries) goes through :func:`atomic_write`: the content is written to a
temporary file in the target's folder and renamed over the target with ``os.replace``
(atomic on POSIX), so readers see the old file or the complete new one.

Every file tune_food hashes (images for the feature fingerprints, leakage and
validation checks; dataset manifests; weights files) goes through
:func:`cached_sha256`.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Callable


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Call ``write(tmp_path)`` to produce the content, then rename it to ``path``.

    Returns the absolute ``path``. If ``write`` raises, ``path`` is untouched, the
    temporary file is removed and the exception propagates.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        _ordinary_mode(tmp, 0o666)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _ordinary_mode(path: str, mode: int) -> None:
    """chmod ``path`` to ``mode`` less the umask (mkstemp and mkdtemp make it private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def atomic_folder(path: str, write: Callable[[str], None], replace: bool = False) -> str:
    """Call ``write(tmp_folder)`` to fill a new folder, then rename it to ``path``.

    The folder is built beside ``path`` (same file system). If ``write`` raises, nothing
    is left behind and the exception propagates. ``replace``: an existing ``path`` is
    replaced, and removed only once the new folder is whole. Returns the absolute
    ``path``.

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is false.
    """
    path = os.path.abspath(path)
    parent, base = os.path.dirname(path), os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    old = None
    try:
        _ordinary_mode(tmp, 0o777)
        write(tmp)
        if os.path.lexists(path):
            if not replace:
                raise FileExistsError(f"{path} exists")
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.replace(path, os.path.join(old, base))
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.lexists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    return path


@contextlib.contextmanager
def exclusive_lock(path: str):
    """An exclusive ``flock`` on ``path`` (created if missing), released on exit: the
    processes of one node that would write the same file take turns (a backbone
    converted or exported once, however many tasks ask)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def write_csv_atomic(df, path: str) -> str:
    """Write a pandas DataFrame as CSV (no index) atomically; return the path."""
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def write_json_atomic(obj: Any, path: str) -> str:
    """Write ``obj`` as indented JSON atomically (unknown types via ``str``)."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)

    return atomic_write(path, write)


@functools.lru_cache(maxsize=None)
def _sha256_memo(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(path: str) -> str:
    """SHA-256 (hex) of a file's bytes, memoised per (absolute path, size, modification
    time): a file is read once however often it is asked about, and a rewritten file is
    read again.

    Raises:
        OSError: the file cannot be read (``FileNotFoundError`` when it does not exist).
    """
    st = os.stat(path)
    return _sha256_memo(os.path.abspath(path), st.st_size, st.st_mtime_ns)


def folder_problem(folder: str) -> str | None:
    """Why this process cannot create ``folder`` or write in it, or None when it can.

    The folder (created when missing) is checked through its nearest existing ancestor:
    a file there, no write permission, or a file system that refuses a new folder
    whatever the permissions say (``/proc``, read-only mounts, quotas: a temporary
    folder is made and removed). Returns the reason as the end of a sentence that starts
    with the folder's name, with how to fix it, e.g. ``"cannot be written: no write
    permission in /srv; pass a folder you can write to"``.
    """
    path = os.path.abspath(folder)
    if os.path.exists(path) and not os.path.isdir(path):
        return "is a file, not a folder; pass a folder (it is created when missing)"
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"cannot be created: {probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return (f"cannot be written: no write permission in {probe}; pass a folder you can "
                "write to")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tune_food-probe-", dir=probe))
    except OSError as exc:
        return (f"cannot be created: making a folder in {probe} fails "
                f"({exc.strerror or exc}); pass a folder you can write to")
    return None
