"""What an HMM's EM steps receive, and the checks that turn ``fit``'s arguments into it:
sequence lengths (or scikit-learn's ignored target in their place) and
per-sequence weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.sequences import Sequences

__all__ = ["SequenceData"]


class SequenceData(Sequences):
    """What the HMM's EM steps receive: :class:`~latentem.sequences.Sequences` with
    the E-step's caches."""

    def __init__(self, X: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None = None):
        super().__init__(X, offsets, labels)
        self.missing_plan = None  # rows grouped by missingness, for Gaussian families
        # The E-step's posteriors, reused from one iteration to the next: a fresh
        # (n_rows, K) array costs more in page faults than a long sequence's
        # forward-backward.
        self.post_buffer = None


def _sequence_weights(sample_weight: Any, offsets: np.ndarray) -> np.ndarray:
    """Checked per-sequence weights: one per sequence, or one per row that is the
    same on every row of a sequence (scikit-learn's tools pass weights per row)."""
    n_sequences, n_rows = len(offsets) - 1, int(offsets[-1])
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "biuf" or w.shape not in ((n_sequences,), (n_rows,)):
        raise ValueError(
            f"sample_weight must hold one number per sequence ({n_sequences}, as lengths "
            f"says) or one per row ({n_rows}); got shape {w.shape}, dtype {w.dtype}."
        )
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and >= 0 (0 leaves a sequence out).")
    if w.shape != (n_sequences,):  # per row: each sequence's rows must agree
        first = w[offsets[:-1]]
        if not np.array_equal(np.repeat(first, np.diff(offsets)), w):
            raise ValueError(
                "sample_weight given per row must be the same on every row of a sequence "
                "(a weight belongs to a whole sequence); pass one weight per sequence."
            )
        w = first
    if not w.sum() > 0:
        raise ValueError("every sample weight is zero; give some sequences a positive weight.")
    return w


def _has_weights(data: Any) -> bool:
    w = getattr(data, "weights", None)
    return w is not None and not np.all(w == 1.0)


def _weighted_total(seq_ll: np.ndarray, weights: np.ndarray | None) -> float:
    """Sum of per-sequence log-likelihoods, weighted; a weight of 0 drops the sequence."""
    if weights is None:
        return float(np.sum(seq_ll))
    keep = weights > 0
    return float(np.dot(weights[keep], np.asarray(seq_ll)[keep]))


def _lengths_or_target(lengths: Any, n_rows: int) -> Any:
    """hmmlearn's ``fit(X, lengths)`` next to scikit-learn's ``fit(X, y)``.

    scikit-learn's tools (``Pipeline``, ``GridSearchCV``, its estimator checks)
    pass a target ``y`` as fit's second positional argument; an HMM is
    unsupervised and ignores it, as scikit-learn's clusterers do. An argument
    with one entry per row is read as that ``y`` unless it is a valid list of
    sequence lengths (n sequences of one row each): lengths are positive
    and add up to the number of rows, a target with a 0 or any other total is not.
    """
    if lengths is None or hasattr(lengths, "columns"):
        return lengths
    arr = np.asarray(lengths)
    if arr.ndim == 2 and arr.shape[1] == 1:  # a column vector y
        arr = arr[:, 0]
    if arr.shape == (n_rows,):
        valid = arr.dtype.kind in "iuf" and np.all(arr >= 1) and arr.sum() == n_rows
        if not valid:
            return None
    return lengths
