"""numba kernels for the exact diffuse start of a state-space model (Durbin and Koopman,
2012, ch. 5), used by :class:`latentem.LinearGaussianSSM` with ``initial_cov="diffuse"``.

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

The linear algebra is written out in loops over small C-contiguous float64 arrays,
with the Cholesky factors and solves of :mod:`latentem.kernels.kalman_linalg`: numba's
``np.linalg`` and ``@`` compile a LAPACK or BLAS wrapper per call shape and layout,
which made this kernel take minutes to compile on first use.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit
from latentem.kernels.kalman import N_COUNTS, _is_diagonal, _run_group
from latentem.kernels.kalman_linalg import (
    _cholesky,
    _cholesky_column,
    _cholesky_semi,
    _solve_row,
    _solve_semi,
)

__all__ = ["diffuse_smoother", "TOL"]

_LOG_2PI = np.log(2.0 * np.pi)
#: statsmodels' tolerance: a diffuse forecast variance, or the sum of squares of a
#: predicted diffuse covariance, at most this is zero
TOL = 1e-10
#: a pivot of the information on the flat states below this fraction of its diagonal
#: entry: the observations do not pin those states down
_RANK_TOL = 1e-12


# ----------------------------------------------------------------------------- small helpers
@njit(cache=True)
def _mm(X, Y):
    """``X @ Y``."""
    out = np.zeros((X.shape[0], Y.shape[1]))
    for i in range(X.shape[0]):
        for q in range(X.shape[1]):
            x = X[i, q]
            for j in range(Y.shape[1]):
                out[i, j] += x * Y[q, j]
    return out


@njit(cache=True)
def _mmt(X, Y):
    """``X @ Y.T``."""
    out = np.empty((X.shape[0], Y.shape[0]))
    for i in range(X.shape[0]):
        for j in range(Y.shape[0]):
            s = 0.0
            for q in range(X.shape[1]):
                s += X[i, q] * Y[j, q]
            out[i, j] = s
    return out


@njit(cache=True)
def _mv(X, v):
    """``X @ v``."""
    out = np.empty(X.shape[0])
    for i in range(X.shape[0]):
        s = 0.0
        for q in range(X.shape[1]):
            s += X[i, q] * v[q]
        out[i] = s
    return out


@njit(cache=True)
def _add(X, Y, a):
    """``X += a Y`` for matrices, in place (a loop: numba's array expressions compile
    broadcasting and its error messages, seconds each)."""
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            X[i, j] += a * Y[i, j]
    return X


@njit(cache=True)
def _addv(x, y, a):
    """``x += a y`` for vectors, in place."""
    for i in range(x.shape[0]):
        x[i] += a * y[i]
    return x


@njit(cache=True)
def _block(X, r0, r1, c0, c1):
    """``X[r0:r1, c0:c1]``, copied (contiguous: one compiled type for every helper)."""
    out = np.empty((r1 - r0, c1 - c0))
    for i in range(r1 - r0):
        for j in range(c1 - c0):
            out[i, j] = X[r0 + i, c0 + j]
    return out


@njit(cache=True)
def _sym(X):
    """``(X + X') / 2``."""
    out = np.empty_like(X)
    for i in range(X.shape[0]):
        for j in range(X.shape[0]):
            out[i, j] = 0.5 * (X[i, j] + X[j, i])
    return out


@njit(cache=True)
def _sum_squares(X):
    s = 0.0
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            s += X[i, j] * X[i, j]
    return s


@njit(cache=True)
def _quad(X, Y):
    """``X @ Y @ X.T``."""
    return _mmt(_mm(X, Y), X)


@njit(cache=True)
def _inv_rows(L, k, M):
    """``M (L L')^-1`` for ``M`` with ``k`` columns (a copy, solved row by row)."""
    out = M.copy()
    for i in range(out.shape[0]):
        _solve_row(L, k, out, i)
    return out


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
def _n_observed(y, d):
    """Observed entries in the first ``d`` rows. (A function: a count kept in place from a
    literal 0 is typed ``Literal[int](0)`` first, and the kernels it is passed to would
    compile twice.)"""
    k = 0
    for t in range(d):
        for i in range(y.shape[1]):
            k += not np.isnan(y[t, i])
    return k


# ----------------------------------------------------------------------------- filter
@njit(cache=True)
def _diagonal_obs(Z, e, H, r_diag):
    """``h``, with the noise covariance ``H`` made diagonal by its unit-triangular LDL
    factor ``L``: ``L^-1`` applied to ``Z`` and ``e`` in place, ``det L = 1``."""
    k = H.shape[0]
    h = np.empty(k)
    if r_diag:
        for i in range(k):
            h[i] = H[i, i]
        return h
    Lc = np.zeros((k, k))
    _cholesky(H, k, Lc)
    # L = Lc diag(Lc)^-1, so L^-1 x = diag(Lc) (Lc^-1 x): forward substitution, scaled
    for i in range(k):
        for q in range(i):
            for j in range(Z.shape[1]):
                Z[i, j] -= Lc[i, q] * Z[q, j]
            e[i] -= Lc[i, q] * e[q]
        for j in range(Z.shape[1]):
            Z[i, j] /= Lc[i, i]
        e[i] /= Lc[i, i]
    for i in range(k):
        for j in range(Z.shape[1]):
            Z[i, j] *= Lc[i, i]
        e[i] *= Lc[i, i]
        h[i] = Lc[i, i] * Lc[i, i]
    return h


@njit(cache=True)
def _univariate_update(z, v, h, a, P, Pi):
    """One observation's exact initial update of ``a``, ``P``, ``Pi`` in place; its
    log-likelihood term (0 if its forecast variance is zero)."""
    n = a.shape[0]
    M = _mv(P, z)
    Mi = _mv(Pi, z)
    F, Fi = 0.0, 0.0
    for i in range(n):
        F += z[i] * M[i]
        Fi += z[i] * Mi[i]
    F, Fi = max(F + h, 0.0), max(Fi, 0.0)
    if Fi > TOL:  # the observation informs the diffuse part
        # P <- P L0' - Pi z K1' = P - M K0' - Mi K1', Pi <- Pi L0' = Pi - Mi K0', with
        # L0 = I - K0 z' (P z = M, Pi z = Mi)
        for i in range(n):
            a[i] += (Mi[i] / Fi) * v
        for i in range(n):
            for j in range(n):
                K0 = Mi[j] / Fi
                K1 = M[j] / Fi - K0 * (F / Fi)
                P[i, j] -= M[i] * K0 + Mi[i] * K1
                Pi[i, j] -= Mi[i] * K0
        return -0.5 * (_LOG_2PI + np.log(Fi))
    if F > TOL:
        for i in range(n):
            a[i] += M[i] / F * v
        for i in range(n):
            for j in range(n):
                P[i, j] -= M[i] * (M[j] / F)
        return -0.5 * (_LOG_2PI + np.log(F) + v * v / F)
    return 0.0


@njit(cache=True)
def _diffuse_filter(y, u, A, B, C, D, Q, R, a0, P_star, P_inf, r_diag):
    """Exact initial filter of one sequence: ``(loglik, d, a, P)``, the log-likelihood of
    its ``d`` diffuse steps and the mean and covariance of the next step given them."""
    n = A.shape[0]
    m = u.shape[1]
    T = y.shape[0]
    a, P, Pi = a0.copy(), P_star.copy(), P_inf.copy()
    ll = 0.0
    for t in range(T):
        if _sum_squares(Pi) <= TOL:
            return ll, t, a, _sym(P)
        o = _observed(y[t])
        k = o.shape[0]
        if k > 0:
            Z = np.empty((k, n))
            e = np.empty(k)
            H = np.empty((k, k))
            for c in range(k):
                oc = o[c]
                s = y[t, oc]
                for j in range(m):
                    s -= D[oc, j] * u[t, j]
                e[c] = s
                for j in range(n):
                    Z[c, j] = C[oc, j]
                for c2 in range(k):
                    H[c, c2] = R[oc, o[c2]]
            h = _diagonal_obs(Z, e, H, r_diag)
            for i in range(k):
                z = Z[i].copy()
                v = e[i]
                for j in range(n):
                    v -= z[j] * a[j]
                ll += _univariate_update(z, v, h[i], a, P, Pi)
        a = _mv(A, a)
        if t + 1 < T:
            for i in range(n):
                for j in range(m):
                    a[i] += B[i, j] * u[t + 1, j]
        P = _add(_quad(A, P), Q, 1.0)
        Pi = _quad(A, Pi)
    return ll, T, a, _sym(P)


# ----------------------------------------------------------------------------- posterior
@njit(cache=True)
def _stacked_states(u, d, A, B, a0, P_star, Q, S):
    """The states of steps ``0..d`` stacked, ``x = c + G delta + H xi``, and ``Cov(xi)``."""
    n = A.shape[0]
    m = u.shape[1]
    k = S.shape[1]
    nx = n * (d + 1)
    G = np.zeros((nx, k))
    H = np.zeros((nx, nx))
    c = np.zeros(nx)
    Sxi = np.zeros((nx, nx))
    for i in range(n):
        c[i] = a0[i]
        H[i, i] = 1.0
        for j in range(k):
            G[i, j] = S[i, j]
        for j in range(n):
            Sxi[i, j] = P_star[i, j]
    for t in range(1, d + 1):
        cur, prev = t * n, (t - 1) * n
        for i in range(n):
            for q in range(n):
                x = A[i, q]
                for j in range(k):
                    G[cur + i, j] += x * G[prev + q, j]
                for j in range(nx):
                    H[cur + i, j] += x * H[prev + q, j]
                c[cur + i] += x * c[prev + q]
            if t < u.shape[0]:
                for j in range(m):
                    c[cur + i] += B[i, j] * u[t, j]
            H[cur + i, cur + i] += 1.0
            for j in range(n):
                Sxi[cur + i, cur + j] = Q[i, j]
    return G, H, c, Sxi


@njit(cache=True)
def _diffuse_posterior(y, u, d, A, B, C, D, Q, R, a0, P_star, S):
    """Mean ``(n (d + 1),)`` and covariance of the states of steps ``0..d`` given the
    observations of steps ``0..d-1``, the columns of ``S`` the flat directions of step
    0. Raises ValueError if the observations do not pin those down."""
    n = A.shape[0]
    m = u.shape[1]
    k = S.shape[1]
    G, H, c, Sxi = _stacked_states(u, d, A, B, a0, P_star, Q, S)
    nx = n * (d + 1)
    n_obs = _n_observed(y, d)
    Hy = np.zeros((n_obs, k))
    Fy = np.zeros((n_obs, nx))
    r = np.empty(n_obs)
    V = np.zeros((n_obs, n_obs))
    row = 0
    for t in range(d):
        o = _observed(y[t])
        for c1 in range(o.shape[0]):
            i = o[c1]
            s = y[t, i]
            for j in range(m):
                s -= D[i, j] * u[t, j]
            for q in range(n):
                x = C[i, q]
                s -= x * c[t * n + q]
                for j in range(k):
                    Hy[row + c1, j] += x * G[t * n + q, j]
                for j in range(nx):
                    Fy[row + c1, j] += x * H[t * n + q, j]
            r[row + c1] = s
            for c2 in range(o.shape[0]):
                V[row + c1, row + c2] = R[i, o[c2]]
        row += o.shape[0]
    FS = _mm(Fy, Sxi)
    _add(V, _mmt(FS, Fy), 1.0)
    Lv = np.zeros((n_obs, n_obs))
    if not _cholesky(V, n_obs, Lv):
        raise ValueError(
            "the covariance of a sequence's first observations is not positive definite; "
            "check observation_cov (R) and transition_cov (Q)."
        )
    VHt = _inv_rows(Lv, n_obs, Hy.T.copy())  # Hy' V^-1
    info = _sym(_mm(VHt, Hy))
    Li = np.zeros((k, k))
    for j in range(k):  # Cholesky of the information, its pivots checked
        p = info[j, j]
        for q in range(j):
            p -= Li[j, q] * Li[j, q]
        if not p > _RANK_TOL * info[j, j]:
            raise ValueError(
                "the observations of a sequence do not pin down its diffuse initial state; "
                "give that sequence more observations, or a finite initial_cov for the "
                "states it cannot identify."
            )
        _cholesky_column(info, k, Li, j, p)
    P_delta = _inv_rows(Li, k, np.eye(k))
    P_delta = _sym(P_delta)
    delta = _mv(P_delta, _mv(VHt, r))
    K = _inv_rows(Lv, n_obs, FS.T.copy())  # Sxi Fy' V^-1
    xi = _mv(K, _addv(r.copy(), _mv(Hy, delta), -1.0))  # K (r - Hy delta)
    KH = _mm(K, Hy)
    C_xd = _mm(KH, P_delta)  # -Cov(xi, delta)
    C_xx = _add(_add(_quad(KH, P_delta), _mm(K, FS), -1.0), Sxi, 1.0)
    mean = _addv(_addv(_mv(G, delta), _mv(H, xi), 1.0), c, 1.0)
    HC = _mmt(_mm(H, C_xd), G)
    cov = _add(_quad(G, P_delta), _quad(H, C_xx), 1.0)
    for i in range(nx):
        for j in range(nx):
            cov[i, j] -= HC[i, j] + HC[j, i]
    return mean, _sym(cov)


# ----------------------------------------------------------------------------- statistics
@njit(cache=True)
def _pair_stats(stats, x0, P00, u1, x1, P11, P10, w):
    """The transition statistics of the pair ``(x0, x1)``, ``z = [x0; u1]``, into
    ``stats``."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    n, m = x0.shape[0], u1.shape[0]
    for i in range(n):
        for j in range(n):
            Zp[i, j] += w * (P00[i, j] + x0[i] * x0[j])
            XZ[i, j] += w * (P10[i, j] + x1[i] * x0[j])
            XX[i, j] += w * (P11[i, j] + x1[i] * x1[j])
        for j in range(m):
            Zp[i, n + j] += w * x0[i] * u1[j]
            Zp[n + j, i] += w * x0[i] * u1[j]
            XZ[i, n + j] += w * x1[i] * u1[j]
    for i in range(m):
        for j in range(m):
            Zp[n + i, n + j] += w * u1[i] * u1[j]
    counts[0] += w


@njit(cache=True)
def _add_step_stats(stats, y, u, x, P, C, D, R, w, outs, r, store):
    """One diffuse step's observation statistics (the missing entries of ``y`` as latent
    variables) into ``stats``, and if ``store`` its smoothed moments into row ``r``."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    n, p, m = x.shape[0], y.shape[0], u.shape[0]
    o = _observed(y)
    k = o.shape[0]
    mis = np.empty(p - k, dtype=np.int64)
    j = 0
    for i in range(p):
        if np.isnan(y[i]):
            mis[j] = i
            j += 1
    nm = mis.shape[0]
    du = np.empty(p)
    for i in range(p):
        s = 0.0
        for j in range(m):
            s += D[i, j] * u[j]
        du[i] = s
    ey = y.copy()
    cov_yy = np.zeros((p, p))
    cov_yx = np.zeros((p, n))
    if nm > 0:
        Kv = np.zeros((nm, k))  # R_mo R_oo^-1
        if k > 0:
            Roo = np.empty((k, k))
            for c1 in range(k):
                for c2 in range(k):
                    Roo[c1, c2] = R[o[c1], o[c2]]
                for c2 in range(nm):
                    Kv[c2, c1] = R[mis[c2], o[c1]]
            Lr = np.zeros((k, k))
            _cholesky(Roo, k, Lr)
            Kv = _inv_rows(Lr, k, Kv)
        Gm = np.empty((nm, n))
        Rc = np.empty((nm, nm))
        for c1 in range(nm):
            i = mis[c1]
            s = du[i]
            for q in range(n):
                Gm[c1, q] = C[i, q]
            for c2 in range(k):
                s += Kv[c1, c2] * (y[o[c2]] - du[o[c2]])
                for q in range(n):
                    Gm[c1, q] -= Kv[c1, c2] * C[o[c2], q]
            for q in range(n):
                s += Gm[c1, q] * x[q]
            ey[i] = s
            for c3 in range(nm):
                v = R[i, mis[c3]]
                for c2 in range(k):
                    v -= Kv[c1, c2] * R[o[c2], mis[c3]]
                Rc[c1, c3] = v
        GP = _mm(Gm, P)
        Cyy = _add(_mmt(GP, Gm), Rc, 1.0)
        for c1 in range(nm):
            for q in range(n):
                cov_yx[mis[c1], q] = GP[c1, q]
            for c3 in range(nm):
                cov_yy[mis[c1], mis[c3]] = Cyy[c1, c3]
    wo = w if k > 0 else 0.0
    for i in range(n):
        for j in range(n):
            W[i, j] += wo * (P[i, j] + x[i] * x[j])
        for j in range(m):
            W[i, n + j] += wo * x[i] * u[j]
            W[n + j, i] += wo * x[i] * u[j]
    for i in range(m):
        for j in range(m):
            W[n + i, n + j] += wo * u[i] * u[j]
    for i in range(p):
        for j in range(n):
            YW[i, j] += wo * (ey[i] * x[j] + cov_yx[i, j])
        for j in range(m):
            YW[i, n + j] += wo * ey[i] * u[j]
        for j in range(p):
            YY[i, j] += wo * (ey[i] * ey[j] + cov_yy[i, j])
    counts[1] += wo
    if store:
        out_mean, out_cov, out_ymean, out_yvar = outs
        for i in range(n):
            out_mean[r, i] = x[i]
            for j in range(n):
                out_cov[r, i, j] = P[i, j]
        for i in range(p):
            out_ymean[r, i] = ey[i]
            out_yvar[r, i] = cov_yy[i, i]


