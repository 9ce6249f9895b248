"""The core of the regime-switching models: settings, the E-step and the emission M-step, fitting.

:class:`_RegimeSwitching`, the base class of :class:`MarkovRegression` and
:class:`MarkovAutoregression`: their settings and the structures that depend
on the data's shape (extended states over the last ``order + 1`` regimes,
maps of the free coefficients), the :class:`latentem.LatentModel` protocol
(starting values, Hamilton's filter and Kim's smoother as the E-step,
weighted moment matrices and conditional-maximisation cycles as the emission
M-step), ``fit``, ``smooth``, ``score`` and the model-file state. Reading the
user's data, the transition chain, the parameter vectors and forecasting are
mixins from the package's other files.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from latentem._validation import check_positive_int
from latentem.base import ParamsMixin
from latentem.kernels.regime import (
    chain_statistics,
    coef_matrix,
    emission_m_step,
    hamilton_kim,
    log_emission,
    weighted_moments,
)
from latentem.latent.markov import initial_kind
from latentem.models.regime.data import RegimeData, RegimeResult, _RegimeInput
from latentem.models.regime.forecast import _RegimeForecast
from latentem.models.regime.parameters import _RegimeParameters
from latentem.models.regime.transitions import _RegimeTransitions
from latentem.persistence import SaveMixin

__all__: list[str] = []


def _as_mask(value: Any, n: int, name: str) -> np.ndarray:
    if isinstance(value, (bool, np.bool_)):
        return np.full(n, bool(value))
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(
            f"{name} must be True, False or one flag per coefficient ({n}); got {value!r}."
        )
    return arr.astype(bool)


def _quantiles(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``np.quantile(ordered, q)`` (its default, linear method) of sorted values, without
    its overhead (a fit takes one per start)."""
    pos = q * (len(ordered) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(ordered) - 1)
    a, b, t = ordered[lo], ordered[hi], pos - lo
    diff = b - a
    # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


