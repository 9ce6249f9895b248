"""Linear-Gaussian state-space models fitted by Kalman-smoother EM, with gaps.

The model, for every sequence (t = 1, 2, ... within it)::

    x_1 ~ N(initial_mean, initial_cov)
    x_t = A x_{t-1} + B u_t + w_t,     w_t ~ N(0, Q)     (t >= 2)
    y_t = C x_t + D u_t + v_t,         v_t ~ N(0, R)

with ``A`` the ``transition_matrix``, ``B`` the ``transition_input``, ``C``
the ``observation_matrix``, ``D`` the ``observation_input``, ``Q`` the
``transition_cov`` and ``R`` the ``observation_cov``. Missing entries of
``y_t`` (NaN) are handled exactly: the filter uses the observed rows of
``C`` and ``R`` only, and EM treats the missing entries as latent, so the
smoothed values of the gaps come with their variances (time-series
imputation).

EM (Shumway and Stoffer, 1982) runs on the generic runner
(:func:`latentem.fit_em`), so restarts, SQUAREM and the chunked and Dask
backends apply unchanged. Parameters can be held fixed whole or entry by
entry, and the covariances can be full, diagonal or scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem._validation import check_array, check_positive_int, check_random_state
from latentem._vector import get_vector
from latentem.backends import is_dask_array, is_out_of_core
from latentem.base import ParamsMixin
from latentem.kernels.hmm import sequence_groups
from latentem.kernels.kalman import kalman_smoother
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em

__all__ = ["LinearGaussianSSM", "SSMData", "SmoothedSSM", "SSMImputer"]

#: The parameters, in the order of the SQUAREM vector, and their symbols.
PARAMS = (
    "transition_matrix",
    "transition_input",
    "observation_matrix",
    "observation_input",
    "transition_cov",
    "observation_cov",
    "initial_mean",
    "initial_cov",
)
_SYMBOL = dict(zip(PARAMS, ("A", "B", "C", "D", "Q", "R", "initial_mean", "initial_cov")))
COV_TYPES = ("full", "diag", "scalar")


class SSMData:
    """Rows of all sequences stacked (observations, then inputs, as columns) with
    where each sequence starts: what the EM steps receive.

    ``len()`` is the number of time steps, so the runner's ``tol`` is per
    time step. Blocks of whole sequences of it run on the chunked and Dask
    backends as HMM data do.
    """

    def __init__(self, X: np.ndarray, offsets: np.ndarray, labels: Any = None):
        self.X = X
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.labels = None
        self.weights = np.ones(len(self.offsets) - 1)
        self._cache: tuple | None = None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_sequences(self) -> int:
        return len(self.offsets) - 1

    def arrays(self, n_outputs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Y, U, groups)``: contiguous observations and inputs, and the parallel groups."""
        if self._cache is None or self._cache[0] != n_outputs:
            X = np.asarray(self.X, dtype=np.float64)
            # fresh writeable copies: one compiled specialisation of the kernel (read-only
            # input, e.g. from pandas, would compile another), and never the user's memory
            Y = np.array(X[:, :n_outputs], order="C", copy=True)
            U = np.array(X[:, n_outputs:], order="C", copy=True)
            self._cache = (n_outputs, Y, U, sequence_groups(self.offsets))
        return self._cache[1], self._cache[2], self._cache[3]


@dataclass
class SmoothedSSM:
    """What :meth:`LinearGaussianSSM.smooth` returns, one row per time step.

    Attributes
    ----------
    state_means : ndarray (n_samples, n_states)
        E[x_t | all observations of its sequence].
    state_covs : ndarray (n_samples, n_states, n_states)
        Cov[x_t | all observations].
    obs_means : ndarray (n_samples, n_features)
        E[y_t | all observations]: the data where observed, the smoothed value
        of the gap where missing.
    obs_vars : ndarray (n_samples, n_features)
        Var[y_t | all observations]: 0 where observed.
    log_likelihood : float
    """

    state_means: np.ndarray
    state_covs: np.ndarray
    obs_means: np.ndarray
    obs_vars: np.ndarray
    log_likelihood: float


