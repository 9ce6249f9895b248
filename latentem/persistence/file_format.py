"""What a model file is: its format name and version, its two members, the limits a
reader enforces, and which arrays (plain numbers and booleans, of sane shapes) it
may hold. Shared by writing (:mod:`latentem.persistence.files`), encoding
(:mod:`latentem.persistence.state`) and reading (:mod:`latentem.persistence.reading`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: The ``format`` field of every model file.
FORMAT_NAME = "latentem-model"
#: The newest format version this latentem writes and reads.
FORMAT_VERSION = 1

_META = "meta.json"
_ARRAYS = "arrays.npz"

#: The largest ``meta.json`` latentem reads (bytes, once inflated).
MAX_META_BYTES = 1 << 20
#: ``arrays.npz`` may inflate to this many times its stored size, or by
#: ``64 MiB``, whichever is more; anything beyond is refused as a compression bomb.
MAX_COMPRESSION_RATIO = 100
_ALLOWANCE = 64 << 20
_ENTRY_OVERHEAD = 1024  # zip headers and .npy header of one array, at most
_MAX_NPY_HEADER = 10000  # as numpy.load
_MAX_NDIM = 32
_CHUNK = 1 << 20
_PLAIN_KINDS = "biufc"  # booleans, integers and floating-point (also complex) numbers
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.:<>\[\]()=+-]")


def _plain_dtype(descr: Any) -> np.dtype | None:
    """The dtype ``descr`` names when it is a plain number or boolean, else None."""
    try:
        dt = np.dtype(descr) if isinstance(descr, (str, np.dtype)) else None
    except (TypeError, ValueError, SyntaxError):
        return None
    if dt is None or dt.kind not in _PLAIN_KINDS or dt.fields is not None or dt.subdtype:
        return None
    return dt


def _declared_shape(shape: Any) -> tuple[int, ...] | None:
    if not isinstance(shape, (list, tuple)) or len(shape) > _MAX_NDIM:
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**48 for d in shape):
        return None
    return tuple(shape)
