"""The public behaviour hmmlearn's users rely on, kept by our own tests.

These restate, in our own code, what hmmlearn's test suite expects of
GaussianHMM, GMMHMM, CategoricalHMM and PoissonHMM through their public API
(``benchmarks/peer_tests_hmmlearn.py`` runs hmmlearn's files themselves).
They need no hmmlearn.
"""

# hmmlearn's random_state=None draws from NumPy's legacy global generator: testing that
# needs np.random.seed (the state is restored after each such test).
# ruff: noqa: NPY002

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from latentem import (
    GMMHMM,
    CategoricalHMM,
    ConvergenceWarning,
    GaussianHMM,
    LikelihoodDecreaseWarning,
    PoissonHMM,
)
from latentem.models.hmm import ConvergenceMonitor

COV_TYPES = ("spherical", "diag", "full", "tied")


def gaussian_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    states = np.repeat([0, 1, 0, 1, 2, 0], n // 6)
    centres = np.array([[-3.0, 0.0], [3.0, 1.0], [0.0, 5.0]])
    return centres[states] + rng.normal(scale=0.7, size=(len(states), 2))


def symbols(n=240, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, size=(n, 1))


def estimators():
    """One small, unfitted model of each class with data it fits."""
    counts = np.random.default_rng(1).poisson(np.repeat([1.0, 6.0], 120)).reshape(-1, 1)
    return [
        (GaussianHMM(2, random_state=0), gaussian_data()),
        (GMMHMM(2, n_mix=2, random_state=0), gaussian_data()),
        (CategoricalHMM(2, random_state=0), symbols()),
        (PoissonHMM(2, random_state=0), counts),
    ]


# ------------------------------------------------------------------ constructor settings
@pytest.mark.parametrize(("model", "X"), estimators())
def test_implementation_log_and_scaling_give_the_same_numbers(model, X):
    fits = []
    for implementation in ("log", "scaling"):
        fitted = model.set_params(implementation=implementation, n_iter=5).fit(X)
        fits.append((fitted.score(X), fitted.predict_proba(X), fitted.transmat_.copy()))
    assert fits[0][0] == fits[1][0]
    np.testing.assert_array_equal(fits[0][1], fits[1][1])
    np.testing.assert_array_equal(fits[0][2], fits[1][2])


def test_implementation_is_checked():
    with pytest.raises(ValueError, match="implementation must be one of"):
        GaussianHMM(2, implementation="fast").fit(gaussian_data())


@pytest.mark.parametrize(("model", "X"), estimators())
def test_n_iter_zero_initialises_and_runs_no_em_step(model, X):
    model.set_params(n_iter=0).fit(X)
    assert model.n_iter_ == 0 and len(model.history_) == 0 and model.converged_ is False
    started = model.transmat_.copy()
    assert np.isfinite(model.score(X))
    # one EM step from the same seed starts from the same parameters and moves them
    one = type(model)(**{**model.get_params(), "n_iter": 1}).fit(X)
    assert len(one.history_) == 1
    assert not np.array_equal(one.transmat_, started)
    assert one.history_[0] == pytest.approx(model.score(X), rel=1e-12)


def test_n_iter_must_not_be_negative():
    with pytest.raises(ValueError, match="n_iter must be >= 0"):
        GaussianHMM(2, n_iter=-1).fit(gaussian_data())


# ------------------------------------------------------------------ init_params rules
def test_a_parameter_set_by_hand_and_reinitialised_is_logged(caplog):
    model = GaussianHMM(2, n_iter=2, random_state=0)
    model.startprob_ = np.array([0.9, 0.1])
    with caplog.at_level(logging.WARNING):
        model.fit(gaussian_data())
    messages = [r.getMessage() for r in caplog.records]
    assert any("'startprob_'" in m and "will be overwritten" in m for m in messages)
    assert not any("'transmat_'" in m for m in messages)


def test_refitting_a_fitted_or_loaded_model_logs_nothing(caplog, tmp_path):
    import latentem

    model = GaussianHMM(2, n_iter=2, random_state=0).fit(gaussian_data())
    model.score(gaussian_data())  # checks may copy the arrays: still not set by hand
    model.save(tmp_path / "model.lem")
    loaded = latentem.load(tmp_path / "model.lem")
    with caplog.at_level(logging.WARNING):
        model.fit(gaussian_data(seed=1))
        loaded.fit(gaussian_data(seed=1))
    assert not [r for r in caplog.records if "will be overwritten" in r.getMessage()]


def test_covars_set_by_hand_are_named_as_hmmlearn_names_them(caplog):
    model = GaussianHMM(2, "diag", n_iter=1, random_state=0)
    model.covars_ = np.ones((2, 2))
    model.means_ = np.zeros((2, 2))
    with caplog.at_level(logging.WARNING):
        model.fit(gaussian_data())
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "'covars_'" in text and "'means_'" in text


def test_empty_init_params_initialises_only_what_is_missing():
    X = gaussian_data()
    means = np.array([[-3.0, 0.0], [3.0, 1.0]])
    model = GaussianHMM(2, init_params="", params="", n_iter=1, random_state=0)
    model.means_ = means.copy()
    model.fit(X)  # no letter trained: the fitted values are the initial ones
    np.testing.assert_array_equal(model.means_, means)
    assert model.startprob_.shape == (2,) and model.transmat_.shape == (2, 2)
    assert model.covars_.shape == (2, 2, 2)


def test_init_params_letters_still_exclude_parameters_that_are_set():
    X = symbols()
    emission = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    model = CategoricalHMM(2, init_params="st", params="st", n_iter=3, random_state=0)
    model.emissionprob_ = emission.copy()
    model.fit(X)
    np.testing.assert_array_equal(model.emissionprob_, emission)


# ------------------------------------------------------------------ attributes and shapes
def test_categorical_n_features_is_set_by_fit():
    model = CategoricalHMM(2, n_iter=2, random_state=0)
    assert model.n_features is None
    model.fit(np.array([[0], [1], [3], [2], [3], [1]] * 10))
    assert model.n_features == 4 and model.emissionprob_.shape == (2, 4)


def test_gaussian_n_features_can_be_set_before_sampling():
    model = GaussianHMM(2, "spherical")
    model.startprob_ = np.array([0.6, 0.4])
    model.transmat_ = np.array([[0.4, 0.6], [0.9, 0.1]])
    model.means_ = np.array([[3.0], [5.0]])
    model.covars_ = np.array([4.0, 3.0])
    model.n_features = 1
    X, states = model.sample(200, random_state=0)
    assert X.shape == (200, 1) and states.shape == (200,)
    with pytest.raises(ValueError, match="n_features"):
        model.n_features = 0


def test_gaussian_n_features_set_by_hand_is_checked_against_X():
    model = GaussianHMM(2)
    model.n_features = 3
    with pytest.raises(ValueError, match="features"):
        model.fit(gaussian_data())


@pytest.mark.parametrize("layout", [(2,), (2, 1), (2, 1, 1, 1)])
def test_spherical_covars_accept_hmmlearns_layouts(layout):
    model = GaussianHMM(2, "spherical", init_params="", n_iter=1)
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.8, 0.2], [0.2, 0.8]])
    model.means_ = np.array([[-2.0, 0.0], [2.0, 1.0]])
    model.covars_ = np.array([1.5, 0.5]).reshape(layout)
    expected = np.stack([1.5 * np.eye(2), 0.5 * np.eye(2)])
    np.testing.assert_array_equal(model.covars_, expected)
    assert np.isfinite(model.score(gaussian_data()))


