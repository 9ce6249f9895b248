"""numba kernels for Gaussian components on rows with missing entries (NaN).

For a row with observed part o and missing part m, under a component with
mean ``mu``, covariance ``S`` and precision ``P = S^-1``:

* the conditional distribution of the gaps is
  ``x_m | x_o ~ N(mu_m - P_mm^-1 P_mo (x_o - mu_o), P_mm^-1)``, so only the
  small ``n_mis x n_mis`` block ``P_mm`` is factorised (``L L^T = P_mm``);
* the log-density is the marginal ``N(x_o; mu_o, S_oo)``: its Mahalanobis
  term equals the full one of the row completed with its conditional mean,
  and ``log det S_oo = log det S + log det P_mm``;
* statistics fill the gaps with the conditional mean and add the
  conditional covariance ``P_mm^-1`` to the second moments (leaving it out
  biases variances down).

Every kernel takes the rows' missingness *patterns*: ``pat_idx[p]`` lists
pattern p's missing columns first, then its observed ones (each in column
order), and ``pat_nmis[p]`` says how many are missing. The per-pattern
factors (``Linv = L^-1``, ``G = Linv P_mo``, ``Cmm = P_mm^-1`` and
``log det P_mm``) are computed either per row (the *per-row path*: with
cells missing at random nearly every row has its own pattern) or once per
pattern by :func:`pattern_factors` and looked up (the *grouped path*). Both
paths run the same arithmetic on the same numbers in the same order, so
they give bit-identical results.

Statistics use the layout of :mod:`latentem.kernels.gaussian` (first moments
about ``means``; ``smode`` 0 full per component, 1 one total matrix about
``shift``, 2 per-component diagonal) so they add to the complete rows'
statistics. Rows are split into a fixed number of contiguous blocks whose
partial sums are added in order, so threads never change the result.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = [
    "pattern_factors",
    "missing_logprob",
    "missing_estep",
    "conditional_fill",
    "conditional_draw",
]

N_GROUPS = 16
_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _factor(Pk, idx, n_mis, Lw, Linv, G, Cmm):
    """Factors of one pattern under one component (precision ``Pk``).

    Fills ``Linv[:n_mis, :n_mis] = L^-1`` (``L L^T = P_mm``),
    ``G[:n_mis, :n_obs] = Linv P_mo`` and ``Cmm[:n_mis, :n_mis] = P_mm^-1``.
    ``Lw`` is workspace. Returns ``log det P_mm`` (NaN if not positive definite).
    """
    D = idx.shape[0]
    n_obs = D - n_mis
    for i in range(n_mis):
        for j in range(i + 1):
            s = Pk[idx[i], idx[j]]
            for t in range(j):
                s -= Lw[i, t] * Lw[j, t]
            if i == j:
                if not s > 0.0:
                    return math.nan
                Lw[i, i] = math.sqrt(s)
            else:
                Lw[i, j] = s / Lw[j, j]
    logdet = 0.0
    for i in range(n_mis):
        logdet += 2.0 * math.log(Lw[i, i])
    for j in range(n_mis):
        for i in range(j):
            Linv[i, j] = 0.0
        Linv[j, j] = 1.0 / Lw[j, j]
        for i in range(j + 1, n_mis):
            s = 0.0
            for t in range(j, i):
                s -= Lw[i, t] * Linv[t, j]
            Linv[i, j] = s / Lw[i, i]
    for a in range(n_mis):
        for b in range(n_obs):
            ob = idx[n_mis + b]
            s = 0.0
            for t in range(a + 1):
                s += Linv[a, t] * Pk[idx[t], ob]
            G[a, b] = s
    for a in range(n_mis):
        for c in range(a, n_mis):
            s = 0.0
            for t in range(c, n_mis):
                s += Linv[t, a] * Linv[t, c]
            Cmm[a, c] = s
            Cmm[c, a] = s
    return logdet


@njit(cache=True, nogil=True)
def _complete(x, mu, idx, n_mis, Linv, G, c, d):
    """Deviation ``d = xhat - mu`` of the row completed with its conditional mean.

    ``c`` (n_mis,) receives ``G (x_o - mu_o)``; the gaps get ``-Linv^T c``.
    """
    D = idx.shape[0]
    n_obs = D - n_mis
    for b in range(n_obs):
        j = idx[n_mis + b]
        d[j] = x[j] - mu[j]
    for a in range(n_mis):
        s = 0.0
        for b in range(n_obs):
            s += G[a, b] * d[idx[n_mis + b]]
        c[a] = s
    for a in range(n_mis):
        s = 0.0
        for t in range(a, n_mis):
            s -= Linv[t, a] * c[t]
        d[idx[a]] = s


@njit(cache=True, nogil=True)
def _maha(d, U):
    """``d^T P d`` with ``P = U U^T``, ``U`` upper triangular."""
    D = d.shape[0]
    out = 0.0
    for j in range(D):
        s = 0.0
        for i in range(j + 1):
            s += d[i] * U[i, j]
        out += s * s
    return out


@njit(cache=True, nogil=True)
def _get_factors(grouped, p, k, P, idx, n_mis, tabs, bufs):
    """This row's factors for component k: looked up (grouped) or computed into buffers."""
    Linv_t, G_t, Cmm_t, ldp_t = tabs
    Lw, Linv_b, G_b, Cmm_b = bufs
    if grouped:
        return Linv_t[p, k], G_t[p, k], Cmm_t[p, k], ldp_t[p, k]
    ld = _factor(P[k], idx, n_mis, Lw, Linv_b[k], G_b[k], Cmm_b[k])
    return Linv_b[k], G_b[k], Cmm_b[k], ld


