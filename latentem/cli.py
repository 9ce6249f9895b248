"""The ``latentem`` command line.

``latentem demo``, ``latentem fit gmm|hmm``, ``predict``, ``score``,
``info`` and ``impute`` work on CSV, TSV and Parquet tables (Parquet needs
pyarrow: ``pip install 'latentem[io]'``). Every command has ``--help``.

Exit codes: 0 success, 1 an error in the data, a file or a fit, 2 a usage
error, 130 interrupted. Errors print one line on stderr (``latentem: error:
...``) and never a traceback; set ``LATENTEM_DEBUG=1`` to see the traceback
of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

EXIT_USAGE = 2
EXIT_ERROR = 1


def _demo(args: argparse.Namespace) -> int:
    from latentem import GaussianMixture
    from latentem.datasets import load_old_faithful

    X, columns = load_old_faithful()
    print(f"latentem demo: Gaussian mixtures on the Old Faithful geyser data ({len(X)} eruptions,")
    print(f"columns {', '.join(columns)}), choosing the number of components by BIC.\n")
    start = time.perf_counter()
    fits = []
    for k in range(1, args.max_components + 1):
        model = GaussianMixture(k, covariance_type="full", n_init=3, random_state=args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        fits.append((model.bic(X), k, model))
    best_bic, best_k, best = min(fits, key=lambda f: f[0])
    print(" components        BIC")
    for bic, k, _ in fits:
        mark = "  <- best" if k == best_k else ""
        print(f" {k:10d} {bic:10.2f}{mark}")
    status = "converged" if best.converged_ else "stopped at max_iter"
    print(
        f"\nBest: {best_k} components, {status} after {best.n_iter_} EM iterations; "
        f"all fits took {time.perf_counter() - start:.2f} s."
    )
    print(f"Mean log-likelihood per eruption: {best.score(X):.4f}\n")
    header = "".join(f"{'mean ' + c:>16}{'sd ' + c:>14}" for c in columns)
    print(f" component  weight{header}")
    order = np.argsort(best.means_[:, 0])
    for i, k in enumerate(order):
        sd = np.sqrt(np.diag(best.covariances_[k]))
        cells = "".join(f"{m:16.3f}{s:14.3f}" for m, s in zip(best.means_[k], sd))
        print(f" {i + 1:9d} {best.weights_[k]:7.3f}{cells}")
    labels = best.predict(X)
    counts = np.bincount(labels, minlength=best_k)[order]
    print(f"\nEruptions per component: {', '.join(str(c) for c in counts)}")
    return 0


# ---------------------------------------------------------------------- helpers
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _columns(values: list[str] | None) -> list[str] | None:
    """``--columns a,b --columns c`` -> ["a", "b", "c"]."""
    if not values:
        return None
    out = [c.strip() for v in values for c in v.split(",") if c.strip()]
    return out or None


def _progress(args: argparse.Namespace) -> bool:
    """Show a live progress line for fits longer than about 2 s, on a terminal only."""
    if getattr(args, "quiet", False):
        return False
    from latentem import runner

    runner.TTY_PROGRESS_DELAY = 2.0
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _fmt(x: float) -> str:
    return f"{x:.6g}" if abs(x) < 1e6 else f"{x:.6e}"


def _load(path: str):
    from latentem.persistence import describe, load

    model = load(path)
    return model, describe(path).get("metadata", {}) or {}


def _kind(model) -> str:
    from latentem.models.hmm import HMM
    from latentem.models.mixture import MixtureSurface
    from latentem.models.regime import _RegimeSwitching

    if isinstance(model, MixtureSurface):
        return "gmm"
    if isinstance(model, HMM):
        return "hmm"
    if isinstance(model, _RegimeSwitching):
        return "regime"
    raise ValueError(
        "this command works with mixtures, HMMs and regime-switching models; the file "
        f"holds a {type(model).__name__}"
    )


def _n_features(model) -> int:
    if _kind(model) == "gmm":
        return int(model.n_features_in_)
    return int(model.emission.n_features)


def _require_fitted(model, path: str) -> None:
    kind = _kind(model)
    if kind == "regime":
        fitted = getattr(model, "transmat_", None) is not None
    else:
        fitted = model._fitted() if kind == "gmm" else model.startprob_ is not None
    if not fitted:
        raise ValueError(f"the model in {path} is not fitted; fit it before predicting or scoring")


def _model_data(model, meta: dict, df, args: argparse.Namespace):
    """The model's columns of ``df`` (and sequences for an HMM): (X, lengths, order)."""
    from latentem._tables import numeric_block, sequence_lengths

    columns = _columns(getattr(args, "columns", None)) or meta.get("columns")
    seq_col = getattr(args, "sequence_column", None) or meta.get("sequence_column")
    if _kind(model) == "gmm":
        seq_col = None
    X, names = numeric_block(df, columns, exclude=(seq_col,) if seq_col else ())
    D = _n_features(model)
    if X.shape[1] != D:
        raise ValueError(
            f"the model was fitted on {D} column(s) but {X.shape[1]} were chosen "
            f"({', '.join(names)}); pick the model's columns with --columns"
        )
    if len(X) == 0:
        raise ValueError("the table has no rows")
    if _kind(model) == "gmm":
        return X, None, None, names
    if seq_col:
        order, lengths, _ = sequence_lengths(df, seq_col)
        return X[order], lengths, order, names
    return X, None, None, names


