"""numba kernels for the regime chain's transition M-step (see :mod:`latentem.kernels.regime`).

The transition probabilities, fixed or multinomial-logit in covariates
(time-varying transitions), are fitted by Newton steps on their logits,
with the stationary start's term when the chain starts in its stationary
distribution.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels._jit import njit
from latentem.kernels.scaling import exp_shifted

__all__ = [
    "newton_logit",
    "stationary_distribution",
    "transition_objective",
    "tvtp_matrices",
]


@njit(cache=True)
def stationary_distribution(P):
    """Stationary distribution of a row-stochastic matrix (floored at 1e-20)."""
    K = P.shape[0]
    A = np.empty((K, K))
    for i in range(K):
        for j in range(K):
            A[i, j] = (1.0 if i == j else 0.0) - P[j, i]
    for j in range(K):
        A[K - 1, j] = 1.0
    rhs = np.zeros(K)
    rhs[K - 1] = 1.0
    pi = np.linalg.solve(A, rhs)
    for k in range(K):
        pi[k] = max(pi[k], 1e-20)
    return pi


@njit(cache=True)
def _row_probs(coef, i, zrow, p):
    """p = softmax of (zrow . coef[i, j] for j < K - 1, 0); returns log p[K - 1]."""
    K = coef.shape[0]
    if K == 2:  # the logistic function: one exp
        e = 0.0
        for a in range(coef.shape[2]):
            e += zrow[a] * coef[i, 0, a]
        q = np.exp(-abs(e))  # exp(-e) or exp(e), whichever is at most 1
        big = 1.0 / (1.0 + q)
        p[0], p[1] = (big, q * big) if e >= 0.0 else (q * big, big)
        return -max(e, 0.0) - np.log1p(q)
    mx = 0.0
    for j in range(K - 1):
        e = 0.0
        for a in range(coef.shape[2]):
            e += zrow[a] * coef[i, j, a]
        p[j] = e
        if e > mx:
            mx = e
    p[K - 1] = 0.0
    total = 0.0
    for j in range(K):
        p[j] = np.exp(p[j] - mx)
        total += p[j]
    for j in range(K):
        p[j] /= total
    return -mx - np.log(total)


@njit(cache=True)
def tvtp_matrices(z, coef):
    """Transition matrices (T, K, K) from covariates ``z`` (T, kz) and logits ``coef``
    (K, K - 1, kz): ``P[t, i, j] ∝ exp(z[t] . coef[i, j])``, the last regime's logit 0."""
    T = z.shape[0]
    K = coef.shape[0]
    out = np.empty((T, K, K))
    if K == 2:
        e, q, scratch = _logistic_scratch(T)
        for i in range(2):
            _logits_and_exps(coef, i, z, e, q, scratch)
            for t in range(T):
                big = 1.0 / (1.0 + q[0, t])
                small = q[0, t] * big
                out[t, i, 0], out[t, i, 1] = (big, small) if e[t] >= 0.0 else (small, big)
        return out
    for t in range(T):
        for i in range(K):
            _row_probs(coef, i, z[t], out[t, i])
    return out


@njit(cache=True)
def _logistic_scratch(T):
    """Buffers of :func:`_logits_and_exps` for T rows."""
    return np.empty(T), np.empty((1, T)), (np.zeros(T), np.empty((1, T), dtype=np.int64))


@njit(cache=True)
def _logits_and_exps(coef, i, z, e, q, scratch):
    """Two regimes: ``e[t] = z[t] . coef[i, 0]`` and ``q[0, t] = exp(-|e[t]|)``, the
    exps in one vectorised loop (:func:`~latentem.kernels.scaling.exp_shifted`;
    below exp(-500) they are 0). Then ``P[t, i] = (1, q) / (1 + q)``, largest first."""
    zero, bits = scratch
    for t in range(z.shape[0]):
        v = 0.0
        for a in range(z.shape[1]):
            v += z[t, a] * coef[i, 0, a]
        e[t] = v
        q[0, t] = -abs(v)
    exp_shifted(q, zero, z.shape[0], q, bits)


@njit(cache=True)
def transition_objective(coef, xi, z, z0, g, stationary, grad):
    """Expected complete-data log-likelihood of the transitions; its gradient into ``grad``.

    See :func:`_transition_terms` (which also gives the curvature).
    """
    return _transition_terms(coef, xi, z, z0, g, stationary, grad, np.empty((0, 0, 0)))


