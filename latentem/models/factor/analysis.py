"""Factor analysis and probabilistic PCA: :class:`FactorAnalysis` and :class:`PPCA`.

One factor analyser (one component) with scikit-learn's names: its
closed-form M-step (Rubin and Thayer, 1982), the SQUAREM parameter vector,
``transform``, the model covariance and precision, sampling and the model
files. :class:`PPCA` is the same with one noise variance for all features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem.models.factor.base import _FactorModel
from latentem.models.factor.data import _check_X, _Prepared
from latentem.models.factor.moments import _analyser_update, _factor_posterior
from latentem.models.factor.rotation import orthogonal_rotation
from latentem.registry import register

__all__ = ["FactorAnalysis", "PPCA"]

_FA_FITTED = (
    "n_features_in_",
    "mean_",
    "components_",
    "noise_variance_",
    "converged_",
    "n_iter_",
    "history_",
    "loglike_",
    "lower_bound_",
)


@register(fitted=_FA_FITTED, finish="_finish_file")
class FactorAnalysis(_FactorModel):
    """Factor analysis fitted by EM, with missing cells (NaN) marginalised exactly.

    The model is ``x = mean_ + W z + e`` with ``z ~ N(0, I_q)`` and
    ``e ~ N(0, diag(noise_variance_))``, ``W = components_.T``: scikit-learn's
    :class:`sklearn.decomposition.FactorAnalysis` with the same names, the
    same maximum-likelihood answer on complete data, and gaps accepted. It
    is fitted by EM (Rubin and Thayer, 1982) on the generic runner: restarts,
    SQUAREM and the never-decreasing-likelihood guard come with it. On
    complete data an iteration costs O(D^3) whatever the number of rows
    (their moments are computed once).

    Parameters
    ----------
    n_components : int or None, default=None
        Number of factors q; None means ``n_features``.
    tol : float, default=1e-8
        Stop when the mean per-row log-likelihood changes by at most this.
        (scikit-learn's ``tol`` is on the total log-likelihood: its default
        1e-2 on 10,000 rows is 1e-6 here.)
    max_iter : int, default=1000
    n_init : int, default=1
        Starts from different initialisations; the best is kept.
    init_params : {"pca", "random"}, default="pca"
        "pca" starts from the PPCA solution of the available-case covariance
        (deterministic); "random" from random loadings (use with n_init).
    noise_variance_init : array-like of shape (n_features,), optional
        Starting noise variances (they replace those of ``init_params``).
    noise_floor : float, default=1e-6
        Every noise variance is kept at least ``noise_floor`` times its
        column's variance, so a Heywood case (a variance going to 0) stays
        finite. The constrained update still never lowers the likelihood.
    accelerate : {None, "squarem"}, default="squarem"
        SQUAREM extrapolation (Varadhan and Roland, 2008); EM for factor
        analysis is slow to converge and this usually cuts iterations by 3-10x.
    rotation : {None, "varimax", "quartimax"}, default=None
        As scikit-learn's: after fitting, rotate the loadings orthogonally
        to maximise the varimax or quartimax criterion (Kaiser, 1958), which
        makes each factor load on few features. The likelihood, the
        covariance and the noise are unchanged; ``components_`` and
        ``transform`` use the rotated factors.
    random_state : None, int or Generator, default=None
    warm_start : bool, default=False
    verbose : int, default=0

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Factor loadings ``W.T`` (rotated when ``rotation`` is set).
    noise_variance_ : ndarray of shape (n_features,)
    mean_ : ndarray of shape (n_features,)
    loglike_ : list of float
        Total log-likelihood at every iteration (as scikit-learn).
    history_ : ndarray
        The same, as an array (never decreasing).
    n_iter_ : int
    converged_ : bool
    n_features_in_ : int

    See Also
    --------
    PPCA : the same with one noise variance for all features.
    MixtureOfFactorAnalyzers : clusters, each a factor analyser.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import FactorAnalysis
    >>> rng = np.random.default_rng(0)
    >>> W = rng.normal(size=(6, 2))
    >>> X = rng.normal(size=(500, 2)) @ W.T + rng.normal(scale=0.3, size=(500, 6))
    >>> X[rng.random(X.shape) < 0.1] = np.nan  # 10% of cells missing
    >>> fa = FactorAnalysis(2, random_state=0).fit(X)
    >>> fa.components_.shape, fa.noise_variance_.shape
    ((2, 6), (6,))
    >>> bool(np.all(np.diff(fa.history_) >= 0))
    True
    >>> fa.transform(X).shape  # factor scores, gaps marginalised
    (500, 2)
    """

    _INIT_METHODS = ("pca", "random")
    _q_name = "n_components"
    _isotropic = False

    def __init__(
        self,
        n_components: int | None = None,
        *,
        tol: float = 1e-8,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "pca",
        noise_variance_init: Any = None,
        noise_floor: float = 1e-6,
        accelerate: str | None = "squarem",
        rotation: str | None = None,
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.noise_variance_init = noise_variance_init
        self.noise_floor = noise_floor
        self.accelerate = accelerate
        self.rotation = rotation
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    def _check_settings(self) -> None:
        if self.n_components is not None:
            check_positive_int(self.n_components, "n_components")
        if self.rotation not in (None, "varimax", "quartimax"):
            raise ValueError(
                f'rotation must be None, "varimax" or "quartimax"; got {self.rotation!r}.'
            )
        self._check_common_settings()

    def _after_fit(self) -> None:
        if self.rotation is not None:
            W = orthogonal_rotation(self.components_.T, self.rotation)
            self.components_ = np.ascontiguousarray(W.T)

    def _n_mix(self) -> int:
        return 1

    def _n_factors(self) -> int:
        if self.n_components is None:
            return 1 if "n_features_in_" not in self.__dict__ else self.n_features_in_
        return int(self.n_components)

    def validate_data(self, X: Any) -> _Prepared:
        if self.n_components is None and not isinstance(X, _Prepared):
            self._check_settings()
            X = _check_X(X)
            self.n_features_in_ = X.shape[1]
        return super().validate_data(X)

    # -------------------------------------------------------------- parameters
    def _noise_vector(self) -> np.ndarray:
        nv = np.asarray(self.noise_variance_, dtype=np.float64)
        return np.full(self.n_features_in_, float(nv)) if nv.ndim == 0 else nv

    def _set_params(self, mean, W, psi) -> None:
        D = mean.shape[0]
        self.n_features_in_ = D
        self.mean_ = np.ascontiguousarray(mean, dtype=np.float64)
        self.components_ = np.ascontiguousarray(W.T, dtype=np.float64)
        self.noise_variance_ = float(psi[0]) if self._isotropic else np.array(psi, dtype=float)
        cov = W @ W.T
        cov[np.diag_indices(D)] += psi
        self._set_family(self.mean_[None], cov[None])

    def _init_params(self, X: Any, rng: np.random.Generator) -> None:
        mean, cov = self._start_moments(X)
        D = mean.shape[0]
        q = self._n_factors() if self.n_components is not None else D
        W, psi = self._fa_start(cov, q, rng, str(self.init_params) == "random")
        if self._isotropic:
            psi = np.full(D, max(float(psi.mean()), float(self._floor.mean())))
        if self.noise_variance_init is not None:
            psi = self._check_noise_init(self.noise_variance_init, D)
        self._set_params(mean, W, psi)

    def _check_noise_init(self, value: Any, D: int) -> np.ndarray:
        v = np.asarray(value, dtype=np.float64)
        if self._isotropic:
            if v.ndim != 0 or not (np.isfinite(v) and v > 0):
                raise ValueError(f"noise_variance_init must be one positive number; got {value!r}.")
            return np.full(D, float(v))
        if v.shape != (D,) or not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(
                f"noise_variance_init must hold {D} positive numbers (one per feature); "
                f"got shape {v.shape}."
            )
        return v.copy()

    def _floor_vector(self) -> np.ndarray:
        floor = self.__dict__.get("_floor")
        if floor is None:  # a loaded model fitted further: scale by the model's variances
            floor = self.noise_floor * np.diag(self.get_covariance())
            self._floor = floor
        return floor

    def m_step(self, stats: dict) -> None:
        """Closed-form update of mean, loadings and noise (Rubin and Thayer, 1982)."""
        nk, S, Q = stats["nk"][0], stats["sum"][0], stats["second"][0]
        if not nk > 0:
            return
        W = self.components_.T
        q = W.shape[1]
        D = W.shape[0]
        psi = self._noise_vector()
        P = self._family._precision_parts()[1][0]
        # regression of (x - mu) on [u, 1]: loadings and the mean's shift together
        Wn, shift, resid = _analyser_update(nk, S, Q, P, W, np.eye(q))
        resid = resid / nk
        floor = self._floor_vector()
        if self._isotropic:
            psi = np.full(D, max(float(resid.mean()), float(floor.mean())))
        else:
            psi = np.maximum(resid, floor)
        self._set_params(self.mean_ + shift, Wn, psi)

    def get_param_vector(self) -> np.ndarray:
        """Mean, loadings and noise variances as one vector (for SQUAREM)."""
        nv = np.atleast_1d(np.asarray(self.noise_variance_, dtype=np.float64))
        return np.concatenate([self.mean_, self.components_.ravel(), nv])

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set parameters from a vector; False (and no change) if a noise variance is
        not above its floor or a value is not finite."""
        theta = np.asarray(theta, dtype=np.float64)
        D, q = self.n_features_in_, self.components_.shape[0]
        n_noise = 1 if self._isotropic else D
        if theta.shape != (D + D * q + n_noise,) or not np.all(np.isfinite(theta)):
            return False
        psi = theta[D + D * q :]
        floor = self._floor_vector()
        if np.any(psi < (floor.mean() if self._isotropic else floor)):
            return False
        W = theta[D : D + D * q].reshape(q, D).T
        psi = np.full(D, psi[0]) if self._isotropic else psi
        try:
            self._set_params(theta[:D], W, psi)
        except ValueError:
            return False
        return True

    def n_parameters(self) -> int:
        """Free parameters: mean, loadings up to rotation, noise variances."""
        self._require_fitted()
        D, q = self.n_features_in_, self.components_.shape[0]
        return D + D * q - q * (q - 1) // 2 + (1 if self._isotropic else D)

    # -------------------------------------------------------------- scikit-learn API
    def transform(self, X: Any) -> np.ndarray:
        """Posterior means of the factors, ``E[z | x_obs]``, shape (n_samples, n_components).

        Gaps are marginalised: a row's factors are inferred from its observed
        cells only (a row entirely missing gets 0).
        """
        given = X
        X = self._check_input(X)
        P = self._family._precision_parts()[1][0]
        q = self.components_.shape[0]
        G, _ = _factor_posterior(P, self.components_.T, np.eye(q))
        return self._wrap_output(self._posterior_factor_means(X, 0, np.zeros(q), G), given)

    def get_covariance(self) -> np.ndarray:
        """Model covariance ``W W^T + diag(noise_variance_)``, shape (D, D)."""
        self._require_fitted()
        return self._family.covariances_[0].copy()

    def get_precision(self) -> np.ndarray:
        """Inverse of :meth:`get_covariance` (by the matrix inversion lemma)."""
        self._require_fitted()
        W = self.components_.T
        psi = self._noise_vector()
        Wp = W / psi[:, None]
        M = np.eye(W.shape[1]) + W.T @ Wp
        prec = np.diag(1.0 / psi) - Wp @ np.linalg.solve(M, Wp.T)
        return 0.5 * (prec + prec.T)

    def sample(self, n_samples: int = 1) -> np.ndarray:
        """Draw rows from the fitted model, shape (n_samples, n_features)."""
        self._require_fitted()
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        q = self.components_.shape[0]
        z = rng.standard_normal((n, q))
        e = rng.standard_normal((n, self.n_features_in_)) * np.sqrt(self._noise_vector())
        return self.mean_ + z @ self.components_ + e

    def _finish_load(self) -> None:
        """Rebuild the covariance factors from the loaded parameters, checking them."""
        W = np.asarray(self.components_, dtype=np.float64)
        mean = np.asarray(self.mean_, dtype=np.float64)
        D = mean.shape[0]
        psi = np.broadcast_to(np.asarray(self.noise_variance_, dtype=np.float64), (D,))
        if W.ndim != 2 or W.shape[1] != D or not np.all(psi > 0):
            raise ValueError(f"the file's {type(self).__name__} parameters are inconsistent")
        self._set_params(mean, W.T, np.array(psi))


