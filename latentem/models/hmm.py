"""Hidden Markov models: a Markov-chain latent structure over any emission family.

The chain's statistics (expected starts and transitions) come from the
batched forward-backward kernel; the emission family receives the
posteriors as row weights. Names, parameters and attributes follow hmmlearn
(``startprob_``, ``transmat_``, ``fit(X, lengths)``, ``params``,
``init_params``), so hmmlearn code runs.
"""

from __future__ import annotations

import string
import warnings
from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem._vector import family_parts, get_vector, set_vector
from latentem.backends import is_dask_array, is_out_of_core
from latentem.base import InitParamsSetting, ParamsMixin
from latentem.families.categorical import CategoricalFamily
from latentem.families.poisson import PoissonFamily
from latentem.kernels.hmm import scale_emissions, sequence_groups
from latentem.latent.markov import MarkovLatent
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em

__all__ = ["HMM", "CategoricalHMM", "PoissonHMM", "SequenceData"]

#: The default for ``params`` and ``init_params`` of the generic HMM: every letter,
#: so every parameter of the chain and of any family is trained and initialised.
ALL_PARAMS = string.ascii_lowercase
_ALGORITHMS = ("viterbi", "map")


class SequenceData:
    """Rows of all sequences stacked, with where each sequence starts.

    This is what the HMM's EM steps receive: ``len()`` is the number of rows,
    so the runner's ``tol`` is per observation, as everywhere in latentem.
    """

    def __init__(self, X: np.ndarray, offsets: np.ndarray, labels: np.ndarray | None = None):
        self.X = X
        self.offsets = offsets
        self.labels = labels
        self.groups = sequence_groups(offsets)
        self.weights = np.ones(len(offsets) - 1)
        self.missing_plan = None  # rows grouped by missingness, for Gaussian families
        # The E-step's posteriors, reused from one iteration to the next: a fresh
        # (n_rows, K) array costs more in page faults than a long sequence's
        # forward-backward.
        self.post_buffer = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_sequences(self) -> int:
        return len(self.offsets) - 1


def _offsets_from_lengths(lengths: Any, n_rows: int) -> np.ndarray:
    if lengths is None:
        return np.array([0, n_rows], dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        if arr.ndim == 1 and arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"lengths must be a non-empty 1-D array of integers; got {lengths!r:.80}."
            )
    if (arr < 1).any():
        raise ValueError(f"every sequence length must be >= 1; got {int(arr.min())}.")
    if int(arr.sum()) != n_rows:
        raise ValueError(
            f"lengths add up to {int(arr.sum())} but X has {n_rows} rows; they must be equal."
        )
    return np.concatenate(([0], np.cumsum(arr, dtype=np.int64)))


#: What model files keep of a fitted HMM, next to its constructor parameters.
_HMM_FITTED = (
    "emission",
    "startprob_",
    "transmat_",
    "converged_",
    "n_iter_",
    "history_",
    "empty_states_",
)


def _register_hmm(cls: type) -> type:
    return register(cls, fitted=_HMM_FITTED, finish="_finish_load", skip_params=("emission",))


