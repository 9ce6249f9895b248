"""Mixtures of factor analysers: :class:`MixtureOfFactorAnalyzers` (MFA and MCFA).

Clusters whose covariances are each a factor analyser's (MFA), or whose
factors live in one shared space (MCFA, shared loadings and noise): the
k-means start, the closed-form M-steps of both, the SQUAREM parameter
vector, and the mixture API (``predict``, ``predict_proba``, ``transform``,
``sample``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem.families.gaussian_gaps import SERIAL_BELOW
from latentem.kernels._dispatch import serial_when_small
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.models.factor.base import _FactorModel
from latentem.models.factor.data import _Prepared
from latentem.models.factor.moments import (
    _analyser_update,
    _factor_moments,
    _factor_posterior,
    _pca_start,
    _residual_diag,
)
from latentem.registry import register

__all__ = ["MixtureOfFactorAnalyzers"]

#: A component whose expected count falls below this fraction of the rows keeps
#: its parameters in the M-step (its weight goes to zero).
_EMPTY_FRACTION = 1e-10


@register(
    fitted=(
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
    finish="_finish_file",
)
class MixtureOfFactorAnalyzers(_FactorModel):
    """Mixture of factor analysers (MFA), or of common factor analysers (MCFA), with gaps.

    Clustering for many correlated features with few parameters per cluster.
    With ``shared_loadings=False`` (MFA; Ghahramani and Hinton, 1996;
    McLachlan and Peel, 2000) component k is its own factor analyser,
    ``x = mu_k + W_k z + e``, ``z ~ N(0, I_q)``, ``e ~ N(0, Psi_k)``
    (``Psi`` shared by all components with ``shared_noise=True``).
    With ``shared_loadings=True`` (MCFA; Baek, McLachlan and Flack, 2010, the
    model of R's EMMIXmfa ``mcfa``) all components share one loading matrix
    A and one noise: ``x = A u + e``, ``u ~ N(xi_k, Omega_k)``,
    ``e ~ N(0, D)``: far fewer parameters, and the factor scores of all
    clusters live in one q-dimensional space (a map of the clusters).

    Fitted by exact EM on the generic runner; NaN cells are marginalised.
    Same surface as :class:`latentem.GaussianMixture` (``predict``,
    ``predict_proba``, ``score_samples``, ``bic``, ``aic``).

    Parameters
    ----------
    n_components : int, default=1
        Number of clusters K.
    n_factors : int, default=1
        Number of factors q (per component for MFA, shared for MCFA).
    shared_loadings : bool, default=False
        MCFA instead of MFA.
    shared_noise : bool, default=False
        MFA only: one diagonal noise for all components (MCFA always
        shares it).
    tol : float, default=1e-6
        On the mean per-row log-likelihood.
    max_iter : int, default=1000
    n_init : int, default=1
    init_params : {"kmeans", "kmeans++", "random"}, default="kmeans"
        Starting partition: k-means (Lloyd from k-means++ seeds), k-means++
        seeds alone, or random responsibilities; each cluster's factor
        analyser then starts from the PPCA of its covariance. Gaps are
        filled with column means for this step only.
    noise_floor : float, default=1e-6
        Noise variances stay at least this fraction of their column's variance.
    accelerate : {None, "squarem"}, default="squarem"
        SQUAREM extrapolation; on iris it cuts MCFA's iterations from about
        500 to about 60.
    random_state : None, int or Generator, default=None
    warm_start : bool, default=False
    verbose : int, default=0

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    means_ : ndarray (n_components, n_features)
    components_ : ndarray
        MFA: (n_components, n_factors, n_features), each ``W_k.T``;
        MCFA: (n_factors, n_features), the shared ``A.T``.
    noise_variance_ : ndarray
        (n_components, n_features), or (n_features,) when shared.
    factor_means_, factor_covariances_ : ndarray
        MCFA only: ``xi`` (n_components, n_factors) and ``Omega``
        (n_components, n_factors, n_factors).
    covariances_ : ndarray (n_components, n_features, n_features)
        The components' covariances.
    history_, converged_, n_iter_, lower_bound_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import MixtureOfFactorAnalyzers
    >>> rng = np.random.default_rng(0)
    >>> A = rng.normal(size=(8, 2))
    >>> centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    >>> labels = rng.integers(0, 3, 600)
    >>> X = (centers[labels] + rng.normal(size=(600, 2))) @ A.T
    >>> X += rng.normal(scale=0.5, size=X.shape)
    >>> mcfa = MixtureOfFactorAnalyzers(3, n_factors=2, shared_loadings=True, random_state=0)
    >>> pred = mcfa.fit(X).predict(X)
    >>> from itertools import permutations
    >>> bool(max(np.mean(np.array(p)[pred] == labels) for p in permutations(range(3))) > 0.95)
    True
    """

    _INIT_METHODS = ("kmeans", "kmeans++", "random")
    _q_name = "n_factors"

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_factors: int = 1,
        shared_loadings: bool = False,
        shared_noise: bool = False,
        tol: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "kmeans",
        noise_floor: float = 1e-6,
        accelerate: str | None = "squarem",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.n_factors = n_factors
        self.shared_loadings = shared_loadings
        self.shared_noise = shared_noise
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.noise_floor = noise_floor
        self.accelerate = accelerate
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def _check_settings(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_factors, "n_factors")
        for name in ("shared_loadings", "shared_noise"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got {getattr(self, name)!r}.")
        self._check_common_settings()

    def _n_mix(self) -> int:
        return int(self.n_components)

    def _n_factors(self) -> int:
        return int(self.n_factors)

    @property
    def _mcfa(self) -> bool:
        return bool(self.shared_loadings)

    def _log_weights(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.weights_)

    @property
    def covariances_(self) -> np.ndarray:
        """The components' covariance matrices, shape (n_components, n_features, n_features)."""
        self._require_fitted()
        return self._family.covariances_.copy()

    # -------------------------------------------------------------- parameters
    def _loadings(self) -> tuple[np.ndarray, np.ndarray]:
        """Per component ``(L_k (K, D, q), Cov(u)_k (K, q, q))`` with C_k = L Cu L^T + Psi."""
        K, q = self.n_components, self.n_factors
        if self._mcfa:
            L = np.broadcast_to(self.components_.T, (K, self.n_features_in_, q))
            return L, self.factor_covariances_
        return self.components_.transpose(0, 2, 1), np.broadcast_to(np.eye(q), (K, q, q))

    def _noise_matrix(self) -> np.ndarray:
        nv = np.asarray(self.noise_variance_, dtype=np.float64)
        return np.broadcast_to(nv, (self.n_components, self.n_features_in_))

    def _rebuild(self) -> None:
        """The family's means and covariances from the factor parameters."""
        L, Cu = self._loadings()
        psi = self._noise_matrix()
        cov = np.einsum("kdq,kqr,ker->kde", L, Cu, L)
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        idx = np.arange(self.n_features_in_)
        cov[:, idx, idx] += psi
        if self._mcfa:
            self.means_ = self.factor_means_ @ self.components_
        self._set_family(np.ascontiguousarray(self.means_), cov)

    def _init_params(self, X: Any, rng: np.random.Generator) -> None:
        X = X.X if isinstance(X, _Prepared) else X
        n, D = X.shape
        K, q = self.n_components, self.n_factors
        self.n_features_in_ = D
        mean, cov = self._start_moments(X)
        Xf = np.where(np.isnan(X), mean, X)
        R = self._initial_responsibilities(Xf, rng)
        nk = R.sum(axis=0) + 10 * np.finfo(float).eps
        means = (R.T @ Xf) / nk[:, None]
        covs = np.empty((K, D, D))
        for k in range(K):
            d = Xf - means[k]
            covs[k] = (R[:, k, None] * d).T @ d / nk[k]
            covs[k] += np.diag(self._floor)
        self.weights_ = nk / nk.sum()
        random = str(self.init_params) == "random"
        if self._mcfa:
            pooled = np.einsum("k,kde->de", self.weights_, covs)
            A, _ = _pca_start(pooled, q)
            A = np.linalg.qr(A)[0]  # orthonormal columns
            noise = np.maximum(np.diag(pooled - A @ (A.T @ pooled @ A) @ A.T), 0.0)
            noise = np.maximum(noise, np.maximum(self._floor, 1e-3 * np.diag(pooled)))
            self.components_ = np.ascontiguousarray(A.T)
            self.factor_means_ = means @ A
            om = np.einsum("dq,kde,er->kqr", A, covs, A)
            om -= (A.T * noise) @ A
            for k in range(K):  # clip to positive definite
                lam, U = np.linalg.eigh(0.5 * (om[k] + om[k].T))
                om[k] = (U * np.maximum(lam, 1e-3 * max(lam.max(), 1e-12))) @ U.T
            self.factor_covariances_ = om
            self.noise_variance_ = noise
        else:
            comps = np.empty((K, q, D))
            noise = np.empty((K, D))
            for k in range(K):
                W, psi = self._fa_start(covs[k], q, rng, random)
                comps[k], noise[k] = W.T, psi
            self.components_ = comps
            self.noise_variance_ = noise.mean(axis=0) if self.shared_noise else noise
            self.means_ = means
        self._rebuild()

    def _initial_responsibilities(self, X: np.ndarray, rng) -> np.ndarray:
        n = X.shape[0]
        K = self.n_components
        method = str(self.init_params)
        R = np.zeros((n, K))
        if method == "random":
            R[:] = rng.uniform(size=(n, K))
            return R / R.sum(axis=1, keepdims=True)
        first = int(rng.integers(n))
        uniforms = rng.random((max(K - 1, 0), 2 + int(math.log(K))))
        with serial_when_small(n * K * X.shape[1], n, SERIAL_BELOW):
            idx = kmeans_plusplus(X, K, first, uniforms)
            centers = np.ascontiguousarray(X[idx], dtype=np.float64)
            _, labels, _ = lloyd(X, centers, 300 if method == "kmeans" else 0)
        R[np.arange(n), labels] = 1.0
        return R

    def m_step(self, stats: dict) -> None:
        """Closed-form updates: MFA (Ghahramani and Hinton, 1996) or MCFA (Baek et al., 2010)."""
        nk_all, S_all, Q_all = stats["nk"], stats["sum"], stats["second"]
        K, D = self.n_components, self.n_features_in_
        total = float(nk_all.sum())
        if not total > 0:
            return
        live = nk_all > _EMPTY_FRACTION * total
        P_all = self._family._precision_parts()[1]
        L, Cu = self._loadings()
        floor = self._floor_vector()
        if self._mcfa:
            self._m_step_mcfa(nk_all, S_all, Q_all, P_all, live, floor)
        else:
            comps = self.components_.copy()
            means = self.means_.copy()
            resid = np.zeros((K, D))
            for k in np.flatnonzero(live):
                nk, S, Q = nk_all[k], S_all[k], Q_all[k]
                Wn, shift, resid[k] = _analyser_update(nk, S, Q, P_all[k], L[k], Cu[k])
                comps[k], means[k] = Wn.T, means[k] + shift
            if self.shared_noise:
                noise = np.maximum(resid.sum(axis=0) / nk_all[live].sum(), floor)
            else:
                noise = np.asarray(self.noise_variance_).copy()
                noise[live] = np.maximum(resid[live] / nk_all[live, None], floor)
            self.components_, self.means_, self.noise_variance_ = comps, means, noise
        self.weights_ = nk_all / total
        self._rebuild()

    def _m_step_mcfa(self, nk_all, S_all, Q_all, P_all, live, floor) -> None:
        D, q = self.n_features_in_, self.n_factors
        A = self.components_.T
        xi = self.factor_means_.copy()
        om = self.factor_covariances_.copy()
        sum_xu = np.zeros((D, q))
        sum_uu = np.zeros((q, q))
        parts = []
        for k in np.flatnonzero(live):
            nk, S, Q = nk_all[k], S_all[k], Q_all[k]
            G, V = _factor_posterior(P_all[k], A, om[k])
            Eu, Euu, Edu = _factor_moments(nk, S, Q, xi[k], G, V)
            sum_xu += Edu + np.outer(self.means_[k], Eu)
            sum_uu += Euu
            parts.append((k, G, V))
            xi_new = Eu / nk
            om_k = Euu / nk - np.outer(xi_new, xi_new)
            om[k] = 0.5 * (om_k + om_k.T)
            xi[k] = xi_new
        An = np.linalg.solve(sum_uu, sum_xu.T).T
        resid = np.zeros(D)
        for k, G, V in parts:
            c = self.means_[k] - An @ self.factor_means_[k]
            resid += _residual_diag(nk_all[k], S_all[k], Q_all[k], np.eye(D) - An @ G, c, An, V)
        self.noise_variance_ = np.maximum(resid / nk_all[live].sum(), floor)
        self.components_ = np.ascontiguousarray(An.T)
        self.factor_means_ = xi
        self.factor_covariances_ = om

    def _floor_vector(self) -> np.ndarray:
        floor = self.__dict__.get("_floor")
        if floor is None:
            floor = self.noise_floor * np.einsum("k,kdd->d", self.weights_, self.covariances_)
            self._floor = floor
        return floor

    # -------------------------------------------------------------- SQUAREM
    def _param_blocks(self) -> list[np.ndarray]:
        if self._mcfa:
            return [
                self.weights_,
                self.components_,
                self.factor_means_,
                self.factor_covariances_,
                np.asarray(self.noise_variance_),
            ]
        return [self.weights_, self.means_, self.components_, np.asarray(self.noise_variance_)]

    def get_param_vector(self) -> np.ndarray:
        """All parameters as one float64 vector (for SQUAREM)."""
        return np.concatenate([np.ravel(b) for b in self._param_blocks()])

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set parameters from a vector; False (and no change) if infeasible."""
        theta = np.asarray(theta, dtype=np.float64)
        blocks = self._param_blocks()
        sizes = [b.size for b in blocks]
        if theta.shape != (sum(sizes),) or not np.all(np.isfinite(theta)):
            return False
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        parts = [p.reshape(b.shape) for p, b in zip(parts, blocks)]
        w, noise = parts[0], parts[-1]
        if np.any(w < 0) or not w.sum() > 0 or np.any(noise < self._floor_vector()):
            return False
        if self._mcfa:
            om = parts[3]
            om = 0.5 * (om + om.transpose(0, 2, 1))
            if np.any(np.linalg.eigvalsh(om)[:, 0] <= 0):
                return False
        names = ("weights_", "means_", "components_", "noise_variance_")
        names += ("factor_means_", "factor_covariances_")
        old = {k: self.__dict__[k] for k in names if k in self.__dict__}
        self.weights_ = w / w.sum()
        if self._mcfa:
            self.components_, self.factor_means_, self.factor_covariances_ = parts[1], parts[2], om
        else:
            self.means_, self.components_ = parts[1], parts[2]
        self.noise_variance_ = noise
        try:
            self._rebuild()
        except ValueError:
            self.__dict__.update(old)
            self._rebuild()
            return False
        return True

    def n_parameters(self) -> int:
        """Free parameters (weights, means or factor means, loadings up to rotation,
        factor covariances, noise variances)."""
        self._require_fitted()
        K, D, q = self.n_components, self.n_features_in_, self.n_factors
        if self._mcfa:  # Baek, McLachlan and Flack (2010), section 3
            return (K - 1) + D + q * (D + K) + K * q * (q + 1) // 2 - q * q
        noise = D if self.shared_noise else K * D
        return (K - 1) + K * (D + D * q - q * (q - 1) // 2) + noise

    # -------------------------------------------------------------- mixture API
    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of every row."""
        return self.fit(X).predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of every component for every row, shape (n, K).

        Rows with gaps are judged on their observed cells; a row entirely
        missing gets the mixture weights.
        """
        X = self._check_input(X)
        lp = self._row_logprob(X)
        lp -= lp.max(axis=1, keepdims=True)
        p = np.exp(lp)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable component of every row."""
        return np.argmax(self.predict_proba(X), axis=1)

    def transform(self, X: Any) -> np.ndarray:
        """Factor scores: ``E[u | x_obs]``, averaged over components by the posterior.

        MCFA's scores share one space (its main use: a map of the clusters);
        for MFA each component has its own factors and the average mixes
        them, so :meth:`predict_proba` is the better summary there.
        """
        given = X
        X = self._check_input(X)
        R = self.predict_proba(X)
        P_all = self._family._precision_parts()[1]
        L, Cu = self._loadings()
        out = np.zeros((X.shape[0], self.n_factors))
        for k in range(self.n_components):
            a = self.factor_means_[k] if self._mcfa else np.zeros(self.n_factors)
            G, _ = _factor_posterior(P_all[k], L[k], Cu[k])
            out += R[:, k, None] * self._posterior_factor_means(X, k, a, G)
        return self._wrap_output(out, given)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(X, labels)``, grouped by component as in scikit-learn."""
        self._require_fitted()
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n, self.weights_)
        X = self._family.sample(counts, rng)
        return X, np.repeat(np.arange(self.n_components), counts)

    def _finish_load(self) -> None:
        """Rebuild the covariance factors from the loaded parameters, checking them."""
        w = np.asarray(self.weights_, dtype=np.float64)
        if w.shape != (self.n_components,) or np.any(w < 0):
            raise ValueError("the file's MixtureOfFactorAnalyzers weights are inconsistent")
        if np.any(np.asarray(self.noise_variance_) <= 0):
            raise ValueError("the file's MixtureOfFactorAnalyzers noise variances are not positive")
        self._rebuild()
