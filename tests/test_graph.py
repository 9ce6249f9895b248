"""The model graph: one EM over composed latent models, checked against the plain models."""

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import latentem
from latentem import ConvergenceWarning
from latentem.graph import (
    Categorical,
    Discrete,
    Gaussian,
    MarkovChain,
    ModelGraph,
    Poisson,
)


def assert_monotone(history):
    history = np.asarray(history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[:-1])), history


def hmm_data(seed=0, K=3, D=2, n_seq=8, length=150):
    rng = np.random.default_rng(seed)
    truth = latentem.GaussianHMM(K, "diag", init_params="")
    truth.startprob_ = rng.dirichlet(np.ones(K))
    truth.transmat_ = 0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K)
    truth.means_ = rng.normal(scale=4.0, size=(K, D))
    truth.covars_ = rng.uniform(0.5, 1.5, size=(K, D))
    X = np.concatenate([truth.sample(length, random_state=rng)[0] for _ in range(n_seq)])
    return X, [length] * n_seq, truth


def start_values(X, K, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "startprob": rng.dirichlet(np.ones(K)),
        "transmat": 0.5 * np.eye(K) + 0.5 * rng.dirichlet(np.ones(K), size=K),
        "means": X[rng.choice(len(X), K, replace=False)].copy(),
        "covars": np.tile(X.var(axis=0), (K, 1)),
    }


