"""Reading model files that may come from anyone: bounded, checked zip and ``.npy`` reading.

(Step one of splitting ``latentem/persistence.py`` into a package: this file
still holds the whole former module; the pieces move out next.)
"""

from __future__ import annotations

import collections
import datetime
import importlib
import io
import json
import math
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class _Spec:
    """How one class is saved: where it lives, its fitted attributes, its finishing step."""

    module: str
    name: str
    fitted: tuple[str, ...] = ()
    finish: str | None = None  # a method called after the attributes are restored
    skip_params: tuple[str, ...] = ()  # constructor parameters saved as fitted state


#: Classes a model file may name that are not in :mod:`latentem.registry`, by their
#: saved name. latentem's own classes register themselves where they are defined
#: (``@register``); this table is for entries added by hand.
SAVEABLE_CLASSES: dict[str, _Spec] = {}


def _spec(name: str) -> Any:
    """The saving recipe for ``name``: a registry entry or a :data:`SAVEABLE_CLASSES` spec."""
    from latentem import registry

    found = registry.entry(name)
    return found if found is not None else SAVEABLE_CLASSES.get(name)


def _known_names() -> str:
    from latentem import registry

    return ", ".join(sorted({e.name for e in registry.entries()} | set(SAVEABLE_CLASSES)))


#: Classes registered at run time by the program itself (never by a file).
_RUNTIME_CLASSES: dict[str, type] = {}


def register_class(cls: type, name: str | None = None) -> type:
    """Allow instances of ``cls`` (your own model or family) in model files.

    ``cls`` must have ``_to_state(self) -> dict`` and a class method
    ``_from_state(cls, state)``. The program that loads the file must
    register the same class under the same name first: files name classes,
    they never import them. Usable as a decorator.

    Parameters
    ----------
    cls : type
        The class.
    name : str, optional
        The name written into files; defaults to ``cls.__qualname__``.

    Returns
    -------
    cls

    Examples
    --------
    >>> import os, tempfile
    >>> from latentem.persistence import load, register_class, save
    >>> @register_class
    ... class Threshold:
    ...     def __init__(self, cut):
    ...         self.cut = cut
    ...     def _to_state(self):
    ...         return {"cut": self.cut}
    ...     @classmethod
    ...     def _from_state(cls, state):
    ...         return cls(state["cut"])
    >>> path = os.path.join(tempfile.mkdtemp(), "threshold.lem")
    >>> save(Threshold(2.5), path)
    >>> load(path).cut
    2.5
    """
    name = cls.__qualname__ if name is None else name
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}.")
    if _spec(name) is not None:
        raise ValueError(f"{name!r} is a latentem class name; register yours under another name.")
    if not (
        callable(getattr(cls, "_to_state", None)) and callable(getattr(cls, "_from_state", None))
    ):
        raise ValueError(
            f"{cls.__name__} needs _to_state(self) -> dict and a classmethod "
            "_from_state(cls, state) to be saved in model files."
        )
    _RUNTIME_CLASSES[name] = cls
    return cls


def _class_for(name: str) -> type:
    if name in _RUNTIME_CLASSES:
        return _RUNTIME_CLASSES[name]
    spec = _spec(name)
    if spec is None:
        raise ValueError(
            f"the model file names the class {name!r}, which this latentem does not know: "
            "if your program defined it, register the same class under the same name before "
            "loading (latentem.register_family for an emission family, "
            "latentem.persistence.register_class otherwise); it may also come from a newer "
            f"latentem. This one loads {_known_names()}."
        )
    cls = getattr(spec, "cls", None)
    return cls if cls is not None else getattr(importlib.import_module(spec.module), spec.name)


def _name_for(obj: Any) -> str | None:
    cls = type(obj)
    for name, registered in _RUNTIME_CLASSES.items():
        if cls is registered:
            return name
    from latentem import registry

    found = registry.entry_for(cls)
    if found is not None:
        return found.name
    spec = SAVEABLE_CLASSES.get(cls.__name__)
    if spec is not None and cls.__module__ == spec.module:
        return cls.__name__
    return None


