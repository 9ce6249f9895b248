"""scikit-learn's estimator protocol without importing scikit-learn.

scikit-learn is an optional, test-only dependency: ``import latentem`` must
not import it. Everything here either needs no scikit-learn at all or
imports it lazily, inside a method only scikit-learn (or a notebook) calls:

* :class:`NotFittedError` and :func:`not_fitted_error` -- the error for an
  unfitted estimator. When ``sklearn.exceptions`` is already imported (anyone
  catching scikit-learn's class has imported it), the raised error is also an
  instance of ``sklearn.exceptions.NotFittedError``.
* :func:`convergence_warning_class` -- the same for
  :class:`latentem.ConvergenceWarning`, so ``pytest.warns`` and warning
  filters on either class see latentem's warnings.
* :class:`SklearnProtocol` -- ``__sklearn_tags__``, ``__sklearn_is_fitted__``
  and ``_repr_html_`` for every :class:`latentem.base.ParamsMixin`.
* :class:`OutputMixin` -- ``set_output`` and ``get_feature_names_out`` for
  transformers.
"""

from __future__ import annotations

import functools
import html
import sys
from typing import Any

import numpy as np

__all__ = [
    "NotFittedError",
    "not_fitted_error",
    "convergence_warning_class",
    "SklearnProtocol",
    "OutputMixin",
]


class NotFittedError(ValueError, AttributeError):
    """An estimator was used (``predict``, ``transform``, ...) before ``fit``.

    Derives from ``ValueError`` and ``AttributeError``, as scikit-learn's
    class does; when scikit-learn is loaded, the raised error is also a
    ``sklearn.exceptions.NotFittedError``.

    Examples
    --------
    >>> from latentem import GaussianMixture, NotFittedError
    >>> try:
    ...     GaussianMixture().predict([[0.0]])
    ... except NotFittedError as exc:
    ...     print(str(exc).split(".")[0])
    This GaussianMixture instance is not fitted yet
    """


def _sklearn_exceptions() -> Any:
    # Only a module somebody already imported: never import scikit-learn here.
    return sys.modules.get("sklearn.exceptions")


@functools.cache
def _joint(ours: type, theirs: type) -> type:
    """A class deriving from latentem's and scikit-learn's, made once per pair.

    Its instances pickle (joblib workers send errors back) by naming the two
    classes, since the joint class itself is not importable by name.
    """

    def reduce(self: Any) -> tuple:
        return (_rejoin, (ours, theirs, self.args))

    return type(
        ours.__name__, (ours, theirs), {"__module__": ours.__module__, "__reduce__": reduce}
    )


def _rejoin(ours: type, theirs: type, args: tuple) -> Any:
    return _joint(ours, theirs)(*args)


def not_fitted_error(obj: Any, what: str | None = None) -> NotFittedError:
    """The error to raise when ``obj`` is used before ``fit`` (scikit-learn's wording).

    ``raise not_fitted_error(self)``; it is a scikit-learn ``NotFittedError``
    too when scikit-learn is loaded.
    """
    cls = NotFittedError
    sk = _sklearn_exceptions()
    if sk is not None:
        cls = _joint(NotFittedError, sk.NotFittedError)
    message = (
        f"This {type(obj).__name__} instance is not fitted yet. Call 'fit' with appropriate "
        "arguments before using this estimator."
    )
    if what:
        message += f" ({what} is set by fit.)"
    return cls(message)


def convergence_warning_class() -> type:
    """:class:`latentem.ConvergenceWarning`, joined with scikit-learn's when it is loaded."""
    from latentem.runner import ConvergenceWarning

    sk = _sklearn_exceptions()
    return ConvergenceWarning if sk is None else _joint(ConvergenceWarning, sk.ConvergenceWarning)


