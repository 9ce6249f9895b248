"""Factor analysis, PPCA and mixtures of factor analysers (MFA, MCFA), with gaps."""

import os
import warnings
from itertools import permutations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from latentem import (
    PPCA,
    Chunked,
    FactorAnalysis,
    LikelihoodDecreaseWarning,
    MixtureOfFactorAnalyzers,
    fit_em,
    load,
)
from latentem.models.factor import ppca_closed_form


def fa_data(n=400, D=8, q=2, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, q))
    psi = rng.uniform(0.2, 1.0, D)
    X = rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, D)) * np.sqrt(psi) + 3.0
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X


def cluster_data(n=300, D=6, seed=0, missing=0.0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, 2))
    centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    y = rng.integers(0, 3, n)
    X = (centers[y] + rng.normal(size=(n, 2))) @ A.T + rng.normal(scale=0.5, size=(n, D))
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, y


def strict_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        return model.fit(X)


def assert_monotone(h):
    h = np.asarray(h)
    assert np.all(np.diff(h) >= -1e-10 * np.abs(h[:-1])), np.diff(h).min()


# ---------------------------------------------------------------------- NumPy reference EM
def reference_em_step(X, weights, means, L, Cu, xi, psi, mcfa):
    """Textbook EM step, row by row, for x = m_k + L_k (u - xi_k) + e, u ~ N(xi_k, Cu_k):
    E[u | x_obs] from the joint Gaussian of (u, x_obs), the missing cells from
    x_mis | u. MFA: xi = 0, Cu = I, m = means. MCFA: L = A shared, m = A xi.

    Returns the new parameters and the log-likelihood at the old ones.
    """
    n, D = X.shape
    K, q = len(weights), L.shape[2]
    Exu = np.zeros((K, D, q + 1))  # sum r E[x [u, 1]^T]
    Euu = np.zeros((K, q + 1, q + 1))  # sum r E[[u, 1][u, 1]^T]
    Exx = np.zeros((K, D))  # sum r E[x_j^2]
    ll = 0.0
    for i in range(n):
        o = ~np.isnan(X[i])
        m = ~o
        logp = np.empty(K)
        parts = []
        for k in range(K):
            C = L[k] @ Cu[k] @ L[k].T + np.diag(psi[k])
            logp[k] = np.log(weights[k]) + multivariate_normal(means[k][o], C[np.ix_(o, o)]).logpdf(
                X[i, o]
            )
            gain = Cu[k] @ L[k][o].T @ np.linalg.inv(C[np.ix_(o, o)])
            Eu = xi[k] + gain @ (X[i, o] - means[k][o])
            Vu = Cu[k] - gain @ L[k][o] @ Cu[k]
            Uu = Vu + np.outer(Eu, Eu)
            Ex = X[i].copy()
            Ex[m] = means[k][m] + L[k][m] @ (Eu - xi[k])
            # E[x_j u^T]: observed x_j u^T; missing: m_j E[u] + L_j (E[uu^T] - xi E[u]^T)
            xu = np.outer(Ex, Eu)
            xu[m] = np.outer(means[k][m], Eu) + L[k][m] @ (Uu - np.outer(xi[k], Eu))
            xx = Ex**2
            Vm = L[k][m] @ Vu @ L[k][m].T
            xx[m] += np.diag(Vm) + psi[k][m]
            parts.append((Eu, Uu, Ex, xu, xx))
        top = logp.max()
        ll += top + np.log(np.exp(logp - top).sum())
        r = np.exp(logp - top) / np.exp(logp - top).sum()
        for k, (Eu, Uu, Ex, xu, xx) in enumerate(parts):
            Exu[k, :, :q] += r[k] * xu
            Exu[k, :, q] += r[k] * Ex
            Euu[k, :q, :q] += r[k] * Uu
            Euu[k, :q, q] += r[k] * Eu
            Euu[k, q, :q] += r[k] * Eu
            Euu[k, q, q] += r[k]
            Exx[k] += r[k] * xx
    nk = Euu[:, q, q]
    new = {"weights": nk / nk.sum()}
    if not mcfa:  # regression of x on [z, 1] per component
        Lam = np.stack([Exu[k] @ np.linalg.inv(Euu[k]) for k in range(K)])
        new["W"] = Lam[:, :, :q]
        new["means"] = Lam[:, :, q]
        new["psi"] = np.stack(
            [(Exx[k] - np.einsum("jc,jc->j", Lam[k], Exu[k])) / nk[k] for k in range(K)]
        )
    else:  # u-part per component, x | u regression shared, without intercept
        xi_new = Euu[:, :q, q] / nk[:, None]
        new["xi"] = xi_new
        new["omega"] = Euu[:, :q, :q] / nk[:, None, None] - np.einsum("ka,kb->kab", xi_new, xi_new)
        A = Exu[:, :, :q].sum(0) @ np.linalg.inv(Euu[:, :q, :q].sum(0))
        new["A"] = A
        new["psi"] = (Exx.sum(0) - np.einsum("jc,jc->j", A, Exu[:, :, :q].sum(0))) / nk.sum()
    return new, ll


