"""The data of a state-space model: what the EM steps receive, what smoothing returns.

:class:`SSMData` holds the rows of all sequences stacked (observations, then
inputs) with where each sequence starts; :class:`SmoothedSSM` is the result
of :meth:`LinearGaussianSSM.smooth`. :class:`_SequenceData` is the part of
:class:`~latentem.models.ssm.model.LinearGaussianSSM` that checks and
stacks the user's ``X``, ``lengths`` and ``inputs`` (and blocks of them on the
chunked and Dask backends); :func:`_check_not_all_constant` refuses data that
leave no noise to estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.runner import is_out_of_core
from latentem.sequences import Sequences, offsets_from_lengths

__all__ = ["SSMData", "SmoothedSSM"]


class SSMData(Sequences):
    """Rows of all sequences stacked (observations, then inputs, as columns) with
    where each sequence starts: what the EM steps receive.

    ``len()`` is the number of time steps, so the runner's ``tol`` is per
    time step. Blocks of whole sequences of it run on the chunked and Dask
    backends as HMM data do.
    """

    def __init__(self, X: np.ndarray, offsets: np.ndarray, labels: Any = None):
        super().__init__(X, np.asarray(offsets, dtype=np.int64))  # no labels: states are
        self._cache: tuple | None = None  # continuous

    def arrays(self, n_outputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Y, U, groups)``: contiguous observations and inputs, and the parallel groups."""
        Y, U = self.columns(n_outputs)
        return Y, U, self.groups

    def columns(self, n_outputs: int) -> tuple[np.ndarray, np.ndarray]:
        """``(Y, U)``: contiguous observations and inputs (no groups: the one-thread
        kernels do not need them, and a short series' fit felt their cost)."""
        if self._cache is None or self._cache[0] != n_outputs:
            X = np.asarray(self.X, dtype=np.float64)
            # fresh writeable copies: one compiled specialisation of the kernel (read-only
            # input, e.g. from pandas, would compile another), and never the user's memory
            Y = np.array(X[:, :n_outputs], order="C", copy=True)
            U = np.array(X[:, n_outputs:], order="C", copy=True)
            self._cache = (n_outputs, Y, U)
        return self._cache[1], self._cache[2]


@dataclass
class SmoothedSSM:
    """What :meth:`LinearGaussianSSM.smooth` returns, one row per time step.

    Attributes
    ----------
    state_means : ndarray (n_samples, n_states)
        E[x_t | all observations of its sequence].
    state_covs : ndarray (n_samples, n_states, n_states)
        Cov[x_t | all observations].
    obs_means : ndarray (n_samples, n_features)
        E[y_t | all observations]: the data where observed, the smoothed value
        of the gap where missing.
    obs_vars : ndarray (n_samples, n_features)
        Var[y_t | all observations]: 0 where observed.
    log_likelihood : float
    """

    state_means: np.ndarray
    state_covs: np.ndarray
    obs_means: np.ndarray
    obs_vars: np.ndarray
    log_likelihood: float


def _check_not_all_constant(X: np.ndarray) -> None:
    """Every column holding one value leaves no noise to estimate: the
    likelihood grows without bound as the covariances shrink to zero."""
    spread = np.fmax.reduce(X, axis=0) - np.fmin.reduce(X, axis=0)  # NaN left out
    if X.shape[0] > 1 and np.all(spread == 0.0):
        raise ValueError(
            "every column of X is constant, so a state-space model has no variation to "
            "explain (its likelihood is unbounded); remove constant columns or pass data "
            "that varies."
        )


class _SequenceData:
    """Checking and stacking the data (part of :class:`LinearGaussianSSM`)."""

    def _sequence_data(self, X: Any, lengths: Any, inputs: Any) -> SSMData:
        if X is None or (hasattr(X, "__len__") and len(X) == 0):
            raise ValueError("X is empty (0 time steps); pass at least one row.")
        if is_out_of_core(X):  # rows are checked block by block during the fit
            if inputs is not None:
                raise ValueError(
                    "inputs with out-of-core X: stack them as the last columns of an SSMData's "
                    "X (see docs/state_space.md), or load X into memory."
                )
            data = SSMData(X, offsets_from_lengths(lengths, len(X)))
            data.p = int(X.shape[1]) if len(X.shape) == 2 else 1
            data.frame = (None, None)
            return data
        index = columns = None
        if hasattr(X, "columns") and hasattr(X, "index"):
            index, columns = X.index, X.columns
        Y = check_array(X, allow_nan=True)
        if Y.dtype != np.float64:
            Y = Y.astype(np.float64)
        offsets = offsets_from_lengths(lengths, len(Y))
        m = self._n_inputs_expected()
        if inputs is None:
            if m:
                raise ValueError(
                    f"the model has {m} inputs (B and D have {m} columns); pass inputs with "
                    f"one row per time step ({len(Y)} rows)."
                )
            U = np.empty((len(Y), 0))
        else:
            U = check_array(inputs, name="inputs").astype(np.float64, copy=False)
            if len(U) != len(Y):
                raise ValueError(
                    f"inputs has {len(U)} rows but X has {len(Y)}; give one row of inputs "
                    "per time step."
                )
            if m is not None and U.shape[1] != m:
                raise ValueError(
                    f"inputs has {U.shape[1]} columns but the model expects {m} (the columns "
                    "of transition_input / observation_input)."
                )
        self._check_gaps(Y, offsets)
        data = SSMData(np.hstack([Y, U]) if U.shape[1] else Y, offsets)
        data.p = Y.shape[1]
        data.frame = (index, columns)
        return data

    @staticmethod
    def _check_gaps(Y: np.ndarray, offsets: np.ndarray) -> None:
        seen = ~np.isnan(Y)
        if seen.all():  # nothing missing (every sequence has a row: lengths are >= 1)
            return
        per_row = seen.any(axis=1).astype(np.int64)
        per_seq = np.add.reduceat(per_row, offsets[:-1]) if len(per_row) else per_row
        empty = np.flatnonzero(per_seq == 0)
        if empty.size:
            raise ValueError(
                f"sequence {int(empty[0])} (and {empty.size - 1} more) is entirely missing; "
                "drop it (it carries no information) or give it at least one observation."
            )
        cols = np.flatnonzero(~seen.any(axis=0))
        if cols.size:
            raise ValueError(
                f"column {int(cols[0])} of X is entirely missing (and {cols.size - 1} more); "
                "nothing can be learnt about it: drop it."
            )

    def _n_inputs_expected(self) -> int | None:
        if "n_inputs_" in self.__dict__:
            return self.n_inputs_
        for name in ("transition_input", "observation_input"):
            value = getattr(self, name)
            if value is not None:
                arr = np.asarray(value, dtype=np.float64)
                return arr.shape[1] if arr.ndim == 2 else None
        return None

    def validate_data(self, data: Any) -> SSMData:
        """Accept an :class:`SSMData` or a plain array (one sequence, no inputs)."""
        if isinstance(data, SSMData):
            return data
        return self._sequence_data(data, None, None)

    def validate_block(self, data: SSMData) -> SSMData:
        """Check one block of whole sequences (chunked and Dask fits)."""
        X = np.asarray(data.X, dtype=np.float64)
        p = self.n_features_in_
        block = self._sequence_data(
            X[:, :p], np.diff(data.offsets), X[:, p:] if X.shape[1] > p else None
        )
        block.weights = data.weights
        return block
