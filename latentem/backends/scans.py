"""Whole-data scans a model needs before EM starts, over any data source.

:func:`column_moments` gives the observed count, variance, minimum and maximum of
every column of a memmap or :class:`~latentem.Chunked` table, block by block (moments
taken about the first observed values, so without cancellation), or of a
``dask.array`` in one ``dask.compute``: the start of an out-of-core imputer fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.backends.base import is_dask_array
from latentem.backends.chunked import Chunked


def column_moments(X: Any) -> tuple[np.ndarray, ...]:
    """Observed count, variance, minimum and maximum of every column of out-of-core
    data, in one pass."""
    if is_dask_array(X):
        import dask
        import dask.array as da

        X = X if X.ndim == 2 else X[:, None]
        n_obs, var, low, high = dask.compute(
            (~da.isnan(X)).sum(axis=0),
            da.nanvar(X, axis=0),
            da.nanmin(X, axis=0),
            da.nanmax(X, axis=0),
        )
        as_float = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        return np.asarray(n_obs), np.nan_to_num(as_float(var)), as_float(low), as_float(high)
    rows = X if isinstance(X, Chunked) else Chunked(X)
    n_obs = shift = total = squares = low = high = None
    for a, b in rows.bounds():
        block = np.asarray(rows.read(a, b), dtype=np.float64)
        block = block if block.ndim == 2 else block[:, None]
        if n_obs is None:  # moments about the first block's first values: no cancellation
            first = np.argmax(~np.isnan(block), axis=0)
            shift = np.nan_to_num(block[first, np.arange(block.shape[1])]) if len(block) else 0
            n_obs, total, squares = (np.zeros(block.shape[1]) for _ in range(3))
            low, high = np.full(block.shape[1], np.inf), np.full(block.shape[1], -np.inf)
        dev = block - shift
        n_obs += (~np.isnan(dev)).sum(axis=0)
        total += np.nansum(dev, axis=0)
        squares += np.nansum(dev * dev, axis=0)
        low = np.fmin(low, np.nanmin(block, axis=0, initial=np.inf))
        high = np.fmax(high, np.nanmax(block, axis=0, initial=-np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_obs
        var = np.where(n_obs > 0, squares / n_obs - mean * mean, 0.0)
    var = np.where(high > low, np.maximum(var, 0.0), 0.0)  # constant columns exactly 0
    return n_obs.astype(np.int64), var, low, high