def reference_inputs(model):
    """The model's current parameters in the reference's form."""
    if isinstance(model, FactorAnalysis):
        q = model.components_.shape[0]
        D = model.n_features_in_
        psi = np.broadcast_to(model.noise_variance_, (D,))
        return (
            np.ones(1),
            model.mean_[None],
            model.components_.T[None],
            np.eye(q)[None],
            np.zeros((1, q)),
            psi[None],
        )
    K, q, D = model.n_components, model.n_factors, model.n_features_in_
    psi = np.broadcast_to(model.noise_variance_, (K, D))
    if model.shared_loadings:
        L = np.broadcast_to(model.components_.T, (K, D, q))
        return model.weights_, model.means_, L, model.factor_covariances_, model.factor_means_, psi
    L = model.components_.transpose(0, 2, 1)
    return (
        model.weights_,
        model.means_,
        L,
        np.broadcast_to(np.eye(q), (K, q, q)),
        np.zeros((K, q)),
        psi,
    )


@pytest.mark.parametrize("missing", [0.0, 0.25])
@pytest.mark.parametrize(
    "make",
    [
        lambda: FactorAnalysis(2, random_state=0, max_iter=3, tol=0, accelerate=None),
        lambda: PPCA(2, random_state=0, max_iter=3, tol=0, accelerate=None, init_params="random"),
        lambda: MixtureOfFactorAnalyzers(
            3, n_factors=2, random_state=0, max_iter=3, tol=0, accelerate=None
        ),
        lambda: MixtureOfFactorAnalyzers(
            3, n_factors=2, shared_noise=True, random_state=0, max_iter=3, tol=0, accelerate=None
        ),
        lambda: MixtureOfFactorAnalyzers(
            3, n_factors=2, shared_loadings=True, random_state=0, max_iter=3, tol=0, accelerate=None
        ),
    ],
    ids=["FA", "PPCA", "MFA", "MFA-shared-noise", "MCFA"],
)
def test_em_step_equals_row_by_row_reference(make, missing):
    """The moment-based E-step (Gaussian family with gaps, tower rule) and the M-step
    equal textbook EM computed row by row from E[u | x_obs], from the same parameters."""
    X, _ = cluster_data(n=60, D=5, seed=1, missing=missing)
    model = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    inputs = reference_inputs(model)
    mcfa = getattr(model, "shared_loadings", False)
    new, ll_ref = reference_em_step(X, *inputs, mcfa=mcfa)
    stats, ll = model.e_step(model.validate_data(X))
    assert ll == pytest.approx(ll_ref, rel=1e-10)
    assert model.log_likelihood(X) == pytest.approx(ll_ref, rel=1e-10)
    model.m_step(stats)
    if isinstance(model, FactorAnalysis):
        W = model.components_.T
        assert np.allclose(model.mean_, new["means"][0], rtol=1e-8, atol=1e-10)
        assert np.allclose(W, new["W"][0], rtol=1e-8, atol=1e-10)
        if isinstance(model, PPCA):
            assert model.noise_variance_ == pytest.approx(new["psi"][0].mean(), rel=1e-8)
        else:
            assert np.allclose(model.noise_variance_, new["psi"][0], rtol=1e-8)
        return
    assert np.allclose(model.weights_, new["weights"], rtol=1e-8)
    if mcfa:
        assert np.allclose(model.components_.T, new["A"], rtol=1e-7, atol=1e-10)
        assert np.allclose(model.factor_means_, new["xi"], rtol=1e-7, atol=1e-10)
        assert np.allclose(model.factor_covariances_, new["omega"], rtol=1e-7, atol=1e-10)
        assert np.allclose(model.noise_variance_, new["psi"], rtol=1e-7)
    else:
        assert np.allclose(model.means_, new["means"], rtol=1e-8, atol=1e-10)
        assert np.allclose(model.components_.transpose(0, 2, 1), new["W"], rtol=1e-7, atol=1e-10)
        psi = new["psi"]
        if model.shared_noise:
            psi = (new["weights"][:, None] * psi).sum(0)
        assert np.allclose(model.noise_variance_, psi, rtol=1e-7)


