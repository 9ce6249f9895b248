"""The generic EM runner: restarts, convergence, a monotone guard, SQUAREM, progress.

The runner knows nothing about any particular model: it only calls the four
methods of :class:`latentem.LatentModel` (and, for acceleration, the
parameter-vector view of :class:`latentem.SupportsParamVector`).

It also decides where the E-step runs (:mod:`latentem.backends`: in memory, block
by block, on Dask). Models stay out of that layer: what they may ask about their
data (:func:`is_out_of_core`, :func:`is_dask_array`, :func:`is_sequence_data`), the
one scan they need before EM (:func:`column_moments`), :class:`Chunked` sources and
online EM (:class:`OnlineEM`) come from here.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latentem import backends
from latentem._sklearn import convergence_warning_class
from latentem._validation import check_positive_int, check_random_state
from latentem.backends import (
    Chunked,
    OnlineEM,
    column_moments,
    is_dask_array,
    is_out_of_core,
    is_sequence_data,
)
from latentem.protocol import LatentModel, SupportsParamVector

__all__ = [
    "Chunked",
    "ConvergenceWarning",
    "EMResult",
    "IterationInfo",
    "LikelihoodDecreaseWarning",
    "OnlineEM",
    "column_moments",
    "fit_em",
    "is_dask_array",
    "is_out_of_core",
    "is_sequence_data",
]

_ACCELERATORS = (None, "squarem")


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the convergence test was met.

    When scikit-learn is loaded, the warning raised is also a
    ``sklearn.exceptions.ConvergenceWarning`` (filters and ``pytest.warns``
    on either class see it); latentem never imports scikit-learn for this.

    Examples
    --------
    >>> import warnings
    >>> from latentem import ConvergenceWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ConvergenceWarning)  # silence it for a block
    """


class LikelihoodDecreaseWarning(UserWarning):
    """An EM step lowered the log-likelihood by more than rounding noise.

    EM never lowers the likelihood, so this points at a bug in the model's
    E- or M-step or at a numerical problem (for example a near-singular
    covariance). Turn it into an error while developing a model:

    Examples
    --------
    >>> import warnings
    >>> from latentem import LikelihoodDecreaseWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", LikelihoodDecreaseWarning)
    """


@dataclass
class IterationInfo:
    """What a ``callback`` receives after every iteration.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianMixture, fit_em
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> seen = []
    >>> result = fit_em(GaussianMixture(2), X, random_state=0, callback=seen.append)
    >>> seen[0].iteration, len(seen) == result.n_iter
    (1, True)
    """

    restart: int
    iteration: int
    log_likelihood: float
    change: float  # change of the mean per-sample log-likelihood
    elapsed: float
    model: Any = field(repr=False)
    objective: float = math.nan  # log-likelihood plus log-prior: what EM never lowers


@dataclass
class EMResult:
    """The outcome of :func:`fit_em`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import GaussianMixture, fit_em
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> result = fit_em(GaussianMixture(2), X, tol=1e-4, max_iter=1000, random_state=0)
    >>> result.converged, bool(np.all(np.diff(result.history) >= -1e-9))
    (True, True)

    Attributes
    ----------
    history : ndarray
        Total log-likelihood from each E-step of the best restart, in order.
        ``history[i]`` is evaluated at the parameters *before* the i-th
        M-step, as scikit-learn's ``lower_bound_``.
    n_iter : int
        EM iterations (E-step plus M-step) run by the best restart.
    converged : bool
        Whether the best restart met the convergence test.
    best_init : int
        Index of the restart that was kept.
    log_likelihood : float
        ``history[-1]``: the best restart's final log-likelihood.
    n_samples : int
        Number of samples (``len(X)``) used to scale ``tol``.
    wall_time : float
        Seconds for the whole call, all restarts included.
    histories : list of ndarray
        The history of every restart.
    objective_history : ndarray
        What EM actually maximises, at each iteration of the best restart: the
        log-likelihood plus ``model.log_prior()`` for models fitted with
        priors (MAP-EM, e.g. hmmlearn's default covariance prior), else equal
        to ``history``. The monotone check and the convergence test use it:
        with a prior, the log-likelihood alone may dip slightly.
    n_e_steps : int
        E-steps of the best restart, rejected SQUAREM trials included.
    """

    history: np.ndarray
    n_iter: int
    converged: bool
    best_init: int
    log_likelihood: float
    n_samples: int
    wall_time: float
    histories: list[np.ndarray]
    n_e_steps: int
    objective_history: np.ndarray

    @property
    def mean_log_likelihood(self) -> float:
        """Final log-likelihood per sample (scikit-learn's ``lower_bound_``)."""
        return self.log_likelihood / self.n_samples


