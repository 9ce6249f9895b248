"""numba kernels for linear-Gaussian state-space models: Kalman filter and RTS smoother.

The model, for every sequence (time t = 1, 2, ... within it)::

    x_1 = m0 + w_1,                      w_1 ~ N(0, P0)
    x_t = A x_{t-1} + B u_t + w_t,       w_t ~ N(0, Q)      (t >= 2)
    y_t = C x_t + D u_t + v_t,           v_t ~ N(0, R)

The kernels work on all sequences at once, as the HMM kernels do: the rows of
all sequences are stacked (``Y`` (n_rows, p) with NaN for missing entries,
``U`` (n_rows, m) inputs), ``offsets`` (n_sequences + 1) marks where each
sequence starts, and ``groups`` (from
:func:`latentem.kernels.hmm.sequence_groups`) splits the sequences into
fixed groups run in parallel. Each group writes its own partial sums, added
in group order afterwards, so threads never change the answer.

A partly missing observation vector is handled exactly: only the observed
rows of ``C``, ``D`` and the observed block of ``R`` enter the update. The
covariance update is in Joseph form, which stays symmetric and positive
semi-definite when the gain is computed from an ill-conditioned innovation
covariance.

The smoother returns the expected sufficient statistics of EM (Shumway and
Stoffer, 1982; Ghahramani and Hinton, 1996), with the missing entries of
``y`` treated as latent too, so the M-step for ``C``, ``D`` and a full ``R``
is exact with gaps:

* transition: ``Zp = sum E[z z']`` with ``z = [x_{t-1}; u_t]``,
  ``XZ = sum E[x_t z']``, ``XX = sum E[x_t x_t']`` over t >= 2;
* observation: ``W = sum E[w w']`` with ``w = [x_t; u_t]``,
  ``YW = sum E[y_t w']``, ``YY = sum E[y_t y_t']`` over the time steps with
  at least one observed entry (a step with none is left out of the complete
  data, which keeps EM exact and converges faster);
* initial state: ``sum E[x_1]`` and ``sum E[x_1 x_1']``;
* counts: transitions, observed time steps, sequences (each weighted by the
  sequence's weight).
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit, prange
from latentem.kernels.kalman_linalg import (
    _cholesky,
    _solve_row,
    _solve_vec,
)

#: FMA contraction only: no reassociation, and NaN checks keep working
_FM = {"contract"}

__all__ = ["kalman_smoother", "kalman_stats", "N_COUNTS"]

_LOG_2PI = np.log(2.0 * np.pi)
#: Entries of the ``counts`` statistic: transitions, observation times, sequences.
N_COUNTS = 3


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _filter_sequence(Y, U, a, T, A, B, C, D, Q, R, m0, P0, mp, Pp, mf, Pf, work):
    """Kalman filter over rows a..a+T-1: predicted (``mp``, ``Pp``) and filtered
    (``mf``, ``Pf``) moments into rows 0..T-1 of the buffers. Returns the log-likelihood,
    NaN if an innovation covariance is not positive definite."""
    n = A.shape[0]
    p = C.shape[0]
    m = U.shape[1]
    obs, S, L, PCt, K, M, tmp, v, du, _, _ = work
    ll = 0.0
    for t in range(T):
        r = a + t
        # ---- predict
        if t == 0:
            for i in range(n):
                mp[t, i] = m0[i]
                for j in range(n):
                    Pp[t, i, j] = P0[i, j]
        else:
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += A[i, j] * mf[t - 1, j]
                for j in range(m):
                    s += B[i, j] * U[r, j]
                mp[t, i] = s
            # tmp = A Pf
            for i in range(n):
                for j in range(n):
                    s = 0.0
                    for q in range(n):
                        s += A[i, q] * Pf[t - 1, q, j]
                    tmp[i, j] = s
            for i in range(n):
                for j in range(i + 1):
                    s = Q[i, j]
                    for q in range(n):
                        s += tmp[i, q] * A[j, q]
                    Pp[t, i, j] = s
                    Pp[t, j, i] = s
        # ---- update with the observed entries only
        k = p - p  # typed int64, not a literal: one specialisation of _cholesky and co.
        for i in range(p):  # the observed entries (written out: see _smooth_sequence)
            if not np.isnan(Y[r, i]):
                obs[k] = i
                k += 1
        if k == 0:
            for i in range(n):
                mf[t, i] = mp[t, i]
                for j in range(n):
                    Pf[t, i, j] = Pp[t, i, j]
            continue
        for i in range(p):
            s = 0.0
            for j in range(m):
                s += D[i, j] * U[r, j]
            du[i] = s
        # PCt = Pp C_o' (n x k); v = y_o - C_o mp - (D u)_o
        for i in range(n):
            for c in range(k):
                s = 0.0
                oc = obs[c]
                for q in range(n):
                    s += Pp[t, i, q] * C[oc, q]
                PCt[i, c] = s
        for c in range(k):
            oc = obs[c]
            s = Y[r, oc] - du[oc]
            for q in range(n):
                s -= C[oc, q] * mp[t, q]
            v[c] = s
            for d in range(c + 1):
                od = obs[d]
                s = R[oc, od]
                for q in range(n):
                    s += C[oc, q] * PCt[q, d]
                S[c, d] = s
                S[d, c] = s
        if not _cholesky(S, k, L):
            return np.nan
        logdet = 0.0
        for c in range(k):
            logdet += np.log(L[c, c])
        # K = PCt S^-1: solve S K' = PCt' row by row of K
        for i in range(n):
            for c in range(k):
                K[i, c] = PCt[i, c]
            _solve_row(L, k, K, i)
        # quadratic form v' S^-1 v
        for c in range(k):
            du[c] = v[c]
        _solve_vec(L, k, du)
        quad = 0.0
        for c in range(k):
            quad += v[c] * du[c]
        ll -= 0.5 * (k * _LOG_2PI + 2.0 * logdet + quad)
        for i in range(n):
            s = mp[t, i]
            for c in range(k):
                s += K[i, c] * v[c]
            mf[t, i] = s
        # Joseph form: Pf = M Pp M' + K R_oo K', M = I - K C_o
        for i in range(n):
            for j in range(n):
                s = 1.0 if i == j else 0.0
                for c in range(k):
                    s -= K[i, c] * C[obs[c], j]
                M[i, j] = s
        for i in range(n):
            for j in range(n):
                s = 0.0
                for q in range(n):
                    s += M[i, q] * Pp[t, q, j]
                tmp[i, j] = s
        for i in range(n):
            for c in range(k):
                s = 0.0
                for d in range(k):
                    s += K[i, d] * R[obs[d], obs[c]]
                PCt[i, c] = s  # K R_oo, reusing the buffer
        for i in range(n):
            for j in range(i + 1):
                s = 0.0
                for q in range(n):
                    s += tmp[i, q] * M[j, q]
                for c in range(k):
                    s += PCt[i, c] * K[j, c]
                Pf[t, i, j] = s
                Pf[t, j, i] = s
    return ll


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _filter_univariate(Y, U, a, T, A, B, C, D, Q, R, m0, P0, mp, Pp, mf, Pf, work):
    """:func:`_filter_sequence` for a diagonal ``R``: the observed entries of a step
    enter one at a time, each a scalar update (Durbin and Koopman's univariate
    treatment; with independent noises it gives the same moments and log-likelihood).
    No Cholesky factor, no solve, ``O(k n^2)`` per step instead of
    ``O(k^3 + k^2 n + n^3)``: several times less work for a few states and features.
    Each scalar update is in Joseph form, written as rank-one corrections
    (``M P M' + r K K'`` with ``M = I - K c``), so it stays symmetric."""
    n = A.shape[0]
    p = C.shape[0]
    m = U.shape[1]
    tmp, PC, K = work[6], work[9], work[10]
    ll = 0.0
    for t in range(T):
        r = a + t
        # predict, written out as in _filter_sequence: a call per step (even one numba
        # inlines) cost as much as the step's arithmetic
        if t == 0:
            for i in range(n):
                mp[t, i] = m0[i]
                for j in range(n):
                    Pp[t, i, j] = P0[i, j]
        else:
            for i in range(n):
                s = 0.0
                for j in range(n):
                    s += A[i, j] * mf[t - 1, j]
                for j in range(m):
                    s += B[i, j] * U[r, j]
                mp[t, i] = s
            # tmp = A Pf
            for i in range(n):
                for j in range(n):
                    s = 0.0
                    for q in range(n):
                        s += A[i, q] * Pf[t - 1, q, j]
                    tmp[i, j] = s
            for i in range(n):
                for j in range(i + 1):
                    s = Q[i, j]
                    for q in range(n):
                        s += tmp[i, q] * A[j, q]
                    Pp[t, i, j] = s
                    Pp[t, j, i] = s
        for i in range(n):
            mf[t, i] = mp[t, i]
            for j in range(n):
                Pf[t, i, j] = Pp[t, i, j]
        for o in range(p):
            y = Y[r, o]
            if np.isnan(y):
                continue
            v = y
            for j in range(m):
                v -= D[o, j] * U[r, j]
            cpc = 0.0
            for i in range(n):
                s = 0.0
                for q in range(n):
                    s += Pf[t, i, q] * C[o, q]
                PC[i] = s
                cpc += C[o, i] * s
                v -= C[o, i] * mf[t, i]
            rv = R[o, o]
            f = rv + cpc
            if not f > 0.0:
                return np.nan
            inv = 1.0 / f
            ll -= 0.5 * (_LOG_2PI + np.log(f) + v * v * inv)
            for i in range(n):
                K[i] = PC[i] * inv
                mf[t, i] += K[i] * v
            # M P M' + r K K' = P - K PC' - g K' + r K K', with g = M P c' = PC - K c P c'
            for i in range(n):
                g = PC[i] - K[i] * cpc
                for j in range(i + 1):
                    s = Pf[t, i, j] - K[i] * PC[j] - g * K[j] + rv * K[i] * K[j]
                    Pf[t, i, j] = s
                    Pf[t, j, i] = s
    return ll


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _smooth_sequence(Y, U, a, T, A, C, D, R, r_diag, mp, Pp, mf, Pf, w, stats, store, outs, work2):
    """RTS smoother over one filtered sequence; adds its weighted statistics into
    ``stats`` and (if ``store``) writes smoothed moments into ``outs``."""
    n = A.shape[0]
    p = C.shape[0]
    m = U.shape[1]
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    out_mean, out_cov, out_ymean, out_yvar = outs
    ms, Ps, J, Lp, rhs, G, h, Rc, ey, cov_yx, Lr, obs, mis, kv, tmp = work2
    # last step: smoothed = filtered
    for i in range(n):
        ms[T - 1, i] = mf[T - 1, i]
        for j in range(n):
            Ps[T - 1, i, j] = Pf[T - 1, i, j]
    for t in range(T - 2, -1, -1):
        # J = Pf[t] A' Pp[t+1]^-1, i.e. Pp[t+1] J' = A Pf[t], by the factor and solve of
        # kalman_linalg's _cholesky_semi and _solve_semi, written out here: a call per
        # time step (even one numba inlines) cost as much as the step's arithmetic
        scale = 0.0
        for i in range(n):
            scale = max(scale, abs(Pp[t + 1, i, i]))
        tiny = 1e-13 * scale
        for j in range(n):
            d = Pp[t + 1, j, j]
            for q in range(j):
                d -= Lp[j, q] * Lp[j, q]
            for i in range(j):
                Lp[i, j] = 0.0
            if not d > tiny:  # a direction of zero variance: its column left zero
                for i in range(j, n):
                    Lp[i, j] = 0.0
                continue
            d = np.sqrt(d)
            Lp[j, j] = d
            for i in range(j + 1, n):
                s = Pp[t + 1, i, j]
                for q in range(j):
                    s -= Lp[i, q] * Lp[j, q]
                Lp[i, j] = s / d
        for j in range(n):  # column j of J' = row j of J
            for i in range(n):
                s = 0.0
                for q in range(n):
                    s += A[i, q] * Pf[t, q, j]
                rhs[i] = s
            for i in range(n):  # zero columns of the factor give zero
                if Lp[i, i] == 0.0:
                    rhs[i] = 0.0
                    continue
                s = rhs[i]
                for q in range(i):
                    s -= Lp[i, q] * rhs[q]
                rhs[i] = s / Lp[i, i]
            for i in range(n - 1, -1, -1):
                if Lp[i, i] == 0.0:
                    rhs[i] = 0.0
                    continue
                s = rhs[i]
                for q in range(i + 1, n):
                    s -= Lp[q, i] * rhs[q]
                rhs[i] = s / Lp[i, i]
            for i in range(n):
                J[j, i] = rhs[i]
        for i in range(n):
            s = mf[t, i]
            for q in range(n):
                s += J[i, q] * (ms[t + 1, q] - mp[t + 1, q])
            ms[t, i] = s
        # Ps[t] = Pf[t] + J (Ps[t+1] - Pp[t+1]) J'
        for i in range(n):
            for j in range(n):
                s = 0.0
                for q in range(n):
                    s += J[i, q] * (Ps[t + 1, q, j] - Pp[t + 1, q, j])
                tmp[i, j] = s
        for i in range(n):
            for j in range(i + 1):
                s = Pf[t, i, j]
                for q in range(n):
                    s += tmp[i, q] * J[j, q]
                Ps[t, i, j] = s
                Ps[t, j, i] = s
        # transition statistics for the pair (t, t+1): z = [x_t; u_{t+1}]
        r1 = a + t + 1
        for i in range(n):
            for j in range(n):
                Zp[i, j] += w * (Ps[t, i, j] + ms[t, i] * ms[t, j])
                XX[i, j] += w * (Ps[t + 1, i, j] + ms[t + 1, i] * ms[t + 1, j])
                # Cov(x_{t+1}, x_t) = Ps[t+1] J'
                s = 0.0
                for q in range(n):
                    s += Ps[t + 1, i, q] * J[j, q]
                XZ[i, j] += w * (s + ms[t + 1, i] * ms[t, j])
            for j in range(m):
                Zp[i, n + j] += w * ms[t, i] * U[r1, j]
                Zp[n + j, i] += w * ms[t, i] * U[r1, j]
                XZ[i, n + j] += w * ms[t + 1, i] * U[r1, j]
        for i in range(m):
            for j in range(m):
                Zp[n + i, n + j] += w * U[r1, i] * U[r1, j]
        counts[0] += w
    # initial state
    for i in range(n):
        s1[i] += w * ms[0, i]
        for j in range(n):
            S1[i, j] += w * (Ps[0, i, j] + ms[0, i] * ms[0, j])
    counts[2] += w
    # observation statistics, missing entries of y as latent variables
    for t in range(T):
        r = a + t
        k = p - p  # typed int64, not a literal: one specialisation of _cholesky and co.
        nm = p - p
        for i in range(p):  # the observed and the missing entries (see J above)
            if np.isnan(Y[r, i]):
                mis[nm] = i
                nm += 1
            else:
                obs[k] = i
                k += 1
        # residual of the observed entries at the smoothed mean is not needed: the
        # missing entries given x_t and y_o are G x_t + h + e, e ~ N(0, Rc)
        for c in range(nm):
            for d in range(k):
                kv[c, d] = 0.0
        if nm > 0 and k > 0 and not r_diag:
            # kv = R_mo R_oo^-1
            for c in range(k):
                for d in range(k):
                    Rc[c, d] = R[obs[c], obs[d]]
            _cholesky(Rc, k, Lr)
            for c in range(nm):
                for d in range(k):
                    kv[c, d] = R[mis[c], obs[d]]
                _solve_row(Lr, k, kv, c)
        for i in range(p):
            s = 0.0
            for j in range(m):
                s += D[i, j] * U[r, j]
            h[i] = s  # D u for now
        for c in range(nm):
            mc = mis[c]
            s = h[mc]
            for d in range(k):
                s += kv[c, d] * (Y[r, obs[d]] - h[obs[d]])
            for q in range(n):
                g = C[mc, q]
                for d in range(k):
                    g -= kv[c, d] * C[obs[d], q]
                G[c, q] = g
                s += g * ms[t, q]
            ey[mc] = s
        for d in range(k):
            ey[obs[d]] = Y[r, obs[d]]
        # Rc = R_mm - kv R_om
        for c in range(nm):
            for e in range(nm):
                s = R[mis[c], mis[e]]
                for d in range(k):
                    s -= kv[c, d] * R[obs[d], mis[e]]
                Rc[c, e] = s
        # cov_yx (nm x n) = G Ps
        for c in range(nm):
            for j in range(n):
                s = 0.0
                for q in range(n):
                    s += G[c, q] * Ps[t, q, j]
                cov_yx[c, j] = s
        # a row with nothing observed is left out of the complete data (exact EM, as
        # pykalman does); the gaps of partly observed rows are latent variables
        wo = w if k > 0 else 0.0
        for i in range(n):
            for j in range(n):
                W[i, j] += wo * (Ps[t, i, j] + ms[t, i] * ms[t, j])
            for j in range(m):
                W[i, n + j] += wo * ms[t, i] * U[r, j]
                W[n + j, i] += wo * ms[t, i] * U[r, j]
        for i in range(m):
            for j in range(m):
                W[n + i, n + j] += wo * U[r, i] * U[r, j]
        for i in range(p):
            for j in range(n):
                YW[i, j] += wo * ey[i] * ms[t, j]
            for j in range(m):
                YW[i, n + j] += wo * ey[i] * U[r, j]
            for j in range(p):
                YY[i, j] += wo * ey[i] * ey[j]
        for c in range(nm):
            mc = mis[c]
            for j in range(n):
                YW[mc, j] += wo * cov_yx[c, j]
            for e in range(nm):
                s = Rc[c, e]
                for q in range(n):
                    s += cov_yx[c, q] * G[e, q]
                YY[mc, mis[e]] += wo * s
                if e == c and store:
                    out_yvar[r, mc] = s
        counts[1] += wo
        if store:
            for i in range(n):
                out_mean[r, i] = ms[t, i]
                for j in range(n):
                    out_cov[r, i, j] = Ps[t, i, j]
            for i in range(p):
                out_ymean[r, i] = ey[i]
            for d in range(k):
                out_yvar[r, obs[d]] = 0.0


@njit(cache=True)
def _filter_scalar(Y, a, T, A, C, Q, R, m0, P0, mp, Pp, mf, Pf):
    """:func:`_filter_sequence` for one state, one observation and no inputs (``A``,
    ``C``, ``Q``, ``R``, ``m0``, ``P0`` as numbers): the same arithmetic, in the same
    order, without the loops over dimensions of 1 that cost more than the arithmetic."""
    ll = 0.0
    for t in range(T):
        if t == 0:
            m, P = m0, P0
        else:
            m = A * mf[t - 1, 0]
            P = Q + (A * Pf[t - 1, 0, 0]) * A
        mp[t, 0] = m
        Pp[t, 0, 0] = P
        y = Y[a + t, 0]
        if np.isnan(y):
            mf[t, 0] = m
            Pf[t, 0, 0] = P
            continue
        PC = P * C
        v = y - C * m
        S = R + C * PC
        if not S > 0.0:
            return np.nan
        L = np.sqrt(S)
        K = (PC / L) / L
        ll -= 0.5 * (_LOG_2PI + 2.0 * np.log(L) + v * ((v / L) / L))
        mf[t, 0] = m + K * v
        M = 1.0 - K * C
        Pf[t, 0, 0] = (M * P) * M + (K * R) * K
    return ll


@njit(cache=True)
def _smooth_scalar(Y, a, T, A, C, R, mp, Pp, mf, Pf, ms, Ps, w, stats, store, outs):
    """:func:`_smooth_sequence` for one state, one observation and no inputs, as
    :func:`_filter_scalar` is to :func:`_filter_sequence`."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    out_mean, out_cov, out_ymean, out_yvar = outs
    ms[T - 1, 0] = mf[T - 1, 0]
    Ps[T - 1, 0, 0] = Pf[T - 1, 0, 0]
    for t in range(T - 2, -1, -1):
        P1 = Pp[t + 1, 0, 0]
        J = 0.0  # a predicted variance of zero (to rounding) gives no gain, as _solve_semi
        if P1 > 1e-13 * abs(P1):
            L = np.sqrt(P1)
            J = ((A * Pf[t, 0, 0]) / L) / L
        m_t = mf[t, 0] + J * (ms[t + 1, 0] - mp[t + 1, 0])
        P_t = Pf[t, 0, 0] + (J * (Ps[t + 1, 0, 0] - P1)) * J
        ms[t, 0] = m_t
        Ps[t, 0, 0] = P_t
        m1, P1s = ms[t + 1, 0], Ps[t + 1, 0, 0]
        Zp[0, 0] += w * (P_t + m_t * m_t)
        XX[0, 0] += w * (P1s + m1 * m1)
        XZ[0, 0] += w * (P1s * J + m1 * m_t)
        counts[0] += w
    s1[0] += w * ms[0, 0]
    S1[0, 0] += w * (Ps[0, 0, 0] + ms[0, 0] * ms[0, 0])
    counts[2] += w
    for t in range(T):
        r = a + t
        m_t, P_t, y = ms[t, 0], Ps[t, 0, 0], Y[r, 0]
        if np.isnan(y):  # left out of the complete data; its smoothed value and variance
            y = C * m_t
            if store:
                out_yvar[r, 0] = R + (C * P_t) * C
        else:
            W[0, 0] += w * (P_t + m_t * m_t)
            YW[0, 0] += w * y * m_t
            YY[0, 0] += w * y * y
            counts[1] += w
            if store:
                out_yvar[r, 0] = 0.0
        if store:
            out_mean[r, 0] = m_t
            out_cov[r, 0, 0] = P_t
            out_ymean[r, 0] = y


