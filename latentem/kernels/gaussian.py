"""Fused numba kernels for K-component Gaussian families.

Plain functions on arrays. Layout conventions, shared by every kernel:

* ``X``: (n, D) C-contiguous float64 or float32; all accumulation is float64.
* ``means``: (K, D) float64.
* ``prec``: the Cholesky factors of the precisions, float64, either
  (K, D, D) upper triangular (scikit-learn's ``precisions_cholesky_`` for
  "full"; "tied" repeats its one matrix K times) or (K, 1, D) holding the
  diagonal of a diagonal factor ("diag"; "spherical" repeats its scalar D
  times). The log-density of x under component k is
  ``logc[k] - 0.5 * |(x - means[k]) @ prec[k]|**2``, where ``logc`` carries
  the log-determinant, ``-D/2 log(2 pi)`` and, for mixtures, the log-weight.
* Second moments (``smode``): 0 = per component, full matrix
  ``sum_n w_nk (x_n - means[k])(x_n - means[k])^T`` of shape (K, D, D);
  1 = one total matrix ``sum_n (x_n - shift)(x_n - shift)^T`` of shape
  (1, D, D) (enough for "tied", because the weights of a row sum to one);
  2 = per component diagonal ``sum_n w_nk (x_n - means[k])**2`` of shape
  (K, 1, D). First moments are always ``sum_n w_nk (x_n - means[k])``:
  statistics are taken about the current means, which keeps the
  covariance update free of cancellation.

Rows are processed in a fixed number of groups (``N_GROUPS``, independent of
the thread count), each in blocks of ``BLOCK`` rows transposed into a small
(D, BLOCK) buffer so that the inner loops run over contiguous rows and
vectorise for any D. Per-group partial sums are added in group order, so
results do not depend on thread timing. No (n, K, D) temporaries exist.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange
from latentem.kernels.scaling import exp_shifted, scale_block

__all__ = [
    "N_GROUPS",
    "BLOCK",
    "gaussian_estep",
    "gaussian_accumulate",
    "gaussian_logprob",
    "gaussian_scaled_prob",
    "cov_to_prec_chol",
]

N_GROUPS = 16
BLOCK = 128

# reassociation lets LLVM vectorise the dot-product reductions; results stay
# deterministic because the block/group partition is fixed. No 'nnan'/'ninf':
# log-weights of exactly zero weights are -inf.
_FM = {"reassoc", "contract", "arcp", "nsz"}


@njit(cache=True, fastmath=_FM, nogil=True)
def _load_block(X, r0, nb, xt):
    D = X.shape[1]
    for b in range(nb):
        for d in range(D):
            xt[d, b] = X[r0 + b, d]


@njit(cache=True, fastmath=_FM, nogil=True)
def _block_logprob(xt, nb, means, prec, logc, dk, yacc, maha, logp):
    """logp[k, b] = logc[k] - 0.5 * Mahalanobis^2 of block row b under k."""
    D = xt.shape[0]
    K = means.shape[0]
    diag = prec.shape[1] == 1
    for k in range(K):
        for b in range(nb):
            maha[b] = 0.0
        if diag:
            for d in range(D):
                p = prec[k, 0, d]
                mk = means[k, d]
                for b in range(nb):
                    t = (xt[d, b] - mk) * p
                    maha[b] += t * t
        else:
            for d in range(D):
                mk = means[k, d]
                for b in range(nb):
                    dk[d, b] = xt[d, b] - mk
            for j in range(D):
                # y_j = sum_{i <= j} dk_i P_ij, four terms per sweep over the block
                p = prec[k, j, j]
                for b in range(nb):
                    yacc[b] = dk[j, b] * p
                i4 = j - j % 4
                for i in range(0, i4, 4):
                    p0 = prec[k, i, j]
                    p1 = prec[k, i + 1, j]
                    p2 = prec[k, i + 2, j]
                    p3 = prec[k, i + 3, j]
                    for b in range(nb):
                        yacc[b] += (dk[i, b] * p0 + dk[i + 1, b] * p1) + (
                            dk[i + 2, b] * p2 + dk[i + 3, b] * p3
                        )
                for i in range(i4, j):
                    p = prec[k, i, j]
                    for b in range(nb):
                        yacc[b] += dk[i, b] * p
                for b in range(nb):
                    maha[b] += yacc[b] * yacc[b]
        c = logc[k]
        for b in range(nb):
            logp[k, b] = c - 0.5 * maha[b]


@njit(cache=True, fastmath=_FM, nogil=True)
def _block_posterior(nb, logp, lse, resp, rowsum, bits):
    """Normalise logp (K, BLOCK) into resp; set lse[b] to row b's log-sum-exp and return
    their sum. ``rowsum`` (BLOCK,) and ``bits`` (int64, like resp) are scratch.

    The exps run in one vectorised loop (:func:`latentem.kernels.scaling.exp_shifted`);
    terms below exp(-500) ~ 1e-217 of the row's largest are exactly zero, since
    subnormal numbers would slow every later product 100-fold.
    """
    K = logp.shape[0]
    for b in range(nb):
        lse[b] = logp[0, b]
    for k in range(1, K):
        for b in range(nb):
            if logp[k, b] > lse[b]:
                lse[b] = logp[k, b]
    for b in range(nb):
        rowsum[b] = lse[b] if lse[b] > -np.inf else 0.0  # the shift of each row's exps
    exp_shifted(logp, rowsum, nb, resp, bits)
    for b in range(nb):
        rowsum[b] = resp[0, b]
    for k in range(1, K):
        for b in range(nb):
            rowsum[b] += resp[k, b]
    total = 0.0
    for b in range(nb):
        m = lse[b]
        if m == -np.inf:
            # no component has positive density: spread the row evenly
            for k in range(K):
                resp[k, b] = 1.0
            rowsum[b] = 1.0 / K
        else:
            lse[b] = m + np.log(rowsum[b])
            rowsum[b] = 1.0 / rowsum[b]
        total += lse[b]
    for k in range(K):
        for b in range(nb):
            resp[k, b] *= rowsum[b]
    return total


@njit(cache=True, fastmath=_FM, nogil=True)
def _block_stats(xt, nb, resp, means, shift, smode, dk, wdk, nk, S, Q):
    """Add the block's weighted statistics into nk (K,), S (K, D), Q."""
    D = xt.shape[0]
    K = means.shape[0]
    for k in range(K):
        s = 0.0
        for b in range(nb):
            s += resp[k, b]
        nk[k] += s
        if smode == 2:
            for d in range(D):
                mk = means[k, d]
                acc = 0.0
                acc2 = 0.0
                for b in range(nb):
                    t = xt[d, b] - mk
                    w = resp[k, b] * t
                    acc += w
                    acc2 += w * t
                S[k, d] += acc
                Q[k, 0, d] += acc2
            continue
        for d in range(D):
            mk = means[k, d]
            acc = 0.0
            for b in range(nb):
                t = xt[d, b] - mk
                dk[d, b] = t
                w = resp[k, b] * t
                wdk[d, b] = w
                acc += w
            S[k, d] += acc
        if smode == 0:
            for i in range(D):
                # upper triangle, four columns per sweep over the block
                j4 = i + (D - i) // 4 * 4
                for j in range(i, j4, 4):
                    a0 = 0.0
                    a1 = 0.0
                    a2 = 0.0
                    a3 = 0.0
                    for b in range(nb):
                        w = wdk[i, b]
                        a0 += w * dk[j, b]
                        a1 += w * dk[j + 1, b]
                        a2 += w * dk[j + 2, b]
                        a3 += w * dk[j + 3, b]
                    Q[k, i, j] += a0
                    Q[k, i, j + 1] += a1
                    Q[k, i, j + 2] += a2
                    Q[k, i, j + 3] += a3
                for j in range(j4, D):
                    acc = 0.0
                    for b in range(nb):
                        acc += wdk[i, b] * dk[j, b]
                    Q[k, i, j] += acc
    if smode == 1:
        for d in range(D):
            c = shift[d]
            for b in range(nb):
                dk[d, b] = xt[d, b] - c
        for i in range(D):
            for j in range(i, D):
                acc = 0.0
                for b in range(nb):
                    acc += dk[i, b] * dk[j, b]
                Q[0, i, j] += acc