def test_one_component_shortcut_equals_the_family_pass():
    """For one component the complete rows' moments are computed once per fit; the
    statistics equal those of the family's fused pass over the raw rows."""
    X = fa_data(missing=0.1)
    X[:50] = fa_data(n=50, seed=3)  # some complete rows
    fa = FactorAnalysis(2, max_iter=2, tol=0, accelerate=None).fit(X)
    prepared = fa.validate_data(X)
    assert prepared.complete_moments is not None
    (s1, ll1), (s2, ll2) = fa.e_step(prepared), fa.e_step(X)
    assert ll1 == pytest.approx(ll2, rel=1e-12)
    for key in s1:
        assert np.allclose(s1[key], s2[key], rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------- peers and closed forms
def test_factor_analysis_matches_scikit_learn_maximum():
    from sklearn.decomposition import FactorAnalysis as SkFA

    X = fa_data(n=500, D=8, q=2)
    ours = strict_fit(FactorAnalysis(2, tol=1e-12, max_iter=5000), X)
    sk = SkFA(2, tol=1e-10, max_iter=20000, svd_method="lapack").fit(X)
    ll_sk = sk.score(X) * len(X)
    assert ours.history_[-1] == pytest.approx(ll_sk, rel=1e-6)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=1e-6)
    assert np.allclose(ours.get_covariance(), sk.get_covariance(), atol=1e-4)
    assert np.allclose(ours.get_precision(), np.linalg.inv(ours.get_covariance()), atol=1e-8)
    assert np.allclose(ours.mean_, sk.mean_)
    # same parameters give scikit-learn's per-row scores and factor scores
    sk.components_, sk.noise_variance_ = ours.components_, ours.noise_variance_
    assert np.allclose(ours.score_samples(X), sk.score_samples(X), rtol=1e-10)
    assert np.allclose(ours.transform(X), sk.transform(X), atol=1e-10)
    assert_monotone(ours.history_)


def test_ppca_equals_tipping_bishop_closed_form():
    X = fa_data(n=300, D=6, q=2, seed=4)
    pp = strict_fit(PPCA(2, init_params="random", random_state=1, tol=1e-13, max_iter=5000), X)
    mean, W, sigma2 = ppca_closed_form(X, 2)
    assert pp.noise_variance_ == pytest.approx(sigma2, rel=1e-6)
    Wo = pp.components_.T
    assert np.allclose(Wo @ Wo.T, W @ W.T, atol=1e-5)
    assert np.allclose(pp.mean_, mean)
    assert_monotone(pp.history_)
    # the closed form's own likelihood is the maximum
    C = W @ W.T + sigma2 * np.eye(6)
    assert pp.history_[-1] == pytest.approx(multivariate_normal(mean, C).logpdf(X).sum(), rel=1e-9)


def test_mcfa_on_iris():
    """EMMIXmfa's README: MCFA, g=3, q=2 on iris reaches ARI 0.96 (2 misallocated)."""
    from sklearn.datasets import load_iris
    from sklearn.metrics import adjusted_rand_score

    X, y = load_iris(return_X_y=True)
    mcfa = strict_fit(
        MixtureOfFactorAnalyzers(3, n_factors=2, shared_loadings=True, random_state=0), X
    )
    assert adjusted_rand_score(y, mcfa.predict(X)) > 0.9
    assert_monotone(mcfa.history_)
    assert mcfa.transform(X).shape == (150, 2)
    assert mcfa.bic(X) == pytest.approx(
        -2 * mcfa.score(X) * 150 + mcfa.n_parameters() * np.log(150)
    )


