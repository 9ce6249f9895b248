"""Loads and lane-by-lane choices on :mod:`latentem.kernels.vec8` vectors whose
lanes come from different rows, for the many-sequence HMM kernels of
:mod:`latentem.kernels.hmm_lanes` (each lane a different sequence) and for
rows narrower than 8.

A vector assembled by storing 8 scalars to memory and loading them back waits
for the stores to retire (the CPU cannot forward several small stores into one
wide load): about as long as a whole step of the recursion. These build the
vector in registers instead.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from latentem.kernels.vec8 import _I32, _VT, _W, vec8

__all__ = [
    "vchoose",
    "vchoose_gt",
    "vexponent",
    "vmantissa",
    "vrecip",
    "vgather",
    "vgather1",
    "vrow_part",
]


def _is_array(arr, ndim, dtype):
    # any layout: elements are addressed through the strides
    return isinstance(arr, types.Array) and arr.ndim == ndim and arr.dtype == dtype


def _lane_rows(context, builder, rowsty, rows):
    """The 8 int64 entries of ``rows``, as LLVM values."""
    rws = context.make_array(rowsty)(context, builder, rows)
    out = []
    for lane in range(_W):
        idx = context.get_constant(types.intp, lane)
        ptr = cgutils.get_item_pointer(context, builder, rowsty, rws, [idx], wraparound=False)
        out.append(builder.load(ptr))
    return out


@intrinsic
def vgather(typingctx, arr, rows, col):
    """Lane l: ``arr[rows[l], col]`` (``arr`` 2-D float64, ``rows`` int64 with 8
    entries, all valid rows: not checked)."""
    if not (_is_array(arr, 2, types.float64) and _is_array(rows, 1, types.int64)):
        raise TypeError("vgather reads a float64 matrix at 8 int64 rows")

    def codegen(context, builder, sig, args):
        aryty, rowsty, _ = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        v = ir.Constant(_VT, ir.Undefined)
        for lane, r in enumerate(_lane_rows(context, builder, rowsty, args[1])):
            ptr = cgutils.get_item_pointer(
                context, builder, aryty, ary, [r, args[2]], wraparound=False
            )
            v = builder.insert_element(v, builder.load(ptr), _I32(lane))
        return v

    return vec8(arr, rows, types.intp), codegen


@intrinsic
def vgather1(typingctx, arr, rows):
    """Lane l: ``arr[rows[l]]`` (``arr`` 1-D float64, ``rows`` int64 with 8 entries)."""
    if not (_is_array(arr, 1, types.float64) and _is_array(rows, 1, types.int64)):
        raise TypeError("vgather1 reads a float64 vector at 8 int64 indices")

    def codegen(context, builder, sig, args):
        aryty, rowsty = sig.args
        ary = context.make_array(aryty)(context, builder, args[0])
        v = ir.Constant(_VT, ir.Undefined)
        for lane, r in enumerate(_lane_rows(context, builder, rowsty, args[1])):
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [r], wraparound=False)
            v = builder.insert_element(v, builder.load(ptr), _I32(lane))
        return v

    return vec8(arr, rows), codegen


@intrinsic
def vrow_part(typingctx, arr, row, n):
    """``arr[row, 0:n]`` padded with zeros to 8 lanes (``arr`` 2-D float64 with
    ``1 <= n <= 8`` columns; reads nothing past the row)."""
    if not _is_array(arr, 2, types.float64):
        raise TypeError("vrow_part reads a row of a float64 matrix")

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        last = builder.sub(args[2], context.get_constant(types.intp, 1))
        v = ir.Constant(_VT, ir.Undefined)
        for lane in range(_W):
            idx = context.get_constant(types.intp, lane)
            inside = builder.icmp_signed("<", idx, args[2])
            col = builder.select(inside, idx, last)  # a column that exists
            ptr = cgutils.get_item_pointer(
                context, builder, aryty, ary, [args[1], col], wraparound=False
            )
            x = builder.select(inside, builder.load(ptr), ir.Constant(ir.DoubleType(), 0.0))
            v = builder.insert_element(v, x, _I32(lane))
        return v

    return vec8(arr, types.intp, types.intp), codegen


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
def vchoose_gt(typingctx, x, y, a, b):
    """Lane by lane, ``a`` where ``x > y``, else ``b``: :func:`latentem.kernels.vec8.vkeep_arg`
    with the index as a vector (read from memory, not converted and broadcast each time)."""

    def codegen(context, builder, sig, args):
        x, y, a, b = args
        return builder.select(builder.fcmp_ordered(">", x, y), a, b)

    return vec8(vec8, vec8, vec8, vec8), codegen


_I64 = ir.VectorType(ir.IntType(64), _W)


@intrinsic
def vexponent(typingctx, x):
    """Lane by lane, the binary exponent of ``x`` as a float: ``e`` with
    ``x = m 2**e``, ``1 <= m < 2`` (positive normal ``x``; -1023 for 0 and subnormals)."""

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], _I64)
        e = builder.and_(
            builder.lshr(bits, ir.Constant(_I64, [52] * _W)), ir.Constant(_I64, [0x7FF] * _W)
        )
        return builder.sitofp(builder.sub(e, ir.Constant(_I64, [1023] * _W)), _VT)

    return vec8(vec8), codegen


@intrinsic
def vmantissa(typingctx, x):
    """Lane by lane, ``m`` of :func:`vexponent` (positive normal ``x``): ``x / 2**e``,
    exactly."""

    def codegen(context, builder, sig, args):
        bits = builder.bitcast(args[0], _I64)
        m = builder.and_(bits, ir.Constant(_I64, [(1 << 52) - 1] * _W))
        return builder.bitcast(builder.or_(m, ir.Constant(_I64, [0x3FF << 52] * _W)), _VT)

    return vec8(vec8), codegen


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
