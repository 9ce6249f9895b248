"""SQUAREM against plain EM on slow-converging problems (heavily overlapping components).

Both run in this process on the same data from the same starting parameters.
The target is the log-likelihood the plain-EM run converges to (tol 1e-10 on
the mean per-sample log-likelihood); we report the wall time each method
needs to first reach it (within 1e-7 per sample) and the ratio.

    python benchmarks/bench_squarem.py
"""

from __future__ import annotations

import copy
import platform
import runpy
import time
import warnings
from pathlib import Path

import numpy as np

import latentem

ROOT = Path(__file__).resolve().parents[1]


def time_to_target(model, X, target_mean, accelerate, max_iter):
    """Seconds and E-steps until the mean log-likelihood first reaches target_mean."""
    hit = {}
    start = time.perf_counter()

    def cb(info):
        if "t" not in hit and info.log_likelihood / len(X) >= target_mean:
            hit["t"] = time.perf_counter() - start
            hit["iter"] = info.iteration
            return True
        return False

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        result = latentem.fit_em(
            model, X, max_iter=max_iter, tol=0, accelerate=accelerate, callback=cb, warm_start=True
        )
    return hit.get("t", float("nan")), result.n_e_steps, hit.get("iter", -1)


def compare(name, make_model, X, max_iter=20000):
    base = make_model()
    base.init_params(X, np.random.default_rng(0))
    reference = copy.deepcopy(base)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        ref = latentem.fit_em(reference, X, max_iter=max_iter, tol=1e-10, warm_start=True)
    target = ref.log_likelihood / len(X) - 1e-7
    t_plain, e_plain, _ = time_to_target(copy.deepcopy(base), X, target, None, max_iter)
    t_sq, e_sq, _ = time_to_target(copy.deepcopy(base), X, target, "squarem", max_iter)
    print(
        f"{name:<38} {e_plain:>8d} {t_plain * 1e3:>10.1f} {e_sq:>8d} {t_sq * 1e3:>10.1f} "
        f"{t_plain / t_sq:>7.1f}x"
    )


def main():
    print(
        f"# SQUAREM vs plain EM, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"numpy {np.__version__}"
    )
    print(
        f"{'problem':<38} {'EM E-st':>8} {'EM ms':>10} {'SQ E-st':>8} {'SQ ms':>10} {'speedup':>8}"
    )
    poisson = runpy.run_path(str(ROOT / "examples" / "custom_model.py"))["PoissonMixture"]
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.poisson(5.0, 20000), rng.poisson(7.0, 20000)]).astype(float)
    compare("Poisson mixture, rates 5 vs 7, n=40k", lambda: poisson(2), X)
    if hasattr(latentem, "GaussianMixture"):
        rng = np.random.default_rng(2)
        X = np.concatenate([rng.normal(0.0, 1.0, (20000, 2)), rng.normal(1.0, 1.0, (20000, 2))])
        for cov in ("full", "diag"):
            compare(
                f"GaussianMixture {cov}, means 1 sd apart, n=40k",
                lambda cov=cov: latentem.GaussianMixture(2, covariance_type=cov),
                X,
                max_iter=5000,
            )


if __name__ == "__main__":
    main()
