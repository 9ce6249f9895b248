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

from latentem.kernels._jit import njit, prange
from latentem.kernels.hmm import scale_emissions_jit
from latentem.kernels.regime_transitions import (  # the transition M-step, re-exported
    newton_logit,
    stationary_distribution,
    transition_objective,
    tvtp_matrices,
)
from latentem.kernels.scaling import scale_rows

__all__ = [
    "initial_extended",
    "chain_statistics",
    "coef_matrix",
    "emission_m_step",
    "hamilton_kim",
    "log_emission",
    "stationary_distribution",
    "newton_logit",
    "moment_pairs",
    "transition_objective",
    "tvtp_matrices",
    "weighted_moments",
]


#: A row whose reachable states hold less than this of its scaled density is redone
#: with its own scale (the shared one flushed or nearly flushed them).
_SCALED_FLOOR = 1e-100


@njit(cache=True)
def _one_sequence(logb, scaled, shift, a, b, q, trans, tidx, init, K, smooth, filt, pred, sm, xi):
    """Filter (and smooth) rows a..b-1 of one sequence; returns its log-likelihood.

    ``scaled``, ``shift``: ``exp(logb - shift)`` with ``shift`` the row maxima, made
    beforehand in one vectorised pass (the exps are most of a row's cost here).
    """
    M = logb.shape[1]
    Kp = M // K
    # S_t of each extended state, and the state it leaves for when S_t is dropped
    # (tables: an integer division per inner step would cost more than the step).
    origin = np.empty(M, dtype=np.int64)
    shifted = np.empty(M, dtype=np.int64)
    for s in range(M):
        origin[s] = s // Kp
        shifted[s] = s // K
    total = 0.0
    for t in range(a, b):
        if t == a:
            for s in range(M):
                pred[t, s] = init[q, s]
        else:
            m = tidx[t]
            if M > K:
                # With lags, the states r K .. r K + K - 1 (differing in the oldest
                # regime only) share S_t: one sum of them, then one product per j.
                for r in range(Kp):
                    acc = 0.0
                    for l in range(K):
                        acc += filt[t - 1, r * K + l]
                    i = origin[r * K]
                    for j in range(K):
                        pred[t, j * Kp + r] = acc * trans[m, i, j]
            else:
                for j in range(K):
                    acc = 0.0
                    for i in range(K):
                        acc += filt[t - 1, i] * trans[m, i, j]
                    pred[t, j] = acc
        z = 0.0
        for s in range(M):
            v = pred[t, s] * scaled[t, s]
            filt[t, s] = v
            z += v
        if z > _SCALED_FLOOR:
            total += np.log(z) + shift[t]
        else:
            # The states the chain can be in are all far below the row's largest
            # density (flushed or nearly): scale by their own largest one instead.
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
    back = np.empty(M)
    for s in range(M):
        sm[b - 1, s] = filt[b - 1, s]
    for t in range(b - 2, a - 1, -1):
        m = tidx[t + 1]
        for sn in range(M):
            p = pred[t + 1, sn]
            ratio[sn] = sm[t + 1, sn] / p if p > 0.0 else 0.0
        back[:] = 0.0
        # The states leaving regime i are the block i Kp .. (i + 1) Kp - 1: per pair
        # (i, j) one sum in a register, not K^2 running sums in memory.
        for i in range(K):
            for j in range(K):
                pij = trans[m, i, j]
                acc = 0.0
                for s in range(i * Kp, (i + 1) * Kp):
                    v = ratio[j * Kp + shifted[s]]
                    acc += filt[t, s] * v
                    back[s] += pij * v
                xi[t + 1, i, j] = pij * acc
        for s in range(M):
            sm[t, s] = filt[t, s] * back[s]
    return total


@njit(cache=True)
def _hamilton_kim_serial(logb, scaled, shift, offsets, trans, tidx, init, K, smooth, filt, pred,
                         sm, xi, ll):  # fmt: skip
    for q in range(offsets.shape[0] - 1):
        a, b = offsets[q], offsets[q + 1]
        ll[q] = _one_sequence(
            logb, scaled, shift, a, b, q, trans, tidx, init, K, smooth, filt, pred, sm, xi
        )


@njit(cache=True, parallel=True)
def _hamilton_kim_parallel(logb, scaled, shift, offsets, trans, tidx, init, K, smooth, filt,
                           pred, sm, xi, ll):  # fmt: skip
    for q in prange(offsets.shape[0] - 1):
        a, b = offsets[q], offsets[q + 1]
        ll[q] = _one_sequence(
            logb, scaled, shift, a, b, q, trans, tidx, init, K, smooth, filt, pred, sm, xi
        )


