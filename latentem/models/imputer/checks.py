"""The imputer's checks: its settings, ``bounds``, and the tables it is fitted on.

:class:`_SettingsChecks` is a mixin of :class:`~latentem.EMImputer`:
``_check_settings`` checks every constructor argument (at fit, and again when a fill
reads ``shrinkage``), ``_bounds_pair`` turns ``bounds`` into low and high arrays, and
``_check_first_table`` / ``_check_counts`` give clear errors for tables EM cannot
fit (no numeric columns, fewer than two rows, columns entirely missing, observed once
or constant).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from latentem._validation import check_mixture_settings
from latentem.models.imputer.table import _Table

NON_NUMERIC = ("error", "passthrough")


class _SettingsChecks:
    """The imputer's checks (a mixin of :class:`EMImputer`)."""

    def _check_settings(self) -> None:
        check_mixture_settings(self)
        if self.non_numeric not in NON_NUMERIC:
            raise ValueError(f"non_numeric must be one of {NON_NUMERIC}; got {self.non_numeric!r}.")
        for name in ("tol", "ridge", "shrinkage", "reg_covar"):
            v = getattr(self, name)
            if name in ("ridge", "shrinkage") and isinstance(v, str) and v == "auto":
                continue
            if name == "shrinkage" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0:
                extra = {"ridge": ' or "auto"', "shrinkage": ', "auto" or None'}.get(name, "")
                raise ValueError(f"{name} must be a number >= 0{extra}; got {v!r}.")
        self._bounds_pair(None)

    def _bounds_pair(self, D: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        """``bounds`` as (low, high) arrays of D entries (None: unbounded); D=None only checks."""
        b = self.bounds
        if b is None:
            return None
        if isinstance(b, str):
            if b != "observed":
                raise ValueError(f'bounds must be "observed", None or (low, high); got {b!r}.')
            return None if D is None else (self.data_min_, self.data_max_)
        try:
            low, high = (np.asarray(v, dtype=np.float64) for v in b)
            if D is not None:
                low, high = np.broadcast_to(low, (D,)), np.broadcast_to(high, (D,))
        except (TypeError, ValueError):
            n = "a number or one per column" if D is None else f"a number or {D} numbers"
            raise ValueError(
                f'bounds must be "observed", None or (low, high), each {n}; got {b!r}.'
            ) from None
        if np.isnan(low).any() or np.isnan(high).any() or (low > high).any():
            raise ValueError(
                f"bounds {b!r}: low must be <= high and neither NaN (use -inf or inf for no bound)."
            )
        return (low, high)

    def _check_bounds_length(self, D: int) -> None:
        """Bounds given as numbers must fit D columns: an error before fitting changes anything."""
        if not isinstance(self.bounds, str):
            self._bounds_pair(D)

    def _check_first_table(self, table: _Table, what: str) -> np.ndarray:
        """Check the table a model is first fitted on; return the prior variances."""
        A = table.X
        n_obs = (~np.isnan(A)).sum(axis=0)
        with warnings.catch_warnings():  # an all-NaN column gets its own error below
            warnings.simplefilter("ignore", RuntimeWarning)
            prior_var = np.nanvar(A, axis=0) if A.shape[0] else np.zeros(A.shape[1])
        self._check_counts(table, A.shape[0], n_obs, prior_var, what)
        return np.where(prior_var > 0, prior_var, 1.0)

    def _check_counts(self, table, n, n_obs, prior_var, what) -> None:
        """Clear errors for tables EM cannot fit: too few rows or observed values."""
        D = len(n_obs)
        if D == 0:
            raise ValueError(  # scikit-learn's wording first
                f"Found array with 0 feature(s) (shape=({n}, 0)) while a minimum of 1 is "
                f"required: {what} has no numeric columns to impute."
            )
        if n < 2:
            raise ValueError(  # "n_samples=" as scikit-learn words it
                f"{what} has {n} row(s) (n_samples={n}); EM imputation needs at least 2 rows."
            )
        if (n_obs == 0).any():
            raise ValueError(
                f"{table._cols(np.flatnonzero(n_obs == 0))} of {what} is entirely missing; drop "
                "it, or fill it from outside information."
            )
        if (n_obs < 2).any():
            raise ValueError(
                f"{table._cols(np.flatnonzero(n_obs < 2))} of {what} has a single observed "
                "value; its variance cannot be estimated. Drop it or pass ridge > 0."
            )
        if n < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of rows of "
                f"{what} ({n}); use fewer components."
            )
        if (prior_var == 0).any() and (isinstance(self.ridge, str) or not self.ridge > 0):
            raise ValueError(
                f"{table._cols(np.flatnonzero(prior_var == 0))} of {what} is constant where "
                "observed; its covariance would be singular. Drop it (and fill it with its "
                "constant), or pass ridge > 0."
            )
