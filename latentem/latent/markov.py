"""The Markov-chain latent structure: one discrete state per row, following a chain
along each sequence.

Over an emission family it makes a hidden Markov model. It owns the start
and transition probabilities; its statistics are the expected starts and
transitions, from the batched forward-backward kernels of
:mod:`latentem.kernels.hmm`. The start is estimated, fixed, or the stationary
distribution of the transitions (whose M-step then has no closed form: Newton
on their logits, :mod:`latentem.kernels.regime_transitions`, shared with the
regime-switching models).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem.families.base import dirichlet_log_prior, dirichlet_m_step
from latentem.kernels.hmm import (
    forward_backward_into,
    forward_loglik,
    forward_loglik_scaled,
    scale_emissions,
    sequence_groups,
    viterbi,
)
from latentem.kernels.regime_transitions import (
    newton_logit,
    stationary_distribution,
    transition_objective,
)

__all__ = ["MarkovLatent", "start_distribution", "stationary_start", "stationary_transitions"]

#: The values of ``initial`` given by name (an array fixes the start).
INITIAL = ("free", "stationary")


def _stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distribution of a row-stochastic matrix, as statsmodels computes it
    (least squares: an answer for a reducible chain too)."""
    m = P.shape[0]
    A = np.vstack([np.eye(m) - P.T, np.ones((1, m))])
    rhs = np.zeros(m + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return np.maximum(pi, 1e-20)


def stationary_start(P: np.ndarray) -> np.ndarray:
    """Stationary distribution of a row-stochastic matrix (K, K), or of each of a
    stack (..., K, K); the equations statsmodels solves, floored at 1e-20.

    Examples
    --------
    >>> import numpy as np
    >>> stationary_start(np.array([[0.9, 0.1], [0.2, 0.8]])).round(4)
    array([0.6667, 0.3333])
    """
    P = np.asarray(P, dtype=np.float64)
    if P.ndim > 2:
        return np.stack([stationary_start(one) for one in P])
    try:
        return stationary_distribution(np.ascontiguousarray(P))
    except np.linalg.LinAlgError:  # a reducible chain: the least-squares answer
        return _stationary(P)


def _softmax_last_zero(eta: np.ndarray) -> np.ndarray:
    """Probabilities from logits (..., K - 1); the last category has logit 0."""
    full = np.concatenate([eta, np.zeros(eta.shape[:-1] + (1,))], axis=-1)
    full = full - full.max(axis=-1, keepdims=True)
    e = np.exp(full)
    return e / e.sum(axis=-1, keepdims=True)


def _logits(P: np.ndarray) -> np.ndarray:
    """Logits (K, K - 1) of a row-stochastic matrix against its last column."""
    P = np.maximum(P, 1e-300)
    return np.clip(np.log(P[:, :-1]) - np.log(P[:, -1:]), -300.0, 300.0)


def stationary_transitions(counts: np.ndarray, starts: np.ndarray, old: np.ndarray) -> np.ndarray:
    """The transition M-step of a chain that starts in its stationary distribution.

    Raises ``sum_ij counts_ij log P_ij + sum_k starts_k log pi_k(P)`` from ``old``
    (K, K): no closed form, so Newton steps on the logits of ``P``, from the
    better of ``old`` and the counts' closed form (so never below ``old``: EM
    stays monotone). A reducible chain, whose stationary distribution is not
    unique, keeps ``old``.
    """
    rows = counts.sum(axis=1, keepdims=True)
    closed = np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), old)
    xi, z = np.ascontiguousarray(counts, dtype=np.float64)[None], np.ones((1, 1))
    z0, g = np.ones((1, 1)), np.ascontiguousarray(starts, dtype=np.float64)[None]
    before = np.ascontiguousarray(_logits(old)[:, :, None])
    cand = np.ascontiguousarray(_logits(closed)[:, :, None])
    buf = np.empty_like(before)
    try:
        f_old = transition_objective(before, xi, z, z0, g, True, buf)
        f_cand = transition_objective(cand, xi, z, z0, g, True, buf)
        coef = newton_logit(cand if f_cand >= f_old else before, xi, z, z0, g, True, 30)
    except np.linalg.LinAlgError:
        return old
    return _softmax_last_zero(coef[:, :, 0])


def initial_kind(initial: Any) -> str:
    """``"free"``, ``"stationary"`` or ``"fixed"`` (``initial`` an array of probabilities)."""
    return initial if isinstance(initial, str) else "fixed"


