"""Reading a mixed table into the arrays :class:`~latentem.MixedImputer` models, and back.

A column is one of:

* **categorical**: pandas ``category``, ``bool``/``boolean``, ``object`` and
  string columns, columns named in ``categorical_features``, and numeric
  columns whose observed values are exactly 0 and 1 (binary flags). Its
  levels are its observed values (sorted; a ``category`` column keeps its
  category order) and it is held as codes 0 .. L-1 (NaN: a gap);
* **integer**: other numeric columns of an integer dtype, or whose observed
  values are all whole numbers: modelled as continuous, fills rounded to the
  nearest integer; when every observed value is >= 0 (counts) fills are
  kept >= 0;
* **continuous**: the remaining numeric columns;
* **passed through**: datetimes, timedeltas and other types, returned untouched
  and not used.

``bounds`` declares a range for numeric columns; fills are clipped to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Column", "Schema", "encode", "learn_schema", "rebuild"]


@dataclass
class Column:
    """How one modelled column is held. ``levels`` only for categorical columns."""

    name: str
    pos: int
    kind: str  # "continuous" or "categorical"
    levels: list = field(default_factory=list)
    integer: bool = False
    low: float = -math.inf
    high: float = math.inf

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "pos": self.pos,
            "kind": self.kind,
            "levels": [_plain(v) for v in self.levels],
            "integer": self.integer,
            "low": self.low,
            "high": self.high,
        }


@dataclass
class Schema:
    """The modelled columns of a table as seen at fit."""

    frame: bool
    names: list  # every input column, as str
    columns: list  # Column, continuous ones first, then categorical ones

    @property
    def continuous(self) -> list:
        return [c for c in self.columns if c.kind == "continuous"]

    @property
    def categorical(self) -> list:
        return [c for c in self.columns if c.kind == "categorical"]

    def to_json(self) -> dict:
        return {
            "frame": self.frame,
            "names": list(self.names),
            "columns": [c.to_json() for c in self.columns],
        }

    @classmethod
    def from_json(cls, state: dict) -> Schema:
        cols = [Column(**dict(c)) for c in state["columns"]]
        for c in cols:
            c.levels = list(c.levels)
            c.low, c.high = float(c.low), float(c.high)
        return cls(bool(state["frame"]), [str(n) for n in state["names"]], cols)


def _plain(v: Any) -> Any:
    """A NumPy scalar as the Python value (model files hold JSON values)."""
    return v.item() if isinstance(v, np.generic) else v


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


def _sorted_levels(values: list) -> list:
    try:
        return sorted(values)
    except TypeError:  # mixed types: a stable order all the same
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))


# ---------------------------------------------------------------------- learning the schema
def _bounds_for(bounds: Any, name: str, pos: int) -> tuple[float, float] | None:
    if not bounds:
        return None
    if not isinstance(bounds, dict):
        raise ValueError(
            f"bounds must be a dict {{column: (low, high)}} (None for an open end); got {bounds!r}."
        )
    for key in (name, pos):
        if key in bounds:
            value = bounds[key]
            try:
                low, high = value
            except (TypeError, ValueError):
                raise ValueError(
                    f"bounds[{key!r}] must be (low, high) with None for an open end; got {value!r}."
                ) from None
            low = -math.inf if low is None else float(low)
            high = math.inf if high is None else float(high)
            if math.isnan(low) or math.isnan(high) or low >= high:
                raise ValueError(f"bounds[{key!r}] = {value!r}: low must be below high.")
            return low, high
    return None


def _numeric_column(
    name: str, pos: int, values: np.ndarray, int_dtype: bool, bounds: Any, label: str
) -> Column:
    """A numeric column as binary-categorical, integer or continuous."""
    seen = values[~np.isnan(values)]
    if seen.size == 0:
        raise ValueError(
            f"{label} is entirely missing; drop it, or fill it from outside information."
        )
    declared = _bounds_for(bounds, name, pos)
    distinct = np.unique(seen)
    if declared is None and distinct.size == 2 and distinct[0] == 0 and distinct[1] == 1:
        return Column(name, pos, "categorical", levels=[0, 1], integer=True)
    whole = bool(int_dtype or np.all(seen == np.round(seen)))
    low, high = declared if declared is not None else (-math.inf, math.inf)
    if declared is not None and ((seen < low).any() or (seen > high).any()):
        bad = seen[(seen < low) | (seen > high)][0]
        raise ValueError(
            f"{label} has the observed value {bad:g} outside its declared bounds "
            f"({low:g}, {high:g}); fix the value or the bounds."
        )
    if declared is None and whole and seen.min() >= 0:
        low = 0.0  # counts: fills never negative
    if distinct.size < 2:
        raise ValueError(
            f"{label} is constant where observed ({distinct[0]:g}); it carries no information "
            "to impute from. Drop it (and fill it with its constant)."
        )
    return Column(name, pos, "continuous", integer=whole, low=low, high=high)


def _categorical_column(name: str, pos: int, levels: list, label: str) -> Column:
    if not levels:
        raise ValueError(
            f"{label} is entirely missing; drop it, or fill it from outside information."
        )
    if len(levels) < 2:
        raise ValueError(
            f"{label} has only one level observed ({levels[0]!r}); it carries no information "
            "to impute from. Drop it (and fill it with that level)."
        )
    return Column(name, pos, "categorical", levels=[_plain(v) for v in levels])


def _frame_column(df: Any, pos: int, name: str, categorical: set, bounds: Any) -> Column | None:
    from pandas.api import types as pt

    s = df.iloc[:, pos]
    dtype = s.dtype
    label = f"column {name!r}"
    if pt.is_datetime64_any_dtype(dtype) or pt.is_timedelta64_dtype(dtype):
        return None
    if isinstance(dtype, _category_dtype()):
        present = set(s.dropna().unique().tolist())
        levels = [c for c in dtype.categories.tolist() if c in present]
        return _categorical_column(name, pos, levels, label)
    if pt.is_bool_dtype(dtype):
        levels = _sorted_levels(list({bool(v) for v in s.dropna().tolist()}))
        return _categorical_column(name, pos, levels, label)
    if pt.is_numeric_dtype(dtype) and not pt.is_complex_dtype(dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise ValueError(f"{label} contains inf; replace it with a finite value or NaN.")
        if name in categorical or pos in categorical:
            levels = [_plain(v) for v in np.unique(values[~np.isnan(values)])]
            if pt.is_integer_dtype(dtype):
                levels = [int(v) for v in levels]
            return _categorical_column(name, pos, levels, label)
        return _numeric_column(name, pos, values, pt.is_integer_dtype(dtype), bounds, label)
    if pt.is_object_dtype(dtype) or pt.is_string_dtype(dtype):
        levels = _sorted_levels(list({_plain(v) for v in s.dropna().tolist()}))
        return _categorical_column(name, pos, levels, label)
    return None  # periods, intervals, complex numbers: passed through


def _category_dtype() -> type:
    import pandas as pd

    return pd.CategoricalDtype


def _as_set(categorical_features: Any, D: int | None) -> set:
    if categorical_features is None:
        return set()
    feats = np.asarray(categorical_features)
    if feats.dtype == bool:
        if D is not None and feats.shape != (D,):
            raise ValueError(
                f"categorical_features as a mask needs {D} entries; got {feats.shape[0]}."
            )
        return set(np.flatnonzero(feats).tolist())
    return {_plain(v) for v in feats.ravel().tolist()}


def learn_schema(X: Any, categorical_features: Any, bounds: Any) -> Schema:
    """Decide each column's kind from the table seen at fit (see the module docstring)."""
    if _is_frame(X):
        names = [str(c) for c in X.columns]
        if len(set(names)) != len(names):
            raise ValueError("X has repeated column names; make them unique.")
        cats = _as_set(categorical_features, len(names))
        unknown = {c for c in cats if c not in names and not isinstance(c, int)}
        if unknown:
            raise ValueError(f"categorical_features names unknown columns {sorted(unknown)}.")
        cols = [_frame_column(X, j, n, cats, bounds) for j, n in enumerate(names)]
        cols = [c for c in cols if c is not None]
        frame = True
    else:
        A = _numeric_array(X)
        names = [str(j) for j in range(A.shape[1])]
        cats = _as_set(categorical_features, A.shape[1])
        bad = [c for c in cats if not isinstance(c, int) or not 0 <= c < A.shape[1]]
        if bad:
            raise ValueError(
                f"categorical_features must be column indices 0..{A.shape[1] - 1} (or a mask) "
                f"for an array; got {bad}."
            )
        cols = []
        for j in range(A.shape[1]):
            label = f"column {j}"
            if j in cats:
                seen = np.unique(A[~np.isnan(A[:, j]), j])
                cols.append(_categorical_column(str(j), j, [float(v) for v in seen], label))
            else:
                is_int = np.asarray(X).dtype.kind in "iub"
                cols.append(_numeric_column(str(j), j, A[:, j], is_int, bounds, label))
        frame = False
    if not cols:
        raise ValueError("X has no numeric or categorical columns to impute.")
    ordered = [c for c in cols if c.kind == "continuous"] + [
        c for c in cols if c.kind == "categorical"
    ]
    return Schema(frame, names, ordered)


