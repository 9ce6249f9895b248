"""Two lane-by-lane choices on :mod:`latentem.kernels.vec8` vectors, for the
many-sequence HMM kernels of :mod:`latentem.kernels.hmm_lanes`, where each lane
is a different sequence."""

from __future__ import annotations

from llvmlite import ir
from numba.extending import intrinsic

from latentem.kernels.vec8 import _VT, _W, vec8

__all__ = ["vchoose", "vrecip"]


@intrinsic
def vchoose(typingctx, mask, a, b):
    """Lane by lane, ``a`` where ``mask > 0``, else ``b`` (NaN or inf in the lane
    not chosen never leaks, as it would through ``mask * a + (1 - mask) * b``)."""

    def codegen(context, builder, sig, args):
        m, x, y = args
        zero = ir.Constant(_VT, [0.0] * _W)
        return builder.select(builder.fcmp_ordered(">", m, zero), x, y)

    return vec8(vec8, vec8, vec8), codegen


@intrinsic
def vrecip(typingctx, x):
    """Lane by lane, ``1 / x`` where ``x > 0``, else 0 (a lane whose sequence turned out
    impossible goes to zero instead of NaN)."""

    def codegen(context, builder, sig, args):
        zero = ir.Constant(_VT, [0.0] * _W)
        one = ir.Constant(_VT, [1.0] * _W)
        pos = builder.fcmp_ordered(">", args[0], zero)
        return builder.select(pos, builder.fdiv(one, builder.select(pos, args[0], one)), zero)

    return vec8(vec8), codegen
