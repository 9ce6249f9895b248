"""Diagonal Gaussian HMMs over many short sequences: emissions fused into the recursions.

Scoring or decoding a few thousand rows takes tens of microseconds in the
recursions of :mod:`latentem.kernels.hmm_lanes`; a separate emission pass
costs about as much again, plus a kernel call and an (n, K) array written and
read back. These kernels compute each row's Gaussian log-densities inside the
lane loop instead: a lane's observation is one vector load (the block's rows
are first laid out step by step, lane by lane), its K log-densities a few
vector operations with the states' parameters as constants.

The log-densities and their scaling take the operations of the unfused
kernels on each element (:mod:`latentem.kernels.hmm_diag_gaussian8`,
:mod:`latentem.kernels.scaling`), and Viterbi's recursion those of
:mod:`latentem.kernels.hmm_lanes`: the same paths and log-probabilities, ties
going to the lowest state. The forward recursion applies each step's
normaliser one step later and keeps each sequence's log-likelihood as it goes
(a sum of shifts, and the product of normalisers as exponent and mantissa):
the same log-likelihoods to rounding (about 1e-15 relative).

They run on one thread: they serve inputs small enough that the unfused
kernels run on one thread too (see :data:`latentem.kernels._dispatch.SERIAL_SIZE`),
and a serial kernel compiles faster than a parallel one. Complete data only
(no NaN): rows with gaps take the unfused path.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import lazy_names, njit
from latentem.kernels.hmm_lanes import LANES, _lane_rows
from latentem.kernels.hmm_vec8 import _FM
from latentem.kernels.scaling import FLUSH

vadd, vexp, vkeep_max, vmul, vrow, vsplat, vstore, vsub, vzero = lazy_names(
    "latentem.kernels.vec8",
    "vadd",
    "vexp",
    "vkeep_max",
    "vmul",
    "vrow",
    "vsplat",
    "vstore",
    "vsub",
    "vzero",
)
vchoose, vchoose_gt, vexponent, vmantissa, vrecip = lazy_names(
    "latentem.kernels.lanes8", "vchoose", "vchoose_gt", "vexponent", "vmantissa", "vrecip"
)

__all__ = ["diag_gaussian_loglik_lanes", "diag_gaussian_viterbi_lanes", "diag_columns"]


def diag_columns(means: np.ndarray, inv_std: np.ndarray, logc: np.ndarray) -> np.ndarray:
    """The states' parameters as the kernels take them, (2 D + 1, K): rows 0..D-1 the
    means, rows D..2D-1 the inverse standard deviations, row 2D the log-normalisers
    (``log N(x) = logc - 0.5 sum_d ((x_d - mean_d) inv_std_d)^2``)."""
    K, D = means.shape
    cols = np.empty((2 * D + 1, K))
    cols[:D] = means.T
    cols[D : 2 * D] = inv_std.T
    cols[2 * D] = logc
    return cols


@njit(cache=True, nogil=True)
def _most_steps(offsets, groups):
    """The most rows of a group: the steps of the longest block of lanes."""
    most = 0
    for g in range(groups.shape[0] - 1):
        most = max(most, offsets[groups[g + 1]] - offsets[groups[g]])
    return most


@njit(cache=True, nogil=True)
def _lane_inputs(Xf, D, offsets, groups, block, lo, hi, steps, xt, starts, ends):
    """The block's rows step by step, lane by lane (``Xf``: X flattened, D columns):
    ``xt[t * D + d, lane]`` the observation of step t, ``starts[t, lane]`` 1.0 where
    it begins a sequence and ``ends[t, lane]`` 1.0 where it ends one. Steps past a
    lane's last row (or in a lane with nothing to do) repeat a row it may read and
    start afresh each step, ending nothing: finite work whose results are never
    read. Returns whether each step ends a sequence in some lane, (steps,). The
    copy runs step by step, eight lanes at a time; the flags take one write per
    sequence, no test per row."""
    n_groups = groups.shape[0] - 1
    last = np.empty(LANES, dtype=np.int64)
    for lane in range(LANES):
        last[lane] = hi[lane] - 1 if hi[lane] > lo[lane] else 0
    for t in range(steps):
        for d in range(D):
            for lane in range(LANES):
                xt[t * D + d, lane] = Xf[min(lo[lane] + t, last[lane]) * D + d]
    starts[:steps] = 0.0
    ends[:steps] = 0.0
    any_end = np.zeros(steps, dtype=np.bool_)
    for lane in range(LANES):
        a = lo[lane]
        for t in range(hi[lane] - a, steps):
            starts[t, lane] = 1.0
        g = block * LANES + lane
        if g < n_groups:
            for s in range(groups[g], groups[g + 1]):
                starts[offsets[s] - a, lane] = 1.0
                ends[offsets[s + 1] - 1 - a, lane] = 1.0
                any_end[offsets[s + 1] - 1 - a] = True
    return any_end


@njit(cache=True, nogil=True)
def _splat_rows(flat):
    """Row m holds ``flat[m]`` (1-D) in every lane: the constants of the recursions
    as whole vectors, read with one load (a scalar broadcast into a vector, or an
    integer converted to a float, each step, costs the vector ports as much as the
    arithmetic)."""
    out = np.empty((flat.shape[0], LANES))
    for m in range(flat.shape[0]):
        for lane in range(LANES):
            out[m, lane] = flat[m]
    return out


@njit(cache=True, nogil=True)
def _tables(cols, start, trans, none):
    """The parameters as :func:`_splat_rows` vectors for an even number of states
    ``Kp`` (the recursions take states two at a time): ``cols8`` row ``c * Kp + j``
    (``cols[c, j]``), ``start8`` row j, ``trans8`` row ``i * Kp + j``. A padding
    state has log-density ``-inf`` and start and transition probabilities ``none``
    (0, or -inf for logs): it never counts."""
    C, K = cols.shape
    Kp = K + K % 2
    c = np.zeros((C, Kp))
    c[:, :K] = cols
    c[C - 1, K:] = -np.inf
    st = np.full(Kp, none)
    st[:K] = start
    tr = np.full((K, Kp), none)
    tr[:, :K] = trans
    return _splat_rows(c.ravel()), _splat_rows(st), _splat_rows(tr.ravel())


@njit(inline="always", fastmath=_FM)
def _logp(xt, t, cols8, j, D, K):
    """State j's log-densities of step t's observations, one per lane (``cols8``: the
    kernel's ``cols`` through :func:`_splat_rows`): the operations of
    :func:`latentem.kernels.hmm_diag_gaussian8._diag_logp8` on each element."""
    z = vmul(vsub(vrow(xt, t * D), vrow(cols8, j)), vrow(cols8, D * K + j))
    maha = vmul(z, z)  # (0 + z z there: the same number, one operation less)
    for d in range(1, D):
        z = vmul(vsub(vrow(xt, t * D + d), vrow(cols8, d * K + j)), vrow(cols8, (D + d) * K + j))
        maha = vadd(maha, vmul(z, z))
    return vadd(vrow(cols8, 2 * D * K + j), vmul(vsplat(-0.5), maha))


#: Normalisers at least this large are split into exponent and mantissa as they come;
#: a sequence with a smaller one (zero, or so small its exponent field is not its
#: exponent) takes the logs one by one (:func:`_sequence_loglik`).
_TINY = 1e-290
_LN2 = 0.6931471805599453


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def _forward_lanes(
    xt, starts, ends, any_end, steps, K, cols8, start8, trans8, tbuf, sbuf, lo, offsets, cur, ll
):
    """The scaled forward recursion of the block's lanes (see
    :func:`latentem.kernels.hmm_lanes._forward_lanes`) with the emissions computed
    in place: ``sbuf[t]`` receives each step's largest log-density (the scaling
    shift) and ``tbuf[t]`` the sum of the unnormalised forward variables, and at each
    sequence's last step ``ll[s]`` its log-likelihood (``cur[lane]``: the lane's
    current sequence). The parameters come from :func:`_tables`. Two states at a
    time: each sum over the previous states is a chain of dependent operations, and
    two chains keep the vector units busy where one waits."""
    Kp = start8.shape[0]
    D = (cols8.shape[0] // Kp - 1) // 2
    # The unnormalised forward variables of the previous step (rows p..p+Kp-1) and
    # of this one; the previous step's normaliser multiplies the sums over them, so
    # the division runs beside the sums instead of before them.
    xs = np.zeros((2 * Kp, LANES))
    inv = vzero()
    # the log-densities, then in place their scaled exponentials (a padding state's
    # row stays zero)
    lp = np.zeros((Kp, LANES))
    # Each lane's sequence so far: the sum of its shifts, the exponent and mantissa of
    # the product of its normalisers, how many normalisers were too small to split.
    shifts, expo, mant, tiny = vzero(), vzero(), vsplat(1.0), vzero()
    one = vsplat(1.0)
    lanes = np.empty((4, LANES))
    for t in range(steps):
        p = (t + 1) % 2 * Kp
        q = t % 2 * Kp
        mx = vsplat(-np.inf)
        for j in range(K):
            x = _logp(xt, t, cols8, j, D, Kp)
            vstore(lp, j, x)
            mx = vkeep_max(mx, x)
        vstore(sbuf, t, mx)
        for j in range(K):
            vstore(lp, j, vexp(vsub(vrow(lp, j), mx), FLUSH))
        start = vrow(starts, t)
        total = vzero()
        for j in range(0, Kp, 2):
            e0 = vrow(lp, j)
            e1 = vrow(lp, j + 1)
            s0 = vzero()
            s1 = vzero()
            for i in range(K):
                xi = vrow(xs, p + i)
                s0 = vadd(s0, vmul(vrow(trans8, i * Kp + j), xi))
                s1 = vadd(s1, vmul(vrow(trans8, i * Kp + j + 1), xi))
            x0 = vmul(vchoose(start, vrow(start8, j), vmul(s0, inv)), e0)
            x1 = vmul(vchoose(start, vrow(start8, j + 1), vmul(s1, inv)), e1)
            vstore(xs, q + j, x0)
            vstore(xs, q + j + 1, x1)
            total = vadd(vadd(total, x0), x1)
        inv = vrecip(total)  # an impossible row zeroes its lane until the next sequence
        vstore(tbuf, t, total)
        # (the normalisers are at most 1: the product of a mantissa and one stays below 2)
        shifts = vadd(vchoose(start, vzero(), shifts), mx)
        prod = vmul(vchoose(start, one, mant), total)
        expo = vadd(vchoose(start, vzero(), expo), vexponent(prod))
        mant = vmantissa(prod)
        tiny = vadd(
            vchoose(start, vzero(), tiny), vchoose(vsub(total, vsplat(_TINY)), vzero(), one)
        )
        if any_end[t]:
            vstore(lanes, 0, shifts)
            vstore(lanes, 1, expo)
            vstore(lanes, 2, mant)
            vstore(lanes, 3, tiny)
            for lane in range(LANES):
                if ends[t, lane] > 0.0:
                    s = cur[lane]
                    if lanes[3, lane] > 0.0:
                        ll[s] = _sequence_loglik(tbuf, sbuf, lane, offsets[s] - lo[lane], t + 1)
                    else:
                        ll[s] = lanes[0, lane] + lanes[1, lane] * _LN2 + np.log(lanes[2, lane])
                    cur[lane] += 1


@njit(cache=True, nogil=True)
def _sequence_loglik(tbuf, sbuf, lane, t0, t1):
    """Log-likelihood of the sequence at steps t0..t1-1 of ``lane``: the shifts plus
    the logs of the normalisers' running product, taken only when it gets small (as
    :func:`latentem.kernels.hmm_lanes._sequence_loglik`)."""
    ll = 0.0
    prod = 1.0
    for t in range(t0, t1):
        s = tbuf[t, lane]
        ll += sbuf[t, lane]
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
def diag_gaussian_loglik_lanes(X, cols, offsets, groups, startprob, transmat):
    """Log-likelihood of every sequence under an HMM with diagonal Gaussian emissions
    (``cols`` from :func:`diag_columns`): what
    :func:`latentem.kernels.hmm.forward_loglik_scaled` gives on the scaled emissions,
    without them. X (n, D) complete; ``groups`` from
    :func:`latentem.kernels.hmm.sequence_groups`."""
    D = X.shape[1]
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    seq_loglik = np.empty(n_seq)
    K = cols.shape[1]
    cols8, start8, trans8 = _tables(cols, startprob, transmat, 0.0)
    # one set of buffers, as large as the longest block needs
    most = _most_steps(offsets, groups)
    xt = np.empty((most * D, LANES))
    starts = np.empty((most, LANES))
    ends = np.empty((most, LANES))
    tbuf = np.empty((most, LANES))
    sbuf = np.empty((most, LANES))
    Xf = X.ravel()
    cur = np.zeros(LANES, dtype=np.int64)
    for block in range((n_groups + LANES - 1) // LANES):
        lo, hi, steps = _lane_rows(offsets, groups, block)
        any_end = _lane_inputs(Xf, D, offsets, groups, block, lo, hi, steps, xt, starts, ends)
        for lane in range(min(LANES, n_groups - block * LANES)):
            cur[lane] = groups[block * LANES + lane]
        _forward_lanes(
            xt,
            starts,
            ends,
            any_end,
            steps,
            K,
            cols8,
            start8,
            trans8,
            tbuf,
            sbuf,
            lo,
            offsets,
            cur,
            seq_loglik,
        )
    return seq_loglik


@njit(cache=True, fastmath=_FM, error_model="numpy", nogil=True)
def _viterbi_lanes(xt, starts, ends, any_end, steps, K, cols8, start8, trans8, pbuf, cur, best):
    """Viterbi's recursion of the block's lanes (see
    :func:`latentem.kernels.hmm_lanes._viterbi_lanes`) with the emissions computed in
    place: the back-pointers of step t into ``pbuf[t * Kp + j]`` (int64 bits); at each sequence's
    last step its best final state into ``best[0, s]`` and its log-probability into
    ``best[1, s]`` (``cur[lane]``: the lane's current sequence). The parameters (logs
    of the chain's) come from :func:`_tables`. Two states at a time, as in
    :func:`_forward_lanes`: a running maximum is a chain of dependent operations."""
    Kp = start8.shape[0]
    D = (cols8.shape[0] // Kp - 1) // 2
    # the back-pointers are the bits of int64 values (blends copy bits, and no
    # arithmetic touches these tiny doubles): the backtrack reads them as integers,
    # without a conversion in its chain of dependent loads
    ints = np.empty((K, LANES), dtype=np.int64)
    for i in range(K):
        ints[i, :] = i
    index = ints.view(np.float64)
    # the previous step's delta in rows p..p+Kp-1 and this step's in the others: no
    # arrays swapped (and reference counts changed) each step
    delta = np.zeros((2 * Kp, LANES))
    minus_inf = vsplat(-np.inf)
    for t in range(steps):
        p = (t + 1) % 2 * Kp
        q = t % 2 * Kp
        start = vrow(starts, t)
        for j in range(0, Kp, 2):
            top0 = minus_inf
            top1 = minus_inf
            a0 = vzero()
            a1 = vzero()
            for i in range(K):
                di = vrow(delta, p + i)
                c0 = vadd(di, vrow(trans8, i * Kp + j))
                c1 = vadd(di, vrow(trans8, i * Kp + j + 1))
                a0 = vchoose_gt(c0, top0, vrow(index, i), a0)
                a1 = vchoose_gt(c1, top1, vrow(index, i), a1)
                top0 = vkeep_max(top0, c0)
                top1 = vkeep_max(top1, c1)
            lb0 = _logp(xt, t, cols8, j, D, Kp)
            lb1 = _logp(xt, t, cols8, j + 1, D, Kp)
            vstore(delta, q + j, vadd(vchoose(start, vrow(start8, j), top0), lb0))
            vstore(delta, q + j + 1, vadd(vchoose(start, vrow(start8, j + 1), top1), lb1))
            vstore(pbuf, t * Kp + j, a0)
            vstore(pbuf, t * Kp + j + 1, a1)
        if any_end[t]:
            for lane in range(LANES):
                if ends[t, lane] > 0.0:
                    top_s, k_top = -np.inf, 0
                    for k in range(K):
                        if delta[q + k, lane] > top_s:
                            top_s, k_top = delta[q + k, lane], k
                    best[0, cur[lane]] = k_top
                    best[1, cur[lane]] = top_s
                    cur[lane] += 1


@njit(cache=True, nogil=True)
def _backtrack(ends, lo, hi, steps, Kp, pbuf, best, cur, states):
    """The block's paths, from the last step back, every lane at each step: eight
    independent chains of dependent loads overlap where one sequence's would wait.
    ``cur[lane]``: one past the lane's last sequence (as :func:`_viterbi_lanes` leaves
    it); a lane takes its sequences' best last states from ``best[0]``. ``pbuf``: the
    back-pointers as int64 (see :func:`_viterbi_lanes`)."""
    k = np.zeros(LANES, dtype=np.int64)
    for t in range(steps - 1, -1, -1):
        for lane in range(LANES):
            if lo[lane] + t < hi[lane]:
                if ends[t, lane] > 0.0:
                    cur[lane] -= 1
                    k[lane] = np.int64(best[0, cur[lane]])
                else:
                    k[lane] = pbuf[(t + 1) * Kp + k[lane], lane]
                states[lo[lane] + t] = k[lane]


@njit(cache=True, nogil=True)
def diag_gaussian_viterbi_lanes(X, cols, offsets, groups, log_startprob, log_transmat):
    """Most likely state path of every sequence and its joint log-probability under an
    HMM with diagonal Gaussian emissions (``cols`` from :func:`diag_columns`): what
    :func:`latentem.kernels.hmm.viterbi` gives on the log-densities, without them."""
    n_rows, D = X.shape
    K = cols.shape[1]
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    states = np.empty(n_rows, dtype=np.int64)
    best = np.empty((2, n_seq))  # each sequence's last state and log-probability
    cols8, start8, trans8 = _tables(cols, log_startprob, log_transmat, -np.inf)
    Kp = start8.shape[0]
    most = _most_steps(offsets, groups)
    xt = np.empty((most * D, LANES))
    starts = np.empty((most, LANES))
    ends = np.empty((most, LANES))
    pbuf = np.empty((most * Kp, LANES))
    Xf = X.ravel()
    cur = np.zeros(LANES, dtype=np.int64)
    for block in range((n_groups + LANES - 1) // LANES):
        lo, hi, steps = _lane_rows(offsets, groups, block)
        any_end = _lane_inputs(Xf, D, offsets, groups, block, lo, hi, steps, xt, starts, ends)
        n_lanes = min(LANES, n_groups - block * LANES)
        for lane in range(n_lanes):
            cur[lane] = groups[block * LANES + lane]
        _viterbi_lanes(xt, starts, ends, any_end, steps, K, cols8, start8, trans8, pbuf, cur, best)
        _backtrack(ends, lo, hi, steps, Kp, pbuf.view(np.int64), best, cur, states)
    return states, best[1].copy()
