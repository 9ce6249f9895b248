"""hmmlearn's HMM estimators: Gaussian, Gaussian-mixture, categorical and Poisson
emissions under one Markov chain (:class:`HMM`, in :mod:`latentem.models.hmm_base`).

Names, parameters and attributes follow hmmlearn (``startprob_``,
``transmat_``, ``fit(X, lengths)``, ``params``, ``init_params``,
``implementation``, ``monitor_``), so hmmlearn code runs; see
docs/migrating_hmmlearn.md for what differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_positive_int
from latentem.families.categorical import CategoricalFamily
from latentem.families.poisson import PoissonFamily
from latentem.kernels._dispatch import SERIAL_SIZE
from latentem.kernels.hmm import _use_lanes, forward_loglik_scaled
from latentem.kernels.hmm_diag_gaussian_lanes import (
    diag_columns,
    diag_gaussian_loglik_lanes,
    diag_gaussian_viterbi_lanes,
)
from latentem.models.hmm_base import (
    ALL_PARAMS,
    HMM,
    SequenceData,
    _register_hmm,
)
from latentem.models.hmm_monitor import ConvergenceMonitor

__all__ = [
    "GMMHMM",
    "HMM",
    "ALL_PARAMS",
    "CategoricalHMM",
    "ConvergenceMonitor",
    "GaussianHMM",
    "PoissonHMM",
    "SequenceData",
]

#: The settings every HMM class passes on to :class:`HMM` unchanged.
_CHAIN_SETTINGS = (
    "startprob_prior",
    "transmat_prior",
    "initial",
    "algorithm",
    "random_state",
    "n_iter",
    "tol",
    "verbose",
    "params",
    "init_params",
    "n_init",
    "accelerate",
    "implementation",
)


def _chain_settings(values: dict) -> dict:
    """The chain settings out of a subclass's ``locals()``, for ``HMM.__init__``."""
    return {name: values[name] for name in _CHAIN_SETTINGS}


def _family_property(name: str, doc: str) -> property:
    def getter(self):
        return getattr(self.emission, name)

    def setter(self, value):
        setattr(self.emission, name, value)

    return property(getter, setter, doc=doc)


@_register_hmm
class CategoricalHMM(HMM):
    """HMM with categorical (discrete symbol) emissions, as hmmlearn's ``CategoricalHMM``.

    X holds one symbol per row (integers 0 .. n_features - 1, shape (n, 1));
    -1 or NaN marks a missing observation. Parameter letters: ``s``, ``t``,
    ``e`` (emission probabilities).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import CategoricalHMM
    >>> model = CategoricalHMM(2, n_iter=50, random_state=1)
    >>> X = np.array([[0], [0], [0], [1], [2], [2], [2], [1], [0], [0]] * 30)
    >>> model.fit(X).emissionprob_.shape
    (2, 3)
    """

    emissionprob_ = _family_property(
        "emissionprob_", "(n_components, n_features) symbol probabilities"
    )

    def __init__(
        self,
        n_components: int = 1,
        *,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        initial: Any = "free",
        emissionprob_prior: float | np.ndarray = 1.0,
        n_features: int | None = None,
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "ste",
        init_params: str = "ste",
        n_init: int = 1,
        accelerate: str | None = None,
        implementation: str = "log",
    ):
        super().__init__(
            n_components,
            CategoricalFamily(n_components, n_features, emissionprob_prior),
            **_chain_settings(locals()),
        )
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    def _family(self):
        family = self.emission
        family.n_components = self.n_components
        family.emissionprob_prior = self.emissionprob_prior
        if self.n_features is not None:
            family.n_features = self.n_features
        return family

    def _record_fit(self, result: Any, monitor: Any) -> None:
        # hmmlearn sets n_features from the data when it was not given
        self.n_features = self.emission.n_features
        super()._record_fit(result, monitor)