def fit_em(
    model: LatentModel,
    X: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    n_init: int = 1,
    random_state: Any = None,
    accelerate: str | None = None,
    callback: Callable[[IterationInfo], Any] | None = None,
    verbose: bool | int = False,
    warm_start: bool = False,
    backend: str | None = None,
) -> EMResult:
    """Fit ``model`` to ``X`` by expectation-maximization.

    Parameters
    ----------
    model : LatentModel
        Any object with ``init_params``, ``e_step``, ``m_step`` and
        ``log_likelihood``. It is fitted in place and left with the
        parameters of the best restart.
    X : array-like
        The data, passed unchanged to the model's methods (after the model's
        own ``validate_data``, when it has one). A :class:`numpy.memmap`, a
        :class:`latentem.backends.Chunked` or a ``dask.array`` is E-stepped
        block by block instead (see ``backend``).
    max_iter : int
        Maximum EM iterations per restart (>= 1).
    tol : float
        Stop when the absolute change of the mean per-sample log-likelihood
        between two iterations is below ``tol`` (strictly, as scikit-learn and
        hmmlearn): ``tol=0`` runs ``max_iter`` iterations.
    n_init : int
        Number of restarts from different starting parameters; the one with
        the highest final log-likelihood is kept.
    random_state : None, int, SeedSequence or Generator
        Seeds the restarts. The same value gives the same fit, bit for bit.
    accelerate : {None, "squarem"}
        ``"squarem"`` extrapolates along the EM path (Varadhan and Roland,
        2008). An extrapolated point is kept only if the model accepts it as
        feasible and it does not lower the log-likelihood; otherwise the
        plain EM step is taken, so the likelihood still never decreases.
        Needs ``get_param_vector`` and ``set_param_vector`` on the model.
    callback : callable, optional
        Called with an :class:`IterationInfo` after every iteration; return
        ``True`` to stop this restart early.
    verbose : bool or int
        Print a progress line (log-likelihood, change, elapsed) to stderr.
        On a terminal the line is rewritten in place; in logs it is printed
        at most once a second, or every iteration with ``verbose=2``.
    warm_start : bool
        Start from the model's current parameters instead of calling
        ``init_params`` (only with ``n_init=1``).
    backend : {None, "memory", "chunked", "dask"}
        Where the E-step runs. None chooses from ``X``: memmaps and
        :class:`~latentem.backends.Chunked` data run block by block with
        bounded memory, dask arrays on the Dask workers holding each block,
        anything else in memory. Block statistics are added in a fixed order,
        so the result does not depend on timing (see docs/scaling.md).
        Out-of-core data give ``init_params`` at most ``init_rows`` rows
        spread evenly over ``X`` (all of them when there are no more).

    Returns
    -------
    EMResult

    Examples
    --------
    A two-component mixture of exponentials, written against the protocol:

    >>> import numpy as np
    >>> from latentem import fit_em
    >>> class ExpMixture:
    ...     def init_params(self, X, rng):
    ...         self.w = np.array([0.5, 0.5])
    ...         self.rate = 1.0 / (X.mean() * rng.uniform(0.5, 2.0, size=2))
    ...     def _log_joint(self, X):
    ...         return np.log(self.w) + np.log(self.rate) - np.outer(X, self.rate)
    ...     def e_step(self, X):
    ...         lj = self._log_joint(X)
    ...         ll = np.logaddexp.reduce(lj, axis=1)
    ...         r = np.exp(lj - ll[:, None])
    ...         return (r.sum(0), r.T @ X), float(ll.sum())
    ...     def m_step(self, stats):
    ...         counts, sums = stats
    ...         self.w, self.rate = counts / counts.sum(), counts / sums
    ...     def log_likelihood(self, X):
    ...         return float(np.logaddexp.reduce(self._log_joint(X), axis=1).sum())
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.exponential(1.0, 3000), rng.exponential(10.0, 1000)])
    >>> model = ExpMixture()
    >>> result = fit_em(model, X, max_iter=500, tol=1e-8, random_state=0)
    >>> result.converged, bool(np.all(np.diff(result.history) >= 0))
    (True, True)
    >>> np.round(np.sort(1 / model.rate), 0)
    array([ 1., 10.])
    """
    start = time.perf_counter()
    if not _satisfies(model, LatentModel):
        missing = [
            m
            for m in ("init_params", "e_step", "m_step", "log_likelihood")
            if not callable(getattr(model, m, None))
        ]
        raise ValueError(
            f"{type(model).__name__} is not a LatentModel: it lacks {', '.join(missing)}. "
            "See latentem.LatentModel for the four methods fit_em needs."
        )
    max_iter = check_positive_int(max_iter, "max_iter")
    n_init = check_positive_int(n_init, "n_init")
    if (
        isinstance(tol, bool)
        or not isinstance(tol, numbers.Real)
        or not math.isfinite(tol)
        or tol < 0
    ):
        raise ValueError(f"tol must be a finite number >= 0; got {tol!r}.")
    if accelerate not in _ACCELERATORS:
        raise ValueError(f"accelerate must be one of {_ACCELERATORS}; got {accelerate!r}.")
    if accelerate == "squarem" and not _satisfies(model, SupportsParamVector):
        raise ValueError(
            f'accelerate="squarem" needs get_param_vector() and set_param_vector(theta) on '
            f"{type(model).__name__}; add them or use accelerate=None."
        )
    if warm_start and n_init != 1:
        raise ValueError("warm_start=True continues one fit; it needs n_init=1.")
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable; got {callback!r}.")

    source = backends.resolve(model, X, backend)
    if source is None:  # in memory
        X = _validate_data(model, X)
        n_samples, init_X, e_step = len(X), X, model.e_step
    else:  # block by block: statistics of all blocks, summed in a fixed order
        n_samples = source.n_samples
        init_X = None if warm_start else source.init_data()
        e_step = lambda _X: source.e_step()  # noqa: E731
    rngs = _restart_generators(random_state, n_init)
    progress = _Progress(int(verbose), n_init)
    run_one = _run_squarem if accelerate == "squarem" else _run_plain

    best = None  # (final objective, restart, history, converged, stopped, n_e_steps, objectives)
    best_state = None
    histories = []
    for restart in range(n_init):
        if not warm_start:
            model.init_params(init_X, rngs[restart])
        loop = _Loop(model, n_samples, max_iter, tol, callback, progress, restart, start, e_step)
        run_one(model, X, loop)
        hist = np.asarray(loop.history, dtype=np.float64)
        objectives = np.asarray(loop.objectives, dtype=np.float64)
        histories.append(hist)
        if best is None or objectives[-1] > best[0]:
            best = (
                objectives[-1],
                restart,
                hist,
                loop.converged,
                loop.stopped,
                loop.n_e_steps,
                objectives,
            )
            if n_init > 1 and restart < n_init - 1:
                best_state = _snapshot(model)
            else:
                best_state = None  # the model already holds it
        progress.done(loop)
    assert best is not None
    if best_state is not None:
        _restore(model, best_state)

    _, best_init, history, converged, stopped, n_e_steps, objectives = best
    if not (converged or stopped):
        warnings.warn(
            f"EM did not converge in max_iter={max_iter} iterations (tol={tol:g} on the mean "
            f"per-sample log-likelihood, last change {_last_change(history, n_samples):.3g}); "
            "raise max_iter, loosen tol, or try accelerate='squarem'.",
            convergence_warning_class(),
            stacklevel=2,
        )
    return EMResult(
        history=history,
        n_iter=len(history),
        converged=converged,
        best_init=best_init,
        log_likelihood=float(history[-1]),
        n_samples=n_samples,
        wall_time=time.perf_counter() - start,
        histories=histories,
        n_e_steps=n_e_steps,
        objective_history=objectives,
    )


