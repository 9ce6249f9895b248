"""``latentem fit regime`` and what predict and score do with a regime-switching model.

A time-indexed table in, rows in time order (or grouped into series by
``--sequence-column``): one response column, optional regressor columns,
``--order p`` for Hamilton's switching-mean autoregression (0: a switching
regression). Predict writes the smoothed regime probabilities and the most
probable regime of every row; score prints the log-likelihood, BIC and AIC.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

import numpy as np

__all__ = ["add_parser", "fit_regime", "predict_regime", "score_regime"]


def add_parser(fit_sub: Any, fit_options: Any, run: Any) -> None:
    """The ``fit regime`` sub-command."""
    p = fit_sub.add_parser(
        "regime",
        help="Markov-switching regression or autoregression (rows in time order)",
        description="Fit a Markov-switching model to one column of IN, rows in time order: "
        "a switching regression on --exog columns, or with --order P Hamilton's "
        "switching-mean autoregression. With --sequence-column, rows are grouped into "
        "series (a panel). Missing responses (empty cells) carry no evidence.",
    )
    p.add_argument("input", metavar="IN", help="input table (.csv, .tsv or .parquet)")
    p.add_argument("-o", "--output", metavar="MODEL", required=True, help="model file")
    p.add_argument("-k", "--components", type=int, default=2, metavar="K", help="regimes (2)")
    p.add_argument("--column", required=True, metavar="COL", help="the response column")
    p.add_argument("--exog", metavar="COLS", help="comma-separated regressor columns")
    p.add_argument("--order", type=int, default=0, help="autoregressive order (default 0)")
    p.add_argument("--switching-variance", action="store_true", help="a variance per regime")
    p.add_argument("--sequence-column", metavar="COL", help="column holding series ids")
    p.add_argument("--n-init", type=int, default=10, help="restarts (default 10)")
    p.add_argument("--tol", type=float, default=1e-8, help="convergence tolerance")
    fit_options(p)
    p.set_defaults(run=run)


def _columns(df: Any, y_col: str, exog: list[str], seq_col: str | None):
    """(y, exog or None, lengths or None, row order or None) from the table."""
    from latentem._tables import numeric_block, sequence_lengths

    names = {str(c) for c in df.columns}
    for col in [y_col, *exog] + ([seq_col] if seq_col else []):
        if col not in names:
            raise ValueError(f"the table has no column {col!r}; its columns: {sorted(names)}")
    if seq_col in [y_col, *exog]:
        raise ValueError(f"the sequence column {seq_col!r} cannot also be a model column")
    y, _ = numeric_block(df, [y_col])
    X = numeric_block(df, exog)[0] if exog else None
    if len(y) == 0:
        raise ValueError("the table has no rows")
    if X is not None and not np.isfinite(X).all():
        raise ValueError(
            "the regressor columns have empty or non-finite cells; regressors cannot be "
            "missing: fill or drop those rows"
        )
    order, lengths = None, None
    if seq_col:
        order, lengths, _ = sequence_lengths(df, seq_col)
        y = y[order]
        X = None if X is None else X[order]
    return y[:, 0], X, lengths, order


def _split(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


def fit_regime(args: argparse.Namespace, verbose: bool) -> tuple[Any, dict, str]:
    """Fit and describe; returns (model, metadata, summary lines)."""
    from latentem._tables import read_table
    from latentem.models.regime import MarkovAutoregression, MarkovRegression

    if args.components < 2:
        raise ValueError("--components must be at least 2 for a regime-switching model")
    if args.order < 0:
        raise ValueError("--order must be 0 or more")
    df = read_table(args.input)
    exog = _split(args.exog)
    y, X, lengths, _ = _columns(df, args.column, exog, args.sequence_column)
    common = dict(
        switching_variance=args.switching_variance,
        n_init=args.n_init,
        max_iter=args.max_iter,
        tol=args.tol,
        random_state=args.seed,
        verbose=verbose,
    )
    if args.order:
        model = MarkovAutoregression(args.components, order=args.order, **common)
    else:
        model = MarkovRegression(args.components, **common)
    model.fit(y, X, lengths=lengths)
    metadata = {
        "command": "fit",
        "kind": "regime",
        "column": args.column,
        "exog": exog,
        "sequence_column": args.sequence_column,
        "trained_on": os.path.basename(args.input),
        "n_rows": int(len(y)),
    }
    ll = float(model.score(y, X, lengths=lengths))
    n = len(y)
    bic = -2.0 * ll + model.n_parameters() * math.log(n)
    durations = ", ".join(f"{d:.1f}" for d in np.atleast_1d(model.expected_durations()))
    lines = [
        f"Fitted {type(model).__name__} with {args.components} regimes on {n} rows of "
        f"{args.column!r}" + (f" on {', '.join(exog)}" if exog else ""),
        f"log-likelihood {ll:.6g}, BIC {bic:.6g}; expected durations (rows): {durations}",
    ]
    return model, metadata, "\n".join(lines)


def _data(model: Any, meta: dict, df: Any, args: argparse.Namespace):
    seq_col = getattr(args, "sequence_column", None) or meta.get("sequence_column")
    return _columns(df, meta["column"], list(meta.get("exog") or []), seq_col)


def predict_regime(model: Any, meta: dict, df: Any, args: argparse.Namespace):
    """(regime per row, probabilities per row) in the table's row order; the first
    ``order`` rows of each series have no probabilities (-1 and NaN)."""
    y, X, lengths, row_order = _data(model, meta, df, args)
    probs = model.smooth(y, X, lengths=lengths).smoothed_marginal_probabilities
    K = probs.shape[1]
    p = int(getattr(model, "order", 0) or 0)
    full = np.full((len(y), K), np.nan)
    bounds = np.concatenate(([0], np.cumsum(lengths if lengths is not None else [len(y)])))
    at = 0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        take = max(hi - lo - p, 0)
        full[lo + p : hi] = probs[at : at + take]
        at += take
    regime = np.where(np.isnan(full[:, 0]), -1, np.argmax(np.nan_to_num(full, nan=-1.0), axis=1))
    if row_order is not None:  # back to the table's row order
        inverse = np.empty_like(row_order)
        inverse[row_order] = np.arange(len(row_order))
        full, regime = full[inverse], regime[inverse]
    return regime.astype(np.int64), full


def score_regime(model: Any, meta: dict, df: Any, args: argparse.Namespace) -> list[str]:
    """The lines ``latentem score`` prints for a regime-switching model."""
    y, X, lengths, _ = _data(model, meta, df, args)
    ll = float(model.score(y, X, lengths=lengths))
    n, k = len(y), model.n_parameters()
    seqs = f" in {len(lengths)} series" if lengths is not None else ""
    return [
        f"model: {type(model).__name__} with {model.k_regimes} regimes",
        f"data: {n} rows{seqs} of {meta['column']!r}",
        f"log-likelihood: {ll:.10g}",
        f"BIC: {-2.0 * ll + k * math.log(n):.10g}",
        f"AIC: {-2.0 * ll + 2.0 * k:.10g}",
    ]
