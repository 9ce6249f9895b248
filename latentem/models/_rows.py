"""Row weights and known components for one mixture fit (``sample_weight=``, ``labels=``).

A weight of 2 counts a row twice: the fit equals the fit on the data with
that row duplicated (the E-step's statistics and the log-likelihood are
weighted sums). A known component (semi-supervised fitting, as mclust's
``MclustSSC``) fixes the row's responsibilities to that component; its
log-likelihood term is ``log(pi_y f_y(x))``, and EM stays monotone on the
sum. ``-1`` marks a row whose component is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem.latent.categorical import normalise_rows

__all__ = ["RowTerms", "row_terms", "weighted_posteriors"]


@dataclass(frozen=True)
class RowTerms:
    """What a fit knows about each row beyond its values."""

    weights: np.ndarray | None
    labels: np.ndarray | None

    def applies_to(self, X: Any) -> bool:
        size = len(self.weights if self.weights is not None else self.labels)
        return hasattr(X, "shape") and X.shape[0] == size

    def start(self, W: np.ndarray) -> np.ndarray:
        """Starting responsibilities with the known components set and the weights applied."""
        W = np.array(W, dtype=np.float64)
        if self.labels is not None:
            known = self.labels >= 0
            W[known] = 0.0
            W[np.flatnonzero(known), self.labels[known]] = 1.0
        if self.weights is not None:
            W *= self.weights[:, None]
        return W


def row_terms(sample_weight: Any, labels: Any, n_rows: int, n_components: int) -> RowTerms | None:
    """Checked weights and labels for ``n_rows`` rows, or None when neither is given."""
    if sample_weight is None and labels is None:
        return None
    weights = None
    if sample_weight is not None:
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must be numbers; got dtype {w.dtype}.")
        w = np.ascontiguousarray(w, dtype=np.float64).reshape(-1) if w.ndim <= 1 else w
        if w.shape != (n_rows,):
            raise ValueError(
                f"sample_weight has shape {np.shape(sample_weight)} but X has {n_rows} rows; "
                "pass one weight per row."
            )
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must be finite and >= 0 (0 leaves a row out).")
        if not w.sum() > 0:
            raise ValueError("every sample weight is zero; give some rows a positive weight.")
        weights = w
    known = None
    if labels is not None:
        y = np.asarray(labels)
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        if y.dtype.kind not in "iu" or y.shape != (n_rows,):
            raise ValueError(
                f"labels must be {n_rows} whole numbers (one per row of X: the row's "
                f"component 0..{n_components - 1}, or -1 if unknown); got shape "
                f"{np.shape(labels)}, dtype {y.dtype}."
            )
        y = y.astype(np.int64)
        bad = (y < -1) | (y >= n_components)
        if bad.any():
            raise ValueError(
                f"labels must be -1 (unknown) or a component 0..{n_components - 1}; "
                f"row {int(np.flatnonzero(bad)[0])} has {int(y[bad][0])}."
            )
        known = y
    return RowTerms(weights, known)


def weighted_posteriors(log_joint: np.ndarray, terms: RowTerms) -> tuple[np.ndarray, float]:
    """Responsibilities times row weights, and the weighted log-likelihood, from the
    (n, K) log-densities plus log mixture weights."""
    a = np.array(log_joint, dtype=np.float64)
    if terms.labels is not None:
        known = terms.labels >= 0
        keep = a[np.flatnonzero(known), terms.labels[known]]
        a[known] = -np.inf
        a[np.flatnonzero(known), terms.labels[known]] = keep
    resp, per_row = normalise_rows(a)
    if terms.weights is None:
        return resp, float(per_row.sum())
    w = terms.weights
    # a row of weight 0 counts for nothing, even where its density is 0
    return resp * w[:, None], float(np.dot(w[w > 0], per_row[w > 0]))
