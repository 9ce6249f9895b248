"""Online EM for the imputer: ``partial_fit`` on a stream of row batches.

:class:`_OnlineFit` is the part of :class:`~latentem.EMImputer` that fits batch by
batch with :class:`latentem.backends.online.OnlineEM` (Cappe and Moulines 2009), a
mixin: the first batch starts the model (or an earlier ``fit`` does), every batch
updates the running statistics, the column counts and ranges; no rows are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from latentem._validation import check_random_state
from latentem.models.imputer.missing_em import _MissingEM
from latentem.models.imputer.table import _Table

if TYPE_CHECKING:
    from latentem.models.imputer.estimator import EMImputer


class _OnlineFit:
    """The imputer's online EM (a mixin of :class:`EMImputer`)."""

    def partial_fit(
        self, X: Any, y: Any = None, *, decay: float = 0.6, offset: float = 1.0
    ) -> EMImputer:
        """Online EM on one batch of a stream of rows (Cappé and Moulines, 2009).

        For tables too large for memory or read once: feed the rows batch by
        batch, then impute any batch with :meth:`transform`. The first call
        initialises the model from its batch (which must have at least two
        observed values in every column), or continues from the parameters of
        an earlier :meth:`fit`; each call then updates a running average of
        the per-row statistics, the conditional covariances of the gaps
        included, with step size ``gamma_t = ((1 + offset) / (t + offset)) **
        decay`` (see :mod:`latentem.backends.online`), and takes an M-step.
        ``decay`` and ``offset`` are read on the first call; ``fit`` starts
        afresh.

        A stream keeps no rows, so :meth:`sample_imputations` (bootstrap EM
        resamples the training rows) and ``fraction_missing_info_`` need a
        model fitted by :meth:`fit`. ``ridge="auto"`` needs the whole table
        too; pass a number. ``history_`` is empty: ``lower_bound_`` is the
        running average of each batch's per-row log-likelihood, evaluated
        before the batch updated the parameters.

        Parameters
        ----------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            One batch; later batches need the same numeric columns.
        y : ignored
        decay : float in (0.5, 1], default=0.6
        offset : float >= 0, default=1.0

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import EMImputer
        >>> rng = np.random.default_rng(1)
        >>> imp = EMImputer()
        >>> for _ in range(50):
        ...     X = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], size=200)
        ...     X[rng.random(200) < 0.3, 1] = np.nan
        ...     imp = imp.partial_fit(X)
        >>> np.round(imp.covariance_, 1)
        array([[1. , 0.8],
               [0.8, 1. ]])
        """
        from latentem.runner import OnlineEM

        online = self.__dict__.get("_online")
        if online is None:
            self._check_settings()
            if isinstance(self.ridge, str):
                raise ValueError(
                    'ridge="auto" chooses the ridge on held-out cells of the whole table, which '
                    "partial_fit never sees; pass a number (for example 0.01 * the rows you "
                    "expect) or use fit()."
                )
            warm = "_model" in self.__dict__
            table = self._read(X) if warm else _Table(X, self.non_numeric)
            if not warm:
                D = table.X.shape[1]
                self.n_observed_ = np.zeros(D, dtype=np.int64)
                self.data_min_, self.data_max_ = np.full(D, np.inf), np.full(D, -np.inf)
            if warm:
                model = self._model
            else:
                prior_var = self._check_first_table(table, "the first batch")
                model = _MissingEM(
                    int(self.n_components),
                    self.covariance_type,
                    float(self.reg_covar),
                    float(self.ridge),
                    prior_var,
                )
            online = OnlineEM(
                model,
                decay=decay,
                offset=offset,
                random_state=check_random_state(self.random_state),
                warm_start=warm,
            )
        else:
            table = self._read(X)
        online.partial_fit(table.X)  # covariance errors already carry the hint (_MissingEM._set)
        self.n_observed_ = self.n_observed_ + (~np.isnan(table.X)).sum(axis=0)
        self.data_min_ = np.fmin(self.data_min_, np.nanmin(table.X, axis=0, initial=np.inf))
        self.data_max_ = np.fmax(self.data_max_, np.nanmax(table.X, axis=0, initial=-np.inf))
        self._online = online
        self._model = online.model
        self._X_fit = None
        self.ridge_ = float(online.model.ridge)
        self._set_feature_names(table)
        self.history_ = self.objective_history_ = np.empty(0)
        self.n_iter_ = online.n_batches_
        self.converged_ = False
        self.lower_bound_ = online.log_likelihood_
        self.__dict__.pop("_fmi", None)
        self.__dict__.pop("_regressions", None)
        return self
