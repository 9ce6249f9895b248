"""Kernels of the mixed-table imputer: categorical columns under K latent classes.

Codes are int64 (n, D) with -1 for a missing cell; ``logp`` is (K, D, L), the
log-probability of level l of column d under class k. A missing cell adds
nothing. Each compiled kernel has a NumPy version (used for small inputs and
as the reference in the tests); both add in the same order per row.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange

__all__ = ["categorical_counts", "categorical_logprob"]


@njit(cache=True, parallel=True, fastmath=False)
def categorical_logprob_jit(codes, logp):
    """Sum over the observed cells of each row of ``logp[k, d, code]``: (n, K)."""
    n, D = codes.shape
    K = logp.shape[0]
    out = np.zeros((n, K))
    for i in prange(n):
        for d in range(D):
            c = codes[i, d]
            if c >= 0:
                for k in range(K):
                    out[i, k] += logp[k, d, c]
    return out


def categorical_logprob_numpy(codes, logp):
    n, D = codes.shape
    out = np.zeros((n, logp.shape[0]))
    for d in range(D):
        rows = np.flatnonzero(codes[:, d] >= 0)
        out[rows] += logp[:, d, codes[rows, d]].T
    return out


@njit(cache=True, parallel=True, fastmath=False)
def _counts_blocks(codes, W, n_levels_max, n_blocks):
    n, D = codes.shape
    K = W.shape[1]
    parts = np.zeros((n_blocks, K, D, n_levels_max))
    size = (n + n_blocks - 1) // n_blocks
    for b in prange(n_blocks):
        for i in range(b * size, min(n, (b + 1) * size)):
            for d in range(D):
                c = codes[i, d]
                if c >= 0:
                    for k in range(K):
                        parts[b, k, d, c] += W[i, k]
    return parts


def categorical_counts_jit(codes, W, n_levels_max):
    """Expected counts (K, D, L) of every level under every class, rows weighted by W.

    Rows are split in a fixed number of blocks whose partial sums are added in
    order, so the result does not depend on the number of threads."""
    parts = _counts_blocks(codes, W, int(n_levels_max), 16)
    return parts.sum(axis=0)


def categorical_counts_numpy(codes, W, n_levels_max):
    n, D = codes.shape
    counts = np.zeros((W.shape[1], D, int(n_levels_max)))
    for d in range(D):
        rows = np.flatnonzero(codes[:, d] >= 0)
        onehot = np.zeros((rows.size, int(n_levels_max)))
        onehot[np.arange(rows.size), codes[rows, d]] = 1.0
        counts[:, d, :] = W[rows].T @ onehot
    return counts


categorical_logprob = Kernel(categorical_logprob_jit, categorical_logprob_numpy)
categorical_counts = Kernel(categorical_counts_jit, categorical_counts_numpy)
