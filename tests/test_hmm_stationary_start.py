"""The generic HMM's initial regime options (``initial``): the stationary distribution of
the transitions (statsmodels' default) against statsmodels' MarkovRegression, the
transition M-step against a SciPy reference, fits, model files and errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from statsmodels.tsa.regime_switching import markov_regression as sm_reg

from latentem import HMM, GaussianHMM, load
from latentem.backends import Chunked
from latentem.families.regression import GaussianRegressionFamily, lagged
from latentem.latent.markov import MarkovLatent, stationary_transitions

with warnings.catch_warnings():  # their module uses a mark pytest does not know here
    warnings.simplefilter("ignore")
    from statsmodels.tsa.regime_switching.tests import test_markov_regression as sm_tests

FF = np.array(sm_tests.fedfunds)
ARET = np.array(sm_tests.areturns)

# name: (data (y, exog or None), switching_variance, statsmodels' published parameters:
# p00, p10, constants, exog coefficients, variances)
CASES = {
    "fedfunds_const": (
        (FF, None),
        False,
        np.r_[0.9820939, 0.0503587, 3.70877, 9.556793, 2.107562**2],
    ),
    "fedfunds_L1": (
        (FF[1:], FF[:-1]),
        False,
        np.r_[0.6378175, 0.1306295, 0.724457, -0.0988764, 0.7631424, 1.061174, 0.6915759**2],
    ),
    "areturns_variance": (
        (ARET[1:], ARET[:-1]),
        True,
        np.r_[
            0.7530865,
            0.6825357,
            0.7641424,
            1.972771,
            0.0790744,
            0.527953,
            0.5895792**2,
            1.605333**2,
        ],
    ),
}


def _table(y, exog):
    return y[:, None] if exog is None else np.column_stack([y, exog])


def _stationary_eig(P):
    """The reference: the left eigenvector of P for eigenvalue 1."""
    vals, vecs = np.linalg.eig(P.T)
    pi = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
    return pi / pi.sum()


def _assert_monotone(history):
    h = np.asarray(history)
    drops = h[:-1] - h[1:]
    assert np.all(drops <= 1e-10 * np.abs(h[:-1])), f"history decreased: {drops.max()}"


def _ours_at(name):
    """Our HMM (stationary start) holding statsmodels' parameters of case ``name``."""
    (y, exog), switching_variance, params = CASES[name]
    K = 2
    P = np.array([[params[0], 1 - params[0]], [params[1], 1 - params[1]]])
    coef = params[2:4] if exog is None else params[2:6]
    coef = coef.reshape(-1, K).T[:, :, None]  # (K, n_coef, 1): const, then exog
    var = params[-K:] if switching_variance else np.repeat(params[-1], K)
    fam = GaussianRegressionFamily(K, switching_variance=switching_variance, covars_prior=0)
    fam.coef_, fam.covars_, fam.prior_scale_ = coef, var[:, None, None], np.zeros(1)
    hmm = HMM(K, emission=fam, initial="stationary", init_params="")
    hmm.transmat_ = P
    return hmm, _table(y, exog)


@pytest.mark.parametrize("name", list(CASES))
def test_equal_to_statsmodels_at_its_parameters(name):
    (y, exog), switching_variance, params = CASES[name]
    sm = sm_reg.MarkovRegression(y, 2, exog=exog, switching_variance=switching_variance)
    res = sm.smooth(params)
    hmm, X = _ours_at(name)
    np.testing.assert_allclose(hmm.startprob_, sm.initial_probabilities(params), atol=1e-12)
    assert hmm.score(X) == pytest.approx(sm.loglike(params), abs=1e-8)
    np.testing.assert_allclose(hmm.predict_proba(X), res.smoothed_marginal_probabilities, atol=1e-8)
    # filtered: the last row's posterior of a prefix of the series (25 of them)
    ends = np.unique(np.linspace(1, len(X), 25).astype(int))
    filtered = np.array([hmm.predict_proba(X[:end])[-1] for end in ends])
    np.testing.assert_allclose(filtered, res.filtered_marginal_probabilities[ends - 1], atol=1e-8)


