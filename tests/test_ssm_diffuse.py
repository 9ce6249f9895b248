"""Exact diffuse initial state of LinearGaussianSSM: against statsmodels' exact diffuse
filter and smoother (Nile local level, local linear trend, gaps in the first steps),
EM to statsmodels' maximum with a monotone history, and the limit of the ordinary
kernel as the initial variance grows (the reference for partly diffuse starts, a full
R, inputs, gaps and many sequences)."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.datasets import nile

from latentem import ConvergenceWarning, LikelihoodDecreaseWarning, LinearGaussianSSM, fit_em, load
from latentem.kernels.hmm import sequence_groups
from latentem.kernels.kalman import N_COUNTS, kalman_smoother
from latentem.kernels.kalman_diffuse import diffuse_smoother

# ----------------------------------------------------------------------------- NumPy reference
# The diffuse steps in plain NumPy, sequence by sequence (the rest of each sequence
# through the ordinary kernel, which has its own reference in test_ssm.py).
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


def reference_filter(y, u, A, B, C, D, Q, R, a0, P_star, P_inf):
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


def reference_posterior(y, u, d, A, B, C, D, Q, R, a0, P_star, diffuse):
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


def reference_diffuse(Y, U, offsets, params, diffuse, weights, mode):
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
        ll, d, a_d, P_d = reference_filter(y, u, A, B, C, D, Q, R, m0, P0, P_inf)
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
        mean, cov = reference_posterior(y, u, d, A, B, C, D, Q, R, m0, P0, diffuse)
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


LEVEL = dict(transition_matrix=[[1.0]], observation_matrix=[[1.0]])
TREND = dict(transition_matrix=[[1.0, 1.0], [0.0, 1.0]], observation_matrix=[[1.0, 0.0]])
SPECS = {"llevel": (1, LEVEL), "lltrend": (2, TREND)}


def nile_y():
    return nile.load().data["volume"].to_numpy(dtype=np.float64, copy=True)


def statsmodels_diffuse(y, spec):
    """statsmodels' model with the exact diffuse start, every step in its likelihood."""
    mod = sm.tsa.UnobservedComponents(y, spec)
    mod.ssm.initialize_diffuse()
    mod.ssm.loglikelihood_burn = 0
    return mod


def ours(spec, params=None, **kwargs):
    n, structure = SPECS[spec]
    given = {}
    if params is not None:  # statsmodels' order: irregular, then the state variances
        given = dict(observation_cov=params[0], transition_cov=np.asarray(params[1:]))
    return LinearGaussianSSM(
        n,
        **structure,
        **given,
        transition_cov_type="diag",
        initial_cov="diffuse",
        fixed=["transition_matrix", "observation_matrix"],
        **kwargs,
    )


def fit_sm(mod):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ModelWarning about burn-in and diffuse
        return mod.fit(disp=False)


