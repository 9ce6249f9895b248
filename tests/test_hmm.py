"""Hidden Markov models against hmmlearn, scikit-learn and first principles."""

import warnings

import numpy as np
import pytest
from hmmlearn import hmm as hl
from scipy.stats import multivariate_normal

import latentem
from latentem import ConvergenceWarning, NotFittedError
from latentem.models.hmm import HMM, CategoricalHMM, GaussianHMM, PoissonHMM

COV_TYPES = ["spherical", "diag", "full", "tied"]


def make_params(rng, K, D, covariance_type):
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K) * 2, size=K) * 0.5 + 0.5 * np.eye(K)
    means = rng.normal(scale=3.0, size=(K, D))
    A = rng.normal(size=(K, D, D))
    full = A @ A.transpose(0, 2, 1) + np.eye(D)
    covars = {
        "spherical": rng.uniform(0.5, 2.0, K),
        "diag": rng.uniform(0.5, 2.0, (K, D)),
        "full": full,
        "tied": full[0],
    }[covariance_type]
    return startprob, transmat, means, covars


def paired_models(covariance_type, K=3, D=2, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    startprob, transmat, means, covars = make_params(rng, K, D, covariance_type)
    ours = GaussianHMM(K, covariance_type, init_params="", **kwargs)
    theirs = hl.GaussianHMM(K, covariance_type, init_params="", **kwargs)
    for m in (ours, theirs):
        m.startprob_ = startprob.copy()
        m.transmat_ = transmat.copy()
        m.means_ = means.copy()
        m.covars_ = covars.copy()
    return ours, theirs


def sample_sequences(model, lengths, seed):
    rng = np.random.RandomState(seed)  # hmmlearn's sample takes a RandomState
    parts = [model.sample(n, random_state=rng)[0] for n in lengths]
    return np.concatenate(parts), np.asarray(lengths)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_score_posteriors_and_viterbi_equal_hmmlearn(covariance_type):
    ours, theirs = paired_models(covariance_type)
    X, lengths = sample_sequences(theirs, [50, 1, 17, 80], seed=1)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    ll, post = ours.score_samples(X, lengths)
    ref_ll, ref_post = theirs.score_samples(X, lengths)
    assert ll == pytest.approx(ref_ll, rel=1e-9)
    np.testing.assert_allclose(post, ref_post, atol=1e-9)
    lp, states = ours.decode(X, lengths)
    ref_lp, ref_states = theirs.decode(X, lengths)
    assert lp == pytest.approx(ref_lp, rel=1e-9)
    np.testing.assert_array_equal(states, ref_states)
    np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))
    _, map_states = ours.decode(X, lengths, algorithm="map")
    np.testing.assert_array_equal(map_states, np.argmax(ref_post, axis=1))
    per_seq = ours.score_per_sequence(X, lengths)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    for s in range(len(lengths)):
        piece = X[offsets[s] : offsets[s + 1]]
        assert per_seq[s] == pytest.approx(theirs.score(piece), rel=1e-9)