@njit(cache=True)
def _logistic_terms(coef, xi, z, grad, H, curvature):
    """:func:`_transition_terms`' transition counts for two regimes (a logistic per
    origin), added into the zeroed ``grad`` and ``H``: the general loop's numbers,
    twice as fast (no softmax; the exps vectorised, one log1p per row and origin)."""
    kz = coef.shape[2]
    f = 0.0
    ebuf, qbuf, scratch = _logistic_scratch(xi.shape[0])
    for i in range(2):
        _logits_and_exps(coef, i, z, ebuf, qbuf, scratch)
        for t in range(xi.shape[0]):
            x0, x1 = xi[t, i, 0], xi[t, i, 1]
            n_i = x0 + x1
            if n_i == 0.0:
                continue
            e, q = ebuf[t], qbuf[0, t]  # p = (1, q) / (1 + q), largest first
            big = 1.0 / (1.0 + q)
            p0 = big if e >= 0.0 else q * big
            # log p_0 = e - softplus(e), log p_1 = -softplus(e); a zero count adds nothing
            softplus = max(e, 0.0) + np.log1p(q)
            if x0 > 0.0:
                f += x0 * (e - softplus)
            if x1 > 0.0:
                f -= x1 * softplus
            r = x0 - n_i * p0
            for a in range(kz):
                grad[i, 0, a] += r * z[t, a]
            if curvature:
                w = n_i * big * big * q  # n p_0 p_1
                for a in range(kz):
                    wa = w * z[t, a]
                    for b in range(kz):
                        H[i, a, b] += wa * z[t, b]
    return f


@njit(cache=True)
def _transition_terms(coef, xi, z, z0, g, stationary, grad, H):
    """Expected complete-data log-likelihood of the transitions; its gradient into ``grad``.

    ``coef`` (K, K-1, kz): ``P(S_t = j | S_{t-1} = i) ∝ exp(z_t . coef[i, j])``, the
    last regime's logit 0. ``xi`` (T, K, K): pairwise posteriors per row of ``z``
    (T, kz). With ``stationary``, ``g`` (Q, K) weighs ``log pi(P(z0[q]))``, the
    stationary distribution of the matrix at each sequence's first row. Unless ``H``
    is empty, the same pass puts into ``H`` (K, d, d), ``d = (K - 1) kz``, minus the
    Hessian of the transition counts' part, per origin regime (the multinomial-logit
    information; the stationary term, small, is left out).
    """
    K, _, kz = coef.shape
    T = xi.shape[0]
    curvature = H.shape[0] > 0
    for i in range(K):
        for j in range(K - 1):
            for a in range(kz):
                grad[i, j, a] = 0.0
    if curvature:
        H[:] = 0.0
    f = 0.0
    p = np.empty(K)
    if K == 2:
        f = _logistic_terms(coef, xi, z, grad, H, curvature)
        T = 0  # done: skip the general loop
    for t in range(T):
        for i in range(K):
            n_i = 0.0
            for j in range(K):
                n_i += xi[t, i, j]
            if n_i == 0.0:
                continue
            # log p_j = z_t . coef[i, j] + log p_{K-1}: one log per row, not K
            log_last = _row_probs(coef, i, z[t], p)
            for j in range(K):
                if xi[t, i, j] > 0.0:
                    lp = log_last
                    if j < K - 1:
                        for a in range(kz):
                            lp += z[t, a] * coef[i, j, a]
                    f += xi[t, i, j] * lp
            for j in range(K - 1):
                r = xi[t, i, j] - n_i * p[j]
                for a in range(kz):
                    grad[i, j, a] += r * z[t, a]
            if curvature:
                for c in range(K - 1):
                    for e in range(K - 1):
                        w = n_i * ((p[c] if c == e else 0.0) - p[c] * p[e])
                        for a in range(kz):
                            wa = w * z[t, a]
                            for b in range(kz):
                                H[i, c * kz + a, e * kz + b] += wa * z[t, b]
    if stationary:
        P0 = np.empty((K, K))
        M = np.empty((K, K))
        gz = np.empty(K)
        for q in range(z0.shape[0]):
            for i in range(K):
                _row_probs(coef, i, z0[q], p)
                for j in range(K):
                    P0[i, j] = p[j]
            pi = stationary_distribution(P0)
            for k in range(K):
                f += g[q, k] * np.log(pi[k])
            # d pi' = pi' dP Z with Z = (I - P + 1 pi')^-1, the fundamental matrix.
            for i in range(K):
                for j in range(K):
                    M[i, j] = (1.0 if i == j else 0.0) - P0[i, j] + pi[j]
            Z = np.linalg.inv(M)
            for b in range(K):
                acc = 0.0
                for k in range(K):
                    acc += Z[b, k] * g[q, k] / pi[k]
                gz[b] = acc
            for i in range(K):
                s = 0.0
                for b in range(K):
                    s += pi[i] * gz[b] * P0[i, b]
                for j in range(K - 1):
                    d = P0[i, j] * (pi[i] * gz[j] - s)
                    for a in range(kz):
                        grad[i, j, a] += d * z0[q, a]
    return f


