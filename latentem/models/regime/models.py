"""The two public regime-switching models, with statsmodels' names and parameters.

:class:`MarkovRegression` (a regression whose coefficients and variance
switch with the regime) and :class:`MarkovAutoregression` (Hamilton's
autoregression, the E-step over the last ``order + 1`` regimes): their
explicit constructors (scikit-learn reads their signatures) and what differs
between them; everything else is :class:`_RegimeSwitching`'s.
"""

from __future__ import annotations

from typing import Any

from latentem._validation import check_positive_int
from latentem.models.regime.switching import _RegimeSwitching
from latentem.registry import register

__all__ = ["MarkovAutoregression", "MarkovRegression"]


@register
class MarkovRegression(_RegimeSwitching):
    """Markov-switching regression ``y_t = x_t' beta_{S_t} + e_t``, fitted by EM.

    statsmodels' ``MarkovRegression`` (same parameters, same likelihood), but
    fitted by EM with restarts and SQUAREM, for panels of series, with
    missing observations, forecasts and model files.

    Parameters
    ----------
    k_regimes : int
        Number of regimes (>= 2).
    trend : {"c", "n"}
        A constant column in ``x_t`` or none.
    switching_trend : bool
        Whether the constant switches with the regime.
    switching_exog : bool or sequence of bool
        Whether the coefficients of ``exog`` switch (one flag per column allowed).
    switching_variance : bool
        Whether the error variance switches.
    initial : {"stationary", "free"} or array
        Initial regime distribution: the stationary distribution of the chain
        (statsmodels' default), a free vector estimated by EM, or fixed.
    n_init : int
        EM starts (the first from a split of OLS residuals, the others random).
    search_iter : int or None
        None (the default): every start runs EM to convergence and the best
        is kept. An int: every start runs at most ``search_iter`` EM
        iterations, and only the best of these short runs goes on to
        convergence (statsmodels' ``search_reps`` strategy, which runs 5).
        Much cheaper with many starts; a start that only overtakes the others
        late is missed.
    max_iter, tol : int, float
        Per start, as in :func:`latentem.fit_em` (``tol`` on the mean
        per-row log-likelihood).
    accelerate : {"squarem", None}
    m_step_cycles : int
        Conditional-maximisation cycles per M-step (a maximum; they stop when
        the expected log-likelihood stops rising).
    random_state : None, int or Generator
    verbose : bool or int

    Attributes
    ----------
    transmat_ : ndarray (k_regimes, k_regimes)
        ``transmat_[i, j] = P(S_t = j | S_{t-1} = i)`` (constant transitions).
    tvtp_coef_ : ndarray (k_regimes, k_regimes - 1, k_tvtp)
        With ``exog_tvtp``: ``P(S_t = j | S_{t-1} = i) ∝ exp(z_t' tvtp_coef_[i, j])``,
        the last regime's logit being 0.
    coef_ : ndarray (k_regimes, n_regressors)
        ``beta_k`` (constant first); equal rows where a coefficient does not switch.
    sigma2_ : ndarray (k_regimes,)
    llf_ : float
        Log-likelihood at the fit.
    history_ : ndarray
        EM log-likelihood history of the best start (never decreasing).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import MarkovRegression
    >>> rng = np.random.default_rng(0)
    >>> truth = MarkovRegression(2)
    >>> truth.transmat_ = np.array([[0.95, 0.05], [0.1, 0.9]])
    >>> truth.coef_ = np.array([[0.0], [3.0]])
    >>> truth.sigma2_ = np.array([1.0, 1.0])
    >>> y, regimes = truth.simulate(400, random_state=0)
    >>> model = MarkovRegression(2, n_init=3, random_state=0).fit(y)
    >>> np.round(np.sort(model.coef_[:, 0]), 1)
    array([-0.1,  2.9])
    >>> bool(np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[1:])))
    True
    """

    def __init__(
        self,
        k_regimes: int = 2,
        trend: str = "c",
        switching_trend: bool = True,
        switching_exog: Any = True,
        switching_variance: bool = False,
        initial: Any = "stationary",
        n_init: int = 10,
        search_iter: int | None = None,
        max_iter: int = 2000,
        tol: float = 1e-10,
        accelerate: str | None = "squarem",
        m_step_cycles: int = 50,
        random_state: Any = None,
        verbose: bool | int = False,
    ):
        self._keep_settings(locals())


@register
class MarkovAutoregression(_RegimeSwitching):
    """Hamilton's Markov-switching autoregression, fitted by EM.

    ``y_t - x_t' beta_{S_t} = sum_{i<=order} phi_{i,S_t} (y_{t-i} - x_{t-i}' beta_{S_{t-i}})
    + e_t``: statsmodels' ``MarkovAutoregression`` (same parameters, same
    likelihood: the first ``order`` rows are conditioned on). The E-step runs
    over the last ``order + 1`` regimes.

    Parameters
    ----------
    k_regimes : int
    order : int
        Autoregressive order (>= 1).
    trend : {"c", "n"}
    switching_ar : bool or sequence of bool
        Whether the autoregressive coefficients switch (per lag allowed).
    switching_trend, switching_exog, switching_variance, initial, n_init,
    search_iter, max_iter, tol, accelerate, m_step_cycles, random_state, verbose
        As in :class:`MarkovRegression` (``switching_exog`` defaults to False,
        as in statsmodels).

    Attributes
    ----------
    ar_coef_ : ndarray (k_regimes, order)
    transmat_, tvtp_coef_, coef_, sigma2_, llf_, history_
        As in :class:`MarkovRegression`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import MarkovAutoregression
    >>> truth = MarkovAutoregression(2, order=1, switching_ar=False)
    >>> truth.transmat_ = np.array([[0.9, 0.1], [0.05, 0.95]])
    >>> truth.coef_ = np.array([[-1.0], [2.0]])
    >>> truth.ar_coef_ = np.array([[0.3], [0.3]])
    >>> truth.sigma2_ = np.array([0.5, 0.5])
    >>> y, _ = truth.simulate(500, random_state=1)
    >>> model = MarkovAutoregression(2, order=1, switching_ar=False, n_init=3, random_state=0)
    >>> model = model.fit(y)
    >>> np.round(np.sort(model.coef_[:, 0]), 0)
    array([-1.,  2.])
    >>> bool(np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[1:])))
    True
    """

    def __init__(
        self,
        k_regimes: int = 2,
        order: int = 1,
        trend: str = "c",
        switching_ar: Any = True,
        switching_trend: bool = True,
        switching_exog: Any = False,
        switching_variance: bool = False,
        initial: Any = "stationary",
        n_init: int = 10,
        search_iter: int | None = None,
        max_iter: int = 2000,
        tol: float = 1e-10,
        accelerate: str | None = "squarem",
        m_step_cycles: int = 50,
        random_state: Any = None,
        verbose: bool | int = False,
    ):
        self._keep_settings(locals())

    def _check_settings(self) -> None:
        check_positive_int(self.order, "order")
        super()._check_settings()
