"""Diagonal Gaussian emissions of HMMs with at most 8 states, one vector of states per row.

The Gaussian HMM's two passes over the data besides the recursions, written
like the 8-state recursions of :mod:`latentem.kernels.hmm_vec8`:
:func:`diag_gaussian_scaled8` (the scaled emission probabilities that
forward-backward takes, without the (n, K) log-densities in between),
:func:`diag_gaussian_logprob8` (the log-densities, for Viterbi) and
:func:`diag_gaussian_stats8` (the weighted statistics of the M-step). Both are
also importable from :mod:`latentem.kernels.hmm`.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import lazy_names, njit, prange
from latentem.kernels.hmm_vec8 import _FM
from latentem.kernels.scaling import FLUSH

vgather, vrow_part = lazy_names("latentem.kernels.lanes8", "vgather", "vrow_part")

__all__ = ["diag_gaussian_logprob8", "diag_gaussian_scaled8", "diag_gaussian_stats8"]

(
    vadd,
    vexp,
    vfma,
    vkeep_max,
    vlane,
    vmax,
    vmul,
    vrow,
    vsplat,
    vstore,
    vsub,
    vzero,
) = lazy_names(
    "latentem.kernels.vec8",
    "vadd",
    "vexp",
    "vfma",
    "vkeep_max",
    "vlane",
    "vmax",
    "vmul",
    "vrow",
    "vsplat",
    "vstore",
    "vsub",
    "vzero",
)

#: Fixed split of the rows over threads.
_ROW_PARTS = 64


@njit(inline="always", fastmath=_FM)
def _diag_logp8(X, r, cols, D):
    """Row r's log-densities under the 8 packed states, as one vector."""
    maha = vzero()
    for d in range(D):
        t = vmul(vsub(vsplat(X[r, d]), vrow(cols, d)), vrow(cols, D + d))
        maha = vadd(maha, vmul(t, t))
    return vfma(vrow(cols, 2 * D), -0.5, maha)


#: With at most this many states, :func:`diag_gaussian_scaled8_jit` puts 8 rows in a
#: vector instead of 8 states: a row of one vector per state would be mostly padding.
_FEW_STATES = 4


