"""hmmlearn's ``ConvergenceMonitor``: the ``monitor_`` of every HMM.

hmmlearn reports convergence only through ``model.monitor_`` (no warning),
and lets users swap in a subclass with their own ``converged`` test. The
same works here: the fit reports every iteration's objective to the
monitor, and a subclass that redefines ``converged`` stops the fit when it
says so. The objective is what hmmlearn reports as its "lower bound": the
quantity the fit maximises and never lowers, here the log-likelihood plus the
log-prior of the parameters (the log-likelihood alone when the priors are
flat, as hmmlearn's are for GMMHMM; ``history_`` on the model is always the
log-likelihood alone). The runner's full record of the fit (:class:`~latentem.EMResult`)
is ``monitor_.result``; its fields (``objective_history``, ``n_e_steps``,
...) can also be read off the monitor directly.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["ConvergenceMonitor"]


class ConvergenceMonitor:
    """History and convergence of an HMM fit, with hmmlearn's attributes.

    Parameters
    ----------
    tol : float
        The model's ``tol`` (latentem tests it on the mean log-likelihood
        per observation; hmmlearn on the total).
    n_iter : int
        Maximum EM iterations.
    verbose : bool
        Kept for hmmlearn's signature; progress lines come from the runner
        (``verbose=True`` on the model).

    Attributes
    ----------
    history : deque of float
        The objective at every iteration, in order: log-likelihood plus
        log-prior, which EM never lowers (the log-likelihood alone, the
        model's ``history_``, may dip by what a prior trades off).
    iter : int
        Iterations run.
    converged : bool
        Whether the fit met its convergence test (not merely ran out of
        ``n_iter``; hmmlearn counts that as converged too).
    result : EMResult or None
        The runner's record of the last fit.

    Examples
    --------
    A stricter test, as in hmmlearn's documentation:

    >>> import numpy as np
    >>> from latentem import GaussianHMM
    >>> from latentem.models.hmm import ConvergenceMonitor
    >>> class ThresholdMonitor(ConvergenceMonitor):
    ...     @property
    ...     def converged(self):
    ...         return len(self.history) >= 2 and self.history[-1] - self.history[-2] < 1.0
    >>> model = GaussianHMM(2, n_iter=100, random_state=0)
    >>> model.monitor_ = ThresholdMonitor(model.monitor_.tol, model.monitor_.n_iter, False)
    >>> X = np.random.default_rng(0).normal(size=(300, 1))
    >>> model.fit(X).monitor_.iter < 100
    True
    """

    def __init__(self, tol: float, n_iter: int, verbose: bool) -> None:
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history: deque = deque()
        self.iter = 0
        self.result = None
        self._converged = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tol={self.tol!r}, n_iter={self.n_iter!r}, "
            f"iter={self.iter}, converged={self.converged}, history={list(self.history)})"
        )

    def __getattr__(self, name: str) -> Any:
        # the runner's record (objective_history, n_e_steps, ...) through the monitor
        result = self.__dict__.get("result")
        if result is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(result, name)

    def _reset(self) -> None:
        """Forget the previous fit (hmmlearn's name)."""
        self.iter = 0
        self.history.clear()
        self.result = None
        self._converged = False

    def report(self, log_prob: float) -> None:
        """Record one iteration's objective (log-likelihood plus log-prior)."""
        self.history.append(float(log_prob))
        self.iter += 1

    @property
    def converged(self) -> bool:
        """Whether the last fit met its convergence test."""
        return self._converged

    def _finish(self, result: Any) -> None:
        """After the fit: the kept restart's history and the runner's verdict."""
        self.result = result
        self.history = deque(float(v) for v in result.objective_history)
        self.iter = int(result.n_iter)
        self._converged = bool(result.converged)

    @classmethod
    def _decides(cls, monitor: Any) -> bool:
        """Whether ``monitor`` brings its own ``converged`` test (a user's subclass),
        which then stops the fit."""
        return type(monitor).converged is not cls.converged
