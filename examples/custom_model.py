"""A user-defined latent model: a mixture of Poisson distributions.

Written only against latentem's public protocol (``init_params``,
``e_step``, ``m_step``, ``log_likelihood``), plus the optional
parameter-vector view that turns on SQUAREM acceleration. Run it with
``python examples/custom_model.py``; docs/custom_models.md walks through it.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

import latentem


class PoissonMixture:
    """K Poisson components with mixing weights, fitted by EM."""

    def __init__(self, n_components: int = 2):
        self.n_components = n_components

    # -- the protocol ------------------------------------------------------
    def validate_data(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 1:
            raise ValueError(f"X must be a 1-D array of counts; got shape {X.shape}.")
        if len(X) and (not np.isfinite(X).all() or (X < 0).any() or (X != np.round(X)).any()):
            raise ValueError("X must hold non-negative whole numbers (counts).")
        return X

    def init_params(self, X, rng):
        self.weights = np.full(self.n_components, 1.0 / self.n_components)
        # Spread the starting rates over the data's quantiles, jittered by rng.
        q = np.quantile(X, (np.arange(self.n_components) + 0.5) / self.n_components)
        self.rates = np.maximum(q, 0.1) * rng.uniform(0.8, 1.2, self.n_components)

    def _log_joint(self, X):
        # log w_k + log Poisson(x | rate_k), shape (n, K)
        return (
            np.log(self.weights)
            + X[:, None] * np.log(self.rates)
            - self.rates
            - gammaln(X + 1.0)[:, None]
        )

    def e_step(self, X):
        log_joint = self._log_joint(X)
        log_norm = logsumexp(log_joint, axis=1)
        resp = np.exp(log_joint - log_norm[:, None])
        # Additive statistics: expected counts and expected sums per component.
        return (resp.sum(axis=0), resp.T @ X), float(log_norm.sum())

    def m_step(self, stats):
        counts, sums = stats
        self.weights = counts / counts.sum()
        self.rates = np.maximum(sums, 1e-12) / np.maximum(counts, 1e-300)

    def log_likelihood(self, X):
        return float(logsumexp(self._log_joint(X), axis=1).sum())

    # -- optional extras ---------------------------------------------------
    def get_param_vector(self):
        return np.concatenate([self.weights, self.rates])

    def set_param_vector(self, theta):
        k = self.n_components
        weights, rates = theta[:k], theta[k:]
        if (weights <= 0).any() or (rates <= 0).any():
            return False  # outside the parameter space: SQUAREM falls back to EM
        self.weights, self.rates = weights / weights.sum(), rates.copy()
        return True

    def n_parameters(self):
        return 2 * self.n_components - 1

    def sample(self, n, rng):
        z = rng.choice(self.n_components, size=n, p=self.weights)
        return rng.poisson(self.rates[z]).astype(np.float64), z


def main() -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.poisson(3.0, 4000), rng.poisson(12.0, 2000)]).astype(float)

    model = PoissonMixture(n_components=2)
    plain = latentem.fit_em(model, X, max_iter=1000, tol=1e-10, random_state=1)
    print(f"plain EM:   {plain.n_iter:4d} iterations, log-likelihood {plain.log_likelihood:.4f}")

    fast = latentem.fit_em(model, X, max_iter=1000, tol=1e-10, random_state=1, accelerate="squarem")
    print(f"SQUAREM:    {fast.n_iter:4d} iterations, log-likelihood {fast.log_likelihood:.4f}")
    order = np.argsort(model.rates)
    print("rates  ", np.round(model.rates[order], 3), "(true 3 and 12)")
    print("weights", np.round(model.weights[order], 3), "(true 0.667 and 0.333)")


if __name__ == "__main__":
    main()
