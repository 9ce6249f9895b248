"""numba kernels for hidden Markov models: scaled forward-backward and Viterbi.

Every kernel works on all sequences at once: rows of all sequences are
stacked in one (n_rows, K) array and ``offsets`` (n_sequences + 1) marks
where each sequence starts. Work is split into fixed groups of whole
sequences (``groups``, from :func:`sequence_groups`); each group writes its
own partial sums and the caller adds them in group order, so the result
never depends on how threads are scheduled.

The 8-state vectorised recursions for long sequences are in
:mod:`latentem.kernels.hmm_vec8`, the recursions over many short sequences at
once in :mod:`latentem.kernels.hmm_lanes` (the public kernels below choose
them by the lengths) and the diagonal Gaussian emission kernels in
:mod:`latentem.kernels.hmm_diag_gaussian8`; this module imports the latter's
public kernels, so they are importable from here as before.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange
from latentem.kernels.hmm_diag_gaussian8 import diag_gaussian_scaled8, diag_gaussian_stats8
from latentem.kernels.hmm_lanes import (
    LANES,
    forward_backward_lanes_jit,
    forward_loglik_lanes_jit,
    viterbi_lanes_jit,
)
from latentem.kernels.hmm_vec8 import (
    _FM,
    VEC_STATES,
    _forward_backward_vec,
    _forward_loglik_vec,
    _viterbi_vec,
)
from latentem.kernels.scaling import scale_rows

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
    # already sorted: drop repeats without np.unique's sort (it runs at every score)
    bounds = np.concatenate(([0], cuts, [n_seq])).astype(np.int64)
    keep = np.empty(bounds.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(bounds[1:], bounds[:-1], out=keep[1:])
    return bounds[keep]


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
#: one thread (:func:`~latentem.kernels.hmm_vec8._forward_backward8`), otherwise on
#: two threads. The choice depends only on the lengths, never on the number of threads.
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


#: Sequences of at least this many rows with at most :data:`VEC_STATES` states run
#: Viterbi's recursion in vector registers (all states of a step at once).
VITERBI_VEC_ROWS = 16


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
            if K <= VEC_STATES and b - a >= VITERBI_VEC_ROWS:
                seq_logprob[s] = _viterbi_vec(log_b, a, b, log_startprob, log_transmat, states)
                continue
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


#: Fewest groups of sequences (see :func:`sequence_groups`) for which the compiled
#: kernels run several sequences side by side (:mod:`latentem.kernels.hmm_lanes`).
LANE_MIN_GROUPS = 3


def _use_lanes(offsets, groups) -> bool:
    """Whether the many-sequence kernels pay: enough groups, no sequence long enough
    for the one-sequence kernels' vector or two-thread paths, and lanes busy enough.
    A step of eight lanes costs up to about three steps of one sequence (forward-backward
    with 8 to 10 states; one to two for the forward pass or Viterbi), and a block of
    lanes takes as many steps as its largest group.
    Depends only on the lengths."""
    n_groups = groups.shape[0] - 1
    if n_groups < LANE_MIN_GROUPS:
        return False
    n_rows = offsets[-1]
    if n_rows >= LONG_SEQUENCE and (offsets[1:] - offsets[:-1]).max() >= LONG_SEQUENCE:
        return False
    n_blocks = (n_groups + LANES - 1) // LANES
    largest = (offsets[groups[1:]] - offsets[groups[:-1]]).max()
    return bool(3 * n_blocks * largest <= n_rows)


def forward_backward_into_compiled(
    scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
):
    """:func:`forward_backward_into_jit`, or its many-sequence version where it pays."""
    if _use_lanes(offsets, groups):
        return forward_backward_lanes_jit(
            scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
        )
    return forward_backward_into_jit(
        scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
    )


def forward_loglik_scaled_compiled(scaled, shift, offsets, groups, startprob, transmat):
    """:func:`forward_loglik_scaled_jit`, or its many-sequence version where it pays."""
    if _use_lanes(offsets, groups):
        return forward_loglik_lanes_jit(scaled, shift, offsets, groups, startprob, transmat)
    return forward_loglik_scaled_jit(scaled, shift, offsets, groups, startprob, transmat)


def viterbi_compiled(log_b, offsets, groups, log_startprob, log_transmat):
    """:func:`viterbi_jit`, or its many-sequence version where it pays: always with more
    than :data:`VEC_STATES` states; with fewer, once all lanes have a group (the
    one-sequence kernel keeps the states of a step in one vector)."""
    K = log_b.shape[1]
    if _use_lanes(offsets, groups) and (
        K > VEC_STATES or (K < VEC_STATES and groups.shape[0] - 1 >= LANES)
    ):
        return viterbi_lanes_jit(log_b, offsets, groups, log_startprob, log_transmat)
    return viterbi_jit(log_b, offsets, groups, log_startprob, log_transmat)


def _choosing(chooser, like, numpy) -> Kernel:
    """The public kernel whose compiled side is ``chooser`` (a choice between ``like``
    and its many-sequence version), under ``like``'s name and documentation."""
    kernel = Kernel(chooser, numpy)
    kernel.__name__ = kernel.__qualname__ = like.__name__.removesuffix("_jit")
    kernel.__doc__ = like.__doc__
    return kernel


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
scale_emissions = Kernel(scale_emissions_jit, small.scale_emissions)
forward_backward_into = _choosing(
    forward_backward_into_compiled, forward_backward_into_jit, small.forward_backward_into
)
forward_backward_scaled = Kernel(forward_backward_scaled_jit, small.forward_backward_scaled)
forward_backward = Kernel(forward_backward_jit, small.forward_backward)
forward_loglik_scaled = _choosing(
    forward_loglik_scaled_compiled, forward_loglik_scaled_jit, small.forward_loglik_scaled
)
forward_loglik = Kernel(forward_loglik_jit, small.forward_loglik)
viterbi = _choosing(viterbi_compiled, viterbi_jit, small.viterbi)
