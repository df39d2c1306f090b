"""The sweep's tables as Parquet: ``results.parquet`` and ``leaderboard.parquet``.

A CSV forgets types: an integer column with a missing value comes back as floats, a
boolean column as strings. The Parquet copies keep them (:func:`typed_frame`):
integer columns stay integers (pandas' nullable ``Int64`` where a value is missing),
booleans stay booleans (nullable ``boolean`` where one is missing), and ``model`` /
``data`` are categories, so ``pd.read_parquet`` gives back the very frame the sweep had.
"""

from __future__ import annotations

import re

import pandas as pd

from tune_food.common.files import atomic_write

#: columns that count things (epochs, images, parameters, ranks, ids of processes):
#: integers even when a missing value made pandas hold them as floats
INT_COLUMNS = re.compile(
    r"^(config/)?(rank|epochs?|epochs_done|epochs_planned|checkpoint_epoch|batch_size|seed"
    r"|\w+_correct|\w+_images|\w+_params|resumed_from_epoch|training_iteration"
    r"|iterations_since_restore|timestamp|pid)$")
#: columns held as categories
CATEGORY_COLUMNS = ("model", "data", "config/model", "config/data")


def _all(values: pd.Series, check) -> bool:
    """True when ``values`` has a non-missing value and ``check`` holds for each."""
    present = values.dropna()
    return not present.empty and all(check(v) for v in present)


def _is_bool(v) -> bool:
    return pd.api.types.is_bool(v)


def _is_number(v) -> bool:
    return pd.api.types.is_number(v) and not pd.api.types.is_bool(v)


def typed_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with the dtypes its columns mean (see the module docstring).

    * a float or object column named like a count (:data:`INT_COLUMNS`) whose values are
      all whole numbers -> ``int64``, or ``Int64`` with missing values;
    * an object column holding only booleans (and missing values) -> ``bool`` /
      ``boolean``; one holding only numbers -> ``Float64``;
    * ``model``, ``data`` (and ``config/model``, ``config/data``) -> ``category``.

    Returns:
        The converted copy; rows, columns and values are unchanged.
    """
    out = frame.copy()
    for col in out.columns:
        s = out[col]
        missing = bool(s.isna().any())
        if col in CATEGORY_COLUMNS:
            out[col] = s.astype("category")
        elif INT_COLUMNS.match(col) and (pd.api.types.is_float_dtype(s) or s.dtype == object) \
                and _all(s, _is_number) and all(float(v).is_integer() for v in s.dropna()):
            out[col] = s.astype("Int64" if missing else "int64")
        elif s.dtype == object and _all(s, _is_bool):
            out[col] = s.astype("boolean" if missing else bool)
        elif s.dtype == object and _all(s, _is_number):
            out[col] = s.astype("Float64")
    return out


def write_parquet_atomic(frame: pd.DataFrame, path: str) -> str:
    """Write :func:`typed_frame` of ``frame`` to ``path`` as Parquet (pyarrow, no index),
    atomically (:func:`tune_food.common.files.atomic_write`); return the absolute path.

    The same frame gives the same bytes (pyarrow writes no time stamp), so ``report``
    on a finished sweep leaves the file as it was.
    """
    typed = typed_frame(frame)
    return atomic_write(path, lambda tmp: typed.to_parquet(tmp, engine="pyarrow", index=False))
