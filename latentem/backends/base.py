"""What every backend shares: block plans, block validation, a fixed reduction order.

A *backend* decides where the E-step runs; the model decides what it computes.
Because statistics add up over rows (or over whole sequences), any backend
computes ``model.e_step`` on each block of a fixed partition of the data and
adds the results with :func:`pairwise_sum`, whose order depends only on the
number of blocks. The chunked and Dask backends therefore give bit-identical
statistics for the same partition, and agree with the in-memory E-step to
rounding (about 1e-15 relative per iteration).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from latentem import tree
from latentem.sequences import evenly_spaced

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DEFAULT_INIT_ROWS",
    "add_parts",
    "block_e_step",
    "evenly_spaced",
    "is_dask_array",
    "pairwise_sum",
    "row_bounds",
    "sequence_bounds",
    "validate_block",
]

#: Target size of one block of raw data (32 MiB): big enough to keep the
#: numba kernels busy, small enough to bound memory.
DEFAULT_BLOCK_BYTES = 32 * 2**20

#: Rows (at most) given to ``model.init_params`` when the data do not sit in
#: memory. Data with at most this many rows are read whole, so their starting
#: parameters are exactly those of the in-memory fit.
DEFAULT_INIT_ROWS = 100_000


def row_bounds(n_rows: int, block_rows: int) -> list[tuple[int, int]]:
    """Split ``range(n_rows)`` into consecutive ``(start, stop)`` blocks of ``block_rows``.

    >>> row_bounds(10, 4)
    [(0, 4), (4, 8), (8, 10)]
    """
    if n_rows < 1 or block_rows < 1:
        raise ValueError(f"need n_rows >= 1 and block_rows >= 1; got {n_rows}, {block_rows}.")
    return [(a, min(a + block_rows, n_rows)) for a in range(0, n_rows, block_rows)]


def sequence_bounds(offsets: np.ndarray, block_rows: int) -> list[tuple[int, int]]:
    """Group whole sequences into blocks of at most ``block_rows`` rows.

    Returns ``(first, last)`` sequence index ranges (``last`` exclusive); a
    sequence is never split, so one longer than ``block_rows`` is a block of
    its own.

    >>> sequence_bounds(np.array([0, 3, 5, 12, 13]), 5)
    [(0, 2), (2, 3), (3, 4)]
    """
    offsets = np.asarray(offsets)
    n_seq = len(offsets) - 1
    out = []
    first = 0
    while first < n_seq:
        # the last sequence that still ends within block_rows of this block's start
        last = int(np.searchsorted(offsets, offsets[first] + block_rows, side="right")) - 1
        last = min(max(last, first + 1), n_seq)
        out.append((first, last))
        first = last
    return out


def is_dask_array(X: Any) -> bool:
    """True for a ``dask.array.Array`` (checked without importing dask)."""
    return type(X).__module__.startswith("dask.") and hasattr(X, "__dask_graph__")


def validate_block(model: Any, block: Any) -> Any:
    """Check and convert one block with the model's ``validate_block`` or ``validate_data``.

    ``validate_block`` is the variant of ``validate_data`` without checks that
    only make sense for the whole data set (such as "at least K rows").
    """
    check = getattr(model, "validate_block", None)
    if not callable(check):
        check = getattr(model, "validate_data", None)
    if callable(check):
        return check(block)
    if isinstance(block, np.ndarray) and block.dtype.kind in "fc" and not np.isfinite(block).all():
        raise ValueError(
            "a block of X contains NaN or inf and the model has no validate_data() to say it "
            "accepts them; remove those values or give the model a validate_data method."
        )
    return block


def block_e_step(model: Any, block: Any) -> tuple[Any, float]:
    """``model.e_step`` on one validated block, log-likelihood as a float."""
    stats, ll = model.e_step(block)
    return stats, float(ll)


def add_parts(a: tuple[Any, float], b: tuple[Any, float]) -> tuple[Any, float]:
    """Add two ``(stats, loglik)`` pairs."""
    return tree.add(a[0], b[0]), a[1] + b[1]


def pairwise_sum(parts: Sequence[Any], add: Callable[[Any, Any], Any] = add_parts) -> Any:
    """Sum ``(stats, loglik)`` pairs along a fixed binary tree: (0+1)+(2+3), ...

    The tree depends only on ``len(parts)``, so every backend that sums the
    same blocks this way gets the same bits. ``add`` may build a task graph
    instead (the Dask backend passes a delayed ``add_parts``).

    >>> pairwise_sum([(np.array([1.0]), 1.0), (np.array([2.0]), 2.0), (np.array([4.0]), 4.0)])
    (array([7.]), 7.0)
    """
    level = list(parts)
    if not level:
        raise ValueError("no blocks to sum")
    while len(level) > 1:
        nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]
