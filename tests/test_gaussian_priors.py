"""The Gaussian family's pluggable priors: each M-step estimate maximises the expected
complete-data log-likelihood plus its log-prior, and maximum likelihood is
scikit-learn's estimate."""

from __future__ import annotations

import numpy as np
import pytest

from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_priors import (
    DiagonalShrinkage,
    MaximumLikelihood,
    NormalInverseWishart,
)

TYPES = ("full", "tied", "diag", "spherical")
K, D = 3, 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, D)) @ rng.normal(size=(D, D)) + rng.normal(size=D)
    W = rng.dirichlet(np.ones(K), size=len(X))
    return X, W, rng


def _family(ct, rng, prior=None, reg_covar=0.0):
    fam = GaussianFamily(K, D, ct, reg_covar)
    fam.prior = prior
    cov = {
        "full": np.tile(np.eye(D) * 2.0, (K, 1, 1)),
        "tied": np.eye(D) * 2.0,
        "diag": np.full((K, D), 2.0),
        "spherical": np.full(K, 2.0),
    }[ct]
    fam.set_parameters(rng.normal(size=(K, D)), cov)
    return fam


def _objective(fam, X, W):
    """sum_n sum_k W_nk log N(x_n; mu_k, Sigma_k) + log prior, in plain NumPy."""
    total = 0.0
    for k in range(K):
        C = fam.component_covariance(k)
        diff = X - fam.means_[k]
        _, logdet = np.linalg.slogdet(C)
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(C), diff)
        total += np.sum(W[:, k] * -0.5 * (D * np.log(2 * np.pi) + logdet + maha))
    return total + fam.log_prior()


@pytest.mark.parametrize("covariance_type", TYPES)
def test_maximum_likelihood_is_scikit_learns_estimate(covariance_type):
    from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

    X, W, rng = _data()
    fam = _family(covariance_type, rng, reg_covar=1e-6)
    means, cov = fam.estimate(fam.accumulate(X, W))
    _, sk_means, sk_cov = _estimate_gaussian_parameters(X, W, 1e-6, covariance_type)
    np.testing.assert_allclose(means, sk_means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, sk_cov, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize(
    "prior",
    [
        MaximumLikelihood(),
        NormalInverseWishart(),
        NormalInverseWishart(
            means_prior=1.0, means_weight=3.0, covars_prior=0.5, covars_weight=D + 3
        ),
        DiagonalShrinkage(20.0, np.array([1.0, 2.0, 0.5, 3.0])),
    ],
    ids=["ml", "niw-hmmlearn", "niw-strong", "shrinkage"],
)
@pytest.mark.parametrize("letters", ["mc", "c"])
def test_the_estimate_maximises_likelihood_plus_prior(covariance_type, prior, letters):
    X, W, rng = _data(1)
    fam = _family(covariance_type, rng, prior)
    old_means = fam.means_.copy()
    fam.m_step(fam.accumulate(X, W), letters)
    if "m" not in letters:
        np.testing.assert_array_equal(fam.means_, old_means)
    best = _objective(fam, X, W)
    means, cov = fam.means_.copy(), np.array(fam.covariances_)
    for _ in range(20):
        step = 1e-3 * rng.normal(size=cov.shape)
        if covariance_type in ("full", "tied"):
            step = step + np.swapaxes(step, -1, -2)
        new_means = means + (1e-3 * rng.normal(size=means.shape) if "m" in letters else 0.0)
        fam.set_parameters(new_means, cov + step)
        assert _objective(fam, X, W) <= best + 1e-9


@pytest.mark.parametrize("covariance_type", TYPES)
def test_gmmhmm_min_covar_is_the_shrinkage_prior(covariance_type):
    """GMMHMM's min_covar is DiagonalShrinkage with 0.01 pseudo-observations of scatter
    min_covar * I: its M-step is (scatter + min_covar I) / (n + 0.01) per covariance
    (per state when tied), and its log-prior -0.01/2 log|S| - min_covar/2 tr(S^-1)."""
    from latentem import GMMHMM

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(-2, 1, (150, 2)), rng.normal(2, 0.5, (150, 2))])
    lam, a = 0.3, 0.01
    model = GMMHMM(
        2, n_mix=2, covariance_type=covariance_type, min_covar=lam, n_iter=3, random_state=0
    ).fit(X)
    fam = model.emission
    stats = fam.accumulate(X, model.predict_proba(X))
    inner = fam._inner()
    _, ml = inner.estimate(stats["gauss"])  # maximum likelihood, per mixture component
    n = stats["gauss"][0] + 10.0 * np.finfo(float).eps
    fam.m_step(stats, "c")
    got = np.asarray(fam.covars_)
    KM = 4
    if covariance_type == "tied":
        ml_full = np.asarray(ml).reshape(2, 2, 2, 2)
        scatter = (ml_full * n.reshape(2, 2)[:, :, None, None]).sum(axis=1)
        want = (scatter + lam * np.eye(2)) / (n.reshape(2, 2).sum(axis=1) + a)[:, None, None]
    else:
        shape = {"full": (KM, 1, 1), "diag": (KM, 1), "spherical": (KM,)}[covariance_type]
        eye = np.eye(2) if covariance_type == "full" else 1.0
        want = (np.asarray(ml) * n.reshape(shape) + lam * eye) / (n.reshape(shape) + a)
        want = want.reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the log-prior, by hand from the covariance matrices
    mats = fam._inner().full_covariances()
    if covariance_type == "tied":
        mats = mats[::2]
    by_hand = sum(
        -0.5 * a * np.linalg.slogdet(S)[1] - 0.5 * lam * np.trace(np.linalg.inv(S)) for S in mats
    )
    weights_term = fam.log_prior() - by_hand
    fam.min_covar = 0.0
    np.testing.assert_allclose(fam.log_prior(), weights_term, atol=1e-9)
