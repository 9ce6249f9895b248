"""The fused Gaussian-mixture E-step for many features ("full" and "tied").

At D = 64 nearly all of the work of
:func:`latentem.kernels.gaussian.gaussian_estep_jit` is two triangular D x D
products per row and component: the Mahalanobis term ``(x - means[k]) @ prec[k]``
and the second moments. Its loops keep their partial sums in memory, so they
run at a fraction of the FMA rate. Here both products keep them in vector
registers (:mod:`latentem.kernels.vec8`, eight float64 lanes):

* Mahalanobis: a tile of 8 rows x 4 columns of ``y = (x - means[k]) @ prec[k]``
  in four vectors, the 8 rows held transposed (one vector per feature), one
  FMA per feature and column;
* second moments: a tile of 4 x 8 entries of ``sum_b w_b d_b d_b^T`` in four
  vectors, the rows held as they are (one vector per 8 features), one FMA per
  row and tile row; only tiles that reach the upper triangle.

Rows, groups, blocks and the posterior are those of the fused kernel
(``N_GROUPS`` fixed groups summed in order, so results do not depend on the
thread count or timing); only the order of the sums inside a block differs.
It is compiled only when first used (large D), never for small fits.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import lazy_names, njit, prange
from latentem.kernels.gaussian import N_GROUPS, _block_posterior, _reduce

__all__ = ["WIDE_BLOCK", "WIDE_FEATURES", "gaussian_estep_wide", "gaussian_estep_wide_jit"]

vadd, vfma, vmul, vrow, vsplat, vstore, vsub, vzero = lazy_names(
    "latentem.kernels.vec8", "vadd", "vfma", "vmul", "vrow", "vsplat", "vstore", "vsub", "vzero"
)

#: Rows per block (a multiple of 8).
WIDE_BLOCK = 64
#: "full" and "tied" fits with at least this many features use this kernel: one
#: thread, 50,000 rows, K = 8, it took 0.7x the time of the fused kernel's at
#: D = 16, about the same at D = 24, 0.9x at D = 32 and 0.65x at D = 64.
WIDE_FEATURES = 32


@njit(cache=True, nogil=True)
def _load_wide(X, r0, nb, shift, xt, xr):
    """Block rows ``r0 .. r0 + nb - 1``: ``xt`` (T * D, 8) transposed, row
    ``t * D + d`` holding feature d of rows 8t .. 8t + 7 (zero past nb), and
    ``xr`` (B * Dp / 8, 8) row by row, ``x - shift``, zero past D (and past nb)."""
    D = X.shape[1]
    B = xt.shape[0] // D * 8
    Dp = xr.shape[0] * 8 // B
    for b in range(B):
        t8 = b // 8
        lane = b % 8
        base = b * Dp
        for d in range(D):
            v = np.float64(X[r0 + b, d]) if b < nb else 0.0
            xt[t8 * D + d, lane] = v
            xr[(base + d) // 8, (base + d) % 8] = v - shift[d] if b < nb else 0.0
        for d in range(D, Dp):
            xr[(base + d) // 8, (base + d) % 8] = 0.0


@njit(cache=True, nogil=True)
def _wide_logprob(xt, D, k, means, prec, logc, dt, logp):
    """logp[k * T + t, lane] = logc[k] - 0.5 * Mahalanobis^2 of row 8t + lane under k."""
    T = xt.shape[0] // D
    D4 = D - D % 4
    for t in range(T):
        base = t * D
        for d in range(D):
            vstore(dt, d, vsub(vrow(xt, base + d), vsplat(means[k, d])))
        m = vzero()
        for j in range(0, D4, 4):
            a0 = vzero()
            a1 = vzero()
            a2 = vzero()
            a3 = vzero()
            for i in range(j + 1):
                x = vrow(dt, i)
                a0 = vfma(a0, prec[k, i, j], x)
                a1 = vfma(a1, prec[k, i, j + 1], x)
                a2 = vfma(a2, prec[k, i, j + 2], x)
                a3 = vfma(a3, prec[k, i, j + 3], x)
            # the rest of the upper triangle: rows j + 1 .. j + 3
            x = vrow(dt, j + 1)
            a1 = vfma(a1, prec[k, j + 1, j + 1], x)
            a2 = vfma(a2, prec[k, j + 1, j + 2], x)
            a3 = vfma(a3, prec[k, j + 1, j + 3], x)
            x = vrow(dt, j + 2)
            a2 = vfma(a2, prec[k, j + 2, j + 2], x)
            a3 = vfma(a3, prec[k, j + 2, j + 3], x)
            a3 = vfma(a3, prec[k, j + 3, j + 3], vrow(dt, j + 3))
            m = vadd(vadd(m, vmul(a0, a0)), vmul(a1, a1))
            m = vadd(vadd(m, vmul(a2, a2)), vmul(a3, a3))
        for j in range(D4, D):
            a0 = vzero()
            for i in range(j + 1):
                a0 = vfma(a0, prec[k, i, j], vrow(dt, i))
            m = vadd(m, vmul(a0, a0))
        vstore(logp, k * T + t, vfma(vsplat(logc[k]), -0.5, m))


@njit(cache=True, nogil=True)
def _wide_moments(dr, wd, nb, D, Dp, Q):
    """Q[i, j] += sum_b wd[b, i] * dr[b, j] for the 8-column groups reaching the upper
    triangle (Q is (D * Dp / 8, 8): row i holds Q[i, :] in Dp / 8 vectors; ``dr`` likewise
    per block row, ``wd`` is (B, Dp))."""
    G8 = Dp // 8
    D4 = D - D % 4
    for i in range(0, D4, 4):
        for jg in range(i // 8, G8):
            q0 = vrow(Q, i * G8 + jg)
            q1 = vrow(Q, (i + 1) * G8 + jg)
            q2 = vrow(Q, (i + 2) * G8 + jg)
            q3 = vrow(Q, (i + 3) * G8 + jg)
            for b in range(nb):
                v = vrow(dr, b * G8 + jg)
                q0 = vfma(q0, wd[b, i], v)
                q1 = vfma(q1, wd[b, i + 1], v)
                q2 = vfma(q2, wd[b, i + 2], v)
                q3 = vfma(q3, wd[b, i + 3], v)
            vstore(Q, i * G8 + jg, q0)
            vstore(Q, (i + 1) * G8 + jg, q1)
            vstore(Q, (i + 2) * G8 + jg, q2)
            vstore(Q, (i + 3) * G8 + jg, q3)
    for i in range(D4, D):
        for jg in range(i // 8, G8):
            q0 = vrow(Q, i * G8 + jg)
            for b in range(nb):
                q0 = vfma(q0, wd[b, i], vrow(dr, b * G8 + jg))
            vstore(Q, i * G8 + jg, q0)


@njit(cache=True, parallel=True, nogil=True)
def gaussian_estep_wide_jit(X, means, prec, logc, shift, smode):
    """:func:`~latentem.kernels.gaussian.gaussian_estep_jit` for ``prec`` (K, D, D)
    upper triangular and ``smode`` 0 ("full") or 1 ("tied"): ``(loglik, nk, S, Q)``."""
    n, D = X.shape
    K = means.shape[0]
    B = WIDE_BLOCK
    T = B // 8
    Dp = (D + 7) // 8 * 8
    G8 = Dp // 8
    G = min(N_GROUPS, n)
    per = (n + G - 1) // G
    KQ = K if smode == 0 else 1
    part_ll = np.zeros(G)
    part_nk = np.zeros((G, K))
    part_S = np.zeros((G, K, D))
    part_Q = np.zeros((G, KQ, D * G8, 8))
    for g in prange(G):
        xt = np.empty((T * D, 8))
        dt = np.empty((D, 8))
        xr = np.empty((B * G8, 8))
        dr = np.empty((B * G8, 8))
        wd = np.empty((B, Dp))
        logp = np.empty((K * T, 8))
        resp = np.empty((K, B))
        lse = np.empty(B)
        rowsum = np.empty(B)
        bits = np.empty((K, B), dtype=np.int64)
        nk = part_nk[g]
        S = part_S[g]
        ll = 0.0
        end = min(n, (g + 1) * per)
        for r0 in range(g * per, end, B):
            nb = min(B, end - r0)
            _load_wide(X, r0, nb, shift, xt, xr)
            for k in range(K):
                _wide_logprob(xt, D, k, means, prec, logc, dt, logp)
            ll += _block_posterior(nb, logp.reshape((K, B)), lse, resp, rowsum, bits)
            drf = dr.reshape((B, Dp))
            for k in range(K):
                s = 0.0
                for b in range(nb):
                    w = resp[k, b]
                    s += w
                    for d in range(D):
                        t = X[r0 + b, d] - means[k, d]
                        drf[b, d] = t
                        wd[b, d] = w * t
                        S[k, d] += w * t
                    for d in range(D, Dp):
                        drf[b, d] = 0.0
                nk[k] += s
                if smode == 0:
                    _wide_moments(dr, wd, nb, D, Dp, part_Q[g, k])
            if smode == 1:  # one unweighted matrix about shift
                _wide_moments(xr, xr.reshape((B, Dp)), nb, D, Dp, part_Q[g, 0])
        part_ll[g] = ll
    total = 0.0
    for g in range(G):
        total += part_ll[g]
    Qf = part_Q.reshape((G, KQ, D, Dp))[:, :, :, :D].copy()
    nk, S, Q = _reduce(part_nk, part_S, Qf, smode)
    return total, nk, S, Q


# NumPy below the small-input threshold (as the fused kernel), compiled above.
gaussian_estep_wide = Kernel(gaussian_estep_wide_jit, small.gaussian_estep)
