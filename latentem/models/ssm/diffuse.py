"""Exact diffuse initialisation of a state-space model (Durbin and Koopman, 2012, ch. 5).

Some (or all) states of ``x_1`` have an infinite variance: ``x_1 = a + S delta + eta``,
``delta`` flat (its entries are the diffuse states), ``eta ~ N(0, P_*)`` on the others.
Each sequence's first steps, while the diffuse part is not yet pinned down by the
data, are handled here in NumPy; from the first step whose predicted state has a
finite covariance on, the sequence runs through the ordinary numba kernel with that
prediction as its start. The diffuse period is a few steps per sequence, so its cost
does not grow with the length of the series.

* :func:`diffuse_filter`: the exact initial Kalman filter in its univariate form
  (Koopman and Durbin, 2000), the one statsmodels runs: the log-likelihood of the
  diffuse steps as statsmodels counts it (``-1/2 log(2 pi F_inf)`` for an
  observation that informs the diffuse part, the usual term otherwise), how many
  steps are diffuse, and the prediction of the first step after them. A full
  ``R`` is made diagonal by its unit-triangular LDL factor, which keeps every
  determinant.
* :func:`diffuse_posterior`: the joint distribution of the states of the diffuse
  steps and the next one given the diffuse steps' observations, exactly: the
  generalised least squares of ``delta`` (a flat prior) with the noises integrated
  out. Conditioned on the smoothed first step after them, it gives the smoothed
  states and lag-one covariances of the diffuse steps, so the EM statistics of
  those steps are the limit of the ordinary ones as the variance goes to infinity,
  and EM stays monotone in the diffuse likelihood.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels.kalman import N_COUNTS, kalman_smoother

__all__ = ["diffuse_filter", "diffuse_posterior", "run_diffuse"]

_LOG_2PI = np.log(2.0 * np.pi)
#: statsmodels' tolerance: a diffuse forecast variance or a predicted diffuse covariance
#: (sum of squares) at most this is zero
TOL = 1e-10


def _diagonal_obs(Z: np.ndarray, e: np.ndarray, H: np.ndarray):
    """``(Z, e, h)`` with the noise covariance ``H`` made diagonal ``h`` by its
    unit-triangular LDL factor (``L^-1`` applied to ``Z`` and ``e``; ``det L = 1``)."""
    if np.count_nonzero(H - np.diag(np.diag(H))) == 0:
        return Z, e, np.diag(H).copy()
    Lc = np.linalg.cholesky(H)
    d = np.diag(Lc)
    L = Lc / d
    return np.linalg.solve(L, Z), np.linalg.solve(L, e), d * d


def diffuse_filter(y, u, A, B, C, D, Q, R, a0, P_star, P_inf):
    """Exact initial Kalman filter of one sequence (rows of ``y``, NaN missing).

    Returns ``(loglik, d, a, P)``: the log-likelihood of the ``d`` diffuse steps (a
    step is diffuse while its predicted diffuse covariance is not zero, as in
    statsmodels), and the mean and covariance of ``x_{d+1}`` given them (meaningless
    when ``d`` is the whole sequence).
    """
    n = A.shape[0]
    a, P, Pi = a0.copy(), P_star.copy(), P_inf.copy()
    ll = 0.0
    T = len(y)
    for t in range(T):
        if np.sum(Pi * Pi) <= TOL:
            return ll, t, a, 0.5 * (P + P.T)
        o = ~np.isnan(y[t])
        if o.any():
            Z, e, h = _diagonal_obs(C[o], y[t, o] - D[o] @ u[t], R[np.ix_(o, o)])
            for i in range(len(h)):
                z = Z[i]
                v = e[i] - z @ a
                M, Mi = P @ z, Pi @ z
                F, Fi = max(z @ M + h[i], 0.0), max(z @ Mi, 0.0)
                if Fi > TOL:  # the observation informs the diffuse part
                    K0 = Mi / Fi
                    K1 = M / Fi - K0 * (F / Fi)
                    a = a + K0 * v
                    L0 = np.eye(n) - np.outer(K0, z)
                    P = P @ L0.T - Pi @ np.outer(z, K1)
                    Pi = Pi @ L0.T
                    ll -= 0.5 * (_LOG_2PI + np.log(Fi))
                elif F > TOL:
                    K = M / F
                    a = a + K * v
                    P = P - np.outer(M, K)
                    ll -= 0.5 * (_LOG_2PI + np.log(F) + v * v / F)
        a = A @ a + (B @ u[t + 1] if t + 1 < T else 0.0)
        P = A @ P @ A.T + Q
        Pi = A @ Pi @ A.T
    return ll, T, a, 0.5 * (P + P.T)


def diffuse_posterior(y, u, d, A, B, C, D, Q, R, a0, P_star, diffuse):
    """Mean ``(d + 1, n)`` and covariance ``(n (d + 1), n (d + 1))`` of the states of
    steps ``0..d`` given the observations of steps ``0..d-1``, with the ``diffuse``
    states of step 0 flat.

    The states are linear in ``delta`` (flat) and ``xi = (eta, w_2, ..., w_{d+1})``
    (Gaussian): ``x = c + G delta + H xi``. ``delta`` by generalised least squares on
    the observations with ``xi`` and the observation noise integrated out, then
    ``xi`` given ``delta`` and the observations.
    """
    n = A.shape[0]
    S = np.eye(n)[:, diffuse]
    k = S.shape[1]
    nx = n * (d + 1)
    G = np.zeros((nx, k))
    H = np.zeros((nx, nx))
    c = np.zeros(nx)
    G[:n], H[:n, :n], c[:n] = S, np.eye(n), a0
    for t in range(1, d + 1):
        cur, prev = slice(t * n, (t + 1) * n), slice((t - 1) * n, t * n)
        G[cur] = A @ G[prev]
        H[cur] = A @ H[prev]
        H[cur, cur] += np.eye(n)
        c[cur] = A @ c[prev] + B @ u[t] if t < len(u) else A @ c[prev]
    Sxi = np.zeros((nx, nx))
    Sxi[:n, :n] = P_star
    for t in range(1, d + 1):
        Sxi[t * n : (t + 1) * n, t * n : (t + 1) * n] = Q
    rows_G, rows_H, rows_c, yv, noise = [], [], [], [], []
    for t in range(d):
        o = ~np.isnan(y[t])
        if not o.any():
            continue
        Co = C[o]
        block = slice(t * n, (t + 1) * n)
        rows_G.append(Co @ G[block])
        rows_H.append(Co @ H[block])
        rows_c.append(Co @ c[block] + D[o] @ u[t])
        yv.append(y[t, o])
        noise.append(R[np.ix_(o, o)])
    Hy, Fy = np.vstack(rows_G), np.vstack(rows_H)
    r = np.concatenate(yv) - np.concatenate(rows_c)
    V = Fy @ Sxi @ Fy.T
    start = 0
    for Rb in noise:
        V[start : start + len(Rb), start : start + len(Rb)] += Rb
        start += len(Rb)
    Lv = np.linalg.cholesky(V)
    Wy = np.linalg.solve(Lv, Hy)  # V^-1/2 Hy
    info = Wy.T @ Wy
    if np.linalg.matrix_rank(info) < k:
        raise ValueError(
            "the observations of a sequence do not pin down its diffuse initial state; "
            "give that sequence more observations, or a finite initial_cov for the states "
            "it cannot identify."
        )
    P_delta = np.linalg.inv(info)
    delta = P_delta @ (Wy.T @ np.linalg.solve(Lv, r))
    K = np.linalg.solve(Lv.T, np.linalg.solve(Lv, Fy @ Sxi)).T  # Sxi Fy' V^-1
    xi = K @ (r - Hy @ delta)
    KH = K @ Hy
    C_xd = -KH @ P_delta
    C_xx = Sxi - K @ Fy @ Sxi + KH @ P_delta @ KH.T
    mean = c + G @ delta + H @ xi
    HC = H @ C_xd @ G.T
    cov = G @ P_delta @ G.T + HC + HC.T + H @ C_xx @ H.T
    return mean.reshape(d + 1, n), 0.5 * (cov + cov.T)


def _pinv_sym(S: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a symmetric positive semi-definite matrix (directions of zero
    variance give no gain, as the kernel's smoother does)."""
    w, V = np.linalg.eigh(S)
    keep = w > 1e-13 * max(w.max(), 0.0)
    return (V[:, keep] / w[keep]) @ V[:, keep].T