@njit(inline="always", fastmath=_FM)
def _scaled_rows8(X, cols, r0, r1, scaled, shift):
    """Rows r0..r1-1 of :func:`diag_gaussian_scaled8_jit`, eight rows a vector: the same
    operations on each element as the one-row-a-vector loop."""
    n, D = X.shape
    K = scaled.shape[1]
    rows = np.empty(8, dtype=np.int64)
    buf = np.empty((K + 1, 8))  # the states' log-densities, then exp; row K: the maxima
    for b0 in range(r0, r1, 8):
        for lane in range(8):
            rows[lane] = min(b0 + lane, r1 - 1)  # past the end: repeat the last row
        mx = vsplat(-np.inf)
        nan = vzero()  # NaN in the rows where a log-density is NaN, as vmax gives there
        for k in range(K):
            maha = vzero()
            for d in range(D):
                t = vmul(vsub(vgather(X, rows, d), vsplat(cols[d, k])), vsplat(cols[D + d, k]))
                maha = vadd(maha, vmul(t, t))
            logp = vfma(vsplat(cols[2 * D, k]), -0.5, maha)
            vstore(buf, k, logp)
            mx = vkeep_max(mx, logp)
            nan = vadd(nan, vmul(logp, vzero()))
        mx = vadd(mx, nan)
        vstore(buf, K, mx)
        for k in range(K):
            vstore(buf, k, vexp(vsub(vrow(buf, k), mx), FLUSH))
        for lane in range(min(8, r1 - b0)):
            shift[b0 + lane] = buf[K, lane]
            for k in range(K):
                scaled[b0 + lane, k] = buf[k, lane]


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def diag_gaussian_scaled8_jit(X, cols, scaled, shift):
    """:func:`scale_emissions` of diagonal Gaussian log-densities without the (n, K)
    log-densities in between: ``shift[n]`` the row's largest log-density and
    ``scaled[n, k] = exp(logp[n, k] - shift[n])``, flushed to zero below ``FLUSH``.

    ``cols`` (2 D + 1, 8), one column per state, padded past K: rows 0..D-1 the
    means, rows D..2D-1 the inverse standard deviations, row 2D the log-normalisers
    (``-inf`` for the padding, so it gets zero probability).
    """
    n, D = X.shape
    K = scaled.shape[1]
    per = (n + _ROW_PARTS - 1) // _ROW_PARTS
    for part in prange(_ROW_PARTS):
        if K <= _FEW_STATES:
            _scaled_rows8(X, cols, part * per, min(n, (part + 1) * per), scaled, shift)
            continue
        for r in range(part * per, min(n, (part + 1) * per)):
            logp = _diag_logp8(X, r, cols, D)
            mx = vmax(logp)
            shift[r] = mx
            e = vexp(vsub(logp, vsplat(mx)), FLUSH)
            if K == 8:
                vstore(scaled, r, e)
            else:
                for k in range(K):
                    scaled[r, k] = vlane(e, k)


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def diag_gaussian_logprob8_jit(X, cols, out):
    """Diagonal Gaussian log-densities ``out[n, k]`` (what Viterbi takes), one vector
    of states per row; ``cols`` as for :func:`diag_gaussian_scaled8_jit`."""
    n, D = X.shape
    K = out.shape[1]
    per = (n + _ROW_PARTS - 1) // _ROW_PARTS
    for part in prange(_ROW_PARTS):
        for r in range(part * per, min(n, (part + 1) * per)):
            logp = _diag_logp8(X, r, cols, D)
            if K == 8:
                vstore(out, r, logp)
            else:
                for k in range(K):
                    out[r, k] = vlane(logp, k)


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def diag_gaussian_stats8_jit(X, post, means_t):
    """Weighted statistics of diagonal Gaussians about their means: ``nk`` (K,),
    ``S = sum_n post[n, k] (x_n - mu_k)`` (K, D) and the same of the squares ``Q``
    (K, 1, D). ``means_t`` (D, 8): the means, one column per state (padded past K)."""
    n, D = X.shape
    K = post.shape[1]
    per = (n + _ROW_PARTS - 1) // _ROW_PARTS
    # Row 0: nk; rows 1..D: S; rows D+1..2D: Q. One block per part, summed in order.
    parts = np.zeros((_ROW_PARTS * (2 * D + 1), 8))
    for part in prange(_ROW_PARTS):
        base = part * (2 * D + 1)
        # nk (and S, Q of one feature) in registers: a sum through memory waits for
        # its last store every row
        n_acc, s_acc, q_acc = vzero(), vzero(), vzero()
        for r in range(part * per, min(n, (part + 1) * per)):
            # a row of fewer than 8 states is read in registers, padded with zeros
            w = vrow(post, r) if K == 8 else vrow_part(post, r, K)
            n_acc = vadd(n_acc, w)
            if D == 1:
                t = vsub(vsplat(X[r, 0]), vrow(means_t, 0))
                wt = vmul(w, t)
                s_acc = vadd(s_acc, wt)
                q_acc = vadd(q_acc, vmul(wt, t))
                continue
            for d in range(D):
                t = vsub(vsplat(X[r, d]), vrow(means_t, d))
                wt = vmul(w, t)
                vstore(parts, base + 1 + d, vadd(vrow(parts, base + 1 + d), wt))
                vstore(parts, base + 1 + D + d, vadd(vrow(parts, base + 1 + D + d), vmul(wt, t)))
        vstore(parts, base, n_acc)
        if D == 1:
            vstore(parts, base + 1, s_acc)
            vstore(parts, base + 2, q_acc)
    tot = np.zeros((2 * D + 1, 8))
    for part in range(_ROW_PARTS):  # loops: a sliced `+=` costs a microsecond a part
        for i in range(2 * D + 1):
            vstore(tot, i, vadd(vrow(tot, i), vrow(parts, part * (2 * D + 1) + i)))
    nk = tot[0, :K].copy()
    S = np.ascontiguousarray(tot[1 : D + 1, :K].T)
    Q = np.empty((K, 1, D))
    Q[:, 0, :] = tot[D + 1 :, :K].T
    return nk, S, Q


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
diag_gaussian_scaled8 = Kernel(diag_gaussian_scaled8_jit, small.diag_gaussian_scaled8)
diag_gaussian_logprob8 = Kernel(diag_gaussian_logprob8_jit, small.diag_gaussian_logprob8)
diag_gaussian_stats8 = Kernel(diag_gaussian_stats8_jit, small.diag_gaussian_stats8)
