"""Bernoulli emissions: each component has one probability per binary feature.

A mixture over this family is latent class analysis (Lazarsfeld; R's
``poLCA``); under a Markov chain it is an HMM of binary indicators. Features
are independent given the component. NaN marks a missing entry: it adds
nothing to the log-density or the statistics, which is exact under
missingness at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.base import EmissionFamily, register_family
from latentem.kernels.bernoulli import bernoulli_logprob
from latentem.kernels.discrete import masked_weighted_sums

__all__ = ["BernoulliFamily"]

#: Fitted probabilities are kept in [PROB_FLOOR, 1 - PROB_FLOOR]: an exact 0 or
#: 1 would make every later row with the other value impossible (log 0) under
#: that component. The likelihood this gives up is at most n * PROB_FLOOR.
PROB_FLOOR = 1e-10


@register_family(fitted=("n_features", "probs_"), cli="bernoulli")
class BernoulliFamily(EmissionFamily):
    """K products of independent Bernoulli distributions over n_features binary features.

    Statistics are the dict ``{"obs": (K, D), "ones": (K, D)}``: per
    component and feature, the row weight where the feature is observed, and
    where it is 1. They are additive over rows.

    Parameters
    ----------
    n_components : int
        Number of components K.
    n_features : int or None
        Number of features D; taken from the data (or from ``probs_`` set by
        hand) when None.
    beta_prior : (a, b), floats or arrays broadcastable to (K, D)
        Beta(a, b) prior on every probability, each at least 1. The M-step
        gives the posterior mode ``(a - 1 + sum w x) / (a + b - 2 + sum w)``
        over observed entries; (1, 1), the default, is maximum likelihood,
        (2, 2) adds one pseudo-observation of each value (Laplace smoothing)
        and keeps probabilities away from 0 and 1.
    binarize : float or None
        None (the default): X must hold 0 and 1 only. A number: values above it
        are read as 1, the others as 0 (NaN stays missing), as scikit-learn's
        ``BernoulliNB(binarize=...)`` does; the caller's array is not changed.

    Attributes
    ----------
    probs_ : ndarray (n_components, n_features)
        Probability that each feature is 1 under each component.

    Examples
    --------
    A latent class analysis of 6 binary items, fitted as a mixture through
    the model graph:

    >>> import numpy as np
    >>> from latentem import Categorical, Family, ModelGraph
    >>> from latentem.families.bernoulli import BernoulliFamily
    >>> rng = np.random.default_rng(0)
    >>> truth = np.array([[0.9] * 3 + [0.1] * 3, [0.1] * 3 + [0.9] * 3])
    >>> z = rng.integers(0, 2, 2000)
    >>> X = (rng.random((2000, 6)) < truth[z]).astype(float)
    >>> X[rng.random(X.shape) < 0.1] = np.nan  # 10% of the answers missing
    >>> g = ModelGraph()
    >>> g.add_node("class", Categorical(2))
    >>> g.add_node("items", Family(lambda k: BernoulliFamily(k), name="Bernoulli"))
    >>> g.add_edge("class", "items")
    >>> probs = g.fit(X, random_state=0).parameters("items")["probs_"]
    >>> np.round(probs[np.argsort(probs[:, 0])], 1)
    array([[0.1, 0.1, 0.1, 0.9, 0.9, 0.9],
           [0.9, 0.9, 0.9, 0.1, 0.1, 0.1]])
    """

    param_letters = "p"
    #: Parameters in the flat vector used by SQUAREM (see latentem._vector).
    vector_attributes = ("probs_",)

    def __init__(
        self,
        n_components: int,
        n_features: int | None = None,
        beta_prior: Any = (1.0, 1.0),
        binarize: float | None = None,
    ):
        self.n_components = n_components
        self.n_features = n_features
        self.beta_prior = beta_prior
        self.binarize = binarize
        self.probs_: np.ndarray | None = None

    # ------------------------------------------------------------------ checks
    def validate_data(self, X: Any) -> np.ndarray:
        """X as a float64 (n, D) array of 0.0, 1.0 and NaN (a new array when converted)."""
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2:
            raise ValueError(
                f"Bernoulli data must be (n_samples, n_features); got shape {arr.shape}."
            )
        if arr.dtype.kind not in "iufb":
            raise ValueError(
                f"Bernoulli data must be 0/1 (or True/False, NaN for missing); got dtype "
                f"{arr.dtype}."
            )
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        if self.binarize is not None:
            arr = _binarized(arr, self.binarize)
        bad = ~((arr == 0.0) | (arr == 1.0) | np.isnan(arr))
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"Bernoulli data must be 0 or 1 (NaN marks a missing entry); found "
                f"{float(arr[row, col])!r} in row {row}, column {col}. Binarise the column first."
            )
        if self.n_features is not None and arr.shape[1] != self.n_features:
            raise ValueError(
                f"X has {arr.shape[1]} features but the model has {self.n_features}; pass "
                "data with the same columns as in fit."
            )
        return arr

    def _prior(self) -> tuple[np.ndarray, np.ndarray]:
        try:
            a, b = self.beta_prior
        except (TypeError, ValueError):
            raise ValueError(
                f"beta_prior must be a pair (a, b); got {self.beta_prior!r}."
            ) from None
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        if not (np.all(a >= 1.0) and np.all(b >= 1.0)):
            raise ValueError(
                "beta_prior (a, b) must be at least 1 everywhere (1 means no prior); below 1 "
                "the posterior mode sits at 0 or 1 and the posterior has no maximum."
            )
        return a, b

    def check_params(self) -> None:
        if self.probs_ is None:
            raise ValueError("probs_ is not set; fit the model or set it first.")
        p = np.asarray(self.probs_, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] != self.n_components:
            raise ValueError(
                f"probs_ must have shape (n_components={self.n_components}, n_features); "
                f"got {p.shape}."
            )
        if self.n_features is None:
            self.n_features = p.shape[1]
        if p.shape[1] != self.n_features:
            raise ValueError(
                f"probs_ has {p.shape[1]} features but n_features is {self.n_features}."
            )
        if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
            raise ValueError("probs_ must be probabilities in [0, 1].")
        self._prior()
        self.probs_ = p

    # ------------------------------------------------------------------ family jobs
    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        self.n_features = X.shape[1]
        if "p" in letters:
            with np.errstate(invalid="ignore"):  # an all-missing column has no mean
                mean = np.nanmean(X, axis=0) if X.size else np.full(X.shape[1], 0.5)
            mean = np.where(np.isnan(mean), 0.5, mean)
            # Half the column frequency, half a random draw: the components start apart.
            spread = rng.uniform(0.1, 0.9, size=(self.n_components, X.shape[1]))
            self.probs_ = np.clip(0.5 * mean + 0.5 * spread, 0.02, 0.98)

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] != self.probs_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the model has {self.probs_.shape[1]}."
            )
        with np.errstate(divide="ignore"):
            log_p = np.log(self.probs_)
            log_q = np.log1p(-self.probs_)
        return bernoulli_logprob(X, np.ascontiguousarray(log_p), np.ascontiguousarray(log_q))

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> dict:
        obs, ones = masked_weighted_sums(X, np.ascontiguousarray(weights, dtype=np.float64))
        return {"obs": obs, "ones": ones}

    def m_step(self, stats: dict, letters: str) -> None:
        if "p" in letters:
            a, b = self._prior()
            num = a - 1.0 + stats["ones"]
            den = a + b - 2.0 + stats["obs"]
            has_mass = den > 0
            new = np.where(has_mass, num / np.where(has_mass, den, 1.0), self.probs_)
            self.probs_ = np.where(has_mass, np.clip(new, PROB_FLOOR, 1.0 - PROB_FLOOR), new)

    def log_prior(self) -> float:
        """Beta log-prior, ``sum((a - 1) log p + (b - 1) log(1 - p))`` (0 for a = b = 1)."""
        a, b = self._prior()
        p = self.probs_
        a = np.broadcast_to(a - 1.0, p.shape)
        b = np.broadcast_to(b - 1.0, p.shape)
        with np.errstate(divide="ignore"):
            total = np.where(a > 0, a * np.log(p), 0.0) + np.where(b > 0, b * np.log1p(-p), 0.0)
        return float(np.sum(total))

    def n_parameters(self) -> int:
        return int(np.size(self.probs_))

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.probs_[np.asarray(states, dtype=np.int64)]
        return (rng.random(p.shape) < p).astype(np.float64)

    def fill(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """X with each NaN replaced by its probability of being 1, averaged over the
        components with the row weights (n, K). A new array; X is not changed."""
        out = np.array(X, dtype=np.float64)
        expected = np.asarray(weights, dtype=np.float64) @ self.probs_
        gaps = np.isnan(out)
        out[gaps] = expected[gaps]
        return out


def _binarized(X: np.ndarray, threshold: Any) -> np.ndarray:
    """A new array: 1.0 where X > threshold, 0.0 elsewhere, NaN where X is NaN."""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | np.number):
        raise ValueError(f"binarize must be a number or None; got {threshold!r}.")
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(X), np.nan, (X > float(threshold)).astype(np.float64))
