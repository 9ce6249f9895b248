"""The data of the regime-switching models: validated series and the smoother's results.

:class:`RegimeData` holds a (possibly stacked, panel) series with its
regressors and transition covariates as the E-step reads it (the moment
vectors ``U`` of ``(y_t, x_t, y_{t-1}, x_{t-1}, ...)`` of each row with a
likelihood term); :class:`RegimeResult` the filtered, predicted and smoothed
regime probabilities; :class:`_RegimeInput` the models' methods that check
what a user passes (``y``, ``exog``, ``exog_tvtp``, ``lengths``) and build a
:class:`RegimeData` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem.kernels.regime import moment_pairs

__all__ = ["RegimeData", "RegimeResult"]


# ------------------------------------------------------------------------------- data
class RegimeData:
    """Validated series for a regime-switching model (what ``fit_em`` passes around).

    Built by the models' ``validate_data``; ``len()`` is the number of rows with
    a likelihood term (each sequence loses its first ``order`` rows to lags).
    """

    def __init__(self, y, exog, exog_tvtp, offsets, order, trend):
        self.y = y  # (N,) with NaN for missing
        self.exog = exog  # (N, k_exog)
        self.exog_tvtp = exog_tvtp  # (N, k_tvtp) or None
        self.full_offsets = offsets  # (S + 1,)
        self.order = order
        n_full = len(y)
        x = exog if trend == "n" else np.column_stack([np.ones(n_full), exog])
        self.x = np.ascontiguousarray(x)
        p = order
        lengths = np.diff(offsets)
        starts = offsets[:-1]
        # Effective rows: each sequence from its row p on.
        rows = np.concatenate([np.arange(s + p, s + n) for s, n in zip(starts, lengths)])
        self.rows = rows.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths - p)]).astype(np.int64)
        kx = self.x.shape[1]
        blocks = []
        valid = np.ones(len(rows), dtype=bool)
        for lag in range(p + 1):
            yl = y[rows - lag]
            valid &= ~np.isnan(yl)
            blocks.append(yl[:, None])
            blocks.append(self.x[rows - lag])
        U = np.concatenate(blocks, axis=1) if blocks else np.empty((len(rows), 0))
        U[~valid] = 0.0
        self.U = np.ascontiguousarray(U)
        self.valid = valid
        self.k_x = kx

    def __len__(self) -> int:
        return len(self.rows)

    def ols(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Observed rows, OLS coefficients of y on x, residuals (0 where missing), their sd.

        Made once: every start of a fit splits the same residuals.
        """
        if not hasattr(self, "_ols"):
            y, x = self.y, self.x
            obs = ~np.isnan(y)
            beta0 = np.linalg.lstsq(x[obs], y[obs], rcond=None)[0] if x.shape[1] else np.zeros(0)
            resid = np.where(obs, y - (x @ beta0 if x.shape[1] else 0.0), 0.0)
            self._ols = (obs, beta0, resid, float(np.std(resid[obs])) or 1.0)
        return self._ols

    #: Products of the pairs of columns of ``U`` are kept for at most this many values.
    PAIRS_KEPT = 1 << 22

    @property
    def pairs(self) -> tuple[np.ndarray, np.ndarray] | None:
        """:func:`~latentem.kernels.regime.moment_pairs` of U, made once; None if too large."""
        if not hasattr(self, "_pairs"):
            n, D = self.U.shape
            small = n * D * (D + 1) // 2 <= self.PAIRS_KEPT
            self._pairs = moment_pairs(self.U, self.valid) if small else None
        return self._pairs

    @property
    def tvtp_constant(self) -> int:
        """The first constant column of ``exog_tvtp`` (-1 if none), found once."""
        if not hasattr(self, "_tvtp_constant"):
            z = self.exog_tvtp
            const = np.flatnonzero(z.max(axis=0) == z.min(axis=0)) if z is not None else []
            self._tvtp_constant = int(const[0]) if len(const) else -1
        return self._tvtp_constant

    @property
    def n_sequences(self) -> int:
        return len(self.full_offsets) - 1


