"""Linear-Gaussian state-space models fitted by Kalman-smoother EM, with gaps.

The former module ``latentem/models/ssm.py`` moved whole to
:mod:`latentem.models.ssm.model`; its names are re-exported here, so
``from latentem.models.ssm import ...`` keeps working.
"""

# every module-level name of the former module, private ones too, stays importable here
from latentem.models.ssm.model import _SYMBOL as _SYMBOL
from latentem.models.ssm.model import COV_TYPES as COV_TYPES
from latentem.models.ssm.model import PARAMS as PARAMS
from latentem.models.ssm.model import LinearGaussianSSM, SmoothedSSM, SSMData, SSMImputer
from latentem.models.ssm.model import _check_not_all_constant as _check_not_all_constant
from latentem.models.ssm.model import _offsets as _offsets
from latentem.models.ssm.model import _regression as _regression
from latentem.models.ssm.model import _residual_cov as _residual_cov
from latentem.models.ssm.model import _solve_sym as _solve_sym
from latentem.models.ssm.model import _sym as _sym
from latentem.models.ssm.model import kalman_smoother as kalman_smoother

__all__ = ["LinearGaussianSSM", "SSMData", "SmoothedSSM", "SSMImputer"]