def assert_equals_statsmodels(model, y, res):
    """The log-likelihood to 1e-8, the smoothed states and covariances to 1e-10 and 1e-8
    relative; returns our smoothed output."""
    assert abs(model.score(y) - res.llf) < 1e-8
    out = model.smooth(y)
    np.testing.assert_allclose(out.state_means, res.smoothed_state.T, rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(
        out.state_covs, res.smoothed_state_cov.transpose(2, 0, 1), rtol=1e-8, atol=1e-8
    )
    return out


@pytest.mark.parametrize("spec", ["llevel", "lltrend"])
def test_filter_and_smoother_equal_statsmodels_exact_diffuse(spec):
    y = nile_y()
    mod = statsmodels_diffuse(y, spec)
    fitted = fit_sm(mod)
    res = mod.smooth(fitted.params)
    assert res.nobs_diffuse == SPECS[spec][0]
    model = ours(spec, fitted.params)
    model.init_params(model.prepare(y), np.random.default_rng(0))
    assert_equals_statsmodels(model, y, res)


@pytest.mark.parametrize("spec", ["llevel", "lltrend"])
def test_em_from_a_default_start_reaches_statsmodels_maximum(spec):
    y = nile_y()
    res = fit_sm(statsmodels_diffuse(y, spec))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        model = ours(spec, n_iter=5000, tol=1e-10, accelerate="squarem", random_state=0).fit(y)
    assert model.converged_
    assert np.all(np.diff(model.history_) >= 0)
    assert abs(model.history_[-1] - res.llf) < 1e-3
    assert model.score(y) >= res.llf - 1e-3
    # the diffuse start is not estimated
    assert np.array_equal(model.initial_mean_, np.zeros(SPECS[spec][0]))
    assert np.array_equal(model.initial_cov_, np.zeros((SPECS[spec][0],) * 2))


def test_gaps_in_the_diffuse_steps_equal_statsmodels():
    y = nile_y()
    y[[0, 2, 3, 50]] = np.nan  # the trend's diffuse period runs past the gaps
    mod = statsmodels_diffuse(y, "lltrend")
    params = [15000.0, 1500.0, 10.0]
    res = mod.smooth(params)
    assert res.nobs_diffuse > 2
    model = ours("lltrend", params)
    model.init_params(model.prepare(y), np.random.default_rng(0))
    out = assert_equals_statsmodels(model, y, res)
    gaps = np.isnan(y)
    np.testing.assert_allclose(out.obs_means[gaps, 0], res.smoothed_state[0, gaps], rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        fit = ours("lltrend", n_iter=3000, tol=1e-10, accelerate="squarem").fit(y)
    assert np.all(np.diff(fit.history_) >= 0)
    assert abs(fit.history_[-1] - fit_sm(mod).llf) < 1e-3


# ----------------------------------------------------------------------------- reference
def partly_diffuse_problem(seed=0):
    """Two sequences, 3 states (the first two diffuse), 3 observations with a full R,
    an input, and gaps in the first steps (a whole row, and single entries)."""
    rng = np.random.default_rng(seed)
    n, p, m = 3, 3, 1
    A = np.array([[0.9, 0.2, 0.0], [0.0, 0.7, 0.1], [0.1, 0.0, 0.5]])
    C = rng.normal(size=(p, n))
    X = rng.normal(size=(p, p))
    params = dict(
        A=A,
        B=rng.normal(size=(n, m)),
        C=C,
        D=rng.normal(size=(p, m)),
        Q=np.diag([0.5, 0.3, 0.4]) + 0.05,
        R=X @ X.T / p + 0.5 * np.eye(p),
        m0=np.array([3.0, -2.0, 0.5]),  # the diffuse states' means do not matter
        P0=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.5]]),
    )
    lengths = [12, 9]
    Y = rng.normal(size=(sum(lengths), p)) * 2
    Y[0, 1] = np.nan
    Y[1] = np.nan
    Y[2, [0, 2]] = np.nan
    Y[12, 0] = np.nan
    U = rng.normal(size=(sum(lengths), m))
    offsets = np.array([0, 12, 21], dtype=np.int64)
    return Y, U, offsets, params, np.array([True, True, False]), np.array([1.0, 0.7])