def fit_quietly(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(*args, **kwargs)


def test_graph_hmm_equals_gaussian_hmm():
    X, lengths, _ = hmm_data()
    v = start_values(X, 3)
    plain = latentem.GaussianHMM(3, "diag", init_params="", n_iter=12, tol=0)
    plain.startprob_, plain.transmat_ = v["startprob"], v["transmat"]
    plain.means_, plain.covars_ = v["means"], v["covars"]
    fit_quietly(plain, X, lengths)

    g = ModelGraph()
    g.add_node("chain", MarkovChain(3))
    g.add_node("obs", Gaussian("diag", reg_covar=0.0))
    g.add_edge("chain", "obs")
    g.initialize(X, lengths, random_state=0)
    g.set_parameters("chain", startprob_=v["startprob"][None], transmat_=v["transmat"][None])
    g.set_parameters("obs", means_=v["means"], covariances_=v["covars"])
    fit_quietly(g, X, lengths, max_iter=12, tol=0, warm_start=True)

    np.testing.assert_allclose(g.history_, plain.history_, rtol=1e-10)
    params = g.parameters("chain")
    np.testing.assert_allclose(params["transmat_"][0], plain.transmat_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(g.parameters("obs")["means_"], plain.means_, rtol=1e-8)
    states = g.predict(X, lengths, node="chain")
    np.testing.assert_array_equal(states, np.argmax(plain.predict_proba(X, lengths), axis=1))
    assert g.score(X, lengths) == pytest.approx(plain.score(X, lengths), rel=1e-10)


def test_whole_hmm_node_equals_gaussian_hmm():
    X, lengths, _ = hmm_data(seed=3)
    g = ModelGraph()
    g.add_node("hmm", latentem.GaussianHMM(3, covariance_type="full"))
    g.initialize(X, lengths, random_state=0)
    v = start_values(X, 3, seed=4)
    covs = np.array([np.diag(c) for c in v["covars"]])
    g.set_parameters("hmm", startprob_=v["startprob"][None], transmat_=v["transmat"][None])
    g.set_parameters("hmm.emission", means_=v["means"], covariances_=covs)
    fit_quietly(g, X, lengths, max_iter=8, tol=0, warm_start=True)
    plain = latentem.GaussianHMM(3, "full", init_params="", n_iter=8, tol=0)
    plain.startprob_, plain.transmat_ = v["startprob"], v["transmat"]
    plain.means_, plain.covars_ = v["means"], covs
    fit_quietly(plain, X, lengths)
    np.testing.assert_allclose(g.history_, plain.history_, rtol=1e-10)
    np.testing.assert_allclose(g.parameters("hmm.emission")["means_"], plain.means_, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_graph_hmm_with_mixture_emissions_equals_gmmhmm(covariance_type):
    rng = np.random.default_rng(5)
    K, M, D = 2, 2, 2
    X, lengths, _ = hmm_data(seed=6, K=2, D=D)
    weights = rng.dirichlet(np.ones(M), size=K)
    means = X[rng.choice(len(X), K * M, replace=False)]
    var = np.tile(X.var(axis=0), (K * M, 1))
    covs = var if covariance_type == "diag" else np.array([np.diag(v) for v in var])
    startprob = np.array([0.6, 0.4])
    transmat = np.array([[0.9, 0.1], [0.2, 0.8]])

    # maximum likelihood on both sides: GMMHMM's min_covar is a MAP prior of its own
    plain = latentem.GMMHMM(
        K, M, covariance_type=covariance_type, init_params="", n_iter=10, tol=0, min_covar=0.0
    )
    plain.startprob_, plain.transmat_ = startprob, transmat
    plain.weights_ = weights
    plain.means_ = means.reshape(K, M, D)
    plain.covars_ = covs.reshape((K, M) + covs.shape[1:])
    fit_quietly(plain, X, lengths)

    g = ModelGraph()
    g.add_node("chain", MarkovChain(K))
    g.add_node("mix", Categorical(M))
    g.add_node("obs", Gaussian(covariance_type, covars_prior=0.0, reg_covar=0.0))
    g.add_edge("chain", "mix")
    g.add_edge("mix", "obs")
    g.initialize(X, lengths, random_state=0)
    g.set_parameters("chain", startprob_=startprob[None], transmat_=transmat[None])
    g.set_parameters("mix", weights_=weights)
    g.set_parameters("obs", means_=means, covariances_=covs)
    fit_quietly(g, X, lengths, max_iter=10, tol=0, warm_start=True)

    np.testing.assert_allclose(g.history_, plain.history_, rtol=1e-9)
    np.testing.assert_allclose(g.parameters("mix")["weights_"], plain.weights_, rtol=1e-7)
    np.testing.assert_allclose(
        g.parameters("obs")["means_"], plain.means_.reshape(K * M, D), rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(g.parameters("chain")["transmat_"][0], plain.transmat_, rtol=1e-7)


def test_mixture_of_hmms_recovers_groups_of_sequences():
    rng = np.random.default_rng(7)
    groups, parts = [], []
    dynamics = {
        0: (np.array([[0.95, 0.05], [0.05, 0.95]]), np.array([-6.0, -2.0])),
        1: (np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([2.0, 6.0])),
    }
    for i in range(40):
        group = i % 2
        transmat, means = dynamics[group]
        state = rng.integers(2)
        states = []
        for _ in range(60):
            states.append(state)
            state = rng.choice(2, p=transmat[state])
        parts.append(rng.normal(means[states], 1.0)[:, None])
        groups.append(group)
    X, lengths = np.concatenate(parts), [60] * 40
    g = ModelGraph()
    g.add_node("cluster", Categorical(2), unit="sequence")
    g.add_node("dynamics", latentem.GaussianHMM(2, covariance_type="diag"))
    g.add_edge("cluster", "dynamics")
    fit_quietly(g, X, lengths, max_iter=100, tol=1e-7, random_state=0)
    labels = g.predict(X, lengths, node="cluster")
    assert labels.shape == (40,)
    assert adjusted_rand_score(groups, labels) >= 0.95
    assert_monotone(g.history_)
    proba = g.predict_proba(X, lengths, node="cluster")
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_mixed_type_mixture_recovers_clusters():
    rng = np.random.default_rng(8)
    n = 900
    z = rng.integers(3, size=n)
    gauss = rng.normal(np.array([[-4, 0], [0, 4], [4, 0]])[z], 1.0)
    symbols = np.array(
        [
            rng.choice(4, p=p)
            for p in np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])[z]
        ]
    )
    counts = rng.poisson(np.array([1.0, 6.0, 15.0])[z])
    X = np.column_stack([gauss, symbols, counts]).astype(float)
    g = ModelGraph()
    g.add_node("cluster", Categorical(3))
    g.add_node("position", Gaussian("full"), columns=[0, 1])
    g.add_node("kind", Discrete(), columns=[2])
    g.add_node("events", Poisson(), columns=[3])
    for child in ("position", "kind", "events"):
        g.add_edge("cluster", child)
    fit_quietly(g, X, max_iter=200, tol=1e-8, random_state=0, n_init=3)
    labels = g.predict(X, node="cluster")
    assert adjusted_rand_score(z, labels) >= 0.9
    assert_monotone(g.history_)
    # Every part contributes: the graph's likelihood is the sum over its children.
    assert g.score(X) < 0 and np.isfinite(g.score(X))


def test_missing_aware_gaussian_inside_a_clustering_mixture_also_imputes():
    rng = np.random.default_rng(9)
    n = 1200
    z = rng.integers(2, size=n)
    means = np.array([[-3.0, -3.0, 0.0], [3.0, 3.0, 5.0]])
    cov = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.3], [0.3, 0.3, 1.0]])
    full = means[z] + rng.multivariate_normal(np.zeros(3), cov, size=n)
    X = full.copy()
    hide = rng.random(X.shape) < 0.2
    hide[hide.all(axis=1)] = False
    X[hide] = np.nan
    before = X.copy()
    g = ModelGraph()
    g.add_node("cluster", Categorical(2))
    g.add_node("table", Gaussian("full"))
    g.add_edge("cluster", "table")
    fit_quietly(g, X, max_iter=200, tol=1e-8, random_state=0)
    assert_monotone(g.history_)
    assert adjusted_rand_score(z, g.predict(X, node="cluster")) >= 0.95
    filled = g.impute(X, node="table")
    np.testing.assert_array_equal(np.isnan(X), np.isnan(before))  # X untouched
    assert not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~hide], full[~hide])
    rmse = np.sqrt(np.mean((filled[hide] - full[hide]) ** 2))
    mean_fill = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    rmse_mean = np.sqrt(np.mean((mean_fill[hide] - full[hide]) ** 2))
    assert rmse < 0.5 * rmse_mean


