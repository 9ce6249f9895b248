"""sample_weight (a weight of 2 fits as the row twice) and semi-supervised labels for the
mixture estimators."""

import copy
import warnings

import numpy as np
import pytest

from latentem import GaussianMixture, Mixture, PoissonMixture
from latentem.families import StudentTFamily


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tol=0 runs end at max_iter
        yield


def _blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n, 2)), rng.normal(4, 1, (n, 2))])
    return X[rng.permutation(len(X))]


def _monotone(history):
    h = np.asarray(history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h).max()), np.diff(h).min()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_weight_two_is_the_row_twice_for_gaussian_mixtures(covariance_type):
    X = _blobs()
    w = np.random.default_rng(1).integers(0, 4, len(X))
    precisions = {
        "full": np.stack([np.eye(2)] * 2),
        "tied": np.eye(2),
        "diag": np.ones((2, 2)),
        "spherical": np.ones(2),
    }[covariance_type]
    start = dict(
        means_init=[[0.5, 0.5], [3.5, 3.5]],
        weights_init=[0.5, 0.5],
        precisions_init=precisions,
        tol=0,
        max_iter=30,
    )
    weighted = GaussianMixture(2, covariance_type=covariance_type, **start)
    weighted.fit(X, sample_weight=w)
    repeated = GaussianMixture(2, covariance_type=covariance_type, **start)
    repeated.fit(np.repeat(X, w, axis=0))
    # the weighted fit runs densities-then-sums, the repeated one the fused kernel
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-7)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-7)
    n = min(len(weighted.history_), len(repeated.history_))  # tol=0 stops on rounding
    np.testing.assert_allclose(weighted.history_[:n], repeated.history_[:n], rtol=1e-9)
    _monotone(weighted.history_)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PoissonMixture(2, init_params="family", random_state=3, tol=0, max_iter=30),
        lambda: Mixture(
            2,
            emission=StudentTFamily(2, "diag"),
            init_params="family",
            random_state=3,
            tol=0,
            max_iter=20,
        ),
    ],
    ids=["poisson", "student-t"],
)
def test_weight_two_is_the_row_twice_for_any_family(make):
    rng = np.random.default_rng(2)
    if "Poisson" in type(make()).__name__:
        X = rng.poisson(np.where(rng.random(200) < 0.5, 2.0, 9.0))[:, None].astype(float)
    else:
        X = _blobs(2, 100)
    w = rng.integers(1, 4, len(X))
    start = make().fit(X)  # one set of starting parameters for both fits
    weighted, repeated = copy.deepcopy(start), copy.deepcopy(start)
    for model in (weighted, repeated):
        model.set_params(warm_start=True, max_iter=20)
    weighted.fit(X, sample_weight=w)
    repeated.fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(weighted.history_, repeated.history_, rtol=1e-8)
    np.testing.assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-8)
    _monotone(weighted.history_)


def test_weight_zero_leaves_a_row_out():
    X = _blobs(4)
    far = np.vstack([X, [[1e3, 1e3]]])
    start = dict(
        means_init=[[0.5, 0.5], [3.5, 3.5]],
        weights_init=[0.5, 0.5],
        precisions_init=np.stack([np.eye(2)] * 2),
        tol=0,
        max_iter=20,
    )
    a = GaussianMixture(2, **start).fit(far, sample_weight=np.r_[np.ones(len(X)), 0.0])
    b = GaussianMixture(2, **start).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-7)


def test_labelled_rows_keep_their_component():
    X = _blobs(5)
    truth = (X.sum(axis=1) > 4).astype(int)
    labels = np.full(len(X), -1)
    known = np.random.default_rng(6).random(len(X)) < 0.1
    labels[known] = 1 - truth[known]  # component 0 is the upper blob here, by the labels
    gm = GaussianMixture(2, random_state=0).fit(X, labels=labels)
    assert gm.means_[0].sum() > gm.means_[1].sum()  # the components follow the labels
    _monotone(gm.history_)
    agree = np.mean(gm.predict(X) == 1 - truth)
    assert agree > 0.95
    pm = PoissonMixture(2, random_state=0)
    counts = np.random.default_rng(7).poisson(np.where(truth == 1, 10.0, 1.0))[:, None]
    pm.fit(counts, labels=np.where(known, truth, -1))
    assert pm.emission.lambdas_[1, 0] > pm.emission.lambdas_[0, 0]
    _monotone(pm.history_)


