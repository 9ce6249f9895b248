import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGM

from latentem.model_selection import bootstrap_lrt, select_gaussian_mixture, select_n_components


@pytest.fixture(scope="module")
def three_blobs():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(c, 0.7, size=(200, 2)) for c in ([0, 0], [6, 0], [0, 6])])


def test_bic_picks_true_number(three_blobs):
    res = select_gaussian_mixture(three_blobs, range(1, 6), random_state=0, n_init=2)
    assert res.best_n_components == 3
    assert res.criterion == "bic"
    assert res.table["n_components"].tolist() == [1, 2, 3, 4, 5]
    assert res.best_model.n_components == 3
    assert res.table["bic"][res.best_index] == res.table["bic"].min()
    # the table's scores are the models' own bic/aic
    for m, b, a in zip(res.models, res.table["bic"], res.table["aic"]):
        assert m.bic(three_blobs) == pytest.approx(b)
        assert m.aic(three_blobs) == pytest.approx(a)


def test_scores_agree_with_sklearn(three_blobs):
    res = select_gaussian_mixture(three_blobs, [3], covariance_types="diag", random_state=0)
    sk = SkGM(3, covariance_type="diag", random_state=0).fit(three_blobs)
    assert res.table["bic"][0] == pytest.approx(sk.bic(three_blobs), rel=1e-5)
    assert res.table["n_parameters"][0] == sk._n_parameters()


def test_several_covariance_types_and_aic(three_blobs):
    res = select_gaussian_mixture(
        three_blobs, 4, covariance_types=("spherical", "full"), criterion="aic", random_state=1
    )
    assert len(res.table["bic"]) == 8
    assert set(res.table["covariance_type"]) == {"spherical", "full"}
    assert res.table["aic"][res.best_index] == res.table["aic"].min()
    assert res.best_covariance_type in ("spherical", "full")


def test_one_dimensional_and_too_many_components():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-5, 1, 150), rng.normal(5, 1, 150)])
    res = select_gaussian_mixture(x, range(1, 4), random_state=0)
    assert res.best_n_components == 2
    res = select_gaussian_mixture(x[:3], range(1, 6), random_state=0)
    assert res.table["n_components"].max() == 3  # candidates above n_samples are skipped


def test_bad_arguments(three_blobs):
    with pytest.raises(ValueError, match="criterion"):
        select_gaussian_mixture(three_blobs, 3, criterion="loglik")
    with pytest.raises(ValueError, match="covariance_types"):
        select_gaussian_mixture(three_blobs, 3, covariance_type="full")
    with pytest.raises(ValueError, match="positive"):
        select_gaussian_mixture(three_blobs, [0, 1])


# ------------------------------------------------ ICL, any estimator, bootstrap LRT
def test_icl_is_bic_plus_twice_the_classification_entropy(three_blobs):
    res = select_gaussian_mixture(three_blobs, [2, 3], random_state=0, criterion="icl")
    for m, bic, icl in zip(res.models, res.table["bic"], res.table["icl"]):
        z = m.predict_proba(three_blobs)
        entropy = -np.log(z.max(axis=1)).sum()
        assert icl == pytest.approx(bic + 2 * entropy)
        assert icl >= bic
    assert res.best_n_components == 3


def test_icl_prefers_separated_clusters_to_density_shape():
    # one skewed cluster: BIC adds components to fit its shape, ICL sees one cluster
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 1.0, size=(1500, 1))
    res = select_gaussian_mixture(x, range(1, 5), random_state=0, criterion="icl")
    assert res.best_n_components < int(res.table["n_components"][np.argmin(res.table["bic"])])


def test_select_n_components_for_hmms_and_other_mixtures():
    from latentem import GaussianHMM, PoissonMixture

    rng = np.random.default_rng(4)
    states = np.repeat(np.tile([0, 1, 2], 4), 60)
    X = rng.normal(np.array([-4.0, 0.0, 4.0])[states], 0.8)[:, None]
    hmm = GaussianHMM(covariance_type="diag", random_state=0, n_iter=50)
    settings = hmm.get_params()
    res = select_n_components(hmm, X, range(1, 5), lengths=[360, 360])
    assert res.best_n_components == 3
    assert hmm.get_params() == settings  # the template is untouched
    assert res.best_model.covariance_type == "diag"
    for m, b in zip(res.models, res.table["bic"]):
        assert m.bic(X, lengths=[360, 360]) == pytest.approx(b)

    counts = np.concatenate([rng.poisson(2, 300), rng.poisson(15, 300)])[:, None]
    res = select_n_components(PoissonMixture(random_state=0), counts, 4, criterion="icl")
    assert res.best_n_components == 2


def test_select_n_components_rejects_what_it_cannot_use():
    with pytest.raises(ValueError, match="n_components setting"):
        select_n_components(object(), np.zeros((5, 1)))
    from latentem import GaussianHMM

    with pytest.raises(ValueError, match="criterion"):
        select_n_components(GaussianHMM(), np.zeros((5, 1)), criterion="xyz")


def test_bootstrap_lrt_finds_two_components_and_keeps_one():
    rng = np.random.default_rng(5)
    two = np.concatenate([rng.normal(-2.5, 1, 150), rng.normal(2.5, 1, 150)])[:, None]
    res = bootstrap_lrt(two, 4, n_bootstrap=19, random_state=1)
    assert res.selected == 2
    assert res.table["n_components"].tolist() == [1, 2]
    assert res.table["p_value"][0] == pytest.approx(1 / 20)  # no bootstrap statistic beat it
    assert res.table["p_value"][1] > 0.05
    assert all(len(b) == 19 for b in res.bootstrap)
    assert np.all(np.concatenate(res.bootstrap) > -1e-6)  # K + 1 fits at least as well

    one = rng.normal(size=(200, 2))
    res = bootstrap_lrt(one, 3, n_bootstrap=19, random_state=2)
    assert res.selected == 1


def test_bootstrap_lrt_is_repeatable_and_checks_its_settings():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(120, 1))
    a = bootstrap_lrt(X, 2, n_bootstrap=5, random_state=3)
    b = bootstrap_lrt(X, 2, n_bootstrap=5, random_state=3)
    np.testing.assert_array_equal(a.bootstrap[0], b.bootstrap[0])
    for bad in (dict(max_components=1), dict(n_bootstrap=0), dict(level=1.5)):
        with pytest.raises(ValueError):
            bootstrap_lrt(X, **{"max_components": 2, **bad})
    with pytest.raises(ValueError, match="set by bootstrap_lrt"):
        bootstrap_lrt(X, 2, n_components=3)
