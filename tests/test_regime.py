"""Regime switching: kernel vs a NumPy reference, statsmodels' numbers, EM fits, errors."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools import add_constant
from statsmodels.tsa.regime_switching import markov_autoregression as sm_ar
from statsmodels.tsa.regime_switching import markov_regression as sm_reg

from latentem import LikelihoodDecreaseWarning, MarkovAutoregression, MarkovRegression, tree
from latentem.kernels.regime import (
    PARALLEL_SEQUENCES,
    chain_statistics,
    coef_matrix,
    emission_m_step,
    hamilton_kim,
    initial_extended,
    log_emission,
    moment_pairs,
    newton_logit,
    transition_objective,
    tvtp_matrices,
    weighted_moments,
)
from latentem.models.regime import RegimeData
from latentem.models.regime.switching import _quantiles
from latentem.persistence import load

with warnings.catch_warnings():  # their modules use a mark pytest does not know here
    warnings.simplefilter("ignore")
    from statsmodels.tsa.regime_switching.tests import test_markov_autoregression as sm_ar_tests
    from statsmodels.tsa.regime_switching.tests import test_markov_regression as sm_reg_tests

# statsmodels' own test data (Stata's and E-views' published results are in CASES below).
FF = np.array(sm_reg_tests.fedfunds)
OGAP = np.array(sm_reg_tests.ogap)
INF = np.array(sm_reg_tests.inf)
ARET = np.array(sm_reg_tests.areturns)
RGNP = np.array(sm_ar_tests.rgnp)
REC = np.array(sm_ar_tests.rec, dtype=float)
FILARDO = pd.read_csv(
    os.path.join(os.path.dirname(sm_ar_tests.__file__), "results", "mar_filardo.csv")
)

# name: (class, settings, data, statsmodels' published parameters, llf there, llf at the fit)
CASES = {
    "fedfunds_const": (
        MarkovRegression,
        dict(k_regimes=2),
        dict(y=FF),
        np.r_[0.9820939, 0.0503587, 3.70877, 9.556793, 2.107562**2],
        -508.63592,
        -508.63592,
    ),
    "fedfunds_L1": (
        MarkovRegression,
        dict(k_regimes=2),
        dict(y=FF[1:], exog=FF[:-1]),
        np.r_[0.6378175, 0.1306295, 0.724457, -0.0988764, 0.7631424, 1.061174, 0.6915759**2],
        -264.71069,
        -264.71069,
    ),
    "areturns_variance": (
        MarkovRegression,
        dict(k_regimes=2, switching_variance=True),
        dict(y=ARET[1:], exog=ARET[:-1]),
        np.r_[
            0.7530865, 0.6825357, 0.7641424, 1.972771, 0.0790744, 0.527953, 0.5895792**2,
            1.605333**2,
        ],
        -745.7977,
        -745.7977,
    ),
    "fedfunds_exog3": (
        MarkovRegression,
        dict(k_regimes=3),
        dict(y=FF[4:], exog=np.c_[FF[3:-1], OGAP[4:], INF[4:]]),
        np.r_[
            0.7253684, 0.1641252, 0.6178282, 0.2564055, 0.7994204, 0.3821718, 0.5261292,
            -0.0034106, 0.6015991, 0.8464551, 0.9690088, 0.4178913, 0.1201952, 0.0464136,
            0.1075357, -0.0425603, 0.1298906, 0.9099168, 0.438375**2,
        ],
        -189.89493,
        -182.27188,
    ),
    "hamilton_ar4": (
        MarkovAutoregression,
        dict(k_regimes=2, order=4, switching_ar=False),
        dict(y=RGNP),
        np.r_[
            0.754673, 0.095915, -0.358811, 1.163516, np.exp(-0.262658) ** 2, 0.013486,
            -0.057521, -0.246983, -0.212923,
        ],
        -181.26339,
        -181.26339,
    ),
    "hamilton_ar1_switch": (
        MarkovAutoregression,
        dict(k_regimes=2, order=1),
        dict(y=RGNP),
        np.r_[0.85472458, 0.53662099, 1.041419, -0.479157, np.exp(-0.231404) ** 2, 0.243128,
              0.713029],
        -186.7575,
        -186.7575,
    ),
    "hamilton_tvtp": (
        MarkovAutoregression,
        dict(k_regimes=2, order=1),
        dict(y=RGNP, exog_tvtp=np.c_[np.ones(len(RGNP)), REC]),
        np.r_[
            6.564923, 7.846371, -8.064123, -15.37636, 1.027190, -0.719760,
            np.exp(-0.217003) ** 2, 0.161489, 0.022536,
        ],
        -163.914049,
        -161.786477,
    ),
    "filardo": (
        MarkovAutoregression,
        dict(k_regimes=2, order=4, switching_ar=False),
        dict(
            y=FILARDO["dlip"].iloc[1:].to_numpy(),
            exog_tvtp=add_constant(FILARDO["dmdlleading"].iloc[:-1].to_numpy()),
        ),
        np.r_[
            4.35941747, -1.6493936, 1.7702123, 0.9945672, 0.517298, -0.865888,
            np.exp(-0.362469) ** 2, 0.189474, 0.079344, 0.110944, 0.122251,
        ],
        -586.5718,
        -586.5718,
    ),
}  # fmt: skip


def _statsmodels(name):
    cls, settings, data, params, _, _ = CASES[name]
    sm_cls = sm_reg.MarkovRegression if cls is MarkovRegression else sm_ar.MarkovAutoregression
    model = sm_cls(data["y"], exog=data.get("exog"), exog_tvtp=data.get("exog_tvtp"), **settings)
    return model, model.smooth(params)


def _ours(name, **extra):
    cls, settings, data, params, _, _ = CASES[name]
    return cls(**settings, **extra).set_statsmodels_params(params, **data)


def _monotone(history):
    history = np.asarray(history)
    return bool(np.all(np.diff(history) >= -1e-10 * np.abs(history[1:])))


# ------------------------------------------------------------------ kernel reference
def _reference(logb, offsets, trans, tidx, init, K):
    """Dense scaled forward-backward over the extended states, written plainly."""
    n, M = logb.shape
    Kp = M // K
    ll = np.zeros(len(offsets) - 1)
    filt, pred, sm = np.zeros((n, M)), np.zeros((n, M)), np.zeros((n, M))
    xi = np.zeros((n, K, K))

    def big(m):  # M x M transition matrix of the extended chain
        A = np.zeros((M, M))
        for s in range(M):
            for j in range(K):
                A[s, j * Kp + s // K] = trans[m, s // Kp, j]
        return A

    for q in range(len(offsets) - 1):
        a, b = offsets[q], offsets[q + 1]
        alpha = np.zeros((b - a, M))
        scale = np.zeros(b - a)
        for t in range(a, b):
            pr = init[q] if t == a else alpha[t - a - 1] @ big(tidx[t])
            u = pr * np.exp(logb[t])
            scale[t - a] = u.sum()
            alpha[t - a] = u / u.sum()
            pred[t], filt[t] = pr, alpha[t - a]
        ll[q] = np.log(scale).sum()
        beta = np.ones(M)
        sm[b - 1] = alpha[-1]
        for t in range(b - 2, a - 1, -1):
            A = big(tidx[t + 1])
            nxt = np.exp(logb[t + 1]) * beta
            pair = alpha[t - a][:, None] * A * nxt[None, :] / scale[t + 1 - a]
            for s in range(M):
                for sn in range(M):
                    xi[t + 1, s // Kp, sn // Kp] += pair[s, sn]
            beta = A @ nxt / scale[t + 1 - a]
            sm[t] = alpha[t - a] * beta
    return ll, filt, pred, sm, xi


def _np_tvtp_matrices(z, coef):
    eta = np.einsum("tz,ijz->tij", z, coef)
    full = np.concatenate([eta, np.zeros(eta.shape[:-1] + (1,))], axis=-1)
    e = np.exp(full - full.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_stationary_batch(P: np.ndarray) -> np.ndarray:
    """Stationary distributions of row-stochastic matrices (..., K, K)."""
    K = P.shape[-1]
    A = np.swapaxes(np.eye(K) - P, -1, -2).copy()
    A[..., -1, :] = 1.0
    rhs = np.zeros(P.shape[:-1])
    rhs[..., -1] = 1.0
    pi = np.linalg.solve(A, rhs[..., None])[..., 0]
    return np.maximum(pi, 1e-20)


def _np_transition_objective(coef, xi, z, z0, g, stationary):
    """Expected complete-data log-likelihood of the transitions and its gradient.

    ``coef`` (K, K-1, kz): logits ``z_t' coef[i, j]`` of ``P(S_t = j | S_{t-1} = i)``
    against the last regime. ``xi`` (T, K, K) pairwise posteriors per row of ``z``;
    with ``stationary``, ``g`` (Q, K) weights ``log pi(P(z0_q))``, the stationary
    distribution of the transition matrix at each sequence's first row.
    """
    K, _, kz = coef.shape
    P = _np_tvtp_matrices(z, coef)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = float(np.sum(np.where(xi > 0, xi * np.log(P), 0.0)))
    n_i = xi.sum(axis=2)
    R = xi[:, :, : K - 1] - n_i[:, :, None] * P[:, :, : K - 1]
    grad = (R.reshape(len(z), -1).T @ z).reshape(coef.shape)
    if stationary:
        P0 = _np_tvtp_matrices(z0, coef)
        pi = _np_stationary_batch(P0)  # (Q, K)
        f += float(np.sum(g * np.log(pi)))
        # d pi' = pi' dP Z with Z = (I - P + 1 pi')^-1 (the fundamental matrix).
        Zm = np.linalg.inv(np.eye(K) - P0 + pi[:, None, :])
        gz = np.einsum("qbk,qk->qb", Zm, g / pi)
        Gp = pi[:, :, None] * gz[:, None, :]  # dF/dP_ab
        d_eta = P0[:, :, : K - 1] * (Gp[:, :, : K - 1] - np.sum(Gp * P0, axis=2, keepdims=True))
        grad = grad + (d_eta.reshape(len(z0), -1).T @ z0).reshape(coef.shape)
    return f, grad


def _np_newton_logit(coef, f0, xi, z, z0, g, stationary, max_iter=30):
    """Raise the transition objective from ``coef`` by Newton steps with backtracking.

    The curvature is the multinomial-logit Hessian of the transition counts (the
    stationary start's term is small and enters through the gradient only); each
    accepted step raises the objective, so the M-step never lowers it.
    """
    K, _, kz = coef.shape
    d = (K - 1) * kz
    n_i = xi.sum(axis=2)
    eye = np.eye(K - 1)
    f, grad = _np_transition_objective(coef, xi, z, z0, g, stationary)
    for _ in range(max_iter):
        P = _np_tvtp_matrices(z, coef)[:, :, : K - 1]
        V = n_i[:, :, None, None] * (P[:, :, :, None] * eye - P[:, :, :, None] * P[:, :, None, :])
        if kz == 1:
            H = np.tensordot(z[:, 0] ** 2, V, axes=(0, 0)).reshape(K, d, d)
        else:
            zz = z[:, :, None] * z[:, None, :]
            H = np.stack(
                [
                    np.tensordot(V[:, i], zz, axes=(0, 0)).transpose(0, 2, 1, 3).reshape(d, d)
                    for i in range(K)
                ]
            )
        H += (1e-10 * np.trace(H, axis1=1, axis2=2) / d + 1e-12)[:, None, None] * np.eye(d)
        gr = grad.reshape(K, d)
        step = np.linalg.solve(H, gr[:, :, None])[:, :, 0]
        decrement = float(np.sum(step * gr))
        if not decrement > 1e-12 * (abs(f) + 1.0):
            break
        step = step.reshape(coef.shape)
        move = np.abs(np.einsum("ta,ija->tij", z, step)).max()
        t = 1.0 if move <= 20.0 else 20.0 / move
        bound, size = max(300.0, np.abs(coef).max()), np.abs(step).max()
        accepted = False
        for _ in range(40):
            if accepted or t * size <= 1e-14 * bound:
                break
            trial = np.clip(coef + t * step, -bound, bound)
            f_trial, g_trial = _np_transition_objective(trial, xi, z, z0, g, stationary)
            accepted = f_trial >= f
            t *= 0.5
        if not accepted:
            break
        gain = f_trial - f
        coef, f, grad = trial, f_trial, g_trial
        if gain <= 1e-13 * (abs(f) + 1.0):
            break
    return coef


@pytest.mark.parametrize(
    "K,kz,stationary", [(2, 1, True), (3, 1, True), (2, 2, True), (3, 2, False)]
)
def test_transition_kernels_match_numpy_reference(K, kz, stationary):
    rng = np.random.default_rng(K + 10 * kz)
    T, Q = (1 if kz == 1 else 40), 3
    xi = rng.dirichlet(np.ones(K * K), size=T).reshape(T, K, K) * rng.uniform(1, 50, size=(T, 1, 1))
    z = np.ones((T, 1)) if kz == 1 else np.c_[np.ones(T), rng.normal(size=(T, kz - 1))]
    z0 = np.ones((Q, 1)) if kz == 1 else np.c_[np.ones(Q), rng.normal(size=(Q, kz - 1))]
    g = rng.dirichlet(np.ones(K), size=Q)
    coef = rng.normal(size=(K, K - 1, kz))
    grad = np.empty_like(coef)
    np.testing.assert_allclose(tvtp_matrices(z, coef), _np_tvtp_matrices(z, coef), rtol=1e-13)
    f = transition_objective(coef, xi, z, z0, g, stationary, grad)
    f_ref, grad_ref = _np_transition_objective(coef, xi, z, z0, g, stationary)
    assert np.isclose(f, f_ref, rtol=1e-12)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-9)
    # The gradient is the objective's: central differences.
    h = 1e-6
    for idx in np.ndindex(coef.shape):
        e = np.zeros_like(coef)
        e[idx] = h
        num = (
            _np_transition_objective(coef + e, xi, z, z0, g, stationary)[0]
            - _np_transition_objective(coef - e, xi, z, z0, g, stationary)[0]
        ) / (2 * h)
        assert np.isclose(grad[idx], num, rtol=1e-5, atol=1e-6)
    new = newton_logit(coef, xi, z, z0, g, stationary, 30)
    ref = _np_newton_logit(coef, f_ref, xi, z, z0, g, stationary)
    np.testing.assert_allclose(new, ref, rtol=1e-7, atol=1e-7)
    assert transition_objective(new, xi, z, z0, g, stationary, grad) >= f
    assert np.max(np.abs(grad)) < 1e-5 * (1 + np.abs(xi).sum())  # a maximum


def test_newton_moves_logits_beyond_the_usual_bound():
    # A covariate of small scale needs large coefficients; SQUAREM may put them past
    # +-300. Newton must still be able to move them (and agree with the reference).
    rng = np.random.default_rng(5)
    T, K = 200, 2
    z = np.c_[np.ones(T), 0.01 * rng.normal(size=T)]
    xi = rng.dirichlet(np.ones(K * K), size=T).reshape(T, K, K)
    coef = np.array([[[1.0, 400.0]], [[-0.5, -350.0]]])
    z0, g = z[:1], np.array([[0.6, 0.4]])
    grad = np.empty_like(coef)
    f0 = transition_objective(coef, xi, z, z0, g, True, grad)
    new = newton_logit(coef, xi, z, z0, g, True, 30)
    np.testing.assert_allclose(new, _np_newton_logit(coef, f0, xi, z, z0, g, True), rtol=1e-7)
    assert transition_objective(new, xi, z, z0, g, True, grad) > f0 + 1e-3
    assert np.max(np.abs(grad)) < 1e-5 * T


@pytest.mark.parametrize(
    "K,order,tvtp,n_seq",
    [(2, 0, False, 1), (3, 0, True, 3), (2, 2, False, 2), (3, 1, True, 2), (2, 1, False, 70)],
)
def test_kernel_matches_numpy_reference(K, order, tvtp, n_seq):
    rng = np.random.default_rng(K * 10 + order)
    M = K ** (order + 1)
    lengths = rng.integers(2, 9, size=n_seq)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = offsets[-1]
    logb = rng.normal(size=(n, M)) * 2
    n_trans = n if tvtp else 1
    trans = rng.dirichlet(np.ones(K), size=(n_trans, K))
    tidx = np.arange(n) if tvtp else np.zeros(n, dtype=np.int64)
    init = rng.dirichlet(np.ones(M), size=n_seq)
    got = hamilton_kim(logb, offsets, trans, tidx, init, K, True)
    want = _reference(logb, offsets, trans, tidx, init, K)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    ll_only = hamilton_kim(logb, offsets, trans, tidx, init, K, False)
    np.testing.assert_allclose(ll_only[0], want[0], rtol=1e-12)
    if n_seq >= PARALLEL_SEQUENCES:  # the threaded path gives the serial numbers
        one = [
            hamilton_kim(logb[a:b], np.array([0, b - a]), trans, tidx[a:b], init[q : q + 1], K, 1)
            for q, (a, b) in enumerate(zip(offsets[:-1], offsets[1:]))
        ]
        np.testing.assert_array_equal(got[0], np.concatenate([o[0] for o in one]))


def _np_chain_statistics(sm, xi, K, p, offsets, full_offsets, rows, n_full):
    """``oldest``, the counts and the per-row pairwise posteriors, with array sums."""
    first = sm[offsets[:-1]].reshape((-1,) + (K,) * (p + 1))
    oldest = first.sum(axis=tuple(range(1, p + 1))) if p else first
    # Transitions inside the first extended state: S_{l-1} -> S_l, l = 1..p
    # (axis p - l + 1 is S_{l-1}, axis p - l is S_l in the first row's ordering).
    inner = np.zeros((len(offsets) - 1, p, K, K))
    for lstep in range(1, p + 1):
        ax_next, ax_prev = p - lstep + 1, p - lstep + 2
        others = tuple(a for a in range(1, p + 2) if a not in (ax_next, ax_prev))
        pair = first.sum(axis=others) if others else first
        inner[:, lstep - 1] = np.swapaxes(pair, 1, 2)
    xi_full = np.zeros((n_full, K, K))
    xi_full[rows] = xi
    for q, s0 in enumerate(full_offsets[:-1]):
        for lstep in range(1, p + 1):
            xi_full[s0 + lstep] += inner[q, lstep - 1]
    return oldest.reshape(-1, K), xi.sum(axis=0) + inner.sum(axis=(0, 1)), xi_full


@pytest.mark.parametrize("K,p", [(2, 0), (3, 1), (2, 3)])
def test_chain_statistics_match_numpy_reference(K, p):
    rng = np.random.default_rng(K + p)
    lengths = np.array([p + 3, p + 7, p + 2])
    full_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = RegimeData(rng.normal(size=lengths.sum()), np.empty((lengths.sum(), 0)), None,
                      full_offsets, p, "c")  # fmt: skip
    M = K ** (p + 1)
    sm = rng.dirichlet(np.ones(M), size=len(data))
    xi = rng.dirichlet(np.ones(K * K), size=len(data)).reshape(-1, K, K)
    xi[data.offsets[:-1]] = 0.0  # as the smoother leaves them
    s = np.arange(M)
    ext = np.stack([(s // K ** (p - lag)) % K for lag in range(p + 1)], axis=1)
    want = _np_chain_statistics(sm, xi, K, p, data.offsets, full_offsets, data.rows, len(data.y))
    for per_row in (False, True):
        oldest, counts, xi_full = chain_statistics(
            sm, xi, ext, data.offsets, full_offsets, data.rows, len(data.y), per_row
        )
        np.testing.assert_allclose(oldest, want[0], rtol=1e-13)
        if per_row:
            np.testing.assert_allclose(xi_full, want[2], rtol=1e-13, atol=1e-15)
            assert counts.size == 0
        else:
            np.testing.assert_allclose(counts, want[1], rtol=1e-13)
            assert xi_full.size == 0


def _np_initial_extended(trans, first, stride, start, K, p):
    """The first rows' extended-state distributions, one axis per regime of the rows."""
    out = []
    for q, row in enumerate(first):
        joint = start[q]  # over (S_0,)
        for step in range(1, p + 1):
            P = trans[row + step * stride]
            # new joint over (S_step, S_{step-1}, ..., S_0)
            joint = P.T.reshape((K, K) + (1,) * (step - 1)) * joint[None]
        out.append(joint.reshape(-1))
    return np.array(out)


@pytest.mark.parametrize("K,p,stride", [(2, 0, 1), (3, 2, 1), (2, 4, 0)])
def test_initial_extended_matches_numpy_reference(K, p, stride):
    rng = np.random.default_rng(K * p)
    trans = rng.dirichlet(np.ones(K), size=(12, K))
    first = np.array([0, 3, 7], dtype=np.int64) * stride
    start = rng.dirichlet(np.ones(K), size=3)
    s = np.arange(K ** (p + 1))
    ext = np.stack([(s // K ** (p - lag)) % K for lag in range(p + 1)], axis=1)
    got = initial_extended(trans, first, stride, start, ext)
    want = _np_initial_extended(trans, first, stride, start, K, p)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-13)


def test_filter_where_only_unreachable_states_are_likely():
    # Regime 1 cannot be reached, and its densities dwarf regime 0's by e^600: scaled by
    # the row's largest density, the reachable ones flush to zero, so those rows are
    # redone with their own scale. An unreachable regime's densities change nothing:
    # the numbers are the reference's with them set to regime 0's.
    rng = np.random.default_rng(8)
    n, K = 12, 2
    logb = np.c_[-600.0 + rng.normal(size=n), rng.normal(size=n)]
    logb[::3, 1] = -700.0  # some rows where the reachable state is the likely one
    trans = np.array([[[1.0, 0.0], [0.3, 0.7]]])
    init = np.array([[1.0, 0.0]])
    args = (np.array([0, n]), trans, np.zeros(n, dtype=np.int64), init, K)
    got = hamilton_kim(logb, *args, True)
    want = _reference(np.c_[logb[:, 0], logb[:, 0]], *args)
    assert np.all(np.isfinite(got[0]))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_small_solve_matches_least_squares():
    from latentem.kernels.regime import _spd_solve

    rng = np.random.default_rng(4)
    for n in (1, 2, 4, 7):
        X = rng.normal(size=(3 * n, n))
        A, r = X.T @ X, rng.normal(size=n)
        np.testing.assert_allclose(_spd_solve(A, r), np.linalg.solve(A, r), rtol=1e-10)
    # Singular (a regime without weight; a repeated column): the minimum-norm answer.
    X = rng.normal(size=(9, 3))
    X[:, 2] = X[:, 0]
    for A in (X.T @ X, np.diag([2.0, 0.0, 1.0])):
        r = A @ rng.normal(size=3)
        want = np.linalg.lstsq(A, r, rcond=None)[0]
        np.testing.assert_allclose(_spd_solve(A, r), want, rtol=1e-8, atol=1e-10)


def test_quantiles_are_numpys():
    # the starting values' cut points: np.quantile's numbers, bit for bit
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 514):
        x = rng.normal(size=n)
        q = np.sort(rng.uniform(0.15, 0.85, size=3))
        np.testing.assert_array_equal(_quantiles(np.sort(x), q), np.quantile(x, q))
    np.testing.assert_array_equal(_quantiles(np.arange(5.0), np.array([0.0, 0.5, 1.0])), [0, 2, 4])


def _np_coef_matrix(beta, phi, ext):
    M, p, kx = ext.shape[0], ext.shape[1] - 1, beta.shape[1]
    C = np.zeros((M, (p + 1) * (1 + kx)))
    C[:, 0] = 1.0
    C[:, 1 : 1 + kx] = -beta[ext[:, 0]]
    for lag in range(1, p + 1):
        o = lag * (1 + kx)
        ph = phi[ext[:, 0], lag - 1]
        C[:, o] = -ph
        C[:, o + 1 : o + 1 + kx] = ph[:, None] * beta[ext[:, lag]]
    return C


def _np_block_solve(Ms, w, C0, G):
    MG = np.matmul(Ms, G)
    Gw = np.swapaxes(G, 1, 2) * w[:, None, None]
    A = np.matmul(Gw, MG).sum(axis=0)
    r = -np.matmul(Gw, np.matmul(Ms, C0[:, :, None])).sum(axis=0)[:, 0]
    return np.linalg.lstsq(A, r, rcond=None)[0]


def _np_emission_m_step(Ms, Ns, ext, bmap, amap, beta, phi, s2, switching_variance, cycles):
    """The emission M-step with whole-array NumPy: Jacobians by one-hot maps."""
    K, kx = bmap.shape
    p = ext.shape[1] - 1
    nb, na = (bmap.max() + 1 if bmap.size else 0), (amap.max() + 1 if amap.size else 0)
    reg = ext[:, 0]
    D = (p + 1) * (1 + kx)
    prev = -np.inf
    for _ in range(cycles):
        w = 1.0 / s2[reg]
        if nb:
            onehot = (bmap[:, :, None] == np.arange(nb)).astype(float)
            C0, G = np.zeros((len(ext), D)), np.zeros((len(ext), D, nb))
            C0[:, 0] = 1.0
            G[:, 1 : 1 + kx] = -onehot[reg]
            for lag in range(1, p + 1):
                o = lag * (1 + kx)
                C0[:, o] = -phi[reg, lag - 1]
                G[:, o + 1 : o + 1 + kx] = phi[reg, lag - 1][:, None, None] * onehot[ext[:, lag]]
            beta = _np_block_solve(Ms, w, C0, G)[bmap]
        if na:
            onehot = (amap[:, :, None] == np.arange(na)).astype(float)
            C0, G = np.zeros((len(ext), D)), np.zeros((len(ext), D, na))
            C0[:, 0] = 1.0
            C0[:, 1 : 1 + kx] = -beta[reg]
            for lag in range(1, p + 1):
                o = lag * (1 + kx)
                oh = onehot[reg, lag - 1]
                G[:, o] = -oh
                G[:, o + 1 : o + 1 + kx] = oh[:, None, :] * beta[ext[:, lag]][:, :, None]
            phi = _np_block_solve(Ms, w, C0, G)[amap]
        C = _np_coef_matrix(beta, phi, ext)
        quad = np.einsum("sd,sde,se->s", C, Ms, C)
        if switching_variance:
            s2 = np.bincount(reg, quad, minlength=K) / np.bincount(reg, Ns, minlength=K)
        else:
            s2 = np.full(K, quad.sum() / Ns.sum())
        if p == 0 and not switching_variance:
            break
        q = -0.5 * np.sum(Ns * np.log(s2[reg]) + quad / s2[reg])
        if q - prev <= 1e-13 * (abs(q) + 1.0):
            break
        prev = q
    return beta, phi, s2


@pytest.mark.parametrize(
    "K,order,kx,sw_x,sw_ar,sw_var",
    [
        (2, 0, 2, [True, False], [], False),
        (3, 0, 1, [True], [], True),
        (2, 2, 2, [True, False], [True, False], False),
        (2, 1, 1, [True], [True], True),
    ],
)
def test_emission_kernels_match_numpy_reference(K, order, kx, sw_x, sw_ar, sw_var):
    rng = np.random.default_rng(order * 7 + K)
    model = MarkovAutoregression(K, order=max(order, 1))  # for the maps only
    model.order = order
    model.trend = "n"
    model.switching_exog = sw_x
    model.switching_ar = sw_ar
    y = rng.normal(size=60)
    x = rng.normal(size=(60, kx))
    data = RegimeData(y, x, None, np.array([0, 60]), order, "n")
    model._setup(data)
    ext, bmap, amap = model._ext, model._bmap, model._amap
    M = K ** (order + 1)
    W = rng.dirichlet(np.ones(M), size=len(data))
    valid = rng.uniform(size=len(data)) > 0.1
    Ms, Ns = weighted_moments(data.U, W, valid)
    Wv = W * valid[:, None]
    np.testing.assert_allclose(Ms, np.einsum("ts,td,te->sde", Wv, data.U, data.U), rtol=1e-12)
    np.testing.assert_allclose(Ns, Wv.sum(axis=0), rtol=1e-12)
    Ms_kept, Ns_kept = weighted_moments(data.U, W, valid, moment_pairs(data.U, valid))
    np.testing.assert_array_equal(Ms_kept, Ms)
    np.testing.assert_array_equal(Ns_kept, Ns)
    # Repeated columns (an autoregression's constant, once per lag) are multiplied once.
    U2 = np.c_[np.ones(len(data)), data.U, np.ones(len(data)), data.U[:, :1]]
    Ms2, _ = weighted_moments(U2, W, valid, moment_pairs(U2, valid))
    np.testing.assert_allclose(Ms2, np.einsum("ts,td,te->sde", Wv, U2, U2), rtol=1e-12)
    assert moment_pairs(U2, valid)[0].shape[1] == (U2.shape[1] - 2) * (U2.shape[1] - 1) // 2
    np.testing.assert_array_equal(weighted_moments(U2, W, valid)[0], Ms2)
    beta = rng.normal(size=(K, kx))
    phi = rng.normal(size=(K, order)) * 0.3
    s2 = rng.uniform(0.5, 2.0, size=K)
    C = coef_matrix(beta, phi, ext)
    np.testing.assert_allclose(C, _np_coef_matrix(beta, phi, ext), rtol=1e-14)
    logb = log_emission(data.U, C, s2[ext[:, 0]], valid)
    E = data.U @ C.T
    want = np.where(
        valid[:, None], -0.5 * np.log(2 * np.pi * s2[ext[:, 0]]) - 0.5 * E**2 / s2[ext[:, 0]], 0
    )
    np.testing.assert_allclose(logb, want, rtol=1e-12, atol=1e-12)
    got = emission_m_step(Ms, Ns, ext, bmap, amap, beta, phi, s2, sw_var, 1e-12, 50)
    ref = _np_emission_m_step(Ms, Ns, ext, bmap, amap, beta, phi, s2, sw_var, 50)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-10)

    def q(b, a, v):
        Cq = _np_coef_matrix(b, a, ext)
        quad = np.einsum("sd,sde,se->s", Cq, Ms, Cq)
        return -0.5 * np.sum(Ns * np.log(v[ext[:, 0]]) + quad / v[ext[:, 0]])

    assert q(*got) >= q(beta, phi, s2)  # the M-step raises the expected log-likelihood


# --------------------------------------------------------- statsmodels at its numbers
@pytest.mark.parametrize("name", list(CASES))
def test_equal_to_statsmodels_at_published_parameters(name):
    sm_model, sm_res = _statsmodels(name)
    ours = _ours(name)
    assert ours.param_names_ == list(sm_model.param_names)
    np.testing.assert_allclose(ours.params_, CASES[name][3], rtol=1e-12)
    res = ours.smooth()
    assert abs(res.llf - sm_res.llf) < 1e-8
    np.testing.assert_allclose(res.llf, CASES[name][4], atol=1e-5, rtol=1e-7)
    np.testing.assert_allclose(res.llf_obs, sm_res.llf_obs, atol=1e-8)
    for what in ("filtered", "smoothed", "predicted"):
        got = getattr(res, f"{what}_marginal_probabilities")
        if what == "predicted":
            want = sm_res.predicted_joint_probabilities
            want = want.sum(axis=tuple(range(1, want.ndim - 1)))
            want = want.T
        else:
            want = getattr(sm_res, f"{what}_marginal_probabilities")
        np.testing.assert_allclose(got, want, atol=1e-8)
    np.testing.assert_allclose(res.expected_durations, sm_res.expected_durations, rtol=1e-8)


def test_filtered_and_smoothed_match_the_published_series():
    res = _ours("filardo").smooth()
    np.testing.assert_allclose(
        res.filtered_marginal_probabilities[:, 0], FILARDO["filtered_0"].iloc[5:], atol=1e-5
    )
    np.testing.assert_allclose(
        res.smoothed_marginal_probabilities[:, 0], FILARDO["smoothed_0"].iloc[5:], atol=1e-5
    )
    np.testing.assert_allclose(
        res.expected_durations, FILARDO[["duration0", "duration1"]].iloc[5:], rtol=1e-5
    )


# ------------------------------------------------------------------------ EM fits
@pytest.mark.parametrize(
    "name,n_init",
    [
        ("fedfunds_const", 1),
        ("fedfunds_L1", 1),
        ("areturns_variance", 1),
        ("fedfunds_exog3", 3),
        ("hamilton_ar4", 1),
        ("hamilton_tvtp", 1),
    ],
)
def test_em_reaches_the_statsmodels_maximum(name, n_init):
    cls, settings, data, _, _, llf_fit = CASES[name]
    model = cls(**settings, n_init=n_init, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        model.fit(**data)
    assert model.llf_ > llf_fit - 1e-4
    assert model.llf_ < llf_fit + 1e-4  # the maximum, not beyond it
    for history in model.histories_:
        assert _monotone(history)
    assert model.converged_


@pytest.mark.parametrize("name", ["fedfunds_exog3", "filardo"])
def test_short_runs_then_the_best_to_convergence(name):
    # search_iter: statsmodels' search_reps strategy (short runs from every start).
    cls, settings, data, _, _, llf_fit = CASES[name]
    model = cls(**settings, n_init=20, search_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        model.fit(**data)
    assert abs(model.llf_ - llf_fit) < 1e-4
    assert model.converged_ and model.n_iter_ == len(model.history_) > 5
    assert len(model.histories_) == 20
    for history in model.histories_:
        assert _monotone(history)
    assert any(h is model.history_ for h in model.histories_)
    assert all(len(h) <= 5 for h in model.histories_ if h is not model.history_)


def test_hamilton_parameters_to_the_test_file_tolerances():
    _, settings, data, params, _, _ = CASES["hamilton_ar4"]
    model = MarkovAutoregression(**settings, n_init=1, random_state=0).fit(**data)
    got = model.params_
    # Regime labels are arbitrary: put the recession regime (lower mean) first.
    if got[2] > got[3]:
        P = model.transmat_[::-1, ::-1]
        got = np.r_[P[0, 0], P[1, 0], got[3], got[2], got[4:]]
    np.testing.assert_allclose(got[:4], params[:4], atol=1e-4)
    np.testing.assert_allclose(got[5:], params[5:], atol=1e-4)
    np.testing.assert_allclose(np.sqrt(got[4]), np.sqrt(params[4]), atol=1e-4)


def test_standard_errors_match_statsmodels():
    ours = _ours("fedfunds_L1")
    sm_model, sm_res = _statsmodels("fedfunds_L1")
    np.testing.assert_allclose(ours.bse(), np.sqrt(np.diag(sm_res.cov_params_approx)), rtol=2e-3)


# ------------------------------------------------------------ statistics, vectors
def test_statistics_add_over_sequences():
    rng = np.random.default_rng(0)
    y = np.concatenate([RGNP, RGNP[::-1] + rng.normal(size=len(RGNP))])
    lengths = [len(RGNP), len(RGNP)]
    model = MarkovAutoregression(2, order=2, switching_ar=False, n_init=1, random_state=0)
    model.fit(y, lengths=lengths)  # parameters to evaluate at
    both = model._make_data(y, lengths=lengths)
    first = model._make_data(y[: len(RGNP)])
    second = model._make_data(y[len(RGNP) :])
    s_both, ll_both = model.e_step(both)
    s1, ll1 = model.e_step(first)
    s2, ll2 = model.e_step(second)
    assert np.isclose(ll_both, ll1 + ll2, rtol=1e-12)
    for key in ("Ms", "Ns", "trans"):
        assert tree.allclose(s_both[key], tree.add(s1[key], s2[key]))
    np.testing.assert_allclose(s_both["oldest"], np.vstack([s1["oldest"], s2["oldest"]]))


def test_param_vector_round_trip_and_infeasible_points():
    model = _ours("areturns_variance")
    model._setup(model._data)
    theta = model.get_param_vector()
    before = model.smooth().llf
    assert model.set_param_vector(theta)
    assert model.smooth().llf == before
    bad = theta.copy()
    bad[0] = 1.5  # a transition probability above one
    assert not model.set_param_vector(bad)
    bad = theta.copy()
    bad[-1] = -1.0  # a negative variance
    assert not model.set_param_vector(bad)
    assert model.smooth().llf == before


@pytest.mark.parametrize("initial", ["free", np.array([0.3, 0.7])])
def test_other_initial_distributions(initial):
    model = MarkovRegression(2, initial=initial, n_init=2, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        model.fit(FF[1:], exog=FF[:-1])
    assert all(_monotone(h) for h in model.histories_)
    # With a free start the fit is at least as good as with the stationary one.
    if isinstance(initial, str):
        assert model.llf_ >= CASES["fedfunds_L1"][5] - 1e-4
        np.testing.assert_allclose(model.startprob_.sum(), 1.0)


@pytest.mark.parametrize(
    "settings",
    [
        dict(order=2, switching_ar=[True, False]),
        dict(order=1, switching_variance=True, switching_exog=True),
    ],
)
def test_autoregression_with_exog_is_monotone_and_agrees(settings):
    # (statsmodels indexes a switching variance by S_{t-1} instead of S_t when
    # order >= 2, so that combination is compared at order 1 only.)
    x = np.random.default_rng(3).normal(size=len(RGNP))
    model = MarkovAutoregression(2, **settings, n_init=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        model.fit(RGNP, exog=x)
    assert all(_monotone(h) for h in model.histories_)
    sm_model = sm_ar.MarkovAutoregression(RGNP, k_regimes=2, exog=x, **settings)
    assert len(model.param_names_) == len(sm_model.param_names)  # same order, same values
    assert abs(sm_model.loglike(model.params_) - model.llf_) < 1e-8


# ------------------------------------------------------------- missing, panels
def test_missing_observations_have_no_emission_term():
    y = FF.copy()
    y[[10, 50, 51]] = np.nan
    kept = y.copy()
    model = _ours("fedfunds_const")
    res = model.smooth(y)
    np.testing.assert_array_equal(y, kept)  # not modified
    assert res.llf_obs[10] == 0.0 and np.isfinite(res.llf)
    # The reference: the kernel with those rows' emission set to zero.
    data = model._make_data(y)
    model._setup(data)
    trans, tidx = model._transitions(data)
    logb = model._log_emission(data)
    ref = _reference(logb, data.offsets, trans, tidx, model._initial_ext(data, trans), 2)
    assert np.isclose(res.llf, ref[0].sum(), rtol=1e-12)
    fitted = MarkovRegression(2, n_init=1, random_state=0).fit(y)
    assert _monotone(fitted.history_) and np.isfinite(fitted.llf_)


def test_panel_log_likelihood_is_the_sum_over_series():
    model = _ours("hamilton_ar4")
    halves = [RGNP[:70], RGNP[70:]]
    stacked = model.score(RGNP, lengths=[70, len(RGNP) - 70])
    assert np.isclose(stacked, sum(model.score(h) for h in halves), rtol=1e-12)


# ---------------------------------------------------------------- forecast, files
def test_forecast_matches_enumeration_over_regime_paths():
    model = MarkovAutoregression(2, order=1, switching_ar=False, switching_variance=True)
    model.set_statsmodels_params([0.9, 0.2, -0.5, 1.0, 0.5, 2.0, 0.4], RGNP)
    fc = model.forecast(3)
    res = model.smooth()
    pT = res.filtered_marginal_probabilities[-1]
    P, mu, phi, s2 = model.transmat_, model.coef_[:, 0], model.ar_coef_[0, 0], model.sigma2_
    yT = RGNP[-1]
    for h in range(1, 4):
        weights, means, variances = [], [], []
        for path in np.ndindex(*(2,) * (h + 1)):  # (S_T, S_T+1, ..., S_T+h)
            w = pT[path[0]] * np.prod([P[path[i], path[i + 1]] for i in range(h)])
            weights.append(w)
            means.append(mu[path[-1]] + phi**h * (yT - mu[path[0]]))
            variances.append(sum(phi ** (2 * m) * s2[path[h - m]] for m in range(h)))
        weights, means, variances = map(np.array, (weights, means, variances))
        mean = weights @ means
        var = weights @ (variances + means**2) - mean**2
        assert np.isclose(fc["mean"][h - 1], mean, rtol=1e-12)
        assert np.isclose(fc["variance"][h - 1], var, rtol=1e-12)
        np.testing.assert_allclose(fc["probabilities"][h - 1], pT @ np.linalg.matrix_power(P, h))


def test_simulate_and_refit():
    truth = MarkovRegression(2, switching_variance=True)
    truth.transmat_ = np.array([[0.95, 0.05], [0.1, 0.9]])
    truth.coef_ = np.array([[0.0, 0.5], [2.0, -0.5]])
    truth.sigma2_ = np.array([0.5, 1.0])
    x = np.random.default_rng(0).normal(size=1500)
    y, regimes = truth.simulate(1500, exog=x, random_state=1)
    model = MarkovRegression(2, switching_variance=True, n_init=2, random_state=0).fit(y, exog=x)
    order = np.argsort(model.coef_[:, 0])
    np.testing.assert_allclose(model.coef_[order], truth.coef_, atol=0.15)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], truth.transmat_, atol=0.05)
    agree = np.mean(order[model.smooth().smoothed_marginal_probabilities.argmax(1)] == regimes)
    assert agree > 0.9


def test_model_file_round_trip(tmp_path):
    model = _ours("hamilton_tvtp")
    path = tmp_path / "regime.lem"
    model.save(path)
    again = load(path)
    _, _, data, _, _, _ = CASES["hamilton_tvtp"]
    assert again.score(**data) == model.score(**data)
    assert again.get_params() == model.get_params()


# ----------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(exog=np.r_[np.nan, FF[1:]]), "exog has NaN or inf"),
        (dict(exog_tvtp=np.ones((10, 2))), "exog_tvtp must have one row per observation"),
        (dict(exog=np.ones(len(FF))), "singular"),
        (dict(lengths=[100, 126]), None),
        (dict(lengths=[2, 224]), "needs at least"),
        (dict(lengths=[100, 100]), "summing to len"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, match):
    model = MarkovAutoregression(2, order=1, n_init=1, max_iter=3)
    if match is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(FF, **kwargs)  # fine
        return
    with pytest.raises(ValueError, match=match):
        model.fit(FF, **kwargs)


def test_bad_settings_and_values():
    with pytest.raises(ValueError, match="k_regimes"):
        MarkovRegression(1).fit(FF)
    with pytest.raises(ValueError, match="initial"):
        MarkovRegression(2, initial="uniform").fit(FF)
    with pytest.raises(ValueError, match="search_iter"):
        MarkovRegression(2, search_iter=0).fit(FF)
    with pytest.raises(ValueError, match="inf"):
        MarkovRegression(2).fit(np.r_[np.inf, FF[1:]])
    with pytest.raises(ValueError, match="switching_exog"):
        MarkovRegression(2, switching_exog=[True]).fit(FF[1:], exog=np.c_[FF[:-1], OGAP[1:]])
    with pytest.raises(ValueError, match="params must hold"):
        MarkovRegression(2).set_statsmodels_params([0.5, 0.5], FF)
    model = _ours("fedfunds_const")
    with pytest.raises(ValueError, match="exog for the forecast needs 1"):
        _ours("fedfunds_L1").forecast(2)
    assert model.forecast(2)["mean"].shape == (2,)


def test_tvtp_panel_with_gaps_and_free_start():
    z = np.c_[np.ones(len(RGNP)), REC]
    model = _ours("hamilton_tvtp")
    lengths = [60, len(RGNP) - 60]
    stacked = model.score(RGNP, exog_tvtp=z, lengths=lengths)
    parts = model.score(RGNP[:60], exog_tvtp=z[:60]) + model.score(RGNP[60:], exog_tvtp=z[60:])
    assert np.isclose(stacked, parts, rtol=1e-12)
    y = RGNP.copy()
    y[[20, 21, 90]] = np.nan  # in an AR(2), rows 20-23 and 90-92 lose their term
    fit = MarkovAutoregression(2, order=2, initial="free", n_init=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LikelihoodDecreaseWarning)
        fit.fit(y, exog_tvtp=z, lengths=lengths)
    assert all(_monotone(h) for h in fit.histories_)
    res = fit.smooth()
    rows = fit._data.rows
    lost = np.isin(rows, [20, 21, 22, 23, 90, 91, 92])
    assert np.all(res.llf_obs[lost] == 0.0) and np.all(res.llf_obs[~lost] != 0.0)
    np.testing.assert_allclose(res.smoothed_marginal_probabilities.sum(axis=1), 1.0)


def test_simulated_forecast_agrees_with_the_exact_one():
    model = _ours("hamilton_ar4")
    exact = model.forecast(4)
    sim = model.forecast(4, method="simulate", n_paths=40000, random_state=0)
    se = np.sqrt(exact["variance"] / 40000)
    assert np.all(np.abs(sim["mean"] - exact["mean"]) < 5 * se)
    np.testing.assert_allclose(sim["variance"], exact["variance"], rtol=0.05)
    np.testing.assert_array_equal(sim["probabilities"], exact["probabilities"])
    switching = _ours("hamilton_ar1_switch")
    auto = switching.forecast(3, random_state=1)
    assert np.all(np.isfinite(auto["mean"])) and np.all(auto["variance"] > 0)
    with pytest.raises(ValueError, match="method"):
        switching.forecast(3, method="exact")


def test_a_reducible_chain_does_not_break_the_m_step():
    # Identity transitions at the first row: no unique stationary distribution.
    z = np.ones((len(FF), 1))
    model = MarkovRegression(2).set_statsmodels_params(
        [300.0, -300.0, 3.7, 9.6, 4.4], FF, exog_tvtp=z
    )
    before = model.score(FF, exog_tvtp=z)
    stats, ll = model.e_step(model._data)
    assert np.isfinite(ll) and np.isclose(ll, before)
    model.m_step(stats)
    assert model.score(FF, exog_tvtp=z) >= before - 1e-9 * abs(before)


def test_a_constant_series_is_a_clear_error():
    from latentem import MarkovRegression

    with pytest.raises(ValueError, match="y is constant"):
        MarkovRegression(2).fit(np.full(50, 3.0))
