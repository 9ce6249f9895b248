"""``ridge="auto"``: choosing the imputer's ridge prior on held-out observed cells.

:class:`_RidgeSearch` is the part of :class:`~latentem.EMImputer` that searches (a
mixin; the estimator provides ``_fit_model`` and ``_coef``): ``_choose_ridge`` holds
out a tenth of the observed cells and scores the ridges of :data:`AUTO_RIDGE_GRID`
(fractions of the rows) by how well each fit imputes them, skipping the search on
tables with many rows; ``_fit_auto`` fits the chosen ridge with its prior centred on
the partial variances of a maximum-likelihood pilot fit.
"""

from __future__ import annotations

import warnings

import numpy as np

from latentem.models.imputer.missing_em import _many_rows, _partial_variances
from latentem.runner import ConvergenceWarning

#: ``ridge="auto"``: candidate ridges as fractions of the number of rows (the
#: prior is centred on the partial variances, see ``EMImputer._fit_auto``), and
#: the fraction of observed cells held out to compare them; AUTO_FALLBACK *
#: n_samples is used (centred on the variances) when no candidate can be fitted.
AUTO_RIDGE_GRID = (0.0, 0.03, 0.1, 0.2, 0.4)
AUTO_HOLDOUT = 0.1
AUTO_FALLBACK = 0.01
AUTO_HOLDOUT_SEED = 0x1A7E4E  # held-out cells when random_state is None


class _RidgeSearch:
    """The imputer's ``ridge="auto"`` search (a mixin of :class:`EMImputer`)."""

    def _fit_auto(self, A, ridge, prior_var, rng, verbose=None):
        """Fit with ``ridge="auto"``'s prior: worth ``ridge`` rows, centred on the partial
        variances of a maximum-likelihood pilot fit (the pilot itself when ``ridge`` is 0).

        Shrinking towards the partial variances ``1 / diag(Sigma^-1)`` rather than the
        variances keeps the correlations of columns that the others predict well and
        shrinks those of poorly predicted ones, much as BayesianRidge tunes its penalty
        per column. Without a pilot (collinear or too few rows) the prior is centred on
        the variances.
        """
        try:
            with warnings.catch_warnings():
                if ridge > 0:  # only the final fit's convergence is the user's concern
                    warnings.simplefilter("ignore", ConvergenceWarning)
                pilot = self._fit_model(A, 0.0, prior_var, rng, verbose)
        except (ValueError, FloatingPointError):
            fallback = ridge if ridge > 0 else AUTO_FALLBACK * A.shape[0]
            return (*self._fit_model(A, fallback, prior_var, rng, verbose), fallback)
        if ridge == 0:
            return (*pilot, 0.0)
        return (*self._fit_model(A, ridge, _partial_variances(pilot[0]), rng, verbose), ridge)

    def _choose_ridge(self, A, prior_var, rng) -> tuple[float, dict]:
        """``ridge="auto"``: the grid value that best imputes held-out observed cells."""
        n, D = A.shape
        obs = ~np.isnan(A)
        scores = {}
        # many rows per column: the prior's best strength is close to 0, and the
        # search would cost six fits where one is enough
        if _many_rows(A):
            return 0.0, scores
        # a child stream: a user who hid cells with the same seed must not get them back.
        # Without a random_state the same cells are held out every time, so that one
        # normal (which needs no randomness) imputes a table the same way every time.
        seed = AUTO_HOLDOUT_SEED if self.random_state is None else rng.integers(2**63)
        hold_rng = np.random.default_rng(seed)
        held = obs & (hold_rng.integers(round(1 / AUTO_HOLDOUT), size=A.shape) == 0)
        # every row keeps an observed cell, every column two
        # (rows with nothing observed have nothing to hold out)
        all_held = (held.sum(axis=1) == obs.sum(axis=1)) & obs.any(axis=1)
        for i in np.flatnonzero(all_held):
            held[i, np.flatnonzero(held[i])[0]] = False
        for j in np.flatnonzero(obs.sum(axis=0) - held.sum(axis=0) < 2):
            held[:, j] = False
        n_held = int(held.sum())
        if n_held < 10:
            return 0.0, scores
        Xcv = A.copy()
        Xcv[held] = np.nan
        n_obs_cv = (obs & ~held).sum(axis=0)
        sd = np.sqrt(prior_var)
        sq = dict.fromkeys([frac * n for frac in AUTO_RIDGE_GRID], 0.0)
        target = prior_var
        for lam in sq:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model, _ = self._fit_model(Xcv, lam, target, rng, verbose=0)
                if lam == 0:  # the grid starts at 0: its fit is the others' pilot
                    target = _partial_variances(model)
                F = model.impute(Xcv, model.plan, self._coef(model, n_obs_cv)[0])
                sq[lam] = float(np.sum((((F - A) / sd)[held]) ** 2))
            except (ValueError, FloatingPointError):
                sq[lam] = np.inf
        scores = {lam: v / n_held for lam, v in sq.items()}
        # ridge 0 is scored but not chosen: the held-out cells are few, a prior of a
        # few percent of the rows never cost much on the benchmark tables, while no
        # prior, picked by the luck of the draw, cost up to 10% (star98 at 10% missing)
        best = min((lam for lam in scores if lam > 0), key=lambda lam: (scores[lam], lam))
        return (float(best) if np.isfinite(scores[best]) else AUTO_FALLBACK * n), scores
