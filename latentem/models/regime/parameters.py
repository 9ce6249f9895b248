"""The parameters of the regime-switching models as vectors.

:class:`_RegimeParameters`, a mixin of the models: the free-parameter vector
EM's SQUAREM acceleration extrapolates (``get_param_vector`` /
``set_param_vector``) and the count for AIC and BIC; the parameters in
statsmodels' order and names (``params_``, ``param_names_``,
``set_statsmodels_params``); and their standard errors from a numerical
Hessian (``bse``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__: list[str] = []


class _RegimeParameters:
    """Parameter vectors, statsmodels' layout and standard errors (a mixin)."""

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
