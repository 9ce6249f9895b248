"""Where :class:`CategoricalLatent` lived before the latent parts moved to
:mod:`latentem.latent`; kept so existing imports keep working."""

from latentem.latent.categorical import CategoricalLatent

__all__ = ["CategoricalLatent"]
