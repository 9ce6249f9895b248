"""Mixtures over one named family: :class:`PoissonMixture` (counts),
:class:`CategoricalMixture` (several categorical columns: latent class analysis) and
:class:`BernoulliMixture` (binary features). Each is a thin :class:`Mixture` that
builds its family from its own settings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.models.mixture import _ALL, _FITTED, Mixture
from latentem.registry import register

__all__ = ["PoissonMixture", "CategoricalMixture", "BernoulliMixture"]

#: The settings every mixture subclass passes on to :class:`Mixture` unchanged.
_MIXTURE_SETTINGS = (
    "n_components",
    "weights_prior",
    "tol",
    "max_iter",
    "n_init",
    "init_params",
    "params",
    "random_state",
    "warm_start",
    "accelerate",
    "verbose",
)


def _mixture_settings(values: dict) -> dict:
    """The mixture settings out of a subclass's ``locals()``, for ``Mixture.__init__``."""
    return {name: values[name] for name in _MIXTURE_SETTINGS}


@register(fitted=_FITTED, skip_params=("emission",))
class PoissonMixture(Mixture):
    """A mixture of independent Poisson counts (one rate per component and column).

    :class:`Mixture` over :class:`latentem.families.PoissonFamily`; the fitted
    rates are ``lambdas_`` (n_components, n_features). NaN marks a missing count.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import PoissonMixture
    >>> X = np.random.default_rng(0).poisson(np.repeat([2.0, 12.0], 300))[:, None]
    >>> np.sort(PoissonMixture(2, random_state=0).fit(X).lambdas_.ravel()).round()
    array([ 2., 12.])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        lambdas_prior: float = 0.0,
        lambdas_weight: float = 0.0,
        weights_prior: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans++",
        params: str = _ALL,
        random_state: Any = None,
        warm_start: bool = False,
        accelerate: str | None = None,
        verbose: int = 0,
    ) -> None:
        from latentem.families.poisson import PoissonFamily

        family = PoissonFamily(n_components, lambdas_prior, lambdas_weight)
        super().__init__(emission=family, **_mixture_settings(locals()))
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    _family_settings = ("lambdas_prior", "lambdas_weight")

    @property
    def lambdas_(self) -> np.ndarray:
        """Fitted rates, shape (n_components, n_features)."""
        return self.emission.lambdas_


@register(fitted=_FITTED, skip_params=("emission",))
class CategoricalMixture(Mixture):
    """A mixture over several categorical columns (latent class analysis).

    Each column holds integer codes ``0 .. n_levels - 1`` (its own number of
    levels); given the component, columns are independent categorical
    variables. NaN or -1 marks a missing cell. :class:`Mixture` over
    :class:`latentem.families.CategoricalColumnsFamily`; the fitted
    probabilities are ``probs_`` (n_components, n_features, max levels).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import CategoricalMixture
    >>> rng = np.random.default_rng(0)
    >>> z = rng.integers(2, size=400)
    >>> X = np.column_stack([np.where(rng.random(400) < 0.9, z, 1 - z),
    ...                      np.where(rng.random(400) < 0.9, 2 * z, 1)])
    >>> model = CategoricalMixture(2, random_state=0).fit(X)
    >>> model.probs_.shape, bool(np.isclose(model.weights_.sum(), 1.0))
    ((2, 2, 3), True)
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        n_levels: Any = None,
        probs_prior: float = 1.0,
        weights_prior: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "random",
        params: str = _ALL,
        random_state: Any = None,
        warm_start: bool = False,
        accelerate: str | None = None,
        verbose: int = 0,
    ) -> None:
        from latentem.families.categorical_columns import CategoricalColumnsFamily

        family = CategoricalColumnsFamily(n_components, n_levels, probs_prior)
        super().__init__(emission=family, **_mixture_settings(locals()))
        self.n_levels = n_levels
        self.probs_prior = probs_prior

    _family_settings = ("probs_prior",)

    def _sklearn_expected_failed_checks(self) -> dict[str, str]:
        return {
            **super()._sklearn_expected_failed_checks(),
            "check_sample_weight_equivalence_on_dense_data": (
                "its data are continuous, not category codes (the weights' equivalence to "
                "repeated rows is tested in latentem's own tests)"
            ),
        }

    @property
    def probs_(self) -> np.ndarray:
        """Level probabilities, (n_components, n_features, max levels); zero past a
        column's last level."""
        return self.emission.probs_


@register(fitted=_FITTED, skip_params=("emission",))
class BernoulliMixture(Mixture):
    """A mixture of independent binary features: latent class analysis.

    :class:`Mixture` over :class:`latentem.families.bernoulli.BernoulliFamily`;
    the fitted probabilities are ``probs_`` (n_components, n_features), the
    chance that each feature is 1 under each component. NaN marks a missing
    answer. ``beta_prior=(2, 2)`` adds one pseudo-observation of each value
    and keeps probabilities away from 0 and 1. ``binarize=t`` reads values
    above ``t`` as 1 and the others as 0, as scikit-learn's ``BernoulliNB``
    does; None (the default) takes 0/1 data only.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import BernoulliMixture
    >>> rng = np.random.default_rng(0)
    >>> truth = np.array([[0.9, 0.9, 0.1, 0.1], [0.1, 0.2, 0.9, 0.8]])
    >>> z = rng.integers(2, size=1000)
    >>> X = (rng.random((1000, 4)) < truth[z]).astype(float)
    >>> model = BernoulliMixture(2, n_init=3, random_state=0).fit(X)
    >>> np.round(model.probs_[np.argsort(model.probs_[:, 0])], 1)
    array([[0.1, 0.2, 0.9, 0.8],
           [0.9, 0.9, 0.1, 0.1]])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        beta_prior: Any = (1.0, 1.0),
        binarize: float | None = None,
        weights_prior: float = 1.0,
        tol: float = 1e-3,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans++",
        params: str = _ALL,
        random_state: Any = None,
        warm_start: bool = False,
        accelerate: str | None = None,
        verbose: int = 0,
    ) -> None:
        from latentem.families.bernoulli import BernoulliFamily

        family = BernoulliFamily(n_components, beta_prior=beta_prior, binarize=binarize)
        super().__init__(emission=family, **_mixture_settings(locals()))
        self.beta_prior = beta_prior
        self.binarize = binarize

    _family_settings = ("beta_prior", "binarize")

    @property
    def probs_(self) -> np.ndarray:
        """Probability that each feature is 1, shape (n_components, n_features)."""
        return self.emission.probs_
