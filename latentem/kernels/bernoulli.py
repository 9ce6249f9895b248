"""numba kernel for the Bernoulli emission family (independent binary features).

The statistics (per component and feature: the weight of the rows where the
feature is observed, and of those where it is 1) are
:func:`latentem.kernels.discrete.masked_weighted_sums`.
"""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels._jit import njit

__all__ = ["bernoulli_logprob"]


@njit(cache=True)
def bernoulli_logprob(X, log_p, log_q):
    """out[t, k] = sum over observed features of ``x log p + (1 - x) log (1 - p)``.

    ``X`` (n, D) holds 0.0, 1.0 or NaN (missing, skipped); ``log_p`` and
    ``log_q`` (K, D) are ``log p`` and ``log(1 - p)``. A zero probability
    (``-inf``) only counts where the row takes that value, so a structural
    zero never turns into NaN. One thread: a row costs K * D additions, too
    little for a parallel region to pay on all but huge tables.
    """
    n, D = X.shape
    K = log_p.shape[0]
    out = np.zeros((n, K))
    for t in range(n):
        for d in range(D):
            x = X[t, d]
            if math.isnan(x):
                continue
            if x == 1.0:
                for k in range(K):
                    out[t, k] += log_p[k, d]
            else:
                for k in range(K):
                    out[t, k] += log_q[k, d]
    return out
