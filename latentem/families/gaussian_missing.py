"""The Gaussian family on data with gaps: NaN entries are marginalised or filled in expectation.

Complete rows go through the fast fused kernels of
:class:`~latentem.families.gaussian.GaussianFamily`; rows with some NaN go
through :mod:`latentem.kernels.gaussian_missing` (marginal log-densities;
conditional means and covariances in the statistics); rows that are entirely
NaN carry no evidence (log-density 0) and add nothing to the statistics.

Rows with gaps are grouped by missingness pattern once per data set
(:func:`missing_plan`, cached on the family by the NaN mask). The per-pattern
factorisations are then computed either once per pattern (grouped path) or
once per row (per-row path); :attr:`MissingGaussianFamily.grouped` chooses,
by default automatically, and both give bit-identical results.
"""

from __future__ import annotations

import functools
import hashlib
import weakref
from dataclasses import dataclass

import numpy as np

from latentem._validation import all_finite
from latentem.families.gaussian import GaussianFamily, _rows_sum_to_one
from latentem.kernels._dispatch import serial_when_small
from latentem.kernels.gaussian_missing import (
    conditional_draw,
    conditional_fill,
    missing_estep,
    missing_logprob,
    pattern_factors,
)
from latentem.registry import register

__all__ = [
    "MissingGaussianFamily",
    "MissingPlan",
    "bayesian_ridge_regressions",
    "missing_plan",
    "row_missingness",
]

#: The grouped path is chosen when rows share patterns at least this often on
#: average and its tables fit in GROUPED_MAX_BYTES.
GROUPED_MIN_ROWS_PER_PATTERN = 2.0
GROUPED_MAX_BYTES = 256 * 2**20

#: Below this much work per call (rows x K x D^2) the kernels run on one
#: thread: starting a parallel region costs more than it saves on small
#: tables, and far more on a busy machine, where every region waits for a
#: descheduled thread. Measured on 2 cores with one other busy process: one
#: E-step of 20,000 x 20 rows took 20 ms on one thread and about 200 ms on two
#: (the same 200 ms at 5,000 and at 100,000 rows), while on a quiet machine two
#: threads save at most half of the 20 ms. Above this (about 50 ms of work on
#: one thread) the threads pay.
SERIAL_BELOW = 20_000_000


def _serial_if_small(method):
    """Run ``method(self, X, ...)`` on one numba thread when X is small."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        work = X.shape[0] * self.n_components * self.n_features**2
        with serial_when_small(work, X.shape[0], SERIAL_BELOW):
            return method(self, X, *args, **kwargs)

    return wrapper


def row_missingness(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of complete rows, partly observed rows and entirely missing rows."""
    nan = np.isnan(X)
    any_nan = nan.any(axis=1)
    all_nan = nan.all(axis=1)
    return ~any_nan, any_nan & ~all_nan, all_nan


@dataclass
class MissingPlan:
    """Rows of a data set sorted out by missingness.

    Attributes
    ----------
    complete, partial, empty : ndarray of int64
        Indices of complete rows, rows with some gaps, and all-NaN rows.
    pattern : ndarray of int64
        Pattern number of each row of ``partial`` (all-NaN rows have their
        own pattern in ``pattern_all``).
    pat_idx : ndarray (n_patterns, D) of int64
        Missing columns first, then observed ones, each in column order.
    pat_nmis : ndarray (n_patterns,) of int64
        Number of missing columns of each pattern.
    counts : ndarray (n_patterns,) of int64
        Rows with each pattern.
    """

    complete: np.ndarray
    partial: np.ndarray
    empty: np.ndarray
    pattern: np.ndarray
    pat_idx: np.ndarray
    pat_nmis: np.ndarray
    counts: np.ndarray
    key: bytes

    @property
    def n_patterns(self) -> int:
        return int(self.pat_nmis.shape[0])


def _mask_key(nan: np.ndarray) -> bytes:
    h = hashlib.blake2b(np.packbits(nan, axis=None).tobytes(), digest_size=16)
    h.update(repr(nan.shape).encode())
    return h.digest()


