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
factors (``Linv = L^-1``, ``Cmm = P_mm^-1`` and ``log det P_mm``) are
computed either per row (the *per-row path*: with cells missing at random
nearly every row has its own pattern) or once per pattern by
:func:`pattern_factors` and looked up (the *grouped path*). Both paths run
the same arithmetic on the same numbers in the same order, so they give
bit-identical results. Per row, the conditional mean costs one pass over
the gaps' rows of ``P`` (``P_mo (x_o - mu_o)``) and two small triangular
products; the Mahalanobis term and the second moments are ``D^2 / 2`` each,
all on contiguous rows.

Statistics use the layout of :mod:`latentem.kernels.gaussian` (first moments
about ``means``; ``smode`` 0 full per component, 1 one total matrix about
``shift``, 2 per-component diagonal) so they add to the complete rows'
statistics. Rows are split into a fixed number of contiguous blocks whose
partial sums are added in order, so threads never change the result.
"""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange

__all__ = [
    "available_case_cov",
    "pattern_factors",
    "missing_logprob",
    "missing_estep",
    "conditional_fill",
    "conditional_draw",
]

N_GROUPS = 16
_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _factor(Pk, idx, n_mis, Lw, Linv):
    """Cholesky factor of one pattern's ``P_mm`` under one component (precision ``Pk``).

    Fills ``Linv[:n_mis, :n_mis] = L^-1`` (``L L^T = P_mm``; ``Lw`` is
    workspace) and returns ``log det P_mm`` (NaN if not positive definite).
    """
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
    # one log per row, not one per gap (logs are the slowest step for a few gaps);
    # the product is folded into the sum before it can overflow or underflow
    logdet = 0.0
    prod = 1.0
    for i in range(n_mis):
        prod *= Lw[i, i]
        if not 1e-150 < prod < 1e150:
            logdet += 2.0 * math.log(prod)
            prod = 1.0
    logdet += 2.0 * math.log(prod)
    for j in range(n_mis):
        for i in range(j):
            Linv[i, j] = 0.0
        Linv[j, j] = 1.0 / Lw[j, j]
        for i in range(j + 1, n_mis):
            s = 0.0
            for t in range(j, i):
                s -= Lw[i, t] * Linv[t, j]
            Linv[i, j] = s / Lw[i, i]
    return logdet


@njit(cache=True, nogil=True)
def _cond_cov(Linv, n_mis, Cmm):
    """``Cmm[:n_mis, :n_mis] = P_mm^-1 = Linv^T Linv``, the gaps' conditional covariance."""
    for a in range(n_mis):
        for c in range(a, n_mis):
            s = 0.0
            for t in range(c, n_mis):
                s += Linv[t, a] * Linv[t, c]
            Cmm[a, c] = s
            Cmm[c, a] = s


@njit(cache=True, nogil=True)
def _complete(x, mu, Pk, idx, n_mis, Linv, c, d):
    """Deviation ``d = xhat - mu`` of the row completed with its conditional mean.

    ``c`` (n_mis,) receives ``Linv P_mo (x_o - mu_o)``; the gaps get
    ``-Linv^T c = -P_mm^-1 P_mo (x_o - mu_o)``. ``P_mo (x_o - mu_o)`` is taken
    as whole rows of ``Pk`` against ``d`` with zeros in the gaps: contiguous,
    and no more work than gathering the observed columns.
    """
    D = idx.shape[0]
    for j in range(D):
        d[j] = x[j] - mu[j]
    for a in range(n_mis):
        d[idx[a]] = 0.0
    for a in range(n_mis):
        row = Pk[idx[a]]
        v = 0.0
        for j in range(D):
            v += row[j] * d[j]
        c[a] = v
    # c = Linv v in place, from the last entry up: c[t] for t <= a still holds v[t]
    for a in range(n_mis - 1, -1, -1):
        s = 0.0
        for t in range(a + 1):
            s += Linv[a, t] * c[t]
        c[a] = s
    for a in range(n_mis):
        s = 0.0
        for t in range(a, n_mis):
            s -= Linv[t, a] * c[t]
        d[idx[a]] = s


