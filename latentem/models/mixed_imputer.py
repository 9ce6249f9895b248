"""Imputing mixed tables (continuous, integer, binary, categorical and bounded columns)
with one latent-class model: :class:`MixedImputer`."""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import warnings
from typing import Any

import numpy as np

from latentem._sklearn import (
    OutputMixin,
    check_n_features,
    note_features,
    precheck_table,
    transformer_tags,
)
from latentem._validation import check_positive_int, check_random_state
from latentem.base import ParamsMixin, not_fitted_error
from latentem.models._mixed_em import _MixedEM
from latentem.models._mixed_table import Schema, encode, learn_schema, rebuild
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import ConvergenceWarning, fit_em

__all__ = ["MixedImputer"]

#: ``n_components="auto"``: the candidates tried in order (up to
#: ``max_components``), the fraction of observed cells held out to score them,
#: how many candidates in a row may fail to improve before the search stops, and
#: the least improvement, in nats per held-out cell, that counts: more classes must
#: earn their cost (on the benchmark's nine cases continuous fills were as good or
#: better in six, and the search 1.5-2x shorter; 0.01 nats: a 1% higher likelihood).
AUTO_GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30)
AUTO_HOLDOUT = 0.1
AUTO_PATIENCE = 1
AUTO_MIN_GAIN = 0.01
AUTO_HOLDOUT_SEED = 0x5EED18
#: The candidates' fits stop earlier than the final one: they only rank the
#: numbers of classes (the final fit uses ``max_iter`` and ``tol``). 3e-3 rather
#: than 1e-3: the benchmark's nine cases chose the same numbers in 25 of 27 fits
#: (the two others passed the targets too), with 8-30% fewer E-steps at 50% missing;
#: 5e-3 and more changed the choices on more fits, and lost continuous RMSE.
AUTO_TOL = 3e-3
#: With category effects the levels shift the continuous means themselves, so
#: fewer classes are needed: "auto" tries at most this many (on the benchmark's
#: tables 5 to 8 classes cost 2-3x the time and imputed no better).
AUTO_MAX_WITH_EFFECTS = 4
AUTO_MAX_ITER = 100


#: threadpoolctl's controller, made on first use: making one scans the loaded libraries
#: (about 10 ms, paid twice per ``fit_transform`` before)
_BLAS_CONTROLLER: list = []


def _one_blas_thread():
    """BLAS on one thread while fitting, when threadpoolctl is installed (it is optional):
    the model's matrices are small, and a threaded BLAS on a busy 2-core machine spent
    about a fifth of a fit waiting for descheduled threads."""
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_CONTROLLER.append(None)
        else:
            import scipy.linalg  # noqa: F401  (its own BLAS, loaded before the scan)

            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


def _holdout_rng(random_state: Any) -> np.random.Generator:
    """The stream choosing held-out cells: fixed without ``random_state``, and never the
    stream ``np.random.default_rng(random_state)`` itself (which a user may have used to
    hide the cells: the held-out draws would then line up with the gaps)."""
    if random_state is None:
        return np.random.default_rng(AUTO_HOLDOUT_SEED)
    if isinstance(random_state, numbers.Integral):
        return np.random.default_rng([int(random_state), AUTO_HOLDOUT_SEED])
    base = check_random_state(copy.deepcopy(random_state))
    return np.random.default_rng([int(base.integers(2**62)), AUTO_HOLDOUT_SEED])


