"""GaussianRegressionFamily: mixtures of regressions, Markov-switching regressions and
vector autoregressions, against statsmodels and plain NumPy references."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from latentem import HMM, Mixture, load
from latentem.families.regression import GaussianRegressionFamily, lagged


def _fedfunds():
    from statsmodels.tsa.regime_switching.tests.test_markov_regression import (
        fedfunds,
        inf,
        ogap,
    )

    y = np.asarray(fedfunds, dtype=float)
    X = np.column_stack([ogap, inf])
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    return y[ok], X[ok]


def _stationary(T):
    vals, vecs = np.linalg.eig(T.T)
    pi = np.real(vecs[:, np.argmax(np.real(vals))])
    return pi / pi.sum()


def _coef(d, name, k):
    """statsmodels' value of coefficient ``name`` in regime k (switching or shared)."""
    if f"{name}[0]" in d and f"{name}[1]" in d:
        return d[f"{name}[{k}]"]
    return next(v for n, v in d.items() if n == name or n.startswith(name + "["))


def _hmm_at_statsmodels(res, switching_coef=True):
    """A latentem HMM holding statsmodels' fitted MarkovRegression parameters."""
    d = dict(zip(res.model.param_names, res.params))
    K = res.model.k_regimes
    T = res.model.regime_transition_matrix(res.params)[:, :, 0].T
    fam = GaussianRegressionFamily(K, switching_coef=switching_coef)
    names = ["const", "x1", "x2"]
    fam.coef_ = np.array([[[_coef(d, c, k)] for c in names] for k in range(K)], dtype=float)
    fam.covars_ = np.array([[[d[f"sigma2[{k}]"]]] for k in range(K)])
    fam.prior_scale_ = np.zeros(1)
    hmm = HMM(K, emission=fam, init_params="")
    hmm.startprob_, hmm.transmat_ = _stationary(T), T
    return hmm


@pytest.mark.parametrize("switching_exog", [True, False])
def test_equals_statsmodels_markov_regression_at_its_parameters(switching_exog):
    import statsmodels.api as sm

    y, X = _fedfunds()
    mod = sm.tsa.MarkovRegression(
        y, k_regimes=2, exog=X, switching_exog=switching_exog, switching_variance=True
    )
    switching_coef = [True, switching_exog, switching_exog]  # the intercept switches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = mod.fit(disp=0)
    hmm = _hmm_at_statsmodels(res, switching_coef)
    data = np.column_stack([y, X])
    assert hmm.score(data) == pytest.approx(res.llf, abs=1e-8)
    np.testing.assert_allclose(
        hmm.predict_proba(data), res.smoothed_marginal_probabilities, atol=1e-8
    )
    # EM from our restarts reaches at least statsmodels' maximum (our start is free)
    fitted = HMM(
        2,
        emission=GaussianRegressionFamily(2, switching_coef=switching_coef, covars_prior=0),
        n_iter=1000,
        tol=1e-9,
        n_init=5,
        random_state=0,
    ).fit(data)
    assert fitted.score(data) >= res.llf - 1e-4
    _assert_monotone(fitted.history_)


def _assert_monotone(history):
    h = np.asarray(history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[:-1]).max()), np.diff(h).min()


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_prob_is_the_gaussian_density_of_the_residuals(covariance_type):
    rng = np.random.default_rng(0)
    fam = GaussianRegressionFamily(3, n_targets=2, covariance_type=covariance_type)
    data = np.column_stack([rng.normal(size=(40, 2)), rng.normal(size=(40, 3))])
    data = fam.validate_data(data)
    fam.init_params(data, rng, "bc")
    fam.check_params()
    got = fam.log_prob(data)
    Z = np.column_stack([np.ones(40), data[:, 2:]])
    cov = fam.covars_ if covariance_type == "full" else [np.diag(v) for v in fam.covars_]
    for k in range(3):
        resid = data[:, :2] - Z @ fam.coef_[k]
        want = multivariate_normal(np.zeros(2), cov[k]).logpdf(resid)
        np.testing.assert_allclose(got[:, k], want, rtol=1e-12)


def test_m_step_is_weighted_least_squares_and_the_weighted_residual_covariance():
    rng = np.random.default_rng(1)
    fam = GaussianRegressionFamily(2, n_targets=2, covars_prior=0.0)
    data = fam.validate_data(np.column_stack([rng.normal(size=(60, 2)), rng.normal(size=60)]))
    fam.init_params(data, rng, "bc")
    W = rng.dirichlet([1.0, 1.0], size=60)
    fam.m_step(fam.accumulate(data, W), "bc")
    Z = np.column_stack([np.ones(60), data[:, 2]])
    for k in range(2):
        sw = np.sqrt(W[:, k])[:, None]
        B = np.linalg.lstsq(Z * sw, data[:, :2] * sw, rcond=None)[0]
        np.testing.assert_allclose(fam.coef_[k], B, rtol=1e-9, atol=1e-12)
        r = data[:, :2] - Z @ B
        np.testing.assert_allclose(fam.covars_[k], (r * W[:, [k]]).T @ r / W[:, k].sum(), rtol=1e-9)