def _note_identifiers(df, seq_col) -> None:
    from latentem._tables import identifier_columns

    ids = identifier_columns(df, (seq_col,) if seq_col else ())
    if ids:
        print(
            f"note: left out {', '.join(repr(c) for c in ids)}: integer identifiers (distinct "
            "values); name the columns to use with --columns"
        )


# ---------------------------------------------------------------------- commands
def _fit(args: argparse.Namespace) -> int:
    from latentem._tables import check_output, numeric_block, read_table, sequence_lengths

    if args.model == "regime":
        return _fit_regime(args)
    if args.components < 1:
        raise _Usage("--components must be at least 1")
    if args.max_iter < 1:
        raise _Usage("--max-iter must be at least 1")
    check_output(args.output, (args.input,))  # before the work, not after it
    df = read_table(args.input)
    seq_col = getattr(args, "sequence_column", None)
    columns = _columns(args.columns)
    if seq_col and columns and seq_col in columns:
        raise ValueError(f"the sequence column {seq_col!r} cannot also be a model column")
    X, names = numeric_block(df, columns, exclude=(seq_col,) if seq_col else ())
    if len(X) == 0:
        raise ValueError(f"{args.input} has no rows")
    if columns is None:
        _note_identifiers(df, seq_col)
    verbose = _progress(args)
    lengths = None
    if args.model == "gmm":
        from latentem import GaussianMixture

        model = GaussianMixture(
            args.components,
            covariance_type=args.covariance_type or "full",
            n_init=args.n_init,
            max_iter=args.max_iter,
            tol=args.tol,
            random_state=args.seed,
            verbose=verbose,
        )
        model.fit(X)
        ll = model.score(X) * len(X)
        bic = model.bic(X)
        it = f"{model.n_iter_} EM iterations"
    else:
        model = _new_hmm(args, verbose, names)
        if seq_col:
            order, lengths, _ = sequence_lengths(df, seq_col)
            X = X[order]
        model.fit(X, lengths)
        ll = model.score(X, lengths)
        bic = model.bic(X, lengths)
        it = f"{model.n_iter_} Baum-Welch iterations"
    metadata = {
        "command": "fit",
        "kind": args.model,
        "columns": names,
        "sequence_column": seq_col,
        "trained_on": os.path.basename(args.input),
        "n_rows": int(len(X)),
    }
    if lengths is not None:
        metadata["n_sequences"] = int(len(lengths))
    model.save(args.output, metadata=metadata)
    status = "converged" if model.converged_ else "stopped at --max-iter"
    seqs = f" in {len(lengths)} sequences" if lengths is not None else ""
    print(
        f"Fitted {type(model).__name__} with {args.components} "
        f"{'components' if args.model == 'gmm' else 'states'} on {len(X)} rows{seqs} "
        f"x {len(names)} column(s): {', '.join(names)}"
    )
    print(f"{status} after {it}")
    print(f"log-likelihood {_fmt(ll)} (mean per row {_fmt(ll / len(X))}), BIC {_fmt(bic)}")
    print(f"saved to {args.output}")
    return 0


def _fit_regime(args: argparse.Namespace) -> int:
    from latentem._tables import check_output
    from latentem.cli_regime import fit_regime

    if args.max_iter < 1:
        raise _Usage("--max-iter must be at least 1")
    check_output(args.output, (args.input,))
    model, metadata, summary = fit_regime(args, _progress(args))
    model.save(args.output, metadata=metadata)
    print(summary)
    print(f"saved to {args.output}")
    return 0


