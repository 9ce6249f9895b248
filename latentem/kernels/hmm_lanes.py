"""HMM recursions over many short sequences, several sequences at a time.

One step of the forward (or backward, or Viterbi) recursion of one sequence
is a short chain of dependent operations: a few tens of nanoseconds a row
whatever the CPU's width, because each step waits for the last. Sequences
are independent, so these kernels run :data:`LANES` of them side by side,
one per lane of the innermost loops, which LLVM turns into vector
instructions: each step then advances eight sequences for little more than
the cost of one.

The work is split as in :mod:`latentem.kernels.hmm`: ``groups`` (from
:func:`~latentem.kernels.hmm.sequence_groups`) are contiguous runs of whole
sequences; a block of :data:`LANES` consecutive groups runs together, lane
``l`` walking the rows of group ``8 p + l`` from its first row to its last
(or back), restarting the recursion at each sequence's first row. Each lane
keeps its own partial sums, which become its group's, so the outputs have
the same shapes, meanings and (to rounding) values as the one-sequence-at-a-time
kernels, and never depend on the number of threads.

The log-likelihood takes no logarithm per row: the forward pass stores each
row's normaliser, and a second pass multiplies them per sequence, taking a
log only when the running product gets small.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import lazy_names, njit, prange
from latentem.kernels.hmm_vec8 import _FM

vadd, vfma, vkeep_arg, vkeep_max, vmax, vmul, vrow, vsplat, vstore, vzero = lazy_names(
    "latentem.kernels.vec8",
    "vadd",
    "vfma",
    "vkeep_arg",
    "vkeep_max",
    "vmax",
    "vmul",
    "vrow",
    "vsplat",
    "vstore",
    "vzero",
)
vchoose, vgather, vgather1, vrecip = lazy_names(
    "latentem.kernels.lanes8", "vchoose", "vgather", "vgather1", "vrecip"
)

__all__ = [
    "LANES",
    "forward_loglik_lanes_jit",
    "forward_backward_lanes_jit",
    "viterbi_lanes_jit",
]

#: Sequences processed side by side (one AVX-512 register of float64, two AVX ones).
LANES = 8


@njit(cache=True, nogil=True)
def _first_rows(offsets):
    """``first[r]``: 1.0 where row r starts a sequence, else 0.0; ``first[n_rows] = 1``
    too, so row r ends one exactly when ``first[r + 1]``, and ``first[n_rows + 1] = 0``
    (a place to look for lanes with nothing to do). Floats, read as vectors."""
    n_seq = offsets.shape[0] - 1
    first = np.zeros(offsets[n_seq] + 2)
    for s in range(n_seq + 1):
        first[offsets[s]] = 1.0
    return first


@njit(cache=True, nogil=True)
def _lane_rows(offsets, groups, block):
    """Row ranges ``lo, hi`` (LANES,) of the lanes of ``block`` (empty past the last
    group) and the number of steps, the longest range."""
    n_groups = groups.shape[0] - 1
    lo = np.zeros(LANES, dtype=np.int64)
    hi = np.zeros(LANES, dtype=np.int64)
    steps = 0
    for lane in range(LANES):
        g = block * LANES + lane
        if g < n_groups:
            lo[lane] = offsets[groups[g]]
            hi[lane] = offsets[groups[g + 1]]
            steps = max(steps, hi[lane] - lo[lane])
    return lo, hi, steps


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def _forward_lanes(scaled, first, lo, hi, steps, startprob, transmat, abuf, store, tbuf):
    """Forward recursion of the lanes' rows; step t is row ``lo[lane] + t`` of each
    lane. ``tbuf[t]`` receives the steps' normalisers (the sums of the unnormalised
    forward variables; 0 for an impossible row) and, with ``store``,
    ``abuf[t * K + j]`` the normalised forward variables, lane by lane: rows of
    vectors, written and read back without a scatter. State j of all lanes is
    row j of the (K, LANES) arrays, one vector."""
    K = scaled.shape[1]
    u = np.zeros((K, LANES))
    acc = np.empty((K, LANES))
    row = np.zeros(LANES, dtype=np.int64)
    for t in range(steps):
        for lane in range(LANES):
            # a finished or empty lane repeats a row it may read; the caller ignores it
            row[lane] = min(lo[lane] + t, hi[lane] - 1) if hi[lane] > lo[lane] else 0
        start = vgather1(first, row)
        total = vzero()
        for j in range(K):
            s = vzero()
            for i in range(K):
                s = vfma(s, transmat[i, j], vrow(u, i))
            x = vmul(vchoose(start, vsplat(startprob[j]), s), vgather(scaled, row, j))
            vstore(acc, j, x)
            total = vadd(total, x)
        inv = vrecip(total)  # an impossible row zeroes its lane until the next sequence
        for j in range(K):
            uj = vmul(vrow(acc, j), inv)
            vstore(u, j, uj)
            if store:
                vstore(abuf, t * K + j, uj)
        vstore(tbuf, t, total)


@njit(cache=True, nogil=True)
def _sequence_loglik(tbuf, lane, shift, a, b, lo):
    """Log-likelihood of rows a..b-1, which ``lane`` ran from row ``lo``, from their
    normalisers in ``tbuf`` (see :func:`_forward_lanes`) and ``shift`` (-inf if one is
    zero): logs of a running product, taken only when it gets small."""
    ll = 0.0
    prod = 1.0
    for r in range(a, b):
        s = tbuf[r - lo, lane]
        ll += shift[r]
        if not s > 0.0:
            return -np.inf
        if s < 1e-100:
            ll += np.log(s)
        else:
            prod *= s
            if prod < 1e-200:
                ll += np.log(prod)
                prod = 1.0
    return ll + np.log(prod)


@njit(cache=True, nogil=True)
def _block_loglik(tbuf, shift, offsets, groups, block, lo, seq_loglik):
    """Every sequence's log-likelihood in the block's lanes."""
    n_groups = groups.shape[0] - 1
    for lane in range(LANES):
        g = block * LANES + lane
        if g < n_groups:
            for s in range(groups[g], groups[g + 1]):
                seq_loglik[s] = _sequence_loglik(
                    tbuf, lane, shift, offsets[s], offsets[s + 1], lo[lane]
                )


@njit(cache=True, parallel=True)
def forward_loglik_lanes_jit(scaled, shift, offsets, groups, startprob, transmat):
    """:func:`latentem.kernels.hmm.forward_loglik_scaled` with LANES groups at a time
    (every sequence shorter than ``LONG_SEQUENCE``)."""
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    n_blocks = (n_groups + LANES - 1) // LANES
    first = _first_rows(offsets)
    seq_loglik = np.empty(n_seq)
    no_alpha = np.empty((0, LANES))
    for block in prange(n_blocks):
        lo, hi, steps = _lane_rows(offsets, groups, block)
        tbuf = np.empty((steps, LANES))
        _forward_lanes(scaled, first, lo, hi, steps, startprob, transmat, no_alpha, False, tbuf)
        _block_loglik(tbuf, shift, offsets, groups, block, lo, seq_loglik)
    return seq_loglik


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def _backward_lanes(scaled, first, lo, hi, steps, transmat, wrow, abuf, post, start_acc, xi):
    """Backward recursion of the lanes' rows, from step ``steps - 1`` down to 0 (lanes
    with fewer rows join at their last), over the forward variables in ``abuf`` (see
    :func:`_forward_lanes`): writes the posteriors into ``post``, adds each lane's
    weighted transition sums (still to be multiplied by the transition matrix) to
    ``xi[i * K + j]`` and its weighted first posteriors to ``start_acc[lane]``.
    ``wrow`` (n_rows + 1,): the weight of each row's sequence (zero for an impossible
    one) and a zero for lanes with nothing to do, which stand at row n_rows."""
    n_rows, K = scaled.shape
    nxt = np.ones((K, LANES))
    v = np.empty((K, LANES))
    beta = np.empty((K, LANES))
    al = np.empty((K, LANES))
    row = np.zeros(LANES, dtype=np.int64)
    after = np.zeros(LANES, dtype=np.int64)  # row + 1
    succ = np.zeros(LANES, dtype=np.int64)  # the row whose emissions beta needs
    one = vsplat(1.0)
    for t in range(steps - 1, -1, -1):
        for lane in range(LANES):
            r = lo[lane] + t if lo[lane] + t < hi[lane] else n_rows
            row[lane] = r
            after[lane] = r + 1
            # (a last row's successor is not used: its beta is 1 and its weight 0)
            succ[lane] = min(r + 1, n_rows - 1)
        last = vgather1(first, after)
        # no transition out of a sequence's last row
        w = vchoose(last, vzero(), vgather1(wrow, row))
        for j in range(K):
            vstore(v, j, vmul(vgather(scaled, succ, j), vrow(nxt, j)))
        z = vzero()
        tot = vzero()
        for i in range(K):
            s = vzero()
            for j in range(K):
                s = vfma(s, transmat[i, j], vrow(v, j))
            # the last row's backward variable is 1: its posterior is its alpha
            s = vchoose(last, one, s)
            vstore(beta, i, s)
            z = vadd(z, vmul(vrow(abuf, t * K + i), s))
            tot = vadd(tot, s)
        # xi_r(i, j) = alpha_r(i) A_ij v_j / z with z = alpha_r . (A v): z also
        # normalises the posterior alpha_r * beta_r.
        z = vrecip(z)
        tot = vrecip(tot)
        for i in range(K):
            p = vmul(vrow(abuf, t * K + i), z)
            bi = vrow(beta, i)
            vstore(al, i, vmul(p, bi))
            vstore(nxt, i, vmul(bi, tot))
            pw = vmul(p, w)
            for j in range(K):
                vstore(xi, i * K + j, vadd(vrow(xi, i * K + j), vmul(pw, vrow(v, j))))
        for lane in range(LANES):
            if lo[lane] + t < hi[lane]:
                r = row[lane]
                for j in range(K):
                    post[r, j] = al[j, lane]
                if first[r] > 0.0:
                    for j in range(K):
                        start_acc[lane, j] += wrow[r] * al[j, lane]


@njit(cache=True, parallel=True)
def forward_backward_lanes_jit(
    scaled, shift, offsets, groups, startprob, transmat, seq_weights, post
):
    """:func:`latentem.kernels.hmm.forward_backward_into` with LANES groups at a time
    (every sequence shorter than ``LONG_SEQUENCE``); same outputs."""
    n_rows, K = scaled.shape
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    n_blocks = (n_groups + LANES - 1) // LANES
    first = _first_rows(offsets)
    start_counts = np.zeros((n_groups, K))
    trans_counts = np.zeros((n_groups, K, K))
    seq_loglik = np.empty(n_seq)
    wrow = np.zeros(n_rows + 1)  # each row's sequence weight; the last for idle lanes
    for block in prange(n_blocks):
        lo, hi, steps = _lane_rows(offsets, groups, block)
        abuf = np.empty((steps * K, LANES))
        tbuf = np.empty((steps, LANES))
        _forward_lanes(scaled, first, lo, hi, steps, startprob, transmat, abuf, True, tbuf)
        _block_loglik(tbuf, shift, offsets, groups, block, lo, seq_loglik)
        g0 = block * LANES
        g1 = min(n_groups, g0 + LANES)
        for s in range(groups[g0], groups[g1]):
            w = seq_weights[s] if seq_loglik[s] > -np.inf else 0.0
            for r in range(offsets[s], offsets[s + 1]):
                wrow[r] = w
        start_acc = np.zeros((LANES, K))
        xi = np.zeros((K * K, LANES))
        _backward_lanes(scaled, first, lo, hi, steps, transmat, wrow, abuf, post, start_acc, xi)
        for lane in range(g1 - g0):
            g = g0 + lane
            for i in range(K):
                start_counts[g, i] = start_acc[lane, i]
                for j in range(K):
                    trans_counts[g, i, j] = xi[i * K + j, lane] * transmat[i, j]
    # An impossible sequence has no posteriors.
    for s in range(n_seq):
        if seq_loglik[s] == -np.inf:
            post[offsets[s] : offsets[s + 1]] = np.nan
    return post, start_counts, trans_counts, seq_loglik


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def _viterbi_lanes(
    log_b, first, lo, hi, steps, log_startprob, log_transmat, pbuf, states, seq_logprob, cur
):
    """Viterbi recursion of the lanes' rows (step t: row ``lo[lane] + t``): the
    back-pointers of step t into ``pbuf[t * K + j]``, lane by lane, and at each
    sequence's last row its best final state into ``states`` and its log-probability
    into ``seq_logprob``. ``cur`` (LANES,): the index of each lane's first sequence.
    Ties go to the lowest state (strict comparisons in ascending order), as in the
    one-sequence kernel, whose sums these are exactly."""
    K = log_b.shape[1]
    n_rows = log_b.shape[0]
    delta = np.zeros((K, LANES))
    new = np.empty((K, LANES))
    row = np.zeros(LANES, dtype=np.int64)
    after = np.zeros(LANES, dtype=np.int64)  # row + 1; n_rows + 1 when inactive
    minus_inf = vsplat(-np.inf)
    for t in range(steps):
        for lane in range(LANES):
            active = lo[lane] + t < hi[lane]
            row[lane] = lo[lane] + t if active else (hi[lane] - 1 if hi[lane] > lo[lane] else 0)
            after[lane] = lo[lane] + t + 1 if active else n_rows + 1
        start = vgather1(first, row)
        for j in range(K):
            best = minus_inf
            a = vzero()
            for i in range(K):
                cand = vadd(vrow(delta, i), vsplat(log_transmat[i, j]))
                a = vkeep_arg(a, best, cand, np.float64(i))
                best = vkeep_max(best, cand)
            lb = vgather(log_b, row, j)
            vstore(new, j, vadd(vchoose(start, vsplat(log_startprob[j]), best), lb))
            vstore(pbuf, t * K + j, a)
        delta, new = new, delta
        if vmax(vgather1(first, after)) > 0.0:  # some lane is at a sequence's last row
            for lane in range(LANES):
                if first[after[lane]] > 0.0:
                    top, k_top = -np.inf, 0
                    for k in range(K):
                        if delta[k, lane] > top:
                            top, k_top = delta[k, lane], k
                    seq_logprob[cur[lane]] = top
                    states[row[lane]] = k_top
                    cur[lane] += 1


@njit(cache=True, parallel=True)
def viterbi_lanes_jit(log_b, offsets, groups, log_startprob, log_transmat):
    """:func:`latentem.kernels.hmm.viterbi` with LANES groups at a time (any lengths;
    the one-sequence kernels are faster for few long sequences)."""
    n_rows, K = log_b.shape
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    n_blocks = (n_groups + LANES - 1) // LANES
    first = _first_rows(offsets)
    states = np.empty(n_rows, dtype=np.int64)
    seq_logprob = np.empty(n_seq)
    for block in prange(n_blocks):
        lo, hi, steps = _lane_rows(offsets, groups, block)
        pbuf = np.empty((steps * K, LANES))
        cur = np.zeros(LANES, dtype=np.int64)
        for lane in range(LANES):
            g = block * LANES + lane
            if g < n_groups:
                cur[lane] = groups[g]
        _viterbi_lanes(
            log_b, first, lo, hi, steps, log_startprob, log_transmat, pbuf, states, seq_logprob, cur
        )
        for lane in range(LANES):
            g = block * LANES + lane
            if g < n_groups:
                for s in range(groups[g], groups[g + 1]):
                    k = states[offsets[s + 1] - 1]
                    for r in range(offsets[s + 1] - 1, offsets[s], -1):
                        k = np.int64(pbuf[(r - lo[lane]) * K + k, lane])
                        states[r - 1] = k
    return states, seq_logprob