@njit(cache=True, parallel=True)
def pattern_factors(P, pat_idx, pat_nmis):
    """Factors of every pattern under every component (the grouped path).

    Returns ``(Linv, G, Cmm, logdet_Pmm)`` of shapes (n_pat, K, D, D) x 3 and
    (n_pat, K); only the leading ``n_mis x n_mis`` (``n_mis x n_obs`` for G)
    blocks are meaningful.
    """
    n_pat, D = pat_idx.shape
    K = P.shape[0]
    Linv = np.zeros((n_pat, K, D, D))
    G = np.zeros((n_pat, K, D, D))
    Cmm = np.zeros((n_pat, K, D, D))
    ldp = np.empty((n_pat, K))
    for p in prange(n_pat):
        Lw = np.empty((D, D))
        for k in range(K):
            ldp[p, k] = _factor(P[k], pat_idx[p], pat_nmis[p], Lw, Linv[p, k], G[p, k], Cmm[p, k])
    return Linv, G, Cmm, ldp


@njit(cache=True, parallel=True)
def missing_logprob(X, rows, pat, pat_idx, pat_nmis, means, U, P, logdetS, tabs):
    """(len(rows), K) marginal log-densities of the observed part of X[rows].

    ``tabs`` are the tables of :func:`pattern_factors` (grouped path) or
    arrays with a leading dimension of 0 (per-row path).
    """
    K, D = means.shape
    n = rows.shape[0]
    grouped = tabs[0].shape[0] > 0
    out = np.empty((n, K))
    nb = max(1, min(N_GROUPS, n))
    per = (n + nb - 1) // nb
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        G_b = np.empty((K, D, D))
        Cmm_b = np.empty((K, D, D))
        bufs = (Lw, Linv_b, G_b, Cmm_b)
        c = np.empty(D)
        d = np.empty(D)
        x = np.empty(D)
        for r in range(g * per, min(n, (g + 1) * per)):
            for j in range(D):
                x[j] = X[rows[r], j]
            p = pat[r]
            idx = pat_idx[p]
            n_mis = pat_nmis[p]
            n_obs = D - n_mis
            for k in range(K):
                Li, Gk, _, ld = _get_factors(grouped, p, k, P, idx, n_mis, tabs, bufs)
                _complete(x, means[k], idx, n_mis, Li, Gk, c, d)
                maha = _maha(d, U[k])
                out[r, k] = -0.5 * (n_obs * _LOG_2PI + maha + logdetS[k] + ld)
    return out