# ---------------------------------------------------------------------- gaps
def test_factor_analysis_with_gaps_recovers_the_covariance():
    X = fa_data(n=1000, D=6, q=2, seed=2, missing=0.2)
    full = fa_data(n=1000, D=6, q=2, seed=2)
    fa = strict_fit(FactorAnalysis(2), X)
    ref = FactorAnalysis(2).fit(full)
    assert_monotone(fa.history_)
    assert np.abs(fa.get_covariance() - ref.get_covariance()).max() < 0.15
    # scores: the observed cells' marginal density, and E[z | x_obs] from the joint
    C, mu = fa.get_covariance(), fa.mean_
    W, psi = fa.components_.T, fa.noise_variance_
    for i in range(5):
        o = ~np.isnan(X[i])
        ref_ll = multivariate_normal(mu[o], C[np.ix_(o, o)]).logpdf(X[i, o])
        assert fa.score_samples(X[i : i + 1])[0] == pytest.approx(ref_ll, rel=1e-10)
        Wo = W[o]
        z = np.linalg.solve(
            np.eye(2) + Wo.T @ (Wo / psi[o, None]), Wo.T @ ((X[i, o] - mu[o]) / psi[o])
        )
        assert np.allclose(fa.transform(X[i : i + 1])[0], z, atol=1e-10)


def test_all_missing_rows_are_ignored():
    X = fa_data(n=200, D=5, missing=0.1)
    Xe = np.vstack([X, np.full((3, 5), np.nan)])
    a = FactorAnalysis(2).fit(X)
    b = FactorAnalysis(2).fit(Xe)
    assert b.history_[-1] == pytest.approx(a.history_[-1], rel=1e-10)
    assert np.all(b.score_samples(Xe)[-3:] == 0.0)
    assert np.allclose(b.transform(Xe)[-3:], 0.0)


@pytest.mark.parametrize("shared", [False, True])
def test_mixture_with_gaps_clusters(shared):
    X, y = cluster_data(n=400, missing=0.2, seed=3)
    m = strict_fit(
        MixtureOfFactorAnalyzers(3, n_factors=2, shared_loadings=shared, random_state=0, n_init=2),
        X,
    )
    pred = m.predict(X)
    acc = max(np.mean(np.array(p)[pred] == y) for p in permutations(range(3)))
    assert acc > 0.9
    assert np.allclose(m.predict_proba(X).sum(axis=1), 1.0)
    assert_monotone(m.history_)
    cov = m.covariances_
    assert cov.shape == (3, 6, 6)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_input_is_not_modified():
    X = fa_data(n=100, D=5, missing=0.2)
    before = X.copy()
    fa = FactorAnalysis(2).fit(X)
    fa.transform(X), fa.score_samples(X)
    m = MixtureOfFactorAnalyzers(2, n_factors=1, random_state=0).fit(X)
    m.predict_proba(X), m.transform(X)
    assert np.array_equal(X, before, equal_nan=True)


