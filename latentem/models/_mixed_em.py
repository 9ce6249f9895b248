"""The latent-class (general-location) model with gaps behind :class:`~latentem.MixedImputer`.

K latent classes; under class k the continuous columns are one multivariate
normal (gap-aware: :class:`~latentem.families.gaussian.GaussianFamily`)
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
from latentem._vector import family_parts, get_vector, set_vector
from latentem.families.categorical_columns import CategoricalColumnsFamily
from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_gaps import missing_plan
from latentem.families.gaussian_missing import bayesian_ridge_regressions
from latentem.kernels._dispatch import small_rows
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.kernels.mixed import (
    categorical_counts,
    categorical_logprob,
    cg_loglik,
    cg_plan,
    cg_rows,
    cg_stats,
    spd_solve,
)
from latentem.kernels.mixed import pattern_tables as _pattern_tables
from latentem.latent import CategoricalLatent

__all__ = ["_MixedEM", "draw_classes", "pattern_tables"]

#: Prior weights, in rows, of the conditional-Gaussian part (``effects=True``): each
#: level's effect on the continuous means is shrunk towards 0 with the observed
#: variances, and each class's intercept too, very weakly (keeps rare levels and
#: empty classes identified; part of the objective).
EFFECT_PRIOR = 1.0
INTERCEPT_PRIOR = 0.01


def pattern_tables(cov: np.ndarray, observed: np.ndarray) -> tuple:
    """:func:`latentem.kernels.mixed.pattern_tables`, with a covariance that is not
    positive definite reported as a ValueError saying what to do."""
    try:
        return _pattern_tables(np.ascontiguousarray(cov), np.ascontiguousarray(observed))
    except ValueError:
        raise ValueError(
            "a class covariance is not numerically positive definite; pass a larger ridge "
            "or fewer classes."
        ) from None


def draw_classes(resp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row, drawn from the row's posterior probabilities (n, K)."""
    u = rng.random(resp.shape[0])[:, None]
    return np.minimum((np.cumsum(resp, axis=1) < u).sum(axis=1), resp.shape[1] - 1)


