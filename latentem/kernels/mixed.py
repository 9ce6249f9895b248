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
from latentem.kernels.kalman_linalg import _cholesky, _solve_vec

__all__ = [
    "categorical_counts",
    "categorical_logprob",
    "cg_rows",
    "cg_stats",
    "pattern_tables",
    "spd_solve",
]


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


# ---------------------------------------------------------------------- conditional Gaussian
# Continuous block: under class k and levels c (one per categorical column),
# x ~ N(mu[k] + sum_d B[off[d] + c_d], S_k). A row's latent state is its class
# and the levels of its categorical gaps, enumerated exactly (mixed radix over
# the missing columns). Per continuous gap pattern p (``pat``) the tables hold,
# padded to (Dc, Dc): ``prec`` the precision of the observed block, ``reg``
# the regression of the gaps on the observed cells, ``ccov`` the gaps'
# conditional covariance; ``cst`` is -0.5 (log det S_oo + n_obs log 2 pi).


@njit(cache=True)
def _row_levels(code, nlev, m, lev):
    """Levels of one row: observed codes, and the gaps decoded from combination m."""
    for d in range(code.size):
        if code[d] >= 0:
            lev[d] = code[d]
        else:
            lev[d] = m % nlev[d]
            m //= nlev[d]


@njit(cache=True)
def _row_base(code, B, off, base):
    """Sum of the effects of a row's observed levels (the same in every state)."""
    base[:] = 0.0
    for d in range(code.size):
        if code[d] >= 0:
            for j in range(base.size):
                base[j] += B[off[d] + code[d], j]


@njit(cache=True)
def _row_mean(x, mu_k, base, B, off, code, lev, mean, res):
    """Mean of the continuous block given class and levels, and the observed residuals
    (0 at gaps)."""
    for j in range(x.size):
        v = mu_k[j] + base[j]
        for d in range(lev.size):
            if code[d] < 0:
                v += B[off[d] + lev[d], j]
        mean[j] = v
        res[j] = 0.0 if np.isnan(x[j]) else x[j] - v


@njit(cache=True)
def _row_joint(x, code, p, prec, cst, mu, B, off, nlev, logp, logw, lev, base, mean, res, buf):
    """Log-joint of a row's observed cells with every (class, gap levels) state into
    ``buf[k * M + m]``; returns M, the number of gap combinations."""
    M = 1
    for d in range(code.size):
        if code[d] < 0:
            M *= nlev[d]
    K, Dc = mu.shape
    _row_base(code, B, off, base)
    for k in range(K):
        for m in range(M):
            _row_levels(code, nlev, m, lev)
            s = logw[k] + cst[k, p]
            for d in range(code.size):
                s += logp[k, d, lev[d]]
            _row_mean(x, mu[k], base, B, off, code, lev, mean, res)
            q = 0.0
            for a in range(Dc):
                if res[a] != 0.0:
                    t = 0.0
                    for b in range(Dc):
                        t += prec[k, p, a, b] * res[b]
                    q += res[a] * t
            buf[k * M + m] = s - 0.5 * q
    return M


@njit(cache=True)
def _lse(buf, size):
    top = -np.inf
    for t in range(size):
        top = max(top, buf[t])
    s = 0.0
    for t in range(size):
        s += np.exp(buf[t] - top)
    return top + np.log(s)


@njit(cache=True)
def _row_fill(x, k, p, reg, mean, res, xhat):
    """The continuous block with its gaps at their conditional mean given state k."""
    for j in range(x.size):
        if np.isnan(x[j]):
            v = mean[j]
            for b in range(x.size):
                v += reg[k, p, j, b] * res[b]
            xhat[j] = v
        else:
            xhat[j] = x[j]