@njit(cache=True)
def newton_logit(coef, xi, z, z0, g, stationary, max_iter):
    """Raise :func:`transition_objective` from ``coef`` by Newton steps with backtracking.

    The curvature is the multinomial-logit Hessian of the transition counts (the
    stationary start's term, small, enters through the gradient only); a step is
    kept only if it does not lower the objective. Returns the new coefficients.
    """
    K, _, kz = coef.shape
    d = (K - 1) * kz
    T = xi.shape[0]
    coef = coef.copy()
    grad = np.empty_like(coef)
    g_trial = np.empty_like(coef)
    HH = np.empty((K, d, d))
    H_trial = np.empty((K, d, d))
    f = _transition_terms(coef, xi, z, z0, g, stationary, grad, HH)
    H = np.empty((d, d))
    step = np.empty((K, K - 1, kz))
    trial = np.empty_like(coef)
    for _ in range(max_iter):
        decrement = 0.0
        for i in range(K):
            H[:] = HH[i]
            trace = 0.0
            for u in range(d):
                trace += H[u, u]
            ridge = 1e-10 * trace / d + 1e-12
            for u in range(d):
                H[u, u] += ridge
            rhs = np.empty(d)
            for c in range(K - 1):
                for a in range(kz):
                    rhs[c * kz + a] = grad[i, c, a]
            sol = np.linalg.solve(H, rhs)
            for c in range(K - 1):
                for a in range(kz):
                    step[i, c, a] = sol[c * kz + a]
                    decrement += sol[c * kz + a] * rhs[c * kz + a]
        if not decrement > 1e-12 * (abs(f) + 1.0):
            break
        # Logits are kept within +-300 (or the current size, where an extrapolation
        # already went beyond), so a step never overflows and is never clipped
        # back to a point below the start.
        bound = 300.0
        size = 0.0
        for i in range(K):
            for c in range(K - 1):
                for a in range(kz):
                    bound = max(bound, abs(coef[i, c, a]))
                    size = max(size, abs(step[i, c, a]))
        # A full step that would move some logit by more than 20 starts shorter (a
        # nearly flat direction, where the Newton step is huge).
        move = 0.0
        for t in range(T):
            for i in range(K):
                for c in range(K - 1):
                    e = 0.0
                    for a in range(kz):
                        e += z[t, a] * step[i, c, a]
                    move = max(move, abs(e))
        t_len = 1.0 if move <= 20.0 else 20.0 / move
        accepted = False
        f_trial = f
        for _ in range(40):
            if t_len * size <= 1e-14 * bound:
                break  # the step no longer moves the coefficients
            for i in range(K):
                for c in range(K - 1):
                    for a in range(kz):
                        v = coef[i, c, a] + t_len * step[i, c, a]
                        trial[i, c, a] = min(bound, max(-bound, v))
            f_trial = _transition_terms(trial, xi, z, z0, g, stationary, g_trial, H_trial)
            if f_trial >= f:
                accepted = True
                break
            t_len *= 0.5
        if not accepted:
            break
        gain = f_trial - f
        coef[:] = trial
        grad[:] = g_trial
        HH[:] = H_trial
        f = f_trial
        if gain <= 1e-13 * (abs(f) + 1.0):
            break  # rounding-level progress: a flat direction (logits drifting to infinity)
    return coef
