import copy

import numpy as np
import pytest

from latentem.base import InitParamsSetting, ParamsMixin
from latentem.datasets import load_old_faithful


class Estimator(ParamsMixin):
    init_params = InitParamsSetting()

    def __init__(self, n_components=1, *, init_params="kmeans++", means_init=None):
        self.n_components = n_components
        self.init_params = init_params
        self.means_init = means_init

    def _init_params(self, X, rng):
        self.started_with = (str(self.init_params), len(X))


def test_get_set_params_and_repr():
    est = Estimator(3, means_init=np.zeros((3, 2)))
    params = est.get_params()
    assert params["n_components"] == 3 and params["init_params"] == "kmeans++"
    assert type(params["init_params"]) is str
    est.set_params(n_components=5, init_params="random")
    assert est.n_components == 5 and est.init_params == "random"
    assert repr(Estimator(2)) == "Estimator(n_components=2)"
    assert "means_init=array" in repr(est)
    with pytest.raises(ValueError, match="no parameter 'bogus'"):
        est.set_params(bogus=1)


def test_init_params_is_setting_and_method():
    est = Estimator(init_params="random")
    est.init_params(np.ones(4), np.random.default_rng(0))
    assert est.started_with == ("random", 4)
    clone = copy.deepcopy(est)
    assert clone.init_params == "random"
    bad = Estimator(init_params=3)  # stored as given (scikit-learn's rule) ...
    assert bad.get_params()["init_params"] == 3
    with pytest.raises(ValueError, match="init_params must be a string"):
        bad.init_params(np.ones(4), np.random.default_rng(0))  # ... and refused when fitting


def test_params_work_with_sklearn_clone():
    from sklearn.base import clone as sklearn_clone

    est = Estimator(4, init_params="random")
    clone = sklearn_clone(est)
    assert clone.get_params() == est.get_params()


def test_old_faithful_ships_with_the_package():
    X, columns = load_old_faithful()
    assert X.shape == (272, 2) and columns == ["eruptions", "waiting"]
    np.testing.assert_allclose(X.mean(axis=0), [3.487783, 70.897059], rtol=1e-6)