def _new_hmm(args: argparse.Namespace, verbose: bool, names: list[str]):
    from latentem import CategoricalHMM, GaussianHMM, PoissonHMM

    common = dict(n_iter=args.max_iter, tol=args.tol, random_state=args.seed, verbose=verbose)
    common["n_init"] = args.n_init
    if args.emission == "gaussian":
        return GaussianHMM(
            args.components, covariance_type=args.covariance_type or "diag", **common
        )
    if args.covariance_type:
        raise _Usage("--covariance-type applies to --emission gaussian only")
    if args.emission == "poisson":
        return PoissonHMM(args.components, **common)
    if args.emission != "categorical":
        # any other registered family, in the generic HMM
        from latentem import HMM
        from latentem.registry import family_for_cli

        family = family_for_cli(args.emission).cls(args.components)
        return HMM(args.components, emission=family, **common)
    if len(names) != 1:
        raise ValueError(
            f"--emission categorical needs exactly one column of symbols 0, 1, 2, ...; "
            f"got {len(names)} ({', '.join(names)}); choose it with --columns"
        )
    return CategoricalHMM(args.components, **common)


def _predict(args: argparse.Namespace) -> int:
    from latentem._tables import check_output, read_table, table_format, write_table

    check_output(args.output, (args.input, args.model))
    table_format(args.output)
    model, meta = _load(args.model)
    _require_fitted(model, args.model)
    df = read_table(args.input)
    kind = _kind(model)
    if kind == "regime":
        from latentem.cli_regime import predict_regime

        K = int(model.k_regimes)
        first, (values, proba) = "regime", predict_regime(model, meta, df, args)
    else:
        X, lengths, order, _ = _model_data(model, meta, df, args)
        K = int(model.n_components)
    if kind == "gmm":
        first, values = "label", model.predict(X)
        proba = model.predict_proba(X)
    elif kind == "hmm":
        first = "state"
        values = model.predict(X, lengths)
        proba = model.predict_proba(X, lengths)
        if order is not None:  # back to the table's row order
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            values, proba = values[inverse], proba[inverse]
    new = [first] + [f"proba_{k}" for k in range(K)]
    clash = [c for c in new if c in {str(c) for c in df.columns}]
    if clash:
        raise ValueError(
            f"the table already has a column named {clash[0]!r}; rename it before predicting"
        )
    out = df.copy()
    out[first] = np.asarray(values, dtype=np.int64)
    for k in range(K):
        out[f"proba_{k}"] = proba[:, k]
    write_table(out, args.output)
    values = np.asarray(values, dtype=np.int64)
    counts = np.bincount(values[values >= 0], minlength=K)
    what = {"label": "component", "state": "state", "regime": "regime"}[first]
    print(f"wrote {len(out)} rows to {args.output}: {first} and proba_0..proba_{K - 1}")
    print(f"rows per {what}: " + ", ".join(f"{k}: {c}" for k, c in enumerate(counts)))
    return 0


