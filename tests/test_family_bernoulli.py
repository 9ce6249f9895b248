"""The Bernoulli emission family: kernel against NumPy, a peer (BernoulliNB), latent class
analysis through the model graph, Bernoulli HMMs, priors and bad input."""

import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.naive_bayes import BernoulliNB

import latentem
from latentem import Categorical, Family, LikelihoodDecreaseWarning, ModelGraph
from latentem.families.base import EmissionFamily
from latentem.families.bernoulli import BernoulliFamily
from latentem.kernels.bernoulli import bernoulli_logprob


def binary_data(n=200, D=5, K=3, missing=0.2, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, D)) < 0.4).astype(float)
    X[rng.random(X.shape) < missing] = np.nan
    probs = rng.uniform(0.05, 0.95, size=(K, D))
    return rng, X, probs


def reference_logprob(X, probs):
    """Slow and obvious: one row, one component, one feature at a time."""
    out = np.zeros((X.shape[0], probs.shape[0]))
    for t in range(X.shape[0]):
        for k in range(probs.shape[0]):
            for d in range(X.shape[1]):
                if not np.isnan(X[t, d]):
                    p = probs[k, d] if X[t, d] == 1 else 1 - probs[k, d]
                    out[t, k] += np.log(p) if p > 0 else -np.inf
    return out


def reference_stats(X, W):
    obs = ~np.isnan(X)
    return W.T @ obs.astype(float), W.T @ np.where(obs, X, 0.0)


def lca_data(n=3000, seed=0, missing=0.1):
    rng = np.random.default_rng(seed)
    weights = np.array([0.5, 0.3, 0.2])
    probs = np.array(
        [
            [0.9, 0.9, 0.9, 0.8, 0.1, 0.1, 0.2, 0.1],
            [0.1, 0.2, 0.1, 0.1, 0.9, 0.8, 0.9, 0.9],
            [0.8, 0.9, 0.1, 0.1, 0.8, 0.9, 0.1, 0.2],
        ]
    )
    z = rng.choice(3, size=n, p=weights)
    X = (rng.random((n, 8)) < probs[z]).astype(float)
    X[rng.random(X.shape) < missing] = np.nan
    return X, z, weights, probs


def lca_graph(**family_kwargs):
    g = ModelGraph()
    g.add_node("class", Categorical(3))
    g.add_node("items", Family(lambda k: BernoulliFamily(k, **family_kwargs), name="Bernoulli"))
    g.add_edge("class", "items")
    return g


def assert_monotone(history):
    history = np.asarray(history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[:-1])), np.diff(history).min()


def test_satisfies_the_emission_family_protocol():
    assert isinstance(BernoulliFamily(2), EmissionFamily)


def test_kernel_matches_numpy_reference_on_random_inputs():
    for seed in range(3):
        _, X, probs = binary_data(seed=seed)
        probs[0, 1], probs[1, 2] = 0.0, 1.0  # structural zeros: -inf only where observed
        with np.errstate(divide="ignore"):
            got = bernoulli_logprob(X, np.log(probs), np.log1p(-probs))
        np.testing.assert_allclose(got, reference_logprob(X, probs), rtol=1e-12)
        assert not np.isnan(got).any()


def test_family_log_prob_and_statistics_match_references():
    rng, X, probs = binary_data(seed=4)
    fam = BernoulliFamily(3)
    fam.probs_ = probs
    fam.check_params()
    np.testing.assert_allclose(fam.log_prob(X), reference_logprob(X, probs), rtol=1e-12)
    W = rng.dirichlet(np.ones(3), size=len(X))
    stats = fam.accumulate(X, W)
    obs, ones = reference_stats(X, W)
    np.testing.assert_allclose(stats["obs"], obs, rtol=1e-12)
    np.testing.assert_allclose(stats["ones"], ones, rtol=1e-12)


def test_statistics_are_additive_over_row_splits():
    rng, X, probs = binary_data(n=301, seed=5)
    fam = BernoulliFamily(3, beta_prior=(2.0, 3.0))
    fam.probs_ = probs
    W = rng.dirichlet(np.ones(3), size=len(X))
    whole = fam.accumulate(X, W)
    parts = [fam.accumulate(X[s], W[s]) for s in (slice(0, 17), slice(17, 200), slice(200, None))]
    for key in whole:
        np.testing.assert_allclose(sum(p[key] for p in parts), whole[key], rtol=1e-12)


