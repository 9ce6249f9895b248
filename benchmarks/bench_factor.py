"""latentem.FactorAnalysis vs scikit-learn's, side by side in one process; MCFA on iris.

Cases:

* **complete**: N=100,000 x D=50 drawn from a 10-factor model; scikit-learn's
  ``FactorAnalysis(10)`` with its defaults (randomized SVD, ``tol=1e-2`` on
  the total log-likelihood) and with ``svd_method="lapack"``; latentem's
  ``FactorAnalysis(10)`` with its defaults, and stopped as soon as its
  log-likelihood reaches scikit-learn's default answer ("to the same
  log-likelihood"). Log-likelihoods are totals over the rows, evaluated at
  the returned parameters.
* **20% missing**: the same table with 20% of the cells hidden completely at
  random (scikit-learn rejects it); latentem marginalises them. The fitted
  covariance is compared with the complete-data fit.
* **iris**: MCFA (``shared_loadings=True``) and MFA, g=3, q=2: ARI against
  the species, log-likelihood, iterations (EMMIXmfa's README: MCFA ARI 0.96).

latentem is timed after a warm-up fit on a tiny table (numba compilation,
or loading it from the cache, excluded).

Target (issue 17): FactorAnalysis on 100,000 x 50, 10 factors, at least as
fast as scikit-learn's to the same log-likelihood, and it accepts 20%
missing cells.

Run:  python benchmarks/bench_factor.py            (full sizes)
      python benchmarks/bench_factor.py --quick    (N=10,000, smoke test)

On a shared machine give every library one thread
(``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1``): busy
BLAS threads can make a single ``X.T @ X`` ten times slower.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np


def make_data(n, D, q, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(D, q))
    psi = rng.uniform(0.5, 2.0, D)
    return rng.normal(size=(n, q)) @ W.T + rng.normal(size=(n, D)) * np.sqrt(psi) + 1.0


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N=10,000 instead of 100,000")
    args = ap.parse_args(argv)
    from sklearn.decomposition import FactorAnalysis as SkFA

    import latentem
    from latentem import FactorAnalysis, MixtureOfFactorAnalyzers

    n = 10_000 if args.quick else 100_000
    D, q = 50, 10
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; latentem {latentem.__version__}"
    )
    X = make_data(n, D, q)
    warm = make_data(500, D, q, seed=1)  # compile / load the kernels
    FactorAnalysis(q).fit(warm)
    warm[::3, ::4] = np.nan
    FactorAnalysis(q).fit(warm)

    print(f"\n## complete data: {n:,} x {D}, {q} factors")
    print("| method | seconds | iterations | log-likelihood |")
    print("|---|---:|---:|---:|")
    sk, t_sk = timed(lambda: SkFA(q, random_state=0).fit(X))
    ll_sk = sk.score(X) * n
    print(f"| scikit-learn (randomized, tol=1e-2) | {t_sk:.2f} | {sk.n_iter_} | {ll_sk:.4f} |")
    skl, t_skl = timed(lambda: SkFA(q, svd_method="lapack").fit(X))
    ll_skl = skl.score(X) * n
    print(f"| scikit-learn (lapack, tol=1e-2) | {t_skl:.2f} | {skl.n_iter_} | {ll_skl:.4f} |")
    ours, t_ours = timed(lambda: FactorAnalysis(q).fit(X))
    ll_ours = ours.score(X) * n
    print(f"| latentem (defaults) | {t_ours:.2f} | {ours.n_iter_} | {ll_ours:.4f} |")

    def stop_at_sklearn(info):
        return bool(info.log_likelihood >= ll_sk)

    def to_same():
        model = FactorAnalysis(q, tol=0, max_iter=100_000)
        res = latentem.fit_em(
            model, X, max_iter=100_000, tol=0, accelerate="squarem", callback=stop_at_sklearn
        )
        return model, res

    (same, res), t_same = timed(to_same)
    ll_same = same.score(X) * n
    print(
        f"| latentem, stopped at scikit-learn's log-likelihood | {t_same:.2f} | "
        f"{res.n_iter} | {ll_same:.4f} |"
    )
    print(
        f"\nspeed-up to the same log-likelihood: {t_sk / t_same:.1f}x (randomized), "
        f"{t_skl / t_same:.1f}x (lapack); latentem's default fit: {t_sk / t_ours:.1f}x, "
        f"{ll_ours - ll_sk:+.4f} in log-likelihood"
    )

    print(f"\n## 20% of the cells missing: {n:,} x {D}, {q} factors")
    rng = np.random.default_rng(1)
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    try:
        SkFA(q).fit(Xm)
        print("scikit-learn: accepted NaN")
    except ValueError as exc:
        print(f"scikit-learn: ValueError: {str(exc).splitlines()[0][:70]}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", latentem.LikelihoodDecreaseWarning)
        gap, t_gap = timed(lambda: FactorAnalysis(q).fit(Xm))
    C_ref = ours.get_covariance()
    err = np.abs(gap.get_covariance() - C_ref).max() / np.abs(C_ref).max()
    print(
        f"latentem: {t_gap:.2f} s, {gap.n_iter_} iterations, converged={gap.converged_}, "
        f"history never decreases: {bool(np.all(np.diff(gap.history_) >= 0))}, "
        f"covariance vs the complete-data fit: max abs difference {err:.4f} of the largest entry"
    )

    print("\n## iris, g=3, q=2 (EMMIXmfa's README: MCFA ARI 0.96)")
    from sklearn.datasets import load_iris
    from sklearn.metrics import adjusted_rand_score

    Xi, yi = load_iris(return_X_y=True)
    print("| model | seconds | iterations | log-likelihood | ARI |")
    print("|---|---:|---:|---:|---:|")
    for name, shared in (("MCFA", True), ("MFA", False)):
        m, t = timed(
            lambda shared=shared: MixtureOfFactorAnalyzers(
                3, n_factors=2, shared_loadings=shared, random_state=0
            ).fit(Xi)
        )
        ari = adjusted_rand_score(yi, m.predict(Xi))
        ll = m.score(Xi) * len(Xi)
        print(f"| {name} | {t:.2f} | {m.n_iter_} | {ll:.4f} | {ari:.4f} |")
    print(f"\n# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