def test_fit_reaches_the_statsmodels_maximum_monotonically():
    fam = GaussianRegressionFamily(2, switching_variance=False, covars_prior=0)
    X = FF[:, None]
    model = HMM(2, emission=fam, initial="stationary", n_iter=1000, tol=1e-10, random_state=0)
    model.fit(X)
    assert model.score(X) == pytest.approx(-508.63592, abs=1e-4)
    _assert_monotone(model.history_)
    np.testing.assert_allclose(model.startprob_, _stationary_eig(model.transmat_), atol=1e-10)
    order = np.argsort(model.emission.coef_[:, 0, 0])  # statsmodels' regime 0: the lower mean
    P = model.transmat_[np.ix_(order, order)]
    np.testing.assert_allclose(P[:, 0], [0.9820939, 0.0503587], atol=1e-4)
    assert model.n_parameters() == 2 + 2 + 1  # transitions, constants, variance: no start


def _msvar_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    states = np.zeros(n, dtype=int)
    for t in range(1, n):
        stay = 0.97 if states[t - 1] == 0 else 0.9
        states[t] = states[t - 1] if rng.random() < stay else 1 - states[t - 1]
    A = np.array([[0.5, 0.1], [-0.2, 0.3]])
    mu = np.array([[0.0, 0.0], [2.0, -1.5]])
    Y = np.zeros((n, 2))
    for t in range(1, n):
        Y[t] = mu[states[t]] + A @ Y[t - 1] + rng.normal(0, 0.5, 2)
    return lagged(Y, 1)


@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_ms_var_fit_is_monotone_and_starts_stationary(accelerate):
    X = _msvar_data()
    fam = GaussianRegressionFamily(2, n_targets=2, switching_coef=[True, False, False])
    model = HMM(
        2, emission=fam, initial="stationary", n_iter=300, tol=1e-10, random_state=0,
        accelerate=accelerate,
    )  # fmt: skip
    model.fit(X)
    _assert_monotone(model.history_)
    np.testing.assert_allclose(model.startprob_, _stationary_eig(model.transmat_), atol=1e-10)
    # the stationary start is the free start's likelihood less what pi(P) cannot reach
    free = HMM(2, emission=fam, n_iter=300, tol=1e-10, random_state=0).fit(X)
    assert model.score(X) <= free.score(X) + 1e-6


def test_stationary_m_step_equals_a_scipy_maximisation():
    """The transition M-step (Newton on the logits) against BFGS on a plain NumPy
    objective: sum counts log P + sum g log pi(P)."""
    rng = np.random.default_rng(3)
    for K in (2, 3, 4):
        counts = rng.gamma(2.0, 5.0, (K, K))
        g = rng.dirichlet(np.ones(K)) * 3.0
        old = rng.dirichlet(np.ones(K), size=K)

        def neg(eta, counts=counts, g=g, K=K):
            full = np.column_stack([eta.reshape(K, K - 1), np.zeros(K)])
            logp = full - np.log(np.exp(full).sum(axis=1, keepdims=True))
            return -(np.sum(counts * logp) + np.sum(g * np.log(_stationary_eig(np.exp(logp)))))

        ref = minimize(neg, np.zeros(K * (K - 1)), method="BFGS", options={"gtol": 1e-10})
        ours = stationary_transitions(counts, g, old)
        logits = np.log(ours[:, :-1] / ours[:, -1:]).ravel()
        assert -neg(logits) >= -ref.fun - 1e-9
        full = np.column_stack([ref.x.reshape(K, K - 1), np.zeros(K)])
        P_ref = np.exp(full) / np.exp(full).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(ours, P_ref, atol=1e-6)


