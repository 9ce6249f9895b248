"""Hidden Markov models: a Markov-chain latent structure over any emission family.

The chain's statistics (expected starts and transitions) come from the
batched forward-backward kernel; the emission family receives the
posteriors as row weights. Names, parameters and attributes follow hmmlearn
(``startprob_``, ``transmat_``, ``fit(X, lengths)``, ``params``,
``init_params``), so hmmlearn code runs.
"""

from __future__ import annotations

import logging
import string
import warnings
from typing import Any

import numpy as np

from latentem._sklearn import (
    check_n_features,
    density_tags,
    family_argument_checks,
    note_features,
    precheck_table,
)
from latentem._validation import check_positive_int, check_random_state
from latentem._vector import family_parts, get_vector, set_vector
from latentem.base import InitParamsSetting, ParamsMixin, not_fitted_error
from latentem.kernels.hmm import scale_emissions
from latentem.latent.markov import MarkovLatent
from latentem.models.hmm_data import (
    SequenceData,
    _has_weights,
    _lengths_or_target,
    _sequence_weights,
    _weighted_total,
)
from latentem.models.hmm_monitor import ConvergenceMonitor
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em, is_dask_array, is_out_of_core
from latentem.sequences import offsets_from_lengths

__all__ = ["HMM", "SequenceData"]

_log = logging.getLogger(__name__)

#: The default for ``params`` and ``init_params`` of the generic HMM: every letter,
#: so every parameter of the chain and of any family is trained and initialised.
ALL_PARAMS = string.ascii_lowercase
_ALGORITHMS = ("viterbi", "map")
#: hmmlearn's two forward-backward variants. latentem has one (scaled, with the
#: log-likelihood kept in logs), exact for both: the setting is accepted and checked.
_IMPLEMENTATIONS = ("log", "scaling")
#: hmmlearn's names for parameters its families call otherwise.
_PUBLIC_NAMES = {"covariances_": "covars_"}


def _global_seed(random_state: Any) -> Any:
    """``None`` draws a seed from NumPy's global generator, as hmmlearn and
    scikit-learn do, so ``np.random.seed`` makes unseeded fits repeatable."""
    if random_state is None:
        return int(np.random.randint(np.iinfo(np.int32).max))  # noqa: NPY002 (on purpose)
    return random_state


def _same(kept: np.ndarray | None, value: Any) -> bool:
    """Whether ``value`` still equals the copy ``kept`` (None: nothing kept)."""
    if kept is None:
        return False
    try:
        return np.array_equal(kept, np.asarray(value, dtype=kept.dtype))
    except (TypeError, ValueError):
        return False


def _plain_table(X: Any) -> bool:
    """A 2-D float array with rows and columns: what scikit-learn's generic checks
    (:func:`~latentem._sklearn.precheck_table`) pass through unchanged."""
    return (
        type(X) is np.ndarray and X.dtype.kind == "f" and X.ndim == 2 and X.shape[1] > 0
    ) and X.dtype.itemsize <= 8


def _lengths_key(lengths: Any, n_rows: int) -> tuple | None:
    """What identifies ``lengths`` by value (None: not worth remembering): an integer
    array's bytes, with the number of rows it is checked against."""
    if type(lengths) is np.ndarray and lengths.dtype.kind in "iu" and lengths.ndim == 1:
        return (n_rows, lengths.dtype.str, lengths.tobytes())
    return None


#: The last lengths read, with their offsets and groups (which depend on nothing else)
#: and a dict of other things that depend on them alone (see :meth:`HMM._lengths_fact`).
_LAST_OFFSETS: list = [None]


