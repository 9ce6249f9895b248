"""Time-series imputation with a state-space model: :class:`SSMImputer`.

The imputer standardises the columns of a time-indexed table, fits a
:class:`~latentem.models.ssm.model.LinearGaussianSSM` to it with its gaps,
and fills every missing cell with its smoothed value (optionally with the
smoothed standard deviations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.base import ParamsMixin
from latentem.models.ssm.model import LinearGaussianSSM
from latentem.sequences import offsets_from_lengths

__all__ = ["SSMImputer"]


class SSMImputer(ParamsMixin):
    """Fill the gaps of a time-indexed table with a state-space model's smoothed values.

    Columns are standardised (observed mean and standard deviation), a
    :class:`LinearGaussianSSM` with ``n_states`` states is fitted by EM to
    the table with its gaps, and every missing cell is replaced by its
    smoothed value E[y | all observations]; :meth:`transform` can also
    return the smoothed standard deviations. Rows are time steps in order;
    ``lengths`` splits them into separate series.

    Parameters
    ----------
    n_states : int
    n_iter, tol, n_init, random_state, accelerate
        As for :class:`LinearGaussianSSM`.
    observation_cov_type, transition_cov_type : str
        As for :class:`LinearGaussianSSM`.

    Attributes
    ----------
    model_ : LinearGaussianSSM
        The fitted model (on the standardised table).
    mean_, scale_ : ndarray (n_features,)

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import SSMImputer
    >>> rng = np.random.default_rng(0)
    >>> trend = np.cumsum(rng.normal(size=200))
    >>> X = np.column_stack([trend, 2 * trend]) + rng.normal(0, 0.3, (200, 2))
    >>> X[50:60, 0] = np.nan
    >>> filled = SSMImputer(1, random_state=0, n_iter=200).fit_transform(X)
    >>> bool(np.isnan(filled).any()), bool(np.allclose(filled[:50], X[:50]))
    (False, True)
    """

    def __init__(
        self,
        n_states: int = 1,
        *,
        transition_cov_type: str = "full",
        observation_cov_type: str = "diag",
        n_iter: int = 1000,
        tol: float = 1e-5,
        n_init: int = 1,
        random_state: Any = None,
        accelerate: str | None = "squarem",
    ):
        self.n_states = n_states
        self.transition_cov_type = transition_cov_type
        self.observation_cov_type = observation_cov_type
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.accelerate = accelerate

    def _scaled(self, X: Any) -> tuple[np.ndarray, Any]:
        frame = (X.index, X.columns) if hasattr(X, "columns") and hasattr(X, "index") else None
        arr = check_array(X, allow_nan=True).astype(np.float64)
        return arr, frame

    def fit(self, X: Any, lengths: Any = None) -> SSMImputer:
        """Fit the state-space model to the standardised table."""
        arr, _ = self._scaled(X)
        LinearGaussianSSM._check_gaps(arr, offsets_from_lengths(lengths, len(arr)))
        self.mean_ = np.nanmean(arr, axis=0)
        scale = np.nanstd(arr, axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.model_ = LinearGaussianSSM(
            self.n_states,
            transition_cov_type=self.transition_cov_type,
            observation_cov_type=self.observation_cov_type,
            n_iter=self.n_iter,
            tol=self.tol,
            n_init=self.n_init,
            random_state=self.random_state,
            accelerate=self.accelerate,
        ).fit((arr - self.mean_) / self.scale_, lengths)
        return self

    def transform(self, X: Any, lengths: Any = None, return_std: bool = False) -> Any:
        """X with its gaps filled (and, with ``return_std``, the smoothed standard
        deviations, 0 where observed). A DataFrame comes back as a DataFrame."""
        arr, frame = self._scaled(X)
        out = self.model_.smooth((arr - self.mean_) / self.scale_, lengths)
        filled = out.obs_means * self.scale_ + self.mean_
        filled = np.where(np.isnan(arr), filled, arr)  # observed cells exactly as given
        std = np.sqrt(np.maximum(out.obs_vars, 0.0)) * self.scale_
        if frame is not None:
            import pandas as pd

            filled = pd.DataFrame(filled, index=frame[0], columns=frame[1])
            std = pd.DataFrame(std, index=frame[0], columns=frame[1])
        return (filled, std) if return_std else filled

    def fit_transform(self, X: Any, lengths: Any = None) -> Any:
        """Fit, then fill the gaps of X."""
        return self.fit(X, lengths).transform(X, lengths)