@njit(cache=True)
def _new_stats(n, p, nz):
    return (
        np.zeros((nz, nz)), np.zeros((n, nz)), np.zeros((n, n)), np.zeros((nz, nz)),
        np.zeros((p, nz)), np.zeros((p, p)), np.zeros(n), np.zeros((n, n)), np.zeros(N_COUNTS),
    )  # fmt: skip


@njit(cache=True)
def _new_outs(N, n, p):
    return (np.zeros((N, n)), np.zeros((N, n, n)), np.zeros((N, p)), np.zeros((N, p)))


@njit(cache=True)
def _add_rest(stats, st):
    """The statistics of a sequence's ordinary part (all but the initial state's sums,
    which belong to its true first step) into ``stats``."""
    Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
    _add(Zp, st[0], 1.0)
    _add(XZ, st[1], 1.0)
    _add(XX, st[2], 1.0)
    _add(W, st[3], 1.0)
    _add(YW, st[4], 1.0)
    _add(YY, st[5], 1.0)
    counts[0] += st[8][0]
    counts[1] += st[8][1]


@njit(cache=True)
def _copy_rows(outs, part, start):
    """The smoothed outputs of a sequence's ordinary part into ``outs`` from row
    ``start`` (loops: heterogeneous tuples, and no array expressions)."""
    for t in range(part[0].shape[0]):
        r = start + t
        for i in range(part[0].shape[1]):
            outs[0][r, i] = part[0][t, i]
            for j in range(part[0].shape[1]):
                outs[1][r, i, j] = part[1][t, i, j]
        for i in range(part[2].shape[1]):
            outs[2][r, i] = part[2][t, i]
            outs[3][r, i] = part[3][t, i]


