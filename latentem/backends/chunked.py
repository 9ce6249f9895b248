"""Out-of-core EM: the E-step over blocks read one at a time, with bounded memory.

Pass a :class:`numpy.memmap` (``np.load(path, mmap_mode="r")``) to any
``fit`` or to :func:`latentem.fit_em`, or wrap data in :class:`Chunked`: an
array-like that slices (h5py, zarr, memmap), a ``.npy`` file read with plain
reads (:meth:`Chunked.from_npy`) or a Parquet file read row group by row group
(:meth:`Chunked.from_parquet`, needs pyarrow). Each EM iteration then reads
the blocks in order, validates and E-steps each one, and adds the statistics
along a fixed tree (:func:`latentem.backends.base.pairwise_sum`); only one
block is in memory at a time. HMM data (:class:`latentem.sequences.Sequences`
over such an array) are cut only between sequences.

Starting parameters come from ``model.init_params`` on at most ``init_rows``
rows spread evenly over the data (all rows when there are no more), so a
small memmap gets exactly the starting point, and hence the fit, of the same
array in memory.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from latentem._validation import check_positive_int
from latentem.backends.base import (
    DEFAULT_BLOCK_BYTES,
    DEFAULT_INIT_ROWS,
    block_e_step,
    evenly_spaced,
    pairwise_sum,
    row_bounds,
    sequence_bounds,
    validate_block,
)
from latentem.sequences import Sequences

__all__ = ["Chunked", "ChunkedSource", "NpyFile", "ParquetFile", "is_sequence_data"]


class NpyFile:
    """A ``.npy`` file read by rows with ``os.pread``, never mapped into memory.

    Unlike a memmap, a file that is shorter than its header says, or that
    shrinks during a fit, gives a ``ValueError`` naming the file rather than a
    crash or a silently shorter fit.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file holding a 1-D or 2-D C-ordered numeric array.
    """

    def __init__(self, path: Any) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {self.path!r} as a .npy file: {exc}") from None
        if dtype.hasobject or len(shape) not in (1, 2) or (fortran and len(shape) == 2):
            raise ValueError(
                f"{self.path!r} holds a {'Fortran-ordered ' if fortran else ''}{dtype} array of "
                f"shape {shape}; block reads need a 1-D or C-ordered 2-D numeric array."
            )
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dtype.itemsize * (self.shape[1] if len(self.shape) == 2 else 1)
        self._check_size()

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _check_size(self) -> None:
        expected = self.offset + self.shape[0] * self.row_bytes
        try:
            actual = os.path.getsize(self.path)
        except OSError as exc:
            raise ValueError(f"cannot read {self.path!r}: {exc}") from None
        if actual < expected:
            raise ValueError(
                f"{self.path!r} is truncated: its header promises shape {self.shape} "
                f"({expected} bytes) but the file has {actual} bytes."
            )

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("NpyFile reads contiguous row ranges only (X[start:stop]).")
        start, stop, _ = index.indices(self.shape[0])
        stop = max(start, stop)
        out = np.empty((stop - start,) + self.shape[1:], dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))
        pos = self.offset + start * self.row_bytes
        done = 0
        try:
            with open(self.path, "rb", buffering=0) as f:
                while done < len(view):
                    got = os.preadv(f.fileno(), [view[done:]], pos + done)
                    if got == 0:
                        break
                    done += got
        except OSError as exc:
            raise ValueError(f"cannot read rows {start}:{stop} of {self.path!r}: {exc}") from None
        if done < len(view):
            raise ValueError(
                f"{self.path!r} ended after {pos + done} bytes while reading rows "
                f"{start}:{stop}: the file was truncated (its header promises shape {self.shape})."
            )
        return out


class ParquetFile:
    """Numeric columns of a Parquet file, read one row group at a time (pyarrow).

    Parameters
    ----------
    path : str or path-like
    columns : list of str, optional
        Columns to read, in this order; all numeric columns by default.
    """

    def __init__(self, path: Any, columns: Any = None) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:  # pragma: no cover - pyarrow is in the io and test extras
            raise ImportError("reading Parquet needs pyarrow: pip install 'latentem[io]'") from None
        self.path = os.fspath(path)
        try:
            self._file = pq.ParquetFile(self.path)
        except (OSError, pa.ArrowException) as exc:
            raise ValueError(f"cannot read {self.path!r} as a Parquet file: {exc}") from None
        schema = self._file.schema_arrow
        numeric = [
            f.name
            for f in schema
            if pa.types.is_integer(f.type)
            or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type)
        ]
        if columns is None:
            columns = numeric
        columns = [str(c) for c in columns]
        bad = [c for c in columns if c not in numeric]
        if bad or not columns:
            raise ValueError(
                f"{self.path!r}: columns {bad or columns} are missing or not numeric; "
                f"numeric columns are {numeric}."
            )
        self.columns = columns
        md = self._file.metadata
        sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
        self.group_offsets = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
        self.shape = (int(self.group_offsets[-1]), len(columns))
        self.dtype = np.dtype(np.float64)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def row_group_bounds(self) -> list[tuple[int, int]]:
        """``(start, stop)`` rows of every non-empty row group."""
        g = self.group_offsets
        return [(int(g[i]), int(g[i + 1])) for i in range(len(g) - 1) if g[i + 1] > g[i]]

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("ParquetFile reads contiguous row ranges only (X[start:stop]).")
        start, stop, _ = index.indices(self.shape[0])
        stop = max(start, stop)
        g = self.group_offsets
        first = int(np.searchsorted(g, start, side="right")) - 1
        last = int(np.searchsorted(g, stop, side="left"))
        groups = list(range(max(first, 0), last))
        try:
            table = self._file.read_row_groups(groups, columns=self.columns)
        except Exception as exc:  # pyarrow raises OSError or ArrowException subclasses
            raise ValueError(f"cannot read row groups {groups} of {self.path!r}: {exc}") from None
        if table.num_rows != int(g[last] - g[max(first, 0)]):
            raise ValueError(
                f"{self.path!r}: row groups {groups} hold {table.num_rows} rows, but the file's "
                "metadata promise a different number; the file is damaged."
            )
        cols = [
            np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
            for c in self.columns
        ]
        out = np.column_stack(cols) if cols else np.empty((table.num_rows, 0))
        lo = start - int(g[max(first, 0)])
        return out[lo : lo + (stop - start)]


class Chunked:
    """Data to be fitted block by block, with bounded memory.

    Parameters
    ----------
    data : array-like
        Anything with ``shape`` (1-D or 2-D) whose ``data[start:stop]`` gives
        rows as an array: a numpy memmap, an h5py or zarr dataset, an
        :class:`NpyFile` or a :class:`ParquetFile`, or an in-memory array.
    block_rows : int, optional
        Rows per block. By default blocks hold about 32 MiB of float64
        (Parquet: one row group per block).
    init_rows : int, default=100_000
        At most this many rows, spread evenly over the data, are read into
        memory for ``model.init_params``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from latentem import GaussianMixture
    >>> from latentem.backends import Chunked
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
    >>> path = os.path.join(tempfile.mkdtemp(), "X.npy")
    >>> np.save(path, X)
    >>> gm = GaussianMixture(2, random_state=0).fit(Chunked.from_npy(path, block_rows=256))
    >>> ref = GaussianMixture(2, random_state=0).fit(X)
    >>> bool(np.allclose(gm.means_, ref.means_, rtol=1e-9, atol=0))
    True
    """

    def __init__(
        self, data: Any, *, block_rows: int | None = None, init_rows: int = DEFAULT_INIT_ROWS
    ) -> None:
        shape = getattr(data, "shape", None)
        if shape is None or len(shape) not in (1, 2):
            raise ValueError(
                f"Chunked needs a 1-D or 2-D array-like with a shape; got {type(data).__name__}"
                f"{'' if shape is None else f' of shape {tuple(shape)}'}."
            )
        self.data = data
        self.shape = tuple(int(s) for s in shape)
        if self.shape[0] == 0:
            raise ValueError("X is empty (0 samples); pass at least one sample.")
        if block_rows is None:
            row_bytes = 8 * (self.shape[1] if len(self.shape) == 2 else 1)
            block_rows = max(1, DEFAULT_BLOCK_BYTES // max(row_bytes, 1))
            self._default_blocks = True
        else:
            self._default_blocks = False
        self.block_rows = check_positive_int(block_rows, "block_rows")
        self.init_rows = check_positive_int(init_rows, "init_rows")

    @classmethod
    def from_npy(cls, path: Any, **kwargs: Any) -> Chunked:
        """Blocks of a ``.npy`` file, read with plain reads (see :class:`NpyFile`)."""
        return cls(NpyFile(path), **kwargs)

    @classmethod
    def from_parquet(cls, path: Any, columns: Any = None, **kwargs: Any) -> Chunked:
        """Numeric columns of a Parquet file, one row group per block by default."""
        return cls(ParquetFile(path, columns), **kwargs)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"Chunked({type(self.data).__name__}, shape={self.shape}, block_rows={self.block_rows})"
        )

    def bounds(self) -> list[tuple[int, int]]:
        """The fixed partition into ``(start, stop)`` row blocks."""
        groups = getattr(self.data, "row_group_bounds", None)
        if self._default_blocks and callable(groups):
            return groups()
        return row_bounds(self.shape[0], self.block_rows)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as an in-memory array (not yet validated)."""
        block = np.asarray(self.data[start:stop])
        if len(block) != stop - start:
            raise ValueError(
                f"reading rows {start}:{stop} gave {len(block)} rows; the data are shorter "
                f"than their shape {self.shape} says (truncated?)."
            )
        return block

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given sorted rows, read block by block."""
        parts = []
        for a, b in self.bounds():
            lo, hi = np.searchsorted(rows, [a, b])
            if hi > lo:
                parts.append(self.read(a, b)[rows[lo:hi] - a])
        return np.concatenate(parts)


def is_sequence_data(data: Any) -> bool:
    """True for sequence data (:class:`latentem.sequences.Sequences`): stacked rows
    ``X`` with sequence ``offsets``, cut between sequences."""
    return isinstance(data, Sequences)


class ChunkedSource:
    """Runs a model's E-step block by block over a :class:`Chunked` (or HMM data over one).

    Used by :func:`latentem.fit_em`; build it only to drive EM by hand.
    """

    def __init__(self, model: Any, data: Any) -> None:
        self.model = model
        if is_sequence_data(data):
            self.sequences = data
            X = data.X if isinstance(data.X, Chunked) else Chunked(data.X)
            self.rows = X
            self.seq_bounds = sequence_bounds(data.offsets, X.block_rows)
        else:
            self.sequences = None
            self.rows = data if isinstance(data, Chunked) else Chunked(data)
        self.n_samples = len(self.rows)

    # -------------------------------------------------------------- blocks
    def _sequence_block(self, first: int, last: int) -> Any:
        off = self.sequences.offsets
        X = self.rows.read(int(off[first]), int(off[last]))
        return self.sequences.block(X, first, last)

    def blocks(self):
        """Validated blocks, in the fixed order, read one at a time."""
        if self.sequences is None:
            for a, b in self.rows.bounds():
                yield validate_block(self.model, self.rows.read(a, b))
        else:
            for first, last in self.seq_bounds:
                yield validate_block(self.model, self._sequence_block(first, last))

    def n_blocks(self) -> int:
        return len(self.rows.bounds()) if self.sequences is None else len(self.seq_bounds)

    # -------------------------------------------------------------- runner hooks
    def init_data(self) -> Any:
        """At most ``init_rows`` rows (whole data if no more), validated, for ``init_params``."""
        init_rows = self.rows.init_rows
        if self.sequences is None:
            sample = self.rows.take(evenly_spaced(self.n_samples, init_rows))
        else:
            sample = self.sequences.sample(init_rows, self.rows.take)
        sample = validate_block(self.model, sample)
        check = getattr(self.model, "validate_data", None)
        return check(sample) if callable(check) else sample

    def e_step(self) -> tuple[Any, float]:
        """Statistics and log-likelihood of all blocks, summed in the fixed order."""
        return pairwise_sum([block_e_step(self.model, b) for b in self.blocks()])