@njit(cache=True)
def _scaled_emission(logb):
    """``(exp(logb - shift), shift)``, ``shift`` the row maxima: the serial twin of
    :func:`latentem.kernels.hmm.scale_emissions_jit`, for short data."""
    n, M = logb.shape
    B = 128
    scaled = np.empty((n, M))
    shift = np.empty(n)
    logp = np.empty((M, B))
    e = np.empty((M, B))
    bits = np.empty((M, B), dtype=np.int64)
    mx = np.empty(B)
    for r0 in range(0, n, B):
        scale_rows(logb, r0, min(B, n - r0), scaled, shift, logp, mx, e, bits)
    return scaled, shift


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
    if n_seq >= PARALLEL_SEQUENCES:
        scaled, shift = scale_emissions_jit(logb)
        run = _hamilton_kim_parallel
    else:
        scaled, shift = _scaled_emission(logb)
        run = _hamilton_kim_serial
    run(logb, scaled, shift, offsets, trans, tidx, init, K, bool(smooth), filt, pred, sm, xi, ll)
    return ll, filt, pred, sm, xi


@njit(cache=True)
def chain_statistics(sm, xi, ext, offsets, full_offsets, rows, n_full, per_row):
    """The transition M-step's statistics from the smoother's output.

    At each sequence's first row the extended state holds the regimes of the
    ``p`` rows before it: ``oldest`` (n_seq, K) is the distribution of the first
    one, and the transitions between them count like those of later rows. With
    ``per_row``, ``xi_full`` (n_full, K, K) holds each full row's pairwise
    posterior of the transition into it (for time-varying transitions) and
    ``counts`` is empty; otherwise ``counts`` (K, K) is their sum and ``xi_full``
    empty. ``ext[s, l]`` is ``S_{t-l}`` of extended state s; ``rows`` maps the
    effective rows to the full ones.
    """
    M, q1 = ext.shape
    p = q1 - 1
    K = xi.shape[1]
    n_seq = offsets.shape[0] - 1
    oldest = np.zeros((n_seq, K))
    counts = np.zeros((0 if per_row else K, K))
    xi_full = np.zeros((n_full if per_row else 0, K, K))
    if per_row:
        for t in range(xi.shape[0]):
            for i in range(K):
                for j in range(K):
                    xi_full[rows[t], i, j] = xi[t, i, j]
    else:
        for t in range(xi.shape[0]):
            for i in range(K):
                for j in range(K):
                    counts[i, j] += xi[t, i, j]
    for q in range(n_seq):
        t0 = offsets[q]
        s0 = full_offsets[q]
        for s in range(M):
            w = sm[t0, s]
            oldest[q, ext[s, p]] += w
            # full row s0 + l holds S_{t0 - (p - l)}: the transition into it
            for lag in range(1, p + 1):
                i, j = ext[s, p - lag + 1], ext[s, p - lag]
                if per_row:
                    xi_full[s0 + lag, i, j] += w
                else:
                    counts[i, j] += w
    return oldest, counts, xi_full


@njit(cache=True)
def initial_extended(trans, first, stride, start, ext):
    """(n_seq, M) distribution of the extended state at each sequence's first row.

    The regime of the sequence's row 0 is drawn from ``start[q]`` (K,); rows
    1..p follow the chain, the move into row l by ``trans[first[q] + l * stride]``.
    ``ext[s, l]`` is ``S_{t-l}`` of extended state s (so ``ext[s, p]`` is row 0's).
    """
    M, q1 = ext.shape
    p = q1 - 1
    out = np.empty((first.shape[0], M))
    for q in range(first.shape[0]):
        for s in range(M):
            v = start[q, ext[s, p]]
            for lag in range(1, p + 1):
                v *= trans[first[q] + lag * stride, ext[s, p - lag + 1], ext[s, p - lag]]
            out[q, s] = v
    return out


# ------------------------------------------------------------------- emission part
@njit(cache=True)
def log_emission(U, C, s2, valid):
    """``logb[t, s] = log N(C[s] . U[t]; 0, s2[s])`` (0 where ``valid[t]`` is False)."""
    n, D = U.shape
    M = C.shape[0]
    out = np.zeros((n, M))
    CT = np.ascontiguousarray(C.T)
    half_log = np.empty(M)
    inv = np.empty(M)
    for s in range(M):
        half_log[s] = -0.5 * (np.log(2.0 * np.pi) + np.log(s2[s]))
        inv[s] = 0.5 / s2[s]
    e = np.empty(M)
    for t in range(n):
        if not valid[t]:
            continue
        # the inner loop over the states, not the regressors: it vectorises
        e[:] = 0.0
        for d in range(D):
            u = U[t, d]
            for s in range(M):
                e[s] += CT[d, s] * u
        for s in range(M):
            out[t, s] = half_log[s] - inv[s] * e[s] * e[s]
    return out


