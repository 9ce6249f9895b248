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
from latentem.kernels.kalman import kalman_smoother
from latentem.models.ssm.diffuse import run_diffuse

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
    ll, stats, outs = run_diffuse(Y, U, offsets, args, diffuse, w, 2)
    ll1, stats1, _ = run_diffuse(Y, U, offsets, args, diffuse, w, 1)
    ll0 = run_diffuse(Y, U, offsets, args, diffuse, w, 0)[0]
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
