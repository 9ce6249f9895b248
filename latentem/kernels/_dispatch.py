"""Choosing between a compiled kernel and its NumPy version by the size of the input.

Compiling the numba kernels takes about a minute on a small machine, once per
environment (the result is cached, see ``NUMBA_CACHE_DIR`` in the scaling
guide). Most of it goes to LLVM optimising the fused, unrolled loops of the big
kernels; a serial numba variant compiles barely faster than a parallel one. A
first fit on a few hundred rows should not wait for that, and does not need
it: vectorised NumPy handles such inputs in milliseconds per iteration. So
each public kernel is a :class:`Kernel`: inputs of at most :data:`small_rows`
rows run its NumPy version (``kernel.numpy``), larger ones the compiled one
(``kernel.jit``), which is compiled, or loaded from the cache, on first use.
Both compute the same numbers (the tests compare them on random inputs and
through whole fits).

The threshold is read from the environment variable ``LATENTEM_SMALL_ROWS``
(default 1000; ``0`` always uses the compiled kernels) and can be changed for
a block of code with :func:`small_rows`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Kernel", "small_rows", "SMALL_ROWS_DEFAULT"]

SMALL_ROWS_DEFAULT = 1000


def _from_env() -> int:
    raw = os.environ.get("LATENTEM_SMALL_ROWS", "")
    if not raw.strip():
        return SMALL_ROWS_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"LATENTEM_SMALL_ROWS must be a whole number of rows (0 always compiles); got {raw!r}."
        ) from None
    return max(value, 0)


#: Inputs with at most this many rows use the NumPy kernels.
_limit = [_from_env()]


@contextlib.contextmanager
def small_rows(n: int) -> Iterator[None]:
    """Use the NumPy kernels for inputs of at most ``n`` rows inside the block.

    ``small_rows(0)`` runs everything compiled; ``small_rows(10**9)``
    runs everything in NumPy (where a NumPy version exists).

    Examples
    --------
    >>> import numpy as np
    >>> from latentem.kernels import small_rows
    >>> from latentem.kernels.discrete import categorical_logprob
    >>> log_e = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> with small_rows(100):
    ...     categorical_logprob(np.array([0, 1, -1]), log_e)
    array([[-0.69314718, -0.10536052],
           [-0.69314718, -2.30258509],
           [ 0.        ,  0.        ]])
    """
    if int(n) < 0:
        raise ValueError(f"small_rows takes a number of rows >= 0; got {n}.")
    before = _limit[0]
    _limit[0] = int(n)
    try:
        yield
    finally:
        _limit[0] = before


class Kernel:
    """A compiled kernel with a NumPy version for small inputs.

    Calling it runs ``numpy(*args)`` when ``args[arg]`` has at most the current
    number of small rows (see :func:`small_rows`), otherwise ``jit(*args)``.
    Both take the same arguments and return the same results. Compiled calls on
    fewer than :data:`SERIAL_SIZE` elements of ``args[arg]`` run on one thread
    (the results do not depend on the number of threads). With ``arg=None``
    a call always runs the compiled version (``kernel.numpy`` stays available);
    with ``max_cols``, so do inputs whose last dimension is larger (where the NumPy
    version would need large temporaries).
    """

    def __init__(
        self, jit: Any, numpy: Callable | None, arg: int | None = 0, max_cols: int | None = None
    ) -> None:
        self.jit = jit
        self.numpy = numpy
        self.arg = arg
        self.max_cols = max_cols
        self.__name__ = jit.__name__.removesuffix("_jit")
        self.__qualname__ = self.__name__
        self.__doc__ = jit.__doc__
        self.__module__ = jit.__module__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.arg is None:
            return self.jit(*args, **kwargs)
        a = args[self.arg]
        if (
            self.numpy is not None
            and a.shape[0] <= _limit[0]
            and (self.max_cols is None or a.shape[-1] <= self.max_cols)
        ):
            return self.numpy(*args, **kwargs)
        if a.size < SERIAL_SIZE:
            return _on_one_thread(self.jit, args, kwargs)
        return self.jit(*args, **kwargs)

    def runs_numpy(self, n_rows: int) -> bool:
        """Whether an input of ``n_rows`` rows runs the NumPy version."""
        return self.arg is not None and self.numpy is not None and n_rows <= _limit[0]

    def __repr__(self) -> str:
        return f"<latentem kernel {self.__module__}.{self.__name__}>"


#: Compiled kernels whose sizing argument has fewer elements than this run on one
#: numba thread: a call then takes tens of microseconds, about what waking a
#: second thread costs on a quiet machine, and far less than waiting for a
#: descheduled one on a busy machine (the per-iteration cost of small HMMs fell
#: several-fold). The setting is per Python thread, so Dask's threads are unaffected.
SERIAL_SIZE = 65_536


def _on_one_thread(fn: Callable, args: tuple, kwargs: dict) -> Any:
    with _one_numba_thread():
        return fn(*args, **kwargs)


@contextlib.contextmanager
def _one_numba_thread() -> Iterator[None]:
    import numba

    before = numba.get_num_threads()
    if before == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextlib.contextmanager
def serial_when_small(work: int, n_rows: int, threshold: int) -> Iterator[None]:
    """Compiled kernels in the block run on one numba thread when ``work < threshold``.

    A parallel region costs more than it saves on small work. Inputs small
    enough for the NumPy kernels use no threads, so numba is not imported for them.
    """
    if work >= threshold or n_rows <= _limit[0]:
        yield
        return
    with _one_numba_thread():
        yield


# ---------------------------------------------------------------- compile notice
_NOTICE = (
    "latentem: compiling its kernels for this machine, once (a minute or so); "
    "later runs load them from the cache.\n"
)
_noticed = [False]


_notice_installed = [False]


def install_compile_notice() -> None:
    """Print :data:`_NOTICE` on a terminal when a latentem kernel starts compiling.

    Installed when the first kernel is made (numba is imported then, not with
    latentem). numba fires its ``numba:compile`` event only on a cache miss, so loading
    cached kernels stays silent. Once per process, and only when stderr is a
    terminal (never in logs, pipes or tests).
    """
    if _notice_installed[0]:
        return
    _notice_installed[0] = True
    from numba.core import event

    class _Notice(event.Listener):
        def on_start(self, ev: Any) -> None:
            if _noticed[0]:
                return
            disp = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
            module = getattr(getattr(disp, "py_func", None), "__module__", "") or ""
            if not module.startswith("latentem."):
                return
            _noticed[0] = True
            stream = sys.stderr
            try:
                if stream is not None and stream.isatty():
                    stream.write(_NOTICE)
                    stream.flush()
            except (AttributeError, ValueError, OSError):
                pass

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", _Notice())