@_register_hmm
class HMM(SaveMixin, ParamsMixin):
    """A hidden Markov model over any K-state emission family, fitted by Baum-Welch.

    Parameters
    ----------
    n_components : int
        Number of hidden states.
    emission : EmissionFamily
        The emission family (see :mod:`latentem.families.base`), with
        ``n_components`` parameter sets. It is fitted in place.
    startprob_prior, transmat_prior : float or array
        Dirichlet pseudo-counts on the start and transition probabilities
        (1.0: maximum likelihood). The M-step uses ``max(prior - 1 + counts, 0)``.
    algorithm : {"viterbi", "map"}
        Decoder used by :meth:`predict` and :meth:`decode`.
    random_state : None, int or Generator
    n_iter : int
        Maximum EM iterations.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per
        observation (not the total, as in hmmlearn: it then means the same for
        any amount of data).
    verbose : bool
    params, init_params : str
        Letters of the parameters to train and to initialise: ``"s"`` start
        probabilities, ``"t"`` transitions, plus the family's letters. The
        default, every letter, means all. A parameter not initialised must be
        set before fitting.
    n_init : int
        Restarts; the best is kept.
    accelerate : None or "squarem"
        SQUAREM extrapolation over all trained parameters (see
        :func:`latentem.fit_em`); needs a family with ``vector_attributes``
        (all of latentem's do).

    Attributes
    ----------
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    monitor_ : EMResult
        History and convergence of the last fit (``monitor_.history``,
        ``monitor_.converged``).
    empty_states_ : list of int
        States that received no posterior mass in the last M-step; they keep
        their previous parameters (and a warning says so at the end of fit).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import HMM
    >>> from latentem.families.poisson import PoissonFamily
    >>> rng = np.random.default_rng(0)
    >>> states = np.repeat([0, 1, 0, 1], 250)
    >>> X = rng.poisson(np.where(states == 0, 2.0, 9.0)).reshape(-1, 1)
    >>> model = HMM(2, emission=PoissonFamily(2), n_iter=100, random_state=0).fit(X)
    >>> np.round(np.sort(model.emission.lambdas_.ravel()), 0)
    array([2., 9.])
    """

    init_params = InitParamsSetting()

    # ------------------------------------------------------------------ the chain part
    def _markov(self) -> MarkovLatent:
        """The Markov-chain part holding ``startprob_`` and ``transmat_``, with the
        current settings (priors, number of states)."""
        chain = self.__dict__.get("_chain")
        if chain is None:
            chain = self.__dict__["_chain"] = MarkovLatent(self.n_components)
        chain.n_components = int(self.n_components)
        chain.startprob_prior = self.startprob_prior
        chain.transmat_prior = self.transmat_prior
        return chain

    def _chain_property(name: str, doc: str) -> property:
        def get(self):
            return getattr(self._markov(), name)

        def set_(self, value):
            setattr(self._markov(), name, value)

        return property(get, set_, doc=doc)

    startprob_ = _chain_property("startprob_", "Start probabilities, shape (n_components,).")
    transmat_ = _chain_property(
        "transmat_", "Transition probabilities, shape (n_components, n_components)."
    )
    del _chain_property

    def get_stationary_distribution(self) -> np.ndarray:
        """The stationary distribution of ``transmat_`` (as hmmlearn's method)."""
        self._markov().check_params()
        return self._markov().stationary_distribution()

    def __init__(
        self,
        n_components: int = 1,
        emission: Any = None,
        *,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = ALL_PARAMS,
        init_params: str = ALL_PARAMS,
        n_init: int = 1,
        accelerate: str | None = None,
    ):
        self.n_components = n_components
        self.emission = emission
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.n_init = n_init
        self.accelerate = accelerate

    # ------------------------------------------------------------------ set-up
    def _family(self):
        """The emission family, configured from the current settings."""
        if self.emission is None:
            raise ValueError(
                "HMM needs an emission family, e.g. HMM(3, emission=PoissonFamily(3)); "
                "or use GaussianHMM, CategoricalHMM, PoissonHMM."
            )
        return self.emission

    def _check_settings(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.n_init, "n_init")
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}; got {self.algorithm!r}.")
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')
        family = self._family()
        if family.n_components != self.n_components:
            raise ValueError(
                f"the emission family has {family.n_components} components but the HMM has "
                f"n_components={self.n_components}; they must agree."
            )

    def _sequence_data(self, X: Any, lengths: Any, labels: Any = None) -> SequenceData:
        family = self._family()
        if X is None or (hasattr(X, "__len__") and len(X) == 0):
            raise ValueError("X is empty (0 observations); pass at least one row.")
        # out-of-core rows (memmap, Chunked) are checked block by block during the fit
        Xc = X if is_out_of_core(X) else family.validate_data(X)
        offsets = _offsets_from_lengths(lengths, len(Xc))
        lab = None
        if labels is not None:
            lab = np.asarray(labels)
            if lab.shape != (len(Xc),) or lab.dtype.kind not in "iu":
                raise ValueError(
                    f"labels must be a 1-D integer array with one entry per row of X "
                    f"({len(Xc)}), -1 where the state is unknown; got shape {lab.shape}."
                )
            if (lab < -1).any() or (lab >= self.n_components).any():
                raise ValueError(
                    f"labels must be -1 (unknown) or a state in 0..{self.n_components - 1}."
                )
            lab = lab.astype(np.int64)
        return SequenceData(Xc, offsets, lab)

    def validate_data(self, data: Any) -> SequenceData:
        """Accept a :class:`SequenceData` or a plain array (one sequence)."""
        if isinstance(data, SequenceData):
            return data
        return self._sequence_data(data, None)

    def validate_block(self, data: SequenceData) -> SequenceData:
        """Check one block of whole sequences (chunked fits): rows, lengths, labels."""
        block = self._sequence_data(np.asarray(data.X), np.diff(data.offsets), data.labels)
        block.weights = data.weights
        return block

    def _init_params(self, data: SequenceData, rng: np.random.Generator) -> None:
        """Initialise the parameters named in ``init_params``; check the others."""
        letters = str(self.init_params)
        self._markov().init(rng, letters)
        self._family().init_params(data.X, rng, letters)
        self._check_params()

    def _finish_load(self) -> None:
        """After loading a model file: check the settings and parameters it gave."""
        if self.startprob_ is not None:
            self._check_settings()
            self._check_params()

    def _check_params(self) -> None:
        self._markov().check_params()
        self._family().check_params()

    # ------------------------------------------------------------ the protocol
    def _log_emission(self, data: SequenceData) -> np.ndarray:
        family = self._family()
        log_b = np.ascontiguousarray(
            family.log_prob(data.X, **self._plan_kwargs(family, data)), dtype=np.float64
        )
        if data.labels is not None:
            log_b = log_b.copy()  # the family may hand back an array it keeps
            known = data.labels >= 0
            keep = log_b[known, data.labels[known]]
            log_b[known] = -np.inf
            log_b[known, data.labels[known]] = keep
        return log_b

    def _scaled_emission(self, data: SequenceData) -> tuple[np.ndarray, np.ndarray]:
        """``(scaled, shift)`` for the forward-backward kernels (see
        :func:`latentem.kernels.hmm.scale_emissions`). A family with ``scaled_prob``
        computes them in one pass, without the (n, K) log-densities in between."""
        family = self._family()
        fused = getattr(family, "scaled_prob", None)
        if callable(fused) and data.labels is None:
            return fused(data.X, **self._plan_kwargs(family, data))
        return scale_emissions(self._log_emission(data))

    def _forward_backward(self, data: SequenceData, reuse: bool = False):
        """Posteriors, start and transition counts, per-sequence log-likelihoods. With
        ``reuse`` (the E-step, whose posteriors never leave it) the posteriors are
        written into ``data.post_buffer``."""
        scaled, shift = self._scaled_emission(data)
        post, starts, trans, seq_ll = self._markov().forward_backward(
            None,
            data.offsets,
            data.groups,
            data.weights,
            scaled=(scaled, shift),
            out=data.post_buffer if reuse else None,
        )
        if reuse:
            data.post_buffer = post
        bad = np.flatnonzero(~np.isfinite(seq_ll))
        if bad.size:
            raise ValueError(
                f"sequence {int(bad[0])} (and {bad.size - 1} more) has zero probability under "
                "the current parameters: its labels or observations are impossible given the "
                "zeros in startprob_, transmat_ or the emission parameters."
            )
        return post, starts, trans, seq_ll

    @staticmethod
    def _plan_kwargs(family, data: SequenceData) -> dict:
        """The missingness plan of the data, worked out once per fit, for families that
        take one (the missing-aware Gaussian families); nothing for the others."""
        if not callable(getattr(family, "plan", None)):
            return {}
        if data.missing_plan is None:
            data.missing_plan = family.plan(data.X)
        return {"plan": data.missing_plan}

    def e_step(self, data: SequenceData) -> tuple[dict, float]:
        post, starts, trans, seq_ll = self._forward_backward(data, reuse=True)
        family = self._family()
        stats = {
            "start": starts,
            "trans": trans,
            "emission": family.accumulate(data.X, post, **self._plan_kwargs(family, data)),
        }
        return stats, float(seq_ll.sum())

    def m_step(self, stats: dict) -> None:
        letters = str(self.params)
        self._markov().m_step(stats["start"], stats["trans"], letters)
        occupancy = stats["start"] + stats["trans"].sum(axis=0)
        self.empty_states_ = [int(k) for k in np.flatnonzero(occupancy <= 1e-12)]
        self._family().m_step(stats["emission"], letters)

    def log_prior(self) -> float:
        """Log-density of the priors (Dirichlet on start and transitions, plus the
        family's); EM maximises the log-likelihood plus this, so their sum never
        decreases even where the log-likelihood alone dips."""
        total = self._markov().log_prior()
        family_prior = getattr(self._family(), "log_prior", None)
        return total + (float(family_prior()) if callable(family_prior) else 0.0)

    def get_param_vector(self) -> np.ndarray:
        """Start, transition and emission parameters as one vector (for SQUAREM)."""
        return get_vector(self._vector_parts())

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set all parameters from a vector; False (and nothing changed) if infeasible."""
        return set_vector(self._vector_parts(), theta, self._family().check_params)

    def _vector_parts(self) -> list:
        return self._markov().vector_parts() + family_parts(self._family(), type(self).__name__)

    def log_likelihood(self, data: SequenceData) -> float:
        scaled = self._scaled_emission(data)
        return float(
            self._markov().log_likelihood(None, data.offsets, data.groups, scaled=scaled).sum()
        )

    # -------------------------------------------------------------- public API
    def fit(self, X: Any, lengths: Any = None, labels: Any = None) -> HMM:
        """Estimate parameters by Baum-Welch (EM).

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            All sequences stacked. Missing observations: a row of NaN adds no
            emission term (the chain still moves through it).
        lengths : array of int, optional
            Length of each sequence; they must add up to ``len(X)``.
        labels : array of int, optional
            Known states (one per row), -1 where unknown; posteriors are
            constrained to them.
        """
        self._check_settings()
        data = self._sequence_data(X, lengths, labels)
        result = fit_em(
            self,
            data,
            max_iter=self.n_iter,
            tol=self.tol,
            n_init=self.n_init,
            random_state=self.random_state,
            verbose=self.verbose,
            accelerate=self.accelerate,
        )
        self.monitor_ = result
        self.history_ = result.history
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        if self.empty_states_:
            warnings.warn(
                f"states {self.empty_states_} received no posterior mass; they kept their "
                "previous parameters. Fewer states, or a different initialisation, may fit better.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _fitted_data(self, X, lengths, labels=None) -> SequenceData:
        self._check_settings()
        self._check_params()
        if is_dask_array(X):  # scoring and decoding return per-row results: in memory
            X = np.asarray(X)
        return self._sequence_data(X, lengths, labels)

    def score(self, X: Any, lengths: Any = None) -> float:
        """Total log-likelihood of X (all sequences)."""
        return self.log_likelihood(self._fitted_data(X, lengths))

    def score_per_sequence(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,)."""
        data = self._fitted_data(X, lengths)
        scaled = self._scaled_emission(data)
        return self._markov().log_likelihood(None, data.offsets, data.groups, scaled=scaled)

    def score_samples(self, X: Any, lengths: Any = None, labels: Any = None):
        """Total log-likelihood and the state posteriors of every row."""
        post, _, _, seq_ll = self._forward_backward(self._fitted_data(X, lengths, labels))
        return float(seq_ll.sum()), post

    def predict_proba(self, X: Any, lengths: Any = None, labels: Any = None) -> np.ndarray:
        """Posterior probability of each state at each row, shape (n_samples, n_components)."""
        return self.score_samples(X, lengths, labels)[1]

    def decode(self, X: Any, lengths: Any = None, algorithm: str | None = None, labels=None):
        """Most likely states: ``(log_prob, states)``.

        With ``"viterbi"``, ``log_prob`` is the joint log-probability of the
        best path (summed over sequences); with ``"map"`` the states maximise
        each row's posterior and ``log_prob`` is the log-likelihood of X.
        """
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}; got {algorithm!r}.")
        data = self._fitted_data(X, lengths, labels)
        if algorithm == "map":
            post, _, _, seq_ll = self._forward_backward(data)
            return float(seq_ll.sum()), np.argmax(post, axis=1)
        states, seq_lp = self._markov().viterbi(self._log_emission(data), data.offsets, data.groups)
        return float(seq_lp.sum()), states

    def predict(self, X: Any, lengths: Any = None, labels: Any = None) -> np.ndarray:
        """Most likely state of every row (Viterbi unless ``algorithm="map"``)."""
        return self.decode(X, lengths, labels=labels)[1]

    def sample(self, n_samples: int = 1, random_state: Any = None, currstate: int | None = None):
        """Draw one sequence: ``(X, states)``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_params()
        rng = check_random_state(self.random_state if random_state is None else random_state)
        states = self._markov().sample_states(n_samples, rng, currstate)
        return self._family().sample(states, rng), states

    def n_parameters(self) -> int:
        """Free parameters: start and transition probabilities (minus structural zeros)
        plus the emission family's."""
        return self._markov().n_parameters() + int(self._family().n_parameters())

    def aic(self, X: Any, lengths: Any = None) -> float:
        """Akaike information criterion (lower is better)."""
        return -2.0 * self.score(X, lengths) + 2.0 * self.n_parameters()

    def bic(self, X: Any, lengths: Any = None) -> float:
        """Bayesian information criterion (lower is better)."""
        n = len(self._fitted_data(X, lengths))
        return -2.0 * self.score(X, lengths) + self.n_parameters() * np.log(n)


