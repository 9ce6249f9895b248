"""Model files: save fitted models safely and load them back, anywhere.

A model file is a zip archive with two members:

``meta.json``
    The format name and version, the latentem version that wrote it, the
    model's class (a name from a fixed list, never an import path), its
    constructor parameters, its fitted scalars and any user metadata, as
    plain JSON.
``arrays.npz``
    Every array, in NumPy's ``.npz`` format, read back with
    ``allow_pickle=False``.

Nothing in a file is ever unpickled or imported: a class name from the file
is looked up in :mod:`latentem.registry` (latentem's classes and those the
running program registered), and anything else is an error. So
loading a file from an untrusted source cannot run code.

A class takes part in one of two ways:

* declaratively, by registering (:func:`latentem.registry.register`,
  :func:`latentem.register_family`) with the names of the
  attributes that hold its fitted state (its constructor parameters come
  from ``get_params()`` or, for plain classes, from attributes named like
  the ``__init__`` arguments); after loading, an optional ``finish`` method
  rebuilds derived state (Cholesky factors, caches) and checks the values;
* or with two methods: ``_to_state(self) -> dict`` (a tree of JSON values,
  NumPy arrays and saveable objects) and a class method
  ``_from_state(cls, state) -> instance``.

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> from latentem import GaussianMixture
>>> from latentem.persistence import load
>>> X = np.array([[1.0, 2.0], [1.1, 1.9], [0.9, 2.2], [8.0, 9.0], [8.2, 9.1], [7.9, 8.8]])
>>> gm = GaussianMixture(2, random_state=0).fit(X)
>>> path = os.path.join(tempfile.mkdtemp(), "model.lem")
>>> gm.save(path)
>>> again = load(path)
>>> bool(np.array_equal(again.predict_proba(X), gm.predict_proba(X)))
True
"""

# The package re-exports every name the former module had (private ones too, for
# the modules, tests and user code that import them from here).
# ruff: noqa: F401
from __future__ import annotations

from latentem.persistence.checks import (
    _check_factor,
    _check_gaussian_family,
    _check_graph,
    _check_hmm,
    _check_imputer,
    _check_loaded,
    _check_mixture,
    _check_size,
    _covariances,
    _finish,
    _finite,
    _simplex,
)
from latentem.persistence.classes import (
    _RUNTIME_CLASSES,
    SAVEABLE_CLASSES,
    _class_for,
    _known_names,
    _name_for,
    _Spec,
    _spec,
    register_class,
)
from latentem.persistence.file_format import (
    _ALLOWANCE,
    _ARRAYS,
    _CHUNK,
    _ENTRY_OVERHEAD,
    _MAX_NDIM,
    _MAX_NPY_HEADER,
    _META,
    _PLAIN_KINDS,
    _UNSAFE_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_COMPRESSION_RATIO,
    MAX_META_BYTES,
    _declared_shape,
    _plain_dtype,
)
from latentem.persistence.files import _BUILD_ERRORS, describe, load, save
from latentem.persistence.mixin import SaveMixin
from latentem.persistence.reading import (
    _array_refs,
    _check_declared,
    _Entry,
    _npy_header,
    _open_entries,
    _parse_meta,
    _path_like,
    _read,
    _read_arrays,
    _short,
    _zip64_sizes,
)
from latentem.persistence.state import (
    _decode,
    _Encoder,
    _init_param_names,
    _object_from_state,
    _object_state,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_COMPRESSION_RATIO",
    "MAX_META_BYTES",
    "SAVEABLE_CLASSES",
    "SaveMixin",
    "describe",
    "load",
    "register_class",
    "save",
]