@njit(cache=True, nogil=True)
def _q_shape(smode, K, D):
    if smode == 0:
        return K, D
    if smode == 1:
        return 1, D
    return K, 1


@njit(cache=True, nogil=True)
def _reduce(part_nk, part_S, part_Q, smode):
    """Sum per-group partials in group order; symmetrise matrix moments."""
    G, K = part_nk.shape
    nk = np.zeros(K)
    S = np.zeros(part_S.shape[1:])
    Q = np.zeros(part_Q.shape[1:])
    for g in range(G):
        nk += part_nk[g]
        S += part_S[g]
        Q += part_Q[g]
    if smode != 2:
        D = Q.shape[2]
        for k in range(Q.shape[0]):
            for i in range(D):
                for j in range(i + 1, D):
                    Q[k, j, i] = Q[k, i, j]
    return nk, S, Q


@njit(cache=True, parallel=True, nogil=True)
def gaussian_estep_jit(X, means, prec, logc, shift, smode):
    """Fused E-step of a mixture: one pass over X.

    Returns ``(loglik, nk, S, Q)``: the total log-likelihood
    ``sum_n logsumexp_k(logp[n, k])`` with ``logp`` as in the module
    docstring, the responsibilities' column sums, the first moments about
    ``means`` and the second moments chosen by ``smode``.
    """
    n, D = X.shape
    K = means.shape[0]
    G = min(N_GROUPS, n)
    per = (n + G - 1) // G
    K2, D2 = _q_shape(smode, K, D)
    part_ll = np.zeros(G)
    part_nk = np.zeros((G, K))
    part_S = np.zeros((G, K, D))
    part_Q = np.zeros((G, K2, D2, D))
    for g in prange(G):
        xt = np.empty((D, BLOCK))
        dk = np.empty((D, BLOCK))
        wdk = np.empty((D, BLOCK))
        yacc = np.empty(BLOCK)
        maha = np.empty(BLOCK)
        logp = np.empty((K, BLOCK))
        resp = np.empty((K, BLOCK))
        lse = np.empty(BLOCK)
        rowsum = np.empty(BLOCK)
        bits = np.empty((K, BLOCK), dtype=np.int64)
        ll = 0.0
        end = min(n, (g + 1) * per)
        for r0 in range(g * per, end, BLOCK):
            nb = min(BLOCK, end - r0)
            _load_block(X, r0, nb, xt)
            _block_logprob(xt, nb, means, prec, logc, dk, yacc, maha, logp)
            ll += _block_posterior(nb, logp, lse, resp, rowsum, bits)
            _block_stats(
                xt, nb, resp, means, shift, smode, dk, wdk, part_nk[g], part_S[g], part_Q[g]
            )
        part_ll[g] = ll
    total = 0.0
    for g in range(G):
        total += part_ll[g]
    nk, S, Q = _reduce(part_nk, part_S, part_Q, smode)
    return total, nk, S, Q


