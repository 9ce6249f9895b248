"""Model files: every model round-trips exactly; bad files give clear errors."""

import json
import warnings
import zipfile

import numpy as np
import pytest
from conftest import ROOT
from hostile import meta_and_arrays, model_file

from latentem import GMMHMM, HMM, CategoricalHMM, GaussianHMM, GaussianMixture, PoissonHMM
from latentem.families.categorical import CategoricalFamily
from latentem.families.poisson import PoissonFamily
from latentem.persistence import FORMAT_VERSION, describe, load, register_class, save


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3, 1, (60, 2)), rng.normal(3, 0.5, (40, 2))])


def _two_state(seed=0):
    rng = np.random.default_rng(seed)
    states = np.repeat([0, 1, 0, 1, 1, 0], 40)
    return states, rng


def _roundtrip(model, tmp_path, name="m.lem"):
    path = tmp_path / name
    model.save(path)
    return load(path)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_roundtrip(covariance_type, tmp_path):
    X = _blobs()
    gm = GaussianMixture(3, covariance_type=covariance_type, n_init=2, random_state=1).fit(X)
    again = _roundtrip(gm, tmp_path)
    assert type(again) is GaussianMixture
    assert again.get_params() == gm.get_params()
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_array_equal(getattr(again, attr), getattr(gm, attr))
    np.testing.assert_array_equal(again.predict(X), gm.predict(X))
    np.testing.assert_array_equal(again.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(again.score_samples(X), gm.score_samples(X))
    assert again.bic(X) == gm.bic(X)
    assert (again.converged_, again.n_iter_, again.lower_bound_, again.best_init_) == (
        gm.converged_,
        gm.n_iter_,
        gm.lower_bound_,
        gm.best_init_,
    )
    np.testing.assert_array_equal(again.history_, gm.history_)
    # A loaded model can keep training from where it was.
    again.set_params(warm_start=True, max_iter=5).fit(X)


def test_user_starting_arrays_and_generator_seed(tmp_path):
    X = _blobs()
    means = np.array([[-3.0, -3.0], [3.0, 3.0]])
    gm = GaussianMixture(2, means_init=means, random_state=np.random.default_rng(0)).fit(X)
    again = _roundtrip(gm, tmp_path)
    np.testing.assert_array_equal(again.means_init, means)
    assert again.random_state is None  # a Generator is not portable: dropped, and said so
    assert describe(tmp_path / "m.lem")["params"]["means_init"].startswith("<array")
    np.testing.assert_array_equal(again.predict_proba(X), gm.predict_proba(X))


def test_unfitted_model_roundtrip(tmp_path):
    again = _roundtrip(GaussianMixture(4, covariance_type="diag", tol=1e-5), tmp_path)
    assert again.get_params() == GaussianMixture(4, covariance_type="diag", tol=1e-5).get_params()
    with pytest.raises(AttributeError, match="not fitted"):
        again.predict(np.zeros((2, 2)))


def _hmm_cases():
    states, rng = _two_state()
    gauss = rng.normal(np.where(states == 0, -2.0, 2.0)[:, None], 1.0, (len(states), 2))
    counts = rng.poisson(np.where(states == 0, 1.0, 8.0))[:, None].astype(float)
    symbols = np.where(states == 0, rng.choice(3, len(states), p=[0.8, 0.1, 0.1]), 2)[:, None]
    return [
        ("gaussian-diag", GaussianHMM(2, n_iter=20, random_state=0), gauss),
        ("gaussian-full", GaussianHMM(2, "full", n_iter=20, random_state=0), gauss),
        ("gaussian-tied", GaussianHMM(2, "tied", n_iter=20, random_state=0), gauss),
        ("gaussian-sph", GaussianHMM(2, "spherical", n_iter=20, random_state=0), gauss),
        ("gmmhmm", GMMHMM(2, n_mix=2, n_iter=10, random_state=0), gauss),
        (
            "gmmhmm-tied",
            GMMHMM(2, n_mix=2, covariance_type="tied", n_iter=5, random_state=0),
            gauss,
        ),
        ("categorical", CategoricalHMM(2, n_iter=20, random_state=0), symbols),
        ("poisson", PoissonHMM(2, n_iter=20, random_state=0), counts),
        ("generic-poisson", HMM(2, emission=PoissonFamily(2), n_iter=20, random_state=0), counts),
        ("generic-cat", HMM(2, emission=CategoricalFamily(2), n_iter=20, random_state=0), symbols),
    ]


@pytest.mark.parametrize("case", _hmm_cases(), ids=lambda c: c[0])
def test_hmm_roundtrip(case, tmp_path):
    _, model, X = case
    lengths = [100, 140]
    model.fit(X, lengths)
    again = _roundtrip(model, tmp_path)
    assert type(again) is type(model)
    assert type(again.emission) is type(model.emission)
    assert again.emission is not model.emission
    np.testing.assert_array_equal(again.startprob_, model.startprob_)
    np.testing.assert_array_equal(again.transmat_, model.transmat_)
    np.testing.assert_array_equal(again.predict(X, lengths), model.predict(X, lengths))
    np.testing.assert_array_equal(again.predict_proba(X, lengths), model.predict_proba(X, lengths))
    assert again.score(X, lengths) == model.score(X, lengths)
    np.testing.assert_array_equal(
        again.score_per_sequence(X, lengths), model.score_per_sequence(X, lengths)
    )
    assert again.decode(X, lengths)[0] == model.decode(X, lengths)[0]
    np.testing.assert_array_equal(again.history_, model.history_)
    assert again.n_parameters() == model.n_parameters()
    for attr in ("means_", "covars_", "weights_", "emissionprob_", "lambdas_"):
        if hasattr(type(model), attr):
            np.testing.assert_array_equal(getattr(again, attr), getattr(model, attr))
    params = model.get_params()
    params.pop("emission", None)
    again_params = again.get_params()
    again_params.pop("emission", None)
    assert again_params == params


def test_hmm_with_missing_rows_roundtrip(tmp_path):
    states, rng = _two_state(1)
    X = rng.normal(np.where(states == 0, -2.0, 2.0)[:, None], 1.0, (len(states), 2))
    X[::7, 1] = np.nan
    model = GaussianHMM(2, "full", n_iter=10, random_state=0).fit(X)
    again = _roundtrip(model, tmp_path)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_saving_does_not_change_the_model(tmp_path):
    X = _blobs()
    gm = GaussianMixture(2, random_state=0).fit(X)
    before = gm.predict_proba(X)
    means = gm.means_.copy()
    gm.save(tmp_path / "a.lem")
    np.testing.assert_array_equal(gm.means_, means)
    np.testing.assert_array_equal(gm.predict_proba(X), before)


def test_file_is_json_plus_npz_without_pickles(tmp_path):
    X = _blobs()
    GaussianMixture(2, random_state=0).fit(X).save(tmp_path / "a.lem", metadata={"source": "x"})
    with zipfile.ZipFile(tmp_path / "a.lem") as zf:
        assert sorted(zf.namelist()) == ["arrays.npz", "meta.json"]
        meta = json.loads(zf.read("meta.json"))
        zf.extract("arrays.npz", tmp_path)
    assert meta["format"] == "latentem-model" and meta["format_version"] == FORMAT_VERSION
    assert meta["class"] == "GaussianMixture" and meta["metadata"] == {"source": "x"}
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    info = describe(tmp_path / "a.lem")
    assert info["class"] == "GaussianMixture" and info["params"]["n_components"] == 2
    assert any(name.endswith("means_") for name in info["arrays"])


def _rewrite_meta(path, change):
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        arrays = zf.read("arrays.npz")
    change(meta)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("arrays.npz", arrays)


def test_newer_format_version_is_a_clear_error(tmp_path):
    path = tmp_path / "a.lem"
    GaussianMixture(2, random_state=0).fit(_blobs()).save(path)
    _rewrite_meta(path, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="Upgrade latentem"):
        load(path)
    with pytest.raises(ValueError, match="Upgrade latentem"):
        describe(path)


def test_unknown_class_is_refused_not_imported(tmp_path):
    path = tmp_path / "a.lem"
    GaussianMixture(2, random_state=0).fit(_blobs()).save(path)

    def evil(meta):
        meta["model"]["$object"] = "os.system"
        meta["class"] = "os.system"

    _rewrite_meta(path, evil)
    with pytest.raises(ValueError, match="does not know"):
        load(path)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9])