class _MixedEM:
    """A :class:`latentem.LatentModel` over a mixed table with gaps (see the module)."""

    def __init__(
        self,
        n_components,
        n_continuous,
        n_levels,
        alpha,
        ridge,
        prior_var,
        covariance_type="full",
        effects=False,
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
        self.gauss = GaussianFamily(K, Dc, covariance_type, 0.0) if Dc else None
        self.cat = None
        if self.n_levels.size:
            self.cat = CategoricalColumnsFamily(K, self.n_levels, probs_prior=1.0 + self.alpha)
            self.cat.n_levels_ = self.n_levels.copy()
        self.latent = CategoricalLatent(K)
        # the conditional-Gaussian part: each level shifts the continuous means
        self.effects = bool(effects) and self.gauss is not None and self.cat is not None
        if self.effects:
            self.offsets = np.concatenate([[0], np.cumsum(self.n_levels)[:-1]]).astype(np.int64)
            self.coef_ = np.zeros((int(self.n_levels.sum()), Dc))

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
        self.patterns = _patterns(self.Xc)
        self._cg_plan = None  # the effects' E-step chunks, made on first use
        self._attached = Z

    def _ensure(self, Z: np.ndarray) -> None:
        if self.__dict__.get("_attached") is not Z:
            self.attach(Z)

    def __getstate__(self) -> dict:  # copies carry parameters, not the attached rows
        drop = ("_attached", "Xc", "codes", "plan", "patterns", "_cg_plan")
        return {k: v for k, v in self.__dict__.items() if k not in drop}

    def blocks(self, Z: np.ndarray) -> tuple:
        """``(Xc, codes, plan)`` of any table Z (the attached one without recomputing)."""
        self._ensure(Z)
        return self.Xc, self.codes, self.plan

    def _cg_args(self, Z: np.ndarray) -> tuple:
        """The arguments of the conditional-Gaussian kernels for table Z."""
        self._ensure(Z)
        pat, observed = self.patterns
        prec, reg, ccov, cst = pattern_tables(self._table_covariances(), observed)
        tail = (self.gauss.means_, self.coef_, self.offsets, self.n_levels)
        tail += (self._log_probs(), self.latent.log_weights())
        return (self.Xc, self.codes, pat, prec, reg, ccov, cst) + tail

    def _table_covariances(self) -> np.ndarray:
        """The covariances the pattern tables are made from: (K, Dc, Dc), or (1, Dc, Dc)
        for a tied one, whose tables the kernels broadcast over the classes (K times
        less work on them)."""
        C = self.gauss.full_covariances()
        return C[:1] if self.covariance_type == "tied" else C

    def _chunks(self) -> list:
        """:func:`latentem.kernels.mixed.cg_plan` of the attached table, made once."""
        if self._cg_plan is None:
            self._cg_plan = cg_plan(
                self.Xc,
                self.codes,
                self.patterns[0],
                self.offsets,
                self.n_levels,
                self.n_components,
            )
        return self._cg_plan

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
        if self.effects:
            self.coef_ = np.zeros_like(self.coef_)
            # the effects' E-step is NumPy: this one pass from the hard labels needs no
            # compiled Gaussian-with-gaps kernel (about 13 s of compiling on first use)
            with small_rows(2**62):
                return self.m_step(self._stats(Xc, codes, plan, W))
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
        if self.effects:
            ll, szz, sxz, sxx, cnt = cg_stats(*self._cg_args(Z), plan=self._chunks())
            return ("cg", szz, sxz, sxx, cnt), float(ll.sum())
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
        if self.effects:
            return cg_loglik(*self._cg_args(Z), plan=self._chunks())
        return logsumexp(self.row_log_prob(Z) + self.latent.log_weights(), axis=1)

    def posteriors(self, Z: np.ndarray) -> np.ndarray:
        """Class posteriors (n, K) of each row given its observed cells."""
        if self.effects:
            return self.cg_rows(Z)[0]
        if self.n_components == 1:
            return np.ones((Z.shape[0], 1))
        return self.latent.posteriors(self.row_log_prob(Z))[0]

    def cg_rows(self, Z: np.ndarray, u: np.ndarray | None = None) -> tuple:
        """:func:`latentem.kernels.mixed.cg_rows` on Z (``u``: uniforms for a draw)."""
        args = self._cg_args(Z)
        u = np.zeros(Z.shape[0]) if u is None else u
        return cg_rows(*args[:5], *args[6:], u, plan=self._chunks())

    # ------------------------------------------------------------------ M-step
    def m_step(self, stats: tuple) -> None:
        if isinstance(stats[0], str):  # ("cg", ...): the conditional-Gaussian E-step
            return self._m_step_cg(*stats[1:])
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

    def _m_step_cg(self, szz, sxz, sxx, cnt) -> None:
        """Conditional maximisation (ECM, each step raises the objective): weights and
        level probabilities; then intercepts and effects given the covariances; then
        the covariances given those."""
        nk = szz[:, 0, 0]
        self.latent.m_step(nk)
        self.cat.m_step(cnt, "p")
        K, Dc, Q = self.n_components, self.n_continuous, self.coef_.shape[0]
        G = K + Q
        P = self.gauss._precision_parts()[1]
        inv_var = 1.0 / self.prior_var
        # generalised least squares for theta (G, Dc) = (intercepts; effects), with the
        # priors: column-major vec of its transpose, as kron(S, P) vec(A) = vec(P A S)
        lhs = np.zeros((G * Dc, G * Dc))
        rhs = np.zeros((G, Dc))
        full_szz = np.zeros((K, G, G))
        full_sxz = np.zeros((K, G, Dc))
        for k in range(K):
            idx = np.concatenate([[k], K + np.arange(Q)])
            full_szz[k][np.ix_(idx, idx)] = szz[k]
            full_sxz[k][idx] = sxz[k]
        if self.covariance_type == "tied":  # one precision: one Kronecker product
            lhs += np.kron(full_szz.sum(axis=0), P[0])
            rhs += full_sxz.sum(axis=0) @ P[0]
        else:
            for k in range(K):
                lhs += np.kron(full_szz[k], P[k])
                rhs += full_sxz[k] @ P[k]
        prior = np.concatenate([np.full(K, INTERCEPT_PRIOR), np.full(Q, EFFECT_PRIOR)])
        lhs += np.kron(np.diag(prior), np.diag(inv_var))
        # the library's rule: small tables compile nothing (LAPACK), larger ones use the
        # written-out solve (a threaded LAPACK waits for descheduled threads when busy)
        solve = spd_solve.numpy if spd_solve.runs_numpy(round(nk.sum())) else spd_solve.jit
        theta = solve(lhs, rhs.reshape(-1, 1)).reshape(G, Dc)
        means, self.coef_ = theta[:K].copy(), theta[K:].copy()
        # expected residual cross-products per class
        E = np.empty((K, Dc, Dc))
        for k in range(K):
            A = theta.T  # (Dc, G)
            cross = A @ full_sxz[k]
            E[k] = sxx[k] - cross - cross.T + A @ full_szz[k] @ A.T
        D = np.diag(self.prior_var)
        if self.covariance_type == "tied":
            cov = (E.sum(axis=0) + self.ridge * D) / (nk.sum() + self.ridge)
        else:
            cov = (E + self.ridge * D) / (nk + self.ridge)[:, None, None]
        self.gauss.set_parameters(means, 0.5 * (cov + np.swapaxes(cov, -1, -2)))

    # ------------------------------------------------------------------ SQUAREM
    def _vector_parts(self) -> list:
        parts = self.latent.vector_parts()
        for fam in (self.gauss, self.cat):
            if fam is not None:
                parts += family_parts(fam, "MixedImputer")
        if self.effects:
            parts.append((self, "coef_", False))
        return parts

    def _check_params(self) -> None:
        for fam in (self.gauss, self.cat):
            if fam is not None:
                fam.check_params()

    def get_param_vector(self) -> np.ndarray:
        """Weights, Gaussian means and covariances, level probabilities and effects as
        one vector (for SQUAREM)."""
        return get_vector(self._vector_parts())

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set every parameter from a vector; False (and nothing changed) if infeasible."""
        return set_vector(self._vector_parts(), theta, self._check_params)

    def log_prior(self) -> float:
        """Log-density (up to a constant) of the ridge and Dirichlet priors."""
        total = 0.0
        if self.effects:
            mu = self.gauss.means_
            total -= 0.5 * INTERCEPT_PRIOR * float((mu**2 / self.prior_var).sum())
            total -= 0.5 * EFFECT_PRIOR * float((self.coef_**2 / self.prior_var).sum())
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
        """P(level | row's observed cells), (n, Dk, L), for every categorical column,
        from the class posteriors ``resp`` (the latent-class-only model)."""
        return np.einsum("nk,kdl->ndl", resp, self.cat.probs_)

    def conditional_fills(self, Z: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The continuous block with its gaps at their conditional means (n, Dc) and the
        level probabilities (n, Dk, L), given each row's observed cells (None for an
        absent block)."""
        if self.effects:
            _, fill, probs = self.cg_rows(Z)[:3]
            return fill, probs
        resp = self.posteriors(Z)
        fill = self.fill_continuous(Z, resp) if self.gauss is not None else None
        probs = self.level_probabilities(resp) if self.cat is not None else None
        return fill, probs

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
        class from its posterior, then the gaps given the class (with category effects:
        the class and the categorical gaps jointly, then the continuous gaps)."""
        if self.effects:
            return self._draw_cg(Z, rng)
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

    def _draw_cg(self, Z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _, _, _, comp, xhat, levels = self.cg_rows(Z, rng.random(Z.shape[0]))
        pat, observed = self.patterns
        ccov = pattern_tables(self._table_covariances(), observed)[2]
        out = np.array(Z)
        Dc = self.n_continuous
        noise = rng.standard_normal(xhat.shape)
        for p, obs in enumerate(observed):
            mi = np.flatnonzero(~obs)
            if mi.size == 0:
                continue
            for k in range(self.n_components):
                rows = np.flatnonzero((pat == p) & (comp == k))
                if rows.size:
                    chol = np.linalg.cholesky(ccov[k % ccov.shape[0], p][np.ix_(mi, mi)])
                    xhat[rows[:, None], mi] += noise[rows[:, None], mi] @ chol.T
        out[:, :Dc] = xhat
        out[:, Dc:] = levels
        return out


def _patterns(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's gap pattern of the continuous block (n,) and the patterns' observed
    flags (npat, Dc)."""
    observed, pat = np.unique(~np.isnan(Xc), axis=0, return_inverse=True)
    return np.ascontiguousarray(pat.ravel(), dtype=np.int64), observed
