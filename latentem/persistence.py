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
is looked up in :data:`SAVEABLE_CLASSES` (and in classes the running program
registered with :func:`register_class`), and anything else is an error. So
loading a file from an untrusted source cannot run code.

A class takes part in one of two ways:

* declaratively, by an entry in :data:`SAVEABLE_CLASSES` naming the
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

from __future__ import annotations

import datetime
import importlib
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
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


@dataclass(frozen=True)
class _Spec:
    """How one class is saved: where it lives, its fitted attributes, its finishing step."""

    module: str
    name: str
    fitted: tuple[str, ...] = ()
    finish: str | None = None  # a method called after the attributes are restored
    skip_params: tuple[str, ...] = ()  # constructor parameters saved as fitted state


_HMM_FITTED = ("emission", "startprob_", "transmat_", "converged_", "n_iter_", "history_")

#: The classes a model file may name, by their saved name. Adding a model to
#: the format is one entry here (or ``_to_state``/``_from_state`` methods).
SAVEABLE_CLASSES: dict[str, _Spec] = {
    # mixtures
    "GaussianMixture": _Spec(
        "latentem.models.gaussian_mixture",
        "GaussianMixture",
        (
            "n_features_in_",
            "_family",
            "_latent",
            "converged_",
            "n_iter_",
            "history_",
            "lower_bound_",
            "lower_bounds_",
            "best_init_",
        ),
    ),
    # hidden Markov models
    **{
        name: _Spec(
            "latentem.models.hmm",
            name,
            _HMM_FITTED + ("empty_states_",),
            "_finish_load",
            ("emission",),
        )
        for name in ("HMM", "GaussianHMM", "GMMHMM", "CategoricalHMM", "PoissonHMM")
    },
    # factor models (continuous latent variables)
    **{
        name: _Spec(
            "latentem.models.factor",
            name,
            (
                "n_features_in_",
                "mean_",
                "components_",
                "noise_variance_",
                "converged_",
                "n_iter_",
                "history_",
                "loglike_",
                "lower_bound_",
            ),
            "_finish_factor",
        )
        for name in ("FactorAnalysis", "PPCA")
    },
    "MixtureOfFactorAnalyzers": _Spec(
        "latentem.models.factor",
        "MixtureOfFactorAnalyzers",
        (
            "n_features_in_",
            "weights_",
            "means_",
            "components_",
            "noise_variance_",
            "factor_means_",
            "factor_covariances_",
            "converged_",
            "n_iter_",
            "history_",
            "loglike_",
            "lower_bound_",
        ),
        "_finish_factor",
    ),
    # compositions (saved through their own _to_state / _from_state)
    "ModelGraph": _Spec("latentem.graph", "ModelGraph"),
    "EMImputer": _Spec("latentem.models.imputer", "EMImputer"),
    "MarkovRegression": _Spec("latentem.models.regime", "MarkovRegression"),
    "MarkovAutoregression": _Spec("latentem.models.regime", "MarkovAutoregression"),
    # parts: latent structures and emission families
    "CategoricalLatent": _Spec("latentem.models.categorical", "CategoricalLatent", ("weights_",)),
    "GaussianFamily": _Spec(
        "latentem.families.gaussian", "GaussianFamily", ("means_", "covariances_"), "_finish_load"
    ),
    "MissingGaussianFamily": _Spec(
        "latentem.families.gaussian_missing",
        "MissingGaussianFamily",
        ("means_", "covariances_", "grouped"),
        "_finish_load",
    ),
    "GaussianEmission": _Spec(
        "latentem.families.gaussian_hmm",
        "GaussianEmission",
        ("n_features", "means_", "covariances_"),
        "_finish_load",
    ),
    "GaussianMixtureEmission": _Spec(
        "latentem.families.gaussian_mixture_emission",
        "GaussianMixtureEmission",
        ("n_features", "weights_", "means_", "covars_"),
        "_finish_load",
    ),
    "CategoricalFamily": _Spec(
        "latentem.families.categorical", "CategoricalFamily", ("emissionprob_",), "_finish_load"
    ),
    "PoissonFamily": _Spec(
        "latentem.families.poisson", "PoissonFamily", ("lambdas_",), "_finish_load"
    ),
}

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
    if name in SAVEABLE_CLASSES:
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
    spec = SAVEABLE_CLASSES.get(name)
    if spec is None:
        raise ValueError(
            f"the model file names the class {name!r}, which this latentem cannot load "
            f"(it loads {', '.join(sorted(SAVEABLE_CLASSES))}); it may come from a newer "
            "latentem, or from a program that registered its own classes with register_class."
        )
    return getattr(importlib.import_module(spec.module), spec.name)


def _name_for(obj: Any) -> str | None:
    cls = type(obj)
    for name, registered in _RUNTIME_CLASSES.items():
        if cls is registered:
            return name
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
    spec = SAVEABLE_CLASSES[name]
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
    fitted = {a: vars(obj)[a] for a in spec.fitted if a in vars(obj)}
    state = {"params": params, "fitted": fitted}
    if dropped:
        state["dropped"] = dropped
    return state