# ---------------------------------------------------------------------- object <-> state
def _init_param_names(cls: type) -> list[str]:
    import inspect

    sig = inspect.signature(cls.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _object_state(obj: Any, name: str) -> dict:
    if name in _RUNTIME_CLASSES or callable(getattr(obj, "_to_state", None)):
        return {"state": obj._to_state()}
    spec = _spec(name)
    if callable(getattr(obj, "get_params", None)):
        params = dict(obj.get_params(deep=False))
    else:
        params = {p: getattr(obj, p) for p in _init_param_names(type(obj))}
    for p in spec.skip_params:
        params.pop(p, None)
    dropped = []
    rs = params.get("random_state")
    if rs is not None and not isinstance(rs, (int, np.integer)):
        # A Generator's state is not portable; the fitted parameters do not depend on it.
        params["random_state"] = None
        dropped.append("random_state")
    fitted = {}
    for a in spec.fitted:
        if a in vars(obj):
            fitted[a] = vars(obj)[a]
        elif isinstance(getattr(type(obj), a, None), property) and getattr(obj, a) is not None:
            fitted[a] = getattr(obj, a)  # held by a part (an HMM's chain)
    state = {"params": params, "fitted": fitted}
    if dropped:
        state["dropped"] = dropped
    return state


def _object_from_state(name: str, state: dict) -> Any:
    cls = _class_for(name)
    if "state" in state:
        obj = cls._from_state(state["state"])
        check = _LOAD_CHECKS.get(name) if name not in _RUNTIME_CLASSES else None
        if check is not None:
            check(obj)
        return obj
    spec = _spec(name)
    params, fitted = state.get("params"), state.get("fitted")
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ValueError(f"the entry for {name} lacks its params or fitted state")
    unknown = set(fitted) - set(spec.fitted)
    if unknown:
        raise ValueError(f"unexpected fitted attributes for {name}: {sorted(unknown)}")
    if name == "CategoricalLatent":  # its constructor allocates n_components weights
        _check_size(params.get("n_components"), "n_components", fitted.get("weights_"))
    try:
        obj = cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"the parameters saved for {name} do not fit this latentem: {exc}"
        ) from None
    for attr, value in fitted.items():
        setattr(obj, attr, value)
    if spec.finish is not None:
        _finish(obj, spec.finish)
    check = _LOAD_CHECKS.get(name)
    if check is not None:
        check(obj)
    return obj


# ---------------------------------------------------------------------- checks on load
def _check_size(value: Any, name: str, weights: Any = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if weights is not None and np.shape(weights)[:1] != (value,):
        raise ValueError(f"{name}={value} but the saved weights have shape {np.shape(weights)}")
    return int(value)


def _finite(name: str, value: Any, shape: tuple | None = None) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} has shape {a.shape} but the model's sizes need {tuple(shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def _simplex(name: str, value: Any, shape: tuple) -> None:
    a = _finite(name, value, shape)
    if a.size and ((a < 0).any() or not np.allclose(a.sum(axis=-1), 1.0, rtol=0, atol=1e-6)):
        rows = " along each row" if a.ndim > 1 else ""
        raise ValueError(f"{name} must be probabilities: non-negative and summing to 1{rows}")


def _covariances(name: str, cov: Any, covariance_type: Any, K: int, D: int) -> None:
    from latentem.families.gaussian import COVARIANCE_TYPES, covariance_shape

    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}")
    a = _finite(name, cov, covariance_shape(covariance_type, K, D))
    if covariance_type in ("full", "tied"):
        # one matrix at a time: memory stays at one matrix beyond the model's own
        for k, mat in enumerate(a if covariance_type == "full" else a[None]):
            which = f"{name}[{k}]" if covariance_type == "full" else name
            for i in range(0, D, 256):
                if not np.allclose(mat[i : i + 256], mat[:, i : i + 256].T):
                    raise ValueError(f"{which} must be symmetric")
            try:
                np.linalg.cholesky(mat)
            except np.linalg.LinAlgError:
                raise ValueError(f"{which} must be positive definite") from None
    elif not (a > 0).all():
        raise ValueError(f"{name} must be positive")


