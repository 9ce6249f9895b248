"""GaussianMixture against scikit-learn from identical starting parameters, and edge cases."""

import warnings

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGM

from latentem.models.gaussian_mixture import GaussianMixture
from latentem.runner import ConvergenceWarning

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(1)
    return np.vstack(
        [
            rng.normal(0, 1, (300, 3)),
            rng.normal(4, 0.5, (200, 3)),
            rng.normal([0, 5, 0], 1.5, (250, 3)),
        ]
    )


def _pair(X, ct, K=3, max_iter=20):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s0 = SkGM(K, covariance_type=ct, max_iter=1, random_state=0).fit(X)
        kw = dict(
            covariance_type=ct,
            weights_init=s0.weights_,
            means_init=s0.means_,
            precisions_init=s0.precisions_,
            max_iter=max_iter,
            tol=0,
        )
        sk = SkGM(K, **kw).fit(X)
        ours = GaussianMixture(K, **kw).fit(X)
    return sk, ours


@pytest.mark.parametrize("ct", COV_TYPES)
def test_same_em_path_as_sklearn(blobs, ct):
    sk, ours = _pair(blobs, ct)
    assert ours.n_iter_ == sk.n_iter_ == 20
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        a, b = getattr(ours, name), getattr(sk, name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=name)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, rel=1e-9)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_methods_match_sklearn(blobs, ct):
    sk, ours = _pair(blobs, ct)
    rng = np.random.default_rng(7)
    Xt = rng.normal(2, 3, size=(123, 3))
    np.testing.assert_allclose(ours.score_samples(Xt), sk.score_samples(Xt), rtol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(Xt), sk.predict_proba(Xt), atol=1e-8)
    np.testing.assert_array_equal(ours.predict(Xt), sk.predict(Xt))
    assert ours.score(Xt) == pytest.approx(sk.score(Xt), rel=1e-9)
    assert ours.bic(Xt) == pytest.approx(sk.bic(Xt), rel=1e-9)
    assert ours.aic(Xt) == pytest.approx(sk.aic(Xt), rel=1e-9)
    assert ours.n_parameters() == sk._n_parameters()
    Xs, ys = ours.sample(20000)
    assert Xs.shape == (20000, 3) and ys.shape == (20000,)
    assert np.all(np.diff(ys) >= 0)  # grouped by component, like scikit-learn
    np.testing.assert_allclose(np.bincount(ys, minlength=3) / 20000, ours.weights_, atol=0.02)
    for k in range(3):
        np.testing.assert_allclose(Xs[ys == k].mean(axis=0), ours.means_[k], atol=0.1)


@pytest.mark.parametrize("ct", COV_TYPES)
def test_history_never_decreases(blobs, ct):
    for init in ("kmeans++", "random"):
        gm = GaussianMixture(
            3, covariance_type=ct, init_params=init, tol=0, max_iter=60, random_state=3
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm.fit(blobs)
        h = gm.history_
        # tol=0 stops only when the likelihood stops changing (or at max_iter)
        assert len(h) >= 60 or h[-1] == h[-2], len(h)
        assert len(h) >= 10
        noise = 1e-12 * (np.abs(h[-1]) + len(blobs))  # rounding at convergence
        assert np.all(np.diff(h) >= -noise), np.diff(h).min()
        assert h[-1] - h[0] > 0


def test_recovers_known_mixture():
    rng = np.random.default_rng(0)
    w = np.array([0.5, 0.3, 0.2])
    mu = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 7.0]])
    covs = np.array(
        [[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]], [[1.5, -0.7], [-0.7, 1.0]]]
    )
    counts = rng.multinomial(20000, w)
    X = np.vstack([rng.multivariate_normal(mu[k], covs[k], c) for k, c in enumerate(counts)])
    gm = GaussianMixture(3, random_state=0, n_init=2).fit(X)
    order = np.argsort(gm.means_[:, 0] + 10 * gm.means_[:, 1])
    ref = np.argsort(mu[:, 0] + 10 * mu[:, 1])
    np.testing.assert_allclose(gm.weights_[order], w[ref], atol=0.02)
    np.testing.assert_allclose(gm.means_[order], mu[ref], atol=0.06)
    np.testing.assert_allclose(gm.covariances_[order], covs[ref], atol=0.1)
    assert gm.converged_


