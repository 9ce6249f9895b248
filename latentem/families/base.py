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

from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["EmissionFamily", "dirichlet_log_prior", "dirichlet_m_step"]


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


@runtime_checkable
class EmissionFamily(Protocol):
    """The interface of an emission family (see the module docstring)."""

    n_components: int
    #: hmmlearn-style letters of the family's parameters, e.g. "mc".
    param_letters: str

    def validate_data(self, X: Any) -> np.ndarray:
        """Check and convert X; raise ValueError naming the problem."""
        ...

    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        """Initialise the parameters named by ``letters`` from the data."""
        ...

    def check_params(self) -> None:
        """Raise ValueError if set parameters have wrong shapes or values."""
        ...

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        """(n, K) float64 log-densities; 0 for a row that is entirely missing."""
        ...

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> Any:
        """Sufficient statistics of X with row weights (n, K); additive over rows."""
        ...

    def m_step(self, stats: Any, letters: str) -> None:
        """Update the parameters named by ``letters`` from statistics."""
        ...

    def n_parameters(self) -> int:
        """Free parameters of all K components."""
        ...

    # Optional: ``log_prior() -> float``, the log-density of the prior that the
    # M-step maximises together with the likelihood (MAP-EM). The runner then
    # checks that likelihood plus prior never decreases.

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One observation per entry of ``states``."""
        ...