@njit(cache=True)
def _is_diagonal(R):
    """Whether ``R`` is diagonal. A function, so the flag is typed ``bool``: a flag set
    to ``True`` in place is typed ``Literal[bool](True)`` first, and every kernel it is
    passed to would be compiled twice, once for each type."""
    for i in range(R.shape[0]):
        for j in range(R.shape[1]):
            if i != j and R[i, j] != 0.0:
                return False
    return True


@njit(cache=True)
def _group_stats(g_stats, g):
    """Group ``g``'s own statistics arrays, views into the stacked ``g_stats``."""
    g_Zp, g_XZ, g_XX, g_W, g_YW, g_YY, g_s1, g_S1, g_counts = g_stats
    return (g_Zp[g], g_XZ[g], g_XX[g], g_W[g], g_YW[g], g_YY[g], g_s1[g], g_S1[g], g_counts[g])


@njit(cache=True, error_model="numpy", fastmath=_FM)
def _run_group(Y, U, offsets, first, last, params, weights, mode, r_diag, seq_ll, stats, outs):
    """Filter (and smooth) sequences ``first..last-1``, adding their statistics into the
    group's own arrays ``stats``. Compiled on its own, so the parallel loop stays small."""
    A, B, C, D, Q, R, m0, P0 = params
    n = A.shape[0]
    p = C.shape[0]
    store = mode == 2
    longest = 1
    for s in range(first, last):
        longest = max(longest, offsets[s + 1] - offsets[s])
    mp = np.empty((longest, n))
    Pp = np.empty((longest, n, n))
    mf = np.empty((longest, n))
    Pf = np.empty((longest, n, n))
    work = (
        np.empty(p, dtype=np.int64),
        np.empty((p, p)),
        np.empty((p, p)),
        np.empty((n, p)),
        np.empty((n, p)),
        np.empty((n, n)),
        np.empty((n, n)),
        np.empty(p),
        np.empty(p),
        np.empty(n),
        np.empty(n),
    )
    if mode > 0:
        ms = np.empty((longest, n))
        Ps = np.empty((longest, n, n))
    else:
        ms = np.empty((0, n))
        Ps = np.empty((0, n, n))
    work2 = (
        ms,
        Ps,
        np.empty((n, n)),
        np.zeros((n, n)),
        np.empty(n),
        np.empty((p, n)),
        np.empty(p),
        np.empty((p, p)),
        np.empty(p),
        np.empty((p, n)),
        np.zeros((p, p)),
        np.empty(p, dtype=np.int64),
        np.empty(p, dtype=np.int64),
        np.empty((p, p)),
        np.empty((n, n)),
    )
    scalar = n == 1 and p == 1 and U.shape[1] == 0
    for s in range(first, last):
        a = offsets[s]
        T = offsets[s + 1] - a
        if scalar:
            ll = _filter_scalar(
                Y, a, T, A[0, 0], C[0, 0], Q[0, 0], R[0, 0], m0[0], P0[0, 0], mp, Pp, mf, Pf
            )
            seq_ll[s] = ll
            if mode > 0 and not np.isnan(ll):
                _smooth_scalar(
                    Y, a, T, A[0, 0], C[0, 0], R[0, 0], mp, Pp, mf, Pf, ms, Ps, weights[s],
                    stats, store, outs,
                )  # fmt: skip
            continue
        if r_diag:  # independent noises: one observed entry at a time
            ll = _filter_univariate(Y, U, a, T, A, B, C, D, Q, R, m0, P0, mp, Pp, mf, Pf, work)
        else:
            ll = _filter_sequence(Y, U, a, T, A, B, C, D, Q, R, m0, P0, mp, Pp, mf, Pf, work)
        seq_ll[s] = ll
        if mode > 0 and not np.isnan(ll):
            _smooth_sequence(
                Y,
                U,
                a,
                T,
                A,
                C,
                D,
                R,
                r_diag,
                mp,
                Pp,
                mf,
                Pf,
                weights[s],
                stats,
                store,
                outs,
                work2,
            )


