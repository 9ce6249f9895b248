"""Rubin's rules: pooling the analyses of multiply imputed data sets.

:func:`pool_estimates` combines the per-imputation estimates and their squared
standard errors into a :class:`PooledEstimate`: within, between and total variance,
Rubin's (or with ``dfcom`` Barnard and Rubin's) degrees of freedom, the relative
increase in variance and the fraction of missing information; ``confint`` gives the
t-intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PooledEstimate", "pool_estimates"]


@dataclass
class PooledEstimate:
    """Estimates pooled over multiple imputations by Rubin's rules.

    Attributes
    ----------
    estimate : ndarray
        Mean of the per-imputation estimates, ``qbar``.
    within : ndarray
        Mean within-imputation variance ``ubar``.
    between : ndarray
        Between-imputation variance ``b`` (ddof=1).
    total : ndarray
        Total variance ``t = ubar + (1 + 1/m) b``.
    std_error : ndarray
        ``sqrt(t)``.
    df : ndarray
        Degrees of freedom: Rubin's ``(m - 1) / lambda^2``, or with ``dfcom``
        Barnard and Rubin's (1999) small-sample version.
    riv : ndarray
        Relative increase in variance due to missingness, ``(1 + 1/m) b / ubar``.
    lambda_ : ndarray
        Proportion of the total variance due to missingness, ``(1 + 1/m) b / t``.
    fmi : ndarray
        Fraction of missing information, ``(riv + 2 / (df + 3)) / (1 + riv)``.
    n_imputations : int

    Examples
    --------
    >>> from latentem import pool_estimates
    >>> pooled = pool_estimates([1.0, 1.2, 0.9], [0.04, 0.05, 0.04])
    >>> round(float(pooled.estimate), 4), pooled.n_imputations
    (1.0333, 3)
    """

    estimate: np.ndarray
    within: np.ndarray
    between: np.ndarray
    total: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray
    n_imputations: int

    def confint(self, alpha: float = 0.05) -> np.ndarray:
        """``(lower, upper)`` limits of the ``1 - alpha`` t-intervals, shape (2, ...)."""
        from scipy.stats import t

        q = t.ppf(1.0 - alpha / 2.0, self.df)
        return np.stack([self.estimate - q * self.std_error, self.estimate + q * self.std_error])


def pool_estimates(estimates: Any, variances: Any, *, dfcom: float | None = None) -> PooledEstimate:
    """Pool the results of analyses of multiply imputed data sets by Rubin's rules.

    Parameters
    ----------
    estimates : array-like (m,) or (m, p)
        The estimate(s) from each of the ``m >= 2`` completed data sets.
    variances : array-like (m,) or (m, p)
        Their squared standard errors from each analysis.
    dfcom : float, optional
        Degrees of freedom of the analysis on complete data (for a mean,
        ``n - 1``; for a regression, ``n - p``). Gives Barnard and Rubin's
        small-sample degrees of freedom; without it Rubin's large-sample
        ones.

    Returns
    -------
    PooledEstimate

    Examples
    --------
    >>> from latentem.models.imputer import pool_estimates
    >>> pooled = pool_estimates([1.0, 1.2, 0.9, 1.1, 1.0], [0.04] * 5)
    >>> float(pooled.estimate), float(pooled.between), round(float(pooled.total), 4)
    (1.04, 0.013, 0.0556)
    >>> round(float(pooled.riv), 3), round(float(pooled.lambda_), 3)
    (0.39, 0.281)
    """
    q = np.asarray(estimates, dtype=np.float64)
    u = np.asarray(variances, dtype=np.float64)
    if q.shape != u.shape:
        raise ValueError(
            f"estimates and variances must have the same shape; got {q.shape} and {u.shape}."
        )
    if q.ndim == 0 or q.shape[0] < 2:
        raise ValueError("pool_estimates needs the results of at least 2 imputations.")
    if not (np.isfinite(q).all() and np.isfinite(u).all()) or (u < 0).any():
        raise ValueError("estimates must be finite and variances finite and >= 0.")
    m = q.shape[0]
    qbar = q.mean(axis=0)
    ubar = u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = np.where(ubar > 0, (1.0 + 1.0 / m) * b / ubar, np.inf)
        lam = np.where(t > 0, (1.0 + 1.0 / m) * b / t, 0.0)
        df_old = np.where(lam > 0, (m - 1) / lam**2, np.inf)
        if dfcom is not None:
            if not dfcom > 0:
                raise ValueError(f"dfcom must be > 0; got {dfcom!r}.")
            df_obs = (dfcom + 1.0) / (dfcom + 3.0) * dfcom * (1.0 - lam)
            df = np.where(np.isinf(df_old), df_obs, df_old * df_obs / (df_old + df_obs))
        else:
            df = df_old
        fmi = (riv + 2.0 / (df + 3.0)) / (1.0 + riv)
    return PooledEstimate(
        estimate=qbar,
        within=ubar,
        between=b,
        total=t,
        std_error=np.sqrt(t),
        df=df,
        riv=riv,
        lambda_=lam,
        fmi=fmi,
        n_imputations=m,
    )