class _Loop:
    """Book-keeping for one restart: history, convergence, guard, callback."""

    def __init__(
        self, model, n_samples, max_iter, tol, callback, progress, restart, start, e_step=None
    ):
        self.model = model
        self._e_step = model.e_step if e_step is None else e_step
        self.n_samples = n_samples
        self.max_iter = max_iter
        self.tol = tol
        self.callback = callback
        self.progress = progress
        self.restart = restart
        self.start = start
        self.history: list[float] = []
        self.objectives: list[float] = []
        log_prior = getattr(model, "log_prior", None)
        self.log_prior = log_prior if callable(log_prior) else None
        # the clock is read per iteration only for someone who looks at it
        self.timed = bool(progress.verbose) or callback is not None
        self.converged = False
        self.stopped = False
        self.n_e_steps = 0

    def e_step(self, X):
        """Statistics, log-likelihood and objective (log-likelihood plus log-prior)."""
        stats, ll = self._e_step(X)
        self.n_e_steps += 1
        ll = float(ll)
        objective = ll if self.log_prior is None else ll + float(self.log_prior())
        return stats, ll, objective

    @property
    def finished(self) -> bool:
        return self.converged or self.stopped or len(self.history) >= self.max_iter

    def record(self, ll: float, objective: float, test_convergence: bool = True) -> None:
        """Record one iteration (its M-step has been applied).

        The guard and the convergence test use the objective, which EM never
        lowers; it equals the log-likelihood unless the model has a prior.
        """
        iteration = len(self.history) + 1
        if not (math.isfinite(ll) and math.isfinite(objective)):
            raise FloatingPointError(
                f"the log-likelihood is {ll} at iteration {iteration} (restart {self.restart}); "
                "the data or the starting parameters are degenerate for this model "
                "(for Gaussian models, try a larger regularisation such as reg_covar)."
            )
        change = math.nan
        if self.history:
            prev = self.objectives[-1]
            change = (objective - prev) / self.n_samples
            noise = 1e-10 * (abs(prev) + self.n_samples)
            if prev - objective > noise:
                what = "log-likelihood" if self.log_prior is None else "log-posterior"
                warnings.warn(
                    f"the {what} decreased at iteration {iteration} (restart "
                    f"{self.restart}) by {prev - objective:.6g} (from {prev:.10g} to "
                    f"{objective:.10g}); EM never lowers it, so the model's E- or M-step is "
                    "wrong or numerically unstable.",
                    LikelihoodDecreaseWarning,
                    stacklevel=4,
                )
            # strictly below, as scikit-learn and hmmlearn: tol=0 runs max_iter
            if test_convergence and abs(change) < self.tol:
                self.converged = True
        self.history.append(ll)
        self.objectives.append(objective)
        if not self.timed:
            return
        elapsed = time.perf_counter() - self.start
        self.progress.update(self.restart, iteration, ll, change, elapsed)
        if self.callback is not None:
            info = IterationInfo(
                self.restart, iteration, ll, change, elapsed, self.model, objective
            )
            if self.callback(info) is True:
                self.stopped = True