def test_mixture_of_regressions_recovers_two_lines_and_saves(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, 600)
    first = rng.random(600) < 0.4
    y = np.where(first, 2.0 + 1.5 * x, -1.0 - 0.5 * x) + rng.normal(0, 0.3, 600)
    model = Mixture(2, emission=GaussianRegressionFamily(2), n_init=4, random_state=0)
    data = np.column_stack([y, x])
    model.fit(data)
    _assert_monotone(model.history_)
    coef = model.emission.coef_[:, :, 0]
    order = np.argsort(coef[:, 1])
    np.testing.assert_allclose(coef[order], [[-1.0, -0.5], [2.0, 1.5]], atol=0.1)
    np.testing.assert_allclose(np.sort(model.weights_), [0.4, 0.6], atol=0.05)
    path = tmp_path / "mixreg.lem"
    model.save(path)
    again = load(path)
    assert again.score(data) == pytest.approx(model.score(data), rel=1e-12)
    assert again.emission.n_targets == 1


def test_markov_switching_var_with_shared_coefficients_stays_monotone():
    rng = np.random.default_rng(3)
    n, T = 600, np.array([[0.95, 0.05], [0.1, 0.9]])
    states = np.zeros(n, dtype=int)
    for t in range(1, n):
        states[t] = rng.choice(2, p=T[states[t - 1]])
    A = np.array([[0.5, 0.1], [-0.2, 0.3]])
    mu = np.array([[0.0, 0.0], [3.0, -2.0]])
    Y = np.zeros((n, 2))
    for t in range(1, n):
        Y[t] = mu[states[t]] + A @ Y[t - 1] + rng.normal(0, 0.5, 2)
    data = lagged(Y, 1)
    for shared in (False, True):
        # shared: the autoregressive matrix is common, the means switch
        flags = [True, False, False] if shared else True
        fam = GaussianRegressionFamily(2, n_targets=2, switching_coef=flags)
        hmm = HMM(2, emission=fam, n_iter=300, tol=1e-8, n_init=3, random_state=0)
        hmm.fit(data)
        _assert_monotone(hmm.history_)
        agree = np.mean(hmm.predict(data) == states[1:])
        assert max(agree, 1 - agree) > 0.95
        seen = np.zeros((2, 2))  # the transitions the simulation actually made
        np.add.at(seen, (states[1:-1], states[2:]), 1.0)
        seen /= seen.sum(axis=1, keepdims=True)
        found = np.sort(np.diag(hmm.transmat_))
        np.testing.assert_allclose(found, np.sort(np.diag(seen)), atol=0.03)
    coef = hmm.emission.coef_
    assert coef.shape == (2, 3, 2)
    np.testing.assert_allclose(coef[0, 1:], coef[1, 1:])  # the shared rows
    np.testing.assert_allclose(coef[0, 1:].T, A, atol=0.08)
    intercepts = coef[:, 0][np.argsort(coef[:, 0, 0])]
    np.testing.assert_allclose(intercepts, mu, atol=0.25)
    # two targets x (a switching intercept for each regime + two shared lags), 3 per covariance
    assert hmm.emission.n_parameters() == 2 * (2 * 1 + 2) + 2 * 3


def test_missing_responses_carry_no_evidence():
    rng = np.random.default_rng(4)
    data = np.column_stack([rng.normal(size=50), rng.normal(size=50)])
    gappy = data.copy()
    gappy[[3, 10, 11], 0] = np.nan
    fam = GaussianRegressionFamily(2)
    fam.init_params(fam.validate_data(data), rng, "bc")
    lp = fam.log_prob(fam.validate_data(gappy))
    assert np.all(lp[[3, 10, 11]] == 0.0)
    np.testing.assert_allclose(
        np.delete(lp, [3, 10, 11], 0), np.delete(fam.log_prob(data), [3, 10, 11], 0)
    )
    hmm = HMM(2, emission=GaussianRegressionFamily(2), n_iter=50, random_state=0).fit(gappy)
    assert np.isfinite(hmm.score(gappy))
    assert np.isnan(gappy[3, 0])  # the input is not changed


def test_bad_input_and_settings_are_clear_errors():
    fam = GaussianRegressionFamily(2)
    with pytest.raises(ValueError, match="regressors .* contain NaN"):
        fam.validate_data(np.array([[1.0, np.nan], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="some responses missing"):
        GaussianRegressionFamily(2, n_targets=2).validate_data(np.array([[1.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="at least one regressor"):
        GaussianRegressionFamily(2, fit_intercept=False).validate_data(np.ones((3, 1)))
    with pytest.raises(ValueError, match="n_targets"):
        GaussianRegressionFamily(2, n_targets=0).validate_data(np.ones((3, 2)))
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianRegressionFamily(2, covariance_type="tied").validate_data(np.ones((3, 2)))
    with pytest.raises(ValueError, match="switching_coef has 3 flags"):
        bad = GaussianRegressionFamily(2, switching_coef=[True, False, True])
        Mixture(2, emission=bad).fit(np.random.default_rng(0).normal(size=(20, 2)))
    with pytest.raises(ValueError, match="sample_given"):
        fam.sample(np.array([0, 1]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="order"):
        lagged(np.arange(3.0), 3)
    with pytest.raises(ValueError, match="exog has 2 rows"):
        lagged(np.arange(5.0), 1, exog=np.ones(2))


def test_sample_given_draws_around_the_regression_lines():
    fam = GaussianRegressionFamily(2)
    fam.coef_ = np.array([[[1.0], [2.0]], [[-1.0], [0.0]]])
    fam.covars_ = np.array([[[0.01]], [[0.01]]])
    x = np.linspace(0, 1, 2000)
    states = np.arange(2000) % 2
    y = fam.sample_given(x, states, np.random.default_rng(5))[:, 0]
    np.testing.assert_allclose(y[states == 0] - (1 + 2 * x[states == 0]), 0, atol=0.5)
    assert abs(np.mean(y[states == 1] + 1.0)) < 0.01
