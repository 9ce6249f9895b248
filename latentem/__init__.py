"""latentem: fast expectation-maximization for latent-variable models."""

from latentem import tree
from latentem.protocol import LatentModel, Stats, SupportsParamVector
from latentem.runner import (
    ConvergenceWarning,
    EMResult,
    IterationInfo,
    LikelihoodDecreaseWarning,
    fit_em,
)

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "EMResult",
    "IterationInfo",
    "LatentModel",
    "LikelihoodDecreaseWarning",
    "Stats",
    "SupportsParamVector",
    "fit_em",
    "tree",
]
