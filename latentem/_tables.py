"""Reading and writing CSV and Parquet tables for the command line (pandas, lazily).

Every problem is a ``ValueError`` (or ``FileNotFoundError``) with one line
that says what was wrong and what to do.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np

__all__ = [
    "atomic_write",
    "check_output",
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
    """A pandas DataFrame from a CSV, TSV or Parquet file.

    Text files are read as UTF-8 (a byte-order mark is allowed). Every
    problem is one ``ValueError`` line: an empty file, a header without
    rows, bytes that are not UTF-8, a file separated by another delimiter,
    repeated or empty column names, rows of the wrong length.
    """
    fmt = table_format(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; pass a .csv or .parquet file")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is empty; it needs a header line and rows")
    pd = _pandas()
    sep = "\t" if fmt == "tsv" else ","
    try:
        if fmt == "parquet":
            _require_pyarrow()
            df = pd.read_parquet(path)
            header = [str(c) for c in df.columns]
        else:
            text = dict(sep=sep, encoding="utf-8-sig")
            df = pd.read_csv(path, **text)
            # the names as written: pandas renames repeated ("a.1") and empty ("Unnamed: 2") ones
            first = pd.read_csv(
                path, header=None, nrows=1, dtype=str, keep_default_na=False, **text
            )
            header = [str(v) for v in first.iloc[0]] if len(first) else []
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cannot read {path} as {fmt.upper()}: {_one_line(exc)}") from None
    except (OSError, ValueError, MemoryError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"cannot read {path} as {fmt.upper()}: {_one_line(exc)}") from None
    if fmt != "parquet" and len(header) == 1:
        for other, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "bars")):
            if other != sep and other in header[0]:
                raise ValueError(
                    f"{path} has a single column {_cut(header[0])!r}: it looks separated by "
                    f"{name}; latentem reads comma-separated .csv and tab-separated .tsv files"
                )
    empty = [i for i, name in enumerate(header) if not name.strip()]
    if empty:
        raise ValueError(f"column {empty[0] + 1} of {path} has no name; name every column")
    seen: set = set()
    for name in header:
        if name in seen:
            raise ValueError(f"{path} has the column name {_cut(name)!r} twice; make them unique")
        seen.add(name)
    if len(df) == 0:
        raise ValueError(f"{path} has a header but no rows")
    return df


def _cut(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ValueError(
            "Parquet files need pyarrow; install it with: pip install 'latentem[io]'"
        ) from None


def check_output(path: str, inputs: tuple[str, ...] = ()) -> None:
    """Fail before any work if ``path`` cannot be written: its directory is missing, it is
    a directory, or it is one of the ``inputs``."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write {path}: the directory {parent} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"cannot write {path}: it is a directory")
    for source in inputs:
        same = os.path.abspath(source) == os.path.abspath(path) or (
            os.path.exists(path) and os.path.exists(source) and os.path.samefile(source, path)
        )
        if same:
            raise ValueError(f"-o {path} would overwrite the input {source}; write to another file")


def atomic_write(path: str, write: Any) -> None:
    """Call ``write(temporary_path)``, then move the file into place in one step.

    The temporary file lies in the same directory, so ``os.replace`` is atomic:
    a reader, or a process killed mid-write, sees the previous file or the new
    one, never half of one. The temporary file is removed on any error.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_table(df: Any, path: str) -> None:
    """Write a DataFrame as CSV, TSV or Parquet (by extension), without the index,
    atomically (see :func:`atomic_write`)."""
    fmt = table_format(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path}: the directory {parent} does not exist")
    if fmt == "parquet":
        _require_pyarrow()
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        sep = "\t" if fmt == "tsv" else ","
        atomic_write(path, lambda tmp: df.to_csv(tmp, sep=sep, index=False))


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
