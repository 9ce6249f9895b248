import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def poisson_mixture_cls():
    """The user-defined PoissonMixture from examples/custom_model.py."""
    return runpy.run_path(str(ROOT / "examples" / "custom_model.py"))["PoissonMixture"]


def blobs(n=6000, d=3, seed=0):
    """Three well-separated Gaussian clusters (the scale and Dask tests' data)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-6.0] * d, [0.0] * d, [6.0] * d])
    z = rng.integers(0, 3, n)
    return centers[z] + rng.normal(size=(n, d)) * (1.0 + z[:, None] * 0.2)


@pytest.fixture(params=["jit", "numpy"])
def kernel_path(request):
    """Which version of a :class:`latentem.kernels.Kernel` a kernel test runs: the
    compiled one (``jit``) or the NumPy one for small inputs (``numpy``)."""
    return request.param


@pytest.fixture(params=["jit", "numpy"])
def kernel_route(request):
    """Runs the whole test with every kernel compiled (``jit``) or, where a NumPy
    version exists, in NumPy (``numpy``), whatever the size of its inputs."""
    from latentem.kernels import small_rows

    with small_rows(0 if request.param == "jit" else 10**9):
        yield request.param
