"""Gaussian mixture models with scikit-learn's API, fitted by :func:`latentem.fit_em`."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from latentem._sklearn import (
    check_n_features,
    convergence_warning_class,
    density_tags,
    note_features,
)
from latentem._validation import (
    all_finite,
    check_array,
    check_positive_int,
    check_random_state,
)
from latentem.base import InitParamsSetting
from latentem.families.gaussian import GaussianFamily, covariance_shape
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.latent import CategoricalLatent
from latentem.models.mixture import Mixture, MixtureSurface
from latentem.registry import register

__all__ = ["GaussianMixture"]

INIT_METHODS = ("kmeans++", "kmeans", "random", "random_from_data")
#: Other spellings of the methods (scikit-learn writes "k-means++").
INIT_ALIASES = {"k-means++": "kmeans++"}


@register(
    fitted=(
        "n_features_in_",
        "_family",
        "_latent",
        "converged_",
        "n_iter_",
        "history_",
        "lower_bound_",
        "lower_bounds_",
        "best_init_",
        "_dtype",
    )
)
class GaussianMixture(Mixture):
    """Gaussian mixture model fitted by fast, fused EM.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: same
    constructor arguments, fitted attributes and methods, with the same
    shapes and meanings. From the same starting parameters it takes the same
    EM steps. The E-step is one fused, multi-threaded numba pass over the
    data per iteration.

    Unlike scikit-learn's, it accepts missing values: NaN cells are
    marginalised exactly (a row's log-density is that of its observed
    cells; the E-step adds the conditional moments of the gaps), in
    ``fit``, ``predict``, ``predict_proba``, ``score`` and ``score_samples``.
    Complete data take the fused path at full speed.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        "full": each component has its own covariance matrix; "tied": all
        share one; "diag": each has a diagonal covariance; "spherical": each
        has a single variance.
    tol : float, default=1e-3
        Convergence threshold on the change of the mean per-sample
        log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance, so that duplicated points
        and constant columns still give positive-definite covariances.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best (highest likelihood) is kept.
    init_params : {"kmeans++", "kmeans", "random", "random_from_data"}, default="kmeans++"
        How starting responsibilities are chosen: k-means++ seeds with each
        row assigned to its nearest seed; a few Lloyd iterations from
        k-means++ seeds; random responsibilities; or K random rows as
        one-point components. (Read as a string; calling it, as
        :func:`latentem.fit_em` does, initialises the model.)
    weights_init, means_init, precisions_init : array-like, optional
        User starting weights (K,), means (K, D) and precisions (layout of
        ``precisions_`` for the covariance type); they override the
        estimates from ``init_params``.
    random_state : None, int or numpy Generator, default=None
        Seeds the initialisation (and :meth:`sample`).
    warm_start : bool, default=False
        If True, a second ``fit`` starts from the previous solution
        (``n_init`` is then ignored).
    accelerate : {None, "squarem"}, default=None
        ``"squarem"`` extrapolates along the EM path; it usually needs fewer
        passes over the data and never lowers the likelihood.
    verbose : int, default=0
        Print progress.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) for "full", (D, D) for "tied", (K, D) for "diag", (K,)
        for "spherical".
    precisions_ : ndarray
        Inverses of ``covariances_``, same layout.
    precisions_cholesky_ : ndarray
        Upper-triangular ``P`` with ``precision = P @ P.T`` (reciprocal
        standard deviations for "diag" and "spherical").
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean per-sample log-likelihood at the last E-step of the best
        initialisation.
    history_ : ndarray
        Total log-likelihood at every E-step of the best initialisation.
    n_features_in_ : int

    Notes
    -----
    *Empty components.* When a component's expected count falls below
    ``1e-10 * n_samples`` (it lost all its points), the M-step re-seeds it
    instead of letting it degenerate: the heaviest component is split in
    two along the main axis of its covariance (means at
    ``mean +/- sqrt(lambda_max) v_max``, both keeping its covariance and
    half its weight). The likelihood may dip at that iteration.

    *Ill-conditioned covariances.* A covariance estimate that is not
    positive definite raises ``ValueError`` suggesting a larger
    ``reg_covar``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.sort(gm.means_[:, 0])
    array([ 1., 10.])
    >>> gm.predict([[0, 0], [12, 3]]).tolist() in ([0, 1], [1, 0])
    True
    """

    init_params = InitParamsSetting()
    #: Every parameter is trained (:class:`Mixture`'s ``params``), by maximum
    #: likelihood: no prior term for the runner to add.
    params = "wmc"
    log_prior = None

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans++",
        weights_init: Any = None,
        means_init: Any = None,
        precisions_init: Any = None,
        random_state: Any = None,
        warm_start: bool = False,
        accelerate: str | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_settings(self) -> None:
        from latentem.families.gaussian import COVARIANCE_TYPES

        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter", minimum=0)  # 0: initialise only
        check_positive_int(self.n_init, "n_init")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {self.covariance_type!r}."
            )
        if not isinstance(self.init_params, str) or _init_method(self) not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {INIT_METHODS} (or 'k-means++'); "
                f"got {str(self.init_params)!r}."
            )
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')
        for name in ("tol", "reg_covar"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0; got {v!r}.")

    def validate_data(self, X: Any) -> np.ndarray:
        """Check X for fitting: 2-D, no inf (NaN marks a gap), enough rows.

        Returns a C-contiguous float64 (or float32) array; X is not modified.
        """
        self._check_settings()
        note_features(self, X, reset=not (self.warm_start and self._fitted()))
        X = check_array(X, name="X", allow_nan=True, one_d_as_column=False)
        self._check_gaps(X)
        n, D = X.shape
        if n < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"n_samples={n}; pass more data or use fewer components."
            )
        if self._fitted() and self.warm_start and D != self.n_features_in_:
            raise ValueError(
                f"X has {D} features but the model was fitted with {self.n_features_in_}; "
                "warm_start needs the same features."
            )
        return self._validated(X)

    def validate_block(self, X: Any) -> np.ndarray:
        """Check one block of a larger data set (chunked, Dask and online fits).

        As :meth:`validate_data` without the whole-data checks (a block may
        hold fewer rows than components).
        """
        X = check_array(X, name="X", allow_nan=True, one_d_as_column=False)
        self._check_gaps(X)
        if self._fitted():
            check_n_features(self, X.shape[1])
        return self._validated(X)

    @staticmethod
    def _check_gaps(X: np.ndarray) -> None:
        """NaN cells are gaps, marginalised; a column with nothing observed is refused."""
        if all_finite(X):  # complete data: no mask to make
            return
        nan = np.isnan(X)
        if nan.all(axis=0).any():
            col = int(np.flatnonzero(nan.all(axis=0))[0])
            raise ValueError(
                f"column {col} of X is entirely missing (NaN); drop it, since nothing can be "
                "learnt about it."
            )

    def _emission(self) -> GaussianFamily:
        return self._family

    def _check_X(self, X: Any) -> np.ndarray:
        self._require_fitted()
        note_features(self, X, reset=False)
        X = check_array(X, name="X", allow_nan=True, one_d_as_column=False)
        check_n_features(self, X.shape[1])
        return X

    def _fitted(self) -> bool:
        return "_family" in self.__dict__

    def _out_dtype(self) -> type:
        return np.float32 if self.__dict__.get("_dtype") == "float32" else np.float64

    def _sklearn_tags(self, tags: Any) -> Any:
        return density_tags(tags, allow_nan=True)

    def _sklearn_expected_failed_checks(self) -> dict[str, str]:
        return {}  # no emission parameter to replace: every check passes

    def _check_loaded(self) -> None:
        """After loading a model file: settings, weights, means and covariances."""
        from latentem.persistence.checks import _check_mixture

        _check_mixture(self)

    # ------------------------------------------------------------------ fitted attributes
    def _family_attr(name: str, doc: str):
        def get(self):
            if not self._fitted():
                raise AttributeError(
                    f"{name} is not available: {type(self).__name__} is not fitted yet."
                )
            # computed in float64; shown in the dtype of the data, as scikit-learn does
            return np.asarray(getattr(self._family, name)).astype(self._out_dtype(), copy=False)

        return property(get, doc=doc)

    means_ = _family_attr("means_", "Component means, shape (n_components, n_features).")
    covariances_ = _family_attr("covariances_", "Component covariances (scikit-learn layout).")
    precisions_cholesky_ = _family_attr(
        "precisions_cholesky_", "Cholesky factors of the precisions (scikit-learn layout)."
    )
    precisions_ = _family_attr("precisions_", "Precisions, inverses of covariances_.")
    del _family_attr

    @property
    def weights_(self) -> np.ndarray:
        """Mixture weights, shape (n_components,)."""
        return MixtureSurface.weights_.fget(self).astype(self._out_dtype(), copy=False)

    # ------------------------------------------------------------------ protocol
    def _new_parts(self, D: int) -> None:
        K = self.n_components
        self.n_features_in_ = D
        self._family = GaussianFamily(K, D, self.covariance_type, self.reg_covar)
        self._latent = CategoricalLatent(K)

    def _init_params(self, X: np.ndarray, rng: np.random.Generator) -> None:
        """Starting parameters from ``init_params`` and the user's ``*_init`` arrays."""
        n, D = X.shape
        K = self.n_components
        self._new_parts(D)
        fam, lat = self._family, self._latent
        user = (self.weights_init, self.means_init, self.precisions_init)
        if any(u is None for u in user):
            W, shift = self._initial_responsibilities(X, rng)
            terms = self._rows(X)
            if terms is not None:
                W = terms.start(W)
            cov0 = np.ones(covariance_shape(self.covariance_type, K, D))
            if self.covariance_type in ("full", "tied"):
                cov0 = np.broadcast_to(np.eye(D), cov0.shape).copy()
            fam.set_parameters(shift, cov0)
            stats = fam.accumulate(X, W)
            del W
            fam.m_step(stats)
            lat.m_step(stats[0])
        if self.weights_init is not None:
            lat.set_weights(_check_weights(self.weights_init, K))
        means = fam.means_ if self.means_init is None else _check_means(self.means_init, K, D)
        if self.precisions_init is not None:
            cov = _covariances_from_precisions(self.precisions_init, self.covariance_type, K, D)
        else:
            cov = fam.covariances_
        fam.set_parameters(means, cov)

    def _initial_responsibilities(self, X, rng) -> tuple[np.ndarray, np.ndarray]:
        n, D = X.shape
        K = self.n_components
        method = _init_method(self)
        W = np.zeros((n, K))
        if np.isnan(X).any():  # k-means on the gaps filled with column means
            X = np.ascontiguousarray(np.where(np.isnan(X), np.nanmean(X, axis=0), X))
        if method in ("kmeans++", "kmeans"):
            first = int(rng.integers(n))
            uniforms = rng.random((max(K - 1, 0), 2 + int(math.log(K))))
            idx = kmeans_plusplus(X, K, first, uniforms)
            centers = np.ascontiguousarray(X[idx], dtype=np.float64)
            centers, labels, _ = lloyd(X, centers, 0 if method == "kmeans++" else 300)
            W[np.arange(n), labels] = 1.0
            return W, centers
        if method == "random":
            W[:] = rng.uniform(size=(n, K))
            W /= W.sum(axis=1, keepdims=True)
            return W, np.tile(X.mean(axis=0, dtype=np.float64), (K, 1))
        idx = rng.choice(n, size=K, replace=False)
        W[idx, np.arange(K)] = 1.0
        return W, np.ascontiguousarray(X[idx], dtype=np.float64)

    # ------------------------------------------------------------------ scikit-learn API
    def fit(
        self, X: Any, y: Any = None, *, sample_weight: Any = None, labels: Any = None
    ) -> GaussianMixture:
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
            As in scikit-learn (its tools pass class labels here; component
            labels go in ``labels``).
        sample_weight : array-like (n_samples,), optional
            Row weights >= 0; a weight of 2 fits as the row twice (scikit-learn
            #15647). The fused kernels give way to a density-then-sums pass.
        labels : array-like of int (n_samples,), optional
            Semi-supervised fitting (mclust's ``MclustSSC``): the known component
            of each row, -1 where it is unknown. Known rows keep their component
            throughout EM; component k is the class labelled k.

        Returns
        -------
        self
        """
        self.__dict__.pop("_online", None)  # a full fit ends any online stream
        self._check_settings()
        warm = bool(self.warm_start) and self._fitted()
        if self.max_iter == 0:
            with self._rows_for_fit(X, sample_weight, labels):
                return self._initialise_only(X, warm)
        watch = _Watch(self, X, warm)
        try:
            result = self._run_em(X, warm, sample_weight, labels, callback=watch)
        except ValueError as exc:
            if "not positive definite" not in str(exc):
                raise
            raise ValueError(  # scikit-learn's wording first: its users' code matches it
                "Fitting the mixture model failed because some components have ill-defined "
                "empirical covariance (for instance caused by singleton or collapsed samples). "
                "Try to decrease the number of components, increase reg_covar, or scale the "
                f"input data. ({exc})"
            ) from exc
        self._record(result)
        self.converged_ = bool(result.converged or watch.warm_converged)
        self.lower_bounds_ = list(self.history_ / result.n_samples)
        self._dtype = _data_dtype(X)
        if not self.converged_:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data. "
                f"(EM ran max_iter={self.max_iter} iterations, tol={self.tol:g} on the mean "
                "per-sample log-likelihood; accelerate='squarem' may help.)",
                convergence_warning_class(),
                stacklevel=2,
            )
        return self

    def _initialise_only(self, X: Any, warm: bool) -> GaussianMixture:
        """``max_iter=0``: the starting parameters, no EM step (as scikit-learn)."""
        X = self.validate_data(X)
        if not warm:
            for rng in check_random_state(self.random_state).spawn(self.n_init):
                self.init_params(X, rng)  # the last start is kept, as in scikit-learn
        self.converged_, self.n_iter_, self.best_init_ = False, 0, 0 if warm else self.n_init - 1
        self.history_ = np.empty(0)
        self.lower_bound_, self.lower_bounds_ = -np.inf, []
        self._dtype = _data_dtype(X)
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of every row (of its observed cells), shape (n_samples,)."""
        X = self._check_X(X)
        return self._score_rows(X).astype(X.dtype, copy=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of every component for every row, shape (n, K)."""
        X = self._check_X(X)
        return self._posteriors(X).astype(X.dtype, copy=False)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples ``(X, labels)``, grouped by component as in scikit-learn."""
        self._require_fitted()
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1
        ):
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}; it must be an integer >= 1."
            )
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(int(n_samples), self._latent.weights_)
        X = self._family.sample(counts, rng).astype(self._out_dtype(), copy=False)
        y = np.repeat(np.arange(self.n_components), counts)
        return X, y