def test_diffuse_is_the_limit_of_a_growing_initial_variance():
    """The diffuse log-likelihood, smoothed moments and EM statistics are the limit of the
    ordinary kernel's with the diffuse states' variance kappa: log-likelihood plus
    k/2 log kappa (k diffuse states) and the moments converge as 1/kappa."""
    Y, U, offsets, P, diffuse, w = partly_diffuse_problem()
    args = tuple(P[k] for k in ("A", "B", "C", "D", "Q", "R", "m0", "P0"))
    ll, stats, outs = diffuse_smoother(Y, U, offsets, *args, diffuse, w, 2)
    ll1, stats1, _ = diffuse_smoother(Y, U, offsets, *args, diffuse, w, 1)
    ll0 = diffuse_smoother(Y, U, offsets, *args, diffuse, w, 0)[0]
    np.testing.assert_allclose(ll0, ll, rtol=1e-13)
    np.testing.assert_allclose(ll1, ll, rtol=1e-13)
    groups = sequence_groups(offsets)
    k = diffuse.sum()

    def gaps(kappa):
        """The largest differences from the limit (relative to 1 + |value|): in the
        log-likelihood, the EM statistics and the smoothed moments."""
        P0 = P["P0"] + kappa * np.diag(diffuse.astype(float))
        ll_k, stats_k, outs_k = kalman_smoother(Y, U, offsets, groups, *args[:7], P0, w, 2)
        pairs = [(a, b) for i, (a, b) in enumerate(zip(stats, stats_k)) if i not in (6, 7)]
        # (6, 7: the sums of the first state, which a diffuse start never uses)
        return [
            np.max(np.abs(ll_k + 0.5 * k * np.log(kappa) - ll)),
            max(np.max(np.abs(a - b) / (1 + np.abs(b))) for a, b in pairs),
            max(np.max(np.abs(a - b) / (1 + np.abs(b))) for a, b in zip(outs, outs_k)),
        ]

    near, nearer = np.array(gaps(1e6)), np.array(gaps(1e8))
    assert np.all(nearer < 1e-5)
    assert np.all(nearer < 0.02 * near)  # they shrink as 1 / kappa: this is the limit
    for got, want in zip(stats1, stats):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_numpy_reference(seed):
    Y, U, offsets, P, diffuse, w = partly_diffuse_problem(seed)
    if seed == 2:  # one observation, a diagonal R, the whole start diffuse
        # (contiguous, as the model passes it: a strided Y would compile the kernel again)
        Y = np.ascontiguousarray(Y[:, :1])
        P["C"], P["D"], P["R"] = P["C"][:1], P["D"][:1], P["R"][:1, :1]
        diffuse = np.ones(3, dtype=bool)
        P["P0"] = np.zeros((3, 3))
    args = tuple(P[k] for k in ("A", "B", "C", "D", "Q", "R", "m0", "P0"))
    for mode in (0, 1, 2):
        ll, stats, outs = diffuse_smoother(Y, U, offsets, *args, diffuse, w, mode)
        ref_ll, ref_stats, ref_outs = reference_diffuse(Y, U, offsets, args, diffuse, w, mode)
        # the same arithmetic in another order (loops against NumPy's BLAS): 1e-9 apart
        # where three flat states seen one observation at a time make the diffuse filter
        # and the least squares ill-conditioned (the log-likelihood 1e-10 apart there)
        np.testing.assert_allclose(ll, ref_ll, rtol=1e-12 if seed < 2 else 1e-9)
        for got, want in zip(stats, ref_stats):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)
        for got, want in zip(outs, ref_outs):
            np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-8)


