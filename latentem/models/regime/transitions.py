"""The regime chain of the regime-switching models: transition matrices and their M-step.

Constant transitions, or multinomial-logit ones in covariates ``z_t``
(time-varying transition probabilities, TVTP): the logit helpers, the
stationary distribution, the initial distribution of the extended state
``(S_t, ..., S_{t-order})`` at each sequence's first row, and the transition
part of the M-step (closed form, or Newton on the logits with a stationary
start or TVTP), in :class:`_RegimeTransitions`, a mixin of the models.
"""

from __future__ import annotations

import numpy as np

from latentem.kernels.regime import initial_extended, newton_logit, tvtp_matrices

# The chain's helpers live with the HMM's Markov chain, which shares this M-step.
from latentem.latent.markov import _logits as _logits
from latentem.latent.markov import _softmax_last_zero as _softmax_last_zero
from latentem.latent.markov import _stationary as _stationary
from latentem.latent.markov import start_distribution, stationary_transitions
from latentem.models.regime.data import RegimeData

__all__: list[str] = []


def _tvtp_matrices(z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Transition matrices (T, K, K) from covariates z (T, kz) and logits coef (K, K-1, kz)."""
    return tvtp_matrices(
        np.ascontiguousarray(z, dtype=np.float64), np.ascontiguousarray(coef, dtype=np.float64)
    )


class _RegimeTransitions:
    """The Markov chain of the regimes (a mixin of the regime-switching models)."""

    def _transitions(self, data: RegimeData) -> tuple[np.ndarray, np.ndarray]:
        """(trans, tidx): matrices and, per effective row, which one moves into it."""
        if self._tvtp:
            trans = _tvtp_matrices(data.exog_tvtp, self.tvtp_coef_)  # (N, K, K)
            return np.ascontiguousarray(trans), data.rows
        return self.transmat_[None].copy(), np.zeros(len(data), dtype=np.int64)

    def _initial_ext(self, data: RegimeData, trans: np.ndarray) -> np.ndarray:
        """(n_seq, M) distribution of the extended state at each sequence's first row."""
        if not self._tvtp:  # the same for every sequence
            one = initial_extended(
                trans, np.zeros(1, dtype=np.int64), 0, self._start_vector(trans[0])[None], self._ext
            )
            return np.repeat(one, data.n_sequences, axis=0)
        first = data.full_offsets[:-1]
        start = np.array([self._start_vector(trans[s]) for s in first])
        return initial_extended(trans, first, 1, start, self._ext)

    def _start_vector(self, P: np.ndarray) -> np.ndarray:
        return start_distribution(self.initial, P, getattr(self, "startprob_", None))

    # ------------------------------------------------------------ transition M-step
    def _transition_m_step(self, stats: dict) -> None:
        oldest = stats["oldest"]
        if self._initial_kind == "free":
            tot = oldest.sum(axis=0)
            self.startprob_ = tot / tot.sum()
        stationary = self._initial_kind == "stationary"
        if not self._tvtp:
            if stationary:  # the start's term sum_k g_k log pi_k(P): Newton on the logits
                g = oldest.sum(axis=0)
                self.transmat_ = stationary_transitions(stats["trans"], g, self.transmat_)
                return
            counts = stats["trans"]
            rows = counts.sum(axis=1, keepdims=True)
            self.transmat_ = np.where(
                rows > 0, counts / np.where(rows > 0, rows, 1.0), self.transmat_
            )
            return
        # Time-varying transitions: a weighted multinomial logit per origin regime.
        try:
            self.tvtp_coef_ = newton_logit(
                np.ascontiguousarray(self.tvtp_coef_, dtype=np.float64),
                np.ascontiguousarray(stats["xi"]),
                np.ascontiguousarray(stats["z"]),
                np.ascontiguousarray(stats["z0"]),
                np.ascontiguousarray(oldest, dtype=np.float64),
                stationary,
                30,
            )
        except np.linalg.LinAlgError:
            pass  # a degenerate (reducible) chain at a first row: keep the coefficients