def _score(args: argparse.Namespace) -> int:
    from latentem._tables import read_table

    model, meta = _load(args.model)
    _require_fitted(model, args.model)
    df = read_table(args.input)
    if _kind(model) == "regime":
        from latentem.cli_regime import score_regime

        print("\n".join(score_regime(model, meta, df, args)))
        return 0
    X, lengths, _, names = _model_data(model, meta, df, args)
    n = len(X)
    if _kind(model) == "gmm":
        ll = model.score(X) * n
        bic, aic = model.bic(X), model.aic(X)
    else:
        ll = model.score(X, lengths)
        bic, aic = model.bic(X, lengths), model.aic(X, lengths)
    seqs = f" in {len(lengths)} sequences" if lengths is not None else ""
    unit = "components" if _kind(model) == "gmm" else "states"
    print(f"model: {type(model).__name__} with {model.n_components} {unit} ({args.model})")
    print(f"data: {n} rows{seqs} x {len(names)} column(s): {', '.join(names)}")
    print(f"log-likelihood: {_fmt(ll)}")
    print(f"mean log-likelihood per row: {_fmt(ll / n)}")
    print(f"BIC: {_fmt(bic)}")
    print(f"AIC: {_fmt(aic)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from latentem.persistence import describe

    info = describe(args.model)
    model, meta = _load(args.model)
    print(f"model file: {args.model}")
    print(
        f"class: {info['class']} (format version {info['format_version']}, written by latentem "
        f"{info['latentem_version']} at {info['saved_at']})"
    )
    if meta.get("trained_on"):
        seqs = f" in {meta['n_sequences']} sequences" if meta.get("n_sequences") else ""
        print(f"trained on: {meta['trained_on']} ({meta.get('n_rows', '?')} rows{seqs})")
    if meta.get("columns"):
        print(f"columns: {', '.join(meta['columns'])}")
    if meta.get("column"):
        exog = f" on {', '.join(meta['exog'])}" if meta.get("exog") else ""
        print(f"response: {meta['column']}{exog}")
    if meta.get("sequence_column"):
        print(f"sequence column: {meta['sequence_column']}")
    params = ", ".join(f"{k}={v!r}" for k, v in info["params"].items())
    if params:
        print(f"parameters: {params}")
    with np.printoptions(precision=4, suppress=True, threshold=60, linewidth=100):
        for name, value in _fitted_arrays(model):
            text = np.array2string(np.asarray(value), prefix="  ")
            print(f"{name}:\n  {text}")
    return 0


def _emission_names() -> list[str]:
    """Command-line names of the registered emission families (``--emission``)."""
    import latentem.families  # noqa: F401  (registers the built-in families)
    from latentem.registry import entries

    return sorted(e.cli for e in entries(kind="family") if e.cli)


def _fitted_arrays(model) -> list[tuple[str, np.ndarray]]:
    try:
        kind = _kind(model)
    except ValueError:
        return []
    from latentem.registry import entry_for

    if kind == "regime":
        names = ("transmat_", "coef_", "ar_coef_", "sigma2_")
        values = [(n, getattr(model, n, None)) for n in names]
        return [(n, v) for n, v in values if isinstance(v, np.ndarray)]
    if kind == "gmm":
        if not model._fitted():
            return []
        out = [("weights_", model.weights_)]
        family = model._emission()
    else:
        if model.startprob_ is None:
            return []
        out = [("startprob_", model.startprob_), ("transmat_", model.transmat_)]
        family = model.emission
    found = entry_for(type(family))
    for attr in () if found is None else found.fitted:
        value = getattr(family, attr, None)
        if isinstance(value, np.ndarray):
            out.append((attr, value))
    if kind == "gmm":
        out.append(("converged_", np.array(model.converged_)))
    return out


def _run_impute(args: argparse.Namespace) -> int:
    from latentem.cli_impute import impute

    return impute(args)


class _Usage(Exception):
    """A bad option value found after parsing: exit code 2."""


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``latentem`` command (all sub-commands)."""
    from latentem import __version__

    parser = _Parser(
        prog="latentem",
        description="Fit latent-variable models by expectation-maximization, fast. "
        "Tables are CSV, TSV or Parquet files, chosen by extension.",
        epilog="Run 'latentem COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"latentem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="fit Gaussian mixtures to the Old Faithful data that ships with latentem",
        description="Fit Gaussian mixtures with 1..K components to the Old Faithful geyser "
        "data shipped with latentem, pick the number of components by BIC and print it.",
    )
    demo.add_argument("--max-components", type=int, default=4, help="largest K to try (default 4)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)

    def columns_option(p, what):
        p.add_argument(
            "--columns",
            action="append",
            metavar="COLS",
            help=f"comma-separated names of the {what} (repeatable; default: every numeric column)",
        )

    def fit_options(p):
        p.add_argument("--max-iter", type=int, default=100, help="EM iterations (default 100)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress line")

    fit = sub.add_parser(
        "fit",
        help="fit a Gaussian mixture or a hidden Markov model to a table and save it",
        description="Fit a model to the numeric columns of a table and save it to a model "
        "file (JSON + npz, no pickle) for predict, score and info.",
    )
    fit_sub = fit.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    fit.set_defaults(run=None, parser=fit)
    gmm = fit_sub.add_parser(
        "gmm",
        help="Gaussian mixture (clustering)",
        description="Fit a Gaussian mixture to the numeric columns of IN (rows must be "
        "complete) and save it.",
    )
    hmm = fit_sub.add_parser(
        "hmm",
        help="hidden Markov model (rows in time order)",
        description="Fit a hidden Markov model to the rows of IN, in time order. With "
        "--sequence-column, rows are grouped into sequences by that column (row order is kept "
        "within each sequence). Gaussian emissions accept missing values.",
    )
    for p, what in ((gmm, "components"), (hmm, "states")):
        p.add_argument("input", metavar="IN", help="input table (.csv, .tsv or .parquet)")
        p.add_argument("-o", "--output", metavar="MODEL", required=True, help="model file")
        p.add_argument(
            "-k", "--components", type=int, required=True, metavar="K", help=f"number of {what}"
        )
        columns_option(p, "columns to model")
        p.add_argument("--n-init", type=int, default=1, help="restarts; the best is kept")
        p.add_argument("--tol", type=float, default=1e-6, help="convergence tolerance")
        fit_options(p)
        p.set_defaults(run=_fit)
    gmm.add_argument(
        "--covariance-type",
        choices=("full", "tied", "diag", "spherical"),
        default=None,
        help="covariance structure (default full)",
    )
    hmm.add_argument("--sequence-column", metavar="COL", help="column holding sequence ids")
    from latentem.cli_regime import add_parser as add_regime_parser

    add_regime_parser(fit_sub, fit_options, _fit)
    hmm.add_argument(
        "--emission",
        choices=_emission_names(),
        default="gaussian",
        help="emission distribution (default gaussian): every family registered with a "
        "command-line name",
    )
    hmm.add_argument(
        "--covariance-type",
        choices=("full", "tied", "diag", "spherical"),
        default=None,
        help="covariance structure of Gaussian emissions (default diag)",
    )

    predict = sub.add_parser(
        "predict",
        help="add labels (or Viterbi states) and probabilities to a table",
        description="Write IN with new columns: 'label' (most probable component) for a "
        "Gaussian mixture or 'state' (Viterbi path) for an HMM, and 'proba_0'.. (posterior "
        "probabilities).",
    )
    score = sub.add_parser(
        "score",
        help="log-likelihood, BIC and AIC of a table under a saved model",
        description="Print the log-likelihood, BIC and AIC of IN under MODEL.",
    )
    for p in (predict, score):
        p.add_argument("model", metavar="MODEL", help="model file written by 'latentem fit'")
        p.add_argument("input", metavar="IN", help="input table (.csv, .tsv or .parquet)")
        columns_option(p, "model's columns (default: those it was fitted on)")
        p.add_argument(
            "--sequence-column",
            metavar="COL",
            help="HMMs: column holding sequence ids (default: as in fit)",
        )
    predict.add_argument("-o", "--output", metavar="OUT", required=True, help="output table")
    predict.set_defaults(run=_predict)
    score.set_defaults(run=_score)

    info = sub.add_parser(
        "info",
        help="what a model file holds",
        description="Print a model file's class, parameters, training data and fitted values.",
    )
    info.add_argument("model", metavar="MODEL", help="model file")
    info.set_defaults(run=_info)

    impute = sub.add_parser(
        "impute",
        help="fill the missing values of a table (numbers, counts, flags and text categories)",
        description="Fill the missing values of IN by EM under one latent-class model over "
        "its columns (numeric columns under a normal per class, text and 0/1 columns as "
        "categories; see MixedImputer) and write the same columns, in the same order, to OUT. "
        "Identifier columns (distinct sorted integers, or named like id) and free text (more "
        "distinct values than half the rows) are left untouched. With --multiple M, write M "
        "imputed copies OUT_1 .. OUT_M drawn with parameter uncertainty (multiple imputation). "
        "CSV and TSV need nothing beyond latentem; Parquet needs pandas and pyarrow.",
    )
    impute.add_argument("input", metavar="IN", help="input table (.csv, .tsv or .parquet)")
    impute.add_argument("-o", "--output", metavar="OUT", required=True, help="output table")
    impute.add_argument(
        "-k",
        "--components",
        type=int,
        default=None,
        metavar="K",
        help="latent classes (default: chosen on held-out cells)",
    )
    impute.add_argument(
        "-m", "--multiple", type=int, default=1, metavar="M", help="number of imputed copies"
    )
    columns_option(impute, "columns to impute and impute from")
    fit_options(impute)
    impute.set_defaults(run=_run_impute)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latentem`` console script.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 1 error, 2 usage error, 130 interrupted.

    Examples
    --------
    >>> from latentem.cli import main
    >>> main(["demo", "--max-components", "2"])  # doctest: +ELLIPSIS
    latentem demo: Gaussian mixtures on the Old Faithful geyser data (272 eruptions,
    ...
    Best: 2 components, ...
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        (getattr(args, "parser", None) or parser).print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "demo" and args.max_components < 1:
        print("latentem: error: --max-components must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = int(args.run(args))
        for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught):
            print(f"latentem: warning: {message}", file=sys.stderr)
        return code
    except _Usage as exc:
        print(f"latentem: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, FloatingPointError) as exc:
        print(f"latentem: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("latentem: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, unless asked for the traceback
        if os.environ.get("LATENTEM_DEBUG"):
            raise
        print(
            f"latentem: error: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(a bug: please report it; LATENTEM_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