def test_parameters_and_lengths_edited_between_calls_are_checked_and_used():
    """Scoring remembers what it checked (parameters, lengths): edits in place or new
    arrays between calls must still be seen, checked and used, as hmmlearn sees them."""
    ours, theirs = paired_models("diag", K=3, D=2)
    X, lengths = sample_sequences(theirs, [40] * 30, seed=2)  # enough rows for the kernels
    for _ in range(2):
        assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    edits = [
        lambda m: m.transmat_.__setitem__(0, [0.2, 0.3, 0.5]),
        lambda m: m.startprob_.__setitem__(slice(None), [0.1, 0.1, 0.8]),
        lambda m: m.means_.__setitem__(0, m.means_[0] + 1.0),
        lambda m: setattr(m, "transmat_", np.full((3, 3), 1 / 3)),
    ]
    for edit in edits:
        edit(ours)
        edit(theirs)
        assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
        np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))
    lengths[:2] = [20, 60]  # the same lengths array, edited in place
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    np.testing.assert_allclose(
        ours.score_per_sequence(X, lengths)[:2],
        [theirs.score(X[:20]), theirs.score(X[20:80])],
        rtol=1e-9,
    )
    ours.transmat_[0, 0] = 5.0  # in place, off the simplex
    with pytest.raises(ValueError, match="sum to 1"):
        ours.score(X, lengths)
    ours.transmat_[0] = [0.2, 0.3, 0.5]
    ours.startprob_[0] = -0.1
    with pytest.raises(ValueError, match="non-negative"):
        ours.predict(X, lengths)
    ours.startprob_[:] = theirs.startprob_
    ours.means_[1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        ours.score(X, lengths)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_baum_welch_steps_equal_hmmlearn(covariance_type):
    ours, theirs = paired_models(covariance_type, n_iter=3, tol=0)
    theirs.tol = -np.inf  # hmmlearn: never stop early
    X, lengths = sample_sequences(theirs, [60, 40, 3, 100], seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, lengths)
    theirs.fit(X, lengths)
    np.testing.assert_allclose(ours.startprob_, theirs.startprob_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-8, atol=1e-10)
    if covariance_type == "spherical":
        # hmmlearn stores (K, D) copies after its spherical M-step, which its own
        # covars_ getter then mis-shapes; compare with what it stores.
        np.testing.assert_allclose(ours.emission.covariances_, theirs._covars_[:, 0], rtol=1e-8)
    else:
        np.testing.assert_allclose(ours.covars_, theirs.covars_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.history_, theirs.monitor_.history, rtol=1e-9)


def test_categorical_and_poisson_steps_equal_hmmlearn():
    rng = np.random.default_rng(3)
    K = 3
    startprob = rng.dirichlet(np.ones(K))
    transmat = 0.6 * np.eye(K) + 0.4 * rng.dirichlet(np.ones(K), size=K)
    emission = rng.dirichlet(np.ones(5), size=K)
    lambdas = rng.uniform(1, 10, size=(K, 2))
    cases = [
        (CategoricalHMM, hl.CategoricalHMM, {"emissionprob_": emission}),
        (PoissonHMM, hl.PoissonHMM, {"lambdas_": lambdas}),
    ]
    for ours_cls, theirs_cls, params in cases:
        ours = ours_cls(K, init_params="", n_iter=4, tol=0)
        theirs = theirs_cls(K, init_params="", n_iter=4, tol=-np.inf)
        for m in (ours, theirs):
            m.startprob_, m.transmat_ = startprob.copy(), transmat.copy()
            for name, value in params.items():
                setattr(m, name, value.copy())
        X, lengths = sample_sequences(theirs, [70, 30, 2], seed=4)
        assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours.fit(X, lengths)
        theirs.fit(X, lengths)
        np.testing.assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-8)
        for name in params:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8)


def test_uniform_transitions_reduce_to_a_mixture():
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(5)
    K, D = 3, 2
    weights = rng.dirichlet(np.ones(K))
    _, _, means, covars = make_params(rng, K, D, "full")
    hmm = GaussianHMM(K, "full", init_params="")
    hmm.startprob_, hmm.transmat_ = weights, np.tile(weights, (K, 1))
    hmm.means_, hmm.covars_ = means, covars
    gmm = GaussianMixture(K, covariance_type="full")
    gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, covars
    gmm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(covars))
    X = rng.normal(scale=3.0, size=(200, D))
    np.testing.assert_allclose(hmm.predict_proba(X), gmm.predict_proba(X), atol=1e-10)
    assert hmm.score(X) == pytest.approx(gmm.score(X) * len(X), rel=1e-10)


def test_sequence_order_and_splitting_do_not_matter():
    ours, _ = paired_models("diag", n_iter=5, tol=0)
    X, lengths = sample_sequences(ours, [30, 50, 20, 40], seed=6)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    pieces = [X[offsets[s] : offsets[s + 1]] for s in range(4)]
    order = [2, 0, 3, 1]
    X_perm = np.concatenate([pieces[s] for s in order])
    assert ours.score(X, lengths) == pytest.approx(ours.score(X_perm, lengths[order]), rel=1e-12)
    stats, ll = ours.e_step(ours._sequence_data(X, lengths))
    parts = [ours.e_step(ours._sequence_data(p, None)) for p in pieces]
    assert ll == pytest.approx(sum(p[1] for p in parts), rel=1e-12)
    for key in ("start", "trans"):
        np.testing.assert_allclose(stats[key], sum(p[0][key] for p in parts), rtol=1e-12)
    for a, b in zip(stats["emission"], [sum(p[0]["emission"][i] for p in parts) for i in range(3)]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_history_never_decreases_and_parameters_are_recovered(covariance_type):
    truth, _ = paired_models(covariance_type, K=2, D=2, seed=7)
    truth.transmat_ = np.array([[0.95, 0.05], [0.1, 0.9]])
    truth.means_ = np.array([[-4.0, 0.0], [4.0, 2.0]])
    X, lengths = sample_sequences(truth, [400] * 10, seed=8)
    model = GaussianHMM(2, covariance_type, n_iter=200, tol=1e-8, random_state=0)
    model.fit(X, lengths)
    hist = model.history_
    assert np.all(np.diff(hist) >= -1e-10 * np.abs(hist[:-1]))
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], truth.means_, atol=0.15)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], truth.transmat_, atol=0.03)
    np.testing.assert_allclose(model.covars_[order], truth.covars_, atol=0.25, rtol=0.15)


