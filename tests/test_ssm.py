"""Linear-Gaussian state-space models: the Kalman kernel against a plain NumPy
reference, EM against statsmodels (Nile) and pykalman (its robot data), and the
model's promises (monotone EM, fixed parameters, gaps, errors, model files)."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.datasets import nile

import latentem
from latentem import LikelihoodDecreaseWarning, LinearGaussianSSM, SSMImputer, fit_em, tree
from latentem.backends import Chunked
from latentem.kernels.hmm import sequence_groups
from latentem.kernels.kalman import kalman_smoother
from latentem.models.ssm import SSMData


# ----------------------------------------------------------------------------- reference
def reference_smoother(Y, U, offsets, A, B, C, D, Q, R, m0, P0, weights):
    """Kalman filter, RTS smoother and EM statistics in plain NumPy, one sequence and
    one time step at a time (textbook covariance update, explicit inverses)."""
    n, p, m = A.shape[0], C.shape[0], U.shape[1]
    nz = n + m
    Zp, XZ, XX = np.zeros((nz, nz)), np.zeros((n, nz)), np.zeros((n, n))
    W, YW, YY = np.zeros((nz, nz)), np.zeros((p, nz)), np.zeros((p, p))
    s1, S1, counts = np.zeros(n), np.zeros((n, n)), np.zeros(3)
    N = len(Y)
    means, covs = np.zeros((N, n)), np.zeros((N, n, n))
    ymeans, yvars = np.zeros((N, p)), np.zeros((N, p))
    lls = []
    for s in range(len(offsets) - 1):
        a, b = offsets[s], offsets[s + 1]
        y, u, w, T = Y[a:b], U[a:b], weights[s], b - a
        mp, Pp = np.zeros((T, n)), np.zeros((T, n, n))
        mf, Pf = np.zeros((T, n)), np.zeros((T, n, n))
        ll = 0.0
        for t in range(T):
            if t == 0:
                mp[t], Pp[t] = m0, P0
            else:
                mp[t] = A @ mf[t - 1] + B @ u[t]
                Pp[t] = A @ Pf[t - 1] @ A.T + Q
            o = ~np.isnan(y[t])
            if not o.any():
                mf[t], Pf[t] = mp[t], Pp[t]
                continue
            S = C[o] @ Pp[t] @ C[o].T + R[np.ix_(o, o)]
            v = y[t, o] - C[o] @ mp[t] - D[o] @ u[t]
            K = Pp[t] @ C[o].T @ np.linalg.inv(S)
            mf[t] = mp[t] + K @ v
            Pf[t] = Pp[t] - K @ S @ K.T
            ll -= 0.5 * (o.sum() * np.log(2 * np.pi) + np.linalg.slogdet(S)[1])
            ll -= 0.5 * v @ np.linalg.solve(S, v)
        lls.append(ll)
        ms, Ps, cross = mf.copy(), Pf.copy(), np.zeros((T, n, n))
        for t in range(T - 2, -1, -1):
            J = Pf[t] @ A.T @ np.linalg.inv(Pp[t + 1])
            ms[t] = mf[t] + J @ (ms[t + 1] - mp[t + 1])
            Ps[t] = Pf[t] + J @ (Ps[t + 1] - Pp[t + 1]) @ J.T
            cross[t + 1] = Ps[t + 1] @ J.T
        for t in range(1, T):
            z = np.concatenate([ms[t - 1], u[t]])
            Ezz = np.outer(z, z)
            Ezz[:n, :n] += Ps[t - 1]
            Zp += w * Ezz
            xz = np.outer(ms[t], z)
            xz[:, :n] += cross[t]
            XZ += w * xz
            XX += w * (Ps[t] + np.outer(ms[t], ms[t]))
            counts[0] += w
        s1 += w * ms[0]
        S1 += w * (Ps[0] + np.outer(ms[0], ms[0]))
        counts[2] += w
        for t in range(T):
            # the missing entries given x_t and the observed ones: G x_t + h + noise
            o = ~np.isnan(y[t])
            mi = ~o
            ey = np.where(o, y[t], 0.0)
            cov_yy, cov_yx = np.zeros((p, p)), np.zeros((p, n))
            if mi.any():
                Kv = R[np.ix_(mi, o)] @ np.linalg.inv(R[np.ix_(o, o)])
                G = C[mi] - Kv @ C[o]
                h = D[mi] @ u[t] + Kv @ (y[t, o] - D[o] @ u[t])
                ey[mi] = G @ ms[t] + h
                Rc = R[np.ix_(mi, mi)] - Kv @ R[np.ix_(o, mi)]
                cov_yy[np.ix_(mi, mi)] = G @ Ps[t] @ G.T + Rc
                cov_yx[mi] = G @ Ps[t]
            wv = np.concatenate([ms[t], u[t]])
            Eww = np.outer(wv, wv)
            Eww[:n, :n] += Ps[t]
            wo = w if o.any() else 0.0  # rows with nothing observed stay out
            W += wo * Eww
            yw = np.outer(ey, wv)
            yw[:, :n] += cov_yx
            YW += wo * yw
            YY += wo * (np.outer(ey, ey) + cov_yy)
            counts[1] += wo
            means[a + t], covs[a + t] = ms[t], Ps[t]
            ymeans[a + t], yvars[a + t] = ey, np.diag(cov_yy)
    stats = (Zp, XZ, XX, W, YW, YY, s1, S1, counts)
    return np.array(lls), stats, (means, covs, ymeans, yvars)


def spd(rng, k, diag=False):
    if diag:
        return np.diag(rng.uniform(0.3, 2.0, k))
    X = rng.normal(size=(k, k))
    return X @ X.T + 0.3 * k * np.eye(k)


def random_problem(seed, n=3, p=4, m=2, lengths=(5, 1, 7, 4, 9), diag_r=False, missing=0.3):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    N = int(offsets[-1])
    params = dict(
        A=rng.normal(size=(n, n)) * 0.4,
        B=rng.normal(size=(n, m)),
        C=rng.normal(size=(p, n)),
        D=rng.normal(size=(p, m)),
        Q=spd(rng, n),
        R=spd(rng, p, diag_r),
        m0=rng.normal(size=n),
        P0=spd(rng, n),
    )
    Y = rng.normal(size=(N, p)) * 2
    Y[rng.random((N, p)) < missing] = np.nan
    Y[2] = np.nan  # a row with nothing observed
    Y[offsets[1:-1]] = Y[offsets[1:-1]]
    U = rng.normal(size=(N, m))
    weights = rng.uniform(0.5, 2.0, len(lengths))
    return Y, U, offsets, params, weights


@pytest.mark.parametrize(
    "seed, diag_r, m, n, p",
    [
        (0, False, 2, 3, 4),
        (1, True, 2, 3, 4),
        (2, False, 0, 3, 4),
        (3, False, 0, 1, 1),
        (4, True, 1, 3, 2),  # diagonal R, fewer features than states
    ],
)
def test_kernel_matches_numpy_reference(seed, diag_r, m, n, p):
    Y, U, offsets, P, w = random_problem(seed, n=n, p=p, m=m, diag_r=diag_r)
    args = (P["A"], P["B"], P["C"], P["D"], P["Q"], P["R"], P["m0"], P["P0"])
    groups = sequence_groups(offsets)
    ll, stats, outs = kalman_smoother(Y, U, offsets, groups, *args, w, 2)
    ref_ll, ref_stats, ref_outs = reference_smoother(Y, U, offsets, *args, w)
    np.testing.assert_allclose(ll, ref_ll, rtol=1e-11)
    for got, want in zip(stats, ref_stats):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    for got, want in zip(outs, ref_outs):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11)
    # the filter-only mode gives the same log-likelihoods; one group equals many
    ll0 = kalman_smoother(Y, U, offsets, groups, *args, w, 0)[0]
    np.testing.assert_allclose(ll0, ll, rtol=1e-13)
    one = np.array([0, len(offsets) - 1])
    ll1, stats1, _ = kalman_smoother(Y, U, offsets, one, *args, w, 1)
    np.testing.assert_allclose(ll1, ll, rtol=1e-13)
    assert tree.allclose(tuple(stats1), tuple(stats), rtol=1e-12, atol=1e-12)


def test_scalar_kernel_path_does_the_general_arithmetic():
    """One state, one observation, no inputs runs its own loop-free code; with an input
    that is always zero the same model runs the general code: the same numbers, to
    rounding (the general filter takes a diagonal R's entries one at a time, its own
    order of operations)."""
    Y, _, offsets, P, w = random_problem(5, n=1, p=1, m=0, lengths=(30, 1, 12, 2))
    Y[5:9] = np.nan  # a gap inside a sequence
    groups = sequence_groups(offsets)
    args = (P["A"], P["B"], P["C"], P["D"], P["Q"], P["R"], P["m0"], P["P0"])
    ll, stats, outs = kalman_smoother(Y, np.zeros((len(Y), 0)), offsets, groups, *args, w, 2)
    zero = np.zeros((1, 1))
    general = (P["A"], zero, P["C"], zero, P["Q"], P["R"], P["m0"], P["P0"])
    U = np.zeros((len(Y), 1))
    ll_g, stats_g, outs_g = kalman_smoother(Y, U, offsets, groups, *general, w, 2)
    np.testing.assert_allclose(ll, ll_g, rtol=1e-13)
    for got, want in zip(stats, stats_g):
        want = want[tuple(slice(0, k) for k in got.shape)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for got, want in zip(outs, outs_g):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- Nile
def nile_y():
    return nile.load().data["volume"].to_numpy(dtype=np.float64)


#: approximate diffuse start, the same on both sides: a_1 = 0, P_1 = 1e6 (statsmodels'
#: default for initialization="approximate_diffuse"), every observation in the likelihood
DIFFUSE = 1e6


def statsmodels_local_level(y):
    mod = sm.tsa.UnobservedComponents(y, "llevel", initialization="approximate_diffuse")
    mod.ssm.loglikelihood_burn = 0
    return mod


def local_level(**kwargs):
    return LinearGaussianSSM(
        1,
        transition_matrix=[[1.0]],
        observation_matrix=[[1.0]],
        initial_mean=[0.0],
        initial_cov=[[DIFFUSE]],
        fixed=["transition_matrix", "observation_matrix", "initial_mean", "initial_cov"],
        **kwargs,
    )


def test_nile_filter_and_smoother_equal_statsmodels():
    y = nile_y()
    mod = statsmodels_local_level(y)
    res = mod.smooth([15078.0, 1478.8])  # sigma2.irregular (R), sigma2.level (Q)
    ours = local_level(transition_cov=1478.8, observation_cov=15078.0, n_iter=1)
    ours.prepare(y)
    ours.init_params(ours.prepare(y), np.random.default_rng(0))
    assert abs(ours.score(y) - res.llf) < 1e-8
    out = ours.smooth(y)
    np.testing.assert_allclose(out.state_means[:, 0], res.smoothed_state[0], rtol=1e-10)
    np.testing.assert_allclose(out.state_covs[:, 0, 0], res.smoothed_state_cov[0, 0], rtol=1e-8)


def test_nile_em_reaches_statsmodels_optimum():
    y = nile_y()
    res = statsmodels_local_level(y).fit(disp=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        ours = local_level(n_iter=5000, tol=1e-9, accelerate="squarem", random_state=0).fit(y)
    assert ours.converged_
    assert abs(ours.history_[-1] - res.llf) < 1e-3
    assert ours.score(y) >= res.llf - 1e-3
    np.testing.assert_allclose(
        [ours.observation_cov_[0, 0], ours.transition_cov_[0, 0]], res.params, rtol=2e-2
    )  # the likelihood is flat along Q: 1e-3 in it is about 1% in Q


def test_nile_gaps_filled_as_statsmodels_smooths_them():
    y = nile_y()
    gaps = np.random.default_rng(0).choice(100, 20, replace=False)
    y_gap = y.copy()
    y_gap[gaps] = np.nan
    res = statsmodels_local_level(y_gap).smooth([15078.0, 1478.8])
    ours = local_level(transition_cov=1478.8, observation_cov=15078.0)
    ours.init_params(ours.prepare(y_gap), np.random.default_rng(0))
    filled = ours.impute(y_gap)
    np.testing.assert_allclose(filled[gaps, 0], res.smoothed_state[0, gaps], rtol=1e-10)
    assert np.array_equal(filled[~np.isnan(y_gap), 0], y[~np.isnan(y_gap)])
    rmse = np.sqrt(np.mean((filled[gaps, 0] - y[gaps]) ** 2))
    # the fills beat the mean of the observed years (the fill that ignores time)
    assert rmse < np.sqrt(np.mean((np.nanmean(y_gap) - y[gaps]) ** 2))


# ----------------------------------------------------------------------------- pykalman
def robot_problem():
    from pykalman.datasets import load_robot

    data = load_robot()
    Z = np.ma.filled(data.observations.astype(np.float64), np.nan)
    T = len(Z)
    # pykalman: x_{t+1} = A x_t + b_t, z_t = C x_t + d. Here as inputs u_t = [b_{t-1}, 1]
    U = np.zeros((T, 6))
    U[1:, :5] = data.transition_offsets
    U[:, 5] = 1.0
    B = np.hstack([np.eye(5), np.zeros((5, 1))])
    D = np.hstack([np.zeros((2, 5)), data.observation_offset[:, None]])
    return data, Z, U, B, D


def test_pykalman_robot_em_path():
    from pykalman import KalmanFilter

    data, Z, U, B, D = robot_problem()
    kf = KalmanFilter(
        data.transition_matrix,
        data.observation_matrix,
        data.initial_transition_covariance,
        data.initial_observation_covariance,
        data.transition_offsets,
        data.observation_offset,
        data.initial_state_mean,
        data.initial_state_covariance,
        em_vars=["transition_covariance", "observation_covariance"],
    )
    theirs = []
    for _ in range(3):
        theirs.append(kf.loglikelihood(data.observations))
        kf.em(data.observations, n_iter=1)
    ours = LinearGaussianSSM(
        5,
        transition_matrix=data.transition_matrix,
        transition_input=B,
        observation_matrix=data.observation_matrix,
        observation_input=D,
        transition_cov=data.initial_transition_covariance,
        observation_cov=data.initial_observation_covariance,
        initial_mean=data.initial_state_mean,
        initial_cov=data.initial_state_covariance,
        observation_cov_type="full",
        fixed=[
            "transition_matrix",
            "transition_input",
            "observation_matrix",
            "observation_input",
            "initial_mean",
            "initial_cov",
        ],
        n_iter=3,
        tol=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        ours.fit(Z, inputs=U)
    np.testing.assert_allclose(ours.history_, theirs, rtol=1e-9)
    np.testing.assert_allclose(ours.history_, data.loglikelihoods[:3], rtol=1e-6)
    np.testing.assert_allclose(ours.transition_cov_, kf.transition_covariance, rtol=1e-7)
    np.testing.assert_allclose(ours.observation_cov_, kf.observation_covariance, rtol=1e-7)


# ----------------------------------------------------------------------------- EM promises
def simulate(seed=0, T=150, lengths=None, n=2, p=3, m=0):
    rng = np.random.default_rng(seed)
    model = LinearGaussianSSM(n)
    model.n_features_in_, model.n_inputs_ = p, m
    model.transition_matrix_ = np.array([[0.9, 0.2], [-0.1, 0.7]])[:n, :n]
    model.transition_input_ = rng.normal(size=(n, m))
    model.observation_matrix_ = rng.normal(size=(p, n))
    model.observation_input_ = rng.normal(size=(p, m))
    model.transition_cov_ = np.array([[0.5, 0.1], [0.1, 0.3]])[:n, :n]
    model.observation_cov_ = np.diag(rng.uniform(0.2, 0.6, p))
    model.initial_mean_ = np.zeros(n)
    model.initial_cov_ = np.eye(n)
    lengths = [T] if lengths is None else lengths
    Ys, Us = [], []
    for k, L in enumerate(lengths):
        U = rng.normal(size=(L, m))
        Ys.append(model.sample(L, random_state=seed * 100 + k, inputs=U if m else None)[0])
        Us.append(U)
    return model, np.vstack(Ys), np.vstack(Us)


CONFIGS = [
    dict(),
    dict(transition_cov_type="diag", observation_cov_type="full"),
    dict(transition_cov_type="scalar", observation_cov_type="scalar"),
    dict(accelerate="squarem"),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_history_never_decreases(config):
    _, Y, _ = simulate(1, lengths=[60, 40, 30])
    Y[np.random.default_rng(0).random(Y.shape) < 0.2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(2, n_iter=60, tol=0, random_state=0, **config)
        model.fit(Y, lengths=[60, 40, 30])
    h = model.history_
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]))
    assert h[-1] > h[0]


def test_inputs_and_fixed_entries():
    truth, Y, U = simulate(2, T=300, m=2)
    mask = np.array([[True, False], [False, False]])
    A0 = np.array([[0.9, 0.0], [0.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(
            2,
            transition_matrix=A0,
            transition_cov=[0.5, 0.3],
            transition_cov_type="diag",
            fixed={"transition_matrix": mask, "transition_cov": np.array([False, True])},
            n_iter=80,
            tol=0,
            random_state=0,
        ).fit(Y, inputs=U)
    assert model.transition_matrix_[0, 0] == 0.9
    assert model.transition_cov_[1, 1] == 0.3
    assert model.transition_cov_[0, 1] == 0.0
    assert np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[:-1]))
    # free: 3 of A, 4 of B, 6 + 6 of C and D, 1 of Q, 3 of R, 2 + 3 initial
    assert model.n_parameters() == 3 + 4 + 6 + 6 + 1 + 3 + 2 + 3
    # D is recovered from the inputs (the states cannot absorb it)
    np.testing.assert_allclose(model.observation_input_, truth.observation_input_, atol=0.25)
    assert model.score(Y, inputs=U) >= truth.score(Y, inputs=U)


def test_full_transition_cov_with_fixed_entries_is_monotone():
    _, Y, U = simulate(3, T=200, m=1)
    mask = np.zeros((2, 3), dtype=bool)
    mask[1, 0] = True  # A[1, 0] held at 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(
            2,
            transition_matrix=[[0.5, 0.0], [0.0, 0.5]],
            transition_input=[[0.0], [0.0]],
            fixed={"transition_matrix": mask[:, :2], "transition_input": mask[:, 2:]},
            n_iter=40,
            tol=0,
            random_state=1,
        ).fit(Y, inputs=U)
    assert model.transition_matrix_[1, 0] == 0.0
    assert np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[:-1]))


def test_recovers_a_simulated_model_and_its_gaps():
    truth, Y, _ = simulate(4, lengths=[400, 300])
    rng = np.random.default_rng(1)
    gaps = rng.random(Y.shape) < 0.15
    Y_gap = np.where(gaps, np.nan, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(2, n_iter=300, accelerate="squarem", random_state=0)
        model.fit(Y_gap, lengths=[400, 300])
    assert model.score(Y_gap, [400, 300]) >= truth.score(Y_gap, [400, 300])
    # eigenvalues of A are invariant to the states' basis
    got = np.sort_complex(np.linalg.eigvals(model.transition_matrix_))
    want = np.sort_complex(np.linalg.eigvals(truth.transition_matrix_))
    np.testing.assert_allclose(got, want, atol=0.1)
    out = model.smooth(Y_gap, [400, 300])
    err = out.obs_means[gaps] - Y[gaps]
    # the gaps' smoothed variances describe their errors (noise included)
    ratio = np.mean(err**2) / np.mean(out.obs_vars[gaps])
    assert 0.7 < ratio < 1.4
    assert np.all(out.obs_vars[~gaps] == 0)


def test_statistics_add_over_sequences_and_backends_agree():
    _, Y, _ = simulate(5, lengths=[50, 30, 40, 20])
    lengths = [50, 30, 40, 20]
    model = LinearGaussianSSM(2, random_state=0)
    data = model.prepare(Y, lengths)
    model.init_params(data, np.random.default_rng(0))
    whole, ll = model.e_step(data)
    first = model.prepare(Y[:80], [50, 30])
    second = model.prepare(Y[80:], [40, 20])
    a, lla = model.e_step(first)
    b, llb = model.e_step(second)
    assert tree.allclose(tree.add(a, b), whole, rtol=1e-12, atol=1e-10)
    assert abs(lla + llb - ll) < 1e-9 * abs(ll)
    import dask.array as da

    runs = {}
    sources = (
        ("memory", Y),
        ("chunked", Chunked(Y, block_rows=60)),
        ("dask", da.from_array(Y, chunks=(45, 3))),  # cut inside sequences: re-chunked whole
    )
    for backend, X in sources:
        m = LinearGaussianSSM(2)
        d = m.prepare(X, lengths)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", latentem.ConvergenceWarning)
            runs[backend] = fit_em(m, d, backend=backend, max_iter=10, tol=0, random_state=0)
    np.testing.assert_allclose(runs["chunked"].history, runs["memory"].history, rtol=1e-10)
    np.testing.assert_allclose(runs["dask"].history, runs["memory"].history, rtol=1e-10)


def test_many_sequences_at_once():
    _, Y, _ = simulate(6, lengths=[20] * 200)
    model = LinearGaussianSSM(2, random_state=0)
    data = model.prepare(Y, [20] * 200)
    model.init_params(data, np.random.default_rng(0))
    per_seq = model.score_per_sequence(Y, [20] * 200)
    assert per_seq.shape == (200,)
    one = model.score(Y[40:60])
    assert abs(per_seq[2] - one) < 1e-10 * abs(one)


# ----------------------------------------------------------------------------- errors
def test_bad_input_gets_clear_errors():
    _, Y, U = simulate(7, T=50, m=1)
    with pytest.raises(ValueError, match="n_states must be >= 1"):
        LinearGaussianSSM(0).fit(Y)
    with pytest.raises(ValueError, match="inputs has 49 rows but X has 50"):
        LinearGaussianSSM(2).fit(Y, inputs=U[:49])
    with pytest.raises(ValueError, match="held fixed; give a positive definite"):
        LinearGaussianSSM(
            2, observation_cov=np.diag([1.0, 0.0, 1.0]), fixed=["observation_cov"]
        ).fit(Y)
    Y_gap = Y.copy()
    Y_gap[20:35] = np.nan
    with pytest.raises(ValueError, match="sequence 1 .* is entirely missing"):
        LinearGaussianSSM(2).fit(Y_gap, lengths=[20, 15, 15])
    Y_col = Y.copy()
    Y_col[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of X is entirely missing"):
        LinearGaussianSSM(2).fit(Y_col)
    with pytest.raises(ValueError, match="unknown parameter 'A'"):
        LinearGaussianSSM(2, fixed=["A"]).fit(Y)
    with pytest.raises(ValueError, match="held fixed but has no value"):
        LinearGaussianSSM(2, fixed=["transition_matrix"]).fit(Y)
    with pytest.raises(ValueError, match="must have shape"):
        LinearGaussianSSM(2, transition_matrix=np.eye(3)).fit(Y)
    with pytest.raises(ValueError, match="model has 1 inputs"):
        LinearGaussianSSM(2, transition_input=np.zeros((2, 1))).fit(Y)
    with pytest.raises(ValueError, match="transition_cov_type must be one of"):
        LinearGaussianSSM(2, transition_cov_type="banded").fit(Y)


def test_nothing_is_modified_in_place():
    _, Y, U = simulate(8, T=60, m=1)
    Y[5, 1] = np.nan
    Y0, U0 = Y.copy(), U.copy()
    A = np.array([[0.5, 0.0], [0.0, 0.5]])
    A0 = A.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(2, transition_matrix=A, n_iter=5, random_state=0)
        model.fit(Y, inputs=U)
    model.smooth(Y, inputs=U)
    model.impute(Y, inputs=U)
    assert np.array_equal(Y, Y0, equal_nan=True) and np.array_equal(U, U0)
    assert np.array_equal(A, A0) and model.transition_matrix is A


def test_saved_and_loaded(tmp_path):
    _, Y, U = simulate(9, T=80, m=1)
    Y[10:13, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model = LinearGaussianSSM(
            2,
            transition_cov_type="diag",
            fixed={"transition_matrix": np.array([[True, False], [False, False]])},
            transition_matrix=np.eye(2) * 0.5,
            n_iter=10,
            random_state=0,
        ).fit(Y, inputs=U)
    path = tmp_path / "ssm.lem"
    model.save(path)
    again = latentem.load(path)
    assert type(again) is LinearGaussianSSM
    a, b = model.smooth(Y, inputs=U), again.smooth(Y, inputs=U)
    assert np.array_equal(a.state_means, b.state_means)
    assert np.array_equal(a.obs_means, b.obs_means, equal_nan=True)
    assert again.n_parameters() == model.n_parameters()
    assert np.array_equal(again.history_, model.history_)


def test_ssm_imputer_on_a_dataframe():
    import pandas as pd

    _, Y, _ = simulate(10, T=120)
    Y = Y * [1.0, 10.0, 100.0] + [0.0, 50.0, -300.0]
    frame = pd.DataFrame(Y, columns=["a", "b", "c"], index=pd.date_range("2020", periods=120))
    frame.iloc[30:40, 1] = np.nan
    before = frame.copy()
    imp = SSMImputer(2, random_state=0, n_iter=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        filled, std = imp.fit(frame).transform(frame, return_std=True)
    assert isinstance(filled, pd.DataFrame) and filled.index.equals(frame.index)
    pd.testing.assert_frame_equal(frame, before)
    assert not filled.isna().any().any()
    assert (std.iloc[30:40, 1] > 0).all() and (std.iloc[:30] == 0).all().all()
    err = filled.iloc[30:40, 1].to_numpy() - Y[30:40, 1]
    assert np.sqrt(np.mean(err**2)) < np.std(Y[:, 1])


def test_data_wrapper_counts_time_steps():
    data = SSMData(np.zeros((7, 2)), np.array([0, 3, 7]))
    assert len(data) == 7 and data.n_sequences == 2


def test_plot_of_smoothed_states_has_a_band_per_state():
    import matplotlib

    matplotlib.use("Agg")
    from latentem.plotting import plot_smoothed_states

    model, Y, _ = simulate(11, T=60)
    ax = plot_smoothed_states(model, Y, states=[1])
    assert len(ax.lines) == 1 and len(ax.collections) == 1
    np.testing.assert_allclose(ax.lines[0].get_ydata(), model.smooth(Y).state_means[:, 1])
    with pytest.raises(ValueError, match="state 2 does not exist"):
        plot_smoothed_states(model, Y, states=[2])


# ----------------------------------------------------------------------------- flat entry points
def _flat_reference(lls, stats):
    return np.concatenate([[np.sum(lls)]] + [np.ravel(s) for s in stats])


def test_scalar_and_flat_kernels_match_numpy_reference():
    """The E-step's one-call kernels (packed parameters in, ``[loglik, stats...]`` out)
    against the NumPy smoother: the scalar one (one division per step) and the general
    one, with gaps, a one-step sequence, weights, modes 0 and 1."""
    from latentem.kernels import kalman_scalar as ks

    Y, _, offsets, P, w = random_problem(7, n=1, p=1, m=0, lengths=(30, 1, 12, 2))
    Y[5:9] = np.nan
    U = np.zeros((len(Y), 0))
    args = (P["A"], P["B"], P["C"], P["D"], P["Q"], P["R"], P["m0"], P["P0"])
    theta = np.concatenate([np.ravel(a) for a in args])
    assert theta.size == ks.theta_size(1, 1, 0)
    ref = _flat_reference(*reference_smoother(Y, U, offsets, *args, w)[:2])
    got = ks.scalar_run(Y, offsets, theta, w, 1)
    assert got.size == 1 + ks.stats_size(1, 1, 0)
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(ks.scalar_run(Y, offsets, theta, w, 0)[0], ref[0], rtol=1e-13)
    for n, p, m in ((1, 1, 0), (3, 4, 2)):
        Y, U, offsets, P, w = random_problem(8, n=n, p=p, m=m)
        args = (P["A"], P["B"], P["C"], P["D"], P["Q"], P["R"], P["m0"], P["P0"])
        theta = np.concatenate([np.ravel(a) for a in args])
        ref = _flat_reference(*reference_smoother(Y, U, offsets, *args, w)[:2])
        got = ks.kalman_run(Y, U, offsets, theta, n, w, 1)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    # a sequence whose innovation variance is not positive: NaN in front
    bad = np.array([1.0, 1.0, 1.0, -5.0, 0.0, 1.0])
    assert np.isnan(ks.scalar_run(np.ones((4, 1)), np.array([0, 4]), bad, np.ones(1), 1)[0])


@pytest.mark.parametrize(
    "n, p, m, fixed, q_type, r_type",
    [
        (1, 1, 0, ["transition_matrix", "observation_matrix"], "full", "diag"),
        (3, 4, 2, None, "full", "full"),
        (3, 4, 0, ["transition_cov", "initial_mean"], "diag", "diag"),
        (2, 3, 1, ["observation_matrix", "observation_input", "initial_cov"], "scalar", "scalar"),
    ],
)
def test_compiled_m_step_equals_the_numpy_m_step(n, p, m, fixed, q_type, r_type):
    """The compiled M-step on the packed vector gives what the NumPy M-step gives from
    the same statistics, for each structure it takes (whole parts free or held)."""
    Y, U, offsets, P, w = random_problem(11, n=n, p=p, m=m, lengths=(40, 25, 30))
    kw = dict(transition_matrix=P["A"], observation_matrix=P["C"], initial_mean=P["m0"])
    kw.update(initial_cov=P["P0"], transition_cov=P["Q"], observation_cov=P["R"])
    if q_type == "diag":
        kw["transition_cov"] = np.diag(P["Q"])
    if m:
        kw.update(transition_input=P["B"], observation_input=P["D"])
    model = LinearGaussianSSM(
        n, transition_cov_type=q_type, observation_cov_type=r_type, fixed=fixed, **kw
    )
    data = model.prepare(Y, np.diff(offsets), U if m else None)
    model.init_params(data, np.random.default_rng(0))
    stats, _ = model.e_step(data)
    assert model._held["codes"] is not None
    twin = model.__class__(**model.get_params())
    twin.__dict__.update({k: v for k, v in model.__dict__.items() if k != "_packed"})
    for name in latentem.models.ssm.parameters.PARAMS:
        setattr(twin, name + "_", getattr(model, name + "_").copy())
    twin.__dict__["_held_cache"] = dict(model._held, codes=None)  # the NumPy M-step
    model.m_step(stats)
    twin.m_step(stats.copy())
    for name in latentem.models.ssm.parameters.PARAMS:
        np.testing.assert_allclose(
            getattr(model, name + "_"), getattr(twin, name + "_"), rtol=1e-10, atol=1e-12
        )
    assert np.array_equal(model.get_param_vector(), model._theta())


@pytest.mark.parametrize(
    "kw",
    [
        dict(observation_matrix=[[1.0]]),
        dict(observation_matrix=[[0.7]], transition_matrix=[[1.0]]),
        dict(observation_matrix=[[1.0]], initial_cov="diffuse"),
        dict(observation_matrix=[[2.0]], transition_cov=0.3, initial_mean=[1.0]),
        dict(observation_matrix=[[1.0]], transition_matrix=[[1.0]]),  # the local level
    ],
)
@pytest.mark.parametrize("lengths", [None, [60, 1, 59]])
@pytest.mark.parametrize("gaps", [True, False])
def test_scalar_start_equals_the_general_start(kw, lengths, gaps):
    """One state, one feature, C given: the starting values computed in numbers equal
    the general code's, which the same model with an input that is always zero takes
    (with and without gaps: without, c = 1 and A = 1 skip steps that change nothing)."""
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=120)) + rng.normal(size=120)
    if gaps:
        y[[3, 40, 41]] = np.nan
    fast = LinearGaussianSSM(1, **kw)
    fast.init_params(fast.prepare(y, lengths), np.random.default_rng(0))
    general = LinearGaussianSSM(1, **kw)
    data = general.prepare(y, lengths, inputs=np.zeros((120, 1)))
    general.init_params(data, np.random.default_rng(0))
    for name in latentem.models.ssm.parameters.PARAMS:
        if not name.endswith("_input"):  # B and D: zero on both sides
            got, want = getattr(fast, name + "_"), getattr(general, name + "_")
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


def test_scalar_m_step_equals_the_general_compiled_m_step():
    """The one-state, one-feature M-step in numbers equals the general compiled one (itself
    checked against the NumPy M-step above) for every combination of parts free and
    held, and leaves the parameters untouched where a Gram statistic is zero."""
    from latentem.kernels import kalman_scalar as ks

    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=80))[:, None]
    y[[4, 30]] = np.nan
    theta = np.array([0.9, 1.1, 0.5, 0.8, 0.2, 2.0])
    out = ks.scalar_run(y, np.array([0, 50, 80]), theta, np.array([1.0, 0.5]), 1)
    stats = out[1:]
    for bits in range(64):
        codes = np.array([(bits >> k) & 1 for k in range(6)], dtype=np.int64)
        codes[1] *= ks.COV_FULL + (bits % 3 == 0)  # full or diagonal: the same for 1 x 1
        codes[3] *= ks.COV_SCALAR if bits % 2 else ks.COV_FULL
        a, b = theta.copy(), theta.copy()
        assert ks.m_step_scalar(stats, a, codes)
        assert ks.m_step_packed(stats, b, 1, 1, 0, codes)
        np.testing.assert_allclose(a, b, rtol=1e-12)
    empty = stats.copy()
    empty[0] = 0.0  # no transitions' Zp: A cannot be regressed
    a = theta.copy()
    assert not ks.m_step_scalar(empty, a, np.ones(6, dtype=np.int64))
    np.testing.assert_array_equal(a, theta)


def test_set_param_vector_checks_as_numpy_does():
    """set_param_vector's compiled check (finite; R definite, Q and P0 semi-definite)
    takes what the NumPy check takes, and changes nothing when it refuses."""
    from latentem.models.ssm.parameters import _definite

    _, Y, _ = simulate(2, T=60, n=2, p=3)
    model = LinearGaussianSSM(2, observation_cov_type="full", random_state=0)
    model.init_params(model.prepare(Y), np.random.default_rng(0))
    theta = model.get_param_vector()
    views = {name: getattr(model, name + "_") for name in latentem.models.ssm.parameters.PARAMS}
    rng = np.random.default_rng(0)
    for trial in range(60):
        new = theta + rng.normal(0.0, 0.6, theta.size) * (trial % 4 != 0)
        if trial % 10 == 5:
            new[0] = np.nan
        parts, start = {}, 0
        for name, view in views.items():
            parts[name] = new[start : start + view.size].reshape(view.shape)
            start += view.size
        want = bool(np.isfinite(new).all()) and all(
            _definite(parts[name], semi=name != "observation_cov")
            for name in ("transition_cov", "observation_cov", "initial_cov")
        )
        before = model.get_param_vector()
        assert model.set_param_vector(new) == want
        np.testing.assert_array_equal(model.get_param_vector(), new if want else before)
    assert not model.set_param_vector(theta[:-1])


def test_fitted_attributes_edited_in_place_count_after_restarts_and_copies():
    """The fitted matrices are views of the packed parameter vector. The best of several
    restarts comes back from a deep copy, as does a copied or pickled model: an edit made
    in place to an attribute must still reach score."""
    import copy
    import pickle

    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=200))[:, None] + rng.normal(size=(200, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = LinearGaussianSSM(1, n_iter=20, random_state=0).fit(y)
        restarts = LinearGaussianSSM(1, n_iter=20, n_init=3, random_state=0).fit(y)
    reference = copy.deepcopy(single)
    reference.transition_matrix_ = np.array([[0.5]])  # a new array: packed afresh
    expected = reference.score(y)
    for model in (single, restarts, copy.deepcopy(single), pickle.loads(pickle.dumps(single))):
        before = model.score(y)
        model.transition_matrix_[0, 0] = 0.5
        after = model.score(y)
        assert after != before
        np.testing.assert_allclose(after, expected, rtol=1e-9)


def test_models_with_one_setting_share_their_masks_and_a_new_setting_gets_its_own():
    """The masks of held entries are worked out once per setting and shared (read-only);
    a changed ``fixed`` or diffuse start is honoured at the next prepare."""
    y = nile_y()
    kw = dict(transition_matrix=[[1.0]], observation_matrix=[[1.0]], n_iter=500, tol=1e-4)
    one = LinearGaussianSSM(1, fixed=["transition_matrix"], **kw)
    two = LinearGaussianSSM(1, fixed=["transition_matrix"], **kw)
    one.prepare(y)
    two.prepare(y)
    assert one._held is two._held and one._masks is two._masks
    with pytest.raises(ValueError):
        one._masks["transition_matrix"][0, 0] = False
    one.set_params(fixed=None)
    one.fit(y)
    assert not one._masks["transition_matrix"].any()
    assert one.transition_matrix_[0, 0] != 1.0  # free now: EM moved it
    two.fit(y)
    assert two.transition_matrix_[0, 0] == 1.0
    two.set_params(initial_cov="diffuse")
    two.prepare(y)
    assert two._held["diffuse"] is not None and two._masks["initial_cov"].all()
    # fixed given as masks: worked out afresh, not shared
    masked = dict(fixed={"transition_matrix": np.array([[True]])}, **kw)
    three, four = LinearGaussianSSM(1, **masked), LinearGaussianSSM(1, **masked)
    three.prepare(y)
    four.prepare(y)
    assert three._held is not four._held and three._masks["transition_matrix"].all()
