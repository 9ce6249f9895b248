"""Reading and writing CSV and Parquet tables for the command line.

With pandas installed (the ``io`` extra) tables are pandas DataFrames. Without
it, CSV and TSV files are read by the standard library into a
:class:`TextTable` (a column is numeric when every non-missing cell is a
number, text otherwise; empty cells and pandas' missing-value markers such as
``NA`` are gaps), which the table functions here accept as well; Parquet needs
pandas and pyarrow.

Every problem is a ``ValueError`` (or ``FileNotFoundError``) with one line
that says what was wrong and what to do.
"""

from __future__ import annotations

import csv
import os
import sys
import uuid
from typing import Any

import numpy as np

__all__ = [
    "TextTable",
    "atomic_write",
    "free_text_columns",
    "has_pandas",
    "check_output",
    "identifier_columns",
    "numeric_block",
    "read_table",
    "sequence_lengths",
    "table_format",
    "write_table",
]

_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def has_pandas() -> bool:
    """Whether pandas can be imported (tables are then DataFrames)."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


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
    if fmt != "parquet" and not has_pandas():
        return _read_text_table(path, fmt)
    if fmt == "parquet" and not has_pandas():
        raise ValueError(
            "Parquet files need pandas and pyarrow; install them with: pip install 'latentem[io]' "
            "(or use a .csv or .tsv file)"
        )
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
    _check_header(path, fmt, header, sep)
    if len(df) == 0:
        raise ValueError(f"{path} has a header but no rows")
    return df


def _check_header(path: str, fmt: str, header: list, sep: str) -> None:
    """One-line errors for a header that reads as one column of another delimiter,
    or that has empty or repeated names."""
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
    if isinstance(df, TextTable):
        if fmt == "parquet":
            raise ValueError(
                "writing Parquet needs pandas and pyarrow; install them with: "
                "pip install 'latentem[io]' (or write a .csv or .tsv file)"
            )
        atomic_write(path, lambda tmp: df.write(tmp, "\t" if fmt == "tsv" else ","))
    elif fmt == "parquet":
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
    if isinstance(df, TextTable):
        return _text_numeric_block(df, columns, exclude)
    pd = _pandas()
    names = [str(c) for c in df.columns]
    by_name = dict(zip(names, df.columns))
    chosen = _choose_columns(
        names,
        columns,
        lambda n: (
            n not in exclude
            and pd.api.types.is_numeric_dtype(df[by_name[n]].dtype)
            and not looks_like_identifier(df[by_name[n]], n)
        ),
    )
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


def _choose_columns(names: list[str], columns: list[str] | None, default: Any) -> list[str]:
    """The named ``columns`` (checked), or every name ``default(name)`` accepts."""
    if columns is None:
        chosen = [n for n in names if default(n)]
        if not chosen:
            raise ValueError(
                f"the table has no numeric columns (columns: {', '.join(names)}); "
                "the models need numbers"
            )
        return chosen
    chosen = list(columns)
    for n in chosen:
        if n not in names:
            raise ValueError(f"unknown column {n!r}; the table has columns {', '.join(names)}")
    dup = {n for n in chosen if chosen.count(n) > 1}
    if dup:
        raise ValueError(f"column {sorted(dup)[0]!r} is named twice in --columns")
    return chosen


def _text_numeric_block(
    table: TextTable, columns: list[str] | None, exclude: tuple[str, ...]
) -> tuple[np.ndarray, list[str]]:
    """:func:`numeric_block` of a :class:`TextTable`, with the same errors."""
    names = list(table.columns)
    chosen = _choose_columns(
        names,
        columns,
        lambda n: n not in exclude and table.is_numeric(n) and not _text_identifier(table, n),
    )
    for n in chosen:
        if not table.is_numeric(n):
            sample = next((v for v in table.cells[n] if v is not None and v.strip()), None)
            such = f" such as {sample!r}" if sample is not None else ""
            raise ValueError(
                f"column {n!r} is not numeric (it holds text values{such}); "
                "choose numeric columns with --columns or encode it as numbers"
            )
    X = np.column_stack([table.numbers[n] for n in chosen]) if chosen else np.zeros((len(table), 0))
    return np.ascontiguousarray(X, dtype=np.float64), chosen


def _text_identifier(table: TextTable, name: str) -> bool:
    """:func:`looks_like_identifier` for a column of a :class:`TextTable`."""
    values = table.numbers.get(name)
    if values is None or not table.integer[name] or len(values) < 20:
        return False
    if np.isnan(values).any() or np.unique(values).size != values.size:
        return False
    return _named_like_key(name) or bool(np.all(np.diff(values) >= 0))


def _named_like_key(name: str) -> bool:
    lowered = name.lower()
    return lowered in ("id", "key", "index", "row") or lowered.endswith(("_id", " id", "id_"))


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
    if isinstance(df, TextTable):
        return [c for c in df.columns if c not in exclude and _text_identifier(df, c)]
    return [
        str(c) for c in df.columns if str(c) not in exclude and looks_like_identifier(df[c], str(c))
    ]


def sequence_lengths(df: Any, column: str) -> tuple[np.ndarray, np.ndarray, list]:
    """Group rows into sequences by ``column``, keeping row order within each.

    Returns ``order`` (row indices, sequences one after another), the
    sequence ``lengths`` and the sequence ids in order of first appearance.
    """
    names = [str(c) for c in df.columns]
    if column not in names:
        raise ValueError(
            f"unknown sequence column {column!r}; the table has columns {', '.join(names)}"
        )
    if isinstance(df, TextTable):
        cells = df.cells[column]
        if any(v is None for v in cells):
            raise ValueError(
                f"sequence column {column!r} has missing values; give every row a sequence id"
            )
        ids: dict = {}
        codes = np.array([ids.setdefault(v, len(ids)) for v in cells], dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        lengths = np.bincount(codes, minlength=len(ids)).astype(np.int64)
        return order, lengths, list(ids)
    pd = _pandas()
    values = df[dict(zip(names, df.columns))[column]]
    if values.isna().any():
        raise ValueError(
            f"sequence column {column!r} has missing values; give every row a sequence id"
        )
    codes, uniques = pd.factorize(values, sort=False)
    order = np.argsort(codes, kind="stable")
    lengths = np.bincount(codes, minlength=len(uniques)).astype(np.int64)
    return order, lengths, list(uniques)


# ---------------------------------------------------------------------- without pandas
#: Cells read as gaps: pandas' default missing-value markers, so that a table
#: reads the same with and without pandas.
NA_STRINGS = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"]
    + ["<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)


class TextTable:
    """A CSV or TSV table read without pandas: the cells of every column as written.

    Attributes
    ----------
    columns : list of str
        The header, in order.
    cells : dict
        ``{name: list of str or None}``, None for a gap.
    numbers : dict
        ``{name: float64 array}`` for numeric columns (every non-missing cell a
        number; NaN for gaps); text columns are absent.
    integer : dict
        ``{name: bool}``: a numeric column written as whole numbers (fills are
        written as integers too).

    Examples
    --------
    >>> t = TextTable(["x", "city"], {"x": ["1", None, "3"], "city": ["Oslo", "Lyon", None]})
    >>> t.numbers["x"].tolist(), t.is_numeric("city"), len(t)
    ([1.0, nan, 3.0], False, 3)
    """

    def __init__(self, columns: list, cells: dict) -> None:
        self.columns = list(columns)
        self.cells = {c: list(cells[c]) for c in self.columns}
        self.numbers = {}
        self.integer = {}
        for c in self.columns:
            parsed = _parse_numbers(self.cells[c])
            if parsed is not None:
                self.numbers[c], self.integer[c] = parsed

    def __len__(self) -> int:
        return len(self.cells[self.columns[0]]) if self.columns else 0

    def is_numeric(self, name: str) -> bool:
        return name in self.numbers

    def copy(self) -> TextTable:
        return TextTable(self.columns, self.cells)

    def set_cells(self, name: str, values: list) -> None:
        """Replace a column's cells (str or None) and re-derive its type."""
        self.cells[name] = list(values)
        self.numbers.pop(name, None)
        parsed = _parse_numbers(self.cells[name])
        if parsed is not None:
            self.numbers[name], self.integer[name] = parsed

    def write(self, path: str, sep: str) -> None:
        with open(path, "w", encoding="utf-8", newline="") as f:
            out = csv.writer(f, delimiter=sep, lineterminator="\n")
            out.writerow(self.columns)
            columns = [self.cells[c] for c in self.columns]
            for row in zip(*columns):
                out.writerow(["" if v is None else v for v in row])


