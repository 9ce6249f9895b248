"""Gaussian linear regressions as an emission family: K regressions of y on x.

Under component (or regime) k, ``y_i ~ N(B_k' [1, x_i], Sigma_k)``. Every
latent structure that takes a family takes this one: in :class:`~latentem.Mixture`
it is a mixture of regressions (flexmix's model), in :class:`~latentem.HMM`
a Markov-switching regression, and with lags of y among the regressors
(:func:`lagged`) a Markov-switching vector autoregression, the multivariate
model statsmodels does not have.

The family reads one array per row: the ``n_targets`` responses first, then
the regressors. Coefficients and covariances each switch with the component
or are shared (statsmodels' ``switching_coef`` / ``switching_variance``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latentem.families.base import EmissionFamily, register_family

__all__ = ["GaussianRegressionFamily", "lagged"]

_COV_TYPES = ("full", "diag")


@register_family
class GaussianRegressionFamily(EmissionFamily):
    """K Gaussian linear regressions of ``n_targets`` responses on the other columns.

    Parameters
    ----------
    n_components : int
    n_targets : int, default=1
        How many leading columns of the data are responses; the rest are
        regressors (no gaps allowed in them).
    fit_intercept : bool, default=True
        Add a constant regressor.
    switching_coef : bool or sequence of bool, default=True
        Whether each component has its own coefficients or all share them;
        one flag per coefficient (the intercept first) lets some switch and
        others not (statsmodels' ``switching_trend`` and ``switching_exog``).
    switching_variance : bool, default=True
        Whether each component has its own error covariance.
    covariance_type : {"full", "diag"}, default="full"
        Of the responses' error covariance (the same for one response).
    covars_prior : float, default=1e-6
        A weak inverse-Wishart prior keeps covariances positive definite when
        a component holds few rows: the M-step gives
        ``Sigma_k = (E_k + Psi) / n_k`` with ``Psi = covars_prior * diag(var(y))``
        (set from the data at initialisation) and EM maximises the likelihood
        plus this prior, so it stays monotone. 0 gives maximum likelihood.

    Attributes
    ----------
    coef_ : ndarray (n_components, n_coef, n_targets)
        ``B_k``; the first row is the intercept when ``fit_intercept``.
        Equal across components when not ``switching_coef``.
    covars_ : ndarray (n_components, n_targets, n_targets) or (n_components, n_targets)
        Error covariance (full) or variances (diag).
    prior_scale_ : ndarray (n_targets,)
        The diagonal of ``Psi``.

    Rows whose responses are all NaN carry no evidence (an HMM's missing time
    steps); a row with only some responses missing is refused.

    Examples
    --------
    A mixture of two regression lines:

    >>> import numpy as np
    >>> from latentem import Mixture
    >>> from latentem.families.regression import GaussianRegressionFamily
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-2, 2, 400)
    >>> line = rng.random(400) < 0.5
    >>> y = np.where(line, 1.0 + 2.0 * x, -1.0 - 1.0 * x) + rng.normal(0, 0.1, 400)
    >>> model = Mixture(2, emission=GaussianRegressionFamily(2), random_state=0, n_init=3)
    >>> coef = model.fit(np.column_stack([y, x])).emission.coef_[:, :, 0]
    >>> np.round(coef[np.argsort(coef[:, 1])], 1)
    array([[-1., -1.],
           [ 1.,  2.]])
    """

    param_letters = "bc"
    vector_attributes = ("coef_", "covars_")

    def __init__(
        self,
        n_components: int,
        n_targets: int = 1,
        fit_intercept: bool = True,
        switching_coef: bool = True,
        switching_variance: bool = True,
        covariance_type: str = "full",
        covars_prior: float = 1e-6,
    ) -> None:
        self.n_components = n_components
        self.n_targets = n_targets
        self.fit_intercept = fit_intercept
        self.switching_coef = switching_coef
        self.switching_variance = switching_variance
        self.covariance_type = covariance_type
        self.covars_prior = covars_prior
        self.coef_: np.ndarray | None = None
        self.covars_: np.ndarray | None = None
        self.prior_scale_: np.ndarray | None = None

    # ------------------------------------------------------------------ data
    def _check_settings(self) -> None:
        m = self.n_targets
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"n_targets must be a positive integer; got {m!r}.")
        if self.covariance_type not in _COV_TYPES:
            raise ValueError(
                f"covariance_type must be one of {_COV_TYPES}; got {self.covariance_type!r}."
            )
        prior = self.covars_prior
        if not (isinstance(prior, (int, float, np.number)) and math.isfinite(prior) and prior >= 0):
            raise ValueError(f"covars_prior must be a finite number >= 0; got {prior!r}.")

    def validate_data(self, X: Any) -> np.ndarray:
        self._check_settings()
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.dtype.kind not in "iufb":
            raise ValueError(
                "regression data must be a 2-D numeric array: the responses' columns first, "
                f"then the regressors; got shape {arr.shape}, dtype {arr.dtype}."
            )
        m = self.n_targets
        if arr.shape[1] < m or (arr.shape[1] == m and not self.fit_intercept):
            raise ValueError(
                f"the data have {arr.shape[1]} columns, but the first n_targets={m} are "
                "responses and at least one regressor is needed; pass regressor columns "
                "after the responses, or use fit_intercept=True."
            )
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if not np.isfinite(arr[:, m:]).all():
            raise ValueError(
                "the regressors (the columns after the responses) contain NaN or inf; "
                "regressors cannot be missing: drop or fill those rows first."
            )
        y = arr[:, :m]
        if np.isinf(y).any():
            raise ValueError("the responses contain inf; use NaN for a missing response.")
        gaps = np.isnan(y)
        partly = gaps.any(axis=1) & ~gaps.all(axis=1)
        if partly.any():
            raise ValueError(
                f"row {int(np.flatnonzero(partly)[0])} has some responses missing and others "
                "observed, which this family does not handle; drop those rows or fill them."
            )
        return arr

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(design with the intercept, responses with gaps as 0, observed rows)."""
        m = self.n_targets
        Z = X[:, m:]
        if self.fit_intercept:
            Z = np.column_stack([np.ones(len(X)), Z])
        observed = ~np.isnan(X[:, 0])
        Y = np.where(observed[:, None], X[:, :m], 0.0)
        return Z, Y, observed

    # ------------------------------------------------------------------ parameters
    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        Z, Y, observed = self._split(X)
        var = np.var(Y[observed], axis=0) if observed.sum() > 1 else np.ones(self.n_targets)
        self.prior_scale_ = self.covars_prior * np.where(var > 0, var, 1.0)
        # every row to a random component, then one M-step (flexmix's start)
        pick = rng.integers(self.n_components, size=len(X))
        weights = np.eye(self.n_components)[pick] * observed[:, None]
        stats = self.accumulate(X, weights)
        if "b" in letters or self.coef_ is None:
            self.coef_ = self._new_coef(stats)
        if "c" in letters or self.covars_ is None:
            self.covars_ = self._covariances(self._scatter(stats, self.coef_), stats)

    def check_params(self) -> None:
        K, m = self.n_components, self.n_targets
        if self.coef_ is None or self.covars_ is None:
            raise ValueError("coef_ and covars_ are not set; fit the model or set them first.")
        coef = np.asarray(self.coef_, dtype=np.float64)
        if coef.ndim != 3 or coef.shape[0] != K or coef.shape[2] != m:
            raise ValueError(
                f"coef_ must have shape (n_components={K}, n_coef, n_targets={m}); "
                f"got {coef.shape}."
            )
        cov = np.asarray(self.covars_, dtype=np.float64)
        want = (K, m, m) if self.covariance_type == "full" else (K, m)
        if cov.shape != want:
            raise ValueError(f"covars_ must have shape {want}; got {cov.shape}.")
        if not (np.isfinite(coef).all() and np.isfinite(cov).all()):
            raise ValueError("coef_ and covars_ must be finite.")
        if self.covariance_type == "diag":
            if (cov <= 0).any():
                raise ValueError("covars_ (variances) must be positive.")
        else:
            if not np.allclose(cov, np.swapaxes(cov, 1, 2)):
                raise ValueError("covars_ must be symmetric.")
            try:
                np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:
                raise ValueError("covars_ must be positive definite.") from None
        self.coef_, self.covars_ = coef, cov

    def _full_covars(self) -> np.ndarray:
        cov = np.asarray(self.covars_, dtype=np.float64)
        return (
            cov
            if self.covariance_type == "full"
            else np.einsum("km,mn->kmn", cov, np.eye(cov.shape[1]))
        )

    # ------------------------------------------------------------------ E-step
    def log_prob(self, X: np.ndarray) -> np.ndarray:
        Z, Y, observed = self._split(X)
        if Z.shape[1] != self.coef_.shape[1]:
            raise ValueError(
                f"X has {Z.shape[1] - self.fit_intercept} regressors but the model was fitted "
                f"with {self.coef_.shape[1] - self.fit_intercept}."
            )
        chol = np.linalg.cholesky(self._full_covars())
        m = self.n_targets
        out = np.empty((len(X), self.n_components))
        for k in range(self.n_components):
            resid = Y - Z @ self.coef_[k]
            white = np.linalg.solve(chol[k], resid.T)  # L^-1 r, one column per row
            out[:, k] = (
                -0.5 * np.einsum("ij,ij->j", white, white)
                - np.log(np.diag(chol[k])).sum()
                - 0.5 * m * math.log(2.0 * math.pi)
            )
        out[~observed] = 0.0
        return out

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> dict:
        Z, Y, observed = self._split(X)
        W = weights * observed[:, None]
        return {
            "n": W.sum(axis=0),
            "zz": np.einsum("ik,ip,iq->kpq", W, Z, Z, optimize=True),
            "zy": np.einsum("ik,ip,im->kpm", W, Z, Y, optimize=True),
            "yy": np.einsum("ik,im,il->kml", W, Y, Y, optimize=True),
        }

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: dict, letters: str) -> None:
        n = stats["n"]
        alive = n > 1e-10 * max(float(n.sum()), 1.0)
        if "b" in letters:
            new = self._new_coef(stats)
            if self.coef_ is None:
                self.coef_ = new
            else:
                self.coef_ = np.where(alive[:, None, None], new, self.coef_)
        if "c" in letters:
            new = self._covariances(self._scatter(stats, self.coef_), stats)
            if self.covars_ is None:
                self.covars_ = new
            else:
                shape = (-1,) + (1,) * (new.ndim - 1)
                self.covars_ = np.where(alive.reshape(shape), new, self.covars_)

    def _switching_mask(self, n_coef: int) -> np.ndarray:
        """Which rows of ``B_k`` switch with the component (intercept first)."""
        flags = self.switching_coef
        if isinstance(flags, (bool, np.bool_)):
            return np.full(n_coef, bool(flags))
        mask = np.asarray(flags, dtype=bool).ravel()
        if mask.shape != (n_coef,):
            raise ValueError(
                f"switching_coef has {mask.size} flags but the model has {n_coef} coefficients "
                "per response (the intercept first, when fit_intercept); pass one flag each "
                "or a single bool."
            )
        return mask

    def _new_coef(self, stats: dict) -> np.ndarray:
        """The coefficients maximising the expected log-likelihood given the covariances.

        Switching rows are free per component, shared rows common to all; the
        normal equations ``sum_k M_k' (Sigma_k^-1 kron Szz_k) M_k theta =
        sum_k M_k' vec(Szy_k Sigma_k^-1)`` (``M_k`` picks component k's entries
        of the free vector ``theta``) reduce to per-component least squares
        when everything switches, and to pooled least squares for one
        response when nothing does.
        """
        K, p, m = stats["zy"].shape
        mask = self._switching_mask(p)
        if mask.all():
            return np.stack([_solve(stats["zz"][k], stats["zy"][k]) for k in range(K)])
        if self.covars_ is None or (m == 1 and not self.switching_variance):
            prec = np.broadcast_to(np.eye(m), (K, m, m))  # the covariance cancels
        else:
            prec = np.linalg.inv(self._full_covars())
        index = _free_index(mask, K, m)  # (K, p, m) position of each entry in theta
        size = int(index.max()) + 1
        A = np.zeros((size, size))
        b = np.zeros(size)
        for k in range(K):
            at = index[k].ravel(order="F")
            np.add.at(A, (at[:, None], at[None, :]), np.kron(prec[k], stats["zz"][k]))
            np.add.at(b, at, (stats["zy"][k] @ prec[k]).ravel(order="F"))
        theta = _solve(A, b[:, None])[:, 0]
        return theta[index]

    @staticmethod
    def _scatter(stats: dict, coef: np.ndarray) -> np.ndarray:
        """``sum_i w_ik (y_i - B_k' z_i)(y_i - B_k' z_i)'`` per component."""
        bzy = np.einsum("kpm,kpl->kml", coef, stats["zy"])
        bzzb = np.einsum("kpm,kpq,kql->kml", coef, stats["zz"], coef)
        E = stats["yy"] - bzy - np.swapaxes(bzy, 1, 2) + bzzb
        return 0.5 * (E + np.swapaxes(E, 1, 2))

    def _covariances(self, E: np.ndarray, stats: dict) -> np.ndarray:
        n = stats["n"]
        psi = np.diag(self.prior_scale_)
        K = self.n_components
        if self.switching_variance:
            cov = (E + psi) / np.maximum(n, 1e-300)[:, None, None]
        else:  # the prior counts once for the one shared covariance
            cov = np.broadcast_to((E.sum(axis=0) + psi) / max(float(n.sum()), 1e-300), E.shape)
        cov = np.array(cov)
        floor = 1e-12 * np.maximum(np.einsum("kmm->km", cov).max(axis=1), 1e-300)
        cov += floor[:, None, None] * np.eye(self.n_targets)  # rounding guard only
        if self.covariance_type == "diag":
            return np.ascontiguousarray(np.einsum("kmm->km", cov)).reshape(K, -1)
        return cov

    def log_prior(self) -> float:
        """``-1/2 tr(Psi Sigma_k^-1)`` over the distinct covariances (what the M-step adds)."""
        if self.prior_scale_ is None or not np.any(self.prior_scale_):
            return 0.0
        cov = self._full_covars() if self.switching_variance else self._full_covars()[:1]
        prec_diag = np.einsum("kmm->km", np.linalg.inv(cov))
        return float(-0.5 * np.sum(prec_diag * self.prior_scale_))

    # ------------------------------------------------------------------ the rest
    def n_parameters(self) -> int:
        K, p, m = np.shape(self.coef_)
        switching = int(self._switching_mask(p).sum())
        coef = m * (switching * K + p - switching)
        per_cov = m * (m + 1) // 2 if self.covariance_type == "full" else m
        return int(coef + per_cov * (K if self.switching_variance else 1))

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise ValueError(
            "a regression family draws responses given regressors, which sample() does not "
            "have; use GaussianRegressionFamily.sample_given(regressors, states, rng)."
        )

    def sample_given(self, regressors: Any, states: Any, rng: np.random.Generator) -> np.ndarray:
        """Responses drawn for each row of ``regressors`` under its component in ``states``."""
        R = np.asarray(regressors, dtype=np.float64).reshape(len(states), -1)
        Z = np.column_stack([np.ones(len(R)), R]) if self.fit_intercept else R
        states = np.asarray(states, dtype=np.int64)
        mean = np.einsum("ip,ipm->im", Z, self.coef_[states])
        chol = np.linalg.cholesky(self._full_covars())[states]
        noise = np.einsum("iml,il->im", chol, rng.standard_normal(mean.shape))
        return mean + noise


