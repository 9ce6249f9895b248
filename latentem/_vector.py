"""The flat parameter vector that SQUAREM extrapolates, built from named arrays.

A model lists its parameter arrays as ``(holder, attribute, is_simplex)``;
simplex arrays (probabilities along the last axis) must stay non-negative
and are renormalised after extrapolation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Part = tuple[Any, str, bool]


def get_vector(parts: Sequence[Part]) -> np.ndarray:
    """All listed arrays, flattened and concatenated in order."""
    return np.concatenate(
        [np.asarray(getattr(h, a), dtype=np.float64).ravel() for h, a, _ in parts]
    )


def set_vector(parts: Sequence[Part], theta: np.ndarray, check: Callable[[], None]) -> bool:
    """Set the arrays from ``theta``; ``check()`` raises ValueError for an infeasible point.

    Returns False, with every array restored, when ``theta`` has the wrong
    size, is not finite, leaves a simplex, or fails ``check()``.
    """
    old = [np.array(getattr(h, a), dtype=np.float64, copy=True) for h, a, _ in parts]
    theta = np.asarray(theta, dtype=np.float64)
    feasible = theta.shape == (sum(o.size for o in old),) and bool(np.all(np.isfinite(theta)))
    offset = 0
    if feasible:
        for (holder, attr, simplex), before in zip(parts, old):
            value = theta[offset : offset + before.size].reshape(before.shape)
            offset += before.size
            if simplex:
                totals = value.sum(axis=-1, keepdims=True)
                if (value < 0).any() or not (totals > 0).all():
                    feasible = False
                    break
                value = value / totals
            setattr(holder, attr, value)
    if feasible:
        try:
            check()
            return True
        except ValueError:
            pass
    for (holder, attr, _), before in zip(parts, old):
        setattr(holder, attr, before)
    check()
    return False


def family_parts(family: Any, node_name: str) -> list[Part]:
    """The parts of an emission family, from its ``vector_attributes``."""
    names = getattr(family, "vector_attributes", None)
    if names is None:
        raise ValueError(
            f"{node_name}: {type(family).__name__} has no vector_attributes, so "
            'accelerate="squarem" cannot extrapolate it; use accelerate=None.'
        )
    simplex = getattr(family, "simplex_attributes", ())
    return [(family, a, a in simplex) for a in names]
