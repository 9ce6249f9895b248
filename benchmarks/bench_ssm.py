"""LinearGaussianSSM (Kalman-smoother EM) against statsmodels and pykalman.

Run:  python benchmarks/bench_ssm.py [nile] [pykalman] [many] [factor] [compile] [--quick]
[--sm-maxiter=N] [--sm-seconds=S]  (all four by default; --quick: 1,000 steps
instead of 5,000 in the factor model; --sm-maxiter=N, --sm-seconds=S: statsmodels' caps there, 1000
iterations and 600 s by default)

1. Nile, local level: statsmodels' ``UnobservedComponents(y, "llevel").fit()``
   against EM (SQUAREM) to the same optimum, both from the same approximate
   diffuse start (a_1 = 0, P_1 = 1e6, every observation in the likelihood).
2. 10-dimensional observations, 3-dimensional state, 5,000 steps: statsmodels'
   ``DynamicFactor(k_factors=3, factor_order=1, error_cov_type="diagonal")``
   (Q = I, R diagonal, A and C free; known start x_1 ~ N(0, I)) against the
   same model by EM, in one process on the same simulated data. statsmodels'
   log-likelihood at EM's estimates is printed next to EM's own (the same model).
3. pykalman's robot data (501 steps, 5 states, 2 observations): one EM
   iteration over all parameters, pykalman against latentem.
4. 1,000 sequences of 100 steps: one E-step over all of them at once, against
   a Python loop of single-sequence E-steps (what a per-sequence loop costs).
5. ``compile`` (not in the default set): the first Nile fit, finite and exact diffuse
   start, each in a fresh process with an empty ``NUMBA_CACHE_DIR``: wall and CPU
   seconds of compiling on first use (then the same fit again from the filled cache).

BLAS runs on one thread (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS
set to 1 before NumPy is imported, unless already set): statsmodels and latentem are
timed on one core each. Every timing is the best of a few runs after a warm-up (numba
compiled); the Nile fits, a few milliseconds each, are the best of 20, ours and
statsmodels' interleaved, with the load average printed next to them.
"""

from __future__ import annotations

import os

# one BLAS thread for statsmodels and for us alike (a fair comparison of one core each);
# set before NumPy is imported, or the BLAS pool is already started
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from latentem import ConvergenceWarning, LinearGaussianSSM  # noqa: E402

warnings.simplefilter("ignore", ConvergenceWarning)
QUICK = "--quick" in sys.argv


def _option(name, default):
    return next((float(a.split("=", 1)[1]) for a in sys.argv if a.startswith(name + "=")), default)


#: statsmodels' caps in the factor model: iterations (--sm-maxiter=N) and seconds
#: (--sm-seconds=S, checked after each iteration): at 5,000 steps one of its L-BFGS
#: iterations takes about 50 log-likelihood evaluations (numerical gradient) of ~25 ms
SM_MAXITER = int(_option("--sm-maxiter", 1000))
SM_SECONDS = _option("--sm-seconds", 600.0)


#: CPU seconds (all threads) of the last best_time call's best run: on a shared host,
#: wall times of the same code vary several-fold with the other jobs, CPU times much less
LAST_CPU = [np.nan]


def best_time(fn, repeat=3):
    best, out, cpu = np.inf, None, np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall, used = time.perf_counter() - t0, time.process_time() - c0
        if wall < best:
            best = wall
        cpu = min(cpu, used)
    LAST_CPU[0] = cpu
    return best, out


def local_level():
    return LinearGaussianSSM(
        1,
        transition_matrix=[[1.0]],
        observation_matrix=[[1.0]],
        initial_mean=[0.0],
        initial_cov=[[1e6]],
        fixed=["transition_matrix", "observation_matrix", "initial_mean", "initial_cov"],
        n_iter=5000,
        tol=1e-9,
        accelerate="squarem",
        random_state=0,
    )


def interleaved(theirs, ours):
    """Best of 20 each, statsmodels' and ours interleaved (a few milliseconds per fit, so
    the other jobs of a shared host show in single runs), after a warm-up; prints the
    load average. Returns (wall, CPU, result) for statsmodels, then for us."""
    ours()
    theirs()
    load = os.getloadavg()[0]
    t_sm = t_us = c_sm = c_us = np.inf
    for _ in range(10):
        t, res = best_time(theirs, 2)
        t_sm, c_sm = min(t_sm, t), min(c_sm, LAST_CPU[0])
        t, model = best_time(ours, 2)
        t_us, c_us = min(t_us, t), min(c_us, LAST_CPU[0])
    print(f"  load average {load:.2f} before the Nile timings, {os.getloadavg()[0]:.2f} after")
    return t_sm, c_sm, res, t_us, c_us, model


