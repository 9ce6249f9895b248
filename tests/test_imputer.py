"""EMImputer, the missing-data Gaussian kernels (against NumPy references) and Rubin's rules."""

import warnings

import numpy as np
import pandas as pd
import pytest

from latentem.families.gaussian_missing import MissingGaussianFamily, missing_plan
from latentem.kernels import gaussian_missing as kern
from latentem.models.gaussian_mixture import GaussianMixture
from latentem.models.imputer import EMImputer, pool_estimates


# ---------------------------------------------------------------------- helpers
def random_cov(rng, D, scale=1.0):
    A = rng.normal(size=(D, D))
    return scale * (A @ A.T / D + 0.3 * np.eye(D))


def gappy(rng, n, D, frac, cov=None, mean=None):
    cov = random_cov(rng, D) if cov is None else cov
    mean = np.zeros(D) if mean is None else mean
    X = rng.multivariate_normal(mean, cov, size=n)
    Xm = X.copy()
    Xm[rng.random((n, D)) < frac] = np.nan
    return X, Xm, cov


def make_family(rng, K, D, ct):
    fam = MissingGaussianFamily(K, D, ct, reg_covar=0.0)
    covs = np.stack([random_cov(rng, D, 1.0 + k) for k in range(K)])
    cov = {
        "full": covs,
        "tied": covs[0],
        "diag": np.stack([np.diag(c) for c in covs]),
        "spherical": np.array([np.diag(c).mean() for c in covs]),
    }[ct]
    fam.set_parameters(rng.normal(size=(K, D)), cov)
    return fam


def ref_condition(x, mu, S):
    """Slow, obvious conditioning through S_oo: (log N(x_o), xhat, Cmm embedded in (D, D))."""
    m = np.isnan(x)
    o = ~m
    d = x[o] - mu[o]
    Soo = S[np.ix_(o, o)]
    sol = np.linalg.solve(Soo, d)
    logp = -0.5 * (o.sum() * np.log(2 * np.pi) + d @ sol + np.linalg.slogdet(Soo)[1])
    xhat = x.copy()
    xhat[m] = mu[m] + S[np.ix_(m, o)] @ sol
    C = np.zeros_like(S)
    C[np.ix_(m, m)] = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ np.linalg.solve(Soo, S[np.ix_(o, m)])
    return logp, xhat, C


def ref_stats(X, W, fam):
    """Reference (nk, S, Q) in the family layout, all rows with at least one observed value."""
    K, D = fam.n_components, fam.n_features
    covs = fam.full_covariances()
    mus = fam.means_
    shift = fam._shift()
    nk, S = np.zeros(K), np.zeros((K, D))
    Qfull = np.zeros((K, D, D))
    Qtied = np.zeros((D, D))
    for i, x in enumerate(X):
        if np.isnan(x).all():
            continue
        for k in range(K):
            _, xhat, C = ref_condition(x, mus[k], covs[k])
            w = W[i, k]
            nk[k] += w
            S[k] += w * (xhat - mus[k])
            Qfull[k] += w * (np.outer(xhat - mus[k], xhat - mus[k]) + C)
            Qtied += w * (np.outer(xhat - shift, xhat - shift) + C)
    Q = {
        0: Qfull,
        1: Qtied[None],
        2: np.diagonal(Qfull, axis1=1, axis2=2)[:, None, :],
    }[fam.smode]
    return nk, S, Q


