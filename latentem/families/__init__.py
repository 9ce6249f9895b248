"""Emission families: K parameter sets of one distribution, vectorised over components.

Importing this package imports every module in it, and so registers every
family defined here (see :mod:`latentem.registry`): model files, the command
line and model graphs can then build them by name. A new family is one new
file in this folder.
"""

import importlib
import pkgutil

from latentem.families.base import EmissionFamily, register_family
from latentem.families.bernoulli import BernoulliFamily
from latentem.families.categorical import CategoricalFamily
from latentem.families.categorical_columns import CategoricalColumnsFamily
from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_hmm import GaussianEmission
from latentem.families.gaussian_missing import MissingGaussianFamily
from latentem.families.gaussian_mixture_emission import GaussianMixtureEmission
from latentem.families.poisson import PoissonFamily
from latentem.families.student_t import StudentTFamily

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "BernoulliFamily",
    "CategoricalColumnsFamily",
    "CategoricalFamily",
    "EmissionFamily",
    "GaussianEmission",
    "GaussianFamily",
    "GaussianMixtureEmission",
    "MissingGaussianFamily",
    "PoissonFamily",
    "StudentTFamily",
    "register_family",
]