def _offsets(lengths: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray | None, dict | None]:
    """Checked offsets from ``lengths``, their groups when known, and the dict of
    facts about them (None: not kept). Scoring and decoding the same sequences again
    reuse the last call's (as copies), so the lengths are not checked and grouped
    anew each time."""
    key = _lengths_key(lengths, n_rows)
    last = _LAST_OFFSETS[0]
    if key is not None and last is not None and last[0] == key:
        # copies: a caller may write into them
        return last[1].copy(), last[2].copy(), last[3]
    offsets = offsets_from_lengths(_lengths_or_target(lengths, n_rows), n_rows)
    if key is None:
        return offsets, None, None
    from latentem.kernels.hmm import sequence_groups

    groups = sequence_groups(offsets)
    facts: dict = {}
    _LAST_OFFSETS[0] = (key, offsets.copy(), groups.copy(), facts)
    return offsets, groups, facts


#: Why scikit-learn's row-wise checks cannot apply to an HMM.
_ROWS_ARE_TIME_STEPS = (
    "an HMM's rows are time steps of a sequence: a row's posterior depends on its "
    "neighbours, so reordering or splitting the rows changes the results"
)
_WEIGHTS_PER_SEQUENCE = (
    "a weight belongs to a whole sequence; per-row weights that differ within a "
    "sequence are refused with a clear error"
)


def _shape(X: Any) -> tuple:
    """X's shape, for anything ``np.asarray`` reads."""
    shape = getattr(X, "shape", None)
    return tuple(shape) if shape is not None else np.asarray(X).shape


