"""Every Gaussian / k-means kernel, compiled and NumPy, against a slow, obvious reference."""

import numpy as np
import pytest

from latentem.kernels.gaussian import (
    BLOCK,
    cov_to_prec_chol,
    gaussian_accumulate,
    gaussian_estep,
    gaussian_logprob,
)
from latentem.kernels.gaussian_wide import WIDE_BLOCK, gaussian_estep_wide
from latentem.kernels.kmeans import kmeans_plusplus, lloyd

DTYPES = [np.float64, np.float32]


def _random_problem(rng, n, D, K, diag):
    X = rng.normal(size=(n, D)) * rng.uniform(0.5, 3, size=D) + rng.normal(size=D)
    means = rng.normal(size=(K, D))
    if diag:
        prec = rng.uniform(0.3, 2.0, size=(K, 1, D))
    else:
        A = rng.normal(size=(K, D, D))
        cov = A @ A.transpose(0, 2, 1) + D * np.eye(D)
        prec = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in cov])
    logc = rng.normal(size=K)
    return X, means, prec, logc


def ref_logp(X, means, prec, logc):
    X = X.astype(np.float64)
    K = len(means)
    out = np.empty((len(X), K))
    for k in range(K):
        d = X - means[k]
        y = d * prec[k, 0] if prec.shape[1] == 1 and X.shape[1] > 1 else d @ prec[k]
        out[:, k] = logc[k] - 0.5 * np.sum(y * y, axis=1)
    return out


