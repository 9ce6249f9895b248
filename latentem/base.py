"""Small pieces shared by the estimator classes (scikit-learn style, no scikit-learn import)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from latentem._sklearn import (
    NotFittedError,
    SklearnProtocol,
    convergence_warning_class,
    not_fitted_error,
)

__all__ = [
    "ParamsMixin",
    "InitParamsSetting",
    "NotFittedError",
    "not_fitted_error",
    "convergence_warning_class",
]


class ParamsMixin(SklearnProtocol):
    """``get_params`` / ``set_params`` / ``repr`` from the ``__init__`` signature,
    and scikit-learn's tags and HTML repr (see :mod:`latentem._sklearn`).

    The constructor must store each argument unchanged under its own name, as
    scikit-learn requires, so that ``clone``, ``GridSearchCV`` and
    ``Pipeline`` work; checking the values is ``fit``'s job.

    An estimator used before ``fit`` raises ``not_fitted_error(self)``.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments of this estimator, by name."""
        return {name: _plain(getattr(self, name)) for name in self._param_names()}

    def set_params(self, **params: Any) -> ParamsMixin:
        """Set constructor arguments by name; returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid parameters: "
                    f"{', '.join(valid)}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        changed = []
        for name in self._param_names():
            default = sig.parameters[name].default
            value = _plain(getattr(self, name))
            if default is inspect.Parameter.empty or not _same(value, default):
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"


def _plain(value: Any) -> Any:
    # The stored string itself, so scikit-learn's clone sees the very same object.
    return value._raw if isinstance(value, (_CallableSetting, _BadSetting)) else value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a is b or a == b)
    except (ValueError, TypeError):  # arrays compare element-wise
        return False


class _CallableSetting(str):
    """A setting string that can also be called (see :class:`InitParamsSetting`)."""

    _call: Callable[..., Any]
    _raw: str

    def __new__(cls, value: str, call: Callable[..., Any]) -> _CallableSetting:
        obj = super().__new__(cls, value)
        obj._call = call
        obj._raw = value
        return obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)


class _BadSetting:
    """A setting that is not a string: reads as the value given, and raises the
    ValueError when fitting calls it (scikit-learn checks settings in fit)."""

    def __init__(self, value: Any) -> None:
        self._raw = value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"init_params must be a string; got {self._raw!r}.")

    def __str__(self) -> str:
        return repr(self._raw)

    def __repr__(self) -> str:
        return repr(self._raw)

    def __eq__(self, other: Any) -> bool:
        return _same(self._raw, other)

    __hash__ = None  # type: ignore[assignment]


class InitParamsSetting:
    """Lets ``init_params`` be both scikit-learn's setting and the protocol method.

    scikit-learn and hmmlearn users know ``init_params`` as a constructor
    setting (``"kmeans++"``, ``"stmc"``); the EM protocol calls
    ``model.init_params(X, rng)``. With this descriptor,
    ``model.init_params`` reads as the setting string (it *is* a ``str``) and
    calling it runs the class's ``_init_params(X, rng)``.

    Examples
    --------
    >>> class Model:
    ...     init_params = InitParamsSetting()
    ...     def __init__(self, init_params="random"):
    ...         self.init_params = init_params
    ...     def _init_params(self, X, rng):
    ...         return f"initialised by {self.init_params}"
    >>> m = Model()
    >>> m.init_params == "random", m.init_params(None, None)
    (True, 'initialised by random')
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name + "_setting"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__.get(self._slot, "")
        if not isinstance(value, str):  # stored as given; using it is the error
            return _BadSetting(value)
        return _CallableSetting(value, obj._init_params)

    def __set__(self, obj: Any, value: Any) -> None:
        # stored unchanged, as scikit-learn requires; the model's fit checks it
        obj.__dict__[self._slot] = value
