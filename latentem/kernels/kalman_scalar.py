"""Flat entry points of the Kalman kernels: one compiled call per E-step and per M-step.

An EM iteration of a small model (the Nile local level: one state, one feature, 100
rows) costs a few microseconds of arithmetic, so what a call hands across the
Python boundary is what costs: every array argument is unboxed, every array
returned is boxed. These entry points take the model's parameters as ONE packed
vector ``theta`` (the SQUAREM vector: ``A, B, C, D, Q, R, m0, P0`` flattened in
that order) and hand back ONE flat vector ``out``: ``out[0]`` the total
log-likelihood (NaN if a sequence's innovation covariance was not positive
definite), ``out[1:]`` the EM statistics ``Zp, XZ, XX, W, YW, YY, s1, S1, counts``
of :mod:`latentem.kernels.kalman` flattened in that order (:func:`stats_size`).

* :func:`scalar_run`: one state, one feature, no inputs (the local level, an AR(1)
  plus noise): the filter and smoother of :mod:`latentem.kernels.kalman` for numbers
  (:func:`~latentem.kernels.kalman._filter_scalar`,
  :func:`~latentem.kernels.kalman._smooth_scalar`), the same arithmetic in the same
  order, without the general kernel's work arrays.
* :func:`scalar_diffuse_run`: the same with an exact diffuse start: each sequence's
  diffuse steps by :mod:`latentem.kernels.kalman_diffuse`, the rest as above.
* :func:`kalman_run`, :func:`diffuse_run`: any model on one thread, through the
  general kernel's one-group loop /
  :func:`~latentem.kernels.kalman_diffuse.diffuse_smoother`, statistics flattened
  (data split into parallel groups go through the parallel kernel instead).
* :func:`m_step_packed`: the closed-form M-step on ``theta`` in place, from the flat
  statistics, when each of ``[A B]``, ``[C D]``, ``Q``, ``R``, the initial mean and
  covariance is wholly free or wholly held (the model's Python M-step does the rest);
  :func:`m_step_scalar` the same for one state and one feature, in numbers.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit
from latentem.kernels.kalman import N_COUNTS, _is_diagonal, _run_group
from latentem.kernels.kalman_diffuse import (
    TOL,
    _diffuse_filter,
    _new_outs,
    _new_stats,
    _smooth_diffuse_steps,
    diffuse_smoother,
)
from latentem.kernels.kalman_linalg import _cholesky, _solve_row

_LOG_2PI = np.log(2.0 * np.pi)

__all__ = [
    "scalar_run",
    "scalar_diffuse_run",
    "kalman_run",
    "diffuse_run",
    "m_step_packed",
    "m_step_scalar",
    "accept_theta",
    "stats_size",
    "theta_size",
    "COV_HELD",
    "COV_FULL",
    "COV_DIAG",
    "COV_SCALAR",
]

#: How :func:`m_step_packed` updates a covariance: held, or in one of the structures.
COV_HELD, COV_FULL, COV_DIAG, COV_SCALAR = 0, 1, 2, 3


def theta_size(n: int, p: int, m: int) -> int:
    """Length of the packed parameter vector."""
    return n * n + n * m + p * n + p * m + n * n + p * p + n + n * n


def stats_size(n: int, p: int, m: int) -> int:
    """Length of the flat statistics (without the log-likelihood in front)."""
    nz = n + m
    return nz * nz + n * nz + n * n + nz * nz + p * nz + p * p + n + n * n + N_COUNTS


@njit(cache=True)
def _unpack(theta, n, p, m):
    """The eight parameters as C-contiguous copies of their parts of ``theta``."""
    k = 0
    A = theta[k : k + n * n].copy().reshape((n, n))
    k += n * n
    B = theta[k : k + n * m].copy().reshape((n, m))
    k += n * m
    C = theta[k : k + p * n].copy().reshape((p, n))
    k += p * n
    D = theta[k : k + p * m].copy().reshape((p, m))
    k += p * m
    Q = theta[k : k + n * n].copy().reshape((n, n))
    k += n * n
    R = theta[k : k + p * p].copy().reshape((p, p))
    k += p * p
    m0 = theta[k : k + n].copy()
    k += n
    P0 = theta[k : k + n * n].copy().reshape((n, n))
    return A, B, C, D, Q, R, m0, P0


@njit(cache=True)
def _flatten_stats(stats, out, start):
    """The nine statistics arrays into ``out`` from ``start`` (loops: a heterogeneous
    tuple cannot be iterated)."""
    k = start
    for x in stats[0].ravel():
        out[k] = x
        k += 1
    for x in stats[1].ravel():
        out[k] = x
        k += 1
    for x in stats[2].ravel():
        out[k] = x
        k += 1
    for x in stats[3].ravel():
        out[k] = x
        k += 1
    for x in stats[4].ravel():
        out[k] = x
        k += 1
    for x in stats[5].ravel():
        out[k] = x
        k += 1
    for x in stats[6]:
        out[k] = x
        k += 1
    for x in stats[7].ravel():
        out[k] = x
        k += 1
    for x in stats[8]:
        out[k] = x
        k += 1
    return k


@njit(cache=True)
def _total(seq_ll):
    """The sum of the sequences' log-likelihoods; NaN if any is NaN."""
    total = 0.0
    for x in seq_ll:
        total += x
    return total


