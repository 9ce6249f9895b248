"""Gaussian emissions with hmmlearn's conventions: parameter letters, MAP priors, gaps.

hmmlearn's Gaussian M-step is a MAP estimate (Huang, Acero and Hon, *Spoken
Language Processing*, pp. 443-445) with ``means_prior``, ``means_weight``,
``covars_prior`` and ``covars_weight``; with hmmlearn's defaults
(``covars_prior=1e-2``) it adds 0.01 to every covariance numerator. We keep
the same rule so fitted parameters match hmmlearn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.families.base import EmissionFamily, register_family
from latentem.families.gaussian import GaussianFamily, covariance_shape
from latentem.families.gaussian_gaps import MissingPlan
from latentem.families.gaussian_priors import NormalInverseWishart
from latentem.kernels.gaussian import gaussian_scaled_prob
from latentem.kernels.hmm import diag_gaussian_scaled8, diag_gaussian_stats8, scale_emissions
from latentem.kernels.hmm_diag_gaussian8 import diag_gaussian_logprob8
from latentem.kernels.kmeans import kmeans_plusplus, lloyd

__all__ = ["GaussianEmission"]


def initial_covariance(filled: np.ndarray, min_covar: float) -> np.ndarray:
    """hmmlearn's starting covariance: the data's, plus ``min_covar`` on the diagonal."""
    if len(filled) < 2:
        raise ValueError(
            "covars_ starts from the data's covariance, which needs at least 2 "
            f"observations; got n_samples={len(filled)}."
        )
    return np.atleast_2d(np.cov(filled.T)) + min_covar * np.eye(filled.shape[1])


def _same_values(kept: np.ndarray, value: Any) -> bool:
    """``np.array_equal(kept, value)`` for the finite float64 copy ``kept``; a float64
    array of its shape is compared by its bytes (several times faster on small arrays;
    a NaN in ``value`` differs from the finite ``kept`` either way)."""
    if type(value) is np.ndarray and value.dtype == np.float64 and value.shape == kept.shape:
        return value.tobytes() == kept.tobytes()
    return np.array_equal(kept, value)


@register_family(fitted=("n_features", "means_", "covariances_"), cli="gaussian")
class GaussianEmission(GaussianFamily, EmissionFamily):
    """K Gaussian states for an HMM: letters ``m`` (means) and ``c`` (covariances).

    ``reg_covar`` (default 0, as in hmmlearn) is added to the diagonal of
    every covariance after the M-step, as in scikit-learn's mixtures.
    ``min_covar`` (hmmlearn's, default 1e-3) is added to the diagonal of a
    state whose covariance comes out of the M-step not positive definite
    (small or degenerate data), so the fit goes on where hmmlearn's does.
    ``n_features`` is taken from the data (or from ``means_`` when they are
    set by hand). NaN entries are allowed in the data (see
    :class:`~latentem.families.gaussian.GaussianFamily`).
    """

    param_letters = "mc"
    #: The attribute behind each letter (the HMM checks which are set).
    param_attributes = {"m": "means_", "c": "covariances_"}
    #: Parameters in the flat vector used by SQUAREM (see latentem.graph).
    vector_attributes = ("means_", "covariances_")

    def __init__(
        self,
        n_components: int,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        means_prior: Any = 0.0,
        means_weight: Any = 0.0,
        covars_prior: Any = 1e-2,
        covars_weight: Any = 1.0,
        reg_covar: float = 0.0,
    ):
        super().__init__(n_components, 1, covariance_type, reg_covar=reg_covar)
        self.n_features = None
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.means_ = None
        self.covariances_ = None

    def _finish_load(self) -> None:
        """After loading a model file: check the parameters it gave, if any (the
        contract's check, not the Gaussian family's: the file may hold no parameters)."""
        EmissionFamily._finish_load(self)

    def validate_data(self, X: Any) -> np.ndarray:
        X, complete = check_array(X, allow_nan=True, return_finite=True)
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the model has {self.n_features}; "
                "pass data with the same columns as in fit."
            )
        self._note_complete(X, complete)  # plan() need not look again
        if complete:  # no mask to make
            return X
        empty = np.isnan(X).all(axis=0)
        if empty.any():
            raise ValueError(
                f"column {int(np.flatnonzero(empty)[0])} of X is entirely missing; drop it."
            )
        return X

    def scaled_prob(
        self, X: np.ndarray, plan: MissingPlan | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(scaled, shift)`` for the HMM kernels (see
        :func:`latentem.kernels.hmm.scale_emissions`); complete data in one fused pass."""
        plan = self.plan(X) if plan is None else plan
        if plan.complete.size != X.shape[0]:
            return scale_emissions(self.log_prob(X, plan))
        n = X.shape[0]
        scaled, shift = np.empty((n, self.n_components)), np.empty(n)
        if self._vector_states():
            diag_gaussian_scaled8(X, self._vector_columns(), scaled, shift)
        else:
            prec, logc = self._kernel_params()
            gaussian_scaled_prob(X, self.means_, prec, logc, scaled, shift)
        return scaled, shift

    def log_prob(self, X: np.ndarray, plan: MissingPlan | None = None) -> np.ndarray:
        plan = self.plan(X) if plan is None else plan
        if plan.complete.size != X.shape[0] or not self._vector_states():
            return super().log_prob(X, plan)
        out = np.empty((X.shape[0], self.n_components))
        diag_gaussian_logprob8(X, self._vector_columns(), out)
        return out

    def _vector_columns(self) -> np.ndarray:
        """The states' parameters packed one column per state for the 8-state vector
        kernels (see :func:`~latentem.kernels.hmm_diag_gaussian8.diag_gaussian_scaled8`)."""
        prec, logc = self._kernel_params()
        K, D = self.means_.shape
        cols = np.zeros((2 * D + 1, 8))
        cols[:D, :K] = self.means_.T
        cols[D : 2 * D, :K] = prec[:, 0, :].T
        cols[2 * D] = -np.inf
        cols[2 * D, :K] = logc
        return cols

    def _vector_states(self) -> bool:
        """Whether the one-vector-per-row kernels apply: diagonal or spherical
        covariances and at most 8 states."""
        return self.smode == 2 and self.n_components <= 8

    def accumulate(
        self, X: np.ndarray, weights: np.ndarray, plan: MissingPlan | None = None
    ) -> tuple:
        if self._vector_states() and weights.shape == (X.shape[0], self.n_components):
            plan = self.plan(X) if plan is None else plan
            if plan.complete.size == X.shape[0]:
                K, D = self.means_.shape
                means_t = np.zeros((D, 8))
                means_t[:, :K] = self.means_.T
                W = np.ascontiguousarray(weights, dtype=np.float64)
                return diag_gaussian_stats8(X, W, means_t)
        return super().accumulate(X, weights, plan)

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        self.n_features = X.shape[1]
        if "m" not in letters and "c" not in letters:
            return  # nothing to initialise: spare the pass over X
        filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X).astype(np.float64)
        K = self.n_components
        if "m" in letters:
            if len(filled) < K:
                raise ValueError(
                    f"n_components={K} states need at least {K} observations to initialise "
                    f"their means; X has {len(filled)}."
                )
            uniforms = rng.random((max(K - 1, 0), 2 + int(np.log(K))))
            idx = kmeans_plusplus(filled, K, int(rng.integers(len(filled))), uniforms)
            self.means_, _, _ = lloyd(filled, np.ascontiguousarray(filled[idx]), 100)
        if "c" in letters:
            cv = initial_covariance(filled, self.min_covar)
            self.covariances_ = {
                "spherical": np.full(K, np.diag(cv).mean()),
                "tied": cv,
                "diag": np.tile(np.diag(cv), (K, 1)),
                "full": np.tile(cv, (K, 1, 1)),
            }[self.covariance_type]

    def check_params(self) -> None:
        if self.means_ is None or self.covariances_ is None:
            raise ValueError(
                "means_ and covars_ must be set before use: fit the model, include 'm' and "
                "'c' in init_params, or set them by hand."
            )
        # Scoring and decoding check the parameters at every call: skip the checks and
        # the Cholesky factors while the values they were computed from stand (compared
        # by value, so an array edited in place is seen).
        key = (self.n_components, self.covariance_type)
        last = self.__dict__.get("_checked")
        if (
            last is not None
            and last[0] == key
            and _same_values(last[1], self.means_)
            and _same_values(last[2], self.covariances_)
        ):
            return
        means = np.asarray(self.means_, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != self.n_components:
            raise ValueError(
                f"means_ must have shape (n_components={self.n_components}, n_features); "
                f"got {means.shape}."
            )
        if self.n_features is None:
            self.n_features = means.shape[1]
        shape = covariance_shape(self.covariance_type, self.n_components, self.n_features)
        cov = np.asarray(self.covariances_, dtype=np.float64)
        if cov.shape != shape:
            raise ValueError(
                f"covars_ for covariance_type={self.covariance_type!r} must have shape {shape}; "
                f"got {cov.shape}."
            )
        if not (np.isfinite(means).all() and np.isfinite(cov).all()):
            raise ValueError("means_ and covars_ must be finite.")
        self.set_parameters(means, cov)

    def set_parameters(
        self, means: np.ndarray, covariances: np.ndarray, *, copy: bool = True
    ) -> None:
        super().set_parameters(means, covariances, copy=copy)
        # the values the precision factors now come from (check_params skips its work
        # while they stand)
        key = (self.n_components, self.covariance_type)
        self._checked = (key, self.means_.copy(), self.covariances_.copy())

    @property
    def prior(self) -> NormalInverseWishart:
        """hmmlearn's MAP prior, from this family's settings."""
        return NormalInverseWishart(
            self.means_prior, self.means_weight, self.covars_prior, self.covars_weight
        )

    def m_step(self, stats: tuple, letters: str) -> None:
        means, cov = self.estimate(stats, letters)
        if "c" in letters and self._not_positive_definite(cov).any():
            cov = self._regularised(cov)  # rare: small or degenerate data
        self.set_parameters(means, cov)

    def _regularisation_hint(self) -> str:
        # HMM users set hmmlearn's min_covar; reg_covar is not among their parameters
        return f"increase min_covar (now {self.min_covar:g})"

    def _regularised(self, cov: np.ndarray) -> np.ndarray:
        """``cov`` with ``min_covar`` added to the diagonal of every state whose
        covariance is not positive definite (tenfold more until it is, up to six
        times). hmmlearn adds a small ridge to such a covariance when it computes
        densities; here the M-step keeps the regularised matrix, so ``covars_``
        is what the densities use."""
        ct = self.covariance_type
        cov = np.array(cov, dtype=np.float64)
        step = float(self.min_covar) if self.min_covar > 0 else 1e-3
        for _ in range(6):
            bad = self._not_positive_definite(cov)
            if not bad.any():
                return cov
            if ct in ("diag", "spherical"):
                cov[bad] += step
            else:
                idx = np.arange(cov.shape[-1])
                view = cov[None] if ct == "tied" else cov
                for k in np.flatnonzero(bad):
                    view[k, idx, idx] += step
            step *= 10.0
        raise ValueError(
            "a state's covariance is not positive definite even with min_covar added "
            f"(now {self.min_covar:g}): the data may be constant or duplicated in some "
            "columns; raise min_covar, use covariance_type='diag', or use fewer states"
        )

    def _not_positive_definite(self, cov: np.ndarray) -> np.ndarray:
        """One flag per state (one in all for tied) saying its covariance is not PD."""
        ct = self.covariance_type
        if ct in ("diag", "spherical"):
            return ~(cov.reshape(len(cov), -1) > 0).all(axis=1) | ~np.isfinite(cov).reshape(
                len(cov), -1
            ).all(axis=1)
        mats = cov[None] if ct == "tied" else cov
        if not np.isfinite(mats).all():
            return np.ones(len(mats), dtype=bool)
        eig = np.linalg.eigvalsh(mats)  # ascending, per state
        # singular to working precision counts too: its log-determinant is meaningless
        return eig[:, 0] <= 1e-12 * np.abs(eig[:, -1])

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        covs = self.full_covariances()
        chol = np.linalg.cholesky(covs)
        z = rng.standard_normal((len(states), self.n_features))
        return self.means_[states] + np.einsum("nij,nj->ni", chol[states], z)
