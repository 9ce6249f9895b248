"""numba kernels for Gaussian components on rows with missing entries (NaN).

For a row with observed part o and missing part m, under component k:

* the log-density is the marginal ``N(x_o; mu_o, S_oo)``;
* the missing part is replaced by its conditional mean
  ``xhat_m = mu_m + S_mo S_oo^-1 (x_o - mu_o)`` and the second moments get
  the conditional covariance ``C_mm = S_mm - S_mo S_oo^-1 S_om`` added
  (leaving it out biases variances down).

Statistics use the layout of :mod:`latentem.kernels.gaussian` (first moments
about ``means``; ``smode`` 0 full per component, 1 one total matrix about
``shift``, 2 per-component diagonal) so they add to the complete rows'
statistics. Covariances come in as full (K, D, D) matrices whatever the
covariance type. Rows are split into a fixed number of groups whose partial
sums are added in order, so threads never change the result.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["missing_logprob", "missing_accumulate", "conditional_fill"]

N_GROUPS = 16
_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _condition(x, mu, cov, obs, mis, xhat, cmm):
    """Fill xhat (D,) with x_o and E[x_m | x_o]; cmm (n_mis, n_mis) with Cov[x_m | x_o].

    Returns the marginal log-density of x_o (0.0 when nothing is observed).
    """
    n_obs = obs.shape[0]
    n_mis = mis.shape[0]
    for i in range(n_obs):
        xhat[obs[i]] = x[obs[i]]
    if n_obs == 0:
        for i in range(n_mis):
            xhat[mis[i]] = mu[mis[i]]
            for j in range(n_mis):
                cmm[i, j] = cov[mis[i], mis[j]]
        return 0.0
    soo = np.empty((n_obs, n_obs))
    for i in range(n_obs):
        for j in range(n_obs):
            soo[i, j] = cov[obs[i], obs[j]]
    L = np.linalg.cholesky(soo)
    # z = L^-1 (x_o - mu_o)
    z = np.empty(n_obs)
    for i in range(n_obs):
        acc = x[obs[i]] - mu[obs[i]]
        for j in range(i):
            acc -= L[i, j] * z[j]
        z[i] = acc / L[i, i]
    logdet = 0.0
    maha = 0.0
    for i in range(n_obs):
        logdet += math.log(L[i, i])
        maha += z[i] * z[i]
    logp = -0.5 * (n_obs * _LOG_2PI + maha) - logdet
    if n_mis == 0:
        return logp
    # B = L^-1 S_om  (n_obs, n_mis)
    B = np.empty((n_obs, n_mis))
    for c in range(n_mis):
        for i in range(n_obs):
            acc = cov[obs[i], mis[c]]
            for j in range(i):
                acc -= L[i, j] * B[j, c]
            B[i, c] = acc / L[i, i]
    for c in range(n_mis):
        acc = mu[mis[c]]
        for i in range(n_obs):
            acc += B[i, c] * z[i]
        xhat[mis[c]] = acc
    for a in range(n_mis):
        for c in range(n_mis):
            acc = cov[mis[a], mis[c]]
            for i in range(n_obs):
                acc -= B[i, a] * B[i, c]
            cmm[a, c] = acc
    return logp


@njit(cache=True, nogil=True)
def _split(x, obs, mis):
    n_obs = 0
    n_mis = 0
    for d in range(x.shape[0]):
        if math.isnan(x[d]):
            mis[n_mis] = d
            n_mis += 1
        else:
            obs[n_obs] = d
            n_obs += 1
    return n_obs, n_mis


@njit(cache=True, parallel=True)
def missing_logprob(X, rows, means, covs):
    """(len(rows), K) marginal log-densities of the observed part of X[rows]."""
    K, D = means.shape
    n = rows.shape[0]
    out = np.empty((n, K))
    for r in prange(n):
        x = X[rows[r]].astype(np.float64)
        obs_buf = np.empty(D, dtype=np.int64)
        mis_buf = np.empty(D, dtype=np.int64)
        n_obs, n_mis = _split(x, obs_buf, mis_buf)
        obs = obs_buf[:n_obs]
        mis = mis_buf[:n_mis]
        xhat = np.empty(D)
        cmm = np.empty((n_mis, n_mis))
        for k in range(K):
            out[r, k] = _condition(x, means[k], covs[k], obs, mis, xhat, cmm)
    return out


@njit(cache=True, parallel=True)
def missing_accumulate(X, rows, W, means, covs, shift, smode):
    """Statistics ``(nk, S, Q)`` of X[rows] under weights W (len(rows), K).

    Gaps are filled with conditional means, and conditional covariances are
    added to the second moments.
    """
    K, D = means.shape
    n = rows.shape[0]
    G = max(1, min(N_GROUPS, n))
    per = (n + G - 1) // G
    KQ = K if smode != 1 else 1
    DQ = D if smode != 2 else 1
    part_nk = np.zeros((G, K))
    part_S = np.zeros((G, K, D))
    part_Q = np.zeros((G, KQ, DQ, D))
    for g in prange(G):
        obs_buf = np.empty(D, dtype=np.int64)
        mis_buf = np.empty(D, dtype=np.int64)
        xhat = np.empty(D)
        for r in range(g * per, min(n, (g + 1) * per)):
            x = X[rows[r]].astype(np.float64)
            n_obs, n_mis = _split(x, obs_buf, mis_buf)
            obs = obs_buf[:n_obs]
            mis = mis_buf[:n_mis]
            cmm = np.empty((n_mis, n_mis))
            for k in range(K):
                w = W[r, k]
                if w == 0.0:
                    continue
                _condition(x, means[k], covs[k], obs, mis, xhat, cmm)
                part_nk[g, k] += w
                for d in range(D):
                    part_S[g, k, d] += w * (xhat[d] - means[k, d])
                if smode == 2:
                    for d in range(D):
                        t = xhat[d] - means[k, d]
                        part_Q[g, k, 0, d] += w * t * t
                    for a in range(n_mis):
                        part_Q[g, k, 0, mis[a]] += w * cmm[a, a]
                else:
                    q = 0 if smode == 1 else k
                    for i in range(D):
                        ti = xhat[i] - (shift[i] if smode == 1 else means[k, i])
                        for j in range(D):
                            tj = xhat[j] - (shift[j] if smode == 1 else means[k, j])
                            part_Q[g, q, i, j] += w * ti * tj
                    for a in range(n_mis):
                        for c in range(n_mis):
                            part_Q[g, q, mis[a], mis[c]] += w * cmm[a, c]
    nk = np.zeros(K)
    S = np.zeros((K, D))
    Q = np.zeros((KQ, DQ, D))
    for g in range(G):
        nk += part_nk[g]
        S += part_S[g]
        Q += part_Q[g]
    return nk, S, Q


@njit(cache=True, parallel=True)
def conditional_fill(X, rows, W, means, covs):
    """Rows X[rows] with each NaN replaced by sum_k W[r, k] E[x_m | x_o, k]."""
    K, D = means.shape
    n = rows.shape[0]
    out = np.empty((n, D))
    for r in prange(n):
        x = X[rows[r]].astype(np.float64)
        obs_buf = np.empty(D, dtype=np.int64)
        mis_buf = np.empty(D, dtype=np.int64)
        n_obs, n_mis = _split(x, obs_buf, mis_buf)
        obs = obs_buf[:n_obs]
        mis = mis_buf[:n_mis]
        xhat = np.empty(D)
        cmm = np.empty((n_mis, n_mis))
        for d in range(D):
            out[r, d] = x[d] if not math.isnan(x[d]) else 0.0
        for k in range(K):
            w = W[r, k]
            if w == 0.0:
                continue
            _condition(x, means[k], covs[k], obs, mis, xhat, cmm)
            for a in range(n_mis):
                out[r, mis[a]] += w * xhat[mis[a]]
    return out
