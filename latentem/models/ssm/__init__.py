"""Linear-Gaussian state-space models fitted by Kalman-smoother EM, with gaps.

The model, for every sequence (t = 1, 2, ... within it)::

    x_1 ~ N(initial_mean, initial_cov)
    x_t = A x_{t-1} + B u_t + w_t,     w_t ~ N(0, Q)     (t >= 2)
    y_t = C x_t + D u_t + v_t,         v_t ~ N(0, R)

with ``A`` the ``transition_matrix``, ``B`` the ``transition_input``, ``C``
the ``observation_matrix``, ``D`` the ``observation_input``, ``Q`` the
``transition_cov`` and ``R`` the ``observation_cov``. Missing entries of
``y_t`` (NaN) are handled exactly: the filter uses the observed rows of
``C`` and ``R`` only, and EM treats the missing entries as latent, so the
smoothed values of the gaps come with their variances (time-series
imputation).

EM (Shumway and Stoffer, 1982) runs on the generic runner
(:func:`latentem.fit_em`), so restarts, SQUAREM and the chunked and Dask
backends apply unchanged. Parameters can be held fixed whole or entry by
entry, and the covariances can be full, diagonal or scalar.

The package's files: :mod:`.data` (:class:`SSMData`, :class:`SmoothedSSM`,
checking the data), :mod:`.parameters` (names, shapes, fixed entries),
:mod:`.mstep` (the closed-form M-step), :mod:`.outputs` (scores, smoothing,
sampling), :mod:`.model` (:class:`LinearGaussianSSM` itself) and
:mod:`.imputer` (:class:`SSMImputer`).
"""

# every module-level name of the former module, private ones too, stays importable here
from latentem.kernels.kalman import kalman_smoother as kalman_smoother
from latentem.models.ssm.data import SmoothedSSM, SSMData
from latentem.models.ssm.data import _check_not_all_constant as _check_not_all_constant
from latentem.models.ssm.imputer import SSMImputer
from latentem.models.ssm.model import LinearGaussianSSM
from latentem.models.ssm.mstep import _regression as _regression
from latentem.models.ssm.mstep import _residual_cov as _residual_cov
from latentem.models.ssm.mstep import _solve_sym as _solve_sym
from latentem.models.ssm.parameters import _SYMBOL as _SYMBOL
from latentem.models.ssm.parameters import COV_TYPES as COV_TYPES
from latentem.models.ssm.parameters import PARAMS as PARAMS
from latentem.models.ssm.parameters import _sym as _sym

__all__ = ["LinearGaussianSSM", "SSMData", "SmoothedSSM", "SSMImputer"]
