"""EM imputation of missing values under a multivariate normal or a Gaussian mixture.

:class:`EMImputer` fits the model to the observed entries by EM (the E-step
fills each gap with its conditional mean and adds the conditional
covariance to the second moments; see :mod:`latentem.kernels.gaussian_missing`),
then fills gaps from per-column Bayesian ridge regressions derived from the
fitted moments, or with plain conditional means (:meth:`EMImputer.transform`), or
draws them with parameter uncertainty for multiple imputation
(:meth:`EMImputer.sample_imputations`, bootstrap EM as in Amelia).
:func:`pool_estimates` combines the analyses of the imputed data sets by
Rubin's rules.
"""

# the module-level names of latentem/models/imputer.py, which the package replaced:
# other modules, tests and older code import them from here
from latentem.models.imputer.estimator import (  # noqa: F401
    _NOT_PD_HINT,
    AUTO_FALLBACK,
    AUTO_HOLDOUT,
    AUTO_HOLDOUT_SEED,
    AUTO_RIDGE_GRID,
    EMPTY_FRACTION,
    MANY_ROWS,
    MAX_REDRAWS,
    NON_NUMERIC,
    EMImputer,
    PooledEstimate,
    _column_moments,
    _draw_components,
    _is_frame,
    _many_rows,
    _MissingEM,
    _partial_variances,
    _Table,
    pool_estimates,
)

__all__ = ["EMImputer", "PooledEstimate", "pool_estimates"]
