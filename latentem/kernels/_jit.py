"""numba's ``njit`` and ``prange``, imported only when a kernel first runs compiled.

Importing numba costs about half a second, and small inputs never need it:
they run the NumPy versions of the kernels (see :mod:`latentem.kernels._dispatch`).
So the kernel modules decorate with this module's :func:`njit`, which only
records the function and its options. The first call (or the first look at an
attribute numba provides, such as ``py_func``) imports numba and makes the real
dispatcher. Before that, every placeholder in the kernel's module is swapped
for the real thing: other lazy kernels it calls, :data:`prange`, and names
bound with :func:`lazy_names` (numba intrinsics such as :mod:`latentem.kernels.vec8`),
because numba reads a kernel's globals when it compiles it. The compiled code,
numba's cache and the numbers are exactly those of a plain ``numba.njit``.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["njit", "prange", "lazy_names", "LazyJit"]

_lock = threading.RLock()
_realised_modules: set[str] = set()


class _PrangePlaceholder:
    """Stands for ``numba.prange`` until the module's kernels are made."""

    def __call__(self, *args: int) -> range:  # only reached when the kernel runs uncompiled
        return range(*args)

    def __repr__(self) -> str:
        return "<latentem placeholder for numba.prange>"


prange = _PrangePlaceholder()


class _LazyName:
    """A module-level name whose value is ``getattr(import_module(module), name)``, later."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def resolve(self) -> Any:
        return getattr(importlib.import_module(self.module), self.name)

    def __repr__(self) -> str:
        return f"<latentem lazy name {self.module}.{self.name}>"


def lazy_names(module: str, *names: str) -> tuple[_LazyName, ...]:
    """Placeholders for ``from module import names``, resolved when kernels are made."""
    return tuple(_LazyName(module, name) for name in names)


class LazyJit:
    """A kernel written for ``numba.njit(**options)``, made on first use."""

    def __init__(self, py_func: Callable, options: dict[str, Any]) -> None:
        self._py_func = py_func
        self._options = options
        self._made: Any = None  # the dispatcher, once made
        self._dispatcher: Any = None  # the same, once its module's names are swapped
        functools.update_wrapper(self, py_func)

    def real(self) -> Any:
        """The numba dispatcher (numba is imported and the module's names swapped first)."""
        if self._dispatcher is None:
            with _lock:
                _realise_module(self._py_func.__module__)
                if self._dispatcher is None:  # not bound by name in its module
                    self._dispatcher = self._make()
        return self._dispatcher

    def _make(self) -> Any:
        if self._made is None:
            import numba

            from latentem.kernels._dispatch import install_compile_notice

            install_compile_notice()
            self._made = numba.njit(**self._options)(self._py_func)
        return self._made

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return (self._dispatcher or self.real())(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.real(), name)

    def __reduce__(self) -> tuple:
        # by reference, as numba's own dispatchers pickle for Dask workers
        return (_module_attribute, (self.__module__, self.__name__))

    def __repr__(self) -> str:
        state = "made" if self._dispatcher is not None else "not yet made"
        return f"<latentem kernel {self.__module__}.{self.__name__} ({state})>"


def _module_attribute(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` with the import of numba put off until the kernel is first used."""
    if args and callable(args[0]) and not options:
        return LazyJit(args[0], {})
    return lambda fn: LazyJit(fn, options)


def _realise_module(module_name: str) -> None:
    """Swap every placeholder in a kernel module's globals for the real object.

    numba resolves a kernel's globals when it compiles it: callees must be
    dispatchers, ``prange`` must be numba's. Runs once per module, under the
    lock. The module's own dispatchers are published (``_dispatcher``) only
    after every name is swapped, so another thread never compiles a kernel of
    a half-swapped module; callees in other modules are made (and their
    modules swapped) first.
    """
    if module_name in _realised_modules:
        return
    _realised_modules.add(module_name)
    import numba

    namespace = sys.modules[module_name].__dict__
    own = []
    for name, value in list(namespace.items()):
        if value is prange:
            namespace[name] = numba.prange
        elif isinstance(value, LazyJit):
            if value._py_func.__module__ == module_name:
                namespace[name] = value._make()
                own.append(value)
            else:
                namespace[name] = value.real()
        elif isinstance(value, _LazyName):
            namespace[name] = value.resolve()
    for kernel in own:
        kernel._dispatcher = kernel._made
