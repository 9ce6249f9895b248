"""EM imputation of missing values under a multivariate normal or a Gaussian mixture.

:class:`EMImputer` fits the model to the observed entries by EM (the E-step
fills each gap with its conditional mean and adds the conditional
covariance to the second moments; see :mod:`latentem.kernels.gaussian_missing`),
then fills gaps from per-column Bayesian ridge regressions derived from the
fitted moments, or with plain conditional means (:meth:`EMImputer.transform`), or
draws them with parameter uncertainty for multiple imputation
(:meth:`EMImputer.sample_imputations`, bootstrap EM as in Amelia).
:func:`pool_estimates` combines the analyses of the imputed data sets by
Rubin's rules.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem._sklearn import OutputMixin, check_n_features, note_features, transformer_tags
from latentem._validation import (
    as_numeric_array,
    check_mixture_settings,
    check_positive_int,
    check_random_state,
)
from latentem.backends import Chunked, is_dask_array, is_out_of_core
from latentem.base import ParamsMixin, not_fitted_error
from latentem.families.gaussian_missing import (
    MissingGaussianFamily,
    bayesian_ridge_regressions,
    missing_plan,
)
from latentem.kernels.gaussian_missing import available_case_cov
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.latent import CategoricalLatent
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import ConvergenceWarning, fit_em

__all__ = ["EMImputer", "PooledEstimate", "pool_estimates"]

NON_NUMERIC = ("error", "passthrough")

#: ``ridge="auto"``: candidate ridges as fractions of the number of rows (the
#: prior is centred on the partial variances, see ``EMImputer._fit_auto``), and
#: the fraction of observed cells held out to compare them; AUTO_FALLBACK *
#: n_samples is used (centred on the variances) when no candidate can be fitted.
AUTO_RIDGE_GRID = (0.0, 0.03, 0.1, 0.2, 0.4)
AUTO_HOLDOUT = 0.1
AUTO_FALLBACK = 0.01
AUTO_HOLDOUT_SEED = 0x1A7E4E  # held-out cells when random_state is None

#: ``sample_imputations`` with ``bounds``: a row whose draw falls outside is
#: drawn again at most this many times, then clipped (Amelia's ``max.resample``).
MAX_REDRAWS = 100

#: A table has "many rows" when it has at least MANY_ROWS observed values per
#: column for every column (observed cells >= MANY_ROWS * D^2): its maximum is
#: well determined, so ``ridge="auto"`` skips its search (the best prior is
#: close to none) and one normal starts from the available-case covariance.
MANY_ROWS = 100


def _many_rows(X: np.ndarray) -> bool:
    # the threshold is read from the package (latentem.models.imputer) at call time,
    # so that setting latentem.models.imputer.MANY_ROWS still takes effect
    from latentem.models import imputer

    D = X.shape[1]
    return int(np.count_nonzero(~np.isnan(X))) >= imputer.MANY_ROWS * D * D


#: A component whose expected count falls below this fraction of the sample
#: size is considered empty and re-seeded (as in GaussianMixture).
EMPTY_FRACTION = 1e-10

_NOT_PD_HINT = (
    "the covariance estimate is not positive definite ({err}). A column may be constant, "
    "an exact linear combination of others, or have too few observed values for "
    "{n_components} component(s), or a mixture component collapsed onto a few rows. Pass "
    "ridge > 0 (a prior worth that many observations that shrinks covariances towards the "
    "diagonal of the observed variances: ridge=1 is enough to stop a component collapsing; "
    "up to 0.01 * n_samples as Amelia's empri for collinear columns), or reg_covar > 0, or "
    "drop the offending columns."
)


# ---------------------------------------------------------------------- tables in and out
def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


class _Table:
    """The numeric block of an array or DataFrame as float64, and how to put it back."""

    def __init__(self, X: Any, non_numeric: str) -> None:
        if isinstance(X, Chunked):  # out-of-core data asked for in memory
            X = X.read(0, len(X))
        self.frame = _is_frame(X)
        self.source = X
        if self.frame:
            from pandas.api.types import is_numeric_dtype

            cols = list(X.columns)
            numeric = [i for i, t in enumerate(X.dtypes) if is_numeric_dtype(t)]
            other = [str(cols[i]) for i in range(len(cols)) if i not in set(numeric)]
            if other and non_numeric == "error":
                raise ValueError(
                    f"X has non-numeric columns {other}; drop or encode them, or pass "
                    "non_numeric='passthrough' to leave them untouched."
                )
            self.positions = numeric
            self.names = [str(cols[i]) for i in numeric]
            self.labels = [cols[i] for i in numeric]
            block = X.iloc[:, numeric]
            arr = block.to_numpy(dtype=np.float64, na_value=np.nan)
            self.dtype = np.float64
        else:
            arr = as_numeric_array(X, name="X")  # sparse, text, complex, 1-D: refused
            if arr.ndim != 2:
                raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}.")
            self.dtype = np.float32 if arr.dtype == np.float32 else np.float64
            self.names = [str(j) for j in range(arr.shape[1])]
            self.labels = None
            arr = np.array(arr, dtype=np.float64, order="C")  # always a private copy
        self.X = np.ascontiguousarray(arr)
        inf = np.isinf(self.X).any(axis=0)
        if inf.any():
            raise ValueError(
                f"X contains inf in {self._cols(np.flatnonzero(inf))}; replace it with a finite "
                "value or NaN."
            )

    def _cols(self, idx) -> str:
        if self.frame:
            names = [repr(self.names[j]) for j in idx]
        else:
            names = [self.names[j] for j in idx]
        head = "column " if len(names) == 1 else "columns "
        return head + ", ".join(names)

    def rebuild(self, filled: np.ndarray) -> Any:
        """``filled`` (n, D) as the input's type: same index, columns and other columns."""
        if not self.frame:
            return filled.astype(self.dtype, copy=False)
        out = self.source.copy()
        had_nan = np.isnan(self.X).any(axis=0)
        for j, pos in enumerate(self.positions):
            if had_nan[j]:
                out.isetitem(pos, filled[:, j])
        return out


