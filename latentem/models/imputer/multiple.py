"""Multiple imputation by bootstrap EM, as in Amelia (``sample_imputations``).

:class:`_MultipleImputation` is the part of :class:`~latentem.EMImputer` that draws
completed copies (a mixin; the estimator provides the fitted model and its rows):
each copy refits EM on a bootstrap resample of the training rows
(``_bootstrap_model``) and draws every gap from its conditional distribution under
the resampled parameters, drawing again the rows that fall outside ``bounds``
(``_redraw_outside``, at most :data:`MAX_REDRAWS` times, then clipping). Pooling the
analyses of the copies is :mod:`latentem.models.imputer.pooling`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem.families.gaussian_gaps import missing_plan

# one component per row, drawn from the row's posterior probabilities (n, K): the
# mixed-table imputer's helper (this file had a copy of it)
from latentem.models._mixed_em import draw_classes as _draw_components
from latentem.models.imputer.missing_em import _MissingEM
from latentem.runner import ConvergenceWarning, fit_em

#: ``sample_imputations`` with ``bounds``: a row whose draw falls outside is
#: drawn again at most this many times, then clipped (Amelia's ``max.resample``).
MAX_REDRAWS = 100


class _MultipleImputation:
    """The imputer's multiple imputation (a mixin of :class:`EMImputer`)."""

    def sample_imputations(
        self, X: Any, n_imputations: int = 5, *, random_state: Any = None
    ) -> list:
        """Multiple imputation: ``n_imputations`` completed copies of X.

        Each copy comes from bootstrap EM, as in Amelia (Honaker, King and
        Blackwell 2011): the rows the imputer was fitted on are resampled
        with replacement, EM is re-run on the resample (starting from the
        fitted parameters), and every gap of X is drawn from its conditional
        distribution given the row's observed entries under the bootstrap
        parameters (for a mixture, the component is drawn from the row's
        posterior first). The copies therefore carry both the residual
        uncertainty and the uncertainty of the parameters, which is what
        Rubin's rules (:func:`pool_estimates`) need. With ``bounds`` a row
        whose draw falls outside them is drawn again (a draw from the
        truncated distribution), up to 100 times, then clipped, as in
        Amelia. ``shrinkage`` does not apply: the draws come from the fitted
        model's conditional distributions.

        Parameters
        ----------
        X : ndarray or DataFrame with the columns seen in ``fit``
            Usually the data the imputer was fitted on.
        n_imputations : int, default=5
        random_state : None, int or numpy Generator, optional
            Defaults to the estimator's ``random_state``.

        Returns
        -------
        list of ndarray or DataFrame
            Completed copies of X (observed entries unchanged).
        """
        n_imputations = check_positive_int(n_imputations, "n_imputations")
        table = self._read(X)
        A = table.X
        rng = check_random_state(self.random_state if random_state is None else random_state)
        plan = missing_plan(A)
        Xf = self._require_rows("sample_imputations")
        out = []
        for _ in range(n_imputations):
            model = self._bootstrap_model(Xf, rng)
            resp = model.posteriors(A, plan)
            drawn = model.family.draw(A, _draw_components(resp, rng), rng, plan)
            out.append(table.rebuild(self._redraw_outside(drawn, A, resp, model, rng)))
        return out

    def _redraw_outside(self, F, A, resp, model, rng) -> np.ndarray:
        """Draws within ``bounds``: a row with a gap outside is drawn again (its component
        and all its gaps, so the row stays a draw from the truncated distribution), up to
        MAX_REDRAWS times; what is still outside then is clipped (as Amelia does)."""
        bounds = self._bounds_pair(A.shape[1])
        if bounds is None:
            return F
        gaps = np.isnan(A)
        for _ in range(MAX_REDRAWS):
            outside = (gaps & ((F < bounds[0]) | (F > bounds[1]))).any(axis=1)
            if not outside.any():
                break
            comp = _draw_components(resp[outside], rng)
            F[outside] = model.family.draw(A[outside], comp, rng)
        return np.where(gaps, np.clip(F, *bounds), F)

    def _bootstrap_model(self, Xf: np.ndarray, rng: np.random.Generator) -> _MissingEM:
        return bootstrap_em(
            self._model,
            Xf,
            rng,
            max_iter=self.max_iter,
            tol=self.tol,
            families=lambda model: [model.family],
            advice="the data are too few or too degenerate for multiple imputation; pass "
            "ridge > 0.",
        )


def bootstrap_em(
    fitted: Any,
    rows: np.ndarray,
    rng: np.random.Generator,
    *,
    max_iter: int,
    tol: float,
    families: Any,
    advice: str,
) -> Any:
    """A copy of the EM model ``fitted`` refitted, from its parameters, to a bootstrap
    resample of ``rows`` (Amelia's bootstrap EM, for multiple imputation).

    ``families(model)`` lists the model's Gaussian families, whose caches of the
    original rows are dropped. A degenerate resample is drawn again, up to 10 times;
    then a ValueError ending in ``advice``.
    """
    n = rows.shape[0]
    last = None
    for _ in range(10):
        sample = np.ascontiguousarray(rows[rng.integers(n, size=n)])
        model = copy.deepcopy(fitted)
        for family in families(model):
            family._plan_cache = family._tables_cache = None
        model.attach(sample)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fit_em(model, sample, max_iter=max_iter, tol=tol, warm_start=True)
            return model
        except (ValueError, FloatingPointError) as err:  # a degenerate resample
            last = err
    raise ValueError(f"bootstrap EM failed on 10 resamples in a row (last error: {last}); {advice}")
