"""The contract every emission family and every estimator keeps, checked for all of them.

Families: statistics add up over row splits, registration (model files,
fresh copies), a fit inside a Mixture, an HMM and a model graph that never
lowers the likelihood, a save/load round trip, recovery of the parameters
that generated the data, and clear errors for bad input. Estimators: the
same from the outside. Kernels of :mod:`latentem.kernels.discrete` against
plain NumPy references.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import latentem
from latentem import registry, tree
from latentem.families import (
    BernoulliFamily,
    CategoricalColumnsFamily,
    CategoricalFamily,
    GaussianEmission,
    GaussianMixtureEmission,
    PoissonFamily,
    StudentTFamily,
)
from latentem.families.regression import GaussianRegressionFamily
from latentem.kernels.discrete import (
    categorical_accumulate,
    categorical_logprob,
    masked_weighted_sums,
    poisson_logprob,
)

K = 2


def _gaussian_data(rng, n=240):
    z = rng.integers(K, size=n)
    X = rng.normal(size=(n, 2)) + np.where(z[:, None] == 0, -3.0, 3.0)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _poisson_data(rng, n=240):
    z = rng.integers(K, size=n)
    X = rng.poisson(np.where(z[:, None] == 0, [1.0, 6.0], [8.0, 2.0])).astype(float)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _symbol_data(rng, n=240):
    z = rng.integers(K, size=n)
    X = np.where(z == 0, rng.choice(3, n, p=[0.8, 0.1, 0.1]), rng.choice(3, n, p=[0.1, 0.1, 0.8]))
    return X.reshape(-1, 1)


def _columns_data(rng, n=240):
    z = rng.integers(K, size=n)
    a = np.where(rng.random(n) < 0.85, z, 1 - z)
    b = np.where(rng.random(n) < 0.85, 2 * z, 1)
    X = np.column_stack([a, b]).astype(float)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _binary_data(rng, n=240):
    z = rng.integers(K, size=n)
    X = (rng.random((n, 4)) < np.where(z[:, None] == 0, 0.85, 0.15)).astype(float)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _regression_data(rng, n=240):
    """Rows [y, x]: two regression lines, 5% of the responses missing."""
    z = rng.integers(K, size=n)
    x = rng.normal(size=n)
    y = np.where(z == 0, 1.0 + 2.0 * x, -2.0 - 1.0 * x) + rng.normal(0, 0.3, n)
    y[rng.random(n) < 0.05] = np.nan
    return np.column_stack([y, x])


#: name -> (a fresh K-component family, a data generator)
FAMILIES = {
    "gaussian-diag": (lambda: GaussianEmission(K, "diag"), _gaussian_data),
    "gaussian-full": (lambda: GaussianEmission(K, "full"), _gaussian_data),
    "gmm-emission": (lambda: GaussianMixtureEmission(K, n_mix=2), _gaussian_data),
    "poisson": (lambda: PoissonFamily(K), _poisson_data),
    "categorical": (lambda: CategoricalFamily(K), _symbol_data),
    "categorical-columns": (lambda: CategoricalColumnsFamily(K), _columns_data),
    "bernoulli": (lambda: BernoulliFamily(K), _binary_data),
    "student-t-full": (lambda: StudentTFamily(K, "full"), _gaussian_data),
    "student-t-diag": (lambda: StudentTFamily(K, "diag", fit_dof=False, dof=5.0), _gaussian_data),
    "regression": (lambda: GaussianRegressionFamily(K), _regression_data),
}


def _fitted_family(name, seed=0):
    make, data = FAMILIES[name]
    rng = np.random.default_rng(seed)
    family = make()
    X = family.validate_data(data(rng))
    family.init_params(X, rng, family.param_letters)
    family.check_params()
    return family, X, rng


def _assert_tree_close(a, b, rtol=1e-10, atol=1e-10):
    la, lb = tree.leaves(a), tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _monotone(history):
    h = np.asarray(history)
    assert np.all(np.diff(h) >= -1e-8 * np.abs(h[1:]).clip(1.0)), np.diff(h).min()


# ------------------------------------------------------------------------------ families
@pytest.mark.parametrize("name", FAMILIES)
def test_family_statistics_add_up_over_row_splits(name):
    family, X, rng = _fitted_family(name)
    W = rng.dirichlet(np.ones(K), size=len(X))
    whole = family.accumulate(X, W)
    halves = tree.add(family.accumulate(X[:97], W[:97]), family.accumulate(X[97:], W[97:]))
    _assert_tree_close(whole, halves)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_is_registered_and_copies_itself(name):
    family, _, _ = _fitted_family(name)
    found = registry.entry_for(type(family))
    assert found is not None and found.kind == "family"
    assert all(hasattr(family, a) for a in found.fitted)
    copy = family.fresh(K + 1)
    assert type(copy) is type(family) and copy.n_components == K + 1
    assert copy.get_config() == family.get_config()
    assert isinstance(family, latentem.EmissionFamily)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_in_a_mixture_is_monotone_and_round_trips(name, tmp_path):
    make, data = FAMILIES[name]
    X = data(np.random.default_rng(1))
    X_before = X.copy()
    model = latentem.Mixture(K, emission=make(), tol=0, max_iter=25, random_state=0).fit(X)
    np.testing.assert_array_equal(X, X_before)  # never modified in place
    _monotone(model.history_)
    path = tmp_path / "m.lem"
    model.save(path)
    again = latentem.load(path)
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), rtol=1e-12)
    assert again.score(X) == pytest.approx(model.score(X), rel=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_in_an_hmm_is_monotone(name):
    make, data = FAMILIES[name]
    X = data(np.random.default_rng(2))
    model = latentem.HMM(K, emission=make(), n_iter=15, tol=0, random_state=0)
    model.fit(X, lengths=[120, 120])
    _monotone(model.history_)
    assert model.predict(X, lengths=[120, 120]).shape == (len(X),)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_in_a_model_graph_saves_and_loads(name, tmp_path):
    make, data = FAMILIES[name]
    X = data(np.random.default_rng(3))
    g = latentem.ModelGraph()
    g.add_node("cluster", latentem.Categorical(K))
    g.add_node("obs", latentem.Family(make().fresh(1)))
    g.add_edge("cluster", "obs")
    g.fit(X, max_iter=15, random_state=0)
    _monotone(g.history_)
    g.save(tmp_path / "g.lem")
    again = latentem.load(tmp_path / "g.lem")
    np.testing.assert_allclose(
        again.predict_proba(X, node="cluster"), g.predict_proba(X, node="cluster"), rtol=1e-10
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_family_recovers_what_it_sampled(name):
    """Fit a mixture to its own samples: the fit is at least as likely as the truth."""
    make, data = FAMILIES[name]
    truth = latentem.Mixture(K, emission=make(), max_iter=50, random_state=0).fit(
        data(np.random.default_rng(4))
    )
    truth.random_state = 5
    if isinstance(truth.emission, GaussianRegressionFamily):  # responses given regressors
        rng = np.random.default_rng(5)
        x = rng.normal(size=600)
        states = rng.choice(K, size=600, p=truth.weights_)
        X = np.column_stack([truth.emission.sample_given(x, states, rng), x])
    else:
        X, _ = truth.sample(600)
    refit = latentem.Mixture(K, emission=make(), max_iter=200, n_init=2, random_state=1).fit(X)
    assert refit.score(X) >= truth.score(X) - 1e-6


@pytest.mark.parametrize("name", FAMILIES)
def test_family_rejects_bad_input(name):
    family, _, _ = _fitted_family(name)
    for bad in (np.zeros((2, 2, 2)), np.array([["a", "b"], ["c", "d"]])):
        with pytest.raises(ValueError):
            family.validate_data(bad)


def test_an_unregistered_family_gets_a_clear_error(tmp_path):
    class Unregistered(PoissonFamily):
        pass

    X = _poisson_data(np.random.default_rng(0))
    model = latentem.Mixture(K, emission=Unregistered(K), max_iter=5, random_state=0).fit(X)
    with pytest.raises(ValueError, match="register"):
        model.save(tmp_path / "u.lem")


def test_a_registered_user_family_round_trips(tmp_path):
    @latentem.register_family(name="tests.Counts")
    class Counts(PoissonFamily):
        pass

    try:
        X = _poisson_data(np.random.default_rng(0))
        model = latentem.Mixture(K, emission=Counts(K), max_iter=10, random_state=0).fit(X)
        model.save(tmp_path / "c.lem")
        again = latentem.load(tmp_path / "c.lem")
        assert type(again.emission) is Counts
        np.testing.assert_allclose(again.emission.lambdas_, model.emission.lambdas_)
    finally:
        registry.unregister("tests.Counts")
    with pytest.raises(ValueError, match="register the same class"):
        latentem.load(tmp_path / "c.lem")


# ------------------------------------------------------------------------------ estimators
def _estimators():
    g = _gaussian_data(np.random.default_rng(5))
    complete = np.nan_to_num(g, nan=0.0)
    p = _poisson_data(np.random.default_rng(6))
    c = _columns_data(np.random.default_rng(7))
    s = _symbol_data(np.random.default_rng(8))
    b = _binary_data(np.random.default_rng(9))
    return {
        "GaussianMixture": (lambda: latentem.GaussianMixture(K, random_state=0), complete),
        "GaussianMixture-gaps": (lambda: latentem.GaussianMixture(K, random_state=0), g),
        "PoissonMixture": (lambda: latentem.PoissonMixture(K, random_state=0), p),
        "CategoricalMixture": (lambda: latentem.CategoricalMixture(K, random_state=0), c),
        "BernoulliMixture": (lambda: latentem.BernoulliMixture(K, random_state=0), b),
        "GaussianHMM": (lambda: latentem.GaussianHMM(K, n_iter=20, random_state=0), complete),
        "GMMHMM": (lambda: latentem.GMMHMM(K, n_mix=2, n_iter=10, random_state=0), complete),
        "PoissonHMM": (lambda: latentem.PoissonHMM(K, n_iter=20, random_state=0), p),
        "CategoricalHMM": (lambda: latentem.CategoricalHMM(K, n_iter=20, random_state=0), s),
    }


ESTIMATORS = _estimators()


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_contract(name, tmp_path):
    make, X = ESTIMATORS[name]
    X_before = X.copy()
    model = make().fit(X)
    np.testing.assert_array_equal(X, X_before)
    _monotone(model.history_)
    assert math.isfinite(model.score(X))
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # parameters survive get_params / set_params and model files
    params = model.get_params()
    assert make().set_params(**params).get_params().keys() == params.keys()
    model.save(tmp_path / "e.lem")
    again = latentem.load(tmp_path / "e.lem")
    np.testing.assert_allclose(again.predict_proba(X), proba, rtol=1e-10, atol=1e-12)
    assert again.bic(X) == pytest.approx(model.bic(X), rel=1e-12)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_bad_input(name):
    make, X = ESTIMATORS[name]
    with pytest.raises(ValueError):
        make().fit(X[:0])
    model = make().fit(X)
    wrong = np.hstack([X, X]) if X.shape[1] > 1 or "Categorical" not in name else X[:, :0]
    with pytest.raises(ValueError):
        model.predict(wrong)


# ------------------------------------------------------------------------------ kernels
def test_discrete_kernels_match_numpy():
    rng = np.random.default_rng(0)
    n, Kc, S, D = 300, 3, 5, 4
    symbols = rng.integers(-1, S, size=n)
    log_e = np.log(rng.dirichlet(np.ones(S), size=Kc))
    ref = np.where(symbols[:, None] >= 0, log_e[:, symbols.clip(0)].T, 0.0)
    np.testing.assert_allclose(categorical_logprob(symbols, log_e), ref, rtol=1e-14)

    W = rng.dirichlet(np.ones(Kc), size=n)
    ref = np.zeros((Kc, S))
    for t in range(n):
        if symbols[t] >= 0:
            ref[:, symbols[t]] += W[t]
    np.testing.assert_allclose(categorical_accumulate(symbols, W, S), ref, rtol=1e-12)

    X = rng.poisson(3.0, size=(n, D)).astype(float)
    X[rng.random(X.shape) < 0.1] = np.nan
    rates = rng.gamma(2.0, 2.0, size=(Kc, D))
    from scipy.stats import poisson

    per = poisson.logpmf(X[:, None, :], rates[None])  # (n, K, D)
    ref = np.where(np.isnan(X)[:, None, :], 0.0, per).sum(axis=2)
    np.testing.assert_allclose(poisson_logprob(X, rates), ref, rtol=1e-12)

    obs = ~np.isnan(X)
    wsum, xsum = masked_weighted_sums(X, W)
    np.testing.assert_allclose(wsum, W.T @ obs, rtol=1e-12)
    np.testing.assert_allclose(xsum, W.T @ np.where(obs, X, 0.0), rtol=1e-12)


def test_every_family_in_the_package_is_registered_and_checked_here():
    """A family file in latentem/families/ registers itself, and this suite covers it."""
    import importlib
    import inspect
    import pkgutil

    import latentem.families as package

    defined = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"latentem.families.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and issubclass(cls, latentem.EmissionFamily)
                and cls is not latentem.EmissionFamily
            ):
                defined.add(cls)
                assert registry.entry_for(cls) is not None, f"{cls.__name__} is not registered"
    covered = {type(make()) for make, _ in FAMILIES.values()}
    assert defined <= covered, defined - covered


def test_one_gap_aware_gaussian_family_under_its_old_name_too():
    """The Gaussian family marginalises NaN itself; model files and code that name
    MissingGaussianFamily get the same class."""
    from latentem.families import GaussianFamily, MissingGaussianFamily

    assert MissingGaussianFamily is GaussianFamily
    assert registry.entry("MissingGaussianFamily").cls is GaussianFamily
    assert registry.entry_for(GaussianFamily).name == "GaussianFamily"  # what files write
    assert issubclass(GaussianEmission, GaussianFamily)  # the HMM's, hmmlearn's names
    gm = latentem.GaussianMixture(2, random_state=0).fit(
        np.random.default_rng(0).normal(size=(40, 2))
    )
    assert type(gm._emission()) is GaussianFamily
    fam = GaussianFamily(2, 2, "diag")
    fam.set_parameters(np.array([[0.0, 0.0], [4.0, 4.0]]), np.ones((2, 2)))
    X = np.array([[0.5, np.nan], [np.nan, np.nan], [4.0, 3.5]])
    lp = fam.log_prob(X)
    # a gap is marginalised: the row scores as its observed cell alone
    np.testing.assert_allclose(lp[0], -0.5 * np.log(2 * np.pi) - 0.5 * np.array([0.25, 12.25]))
    assert np.all(lp[1] == 0.0)  # an all-NaN row carries no evidence
    complete = GaussianFamily(2, 2, "diag")
    complete.set_parameters(fam.means_, fam.covariances_)
    np.testing.assert_array_equal(lp[2], complete.log_prob(X[2:])[0])