# ---------------------------------------------------------------------- the EM model
class _MissingEM:
    """A Gaussian mixture (K >= 1) with gaps as a :class:`latentem.LatentModel`.

    With ``ridge > 0`` EM maximises the log-likelihood plus the log of a
    prior worth ``ridge`` observations per component, centred on the
    diagonal ``prior_var`` (``Sigma = (n_k Sigma_ML + ridge diag(prior_var)) /
    (n_k + ridge)``). :meth:`log_prior` is what :func:`latentem.fit_em` adds
    to the log-likelihood to get the objective that never decreases.
    """

    def __init__(self, n_components, covariance_type, reg_covar, ridge, prior_var):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.ridge = ridge
        self.prior_var = prior_var
        D = prior_var.shape[0]
        self.family = MissingGaussianFamily(n_components, D, covariance_type, reg_covar)
        self.latent = CategoricalLatent(n_components)

    def attach(self, X: np.ndarray) -> None:
        """Group X's rows by missingness once; the E-step reuses the grouping."""
        self.plan = missing_plan(X)
        self.X_complete = np.ascontiguousarray(X[self.plan.complete])
        self._attached = X

    def _ensure_attached(self, X: np.ndarray) -> None:
        # online EM hands every batch straight to init_params / e_step
        if self.__dict__.get("_attached") is not X:
            self.attach(X)

    def validate_data(self, X: Any) -> np.ndarray:
        """X as float64 rows (NaN marks the gaps); blocks of out-of-core data come here too."""
        X = np.ascontiguousarray(X, dtype=np.float64)  # in-memory tables: X itself
        D = self.prior_var.shape[0]
        if X.ndim != 2 or X.shape[1] != D:
            raise ValueError(f"a block of X has shape {X.shape}; expected (n_rows, {D}).")
        if np.isinf(X).any():
            raise ValueError("a block of X contains inf; replace it with a finite value or NaN.")
        return X

    def __getstate__(self) -> dict:
        # Dask sends the model to the workers every iteration: parameters only,
        # not the rows it was last attached to or the family's per-data caches
        state = {
            k: v for k, v in self.__dict__.items() if k not in ("_attached", "plan", "X_complete")
        }
        family = copy.copy(self.family)
        family._plan_cache = family._tables_cache = None
        state["family"] = family
        return state

    def _layout(self, var: np.ndarray) -> np.ndarray:
        K, ct = self.n_components, self.covariance_type
        if ct == "full":
            return np.tile(np.diag(var), (K, 1, 1))
        if ct == "tied":
            return np.diag(var)
        if ct == "diag":
            return np.tile(var, (K, 1))
        return np.full(K, var.mean())

    def init_params(self, X: np.ndarray, rng: np.random.Generator) -> None:
        self._ensure_attached(X)
        n, D = X.shape
        K = self.n_components
        # one normal on many rows starts from the available-case covariance: close
        # to the maximum, so EM needs about half the iterations. Small tables keep
        # the independent start: EM stopped early from it imputes better there
        # (the available-case start did worse at 50% missing)
        pairwise = K == 1 and self.covariance_type in ("full", "tied") and _many_rows(X)
        if pairwise:
            col_mean, cov, _ = available_case_cov(np.ascontiguousarray(X, dtype=np.float64))
            col_var = np.diag(cov).copy()
        else:
            col_mean = np.nanmean(X, axis=0)
            col_var = np.nanvar(X, axis=0)
        if K == 1:
            W = np.ones((n, 1))
            shift = col_mean[None, :]
        else:  # k-means++ on mean-filled rows, as GaussianMixture's "kmeans++"
            filled = np.where(np.isnan(X), col_mean, X)
            first = int(rng.integers(n))
            uniforms = rng.random((max(K - 1, 0), 2 + int(math.log(K))))
            idx = kmeans_plusplus(filled, K, first, uniforms)
            centers = np.ascontiguousarray(filled[idx], dtype=np.float64)
            centers, labels, _ = lloyd(filled, centers, 0)
            W = np.zeros((n, K))
            W[np.arange(n), labels] = 1.0
            shift = centers
        if pairwise:
            try:
                self._set(shift, cov if self.covariance_type == "tied" else cov[None])
            except ValueError:  # not positive definite: the independent start
                pairwise = False
        if not pairwise:
            self._set(shift, self._layout(np.where(col_var > 0, col_var, 1.0)))
        stats = self.family.accumulate(X, W, self.plan)
        self._m_gauss(stats)
        self.latent = CategoricalLatent(K)
        self.latent.m_step(stats[0])

    def _set(self, means, cov) -> None:
        try:
            self.family.set_parameters(means, cov)
            self.family._precision_parts()  # the factors the E-step needs
        except (ValueError, np.linalg.LinAlgError) as err:
            raise ValueError(
                _NOT_PD_HINT.format(err=str(err).split(";")[0], n_components=self.n_components)
            ) from None

    def _m_gauss(self, stats) -> None:
        means, cov = self.family.estimate(stats)
        lam = self.ridge
        if lam > 0:
            nk = stats[0]
            v = self.prior_var
            ct = self.covariance_type
            if ct == "full":
                cov = (nk[:, None, None] * cov + lam * np.diag(v)) / (nk[:, None, None] + lam)
            elif ct == "tied":
                n = nk.sum()
                cov = (n * cov + lam * np.diag(v)) / (n + lam)
            elif ct == "diag":
                cov = (nk[:, None] * cov + lam * v) / (nk[:, None] + lam)
            else:
                cov = (nk * cov + lam * v.mean()) / (nk + lam)
        self._set(means, cov)

    def log_prior(self) -> float:
        """Log density (up to a constant) of the ridge prior at the current covariances."""
        if self.ridge <= 0:
            return 0.0
        _, P, logdet = self.family._precision_parts()
        trace = np.einsum("kjj,j->k", P, self.prior_var)
        terms = trace + logdet
        if self.covariance_type == "tied":
            terms = terms[:1]
        return float(-0.5 * self.ridge * terms.sum())

    def e_step(self, X: np.ndarray) -> tuple[tuple, float]:
        self._ensure_attached(X)
        return self.family.mixture_e_step(X, self.latent.log_weights(), self.plan, self.X_complete)

    def stats_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The point the E-step statistics are taken about (online EM)."""
        return self.family.stats_reference()

    def move_stats(self, stats: tuple, src: tuple, dst: tuple) -> tuple:
        """Statistics re-expressed about another reference point (online EM)."""
        return self.family.move_stats(stats, src, dst)

    def m_step(self, stats: tuple) -> None:
        nk = stats[0]
        self._m_gauss(stats)
        self.latent.m_step(nk)
        total = float(nk.sum())
        empty = np.flatnonzero(nk < EMPTY_FRACTION * total)
        if empty.size and empty.size < self.n_components:
            for dst in empty:
                w = self.latent.weights_.copy()
                w[empty] = -1.0
                src = int(np.argmax(w))
                self.family.split(src, int(dst))
                self.latent.split(src, int(dst))
                empty = empty[empty != dst]

    def log_likelihood(self, X: np.ndarray) -> float:
        return self.e_step(X)[1]

    def get_param_vector(self) -> np.ndarray:
        """Weights, means and covariances as one vector (for SQUAREM)."""
        fam = self.family
        return np.concatenate(
            [self.latent.weights_, fam.means_.ravel(), np.asarray(fam.covariances_).ravel()]
        )

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set parameters from a vector; False (and no change) if infeasible."""
        fam = self.family
        K, D = self.n_components, fam.n_features
        cov_shape = np.shape(fam.covariances_)
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (K + K * D + int(np.prod(cov_shape)),) or not np.isfinite(theta).all():
            return False
        w = theta[:K]
        if (w < 0).any() or not w.sum() > 0:
            return False
        old = (fam.means_, fam.covariances_)
        try:
            fam.set_parameters(
                theta[K : K + K * D].reshape(K, D), theta[K + K * D :].reshape(cov_shape)
            )
            fam._precision_parts()
        except (ValueError, np.linalg.LinAlgError):
            fam.set_parameters(*old)
            return False
        self.latent.weights_ = w / w.sum()
        return True

    def regressions(self, n_obs: np.ndarray, shrinkage: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each component's per-column Bayesian ridge regressions (K, D, D) and ridges (K, D).

        Component k gets ``weights_[k] * n_obs[j]`` of column j's observed values
        (all of them for a tied covariance, which every row informs).
        """
        fam = self.family
        C = fam.full_covariances()
        w = self.latent.weights_
        if self.covariance_type == "tied":
            w = np.ones_like(w)
        pairs = [
            bayesian_ridge_regressions(C[k], w[k] * n_obs, shrinkage)
            for k in range(self.n_components)
        ]
        return np.stack([b for b, _ in pairs]), np.stack([r for _, r in pairs])

    def impute(self, X: np.ndarray, plan, coef: np.ndarray | None) -> np.ndarray:
        """X with its gaps filled: conditional means, or the regressions ``coef``."""
        return self.family.fill(X, self.posteriors(X, plan), plan, coef)

    def posteriors(self, X: np.ndarray, plan) -> np.ndarray:
        """Component posteriors of each row given its observed entries, shape (n, K)."""
        if self.n_components == 1:
            return np.ones((X.shape[0], 1))
        resp, _ = self.latent.posteriors(self.family.log_prob(X, plan))
        return resp


def _draw_components(resp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One component per row, drawn from the row's posterior probabilities (n, K)."""
    u = rng.random(resp.shape[0])[:, None]
    return np.minimum((np.cumsum(resp, axis=1) < u).sum(axis=1), resp.shape[1] - 1)


def _column_moments(X: Any) -> tuple[np.ndarray, ...]:
    """Observed count, variance, minimum and maximum of every column of out-of-core
    data, in one pass."""
    if is_dask_array(X):
        import dask
        import dask.array as da

        X = X if X.ndim == 2 else X[:, None]
        n_obs, var, low, high = dask.compute(
            (~da.isnan(X)).sum(axis=0),
            da.nanvar(X, axis=0),
            da.nanmin(X, axis=0),
            da.nanmax(X, axis=0),
        )
        as_float = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        return np.asarray(n_obs), np.nan_to_num(as_float(var)), as_float(low), as_float(high)
    rows = X if isinstance(X, Chunked) else Chunked(X)
    n_obs = shift = total = squares = low = high = None
    for a, b in rows.bounds():
        block = np.asarray(rows.read(a, b), dtype=np.float64)
        block = block if block.ndim == 2 else block[:, None]
        if n_obs is None:  # moments about the first block's first values: no cancellation
            first = np.argmax(~np.isnan(block), axis=0)
            shift = np.nan_to_num(block[first, np.arange(block.shape[1])]) if len(block) else 0
            n_obs, total, squares = (np.zeros(block.shape[1]) for _ in range(3))
            low, high = np.full(block.shape[1], np.inf), np.full(block.shape[1], -np.inf)
        dev = block - shift
        n_obs += (~np.isnan(dev)).sum(axis=0)
        total += np.nansum(dev, axis=0)
        squares += np.nansum(dev * dev, axis=0)
        low = np.fmin(low, np.nanmin(block, axis=0, initial=np.inf))
        high = np.fmax(high, np.nanmax(block, axis=0, initial=-np.inf))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_obs
        var = np.where(n_obs > 0, squares / n_obs - mean * mean, 0.0)
    var = np.where(high > low, np.maximum(var, 0.0), 0.0)  # constant columns exactly 0
    return n_obs.astype(np.int64), var, low, high


def _partial_variances(model: _MissingEM) -> np.ndarray:
    """``1 / diag(Sigma^-1)`` of a fitted model's distribution: each column's variance
    given all the others (its residual variance regressed on them)."""
    fam = model.family
    w, mu = model.latent.weights_, fam.means_
    dev = mu - w @ mu
    cov = np.einsum("k,kij->ij", w, fam.full_covariances()) + (w[:, None] * dev).T @ dev
    return 1.0 / np.diag(np.linalg.inv(cov))


# ---------------------------------------------------------------------- the estimator
@register
class EMImputer(OutputMixin, ParamsMixin, SaveMixin):
    """Fill missing values by EM under a multivariate normal or a Gaussian mixture.

    ``n_components=1`` is the classical EM imputation under one multivariate
    normal (Dempster, Laird and Rubin 1977; Schafer 1997; R's norm and
    Amelia); ``n_components > 1`` fits a Gaussian mixture to the observed
    entries (Ghahramani and Jordan 1994) and suits clustered, multimodal
    tables. EM maximises the observed-data likelihood: each E-step fills a
    row's gaps with their conditional mean given its observed entries and
    adds their conditional covariance to the second moments. The
    log-likelihood never decreases (``history_``). :meth:`transform` then
    fills each gap from the row's observed entries: by default with
    per-column regressions shrunk as Bayesian ridge regressions (their
    strength from the evidence, as scikit-learn's BayesianRidge) and kept
    within ``bounds`` if given; ``shrinkage=None`` gives the plain
    conditional means.

    A scikit-learn transformer (``fit``/``transform``/``fit_transform``,
    ``get_params``/``set_params``, usable in a ``Pipeline``) that does not
    import scikit-learn. NumPy arrays and pandas DataFrames come back as the
    same type (DataFrames with the same index and columns); the input is
    never modified.

    Parameters
    ----------
    n_components : int, default=1
        Number of Gaussian components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure of the components. Imputation uses the
        correlations, so "full" (or "tied") is what you usually want.
    max_iter : int, default=100
        Maximum EM iterations.
    tol : float, default=1e-4
        Stop when the absolute change of the mean per-row observed-data
        log-likelihood is at most ``tol``.
    ridge : float or "auto", default=0.0
        Ridge prior worth ``ridge`` observations (per component) that shrinks
        covariances towards the diagonal of the observed variances, as
        Amelia's ``empri`` and norm's ridge prior: for "full",
        ``Sigma = (n_k Sigma_ML + ridge diag(s^2)) / (n_k + ridge)``. Use it
        when columns are nearly collinear or rows are few (around 1% of
        ``n_samples`` is common). EM then maximises the log-likelihood plus
        the log prior (``objective_history_``). ``"auto"`` centres the prior
        on the *partial* variances ``1 / diag(Sigma^-1)`` of a
        maximum-likelihood pilot fit (the variance of each column given the
        others), which shrinks the correlations of poorly predicted columns
        and keeps those of well predicted ones; it holds out 10% of the
        observed cells, fits with ridge 0 (the pilot), 3%, 10%, 20% and 40%
        of the rows, and keeps the one of the last four that imputes the
        held-out cells best (``ridge_``, ``ridge_scores_``): six extra fits,
        worth it on small tables with many columns. Tables with at least 100
        observed values per column for every column skip the search and use
        ridge 0 (the best prior is close to none there). Without
        ``random_state`` the held-out cells are the same on every call.
    shrinkage : "auto", float >= 0 or None, default="auto"
        How :meth:`transform` fills gaps. Every column is predicted from the
        others by a ridge regression on the fitted (standardised) moments,
        ``(C_oo + r_j I)^-1 C_oj``, and a row's gaps take the values that
        satisfy all their regressions at once, the observed entries fixed.
        ``"auto"`` chooses each column's ridge ``r_j`` by maximising the
        evidence of a Bayesian ridge regression on the column's observed
        count (as BayesianRidge does; near 0 on tables with many rows); a
        number fixes every ``r_j``; ``None`` (or 0) fills the plain
        conditional means. The EM fit is not affected (``ridge="auto"``
        scores its candidates with this fill).
    bounds : None, (low, high) or "observed", default=None
        Limits for the filled values (observed entries are never changed),
        as Amelia's ``bounds``: ``(low, high)`` with a number or one number
        per column each (use ``-inf``/``inf`` for no limit), for example
        ``(0, np.inf)`` for amounts that cannot be negative;
        ``"observed"`` clips each fill to the range of its column's observed
        values at fit (``data_min_``, ``data_max_``), which guards skewed
        columns against wild extrapolation when values are missing
        completely at random, but biases fills when they are missing *at
        random* (then the gaps may lie beyond the observed range, as when
        high incomes go unreported). :meth:`sample_imputations` keeps its
        draws within the bounds too (drawing again, as Amelia).
    reg_covar : float, default=0.0
        Added to the diagonal of every covariance estimate (as in
        :class:`~latentem.GaussianMixture`); 0 keeps the exact
        maximum-likelihood estimates.
    n_init : int, default=1
        Restarts for ``n_components > 1`` (the best likelihood is kept).
    accelerate : {None, "squarem"}, default=None
        ``"squarem"`` extrapolates along the EM path (see
        :func:`latentem.fit_em`); it needs fewer iterations when much
        information is missing, and still never lowers the objective.
    non_numeric : {"error", "passthrough"}, default="error"
        What to do with non-numeric DataFrame columns: raise a ValueError
        naming them, or leave them untouched (they are not used to impute).
    random_state : None, int or numpy Generator, default=None
        Seeds the mixture initialisation and :meth:`sample_imputations`.
    verbose : int, default=0
        Print EM progress.

    Attributes
    ----------
    means_ : ndarray (n_components, n_features)
    covariances_ : ndarray
        scikit-learn's layout for ``covariance_type``.
    weights_ : ndarray (n_components,)
    mean_, covariance_ : ndarray
        Mean (D,) and covariance (D, D) of the fitted distribution (for
        ``n_components=1``, the component's own).
    history_ : ndarray
        Observed-data log-likelihood at every E-step; never decreasing when
        ``ridge=0``.
    objective_history_ : ndarray
        What EM maximises at every E-step: ``history_`` plus the log of the
        ridge prior (equal to ``history_`` when ``ridge=0``); never
        decreasing.
    n_iter_, converged_, lower_bound_
        As in :class:`~latentem.GaussianMixture`.
    fraction_missing_info_ : ndarray (n_features,)
        Fraction of missing information about each column's mean:
        ``1 - Var_complete / Var_observed`` of its estimate (0 for a fully
        observed column that is uncorrelated with the gaps; close to the
        missing fraction for a column unrelated to the others). For
        ``n_components > 1``, per component, averaged with ``weights_``.
    ridge_ : float
        The ridge used (``ridge``, or the one ``"auto"`` chose).
    ridge_scores_ : dict
        With ``ridge="auto"``: mean squared error (in column standard
        deviations) on the held-out cells for each candidate ridge.
    shrinkage_ : ndarray (n_components, n_features) or None
        The ridge ``r_j`` of every column's regression (per component); None
        with ``shrinkage=None``.
    n_observed_ : ndarray (n_features,)
        Observed values of each column in the data fitted (summed over the
        batches of :meth:`partial_fit`).
    data_min_, data_max_ : ndarray (n_features,)
        Smallest and largest observed value of each column (the limits of
        ``bounds="observed"``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Names of the numeric columns used (DataFrame input only).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.imputer import EMImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=500)
    >>> X_gaps = X.copy()
    >>> X_gaps[rng.random(500) < 0.3, 1] = np.nan
    >>> imp = EMImputer().fit(X_gaps)
    >>> np.round(imp.covariance_, 1)
    array([[1. , 0.9],
           [0.9, 1. ]])
    >>> X_filled = imp.transform(X_gaps)
    >>> bool(np.isnan(X_filled).any()), bool(np.isnan(X_gaps).any())
    (False, True)
    >>> rmse = np.sqrt(np.nanmean((X_filled - X)[np.isnan(X_gaps)] ** 2))
    >>> bool(rmse < 0.5)  # the mean-imputation error would be about 1
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        max_iter: int = 100,
        tol: float = 1e-4,
        ridge: float = 0.0,
        shrinkage: Any = "auto",
        bounds: Any = None,
        reg_covar: float = 0.0,
        n_init: int = 1,
        accelerate: str | None = None,
        non_numeric: str = "error",
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.ridge = ridge
        self.shrinkage = shrinkage
        self.bounds = bounds
        self.reg_covar = reg_covar
        self.n_init = n_init
        self.accelerate = accelerate
        self.non_numeric = non_numeric
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_settings(self) -> None:
        check_mixture_settings(self)
        if self.non_numeric not in NON_NUMERIC:
            raise ValueError(f"non_numeric must be one of {NON_NUMERIC}; got {self.non_numeric!r}.")
        for name in ("tol", "ridge", "shrinkage", "reg_covar"):
            v = getattr(self, name)
            if name in ("ridge", "shrinkage") and isinstance(v, str) and v == "auto":
                continue
            if name == "shrinkage" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                extra = {"ridge": ' or "auto"', "shrinkage": ', "auto" or None'}.get(name, "")
                raise ValueError(f"{name} must be a number >= 0{extra}; got {v!r}.")
        self._bounds_pair(None)

    def _bounds_pair(self, D: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``bounds`` as (low, high) arrays of D entries (None: unbounded); D=None only checks."""
        b = self.bounds
        if b is None:
            return None
        if isinstance(b, str):
            if b != "observed":
                raise ValueError(f'bounds must be "observed", None or (low, high); got {b!r}.')
            return None if D is None else (self.data_min_, self.data_max_)
        try:
            low, high = (np.asarray(v, dtype=np.float64) for v in b)
            if D is not None:
                low, high = np.broadcast_to(low, (D,)), np.broadcast_to(high, (D,))
        except (TypeError, ValueError):
            n = "a number or one per column" if D is None else f"a number or {D} numbers"
            raise ValueError(
                f'bounds must be "observed", None or (low, high), each {n}; got {b!r}.'
            ) from None
        if np.isnan(low).any() or np.isnan(high).any() or (low > high).any():
            raise ValueError(
                f"bounds {b!r}: low must be <= high and neither NaN (use -inf or inf for no bound)."
            )
        return (low, high)

    def _check_bounds_length(self, D: int) -> None:
        """Bounds given as numbers must fit D columns: an error before fitting changes anything."""
        if not isinstance(self.bounds, str):
            self._bounds_pair(D)

    def _require_fitted(self) -> None:
        if not self._fitted():
            raise not_fitted_error(self)

    def _fitted(self) -> bool:
        return "_model" in self.__dict__

    def _sklearn_tags(self, tags: Any) -> Any:
        return transformer_tags(tags, allow_nan=True, preserves_dtype=["float64", "float32"])

    def _read(self, X: Any) -> _Table:
        """Read X for transform/sampling: same columns as at fit."""
        self._require_fitted()
        table = _Table(X, self.non_numeric)
        if table.frame and hasattr(self, "feature_names_in_"):
            if list(table.names) != list(self.feature_names_in_):
                raise ValueError(
                    "The feature names should match those that were passed during fit: "
                    f"X has numeric columns {table.names}, but the imputer was fitted with "
                    f"{list(self.feature_names_in_)}; pass the same columns in the same order."
                )
        else:  # names on one side only: scikit-learn's warnings
            note_features(self, X, reset=False)
        check_n_features(self, table.X.shape[1])
        return table

    def _check_first_table(self, table: _Table, what: str) -> np.ndarray:
        """Check the table a model is first fitted on; return the prior variances."""
        A = table.X
        n_obs = (~np.isnan(A)).sum(axis=0)
        with warnings.catch_warnings():  # an all-NaN column gets its own error below
            warnings.simplefilter("ignore", RuntimeWarning)
            prior_var = np.nanvar(A, axis=0) if A.shape[0] else np.zeros(A.shape[1])
        self._check_counts(table, A.shape[0], n_obs, prior_var, what)
        return np.where(prior_var > 0, prior_var, 1.0)

    def _check_counts(self, table, n, n_obs, prior_var, what) -> None:
        """Clear errors for tables EM cannot fit: too few rows or observed values."""
        D = len(n_obs)
        if D == 0:
            raise ValueError(  # scikit-learn's wording first
                f"Found array with 0 feature(s) (shape=({n}, 0)) while a minimum of 1 is "
                f"required: {what} has no numeric columns to impute."
            )
        if n < 2:
            raise ValueError(  # "n_samples=" as scikit-learn words it
                f"{what} has {n} row(s) (n_samples={n}); EM imputation needs at least 2 rows."
            )
        if (n_obs == 0).any():
            raise ValueError(
                f"{table._cols(np.flatnonzero(n_obs == 0))} of {what} is entirely missing; drop "
                "it, or fill it from outside information."
            )
        if (n_obs < 2).any():
            raise ValueError(
                f"{table._cols(np.flatnonzero(n_obs < 2))} of {what} has a single observed "
                "value; its variance cannot be estimated. Drop it or pass ridge > 0."
            )
        if n < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of rows of "
                f"{what} ({n}); use fewer components."
            )
        if (prior_var == 0).any() and (isinstance(self.ridge, str) or not self.ridge > 0):
            raise ValueError(
                f"{table._cols(np.flatnonzero(prior_var == 0))} of {what} is constant where "
                "observed; its covariance would be singular. Drop it (and fill it with its "
                "constant), or pass ridge > 0."
            )

    def _set_feature_names(self, table: _Table) -> None:
        self.n_features_in_ = table.X.shape[1]
        if table.frame:
            self.feature_names_in_ = np.array(table.names, dtype=object)
        elif "feature_names_in_" in self.__dict__:
            del self.feature_names_in_

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> EMImputer:
        """Fit the model to the observed entries of X (NaN marks a gap).

        Parameters
        ----------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Or data larger than memory: a :class:`numpy.memmap`, a
            :class:`~latentem.Chunked` or a ``dask.array``, fitted block by
            block (see ``docs/scaling.md``); such a fit keeps no rows, so
            :meth:`sample_imputations` then needs an in-memory fit.
        y : ignored

        Returns
        -------
        self
        """
        self._fit_table(X)
        return self

    def _fit_table(self, X: Any) -> _Table | None:
        """Fit to X; return X read as a table (for fit_transform), None if out of core."""
        self._check_settings()
        if is_out_of_core(X):
            self._fit_out_of_core(X)
            return None
        table = _Table(X, self.non_numeric)
        A = table.X
        n = A.shape[0]
        auto = isinstance(self.ridge, str)
        prior_var = self._check_first_table(table, "X")
        self._check_bounds_length(A.shape[1])
        rng = check_random_state(self.random_state)
        if auto:
            ridge, self.ridge_scores_ = self._choose_ridge(A, prior_var, rng)
            model, result, self.ridge_ = self._fit_auto(A, ridge, prior_var, rng)
        else:
            self.ridge_ = float(self.ridge)
            model, result = self._fit_model(A, self.ridge_, prior_var, rng)
        self._X_fit = A
        self.n_observed_ = (~np.isnan(A)).sum(axis=0)
        self.data_min_, self.data_max_ = np.nanmin(A, axis=0), np.nanmax(A, axis=0)
        self._set_feature_names(table)
        self._set_result(model, result, n)
        return table

    def _fit_out_of_core(self, X: Any) -> None:
        """Fit to a memmap, :class:`~latentem.Chunked` or dask array, block by block."""
        if isinstance(self.ridge, str):
            raise ValueError(
                'ridge="auto" holds out cells of an in-memory table; pass a number for data '
                "fitted block by block (for example 0.01 * n_samples), or load the table."
            )
        n_obs, prior_var, low, high = _column_moments(X)
        n = int(X.shape[0])
        summary = _Table(np.zeros((0, len(n_obs))), self.non_numeric)
        self._check_counts(summary, n, n_obs, prior_var, "X")
        self._check_bounds_length(len(n_obs))
        rng = check_random_state(self.random_state)
        self.ridge_ = float(self.ridge)
        prior_var = np.where(prior_var > 0, prior_var, 1.0)
        model, result = self._fit_model(X, self.ridge_, prior_var, rng)
        self._X_fit = None  # the rows stay where they are
        self.n_observed_ = np.asarray(n_obs, dtype=np.int64)
        self.data_min_, self.data_max_ = low, high
        self._set_feature_names(summary)
        self._set_result(model, result, n)

    def _set_result(self, model: _MissingEM, result: Any, n: int) -> None:
        self.__dict__.pop("_online", None)  # a full fit ends any online stream
        self._model = model
        self.history_ = np.asarray(result.history)
        self.objective_history_ = np.asarray(getattr(result, "objective_history", result.history))
        self.n_iter_ = int(result.n_iter)
        self.converged_ = bool(result.converged)
        self.lower_bound_ = float(result.log_likelihood) / n
        self.__dict__.pop("_fmi", None)
        self.__dict__.pop("_regressions", None)

    def partial_fit(
        self, X: Any, y: Any = None, *, decay: float = 0.6, offset: float = 1.0
    ) -> EMImputer:
        """Online EM on one batch of a stream of rows (Cappé and Moulines, 2009).

        For tables too large for memory or read once: feed the rows batch by
        batch, then impute any batch with :meth:`transform`. The first call
        initialises the model from its batch (which must have at least two
        observed values in every column), or continues from the parameters of
        an earlier :meth:`fit`; each call then updates a running average of
        the per-row statistics, the conditional covariances of the gaps
        included, with step size ``gamma_t = ((1 + offset) / (t + offset)) **
        decay`` (see :mod:`latentem.backends.online`), and takes an M-step.
        ``decay`` and ``offset`` are read on the first call; ``fit`` starts
        afresh.

        A stream keeps no rows, so :meth:`sample_imputations` (bootstrap EM
        resamples the training rows) and ``fraction_missing_info_`` need a
        model fitted by :meth:`fit`. ``ridge="auto"`` needs the whole table
        too; pass a number. ``history_`` is empty: ``lower_bound_`` is the
        running average of each batch's per-row log-likelihood, evaluated
        before the batch updated the parameters.

        Parameters
        ----------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            One batch; later batches need the same numeric columns.
        y : ignored
        decay : float in (0.5, 1], default=0.6
        offset : float >= 0, default=1.0

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import EMImputer
        >>> rng = np.random.default_rng(1)
        >>> imp = EMImputer()
        >>> for _ in range(50):
        ...     X = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=200)
        ...     X[rng.random(200) < 0.3, 1] = np.nan
        ...     imp = imp.partial_fit(X)
        >>> np.round(imp.covariance_, 1)
        array([[1. , 0.8],
               [0.8, 1. ]])
        """
        from latentem.backends.online import OnlineEM

        online = self.__dict__.get("_online")
        if online is None:
            self._check_settings()
            if isinstance(self.ridge, str):
                raise ValueError(
                    'ridge="auto" chooses the ridge on held-out cells of the whole table, which '
                    "partial_fit never sees; pass a number (for example 0.01 * the rows you "
                    "expect) or use fit()."
                )
            warm = "_model" in self.__dict__
            table = self._read(X) if warm else _Table(X, self.non_numeric)
            if not warm:
                D = table.X.shape[1]
                self.n_observed_ = np.zeros(D, dtype=np.int64)
                self.data_min_, self.data_max_ = np.full(D, np.inf), np.full(D, -np.inf)
            if warm:
                model = self._model
            else:
                prior_var = self._check_first_table(table, "the first batch")
                model = _MissingEM(
                    int(self.n_components),
                    self.covariance_type,
                    float(self.reg_covar),
                    float(self.ridge),
                    prior_var,
                )
            online = OnlineEM(
                model,
                decay=decay,
                offset=offset,
                random_state=check_random_state(self.random_state),
                warm_start=warm,
            )
        else:
            table = self._read(X)
        online.partial_fit(table.X)  # covariance errors already carry the hint (_MissingEM._set)
        self.n_observed_ = self.n_observed_ + (~np.isnan(table.X)).sum(axis=0)
        self.data_min_ = np.fmin(self.data_min_, np.nanmin(table.X, axis=0, initial=np.inf))
        self.data_max_ = np.fmax(self.data_max_, np.nanmax(table.X, axis=0, initial=-np.inf))
        self._online = online
        self._model = online.model
        self._X_fit = None
        self.ridge_ = float(online.model.ridge)
        self._set_feature_names(table)
        self.history_ = self.objective_history_ = np.empty(0)
        self.n_iter_ = online.n_batches_
        self.converged_ = False
        self.lower_bound_ = online.log_likelihood_
        self.__dict__.pop("_fmi", None)
        self.__dict__.pop("_regressions", None)
        return self

    def _require_rows(self, what: str) -> np.ndarray:
        if self._X_fit is None:
            raise ValueError(
                f"{what} needs the rows the imputer was fitted on, and partial_fit keeps none; "
                "fit() the table (or a sample of it) instead."
            )
        return self._X_fit

    # -- model files (latentem.persistence). The file holds the training rows too:
    # multiple imputation (bootstrap EM) resamples them.
    _SAVED = (
        "ridge_",
        "n_features_in_",
        "n_observed_",
        "data_min_",
        "data_max_",
        "history_",
        "objective_history_",
        "n_iter_",
        "converged_",
        "lower_bound_",
    )

    def _to_state(self) -> dict:
        state = {"params": self.get_params()}
        if "_model" in self.__dict__:
            model = self._model
            state["fitted"] = {
                **{name: getattr(self, name) for name in self._SAVED},
                "X_fit": self._X_fit,
                "prior_var": model.prior_var,
                "family": model.family,
                "latent": model.latent,
            }
            if "feature_names_in_" in self.__dict__:
                state["fitted"]["feature_names_in_"] = [str(c) for c in self.feature_names_in_]
            if "ridge_scores_" in self.__dict__:
                state["fitted"]["ridge_scores_"] = [
                    [float(k), float(v)] for k, v in self.ridge_scores_.items()
                ]
        return state

    @classmethod
    def _from_state(cls, state: dict) -> EMImputer:
        params = dict(state["params"])
        fitted = state.get("fitted")
        if fitted is not None and "n_observed_" not in fitted:
            # written before shrinkage and bounds existed: fill as that version did
            params.update(shrinkage=None, bounds=None)
            rows = fitted["X_fit"]
            if rows is None:  # a stream: the counts and range are unknown
                D = int(fitted["n_features_in_"])
                low, high, n_obs = np.full(D, -np.inf), np.full(D, np.inf), np.zeros(D)
            else:
                rows = np.asarray(rows, dtype=np.float64)
                low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
                n_obs = (~np.isnan(rows)).sum(axis=0)
            fitted = {**fitted, "n_observed_": n_obs, "data_min_": low, "data_max_": high}
        imp = cls(**params)
        if fitted is None:
            return imp
        for name in cls._SAVED:
            setattr(imp, name, fitted[name])
        imp.n_observed_ = np.asarray(imp.n_observed_, dtype=np.int64)
        imp.data_min_ = np.asarray(imp.data_min_, dtype=np.float64)
        imp.data_max_ = np.asarray(imp.data_max_, dtype=np.float64)
        model = _MissingEM(
            int(imp.n_components),
            imp.covariance_type,
            float(imp.reg_covar),
            float(imp.ridge_),
            np.asarray(fitted["prior_var"], dtype=np.float64),
        )
        model.family, model.latent = fitted["family"], fitted["latent"]
        if fitted["X_fit"] is None:  # fitted by partial_fit: no rows kept
            imp._X_fit = None
        else:
            imp._X_fit = np.asarray(fitted["X_fit"], dtype=np.float64)
            model.attach(imp._X_fit)
        imp._model = model
        if "feature_names_in_" in fitted:
            imp.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)
        if "ridge_scores_" in fitted:
            imp.ridge_scores_ = {k: v for k, v in fitted["ridge_scores_"]}
        return imp

    def _fit_model(self, A, ridge, prior_var, rng, verbose=None):
        model = _MissingEM(
            int(self.n_components), self.covariance_type, float(self.reg_covar), ridge, prior_var
        )
        if not is_out_of_core(A):
            model.attach(A)
        result = fit_em(
            model,
            A,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=self.n_init if self.n_components > 1 else 1,
            random_state=rng,
            accelerate=self.accelerate,
            verbose=self.verbose if verbose is None else verbose,
        )
        return model, result

    def _fit_auto(self, A, ridge, prior_var, rng, verbose=None):
        """Fit with ``ridge="auto"``'s prior: worth ``ridge`` rows, centred on the partial
        variances of a maximum-likelihood pilot fit (the pilot itself when ``ridge`` is 0).

        Shrinking towards the partial variances ``1 / diag(Sigma^-1)`` rather than the
        variances keeps the correlations of columns that the others predict well and
        shrinks those of poorly predicted ones, much as BayesianRidge tunes its penalty
        per column. Without a pilot (collinear or too few rows) the prior is centred on
        the variances.
        """
        try:
            with warnings.catch_warnings():
                if ridge > 0:  # only the final fit's convergence is the user's concern
                    warnings.simplefilter("ignore", ConvergenceWarning)
                pilot = self._fit_model(A, 0.0, prior_var, rng, verbose)
        except (ValueError, FloatingPointError):
            fallback = ridge if ridge > 0 else AUTO_FALLBACK * A.shape[0]
            return (*self._fit_model(A, fallback, prior_var, rng, verbose), fallback)
        if ridge == 0:
            return (*pilot, 0.0)
        return (*self._fit_model(A, ridge, _partial_variances(pilot[0]), rng, verbose), ridge)

    def _choose_ridge(self, A, prior_var, rng) -> tuple[float, dict]:
        """``ridge="auto"``: the grid value that best imputes held-out observed cells."""
        n, D = A.shape
        obs = ~np.isnan(A)
        scores = {}
        # many rows per column: the prior's best strength is close to 0, and the
        # search would cost six fits where one is enough
        if _many_rows(A):
            return 0.0, scores
        # a child stream: a user who hid cells with the same seed must not get them back.
        # Without a random_state the same cells are held out every time, so that one
        # normal (which needs no randomness) imputes a table the same way every time.
        seed = AUTO_HOLDOUT_SEED if self.random_state is None else rng.integers(2**63)
        hold_rng = np.random.default_rng(seed)
        held = obs & (hold_rng.integers(round(1 / AUTO_HOLDOUT), size=A.shape) == 0)
        # every row keeps an observed cell, every column two
        # (rows with nothing observed have nothing to hold out)
        all_held = (held.sum(axis=1) == obs.sum(axis=1)) & obs.any(axis=1)
        for i in np.flatnonzero(all_held):
            held[i, np.flatnonzero(held[i])[0]] = False
        for j in np.flatnonzero(obs.sum(axis=0) - held.sum(axis=0) < 2):
            held[:, j] = False
        n_held = int(held.sum())
        if n_held < 10:
            return 0.0, scores
        Xcv = A.copy()
        Xcv[held] = np.nan
        n_obs_cv = (obs & ~held).sum(axis=0)
        sd = np.sqrt(prior_var)
        sq = dict.fromkeys([frac * n for frac in AUTO_RIDGE_GRID], 0.0)
        target = prior_var
        for lam in sq:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model, _ = self._fit_model(Xcv, lam, target, rng, verbose=0)
                if lam == 0:  # the grid starts at 0: its fit is the others' pilot
                    target = _partial_variances(model)
                F = model.impute(Xcv, model.plan, self._coef(model, n_obs_cv)[0])
                sq[lam] = float(np.sum((((F - A) / sd)[held]) ** 2))
            except (ValueError, FloatingPointError):
                sq[lam] = np.inf
        scores = {lam: v / n_held for lam, v in sq.items()}
        # ridge 0 is scored but not chosen: the held-out cells are few, a prior of a
        # few percent of the rows never cost much on the benchmark tables, while no
        # prior, picked by the luck of the draw, cost up to 10% (star98 at 10% missing)
        best = min((lam for lam in scores if lam > 0), key=lambda lam: (scores[lam], lam))
        return (float(best) if np.isfinite(scores[best]) else AUTO_FALLBACK * n), scores

    # ------------------------------------------------------------------ fitted attributes
    @property
    def means_(self) -> np.ndarray:
        self._require_fitted()
        return self._model.family.means_

    @property
    def covariances_(self) -> np.ndarray:
        self._require_fitted()
        return self._model.family.covariances_

    @property
    def weights_(self) -> np.ndarray:
        self._require_fitted()
        return self._model.latent.weights_

    @property
    def mean_(self) -> np.ndarray:
        """Mean of the fitted distribution, shape (n_features,)."""
        return self.weights_ @ self.means_

    @property
    def covariance_(self) -> np.ndarray:
        """Covariance of the fitted distribution (D, D): within plus between components."""
        self._require_fitted()
        w, mu = self.weights_, self.means_
        C = self._model.family.full_covariances()
        m = w @ mu
        dev = mu - m
        return np.einsum("k,kij->ij", w, C) + (w[:, None] * dev).T @ dev

    @property
    def shrinkage_(self) -> np.ndarray | None:
        """Ridge of every column's regression, (n_components, n_features); None when
        ``shrinkage=None`` (see the class docs)."""
        self._require_fitted()
        return self._fitted_coef()[1]

    @property
    def fraction_missing_info_(self) -> np.ndarray:
        """Fraction of missing information about each column's mean (see class docs)."""
        self._require_fitted()
        if "_fmi" not in self.__dict__:
            self._fmi = self._fraction_missing_info()
        return self._fmi

    def _fraction_missing_info(self) -> np.ndarray:
        model = self._model
        X = self._require_rows("fraction_missing_info_")
        model._ensure_attached(X)
        plan = model.plan
        n, D = X.shape
        K = model.n_components
        resp = model.posteriors(X, plan)  # (n, K)
        _, P, _ = model.family._precision_parts()
        C = model.family.full_covariances()
        out = np.zeros(D)
        for k in range(K):
            nk = resp[:, k].sum()
            # observed information about mu_k: sum over rows of P - P[:, m] P_mm^-1 P[m, :]
            info = (nk - resp[plan.empty, k].sum()) * P[k]
            if plan.partial.size:
                wp = np.bincount(plan.pattern, weights=resp[plan.partial, k])
                for p in range(plan.n_patterns):
                    m = plan.pat_idx[p, : plan.pat_nmis[p]]
                    Pm = P[k][m, :]
                    info -= wp[p] * Pm.T @ np.linalg.solve(P[k][np.ix_(m, m)], Pm)
            var_obs = np.diag(np.linalg.pinv(info, hermitian=True))
            var_com = np.diag(C[k]) / max(nk, 1e-300)
            with np.errstate(divide="ignore", invalid="ignore"):
                fmi = np.where(var_obs > 0, 1.0 - var_com / var_obs, 1.0)
            out += model.latent.weights_[k] * np.clip(fmi, 0.0, 1.0)
        return out

    # ------------------------------------------------------------------ imputing
    def transform(self, X: Any) -> Any:
        """Fill every gap of X from the row's observed entries.

        By default from per-column Bayesian ridge regressions on the fitted
        moments (see ``shrinkage``), clipped to ``bounds`` if given; with
        ``shrinkage=None`` the conditional means. With ``n_components > 1``
        the components' fills are averaged with the row's posterior
        component probabilities. Rows that are entirely missing get the
        fitted mean (clipped to ``bounds``).

        Parameters
        ----------
        X : ndarray or DataFrame with the columns seen in ``fit``

        Returns
        -------
        ndarray or DataFrame
            A new object of the input's type; X itself is not changed.
        """
        table = self._read(X)
        return self._wrap_output(self._fill(table, None), X)

    def _fill(self, table: _Table, plan) -> Any:
        A = table.X
        if not np.isnan(A).any():
            return table.rebuild(A)
        plan = missing_plan(A) if plan is None else plan
        F = self._model.impute(A, plan, self._fitted_coef()[0])
        bounds = self._bounds_pair(A.shape[1])
        if bounds is not None:  # the gaps only: observed entries stay as they are
            F = np.where(np.isnan(A), np.clip(F, *bounds), F)
        return table.rebuild(F)

    def _coef(self, model: _MissingEM, n_obs: np.ndarray) -> tuple:
        """``(coef, ridges)`` of the fill: the shrunk regressions, or None for conditional means."""
        if self.shrinkage is None:
            return None, None
        return model.regressions(n_obs, self.shrinkage)

    def _fitted_coef(self) -> tuple:
        """:meth:`_coef` of the fitted model, cached for the current ``shrinkage``."""
        self._check_settings()  # set_params after fit: a bad value gets its clear error
        cached = self.__dict__.get("_regressions")
        if cached is None or cached[0] != self.shrinkage:
            if self.shrinkage is not None and not self.n_observed_.any():
                raise ValueError(
                    "this imputer was loaded from a model file without its column counts "
                    "(written by an older latentem after partial_fit); use shrinkage=None "
                    "or fit it again."
                )
            self._regressions = (self.shrinkage, *self._coef(self._model, self.n_observed_))
        return self._regressions[1:]

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X)`` then ``transform(X)``, reading X and grouping its rows once."""
        table = self._fit_table(X)
        if table is None:  # fitted block by block: the filled table is built in memory
            return self.transform(X)
        return self._wrap_output(self._fill(table, self._model.plan), X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (the fitted numeric columns)."""
        self._require_fitted()
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.array([f"x{j}" for j in range(self.n_features_in_)], dtype=object)

    def sample_imputations(
        self, X: Any, n_imputations: int = 5, *, random_state: Any = None
    ) -> list:
        """Multiple imputation: ``n_imputations`` completed copies of X.

        Each copy comes from bootstrap EM, as in Amelia (Honaker, King and
        Blackwell 2011): the rows the imputer was fitted on are resampled
        with replacement, EM is re-run on the resample (starting from the
        fitted parameters), and every gap of X is drawn from its conditional
        distribution given the row's observed entries under the bootstrap
        parameters (for a mixture, the component is drawn from the row's
        posterior first). The copies therefore carry both the residual
        uncertainty and the uncertainty of the parameters, which is what
        Rubin's rules (:func:`pool_estimates`) need. With ``bounds`` a row
        whose draw falls outside them is drawn again (a draw from the
        truncated distribution), up to 100 times, then clipped, as in
        Amelia. ``shrinkage`` does not apply: the draws come from the fitted
        model's conditional distributions.

        Parameters
        ----------
        X : ndarray or DataFrame with the columns seen in ``fit``
            Usually the data the imputer was fitted on.
        n_imputations : int, default=5
        random_state : None, int or numpy Generator, optional
            Defaults to the estimator's ``random_state``.

        Returns
        -------
        list of ndarray or DataFrame
            Completed copies of X (observed entries unchanged).
        """
        n_imputations = check_positive_int(n_imputations, "n_imputations")
        table = self._read(X)
        A = table.X
        rng = check_random_state(self.random_state if random_state is None else random_state)
        plan = missing_plan(A)
        Xf = self._require_rows("sample_imputations")
        n = Xf.shape[0]
        out = []
        for _ in range(n_imputations):
            model = self._bootstrap_model(Xf, n, rng)
            resp = model.posteriors(A, plan)
            drawn = model.family.draw(A, _draw_components(resp, rng), rng, plan)
            out.append(table.rebuild(self._redraw_outside(drawn, A, resp, model, rng)))
        return out

    def _redraw_outside(self, F, A, resp, model, rng) -> np.ndarray:
        """Draws within ``bounds``: a row with a gap outside is drawn again (its component
        and all its gaps, so the row stays a draw from the truncated distribution), up to
        MAX_REDRAWS times; what is still outside then is clipped (as Amelia does)."""
        bounds = self._bounds_pair(A.shape[1])
        if bounds is None:
            return F
        gaps = np.isnan(A)
        for _ in range(MAX_REDRAWS):
            outside = (gaps & ((F < bounds[0]) | (F > bounds[1]))).any(axis=1)
            if not outside.any():
                break
            comp = _draw_components(resp[outside], rng)
            F[outside] = model.family.draw(A[outside], comp, rng)
        return np.where(gaps, np.clip(F, *bounds), F)

    def _bootstrap_model(self, Xf: np.ndarray, n: int, rng: np.random.Generator) -> _MissingEM:
        last = None
        for _ in range(10):
            Xb = np.ascontiguousarray(Xf[rng.integers(n, size=n)])
            model = copy.deepcopy(self._model)
            model.family._plan_cache = None
            model.family._tables_cache = None
            model.attach(Xb)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    fit_em(model, Xb, max_iter=self.max_iter, tol=self.tol, warm_start=True)
                return model
            except (ValueError, FloatingPointError) as err:  # a degenerate resample
                last = err
        raise ValueError(
            f"bootstrap EM failed on 10 resamples in a row (last error: {last}); the data are "
            "too few or too degenerate for multiple imputation; pass ridge > 0."
        )


