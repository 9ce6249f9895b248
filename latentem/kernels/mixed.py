"""Kernels of the mixed-table imputer: categorical columns under K latent classes.

Codes are int64 (n, D) with -1 for a missing cell; ``logp`` is (K, D, L), the
log-probability of level l of column d under class k. A missing cell adds
nothing. Each compiled kernel has a NumPy version (used for small inputs and
as the reference in the tests); both add in the same order per row. The
conditional-Gaussian E-step (category effects) is NumPy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange
from latentem.kernels.kalman_linalg import _cholesky, _solve_vec

__all__ = [
    "categorical_counts",
    "categorical_logprob",
    "cg_loglik",
    "cg_plan",
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
# the missing columns, the first fastest). Per continuous gap pattern p (``pat``)
# the tables hold, padded to (Dc, Dc): ``prec`` the precision of the observed
# block, ``reg`` the regression of the gaps on the observed cells, ``ccov`` the
# gaps' conditional covariance; ``cst`` is -0.5 (log det S_oo + n_obs log 2 pi).
# The tables' first axis is the class, or of length 1 for a covariance shared by
# all classes (tied): it then broadcasts, and the per-row products with the
# tables are made once instead of K times.
#
# Plain NumPy, vectorised over the rows that share their categorical gaps, so this
# model compiles nothing (its numba kernels took about 100 s to compile, and were
# no faster). With b_m the summed effects of gap combination m, a state's log-joint
# is a per-row term plus a per-(class, combination) term plus b_m . P r (r the row's
# residual before b_m), and its filled row is a + T b_m (T: the gaps' rows of
# I - reg): every statistic is a product of per-row sums and per-pattern sums over m.

#: Elements of the largest (rows, classes, combinations) array made at once.
CG_CHUNK = 1 << 20
#: A set of rows joins a group whose gaps include its own (its observed levels there
#: enumerated too, every other level given weight 0) when that adds at most this
#: many (rows x classes x combinations) elements: a chunk costs about 60 NumPy calls,
#: and small gap sets (tables with many binary columns) made tens of chunks per E-step
#: (randhie at 50% missing, 3 classes: 32 chunks -> 8, 9.8 -> 6.4 ms; 2^14 and more
#: were slower on fair, whose gap sets have up to 720 combinations).
CG_MERGE = 1 << 13


def _combos(nlev):
    """Every combination of levels (M, len(nlev)), the first column fastest."""
    if nlev.size == 0:
        return np.zeros((1, 0), np.int64)
    grid = np.indices(tuple(nlev[::-1].tolist())).reshape(nlev.size, -1)[::-1].T
    return np.ascontiguousarray(grid, np.int64).reshape(-1, nlev.size)


class _Chunk(NamedTuple):
    """The parameter-free part of one chunk of rows enumerated over the categorical
    columns ``G`` (``seen``: the other categorical columns): their codes ``c`` there,
    their continuous gap patterns ``p`` (unique ``up``, ``inv`` into it, ``onehot``
    (n_up, n_c) and ``first``, one row of each), gaps and zero-filled values ``x0``;
    the level combinations ``C`` (M, |G|), their rows of B ``cols``, the design columns
    ``zg`` of G's levels and each combination's one-hot ``H`` (M, Qg); ``pen`` (n_c, M):
    0, or -inf where a combination contradicts a level the row has in G (None when
    every row's gaps are all of G)."""

    rows: np.ndarray
    G: np.ndarray
    seen: np.ndarray
    c: np.ndarray
    p: np.ndarray
    up: np.ndarray
    inv: np.ndarray
    onehot: np.ndarray
    first: np.ndarray
    gap: np.ndarray
    x0: np.ndarray
    C: np.ndarray
    cols: np.ndarray
    zg: np.ndarray
    H: np.ndarray
    pen: np.ndarray | None


def _merge_gap_sets(gapset, counts, nlev, K):
    """Groups of gap sets (indices into ``gapset``), each enumerated over the union of
    its members' gaps, its first member: larger gap sets first, and a smaller one joins
    the group (whose gaps include its own) where it adds the fewest elements, if at
    most :data:`CG_MERGE`."""
    sizes = np.array([int(np.prod(nlev[g])) for g in gapset])  # combinations M
    groups = []
    for g in np.lexsort((-counts, -sizes)):
        best, extra = None, CG_MERGE + 1
        for grp in groups:
            lead = grp[0]
            if not (gapset[g] & ~gapset[lead]).any():
                cost = int(counts[g]) * K * (sizes[lead] - sizes[g])
                if cost < extra:
                    best, extra = grp, cost
        if best is None:
            groups.append([g])
        else:
            best.append(g)
    return groups


def cg_plan(X, codes, pat, off, nlev, K):
    """The chunks (:class:`_Chunk`) of a table for K classes: everything the
    conditional-Gaussian kernels need that does not depend on the parameters, made
    once per table rather than at every E-step."""
    Dc = X.shape[1]
    gaps = np.isnan(X)
    x0 = np.where(gaps, 0.0, X)
    gapset, group, counts = np.unique(codes < 0, axis=0, return_inverse=True, return_counts=True)
    group = group.ravel()
    plan = []
    for members in _merge_gap_sets(gapset, counts, nlev, K):
        cat_gaps = gapset[members[0]]
        G, seen = np.flatnonzero(cat_gaps), np.flatnonzero(~cat_gaps)
        C = _combos(nlev[G])
        M = C.shape[0]
        cols = off[G] + C
        zg = np.concatenate([1 + off[d] + np.arange(nlev[d]) for d in G] + [np.zeros(0, int)])
        H = ((1 + cols)[:, :, None] == zg).any(axis=1).astype(np.float64)  # (M, Qg)
        rows_all = np.flatnonzero(np.isin(group, members))
        step = max(1, CG_CHUNK // (K * M * max(Dc, 1)))
        for s in range(0, rows_all.size, step):
            rows = rows_all[s : s + step]
            p = pat[rows]
            up, inv = np.unique(p, return_inverse=True)
            inv = inv.ravel()
            onehot = (inv == np.arange(up.size)[:, None]).astype(np.float64)
            first = np.argmax(onehot, axis=1)
            c = codes[rows][:, seen]
            cg = codes[rows][:, G]  # the levels some rows have in G (merged gap sets)
            pen = None
            if (cg >= 0).any():
                ok = ((cg[:, None, :] < 0) | (cg[:, None, :] == C)).all(axis=-1)
                pen = np.where(ok, 0.0, -np.inf)
            plan.append(
                _Chunk(
                    rows,
                    G,
                    seen,
                    c,
                    p,
                    up,
                    inv,
                    onehot,
                    first,
                    gaps[rows],
                    x0[rows],
                    C,
                    cols,
                    zg,
                    H,
                    pen,
                )
            )
    return plan


def _cg_chunks(X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, plan=None):
    """Per chunk of :func:`cg_plan` (made here when not given): the chunk, the gaps'
    effect sums ``bsum`` (M, Dc), the states' posterior weights ``W`` (n_c, K, M), the
    rows' log-likelihoods, the filled rows without the gaps' effects ``a`` (n_c, K, Dc)
    and ``T`` (n_c, K, Dc, Dc), so that a state's filled row is a + T b_m."""
    K, Dc = mu.shape
    if plan is None:
        plan = cg_plan(X, codes, pat, off, nlev, K)
    eye = np.eye(Dc)
    per_gaps = {}  # chunks of one gap set share their combinations: their terms once
    for ch in plan:
        rows, G, seen, c, p, gap, C = ch.rows, ch.G, ch.seen, ch.c, ch.p, ch.gap, ch.C
        n_c, M = rows.size, C.shape[0]
        if id(ch.cols) not in per_gaps:
            bsum = B[ch.cols].sum(axis=1)  # (M, Dc)
            outer = (bsum[:, :, None] * bsum[:, None, :]).reshape(M, -1)  # b_m b_m'
            per_gaps[id(ch.cols)] = (bsum, logp[:, G, C].sum(axis=-1), 0.5 * outer.T)
        bsum, lpm, half_outer = per_gaps[id(ch.cols)]
        lpo = logp[:, seen, c].sum(axis=-1).T  # (n_c, K)
        mean0 = mu + B[off[seen] + c].sum(axis=1)[:, None, :]  # (n_c, K, Dc)
        r = np.where(gap[:, None, :], 0.0, ch.x0[:, None, :] - mean0)
        P = prec[:, p].swapaxes(0, 1)  # (n_c, K, Dc, Dc)
        Pr = (P @ r[..., None])[..., 0]
        # b_m' P b_m / 2 once per (pattern, class) as <P, b_m b_m'>, gathered per row below
        Pu = prec[:, ch.up].swapaxes(0, 1)  # (n_up, K or 1, Dc, Dc)
        hbpb = (Pu.reshape(-1, Dc * Dc) @ half_outer).reshape(Pu.shape[:2] + (M,))
        row = logw + cst[:, p].T + lpo - 0.5 * (r * Pr).sum(axis=-1)
        # one matrix product for all (row, class) pairs, then in place: these (n_c, K, M)
        # arrays are the E-step's largest
        W = (Pr.reshape(-1, Dc) @ bsum.T).reshape(n_c, K, M)
        W += row[:, :, None]
        W += lpm
        W -= hbpb[ch.inv]
        if ch.pen is not None:
            W += ch.pen[:, None, :]
        top = W.reshape(n_c, -1).max(axis=1)
        W -= top[:, None, None]
        np.exp(W, out=W)
        total = W.reshape(n_c, -1).sum(axis=1)
        W /= total[:, None, None]
        ll = top + np.log(total)
        R = reg[:, p].swapaxes(0, 1)  # (n_c, K, Dc, Dc)
        a = np.where(gap[:, None, :], mean0 + (R @ r[..., None])[..., 0], ch.x0[:, None])
        T = gap[:, None, :, None] * eye - R
        yield ch, bsum, W, ll, a, T


def _bmm(A, B):
    """sum_i A[i, k, a] B[i, k, b] over the rows i: (K, a, b), one batched matmul."""
    return A.transpose(1, 2, 0) @ B.transpose(1, 0, 2)


def cg_stats(X, codes, pat, prec, reg, ccov, cst, mu, B, off, nlev, logp, logw, plan=None):
    """E-step of the conditional-Gaussian latent-class model: each row's log-likelihood
    (n,) and the expected statistics per class: ``szz`` (K, Z, Z) and ``sxz`` (K, Z, Dc)
    of the design z = (1, one-hot levels), ``sxx`` (K, Dc, Dc) of the completed
    continuous block (conditional covariance of its gaps included) and the level
    counts (K, D, L), categorical gaps included. ``plan``: :func:`cg_plan` of the table."""
    n, Dc = X.shape
    K, D, L = logp.shape
    Z = 1 + B.shape[0]
    ll_all = np.zeros(n)
    szz, sxz = np.zeros((K, Z, Z)), np.zeros((K, Z, Dc))
    sxx = np.zeros((K, Dc, Dc))
    for ch, bsum, W, ll, a, T in _cg_chunks(
        X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, plan
    ):
        rows, zg, H = ch.rows, ch.zg, ch.H
        ll_all[rows] = ll
        n_c, M = rows.size, ch.C.shape[0]
        # the design z = o + h_m: o fixed per row (intercept, observed levels), h_m the
        # one-hot levels of combination m in the gaps' columns zg of z
        O = np.zeros((n_c, 1, Z))
        O[:, 0, 0] = 1.0
        O[np.arange(n_c)[:, None], 0, 1 + off[ch.seen] + ch.c] = 1.0
        # one product over the combinations gives each (row, class) its weight, E[h_m]
        # and E[b_m]; per gap pattern, one gives the sums of W b_m h_m' and W b_m b_m'
        Qg = H.shape[1]
        hb = np.hstack([H, bsum])  # (M, Qg + Dc)
        sums = W.reshape(n_c * K, M) @ np.hstack([np.ones((M, 1)), hb])
        sums = sums.reshape(n_c, K, -1)
        wk = sums[..., :1]  # (n_c, K, 1)
        Eh = sums[..., 1 : 1 + Qg]  # (n_c, K, Qg)
        TEb = (T @ sums[..., 1 + Qg :, None])[..., 0]
        # szz = E[z z'], sxz = E[z x'], sxx = E[x x'] + the gaps' conditional covariance,
        # with a state's filled row x = a + T b_m
        wO = wk * O
        sgo = _bmm(np.broadcast_to(O, Eh.shape[:2] + (Z,)), Eh)
        szz += _bmm(wO, np.broadcast_to(O, wO.shape))
        szz[:, :, zg] += sgo
        szz[:, zg, :] += sgo.transpose(0, 2, 1)
        sxz += _bmm(wO, a) + _bmm(np.broadcast_to(O, wO.shape), TEb)
        sxz[:, zg] += _bmm(Eh, a)
        aT = _bmm(a, TEb)
        sxx += _bmm(wk * a, a) + aT + aT.transpose(0, 2, 1)
        # the terms in b_m: summed over the rows of each gap pattern, then times T
        n_up = ch.up.size
        Wp = (ch.onehot @ W.reshape(n_c, -1)).reshape(n_up * K, M)
        Wm = Wp.reshape(n_up, K, M).sum(axis=0)  # (K, M)
        szz[:, zg[:, None], zg] += (Wm[:, :, None] * H).transpose(0, 2, 1) @ H
        bx = (bsum[:, :, None] * hb[:, None, :]).reshape(M, -1)  # b_m (h_m, b_m)'
        both = (Wp @ bx).reshape(n_up, K, Dc, Qg + Dc)
        Tp = T[ch.first]  # (n_up, K, Dc, Dc)
        bh = Tp @ both[..., :Qg]
        bb = both[..., Qg:]
        sxz[:, zg] += bh.sum(axis=0).transpose(0, 2, 1)
        sxx += (Tp @ bb @ Tp.swapaxes(-1, -2)).sum(axis=0)
        wkp = ch.onehot @ wk[..., 0]  # (n_up, K)
        sxx += (wkp.T[:, :, None, None] * ccov[:, ch.up]).sum(axis=1)
    cnt = np.zeros((K, D, L))  # expected counts: the diagonal of the levels' block
    diag = np.einsum("kzz->kz", szz)
    for d in range(D):
        cnt[:, d, : nlev[d]] = diag[:, 1 + off[d] : 1 + off[d] + nlev[d]]
    return ll_all, szz, sxz, sxx, cnt


def cg_loglik(X, codes, pat, prec, reg, ccov, cst, mu, B, off, nlev, logp, logw, plan=None):
    """Each row's log-likelihood (n,), as :func:`cg_stats` gives it, without the
    statistics."""
    ll_all = np.zeros(X.shape[0])
    for ch, _, _, ll, _, _ in _cg_chunks(
        X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, plan
    ):
        ll_all[ch.rows] = ll
    return ll_all


def cg_rows(X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, u, plan=None):
    """Per row: class posteriors (n, K), the continuous block filled with conditional
    means (n, Dc), level probabilities (n, D, L), and one state drawn with the uniforms
    ``u`` (n,): its class (n,), the continuous block at that state's conditional mean
    (n, Dc) and its levels (n, D)."""
    n, Dc = X.shape
    K, D, L = logp.shape
    resp, fill = np.zeros((n, K)), np.zeros((n, Dc))
    drawn_k, drawn_x = np.zeros(n, np.int64), np.zeros((n, Dc))
    drawn_lev = np.where(codes >= 0, codes, 0)
    probs = (np.arange(L) == drawn_lev[..., None]) * (codes >= 0)[..., None].astype(np.float64)
    for ch, bsum, W, _, a, T in _cg_chunks(
        X, codes, pat, prec, reg, cst, mu, B, off, nlev, logp, logw, plan
    ):
        rows, G, C = ch.rows, ch.G, ch.C
        n_c, M = rows.size, C.shape[0]
        wk = W.sum(axis=-1)
        resp[rows] = wk
        fill[rows] = (wk[..., None] * a + (T @ (W @ bsum)[..., None])[..., 0]).sum(axis=1)
        Wm = W.sum(axis=1)  # (n_c, M)
        for j, d in enumerate(G):
            gap = codes[rows, d] < 0  # (a row's own levels in G stay as they are)
            probs[rows[gap], d] = Wm[gap] @ (np.arange(L) == C[:, j : j + 1])
        cum = np.cumsum(W.reshape(n_c, K * M), axis=1)
        t = np.minimum((cum <= u[rows, None]).sum(axis=1), K * M - 1)
        k, m = t // M, t % M
        i = np.arange(n_c)
        drawn_k[rows] = k
        drawn_lev[rows[:, None], G] = C[m]
        drawn_x[rows] = a[i, k] + (T[i, k % T.shape[1]] @ bsum[m][..., None])[..., 0]
    return resp, fill, probs, drawn_k, drawn_x, drawn_lev


# always compiled: the NumPy reference (enumerating each row's states in Python) is


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


def pattern_tables(cov, observed):
    """For each class's covariance (K, Dc, Dc) and each gap pattern (npat, Dc) of
    observed flags: ``(prec, reg, ccov, cst)`` as :func:`cg_stats` reads them; a
    covariance that is not positive definite raises ValueError."""
    Dc = cov.shape[1]
    o = observed[None, :, :, None] & observed[None, :, None, :]  # (1, npat, Dc, Dc)
    # S_oo with the identity on the gaps: one batched factor and inverse for all
    # (class, pattern) pairs, whose observed block is S_oo's own
    S = np.where(o, cov[:, None], np.eye(Dc))
    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        raise ValueError("not positive definite") from None
    prec = np.where(o, np.linalg.inv(S), 0.0)
    gap = ~observed[None, :, :, None]
    reg = np.where(gap, cov[:, None] @ prec, 0.0)  # S_mo S_oo^-1
    ccov = np.where(gap & gap.swapaxes(-1, -2), cov[:, None] - reg @ cov[:, None], 0.0)
    logdet = 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(axis=-1)
    cst = -0.5 * (logdet + observed.sum(axis=1) * np.log(2.0 * np.pi))
    return prec, reg, ccov, cst


def spd_solve_numpy(A, b):
    import scipy.linalg  # here: importing the kernels stays cheap

    try:
        factor = scipy.linalg.cho_factor(A, lower=True)
    except np.linalg.LinAlgError:
        raise ValueError("not positive definite") from None
    return scipy.linalg.cho_solve(factor, b)


# callers choose by their number of data rows (``runs_numpy``), not by A's size
spd_solve = Kernel(spd_solve_jit, spd_solve_numpy)