def _offsets(lengths: Any, n_rows: int) -> np.ndarray:
    from latentem.models.hmm import _offsets_from_lengths

    return _offsets_from_lengths(lengths, n_rows)


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.T)


@register
class LinearGaussianSSM(SaveMixin, ParamsMixin):
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
        check_positive_int(self.n_states, "n_states")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.n_init, "n_init")
        for name in ("transition_cov_type", "observation_cov_type"):
            if getattr(self, name) not in COV_TYPES:
                raise ValueError(f"{name} must be one of {COV_TYPES}; got {getattr(self, name)!r}.")
        if self.accelerate not in (None, "squarem"):
            raise ValueError(f'accelerate must be None or "squarem"; got {self.accelerate!r}.')

    def _shapes(self, p: int, m: int) -> dict[str, tuple[int, ...]]:
        n = self.n_states
        return {
            "transition_matrix": (n, n),
            "transition_input": (n, m),
            "observation_matrix": (p, n),
            "observation_input": (p, m),
            "transition_cov": (n, n),
            "observation_cov": (p, p),
            "initial_mean": (n,),
            "initial_cov": (n, n),
        }

    def _cov_type(self, name: str) -> str:
        return {
            "transition_cov": self.transition_cov_type,
            "observation_cov": self.observation_cov_type,
        }.get(name, "full")

    def _fixed_masks(self, p: int, m: int) -> dict[str, np.ndarray]:
        """A boolean mask (True = held fixed) of every parameter's entries."""
        shapes = self._shapes(p, m)
        masks = {name: np.zeros(shape, dtype=bool) for name, shape in shapes.items()}
        spec = self.fixed
        if spec is None:
            return masks
        if isinstance(spec, str):
            spec = [spec]
        items = spec.items() if isinstance(spec, dict) else ((name, True) for name in spec)
        for name, value in items:
            if name not in masks:
                raise ValueError(
                    f"fixed names an unknown parameter {name!r}; the parameters are "
                    f"{', '.join(PARAMS)}."
                )
            shape = shapes[name]
            if isinstance(value, (bool, np.bool_)):
                masks[name] = np.full(shape, bool(value))
                continue
            mask = np.asarray(value)
            if mask.dtype != bool:
                raise ValueError(f"fixed[{name!r}] must be True/False or a boolean mask.")
            kind = self._cov_type(name)
            if name in ("transition_cov", "observation_cov") and kind == "diag":
                if mask.shape == shape:
                    mask = np.diag(mask).copy()
                if mask.shape != shape[:1]:
                    raise ValueError(
                        f"fixed[{name!r}] must be a mask over the diagonal, shape {shape[:1]}."
                    )
                full = np.ones(shape, dtype=bool)
                full[np.diag_indices(shape[0])] = mask
                masks[name] = full
                continue
            if name in ("transition_cov", "observation_cov", "initial_mean", "initial_cov"):
                if mask.all() or not mask.any():
                    masks[name] = np.full(shape, bool(mask.all()))
                    continue
                raise ValueError(
                    f"fixed[{name!r}]: only whole-parameter fixing is supported for this "
                    "parameter (entry masks: A, B, C, D and diagonal covariances); pass True "
                    "or use a 'diag' covariance type."
                )
            if mask.shape != shape:
                raise ValueError(f"fixed[{name!r}] must have shape {shape}; got {mask.shape}.")
            masks[name] = mask.copy()
        return masks

    # ------------------------------------------------------------------ data
    def _sequence_data(self, X: Any, lengths: Any, inputs: Any) -> SSMData:
        if X is None or (hasattr(X, "__len__") and len(X) == 0):
            raise ValueError("X is empty (0 time steps); pass at least one row.")
        if is_out_of_core(X):  # rows are checked block by block during the fit
            if inputs is not None:
                raise ValueError(
                    "inputs with out-of-core X: stack them as the last columns of an SSMData's "
                    "X (see docs/state_space.md), or load X into memory."
                )
            data = SSMData(X, _offsets(lengths, len(X)))
            data.p = int(X.shape[1]) if len(X.shape) == 2 else 1
            data.frame = (None, None)
            return data
        index = columns = None
        if hasattr(X, "columns") and hasattr(X, "index"):
            index, columns = X.index, X.columns
        Y = check_array(X, allow_nan=True)
        if Y.dtype != np.float64:
            Y = Y.astype(np.float64)
        offsets = _offsets(lengths, len(Y))
        m = self._n_inputs_expected()
        if inputs is None:
            if m:
                raise ValueError(
                    f"the model has {m} inputs (B and D have {m} columns); pass inputs with "
                    f"one row per time step ({len(Y)} rows)."
                )
            U = np.empty((len(Y), 0))
        else:
            U = check_array(inputs, name="inputs").astype(np.float64, copy=False)
            if len(U) != len(Y):
                raise ValueError(
                    f"inputs has {len(U)} rows but X has {len(Y)}; give one row of inputs "
                    "per time step."
                )
            if m is not None and U.shape[1] != m:
                raise ValueError(
                    f"inputs has {U.shape[1]} columns but the model expects {m} (the columns "
                    "of transition_input / observation_input)."
                )
        self._check_gaps(Y, offsets)
        data = SSMData(np.hstack([Y, U]) if U.shape[1] else Y, offsets)
        data.p = Y.shape[1]
        data.frame = (index, columns)
        return data

    @staticmethod
    def _check_gaps(Y: np.ndarray, offsets: np.ndarray) -> None:
        seen = ~np.isnan(Y)
        per_row = seen.any(axis=1).astype(np.int64)
        per_seq = np.add.reduceat(per_row, offsets[:-1]) if len(per_row) else per_row
        empty = np.flatnonzero(per_seq == 0)
        if empty.size:
            raise ValueError(
                f"sequence {int(empty[0])} (and {empty.size - 1} more) is entirely missing; "
                "drop it (it carries no information) or give it at least one observation."
            )
        cols = np.flatnonzero(~seen.any(axis=0))
        if cols.size:
            raise ValueError(
                f"column {int(cols[0])} of X is entirely missing (and {cols.size - 1} more); "
                "nothing can be learnt about it: drop it."
            )

    def _n_inputs_expected(self) -> int | None:
        if "n_inputs_" in self.__dict__:
            return self.n_inputs_
        for name in ("transition_input", "observation_input"):
            value = getattr(self, name)
            if value is not None:
                arr = np.asarray(value, dtype=np.float64)
                return arr.shape[1] if arr.ndim == 2 else None
        return None

    def validate_data(self, data: Any) -> SSMData:
        """Accept an :class:`SSMData` or a plain array (one sequence, no inputs)."""
        if isinstance(data, SSMData):
            return data
        return self._sequence_data(data, None, None)

    def validate_block(self, data: SSMData) -> SSMData:
        """Check one block of whole sequences (chunked and Dask fits)."""
        X = np.asarray(data.X, dtype=np.float64)
        p = self.n_features_in_
        block = self._sequence_data(
            X[:, :p], np.diff(data.offsets), X[:, p:] if X.shape[1] > p else None
        )
        block.weights = data.weights
        return block

    # ------------------------------------------------------------------ parameters
    def _given(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        value = getattr(self, name)
        if value is None:
            return None
        arr = np.array(value, dtype=np.float64)  # a copy: never the user's array
        if name in ("transition_cov", "observation_cov") and arr.shape != shape:
            k = shape[0]
            if arr.ndim == 0:
                arr = np.eye(k) * float(arr)
            elif arr.shape == (k,):
                arr = np.diag(arr)
        if name == "initial_cov" and arr.ndim == 0:
            arr = np.eye(shape[0]) * float(arr)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf; give finite values.")
        return arr

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
        fixed = self._masks
        values = {}
        for name in PARAMS:
            values[name] = self._given(name, shapes[name])
            if values[name] is None and fixed[name].any():
                raise ValueError(
                    f"{name} is held fixed but has no value; pass {name}=... to the constructor."
                )
        Y, U, _ = data.arrays(p)
        offsets = data.offsets
        Yf = np.where(np.isnan(Y), np.nanmean(Y, axis=0), Y)
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
        var_x = np.atleast_2d(np.cov(states.T)) if len(states) > 1 else np.eye(n)
        var_x = _sym(var_x) + 1e-6 * (np.trace(var_x) / n + 1.0) * np.eye(n)
        Q = values["transition_cov"]
        if Q is None:
            if prev_rows.size > n:
                res = states[prev_rows + 1] - states[prev_rows] @ A.T - U[prev_rows + 1] @ B.T
                Q = _sym(np.atleast_2d(np.cov(res.T))) + 1e-3 * var_x
            else:
                Q = var_x.copy()
            Q = self._structured(Q, self.transition_cov_type)
        R = values["observation_cov"]
        if R is None:
            yvar = np.nanvar(Y, axis=0)
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

    @staticmethod
    def _structured(S: np.ndarray, kind: str) -> np.ndarray:
        if kind == "diag":
            return np.diag(np.diag(S))
        if kind == "scalar":
            return np.eye(len(S)) * float(np.mean(np.diag(S)))
        return _sym(S)

    def _check_params(self, fit: bool = False) -> None:
        """Shapes, finiteness and definiteness of the current parameters."""
        p, m = self.n_features_in_, self.n_inputs_
        shapes = self._shapes(p, m)
        for name in PARAMS:
            value = getattr(self, name + "_", None)
            if value is None:
                raise ValueError(f"{name}_ is not set; fit the model first.")
            if value.shape != shapes[name]:
                raise ValueError(f"{name}_ must have shape {shapes[name]}; got {value.shape}.")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name}_ contains NaN or inf.")
        for name, need_pd in (
            ("transition_cov", False),
            ("observation_cov", True),
            ("initial_cov", False),
        ):
            S = getattr(self, name + "_")
            if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * (1.0 + np.abs(S).max())):
                raise ValueError(f"{name}_ must be symmetric.")
            if need_pd:
                try:
                    np.linalg.cholesky(S)
                except np.linalg.LinAlgError:
                    held = fit and self._masks[name].all()
                    raise ValueError(
                        f"{name}_ ({_SYMBOL[name]}) is not positive definite"
                        + (
                            " and it is held fixed; give a positive definite value (every "
                            "observation needs some noise)."
                            if held
                            else "; give a positive definite starting value."
                        )
                    ) from None
            else:
                lowest = np.linalg.eigvalsh(S)[0] if len(S) else 0.0
                if lowest < -1e-10 * (1.0 + np.abs(S).max()):
                    raise ValueError(f"{name}_ ({_SYMBOL[name]}) must be positive semi-definite.")

    # ------------------------------------------------------------------ protocol
    def _run(self, data: SSMData, mode: int):
        Y, U, groups = data.arrays(self.n_features_in_)
        # C-contiguous float64 always: one compiled specialisation of the kernel
        params = [np.ascontiguousarray(getattr(self, name + "_"), np.float64) for name in PARAMS]
        A, B, C, D, Q, R, m0, P0 = params
        seq_ll, stats, outs = kalman_smoother(
            Y,
            U,
            data.offsets,
            groups,
            A,
            B,
            C,
            D,
            Q,
            R,
            m0,
            P0,
            np.ascontiguousarray(data.weights, dtype=np.float64),
            mode,
        )
        bad = np.flatnonzero(~np.isfinite(seq_ll))
        if bad.size:
            raise ValueError(
                f"sequence {int(bad[0])}: the innovation covariance C P C' + R is not positive "
                "definite under the current parameters; check observation_cov (R) and the "
                "scale of the data."
            )
        return seq_ll, stats, outs

    def e_step(self, data: SSMData) -> tuple[tuple, float]:
        seq_ll, stats, _ = self._run(data, 1)
        return stats, float(seq_ll.sum())

    def log_likelihood(self, data: SSMData) -> float:
        return float(self._run(data, 0)[0].sum())

    def m_step(self, stats: tuple) -> None:
        Zp, XZ, XX, W, YW, YY, s1, S1, counts = stats
        n, m = self.n_states, self.n_inputs_
        masks, held = self._masks, self._held
        n_trans, n_obs, n_seq = (float(c) for c in counts)
        # transition: [A B] given Q, then Q
        if n_trans > 0 and not (held["transition"] and held["transition_cov"]):
            Phi = self.transition_matrix_
            if m:
                Phi = np.hstack([Phi, self.transition_input_])
            if not held["transition"]:
                Phi = _regression(
                    Phi,
                    held["transition_free"],
                    Zp,
                    XZ,
                    self.transition_cov_,
                    self.transition_cov_type,
                )
            if not held["transition_cov"]:
                Q = _residual_cov(XX, XZ, Zp, Phi, n_trans)
                self.transition_cov_ = self._apply_cov(
                    Q, self.transition_cov_, masks["transition_cov"], self.transition_cov_type
                )
            if m:
                self.transition_matrix_, self.transition_input_ = Phi[:, :n], Phi[:, n:]
            else:
                self.transition_matrix_ = Phi
        # observation: [C D] given R, then R
        if not (held["observation"] and held["observation_cov"]):
            Psi = self.observation_matrix_
            if m:
                Psi = np.hstack([Psi, self.observation_input_])
            if not held["observation"]:
                Psi = _regression(
                    Psi,
                    held["observation_free"],
                    W,
                    YW,
                    self.observation_cov_,
                    self.observation_cov_type,
                )
            if not held["observation_cov"]:
                R = _residual_cov(YY, YW, W, Psi, n_obs)
                self.observation_cov_ = self._apply_cov(
                    R, self.observation_cov_, masks["observation_cov"], self.observation_cov_type
                )
            if m:
                self.observation_matrix_, self.observation_input_ = Psi[:, :n], Psi[:, n:]
            else:
                self.observation_matrix_ = Psi
        # initial state
        if not held["initial_mean"]:
            self.initial_mean_ = s1 / n_seq
        if not held["initial_cov"]:
            m0 = self.initial_mean_
            P0 = (S1 - np.outer(s1, m0) - np.outer(m0, s1)) / n_seq + np.outer(m0, m0)
            self.initial_cov_ = _sym(P0)

    @staticmethod
    def _apply_cov(new: np.ndarray, old: np.ndarray, mask: np.ndarray, kind: str) -> np.ndarray:
        if kind == "full":
            return new
        if kind == "scalar":
            return np.eye(len(new)) * float(np.mean(np.diag(new)))
        d = np.where(np.diag(mask), np.diag(old), np.diag(new))
        return np.diag(d)

    def get_param_vector(self) -> np.ndarray:
        """All parameters as one vector (for SQUAREM)."""
        return get_vector(self._parts())

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set all parameters from a vector; False (and nothing changed) if infeasible:
        not finite, or R not positive definite, or Q or the initial covariance not
        positive semi-definite. (Extrapolation keeps shapes, symmetry and the zeros of
        diagonal covariances, so only definiteness needs checking.)"""
        theta = np.asarray(theta, dtype=np.float64)
        values, start = [], 0
        for name in PARAMS:
            old = getattr(self, name + "_")
            values.append(theta[start : start + old.size].reshape(old.shape))
            start += old.size
        if theta.shape != (start,) or not np.isfinite(theta).all():
            return False
        for name, value in zip(PARAMS, values):
            if name in ("observation_cov", "transition_cov", "initial_cov"):
                S = value
                if name != "observation_cov":
                    S = S + (1e-10 * (1.0 + np.abs(S).max())) * np.eye(len(S))
                try:
                    np.linalg.cholesky(S)
                except np.linalg.LinAlgError:
                    return False
        for name, value in zip(PARAMS, values):
            setattr(self, name + "_", value.copy())
        return True

    def _parts(self) -> list:
        return [(self, name + "_", False) for name in PARAMS]

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
        self._masks = self._fixed_masks(self.n_features_in_, self.n_inputs_)
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

    def score(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Total log-likelihood of X (all sequences, observed entries)."""
        return self.log_likelihood(self._fitted_data(X, lengths, inputs))

    def score_per_sequence(self, X: Any, lengths: Any = None, inputs: Any = None) -> np.ndarray:
        """Log-likelihood of each sequence, shape (n_sequences,)."""
        return self._run(self._fitted_data(X, lengths, inputs), 0)[0]

    def smooth(self, X: Any, lengths: Any = None, inputs: Any = None) -> SmoothedSSM:
        """Smoothed states and observations (RTS smoother), see :class:`SmoothedSSM`.

        Examples
        --------
        >>> import numpy as np
        >>> from latentem import LinearGaussianSSM
        >>> model = LinearGaussianSSM(
        ...     1, transition_matrix=[[1.0]], observation_matrix=[[1.0]], transition_cov=1.0,
        ...     observation_cov=1.0, initial_mean=[0.0], initial_cov=[[10.0]], fixed=
        ...     ["transition_matrix", "observation_matrix", "transition_cov",
        ...      "observation_cov", "initial_mean", "initial_cov"], n_iter=2,
        ... ).fit([0.0, 1.0, 2.0])
        >>> out = model.smooth([0.0, np.nan, 2.0])
        >>> out.obs_means.ravel().round(3), out.obs_vars.ravel().round(3)
        (array([0.   , 0.977, 2.   ]), array([0.   , 1.977, 0.   ]))
        """
        data = self._fitted_data(X, lengths, inputs)
        seq_ll, _, (means, covs, ymeans, yvars) = self._run(data, 2)
        return SmoothedSSM(means, covs, ymeans, yvars, float(seq_ll.sum()))

    def impute(self, X: Any, lengths: Any = None, inputs: Any = None) -> Any:
        """X with every missing entry replaced by its smoothed value E[y | observations].

        A DataFrame comes back as a DataFrame with the same index and columns;
        X itself is never changed.
        """
        data = self._fitted_data(X, lengths, inputs)
        filled = self._run(data, 2)[2][2]
        index, columns = data.frame
        if columns is not None:
            import pandas as pd

            return pd.DataFrame(filled, index=index, columns=columns)
        return filled

    def sample(
        self, n_samples: int = 1, random_state: Any = None, inputs: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one sequence: ``(Y (n_samples, n_features), states (n_samples, n_states))``."""
        n_samples = check_positive_int(n_samples, "n_samples")
        self._check_params()
        rng = check_random_state(self.random_state if random_state is None else random_state)
        n, p, m = self.n_states, self.n_features_in_, self.n_inputs_
        if inputs is None:
            if m:
                raise ValueError(f"the model has {m} inputs; pass inputs ({n_samples}, {m}).")
            U = np.zeros((n_samples, 0))
        else:
            U = check_array(inputs, name="inputs")
            if U.shape != (n_samples, m):
                raise ValueError(f"inputs must have shape ({n_samples}, {m}); got {U.shape}.")
        states = np.empty((n_samples, n))
        x = rng.multivariate_normal(self.initial_mean_, self.initial_cov_, method="eigh")
        for t in range(n_samples):
            if t > 0:
                x = (
                    self.transition_matrix_ @ x
                    + self.transition_input_ @ U[t]
                    + rng.multivariate_normal(np.zeros(n), self.transition_cov_, method="eigh")
                )
            states[t] = x
        noise = rng.multivariate_normal(np.zeros(p), self.observation_cov_, size=n_samples)
        Y = states @ self.observation_matrix_.T + U @ self.observation_input_.T + noise
        return Y, states

    def n_parameters(self) -> int:
        """Free parameters (entries not held fixed; covariances by their structure)."""
        masks = self._masks
        total = 0
        for name in (
            "transition_matrix",
            "transition_input",
            "observation_matrix",
            "observation_input",
            "initial_mean",
        ):
            total += int((~masks[name]).sum())
        for name in ("transition_cov", "observation_cov", "initial_cov"):
            k = masks[name].shape[0]
            kind = self._cov_type(name)
            if masks[name].all():
                continue
            if kind == "full":
                total += k * (k + 1) // 2
            elif kind == "scalar":
                total += 1
            else:
                total += int((~np.diag(masks[name])).sum())
        return total

    def aic(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Akaike information criterion (lower is better)."""
        return -2.0 * self.score(X, lengths, inputs) + 2.0 * self.n_parameters()

    def bic(self, X: Any, lengths: Any = None, inputs: Any = None) -> float:
        """Bayesian information criterion (lower is better); n is the number of time steps."""
        n = len(self._fitted_data(X, lengths, inputs))
        return -2.0 * self.score(X, lengths, inputs) + self.n_parameters() * np.log(n)

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

    @property
    def _masks(self) -> dict:
        masks = self.__dict__.get("_masks_cache")
        if masks is None:
            masks = self._fixed_masks(self.n_features_in_, self.n_inputs_)
            self._masks = masks
        return masks

    @_masks.setter
    def _masks(self, value: dict) -> None:
        self.__dict__["_masks_cache"] = value
        # what the M-step needs from the masks, worked out once
        held = {name: bool(mask.all()) for name, mask in value.items()}
        for part, (coef, inp) in (
            ("transition", ("transition_matrix", "transition_input")),
            ("observation", ("observation_matrix", "observation_input")),
        ):
            free = ~np.hstack([value[coef], value[inp]])
            held[part] = not free.any()
            held[part + "_free"] = free
        self.__dict__["_held_cache"] = held

    @property
    def _held(self) -> dict:
        if "_held_cache" not in self.__dict__:
            self._masks  # noqa: B018 (computes both)
        return self.__dict__["_held_cache"]


def _regression(
    Phi: np.ndarray, free: np.ndarray, Szz: np.ndarray, Syz: np.ndarray, cov: np.ndarray, kind: str
) -> np.ndarray:
    """The coefficients ``Phi`` (k, nz) maximising the expected complete log-likelihood
    ``-1/2 tr(cov^-1 (Phi Szz Phi' - 2 Syz Phi'))`` over the ``free`` entries, the others
    held. Unconstrained: ``Syz Szz^-1``; with a diagonal ``cov`` the rows separate;
    otherwise the generalised least squares of the vectorised problem."""
    if not free.any():
        return Phi
    k, nz = Phi.shape
    if free.all():
        return _solve_sym(Szz, Syz.T).T
    out = Phi.copy()
    if kind != "full":
        for i in range(k):
            f = free[i]
            if not f.any():
                continue
            c = ~f
            rhs = Syz[i, f] - Phi[i, c] @ Szz[np.ix_(c, f)]
            out[i, f] = _solve_sym(Szz[np.ix_(f, f)], rhs)
        return out
    inv = np.linalg.inv(cov)
    H = np.kron(Szz, inv)  # column-major vec: vec(inv Phi Szz) = (Szz kron inv) vec(Phi)
    g = (inv @ Syz).ravel(order="F")
    theta = Phi.ravel(order="F")
    fv = free.ravel(order="F")
    rhs = g[fv] - H[np.ix_(fv, ~fv)] @ theta[~fv]
    theta = theta.copy()
    theta[fv] = _solve_sym(H[np.ix_(fv, fv)], rhs)
    return theta.reshape((k, nz), order="F")


def _solve_sym(S: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``S x = b`` for a symmetric positive semi-definite ``S`` (least squares if
    singular, e.g. an input that is always zero)."""
    try:
        L = np.linalg.cholesky(S)
        y = np.linalg.solve(L, b)
        return np.linalg.solve(L.T, y)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(S, b, rcond=None)[0]


def _check_not_all_constant(X: np.ndarray) -> None:
    """Every column holding one value leaves no noise to estimate: the
    likelihood grows without bound as the covariances shrink to zero."""
    spread = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
    if X.shape[0] > 1 and np.all(spread == 0.0):
        raise ValueError(
            "every column of X is constant, so a state-space model has no variation to "
            "explain (its likelihood is unbounded); remove constant columns or pass data "
            "that varies."
        )


def _residual_cov(Syy: np.ndarray, Syz: np.ndarray, Szz: np.ndarray, Phi: np.ndarray, n: float):
    """``(Syy - Phi Syz' - Syz Phi' + Phi Szz Phi') / n``, symmetrised."""
    PS = Phi @ Syz.T
    return _sym(Syy - PS - PS.T + Phi @ Szz @ Phi.T) / n


class SSMImputer(ParamsMixin):
    """Fill the gaps of a time-indexed table with a state-space model's smoothed values.

    Columns are standardised (observed mean and standard deviation), a
    :class:`LinearGaussianSSM` with ``n_states`` states is fitted by EM to
    the table with its gaps, and every missing cell is replaced by its
    smoothed value E[y | all observations]; :meth:`transform` can also
    return the smoothed standard deviations. Rows are time steps in order;
    ``lengths`` splits them into separate series.

    Parameters
    ----------
    n_states : int
    n_iter, tol, n_init, random_state, accelerate
        As for :class:`LinearGaussianSSM`.
    observation_cov_type, transition_cov_type : str
        As for :class:`LinearGaussianSSM`.

    Attributes
    ----------
    model_ : LinearGaussianSSM
        The fitted model (on the standardised table).
    mean_, scale_ : ndarray (n_features,)

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import SSMImputer
    >>> rng = np.random.default_rng(0)
    >>> trend = np.cumsum(rng.normal(size=200))
    >>> X = np.column_stack([trend, 2 * trend]) + rng.normal(0, 0.3, (200, 2))
    >>> X[50:60, 0] = np.nan
    >>> filled = SSMImputer(1, random_state=0, n_iter=200).fit_transform(X)
    >>> bool(np.isnan(filled).any()), bool(np.allclose(filled[:50], X[:50]))
    (False, True)
    """

    def __init__(
        self,
        n_states: int = 1,
        *,
        transition_cov_type: str = "full",
        observation_cov_type: str = "diag",
        n_iter: int = 1000,
        tol: float = 1e-5,
        n_init: int = 1,
        random_state: Any = None,
        accelerate: str | None = "squarem",
    ):
        self.n_states = n_states
        self.transition_cov_type = transition_cov_type
        self.observation_cov_type = observation_cov_type
        self.n_iter = n_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.accelerate = accelerate

    def _scaled(self, X: Any) -> tuple[np.ndarray, Any]:
        frame = (X.index, X.columns) if hasattr(X, "columns") and hasattr(X, "index") else None
        arr = check_array(X, allow_nan=True).astype(np.float64)
        return arr, frame

    def fit(self, X: Any, lengths: Any = None) -> SSMImputer:
        """Fit the state-space model to the standardised table."""
        arr, _ = self._scaled(X)
        LinearGaussianSSM._check_gaps(arr, _offsets(lengths, len(arr)))
        self.mean_ = np.nanmean(arr, axis=0)
        scale = np.nanstd(arr, axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.model_ = LinearGaussianSSM(
            self.n_states,
            transition_cov_type=self.transition_cov_type,
            observation_cov_type=self.observation_cov_type,
            n_iter=self.n_iter,
            tol=self.tol,
            n_init=self.n_init,
            random_state=self.random_state,
            accelerate=self.accelerate,
        ).fit((arr - self.mean_) / self.scale_, lengths)
        return self

    def transform(self, X: Any, lengths: Any = None, return_std: bool = False) -> Any:
        """X with its gaps filled (and, with ``return_std``, the smoothed standard
        deviations, 0 where observed). A DataFrame comes back as a DataFrame."""
        arr, frame = self._scaled(X)
        out = self.model_.smooth((arr - self.mean_) / self.scale_, lengths)
        filled = out.obs_means * self.scale_ + self.mean_
        filled = np.where(np.isnan(arr), filled, arr)  # observed cells exactly as given
        std = np.sqrt(np.maximum(out.obs_vars, 0.0)) * self.scale_
        if frame is not None:
            import pandas as pd

            filled = pd.DataFrame(filled, index=frame[0], columns=frame[1])
            std = pd.DataFrame(std, index=frame[0], columns=frame[1])
        return (filled, std) if return_std else filled

    def fit_transform(self, X: Any, lengths: Any = None) -> Any:
        """Fit, then fill the gaps of X."""
        return self.fit(X, lengths).transform(X, lengths)
