"""numba kernels for discrete emission families (categorical and Poisson)."""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels import small
from latentem.kernels._dispatch import Kernel
from latentem.kernels._jit import njit, prange


@njit(cache=True, parallel=True)
def categorical_logprob_jit(symbols, log_emission):
    """out[t, k] = log_emission[k, symbols[t]]; 0 where the symbol is missing (< 0)."""
    n = symbols.shape[0]
    K = log_emission.shape[0]
    out = np.empty((n, K))
    for t in prange(n):
        s = symbols[t]
        for k in range(K):
            out[t, k] = log_emission[k, s] if s >= 0 else 0.0
    return out


@njit(cache=True)
def categorical_accumulate_jit(symbols, weights, n_symbols):
    """counts[k, s] = sum of weights[t, k] over rows with symbol s (missing rows skipped)."""
    K = weights.shape[1]
    counts = np.zeros((K, n_symbols))
    for t in range(symbols.shape[0]):
        s = symbols[t]
        if s >= 0:
            for k in range(K):
                counts[k, s] += weights[t, k]
    return counts


@njit(cache=True, parallel=True)
def poisson_logprob_jit(X, rates):
    """Sum over features of log Poisson(x | rate_k); NaN entries are skipped."""
    n, D = X.shape
    K = rates.shape[0]
    log_rates = np.log(rates)
    out = np.zeros((n, K))
    for t in prange(n):
        for d in range(D):
            x = X[t, d]
            if not math.isnan(x):
                c = math.lgamma(x + 1.0)
                for k in range(K):
                    out[t, k] += x * log_rates[k, d] - rates[k, d] - c
    return out


@njit(cache=True)
def masked_weighted_sums_jit(X, weights):
    """Per component and feature: sum of weights and of weight * x over observed entries."""
    n, D = X.shape
    K = weights.shape[1]
    wsum = np.zeros((K, D))
    xsum = np.zeros((K, D))
    for t in range(n):
        for d in range(D):
            x = X[t, d]
            if not math.isnan(x):
                for k in range(K):
                    wsum[k, d] += weights[t, k]
                    xsum[k, d] += weights[t, k] * x
    return wsum, xsum


# Public kernels: NumPy below the small-input threshold, compiled above (see _dispatch).
categorical_logprob = Kernel(categorical_logprob_jit, small.categorical_logprob)
categorical_accumulate = Kernel(categorical_accumulate_jit, small.categorical_accumulate)
poisson_logprob = Kernel(poisson_logprob_jit, small.poisson_logprob)
masked_weighted_sums = Kernel(masked_weighted_sums_jit, small.masked_weighted_sums)
