"""Online (stochastic) EM for streams read once (Cappé and Moulines, 2009).

Each mini-batch ``X_t`` gives expected statistics ``s(X_t; theta_{t-1})``
per sample; a running average

.. math:: \\bar s_t = (1 - \\gamma_t)\\, \\bar s_{t-1} + \\gamma_t\\, s(X_t; \\theta_{t-1}) / n_t

replaces the full-data statistics, and the ordinary M-step maps it to
``theta_t``. The step sizes are

.. math:: \\gamma_t = ((1 + \\tau) / (t + \\tau))^{\\kappa}, \\quad t = 1, 2, \\dots

with ``decay`` :math:`\\kappa \\in (1/2, 1]` and ``offset`` :math:`\\tau \\ge 0`;
:math:`\\gamma_1 = 1`, so the first batch alone gives the first estimate, and
:math:`\\sum \\gamma_t = \\infty`, :math:`\\sum \\gamma_t^2 < \\infty`, the
conditions under which Cappé and Moulines (JRSS-B 71:593, 2009) show
convergence to a stationary point of the likelihood. ``decay=1, offset=0``
gives the plain running mean (one pass of incremental EM with frozen
responsibilities); smaller ``decay`` forgets old batches faster; a larger
``offset`` damps the first steps.

Statistics that depend on the current parameters (the Gaussian mixture's
are taken about the current means, to avoid cancellation) are moved to one
fixed reference before averaging: a model offers ``stats_reference()`` and
``move_stats(stats, src, dst)``; models without them have
parameter-free statistics.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from latentem import tree
from latentem._validation import check_random_state
from latentem.backends.base import validate_block

__all__ = ["OnlineEM", "step_size"]


def step_size(t: int, decay: float = 0.6, offset: float = 1.0) -> float:
    """The step size ``gamma_t = ((1 + offset) / (t + offset)) ** decay`` for batch ``t >= 1``.

    >>> step_size(1), round(step_size(2, decay=1.0, offset=0.0), 3)
    (1.0, 0.5)
    """
    return ((1.0 + offset) / (t + offset)) ** decay


def _check_schedule(decay: Any, offset: Any) -> tuple[float, float]:
    ok = (
        isinstance(decay, numbers.Real)
        and not isinstance(decay, bool)
        and 0.5 < decay <= 1.0
        and isinstance(offset, numbers.Real)
        and not isinstance(offset, bool)
        and math.isfinite(offset)
        and offset >= 0
    )
    if not ok:
        raise ValueError(
            f"the step-size schedule needs 0.5 < decay <= 1 and offset >= 0; got "
            f"decay={decay!r}, offset={offset!r}."
        )
    return float(decay), float(offset)


class OnlineEM:
    """Drive any additive-statistics model by online EM, one mini-batch at a time.

    Parameters
    ----------
    model : LatentModel
        Fitted in place. If it has no parameters yet, ``init_params`` runs on
        the first batch.
    decay, offset : float
        The step-size schedule (see :func:`step_size`): ``0.5 < decay <= 1``,
        ``offset >= 0``.
    random_state : None, int or Generator
        Seeds ``init_params`` on the first batch.
    warm_start : bool
        Start from the model's current parameters (for example after
        ``fit``) instead of calling ``init_params``.

    Attributes
    ----------
    n_batches_ : int
    n_samples_seen_ : int
    log_likelihood_ : float
        Running average (same step sizes) of the per-sample log-likelihood of
        each batch, evaluated before the batch updated the parameters: an
        honest, out-of-sample score of the stream.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> from latentem.backends import OnlineEM
    >>> rng = np.random.default_rng(0)
    >>> online = OnlineEM(GaussianMixture(2), random_state=0)
    >>> for _ in range(50):
    ...     z = rng.random(200) < 0.3
    ...     _ = online.partial_fit(np.where(z[:, None], -4.0, 4.0) + rng.normal(size=(200, 1)))
    >>> np.round(np.sort(online.model.means_[:, 0]))
    array([-4.,  4.])
    """

    def __init__(
        self,
        model: Any,
        *,
        decay: float = 0.6,
        offset: float = 1.0,
        random_state: Any = None,
        warm_start: bool = False,
    ) -> None:
        self.model = model
        self.decay, self.offset = _check_schedule(decay, offset)
        self.rng = check_random_state(random_state)
        self.warm_start = bool(warm_start)
        self.n_batches_ = 0
        self.n_samples_seen_ = 0
        self.log_likelihood_ = math.nan
        self._stats = None
        self._ref = None

    def _move(self, stats: Any, src: Any, dst: Any) -> Any:
        move = getattr(self.model, "move_stats", None)
        return move(stats, src, dst) if callable(move) else stats

    def _reference(self) -> Any:
        ref = getattr(self.model, "stats_reference", None)
        return ref() if callable(ref) else None

    def partial_fit(self, X: Any) -> OnlineEM:
        """Update the model with one mini-batch (read once); returns self."""
        model = self.model
        if self.n_batches_ == 0:
            check = getattr(model, "validate_data", None)
            X = check(X) if callable(check) else validate_block(model, X)
            if not self.warm_start:
                model.init_params(X, self.rng)
            self._ref = self._reference()
        else:
            X = validate_block(model, X)
        n = len(X)
        if n == 0:
            raise ValueError("the batch is empty (0 samples).")
        stats, ll = model.e_step(X)
        if not math.isfinite(float(ll)):
            raise FloatingPointError(
                f"the log-likelihood of batch {self.n_batches_ + 1} is {ll}; the batch is "
                "impossible under the current parameters."
            )
        stats = tree.scale(self._move(stats, self._reference(), self._ref), 1.0 / n)
        t = self.n_batches_ + 1
        gamma = step_size(t, self.decay, self.offset)
        if self._stats is None:
            self._stats = stats
            self.log_likelihood_ = float(ll) / n
        else:
            self._stats = tree.add(tree.scale(self._stats, 1.0 - gamma), tree.scale(stats, gamma))
            self.log_likelihood_ += gamma * (float(ll) / n - self.log_likelihood_)
        model.m_step(self._move(self._stats, self._ref, self._reference()))
        self.n_batches_ = t
        self.n_samples_seen_ += n
        return self
