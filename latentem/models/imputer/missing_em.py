"""The EM model behind the imputer: a Gaussian mixture with gaps as a LatentModel.

:class:`_MissingEM` joins the gap-aware Gaussian family
(:class:`latentem.families.gaussian.GaussianFamily`) and the
categorical latent part into what :func:`latentem.fit_em` fits: its start (the
available-case covariance for one normal on tables with :func:`_many_rows`, k-means++
otherwise), the ridge prior of ``ridge`` in the M-step and ``log_prior``, re-seeding
of emptied components, SQUAREM's parameter vector, online EM's statistics, and what
the estimator fills rows with (``regressions``, ``impute``, ``posteriors``).
:func:`_partial_variances` gives each column's variance given the others under a
fitted model (the centre of ``ridge="auto"``'s prior).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from latentem.families.gaussian import GaussianFamily
from latentem.families.gaussian_gaps import missing_plan
from latentem.families.gaussian_missing import bayesian_ridge_regressions
from latentem.families.gaussian_priors import DiagonalShrinkage
from latentem.kernels.gaussian_missing import available_case_cov
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.latent import CategoricalLatent

#: A table has "many rows" when it has at least MANY_ROWS observed values per
#: column for every column (observed cells >= MANY_ROWS * D^2): its maximum is
#: well determined, so ``ridge="auto"`` skips its search (the best prior is
#: close to none) and one normal starts from the available-case covariance.
MANY_ROWS = 100


def _many_rows(X: np.ndarray) -> bool:
    # the threshold is read from the package (latentem.models.imputer) at call time,
    # so that setting latentem.models.imputer.MANY_ROWS still takes effect
    from latentem.models import imputer

    D = X.shape[1]
    return int(np.count_nonzero(~np.isnan(X))) >= imputer.MANY_ROWS * D * D


_NOT_PD_HINT = (
    "the covariance estimate is not positive definite ({err}). A column may be constant, "
    "an exact linear combination of others, or have too few observed values for "
    "{n_components} component(s), or a mixture component collapsed onto a few rows. Pass "
    "ridge > 0 (a prior worth that many observations that shrinks covariances towards the "
    "diagonal of the observed variances: ridge=1 is enough to stop a component collapsing; "
    "up to 0.01 * n_samples as Amelia's empri for collinear columns), or reg_covar > 0, or "
    "drop the offending columns."
)


class _MissingEM:
    """A Gaussian mixture (K >= 1) with gaps as a :class:`latentem.LatentModel`.

    With ``ridge > 0`` EM maximises the log-likelihood plus the log of a
    prior worth ``ridge`` observations per component, centred on the
    diagonal ``prior_var`` (``Sigma = (n_k Sigma_ML + ridge diag(prior_var)) /
    (n_k + ridge)``). :meth:`log_prior` is what :func:`latentem.fit_em` adds
    to the log-likelihood to get the objective that never decreases.
    """

    def __init__(self, n_components, covariance_type, reg_covar, ridge, prior_var):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.ridge = ridge
        self.prior_var = prior_var
        D = prior_var.shape[0]
        self.family = GaussianFamily(n_components, D, covariance_type, reg_covar)
        self.latent = CategoricalLatent(n_components)

    def attach(self, X: np.ndarray) -> None:
        """Group X's rows by missingness once; the E-step reuses the grouping."""
        self.plan = missing_plan(X)
        self.X_complete = np.ascontiguousarray(X[self.plan.complete])
        self._attached = X

    def _ensure_attached(self, X: np.ndarray) -> None:
        # online EM hands every batch straight to init_params / e_step
        if self.__dict__.get("_attached") is not X:
            self.attach(X)

    def validate_data(self, X: Any) -> np.ndarray:
        """X as float64 rows (NaN marks the gaps); blocks of out-of-core data come here too."""
        X = np.ascontiguousarray(X, dtype=np.float64)  # in-memory tables: X itself
        D = self.prior_var.shape[0]
        if X.ndim != 2 or X.shape[1] != D:
            raise ValueError(f"a block of X has shape {X.shape}; expected (n_rows, {D}).")
        if np.isinf(X).any():
            raise ValueError("a block of X contains inf; replace it with a finite value or NaN.")
        return X

    def __getstate__(self) -> dict:
        # Dask sends the model to the workers every iteration: parameters only,
        # not the rows it was last attached to or the family's per-data caches
        state = {
            k: v for k, v in self.__dict__.items() if k not in ("_attached", "plan", "X_complete")
        }
        family = copy.copy(self.family)
        family._plan_cache = family._tables_cache = None
        state["family"] = family
        return state

    def _layout(self, var: np.ndarray) -> np.ndarray:
        K, ct = self.n_components, self.covariance_type
        if ct == "full":
            return np.tile(np.diag(var), (K, 1, 1))
        if ct == "tied":
            return np.diag(var)
        if ct == "diag":
            return np.tile(var, (K, 1))
        return np.full(K, var.mean())

    def init_params(self, X: np.ndarray, rng: np.random.Generator) -> None:
        self._ensure_attached(X)
        n, D = X.shape
        K = self.n_components
        # one normal on many rows starts from the available-case covariance: close
        # to the maximum, so EM needs about half the iterations. Small tables keep
        # the independent start: EM stopped early from it imputes better there
        # (the available-case start did worse at 50% missing)
        pairwise = K == 1 and self.covariance_type in ("full", "tied") and _many_rows(X)
        if pairwise:
            col_mean, cov, _ = available_case_cov(np.ascontiguousarray(X, dtype=np.float64))
            col_var = np.diag(cov).copy()
        else:
            col_mean = np.nanmean(X, axis=0)
            col_var = np.nanvar(X, axis=0)
        if K == 1:
            W = np.ones((n, 1))
            shift = col_mean[None, :]
        else:  # k-means++ on mean-filled rows, as GaussianMixture's "kmeans++"
            filled = np.where(np.isnan(X), col_mean, X)
            first = int(rng.integers(n))
            uniforms = rng.random((max(K - 1, 0), 2 + int(math.log(K))))
            idx = kmeans_plusplus(filled, K, first, uniforms)
            centers = np.ascontiguousarray(filled[idx], dtype=np.float64)
            centers, labels, _ = lloyd(filled, centers, 0)
            W = np.zeros((n, K))
            W[np.arange(n), labels] = 1.0
            shift = centers
        if pairwise:
            try:
                self._set(shift, cov if self.covariance_type == "tied" else cov[None])
            except ValueError:  # not positive definite: the independent start
                pairwise = False
        if not pairwise:
            self._set(shift, self._layout(np.where(col_var > 0, col_var, 1.0)))
        stats = self.family.accumulate(X, W, self.plan)
        self._m_gauss(stats)
        self.latent = CategoricalLatent(K)
        self.latent.m_step(stats[0])

    def _set(self, means, cov) -> None:
        try:
            self.family.set_parameters(means, cov)
            self.family._precision_parts()  # the factors the E-step needs
        except (ValueError, np.linalg.LinAlgError) as err:
            raise ValueError(
                _NOT_PD_HINT.format(err=str(err).split(";")[0], n_components=self.n_components)
            ) from None

    def _prior(self) -> DiagonalShrinkage:
        """The ridge prior, given to the family (whose M-step applies it); a model file
        holds ``ridge`` and ``prior_var``, so this is made again rather than saved."""
        prior = DiagonalShrinkage(self.ridge, self.prior_var)
        self.family.prior = prior if self.ridge > 0 else None
        return prior

    def _m_gauss(self, stats) -> None:
        self._prior()
        self._set(*self.family.estimate(stats))

    def log_prior(self) -> float:
        """Log density (up to a constant) of the ridge prior at the current covariances."""
        return self._prior().log_prior(self.family)

    def e_step(self, X: np.ndarray) -> tuple[tuple, float]:
        self._ensure_attached(X)
        return self.family.mixture_e_step(X, self.latent.log_weights(), self.plan, self.X_complete)

    def stats_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The point the E-step statistics are taken about (online EM)."""
        return self.family.stats_reference()

    def move_stats(self, stats: tuple, src: tuple, dst: tuple) -> tuple:
        """Statistics re-expressed about another reference point (online EM)."""
        return self.family.move_stats(stats, src, dst)

    def m_step(self, stats: tuple) -> None:
        nk = stats[0]
        self._m_gauss(stats)
        self.latent.m_step(nk)
        self.latent.reseed_empty(nk, self.family)

    def log_likelihood(self, X: np.ndarray) -> float:
        return self.e_step(X)[1]

    def get_param_vector(self) -> np.ndarray:
        """Weights, means and covariances as one vector (for SQUAREM)."""
        fam = self.family
        return np.concatenate(
            [self.latent.weights_, fam.means_.ravel(), np.asarray(fam.covariances_).ravel()]
        )

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set parameters from a vector; False (and no change) if infeasible."""
        fam = self.family
        K, D = self.n_components, fam.n_features
        cov_shape = np.shape(fam.covariances_)
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (K + K * D + int(np.prod(cov_shape)),) or not np.isfinite(theta).all():
            return False
        w = theta[:K]
        if (w < 0).any() or not w.sum() > 0:
            return False
        old = (fam.means_, fam.covariances_)
        try:
            fam.set_parameters(
                theta[K : K + K * D].reshape(K, D), theta[K + K * D :].reshape(cov_shape)
            )
            fam._precision_parts()
        except (ValueError, np.linalg.LinAlgError):
            fam.set_parameters(*old)
            return False
        self.latent.weights_ = w / w.sum()
        return True

    def regressions(self, n_obs: np.ndarray, shrinkage: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each component's per-column Bayesian ridge regressions (K, D, D) and ridges (K, D).

        Component k gets ``weights_[k] * n_obs[j]`` of column j's observed values
        (all of them for a tied covariance, which every row informs).
        """
        fam = self.family
        C = fam.full_covariances()
        w = self.latent.weights_
        if self.covariance_type == "tied":
            w = np.ones_like(w)
        pairs = [
            bayesian_ridge_regressions(C[k], w[k] * n_obs, shrinkage)
            for k in range(self.n_components)
        ]
        return np.stack([b for b, _ in pairs]), np.stack([r for _, r in pairs])

    def impute(self, X: np.ndarray, plan, coef: np.ndarray | None) -> np.ndarray:
        """X with its gaps filled: conditional means, or the regressions ``coef``."""
        return self.family.fill(X, self.posteriors(X, plan), plan, coef)

    def posteriors(self, X: np.ndarray, plan) -> np.ndarray:
        """Component posteriors of each row given its observed entries, shape (n, K)."""
        if self.n_components == 1:
            return np.ones((X.shape[0], 1))
        resp, _ = self.latent.posteriors(self.family.log_prob(X, plan))
        return resp

    def covariance(self) -> np.ndarray:
        """Covariance of the mixture (D, D): within plus between components (the
        estimator's ``covariance_`` and :func:`_partial_variances` both use it)."""
        w, mu = self.latent.weights_, self.family.means_
        C = self.family.full_covariances()
        m = w @ mu
        dev = mu - m
        return np.einsum("k,kij->ij", w, C) + (w[:, None] * dev).T @ dev


def _partial_variances(model: _MissingEM) -> np.ndarray:
    """``1 / diag(Sigma^-1)`` of a fitted model's distribution: each column's variance
    given all the others (its residual variance regressed on them)."""
    return 1.0 / np.diag(np.linalg.inv(model.covariance()))
