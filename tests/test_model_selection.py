import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGM

from latentem.model_selection import select_gaussian_mixture


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
