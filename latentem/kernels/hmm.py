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
from numba import njit, prange

__all__ = ["sequence_groups", "forward_backward", "viterbi", "forward_loglik"]

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


@njit(cache=True, fastmath=_FM)
def _scale_row(log_b, t, scaled, shift):
    # scaled = exp(log_b - rowmax): nothing underflows however extreme the row.
    K = log_b.shape[1]
    m = -np.inf
    for k in range(K):
        if log_b[t, k] > m:
            m = log_b[t, k]
    if m == -np.inf:  # impossible row: every state excluded
        shift[t] = -np.inf
        for k in range(K):
            scaled[t, k] = 0.0
    else:
        shift[t] = m
        for k in range(K):
            d = log_b[t, k] - m
            # exp(-500) ~ 1e-217 is nothing next to the row's largest term (1.0), and
            # flushing it keeps subnormal numbers, which are 100-fold slower, out of
            # the recursions.
            scaled[t, k] = 0.0 if d < -500.0 else np.exp(d)


@njit(cache=True, parallel=True)
def _scale_emissions(log_b):
    n, K = log_b.shape
    scaled = np.empty((n, K))
    shift = np.empty(n)
    n_blocks = (n + 4095) // 4096
    for blk in prange(n_blocks):
        for t in range(blk * 4096, min(n, (blk + 1) * 4096)):
            _scale_row(log_b, t, scaled, shift)
    return scaled, shift


@njit(cache=True, fastmath=_FM)
def _forward_backward_one(
    scaled,
    shift,
    a,
    b,
    startprob,
    transmat,
    weight,
    post,
    scale,
    start_acc,
    trans_acc,
    tmp,
    beta,
    beta_next,
):
    """One sequence, rows a..b-1; returns its log-likelihood (-inf if impossible)."""
    K = scaled.shape[1]
    # Forward pass: post[t] holds the scaled forward variable alpha_t.
    ll = _forward_pass(scaled, shift, a, b, startprob, transmat, post, scale, tmp)
    if ll == -np.inf:
        return ll
    # Backward pass, turning alpha into posteriors. The expected transitions
    # are A * sum_t alpha_t (x) tmp_t; the caller multiplies by A once at the end.
    for k in range(K):
        beta_next[k] = 1.0
    for t in range(b - 2, a - 1, -1):
        inv = 1.0 / scale[t + 1]
        for j in range(K):
            tmp[j] = scaled[t + 1, j] * beta_next[j] * inv
        for i in range(K):
            p = post[t, i]
            wp = weight * p
            acc = 0.0
            for j in range(K):
                acc += transmat[i, j] * tmp[j]
                trans_acc[i, j] += wp * tmp[j]
            beta[i] = acc
        for k in range(K):
            post[t + 1, k] *= beta_next[k]
            beta_next[k] = beta[k]
    for k in range(K):
        post[a, k] *= beta_next[k]
        start_acc[k] += weight * post[a, k]
    return ll


#: Sequences at least this long are processed alone, with the forward and
#: backward recursions on two threads at once (they are independent when each
#: is normalised on its own) and the posteriors and transition sums in
#: parallel chunks. The choice depends only on the lengths, never on threads.
LONG_SEQUENCE = 8192
_LONG_CHUNKS = 16


@njit(cache=True, fastmath=_FM)
def _forward_pass(scaled, shift, a, b, startprob, transmat, alpha, scale, tmp):
    """Normalised forward variables of rows a..b-1 into alpha, their normalisers into
    scale; returns the log-likelihood (-inf if the sequence is impossible)."""
    K = scaled.shape[1]
    ll = 0.0
    for t in range(a, b):
        if t == a:
            for j in range(K):
                tmp[j] = startprob[j]
        else:
            for j in range(K):
                tmp[j] = 0.0
            for i in range(K):
                p = alpha[t - 1, i]
                for j in range(K):
                    tmp[j] += p * transmat[i, j]
        total = 0.0
        for j in range(K):
            v = tmp[j] * scaled[t, j]
            alpha[t, j] = v
            total += v
        if not total > 0.0:
            return -np.inf
        scale[t] = total
        ll += np.log(total) + shift[t]
        inv = 1.0 / total
        for k in range(K):
            alpha[t, k] *= inv
    return ll


@njit(cache=True, fastmath=_FM)
def _backward_pass(scaled, a, b, transmat, beta, norm):
    """Backward variables of rows a..b-1, each row normalised to sum 1, into beta[0:b-a];
    norm[r] receives row r's sum before normalising (so A (B beta)_{r+1} = norm[r] beta[r])."""
    K = scaled.shape[1]
    n = b - a
    v = np.empty(K)
    for k in range(K):
        beta[n - 1, k] = 1.0 / K
    norm[n - 1] = 1.0
    for t in range(n - 2, -1, -1):
        for j in range(K):
            v[j] = scaled[a + t + 1, j] * beta[t + 1, j]
        total = 0.0
        for i in range(K):
            acc = 0.0
            for j in range(K):
                acc += transmat[i, j] * v[j]
            beta[t, i] = acc
            total += acc
        norm[t] = total
        inv = 1.0 / total if total > 0.0 else 0.0
        for k in range(K):
            beta[t, k] *= inv


