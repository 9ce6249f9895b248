"""Forecasting and simulating from a fitted regime-switching model.

:class:`_RegimeForecast`, a mixin of the models: ``forecast`` (predictive
mean, variance and regime probabilities, in closed form or from simulated
paths when the autoregressive coefficients switch) and ``simulate`` (a
series and its regimes drawn from the model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem.models.regime.transitions import _tvtp_matrices

__all__: list[str] = []


class _RegimeForecast:
    """Forecasts and simulation (a mixin of the regime-switching models)."""

    # ------------------------------------------------------------------ forecast
    def forecast(
        self,
        steps: int = 1,
        exog: Any = None,
        exog_tvtp: Any = None,
        method: str = "auto",
        n_paths: int = 20000,
        random_state: Any = None,
    ) -> dict[str, np.ndarray]:
        """Predictive mean, variance and regime probabilities 1..steps ahead of the fitted data.

        ``method="exact"`` (what ``"auto"`` picks when the autoregressive
        coefficients do not switch, and for ``MarkovRegression``): the
        predictive distribution is a mixture over the current regime and the
        last ``order`` regimes, computed in closed form. ``method="simulate"``
        (what ``"auto"`` picks with switching autoregressive coefficients):
        mean and variance from ``n_paths`` simulated paths started from the
        filtered regimes; the regime probabilities stay exact. Uses the last
        sequence of the fitted data.

        Parameters
        ----------
        steps : int
        exog : array-like (steps, k_exog)
            Future exogenous regressors (needed when the model has some).
        exog_tvtp : array-like (steps, k_tvtp)
            Future transition covariates (needed with time-varying transitions).
        method : {"auto", "exact", "simulate"}
        n_paths : int
            Simulated paths for ``method="simulate"``.
        random_state : None, int or Generator
            Seeds the simulated paths.

        Returns
        -------
        dict with ``mean`` (steps,), ``variance`` (steps,) and ``probabilities``
        (steps, k_regimes).
        """
        steps = check_positive_int(steps, "steps")
        data = self._data_for(None, None, None, None)
        K, p = self.k_regimes, self._order
        if method not in ("auto", "exact", "simulate"):
            raise ValueError(f'method must be "auto", "exact" or "simulate"; got {method!r}.')
        switching_ar = bool(p and np.any(self._sw_ar))
        if method == "exact" and switching_ar:
            raise ValueError(
                'method="exact" needs autoregressive coefficients that do not switch '
                '(switching_ar=False); use method="simulate" (or "auto").'
            )
        simulate = method == "simulate" or (method == "auto" and switching_ar)
        fut_x = self._regressors(exog, steps, "exog")
        if fut_x.shape[1] != self.k_exog_:
            raise ValueError(
                f"exog for the forecast needs {self.k_exog_} columns (as in fit); got "
                f"{fut_x.shape[1]}."
            )
        if self.trend == "c":
            fut_x = np.column_stack([np.ones(steps), fut_x])
        if self._tvtp:
            fz = self._regressors(exog_tvtp, steps, "exog_tvtp")
            Ps = _tvtp_matrices(fz, self.tvtp_coef_)
        else:
            Ps = np.repeat(self.transmat_[None], steps, axis=0)
        res = self.smooth()
        last = data.offsets[-1] - 1
        joint = res.filtered_joint_probabilities[last]  # (S_T, ..., S_{T-p})
        joint = joint.sum(axis=-1) if p else joint  # (S_T, ..., S_{T-p+1})
        rows = data.full_offsets[-1] - 1 - np.arange(p)  # full rows T, T-1, ..., T-p+1
        if p and np.isnan(data.y[rows]).any():
            raise ValueError("the last order values of y are missing; cannot forecast.")
        phi = self.ar_coef_[0] if p else np.zeros(0)
        beta = self.coef_
        # Deviations z_{T-i} = y_{T-i} - x_{T-i}' beta_{S_{T-i}} on the axes of ``joint``.
        past_dev = np.zeros((p,) + (K,) * p)
        for i in range(p):
            dev = data.y[rows[i]] - data.x[rows[i]] @ beta.T  # (K,)
            shape = [1] * p
            shape[i] = K
            past_dev[i] = np.broadcast_to(dev.reshape(shape), (K,) * p)
        comp = np.zeros((p, p))
        if p:
            comp[0] = phi
            comp[1:, :-1] = np.eye(p - 1)
        # MA weights of the future errors: theta_0 = 1, theta_m = sum_i phi_i theta_{m-i}.
        theta = np.zeros(steps)
        theta[0] = 1.0
        for m in range(1, steps):
            theta[m] = sum(phi[i - 1] * theta[m - i] for i in range(1, min(m, p) + 1))
        mean = np.empty(steps)
        var = np.empty(steps)
        probs = np.empty((steps, K))
        marg = joint.sum(axis=tuple(range(1, p))) if p > 1 else joint  # P(S_T | y)
        if simulate:
            probs_, mean, var = self._forecast_paths(
                joint, past_dev, fut_x, Ps, check_positive_int(n_paths, "n_paths"), random_state
            )
            Pprod = np.eye(K)
            for h in range(steps):
                Pprod = Pprod @ Ps[h]
                probs[h] = marg @ Pprod
            return {"mean": mean, "variance": var, "probabilities": probs}
        Pprod = np.eye(K)
        power = np.eye(p)
        s2_marg = np.empty(steps)
        for h in range(steps):
            Pprod = Pprod @ Ps[h]  # S_T -> S_{T+h+1}
            probs[h] = marg @ Pprod
            s2_marg[h] = probs[h] @ self.sigma2_
            cond = fut_x[h] @ beta.T  # (K,): x' beta of S_{T+h+1}
            if p:
                power = power @ comp
                ar_part = np.tensordot(power[0], past_dev, axes=(0, 0))  # (K,) * p
                cur = np.einsum("kj,k...->jk...", Pprod, joint)
                cmean = cond.reshape((K,) + (1,) * p) + ar_part[None]
            else:
                cur, cmean = probs[h], cond
            mean[h] = float(np.sum(cur * cmean))
            noise = float(np.sum(theta[: h + 1] ** 2 * s2_marg[h::-1]))
            var[h] = float(np.sum(cur * cmean**2) - mean[h] ** 2 + noise)
        return {"mean": mean, "variance": var, "probabilities": probs}

    def _forecast_paths(self, joint, past_dev, fut_x, Ps, n_paths, random_state):
        """Simulated forecast paths from the filtered joint of the last ``order`` regimes."""
        rng = check_random_state(random_state)
        K, p = self.k_regimes, self._order
        steps = len(fut_x)
        flat = np.asarray(joint, dtype=float).reshape(-1)
        idx = rng.choice(len(flat), size=n_paths, p=flat / flat.sum())
        # Regimes and deviations z_{T-i} (i = 0..p-1) of each path.
        past = np.stack(np.unravel_index(idx, (K,) * p), axis=1) if p else np.zeros((n_paths, 0))
        past = past.astype(np.int64)
        if p:
            z = np.stack(
                [past_dev[i].reshape(-1)[idx] for i in range(p)], axis=1
            )  # (paths, p): z_T, z_{T-1}, ...
            cur = past[:, 0]
        else:
            z = np.zeros((n_paths, 0))
            cur = rng.choice(K, size=n_paths, p=np.asarray(joint, dtype=float))
        ys = np.empty((steps, n_paths))
        for h in range(steps):
            u = rng.uniform(size=n_paths)
            cdf = np.cumsum(Ps[h][cur], axis=1)
            cur = np.minimum((u[:, None] > cdf).sum(axis=1), K - 1)
            e = rng.normal(size=n_paths) * np.sqrt(self.sigma2_[cur])
            dev = e
            if p:
                dev = e + np.sum(self.ar_coef_[cur] * z, axis=1)
                z = np.column_stack([dev, z[:, :-1]])
            ys[h] = self.coef_[cur] @ fut_x[h] + dev
        return None, ys.mean(axis=1), ys.var(axis=1)

    def simulate(
        self,
        n_samples: int,
        exog: Any = None,
        exog_tvtp: Any = None,
        random_state: Any = None,
        burn: int = 100,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw a series and its regimes from the model.

        The regimes start from the initial distribution; an autoregression
        starts from zero deviations and runs ``burn`` steps first (without
        exogenous regressors only: with them, their first ``order`` rows are
        lags and the series starts there).

        Returns
        -------
        y : ndarray (n_samples,)
        regimes : ndarray (n_samples,)
        """
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(random_state)
        K, p = self.k_regimes, self._order
        x = self._regressors(exog, n, "exog")
        k_exog = np.shape(self.coef_)[1] - (self.trend == "c")
        if x.shape[1] != k_exog:
            raise ValueError(f"exog needs {k_exog} columns (as coef_ has); got {x.shape[1]}.")
        if self.trend == "c":
            x = np.column_stack([np.ones(n), x])
        if self._tvtp:
            z = self._regressors(exog_tvtp, n, "exog_tvtp")
            Ps = _tvtp_matrices(z, self.tvtp_coef_)
            burn = 0
        else:
            Ps = np.repeat(self.transmat_[None], n, axis=0)
        if exog is not None:
            burn = 0
        total = n + burn
        xs = np.concatenate([np.repeat(x[:1], burn, axis=0), x]) if burn else x
        Pall = np.concatenate([np.repeat(Ps[:1], burn, axis=0), Ps]) if burn else Ps
        S = np.empty(total, dtype=np.int64)
        S[0] = rng.choice(K, p=self._start_vector(Pall[0]))
        for t in range(1, total):
            S[t] = rng.choice(K, p=Pall[t, S[t - 1]])
        mu = np.einsum("tc,tc->t", xs, self.coef_[S])
        e = rng.normal(size=total) * np.sqrt(self.sigma2_[S])
        dev = np.zeros(total)
        for t in range(total):
            acc = e[t]
            for i in range(1, min(p, t) + 1):
                acc += self.ar_coef_[S[t], i - 1] * dev[t - i]
            dev[t] = acc
        y = mu + dev
        return y[burn:], S[burn:]