@njit(cache=True, parallel=True, nogil=True)
def gaussian_accumulate_jit(X, W, means, shift, smode):
    """Weighted statistics ``(nk, S, Q)`` of X under given weights W (n, K)."""
    n, D = X.shape
    K = means.shape[0]
    G = min(N_GROUPS, n)
    per = (n + G - 1) // G
    K2, D2 = _q_shape(smode, K, D)
    part_nk = np.zeros((G, K))
    part_S = np.zeros((G, K, D))
    part_Q = np.zeros((G, K2, D2, D))
    for g in prange(G):
        xt = np.empty((D, BLOCK))
        dk = np.empty((D, BLOCK))
        wdk = np.empty((D, BLOCK))
        resp = np.empty((K, BLOCK))
        end = min(n, (g + 1) * per)
        for r0 in range(g * per, end, BLOCK):
            nb = min(BLOCK, end - r0)
            _load_block(X, r0, nb, xt)
            for b in range(nb):
                for k in range(K):
                    resp[k, b] = W[r0 + b, k]
            _block_stats(
                xt, nb, resp, means, shift, smode, dk, wdk, part_nk[g], part_S[g], part_Q[g]
            )
    return _reduce(part_nk, part_S, part_Q, smode)


@njit(cache=True, parallel=True, nogil=True)
def gaussian_logprob_jit(X, means, prec, logc, what, out2, out1):
    """Per-row log-densities, without temporaries beyond the outputs.

    ``what`` selects the output:

    * 0: ``out2[n, k] = logp[n, k]`` (joint log-density incl. ``logc``);
    * 1: ``out2`` = posterior probabilities, ``out1`` = row log-sum-exp;
    * 2: ``out1`` = row log-sum-exp only (``out2`` is not touched);
    * 3: ``out1`` = index of the most probable component (as float).
    """
    n, D = X.shape
    K = means.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    G = min(N_GROUPS * 4, n_blocks)
    per = (n_blocks + G - 1) // G
    for g in prange(G):
        xt = np.empty((D, BLOCK))
        dk = np.empty((D, BLOCK))
        yacc = np.empty(BLOCK)
        maha = np.empty(BLOCK)
        logp = np.empty((K, BLOCK))
        lse = np.empty(BLOCK)
        resp = np.empty((K, BLOCK))
        rowsum = np.empty(BLOCK)
        bits = np.empty((K, BLOCK), dtype=np.int64)
        for blk in range(g * per, min(n_blocks, (g + 1) * per)):
            r0 = blk * BLOCK
            nb = min(BLOCK, n - r0)
            _load_block(X, r0, nb, xt)
            _block_logprob(xt, nb, means, prec, logc, dk, yacc, maha, logp)
            if what == 0:
                for b in range(nb):
                    for k in range(K):
                        out2[r0 + b, k] = logp[k, b]
            elif what == 3:
                for b in range(nb):
                    best = 0
                    for k in range(1, K):
                        if logp[k, b] > logp[best, b]:
                            best = k
                    out1[r0 + b] = best
            else:
                _block_posterior(nb, logp, lse, resp, rowsum, bits)
                for b in range(nb):
                    out1[r0 + b] = lse[b]
                if what == 1:
                    for b in range(nb):
                        for k in range(K):
                            out2[r0 + b, k] = resp[k, b]