def test_length_one_sequences():
    ours, theirs = paired_models("diag")
    X, lengths = sample_sequences(theirs, [1] * 25, seed=9)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.n_iter = 3
        ours.fit(X, lengths)
    assert np.isfinite(ours.transmat_).all() and np.isfinite(ours.means_).all()


def test_missing_rows_and_entries():
    ours, _ = paired_models("full", K=2, D=3, seed=10)
    X, lengths = sample_sequences(ours, [40], seed=11)
    X_gap = X.copy()
    X_gap[5] = np.nan  # a whole row missing
    X_gap[9, 1] = np.nan  # one entry missing
    X_gap[12, [0, 2]] = np.nan
    log_b = np.column_stack(
        [multivariate_normal(ours.means_[k], ours.covars_[k]).logpdf(X) for k in range(2)]
    )
    log_b[5] = 0.0
    for row, keep in ((9, [0, 2]), (12, [1])):
        log_b[row] = [
            multivariate_normal(ours.means_[k][keep], ours.covars_[k][np.ix_(keep, keep)]).logpdf(
                X[row, keep]
            )
            for k in range(2)
        ]
    ref = hl.GaussianHMM(2, "full", init_params="")
    ref.startprob_, ref.transmat_ = ours.startprob_, ours.transmat_
    ref.means_, ref.covars_ = ours.means_, ours.covars_
    from hmmlearn import _hmmc

    ref_ll, _ = _hmmc.forward_log(ours.startprob_, ours.transmat_, log_b)
    assert ours.score(X_gap) == pytest.approx(ref_ll, rel=1e-10)
    states = ours.predict(X_gap)
    assert states.shape == (40,) and set(states) <= {0, 1}
    post = ours.predict_proba(X_gap)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    before = X_gap.copy()
    ours.n_iter = 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X_gap)
    np.testing.assert_array_equal(np.isnan(before), np.isnan(X_gap))  # input untouched
    assert np.all(np.diff(ours.history_) >= -1e-9 * np.abs(ours.history_[:-1]))
    assert np.isfinite(ours.means_).all()


def test_labels_constrain_posteriors_and_decoding():
    ours, _ = paired_models("diag", K=3, seed=12)
    X, _ = sample_sequences(ours, [60], seed=13)
    labels = np.full(60, -1)
    labels[[0, 10, 30]] = [2, 1, 0]
    post = ours.predict_proba(X, labels=labels)
    np.testing.assert_allclose(post[[0, 10, 30]], np.eye(3)[[2, 1, 0]], atol=1e-12)
    states = ours.predict(X, labels=labels)
    assert states[0] == 2 and states[10] == 1 and states[30] == 0
    # Fully labelled data: one step gives the supervised counts.
    truth = ours.predict(X)
    model = GaussianHMM(3, "diag", n_iter=1, init_params="", params="t", tol=0)
    model.startprob_, model.transmat_ = ours.startprob_, ours.transmat_
    model.means_, model.covars_ = ours.means_, ours.emission.covariances_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, labels=truth)
    counts = np.zeros((3, 3))
    np.add.at(counts, (truth[:-1], truth[1:]), 1)
    seen = counts.sum(axis=1) > 0
    np.testing.assert_allclose(
        model.transmat_[seen], counts[seen] / counts[seen].sum(1, keepdims=True), atol=1e-12
    )


