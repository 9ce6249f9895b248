"""numba kernels for hidden Markov models: scaled forward-backward and Viterbi.

Every kernel works on all sequences at once: rows of all sequences are
stacked in one (n_rows, K) array and ``offsets`` (n_sequences + 1) marks
where each sequence starts. Work is split into fixed groups of whole
sequences (``groups``, from :func:`sequence_groups`); each group writes its
own partial sums and the caller adds them in group order, so the result
never depends on how threads are scheduled.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import lazy_names, njit, prange
from latentem.kernels.scaling import FLUSH, scale_rows

(
    vadd,
    vexp,
    vfma,
    vlane,
    vmax,
    vmul,
    vrow,
    vscale,
    vsplat,
    vstore,
    vsub,
    vsum,
    vzero,
) = lazy_names(
    "latentem.kernels.vec8",
    "vadd",
    "vexp",
    "vfma",
    "vlane",
    "vmax",
    "vmul",
    "vrow",
    "vscale",
    "vsplat",
    "vstore",
    "vsub",
    "vsum",
    "vzero",
)

__all__ = [
    "sequence_groups",
    "scale_emissions",
    "forward_backward",
    "forward_backward_scaled",
    "forward_backward_into",
    "forward_loglik",
    "forward_loglik_scaled",
    "viterbi",
    "diag_gaussian_scaled8",
    "diag_gaussian_stats8",
]

MAX_GROUPS = 64


def sequence_groups(offsets: np.ndarray, max_groups: int = MAX_GROUPS) -> np.ndarray:
    """Split sequences into at most ``max_groups`` contiguous groups of similar row counts.

    Returns group boundaries as sequence indices (n_groups + 1,). The split
    depends only on the lengths, never on the number of threads.
    """
    n_seq = len(offsets) - 1
    n_groups = max(1, min(max_groups, n_seq))
    total = offsets[-1]
    # The first sequence whose start reaches each equal share of the rows.
    targets = (np.arange(1, n_groups) * total) // n_groups
    cuts = np.searchsorted(offsets[:-1], targets, side="left")
    bounds = np.unique(np.concatenate(([0], cuts, [n_seq]))).astype(np.int64)
    return bounds


# Reassociation lets LLVM vectorise the K-wide loops; the grouping of the work
# is fixed, so results stay the same from run to run.
_FM = {"reassoc", "contract", "arcp", "nsz"}
#: Rows per block of the parallel emission scaling.
_SCALE_BLOCK = 128


@njit(cache=True, parallel=True)
def scale_emissions_jit(log_b):
    """``(scaled, shift)``: ``scaled = exp(log_b - shift)`` with ``shift`` the row maxima
    (see :mod:`latentem.kernels.scaling`), the form the forward-backward kernels take."""
    n, K = log_b.shape
    B = _SCALE_BLOCK
    scaled = np.empty((n, K))
    shift = np.empty(n)
    n_blocks = (n + B - 1) // B
    n_parts = min(64, n_blocks)
    per = (n_blocks + n_parts - 1) // n_parts
    for part in prange(n_parts):
        logp = np.empty((K, B))
        e = np.empty((K, B))
        bits = np.empty((K, B), dtype=np.int64)
        mx = np.empty(B)
        for blk in range(part * per, min(n_blocks, (part + 1) * per)):
            r0 = blk * B
            scale_rows(log_b, r0, min(B, n - r0), scaled, shift, logp, mx, e, bits)
    return scaled, shift


@njit(cache=True, fastmath=_FM)
def _forward_rows(scaled, shift, t0, t1, first, startprob, transmat, alpha, prev, u):
    """Normalised forward variables of rows t0..t1-1 into ``alpha[t]`` (not stored if
    ``alpha`` has no rows); ``prev`` holds the one of row t0 - 1 on entry (unless
    ``first``: t0 starts the sequence) and of row t1 - 1 on exit. Returns the rows'
    log-likelihood (-inf if impossible)."""
    K = scaled.shape[1]
    store = alpha.shape[0] > 0
    ll = 0.0
    for t in range(t0, t1):
        if first and t == t0:
            for j in range(K):
                u[j] = startprob[j] * scaled[t, j]
        else:
            for j in range(K):
                u[j] = 0.0
            for i in range(K):
                p = prev[i]
                for j in range(K):
                    u[j] += p * transmat[i, j]
            for j in range(K):
                u[j] *= scaled[t, j]
        total = 0.0
        for j in range(K):
            total += u[j]
        if not total > 0.0:
            return -np.inf
        ll += np.log(total) + shift[t]
        inv = 1.0 / total
        for j in range(K):
            prev[j] = u[j] * inv
        if store:
            for j in range(K):
                alpha[t, j] = prev[j]
    return ll


@njit(cache=True, fastmath=_FM)
def _backward_rows(scaled, t0, t1, transmat, beta):
    """Backward variables of rows t1-1 down to t0 (the sequence ends at t1), each
    normalised to sum 1, into ``beta[t]``."""
    K = scaled.shape[1]
    v = np.empty(K)
    for k in range(K):
        beta[t1 - 1, k] = 1.0 / K
    for t in range(t1 - 2, t0 - 1, -1):
        for j in range(K):
            v[j] = scaled[t + 1, j] * beta[t + 1, j]
        total = 0.0
        for i in range(K):
            acc = 0.0
            for j in range(K):
                acc += transmat[i, j] * v[j]
            beta[t, i] = acc
            total += acc
        inv = 1.0 / total if total > 0.0 else 0.0
        for k in range(K):
            beta[t, k] *= inv


@njit(cache=True, fastmath=_FM)
def _forward_posterior_rows(scaled, shift, t0, t1, transmat, post, prev, u, xi):
    """Forward pass over rows t0..t1-1 whose backward variables are already in
    ``post[t]``: turns them into posteriors and adds the transitions into each row
    (from row t - 1) to ``xi`` (still to be multiplied by the transition matrix).
    ``prev`` holds the normalised forward variable of row t0 - 1. Returns the rows'
    log-likelihood (-inf if impossible)."""
    K = scaled.shape[1]
    ll = 0.0
    for t in range(t0, t1):
        for j in range(K):
            u[j] = 0.0
        for i in range(K):
            p = prev[i]
            for j in range(K):
                u[j] += p * transmat[i, j]
        total = 0.0
        z = 0.0
        for j in range(K):
            u[j] *= scaled[t, j]
            total += u[j]
            z += u[j] * post[t, j]
        if not (total > 0.0 and z > 0.0):
            return -np.inf
        ll += np.log(total) + shift[t]
        # xi_{t-1}(i, j) = alpha_{t-1}(i) A_ij b_t(j) beta_t(j) / z, where
        # z = sum_j u_j beta_t(j) also normalises the posterior u * beta_t.
        inv = 1.0 / z
        for i in range(K):
            p = prev[i] * inv
            for j in range(K):
                xi[i, j] += p * scaled[t, j] * post[t, j]
        inv_total = 1.0 / total
        for j in range(K):
            post[t, j] *= u[j] * inv
            prev[j] = u[j] * inv_total
    return ll


@njit(cache=True, fastmath=_FM)
def _backward_posterior_rows(scaled, t0, t1, xi_below, transmat, weight, post, nxt, v, beta, xi):
    """Backward pass over rows t1-1 down to t0 whose forward variables (any positive
    scale per row) are in ``post[t]``: turns them into posteriors and adds
    ``weight`` times the transitions out of each row t < ``xi_below`` to ``xi`` (still
    to be multiplied by the transition matrix). ``nxt`` holds the backward variable
    of row t1 (any positive scale)."""
    K = scaled.shape[1]
    for t in range(t1 - 1, t0 - 1, -1):
        for j in range(K):
            v[j] = scaled[t + 1, j] * nxt[j]
        for i in range(K):
            acc = 0.0
            for j in range(K):
                acc += transmat[i, j] * v[j]
            beta[i] = acc
        z = 0.0
        for i in range(K):
            z += post[t, i] * beta[i]
        if not z > 0.0:
            continue  # an impossible sequence; the caller marks it
        # xi_t(i, j) = alpha_t(i) A_ij v_j / z with z = alpha_t . (A v): it also
        # normalises the posterior alpha_t * beta_t.
        inv = 1.0 / z
        if t < xi_below:
            for i in range(K):
                p = post[t, i] * inv * weight
                for j in range(K):
                    xi[i, j] += p * v[j]
        total = 0.0
        for i in range(K):
            post[t, i] *= beta[i] * inv
            total += beta[i]
        inv = 1.0 / total
        for i in range(K):
            nxt[i] = beta[i] * inv


@njit(cache=True, fastmath=_FM)
def _forward_backward_one(
    scaled, shift, a, b, startprob, transmat, weight, post, start_acc, xi, prev, u, nxt, v, beta
):
    """One sequence, rows a..b-1: posteriors into post[a:b], weighted start and
    transition counts (the latter still to be multiplied by the transition matrix)
    added to start_acc and xi. Returns its log-likelihood (-inf if impossible)."""
    K = scaled.shape[1]
    ll = _forward_rows(scaled, shift, a, b, True, startprob, transmat, post, prev, u)
    if ll == -np.inf:
        return ll
    # The last row's normalised forward variable is its posterior.
    for k in range(K):
        nxt[k] = 1.0
    _backward_posterior_rows(scaled, a, b - 1, b - 1, transmat, weight, post, nxt, v, beta, xi)
    for k in range(K):
        start_acc[k] += weight * post[a, k]
    return ll


#: Sequences at least this long are processed alone: the forward recursion runs from
#: the start and the backward one from the end; past the middle each finds the
#: other's variables already there and turns them into posteriors and transition
#: sums as it goes. With at most :data:`VEC_STATES` states both run interleaved on
#: one thread (:func:`_forward_backward8`), otherwise on two threads. The choice
#: depends only on the lengths, never on the number of threads.
LONG_SEQUENCE = 8192


@njit(cache=True, parallel=True, fastmath=_FM)
def _forward_backward_long(
    scaled, shift, a, b, startprob, transmat, weight, post, start_acc, trans_acc
):
    """One long sequence on two threads; post[a:b] receives the posteriors, the
    weighted start and transition counts are added to start_acc and trans_acc.
    Returns the log-likelihood."""
    K = scaled.shape[1]
    m = (a + b) // 2
    fwd = np.empty(K)  # forward variable of the row reached by the forward thread
    bwd = np.empty(K)
    part = np.zeros((2, K, K))
    lls = np.zeros(2)
    # First half: alpha into post[a:m], beta into post[m:b].
    for task in prange(2):
        if task == 0:
            u = np.empty(K)
            lls[0] = _forward_rows(scaled, shift, a, m, True, startprob, transmat, post, fwd, u)
        else:
            _backward_rows(scaled, m, b, transmat, post)
    if lls[0] == -np.inf:
        return -np.inf
    for k in range(K):
        bwd[k] = post[m, k]
    # Second half: each thread meets the other's variables and makes posteriors.
    # The forward thread counts the transitions into rows m..b-1, the backward one
    # those out of rows a..m-2.
    for task in prange(2):
        u = np.empty(K)
        if task == 0:
            lls[1] = _forward_posterior_rows(scaled, shift, m, b, transmat, post, fwd, u, part[0])
        else:
            beta = np.empty(K)
            _backward_posterior_rows(
                scaled, a, m, m - 1, transmat, 1.0, post, bwd, u, beta, part[1]
            )
    if lls[1] == -np.inf:
        return -np.inf
    for i in range(K):
        for j in range(K):
            trans_acc[i, j] += weight * (part[0, i, j] + part[1, i, j]) * transmat[i, j]
    for k in range(K):
        start_acc[k] += weight * post[a, k]
    return lls[0] + lls[1]


#: Long sequences with at most this many states run the forward and backward
#: recursions in vector registers (:mod:`latentem.kernels.vec8`). On one thread
#: they take about a third of the CPU time of the two-thread path for 8 states,
#: and need no second core, which a shared machine often does not have.
VEC_STATES = 8


@njit(inline="always")
def _matvec8(u, m0, m1, m2, m3, m4, m5, m6, m7):
    """``sum_i u[i] * m_i``: four independent partial sums, so the chain of dependent
    FMAs is two long instead of eight."""
    z = vzero()
    s0 = vfma(z, vlane(u, 0), m0)
    s1 = vfma(z, vlane(u, 1), m1)
    s2 = vfma(z, vlane(u, 2), m2)
    s3 = vfma(z, vlane(u, 3), m3)
    s0 = vfma(s0, vlane(u, 4), m4)
    s1 = vfma(s1, vlane(u, 5), m5)
    s2 = vfma(s2, vlane(u, 6), m6)
    s3 = vfma(s3, vlane(u, 7), m7)
    return vadd(vadd(s0, s1), vadd(s2, s3))


@njit(inline="always")
def _add_log(ll, prod, s):
    """Adds log(s) to the log-likelihood ``ll`` through a running product ``prod``, logged
    only when it gets small: a log call per row would cost as much as the recursion."""
    if not s > 0.0:
        return -np.inf, prod  # an impossible sequence
    if s < 1e-100:
        return ll + np.log(s), prod
    prod *= s
    if prod < 1e-200:
        return ll + np.log(prod), 1.0
    return ll, prod


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward_backward8(sc, shift, r0, s0, T, init, A, AT, post):
    """One sequence of T >= 2 rows (r0..r0+T-1 of ``sc`` and ``post``, row s0 of
    ``shift`` on) with its states padded to 8 (zero emissions, transitions and start
    probabilities): posteriors into ``post``; returns the log-likelihood and the
    transition sums ``xi`` (8, 8), still to be multiplied by the transition matrix.

    Each recursion is a chain of short dependent steps, so the forward and the
    backward one run side by side in one loop, in vector registers
    (:mod:`latentem.kernels.vec8`), overlapping on one core. They meet in the
    middle: in the first half each writes its own variables into ``post`` (forward
    ones in the first half of the rows, backward ones in the second); in the second
    half each finds the other's there and makes posteriors and transition sums.
    ``init`` (2, 8): the start probabilities and the last backward variable.
    """
    a0, a1, a2, a3 = vrow(A, 0), vrow(A, 1), vrow(A, 2), vrow(A, 3)
    a4, a5, a6, a7 = vrow(A, 4), vrow(A, 5), vrow(A, 6), vrow(A, 7)
    b0, b1, b2, b3 = vrow(AT, 0), vrow(AT, 1), vrow(AT, 2), vrow(AT, 3)
    b4, b5, b6, b7 = vrow(AT, 4), vrow(AT, 5), vrow(AT, 6), vrow(AT, 7)
    # Forward variables u are normalised one step late: u_t = (u_{t-1} A * b_t) / S_{t-1}
    # with S the sums, so the sum and its reciprocal run alongside the next
    # matrix-vector product instead of before it; the S are the scaling factors.
    u = vmul(vrow(init, 0), vrow(sc, r0))
    vstore(post, r0, u)
    s = vsum(u)
    ll, prod = _add_log(shift[s0], 1.0, s)
    cu = 1.0 / s
    v = vrow(init, 1)
    vstore(post, r0 + T - 1, v)
    cv = 1.0 / vsum(v)
    m = T // 2
    # First half: forward rows 1..m-1, backward rows T-2..m (one more when T is odd).
    for n in range(1, T - m):
        if n < m:
            t = r0 + n
            u = vscale(vmul(_matvec8(u, a0, a1, a2, a3, a4, a5, a6, a7), vrow(sc, t)), cu)
            vstore(post, t, u)
            s = vsum(u)
            ll, prod = _add_log(ll + shift[s0 + n], prod, s)
            cu = 1.0 / s
        # beta_t = A (b_{t+1} * beta_{t+1}), rescaled by the previous sum.
        t = r0 + T - 1 - n
        v = _matvec8(vscale(vmul(v, vrow(sc, t + 1)), cv), b0, b1, b2, b3, b4, b5, b6, b7)
        vstore(post, t, v)
        cv = 1.0 / vsum(v)
    x0, x1, x2, x3 = vzero(), vzero(), vzero(), vzero()
    x4, x5, x6, x7 = vzero(), vzero(), vzero(), vzero()
    # Second half: forward rows m..T-1 count the transitions into them, backward rows
    # m-1..0 those out of rows m-2..0.
    for k in range(T - m):
        t = r0 + m + k
        bt = vrow(sc, t)
        # xi_{t-1}(i, j) = alpha_{t-1}(i) A_ij b_t(j) beta_t(j) / (S_{t-1} D_t) with
        # D_t = u_t . beta_t, which also normalises the posterior u_t * beta_t.
        p = u
        w_scale = cu
        u = vscale(vmul(_matvec8(u, a0, a1, a2, a3, a4, a5, a6, a7), bt), cu)
        s = vsum(u)
        ll, prod = _add_log(ll + shift[s0 + m + k], prod, s)
        cu = 1.0 / s
        beta = vrow(post, t)
        ub = vmul(u, beta)
        inv = 1.0 / vsum(ub)
        vstore(post, t, vscale(ub, inv))
        w = vscale(vmul(bt, beta), inv * w_scale)
        x0 = vfma(x0, vlane(p, 0), w)
        x1 = vfma(x1, vlane(p, 1), w)
        x2 = vfma(x2, vlane(p, 2), w)
        x3 = vfma(x3, vlane(p, 3), w)
        x4 = vfma(x4, vlane(p, 4), w)
        x5 = vfma(x5, vlane(p, 5), w)
        x6 = vfma(x6, vlane(p, 6), w)
        x7 = vfma(x7, vlane(p, 7), w)
        if k < m:
            t = r0 + m - 1 - k
            # q = b_{t+1} * beta_{t+1} and beta_t = A q: xi_t(i, j) = alpha_t(i) A_ij
            # q_j / (alpha_t . beta_t), whatever the scale of alpha_t.
            q = vscale(vmul(v, vrow(sc, t + 1)), cv)
            v = _matvec8(q, b0, b1, b2, b3, b4, b5, b6, b7)
            cv = 1.0 / vsum(v)
            alpha = vrow(post, t)
            av = vmul(alpha, v)
            inv = 1.0 / vsum(av)
            vstore(post, t, vscale(av, inv))
            if k > 0:  # the transition out of row m-1 is the forward's
                w = vscale(q, inv)
                x0 = vfma(x0, vlane(alpha, 0), w)
                x1 = vfma(x1, vlane(alpha, 1), w)
                x2 = vfma(x2, vlane(alpha, 2), w)
                x3 = vfma(x3, vlane(alpha, 3), w)
                x4 = vfma(x4, vlane(alpha, 4), w)
                x5 = vfma(x5, vlane(alpha, 5), w)
                x6 = vfma(x6, vlane(alpha, 6), w)
                x7 = vfma(x7, vlane(alpha, 7), w)
    xi = np.empty((8, 8))
    vstore(xi, 0, x0)
    vstore(xi, 1, x1)
    vstore(xi, 2, x2)
    vstore(xi, 3, x3)
    vstore(xi, 4, x4)
    vstore(xi, 5, x5)
    vstore(xi, 6, x6)
    vstore(xi, 7, x7)
    return ll + np.log(prod), xi


@njit(cache=True)
def _forward_backward_vec(
    scaled, shift, a, b, startprob, transmat, weight, post, start_acc, trans_acc
):
    """One long sequence with K <= 8 states through :func:`_forward_backward8`;
    same outputs as :func:`_forward_backward_long`."""
    K = scaled.shape[1]
    T = b - a
    A = np.zeros((8, 8))
    A[:K, :K] = transmat
    AT = np.ascontiguousarray(A.T)
    init = np.zeros((2, 8))
    init[0, :K] = startprob
    init[1, :K] = 1.0 / K
    if K == 8:  # (vector rows need C-contiguous arrays; a no-op for those)
        sc = np.ascontiguousarray(scaled)
        ll, xi = _forward_backward8(sc, shift, a, a, T, init, A, AT, post)
    else:  # states padded to 8 with zeros (they stay zero)
        sc = np.zeros((T, 8))
        sc[:, :K] = scaled[a:b]
        out = np.empty((T, 8))
        ll, xi = _forward_backward8(sc, shift, 0, a, T, init, A, AT, out)
        post[a:b] = out[:, :K]
    if ll == -np.inf:
        return ll
    for i in range(K):
        for j in range(K):
            trans_acc[i, j] += weight * xi[i, j] * transmat[i, j]
    for k in range(K):
        start_acc[k] += weight * post[a, k]
    return ll


@njit(cache=True, parallel=True)
def forward_backward_into_jit(
    scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
):
    """:func:`forward_backward_scaled` writing the posteriors into ``post`` (n_rows, K,
    C-contiguous), which is also returned. An EM loop hands the same array back every iteration:
    a fresh one costs a page fault per 4 KiB on first touch, which for a long
    sequence takes longer than the recursions."""
    n_rows, K = scaled.shape
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    start_counts = np.zeros((n_groups, K))
    trans_counts = np.zeros((n_groups, K, K))
    seq_loglik = np.empty(n_seq)
    for g in prange(n_groups):
        prev = np.empty(K)
        u = np.empty(K)
        nxt = np.empty(K)
        v = np.empty(K)
        beta = np.empty(K)
        xi = np.zeros((K, K))
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b - a >= LONG_SEQUENCE:
                continue  # done below, with both threads on it
            seq_loglik[s] = _forward_backward_one(
                scaled,
                shift,
                a,
                b,
                startprob,
                transmat,
                seq_weights[s],
                post,
                start_counts[g],
                xi,
                prev,
                u,
                nxt,
                v,
                beta,
            )
        for i in range(K):
            for j in range(K):
                trans_counts[g, i, j] = xi[i, j] * transmat[i, j]
    for g in range(n_groups):
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b - a >= LONG_SEQUENCE and K <= VEC_STATES:
                seq_loglik[s] = _forward_backward_vec(
                    scaled,
                    shift,
                    a,
                    b,
                    startprob,
                    transmat,
                    seq_weights[s],
                    post,
                    start_counts[g],
                    trans_counts[g],
                )
            elif b - a >= LONG_SEQUENCE:
                seq_loglik[s] = _forward_backward_long(
                    scaled,
                    shift,
                    a,
                    b,
                    startprob,
                    transmat,
                    seq_weights[s],
                    post,
                    start_counts[g],
                    trans_counts[g],
                )
    # An impossible sequence has no posteriors: mark its rows, whichever path ran it.
    for s in range(n_seq):
        if seq_loglik[s] == -np.inf:
            post[offsets[s] : offsets[s + 1]] = np.nan
    return post, start_counts, trans_counts, seq_loglik


@njit(cache=True)
def forward_backward_scaled_jit(scaled, shift, offsets, groups, startprob, transmat, seq_weights):
    """:func:`forward_backward` on emissions already scaled by :func:`scale_emissions`
    (or a family's fused kernel doing the same)."""
    post = np.empty(scaled.shape)
    return forward_backward_into_jit(
        scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
    )


@njit(cache=True)
def forward_backward_jit(log_b, offsets, groups, startprob, transmat, seq_weights):
    """Posteriors, expected start and transition counts, per-sequence log-likelihoods.

    The start and transition counts of sequence s are multiplied by
    ``seq_weights[s]`` (ones for a plain HMM; a cluster's responsibilities
    for an HMM inside a mixture); the posteriors are not.

    Parameters
    ----------
    log_b : (n_rows, K) float64
        Emission log-probabilities; a row of zeros contributes no emission
        (a missing observation), -inf excludes a state.
    offsets : (n_sequences + 1,) int64
    groups : (n_groups + 1,) int64, from :func:`sequence_groups`
    startprob : (K,) float64
    transmat : (K, K) float64
    seq_weights : (n_sequences,) float64

    Returns
    -------
    posteriors : (n_rows, K) float64
        NaN for the rows of a sequence with zero probability.
    start_counts : (n_groups, K) float64
        Per-group sums of the first posterior of each sequence.
    trans_counts : (n_groups, K, K) float64
        Per-group sums over time of the expected transitions.
    seq_loglik : (n_sequences,) float64
        -inf for a sequence that has zero probability under the model.
    """
    scaled, shift = scale_emissions_jit(log_b)
    return forward_backward_scaled_jit(
        scaled, shift, offsets, groups, startprob, transmat, seq_weights
    )


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _forward8(sc, shift, r0, s0, T, init, A):
    """Log-likelihood of one sequence from the forward recursion of
    :func:`_forward_backward8` alone (same padding and arguments)."""
    a0, a1, a2, a3 = vrow(A, 0), vrow(A, 1), vrow(A, 2), vrow(A, 3)
    a4, a5, a6, a7 = vrow(A, 4), vrow(A, 5), vrow(A, 6), vrow(A, 7)
    u = vmul(vrow(init, 0), vrow(sc, r0))
    s = vsum(u)
    ll, prod = _add_log(shift[s0], 1.0, s)
    cu = 1.0 / s
    for n in range(1, T):
        u = vscale(vmul(_matvec8(u, a0, a1, a2, a3, a4, a5, a6, a7), vrow(sc, r0 + n)), cu)
        s = vsum(u)
        ll, prod = _add_log(ll + shift[s0 + n], prod, s)
        cu = 1.0 / s
    return ll + np.log(prod)


@njit(cache=True)
def _forward_loglik_vec(scaled, shift, a, b, startprob, transmat):
    """:func:`_forward8` for rows a..b-1 of (n, K <= 8) scaled emissions."""
    K = scaled.shape[1]
    T = b - a
    A = np.zeros((8, 8))
    A[:K, :K] = transmat
    init = np.zeros((1, 8))
    init[0, :K] = startprob
    if K == 8:
        return _forward8(np.ascontiguousarray(scaled), shift, a, a, T, init, A)
    sc = np.zeros((T, 8))
    sc[:, :K] = scaled[a:b]
    return _forward8(sc, shift, 0, a, T, init, A)


@njit(cache=True, parallel=True, fastmath=_FM)
def forward_loglik_scaled_jit(scaled, shift, offsets, groups, startprob, transmat):
    """:func:`forward_loglik` on emissions scaled by :func:`scale_emissions`."""
    K = scaled.shape[1]
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    seq_loglik = np.empty(n_seq)
    no_alpha = np.empty((0, K))  # the log-likelihood needs no forward variables kept
    for g in prange(n_groups):
        prev = np.empty(K)
        u = np.empty(K)
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b - a >= LONG_SEQUENCE and K <= VEC_STATES:
                continue  # below, in vector registers
            seq_loglik[s] = _forward_rows(
                scaled, shift, a, b, True, startprob, transmat, no_alpha, prev, u
            )
    for s in range(n_seq):
        a, b = offsets[s], offsets[s + 1]
        if b - a >= LONG_SEQUENCE and K <= VEC_STATES:
            seq_loglik[s] = _forward_loglik_vec(scaled, shift, a, b, startprob, transmat)
    return seq_loglik


@njit(cache=True)
def forward_loglik_jit(log_b, offsets, groups, startprob, transmat):
    """Per-sequence log-likelihoods from the scaled forward pass alone."""
    scaled, shift = scale_emissions_jit(log_b)
    return forward_loglik_scaled_jit(scaled, shift, offsets, groups, startprob, transmat)


@njit(cache=True, parallel=True)
def viterbi_jit(log_b, offsets, groups, log_startprob, log_transmat):
    """Most likely state path of every sequence and its joint log-probability.

    Ties go to the lowest state index, as in hmmlearn.
    """
    n_rows, K = log_b.shape
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    states = np.empty(n_rows, dtype=np.int64)
    seq_logprob = np.empty(n_seq)
    for g in prange(n_groups):
        delta = np.empty(K)
        new = np.empty(K)
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            psi = np.empty((b - a, K), dtype=np.int64)
            for k in range(K):
                delta[k] = log_startprob[k] + log_b[a, k]
            for t in range(a + 1, b):
                for j in range(K):
                    best = -np.inf
                    arg = 0
                    for i in range(K):
                        v = delta[i] + log_transmat[i, j]
                        if v > best:
                            best = v
                            arg = i
                    new[j] = best + log_b[t, j]
                    psi[t - a, j] = arg
                for k in range(K):
                    delta[k] = new[k]
            best = -np.inf
            arg = 0
            for k in range(K):
                if delta[k] > best:
                    best = delta[k]
                    arg = k
            seq_logprob[s] = best
            states[b - 1] = arg
            for t in range(b - 1, a, -1):
                arg = psi[t - a, arg]
                states[t - 1] = arg
    return states, seq_logprob


# Diagonal Gaussian emissions of at most 8 states, one vector of states per row:
# the HMM's other two passes over the data, written like the recursions above.
#: Fixed split of the rows over threads.
_ROW_PARTS = 64


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
        for r in range(part * per, min(n, (part + 1) * per)):
            maha = vzero()
            for d in range(D):
                t = vmul(vsub(vsplat(X[r, d]), vrow(cols, d)), vrow(cols, D + d))
                maha = vadd(maha, vmul(t, t))
            logp = vfma(vrow(cols, 2 * D), -0.5, maha)
            mx = vmax(logp)
            shift[r] = mx
            e = vexp(vsub(logp, vsplat(mx)), FLUSH)
            if K == 8:
                vstore(scaled, r, e)
            else:
                for k in range(K):
                    scaled[r, k] = vlane(e, k)


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
        w8 = np.zeros((1, 8))
        for r in range(part * per, min(n, (part + 1) * per)):
            if K == 8:
                w = vrow(post, r)
            else:
                for k in range(K):
                    w8[0, k] = post[r, k]
                w = vrow(w8, 0)
            vstore(parts, base, vadd(vrow(parts, base), w))
            for d in range(D):
                t = vsub(vsplat(X[r, d]), vrow(means_t, d))
                wt = vmul(w, t)
                vstore(parts, base + 1 + d, vadd(vrow(parts, base + 1 + d), wt))
                vstore(parts, base + 1 + D + d, vadd(vrow(parts, base + 1 + D + d), vmul(wt, t)))
    tot = np.zeros((2 * D + 1, 8))
    for part in range(_ROW_PARTS):
        tot += parts[part * (2 * D + 1) : (part + 1) * (2 * D + 1)]
    nk = tot[0, :K].copy()
    S = np.ascontiguousarray(tot[1 : D + 1, :K].T)
    Q = np.empty((K, 1, D))
    Q[:, 0, :] = tot[D + 1 :, :K].T
    return nk, S, Q


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
scale_emissions = Kernel(scale_emissions_jit, small.scale_emissions)
forward_backward_into = Kernel(forward_backward_into_jit, small.forward_backward_into)
forward_backward_scaled = Kernel(forward_backward_scaled_jit, small.forward_backward_scaled)
forward_backward = Kernel(forward_backward_jit, small.forward_backward)
forward_loglik_scaled = Kernel(forward_loglik_scaled_jit, small.forward_loglik_scaled)
forward_loglik = Kernel(forward_loglik_jit, small.forward_loglik)
viterbi = Kernel(viterbi_jit, small.viterbi)
diag_gaussian_scaled8 = Kernel(diag_gaussian_scaled8_jit, small.diag_gaussian_scaled8)
diag_gaussian_stats8 = Kernel(diag_gaussian_stats8_jit, small.diag_gaussian_stats8)
