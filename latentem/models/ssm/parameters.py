"""The parameters of a state-space model: names, shapes, structure, what is held fixed.

:data:`PARAMS` lists the eight parameters in the order of the SQUAREM vector.
:class:`_Parameters` is the part of :class:`LinearGaussianSSM` that knows their
shapes and covariance types, turns ``fixed`` into boolean masks of held entries
(and what the M-step needs from them), reads the starting values given to the
constructor, checks the current values, packs them into one vector for SQUAREM
and counts the free ones (:meth:`n_parameters`, for AIC and BIC).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from latentem.kernels import kalman_scalar as _flat  # by module: its dispatchers once made
from latentem.kernels.kalman_scalar import COV_DIAG, COV_FULL, COV_HELD, COV_SCALAR

__all__ = ["PARAMS", "COV_TYPES"]

#: The parameters, in the order of the SQUAREM vector, and their symbols.
PARAMS = (
    "transition_matrix",
    "transition_input",
    "observation_matrix",
    "observation_input",
    "transition_cov",
    "observation_cov",
    "initial_mean",
    "initial_cov",
)
_SYMBOL = dict(zip(PARAMS, ("A", "B", "C", "D", "Q", "R", "initial_mean", "initial_cov")))
COV_TYPES = ("full", "diag", "scalar")


_ATTRS = tuple(name + "_" for name in PARAMS)
_GET_ATTRS = operator.itemgetter(*_ATTRS)
#: The covariances set_param_vector checks: semi-definite (Q, P0) or definite (R).
_DEFINITE = {"transition_cov_": True, "observation_cov_": False, "initial_cov_": True}
_COV_CODE = {"full": COV_FULL, "diag": COV_DIAG, "scalar": COV_SCALAR}


def _sym(M: np.ndarray) -> np.ndarray:
    return 0.5 * (M + M.T)


def _definite(S: np.ndarray, semi: bool) -> bool:
    """Whether ``S`` is positive definite (``semi``: positive semi-definite, up to
    ``1e-10 (1 + max |S|)`` added to the diagonal), by a Cholesky factorisation; a 1 x 1
    ``S`` by its sign, which is the same test without its cost."""
    if S.shape == (1, 1):
        x = float(S[0, 0])
        return x + (1e-10 * (1.0 + abs(x)) if semi else 0.0) > 0.0
    tiny = 1e-10 * (1.0 + np.abs(S).max()) if semi and S.size else 0.0
    try:
        np.linalg.cholesky(S + tiny * np.eye(len(S)) if semi else S)
    except np.linalg.LinAlgError:
        return False
    return True


def _all(mask: np.ndarray) -> bool:
    """``mask.all()``; a small mask by Python's ``all``, at a quarter of the cost."""
    return bool(mask.all()) if mask.size > 32 else all(mask.flat)


def _any(mask: np.ndarray) -> bool:
    """``mask.any()``, as :func:`_all`."""
    return bool(mask.any()) if mask.size > 32 else any(mask.flat)


#: Where the covariances lie in the packed vector, per layout (:meth:`_Parameters._set_views`).
_CHECKS: dict[tuple, np.ndarray] = {}
#: ``(masks, held)`` per setting (:meth:`_Parameters._set_masks`).
_SETTINGS: dict[tuple, tuple[dict, dict]] = {}