def bench_nile_exact_diffuse(y):
    """The local level with the exact diffuse start on both sides, every step counted."""
    import statsmodels.api as sm

    def theirs():
        mod = sm.tsa.UnobservedComponents(y, "llevel")
        mod.ssm.initialize_diffuse()
        mod.ssm.loglikelihood_burn = 0
        return mod.fit(disp=False)

    def ours():
        return LinearGaussianSSM(
            1,
            transition_matrix=[[1.0]],
            observation_matrix=[[1.0]],
            initial_cov="diffuse",
            fixed=["transition_matrix", "observation_matrix"],
            n_iter=5000,
            tol=1e-9,
            accelerate="squarem",
            random_state=0,
        ).fit(y)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' ModelWarning: burn-in with diffuse
        t_sm, c_sm, res, t_us, c_us, model = interleaved(theirs, ours)
    print(
        f"Nile local level, exact diffuse start: statsmodels fit {t_sm * 1e3:.1f} ms (llf "
        f"{res.llf:.6f}); latentem EM {t_us * 1e3:.2f} ms ({model.n_iter_} iterations, "
        f"{model.monitor_.n_e_steps} E-steps, llf {model.history_[-1]:.6f}); difference "
        f"{model.history_[-1] - res.llf:+.2e}; speed-up {t_sm / t_us:.1f}x (CPU "
        f"{c_sm / c_us:.1f}x)"
    )


def bench_nile():
    import statsmodels.api as sm
    from statsmodels.datasets import nile

    y = nile.load().data["volume"].to_numpy(dtype=np.float64)

    def theirs():
        mod = sm.tsa.UnobservedComponents(y, "llevel", initialization="approximate_diffuse")
        mod.ssm.loglikelihood_burn = 0
        return mod.fit(disp=False)

    t_sm, c_sm, res, t_us, c_us, ours = interleaved(theirs, lambda: local_level().fit(y))
    print(
        f"Nile local level: statsmodels fit {t_sm * 1e3:.1f} ms (llf {res.llf:.6f}); "
        f"latentem EM {t_us * 1e3:.2f} ms ({ours.n_iter_} iterations, "
        f"{ours.monitor_.n_e_steps} E-steps, llf {ours.history_[-1]:.6f}); "
        f"difference {ours.history_[-1] - res.llf:+.2e}; speed-up {t_sm / t_us:.1f}x"
    )
    print(
        f"  CPU time: statsmodels {c_sm * 1e3:.1f} ms, latentem {c_us * 1e3:.2f} ms; "
        f"speed-up {c_sm / c_us:.1f}x"
    )
    print(
        f"  variances: statsmodels R {res.params[0]:.1f} Q {res.params[1]:.1f}; "
        f"latentem R {ours.observation_cov_[0, 0]:.1f} Q {ours.transition_cov_[0, 0]:.1f}"
    )
    # 20 of the 100 years removed: smoothed fills against the true values
    rmses = []
    for seed in range(5):
        gaps = np.random.default_rng(seed).choice(100, 20, replace=False)
        y_gap = y.copy()
        y_gap[gaps] = np.nan
        filled = local_level().fit(y_gap).impute(y_gap)[:, 0]
        rmses.append(np.sqrt(np.mean((filled[gaps] - y[gaps]) ** 2)))
    mean_fill = np.sqrt(np.mean((y[gaps] - np.nanmean(y_gap)) ** 2))
    print(
        f"  Nile with 20 of 100 years removed (5 draws): RMSE of the smoothed fills "
        f"{np.mean(rmses):.1f} (min {np.min(rmses):.1f}, max {np.max(rmses):.1f}); "
        f"last draw's mean fill {mean_fill:.1f}; sd of the series {np.std(y):.1f}"
    )
    bench_nile_exact_diffuse(y)


def factor_data(T=5000, seed=0):
    rng = np.random.default_rng(seed)
    A = np.array([[0.8, 0.1, 0.0], [0.0, 0.6, 0.2], [0.0, 0.0, 0.4]])
    C = rng.normal(size=(10, 3))
    x = np.zeros(3)
    X = np.empty((T, 3))
    for t in range(T):
        x = A @ x + rng.normal(size=3)
        X[t] = x
    return X @ C.T + rng.normal(size=(T, 10)) * rng.uniform(0.5, 1.5, 10)


def dynamic_factor_params(model):
    """Our fitted A, C, R as the parameter vector of statsmodels' DynamicFactor (loadings
    row by row, the idiosyncratic variances, the VAR(1) coefficients row by row)."""
    return np.concatenate(
        [
            model.observation_matrix_.ravel(),
            np.diag(model.observation_cov_),
            model.transition_matrix_.ravel(),
        ]
    )