def test_agrees_with_sklearn_bernoulli_nb_from_the_same_labels():
    """With one-hot weights the M-step is naive Bayes; Beta(1 + alpha, 1 + alpha) is
    BernoulliNB's smoothing alpha, and the log-densities plus log class priors are its
    joint log-likelihoods."""
    rng = np.random.default_rng(6)
    X = (rng.random((400, 7)) < rng.uniform(0.1, 0.9, size=7)).astype(float)
    y = rng.integers(0, 3, 400)
    nb = BernoulliNB(alpha=0.7).fit(X, y)
    fam = BernoulliFamily(3, beta_prior=(1.7, 1.7))
    fam.init_params(X, rng, "p")
    fam.m_step(fam.accumulate(X, np.eye(3)[y]), "p")
    np.testing.assert_allclose(np.log(fam.probs_), nb.feature_log_prob_, rtol=1e-12)
    joint = fam.log_prob(X) + nb.class_log_prior_
    np.testing.assert_allclose(joint, nb.predict_joint_log_proba(X), rtol=1e-12)


def test_latent_class_analysis_recovers_classes_with_missing_answers():
    X, z, weights, probs = lca_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        g = lca_graph().fit(X, random_state=0, n_init=2, max_iter=300)
    assert_monotone(g.history_)
    fitted = g.parameters("items")["probs_"]
    cost = np.abs(fitted[:, None, :] - probs[None]).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(fitted[rows], probs[cols], atol=0.06)
    np.testing.assert_allclose(g.parameters("class")["weights_"][0][rows], weights[cols], atol=0.04)
    labels = g.predict(X, node="class")
    agreement = np.mean(cols[np.argsort(rows)][labels] == z)  # fitted label -> true class
    assert agreement > 0.85