def missing_plan(X: np.ndarray) -> MissingPlan:
    """Group the rows of X (with NaN for gaps) by missingness pattern.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.gaussian_missing import missing_plan
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan], [np.nan, 5.0]])
    >>> plan = missing_plan(X)
    >>> plan.partial.tolist(), plan.pattern.tolist(), plan.counts.tolist()
    ([0, 2, 3], [1, 1, 0], [1, 2])
    >>> plan.pat_idx.tolist(), plan.pat_nmis.tolist()  # missing columns first
    ([[0, 1], [1, 0]], [1, 1])
    """
    return _plan_from_mask(np.isnan(X))


def _plan_from_mask(nan: np.ndarray, key: bytes | None = None) -> MissingPlan:
    """:func:`missing_plan` from the NaN mask (and its :func:`_mask_key`, if known)."""
    D = nan.shape[1]
    key = _mask_key(nan) if key is None else key
    if not nan.any():  # complete data, the common case: one flat test, nothing to group
        return MissingPlan(
            complete=np.arange(nan.shape[0], dtype=np.int64),
            partial=np.zeros(0, dtype=np.int64),
            empty=np.zeros(0, dtype=np.int64),
            pattern=np.zeros(0, dtype=np.int64),
            pat_idx=np.zeros((0, D), dtype=np.int64),
            pat_nmis=np.zeros(0, dtype=np.int64),
            counts=np.zeros(0, dtype=np.int64),
            key=key,
        )
    any_nan = nan.any(axis=1)
    all_nan = nan.all(axis=1)
    partial = np.flatnonzero(any_nan & ~all_nan)
    if partial.size:
        m = nan[partial]
        if D <= 63:  # one integer per row: much faster to sort than byte strings
            keys = m.astype(np.int64) @ (np.int64(1) << np.arange(D, dtype=np.int64))
        else:
            packed = np.ascontiguousarray(np.packbits(m, axis=1))
            keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
        _, first, inverse, counts = np.unique(
            keys, return_index=True, return_inverse=True, return_counts=True
        )
        pm = m[first]
        pat_idx = np.ascontiguousarray(np.argsort(~pm, axis=1, kind="stable"), dtype=np.int64)
        pat_nmis = pm.sum(axis=1).astype(np.int64)
        pattern = inverse.reshape(-1).astype(np.int64)
        counts = counts.astype(np.int64)
    else:
        pat_idx = np.zeros((0, D), dtype=np.int64)
        pat_nmis = np.zeros(0, dtype=np.int64)
        pattern = np.zeros(0, dtype=np.int64)
        counts = np.zeros(0, dtype=np.int64)
    return MissingPlan(
        complete=np.flatnonzero(~any_nan),
        partial=partial,
        empty=np.flatnonzero(all_nan),
        pattern=pattern,
        pat_idx=pat_idx,
        pat_nmis=pat_nmis,
        counts=counts,
        key=key,
    )