@njit(cache=True, parallel=True, fastmath=_FM)
def _forward_backward_long(
    scaled, shift, a, b, startprob, transmat, weight, post, scale, start_acc, trans_acc
):
    """One long sequence: forward and backward at once, then posteriors and transitions
    in fixed chunks. post[a:b] receives the posteriors; returns the log-likelihood."""
    K = scaled.shape[1]
    n = b - a
    beta = np.empty((n, K))
    norm = np.empty(n)
    lls = np.zeros(2)
    for task in prange(2):
        if task == 0:
            lls[0] = _forward_pass(
                scaled, shift, a, b, startprob, transmat, post, scale, np.empty(K)
            )
        else:
            _backward_pass(scaled, a, b, transmat, beta, norm)
    ll = lls[0]
    if ll == -np.inf:
        return ll
    per = (n + _LONG_CHUNKS - 1) // _LONG_CHUNKS
    part = np.zeros((_LONG_CHUNKS, K, K))
    for c in prange(_LONG_CHUNKS):
        v = np.empty(K)
        for r in range(c * per, min(n, (c + 1) * per)):
            t = a + r
            if r < n - 1:
                # xi_t(i, j) = alpha_t(i) A_ij v_j / z with v = B_{t+1} * beta_{t+1};
                # z = alpha_t . (A v) = norm[r] * (alpha_t . beta_t), from the backward pass.
                for j in range(K):
                    v[j] = scaled[t + 1, j] * beta[r + 1, j]
                z = 0.0
                for i in range(K):
                    z += post[t, i] * beta[r, i]
                z *= norm[r]
                if z > 0.0:
                    inv = 1.0 / z
                    for i in range(K):
                        p = post[t, i] * inv
                        for j in range(K):
                            part[c, i, j] += p * v[j]
            total = 0.0
            for k in range(K):
                post[t, k] *= beta[r, k]
                total += post[t, k]
            inv = 1.0 / total
            for k in range(K):
                post[t, k] *= inv
    for c in range(_LONG_CHUNKS):
        for i in range(K):
            for j in range(K):
                trans_acc[i, j] += weight * part[c, i, j] * transmat[i, j]
    for k in range(K):
        start_acc[k] += weight * post[a, k]
    return ll


@njit(cache=True, parallel=True)
def forward_backward(log_b, offsets, groups, startprob, transmat, seq_weights):
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
    n_rows, K = log_b.shape
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    scaled, shift = _scale_emissions(log_b)
    post = np.empty((n_rows, K))
    scale = np.empty(n_rows)
    start_counts = np.zeros((n_groups, K))
    trans_counts = np.zeros((n_groups, K, K))
    seq_loglik = np.empty(n_seq)
    for g in prange(n_groups):
        tmp = np.empty(K)
        beta = np.empty(K)
        beta_next = np.empty(K)
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b - a >= LONG_SEQUENCE:
                continue  # done below, with both threads on it
            ll = _forward_backward_one(
                scaled,
                shift,
                a,
                b,
                startprob,
                transmat,
                seq_weights[s],
                post,
                scale,
                start_counts[g],
                trans_counts[g],
                tmp,
                beta,
                beta_next,
            )
            seq_loglik[s] = ll
        for i in range(K):
            for j in range(K):
                trans_counts[g, i, j] *= transmat[i, j]
    for g in range(n_groups):
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b - a >= LONG_SEQUENCE:
                ll = _forward_backward_long(
                    scaled,
                    shift,
                    a,
                    b,
                    startprob,
                    transmat,
                    seq_weights[s],
                    post,
                    scale,
                    start_counts[g],
                    trans_counts[g],
                )
                seq_loglik[s] = ll
    # An impossible sequence has no posteriors: mark its rows, whichever path ran it.
    for s in range(n_seq):
        if seq_loglik[s] == -np.inf:
            post[offsets[s] : offsets[s + 1]] = np.nan
    return post, start_counts, trans_counts, seq_loglik


@njit(cache=True, parallel=True, fastmath=_FM)
def forward_loglik(log_b, offsets, groups, startprob, transmat):
    """Per-sequence log-likelihoods from the scaled forward pass alone."""
    K = log_b.shape[1]
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    scaled, shift = _scale_emissions(log_b)
    seq_loglik = np.empty(n_seq)
    for g in prange(n_groups):
        alpha = np.empty(K)
        new = np.empty(K)
        for s in range(groups[g], groups[g + 1]):
            a, b = offsets[s], offsets[s + 1]
            ll = 0.0
            for t in range(a, b):
                if t == a:
                    for j in range(K):
                        new[j] = startprob[j] * scaled[t, j]
                else:
                    for j in range(K):
                        new[j] = 0.0
                    for i in range(K):
                        p = alpha[i]
                        for j in range(K):
                            new[j] += p * transmat[i, j]
                    for j in range(K):
                        new[j] *= scaled[t, j]
                total = 0.0
                for j in range(K):
                    total += new[j]
                if not total > 0.0:
                    ll = -np.inf
                    break
                ll += np.log(total) + shift[t]
                inv = 1.0 / total
                for k in range(K):
                    alpha[k] = new[k] * inv
            seq_loglik[s] = ll
    return seq_loglik


@njit(cache=True, parallel=True)
def viterbi(log_b, offsets, groups, log_startprob, log_transmat):
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