def _object_from_state(name: str, state: dict) -> Any:
    cls = _class_for(name)
    if "state" in state:
        return cls._from_state(state["state"])
    spec = SAVEABLE_CLASSES[name]
    params, fitted = state.get("params"), state.get("fitted")
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ValueError(f"the entry for {name} lacks its params or fitted state")
    try:
        obj = cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"the parameters saved for {name} do not fit this latentem: {exc}"
        ) from None
    unknown = set(fitted) - set(spec.fitted)
    if unknown:
        raise ValueError(f"unexpected fitted attributes for {name}: {sorted(unknown)}")
    for attr, value in fitted.items():
        setattr(obj, attr, value)
    if spec.finish is not None:
        getattr(_Finishers, spec.finish)(obj)
    return obj


class _Finishers:
    """Rebuild derived state after loading, and check what the file gave us."""

    @staticmethod
    def _finish_load(obj: Any) -> None:
        from latentem.models.hmm import HMM

        if isinstance(obj, HMM):
            if "startprob_" in vars(obj):
                obj._check_settings()
                obj._check_params()
        elif callable(getattr(obj, "check_params", None)):  # HMM emission families
            names = ("means_", "covariances_", "covars_", "weights_", "emissionprob_", "lambdas_")
            if any(getattr(obj, a, None) is not None for a in names):
                obj.check_params()
        elif "means_" in vars(obj):  # Gaussian families: Cholesky factors from covariances
            obj.set_parameters(obj.means_, obj.covariances_)

    @staticmethod
    def _finish_factor(obj: Any) -> None:
        if "components_" in vars(obj):  # fitted: rebuild and check the covariances
            obj._finish_load()


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
            if value.dtype.hasobject or value.dtype.kind not in "biufcUS":
                raise ValueError(
                    f"cannot save {path}: arrays of dtype {value.dtype} are not portable; "
                    "only numbers, booleans and strings are saved."
                )
            key = f"{len(self.arrays)}:{path}"
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
                f"(latentem saves {', '.join(sorted(SAVEABLE_CLASSES))}; register your own "
                "classes with latentem.persistence.register_class)."
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
        seen.add(key)
        return arrays[key]
    if "$float" in value:
        text = value["$float"]
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {text!r}")
        return float(text)
    if "$tuple" in value:
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
            f"{', '.join(sorted(SAVEABLE_CLASSES))} and classes registered with register_class."
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


def _read(path: str | os.PathLike) -> tuple[dict, bytes]:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    where = f"{path} is not a readable latentem model file"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _META not in names or _ARRAYS not in names:
                raise ValueError(f"{where}: it lacks {_META} or {_ARRAYS}")
            meta_bytes = zf.read(_META)
            arrays_bytes = zf.read(_ARRAYS)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{where}: it is not a zip archive (model files are written by model.save or "
                "'latentem fit'), or it is truncated"
            ) from None
        raise ValueError(f"{where} (damaged or truncated: {exc})") from None
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: {_META} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{where}: its {_META} does not say format {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{where}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        from latentem import __version__

        raise ValueError(
            f"{path} was written by latentem {meta.get('latentem_version', '?')} in model-file "
            f"format version {version}; this latentem ({__version__}) reads versions up to "
            f"{FORMAT_VERSION}. Upgrade latentem to load it."
        )
    return meta, arrays_bytes


def load(path: str | os.PathLike) -> Any:
    """Load a model saved by :func:`save` or ``model.save``.

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
        If the file is not a latentem model file, is damaged or truncated,
        was written in a newer format version, or names a class this
        latentem does not know.

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
    meta, arrays_bytes = _read(path)
    where = f"{os.fspath(path)} is not a readable latentem model file"
    try:
        with np.load(io.BytesIO(arrays_bytes), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{where}: {_ARRAYS} is damaged ({exc})") from None
    try:
        model = _decode(meta.get("model"), arrays, set())
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if _name_for(model) != meta.get("class"):
        raise ValueError(f"{where}: it says class {meta.get('class')!r} but holds another")
    return model


def describe(path: str | os.PathLike) -> dict:
    """What a model file holds, without building the model.

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
    meta, arrays_bytes = _read(path)
    try:
        with np.load(io.BytesIO(arrays_bytes), allow_pickle=False) as npz:
            shapes = {}
            for k in npz.files:
                a = npz[k]
                shapes[k.split(":", 1)[-1]] = {"shape": list(a.shape), "dtype": str(a.dtype)}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{os.fspath(path)}: {_ARRAYS} is damaged ({exc})") from None

    def shown(v: Any) -> Any:
        if isinstance(v, dict):
            if "$array" in v:
                return f"<array {v['$array'].split(':', 1)[-1]}>"
            if "$float" in v:
                return float(v["$float"])
            if "$tuple" in v:
                return [shown(x) for x in v["$tuple"]]
            return {k: shown(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shown(x) for x in v]
        return v

    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    return {
        "class": meta.get("class"),
        "format_version": meta["format_version"],
        "latentem_version": meta.get("latentem_version"),
        "saved_at": meta.get("saved_at"),
        "params": shown(model.get("params", {})),
        "metadata": shown(meta.get("metadata", {})),
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
