"""k-means++ seeding and Lloyd iterations in numba.

Random numbers are drawn by the caller (a numpy Generator) and passed in,
so results are reproducible and independent of the thread count.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange

__all__ = ["kmeans_plusplus", "lloyd"]

_GROUPS = 16


@njit(cache=True, nogil=True)
def _sqdist_row(X, n, c):
    s = 0.0
    for d in range(X.shape[1]):
        t = X[n, d] - c[d]
        s += t * t
    return s


@njit(cache=True, parallel=True, nogil=True)
def kmeans_plusplus_jit(X, n_clusters, first, uniforms):
    """Greedy k-means++ seeding (as scikit-learn's ``kmeans_plusplus``).

    Parameters
    ----------
    X : (n, D) float64 or float32 array.
    n_clusters : number of seeds K.
    first : index of the first seed (drawn uniformly by the caller).
    uniforms : (K - 1, L) uniform draws in [0, 1); L = local trials per seed.

    Returns
    -------
    indices : (K,) int64 row indices of the seeds.
    """
    n, D = X.shape
    L = uniforms.shape[1]
    idx = np.empty(n_clusters, dtype=np.int64)
    idx[0] = first
    closest = np.empty(n)
    c0 = np.empty(D)
    for d in range(D):
        c0[d] = X[first, d]
    for i in prange(n):
        closest[i] = _sqdist_row(X, i, c0)
    cum = np.empty(n)
    cand = np.empty((L, D))
    cand_idx = np.empty(L, dtype=np.int64)
    per = (n + _GROUPS - 1) // _GROUPS
    part = np.zeros((_GROUPS, L))
    for c in range(1, n_clusters):
        s = 0.0
        for i in range(n):
            s += closest[i]
            cum[i] = s
        pot = s
        for t in range(L):
            r = uniforms[c - 1, t] * pot
            j = np.searchsorted(cum, r)
            if j > n - 1:
                j = n - 1
            cand_idx[t] = j
            for d in range(D):
                cand[t, d] = X[j, d]
        part[:, :] = 0.0
        for g in prange(_GROUPS):
            for i in range(g * per, min(n, (g + 1) * per)):
                for t in range(L):
                    part[g, t] += min(closest[i], _sqdist_row(X, i, cand[t]))
        best = 0
        best_pot = np.inf
        for t in range(L):
            p = 0.0
            for g in range(_GROUPS):
                p += part[g, t]
            if p < best_pot:
                best_pot = p
                best = t
        idx[c] = cand_idx[best]
        cb = cand[best].copy()
        for i in prange(n):
            v = _sqdist_row(X, i, cb)
            if v < closest[i]:
                closest[i] = v
    return idx


@njit(cache=True, parallel=True, nogil=True)
def lloyd_jit(X, centers, max_iter):
    """Lloyd iterations from ``centers`` (K, D); ``max_iter=0`` only assigns.

    Stops early when no label changes. An empty cluster keeps its centre.
    Returns ``(centers, labels, n_iter)``; the input ``centers`` is not
    modified.
    """
    n, D = X.shape
    K = centers.shape[0]
    C = centers.copy()
    labels = np.full(n, -1, dtype=np.int64)
    per = (n + _GROUPS - 1) // _GROUPS
    it = 0
    while True:
        changed = np.zeros(_GROUPS, dtype=np.int64)
        sums = np.zeros((_GROUPS, K, D))
        counts = np.zeros((_GROUPS, K))
        for g in prange(_GROUPS):
            for i in range(g * per, min(n, (g + 1) * per)):
                best = 0
                bd = np.inf
                for k in range(K):
                    v = _sqdist_row(X, i, C[k])
                    if v < bd:
                        bd = v
                        best = k
                if labels[i] != best:
                    changed[g] += 1
                    labels[i] = best
                counts[g, best] += 1.0
                for d in range(D):
                    sums[g, best, d] += X[i, d]
        if it >= max_iter or changed.sum() == 0:
            break
        it += 1
        tot = np.zeros((K, D))
        cnt = np.zeros(K)
        for g in range(_GROUPS):
            tot += sums[g]
            cnt += counts[g]
        for k in range(K):
            if cnt[k] > 0:
                for d in range(D):
                    C[k, d] = tot[k, d] / cnt[k]
    return C, labels, it


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
kmeans_plusplus = Kernel(kmeans_plusplus_jit, small.kmeans_plusplus)
lloyd = Kernel(lloyd_jit, small.lloyd)
