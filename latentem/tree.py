"""Helpers over sufficient-statistics trees.

A stats tree is any nesting of tuples, lists and dicts whose leaves are
numpy arrays or numbers. Because EM statistics are additive over the data,
these few operations are all that splitting work across threads, chunks or
machines needs.

Examples
--------
>>> import numpy as np
>>> from latentem import tree
>>> a = {"n": 2.0, "s": np.array([1.0, 2.0])}
>>> b = {"n": 3.0, "s": np.array([0.5, 0.5])}
>>> tree.add(a, b)
{'n': 5.0, 's': array([1.5, 2.5])}
>>> tree.scale(a, 0.5)["s"]
array([0.5, 1. ])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["map", "add", "scale", "zeros_like", "sum", "leaves", "allclose"]


def map(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:  # noqa: A001
    """Apply ``fn`` leaf by leaf to one or more trees of the same structure."""
    if isinstance(tree, dict):
        for other in rest:
            if not isinstance(other, dict) or other.keys() != tree.keys():
                raise ValueError(
                    f"stats trees differ: dict keys {sorted(tree)} vs "
                    f"{sorted(other) if isinstance(other, dict) else type(other).__name__}"
                )
        return {k: map(fn, tree[k], *(o[k] for o in rest)) for k in tree}
    if isinstance(tree, (tuple, list)):
        for other in rest:
            if type(other) is not type(tree) or len(other) != len(tree):
                size = len(other) if hasattr(other, "__len__") else 0
                raise ValueError(
                    f"stats trees differ: {type(tree).__name__} of length {len(tree)} vs "
                    f"{type(other).__name__} of length {size}"
                )
        items = [map(fn, *parts) for parts in zip(tree, *rest)]
        return tuple(items) if isinstance(tree, tuple) else items
    return fn(tree, *rest)


def add(a: Any, b: Any) -> Any:
    """Leaf-wise sum of two stats trees (new arrays; the inputs are not changed)."""
    return map(lambda x, y: x + y, a, b)


def scale(a: Any, factor: float) -> Any:
    """Multiply every leaf by ``factor``."""
    return map(lambda x: x * factor, a)


def zeros_like(a: Any) -> Any:
    """A tree of the same structure with every leaf zero."""
    return map(lambda x: np.zeros_like(x) if isinstance(x, np.ndarray) else type(x)(0), a)


def sum(trees: Iterable[Any]) -> Any:  # noqa: A001
    """Sum an iterable of stats trees in the order given (a fixed, reproducible order)."""
    it = iter(trees)
    try:
        total = next(it)
    except StopIteration:
        raise ValueError("cannot sum an empty sequence of stats trees") from None
    total = map(lambda x: np.array(x, copy=True) if isinstance(x, np.ndarray) else x, total)
    for t in it:
        total = add(total, t)
    return total


def leaves(a: Any) -> list[Any]:
    """The leaves of a tree, depth first, dict entries in insertion order."""
    out: list[Any] = []
    map(out.append, a)
    return out


def allclose(a: Any, b: Any, rtol: float = 1e-9, atol: float = 0.0) -> bool:
    """True when two trees have the same structure and every leaf is close."""
    return all(leaves(map(lambda x, y: bool(np.allclose(x, y, rtol=rtol, atol=atol)), a, b)))