def _check_gaussian_family(fam: Any) -> None:
    """A Gaussian family's sizes, means and covariances, before its Cholesky factors."""
    K = _check_size(fam.n_components, "n_components")
    D = _check_size(fam.n_features, "n_features")
    _finite("means_", fam.means_, (K, D))
    _covariances("covariances_", fam.covariances_, fam.covariance_type, K, D)


def _check_mixture(model: Any) -> None:
    """A fitted mixture (GaussianMixture, EMImputer) through its public attributes."""
    from latentem.families.gaussian import covariance_shape

    model._check_settings()
    try:
        weights = model.weights_
    except AttributeError:  # not fitted: nothing more to check
        return
    K = _check_size(model.n_components, "n_components")
    D = _check_size(model.n_features_in_, "n_features_in_")
    _simplex("weights_", weights, (K,))
    _finite("means_", model.means_, (K, D))
    # positive definiteness was checked by the Gaussian family as it loaded
    _finite("covariances_", model.covariances_, covariance_shape(model.covariance_type, K, D))


def _check_imputer(imp: Any) -> None:
    _check_mixture(imp)
    if "_model" not in vars(imp):
        return
    D = int(imp.n_features_in_)
    for name in ("data_min_", "data_max_", "n_observed_"):
        a = np.asarray(getattr(imp, name))
        if a.shape != (D,) or np.isnan(a).any():
            raise ValueError(f"{name} must hold {D} numbers")
    if (np.asarray(imp.n_observed_) < 0).any():
        raise ValueError("n_observed_ must be non-negative")
    rows = imp._X_fit
    if rows is not None and (rows.ndim != 2 or rows.shape[1] != D or np.isinf(rows).any()):
        raise ValueError(f"the saved rows must be an (n, {D}) array without infinities")
    if not (isinstance(imp.ridge_, (int, float)) and math.isfinite(imp.ridge_) and imp.ridge_ >= 0):
        raise ValueError("ridge_ must be a finite number >= 0")


def _check_hmm(model: Any) -> None:
    """An HMM's emission parameters: finite, with the emission's number of features."""
    if model.startprob_ is None:
        return
    family = model.emission
    D = getattr(family, "n_features", None)
    if D is not None:
        D = _check_size(D, "n_features")
    from latentem.registry import entry_for

    found = entry_for(type(family))  # a saved family is registered, with its fitted arrays
    for attr in () if found is None else found.fitted:
        value = vars(family).get(attr)
        if value is None or attr == "n_features":
            continue
        a = _finite(attr, value)
        if attr == "means_" and D is not None and a.shape[-1] != D:
            raise ValueError(f"means_ has {a.shape[-1]} features but n_features is {D}")
    _finite("startprob_", model.startprob_)
    _finite("transmat_", model.transmat_)


def _check_graph(graph: Any) -> None:
    """Every latent node's part: shapes, finite values, probabilities on the simplex."""
    root = getattr(graph, "_root", None)
    if root is None or getattr(graph, "history_", None) is None:
        return
    for node in root.nodes():
        part = getattr(node, "part", None)
        if part is not None:
            try:
                part.check_params()
            except ValueError as exc:
                raise ValueError(f"node {node.name!r}: {exc}") from None


def _check_factor(model: Any) -> None:
    """Factor models: their settings, and finite parameters (weights on the simplex)."""
    model._check_settings()
    if "components_" not in vars(model):
        return
    for name in (
        "mean_",
        "means_",
        "components_",
        "noise_variance_",
        "factor_means_",
        "factor_covariances_",
    ):
        if vars(model).get(name) is not None:
            _finite(name, vars(model)[name])
    if vars(model).get("weights_") is not None:
        _simplex("weights_", model.weights_, (_check_size(model.n_components, "n_components"),))


#: Checks run on a loaded object, by saved class name, after its own finishing step.
_LOAD_CHECKS = {
    "GaussianMixture": _check_mixture,
    "EMImputer": _check_imputer,
    "ModelGraph": _check_graph,
    **{name: _check_factor for name in ("FactorAnalysis", "PPCA", "MixtureOfFactorAnalyzers")},
    "CategoricalLatent": lambda lat: _simplex("weights_", lat.weights_, (lat.n_components,)),
    **{
        name: _check_hmm
        for name in ("HMM", "GaussianHMM", "GMMHMM", "CategoricalHMM", "PoissonHMM")
    },
}


