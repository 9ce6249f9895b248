"""Scaled emission probabilities for the HMM kernels: ``exp(log p - row max)``.

Forward-backward works on emission probabilities divided by each row's
largest one, so nothing underflows however extreme a row is; the row
maxima (``shift``) go back into the log-likelihood. Computing the ``exp``
is most of the cost of that step. libm's ``exp`` is one call per element,
so :func:`exp_shifted` evaluates it inline (Cody-Waite range reduction and a
degree-12 Taylor polynomial, within 2 ulp of libm) in a loop that LLVM
vectorises: about 3x faster.

Values below ``exp(-500)`` (~1e-217) become exactly zero: they are nothing
next to the row's largest term (1.0), and subnormal numbers would slow
every later product 100-fold.
"""

from __future__ import annotations

import math

import numpy as np

from latentem.kernels._jit import njit

__all__ = ["FLUSH", "exp_shifted", "scale_block", "scale_rows"]

#: Shifted log-probabilities below this give scaled probabilities of exactly zero.
FLUSH = -500.0
_LOG2E = 1.4426950408889634
# ln 2 split in two: k * _LN2_HI is exact for |k| < 2**21, so r below is exact to 1 ulp.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_C = tuple(1.0 / math.factorial(j) for j in range(13))


# Only "contract" (FMA): reassociation would undo the two-part subtraction of k ln 2.
@njit(cache=True, fastmath={"contract"}, nogil=True)
def exp_shifted(logp, mx, nb, e, bits):
    """``e[k, b] = exp(logp[k, b] - mx[b])`` for ``b < nb``, where ``logp[k, b] <= mx[b]``
    (``-inf`` allowed), flushed to zero below :data:`FLUSH`. ``bits``: int64 scratch
    shaped like ``e``."""
    K = logp.shape[0]
    for k in range(K):
        for b in range(nb):
            x = logp[k, b] - mx[b]
            v = -700.0 if x < -700.0 else x
            # exp(v) = 2**i * exp(r) with |r| <= ln(2) / 2
            i = np.floor(v * _LOG2E + 0.5)
            r = (v - i * _LN2_HI) - i * _LN2_LO
            p = _C[12]
            for j in range(11, -1, -1):
                p = p * r + _C[j]
            e[k, b] = 0.0 if x < FLUSH else p
            bits[k, b] = (np.int64(i) + 1023) << 52  # the bits of the float 2**i
    two_i = bits.view(np.float64)
    for k in range(K):
        for b in range(nb):
            e[k, b] *= two_i[k, b]


@njit(cache=True, nogil=True)
def scale_block(logp, nb, r0, scaled, shift, mx, e, bits):
    """Rows r0..r0+nb-1 of ``scaled = exp(logp - shift)`` and ``shift`` (the row
    maxima; ``-inf`` with a row of zeros where every entry is ``-inf``), from a block
    held transposed: ``logp`` is (K, BLOCK), column b is row r0 + b. ``mx`` (BLOCK,),
    ``e`` and ``bits`` (K, BLOCK) are scratch."""
    K = logp.shape[0]
    for b in range(nb):
        mx[b] = logp[0, b]
    for k in range(1, K):
        for b in range(nb):
            v = logp[k, b]
            mx[b] = v if v > mx[b] else mx[b]
    for b in range(nb):
        shift[r0 + b] = mx[b]
        if mx[b] == -np.inf:
            mx[b] = 0.0  # an impossible row (every state excluded) stays all zeros
    exp_shifted(logp, mx, nb, e, bits)
    for b in range(nb):
        for k in range(K):
            scaled[r0 + b, k] = e[k, b]


@njit(cache=True, nogil=True)
def scale_rows(log_b, r0, nb, scaled, shift, logp, mx, e, bits):
    """:func:`scale_block` for rows r0..r0+nb-1 of an (n, K) array of log-probabilities."""
    K = log_b.shape[1]
    for b in range(nb):
        for k in range(K):
            logp[k, b] = log_b[r0 + b, k]
    scale_block(logp, nb, r0, scaled, shift, mx, e, bits)
