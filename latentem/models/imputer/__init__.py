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

The package's files: ``estimator.py`` (the class, its parameters, fitting and fitted
attributes), mixins of it in ``checks.py``, ``ridge_search.py`` (``ridge="auto"``),
``regression_fill.py`` (``transform``), ``multiple.py`` (``sample_imputations``),
``online.py`` (``partial_fit``) and ``model_file.py`` (saving, old files); the EM
model in ``missing_em.py``; ``table.py`` (arrays and DataFrames in and out) and
``pooling.py`` (Rubin's rules). The column moments an out-of-core fit starts from
come from the runner (:func:`latentem.runner.column_moments`).
"""

# besides the public names, every module-level name of the former
# latentem/models/imputer.py stays importable from here (noqa: re-exports)
from latentem.models.imputer.checks import NON_NUMERIC  # noqa: F401
from latentem.models.imputer.estimator import EMImputer
from latentem.models.imputer.missing_em import (  # noqa: F401
    _NOT_PD_HINT,
    MANY_ROWS,
    _many_rows,
    _MissingEM,
    _partial_variances,
)
from latentem.models.imputer.multiple import MAX_REDRAWS, _draw_components  # noqa: F401
from latentem.models.imputer.pooling import PooledEstimate, pool_estimates
from latentem.models.imputer.ridge_search import (  # noqa: F401
    AUTO_FALLBACK,
    AUTO_HOLDOUT,
    AUTO_HOLDOUT_SEED,
    AUTO_RIDGE_GRID,
)
from latentem.models.imputer.table import _is_frame, _Table  # noqa: F401

__all__ = ["EMImputer", "PooledEstimate", "pool_estimates"]
