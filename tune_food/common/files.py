"""Files: atomic writes (a crash never leaves half a file behind) and content hashes.

Every file tune_food writes for the user (leaderboards, results, ``sweep.json``,
feature-cache entries) goes through :func:`atomic_write`: the content is written to a
temporary file in the target's folder and renamed over the target with ``os.replace``
(atomic on POSIX), so readers see the old file or the complete new one.

Every file tune_food hashes (images for the feature fingerprints, leakage and
validation checks; dataset manifests; weights files) goes through
:func:`cached_sha256`.

Every folder a ``--force`` flag would replace is first asked to
:func:`check_replaceable` (through :func:`atomic_folder`): only an earlier output of the
same command, recognised by its marker file, is ever replaced.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import pwd
import shutil
import tempfile
from typing import Any, Callable, Mapping, Sequence

from tune_food.common.errors import OutputError

#: what a replaced folder may never hold, at any depth: another tool's output or the
#: user's own work. ``sweep.json`` is :data:`tune_food.sweepdir.layout.STATE_FILE`
#: (a lower layer cannot import it; ``tests/test_destructive.py`` checks they agree).
FOREIGN_MARKERS = {"sweep.json": "a sweep folder", ".git": "a git checkout"}


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


def atomic_folder(path: str, write: Callable[[str], None],
                  replace: Replaceable | None = None) -> str:
    """Call ``write(tmp_folder)`` to fill a new folder, then rename it to ``path``.

    The folder is built beside ``path`` (same file system; its parent is created when
    missing). If ``write`` raises, nothing is left behind and the exception propagates.
    ``replace``: an existing ``path`` is replaced when :func:`check_replaceable` allows
    it (asked again once the new folder is whole, just before the old one is moved
    away), and removed only then. Returns the absolute ``path``.

    Raises:
        FileExistsError: ``path`` exists and ``replace`` is None.
        OutputError: ``path`` exists and is not an earlier output ``replace`` describes;
            nothing is touched.
    """
    path = os.path.abspath(path)
    parent, base = os.path.dirname(path), os.path.basename(path)
    if replace is not None:
        check_replaceable(path, replace)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    old = None
    try:
        _ordinary_mode(tmp, 0o777)
        write(tmp)
        if os.path.lexists(path):
            if replace is None:
                raise FileExistsError(f"{path} exists")
            check_replaceable(path, replace)
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.replace(path, os.path.join(old, base))
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover and os.path.lexists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    return path


class Replaceable:
    """What a ``--force`` flag may replace: an earlier output of ``command``, a folder
    whose ``marker`` file (at its top, and nowhere below) is JSON holding ``keys``.

    Attributes:
        marker: the file name (``model.json``, ``manifest.json``).
        keys: the keys the marker's JSON object must hold.
        command: what made it, for the message (``python -m tune_food.export``).
        option: the path's flag, for the message (``--out``).
        keep: ``{path: what it is}`` this run reads (the sweep exported, the Food-101
            copy): never replaced, nor any folder holding one.
        entries: the names the command writes at the folder's top (None: not checked);
            anything else there (a data root, the user's own files) is not replaced.
    """

    def __init__(self, marker: str, keys: Sequence[str], command: str, option: str = "--out",
                 keep: Mapping[str, str] | None = None, entries: Sequence[str] | None = None):
        self.marker, self.keys, self.command, self.option = marker, tuple(keys), command, option
        self.keep = dict(keep or {})
        self.entries = None if entries is None else frozenset(entries)


def _holds(folder: str, path: str) -> bool:
    """``path`` is ``folder`` or lies below it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _protected() -> list[tuple[str, str]]:
    """(real path, what it is) of the folders no ``--force`` replaces, nor any folder
    holding one: the file system root, the current folder, this user's home folder
    (``~`` and ``$HOME``) and every account's home folder."""
    places = [(os.sep, "the file system root"), (os.getcwd(), "the current folder"),
              (os.path.expanduser("~"), "a home folder")]
    if os.environ.get("HOME"):
        places.append((os.environ["HOME"], "a home folder"))
    places += [(entry.pw_dir, "a home folder") for entry in pwd.getpwall() if entry.pw_dir]
    return [(os.path.realpath(p), what) for p, what in places]


def _marker_problem(real: str, rule: Replaceable) -> str | None:
    """Why ``real`` is not an earlier output of ``rule.command`` (its marker missing or
    not the command's JSON), or None."""
    marker = os.path.join(real, rule.marker)
    try:
        with open(marker) as fh:
            content = json.load(fh)
    except FileNotFoundError:
        return f"has no {rule.marker}"
    except (OSError, ValueError) as exc:
        return f"has a {rule.marker} that cannot be read as JSON ({type(exc).__name__})"
    missing = [k for k in rule.keys if not isinstance(content, dict) or k not in content]
    return f"has a {rule.marker} without {', '.join(missing)}" if missing else None


def _what_it_is(real: str, rule: Replaceable) -> str | None:
    """What ``real`` (an existing real folder) is that ``rule`` forbids replacing, as the
    end of a sentence starting with its name; None when it is an earlier output."""
    for place, what in [*_protected(), *((os.path.realpath(p), w) for p, w in rule.keep.items())]:
        if real == place:
            return f"is {what}"
        if _holds(real, place):
            return f"holds {what} ({place})"
    for name, what in FOREIGN_MARKERS.items():
        if os.path.lexists(os.path.join(real, name)):
            return f"is {what} (it holds {name})"
    problem = _marker_problem(real, rule)
    if problem:
        return problem
    foreign = sorted(set(os.listdir(real)) - rule.entries) if rule.entries is not None else []
    if foreign:
        return (f"holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}, which "
                f"{rule.command} does not write")
    for root, dirs, files in os.walk(real):
        for name in [*dirs, *files]:
            what = FOREIGN_MARKERS.get(name) or (
                f"another {rule.marker}" if name == rule.marker and root != real else None)
            if what:
                return f"holds {what} ({os.path.relpath(os.path.join(root, name), real)})"
    return None


def check_replaceable(path: str, rule: Replaceable) -> None:
    """The one rule of every ``--force``: an existing ``path`` may be replaced only when
    it is recognisably an earlier output of the same command (``rule``), and never a
    place that holds anything else. Nothing is touched here.

    Refused: a link or a file; the file system root, the current folder, a home folder,
    ``rule.keep`` (what the run reads), or any folder holding one of them; a sweep folder
    or a git checkout (:data:`FOREIGN_MARKERS`), or a folder holding one at any depth; a
    folder without ``rule.marker`` (JSON with ``rule.keys``) at its top, or with another
    one below (a folder of outputs, a data root). A missing ``path`` passes.

    Raises:
        OutputError: the reason, in one line that names the path and what to do.
    """
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        what = "is a link" if os.path.islink(path) else "is a file, not a folder"
    else:
        what = _what_it_is(os.path.realpath(path), rule)
        if what is None:
            return
    raise OutputError(f"{rule.option} {path} {what}: --force replaces only an earlier output of "
                      f"{rule.command} (a folder with its {rule.marker}); nothing was "
                      f"touched, choose another {rule.option}")


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
