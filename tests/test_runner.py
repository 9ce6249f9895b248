"""The generic EM runner on several models: history, restarts, flags, warnings, SQUAREM."""

import io
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import latentem
from latentem import ConvergenceWarning, LatentModel, LikelihoodDecreaseWarning, fit_em
from latentem.runner import _Progress


def poisson_data(rates=(3.0, 12.0), sizes=(4000, 2000), seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.poisson(r, n) for r, n in zip(rates, sizes)]).astype(float)


class Gauss1D(LatentModel):
    """A 1-D two-component Gaussian mixture subclassing the ABC, without a param vector."""

    def init_params(self, X, rng):
        self.w = np.array([0.5, 0.5])
        self.mu = rng.choice(X, 2, replace=False)
        self.var = np.array([X.var(), X.var()])

    def _log_joint(self, X):
        return (
            np.log(self.w)
            - 0.5 * np.log(2 * np.pi * self.var)
            - 0.5 * (X[:, None] - self.mu) ** 2 / self.var
        )

    def e_step(self, X):
        lj = self._log_joint(X)
        ll = np.logaddexp.reduce(lj, axis=1)
        r = np.exp(lj - ll[:, None])
        return {"n": r.sum(0), "s": r.T @ X, "ss": r.T @ X**2}, float(ll.sum())

    def m_step(self, stats):
        n = stats["n"]
        self.w = n / n.sum()
        self.mu = stats["s"] / n
        self.var = stats["ss"] / n - self.mu**2

    def log_likelihood(self, X):
        return float(np.logaddexp.reduce(self._log_joint(X), axis=1).sum())


class WorseningModel:
    """A broken model: its M-step moves the mean away from the data."""

    def init_params(self, X, rng):
        self.mu = float(X.mean())

    def e_step(self, X):
        return (float(X.sum()), float(len(X))), float(-0.5 * np.sum((X - self.mu) ** 2))

    def m_step(self, stats):
        self.mu += 1.0

    def log_likelihood(self, X):
        return self.e_step(X)[1]


def assert_monotone(history):
    history = np.asarray(history)
    drops = history[:-1] - history[1:]
    assert np.all(drops <= 1e-10 * np.abs(history[:-1])), f"history decreased: {history}"


def test_protocol_accepts_plain_classes_and_subclasses(poisson_mixture_cls):
    assert isinstance(poisson_mixture_cls(), LatentModel)
    assert isinstance(Gauss1D(), LatentModel)
    assert isinstance(poisson_mixture_cls(), latentem.SupportsParamVector)
    assert not isinstance(Gauss1D(), latentem.SupportsParamVector)

    class Incomplete(LatentModel):
        def e_step(self, X):
            return None, 0.0

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_history_never_decreases_and_fit_recovers_rates(poisson_mixture_cls, accelerate):
    X = poisson_data()
    model = poisson_mixture_cls(2)
    result = fit_em(model, X, max_iter=500, tol=1e-9, random_state=0, accelerate=accelerate)
    assert result.converged
    assert result.n_iter == len(result.history)
    assert_monotone(result.history)
    np.testing.assert_allclose(np.sort(model.rates), [3.0, 12.0], rtol=0.05)
    assert result.log_likelihood == result.history[-1]
    assert result.mean_log_likelihood == pytest.approx(result.log_likelihood / len(X))
    # The fitted model is at least as good as the last recorded E-step.
    assert model.log_likelihood(X) >= result.history[-1] - 1e-9 * abs(result.history[-1])


@settings(max_examples=25, deadline=None)
@given(
    rate_a=st.floats(0.5, 20.0),
    rate_b=st.floats(0.5, 20.0),
    n=st.integers(5, 300),
    k=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    accelerate=st.sampled_from([None, "squarem"]),
)
def test_history_monotone_on_random_problems(
    poisson_mixture_cls, rate_a, rate_b, n, k, seed, accelerate
):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.poisson(rate_a, n), rng.poisson(rate_b, n)]).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        result = fit_em(
            poisson_mixture_cls(k), X, max_iter=60, tol=0, random_state=seed, accelerate=accelerate
        )
    assert_monotone(result.history)