# ------------------------------------------------------------------------------ model
class _RegimeSwitching(
    _RegimeInput, _RegimeTransitions, _RegimeParameters, _RegimeForecast, SaveMixin, ParamsMixin
):
    """Shared machinery of :class:`MarkovRegression` and :class:`MarkovAutoregression`."""

    _order_attr = "order"

    # ------------------------------------------------------------------ settings
    def _check_settings(self) -> None:
        self.k_regimes_ = check_positive_int(self.k_regimes, "k_regimes", minimum=2)
        check_positive_int(self._order + 1, "order + 1")
        if getattr(self, "search_iter", None) is not None:
            check_positive_int(self.search_iter, "search_iter")
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
        return initial_kind(self.initial)

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

    def _keep_settings(self, settings: dict[str, Any]) -> None:
        """Store the constructor's arguments unchanged, then the shapes of a model without data.

        ``settings`` is the constructor's ``locals()``. One place for what both public
        constructors did line by line; their signatures stay written out, since
        scikit-learn's ``get_params`` and ``clone`` read them.
        """
        for name in self._param_names():
            setattr(self, name, settings[name])
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

    def _run(self, data: RegimeData, smooth: bool):
        trans, tidx = self._transitions(data)
        init = self._initial_ext(data, trans)
        logb = self._log_emission(data)
        out = hamilton_kim(logb, data.offsets, trans, tidx, init, self.k_regimes, smooth)
        return out, trans, init

    # ------------------------------------------------------------------- protocol
    def init_params(self, data: RegimeData, rng: np.random.Generator) -> None:
        """Starting parameters: regimes from a random split of the OLS residuals."""
        if not isinstance(data, RegimeData):  # fit_em passes the data fit has set up
            data = self.validate_data(data)
        K, p = self.k_regimes, self._order
        y = data.y
        obs, beta0, resid, sd = data.ols()
        # The first start splits by the residual itself; later ones by a random mix of the
        # residual, its size and a smoothed noise, at random cut points.
        if getattr(self, "_n_starts", 0) == 0:
            a, b, c = 1.0, 0.0, 0.0
        else:
            a, b, c = rng.normal(size=3)
        noise = np.convolve(rng.normal(size=len(y)), np.ones(5) / 5, mode="same")
        score = a * resid / sd + b * np.abs(resid) / sd + c * noise
        cuts = _quantiles(np.sort(score[obs]), np.sort(rng.uniform(0.15, 0.85, size=K - 1)))
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
        self.coef_ = np.repeat(beta0[None, :], K, axis=0)
        self.ar_coef_ = np.zeros((K, p))
        self.sigma2_ = np.full(K, max(sd * sd, self._var_floor * 10))
        self._emission_m_step(Ms, Ns, cycles=20)
        # Transitions: persistent regimes.
        stay = rng.uniform(0.6, 0.95, size=K)
        P = rng.dirichlet(np.ones(K - 1), size=K) * (1 - stay)[:, None]
        T = np.diag(stay)
        T[~np.eye(K, dtype=bool)] = P.ravel()  # row by row, the off-diagonal places in order
        if self._tvtp:
            z = data.exog_tvtp
            c0 = data.tvtp_constant
            coef = np.zeros((K, K - 1, z.shape[1]))
            if c0 >= 0:
                coef[:, :, c0] = np.log(T[:, : K - 1] / T[:, K - 1 :]) / z[0, c0]
            self.tvtp_coef_ = coef
        else:
            self.transmat_ = T
        if self._initial_kind == "free":
            self.startprob_ = np.full(K, 1.0 / K)

    def _moments(self, data: RegimeData, W: np.ndarray):
        """Weighted moment matrices Ms (M, D, D) and weights Ns (M,) of the valid rows."""
        return weighted_moments(data.U, W, data.valid, data.pairs)

    def e_step(self, data: RegimeData) -> tuple[dict, float]:
        """Smoothed statistics and the log-likelihood (see the module notes)."""
        (ll, _f, _p, sm, xi), trans, _init = self._run(data, smooth=True)
        total = float(ll.sum())
        if not math.isfinite(total):
            return {}, -math.inf
        Ms, Ns = self._moments(data, sm)
        oldest, counts, xi_full = chain_statistics(
            sm, xi, self._ext, data.offsets, data.full_offsets, data.rows, len(data.y), self._tvtp
        )
        stats = {"Ms": Ms, "Ns": Ns, "oldest": oldest}
        if self._tvtp:
            stats["xi"] = xi_full
            stats["z"] = data.exog_tvtp
            stats["z0"] = data.exog_tvtp[data.full_offsets[:-1]]
        else:
            stats["trans"] = counts
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
        from latentem.runner import ConvergenceWarning, fit_em

        data = self._make_data(y, exog, exog_tvtp, lengths)
        seen = data.y[~np.isnan(data.y)]
        if seen.size and np.ptp(seen) == 0:
            raise ValueError(
                f"y is constant ({seen[0]:g} in every observed row): its variance within a "
                "regime would be 0 and the likelihood unbounded; pass a series that varies."
            )
        self._setup(data)
        self._n_starts = 0
        run = dict(tol=self.tol, accelerate=self.accelerate, verbose=self.verbose)
        if getattr(self, "search_iter", None) is None:
            result = fit_em(
                self, data, max_iter=self.max_iter, n_init=self.n_init,
                random_state=self.random_state, **run,
            )  # fmt: skip
            self.history_, self.histories_ = result.history, result.histories
        else:
            # Short runs from every start, then the best of them to convergence.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                search = fit_em(
                    self, data, max_iter=self.search_iter, n_init=self.n_init,
                    random_state=self.random_state, **run,
                )  # fmt: skip
            result = fit_em(self, data, max_iter=self.max_iter, warm_start=True, **run)
            self.history_ = np.concatenate([search.history, result.history])
            self.histories_ = list(search.histories)
            self.histories_[search.best_init] = self.history_
        self.converged_ = result.converged
        self.n_iter_ = len(self.history_)
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

    def expected_durations(self) -> np.ndarray:
        """``1 / (1 - p_kk)`` per regime (per row of the fitted data with TVTP)."""
        return self.smooth().expected_durations

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
