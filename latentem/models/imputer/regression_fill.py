"""Regression fill: how the imputer fills gaps (``transform``, ``fit_transform``).

:class:`_RegressionFill` is the part of :class:`~latentem.EMImputer` that imputes (a
mixin; the estimator provides the fitted model, reading and checks): each gap is
filled from the row's observed entries with per-column Bayesian ridge regressions
derived from the fitted moments (``shrinkage``; cached for the setting they were made
with, and exposed as ``shrinkage_``) or with the plain conditional means, then
clipped to ``bounds``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.gaussian_gaps import missing_plan
from latentem.models.imputer.missing_em import _MissingEM
from latentem.models.imputer.table import _Table


class _RegressionFill:
    """The imputer's fills (a mixin of :class:`EMImputer`)."""

    @property
    def shrinkage_(self) -> np.ndarray | None:
        """Ridge of every column's regression, (n_components, n_features); None when
        ``shrinkage=None`` (see the class docs)."""
        self._require_fitted()
        return self._fitted_coef()[1]

    def transform(self, X: Any) -> Any:
        """Fill every gap of X from the row's observed entries.

        By default from per-column Bayesian ridge regressions on the fitted
        moments (see ``shrinkage``), clipped to ``bounds`` if given; with
        ``shrinkage=None`` the conditional means. With ``n_components > 1``
        the components' fills are averaged with the row's posterior
        component probabilities. Rows that are entirely missing get the
        fitted mean (clipped to ``bounds``).

        Parameters
        ----------
        X : ndarray or DataFrame with the columns seen in ``fit``

        Returns
        -------
        ndarray or DataFrame
            A new object of the input's type; X itself is not changed.
        """
        table = self._read(X)
        return self._wrap_output(self._fill(table, None), X)

    def _fill(self, table: _Table, plan) -> Any:
        A = table.X
        if not np.isnan(A).any():
            return table.rebuild(A)
        plan = missing_plan(A) if plan is None else plan
        F = self._model.impute(A, plan, self._fitted_coef()[0])
        bounds = self._bounds_pair(A.shape[1])
        if bounds is not None:  # the gaps only: observed entries stay as they are
            F = np.where(np.isnan(A), np.clip(F, *bounds), F)
        return table.rebuild(F)

    def _coef(self, model: _MissingEM, n_obs: np.ndarray) -> tuple:
        """``(coef, ridges)`` of the fill: the shrunk regressions, or None for conditional means."""
        if self.shrinkage is None:
            return None, None
        return model.regressions(n_obs, self.shrinkage)

    def _fitted_coef(self) -> tuple:
        """:meth:`_coef` of the fitted model, cached for the current ``shrinkage``."""
        self._check_settings()  # set_params after fit: a bad value gets its clear error
        cached = self.__dict__.get("_regressions")
        if cached is None or cached[0] != self.shrinkage:
            if self.shrinkage is not None and not self.n_observed_.any():
                raise ValueError(
                    "this imputer was loaded from a model file without its column counts "
                    "(written by an older latentem after partial_fit); use shrinkage=None "
                    "or fit it again."
                )
            self._regressions = (self.shrinkage, *self._coef(self._model, self.n_observed_))
        return self._regressions[1:]

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """``fit(X)`` then ``transform(X)``, reading X and grouping its rows once."""
        table = self._fit_table(X)
        if table is None:  # fitted block by block: the filled table is built in memory
            return self.transform(X)
        return self._wrap_output(self._fill(table, self._model.plan), X)
