"""numba kernels for regime-switching models: Hamilton's filter and Kim's smoother.

The regime chain ``S_t`` has ``K`` states. An emission may depend on the last
``p + 1`` regimes (Hamilton's switching-mean autoregression), so the kernels
run over the *extended* state ``s = (S_t, S_{t-1}, ..., S_{t-p})``, coded as
``s = sum_l S_{t-l} K^(p-l)`` (``M = K^(p+1)`` values). From ``s`` the chain can
only move to ``s' = j K^p + s // K``, with probability ``P[S_t, j]``; the
kernels use that structure, so a step costs ``M K`` instead of ``M^2``.

Transition matrices may vary over time (``trans`` holds several, ``tidx[t]``
picks the one used to move *into* row ``t``). Rows of all sequences are
stacked; ``offsets`` (n_sequences + 1) marks where each sequence starts and
``init`` holds each sequence's distribution of the extended state at its first
row. Sequences run in parallel, each writing only its own rows, so the result
does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["hamilton_kim"]


@njit(cache=True)
def _one_sequence(logb, a, b, q, trans, tidx, init, K, smooth, filt, pred, sm, xi):
    """Filter (and smooth) rows a..b-1 of one sequence; returns its log-likelihood."""
    M = logb.shape[1]
    Kp = M // K
    total = 0.0
    for t in range(a, b):
        if t == a:
            for s in range(M):
                pred[t, s] = init[q, s]
        else:
            m = tidx[t]
            for sn in range(M):
                j = sn // Kp
                r = sn % Kp
                acc = 0.0
                for l in range(K):
                    s = r * K + l
                    acc += filt[t - 1, s] * trans[m, s // Kp, j]
                pred[t, sn] = acc
        mx = -np.inf
        for s in range(M):
            if pred[t, s] > 0.0 and logb[t, s] > mx:
                mx = logb[t, s]
        if not mx > -np.inf:
            return -np.inf
        z = 0.0
        for s in range(M):
            v = pred[t, s] * np.exp(logb[t, s] - mx)
            filt[t, s] = v
            z += v
        if not z > 0.0:
            return -np.inf
        total += np.log(z) + mx
        inv = 1.0 / z
        for s in range(M):
            filt[t, s] *= inv
    if not smooth:
        return total
    ratio = np.empty(M)
    for s in range(M):
        sm[b - 1, s] = filt[b - 1, s]
    for t in range(b - 2, a - 1, -1):
        m = tidx[t + 1]
        for sn in range(M):
            p = pred[t + 1, sn]
            ratio[sn] = sm[t + 1, sn] / p if p > 0.0 else 0.0
        for s in range(M):
            i = s // Kp
            r = s // K
            f = filt[t, s]
            acc = 0.0
            for j in range(K):
                w = trans[m, i, j] * ratio[j * Kp + r]
                acc += w
                xi[t + 1, i, j] += f * w
            sm[t, s] = f * acc
    return total


@njit(cache=True)
def _hamilton_kim_serial(logb, offsets, trans, tidx, init, K, smooth, filt, pred, sm, xi, ll):
    for q in range(offsets.shape[0] - 1):
        ll[q] = _one_sequence(
            logb, offsets[q], offsets[q + 1], q, trans, tidx, init, K, smooth, filt, pred, sm, xi
        )


@njit(cache=True, parallel=True)
def _hamilton_kim_parallel(logb, offsets, trans, tidx, init, K, smooth, filt, pred, sm, xi, ll):
    for q in prange(offsets.shape[0] - 1):
        ll[q] = _one_sequence(
            logb, offsets[q], offsets[q + 1], q, trans, tidx, init, K, smooth, filt, pred, sm, xi
        )


#: Panels with at least this many sequences run them on several threads.
PARALLEL_SEQUENCES = 64


def hamilton_kim(logb, offsets, trans, tidx, init, n_regimes, smooth):
    """Filter (and optionally smooth) all sequences.

    Parameters
    ----------
    logb : (n, M) float64
        Emission log-densities per extended state (0 for a missing row).
    offsets : (n_seq + 1,) int64
    trans : (n_trans, K, K) float64
        ``trans[m, i, j] = P(S_t = j | S_{t-1} = i)``.
    tidx : (n,) int64
        Which matrix moves into each row (unused at a sequence's first row).
    init : (n_seq, M) float64
        Extended-state distribution at each sequence's first row.
    n_regimes : int
    smooth : bool

    Returns
    -------
    loglik : (n_seq,)  per-sequence log-likelihood (-inf if impossible)
    filtered, predicted : (n, M)
    smoothed : (n, M) or (0, M)
    xi : (n, K, K) or (0, K, K)
        ``xi[t, i, j] = P(S_{t-1} = i, S_t = j | all rows)`` (zero at first rows).
    """
    n, M = logb.shape
    K = int(n_regimes)
    n_seq = offsets.shape[0] - 1
    filt = np.zeros((n, M))
    pred = np.zeros((n, M))
    sm = np.zeros((n if smooth else 0, M))
    xi = np.zeros((n if smooth else 0, K, K))
    ll = np.empty(n_seq)
    run = _hamilton_kim_parallel if n_seq >= PARALLEL_SEQUENCES else _hamilton_kim_serial
    run(logb, offsets, trans, tidx, init, K, bool(smooth), filt, pred, sm, xi, ll)
    return ll, filt, pred, sm, xi