def _numeric_array(X: Any) -> np.ndarray:
    arr = np.asarray(X)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"an array X must hold numbers (NaN for gaps); got dtype {arr.dtype}. Pass a "
            "pandas DataFrame for text columns, or encode them as numbers and name them in "
            "categorical_features."
        )
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}.")
    out = np.array(arr, dtype=np.float64)  # a private copy
    if np.isinf(out).any():
        raise ValueError("X contains inf; replace it with a finite value or NaN.")
    return out


# ---------------------------------------------------------------------- encoding
def _codes(values: list, levels: list, label: str) -> np.ndarray:
    """Codes (float, NaN for a gap) of ``values`` (None/NaN for a gap) among ``levels``."""
    index = {lv: i for i, lv in enumerate(levels)}
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        if _missing(v):
            continue
        code = index.get(_plain(v))
        if code is None:
            raise ValueError(
                f"{label} has the level {v!r}, which was not seen at fit (levels: "
                f"{', '.join(repr(x) for x in levels[:10])}); refit with it, or map it to a "
                "known level."
            )
        out[i] = code
    return out


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(v != v) or type(v).__name__ in ("NAType", "NaTType")
    except TypeError:  # pd.NA refuses comparisons
        return True


def encode(X: Any, schema: Schema) -> np.ndarray:
    """X as one float64 array (n, D): continuous columns, then categorical codes."""
    if schema.frame != _is_frame(X):
        kind = "a DataFrame" if schema.frame else "an array"
        raise ValueError(f"the imputer was fitted on {kind}; pass the same kind of table.")
    if schema.frame:
        names = [str(c) for c in X.columns]
        if names != schema.names:
            raise ValueError(
                f"X has columns {names}, but the imputer was fitted with {schema.names}; pass "
                "the same columns in the same order."
            )
        n = len(X)
    else:
        A = _numeric_array(X)
        if A.shape[1] != len(schema.names):
            raise ValueError(
                f"X has {A.shape[1]} columns, but the imputer was fitted with {len(schema.names)}."
            )
        n = A.shape[0]
    Z = np.empty((n, len(schema.columns)))
    for j, col in enumerate(schema.columns):
        label = f"column {col.name!r}" if schema.frame else f"column {col.pos}"
        if schema.frame:
            s = X.iloc[:, col.pos]
            if col.kind == "continuous" or (col.levels == [0, 1] and col.integer):
                values = s.to_numpy(dtype=np.float64, na_value=np.nan)
                Z[:, j] = values if col.kind == "continuous" else _binary(values, label)
            else:
                Z[:, j] = _codes(s.tolist(), col.levels, label)
        else:
            values = A[:, col.pos]
            if col.kind == "categorical":
                values = _codes(list(values), col.levels, label)
            Z[:, j] = values
        if col.kind == "continuous" and np.isinf(Z[:, j]).any():
            raise ValueError(f"{label} contains inf; replace it with a finite value or NaN.")
    return np.ascontiguousarray(Z)