class _Watch:
    """The runner's callback during ``fit``: scikit-learn's convergence rules.

    A warm start tests its first iteration against the previous fit's
    ``lower_bound_`` (so ``max_iter=1`` fits in a loop converge), and the
    last allowed iteration stops the runner quietly: ``fit`` words the
    ConvergenceWarning itself, as scikit-learn does.
    """

    def __init__(self, model: GaussianMixture, X: Any, warm: bool) -> None:
        self.max_iter = int(model.max_iter)
        self.tol = float(model.tol)
        self.previous = float(model.lower_bound_) if warm else None
        self.n = _n_rows(X)
        self.warm_converged = False

    def __call__(self, info: Any) -> bool:
        if info.iteration == 1 and self.previous is not None and self.n:
            if abs(info.log_likelihood / self.n - self.previous) < self.tol:
                self.warm_converged = True
                return True
        return info.iteration >= self.max_iter


def _n_rows(X: Any) -> int | None:
    try:
        return int(np.shape(X)[0]) if hasattr(X, "shape") else len(X)
    except (TypeError, ValueError):  # rows not known up front (some Dask arrays)
        return None


def _data_dtype(X: Any) -> str:
    """float32 data get float32 fitted attributes; everything else float64."""
    return "float32" if getattr(X, "dtype", None) == np.float32 else "float64"