@njit(cache=True, nogil=True)
def _maha(d, Lt):
    """``d^T P d`` with ``P = Lt^T Lt``, ``Lt`` lower triangular (rows read contiguously)."""
    D = d.shape[0]
    out = 0.0
    for j in range(D):
        row = Lt[j]
        s = 0.0
        for i in range(j + 1):
            s += row[i] * d[i]
        out += s * s
    return out


@njit(cache=True, nogil=True)
def _get_factors(grouped, p, k, P, idx, n_mis, tabs, Lw, Linv_b):
    """This row's ``(Linv, log det P_mm)`` for component k: looked up (grouped) or
    computed into ``Linv_b[k]`` (per-row)."""
    if grouped:
        return tabs[0][p, k], tabs[2][p, k]
    ld = _factor(P[k], idx, n_mis, Lw, Linv_b[k])
    return Linv_b[k], ld


@njit(cache=True, parallel=True)
def pattern_factors_jit(P, pat_idx, pat_nmis):
    """Factors of every pattern under every component (the grouped path).

    Returns ``(Linv, Cmm, logdet_Pmm)`` of shapes (n_pat, K, D, D) x 2 and
    (n_pat, K); only the leading ``n_mis x n_mis`` blocks are meaningful.
    """
    n_pat, D = pat_idx.shape
    K = P.shape[0]
    Linv = np.zeros((n_pat, K, D, D))
    Cmm = np.zeros((n_pat, K, D, D))
    ldp = np.empty((n_pat, K))
    for p in prange(n_pat):
        Lw = np.empty((D, D))
        for k in range(K):
            ldp[p, k] = _factor(P[k], pat_idx[p], pat_nmis[p], Lw, Linv[p, k])
            _cond_cov(Linv[p, k], pat_nmis[p], Cmm[p, k])
    return Linv, Cmm, ldp


@njit(cache=True, parallel=True)
def missing_logprob_jit(X, rows, pat, pat_idx, pat_nmis, means, Lt, P, logdetS, tabs):
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
                Li, ld = _get_factors(grouped, p, k, P, idx, n_mis, tabs, Lw, Linv_b)
                _complete(x, means[k], P[k], idx, n_mis, Li, c, d)
                maha = _maha(d, Lt[k])
                out[r, k] = -0.5 * (n_obs * _LOG_2PI + maha + logdetS[k] + ld)
    return out