def _binary(values: np.ndarray, label: str) -> np.ndarray:
    seen = values[~np.isnan(values)]
    bad = seen[(seen != 0) & (seen != 1)]
    if bad.size:
        raise ValueError(
            f"{label} was a 0/1 column at fit but holds {bad[0]:g}; a level seen only after "
            "fitting cannot be imputed. Refit with it."
        )
    return values


# ---------------------------------------------------------------------- back to the input's type
def rebuild(X: Any, schema: Schema, Z: np.ndarray, gaps: np.ndarray) -> Any:
    """A copy of X with the gaps (``gaps``, (n, D) of the modelled columns) set from Z."""
    if not schema.frame:
        arr = np.asarray(X)
        if not gaps.any():
            return np.array(arr)  # nothing to fill: the same dtype, a copy
        out = np.array(arr, dtype=np.float32 if arr.dtype == np.float32 else np.float64)
        out = out.reshape(len(out), -1)
        for j, col in enumerate(schema.columns):
            g = gaps[:, j]
            if g.any():
                out[g, col.pos] = _values(Z[g, j], col)
        return out
    out = X.copy()
    for j, col in enumerate(schema.columns):
        g = gaps[:, j]
        if g.any():
            out.isetitem(col.pos, _filled_series(X.iloc[:, col.pos], col, g, Z[g, j]))
    return out