@_register_hmm
class PoissonHMM(HMM):
    """HMM with independent Poisson emissions per feature, as hmmlearn's ``PoissonHMM``.

    NaN marks a missing count. Parameter letters: ``s``, ``t``, ``l`` (rates).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import PoissonHMM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.poisson(np.repeat([1.0, 8.0, 1.0, 8.0], 200)).reshape(-1, 1)
    >>> model = PoissonHMM(2, n_iter=100, random_state=0).fit(X)
    >>> np.round(np.sort(model.lambdas_.ravel()))
    array([1., 8.])
    """

    lambdas_ = _family_property("lambdas_", "(n_components, n_features) Poisson rates")

    def __init__(
        self,
        n_components: int = 1,
        *,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        initial: Any = "free",
        lambdas_prior: float = 0.0,
        lambdas_weight: float = 0.0,
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "stl",
        init_params: str = "stl",
        n_init: int = 1,
        accelerate: str | None = None,
        implementation: str = "log",
    ):
        super().__init__(
            n_components,
            PoissonFamily(n_components, lambdas_prior, lambdas_weight),
            **_chain_settings(locals()),
        )
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    def _family(self):
        family = self.emission
        family.n_components = self.n_components
        family.lambdas_prior = self.lambdas_prior
        family.lambdas_weight = self.lambdas_weight
        return family


