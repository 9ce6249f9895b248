"""latentem.GaussianMixture vs scikit-learn, side by side in one process.

Same data, same initial parameters (weights_init / means_init /
precisions_init), tol=0. The time per iteration is the difference between the
best of ``--repeats`` fits of ``--iters + 1`` iterations and the best of
``--repeats`` fits of 1 iteration, divided by ``--iters``, so that set-up
and the final E-step cancel out. (scikit-learn gets ``init_params="random"``
so that its unused initialisation costs little; the user's arrays
override it.)

Then time-to-first-fit of a small model from a fresh Python process, with a
warm numba cache and with an empty one, next to scikit-learn's.

Run:  python benchmarks/bench_gmm.py            (full table)
      python benchmarks/bench_gmm.py --quick    (small sizes, smoke test)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

CASES = [(200_000, 16, 8), (1_000_000, 4, 4), (50_000, 64, 8)]
QUICK = [(20_000, 16, 8), (100_000, 4, 4), (5_000, 64, 8)]


def make_data(n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(k, d))
    labels = rng.integers(k, size=n)
    X = centers[labels] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, size=(k, d))[labels]
    means = X[rng.choice(n, k, replace=False)]
    weights = np.full(k, 1.0 / k)
    var = X.var(axis=0)
    return X, weights, means, var


def precisions(var, k, ct):
    d = len(var)
    if ct == "full":
        return np.broadcast_to(np.diag(1.0 / var), (k, d, d)).copy()
    if ct == "diag":
        return np.tile(1.0 / var, (k, 1))
    if ct == "tied":
        return np.diag(1.0 / var)
    return np.full(k, 1.0 / var.mean())


def time_fit(cls, X, k, ct, init, n_iter, extra):
    w, m, p = init
    est = cls(
        k,
        covariance_type=ct,
        max_iter=n_iter,
        tol=0,
        weights_init=w,
        means_init=m,
        precisions_init=p,
        **extra,
    )
    t = time.perf_counter()
    est.fit(X)
    return time.perf_counter() - t


def per_iteration(cls, X, k, ct, init, iters, extra, repeats):
    t1 = min(time_fit(cls, X, k, ct, init, 1, extra) for _ in range(repeats))
    tn = min(time_fit(cls, X, k, ct, init, iters + 1, extra) for _ in range(repeats))
    return max(tn - t1, 1e-9) / iters


def first_fit_seconds(code, env=None):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t


FIRST_FIT = (
    "import numpy as np\n"
    "try:\n"
    "    from latentem import GaussianMixture\n"
    "except ImportError:\n"
    "    from latentem.models.gaussian_mixture import GaussianMixture\n"
    "X = np.random.default_rng(0).normal(size=(1000, 2))\n"
    "GaussianMixture(3, random_state=0).fit(X)\n"
)
FIRST_FIT_SK = (
    "import numpy as np\n"
    "from sklearn.mixture import GaussianMixture\n"
    "X = np.random.default_rng(0).normal(size=(1000, 2))\n"
    "GaussianMixture(3, random_state=0).fit(X)\n"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per fit")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many fits")
    ap.add_argument("--no-first-fit", action="store_true", help="skip the fresh-process timings")
    ap.add_argument(
        "--case",
        help="only this case, N,D,K (e.g. 50000,64,8)",
        type=lambda s: tuple(map(int, s.split(","))),
    )
    args = ap.parse_args()

    import numba
    import sklearn
    from sklearn.mixture import GaussianMixture as SkGM

    from latentem.models.gaussian_mixture import GaussianMixture

    warnings.simplefilter("ignore")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numba {numba.__version__} ({numba.get_num_threads()} threads), "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    # compile outside the timings
    Xw, w, m, var = make_data(500, 3, 2)
    for ct in ("full", "diag"):
        time_fit(GaussianMixture, Xw, 2, ct, (w, m, precisions(var, 2, ct)), 2, {})
    Xw, w, m, var = make_data(2000, 32, 2)  # the kernel for many features
    time_fit(GaussianMixture, Xw, 2, "full", (w, m, precisions(var, 2, "full")), 2, {})

    print()
    print("| N | D | K | covariance | scikit-learn ms/iter | latentem ms/iter | speed-up | load |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for n, d, k in [args.case] if args.case else QUICK if args.quick else CASES:
        X, w, m, var = make_data(n, d, k)
        for ct in ("full", "diag"):
            init = (w, m, precisions(var, k, ct))
            sk = per_iteration(
                SkGM, X, k, ct, init, args.iters, {"init_params": "random"}, args.repeats
            )
            ours = per_iteration(GaussianMixture, X, k, ct, init, args.iters, {}, args.repeats)
            print(
                f"| {n:,} | {d} | {k} | {ct} | {sk * 1e3:.1f} | {ours * 1e3:.1f} "
                f"| {sk / ours:.1f}x | {os.getloadavg()[0]:.2f} |",
                flush=True,
            )

    if args.no_first_fit:
        return
    print()
    print("Time to first fit from a fresh process (import + fit of 1000 x 2, K=3):")
    first_fit_seconds(FIRST_FIT)  # make sure the cache is warm
    warm = min(first_fit_seconds(FIRST_FIT) for _ in range(3))
    with tempfile.TemporaryDirectory() as cache:
        cold = first_fit_seconds(FIRST_FIT, env={**os.environ, "NUMBA_CACHE_DIR": cache})
    skt = min(first_fit_seconds(FIRST_FIT_SK) for _ in range(3))
    print(f"- latentem, numba cache warm: {warm:.2f} s")
    print(f"- latentem, empty numba cache (compiles the kernels): {cold:.2f} s")
    print(f"- scikit-learn: {skt:.2f} s")


if __name__ == "__main__":
    main()