@njit(cache=True, parallel=True, fastmath=False)
def _cg_stats_blocks(
    X, codes, pat, prec, reg, ccov, cst, mu, B, off, nlev, logp, logw, n_states, n_blocks
):
    n, Dc = X.shape
    K, D = mu.shape[0], codes.shape[1]
    Z = 1 + B.shape[0]
    L = logp.shape[2]
    ll = np.zeros(n)
    szz = np.zeros((n_blocks, K, Z, Z))
    sxz = np.zeros((n_blocks, K, Z, Dc))
    sxx = np.zeros((n_blocks, K, Dc, Dc))
    cnt = np.zeros((n_blocks, K, D, L))
    size = (n + n_blocks - 1) // n_blocks
    for blk in prange(n_blocks):
        buf = np.empty(n_states)
        lev = np.empty(D, np.int64)
        mean, res, xhat, base = np.empty(Dc), np.empty(Dc), np.empty(Dc), np.empty(Dc)
        for i in range(blk * size, min(n, (blk + 1) * size)):
            x, code, p = X[i], codes[i], pat[i]
            M = _row_joint(
                x, code, p, prec, cst, mu, B, off, nlev, logp, logw, lev, base, mean, res, buf
            )
            top = _lse(buf, K * M)
            ll[i] = top
            complete = True
            for j in range(Dc):
                complete = complete and not np.isnan(x[j])
            for k in range(K):
                for m in range(M):
                    w = np.exp(buf[k * M + m] - top)
                    if w == 0.0:
                        continue
                    _row_levels(code, nlev, m, lev)
                    _row_mean(x, mu[k], base, B, off, code, lev, mean, res)
                    _row_fill(x, k, p, reg, mean, res, xhat)
                    szz[blk, k, 0, 0] += w
                    for j in range(Dc):
                        sxz[blk, k, 0, j] += w * xhat[j]
                    for d in range(D):
                        a = 1 + off[d] + lev[d]
                        cnt[blk, k, d, lev[d]] += w
                        szz[blk, k, 0, a] += w
                        szz[blk, k, a, 0] += w
                        for e in range(D):
                            szz[blk, k, a, 1 + off[e] + lev[e]] += w
                        for j in range(Dc):
                            sxz[blk, k, a, j] += w * xhat[j]
                    if not complete:
                        for a in range(Dc):
                            for b in range(Dc):
                                sxx[blk, k, a, b] += w * xhat[a] * xhat[b]
            # the gaps' conditional covariance depends on the class only, and so does
            # the completed block of a row without continuous gaps
            for k in range(K):
                wk = 0.0
                for m in range(M):
                    wk += np.exp(buf[k * M + m] - top)
                for a in range(Dc):
                    for b in range(Dc):
                        sxx[blk, k, a, b] += wk * ccov[k, p, a, b]
                        if complete:
                            sxx[blk, k, a, b] += wk * x[a] * x[b]
    return ll, szz.sum(axis=0), sxz.sum(axis=0), sxx.sum(axis=0), cnt.sum(axis=0)


def _n_states(codes, nlev, K):
    """Largest number of (class, gap levels) states of any row."""
    gaps = codes < 0
    return int(K * np.max(np.prod(np.where(gaps, nlev[None, :], 1), axis=1), initial=1))


def cg_stats_jit(X, codes, pat, prec, reg, ccov, cst, mu, B, off, nlev, logp, logw):
    """E-step of the conditional-Gaussian latent-class model: each row's log-likelihood
    (n,) and the expected statistics per class: ``szz`` (K, Z, Z) and ``sxz`` (K, Z, Dc)
    of the design z = (1, one-hot levels), ``sxx`` (K, Dc, Dc) of the completed
    continuous block (conditional covariance of its gaps included) and the level
    counts (K, D, L), categorical gaps included. Rows are summed in a fixed number of
    blocks, in order, so the result does not depend on the number of threads."""
    states = _n_states(codes, nlev, mu.shape[0])
    return _cg_stats_blocks(
        X, codes, pat, prec, reg, ccov, cst, mu, B, off, nlev, logp, logw, states, 16
    )


@njit(cache=True, parallel=True, fastmath=False)
def _cg_rows(X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, u, n_states):
    n, Dc = X.shape
    K, D = mu.shape[0], codes.shape[1]
    L = logp.shape[2]
    resp = np.zeros((n, K))
    fill = np.zeros((n, Dc))
    probs = np.zeros((n, D, L))
    drawn_x = np.zeros((n, Dc))
    drawn_k = np.zeros(n, np.int64)
    drawn_lev = np.zeros((n, D), np.int64)
    for i in prange(n):
        buf = np.empty(n_states)
        lev = np.empty(D, np.int64)
        mean, res, xhat, base = np.empty(Dc), np.empty(Dc), np.empty(Dc), np.empty(Dc)
        x, code, p = X[i], codes[i], pat[i]
        M = _row_joint(
            x, code, p, prec, cst, mu, B, off, nlev, logp, logw, lev, base, mean, res, buf
        )
        top = _lse(buf, K * M)
        acc, chosen = 0.0, K * M - 1
        for t in range(K * M):
            acc += np.exp(buf[t] - top)
            if acc > u[i]:
                chosen = t
                break
        for k in range(K):
            for m in range(M):
                w = np.exp(buf[k * M + m] - top)
                _row_levels(code, nlev, m, lev)
                _row_mean(x, mu[k], base, B, off, code, lev, mean, res)
                _row_fill(x, k, p, reg, mean, res, xhat)
                resp[i, k] += w
                for j in range(Dc):
                    fill[i, j] += w * xhat[j]
                for d in range(D):
                    probs[i, d, lev[d]] += w
                if k * M + m == chosen:
                    drawn_k[i] = k
                    for j in range(Dc):
                        drawn_x[i, j] = xhat[j]
                    for d in range(D):
                        drawn_lev[i, d] = lev[d]
    return resp, fill, probs, drawn_k, drawn_x, drawn_lev