def _run_plain(model, X, loop: _Loop) -> None:
    while not loop.finished:
        stats, ll, objective = loop.e_step(X)
        model.m_step(stats)
        loop.record(ll, objective)


def _run_squarem(model, X, loop: _Loop, max_backtracks: int = 8) -> None:
    """SQUAREM (SqS3 step length) with backtracking towards the plain EM step.

    One cycle: two EM steps theta0 -> theta1 -> theta2, then the extrapolation
    theta0 - 2 a r + a^2 v with r = theta1 - theta0, v = theta2 - 2 theta1 +
    theta0 and a = -|r|/|v|. The extrapolated point is kept if the model
    accepts it and its objective (log-likelihood, plus log-prior if any) is
    at least that of theta1 (the last recorded one); otherwise a is pulled
    halfway towards -1, where the extrapolation equals theta2, the plain EM
    step. Kept points are followed
    by their M-step, so every recorded value is an E-step followed by an
    M-step and the history never decreases.
    """
    while not loop.finished:
        theta0 = np.array(model.get_param_vector(), dtype=np.float64)
        stats, ll0, obj0 = loop.e_step(X)
        model.m_step(stats)
        loop.record(ll0, obj0)
        if loop.finished:
            return
        theta1 = np.array(model.get_param_vector(), dtype=np.float64)
        stats, ll1, obj1 = loop.e_step(X)
        model.m_step(stats)
        loop.record(ll1, obj1)
        if loop.finished:
            return
        theta2 = np.array(model.get_param_vector(), dtype=np.float64)
        r = theta1 - theta0
        v = theta2 - theta1 - r
        rr, vv = float(r @ r), float(v @ v)
        if not (vv > 0.0 and math.isfinite(rr) and math.isfinite(vv)):
            continue  # the path is straight or done: theta2 stays
        alpha = min(-math.sqrt(rr / vv), -1.0)
        for _ in range(max_backtracks):
            if alpha > -1.0 - 1e-3:
                break
            if model.set_param_vector(theta0 - 2.0 * alpha * r + alpha * alpha * v):
                stats, ll, obj = loop.e_step(X)
                if math.isfinite(obj) and obj >= obj1:
                    model.m_step(stats)
                    loop.record(ll, obj, test_convergence=False)
                    break
            alpha = 0.5 * (alpha - 1.0)
        else:
            alpha = -1.0
        if alpha > -1.0 - 1e-3 and not model.set_param_vector(theta2):
            raise RuntimeError(
                f"{type(model).__name__}.set_param_vector rejected its own EM update; "
                "its get_param_vector and set_param_vector disagree."
            )


