"""The NumPy kernels for small inputs: when they run, and whole fits that agree with
the compiled kernels' (each kernel alone is compared with its reference, in both
versions, in the kernel tests)."""

import io
import warnings

import numpy as np
import pytest

import latentem
from latentem.kernels import Kernel, _dispatch, small_rows


def _spies():
    calls = []

    def jit(X, *rest, **kw):
        calls.append("jit")
        return "jit"

    def numpy(X, *rest, **kw):
        calls.append("numpy")
        return "numpy"

    jit.__name__ = "spy_jit"
    return Kernel(jit, numpy), calls


def test_threshold_chooses_the_version_by_rows():
    k, calls = _spies()
    with small_rows(10):
        assert k(np.zeros((10, 3))) == "numpy"
        assert k(np.zeros((11, 3))) == "jit"
        assert k.runs_numpy(10) and not k.runs_numpy(11)
    with small_rows(0):
        assert k(np.zeros((1, 3))) == "jit"
    assert calls == ["numpy", "jit", "jit"]
    assert k.__name__ == "spy"
    with pytest.raises(ValueError, match="number of rows >= 0"), small_rows(-1):
        pass


def test_compiled_calls_on_small_arrays_run_on_one_thread():
    import numba

    seen = []

    def jit(X):
        seen.append(numba.get_num_threads())

    jit.__name__ = "threads_jit"
    k = Kernel(jit, None)
    before = numba.get_num_threads()
    k(np.zeros((_dispatch.SERIAL_SIZE // 2 - 1, 2)))
    k(np.zeros((_dispatch.SERIAL_SIZE // 2, 2)))
    assert seen == [1, before]
    assert numba.get_num_threads() == before


def test_wide_inputs_can_be_kept_compiled():
    k, calls = _spies()
    wide = Kernel(k.jit, k.numpy, max_cols=4)
    with small_rows(10):
        assert wide(np.zeros((2, 4))) == "numpy"
        assert wide(np.zeros((2, 5))) == "jit"


def test_kernel_without_numpy_choice_always_compiles():
    k, calls = _spies()
    fixed = Kernel(k.jit, k.numpy, arg=None)
    with small_rows(10**9):
        assert fixed(np.zeros((2, 2))) == "jit"
        assert not fixed.runs_numpy(2)
        assert fixed.numpy(np.zeros((2, 2))) == "numpy"


def test_threshold_from_the_environment(monkeypatch):
    monkeypatch.setenv("LATENTEM_SMALL_ROWS", "250")
    assert _dispatch._from_env() == 250
    monkeypatch.setenv("LATENTEM_SMALL_ROWS", " ")
    assert _dispatch._from_env() == _dispatch.SMALL_ROWS_DEFAULT
    monkeypatch.setenv("LATENTEM_SMALL_ROWS", "lots")
    with pytest.raises(ValueError, match="LATENTEM_SMALL_ROWS must be a whole number"):
        _dispatch._from_env()


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fire_compile(module):
    from numba.core import event

    class Disp:
        pass

    def f():
        pass

    f.__module__ = module
    d = Disp()
    d.py_func = f
    with event.trigger_event("numba:compile", data={"dispatcher": d}):
        pass


def test_compile_notice_once_and_only_on_a_terminal(monkeypatch):
    _dispatch.install_compile_notice()  # done when the first kernel is made; idempotent
    _dispatch.install_compile_notice()
    monkeypatch.setattr(_dispatch, "_noticed", [False])
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    _fire_compile("someone_else.kernels")  # not ours: silent
    assert term.getvalue() == ""
    _fire_compile("latentem.kernels.gaussian")
    _fire_compile("latentem.kernels.hmm")
    assert term.getvalue() == _dispatch._NOTICE
    assert "compiling its kernels for this machine, once" in term.getvalue()
    monkeypatch.setattr(_dispatch, "_noticed", [False])
    pipe = io.StringIO()  # a log file or a pipe: silent
    monkeypatch.setattr("sys.stderr", pipe)
    _fire_compile("latentem.kernels.gaussian")
    assert pipe.getvalue() == ""


# ------------------------------------------------------------------ whole fits
def _both(fit):
    """``fit()`` with every kernel compiled, then with every kernel in NumPy."""
    out = []
    for rows in (0, 10**9):
        with small_rows(rows), warnings.catch_warnings():
            warnings.simplefilter("ignore", latentem.ConvergenceWarning)
            out.append(fit())
    return out


def _close(a, b, rtol=1e-9, atol=1e-9):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def blobs3():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 0.0], [0.0, 5.0, 5.0]])
    return centers[rng.integers(0, 3, 300)] + rng.normal(size=(300, 3))


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_gaussian_mixture_fits_agree(blobs3, ct):
    def fit():
        m = latentem.GaussianMixture(3, covariance_type=ct, random_state=1, tol=1e-8)
        m.fit(blobs3)
        return {
            "means": m.means_,
            "cov": m.covariances_,
            "weights": m.weights_,
            "proba": m.predict_proba(blobs3[:50]),
            "score": m.score_samples(blobs3[:50]),
            "labels": m.predict(blobs3[:50]),
            "history": np.asarray(m.history_),
        }

    a, b = _both(fit)
    _close(a, b)
    assert np.all(np.diff(a["history"]) >= 0) and np.all(np.diff(b["history"]) >= 0)


@pytest.mark.parametrize(
    "K,ct", [(3, "diag"), (9, "diag"), (3, "full"), (2, "tied"), (3, "spherical")]
)
def test_gaussian_hmm_fits_agree(K, ct):
    rng = np.random.default_rng(K)
    z = np.repeat(rng.integers(0, K, 40), 10)
    X = np.arange(K, dtype=float)[z, None] * 3.0 + rng.normal(size=(400, 2))
    lengths = [150, 1, 49, 200]

    def fit():
        m = latentem.GaussianHMM(K, ct, n_iter=15, random_state=0, tol=0.0).fit(X, lengths)
        lp, states = m.decode(X, lengths)
        return {
            "means": m.means_,
            "covars": m.covars_,
            "startprob": m.startprob_,
            "transmat": m.transmat_,
            "score": m.score(X, lengths),
            "proba": m.predict_proba(X, lengths),
            "states": states,
            "logprob": lp,
        }, np.asarray(m.history_)

    (a, ha), (b, hb) = _both(fit)
    _close(a, b, rtol=1e-8, atol=1e-8)
    # (once converged, rounding decides on which iteration tol=0 stops)
    n = min(len(ha), len(hb))
    np.testing.assert_allclose(ha[:n], hb[:n], rtol=1e-10)
    assert np.all(np.diff(hb) >= -1e-10 * np.abs(hb[:-1]))


def test_gaussian_hmm_with_gaps_agrees():
    rng = np.random.default_rng(5)
    z = np.repeat(rng.integers(0, 3, 30), 10)
    X = np.array([-3.0, 0.0, 3.0])[z, None] + rng.normal(size=(300, 2))
    X[rng.random(X.shape) < 0.15] = np.nan

    def fit():
        m = latentem.GaussianHMM(3, "full", n_iter=10, random_state=0, tol=0.0).fit(X)
        return {"means": m.means_, "covars": m.covars_, "transmat": m.transmat_}

    _close(*_both(fit), rtol=1e-8, atol=1e-8)


def test_discrete_hmms_agree():
    rng = np.random.default_rng(6)
    z = np.repeat(rng.integers(0, 3, 40), 10)
    S = ((z + (rng.random(400) < 0.2)) % 3)[:, None]
    C = rng.poisson(np.array([1.0, 5.0, 12.0])[z][:, None], size=(400, 2)).astype(float)

    def fit():
        cat = latentem.CategoricalHMM(3, n_iter=10, random_state=0, tol=0.0).fit(S, [200, 200])
        poi = latentem.PoissonHMM(3, n_iter=10, random_state=0, tol=0.0).fit(C)
        return {
            "emission": cat.emissionprob_,
            "cat_trans": cat.transmat_,
            "lambdas": poi.lambdas_,
            "poi_trans": poi.transmat_,
            "states": cat.predict(S, [200, 200]),
        }

    _close(*_both(fit))


@pytest.mark.parametrize("K", [1, 2])
def test_imputer_fits_agree(K):
    rng = np.random.default_rng(K)
    X = rng.multivariate_normal(np.zeros(4), 0.6 * np.eye(4) + 0.4, size=400)
    X[:200, 0] += 4.0
    X[rng.random(X.shape) < 0.2] = np.nan
    X[7] = np.nan

    def fit():
        imp = latentem.EMImputer(n_components=K, random_state=0, tol=1e-10)
        filled = imp.fit_transform(X)
        return {"filled": filled, "history": np.asarray(imp.objective_history_)}

    a, b = _both(fit)
    _close(a, b, rtol=1e-7, atol=1e-7)
    assert np.all(np.diff(b["history"]) >= -1e-9 * np.abs(b["history"][:-1]))
