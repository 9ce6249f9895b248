"""K-component Gaussian emission family, vectorised over components, gap-aware.

The family knows nothing about where its weights come from: a mixture, a
hidden Markov chain or an imputer pass (n, K) weights to
:meth:`GaussianFamily.accumulate`, and turn the family's (n, K) log-densities
into posteriors themselves. For mixtures the fused
:meth:`GaussianFamily.mixture_stats` does both in one pass.

NaN cells are marginalised: complete rows go through the fused kernels of
:mod:`latentem.kernels.gaussian`, rows with some NaN through
:mod:`latentem.kernels.gaussian_missing` (marginal log-densities; conditional
means and covariances in the statistics), and rows that are entirely NaN carry
no evidence (log-density 0) and add nothing to the statistics. Rows are sorted
out by missingness pattern once per data set
(:func:`~latentem.families.gaussian_gaps.missing_plan`, cached by the NaN
mask); complete data never pay for it.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np

from latentem._validation import all_finite
from latentem.families.gaussian_gaps import (
    GROUPED_MAX_BYTES,
    GROUPED_MIN_ROWS_PER_PATTERN,
    MissingPlan,
    _mask_key,
    _plan_from_mask,
    _serial_if_small,
)
from latentem.families.gaussian_priors import MaximumLikelihood
from latentem.kernels.gaussian import (
    cov_to_prec_chol,
    gaussian_accumulate,
    gaussian_estep,
    gaussian_logprob,
)
from latentem.kernels.gaussian_missing import (
    conditional_draw,
    conditional_fill,
    missing_estep,
    missing_logprob,
    pattern_factors,
)
from latentem.kernels.gaussian_wide import WIDE_FEATURES, gaussian_estep_wide
from latentem.registry import register

__all__ = ["GaussianFamily", "COVARIANCE_TYPES"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = math.log(2.0 * math.pi)

_NOT_PD = (
    "the covariance of component {k} is not positive definite (for instance caused by "
    "singleton or collapsed samples); {hint}, decrease the number "
    "of components, or remove duplicated points."
)


def _add_to_diagonal(cov: np.ndarray, value: float, covariance_type: str) -> np.ndarray:
    if not value:
        return cov
    if covariance_type in ("diag", "spherical"):
        return cov + value
    idx = np.arange(cov.shape[-1])
    cov = cov.copy()
    cov[..., idx, idx] += value
    return cov


def _rows_sum_to_one(W: np.ndarray) -> bool:
    return bool(np.allclose(W.sum(axis=1), 1.0, rtol=0.0, atol=1e-9))


def covariance_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """Shape of ``covariances_`` (and of ``precisions_cholesky_``) in scikit-learn's layout."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


