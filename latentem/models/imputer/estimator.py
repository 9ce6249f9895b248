"""EMImputer, the estimator: its documentation, constructor, fitting and fitted attributes.

The class is put together from the parts of this package: here are the parameters
(scikit-learn's ``get_params`` reads them from ``__init__``), ``fit`` in memory and
block by block (``_fit_model`` runs :func:`latentem.fit_em` on a
:class:`~latentem.models.imputer.missing_em._MissingEM`), reading tables for
``transform``, and the fitted attributes (``means_``, ``covariance_``,
``fraction_missing_info_``, ...). The other methods come from the mixins it inherits:
checks (``checks.py``), ``ridge="auto"`` (``ridge_search.py``), the regression fill
(``regression_fill.py``), multiple imputation (``multiple.py``), online EM
(``online.py``) and model files (``model_file.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._sklearn import OutputMixin, check_n_features, note_features, transformer_tags
from latentem._validation import check_random_state
from latentem.base import ParamsMixin, not_fitted_error
from latentem.models.imputer.checks import _SettingsChecks
from latentem.models.imputer.missing_em import _MissingEM
from latentem.models.imputer.model_file import _ModelFile
from latentem.models.imputer.multiple import _MultipleImputation
from latentem.models.imputer.online import _OnlineFit
from latentem.models.imputer.regression_fill import _RegressionFill
from latentem.models.imputer.ridge_search import _RidgeSearch
from latentem.models.imputer.table import _Table
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import column_moments, fit_em, is_out_of_core

__all__ = ["EMImputer"]


@register
class EMImputer(
    _SettingsChecks,
    _RidgeSearch,
    _RegressionFill,
    _MultipleImputation,
    _OnlineFit,
    _ModelFile,
    OutputMixin,
    ParamsMixin,
    SaveMixin,
):
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
        n_obs, prior_var, low, high = column_moments(X)
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

    def _require_rows(self, what: str) -> np.ndarray:
        if self._X_fit is None:
            raise ValueError(
                f"{what} needs the rows the imputer was fitted on, and partial_fit keeps none; "
                "fit() the table (or a sample of it) instead."
            )
        return self._X_fit

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
        return self._model.covariance()

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

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns (the fitted numeric columns)."""
        self._require_fitted()
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.array([f"x{j}" for j in range(self.n_features_in_)], dtype=object)