def bench_factor(T, sm_maxiter=SM_MAXITER):
    import statsmodels.api as sm

    Y = factor_data(T)
    mod = sm.tsa.DynamicFactor(
        Y,
        k_factors=3,
        factor_order=1,
        error_cov_type="diagonal",
        initialization="known",
        initial_state=np.zeros(3),
        initial_state_cov=np.eye(3),
    )

    def theirs():
        start = time.perf_counter()

        def stop_after(params):  # scipy ends the minimisation on StopIteration
            if time.perf_counter() - start > SM_SECONDS:
                raise StopIteration

        return mod.fit(disp=False, maxiter=sm_maxiter, callback=stop_after)

    def ours():
        return LinearGaussianSSM(
            3,
            transition_cov=np.eye(3),
            initial_mean=np.zeros(3),
            initial_cov=np.eye(3),
            fixed=["transition_cov", "initial_mean", "initial_cov"],
            n_iter=5000,
            tol=1e-7,
            accelerate="squarem",
            random_state=0,
        ).fit(Y)

    LinearGaussianSSM(3, n_iter=2).fit(Y[:50])  # warm-up
    load = os.getloadavg()[0]
    t_us, model = best_time(ours, 1)
    c_us = LAST_CPU[0]
    llf_us = model.history_[-1]
    # the same model on both sides: statsmodels' log-likelihood at our estimates
    llf_sm_at_us = mod.loglike(dynamic_factor_params(model))
    print(
        f"10-dim / 3-state, {T} steps (load {load:.2f}): latentem EM {t_us:.2f} s, CPU "
        f"{c_us:.2f} s ({model.n_iter_} iterations, {model.monitor_.n_e_steps} E-steps, "
        f"converged {model.converged_}, llf {llf_us:.4f}); statsmodels' loglike at our "
        f"estimates {llf_sm_at_us:.4f} (difference {llf_sm_at_us - llf_us:+.1e})",
        flush=True,
    )
    t_sm, res = best_time(theirs, 1)
    c_sm = LAST_CPU[0]
    converged = res.mle_retvals.get("converged")
    iters = res.mle_retvals.get("iterations")
    gap = llf_us - res.llf
    print(
        f"10-dim / 3-state, {T} steps: statsmodels DynamicFactor fit (maxiter {sm_maxiter}, "
        f"{SM_SECONDS:.0f} s cap) "
        f"{t_sm:.2f} s, CPU {c_sm:.2f} s ({iters} iterations, converged {converged}, llf "
        f"{res.llf:.4f}); latentem EM {t_us:.2f} s (llf {llf_us:.4f}); latentem above "
        f"statsmodels by {gap:+.2e}; speed-up {t_sm / t_us:.1f}x (CPU {c_sm / c_us:.1f}x); "
        f"load {os.getloadavg()[0]:.2f}"
    )
    # is EM's end point statsmodels' maximum too? its fit started there, capped alike
    t_at, at = best_time(
        lambda: mod.fit(start_params=dynamic_factor_params(model), disp=False, maxiter=sm_maxiter),
        1,
    )
    print(
        f"  statsmodels' fit started from EM's estimates: {t_at:.2f} s, "
        f"{at.mle_retvals.get('iterations')} iterations, converged "
        f"{at.mle_retvals.get('converged')}, llf {at.llf:.4f} ({at.llf - llf_us:+.2e} from EM's)"
    )
    if gap > 1e-3:  # how long EM took to get as high as statsmodels' end point
        reached = np.flatnonzero(model.history_ >= res.llf)
        k = int(reached[0]) + 1 if reached.size else model.n_iter_
        print(
            f"  statsmodels ended {gap:.2e} below EM's maximum; EM passed statsmodels' "
            f"final llf at iteration {k} of {model.n_iter_} (about "
            f"{t_us * k / model.n_iter_:.3f} s at EM's mean time per iteration)"
        )


def bench_pykalman():
    from pykalman import KalmanFilter
    from pykalman.datasets import load_robot

    data = load_robot()
    Z = np.ma.filled(data.observations.astype(np.float64), np.nan)
    U = np.zeros((len(Z), 6))
    U[1:, :5] = data.transition_offsets
    U[:, 5] = 1.0

    def theirs():
        kf = KalmanFilter(
            data.transition_matrix,
            data.observation_matrix,
            data.initial_transition_covariance,
            data.initial_observation_covariance,
            data.transition_offsets,
            data.observation_offset,
            data.initial_state_mean,
            data.initial_state_covariance,
            em_vars="all",
        )
        return kf.em(data.observations, n_iter=5)

    def ours():
        return LinearGaussianSSM(
            5,
            transition_matrix=data.transition_matrix,
            observation_matrix=data.observation_matrix,
            transition_cov=data.initial_transition_covariance,
            observation_cov=data.initial_observation_covariance,
            initial_mean=data.initial_state_mean,
            initial_cov=data.initial_state_covariance,
            observation_cov_type="full",
            n_iter=50,
            tol=0,
        ).fit(Z, inputs=U)

    ours()
    t_pk, _ = best_time(theirs, 2)
    t_us, _ = best_time(ours)
    per_pk, per_us = t_pk / 5, t_us / 50
    print(
        f"pykalman robot data, one EM iteration over all parameters: pykalman "
        f"{per_pk * 1e3:.1f} ms, latentem {per_us * 1e3:.3f} ms; speed-up {per_pk / per_us:.0f}x"
    )


