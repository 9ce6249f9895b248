"""Which classes a model file may name, and under which names: the lookup of a saved
name in :mod:`latentem.registry` (and the hand-written :data:`SAVEABLE_CLASSES`),
:func:`register_class` for a program's own classes with ``_to_state`` /
``_from_state``, and the name written for an object. A file names classes; it never
imports them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Spec:
    """How one class is saved: where it lives, its fitted attributes, its finishing step."""

    module: str
    name: str
    fitted: tuple[str, ...] = ()
    finish: str | None = None  # a method called after the attributes are restored
    skip_params: tuple[str, ...] = ()  # constructor parameters saved as fitted state


#: Classes a model file may name that are not in :mod:`latentem.registry`, by their
#: saved name. latentem's own classes register themselves where they are defined
#: (``@register``); this table is for entries added by hand.
SAVEABLE_CLASSES: dict[str, _Spec] = {}


def _spec(name: str) -> Any:
    """The saving recipe for ``name``: a registry entry or a :data:`SAVEABLE_CLASSES` spec."""
    from latentem import registry

    found = registry.entry(name)
    return found if found is not None else SAVEABLE_CLASSES.get(name)


def _known_names() -> str:
    from latentem import registry

    return ", ".join(sorted({e.name for e in registry.entries()} | set(SAVEABLE_CLASSES)))


#: Classes registered at run time by the program itself (never by a file).
_RUNTIME_CLASSES: dict[str, type] = {}


def register_class(cls: type, name: str | None = None) -> type:
    """Allow instances of ``cls`` (your own model or family) in model files.

    ``cls`` must have ``_to_state(self) -> dict`` and a class method
    ``_from_state(cls, state)``. The program that loads the file must
    register the same class under the same name first: files name classes,
    they never import them. Usable as a decorator.

    Parameters
    ----------
    cls : type
        The class.
    name : str, optional
        The name written into files; defaults to ``cls.__qualname__``.

    Returns
    -------
    cls

    Examples
    --------
    >>> import os, tempfile
    >>> from latentem.persistence import load, register_class, save
    >>> @register_class
    ... class Threshold:
    ...     def __init__(self, cut):
    ...         self.cut = cut
    ...     def _to_state(self):
    ...         return {"cut": self.cut}
    ...     @classmethod
    ...     def _from_state(cls, state):
    ...         return cls(state["cut"])
    >>> path = os.path.join(tempfile.mkdtemp(), "threshold.lem")
    >>> save(Threshold(2.5), path)
    >>> load(path).cut
    2.5
    """
    name = cls.__qualname__ if name is None else name
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}.")
    if _spec(name) is not None:
        raise ValueError(f"{name!r} is a latentem class name; register yours under another name.")
    if not (
        callable(getattr(cls, "_to_state", None)) and callable(getattr(cls, "_from_state", None))
    ):
        raise ValueError(
            f"{cls.__name__} needs _to_state(self) -> dict and a classmethod "
            "_from_state(cls, state) to be saved in model files."
        )
    _RUNTIME_CLASSES[name] = cls
    return cls


def _class_for(name: str) -> type:
    if name in _RUNTIME_CLASSES:
        return _RUNTIME_CLASSES[name]
    spec = _spec(name)
    if spec is None:
        raise ValueError(
            f"the model file names the class {name!r}, which this latentem does not know: "
            "if your program defined it, register the same class under the same name before "
            "loading (latentem.register_family for an emission family, "
            "latentem.persistence.register_class otherwise); it may also come from a newer "
            f"latentem. This one loads {_known_names()}."
        )
    cls = getattr(spec, "cls", None)
    return cls if cls is not None else getattr(importlib.import_module(spec.module), spec.name)


def _name_for(obj: Any) -> str | None:
    cls = type(obj)
    for name, registered in _RUNTIME_CLASSES.items():
        if cls is registered:
            return name
    from latentem import registry

    found = registry.entry_for(cls)
    if found is not None:
        return found.name
    spec = SAVEABLE_CLASSES.get(cls.__name__)
    if spec is not None and cls.__module__ == spec.module:
        return cls.__name__
    return None
