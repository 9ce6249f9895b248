"""Factor analysis, probabilistic PCA and mixtures of factor analysers, fitted by EM with gaps.

All three are Gaussian models whose covariances have a low-rank-plus-diagonal
structure: component k of a mixture (one component for factor analysis) is
``x = mu_k + L_k u + e`` with ``u`` a q-dimensional latent factor and ``e``
independent noise with diagonal covariance ``Psi_k``, so
``x ~ N(mu_k, C_k)`` with ``C_k = L_k Cov(u) L_k^T + Psi_k``.

How EM runs here
----------------
Given the whole row ``x``, the posterior of the factors is Gaussian with a
mean *linear in x*, ``E[u | x, k] = a_k + G_k (x - mu_k)``, and a covariance
``V_k`` that does not depend on x. So every expected complete-data statistic
(``E[x u^T]``, ``E[u u^T]``, ``E[x_j^2]``) is a linear function of the
row's first and second moments. With gaps, the tower rule
``E[f(x) | x_obs] = E[E[f(x) | x] | x_obs]`` turns them into linear
functions of ``E[x | x_obs]`` and ``E[x x^T | x_obs]``, the conditional
moments of the marginal Gaussian ``N(mu_k, C_k)``. Those are exactly what the
Gaussian family with gaps
(:class:`~latentem.families.gaussian_missing.MissingGaussianFamily`, the
imputer's engine) computes: rows grouped by missingness pattern, the missing
cells marginalised exactly in the likelihood and their conditional
covariance added to the second moments. So the E-step here is that family's
E-step under the structured covariances ``C_k`` (statistics
``(n_k, S_k, Q_k)``: weights, first and second moments about the current
means), and the M-step maps them through ``a_k, G_k, V_k`` to the factor
statistics and solves the usual closed-form updates (Ghahramani and Hinton,
1996; Baek, McLachlan and Flack, 2010). It is exact EM: the likelihood never
decreases.

For one component (factor analysis, PPCA) the moments of the complete rows
do not depend on the parameters at all. They are computed once per fit, so
an iteration on complete data costs O(D^3), independent of the number of
rows; only rows with gaps are visited every iteration.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from latentem._sklearn import (
    OutputMixin,
    check_n_features,
    note_features,
    transformer_tags,
)
from latentem._validation import check_array, check_positive_int, check_random_state
from latentem.base import InitParamsSetting, ParamsMixin, not_fitted_error
from latentem.families.gaussian_missing import (
    SERIAL_BELOW,
    MissingGaussianFamily,
    MissingPlan,
    missing_plan,
)
from latentem.kernels._dispatch import serial_when_small
from latentem.kernels.gaussian_missing import available_case_cov
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em

__all__ = ["FactorAnalysis", "PPCA", "MixtureOfFactorAnalyzers"]

_LOG_2PI = math.log(2.0 * math.pi)
#: A component whose expected count falls below this fraction of the rows keeps
#: its parameters in the M-step (its weight goes to zero).
_EMPTY_FRACTION = 1e-10


# ---------------------------------------------------------------------- data prepared once
@dataclasses.dataclass
class _Prepared:
    """X checked once per fit, with its missingness plan and, for one component,
    the moments of its complete rows (which no parameter changes)."""

    X: np.ndarray
    plan: MissingPlan
    X_complete: np.ndarray | None = None
    complete_moments: tuple[float, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


def _prepare(X: np.ndarray, one_component: bool) -> _Prepared:
    plan = missing_plan(X)
    Xc = X if plan.complete.size == X.shape[0] else np.ascontiguousarray(X[plan.complete])
    prep = _Prepared(X, plan, Xc)
    if one_component and plan.complete.size:
        n = float(Xc.shape[0])
        m = Xc.mean(axis=0)
        d = Xc - m
        Q = d.T @ d
        prep.complete_moments = (n, m, 0.5 * (Q + Q.T))
    return prep


def _check_X(X: Any, min_samples: int = 1) -> np.ndarray:
    """2-D float64, NaN allowed for gaps, no inf, no column entirely missing."""
    X = check_array(X, name="X", allow_nan=True, min_samples=min_samples, one_d_as_column=False)
    X = np.ascontiguousarray(X, dtype=np.float64)
    nan = np.isnan(X)
    if nan.any():
        empty_cols = np.flatnonzero(nan.all(axis=0))
        if empty_cols.size:
            raise ValueError(
                f"column(s) {empty_cols.tolist()} of X are entirely missing (NaN); drop them: "
                "the model cannot learn anything about a column it never sees."
            )
    return X


def _check_real(value: Any, name: str, low: float, *, strict: bool) -> float:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if bad or not math.isfinite(value) or (value <= low if strict else value < low):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {low:g}; got {value!r}.")
    return float(value)


# ---------------------------------------------------------------------- shared algebra
def _factor_posterior(P: np.ndarray, L: np.ndarray, Cu: np.ndarray) -> tuple:
    """``G = Cu L^T P`` and ``V = Cu - G L Cu``: E[u | x] = a + G (x - mu), Cov(u | x) = V,
    for ``x = mu + L u + e`` with ``Cov(u) = Cu`` and ``P`` the precision of x."""
    G = Cu @ L.T @ P
    V = Cu - G @ L @ Cu
    return G, 0.5 * (V + V.T)


def _factor_moments(nk, S, Q, a, G, V):
    """Expected factor statistics of one component from its data moments about its mean.

    Returns ``(Eu, Euu, Edu)``: ``sum r E[u]`` (q,), ``sum r E[u u^T]`` (q, q) and
    ``sum r (x - mu) E[u]^T`` (D, q), with ``E[u | x] = a + G (x - mu)``.
    """
    GS = G @ S
    Eu = nk * a + GS
    Euu = nk * V + nk * np.outer(a, a) + np.outer(a, GS) + np.outer(GS, a) + G @ Q @ G.T
    Edu = np.outer(S, a) + Q @ G.T
    return Eu, 0.5 * (Euu + Euu.T), Edu


def _residual_diag(nk, S, Q, H, c, Ln, V):
    """``diag sum r E[(x - mu - ...)(...)^T]`` for the residual ``H (x - mu) + c - Ln eta``
    with ``eta ~ N(0, V)`` independent of x: the noise update's numerator."""
    HQ = H @ Q
    HS = H @ S
    out = np.einsum("ij,ij->i", HQ, H) + 2.0 * HS * c + nk * c * c
    out += nk * np.einsum("ij,ij->i", Ln @ V, Ln)
    return np.maximum(out, 0.0)


