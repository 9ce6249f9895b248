"""The imputer's model files: what is saved, and loading the files of earlier releases.

:class:`_ModelFile` is the part of :class:`~latentem.EMImputer` that
:mod:`latentem.persistence` calls (a mixin): ``_to_state`` writes the constructor
parameters, the fitted attributes of ``_SAVED``, the training rows (bootstrap EM
resamples them) and the model's family and latent part; ``_from_state`` rebuilds the
estimator and its :class:`_MissingEM`, and migrates files written before
``shrinkage`` and ``bounds`` existed (they load to fill as that version did).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from latentem.models.imputer.missing_em import _MissingEM

if TYPE_CHECKING:
    from latentem.models.imputer.estimator import EMImputer


class _ModelFile:
    """The imputer's model-file state (a mixin of :class:`EMImputer`)."""

    def _check_loaded(self) -> None:
        """After loading a model file: the mixture's parameters, the column ranges and
        counts, the saved rows and the chosen ridge."""
        from latentem.persistence.checks import _check_imputer

        _check_imputer(self)

    # -- model files (latentem.persistence). The file holds the training rows too:
    # multiple imputation (bootstrap EM) resamples them.
    _SAVED = (
        "ridge_",
        "n_features_in_",
        "n_observed_",
        "data_min_",
        "data_max_",
        "history_",
        "objective_history_",
        "n_iter_",
        "converged_",
        "lower_bound_",
    )

    def _to_state(self) -> dict:
        state = {"params": self.get_params()}
        if "_model" in self.__dict__:
            model = self._model
            state["fitted"] = {
                **{name: getattr(self, name) for name in self._SAVED},
                "X_fit": self._X_fit,
                "prior_var": model.prior_var,
                "family": model.family,
                "latent": model.latent,
            }
            if "feature_names_in_" in self.__dict__:
                state["fitted"]["feature_names_in_"] = [str(c) for c in self.feature_names_in_]
            if "ridge_scores_" in self.__dict__:
                state["fitted"]["ridge_scores_"] = [
                    [float(k), float(v)] for k, v in self.ridge_scores_.items()
                ]
        return state

    @classmethod
    def _from_state(cls, state: dict) -> EMImputer:
        params = dict(state["params"])
        fitted = state.get("fitted")
        if fitted is not None and "n_observed_" not in fitted:
            # written before shrinkage and bounds existed: fill as that version did
            params.update(shrinkage=None, bounds=None)
            rows = fitted["X_fit"]
            if rows is None:  # a stream: the counts and range are unknown
                D = int(fitted["n_features_in_"])
                low, high, n_obs = np.full(D, -np.inf), np.full(D, np.inf), np.zeros(D)
            else:
                rows = np.asarray(rows, dtype=np.float64)
                low, high = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
                n_obs = (~np.isnan(rows)).sum(axis=0)
            fitted = {**fitted, "n_observed_": n_obs, "data_min_": low, "data_max_": high}
        imp = cls(**params)
        if fitted is None:
            return imp
        for name in cls._SAVED:
            setattr(imp, name, fitted[name])
        imp.n_observed_ = np.asarray(imp.n_observed_, dtype=np.int64)
        imp.data_min_ = np.asarray(imp.data_min_, dtype=np.float64)
        imp.data_max_ = np.asarray(imp.data_max_, dtype=np.float64)
        model = _MissingEM(
            int(imp.n_components),
            imp.covariance_type,
            float(imp.reg_covar),
            float(imp.ridge_),
            np.asarray(fitted["prior_var"], dtype=np.float64),
        )
        model.family, model.latent = fitted["family"], fitted["latent"]
        if fitted["X_fit"] is None:  # fitted by partial_fit: no rows kept
            imp._X_fit = None
        else:
            imp._X_fit = np.asarray(fitted["X_fit"], dtype=np.float64)
            model.attach(imp._X_fit)
        imp._model = model
        if "feature_names_in_" in fitted:
            imp.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)
        if "ridge_scores_" in fitted:
            imp.ridge_scores_ = {k: v for k, v in fitted["ridge_scores_"]}
        return imp
