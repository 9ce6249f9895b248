"""Objects to and from their saved state: a saveable object becomes its class name,
constructor parameters and fitted attributes (or its own ``_to_state``), and the
tree of JSON values, arrays and nested objects is encoded for ``meta.json`` /
``arrays.npz`` (:class:`_Encoder`) and decoded back into objects (:func:`_decode`),
each checked as it is built.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from latentem.persistence.checks import _check_loaded, _check_size, _finish
from latentem.persistence.classes import (
    _RUNTIME_CLASSES,
    _class_for,
    _known_names,
    _name_for,
    _spec,
)
from latentem.persistence.file_format import _ARRAYS, _UNSAFE_KEY, _plain_dtype


def _init_param_names(cls: type) -> list[str]:
    import inspect

    sig = inspect.signature(cls.__init__)
    return [
        p.name
        for p in sig.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _object_state(obj: Any, name: str) -> dict:
    if name in _RUNTIME_CLASSES or callable(getattr(obj, "_to_state", None)):
        return {"state": obj._to_state()}
    spec = _spec(name)
    if callable(getattr(obj, "get_params", None)):
        params = dict(obj.get_params(deep=False))
    else:
        params = {p: getattr(obj, p) for p in _init_param_names(type(obj))}
    for p in spec.skip_params:
        params.pop(p, None)
    dropped = []
    rs = params.get("random_state")
    if rs is not None and not isinstance(rs, (int, np.integer)):
        # A Generator's state is not portable; the fitted parameters do not depend on it.
        params["random_state"] = None
        dropped.append("random_state")
    fitted = {}
    for a in spec.fitted:
        if a in vars(obj):
            fitted[a] = vars(obj)[a]
        elif isinstance(getattr(type(obj), a, None), property) and getattr(obj, a) is not None:
            fitted[a] = getattr(obj, a)  # held by a part (an HMM's chain)
    state = {"params": params, "fitted": fitted}
    if dropped:
        state["dropped"] = dropped
    return state


def _object_from_state(name: str, state: dict) -> Any:
    cls = _class_for(name)
    if "state" in state:
        obj = cls._from_state(state["state"])
        _check_loaded(obj)
        return obj
    spec = _spec(name)
    params, fitted = state.get("params"), state.get("fitted")
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ValueError(f"the entry for {name} lacks its params or fitted state")
    unknown = set(fitted) - set(spec.fitted)
    if unknown:
        raise ValueError(f"unexpected fitted attributes for {name}: {sorted(unknown)}")
    if name == "CategoricalLatent":  # its constructor allocates n_components weights
        _check_size(params.get("n_components"), "n_components", fitted.get("weights_"))
    try:
        obj = cls(**params)
    except TypeError as exc:
        raise ValueError(
            f"the parameters saved for {name} do not fit this latentem: {exc}"
        ) from None
    for attr, value in fitted.items():
        setattr(obj, attr, value)
    if spec.finish is not None:
        _finish(obj, spec.finish)
    _check_loaded(obj)
    return obj


# ---------------------------------------------------------------------- tree encoding
class _Encoder:
    """JSON values stay; arrays go to ``arrays``; saveable objects nest."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, path: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (float, np.floating)):
            value = float(value)
            return value if math.isfinite(value) else {"$float": repr(value)}
        if isinstance(value, np.ndarray):
            if _plain_dtype(value.dtype) is None:
                raise ValueError(
                    f"cannot save {path}: arrays of dtype {value.dtype} are not portable; "
                    "model files hold arrays of numbers and booleans (save strings as a list)."
                )
            # entry names never look like paths, whatever the metadata's keys
            key = f"{len(self.arrays)}:{_UNSAFE_KEY.sub('_', path)}"
            self.arrays[key] = value
            return {"$array": key}
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str) or k.startswith("$"):
                    raise ValueError(
                        f"cannot save {path}: dictionary keys must be strings not starting "
                        f"with '$'; got {k!r}."
                    )
                out[k] = self.encode(v, f"{path}.{k}")
            return out
        name = _name_for(value)
        if name is None:
            raise ValueError(
                f"cannot save {path}: {type(value).__name__} objects are not saveable "
                f"(latentem saves {_known_names()}; register your own classes with "
                "latentem.register_family or latentem.persistence.register_class)."
            )
        state = _object_state(value, name)
        return {"$object": name, **self.encode(state, f"{path}<{name}>")}


def _decode(value: Any, arrays: Any, seen: set) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, seen) for v in value]
    if not isinstance(value, dict):
        return value
    if "$array" in value:
        key = value["$array"]
        if not isinstance(key, str) or key not in arrays:
            raise ValueError(f"array {key!r} is missing from {_ARRAYS}")
        if key in seen:
            raise ValueError(f"array {key!r} is used twice")
        seen.add(key)
        return arrays[key]
    if "$float" in value:
        text = value["$float"]
        if text not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {text!r}")
        return float(text)
    if "$tuple" in value:
        if not isinstance(value["$tuple"], list):
            raise ValueError("bad tuple entry")
        return tuple(_decode(v, arrays, seen) for v in value["$tuple"])
    if "$object" in value:
        name = value["$object"]
        if not isinstance(name, str):
            raise ValueError(f"bad class name {name!r}")
        rest = {k: _decode(v, arrays, seen) for k, v in value.items() if k != "$object"}
        return _object_from_state(name, rest)
    bad = [k for k in value if k.startswith("$")]
    if bad:
        raise ValueError(f"unknown entry {bad[0]!r} (written by a newer latentem?)")
    return {k: _decode(v, arrays, seen) for k, v in value.items()}
