"""latentem as a scikit-learn estimator: the public behaviour scikit-learn's own
tests expect of GaussianMixture (written afresh here), the estimator protocol
(tags, clone, Pipeline, GridSearchCV, set_output, HTML repr) and
``check_estimator`` on every estimator whose data its generated tables fit."""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning  # noqa: E402
from sklearn.exceptions import NotFittedError as SkNotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import latentem  # noqa: E402
from latentem import (  # noqa: E402
    GMMHMM,
    HMM,
    PPCA,
    BernoulliMixture,
    CategoricalMixture,
    EMImputer,
    FactorAnalysis,
    GaussianHMM,
    GaussianMixture,
    MixedImputer,
    Mixture,
    MixtureOfFactorAnalyzers,
    PoissonHMM,
    PoissonMixture,
)
from latentem.base import convergence_warning_class, not_fitted_error  # noqa: E402
from latentem.families import (  # noqa: E402
    CategoricalColumnsFamily,
    PoissonFamily,
    StudentTFamily,
)

COV_TYPES = ["full", "tied", "diag", "spherical"]


@pytest.fixture(scope="module")
def two_blobs():
    rng = np.random.default_rng(3)
    return np.vstack([rng.normal(0, 1, (120, 2)), rng.normal([6, 3], 0.7, (80, 2))])


def _quiet_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        return model.fit(X)


# ---------------------------------------------------------------- optional dependency
def test_importing_latentem_does_not_import_scikit_learn():
    code = "import sys, latentem; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_errors_without_scikit_learn_loaded_are_latentem_classes():
    code = (
        "import sys, warnings, numpy as np, latentem\n"
        "try:\n"
        "    latentem.GaussianMixture().predict(np.zeros((2, 2)))\n"
        "except latentem.NotFittedError as e:\n"
        "    assert isinstance(e, ValueError) and isinstance(e, AttributeError)\n"
        "    print(type(e) is latentem.NotFittedError)\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


# ---------------------------------------------------------------- errors and warnings
@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: GaussianMixture(2), lambda m, X: m.predict(X)),
        (lambda: GaussianMixture(2), lambda m, X: m.predict_proba(X)),
        (lambda: GaussianMixture(2), lambda m, X: m.score_samples(X)),
        (lambda: GaussianMixture(2), lambda m, X: m.sample(3)),
        (lambda: PoissonMixture(2), lambda m, X: m.predict(np.abs(X).round())),
        (lambda: EMImputer(), lambda m, X: m.transform(X)),
        (lambda: MixedImputer(), lambda m, X: m.transform(X)),
        (lambda: MixedImputer(), lambda m, X: m.predict_level_proba(X)),
        (lambda: FactorAnalysis(1), lambda m, X: m.transform(X)),
    ],
)
def test_unfitted_use_raises_not_fitted_error_of_both_libraries(make, call, two_blobs):
    model = make()
    with pytest.raises(SkNotFittedError, match="This .* instance is not fitted yet") as info:
        call(model, two_blobs)
    assert isinstance(info.value, latentem.NotFittedError)
    assert isinstance(info.value, AttributeError)  # hasattr-style code keeps working


def test_joined_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(not_fitted_error(EMImputer())))
    assert isinstance(err, SkNotFittedError) and isinstance(err, latentem.NotFittedError)
    assert "This EMImputer instance" in str(err)


def test_not_fitted_error_helper_names_the_estimator():
    err = not_fitted_error(GaussianHMM(2), what="startprob_")
    assert isinstance(err, SkNotFittedError) and "This GaussianHMM instance" in str(err)
    assert "startprob_" in str(err)


def test_convergence_warning_is_caught_by_either_class(two_blobs):
    assert issubclass(convergence_warning_class(), SkConvergenceWarning)
    model = GaussianMixture(2, max_iter=1, tol=0, random_state=0)
    with pytest.warns(
        SkConvergenceWarning, match="Best performing initialization did not converge"
    ):
        model.fit(two_blobs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)  # latentem's filter works
        model.fit(two_blobs)
    assert not model.converged_


