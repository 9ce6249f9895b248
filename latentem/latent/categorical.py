"""The categorical latent structure: independent rows, one discrete label each.

Over an emission family it makes a mixture model. It owns the mixture
weights; its statistics are the expected counts of each component.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._numeric import logsumexp
from latentem.families.base import dirichlet_log_prior, dirichlet_m_step
from latentem.registry import register

__all__ = ["CategoricalLatent"]

#: scikit-learn's floor on expected counts before normalising the weights.
SKLEARN_FLOOR = 10.0 * np.finfo(np.float64).eps
#: A component whose expected count falls below this fraction of the sample
#: size is considered empty and re-seeded (:meth:`CategoricalLatent.reseed_empty`).
EMPTY_FRACTION = 1e-10


def normalise_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``exp(a)`` normalised to sum to 1, and each row's log-sum-exp (stable)."""
    m = a.max(axis=1, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    with np.errstate(divide="ignore", under="ignore"):
        s = np.exp(a - m)
        tot = s.sum(axis=1, keepdims=True)
        lse = m + np.log(tot)
    return s / tot, lse[:, 0]


@register(kind="latent", fitted=("weights_",))
class CategoricalLatent:
    """Mixture weights of K components (``n_sets`` independent sets of them).

    Parameters
    ----------
    n_components : int
        Number of components K.
    weights_prior : float or array, default=1.0
        Dirichlet pseudo-counts on the weights; the M-step uses
        ``max(prior - 1 + counts, 0)`` (1.0: maximum likelihood).
    floor : float, default=10 * eps
        Added to every expected count before normalising, as scikit-learn
        does (a component never reaches weight exactly 0). With ``floor=0``
        zero weights stay zero (structural zeros).
    n_sets : int or None, default=None
        None: ``weights_`` has shape (K,); an integer R: (R, K), R
        independent sets (model-graph nodes).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.latent import CategoricalLatent
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

    def __init__(
        self,
        n_components: int,
        weights_prior: Any = 1.0,
        floor: float = SKLEARN_FLOOR,
        n_sets: int | None = None,
    ) -> None:
        self.n_components = int(n_components)
        self.weights_prior = weights_prior
        self.floor = floor
        self.n_sets = n_sets
        self.weights_ = np.full(self._shape(), 1.0 / self.n_components)

    def _shape(self) -> tuple[int, ...]:
        sets = () if self.n_sets is None else (int(self.n_sets),)
        return sets + (self.n_components,)

    # ------------------------------------------------------------------ parameters
    def init(self, rng: np.random.Generator | None = None) -> None:
        """Uniform weights."""
        self.weights_ = np.full(self._shape(), 1.0 / self.n_components)

    def set_weights(self, weights: Any) -> None:
        """Set the weights (non-negative, normalised to sum to one)."""
        w = np.array(weights, dtype=np.float64)
        if w.shape != self._shape() or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"weights must be finite non-negative numbers of shape {self._shape()}; got {w!r}."
            )
        s = w.sum(axis=-1, keepdims=True)
        if not np.all(s > 0):
            raise ValueError("weights must not all be zero.")
        self.weights_ = w / s

    def check_params(self) -> None:
        """Raise ValueError unless ``weights_`` has the right shape and lies on the simplex."""
        w = np.asarray(self.weights_, dtype=np.float64)
        if (
            w.shape != self._shape()
            or not np.all(np.isfinite(w))
            or np.any(w < 0)
            or not np.allclose(w.sum(axis=-1), 1.0)
        ):
            raise ValueError(
                f"weights_ must be probabilities of shape {self._shape()} that sum to 1."
            )
        self.weights_ = w

    def _check_loaded(self) -> None:
        """After loading a model file: the weights are probabilities of the right shape."""
        from latentem.persistence.checks import _simplex

        _simplex("weights_", self.weights_, self._shape())

    def log_weights(self) -> np.ndarray:
        """log(weights_), with -inf for zero weights."""
        with np.errstate(divide="ignore"):
            return np.log(self.weights_)

    # ------------------------------------------------------------------ E-step
    def posteriors(self, log_prob: np.ndarray) -> tuple[np.ndarray, float]:
        """Posterior probabilities (n, K) and total log-likelihood from (n, K) log-densities."""
        resp, per_row = normalise_rows(log_prob + self.log_weights())
        return resp, float(per_row.sum())

    def joint(self, log_prob: np.ndarray) -> np.ndarray:
        """Per-set joint log-probabilities (n, R, K) from (n, R * K) log-densities."""
        R = 1 if self.n_sets is None else int(self.n_sets)
        with np.errstate(divide="ignore"):
            return log_prob.reshape(-1, R, self.n_components) + self.log_weights().reshape(R, -1)

    @staticmethod
    def evidence(joint: np.ndarray) -> np.ndarray:
        """Log-likelihood of each unit under each set, (n, R), from :meth:`joint`."""
        return logsumexp(joint, axis=2)

    @staticmethod
    def responsibilities(joint: np.ndarray) -> np.ndarray:
        """Posteriors within each set, (n, R, K), from :meth:`joint`."""
        norm = logsumexp(joint, axis=2, keepdims=True)
        return np.exp(joint - np.where(np.isfinite(norm), norm, 0.0))

    # ------------------------------------------------------------------ M-step
    def m_step(self, counts: np.ndarray) -> None:
        """Weights from expected counts (shape of ``weights_``), with the prior and floor."""
        counts = np.asarray(counts, dtype=np.float64)
        prior = np.asarray(self.weights_prior, dtype=np.float64)
        if self.floor > 0 and np.all(prior == 1.0):
            w = counts + self.floor
            self.weights_ = w / w.sum(axis=-1, keepdims=True)
        else:
            self.weights_ = dirichlet_m_step(
                counts + self.floor, prior, self.weights_, keep_zeros=self.floor == 0
            )

    def log_prior(self) -> float:
        """Dirichlet log-prior of the weights (0 at ``weights_prior=1``)."""
        return dirichlet_log_prior(self.weights_, self.weights_prior)

    def n_parameters(self) -> int:
        """Free weights: K - 1 per set (structural zeros not counted)."""
        sets = 1 if self.n_sets is None else int(self.n_sets)
        return int(np.count_nonzero(self.weights_)) - sets

    def vector_parts(self) -> list:
        """``(holder, attribute, is_simplex)`` of the weights, for SQUAREM."""
        return [(self, "weights_", True)]

    def split(self, src: int, dst: int) -> None:
        """Give half of component ``src``'s weight to ``dst`` (re-seeding an empty one)."""
        w = self.weights_.copy()
        half = 0.5 * (w[src] + w[dst])
        w[src] = w[dst] = half
        self.weights_ = w / w.sum()

    def reseed_empty(self, counts: np.ndarray, family: Any) -> None:
        """Re-seed every component whose expected count fell below ``EMPTY_FRACTION``
        of the total: the heaviest component is split in two (``family.split(src,
        dst)``, which returns False where it cannot split, e.g. a component without
        spread) and its weight shared (:meth:`split`)."""
        counts = np.asarray(counts, dtype=np.float64)
        empty = np.flatnonzero(counts < EMPTY_FRACTION * float(counts.sum()))
        if not empty.size or empty.size >= self.n_components or self.n_sets is not None:
            return
        for dst in empty:
            w = self.weights_.copy()
            w[empty] = -1.0  # never split an empty component
            src = int(np.argmax(w))
            if family.split(src, int(dst)) is False:
                break  # the others would fail the same way
            self.split(src, int(dst))
            empty = empty[empty != dst]

    def sample(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Component counts of ``n_samples`` draws, shape (K,)."""
        return rng.multinomial(n_samples, self.weights_)
