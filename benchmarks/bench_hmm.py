"""GaussianHMM: latentem against hmmlearn, side by side in one process.

Same data, same initial parameters: 8 states, 4-D diagonal Gaussians,
(a) one sequence of 200,000 steps and (b) 5,000 sequences of 40 steps.
Times one Baum-Welch iteration (median of a few), score and Viterbi.

Then HiddenMarkovModels.jl's published comparison workload (small data, where
fixed costs per iteration show): 1-D Gaussian emissions, 50 sequences of 100
steps, K = 2, 8 and 10 states; a whole fit of 5 Baum-Welch iterations from the
same parameters, then score and Viterbi (median of several runs each).

    python benchmarks/bench_hmm.py [--quick] [--small]

``--small`` runs only HiddenMarkovModels.jl's workload.
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
from hmmlearn import hmm as hl

import latentem

K, D = 8, 4


def make_data(n_seq, length, seed=0):
    rng = np.random.RandomState(seed)
    truth = hl.GaussianHMM(K, "diag", init_params="")
    truth.startprob_ = np.full(K, 1.0 / K)
    truth.transmat_ = 0.9 * np.eye(K) + 0.1 / K
    truth.means_ = rng.normal(scale=3.0, size=(K, D))
    truth.covars_ = rng.uniform(0.5, 1.5, size=(K, D))
    parts = [truth.sample(length, random_state=rng)[0] for _ in range(n_seq)]
    return np.concatenate(parts), np.full(n_seq, length)


def start_params(X, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "startprob_": np.full(K, 1.0 / K),
        "transmat_": 0.5 * np.eye(K) + 0.5 * rng.dirichlet(np.ones(K), size=K),
        "means_": X[rng.choice(len(X), K, replace=False)].copy(),
        "covars_": np.tile(X.var(axis=0), (K, 1)),
    }


def configured(cls, params, n_iter):
    model = cls(K, "diag", init_params="", n_iter=n_iter)
    for name, value in params.items():
        setattr(model, name, value.copy())
    if cls is hl.GaussianHMM:
        model.tol = -np.inf  # never stop early
    else:
        model.tol = 0.0
    return model


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench(name, X, lengths, n_iter, repeat):
    params = start_params(X)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Warm-up (numba compile / cache load) outside the timings.
        configured(latentem.GaussianHMM, params, 1).fit(X[:1000], [1000])
        fit_ours = timed(
            lambda: configured(latentem.GaussianHMM, params, n_iter).fit(X, lengths), repeat
        )
        fit_theirs = timed(lambda: configured(hl.GaussianHMM, params, n_iter).fit(X, lengths), 1)
    rows.append(("fit, per iteration", fit_theirs / n_iter, fit_ours / n_iter))
    ours = configured(latentem.GaussianHMM, params, 1)
    theirs = configured(hl.GaussianHMM, params, 1)
    ours.score(X, lengths)  # the first call on a large input loads its kernels
    ours.decode(X, lengths)
    rows.append(
        (
            "score",
            timed(lambda: theirs.score(X, lengths), 1),
            timed(lambda: ours.score(X, lengths), repeat),
        )
    )
    rows.append(
        (
            "viterbi",
            timed(lambda: theirs.decode(X, lengths), 1),
            timed(lambda: ours.decode(X, lengths), repeat),
        )
    )
    for what, t_theirs, t_ours in rows:
        print(
            f"| {name} | {what} | {t_theirs * 1e3:10.1f} | {t_ours * 1e3:8.1f} "
            f"| {t_theirs / t_ours:6.1f}x |"
        )


def hmmjl(K_states, repeat, seed=0):
    """HiddenMarkovModels.jl's benchmark workload for ``K_states`` states."""
    rng = np.random.RandomState(seed)
    truth = hl.GaussianHMM(K_states, "diag", init_params="")
    truth.startprob_ = rng.dirichlet(np.ones(K_states))
    truth.transmat_ = rng.dirichlet(np.ones(K_states), size=K_states)
    truth.means_ = rng.normal(size=(K_states, 1)) * 3
    truth.covars_ = np.ones((K_states, 1))
    X = np.concatenate([truth.sample(100, random_state=rng)[0] for _ in range(50)])
    lengths = np.full(50, 100)
    params = {
        "startprob_": rng.dirichlet(np.ones(K_states)),
        "transmat_": rng.dirichlet(np.ones(K_states), size=K_states),
        "means_": rng.normal(size=(K_states, 1)),
        "covars_": np.ones((K_states, 1)),
    }

    def model(cls, n_iter):
        m = cls(K_states, "diag", init_params="", n_iter=n_iter)
        for name, value in params.items():
            setattr(m, name, value.copy())
        m.tol = -np.inf if cls is hl.GaussianHMM else 0.0
        return m

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(latentem.GaussianHMM, 1).fit(X, lengths)  # compile / load outside the timings
        rows = [
            (
                "fit, 5 iterations",
                timed(lambda: model(hl.GaussianHMM, 5).fit(X, lengths), repeat),
                timed(lambda: model(latentem.GaussianHMM, 5).fit(X, lengths), repeat),
            )
        ]
        ours, theirs = model(latentem.GaussianHMM, 1), model(hl.GaussianHMM, 1)
        rows.append(
            (
                "score",
                timed(lambda: theirs.score(X, lengths), repeat),
                timed(lambda: ours.score(X, lengths), repeat),
            )
        )
        rows.append(
            (
                "predict (Viterbi)",
                timed(lambda: theirs.predict(X, lengths), repeat),
                timed(lambda: ours.predict(X, lengths), repeat),
            )
        )
    for what, t_theirs, t_ours in rows:
        print(
            f"| 50 x 100, D=1, K={K_states} | {what} | {t_theirs * 1e3:10.2f} "
            f"| {t_ours * 1e3:8.2f} | {t_theirs / t_ours:6.1f}x |"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument(
        "--small", action="store_true", help="only HiddenMarkovModels.jl's small workload"
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    import hmmlearn
    import numba

    print(
        f"# GaussianHMM, K={K}, D={D}, diag; {time.strftime('%Y-%m-%d')}; {platform.machine()}, "
        f"{numba.config.NUMBA_NUM_THREADS} numba threads; hmmlearn {hmmlearn.__version__}"
    )
    if not args.small:
        print("| data | operation | hmmlearn ms | latentem ms | speed-up |")
        print("| --- | --- | ---: | ---: | ---: |")
        X, lengths = make_data(1, 200_000 // scale)
        bench(f"(a) 1 x {200_000 // scale}", X, lengths, n_iter=3, repeat=3)
        X, lengths = make_data(5000 // scale, 40)
        bench(f"(b) {5000 // scale} x 40", X, lengths, n_iter=3, repeat=3)
        print()
    print("HiddenMarkovModels.jl's workload (medians; its published one-thread medians for")
    print("K=10, fit of 5 iterations: HiddenMarkovModels.jl 15.8 ms, hmmlearn 32.1 ms):")
    print()
    print("| data | operation | hmmlearn ms | latentem ms | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for k in (2, 8, 10):
        hmmjl(k, repeat=5 if args.quick else 21)


if __name__ == "__main__":
    main()