@njit(cache=True, parallel=True)
def missing_estep_jit(
    X,
    rows,
    pat,
    pat_idx,
    pat_nmis,
    means,
    Lt,
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
    part_mis = np.zeros(nb, dtype=np.int64)
    # one normal: every weight is 1 and the rows' Mahalanobis terms add up to
    # tr(P Q) less the trace of the conditional covariances (sum of n_mis), so
    # they are taken from Q at the end instead of row by row
    summed_maha = use_logw and K == 1 and smode != 1
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        Cmm_b = np.empty((D, D))
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
            part_mis[g] += n_mis
            for k in range(K):
                Li, ld = _get_factors(grouped, p, k, P, idx, n_mis, tabs, Lw, Linv_b)
                _complete(x, means[k], P[k], idx, n_mis, Li, c, dk[k])
                if use_logw:
                    maha = 0.0 if summed_maha else _maha(dk[k], Lt[k])
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
                    Ck = tabs[1][p, k]
                elif cond_cov:  # the per-row path needs Cmm only here
                    _cond_cov(Linv_b[k], n_mis, Cmm_b)
                    Ck = Cmm_b
                else:
                    Ck = Cmm_b
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
                    e = d
                    if smode == 1:
                        for j in range(D):
                            c[j] = d[j] + means[k, j] - shift[j]
                        e = c
                    # whole rows: full-length loops vectorise, the triangle's do not
                    # (about 2x faster); the upper triangle is mirrored at the end
                    Qq = Qloc[q]
                    for i in range(D):
                        ti = wk * e[i]
                        Qi = Qq[i]
                        for j in range(D):
                            Qi[j] += ti * e[j]
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
    n_mis_total = 0
    for g in range(nb):
        n_mis_total += part_mis[g]
    if smode != 2:
        for q in range(KQ):
            for i in range(D):
                for j in range(i + 1, D):
                    Q[q, j, i] = Q[q, i, j]
    if summed_maha:
        tr = 0.0
        for i in range(D):
            if smode == 2:
                tr += P[0, i, i] * Q[0, 0, i]
            else:
                for j in range(D):
                    tr += P[0, i, j] * Q[0, i, j]
        if cond_cov:
            tr -= n_mis_total
        ll -= 0.5 * tr
    return ll, nk, S, Q


@njit(cache=True, nogil=True)
def _solve_pivoted(A, b, n):
    """Solve ``A[:n, :n] y = b[:n]`` in place (y in b; A is overwritten).

    Gaussian elimination with partial pivoting: the per-column regressions of
    :func:`conditional_fill` give a matrix that is not symmetric. Returns
    False when a pivot is zero or not finite.
    """
    for c in range(n):
        piv = c
        big = abs(A[c, c])
        for r in range(c + 1, n):
            if abs(A[r, c]) > big:
                piv = r
                big = abs(A[r, c])
        if not (big > 0.0 and big < math.inf):
            return False
        if piv != c:
            for t in range(c, n):
                A[c, t], A[piv, t] = A[piv, t], A[c, t]
            b[c], b[piv] = b[piv], b[c]
        for r in range(c + 1, n):
            f = A[r, c] / A[c, c]
            if f != 0.0:
                for t in range(c + 1, n):
                    A[r, t] -= f * A[c, t]
                b[r] -= f * b[c]
    for c in range(n - 1, -1, -1):
        s = b[c]
        for t in range(c + 1, n):
            s -= A[c, t] * b[t]
        b[c] = s / A[c, c]
    return True


@njit(cache=True, nogil=True)
def _regression_gaps(x, mu, Bk, idx, n_mis, A, b, d):
    """Gaps ``b[:n_mis] = x_m - mu_m`` from per-column regressions ``Bk`` (see
    :func:`conditional_fill`); False if the system is singular or a value not finite."""
    D = idx.shape[0]
    for j in range(D):
        d[j] = x[j] - mu[j]
    for a in range(n_mis):
        d[idx[a]] = 0.0
    for a in range(n_mis):
        row = Bk[idx[a]]
        v = 0.0
        for j in range(D):  # whole rows of B against d: zeros in the gaps
            v += row[j] * d[j]
        b[a] = v
        for c in range(n_mis):
            A[a, c] = -row[idx[c]]
        A[a, a] += 1.0
    if not _solve_pivoted(A, b, n_mis):
        return False
    for a in range(n_mis):
        if not abs(b[a]) < math.inf:
            return False
    return True


@njit(cache=True, parallel=True)
def conditional_fill_jit(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, W, B):
    """Rows X[rows] with each gap replaced by ``sum_k W[r, k] E[x_m | x_o, k]``.

    With per-column regressions ``B`` (K, D, D) (``B[k, j, j] = 0``; shape
    (0, D, D) for none), column j is predicted under component k as
    ``mu_j + B[k, j] (x - mu)`` instead, and a row's gaps ``m`` take the values
    that satisfy all their predictions at once, the observed entries held
    fixed: ``(I - B_mm) (x_m - mu_m) = B_mo (x_o - mu_o)``. With the exact
    regressions of a normal, ``B = I - diag(P)^-1 P``, that is the conditional
    mean, which is also what a row gets where the system is singular.
    """
    K, D = means.shape
    n = rows.shape[0]
    grouped = tabs[0].shape[0] > 0
    regress = B.shape[0] > 0
    out = np.empty((n, D))
    nb = max(1, min(N_GROUPS, n))
    per = (n + nb - 1) // nb
    for g in prange(nb):
        Lw = np.empty((D, D))
        Linv_b = np.empty((K, D, D))
        A = np.empty((D, D))
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
                if regress and _regression_gaps(x, means[k], B[k], idx, n_mis, A, c, d):
                    for a in range(n_mis):
                        out[r, idx[a]] += wk * (means[k, idx[a]] + c[a])
                    continue
                Li, _ = _get_factors(grouped, p, k, P, idx, n_mis, tabs, Lw, Linv_b)
                _complete(x, means[k], P[k], idx, n_mis, Li, c, d)
                for a in range(n_mis):
                    out[r, idx[a]] += wk * (means[k, idx[a]] + d[idx[a]])
    return out


@njit(cache=True, parallel=True)
def conditional_draw_jit(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, comp, Z):
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
            Li, _ = _get_factors(grouped, p, k, P, idx, n_mis, tabs, Lw, Linv_b)
            _complete(x, means[k], P[k], idx, n_mis, Li, c, d)
            for a in range(n_mis):
                s = 0.0
                for t in range(a, n_mis):
                    s += Li[t, a] * (Z[r, t] - c[t])
                out[r, idx[a]] = means[k, idx[a]] + s
    return out


@njit(cache=True)
def available_case_cov_jit(X):
    """Available-case (pairwise) moments of X, with NaN for gaps.

    Returns ``(mean, C, cnt)``: each column's mean over its observed values,
    the covariance of every pair of columns about those means over the rows
    where both are observed, and the number of those rows (D, D). Pairs never
    observed together get 0. One thread: a single pass of ``D^2`` per row,
    cheaper than a parallel region on a busy machine (see ``SERIAL_BELOW`` in
    :mod:`latentem.families.gaussian_missing`).
    """
    n, D = X.shape
    total = np.zeros(D)
    seen = np.zeros(D)
    for r in range(n):
        for j in range(D):
            v = X[r, j]
            if v == v:
                total[j] += v
                seen[j] += 1.0
    mean = np.zeros(D)
    for j in range(D):
        if seen[j] > 0:
            mean[j] = total[j] / seen[j]
    C = np.zeros((D, D))
    cnt = np.zeros((D, D))
    z = np.empty(D)
    o = np.empty(D)
    for r in range(n):
        for j in range(D):  # gaps as zeros: the loops below have no branch
            v = X[r, j]
            observed = v == v
            z[j] = v - mean[j] if observed else 0.0
            o[j] = 1.0 if observed else 0.0
        for i in range(D):
            if o[i] == 0.0:
                continue
            Ci = C[i]
            ci = cnt[i]
            zi = z[i]
            for j in range(D):
                Ci[j] += zi * z[j]
                ci[j] += o[j]
    for i in range(D):
        for j in range(D):
            if cnt[i, j] > 0:
                C[i, j] /= cnt[i, j]
    return mean, C, cnt


# Public kernels: NumPy below the small-input threshold (rows of X taken), compiled above.
available_case_cov = Kernel(available_case_cov_jit, small.available_case_cov)
# The tables feed the compiled kernels, whose grouped and per-row paths agree bit for bit
# only with compiled tables; the NumPy kernels factorise per pattern themselves.
pattern_factors = Kernel(pattern_factors_jit, small.pattern_factors, arg=None)
missing_logprob = Kernel(missing_logprob_jit, small.missing_logprob, arg=1)
missing_estep = Kernel(missing_estep_jit, small.missing_estep, arg=1)
conditional_fill = Kernel(conditional_fill_jit, small.conditional_fill, arg=1)
conditional_draw = Kernel(conditional_draw_jit, small.conditional_draw, arg=1)
