"""The closed-form M-step of a state-space model, with structured and held parameters.

:class:`_MStep` is the part of :class:`LinearGaussianSSM` that turns the
smoother's expected sufficient statistics into new parameters: ``[A B]``
given ``Q`` then ``Q``, ``[C D]`` given ``R`` then ``R`` (exact EM when all
entries are free, a conditional step when some are held), and the initial
state. The regressions over the free entries (:func:`_regression`, with
:func:`_solve_sym`) and the residual covariances (:func:`_residual_cov`) are
plain functions on the statistics.
"""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels import kalman_scalar as _flat  # by module: its dispatchers once made
from latentem.kernels.kalman import N_COUNTS
from latentem.models.ssm.parameters import _ATTRS, _sym

__all__: list[str] = []


class _MStep:
    """The M-step (part of :class:`LinearGaussianSSM`)."""

    def m_step(self, stats: np.ndarray) -> None:
        """New parameters from the E-step's flat statistics (see
        :func:`unflatten_stats`): compiled on the packed parameters where each part is
        wholly free or wholly held, else by the conditional steps below."""
        held = self.__dict__.get("_held_cache") or self._held
        codes = held["codes"]
        theta = self._theta()
        # the compiled step, unless it found a Gram matrix singular earlier in this fit
        # (inputs that are collinear stay so): the least squares below then
        if codes is not None and self.__dict__.get("_singular_gram") is not held:
            # the attributes are views of the vector updated in place
            if held["scalar"]:
                if _flat.m_step_scalar(stats, theta, codes):
                    return
            elif _flat.m_step_packed(
                stats, theta, self.n_states, self.n_features_in_, self.n_inputs_, codes
            ):
                return
            self.__dict__["_singular_gram"] = held
        self._m_step_numpy(stats)
        # the new values into the packed vector the attributes view (not new arrays,
        # which the next E-step would have to pack afresh)
        views = self.__dict__["_packed"][1]
        for attr, view in zip(_ATTRS, views):
            new = self.__dict__[attr]
            if new is not view:
                view[...] = new
                self.__dict__[attr] = view

    def _m_step_numpy(self, stats: np.ndarray) -> None:
        """The M-step in NumPy: conditional steps over the free entries (ECM), least
        squares where a Gram matrix is singular."""
        n, m = self.n_states, self.n_inputs_
        held = self._held
        Zp, XZ, XX, W, YW, YY, s1, S1, counts = unflatten_stats(stats, n, self.n_features_in_, m)
        n_trans, n_obs, n_seq = counts.tolist()
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
                self.transition_cov_ = _structured_cov(
                    XX,
                    XZ,
                    Zp,
                    Phi,
                    n_trans,
                    self.transition_cov_,
                    held["transition_cov_kept"],
                    self.transition_cov_type,
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
                self.observation_cov_ = _structured_cov(
                    YY,
                    YW,
                    W,
                    Psi,
                    n_obs,
                    self.observation_cov_,
                    held["observation_cov_kept"],
                    self.observation_cov_type,
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


def unflatten_stats(stats: np.ndarray, n: int, p: int, m: int) -> tuple:
    """The flat statistics as ``(Zp, XZ, XX, W, YW, YY, s1, S1, counts)`` (views)."""
    nz = n + m
    shapes = ((nz, nz), (n, nz), (n, n), (nz, nz), (p, nz), (p, p), (n,), (n, n), (N_COUNTS,))
    out, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        out.append(stats[start : start + size].reshape(shape))
        start += size
    return tuple(out)


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


def _residual_cov(Syy: np.ndarray, Syz: np.ndarray, Szz: np.ndarray, Phi: np.ndarray, n: float):
    """``(Syy - Phi Syz' - Syz Phi' + Phi Szz Phi') / n``, symmetrised."""
    if Phi.size == 1:  # the same arithmetic on numbers, at a tenth of the cost
        phi, ps = Phi[0, 0], Phi[0, 0] * Syz[0, 0]
        return np.array([[(Syy[0, 0] - ps - ps + (phi * Szz[0, 0]) * phi) / n]])
    PS = Phi @ Syz.T
    return _sym(Syy - PS - PS.T + Phi @ Szz @ Phi.T) / n


def _structured_cov(
    Syy: np.ndarray,
    Syz: np.ndarray,
    Szz: np.ndarray,
    Phi: np.ndarray,
    n: float,
    old: np.ndarray,
    kept: np.ndarray | None,
    kind: str,
) -> np.ndarray:
    """The residual covariance (:func:`_residual_cov`) in the structure ``kind``: full,
    scalar, or diagonal with the entries ``kept`` (a boolean mask over the diagonal, or
    None for none) as they are in ``old``."""
    new = _residual_cov(Syy, Syz, Szz, Phi, n)
    if kind == "full" or new.size == 1:  # 1 x 1: every structure is the same
        return new
    d = new.diagonal()
    if kind == "scalar":
        return np.eye(len(d)) * d.mean()
    if kept is not None:
        d = np.where(kept, old.diagonal(), d)
    return np.diag(d)
