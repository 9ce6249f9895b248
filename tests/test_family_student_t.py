"""The Student-t emission family: kernels against NumPy and scipy, the Gaussian limit
against GaussianHMM and GaussianMixture, robustness to gross outliers, degrees-of-freedom
recovery, gaps, HMMs with a monotone history, and bad input."""

import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment, minimize
from scipy.special import digamma, gammaln

import latentem
from latentem import Categorical, Family, LikelihoodDecreaseWarning, ModelGraph
from latentem.families.base import EmissionFamily
from latentem.families.gaussian_missing import MissingGaussianFamily
from latentem.families.student_t import StudentTFamily, t_log_constant, t_plan
from latentem.kernels.student_t import (
    t_diag_logprob,
    t_diag_stats,
    t_full_logprob,
    t_full_stats,
)


# ----------------------------------------------------------------------------- references
def random_params(rng, K, D, dof=None):
    A = rng.normal(size=(K, D, D))
    scales = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
    means = rng.normal(size=(K, D))
    dof = rng.uniform(1.0, 30.0, size=K) if dof is None else np.asarray(dof, dtype=float)
    return means, scales, dof


def gappy(rng, n, D, missing=0.3):
    X = rng.normal(size=(n, D)) * 2.0
    X[rng.random(X.shape) < missing] = np.nan
    X[3] = np.nan  # one row entirely missing
    X[5] = X[5]  # and some complete ones stay complete
    return X


def reference_logprob(X, means, scales, dof):
    """scipy's multivariate t on each row's observed entries."""
    out = np.zeros((len(X), len(means)))
    for t, x in enumerate(X):
        o = ~np.isnan(x)
        if not o.any():
            continue
        for k in range(len(means)):
            dist = stats.multivariate_t(means[k][o], scales[k][np.ix_(o, o)], df=dof[k])
            out[t, k] = dist.logpdf(x[o])
    return out


def reference_stats(X, W, means, scales, dof):
    """Row by row, with np.linalg.solve: weights, latent scales, conditional moments."""
    K, D = means.shape
    nk, su, dstat = np.zeros(K), np.zeros(K), np.zeros(K)
    S, Q = np.zeros((K, D)), np.zeros((K, D, D))
    for t, x in enumerate(X):
        o = ~np.isnan(x)
        m = ~o
        p = o.sum()
        if p == 0:
            continue
        for k in range(K):
            mu, Sk, nu, w = means[k], scales[k], dof[k], W[t, k]
            r = x[o] - mu[o]
            delta = r @ np.linalg.solve(Sk[np.ix_(o, o)], r)
            u = (nu + p) / (nu + delta)
            xhat = x.copy()
            xhat[m] = mu[m] + Sk[np.ix_(m, o)] @ np.linalg.solve(Sk[np.ix_(o, o)], r)
            C = np.zeros((D, D))
            C[np.ix_(m, m)] = Sk[np.ix_(m, m)] - Sk[np.ix_(m, o)] @ np.linalg.solve(
                Sk[np.ix_(o, o)], Sk[np.ix_(o, m)]
            )
            e = xhat - mu
            e_log_u = digamma((nu + p) / 2) - np.log((nu + delta) / 2)
            nk[k] += w
            su[k] += w * u
            S[k] += w * u * e
            Q[k] += w * (u * np.outer(e, e) + C)
            dstat[k] += w * (e_log_u - u + 1.0)
    return nk, su, S, Q, dstat


def tables(dof, D):
    p = np.arange(D + 1)
    h = (dof[:, None] + p) / 2
    lconst = gammaln(h) - gammaln(dof[:, None] / 2) - p / 2 * np.log(dof[:, None] * np.pi)
    return lconst, digamma(h) - np.log(h)


def factors(scales):
    L = np.linalg.cholesky(scales)
    Linv = np.tril(np.linalg.inv(L))
    P = np.linalg.inv(scales)
    return (
        Linv,
        0.5 * (P + P.transpose(0, 2, 1)),
        2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1),
    )


def assert_monotone(history):
    history = np.asarray(history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[:-1])), np.diff(history).min()