def test_describe_and_dot():
    g = ModelGraph()
    g.add_node("cluster", Categorical(2), unit="sequence")
    g.add_node("dynamics", latentem.GaussianHMM(3))
    g.add_edge("cluster", "dynamics")
    text = g.describe()
    assert "cluster: Categorical(2 states, unit=sequence) x1 parameter sets" in text
    assert "dynamics: MarkovChain(3 states) x2 parameter sets" in text
    assert "dynamics.emission" in text and "x6 parameter sets" in text
    dot = g.to_dot()
    assert dot.startswith("digraph latentem {") and '"cluster" -> "dynamics";' in dot


def build(nodes, edges):
    g = ModelGraph()
    for name, spec, kwargs in nodes:
        g.add_node(name, spec, **kwargs)
    for a, b in edges:
        g.add_edge(a, b)
    return g


X4 = np.random.default_rng(0).normal(size=(40, 4))


@pytest.mark.parametrize(
    ("nodes", "edges", "message"),
    [
        (
            [("a", Categorical(2), {}), ("b", Categorical(2), {}), ("x", Gaussian(), {})],
            [("a", "b"), ("b", "a"), ("b", "x")],
            "cycle",
        ),
        (
            [("a", Categorical(2), {}), ("b", Categorical(2), {}), ("x", Gaussian(), {})],
            [("a", "x"), ("b", "x")],
            "2 parents",
        ),
        (
            [("a", Categorical(2), {}), ("x", Gaussian(), {"columns": [0, 7]})],
            [("a", "x")],
            "column 7, but X has 4 columns",
        ),
        (
            [("a", Categorical(2), {}), ("x", Gaussian(), {"columns": ["age"]})],
            [("a", "x")],
            "column 'age'",
        ),
        (
            [("a", Categorical(2), {"unit": "sequence"}), ("x", Gaussian(), {})],
            [("a", "x")],
            "put a sequence node",
        ),
        (
            [("a", Categorical(2), {}), ("m", MarkovChain(2), {}), ("x", Gaussian(), {})],
            [("a", "m"), ("m", "x")],
            "works on whole sequences",
        ),
        ([("a", Categorical(2), {})], [], "no children"),
        ([("x", Gaussian(), {})], [], "emission family"),
        (
            [("a", Categorical(2), {}), ("b", Categorical(2), {}), ("x", Gaussian(), {})],
            [("a", "x")],
            "exactly one root",
        ),
    ],
)
def test_invalid_graphs_give_clear_errors(nodes, edges, message):
    g = build(nodes, edges)
    with pytest.raises(ValueError, match=message):
        g.fit(X4, random_state=0)