def _init_method(model: Any) -> str:
    method = str(model.init_params)
    return INIT_ALIASES.get(method, method)


def _check_weights(w: Any, K: int) -> np.ndarray:
    # scikit-learn's wording, which its users' tests match
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (K,):
        raise ValueError(
            f"The parameter 'weights' should have the shape of ({K},), but got {w.shape} "
            "(weights_init: one weight per component)."
        )
    if np.any(w < 0) or np.any(w > 1) or not np.all(np.isfinite(w)):
        raise ValueError(  # (scikit-learn names the minimum "max value"; kept for its tests)
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"max value {np.min(w):.5f}, min value {np.max(w):.5f} (weights_init)."
        )
    if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
        raise ValueError(
            f"The parameter 'weights' should be normalized, but got sum(weights) = {w.sum():.5f} "
            "(weights_init must sum to 1)."
        )
    return w


def _check_means(m: Any, K: int, D: int) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim == 1 and D == 1:
        m = m.reshape(-1, 1)
    if m.shape != (K, D):
        raise ValueError(
            f"The parameter 'means' should have the shape of ({K}, {D}), but got {m.shape} "
            "(means_init: one row per component)."
        )
    if not np.all(np.isfinite(m)):
        raise ValueError("The parameter 'means' must be finite (means_init).")
    return m


def _covariances_from_precisions(p: Any, ct: str, K: int, D: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    shape = covariance_shape(ct, K, D)
    if p.shape != shape:
        raise ValueError(
            f"The parameter '{ct} precision' should have the shape of {shape}, but got {p.shape} "
            f"(precisions_init for covariance_type={ct!r})."
        )
    if not np.all(np.isfinite(p)):
        raise ValueError(f"The parameter '{ct} precision' must be finite (precisions_init).")
    if ct in ("full", "tied"):
        mats = p if ct == "full" else p[None]
        bad = f"'{ct} precision' should be symmetric, positive-definite (precisions_init)."
        if not np.allclose(mats, mats.transpose(0, 2, 1)):
            raise ValueError(bad)
        try:
            np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            raise ValueError(bad) from None
        cov = np.linalg.inv(mats)
        cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        return cov if ct == "full" else cov[0]
    if np.any(p <= 0):
        raise ValueError(f"'{ct} precision' should be positive (precisions_init).")
    return 1.0 / p