@dataclass
class RegimeResult:
    """Filtered, predicted and smoothed regime probabilities of one data set.

    Attributes
    ----------
    llf : float
        Log-likelihood.
    llf_obs : ndarray (n_rows,)
        Log-likelihood contribution of each row (NaN rows contribute 0).
    filtered_marginal_probabilities, predicted_marginal_probabilities,
    smoothed_marginal_probabilities : ndarray (n_rows, k_regimes)
        ``P(S_t | y_1..y_t)``, ``P(S_t | y_1..y_{t-1})`` and ``P(S_t | all y)``,
        for the rows with a likelihood term (each sequence from its row
        ``order`` on).
    filtered_joint_probabilities, predicted_joint_probabilities,
    smoothed_joint_probabilities : ndarray (n_rows,) + (k_regimes,) * (order + 1)
        The same over ``(S_t, S_{t-1}, ..., S_{t-order})``.
    expected_durations : ndarray (k_regimes,) or (n_rows, k_regimes)
        ``1 / (1 - P(S_t = k | S_{t-1} = k))``; per row with time-varying
        transitions.
    """

    llf: float
    llf_obs: np.ndarray
    filtered_marginal_probabilities: np.ndarray
    predicted_marginal_probabilities: np.ndarray
    smoothed_marginal_probabilities: np.ndarray
    filtered_joint_probabilities: np.ndarray
    predicted_joint_probabilities: np.ndarray
    smoothed_joint_probabilities: np.ndarray
    expected_durations: np.ndarray


class _RegimeInput:
    """Checking the user's series and regressors (a mixin of the regime-switching models)."""

    def _make_data(self, y, exog=None, exog_tvtp=None, lengths=None) -> RegimeData:
        self._check_settings()
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise ValueError(
                f"y must be one numeric series (n,) (multivariate y is not supported); got an "
                f"array of shape {y.shape} and dtype {y.dtype}."
            )
        y = np.array(y, dtype=np.float64)  # a copy: the user's array is never touched
        if np.isinf(y).any():
            raise ValueError("y contains inf; replace it with a finite value or NaN (missing).")
        n = len(y)
        if lengths is None:
            lengths = np.array([n])
        lengths = np.asarray(lengths)
        if (
            lengths.ndim != 1
            or not np.issubdtype(lengths.dtype, np.integer)
            or np.any(lengths < 1)
            or lengths.sum() != n
        ):
            raise ValueError(
                f"lengths must be positive integers summing to len(y) = {n}; got {lengths!r}."
            )
        p = self._order
        short = np.flatnonzero(lengths < p + 2)
        if len(short):
            raise ValueError(
                f"sequence {int(short[0])} has {int(lengths[short[0]])} rows; a model of "
                f"order {p} needs at least order + 2 = {p + 2} (order lags and two "
                "observations); drop it or lower order."
            )
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ex = self._regressors(exog, n, "exog")
        zt = None if exog_tvtp is None else self._regressors(exog_tvtp, n, "exog_tvtp")
        if zt is not None and zt.shape[1] == 0:
            zt = None
        data = RegimeData(y, ex, zt, offsets, p, self.trend)
        if data.valid.sum() == 0:
            raise ValueError("y has no observed rows (after the lags); nothing to fit.")
        kx = data.k_x
        cols = list(range(1, 1 + kx)) + [lag * (1 + kx) for lag in range(1, p + 1)]
        design = data.U[data.valid][:, cols]
        if design.shape[1] and np.linalg.matrix_rank(design) < design.shape[1]:
            raise ValueError(
                "the regressor matrix (constant, exog and lags of y) is singular: some column "
                "is a combination of the others (e.g. a constant column in exog with "
                'trend="c"); drop the redundant columns.'
            )
        return data

    @staticmethod
    def _regressors(value, n, name) -> np.ndarray:
        if value is None:
            return np.empty((n, 0))
        if hasattr(value, "to_numpy"):
            value = value.to_numpy()
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}.")
        arr = np.array(arr, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"{name} must have one row per observation of y ({n} rows); got shape {arr.shape}."
            )
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if len(bad):
            raise ValueError(
                f"{name} has NaN or inf in {len(bad)} rows (first: row {int(bad[0])}); "
                "regressors must be complete: impute them or drop those rows."
            )
        return arr

    def validate_data(self, data: Any) -> RegimeData:
        """Accept a :class:`RegimeData` (as built by ``fit``) or a plain series y."""
        if isinstance(data, RegimeData):
            self._setup(data)
            return data
        data = self._make_data(data)
        self._setup(data)
        return data