def _finish(obj: Any, method_name: str) -> None:
    """Rebuild derived state after loading, and check what the file gave us: the
    class's own ``method_name`` (``_finish_load``), else its ``check_params``."""
    method = getattr(obj, method_name, None)
    if not callable(method):
        method = getattr(obj, "check_params", None)
    if callable(method):
        method()


# ---------------------------------------------------------------------- tree encoding
class _Encoder:
    """JSON values stay; arrays go to ``arrays``; saveable objects nest."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.ndarray):
            if _plain_dtype(value.dtype) is None:
                raise ValueError(
                    f"cannot save {path}: arrays of dtype {value.dtype} are not portable; "
                    "model files hold arrays of numbers and booleans (save strings as a list)."
                )
            # entry names never look like paths, whatever the metadata's keys
            key = f"{len(self.arrays)}:{_UNSAFE_KEY.sub('_', path)}"
            self.arrays[key] = value
            return {"$array": key}
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str) or k.startswith("$"):
                    raise ValueError(
                        f"cannot save {path}: dictionary keys must be strings not starting "
                        f"with '$'; got {k!r}."
                    )
                out[k] = self.encode(v, f"{path}.{k}")
            return out
        name = _name_for(value)
        if name is None:
            raise ValueError(
                f"cannot save {path}: {type(value).__name__} objects are not saveable "
                f"(latentem saves {_known_names()}; register your own classes with "
                "latentem.register_family or latentem.persistence.register_class)."
            )
        state = _object_state(value, name)
        return {"$object": name, **self.encode(state, f"{path}<{name}>")}


def _decode(value: Any, arrays: Any, seen: set) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, seen) for v in value]
    if not isinstance(value, dict):
        return value
    if "$array" in value:
        key = value["$array"]
        if not isinstance(key, str) or key not in arrays:
            raise ValueError(f"array {key!r} is missing from {_ARRAYS}")
        if key in seen:
            raise ValueError(f"array {key!r} is used twice")
        seen.add(key)
        return arrays[key]
    if "$float" in value:
        text = value["$float"]
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {text!r}")
        return float(text)
    if "$tuple" in value:
        if not isinstance(value["$tuple"], list):
            raise ValueError("bad tuple entry")
        return tuple(_decode(v, arrays, seen) for v in value["$tuple"])
    if "$object" in value:
        name = value["$object"]
        if not isinstance(name, str):
            raise ValueError(f"bad class name {name!r}")
        rest = {k: _decode(v, arrays, seen) for k, v in value.items() if k != "$object"}
        return _object_from_state(name, rest)
    bad = [k for k in value if k.startswith("$")]
    if bad:
        raise ValueError(f"unknown entry {bad[0]!r} (written by a newer latentem?)")
    return {k: _decode(v, arrays, seen) for k, v in value.items()}


# ---------------------------------------------------------------------- files
def save(model: Any, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
    """Write ``model`` to a model file at ``path`` (see the module docstring).

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