#: (class, protocol) pairs known to satisfy the protocol: a runtime Protocol check
#: costs microseconds, a noticeable share of fitting a small model
_SATISFIED: set = set()


def _satisfies(model, protocol) -> bool:
    key = (type(model), protocol)
    if key in _SATISFIED:
        return True
    if isinstance(model, protocol):
        _SATISFIED.add(key)
        return True
    return False


def _validate_data(model, X):
    validate = getattr(model, "validate_data", None)
    if callable(validate):
        X = validate(X)
    elif isinstance(X, np.ndarray) and X.dtype.kind in "fc" and not np.isfinite(X).all():
        raise ValueError(
            "X contains NaN or inf and the model has no validate_data() to say it accepts "
            "them; remove those values or give the model a validate_data method."
        )
    try:
        n = len(X)
    except TypeError:
        raise ValueError(
            f"X must be a sized collection of samples (len(X) works); got {type(X).__name__}."
        ) from None
    if n == 0:
        raise ValueError("X is empty (0 samples); pass at least one sample.")
    return X


def _restart_generators(random_state, n_init: int) -> list[np.random.Generator]:
    """One generator per restart: the children ``Generator.spawn`` gives.

    For an int or None they are made straight from the seed sequence, without
    the parent's own generator, which nobody draws from (a parent generator and
    its spawn cost tens of microseconds, a visible share of a small fit); a
    Generator or SeedSequence the user passed is spawned from as before.
    """
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)
    ):
        entropy = np.random.SeedSequence(random_state).entropy
        return [
            np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(i,))))
            for i in range(n_init)
        ]
    return check_random_state(random_state).spawn(n_init)


def _snapshot(model) -> Any:
    if hasattr(model, "__dict__"):
        return copy.deepcopy(vars(model))
    return np.array(model.get_param_vector(), copy=True)


def _restore(model, state) -> None:
    if isinstance(state, dict):
        vars(model).clear()
        vars(model).update(state)
    else:
        model.set_param_vector(state)


def _last_change(history: np.ndarray, n_samples: int) -> float:
    return float(history[-1] - history[-2]) / n_samples if len(history) > 1 else math.nan


#: Seconds a fit must run before the live progress line appears on a terminal.
#: 0 in library use (``verbose`` asked for it); the command line sets 2, so that
#: only fits long enough to wonder about show a line, and short ones print nothing.
TTY_PROGRESS_DELAY = 0.0


class _Progress:
    """A live progress line on a terminal, rate-limited lines in logs, or nothing."""

    def __init__(self, verbose: int, n_init: int, stream=None, delay: float | None = None):
        self.verbose = verbose
        self.n_init = n_init
        if not verbose:
            return  # silent: nothing to ask of the stream
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_print = -math.inf
        self.delay = TTY_PROGRESS_DELAY if delay is None else float(delay)
        self.drawn = False

    def _line(self, restart, iteration, ll, change, elapsed) -> str:
        head = f"restart {restart + 1}/{self.n_init}  " if self.n_init > 1 else ""
        return (
            f"{head}iter {iteration:5d}  loglik {ll:.8g}  change {change:+.3e}  "
            f"elapsed {elapsed:.2f}s"
        )

    def update(self, restart, iteration, ll, change, elapsed) -> None:
        if not self.verbose:
            return
        self._pending = (restart, iteration, ll, change, elapsed)
        now = time.perf_counter()
        if self.tty:
            if elapsed >= self.delay:
                self.stream.write("\r" + self._line(*self._pending) + "\x1b[K")
                self.stream.flush()
                self.drawn = True
        elif self.verbose >= 2 or now - self.last_print >= 1.0:
            self.stream.write(self._line(*self._pending) + "\n")
            self.last_print = now
            self._pending = None

    def done(self, loop: _Loop) -> None:
        if not self.verbose:
            return
        pending = getattr(self, "_pending", None)
        if self.tty and not self.drawn and self.delay > 0:
            self._pending = None  # a short fit: nothing was shown and nothing is left to clear
            return
        if self.tty:
            self.stream.write("\n")
            self.drawn = False
        elif pending is not None:
            self.stream.write(self._line(*pending) + "\n")
        status = "converged" if loop.converged else "stopped" if loop.stopped else "max_iter"
        self.stream.write(
            f"restart {loop.restart + 1}: {status} after {len(loop.history)} iterations\n"
        )
        self.stream.flush()
        self._pending = None