# ---------------------------------------------------------------------- runner, backends, files
def test_chunked_fit_equals_in_memory():
    X = fa_data(n=300, D=5, missing=0.15)
    a = FactorAnalysis(2, accelerate=None, max_iter=20, tol=0)
    b = FactorAnalysis(2, accelerate=None, max_iter=20, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ra = fit_em(a, X, max_iter=20, tol=0, accelerate=None)
        rb = fit_em(b, Chunked(X, block_rows=64), max_iter=20, tol=0, accelerate=None)
    assert np.allclose(ra.history, rb.history, rtol=1e-10)
    assert np.allclose(a.get_covariance(), b.get_covariance(), rtol=1e-8)
    Xc, _ = cluster_data(n=200, missing=0.1)
    m1 = MixtureOfFactorAnalyzers(2, n_factors=1, shared_loadings=True, random_state=0)
    m2 = MixtureOfFactorAnalyzers(2, n_factors=1, shared_loadings=True, random_state=0)
    r1 = fit_em(m1, Xc, max_iter=15, tol=1e-9, random_state=0)
    r2 = fit_em(m2, Chunked(Xc, block_rows=50), max_iter=15, tol=1e-9, random_state=0)
    assert np.allclose(r1.history, r2.history, rtol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        FactorAnalysis(2),
        PPCA(2),
        MixtureOfFactorAnalyzers(2, n_factors=1, random_state=0),
        MixtureOfFactorAnalyzers(2, n_factors=2, shared_loadings=True, random_state=0),
    ],
    ids=["FA", "PPCA", "MFA", "MCFA"],
)
def test_saved_and_loaded(model, tmp_path):
    X = fa_data(n=150, D=5, missing=0.1)
    model.fit(X)
    path = os.fspath(tmp_path / "factor.lem")
    model.save(path)
    back = load(path)
    assert type(back) is type(model)
    assert np.allclose(back.score_samples(X), model.score_samples(X), rtol=1e-12)
    assert np.allclose(back.transform(X), model.transform(X), rtol=1e-12, atol=1e-12)
    assert back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.history_, model.history_)


def test_restarts_keep_the_best_and_sample_shapes():
    X, _ = cluster_data(n=200)
    m = MixtureOfFactorAnalyzers(3, n_factors=1, n_init=3, init_params="random", random_state=0)
    m.fit(X)
    Xs, ys = m.sample(50)
    assert Xs.shape == (50, 6) and ys.shape == (50,)
    fa = FactorAnalysis(2, random_state=0).fit(X)
    assert fa.sample(7).shape == (7, 6)
    assert m.aic(X) < m.bic(X)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, X, match",
    [
        (lambda: FactorAnalysis(7), np.ones((10, 5)), "larger than the number of features"),
        (lambda: FactorAnalysis(0), np.ones((10, 5)), "n_components"),
        (lambda: FactorAnalysis(2, tol=-1), np.ones((10, 5)), "tol"),
        (lambda: FactorAnalysis(2, noise_floor=0), np.ones((10, 5)), "noise_floor"),
        (lambda: FactorAnalysis(2, init_params="svd"), np.ones((10, 5)), "init_params"),
        (lambda: FactorAnalysis(2, accelerate="fast"), np.ones((10, 5)), "accelerate"),
        (
            lambda: FactorAnalysis(2, noise_variance_init=[1.0]),
            np.ones((10, 5)),
            "noise_variance_init",
        ),
        (lambda: PPCA(2, noise_variance_init=[1.0, 2.0]), np.ones((10, 5)), "noise_variance_init"),
        (lambda: MixtureOfFactorAnalyzers(5), np.ones((3, 5)), "needs at least 5"),
        (
            lambda: MixtureOfFactorAnalyzers(2, shared_loadings="yes"),
            np.ones((10, 5)),
            "True or False",
        ),
    ],
)
def test_bad_settings(make, X, match):
    X = X + np.random.default_rng(0).normal(size=X.shape)
    with pytest.raises(ValueError, match=match):
        make().fit(X)


def test_bad_data():
    X = fa_data(n=50, D=4)
    Xc = X.copy()
    Xc[:, 2] = np.nan
    with pytest.raises(ValueError, match=r"column\(s\) \[2\] of X are entirely missing"):
        FactorAnalysis(1).fit(Xc)
    Xi = X.copy()
    Xi[0, 0] = np.inf
    with pytest.raises(ValueError, match="inf"):
        FactorAnalysis(1).fit(Xi)
    with pytest.raises(AttributeError, match="not fitted"):
        FactorAnalysis(1).transform(X)
    fa = FactorAnalysis(1).fit(X)
    with pytest.raises(ValueError, match="3 features, but FactorAnalysis is expecting 4 features"):
        fa.transform(X[:, :3])


def test_n_components_none_means_all_features():
    X = fa_data(n=200, D=4)
    fa = FactorAnalysis().fit(X)
    assert fa.components_.shape == (4, 4)
    assert_monotone(fa.history_)


