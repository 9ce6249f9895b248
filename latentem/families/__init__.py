"""Emission families: K parameter sets of one distribution, vectorised over components."""

from latentem.families.gaussian import GaussianFamily

__all__ = ["GaussianFamily"]
