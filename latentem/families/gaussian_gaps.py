"""Rows with gaps, sorted out once per data set for the gap-aware Gaussian family.

:func:`missing_plan` groups the rows of X by missingness pattern (complete rows,
partly observed rows by pattern, all-NaN rows); :class:`MissingPlan` holds the
result, which :class:`~latentem.families.gaussian.GaussianFamily` caches by
the NaN mask. The per-pattern factorisations are then computed either once per
pattern (grouped path) or once per row (per-row path); the family's
``grouped`` chooses, by default automatically, and both give bit-identical
results.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from latentem.kernels._dispatch import serial_when_small

__all__ = ["MissingPlan", "missing_plan", "row_missingness"]

#: The grouped path is chosen when rows share patterns at least this often on
#: average and its tables fit in GROUPED_MAX_BYTES.
GROUPED_MIN_ROWS_PER_PATTERN = 2.0
GROUPED_MAX_BYTES = 256 * 2**20

#: Below this much work per call (rows x K x D^2) the kernels run on one
#: thread: starting a parallel region costs more than it saves on small
#: tables, and far more on a busy machine, where every region waits for a
#: descheduled thread. Measured on 2 cores with one other busy process: one
#: E-step of 20,000 x 20 rows took 20 ms on one thread and about 200 ms on two
#: (the same 200 ms at 5,000 and at 100,000 rows), while on a quiet machine two
#: threads save at most half of the 20 ms. Above this (about 50 ms of work on
#: one thread) the threads pay.
SERIAL_BELOW = 20_000_000


def _serial_if_small(method):
    """Run ``method(self, X, ...)`` on one numba thread when X is small."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        work = X.shape[0] * self.n_components * self.n_features**2
        with serial_when_small(work, X.shape[0], SERIAL_BELOW):
            return method(self, X, *args, **kwargs)

    return wrapper


def row_missingness(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of complete rows, partly observed rows and entirely missing rows."""
    nan = np.isnan(X)
    any_nan = nan.any(axis=1)
    all_nan = nan.all(axis=1)
    return ~any_nan, any_nan & ~all_nan, all_nan


@dataclass
class MissingPlan:
    """Rows of a data set sorted out by missingness.

    Attributes
    ----------
    complete, partial, empty : ndarray of int64
        Indices of complete rows, rows with some gaps, and all-NaN rows.
    pattern : ndarray of int64
        Pattern number of each row of ``partial`` (all-NaN rows have their
        own pattern in ``pattern_all``).
    pat_idx : ndarray (n_patterns, D) of int64
        Missing columns first, then observed ones, each in column order.
    pat_nmis : ndarray (n_patterns,) of int64
        Number of missing columns of each pattern.
    counts : ndarray (n_patterns,) of int64
        Rows with each pattern.
    """

    complete: np.ndarray
    partial: np.ndarray
    empty: np.ndarray
    pattern: np.ndarray
    pat_idx: np.ndarray
    pat_nmis: np.ndarray
    counts: np.ndarray
    key: bytes

    @property
    def n_patterns(self) -> int:
        return int(self.pat_nmis.shape[0])


def _mask_key(nan: np.ndarray) -> bytes:
    h = hashlib.blake2b(np.packbits(nan, axis=None).tobytes(), digest_size=16)
    h.update(repr(nan.shape).encode())
    return h.digest()


def missing_plan(X: np.ndarray) -> MissingPlan:
    """Group the rows of X (with NaN for gaps) by missingness pattern.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.gaussian_gaps import missing_plan
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan], [np.nan, 5.0]])
    >>> plan = missing_plan(X)
    >>> plan.partial.tolist(), plan.pattern.tolist(), plan.counts.tolist()
    ([0, 2, 3], [1, 1, 0], [1, 2])
    >>> plan.pat_idx.tolist(), plan.pat_nmis.tolist()  # missing columns first
    ([[0, 1], [1, 0]], [1, 1])
    """
    return _plan_from_mask(np.isnan(X))


def _plan_from_mask(nan: np.ndarray, key: bytes | None = None) -> MissingPlan:
    """:func:`missing_plan` from the NaN mask (and its :func:`_mask_key`, if known)."""
    D = nan.shape[1]
    key = _mask_key(nan) if key is None else key
    if not nan.any():  # complete data, the common case: one flat test, nothing to group
        return MissingPlan(
            complete=np.arange(nan.shape[0], dtype=np.int64),
            partial=np.zeros(0, dtype=np.int64),
            empty=np.zeros(0, dtype=np.int64),
            pattern=np.zeros(0, dtype=np.int64),
            pat_idx=np.zeros((0, D), dtype=np.int64),
            pat_nmis=np.zeros(0, dtype=np.int64),
            counts=np.zeros(0, dtype=np.int64),
            key=key,
        )
    any_nan = nan.any(axis=1)
    all_nan = nan.all(axis=1)
    partial = np.flatnonzero(any_nan & ~all_nan)
    if partial.size:
        m = nan[partial]
        if D <= 63:  # one integer per row: much faster to sort than byte strings
            keys = m.astype(np.int64) @ (np.int64(1) << np.arange(D, dtype=np.int64))
        else:
            packed = np.ascontiguousarray(np.packbits(m, axis=1))
            keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, inverse, counts = np.unique(
            keys, return_index=True, return_inverse=True, return_counts=True
        )
        pm = m[first]
        pat_idx = np.ascontiguousarray(np.argsort(~pm, axis=1, kind="stable"), dtype=np.int64)
        pat_nmis = pm.sum(axis=1).astype(np.int64)
        pattern = inverse.reshape(-1).astype(np.int64)
        counts = counts.astype(np.int64)
    else:
        pat_idx = np.zeros((0, D), dtype=np.int64)
        pat_nmis = np.zeros(0, dtype=np.int64)
        pattern = np.zeros(0, dtype=np.int64)
        counts = np.zeros(0, dtype=np.int64)
    return MissingPlan(
        complete=np.flatnonzero(~any_nan),
        partial=partial,
        empty=np.flatnonzero(all_nan),
        pattern=pattern,
        pat_idx=pat_idx,
        pat_nmis=pat_nmis,
        counts=counts,
        key=key,
    )