@_register_hmm
class GaussianHMM(HMM):
    """HMM with Gaussian emissions, as hmmlearn's ``GaussianHMM``.

    Parameter letters: ``s``, ``t``, ``m`` (means), ``c`` (covariances).
    Missing observations: a row of NaN adds no emission term; a row with
    some NaN entries is scored on its observed entries and its gaps are
    filled in expectation in the M-step.

    Parameters
    ----------
    covariance_type : {"spherical", "diag", "full", "tied"}
    min_covar : float
        Added to the diagonal of the data covariance used to initialise
        ``covars_``.
    means_prior, means_weight, covars_prior, covars_weight
        hmmlearn's MAP priors on the means and covariances (same defaults,
        same update), so fits match hmmlearn's.

    Attributes
    ----------
    means_ : ndarray (n_components, n_features)
    covars_ : ndarray (n_components, n_features, n_features)
        Full covariance matrices whatever the type, as hmmlearn returns them;
        set it in the compact layout of ``covariance_type``.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianHMM
    >>> rng = np.random.default_rng(0)
    >>> states = np.repeat([0, 1, 0, 1], 300)
    >>> X = rng.normal(np.where(states == 0, -2.0, 2.0), 1.0)[:, None]
    >>> model = GaussianHMM(2, n_iter=50, random_state=0).fit(X)
    >>> np.round(np.sort(model.means_.ravel()), 1)
    array([-2.,  2.])
    >>> bool((model.predict(X) == model.predict(X)[0]).sum() in (600, 600))
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        covariance_type: str = "diag",
        min_covar: float = 1e-3,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        initial: Any = "free",
        means_prior: Any = 0.0,
        means_weight: Any = 0.0,
        covars_prior: Any = 1e-2,
        covars_weight: Any = 1.0,
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "stmc",
        init_params: str = "stmc",
        n_init: int = 1,
        accelerate: str | None = None,
        implementation: str = "log",
    ):
        from latentem.families.gaussian_hmm import GaussianEmission

        try:
            emission = GaussianEmission(n_components, covariance_type)
        except (TypeError, ValueError):
            # __init__ only stores settings (scikit-learn's rule): fit reports the bad
            # one, when _family() hands the settings to this stand-in
            emission = GaussianEmission(1)
        super().__init__(n_components, emission, **_chain_settings(locals()))
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    def _family(self):
        fam = self.emission
        if fam.covariance_type != self.covariance_type:  # else checked when it was set
            from latentem.families.gaussian import COVARIANCE_TYPES

            if self.covariance_type not in COVARIANCE_TYPES:
                raise ValueError(
                    f"covariance_type must be one of {COVARIANCE_TYPES}; "
                    f"got {self.covariance_type!r}."
                )
            fam.covariance_type = self.covariance_type
            fam.covariances_ = None  # the old layout no longer applies
        fam.n_components = self.n_components
        fam.min_covar = self.min_covar
        fam.means_prior = self.means_prior
        fam.means_weight = self.means_weight
        fam.covars_prior = self.covars_prior
        fam.covars_weight = self.covars_weight
        return fam

    means_ = _family_property("means_", "(n_components, n_features) state means")

    def _fused_kernels(self, data: SequenceData) -> tuple | None:
        """The diagonal Gaussian kernels with the emissions inside the recursions
        (:mod:`latentem.kernels.hmm_diag_gaussian_lanes`), for inputs where they pay:
        many short sequences (the many-sequence kernels' rule), large enough to run
        compiled yet small enough for one thread, complete, without labels."""
        fam = self.emission
        n, K = data.X.shape[0], self.n_components
        if (
            data.labels is not None
            or fam.smode != 2  # diagonal or spherical
            or forward_loglik_scaled.runs_numpy(n)  # small: NumPy, nothing compiled
            or n * K >= SERIAL_SIZE  # large: the unfused kernels' threads pay
            or type(data.X) is not np.ndarray  # (a memmap is read block by block)
            or data.X.dtype != np.float64
            or not data.X.flags.c_contiguous
            or not self._lengths_fact(data, "lanes", _use_lanes)
            or self._plan_kwargs(fam, data)["plan"].complete.size != n
        ):
            return None
        prec, logc = kernel = fam._kernel_params()
        # kept with the family, next to the factors they come from (scoring leaves the
        # estimator's own attributes alone); the parameters' arrays are replaced, never
        # changed, once checked
        kept = fam.__dict__.get("_fused_cols")
        if kept is None or kept[0] is not kernel or kept[1] is not fam.means_:
            cols = diag_columns(fam.means_, prec[:, 0, :], logc)
            kept = fam.__dict__["_fused_cols"] = (kernel, fam.means_, cols)
        return kept[2], diag_gaussian_loglik_lanes, diag_gaussian_viterbi_lanes

    @property
    def covars_(self) -> np.ndarray:
        """Covariance matrices of the states, (n_components, n_features, n_features)."""
        fam = self.emission
        fam.check_params()
        return fam.full_covariances()

    @covars_.setter
    def covars_(self, value) -> None:
        cov = np.array(value, dtype=np.float64)
        if self.covariance_type == "spherical" and cov.ndim > 1 and cov.size == len(cov):
            cov = cov.reshape(-1)  # hmmlearn takes (n_components, 1) and the like too
        self._family().covariances_ = cov  # in the layout of the current covariance_type

    @property
    def n_features(self) -> int | None:
        """Number of features: set by fit from X, or by hand (as in hmmlearn)."""
        return self.emission.n_features

    @n_features.setter
    def n_features(self, value: int | None) -> None:
        if value is not None:
            value = check_positive_int(value, "n_features")
        self.emission.n_features = value


@_register_hmm
class GMMHMM(HMM):
    """HMM whose states emit from Gaussian mixtures, as hmmlearn's ``GMMHMM``.

    Parameter letters: ``s``, ``t``, ``w`` (mixture weights), ``m`` (means),
    ``c`` (covariances). The emission M-step is MAP with a prior of scale
    ``min_covar`` on every covariance (it adds ``min_covar / n`` to the
    diagonal of a component with posterior mass ``n``; see
    :class:`~latentem.families.gaussian_mixture_emission.GaussianMixtureEmission`),
    and ``log_prior()`` counts it, so the fit never lowers the objective.
    hmmlearn's GMMHMM uses its own priors instead, so fitted values differ
    slightly from its. The initial means come, as in hmmlearn, from k-means
    for the states and then for the components within each state's rows;
    they depend on the rows of X, not on their order or on how they are
    split into sequences.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GMMHMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-5, 1, (300, 1)), rng.normal(5, 1, (300, 1))])
    >>> model = GMMHMM(2, n_mix=2, n_iter=20, random_state=0).fit(X)
    >>> model.means_.shape, model.weights_.shape
    ((2, 2, 1), (2, 2))
    """

    def __init__(
        self,
        n_components: int = 1,
        n_mix: int = 1,
        min_covar: float = 1e-3,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        initial: Any = "free",
        weights_prior: float = 1.0,
        covariance_type: str = "diag",
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = "stmcw",
        init_params: str = "stmcw",
        n_init: int = 1,
        accelerate: str | None = None,
        implementation: str = "log",
    ):
        from latentem.families.gaussian_mixture_emission import GaussianMixtureEmission

        super().__init__(
            n_components,
            GaussianMixtureEmission(n_components, n_mix, covariance_type, min_covar),
            **_chain_settings(locals()),
        )
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.covariance_type = covariance_type

    def _family(self):
        fam = self.emission
        if (fam.covariance_type, fam.n_mix) != (self.covariance_type, self.n_mix):
            fam.covars_ = None  # the old layout no longer applies
        fam.n_components = self.n_components
        fam.n_mix = check_positive_int(self.n_mix, "n_mix")
        fam.covariance_type = self.covariance_type
        fam.min_covar = self.min_covar
        fam.weights_prior = self.weights_prior
        return fam

    weights_ = _family_property("weights_", "(n_components, n_mix) mixture weights")
    means_ = _family_property("means_", "(n_components, n_mix, n_features) means")
    covars_ = _family_property("covars_", "covariances, hmmlearn's GMMHMM layout")

    @property
    def n_features(self) -> int | None:
        return self.emission.n_features