@njit(cache=True, parallel=True)
def missing_estep(
    X,
    rows,
    pat,
    pat_idx,
    pat_nmis,
    means,
    U,
    P,
    logdetS,
    tabs,
    log_w,
    W,
    use_logw,
    shift,
    smode,
    cond_cov=True,
):
    """Statistics ``(ll, nk, S, Q)`` of the rows X[rows] with gaps.

    With ``use_logw`` the row weights are the posteriors under mixture
    log-weights ``log_w`` (K,) and ``ll`` is the total mixture
    log-likelihood of the observed parts; otherwise the weights are ``W``
    (len(rows), K) and ``ll`` is 0. Gaps are filled with conditional means
    and conditional covariances are added to the second moments
    (``cond_cov=False`` leaves them out: only for showing, in the tests, the
    bias that causes).
    """
    K, D = means.shape
    n = rows.shape[0]
    grouped = tabs[0].shape[0] > 0
    nb = max(1, min(N_GROUPS, n))
    per = (n + nb - 1) // nb
    KQ = K if smode != 1 else 1
    DQ = D if smode != 2 else 1
    part_ll = np.zeros(nb)
    part_nk = np.zeros((nb, K))
    part_S = np.zeros((nb, K, D))
    part_Q = np.zeros((nb, KQ, DQ, D))
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        G_b = np.empty((K, D, D))
        Cmm_b = np.empty((K, D, D))
        bufs = (Lw, Linv_b, G_b, Cmm_b)
        c = np.empty(D)
        dk = np.empty((K, D))
        lp = np.empty(K)
        w = np.empty(K)
        x = np.empty(D)
        Qloc = np.zeros((KQ, DQ, D))  # a block-local sum: much faster than part_Q[g]
        for r in range(g * per, min(n, (g + 1) * per)):
            for j in range(D):
                x[j] = X[rows[r], j]
            p = pat[r]
            idx = pat_idx[p]
            n_mis = pat_nmis[p]
            n_obs = D - n_mis
            for k in range(K):
                Li, Gk, _, ld = _get_factors(grouped, p, k, P, idx, n_mis, tabs, bufs)
                _complete(x, means[k], idx, n_mis, Li, Gk, c, dk[k])
                if use_logw:
                    maha = _maha(dk[k], U[k])
                    lp[k] = log_w[k] - 0.5 * (n_obs * _LOG_2PI + maha + logdetS[k] + ld)
            if use_logw:
                m = -np.inf
                for k in range(K):
                    if lp[k] > m:
                        m = lp[k]
                tot = 0.0
                for k in range(K):
                    w[k] = math.exp(lp[k] - m)
                    tot += w[k]
                for k in range(K):
                    w[k] /= tot
                part_ll[g] += m + math.log(tot)
            else:
                for k in range(K):
                    w[k] = W[r, k]
            for k in range(K):
                wk = w[k]
                if wk == 0.0:
                    continue
                if grouped:
                    Ck = tabs[2][p, k]
                else:
                    Ck = Cmm_b[k]
                d = dk[k]
                part_nk[g, k] += wk
                for j in range(D):
                    part_S[g, k, j] += wk * d[j]
                if smode == 2:
                    Qk = Qloc[k, 0]
                    for j in range(D):
                        Qk[j] += wk * d[j] * d[j]
                    if cond_cov:
                        for a in range(n_mis):
                            Qk[idx[a]] += wk * Ck[a, a]
                else:
                    q = 0 if smode == 1 else k
                    if smode == 1:
                        for j in range(D):
                            c[j] = d[j] + means[k, j] - shift[j]
                    else:
                        for j in range(D):
                            c[j] = d[j]
                    Qq = Qloc[q]  # upper triangle only; mirrored at the end
                    for i in range(D):
                        ti = wk * c[i]
                        for j in range(i, D):
                            Qq[i, j] += ti * c[j]
                    if cond_cov:  # idx[:n_mis] is increasing, so b >= a is j >= i
                        for a in range(n_mis):
                            for b in range(a, n_mis):
                                Qq[idx[a], idx[b]] += wk * Ck[a, b]
        part_Q[g] = Qloc
    ll = 0.0
    nk = np.zeros(K)
    S = np.zeros((K, D))
    Q = np.zeros((KQ, DQ, D))
    for g in range(nb):
        ll += part_ll[g]
        nk += part_nk[g]
        S += part_S[g]
        Q += part_Q[g]
    if smode != 2:
        for q in range(KQ):
            for i in range(D):
                for j in range(i + 1, D):
                    Q[q, j, i] = Q[q, i, j]
    return ll, nk, S, Q