def _values(z: np.ndarray, col: Column) -> np.ndarray:
    """Model values (codes or numbers) of filled cells as the column's values, as floats."""
    if col.kind == "categorical":
        return np.asarray([float(col.levels[int(c)]) for c in z])
    return z


def _filled_series(s: Any, col: Column, g: np.ndarray, z: np.ndarray) -> Any:
    import pandas as pd
    from pandas.api import types as pt

    dtype = s.dtype
    if col.kind == "categorical":
        fill = [col.levels[int(c)] for c in z]
    else:
        fill = z.tolist()
    if isinstance(dtype, pd.CategoricalDtype):
        values = s.astype(object).to_numpy(copy=True)
        values[g] = fill
        return pd.Series(pd.Categorical(values, dtype=dtype), index=s.index, name=s.name)
    if pt.is_extension_array_dtype(dtype) and (
        pt.is_bool_dtype(dtype) or pt.is_integer_dtype(dtype) or pt.is_string_dtype(dtype)
    ):
        values = s.astype(object).to_numpy(copy=True)
        if pt.is_integer_dtype(dtype):
            fill = [int(round(v)) for v in fill]
        elif pt.is_bool_dtype(dtype):
            fill = [bool(v) for v in fill]
        values[g] = fill
        return pd.Series(pd.array(values, dtype=dtype), index=s.index, name=s.name)
    if pt.is_object_dtype(dtype) or pt.is_string_dtype(dtype):
        values = s.to_numpy(dtype=object, copy=True)
        values[g] = fill
        return pd.Series(values, index=s.index, name=s.name, dtype=dtype)
    # numeric numpy dtypes: floats (a column with gaps is never an int64 one)
    values = s.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    values[g] = np.asarray(fill, dtype=np.float64)
    target = dtype if pt.is_float_dtype(dtype) else np.float64
    return pd.Series(values.astype(target), index=s.index, name=s.name)
