"""What a fitted state-space model gives back: scores, smoothed values, gaps filled, samples.

:class:`_Outputs` is the part of :class:`LinearGaussianSSM` that a user calls
after fitting: the log-likelihood of new data (in total and per sequence),
the RTS smoother's states and observations (:class:`SmoothedSSM`), the data
with its gaps filled, a sampled sequence, and AIC and BIC.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_array, check_positive_int, check_random_state
from latentem.models.ssm.data import SmoothedSSM

__all__: list[str] = []


class _Outputs:
    """Scores, smoothing, imputation and sampling (part of :class:`LinearGaussianSSM`)."""

    def score(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Total log-likelihood of X (all sequences, observed entries)."""
        return self.log_likelihood(self._fitted_data(X, lengths, inputs))

    def score_per_sequence(self, X: Any, lengths: Any = None, inputs: Any = None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,)."""
        return self._run(self._fitted_data(X, lengths, inputs), 0)[1]

    def smooth(self, X: Any, lengths: Any = None, inputs: Any = None) -> SmoothedSSM:
        """Smoothed states and observations (RTS smoother), see :class:`SmoothedSSM`.

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import LinearGaussianSSM
        >>> model = LinearGaussianSSM(
        ...     1, transition_matrix=[[1.0]], observation_matrix=[[1.0]], transition_cov=1.0,
        ...     observation_cov=1.0, initial_mean=[0.0], initial_cov=[[10.0]], fixed=
        ...     ["transition_matrix", "observation_matrix", "transition_cov",
        ...      "observation_cov", "initial_mean", "initial_cov"], n_iter=2,
        ... ).fit([0.0, 1.0, 2.0])
        >>> out = model.smooth([0.0, np.nan, 2.0])
        >>> out.obs_means.ravel().round(3), out.obs_vars.ravel().round(3)
        (array([0.   , 0.977, 2.   ]), array([0.   , 1.977, 0.   ]))
        """
        data = self._fitted_data(X, lengths, inputs)
        total, _, _, (means, covs, ymeans, yvars) = self._run(data, 2)
        return SmoothedSSM(means, covs, ymeans, yvars, total)

    def impute(self, X: Any, lengths: Any = None, inputs: Any = None) -> Any:
        """X with every missing entry replaced by its smoothed value E[y | observations].

        A DataFrame comes back as a DataFrame with the same index and columns;
        X itself is never changed.
        """
        data = self._fitted_data(X, lengths, inputs)
        filled = self._run(data, 2)[3][2]
        index, columns = data.frame
        if columns is not None:
            import pandas as pd

            return pd.DataFrame(filled, index=index, columns=columns)
        return filled

    def sample(
        self, n_samples: int = 1, random_state: Any = None, inputs: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one sequence: ``(Y (n_samples, n_features), states (n_samples, n_states))``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_params()
        if self._diffuse() is not None:
            raise ValueError(
                "the initial state is diffuse (infinite variance), so there is no first "
                "state to draw; set initial_mean_ and a finite initial_cov_ to sample."
            )
        rng = check_random_state(self.random_state if random_state is None else random_state)
        n, p, m = self.n_states, self.n_features_in_, self.n_inputs_
        if inputs is None:
            if m:
                raise ValueError(f"the model has {m} inputs; pass inputs ({n_samples}, {m}).")
            U = np.zeros((n_samples, 0))
        else:
            U = check_array(inputs, name="inputs")
            if U.shape != (n_samples, m):
                raise ValueError(f"inputs must have shape ({n_samples}, {m}); got {U.shape}.")
        states = np.empty((n_samples, n))
        x = rng.multivariate_normal(self.initial_mean_, self.initial_cov_, method="eigh")
        for t in range(n_samples):
            if t > 0:
                x = (
                    self.transition_matrix_ @ x
                    + self.transition_input_ @ U[t]
                    + rng.multivariate_normal(np.zeros(n), self.transition_cov_, method="eigh")
                )
            states[t] = x
        noise = rng.multivariate_normal(np.zeros(p), self.observation_cov_, size=n_samples)
        Y = states @ self.observation_matrix_.T + U @ self.observation_input_.T + noise
        return Y, states

    def aic(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Akaike information criterion (lower is better)."""
        return -2.0 * self.score(X, lengths, inputs) + 2.0 * self.n_parameters()

    def bic(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Bayesian information criterion (lower is better); n is the number of time steps."""
        n = len(self._fitted_data(X, lengths, inputs))
        return -2.0 * self.score(X, lengths, inputs) + self.n_parameters() * np.log(n)
