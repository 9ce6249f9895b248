"""Where the E-step runs: in memory, block by block (out-of-core), or on Dask workers.

:func:`latentem.fit_em` (and so every model's ``fit``) picks the backend
from the input, so users change nothing but what they pass:

* a numpy array: in memory (numba threads over row groups);
* a :class:`numpy.memmap` or a :class:`Chunked` (memmap, h5py/zarr, ``.npy``
  or Parquet file): block by block, bounded memory;
* a ``dask.array`` chunked along rows: on the Dask workers holding each
  block, statistics tree-reduced, M-step on the client;

``fit_em(..., backend="memory" | "chunked" | "dask")`` forces a choice. For
streams read once there is online EM: :class:`OnlineEM` and
``GaussianMixture.partial_fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.backends.base import is_dask_array, pairwise_sum
from latentem.backends.chunked import Chunked, ChunkedSource, NpyFile, ParquetFile, is_sequence_data
from latentem.backends.online import OnlineEM, step_size
from latentem.backends.scans import column_moments

__all__ = [
    "BACKENDS",
    "Chunked",
    "ChunkedSource",
    "NpyFile",
    "OnlineEM",
    "ParquetFile",
    "column_moments",
    "is_dask_array",
    "is_out_of_core",
    "pairwise_sum",
    "resolve",
    "step_size",
]

BACKENDS = (None, "memory", "chunked", "dask")


def is_out_of_core(X: Any) -> bool:
    """True for inputs that the runner reads block by block rather than whole."""
    return isinstance(X, (np.memmap, Chunked)) or is_dask_array(X)


def resolve(model: Any, X: Any, backend: str | None = None) -> Any:
    """The block source that will run ``model``'s E-steps over ``X``, or None for in memory.

    Parameters
    ----------
    model : LatentModel
    X : the data as passed to ``fit_em``
    backend : {None, "memory", "chunked", "dask"}
        None chooses from the type of ``X`` (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> from latentem.backends import resolve
    >>> resolve(GaussianMixture(), np.zeros((4, 2))) is None
    True
    >>> type(resolve(GaussianMixture(), np.zeros((4, 2)), "chunked")).__name__
    'ChunkedSource'
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    if backend == "memory":
        if isinstance(X, Chunked) or is_dask_array(X):
            raise ValueError(
                f'backend="memory" needs an in-memory array; got {type(X).__name__}. '
                "Load it first (np.asarray, .compute()) or leave backend=None."
            )
        return None
    inner = X.X if is_sequence_data(X) else X
    if is_dask_array(inner) or backend == "dask":
        if not is_dask_array(inner) or backend == "chunked":
            raise ValueError(
                "the Dask backend takes a dask.array of rows (chunked along rows) with "
                f'backend=None or "dask"; got {type(inner).__name__} with backend={backend!r}.'
            )
        from latentem.backends.dask import DaskSource

        return DaskSource(model, X)
    if backend == "chunked" or isinstance(inner, (np.memmap, Chunked)):
        return ChunkedSource(model, X)
    return None
