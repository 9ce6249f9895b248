"""Several independent categorical columns per row, each with its own number of levels."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.base import EmissionFamily, register_family

__all__ = ["CategoricalColumnsFamily"]


@register_family(fitted=("n_levels_", "probs_"), cli="categories")
class CategoricalColumnsFamily(EmissionFamily):
    """K products of independent categorical distributions, one per column.

    Column d holds integer codes ``0 .. L_d - 1``; NaN or -1 marks a missing
    cell, which adds nothing to the log-density or the statistics. Used by
    :class:`latentem.CategoricalMixture` (latent class analysis) and in
    :class:`latentem.HMM` for several symbols per time step.

    Parameters
    ----------
    n_components : int
    n_levels : None, int or sequence of int
        Levels of every column (an int: the same for all); None infers
        ``max code + 1`` per column from the data at ``init_params``.
    probs_prior : float
        Dirichlet pseudo-count on every probability (1.0: maximum
        likelihood; above 1 pulls rare levels away from zero).

    Attributes
    ----------
    n_levels_ : ndarray of int (n_features,)
    probs_ : ndarray (n_components, n_features, max(n_levels_))
        ``probs_[k, d, l]``: probability of level l in column d under
        component k; zero past a column's last level.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families import CategoricalColumnsFamily
    >>> fam = CategoricalColumnsFamily(1)
    >>> X = fam.validate_data([[0, 1], [1, np.nan], [0, 2]])
    >>> fam.init_params(X, np.random.default_rng(0), "p")
    >>> fam.m_step(fam.accumulate(X, np.ones((3, 1))), "p")
    >>> fam.probs_.round(3)
    array([[[0.667, 0.333, 0.   ],
            [0.   , 0.5  , 0.5  ]]])
    """

    nonnegative, missing_code, codes = True, -1.0, True  # -1 marks a gap

    param_letters = "p"
    vector_attributes = ("probs_",)
    simplex_attributes = ("probs_",)

    def __init__(self, n_components: int, n_levels: Any = None, probs_prior: float = 1.0):
        self.n_components = n_components
        self.n_levels = n_levels
        self.probs_prior = probs_prior
        self.n_levels_: np.ndarray | None = None
        self.probs_: np.ndarray | None = None

    # ------------------------------------------------------------------ data
    def validate_data(self, X: Any) -> np.ndarray:
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] == 0:
            raise ValueError(
                f"categorical data must be (n_samples, n_features) codes; got shape {arr.shape}."
            )
        if arr.dtype.kind not in "iufb":
            raise ValueError(
                f"categorical data must be integer codes 0, 1, 2, ... (NaN or -1: missing); "
                f"got dtype {arr.dtype}. Encode text levels as codes first."
            )
        out = np.array(arr, dtype=np.float64)  # a copy: X is never changed
        out[out == -1] = np.nan
        seen = out[~np.isnan(out)]
        if np.isinf(seen).any() or (seen < 0).any() or (seen != np.round(seen)).any():
            raise ValueError(
                "categorical codes must be whole numbers >= 0 (NaN or -1 marks a missing cell)."
            )
        levels = self.n_levels_
        if levels is not None:
            if out.shape[1] != len(levels):
                raise ValueError(f"X has {out.shape[1]} columns but the model has {len(levels)}.")
            too_big = np.nan_to_num(out, nan=-1.0) >= levels
            if too_big.any():
                d = int(np.flatnonzero(too_big.any(axis=0))[0])
                raise ValueError(
                    f"column {d} has the code {int(np.nanmax(out[:, d]))}, but the model knows "
                    f"levels 0..{int(levels[d]) - 1} only; a level seen only after fitting "
                    "cannot be scored. Refit with it, or set n_levels."
                )
        return out

    def _codes(self, X: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(X), -1, X).astype(np.int64)

    def _levels_from(self, X: np.ndarray) -> np.ndarray:
        D = X.shape[1]
        if self.n_levels is None:
            top = np.where(np.isnan(X).all(axis=0), 0.0, np.nanmax(np.nan_to_num(X, nan=-1), 0))
            return np.maximum(top.astype(np.int64) + 1, 1)
        levels = np.broadcast_to(np.asarray(self.n_levels, dtype=np.int64), (D,)).copy()
        if (levels < 1).any():
            raise ValueError(f"n_levels must be >= 1 for every column; got {self.n_levels!r}.")
        return levels

    def _valid(self) -> np.ndarray:
        """(D, L) mask of the levels each column has."""
        L = int(self.n_levels_.max())
        return np.arange(L)[None, :] < self.n_levels_[:, None]

    # ------------------------------------------------------------------ family jobs
    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        if "p" not in letters:
            return
        self.n_levels_ = self._levels_from(X)
        valid = self._valid()
        D, L = valid.shape
        g = rng.gamma(10.0, size=(self.n_components, D, L)) * valid
        self.probs_ = g / g.sum(axis=-1, keepdims=True)

    def check_params(self) -> None:
        if self.probs_ is None or self.n_levels_ is None:
            raise ValueError("probs_ is not set; fit the model or set it first.")
        self.n_levels_ = np.asarray(self.n_levels_, dtype=np.int64)
        p = np.asarray(self.probs_, dtype=np.float64)
        shape = (self.n_components, len(self.n_levels_), int(self.n_levels_.max()))
        if p.shape != shape:
            raise ValueError(f"probs_ must have shape {shape}; got {p.shape}.")
        if not np.isfinite(p).all() or (p < 0).any() or (p[:, ~self._valid()] != 0).any():
            raise ValueError("probs_ must be finite, >= 0, and zero past each column's levels.")
        if not np.allclose(p.sum(axis=-1), 1.0):
            raise ValueError("probs_ must sum to 1 over each column's levels.")
        self.probs_ = p

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        codes = self._codes(X)
        with np.errstate(divide="ignore"):
            logp = np.log(self.probs_)
        out = np.zeros((X.shape[0], self.n_components))
        for d in range(codes.shape[1]):
            rows = np.flatnonzero(codes[:, d] >= 0)
            out[rows] += logp[:, d, codes[rows, d]].T
        return out

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        codes = self._codes(X)
        W = np.asarray(weights, dtype=np.float64)
        counts = np.zeros(self.probs_.shape)
        for d in range(codes.shape[1]):
            rows = np.flatnonzero(codes[:, d] >= 0)
            onehot = np.zeros((rows.size, counts.shape[2]))
            onehot[np.arange(rows.size), codes[rows, d]] = 1.0
            counts[:, d, :] = W[rows].T @ onehot
        return counts

    def m_step(self, stats: np.ndarray, letters: str) -> None:
        if "p" not in letters:
            return
        c = np.maximum(float(self.probs_prior) - 1.0 + stats, 0.0) * self._valid()
        total = c.sum(axis=-1, keepdims=True)
        has_mass = total > 0
        self.probs_ = np.where(has_mass, c / np.where(has_mass, total, 1.0), self.probs_)

    def log_prior(self) -> float:
        p = self.probs_[:, self._valid()]
        nz = p > 0
        return float(np.sum((float(self.probs_prior) - 1.0) * np.log(p[nz])))

    def n_parameters(self) -> int:
        return int(self.n_components * (self.n_levels_ - 1).sum())

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cum = np.cumsum(self.probs_[np.asarray(states)], axis=-1)  # (n, D, L)
        u = rng.random(cum.shape[:2])[..., None]
        codes = np.minimum((u > cum).sum(axis=-1), self.n_levels_ - 1)
        return codes.astype(np.float64)
