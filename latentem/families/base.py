"""What a latent structure (mixture, Markov chain) needs from an emission family.

A family holds K parameter sets of one distribution and does three jobs,
vectorised over components: per-row log-densities under every component,
weighted sufficient statistics, and the M-step from them. Rows that are
missing entirely contribute a log-density of 0 (no evidence) and nothing to
the statistics.

Parameter *letters* follow hmmlearn: each family names its parameters with
single letters (``"mc"``: means and covariances; ``"e"``: emission
probabilities; ``"l"``: Poisson rates), which ``params`` and ``init_params``
strings select.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EmissionFamily", "dirichlet_log_prior", "dirichlet_m_step", "register_family"]


def dirichlet_m_step(
    counts: np.ndarray, prior: Any, old: np.ndarray, keep_zeros: bool = False
) -> np.ndarray:
    """Probabilities along the last axis from expected counts and Dirichlet pseudo-counts.

    Rows of ``max(prior - 1 + counts, 0)``, normalised (hmmlearn's rule). A row
    without any mass keeps its ``old`` values instead of turning NaN. With
    ``keep_zeros``, zeros of ``old`` stay zero (structural zeros of start and
    transition probabilities: left-right models).

    Examples
    --------
    >>> import numpy as np
    >>> old = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    >>> dirichlet_m_step(np.array([[3.0, 1.0, 2.0], [0.0, 0.0, 0.0]]), 1.0, old, keep_zeros=True)
    array([[0.75, 0.25, 0.  ],
           [0.2 , 0.3 , 0.5 ]])
    """
    counts = np.maximum(np.asarray(prior, dtype=np.float64) - 1.0 + counts, 0.0)
    if keep_zeros:
        counts = np.where(old == 0, 0.0, counts)
    totals = counts.sum(axis=-1, keepdims=True)
    has_mass = totals > 0
    return np.where(has_mass, counts / np.where(has_mass, totals, 1.0), old)


def dirichlet_log_prior(probs: Any, prior: Any) -> float:
    """sum((prior - 1) * log p) over the non-zero entries of ``probs`` (up to a constant).

    The M-step ``max(prior - 1 + counts, 0)`` maximises the likelihood plus
    this term; zero entries (structural zeros, or ones the prior pushed to
    zero) are left out.
    """
    p = np.asarray(probs, dtype=np.float64)
    a = np.broadcast_to(np.asarray(prior, dtype=np.float64) - 1.0, p.shape)
    nz = p > 0
    return float(np.sum(a[nz] * np.log(p[nz])))


class EmissionFamily:
    """Base class of emission families: the contract every latent structure relies on.

    A family holds ``n_components`` (K) parameter sets of one distribution.
    Latent structures (a mixture's weights, a Markov chain, a model-graph
    node) call the **required** methods below; the **optional** hooks have
    defaults here, and the library checks for them by name, so a family
    defines only those it can do better.

    Subclasses keep each constructor argument in an attribute of the same
    name (as scikit-learn estimators do): :meth:`get_config` and
    :meth:`fresh` read them, and model files save them. Register a family
    with :func:`latentem.register_family` to save it in model files, name it
    on the command line and rebuild it in model graphs.

    **Required methods**

    validate_data(X) -> array
        Check and convert X (a ValueError names the problem); never modify X.
    init_params(X, rng, letters)
        Initialise the parameters whose letters appear in ``letters``.
    check_params()
        Raise ValueError if set parameters have wrong shapes or values.
    log_prob(X) -> (n, K)
        Log-density of every row under every component; 0 for a row that
        is entirely missing.
    accumulate(X, weights) -> stats
        Sufficient statistics with row weights (n, K): a tree of arrays and
        floats, additive over rows.
    m_step(stats, letters)
        Update the parameters named by ``letters`` from the statistics.
    n_parameters() -> int
        Free parameters of all K components.
    sample(states, rng) -> array
        One observation per entry of ``states`` (component indices).

    **Optional hooks** (defaults here)

    log_prior() -> float
        Log-density of the prior the M-step maximises with the likelihood
        (MAP-EM); the runner then checks likelihood plus prior. Default 0.
    vector_attributes, simplex_attributes : tuple of str
        Parameter arrays SQUAREM may extrapolate (``simplex_attributes``:
        probabilities along the last axis, renormalised). Empty: SQUAREM
        is not available for models using the family.
    plan(X) -> object, or None
        Work shared by every pass over the same X (grouping rows by
        missingness); when defined, ``log_prob``, ``accumulate`` and
        ``scaled_prob`` accept ``plan=``.
    scaled_prob(X, plan=None) -> (scaled, shift)
        ``exp(log_prob - shift)`` with a per-row shift, for the HMM kernels,
        computed without the (n, K) log-densities in between.
    fill(X, weights, plan=None) -> array
        X with its gaps replaced by their conditional expectation given the
        row weights (imputation in model graphs).
    stats_reference(), move_stats(stats, src, dst)
        For statistics taken about a moving reference point (online EM).
    mixture_stats(X, log_weights, plan=None) -> (counts, stats, loglik)
        A mixture's whole E-step in one pass (expected counts per
        component, the statistics ``accumulate`` would give from the
        posteriors, the total log-likelihood), without the (n, K) posteriors.
    mixture_rows(X, log_weights, what) -> array or None
        A mixture's per-row answer in one pass: ``what`` is "proba",
        "score" or "label"; None sends the mixture to ``log_prob``.
    split(src, dst) -> bool
        Re-seed component ``dst`` (emptied during EM) from ``src``; False
        where ``src`` cannot be split. Mixtures then share the weight.

    Examples
    --------
    A complete family: independent exponential distributions, one rate per
    component and feature.

    >>> import numpy as np
    >>> from latentem.families.base import EmissionFamily
    >>> class Exponential(EmissionFamily):
    ...     param_letters = "r"
    ...     vector_attributes = ("rates_",)
    ...     def __init__(self, n_components):
    ...         self.n_components = n_components
    ...         self.rates_ = None
    ...     def validate_data(self, X):
    ...         X = np.asarray(X, dtype=float).reshape(len(X), -1)
    ...         if (X < 0).any():
    ...             raise ValueError("exponential data must be >= 0.")
    ...         return X
    ...     def init_params(self, X, rng, letters):
    ...         if "r" in letters:
    ...             scale = rng.uniform(0.5, 2.0, (self.n_components, X.shape[1]))
    ...             self.rates_ = scale / X.mean(axis=0)
    ...     def check_params(self):
    ...         if self.rates_ is None or (np.asarray(self.rates_) <= 0).any():
    ...             raise ValueError("rates_ must be set and positive.")
    ...     def log_prob(self, X):
    ...         return (np.log(self.rates_).sum(axis=1) - X @ self.rates_.T)
    ...     def accumulate(self, X, weights):
    ...         return {"n": weights.sum(axis=0), "sum": weights.T @ X}
    ...     def m_step(self, stats, letters):
    ...         if "r" in letters:
    ...             self.rates_ = stats["n"][:, None] / np.maximum(stats["sum"], 1e-300)
    ...     def n_parameters(self):
    ...         return self.rates_.size
    ...     def sample(self, states, rng):
    ...         return rng.exponential(1.0 / self.rates_[states])
    >>> fam = Exponential(2)
    >>> fam.get_config()
    {}
    >>> fam.fresh(3).n_components
    3
    """

    #: hmmlearn-style letters of the family's parameters, e.g. "mc".
    param_letters: str = ""
    #: Parameter arrays in the flat vector SQUAREM extrapolates.
    vector_attributes: tuple[str, ...] = ()
    #: Those of ``vector_attributes`` that are probabilities along the last axis.
    simplex_attributes: tuple[str, ...] = ()
    #: Whether the data must be >= 0 (counts, category codes): estimators over the
    #: family refuse negative input with scikit-learn's words and tell its checks so.
    nonnegative: bool = False
    #: A negative code that marks a missing cell in such data (None: NaN only).
    missing_code: float | None = None
    #: Whether the data are integer codes of levels: estimators over the family
    #: tell scikit-learn's checks so (its ``categorical`` input tag).
    codes: bool = False
    #: Optional hooks (see the class docstring); None where a family has none.
    plan: Any = None
    scaled_prob: Any = None
    fill: Any = None
    mixture_stats: Any = None
    mixture_rows: Any = None
    split: Any = None
    n_components: int

    # ------------------------------------------------------------------ required
    def validate_data(self, X: Any) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define validate_data(X)")

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define init_params(X, rng, letters)")

    def check_params(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define check_params()")

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define log_prob(X)")

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define accumulate(X, weights)")

    def m_step(self, stats: Any, letters: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define m_step(stats, letters)")

    def n_parameters(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define n_parameters()")

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define sample(states, rng)")

    # ------------------------------------------------------------------ optional, with defaults
    def log_prior(self) -> float:
        """Log-density of the family's prior (0: maximum likelihood)."""
        return 0.0

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments other than ``n_components``, read from attributes."""
        import inspect

        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name not in ("self", "n_components")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        return {name: getattr(self, name) for name in names}

    def fresh(self, n_components: int) -> EmissionFamily:
        """A new, unfitted family with the same settings and ``n_components`` sets."""
        return type(self)(n_components, **self.get_config())

    def _finish_load(self) -> None:
        """After loading a model file: check the parameters it gave, if any (finite
        numbers first, before any kernel sees them)."""
        present = [a for a in self.vector_attributes if getattr(self, a, None) is not None]
        for name in present:
            value = np.asarray(getattr(self, name))
            if value.dtype.kind not in "biuf" or not np.isfinite(value).all():
                raise ValueError(f"{name} holds NaN, infinite or non-numeric values")
        if present:
            self.check_params()


def register_family(
    cls: type | None = None,
    *,
    name: str | None = None,
    fitted: tuple[str, ...] | None = None,
    cli: str | None = None,
    replace: bool = False,
) -> Any:
    """Register an emission family once: model files, the command line and model graphs.

    Parameters
    ----------
    cls : type
        The family class (usable as a decorator, with or without arguments).
    name : str, optional
        The name written into model files; defaults to the class name.
    fitted : tuple of str, optional
        Attributes holding fitted parameters; defaults to the class's
        ``vector_attributes``.
    cli : str, optional
        The name ``latentem fit --emission`` knows it by.
    replace : bool
        Allow registering a class again under a name it already has.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.base import register_family
    >>> from latentem.families.poisson import PoissonFamily
    >>> @register_family(name="docs.Counts")
    ... class Counts(PoissonFamily):
    ...     pass
    >>> from latentem.registry import entry, unregister
    >>> entry("docs.Counts").fitted
    ('lambdas_',)
    >>> unregister("docs.Counts")
    """
    from latentem import registry

    def add(c: type) -> type:
        attrs = tuple(getattr(c, "vector_attributes", ())) if fitted is None else tuple(fitted)
        finish = "_finish_load" if callable(getattr(c, "_finish_load", None)) else None
        return registry.register(
            c, name=name, kind="family", fitted=attrs, finish=finish, cli=cli, replace=replace
        )

    return add if cls is None else add(cls)
