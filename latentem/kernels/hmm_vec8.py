"""HMM recursions in vector registers, for long sequences of at most 8 states.

The forward-backward pass (:func:`_forward_backward8`, forward and backward
recursions interleaved on one thread) and the forward pass alone
(:func:`_forward8`, the log-likelihood) with the states padded to 8 lanes of
a :mod:`latentem.kernels.vec8` vector, and their entry points for one
sequence of (n, K <= 8) scaled emissions (:func:`_forward_backward_vec`,
:func:`_forward_loglik_vec`), which the public kernels of
:mod:`latentem.kernels.hmm` call for sequences of at least ``LONG_SEQUENCE``
rows. Also the fast-math flags all the HMM kernels compile with.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import lazy_names, njit

(
    vadd,
    vfma,
    vkeep_arg,
    vkeep_max,
    vlane,
    vmul,
    vrow,
    vscale,
    vsplat,
    vstore,
    vstore_bytes,
    vsum,
    vzero,
) = lazy_names(
    "latentem.kernels.vec8",
    "vadd",
    "vfma",
    "vkeep_arg",
    "vkeep_max",
    "vlane",
    "vmul",
    "vrow",
    "vscale",
    "vsplat",
    "vstore",
    "vstore_bytes",
    "vsum",
    "vzero",
)

# Reassociation lets LLVM vectorise the K-wide loops; the grouping of the work
# is fixed, so results stay the same from run to run. Defined in this module, which the
# other HMM kernel modules (hmm.py, hmm_diag_gaussian8.py) import, for all of them.
_FM = {"reassoc", "contract", "arcp", "nsz"}


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
    same outputs as :func:`latentem.kernels.hmm._forward_backward_long`."""
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


#: Rows of emissions :func:`_viterbi_vec` pads to 8 lanes at a time (fewer than 8 states).
_VITERBI_CHUNK = 256


@njit(cache=True, fastmath=_FM, nogil=True)
def _viterbi_vec(log_b, a, b, log_startprob, log_transmat, states):
    """Viterbi over rows ``a .. b - 1`` (one sequence, K <= 8 states in vector lanes):
    writes the best path into ``states[a:b]`` and returns its log-probability.

    Each step is ``new[j] = max_i (delta[i] + log A[i, j]) + log b[t, j]`` for all j
    at once, one vector per i; ties go to the lowest i (strict comparisons in
    ascending i), as in the scalar kernel, whose sums these are exactly. With 8
    states the emissions are read in place; with fewer they pass through a buffer
    of ``_VITERBI_CHUNK`` rows padded to 8 lanes. Back-pointers take a byte each.
    """
    n, K = b - a, log_b.shape[1]
    # the states padded to 8 lanes: impossible transitions and emissions there
    A = np.full((8, 8), -np.inf)
    A[:K, :K] = log_transmat
    start = np.full((1, 8), -np.inf)
    start[0, :K] = log_startprob
    in_place = K == 8
    CH = n if in_place else _VITERBI_CHUNK
    lb = log_b if in_place else np.zeros((CH, 8))
    psi = np.empty((n, 8), dtype=np.uint8)
    delta = vrow(start, 0)
    minus_inf = vsplat(-np.inf)
    for c0 in range(0, n, CH):
        rows = min(CH, n - c0)
        first = a + c0 if in_place else 0  # the chunk's first row in lb
        if not in_place:
            for r in range(rows):
                for k in range(K):
                    lb[r, k] = log_b[a + c0 + r, k]
        for r in range(rows):
            if c0 + r == 0:
                delta = vadd(delta, vrow(lb, first))
                continue
            best = minus_inf
            arg = vzero()
            for i in range(K):
                cand = vadd(vsplat(vlane(delta, i)), vrow(A, i))
                arg = vkeep_arg(arg, best, cand, np.float64(i))
                best = vkeep_max(best, cand)
            delta = vadd(best, vrow(lb, first + r))
            vstore_bytes(psi, c0 + r, arg)
    best_k, best = 0, -np.inf
    for k in range(K):
        if vlane(delta, k) > best:
            best, best_k = vlane(delta, k), k
    states[b - 1] = best_k
    for t in range(n - 1, 0, -1):
        best_k = psi[t, best_k]
        states[a + t - 1] = best_k
    return best
