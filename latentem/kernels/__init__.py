"""Numba kernels: plain functions on arrays (see each module's docstring)."""