def test_gauss_subclass_model_fits():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-3, 1, 3000), rng.normal(4, 0.5, 2000)])
    model = Gauss1D()
    result = fit_em(model, X, max_iter=300, tol=1e-10, random_state=2)
    assert_monotone(result.history)
    order = np.argsort(model.mu)
    np.testing.assert_allclose(model.mu[order], [-3, 4], atol=0.1)
    np.testing.assert_allclose(model.w[order], [0.6, 0.4], atol=0.02)


def test_n_init_keeps_the_best_restart(poisson_mixture_cls):
    X = poisson_data(rates=(2.0, 6.0, 15.0), sizes=(500, 500, 500), seed=5)
    finals = {}

    def remember(info):
        finals[info.restart] = info.model.get_param_vector().copy()

    model = poisson_mixture_cls(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit_em(model, X, max_iter=15, tol=0, n_init=6, random_state=7, callback=remember)
    last = [h[-1] for h in result.histories]
    assert len(result.histories) == 6
    assert len(set(last)) > 1, "restarts should differ for this test to mean anything"
    assert result.best_init == int(np.argmax(last))
    assert result.log_likelihood == max(last)
    np.testing.assert_array_equal(result.history, result.histories[result.best_init])
    np.testing.assert_array_equal(model.get_param_vector(), finals[result.best_init])


@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_same_random_state_gives_identical_fits(poisson_mixture_cls, accelerate):
    X = poisson_data()
    runs = []
    for _ in range(2):
        model = poisson_mixture_cls(3)
        result = fit_em(
            model, X, max_iter=50, tol=0, n_init=3, random_state=11, accelerate=accelerate
        )
        runs.append((result.history, model.get_param_vector()))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    other = fit_em(poisson_mixture_cls(3), X, max_iter=50, tol=0, n_init=3, random_state=12)
    assert not np.array_equal(other.history, runs[0][0])


def test_generator_random_state_is_accepted(poisson_mixture_cls):
    X = poisson_data()
    a = fit_em(poisson_mixture_cls(2), X, random_state=np.random.default_rng(4))
    b = fit_em(poisson_mixture_cls(2), X, random_state=np.random.default_rng(4))
    np.testing.assert_array_equal(a.history, b.history)


def test_max_iter_warns_and_flags_not_converged(poisson_mixture_cls):
    X = poisson_data(rates=(5.0, 7.0))
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        result = fit_em(poisson_mixture_cls(2), X, max_iter=3, tol=1e-12, random_state=0)
    assert not result.converged
    assert result.n_iter == 3


def test_tol_zero_runs_exactly_max_iter(poisson_mixture_cls):
    X = poisson_data(rates=(5.0, 7.0))
    with pytest.warns(ConvergenceWarning):
        result = fit_em(poisson_mixture_cls(2), X, max_iter=40, tol=0, random_state=0)
    assert result.n_iter == 40


def test_tol_zero_runs_max_iter_as_scikit_learn_and_a_positive_tol_stops():
    class Fixed:
        """A model whose likelihood never changes."""

        def init_params(self, X, rng):
            pass

        def e_step(self, X):
            return (0.0,), -1.0

        def m_step(self, stats):
            pass

        def log_likelihood(self, X):
            return -1.0

    # convergence is a change strictly below tol (scikit-learn's and hmmlearn's rule)
    with pytest.warns(ConvergenceWarning):
        result = fit_em(Fixed(), np.zeros(3), max_iter=50, tol=0)
    assert not result.converged and result.n_iter == 50
    result = fit_em(Fixed(), np.zeros(3), max_iter=50, tol=1e-12)
    assert result.converged and result.n_iter == 2


def test_decrease_warning_names_iteration_and_size():
    X = np.random.default_rng(0).normal(size=100)
    with pytest.warns(LikelihoodDecreaseWarning, match=r"iteration 2 .* by 50"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit_em(WorseningModel(), X, max_iter=3, tol=0)


def test_callback_sees_every_iteration_and_can_stop(poisson_mixture_cls):
    X = poisson_data(rates=(5.0, 7.0))
    seen = []

    def cb(info):
        seen.append((info.iteration, info.log_likelihood))
        return info.iteration == 4

    result = fit_em(poisson_mixture_cls(2), X, max_iter=100, tol=0, callback=cb, random_state=0)
    assert [i for i, _ in seen] == [1, 2, 3, 4]
    assert result.n_iter == 4
    np.testing.assert_array_equal(result.history, [ll for _, ll in seen])


def test_warm_start_continues(poisson_mixture_cls):
    X = poisson_data(rates=(5.0, 7.0))
    model = poisson_mixture_cls(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = fit_em(model, X, max_iter=5, tol=0, random_state=0)
        second = fit_em(model, X, max_iter=5, tol=0, warm_start=True)
        both = fit_em(poisson_mixture_cls(2), X, max_iter=10, tol=0, random_state=0)
    np.testing.assert_allclose(np.concatenate([first.history, second.history]), both.history)


def test_squarem_reaches_the_same_optimum_in_fewer_iterations(poisson_mixture_cls):
    X = poisson_data(rates=(5.0, 7.5), sizes=(3000, 3000), seed=1)
    plain_model, fast_model = poisson_mixture_cls(2), poisson_mixture_cls(2)
    plain = fit_em(plain_model, X, max_iter=5000, tol=1e-11, random_state=3)
    fast = fit_em(fast_model, X, max_iter=5000, tol=1e-11, random_state=3, accelerate="squarem")
    assert plain.converged and fast.converged
    assert_monotone(fast.history)
    assert fast.n_e_steps * 3 < plain.n_e_steps, (fast.n_e_steps, plain.n_e_steps)
    assert fast.log_likelihood == pytest.approx(plain.log_likelihood, abs=1e-4)
    np.testing.assert_allclose(np.sort(fast_model.rates), np.sort(plain_model.rates), rtol=1e-3)


def test_squarem_falls_back_when_extrapolation_is_infeasible(poisson_mixture_cls):
    class NeverFeasible(poisson_mixture_cls):
        calls = 0

        def set_param_vector(self, theta):
            NeverFeasible.calls += 1
            if NeverFeasible.calls % 2:
                return False  # every extrapolation is refused ...
            return super().set_param_vector(theta)  # ... the EM fallback accepted

    X = poisson_data(rates=(5.0, 7.5), sizes=(3000, 3000), seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fast = fit_em(NeverFeasible(2), X, max_iter=30, tol=0, random_state=3, accelerate="squarem")
        plain = fit_em(poisson_mixture_cls(2), X, max_iter=30, tol=0, random_state=3)
    assert_monotone(fast.history)
    assert fast.history[-1] >= plain.history[-1] - 1e-6


def test_stats_additivity_of_the_example_model(poisson_mixture_cls):
    X = poisson_data()
    model = poisson_mixture_cls(2)
    model.init_params(X, np.random.default_rng(0))
    whole, ll = model.e_step(X)
    a, ll_a = model.e_step(X[:1234])
    b, ll_b = model.e_step(X[1234:])
    assert latentem.tree.allclose(latentem.tree.add(a, b), whole)
    assert ll_a + ll_b == pytest.approx(ll)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_iter": 0}, "max_iter must be >= 1"),
        ({"max_iter": 2.5}, "max_iter must be an integer"),
        ({"n_init": 0}, "n_init must be >= 1"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"tol": float("nan")}, "tol must be a finite number >= 0"),
        ({"accelerate": "aitken"}, "accelerate must be one of"),
        ({"warm_start": True, "n_init": 2}, "n_init=1"),
        ({"callback": 3}, "callback must be callable"),
        ({"random_state": "seed"}, "random_state must be"),
    ],
)
def test_bad_settings_raise_value_error(poisson_mixture_cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_em(poisson_mixture_cls(2), poisson_data(), **kwargs)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.array([]), "empty"),
        (np.array([1.0, np.nan, 2.0]), "NaN or inf"),
        (np.array([1.0, np.inf]), "NaN or inf"),
        ([], "empty"),
    ],
)
def test_bad_data_raises_value_error_without_validate_data(X, message):
    with pytest.raises(ValueError, match=message):
        fit_em(Gauss1D(), X)