def assert_same_history(a, b):
    """Equal histories; with tol=0 either run may stop a step earlier, where the
    change first rounds to exactly zero."""
    n = min(len(a), len(b))
    assert n >= 5 and abs(len(a) - len(b)) <= 2
    np.testing.assert_allclose(a[:n], b[:n], rtol=1e-9)


def mixture_graph(**kwargs):
    g = ModelGraph()
    g.add_node("z", Categorical(kwargs.pop("n_components", 2)))
    g.add_node("x", Family(lambda k: StudentTFamily(k, **kwargs), name="StudentT"))
    g.add_edge("z", "x")
    return g


def strict(fit, *args, **kwargs):
    """Fit with a likelihood decrease as an error and without convergence warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        return fit(*args, **kwargs)


# ----------------------------------------------------------------------------- kernels
def test_satisfies_the_emission_family_protocol():
    assert isinstance(StudentTFamily(2), EmissionFamily)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_kernels_match_scipy_and_numpy_references(seed):
    rng = np.random.default_rng(seed)
    K, D = 3, 4
    X = gappy(rng, 60, D)
    means, scales, dof = random_params(rng, K, D)
    plan = t_plan(X)
    Linv, P, logdet = factors(scales)
    lconst, dig = tables(dof, D)
    got = t_full_logprob(
        X, plan.order, plan.starts, plan.idx, plan.nmis, means, Linv, P, logdet, dof, lconst
    )
    np.testing.assert_allclose(
        got, reference_logprob(X, means, scales, dof), rtol=1e-10, atol=1e-12
    )
    W = rng.dirichlet(np.ones(K), size=len(X))
    got = t_full_stats(X, plan.order, plan.starts, plan.idx, plan.nmis, means, Linv, P, dof, dig, W)
    for a, b in zip(got, reference_stats(X, W, means, scales, dof)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_diagonal_kernels_match_references(seed):
    rng = np.random.default_rng(seed + 10)
    K, D = 2, 5
    X = gappy(rng, 50, D)
    means, _, dof = random_params(rng, K, D)
    var = rng.uniform(0.3, 3.0, size=(K, D))
    full = np.stack([np.diag(v) for v in var])
    lconst, dig = tables(dof, D)
    got = t_diag_logprob(X, means, var, dof, lconst)
    np.testing.assert_allclose(got, reference_logprob(X, means, full, dof), rtol=1e-10, atol=1e-12)
    W = rng.dirichlet(np.ones(K), size=len(X))
    nk, su, S, Q, dstat = t_diag_stats(X, means, var, dof, dig, W)
    ref = reference_stats(X, W, means, full, dof)
    for a, b in zip(
        (nk, su, S, np.diagonal(ref[3], axis1=1, axis2=2), dstat), ref[:3] + (None, ref[4])
    ):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Q, np.diagonal(ref[3], axis1=1, axis2=2), rtol=1e-10, atol=1e-10)


def test_log_constant_is_accurate_for_huge_degrees_of_freedom():
    p = np.arange(6)
    for nu in (0.7, 3.0, 150.0, 199.9, 200.1, 1e4):  # around the switch to Stirling's series
        exact = gammaln((nu + p) / 2) - gammaln(nu / 2) - p / 2 * np.log(nu * np.pi)
        # the difference of two large log-gammas itself loses digits at 1e4
        atol = 1e-12 if nu < 1e3 else 1e-10
        np.testing.assert_allclose(t_log_constant(np.array(nu), p), exact, rtol=0, atol=atol)
    normal = -p / 2 * np.log(2 * np.pi)
    np.testing.assert_allclose(t_log_constant(np.array(1e15), p), normal, atol=1e-13)


def test_family_log_prob_handles_any_group_of_patterns_and_huge_dof():
    rng = np.random.default_rng(3)
    X = gappy(rng, 40, 3)
    means, scales, _ = random_params(rng, 2, 3)
    fam = StudentTFamily(2, dof=1e9, fit_dof=False)
    fam.means_, fam.scales_, fam.dof_ = means, scales, np.full(2, 1e9)
    fam.check_params()
    gauss = MissingGaussianFamily(2, 3, "full")
    gauss.set_parameters(means, scales)
    np.testing.assert_allclose(fam.log_prob(X), gauss.log_prob(X), rtol=1e-7, atol=1e-7)
    # the conditional means of the gaps are the normal's, whatever the degrees of freedom
    fam.dof_ = np.array([2.5, 4.0])
    W = rng.dirichlet(np.ones(2), size=len(X))
    np.testing.assert_allclose(fam.fill(X, W), gauss.fill(X, W), rtol=1e-10)
    assert np.isnan(X).any()  # X untouched


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_statistics_are_additive_over_row_splits(covariance_type):
    rng = np.random.default_rng(4)
    X = gappy(rng, 120, 3)
    fam = StudentTFamily(3, covariance_type)
    fam.init_params(X, rng, "mcd")
    fam.dof_ = np.array([2.0, 5.0, 40.0])
    fam.check_params()
    W = rng.dirichlet(np.ones(3), size=len(X))
    whole = fam.accumulate(X, W)
    cuts = (slice(0, 7), slice(7, 80), slice(80, None))
    parts = [fam.accumulate(X[c], W[c]) for c in cuts]
    for i, total in enumerate(whole):
        np.testing.assert_allclose(sum(p[i] for p in parts), total, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- the Gaussian limit
def hmm_data(seed=0, D=2, n=600):
    rng = np.random.default_rng(seed)
    truth = latentem.GaussianHMM(2, "diag", init_params="")
    truth.startprob_ = np.array([0.6, 0.4])
    truth.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    truth.means_ = np.array([[-2.0] * D, [2.0] * D])
    truth.covars_ = np.array([[1.0] * D, [0.5] * D])
    return truth.sample(n, random_state=rng)[0]


@pytest.mark.parametrize("covariance_type, prior", [("diag", 0.01), ("full", 0.0)])
def test_huge_dof_hmm_equals_gaussian_hmm_from_the_same_start(covariance_type, prior):
    X = hmm_data()
    rng = np.random.default_rng(1)
    start = {
        "startprob_": np.array([0.5, 0.5]),
        "transmat_": np.array([[0.7, 0.3], [0.4, 0.6]]),
    }
    means = X[rng.choice(len(X), 2, replace=False)]
    var = np.tile(X.var(axis=0), (2, 1))
    covs = var if covariance_type == "diag" else np.stack([np.diag(v) for v in var])
    plain = latentem.GaussianHMM(
        2, covariance_type, init_params="", n_iter=15, tol=0, covars_prior=prior, min_covar=0
    )
    fam = StudentTFamily(2, covariance_type, dof=1e12, fit_dof=False, scale_prior=prior)
    robust = latentem.HMM(2, emission=fam, init_params="", n_iter=15, tol=0)
    for model in (plain, robust):
        model.startprob_, model.transmat_ = start["startprob_"], start["transmat_"]
    plain.means_, plain.covars_ = means, covs
    fam.means_, fam.scales_, fam.dof_ = means, covs, np.full(2, 1e12)
    strict(plain.fit, X)
    strict(robust.fit, X)
    assert_same_history(robust.history_, plain.history_)
    np.testing.assert_allclose(robust.transmat_, plain.transmat_, rtol=1e-8)
    np.testing.assert_allclose(fam.means_, plain.means_, rtol=1e-8)
    got = fam.scales_ if covariance_type == "full" else fam.scales_
    want = (
        plain.covars_ if covariance_type == "full" else np.diagonal(plain.covars_, axis1=1, axis2=2)
    )
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_huge_dof_mixture_equals_gaussian_mixture_from_the_same_start():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(-2, 1, (300, 3)), rng.normal(2, 0.7, (200, 3))])
    w0 = np.array([0.5, 0.5])
    m0 = X[[0, 400]]
    c0 = np.tile(np.cov(X.T), (2, 1, 1))
    gm = latentem.GaussianMixture(
        2,
        reg_covar=0.0,
        max_iter=12,
        tol=0.0,
        weights_init=w0,
        means_init=m0,
        precisions_init=np.linalg.inv(c0),
    )
    strict(gm.fit, X)
    g = mixture_graph(dof=1e12, fit_dof=False, scale_prior=0.0)
    g.initialize(X, random_state=0)
    g.set_parameters("z", weights_=w0[None])
    g.set_parameters("x", means_=m0, scales_=c0, dof_=np.full(2, 1e12))
    strict(g.fit, X, max_iter=12, tol=0.0, warm_start=True)
    assert_same_history(g.history_, gm.history_)
    fitted = g.parameters("x")
    np.testing.assert_allclose(fitted["means_"], gm.means_, rtol=1e-8)
    np.testing.assert_allclose(fitted["scales_"], gm.covariances_, rtol=1e-8)
    np.testing.assert_allclose(g.parameters("z")["weights_"][0], gm.weights_, rtol=1e-8)


# ----------------------------------------------------------------------------- robustness
def two_clusters(rng, n=400):
    return np.concatenate(
        [rng.normal([-4.0, 0.0], 1.0, (n, 2)), rng.normal([4.0, 1.0], [1.0, 0.5], (n, 2))]
    )


def matched_means(fitted, reference):
    cost = np.linalg.norm(fitted[:, None] - reference[None], axis=2)
    rows, cols = linear_sum_assignment(cost)
    return fitted[rows[np.argsort(cols)]]


def test_gross_outliers_leave_the_t_means_within_their_standard_errors():
    """From the clean fits' parameters, 5% gross outliers barely move the t mixture's
    means (less than their standard errors) while the Gaussian mixture's move far."""
    rng = np.random.default_rng(0)
    clean = two_clusters(rng, n=300)
    outliers = rng.uniform(-60.0, 60.0, size=(len(clean) // 19, 2))  # 5% of the rows
    dirty = np.concatenate([clean, outliers])
    t_clean = strict(mixture_graph().fit, clean, random_state=0, max_iter=500, accelerate="squarem")
    ref, weights = t_clean.parameters("x"), t_clean.parameters("z")["weights_"]
    p = 2
    # asymptotic standard error of a t location (Lange, Little and Taylor 1989)
    se = np.sqrt(
        np.diagonal(ref["scales_"], axis1=1, axis2=2)
        * ((ref["dof_"] + p + 2) / (ref["dof_"] + p) / (weights[0] * len(clean)))[:, None]
    )
    t_dirty = mixture_graph()
    t_dirty.initialize(dirty, random_state=0)
    t_dirty.set_parameters("z", weights_=weights)
    t_dirty.set_parameters("x", **ref)
    strict(t_dirty.fit, dirty, max_iter=500, warm_start=True, accelerate="squarem")
    moved = np.abs(t_dirty.parameters("x")["means_"] - ref["means_"])
    assert np.all(moved < se), (moved, se)

    g_clean = strict(latentem.GaussianMixture(2, random_state=0).fit, clean)
    g_dirty = latentem.GaussianMixture(
        2,
        max_iter=500,
        weights_init=g_clean.weights_,
        means_init=g_clean.means_,
        precisions_init=g_clean.precisions_,
    )
    strict(g_dirty.fit, dirty)
    moved_gauss = np.abs(matched_means(g_dirty.means_, ref["means_"]) - ref["means_"])
    assert np.max(moved_gauss / se) > 5.0, moved_gauss / se


# ----------------------------------------------------------------------------- the peer
@pytest.mark.parametrize("fit_dof", [False, True])
def test_t_mixture_reaches_the_optimum_of_studenttmixture(fit_dof):
    """studenttmixture's EMStudentMixture runs the same EM (its scale M-step divides by
    the u-weighted count, Kent, Tyler and Vardi's variant, with the same fixed points);
    fitted to convergence on the same data both reach the same optimum."""
    from studenttmixture import EMStudentMixture

    rng = np.random.default_rng(3)
    X = two_clusters(rng, n=300)
    X[rng.choice(len(X), 30)] += rng.standard_t(2, size=(30, 2)) * 3
    peer = EMStudentMixture(
        2, tol=1e-12, reg_covar=0.0, max_iter=5000, df=4.0, fixed_df=not fit_dof, random_state=0
    )
    peer.fit(X)
    g = mixture_graph(dof=4.0, fit_dof=fit_dof, scale_prior=0.0)
    strict(g.fit, X, random_state=0, max_iter=5000, tol=1e-12, accelerate="squarem")
    fitted = g.parameters("x")
    order = np.argsort(fitted["means_"][:, 0])
    peer_order = np.argsort(peer.location[:, 0])
    np.testing.assert_allclose(fitted["means_"][order], peer.location[peer_order], rtol=1e-6)
    np.testing.assert_allclose(
        fitted["scales_"][order], peer.scale.transpose(2, 0, 1)[peer_order], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        g.parameters("z")["weights_"][0][order], peer.mix_weights[peer_order], rtol=1e-6
    )
    # the peer's Newton step for the degrees of freedom stops at tol=1e-3
    np.testing.assert_allclose(
        fitted["dof_"][order], peer.degrees_of_freedom[peer_order], rtol=1e-4
    )
    assert g.history_[-1] / len(X) == pytest.approx(peer.score(X), abs=1e-10)


# ----------------------------------------------------------------------------- degrees of freedom
def test_dof_estimate_is_the_maximum_likelihood_of_scipy():
    x = stats.t.rvs(4.0, size=4000, random_state=1)[:, None] * 2.0 + 1.0
    g = mixture_graph(n_components=1, scale_prior=0.0)
    strict(g.fit, x, random_state=0, max_iter=2000, tol=1e-13, accelerate="squarem")
    fitted = g.parameters("x")

    def nll(theta):
        return -stats.t.logpdf(x[:, 0], np.exp(theta[0]), theta[1], np.exp(theta[2])).sum()

    best = minimize(
        nll,
        [np.log(4.0), 1.0, np.log(2.0)],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-10, "maxiter": 5000},
    )
    assert g.history_[-1] >= -best.fun - 1e-6
    np.testing.assert_allclose(fitted["dof_"][0], np.exp(best.x[0]), rtol=1e-4)
    np.testing.assert_allclose(fitted["means_"][0, 0], best.x[1], rtol=1e-5)
    np.testing.assert_allclose(fitted["scales_"][0, 0, 0], np.exp(2 * best.x[2]), rtol=1e-4)


def test_dof_recovered_per_component_with_gaps():
    rng = np.random.default_rng(5)
    truth = StudentTFamily(2, "full")
    truth.means_ = np.array([[-6.0, 0.0, 2.0], [6.0, 1.0, -2.0]])
    truth.scales_ = np.array([np.eye(3), [[1.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.0]]])
    truth.dof_ = np.array([2.5, 12.0])
    truth.check_params()
    states = np.repeat([0, 1], 3000)
    X = truth.sample(states, rng)
    X[rng.random(X.shape) < 0.1] = np.nan
    X_copy = X.copy()
    g = strict(mixture_graph(dof=5.0).fit, X, random_state=0, max_iter=1000, accelerate="squarem")
    np.testing.assert_array_equal(np.isnan(X), np.isnan(X_copy))  # input untouched
    fitted = g.parameters("x")
    order = np.argsort(fitted["means_"][:, 0])
    np.testing.assert_allclose(fitted["dof_"][order], truth.dof_, rtol=0.3)
    np.testing.assert_allclose(fitted["means_"][order], truth.means_, atol=0.1)
    np.testing.assert_allclose(fitted["scales_"][order], truth.scales_, atol=0.15)


# ----------------------------------------------------------------------------- HMMs
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_t_hmm_history_never_decreases_with_gaps_and_estimated_dof(covariance_type):
    rng = np.random.default_rng(6)
    X = hmm_data(seed=6, D=3, n=800)
    X[rng.choice(len(X), 20, replace=False)] += rng.normal(0, 30, size=(20, 3))  # spikes
    X[rng.random(X.shape) < 0.15] = np.nan
    model = latentem.HMM(
        2,
        emission=StudentTFamily(2, covariance_type),
        n_iter=60,
        tol=0,
        random_state=0,
        init_params="stcd",  # the locations start apart by hand, the rest from the data
    )
    model.emission.means_ = np.array([[-1.0] * 3, [1.0] * 3])
    strict(model.fit, X, lengths=[400, 400])
    assert len(model.history_) == 60
    assert_monotone(model.history_)
    order = np.argsort(model.emission.means_[:, 0])
    np.testing.assert_allclose(model.emission.means_[order], [[-2.0] * 3, [2.0] * 3], atol=0.25)


# ----------------------------------------------------------------------------- the rest
def test_sample_has_the_t_covariance():
    fam = StudentTFamily(1, "full")
    fam.means_ = np.array([[1.0, -1.0]])
    fam.scales_ = np.array([[[2.0, 0.6], [0.6, 1.0]]])
    fam.dof_ = np.array([6.0])
    fam.check_params()
    draws = fam.sample(np.zeros(200000, dtype=int), np.random.default_rng(0))
    np.testing.assert_allclose(draws.mean(axis=0), [1.0, -1.0], atol=0.02)
    np.testing.assert_allclose(np.cov(draws.T), 1.5 * fam.scales_[0], rtol=0.05)


def test_n_parameters_counts_every_free_parameter():
    fam = StudentTFamily(3, "full")
    fam.means_ = np.zeros((3, 4))
    assert fam.n_parameters() == 12 + 30 + 3
    fam = StudentTFamily(3, "diag", fit_dof=False)
    fam.means_ = np.zeros((3, 4))
    assert fam.n_parameters() == 12 + 12


def test_bad_input_and_parameters_are_refused():
    fam = StudentTFamily(2)
    with pytest.raises(ValueError, match="numeric"):
        fam.validate_data(np.array([["a"]]))
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        StudentTFamily(2, "tied").init_params(np.zeros((5, 2)), np.random.default_rng(0), "mcd")
    with pytest.raises(ValueError, match="0 < low < high"):
        StudentTFamily(2, dof_bounds=(5.0, 1.0)).init_params(
            np.zeros((5, 2)), np.random.default_rng(0), "d"
        )
    with pytest.raises(ValueError, match="column 1 of X is entirely missing"):
        StudentTFamily(2).init_params(
            np.array([[1.0, np.nan], [2.0, np.nan]]), np.random.default_rng(0), "mc"
        )
    with pytest.raises(ValueError, match="need at least 2 rows"):
        StudentTFamily(2).init_params(np.ones((1, 2)), np.random.default_rng(0), "mc")
    with pytest.raises(ValueError, match="must be set before use"):
        StudentTFamily(2).check_params()
    fam = StudentTFamily(2, n_features=2)
    fam.means_, fam.scales_, fam.dof_ = (
        np.zeros((2, 2)),
        np.tile(np.eye(2), (2, 1, 1)),
        np.array([1.0, -1.0]),
    )
    with pytest.raises(ValueError, match="dof_ must be positive"):
        fam.check_params()
    fam.dof_ = np.array([3.0, 3.0])
    fam.scales_ = np.array([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(ValueError, match="not positive definite; increase scale_prior"):
        fam.check_params()
    fam.scales_ = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match=r"must have shape \(2, 2, 2\)"):
        fam.check_params()
    with pytest.raises(ValueError, match="3 features but the model has 2"):
        fam.validate_data(np.zeros((4, 3)))
    assert fam.validate_data(np.zeros((4, 2), dtype=np.float32)).dtype == np.float64


def test_squarem_on_a_t_mixture_never_lowers_the_likelihood_and_gets_further():
    rng = np.random.default_rng(8)
    X = two_clusters(rng, n=150)
    X[:10] *= 8.0  # heavy tails: the degrees of freedom move slowly under plain EM
    kwargs = {"random_state": 1, "max_iter": 60, "tol": 0.0}
    plain = strict(mixture_graph(covariance_type="diag").fit, X, **kwargs)
    fast = strict(mixture_graph(covariance_type="diag").fit, X, accelerate="squarem", **kwargs)
    assert_monotone(fast.history_)
    assert fast.history_[-1] >= plain.history_[-1] - 1e-9


def test_chunked_hmm_fit_equals_the_in_memory_fit(tmp_path):
    """Statistics add up over blocks of whole sequences, gaps included: a memory-mapped
    file fitted block by block gives the in-memory history."""
    rng = np.random.default_rng(9)
    X = hmm_data(seed=9, D=2, n=600)
    X[rng.random(X.shape) < 0.1] = np.nan
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    fits = []
    for data in (X, latentem.Chunked(mapped, block_rows=150)):
        model = latentem.HMM(2, emission=StudentTFamily(2), n_iter=6, tol=0, random_state=0)
        fits.append(strict(model.fit, data, lengths=[150] * 4))
    np.testing.assert_allclose(fits[1].history_, fits[0].history_, rtol=1e-10)
    np.testing.assert_allclose(fits[1].emission.dof_, fits[0].emission.dof_, rtol=1e-8)