class SklearnProtocol:
    """What scikit-learn's tools ask of an estimator, scikit-learn imported lazily.

    Subclasses adjust the tags in ``_sklearn_tags(tags)`` and list checks of
    ``sklearn.utils.estimator_checks`` they cannot meet, each with its
    reason, in ``_sklearn_expected_failed_checks()`` (pass it to
    ``check_estimator(..., expected_failed_checks=...)``).
    """

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import InputTags, Tags, TargetTags

        tags = Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            input_tags=InputTags(),
        )
        return self._sklearn_tags(tags)

    def _sklearn_tags(self, tags: Any) -> Any:
        return tags

    def _sklearn_expected_failed_checks(self) -> dict[str, str]:
        return {}

    def __sklearn_is_fitted__(self) -> bool:
        fitted = getattr(self, "_fitted", None)
        if callable(fitted):
            return bool(fitted())
        return any(k.endswith("_") and not k.startswith("__") for k in vars(self))

    def _repr_html_(self) -> str:
        """The estimator in a notebook: scikit-learn's diagram when it is
        installed, else its ``repr``."""
        try:
            from sklearn.utils import estimator_html_repr
        except ImportError:
            return f"<pre>{html.escape(repr(self))}</pre>"
        try:
            return estimator_html_repr(self)
        except Exception:  # a diagram is a nicety; never fail to display
            return f"<pre>{html.escape(repr(self))}</pre>"


def family_argument_checks(family: Any, argument: bool) -> dict[str, str]:
    """scikit-learn checks an estimator over an emission family cannot meet.

    The fitted family is the public attribute ``emission``; when it is also a
    constructor ``argument`` (``Mixture(emission=...)``, ``HMM(emission=...)``)
    fit replaces that argument with a fresh family; -1 in a family of codes
    marks a gap, so such data are not refused as negative.
    """
    declared = {
        "check_dont_overwrite_parameters": (
            "the fitted family is the public attribute `emission` (it holds the fitted "
            "parameters, model.emission.lambdas_, ...); fit starts it afresh"
        )
    }
    if argument:
        declared["check_estimators_overwrite_params"] = (
            "the family passed as `emission` is where the fit keeps its parameters "
            "(model.emission.lambdas_, ...): fit replaces it with a fresh family of the "
            "same settings, which joblib's hash sees as a changed parameter"
        )
    if getattr(family, "missing_code", None) is not None:
        declared["check_fit_non_negative"] = (
            f"its negative data are all {family.missing_code:g}, the documented code of a "
            "missing cell"
        )
    return declared


def density_tags(tags: Any, allow_nan: bool) -> Any:
    """Tags of a density estimator (scikit-learn's ``DensityMixin``)."""
    tags.estimator_type = "DensityEstimator"
    tags.input_tags.allow_nan = allow_nan
    return tags


def transformer_tags(tags: Any, allow_nan: bool, preserves_dtype: list[str]) -> Any:
    """Tags of a transformer (scikit-learn's ``TransformerMixin``)."""
    from sklearn.utils import TransformerTags

    tags.transformer_tags = TransformerTags(preserves_dtype=preserves_dtype)
    tags.input_tags.allow_nan = allow_nan
    return tags


class OutputMixin:
    """``set_output`` and ``get_feature_names_out`` for a transformer.

    ``transform`` passes its array through ``self._wrap_output(out, X)``,
    which returns a pandas (or polars) DataFrame when ``set_output`` asked
    for one, or when ``set_output`` was not called and scikit-learn's global
    ``transform_output`` setting asks for one.
    """

    def set_output(self, *, transform: str | None = None) -> Any:
        """Output container of ``transform``: "default", "pandas", "polars" or None
        (unchanged); returns self."""
        if transform is None:
            return self
        if transform not in ("default", "pandas", "polars"):
            raise ValueError(
                f'transform must be "default", "pandas", "polars" or None; got {transform!r}.'
            )
        self._output_transform = transform
        return self

    def _output_kind(self) -> str:
        kind = self.__dict__.get("_output_transform")
        if kind is None:
            sk = sys.modules.get("sklearn")
            kind = sk.get_config().get("transform_output", "default") if sk else "default"
        return kind

    def _feature_prefix_names(self, n: int) -> np.ndarray:
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)

    def _wrap_output(self, out: Any, X: Any) -> Any:
        kind = self._output_kind()
        if kind == "default":
            return out
        columns = list(self.get_feature_names_out())
        if kind == "pandas":
            import pandas as pd

            if isinstance(out, pd.DataFrame):  # already a frame: its own columns and index
                return out
            index = X.index if isinstance(X, pd.DataFrame) else None
            return pd.DataFrame(np.asarray(out), index=index, columns=columns)
        import polars as pl

        return pl.DataFrame(np.asarray(out), schema=columns, orient="row")