@njit(cache=True)
def kalman_run(Y, U, offsets, theta, n, weights, mode):
    """All sequences on one thread through the general kernel's one-group loop
    (:func:`~latentem.kernels.kalman._run_group`; not the parallel
    :func:`~latentem.kernels.kalman.kalman_smoother`, which a cached caller must not
    embed: loaded from numba's cache, such a caller crashed) on the packed parameters,
    mode 0 or 1: ``[loglik, stats...]`` in one vector."""
    p, m = Y.shape[1], U.shape[1]
    params = _unpack(theta, n, p, m)
    n_seq = offsets.shape[0] - 1
    seq_ll = np.empty(n_seq)
    stats = _new_stats(n, p, n + m)
    outs = _new_outs(0, n, p)
    first = n_seq - n_seq  # typed int64, not a literal: one specialisation of the loop
    r_diag = _is_diagonal(params[5])
    _run_group(Y, U, offsets, first, n_seq, params, weights, mode, r_diag, seq_ll, stats, outs)
    out = np.empty(1 + stats_size_nb(n, p, m))
    out[0] = _total(seq_ll)
    _flatten_stats(stats, out, 1)
    return out


@njit(cache=True)
def diffuse_run(Y, U, offsets, theta, n, diffuse, weights, mode):
    """:func:`~latentem.kernels.kalman_diffuse.diffuse_smoother` (mode 0 or 1) on the
    packed parameters: ``[loglik, stats...]`` in one vector."""
    p, m = Y.shape[1], U.shape[1]
    A, B, C, D, Q, R, m0, P0 = _unpack(theta, n, p, m)
    seq_ll, stats, _ = diffuse_smoother(
        Y, U, offsets, A, B, C, D, Q, R, m0, P0, diffuse, weights, mode
    )
    out = np.empty(1 + stats_size_nb(n, p, m))
    out[0] = _total(seq_ll)
    _flatten_stats(stats, out, 1)
    return out


@njit(cache=True)
def stats_size_nb(n, p, m):
    """:func:`stats_size`, compiled."""
    nz = n + m
    return nz * nz + n * nz + n * n + nz * nz + p * nz + p * p + n + n * n + N_COUNTS


@njit(cache=True)
def _scalar_scratch(offsets):
    longest = 1
    for s in range(offsets.shape[0] - 1):
        longest = max(longest, offsets[s + 1] - offsets[s])
    return np.empty(longest), np.empty(longest), np.empty(longest), np.empty(longest)


