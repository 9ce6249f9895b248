"""The data of the factor models, checked once per fit.

:class:`_Prepared` holds X with its missingness plan and, for one component
(factor analysis, PPCA), the moments of its complete rows, which no parameter
changes, so an iteration on complete data never visits them again.
:func:`_prepare` builds it; :func:`_check_X` and :func:`_check_real` check
the data and the numeric settings.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.families.gaussian_gaps import MissingPlan, missing_plan

__all__: list[str] = []


@dataclasses.dataclass
class _Prepared:
    """X checked once per fit, with its missingness plan and, for one component,
    the moments of its complete rows (which no parameter changes)."""

    X: np.ndarray
    plan: MissingPlan
    X_complete: np.ndarray | None = None
    complete_moments: tuple[float, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


def _prepare(X: np.ndarray, one_component: bool) -> _Prepared:
    plan = missing_plan(X)
    Xc = X if plan.complete.size == X.shape[0] else np.ascontiguousarray(X[plan.complete])
    prep = _Prepared(X, plan, Xc)
    if one_component and plan.complete.size:
        n = float(Xc.shape[0])
        m = Xc.mean(axis=0)
        d = Xc - m
        Q = d.T @ d
        prep.complete_moments = (n, m, 0.5 * (Q + Q.T))
    return prep


def _check_X(X: Any, min_samples: int = 1) -> np.ndarray:
    """2-D float64, NaN allowed for gaps, no inf, no column entirely missing."""
    X = check_array(X, name="X", allow_nan=True, min_samples=min_samples, one_d_as_column=False)
    X = np.ascontiguousarray(X, dtype=np.float64)
    nan = np.isnan(X)
    if nan.any():
        empty_cols = np.flatnonzero(nan.all(axis=0))
        if empty_cols.size:
            raise ValueError(
                f"column(s) {empty_cols.tolist()} of X are entirely missing (NaN); drop them: "
                "the model cannot learn anything about a column it never sees."
            )
    return X


def _check_real(value: Any, name: str, low: float, *, strict: bool) -> float:
    bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
    if bad or not math.isfinite(value) or (value <= low if strict else value < low):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {low:g}; got {value!r}.")
    return float(value)