def _column_pairs(U):
    """Pairs ``a <= b`` of the distinct columns of U, and ``index[c, d]``, the pair of each
    pair of columns (an autoregression's U repeats the constant once per lag)."""
    D = U.shape[1]
    first = np.arange(D)
    for c in range(D):
        for d in range(c):
            if first[d] == d and np.array_equal(U[:, c], U[:, d]):
                first[c] = d
                break
    kept = np.flatnonzero(first == np.arange(D))
    a, b = np.triu_indices(len(kept))
    a, b = kept[a], kept[b]
    index = np.empty((D, D), dtype=np.int64)
    index[first[a], first[b]] = np.arange(len(a))
    index[first[b], first[a]] = np.arange(len(a))
    return a, b, index[first][:, first]


def moment_pairs(U, valid):
    """``(products, index)`` for :func:`weighted_moments`: ``U[t, a] U[t, b]`` (0 where
    ``valid[t]`` is False) for the pairs of distinct columns, and where each pair is."""
    a, b, index = _column_pairs(U)
    return U[:, a] * U[:, b] * valid[:, None], index


def weighted_moments(U, W, valid, pairs=None):
    """``Ms[s] = sum_t W[t, s] U[t] U[t]'`` and ``Ns[s] = sum_t W[t, s]`` over valid rows.

    One matrix product of the products of the pairs of distinct columns of ``U``
    (``pairs``, from :func:`moment_pairs`, or made here block by block) with the
    weights, instead of a pass per state.
    """
    n, D = U.shape
    M = W.shape[1]
    W = np.ascontiguousarray(W, dtype=np.float64)
    Ns = valid.astype(np.float64) @ W
    if pairs is not None:
        products, index = pairs
        packed = products.T @ W
    else:
        a, b, index = _column_pairs(U)
        packed = np.zeros((len(a), M))
        for lo in range(0, n, 65536):
            hi = min(n, lo + 65536)
            block = U[lo:hi, a] * U[lo:hi, b] * valid[lo:hi, None]
            packed += block.T @ W[lo:hi]
    return np.ascontiguousarray(packed.T[:, index]), Ns


@njit(cache=True)
def coef_matrix(beta, phi, ext):
    """Residual coefficients ``C`` (M, D): ``e_t(s) = C[s] . U_t`` with
    ``U_t = (y_t, x_t, y_{t-1}, x_{t-1}, ...)`` and ``ext[s, l] = S_{t-l}``."""
    M, q = ext.shape
    p = q - 1
    kx = beta.shape[1]
    D = (p + 1) * (1 + kx)
    C = np.zeros((M, D))
    for s in range(M):
        k = ext[s, 0]
        C[s, 0] = 1.0
        for c in range(kx):
            C[s, 1 + c] = -beta[k, c]
        for lag in range(1, p + 1):
            o = lag * (1 + kx)
            ph = phi[k, lag - 1]
            C[s, o] = -ph
            for c in range(kx):
                C[s, o + 1 + c] = ph * beta[ext[s, lag], c]
    return C


@njit(cache=True)
def _solve_block(Ms, w, C0, G):
    """argmax over b of -1/2 sum_s w_s (C0_s + G_s b)' Ms_s (C0_s + G_s b).

    ``G`` has a nonzero or two per row: the products with it run over those only
    (``Ms`` is symmetric, so its rows stand for its columns).
    """
    M, D, nf = G.shape
    A = np.zeros((nf, nf))
    r = np.zeros(nf)
    MG = np.empty((D, nf))
    Mc = np.empty(D)
    for s in range(M):
        ws = w[s]
        for a in range(D):
            acc = 0.0
            for b in range(D):
                acc += Ms[s, a, b] * C0[s, b]
            Mc[a] = acc
        MG[:] = 0.0
        for b in range(D):
            for j in range(nf):
                g = G[s, b, j]
                if g != 0.0:
                    for a in range(D):
                        MG[a, j] += Ms[s, b, a] * g
        for a in range(D):
            for i in range(nf):
                g = G[s, a, i]
                if g != 0.0:
                    wg = ws * g
                    r[i] -= wg * Mc[a]
                    for j in range(nf):
                        A[i, j] += wg * MG[a, j]
    return _spd_solve(A, r)