#: What model files keep of a fitted HMM, next to its constructor parameters.
_HMM_FITTED = (
    "emission",
    "startprob_",
    "transmat_",
    "converged_",
    "n_iter_",
    "history_",
    "empty_states_",
    "n_features_in_",
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
    initial : {"free", "stationary"} or array
        The start probabilities, as in the regime-switching models: estimated
        (``"free"``, hmmlearn's way), the stationary distribution of
        ``transmat_`` (``"stationary"``, statsmodels' way: ``startprob_``
        follows ``transmat_``, whose M-step then weighs the first states too,
        by Newton steps on its logits), or fixed to the array given. Only a
        free start takes ``startprob_prior`` or the letter ``"s"``; a
        stationary one needs ``transmat_`` without zeros.
    algorithm : {"viterbi", "map"}
        Decoder used by :meth:`predict` and :meth:`decode`.
    random_state : None, int, RandomState or Generator
        None draws from NumPy's global generator (``np.random.seed`` makes
        the fit repeatable), as in hmmlearn.
    n_iter : int
        Maximum EM iterations; 0 initialises the parameters and stops.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per
        observation (not the total, as in hmmlearn: it then means the same for
        any amount of data).
    verbose : bool
    params, init_params : str
        Letters of the parameters to train and to initialise: ``"s"`` start
        probabilities, ``"t"`` transitions, plus the family's letters. The
        default, every letter, means all. As in hmmlearn, a parameter left
        unset is initialised whatever ``init_params`` says, and one set by hand
        but named in ``init_params`` is overwritten (a logged warning says so).
    n_init : int
        Restarts; the best is kept.
    accelerate : None or "squarem"
        SQUAREM extrapolation over all trained parameters (see
        :func:`latentem.fit_em`); needs a family with ``vector_attributes``
        (all of latentem's do).
    implementation : {"log", "scaling"}
        hmmlearn's choice of forward-backward variant. latentem runs one
        scaled kernel that is exact for both, so the numbers are the same
        either way; the setting is checked and kept.

    Attributes
    ----------
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    monitor_ : ConvergenceMonitor
        History and convergence of the last fit, as hmmlearn's
        (``monitor_.history``, ``monitor_.iter``, ``monitor_.converged``;
        the runner's :class:`~latentem.EMResult` is ``monitor_.result``).
        Set it to a subclass with its own ``converged`` to change when the
        fit stops. Running out of ``n_iter`` gives no warning (as in
        hmmlearn): ``converged_`` and ``monitor_.converged`` say so.
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
        chain.initial = self.initial
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
        """The stationary distribution of ``transmat_`` (as hmmlearn's method; only
        ``transmat_`` need be set)."""
        self._markov().check_params(("transmat_",))
        return self._markov().stationary_distribution()

    def __init__(
        self,
        n_components: int = 1,
        emission: Any = None,
        *,
        startprob_prior: float | np.ndarray = 1.0,
        transmat_prior: float | np.ndarray = 1.0,
        initial: Any = "free",
        algorithm: str = "viterbi",
        random_state: Any = None,
        n_iter: int = 10,
        tol: float = 1e-6,
        verbose: bool = False,
        params: str = ALL_PARAMS,
        init_params: str = ALL_PARAMS,
        n_init: int = 1,
        accelerate: str | None = None,
        implementation: str = "log",
    ):
        self.n_components = n_components
        self.emission = emission
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.initial = initial
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.n_init = n_init
        self.accelerate = accelerate
        self.implementation = implementation

    @property
    def monitor_(self) -> ConvergenceMonitor:
        """hmmlearn's convergence monitor (see the class docstring)."""
        monitor = self.__dict__.get("_monitor")
        if monitor is None:
            monitor = self.__dict__["_monitor"] = ConvergenceMonitor(
                self.tol, self.n_iter, self.verbose
            )
        return monitor

    @monitor_.setter
    def monitor_(self, value: Any) -> None:
        self.__dict__["_monitor"] = value

    # ------------------------------------------------------------------ set-up
    def _family(self):
        """The emission family, configured from the current settings."""
        if self.emission is None:
            raise ValueError(
                "HMM needs an emission family, e.g. HMM(3, emission=PoissonFamily(3)); "
                "or use GaussianHMM, CategoricalHMM, PoissonHMM."
            )
        family = self.emission
        K = self.n_components
        renew = str(self.init_params)
        if (  # set_params(n_components=...) reaches a family the fit starts afresh anyway
            getattr(family, "n_components", K) != K
            and isinstance(K, int)
            and K >= 1
            and callable(getattr(family, "fresh", None))
            and all(letter in renew for letter in getattr(family, "param_letters", "?"))
        ):
            self.emission = family = family.fresh(K)
        return family

    def _check_settings(self) -> None:
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter", minimum=0)
        check_positive_int(self.n_init, "n_init")
        if self.implementation not in _IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {_IMPLEMENTATIONS} (the numbers are the same "
                f"either way); got {self.implementation!r}."
            )
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}; got {self.algorithm!r}.")
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')
        self._markov().check_initial()
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
        nonnegative = bool(getattr(family, "nonnegative", False))
        if _plain_table(X) and not nonnegative:
            Xc = family.validate_data(X)  # precheck_table would pass it through as it is
        elif is_out_of_core(X):  # memmap, Chunked: checked block by block during the fit
            Xc = X
        else:  # counts and codes: negative values in scikit-learn's words
            X = precheck_table(
                self, X, nonnegative=nonnegative, missing_code=getattr(family, "missing_code", None)
            )
            Xc = family.validate_data(X)
        offsets, groups, facts = _offsets(lengths, len(Xc))
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
        data = SequenceData(Xc, offsets, lab)
        data._groups = groups
        data._facts = facts
        return data

    @staticmethod
    def _lengths_fact(data: SequenceData, name: str, compute: Any) -> Any:
        """``compute(offsets, groups)``, kept with the lengths it came from when they
        are remembered (scoring the same sequences again finds it)."""
        facts = getattr(data, "_facts", None)
        if facts is not None and name in facts:
            return facts[name]
        value = compute(data.offsets, data.groups)
        if facts is not None:
            facts[name] = value
        return value

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
        """Initialise the parameters named in ``init_params`` (and, during a fit, those
        left unset); check the others."""
        letters = self.__dict__.get("_fit_letters", str(self.init_params))
        self._markov().init(rng, letters)
        self._family().init_params(data.X, rng, letters)
        self._check_params()

    def _finish_load(self) -> None:
        """After loading a model file: check the settings and parameters it gave."""
        if self.startprob_ is not None:
            self._check_settings()
            self._check_params()
        self._remember_params()

    def _check_loaded(self) -> None:
        """After loading a model file: finite emission parameters of the right width."""
        from latentem.persistence.checks import _check_hmm

        _check_hmm(self)

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
        weighted = _has_weights(data)
        if weighted:  # the kernels weight start and transition counts; rows here
            post = post * np.repeat(data.weights, np.diff(data.offsets))[:, None]
        stats = {
            "start": starts,
            "trans": trans,
            "emission": family.accumulate(data.X, post, **self._plan_kwargs(family, data)),
        }
        return stats, _weighted_total(seq_ll, data.weights if weighted else None)

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
        seq_ll = self._markov().log_likelihood(None, data.offsets, data.groups, scaled=scaled)
        return _weighted_total(seq_ll, data.weights if _has_weights(data) else None)

    # -------------------------------------------------------------- public API
    def fit(
        self, X: Any, lengths: Any = None, labels: Any = None, *, sample_weight: Any = None
    ) -> HMM:
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
        sample_weight : array-like (n_sequences,), optional
            One weight >= 0 per sequence: a weight of 2 fits as the sequence
            twice, 0 leaves it out (the starting parameters are drawn from the
            data unweighted).
        """
        self._check_settings()
        if len(_shape(X)) == 1:  # hmmlearn and scikit-learn read only 2-D X
            raise ValueError(
                "Expected 2D array, got 1D array instead. Reshape your data either using "
                "array.reshape(-1, 1) if your data has a single feature (one observation "
                "per row, as an HMM reads X) or array.reshape(1, -1) if it contains a "
                "single sample."
            )
        note_features(self, X, reset=True)
        data = self._sequence_data(X, lengths, labels)
        if len(data.X) < self.n_components:
            raise ValueError(
                f"n_components={self.n_components} is larger than the number of samples "
                f"n_samples={len(data.X)}; pass more data or use fewer states."
            )
        if sample_weight is not None:
            data.weights = _sequence_weights(sample_weight, data.offsets)
        monitor = self.monitor_
        if type(monitor) is ConvergenceMonitor:  # ours: keep it in step with the settings
            monitor.tol, monitor.n_iter, monitor.verbose = self.tol, self.n_iter, self.verbose
        monitor._reset()
        seed = _global_seed(self.random_state)
        self.__dict__["_fit_letters"] = self._letters_to_initialise()
        try:
            if self.n_iter == 0:  # hmmlearn: initialise, run no EM step
                self._init_params(data, check_random_state(seed).spawn(1)[0])
                self.empty_states_ = []
                result = None
            else:
                result = fit_em(
                    self,
                    data,
                    max_iter=self.n_iter,
                    # a monitor with its own test decides alone, as in hmmlearn
                    tol=0.0 if ConvergenceMonitor._decides(monitor) else self.tol,
                    n_init=self.n_init,
                    random_state=seed,
                    verbose=self.verbose,
                    accelerate=self.accelerate,
                    callback=self._monitor_callback(monitor),
                )
        finally:
            self.__dict__.pop("_fit_letters", None)
        self.monitor_ = monitor  # restarts may have restored a copy of the model
        self.n_features_in_ = int(_shape(X)[1])
        self._record_fit(result, monitor)
        if self.empty_states_:
            warnings.warn(
                f"states {self.empty_states_} received no posterior mass; they kept their "
                "previous parameters. Fewer states, or a different initialisation, may fit better.",
                UserWarning,
                stacklevel=2,
            )
        return self

    def _monitor_callback(self, monitor: Any):
        """Report every iteration to ``monitor``; stop when a monitor with its own test
        says so, and at ``n_iter`` without a ConvergenceWarning (hmmlearn warns not:
        ``converged_`` tells)."""
        decides = ConvergenceMonitor._decides(monitor)
        n_iter = self.n_iter

        def on_iteration(info) -> bool:
            if info.iteration == 1:  # a new restart
                monitor._reset()
            monitor.report(info.objective)  # what EM never lowers, as hmmlearn's bound
            if decides and monitor.converged:
                return True
            return info.iteration >= n_iter

        return on_iteration

    def _record_fit(self, result: Any, monitor: Any) -> None:
        if result is None:
            self.history_, self.converged_, self.n_iter_ = np.empty(0), False, 0
        else:
            self.history_ = result.history
            self.converged_ = result.converged
            self.n_iter_ = result.n_iter
            if isinstance(monitor, ConvergenceMonitor):
                if ConvergenceMonitor._decides(monitor):
                    monitor.result = result
                else:
                    monitor._finish(result)
        self._remember_params()

    # ------------------------------------------- hmmlearn's rules for init_params
    def _param_slots(self) -> dict:
        """Parameter letter -> (object holding it, attribute name)."""
        chain = self._markov()
        slots = {"s": (chain, "startprob_"), "t": (chain, "transmat_")}
        if chain.initial_kind != "free":  # the start follows initial: not a parameter
            del slots["s"]
        family = self._family()
        for letter, attr in getattr(family, "param_attributes", {}).items():
            slots[letter] = (family, attr)
        return slots

    def _remember_params(self) -> None:
        """Copy the parameter values a fit (or a model file) left, so that only values
        a user sets afterwards count as set by hand (by value: checks may replace the
        arrays with equal copies)."""
        self.__dict__["_own_params"] = {
            letter: np.array(value, copy=True)
            for letter, (holder, attr) in self._param_slots().items()
            if (value := getattr(holder, attr, None)) is not None
        }

    def _letters_to_initialise(self) -> str:
        """``init_params`` plus the letters of parameters left unset (hmmlearn
        initialises what is missing); logs hmmlearn's warning for a parameter set by
        hand that ``init_params`` will overwrite."""
        letters = str(self.init_params)
        own = self.__dict__.get("_own_params", {})
        missing = ""
        for letter, (holder, attr) in self._param_slots().items():
            value = getattr(holder, attr, None)
            if letter not in letters:
                missing += letter if value is None else ""
            elif value is not None and not _same(own.get(letter), value):
                _log.warning(
                    "Even though the %r attribute is set, it will be overwritten during "
                    "initialization because 'init_params' contains %r",
                    _PUBLIC_NAMES.get(attr, attr),
                    letter,
                )
        return letters + missing

    def _fitted_data(self, X, lengths, labels=None) -> SequenceData:
        self._check_settings()
        try:
            self._check_params()
        except ValueError:
            # not fitted at all, or some set by hand (_check_params names the rest)
            values = [getattr(h, a, None) for h, a in self._param_slots().values()]
            if all(v is None for v in values):
                raise not_fitted_error(self) from None
            raise
        if is_dask_array(X):  # scoring and decoding return per-row results: in memory
            X = np.asarray(X)
        note_features(self, X, reset=False)
        shape = _shape(X)
        if "n_features_in_" in self.__dict__ and len(shape) in (1, 2):
            check_n_features(self, shape[1] if len(shape) == 2 else 1, one_d=len(shape) == 1)
        return self._sequence_data(X, lengths, labels)

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted, or every parameter set by hand (hmmlearn predicts with those)."""
        return all(getattr(h, a, None) is not None for h, a in self._param_slots().values())

    def _sklearn_tags(self, tags: Any) -> Any:
        tags = density_tags(tags, allow_nan=True)  # NaN marks a missing observation
        # counts or codes are >= 0, codes are whole numbers: the family says which
        tags.input_tags.positive_only = bool(getattr(self.emission, "nonnegative", False))
        tags.input_tags.categorical = bool(getattr(self.emission, "codes", False))
        return tags

    def _sklearn_expected_failed_checks(self) -> dict[str, str]:
        declared = {
            "check_fit_score_takes_y": (
                "fit's second argument is hmmlearn's `lengths`; a target y passed there, "
                "as scikit-learn's tools do, is recognised and ignored"
            ),
            "check_methods_sample_order_invariance": _ROWS_ARE_TIME_STEPS,
            "check_methods_subset_invariance": _ROWS_ARE_TIME_STEPS,
            "check_sample_weights_not_overwritten": _WEIGHTS_PER_SEQUENCE,
            "check_sample_weight_equivalence_on_dense_data": (
                "an HMM's rows are time steps of a sequence: repeating a row changes the "
                "sequence, so a weight of 2 is not a repeated row (weights belong to whole "
                "sequences; tests/test_sample_weight_labels.py checks them as repeated "
                "sequences)"
            ),
        }
        if type(self)._family is HMM._family:  # the family is a constructor argument
            declared.update(family_argument_checks(self.emission, argument=True))
        return declared

    def score(self, X: Any, lengths: Any = None, *, y: Any = None) -> float:
        """Total log-likelihood of X (all sequences). ``y`` is scikit-learn's target,
        ignored (see :func:`_lengths_or_target`)."""
        return float(self.score_per_sequence(X, lengths).sum())  # no weights to apply

    def score_per_sequence(self, X: Any, lengths: Any = None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,)."""
        data = self._fitted_data(X, lengths)
        fused = self._fused_kernels(data)
        if fused is not None:
            cols, loglik, _ = fused
            start, trans = self._markov()._params(None)
            return loglik(data.X, cols, data.offsets, data.groups, start, trans)
        scaled = self._scaled_emission(data)
        return self._markov().log_likelihood(None, data.offsets, data.groups, scaled=scaled)

    def _fused_kernels(self, data: SequenceData) -> tuple | None:
        """Kernels that compute the emissions inside the recursions, where the family
        and the data allow: ``(params, loglik, viterbi)`` with the signatures of
        :func:`latentem.kernels.hmm_diag_gaussian_lanes.diag_gaussian_loglik_lanes` and
        :func:`~latentem.kernels.hmm_diag_gaussian_lanes.diag_gaussian_viterbi_lanes`;
        None (the default) for the unfused path."""
        return None

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
        log_prob, states = self._decode(X, lengths, algorithm, labels)
        return float(log_prob.sum()), states

    def _decode(self, X: Any, lengths: Any, algorithm: str | None, labels: Any):
        """:meth:`decode` with the log-probability of each sequence (``predict`` needs
        no total)."""
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"algorithm must be one of {_ALGORITHMS}; got {algorithm!r}.")
        data = self._fitted_data(X, lengths, labels)
        if algorithm == "map":
            post, _, _, seq_ll = self._forward_backward(data)
            return seq_ll, np.argmax(post, axis=1)
        fused = self._fused_kernels(data)
        if fused is not None:
            cols, _, viterbi = fused
            log_start, log_trans = self._markov()._log_params(None)
            states, seq_lp = viterbi(data.X, cols, data.offsets, data.groups, log_start, log_trans)
            return seq_lp, states
        states, seq_lp = self._markov().viterbi(self._log_emission(data), data.offsets, data.groups)
        return seq_lp, states

    def predict(self, X: Any, lengths: Any = None, labels: Any = None) -> np.ndarray:
        """Most likely state of every row (Viterbi unless ``algorithm="map"``)."""
        return self._decode(X, lengths, None, labels)[1]

    def sample(self, n_samples: int = 1, random_state: Any = None, currstate: int | None = None):
        """Draw one sequence: ``(X, states)``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_params()
        rng = check_random_state(
            _global_seed(self.random_state if random_state is None else random_state)
        )
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
