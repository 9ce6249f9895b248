"""The one list of latentem's named classes: what model files, the command line
and the model graph may build.

A class takes part by registering itself once, where it is defined::

    @register(kind="family", fitted=("lambdas_",), cli="poisson")
    class PoissonFamily(EmissionFamily): ...

* **model files** (:mod:`latentem.persistence`) write the registered name and
  the ``fitted`` attributes, and on loading build only registered classes
  (a file never names a module or imports code);
* the **command line** offers every family with a ``cli`` name as
  ``latentem fit --model hmm --emission NAME`` (and ``--model mixture``);
* the **model graph** saves a family node built from a registered family
  (:class:`latentem.Family`) and rebuilds it from its name.

Your own family or model registers the same way, with
:func:`latentem.register_family` (a family) or
:func:`latentem.persistence.register_class` (a class with ``_to_state`` /
``_from_state``), in the program that saves *and* in the one that loads.

Examples
--------
>>> from latentem.registry import entries, entry
>>> entry("PoissonFamily").fitted
('lambdas_',)
>>> "gaussian" in [e.cli for e in entries(kind="family")]
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Entry", "entries", "entry", "entry_for", "family_for_cli", "register", "unregister"]

KINDS = ("model", "family", "latent")


@dataclass(frozen=True)
class Entry:
    """How one class is saved and built.

    Attributes
    ----------
    cls : type
        The class.
    name : str
        The name written into model files.
    kind : {"model", "family", "latent"}
        An estimator, an emission family or a latent structure.
    fitted : tuple of str
        Attributes holding fitted state, saved next to the constructor
        parameters.
    finish : str or None
        A method called after loading, which rebuilds derived state (Cholesky
        factors, caches) and checks the loaded values.
    skip_params : tuple of str
        Constructor parameters saved as fitted state instead.
    cli : str or None
        The family's name on the command line (``--emission NAME``).
    """

    cls: type
    name: str
    kind: str = "model"
    fitted: tuple[str, ...] = ()
    finish: str | None = None
    skip_params: tuple[str, ...] = ()
    cli: str | None = None


_ENTRIES: dict[str, Entry] = {}


def register(
    cls: type | None = None,
    *,
    name: str | None = None,
    kind: str = "model",
    fitted: tuple[str, ...] = (),
    finish: str | None = None,
    skip_params: tuple[str, ...] = (),
    cli: str | None = None,
    replace: bool = False,
) -> Any:
    """Register ``cls`` (usable as a class decorator, with or without arguments).

    Parameters are those of :class:`Entry`; ``name`` defaults to the class
    name. A name can be registered once, unless ``replace=True`` (for a
    class defined again, say in a notebook). Returns the class.
    """

    def add(c: type) -> type:
        key = c.__name__ if name is None else name
        if not isinstance(key, str) or not key:
            raise ValueError(f"a registered name must be a non-empty string; got {key!r}.")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
        old = _ENTRIES.get(key)
        if old is not None and old.cls is not c and not replace:
            raise ValueError(
                f"the name {key!r} is already registered for {old.cls.__module__}."
                f"{old.cls.__qualname__}; register {c.__qualname__} under another name "
                "(or pass replace=True to redefine your own class)."
            )
        if cli is not None:
            clash = [e for e in _ENTRIES.values() if e.cli == cli and e.name != key]
            if clash:
                raise ValueError(
                    f"the command-line name {cli!r} is taken by {clash[0].name}; choose another."
                )
        _ENTRIES[key] = Entry(c, key, kind, tuple(fitted), finish, tuple(skip_params), cli)
        return c

    return add if cls is None else add(cls)


def _builtins() -> None:
    """Import latentem's own classes, which register themselves where they are defined.

    ``import latentem`` loads its models on first use, so a file can name a
    built-in class that nothing has imported yet.
    """
    import latentem

    latentem._import_all()


def entry(name: str) -> Entry | None:
    """The entry registered under ``name``, or None."""
    if name not in _ENTRIES:
        _builtins()
    return _ENTRIES.get(name)


def entry_for(cls: type) -> Entry | None:
    """The entry of exactly this class (not of a base class), or None."""
    for e in _ENTRIES.values():
        if e.cls is cls:
            return e
    return None


def entries(kind: str | None = None) -> list[Entry]:
    """All entries (of one kind), sorted by name."""
    _builtins()
    return sorted(
        (e for e in _ENTRIES.values() if kind is None or e.kind == kind), key=lambda e: e.name
    )


def family_for_cli(cli: str) -> Entry:
    """The family offered on the command line as ``cli``; ValueError naming the choices."""
    _builtins()
    for e in _ENTRIES.values():
        if e.kind == "family" and e.cli == cli:
            return e
    names = sorted(e.cli for e in _ENTRIES.values() if e.kind == "family" and e.cli)
    raise ValueError(f"unknown emission family {cli!r}; choose one of {', '.join(names)}.")


def unregister(name: str) -> None:
    """Remove a registration (tests, notebooks); unknown names are ignored."""
    _ENTRIES.pop(name, None)
