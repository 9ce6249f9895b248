"""The categorical latent structure: independent rows, one discrete label each.

Over an emission family it makes a mixture model. It owns the mixture
weights; its statistics are the expected counts ``nk`` of each component.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CategoricalLatent"]

_EPS10 = 10.0 * np.finfo(np.float64).eps


class CategoricalLatent:
    """Mixture weights of K components.

    Parameters
    ----------
    n_components : int
        Number of components K.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.categorical import CategoricalLatent
    >>> lat = CategoricalLatent(2)
    >>> lat.set_weights([0.25, 0.75])
    >>> resp, ll = lat.posteriors(np.log([[0.5, 0.5], [1.0, 0.0]]))
    >>> resp.round(3)
    array([[0.25, 0.75],
           [1.  , 0.  ]])
    >>> lat.m_step(resp.sum(axis=0))
    >>> lat.weights_
    array([0.625, 0.375])
    """

    def __init__(self, n_components: int) -> None:
        self.n_components = int(n_components)
        self.weights_ = np.full(self.n_components, 1.0 / self.n_components)

    def set_weights(self, weights) -> None:
        """Set the weights (non-negative, normalised to sum to one)."""
        w = np.array(weights, dtype=np.float64)
        if w.shape != (self.n_components,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"weights must be {self.n_components} finite non-negative numbers; got {w!r}."
            )
        s = w.sum()
        if not s > 0:
            raise ValueError("weights must not all be zero.")
        self.weights_ = w / s

    def log_weights(self) -> np.ndarray:
        """log(weights_), with -inf for zero weights."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights_)

    def posteriors(self, log_prob: np.ndarray) -> tuple[np.ndarray, float]:
        """Posterior probabilities (n, K) and total log-likelihood from (n, K) log-densities."""
        a = log_prob + self.log_weights()
        m = a.max(axis=1, keepdims=True)
        m[~np.isfinite(m)] = 0.0
        with np.errstate(divide="ignore", under="ignore"):
            s = np.exp(a - m)
            tot = s.sum(axis=1, keepdims=True)
            lse = m + np.log(tot)
        return s / tot, float(lse.sum())

    def m_step(self, nk: np.ndarray) -> None:
        """Weights from expected counts, with scikit-learn's ``10 * eps`` floor."""
        w = np.asarray(nk, dtype=np.float64) + _EPS10
        self.weights_ = w / w.sum()

    def n_parameters(self) -> int:
        """K - 1 free weights."""
        return self.n_components - 1

    def split(self, src: int, dst: int) -> None:
        """Give half of component ``src``'s weight to ``dst`` (re-seeding)."""
        w = self.weights_.copy()
        half = 0.5 * (w[src] + w[dst])
        w[src] = w[dst] = half
        self.weights_ = w / w.sum()