def test_building_errors():
    g = ModelGraph()
    g.add_node("a", Categorical(2))
    with pytest.raises(ValueError, match="already a node named 'a'"):
        g.add_node("a", Categorical(2))
    with pytest.raises(ValueError, match="no node named 'zz'"):
        g.add_edge("a", "zz")
    with pytest.raises(ValueError, match="unit= applies to Categorical"):
        g.add_node("m", MarkovChain(2), unit="row")
    with pytest.raises(ValueError, match="not a graph node"):
        g.add_node("junk", object())
    g.add_node("x", Gaussian())
    g.add_edge("a", "x")
    with pytest.raises(ValueError, match="not fitted"):
        g.predict(X4, node="a")
    g.initialize(X4, random_state=0)
    with pytest.raises(ValueError, match="must have shape"):
        g.set_parameters("a", weights_=np.ones(3) / 3)


def test_model_graph_example_runs(capsys):
    import runpy

    from conftest import ROOT

    module = runpy.run_path(str(ROOT / "examples" / "model_graph.py"))
    module["main"](["--quick"])
    out = capsys.readouterr().out
    for recipe in ("(a)", "(b)", "(c)", "(d)"):
        assert recipe in out


def test_squarem_on_a_graph_reaches_the_same_optimum():
    X, lengths, _ = hmm_data(seed=11, K=2, n_seq=6)
    fits = {}
    for accelerate in (None, "squarem"):
        g = ModelGraph()
        g.add_node("chain", MarkovChain(2))
        g.add_node("mix", Categorical(2))
        g.add_node("obs", Gaussian("diag"))
        g.add_edge("chain", "mix")
        g.add_edge("mix", "obs")
        fit_quietly(g, X, lengths, max_iter=400, tol=1e-9, random_state=1, accelerate=accelerate)
        # The Gaussian node's covariance prior makes this MAP-EM: what never decreases is
        # the log-likelihood plus the log-prior (the log-likelihood alone dips at the end).
        assert_monotone(g.result_.objective_history)
        fits[accelerate] = g
    plain, fast = fits[None], fits["squarem"]
    assert fast.result_.log_likelihood >= plain.result_.log_likelihood - 1e-3
    assert fast.result_.n_e_steps < plain.result_.n_e_steps
    theta = fast.get_param_vector()
    assert fast.set_param_vector(theta)
    bad = theta.copy()
    bad[0] = -1.0  # a negative start probability is outside the parameter space
    kept = fast.get_param_vector()
    assert not fast.set_param_vector(bad)
    np.testing.assert_array_equal(fast.get_param_vector(), kept)  # unchanged by the refusal
    np.testing.assert_allclose(kept, theta, rtol=1e-14)


