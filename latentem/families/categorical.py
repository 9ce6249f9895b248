"""Categorical emissions: each component is a distribution over n_features symbols."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.base import (
    EmissionFamily,
    dirichlet_log_prior,
    dirichlet_m_step,
    register_family,
)
from latentem.kernels.discrete import categorical_accumulate, categorical_logprob

__all__ = ["CategoricalFamily"]


@register_family(cli="categorical")
class CategoricalFamily(EmissionFamily):
    """K categorical distributions over the symbols 0 .. n_features - 1.

    Data are one symbol per row, as an integer array of shape (n,) or (n, 1);
    -1 (or NaN in a float array) marks a missing observation; other negative
    numbers are an error.

    Parameters
    ----------
    n_components : int
    n_features : int or None
        Number of symbols; inferred from the data (largest symbol + 1) if None.
    emissionprob_prior : float or array (K, n_features)
        Dirichlet pseudo-count: the M-step uses ``max(prior - 1 + counts, 0)``
        (hmmlearn's rule); 1.0 means maximum likelihood.
    """

    nonnegative, missing_code, codes = True, -1.0, True  # symbols; -1 marks a gap
    param_letters = "e"
    #: The attribute behind each letter (the HMM checks which are set).
    param_attributes = {"e": "emissionprob_"}
    #: Parameters in the flat vector used by SQUAREM; rows of a simplex are renormalised.
    vector_attributes = ("emissionprob_",)
    simplex_attributes = ("emissionprob_",)

    def __init__(self, n_components: int, n_features: int | None = None, emissionprob_prior=1.0):
        self.n_components = n_components
        self.n_features = n_features
        self.emissionprob_prior = emissionprob_prior
        self.emissionprob_: np.ndarray | None = None

    def validate_data(self, X: Any) -> np.ndarray:
        arr = np.asarray(X)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                "categorical data must be one symbol per row, shape (n,) or (n, 1); "
                f"got shape {np.shape(X)}."
            )
        if arr.dtype.kind == "f":
            if np.isinf(arr).any():
                raise ValueError("categorical data contain inf; use NaN or -1 for missing.")
            observed = arr[~np.isnan(arr)]
            if (observed != np.round(observed)).any():
                raise ValueError("categorical symbols must be whole numbers 0, 1, 2, ...")
            arr = np.where(np.isnan(arr), -1, arr).astype(np.int64)
        elif arr.dtype.kind in "iub":
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"categorical symbols must be integers; got dtype {arr.dtype}.")
        if arr.size and arr.min() < -1:
            raise ValueError(
                f"Negative values in data: categorical symbols must be 0, 1, 2, ..., with -1 "
                f"(or NaN) for a missing "
                f"observation; got {int(arr.min())}. Recode the symbols from 0."
            )
        if self.n_features is not None and arr.size and arr.max() >= self.n_features:
            raise ValueError(
                f"symbol {int(arr.max())} is out of range for n_features={self.n_features} "
                "(symbols are 0 .. n_features - 1)."
            )
        return arr

    def _n_symbols(self, X: np.ndarray) -> int:
        if self.n_features is None:
            self.n_features = int(max(X.max(), 0)) + 1
        return self.n_features

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        n_symbols = self._n_symbols(X)
        if "e" in letters:
            probs = rng.random((self.n_components, n_symbols))
            self.emissionprob_ = probs / probs.sum(axis=1, keepdims=True)

    def check_params(self) -> None:
        if self.emissionprob_ is None:
            raise ValueError("emissionprob_ is not set; fit the model or set it first.")
        p = np.asarray(self.emissionprob_, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] != self.n_components:
            raise ValueError(
                f"emissionprob_ must have shape (n_components={self.n_components}, n_features); "
                f"got {p.shape}."
            )
        if self.n_features is None:
            self.n_features = p.shape[1]
        if p.shape[1] != self.n_features:
            raise ValueError(
                f"emissionprob_ has {p.shape[1]} symbols but n_features is {self.n_features}."
            )
        if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0):
            raise ValueError("each row of emissionprob_ must be non-negative and sum to 1.")
        self.emissionprob_ = p

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_e = np.log(self.emissionprob_)
        return categorical_logprob(X, np.ascontiguousarray(log_e))

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> dict:
        return {"obs": categorical_accumulate(X, weights, self.n_features)}

    def m_step(self, stats: dict, letters: str) -> None:
        if "e" in letters:
            self.emissionprob_ = dirichlet_m_step(
                stats["obs"], self.emissionprob_prior, self.emissionprob_
            )

    def log_prior(self) -> float:
        """Dirichlet log-prior of the emission probabilities (0 for prior 1)."""
        return dirichlet_log_prior(self.emissionprob_, self.emissionprob_prior)

    def n_parameters(self) -> int:
        return self.n_components * (self.n_features - 1)

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(self.emissionprob_, axis=1)
        u = rng.random(len(states))
        return (u[:, None] > cum[states]).sum(axis=1).reshape(-1, 1)