def ref_stats(X, W, means, shift, smode):
    X = X.astype(np.float64)
    K, D = means.shape
    nk = W.sum(axis=0)
    S = np.stack([W[:, k] @ (X - means[k]) for k in range(K)])
    if smode == 0:
        Q = np.stack([(W[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(K)])
    elif smode == 1:
        Q = ((X - shift).T @ (X - shift))[None]
    else:
        Q = np.stack([W[:, k] @ (X - means[k]) ** 2 for k in range(K)])[:, None, :]
    return nk, S, Q


def ref_posterior(logp):
    m = logp.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logp - m).sum(axis=1))
    return np.exp(logp - lse[:, None]), lse


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smode", [0, 1, 2])
@pytest.mark.parametrize("n,D,K", [(1, 1, 1), (37, 3, 2), (3 * BLOCK + 5, 5, 4), (700, 1, 3)])
def test_estep_matches_reference(dtype, smode, n, D, K, kernel_path):
    rng = np.random.default_rng(n * 100 + D * 10 + K + smode)
    X, means, prec, logc = _random_problem(rng, n, D, K, diag=smode == 2)
    X = X.astype(dtype)
    shift = rng.normal(size=D)
    ll, nk, S, Q = getattr(gaussian_estep, kernel_path)(X, means, prec, logc, shift, smode)
    lp = ref_logp(X, means, prec, logc)
    W, lse = ref_posterior(lp)
    rnk, rS, rQ = ref_stats(X, W, means, shift, smode)
    scale = np.abs(lse).sum() + 1
    assert abs(ll - lse.sum()) <= 1e-12 * scale
    np.testing.assert_allclose(nk, rnk, rtol=1e-11, atol=1e-11 * n)
    np.testing.assert_allclose(S, rS, rtol=1e-10, atol=1e-10 * n)
    np.testing.assert_allclose(Q, rQ, rtol=1e-10, atol=1e-10 * n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smode", [0, 1, 2])
def test_accumulate_matches_reference(dtype, smode, kernel_path):
    rng = np.random.default_rng(smode)
    n, D, K = 2 * BLOCK + 17, 4, 3
    X = rng.normal(size=(n, D)).astype(dtype)
    W = rng.uniform(size=(n, K))
    means = rng.normal(size=(K, D))
    shift = rng.normal(size=D)
    got = getattr(gaussian_accumulate, kernel_path)(X, W, means, shift, smode)
    ref = ref_stats(X, W, means, shift, smode)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10 * n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("diag", [False, True])
def test_logprob_outputs(dtype, diag, kernel_path):
    rng = np.random.default_rng(int(diag))
    n, D, K = 3 * BLOCK + 1, 6, 5
    X, means, prec, logc = _random_problem(rng, n, D, K, diag)
    X = X.astype(dtype)
    lp = ref_logp(X, means, prec, logc)
    post, lse = ref_posterior(lp)
    out2 = np.full((n, K), np.nan)
    out1 = np.full(n, np.nan)
    getattr(gaussian_logprob, kernel_path)(X, means, prec, logc, 0, out2, out1)
    np.testing.assert_allclose(out2, lp, rtol=1e-12, atol=1e-10)
    getattr(gaussian_logprob, kernel_path)(X, means, prec, logc, 1, out2, out1)
    np.testing.assert_allclose(out2, post, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(out1, lse, rtol=1e-12, atol=1e-10)
    out1[:] = np.nan
    getattr(gaussian_logprob, kernel_path)(X, means, prec, logc, 2, np.empty((0, K)), out1)
    np.testing.assert_allclose(out1, lse, rtol=1e-12, atol=1e-10)
    getattr(gaussian_logprob, kernel_path)(X, means, prec, logc, 3, np.empty((0, K)), out1)
    np.testing.assert_array_equal(out1, lp.argmax(axis=1))


def test_posterior_handles_zero_weight_component(kernel_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    means = np.zeros((2, 2))
    prec = np.ones((2, 1, 2))
    logc = np.array([0.0, -np.inf])
    ll, nk, S, Q = getattr(gaussian_estep, kernel_path)(X, means, prec, logc, np.zeros(2), 2)
    assert np.isfinite(ll)
    assert nk[1] == 0.0 and nk[0] == pytest.approx(50.0)


def test_estep_does_not_depend_on_thread_count():
    import numba

    rng = np.random.default_rng(5)
    X, means, prec, logc = _random_problem(rng, 5000, 3, 3, diag=False)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = gaussian_estep.jit(X, means, prec, logc, np.zeros(3), 0)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = gaussian_estep.jit(X, means, prec, logc, np.zeros(3), 0)
    finally:
        numba.set_num_threads(before)
    assert a[0] == b[0]
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x, y)


def _triangular_problem(rng, n, D, K, tied):
    """A problem whose factors are exactly upper triangular, with junk below the diagonal
    of ``prec`` that a kernel must never read."""
    X, means, prec, logc = _random_problem(rng, n, D, K, diag=False)
    prec = np.triu(prec)
    if tied:
        prec[:] = prec[0]
    junk = prec + np.tril(rng.normal(size=(K, D, D)), -1)
    return X, means, prec, junk, logc


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smode", [0, 1])
@pytest.mark.parametrize(
    "n,D,K", [(1, 1, 1), (37, 3, 2), (2 * WIDE_BLOCK + 5, 13, 3), (1500, 64, 4), (700, 33, 2)]
)
def test_wide_estep_matches_reference(dtype, smode, n, D, K, kernel_path):
    rng = np.random.default_rng(n + 10 * D + K + smode)
    X, means, prec, junk, logc = _triangular_problem(rng, n, D, K, tied=smode == 1)
    X = X.astype(dtype)
    shift = rng.normal(size=D)
    estep = getattr(gaussian_estep_wide, kernel_path)
    ll, nk, S, Q = estep(X, means, junk if kernel_path == "jit" else prec, logc, shift, smode)
    lp = ref_logp(X, means, prec, logc)
    W, lse = ref_posterior(lp)
    rnk, rS, rQ = ref_stats(X, W, means, shift, smode)
    scale = np.abs(lse).sum() + 1
    assert abs(ll - lse.sum()) <= 1e-12 * scale
    np.testing.assert_allclose(nk, rnk, rtol=1e-11, atol=1e-11 * n)
    np.testing.assert_allclose(S, rS, rtol=1e-10, atol=1e-10 * n)
    np.testing.assert_allclose(Q, rQ, rtol=1e-10, atol=1e-10 * n)
    np.testing.assert_array_equal(Q, Q.transpose(0, 2, 1))


@pytest.mark.parametrize("smode", [0, 1])
def test_wide_estep_matches_fused_kernel_and_threads(smode):
    import numba

    rng = np.random.default_rng(11)
    X, means, prec, _, logc = _triangular_problem(rng, 3000, 40, 5, tied=smode == 1)
    shift = means.mean(axis=0)
    fused = gaussian_estep.jit(X, means, prec, logc, shift, smode)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = gaussian_estep_wide.jit(X, means, prec, logc, shift, smode)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = gaussian_estep_wide.jit(X, means, prec, logc, shift, smode)
    finally:
        numba.set_num_threads(before)
    for x, y, f in zip(a, b, fused):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(x, f, rtol=1e-10, atol=1e-10 * np.abs(f).max())


def test_cov_to_prec_chol(kernel_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 4, 4))
    cov = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(4)
    prec, bad = getattr(cov_to_prec_chol, kernel_path)(cov)
    assert bad == -1
    for k in range(3):
        ref = np.linalg.inv(np.linalg.cholesky(cov[k])).T  # scikit-learn's definition
        np.testing.assert_allclose(prec[k], ref, rtol=1e-10, atol=1e-12)
        assert np.all(np.tril(prec[k], -1) == 0)
    cov[1] = np.ones((4, 4))  # rank one: not PD
    assert getattr(cov_to_prec_chol, kernel_path)(cov)[1] == 1


def ref_kmeans_plusplus(X, K, first, uniforms):
    # the algorithm of scikit-learn's _kmeans_plusplus, written plainly
    X = X.astype(np.float64)
    idx = [first]
    closest = ((X - X[first]) ** 2).sum(axis=1)
    for c in range(1, K):
        cum = np.cumsum(closest)
        cand = np.minimum(np.searchsorted(cum, uniforms[c - 1] * cum[-1]), len(X) - 1)
        d = ((X[None, :, :] - X[cand][:, None, :]) ** 2).sum(axis=2)
        d = np.minimum(d, closest)
        best = int(np.argmin(d.sum(axis=1)))
        idx.append(int(cand[best]))
        closest = d[best]
    return np.array(idx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeans_plusplus_matches_reference(dtype, kernel_path):
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(c, 0.3, size=(60, 2)) for c in (0, 5, 10, 15)]).astype(dtype)
    uniforms = rng.random((3, 3))
    got = getattr(kmeans_plusplus, kernel_path)(X, 4, 7, uniforms)
    np.testing.assert_array_equal(got, ref_kmeans_plusplus(X, 4, 7, uniforms))
    assert len({int(i) // 60 for i in got}) == 4  # one seed per blob


def ref_lloyd(X, C, max_iter):
    X = X.astype(np.float64)
    C = C.copy()
    labels = None
    it = 0
    while True:
        new = ((X[:, None, :] - C[None]) ** 2).sum(axis=2).argmin(axis=1)
        if it >= max_iter or (labels is not None and np.array_equal(new, labels)):
            return C, new, it
        labels = new
        it += 1
        for k in range(len(C)):
            if np.any(labels == k):
                C[k] = X[labels == k].mean(axis=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_iter", [0, 1, 50])
def test_lloyd_matches_reference(dtype, max_iter, kernel_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 3)).astype(dtype)
    C0 = X[:5].astype(np.float64)
    C, labels, it = getattr(lloyd, kernel_path)(X, C0, max_iter)
    rC, rlabels, rit = ref_lloyd(X, C0, max_iter)
    np.testing.assert_array_equal(labels, rlabels)
    np.testing.assert_allclose(C, rC, rtol=1e-12, atol=1e-12)
    assert it == rit
    np.testing.assert_array_equal(C0, X[:5].astype(np.float64))  # input untouched