#: The settings every HMM class passes on to :class:`HMM` unchanged.
_CHAIN_SETTINGS = (
    "startprob_prior",
    "transmat_prior",
    "algorithm",
    "random_state",
    "n_iter",
    "tol",
    "verbose",
    "params",
    "init_params",
    "n_init",
    "accelerate",
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
    ):
        from latentem.families.gaussian_hmm import GaussianEmission

        super().__init__(
            n_components,
            GaussianEmission(n_components, covariance_type),
            **_chain_settings(locals()),
        )
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    def _family(self):
        from latentem.families.gaussian import COVARIANCE_TYPES

        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {self.covariance_type!r}."
            )
        fam = self.emission
        if fam.covariance_type != self.covariance_type:
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

    @property
    def covars_(self) -> np.ndarray:
        """Covariance matrices of the states, (n_components, n_features, n_features)."""
        fam = self.emission
        fam.check_params()
        return fam.full_covariances()

    @covars_.setter
    def covars_(self, value) -> None:
        self.emission.covariances_ = np.array(value, dtype=np.float64)

    @property
    def n_features(self) -> int | None:
        return self.emission.n_features


@_register_hmm
class GMMHMM(HMM):
    """HMM whose states emit from Gaussian mixtures, as hmmlearn's ``GMMHMM``.

    Parameter letters: ``s``, ``t``, ``w`` (mixture weights), ``m`` (means),
    ``c`` (covariances). The emission M-step is maximum likelihood with
    ``min_covar`` added to every covariance diagonal (hmmlearn's GMMHMM uses
    its own MAP priors instead, so fitted values differ slightly from its).

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
