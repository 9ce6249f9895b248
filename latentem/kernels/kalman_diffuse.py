"""numba kernels for the exact diffuse start of a state-space model (Durbin and Koopman,
2012, ch. 5), used by :mod:`latentem.models.ssm.diffuse`.

Some states of ``x_1`` are flat: ``x_1 = a + S delta + eta``, ``delta`` flat,
``eta ~ N(0, P_*)``. Each sequence's diffuse steps (while the predicted diffuse
covariance is not zero) are handled here; the rest of the sequence runs through
the one-group loop of :mod:`latentem.kernels.kalman` (not its parallel entry point,
which a cached caller should not embed), with the prediction the diffuse steps end
with as its start.

* :func:`_diffuse_filter`: the exact initial filter in its univariate form (Koopman
  and Durbin, 2000), as statsmodels runs it: ``-1/2 log(2 pi F_inf)`` for an
  observation that informs the diffuse part, the usual term otherwise; a full ``R``
  made diagonal by its unit-triangular LDL factor (which keeps every determinant).
* :func:`_diffuse_posterior`: the joint distribution of the states of the diffuse
  steps and the next one given the diffuse steps' observations: the generalised least
  squares of ``delta`` with the noises ``xi = (eta, w_2, ...)`` integrated out, then
  ``xi`` given ``delta``. Conditioned on the smoothed next step, it gives the smoothed
  states and lag-one covariances of the diffuse steps: the limit of the ordinary
  smoother's as the initial variance grows, so EM stays monotone.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit
from latentem.kernels.kalman import N_COUNTS, _run_group

__all__ = ["diffuse_smoother", "TOL"]

_LOG_2PI = np.log(2.0 * np.pi)
#: statsmodels' tolerance: a diffuse forecast variance, or the sum of squares of a
#: predicted diffuse covariance, at most this is zero
TOL = 1e-10


@njit(cache=True)
def _observed(y):
    """Indices of the observed entries of one row."""
    idx = np.empty(y.shape[0], dtype=np.int64)
    k = 0
    for i in range(y.shape[0]):
        if not np.isnan(y[i]):
            idx[k] = i
            k += 1
    return idx[:k]


@njit(cache=True)
def _diagonal_obs(Z, e, H, r_diag):
    """``(Z, e, h)`` with the noise covariance ``H`` made diagonal ``h`` by its
    unit-triangular LDL factor: ``L^-1`` applied to ``Z`` and ``e``, ``det L = 1``."""
    k = H.shape[0]
    h = np.empty(k)
    if r_diag:
        for i in range(k):
            h[i] = H[i, i]
        return Z, e, h
    Lc = np.linalg.cholesky(H)
    for i in range(k):
        h[i] = Lc[i, i] * Lc[i, i]
    L = Lc / np.diag(Lc)
    return np.linalg.solve(L, Z), np.linalg.solve(L, e), h


@njit(cache=True)
def _diffuse_filter(y, u, A, B, C, D, Q, R, a0, P_star, P_inf, r_diag):
    """Exact initial filter of one sequence: ``(loglik, d, a, P)``, the log-likelihood of
    its ``d`` diffuse steps and the mean and covariance of the next step given them."""
    n = A.shape[0]
    T = y.shape[0]
    a, P, Pi = a0.copy(), P_star.copy(), P_inf.copy()
    eye = np.eye(n)
    ll = 0.0
    for t in range(T):
        if np.sum(Pi * Pi) <= TOL:
            return ll, t, a, 0.5 * (P + P.T)
        o = _observed(y[t])
        k = o.shape[0]
        if k > 0:
            Z = np.empty((k, n))
            e = np.empty(k)
            H = np.empty((k, k))
            for c in range(k):
                Z[c] = C[o[c]]
                e[c] = y[t, o[c]] - D[o[c]] @ u[t]
                for c2 in range(k):
                    H[c, c2] = R[o[c], o[c2]]
            Z, e, h = _diagonal_obs(Z, e, H, r_diag)
            for i in range(k):
                z = Z[i].copy()
                v = e[i] - z @ a
                M, Mi = P @ z, Pi @ z
                F, Fi = max(z @ M + h[i], 0.0), max(z @ Mi, 0.0)
                if Fi > TOL:  # the observation informs the diffuse part
                    K0 = Mi / Fi
                    K1 = M / Fi - K0 * (F / Fi)
                    a = a + K0 * v
                    L0 = eye - np.outer(K0, z)
                    P = P @ L0.T - Pi @ np.outer(z, K1)
                    Pi = Pi @ L0.T
                    ll -= 0.5 * (_LOG_2PI + np.log(Fi))
                elif F > TOL:
                    K = M / F
                    a = a + K * v
                    P = P - np.outer(M, K)
                    ll -= 0.5 * (_LOG_2PI + np.log(F) + v * v / F)
        a = A @ a
        if t + 1 < T:
            a = a + B @ u[t + 1]
        P = A @ P @ A.T + Q
        Pi = A @ Pi @ A.T
    return ll, T, a, 0.5 * (P + P.T)


@njit(cache=True)
def _diffuse_posterior(y, u, d, A, B, C, D, Q, R, a0, P_star, S):
    """Mean ``(n (d + 1),)`` and covariance of the states of steps ``0..d`` given the
    observations of steps ``0..d-1``, the columns of ``S`` the flat directions of step
    0. Raises ValueError if the observations do not pin those down."""
    n = A.shape[0]
    k = S.shape[1]
    nx = n * (d + 1)
    G = np.zeros((nx, k))
    H = np.zeros((nx, nx))
    c = np.zeros(nx)
    G[:n] = S
    c[:n] = a0
    for i in range(n):
        H[i, i] = 1.0
    for t in range(1, d + 1):
        cur, prev = t * n, (t - 1) * n
        G[cur : cur + n] = A @ G[prev:cur]
        H[cur : cur + n] = A @ H[prev:cur]
        for i in range(n):
            H[cur + i, cur + i] += 1.0
        c[cur : cur + n] = A @ c[prev:cur]
        if t < u.shape[0]:
            c[cur : cur + n] += B @ u[t]
    Sxi = np.zeros((nx, nx))
    Sxi[:n, :n] = P_star
    for t in range(1, d + 1):
        Sxi[t * n : (t + 1) * n, t * n : (t + 1) * n] = Q
    n_obs = 0
    for t in range(d):
        n_obs += _observed(y[t]).shape[0]
    Hy = np.empty((n_obs, k))
    Fy = np.empty((n_obs, nx))
    r = np.empty(n_obs)
    V = np.zeros((n_obs, n_obs))
    row = 0
    for t in range(d):
        o = _observed(y[t])
        for c1 in range(o.shape[0]):
            i = o[c1]
            Hy[row + c1] = C[i] @ G[t * n : (t + 1) * n]
            Fy[row + c1] = C[i] @ H[t * n : (t + 1) * n]
            r[row + c1] = y[t, i] - C[i] @ c[t * n : (t + 1) * n] - D[i] @ u[t]
            for c2 in range(o.shape[0]):
                V[row + c1, row + c2] = R[i, o[c2]]
        row += o.shape[0]
    FS = Fy @ Sxi
    V += FS @ Fy.T
    Lv = np.linalg.cholesky(V)
    Wy = np.linalg.solve(Lv, Hy)  # V^-1/2 Hy
    info = Wy.T @ Wy
    w = np.linalg.eigvalsh(info)
    if not w[0] > 1e-12 * max(w[-1], 1e-300):
        raise ValueError(
            "the observations of a sequence do not pin down its diffuse initial state; "
            "give that sequence more observations, or a finite initial_cov for the states "
            "it cannot identify."
        )
    P_delta = np.linalg.inv(info)
    P_delta = 0.5 * (P_delta + P_delta.T)
    delta = P_delta @ (Wy.T @ np.linalg.solve(Lv, r))
    K = np.linalg.solve(Lv.T, np.linalg.solve(Lv, FS)).T  # Sxi Fy' V^-1
    xi = K @ (r - Hy @ delta)
    KH = K @ Hy
    C_xd = -KH @ P_delta
    C_xx = Sxi - K @ FS + KH @ P_delta @ KH.T
    mean = c + G @ delta + H @ xi
    HC = H @ C_xd @ G.T
    cov = G @ P_delta @ G.T + HC + HC.T + H @ C_xx @ H.T
    return mean, 0.5 * (cov + cov.T)


@njit(cache=True)
def _pinv_sym(S):
    """Pseudo-inverse of a symmetric positive semi-definite matrix (a direction of zero
    variance gives no gain, as the kernel's smoother does)."""
    w, V = np.linalg.eigh(S)
    top = max(w[-1], 0.0)
    out = np.zeros_like(S)
    for j in range(w.shape[0]):
        if w[j] > 1e-13 * top:
            out += np.outer(V[:, j], V[:, j]) / w[j]
    return out


@njit(cache=True)
def _add_step_stats(stats, y, u, m, P, C, D, R, w, outs, r, store):
    """One diffuse step's observation statistics (the missing entries of ``y`` as latent
    variables) into ``stats``, and if ``store`` its smoothed moments into row ``r``."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    n, p = m.shape[0], y.shape[0]
    o = _observed(y)
    k = o.shape[0]
    mis = np.empty(p - k, dtype=np.int64)
    j = 0
    for i in range(p):
        if np.isnan(y[i]):
            mis[j] = i
            j += 1
    nm = mis.shape[0]
    ey = y.copy()
    cov_yy = np.zeros((p, p))
    cov_yx = np.zeros((p, n))
    if nm > 0:
        Kv = np.zeros((nm, k))
        if k > 0:
            Roo = np.empty((k, k))
            Rmo = np.empty((nm, k))
            for c1 in range(k):
                for c2 in range(k):
                    Roo[c1, c2] = R[o[c1], o[c2]]
            for c1 in range(nm):
                for c2 in range(k):
                    Rmo[c1, c2] = R[mis[c1], o[c2]]
            Kv = np.linalg.solve(Roo, Rmo.T).T
        Gm = np.empty((nm, n))
        Rc = np.empty((nm, nm))
        for c1 in range(nm):
            i = mis[c1]
            s = D[i] @ u
            Gm[c1] = C[i]
            for c2 in range(k):
                Gm[c1] -= Kv[c1, c2] * C[o[c2]]
                s += Kv[c1, c2] * (y[o[c2]] - D[o[c2]] @ u)
            ey[i] = s + Gm[c1] @ m
            for c3 in range(nm):
                v = R[i, mis[c3]]
                for c2 in range(k):
                    v -= Kv[c1, c2] * R[o[c2], mis[c3]]
                Rc[c1, c3] = v
        GP = Gm @ P
        Cyy = GP @ Gm.T + Rc
        for c1 in range(nm):
            cov_yx[mis[c1]] = GP[c1]
            for c3 in range(nm):
                cov_yy[mis[c1], mis[c3]] = Cyy[c1, c3]
    wo = w if k > 0 else 0.0
    wv = np.concatenate((m, u))
    Eww = np.outer(wv, wv)
    Eww[:n, :n] += P
    W += wo * Eww
    yw = np.outer(ey, wv)
    yw[:, :n] += cov_yx
    YW += wo * yw
    YY += wo * (np.outer(ey, ey) + cov_yy)
    counts[1] += wo
    if store:
        out_mean, out_cov, out_ymean, out_yvar = outs
        out_mean[r] = m
        out_cov[r] = P
        out_ymean[r] = ey
        for i in range(p):
            out_yvar[r, i] = cov_yy[i, i]


@njit(cache=True)
def diffuse_smoother(Y, U, offsets, A, B, C, D, Q, R, m0, P0, diffuse, weights, mode):
    """:func:`~latentem.kernels.kalman.kalman_smoother` with the ``diffuse`` states
    (boolean mask) of every sequence's first step flat, ``P0`` holding ``P_*`` (zero on
    them): the same outputs, sequence by sequence."""
    n, p, m = A.shape[0], C.shape[0], U.shape[1]
    nz = n + m
    r_diag = True
    for i in range(p):
        for j in range(p):
            if i != j and R[i, j] != 0.0:
                r_diag = False
    k = 0
    for i in range(n):
        k += diffuse[i]
    S = np.zeros((n, k))
    P_inf = np.zeros((n, n))
    j = 0
    for i in range(n):
        if diffuse[i]:
            S[i, j] = 1.0
            P_inf[i, i] = 1.0
            j += 1
    stats = (
        np.zeros((nz, nz)), np.zeros((n, nz)), np.zeros((n, n)), np.zeros((nz, nz)),
        np.zeros((p, nz)), np.zeros((p, p)), np.zeros(n), np.zeros((n, n)), np.zeros(N_COUNTS),
    )  # fmt: skip
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    store = mode == 2
    N = Y.shape[0] if store else 0
    outs = (np.zeros((N, n)), np.zeros((N, n, n)), np.zeros((N, p)), np.zeros((N, p)))
    n_seq = offsets.shape[0] - 1
    seq_ll = np.empty(n_seq)
    for s in range(n_seq):
        a, b = offsets[s], offsets[s + 1]
        y, u, w = Y[a:b], U[a:b], weights[s]
        ll, d, a_d, P_d = _diffuse_filter(y, u, A, B, C, D, Q, R, m0, P0, P_inf, r_diag)
        rest = b - a - d
        m_next = np.zeros(n)
        P_next = np.zeros((n, n))
        if rest > 0:
            # the rest starts from the prediction after the diffuse steps: an ordinary
            # Kalman problem; its smoothed first step conditions the diffuse steps
            sub = np.array([0, rest], dtype=np.int64)
            st = (
                np.zeros((nz, nz)), np.zeros((n, nz)), np.zeros((n, n)), np.zeros((nz, nz)),
                np.zeros((p, nz)), np.zeros((p, p)), np.zeros(n), np.zeros((n, n)),
                np.zeros(N_COUNTS),
            )  # fmt: skip
            out_r = (np.zeros((rest, n)), np.zeros((rest, n, n)), np.zeros((rest, p)),
                     np.zeros((rest, p)))  # fmt: skip
            ll_r = np.empty(1)
            w_s = np.full(1, w)
            # the kernel's one-group loop, not kalman_smoother: no parallel code in here
            _run_group(
                np.ascontiguousarray(Y[a + d : b]), np.ascontiguousarray(U[a + d : b]), sub,
                0, 1, (A, B, C, D, Q, R, a_d, P_d), w_s, 2, r_diag, ll_r, st, out_r,
            )  # fmt: skip
            ll += ll_r[0]
            if mode > 0 and not np.isnan(ll):
                Zp += st[0]
                XZ += st[1]
                XX += st[2]
                W += st[3]
                YW += st[4]
                YY += st[5]
                counts[0] += st[8][0]
                counts[1] += st[8][1]
                m_next, P_next = out_r[0][0].copy(), out_r[1][0].copy()
                if store:  # heterogeneous tuples: no loop over them in numba
                    outs[0][a + d : b] = out_r[0]
                    outs[1][a + d : b] = out_r[1]
                    outs[2][a + d : b] = out_r[2]
                    outs[3][a + d : b] = out_r[3]
        seq_ll[s] = ll
        if mode == 0 or np.isnan(ll):
            continue
        mean, cov = _diffuse_posterior(y, u, d, A, B, C, D, Q, R, m0, P0, S)
        nd = n * d
        ms = mean.copy()
        if rest > 0:
            J = np.ascontiguousarray(cov[:nd, nd:]) @ _pinv_sym(cov[nd:, nd:].copy())
            ms[:nd] = mean[:nd] + J @ (m_next - mean[nd:])
            full = cov[:nd, :nd] - J @ np.ascontiguousarray(cov[nd:, :nd]) + J @ P_next @ J.T
            ms[nd:] = m_next
        else:
            J = np.zeros((nd, n))
            full = cov[:nd, :nd].copy()
        n_pairs = d if rest > 0 else d - 1
        for t in range(n_pairs):  # the pair (t, t + 1): z = [x_t; u_{t+1}]
            x0, x1 = ms[t * n : (t + 1) * n], ms[(t + 1) * n : (t + 2) * n]
            P00 = full[t * n : (t + 1) * n, t * n : (t + 1) * n]
            if t + 1 < d:
                P11 = full[(t + 1) * n : (t + 2) * n, (t + 1) * n : (t + 2) * n]
                P10 = full[(t + 1) * n : (t + 2) * n, t * n : (t + 1) * n]
            else:  # Cov(x_d, x_{d-1} | all) = P_next J_{d-1}'
                P11 = P_next
                P10 = P_next @ J[t * n : (t + 1) * n].T
            z = np.concatenate((x0, U[a + t + 1]))
            Ezz = np.outer(z, z)
            Ezz[:n, :n] += P00
            Zp += w * Ezz
            xz = np.outer(x1, z)
            xz[:, :n] += P10
            XZ += w * xz
            XX += w * (P11 + np.outer(x1, x1))
            counts[0] += w
        s1 += w * ms[:n]
        S1 += w * (full[:n, :n] + np.outer(ms[:n], ms[:n]))
        counts[2] += w
        for t in range(d):
            P_t = full[t * n : (t + 1) * n, t * n : (t + 1) * n].copy()
            _add_step_stats(
                stats, y[t], u[t], ms[t * n : (t + 1) * n].copy(), P_t, C, D, R, w, outs,
                a + t, store,
            )  # fmt: skip
    return seq_ll, stats, outs
