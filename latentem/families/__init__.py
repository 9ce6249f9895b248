"""Emission families: K parameter sets of one distribution, vectorised over components.

Importing this package registers every built-in family (see
:mod:`latentem.registry`), so model files, the command line and model
graphs can build them by name.
"""

from latentem.families.base import EmissionFamily, register_family
from latentem.families.categorical import CategoricalFamily
from latentem.families.categorical_columns import CategoricalColumnsFamily
from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_hmm import GaussianEmission
from latentem.families.gaussian_missing import MissingGaussianFamily
from latentem.families.gaussian_mixture_emission import GaussianMixtureEmission
from latentem.families.poisson import PoissonFamily

__all__ = [
    "CategoricalColumnsFamily",
    "CategoricalFamily",
    "EmissionFamily",
    "GaussianEmission",
    "GaussianFamily",
    "GaussianMixtureEmission",
    "MissingGaussianFamily",
    "PoissonFamily",
    "register_family",
]
