"""Priors of the Gaussian family: how its M-step turns statistics into parameters.

One Gaussian family serves every model; what differs between them is the
regularisation of the M-step, and each is a prior here, plugged into the
family's ``prior`` attribute:

* :class:`MaximumLikelihood` (the default): scikit-learn's estimate, the
  expected counts floored at ``10 * eps`` so an empty component keeps finite
  parameters (``reg_covar``, added afterwards by the family, keeps the
  covariances positive definite);
* :class:`NormalInverseWishart`: hmmlearn's MAP estimate with ``means_prior``,
  ``means_weight``, ``covars_prior`` and ``covars_weight`` (GaussianHMM);
* :class:`DiagonalShrinkage`: a ridge worth ``ridge`` observations that
  shrinks covariances towards a diagonal (Amelia's ``empri``, norm's ridge
  prior; EMImputer).

A prior has two methods: ``estimate(family, stats, letters) -> (means,
covariances)`` from the statistics ``(nk, S, Q)`` taken at the family's
current parameters (see :mod:`latentem.kernels.gaussian`), and
``log_prior(family)``, the log-density (up to a constant) the estimate
maximises together with the likelihood, which EM's monotonicity check adds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DiagonalShrinkage", "MaximumLikelihood", "NormalInverseWishart"]

_EPS10 = 10.0 * np.finfo(np.float64).eps


class MaximumLikelihood:
    """The maximum-likelihood M-step, as scikit-learn's mixtures compute it.

    Each component's expected count gets a ``10 * eps`` floor, so a component
    without weight keeps its mean and gets a zero covariance (then
    ``reg_covar``). Letter ``m`` moves the means; without it the covariances
    are taken about the current means.
    """

    def estimate(self, family: Any, stats: tuple, letters: str = "mc") -> tuple:
        nk, S, Q = stats
        mu = family.means_
        nk_eff = nk + _EPS10
        e = (S - _EPS10 * mu) / nk_eff[:, None]  # new mean minus current mean
        if "m" not in letters:
            e = np.zeros_like(e)
        means = mu + e
        ct = family.covariance_type
        if ct == "full":
            Se = S[:, :, None] * e[:, None, :]
            cov = (
                Q - Se - Se.transpose(0, 2, 1) + nk[:, None, None] * (e[:, :, None] * e[:, None, :])
            )
            cov /= nk_eff[:, None, None]
            cov = 0.5 * (cov + cov.transpose(0, 2, 1))
        elif ct == "tied":
            f = means - family._shift()
            if "m" in letters:  # F below is then nk_eff * f: the short form
                cov = Q[0] - (nk_eff[:, None] * f).T @ f
            else:
                F = S + nk[:, None] * f  # sum_n w_nk (x_n - shift)
                cov = Q[0] - F.T @ f - f.T @ F + (nk[:, None] * f).T @ f
            cov /= nk_eff.sum()
            cov = 0.5 * (cov + cov.T)
        else:
            cov = (Q[:, 0, :] - 2.0 * S * e + nk[:, None] * e * e) / nk_eff[:, None]
            np.maximum(cov, 0.0, out=cov)
            if ct == "spherical":
                cov = cov.mean(axis=1)
        return means, cov

    def log_prior(self, family: Any) -> float:
        return 0.0


class NormalInverseWishart:
    """hmmlearn's MAP M-step (Huang, Acero and Hon, *Spoken Language Processing*,
    pp. 443-445): a normal prior on the means (``means_prior``, worth
    ``means_weight`` observations) and an inverse-Wishart-like prior on the
    covariances (``covars_prior`` added to every entry of the scatter,
    ``covars_weight`` its degrees of freedom). hmmlearn's defaults (``0, 0,
    1e-2, 1``) add 0.01 to every covariance numerator.
    """

    def __init__(
        self,
        means_prior: Any = 0.0,
        means_weight: Any = 0.0,
        covars_prior: Any = 1e-2,
        covars_weight: Any = 1.0,
    ) -> None:
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    def estimate(self, family: Any, stats: tuple, letters: str = "mc") -> tuple:
        nk, S, Q = stats
        mu = family.means_
        K, D = mu.shape
        obs = S + nk[:, None] * mu  # sum of w x per state
        mw, mp = self.means_weight, self.means_prior
        new_mu = mu
        if "m" in letters:
            den = mw + nk[:, None]
            # A state without posterior mass keeps its mean instead of turning NaN.
            new_mu = np.where(den > 0, (mw * mp + obs) / np.where(den > 0, den, 1.0), mu)
        cov = family.covariances_
        if "c" not in letters:
            return new_mu, cov
        delta = mu - new_mu  # old minus new mean: re-centre the moments on new_mu
        meandiff = new_mu - mp
        cp, cw = self.covars_prior, self.covars_weight
        ct = family.covariance_type
        if ct in ("diag", "spherical"):
            c_n = Q[:, 0, :] + 2.0 * delta * S + nk[:, None] * delta**2 + mw * meandiff**2
            c_d = max(cw - 1.0, 0.0) + nk[:, None]
            cov = (cp + c_n) / np.maximum(c_d, 1e-5)
            if ct == "spherical":
                cov = cov.mean(axis=1)
        elif ct == "full":
            Sd = S[:, :, None] * delta[:, None, :]
            c_n = (
                Q
                + Sd
                + Sd.transpose(0, 2, 1)
                + nk[:, None, None] * delta[:, :, None] * delta[:, None, :]
                + mw * meandiff[:, :, None] * meandiff[:, None, :]
            )
            den = max(cw - D, 0.0) + nk[:, None, None]
            cov = np.where(den > 0, (cp + c_n) / np.where(den > 0, den, 1.0), cov)
        else:  # tied: Q holds sum over rows of (x - shift)(x - shift)^T
            shift = family._shift()
            F = S + nk[:, None] * (mu - shift)  # sum_rows w_k (x - shift)
            a = new_mu - shift
            c_n = (
                Q[0]
                - F.T @ a
                - a.T @ F
                + (nk[:, None] * a).T @ a
                + mw * (np.atleast_2d(meandiff).T @ np.atleast_2d(meandiff))
            )
            cov = (cp + c_n) / (max(cw - D, 0.0) + nk.sum())
        return new_mu, cov

    def log_prior(self, family: Any) -> float:
        """Per state, ``-(a/2) log|S| - 1/2 tr((P + w (m - m0)(m - m0)^T) S^-1)`` with
        ``P = covars_prior`` (added to every entry, as hmmlearn does), ``w =
        means_weight``, ``m0 = means_prior`` and ``a = max(covars_weight - 1, 0)``
        for diagonal types, ``max(covars_weight - D, 0)`` for full and tied ones:
        the estimate's means and covariances maximise the likelihood plus this.
        """
        mu = family.means_
        K, D = mu.shape
        cp, cw = self.covars_prior, self.covars_weight
        diff = mu - self.means_prior
        mw = np.broadcast_to(np.asarray(self.means_weight, dtype=np.float64), mu.shape)
        ct = family.covariance_type
        cov = np.asarray(family.covariances_, dtype=np.float64)
        if ct in ("diag", "spherical"):
            var = cov if ct == "diag" else np.repeat(cov[:, None], D, axis=1)
            a = max(cw - 1.0, 0.0)
            return float(np.sum(-0.5 * a * np.log(var) - 0.5 * (cp + mw * diff**2) / var))
        a = max(cw - D, 0.0)
        covs = cov if ct == "full" else cov[None]
        scatter = np.einsum("ki,kj->kij", np.sqrt(mw) * diff, np.sqrt(mw) * diff)
        if ct == "tied":
            scatter = scatter.sum(axis=0, keepdims=True)
        psi = np.broadcast_to(np.asarray(cp, dtype=np.float64), covs.shape) + scatter
        sign, logdet = np.linalg.slogdet(covs)
        if not (sign > 0).all():
            raise ValueError(
                "a state's covariance is singular (for instance from duplicated points or a "
                "constant column); use covariance_type='diag', or pass a positive-definite "
                "covars_prior such as 1e-2 * np.eye(n_features)"
            )
        inv = np.linalg.inv(covs)
        return float(np.sum(-0.5 * a * logdet - 0.5 * np.einsum("kij,kji->k", psi, inv)))


class DiagonalShrinkage:
    """A ridge prior worth ``ridge`` observations per component, centred on the
    diagonal ``prior_var`` (Amelia's ``empri``, norm's ridge prior): for "full",
    ``Sigma = (n_k Sigma_ML + ridge diag(prior_var)) / (n_k + ridge)``. It shrinks
    the correlations of nearly collinear columns or of few rows towards 0.

    It is an inverse-Wishart prior with ``ridge`` pseudo-observations of scatter
    ``ridge * diag(prior_var)``: GMMHMM's ``min_covar`` is the same prior with
    ``ridge = 0.01`` and ``prior_var = min_covar / 0.01``.
    """

    def __init__(self, ridge: float, prior_var: np.ndarray) -> None:
        self.ridge = float(ridge)
        self.prior_var = np.asarray(prior_var, dtype=np.float64)

    def estimate(self, family: Any, stats: tuple, letters: str = "mc") -> tuple:
        means, cov = MaximumLikelihood().estimate(family, stats, letters)
        if self.ridge <= 0 or "c" not in letters:
            return means, cov
        return means, self.shrink(cov, stats[0], family.covariance_type)

    def shrink(self, cov: np.ndarray, nk: np.ndarray, covariance_type: str) -> np.ndarray:
        """The MAP covariances ``(n_k Sigma_ML + ridge diag(prior_var)) / (n_k + ridge)``
        from the maximum-likelihood ones and the components' weights ``nk``."""
        lam, v = self.ridge, self.prior_var
        if covariance_type == "full":
            return (nk[:, None, None] * cov + lam * np.diag(v)) / (nk[:, None, None] + lam)
        if covariance_type == "tied":
            n = nk.sum()
            return (n * cov + lam * np.diag(v)) / (n + lam)
        if covariance_type == "diag":
            return (nk[:, None] * cov + lam * v) / (nk[:, None] + lam)
        return (nk * cov + lam * v.mean()) / (nk + lam)

    def component_terms(self, family: Any) -> np.ndarray:
        """``-ridge/2 (tr(diag(prior_var) Sigma_k^-1) + log|Sigma_k|)`` of every component."""
        _, P, logdet = family._precision_parts()
        return -0.5 * self.ridge * (np.einsum("kjj,j->k", P, self.prior_var) + logdet)

    def log_prior(self, family: Any) -> float:
        """:meth:`component_terms` summed over components (once for "tied")."""
        if self.ridge <= 0:
            return 0.0
        terms = self.component_terms(family)
        if family.covariance_type == "tied":
            terms = terms[:1]
        return float(terms.sum())