# the earlier name of the gap-aware class, which model files may give
@register(
    name="MissingGaussianFamily",
    kind="family",
    fitted=("means_", "covariances_", "grouped"),
    finish="_finish_load",
)
@register(kind="family", fitted=("means_", "covariances_", "grouped"), finish="_finish_load")
class GaussianFamily:
    """K Gaussian components sharing one covariance type; NaN cells are marginalised.

    It meets the :class:`~latentem.families.base.EmissionFamily` contract for
    a :class:`latentem.Mixture` (``log_prob``, ``accumulate``,
    ``m_step(stats, letters)``, ``check_params``, SQUAREM's
    ``vector_attributes``) and adds the mixture hooks that make
    :class:`latentem.GaussianMixture` fast: :meth:`mixture_stats` (posteriors
    and statistics in one pass), :meth:`mixture_rows` (scores, posteriors or
    labels without the (n, K) log-densities) and :meth:`split` (re-seeding an
    emptied component).

    Attributes use scikit-learn's layouts and meanings: ``means_`` (K, D);
    ``covariances_`` (K, D, D) for "full", (D, D) for "tied", (K, D) for
    "diag", (K,) for "spherical"; ``precisions_cholesky_`` of the same shape,
    upper-triangular factors with ``precision = P @ P.T`` (the reciprocal
    square roots for "diag" and "spherical").

    Rows with NaN cells are scored by their observed cells (the marginal
    density) and enter the statistics with the conditional means and
    covariances of their gaps (:meth:`log_prob`, :meth:`accumulate`,
    :meth:`mixture_stats`); :meth:`fill` and :meth:`draw` complete them.

    Statistics are the tuple ``(nk, S, Q)``: the weight of each component,
    the weighted first moments about the current ``means_`` and the second
    moments (see :mod:`latentem.kernels.gaussian`). They are additive over
    rows and must be passed to :meth:`m_step` before the parameters change.

    Parameters
    ----------
    n_components : int
        Number of components K.
    n_features : int
        Dimension D.
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float
        Added to the diagonal of every covariance estimate.

    Attributes
    ----------
    grouped : None or bool
        ``None`` (default) chooses the grouped path for rows with gaps when
        they share missingness patterns (at least 2 rows per pattern on
        average) and its tables fit in 256 MiB, else the per-row path;
        ``True`` / ``False`` force one. The results are identical.

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.families.gaussian import GaussianFamily
    >>> fam = GaussianFamily(2, 1, "diag")
    >>> fam.set_parameters(np.array([[0.0], [5.0]]), np.array([[1.0], [1.0]]))
    >>> X = np.array([[0.0], [5.0]])
    >>> np.round(fam.log_prob(X), 3)
    array([[ -0.919, -13.419],
           [-13.419,  -0.919]])
    >>> fam.m_step(fam.accumulate(X, np.eye(2)))
    >>> fam.means_.ravel()
    array([0., 5.])
    >>> fam = GaussianFamily(1, 2, "full")
    >>> fam.set_parameters(np.zeros((1, 2)), np.array([[[1.0, 0.8], [0.8, 1.0]]]))
    >>> X = np.array([[1.0, np.nan]])
    >>> float(np.round(fam.log_prob(X)[0, 0], 4))  # the marginal N(1; 0, 1)
    -1.4189
    >>> fam.fill(X, np.ones((1, 1)))  # E[x2 | x1 = 1] = 0.8
    array([[1. , 0.8]])
    """

    param_letters = "mc"
    grouped: bool | None = None
    #: Add the conditional covariance of the gaps to the second moments (the
    #: correct E-step). False is only for demonstrating the downward bias of
    #: variances without it.
    conditional_covariance: bool = True
    vector_attributes = ("means_", "covariances_")
    #: The prior the M-step maximises with the likelihood, one of
    #: :mod:`latentem.families.gaussian_priors`; None: maximum likelihood.
    prior: Any = None

    def __init__(
        self,
        n_components: int,
        n_features: int,
        covariance_type: str = "full",
        reg_covar: float = 1e-6,
    ) -> None:
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}."
            )
        self.n_components = int(n_components)
        self.n_features = int(n_features)
        self.covariance_type = covariance_type
        self.reg_covar = float(reg_covar)

    # ------------------------------------------------------------------ parameters
    @property
    def smode(self) -> int:
        """Second-moment mode of the kernels for this covariance type."""
        return {"full": 0, "tied": 1, "diag": 2, "spherical": 2}[self.covariance_type]

    def set_parameters(
        self, means: np.ndarray, covariances: np.ndarray, *, copy: bool = True
    ) -> None:
        """Set means and covariances; raise ValueError if a covariance is not PD.

        ``copy=False`` keeps float64 C-ordered arrays the family alone holds (a
        model file's, as it loads) instead of copying them.
        """
        as_array = np.array if copy else np.asarray
        means = as_array(means, dtype=np.float64, order="C")
        covariances = as_array(covariances, dtype=np.float64, order="C")
        prec = self.precision_cholesky_from_covariances(covariances)
        self.means_ = means
        self.covariances_ = covariances
        self.precisions_cholesky_ = prec
        self._kernel_cache = None
        self._missing_cache = None  # the factors and tables of rows with gaps
        self._tables_cache = None

    def precision_cholesky_from_covariances(self, cov: np.ndarray) -> np.ndarray:
        """scikit-learn's ``precisions_cholesky_`` for ``cov``; ValueError if not PD."""
        ct = self.covariance_type
        if ct in ("full", "tied"):
            cov3 = cov if ct == "full" else cov[None]
            prec, bad = cov_to_prec_chol(np.ascontiguousarray(cov3, dtype=np.float64))
            if bad >= 0:
                raise ValueError(
                    _NOT_PD.format(
                        k=bad if ct == "full" else "(tied)", hint=self._regularisation_hint()
                    )
                )
            return prec if ct == "full" else prec[0]
        bad = np.flatnonzero(~(np.asarray(cov) > 0).reshape(len(cov), -1).all(axis=1))
        if bad.size:
            raise ValueError(_NOT_PD.format(k=int(bad[0]), hint=self._regularisation_hint()))
        return 1.0 / np.sqrt(cov)

    def is_feasible(self, cov: np.ndarray) -> bool:
        """Whether ``cov`` (this type's layout) holds valid covariances."""
        if not np.all(np.isfinite(cov)):
            return False
        try:
            self.precision_cholesky_from_covariances(cov)
        except ValueError:
            return False
        return True

    def _regularisation_hint(self) -> str:
        """What the user of this family can raise when a covariance is singular."""
        return f"increase reg_covar (now {self.reg_covar:g})"

    def check_params(self) -> None:
        """Recompute the Cholesky factors of the set parameters; ValueError if a
        covariance is not positive definite (SQUAREM's feasibility test)."""
        self.set_parameters(self.means_, self.covariances_)

    @property
    def precisions_(self) -> np.ndarray:
        """Precision matrices (inverse covariances), scikit-learn's layout."""
        P = self.precisions_cholesky_
        if self.covariance_type == "full":
            return P @ P.transpose(0, 2, 1)
        if self.covariance_type == "tied":
            return P @ P.T
        return P**2

    def _kernel_params(self) -> tuple[np.ndarray, np.ndarray]:
        """(prec as (K, D, D) or (K, 1, D), log-normaliser (K,)) for the kernels."""
        if getattr(self, "_kernel_cache", None) is not None:
            return self._kernel_cache
        K, D = self.n_components, self.n_features
        P = self.precisions_cholesky_
        ct = self.covariance_type
        if ct == "full":
            prec = np.ascontiguousarray(P)
            logdet = np.log(np.diagonal(P, axis1=1, axis2=2)).sum(axis=1)
        elif ct == "tied":
            prec = np.ascontiguousarray(np.broadcast_to(P, (K, D, D)))
            logdet = np.full(K, np.log(np.diag(P)).sum())
        elif ct == "diag":
            prec = np.ascontiguousarray(P[:, None, :])
            logdet = np.log(P).sum(axis=1)
        else:
            prec = np.ascontiguousarray(np.broadcast_to(P[:, None, None], (K, 1, D)))
            logdet = D * np.log(P)
        logc = logdet - 0.5 * D * _LOG_2PI
        self._kernel_cache = (prec, logc)
        return self._kernel_cache

    def _shift(self) -> np.ndarray:
        return np.ascontiguousarray(self.means_.mean(axis=0))

    def stats_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """The point the statistics are taken about: ``(means, shift)`` (online EM)."""
        return self.means_.copy(), self._shift().copy()

    def move_stats(self, stats: tuple, src: tuple, dst: tuple) -> tuple:
        """Statistics ``(nk, S, Q)`` taken about ``src`` re-expressed about ``dst``.

        Online EM averages statistics from batches E-stepped under different
        parameters, so they must share one reference point. First moments are
        about each component's mean, second moments about it too (full, diag,
        spherical) or about ``shift`` ("tied", unweighted).
        """
        nk, S, Q = stats
        delta = src[0] - dst[0]  # (K, D)
        S2 = S + nk[:, None] * delta
        if self.smode == 0:
            SD = S[:, :, None] * delta[:, None, :]
            Q2 = (
                Q
                + SD
                + SD.transpose(0, 2, 1)
                + nk[:, None, None] * (delta[:, :, None] * delta[:, None, :])
            )
        elif self.smode == 2:
            Q2 = Q + (2.0 * S * delta + nk[:, None] * delta**2)[:, None, :]
        else:  # one unweighted matrix about shift: sum_n (x_n - shift)
            d = src[1] - dst[1]
            T = (S + nk[:, None] * (src[0] - src[1])).sum(axis=0)
            Q2 = Q + (np.outer(T, d) + np.outer(d, T) + nk.sum() * np.outer(d, d))[None]
        return nk, S2, Q2

    # ------------------------------------------------------------------ family jobs
    def _complete_log_prob(self, X: np.ndarray) -> np.ndarray:
        """Log-density of every complete row under every component, shape (n, K)."""
        prec, logc = self._kernel_params()
        out = np.empty((X.shape[0], self.n_components))
        gaussian_logprob(X, self.means_, prec, logc, 0, out, np.empty(0))
        return out

    def _complete_accumulate(self, X: np.ndarray, weights: np.ndarray) -> tuple:
        """Weighted sufficient statistics ``(nk, S, Q)`` of complete rows, weights (n, K)."""
        W = np.ascontiguousarray(weights, dtype=np.float64)
        if W.shape != (X.shape[0], self.n_components):
            raise ValueError(
                f"weights must have shape (n_samples, n_components) = "
                f"{(X.shape[0], self.n_components)}; got {W.shape}."
            )
        nk, S, Q = gaussian_accumulate(X, W, self.means_, self._shift(), self.smode)
        if self.smode == 1 and not _rows_sum_to_one(W):
            Q = self._tied_second_moment(X, W.sum(axis=1))
        return nk, S, Q

    def _tied_second_moment(self, X: np.ndarray, row_weights: np.ndarray) -> np.ndarray:
        """The tied statistic ``sum_n w_n (x_n - shift)(x_n - shift)'``. The kernels sum
        it without weights, which is right when every row's weights add up to 1 (as
        posteriors do) but not for row weights (``sample_weight``, weighted sequences)."""
        Y = X - self._shift()
        return ((Y * row_weights[:, None]).T @ Y)[None]

    def fused_e_step(self, X: np.ndarray, log_weights: np.ndarray) -> tuple[tuple, float]:
        """Mixture E-step in one pass: ``((nk, S, Q), total log-likelihood)``."""
        prec, logc = self._kernel_params()
        wide = self.smode in (0, 1) and self.n_features >= WIDE_FEATURES
        ll, nk, S, Q = (gaussian_estep_wide if wide else gaussian_estep)(
            X, self.means_, prec, logc + log_weights, self._shift(), self.smode
        )
        return (nk, S, Q), float(ll)

    def mixture_rows(self, X: np.ndarray, log_weights: np.ndarray, what: str) -> np.ndarray | None:
        """Mixture scoring hook, one pass over complete rows: ``what`` is "proba" (the
        (n, K) posteriors), "score" (each row's log-likelihood) or "label" (the most
        probable component). None where X has gaps (the caller then uses ``log_prob``)."""
        if not all_finite(X) and np.isnan(X).any():  # one pass without a mask when complete
            return None
        prec, logc = self._kernel_params()
        n, K = X.shape[0], self.n_components
        code = {"proba": 1, "score": 2, "label": 3}[what]
        out2 = np.empty((n, K) if what == "proba" else (0, K))
        out1 = np.empty(n)  # the "proba" pass writes each row's log-likelihood here too
        gaussian_logprob(X, self.means_, prec, logc + log_weights, code, out2, out1)
        return out2 if what == "proba" else out1.astype(np.int64) if what == "label" else out1

    # ------------------------------------------------------------------ cached pieces
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
                "a component covariance is not numerically positive definite; "
                f"{self._regularisation_hint()} or use fewer components."
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

    # ------------------------------------------------------------------ rows with gaps
    @_serial_if_small
    def log_prob(self, X: np.ndarray, plan: MissingPlan | None = None) -> np.ndarray:
        plan = self.plan(X) if plan is None else plan
        if plan.complete.size == X.shape[0]:
            return self._complete_log_prob(X)
        out = np.zeros((X.shape[0], self.n_components))
        if plan.complete.size:
            out[plan.complete] = self._complete_log_prob(np.ascontiguousarray(X[plan.complete]))
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
            return self._complete_accumulate(X, weights)
        W = np.ascontiguousarray(weights, dtype=np.float64)
        if self.smode == 1 and not _rows_sum_to_one(W[plan.partial]):
            raise ValueError(
                "row weights (sample_weight) with covariance_type='tied' need complete rows; "
                "use another covariance type, or fill or drop the rows with gaps."
            )
        nk, S, Q = self._zero_stats()
        if plan.complete.size:
            nk, S, Q = self._complete_accumulate(
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

    def estimate(self, stats: tuple, letters: str = "mc") -> tuple[np.ndarray, np.ndarray]:
        """New ``(means, covariances)`` from statistics, without setting them: the
        prior's estimate (letter ``m`` moves the means, ``c`` the covariances),
        then ``reg_covar`` added to the diagonal of the covariances."""
        means, cov = self._prior().estimate(self, stats, letters)
        if "c" not in letters:
            return means, self.covariances_
        return means, _add_to_diagonal(cov, self.reg_covar, self.covariance_type)

    def m_step(self, stats: tuple, letters: str = "mc") -> None:
        """Set means (letter ``m``) and covariances (``c``) from statistics taken at
        the current parameters; a covariance alone is taken about the current means."""
        self.set_parameters(*self.estimate(stats, letters))

    def _prior(self) -> Any:
        return MaximumLikelihood() if self.prior is None else self.prior

    def log_prior(self) -> float:
        """Log-density of the prior at the current parameters (0: maximum likelihood)."""
        return self._prior().log_prior(self)

    # ------------------------------------------------------------------ extras
    def n_parameters(self) -> int:
        """Free parameters: means plus covariances."""
        K, D = self.n_components, self.n_features
        cov = {
            "full": K * D * (D + 1) // 2,
            "tied": D * (D + 1) // 2,
            "diag": K * D,
            "spherical": K,
        }[self.covariance_type]
        return K * D + cov

    def component_covariance(self, k: int) -> np.ndarray:
        """The (D, D) covariance matrix of component k."""
        ct, C = self.covariance_type, self.covariances_
        if ct == "full":
            return C[k]
        if ct == "tied":
            return C
        if ct == "diag":
            return np.diag(C[k])
        return np.eye(self.n_features) * C[k]

    def split(self, src: int, dst: int) -> bool:
        """Re-seed component ``dst`` by splitting ``src`` along its main axis.

        The two halves get means ``mean[src] +/- sqrt(lambda) v``, where
        ``lambda, v`` is the largest eigenpair of the covariance of ``src``,
        and both keep the covariance of ``src``. Returns False, changing
        nothing, when ``src`` has no spread beyond ``reg_covar`` (duplicated
        points): a split there would only lower the likelihood.
        """
        C = self.component_covariance(src)
        if not np.diag(C).max() > 2.0 * self.reg_covar:
            return False
        lam, vec = np.linalg.eigh(C)
        step = math.sqrt(max(lam[-1], 0.0)) * vec[:, -1]
        means = self.means_.copy()
        cov = self.covariances_.copy()
        means[dst] = means[src] + step
        means[src] = means[src] - step
        if self.covariance_type != "tied":
            cov[dst] = cov[src]
        self.set_parameters(means, cov)
        return True

    def sample(self, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``counts[k]`` draws from component k, stacked in component order."""
        out = []
        for k, c in enumerate(counts):
            C = self.component_covariance(k)
            L = np.linalg.cholesky(C)
            z = rng.standard_normal((int(c), self.n_features))
            out.append(self.means_[k] + z @ L.T)
        return np.vstack(out) if out else np.empty((0, self.n_features))

    def _finish_load(self) -> None:
        """After loading a model file: check sizes, means and covariances, then the
        Cholesky factors (the arrays were read for this family alone: no copies)."""
        if "means_" in vars(self):
            from latentem.persistence import _check_gaussian_family

            _check_gaussian_family(self)
            self.set_parameters(self.means_, self.covariances_, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_kernel_cache"] = None
        state.pop("_complete_X", None)  # a weak reference (see _note_complete)
        return state
