"""The ``latentem`` command line.

Errors print one line on stderr and exit with a non-zero code; a traceback
is a bug.
"""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentem",
        description="Fit latent-variable models by expectation-maximization, fast.",
    )
    from latentem import __version__

    parser.add_argument("--version", action="version", version=f"latentem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="fit Gaussian mixtures to the Old Faithful data that ships with latentem",
        description="Fit Gaussian mixtures with 1..K components to the Old Faithful geyser "
        "data shipped with latentem, pick the number of components by BIC and print it.",
    )
    demo.add_argument("--max-components", type=int, default=4, help="largest K to try (default 4)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``latentem`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "demo" and args.max_components < 1:
        print("latentem: error: --max-components must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except (ValueError, OSError) as exc:
        print(f"latentem: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("latentem: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