def _parse_numbers(cells: list) -> tuple[np.ndarray, bool] | None:
    """``(values, whole)`` if every non-missing cell is a number, else None."""
    values = np.full(len(cells), np.nan)
    whole = True
    for i, text in enumerate(cells):
        if text is None:
            continue
        try:
            values[i] = float(text)
        except ValueError:
            return None
        whole = whole and _looks_whole(text)
    return values, whole


def _looks_whole(text: str) -> bool:
    t = text.strip().lstrip("+-")
    return t.isdigit()


def format_number(value: float, integer: bool) -> str:
    """A filled number as text: whole numbers for integer columns, else the shortest
    text that reads back as the same float."""
    if integer and np.isfinite(value):
        return str(int(round(value)))
    return repr(float(value))


def _read_text_table(path: str, fmt: str) -> TextTable:
    """:func:`read_table` for CSV and TSV without pandas, with the same one-line errors."""
    sep = "\t" if fmt == "tsv" else ","
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}); save it as UTF-8"
        ) from None
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long cells are valid CSV
    try:
        rows = [r for r in csv.reader(text.splitlines(keepends=True), delimiter=sep) if r]
    except csv.Error as exc:
        raise ValueError(f"cannot read {path} as {fmt.upper()}: {_one_line(exc)}") from None
    finally:
        csv.field_size_limit(limit)
    if not rows:
        raise ValueError(f"cannot read {path} as {fmt.upper()}: No columns to parse from file")
    header = rows[0]
    _check_header(path, fmt, header, sep)
    body = rows[1:]
    if not body:
        raise ValueError(f"{path} has a header but no rows")
    width = len(header)
    for line, row in enumerate(body, start=2):
        if len(row) > width:
            raise ValueError(
                f"cannot read {path} as {fmt.upper()}: Error tokenizing data. Expected {width} "
                f"fields in line {line}, saw {len(row)}"
            )
    cells = {
        name: [None if j >= len(row) or row[j].strip() in NA_STRINGS else row[j] for row in body]
        for j, name in enumerate(header)
    }
    return TextTable(header, cells)


def free_text_columns(table: Any, exclude: tuple[str, ...] = ()) -> list[str]:
    """Text columns with more distinct values than a categorical column has (over half
    the rows, and over 20): names, comments, keys. ``latentem impute`` leaves them alone."""
    out = []
    for name in _names(table):
        if name in exclude:
            continue
        values = _text_values(table, name)
        if values is None:
            continue
        distinct = len(set(values))
        if distinct > 20 and distinct > 0.5 * len(table):
            out.append(name)
    return out


def _names(table: Any) -> list[str]:
    return [str(c) for c in table.columns]


def _text_values(table: Any, name: str) -> list | None:
    """The non-missing values of a text column, None for other columns."""
    if isinstance(table, TextTable):
        if table.is_numeric(name):
            return None
        return [v for v in table.cells[name] if v is not None]
    from pandas.api import types as pt

    s = table[dict(zip(_names(table), table.columns))[name]]
    if not (pt.is_object_dtype(s.dtype) or pt.is_string_dtype(s.dtype)):
        return None
    return [str(v) for v in s.dropna().tolist()]
