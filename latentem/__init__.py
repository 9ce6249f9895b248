"""latentem: fast expectation-maximization for latent-variable models."""

from latentem import tree
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
from latentem.model_selection import select_gaussian_mixture
from latentem.models.factor import PPCA, FactorAnalysis, MixtureOfFactorAnalyzers
from latentem.models.gaussian_mixture import GaussianMixture
from latentem.models.hmm import GMMHMM, HMM, CategoricalHMM, GaussianHMM, PoissonHMM
from latentem.models.imputer import EMImputer, PooledEstimate, pool_estimates
from latentem.models.mixture import BernoulliMixture, CategoricalMixture, Mixture, PoissonMixture
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

__all__ = [
    "Chunked",
    "OnlineEM",
    "Categorical",
    "Discrete",
    "Family",
    "Gaussian",
    "MarkovChain",
    "ModelGraph",
    "Poisson",
    "CategoricalHMM",
    "BernoulliMixture",
    "CategoricalMixture",
    "EmissionFamily",
    "Mixture",
    "PoissonMixture",
    "register_family",
    "ConvergenceWarning",
    "EMImputer",
    "FactorAnalysis",
    "GMMHMM",
    "GaussianHMM",
    "GaussianMixture",
    "HMM",
    "LinearGaussianSSM",
    "MarkovAutoregression",
    "MarkovRegression",
    "MixtureOfFactorAnalyzers",
    "PPCA",
    "PoissonHMM",
    "PooledEstimate",
    "SSMImputer",
    "EMResult",
    "IterationInfo",
    "LatentModel",
    "LikelihoodDecreaseWarning",
    "Stats",
    "SupportsParamVector",
    "fit_em",
    "load",
    "pool_estimates",
    "select_gaussian_mixture",
    "tree",
]
