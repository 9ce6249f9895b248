"""Factor analysis, probabilistic PCA and mixtures of factor analysers, fitted by EM with gaps.

The former module ``latentem/models/factor.py`` moved whole to
:mod:`latentem.models.factor.mixture`; its names are re-exported here, so
``from latentem.models.factor import ...`` keeps working.
"""

# every module-level name of the former module, private ones too, stays importable here
from latentem.models.factor.mixture import _EMPTY_FRACTION as _EMPTY_FRACTION
from latentem.models.factor.mixture import _FA_FITTED as _FA_FITTED
from latentem.models.factor.mixture import _LOG_2PI as _LOG_2PI
from latentem.models.factor.mixture import (
    PPCA,
    FactorAnalysis,
    MixtureOfFactorAnalyzers,
)
from latentem.models.factor.mixture import _check_real as _check_real
from latentem.models.factor.mixture import _check_X as _check_X
from latentem.models.factor.mixture import _factor_moments as _factor_moments
from latentem.models.factor.mixture import _factor_posterior as _factor_posterior
from latentem.models.factor.mixture import _FactorModel as _FactorModel
from latentem.models.factor.mixture import _pca_start as _pca_start
from latentem.models.factor.mixture import _prepare as _prepare
from latentem.models.factor.mixture import _Prepared as _Prepared
from latentem.models.factor.mixture import _residual_diag as _residual_diag
from latentem.models.factor.mixture import orthogonal_rotation as orthogonal_rotation
from latentem.models.factor.mixture import ppca_closed_form as ppca_closed_form

__all__ = ["FactorAnalysis", "PPCA", "MixtureOfFactorAnalyzers"]
