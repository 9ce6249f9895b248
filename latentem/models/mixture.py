"""Mixture models over any emission family: a categorical latent structure (the
mixture weights) over K parameter sets of one family, fitted by :func:`latentem.fit_em`.

:class:`Mixture` is the estimator; :class:`~latentem.PoissonMixture`,
:class:`~latentem.CategoricalMixture` and :class:`~latentem.BernoulliMixture`
(:mod:`latentem.models.family_mixtures`) and :class:`latentem.GaussianMixture`
are thin subclasses that pick the family, the last with scikit-learn's names.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from latentem._numeric import logsumexp
from latentem._sklearn import (
    check_n_features,
    density_tags,
    family_argument_checks,
    note_features,
    precheck_table,
)
from latentem._validation import check_positive_int, check_random_state
from latentem._vector import family_parts, get_vector, set_vector
from latentem.base import InitParamsSetting, ParamsMixin, not_fitted_error
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.latent import CategoricalLatent
from latentem.models._rows import RowTerms, row_terms, weighted_posteriors
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em

__all__ = ["Mixture", "MixtureSurface"]

#: How starting responsibilities are chosen (see :class:`Mixture`).
MIXTURE_INITS = ("kmeans++", "random", "family")
#: Every parameter letter: the default of ``params``.
_ALL = "abcdefghijklmnopqrstuvwxyz"

_FITTED = (
    "emission",
    "_latent",
    "n_features_in_",
    "converged_",
    "n_iter_",
    "history_",
    "lower_bound_",
    "best_init_",
)


class MixtureSurface:
    """What every mixture estimator offers once it has a latent part and a family.

    Subclasses provide ``_fitted()``, ``_check_X(X)``, ``_weighted_logprob(X)``
    (the (n, K) log-densities plus log-weights), ``_latent``, the family in
    ``_emission()``, and ``fit``.
    """

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then return the most probable component of every row."""
        return self.fit(X).predict(X)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of every row, shape (n_samples,)."""
        return self._score_rows(self._check_X(X))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean per-row log-likelihood."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior probability of every component for every row, shape (n, K)."""
        return self._posteriors(self._check_X(X))

    def predict(self, X: Any) -> np.ndarray:
        """Index of the most probable component of every row."""
        X = self._check_X(X)
        rows = self._rows_hook(X, "label")
        return np.argmax(self._weighted_logprob(X), axis=1) if rows is None else rows

    def _posteriors(self, X: np.ndarray) -> np.ndarray:
        rows = self._rows_hook(X, "proba")
        if rows is not None:
            return rows
        a = self._weighted_logprob(X)
        return np.exp(a - logsumexp(a, axis=1, keepdims=True))

    def _validated(self, X: np.ndarray) -> np.ndarray:
        """Note that X was just validated for a fit: its family's plan (the rows grouped by
        missingness), worked out on first use, then serves every E-step of the fit
        instead of a scan of X each iteration. A weak reference: the note neither
        keeps X alive nor matches another array later at the same address."""
        try:
            self._data_note = [weakref.ref(X), None]
        except TypeError:  # a family's own data type without weak references
            self._data_note = None
        return X

    def __getstate__(self) -> dict:
        # the note of the last validated X is local to this process (Dask sends the model)
        state = self.__dict__.copy()
        state.pop("_data_note", None)
        return state

    def _plan(self, X: np.ndarray) -> dict:
        """The family's missingness plan of X, for families that use one."""
        family = self._emission()
        if not callable(getattr(family, "plan", None)):
            return {}
        note = self.__dict__.get("_data_note")
        if note is None or note[0]() is not X:
            return {"plan": family.plan(X)}
        if note[1] is None:
            note[1] = family.plan(X)
        return {"plan": note[1]}

    def _rows_hook(self, X: np.ndarray, what: str) -> np.ndarray | None:
        """The family's one-pass ``mixture_rows`` answer for X, or None."""
        hook = getattr(self._emission(), "mixture_rows", None)
        return hook(X, self._latent.log_weights(), what) if callable(hook) else None

    def _score_rows(self, X: np.ndarray) -> np.ndarray:
        rows = self._rows_hook(X, "score")
        return logsumexp(self._weighted_logprob(X), axis=1) if rows is None else rows

    @property
    def weights_(self) -> np.ndarray:
        """Mixture weights, shape (n_components,)."""
        if not self._fitted():
            raise AttributeError(f"weights_ is not available: {type(self).__name__} is not fitted.")
        return self._latent.weights_

    def n_parameters(self) -> int:
        """Number of free parameters (weights and the family's)."""
        self._require_fitted()
        return self._latent.n_parameters() + int(self._emission().n_parameters())

    def _n_parameters(self) -> int:  # scikit-learn's private name, used by some user code
        return self.n_parameters()

    def bic(self, X: Any) -> float:
        """Bayesian information criterion on X (lower is better)."""
        X = self._check_X(X)
        ll = float(self._score_rows(X).sum())
        return -2.0 * ll + self.n_parameters() * math.log(X.shape[0])

    def aic(self, X: Any) -> float:
        """Akaike information criterion on X (lower is better)."""
        X = self._check_X(X)
        ll = float(self._score_rows(X).sum())
        return -2.0 * ll + 2.0 * self.n_parameters()

    def _require_fitted(self) -> None:
        if not self._fitted():
            raise not_fitted_error(self)

    @contextlib.contextmanager
    def _rows_for_fit(self, X: Any, sample_weight: Any, labels: Any) -> Iterator[None]:
        """Hold the checked ``sample_weight`` and ``labels`` while EM runs on X."""
        if sample_weight is None and labels is None:
            yield
            return
        from latentem.runner import is_out_of_core

        if is_out_of_core(X):
            raise ValueError(
                "sample_weight and labels need X in memory (an array or a DataFrame); "
                "they are not supported for chunked or Dask data."
            )
        n_rows = int(X.shape[0]) if isinstance(X, np.ndarray) else len(np.asarray(X))
        self.__dict__["_fit_rows"] = row_terms(sample_weight, labels, n_rows, self.n_components)
        try:
            yield
        finally:
            self.__dict__.pop("_fit_rows", None)

    def _run_em(
        self, X: Any, warm: bool, sample_weight: Any, labels: Any, callback: Any = None
    ) -> Any:
        """:func:`fit_em` with this estimator's settings and the fit's row terms."""
        with self._rows_for_fit(X, sample_weight, labels):
            return fit_em(
                self,
                X,
                max_iter=self.max_iter,
                tol=self.tol,
                n_init=1 if warm else self.n_init,
                random_state=self.random_state,
                accelerate=self.accelerate,
                verbose=self.verbose,
                warm_start=warm,
                callback=callback,
            )

    def _rows(self, X: Any) -> RowTerms | None:
        """The row terms of the fit in progress, if they belong to X."""
        terms = self.__dict__.get("_fit_rows")
        return terms if terms is not None and terms.applies_to(X) else None

    def _record(self, result: Any) -> None:
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.history_ = np.asarray(result.history)
        self.lower_bound_ = float(result.log_likelihood) / result.n_samples
        self.best_init_ = int(result.best_init)

    def partial_fit(
        self, X: Any, y: Any = None, *, decay: float = 0.6, offset: float = 1.0
    ) -> MixtureSurface:
        """Online EM on one mini-batch of a stream (Cappé and Moulines, 2009).

        The first call initialises the model from its batch (``init_params``,
        ``random_state``) unless it is already fitted and ``warm_start`` is
        set; every call then updates the running average of the per-sample
        statistics with step size ``gamma_t = ((1 + offset) / (t + offset))
        ** decay`` (see :mod:`latentem.backends.online`) and takes an M-step.
        ``decay`` and ``offset`` are read on the first call.

        Returns
        -------
        self
        """
        from latentem.runner import OnlineEM

        online = self.__dict__.get("_online")
        if online is None:
            warm = bool(self.warm_start) and self._fitted()
            online = OnlineEM(
                self, decay=decay, offset=offset, random_state=self.random_state, warm_start=warm
            )
        online.partial_fit(X)
        self._online = online
        self.n_iter_ = online.n_batches_
        self.lower_bound_ = online.log_likelihood_
        self.converged_ = False
        return self