def test_sequences_add_up_and_em_is_monotone_with_a_partly_diffuse_start():
    Y, U, offsets, P, diffuse, _ = partly_diffuse_problem(1)
    P0 = P["P0"].copy()
    P0[0, 0] = P0[1, 1] = np.inf
    given = P0.copy()
    model = LinearGaussianSSM(
        3,
        initial_cov=P0,
        transition_matrix=P["A"],
        observation_cov_type="full",
        n_iter=200,
        tol=0,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: all 200 iterations
        model.fit(Y, lengths=np.diff(offsets), inputs=U)
    assert np.array_equal(P0, given, equal_nan=True)  # the user's matrix is untouched
    assert np.all(np.diff(model.history_) >= 0)
    assert model.initial_cov_[2, 2] == 1.5 and np.all(model.initial_cov_[:2] == 0)
    per_seq = model.score_per_sequence(Y, lengths=np.diff(offsets), inputs=U)
    a, b, c = offsets
    alone = [model.score(Y[a:b], inputs=U[a:b]), model.score(Y[b:c], inputs=U[b:c])]
    np.testing.assert_allclose(per_seq, alone, rtol=1e-13)
    assert model.score(Y, lengths=np.diff(offsets), inputs=U) == pytest.approx(sum(alone))
    known = LinearGaussianSSM(
        3,
        initial_mean=np.zeros(3),
        initial_cov=np.eye(3),
        observation_cov_type="full",
        fixed=["initial_mean", "initial_cov"],
        n_iter=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        known.fit(Y, lengths=np.diff(offsets), inputs=U)
    assert model.n_parameters() == known.n_parameters()  # the start is not a parameter


def test_chunked_backend_equals_in_memory_with_a_diffuse_start():
    y = nile_y()
    model = ours("llevel", n_iter=30, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = model.fit(y, lengths=[50, 50]).history_
        result = fit_em(model, model.prepare(y, [50, 50]), backend="chunked", max_iter=30, tol=0)
    np.testing.assert_allclose(result.history, whole, rtol=1e-12)
    assert np.all(np.diff(whole) >= 0)


def test_diffuse_start_errors_and_model_files(tmp_path):
    y = nile_y()
    with pytest.raises(ValueError, match="only on the diagonal"):
        LinearGaussianSSM(2, initial_cov=[[np.inf, 1.0], [1.0, 1.0]]).fit(np.c_[y, y])
    with pytest.raises(ValueError, match='"diffuse"'):
        LinearGaussianSSM(1, initial_cov="difuse").fit(y)
    with pytest.raises(ValueError, match="do not pin down"):  # a trend needs two points
        ours("lltrend", n_iter=2).fit(np.r_[y[:30], y[30:31]], lengths=[30, 1])
    model = ours("llevel", n_iter=500, accelerate="squarem").fit(y)
    with pytest.raises(ValueError, match="diffuse"):
        model.sample(10)
    path = tmp_path / "level.lem"
    model.save(path)
    again = load(path)
    assert again.score(y) == model.score(y)
    np.testing.assert_array_equal(again.smooth(y).state_means, model.smooth(y).state_means)


@pytest.mark.parametrize(
    "gaps, lengths", [([5, 50, 51], [100, 37]), ([0, 5], [100, 37]), ([1], [1, 99, 37])]
)
def test_scalar_diffuse_kernel_matches_reference(gaps, lengths):
    """The one-call kernel of a one-state model with an exact diffuse start (closed form
    where the first value is observed, the general diffuse steps where not) against
    the NumPy diffuse reference, modes 0 and 1."""
    from latentem.kernels import kalman_scalar as ks

    y0 = nile_y()
    y = np.concatenate([y0, y0[:37] * 0.9])
    y[gaps] = np.nan
    Y, U = y[:, None].copy(), np.zeros((len(y), 0))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    w = np.linspace(0.5, 1.5, len(lengths))
    theta = np.array([0.95, 1.1, 1500.0, 15000.0, 900.0, 0.0])
    params = tuple(np.array([[x]]) for x in theta[:1]) + (np.zeros((1, 0)),)
    params += (np.array([[theta[1]]]), np.zeros((1, 0)), np.array([[theta[2]]]))
    params += (np.array([[theta[3]]]), theta[4:5].copy(), np.zeros((1, 1)))
    diffuse = np.ones(1, dtype=bool)
    lls, stats, _ = reference_diffuse(Y, U, offsets, params, diffuse, w, 1)
    ref = np.concatenate([[np.sum(lls)]] + [np.ravel(s) for s in stats])
    got = ks.scalar_diffuse_run(Y, U, offsets, theta, w, 1)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(ks.scalar_diffuse_run(Y, U, offsets, theta, w, 0)[0], ref[0])
    np.testing.assert_allclose(
        ks.diffuse_run(Y, U, offsets, theta, 1, diffuse, w, 1), ref, rtol=1e-10, atol=1e-9
    )