def _observation_moments(y, u, m, P, C, D, R):
    """``E[y]``, ``Cov(y)`` and ``Cov(y, x)`` of one step given the state's smoothed
    moments and the observed entries (the missing ones as latent variables)."""
    n, p = len(m), len(y)
    o = ~np.isnan(y)
    mi = ~o
    ey = np.where(o, y, 0.0)
    cov_yy, cov_yx = np.zeros((p, p)), np.zeros((p, n))
    if mi.any():
        Kv = R[np.ix_(mi, o)] @ np.linalg.inv(R[np.ix_(o, o)]) if o.any() else np.zeros((0, 0))
        Kv = Kv.reshape(mi.sum(), o.sum())
        Gm = C[mi] - Kv @ C[o]
        ey[mi] = Gm @ m + D[mi] @ u + Kv @ (y[o] - D[o] @ u)
        Rc = R[np.ix_(mi, mi)] - Kv @ R[np.ix_(o, mi)]
        cov_yy[np.ix_(mi, mi)] = Gm @ P @ Gm.T + Rc
        cov_yx[mi] = Gm @ P
    return ey, cov_yy, cov_yx


def _add_diffuse_stats(stats, y, u, ms, Ps, cross, w, n_pairs, C, D, R, outs, a):
    """Add the EM statistics of the diffuse steps (``ms``, ``Ps`` smoothed, ``cross[t]
    = Cov(x_{t+1}, x_t)``) into ``stats``; their smoothed moments into ``outs`` from
    row ``a``."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    n = ms.shape[1]
    for t in range(n_pairs):
        z = np.concatenate([ms[t], u[t + 1]])
        Ezz = np.outer(z, z)
        Ezz[:n, :n] += Ps[t]
        Zp += w * Ezz
        xz = np.outer(ms[t + 1], z)
        xz[:, :n] += cross[t]
        XZ += w * xz
        XX += w * (Ps[t + 1] + np.outer(ms[t + 1], ms[t + 1]))
        counts[0] += w
    s1 += w * ms[0]
    S1 += w * (Ps[0] + np.outer(ms[0], ms[0]))
    counts[2] += w
    for t in range(len(y)):
        ey, cov_yy, cov_yx = _observation_moments(y[t], u[t], ms[t], Ps[t], C, D, R)
        wo = w if (~np.isnan(y[t])).any() else 0.0
        wv = np.concatenate([ms[t], u[t]])
        Eww = np.outer(wv, wv)
        Eww[:n, :n] += Ps[t]
        W += wo * Eww
        yw = np.outer(ey, wv)
        yw[:, :n] += cov_yx
        YW += wo * yw
        YY += wo * (np.outer(ey, ey) + cov_yy)
        counts[1] += wo
        if outs is not None:
            outs[0][a + t], outs[1][a + t] = ms[t], Ps[t]
            outs[2][a + t], outs[3][a + t] = ey, np.diag(cov_yy)


def run_diffuse(Y, U, offsets, params, diffuse, weights, mode):
    """:func:`~latentem.kernels.kalman.kalman_smoother` with the ``diffuse`` states of
    every sequence's first step flat (``P0`` holds ``P_*``, zero on them): the same
    outputs. Each sequence's diffuse steps here, the rest in the kernel."""
    A, B, C, D, Q, R, m0, P0 = params
    n, p, m = A.shape[0], C.shape[0], U.shape[1]
    nz = n + m
    P_inf = np.diag(diffuse.astype(np.float64))
    stats = (
        np.zeros((nz, nz)), np.zeros((n, nz)), np.zeros((n, n)), np.zeros((nz, nz)),
        np.zeros((p, nz)), np.zeros((p, p)), np.zeros(n), np.zeros((n, n)), np.zeros(N_COUNTS),
    )  # fmt: skip
    N = len(Y) if mode == 2 else 0
    outs = (np.zeros((N, n)), np.zeros((N, n, n)), np.zeros((N, p)), np.zeros((N, p)))
    n_seq = len(offsets) - 1
    seq_ll = np.empty(n_seq)
    one = np.array([0, 1], dtype=np.int64)
    for s in range(n_seq):
        a, b = int(offsets[s]), int(offsets[s + 1])
        y, u, w = Y[a:b], U[a:b], float(weights[s])
        ll, d, a_d, P_d = diffuse_filter(y, u, A, B, C, D, Q, R, m0, P0, P_inf)
        rest = b - a - d
        if rest > 0:
            # the rest starts from x_{d+1} | y_1..y_d: an ordinary Kalman problem
            sub = np.array([0, rest], dtype=np.int64)
            ll_r, st, out_r = kalman_smoother(
                Y[a + d : b], U[a + d : b], sub, one, A, B, C, D, Q, R,
                np.ascontiguousarray(a_d), np.ascontiguousarray(P_d), np.array([w]), max(mode, 2),
            )  # fmt: skip
            ll += ll_r[0]
        seq_ll[s] = ll
        if mode == 0 or not np.isfinite(ll):
            continue
        mean, cov = diffuse_posterior(y, u, d, A, B, C, D, Q, R, m0, P0, diffuse)
        ms, Ps = mean.copy(), np.empty((d + 1, n, n))
        cross = np.empty((d, n, n))
        if rest > 0:
            # condition the diffuse steps on the smoothed first step after them
            ba = slice(n * d, n * (d + 1))
            m_next, P_next = out_r[0][0], out_r[1][0]
            J = cov[: n * d, ba] @ _pinv_sym(cov[ba, ba])
            ms[:d] = (mean[:d].ravel() + J @ (m_next - mean[d])).reshape(d, n)
            full = cov[: n * d, : n * d] - J @ cov[ba, : n * d] + J @ P_next @ J.T
            ms[d], Ps[d] = m_next, P_next
            cross_last = P_next @ J[n * (d - 1) :].T
            for i, total in enumerate(st):
                if i not in (6, 7):  # the initial state's sums: those of the true first step
                    stats[i][...] += total
            stats[8][2] -= w
        else:
            full = cov[: n * d, : n * d]
        for t in range(d):
            Ps[t] = full[t * n : (t + 1) * n, t * n : (t + 1) * n]
            if t + 1 < d:
                cross[t] = full[(t + 1) * n : (t + 2) * n, t * n : (t + 1) * n]
        if rest > 0:
            cross[d - 1] = cross_last
        n_pairs = d if rest > 0 else d - 1
        _add_diffuse_stats(
            stats, y[:d], u[:d + 1] if rest > 0 else u[:d], ms, Ps, cross, w, n_pairs,
            C, D, R, outs if mode == 2 else None, a,
        )  # fmt: skip
        if mode == 2 and rest > 0:
            for k in range(4):
                outs[k][a + d : b] = out_r[k]
    return seq_ll, stats, outs
