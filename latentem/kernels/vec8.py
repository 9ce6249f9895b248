"""Eight float64 lanes held in one LLVM vector, for latency-bound numba loops.

numba vectorises loops over arrays, but not a handful of scalar operations
inside a loop that cannot itself be vectorised, such as one step of the
forward recursion of an 8-state HMM. :data:`vec8` is a numba type whose value
is an LLVM ``<8 x double>``: it lives in one AVX-512 register (two AVX ones,
four SSE ones on older CPUs; LLVM splits it) and the operations below are
single vector instructions. Rows are read and written with :func:`vrow` and
:func:`vstore` from C-contiguous 2-D float64 arrays with 8 columns.

Only ``contract`` (FMA) is allowed on these operations: reassociation would
let LLVM merge the independent partial sums a caller keeps to shorten its
dependency chains back into one serial chain.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

__all__ = [
    "vec8",
    "vrow",
    "vstore",
    "vzero",
    "vsplat",
    "vfma",
    "vmul",
    "vadd",
    "vsub",
    "vscale",
    "vlane",
    "vsum",
    "vmax",
    "vexp",
    "vkeep_max",
    "vkeep_arg",
    "vstore_bytes",
]

_W = 8
_VT = ir.VectorType(ir.DoubleType(), _W)
_I32 = ir.IntType(32)
_FLAGS = ("contract",)


class Vec8Type(types.Type):
    def __init__(self):
        super().__init__(name="Vec8")


vec8 = Vec8Type()


@register_model(Vec8Type)
class _Vec8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VT)


def _splat(builder, x):
    v = builder.insert_element(ir.Constant(_VT, ir.Undefined), x, _I32(0))
    return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, _W), [0] * _W))


def _row_pointer(context, builder, aryty, ary, row):
    arr = context.make_array(aryty)(context, builder, ary)
    zero = context.get_constant(types.intp, 0)
    ptr = cgutils.get_item_pointer(context, builder, aryty, arr, [row, zero], wraparound=False)
    return builder.bitcast(ptr, _VT.as_pointer())


def _check_rows(arr):
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 2
        and arr.layout == "C"
        and arr.dtype == types.float64
    ):
        raise TypeError("vec8 rows come from C-contiguous 2-D float64 arrays (8 columns)")


@intrinsic
def vrow(typingctx, arr, row):
    """``arr[row, 0:8]``; ``arr`` must have 8 columns (not checked)."""
    _check_rows(arr)

    def codegen(context, builder, sig, args):
        return builder.load(_row_pointer(context, builder, sig.args[0], *args), align=8)

    return vec8(arr, types.intp), codegen


@intrinsic
def vstore(typingctx, arr, row, v):
    """``arr[row, 0:8] = v``; ``arr`` must have 8 columns (not checked)."""
    _check_rows(arr)

    def codegen(context, builder, sig, args):
        ptr = _row_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=8)
        return context.get_dummy_value()

    return types.none(arr, types.intp, vec8), codegen


@intrinsic
def vzero(typingctx):
    def codegen(context, builder, sig, args):
        return ir.Constant(_VT, [0.0] * _W)

    return vec8(), codegen


@intrinsic
def vsplat(typingctx, s):
    """A scalar in every lane."""

    def codegen(context, builder, sig, args):
        return _splat(builder, args[0])

    return vec8(types.float64), codegen


@intrinsic
def vfma(typingctx, acc, p, x):
    """``acc + p * x`` for a scalar ``p``."""

    def codegen(context, builder, sig, args):
        a, s, b = args
        return builder.fadd(a, builder.fmul(_splat(builder, s), b, flags=_FLAGS), flags=_FLAGS)

    return vec8(vec8, types.float64, vec8), codegen


@intrinsic
def vmul(typingctx, x, y):
    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1], flags=_FLAGS)

    return vec8(vec8, vec8), codegen


@intrinsic
def vadd(typingctx, x, y):
    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1], flags=_FLAGS)

    return vec8(vec8, vec8), codegen


@intrinsic
def vsub(typingctx, x, y):
    def codegen(context, builder, sig, args):
        return builder.fsub(args[0], args[1], flags=_FLAGS)

    return vec8(vec8, vec8), codegen


@intrinsic
def vscale(typingctx, x, c):
    """``x * c`` for a scalar ``c``."""

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], _splat(builder, args[1]), flags=_FLAGS)

    return vec8(vec8, types.float64), codegen


@intrinsic
def vlane(typingctx, x, i):
    """Lane ``i`` of ``x``."""

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], builder.trunc(args[1], _I32))

    return types.float64(vec8, types.intp), codegen


@intrinsic
def vsum(typingctx, x):
    """Sum of the lanes, as a fixed pairwise tree (the same order every time)."""

    def codegen(context, builder, sig, args):
        v, n = args[0], _W
        while n > 1:
            h = n // 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h))))
            hi = builder.shuffle_vector(
                v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h, n)))
            )
            v, n = builder.fadd(lo, hi), h
        return builder.extract_element(v, _I32(0))

    return types.float64(vec8), codegen


@intrinsic
def vmax(typingctx, x):
    """Largest lane (NaN lanes are not ordered: avoid them)."""

    def codegen(context, builder, sig, args):
        v, n = args[0], _W
        while n > 1:
            h = n // 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h))))
            hi = builder.shuffle_vector(
                v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h, n)))
            )
            v, n = builder.select(builder.fcmp_ordered(">", lo, hi), lo, hi), h
        return builder.extract_element(v, _I32(0))

    return types.float64(vec8), codegen


@intrinsic
def vstore_bytes(typingctx, arr, row, v):
    """``arr[row, 0:8] = v`` for a C-contiguous 2-D uint8 array with 8 columns (not
    checked), each lane a whole number in 0..255: one 8-byte store."""
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 2
        and arr.layout == "C"
        and arr.dtype == types.uint8
    ):
        raise TypeError("vstore_bytes writes rows of C-contiguous 2-D uint8 arrays (8 columns)")
    bytes8 = ir.VectorType(ir.IntType(8), _W)

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(
            context, builder, aryty, ary, [args[1], zero], wraparound=False
        )
        ptr = builder.bitcast(ptr, bytes8.as_pointer())
        builder.store(builder.fptoui(args[2], bytes8), ptr, align=1)
        return context.get_dummy_value()

    return types.none(arr, types.intp, vec8), codegen


@intrinsic
def vkeep_max(typingctx, best, cand):
    """Lane by lane, ``cand`` where it is strictly greater than ``best``, else ``best``
    (a running maximum in which ties keep the earlier value)."""

    def codegen(context, builder, sig, args):
        best, cand = args
        return builder.select(builder.fcmp_ordered(">", cand, best), cand, best)

    return vec8(vec8, vec8), codegen


@intrinsic
def vkeep_arg(typingctx, arg, best, cand, i):
    """Lane by lane, the index ``i`` where ``cand`` is strictly greater than ``best``,
    else ``arg``: the argument of :func:`vkeep_max` (call it first, with the old
    ``best``)."""

    def codegen(context, builder, sig, args):
        arg, best, cand, i = args
        greater = builder.fcmp_ordered(">", cand, best)
        return builder.select(greater, _splat(builder, i), arg)

    return vec8(vec8, vec8, vec8, types.float64), codegen


_LOG2E = 1.4426950408889634
# ln 2 in two parts: i * _LN2_HI is exact for |i| < 2**21, so r is exact to 1 ulp.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_FACT = [1.0]
for _j in range(1, 13):
    _INV_FACT.append(_INV_FACT[-1] / _j)


@intrinsic
def vexp(typingctx, x, lo):
    """``exp(x)`` of each lane for ``x <= 0`` (``-inf`` allowed), exactly zero where
    ``x < lo``: the algorithm of :func:`latentem.kernels.scaling.exp_shifted`
    (2**i exp(r) with |r| <= ln(2) / 2, a degree-12 Taylor polynomial), on all lanes
    at once."""

    def codegen(context, builder, sig, args):
        v, low = args

        def c(value):
            return ir.Constant(_VT, [value] * _W)

        flags = ("contract",)  # no reassociation: it would undo the two-part ln 2
        small = builder.fcmp_ordered("<", v, c(-700.0))
        y = builder.select(small, c(-700.0), v)
        t = builder.fadd(builder.fmul(y, c(_LOG2E), flags=flags), c(0.5), flags=flags)
        floor = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VT, [_VT]), "llvm.floor.v8f64"
        )
        i = builder.call(floor, [t])
        r = builder.fsub(y, builder.fmul(i, c(_LN2_HI), flags=flags), flags=flags)
        r = builder.fsub(r, builder.fmul(i, c(_LN2_LO), flags=flags), flags=flags)
        p = c(_INV_FACT[12])
        for j in range(11, -1, -1):
            p = builder.fadd(builder.fmul(p, r, flags=flags), c(_INV_FACT[j]), flags=flags)
        i64 = ir.VectorType(ir.IntType(64), _W)
        bits = builder.add(builder.fptosi(i, i64), ir.Constant(i64, [1023] * _W))
        two_i = builder.bitcast(builder.shl(bits, ir.Constant(i64, [52] * _W)), _VT)
        e = builder.fmul(p, two_i, flags=flags)
        return builder.select(builder.fcmp_ordered("<", v, _splat(builder, low)), c(0.0), e)

    return vec8(vec8, types.float64), codegen