@pytest.mark.parametrize("init", ["kmeans++", "kmeans", "random", "random_from_data"])
def test_init_methods_reach_a_good_fit(blobs, init):
    gm = GaussianMixture(3, init_params=init, random_state=0, max_iter=300).fit(blobs)
    sk = SkGM(3, random_state=0).fit(blobs)
    assert gm.lower_bound_ >= sk.lower_bound_ - 1e-3
    assert gm.init_params == init


def test_same_seed_same_fit(blobs):
    a = GaussianMixture(3, random_state=11, n_init=2).fit(blobs)
    b = GaussianMixture(3, random_state=11, n_init=2).fit(blobs)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.history_, b.history_)


def test_squarem_reaches_same_optimum(blobs):
    kw = dict(random_state=0, tol=1e-10, max_iter=2000, covariance_type="full")
    plain = GaussianMixture(3, **kw).fit(blobs)
    fast = GaussianMixture(3, accelerate="squarem", **kw).fit(blobs)
    assert fast.converged_ and plain.converged_
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-7)
    np.testing.assert_allclose(
        np.sort(fast.means_, axis=0), np.sort(plain.means_, axis=0), atol=1e-3
    )
    assert np.all(np.diff(fast.history_) >= -1e-9 * abs(fast.history_[-1]))


def test_param_vector_roundtrip_and_infeasible(blobs):
    gm = GaussianMixture(3, random_state=0).fit(blobs)
    theta = gm.get_param_vector()
    means = gm.means_.copy()
    bad_w = theta.copy()
    bad_w[0] = -0.1
    assert gm.set_param_vector(bad_w) is False
    bad_cov = theta.copy()
    bad_cov[3 + 9] = -1.0  # first diagonal entry of the first covariance
    assert gm.set_param_vector(bad_cov) is False
    np.testing.assert_array_equal(gm.means_, means)  # unchanged
    assert gm.set_param_vector(theta) is True
    np.testing.assert_allclose(gm.get_param_vector(), theta)


def test_float32_input(blobs):
    X32 = blobs.astype(np.float32)
    a = GaussianMixture(3, random_state=0, tol=0, max_iter=30)
    b = GaussianMixture(3, random_state=0, tol=0, max_iter=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X32)
        b.fit(X32.astype(np.float64))
    # computed in float64 inside (the same steps as on float64 data), shown in
    # float32 as scikit-learn does
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(a, name).dtype == np.float32, name
        assert getattr(b, name).dtype == np.float64, name
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-6)
    assert a.score_samples(X32).dtype == np.float32 and a.predict_proba(X32).dtype == np.float32
    np.testing.assert_allclose(a.score_samples(X32), b.score_samples(X32), rtol=1e-6)
    assert a.sample(5)[0].dtype == np.float32


def test_one_dimensional_input_is_refused_as_scikit_learn_does():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-3, 1, 400), rng.normal(3, 1, 400)])
    with pytest.raises(
        ValueError, match=r"Expected 2D array, got 1D array instead.*reshape\(-1, 1\)"
    ):
        GaussianMixture(2, random_state=0).fit(x)
    gm = GaussianMixture(2, random_state=0).fit(x.reshape(-1, 1))
    np.testing.assert_allclose(np.sort(gm.means_.ravel()), [-3, 3], atol=0.2)
    with pytest.raises(ValueError, match="Expected 2D array"):
        gm.predict(x)


def test_input_not_modified(blobs):
    X = blobs.copy()
    GaussianMixture(3, random_state=0, covariance_type="tied").fit(X).predict_proba(X)
    np.testing.assert_array_equal(X, blobs)