def _pca_start(cov: np.ndarray, q: int) -> tuple[np.ndarray, float]:
    """Tipping and Bishop's maximum-likelihood PPCA of a covariance matrix:
    ``(W (D, q), sigma2)``, W = U_q (Lambda_q - sigma2 I)^(1/2)."""
    D = cov.shape[0]
    lam, U = np.linalg.eigh(cov)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = float(lam[q:].mean()) if q < D else 0.0
    W = U[:, :q] * np.sqrt(np.maximum(lam[:q] - sigma2, 0.0))
    return W, sigma2


def ppca_closed_form(X: Any, n_components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Tipping and Bishop's closed-form maximum-likelihood PPCA of complete data.

    Returns ``(mean, W, sigma2)`` with ``W = U_q (Lambda_q - sigma2 I)^(1/2)``,
    ``U_q, Lambda_q`` the leading eigenvectors and eigenvalues of the sample
    covariance (divided by n) and ``sigma2`` the mean of the others. ``W`` is
    unique up to a rotation ``W R``; ``W W^T`` is unique.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.factor import ppca_closed_form
    >>> X = np.random.default_rng(0).normal(size=(200, 3)) * [3.0, 1.0, 1.0]
    >>> mean, W, sigma2 = ppca_closed_form(X, 1)
    >>> W.shape, bool(sigma2 < 1.5)
    ((3, 1), True)
    """
    X = check_array(X, name="X", min_samples=2)
    q = check_positive_int(n_components, "n_components")
    if q > X.shape[1]:
        raise ValueError(f"n_components={q} exceeds the number of features {X.shape[1]}.")
    mean = X.mean(axis=0)
    d = X - mean
    W, sigma2 = _pca_start(d.T @ d / X.shape[0], q)
    return mean, W, sigma2


def orthogonal_rotation(
    loadings: Any, method: str = "varimax", tol: float = 1e-6, max_iter: int = 100
) -> np.ndarray:
    """Rotate loadings (n_features, n_factors) orthogonally by varimax or quartimax.

    Kaiser's (1958) criterion maximised by the usual SVD iteration: with
    ``L = A R``, ``R <- U V^T`` from the SVD of ``A^T (L^3 - L diag(mean(L^2)))``
    (varimax; quartimax drops the second term), until the criterion grows by
    less than ``tol`` (relative). ``L L^T = A A^T``: the fit is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.factor import orthogonal_rotation
    >>> A = np.array([[0.9, 0.1], [0.8, 0.0], [0.7, 0.2], [0.1, 0.9], [0.0, 0.8], [0.2, 0.7]])
    >>> c, s = np.cos(0.5), np.sin(0.5)
    >>> L = orthogonal_rotation(A @ np.array([[c, -s], [s, c]]))  # a rotated simple structure
    >>> np.abs(L).round(1)  # recovered
    array([[0.9, 0.1],
           [0.8, 0. ],
           [0.7, 0.2],
           [0.1, 0.9],
           [0. , 0.8],
           [0.2, 0.7]])
    """
    if method not in ("varimax", "quartimax"):
        raise ValueError(f'method must be "varimax" or "quartimax"; got {method!r}.')
    A = np.asarray(loadings, dtype=np.float64)
    D, q = A.shape
    R = np.eye(q)
    crit = 0.0
    for _ in range(max_iter):
        L = A @ R
        target = L**3
        if method == "varimax":
            target = target - L * ((L**2).sum(axis=0) / D)
        U, sv, Vt = np.linalg.svd(A.T @ target)
        R = U @ Vt
        new = float(sv.sum())
        if crit != 0.0 and new < crit * (1.0 + tol):
            break
        crit = new
    return A @ R


class _FactorModel(OutputMixin, SaveMixin, ParamsMixin):
    """What factor analysis, PPCA and mixtures of factor analysers share:
    data checks, the E-step through the Gaussian family with gaps, scoring."""

    init_params = InitParamsSetting()
    _INIT_METHODS: tuple[str, ...] = ()

    def _finish_file(self) -> None:
        """After loading a model file: rebuild and check a fitted model's covariances."""
        if "components_" in vars(self):
            self._finish_load()

    # -------------------------------------------------------------- subclasses define
    # _n_mix() (mixture components), _n_factors(), _check_settings(),
    # _init_params(X, rng), m_step(stats) and the parameter-vector pair.

    # -------------------------------------------------------------- checks
    def _check_common_settings(self) -> None:
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        _check_real(self.tol, "tol", 0.0, strict=False)
        _check_real(self.noise_floor, "noise_floor", 0.0, strict=True)
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')
        if str(self.init_params) not in self._INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {self._INIT_METHODS}; got {str(self.init_params)!r}."
            )

    def _check_dims(self, X: np.ndarray) -> None:
        n, D = X.shape
        q = self._n_factors()
        if q > D:
            raise ValueError(
                f"{self._q_name}={q} is larger than the number of features {D}; "
                f"use at most {D} factors."
            )
        K = self._n_mix()
        if n < max(K, 2):
            raise ValueError(
                f"X has {n} rows (n_samples={n}); {type(self).__name__} needs at least {max(K, 2)} "
                f"(n_components={K}). Pass more data or use fewer components."
            )
        if self._fitted() and getattr(self, "warm_start", False) and D != self.n_features_in_:
            raise ValueError(
                f"X has {D} features but the model was fitted with {self.n_features_in_}; "
                "warm_start needs the same features."
            )

    def validate_data(self, X: Any) -> _Prepared:
        """Check X once per fit (NaN marks a gap; inf, all-missing columns are errors).

        Returns the data with its missingness plan (and, for one component,
        the moments of its complete rows); X itself is not modified.
        """
        self._check_settings()
        if isinstance(X, _Prepared):
            return X
        X = _check_X(X)
        self._check_dims(X)
        return _prepare(X, self._n_mix() == 1)

    def validate_block(self, X: Any) -> np.ndarray:
        """Check one block of a larger data set (chunked, Dask and online fits)."""
        X = check_array(X, name="X", allow_nan=True, one_d_as_column=False)
        X = np.ascontiguousarray(X, dtype=np.float64)
        if self._fitted():
            check_n_features(self, X.shape[1])
        return X

    def _check_input(self, X: Any) -> np.ndarray:
        self._require_fitted()
        note_features(self, X, reset=False)
        X = check_array(X, name="X", allow_nan=True, one_d_as_column=False)
        check_n_features(self, X.shape[1])
        return np.ascontiguousarray(X, dtype=np.float64)

    def _fitted(self) -> bool:
        return "n_features_in_" in self.__dict__ and "_family" in self.__dict__

    def _require_fitted(self) -> None:
        if not self._fitted():
            raise not_fitted_error(self)

    def _sklearn_tags(self, tags: Any) -> Any:
        return transformer_tags(tags, allow_nan=True, preserves_dtype=["float64"])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the factors ``transform`` returns: the class name in lower case
        and an index (``factoranalysis0``, ...), as scikit-learn names them."""
        self._require_fitted()
        q = getattr(self, "n_factors", None)  # mixtures of factor analysers
        return self._feature_prefix_names(int(q if q else self.components_.shape[0]))

    # -------------------------------------------------------------- starting values
    def _start_moments(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Available-case mean and covariance (the complete-data ones without gaps;
        taken from the prepared moments when there are no gaps)."""
        prep = X if isinstance(X, _Prepared) else None
        if prep is not None and prep.complete_moments is not None and not prep.plan.partial.size:
            n, mean, Q = prep.complete_moments
            cov = Q / n
        else:
            mean, cov, _ = available_case_cov(prep.X if prep is not None else X)
            cov = 0.5 * (cov + cov.T)
        self._floor = self.noise_floor * np.where(np.diag(cov) > 0, np.diag(cov), 1.0)
        return mean, cov

    def _fa_start(self, cov: np.ndarray, q: int, rng, random: bool) -> tuple:
        """Loadings and noise variances to start factor analysis from a covariance."""
        D = cov.shape[0]
        var = np.maximum(np.diag(cov), self._floor)
        if random:
            W = rng.standard_normal((D, q)) * np.sqrt(var.mean() / max(q, 1))
            psi = var.copy()
        else:
            W, sigma2 = _pca_start(cov, q)
            psi = np.maximum(var - np.einsum("ij,ij->i", W, W), 0.0)
            psi = np.maximum(psi, max(sigma2, 0.0) * 0.5)
        return W, np.maximum(psi, np.maximum(self._floor, 1e-3 * var))

    # -------------------------------------------------------------- the family
    def _set_family(self, means: np.ndarray, covs: np.ndarray) -> None:
        K, D = means.shape
        fam = self.__dict__.get("_family")
        if fam is None or fam.n_components != K or fam.n_features != D:
            fam = MissingGaussianFamily(K, D, "full", 0.0)
        try:
            fam.set_parameters(means, covs)
        except ValueError:
            raise ValueError(
                "a model covariance is not numerically positive definite; raise noise_floor "
                f"(now {self.noise_floor:g}) or use fewer factors."
            ) from None
        self._family = fam

    def _log_weights(self) -> np.ndarray:
        return np.zeros(1)

    # -------------------------------------------------------------- protocol
    def e_step(self, X: Any) -> tuple[dict, float]:
        """Statistics ``{"nk", "sum", "second"}`` (weights, first and second moments of
        the rows about each component's current mean, gaps in expectation) and the
        observed-data log-likelihood."""
        fam = self._family
        log_w = self._log_weights()
        if not isinstance(X, _Prepared):
            (nk, S, Q), ll = fam.mixture_e_step(X, log_w)
            return {"nk": nk, "sum": S, "second": Q}, ll
        plan = X.plan
        if X.complete_moments is None:
            (nk, S, Q), ll = fam.mixture_e_step(X.X, log_w, plan, X.X_complete)
            return {"nk": nk, "sum": S, "second": Q}, ll
        # one component, complete rows from their moments: O(D^3), no pass over them
        n, m, Q0 = X.complete_moments
        mu = fam.means_[0]
        e = m - mu
        Q = Q0 + n * np.outer(e, e)
        _, P, logdet = fam._precision_parts()
        D = mu.shape[0]
        ll = -0.5 * (n * (D * _LOG_2PI + logdet[0]) + float(np.sum(P[0] * Q)))
        nk, S, Q = np.array([n]), (n * e)[None], Q[None]
        if plan.partial.size:
            only_partial = dataclasses.replace(plan, complete=np.zeros(0, dtype=np.int64))
            (nk2, S2, Q2), ll2 = fam.mixture_e_step(X.X, log_w, only_partial)
            nk, S, Q, ll = nk + nk2, S + S2, Q + Q2, ll + ll2
        return {"nk": nk, "sum": S, "second": Q}, float(ll)

    def log_likelihood(self, X: Any) -> float:
        """Total observed-data log-likelihood of X (gaps marginalised)."""
        if isinstance(X, _Prepared):
            return float(self.e_step(X)[1])
        return float(self._row_scores(np.asarray(X, dtype=np.float64)).sum())

    def _row_scores(self, X: np.ndarray) -> np.ndarray:
        """log p(x_obs) of every row (0 for rows entirely missing)."""
        lp = self._row_logprob(X)
        top = lp.max(axis=1, keepdims=True)
        out = (top + np.log(np.exp(lp - top).sum(axis=1, keepdims=True)))[:, 0]
        out[np.isnan(X).all(axis=1)] = 0.0
        return out

    def _row_logprob(self, X: np.ndarray) -> np.ndarray:
        """log p(x_obs | component) + log weight, shape (n, K); all-NaN rows give log weight."""
        return self._family.log_prob(X) + self._log_weights()

    def fit(self, X: Any, y: Any = None):
        """Estimate the parameters by EM; NaN cells are marginalised exactly.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing cell. Rows entirely missing carry no
            information and are ignored; a column entirely missing is an error.
        y : ignored

        Returns
        -------
        self
        """
        warm = bool(getattr(self, "warm_start", False)) and self._fitted()
        note_features(self, X, reset=not warm)
        result = fit_em(
            self,
            X,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=1 if warm else self.n_init,
            random_state=self.random_state,
            accelerate=self.accelerate,
            verbose=self.verbose,
            warm_start=warm,
        )
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.history_ = np.asarray(result.history)
        self.loglike_ = list(self.history_)
        self.lower_bound_ = float(result.log_likelihood) / result.n_samples
        self._after_fit()
        return self

    def _after_fit(self) -> None:
        """Final touches after EM (FactorAnalysis rotates its loadings)."""

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of the observed cells of every row, shape (n_samples,).

        Gaps are marginalised; a row entirely missing scores 0.
        """
        return self._row_scores(self._check_input(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean per-row log-likelihood (scikit-learn's ``score``)."""
        return float(self.score_samples(X).mean())

    def impute(self, X: Any) -> np.ndarray:
        """X with every NaN replaced by its conditional mean given the row's observed cells.

        Under the fitted low-rank-plus-diagonal covariance: ``E[x_m | x_o]``
        (for mixtures, averaged over components by :meth:`predict_proba`).
        Rows entirely missing get the (weighted) mean. Returns a new array;
        X is not modified.

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import FactorAnalysis
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(300, 1)) @ [[1.0, 2.0, -1.0]] + 0.1 * rng.normal(size=(300, 3))
        >>> fa = FactorAnalysis(1).fit(X)
        >>> filled = fa.impute([[1.0, np.nan, np.nan]])  # about [1, 2, -1]
        >>> bool(np.allclose(filled, [[1.0, 2.0, -1.0]], atol=0.1))
        True
        """
        X = self._check_input(X)
        K = self._family.n_components
        weights = np.ones((X.shape[0], 1)) if K == 1 else self.predict_proba(X)
        return self._family.fill(X, weights)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        X = self._check_input(X)
        n = int((~np.isnan(X).all(axis=1)).sum())
        return -2.0 * float(self.score_samples(X).sum()) + self.n_parameters() * math.log(n)

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        X = self._check_input(X)
        return -2.0 * float(self.score_samples(X).sum()) + 2.0 * self.n_parameters()

    def _posterior_factor_means(self, X: np.ndarray, k: int, a, G) -> np.ndarray:
        """``E[u | x_obs, k] = a + G (E[x | x_obs, k] - mu_k)`` for every row (tower rule)."""
        fam = self._family
        W = np.zeros((X.shape[0], fam.n_components))
        W[:, k] = 1.0
        filled = fam.fill(X, W) if np.isnan(X).any() else X
        return a + (filled - fam.means_[k]) @ G.T


