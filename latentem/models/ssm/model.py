"""The class :class:`LinearGaussianSSM`: settings, starting values, the E-step and ``fit``.

The class is put together from parts that live next to it: checking the
data (:mod:`.data`), the parameters and what is held fixed
(:mod:`.parameters`), the M-step (:mod:`.mstep`) and what a fitted model gives
back (:mod:`.outputs`). Here are its constructor, its starting values, the
E-step on the Kalman kernel (:func:`latentem.kernels.kalman.kalman_smoother`),
``fit`` and ``prepare``, and model files.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latentem._validation import check_positive_int
from latentem.base import ParamsMixin
from latentem.kernels import kalman_scalar as _flat  # by module: its dispatchers once made
from latentem.kernels._dispatch import SERIAL_SIZE
from latentem.kernels.kalman import kalman_smoother, kalman_stats
from latentem.kernels.kalman_diffuse import diffuse_smoother
from latentem.models.ssm.data import SSMData, _check_not_all_constant, _SequenceData
from latentem.models.ssm.mstep import _MStep
from latentem.models.ssm.outputs import _Outputs
from latentem.models.ssm.parameters import COV_TYPES, PARAMS, _Parameters, _sym
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em, is_dask_array

__all__ = ["LinearGaussianSSM"]

#: The E-step's kernels (:meth:`LinearGaussianSSM._plan`).
_SCALAR, _SCALAR_DIFFUSE, _DIFFUSE, _ONE_GROUP, _GROUPS = range(5)


def _var(x: np.ndarray, ddof: int) -> float:
    """``np.var(x, ddof=ddof)`` of a vector, without its overhead."""
    d = x - x.sum() / len(x)
    return float(d @ d) / (len(x) - ddof)


def _cov(Z: np.ndarray) -> np.ndarray:
    """``np.cov(Z.T)`` (rows are observations), as a matrix, without its overhead."""
    Z = Z - Z.mean(axis=0)
    return (Z.T @ Z) * (1.0 / (len(Z) - 1))


@register
class LinearGaussianSSM(_SequenceData, _Parameters, _MStep, _Outputs, SaveMixin, ParamsMixin):
    """Linear-Gaussian state-space model (Kalman filter), fitted by EM, with gaps.

    ``x_t = A x_{t-1} + B u_t + w_t``, ``y_t = C x_t + D u_t + v_t``,
    ``w_t ~ N(0, Q)``, ``v_t ~ N(0, R)``, ``x_1 ~ N(initial_mean, initial_cov)``
    (the input ``u_1`` of a sequence's first step enters only the observation).

    Parameters
    ----------
    n_states : int
        Dimension of the state ``x_t`` (>= 1).
    transition_matrix, transition_input, observation_matrix, observation_input : array, optional
        Starting values (or, if held fixed, the values) of ``A`` (n_states,
        n_states), ``B`` (n_states, n_inputs), ``C`` (n_features, n_states) and
        ``D`` (n_features, n_inputs). Those not given are initialised from the
        data (``B`` and ``D`` at zero).
    transition_cov, observation_cov, initial_mean, initial_cov : array, optional
        Starting values of ``Q``, ``R``, the initial state mean and
        covariance. A diagonal or scalar covariance may be given as its
        diagonal or its one value.
        ``initial_cov="diffuse"`` (or ``np.inf``) makes the whole initial state
        diffuse, ``np.inf`` on chosen diagonal entries (zeros elsewhere in their
        rows and columns) those states only: the exact diffuse start of Durbin
        and Koopman, as statsmodels' ``initialize_diffuse()``. The
        log-likelihood is then the diffuse one, the initial mean (zero unless
        given; its diffuse entries do not matter) and the finite part of the
        covariance are held, and sampling needs a finite start.
    transition_cov_type, observation_cov_type : {"full", "diag", "scalar"}
        Structure of ``Q`` and ``R``, kept by the M-step.
    fixed : iterable of str, or dict, optional
        Parameters held at their given values: a name (e.g.
        ``"transition_matrix"``) holds the whole parameter; a dict maps a name
        to a boolean mask of the entries held (``True`` = fixed; for a
        diagonal covariance, a mask over its diagonal). Entry masks apply to
        ``A``, ``B``, ``C``, ``D`` and to diagonal ``Q`` and ``R``.
    n_iter : int
        Maximum EM iterations.
    tol : float
        Convergence threshold on the change of the mean log-likelihood per
        time step.
    n_init : int
        Restarts (starting points drawn from the data); the best is kept.
    random_state : None, int or Generator
    accelerate : None or "squarem"
        SQUAREM extrapolation (see :func:`latentem.fit_em`).
    verbose : bool

    Attributes
    ----------
    transition_matrix_, transition_input_, observation_matrix_, observation_input_ : ndarray
    transition_cov_, observation_cov_, initial_mean_, initial_cov_ : ndarray
        Fitted parameters (covariances as full matrices whatever their type).
    n_features_in_ : int
        Dimension of the observations.
    n_inputs_ : int
        Dimension of the inputs (0 without inputs).
    history_ : ndarray
        Log-likelihood at every EM iteration (never decreasing).
    converged_, n_iter_, monitor_
        Outcome of the last fit (``monitor_`` is the :class:`~latentem.EMResult`).

    Notes
    -----
    The M-step is exact EM for free parameters, and a conditional step (ECM:
    ``A`` and ``B`` given ``Q``, then ``Q``; likewise ``C``, ``D``, ``R``) when
    some entries are fixed, so the likelihood never decreases in either case.
    The filter uses the Joseph form of the covariance update.

    Examples
    --------
    A local level model (random walk plus noise) with a gap:

    >>> import numpy as np
    >>> from latentem import LinearGaussianSSM
    >>> rng = np.random.default_rng(0)
    >>> level = np.cumsum(rng.normal(0, 0.5, 300))
    >>> y = level + rng.normal(0, 1.0, 300)
    >>> y[100:110] = np.nan
    >>> model = LinearGaussianSSM(
    ...     1, transition_matrix=[[1.0]], observation_matrix=[[1.0]],
    ...     fixed=["transition_matrix", "observation_matrix"], n_iter=500,
    ... ).fit(y)
    >>> np.round([model.transition_cov_[0, 0], model.observation_cov_[0, 0]], 1)
    array([0.4, 1. ])
    >>> bool(np.all(np.diff(model.history_) >= 0))
    True
    >>> filled = model.impute(y)
    >>> bool(np.isnan(filled).any()), filled.shape
    (False, (300, 1))
    """

    def __init__(
        self,
        n_states: int = 1,
        *,
        transition_matrix: Any = None,
        transition_input: Any = None,
        observation_matrix: Any = None,
        observation_input: Any = None,
        transition_cov: Any = None,
        observation_cov: Any = None,
        initial_mean: Any = None,
        initial_cov: Any = None,
        transition_cov_type: str = "full",
        observation_cov_type: str = "diag",
        fixed: Any = None,
        n_iter: int = 100,
        tol: float = 1e-6,
        n_init: int = 1,
        random_state: Any = None,
        accelerate: str | None = None,
        verbose: bool = False,
    ):
        self.n_states = n_states
        self.transition_matrix = transition_matrix
        self.transition_input = transition_input
        self.observation_matrix = observation_matrix
        self.observation_input = observation_input
        self.transition_cov = transition_cov
        self.observation_cov = observation_cov
        self.initial_mean = initial_mean
        self.initial_cov = initial_cov
        self.transition_cov_type = transition_cov_type
        self.observation_cov_type = observation_cov_type
        self.fixed = fixed
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.accelerate = accelerate
        self.verbose = verbose

    # ------------------------------------------------------------------ settings
    def _check_settings(self) -> None:
        for value, name in (
            (self.n_states, "n_states"),
            (self.n_iter, "n_iter"),
            (self.n_init, "n_init"),
        ):
            if type(value) is not int or value < 1:  # a plain positive int passes at once
                check_positive_int(value, name)
        for name in ("transition_cov_type", "observation_cov_type"):
            if getattr(self, name) not in COV_TYPES:
                raise ValueError(f"{name} must be one of {COV_TYPES}; got {getattr(self, name)!r}.")
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')

    # ------------------------------------------------------------------ starting values
    def init_params(self, data: SSMData, rng: np.random.Generator) -> None:
        """Starting parameters: the given values, the rest from the data.

        ``C`` from the leading principal directions of the observations (gaps
        filled by column means, a random perturbation per restart), the states
        as projections on them, ``A`` and ``Q`` by regressing each state on the
        previous, ``R`` from the residuals, ``B`` and ``D`` at zero.
        """
        self._check_settings()
        p = self.n_features_in_
        m = self.n_inputs_
        n = self.n_states
        shapes = self._shapes(p, m)
        held = self._held
        values = {}
        diffuse = held["diffuse"]
        for name in PARAMS:
            values[name] = self._given(name, shapes[name])
            if name == "initial_mean" and values[name] is None and diffuse is not None:
                values[name] = np.zeros(n)  # a diffuse start's mean: zero unless given
            if values[name] is None and held["any_" + name]:
                raise ValueError(
                    f"{name} is held fixed but has no value; pass {name}=... to the constructor."
                )
        Y, U = data.columns(p)
        offsets = data.offsets
        if n == 1 and p == 1 and m == 0 and values["observation_matrix"] is not None:
            self._init_scalar(Y[:, 0], offsets, values)
            return
        seen = ~np.isnan(Y)
        n_seen = seen.sum(axis=0)
        Y0 = np.where(seen, Y, 0.0)
        y_mean = Y0.sum(axis=0) / n_seen  # np.nanmean and np.nanvar, without their overhead
        Yf = np.where(seen, Y, y_mean)
        D = values["observation_input"]
        if D is None:
            D = np.zeros((p, m))
        B = values["transition_input"]
        if B is None:
            B = np.zeros((n, m))
        resid = Yf - U @ D.T
        C = values["observation_matrix"]
        if C is None:
            _, s, Vt = np.linalg.svd(resid, full_matrices=False)
            C = np.zeros((p, n))
            k = min(n, Vt.shape[0])
            C[:, :k] = Vt[:k].T
            scale = 1.0 / np.sqrt(p)
            C += rng.normal(0.0, 0.1 * scale, size=C.shape)
        states = np.linalg.lstsq(C, resid.T, rcond=None)[0].T  # (N, n)
        first = np.zeros(len(Y), dtype=bool)
        first[offsets[:-1]] = True
        prev_rows = np.flatnonzero(~first) - 1
        A = values["transition_matrix"]
        if A is None:
            if prev_rows.size >= n:
                Xp, Xc = states[prev_rows], states[prev_rows + 1] - U[prev_rows + 1] @ B.T
                A = np.linalg.lstsq(Xp, Xc, rcond=None)[0].T
                radius = np.max(np.abs(np.linalg.eigvals(A))) if n else 0.0
                if radius > 0.999:
                    A = A * (0.999 / radius)
            else:
                A = 0.9 * np.eye(n)
        var_x = _cov(states) if len(states) > 1 else np.eye(n)
        var_x = _sym(var_x) + 1e-6 * (np.trace(var_x) / n + 1.0) * np.eye(n)
        Q = values["transition_cov"]
        if Q is None:
            if prev_rows.size > n:
                res = states[prev_rows + 1] - states[prev_rows] @ A.T - U[prev_rows + 1] @ B.T
                Q = _sym(_cov(res)) + 1e-3 * var_x
            else:
                Q = var_x.copy()
            Q = self._structured(Q, self.transition_cov_type)
        R = values["observation_cov"]
        if R is None:
            dev = np.where(seen, Y0 - y_mean, 0.0)
            yvar = (dev * dev).sum(axis=0) / n_seen
            yvar = np.where(yvar > 0, yvar, 1.0)
            res_var = np.var(resid - states @ C.T, axis=0)
            R = np.diag(np.maximum(res_var, 0.1 * yvar))
            R = self._structured(R, self.observation_cov_type)
        m0 = values["initial_mean"]
        if m0 is None:
            m0 = states[offsets[:-1]].mean(axis=0)
        P0 = values["initial_cov"]
        if P0 is None:
            P0 = var_x
        for name, value in zip(PARAMS, (A, B, C, D, Q, R, m0, P0)):
            setattr(self, name + "_", np.array(value, dtype=np.float64))
        self._check_params(fit=True)

    def _init_scalar(self, y: np.ndarray, offsets: np.ndarray, values: dict) -> None:
        """:meth:`init_params` for one state, one feature, no inputs and ``C`` given: the
        same starting values, in numbers (a short series' fit spent a fifth of its time
        in the general code's small matrix calls)."""
        c = float(values["observation_matrix"][0, 0])
        # the same numbers as the general start; where nothing is missing, c is 1 or a is 1
        # (the local level) some steps give their input back exactly and are skipped
        gaps = bool(np.isnan(y).any())
        if gaps:
            seen = ~np.isnan(y)
            obs = y[seen]
        else:
            obs = y
        y_mean = obs.sum() / obs.size
        resid = np.where(seen, y, y_mean) if gaps else y
        if c == 1.0:
            states = resid  # resid / 1.0, exactly
        else:
            states = resid / c if c != 0.0 else np.zeros_like(resid)  # lstsq of a 1 x 1 C
        if len(offsets) == 2:  # one sequence: each step and the one before
            prev = states[:-1]
            xp, xc = prev, states[1:]
        else:
            first = np.zeros(len(y), dtype=bool)
            first[offsets[:-1]] = True
            prev = np.flatnonzero(~first) - 1
            xp, xc = states[prev], states[prev + 1]
        A = values["transition_matrix"]
        if A is None:
            ss = float(xp @ xp)
            a = float(xp @ xc) / ss if prev.size and ss > 0.0 else (0.0 if prev.size else 0.9)
            a = a * (0.999 / abs(a)) if abs(a) > 0.999 else a
        else:
            a = float(A[0, 0])
        # without gaps and with c = 1, states is obs itself: its sum of squared deviations
        # (_var's operations) serves yvar below too
        same = not gaps and c == 1.0 and len(states) > 1
        if same:
            d = states - y_mean
            ss = float(d @ d)
            var_x = ss / (len(states) - 1)
        else:
            var_x = _var(states, 1) if len(states) > 1 else 1.0
        var_x += 1e-6 * (var_x + 1.0)
        Q = values["transition_cov"]
        if Q is None:
            step = xc - xp if a == 1.0 else xc - a * xp  # a * xp is xp when a = 1
            q = _var(step, 1) + 1e-3 * var_x if prev.size > 1 else var_x
        else:
            q = float(Q[0, 0])
        R = values["observation_cov"]
        if R is None:
            if same:
                yvar = ss / obs.size
            else:
                dev = obs - y_mean
                yvar = float(dev @ dev) / obs.size
            yvar = yvar if yvar > 0 else 1.0
            # resid - states * c is exactly zero when c = 1 and states is resid
            res_var = 0.0 if c == 1.0 else _var(resid - states * c, 0)
            r = max(res_var, 0.1 * yvar)
        else:
            r = float(R[0, 0])
        m0 = values["initial_mean"]
        m0 = float(states[offsets[:-1]].mean()) if m0 is None else float(m0[0])
        P0 = values["initial_cov"]
        P0 = var_x if P0 is None else float(P0[0, 0])
        theta = np.array([a, c, q, r, m0, P0])
        shapes = [(1, 1), (1, 0), (1, 1), (1, 0), (1, 1), (1, 1), (1,), (1, 1)]
        self._set_views(theta, shapes)
        if not (np.isfinite(theta).all() and r > 0.0 and q >= 0.0 and P0 >= 0.0):
            self._check_params(fit=True)  # raises, saying what is wrong

    # ------------------------------------------------------------------ protocol
    def _run(self, data: SSMData, mode: int):
        Y, U, groups = data.arrays(self.n_features_in_)
        # C-contiguous float64 always: one compiled specialisation of the kernel
        params = [np.ascontiguousarray(getattr(self, name + "_"), np.float64) for name in PARAMS]
        weights = np.ascontiguousarray(data.weights, dtype=np.float64)
        diffuse = self._held["diffuse"]
        if diffuse is not None:
            seq_ll, stats, outs = diffuse_smoother(
                Y, U, data.offsets, *params, diffuse, weights, mode
            )
        elif mode < 2:
            seq_ll, stats = kalman_stats(Y, U, data.offsets, groups, *params, weights, mode)
            outs = None
        else:
            seq_ll, stats, outs = kalman_smoother(
                Y, U, data.offsets, groups, *params, weights, mode
            )
        total = float(seq_ll.sum())
        if not math.isfinite(total):
            bad = np.flatnonzero(~np.isfinite(seq_ll))
            raise ValueError(
                f"sequence {int(bad[0])}: the innovation covariance C P C' + R is not positive "
                "definite under the current parameters; check observation_cov (R) and the "
                "scale of the data."
            )
        return total, seq_ll, stats, outs

    def _plan(self, data: SSMData) -> tuple:
        """Which kernel the E-step calls on ``data`` and its arguments but the packed
        parameters and the mode, worked out once per data and setting (kept on the
        data, keyed by the model's ``_held`` and the data's weights, both replaced
        whenever they change)."""
        p = self.n_features_in_
        Y, U = data.columns(p)
        weights = np.ascontiguousarray(data.weights, dtype=np.float64)
        diffuse = self._held["diffuse"]
        n = self.n_states
        if n == 1 and p == 1 and U.shape[1] == 0:
            if diffuse is not None:
                return _SCALAR_DIFFUSE, (Y, U, data.offsets), weights
            if len(Y) < SERIAL_SIZE:  # longer: the parallel groups pay
                return _SCALAR, (Y, data.offsets), weights
        if diffuse is not None:
            return _DIFFUSE, (Y, U, data.offsets), (n, diffuse, weights)
        if len(data.groups) == 2:  # one group: one thread
            return _ONE_GROUP, (Y, U, data.offsets), (n, weights)
        return _GROUPS, (Y, U, data.offsets, data.groups), weights

    def _run_flat(self, data: SSMData, mode: int) -> np.ndarray:
        """``[loglik, stats...]`` (mode 1; mode 0: the log-likelihood and zeros) in one
        compiled call on the packed parameters: the E-step's path, where a call's
        overhead is most of the cost for a short series."""
        held = self.__dict__.get("_held_cache") or self._held
        cached = data.__dict__.get("_ssm_plan")
        if cached is None or cached[0] is not held or cached[1] is not data.weights:
            cached = (held, data.weights, self._plan(data))
            data.__dict__["_ssm_plan"] = cached
        kind, head, tail = cached[2]
        theta = self._theta()
        if kind == _SCALAR:
            out = _flat.scalar_run(*head, theta, tail, mode)
        elif kind == _SCALAR_DIFFUSE:
            out = _flat.scalar_diffuse_run(*head, theta, tail, mode)
        elif kind == _DIFFUSE:
            out = _flat.diffuse_run(*head, theta, *tail, mode)
        elif kind == _ONE_GROUP:
            out = _flat.kalman_run(*head, theta, *tail, mode)
        else:  # the parallel kernel, its statistics flattened here
            params = self._packed_views()
            seq_ll, stats = kalman_stats(*head, *params, tail, mode)
            out = np.concatenate([[seq_ll.sum()]] + [s.ravel() for s in stats])
        if not math.isfinite(out[0]):
            self._run(data, mode)  # raises, naming the sequence
        return out

    def e_step(self, data: SSMData) -> tuple[np.ndarray, float]:
        """The flat statistics (:func:`~latentem.models.ssm.mstep.unflatten_stats`
        gives them their shapes) and the log-likelihood."""
        out = self._run_flat(data, 1)
        return out[1:], float(out[0])

    def log_likelihood(self, data: SSMData) -> float:
        return float(self._run_flat(data, 0)[0])

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, lengths: Any = None, inputs: Any = None) -> LinearGaussianSSM:
        """Estimate the parameters by EM.

        Parameters
        ----------
        X : array-like (n_samples, n_features)
            Observations of all sequences stacked, NaN where missing (any
            subset of a row). A 1-D array is one feature.
        lengths : array of int, optional
            Length of each sequence; they must add up to ``len(X)``.
        inputs : array-like (n_samples, n_inputs), optional
            Known inputs ``u_t``, one row per time step (no gaps).

        Returns
        -------
        self
        """
        data = self.prepare(X, lengths, inputs)
        _check_not_all_constant(data.X)
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
        return self

    def prepare(self, X: Any, lengths: Any = None, inputs: Any = None) -> SSMData:
        """Check X (and inputs) and set the model's dimensions for them: the data that
        :func:`latentem.fit_em` takes. ``fit`` calls it; call it yourself to fit X held
        out of core (a memmap, :class:`~latentem.Chunked` or dask array) block by block.

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import LinearGaussianSSM, fit_em
        >>> rng = np.random.default_rng(0)
        >>> x = np.zeros(400)
        >>> for t in range(1, 400):
        ...     x[t] = 0.8 * x[t - 1] + rng.normal()
        >>> y = (x + rng.normal(0, 0.5, 400))[:, None]
        >>> model = LinearGaussianSSM(1)
        >>> data = model.prepare(y, lengths=[200, 200])
        >>> result = fit_em(model, data, backend="chunked", max_iter=500)
        >>> result.converged, bool(np.all(np.diff(result.history) >= 0))
        (True, True)
        >>> np.round(model.transition_matrix_, 2)
        array([[0.77]])
        """
        self._check_settings()
        for name in ("n_inputs_", "n_features_in_"):
            self.__dict__.pop(name, None)
        data = self._sequence_data(X, lengths, inputs)
        self.n_features_in_ = data.p
        self.n_inputs_ = (data.X.shape[1] if len(data.X.shape) == 2 else 1) - data.p
        self._set_masks(self.n_features_in_, self.n_inputs_)
        return data

    def _fitted_data(self, X: Any, lengths: Any, inputs: Any) -> SSMData:
        self._check_settings()
        self._check_params()
        if is_dask_array(X):
            X = np.asarray(X)
        data = self._sequence_data(X, lengths, inputs)
        if data.p != self.n_features_in_:
            raise ValueError(
                f"X has {data.p} features but the model was fitted on {self.n_features_in_}."
            )
        return data

    # ------------------------------------------------------------------ model files
    _FITTED = ("n_features_in_", "n_inputs_", "history_", "converged_", "n_iter_")

    def _to_state(self) -> dict:
        state = {"params": self.get_params()}
        if "transition_matrix_" in self.__dict__:
            state["fitted"] = {
                **{name + "_": getattr(self, name + "_") for name in PARAMS},
                **{name: getattr(self, name) for name in self._FITTED if name in self.__dict__},
            }
        return state

    @classmethod
    def _from_state(cls, state: dict) -> LinearGaussianSSM:
        model = cls(**state["params"])
        fitted = state.get("fitted")
        if fitted is None:
            return model
        for name, value in fitted.items():
            if name not in cls._FITTED and name.rstrip("_") not in PARAMS:
                raise ValueError(f"unexpected fitted attribute {name!r} for LinearGaussianSSM")
            setattr(model, name, value)
        for name in PARAMS:
            setattr(model, name + "_", np.asarray(getattr(model, name + "_"), dtype=np.float64))
        model.n_features_in_ = int(model.n_features_in_)
        model.n_inputs_ = int(model.n_inputs_)
        model._check_settings()
        model._masks = model._fixed_masks(model.n_features_in_, model.n_inputs_)
        model._check_params()
        return model