def bench_many_sequences(n_seq=1000, T=100):
    rng = np.random.default_rng(0)
    Y = np.cumsum(rng.normal(size=(n_seq * T, 4)), axis=0) * 0.1 + rng.normal(size=(n_seq * T, 4))
    Y[rng.random(Y.shape) < 0.1] = np.nan
    lengths = [T] * n_seq
    model = LinearGaussianSSM(2, random_state=0)
    data = model.prepare(Y, lengths)
    model.init_params(data, np.random.default_rng(0))
    model.e_step(data)
    pieces = [model.prepare(Y[i * T : (i + 1) * T]) for i in range(n_seq)]
    for piece in pieces:
        piece.arrays(4)

    def loop():
        return [model.e_step(piece) for piece in pieces]

    loop()
    # interleaved, best of each (tens of milliseconds per run: the other jobs of a
    # shared host show in single runs), with CPU seconds (all threads) next to wall
    load = os.getloadavg()[0]
    t_all = t_loop = c_all = c_loop = np.inf
    for _ in range(5):
        t, _ = best_time(lambda: model.e_step(data), 2)
        t_all, c_all = min(t_all, t), min(c_all, LAST_CPU[0])
        t, _ = best_time(loop, 1)
        t_loop, c_loop = min(t_loop, t), min(c_loop, LAST_CPU[0])
    print(
        f"{n_seq} sequences x {T} steps (4 features, 2 states, 10% gaps): one E-step over all "
        f"{t_all * 1e3:.1f} ms (CPU {c_all * 1e3:.1f} ms, {numba_threads()} threads); a Python "
        f"loop of single-sequence E-steps {t_loop * 1e3:.1f} ms (CPU {c_loop * 1e3:.1f} ms); "
        f"{t_loop / t_all:.1f}x (CPU {c_loop / c_all:.1f}x); load {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )


def numba_threads():
    import numba

    return numba.get_num_threads()


_FIRST_FIT = """
import time, resource, numpy as np
from latentem import LinearGaussianSSM
from statsmodels.datasets import nile
y = nile.load().data["volume"].to_numpy(dtype=np.float64)
kw = {kw}
t0 = time.perf_counter()
LinearGaussianSSM(1, transition_matrix=[[1.0]], observation_matrix=[[1.0]],
                  fixed=["transition_matrix", "observation_matrix"], n_iter=50, **kw).fit(y)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - t0, ru.ru_utime + ru.ru_stime)
"""


def bench_compile():
    """First-fit time of the Nile local level in a fresh process with an empty numba
    cache (compiling), then again with the filled cache (loading)."""
    import subprocess
    import tempfile

    for label, kw in (
        ("finite start", "dict(initial_mean=[0.0], initial_cov=[[1e6]])"),
        ("exact diffuse start", 'dict(initial_cov="diffuse")'),
    ):
        code = _FIRST_FIT.format(kw=kw)
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            runs = []
            for _ in range(2):  # compiling, then loading from the cache just filled
                done = subprocess.run(
                    [sys.executable, "-c", code], env=env, capture_output=True, text=True
                )
                if done.returncode:
                    raise SystemExit(done.stderr)
                runs.append([float(x) for x in done.stdout.split()[-2:]])
        print(
            f"first Nile fit, {label}, fresh NUMBA_CACHE_DIR: {runs[0][0]:.1f} s wall, "
            f"{runs[0][1]:.1f} s CPU (process); from the filled cache {runs[1][0]:.2f} s wall, "
            f"{runs[1][1]:.2f} s CPU; load {os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    # python benchmarks/bench_ssm.py [nile] [pykalman] [many] [factor] [--quick]: all by default
    chosen = [a for a in sys.argv[1:] if not a.startswith("--")] or [
        "nile",
        "pykalman",
        "many",
        "factor",
    ]
    for name in chosen:
        if name == "nile":
            bench_nile()
        elif name == "pykalman":
            bench_pykalman()
        elif name == "many":
            bench_many_sequences()
        elif name == "factor":
            bench_factor(1000 if QUICK else 5000)
        elif name == "compile":
            bench_compile()
        else:
            raise SystemExit(f"unknown benchmark {name!r}: nile, pykalman, many, factor or compile")