@njit(cache=True)
def _spd_solve(A, r):
    """Solve ``A x = r`` for a symmetric positive semi-definite ``A``: Cholesky (a tiny
    system: LAPACK's least squares costs ten times as much), or the least-squares
    (minimum-norm) answer where a pivot shows ``A`` (nearly) singular."""
    n = A.shape[0]
    L = np.zeros((n, n))
    for j in range(n):
        d = A[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 1e-10 * A[j, j]:
            return np.linalg.lstsq(A, r)[0]
        L[j, j] = np.sqrt(d)
        for i in range(j + 1, n):
            v = A[i, j]
            for k in range(j):
                v -= L[i, k] * L[j, k]
            L[i, j] = v / L[j, j]
    x = np.empty(n)
    for i in range(n):  # L y = r
        v = r[i]
        for k in range(i):
            v -= L[i, k] * x[k]
        x[i] = v / L[i, i]
    for i in range(n - 1, -1, -1):  # L' x = y
        v = x[i]
        for k in range(i + 1, n):
            v -= L[k, i] * x[k]
        x[i] = v / L[i, i]
    return x


@njit(cache=True)
def emission_m_step(Ms, Ns, ext, bmap, amap, beta, phi, sigma2, switching_variance,
                    var_floor, cycles):  # fmt: skip
    """Maximise the expected emission log-likelihood: conditional maximisation cycles.

    Coefficients given the AR coefficients (a weighted least-squares solve), AR
    coefficients given the coefficients, then the variances; repeated until the
    expected log-likelihood stops rising (at most ``cycles`` times). ``bmap``
    (K, kx) and ``amap`` (K, p) give the free parameter behind each
    coefficient (shared ones repeat). Returns (beta, phi, sigma2).
    """
    M, q = ext.shape
    p = q - 1
    K, kx = bmap.shape
    D = (p + 1) * (1 + kx)
    nb = bmap.max() + 1 if bmap.size else 0
    na = amap.max() + 1 if amap.size else 0
    beta = beta.copy()
    phi = phi.copy()
    sigma2 = sigma2.copy()
    w = np.empty(M)
    prev = -np.inf
    for _ in range(max(1, cycles)):
        for s in range(M):
            w[s] = 1.0 / sigma2[ext[s, 0]]
        if nb:
            C0 = np.zeros((M, D))
            G = np.zeros((M, D, nb))
            for s in range(M):
                k = ext[s, 0]
                C0[s, 0] = 1.0
                for c in range(kx):
                    G[s, 1 + c, bmap[k, c]] = -1.0
                for lag in range(1, p + 1):
                    o = lag * (1 + kx)
                    ph = phi[k, lag - 1]
                    C0[s, o] = -ph
                    for c in range(kx):
                        G[s, o + 1 + c, bmap[ext[s, lag], c]] += ph
            sol = _solve_block(Ms, w, C0, G)
            for k in range(K):
                for c in range(kx):
                    beta[k, c] = sol[bmap[k, c]]
        if na:
            C0 = np.zeros((M, D))
            G = np.zeros((M, D, na))
            for s in range(M):
                k = ext[s, 0]
                C0[s, 0] = 1.0
                for c in range(kx):
                    C0[s, 1 + c] = -beta[k, c]
                for lag in range(1, p + 1):
                    o = lag * (1 + kx)
                    j = amap[k, lag - 1]
                    G[s, o, j] -= 1.0
                    for c in range(kx):
                        G[s, o + 1 + c, j] += beta[ext[s, lag], c]
            sol = _solve_block(Ms, w, C0, G)
            for k in range(K):
                for lag in range(p):
                    phi[k, lag] = sol[amap[k, lag]]
        C = coef_matrix(beta, phi, ext)
        quad = np.zeros(M)
        for s in range(M):
            acc = 0.0
            for a in range(D):
                row = 0.0
                for b in range(D):
                    row += Ms[s, a, b] * C[s, b]
                acc += C[s, a] * row
            quad[s] = acc
        num = np.zeros(K)
        den = np.zeros(K)
        for s in range(M):
            num[ext[s, 0]] += quad[s]
            den[ext[s, 0]] += Ns[s]
        if switching_variance:
            for k in range(K):
                if den[k] > 0.0:
                    sigma2[k] = max(num[k] / den[k], var_floor)
        else:
            tot = max(den.sum(), 1e-300)
            for k in range(K):
                sigma2[k] = max(num.sum() / tot, var_floor)
        if p == 0 and not switching_variance:
            break  # the coefficient solve does not depend on the variance: exact
        qv = 0.0
        for s in range(M):
            s2 = sigma2[ext[s, 0]]
            qv -= 0.5 * (Ns[s] * np.log(s2) + quad[s] / s2)
        if qv - prev <= 1e-13 * (abs(qv) + 1.0):
            break
        prev = qv
    return beta, phi, sigma2
