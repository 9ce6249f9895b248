"""Many sequences in one array: the container HMMs, model graphs, state-space models
and the backends share.

Rows of all sequences are stacked in ``X``; ``offsets`` (length
``n_sequences + 1``) says where each starts. Optional per-row ``labels`` (known
states, -1 where unknown) and per-sequence ``weights`` travel with them. The
chunked and Dask backends cut the data between sequences with :meth:`block` and
take a bounded start sample with :meth:`sample`; each model's subclass adds what
its E-step caches (an HMM's missingness plan and posterior buffer, a graph's
per-node columns, a state-space model's contiguous arrays).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Sequences", "evenly_spaced", "offsets_from_lengths"]


class Sequences:
    """Rows of all sequences stacked, with where each sequence starts.

    ``len()`` is the number of rows, so the runner's ``tol`` is per
    observation, as everywhere in latentem.
    """

    def __init__(self, X: Any, offsets: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.X = X
        self.offsets = offsets
        self.labels = labels
        self.weights = np.ones(len(offsets) - 1)
        self._groups: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_sequences(self) -> int:
        return len(self.offsets) - 1

    @property
    def groups(self) -> np.ndarray:
        """The sequences' split into groups the kernels run in parallel."""
        if self._groups is None:
            from latentem.kernels.hmm import sequence_groups

            self._groups = sequence_groups(self.offsets)
        return self._groups

    def _like(self, X: Any, offsets: np.ndarray, labels: np.ndarray | None) -> Sequences:
        """A container of this type for other rows (blocks and samples)."""
        return type(self)(X, offsets, labels)

    def block(self, X: Any, first: int, last: int) -> Sequences:
        """Sequences ``first:last`` as this type, with their rows ``X`` (exactly the
        rows of those sequences; None for a shell the rows join later)."""
        off = np.asarray(self.offsets)
        a, b = int(off[first]), int(off[last])
        labels = None if self.labels is None else np.asarray(self.labels[a:b])
        block = self._like(X, off[first : last + 1] - a, labels)
        block.weights = np.asarray(self.weights[first:last], dtype=np.float64)
        return block

    def sample(self, init_rows: int, take_rows: Callable[[np.ndarray], Any]) -> Sequences:
        """At most about ``init_rows`` rows for ``init_params``, as this type.

        Data with no more rows are taken whole; otherwise whole sequences spread
        evenly, each cut to a prefix so the total stays bounded. ``take_rows``
        reads the given sorted row indices (in one go, however the data are
        stored).
        """
        off = np.asarray(self.offsets)
        n_seq, n_rows = len(off) - 1, int(off[-1])
        if n_rows <= init_rows:
            take, cap = np.arange(n_seq), n_rows
        else:
            take = evenly_spaced(n_seq, min(n_seq, max(1, init_rows * n_seq // n_rows)))
            cap = max(1, init_rows // len(take))
        starts = off[take]
        lengths = np.minimum(off[take + 1], starts + cap) - starts
        new_off = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        rows = np.repeat(starts - new_off[:-1], lengths) + np.arange(new_off[-1])
        labels = None if self.labels is None else np.asarray(self.labels)[rows]
        sample = self._like(take_rows(rows), new_off, labels)
        sample.weights = np.asarray(self.weights, dtype=np.float64)[take]
        return sample


def evenly_spaced(n_rows: int, n_take: int) -> np.ndarray:
    """``n_take`` sorted row indices spread evenly over ``range(n_rows)`` (all if fewer).

    >>> evenly_spaced(10, 4).tolist()
    [0, 3, 6, 9]
    """
    if n_take >= n_rows:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, n_take).round().astype(np.int64))


def offsets_from_lengths(lengths: Any, n_rows: int) -> np.ndarray:
    """Where each sequence starts (``n_sequences + 1`` offsets) from their lengths, checked;
    None: one sequence of ``n_rows`` rows."""
    if lengths is None:
        return np.array([0, n_rows], dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        if arr.ndim == 1 and arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"lengths must be a non-empty 1-D array of integers; got {lengths!r:.80}."
            )
    if (arr < 1).any():
        raise ValueError(f"every sequence length must be >= 1; got {int(arr.min())}.")
    if int(arr.sum()) != n_rows:
        raise ValueError(
            f"lengths add up to {int(arr.sum())} but X has {n_rows} rows; they must be equal."
        )
    return np.concatenate(([0], np.cumsum(arr, dtype=np.int64)))
