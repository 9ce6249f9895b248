"""``latentem impute``: fill the gaps of a table with :class:`~latentem.MixedImputer`.

Tables read with pandas keep their dtypes; without pandas (a plain
``pip install``), CSV and TSV tables are read and written by the standard
library, text columns as categories and observed cells written as read.
"""

from __future__ import annotations

import argparse
import os
import re

import numpy as np

from latentem.cli import _columns, _progress, _Usage

__all__ = ["impute"]


def impute(args: argparse.Namespace) -> int:
    from latentem._tables import (
        TextTable,
        check_output,
        free_text_columns,
        identifier_columns,
        read_table,
        table_format,
        write_table,
    )
    from latentem.models.mixed_imputer import MixedImputer

    if args.components is not None and args.components < 1:
        raise _Usage("--components must be at least 1")
    if args.multiple < 1:
        raise _Usage("--multiple must be at least 1")
    stem, ext = os.path.splitext(args.output)
    out_paths = [args.output]
    if args.multiple > 1:
        out_paths = [f"{stem}_{i + 1}{ext}" for i in range(args.multiple)]
    for out in out_paths:  # a bad output fails before the work
        check_output(out, (args.input,))
    table_format(args.output)
    df = read_table(args.input)
    if len(df) == 0:
        raise ValueError(f"{args.input} has no rows")
    names = _impute_columns(df, _columns(args.columns), identifier_columns, free_text_columns)
    imputer = MixedImputer(
        "auto" if args.components is None else args.components,
        max_iter=args.max_iter,
        random_state=args.seed,
        verbose=_progress(args),
    )
    if isinstance(df, TextTable):
        outputs, gaps = _impute_text(df, names, imputer, args.multiple)
    else:
        outputs, gaps = _impute_frame(df, names, imputer, args.multiple)
    outputs = list(zip(out_paths, outputs))
    for path, filled in outputs:
        write_table(filled, path)
    modelled = imputer.continuous_features_ + imputer.categorical_features_
    if isinstance(df, TextTable):  # the imputer saw an array: its features are positions
        modelled = [names[int(j)] for j in modelled]
    per = ", ".join(f"{n}: {g}" for n, g in gaps.items() if g)
    classes = imputer.n_components_
    print(
        f"imputed {sum(gaps.values())} missing value(s) in {len(df)} rows"
        + (f" ({per})" if per else "")
        + f" with EM under {classes} latent class(es)"
    )
    untouched = [str(c) for c in df.columns if str(c) not in modelled]
    if untouched:
        print(f"left untouched: {', '.join(untouched)}")
    print("wrote " + ", ".join(p for p, _ in outputs))
    return 0


def _impute_columns(df, columns, identifier_columns, free_text_columns) -> list[str]:
    """The columns ``impute`` models: those named, else all but identifiers and free text."""
    names = [str(c) for c in df.columns]
    if columns is None:  # constant and empty columns have nothing to impute from or to
        skip = set(identifier_columns(df)) | set(free_text_columns(df))
        return [n for n in names if n not in skip and _n_distinct(df, n) >= 2]
    for n in columns:
        if n not in names:
            raise ValueError(f"unknown column {n!r}; the table has columns {', '.join(names)}")
    dup = {n for n in columns if columns.count(n) > 1}
    if dup:
        raise ValueError(f"column {sorted(dup)[0]!r} is named twice in --columns")
    return list(columns)


def _n_distinct(df, name: str) -> int:
    """Distinct observed values of a column of a DataFrame or a TextTable."""
    cells = getattr(df, "cells", None)
    if cells is not None:
        return len({v for v in cells[name] if v is not None})
    return int(df[dict(zip((str(c) for c in df.columns), df.columns))[name]].nunique())


def _impute_frame(df, names, imputer, multiple) -> tuple[list, dict]:
    """Impute the columns ``names`` of a DataFrame; every other column is copied as is."""
    by_name = dict(zip((str(c) for c in df.columns), df.columns))
    sub = df[[by_name[n] for n in names]]
    imputer.fit(sub)
    filled = (
        [imputer.transform(sub)] if multiple == 1 else imputer.sample_imputations(sub, multiple)
    )
    modelled = set(imputer.continuous_features_ + imputer.categorical_features_)
    gaps = {n: int(sub[by_name[n]].isna().sum()) for n in names if n in modelled}
    outputs = []
    for part in filled:
        out = df.copy()
        for n in names:
            if gaps.get(n):
                out[by_name[n]] = part[by_name[n]]
        outputs.append(out)
    return outputs, gaps


def _impute_text(table, names, imputer, multiple) -> tuple[list, dict]:
    """Impute the columns ``names`` of a table read without pandas: numeric columns as
    numbers, text columns as categories (codes of their sorted levels)."""
    from latentem._tables import format_number

    blocks, cats, levels = [], [], {}
    for j, n in enumerate(names):
        if table.is_numeric(n):
            blocks.append(table.numbers[n])
        else:
            levels[n] = sorted({v for v in table.cells[n] if v is not None})
            code = {v: i for i, v in enumerate(levels[n])}
            blocks.append(np.array([np.nan if v is None else code[v] for v in table.cells[n]]))
            cats.append(j)
    X = np.column_stack(blocks).astype(np.float64)
    for j, n in enumerate(names):  # the estimator's errors name columns, not positions
        if np.isnan(X[:, j]).all():
            raise ValueError(
                f"column {n!r} is entirely missing; drop it, or fill it from outside information."
            )
    imputer.set_params(categorical_features=cats or None)
    try:
        imputer.fit(X)
    except ValueError as err:
        raise ValueError(_name_columns(str(err), names)) from None
    filled = [imputer.transform(X)] if multiple == 1 else imputer.sample_imputations(X, multiple)
    gap = np.isnan(X)
    outputs = []
    for F in filled:
        out = table.copy()
        for j, n in enumerate(names):
            if not gap[:, j].any():
                continue
            cells = list(table.cells[n])
            for i in np.flatnonzero(gap[:, j]):
                if n in levels:
                    cells[i] = levels[n][int(F[i, j])]
                else:
                    cells[i] = format_number(F[i, j], table.integer[n])
            out.set_cells(n, cells)
        outputs.append(out)
    return outputs, {n: int(gap[:, j].sum()) for j, n in enumerate(names)}


def _name_columns(message: str, names: list[str]) -> str:
    """An estimator error about ``column 3`` of the array, about the table's column instead."""

    return re.sub(r"column (\d+)", lambda m: f"column {names[int(m.group(1))]!r}", message)