# ---------------------------------------------------------------------- kernels vs NumPy
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kernels_match_numpy_reference(ct, seed, kernel_route):
    rng = np.random.default_rng(seed)
    n, D, K = 120, 5, 2
    X = rng.normal(size=(n, D)) * 2
    X[rng.random((n, D)) < 0.35] = np.nan
    X[3] = np.nan  # an all-NaN row
    fam = make_family(rng, K, D, ct)
    covs = fam.full_covariances()
    W = rng.random((n, K))
    W /= W.sum(axis=1, keepdims=True)  # the family's contract (tied statistics rely on it)
    ref_lp = np.zeros((n, K))
    ref_fill = X.copy()
    for i, x in enumerate(X):
        if np.isnan(x).all():
            ref_fill[i] = W[i] @ fam.means_
            continue
        fill = np.zeros(D)
        for k in range(K):
            ref_lp[i, k], xhat, _ = ref_condition(x, fam.means_[k], covs[k])
            fill += W[i, k] * xhat
        gaps = np.isnan(x)
        ref_fill[i, gaps] = fill[gaps]
    nk, S, Q = ref_stats(X, W, fam)
    for grouped in (False, True):
        fam.grouped = grouped
        np.testing.assert_allclose(fam.log_prob(X), ref_lp, rtol=1e-11, atol=1e-11)
        got = fam.accumulate(X, W)
        for a, b in zip(got, (nk, S, Q)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(fam.fill(X, W), ref_fill, rtol=1e-11, atol=1e-11)


def test_mixture_estep_matches_reference(kernel_route):
    rng = np.random.default_rng(3)
    n, D, K = 200, 4, 3
    X = rng.normal(size=(n, D))
    X[rng.random((n, D)) < 0.3] = np.nan
    fam = make_family(rng, K, D, "full")
    logw = np.log(np.array([0.2, 0.5, 0.3]))
    lp = np.array(
        [
            [ref_condition(x, fam.means_[k], fam.full_covariances()[k])[0] for k in range(K)]
            for x in X
        ]
    )
    lp[np.isnan(X).all(axis=1)] = 0.0
    a = lp + logw
    ll_rows = np.logaddexp.reduce(a, axis=1)
    resp = np.exp(a - ll_rows[:, None])
    resp[np.isnan(X).all(axis=1)] = 0.0  # all-NaN rows add nothing
    (nk, S, Q), ll = fam.mixture_e_step(X, logw)
    np.testing.assert_allclose(ll, ll_rows[~np.isnan(X).all(axis=1)].sum(), rtol=1e-12)
    for got, want in zip((nk, S, Q), ref_stats(X, resp, fam)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_pattern_factors_match_numpy(kernel_route):
    rng = np.random.default_rng(4)
    D, K = 6, 2
    P = np.linalg.inv(np.stack([random_cov(rng, D) for _ in range(K)]))
    X = rng.normal(size=(50, D))
    X[rng.random((50, D)) < 0.4] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    plan = missing_plan(X)
    Linv, Cmm, ldp = getattr(kern.pattern_factors, kernel_route)(P, plan.pat_idx, plan.pat_nmis)
    for p in range(plan.n_patterns):
        nm = plan.pat_nmis[p]
        m = plan.pat_idx[p, :nm]
        for k in range(K):
            Pmm = P[k][np.ix_(m, m)]
            L = np.linalg.cholesky(Pmm)
            np.testing.assert_allclose(Linv[p, k, :nm, :nm], np.linalg.inv(L), atol=1e-12)
            np.testing.assert_allclose(Cmm[p, k, :nm, :nm], np.linalg.inv(Pmm), atol=1e-12)
            np.testing.assert_allclose(ldp[p, k], np.linalg.slogdet(Pmm)[1], atol=1e-12)


def test_conditional_draw_matches_reference_and_has_conditional_moments(kernel_route):
    rng = np.random.default_rng(5)
    D = 3
    fam = make_family(rng, 1, D, "full")
    x = np.array([0.5, np.nan, np.nan])
    X = np.tile(x, (20000, 1))
    plan = missing_plan(X)
    U, P, _ = fam._precision_parts()
    Z = rng.standard_normal((len(X), D))
    tabs = fam._tables(plan)
    draws = getattr(kern.conditional_draw, kernel_route)(
        X, plan.partial, plan.pattern, plan.pat_idx, plan.pat_nmis, fam.means_, P, tabs,
        np.zeros(len(X), dtype=np.int64), Z,
    )  # fmt: skip
    _, xhat, C = ref_condition(x, fam.means_[0], fam.full_covariances()[0])
    m = np.isnan(x)
    L = np.linalg.cholesky(P[0][np.ix_(m, m)])
    want = xhat[m] + Z[:, :2] @ np.linalg.inv(L)  # x_m = xhat_m + L^-T z
    np.testing.assert_allclose(draws[:, m], want, atol=1e-12)
    np.testing.assert_array_equal(draws[:, 0], 0.5)
    np.testing.assert_allclose(draws[:, m].mean(axis=0), xhat[m], atol=4 * np.sqrt(C.max() / 2e4))
    np.testing.assert_allclose(np.cov(draws[:, m].T), C[np.ix_(m, m)], atol=0.02)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_grouped_and_per_row_paths_are_identical(ct):
    rng = np.random.default_rng(6)
    n, D, K = 3000, 6, 3
    X = rng.normal(size=(n, D)).astype(np.float32)
    X[rng.random((n, D)) < 0.25] = np.nan  # 64 patterns: the auto choice is grouped
    fam = make_family(rng, K, D, ct)
    plan = fam.plan(X)
    assert fam.use_grouped(plan)
    W = rng.random((n, K))
    W /= W.sum(axis=1, keepdims=True)
    comp = rng.integers(K, size=n)
    out = {}
    for grouped in (False, True):
        fam.grouped = grouped
        fam._tables_cache = None
        out[grouped] = (
            fam.log_prob(X),
            *fam.accumulate(X, W),
            fam.fill(X, W),
            *fam.mixture_e_step(X, np.log(np.full(K, 1.0 / K)))[0],
            fam.draw(X, comp, np.random.default_rng(0)),
        )
    for a, b in zip(out[False], out[True]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("D", [5, 70])  # integer keys up to 63 columns, byte strings above
def test_missing_plan_groups_rows_by_pattern(D):
    rng = np.random.default_rng(8)
    X = rng.normal(size=(300, D))
    X[rng.random(X.shape) < (0.5 if D == 5 else 0.02)] = np.nan
    X[:40] = X[40:80]  # repeated patterns
    X[7] = np.nan
    plan = missing_plan(X)
    nan = np.isnan(X)
    assert 7 in plan.empty and plan.empty.tolist() == np.flatnonzero(nan.all(axis=1)).tolist()
    assert plan.complete.tolist() == np.flatnonzero(~nan.any(axis=1)).tolist()
    assert sorted([*plan.complete, *plan.partial, *plan.empty]) == list(range(300))
    assert plan.counts.sum() == plan.partial.size
    for r, p in zip(plan.partial, plan.pattern):
        nm = plan.pat_nmis[p]
        assert np.array_equal(np.flatnonzero(nan[r]), plan.pat_idx[p, :nm])
        assert np.array_equal(np.flatnonzero(~nan[r]), plan.pat_idx[p, nm:])
    masks = {nan[r].tobytes() for r in plan.partial}
    assert len(masks) == plan.n_patterns


def test_auto_path_choice():
    rng = np.random.default_rng(7)
    fam = make_family(rng, 1, 20, "full")
    X = rng.normal(size=(2000, 20))
    X[rng.random(X.shape) < 0.2] = np.nan  # nearly every row its own pattern
    assert not fam.use_grouped(missing_plan(X))
    X2 = rng.normal(size=(2000, 20))
    X2[:1000, :5] = np.nan  # monotone: two patterns
    X2[1000:1500, 5:] = np.nan
    assert fam.use_grouped(missing_plan(X2))


@pytest.mark.parametrize("ct", ["full", "diag", "tied"])
def test_single_normal_loglik_from_summed_statistics_matches_reference(ct, kernel_route):
    # K=1: the kernel sums the rows' Mahalanobis terms from Q instead of row by row
    rng = np.random.default_rng(11)
    n, D = 300, 5
    X = rng.normal(size=(n, D)) * 2
    X[rng.random((n, D)) < 0.3] = np.nan
    X[5] = np.nan
    fam = make_family(rng, 1, D, ct)
    cov = fam.full_covariances()[0]
    want = sum(ref_condition(x, fam.means_[0], cov)[0] for x in X if not np.isnan(x).all())
    got = {}
    for grouped in (False, True):
        fam.grouped = grouped
        fam._tables_cache = None
        (nk, S, Q), got[grouped] = fam.mixture_e_step(X, np.zeros(1))
        np.testing.assert_allclose(got[grouped], want, rtol=1e-12)
        ref = ref_stats(X, np.ones((n, 1)), fam)
        for a, b in zip((nk, S, Q), ref):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    assert got[False] == got[True]


def test_available_case_covariance_matches_numpy(kernel_route):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(400, 6))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, 5] = np.nan
    X[:3, 5] = [1.0, 2.0, 4.0]  # a column seen with few others
    mean, C, cnt = getattr(kern.available_case_cov, kernel_route)(X)
    np.testing.assert_allclose(mean, np.nanmean(X, axis=0), rtol=1e-13, atol=1e-15)
    obs = ~np.isnan(X)
    Z = np.where(obs, X - mean, 0.0)
    n_pair = obs.T.astype(float) @ obs
    np.testing.assert_array_equal(cnt, n_pair)
    with np.errstate(invalid="ignore"):
        want = np.where(n_pair > 0, (Z.T @ Z) / n_pair, 0.0)
    np.testing.assert_allclose(C, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(C, C.T)


def test_available_case_start_reaches_the_same_fit_in_fewer_iterations(monkeypatch):
    import latentem.models.imputer as imputer

    rng = np.random.default_rng(13)
    X, Xm, _ = gappy(rng, 3000, 5, 0.3)  # 3000 rows >= MANY_ROWS * 5 columns: many rows
    fast = EMImputer(tol=1e-10, max_iter=2000).fit(Xm)
    monkeypatch.setattr(imputer, "MANY_ROWS", 10**9)  # the independent start
    slow = EMImputer(tol=1e-10, max_iter=2000).fit(Xm)
    assert fast.n_iter_ < slow.n_iter_
    assert np.all(np.diff(fast.history_) >= 0)
    np.testing.assert_allclose(fast.covariance_, slow.covariance_, atol=1e-5)


# ---------------------------------------------------------------------- the estimator: numbers
def test_fully_observed_gives_sample_moments_and_unchanged_output():
    rng = np.random.default_rng(10)
    X = rng.multivariate_normal([1, -2, 3], random_cov(rng, 3), size=400)
    imp = EMImputer().fit(X)
    np.testing.assert_allclose(imp.mean_, X.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(imp.covariance_, np.cov(X.T, bias=True), rtol=1e-10, atol=1e-12)
    out = imp.transform(X)
    np.testing.assert_array_equal(out, X)
    assert out is not X
    np.testing.assert_allclose(imp.fraction_missing_info_, 0.0, atol=1e-10)


def _cov_recovery_error(seed=11, check_monotone=True):
    rng = np.random.default_rng(seed)
    D = 4
    cov = np.array(
        [[2.0, 1.2, 0.6, 0.0], [1.2, 1.5, 0.5, 0.3], [0.6, 0.5, 1.0, 0.4], [0.0, 0.3, 0.4, 0.8]]
    )
    _, Xm, _ = gappy(rng, 20000, D, 0.3, cov=cov, mean=np.arange(D, dtype=float))
    imp = EMImputer(tol=1e-8, max_iter=500).fit(Xm)
    if check_monotone:
        assert np.all(np.diff(imp.history_) >= 0)
    return np.abs(imp.covariance_ - cov).max(), np.abs(imp.mean_ - np.arange(D)).max()


def test_known_covariance_recovered_at_30_percent_mcar():
    err_cov, err_mean = _cov_recovery_error()
    assert err_cov < 0.06
    assert err_mean < 0.04


def test_recovery_fails_without_the_conditional_covariance(monkeypatch):
    """The same check with the conditional covariance left out of the E-step fails."""
    monkeypatch.setattr(MissingGaussianFamily, "conditional_covariance", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the wrong E-step is not EM: its objective can decrease
        err_cov, _ = _cov_recovery_error(check_monotone=False)
    assert err_cov > 0.15  # fails the 0.06 bound above: variances are biased down


def test_history_never_decreases_and_matches_numpy_em():
    """EMImputer(n_components=1) follows the textbook EM under one normal (NumPy reference)."""
    rng = np.random.default_rng(12)
    n, D = 300, 4
    _, Xm, _ = gappy(rng, n, D, 0.25)
    Xm[5] = np.nan
    imp = EMImputer(max_iter=15, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imp.fit(Xm)
    h = imp.history_
    assert len(h) == 15 and np.all(np.diff(h) >= 0)
    # reference: start as the imputer does (observed means, diagonal observed variances,
    # then one EM step), then plain EM through S_oo
    mu, S = np.nanmean(Xm, axis=0), np.diag(np.nanvar(Xm, axis=0))
    rows = [x for x in Xm if not np.isnan(x).all()]
    hist = []
    for it in range(16):
        T1, T2, ll = np.zeros(D), np.zeros((D, D)), 0.0
        for x in rows:
            lp, xhat, C = ref_condition(x, mu, S)
            ll += lp
            T1 += xhat
            T2 += np.outer(xhat, xhat) + C
        if it > 0:
            hist.append(ll)
        m = len(rows)
        mu, S = T1 / m, T2 / m - np.outer(T1 / m, T1 / m)
    np.testing.assert_allclose(h, hist, rtol=1e-10)
    np.testing.assert_allclose(imp.mean_, mu, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(imp.covariance_, S, rtol=1e-7, atol=1e-10)


def test_squarem_reaches_the_same_fit_in_fewer_iterations():
    rng = np.random.default_rng(25)
    _, Xm, _ = gappy(rng, 1000, 6, 0.4)
    plain = EMImputer(tol=1e-10, max_iter=2000).fit(Xm)
    fast = EMImputer(tol=1e-10, max_iter=2000, accelerate="squarem").fit(Xm)
    assert fast.n_iter_ < plain.n_iter_
    assert np.all(np.diff(fast.history_) >= 0)
    np.testing.assert_allclose(fast.covariance_, plain.covariance_, atol=1e-5)
    np.testing.assert_allclose(fast.mean_, plain.mean_, atol=1e-5)


def test_fit_transform_equals_fit_then_transform():
    rng = np.random.default_rng(26)
    _, Xm, _ = gappy(rng, 400, 5, 0.3)
    df = pd.DataFrame(Xm, columns=list("abcde"))
    for data in (Xm, df):
        a = EMImputer(n_components=2, random_state=0).fit_transform(data)
        b = EMImputer(n_components=2, random_state=0).fit(data).transform(data)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_row_order_does_not_matter():
    rng = np.random.default_rng(13)
    _, Xm, _ = gappy(rng, 500, 5, 0.3)
    perm = rng.permutation(500)
    a = EMImputer(tol=1e-9, max_iter=300).fit(Xm)
    b = EMImputer(tol=1e-9, max_iter=300).fit(Xm[perm])
    np.testing.assert_allclose(a.mean_, b.mean_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.covariance_, b.covariance_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.transform(Xm)[perm], b.transform(Xm[perm]), atol=1e-7)


def test_mixture_without_gaps_equals_gaussian_mixture():
    rng = np.random.default_rng(14)
    X = np.vstack([rng.normal(0, 1, (300, 3)), rng.normal(4, 0.5, (200, 3))])
    kw = dict(tol=1e-6, max_iter=200, random_state=3, reg_covar=1e-6)
    imp = EMImputer(n_components=2, **kw).fit(X)
    gm = GaussianMixture(n_components=2, **kw).fit(X)
    np.testing.assert_allclose(imp.weights_, gm.weights_, rtol=1e-10)
    np.testing.assert_allclose(imp.means_, gm.means_, rtol=1e-10)
    np.testing.assert_allclose(imp.covariances_, gm.covariances_, rtol=1e-10)
    np.testing.assert_allclose(imp.history_, gm.history_, rtol=1e-12)


def clustered(rng, n=1500, frac=0.2):
    """Three clusters with different correlation structures: one normal cannot fit them."""
    centers = np.array([[0, 0, 0, 0], [5, -5, 5, 0], [-5, 5, 0, 5]], dtype=float)
    corr = [
        0.9 * np.ones((4, 4)) + 0.1 * np.eye(4),
        np.array([[1, -0.8, 0.6, 0], [-0.8, 1, -0.5, 0.3], [0.6, -0.5, 1, 0.2], [0, 0.3, 0.2, 1]]),
        np.array([[1, 0.8, 0, 0], [0.8, 1, 0, 0], [0, 0, 1, -0.8], [0, 0, -0.8, 1]]),
    ]
    lab = rng.integers(3, size=n)
    X = np.vstack([rng.multivariate_normal(centers[k], corr[k]) for k in lab])
    mask = rng.random(X.shape) < frac
    Xm = X.copy()
    Xm[mask] = np.nan
    return X, Xm, mask


@pytest.mark.parametrize(
    "ct, ratio", [("full", 0.7), ("tied", 0.9), ("diag", 0.9), ("spherical", 0.9)]
)
def test_mixture_with_gaps_is_monotone_and_beats_one_normal_on_clusters(ct, ratio):
    X, Xm, mask = clustered(np.random.default_rng(15))
    mix = EMImputer(n_components=3, covariance_type=ct, random_state=0, n_init=2).fit(Xm)
    assert np.all(np.diff(mix.history_) >= 0)
    one = EMImputer().fit(Xm)
    rmse = lambda imp: np.sqrt(np.mean((imp.transform(Xm) - X)[mask] ** 2))  # noqa: E731
    assert rmse(mix) < ratio * rmse(one)


def test_ridge_prior_handles_collinear_columns_and_stays_monotone():
    rng = np.random.default_rng(16)
    X = rng.normal(size=(200, 3))
    Xc = np.column_stack([X, np.full(200, 5.0)])  # a constant column
    with pytest.raises(ValueError, match="ridge > 0"):
        EMImputer().fit(Xc)
    assert np.all(np.linalg.eigvalsh(EMImputer(ridge=2.0).fit(Xc).covariance_) > 0)
    X = np.column_stack([X, X[:, 0] + X[:, 1]])  # exactly collinear
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.1] = np.nan
    imp = EMImputer(ridge=2.0).fit(Xm)
    assert np.all(np.diff(imp.objective_history_) >= 0)
    assert not np.allclose(imp.objective_history_, imp.history_)  # the prior is counted
    assert np.all(np.linalg.eigvalsh(imp.covariance_) > 0)


@pytest.mark.filterwarnings("ignore::latentem.runner.ConvergenceWarning")  # 40 rows, 15 columns
def test_ridge_auto_picks_shrinkage_when_rows_are_few():
    rng = np.random.default_rng(24)
    D = 15
    cov = 0.6 * np.ones((D, D)) + 0.4 * np.eye(D)
    X = rng.multivariate_normal(np.zeros(D), cov, size=40)  # few rows for 15 columns
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.3] = np.nan
    imp = EMImputer(ridge="auto", random_state=0).fit(Xm)
    assert len(imp.ridge_scores_) == 5 and imp.ridge_ in imp.ridge_scores_
    assert imp.ridge_ > 0
    assert imp.ridge_scores_[imp.ridge_] == min(v for r, v in imp.ridge_scores_.items() if r > 0)
    # the prior is centred on the partial variances of the maximum-likelihood fit
    pilot = EMImputer().fit(Xm)
    partial = 1.0 / np.diag(np.linalg.inv(pilot.covariance_))
    np.testing.assert_allclose(imp._model.prior_var, partial, rtol=1e-10)
    assert np.all(np.diff(imp.objective_history_) >= 0)
    # the same held-out cells every time without a random_state
    a, b = EMImputer(ridge="auto").fit(Xm), EMImputer(ridge="auto").fit(Xm)
    assert a.ridge_scores_ == b.ridge_scores_
    # many rows per column: no search, no prior
    _, big, _ = gappy(rng, 2000, 3, 0.2)
    many = EMImputer(ridge="auto").fit(big)
    assert many.ridge_ == 0.0 and many.ridge_scores_ == {}
    assert imp.get_params()["ridge"] == "auto"
    assert EMImputer(ridge=1.5).fit(Xm).ridge_ == 1.5
    with pytest.raises(ValueError, match='ridge must be a number >= 0 or "auto"'):
        EMImputer(ridge="big").fit(Xm)


def test_fraction_missing_information():
    rng = np.random.default_rng(17)
    n = 4000
    X = rng.normal(size=(n, 2))  # independent columns
    X[rng.random(n) < 0.4, 1] = np.nan
    imp = EMImputer().fit(X)
    fmi = imp.fraction_missing_info_
    assert fmi[0] < 0.01
    assert abs(fmi[1] - np.isnan(X[:, 1]).mean()) < 0.01
    # correlated columns: the other column carries part of the lost information
    Y = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=n)
    Y[rng.random(n) < 0.4, 1] = np.nan
    f2 = EMImputer().fit(Y).fraction_missing_info_[1]
    assert 0.05 < f2 < 0.3  # theory: 0.4 (1 - 0.81) / (1 - 0.4 * 0.81) = 0.11


# ---------------------------------------------------------------------- multiple imputation
def test_sample_imputations_and_rubins_rules():
    rng = np.random.default_rng(18)
    n = 1000
    X = rng.multivariate_normal([1.0, 2.0], [[1, 0.6], [0.6, 1]], size=n)
    Xm = X.copy()
    miss = rng.random(n) < 0.4
    Xm[miss, 1] = np.nan
    imp = EMImputer(random_state=0).fit(Xm)
    sets = imp.sample_imputations(Xm, n_imputations=20)
    assert len(sets) == 20
    for s in sets:
        np.testing.assert_array_equal(s[~miss], Xm[~miss])
        np.testing.assert_array_equal(s[:, 0], Xm[:, 0])
        assert not np.isnan(s).any()
    assert not np.array_equal(sets[0], sets[1])
    # draws, unlike conditional means, keep the variance of the column
    assert abs(np.var(sets[0][:, 1]) - 1.0) < 0.12
    assert np.var(imp.transform(Xm)[:, 1]) < 0.85
    # same seed, same draws
    again = imp.sample_imputations(Xm, n_imputations=2)
    np.testing.assert_array_equal(again[0], sets[0])
    # pool the mean of column 1
    est = [s[:, 1].mean() for s in sets]
    var = [s[:, 1].var(ddof=1) / n for s in sets]
    pooled = pool_estimates(est, var, dfcom=n - 1)
    lo, hi = pooled.confint()
    assert lo < 2.0 < hi
    assert pooled.between > 0
    # between-imputation variance reflects the missing information
    assert abs(pooled.fmi - imp.fraction_missing_info_[1]) < 0.2


def test_sample_imputations_mixture_and_dataframe():
    rng = np.random.default_rng(19)
    X = np.vstack([rng.normal(0, 1, (200, 3)), rng.normal(5, 1, (200, 3))])
    X[rng.random(X.shape) < 0.2] = np.nan
    df = pd.DataFrame(X, columns=["a", "b", "c"], index=np.arange(400) * 2)
    imp = EMImputer(n_components=2, random_state=1).fit(df)
    sets = imp.sample_imputations(df, n_imputations=3)
    for s in sets:
        assert isinstance(s, pd.DataFrame)
        assert s.index.equals(df.index) and list(s.columns) == ["a", "b", "c"]
        assert not s.isna().any().any()


def test_pool_estimates_formulas():
    q = np.array([[1.0, 10.0], [1.2, 11.0], [0.8, 9.0]])
    u = np.array([[0.1, 1.0], [0.12, 1.2], [0.08, 0.8]])
    p = pool_estimates(q, u)
    m = 3
    b = q.var(axis=0, ddof=1)
    t = u.mean(axis=0) + (1 + 1 / m) * b
    np.testing.assert_allclose(p.estimate, q.mean(axis=0))
    np.testing.assert_allclose(p.total, t)
    lam = (1 + 1 / m) * b / t
    np.testing.assert_allclose(p.df, (m - 1) / lam**2)
    r = (1 + 1 / m) * b / u.mean(axis=0)
    np.testing.assert_allclose(p.fmi, (r + 2 / (p.df + 3)) / (1 + r))
    # Barnard-Rubin degrees of freedom stay below the complete-data ones
    p2 = pool_estimates(q, u, dfcom=20)
    assert np.all(p2.df < 20) and np.all(p2.df < p.df)
    with pytest.raises(ValueError, match="at least 2"):
        pool_estimates([1.0], [0.1])
    with pytest.raises(ValueError, match="same shape"):
        pool_estimates([1.0, 2.0], [0.1])


# ---------------------------------------------------------------------- tables and errors
def test_dataframe_in_dataframe_out_with_index_and_text_columns():
    rng = np.random.default_rng(20)
    X, Xm, _ = gappy(rng, 100, 3, 0.2)
    df = pd.DataFrame(Xm, columns=["x", "y", "z"], index=[f"r{i}" for i in range(100)])
    df["name"] = [f"n{i}" for i in range(100)]
    df["count"] = pd.array(rng.integers(0, 5, 100), dtype="Int64")
    df.loc["r3", "count"] = pd.NA
    df = df[["name", "x", "count", "y", "z"]]
    before = df.copy()
    with pytest.raises(ValueError, match=r"non-numeric columns \['name'\]"):
        EMImputer().fit(df)
    imp = EMImputer(non_numeric="passthrough")
    out = imp.fit_transform(df)
    pd.testing.assert_frame_equal(df, before)  # input unchanged
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(df.index) and list(out.columns) == list(df.columns)
    assert out["name"].equals(df["name"])
    assert not out[["x", "count", "y", "z"]].isna().any().any()
    obs = df["x"].notna()
    np.testing.assert_array_equal(out.loc[obs, "x"], df.loc[obs, "x"])
    assert list(imp.feature_names_in_) == ["x", "count", "y", "z"]
    # a fully observed numeric column keeps its dtype
    df2 = df.copy()
    df2["k"] = np.arange(100)
    out2 = EMImputer(non_numeric="passthrough").fit_transform(df2)
    assert out2["k"].dtype == df2["k"].dtype
    with pytest.raises(ValueError, match="columns"):
        imp.transform(df[["x", "y", "z"]])


def test_numpy_input_not_modified_and_dtype_kept():
    rng = np.random.default_rng(21)
    _, Xm, _ = gappy(rng, 80, 3, 0.2)
    X32 = Xm.astype(np.float32)
    copy32 = X32.copy()
    out = EMImputer().fit_transform(X32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(X32, copy32)
    assert not np.isnan(out).any()
    # an all-NaN row gets the fitted mean
    imp = EMImputer().fit(Xm)
    row = imp.transform(np.full((1, 3), np.nan))
    np.testing.assert_allclose(row[0], imp.mean_)


def test_clear_errors():
    rng = np.random.default_rng(22)
    X = rng.normal(size=(50, 3))
    Xm = X.copy()
    Xm[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of X is entirely missing"):
        EMImputer().fit(Xm)
    df = pd.DataFrame(Xm, columns=["age", "height", "weight"])
    with pytest.raises(ValueError, match="column 'height' of X is entirely missing"):
        EMImputer().fit(df)
    Xi = X.copy()
    Xi[4, 2] = np.inf
    with pytest.raises(ValueError, match="inf in column 2"):
        EMImputer().fit(Xi)
    with pytest.raises(ValueError, match="at least 2 rows"):
        EMImputer().fit(X[:1])
    X1 = X.copy()
    X1[1:, 0] = np.nan
    with pytest.raises(ValueError, match="single observed value"):
        EMImputer().fit(X1)
    with pytest.raises(ValueError, match="non_numeric"):
        EMImputer(non_numeric="drop").fit(X)
    with pytest.raises(AttributeError, match="not fitted"):
        EMImputer().transform(X)
    with pytest.raises(ValueError, match="features"):
        EMImputer().fit(X).transform(X[:, :2])
    with pytest.raises(ValueError, match="numeric"):
        EMImputer().fit(np.array([["a", "b"], ["c", "d"]]))


def test_scikit_learn_pipeline_clone_and_params():
    import sklearn
    from sklearn.base import clone
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(23)
    X, Xm, _ = gappy(rng, 300, 4, 0.2)
    y = X @ np.array([1.0, -1.0, 0.5, 2.0]) + rng.normal(scale=0.1, size=300)
    pipe = make_pipeline(EMImputer(ridge=1.0), LinearRegression())
    pipe.fit(Xm, y)
    assert pipe.score(Xm, y) > 0.8
    assert cross_val_score(pipe, Xm, y, cv=3).mean() > 0.8
    c = clone(EMImputer(n_components=2, tol=1e-3))
    assert c.get_params()["n_components"] == 2 and c.get_params()["tol"] == 1e-3
    assert "emimputer__ridge" in pipe.get_params()
    pipe.set_params(emimputer__ridge=0.0)
    assert pipe.named_steps["emimputer"].ridge == 0.0
    assert sklearn is not None


def test_auto_ridge_with_rows_that_are_entirely_missing():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(200, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[[3, 50]] = np.nan  # rows with nothing observed
    filled = EMImputer(ridge="auto", random_state=0).fit_transform(X)
    assert not np.isnan(filled).any()


# ------------------------------------------------------------ shrunk regressions and bounds
def ref_regression_fill(X, means, B, W):
    """Per row and component: solve (I - B_mm) y = B_mo (x_o - mu_o) with numpy."""
    out = X.copy()
    for i, x in enumerate(X):
        m = np.isnan(x)
        if not m.any():
            continue
        o = ~m
        out[i, m] = 0.0
        for k in range(means.shape[0]):
            A = np.eye(m.sum()) - B[k][np.ix_(m, m)]
            y = np.linalg.solve(A, B[k][np.ix_(m, o)] @ (x[o] - means[k, o]))
            out[i, m] += W[i, k] * (means[k, m] + y)
    return out


@pytest.mark.parametrize("K", [1, 3])
def test_regression_fill_kernel_matches_numpy(K, kernel_route):
    rng = np.random.default_rng(40)
    D = 6
    _, Xm, _ = gappy(rng, 300, D, 0.4)
    Xm[rng.random(300) < 0.05] = np.nan  # some empty rows: not the kernel's job
    plan = missing_plan(Xm)
    B = rng.normal(scale=0.2, size=(K, D, D))
    B[:, np.arange(D), np.arange(D)] = 0.0
    fam = make_family(rng, K, D, "full")
    W = rng.dirichlet(np.ones(K), size=300)
    rows = plan.partial
    head = (Xm, rows, plan.pattern, plan.pat_idx, plan.pat_nmis, fam.means_)
    P, tabs = fam._precision_parts()[1], fam._tables(plan)
    got = getattr(kern.conditional_fill, kernel_route)(*head, P, tabs, W[rows], B)
    ref = ref_regression_fill(Xm[rows], fam.means_, B, W[rows])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # a singular system: that row and component keep the conditional mean
    fam1 = make_family(rng, 1, 3, "full")
    one = np.array([[np.nan, np.nan, 1.0], [0.3, np.nan, 1.0]])
    Bs = np.zeros((1, 3, 3))
    Bs[0, 0, 1] = Bs[0, 1, 0] = 1.0  # I - B singular on the gaps {0, 1}
    p1 = missing_plan(one)
    head1 = (one, p1.partial, p1.pattern, p1.pat_idx, p1.pat_nmis, fam1.means_)
    P1, tabs1 = fam1._precision_parts()[1], fam1._tables(p1)
    out = getattr(kern.conditional_fill, kernel_route)(*head1, P1, tabs1, np.ones((2, 1)), Bs)
    exact = getattr(kern.conditional_fill, kernel_route)(
        *head1, P1, tabs1, np.ones((2, 1)), np.zeros((0, 3, 3))
    )
    np.testing.assert_allclose(out[0], exact[0], atol=1e-12)
    regressed = ref_regression_fill(one[1:], fam1.means_, Bs, np.ones((1, 1)))
    np.testing.assert_allclose(out[1], regressed[0], atol=1e-12)


@pytest.mark.parametrize("ct", ["full", "diag"])
def test_exact_regressions_give_the_conditional_mean(ct, kernel_route):
    """B = I - diag(P)^-1 P (shrinkage 0) fills exactly the conditional means."""
    from latentem.families.gaussian_missing import bayesian_ridge_regressions

    rng = np.random.default_rng(41)
    fam = make_family(rng, 2, 5, ct)
    _, Xm, _ = gappy(rng, 400, 5, 0.35)
    W = rng.dirichlet(np.ones(2), size=400)
    C = fam.full_covariances()
    P = np.linalg.inv(C)
    B = np.stack([np.eye(5) - P[k] / np.diag(P[k])[:, None] for k in range(2)])
    B0 = np.stack([bayesian_ridge_regressions(C[k], np.full(5, 400), 0.0)[0] for k in range(2)])
    np.testing.assert_allclose(B0, B, atol=1e-12)
    np.testing.assert_allclose(fam.fill(Xm, W, coef=B0), fam.fill(Xm, W), atol=1e-10)


def test_evidence_ridge_matches_scikit_learn_bayesian_ridge():
    """On complete data the per-column regressions are scikit-learn's BayesianRidge
    fitted to standardised columns."""
    from sklearn.linear_model import BayesianRidge

    from latentem.families.gaussian_missing import bayesian_ridge_regressions

    rng = np.random.default_rng(42)
    n, D = 60, 7  # few rows, so the evidence shrinks clearly
    X = rng.multivariate_normal(np.zeros(D), random_cov(rng, D), size=n) * rng.uniform(1, 5, D)
    B, ridges = bayesian_ridge_regressions(np.cov(X.T, bias=True), np.full(D, n))
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    for j in range(D):
        o = np.r_[0:j, j + 1 : D]
        br = BayesianRidge(tol=1e-14, max_iter=5000).fit(Z[:, o], Z[:, j])
        sd = X.std(axis=0)
        np.testing.assert_allclose(B[j, o], br.coef_ * sd[j] / sd[o], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(ridges[j], br.lambda_ / br.alpha_ / n, rtol=1e-6)
    assert (ridges > 0).all() and (np.diag(B) == 0).all()


def test_shrinkage_settings():
    rng = np.random.default_rng(43)
    _, Xm, _ = gappy(rng, 150, 6, 0.3)
    imp = EMImputer().fit(Xm)
    assert imp.shrinkage_.shape == (1, 6) and (imp.shrinkage_ > 0).all()
    auto = imp.transform(Xm)
    exact = imp.set_params(shrinkage=None).transform(Xm)
    assert imp.shrinkage_ is None
    np.testing.assert_allclose(imp.set_params(shrinkage=0.0).transform(Xm), exact, atol=1e-10)
    assert np.abs(auto - exact).max() > 1e-3
    strong = imp.set_params(shrinkage=1e6).transform(Xm)  # no regression left: the means
    gaps = np.isnan(Xm)
    np.testing.assert_allclose(strong[gaps], np.broadcast_to(imp.mean_, Xm.shape)[gaps], atol=1e-4)
    # many rows: the evidence asks for almost no shrinkage
    _, big, _ = gappy(rng, 20000, 6, 0.3)
    imp = EMImputer().fit(big)
    assert imp.shrinkage_.max() < 1e-2
    exact = imp.set_params(shrinkage=None).transform(big)
    np.testing.assert_allclose(imp.set_params(shrinkage="auto").transform(big), exact, atol=0.05)
    for bad in (-1.0, "strong", True):
        with pytest.raises(ValueError, match="shrinkage must be"):
            EMImputer(shrinkage=bad).fit(Xm)
        with pytest.raises(ValueError, match="shrinkage must be"):
            imp.set_params(shrinkage=bad).transform(Xm)


def test_shrinkage_imputes_small_real_tables_better():
    """diabetes (442 x 10, 10% hidden): the evidence-shrunk fill beats the conditional
    mean of the maximum-likelihood fit on every one of three draws."""
    from sklearn.datasets import load_diabetes

    X = load_diabetes().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        gaps = rng.random(X.shape) < 0.1
        Xm = np.where(gaps, np.nan, X)
        imp = EMImputer(bounds=None).fit(Xm)
        shrunk = imp.transform(Xm)
        exact = imp.set_params(shrinkage=None).transform(Xm)
        assert np.mean((shrunk - X)[gaps] ** 2) < np.mean((exact - X)[gaps] ** 2)


def test_bounds():
    rng = np.random.default_rng(44)
    X, Xm, _ = gappy(rng, 200, 3, 0.3)
    Xm[0] = [np.nan, 40.0, np.nan]  # predicts far outside the other rows
    imp = EMImputer(bounds=None).fit(Xm)
    free = imp.transform(Xm)
    np.testing.assert_array_equal(imp.data_min_, np.nanmin(Xm, axis=0))
    np.testing.assert_array_equal(imp.data_max_, np.nanmax(Xm, axis=0))
    clipped = imp.set_params(bounds="observed").transform(Xm)
    gaps = np.isnan(Xm)
    assert (clipped[gaps] >= np.broadcast_to(imp.data_min_, Xm.shape)[gaps]).all()
    assert (clipped[gaps] <= np.broadcast_to(imp.data_max_, Xm.shape)[gaps]).all()
    np.testing.assert_array_equal(
        clipped, np.where(gaps, np.clip(free, imp.data_min_, imp.data_max_), free)
    )
    # user bounds: one pair for all columns or one per column; observed cells untouched
    out = imp.set_params(bounds=(-1.0, [1.0, 2.0, 3.0])).transform(Xm)
    assert out[0, 1] == 40.0
    assert (out[gaps] >= -1).all() and (out[:, 0][gaps[:, 0]] <= 1).all()
    for bad in ("clip", (1.0, 0.0), (0.0, np.nan), 3.0):
        with pytest.raises(ValueError, match="bounds"):
            EMImputer(bounds=bad).fit(Xm)
    # bounds for another number of columns: refused before the fitted state changes
    fitted = EMImputer(bounds=(-9.0, [9.0, 9.0, 9.0])).fit(Xm)
    before = fitted.transform(Xm)
    with pytest.raises(ValueError, match="bounds"):
        fitted.fit(Xm[:, :2])
    assert fitted.n_features_in_ == 3
    np.testing.assert_array_equal(fitted.transform(Xm), before)


def test_default_fill_is_not_bounded_and_observed_bounds_bias_missing_at_random():
    """Values hidden *because* they are large lie beyond the observed range: the default
    fill reaches them, bounds="observed" cannot (as documented)."""
    rng = np.random.default_rng(46)
    x1 = rng.normal(size=2000)
    X = np.column_stack([x1, x1 + 0.3 * rng.normal(size=2000)])
    Xm = X.copy()
    Xm[x1 > 1, 1] = np.nan  # missing at random: depends on the observed x1
    hidden = np.isnan(Xm)
    imp = EMImputer().fit(Xm)
    free = imp.transform(Xm)
    assert free[hidden].max() > imp.data_max_[1] + 1
    clipped = imp.set_params(bounds="observed").transform(Xm)
    assert clipped[hidden].max() == imp.data_max_[1]
    err = lambda F: np.sqrt(np.mean((F - X)[hidden] ** 2))  # noqa: E731
    assert err(free) < 0.4 < err(clipped)


def test_fill_keeps_the_conditional_mean_where_the_regressions_are_singular(kernel_route):
    rng = np.random.default_rng(47)
    fam = make_family(rng, 1, 3, "full")
    X = np.array([[np.nan, np.nan, 1.0], [np.nan, 0.5, 1.0]])
    coef = np.zeros((1, 3, 3))
    coef[0, 0, 1] = coef[0, 1, 0] = 1.0  # I - B singular on the gaps {0, 1}
    coef[0, 0, 2] = 0.25
    out = fam.fill(X, np.ones((2, 1)), coef=coef)
    np.testing.assert_allclose(out[0], fam.fill(X, np.ones((2, 1)))[0], atol=1e-12)
    mu = fam.means_[0]
    expected = mu[0] + 1.0 * (0.5 - mu[1]) + 0.25 * (1.0 - mu[2])  # row 1: one gap
    np.testing.assert_allclose(out[1], [expected, 0.5, 1.0], atol=1e-12)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_mixture_fill_with_zero_shrinkage_is_the_conditional_mean(ct, kernel_route):
    rng = np.random.default_rng(48)
    _, Xm, _ = gappy(rng, 400, 4, 0.3)
    imp = EMImputer(2, covariance_type=ct, random_state=0).fit(Xm)
    assert imp.shrinkage_.shape == (2, 4) and np.isfinite(imp.transform(Xm)).all()
    exact = imp.set_params(shrinkage=None).transform(Xm)
    np.testing.assert_allclose(imp.set_params(shrinkage=0.0).transform(Xm), exact, atol=1e-10)
    if ct == "tied":  # one covariance from all rows: one set of ridges
        imp.set_params(shrinkage="auto")
        np.testing.assert_allclose(imp.shrinkage_[0], imp.shrinkage_[1])


def test_shrinkage_follows_refits_and_streams():
    rng = np.random.default_rng(49)
    _, Xm, _ = gappy(rng, 200, 4, 0.3)
    imp = EMImputer().fit(Xm[:60])
    few = imp.shrinkage_.copy()
    imp.fit(Xm)  # more rows: less shrinkage
    assert (imp.shrinkage_ < few).all()
    np.testing.assert_allclose(imp.shrinkage_, EMImputer().fit(Xm).shrinkage_)
    stream = EMImputer().partial_fit(Xm[:60])
    first = stream.shrinkage_.copy()
    stream.partial_fit(Xm[60:])
    np.testing.assert_array_equal(stream.n_observed_, (~np.isnan(Xm)).sum(axis=0))
    assert (stream.shrinkage_ < first).all()


def test_sample_imputations_respect_bounds():
    rng = np.random.default_rng(45)
    _, Xm, _ = gappy(rng, 300, 3, 0.3)
    free = EMImputer(bounds=None, random_state=0).fit(Xm).sample_imputations(Xm, 3)
    gaps = np.isnan(Xm)
    low, high = np.nanmin(Xm, axis=0), np.nanmax(Xm, axis=0)
    outside = [((F < low) | (F > high))[gaps].sum() for F in free]
    assert sum(outside) > 0  # unbounded draws do leave the observed range sometimes
    imp = EMImputer(bounds=(-0.5, 0.5), random_state=0).fit(Xm)
    for F in imp.sample_imputations(Xm, 3):
        assert (F[gaps] >= -0.5).all() and (F[gaps] <= 0.5).all()
        np.testing.assert_array_equal(F[~gaps], Xm[~gaps])
        # a joint truncated draw, not a clip: few values sit exactly on a bound
        assert np.isin(F[gaps], [-0.5, 0.5]).mean() < 0.01
