"""The latent-model protocol that :func:`latentem.fit_em` drives.

A model is anything with four methods. Subclass :class:`LatentModel` to get
an abstract base class, or write a plain class with the same methods: both
pass ``isinstance(model, LatentModel)``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["LatentModel", "SupportsParamVector", "Stats"]

Stats = Any
"""Sufficient statistics: a tree of tuples, lists and dicts holding numpy arrays
and floats, additive over the data (see :mod:`latentem.tree`).

Examples
--------
>>> import numpy as np
>>> from latentem import tree
>>> stats = {"counts": np.array([3.0, 1.0]), "sums": (np.array([6.0, 5.0]), 2.5)}
>>> tree.add(stats, stats)["counts"]
array([6., 2.])
"""


@runtime_checkable
class LatentModel(Protocol):
    """What :func:`latentem.fit_em` needs from a model.

    ``stats`` returned by :meth:`e_step` must be *additive over the data*:
    the statistics of ``X`` equal those of ``X[:a]`` plus those of ``X[a:]``
    (see :mod:`latentem.tree`). That is what lets the same model run in
    memory, in chunks, or across machines.

    Optional extras a model may offer:

    * ``get_param_vector()`` / ``set_param_vector(theta) -> bool``
      (:class:`SupportsParamVector`), used by ``accelerate="squarem"``;
    * ``n_parameters() -> int``, the number of free parameters (for AIC/BIC);
    * ``validate_data(X) -> X``, which checks and converts input once per fit;
    * ``sample(n, rng)``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import LatentModel
    >>> class Mean:
    ...     def init_params(self, X, rng): self.mu = 0.0
    ...     def e_step(self, X):
    ...         ll = float(-0.5 * np.sum((X - self.mu) ** 2))
    ...         return (float(X.sum()), float(len(X))), ll
    ...     def m_step(self, stats): self.mu = stats[0] / stats[1]
    ...     def log_likelihood(self, X): return self.e_step(X)[1]
    >>> isinstance(Mean(), LatentModel)
    True
    """

    @abstractmethod
    def init_params(self, X: Any, rng: np.random.Generator) -> None:
        """Set starting parameters from the data and a random generator."""

    @abstractmethod
    def e_step(self, X: Any) -> tuple[Stats, float]:
        """Return the expected sufficient statistics and the total log-likelihood of X."""

    @abstractmethod
    def m_step(self, stats: Stats) -> None:
        """Set new parameters from sufficient statistics."""

    @abstractmethod
    def log_likelihood(self, X: Any) -> float:
        """Return the total log-likelihood of X under the current parameters."""


@runtime_checkable
class SupportsParamVector(Protocol):
    """A flat view of a model's parameters, used by SQUAREM acceleration.

    ``set_param_vector`` returns ``False`` (and leaves the model unchanged)
    when ``theta`` lies outside the parameter space, for example a negative
    mixture weight or a covariance that is not positive definite.

    Examples
    --------
    >>> from latentem import GaussianMixture, SupportsParamVector
    >>> isinstance(GaussianMixture(), SupportsParamVector)
    True
    >>> isinstance(object(), SupportsParamVector)
    False
    """

    def get_param_vector(self) -> np.ndarray:
        """Return the current parameters as one float64 vector."""
        ...

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set parameters from ``theta``; return False if ``theta`` is infeasible."""
        ...