def test_model_validation_is_used(poisson_mixture_cls):
    with pytest.raises(ValueError, match="1-D array of counts"):
        fit_em(poisson_mixture_cls(2), np.ones((5, 2)))
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        fit_em(poisson_mixture_cls(2), np.array([1.0, -2.0]))


def test_not_a_model_and_squarem_without_vector():
    with pytest.raises(ValueError, match="lacks init_params, e_step, m_step, log_likelihood"):
        fit_em(object(), np.ones(3))
    with pytest.raises(ValueError, match="get_param_vector"):
        fit_em(Gauss1D(), np.ones(3), accelerate="squarem")


def test_nan_log_likelihood_is_reported():
    class Broken(WorseningModel):
        def e_step(self, X):
            return (0.0,), float("nan")

    with pytest.raises(FloatingPointError, match="iteration 1"):
        fit_em(Broken(), np.ones(3))


def test_input_is_not_modified(poisson_mixture_cls):
    X = poisson_data()
    before = X.copy()
    fit_em(poisson_mixture_cls(2), X, random_state=0, accelerate="squarem")
    np.testing.assert_array_equal(X, before)


def test_verbose_progress_is_rate_limited_in_logs(poisson_mixture_cls, capsys):
    X = poisson_data(rates=(5.0, 7.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit_em(poisson_mixture_cls(2), X, max_iter=30, tol=0, verbose=True, random_state=0)
        quiet = capsys.readouterr().err.splitlines()
        fit_em(poisson_mixture_cls(2), X, max_iter=30, tol=0, verbose=2, random_state=0)
        loud = capsys.readouterr().err.splitlines()
        fit_em(poisson_mixture_cls(2), X, max_iter=30, tol=0, random_state=0)
        silent = capsys.readouterr()
    assert len(quiet) <= 4 and "iter    30" in quiet[-2] and "max_iter" in quiet[-1]
    assert len(loud) == 31 and "loglik" in loud[0]
    assert silent.err == "" and silent.out == ""


def test_progress_rewrites_one_line_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    progress = _Progress(1, 1, stream=stream)
    for i in range(1, 4):
        progress.update(0, i, -10.0 + i, 0.1, 0.01 * i)
    text = stream.getvalue()
    assert text.count("\r") == 3 and "\n" not in text


@pytest.mark.parametrize("seed", [0, 7, 2**40, np.int64(12345), None])
@pytest.mark.parametrize("n_init", [1, 4])
def test_restart_generators_are_the_spawned_children(seed, n_init):
    """Restarts draw exactly what Generator.spawn's children draw, so seeded fits
    keep their results (None: fresh entropy, compared through its own entropy)."""
    from latentem._validation import check_random_state
    from latentem.runner import _restart_generators

    if seed is None:
        seq = np.random.SeedSequence()
        ours = _restart_generators(seq.entropy, n_init)
        theirs = check_random_state(seq.entropy).spawn(n_init)
        assert len(_restart_generators(None, n_init)) == n_init
    else:
        ours = _restart_generators(seed, n_init)
        theirs = check_random_state(seed).spawn(n_init)
    assert len(ours) == n_init
    for a, b in zip(ours, theirs):
        assert np.array_equal(a.random(5), b.random(5))
    with pytest.raises(ValueError):
        _restart_generators(-1, 1)
