"""Small dense linear algebra for the Kalman kernels, written out for numba.

Cholesky factors of a positive definite matrix (:func:`_cholesky`) and of a
positive semi-definite one whose zero-variance directions are left out
(:func:`_cholesky_semi`), and the triangular solves that go with them:
in place on a vector (:func:`_solve_vec`, :func:`_solve_semi`, the latter a
pseudo-inverse where the factor has zero columns) or on one row of a matrix
(:func:`_solve_row`). Each works on the leading ``k`` x ``k`` block of
preallocated buffers, so the filter and smoother of
:mod:`latentem.kernels.kalman` allocate nothing per time step.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit

__all__: list[str] = []


@njit(cache=True)
def _cholesky(S, k, L):
    """Lower Cholesky factor of ``S[:k, :k]`` into ``L[:k, :k]``; False if not positive
    definite."""
    for j in range(k):
        d = S[j, j]
        for q in range(j):
            d -= L[j, q] * L[j, q]
        if not d > 0.0:
            return False
        _cholesky_column(S, k, L, j, d)
        for i in range(j):
            L[i, j] = 0.0
    return True


@njit(cache=True)
def _cholesky_semi(S, k, L, tiny):
    """Cholesky factor of a positive semi-definite ``S[:k, :k]``: a pivot at most
    ``tiny`` marks a direction of zero variance (its column is left zero), so
    :func:`_solve_semi` acts as a pseudo-inverse there."""
    for j in range(k):
        d = S[j, j]
        for q in range(j):
            d -= L[j, q] * L[j, q]
        for i in range(j):
            L[i, j] = 0.0
        if not d > tiny:
            for i in range(j, k):
                L[i, j] = 0.0
            continue
        _cholesky_column(S, k, L, j, d)
    return True


@njit(cache=True)
def _cholesky_column(S, k, L, j, d):
    """Column ``j`` of the factor, on and below the diagonal, from its pivot ``d > 0``
    (the step both factorisations share)."""
    d = np.sqrt(d)
    L[j, j] = d
    for i in range(j + 1, k):
        s = S[i, j]
        for q in range(j):
            s -= L[i, q] * L[j, q]
        L[i, j] = s / d


@njit(cache=True)
def _solve_semi(L, k, b):
    """Solve ``L L' x = b`` in place for ``b[:k]`` (columns of ``L`` that are zero give
    zero in ``x``)."""
    for i in range(k):
        if L[i, i] == 0.0:
            b[i] = 0.0
            continue
        s = b[i]
        for q in range(i):
            s -= L[i, q] * b[q]
        b[i] = s / L[i, i]
    for i in range(k - 1, -1, -1):
        if L[i, i] == 0.0:
            b[i] = 0.0
            continue
        s = b[i]
        for q in range(i + 1, k):
            s -= L[q, i] * b[q]
        b[i] = s / L[i, i]


@njit(cache=True)
def _solve_row(L, k, K, i):
    """Solve ``L L' x = K[i, :k]`` in place."""
    for c in range(k):
        s = K[i, c]
        for q in range(c):
            s -= L[c, q] * K[i, q]
        K[i, c] = s / L[c, c]
    for c in range(k - 1, -1, -1):
        s = K[i, c]
        for q in range(c + 1, k):
            s -= L[q, c] * K[i, q]
        K[i, c] = s / L[c, c]


@njit(cache=True)
def _solve_vec(L, k, b):
    """Solve ``L L' x = b[:k]`` in place (L positive definite)."""
    for c in range(k):
        s = b[c]
        for q in range(c):
            s -= L[c, q] * b[q]
        b[c] = s / L[c, c]
    for c in range(k - 1, -1, -1):
        s = b[c]
        for q in range(c + 1, k):
            s -= L[q, c] * b[q]
        b[c] = s / L[c, c]
