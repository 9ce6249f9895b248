"""The latent-class (general-location) model with gaps behind :class:`~latentem.MixedImputer`.

K latent classes; under class k the continuous columns are one multivariate
normal (gap-aware: :class:`~latentem.families.gaussian_missing.MissingGaussianFamily`)
and every categorical column an independent categorical distribution
(:class:`~latentem.families.categorical_columns.CategoricalColumnsFamily`).
The class links the two: a row's observed cells of either kind inform its
class, and the class predicts the gaps of both kinds.

The data are one float64 array: the Dc continuous columns first, then the Dk
categorical codes (NaN marks a gap). Priors keep EM away from degenerate
maxima and are part of the objective EM never lowers (:meth:`_MixedEM.log_prior`):
each covariance is shrunk towards the diagonal of the observed variances with
the weight of ``ridge`` rows (as Amelia's ``empri``), and each level gets
``alpha`` extra pseudo-counts per class (a Dirichlet prior, so a rare level
never gets probability 0).
"""

from __future__ import annotations

import math

import numpy as np

from latentem._numeric import logsumexp
from latentem.families.categorical_columns import CategoricalColumnsFamily
from latentem.families.gaussian_missing import (
    MissingGaussianFamily,
    bayesian_ridge_regressions,
    missing_plan,
)
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.kernels.mixed import categorical_counts, categorical_logprob
from latentem.latent import CategoricalLatent

__all__ = ["_MixedEM", "draw_classes"]