def test_structural_zeros_stay_zero():
    rng = np.random.default_rng(14)
    model = GaussianHMM(3, "diag", init_params="mc", n_iter=20, random_state=0)
    model.startprob_ = np.array([1.0, 0.0, 0.0])
    model.transmat_ = np.array([[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]])
    X = np.concatenate([rng.normal(m, 1.0, 100) for m in (-5, 0, 5)])[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(np.tile(X, (3, 1)), lengths=[300] * 3)
    assert model.startprob_[1] == 0 and model.startprob_[2] == 0
    assert model.transmat_[1, 0] == 0 and model.transmat_[2, 0] == 0 and model.transmat_[2, 1] == 0
    assert model.transmat_[0, 2] == 0


def test_generic_hmm_with_a_user_family():
    from latentem.families.poisson import PoissonFamily

    rng = np.random.default_rng(15)
    states = np.repeat(np.tile([0, 1], 10), 50)
    X = rng.poisson(np.where(states == 0, 2.0, 9.0))[:, None].astype(float)
    model = HMM(2, emission=PoissonFamily(2), n_iter=100, random_state=0).fit(X)
    pred = model.predict(X)
    agreement = max(np.mean(pred == states), np.mean(pred != states))
    assert agreement > 0.97


def test_sample_and_information_criteria():
    ours, _ = paired_models("full", K=2, D=2, seed=16)
    X, Z = ours.sample(300, random_state=0)
    assert X.shape == (300, 2) and Z.shape == (300,)
    X2, Z2 = ours.sample(300, random_state=0)
    np.testing.assert_array_equal(X, X2)
    n_params = 1 + 2 + 2 * 2 + 2 * 3
    assert ours.n_parameters() == n_params
    assert ours.bic(X) == pytest.approx(-2 * ours.score(X) + n_params * np.log(300))
    assert ours.aic(X) == pytest.approx(-2 * ours.score(X) + 2 * n_params)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, X: m.fit(X, lengths=[10, 10]), "lengths add up to 20"),
        (lambda m, X: m.fit(X, lengths=[50, 0]), "length must be >= 1"),
        (lambda m, X: m.fit(X[:0]), "empty"),
        (lambda m, X: m.fit(np.full_like(X, np.inf)), "inf"),
        (lambda m, X: m.fit(X, labels=np.zeros(3, dtype=int)), "one entry per row"),
        (lambda m, X: m.fit(X, labels=np.full(50, 7)), "labels must be -1"),
        (lambda m, X: m.set_params(algorithm="best").fit(X), "algorithm must be one of"),
        (lambda m, X: m.set_params(covariance_type="round").fit(X), "covariance_type"),
        (lambda m, X: m.set_params(n_iter=-1).fit(X), "n_iter must be >= 0"),
        (lambda m, X: m.set_params(implementation="fast").fit(X), "implementation must be"),
        (lambda m, X: m.fit(np.column_stack([X[:, 0], np.full(50, np.nan)])), "entirely missing"),
    ],
)
def test_bad_input_gives_clear_errors(call, message):
    X = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match=message):
        call(GaussianHMM(2, random_state=0), X)


def test_bad_parameters_set_by_hand():
    model = GaussianHMM(2, init_params="")
    with pytest.raises(NotFittedError, match="not fitted yet"):  # nothing set: scikit-learn's
        model.score(np.zeros((5, 1)))
    model.means_ = np.zeros((2, 1))
    with pytest.raises(ValueError, match="startprob_ is not set"):  # some set: name the rest
        model.score(np.zeros((5, 1)))
    model.startprob_ = np.array([0.5, 0.6])
    model.transmat_ = np.eye(2)
    with pytest.raises(ValueError, match="sum to 1"):
        model.fit(np.zeros((5, 1)))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gmmhmm_scores_equal_hmmlearn_and_fit_is_monotone(covariance_type):
    from latentem import GMMHMM

    rng = np.random.default_rng(17)
    K, M, D = 2, 3, 2
    startprob = rng.dirichlet(np.ones(K))
    transmat = 0.7 * np.eye(K) + 0.3 * rng.dirichlet(np.ones(K), size=K)
    weights = rng.dirichlet(np.ones(M), size=K)
    means = rng.normal(scale=3.0, size=(K, M, D))
    A = rng.normal(size=(K, M, D, D))
    full = A @ A.transpose(0, 1, 3, 2) + np.eye(D)
    covars = {
        "full": full,
        "tied": full[:, 0],
        "diag": rng.uniform(0.5, 2.0, (K, M, D)),
        "spherical": rng.uniform(0.5, 2.0, (K, M)),
    }[covariance_type]
    ours = GMMHMM(K, M, covariance_type=covariance_type, init_params="", n_iter=15, tol=0)
    theirs = hl.GMMHMM(K, M, covariance_type=covariance_type, init_params="")
    for m in (ours, theirs):
        m.startprob_, m.transmat_ = startprob.copy(), transmat.copy()
        m.weights_, m.means_, m.covars_ = weights.copy(), means.copy(), covars.copy()
    X, lengths = sample_sequences(theirs, [100, 60, 1], seed=18)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    np.testing.assert_allclose(
        ours.predict_proba(X, lengths), theirs.predict_proba(X, lengths), atol=1e-9
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, lengths)
    hist = ours.history_
    assert np.all(np.diff(hist) >= -1e-10 * np.abs(hist[:-1]))
    np.testing.assert_allclose(ours.weights_.sum(axis=1), 1.0)


