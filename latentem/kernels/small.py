"""NumPy versions of the kernels, for inputs too small to repay compiling them.

Each function here takes the arguments of the compiled kernel of the same
name and returns the same results (up to rounding): see
:mod:`latentem.kernels._dispatch` for when each one runs. They are
vectorised over rows (Gaussian and discrete kernels) or over sequences, one
time step at a time (HMM kernels), and convert their inputs to float64 at the
edge, as the compiled kernels accumulate in float64.
"""

from __future__ import annotations

import math

import numpy as np

#: Shifted log-probabilities below this give scaled probabilities of exactly
#: zero (as :data:`latentem.kernels.scaling.FLUSH`).
FLUSH = -500.0


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _exp_flushed(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` for ``x <= 0``, exactly zero below :data:`FLUSH`."""
    e = np.exp(x)
    e[x < FLUSH] = 0.0
    return e


# ------------------------------------------------------------------ Gaussian
def _gauss_logp(X, means, prec, logc):
    """(n, K) ``logc[k] - 0.5 |(x - means[k]) @ prec[k]|^2`` (see
    :mod:`latentem.kernels.gaussian` for the layouts)."""
    X = _f64(X)
    n = X.shape[0]
    K = means.shape[0]
    out = np.empty((n, K))
    diag = prec.shape[1] == 1
    for k in range(K):
        y = X - means[k]
        if diag:
            y *= prec[k, 0]
        else:
            y = y @ prec[k]
        out[:, k] = logc[k] - 0.5 * np.einsum("ij,ij->i", y, y)
    return out


def _posterior(logp):
    """Responsibilities and row log-sum-exps of (n, K) log-densities; a row
    where every entry is ``-inf`` gets even responsibilities and ``-inf``."""
    K = logp.shape[1]
    m = logp.max(axis=1)
    bad = m == -np.inf
    e = _exp_flushed(logp - np.where(bad, 0.0, m)[:, None])
    s = e.sum(axis=1)
    s[bad] = 1.0
    with np.errstate(divide="ignore"):
        lse = np.where(bad, -np.inf, m + np.log(s))
    resp = e / s[:, None]
    resp[bad] = 1.0 / K
    return resp, lse


def _symmetrise_upper(Q):
    """Copy each matrix's upper triangle onto its lower one (as the kernels do)."""
    D = Q.shape[-1]
    il = np.tril_indices(D, -1)
    for k in range(Q.shape[0]):
        Q[k][il] = Q[k].T[il]
    return Q


def _gauss_stats(X, W, means, shift, smode):
    X = _f64(X)
    n, D = X.shape
    K = means.shape[0]
    nk = W.sum(axis=0)
    S = np.empty((K, D))
    if smode == 0:
        Q = np.empty((K, D, D))
    elif smode == 1:
        Q = np.empty((1, D, D))
    else:
        Q = np.empty((K, 1, D))
    for k in range(K):
        dk = X - means[k]
        wdk = W[:, k, None] * dk
        S[k] = wdk.sum(axis=0)
        if smode == 0:
            Q[k] = wdk.T @ dk
        elif smode == 2:
            Q[k, 0] = (wdk * dk).sum(axis=0)
    if smode == 1:
        d = X - shift
        Q[0] = d.T @ d
    if smode != 2:
        _symmetrise_upper(Q)
    return nk, S, Q


def gaussian_estep(X, means, prec, logc, shift, smode):
    """NumPy :func:`latentem.kernels.gaussian.gaussian_estep`."""
    resp, lse = _posterior(_gauss_logp(X, means, prec, logc))
    nk, S, Q = _gauss_stats(X, resp, means, shift, smode)
    return float(lse.sum()), nk, S, Q


def gaussian_accumulate(X, W, means, shift, smode):
    """NumPy :func:`latentem.kernels.gaussian.gaussian_accumulate`."""
    return _gauss_stats(X, _f64(W), means, shift, smode)


def gaussian_logprob(X, means, prec, logc, what, out2, out1):
    """NumPy :func:`latentem.kernels.gaussian.gaussian_logprob`."""
    logp = _gauss_logp(X, means, prec, logc)
    if what == 0:
        out2[...] = logp
    elif what == 3:
        out1[...] = logp.argmax(axis=1)
    else:
        resp, lse = _posterior(logp)
        out1[...] = lse
        if what == 1:
            out2[...] = resp


def _scale(logp, scaled, shift):
    """``shift`` = row maxima, ``scaled = exp(logp - shift)`` (rows of ``-inf``
    give a row of zeros), into the given arrays."""
    m = logp.max(axis=1)
    shift[...] = m
    scaled[...] = _exp_flushed(logp - np.where(m == -np.inf, 0.0, m)[:, None])


def gaussian_scaled_prob(X, means, prec, logc, scaled, shift):
    """NumPy :func:`latentem.kernels.gaussian.gaussian_scaled_prob`."""
    _scale(_gauss_logp(X, means, prec, logc), scaled, shift)


def cov_to_prec_chol(cov):
    """NumPy :func:`latentem.kernels.gaussian.cov_to_prec_chol`."""
    cov = _f64(cov)
    K, D, _ = cov.shape
    prec = np.zeros((K, D, D))
    eye = np.eye(D)
    for k in range(K):
        c = cov[k]
        if not np.all(np.isfinite(np.tril(c))):
            return prec, k
        try:
            L = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            return prec, k
        if not (np.all(np.isfinite(L)) and np.all(np.diagonal(L) > 0.0)):
            return prec, k
        # inv(L) by forward substitution, a row at a time (exact zeros above the diagonal)
        Y = np.zeros((D, D))
        for i in range(D):
            Y[i] = (eye[i] - L[i, :i] @ Y[:i]) / L[i, i]
        prec[k] = Y.T
    return prec, -1


# ------------------------------------------------------------------ k-means
def _sqdist(X, c):
    d = X - c
    return np.einsum("ij,ij->i", d, d)


def kmeans_plusplus(X, n_clusters, first, uniforms):
    """NumPy :func:`latentem.kernels.kmeans.kmeans_plusplus`."""
    X = _f64(X)
    n = X.shape[0]
    idx = np.empty(n_clusters, dtype=np.int64)
    idx[0] = first
    closest = _sqdist(X, X[first])
    for c in range(1, n_clusters):
        cum = np.cumsum(closest)
        j = np.minimum(np.searchsorted(cum, uniforms[c - 1] * cum[-1]), n - 1)
        dist = np.minimum(closest, np.stack([_sqdist(X, X[i]) for i in j]))
        best = int(np.argmin(dist.sum(axis=1)))
        idx[c] = j[best]
        closest = dist[best]
    return idx


def lloyd(X, centers, max_iter):
    """NumPy :func:`latentem.kernels.kmeans.lloyd`."""
    X = _f64(X)
    n, D = X.shape
    C = np.array(centers, dtype=np.float64)
    K = C.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    it = 0
    while True:
        dist = np.empty((n, K))
        for k in range(K):
            dist[:, k] = _sqdist(X, C[k])
        new = dist.argmin(axis=1)
        changed = np.count_nonzero(new != labels)
        labels = new
        if it >= max_iter or changed == 0:
            break
        it += 1
        counts = np.bincount(labels, minlength=K)
        sums = np.zeros((K, D))
        np.add.at(sums, labels, X)
        keep = counts > 0
        C[keep] = sums[keep] / counts[keep, None]
    return C, labels, it


# ------------------------------------------------------------------ discrete
def categorical_logprob(symbols, log_emission):
    """NumPy :func:`latentem.kernels.discrete.categorical_logprob`."""
    s = np.asarray(symbols)
    out = log_emission[:, np.maximum(s, 0)].T.copy()
    out[s < 0] = 0.0
    return out


def categorical_accumulate(symbols, weights, n_symbols):
    """NumPy :func:`latentem.kernels.discrete.categorical_accumulate`."""
    s = np.asarray(symbols)
    ok = s >= 0
    W = _f64(weights)[ok]
    return np.stack(
        [np.bincount(s[ok], weights=W[:, k], minlength=n_symbols) for k in range(W.shape[1])]
    ).reshape(W.shape[1], n_symbols)


def poisson_logprob(X, rates):
    """NumPy :func:`latentem.kernels.discrete.poisson_logprob`."""
    X = _f64(X)
    n, D = X.shape
    log_rates = np.log(rates)
    out = np.zeros((n, rates.shape[0]))
    for d in range(D):
        x = X[:, d]
        ok = ~np.isnan(x)
        c = np.array([math.lgamma(v + 1.0) for v in x[ok]])
        out[ok] += x[ok, None] * log_rates[:, d] - rates[:, d] - c[:, None]
    return out


def masked_weighted_sums(X, weights):
    """NumPy :func:`latentem.kernels.discrete.masked_weighted_sums`."""
    X = _f64(X)
    W = _f64(weights)
    obs = ~np.isnan(X)
    return W.T @ obs, W.T @ np.where(obs, X, 0.0)


# ------------------------------------------------------------------ HMM
def scale_emissions(log_b):
    """NumPy :func:`latentem.kernels.hmm.scale_emissions`."""
    log_b = _f64(log_b)
    scaled = np.empty(log_b.shape)
    shift = np.empty(log_b.shape[0])
    _scale(log_b, scaled, shift)
    return scaled, shift


class _Padded:
    """Rows of all sequences laid out as (n_seq, T_max): ``rows[s, t]`` is the row of
    step t of sequence s (0 past its end, where ``valid`` is False)."""

    def __init__(self, offsets):
        offsets = np.asarray(offsets, dtype=np.int64)
        self.lengths = np.diff(offsets)
        self.n_seq = len(self.lengths)
        self.T = int(self.lengths.max()) if self.n_seq else 0
        t = np.arange(self.T)
        self.valid = t[None, :] < self.lengths[:, None]
        self.rows = np.where(self.valid, offsets[:-1, None] + t[None, :], 0)

    def take(self, a, fill):
        out = a[self.rows]
        out[~self.valid] = fill
        return out


def _forward(P, scaled, shift, startprob, transmat):
    """Normalised forward variables (n_seq, T, K), log-likelihoods and whether each
    sequence is possible."""
    B = P.take(scaled, 1.0)
    sh = P.take(shift, 0.0)
    S, T, K = B.shape
    alpha = np.empty((S, T, K))
    ll = np.zeros(S)
    ok = np.ones(S, dtype=bool)
    u = startprob * B[:, 0]
    for t in range(T):
        if t > 0:
            u = (alpha[:, t - 1] @ transmat) * B[:, t]
        tot = u.sum(axis=1)
        good = tot > 0.0
        v = P.valid[:, t]
        ok &= good | ~v
        tot = np.where(good, tot, 1.0)
        ll += np.where(v, np.log(tot) + sh[:, t], 0.0)
        alpha[:, t] = u / tot[:, None]
    return alpha, B, ll, ok


def _group_sums(per_seq, groups):
    return np.add.reduceat(per_seq, np.asarray(groups[:-1], dtype=np.int64), axis=0)


def forward_backward_into(scaled, shift, offsets, groups, startprob, transmat, seq_weights, post):
    """NumPy :func:`latentem.kernels.hmm.forward_backward_into`."""
    P = _Padded(offsets)
    alpha, B, ll, ok = _forward(P, scaled, shift, startprob, transmat)
    S, T, K = alpha.shape
    w = _f64(seq_weights)
    gamma = alpha.copy()
    xi = np.zeros((S, K, K))
    nxt = np.ones((S, K))
    for t in range(T - 2, -1, -1):
        act = P.lengths > t + 1
        v = B[:, t + 1] * nxt
        beta = v @ transmat.T
        z = np.einsum("sk,sk->s", alpha[:, t], beta)
        act &= z > 0.0
        inv = np.where(act, 1.0 / np.where(act, z, 1.0), 0.0)
        xi += (alpha[:, t] * (inv * w)[:, None])[:, :, None] * v[:, None, :]
        gamma[:, t] = np.where(act[:, None], alpha[:, t] * beta * inv[:, None], gamma[:, t])
        nxt = np.where(act[:, None], beta / beta.sum(axis=1)[:, None], nxt)
    gamma[~ok] = np.nan
    post[P.rows[P.valid]] = gamma[P.valid]
    seq_loglik = np.where(ok, ll, -np.inf)
    okw = np.where(ok, w, 0.0)
    starts = okw[:, None] * np.nan_to_num(gamma[:, 0])
    xi[~ok] = 0.0
    return post, _group_sums(starts, groups), _group_sums(xi, groups) * transmat, seq_loglik


def forward_backward_scaled(scaled, shift, offsets, groups, startprob, transmat, seq_weights):
    """NumPy :func:`latentem.kernels.hmm.forward_backward_scaled`."""
    post = np.empty(np.shape(scaled))
    return forward_backward_into(
        scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
    )


def forward_backward(log_b, offsets, groups, startprob, transmat, seq_weights):
    """NumPy :func:`latentem.kernels.hmm.forward_backward`."""
    scaled, shift = scale_emissions(log_b)
    return forward_backward_scaled(scaled, shift, offsets, groups, startprob, transmat, seq_weights)


def forward_loglik_scaled(scaled, shift, offsets, groups, startprob, transmat):
    """NumPy :func:`latentem.kernels.hmm.forward_loglik_scaled`."""
    _, _, ll, ok = _forward(_Padded(offsets), scaled, shift, startprob, transmat)
    return np.where(ok, ll, -np.inf)


def forward_loglik(log_b, offsets, groups, startprob, transmat):
    """NumPy :func:`latentem.kernels.hmm.forward_loglik`."""
    scaled, shift = scale_emissions(log_b)
    return forward_loglik_scaled(scaled, shift, offsets, groups, startprob, transmat)


def viterbi(log_b, offsets, groups, log_startprob, log_transmat):
    """NumPy :func:`latentem.kernels.hmm.viterbi` (ties to the lowest state)."""
    P = _Padded(offsets)
    lb = P.take(_f64(log_b), 0.0)
    S, T, K = lb.shape
    psi = np.zeros((S, T, K), dtype=np.int64)
    delta = log_startprob + lb[:, 0]
    for t in range(1, T):
        cand = delta[:, :, None] + log_transmat[None]
        arg = cand.argmax(axis=1)
        best = np.take_along_axis(cand, arg[:, None, :], axis=1)[:, 0]
        v = P.valid[:, t, None]
        delta = np.where(v, best + lb[:, t], delta)
        psi[:, t] = arg
    last = delta.argmax(axis=1)
    seq_logprob = delta[np.arange(S), last]
    path = np.zeros((S, T), dtype=np.int64)
    seq = np.arange(S)
    path[seq, P.lengths - 1] = last
    for t in range(T - 1, 0, -1):
        act = P.lengths > t
        s = seq[act]
        path[s, t - 1] = psi[s, t, path[s, t]]
    states = np.empty(int(P.lengths.sum()), dtype=np.int64)
    states[P.rows[P.valid]] = path[P.valid]
    return states, seq_logprob


def _diag_gaussian_logp8(X, cols):
    """(n, 8) diagonal Gaussian log-densities from the packed ``cols``."""
    D = X.shape[1]
    t = (X[:, :, None] - cols[None, :D]) * cols[None, D : 2 * D]
    return cols[2 * D] - 0.5 * np.einsum("ndk,ndk->nk", t, t)


def diag_gaussian_logprob8(X, cols, out):
    """NumPy :func:`latentem.kernels.hmm_diag_gaussian8.diag_gaussian_logprob8`."""
    out[...] = _diag_gaussian_logp8(_f64(X), cols)[:, : out.shape[1]]


def diag_gaussian_scaled8(X, cols, scaled, shift):
    """NumPy :func:`latentem.kernels.hmm.diag_gaussian_scaled8`."""
    K = scaled.shape[1]
    logp = _diag_gaussian_logp8(_f64(X), cols)
    m = logp.max(axis=1)
    shift[...] = m
    scaled[...] = _exp_flushed(logp - m[:, None])[:, :K]


def diag_gaussian_stats8(X, post, means_t):
    """NumPy :func:`latentem.kernels.hmm.diag_gaussian_stats8`."""
    X = _f64(X)
    W = _f64(post)
    n, D = X.shape
    K = W.shape[1]
    t = X[:, :, None] - means_t[None, :, :K]  # (n, D, K)
    wt = W[:, None, :] * t
    S = np.ascontiguousarray(wt.sum(axis=0).T)
    Q = np.empty((K, 1, D))
    Q[:, 0, :] = (wt * t).sum(axis=0).T
    return W.sum(axis=0), S, Q


# ------------------------------------------------------------------ Gaussian with gaps
_LOG_2PI = math.log(2.0 * math.pi)


def pattern_factors(P, pat_idx, pat_nmis):
    """NumPy :func:`latentem.kernels.gaussian_missing.pattern_factors`: patterns with
    the same number of gaps are factorised together (batched LAPACK calls)."""
    P = _f64(P)
    n_pat, D = pat_idx.shape
    K = P.shape[0]
    Linv = np.zeros((n_pat, K, D, D))
    Cmm = np.zeros((n_pat, K, D, D))
    ldp = np.zeros((n_pat, K))
    for q in np.unique(pat_nmis):
        q = int(q)
        sel = np.flatnonzero(pat_nmis == q)
        if q == 0:
            continue
        m = pat_idx[sel, :q]  # (n_sel, q)
        Pmm = P[:, m[:, :, None], m[:, None, :]].transpose(1, 0, 2, 3)  # (n_sel, K, q, q)
        # Cholesky one matrix at a time where batched LAPACK would reject the batch
        L = np.empty_like(Pmm)
        ok = np.ones(Pmm.shape[:2], dtype=bool)
        try:
            L[...] = np.linalg.cholesky(Pmm)
        except np.linalg.LinAlgError:
            for i, k in np.ndindex(*Pmm.shape[:2]):
                try:
                    L[i, k] = np.linalg.cholesky(Pmm[i, k])
                except np.linalg.LinAlgError:
                    L[i, k] = np.eye(q)
                    ok[i, k] = False
        Li = np.linalg.inv(L)
        Li = np.tril(Li)
        diag = np.diagonal(L, axis1=2, axis2=3)
        ld = 2.0 * np.log(diag).sum(axis=2)
        ld[~ok] = np.nan
        Linv[sel, :, :q, :q] = Li
        Cmm[sel, :, :q, :q] = np.swapaxes(Li, 2, 3) @ Li
        ldp[sel] = ld
    return Linv, Cmm, ldp


class _Gaps:
    """The rows X[rows] completed with their conditional means under every component:
    deviations ``d[k]`` (n, D) from ``means[k]``, the ``log det P_mm`` of each row
    and component (n, K), and rows grouped by their number of gaps for the
    conditional covariances."""

    def __init__(self, X, rows, pat, pat_idx, pat_nmis, means, P):
        P = _f64(P)
        K, D = means.shape
        x = _f64(X)[rows]
        n = x.shape[0]
        Linv, self.Cmm, ldp = pattern_factors(P, pat_idx, pat_nmis)
        self.ld = ldp[pat]
        self.n_mis = pat_nmis[pat]
        self.d = np.empty((K, n, D))
        self.c = np.empty((K, n, D))  # Linv P_mo (x_o - mu_o), first n_mis entries
        self.groups = []
        idx_all = pat_idx[pat]
        for q in np.unique(self.n_mis):
            q = int(q)
            R = np.flatnonzero(self.n_mis == q)
            m = idx_all[R, :q]
            self.groups.append((R, q, m))
            for k in range(K):
                dz = x[R] - means[k]
                if q == 0:
                    self.d[k, R] = dz
                    continue
                np.put_along_axis(dz, m, 0.0, axis=1)
                v = np.einsum("rqd,rd->rq", P[k][m], dz)
                Li = Linv[pat[R], k, :q, :q]
                c = np.einsum("rab,rb->ra", Li, v)
                np.put_along_axis(dz, m, -np.einsum("rta,rt->ra", Li, c), axis=1)
                self.d[k, R] = dz
                self.c[k, R, :q] = c
        self.pat = pat
        self.Linv = Linv

    def logp(self, k, Lt, logdetS, with_maha=True):
        D = self.d.shape[2]
        if with_maha:
            y = self.d[k] @ Lt[k].T
            maha = np.einsum("rd,rd->r", y, y)
        else:
            maha = 0.0
        return -0.5 * ((D - self.n_mis) * _LOG_2PI + maha + logdetS[k] + self.ld[:, k])


def missing_logprob(X, rows, pat, pat_idx, pat_nmis, means, Lt, P, logdetS, tabs):
    """NumPy :func:`latentem.kernels.gaussian_missing.missing_logprob` (``tabs`` unused:
    the factors are computed per pattern here)."""
    g = _Gaps(X, rows, pat, pat_idx, pat_nmis, means, P)
    return np.stack([g.logp(k, Lt, logdetS) for k in range(means.shape[0])], axis=1).reshape(
        len(rows), means.shape[0]
    )


def missing_estep(
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
    """NumPy :func:`latentem.kernels.gaussian_missing.missing_estep`."""
    K, D = means.shape
    n = rows.shape[0]
    g = _Gaps(X, rows, pat, pat_idx, pat_nmis, means, P)
    summed_maha = use_logw and K == 1 and smode != 1
    ll = 0.0
    if use_logw:
        lp = np.stack([log_w[k] + g.logp(k, Lt, logdetS, not summed_maha) for k in range(K)], 1)
        lp = lp.reshape(n, K)
        mx = lp.max(axis=1)
        w = np.exp(lp - mx[:, None])
        tot = w.sum(axis=1)
        w /= tot[:, None]
        ll = float((mx + np.log(tot)).sum())
    else:
        w = _f64(W)
    KQ = K if smode != 1 else 1
    DQ = D if smode != 2 else 1
    nk = w.sum(axis=0)
    S = np.empty((K, D))
    Q = np.zeros((KQ, DQ, D))
    for k in range(K):
        wk = w[:, k]
        d = np.where((wk == 0.0)[:, None], 0.0, g.d[k])
        wd = wk[:, None] * d
        S[k] = wd.sum(axis=0)
        if smode == 2:
            Q[k, 0] += (wd * d).sum(axis=0)
        else:
            e = d if smode != 1 else d + means[k] - shift
            Q[0 if smode == 1 else k] += (wk[:, None] * e).T @ e
        if not cond_cov:
            continue
        for R, q, m in g.groups:
            if q == 0:
                continue
            C = g.Cmm[g.pat[R], k, :q, :q] * wk[R, None, None]
            if smode == 2:
                np.add.at(Q[k, 0], m, np.diagonal(C, axis1=1, axis2=2))
            else:
                np.add.at(Q[0 if smode == 1 else k], (m[:, :, None], m[:, None, :]), C)
    if smode != 2:
        for q in range(KQ):
            _symmetrise_upper(Q[q : q + 1])
    if summed_maha:
        if smode == 2:
            tr = float(np.diagonal(P[0]) @ Q[0, 0])
        else:
            tr = float((P[0] * Q[0]).sum())
        if cond_cov:
            tr -= float(g.n_mis.sum())
        ll -= 0.5 * tr
    return ll, nk, S, Q


def _solve_regressions(Bk, m, dz):
    """Gaps ``y`` solving ``(I - B_mm) y = B_mo (x_o - mu_o)`` for rows with the same
    number of gaps; NaN rows where the system is singular or a value is not finite."""
    r, q = m.shape
    rowsB = Bk[m]  # (r, q, D)
    b = np.einsum("rqd,rd->rq", rowsB, dz)
    A = np.eye(q) - np.take_along_axis(rowsB, m[:, None, :], axis=2)
    y = np.full((r, q), np.nan)
    for i in range(r):
        try:
            y[i] = np.linalg.solve(A[i], b[i])
        except np.linalg.LinAlgError:
            pass
    y[~np.isfinite(y).all(axis=1)] = np.nan
    return y


def conditional_fill(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, W, B):
    """NumPy :func:`latentem.kernels.gaussian_missing.conditional_fill`."""
    K, D = means.shape
    g = _Gaps(X, rows, pat, pat_idx, pat_nmis, means, P)
    x = _f64(X)[rows]
    out = x.copy()
    W = _f64(W)
    regress = B.shape[0] > 0
    for R, q, m in g.groups:
        if q == 0:
            continue
        acc = np.zeros((len(R), q))
        for k in range(K):
            wk = W[R, k]
            mu_m = means[k][m]
            fill = mu_m + np.take_along_axis(g.d[k, R], m, axis=1)
            if regress:
                dz = x[R] - means[k]
                np.put_along_axis(dz, m, 0.0, axis=1)
                y = _solve_regressions(B[k], m, dz)
                good = ~np.isnan(y[:, 0])
                fill[good] = mu_m[good] + y[good]
            acc += np.where((wk == 0.0)[:, None], 0.0, wk[:, None] * fill)
        sub = out[R]
        np.put_along_axis(sub, m, acc, axis=1)
        out[R] = sub
    return out


def conditional_draw(X, rows, pat, pat_idx, pat_nmis, means, P, tabs, comp, Z):
    """NumPy :func:`latentem.kernels.gaussian_missing.conditional_draw`."""
    g = _Gaps(X, rows, pat, pat_idx, pat_nmis, means, P)
    out = _f64(X)[rows].copy()
    for R, q, m in g.groups:
        if q == 0:
            continue
        ks = comp[R]
        Li = g.Linv[g.pat[R], ks, :q, :q]
        c = g.c[ks, R, :q]
        s = np.einsum("rta,rt->ra", Li, Z[R, :q] - c)
        sub = out[R]
        np.put_along_axis(sub, m, means[ks[:, None], m] + s, axis=1)
        out[R] = sub
    return out


def available_case_cov(X):
    """NumPy :func:`latentem.kernels.gaussian_missing.available_case_cov`."""
    X = _f64(X)
    obs = ~np.isnan(X)
    seen = obs.sum(axis=0)
    total = np.where(obs, X, 0.0).sum(axis=0)
    mean = np.where(seen > 0, total / np.maximum(seen, 1), 0.0)
    z = np.where(obs, X - mean, 0.0)
    o = obs.astype(np.float64)
    C = z.T @ z
    cnt = o.T @ o
    C = np.where(cnt > 0, C / np.where(cnt > 0, cnt, 1.0), 0.0)
    return mean, C, cnt