def test_truncated_file_is_a_clear_error(cut, tmp_path):
    path = tmp_path / "a.lem"
    GaussianMixture(2, random_state=0).fit(_blobs()).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ValueError, match="not a readable latentem model file"):
        load(path)


def test_corrupted_and_foreign_files(tmp_path):
    path = tmp_path / "a.lem"
    GaussianMixture(2, random_state=0).fit(_blobs()).save(path)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a readable latentem model file"):
        load(path)
    text = tmp_path / "table.csv"
    text.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a readable latentem model file"):
        load(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("meta.json", json.dumps({"format": "something-else"}))
        zf.writestr("arrays.npz", b"")
    with pytest.raises(ValueError, match="does not say format"):
        load(other)
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load(tmp_path / "missing.lem")


def test_inconsistent_arrays_are_a_clear_error(tmp_path):
    path = tmp_path / "a.lem"
    PoissonHMM(2, n_iter=5, random_state=0).fit(np.arange(40.0)[:, None] % 7).save(path)

    meta, arrays = meta_and_arrays(path)
    (key,) = [k for k in arrays if k.endswith("transmat_")]
    arrays[key] = np.array([[0.5, 0.9], [0.5, 0.5]])
    path.write_bytes(model_file(meta, arrays))
    with pytest.raises(ValueError, match="transmat_ must be non-negative and sum to 1"):
        load(path)


def test_unsaveable_things_are_refused(tmp_path):
    class Mine:
        pass

    with pytest.raises(ValueError, match="cannot be saved"):
        save(Mine(), tmp_path / "x.lem")
    gm = GaussianMixture(2).fit(_blobs())
    gm.history_ = np.array([object()])
    with pytest.raises(ValueError, match="not portable"):
        gm.save(tmp_path / "x.lem")
    assert not (tmp_path / "x.lem").exists()
    with pytest.raises(ValueError, match="register"):
        HMM(2, emission=Mine()).save(tmp_path / "y.lem")


def test_registered_user_class(tmp_path):
    class Scale:
        def __init__(self, factor):
            self.factor = factor

        def _to_state(self):
            return {"factor": self.factor, "table": np.arange(3.0), "pair": (1, float("nan"))}

        @classmethod
        def _from_state(cls, state):
            obj = cls(state["factor"])
            obj.table, obj.pair = state["table"], state["pair"]
            return obj

    register_class(Scale, "tests.Scale")
    save(Scale(3), tmp_path / "s.lem")
    again = load(tmp_path / "s.lem")
    assert again.factor == 3 and again.pair[0] == 1 and np.isnan(again.pair[1])
    np.testing.assert_array_equal(again.table, np.arange(3.0))
    with pytest.raises(ValueError, match="latentem class name"):
        register_class(Scale, "GaussianMixture")


def test_imputer_round_trips_with_its_training_rows(tmp_path):
    import pandas as pd

    from latentem import EMImputer
    from latentem.persistence import load

    rng = np.random.default_rng(3)
    X = rng.multivariate_normal([0, 1, 2], [[1, 0.6, 0.2], [0.6, 1, 0.3], [0.2, 0.3, 1]], 300)
    X[rng.random(X.shape) < 0.2] = np.nan
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    for imputer in (EMImputer(random_state=0), EMImputer(2, ridge="auto", random_state=0)):
        imputer.fit(frame)
        path = tmp_path / "imputer.lem"
        imputer.save(path)
        again = load(path)
        pd.testing.assert_frame_equal(again.transform(frame), imputer.transform(frame))
        np.testing.assert_array_equal(again.covariances_, imputer.covariances_)
        np.testing.assert_array_equal(again.fraction_missing_info_, imputer.fraction_missing_info_)
        draws, again_draws = (
            m.sample_imputations(frame, n_imputations=2, random_state=5) for m in (imputer, again)
        )
        for d1, d2 in zip(draws, again_draws):
            pd.testing.assert_frame_equal(d1, d2)
    # a file from before shrinkage and bounds keeps filling plain conditional means
    imputer = EMImputer(random_state=0).fit(frame)
    state = imputer._to_state()
    del state["params"]["shrinkage"], state["params"]["bounds"]
    for name in ("n_observed_", "data_min_", "data_max_"):
        del state["fitted"][name]
    old = EMImputer._from_state(state)
    assert old.shrinkage is None and old.bounds is None
    exact = imputer.set_params(shrinkage=None, bounds=None).transform(frame)
    pd.testing.assert_frame_equal(old.transform(frame), exact)
    # its counts and range come back from the rows it kept
    for name in ("n_observed_", "data_min_", "data_max_"):
        np.testing.assert_array_equal(getattr(old, name), getattr(imputer, name))
    old.set_params(shrinkage="auto")
    imputer.set_params(shrinkage="auto")
    pd.testing.assert_frame_equal(old.transform(frame), imputer.transform(frame))
    unfitted = tmp_path / "unfitted.lem"
    EMImputer(3).save(unfitted)
    assert load(unfitted).n_components == 3


OLD_FILES = sorted((ROOT / "tests" / "data" / "model_files_v0.1").glob("*.lem"))


@pytest.mark.parametrize("path", OLD_FILES, ids=lambda p: p.stem)
def test_model_files_of_release_0_1_still_load(path):
    """One file of each kind, written by latentem 0.1.0 before the registry and the latent
    parts, with the predictions that release made: they load and predict the same."""
    from latentem import EMImputer, ModelGraph

    saved = np.load(path.with_suffix(".npz"))
    X, expect, lengths = saved["X"], saved["expect"], list(saved["lengths"])
    model = load(path)
    if isinstance(model, EMImputer):
        got = model.transform(X)
    elif isinstance(model, ModelGraph):
        node = "cluster" if "cluster" in model.graph else "chain"
        got = model.predict_proba(X, lengths, node=node)
    elif hasattr(model, "startprob_"):
        got = model.predict_proba(X, lengths)
    else:
        got = model.predict_proba(X)
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)


