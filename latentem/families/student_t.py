"""Multivariate Student-t emissions: robust mixtures and t-emission HMMs.

Each component is a t distribution with location ``means_[k]``, scale matrix
``scales_[k]`` (full, or diagonal) and degrees of freedom ``dof_[k]``. EM
treats the t as a normal whose precision is scaled by a latent
``u ~ Gamma(nu / 2, nu / 2)`` per row (Liu and Rubin 1995; Peel and McLachlan
2000): the E-step weights each row by ``E[u | x]``, small for outlying rows,
so outliers pull the location and scale far less than under a Gaussian.

The degrees of freedom are fixed (``fit_dof=False``) or estimated per
component by the conditional maximisation of Liu and Rubin and of Peel and
McLachlan (ECM): a 1-D root of

    log(nu / 2) - psi(nu / 2) + mean_w(E[log u] - E[u] + 1) = 0,

kept within ``dof_bounds``. The expected complete-data log-likelihood splits
into a part in (location, scale) and a part in ``nu``, and the root maximises
the latter exactly (it is concave in ``nu``), so every iteration is an exact
M-step and EM never lowers the likelihood. (Liu and Rubin's ECME variant
instead maximises the observed-data likelihood in ``nu``, which needs
another pass over the data; the statistics here are one pass, additive over
rows, so that every backend can run the E-step.)

NaN cells are marginalised exactly: a row's density is that of its observed
part (a t with the same ``nu`` and ``p`` observed dimensions), and the
statistics fill the gaps with their conditional mean and add their
conditional covariance. Rows are grouped by missingness pattern so that each
pattern is factorised once per component (see
:mod:`latentem.kernels.student_t`); rows entirely missing carry no evidence.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from latentem._validation import check_array
from latentem.families.base import EmissionFamily, register_family
from latentem.families.gaussian_gaps import _serial_if_small, missing_plan
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.kernels.student_t import t_diag_logprob, t_diag_stats, t_full_logprob, t_full_stats

__all__ = ["StudentTFamily", "t_log_constant"]

_COVARIANCE_TYPES = ("full", "diag")
#: Above this half-degrees-of-freedom the log-gamma ratio uses Stirling's series
#: (accurate to 1e-14 there): the difference of two huge log-gammas would lose digits.
_STIRLING_FROM = 100.0


# scipy.special is imported on first use: importing it costs more than a small fit,
# and latentem's other families never need it.
def digamma(x):
    from scipy.special import digamma as psi

    return psi(x)


def gammaln(x):
    from scipy.special import gammaln as lgamma

    return lgamma(x)


def t_log_constant(dof: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``lgamma((nu + p) / 2) - lgamma(nu / 2) - p / 2 * log(nu pi)``, also for huge ``nu``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import multivariate_t
    >>> c = t_log_constant(np.array(3.0), np.array(2))
    >>> bool(np.isclose(c, multivariate_t(np.zeros(2), np.eye(2), df=3).logpdf([0, 0])))
    True
    >>> float(np.round(t_log_constant(np.array(1e12), np.array(1)), 6))  # the normal's
    -0.918939
    """
    nu = np.asarray(dof, dtype=np.float64)
    a = 0.5 * np.asarray(p, dtype=np.float64)
    x = np.broadcast_to(0.5 * nu, np.broadcast_shapes(nu.shape, a.shape))
    a = np.broadcast_to(a, x.shape)
    big = x >= _STIRLING_FROM
    xs = np.where(big, x, _STIRLING_FROM)
    stirling = (
        (xs + a - 0.5) * np.log1p(a / xs)
        - a
        + (1.0 / (xs + a) - 1.0 / xs) / 12.0
        - (1.0 / (xs + a) ** 3 - 1.0 / xs**3) / 360.0
    )  # lgamma(x + a) - lgamma(x) - a log x
    xd = np.where(big, 1.0, x)
    direct = gammaln(xd + a) - gammaln(xd) - a * np.log(xd)
    return np.where(big, stirling, direct) - a * math.log(2.0 * math.pi)