@njit(cache=True)
def _smooth_diffuse_steps(y, U, a, d, rest, params, S, m_next, P_next, w, stats, outs, store):
    """The smoothed moments of a sequence's ``d`` diffuse steps (rows ``a..a+d-1`` of
    ``U``) given the smoothed first step after them, and their EM statistics."""
    A, B, C, D, Q, R, m0, P0 = params
    n = A.shape[0]
    u = U[a : a + y.shape[0]]
    mean, cov = _diffuse_posterior(y, u, d, A, B, C, D, Q, R, m0, P0, S)
    nd = n * d
    o = 0 * nd  # a zero typed int64: a literal 0 would compile _block once more
    ms = mean.copy()
    J = np.zeros((nd, n))
    if rest > 0:
        # J = Cov(early, x_d) Cov(x_d)^-: a direction of zero variance gives no gain
        P_dd = _block(cov, nd, nd + n, nd, nd + n)
        scale = 0.0
        for i in range(n):
            scale = max(scale, abs(P_dd[i, i]))
        Lp = np.zeros((n, n))
        _cholesky_semi(P_dd, n, Lp, 1e-13 * scale)
        for i in range(nd):
            row = cov[i, nd:].copy()
            _solve_semi(Lp, n, row)
            for q in range(n):
                J[i, q] = row[q]
        for i in range(nd):
            for q in range(n):
                ms[i] += J[i, q] * (m_next[q] - mean[nd + q])
        full = _add(_block(cov, o, nd, o, nd), _mm(J, _block(cov, nd, nd + n, o, nd)), -1.0)
        _add(full, _quad(J, P_next), 1.0)
        for q in range(n):
            ms[nd + q] = m_next[q]
    else:
        full = _block(cov, o, nd, o, nd)
    n_pairs = d if rest > 0 else d - 1
    for t in range(n_pairs):  # the pair (t, t + 1): z = [x_t; u_{t+1}]
        lo, hi = t * n, (t + 1) * n
        P00 = _block(full, lo, hi, lo, hi)
        if t + 1 < d:
            P11 = _block(full, hi, hi + n, hi, hi + n)
            P10 = _block(full, hi, hi + n, lo, hi)
        else:  # Cov(x_d, x_{d-1} | all) = P_next J_{d-1}'
            P11 = P_next
            P10 = _mmt(P_next, _block(J, lo, hi, o, n))
        _pair_stats(stats, ms[lo:hi], P00, U[a + t + 1], ms[hi : hi + n], P11, P10, w)
    s1, S1, counts = stats[6], stats[7], stats[8]
    for i in range(n):
        s1[i] += w * ms[i]
        for j in range(n):
            S1[i, j] += w * (full[i, j] + ms[i] * ms[j])
    counts[2] += w
    for t in range(d):
        lo, hi = t * n, (t + 1) * n
        _add_step_stats(
            stats, y[t], U[a + t], ms[lo:hi], _block(full, lo, hi, lo, hi), C, D, R, w, outs,
            a + t, store,
        )  # fmt: skip