# ---------------------------------------------------------------- GaussianMixture behaviour
@pytest.mark.parametrize("ct", COV_TYPES)
def test_float32_data_give_float32_parameters_computed_as_float64(ct, two_blobs):
    X32 = two_blobs.astype(np.float32)
    a = _quiet_fit(GaussianMixture(2, covariance_type=ct, random_state=1), X32)
    b = _quiet_fit(GaussianMixture(2, covariance_type=ct, random_state=1), X32.astype(np.float64))
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(a, name).dtype == np.float32
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-5, atol=1e-6)
    assert a.score_samples(X32).dtype == np.float32
    assert a.predict_proba(X32).dtype == np.float32
    assert b.means_.dtype == np.float64


def test_float32_dtype_survives_a_model_file(tmp_path, two_blobs):
    model = _quiet_fit(GaussianMixture(2, random_state=0), two_blobs.astype(np.float32))
    model.save(tmp_path / "gm.npz")
    loaded = latentem.load(tmp_path / "gm.npz")
    assert loaded.means_.dtype == np.float32
    np.testing.assert_array_equal(loaded.means_, model.means_)


def test_max_iter_zero_keeps_the_starting_parameters(two_blobs):
    start = np.array([[10.0, 10.0], [-5.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning for max_iter=0
        model = GaussianMixture(2, means_init=start, max_iter=0, random_state=0).fit(two_blobs)
    np.testing.assert_array_equal(model.means_, start)
    assert model.n_iter_ == 0 and not model.converged_ and model.lower_bound_ == -np.inf
    assert model.predict(two_blobs).shape == (len(two_blobs),)


@pytest.mark.parametrize("method", ["kmeans++", "kmeans", "random", "random_from_data"])
def test_max_iter_zero_starts_have_distinct_means(method, two_blobs):
    model = GaussianMixture(3, init_params=method, max_iter=0, random_state=4).fit(two_blobs)
    m = model.means_
    assert not any(np.allclose(m[i], m[j]) for i in range(3) for j in range(i + 1, 3))


def test_k_means_plus_plus_spelling_is_the_same_method(two_blobs):
    a = _quiet_fit(GaussianMixture(2, init_params="k-means++", random_state=5), two_blobs)
    b = _quiet_fit(GaussianMixture(2, init_params="kmeans++", random_state=5), two_blobs)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.get_params()["init_params"] == "k-means++"  # stored as given


def test_warm_start_one_iteration_at_a_time_converges_monotonically(two_blobs):
    model = GaussianMixture(2, warm_start=True, max_iter=1, tol=1e-6, random_state=0)
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        for _ in range(300):
            scores.append(model.fit(two_blobs).score(two_blobs))
            if model.converged_:
                break
    assert model.converged_ and model.n_iter_ <= 1
    assert np.all(np.diff(scores) >= -1e-12 * np.abs(scores[1:]))


def test_bad_starting_values_are_refused_in_scikit_learns_words(two_blobs):
    model = GaussianMixture(2)
    model.weights_init = np.array([0.2, 0.2, 0.6])
    with pytest.raises(
        ValueError, match=re.escape("The parameter 'weights' should have the shape")
    ):
        model.fit(two_blobs)
    model.weights_init = np.array([0.3, 0.3])
    with pytest.raises(ValueError, match="The parameter 'weights' should be normalized"):
        model.fit(two_blobs)
    model.weights_init = np.array([1.5, -0.5])
    with pytest.raises(ValueError, match=re.escape("should be in the range [0, 1]")):
        model.fit(two_blobs)
    model.set_params(weights_init=None, means_init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="The parameter 'means' should have the shape"):
        model.fit(two_blobs)
    bad = {"full": -np.ones((2, 2, 2)), "diag": -np.ones((2, 2))}
    words = {"full": "symmetric, positive-definite", "diag": "positive"}
    for ct, prec in bad.items():
        model = GaussianMixture(2, covariance_type=ct, precisions_init=prec)
        with pytest.raises(ValueError, match=f"'{ct} precision' should be {words[ct]}"):
            model.fit(two_blobs)


def test_collapsed_components_without_regularisation_explain_the_fix():
    X = np.repeat(np.arange(4.0)[:, None], 5, axis=0) @ np.ones((1, 2))
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(4, reg_covar=0, random_state=0).fit(X)


def test_input_rules(two_blobs):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array instead"):
        GaussianMixture(2).fit(two_blobs[:, 0])
    with pytest.raises(ValueError, match=re.escape("sparse input is not supported; convert")):
        GaussianMixture(2).fit(scipy_sparse.csr_matrix(two_blobs))
    with pytest.raises(ValueError, match="Complex data not supported"):
        GaussianMixture(2).fit(two_blobs + 1j)
    as_objects = _quiet_fit(GaussianMixture(2, random_state=0), two_blobs.astype(object))
    as_floats = _quiet_fit(GaussianMixture(2, random_state=0), two_blobs)
    np.testing.assert_array_equal(as_objects.means_, as_floats.means_)
    text = two_blobs.astype(object)
    text[0, 0] = "seven"
    with pytest.raises(ValueError, match="holding non-numbers"):
        GaussianMixture(2).fit(text)


def test_sample_count_must_be_positive(two_blobs):
    model = _quiet_fit(GaussianMixture(2, random_state=0), two_blobs)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        model.sample(0)
    X, y = model.sample(50)
    assert X.shape == (50, 2) and y.shape == (50,) and np.all(np.diff(y) >= 0)


def test_settings_are_checked_by_fit_not_by_set_params(two_blobs):
    model = GaussianMixture(n_components=-3, init_params=7, max_iter="x")
    model.set_params(covariance_type="nonsense")  # stored as given
    assert model.get_params()["covariance_type"] == "nonsense"
    with pytest.raises(ValueError):
        model.fit(two_blobs)


def test_score_is_the_mean_of_score_samples_and_fit_predict_matches(two_blobs):
    model = GaussianMixture(2, tol=1e-8, max_iter=300, random_state=0)
    labels = model.fit_predict(two_blobs)
    np.testing.assert_array_equal(labels, model.predict(two_blobs))
    assert model.score(two_blobs) == pytest.approx(model.score_samples(two_blobs).mean())


# ---------------------------------------------------------------- feature names
def test_feature_names_follow_scikit_learns_rules(two_blobs):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(two_blobs, columns=["a", "b"])
    model = _quiet_fit(GaussianMixture(2, random_state=0), frame)
    assert list(model.feature_names_in_) == ["a", "b"] and model.n_features_in_ == 2
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.predict(two_blobs)
    with pytest.raises(ValueError, match="The feature names should match"):
        model.predict(frame.rename(columns={"a": "z"}))
    with pytest.raises(ValueError, match="X has 1 features, but GaussianMixture is expecting 2"):
        with pytest.warns(UserWarning, match="X does not have valid feature names"):
            model.predict(two_blobs[:, :1])
    _quiet_fit(model, two_blobs)  # a refit on an array forgets the names
    assert not hasattr(model, "feature_names_in_")


# ---------------------------------------------------------------- the estimator protocol
def test_clone_pipeline_and_grid_search(two_blobs):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = GaussianMixture(3, covariance_type="diag", random_state=0)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    pipe = _quiet_fit(
        make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0)), two_blobs
    )
    assert pipe.predict(two_blobs).shape == (len(two_blobs),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        search = GridSearchCV(
            GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3
        ).fit(two_blobs)
    assert search.best_params_["n_components"] in (2, 3)  # one Gaussian fits two blobs worst


@pytest.mark.parametrize(
    "make", [EMImputer, MixedImputer, lambda: FactorAnalysis(1), lambda: PPCA(1)]
)
def test_set_output_pandas(make, two_blobs):
    pd = pytest.importorskip("pandas")
    X = two_blobs.copy()
    X[::7, 1] = np.nan
    frame = pd.DataFrame(X, columns=["u", "v"], index=np.arange(len(X)) + 100)
    model = make().set_output(transform="pandas")
    out = model.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(model.get_feature_names_out())
    assert list(out.index) == list(frame.index)
    plain = make().fit(X).transform(X)
    assert isinstance(plain, np.ndarray)
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(make().fit(X).transform(X), pd.DataFrame)


def test_factor_names_are_prefixed_by_the_class(two_blobs):
    model = FactorAnalysis(1).fit(two_blobs)
    assert list(model.get_feature_names_out()) == ["factoranalysis0"]


def test_html_repr_with_and_without_scikit_learn(monkeypatch):
    model = GaussianMixture(4, covariance_type="diag")
    assert "GaussianMixture" in model._repr_html_() and "<div" in model._repr_html_()
    monkeypatch.setitem(sys.modules, "sklearn.utils", None)  # as if scikit-learn were absent
    fallback = GaussianMixture(2, init_params="<b>")._repr_html_()
    assert fallback.startswith("<pre>") and "&lt;b&gt;" in fallback


def test_every_params_model_has_tags():
    from sklearn.utils import get_tags

    assert get_tags(GaussianHMM(2)).requires_fit
    assert get_tags(GaussianMixture()).estimator_type == "DensityEstimator"
    assert get_tags(EMImputer()).transformer_tags is not None
    assert get_tags(EMImputer()).input_tags.allow_nan


# ---------------------------------------------------------------- check_estimator
@pytest.mark.parametrize(
    "make",
    [
        GaussianMixture,
        CategoricalMixture,
        EMImputer,
        MixedImputer,
        FactorAnalysis,
        PPCA,
        lambda: MixtureOfFactorAnalyzers(2),
        lambda: GaussianHMM(2),
        lambda: GMMHMM(2, n_mix=2),
        lambda: PoissonHMM(2),
        PoissonMixture,
        # scikit-learn's checks draw real numbers: cut them as BernoulliNB does
        lambda: BernoulliMixture(binarize=0.0),
        lambda: Mixture(emission=StudentTFamily(1)),
        lambda: Mixture(emission=PoissonFamily(1)),
        # the generic HMM, its family a constructor argument (two more checks declared)
        lambda: HMM(2, emission=PoissonFamily(2)),
        lambda: HMM(2, emission=CategoricalColumnsFamily(2)),
    ],
)
def test_check_estimator_passes(make):
    est = make()
    declared = est._sklearn_expected_failed_checks()
    # an HMM's rows are time steps: the row-wise checks cannot apply (reasons given)
    most = 3
    if isinstance(est, HMM):
        most = 5 if type(est) is not HMM else 8
    assert len(declared) <= most and all(len(reason) > 20 for reason in declared.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None, on_skip=None, expected_failed_checks=declared)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert failed == []
    assert sum(r["status"] == "passed" for r in results) >= 35


# ---------------------------------------------------------------- HMMs in scikit-learn's tools
def _two_sequences():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (40, 2))])
    return X, np.array([60, 40])