def _dof_tables(dof: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """``lconst[k, p]`` (see :func:`t_log_constant`) and ``dig[k, p] = psi((nu + p) / 2) -
    log((nu + p) / 2)`` for p = 0 .. n_features."""
    p = np.arange(n_features + 1)
    h = 0.5 * (dof[:, None] + p[None, :])
    lconst = np.ascontiguousarray(t_log_constant(dof[:, None], p[None, :]))
    return lconst, np.ascontiguousarray(digamma(h) - np.log(h))


def _dof_root(c: float, lo: float, hi: float) -> float:
    """The ``nu`` in [lo, hi] that maximises ``n [nu/2 log(nu/2) - lgamma(nu/2)] + nu/2 n c``:
    the root of ``log(nu/2) - psi(nu/2) + c`` (decreasing in ``nu``), or the bound it
    lies beyond."""

    def g(nu: float) -> float:
        return math.log(0.5 * nu) - float(digamma(0.5 * nu)) + c

    if g(hi) >= 0.0:
        return hi
    if g(lo) <= 0.0:
        return lo
    from scipy.optimize import brentq  # scipy.optimize costs half a second to import

    return float(brentq(g, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=200))


def _mask_key(nan: np.ndarray) -> bytes:
    h = hashlib.blake2b(np.packbits(nan, axis=None).tobytes(), digest_size=16)
    h.update(repr(nan.shape).encode())
    return h.digest()


@dataclass
class TPlan:
    """Rows grouped by missingness pattern for the full-scale kernels.

    ``order[starts[g]:starts[g + 1]]`` are the rows of group g; ``idx[g]``
    lists its missing columns first, then its observed ones; ``nmis[g]``
    counts the missing ones. Complete rows form group 0 (when there are any);
    rows entirely missing are in no group.
    """

    order: np.ndarray
    starts: np.ndarray
    idx: np.ndarray
    nmis: np.ndarray
    key: bytes | None = None


def t_plan(X: np.ndarray) -> TPlan:
    """Group the rows of X (NaN for gaps) by missingness pattern.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, np.nan], [4.0, np.nan]])
    >>> plan = t_plan(X)
    >>> plan.order.tolist(), plan.starts.tolist(), plan.nmis.tolist()
    ([1, 0, 3], [0, 1, 3], [0, 1])
    """
    n, D = X.shape
    mp = missing_plan(X)
    by_pattern = mp.partial[np.argsort(mp.pattern, kind="stable")]
    complete = mp.complete
    order = np.concatenate([complete, by_pattern]).astype(np.int64)
    counts = mp.counts.astype(np.int64)
    idx = mp.pat_idx.astype(np.int64)
    nmis = mp.pat_nmis.astype(np.int64)
    if complete.size:
        counts = np.concatenate([[complete.size], counts])
        idx = np.concatenate([np.arange(D, dtype=np.int64)[None], idx])
        nmis = np.concatenate([[0], nmis])
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return TPlan(
        np.ascontiguousarray(order),
        starts,
        np.ascontiguousarray(idx.reshape(-1, D)),
        np.ascontiguousarray(nmis),
    )


@register_family(fitted=("n_features", "means_", "scales_", "dof_"), cli="student-t")
class StudentTFamily(EmissionFamily):
    """K multivariate Student-t components: letters ``m`` (locations), ``c`` (scales),
    ``d`` (degrees of freedom).

    Statistics are the tuple ``(nk, su, S, Q, dstat)`` of
    :mod:`latentem.kernels.student_t` (first and second moments about the
    current locations, weighted by the latent scales); they are additive over
    rows and must reach :meth:`m_step` before the parameters change.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {"full", "diag"}
        Full scale matrices, or diagonal ones (independent coordinates given
        the component's latent scale, which is shared by all coordinates).
    dof : float or array (K,)
        Degrees of freedom: the starting value when they are estimated, the
        value when ``fit_dof=False``. Large values approach the Gaussian.
    fit_dof : bool
        Estimate the degrees of freedom per component (see the module
        docstring); they are also fixed when ``d`` is not among the trained
        letters (an HMM's ``params``).
    dof_bounds : (float, float)
        Range of estimated degrees of freedom. At the upper end the
        components are practically Gaussian.
    scale_prior : float
        Added to the diagonal of every scale matrix's scatter before it is
        divided by the component's weight (hmmlearn's ``covars_prior``): the
        M-step is the MAP estimate under the prior ``-scale_prior / 2 * tr(S^-1)``
        per component (see :meth:`log_prior`), so a component with few rows
        keeps a positive definite scale.
    n_features : int or None
        Dimension; taken from the data (or from ``means_``) when None.

    Attributes
    ----------
    means_ : ndarray (K, D)
        Locations (the means when ``dof_ > 1``).
    scales_ : ndarray (K, D, D) for "full", (K, D) for "diag"
        Scale matrices; the covariance is ``dof / (dof - 2) * scale`` when
        ``dof_ > 2``.
    dof_ : ndarray (K,)
        Degrees of freedom.

    Examples
    --------
    A robust two-component mixture through the model graph; 5% of the rows
    are gross outliers:

    >>> import numpy as np
    >>> from latentem import Categorical, Family, ModelGraph
    >>> from latentem.families.student_t import StudentTFamily
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (500, 2)), rng.normal(3, 1, (500, 2))])
    >>> X[rng.choice(1000, 50, replace=False)] = rng.uniform(-40, 40, (50, 2))
    >>> g = ModelGraph()
    >>> g.add_node("z", Categorical(2))
    >>> g.add_node("x", Family(lambda k: StudentTFamily(k), name="StudentT"))
    >>> g.add_edge("z", "x")
    >>> # restarts: k-means++ may seed a component among the outliers
    >>> g = g.fit(X, random_state=0, n_init=3, max_iter=300, accelerate="squarem")
    >>> fitted = g.parameters("x")
    >>> np.round(np.sort(fitted["means_"][:, 0]))
    array([-3.,  3.])
    >>> bool(fitted["dof_"].min() < 5)  # the outliers went to a heavy tail
    True
    """

    param_letters = "mcd"
    #: Parameters in the flat vector used by SQUAREM (see latentem._vector).
    vector_attributes = ("means_", "scales_", "dof_")

    def __init__(
        self,
        n_components: int,
        covariance_type: str = "full",
        dof: Any = 10.0,
        fit_dof: bool = True,
        dof_bounds: tuple[float, float] = (0.5, 1000.0),
        scale_prior: float = 1e-6,
        n_features: int | None = None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.dof = dof
        self.fit_dof = fit_dof
        self.dof_bounds = dof_bounds
        self.scale_prior = scale_prior
        self.n_features = n_features
        self.means_: np.ndarray | None = None
        self.scales_: np.ndarray | None = None
        self.dof_: np.ndarray | None = None

    # ------------------------------------------------------------------ checks
    def _check_settings(self) -> None:
        if self.covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {_COVARIANCE_TYPES} for the Student-t family; "
                f"got {self.covariance_type!r}."
            )
        try:
            lo, hi = (float(v) for v in self.dof_bounds)
        except (TypeError, ValueError):
            raise ValueError(
                f"dof_bounds must be a pair (low, high); got {self.dof_bounds!r}."
            ) from None
        if not (0.0 < lo < hi < math.inf):
            raise ValueError(f"dof_bounds must satisfy 0 < low < high < inf; got ({lo}, {hi}).")
        if not (np.isfinite(self.scale_prior) and self.scale_prior >= 0):
            raise ValueError(f"scale_prior must be >= 0; got {self.scale_prior!r}.")

    def validate_data(self, X: Any) -> np.ndarray:
        """X as a float64 (n, D) array; NaN marks a gap. Raises ValueError naming the problem."""
        # float64 only: one compiled specialisation of each kernel
        X = np.ascontiguousarray(check_array(X, allow_nan=True), dtype=np.float64)
        if self.n_features is not None and X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} features but the model has {self.n_features}; pass data "
                "with the same columns as in fit."
            )
        return X

    def check_params(self) -> None:
        self._check_settings()
        if self.means_ is None or self.scales_ is None or self.dof_ is None:
            raise ValueError(
                "means_, scales_ and dof_ must be set before use: fit the model, include "
                "'m', 'c' and 'd' in init_params, or set them by hand."
            )
        K = self.n_components
        means = np.asarray(self.means_, dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != K:
            raise ValueError(
                f"means_ must have shape (n_components={K}, n_features); got {means.shape}."
            )
        if self.n_features is None:
            self.n_features = means.shape[1]
        D = self.n_features
        if means.shape[1] != D:
            raise ValueError(f"means_ has {means.shape[1]} features but n_features is {D}.")
        shape = (K, D, D) if self.covariance_type == "full" else (K, D)
        scales = np.asarray(self.scales_, dtype=np.float64)
        if scales.shape != shape:
            raise ValueError(
                f"scales_ for covariance_type={self.covariance_type!r} must have shape {shape}; "
                f"got {scales.shape}."
            )
        dof = np.broadcast_to(np.asarray(self.dof_, dtype=np.float64), (K,)).copy()
        if not (np.isfinite(means).all() and np.isfinite(scales).all()):
            raise ValueError("means_ and scales_ must be finite.")
        if not (np.isfinite(dof).all() and (dof > 0).all()):
            raise ValueError(f"dof_ must be positive and finite; got {dof}.")
        lo, hi = (float(v) for v in self.dof_bounds)
        if self.fit_dof and ((dof < lo) | (dof > hi)).any():
            # the M-step keeps estimates within the bounds; from outside them its
            # clipped root could lower the likelihood
            raise ValueError(
                f"dof_ {dof} lies outside dof_bounds ({lo:g}, {hi:g}); widen the bounds or "
                "pass fit_dof=False to keep the degrees of freedom fixed."
            )
        if self.covariance_type == "diag":
            if not (scales > 0).all():
                raise ValueError("diagonal scales_ must be positive.")
        else:
            if not np.allclose(scales, scales.transpose(0, 2, 1)):
                raise ValueError("scales_ must be symmetric.")
            self._factors(scales)  # raises if not positive definite
        self.means_, self.scales_, self.dof_ = means, scales, dof

    def _factors(self, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Linv, P, log det S)`` of full scale matrices ``S = L L^T``."""
        try:
            L = np.linalg.cholesky(scales)
        except np.linalg.LinAlgError:
            raise ValueError(
                "a component's scale matrix is not positive definite; increase scale_prior "
                f"(now {self.scale_prior:g}), use fewer components, or remove duplicated rows."
            ) from None
        Linv = np.ascontiguousarray(np.linalg.inv(L))
        Linv = np.ascontiguousarray(np.tril(Linv))
        P = Linv.transpose(0, 2, 1) @ Linv
        P = np.ascontiguousarray(0.5 * (P + P.transpose(0, 2, 1)))
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        return Linv, P, logdet

    # ------------------------------------------------------------------ gaps
    def plan(self, X: np.ndarray) -> TPlan | None:
        """Rows of X grouped by missingness pattern (full scales; cached by the NaN mask),
        or None for diagonal scales, which need no grouping."""
        if self.covariance_type == "diag":
            return None
        nan = np.isnan(X)
        if not nan.any():
            n = X.shape[0]
            return TPlan(
                np.arange(n, dtype=np.int64),
                np.array([0, n], dtype=np.int64),
                np.arange(X.shape[1], dtype=np.int64)[None],
                np.zeros(1, dtype=np.int64),
            )
        key = _mask_key(nan)
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached.key == key:
            return cached
        plan = t_plan(X)
        plan.key = key
        self._plan_cache = plan
        return plan

    # ------------------------------------------------------------------ family jobs
    def init_params(self, X: np.ndarray, rng: np.random.Generator, letters: str) -> None:
        self._check_settings()
        self.n_features = D = X.shape[1]
        K = self.n_components
        if "d" in letters:
            self.dof_ = np.broadcast_to(np.asarray(self.dof, dtype=np.float64), (K,)).copy()
        if "m" not in letters and "c" not in letters:
            return
        observed = ~np.isnan(X)
        counts = observed.sum(axis=0)
        col_mean = np.where(observed, X, 0.0).sum(axis=0) / np.maximum(counts, 1)
        if (counts == 0).any():
            raise ValueError(
                f"column {int(np.flatnonzero(counts == 0)[0])} of X is entirely missing; drop it."
            )
        filled = np.ascontiguousarray(np.where(np.isnan(X), col_mean, X), dtype=np.float64)
        if "m" in letters:
            if len(filled) < K:
                raise ValueError(
                    f"n_components={K} components need at least {K} rows to initialise their "
                    f"locations; X has {len(filled)}."
                )
            uniforms = rng.random((max(K - 1, 0), 2 + int(np.log(K))))
            first = kmeans_plusplus(filled, K, int(rng.integers(len(filled))), uniforms)
            self.means_, _, _ = lloyd(filled, np.ascontiguousarray(filled[first]), 100)
        if "c" in letters:
            cv = np.atleast_2d(np.cov(filled.T)) if len(filled) > 1 else np.eye(D)
            cv = cv + (1e-6 * max(float(np.trace(cv)) / D, 1.0) + self.scale_prior) * np.eye(D)
            if self.covariance_type == "full":
                self.scales_ = np.tile(cv, (K, 1, 1))
            else:
                self.scales_ = np.tile(np.diag(cv), (K, 1))

    def _dof_tables(self) -> tuple[np.ndarray, np.ndarray]:
        return _dof_tables(np.asarray(self.dof_, dtype=np.float64), self.means_.shape[1])

    def _check_width(self, X: np.ndarray) -> None:
        if X.shape[1] != self.means_.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the model has {self.means_.shape[1]}."
            )

    @_serial_if_small  # small tables: one thread (see latentem.families.gaussian_gaps)
    def log_prob(self, X: np.ndarray, plan: TPlan | None = None) -> np.ndarray:
        self._check_width(X)
        lconst, _ = self._dof_tables()
        dof = np.asarray(self.dof_, dtype=np.float64)
        means = np.ascontiguousarray(self.means_)
        if self.covariance_type == "diag":
            return t_diag_logprob(X, means, np.ascontiguousarray(self.scales_), dof, lconst)
        plan = self.plan(X) if plan is None else plan
        Linv, P, logdet = self._factors(self.scales_)
        return t_full_logprob(
            X, plan.order, plan.starts, plan.idx, plan.nmis, means, Linv, P, logdet, dof, lconst
        )

    @_serial_if_small
    def accumulate(self, X: np.ndarray, weights: np.ndarray, plan: TPlan | None = None) -> tuple:
        self._check_width(X)
        _, dig = self._dof_tables()
        dof = np.asarray(self.dof_, dtype=np.float64)
        means = np.ascontiguousarray(self.means_)
        W = np.ascontiguousarray(weights, dtype=np.float64)
        if self.covariance_type == "diag":
            return t_diag_stats(X, means, np.ascontiguousarray(self.scales_), dof, dig, W)
        plan = self.plan(X) if plan is None else plan
        Linv, P, _ = self._factors(self.scales_)
        return t_full_stats(
            X, plan.order, plan.starts, plan.idx, plan.nmis, means, Linv, P, dof, dig, W
        )

    def m_step(self, stats: tuple, letters: str) -> None:
        nk, su, S, Q, dstat = stats
        has = nk > 0
        shift = np.zeros_like(self.means_)
        if "m" in letters:
            shift = np.where(has[:, None], S / np.where(has, su, 1.0)[:, None], 0.0)
        if "c" in letters:
            # the scatter about the new locations: Q - su a a^T with a = S / su, when they move
            if self.covariance_type == "full":
                centred = Q - su[:, None, None] * shift[:, :, None] * shift[:, None, :]
                centred = centred + self.scale_prior * np.eye(self.means_.shape[1])
                new = centred / np.where(has, nk, 1.0)[:, None, None]
                new = 0.5 * (new + new.transpose(0, 2, 1))
                scales = np.where(has[:, None, None], new, self.scales_)
            else:
                centred = Q - su[:, None] * shift**2 + self.scale_prior
                scales = np.where(
                    has[:, None], centred / np.where(has, nk, 1.0)[:, None], self.scales_
                )
            self.scales_ = scales
        self.means_ = self.means_ + shift
        if "d" in letters and self.fit_dof:
            lo, hi = (float(v) for v in self.dof_bounds)
            dof = np.array(self.dof_, dtype=np.float64)
            for k in np.flatnonzero(has):
                dof[k] = _dof_root(min(float(dstat[k] / nk[k]), 0.0), lo, hi)
            self.dof_ = dof

    def log_prior(self) -> float:
        """``-scale_prior / 2 * sum_k tr(S_k^-1)``, the prior of the MAP M-step (0 without one)."""
        if not self.scale_prior:
            return 0.0
        if self.covariance_type == "diag":
            return float(-0.5 * self.scale_prior * np.sum(1.0 / self.scales_))
        inv = np.linalg.inv(self.scales_)
        return float(-0.5 * self.scale_prior * np.trace(inv, axis1=1, axis2=2).sum())

    def n_parameters(self) -> int:
        K, D = self.means_.shape
        scale = K * D * (D + 1) // 2 if self.covariance_type == "full" else K * D
        return K * D + scale + (K if self.fit_dof else 0)

    def sample(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        states = np.asarray(states, dtype=np.int64)
        D = self.means_.shape[1]
        z = rng.standard_normal((len(states), D))
        if self.covariance_type == "full":
            z = np.einsum("nij,nj->ni", np.linalg.cholesky(self.scales_)[states], z)
        else:
            z = z * np.sqrt(self.scales_[states])
        nu = np.asarray(self.dof_)[states]
        u = rng.gamma(0.5 * nu, 2.0 / nu)  # Gamma(nu/2, rate nu/2)
        return self.means_[states] + z / np.sqrt(u)[:, None]

    def fill(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """X with each NaN replaced by its conditional mean given the row's observed
        entries (the same as under a normal with the same location and scale), averaged
        over the components with the row weights (n, K). A new array; X is not changed.
        Rows entirely missing get the weighted locations."""
        X = np.asarray(X, dtype=np.float64)
        out = X.copy()
        W = np.asarray(weights, dtype=np.float64)
        nan = np.isnan(X)
        if not nan.any():
            return out
        if self.covariance_type == "diag":
            expected = W @ self.means_
            out[nan] = expected[nan]
            return out
        mp = missing_plan(X)
        for p in range(mp.n_patterns):
            rows = mp.partial[mp.pattern == p]
            mis = mp.pat_idx[p, : mp.pat_nmis[p]]
            obs = mp.pat_idx[p, mp.pat_nmis[p] :]
            total = np.zeros((rows.size, mis.size))
            for k in range(self.n_components):
                Sk, mu = self.scales_[k], self.means_[k]
                coef = np.linalg.solve(Sk[np.ix_(obs, obs)], Sk[np.ix_(obs, mis)])
                cond = mu[mis] + (X[np.ix_(rows, obs)] - mu[obs]) @ coef
                total += W[rows, k : k + 1] * cond
            out[np.ix_(rows, mis)] = total
        if mp.empty.size:
            out[mp.empty] = W[mp.empty] @ self.means_
        return out
