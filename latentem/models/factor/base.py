"""The base class of the factor models: data checks, the E-step with gaps, scoring.

:class:`_FactorModel` is what :class:`FactorAnalysis`, :class:`PPCA` and
:class:`MixtureOfFactorAnalyzers` share: the checks of settings and data,
starting values from the available-case moments, the E-step through the
Gaussian family with gaps under the structured covariances (from the
prepared moments of the complete rows when there is one component), ``fit``
on the generic runner, and scoring, imputation, AIC and BIC.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from latentem._sklearn import (
    OutputMixin,
    check_n_features,
    note_features,
    transformer_tags,
)
from latentem._validation import check_array, check_positive_int
from latentem.base import InitParamsSetting, ParamsMixin, not_fitted_error
from latentem.families.gaussian import GaussianFamily
from latentem.kernels.gaussian_missing import available_case_cov
from latentem.models.factor.data import _check_real, _check_X, _prepare, _Prepared
from latentem.models.factor.moments import _pca_start
from latentem.persistence import SaveMixin
from latentem.runner import fit_em

__all__: list[str] = []

_LOG_2PI = math.log(2.0 * math.pi)


class _FactorModel(OutputMixin, SaveMixin, ParamsMixin):
    """What factor analysis, PPCA and mixtures of factor analysers share:
    data checks, the E-step through the Gaussian family with gaps, scoring."""

    init_params = InitParamsSetting()
    _INIT_METHODS: tuple[str, ...] = ()

    def _finish_file(self) -> None:
        """After loading a model file: rebuild and check a fitted model's covariances."""
        if "components_" in vars(self):
            self._finish_load()

    def _check_loaded(self) -> None:
        """After loading a model file: settings and finite parameters."""
        from latentem.persistence.checks import _check_factor

        _check_factor(self)

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
            fam = GaussianFamily(K, D, "full", 0.0)
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

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return :meth:`transform` of X."""
        return self.fit(X).transform(X)

    def _posterior_factor_means(self, X: np.ndarray, k: int, a, G) -> np.ndarray:
        """``E[u | x_obs, k] = a + G (E[x | x_obs, k] - mu_k)`` for every row (tower rule)."""
        fam = self._family
        W = np.zeros((X.shape[0], fam.n_components))
        W[:, k] = 1.0
        filled = fam.fill(X, W) if np.isnan(X).any() else X
        return a + (filled - fam.means_[k]) @ G.T
