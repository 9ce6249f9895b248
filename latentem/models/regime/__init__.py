"""Regime switching: Markov-switching regressions and autoregressions, fitted by EM.

Two models, with statsmodels' names and parametrisation:

* :class:`MarkovRegression` ``y_t = x_t' beta_{S_t} + e_t``, ``e_t ~ N(0, sigma2_{S_t})``;
* :class:`MarkovAutoregression` (Hamilton, 1989)
  ``y_t - x_t' beta_{S_t} = sum_i phi_{i, S_t} (y_{t-i} - x_{t-i}' beta_{S_{t-i}}) + e_t``.

``x_t`` is a constant (``trend="c"``) and the exogenous columns passed to
``fit``; each block of coefficients and the variance switch with the regime
or are shared (``switching_trend``, ``switching_exog``, ``switching_ar``,
``switching_variance``). The regime ``S_t`` is a Markov chain whose
transition probabilities are constant or multinomial-logit in covariates
``z_t`` (``exog_tvtp``). The initial regime distribution is the stationary
distribution of the chain (statsmodels' default), a free vector, or fixed.

Both models are :class:`latentem.LatentModel` objects fitted by
:func:`latentem.fit_em` (restarts, SQUAREM). The E-step is Hamilton's filter
and Kim's smoother over the last ``order + 1`` regimes
(:mod:`latentem.kernels.regime`); the emission statistics are weighted moment
matrices of ``(y_t, x_t, y_{t-1}, x_{t-1}, ...)`` per regime path, so the
M-step maximises the expected complete-data log-likelihood exactly by
conditional maximisation cycles (coefficients, autoregressive coefficients,
variances) on those small matrices, and the transition part by a
multinomial-logit fit (closed form for constant transitions without the
stationary start). Every step raises the expected log-likelihood, so EM
never lowers the likelihood.

The package's files (formerly one module, ``latentem/models/regime.py``):
:mod:`~latentem.models.regime.models` (the two public classes),
:mod:`~latentem.models.regime.switching` (their base class: settings, E-step,
emission M-step, fit), :mod:`~latentem.models.regime.data` (the validated
series and the smoother's results), :mod:`~latentem.models.regime.transitions`
(the regime chain and its M-step), :mod:`~latentem.models.regime.parameters`
(parameter vectors, statsmodels' layout, standard errors) and
:mod:`~latentem.models.regime.forecast` (forecasts and simulation).
"""

from latentem.models.regime.data import RegimeData, RegimeResult
from latentem.models.regime.models import MarkovAutoregression, MarkovRegression

# Private names kept importable from here, as from the former module (the command line
# imports _RegimeSwitching).
from latentem.models.regime.switching import _as_mask as _as_mask
from latentem.models.regime.switching import _RegimeSwitching as _RegimeSwitching
from latentem.models.regime.transitions import _logits as _logits
from latentem.models.regime.transitions import _softmax_last_zero as _softmax_last_zero
from latentem.models.regime.transitions import _stationary as _stationary
from latentem.models.regime.transitions import _tvtp_matrices as _tvtp_matrices

__all__ = ["MarkovAutoregression", "MarkovRegression", "RegimeData", "RegimeResult"]
