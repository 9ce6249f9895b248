"""Gaussian-mixture emissions: each of K states emits from its own mixture of M Gaussians.

Built on one :class:`~latentem.families.gaussian.GaussianFamily` with K * M components (state k
owns components k*M .. k*M + M - 1), so the fast kernels and the handling of
gaps carry over. Layouts follow hmmlearn's ``GMMHMM``: ``weights_`` (K, M),
``means_`` (K, M, D), ``covars_`` (K, M, D, D) full, (K, M, D) diag, (K, M)
spherical, (K, D, D) tied (the components of a state share one matrix).
Parameter letters: ``w`` weights, ``m`` means, ``c`` covariances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._numeric import logsumexp
from latentem._validation import check_array
from latentem.families.base import (
    EmissionFamily,
    dirichlet_log_prior,
    dirichlet_m_step,
    register_family,
)
from latentem.families.gaussian import COVARIANCE_TYPES, GaussianFamily
from latentem.families.gaussian_hmm import initial_covariance
from latentem.families.gaussian_priors import DiagonalShrinkage
from latentem.kernels.kmeans import kmeans_plusplus, lloyd

__all__ = ["GaussianMixtureEmission"]

_EPS10 = 10.0 * np.finfo(np.float64).eps
#: Pseudo-observations of the covariance prior (see ``min_covar``).
_PSEUDO_COUNT = 0.01


def _kmeans(rows: np.ndarray, k: int, rng: np.random.Generator) -> tuple:
    """k-means++ then Lloyd: ``(centres, labels)``."""
    uniforms = rng.random((max(k - 1, 0), 2 + int(np.log(k))))
    idx = kmeans_plusplus(rows, k, int(rng.integers(len(rows))), uniforms)
    centres, labels, _ = lloyd(rows, np.ascontiguousarray(rows[idx]), 100)
    return centres, labels


def _nested_centres(rows: np.ndarray, K: int, M: int, rng: np.random.Generator) -> np.ndarray:
    """Initial means (K, M, D), as hmmlearn's GMMHMM starts: k-means for the K states,
    then k-means for the M components within the rows of each state (a state with
    fewer than M rows spreads its components over all rows)."""
    centres, labels = _kmeans(rows, K, rng)
    means = np.empty((K, M, rows.shape[1]))
    for k in range(K):
        mine = np.ascontiguousarray(rows[labels == k])
        if len(mine) < M:
            mine = rows
        means[k] = _kmeans(mine, M, rng)[0]
    return means


@register_family(fitted=("n_features", "weights_", "means_", "covars_"), cli="gmm")
class GaussianMixtureEmission(EmissionFamily):
    """K states, each a mixture of ``n_mix`` Gaussians (see the module docstring).

    Parameters
    ----------
    n_components : int
        Number of states K.
    n_mix : int
        Gaussians per state M.
    covariance_type : {"full", "diag", "spherical", "tied"}
    min_covar : float
        The scale ``lambda`` of an inverse-Wishart prior on every covariance:
        ``a = 0.01`` pseudo-observations with scatter ``lambda * I``, i.e.
        ``-a/2 log|cov| - lambda/2 tr(inv(cov))`` in the log-density. The
        M-step gives ``(n * ML + lambda * I) / (n + a)`` for a component with
        posterior mass ``n``: about ``ML + lambda / n`` (a single point gets
        about ``lambda``), a negligible shrinkage, and a finite ``lambda / a``
        for an empty component. :meth:`log_prior` counts the same term, so
        the objective EM maximises (log-likelihood plus log-prior) never
        decreases. 0 gives maximum likelihood. Also added to the data
        covariance that initialises ``covars_``.
    weights_prior : float
        Dirichlet pseudo-count on the mixture weights (1.0: maximum likelihood).
    """

    param_letters = "wmc"
    #: The attribute behind each letter (the HMM checks which are set).
    param_attributes = {"w": "weights_", "m": "means_", "c": "covars_"}
    #: Parameters in the flat vector used by SQUAREM; rows of a simplex are renormalised.
    vector_attributes = ("weights_", "means_", "covars_")
    simplex_attributes = ("weights_",)

    def __init__(
        self,
        n_components: int,
        n_mix: int = 1,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        weights_prior: float = 1.0,
    ):
        self.n_components = n_components
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.n_features: int | None = None
        self.weights_: np.ndarray | None = None
        self.means_: np.ndarray | None = None
        self.covars_: np.ndarray | None = None

    # ------------------------------------------------------------------ helpers
    def _inner_type(self) -> str:
        return "full" if self.covariance_type == "tied" else self.covariance_type

    def _inner(self) -> GaussianFamily:
        """The K*M-component Gaussian family holding the current means and covariances."""
        K, M, D = self.n_components, self.n_mix, self.n_features
        inner = getattr(self, "_inner_family", None)
        if (
            inner is None
            or inner.n_components != K * M
            or inner.n_features != D
            or inner.covariance_type != self._inner_type()
        ):
            inner = GaussianFamily(K * M, D, self._inner_type(), reg_covar=0.0)
            self._inner_family = inner
        inner.reg_covar = 0.0  # the prior's term is added in m_step
        return inner

    def _flat_covariances(self) -> np.ndarray:
        K, M = self.n_components, self.n_mix
        cov = np.asarray(self.covars_, dtype=np.float64)
        if self.covariance_type == "tied":
            return np.repeat(cov, M, axis=0)  # (K*M, D, D)
        return cov.reshape((K * M,) + cov.shape[2:])

    # ------------------------------------------------------------------ family jobs
    def validate_data(self, X: Any) -> np.ndarray:
        X = check_array(X, allow_nan=True)
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} features but the model has {self.n_features}.")
        if np.isnan(X).all(axis=0).any():
            raise ValueError("a column of X is entirely missing; drop it.")
        return X

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {self.covariance_type!r}."
            )
        K, M = self.n_components, self.n_mix
        self.n_features = X.shape[1]
        filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X).astype(np.float64)
        if "w" in letters:
            self.weights_ = np.full((K, M), 1.0 / M)
        if "m" in letters:
            if len(filled) < K * M:
                raise ValueError(
                    f"{K} states x {M} mixture components need at least {K * M} observations "
                    f"to initialise; got n_samples={len(filled)}."
                )
            # Rows in a canonical order: the start then depends on the set of rows, not
            # on their order or on how they are split into sequences.
            rows = np.ascontiguousarray(filled[np.lexsort(filled.T[::-1])])
            self.means_ = _nested_centres(rows, K, M, rng)
        if "c" in letters:
            cv = initial_covariance(filled, self.min_covar)
            self.covars_ = {
                "full": np.tile(cv, (K, M, 1, 1)),
                "tied": np.tile(cv, (K, 1, 1)),
                "diag": np.tile(np.diag(cv), (K, M, 1)),
                "spherical": np.full((K, M), np.diag(cv).mean()),
            }[self.covariance_type]

    def check_params(self) -> None:
        if self.weights_ is None or self.means_ is None or self.covars_ is None:
            raise ValueError("weights_, means_ and covars_ must be set (fit, or set them first).")
        K, M = self.n_components, self.n_mix
        w = np.asarray(self.weights_, dtype=np.float64)
        means = np.asarray(self.means_, dtype=np.float64)
        if w.shape != (K, M) or (w < 0).any() or not np.allclose(w.sum(axis=1), 1.0):
            raise ValueError(
                f"weights_ must be (n_components, n_mix) = {(K, M)}, rows summing to 1."
            )
        if means.ndim != 3 or means.shape[:2] != (K, M):
            raise ValueError(
                f"means_ must have shape (n_components, n_mix, n_features); got {means.shape}."
            )
        if self.n_features is None:
            self.n_features = means.shape[2]
        D = self.n_features
        shape = {"full": (K, M, D, D), "tied": (K, D, D), "diag": (K, M, D), "spherical": (K, M)}[
            self.covariance_type
        ]
        if np.shape(self.covars_) != shape:
            raise ValueError(
                f"covars_ for covariance_type={self.covariance_type!r} must have shape {shape}; "
                f"got {np.shape(self.covars_)}."
            )
        self.weights_, self.means_ = w, means
        self._inner().set_parameters(means.reshape(K * M, D), self._flat_covariances())

    def _component_logprob(self, X: np.ndarray) -> np.ndarray:
        """(n, K, M) log of weight times density of every mixture component."""
        K, M = self.n_components, self.n_mix
        lp = self._inner().log_prob(X).reshape(-1, K, M)
        with np.errstate(divide="ignore"):
            lp += np.log(self.weights_)[None]
        return lp

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        return logsumexp(self._component_logprob(X), axis=2)

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> dict:
        lp = self._component_logprob(X)
        norm = logsumexp(lp, axis=2, keepdims=True)
        resp = np.exp(lp - np.where(np.isfinite(norm), norm, 0.0)) * weights[:, :, None]
        flat = np.ascontiguousarray(resp.reshape(len(X), -1))
        return {"mix": resp.sum(axis=0), "gauss": self._inner().accumulate(X, flat)}

    def m_step(self, stats: dict, letters: str) -> None:
        K, M, D = self.n_components, self.n_mix, self.n_features
        if "w" in letters:
            self.weights_ = dirichlet_m_step(stats["mix"], self.weights_prior, self.weights_)
        inner = self._inner()
        nk_eff = stats["gauss"][0] + _EPS10
        means, cov = inner.estimate(stats["gauss"])  # maximum likelihood
        if "m" in letters:
            self.means_ = means.reshape(K, M, D)
        if "c" in letters:
            self.covars_ = self._map_covariances(cov, nk_eff)
        inner.set_parameters(np.asarray(self.means_).reshape(K * M, D), self._flat_covariances())

    def _covariance_prior(self) -> DiagonalShrinkage | None:
        """The ``min_covar`` prior: ``a`` pseudo-observations with scatter ``min_covar * I``
        (None for maximum likelihood)."""
        lam = float(self.min_covar)
        if lam <= 0.0:
            return None
        return DiagonalShrinkage(_PSEUDO_COUNT, np.full(self.n_features, lam / _PSEUDO_COUNT))

    def _map_covariances(self, cov: np.ndarray, nk_eff: np.ndarray) -> np.ndarray:
        """The MAP covariances under the ``min_covar`` prior, from the maximum-likelihood
        ones of the K * M components (their weights ``nk_eff``)."""
        K, M, D = self.n_components, self.n_mix, self.n_features
        prior = self._covariance_prior()
        if self.covariance_type == "tied":  # one matrix per state: pool its components
            mass = nk_eff.reshape(K, M)
            pooled = (cov.reshape(K, M, D, D) * mass[:, :, None, None]).sum(axis=1)
            pooled /= mass.sum(axis=1)[:, None, None]
            return pooled if prior is None else prior.shrink(pooled, mass.sum(axis=1), "full")
        if prior is not None:
            cov = prior.shrink(cov, nk_eff, self.covariance_type)
        return cov.reshape((K, M) + cov.shape[1:])

    def log_prior(self) -> float:
        """Log-density (up to a constant) of the priors the M-step maximises with:
        Dirichlet on the mixture weights, ``-a/2 log|cov| - min_covar/2 tr(inv(cov))``
        per covariance matrix (per component; per state when tied)."""
        total = dirichlet_log_prior(self.weights_, self.weights_prior)
        prior = self._covariance_prior()
        if prior is None:
            return total
        terms = prior.component_terms(self._inner())
        if self.covariance_type == "tied":  # each state's matrix is there n_mix times
            terms = terms.reshape(self.n_components, self.n_mix)[:, 0]
        return total + float(terms.sum())

    def n_parameters(self) -> int:
        K, M, D = self.n_components, self.n_mix, self.n_features
        cov = {
            "full": K * M * D * (D + 1) // 2,
            "tied": K * D * (D + 1) // 2,
            "diag": K * M * D,
            "spherical": K * M,
        }[self.covariance_type]
        return K * (M - 1) + K * M * D + cov

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        M, D = self.n_mix, self.n_features
        cum = np.cumsum(self.weights_, axis=1)
        mix = (rng.random(len(states))[:, None] > cum[states]).sum(axis=1)
        mix = np.minimum(mix, M - 1)
        comp = states * M + mix
        covs = self._inner().full_covariances()
        chol = np.linalg.cholesky(covs)
        z = rng.standard_normal((len(states), D))
        return self._inner().means_[comp] + np.einsum("nij,nj->ni", chol[comp], z)
