"""Input checks shared by every model: clear errors, never in-place changes."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["check_array", "check_random_state", "check_positive_int", "check_mixture_settings"]


def all_finite(arr: np.ndarray) -> bool:
    """True when every entry of a float array is finite, read in one pass with no
    temporary mask: a NaN or inf makes the sum non-finite. (A sum that overflows
    says False for finite data; callers then look closer.)"""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(arr, axis=None)))


def check_array(
    X: Any,
    *,
    name: str = "X",
    allow_nan: bool = False,
    min_samples: int = 1,
    min_features: int = 1,
    one_d_as_column: bool = True,
    return_finite: bool = False,
) -> Any:
    """Return X as a C-contiguous 2-D float64 or float32 array, or raise ValueError.

    float32 input stays float32; everything else numeric becomes float64.
    A 1-D array is read as n samples of one feature. The result may share
    memory with X: callers must not write into it. ``return_finite`` also
    returns whether every entry is finite (with ``allow_nan``: X has no NaN),
    known from the same pass over X.
    """
    if hasattr(X, "dtypes") and hasattr(X, "columns"):  # a DataFrame
        bad = [str(c) for c, t in zip(X.columns, X.dtypes) if not np.issubdtype(t, np.number)]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {bad}; drop them or encode them as numbers."
            )
        X = X.to_numpy()
    arr = as_numeric_array(X, name=name, one_d_as_column=one_d_as_column)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got an array with "
            f"{arr.ndim} dimensions and shape {arr.shape}."
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"Found array with {arr.shape[0]} sample(s) (shape={arr.shape}) while a minimum of "
            f"{min_samples} is required: {name} needs at least {min_samples} rows."
        )
    if arr.shape[1] < min_features:
        raise ValueError(
            f"Found array with {arr.shape[1]} feature(s) (shape={arr.shape}) while a minimum of "
            f"{min_features} is required: {name} needs at least {min_features} columns."
        )
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if all_finite(arr):  # the common case, in one pass without a temporary mask
        return (arr, True) if return_finite else arr
    finite = bool(np.isfinite(arr).all())  # only a sum that overflowed gets here finite
    if allow_nan:
        if not finite and np.isinf(arr).any():
            raise ValueError(f"{name} contains inf; replace it with a finite value or NaN.")
    elif not finite:
        kind = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(
            f"{name} contains {kind}; this model needs finite values. Remove or impute those "
            "rows first (latentem's imputers handle missing values)."
        )
    return (arr, finite) if return_finite else arr


def as_numeric_array(X: Any, *, name: str = "X", one_d_as_column: bool = False) -> np.ndarray:
    """X as a real numeric array (not yet 2-D checked), or a ValueError with
    scikit-learn's wording: sparse, object holding non-numbers, text, complex, 1-D."""
    if _is_sparse(X):
        raise ValueError(
            f"{name} is a sparse matrix: sparse input is not supported; convert with "
            f"{name}.toarray()."
        )
    arr = np.asarray(X)
    if arr.dtype == object:  # numbers held as Python objects are still numbers
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise NonNumericError(
                f"{name} must be numeric; got an array of dtype object holding non-numbers ({exc})."
            ) from None
    if not (np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must be numeric; got an array of dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} must be real-valued.")
    if arr.ndim == 1 and one_d_as_column:
        arr = arr.reshape(-1, 1)
    if arr.ndim == 1:  # scikit-learn's message, which users and its checks know
        raise ValueError(
            f"Expected 2D array, got 1D array instead: {name} has shape {arr.shape}. Reshape "
            "your data either using array.reshape(-1, 1) if your data has a single feature or "
            "array.reshape(1, -1) if it contains a single sample."
        )
    return arr


class NonNumericError(ValueError, TypeError):
    """X holds things that are not numbers. A ValueError like every bad input;
    also a TypeError, as NumPy's own conversion error is."""


def _is_sparse(X: Any) -> bool:
    # scipy.sparse matrices and arrays, without importing scipy
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "toarray")


def check_random_state(random_state: Any) -> np.random.Generator:
    """Turn None, an int, a SeedSequence or a Generator into a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise ValueError(
        "random_state must be None, an int, a numpy Generator or SeedSequence; "
        f"got {random_state!r}."
    )


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return value as int if it is an integer >= minimum, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)


def check_mixture_settings(model: Any) -> None:
    """The settings every Gaussian-mixture estimator shares: positive integer
    ``n_components``, ``max_iter`` and ``n_init``, and a known ``covariance_type``."""
    from latentem.families.gaussian import COVARIANCE_TYPES

    check_positive_int(model.n_components, "n_components")
    check_positive_int(model.max_iter, "max_iter")
    check_positive_int(model.n_init, "n_init")
    if model.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {model.covariance_type!r}."
        )