def start_distribution(initial: Any, transmat: np.ndarray | None, free: Any) -> Any:
    """The first state's distribution that a chain's ``initial`` setting gives.

    ``"stationary"``: the stationary distribution of ``transmat`` (the free
    value while there is no ``transmat``); an array: itself (a fixed start);
    ``"free"``: the estimated ``free``. The regime models call it with each
    sequence's first time-varying transition matrix.
    """
    if isinstance(initial, str):
        if initial == "stationary" and transmat is not None:
            return stationary_start(transmat)
        return free
    return np.array(initial, dtype=np.float64)


def _unchanged(last: tuple | None, value: Any, shape: tuple) -> bool:
    """Whether ``value`` is the very array that passed the last check, with the same
    shape and bytes (an array edited in place, or a new one, is checked again)."""
    return (
        last is not None
        and value is last[0]
        and last[1] == shape
        and value.shape == shape
        and value.tobytes() == last[2]
    )


class MarkovLatent:
    """Start and transition probabilities of a K-state chain (``n_sets`` independent chains).

    Parameters
    ----------
    n_components : int
        Number of states K.
    startprob_prior, transmat_prior : float or array, default=1.0
        Dirichlet pseudo-counts; the M-step uses ``max(prior - 1 + counts, 0)``
        (hmmlearn's rule; 1.0 is maximum likelihood). Zeros of the current
        probabilities stay zero (structural zeros: left-right chains).
    n_sets : int or None, default=None
        None: ``startprob_`` (K,) and ``transmat_`` (K, K); an integer R:
        (R, K) and (R, K, K), R independent chains (model-graph nodes).
    initial : {"free", "stationary"} or array, default="free"
        The start probabilities (the regime models' option): estimated by EM,
        the stationary distribution of ``transmat_`` (statsmodels' default;
        not a free parameter, recomputed whenever read, and the transition
        M-step then has a term for the first states), or fixed to the array.
        Only a free start takes ``startprob_prior``; a stationary one needs
        every transition possible (no structural zeros).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.latent import MarkovLatent
    >>> chain = MarkovLatent(2)
    >>> chain.startprob_ = np.array([1.0, 0.0])
    >>> chain.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> chain.stationary_distribution().round(4)
    array([0.6667, 0.3333])
    >>> log_b = np.log(np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]))
    >>> offsets = np.array([0, 3])
    >>> post, starts, trans, seq_ll = chain.forward_backward(log_b, offsets)
    >>> post.sum(axis=1).round(12).tolist(), starts.round(6).tolist()
    ([1.0, 1.0, 1.0], [1.0, 0.0])
    >>> chain.initial = "stationary"  # startprob_ now follows transmat_
    >>> chain.startprob_.round(4)
    array([0.6667, 0.3333])
    """

    def __init__(
        self,
        n_components: int,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        n_sets: int | None = None,
        initial: Any = "free",
    ) -> None:
        self.n_components = int(n_components)
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.n_sets = n_sets
        self.initial = initial
        self._startprob: np.ndarray | None = None
        self.transmat_: np.ndarray | None = None

    def _sets(self) -> tuple[int, ...]:
        return () if self.n_sets is None else (int(self.n_sets),)

    @property
    def initial_kind(self) -> str:
        """``"free"``, ``"stationary"`` or ``"fixed"`` (``initial`` an array)."""
        return initial_kind(self.initial)

    @property
    def startprob_(self) -> np.ndarray | None:
        """Start probabilities: the estimated ones, the fixed ``initial``, or the
        stationary distribution of ``transmat_`` (a value set by hand then counts
        only for a free start)."""
        return start_distribution(self.initial, self.transmat_, self._startprob)

    @startprob_.setter
    def startprob_(self, value: Any) -> None:
        self._startprob = value

    def check_initial(self) -> None:
        """Raise ValueError for a bad ``initial``, or a prior it cannot take."""
        K, sets = self.n_components, self._sets()
        kind = self.initial_kind
        if kind == "fixed":
            try:
                arr = np.asarray(self.initial, dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.full(1, np.nan)
            off = np.abs(arr.sum(axis=-1) - 1.0).max() if arr.size else np.inf
            if arr.shape != sets + (K,) or not (np.isfinite(arr).all() and arr.min() >= 0):
                off = np.inf
            if not off <= 1e-8:
                raise ValueError(
                    f'initial must be "free", "stationary" or an array of {sets + (K,)} '
                    f"probabilities summing to 1 (a fixed start); got {self.initial!r:.80}."
                )
        elif kind not in INITIAL:
            raise ValueError(
                f'initial must be "free", "stationary" or an array of {sets + (K,)} '
                f"probabilities (a fixed start); got {self.initial!r}."
            )
        if kind != "free" and not np.all(np.asarray(self.startprob_prior) == 1.0):
            raise ValueError(
                f"startprob_prior applies to a free start only; with initial={kind!r} the "
                'start is not estimated: leave startprob_prior at 1.0 or use initial="free".'
            )

    def _check_no_zeros(self) -> None:
        """A stationary start fits every transition by Newton on its logits, so it
        cannot keep a structural zero at zero."""
        if self.initial_kind == "stationary" and self.transmat_ is not None:
            if not np.all(np.asarray(self.transmat_) > 0):
                raise ValueError(
                    'initial="stationary" needs every transition possible, but transmat_ '
                    "has zeros (structural zeros, as in a left-right chain); use "
                    'initial="free" or a fixed start array with them.'
                )

    # ------------------------------------------------------------------ parameters
    def init(self, rng: np.random.Generator, letters: str = "st") -> None:
        """Uniform start probabilities (``s``) and sticky random transitions (``t``):
        states persist, and the symmetry between them is broken."""
        K, sets = self.n_components, self._sets()
        if "s" in letters:
            self.startprob_ = np.full(sets + (K,), 1.0 / K)
        if "t" in letters:
            self.transmat_ = 0.5 * np.eye(K) + 0.5 * rng.dirichlet(np.ones(K), size=sets + (K,))
        self._check_no_zeros()

    def check_params(self, names: tuple[str, ...] = ("startprob_", "transmat_")) -> None:
        """Raise ValueError unless the arrays (both by default) are set, shaped right
        and on the simplex (a start that is not free: only ``initial`` is checked)."""
        self.check_initial()
        if self.initial_kind != "free":
            names = tuple(name for name in names if name != "startprob_")
        K, sets = self.n_components, self._sets()
        shapes = {"startprob_": sets + (K,), "transmat_": sets + (K, K)}
        checked = self.__dict__.setdefault("_checked", {})
        for name, shape in ((name, shapes[name]) for name in names):
            value = getattr(self, name, None)
            if _unchanged(checked.get(name), value, shape):
                continue  # scoring checks at every call: skip what passed and stands
            if value is None:
                raise ValueError(
                    f"{name} is not set; include its letter in init_params or set it before fit."
                )
            value = np.asarray(value, dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape}; got {value.shape}.")
            # np.allclose's tolerance (1e-5 relative, 1e-8 absolute), without its cost
            off = np.abs(value.sum(axis=-1) - 1.0).max()
            if not (np.isfinite(value).all() and value.min() >= 0 and off <= 1.001e-5):
                raise ValueError(f"{name} must be non-negative and sum to 1 (along each row).")
            setattr(self, name, value)
            if name == "transmat_" or self.initial_kind == "free":  # else recomputed per read
                checked[name] = (value, shape, value.tobytes())

    def stationary_distribution(self) -> np.ndarray:
        """The left eigenvector of ``transmat_`` for eigenvalue 1, normalised (one chain)."""
        vals, vecs = np.linalg.eig(np.asarray(self.transmat_).T)
        v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
        return v / v.sum()

    def _params(self, s: int | None) -> tuple[np.ndarray, np.ndarray]:
        if s is None:
            return self.startprob_, self.transmat_
        return np.ascontiguousarray(self.startprob_[s]), np.ascontiguousarray(self.transmat_[s])

    # ------------------------------------------------------------------ E-step
    def forward_backward(
        self,
        log_b: np.ndarray | None,
        offsets: np.ndarray,
        groups: np.ndarray | None = None,
        seq_weights: np.ndarray | None = None,
        *,
        scaled: tuple[np.ndarray, np.ndarray] | None = None,
        out: np.ndarray | None = None,
        s: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Posteriors (n, K), summed start (K,) and transition (K, K) counts, and the
        log-likelihood of each sequence.

        Emissions come as log-densities ``log_b`` (n, K) or already scaled,
        ``scaled=(scaled, shift)`` (see :func:`latentem.kernels.hmm.scale_emissions`).
        The counts of sequence i are multiplied by ``seq_weights[i]``. ``out``
        receives the posteriors (reused from one iteration to the next); ``s``
        picks one chain of a part with ``n_sets``.
        """
        sc, shift = scale_emissions(log_b) if scaled is None else scaled
        groups = sequence_groups(offsets) if groups is None else groups
        w = np.ones(len(offsets) - 1) if seq_weights is None else seq_weights
        post = np.empty(sc.shape) if out is None or out.shape != sc.shape else out
        start, trans = self._params(s)
        post, starts, transitions, seq_ll = forward_backward_into(
            sc, shift, offsets, groups, start, trans, w, post
        )
        return post, starts.sum(axis=0), transitions.sum(axis=0), seq_ll

    def log_likelihood(
        self,
        log_b: np.ndarray | None,
        offsets: np.ndarray,
        groups: np.ndarray | None = None,
        *,
        scaled: tuple[np.ndarray, np.ndarray] | None = None,
        s: int | None = None,
    ) -> np.ndarray:
        """Log-likelihood of each sequence (the forward pass alone)."""
        groups = sequence_groups(offsets) if groups is None else groups
        start, trans = self._params(s)
        if scaled is None:
            return forward_loglik(np.ascontiguousarray(log_b), offsets, groups, start, trans)
        return forward_loglik_scaled(scaled[0], scaled[1], offsets, groups, start, trans)

    def viterbi(
        self,
        log_b: np.ndarray,
        offsets: np.ndarray,
        groups: np.ndarray | None = None,
        s: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Most likely state path (n,) and its joint log-probability per sequence."""
        groups = sequence_groups(offsets) if groups is None else groups
        log_start, log_trans = self._log_params(s)
        # C order: the kernel's 8-state path reads the rows as vectors in place
        log_b = np.ascontiguousarray(log_b, dtype=np.float64)
        return viterbi(log_b, offsets, groups, log_start, log_trans)

    def _log_params(self, s: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Logs of the start and transition probabilities, kept while the arrays stand
        (same objects, same bytes), as decoding many short inputs asks for them again."""
        start, trans = self._params(s)
        last = self.__dict__.get("_logs")
        if (
            last is not None
            and last[0] == s
            and _unchanged(last[1], start, start.shape)
            and _unchanged(last[2], trans, trans.shape)
        ):
            return last[3], last[4]
        with np.errstate(divide="ignore"):
            logs = np.log(start), np.log(trans)
        if s is None and type(start) is np.ndarray and type(trans) is np.ndarray:
            kept = [(a, a.shape, a.tobytes()) for a in (start, trans)]
            self._logs = (s, kept[0], kept[1], logs[0], logs[1])
        return logs

    # ------------------------------------------------------------------ M-step
    def m_step(self, starts: np.ndarray, transitions: np.ndarray, letters: str = "st") -> None:
        """New probabilities from expected counts; a state never left keeps its old row,
        and structural zeros stay zero. A stationary start's transitions also weigh
        the expected first states (:func:`stationary_transitions`)."""
        kind = self.initial_kind
        if "s" in letters and kind == "free":
            self.startprob_ = dirichlet_m_step(
                starts, self.startprob_prior, self.startprob_, keep_zeros=True
            )
        if "t" in letters and kind == "stationary":
            # the prior's pseudo-counts join the counts, as in the closed form below
            prior = np.asarray(self.transmat_prior, dtype=np.float64) - 1.0
            counts = np.maximum(prior + transitions, 0.0)
            old = np.asarray(self.transmat_, dtype=np.float64)
            if self.n_sets is None:
                self.transmat_ = stationary_transitions(counts, starts, old)
            else:
                self.transmat_ = np.stack(
                    [stationary_transitions(c, g, o) for c, g, o in zip(counts, starts, old)]
                )
        elif "t" in letters:
            self.transmat_ = dirichlet_m_step(
                transitions, self.transmat_prior, self.transmat_, keep_zeros=True
            )

    def log_prior(self) -> float:
        """Dirichlet log-prior of the transition probabilities and of a free start."""
        start = 0.0
        if self.initial_kind == "free":
            start = dirichlet_log_prior(self.startprob_, self.startprob_prior)
        return start + dirichlet_log_prior(self.transmat_, self.transmat_prior)

    def n_parameters(self) -> int:
        """Free probabilities, structural zeros not counted (a start that is not free
        adds none)."""
        R = 1 if self.n_sets is None else int(self.n_sets)
        start = 0
        if self.initial_kind == "free":
            start = int(np.count_nonzero(self.startprob_)) - R
        trans = int(np.count_nonzero(self.transmat_)) - R * self.n_components
        return start + trans

    def vector_parts(self) -> list:
        """``(holder, attribute, is_simplex)`` of the free arrays, for SQUAREM (a start
        that is not free follows ``initial``)."""
        parts = [(self, "transmat_", True)]
        return ([(self, "startprob_", True)] if self.initial_kind == "free" else []) + parts

    def sample_states(
        self, n_samples: int, rng: np.random.Generator, currstate: int | None = None
    ) -> np.ndarray:
        """One path of ``n_samples`` states (one chain), starting from ``currstate`` if given."""
        K = self.n_components
        states = np.empty(n_samples, dtype=np.int64)
        state = rng.choice(K, p=self.startprob_) if currstate is None else int(currstate)
        for t in range(n_samples):
            if t > 0:
                state = rng.choice(K, p=self.transmat_[state])
            states[t] = state
        return states