def _free_index(mask: np.ndarray, K: int, m: int) -> np.ndarray:
    """``index[k, r, j]``: where entry (r, j) of component k's coefficients sits in the
    free vector (switching rows have one entry per component, shared rows one)."""
    p = len(mask)
    index = np.empty((K, p, m), dtype=np.int64)
    nxt = 0
    for r in range(p):
        for j in range(m):
            if mask[r]:
                index[:, r, j] = np.arange(nxt, nxt + K)
                nxt += K
            else:
                index[:, r, j] = nxt
                nxt += 1
    return index


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A^-1 b`` for a symmetric positive semi-definite A (least squares if singular)."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def lagged(y: Any, order: int, exog: Any = None) -> np.ndarray:
    """Rows ``[y_t, y_{t-1}, ..., y_{t-order}, exog_t]`` for t = order .. n-1.

    The data of a (Markov-switching) vector autoregression of ``order`` for
    :class:`GaussianRegressionFamily` with ``n_targets = y.shape[1]``: the first
    ``order`` rows have no full history and are dropped.

    Examples
    --------
    >>> import numpy as np
    >>> lagged(np.arange(5.0), 2)
    array([[2., 1., 0.],
           [3., 2., 1.],
           [4., 3., 2.]])
    """
    Y = np.asarray(y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise ValueError(f"order must be an integer >= 0; got {order!r}.")
    n = len(Y)
    if n <= order:
        raise ValueError(f"y has {n} rows; an order-{order} model needs at least {order + 1}.")
    blocks = [Y[order - lag : n - lag] for lag in range(order + 1)]
    if exog is not None:
        E = np.asarray(exog, dtype=np.float64)
        E = E.reshape(-1, 1) if E.ndim == 1 else E
        if len(E) != n:
            raise ValueError(f"exog has {len(E)} rows but y has {n}; pass one row per y row.")
        blocks.append(E[order:])
    return np.column_stack(blocks)