@njit(cache=True)
def _filter1(Y, a, T, A, C, Q, R, m0, P0, mp, Pp, mf, Pf):
    """Kalman filter of one sequence (rows ``a..a+T-1``) of a one-state, one-feature
    model: its log-likelihood (NaN if an innovation variance is not positive), the
    predicted and filtered means and variances into ``mp, Pp, mf, Pf``.

    A step waits on the variance of the one before, so the chain from ``P`` to the
    next ``P`` is what the loop costs: one division, and the filtered variance as
    ``P R / S`` (for a number the same as the Joseph form, and as safe: a product and
    a quotient of positive numbers) rather than ``(1 - K C)^2 P + K^2 R``. The
    innovation variances are multiplied up and their logarithm taken every so often,
    not one logarithm per step."""
    ll = 0.0
    m, P = m0, P0
    AA, CC = A * A, C * C
    prod, n_obs = 1.0, 0
    for t in range(T):
        if t > 0:
            m = A * m
            P = Q + AA * P
        mp[t] = m
        Pp[t] = P
        y = Y[a + t, 0]
        if np.isnan(y):
            mf[t] = m
            Pf[t] = P
            continue
        v = y - C * m
        S = R + CC * P
        if not S > 0.0:
            return np.nan
        inv = 1.0 / S
        m = m + (P * C * inv) * v
        P = (P * R) * inv
        mf[t] = m
        Pf[t] = P
        ll -= 0.5 * (v * v * inv)
        n_obs += 1
        if 1e-150 < S < 1e150:  # the product stays within range: at most 1e280 times S
            prod *= S
            if not 1e-280 < prod < 1e280:
                ll -= 0.5 * np.log(prod)
                prod = 1.0
        else:
            ll -= 0.5 * np.log(S)
    return ll - 0.5 * (np.log(prod) + n_obs * _LOG_2PI)


@njit(cache=True)
def _smooth1(Y, a, T, A, C, mp, Pp, mf, Pf, w, acc):
    """RTS smoother of a sequence filtered by :func:`_filter1`, its EM statistics added
    (weight ``w``) into ``acc = [Zp, XZ, XX, W, YW, YY, s1, S1, n_trans, n_obs,
    n_seq]``. The smoothed first step's mean and variance are returned."""
    m1 = mf[T - 1]
    P1s = Pf[T - 1]
    Zp = XZ = XX = W = YW = YY = 0.0
    n_obs = 0.0
    y = Y[a + T - 1, 0]
    if not np.isnan(y):
        W += P1s + m1 * m1
        YW += y * m1
        YY += y * y
        n_obs += 1.0
    for t in range(T - 2, -1, -1):
        P1 = Pp[t + 1]
        J = 0.0  # a predicted variance of zero (to rounding) gives no gain
        if P1 > 1e-13 * abs(P1):
            J = (A * Pf[t]) / P1
        m_t = mf[t] + J * (m1 - mp[t + 1])
        P_t = Pf[t] + (J * (P1s - P1)) * J
        Zp += P_t + m_t * m_t
        XX += P1s + m1 * m1
        XZ += P1s * J + m1 * m_t
        y = Y[a + t, 0]
        if not np.isnan(y):  # a missing step is left out of the complete data
            W += P_t + m_t * m_t
            YW += y * m_t
            YY += y * y
            n_obs += 1.0
        m1, P1s = m_t, P_t
    acc[0] += w * Zp
    acc[1] += w * XZ
    acc[2] += w * XX
    acc[3] += w * W
    acc[4] += w * YW
    acc[5] += w * YY
    acc[8] += w * (T - 1)
    acc[9] += w * n_obs
    return m1, P1s


@njit(cache=True)
def scalar_run(Y, offsets, theta, weights, mode):
    """Filter (mode 0) and smoother statistics (mode 1) of a model with one state, one
    feature and no inputs: ``theta = [A, C, Q, R, m0, P0]``, ``Y`` (n_rows, 1).
    ``[loglik, Zp, XZ, XX, W, YW, YY, s1, S1, n_trans, n_obs, n_seq]``."""
    A, C, Q, R, m0, P0 = theta[0], theta[1], theta[2], theta[3], theta[4], theta[5]
    mp, Pp, mf, Pf = _scalar_scratch(offsets)
    out = np.zeros(12)
    acc = out[1:]
    total = 0.0
    for s in range(offsets.shape[0] - 1):
        a = offsets[s]
        T = offsets[s + 1] - a
        ll = _filter1(Y, a, T, A, C, Q, R, m0, P0, mp, Pp, mf, Pf)
        total += ll
        if mode > 0 and not np.isnan(ll):
            w = weights[s]
            m_1, P_1 = _smooth1(Y, a, T, A, C, mp, Pp, mf, Pf, w, acc)
            acc[6] += w * m_1
            acc[7] += w * (P_1 + m_1 * m_1)
            acc[10] += w
    out[0] = total
    return out