class _Fitted:
    """A fitted parameter's attribute (``transition_matrix_`` and the others), kept in
    the instance's ``__dict__`` under its own name: assigning one marks the packed
    vector for :meth:`_Parameters._theta` to compare with the attributes again (our own
    writes of the views go to ``__dict__`` directly). Only these eight attributes pay
    for the check; a ``__setattr__`` would make every assignment pay."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(
                f"{type(obj).__name__!r} object has no attribute {self.name!r}"
            ) from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value
        obj.__dict__["_assigned"] = True

    def __delete__(self, obj: Any) -> None:
        try:
            del obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        obj.__dict__["_assigned"] = True


class _Parameters:
    """Shapes, structure, fixed entries and checks of the parameters (part of
    :class:`LinearGaussianSSM`)."""

    def _shapes(self, p: int, m: int) -> dict[str, tuple[int, ...]]:
        n = self.n_states
        return {
            "transition_matrix": (n, n),
            "transition_input": (n, m),
            "observation_matrix": (p, n),
            "observation_input": (p, m),
            "transition_cov": (n, n),
            "observation_cov": (p, p),
            "initial_mean": (n,),
            "initial_cov": (n, n),
        }

    def _cov_type(self, name: str) -> str:
        return {
            "transition_cov": self.transition_cov_type,
            "observation_cov": self.observation_cov_type,
        }.get(name, "full")

    def _fixed_masks(self, p: int, m: int) -> dict[str, np.ndarray]:
        """A boolean mask (True = held fixed) of every parameter's entries."""
        shapes = self._shapes(p, m)
        masks = {name: np.zeros(shape, dtype=bool) for name, shape in shapes.items()}
        diffuse = self._diffuse() is not None
        if diffuse:  # a diffuse start is not estimated
            held = ("initial_mean", "initial_cov")
            masks.update({name: np.ones(shapes[name], dtype=bool) for name in held})
        spec = self.fixed
        if spec is None:
            return masks
        if isinstance(spec, str):
            spec = [spec]
        items = spec.items() if isinstance(spec, dict) else ((name, True) for name in spec)
        for name, value in items:
            if name not in masks:
                raise ValueError(
                    f"fixed names an unknown parameter {name!r}; the parameters are "
                    f"{', '.join(PARAMS)}."
                )
            shape = shapes[name]
            if isinstance(value, (bool, np.bool_)):
                masks[name] = np.full(shape, bool(value))
                continue
            mask = np.asarray(value)
            if mask.dtype != bool:
                raise ValueError(f"fixed[{name!r}] must be True/False or a boolean mask.")
            kind = self._cov_type(name)
            if name in ("transition_cov", "observation_cov") and kind == "diag":
                if mask.shape == shape:
                    mask = np.diag(mask).copy()
                if mask.shape != shape[:1]:
                    raise ValueError(
                        f"fixed[{name!r}] must be a mask over the diagonal, shape {shape[:1]}."
                    )
                full = np.ones(shape, dtype=bool)
                full[np.diag_indices(shape[0])] = mask
                masks[name] = full
                continue
            if name in ("transition_cov", "observation_cov", "initial_mean", "initial_cov"):
                if mask.all() or not mask.any():
                    masks[name] = np.full(shape, bool(mask.all()))
                    continue
                raise ValueError(
                    f"fixed[{name!r}]: only whole-parameter fixing is supported for this "
                    "parameter (entry masks: A, B, C, D and diagonal covariances); pass True "
                    "or use a 'diag' covariance type."
                )
            if mask.shape != shape:
                raise ValueError(f"fixed[{name!r}] must have shape {shape}; got {mask.shape}.")
            masks[name] = mask.copy()
        if diffuse:
            masks.update({name: np.ones(shapes[name], dtype=bool) for name in held})
        return masks

    def _diffuse(self) -> np.ndarray | None:
        """The states of ``x_1`` that are diffuse (a boolean mask), or None for none:
        ``initial_cov="diffuse"`` (all) or ``np.inf`` on its diagonal (those)."""
        value = self.initial_cov
        if value is None:
            return None
        if isinstance(value, str):
            if value != "diffuse":
                raise ValueError(f'initial_cov must be a matrix or "diffuse"; got {value!r}.')
            return np.ones(self.n_states, dtype=bool)
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 0:
            return np.ones(self.n_states, dtype=bool) if np.isposinf(arr) else None
        if arr.ndim != 2 or not np.isinf(arr).any():
            return None
        if arr.shape != (self.n_states, self.n_states):
            raise ValueError(
                f"initial_cov must have shape {(self.n_states,) * 2}; got {arr.shape}."
            )
        inf = np.isposinf(arr.diagonal())
        off = arr.copy()
        off[np.diag_indices(len(off))] = 0.0
        if not inf.any() or not np.isfinite(off).all() or off[inf].any() or off[:, inf].any():
            raise ValueError(
                "initial_cov: np.inf may stand only on the diagonal (a diffuse state), with "
                "zeros elsewhere in its row and column; give the other entries finite values."
            )
        return inf

    def _given(self, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
        value = getattr(self, name)
        if value is None:
            return None
        inf = self._held["diffuse"] if name == "initial_cov" else None
        if inf is not None:
            # P_*: the finite part, zero on the diffuse states
            if isinstance(value, str):
                return np.zeros(shape)
            arr = np.array(value, dtype=np.float64)
            if arr.ndim == 0:
                return np.zeros(shape)
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape}; got {arr.shape}.")
            arr[inf, :] = 0.0
            arr[:, inf] = 0.0
            return arr
        arr = np.array(value, dtype=np.float64)  # a copy: never the user's array
        if name in ("transition_cov", "observation_cov") and arr.shape != shape:
            k = shape[0]
            if arr.ndim == 0:
                arr = np.eye(k) * float(arr)
            elif arr.shape == (k,):
                arr = np.diag(arr)
        if name == "initial_cov" and arr.ndim == 0:
            arr = np.eye(shape[0]) * float(arr)
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {arr.shape}.")
        # a small array by Python's math.isfinite, at a fraction of np.isfinite's cost
        if not (all(map(math.isfinite, arr.flat)) if arr.size <= 32 else np.isfinite(arr).all()):
            raise ValueError(f"{name} contains NaN or inf; give finite values.")
        return arr

    @staticmethod
    def _structured(S: np.ndarray, kind: str) -> np.ndarray:
        if kind == "diag":
            return np.diag(np.diag(S))
        if kind == "scalar":
            return np.eye(len(S)) * float(np.mean(np.diag(S)))
        return _sym(S)

    def _check_params(self, fit: bool = False) -> None:
        """Shapes, finiteness and definiteness of the current parameters."""
        p, m = self.n_features_in_, self.n_inputs_
        shapes = self._shapes(p, m)
        for name in PARAMS:
            value = getattr(self, name + "_", None)
            if value is None:
                raise ValueError(f"{name}_ is not set; fit the model first.")
            if value.shape != shapes[name]:
                raise ValueError(f"{name}_ must have shape {shapes[name]}; got {value.shape}.")
            if not np.isfinite(value).all():
                raise ValueError(f"{name}_ contains NaN or inf.")
        for name, need_pd in (
            ("transition_cov", False),
            ("observation_cov", True),
            ("initial_cov", False),
        ):
            S = getattr(self, name + "_")
            scale = 1.0 + np.abs(S).max() if S.size else 1.0
            if S.size > 1 and not np.all(np.abs(S - S.T) <= 1e-12 * scale + 1e-10 * np.abs(S.T)):
                raise ValueError(f"{name}_ must be symmetric.")
            if need_pd:
                if not _definite(S, semi=False):
                    held = fit and self._masks[name].all()
                    raise ValueError(
                        f"{name}_ ({_SYMBOL[name]}) is not positive definite"
                        + (
                            " and it is held fixed; give a positive definite value (every "
                            "observation needs some noise)."
                            if held
                            else "; give a positive definite starting value."
                        )
                    )
            else:
                lowest = S[0, 0] if S.size == 1 else np.linalg.eigvalsh(S)[0] if S.size else 0.0
                if lowest < -1e-10 * scale:
                    raise ValueError(f"{name}_ ({_SYMBOL[name]}) must be positive semi-definite.")

    # ------------------------------------------------------------------ packed vector
    # The E- and M-steps work on one vector of all parameters (the SQUAREM vector): the
    # compiled kernels take and update it in one argument, and the ``name_`` attributes
    # are views of it, so nothing is copied or rebuilt per iteration. A value assigned
    # to an attribute (a user, a model file, a restored snapshot) breaks its view:
    # :meth:`_theta` notices and packs the attributes afresh.
    def _set_views(self, theta: np.ndarray, shapes: list[tuple[int, ...]]) -> None:
        views, checks, start = [], [], 0
        for attr, shape in zip(_ATTRS, shapes):
            size = math.prod(shape)
            view = theta[start : start + size].reshape(shape)
            self.__dict__[attr] = view
            views.append(view)
            if attr in _DEFINITE and size:
                checks.append((start, shape[0], _DEFINITE[attr]))
            start += size
        # the vector, its views, and where the covariances set_param_vector checks lie
        # (the same for every model of these shapes: made once)
        key = tuple(checks)
        known = _CHECKS.get(key)
        if known is None:
            known = np.array(checks, dtype=np.int64).reshape(-1, 3)
            if len(_CHECKS) >= 64:
                _CHECKS.clear()
            _CHECKS[key] = known
        checks = known
        self.__dict__["_packed"] = (theta, tuple(views), checks)

    def _theta(self) -> np.ndarray:
        """The packed parameter vector, the attributes views of it (packed afresh if an
        attribute was assigned since)."""
        d = self.__dict__
        packed = d.get("_packed")
        # a deep copy (the runner's snapshot of the best restart) or a pickle keeps the
        # tuple but not the views: the vector then no longer owns the first one's memory
        if packed is not None and packed[1][0].base is packed[0]:
            # no parameter assigned since the views were checked (see _Fitted): the
            # E- and M-steps ask several times per iteration, this answers at once
            if "_assigned" not in d:
                return packed[0]
            if all(map(operator.is_, _GET_ATTRS(d), packed[1])):
                del d["_assigned"]
                return packed[0]
        d.pop("_assigned", None)
        values = [np.asarray(getattr(self, attr), dtype=np.float64) for attr in _ATTRS]
        theta = np.concatenate([v.ravel() for v in values])
        self._set_views(theta, [v.shape for v in values])
        return theta

    def get_param_vector(self) -> np.ndarray:
        """All parameters as one vector (for SQUAREM)."""
        return self._theta().copy()

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set all parameters from a vector; False (and nothing changed) if infeasible:
        not finite, or R not positive definite, or Q or the initial covariance not
        positive semi-definite. (Extrapolation keeps shapes, symmetry and the zeros of
        diagonal covariances, so only definiteness needs checking.) The values are
        copied into the packed vector, which the attributes view."""
        current = self._theta()
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        if theta.shape != current.shape:
            return False
        return _flat.accept_theta(current, theta, self.__dict__["_packed"][2])

    def _packed_views(self) -> tuple[np.ndarray, ...]:
        self._theta()
        return self.__dict__["_packed"][1]

    def n_parameters(self) -> int:
        """Free parameters (entries not held fixed; covariances by their structure)."""
        masks = self._masks
        total = 0
        for name in (
            "transition_matrix",
            "transition_input",
            "observation_matrix",
            "observation_input",
            "initial_mean",
        ):
            total += int((~masks[name]).sum())
        for name in ("transition_cov", "observation_cov", "initial_cov"):
            k = masks[name].shape[0]
            kind = self._cov_type(name)
            if masks[name].all():
                continue
            if kind == "full":
                total += k * (k + 1) // 2
            elif kind == "scalar":
                total += 1
            else:
                total += int((~np.diag(masks[name])).sum())
        return total

    def _set_masks(self, p: int, m: int) -> None:
        """The masks of held entries (and what the M-step needs from them) for ``p``
        features and ``m`` inputs: worked out once per setting and shared by the models
        that have it (a fit makes a model and prepares its data once; a few microseconds
        per mask were a tenth of a short series' whole fit). ``fixed`` given as masks is
        worked out afresh every time."""
        diffuse = self._diffuse()
        fixed = self.fixed
        if fixed is None or isinstance(fixed, str):
            key_fixed = fixed
        elif isinstance(fixed, (list, tuple)) and all(isinstance(x, str) for x in fixed):
            key_fixed = tuple(fixed)
        else:
            self._masks = self._fixed_masks(p, m)
            return
        key = (
            self.n_states,
            p,
            m,
            self.transition_cov_type,
            self.observation_cov_type,
            key_fixed,
            None if diffuse is None else tuple(diffuse.tolist()),
        )
        known = _SETTINGS.get(key)
        if known is None:
            self._masks = self._fixed_masks(p, m)
            known = (self.__dict__["_masks_cache"], self.__dict__["_held_cache"])
            for mask in known[0].values():
                mask.flags.writeable = False  # shared: nothing may change them
            if len(_SETTINGS) >= 64:
                _SETTINGS.clear()
            _SETTINGS[key] = known
        self.__dict__["_masks_cache"], self.__dict__["_held_cache"] = known

    @property
    def _masks(self) -> dict:
        masks = self.__dict__.get("_masks_cache")
        if masks is None:
            masks = self._fixed_masks(self.n_features_in_, self.n_inputs_)
            self._masks = masks
        return masks

    @_masks.setter
    def _masks(self, value: dict) -> None:
        self.__dict__["_masks_cache"] = value
        # what the M-step needs from the masks, worked out once
        held = {name: _all(mask) for name, mask in value.items()}
        held.update({"any_" + name: _any(mask) for name, mask in value.items()})
        for part, (coef, inp) in (
            ("transition", ("transition_matrix", "transition_input")),
            ("observation", ("observation_matrix", "observation_input")),
        ):
            free = ~np.concatenate((value[coef], value[inp]), axis=1)
            held[part] = held[coef] and held[inp]
            held[part + "_free"] = free
            held[part + "_all_free"] = not _any(value[coef]) and not _any(value[inp])
        for name in ("transition_cov", "observation_cov"):  # diagonal entries held, if any
            kept = value[name].diagonal().copy()
            held[name + "_kept"] = kept if _any(kept) else None
        held["diffuse"] = self._diffuse()  # worked out once, not per E-step
        held["codes"] = self._m_step_codes(held)
        p, n = value["observation_matrix"].shape
        held["scalar"] = n == 1 and p == 1 and value["transition_input"].shape[1] == 0
        self.__dict__["_held_cache"] = held

    def _m_step_codes(self, held: dict) -> np.ndarray | None:
        """How the compiled M-step (:func:`~latentem.kernels.kalman_scalar.m_step_packed`)
        updates each part, or None where it cannot: entries of ``[A B]`` or ``[C D]``
        held while others are free, or diagonal entries of Q or R held."""
        codes = []
        for part, cov in (("transition", "transition_cov"), ("observation", "observation_cov")):
            if not (held[part] or held[part + "_all_free"]):
                return None
            codes.append(int(held[part + "_all_free"]))
            if held[cov]:
                codes.append(COV_HELD)
            elif held[cov + "_kept"] is not None:
                return None
            else:
                codes.append(_COV_CODE[self._cov_type(cov)])
        codes.append(int(not held["initial_mean"]))
        codes.append(int(not held["initial_cov"]))
        return np.array(codes, dtype=np.int64)

    @property
    def _held(self) -> dict:
        if "_held_cache" not in self.__dict__:
            self._masks  # noqa: B018 (computes both)
        return self.__dict__["_held_cache"]


for _attr in _ATTRS:
    setattr(_Parameters, _attr, _Fitted(_attr))