@register
class MixedImputer(OutputMixin, ParamsMixin, SaveMixin):
    """Fill the gaps of a mixed table by EM under one latent-class model.

    One model over all columns (a latent-class, or general-location, model;
    Schafer 1997, Vermunt et al. 2008): ``K`` latent classes; under class
    ``k`` an independent categorical distribution over each categorical
    column, and a multivariate normal over the continuous columns whose mean
    is the class's intercept plus an effect of each categorical level
    (``category_effects``). A row's observed cells of every kind tell which
    classes, and which levels of its categorical gaps, are likely, and those
    predict its gaps of every kind: categorical gaps are filled from
    continuous columns and the reverse. EM fits the model to the observed
    cells (each row's missing levels enumerated exactly; numba kernels); the
    objective never decreases (``objective_history_``).

    How columns are treated (pandas DataFrames; arrays likewise, with
    ``categorical_features`` naming their categorical columns):

    * ``category``, ``bool``/``boolean``, ``object`` and string columns,
      columns named in ``categorical_features``, and numeric columns whose
      observed values are exactly 0 and 1 are **categorical**: levels are
      the observed values (a level seen only later is an error), each
      level gets ``alpha`` pseudo-counts per class (a Dirichlet prior:
      rare levels are smoothed, never given probability 0);
    * numeric columns of an integer dtype, or whose observed values are all
      whole numbers, are **integer**: modelled as continuous, fills rounded
      to the nearest integer, and kept >= 0 when every observed value is
      (counts);
    * other numeric columns are **continuous**;
    * ``bounds={"col": (low, high)}`` (``None`` for an open end) declares a
      range: observed values outside it are an error, fills are clipped
      into it;
    * datetimes, timedeltas and other types are passed through untouched.

    :meth:`transform` fills continuous gaps from the row's observed cells (see
    ``shrinkage``) and
    categorical gaps with their most probable level (:meth:`predict_level_proba`
    gives the probabilities); :meth:`sample_imputations` draws completed
    copies for multiple imputation (bootstrap EM, then every gap drawn from
    its conditional distribution), to be analysed and combined with
    :func:`latentem.pool_estimates`. Observed cells never change; the input
    is never modified; DataFrames come back with the same columns, dtypes
    and index.

    Parameters
    ----------
    n_components : int or "auto", default="auto"
        Number of latent classes. ``"auto"`` holds out 10% of the observed
        cells, fits 1, 2, 3, ... classes (up to ``max_components``) to the
        rest, and keeps the number whose model gives the held-out cells the
        highest log-likelihood given each row's other cells
        (``n_components_``, ``component_scores_``); the search stops at the
        first candidate that does not improve on the best by at least 0.01
        nats per held-out cell (a larger number of classes must earn its cost).
    categorical_features : None, sequence of names or indices, or boolean mask
        Numeric columns to treat as categorical (for an array, its column
        indices; a DataFrame's text, category and boolean columns are
        categorical anyway).
    bounds : None or dict, default=None
        ``{column: (low, high)}`` by name (or index for arrays).
    covariance_type : {"tied", "full"}, default="tied"
        ``"tied"``: one covariance of the continuous columns shared by all
        classes, which differ in their means (Schafer's general location
        model); it imputed continuous cells better than ``"full"`` (a
        covariance per class) on the three tables of
        ``benchmarks/bench_impute_mixed.py`` at 10% and 50% missing (one seed).
    alpha : float >= 0, default=0.5
        Dirichlet pseudo-counts added to every level of every class.
    ridge : float >= 0, default=1.0
        Prior worth ``ridge`` rows per class that shrinks each class's
        covariance towards the diagonal of the observed variances (keeps
        small classes from collapsing).
    max_components : int, default=8
        Largest number of classes ``"auto"`` tries. More classes always fit
        the held-out categorical cells a little better, but on the
        benchmark's tables above 8 they imputed continuous cells worse and
        cost more time.
    max_iter : int, default=200
    tol : float, default=1e-4
        Stop when the mean per-row objective changes by at most ``tol``.
    n_init : int, default=1
        Restarts (k-means++ starts) per fit; the best objective is kept.
    round_integers : bool, default=True
        Round the fills of integer columns.
    shrinkage : bool, default=True
        With ``category_effects=False``: fill continuous gaps from each class's
        per-column regressions shrunk as Bayesian ridge regressions (as
        :class:`~latentem.EMImputer`'s default); False: the plain conditional
        means. (With category effects the fills are the conditional means.)
    category_effects : bool, default=True
        True: each categorical level shifts the continuous means (an effect per
        level and continuous column, shrunk towards 0 with the weight of one
        row, in ``category_effects_``), as a regression on one-hot levels does;
        the E-step then enumerates the levels of each row's categorical gaps,
        which costs the product of their numbers of levels (vectorised NumPy;
        above ``LATENTEM_SMALL_ROWS`` rows one small solver compiles, once), and
        ``"auto"`` tries at most 4 classes. It imputed continuous cells better
        on most of the benchmark's tables, at about the cost of the model
        without effects. False: categories inform continuous columns only
        through the classes (the default before; model files saved then load
        with it).
    random_state : None, int or numpy Generator
    verbose : int, default=0

    Attributes
    ----------
    n_components_ : int
    component_scores_ : dict
        With ``"auto"``: mean held-out log-likelihood per cell of each candidate.
    weights_ : ndarray (n_components_,)
    means_, covariances_ : ndarray
        Each class's mean (K, Dc) (with category effects: its intercept, the
        mean before the levels' effects) and covariance (K, Dc, Dc) of the
        continuous columns.
    probs_ : dict
        ``{column: ndarray (K, L)}``, each class's level probabilities.
    category_effects_ : dict
        ``{column: ndarray (L, Dc)}``, each level's effect on the continuous
        means (zeros with ``category_effects=False``).
    categories_ : dict
        ``{column: list of levels}`` of every categorical column.
    continuous_features_, categorical_features_ : list of str
        The columns modelled as continuous (integer ones included) and as categorical.
    history_, objective_history_ : ndarray
        Log-likelihood, and log-likelihood plus log-prior (never decreasing).
    n_iter_, converged_, lower_bound_
    n_features_in_ : int
    feature_names_in_ : ndarray of str (DataFrames only)

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from latentem import MixedImputer
    >>> rng = np.random.default_rng(0)
    >>> group = rng.integers(0, 2, 400)
    >>> df = pd.DataFrame({
    ...     "group": pd.Categorical(np.where(group == 1, "b", "a")),
    ...     "x": rng.normal(3.0 * group, 1.0),
    ... })
    >>> gappy = df.copy()
    >>> gappy.loc[rng.random(400) < 0.2, "group"] = np.nan
    >>> gappy.loc[rng.random(400) < 0.2, "x"] = np.nan
    >>> filled = MixedImputer(n_components=2, random_state=0).fit_transform(gappy)
    >>> filled["group"].dtype == df["group"].dtype, int(filled.isna().sum().sum())
    (True, 0)
    >>> hidden = gappy["group"].isna().to_numpy()
    >>> bool((filled["group"][hidden] == df["group"][hidden]).mean() > 0.8)
    True
    """

    def __init__(
        self,
        n_components: Any = "auto",
        *,
        categorical_features: Any = None,
        bounds: Any = None,
        covariance_type: str = "tied",
        alpha: float = 0.5,
        ridge: float = 1.0,
        max_components: int = 8,
        max_iter: int = 200,
        tol: float = 1e-4,
        n_init: int = 1,
        round_integers: bool = True,
        shrinkage: bool = True,
        category_effects: bool = True,
        random_state: Any = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.categorical_features = categorical_features
        self.bounds = bounds
        self.covariance_type = covariance_type
        self.alpha = alpha
        self.ridge = ridge
        self.max_components = max_components
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.round_integers = round_integers
        self.shrinkage = shrinkage
        self.category_effects = category_effects
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_settings(self) -> None:
        if not (isinstance(self.n_components, str) and self.n_components == "auto"):
            check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_components, "max_components")
        if self.covariance_type not in ("full", "tied"):
            raise ValueError(
                f'covariance_type must be "full" or "tied"; got {self.covariance_type!r}.'
            )
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        for name in ("alpha", "ridge", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0; got {v!r}.")

    def _require_fitted(self) -> None:
        if not self._fitted():
            raise not_fitted_error(self)

    def _fitted(self) -> bool:
        return "_model" in self.__dict__

    def _sklearn_tags(self, tags: Any) -> Any:
        # categorical columns are read from a DataFrame's dtypes or
        # ``categorical_features``; a numeric array is all continuous
        return transformer_tags(tags, allow_nan=True, preserves_dtype=["float64"])

    def _precheck(self, X: Any) -> Any:
        """scikit-learn's generic input rules; a DataFrame passes through, any
        other table becomes an array (not a copy)."""
        X = precheck_table(self, X, one_d_as_column=False)
        return X if hasattr(X, "columns") else np.asarray(X)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> MixedImputer:
        """Fit the latent-class model to the observed cells of X.

        Parameters
        ----------
        X : DataFrame or ndarray (n_samples, n_features)
            Gaps are NaN, None, ``pd.NA`` or ``NaT``.
        y : ignored

        Returns
        -------
        self
        """
        self._fit(X)
        return self

    def _fit(self, X: Any) -> np.ndarray:
        with _one_blas_thread():
            return self._fit_table(X)

    def _fit_table(self, X: Any) -> np.ndarray:
        self._check_settings()
        X = self._precheck(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError(
                f"X has n_samples={n}; imputation needs at least 2 rows to learn from."
            )
        schema = learn_schema(X, self.categorical_features, self.bounds)
        Z = encode(X, schema)
        Dc = len(schema.continuous)
        prior_var = np.nanvar(Z[:, :Dc], axis=0) if Dc else np.zeros(0)
        n_levels = [len(c.levels) for c in schema.categorical]
        rng = check_random_state(self.random_state)
        ct = self.covariance_type

        def build(K):
            return _MixedEM(
                K, Dc, n_levels, self.alpha, self.ridge, prior_var, ct, self.category_effects
            )

        if isinstance(self.n_components, str):
            K, self.component_scores_ = self._choose_k(Z, build, rng)
        else:
            K = int(self.n_components)
            if K > n:
                raise ValueError(f"n_components={K} is larger than the number of rows ({n}).")
            self.__dict__.pop("component_scores_", None)
        model, result = self._fit_model(build(K), Z, rng)
        self._schema = schema
        self._Z_fit = Z
        self.n_components_ = K
        self._set_result(model, result, n)
        return Z

    def _fit_model(self, model: _MixedEM, Z: np.ndarray, rng, quiet: bool = False):
        model.attach(Z)
        # the library's rule holds here too: up to LATENTEM_SMALL_ROWS rows (1,000) run
        # the NumPy kernels and compile nothing (a 944-row latent-class fit ran about 5x
        # faster compiled, once compiling's minute was paid)
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", ConvergenceWarning)
            result = fit_em(
                model,
                Z,
                max_iter=min(self.max_iter, AUTO_MAX_ITER) if quiet else self.max_iter,
                tol=max(self.tol, AUTO_TOL) if quiet else self.tol,
                n_init=self.n_init if model.n_components > 1 else 1,
                random_state=rng,
                verbose=0 if quiet else self.verbose,
                # extrapolation along the EM path: the latent-class fits crawl
                accelerate="squarem",
            )
        return model, result

    def _choose_k(self, Z: np.ndarray, build, rng) -> tuple[int, dict]:
        """The number of classes whose fit best predicts held-out observed cells."""
        hold_rng = _holdout_rng(self.random_state)
        observed = ~np.isnan(Z)
        held = observed & (hold_rng.random(Z.shape) < AUTO_HOLDOUT)
        # keep at least two observed cells (and values) per column for the fit
        for j in range(Z.shape[1]):
            rest = observed[:, j] & ~held[:, j]
            if np.unique(Z[rest, j]).size < 2:
                held[:, j] = False
        Z_train = np.where(held, np.nan, Z)
        rows = held.any(axis=1)
        n_held = int(held.sum())
        if n_held == 0:
            return 1, {1: 0.0}
        Z_rows, Z_train_rows = Z[rows], Z_train[rows]
        scores: dict = {}
        best, best_score, worse = 1, -math.inf, 0
        largest = min(int(self.max_components), Z.shape[0])
        if self.category_effects:
            largest = min(largest, AUTO_MAX_WITH_EFFECTS)
        for K in AUTO_GRID:
            if K > largest:
                break
            try:
                model, _ = self._fit_model(build(K), Z_train, rng, quiet=True)
            except (ValueError, FloatingPointError):
                break
            # log p(held-out cells | the row's other cells), per held-out cell
            gain = model.row_log_likelihood(Z_rows) - model.row_log_likelihood(Z_train_rows)
            score = float(gain.sum()) / n_held
            scores[K] = score
            if score > best_score + AUTO_MIN_GAIN:
                best, best_score, worse = K, score, 0
            else:
                worse += 1
                if worse >= AUTO_PATIENCE:
                    break
        return best, scores

    def _set_result(self, model: _MixedEM, result: Any, n: int) -> None:
        self._model = model
        self.history_ = np.asarray(result.history)
        self.objective_history_ = np.asarray(result.objective_history)
        self.n_iter_ = int(result.n_iter)
        self.converged_ = bool(result.converged)
        self.lower_bound_ = float(result.log_likelihood) / n
        schema = self._schema
        self.n_features_in_ = len(schema.names)
        if schema.frame:
            self.feature_names_in_ = np.array(schema.names, dtype=object)
        else:
            self.__dict__.pop("feature_names_in_", None)
        self.continuous_features_ = [c.name for c in schema.continuous]
        self.categorical_features_ = [c.name for c in schema.categorical]
        self.categories_ = {c.name: list(c.levels) for c in schema.categorical}

    # ------------------------------------------------------------------ fitted values
    @property
    def weights_(self) -> np.ndarray:
        self._require_fitted()
        return self._model.latent.weights_

    @property
    def means_(self) -> np.ndarray:
        self._require_fitted()
        g = self._model.gauss
        return np.zeros((self.n_components_, 0)) if g is None else g.means_

    @property
    def covariances_(self) -> np.ndarray:
        self._require_fitted()
        g = self._model.gauss
        return np.zeros((self.n_components_, 0, 0)) if g is None else g.covariances_

    @property
    def category_effects_(self) -> dict:
        self._require_fitted()
        m = self._model
        out = {}
        for d, c in enumerate(self._schema.categorical):
            L = len(c.levels)
            if m.effects:
                out[c.name] = m.coef_[m.offsets[d] : m.offsets[d] + L]
            else:
                out[c.name] = np.zeros((L, m.n_continuous))
        return out

    @property
    def probs_(self) -> dict:
        self._require_fitted()
        cols = self._schema.categorical
        return {c.name: self._model.cat.probs_[:, d, : len(c.levels)] for d, c in enumerate(cols)}

    # ------------------------------------------------------------------ imputing
    def _read(self, X: Any) -> tuple[Any, np.ndarray]:
        """X after scikit-learn's generic checks, and its encoded table."""
        self._require_fitted()
        X = self._precheck(X)
        if not self._schema.frame:
            note_features(self, X, reset=False)
            check_n_features(self, np.shape(X)[1])
        return X, encode(X, self._schema)

    def _finish_continuous(self, F: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Fills of the continuous block rounded (integer columns) and clipped (bounds)."""
        out = F.copy()
        for j, col in enumerate(self._schema.continuous):
            g = gaps[:, j]
            v = out[g, j]
            if col.integer and self.round_integers:
                v = np.round(v)
                low, high = np.ceil(col.low), np.floor(col.high)  # whole bounds
            else:
                low, high = col.low, col.high
            out[g, j] = np.clip(v, low, high)
        return out

    def transform(self, X: Any) -> Any:
        """Fill every gap of X: continuous ones from the row's observed cells (see
        ``shrinkage``), categorical ones with their most probable level.

        Parameters
        ----------
        X : DataFrame or ndarray with the columns seen in ``fit``

        Returns
        -------
        DataFrame or ndarray
            A new object of the input's type; X is not changed.
        """
        return self._fill(*self._read(X))

    def _fill(self, X: Any, Z: np.ndarray) -> Any:
        with _one_blas_thread():
            return self._fill_table(X, Z)

    def _fill_table(self, X: Any, Z: np.ndarray) -> Any:
        gaps = np.isnan(Z)
        if not gaps.any():
            return self._wrap_output(rebuild(X, self._schema, Z, gaps), X)
        model = self._model
        out = Z.copy()
        Dc = model.n_continuous
        if model.effects:
            F, probs = model.conditional_fills(Z)
        else:
            resp = model.posteriors(Z)
            F, probs = None, model.level_probabilities(resp) if model.cat is not None else None
            if Dc and gaps[:, :Dc].any():
                coef = model.regressions(self._n_observed()) if self.shrinkage else None
                F = model.fill_continuous(Z, resp, coef)
        if Dc and gaps[:, :Dc].any():
            out[:, :Dc] = self._finish_continuous(F, gaps[:, :Dc])
        if model.cat is not None and gaps[:, Dc:].any():
            best = probs.argmax(axis=-1)
            out[:, Dc:] = np.where(gaps[:, Dc:], best, Z[:, Dc:])
        return self._wrap_output(rebuild(X, self._schema, out, gaps), X)

    def _n_observed(self) -> np.ndarray:
        """Observed values of each continuous column at fit."""
        Dc = self._model.n_continuous
        return (~np.isnan(self._Z_fit[:, :Dc])).sum(axis=0).astype(np.float64)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X)`` then ``transform(X)``, reading X once."""
        X = self._precheck(X)
        return self._fill(X, self._fit(X))

    def predict_level_proba(self, X: Any) -> dict:
        """Level probabilities of every categorical cell given the row's observed cells.

        Returns
        -------
        dict
            ``{column: probabilities}``, (n_samples, L) per categorical column, its
            columns in the order of ``categories_[column]``; a DataFrame (index of
            X, the levels as columns) for DataFrame input. An observed cell has
            probability 1 on its level.
        """
        X, Z = self._read(X)
        model = self._model
        if model.cat is None:
            return {}
        Dc = model.n_continuous
        P = model.conditional_fills(Z)[1]
        out = {}
        for d, col in enumerate(self._schema.categorical):
            p = P[:, d, : len(col.levels)].copy()
            code = Z[:, Dc + d]
            seen = ~np.isnan(code)
            p[seen] = 0.0
            p[seen, code[seen].astype(np.int64)] = 1.0
            if self._schema.frame:
                import pandas as pd

                p = pd.DataFrame(p, index=X.index, columns=list(col.levels))
            out[col.name] = p
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: every input column, in order."""
        self._require_fitted()
        if self._schema.frame:
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.array([f"x{j}" for j in range(self.n_features_in_)], dtype=object)

    def sample_imputations(
        self, X: Any, n_imputations: int = 5, *, random_state: Any = None
    ) -> list:
        """Multiple imputation: ``n_imputations`` completed copies of X.

        Each copy comes from bootstrap EM (as Amelia): the fitted rows are
        resampled with replacement and EM re-run from the fitted parameters;
        then each row's class is drawn from its posterior given its observed
        cells, its continuous gaps from their conditional normal and its
        categorical gaps from the class's level probabilities. Integer fills
        are rounded and bounded fills clipped as in :meth:`transform`.
        Analyse every copy and combine the results with
        :func:`latentem.pool_estimates`.

        Parameters
        ----------
        X : DataFrame or ndarray with the columns seen in ``fit``
        n_imputations : int, default=5
        random_state : None, int or Generator (defaults to the estimator's)

        Returns
        -------
        list of DataFrame or ndarray
        """
        n_imputations = check_positive_int(n_imputations, "n_imputations")
        X, Z = self._read(X)
        gaps = np.isnan(Z)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        out = []
        with _one_blas_thread():
            for _ in range(n_imputations):
                out.append(self._one_imputation(X, Z, gaps, rng))
        return out

    def _one_imputation(self, X: Any, Z: np.ndarray, gaps: np.ndarray, rng) -> Any:
        """One completed copy: bootstrap EM, then every gap drawn."""
        Dc = self._model.n_continuous
        model = self._bootstrap_model(rng)
        drawn = model.draw(Z, model.posteriors(Z), rng)
        if Dc:
            drawn[:, :Dc] = self._finish_continuous(drawn[:, :Dc], gaps[:, :Dc])
        return rebuild(X, self._schema, drawn, gaps)

    def _bootstrap_model(self, rng: np.random.Generator) -> _MixedEM:
        from latentem.models.imputer.multiple import bootstrap_em

        return bootstrap_em(
            self._model,
            self._Z_fit,
            rng,
            max_iter=self.max_iter,
            tol=self.tol,
            families=lambda model: [] if model.gauss is None else [model.gauss],
            advice="the table is too small or too degenerate for multiple imputation; pass "
            "a larger ridge.",
        )

    # ------------------------------------------------------------------ model files
    _SAVED = ("n_components_", "history_", "objective_history_", "n_iter_", "converged_")

    def _to_state(self) -> dict:
        params = self.get_params()
        if isinstance(params["bounds"], dict):
            params["bounds"] = [[k, v[0], v[1]] for k, v in params["bounds"].items()]
        if params["categorical_features"] is not None:
            params["categorical_features"] = [
                v.item() if isinstance(v, np.generic) else v
                for v in np.asarray(params["categorical_features"]).ravel().tolist()
            ]
        state = {"params": params}
        if "_model" in self.__dict__:
            m = self._model
            state["fitted"] = {
                **{name: getattr(self, name) for name in self._SAVED},
                "lower_bound_": self.lower_bound_,
                "schema": self._schema.to_json(),
                "Z_fit": self._Z_fit,
                "prior_var": m.prior_var,
                "gauss": m.gauss,
                "cat": m.cat,
                "latent": m.latent,
                "coef": m.coef_ if m.effects else None,
            }
            if "component_scores_" in self.__dict__:
                scores = self.component_scores_.items()
                state["fitted"]["component_scores_"] = [[int(k), float(v)] for k, v in scores]
        return state

    @classmethod
    def _from_state(cls, state: dict) -> MixedImputer:
        params = dict(state["params"])
        # files from before category effects were an option hold the model without them
        params.setdefault("category_effects", False)
        if isinstance(params.get("bounds"), list):
            params["bounds"] = {k: (low, high) for k, low, high in params["bounds"]}
        imp = cls(**params)
        fitted = state.get("fitted")
        if fitted is None:
            return imp
        imp._schema = Schema.from_json(fitted["schema"])
        imp._Z_fit = np.asarray(fitted["Z_fit"], dtype=np.float64)
        schema = imp._schema
        model = _MixedEM(
            int(fitted["n_components_"]),
            len(schema.continuous),
            [len(c.levels) for c in schema.categorical],
            imp.alpha,
            imp.ridge,
            np.asarray(fitted["prior_var"], dtype=np.float64),
            imp.covariance_type,
            imp.category_effects,
        )
        model.gauss, model.cat, model.latent = fitted["gauss"], fitted["cat"], fitted["latent"]
        if model.effects:
            model.coef_ = np.asarray(fitted["coef"], dtype=np.float64)
        imp._model = model

        class _Result:  # what _set_result reads
            history = fitted["history_"]
            objective_history = fitted["objective_history_"]
            n_iter = fitted["n_iter_"]
            converged = fitted["converged_"]
            log_likelihood = float(fitted["lower_bound_"]) * imp._Z_fit.shape[0]

        imp.n_components_ = int(fitted["n_components_"])
        imp._set_result(model, _Result, imp._Z_fit.shape[0])
        if "component_scores_" in fitted:
            imp.component_scores_ = {int(k): float(v) for k, v in fitted["component_scores_"]}
        return imp
