"""Factor analysis, probabilistic PCA and mixtures of factor analysers, fitted by EM with gaps.

All three are Gaussian models whose covariances have a low-rank-plus-diagonal
structure: component k of a mixture (one component for factor analysis) is
``x = mu_k + L_k u + e`` with ``u`` a q-dimensional latent factor and ``e``
independent noise with diagonal covariance ``Psi_k``, so
``x ~ N(mu_k, C_k)`` with ``C_k = L_k Cov(u) L_k^T + Psi_k``.

How EM runs here
----------------
Given the whole row ``x``, the posterior of the factors is Gaussian with a
mean *linear in x*, ``E[u | x, k] = a_k + G_k (x - mu_k)``, and a covariance
``V_k`` that does not depend on x. So every expected complete-data statistic
(``E[x u^T]``, ``E[u u^T]``, ``E[x_j^2]``) is a linear function of the
row's first and second moments. With gaps, the tower rule
``E[f(x) | x_obs] = E[E[f(x) | x] | x_obs]`` turns them into linear
functions of ``E[x | x_obs]`` and ``E[x x^T | x_obs]``, the conditional
moments of the marginal Gaussian ``N(mu_k, C_k)``. Those are exactly what the
Gaussian family with gaps
(:class:`~latentem.families.gaussian.GaussianFamily`, the
imputer's engine) computes: rows grouped by missingness pattern, the missing
cells marginalised exactly in the likelihood and their conditional
covariance added to the second moments. So the E-step here is that family's
E-step under the structured covariances ``C_k`` (statistics
``(n_k, S_k, Q_k)``: weights, first and second moments about the current
means), and the M-step maps them through ``a_k, G_k, V_k`` to the factor
statistics and solves the usual closed-form updates (Ghahramani and Hinton,
1996; Baek, McLachlan and Flack, 2010). It is exact EM: the likelihood never
decreases.

For one component (factor analysis, PPCA) the moments of the complete rows
do not depend on the parameters at all. They are computed once per fit, so
an iteration on complete data costs O(D^3), independent of the number of
rows; only rows with gaps are visited every iteration.

The package's files: :mod:`.data` (X checked once per fit),
:mod:`.moments` (factor posteriors and moments, :func:`ppca_closed_form`),
:mod:`.rotation` (:func:`orthogonal_rotation`), :mod:`.base` (the shared
base class: checks, E-step, fit, scoring), :mod:`.analysis`
(:class:`FactorAnalysis`, :class:`PPCA`) and :mod:`.mixture`
(:class:`MixtureOfFactorAnalyzers`).
"""

# every module-level name of the former module, private ones too, stays importable here
from latentem.models.factor.analysis import _FA_FITTED as _FA_FITTED
from latentem.models.factor.analysis import PPCA, FactorAnalysis
from latentem.models.factor.base import _LOG_2PI as _LOG_2PI
from latentem.models.factor.base import _FactorModel as _FactorModel
from latentem.models.factor.data import _check_real as _check_real
from latentem.models.factor.data import _check_X as _check_X
from latentem.models.factor.data import _prepare as _prepare
from latentem.models.factor.data import _Prepared as _Prepared
from latentem.models.factor.mixture import _EMPTY_FRACTION as _EMPTY_FRACTION
from latentem.models.factor.mixture import MixtureOfFactorAnalyzers
from latentem.models.factor.moments import _factor_moments as _factor_moments
from latentem.models.factor.moments import _factor_posterior as _factor_posterior
from latentem.models.factor.moments import _pca_start as _pca_start
from latentem.models.factor.moments import _residual_diag as _residual_diag
from latentem.models.factor.moments import ppca_closed_form as ppca_closed_form
from latentem.models.factor.rotation import orthogonal_rotation as orthogonal_rotation

__all__ = ["FactorAnalysis", "PPCA", "MixtureOfFactorAnalyzers"]