@register(fitted=_FA_FITTED, finish="_finish_file")
class PPCA(FactorAnalysis):
    """Probabilistic PCA (Tipping and Bishop, 1999) fitted by EM, with gaps.

    Factor analysis with one noise variance for all features:
    ``x = mean_ + W z + e``, ``e ~ N(0, noise_variance_ I)``. On complete
    data the maximum-likelihood solution is Tipping and Bishop's closed form
    (:func:`latentem.models.factor.ppca_closed_form`): the columns of ``W``
    span the leading principal subspace, scaled by
    ``(lambda_i - sigma^2)^(1/2)``, and ``sigma^2`` is the mean of the
    discarded eigenvalues. The default "pca" start *is* that closed form
    (of the available-case covariance), so complete data converge at once;
    with gaps EM refines it, marginalising the missing cells exactly.
    Parameters and attributes are those of :class:`FactorAnalysis`, except
    that ``noise_variance_`` is a float and ``noise_variance_init`` one
    number.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import PPCA
    >>> from latentem.models.factor import ppca_closed_form
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 5)) + 0.5 * rng.normal(size=(300, 5))
    >>> pp = PPCA(2, init_params="random", random_state=0, tol=1e-12).fit(X)
    >>> _, W, sigma2 = ppca_closed_form(X, 2)
    >>> bool(np.isclose(pp.noise_variance_, sigma2, rtol=1e-4))
    True
    >>> bool(np.allclose(pp.components_.T @ pp.components_, W @ W.T, atol=1e-4))
    True
    """

    _isotropic = True

    def n_parameters(self) -> int:
        """Free parameters: mean, loadings up to rotation, one noise variance."""
        return super().n_parameters()