def test_heywood_case_stays_finite():
    """A feature equal to a factor drives its noise variance to 0: it stops at the floor,
    the fit stays finite and the history never decreases."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 1))
    noise = rng.normal(scale=0.5, size=(300, 2))
    X = np.hstack([z, 2 * z + noise[:, :1], -z + noise[:, 1:], rng.normal(size=(300, 2))])
    fa = strict_fit(FactorAnalysis(1, max_iter=200), X)
    assert np.all(fa.noise_variance_ >= fa._floor)
    assert fa.noise_variance_[0] < 0.05 * fa.noise_variance_[1:].min()
    assert np.all(np.isfinite(fa.get_precision()))
    assert_monotone(fa.history_)


def test_dask_fit_equals_in_memory():
    da = pytest.importorskip("dask.array")
    X = fa_data(n=400, D=5, missing=0.1)
    a, b = FactorAnalysis(2), FactorAnalysis(2)
    ra = fit_em(a, X, max_iter=10, tol=1e-9)
    rb = fit_em(b, da.from_array(X, chunks=(100, 5)), max_iter=10, tol=1e-9)
    assert np.allclose(ra.history, rb.history, rtol=1e-10)


def test_scikit_learn_clone_and_params():
    from sklearn.base import clone

    m = MixtureOfFactorAnalyzers(2, n_factors=2, shared_loadings=True, tol=1e-5)
    assert clone(m).get_params() == m.get_params()
    assert "shared_loadings=True" in repr(m)


@pytest.mark.parametrize("K", [1, 2])
def test_impute_is_the_conditional_mean(K):
    X = fa_data(n=300, D=5, missing=0.2)
    before = X.copy()
    if K == 1:
        model = FactorAnalysis(2).fit(X)
    else:
        model = MixtureOfFactorAnalyzers(2, n_factors=1, random_state=0).fit(X)
    filled = model.impute(X)
    assert np.array_equal(X, before, equal_nan=True)
    assert not np.isnan(filled).any()
    obs = ~np.isnan(X)
    assert np.array_equal(filled[obs], X[obs])
    R = np.ones((len(X), 1)) if K == 1 else model.predict_proba(X)
    for i in np.flatnonzero(~obs.all(axis=1))[:10]:
        o, m = obs[i], ~obs[i]
        expect = np.zeros(m.sum())
        for k in range(K):
            mu = model.mean_ if K == 1 else model.means_[k]
            C = model.get_covariance() if K == 1 else model.covariances_[k]
            cond = mu[m] + C[np.ix_(m, o)] @ np.linalg.solve(C[np.ix_(o, o)], X[i, o] - mu[o])
            expect += R[i, k] * cond
        assert np.allclose(filled[i, m], expect, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rotation", ["varimax", "quartimax"])
def test_rotation_matches_scikit_learn(rotation):
    """Rotated loadings equal scikit-learn's up to the factors' order and signs;
    the fit itself does not change."""
    from sklearn.decomposition import FactorAnalysis as SkFA

    rng = np.random.default_rng(0)
    W = np.zeros((9, 3))
    for k in range(3):  # simple structure: each feature loads on one factor
        W[3 * k : 3 * k + 3, k] = rng.uniform(1.0, 2.0, 3)
    W += 0.1 * rng.normal(size=W.shape)
    X = rng.normal(size=(1000, 3)) @ W.T + rng.normal(scale=0.5, size=(1000, 9))
    ours = FactorAnalysis(3, rotation=rotation, tol=1e-12).fit(X)
    plain = FactorAnalysis(3, tol=1e-12).fit(X)
    sk = SkFA(3, rotation=rotation, tol=1e-10, max_iter=5000).fit(X)
    A, B = ours.components_, sk.components_
    cos = np.abs(A @ B.T) / np.outer(np.linalg.norm(A, axis=1), np.linalg.norm(B, axis=1))
    perm = cos.argmax(axis=1)
    assert sorted(perm) == [0, 1, 2]
    signs = np.sign(np.sum(A * B[perm], axis=1))
    assert np.allclose(A, signs[:, None] * B[perm], atol=1e-4)
    assert np.allclose(ours.get_covariance(), plain.get_covariance(), rtol=1e-10)
    assert np.allclose(ours.transform(X), signs * sk.transform(X)[:, perm], atol=1e-4)
    with pytest.raises(ValueError, match="rotation"):
        FactorAnalysis(2, rotation="promax").fit(X)