def test_bad_inputs(blobs):
    with pytest.raises(ValueError, match="n_components=5 is larger than the number of samples"):
        GaussianMixture(5).fit(blobs[:3])
    X = blobs.copy()
    X[4, 1] = np.inf
    with pytest.raises(ValueError, match="inf"):
        GaussianMixture(2).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        GaussianMixture(2).fit(blobs[None])
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianMixture(2, covariance_type="ful").fit(blobs)
    with pytest.raises(ValueError, match="init_params must be one of"):
        GaussianMixture(2, init_params="kmeans+").fit(blobs)
    with pytest.raises(ValueError, match="weights_init must sum to 1"):
        GaussianMixture(2, weights_init=[0.5, 0.6]).fit(blobs)
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, means_init=np.zeros((3, 3))).fit(blobs)
    gm = GaussianMixture(2, random_state=0).fit(blobs)
    with pytest.raises(ValueError, match="features"):
        gm.predict(blobs[:, :2])
    with pytest.raises(AttributeError, match="not fitted"):  # NotFittedError is one
        GaussianMixture(2).predict(blobs)


def test_not_positive_definite_suggests_reg_covar():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 1))
    X = np.hstack([x, 2 * x])  # perfectly collinear columns
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(1, reg_covar=0.0).fit(X)
    GaussianMixture(1).fit(X)  # the default reg_covar handles it


def test_duplicated_points_and_constant_columns():
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(5, 2)), 40, axis=0)
    X = np.hstack([X, np.full((len(X), 1), 3.0)])  # a constant column
    for ct in COV_TYPES:
        gm = GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
        assert np.all(np.isfinite(gm.means_))
        assert np.all(np.isfinite(gm.score_samples(X)))
        np.testing.assert_allclose(gm.means_[:, 2], 3.0)


def test_emptied_component_is_reseeded():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(8, 1, (300, 2))])
    means = np.array([[0.0, 0.0], [8.0, 8.0], [1e4, 1e4]])  # the third gets no points
    gm = GaussianMixture(
        3,
        means_init=means,
        weights_init=[0.4, 0.4, 0.2],
        precisions_init=np.ones(3),
        covariance_type="spherical",
        max_iter=50,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
    assert np.all(gm.weights_ > 0.05)
    assert np.all(np.abs(gm.means_) < 20)  # the far component came back to the data


def test_warm_start_continues(blobs):
    gm = GaussianMixture(3, random_state=0, max_iter=2, tol=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(blobs)
        first = gm.history_[-1]
        gm.fit(blobs)
    assert gm.history_[0] >= first


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    gm = GaussianMixture(4, covariance_type="diag", reg_covar=1e-4)
    c = clone(gm)
    assert c.get_params() == gm.get_params()
    assert "covariance_type='diag'" in repr(gm)


def test_gaps_are_marginalised_exactly():
    """With NaN cells, a row's density is the mixture of its observed margins (a NumPy
    reference with scipy), and EM on such data never lowers the likelihood."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3)) + np.repeat([[0.0, 0.0, 0.0], [4.0, 3.0, -2.0]], 100, axis=0)
    X[rng.random(X.shape) < 0.25] = np.nan
    X[7] = [np.nan, 1.0, np.nan]
    gm = GaussianMixture(2, covariance_type="full", random_state=0, tol=0, max_iter=30).fit(X)
    assert np.all(np.diff(gm.history_) >= -1e-9)
    ref = np.zeros(len(X))
    for i, row in enumerate(X):
        seen = ~np.isnan(row)
        if not seen.any():
            continue  # a row with nothing observed has density 1
        dens = 0.0
        for k in range(2):
            cov = gm.covariances_[k][np.ix_(seen, seen)]
            dens += gm.weights_[k] * multivariate_normal(gm.means_[k][seen], cov).pdf(row[seen])
        ref[i] = np.log(dens)
    np.testing.assert_allclose(gm.score_samples(X), ref, rtol=1e-10)
    proba = gm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(gm.predict(X), proba.argmax(axis=1))
    # complete rows score as before, through the fused kernel
    full = ~np.isnan(X).any(axis=1)
    np.testing.assert_allclose(gm.score_samples(X[full]), ref[full], rtol=1e-10)


def test_an_entirely_missing_column_is_an_error():
    X = np.random.default_rng(0).normal(size=(20, 2))
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 of X is entirely missing"):
        GaussianMixture(2).fit(X)