@register(kind="family", fitted=("means_", "covariances_", "grouped"), finish="_finish_load")
class MissingGaussianFamily(GaussianFamily):
    """:class:`GaussianFamily` that accepts NaN for missing entries.

    Attributes
    ----------
    grouped : None or bool
        ``None`` (default) chooses the grouped path when rows share
        missingness patterns (at least 2 rows per pattern on average) and
        its tables fit in 256 MiB, else the per-row path; ``True`` /
        ``False`` force one. The results are identical.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.gaussian_missing import MissingGaussianFamily
    >>> fam = MissingGaussianFamily(1, 2, "full")
    >>> fam.set_parameters(np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]]))
    >>> X = np.array([[1.0, np.nan]])
    >>> float(np.round(fam.log_prob(X)[0, 0], 4))  # the marginal N(1; 0, 1)
    -1.4189
    >>> fam.fill(X, np.ones((1, 1)))  # E[x2 | x1 = 1] = 0.8
    array([[1. , 0.8]])
    """

    grouped: bool | None = None
    #: Add the conditional covariance of the gaps to the second moments (the
    #: correct E-step). False is only for demonstrating the downward bias of
    #: variances without it.
    conditional_covariance: bool = True

    # ------------------------------------------------------------------ cached pieces
    def set_parameters(
        self, means: np.ndarray, covariances: np.ndarray, *, copy: bool = True
    ) -> None:
        super().set_parameters(means, covariances, copy=copy)
        self._missing_cache = None
        self._tables_cache = None

    def full_covariances(self) -> np.ndarray:
        """Every component's (D, D) covariance matrix, shape (K, D, D)."""
        K, D = self.n_components, self.n_features
        C = self.covariances_
        if self.covariance_type == "full":
            return np.ascontiguousarray(C)
        if self.covariance_type == "tied":
            return np.ascontiguousarray(np.broadcast_to(C, (K, D, D)))
        diag = C if self.covariance_type == "diag" else np.repeat(C[:, None], D, axis=1)
        out = np.zeros((K, D, D))
        out[:, np.arange(D), np.arange(D)] = diag
        return out

    def _precision_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(U, P, log det S)``: upper ``U`` with ``P = U U^T = S^-1``, for every component."""
        return self._factors()[:3]

    def _factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_precision_parts` and ``U^T``, contiguous (the kernels read its rows)."""
        cache = getattr(self, "_missing_cache", None)
        if cache is not None:
            return cache
        C = self.full_covariances()
        try:
            L = np.linalg.cholesky(C)
        except np.linalg.LinAlgError:
            raise ValueError(
                "a component covariance is not numerically positive definite; increase "
                f"reg_covar (now {self.reg_covar:g}) or use fewer components."
            ) from None
        Linv = np.ascontiguousarray(np.tril(np.linalg.inv(L)))
        U = np.ascontiguousarray(Linv.transpose(0, 2, 1))
        P = np.ascontiguousarray(U @ Linv)
        P = 0.5 * (P + P.transpose(0, 2, 1))
        logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
        self._missing_cache = (U, np.ascontiguousarray(P), logdet, Linv)
        return self._missing_cache

    def _note_complete(self, X: np.ndarray, complete: bool) -> None:
        """Remember (weakly) whether just-validated X has no NaN, so that :meth:`plan`,
        which follows validation in every fit, score and decode, need not read X again."""
        self._complete_X = weakref.ref(X) if complete else None

    def plan(self, X: np.ndarray) -> MissingPlan:
        """The :class:`MissingPlan` of X, cached by its NaN mask."""
        noted = self.__dict__.get("_complete_X")
        # X is checked: only NaN can be non-finite
        complete = (noted is not None and noted() is X) or all_finite(X)
        nan = None if complete else np.isnan(X)
        if complete or not nan.any():  # complete data: no hashing, one plan per shape
            cached = getattr(self, "_complete_plan", None)
            if cached is None or cached.complete.size != X.shape[0]:
                mask = np.zeros(X.shape, dtype=bool) if nan is None else nan
                cached = _plan_from_mask(mask, b"complete" + repr(X.shape).encode())
                self._complete_plan = cached
            return cached
        key = _mask_key(nan)
        cached = getattr(self, "_plan_cache", None)
        if cached is not None and cached.key == key:
            return cached
        plan = _plan_from_mask(nan, key)
        self._plan_cache = plan
        return plan

    def use_grouped(self, plan: MissingPlan) -> bool:
        """Whether the grouped path runs for this plan (see :attr:`grouped`)."""
        if self.grouped is not None:
            return bool(self.grouped)
        n_pat = plan.n_patterns
        if n_pat == 0:
            return False
        size = 2 * 8 * n_pat * self.n_components * self.n_features**2
        return (
            plan.partial.size >= GROUPED_MIN_ROWS_PER_PATTERN * n_pat and size <= GROUPED_MAX_BYTES
        )

    def _tables(self, plan: MissingPlan) -> tuple:
        K, D = self.n_components, self.n_features
        # (the NumPy kernels for small inputs factorise each pattern themselves)
        if not self.use_grouped(plan) or missing_estep.runs_numpy(plan.partial.size):
            z = np.zeros((0, K, D, D))
            return (z, z, np.zeros((0, K)))
        cached = getattr(self, "_tables_cache", None)
        if cached is not None and cached[0] == plan.key:
            return cached[1]
        _, P, _ = self._precision_parts()
        tabs = pattern_factors(P, plan.pat_idx, plan.pat_nmis)
        self._tables_cache = (plan.key, tabs)
        return tabs

    def _args(self, X, plan):
        _, P, logdet, Lt = self._factors()
        return (X, plan.partial, plan.pattern, plan.pat_idx, plan.pat_nmis), Lt, P, logdet

    # ------------------------------------------------------------------ family jobs
    @_serial_if_small
    def log_prob(self, X: np.ndarray, plan: MissingPlan | None = None) -> np.ndarray:
        plan = self.plan(X) if plan is None else plan
        if plan.complete.size == X.shape[0]:
            return super().log_prob(X)
        out = np.zeros((X.shape[0], self.n_components))
        if plan.complete.size:
            out[plan.complete] = super().log_prob(np.ascontiguousarray(X[plan.complete]))
        if plan.partial.size:
            head, Lt, P, logdet = self._args(X, plan)
            out[plan.partial] = missing_logprob(
                *head, self.means_, Lt, P, logdet, self._tables(plan)
            )
        return out

    def _missing_stats(self, X, plan, log_w, W, use_logw):
        head, Lt, P, logdet = self._args(X, plan)
        return missing_estep(
            *head,
            self.means_,
            Lt,
            P,
            logdet,
            self._tables(plan),
            log_w,
            W,
            use_logw,
            self._shift(),
            self.smode,
            bool(self.conditional_covariance),
        )

    def _zero_stats(self) -> tuple:
        K, D = self.n_components, self.n_features
        qshape = {0: (K, D, D), 1: (1, D, D), 2: (K, 1, D)}[self.smode]
        return np.zeros(K), np.zeros((K, D)), np.zeros(qshape)

    @_serial_if_small
    def accumulate(
        self, X: np.ndarray, weights: np.ndarray, plan: MissingPlan | None = None
    ) -> tuple:
        plan = self.plan(X) if plan is None else plan
        if plan.complete.size == X.shape[0]:
            return super().accumulate(X, weights)
        W = np.ascontiguousarray(weights, dtype=np.float64)
        if self.smode == 1 and not _rows_sum_to_one(W[plan.partial]):
            raise ValueError(
                "row weights (sample_weight) with covariance_type='tied' need complete rows; "
                "use another covariance type, or fill or drop the rows with gaps."
            )
        nk, S, Q = self._zero_stats()
        if plan.complete.size:
            nk, S, Q = super().accumulate(
                np.ascontiguousarray(X[plan.complete]), np.ascontiguousarray(W[plan.complete])
            )
        if plan.partial.size:
            _, nk2, S2, Q2 = self._missing_stats(
                X, plan, np.zeros(self.n_components), np.ascontiguousarray(W[plan.partial]), False
            )
            nk, S, Q = nk + nk2, S + S2, Q + Q2
        return nk, S, Q

    @_serial_if_small
    def mixture_e_step(
        self,
        X: np.ndarray,
        log_weights: np.ndarray,
        plan: MissingPlan | None = None,
        X_complete: np.ndarray | None = None,
    ) -> tuple[tuple, float]:
        """Mixture E-step with gaps: ``((nk, S, Q), observed-data log-likelihood)``.

        Complete rows go through the fused kernel (pass ``X_complete``, the
        contiguous ``X[plan.complete]``, to avoid copying it every call);
        partly observed rows through the missing-data kernel; all-NaN rows
        add nothing.
        """
        plan = self.plan(X) if plan is None else plan
        log_w = np.ascontiguousarray(log_weights, dtype=np.float64)
        if plan.complete.size == X.shape[0]:
            return self.fused_e_step(X, log_w)
        ll = 0.0
        nk, S, Q = self._zero_stats()
        if plan.complete.size:
            Xc = X_complete if X_complete is not None else np.ascontiguousarray(X[plan.complete])
            (nk, S, Q), ll = self.fused_e_step(Xc, log_w)
        if plan.partial.size:
            ll2, nk2, S2, Q2 = self._missing_stats(
                X, plan, log_w, np.zeros((0, self.n_components)), True
            )
            nk, S, Q, ll = nk + nk2, S + S2, Q + Q2, ll + ll2
        return (nk, S, Q), float(ll)

    def mixture_stats(
        self, X: np.ndarray, log_weights: np.ndarray, plan: MissingPlan | None = None
    ) -> tuple[np.ndarray, tuple, float]:
        """Mixture E-step hook with gaps (see :meth:`mixture_e_step`)."""
        (nk, S, Q), ll = self.mixture_e_step(X, log_weights, plan)
        return nk, (nk, S, Q), ll

    @_serial_if_small
    def fill(
        self,
        X: np.ndarray,
        weights: np.ndarray,
        plan: MissingPlan | None = None,
        coef: np.ndarray | None = None,
    ) -> np.ndarray:
        """X with each NaN replaced by its conditional mean, averaged over components
        with the given row weights (n, K). A new array; X is not changed.

        With ``coef`` (K, D, D), per-column regression coefficients such as
        those of :func:`bayesian_ridge_regressions`, the gaps are filled from
        those regressions instead (see
        :func:`~latentem.kernels.gaussian_missing.conditional_fill`); rows whose
        regression system is singular keep the conditional mean.
        All-NaN rows get the weighted component means."""
        out = np.array(X, dtype=np.float64)
        plan = self.plan(X) if plan is None else plan
        if plan.partial.size:
            head, _, P, _ = self._args(X, plan)
            W = np.ascontiguousarray(weights[plan.partial], dtype=np.float64)
            B = np.zeros((0, self.n_features, self.n_features)) if coef is None else coef
            out[plan.partial] = conditional_fill(
                *head, self.means_, P, self._tables(plan), W, np.ascontiguousarray(B)
            )
        if plan.empty.size:
            out[plan.empty] = np.asarray(weights[plan.empty], dtype=np.float64) @ self.means_
        return out

    @_serial_if_small
    def draw(
        self,
        X: np.ndarray,
        components: np.ndarray,
        rng: np.random.Generator,
        plan: MissingPlan | None = None,
    ) -> np.ndarray:
        """X with each NaN drawn from its conditional distribution under row
        ``i``'s component ``components[i]``. A new array; X is not changed."""
        out = np.array(X, dtype=np.float64)
        plan = self.plan(X) if plan is None else plan
        comp = np.asarray(components, dtype=np.int64)
        if plan.partial.size:
            head, _, P, _ = self._args(X, plan)
            Z = rng.standard_normal((plan.partial.size, self.n_features))
            out[plan.partial] = conditional_draw(
                *head, self.means_, P, self._tables(plan), comp[plan.partial], Z
            )
        if plan.empty.size:
            for i in plan.empty:
                k = int(comp[i])
                L = np.linalg.cholesky(self.component_covariance(k))
                out[i] = self.means_[k] + L @ rng.standard_normal(self.n_features)
        return out


