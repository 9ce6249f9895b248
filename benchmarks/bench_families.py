"""The Student-t and Bernoulli families against their peers, side by side in one process.

(a) A 3-component, 5-D Student-t mixture (full scales, degrees of freedom
estimated) on 20,000 rows, latentem's StudentTFamily under a Categorical node
against studenttmixture's EMStudentMixture; (b) latent class analysis, 3
classes over 12 binary items with 10% gaps on 20,000 rows, latentem's
BernoulliFamily against StepMix ("binary_nan"). Both sides run a fixed
number of EM iterations; the table gives the time per iteration (median of
a few runs) and the ratio.

    python benchmarks/bench_families.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import time
import warnings

import numpy as np

from latentem import Categorical, Family, ModelGraph
from latentem.families.bernoulli import BernoulliFamily
from latentem.families.student_t import StudentTFamily


def t_data(n, seed=0):
    rng = np.random.default_rng(seed)
    K, D = 3, 5
    truth = StudentTFamily(K, "full")
    truth.means_ = rng.normal(scale=4.0, size=(K, D))
    A = rng.normal(size=(K, D, D)) * 0.4
    truth.scales_ = A @ A.transpose(0, 2, 1) + np.eye(D)
    truth.dof_ = np.array([3.0, 6.0, 20.0])
    truth.check_params()
    return truth.sample(rng.integers(0, K, n), rng)


def lca_data(n, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, size=(3, 12))
    X = (rng.random((n, 12)) < probs[rng.integers(0, 3, n)]).astype(float)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def graph(family):
    g = ModelGraph()
    g.add_node("z", Categorical(3))
    g.add_node("x", Family(family, name="family"))
    g.add_edge("z", "x")
    return g


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rows and iterations")
    args = parser.parse_args()
    n, n_iter, repeat = (4000, 10, 2) if args.quick else (20000, 30, 3)
    warnings.simplefilter("ignore")
    from stepmix.stepmix import StepMix
    from studenttmixture import EMStudentMixture

    print(f"# {platform.processor() or platform.machine()}, {n} rows, {n_iter} EM iterations")
    X = t_data(n)

    def ours_t():
        graph(lambda k: StudentTFamily(k, "full")).fit(X, random_state=0, max_iter=n_iter, tol=0.0)

    def peer_t():
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "did not converge"
            EMStudentMixture(3, tol=1e-300, max_iter=n_iter, fixed_df=False, random_state=0).fit(X)

    ours_t(), peer_t()  # compile, warm caches
    a, b = timed(ours_t, repeat) / n_iter, timed(peer_t, repeat) / n_iter
    print(
        f"t mixture (full, dof estimated)  latentem {1e3 * a:8.2f} ms/iter  "
        f"studenttmixture {1e3 * b:8.2f} ms/iter  ratio {b / a:5.2f}x"
    )

    Y = lca_data(n)

    def ours_lca():
        graph(lambda k: BernoulliFamily(k)).fit(Y, random_state=0, max_iter=n_iter, tol=0.0)

    def peer_lca():
        StepMix(
            n_components=3,
            measurement="binary_nan",
            max_iter=n_iter,
            abs_tol=1e-300,
            rel_tol=1e-300,
            random_state=0,
            verbose=0,
            progress_bar=0,
        ).fit(Y)

    ours_lca(), peer_lca()
    a, b = timed(ours_lca, repeat) / n_iter, timed(peer_lca, repeat) / n_iter
    print(
        f"latent class analysis (gaps)     latentem {1e3 * a:8.2f} ms/iter  "
        f"StepMix         {1e3 * b:8.2f} ms/iter  ratio {b / a:5.2f}x"
    )


if __name__ == "__main__":
    main()