@njit(cache=True)
def _first_observed(Y, a, b, theta, w, mode, mp, Pp, mf, Pf, acc):
    """A sequence of :func:`scalar_diffuse_run` whose first value is observed: the flat
    state is pinned by it, ``x_1 | y_1 ~ N(y_1 / C, R / C^2)`` (one diffuse step, the
    log-likelihood term ``-1/2 log(2 pi C^2)``), which is what the general diffuse
    filter and posterior give for one state, in closed form. Statistics into ``acc``
    as :func:`_smooth1`, the initial state's sums and the sequence count included."""
    A, Cs, Q, R, m0 = theta[0], theta[1], theta[2], theta[3], theta[4]
    y0 = Y[a, 0]
    F = Cs * Cs
    x0 = m0 + (Cs / F) * (y0 - Cs * m0)
    V0 = R / F
    ll = -0.5 * (_LOG_2PI + np.log(F))
    a_d = A * x0
    cov01 = A * V0
    P_d = cov01 * A + Q
    rest = b - a - 1
    ms0, full = x0, V0
    if rest > 0:
        ll += _filter1(Y, a + 1, rest, A, Cs, Q, R, a_d, P_d, mp, Pp, mf, Pf)
        if mode == 0 or np.isnan(ll):
            return ll
        m_next, P_next = _smooth1(Y, a + 1, rest, A, Cs, mp, Pp, mf, Pf, w, acc)
        # the pair (x_1, x_2): x_1 given x_2 as in the smoother (no gain if Var x_2 is 0)
        J = 0.0
        if P_d > 1e-13 * abs(P_d):
            J = cov01 / P_d
        ms0 = x0 + J * (m_next - a_d)
        full = V0 - J * cov01 + (J * P_next) * J
        acc[0] += w * (full + ms0 * ms0)
        acc[1] += w * (P_next * J + m_next * ms0)
        acc[2] += w * (P_next + m_next * m_next)
        acc[8] += w
    elif mode == 0:
        return ll
    acc[3] += w * (full + ms0 * ms0)
    acc[4] += w * y0 * ms0
    acc[5] += w * y0 * y0
    acc[9] += w
    acc[6] += w * ms0
    acc[7] += w * (full + ms0 * ms0)
    acc[10] += w
    return ll


@njit(cache=True)
def _diffuse_sequence(Y, U, a, b, theta, w, mode, mp, Pp, mf, Pf, acc):
    """A sequence of :func:`scalar_diffuse_run` whose first value is missing: its
    diffuse steps as :func:`~latentem.kernels.kalman_diffuse.diffuse_smoother` runs
    them, the rest by :func:`_filter1` and :func:`_smooth1`; statistics into ``acc``,
    the log-likelihood returned."""
    A, B, C, D, Q, R, m0, P0 = _unpack(theta, 1, 1, 0)
    params = (A, B, C, D, Q, R, m0, P0)
    y = Y[a:b]
    ll, d, a_d, P_d = _diffuse_filter(y, U[a:b], A, B, C, D, Q, R, m0, P0, np.ones((1, 1)), True)
    rest = b - a - d
    m_next = np.zeros(1)
    P_next = np.zeros((1, 1))
    if rest > 0:
        ll += _filter1(
            Y, a + d, rest, A[0, 0], C[0, 0], Q[0, 0], R[0, 0], a_d[0], P_d[0, 0], mp, Pp, mf, Pf
        )  # fmt: skip
        if mode > 0 and not np.isnan(ll):
            # the rest's statistics, but not the initial state's sums, which belong to
            # the sequence's true first step
            m_next[0], P_next[0, 0] = _smooth1(
                Y, a + d, rest, A[0, 0], C[0, 0], mp, Pp, mf, Pf, w, acc
            )
    if mode == 0 or np.isnan(ll):
        return ll
    stats = _new_stats(1, 1, 1)
    S = np.ones((1, 1))
    _smooth_diffuse_steps(
        y, U, a, d, rest, params, S, m_next, P_next, w, stats, _new_outs(0, 1, 1), False
    )
    buf = np.zeros(12)
    _flatten_stats(stats, buf, 1)
    for i in range(11):
        acc[i] += buf[1 + i]
    return ll


