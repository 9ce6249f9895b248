"""Regime switching: Markov-switching regressions and autoregressions, fitted by EM.

Two models, with statsmodels' names and parametrisation:

* :class:`MarkovRegression` ``y_t = x_t' beta_{S_t} + e_t``, ``e_t ~ N(0, sigma2_{S_t})``;
* :class:`MarkovAutoregression` (Hamilton, 1989)
  ``y_t - x_t' beta_{S_t} = sum_i phi_{i, S_t} (y_{t-i} - x_{t-i}' beta_{S_{t-i}}) + e_t``.

``x_t`` is a constant (``trend="c"``) and the exogenous columns passed to
``fit``; each block of coefficients and the variance switch with the regime
or are shared (``switching_trend``, ``switching_exog``, ``switching_ar``,
``switching_variance``). The regime ``S_t`` is a Markov chain whose
transition probabilities are constant or multinomial-logit in covariates
``z_t`` (``exog_tvtp``). The initial regime distribution is the stationary
distribution of the chain (statsmodels' default), a free vector, or fixed.

Both models are :class:`latentem.LatentModel` objects fitted by
:func:`latentem.fit_em` (restarts, SQUAREM). The E-step is Hamilton's filter
and Kim's smoother over the last ``order + 1`` regimes
(:mod:`latentem.kernels.regime`); the emission statistics are weighted moment
matrices of ``(y_t, x_t, y_{t-1}, x_{t-1}, ...)`` per regime path, so the
M-step maximises the expected complete-data log-likelihood exactly by
conditional maximisation cycles (coefficients, autoregressive coefficients,
variances) on those small matrices, and the transition part by a
multinomial-logit fit (closed form for constant transitions without the
stationary start). Every step raises the expected log-likelihood, so EM
never lowers the likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem._validation import check_positive_int, check_random_state
from latentem.base import ParamsMixin
from latentem.kernels.regime import (
    coef_matrix,
    emission_m_step,
    hamilton_kim,
    log_emission,
    newton_logit,
    stationary_distribution,
    transition_objective,
    weighted_moments,
)
from latentem.persistence import SaveMixin
from latentem.registry import register

__all__ = ["MarkovAutoregression", "MarkovRegression", "RegimeData", "RegimeResult"]


# ------------------------------------------------------------------------------- data
class RegimeData:
    """Validated series for a regime-switching model (what ``fit_em`` passes around).

    Built by the models' ``validate_data``; ``len()`` is the number of rows with
    a likelihood term (each sequence loses its first ``order`` rows to lags).
    """

    def __init__(self, y, exog, exog_tvtp, offsets, order, trend):
        self.y = y  # (N,) with NaN for missing
        self.exog = exog  # (N, k_exog)
        self.exog_tvtp = exog_tvtp  # (N, k_tvtp) or None
        self.full_offsets = offsets  # (S + 1,)
        self.order = order
        n_full = len(y)
        x = exog if trend == "n" else np.column_stack([np.ones(n_full), exog])
        self.x = np.ascontiguousarray(x)
        p = order
        lengths = np.diff(offsets)
        starts = offsets[:-1]
        # Effective rows: each sequence from its row p on.
        rows = np.concatenate([np.arange(s + p, s + n) for s, n in zip(starts, lengths)])
        self.rows = rows.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths - p)]).astype(np.int64)
        kx = self.x.shape[1]
        blocks = []
        valid = np.ones(len(rows), dtype=bool)
        for lag in range(p + 1):
            yl = y[rows - lag]
            valid &= ~np.isnan(yl)
            blocks.append(yl[:, None])
            blocks.append(self.x[rows - lag])
        U = np.concatenate(blocks, axis=1) if blocks else np.empty((len(rows), 0))
        U[~valid] = 0.0
        self.U = np.ascontiguousarray(U)
        self.valid = valid
        self.k_x = kx

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_sequences(self) -> int:
        return len(self.full_offsets) - 1


@dataclass
class RegimeResult:
    """Filtered, predicted and smoothed regime probabilities of one data set.

    Attributes
    ----------
    llf : float
        Log-likelihood.
    llf_obs : ndarray (n_rows,)
        Log-likelihood contribution of each row (NaN rows contribute 0).
    filtered_marginal_probabilities, predicted_marginal_probabilities,
    smoothed_marginal_probabilities : ndarray (n_rows, k_regimes)
        ``P(S_t | y_1..y_t)``, ``P(S_t | y_1..y_{t-1})`` and ``P(S_t | all y)``,
        for the rows with a likelihood term (each sequence from its row
        ``order`` on).
    filtered_joint_probabilities, predicted_joint_probabilities,
    smoothed_joint_probabilities : ndarray (n_rows,) + (k_regimes,) * (order + 1)
        The same over ``(S_t, S_{t-1}, ..., S_{t-order})``.
    expected_durations : ndarray (k_regimes,) or (n_rows, k_regimes)
        ``1 / (1 - P(S_t = k | S_{t-1} = k))``; per row with time-varying
        transitions.
    """

    llf: float
    llf_obs: np.ndarray
    filtered_marginal_probabilities: np.ndarray
    predicted_marginal_probabilities: np.ndarray
    smoothed_marginal_probabilities: np.ndarray
    filtered_joint_probabilities: np.ndarray
    predicted_joint_probabilities: np.ndarray
    smoothed_joint_probabilities: np.ndarray
    expected_durations: np.ndarray


def _stationary(P: np.ndarray) -> np.ndarray:
    """Stationary distribution of a row-stochastic matrix, as statsmodels computes it."""
    m = P.shape[0]
    A = np.vstack([np.eye(m) - P.T, np.ones((1, m))])
    rhs = np.zeros(m + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(A, rhs, rcond=None)[0]
    return np.maximum(pi, 1e-20)


def _softmax_last_zero(eta: np.ndarray) -> np.ndarray:
    """Probabilities from logits (..., K - 1); the last category has logit 0."""
    full = np.concatenate([eta, np.zeros(eta.shape[:-1] + (1,))], axis=-1)
    full = full - full.max(axis=-1, keepdims=True)
    e = np.exp(full)
    return e / e.sum(axis=-1, keepdims=True)


def _tvtp_matrices(z: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Transition matrices (T, K, K) from covariates z (T, kz) and logits coef (K, K-1, kz)."""
    K = coef.shape[0]
    eta = (z @ coef.reshape(K * (K - 1), -1).T).reshape(len(z), K, K - 1)
    return _softmax_last_zero(eta)


def _logits(P: np.ndarray) -> np.ndarray:
    """Logits (K, K - 1) of a row-stochastic matrix against its last column."""
    P = np.maximum(P, 1e-300)
    return np.clip(np.log(P[:, :-1]) - np.log(P[:, -1:]), -300.0, 300.0)


def _as_mask(value: Any, n: int, name: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        return np.full(n, bool(value))
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"{name} must be True, False or one flag per coefficient ({n}); got {value!r}."
        )
    return arr.astype(bool)