# ---------------------------------------------------------------------- Rubin's rules
@dataclass
class PooledEstimate:
    """Estimates pooled over multiple imputations by Rubin's rules.

    Attributes
    ----------
    estimate : ndarray
        Mean of the per-imputation estimates, ``qbar``.
    within : ndarray
        Mean within-imputation variance ``ubar``.
    between : ndarray
        Between-imputation variance ``b`` (ddof=1).
    total : ndarray
        Total variance ``t = ubar + (1 + 1/m) b``.
    std_error : ndarray
        ``sqrt(t)``.
    df : ndarray
        Degrees of freedom: Rubin's ``(m - 1) / lambda^2``, or with ``dfcom``
        Barnard and Rubin's (1999) small-sample version.
    riv : ndarray
        Relative increase in variance due to missingness, ``(1 + 1/m) b / ubar``.
    lambda_ : ndarray
        Proportion of the total variance due to missingness, ``(1 + 1/m) b / t``.
    fmi : ndarray
        Fraction of missing information, ``(riv + 2 / (df + 3)) / (1 + riv)``.
    n_imputations : int

    Examples
    --------
    >>> from latentem import pool_estimates
    >>> pooled = pool_estimates([1.0, 1.2, 0.9], [0.04, 0.05, 0.04])
    >>> round(float(pooled.estimate), 4), pooled.n_imputations
    (1.0333, 3)
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray
    n_imputations: int

    def confint(self, alpha: float = 0.05) -> np.ndarray:
        """``(lower, upper)`` limits of the ``1 - alpha`` t-intervals, shape (2, ...)."""
        from scipy.stats import t

        q = t.ppf(1.0 - alpha / 2.0, self.df)
        return np.stack([self.estimate - q * self.std_error, self.estimate + q * self.std_error])


def pool_estimates(estimates: Any, variances: Any, *, dfcom: float | None = None) -> PooledEstimate:
    """Pool the results of analyses of multiply imputed data sets by Rubin's rules.

    Parameters
    ----------
    estimates : array-like (m,) or (m, p)
        The estimate(s) from each of the ``m >= 2`` completed data sets.
    variances : array-like (m,) or (m, p)
        Their squared standard errors from each analysis.
    dfcom : float, optional
        Degrees of freedom of the analysis on complete data (for a mean,
        ``n - 1``; for a regression, ``n - p``). Gives Barnard and Rubin's
        small-sample degrees of freedom; without it Rubin's large-sample
        ones.

    Returns
    -------
    PooledEstimate

    Examples
    --------
    >>> from latentem.models.imputer import pool_estimates
    >>> pooled = pool_estimates([1.0, 1.2, 0.9, 1.1, 1.0], [0.04] * 5)
    >>> float(pooled.estimate), float(pooled.between), round(float(pooled.total), 4)
    (1.04, 0.013, 0.0556)
    >>> round(float(pooled.riv), 3), round(float(pooled.lambda_), 3)
    (0.39, 0.281)
    """
    q = np.asarray(estimates, dtype=np.float64)
    u = np.asarray(variances, dtype=np.float64)
    if q.shape != u.shape:
        raise ValueError(
            f"estimates and variances must have the same shape; got {q.shape} and {u.shape}."
        )
    if q.ndim == 0 or q.shape[0] < 2:
        raise ValueError("pool_estimates needs the results of at least 2 imputations.")
    if not (np.isfinite(q).all() and np.isfinite(u).all()) or (u < 0).any():
        raise ValueError("estimates must be finite and variances finite and >= 0.")
    m = q.shape[0]
    qbar = q.mean(axis=0)
    ubar = u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = np.where(ubar > 0, (1.0 + 1.0 / m) * b / ubar, np.inf)
        lam = np.where(t > 0, (1.0 + 1.0 / m) * b / t, 0.0)
        df_old = np.where(lam > 0, (m - 1) / lam**2, np.inf)
        if dfcom is not None:
            if not dfcom > 0:
                raise ValueError(f"dfcom must be > 0; got {dfcom!r}.")
            df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
            df = np.where(np.isinf(df_old), df_obs, df_old * df_obs / (df_old + df_obs))
        else:
            df = df_old
        fmi = (riv + 2.0 / (df + 3.0)) / (1.0 + riv)
    return PooledEstimate(
        estimate=qbar,
        within=ubar,
        between=b,
        total=t,
        std_error=np.sqrt(t),
        df=df,
        riv=riv,
        lambda_=lam,
        fmi=fmi,
        n_imputations=m,
    )