# ---------------------------------------------------------------------- FA and PPCA
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
        G, V = _factor_posterior(P, W, np.eye(q))
        Eu, Euu, Edu = _factor_moments(nk, S, Q, np.zeros(q), G, V)
        # regression of (x - mu) on [u, 1]: loadings and the mean's shift together
        XZ = np.column_stack([Edu, S])
        ZZ = np.block([[Euu, Eu[:, None]], [Eu[None, :], np.array([[nk]])]])
        Lam = np.linalg.solve(ZZ, XZ.T).T
        Wn, shift = Lam[:, :q], Lam[:, q]
        H = np.eye(D) - Wn @ G
        resid = _residual_diag(nk, S, Q, H, -shift, Wn, V) / nk
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

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return :meth:`transform` of X."""
        return self.fit(X).transform(X)

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


# ---------------------------------------------------------------------- mixtures
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
        K, D, q = self.n_components, self.n_features_in_, self.n_factors
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
                G, V = _factor_posterior(P_all[k], L[k], Cu[k])
                Eu, Euu, Edu = _factor_moments(nk, S, Q, np.zeros(q), G, V)
                XZ = np.column_stack([Edu, S])
                ZZ = np.block([[Euu, Eu[:, None]], [Eu[None, :], np.array([[nk]])]])
                Lam = np.linalg.solve(ZZ, XZ.T).T
                Wn, shift = Lam[:, :q], Lam[:, q]
                resid[k] = _residual_diag(nk, S, Q, np.eye(D) - Wn @ G, -shift, Wn, V)
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

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return :meth:`transform` of X."""
        return self.fit(X).transform(X)

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
