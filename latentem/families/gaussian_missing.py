"""The Gaussian family on data with gaps: NaN entries are marginalised or filled in expectation.

Complete rows go through the fast fused kernels of
:class:`~latentem.families.gaussian.GaussianFamily`; rows with some NaN go
through :mod:`latentem.kernels.gaussian_missing` (marginal log-densities;
conditional means and covariances in the statistics); rows that are entirely
NaN carry no evidence (log-density 0) and add nothing to the statistics.
"""

from __future__ import annotations

import numpy as np

from latentem.families.gaussian import GaussianFamily
from latentem.kernels.gaussian_missing import (
    conditional_fill,
    missing_accumulate,
    missing_logprob,
)

__all__ = ["MissingGaussianFamily", "row_missingness"]


def row_missingness(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of complete rows, partly observed rows and entirely missing rows."""
    nan = np.isnan(X)
    any_nan = nan.any(axis=1)
    all_nan = nan.all(axis=1)
    return ~any_nan, any_nan & ~all_nan, all_nan


class MissingGaussianFamily(GaussianFamily):
    """:class:`GaussianFamily` that accepts NaN for missing entries.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.gaussian_missing import MissingGaussianFamily
    >>> fam = MissingGaussianFamily(1, 2, "full")
    >>> fam.set_parameters(np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]]))
    >>> X = np.array([[1.0, np.nan]])
    >>> float(np.round(fam.log_prob(X)[0, 0], 4))  # the marginal N(1; 0, 1)
    -1.4189
    >>> fam.fill(X, np.ones((1, 1)))  # E[x2 | x1 = 1] = 0.8
    array([[1. , 0.8]])
    """

    def full_covariances(self) -> np.ndarray:
        """Every component's (D, D) covariance matrix, shape (K, D, D)."""
        K, D = self.n_components, self.n_features
        C = self.covariances_
        if self.covariance_type == "full":
            return np.ascontiguousarray(C)
        if self.covariance_type == "tied":
            return np.ascontiguousarray(np.broadcast_to(C, (K, D, D)))
        diag = C if self.covariance_type == "diag" else np.repeat(C[:, None], D, axis=1)
        out = np.zeros((K, D, D))
        out[:, np.arange(D), np.arange(D)] = diag
        return out

    def log_prob(self, X: np.ndarray) -> np.ndarray:
        complete, partial, _ = row_missingness(X)
        if complete.all():
            return super().log_prob(X)
        out = np.zeros((X.shape[0], self.n_components))
        if complete.any():
            out[complete] = super().log_prob(np.ascontiguousarray(X[complete]))
        if partial.any():
            rows = np.flatnonzero(partial)
            out[rows] = missing_logprob(X, rows, self.means_, self.full_covariances())
        return out

    def accumulate(self, X: np.ndarray, weights: np.ndarray) -> tuple:
        complete, partial, _ = row_missingness(X)
        if complete.all():
            return super().accumulate(X, weights)
        K, D = self.n_components, self.n_features
        smode = self.smode
        qshape = {0: (K, D, D), 1: (1, D, D), 2: (K, 1, D)}[smode]
        nk, S, Q = np.zeros(K), np.zeros((K, D)), np.zeros(qshape)
        W = np.ascontiguousarray(weights, dtype=np.float64)
        if complete.any():
            nk, S, Q = super().accumulate(np.ascontiguousarray(X[complete]), W[complete])
        if partial.any():
            rows = np.flatnonzero(partial)
            nk2, S2, Q2 = missing_accumulate(
                X,
                rows,
                np.ascontiguousarray(W[rows]),
                self.means_,
                self.full_covariances(),
                self._shift(),
                smode,
            )
            nk, S, Q = nk + nk2, S + S2, Q + Q2
        return nk, S, Q

    def fill(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """X with each NaN replaced by its conditional mean, averaged over components
        with the given row weights (n, K). A new array; X is not changed."""
        out = np.array(X, dtype=np.float64)
        _, partial, all_nan = row_missingness(X)
        rows = np.flatnonzero(partial | all_nan)
        if rows.size:
            W = np.ascontiguousarray(weights[rows], dtype=np.float64)
            out[rows] = conditional_fill(X, rows, W, self.means_, self.full_covariances())
        return out