def test_markov_latent_with_several_chains_and_a_prior():
    chain = MarkovLatent(3, transmat_prior=2.0, n_sets=2, initial="stationary")
    chain.init(np.random.default_rng(0))
    old = chain.transmat_.copy()
    rng = np.random.default_rng(1)
    starts, trans = rng.dirichlet(np.ones(3), 2), rng.gamma(2.0, 4.0, (2, 3, 3))
    chain.m_step(starts, trans)
    for s in range(2):  # each chain's own M-step, the prior's pseudo-counts added
        expected = stationary_transitions(trans[s] + 1.0, starts[s], old[s])
        np.testing.assert_array_equal(chain.transmat_[s], expected)
        np.testing.assert_allclose(chain.startprob_[s], _stationary_eig(chain.transmat_[s]))
    assert [p[1] for p in chain.vector_parts()] == ["transmat_"]


def test_fixed_start_stays_and_is_not_a_parameter():
    X = FF[:, None]
    fam = GaussianRegressionFamily(2, switching_variance=False, covars_prior=0)
    model = HMM(2, emission=fam, initial=[1.0, 0.0], n_iter=200, random_state=0).fit(X)
    np.testing.assert_array_equal(model.startprob_, [1.0, 0.0])
    _assert_monotone(model.history_)
    assert model.n_parameters() == 2 + 2 + 1
    assert model.get_param_vector().size == 4 + 2 + 2  # transmat_, coef_, covars_


def test_subclasses_take_the_option_and_chunked_fits_agree(tmp_path):
    rng = np.random.default_rng(5)
    states = np.repeat(rng.integers(0, 2, 60), 20)
    X = rng.normal(np.where(states[:, None] == 0, -1.0, 1.0), 1.0, (len(states), 2))
    lengths = [400, 500, 300]
    a = GaussianHMM(2, initial="stationary", n_iter=20, tol=0, random_state=0).fit(X, lengths)
    assert a.get_params()["initial"] == "stationary"
    _assert_monotone(a.history_)
    path = tmp_path / "X.npy"
    np.save(path, X)
    b = GaussianHMM(2, initial="stationary", n_iter=20, tol=0, random_state=0)
    b.fit(Chunked(np.load(path, mmap_mode="r"), block_rows=350), lengths)
    np.testing.assert_allclose(a.transmat_, b.transmat_, rtol=1e-9)
    n = min(len(a.history_), len(b.history_))  # either may stop once it stalls
    np.testing.assert_allclose(a.history_[:n], b.history_[:n], rtol=1e-9)


@pytest.mark.parametrize("initial", ["stationary", [0.25, 0.75]])
def test_model_file_keeps_the_option(tmp_path, initial):
    X = _msvar_data(300)
    fam = GaussianRegressionFamily(2, n_targets=2)
    model = HMM(2, emission=fam, initial=initial, n_iter=30, random_state=0).fit(X)
    model.save(tmp_path / "m.latentem")
    back = load(tmp_path / "m.latentem")
    assert np.array_equal(np.asarray(back.initial), np.asarray(initial))
    np.testing.assert_array_equal(back.startprob_, model.startprob_)
    np.testing.assert_allclose(back.predict_proba(X), model.predict_proba(X), atol=1e-12)
    assert back.score(X) == pytest.approx(model.score(X), abs=1e-9)


def test_bad_settings_are_clear_errors():
    X = _msvar_data(100)

    def fit(**kw):
        return HMM(2, emission=GaussianRegressionFamily(2, n_targets=2), n_iter=3, **kw).fit(X)

    with pytest.raises(ValueError, match='initial must be "free", "stationary"'):
        fit(initial="stationry")
    with pytest.raises(ValueError, match="summing to 1"):
        fit(initial=[0.5, 0.6])
    with pytest.raises(ValueError, match="summing to 1"):
        fit(initial=[0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="startprob_prior applies to a free start only"):
        fit(initial="stationary", startprob_prior=2.0)
    model = HMM(2, emission=GaussianRegressionFamily(2, n_targets=2), initial="stationary")
    model.transmat_ = np.array([[0.9, 0.1], [0.0, 1.0]])  # a left-right chain
    model.init_params = "bc"
    with pytest.raises(ValueError, match="structural zeros"):
        model.fit(X)