#: Gamma hyperpriors of the evidence maximisation (shape and rate of both
#: precisions), as scikit-learn's BayesianRidge: nearly flat.
_EVIDENCE_HYPER = 1e-6
_EVIDENCE_MAX_ITER = 300
_EVIDENCE_RTOL = 1e-10


def _ridge_terms(w2: np.ndarray, e: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, ...]:
    """For every column j, with ``Q = (C + r_j I)^-1`` (``C = U diag(e) U^T``, ``w2 = U**2``):
    ``Q_jj``, ``(Q^2)_jj`` and ``tr Q``, each an O(D) sum over the eigenvalues."""
    inv = 1.0 / (e[None, :] + r[:, None])
    return (w2 * inv).sum(axis=1), (w2 * inv * inv).sum(axis=1), inv.sum(axis=1)


def _evidence_ridges(w2: np.ndarray, e: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Ridge ``r_j`` (correlation units) of every column's regression on the others that
    maximises its Bayesian-ridge evidence on ``n[j]`` rows.

    MacKay's fixed point for the noise precision ``alpha`` and the weight
    precision ``lam`` of each column, as in scikit-learn's BayesianRidge, on
    standardised columns (``r = lam / (alpha n)``). Everything it needs about
    the regression of j on the others ``o`` comes from ``Q = (C + r I)^-1``
    by the block-inverse identities: ``(C_oo + r I)^-1 = Q_oo - Q_oj Q_jo / Q_jj``,
    the coefficients ``beta = -Q_oj / Q_jj`` and ``beta^T C_oj = 1 + r - 1 / Q_jj``.
    One eigendecomposition of C serves all columns and all iterations.
    """
    h = _EVIDENCE_HYPER
    D = e.shape[0]
    alpha = np.ones(D)  # 1 / var(y) of a standardised column, BayesianRidge's start
    lam = np.ones(D)
    for _ in range(_EVIDENCE_MAX_ITER):
        r = lam / (alpha * n)
        qjj, q2jj, trq = _ridge_terms(w2, e, r)
        tr_oo = trq - q2jj / qjj  # tr (C_oo + r I)^-1
        gamma = (D - 1) - r * tr_oo  # effective number of coefficients
        beta2 = (q2jj - qjj * qjj) / (qjj * qjj)  # |beta|^2
        fit = 1.0 + r - 1.0 / qjj  # beta^T C_oj
        rss = np.maximum(n * (1.0 - 2.0 * fit + (fit - r * beta2)), 0.0)  # beta^T C_oo beta
        lam_new = (gamma + 2 * h) / (beta2 + 2 * h)
        alpha_new = np.maximum(n - gamma + 2 * h, h) / (rss + 2 * h)
        done = np.all(np.abs(lam_new - lam) <= _EVIDENCE_RTOL * lam) and np.all(
            np.abs(alpha_new - alpha) <= _EVIDENCE_RTOL * alpha
        )
        alpha, lam = alpha_new, lam_new
        if done:
            break
    return lam / (alpha * n)


def bayesian_ridge_regressions(
    cov: np.ndarray, n_obs: np.ndarray, strength: float | str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Every column's ridge regression on all the others, from a covariance matrix.

    Column j is predicted from the others, standardised, with coefficients
    ``(C_oo + r_j I)^-1 C_oj`` (C the correlation matrix of ``cov``). With
    ``strength="auto"`` each ``r_j`` maximises the evidence of a Bayesian
    ridge regression (MacKay 1992; scikit-learn's BayesianRidge) on
    ``n_obs[j]`` rows with these moments: little data or weak predictors
    give strong shrinkage, many rows give almost none. A number fixes every
    ``r_j``; 0 gives the exact regressions of the normal,
    ``B = I - diag(P)^-1 P`` with ``P = cov^-1``. One eigendecomposition of
    the correlation matrix serves every column: O(D^3) in all.

    Returns ``(B, r)``: ``B`` (D, D) with ``B[j, j] = 0`` and ``B[j, o]`` the
    coefficients of column j on the others in the data's units, and ``r``
    (D,) the ridges.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> B, r = bayesian_ridge_regressions(cov, np.array([10, 10]), strength=0.0)
    >>> B
    array([[0. , 0.5],
           [0.5, 0. ]])
    >>> B, r = bayesian_ridge_regressions(cov, np.array([10, 10]))
    >>> bool(0 < B[0, 1] < 0.5) and bool((r > 0).all())
    True
    """
    if isinstance(strength, str) and strength != "auto":
        raise ValueError(f'strength must be "auto" or a number >= 0; got {strength!r}.')
    cov = np.asarray(cov, dtype=np.float64)
    D = cov.shape[0]
    if D == 1:  # nothing to regress on
        return np.zeros((1, 1)), np.zeros(1)
    sd = np.sqrt(np.diag(cov))
    e, U = np.linalg.eigh(cov / np.outer(sd, sd))
    e = np.maximum(e, 1e-15 * e[-1])  # a singular C (ridge 0) stays finite
    w2 = U * U
    if isinstance(strength, str):
        n = np.maximum(np.asarray(n_obs, dtype=np.float64), 1.0)
        ridges = _evidence_ridges(w2, e, n)
    else:
        ridges = np.full(D, float(strength))
    # row j of Q = (C + r_j I)^-1, then beta_j = -Q_jo / Q_jj
    Q = np.einsum("ji,ki,ji->jk", U, U, 1.0 / (e[None, :] + ridges[:, None]))
    B = -Q / np.diag(Q)[:, None]
    np.fill_diagonal(B, 0.0)
    return B * sd[:, None] / sd[None, :], ridges