def test_stationary_distribution():
    model = GaussianHMM(2)
    model.transmat_ = np.array([[0.9, 0.1], [0.3, 0.7]])
    np.testing.assert_allclose(model.get_stationary_distribution(), [0.75, 0.25])


# ------------------------------------------------------------------ randomness
@pytest.fixture
def keep_global_random_state():
    state = np.random.get_state()
    yield
    np.random.set_state(state)


@pytest.mark.parametrize(("model", "X"), estimators())
@pytest.mark.usefixtures("keep_global_random_state")
def test_random_state_none_follows_numpys_global_seed(model, X):
    model.set_params(random_state=None, n_iter=3)
    np.random.seed(7)
    first = model.fit(X).transmat_.copy()
    np.random.seed(7)
    again = model.fit(X).transmat_.copy()
    np.random.seed(8)
    other = model.fit(X).transmat_.copy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.usefixtures("keep_global_random_state")
def test_sample_with_random_state_none_follows_numpys_global_seed():
    model = GaussianHMM(2, n_iter=2, random_state=0).fit(gaussian_data())
    model.random_state = None
    np.random.seed(3)
    a = model.sample(20)[0]
    np.random.seed(3)
    np.testing.assert_array_equal(a, model.sample(20)[0])


# ------------------------------------------------------------------ missing symbols
def test_categorical_missing_marker_is_minus_one_or_nan():
    X = symbols()
    with_gaps = X.copy()
    with_gaps[::7] = -1
    as_float = X.astype(float)
    as_float[::7] = np.nan
    a = CategoricalHMM(2, n_iter=5, random_state=0).fit(with_gaps)
    b = CategoricalHMM(2, n_iter=5, random_state=0).fit(as_float)
    assert a.score(with_gaps) == pytest.approx(b.score(as_float), rel=1e-12)