def test_latent_class_analysis_reaches_the_optimum_of_stepmix():
    """StepMix's binary measurement model with gaps ("binary_nan") is the same latent class
    model; fitted to convergence on the same data both reach the same optimum."""
    from stepmix.stepmix import StepMix

    X, _, _, _ = lca_data(n=1500, missing=0.1)
    peer = StepMix(
        n_components=3,
        measurement="binary_nan",
        n_init=3,
        max_iter=5000,
        abs_tol=1e-12,
        rel_tol=0.0,
        random_state=0,
        verbose=0,
        progress_bar=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer.fit(X)
    params = peer.get_parameters()
    peer_probs, peer_weights = params["measurement"]["pis"], params["weights"]
    g = lca_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        g.fit(X, random_state=0, n_init=2, max_iter=5000, tol=1e-12, accelerate="squarem")
    probs = g.parameters("items")["probs_"]
    order, peer_order = (
        np.argsort(probs[:, 0] + 2 * probs[:, 4]),
        np.argsort(peer_probs[:, 0] + 2 * peer_probs[:, 4]),
    )
    np.testing.assert_allclose(probs[order], peer_probs[peer_order], atol=2e-6)
    weights = g.parameters("class")["weights_"][0]
    np.testing.assert_allclose(weights[order], peer_weights[peer_order], atol=2e-6)
    assert g.history_[-1] == pytest.approx(peer.score(X) * len(X), abs=1e-6)


def test_bernoulli_hmm_history_never_decreases_and_finds_the_states():
    rng = np.random.default_rng(7)
    truth = latentem.HMM(2, emission=BernoulliFamily(2), init_params="")
    truth.startprob_ = np.array([0.5, 0.5])
    truth.transmat_ = np.array([[0.95, 0.05], [0.1, 0.9]])
    truth.emission.probs_ = np.array([[0.9, 0.8, 0.1, 0.2], [0.2, 0.1, 0.8, 0.7]])
    X, states = truth.sample(1500, random_state=rng)
    X[rng.random(X.shape) < 0.1] = np.nan
    X_before = X.copy()
    model = latentem.HMM(2, emission=BernoulliFamily(2), n_iter=200, tol=1e-9, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        model.fit(X)
    np.testing.assert_array_equal(np.isnan(X), np.isnan(X_before))  # input untouched
    np.testing.assert_array_equal(X[~np.isnan(X)], X_before[~np.isnan(X_before)])
    assert len(model.history_) > 3
    assert_monotone(model.history_)
    predicted = model.predict(X)
    accuracy = max(np.mean(predicted == states), np.mean(predicted != states))
    assert accuracy > 0.9
    order = np.argsort(model.emission.probs_[:, 0])[::-1]
    np.testing.assert_allclose(model.emission.probs_[order], truth.emission.probs_, atol=0.07)


def test_beta_prior_gives_the_posterior_mode_and_a_monotone_posterior():
    X, _, _, _ = lca_data(n=300, seed=2)
    fam = BernoulliFamily(3, beta_prior=(3.0, 2.0))
    fam.init_params(X, np.random.default_rng(0), "p")
    W = np.random.default_rng(1).dirichlet(np.ones(3), size=len(X))
    stats = fam.accumulate(X, W)
    fam.m_step(stats, "p")
    np.testing.assert_allclose(fam.probs_, (2.0 + stats["ones"]) / (3.0 + stats["obs"]))

    # the mode maximises expected log-likelihood plus log-prior: nudging it lowers the sum
    def objective(p):
        fam.probs_ = p
        q = np.sum(stats["ones"] * np.log(p) + (stats["obs"] - stats["ones"]) * np.log1p(-p))
        return q + fam.log_prior()

    mode = fam.probs_.copy()
    best = objective(mode)
    for step in (-1e-3, 1e-3):
        assert objective(np.clip(mode + step, 1e-6, 1 - 1e-6)) < best
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        g = lca_graph(beta_prior=(2.0, 2.0)).fit(X, random_state=3, max_iter=60)
    assert g.history_ is not None


def test_a_component_without_mass_keeps_its_probabilities():
    X, _, _, _ = lca_data(n=50)
    fam = BernoulliFamily(2)
    fam.init_params(X, np.random.default_rng(0), "p")
    before = fam.probs_.copy()
    W = np.zeros((len(X), 2))
    W[:, 0] = 1.0
    fam.m_step(fam.accumulate(X, W), "p")
    np.testing.assert_array_equal(fam.probs_[1], before[1])
    assert np.all((fam.probs_ > 0) & (fam.probs_ < 1))


def test_sample_and_fill():
    fam = BernoulliFamily(2)
    fam.probs_ = np.array([[0.9, 0.1], [0.2, 0.6]])
    fam.check_params()
    states = np.repeat([0, 1], 20000)
    draws = fam.sample(states, np.random.default_rng(0))
    np.testing.assert_allclose(draws[:20000].mean(axis=0), [0.9, 0.1], atol=0.01)
    np.testing.assert_allclose(draws[20000:].mean(axis=0), [0.2, 0.6], atol=0.01)
    X = np.array([[1.0, np.nan], [np.nan, 0.0]])
    filled = fam.fill(X, np.array([[1.0, 0.0], [0.5, 0.5]]))
    np.testing.assert_allclose(filled, [[1.0, 0.1], [0.55, 0.0]])
    assert np.isnan(X[0, 1])


@pytest.mark.parametrize(
    "data, message",
    [
        (np.array([[0.0, 2.0]]), "found 2.0 in row 0, column 1"),
        (np.array([["a", "b"]]), "must be 0/1"),
        (np.zeros((2, 2, 2)), r"\(n_samples, n_features\)"),
        (np.array([[0.0, np.inf]]), "must be 0 or 1"),
    ],
)
def test_bad_data_is_refused_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        BernoulliFamily(2).validate_data(data)


def test_bad_settings_and_parameters_are_refused():
    with pytest.raises(ValueError, match="3 features but the model has 2"):
        BernoulliFamily(2, n_features=2).validate_data(np.zeros((4, 3)))
    fam = BernoulliFamily(2, beta_prior=(0.5, 1.0))
    fam.probs_ = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match="at least 1"):
        fam.check_params()
    fam = BernoulliFamily(2, beta_prior=1.0)
    fam.probs_ = np.full((2, 3), 0.5)
    with pytest.raises(ValueError, match="pair"):
        fam.check_params()
    fam = BernoulliFamily(2)
    fam.probs_ = np.full((2, 3), 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fam.check_params()
    fam.probs_ = np.full((3, 3), 0.5)
    with pytest.raises(ValueError, match="n_components=2"):
        fam.check_params()
    with pytest.raises(ValueError, match="probs_ is not set"):
        BernoulliFamily(2).check_params()


def test_bool_and_integer_input_and_squarem():
    X, _, _, _ = lca_data(n=600, missing=0.0)
    fam = BernoulliFamily(3)
    np.testing.assert_array_equal(fam.validate_data(X.astype(bool)), X)
    np.testing.assert_array_equal(fam.validate_data(X.astype(np.int8)), X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        g = lca_graph().fit(X, random_state=0, max_iter=200, accelerate="squarem")
    assert np.isfinite(g.history_[-1])