# ------------------------------------------------------------------------------ model
class _RegimeSwitching(SaveMixin, ParamsMixin):
    """Shared machinery of :class:`MarkovRegression` and :class:`MarkovAutoregression`."""

    _order_attr = "order"

    # ------------------------------------------------------------------ settings
    def _check_settings(self) -> None:
        self.k_regimes_ = check_positive_int(self.k_regimes, "k_regimes", minimum=2)
        check_positive_int(self._order + 1, "order + 1")
        if self.trend not in ("c", "n"):
            raise ValueError(f'trend must be "c" (a constant) or "n" (none); got {self.trend!r}.')
        init = self.initial
        if isinstance(init, str):
            if init not in ("stationary", "free"):
                raise ValueError(
                    'initial must be "stationary", "free" or an array of probabilities; '
                    f"got {init!r}."
                )
        else:
            arr = np.asarray(init, dtype=float)
            if arr.shape != (self.k_regimes,) or np.any(arr < 0) or abs(arr.sum() - 1) > 1e-8:
                raise ValueError(
                    f"initial as an array must hold {self.k_regimes} probabilities summing "
                    f"to 1; got {init!r}."
                )

    @property
    def _initial_kind(self) -> str:
        init = self.initial
        return init if isinstance(init, str) else "fixed"

    @property
    def _order(self) -> int:
        return int(getattr(self, "order", 0))

    def _switching(self, k_exog: int) -> tuple[np.ndarray, np.ndarray]:
        sw_x = []
        if self.trend == "c":
            sw_x.append(bool(self.switching_trend))
        sw_x.extend(_as_mask(self.switching_exog, k_exog, "switching_exog"))
        sw_ar = _as_mask(getattr(self, "switching_ar", False), self._order, "switching_ar")
        return np.array(sw_x, dtype=bool), sw_ar

    # ----------------------------------------------------------------- validation
    def _make_data(self, y, exog=None, exog_tvtp=None, lengths=None) -> RegimeData:
        self._check_settings()
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise ValueError(
                f"y must be one numeric series (n,) (multivariate y is not supported); got an "
                f"array of shape {y.shape} and dtype {y.dtype}."
            )
        y = np.array(y, dtype=np.float64)  # a copy: the user's array is never touched
        if np.isinf(y).any():
            raise ValueError("y contains inf; replace it with a finite value or NaN (missing).")
        n = len(y)
        if lengths is None:
            lengths = np.array([n])
        lengths = np.asarray(lengths)
        if (
            lengths.ndim != 1
            or not np.issubdtype(lengths.dtype, np.integer)
            or np.any(lengths < 1)
            or lengths.sum() != n
        ):
            raise ValueError(
                f"lengths must be positive integers summing to len(y) = {n}; got {lengths!r}."
            )
        p = self._order
        short = np.flatnonzero(lengths < p + 2)
        if len(short):
            raise ValueError(
                f"sequence {int(short[0])} has {int(lengths[short[0]])} rows; a model of "
                f"order {p} needs at least order + 2 = {p + 2} (order lags and two "
                "observations); drop it or lower order."
            )
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        ex = self._regressors(exog, n, "exog")
        zt = None if exog_tvtp is None else self._regressors(exog_tvtp, n, "exog_tvtp")
        if zt is not None and zt.shape[1] == 0:
            zt = None
        data = RegimeData(y, ex, zt, offsets, p, self.trend)
        if data.valid.sum() == 0:
            raise ValueError("y has no observed rows (after the lags); nothing to fit.")
        kx = data.k_x
        cols = list(range(1, 1 + kx)) + [lag * (1 + kx) for lag in range(1, p + 1)]
        design = data.U[data.valid][:, cols]
        if design.shape[1] and np.linalg.matrix_rank(design) < design.shape[1]:
            raise ValueError(
                "the regressor matrix (constant, exog and lags of y) is singular: some column "
                "is a combination of the others (e.g. a constant column in exog with "
                'trend="c"); drop the redundant columns.'
            )
        return data

    @staticmethod
    def _regressors(value, n, name) -> np.ndarray:
        if value is None:
            return np.empty((n, 0))
        if hasattr(value, "to_numpy"):
            value = value.to_numpy()
        arr = np.asarray(value)
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{name} must be numeric; got dtype {arr.dtype}.")
        arr = np.array(arr, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(
                f"{name} must have one row per observation of y ({n} rows); got shape {arr.shape}."
            )
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        if len(bad):
            raise ValueError(
                f"{name} has NaN or inf in {len(bad)} rows (first: row {int(bad[0])}); "
                "regressors must be complete: impute them or drop those rows."
            )
        return arr

    def validate_data(self, data: Any) -> RegimeData:
        """Accept a :class:`RegimeData` (as built by ``fit``) or a plain series y."""
        if isinstance(data, RegimeData):
            self._setup(data)
            return data
        data = self._make_data(data)
        self._setup(data)
        return data

    def _setup(self, data: RegimeData) -> None:
        """Structures that depend on the data's shape (regressor count, extended states)."""
        K, p = self.k_regimes, self._order
        k_exog = data.exog.shape[1]
        self.k_exog_ = k_exog
        self.k_tvtp_ = 0 if data.exog_tvtp is None else data.exog_tvtp.shape[1]
        sw_x, sw_ar = self._switching(k_exog)
        self._sw_x, self._sw_ar = sw_x, sw_ar
        kx = len(sw_x)
        self._kx = kx
        M = K ** (p + 1)
        # ext[s, l] = S_{t-l} of extended state s.
        s = np.arange(M)
        self._ext = np.stack([(s // K ** (p - lag)) % K for lag in range(p + 1)], axis=1)
        # Free coefficient maps.
        bmap = np.zeros((K, kx), dtype=np.int64)
        j = 0
        for c in range(kx):
            if sw_x[c]:
                bmap[:, c] = np.arange(j, j + K)
                j += K
            else:
                bmap[:, c] = j
                j += 1
        self._bmap, self._nb = bmap, j
        amap = np.zeros((K, p), dtype=np.int64)
        j = 0
        for lag in range(p):
            if sw_ar[lag]:
                amap[:, lag] = np.arange(j, j + K)
                j += K
            else:
                amap[:, lag] = j
                j += 1
        self._amap, self._na = amap, j
        yv = data.y[~np.isnan(data.y)]
        self._var_floor = 1e-10 * max(float(np.var(yv)) if len(yv) > 1 else 1.0, 1e-300)

    # ---------------------------------------------------------------- parameters
    @property
    def _tvtp(self) -> bool:
        return getattr(self, "k_tvtp_", 0) > 0

    def _coef_matrix(self, beta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Residual coefficients C (M, D): e_t(s) = C[s] . U_t."""
        return coef_matrix(
            np.ascontiguousarray(beta, dtype=np.float64),
            np.ascontiguousarray(phi, dtype=np.float64),
            self._ext,
        )

    def _sigma2_ext(self) -> np.ndarray:
        return self.sigma2_[self._ext[:, 0]]

    def _log_emission(self, data: RegimeData) -> np.ndarray:
        C = self._coef_matrix(self.coef_, self._phi())
        return log_emission(data.U, C, np.ascontiguousarray(self._sigma2_ext()), data.valid)

    def _phi(self) -> np.ndarray:
        return getattr(self, "ar_coef_", np.zeros((self.k_regimes, 0)))

    def _transitions(self, data: RegimeData) -> tuple[np.ndarray, np.ndarray]:
        """(trans, tidx): matrices and, per effective row, which one moves into it."""
        if self._tvtp:
            trans = _tvtp_matrices(data.exog_tvtp, self.tvtp_coef_)  # (N, K, K)
            return np.ascontiguousarray(trans), data.rows
        return self.transmat_[None].copy(), np.zeros(len(data), dtype=np.int64)

    def _initial_ext(self, data: RegimeData, trans: np.ndarray) -> np.ndarray:
        """(n_seq, M) distribution of the extended state at each sequence's first row."""
        K, p = self.k_regimes, self._order
        out = np.empty((data.n_sequences, K ** (p + 1)))
        if not self._tvtp:  # the same for every sequence
            joint = self._start_vector(trans[0])
            for step in range(1, p + 1):
                joint = trans[0].T.reshape((K, K) + (1,) * (step - 1)) * joint[None]
            out[:] = joint.reshape(-1)
            return out
        for q, start in enumerate(data.full_offsets[:-1]):
            joint = self._start_vector(trans[start])  # over (S_0,)
            for step in range(1, p + 1):
                P = trans[start + step]
                # new joint over (S_step, S_{step-1}, ..., S_0)
                joint = P.T.reshape((K, K) + (1,) * (step - 1)) * joint[None]
            out[q] = joint.reshape(-1)
        return out

    def _start_vector(self, P: np.ndarray) -> np.ndarray:
        init = self.initial
        if isinstance(init, str):
            if init == "stationary":
                try:
                    return stationary_distribution(np.ascontiguousarray(P, dtype=np.float64))
                except np.linalg.LinAlgError:  # a reducible chain: the least-squares answer
                    return _stationary(P)
            return self.startprob_
        return np.asarray(init, dtype=float)

    def _run(self, data: RegimeData, smooth: bool):
        trans, tidx = self._transitions(data)
        init = self._initial_ext(data, trans)
        logb = self._log_emission(data)
        out = hamilton_kim(logb, data.offsets, trans, tidx, init, self.k_regimes, smooth)
        return out, trans, init

    # ------------------------------------------------------------------- protocol
    def init_params(self, data: RegimeData, rng: np.random.Generator) -> None:
        """Starting parameters: regimes from a random split of the OLS residuals."""
        data = self.validate_data(data)
        K, p = self.k_regimes, self._order
        y, x = data.y, data.x
        obs = ~np.isnan(y)
        beta0 = np.linalg.lstsq(x[obs], y[obs], rcond=None)[0] if x.shape[1] else np.zeros(0)
        resid = np.where(obs, y - (x @ beta0 if x.shape[1] else 0.0), 0.0)
        sd = float(np.std(resid[obs])) or 1.0
        # The first start splits by the residual itself; later ones by a random mix of the
        # residual, its size and a smoothed noise, at random cut points.
        if getattr(self, "_n_starts", 0) == 0:
            a, b, c = 1.0, 0.0, 0.0
        else:
            a, b, c = rng.normal(size=3)
        noise = np.convolve(rng.normal(size=len(y)), np.ones(5) / 5, mode="same")
        score = a * resid / sd + b * np.abs(resid) / sd + c * noise
        cuts = np.sort(rng.uniform(0.15, 0.85, size=K - 1))
        cuts = np.quantile(score[obs], cuts)
        labels = np.searchsorted(cuts, score)
        self._n_starts = getattr(self, "_n_starts", 0) + 1
        # Hard extended-state weights from the labels, then one emission M-step.
        lab_ext = np.zeros(len(data), dtype=np.int64)
        for lag in range(p + 1):
            lab_ext += labels[data.rows - lag] * K ** (p - lag)
        W = np.zeros((len(data), K ** (p + 1)))
        W[np.arange(len(data)), lab_ext] = 1.0
        Ms, Ns = self._moments(data, W)
        # Regimes with no rows would leave their coefficients free: spread a little weight.
        Ms = Ms + 1e-6 * Ms.sum(axis=0, keepdims=True) / max(len(data), 1)
        Ns = Ns + 1e-6 * Ns.sum() / max(len(data), 1)
        self.coef_ = np.tile(beta0, (K, 1)) if len(beta0) else np.zeros((K, 0))
        self.ar_coef_ = np.zeros((K, p))
        self.sigma2_ = np.full(K, max(sd * sd, self._var_floor * 10))
        self._emission_m_step(Ms, Ns, cycles=20)
        # Transitions: persistent regimes.
        stay = rng.uniform(0.6, 0.95, size=K)
        P = rng.dirichlet(np.ones(K - 1), size=K) * (1 - stay)[:, None]
        T = np.empty((K, K))
        for i in range(K):
            T[i, i] = stay[i]
            T[i, np.arange(K) != i] = P[i]
        if self._tvtp:
            z = data.exog_tvtp
            const = np.flatnonzero(np.ptp(z, axis=0) == 0)
            coef = np.zeros((K, K - 1, z.shape[1]))
            if len(const):
                c0 = const[0]
                coef[:, :, c0] = np.log(T[:, : K - 1] / T[:, K - 1 :]) / z[0, c0]
            self.tvtp_coef_ = coef
        else:
            self.transmat_ = T
        if self._initial_kind == "free":
            self.startprob_ = np.full(K, 1.0 / K)

    def _moments(self, data: RegimeData, W: np.ndarray):
        """Weighted moment matrices Ms (M, D, D) and weights Ns (M,) of the valid rows."""
        return weighted_moments(data.U, np.ascontiguousarray(W, dtype=np.float64), data.valid)

    def e_step(self, data: RegimeData) -> tuple[dict, float]:
        """Smoothed statistics and the log-likelihood (see the module notes)."""
        (ll, _f, _p, sm, xi), trans, _init = self._run(data, smooth=True)
        total = float(ll.sum())
        if not math.isfinite(total):
            return {}, -math.inf
        Ms, Ns = self._moments(data, sm)
        K, p = self.k_regimes, self._order
        starts = data.offsets[:-1]
        first = sm[starts].reshape((-1,) + (K,) * (p + 1))
        oldest = first.sum(axis=tuple(range(1, p + 1))) if p else first  # (n_seq, K)
        # Transitions inside the first extended state: S_{l-1} -> S_l, l = 1..p
        # (axis p - l + 1 is S_{l-1}, axis p - l is S_l in the first row's ordering).
        inner = np.zeros((data.n_sequences, p, K, K))
        for lstep in range(1, p + 1):
            ax_next, ax_prev = p - lstep + 1, p - lstep + 2
            others = tuple(a for a in range(1, p + 2) if a not in (ax_next, ax_prev))
            pair = first.sum(axis=others) if others else first  # axes (seq, next, prev)
            inner[:, lstep - 1] = np.swapaxes(pair, 1, 2)
        stats = {"Ms": Ms, "Ns": Ns, "oldest": oldest}
        if self._tvtp:
            # Per full row: pairwise posterior of the transition into it.
            N = len(data.y)
            xi_full = np.zeros((N, K, K))
            xi_full[data.rows] = xi
            for q, s0 in enumerate(data.full_offsets[:-1]):
                for lstep in range(1, p + 1):
                    xi_full[s0 + lstep] += inner[q, lstep - 1]
            stats["xi"] = xi_full
            stats["z"] = data.exog_tvtp
            stats["z0"] = data.exog_tvtp[data.full_offsets[:-1]]
        else:
            stats["trans"] = xi.sum(axis=0) + inner.sum(axis=(0, 1))
        return stats, total

    def m_step(self, stats: dict) -> None:
        """Transition part (logit fit) and emission part (conditional maximisation cycles)."""
        if not stats:
            raise FloatingPointError("the log-likelihood is -inf at the current parameters")
        self._transition_m_step(stats)
        self._emission_m_step(stats["Ms"], stats["Ns"], cycles=self.m_step_cycles)

    # ------------------------------------------------------------- emission M-step
    def _emission_m_step(self, Ms, Ns, cycles: int) -> None:
        beta, phi, s2 = emission_m_step(
            np.ascontiguousarray(Ms),
            np.ascontiguousarray(Ns),
            self._ext,
            self._bmap,
            self._amap,
            np.ascontiguousarray(self.coef_, dtype=np.float64),
            np.ascontiguousarray(self._phi(), dtype=np.float64),
            np.ascontiguousarray(self.sigma2_, dtype=np.float64),
            bool(self.switching_variance),
            float(self._var_floor),
            int(cycles),
        )
        self.coef_, self.ar_coef_, self.sigma2_ = beta, phi, s2

    # ------------------------------------------------------------ transition M-step
    def _transition_m_step(self, stats: dict) -> None:
        oldest = stats["oldest"]
        if self._initial_kind == "free":
            tot = oldest.sum(axis=0)
            self.startprob_ = tot / tot.sum()
        stationary = self._initial_kind == "stationary"
        if not self._tvtp:
            counts = stats["trans"]
            rows = counts.sum(axis=1, keepdims=True)
            closed = np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), self.transmat_)
            if not stationary:
                self.transmat_ = closed
                return
            # The stationary start adds sum_k g_k log pi_k(P): Newton on the logits.
            xi, z = counts[None], np.ones((1, 1))
            z0, g = np.ones((1, 1)), oldest.sum(axis=0)[None]
            old = np.ascontiguousarray(_logits(self.transmat_)[:, :, None])
            cand = np.ascontiguousarray(_logits(closed)[:, :, None])
            buf = np.empty_like(old)
            try:
                f_old = transition_objective(old, xi, z, z0, g, True, buf)
                f_cand = transition_objective(cand, xi, z, z0, g, True, buf)
                start = cand if f_cand >= f_old else old
                coef = newton_logit(start, xi, z, z0, g, True, 30)
            except np.linalg.LinAlgError:
                return  # a degenerate (reducible) chain: keep the transitions (still monotone)
            self.transmat_ = _softmax_last_zero(coef[:, :, 0])
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

    # ---------------------------------------------------------- parameter vector
    def get_param_vector(self) -> np.ndarray:
        """Free parameters as one vector (for SQUAREM)."""
        K = self.k_regimes
        parts = []
        if self._tvtp:
            parts.append(self.tvtp_coef_.ravel())
        else:
            parts.append(self.transmat_[:, : K - 1].ravel())
        if self._initial_kind == "free":
            parts.append(self.startprob_[: K - 1])
        parts.append(self._free(self.coef_, self._bmap, self._nb))
        parts.append(self._free(self._phi(), self._amap, self._na))
        parts.append(self.sigma2_ if self.switching_variance else self.sigma2_[:1])
        return np.concatenate(parts)

    @staticmethod
    def _free(values, pmap, n):
        out = np.zeros(n)
        out[pmap.ravel()] = values.ravel()
        return out

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set from :meth:`get_param_vector`'s layout; False if outside the parameter space."""
        K = self.k_regimes
        theta = np.asarray(theta, dtype=float)
        if not np.all(np.isfinite(theta)):
            return False
        i = 0
        new = {}
        if self._tvtp:
            n = self.tvtp_coef_.size
            new["tvtp_coef_"] = theta[i : i + n].reshape(self.tvtp_coef_.shape)
        else:
            n = K * (K - 1)
            head = theta[i : i + n].reshape(K, K - 1)
            last = 1.0 - head.sum(axis=1, keepdims=True)
            P = np.concatenate([head, last], axis=1)
            if np.any(P < 0) or np.any(P > 1):
                return False
            new["transmat_"] = P
        i += n
        if self._initial_kind == "free":
            head = theta[i : i + K - 1]
            sp = np.append(head, 1.0 - head.sum())
            if np.any(sp < 0):
                return False
            new["startprob_"] = sp
            i += K - 1
        new["coef_"] = theta[i : i + self._nb][self._bmap]
        i += self._nb
        new["ar_coef_"] = theta[i : i + self._na][self._amap]
        i += self._na
        s2 = theta[i:]
        if np.any(s2 < self._var_floor):
            return False
        new["sigma2_"] = s2.copy() if self.switching_variance else np.full(K, s2[0])
        vars(self).update(new)
        return True

    def n_parameters(self) -> int:
        """Free parameters (for AIC and BIC)."""
        K = self.k_regimes
        n_trans = self.tvtp_coef_.size if self._tvtp else K * (K - 1)
        n_start = K - 1 if self.initial == "free" else 0
        n_var = K if self.switching_variance else 1
        return int(n_trans + n_start + self._nb + self._na + n_var)

    def log_likelihood(self, data: RegimeData) -> float:
        """Total log-likelihood of validated data."""
        (ll, *_), _t, _i = self._run(data, smooth=False)
        return float(ll.sum())

    # ----------------------------------------------------------------- user API
    def fit(self, y: Any, exog: Any = None, exog_tvtp: Any = None, lengths: Any = None):
        """Fit by EM from ``n_init`` starts; keeps the best.

        Parameters
        ----------
        y : array-like (n,)
            The series; NaN marks a missing observation (no likelihood term; in an
            autoregression also none for the rows that use it as a lag).
        exog : array-like (n, k), optional
            Exogenous regressors (complete), one row per observation.
        exog_tvtp : array-like (n, k_tvtp), optional
            Covariates of the transition probabilities: row t drives the
            transition into period t (include a constant column yourself).
        lengths : array-like of int, optional
            Lengths of the sequences stacked in y (a panel); default one sequence.

        Returns
        -------
        self
        """
        from latentem.runner import fit_em

        data = self._make_data(y, exog, exog_tvtp, lengths)
        seen = data.y[~np.isnan(data.y)]
        if seen.size and np.ptp(seen) == 0:
            raise ValueError(
                f"y is constant ({seen[0]:g} in every observed row): its variance within a "
                "regime would be 0 and the likelihood unbounded; pass a series that varies."
            )
        self._setup(data)
        self._n_starts = 0
        result = fit_em(
            self,
            data,
            max_iter=self.max_iter,
            tol=self.tol,
            n_init=self.n_init,
            random_state=self.random_state,
            accelerate=self.accelerate,
            verbose=self.verbose,
        )
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.histories_ = result.histories
        self.llf_ = float(self.log_likelihood(data))
        self._data = data
        return self

    def _data_for(self, y, exog, exog_tvtp, lengths) -> RegimeData:
        if y is None:
            data = getattr(self, "_data", None)
            if data is None:
                raise ValueError("pass y (this model has not been fitted on data to reuse).")
            return data
        data = self._make_data(y, exog, exog_tvtp, lengths)
        self._setup(data)
        self._check_fitted(data)
        return data

    def _check_fitted(self, data: RegimeData) -> None:
        K = self.k_regimes
        if not hasattr(self, "sigma2_"):
            raise ValueError("this model has no parameters yet; call fit first or set them.")
        want = {
            "coef_": (K, self._kx),
            "ar_coef_": (K, self._order),
            "sigma2_": (K,),
        }
        if self._tvtp:
            want["tvtp_coef_"] = (K, K - 1, self.k_tvtp_)
        else:
            want["transmat_"] = (K, K)
        for name, shape in want.items():
            value = getattr(self, name, None)
            if name == "ar_coef_" and value is None and self._order == 0:
                self.ar_coef_ = np.zeros((K, 0))
                continue
            if value is None or np.shape(value) != shape:
                raise ValueError(
                    f"{name} must have shape {shape} for this data (k_regimes={K}, "
                    f"{self._kx} regressors, order {self._order}, {self.k_tvtp_} transition "
                    f"covariates); got {None if value is None else np.shape(value)}."
                )

    def smooth(self, y: Any = None, exog: Any = None, exog_tvtp: Any = None, lengths: Any = None):
        """Filter and smooth at the current parameters.

        Without arguments, uses the data of the last ``fit``.

        Returns
        -------
        RegimeResult
        """
        data = self._data_for(y, exog, exog_tvtp, lengths)
        (ll, filt, pred, sm, _xi), trans, _init = self._run(data, smooth=True)
        K, p = self.k_regimes, self._order
        shape = (len(data),) + (K,) * (p + 1)

        def marg(a):
            a = a.reshape(shape)
            return a.sum(axis=tuple(range(2, p + 2))) if p else a

        llf_obs = self._llf_obs(data, filt, pred)
        if self._tvtp:
            Pt = trans[data.rows]
            durations = 1.0 / (1.0 - np.einsum("tkk->tk", Pt))
        else:
            durations = 1.0 / (1.0 - np.diag(self.transmat_))
        return RegimeResult(
            llf=float(ll.sum()),
            llf_obs=llf_obs,
            filtered_marginal_probabilities=marg(filt),
            predicted_marginal_probabilities=marg(pred),
            smoothed_marginal_probabilities=marg(sm),
            filtered_joint_probabilities=filt.reshape(shape),
            predicted_joint_probabilities=pred.reshape(shape),
            smoothed_joint_probabilities=sm.reshape(shape),
            expected_durations=durations,
        )

    def _llf_obs(self, data, filt, pred) -> np.ndarray:
        logb = self._log_emission(data)
        mx = logb.max(axis=1, keepdims=True)
        out = np.log(np.sum(pred * np.exp(logb - mx), axis=1)) + mx[:, 0]
        return np.where(data.valid, out, 0.0)

    def score(self, y: Any, exog: Any = None, exog_tvtp: Any = None, lengths: Any = None):
        """Log-likelihood of a data set at the current parameters."""
        data = self._data_for(y, exog, exog_tvtp, lengths)
        return self.log_likelihood(data)

    # ---------------------------------------------------------- parameter names
    def _params_layout(self) -> list[tuple[str, Any]]:
        """statsmodels' parameter order: (name, getter/setter key)."""
        K = self.k_regimes
        names = []
        if self._tvtp:
            for j in range(K - 1):
                for z in range(self.k_tvtp_):
                    for i in range(K):
                        names.append((f"p[{i}->{j}].tvtp{z}", ("tvtp", i, j, z)))
        else:
            for j in range(K - 1):
                for i in range(K):
                    names.append((f"p[{i}->{j}]", ("trans", i, j)))
        xnames = (["const"] if self.trend == "c" else []) + [
            f"x{c + 1}" for c in range(self.k_exog_)
        ]
        coef = []
        for c, nm in enumerate(xnames):
            if self._sw_x[c]:
                coef += [(f"{nm}[{k}]", ("coef", k, c)) for k in range(K)]
            else:
                coef.append((nm, ("coef", 0, c)))
        var = (
            [(f"sigma2[{k}]", ("sigma2", k)) for k in range(K)]
            if self.switching_variance
            else [("sigma2", ("sigma2", 0))]
        )
        ar = []
        for lag in range(self._order):
            if self._sw_ar[lag]:
                ar += [(f"ar.L{lag + 1}[{k}]", ("ar", k, lag)) for k in range(K)]
            else:
                ar.append((f"ar.L{lag + 1}", ("ar", 0, lag)))
        return names + coef + var + ar

    @property
    def param_names_(self) -> list[str]:
        """Names of :attr:`params_`, in statsmodels' order."""
        return [n for n, _ in self._params_layout()]

    @property
    def params_(self) -> np.ndarray:
        """The parameters in statsmodels' order and parametrisation (variances, not sds)."""
        out = []
        for _, key in self._params_layout():
            kind = key[0]
            if kind == "tvtp":
                out.append(self.tvtp_coef_[key[1], key[2], key[3]])
            elif kind == "trans":
                out.append(self.transmat_[key[1], key[2]])
            elif kind == "coef":
                out.append(self.coef_[key[1], key[2]])
            elif kind == "sigma2":
                out.append(self.sigma2_[key[1]])
            else:
                out.append(self.ar_coef_[key[1], key[2]])
        return np.array(out)

    def set_statsmodels_params(self, params: Any, y: Any, exog=None, exog_tvtp=None, lengths=None):
        """Set the parameters from a vector in statsmodels' order (see :attr:`param_names_`).

        ``y`` and the regressors fix the shapes. Returns self.
        """
        data = self._make_data(y, exog, exog_tvtp, lengths)
        self._setup(data)
        self._set_from_vector(np.asarray(params, dtype=float))
        self._data = data
        return self

    def _set_from_vector(self, params: np.ndarray) -> None:
        K = self.k_regimes
        layout = self._params_layout()
        if len(params) != len(layout):
            raise ValueError(
                f"params must hold {len(layout)} values ({', '.join(n for n, _ in layout)}); "
                f"got {len(params)}."
            )
        coef = np.zeros((K, self._kx))
        ar = np.zeros((K, self._order))
        s2 = np.zeros(K)
        tv = np.zeros((K, K - 1, self.k_tvtp_)) if self._tvtp else None
        P = np.zeros((K, K))
        for value, (_, key) in zip(params, layout):
            kind = key[0]
            if kind == "tvtp":
                tv[key[1], key[2], key[3]] = value
            elif kind == "trans":
                P[key[1], key[2]] = value
            elif kind == "coef":
                rows = [key[1]] if self._sw_x[key[2]] else range(K)
                for k in rows:
                    coef[k, key[2]] = value
            elif kind == "sigma2":
                rows = [key[1]] if self.switching_variance else range(K)
                for k in rows:
                    s2[k] = value
            else:
                rows = [key[1]] if self._sw_ar[key[2]] else range(K)
                for k in rows:
                    ar[k, key[2]] = value
        if self._tvtp:
            self.tvtp_coef_ = tv
        else:
            P[:, K - 1] = 1.0 - P[:, : K - 1].sum(axis=1)
            self.transmat_ = P
        self.coef_, self.ar_coef_, self.sigma2_ = coef, ar, s2

    def bse(self, step: float = 1e-4) -> np.ndarray:
        """Standard errors of :attr:`params_` from a numerical Hessian of the log-likelihood.

        The observed information at the current parameters (central differences,
        relative step ``step``), on the data of the last ``fit``.
        """
        data = self._data_for(None, None, None, None)
        theta = self.params_
        names = ("transmat_", "tvtp_coef_", "coef_", "ar_coef_", "sigma2_")
        saved = {k: np.copy(vars(self)[k]) for k in names if k in vars(self)}

        def ll(t):
            self._set_from_vector(t)
            return self.log_likelihood(data)

        n = len(theta)
        h = step * np.maximum(np.abs(theta), 1e-2)
        H = np.empty((n, n))
        try:
            f0 = ll(theta)
            for i in range(n):
                for j in range(i, n):
                    if i == j:
                        e = np.zeros(n)
                        e[i] = h[i]
                        H[i, i] = (ll(theta + e) - 2 * f0 + ll(theta - e)) / h[i] ** 2
                    else:
                        ei = np.zeros(n)
                        ej = np.zeros(n)
                        ei[i], ej[j] = h[i], h[j]
                        H[i, j] = H[j, i] = (
                            ll(theta + ei + ej)
                            - ll(theta + ei - ej)
                            - ll(theta - ei + ej)
                            + ll(theta - ei - ej)
                        ) / (4 * h[i] * h[j])
        finally:
            vars(self).update(saved)
        cov = np.linalg.pinv(-H)
        return np.sqrt(np.maximum(np.diag(cov), 0.0))

    def expected_durations(self) -> np.ndarray:
        """``1 / (1 - p_kk)`` per regime (per row of the fitted data with TVTP)."""
        return self.smooth().expected_durations

    # ------------------------------------------------------------------ forecast
    def forecast(
        self,
        steps: int = 1,
        exog: Any = None,
        exog_tvtp: Any = None,
        method: str = "auto",
        n_paths: int = 20000,
        random_state: Any = None,
    ) -> dict[str, np.ndarray]:
        """Predictive mean, variance and regime probabilities 1..steps ahead of the fitted data.

        ``method="exact"`` (what ``"auto"`` picks when the autoregressive
        coefficients do not switch, and for ``MarkovRegression``): the
        predictive distribution is a mixture over the current regime and the
        last ``order`` regimes, computed in closed form. ``method="simulate"``
        (what ``"auto"`` picks with switching autoregressive coefficients):
        mean and variance from ``n_paths`` simulated paths started from the
        filtered regimes; the regime probabilities stay exact. Uses the last
        sequence of the fitted data.

        Parameters
        ----------
        steps : int
        exog : array-like (steps, k_exog)
            Future exogenous regressors (needed when the model has some).
        exog_tvtp : array-like (steps, k_tvtp)
            Future transition covariates (needed with time-varying transitions).
        method : {"auto", "exact", "simulate"}
        n_paths : int
            Simulated paths for ``method="simulate"``.
        random_state : None, int or Generator
            Seeds the simulated paths.

        Returns
        -------
        dict with ``mean`` (steps,), ``variance`` (steps,) and ``probabilities``
        (steps, k_regimes).
        """
        steps = check_positive_int(steps, "steps")
        data = self._data_for(None, None, None, None)
        K, p = self.k_regimes, self._order
        if method not in ("auto", "exact", "simulate"):
            raise ValueError(f'method must be "auto", "exact" or "simulate"; got {method!r}.')
        switching_ar = bool(p and np.any(self._sw_ar))
        if method == "exact" and switching_ar:
            raise ValueError(
                'method="exact" needs autoregressive coefficients that do not switch '
                '(switching_ar=False); use method="simulate" (or "auto").'
            )
        simulate = method == "simulate" or (method == "auto" and switching_ar)
        fut_x = self._regressors(exog, steps, "exog")
        if fut_x.shape[1] != self.k_exog_:
            raise ValueError(
                f"exog for the forecast needs {self.k_exog_} columns (as in fit); got "
                f"{fut_x.shape[1]}."
            )
        if self.trend == "c":
            fut_x = np.column_stack([np.ones(steps), fut_x])
        if self._tvtp:
            fz = self._regressors(exog_tvtp, steps, "exog_tvtp")
            Ps = _tvtp_matrices(fz, self.tvtp_coef_)
        else:
            Ps = np.repeat(self.transmat_[None], steps, axis=0)
        res = self.smooth()
        last = data.offsets[-1] - 1
        joint = res.filtered_joint_probabilities[last]  # (S_T, ..., S_{T-p})
        joint = joint.sum(axis=-1) if p else joint  # (S_T, ..., S_{T-p+1})
        rows = data.full_offsets[-1] - 1 - np.arange(p)  # full rows T, T-1, ..., T-p+1
        if p and np.isnan(data.y[rows]).any():
            raise ValueError("the last order values of y are missing; cannot forecast.")
        phi = self.ar_coef_[0] if p else np.zeros(0)
        beta = self.coef_
        # Deviations z_{T-i} = y_{T-i} - x_{T-i}' beta_{S_{T-i}} on the axes of ``joint``.
        past_dev = np.zeros((p,) + (K,) * p)
        for i in range(p):
            dev = data.y[rows[i]] - data.x[rows[i]] @ beta.T  # (K,)
            shape = [1] * p
            shape[i] = K
            past_dev[i] = np.broadcast_to(dev.reshape(shape), (K,) * p)
        comp = np.zeros((p, p))
        if p:
            comp[0] = phi
            comp[1:, :-1] = np.eye(p - 1)
        # MA weights of the future errors: theta_0 = 1, theta_m = sum_i phi_i theta_{m-i}.
        theta = np.zeros(steps)
        theta[0] = 1.0
        for m in range(1, steps):
            theta[m] = sum(phi[i - 1] * theta[m - i] for i in range(1, min(m, p) + 1))
        mean = np.empty(steps)
        var = np.empty(steps)
        probs = np.empty((steps, K))
        marg = joint.sum(axis=tuple(range(1, p))) if p > 1 else joint  # P(S_T | y)
        if simulate:
            probs_, mean, var = self._forecast_paths(
                joint, past_dev, fut_x, Ps, check_positive_int(n_paths, "n_paths"), random_state
            )
            Pprod = np.eye(K)
            for h in range(steps):
                Pprod = Pprod @ Ps[h]
                probs[h] = marg @ Pprod
            return {"mean": mean, "variance": var, "probabilities": probs}
        Pprod = np.eye(K)
        power = np.eye(p)
        s2_marg = np.empty(steps)
        for h in range(steps):
            Pprod = Pprod @ Ps[h]  # S_T -> S_{T+h+1}
            probs[h] = marg @ Pprod
            s2_marg[h] = probs[h] @ self.sigma2_
            cond = fut_x[h] @ beta.T  # (K,): x' beta of S_{T+h+1}
            if p:
                power = power @ comp
                ar_part = np.tensordot(power[0], past_dev, axes=(0, 0))  # (K,) * p
                cur = np.einsum("kj,k...->jk...", Pprod, joint)
                cmean = cond.reshape((K,) + (1,) * p) + ar_part[None]
            else:
                cur, cmean = probs[h], cond
            mean[h] = float(np.sum(cur * cmean))
            noise = float(np.sum(theta[: h + 1] ** 2 * s2_marg[h::-1]))
            var[h] = float(np.sum(cur * cmean**2) - mean[h] ** 2 + noise)
        return {"mean": mean, "variance": var, "probabilities": probs}

    def _forecast_paths(self, joint, past_dev, fut_x, Ps, n_paths, random_state):
        """Simulated forecast paths from the filtered joint of the last ``order`` regimes."""
        rng = check_random_state(random_state)
        K, p = self.k_regimes, self._order
        steps = len(fut_x)
        flat = np.asarray(joint, dtype=float).reshape(-1)
        idx = rng.choice(len(flat), size=n_paths, p=flat / flat.sum())
        # Regimes and deviations z_{T-i} (i = 0..p-1) of each path.
        past = np.stack(np.unravel_index(idx, (K,) * p), axis=1) if p else np.zeros((n_paths, 0))
        past = past.astype(np.int64)
        if p:
            z = np.stack(
                [past_dev[i].reshape(-1)[idx] for i in range(p)], axis=1
            )  # (paths, p): z_T, z_{T-1}, ...
            cur = past[:, 0]
        else:
            z = np.zeros((n_paths, 0))
            cur = rng.choice(K, size=n_paths, p=np.asarray(joint, dtype=float))
        ys = np.empty((steps, n_paths))
        for h in range(steps):
            u = rng.uniform(size=n_paths)
            cdf = np.cumsum(Ps[h][cur], axis=1)
            cur = np.minimum((u[:, None] > cdf).sum(axis=1), K - 1)
            e = rng.normal(size=n_paths) * np.sqrt(self.sigma2_[cur])
            dev = e
            if p:
                dev = e + np.sum(self.ar_coef_[cur] * z, axis=1)
                z = np.column_stack([dev, z[:, :-1]])
            ys[h] = self.coef_[cur] @ fut_x[h] + dev
        return None, ys.mean(axis=1), ys.var(axis=1)

    def simulate(
        self,
        n_samples: int,
        exog: Any = None,
        exog_tvtp: Any = None,
        random_state: Any = None,
        burn: int = 100,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw a series and its regimes from the model.

        The regimes start from the initial distribution; an autoregression
        starts from zero deviations and runs ``burn`` steps first (without
        exogenous regressors only: with them, their first ``order`` rows are
        lags and the series starts there).

        Returns
        -------
        y : ndarray (n_samples,)
        regimes : ndarray (n_samples,)
        """
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(random_state)
        K, p = self.k_regimes, self._order
        x = self._regressors(exog, n, "exog")
        k_exog = np.shape(self.coef_)[1] - (self.trend == "c")
        if x.shape[1] != k_exog:
            raise ValueError(f"exog needs {k_exog} columns (as coef_ has); got {x.shape[1]}.")
        if self.trend == "c":
            x = np.column_stack([np.ones(n), x])
        if self._tvtp:
            z = self._regressors(exog_tvtp, n, "exog_tvtp")
            Ps = _tvtp_matrices(z, self.tvtp_coef_)
            burn = 0
        else:
            Ps = np.repeat(self.transmat_[None], n, axis=0)
        if exog is not None:
            burn = 0
        total = n + burn
        xs = np.concatenate([np.repeat(x[:1], burn, axis=0), x]) if burn else x
        Pall = np.concatenate([np.repeat(Ps[:1], burn, axis=0), Ps]) if burn else Ps
        S = np.empty(total, dtype=np.int64)
        S[0] = rng.choice(K, p=self._start_vector(Pall[0]))
        for t in range(1, total):
            S[t] = rng.choice(K, p=Pall[t, S[t - 1]])
        mu = np.einsum("tc,tc->t", xs, self.coef_[S])
        e = rng.normal(size=total) * np.sqrt(self.sigma2_[S])
        dev = np.zeros(total)
        for t in range(total):
            acc = e[t]
            for i in range(1, min(p, t) + 1):
                acc += self.ar_coef_[S[t], i - 1] * dev[t - i]
            dev[t] = acc
        y = mu + dev
        return y[burn:], S[burn:]

    # -------------------------------------------------------------------- files
    def _to_state(self) -> dict:
        state = {"params": self.get_params()}
        if isinstance(state["params"].get("initial"), np.ndarray):
            state["params"]["initial"] = state["params"]["initial"].tolist()
        rs = state["params"].get("random_state")
        if rs is not None and not isinstance(rs, (int, np.integer)):
            state["params"]["random_state"] = None
        fitted = {}
        for name in (
            "transmat_",
            "tvtp_coef_",
            "startprob_",
            "coef_",
            "ar_coef_",
            "sigma2_",
            "history_",
            "k_exog_",
            "k_tvtp_",
            "converged_",
            "n_iter_",
            "llf_",
        ):
            if name in vars(self):
                v = vars(self)[name]
                fitted[name] = v.item() if isinstance(v, np.generic) else v
        state["fitted"] = fitted
        return state

    @classmethod
    def _from_state(cls, state: dict):
        obj = cls(**state["params"])
        for name, value in state["fitted"].items():
            setattr(obj, name, value)
        obj._check_settings()
        if "sigma2_" in state["fitted"]:
            K = obj.k_regimes
            if np.shape(obj.sigma2_) != (K,) or np.any(np.asarray(obj.sigma2_) <= 0):
                raise ValueError("the model file's sigma2_ must hold k_regimes positive values")
        return obj


@register
class MarkovRegression(_RegimeSwitching):
    """Markov-switching regression ``y_t = x_t' beta_{S_t} + e_t``, fitted by EM.

    statsmodels' ``MarkovRegression`` (same parameters, same likelihood), but
    fitted by EM with restarts and SQUAREM, for panels of series, with
    missing observations, forecasts and model files.

    Parameters
    ----------
    k_regimes : int
        Number of regimes (>= 2).
    trend : {"c", "n"}
        A constant column in ``x_t`` or none.
    switching_trend : bool
        Whether the constant switches with the regime.
    switching_exog : bool or sequence of bool
        Whether the coefficients of ``exog`` switch (one flag per column allowed).
    switching_variance : bool
        Whether the error variance switches.
    initial : {"stationary", "free"} or array
        Initial regime distribution: the stationary distribution of the chain
        (statsmodels' default), a free vector estimated by EM, or fixed.
    n_init : int
        EM starts (the first from a split of OLS residuals, the others random).
    max_iter, tol : int, float
        Per start, as in :func:`latentem.fit_em` (``tol`` on the mean
        per-row log-likelihood).
    accelerate : {"squarem", None}
    m_step_cycles : int
        Conditional-maximisation cycles per M-step (a maximum; they stop when
        the expected log-likelihood stops rising).
    random_state : None, int or Generator
    verbose : bool or int

    Attributes
    ----------
    transmat_ : ndarray (k_regimes, k_regimes)
        ``transmat_[i, j] = P(S_t = j | S_{t-1} = i)`` (constant transitions).
    tvtp_coef_ : ndarray (k_regimes, k_regimes - 1, k_tvtp)
        With ``exog_tvtp``: ``P(S_t = j | S_{t-1} = i) ∝ exp(z_t' tvtp_coef_[i, j])``,
        the last regime's logit being 0.
    coef_ : ndarray (k_regimes, n_regressors)
        ``beta_k`` (constant first); equal rows where a coefficient does not switch.
    sigma2_ : ndarray (k_regimes,)
    llf_ : float
        Log-likelihood at the fit.
    history_ : ndarray
        EM log-likelihood history of the best start (never decreasing).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import MarkovRegression
    >>> rng = np.random.default_rng(0)
    >>> truth = MarkovRegression(2)
    >>> truth.transmat_ = np.array([[0.95, 0.05], [0.1, 0.9]])
    >>> truth.coef_ = np.array([[0.0], [3.0]])
    >>> truth.sigma2_ = np.array([1.0, 1.0])
    >>> y, regimes = truth.simulate(400, random_state=0)
    >>> model = MarkovRegression(2, n_init=3, random_state=0).fit(y)
    >>> np.round(np.sort(model.coef_[:, 0]), 1)
    array([-0.1,  2.9])
    >>> bool(np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[1:])))
    True
    """

    def __init__(
        self,
        k_regimes: int = 2,
        trend: str = "c",
        switching_trend: bool = True,
        switching_exog: Any = True,
        switching_variance: bool = False,
        initial: Any = "stationary",
        n_init: int = 10,
        max_iter: int = 2000,
        tol: float = 1e-10,
        accelerate: str | None = "squarem",
        m_step_cycles: int = 50,
        random_state: Any = None,
        verbose: bool | int = False,
    ):
        self.k_regimes = k_regimes
        self.trend = trend
        self.switching_trend = switching_trend
        self.switching_exog = switching_exog
        self.switching_variance = switching_variance
        self.initial = initial
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.accelerate = accelerate
        self.m_step_cycles = m_step_cycles
        self.random_state = random_state
        self.verbose = verbose
        self.k_exog_ = 0
        self.k_tvtp_ = 0
        self._setup_shapes()

    def _setup_shapes(self) -> None:
        """Shapes for a model without data yet (no exog, no TVTP)."""
        try:
            self._check_settings()
        except ValueError:
            return
        K, p = self.k_regimes, self._order
        sw_x, sw_ar = self._switching(0)
        self._sw_x, self._sw_ar, self._kx = sw_x, sw_ar, len(sw_x)
        s = np.arange(K ** (p + 1))
        self._ext = np.stack([(s // K ** (p - lag)) % K for lag in range(p + 1)], axis=1)
        self._var_floor = 1e-300


@register
class MarkovAutoregression(_RegimeSwitching):
    """Hamilton's Markov-switching autoregression, fitted by EM.

    ``y_t - x_t' beta_{S_t} = sum_{i<=order} phi_{i,S_t} (y_{t-i} - x_{t-i}' beta_{S_{t-i}})
    + e_t``: statsmodels' ``MarkovAutoregression`` (same parameters, same
    likelihood: the first ``order`` rows are conditioned on). The E-step runs
    over the last ``order + 1`` regimes.

    Parameters
    ----------
    k_regimes : int
    order : int
        Autoregressive order (>= 1).
    trend : {"c", "n"}
    switching_ar : bool or sequence of bool
        Whether the autoregressive coefficients switch (per lag allowed).
    switching_trend, switching_exog, switching_variance, initial, n_init,
    max_iter, tol, accelerate, m_step_cycles, random_state, verbose
        As in :class:`MarkovRegression` (``switching_exog`` defaults to False,
        as in statsmodels).

    Attributes
    ----------
    ar_coef_ : ndarray (k_regimes, order)
    transmat_, tvtp_coef_, coef_, sigma2_, llf_, history_
        As in :class:`MarkovRegression`.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem import MarkovAutoregression
    >>> truth = MarkovAutoregression(2, order=1, switching_ar=False)
    >>> truth.transmat_ = np.array([[0.9, 0.1], [0.05, 0.95]])
    >>> truth.coef_ = np.array([[-1.0], [2.0]])
    >>> truth.ar_coef_ = np.array([[0.3], [0.3]])
    >>> truth.sigma2_ = np.array([0.5, 0.5])
    >>> y, _ = truth.simulate(500, random_state=1)
    >>> model = MarkovAutoregression(2, order=1, switching_ar=False, n_init=3, random_state=0)
    >>> model = model.fit(y)
    >>> np.round(np.sort(model.coef_[:, 0]), 0)
    array([-1.,  2.])
    >>> bool(np.all(np.diff(model.history_) >= -1e-9 * np.abs(model.history_[1:])))
    True
    """

    def __init__(
        self,
        k_regimes: int = 2,
        order: int = 1,
        trend: str = "c",
        switching_ar: Any = True,
        switching_trend: bool = True,
        switching_exog: Any = False,
        switching_variance: bool = False,
        initial: Any = "stationary",
        n_init: int = 10,
        max_iter: int = 2000,
        tol: float = 1e-10,
        accelerate: str | None = "squarem",
        m_step_cycles: int = 50,
        random_state: Any = None,
        verbose: bool | int = False,
    ):
        self.k_regimes = k_regimes
        self.order = order
        self.trend = trend
        self.switching_ar = switching_ar
        self.switching_trend = switching_trend
        self.switching_exog = switching_exog
        self.switching_variance = switching_variance
        self.initial = initial
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.accelerate = accelerate
        self.m_step_cycles = m_step_cycles
        self.random_state = random_state
        self.verbose = verbose
        self.k_exog_ = 0
        self.k_tvtp_ = 0
        MarkovRegression._setup_shapes(self)

    def _check_settings(self) -> None:
        check_positive_int(self.order, "order")
        super()._check_settings()