@njit(cache=True)
def scalar_diffuse_run(Y, U, offsets, theta, weights, mode):
    """:func:`scalar_run` with the state of every sequence's first step diffuse (exact
    diffuse start): in closed form where the first value is observed
    (:func:`_first_observed`), else the diffuse steps as
    :func:`~latentem.kernels.kalman_diffuse.diffuse_smoother` runs them
    (:func:`_diffuse_sequence`). ``U`` is the empty (n_rows, 0) inputs."""
    mp, Pp, mf, Pf = _scalar_scratch(offsets)
    out = np.zeros(12)
    acc = out[1:]
    pinned = theta[1] * theta[1] > TOL  # C^2: the first value informs the flat state
    total = 0.0
    for s in range(offsets.shape[0] - 1):
        a, b, w = offsets[s], offsets[s + 1], weights[s]
        if pinned and not np.isnan(Y[a, 0]):
            total += _first_observed(Y, a, b, theta, w, mode, mp, Pp, mf, Pf, acc)
        else:
            total += _diffuse_sequence(Y, U, a, b, theta, w, mode, mp, Pp, mf, Pf, acc)
    out[0] = total
    return out


# ----------------------------------------------------------------------------- M-step
@njit(cache=True)
def _regress(Szz, Syz, Phi):
    """``Phi = Syz Szz^-1`` into ``Phi`` (k, nz); False (``Phi`` untouched) if ``Szz`` is
    not positive definite (the model's M-step then solves by least squares)."""
    nz = Szz.shape[0]
    k = Syz.shape[0]
    L = np.zeros((nz, nz))
    if not _cholesky(Szz, nz, L):
        return False
    X = Syz.copy()
    for i in range(k):  # row i of Phi solves Szz phi = Syz[i]
        _solve_row(L, nz, X, i)
    Phi[:, :] = X
    return True


@njit(cache=True)
def _residual_cov(Syy, Syz, Szz, Phi, count, kind, out):
    """``(Syy - Phi Syz' - Syz Phi' + Phi Szz Phi') / count`` symmetrised, in the
    structure ``kind`` (full, diagonal or scalar), into ``out``."""
    k, nz = Phi.shape
    PS = np.zeros((k, k))  # Phi Syz'
    PZ = np.zeros((k, nz))  # Phi Szz
    for i in range(k):
        for j in range(k):
            s = 0.0
            for q in range(nz):
                s += Phi[i, q] * Syz[j, q]
            PS[i, j] = s
        for j in range(nz):
            s = 0.0
            for q in range(nz):
                s += Phi[i, q] * Szz[q, j]
            PZ[i, j] = s
    new = np.empty((k, k))
    for i in range(k):
        for j in range(i + 1):
            s = 0.0
            for q in range(nz):
                s += PZ[i, q] * Phi[j, q]
            x = Syy[i, j] - PS[i, j] - PS[j, i] + s
            y = Syy[j, i] - PS[j, i] - PS[i, j] + s
            new[i, j] = new[j, i] = 0.5 * (x + y) / count
    if kind == COV_FULL or k == 1:
        out[:, :] = new
        return
    mean = 0.0
    for i in range(k):
        mean += new[i, i]
    mean /= k
    out[:, :] = 0.0
    for i in range(k):
        out[i, i] = new[i, i] if kind == COV_DIAG else mean


@njit(cache=True)
def m_step_packed(stats, theta, n, p, m, codes):
    """The M-step on the packed parameters ``theta`` in place, from the flat statistics
    ``stats`` (without the log-likelihood in front). ``codes``: ``[A B]`` free (1) or
    held (0), Q's update (``COV_*``), ``[C D]`` free, R's update, initial mean free,
    initial covariance free. ``[A B]`` then Q given it, ``[C D]`` then R: exact EM.
    False, with ``theta`` untouched, where a regression's Gram matrix is singular."""
    nz = n + m
    k = 0
    Zp = stats[k : k + nz * nz].reshape((nz, nz))
    k += nz * nz
    XZ = stats[k : k + n * nz].reshape((n, nz))
    k += n * nz
    XX = stats[k : k + n * n].reshape((n, n))
    k += n * n
    W = stats[k : k + nz * nz].reshape((nz, nz))
    k += nz * nz
    YW = stats[k : k + p * nz].reshape((p, nz))
    k += p * nz
    YY = stats[k : k + p * p].reshape((p, p))
    k += p * p
    s1 = stats[k : k + n]
    k += n
    S1 = stats[k : k + n * n].reshape((n, n))
    k += n * n
    n_trans, n_obs, n_seq = stats[k], stats[k + 1], stats[k + 2]
    A, B, C, D, Q, R, m0, P0 = _unpack(theta, n, p, m)
    Phi = np.empty((n, nz))
    Phi[:, :n] = A
    Phi[:, n:] = B
    Psi = np.empty((p, nz))
    Psi[:, :n] = C
    Psi[:, n:] = D
    if n_trans > 0:
        if codes[0] and not _regress(Zp, XZ, Phi):
            return False
        if codes[1] != COV_HELD:
            _residual_cov(XX, XZ, Zp, Phi, n_trans, codes[1], Q)
    if codes[2] and not _regress(W, YW, Psi):
        return False
    if codes[3] != COV_HELD:
        _residual_cov(YY, YW, W, Psi, n_obs, codes[3], R)
    if codes[4]:
        for i in range(n):
            m0[i] = s1[i] / n_seq
    if codes[5]:
        for i in range(n):
            for j in range(i + 1):
                x = (S1[i, j] - s1[i] * m0[j] - m0[i] * s1[j]) / n_seq + m0[i] * m0[j]
                y = (S1[j, i] - s1[j] * m0[i] - m0[j] * s1[i]) / n_seq + m0[j] * m0[i]
                P0[i, j] = P0[j, i] = 0.5 * (x + y)
    k = _put(theta, 0, Phi, 0, n)
    k = _put(theta, k, Phi, n, nz)
    k = _put(theta, k, Psi, 0, n)
    k = _put(theta, k, Psi, n, nz)
    k = _put(theta, k, Q, 0, n)
    k = _put(theta, k, R, 0, p)
    for x in m0:
        theta[k] = x
        k += 1
    _put(theta, k, P0, 0, n)
    return True