@register(fitted=_FITTED, skip_params=("emission",))
class Mixture(MixtureSurface, SaveMixin, ParamsMixin):
    """A finite mixture over any emission family, fitted by EM.

    Each row comes from one of K components, chosen with probabilities
    ``weights_``; given its component, the row follows that component's
    parameter set of the emission family (see
    :class:`latentem.families.base.EmissionFamily`). The family decides
    what a row is (a vector of counts, binary flags, symbols, ...) and how
    missing values (NaN) are treated; every latentem family marginalises them.

    Parameters
    ----------
    n_components : int, default=1
        Number of components K.
    emission : EmissionFamily
        A family with ``n_components`` parameter sets; it is fitted in place
        and holds the fitted parameters (``model.emission.lambdas_``, ...).
    weights_prior : float, default=1.0
        Dirichlet pseudo-count on the weights (1.0: maximum likelihood).
    tol : float, default=1e-3
        Convergence threshold on the change of the mean per-row log-likelihood.
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Initialisations; the best (highest likelihood) is kept.
    init_params : {"kmeans++", "random", "family"}, default="kmeans++"
        Starting responsibilities: a hard assignment to k-means++ seeds
        (rows read as numbers, gaps filled with column means), random
        responsibilities, or the family's own ``init_params`` with equal
        weights. The first two take one M-step from them.
    params : str, default=all letters
        Letters of the family's parameters to train (``"w"`` the weights);
        the others keep their starting values.
    random_state : None, int or Generator, default=None
    warm_start : bool, default=False
        A second ``fit`` starts from the previous solution.
    accelerate : {None, "squarem"}, default=None
        SQUAREM extrapolation (needs a family with ``vector_attributes``).
    verbose : int, default=0

    Attributes
    ----------
    weights_ : ndarray (n_components,)
    emission : EmissionFamily
        The fitted family.
    converged_, n_iter_, lower_bound_, history_, best_init_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import Mixture
    >>> from latentem.families import PoissonFamily
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(np.repeat([[1.0, 5.0], [9.0, 2.0]], 200, axis=0))
    >>> model = Mixture(2, emission=PoissonFamily(2), random_state=0).fit(X)
    >>> np.round(model.emission.lambdas_[np.argsort(model.emission.lambdas_[:, 0])])
    array([[1., 5.],
           [9., 2.]])
    >>> model.predict(X[:3]).tolist() == [model.predict(X[:1])[0]] * 3
    True
    """

    init_params = InitParamsSetting()

    def __init__(
        self,
        n_components: int = 1,
        emission: Any = None,
        *,
        weights_prior: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans++",
        params: str = _ALL,
        random_state: Any = None,
        warm_start: bool = False,
        accelerate: str | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.emission = emission
        self.weights_prior = weights_prior
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.params = params
        self.random_state = random_state
        self.warm_start = warm_start
        self.accelerate = accelerate
        self.verbose = verbose

    #: Subclasses that build their own family name the settings they pass on to it;
    #: :meth:`_emission` copies them (and ``n_components``) to the family, so
    #: ``set_params`` reaches it.
    _family_settings: tuple[str, ...] = ()

    # ------------------------------------------------------------------ checks
    def _emission(self):
        if self.emission is None:
            raise ValueError(
                "Mixture needs an emission family, e.g. Mixture(3, emission=PoissonFamily(3)); "
                "or use GaussianMixture, PoissonMixture, BernoulliMixture, CategoricalMixture."
            )
        if self._family_settings:
            self.emission.n_components = self.n_components
            for name in self._family_settings:
                setattr(self.emission, name, getattr(self, name))
        return self.emission

    def _check_settings(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        if str(self.init_params) not in MIXTURE_INITS:
            raise ValueError(
                f"init_params must be one of {MIXTURE_INITS}; got {str(self.init_params)!r}."
            )
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')
        tol = self.tol
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
            raise ValueError(f"tol must be a number >= 0; got {tol!r}.")
        family = self._emission()
        if getattr(family, "n_components", None) != self.n_components:
            raise ValueError(
                f"the emission family has {getattr(family, 'n_components', None)} components "
                f"but the mixture has n_components={self.n_components}; they must agree."
            )

    def validate_data(self, X: Any) -> np.ndarray:
        """Check X with the family's rules and that it has at least K rows."""
        self._check_settings()
        if X is None or (hasattr(X, "__len__") and len(X) == 0):
            raise ValueError("X is empty (0 rows); pass at least one row.")
        note_features(self, X, reset=not (self.warm_start and self._fitted()))
        X = self._emission().validate_data(self._precheck(X))
        if X.shape[0] < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"n_samples={X.shape[0]}; pass more data or use fewer components."
            )
        if self._fitted() and self.warm_start and _n_features(X) != self.n_features_in_:
            raise ValueError(
                f"X has {_n_features(X)} features but the model was fitted with "
                f"{self.n_features_in_}; warm_start needs the same features."
            )
        return self._validated(X)

    def validate_block(self, X: Any) -> np.ndarray:
        """Check one block of a larger data set (chunked, Dask and online fits)."""
        X = self._precheck(X)
        if self._fitted():
            check_n_features(self, _n_features(np.asarray(X)), one_d=np.ndim(X) == 1)
        return self._validated(self._emission().validate_data(X))

    def _fitted(self) -> bool:
        return "_latent" in self.__dict__ and "n_features_in_" in self.__dict__

    def _check_X(self, X: Any) -> np.ndarray:
        self._require_fitted()
        note_features(self, X, reset=False)
        X = self._precheck(X)
        check_n_features(self, _n_features(np.asarray(X)), one_d=np.ndim(X) == 1)
        return self._emission().validate_data(X)  # (predicting leaves __dict__ as it is)

    def _sklearn_expected_failed_checks(self) -> dict[str, str]:
        # the family is a constructor argument of the generic Mixture only
        return family_argument_checks(self.emission, argument=type(self) is Mixture)

    def _precheck(self, X: Any) -> Any:
        # scikit-learn's rule: a 1-D X is ambiguous (one feature, or one sample?)
        return precheck_table(
            self,
            X,
            nonnegative=self._nonnegative(),
            missing_code=getattr(self.emission, "missing_code", None),
            one_d_as_column=False,
        )

    def _sklearn_tags(self, tags: Any) -> Any:
        tags = density_tags(tags, allow_nan=True)
        tags.input_tags.positive_only = self._nonnegative()
        tags.input_tags.categorical = bool(getattr(self.emission, "codes", False))
        return tags

    def _nonnegative(self) -> bool:
        """Whether X must be >= 0: the family says so (counts, category codes); a
        user's family that does not subclass EmissionFamily may not say."""
        return bool(getattr(self.emission, "nonnegative", False))

    # ------------------------------------------------------------------ the protocol
    def _init_params(self, X: np.ndarray, rng: np.random.Generator) -> None:
        """Starting parameters (see ``init_params``)."""
        K = self.n_components
        family = self._emission()
        self._latent = CategoricalLatent(K, self.weights_prior)
        self.n_features_in_ = _n_features(X)
        family.init_params(X, rng, _ALL)
        family.check_params()
        method = str(self.init_params)
        if method != "family":
            W = _start_responsibilities(X, K, method, rng)
            terms = self._rows(X)
            if terms is not None:
                W = terms.start(W)
            family.m_step(family.accumulate(X, W, **self._plan(X)), _ALL)
            self._latent.m_step(W.sum(axis=0))
        family.check_params()

    def _weighted_logprob(self, X: np.ndarray, plan: dict | None = None) -> np.ndarray:
        lp = self._emission().log_prob(X, **(self._plan(X) if plan is None else plan))
        return np.asarray(lp, dtype=np.float64) + self._latent.log_weights()

    def e_step(self, X: np.ndarray) -> tuple[dict, float]:
        """Statistics ``{"weights": expected counts, "emission": the family's}`` and
        the total log-likelihood.

        A family with the ``mixture_stats`` hook does it in one pass (the
        Gaussian's fused kernels); otherwise the (n, K) posteriors come from
        ``log_prob`` and go to ``accumulate``.
        """
        plan = self._plan(X)
        family = self._emission()
        terms = self._rows(X)
        fused = getattr(family, "mixture_stats", None)
        if terms is None and callable(fused):
            counts, stats, ll = fused(X, self._latent.log_weights(), **plan)
            return {"weights": counts, "emission": stats}, ll
        if terms is None:
            resp, ll = self._latent.posteriors(np.asarray(family.log_prob(X, **plan), np.float64))
        else:
            resp, ll = weighted_posteriors(self._weighted_logprob(X, plan), terms)
        return {"weights": resp.sum(axis=0), "emission": family.accumulate(X, resp, **plan)}, ll

    def m_step(self, stats: dict) -> None:
        """New weights (letter ``w``) and family parameters (the other letters of
        ``params``); components that emptied are re-seeded where the family can
        split one (``split`` hook)."""
        letters = str(self.params)
        if "w" in letters:
            self._latent.m_step(stats["weights"])
        family = self._emission()
        family.m_step(stats["emission"], letters)
        if callable(getattr(family, "split", None)):
            self._latent.reseed_empty(stats["weights"], family)

    def log_likelihood(self, X: np.ndarray) -> float:
        """Total log-likelihood of X under the current parameters (weighted, and with
        the known components, during a fit given ``sample_weight`` or ``labels``)."""
        terms = self._rows(X)
        if terms is not None:
            return weighted_posteriors(self._weighted_logprob(X), terms)[1]
        return float(self._score_rows(X).sum())

    # online EM: statistics about a moving reference point, where the family has them
    @property
    def stats_reference(self) -> Any:
        ref = getattr(self._emission(), "stats_reference", None)
        return ref if callable(ref) else None

    @property
    def move_stats(self) -> Any:
        move = getattr(self._emission(), "move_stats", None)
        if not callable(move):
            return None
        return lambda stats, src, dst: {**stats, "emission": move(stats["emission"], src, dst)}

    def log_prior(self) -> float:
        """The weights' Dirichlet log-prior plus the family's (MAP-EM never lowers
        the log-likelihood plus this)."""
        prior = getattr(self._emission(), "log_prior", None)
        return self._latent.log_prior() + (float(prior()) if callable(prior) else 0.0)

    def _vector_parts(self) -> list:
        return self._latent.vector_parts() + family_parts(self._emission(), type(self).__name__)

    def get_param_vector(self) -> np.ndarray:
        """Weights and family parameters as one vector (for SQUAREM)."""
        return get_vector(self._vector_parts())

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set all parameters from a vector; False (and nothing changed) if infeasible."""
        return set_vector(self._vector_parts(), theta, self._emission().check_params)

    # ------------------------------------------------------------------ public API
    def fit(
        self, X: Any, y: Any = None, *, sample_weight: Any = None, labels: Any = None
    ) -> Mixture:
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like
            Rows as the family reads them (NaN: missing).
        y : ignored
            As in scikit-learn (its tools pass class labels here; component
            labels go in ``labels``).
        sample_weight : array-like (n_samples,), optional
            Row weights >= 0; a weight of 2 fits as the row twice.
        labels : array-like of int (n_samples,), optional
            Semi-supervised fitting: the known component of each row, -1 where
            it is unknown. Known rows keep their component throughout EM.

        Returns
        -------
        self
        """
        self.__dict__.pop("_online", None)  # a full fit ends any online stream
        warm = bool(self.warm_start) and self._fitted()
        if not warm and callable(getattr(self.emission, "fresh", None)):
            # every parameter is initialised again: start from an unfitted family, so
            # nothing learnt from earlier data (levels, feature counts) constrains X,
            # with n_components sets (set_params may have changed it)
            check_positive_int(self.n_components, "n_components")
            self.emission = self.emission.fresh(self.n_components)
        self._check_settings()
        self._record(self._run_em(X, warm, sample_weight, labels))
        return self

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(X, labels)``, grouped by component as in scikit-learn."""
        self._require_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(self.random_state)
        labels = np.repeat(np.arange(self.n_components), self._latent.sample(n_samples, rng))
        return self._emission().sample(labels, rng), labels


def _n_features(X: np.ndarray) -> int:
    return 1 if X.ndim == 1 else int(X.shape[1])


def _start_responsibilities(
    X: np.ndarray, K: int, method: str, rng: np.random.Generator
) -> np.ndarray:
    """(n, K) starting responsibilities: hard k-means++ labels, or random rows."""
    n = X.shape[0]
    if method == "random":
        W = rng.uniform(size=(n, K))
        return W / W.sum(axis=1, keepdims=True)
    Z = np.asarray(X, dtype=np.float64).reshape(n, -1)
    means = np.nanmean(np.where(np.isnan(Z).all(axis=0), 0.0, Z), axis=0)
    Z = np.ascontiguousarray(np.where(np.isnan(Z), means, Z))
    uniforms = rng.random((max(K - 1, 0), 2 + int(math.log(K))))
    idx = kmeans_plusplus(Z, K, int(rng.integers(n)), uniforms)
    _, labels, _ = lloyd(Z, np.ascontiguousarray(Z[idx]), 0)
    W = np.zeros((n, K))
    W[np.arange(n), labels] = 1.0
    return W
