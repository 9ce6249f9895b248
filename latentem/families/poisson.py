"""Poisson emissions: each component has one rate per feature (independent counts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.base import EmissionFamily, register_family
from latentem.kernels.discrete import masked_weighted_sums, poisson_logprob

__all__ = ["PoissonFamily"]


@register_family(cli="poisson")
class PoissonFamily(EmissionFamily):
    """K products of independent Poisson distributions over n_features counts.

    NaN marks a missing count: it adds nothing to the log-density or the
    statistics.

    Counts may be any non-negative real numbers, not only whole ones (scaled
    counts, expected counts, exposures): their term is the Poisson log-density
    ``x log l - l - log Gamma(x + 1)``, defined for every ``x >= 0``, which is
    the quasi-likelihood of statsmodels' Poisson GLM and scikit-learn's
    ``PoissonRegressor``. The M-step (the weighted mean) is the same either
    way; for whole numbers the scores are exact log-probabilities (hmmlearn's
    ``PoissonHMM`` takes whole numbers only).

    Parameters
    ----------
    n_components : int
    lambdas_prior, lambdas_weight : float
        Gamma prior on the rates, as in hmmlearn: the M-step gives
        ``(lambdas_prior + sum w x) / (lambdas_weight + sum w)``; zeros give
        maximum likelihood.
    """

    param_letters = "l"
    nonnegative = True  # counts
    #: The attribute behind each letter (the HMM checks which are set).
    param_attributes = {"l": "lambdas_"}
    #: Parameters in the flat vector used by SQUAREM (see latentem.graph).
    vector_attributes = ("lambdas_",)

    def __init__(self, n_components: int, lambdas_prior=0.0, lambdas_weight=0.0):
        self.n_components = n_components
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight
        self.lambdas_: np.ndarray | None = None

    def validate_data(self, X: Any) -> np.ndarray:
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(f"Poisson data must be (n_samples, n_features); got {arr.shape}.")
        if arr.dtype.kind not in "iufb":
            raise ValueError(f"Poisson data must be counts; got dtype {arr.dtype}.")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        observed = arr[~np.isnan(arr)]
        if np.isinf(observed).any():
            raise ValueError("Poisson data contain inf; counts must be finite (NaN = missing).")
        if (observed < 0).any():
            raise ValueError(
                "Negative values in data passed to a Poisson model: counts must be >= 0 "
                "(NaN marks a missing count)."
            )
        return arr

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        if "l" in letters:
            mean = np.nanmean(X, axis=0)
            mean = np.where(np.isnan(mean), 1.0, np.maximum(mean, 1e-3))
            # Spread the states around the column means so they can separate.
            self.lambdas_ = mean * rng.gamma(4.0, 0.25, size=(self.n_components, X.shape[1]))

    def check_params(self) -> None:
        if self.lambdas_ is None:
            raise ValueError("lambdas_ is not set; fit the model or set it first.")
        lam = np.asarray(self.lambdas_, dtype=np.float64)
        if lam.ndim != 2 or lam.shape[0] != self.n_components:
            raise ValueError(
                f"lambdas_ must have shape (n_components={self.n_components}, n_features); "
                f"got {lam.shape}."
            )
        if not (np.isfinite(lam).all() and (lam > 0).all()):
            raise ValueError("lambdas_ must be positive and finite.")
        self.lambdas_ = lam

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != self.lambdas_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the model has {self.lambdas_.shape[1]}."
            )
        return poisson_logprob(X, self.lambdas_)

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> dict:
        post, obs = masked_weighted_sums(X, weights)
        return {"post": post, "obs": obs}

    def m_step(self, stats: dict, letters: str) -> None:
        if "l" in letters:
            den = self.lambdas_weight + stats["post"]
            has_mass = den > 0
            new = (self.lambdas_prior + stats["obs"]) / np.where(has_mass, den, 1.0)
            # A zero rate would make log(rate) -inf; a state without mass keeps its rates.
            self.lambdas_ = np.where(has_mass, np.maximum(new, 1e-10), self.lambdas_)

    def log_prior(self) -> float:
        """Gamma log-prior of the rates, ``sum(lambdas_prior log l - lambdas_weight l)``."""
        lam = self.lambdas_
        return float(np.sum(self.lambdas_prior * np.log(lam) - self.lambdas_weight * lam))

    def n_parameters(self) -> int:
        return int(self.lambdas_.size)

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.lambdas_[states]).astype(np.float64)
