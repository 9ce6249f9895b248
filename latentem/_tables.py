"""Reading and writing CSV and Parquet tables for the command line (pandas, lazily).

Every problem is a ``ValueError`` (or ``FileNotFoundError``) with one line
that says what was wrong and what to do.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "identifier_columns",
    "numeric_block",
    "read_table",
    "sequence_lengths",
    "table_format",
    "write_table",
]

_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ValueError(
            "reading and writing tables needs pandas (and pyarrow for Parquet); "
            "install them with: pip install 'latentem[io]'"
        ) from None
    return pd


def table_format(path: str) -> str:
    """``"csv"``, ``"tsv"`` or ``"parquet"`` from the file name's extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path!r} from its extension; name it .csv, .tsv or .parquet"
        )
    return fmt


def read_table(path: str) -> Any:
    """A pandas DataFrame from a CSV, TSV or Parquet file."""
    fmt = table_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; pass a .csv or .parquet file")
    pd = _pandas()
    try:
        if fmt == "parquet":
            _require_pyarrow()
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path} as {fmt.upper()}: {_one_line(exc)}") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"cannot read {path} as {fmt.upper()}: {_one_line(exc)}") from None
    if len(df.columns) != len(set(map(str, df.columns))):
        raise ValueError(f"{path} has repeated column names; make them unique")
    return df


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ValueError(
            "Parquet files need pyarrow; install it with: pip install 'latentem[io]'"
        ) from None


def write_table(df: Any, path: str) -> None:
    """Write a DataFrame as CSV, TSV or Parquet (by extension), without the index."""
    fmt = table_format(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path}: the directory {parent} does not exist")
    if fmt == "parquet":
        _require_pyarrow()
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, sep="\t" if fmt == "tsv" else ",", index=False)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _describe_values(series: Any) -> str:
    sample = series.dropna()
    sample = sample[~sample.astype(str).str.strip().eq("")] if len(sample) else sample
    return f" such as {str(sample.iloc[0])!r}" if len(sample) else ""


def numeric_block(
    df: Any, columns: list[str] | None, exclude: tuple[str, ...] = ()
) -> tuple[np.ndarray, list[str]]:
    """The chosen numeric columns as a float64 array (NaN for gaps) and their names.

    ``columns=None`` takes every numeric column except ``exclude`` and
    identifiers (integer columns of distinct values, sorted or named like
    ``id``); named columns must exist and be numeric.
    """
    pd = _pandas()
    names = [str(c) for c in df.columns]
    by_name = dict(zip(names, df.columns))
    if columns is None:
        chosen = [
            n
            for n in names
            if n not in exclude
            and pd.api.types.is_numeric_dtype(df[by_name[n]].dtype)
            and not looks_like_identifier(df[by_name[n]], n)
        ]
        if not chosen:
            raise ValueError(
                f"the table has no numeric columns (columns: {', '.join(names)}); "
                "the models need numbers"
            )
    else:
        chosen = list(columns)
        for n in chosen:
            if n not in by_name:
                raise ValueError(f"unknown column {n!r}; the table has columns {', '.join(names)}")
        dup = {n for n in chosen if chosen.count(n) > 1}
        if dup:
            raise ValueError(f"column {sorted(dup)[0]!r} is named twice in --columns")
    for n in chosen:
        s = df[by_name[n]]
        if pd.api.types.is_bool_dtype(s.dtype):
            continue
        if not pd.api.types.is_numeric_dtype(s.dtype):
            raise ValueError(
                f"column {n!r} is not numeric (it holds {s.dtype} values{_describe_values(s)}); "
                "choose numeric columns with --columns or encode it as numbers"
            )
    X = df[[by_name[n] for n in chosen]].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.ascontiguousarray(X), chosen


def looks_like_identifier(series: Any, name: str) -> bool:
    """An integer column of distinct values that is sorted or named like a key (``id``)."""
    pd = _pandas()
    if not pd.api.types.is_integer_dtype(series.dtype) or len(series) < 20:
        return False
    if series.isna().any() or not series.is_unique:
        return False
    lowered = name.lower()
    named = lowered in ("id", "key", "index", "row") or lowered.endswith(("_id", " id", "id_"))
    return bool(named or series.is_monotonic_increasing)


def identifier_columns(df: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names of the columns :func:`numeric_block` leaves out by default as identifiers."""
    return [
        str(c) for c in df.columns if str(c) not in exclude and looks_like_identifier(df[c], str(c))
    ]


def sequence_lengths(df: Any, column: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Group rows into sequences by ``column``, keeping row order within each.

    Returns ``order`` (row indices, sequences one after another), the
    sequence ``lengths`` and the sequence ids in order of first appearance.
    """
    pd = _pandas()
    names = [str(c) for c in df.columns]
    if column not in names:
        raise ValueError(
            f"unknown sequence column {column!r}; the table has columns {', '.join(names)}"
        )
    values = df[dict(zip(names, df.columns))[column]]
    if values.isna().any():
        raise ValueError(
            f"sequence column {column!r} has missing values; give every row a sequence id"
        )
    codes, uniques = pd.factorize(values, sort=False)
    order = np.argsort(codes, kind="stable")
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    return order, lengths, list(uniques)