def test_hmm_reads_a_target_in_lengths_place_as_scikit_learns_unused_y():
    X, lengths = _two_sequences()
    y = np.repeat([0, 1, 2, 0], 25)  # class labels, one per row, as scikit-learn passes
    plain = GaussianHMM(2, n_iter=5, random_state=0).fit(X)
    with_y = GaussianHMM(2, n_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(with_y.history_, plain.history_)
    assert with_y.score(X, y) == plain.score(X)
    # real lengths are still lengths, positionally as in hmmlearn
    split = GaussianHMM(2, n_iter=5, random_state=0).fit(X, lengths)
    assert split.score(X, lengths) != split.score(X)
    with pytest.raises(ValueError, match="add up to"):
        GaussianHMM(2).fit(X, [60, 30])  # not one per row: a wrong lengths, not a target


def test_hmm_in_a_pipeline_and_grid_search():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = _two_sequences()
    y = np.repeat([0, 1], 50)
    pipe = make_pipeline(StandardScaler(), GaussianHMM(2, n_iter=5, random_state=0)).fit(X, y)
    assert pipe.predict(X).shape == (100,)
    search = GridSearchCV(GaussianHMM(n_iter=5, random_state=0), {"n_components": [1, 2]}, cv=2)
    assert search.fit(X).best_params_["n_components"] in (1, 2)


def test_hmm_sample_weight_per_row_must_be_constant_within_a_sequence():
    X, lengths = _two_sequences()
    per_seq = GaussianHMM(2, n_iter=5, random_state=0).fit(X, lengths, sample_weight=[2.0, 1.0])
    per_row = GaussianHMM(2, n_iter=5, random_state=0).fit(
        X, lengths, sample_weight=np.repeat([2.0, 1.0], lengths)
    )
    np.testing.assert_array_equal(per_row.history_, per_seq.history_)
    ragged = np.ones(100)
    ragged[0] = 3.0
    with pytest.raises(ValueError, match="same on every row of a sequence"):
        GaussianHMM(2).fit(X, lengths, sample_weight=ragged)


def test_hmm_init_stores_bad_settings_and_fit_reports_them():
    model = GaussianHMM(n_components="many", covariance_type="round")
    assert model.get_params()["covariance_type"] == "round"
    with pytest.raises(ValueError, match="n_components"):
        model.fit(np.zeros((10, 1)))
    model.set_params(n_components=2)
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        model.fit(np.zeros((10, 1)))
    with pytest.raises(ValueError, match="Reshape your data"):
        GaussianHMM(2).fit(np.arange(10.0))
    with pytest.raises(ValueError, match="n_samples=1"):
        GaussianHMM(1).fit(np.zeros((1, 2)))


# ---------------------------------------------------------------- count and binary data
def test_poisson_models_take_non_negative_real_counts():
    # the Poisson log-density with log Gamma(x + 1) is defined for every x >= 0 (the
    # quasi-likelihood of statsmodels' Poisson GLM): the rate is the weighted mean
    rng = np.random.default_rng(0)
    X = rng.gamma(2.0, 1.5, size=(200, 1))
    model = PoissonMixture(1).fit(X)
    np.testing.assert_allclose(model.lambdas_, X.mean(axis=0, keepdims=True), rtol=1e-12)
    assert np.isfinite(model.score_samples(X)).all()
    assert np.isfinite(PoissonHMM(2, n_iter=5, random_state=0).fit(X).score(X))
    for bad in (PoissonMixture(1), PoissonHMM(1)):
        with pytest.raises(ValueError, match="Negative values in data"):
            bad.fit(X - 1.0)


def test_bernoulli_binarize_reads_values_above_the_threshold_as_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    before = X.copy()
    cut = BernoulliMixture(1, binarize=0.5).fit(X)
    np.testing.assert_array_equal(X, before)  # the caller's array is not changed
    np.testing.assert_allclose(cut.probs_, (X > 0.5).mean(axis=0, keepdims=True), rtol=1e-9)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        BernoulliMixture(1).fit(X)  # None (the default): 0/1 data only
    with pytest.raises(ValueError, match="binarize must be a number"):
        BernoulliMixture(1, binarize="half").fit(X)


def test_a_generic_mixture_refits_with_a_new_n_components_and_refuses_1d_x():
    X = np.random.default_rng(0).poisson(3.0, size=(100, 2)).astype(float)
    model = Mixture(2, emission=PoissonFamily(2), random_state=0).fit(X)
    model.set_params(n_components=3).fit(X)
    assert model.emission.lambdas_.shape == (3, 2)
    with pytest.raises(ValueError, match="Reshape your data"):
        Mixture(1, emission=PoissonFamily(1)).fit(X[:, 0])


def test_generic_hmm_follows_its_family_in_tags_checks_and_n_components():
    from sklearn.utils import get_tags

    rng = np.random.default_rng(0)
    counts = rng.poisson([[1.0, 4.0]], size=(80, 2)).astype(float)
    model = HMM(2, emission=PoissonFamily(2), random_state=0)
    assert get_tags(model).input_tags.positive_only
    assert not get_tags(model).input_tags.categorical
    assert get_tags(HMM(2, emission=CategoricalColumnsFamily(2))).input_tags.categorical
    with pytest.raises(ValueError, match="Negative values in data passed to HMM"):
        model.fit(-counts)
    # a new number of states reaches the family the fit starts afresh ...
    model.set_params(n_components=3)
    _quiet_fit(model, counts)
    assert model.emission.n_components == 3 and model.transmat_.shape == (3, 3)
    # ... but not one whose parameters the user keeps (init_params without "l")
    kept = HMM(2, emission=PoissonFamily(2), init_params="st", random_state=0)
    kept.emission.lambdas_ = np.array([[1.0, 4.0], [2.0, 2.0]])
    kept.set_params(n_components=3)
    with pytest.raises(ValueError, match="the emission family has 2 components"):
        kept.fit(counts)