def feature_names(X: Any) -> np.ndarray | None:
    """The column names of a DataFrame whose names are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not hasattr(X, "shape"):
        return None
    names = list(columns)
    if not names or not all(isinstance(c, str) for c in names):
        return None
    return np.asarray(names, dtype=object)


def note_features(est: Any, X: Any, reset: bool) -> None:
    """scikit-learn's ``feature_names_in_`` rules.

    ``reset=True`` (fit): remember X's column names, or forget old ones when
    X has none. ``reset=False`` (predict, transform, ...): warn when exactly one
    side has names, raise ValueError when the names differ.
    """
    import warnings

    names = feature_names(X)
    if reset:
        if names is not None:
            est.feature_names_in_ = names
        else:
            est.__dict__.pop("feature_names_in_", None)
        return
    fitted = est.__dict__.get("feature_names_in_")
    name = type(est).__name__
    if names is None and fitted is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {name} was fitted without feature names",
            UserWarning,
            stacklevel=3,
        )
    elif names is None:
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    elif len(names) != len(fitted) or np.any(names != fitted):
        unseen = sorted(set(names) - set(fitted))
        missing = sorted(set(fitted) - set(names))
        raise ValueError(
            "The feature names should match those that were passed during fit.\n"
            + (f"Feature names unseen at fit time: {unseen}\n" if unseen else "")
            + (f"Feature names seen at fit time, yet now missing: {missing}\n" if missing else "")
            + (
                ""
                if unseen or missing
                else "Feature names must be in the same order as they were in fit.\n"
            )
        )


def check_n_features(est: Any, n: int, one_d: bool = False) -> None:
    """X's number of columns must be that seen by fit (scikit-learn's wording).

    ``one_d``: X was 1-D, read as one column; the message says how to pass
    one sample instead."""
    if n != est.n_features_in_:
        hint = (
            " A 1-D X is read as one column; Reshape your data with X.reshape(1, -1) if it "
            "is a single sample."
            if one_d
            else ""
        )
        raise ValueError(
            f"X has {n} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input.{hint}"
        )


def precheck_table(
    est: Any,
    X: Any,
    *,
    nonnegative: bool = False,
    missing_code: float | None = None,
    one_d_as_column: bool = True,
) -> Any:
    """scikit-learn's generic input rules, before a family reads X by its own rules.

    Sparse, complex, empty, more than 2-D and (when ``nonnegative``) negative
    input is refused with scikit-learn's wording; numbers held in an object
    array become float64. A 1-D X stays the family's to read (one column), or
    is refused with scikit-learn's message when not ``one_d_as_column``; a
    DataFrame passes through. No copy of a numeric array is made.
    ``missing_code`` is a negative value that marks a missing cell.
    """
    from latentem._validation import as_numeric_array

    if hasattr(X, "columns") and hasattr(X, "dtypes"):
        return X
    arr = as_numeric_array(X, name="X", one_d_as_column=one_d_as_column)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {arr.shape}.")
    for axis, what in ((0, "sample"), (1, "feature")):
        if arr.shape[axis] == 0:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={arr.shape}) while a minimum of 1 is "
                "required."
            )
    if nonnegative:
        neg = arr < 0
        if missing_code is not None:
            neg &= arr != missing_code
        if neg.any():
            raise ValueError(
                f"Negative values in data passed to {type(est).__name__}: it takes counts or "
                "codes >= 0"
                + ("" if missing_code is None else f" ({missing_code:g} or NaN marks a gap)")
                + "."
            )
    converted = np.asarray(X).dtype == object
    return arr.reshape(np.shape(X)) if converted else X
