"""latentem: fast expectation-maximization for latent-variable models.

The names below are imported on first use (PEP 562), so ``import latentem``
stays cheap: numba, scipy and the models load when a model is first touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for static tools (IDEs, type checkers, the API docs); not run
    from latentem import tree
    from latentem._sklearn import NotFittedError
    from latentem.backends import Chunked, OnlineEM
    from latentem.families.base import EmissionFamily, register_family
    from latentem.graph import (
        Categorical,
        Discrete,
        Family,
        Gaussian,
        MarkovChain,
        ModelGraph,
        Poisson,
    )
    from latentem.model_selection import bootstrap_lrt, select_gaussian_mixture, select_n_components
    from latentem.models.factor import PPCA, FactorAnalysis, MixtureOfFactorAnalyzers
    from latentem.models.family_mixtures import (
        BernoulliMixture,
        CategoricalMixture,
        PoissonMixture,
    )
    from latentem.models.gaussian_mixture import GaussianMixture
    from latentem.models.hmm import GMMHMM, HMM, CategoricalHMM, GaussianHMM, PoissonHMM
    from latentem.models.imputer import EMImputer, PooledEstimate, pool_estimates
    from latentem.models.mixed_imputer import MixedImputer
    from latentem.models.mixture import Mixture
    from latentem.models.regime import MarkovAutoregression, MarkovRegression
    from latentem.models.ssm import LinearGaussianSSM, SSMImputer
    from latentem.persistence import load
    from latentem.protocol import LatentModel, Stats, SupportsParamVector
    from latentem.runner import (
        ConvergenceWarning,
        EMResult,
        IterationInfo,
        LikelihoodDecreaseWarning,
        fit_em,
    )

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "tree": "latentem.tree",
    "Chunked": "latentem.backends",
    "OnlineEM": "latentem.backends",
    "EmissionFamily": "latentem.families.base",
    "register_family": "latentem.families.base",
    "Categorical": "latentem.graph",
    "Discrete": "latentem.graph",
    "Family": "latentem.graph",
    "Gaussian": "latentem.graph",
    "MarkovChain": "latentem.graph",
    "ModelGraph": "latentem.graph",
    "Poisson": "latentem.graph",
    "select_gaussian_mixture": "latentem.model_selection",
    "select_n_components": "latentem.model_selection",
    "bootstrap_lrt": "latentem.model_selection",
    "PPCA": "latentem.models.factor",
    "FactorAnalysis": "latentem.models.factor",
    "MixtureOfFactorAnalyzers": "latentem.models.factor",
    "GaussianMixture": "latentem.models.gaussian_mixture",
    "GMMHMM": "latentem.models.hmm",
    "HMM": "latentem.models.hmm",
    "CategoricalHMM": "latentem.models.hmm",
    "GaussianHMM": "latentem.models.hmm",
    "PoissonHMM": "latentem.models.hmm",
    "EMImputer": "latentem.models.imputer",
    "MixedImputer": "latentem.models.mixed_imputer",
    "PooledEstimate": "latentem.models.imputer",
    "pool_estimates": "latentem.models.imputer",
    "BernoulliMixture": "latentem.models.family_mixtures",
    "CategoricalMixture": "latentem.models.family_mixtures",
    "Mixture": "latentem.models.mixture",
    "PoissonMixture": "latentem.models.family_mixtures",
    "MarkovAutoregression": "latentem.models.regime",
    "MarkovRegression": "latentem.models.regime",
    "LinearGaussianSSM": "latentem.models.ssm",
    "SSMImputer": "latentem.models.ssm",
    "load": "latentem.persistence",
    "LatentModel": "latentem.protocol",
    "Stats": "latentem.protocol",
    "SupportsParamVector": "latentem.protocol",
    "ConvergenceWarning": "latentem.runner",
    "NotFittedError": "latentem._sklearn",
    "EMResult": "latentem.runner",
    "IterationInfo": "latentem.runner",
    "LikelihoodDecreaseWarning": "latentem.runner",
    "fit_em": "latentem.runner",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'latentem' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


def _import_all() -> None:
    """Import every public name (and so register every built-in class)."""
    for name in _WHERE:
        __getattr__(name)
