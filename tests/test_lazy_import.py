"""``import latentem`` loads no numba and no scipy; kernels are made on first use."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from latentem.kernels import _jit


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return out.stdout.strip()


def test_import_latentem_loads_neither_numba_nor_scipy():
    code = "import sys, latentem; print(sorted(m for m in ('numba', 'scipy') if m in sys.modules))"
    assert _run(code) == "[]"


def test_a_small_fit_needs_no_numba():
    # inputs of at most LATENTEM_SMALL_ROWS rows run the NumPy kernels
    code = (
        "import sys, numpy as np, latentem\n"
        "X = np.random.default_rng(0).normal(size=(300, 2))\n"
        "latentem.GaussianMixture(2, random_state=0).fit(X)\n"
        "latentem.GaussianHMM(2, random_state=0).fit(X)\n"
        "print('numba' in sys.modules)"
    )
    assert _run(code) == "False"


def test_public_names_resolve_and_unknown_names_fail():
    import latentem

    for name in latentem.__all__:
        assert getattr(latentem, name) is not None
    assert set(latentem.__all__) <= set(dir(latentem))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        latentem.nonexistent  # noqa: B018


def test_a_saved_model_loads_in_a_process_that_imported_nothing_else(tmp_path):
    import latentem

    X = np.random.default_rng(1).normal(size=(200, 2))
    path = tmp_path / "m.lem"
    latentem.PoissonHMM(2, random_state=0).fit(np.abs(X).round() + 1).save(path)
    code = f"import latentem; print(type(latentem.load({str(path)!r})).__name__)"
    assert _run(code) == "PoissonHMM"


# --------------------------------------------------------------- lazy njit
def _add_rows(a):  # a kernel written for numba, defined at module level below
    out = np.zeros(a.shape[1])
    for i in _jit.prange(a.shape[0]):
        out += a[i]
    return out


def test_lazy_kernel_computes_what_numpy_does_and_pickles_by_reference():
    from latentem.kernels.gaussian import gaussian_estep

    kernel = gaussian_estep.jit
    assert isinstance(kernel, _jit.LazyJit)
    assert kernel.__name__ == "gaussian_estep_jit" and kernel.__doc__
    assert pickle.loads(pickle.dumps(kernel)) is not None
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    means = rng.normal(size=(2, 3))
    prec = np.stack([np.eye(3)] * 2)
    logc = np.zeros(2)
    a = kernel(X, means, prec, logc, np.zeros(2), 0)
    b = gaussian_estep.numpy(X, means, prec, logc, np.zeros(2), 0)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    assert hasattr(kernel, "py_func")  # numba's attributes once made


def test_njit_decorator_forms():
    plain = _jit.njit(_add_rows)
    configured = _jit.njit(cache=False)(_add_rows)
    assert isinstance(plain, _jit.LazyJit) and isinstance(configured, _jit.LazyJit)
    assert "not yet made" in repr(_jit.njit(cache=False)(_add_rows))
    with pytest.raises(AttributeError):
        plain._private  # noqa: B018


def test_threads_making_the_same_kernels_at_once_get_the_numpy_answers():
    """Kernels of one module are published only after its names are swapped, so threads
    that make them at the same moment all compile (or load) a sound kernel."""
    code = """
import threading, numpy as np
from latentem.kernels.discrete import categorical_logprob, poisson_logprob
rng = np.random.default_rng(0)
codes = rng.integers(-1, 3, 5000)
log_e = np.log(rng.dirichlet(np.ones(3), size=4))
X = rng.poisson(3.0, (5000, 2)).astype(float)
lam = rng.uniform(1, 5, (4, 2))
want = (categorical_logprob.numpy(codes, log_e), poisson_logprob.numpy(X, lam))
barrier, out = threading.Barrier(8), []
def work(i):
    barrier.wait()
    k = categorical_logprob.jit if i % 2 else poisson_logprob.jit
    out.append((i % 2, k(codes, log_e) if i % 2 else k(X, lam)))
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ok = all(np.allclose(got, want[0] if odd else want[1]) for odd, got in out)
print(len(out), ok)
"""
    assert _run(code) == "8 True"