def test_labels_change_the_fit_only_through_known_rows():
    X = _blobs(8)
    none_known = GaussianMixture(2, random_state=1, tol=0, max_iter=15).fit(
        X, labels=np.full(len(X), -1)
    )
    plain = GaussianMixture(2, random_state=1, tol=0, max_iter=15).fit(X)
    np.testing.assert_allclose(none_known.history_, plain.history_, rtol=1e-9)
    np.testing.assert_allclose(none_known.means_, plain.means_, rtol=1e-8)


def test_bad_weights_and_labels_are_clear_errors():
    X = _blobs(9, 20)
    gm = GaussianMixture(2)
    for bad, match in [
        (np.ones(3), "one weight per row"),
        (-np.ones(len(X)), "finite and >= 0"),
        (np.zeros(len(X)), "every sample weight is zero"),
        (np.array(["a"] * len(X)), "numbers"),
    ]:
        with pytest.raises(ValueError, match=match):
            gm.fit(X, sample_weight=bad)
    with pytest.raises(ValueError, match="-1 \\(unknown\\) or a component 0..1"):
        gm.fit(X, labels=np.full(len(X), 2))
    with pytest.raises(ValueError, match="whole numbers"):
        gm.fit(X, labels=np.full(len(X), 0.5))
    w = np.ones(len(X))
    before = w.copy()
    gm.fit(X, sample_weight=w)
    np.testing.assert_array_equal(w, before)
    assert "_fit_rows" not in gm.__dict__  # nothing of the fit's rows stays on the model


# ------------------------------------------------------------------ HMMs: per sequence
def _hmm_start(model):
    model.startprob_ = np.array([0.6, 0.4])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    return model


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_sequence_weight_two_is_the_sequence_twice(kind):
    from latentem import CategoricalHMM, GaussianHMM

    rng = np.random.default_rng(10)
    lengths = np.array([40, 25, 60, 30])
    if kind == "gaussian":
        X = rng.normal(np.where(rng.random(lengths.sum()) < 0.5, -2.0, 2.0), 1.0)[:, None]

        def make():
            m = _hmm_start(GaussianHMM(2, init_params="", n_iter=15, tol=0))
            m.means_ = np.array([[-1.0], [1.0]])
            m.covars_ = np.array([[1.0], [1.0]])
            return m
    else:
        X = rng.integers(0, 3, (lengths.sum(), 1))

        def make():
            m = _hmm_start(CategoricalHMM(2, init_params="", n_iter=15, tol=0))
            m.emissionprob_ = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
            return m

    w = np.array([2, 0, 1, 3])
    starts = np.concatenate([[0], np.cumsum(lengths)])
    pieces = [X[starts[i] : starts[i + 1]] for i in range(4)]
    X_rep = np.concatenate([p for p, k in zip(pieces, w) for _ in range(k)])
    len_rep = [len(p) for p, k in zip(pieces, w) for _ in range(k)]
    weighted = make().fit(X, lengths, sample_weight=w)
    repeated = make().fit(X_rep, len_rep)
    np.testing.assert_allclose(weighted.history_, repeated.history_, rtol=1e-10)
    np.testing.assert_allclose(weighted.transmat_, repeated.transmat_, rtol=1e-9)
    np.testing.assert_allclose(weighted.startprob_, repeated.startprob_, rtol=1e-9)
    _monotone(weighted.history_)
    with pytest.raises(ValueError, match="one number per sequence"):
        make().fit(X, lengths, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="every sample weight is zero"):
        make().fit(X, lengths, sample_weight=np.zeros(4))
