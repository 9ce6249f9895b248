"""numba kernels: plain functions on arrays, each with a NumPy version for small inputs.

See :mod:`latentem.kernels._dispatch` for how the two are chosen.
"""

from latentem.kernels._dispatch import Kernel, small_rows

__all__ = ["Kernel", "small_rows"]
