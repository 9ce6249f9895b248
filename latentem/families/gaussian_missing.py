"""Names kept for code and model files written before the Gaussian family became
one gap-aware class, and the Bayesian-ridge fills of the imputer.

:class:`MissingGaussianFamily` is :class:`~latentem.families.gaussian.GaussianFamily`
(which marginalises NaN cells itself); :class:`MissingPlan`, :func:`missing_plan`
and :func:`row_missingness` live in :mod:`latentem.families.gaussian_gaps`.
:func:`bayesian_ridge_regressions` gives every column's regression on the
others, shrunk by its evidence-maximising ridge.
"""

from __future__ import annotations

import numpy as np

from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_gaps import MissingPlan, missing_plan, row_missingness

__all__ = [
    "MissingGaussianFamily",
    "MissingPlan",
    "bayesian_ridge_regressions",
    "missing_plan",
    "row_missingness",
]

#: The gap-aware Gaussian family under its earlier name (model files name it so).
MissingGaussianFamily = GaussianFamily


#: Gamma hyperpriors of the evidence maximisation (shape and rate of both
#: precisions), as scikit-learn's BayesianRidge: nearly flat.
_EVIDENCE_HYPER = 1e-6
_EVIDENCE_MAX_ITER = 300
_EVIDENCE_RTOL = 1e-10


def _ridge_terms(w2: np.ndarray, e: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, ...]:
    """For every column j, with ``Q = (C + r_j I)^-1`` (``C = U diag(e) U^T``, ``w2 = U**2``):
    ``Q_jj``, ``(Q^2)_jj`` and ``tr Q``, each an O(D) sum over the eigenvalues."""
    inv = 1.0 / (e[None, :] + r[:, None])
    return (w2 * inv).sum(axis=1), (w2 * inv * inv).sum(axis=1), inv.sum(axis=1)


def _evidence_ridges(w2: np.ndarray, e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Ridge ``r_j`` (correlation units) of every column's regression on the others that
    maximises its Bayesian-ridge evidence on ``n[j]`` rows.

    MacKay's fixed point for the noise precision ``alpha`` and the weight
    precision ``lam`` of each column, as in scikit-learn's BayesianRidge, on
    standardised columns (``r = lam / (alpha n)``). Everything it needs about
    the regression of j on the others ``o`` comes from ``Q = (C + r I)^-1``
    by the block-inverse identities: ``(C_oo + r I)^-1 = Q_oo - Q_oj Q_jo / Q_jj``,
    the coefficients ``beta = -Q_oj / Q_jj`` and ``beta^T C_oj = 1 + r - 1 / Q_jj``.
    One eigendecomposition of C serves all columns and all iterations.
    """
    h = _EVIDENCE_HYPER
    D = e.shape[0]
    alpha = np.ones(D)  # 1 / var(y) of a standardised column, BayesianRidge's start
    lam = np.ones(D)
    for _ in range(_EVIDENCE_MAX_ITER):
        r = lam / (alpha * n)
        qjj, q2jj, trq = _ridge_terms(w2, e, r)
        tr_oo = trq - q2jj / qjj  # tr (C_oo + r I)^-1
        gamma = (D - 1) - r * tr_oo  # effective number of coefficients
        beta2 = (q2jj - qjj * qjj) / (qjj * qjj)  # |beta|^2
        fit = 1.0 + r - 1.0 / qjj  # beta^T C_oj
        rss = np.maximum(n * (1.0 - 2.0 * fit + (fit - r * beta2)), 0.0)  # beta^T C_oo beta
        lam_new = (gamma + 2 * h) / (beta2 + 2 * h)
        alpha_new = np.maximum(n - gamma + 2 * h, h) / (rss + 2 * h)
        done = np.all(np.abs(lam_new - lam) <= _EVIDENCE_RTOL * lam) and np.all(
            np.abs(alpha_new - alpha) <= _EVIDENCE_RTOL * alpha
        )
        alpha, lam = alpha_new, lam_new
        if done:
            break
    return lam / (alpha * n)


def bayesian_ridge_regressions(
    cov: np.ndarray, n_obs: np.ndarray, strength: float | str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Every column's ridge regression on all the others, from a covariance matrix.

    Column j is predicted from the others, standardised, with coefficients
    ``(C_oo + r_j I)^-1 C_oj`` (C the correlation matrix of ``cov``). With
    ``strength="auto"`` each ``r_j`` maximises the evidence of a Bayesian
    ridge regression (MacKay 1992; scikit-learn's BayesianRidge) on
    ``n_obs[j]`` rows with these moments: little data or weak predictors
    give strong shrinkage, many rows give almost none. A number fixes every
    ``r_j``; 0 gives the exact regressions of the normal,
    ``B = I - diag(P)^-1 P`` with ``P = cov^-1``. One eigendecomposition of
    the correlation matrix serves every column: O(D^3) in all.

    Returns ``(B, r)``: ``B`` (D, D) with ``B[j, j] = 0`` and ``B[j, o]`` the
    coefficients of column j on the others in the data's units, and ``r``
    (D,) the ridges.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> B, r = bayesian_ridge_regressions(cov, np.array([10, 10]), strength=0.0)
    >>> B
    array([[0. , 0.5],
           [0.5, 0. ]])
    >>> B, r = bayesian_ridge_regressions(cov, np.array([10, 10]))
    >>> bool(0 < B[0, 1] < 0.5) and bool((r > 0).all())
    True
    """
    if isinstance(strength, str) and strength != "auto":
        raise ValueError(f'strength must be "auto" or a number >= 0; got {strength!r}.')
    cov = np.asarray(cov, dtype=np.float64)
    D = cov.shape[0]
    if D == 1:  # nothing to regress on
        return np.zeros((1, 1)), np.zeros(1)
    sd = np.sqrt(np.diag(cov))
    e, U = np.linalg.eigh(cov / np.outer(sd, sd))
    e = np.maximum(e, 1e-15 * e[-1])  # a singular C (ridge 0) stays finite
    w2 = U * U
    if isinstance(strength, str):
        n = np.maximum(np.asarray(n_obs, dtype=np.float64), 1.0)
        ridges = _evidence_ridges(w2, e, n)
    else:
        ridges = np.full(D, float(strength))
    # row j of Q = (C + r_j I)^-1, then beta_j = -Q_jo / Q_jj
    Q = np.einsum("ji,ki,ji->jk", U, U, 1.0 / (e[None, :] + ridges[:, None]))
    B = -Q / np.diag(Q)[:, None]
    np.fill_diagonal(B, 0.0)
    return B * sd[:, None] / sd[None, :], ridges
