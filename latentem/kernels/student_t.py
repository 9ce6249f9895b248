"""numba kernels for multivariate Student-t components, with NaN gaps marginalised.

Component k has location ``mu``, scale matrix ``S`` (precision ``P = S^-1``,
``S = L L^T``, ``Linv = L^-1``) and degrees of freedom ``nu``. For a row with
observed part o (``p`` entries) and missing part m:

* the marginal of ``x_o`` is a t with the same ``nu``, location ``mu_o`` and
  scale ``S_oo``, so the log-density is
  ``c(nu, p) - log det S_oo / 2 - (nu + p) / 2 * log1p(delta / nu)`` with
  ``c(nu, p) = lgamma((nu + p) / 2) - lgamma(nu / 2) - p / 2 * log(nu pi)``
  (a table per component and ``p``, see :mod:`latentem.families.student_t`)
  and ``delta`` the Mahalanobis distance of ``x_o`` under ``S_oo``;
* as in :mod:`latentem.kernels.gaussian_missing`, only the gaps' block
  ``P_mm`` is factorised: ``x_hat_m = mu_m - P_mm^-1 P_mo (x_o - mu_o)``, the
  row completed with ``x_hat_m`` has ``delta = |Linv (x_hat - mu)|^2``, and
  ``log det S_oo = log det S + log det P_mm``;
* the E-step weight of the row is ``u = (nu + p) / (nu + delta)`` (the mean
  of the latent scale given ``x_o``), and given ``x_o`` and the scale the gaps
  are normal with mean ``x_hat_m`` and covariance ``P_mm^-1 / u``.

Statistics per component, about the current location (additive over rows):
``nk = sum w``, ``su = sum w u``, ``S = sum w u (x_hat - mu)``,
``Q = sum w [u (x_hat - mu)(x_hat - mu)^T + P_mm^-1 on the gaps' block]`` and
``dstat = sum w (E log u - E u + 1)``, which the degrees-of-freedom update
needs (``E log u = psi((nu + p) / 2) - log((nu + delta) / 2)``, with
``dig[k, p] = psi((nu + p) / 2) - log((nu + p) / 2)`` tabulated).

The full-scale kernels take the rows grouped by missingness pattern
(``order``, ``starts``; ``idx[g]`` lists group g's missing columns first,
then its observed ones; ``nmis[g]`` says how many are missing), so ``P_mm``
is factorised once per pattern and component. Rows entirely missing are not
in ``order``: they keep a log-density of 0 and add nothing. Threads split the
components, never the rows, so results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels._jit import njit, prange

__all__ = ["t_full_logprob", "t_full_stats", "t_diag_logprob", "t_diag_stats"]


@njit(cache=True, nogil=True)
def _factor_gaps(Pk, idx, nm, Lw, C):
    """``C[:nm, :nm] = P_mm^-1`` for the gaps ``idx[:nm]``; returns ``log det P_mm``
    (NaN if ``P_mm`` is not positive definite). ``Lw`` is workspace."""
    for i in range(nm):
        for j in range(i + 1):
            s = Pk[idx[i], idx[j]]
            for t in range(j):
                s -= Lw[i, t] * Lw[j, t]
            if i == j:
                if not s > 0.0:
                    return math.nan
                Lw[i, i] = math.sqrt(s)
            else:
                Lw[i, j] = s / Lw[j, j]
    logdet = 0.0
    for i in range(nm):
        logdet += 2.0 * math.log(Lw[i, i])
    # Lw <- Lw^-1 in place (lower triangular), then C = Lw^-T Lw^-1
    for i in range(nm):
        Lw[i, i] = 1.0 / Lw[i, i]
        for j in range(i):
            s = 0.0
            for t in range(j, i):
                s += Lw[i, t] * Lw[t, j]
            Lw[i, j] = -s * Lw[i, i]
    for i in range(nm):
        for j in range(i + 1):
            s = 0.0
            for t in range(i, nm):
                s += Lw[t, i] * Lw[t, j]
            C[i, j] = s
            C[j, i] = s
    return logdet


@njit(cache=True, nogil=True)
def _complete_row(x, mu, Pk, Lk, idx, nm, C, r, b):
    """Fill ``r`` with ``x_hat - mu`` (gaps at their conditional mean) and return the
    Mahalanobis distance of the observed part."""
    D = x.shape[0]
    for j in range(nm, D):
        c = idx[j]
        r[c] = x[c] - mu[c]
    for i in range(nm):
        s = 0.0
        row = idx[i]
        for j in range(nm, D):
            c = idx[j]
            s += Pk[row, c] * r[c]
        b[i] = s
    for i in range(nm):
        s = 0.0
        for j in range(nm):
            s -= C[i, j] * b[j]
        r[idx[i]] = s
    delta = 0.0
    for i in range(D):
        s = 0.0
        for j in range(i + 1):
            s += Lk[i, j] * r[j]
        delta += s * s
    return delta


@njit(cache=True, parallel=True)
def t_full_logprob(X, order, starts, idx, nmis, means, Linv, P, logdet, dof, lconst):
    """(n, K) log-densities of full-scale t components; 0 for rows not in ``order``."""
    n, D = X.shape
    K = means.shape[0]
    G = starts.shape[0] - 1
    out = np.zeros((n, K))
    for k in prange(K):
        Lw = np.empty((D, D))
        C = np.empty((D, D))
        r = np.empty(D)
        b = np.empty(D)
        nu = dof[k]
        for g in range(G):
            nm = nmis[g]
            p = D - nm
            ld = logdet[k]
            if nm > 0:
                ld += _factor_gaps(P[k], idx[g], nm, Lw, C)  # log det S_oo
            head = lconst[k, p] - 0.5 * ld
            power = 0.5 * (nu + p)
            for s in range(starts[g], starts[g + 1]):
                t = order[s]
                delta = _complete_row(X[t], means[k], P[k], Linv[k], idx[g], nm, C, r, b)
                out[t, k] = head - power * math.log1p(delta / nu)
    return out


@njit(cache=True, parallel=True)
def t_full_stats(X, order, starts, idx, nmis, means, Linv, P, dof, dig, W):
    """``(nk, su, S, Q, dstat)`` of full-scale t components with row weights ``W`` (n, K)."""
    n, D = X.shape
    K = means.shape[0]
    G = starts.shape[0] - 1
    nk = np.zeros(K)
    su = np.zeros(K)
    S = np.zeros((K, D))
    Q = np.zeros((K, D, D))
    dstat = np.zeros(K)
    for k in prange(K):
        Lw = np.empty((D, D))
        C = np.empty((D, D))
        r = np.empty(D)
        b = np.empty(D)
        nu = dof[k]
        Qk = Q[k]
        Sk = S[k]
        for g in range(G):
            nm = nmis[g]
            p = D - nm
            if nm > 0:
                _factor_gaps(P[k], idx[g], nm, Lw, C)
            for s in range(starts[g], starts[g + 1]):
                t = order[s]
                w = W[t, k]
                if w == 0.0:
                    continue
                delta = _complete_row(X[t], means[k], P[k], Linv[k], idx[g], nm, C, r, b)
                um1 = (p - delta) / (nu + delta)  # u - 1
                wu = w * (1.0 + um1)
                nk[k] += w
                su[k] += wu
                dstat[k] += w * (dig[k, p] + math.log1p(um1) - um1)
                for i in range(D):
                    Sk[i] += wu * r[i]
                    a = wu * r[i]
                    for j in range(i + 1):
                        Qk[i, j] += a * r[j]
                for i in range(nm):
                    ci = idx[g, i]
                    for j in range(nm):
                        cj = idx[g, j]
                        if cj <= ci:
                            Qk[ci, cj] += w * C[i, j]
        for i in range(D):
            for j in range(i):
                Qk[j, i] = Qk[i, j]
    return nk, su, S, Q, dstat


@njit(cache=True, parallel=True)
def t_diag_logprob(X, means, var, dof, lconst):
    """(n, K) log-densities of diagonal-scale t components; NaN entries are skipped."""
    n, D = X.shape
    K = means.shape[0]
    inv = 1.0 / var
    logv = np.log(var)
    out = np.zeros((n, K))
    for t in prange(n):
        for k in range(K):
            p = 0
            delta = 0.0
            ld = 0.0
            for d in range(D):
                x = X[t, d]
                if not math.isnan(x):
                    e = x - means[k, d]
                    delta += e * e * inv[k, d]
                    ld += logv[k, d]
                    p += 1
            nu = dof[k]
            out[t, k] = lconst[k, p] - 0.5 * ld - 0.5 * (nu + p) * math.log1p(delta / nu)
    return out


@njit(cache=True, parallel=True)
def t_diag_stats(X, means, var, dof, dig, W):
    """``(nk, su, S, Q, dstat)`` of diagonal-scale t components (``Q`` is (K, D): the
    diagonal); rows entirely missing add nothing."""
    n, D = X.shape
    K = means.shape[0]
    nk = np.zeros(K)
    su = np.zeros(K)
    S = np.zeros((K, D))
    Q = np.zeros((K, D))
    dstat = np.zeros(K)
    for k in prange(K):
        nu = dof[k]
        for t in range(n):
            w = W[t, k]
            if w == 0.0:
                continue
            p = 0
            delta = 0.0
            for d in range(D):
                x = X[t, d]
                if not math.isnan(x):
                    e = x - means[k, d]
                    delta += e * e / var[k, d]
                    p += 1
            if p == 0:
                continue
            um1 = (p - delta) / (nu + delta)
            wu = w * (1.0 + um1)
            nk[k] += w
            su[k] += wu
            dstat[k] += w * (dig[k, p] + math.log1p(um1) - um1)
            for d in range(D):
                x = X[t, d]
                if math.isnan(x):
                    Q[k, d] += w * var[k, d]
                else:
                    e = x - means[k, d]
                    S[k, d] += wu * e
                    Q[k, d] += wu * e * e
    return nk, su, S, Q, dstat
