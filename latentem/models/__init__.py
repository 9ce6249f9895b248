"""Latent structures, and the models built from them."""

from latentem.models.categorical import CategoricalLatent
from latentem.models.gaussian_mixture import GaussianMixture

__all__ = ["CategoricalLatent", "GaussianMixture"]