def cg_rows_jit(X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, u):
    """Per row, under the conditional-Gaussian latent-class model: class posteriors
    (n, K), the continuous block filled with conditional means (n, Dc), level
    probabilities (n, D, L), and one state drawn with the uniforms ``u`` (n,): its
    class (n,), the continuous block at that state's conditional mean (n, Dc) and
    its levels (n, D)."""
    states = _n_states(codes, nlev, mu.shape[0])
    return _cg_rows(X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, u, states)


# always compiled: the NumPy reference (enumerating each row's states in Python) is
# for the tests only
cg_stats = Kernel(cg_stats_jit, None, arg=None)
cg_rows = Kernel(cg_rows_jit, None, arg=None)


# ---------------------------------------------------------------------- small dense algebra
# Written out rather than calling LAPACK: these matrices have tens to a few hundred
# rows, and a multithreaded BLAS on a busy machine took 100x longer on them than
# these loops (waiting for descheduled threads).


@njit(cache=True)
def _factor(A, n):
    """Lower Cholesky factor of A[:n, :n]; raises on a matrix that is not positive
    definite."""
    L = np.zeros((n, n))
    if not _cholesky(A, n, L):
        raise ValueError("not positive definite")
    return L


@njit(cache=True)
def _chol_solve(L, b):
    """Solve L L^T x = b for the columns of b (n, m)."""
    n, m = b.shape
    x = np.empty((n, m))
    col = np.empty(n)
    for c in range(m):
        col[:] = b[:, c]
        _solve_vec(L, n, col)
        x[:, c] = col
    return x


@njit(cache=True)
def spd_solve_jit(A, b):
    """x with A x = b for a symmetric positive definite A (n, n) and b (n, m)."""
    return _chol_solve(_factor(A, A.shape[0]), b)


@njit(cache=True)
def pattern_tables_jit(cov, observed):
    """For each class's covariance (K, Dc, Dc) and each gap pattern (npat, Dc) of
    observed flags: ``(prec, reg, ccov, cst)`` as :func:`cg_stats` reads them."""
    K, Dc = cov.shape[0], cov.shape[1]
    npat = observed.shape[0]
    prec = np.zeros((K, npat, Dc, Dc))
    reg = np.zeros((K, npat, Dc, Dc))
    ccov = np.zeros((K, npat, Dc, Dc))
    cst = np.zeros((K, npat))
    o = np.empty(Dc, np.int64)
    mi = np.empty(Dc, np.int64)
    for p in range(npat):
        no, nm = 0, 0
        for j in range(Dc):
            if observed[p, j]:
                o[no] = j
                no += 1
            else:
                mi[nm] = j
                nm += 1
        for k in range(K):
            S = np.empty((no, no))
            for a in range(no):
                for b in range(no):
                    S[a, b] = cov[k, o[a], o[b]]
            L = _factor(S, no)
            inv = _chol_solve(L, np.eye(no))
            logdet = 0.0
            for a in range(no):
                logdet += 2.0 * np.log(L[a, a])
                for b in range(no):
                    prec[k, p, o[a], o[b]] = inv[a, b]
            cst[k, p] = -0.5 * (logdet + no * np.log(2.0 * np.pi))
            for a in range(nm):
                for b in range(no):  # R = S_mo S_oo^-1
                    s = 0.0
                    for t in range(no):
                        s += cov[k, mi[a], o[t]] * inv[t, b]
                    reg[k, p, mi[a], o[b]] = s
            for a in range(nm):
                for b in range(nm):  # S_mm - R S_om
                    s = cov[k, mi[a], mi[b]]
                    for t in range(no):
                        s -= reg[k, p, mi[a], o[t]] * cov[k, o[t], mi[b]]
                    ccov[k, p, mi[a], mi[b]] = s
    return prec, reg, ccov, cst


spd_solve = Kernel(spd_solve_jit, None, arg=None)
pattern_tables = Kernel(pattern_tables_jit, None, arg=None)