@pytest.mark.parametrize("bad", [-2, -7])
def test_categorical_other_negative_symbols_are_rejected(bad):
    X = symbols()
    X[3] = bad
    with pytest.raises(ValueError, match=r"Negative values .* \(-1 or NaN marks a gap\)"):
        CategoricalHMM(2).fit(X)


# ------------------------------------------------------------------ convergence reporting
@pytest.mark.parametrize(("model", "X"), estimators())
def test_using_all_of_n_iter_gives_no_warning_and_monitor_tells(model, X):
    model.set_params(n_iter=2, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(X)
    monitor = model.monitor_
    assert isinstance(monitor, ConvergenceMonitor)
    assert monitor.iter == 2 and len(monitor.history) == 2
    assert monitor.converged is False and model.converged_ is False
    # the monitor sees the objective EM never lowers; history_ is the log-likelihood
    np.testing.assert_array_equal(list(monitor.history), monitor.result.objective_history)
    if model.log_prior() == 0.0:  # flat priors: the two are the same numbers
        np.testing.assert_array_equal(list(monitor.history), model.history_)


def test_the_monitor_reports_what_em_never_lowers_not_the_log_likelihood():
    dips = []
    for seed in (1, 3):
        X = np.random.default_rng(seed).uniform(0, 1, (90, 4))
        model = GMMHMM(2, n_mix=2, covariance_type="full", n_iter=100, tol=0.0)
        model.set_params(random_state=seed).fit(X, lengths=[30, 30, 30])
        reports = np.asarray(model.monitor_.history)
        assert np.diff(reports).min() >= -1e-12 * np.abs(reports).max()
        dips.append(np.diff(model.history_).min())
    # here the log-likelihood alone does go down (the min_covar prior trades it off),
    # by more than hmmlearn's strict monitor allows at tol=1e-6
    assert min(dips) < -1e-6


class NeverLowerMonitor(ConvergenceMonitor):
    """hmmlearn's strict monitor: every report at least the one before (up to tol),
    and converged only when the change falls under tol."""

    @property
    def converged(self):
        assert not np.isnan(self.history[-1])
        if len(self.history) < 2:
            return False
        assert self.history[-1] >= self.history[-2] - self.tol, "the reports went down"
        return self.history[-1] - self.history[-2] < self.tol


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_a_strict_monitor_sees_no_decrease_with_the_covariance_prior(covariance_type):
    # min_covar's prior moves the log-likelihood alone; the reports never go down
    parts = mixture_sequences()
    for order in ([0, 1, 2], [2, 1, 0]):
        X = np.concatenate([parts[i] for i in order])
        lengths = [len(parts[i]) for i in order]
        model = GMMHMM(2, n_mix=2, covariance_type=covariance_type, n_iter=40, random_state=1)
        model.startprob_ = np.full(2, 0.5)
        model.transmat_ = np.full((2, 2), 0.5)
        model.set_params(init_params="mcw")
        model.monitor_ = NeverLowerMonitor(model.monitor_.tol, model.monitor_.n_iter, False)
        model.fit(X, lengths)  # the monitor asserts at every iteration
        reports = np.asarray(model.monitor_.history)
        assert len(reports) > 10 and np.all(np.diff(reports) >= -model.tol)


def test_monitor_exists_before_fit_with_the_settings():
    model = GaussianHMM(2, tol=1e-3, n_iter=7)
    assert (model.monitor_.tol, model.monitor_.n_iter, model.monitor_.iter) == (1e-3, 7, 0)


def test_converged_fit_says_so():
    model = GaussianHMM(3, n_iter=500, tol=1e-4, random_state=0).fit(gaussian_data())
    assert model.converged_ and model.monitor_.converged
    assert model.monitor_.iter == model.n_iter_ < 500


def test_a_monitor_subclass_decides_when_to_stop():
    class StopAtThree(ConvergenceMonitor):
        @property
        def converged(self):
            return self.iter >= 3

    model = GaussianHMM(2, n_iter=50, random_state=0)
    model.monitor_ = StopAtThree(model.monitor_.tol, model.monitor_.n_iter, False)
    model.fit(gaussian_data())
    assert model.monitor_.iter == 3 and model.n_iter_ == 3
    assert isinstance(model.monitor_, StopAtThree)


# ------------------------------------------------------------------ GMMHMM and sequences
def mixture_sequences(seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for length in (60, 45, 75):
        states = np.repeat([0, 1], length // 2)
        parts.append(np.where(states[:, None] == 0, -2.0, 2.0) + rng.normal(size=(len(states), 2)))
    return parts


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gmmhmm_does_not_depend_on_the_order_of_sequences(covariance_type):
    parts = mixture_sequences()
    scores = []
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        X = np.concatenate([parts[i] for i in order])
        lengths = [len(parts[i]) for i in order]
        model = GMMHMM(2, n_mix=2, covariance_type=covariance_type, n_iter=30, random_state=3)
        scores.append(model.fit(X, lengths).score(X, lengths))
    np.testing.assert_allclose(scores, scores[0], rtol=1e-9)


def test_gmmhmm_initial_means_do_not_depend_on_row_order():
    X = np.concatenate(mixture_sequences())
    shuffled = X[np.random.default_rng(0).permutation(len(X))]
    a = GMMHMM(2, n_mix=2, n_iter=0, random_state=5).fit(X)
    b = GMMHMM(2, n_mix=2, n_iter=0, random_state=5).fit(shuffled)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gmmhmm_with_min_covar_never_lowers_its_objective(covariance_type):
    for seed in range(4):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0, 1, (90, 4))
        model = GMMHMM(2, n_mix=2, covariance_type=covariance_type, n_iter=100, tol=0.0)
        model.set_params(random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error", LikelihoodDecreaseWarning)
            model.fit(X, lengths=[30, 30, 30])
        objective = model.monitor_.objective_history
        assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective).max())
        # the log-likelihood alone may move only by what the small prior shifts
        assert np.diff(model.history_).min() > -1e-2


def test_gmmhmm_log_prior_counts_the_covariance_prior():
    model = GMMHMM(2, n_mix=2, covariance_type="diag", n_iter=3, random_state=0)
    model.fit(gaussian_data())
    with_prior = model.log_prior()
    model.min_covar = 0.0
    assert model.log_prior() != with_prior


# ------------------------------------------------------------------ degenerate data
ZERO_VARIANCE = np.column_stack(
    [
        np.full(9, 715.0),
        np.arange(585.0, 0.0, -65.0),
        [0.0, 1.05, 0.72, -0.46, -6.43, -2.9, 8.46, 4.09, -1.22],
        [0.0, -60.4, -52.7, -78.1, -56.0, -78.0, -70.3, -58.4, -44.8],
    ]
)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gaussian_hmm_fits_a_constant_column(covariance_type):
    for seed in range(20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = GaussianHMM(3, covariance_type, random_state=seed).fit(ZERO_VARIANCE)
        assert np.all(np.linalg.eigvalsh(model.covars_) > 0)


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gaussian_hmm_fits_twelve_rows_in_three_sequences(covariance_type):
    for seed in range(20):
        X = np.random.default_rng(seed).random((12, 3))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = GaussianHMM(3, covariance_type, random_state=seed)
            model.fit(X, lengths=[3, 4, 5])
        assert np.isfinite(model.score(X, lengths=[3, 4, 5]))


def test_min_covar_is_added_only_where_a_covariance_is_singular():
    from latentem.families.gaussian_hmm import GaussianEmission

    fam = GaussianEmission(2, "full", min_covar=1e-3)
    good = np.stack([np.eye(2), 2.0 * np.eye(2)])
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    fixed = fam._regularised(np.stack([good[0], singular]))
    np.testing.assert_array_equal(fixed[0], good[0])
    np.testing.assert_allclose(fixed[1], singular + 1e-3 * np.eye(2))


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gmmhmm_one_sequence_and_five_agree(covariance_type):
    # the same rows as one sequence or five: only four transitions differ
    rng = np.random.default_rng(11)
    centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, -2.0]])
    X = centres[rng.integers(0, 3, 1000)] + rng.normal(size=(1000, 2))
    fits = []
    for lengths in (None, [200] * 5):
        model = GMMHMM(3, n_mix=2, covariance_type=covariance_type, random_state=1)
        model.startprob_ = np.full(3, 1 / 3)
        model.transmat_ = np.full((3, 3), 1 / 3)
        fits.append(model.set_params(init_params="mcw").fit(X, lengths))
    one, five = fits
    np.testing.assert_allclose(one.means_, five.means_, atol=1e-2)
    np.testing.assert_allclose(one.weights_, five.weights_, atol=1e-2)
