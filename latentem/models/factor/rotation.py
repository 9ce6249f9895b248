"""Orthogonal rotation of factor loadings: :func:`orthogonal_rotation` (varimax, quartimax).

:class:`FactorAnalysis` calls it after fitting when ``rotation`` is set; it is
public for rotating any loading matrix. A rotation leaves ``L L^T``, and so
the fit, unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["orthogonal_rotation"]


def orthogonal_rotation(
    loadings: Any, method: str = "varimax", tol: float = 1e-6, max_iter: int = 100
) -> np.ndarray:
    """Rotate loadings (n_features, n_factors) orthogonally by varimax or quartimax.

    Kaiser's (1958) criterion maximised by the usual SVD iteration: with
    ``L = A R``, ``R <- U V^T`` from the SVD of ``A^T (L^3 - L diag(mean(L^2)))``
    (varimax; quartimax drops the second term), until the criterion grows by
    less than ``tol`` (relative). ``L L^T = A A^T``: the fit is unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.factor import orthogonal_rotation
    >>> A = np.array([[0.9, 0.1], [0.8, 0.0], [0.7, 0.2], [0.1, 0.9], [0.0, 0.8], [0.2, 0.7]])
    >>> c, s = np.cos(0.5), np.sin(0.5)
    >>> L = orthogonal_rotation(A @ np.array([[c, -s], [s, c]]))  # a rotated simple structure
    >>> np.abs(L).round(1)  # recovered
    array([[0.9, 0.1],
           [0.8, 0. ],
           [0.7, 0.2],
           [0.1, 0.9],
           [0. , 0.8],
           [0.2, 0.7]])
    """
    if method not in ("varimax", "quartimax"):
        raise ValueError(f'method must be "varimax" or "quartimax"; got {method!r}.')
    A = np.asarray(loadings, dtype=np.float64)
    D, q = A.shape
    R = np.eye(q)
    crit = 0.0
    for _ in range(max_iter):
        L = A @ R
        target = L**3
        if method == "varimax":
            target = target - L * ((L**2).sum(axis=0) / D)
        U, sv, Vt = np.linalg.svd(A.T @ target)
        R = U @ Vt
        new = float(sv.sum())
        if crit != 0.0 and new < crit * (1.0 + tol):
            break
        crit = new
    return A @ R