def _path_like(name: str) -> bool:
    """Whether an entry name could address something other than itself (a path)."""
    return (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


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


def _array_refs(meta: dict) -> list[str]:
    """Every ``{"$array": key}`` in the meta data, in order (an iterative walk)."""
    refs, stack = [], [meta.get("model"), meta.get("metadata")]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            if "$array" in v:
                key = v["$array"]
                if not isinstance(key, str):
                    raise ValueError(f"bad array reference {key!r} in {_META}")
                refs.append(key)
            stack.extend(v.values())
    return refs


class _Entry:
    """Reads one zip entry as a stream, never past what its header declared."""

    def __init__(self, raw: Any, size: int, where: str) -> None:
        self.raw, self.left, self.where = raw, size, where

    def read(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise ValueError(
                f"{self.where}: {_ARRAYS} ends inside {what} (truncated or tampered with)"
            )
        data = self.raw.read(n)
        if len(data) != n:
            raise ValueError(f"{self.where}: {_ARRAYS} is truncated inside {what}")
        self.left -= n
        return data

    def fill(self, out: memoryview, what: str, crc: int) -> int:
        pos = 0
        while pos < len(out):
            chunk = self.read(min(_CHUNK, len(out) - pos), what)
            out[pos : pos + len(chunk)] = chunk
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        return crc

    def skip(self, n: int, what: str, crc: int) -> int:
        while n:
            chunk = self.read(min(_CHUNK, n), what)
            crc = zlib.crc32(chunk, crc)
            n -= len(chunk)
        return crc


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 1:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            break
        pos += 4 + size
    return usize, csize


def _npy_header(entry: _Entry, key: str) -> tuple[bytes, tuple, bool, np.dtype]:
    """(header bytes, shape, fortran_order, dtype) of one ``.npy`` entry, checked."""
    what = f"the header of array {key!r}"
    magic = entry.read(8, what)
    if magic[:6] != b"\x93NUMPY":
        raise ValueError(
            f"{entry.where}: entry {key!r} of {_ARRAYS} is not a NumPy array (nested archives "
            "and other files are refused)"
        )
    major = magic[6]
    if major not in (1, 2):
        raise ValueError(f"{entry.where}: array {key!r} has an unknown .npy version {major}")
    size_bytes = entry.read(2 if major == 1 else 4, what)
    (hlen,) = struct.unpack("<H" if major == 1 else "<I", size_bytes)
    if hlen > _MAX_NPY_HEADER:
        raise ValueError(
            f"{entry.where}: the header of array {key!r} declares {hlen} bytes, more than the "
            f"{_MAX_NPY_HEADER} a .npy header may have"
        )
    header = entry.read(hlen, what)
    reader = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran, dtype = reader(io.BytesIO(size_bytes + header), _MAX_NPY_HEADER)
    except Exception as exc:  # any failure to parse untrusted header text (tokenize, ast)
        raise ValueError(
            f"{entry.where}: the header of array {key!r} is damaged ({_short(exc)})"
        ) from None
    if _plain_dtype(dtype) is None:
        raise ValueError(
            f"{entry.where}: array {key!r} has dtype {dtype}; model files hold plain numbers "
            "and booleans only"
        )
    shape = _declared_shape(list(shape))
    if shape is None:
        raise ValueError(f"{entry.where}: array {key!r} declares a bad shape")
    return magic + size_bytes + header, shape, bool(fortran), np.dtype(dtype)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _read_arrays(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    expected: set,
    declared: dict | None,
    where: str,
    keep: bool,
) -> dict:
    """Stream ``arrays.npz``: each entry's declared shape and dtype are read and checked
    before its data, and the data go straight into an array of that shape, so memory
    stays within the declared bytes (plus one chunk)."""
    out: dict = {}
    with zf.open(info) as raw:
        entry = _Entry(raw, info.file_size, where)
        while True:
            sig = entry.read(4, "an entry's header")
            if sig in (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06"):  # the directory at the end
                break
            if sig != b"PK\x03\x04":
                raise ValueError(f"{where}: {_ARRAYS} is damaged (no entry header where expected)")
            fields = struct.unpack("<HHHHHIIIHH", entry.read(26, "an entry's header"))
            _, flags, method, _, _, crc, csize, usize, nlen, xlen = fields
            raw_name = entry.read(nlen, "an entry's name")
            extra = entry.read(xlen, "an entry's header")
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            if flags & 0x9 or method != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{where}: entry {name!r} of {_ARRAYS} is compressed, encrypted or streamed; "
                    "latentem writes plain .npy entries"
                )
            usize, csize = _zip64_sizes(extra, usize, csize)
            if _path_like(name):
                raise ValueError(f"{where}: {_ARRAYS} has an entry named like a path: {name!r}")
            key = name[:-4] if name.endswith(".npy") else None
            if key is None or key not in expected:
                raise ValueError(
                    f"{where}: {_ARRAYS} holds an unexpected entry {name!r} (its {_META} names "
                    "no such array)"
                )
            if key in out:
                raise ValueError(f"{where}: {_ARRAYS} holds the entry {name!r} twice")
            if csize != usize or usize > entry.left:
                raise ValueError(
                    f"{where}: entry {name!r} declares {usize} bytes but {_ARRAYS} has "
                    f"{min(csize, entry.left)} left (truncated or tampered with)"
                )
            head, shape, fortran, dtype = _npy_header(entry, key)
            hbytes = len(head)
            nbytes = math.prod(shape) * dtype.itemsize
            if hbytes + nbytes != usize:
                raise ValueError(
                    f"{where}: array {key!r} declares shape {shape} of {dtype} "
                    f"({nbytes} bytes) but its entry holds {usize - hbytes} bytes of data"
                )
            if declared is not None and declared[key] != (shape, dtype):
                raise ValueError(
                    f"{where}: array {key!r} is {dtype} {shape} but {_META} declares "
                    f"{declared[key][1]} {declared[key][0]}"
                )
            check = zlib.crc32(head)
            what = f"the data of array {key!r}"
            if keep:
                arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
                flat = (arr.T if fortran else arr).reshape(-1).view(np.uint8)
                check = entry.fill(memoryview(flat), what, check)
                out[key] = arr
            else:
                check = entry.skip(nbytes, what, check)
                out[key] = (shape, dtype)
            if check != crc:
                raise ValueError(f"{where}: array {key!r} is damaged (its checksum does not match)")
        missing = sorted(expected - set(out))
        if missing:
            raise ValueError(f"{where}: array {missing[0]!r} is missing from {_ARRAYS}")
        allowed = 512 + sum(128 + 2 * len(k) for k in out)
        if entry.left > allowed:
            raise ValueError(
                f"{where}: {_ARRAYS} holds {entry.left} bytes after its arrays (at most "
                f"{allowed} are expected)"
            )
        entry.read(entry.left, f"the end of {_ARRAYS}")  # to the end, so its checksum is checked
    return out


def _open_entries(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    for name in names:
        if _path_like(name):
            raise ValueError(f"{where}: it has an entry named like a path: {name!r}")
    counts = collections.Counter(names)
    twice = sorted(n for n, c in counts.items() if c > 1)
    if twice:
        raise ValueError(f"{where}: it holds the entry {twice[0]!r} twice")
    other = sorted(set(names) - {_META, _ARRAYS})
    if other:
        raise ValueError(
            f"{where}: it holds an unexpected entry {other[0]!r} (a model file holds {_META} "
            f"and {_ARRAYS} only; nested archives and other files are refused)"
        )
    if len(names) != 2:
        raise ValueError(f"{where}: it lacks {_META} or {_ARRAYS}")
    by_name = {i.filename: i for i in infos}
    for info in infos:
        if info.flag_bits & 0x1:
            raise ValueError(f"{where}: its entry {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(
                f"{where}: its entry {info.filename!r} uses a compression latentem does not "
                "write (stored or deflated only)"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise ValueError(f"{where}: its entry {info.filename!r} has inconsistent sizes")
        if info.compress_size > info.file_size + info.file_size // 100 + 1024:
            raise ValueError(
                f"{where}: its entry {info.filename!r} stores {info.compress_size} bytes for "
                f"{info.file_size} declared (deflate never grows data that much)"
            )
    return by_name


def _check_declared(meta: dict, refs: list[str], where: str) -> dict | None:
    """The ``arrays`` section of the meta data, checked against the references: key ->
    (shape, dtype). None for files written before the section existed."""
    table = meta.get("arrays")
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) != set(refs):
        raise ValueError(f"{where}: the arrays declared in {_META} do not match those it uses")
    declared = {}
    for key, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: bad declaration of array {key!r}")
        dtype, shape = _plain_dtype(entry.get("dtype")), _declared_shape(entry.get("shape"))
        if dtype is None:
            raise ValueError(
                f"{where}: array {key!r} is declared with dtype {entry.get('dtype')!r}; model "
                "files hold plain numbers and booleans only"
            )
        if shape is None:
            raise ValueError(f"{where}: array {key!r} is declared with a bad shape")
        declared[key] = (shape, dtype)
    return declared


def _read(path: str | os.PathLike, *, keep: bool = True) -> tuple[dict, dict]:
    """The checked meta data and the arrays (``keep=False``: their (shape, dtype) only).

    Every limit is checked from what the file declares before what it declares
    is read: the meta data's size, the arrays' total size against the arrays
    the meta data declares, and the compression ratio.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    where = f"{path} is not a readable latentem model file"
    if os.path.isdir(path):
        raise ValueError(f"{where}: it is a directory")
    try:
        with zipfile.ZipFile(path) as zf:
            entries = _open_entries(zf, where)
            info = entries[_META]
            if info.file_size > MAX_META_BYTES:
                raise ValueError(
                    f"{where}: its {_META} declares {info.file_size} bytes, more than the "
                    f"{MAX_META_BYTES} latentem reads"
                )
            with zf.open(info) as f:
                meta_bytes = f.read(MAX_META_BYTES + 1)
            meta = _parse_meta(meta_bytes, path, where)
            refs = _array_refs(meta)
            if len(set(refs)) != len(refs):
                raise ValueError(f"{where}: its {_META} uses one array twice")
            declared = _check_declared(meta, refs, where)
            info = entries[_ARRAYS]
            limit = max(MAX_COMPRESSION_RATIO * info.compress_size, info.compress_size + _ALLOWANCE)
            if info.file_size > limit:
                raise ValueError(
                    f"{where}: its {_ARRAYS} would inflate {info.compress_size} stored bytes to "
                    f"{info.file_size} (a compression bomb?); model files compress less"
                )
            if declared is not None:
                need = sum(math.prod(s) * d.itemsize for s, d in declared.values())
                need += 1024 + sum(_ENTRY_OVERHEAD + 2 * len(k) for k in declared)
                if info.file_size > need:
                    raise ValueError(
                        f"{where}: its {_ARRAYS} holds {info.file_size} bytes but the arrays "
                        f"its {_META} declares need at most {need}"
                    )
            arrays = _read_arrays(zf, info, set(refs), declared, where, keep)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        zlib.error,
        struct.error,
        NotImplementedError,
        UnicodeDecodeError,
        OverflowError,
    ) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{where}: it is not a zip archive (model files are written by model.save or "
                "'latentem fit'), or it is truncated"
            ) from None
        raise ValueError(f"{where} (damaged or truncated: {_short(exc)})") from None
    return meta, arrays


def _parse_meta(meta_bytes: bytes, path: str, where: str) -> dict:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        meta = json.loads(meta_bytes.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: {_META} is not valid JSON ({_short(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{where}: its {_META} does not say format {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{where}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        from latentem import __version__

        raise ValueError(
            f"{path} was written by latentem {str(meta.get('latentem_version', '?'))[:40]} in "
            f"model-file format version {version}; this latentem ({__version__}) reads versions "
            f"up to {FORMAT_VERSION}. Upgrade latentem to load it."
        )
    if not isinstance(meta.get("class"), str):
        raise ValueError(f"{where}: its {_META} names no class")
    return meta


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
        if _name_for(model) != meta.get("class"):
            raise ValueError(f"it says class {meta.get('class')!r} but holds another")
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


class SaveMixin:
    """Gives an estimator ``save(path, metadata=None)``; see :func:`save`.

    Examples
    --------
    >>> from latentem import GaussianMixture
    >>> from latentem.persistence import SaveMixin
    >>> issubclass(GaussianMixture, SaveMixin)
    True
    """

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
        """Write this model to a model file (JSON metadata + ``.npz`` arrays; no pickle).

        Load it back with ``latentem.persistence.load(path)``; see
        :func:`latentem.persistence.save` for the parameters.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from latentem import GaussianMixture
        >>> from latentem.persistence import load
        >>> X = np.random.default_rng(1).normal(size=(40, 1))
        >>> path = os.path.join(tempfile.mkdtemp(), "one.lem")
        >>> GaussianMixture(1).fit(X).save(path)
        >>> type(load(path)).__name__
        'GaussianMixture'
        """
        save(self, path, metadata=metadata)
