"""The consistency checks run on an object once a model file has rebuilt it: sizes,
finite values, probabilities on the simplex, positive-definite covariances. A class
asks for them itself: after its registry entry's finishing step (:func:`_finish`),
loading calls the object's ``_check_loaded()`` if it has one (GaussianMixture's runs
:func:`_check_mixture`, every HMM's :func:`_check_hmm`, ...), so a new model
declares its checks where it is defined, not in a list here. Which arrays must be
finite comes from the class's registry entry (:func:`_check_fitted`); the per-class
checks add only what is model-specific. A tampered file fails here with a one-line
ValueError instead of giving a model that breaks later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np


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


#: Fitted attributes that record the fit (sizes, iterations, scores) rather than
#: hold parameters; the registry-driven check below leaves them to the model.
_RECORDS = frozenset(
    {
        "n_features",
        "n_features_in_",
        "converged_",
        "n_iter_",
        "history_",
        "loglike_",
        "lower_bound_",
        "lower_bounds_",
        "best_init_",
        "empty_states_",
    }
)


def _check_fitted(obj: Any, each: Callable[[str, np.ndarray], None] | None = None) -> None:
    """The generic part of the load checks, driven by the registry rather than by a
    list per class: every fitted parameter that ``obj``'s registry entry declares
    (``fitted=``, less the records of the fit) and ``obj`` holds must be finite real
    numbers. ``each(name, array)`` adds a model's own check, run as each one passes."""
    from latentem.registry import entry_for

    found = entry_for(type(obj))
    for attr in () if found is None else found.fitted:
        value = vars(obj).get(attr)
        if value is None or attr in _RECORDS:
            continue
        a = _finite(attr, value)
        if each is not None:
            each(attr, a)


def _check_hmm(model: Any) -> None:
    """An HMM's emission parameters: finite, with the emission's number of features."""
    if model.startprob_ is None:
        return
    family = model.emission
    D = getattr(family, "n_features", None)
    if D is not None:
        D = _check_size(D, "n_features")

    def same_features(attr: str, a: np.ndarray) -> None:
        if attr == "means_" and D is not None and a.shape[-1] != D:
            raise ValueError(f"means_ has {a.shape[-1]} features but n_features is {D}")

    _check_fitted(family, same_features)  # a saved family is registered
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
    _check_fitted(model)  # the arrays its registry entry declares
    if vars(model).get("weights_") is not None:
        _simplex("weights_", model.weights_, (_check_size(model.n_components, "n_components"),))


def _check_loaded(obj: Any) -> None:
    """Run the object's own ``_check_loaded()``, if its class defines one."""
    check = getattr(obj, "_check_loaded", None)
    if callable(check):
        check()


def _finish(obj: Any, method_name: str) -> None:
    """Rebuild derived state after loading, and check what the file gave us: the
    class's own ``method_name`` (``_finish_load``), else its ``check_params``."""
    method = getattr(obj, method_name, None)
    if not callable(method):
        method = getattr(obj, "check_params", None)
    if callable(method):
        method()
