"""The per-image feature store: one float32 vector per (backbone, weights, decoder +
transform, what computed it, image bytes), in an SQLite database (stdlib ``sqlite3``:
ACID transactions that are safe across processes), so overlapping datasets share work and
a grown dataset computes only its new images (docs/architecture.md, decision 3).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Sequence

import numpy as np

from tune_food.common.errors import DataError
from tune_food.data.images import LOADER
from tune_food.models.devices import computed_by, requested_runtime
from tune_food.models.registry import describe_transform, get_transform, weights_sha256

#: the store's file. ``-v2``: the key holds what computed a vector (``computed_by``); a
#: store of the earlier layout (``features.sqlite``) is left alone and not read
STORE_FILE = "features-v2.sqlite"


def extractor_id(model: str, device: str = "cpu", runtime: str | None = None,
                 computed: str | None = None) -> tuple[str, str, str, str]:
    """The part of a feature's key that is not the image: ``(backbone name, SHA-256 of
    its weights file, decoder + eval transform description, what computed it)``; the
    last is ``computed`` when given (a :class:`~tune_food.models.runtime.FrozenForward`'s
    ``computed_by``: what really ran), else :func:`tune_food.models.devices.computed_by`
    of ``device`` and ``runtime`` (None: :func:`~tune_food.models.devices.requested_runtime`):
    runtime and version, precision, device class. Vectors OpenVINO computed are never
    read for a PyTorch run, nor a GPU's for a CPU sweep, nor the reverse.

    Raises:
        WeightsError: unknown model or missing weights.
        ValueError: an unknown runtime name.
    """
    computed = computed or computed_by(device, requested_runtime(runtime))
    return (model, weights_sha256(model),
            f"{LOADER} | {describe_transform(get_transform(model))}", computed)


def check_store(directory: str) -> None:
    """The feature store in ``directory``, where there is one, must be a readable SQLite
    database (read only: nothing is created or changed).

    Raises:
        DataError: the file is damaged or not a database, with the fix (it is a cache:
            delete it, or use another ``--cache-dir``).
    """
    path = os.path.join(os.path.abspath(os.path.expanduser(directory)), STORE_FILE)
    if not os.path.isfile(path):
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DataError(f"the feature store {path} is damaged ({exc}); it is a cache of "
                        "backbone features: delete it (they are computed again) or pass "
                        "another --cache-dir") from None


class FeatureStore:
    """Per-image backbone features on disk: ``<directory>/`` + :data:`STORE_FILE`.

    One row per (backbone, weights SHA-256, transform description, what computed it
    (:func:`tune_food.models.devices.computed_by`), image SHA-256), the vector a ``float32``
    BLOB. SQLite (the stdlib's ``sqlite3``) gives atomic
    transactions that are safe with several processes writing at once (file locks, a
    busy timeout, write-ahead log); ``INSERT OR IGNORE`` makes a second writer of the
    same image harmless. Local disks (or a shared disk with working POSIX locks) only.

    Raises (constructor):
        OSError: the folder cannot be created.
        DataError: the file is damaged or not a database (:func:`check_store`).
    """

    def __init__(self, directory: str, timeout_s: float = 120.0):
        self.directory = os.path.abspath(os.path.expanduser(directory))
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, STORE_FILE)
        check_store(self.directory)
        self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS extractors (id INTEGER PRIMARY KEY, "
                "backbone TEXT NOT NULL, weights_sha256 TEXT NOT NULL, transform TEXT NOT NULL, "
                "computed_by TEXT NOT NULL, dim INTEGER NOT NULL, "
                "UNIQUE (backbone, weights_sha256, transform, computed_by))")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS features (extractor INTEGER NOT NULL "
                "REFERENCES extractors(id), image_sha256 TEXT NOT NULL, vector BLOB NOT NULL, "
                "PRIMARY KEY (extractor, image_sha256)) WITHOUT ROWID")

    @contextlib.contextmanager
    def _transaction(self):
        """A write transaction: the write lock taken at once (``BEGIN IMMEDIATE``: no
        deadlock between writers), committed, or rolled back when the block raises."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def _extractor(self, key: tuple[str, ...], dim: int | None) -> int | None:
        row = self._conn.execute(
            "SELECT id, dim FROM extractors WHERE backbone=? AND weights_sha256=? AND "
            "transform=? AND computed_by=?", key).fetchone()
        if row is not None or dim is None:
            return None if row is None else row[0]
        self._conn.execute("INSERT OR IGNORE INTO extractors (backbone, weights_sha256, "
                           "transform, computed_by, dim) VALUES (?, ?, ?, ?, ?)", (*key, dim))
        return self._extractor(key, None)

    def get(self, key: tuple[str, ...], hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors (``float32 [D]``, read-only) of those of ``hashes`` that
        the store has for extractor ``key`` (:func:`extractor_id`)."""
        ext = self._extractor(key, None)
        if ext is None:
            return {}
        found: dict[str, np.ndarray] = {}
        wanted = list(dict.fromkeys(hashes))
        for i in range(0, len(wanted), 500):
            part = wanted[i:i + 500]
            rows = self._conn.execute(
                f"SELECT image_sha256, vector FROM features WHERE extractor=? AND "
                f"image_sha256 IN ({','.join('?' * len(part))})", (ext, *part))
            for sha, blob in rows:
                found[sha] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, key: tuple[str, ...], hashes: Sequence[str], vectors: np.ndarray) -> int:
        """Store ``vectors`` (``float32 [N, D]``, row i the image ``hashes[i]``) in one
        transaction; images already stored keep their vector. Returns rows added."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(hashes) != vectors.shape[0]:
            raise ValueError(f"{len(hashes)} hashes for {vectors.shape[0]} vectors")
        with self._transaction():
            ext = self._extractor(key, int(vectors.shape[1]))
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO features (extractor, image_sha256, vector) VALUES (?, ?, ?)",
                ((ext, sha, vec.tobytes()) for sha, vec in zip(hashes, vectors)))
            return self._conn.total_changes - before

    def count(self, key: tuple[str, ...] | None = None) -> int:
        """Stored vectors (of extractor ``key``, or all)."""
        if key is None:
            return self._conn.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        ext = self._extractor(key, None)
        return 0 if ext is None else self._conn.execute(
            "SELECT COUNT(*) FROM features WHERE extractor=?", (ext,)).fetchone()[0]