def test_there_is_an_old_file_of_each_kind():
    names = {p.stem for p in OLD_FILES}
    assert {"gmm_full", "gaussian_hmm", "gmm_hmm", "categorical_hmm", "poisson_hmm"} <= names
    assert {"graph_mixed", "graph_hmm_mixture", "imputer", "imputer_mixture"} <= names


BEFORE_ONE_GAUSSIAN = sorted(
    (ROOT / "tests" / "data" / "model_files_before_one_gaussian").glob("*.lem")
)


@pytest.mark.parametrize("path", BEFORE_ONE_GAUSSIAN, ids=lambda p: p.stem)
def test_files_naming_missing_gaussian_family_still_load(path):
    """Files written while the gap-aware Gaussian was its own class, MissingGaussianFamily
    (latentem at c1e3617), including a family saved on its own: they load as the one
    GaussianFamily and give what that code gave."""
    from latentem import MixedImputer
    from latentem.families import GaussianFamily

    saved = np.load(path.with_suffix(".npz"))
    X, expect = saved["X"], saved["expect"]
    model = load(path)
    if isinstance(model, GaussianFamily):
        got = model.log_prob(X)
    elif isinstance(model, MixedImputer):
        got = model.transform(X)
    else:
        got = model.predict_proba(X)
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)
    assert len(BEFORE_ONE_GAUSSIAN) == 4
