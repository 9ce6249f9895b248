"""Model files as users see them: :func:`save` writes a model (``meta.json`` +
``arrays.npz`` in a zip, atomically), :func:`load` reads one back through the
checked reader and rebuilds the model, and :func:`describe` tells what a file holds
without building anything.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from latentem.persistence.classes import _class_for, _known_names, _name_for
from latentem.persistence.file_format import _ARRAYS, _META, FORMAT_NAME, FORMAT_VERSION
from latentem.persistence.reading import _read, _short
from latentem.persistence.state import _decode, _Encoder


def save(model: Any, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Write ``model`` to a model file at ``path`` (the format: :mod:`latentem.persistence`).

    Parameters
    ----------
    model : GaussianMixture, HMM, GaussianHMM, GMMHMM, CategoricalHMM, PoissonHMM, ...
        A latentem model, fitted or not. Its parameters and fitted state
        are saved; a ``random_state`` Generator is replaced by ``None``
        (integer seeds are kept).
    path : str or path-like
        Where to write; an existing file is replaced. ``.lem`` is a good
        extension.
    metadata : dict, optional
        Your own JSON-compatible notes (column names, data source); read
        them back with :func:`describe`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from latentem import PoissonHMM
    >>> from latentem.persistence import describe, load, save
    >>> X = np.random.default_rng(0).poisson(np.repeat([1.0, 9.0, 1.0], 100))[:, None]
    >>> model = PoissonHMM(2, n_iter=20, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "counts.lem")
    >>> save(model, path, metadata={"columns": ["count"]})
    >>> describe(path)["metadata"]
    {'columns': ['count']}
    >>> bool(np.array_equal(load(path).predict(X), model.predict(X)))
    True
    """
    from latentem import __version__

    name = _name_for(model)
    if name is None:
        raise ValueError(
            f"{type(model).__name__} objects cannot be saved; latentem saves "
            f"{_known_names()} and classes registered with register_family or register_class."
        )
    enc = _Encoder()
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "latentem_version": __version__,
        "numpy_version": np.__version__,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "class": name,
        "model": enc.encode(model, "model"),
        "metadata": enc.encode({} if metadata is None else dict(metadata), "metadata"),
    }
    # the arrays' shapes and dtypes, so that loading knows what to expect before reading them
    meta["arrays"] = {
        k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in enc.arrays.items()
    }
    text = json.dumps(meta, indent=1, allow_nan=False)
    buf = io.BytesIO()
    np.savez(buf, **enc.arrays)
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_META, text)
            zf.writestr(_ARRAYS, buf.getvalue())
        os.replace(tmp, path)  # never leave a half-written file under the real name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


#: Errors a tampered file can raise while its model is built and checked.
_BUILD_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    ArithmeticError,
    RecursionError,
)


def load(path: str | os.PathLike) -> Any:
    """Load a model saved by :func:`save` or ``model.save``.

    Loading is bounded and checked: the sizes, shapes and dtypes a file
    declares are read before anything they describe, a file that would
    inflate far beyond what it declares (a compression bomb), that holds
    nested archives, duplicate or path-like entries, or arrays that are not
    plain numbers is refused, and the parameters are checked as ``fit`` and
    ``set_params`` check them (probabilities on the simplex, positive-definite
    covariances, consistent sizes). See :doc:`model_files`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model
        An instance of the saved class, with the same parameters and fitted
        state: its predictions and scores equal the saved model's.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a latentem model file, is damaged, truncated or
        tampered with, breaks a limit, holds invalid parameters, was written
        in a newer format version, or names a class this latentem does not
        know. The message is one line.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> from latentem.persistence import load
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), "gmm.lem")
    >>> GaussianMixture(1).fit(X).save(path)
    >>> load(path).means_.shape
    (1, 2)
    """
    meta, arrays = _read(path)
    where = f"{os.fspath(path)} is not a readable latentem model file"
    try:
        model = _decode(meta.get("model"), arrays, set())
        # compare classes, not names: a class may be registered under an earlier name too
        # (files naming MissingGaussianFamily hold a GaussianFamily)
        named = meta.get("class")
        if not isinstance(named, str) or type(model) is not _class_for(named):
            raise ValueError(f"it says class {named!r} but holds another")
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"{where}: {_short(exc)}") from None
    except _BUILD_ERRORS as exc:
        raise ValueError(f"{where}: {_short(exc)}") from None
    return model


def describe(path: str | os.PathLike) -> dict:
    """What a model file holds, without building the model.

    The file is checked as :func:`load` checks it, but no array is kept in
    memory.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict
        ``class``, ``format_version``, ``latentem_version``, ``saved_at``,
        ``params`` (the constructor parameters, arrays shown by shape),
        ``metadata`` (what the saver passed) and ``arrays`` (name -> shape
        and dtype of every saved array).

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> from latentem.persistence import describe
    >>> path = os.path.join(tempfile.mkdtemp(), "gmm.lem")
    >>> GaussianMixture(2, covariance_type="diag").fit(np.arange(20.0).reshape(10, 2)).save(path)
    >>> info = describe(path)
    >>> info["class"], info["params"]["covariance_type"]
    ('GaussianMixture', 'diag')
    """
    meta, arrays = _read(path, keep=False)
    shapes = {
        k.split(":", 1)[-1]: {"shape": list(shape), "dtype": str(dtype)}
        for k, (shape, dtype) in arrays.items()
    }

    def shown(v: Any) -> Any:
        if isinstance(v, dict):
            if "$array" in v:
                return f"<array {str(v['$array']).split(':', 1)[-1]}>"
            if "$float" in v:
                return float(v["$float"]) if v["$float"] in ("nan", "inf", "-inf") else None
            if "$tuple" in v:
                items = v["$tuple"]
                return [shown(x) for x in items] if isinstance(items, list) else None
            return {k: shown(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shown(x) for x in v]
        return v

    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    metadata = meta.get("metadata", {})
    try:
        params, metadata = shown(model.get("params", {})), shown(metadata)
    except RecursionError:
        raise ValueError(f"{os.fspath(path)}: its {_META} is nested too deeply") from None
    return {
        "class": meta.get("class"),
        "format_version": meta["format_version"],
        "latentem_version": meta.get("latentem_version"),
        "saved_at": meta.get("saved_at"),
        "params": params if isinstance(params, dict) else {},
        "metadata": metadata if isinstance(metadata, dict) else {},
        "arrays": shapes,
    }