@njit(cache=True, parallel=True, nogil=True)
def gaussian_scaled_prob_jit(X, means, prec, logc, scaled, shift):
    """HMM emissions in one pass: ``shift[n] = max_k logp[n, k]`` and
    ``scaled[n, k] = exp(logp[n, k] - shift[n])`` (see :mod:`latentem.kernels.scaling`),
    with no (n, K) log-density array in between."""
    n, D = X.shape
    K = means.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    G = min(N_GROUPS * 4, n_blocks)
    per = (n_blocks + G - 1) // G
    for g in prange(G):
        xt = np.empty((D, BLOCK))
        dk = np.empty((D, BLOCK))
        yacc = np.empty(BLOCK)
        maha = np.empty(BLOCK)
        logp = np.empty((K, BLOCK))
        mx = np.empty(BLOCK)
        e = np.empty((K, BLOCK))
        bits = np.empty((K, BLOCK), dtype=np.int64)
        for blk in range(g * per, min(n_blocks, (g + 1) * per)):
            r0 = blk * BLOCK
            nb = min(BLOCK, n - r0)
            _load_block(X, r0, nb, xt)
            _block_logprob(xt, nb, means, prec, logc, dk, yacc, maha, logp)
            scale_block(logp, nb, r0, scaled, shift, mx, e, bits)


@njit(cache=True, nogil=True)
def cov_to_prec_chol_jit(cov):
    """Upper-triangular Cholesky factors of the precisions of ``cov`` (K, D, D).

    ``prec[k] = inv(L_k).T`` with ``cov[k] = L_k @ L_k.T`` (scikit-learn's
    ``precisions_cholesky_``). Returns ``(prec, bad)``, where ``bad`` is the
    index of the first matrix that is not positive definite, or -1.
    """
    K, D, _ = cov.shape
    prec = np.zeros((K, D, D))
    L = np.zeros((D, D))
    for k in range(K):
        L[:, :] = 0.0
        for j in range(D):
            s = cov[k, j, j]
            for p in range(j):
                s -= L[j, p] * L[j, p]
            if not (s > 0.0) or not np.isfinite(s):
                return prec, k
            ljj = np.sqrt(s)
            L[j, j] = ljj
            for i in range(j + 1, D):
                t = cov[k, i, j]
                for p in range(j):
                    t -= L[i, p] * L[j, p]
                L[i, j] = t / ljj
        # inv(L) by forward substitution, column by column; prec = inv(L).T
        for c in range(D):
            for i in range(c, D):
                t = 1.0 if i == c else 0.0
                for p in range(c, i):
                    t -= L[i, p] * prec[k, c, p]
                prec[k, c, i] = t / L[i, i]
    return prec, -1


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
gaussian_estep = Kernel(gaussian_estep_jit, small.gaussian_estep)
gaussian_accumulate = Kernel(gaussian_accumulate_jit, small.gaussian_accumulate)
gaussian_logprob = Kernel(gaussian_logprob_jit, small.gaussian_logprob)
gaussian_scaled_prob = Kernel(gaussian_scaled_prob_jit, small.gaussian_scaled_prob)
# (large matrices compiled: the NumPy version holds a D x D factor per call)
cov_to_prec_chol = Kernel(cov_to_prec_chol_jit, small.cov_to_prec_chol, max_cols=64)