def test_gmmhmm_with_one_mixture_component_equals_gaussian_hmm_fit():
    from latentem import GMMHMM

    ours, _ = paired_models("diag", K=2, D=2, seed=19)
    X, lengths = sample_sequences(ours, [200, 100], seed=20)
    gmmhmm = GMMHMM(2, 1, covariance_type="diag", init_params="", n_iter=5, tol=0, min_covar=0.0)
    gauss = GaussianHMM(2, "diag", init_params="", n_iter=5, tol=0, covars_prior=0.0)
    gmmhmm.startprob_, gmmhmm.transmat_ = ours.startprob_, ours.transmat_
    gauss.startprob_, gauss.transmat_ = ours.startprob_, ours.transmat_
    gmmhmm.weights_ = np.ones((2, 1))
    gmmhmm.means_ = ours.means_[:, None, :].copy()
    gmmhmm.covars_ = ours.emission.covariances_[:, None, :].copy()
    gauss.means_, gauss.covars_ = ours.means_.copy(), ours.emission.covariances_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmmhmm.fit(X, lengths)
        gauss.fit(X, lengths)
    np.testing.assert_allclose(gmmhmm.history_, gauss.history_, rtol=1e-10)
    np.testing.assert_allclose(gmmhmm.means_[:, 0], gauss.means_, rtol=1e-9)
    np.testing.assert_allclose(gmmhmm.transmat_, gauss.transmat_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_map_priors_give_a_never_decreasing_log_posterior(covariance_type):
    """Strong hmmlearn-style priors: the runner checks likelihood plus log_prior, which
    must never decrease if log_prior matches the MAP M-step."""
    X, lengths = sample_sequences(paired_models(covariance_type, seed=21)[1], [80] * 4, seed=22)
    model = GaussianHMM(
        3,
        covariance_type,
        n_iter=60,
        tol=0,
        random_state=0,
        means_prior=1.0,
        means_weight=3.0,
        covars_prior=5.0,
        covars_weight=4.0,
        startprob_prior=2.0,
        transmat_prior=3.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", latentem.LikelihoodDecreaseWarning)
        model.fit(X, lengths)
    objective = model.monitor_.objective_history
    assert np.all(np.diff(objective) >= -1e-10 * np.abs(objective[:-1]))
    assert objective[-1] == pytest.approx(model.history_[-1] + model.log_prior(), rel=0.05)


@pytest.mark.parametrize("model_cls", [GaussianHMM, PoissonHMM, CategoricalHMM])
def test_squarem_for_hmms_reaches_the_same_optimum_in_fewer_passes(model_cls):
    rng = np.random.default_rng(23)
    states = np.repeat(rng.integers(2, size=60), 25)
    if model_cls is GaussianHMM:
        X = rng.normal(np.where(states == 0, 0.0, 1.2), 1.0)[:, None]  # heavy overlap: slow EM
    elif model_cls is PoissonHMM:
        X = rng.poisson(np.where(states == 0, 4.0, 6.0))[:, None]
    else:
        symbols = np.where(rng.random(len(states)) < 0.7, states, 1 - states)
        X = (symbols + 2 * (rng.random(len(states)) < 0.2)).reshape(-1, 1)
    fits = {}
    for accelerate in (None, "squarem"):
        model = model_cls(2, n_iter=3000, tol=1e-9, random_state=3, accelerate=accelerate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("error", latentem.LikelihoodDecreaseWarning)
            model.fit(X)
        objective = model.monitor_.objective_history
        assert np.all(np.diff(objective) >= -1e-10 * np.abs(objective[:-1]))
        fits[accelerate] = model
    plain, fast = fits[None], fits["squarem"]
    assert fast.monitor_.n_e_steps < plain.monitor_.n_e_steps
    assert fast.score(X) == pytest.approx(plain.score(X), abs=1e-3 * len(X) * 1e-3)


def test_a_gap_written_into_x_after_a_score_is_seen_by_the_next_score():
    # complete data are noted at validation so the missingness plan need not read X
    # again; the note must not outlive an edit of the same array
    X = np.random.default_rng(0).normal(size=(300, 2))
    model = GaussianHMM(2, n_iter=5, random_state=0).fit(X)
    complete = model.score(X)
    X[5, 0] = np.nan
    with_gap = model.score(X)
    assert np.isfinite(with_gap) and with_gap != complete
    assert with_gap == model.score(X.copy())  # a new array: nothing noted about it


def test_singular_covariance_error_names_the_hmm_setting():
    """An HMM user is told about min_covar, the setting a GaussianHMM has (a mixture
    user is told about reg_covar)."""
    model = GaussianHMM(2, covariance_type="full", init_params="")
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.full((2, 2), 0.5)
    model.means_ = np.zeros((2, 2))
    model.covars_ = np.array([np.eye(2), np.ones((2, 2))])
    with pytest.raises(ValueError, match=r"component 1 .*increase min_covar \(now 0.001\)"):
        model.score(np.random.default_rng(0).random((10, 2)))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("K", [1, 2, 9])
def test_fused_scoring_and_decoding_equal_the_unfused_path(covariance_type, K, monkeypatch):
    """Many short sequences (ragged, some of one row): score and Viterbi with the
    emissions computed inside the recursions give the unfused path's numbers to
    1e-12 and the same states, and hmmlearn's."""
    ours, theirs = paired_models(covariance_type, K=K, D=2, seed=K)
    X, lengths = sample_sequences(theirs, [1, 37, 60, 2] * 10 + [45] * 20, seed=3)
    assert ours._fused_kernels(ours._fitted_data(X, lengths)) is not None
    fused = ours.score_per_sequence(X, lengths), ours.decode(X, lengths), ours.predict(X, lengths)
    monkeypatch.setattr(GaussianHMM, "_fused_kernels", lambda self, data: None)
    plain = ours.score_per_sequence(X, lengths), ours.decode(X, lengths), ours.predict(X, lengths)
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-12)
    assert fused[1][0] == pytest.approx(plain[1][0], rel=1e-12)
    np.testing.assert_array_equal(fused[1][1], plain[1][1])
    np.testing.assert_array_equal(fused[2], plain[2])
    assert fused[0].sum() == pytest.approx(theirs.score(X, lengths), rel=1e-9)
    np.testing.assert_array_equal(fused[2], theirs.predict(X, lengths))


def test_fused_path_only_where_it_applies():
    """Labels, gaps, full covariances, inputs small enough for NumPy or large enough
    for threads, and few long sequences take the unfused path."""
    ours, theirs = paired_models("diag", K=3, D=2)
    X, lengths = sample_sequences(theirs, [40] * 30, seed=4)
    assert ours._fused_kernels(ours._fitted_data(X, lengths)) is not None
    labels = np.full(len(X), -1)
    labels[3] = 1
    assert ours._fused_kernels(ours._fitted_data(X, lengths, labels)) is None
    assert ours.predict(X, lengths, labels=labels)[3] == 1
    gap = X.copy()
    gap[7, 1] = np.nan
    assert ours._fused_kernels(ours._fitted_data(gap, lengths)) is None
    assert np.isfinite(ours.score(gap, lengths))
    assert ours._fused_kernels(ours._fitted_data(X[:800], [40] * 20)) is None  # NumPy kernels
    assert ours._fused_kernels(ours._fitted_data(X, [600, 600])) is None  # two sequences
    big, big_lengths = np.tile(X, (20, 1)), [40] * 600  # 72,000 entries of (n, K)
    assert ours._fused_kernels(ours._fitted_data(big, big_lengths)) is None
    full, full_theirs = paired_models("full", K=3, D=2)
    assert full._fused_kernels(full._fitted_data(X, lengths)) is None
    assert full.score(X, lengths) == pytest.approx(full_theirs.score(X, lengths), rel=1e-9)


def test_settings_changed_between_scores_are_checked_again():
    """Scoring skips checking settings it has seen; a changed one is checked."""
    ours, theirs = paired_models("diag", K=3, D=2)
    X, lengths = sample_sequences(theirs, [40] * 30, seed=5)
    ours.score(X, lengths)
    for name, bad, match in [
        ("implementation", "fast", "implementation"),
        ("algorithm", "beam", "algorithm"),
        ("n_components", 0, "n_components"),
        ("initial", "fixed", "initial"),
    ]:
        good = getattr(ours, name)
        setattr(ours, name, bad)
        with pytest.raises(ValueError, match=match):
            ours.predict(X, lengths)
        setattr(ours, name, good)
        np.testing.assert_array_equal(ours.predict(X, lengths), theirs.predict(X, lengths))
