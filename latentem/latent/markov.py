"""The Markov-chain latent structure: one discrete state per row, following a chain
along each sequence.

Over an emission family it makes a hidden Markov model. It owns the start
and transition probabilities; its statistics are the expected starts and
transitions, from the batched forward-backward kernels of
:mod:`latentem.kernels.hmm`.
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

__all__ = ["MarkovLatent"]


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
    """

    def __init__(
        self,
        n_components: int,
        startprob_prior: Any = 1.0,
        transmat_prior: Any = 1.0,
        n_sets: int | None = None,
    ) -> None:
        self.n_components = int(n_components)
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.n_sets = n_sets
        self.startprob_: np.ndarray | None = None
        self.transmat_: np.ndarray | None = None

    def _sets(self) -> tuple[int, ...]:
        return () if self.n_sets is None else (int(self.n_sets),)

    # ------------------------------------------------------------------ parameters
    def init(self, rng: np.random.Generator, letters: str = "st") -> None:
        """Uniform start probabilities (``s``) and sticky random transitions (``t``):
        states persist, and the symmetry between them is broken."""
        K, sets = self.n_components, self._sets()
        if "s" in letters:
            self.startprob_ = np.full(sets + (K,), 1.0 / K)
        if "t" in letters:
            self.transmat_ = 0.5 * np.eye(K) + 0.5 * rng.dirichlet(np.ones(K), size=sets + (K,))

    def check_params(self, names: tuple[str, ...] = ("startprob_", "transmat_")) -> None:
        """Raise ValueError unless the arrays (both by default) are set, shaped right
        and on the simplex."""
        K, sets = self.n_components, self._sets()
        shapes = {"startprob_": sets + (K,), "transmat_": sets + (K, K)}
        for name, shape in ((name, shapes[name]) for name in names):
            value = getattr(self, name, None)
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
        start, trans = self._params(s)
        with np.errstate(divide="ignore"):
            # C order: the kernel's 8-state path reads the rows as vectors in place
            log_b = np.ascontiguousarray(log_b, dtype=np.float64)
            return viterbi(log_b, offsets, groups, np.log(start), np.log(trans))

    # ------------------------------------------------------------------ M-step
    def m_step(self, starts: np.ndarray, transitions: np.ndarray, letters: str = "st") -> None:
        """New probabilities from expected counts; a state never left keeps its old row,
        and structural zeros stay zero."""
        if "s" in letters:
            self.startprob_ = dirichlet_m_step(
                starts, self.startprob_prior, self.startprob_, keep_zeros=True
            )
        if "t" in letters:
            self.transmat_ = dirichlet_m_step(
                transitions, self.transmat_prior, self.transmat_, keep_zeros=True
            )

    def log_prior(self) -> float:
        """Dirichlet log-prior of the start and transition probabilities."""
        return dirichlet_log_prior(self.startprob_, self.startprob_prior) + dirichlet_log_prior(
            self.transmat_, self.transmat_prior
        )

    def n_parameters(self) -> int:
        """Free probabilities, structural zeros not counted."""
        R = 1 if self.n_sets is None else int(self.n_sets)
        start = int(np.count_nonzero(self.startprob_)) - R
        trans = int(np.count_nonzero(self.transmat_)) - R * self.n_components
        return start + trans

    def vector_parts(self) -> list:
        """``(holder, attribute, is_simplex)`` of both arrays, for SQUAREM."""
        return [(self, "startprob_", True), (self, "transmat_", True)]

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
