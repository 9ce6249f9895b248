"""Choosing the number of components: BIC, AIC and ICL over a grid, and bootstrap tests.

:func:`select_gaussian_mixture` fits Gaussian mixtures over numbers of
components and covariance types at once, as R's mclust does;
:func:`select_n_components` does the same for any latentem estimator with an
``n_components`` setting (hidden Markov models included, with ``lengths``);
:func:`bootstrap_lrt` tests K against K + 1 components by the parametric
bootstrap of the likelihood-ratio statistic (mclust's ``mclustBootstrapLRT``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.models.gaussian_mixture import GaussianMixture
from latentem.runner import ConvergenceWarning

__all__ = [
    "BootstrapLRTResult",
    "SelectionResult",
    "bootstrap_lrt",
    "select_gaussian_mixture",
    "select_n_components",
]

_CRITERIA = ("bic", "aic", "icl")


@dataclass
class SelectionResult:
    """What :func:`select_gaussian_mixture` found.

    Attributes
    ----------
    table : dict of str to ndarray
        One entry per candidate, as columns: ``n_components``,
        ``covariance_type`` (for Gaussian mixtures), ``bic``, ``aic``, ``icl``,
        ``log_likelihood`` (total on X), ``n_parameters``, ``converged``.
        ``pandas.DataFrame(result.table)`` makes it a data frame.
    best_model : estimator
        The fitted candidate with the lowest criterion.
    best_index : int
        Its row in ``table``.
    criterion : str
        "bic", "aic" or "icl".
    models : list of estimators
        Every fitted candidate, in table order.
    """

    table: dict[str, np.ndarray]
    best_model: Any
    best_index: int
    criterion: str
    models: list[Any] = field(repr=False, default_factory=list)

    @property
    def best_n_components(self) -> int:
        """Number of components of the best model."""
        return int(self.table["n_components"][self.best_index])

    @property
    def best_covariance_type(self) -> str:
        """Covariance type of the best model."""
        return str(self.table["covariance_type"][self.best_index])


def select_gaussian_mixture(
    X: Any,
    n_components: int | Iterable[int] = range(1, 7),
    *,
    covariance_types: str | Iterable[str] = ("full",),
    criterion: str = "bic",
    **kwargs: Any,
) -> SelectionResult:
    """Fit Gaussian mixtures over a grid and pick the best by BIC or AIC.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data; 1-D input is read as n samples of one feature.
    n_components : int or iterable of int, default=range(1, 7)
        Candidate numbers of components (an int ``m`` means ``1..m``).
        Candidates larger than ``n_samples`` are skipped.
    covariance_types : str or iterable of str, default=("full",)
        Candidate covariance types.
    criterion : {"bic", "aic", "icl"}, default="bic"
        Lower is better. BIC penalises parameters by ``log(n_samples)``,
        AIC by 2, so AIC tends to pick more components. ICL (the integrated
        completed likelihood) is BIC plus twice the classification entropy,
        ``-2 sum_i log p(z_i = MAP_i | x_i)`` as in mclust: it prefers
        well-separated clusters to components that only reshape a density.
    **kwargs
        Passed to every :class:`GaussianMixture` (``random_state``,
        ``n_init``, ``max_iter``, ``tol``, ``reg_covar``, ...). Convergence
        warnings of the candidates are silenced; the table's ``converged``
        column reports them.

    Returns
    -------
    SelectionResult
        The table of scores, the best fitted model and every candidate.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.model_selection import select_gaussian_mixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, 300), rng.normal(4, 1, 300)])
    >>> res = select_gaussian_mixture(X, range(1, 5), random_state=0)
    >>> res.best_n_components
    2
    >>> res.table["n_components"].tolist()
    [1, 2, 3, 4]
    """
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}; got {criterion!r}.")
    for bad in ("n_components", "covariance_type"):
        if bad in kwargs:
            raise ValueError(
                f"pass the candidate values of {bad} through the n_components / "
                "covariance_types arguments, not as a keyword for GaussianMixture."
            )
    X = check_array(X, name="X")
    n = X.shape[0]
    ks = _candidate_counts(n_components)
    cts = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
    if not cts:
        raise ValueError("covariance_types is empty; pass at least one covariance type.")
    ks_ok = [k for k in ks if k <= n]
    if not ks_ok:
        raise ValueError(
            f"every candidate n_components {ks} exceeds n_samples={n}; pass fewer components."
        )

    candidates = [
        (GaussianMixture(k, covariance_type=ct, **kwargs), {"covariance_type": ct})
        for ct in cts
        for k in ks_ok
    ]
    return _select(candidates, X, {}, criterion)


def select_n_components(
    estimator: Any,
    X: Any,
    n_components: int | Iterable[int] = range(1, 7),
    *,
    criterion: str = "bic",
    lengths: Any = None,
) -> SelectionResult:
    """Fit copies of ``estimator`` with each number of components and pick the best.

    Works for every latentem estimator with an ``n_components`` setting and
    ``bic``/``aic``/``predict_proba`` methods: mixtures over any family and hidden
    Markov models (hmmlearn's users ask for this, hmmlearn #208).

    Parameters
    ----------
    estimator : estimator
        A configured, unfitted model (its other settings are kept); it is not
        changed.
    X : array-like
        The data, as the estimator's ``fit`` takes it.
    n_components : int or iterable of int, default=range(1, 7)
        Candidates (an int ``m`` means ``1..m``).
    criterion : {"bic", "aic", "icl"}, default="bic"
        Lower is better (see :func:`select_gaussian_mixture`). For HMMs the
        ICL's classification term uses each row's most probable state.
    lengths : array-like of int, optional
        Sequence lengths, for HMMs.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianHMM
    >>> from latentem.model_selection import select_n_components
    >>> rng = np.random.default_rng(0)
    >>> states = np.repeat([0, 1, 0, 1], 150)
    >>> X = rng.normal(np.array([-3.0, 3.0])[states], 1.0)[:, None]
    >>> res = select_n_components(GaussianHMM(random_state=0), X, range(1, 4))
    >>> res.best_n_components
    2
    """
    if criterion not in _CRITERIA:
        raise ValueError(f"criterion must be one of {_CRITERIA}; got {criterion!r}.")
    if not hasattr(estimator, "n_components") or not hasattr(estimator, "set_params"):
        raise ValueError(
            f"select_n_components needs a latentem estimator with an n_components setting; "
            f"got {type(estimator).__name__}."
        )
    ks = _candidate_counts(n_components)
    fit_args = {} if lengths is None else {"lengths": lengths}
    candidates = [(_copy_with(estimator, n_components=k), {}) for k in ks]
    return _select(candidates, X, fit_args, criterion)


def _candidate_counts(n_components: int | Iterable[int]) -> list[int]:
    if isinstance(n_components, (int, np.integer)):
        ks = list(range(1, int(n_components) + 1))
    else:
        ks = [int(k) for k in n_components]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"n_components must be positive integers; got {ks}.")
    return ks


def _copy_with(estimator: Any, **settings: Any) -> Any:
    """An unfitted estimator with ``estimator``'s settings, some replaced."""
    params = estimator.get_params(deep=False)
    params.update(settings)
    return type(estimator)(**params)


def _classification_entropy(model: Any, X: Any, fit_args: dict) -> float:
    """``-sum_i log p(z_i = MAP_i | x_i)``: the hard-classification term of ICL."""
    post = np.asarray(model.predict_proba(X, **fit_args), dtype=np.float64)
    best = post.max(axis=1)
    return float(-np.log(np.maximum(best, np.finfo(float).tiny)).sum())


def _select(candidates: list, X: Any, fit_args: dict, criterion: str) -> SelectionResult:
    """Fit every ``(model, extra table columns)`` and score it."""
    rows: dict[str, list] = {}
    models = []
    for model, extra in candidates:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            model.fit(X, **fit_args)
        bic = float(model.bic(X, **fit_args))
        aic = float(model.aic(X, **fit_args))
        p = int(model.n_parameters())
        row = {
            "n_components": model.n_components,
            **extra,
            "bic": bic,
            "aic": aic,
            "icl": bic + 2.0 * _classification_entropy(model, X, fit_args),
            # aic = -2 ll + 2 p, so the total log-likelihood on X:
            "log_likelihood": -0.5 * (aic - 2.0 * p),
            "n_parameters": p,
            "converged": bool(getattr(model, "converged_", True)),
        }
        for name, value in row.items():
            rows.setdefault(name, []).append(value)
        models.append(model)
    table = {name: np.asarray(col) for name, col in rows.items()}
    best = int(np.argmin(table[criterion]))
    return SelectionResult(table, models[best], best, criterion, models)


@dataclass
class BootstrapLRTResult:
    """What :func:`bootstrap_lrt` found.

    Attributes
    ----------
    table : dict of str to ndarray
        One row per test of ``n_components`` against ``n_components + 1``:
        ``n_components``, ``lrts`` (the observed statistic
        ``2 (loglik(K + 1) - loglik(K))``), ``p_value``.
    bootstrap : list of ndarray
        The bootstrap statistics of each test.
    selected : int
        The first K whose test is not significant at ``level`` (the last K
        tested plus one if every test was).
    level : float
        The significance level used.
    """

    table: dict[str, np.ndarray]
    bootstrap: list[np.ndarray] = field(repr=False)
    selected: int
    level: float


def bootstrap_lrt(
    X: Any,
    max_components: int = 5,
    *,
    covariance_type: str = "full",
    n_bootstrap: int = 99,
    level: float = 0.05,
    random_state: Any = None,
    **kwargs: Any,
) -> BootstrapLRTResult:
    """Test K against K + 1 Gaussian mixture components by the parametric bootstrap.

    The likelihood-ratio statistic has no chi-squared reference distribution
    for the number of components (the null sits on the boundary of the
    parameter space), so its distribution under K components is simulated:
    draw ``n_bootstrap`` data sets from the fitted K-component model, fit K and
    K + 1 components to each, and compare (McLachlan 1987; mclust's
    ``mclustBootstrapLRT``). Tests run for K = 1, 2, ... and stop at the first
    one that is not significant at ``level``, or at ``max_components``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    max_components : int, default=5
        The largest K + 1 tested.
    covariance_type : str, default="full"
    n_bootstrap : int, default=99
        Bootstrap data sets per test; the p-value is
        ``(1 + #{bootstrap >= observed}) / (n_bootstrap + 1)``.
    level : float, default=0.05
    random_state : int or None
        Seeds the simulation and every fit.
    **kwargs
        Passed to every :class:`GaussianMixture` (``n_init``, ``reg_covar``, ...).
        ``tol`` defaults to 1e-6 and ``max_iter`` to 1000 here, not to scikit-learn's
        1e-3 and 100: a fit stopped early on a flat stretch of the likelihood
        biases the statistic (it can even come out negative).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.model_selection import bootstrap_lrt
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, 200), rng.normal(3, 1, 200)])[:, None]
    >>> res = bootstrap_lrt(X, 3, n_bootstrap=19, random_state=0)
    >>> res.selected
    2
    """
    X = check_array(X, name="X")
    if not isinstance(max_components, (int, np.integer)) or max_components < 2:
        raise ValueError(f"max_components must be an integer >= 2; got {max_components!r}.")
    if not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer; got {n_bootstrap!r}.")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1; got {level!r}.")
    for bad in ("n_components", "random_state"):
        if bad in kwargs:
            raise ValueError(f"{bad} is set by bootstrap_lrt; do not pass it as a keyword.")
    rng = np.random.default_rng(random_state)
    kwargs = {"tol": 1e-6, "max_iter": 1000, **kwargs}

    def fit(data: np.ndarray, k: int, **start: Any) -> GaussianMixture:
        model = GaussianMixture(
            k,
            covariance_type=covariance_type,
            random_state=int(rng.integers(2**31)),
            **{**kwargs, **start},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            return model.fit(data)

    def lrts(data: np.ndarray, small: GaussianMixture) -> float:
        # K + 1 components nest K, so the statistic is >= 0 at the global optimum;
        # a second start that splits the K-fit's heaviest component guards
        # against a poor local optimum of the larger model.
        big = max(
            fit(data, small.n_components + 1),
            fit(data, small.n_components + 1, means_init=_split_means(small, data)),
            key=lambda m: m.log_likelihood(data),
        )
        return 2.0 * (big.log_likelihood(data) - small.log_likelihood(data))

    rows: dict[str, list] = {"n_components": [], "lrts": [], "p_value": []}
    boot_all = []
    selected = max_components
    for k in range(1, max_components):
        null = fit(X, k)
        observed = lrts(X, null)
        boot = np.empty(n_bootstrap)
        for b in range(n_bootstrap):
            data = _draw(null, X.shape[0], rng)
            boot[b] = lrts(data, fit(data, k))
        p = (1.0 + np.count_nonzero(boot >= observed)) / (n_bootstrap + 1.0)
        rows["n_components"].append(k)
        rows["lrts"].append(observed)
        rows["p_value"].append(p)
        boot_all.append(boot)
        if p > level:
            selected = k
            break
    table = {name: np.asarray(col) for name, col in rows.items()}
    return BootstrapLRTResult(table, boot_all, selected, level)


def _split_means(model: GaussianMixture, X: np.ndarray) -> np.ndarray:
    """K + 1 starting means: the K fitted ones, the heaviest split in two along
    the direction its points spread most."""
    means = np.asarray(model.means_, dtype=np.float64)
    heavy = int(np.argmax(model.weights_))
    members = X[model.predict(X) == heavy]
    if len(members) < 2:
        members = X
    centred = members - members.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    step = vt[0] * sv[0] / np.sqrt(len(members))  # one standard deviation along it
    split = means.copy()
    split[heavy] -= step
    return np.vstack([split, means[heavy] + step])


def _draw(model: GaussianMixture, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows from a fitted mixture, in random order, without touching ``model``."""
    twin = copy.copy(model)
    twin.random_state = int(rng.integers(2**31))
    X, _ = twin.sample(n)
    return X[rng.permutation(n)]