@njit(cache=True)
def _put(theta, k, M, c0, c1):
    """Columns ``c0..c1-1`` of ``M``, row by row, into ``theta`` from ``k``; the next k."""
    for i in range(M.shape[0]):
        for j in range(c0, c1):
            theta[k] = M[i, j]
            k += 1
    return k


@njit(cache=True)
def m_step_scalar(stats, theta, codes):
    """:func:`m_step_packed` for one state, one feature and no inputs, in numbers
    (``theta = [A, C, Q, R, m0, P0]``): the general one's small arrays cost more than
    its arithmetic here. False, with ``theta`` untouched, where ``Zp`` or ``W`` is not
    positive."""
    Zp, XZ, XX, W, YW, YY, s1, S1 = (
        stats[0],
        stats[1],
        stats[2],
        stats[3],
        stats[4],
        stats[5],
        stats[6],
        stats[7],
    )
    n_trans, n_obs, n_seq = stats[8], stats[9], stats[10]
    A, C, Q, R, m0, P0 = theta[0], theta[1], theta[2], theta[3], theta[4], theta[5]
    if n_trans > 0:
        if codes[0]:
            if not Zp > 0.0:
                return False
            A = XZ / Zp
        if codes[1] != COV_HELD:
            PS = A * XZ
            Q = (XX - PS - PS + (A * Zp) * A) / n_trans
    if codes[2]:
        if not W > 0.0:
            return False
        C = YW / W
    if codes[3] != COV_HELD:
        PS = C * YW
        R = (YY - PS - PS + (C * W) * C) / n_obs
    if codes[4]:
        m0 = s1 / n_seq
    if codes[5]:
        P0 = (S1 - s1 * m0 - m0 * s1) / n_seq + m0 * m0
    theta[0], theta[1], theta[2], theta[3], theta[4], theta[5] = A, C, Q, R, m0, P0
    return True


@njit(cache=True)
def accept_theta(current, theta, checks):
    """Copy ``theta`` into ``current`` if it is finite and each covariance in it passes
    (``checks``: rows ``[start, k, semi]``, a k x k matrix from ``start``; positive
    definite, or with ``semi`` positive semi-definite up to ``1e-10 (1 + max |S|)`` on
    the diagonal, by a Cholesky factorisation); False, ``current`` untouched, if not.
    SQUAREM's check of an extrapolated point, in one call."""
    for x in theta:
        if not np.isfinite(x):
            return False
    for r in range(checks.shape[0]):
        start, k, semi = checks[r, 0], checks[r, 1], checks[r, 2]
        S = theta[start : start + k * k].copy().reshape((k, k))
        if semi:
            largest = 0.0
            for x in S.ravel():
                largest = max(largest, abs(x))
            for i in range(k):
                S[i, i] += 1e-10 * (1.0 + largest)
        L = np.zeros((k, k))
        if not _cholesky(S, k, L):
            return False
    current[:] = theta
    return True
