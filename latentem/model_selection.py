"""Choosing the number of mixture components (and covariance type) by BIC or AIC."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.models.gaussian_mixture import GaussianMixture
from latentem.runner import ConvergenceWarning

__all__ = ["select_gaussian_mixture", "SelectionResult"]

_CRITERIA = ("bic", "aic")


@dataclass
class SelectionResult:
    """What :func:`select_gaussian_mixture` found.

    Attributes
    ----------
    table : dict of str to ndarray
        One entry per candidate, as columns: ``n_components``,
        ``covariance_type``, ``bic``, ``aic``, ``log_likelihood`` (total on
        X), ``n_parameters``, ``converged``. ``pandas.DataFrame(result.table)``
        makes it a data frame.
    best_model : GaussianMixture
        The fitted candidate with the lowest criterion.
    best_index : int
        Its row in ``table``.
    criterion : str
        "bic" or "aic".
    models : list of GaussianMixture
        Every fitted candidate, in table order.
    """

    table: dict[str, np.ndarray]
    best_model: GaussianMixture
    best_index: int
    criterion: str
    models: list[GaussianMixture] = field(repr=False, default_factory=list)

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
    criterion : {"bic", "aic"}, default="bic"
        Lower is better. BIC penalises parameters by ``log(n_samples)``,
        AIC by 2, so AIC tends to pick more components.
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
    if isinstance(n_components, (int, np.integer)):
        ks = list(range(1, int(n_components) + 1))
    else:
        ks = [int(k) for k in n_components]
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"n_components must be positive integers; got {ks}.")
    cts = [covariance_types] if isinstance(covariance_types, str) else list(covariance_types)
    if not cts:
        raise ValueError("covariance_types is empty; pass at least one covariance type.")
    ks_ok = [k for k in ks if k <= n]
    if not ks_ok:
        raise ValueError(
            f"every candidate n_components {ks} exceeds n_samples={n}; pass fewer components."
        )

    rows: dict[str, list] = {
        "n_components": [],
        "covariance_type": [],
        "bic": [],
        "aic": [],
        "log_likelihood": [],
        "n_parameters": [],
        "converged": [],
    }
    models = []
    for ct in cts:
        for k in ks_ok:
            gm = GaussianMixture(k, covariance_type=ct, **kwargs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=ConvergenceWarning)
                gm.fit(X)
            ll = gm.log_likelihood(X)
            p = gm.n_parameters()
            rows["n_components"].append(k)
            rows["covariance_type"].append(ct)
            rows["bic"].append(-2.0 * ll + p * np.log(n))
            rows["aic"].append(-2.0 * ll + 2.0 * p)
            rows["log_likelihood"].append(ll)
            rows["n_parameters"].append(p)
            rows["converged"].append(gm.converged_)
            models.append(gm)
    table = {name: np.asarray(col) for name, col in rows.items()}
    best = int(np.argmin(table[criterion]))
    return SelectionResult(table, models[best], best, criterion, models)