def test_graphs_round_trip_through_model_files(tmp_path):
    from latentem.persistence import load

    X, lengths, _ = hmm_data(seed=12, K=2, n_seq=8, length=100)
    mixed = np.column_stack([X, (X[:, 0] > 0).astype(float), np.abs(np.round(X[:, 1]))])
    graphs = []
    g = ModelGraph()
    g.add_node("cluster", Categorical(2), unit="sequence")
    g.add_node("dynamics", latentem.GaussianHMM(2, covariance_type="diag"))
    g.add_edge("cluster", "dynamics")
    graphs.append((g, X, lengths, "cluster"))
    g = ModelGraph()
    g.add_node("chain", MarkovChain(2))
    g.add_node("mix", Categorical(2))
    g.add_node("obs", Gaussian("diag", covars_prior=0.0, reg_covar=1e-3), columns=[0, 1])
    g.add_edge("chain", "mix")
    g.add_edge("mix", "obs")
    graphs.append((g, X, lengths, "chain"))
    g = ModelGraph()
    g.add_node("cluster", Categorical(2))
    g.add_node("pos", Gaussian("full"), columns=[0, 1])
    g.add_node("sign", Discrete(), columns=[2])
    g.add_node("count", Poisson(), columns=[3])
    for child in ("pos", "sign", "count"):
        g.add_edge("cluster", child)
    graphs.append((g, mixed, None, "cluster"))
    for i, (g, data, lens, node) in enumerate(graphs):
        fit_quietly(g, data, lens, max_iter=20, random_state=0)
        path = tmp_path / f"graph{i}.lem"
        g.save(path)
        again = load(path)
        assert again.describe() == g.describe()
        np.testing.assert_array_equal(
            again.predict_proba(data, lens, node=node), g.predict_proba(data, lens, node=node)
        )
        assert again.score(data, lens) == g.score(data, lens)
        np.testing.assert_array_equal(again.history_, g.history_)


def test_graph_with_a_user_factory_cannot_be_saved(tmp_path):
    from latentem.families.poisson import PoissonFamily
    from latentem.graph import Family

    g = ModelGraph()
    g.add_node("cluster", Categorical(2))
    g.add_node("counts", Family(lambda n: PoissonFamily(n)))
    g.add_edge("cluster", "counts")
    with pytest.raises(ValueError, match="your own factory"):
        g.save(tmp_path / "g.lem")


def test_a_row_level_graph_fits_a_file_block_by_block(tmp_path):
    rng = np.random.default_rng(13)
    n = 3000
    z = rng.integers(2, size=n)
    X = np.column_stack(
        [
            rng.normal(np.array([-3.0, 3.0])[z], 1.0),
            rng.poisson([2.0, 9.0], size=(n, 2))[np.arange(n), z],
        ]
    )
    path = tmp_path / "table.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")

    def graph():
        g = ModelGraph()
        g.add_node("cluster", Categorical(2))
        g.add_node("value", Gaussian("diag"), columns=[0])
        g.add_node("count", Poisson(), columns=[1])
        g.add_edge("cluster", "value")
        g.add_edge("cluster", "count")
        g.initialize(X, random_state=0)
        return g

    in_memory, chunked = graph(), graph()
    fit_quietly(in_memory, X, max_iter=6, tol=0, warm_start=True)
    fit_quietly(
        chunked, latentem.Chunked(mapped, block_rows=700), max_iter=6, tol=0, warm_start=True
    )
    np.testing.assert_allclose(chunked.history_, in_memory.history_, rtol=1e-9)
    np.testing.assert_allclose(
        chunked.parameters("count")["lambdas_"],
        in_memory.parameters("count")["lambdas_"],
        rtol=1e-9,
    )


