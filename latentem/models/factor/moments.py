"""The algebra the factor models share: factor posteriors, expected moments, PPCA.

Given a row, the factors' posterior mean is linear in it and their
covariance does not depend on it (:func:`_factor_posterior`), so the expected
complete-data statistics of a component are linear maps of its data moments
(:func:`_factor_moments`, :func:`_residual_diag` for the noise update), and
:func:`_analyser_update` is one factor analyser's closed-form M-step from them.
:func:`_pca_start` and the public :func:`ppca_closed_form` are Tipping and
Bishop's closed-form PPCA, the starting point of every fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_array, check_positive_int

__all__ = ["ppca_closed_form"]


def _factor_posterior(P: np.ndarray, L: np.ndarray, Cu: np.ndarray) -> tuple:
    """``G = Cu L^T P`` and ``V = Cu - G L Cu``: E[u | x] = a + G (x - mu), Cov(u | x) = V,
    for ``x = mu + L u + e`` with ``Cov(u) = Cu`` and ``P`` the precision of x."""
    G = Cu @ L.T @ P
    V = Cu - G @ L @ Cu
    return G, 0.5 * (V + V.T)


def _factor_moments(nk, S, Q, a, G, V):
    """Expected factor statistics of one component from its data moments about its mean.

    Returns ``(Eu, Euu, Edu)``: ``sum r E[u]`` (q,), ``sum r E[u u^T]`` (q, q) and
    ``sum r (x - mu) E[u]^T`` (D, q), with ``E[u | x] = a + G (x - mu)``.
    """
    GS = G @ S
    Eu = nk * a + GS
    Euu = nk * V + nk * np.outer(a, a) + np.outer(a, GS) + np.outer(GS, a) + G @ Q @ G.T
    Edu = np.outer(S, a) + Q @ G.T
    return Eu, 0.5 * (Euu + Euu.T), Edu


def _residual_diag(nk, S, Q, H, c, Ln, V):
    """``diag sum r E[(x - mu - ...)(...)^T]`` for the residual ``H (x - mu) + c - Ln eta``
    with ``eta ~ N(0, V)`` independent of x: the noise update's numerator."""
    HQ = H @ Q
    HS = H @ S
    out = np.einsum("ij,ij->i", HQ, H) + 2.0 * HS * c + nk * c * c
    out += nk * np.einsum("ij,ij->i", Ln @ V, Ln)
    return np.maximum(out, 0.0)


def _analyser_update(nk, S, Q, P, L, Cu):
    """One factor analyser's closed-form M-step (Rubin and Thayer, 1982) from its data
    moments about its current mean: the regression of ``(x - mu)`` on ``[u, 1]`` gives
    the new loadings ``Wn`` (D, q) and the mean's shift together. Returns
    ``(Wn, shift, resid)`` with ``resid`` the noise update's numerator (not divided by
    ``nk``). Factor analysis and each component of MFA call it."""
    q = L.shape[1]
    D = L.shape[0]
    G, V = _factor_posterior(P, L, Cu)
    Eu, Euu, Edu = _factor_moments(nk, S, Q, np.zeros(q), G, V)
    XZ = np.column_stack([Edu, S])
    ZZ = np.block([[Euu, Eu[:, None]], [Eu[None, :], np.array([[nk]])]])
    Lam = np.linalg.solve(ZZ, XZ.T).T
    Wn, shift = Lam[:, :q], Lam[:, q]
    return Wn, shift, _residual_diag(nk, S, Q, np.eye(D) - Wn @ G, -shift, Wn, V)


def _pca_start(cov: np.ndarray, q: int) -> tuple[np.ndarray, float]:
    """Tipping and Bishop's maximum-likelihood PPCA of a covariance matrix:
    ``(W (D, q), sigma2)``, W = U_q (Lambda_q - sigma2 I)^(1/2)."""
    D = cov.shape[0]
    lam, U = np.linalg.eigh(cov)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = float(lam[q:].mean()) if q < D else 0.0
    W = U[:, :q] * np.sqrt(np.maximum(lam[:q] - sigma2, 0.0))
    return W, sigma2


def ppca_closed_form(X: Any, n_components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Tipping and Bishop's closed-form maximum-likelihood PPCA of complete data.

    Returns ``(mean, W, sigma2)`` with ``W = U_q (Lambda_q - sigma2 I)^(1/2)``,
    ``U_q, Lambda_q`` the leading eigenvectors and eigenvalues of the sample
    covariance (divided by n) and ``sigma2`` the mean of the others. ``W`` is
    unique up to a rotation ``W R``; ``W W^T`` is unique.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.models.factor import ppca_closed_form
    >>> X = np.random.default_rng(0).normal(size=(200, 3)) * [3.0, 1.0, 1.0]
    >>> mean, W, sigma2 = ppca_closed_form(X, 1)
    >>> W.shape, bool(sigma2 < 1.5)
    ((3, 1), True)
    """
    X = check_array(X, name="X", min_samples=2)
    q = check_positive_int(n_components, "n_components")
    if q > X.shape[1]:
        raise ValueError(f"n_components={q} exceeds the number of features {X.shape[1]}.")
    mean = X.mean(axis=0)
    d = X - mean
    W, sigma2 = _pca_start(d.T @ d / X.shape[0], q)
    return mean, W, sigma2
