import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def poisson_mixture_cls():
    """The user-defined PoissonMixture from examples/custom_model.py."""
    return runpy.run_path(str(ROOT / "examples" / "custom_model.py"))["PoissonMixture"]