def test_sequence_graphs_fit_out_of_core_without_splitting_sequences(tmp_path):
    """A mixture of HMMs on a memmap and on a dask array: the in-memory fit."""
    rng = np.random.default_rng(8)
    lengths = rng.integers(30, 120, 40)
    kind = rng.integers(0, 2, len(lengths))  # which dynamics each sequence follows
    rows = []
    for L, k in zip(lengths, kind):
        stay = 0.95 if k == 0 else 0.5
        s = [0]
        for _ in range(L - 1):
            s.append(s[-1] if rng.random() < stay else 1 - s[-1])
        rows.append(rng.normal(np.array([-2.0, 2.0])[s], 1.0))
    X = np.concatenate(rows)[:, None]
    path = tmp_path / "seq.npy"
    np.save(path, X)

    def graph():
        g = ModelGraph()
        g.add_node("kind", Categorical(2, unit="sequence"))
        g.add_node("chain", MarkovChain(2))
        g.add_node("value", Gaussian("diag"))
        g.add_edge("kind", "chain")
        g.add_edge("chain", "value")
        g.initialize(X, lengths, random_state=0)
        return g

    in_memory, chunked, on_dask = graph(), graph(), graph()
    fit_quietly(in_memory, X, lengths, max_iter=8, tol=0, warm_start=True)
    blocks = latentem.Chunked(np.load(path, mmap_mode="r"), block_rows=500)
    fit_quietly(chunked, blocks, lengths, max_iter=8, tol=0, warm_start=True)
    fit_quietly(
        on_dask, da.from_array(X, chunks=(500, 1)), lengths, max_iter=8, tol=0, warm_start=True
    )
    np.testing.assert_array_equal(on_dask.history_, chunked.history_)  # same blocks, same bits
    np.testing.assert_allclose(chunked.history_, in_memory.history_, rtol=1e-9)
    for name in ("kind", "chain", "value"):
        for key, value in in_memory.parameters(name).items():
            np.testing.assert_allclose(chunked.parameters(name)[key], value, rtol=1e-9, atol=1e-12)


def test_chain_node_with_a_stationary_start_equals_the_hmm_and_round_trips(tmp_path):
    from latentem.persistence import load

    X, lengths, _ = hmm_data(seed=5)
    v = start_values(X, 3, seed=2)
    plain = latentem.GaussianHMM(3, "diag", init_params="", n_iter=10, tol=0, initial="stationary")
    plain.transmat_ = v["transmat"]
    plain.means_, plain.covars_ = v["means"], v["covars"]
    fit_quietly(plain, X, lengths)

    g = ModelGraph()
    g.add_node("chain", MarkovChain(3, initial="stationary"))
    g.add_node("obs", Gaussian("diag", reg_covar=0.0))
    g.add_edge("chain", "obs")
    g.initialize(X, lengths, random_state=0)
    g.set_parameters("chain", transmat_=v["transmat"][None])
    g.set_parameters("obs", means_=v["means"], covariances_=v["covars"])
    fit_quietly(g, X, lengths, max_iter=10, tol=0, warm_start=True)

    np.testing.assert_allclose(g.history_, plain.history_, rtol=1e-10)
    assert np.all(np.diff(g.history_) >= -1e-9 * np.abs(g.history_[1:]))
    params = g.parameters("chain")
    np.testing.assert_allclose(params["transmat_"][0], plain.transmat_, rtol=1e-7, atol=1e-12)
    assert "startprob_" not in params  # it follows transmat_, as the HMM's does
    np.testing.assert_allclose(plain.startprob_ @ plain.transmat_, plain.startprob_, atol=1e-10)
    np.testing.assert_allclose(
        g.predict_proba(X, lengths, node="chain"), plain.predict_proba(X, lengths), atol=1e-7
    )
    assert "stationary start" in g.describe()

    path = tmp_path / "stationary.lem"
    g.save(path)
    again = load(path)
    assert again.describe() == g.describe()
    assert again.score(X, lengths) == g.score(X, lengths)
    with pytest.raises(ValueError, match="free.*stationary"):
        MarkovChain(3, initial=np.ones(3) / 3)