def draw_classes(resp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row, drawn from the row's posterior probabilities (n, K)."""
    u = rng.random(resp.shape[0])[:, None]
    return np.minimum((np.cumsum(resp, axis=1) < u).sum(axis=1), resp.shape[1] - 1)


class _MixedEM:
    """A :class:`latentem.LatentModel` over a mixed table with gaps (see the module)."""

    def __init__(
        self, n_components, n_continuous, n_levels, alpha, ridge, prior_var, covariance_type="full"
    ):
        K = int(n_components)
        self.covariance_type = covariance_type
        self.n_components = K
        self.n_continuous = int(n_continuous)
        self.n_levels = np.asarray(n_levels, dtype=np.int64)
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self.prior_var = np.asarray(prior_var, dtype=np.float64)
        Dc = self.n_continuous
        self.gauss = MissingGaussianFamily(K, Dc, covariance_type, 0.0) if Dc else None
        self.cat = None
        if self.n_levels.size:
            self.cat = CategoricalColumnsFamily(K, self.n_levels, probs_prior=1.0 + self.alpha)
            self.cat.n_levels_ = self.n_levels.copy()
        self.latent = CategoricalLatent(K)

    # ------------------------------------------------------------------ data
    def validate_data(self, Z: np.ndarray) -> np.ndarray:
        """Z as it is: gaps are NaN (the estimator built and checked it)."""
        return np.ascontiguousarray(Z, dtype=np.float64)

    def attach(self, Z: np.ndarray) -> None:
        """Split Z into its blocks and group the continuous rows by gaps, once per table."""
        Dc = self.n_continuous
        self.Xc = np.ascontiguousarray(Z[:, :Dc])
        self.codes = np.ascontiguousarray(np.where(np.isnan(Z[:, Dc:]), -1, Z[:, Dc:]), np.int64)
        self.plan = missing_plan(self.Xc) if Dc else None
        self._attached = Z

    def _ensure(self, Z: np.ndarray) -> None:
        if self.__dict__.get("_attached") is not Z:
            self.attach(Z)

    def __getstate__(self) -> dict:  # copies carry parameters, not the attached rows
        drop = ("_attached", "Xc", "codes", "plan")
        return {k: v for k, v in self.__dict__.items() if k not in drop}

    def blocks(self, Z: np.ndarray) -> tuple:
        """``(Xc, codes, plan)`` of any table Z (the attached one without recomputing)."""
        self._ensure(Z)
        return self.Xc, self.codes, self.plan

    # ------------------------------------------------------------------ start
    def init_params(self, Z: np.ndarray, rng: np.random.Generator) -> None:
        """k-means++ and Lloyd on the standardised continuous columns and one-hot levels
        (gaps at the column mean), then one M-step from the hard labels."""
        Xc, codes, plan = self.blocks(Z)
        n, K = Z.shape[0], self.n_components
        if K == 1:
            W = np.ones((n, 1))
        else:
            feats = self._features(Xc, codes)
            first = int(rng.integers(n))
            uniforms = rng.random((K - 1, 2 + int(math.log(K))))
            idx = kmeans_plusplus(feats, K, first, uniforms)
            centers = np.ascontiguousarray(feats[idx])
            _, labels, _ = lloyd(feats, centers, 0)
            W = np.zeros((n, K))
            W[np.arange(n), labels] = 1.0
        if self.gauss is not None:
            mean = np.nanmean(Xc, axis=0)
            cov = np.diag(self.prior_var)
            if self.covariance_type == "full":
                cov = np.tile(cov, (K, 1, 1))
            self.gauss.set_parameters(np.tile(mean, (K, 1)), cov)
        if self.cat is not None:
            L = int(self.n_levels.max())
            valid = np.arange(L)[None, :] < self.n_levels[:, None]
            self.cat.probs_ = np.tile(valid / valid.sum(axis=1, keepdims=True), (K, 1, 1))
        self.latent = CategoricalLatent(K)
        self.m_step(self._stats(Xc, codes, plan, W))

    def _features(self, Xc: np.ndarray, codes: np.ndarray) -> np.ndarray:
        parts = []
        if Xc.shape[1]:
            filled = np.where(np.isnan(Xc), np.nanmean(Xc, axis=0), Xc)
            parts.append((filled - filled.mean(axis=0)) / np.sqrt(self.prior_var))
        for d in range(codes.shape[1]):
            onehot = np.zeros((codes.shape[0], int(self.n_levels[d])))
            seen = codes[:, d] >= 0
            onehot[seen, codes[seen, d]] = 1.0
            onehot[~seen] = onehot[seen].mean(axis=0)
            parts.append(onehot)
        return np.ascontiguousarray(np.hstack(parts))

    # ------------------------------------------------------------------ E-step
    def _log_probs(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.ascontiguousarray(np.log(self.cat.probs_))

    def row_log_prob(self, Z: np.ndarray) -> np.ndarray:
        """Log-density (n, K) of each row's observed cells under each class."""
        Xc, codes, plan = self.blocks(Z)
        out = np.zeros((Z.shape[0], self.n_components))
        if self.gauss is not None:
            out += self.gauss.log_prob(Xc, plan)
        if self.cat is not None:
            out += categorical_logprob(codes, self._log_probs())
        return out

    def _stats(self, Xc, codes, plan, W) -> tuple:
        g = self.gauss.accumulate(Xc, W, plan) if self.gauss is not None else ()
        c = (
            categorical_counts(codes, W, int(self.n_levels.max()))
            if self.cat is not None
            else np.zeros(0)
        )
        return W.sum(axis=0), g, c

    def e_step(self, Z: np.ndarray) -> tuple[tuple, float]:
        Xc, codes, plan = self.blocks(Z)
        if self.n_components == 1 and self.gauss is not None:
            # one class: the continuous block's fused pass gives statistics and likelihood
            g, ll = self.gauss.mixture_e_step(Xc, np.zeros(1), plan)
            W = np.ones((Z.shape[0], 1))
            c = np.zeros(0)
            if self.cat is not None:
                ll += float(categorical_logprob(codes, self._log_probs()).sum())
                c = categorical_counts(codes, W, int(self.n_levels.max()))
            return (np.array([float(Z.shape[0])]), g, c), float(ll)
        resp, ll = self.latent.posteriors(self.row_log_prob(Z))
        return self._stats(Xc, codes, plan, resp), ll

    def log_likelihood(self, Z: np.ndarray) -> float:
        return self.e_step(Z)[1]

    def row_log_likelihood(self, Z: np.ndarray) -> np.ndarray:
        """Log-likelihood of each row's observed cells, (n,)."""
        return logsumexp(self.row_log_prob(Z) + self.latent.log_weights(), axis=1)

    def posteriors(self, Z: np.ndarray) -> np.ndarray:
        """Class posteriors (n, K) of each row given its observed cells."""
        if self.n_components == 1:
            return np.ones((Z.shape[0], 1))
        return self.latent.posteriors(self.row_log_prob(Z))[0]

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: tuple) -> None:
        nk, g, c = stats
        self.latent.m_step(nk)
        if self.gauss is not None:
            means, cov = self.gauss.estimate(g)
            if self.ridge > 0:  # tied: one covariance, one prior worth `ridge` rows
                n_g = g[0][:, None, None] if self.covariance_type == "full" else g[0].sum()
                cov = (n_g * cov + self.ridge * np.diag(self.prior_var)) / (n_g + self.ridge)
            self.gauss.set_parameters(means, cov)
        if self.cat is not None:
            self.cat.m_step(c, "p")

    def log_prior(self) -> float:
        """Log-density (up to a constant) of the ridge and Dirichlet priors."""
        total = 0.0
        if self.gauss is not None and self.ridge > 0:
            _, P, logdet = self.gauss._precision_parts()
            trace = np.einsum("kjj,j->k", P, self.prior_var)
            terms = trace + logdet
            if self.covariance_type == "tied":
                terms = terms[:1]
            total += float(-0.5 * self.ridge * terms.sum())
        if self.cat is not None:
            total += self.cat.log_prior()
        return total

    # ------------------------------------------------------------------ filling
    def level_probabilities(self, resp: np.ndarray) -> np.ndarray:
        """P(level | row's observed cells), (n, Dk, L), for every categorical column."""
        return np.einsum("nk,kdl->ndl", resp, self.cat.probs_)

    def regressions(self, n_obs: np.ndarray) -> np.ndarray:
        """Each class's per-column Bayesian ridge regressions (K, Dc, Dc) on the others,
        from its fitted covariance and ``weights_[k] * n_obs`` rows (all of them for a
        tied covariance), as :class:`~latentem.EMImputer`'s default fill."""
        C = self.gauss.full_covariances()
        w = self.latent.weights_
        if self.covariance_type == "tied":
            w = np.ones_like(w)
        return np.stack(
            [bayesian_ridge_regressions(C[k], w[k] * n_obs)[0] for k in range(self.n_components)]
        )

    def fill_continuous(self, Z: np.ndarray, resp: np.ndarray, coef=None) -> np.ndarray:
        """The continuous block with gaps filled: conditional means, or the regressions
        ``coef`` (:meth:`regressions`)."""
        Xc, _, plan = self.blocks(Z)
        return self.gauss.fill(Xc, resp, plan, coef)

    def draw(self, Z: np.ndarray, resp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Z with every gap drawn from its conditional distribution: first each row's
        class from its posterior, then the gaps given the class."""
        Xc, codes, plan = self.blocks(Z)
        comp = draw_classes(resp, rng)
        out = np.array(Z)
        if self.gauss is not None:
            out[:, : self.n_continuous] = self.gauss.draw(Xc, comp, rng, plan)
        if self.cat is not None:
            gaps = codes < 0
            cum = np.cumsum(self.cat.probs_[comp], axis=-1)  # (n, Dk, L)
            u = rng.random(codes.shape)[..., None]
            drawn = np.minimum((u > cum).sum(axis=-1), self.n_levels - 1)
            out[:, self.n_continuous :] = np.where(gaps, drawn, codes)
        return out
