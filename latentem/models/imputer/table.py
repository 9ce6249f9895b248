"""Tables in and out: the numeric block of an array or DataFrame, and how to put it back.

:class:`_Table` reads what the imputer is given (a NumPy array, a pandas DataFrame, or
out-of-core data asked for in memory) as a private float64 array with NaN marking the
gaps, refuses inf and (unless passed through) non-numeric DataFrame columns, names
columns in error messages, and rebuilds the input's type around the filled values.
:func:`_is_frame` tells a DataFrame from an array without importing pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import as_numeric_array
from latentem.runner import Chunked


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


class _Table:
    """The numeric block of an array or DataFrame as float64, and how to put it back."""

    def __init__(self, X: Any, non_numeric: str) -> None:
        if isinstance(X, Chunked):  # out-of-core data asked for in memory
            X = X.read(0, len(X))
        self.frame = _is_frame(X)
        self.source = X
        if self.frame:
            from pandas.api.types import is_numeric_dtype

            cols = list(X.columns)
            numeric = [i for i, t in enumerate(X.dtypes) if is_numeric_dtype(t)]
            other = [str(cols[i]) for i in range(len(cols)) if i not in set(numeric)]
            if other and non_numeric == "error":
                raise ValueError(
                    f"X has non-numeric columns {other}; drop or encode them, or pass "
                    "non_numeric='passthrough' to leave them untouched."
                )
            self.positions = numeric
            self.names = [str(cols[i]) for i in numeric]
            self.labels = [cols[i] for i in numeric]
            block = X.iloc[:, numeric]
            arr = block.to_numpy(dtype=np.float64, na_value=np.nan)
            self.dtype = np.float64
        else:
            arr = as_numeric_array(X, name="X")  # sparse, text, complex, 1-D: refused
            if arr.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}.")
            self.dtype = np.float32 if arr.dtype == np.float32 else np.float64
            self.names = [str(j) for j in range(arr.shape[1])]
            self.labels = None
            arr = np.array(arr, dtype=np.float64, order="C")  # always a private copy
        self.X = np.ascontiguousarray(arr)
        inf = np.isinf(self.X).any(axis=0)
        if inf.any():
            raise ValueError(
                f"X contains inf in {self._cols(np.flatnonzero(inf))}; replace it with a finite "
                "value or NaN."
            )

    def _cols(self, idx) -> str:
        if self.frame:
            names = [repr(self.names[j]) for j in idx]
        else:
            names = [self.names[j] for j in idx]
        head = "column " if len(names) == 1 else "columns "
        return head + ", ".join(names)

    def rebuild(self, filled: np.ndarray) -> Any:
        """``filled`` (n, D) as the input's type: same index, columns and other columns."""
        if not self.frame:
            return filled.astype(self.dtype, copy=False)
        out = self.source.copy()
        had_nan = np.isnan(self.X).any(axis=0)
        for j, pos in enumerate(self.positions):
            if had_nan[j]:
                out.isetitem(pos, filled[:, j])
        return out