@njit(cache=True, parallel=True)
def conditional_fill(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, W):
    """Rows X[rows] with each gap replaced by ``sum_k W[r, k] E[x_m | x_o, k]``."""
    K, D = means.shape
    n = rows.shape[0]
    grouped = tabs[0].shape[0] > 0
    out = np.empty((n, D))
    nb = max(1, min(N_GROUPS, n))
    per = (n + nb - 1) // nb
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        G_b = np.empty((K, D, D))
        Cmm_b = np.empty((K, D, D))
        bufs = (Lw, Linv_b, G_b, Cmm_b)
        c = np.empty(D)
        d = np.empty(D)
        x = np.empty(D)
        for r in range(g * per, min(n, (g + 1) * per)):
            for j in range(D):
                x[j] = X[rows[r], j]
            p = pat[r]
            idx = pat_idx[p]
            n_mis = pat_nmis[p]
            for j in range(D):
                out[r, j] = x[j]
            for a in range(n_mis):
                out[r, idx[a]] = 0.0
            for k in range(K):
                wk = W[r, k]
                if wk == 0.0:
                    continue
                Li, Gk, _, _ = _get_factors(grouped, p, k, P, idx, n_mis, tabs, bufs)
                _complete(x, means[k], idx, n_mis, Li, Gk, c, d)
                for a in range(n_mis):
                    out[r, idx[a]] += wk * (means[k, idx[a]] + d[idx[a]])
    return out


@njit(cache=True, parallel=True)
def conditional_draw(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, comp, Z):
    """Rows X[rows] with the gaps drawn from ``N(E[x_m | x_o, k], Cov[x_m | x_o, k])``.

    ``comp[r]`` is row r's component and ``Z[r, :n_mis]`` its standard
    normal draws: the gaps are ``mu_m + Linv^T (Z - c)``, whose covariance
    is ``Linv^T Linv = P_mm^-1``.
    """
    K, D = means.shape
    n = rows.shape[0]
    grouped = tabs[0].shape[0] > 0
    out = np.empty((n, D))
    nb = max(1, min(N_GROUPS, n))
    per = (n + nb - 1) // nb
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        G_b = np.empty((K, D, D))
        Cmm_b = np.empty((K, D, D))
        bufs = (Lw, Linv_b, G_b, Cmm_b)
        c = np.empty(D)
        d = np.empty(D)
        x = np.empty(D)
        for r in range(g * per, min(n, (g + 1) * per)):
            for j in range(D):
                x[j] = X[rows[r], j]
                out[r, j] = x[j]
            p = pat[r]
            idx = pat_idx[p]
            n_mis = pat_nmis[p]
            k = comp[r]
            Li, Gk, _, _ = _get_factors(grouped, p, k, P, idx, n_mis, tabs, bufs)
            _complete(x, means[k], idx, n_mis, Li, Gk, c, d)
            for a in range(n_mis):
                s = 0.0
                for t in range(a, n_mis):
                    s += Li[t, a] * (Z[r, t] - c[t])
                out[r, idx[a]] = means[k, idx[a]] + s
    return out