@njit(cache=True)
def diffuse_smoother(Y, U, offsets, A, B, C, D, Q, R, m0, P0, diffuse, weights, mode):
    """:func:`~latentem.kernels.kalman.kalman_smoother` with the ``diffuse`` states
    (boolean mask) of every sequence's first step flat, ``P0`` holding ``P_*`` (zero on
    them): the same outputs, sequence by sequence."""
    n, p, m = A.shape[0], C.shape[0], U.shape[1]
    nz = n + m
    r_diag = _is_diagonal(R)
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
    params = (A, B, C, D, Q, R, m0, P0)
    stats = _new_stats(n, p, nz)
    store = mode == 2
    outs = _new_outs(Y.shape[0] if store else 0, n, p)
    n_seq = offsets.shape[0] - 1
    seq_ll = np.empty(n_seq)
    for s in range(n_seq):
        a, b = offsets[s], offsets[s + 1]
        y, w = Y[a:b], weights[s]
        ll, d, a_d, P_d = _diffuse_filter(y, U[a:b], A, B, C, D, Q, R, m0, P0, P_inf, r_diag)
        rest = b - a - d
        m_next = np.zeros(n)
        P_next = np.zeros((n, n))
        if rest > 0:
            # the rest starts from the prediction after the diffuse steps: an ordinary
            # Kalman problem; its smoothed first step conditions the diffuse steps
            sub = np.array([0, rest], dtype=np.int64)
            st = _new_stats(n, p, nz)
            out_r = _new_outs(rest, n, p)
            ll_r = np.empty(1)
            w_s = np.full(1, w)
            # the kernel's one-group loop, not kalman_smoother: no parallel code in here;
            # no literal numbers in the call either (each would compile another
            # specialisation of the whole filter and smoother): first, last, mode
            _run_group(
                Y[a + d : b], U[a + d : b], sub, sub[0], sub[0] + 1,
                (A, B, C, D, Q, R, a_d, P_d), w_s, max(mode, 2), r_diag, ll_r, st, out_r,
            )  # fmt: skip
            ll += ll_r[0]
            if mode > 0 and not np.isnan(ll):
                _add_rest(stats, st)
                m_next, P_next = out_r[0][0].copy(), out_r[1][0].copy()
                if store:
                    _copy_rows(outs, out_r, a + d)
        seq_ll[s] = ll
        if mode == 0 or np.isnan(ll):
            continue
        _smooth_diffuse_steps(y, U, a, d, rest, params, S, m_next, P_next, w, stats, outs, store)
    return seq_ll, stats, outs
