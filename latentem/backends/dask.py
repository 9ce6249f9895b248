"""Dask-distributed EM: E-steps where the blocks live, statistics tree-reduced.

Pass a ``dask.array`` chunked along rows to any ``fit`` or to
:func:`latentem.fit_em`. With a ``dask.distributed`` client active, the
validated blocks are persisted on the workers once; every iteration then
sends the model's parameters (O(K·D²) numbers) to each worker, runs
``model.e_step`` on each block where it is held, adds the statistics pairwise
along a fixed tree (:func:`latentem.backends.base.pairwise_sum`) and brings
one set of statistics back to the client, which takes the M-step. Only
parameters and statistics cross the network; a worker that dies loses
nothing but time, because the scheduler recomputes its blocks from their
lineage and the fixed reduction order gives the same bits.

HMM data (:class:`latentem.sequences.Sequences` over a dask array, as
``HMM.fit(Xd, lengths)`` builds) are re-chunked once so that every block
holds whole sequences, as in the chunked backend.

Without a client the blocks are read, validated and E-stepped one after
another in this process (dask's synchronous scheduler): bounded memory over
any dask source (zarr, HDF5, ``.npy`` stacks), no persistence.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import numpy as np

from latentem.backends.base import (
    DEFAULT_INIT_ROWS,
    add_parts,
    block_e_step,
    evenly_spaced,
    pairwise_sum,
    sequence_bounds,
    validate_block,
)
from latentem.backends.chunked import is_sequence_data

__all__ = ["DaskSource", "active_client"]


def active_client() -> Any:
    """The default ``dask.distributed`` client, or None."""
    try:
        from distributed import default_client
    except ImportError:  # pragma: no cover - the dask extra brings distributed
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _take(block: Any, rows: np.ndarray) -> np.ndarray:
    rows_of = block.X if is_sequence_data(block) else block
    return rows_of[rows]


def _with_rows(shell: Any, X: np.ndarray) -> Any:
    """A block of HMM sequences (offsets, labels, weights) given its rows."""
    block = copy.copy(shell)
    block.X = X
    return block


def _n_rows(block: Any) -> int:
    return len(block)


class DaskSource:
    """Runs a model's E-step over the blocks of a dask array (see the module docstring).

    Parameters
    ----------
    model : LatentModel
    X : dask.array.Array, or HMM data over one
        1-D or 2-D, chunked along rows (column chunks are merged). HMM data
        are re-chunked so that no sequence is split.
    init_rows : int
        At most this many rows, spread evenly, are brought to the client for
        ``model.init_params`` (all rows when there are no more).
    persist : bool, optional
        Keep the validated blocks in the workers' memory between iterations;
        by default True with a distributed client, else False.
    """

    def __init__(
        self,
        model: Any,
        X: Any,
        *,
        init_rows: int = DEFAULT_INIT_ROWS,
        persist: bool | None = None,
    ) -> None:
        import dask

        self.sequences = X if is_sequence_data(X) else None
        rows = X.X if self.sequences is not None else X
        if rows.ndim not in (1, 2):
            raise ValueError(f"X must be a 1-D or 2-D dask array; got shape {rows.shape}.")
        if any(not np.isfinite(c) for c in rows.chunks[0]):
            raise ValueError("X has unknown chunk sizes (NaN); call X.compute_chunk_sizes() first.")
        if rows.shape[0] == 0:
            raise ValueError("X is empty (0 samples); pass at least one sample.")
        if rows.ndim == 2 and len(rows.chunks[1]) > 1:
            rows = rows.rechunk({1: -1})
        self.model = model
        self.n_samples = int(rows.shape[0])
        self.init_rows = int(init_rows)
        self.client = active_client()
        self.persist = self.client is not None if persist is None else bool(persist)
        self.scheduler = None if self.client is not None else "sync"
        if self.sequences is None:
            raw = list(rows.to_delayed().ravel())
        else:
            rows, raw = self._sequence_blocks(rows)
        self.row_starts = np.concatenate(([0], np.cumsum(rows.chunks[0]))).astype(np.int64)
        check = dask.delayed(validate_block, pure=True)
        template = dask.delayed(model, name=f"latentem-model-{uuid.uuid4().hex}")
        blocks = [check(template, b) for b in raw]
        if self.persist:
            blocks = list(dask.persist(*blocks, scheduler=self.scheduler))
        self.blocks = blocks
        # surfaces validation errors (and unreadable sources) now, with the worker's message
        counts = dask.compute(*[dask.delayed(_n_rows)(b) for b in blocks], scheduler=self.scheduler)
        if int(sum(counts)) != self.n_samples:
            raise ValueError(
                f"the blocks of X hold {int(sum(counts))} rows, not the {self.n_samples} its "
                "shape promises; the source is damaged or truncated."
            )

    def _sequence_blocks(self, rows: Any) -> tuple[Any, list]:
        """Rows re-chunked to whole sequences, and one delayed HMM block per chunk."""
        import dask

        off = np.asarray(self.sequences.offsets)
        bounds = sequence_bounds(off, max(rows.chunks[0]))
        sizes = tuple(int(off[last] - off[first]) for first, last in bounds)
        if sizes != rows.chunks[0]:
            rows = rows.rechunk({0: sizes})
        # offsets, labels and weights are sliced here; only the rows live on the workers
        shells = [self.sequences.block(None, a, b) for a, b in bounds]
        fill = dask.delayed(_with_rows, pure=True)
        return rows, [fill(shell, x) for shell, x in zip(shells, rows.to_delayed().ravel())]

    def _take_rows(self, rows: np.ndarray) -> np.ndarray:
        """The given sorted rows, gathered from the (persisted) blocks in one compute."""
        import dask

        parts = []
        for i, block in enumerate(self.blocks):
            a, b = self.row_starts[i], self.row_starts[i + 1]
            lo, hi = np.searchsorted(rows, [a, b])
            if hi > lo:
                parts.append(dask.delayed(_take)(block, rows[lo:hi] - a))
        return np.concatenate(dask.compute(*parts, scheduler=self.scheduler))

    def init_data(self) -> Any:
        """At most ``init_rows`` validated rows, spread evenly, on the client."""
        if self.sequences is None:
            sample = self._take_rows(evenly_spaced(self.n_samples, self.init_rows))
        else:
            sample = self.sequences.sample(self.init_rows, self._take_rows)
        sample = validate_block(self.model, sample)
        check = getattr(self.model, "validate_data", None)
        return check(sample) if callable(check) else sample

    def e_step(self) -> tuple[Any, float]:
        """Statistics and log-likelihood over all blocks, reduced along the fixed tree."""
        import dask

        # the parameters travel once per iteration, as one small task
        params = dask.delayed(self.model, name=f"latentem-model-{uuid.uuid4().hex}")
        estep = dask.delayed(block_e_step, pure=True)
        parts = [estep(params, b) for b in self.blocks]
        total = pairwise_sum(parts, add=dask.delayed(add_parts, pure=True))
        (result,) = dask.compute(total, scheduler=self.scheduler)
        return result