@njit(cache=True, parallel=True, error_model="numpy", fastmath=_FM)
def _run_groups(Y, U, offsets, groups, params, weights, mode, r_diag, seq_ll, g_stats, outs):
    """The groups in parallel. Nothing but the loop lives here: with ``parallel=True``
    every array expression would become a parallel launch of its own."""
    n_groups = groups.shape[0] - 1
    for g in prange(n_groups):
        stats = _group_stats(g_stats, g)
        _run_group(
            Y,
            U,
            offsets,
            groups[g],
            groups[g + 1],
            params,
            weights,
            mode,
            r_diag,
            seq_ll,
            stats,
            outs,
        )


@njit(cache=True, error_model="numpy", fastmath=_FM)
def kalman_smoother(Y, U, offsets, groups, A, B, C, D, Q, R, m0, P0, weights, mode):
    """Kalman filter (and RTS smoother) over all sequences.

    Parameters
    ----------
    Y : (n_rows, p) float64, NaN where missing
    U : (n_rows, m) float64 inputs (m may be 0)
    offsets : (n_sequences + 1,) int64
    groups : (n_groups + 1,) int64, sequence boundaries of the parallel groups
    A, B, C, D, Q, R, m0, P0 : the model's parameters (see the module docstring)
    weights : (n_sequences,) float64, each sequence's weight in the statistics
    mode : int
        0: log-likelihood only (filter); 1: also the EM statistics (smoother);
        2: also the smoothed moments of every row.

    Returns
    -------
    seq_loglik : (n_sequences,)
        NaN for a sequence whose innovation covariance was not positive definite.
    stats : tuple
        ``(Zp, XZ, XX, W, YW, YY, s1, S1, counts)`` summed over all sequences
        (zeros in mode 0).
    outs : tuple
        ``(means (n_rows, n), covs (n_rows, n, n), y_means (n_rows, p), y_vars (n_rows, p))``
        in mode 2 (empty arrays otherwise): smoothed state moments, and every
        observation's expected value and variance given all the data (observed
        entries: the value itself and 0).
    """
    n = A.shape[0]
    p = C.shape[0]
    m = U.shape[1]
    nz = n + m
    n_seq = offsets.shape[0] - 1
    n_groups = groups.shape[0] - 1
    r_diag = _is_diagonal(R)
    store = mode == 2
    n_out = Y.shape[0] if store else 0
    out_mean = np.zeros((n_out, n))
    out_cov = np.zeros((n_out, n, n))
    out_ymean = np.zeros((n_out, p))
    out_yvar = np.zeros((n_out, p))
    g_Zp = np.zeros((n_groups, nz, nz))
    g_XZ = np.zeros((n_groups, n, nz))
    g_XX = np.zeros((n_groups, n, n))
    g_W = np.zeros((n_groups, nz, nz))
    g_YW = np.zeros((n_groups, p, nz))
    g_YY = np.zeros((n_groups, p, p))
    g_s1 = np.zeros((n_groups, n))
    g_S1 = np.zeros((n_groups, n, n))
    g_counts = np.zeros((n_groups, N_COUNTS))
    seq_ll = np.empty(n_seq)
    # the parameters, the groups' statistics and the outputs travel as tuples: one
    # argument list for the one-group call and the parallel loop alike
    params = (A, B, C, D, Q, R, m0, P0)
    g_stats = (g_Zp, g_XZ, g_XX, g_W, g_YW, g_YY, g_s1, g_S1, g_counts)
    outs = (out_mean, out_cov, out_ymean, out_yvar)
    if n_groups == 1:  # one thread: no parallel launch, and its sums are the totals
        stats = _group_stats(g_stats, n_groups - 1)  # not a literal 0: one specialisation
        _run_group(
            Y, U, offsets, groups[0], groups[1], params, weights, mode, r_diag, seq_ll, stats, outs
        )
        return seq_ll, stats, outs
    _run_groups(Y, U, offsets, groups, params, weights, mode, r_diag, seq_ll, g_stats, outs)
    Zp = np.zeros((nz, nz))
    XZ = np.zeros((n, nz))
    XX = np.zeros((n, n))
    W = np.zeros((nz, nz))
    YW = np.zeros((p, nz))
    YY = np.zeros((p, p))
    s1 = np.zeros(n)
    S1 = np.zeros((n, n))
    counts = np.zeros(N_COUNTS)
    for g in range(n_groups):
        Zp += g_Zp[g]
        XZ += g_XZ[g]
        XX += g_XX[g]
        W += g_W[g]
        YW += g_YW[g]
        YY += g_YY[g]
        s1 += g_s1[g]
        S1 += g_S1[g]
        counts += g_counts[g]
    return seq_ll, (Zp, XZ, XX, W, YW, YY, s1, S1, counts), (out_mean, out_cov, out_ymean, out_yvar)


@njit(cache=True, error_model="numpy", fastmath=_FM)
def kalman_stats(Y, U, offsets, groups, A, B, C, D, Q, R, m0, P0, weights, mode):
    """:func:`kalman_smoother` in mode 0 or 1, returning ``(seq_loglik, stats)`` only: the
    E-step's call, which leaves out the four empty outputs (each array handed back to
    Python costs about half a microsecond)."""
    params = (A, B, C, D, Q, R, m0, P0)
    seq_ll, stats, _ = kalman_smoother(Y, U, offsets, groups, *params, weights, mode)
    return seq_ll, stats
