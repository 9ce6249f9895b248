"""Regime switching: latentem against statsmodels' fit(), side by side in one process.

(a) The cases of statsmodels' test files (fed funds, areturns, Hamilton's GNP,
    time-varying transitions, Filardo): statsmodels' ``fit()`` (its default:
    a short EM, then BFGS) against ``fit()`` here. One start each, except
    where one start misses the maximum. There both get 20 random starts with
    the same strategy: statsmodels ``search_reps=20`` (5 EM iterations from
    each of 20 random parameter vectors, then the fit from the best, as its
    test of the 3-regime case), latentem ``n_init=20, search_iter=5`` (5 EM
    iterations from each of 20 starts, then EM to convergence from the best).
    A second row ("10 full") times latentem's default instead, ``n_init=10``
    starts each run to convergence. Prints both log-likelihoods, the times
    (best of 3, after a warm-up) and the ratio.
(b) A panel of 1,000 series of 200 steps from a 2-regime switching-mean
    model: one latentem fit of the panel against statsmodels fitting one
    model per series in a loop (timed on ``--sm-series`` series, scaled to
    1,000). The latentem fit is timed as in (a), after a warm-up fit of a
    small panel; the first, cold fit is printed too.

    python benchmarks/bench_regime.py [--quick] [--sm-series 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd
from statsmodels.tools import add_constant
from statsmodels.tsa.regime_switching import markov_autoregression as sm_ar
from statsmodels.tsa.regime_switching import markov_regression as sm_reg

from latentem import MarkovAutoregression, MarkovRegression

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from statsmodels.tsa.regime_switching.tests import test_markov_autoregression as ar_tests
    from statsmodels.tsa.regime_switching.tests import test_markov_regression as reg_tests


def cases():
    ff = np.asarray(reg_tests.fedfunds)
    og, inf = np.asarray(reg_tests.ogap), np.asarray(reg_tests.inf)
    aret = np.asarray(reg_tests.areturns)
    rgnp, rec = np.asarray(ar_tests.rgnp), np.asarray(ar_tests.rec, dtype=float)
    here = os.path.dirname(ar_tests.__file__)
    fil = pd.read_csv(os.path.join(here, "results", "mar_filardo.csv"))
    R, A = MarkovRegression, MarkovAutoregression
    x3 = np.c_[ff[3:-1], og[4:], inf[4:]]
    z_fil = add_constant(fil["dmdlleading"].iloc[:-1].to_numpy())
    # name, class, settings, data, starts (statsmodels, latentem), the published maximum
    return [
        ("fedfunds const", R, dict(k_regimes=2), dict(y=ff), (1, 1), -508.63592),
        ("fedfunds L1", R, dict(k_regimes=2), dict(y=ff[1:], exog=ff[:-1]), (1, 1), -264.71069),
        (
            "areturns variance",
            R,
            dict(k_regimes=2, switching_variance=True),
            dict(y=aret[1:], exog=aret[:-1]),
            (1, 1),
            -745.7977,
        ),
        ("fedfunds 3 regimes", R, dict(k_regimes=3), dict(y=ff[4:], exog=x3), (20, 20), -182.27188),
        ("  10 full", R, dict(k_regimes=3), dict(y=ff[4:], exog=x3), (20, 10), -182.27188),
        (
            "Hamilton AR(4)",
            A,
            dict(k_regimes=2, order=4, switching_ar=False),
            dict(y=rgnp),
            (1, 1),
            -181.26339,
        ),
        ("Hamilton AR(1) switch", A, dict(k_regimes=2, order=1), dict(y=rgnp), (1, 1), -186.7575),
        (
            "Hamilton TVTP",
            A,
            dict(k_regimes=2, order=1),
            dict(y=rgnp, exog_tvtp=np.c_[np.ones(len(rgnp)), rec]),
            (1, 1),
            -161.786477,
        ),
        (
            "Filardo TVTP AR(4)",
            A,
            dict(k_regimes=2, order=4, switching_ar=False),
            dict(y=fil["dlip"].iloc[1:].to_numpy(), exog_tvtp=z_fil),
            (20, 20),
            -586.5718,
        ),
        (
            "  10 full",
            A,
            dict(k_regimes=2, order=4, switching_ar=False),
            dict(y=fil["dlip"].iloc[1:].to_numpy(), exog_tvtp=z_fil),
            (20, 10),
            -586.5718,
        ),
    ]


def fit_statsmodels(cls, settings, data, starts):
    sm_cls = sm_reg.MarkovRegression if cls is MarkovRegression else sm_ar.MarkovAutoregression
    model = sm_cls(data["y"], exog=data.get("exog"), exog_tvtp=data.get("exog_tvtp"), **settings)
    kwargs = {"search_reps": starts, "rng": np.random.RandomState(1234)} if starts > 1 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(disp=False, **kwargs).llf


def fit_ours(cls, settings, data, starts, search):
    # search: as many starts as statsmodels' search, 5 EM iterations each, then the best
    kwargs = {"search_iter": 5} if search else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**settings, n_init=starts, random_state=0, **kwargs).fit(**data).llf_


def timed(fns, repeat):
    """Best time and last value of each function, the functions' runs interleaved."""
    best, values = [np.inf] * len(fns), [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            values[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return list(zip(best, values))


def panel(n_series, length, seed=0):
    truth = MarkovRegression(2)
    truth.transmat_ = np.array([[0.95, 0.05], [0.08, 0.92]])
    truth.coef_ = np.array([[0.0], [2.0]])
    truth.sigma2_ = np.array([1.0, 1.0])
    return [truth.simulate(length, random_state=seed + i)[0] for i in range(n_series)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer series")
    parser.add_argument("--sm-series", type=int, default=40)
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    # compile and load the kernels once
    rgnp = np.asarray(ar_tests.rgnp)
    fit_ours(MarkovAutoregression, dict(k_regimes=2, order=1), dict(y=rgnp), 1, False)

    print(f"{'case':24s} {'starts':>7s} {'llf statsmodels':>16s} {'llf latentem':>14s} "
          f"{'published':>11s} {'sm s':>7s} {'ours s':>7s} {'ratio':>6s}")  # fmt: skip
    for name, cls, settings, data, (sm_starts, starts), published in cases():
        search = starts == sm_starts > 1
        ours = lambda a=(cls, settings, data, starts, search): fit_ours(*a)  # noqa: E731
        if name.startswith(" "):  # an indented row is another latentem setting: same peer
            ((t_us, ll_us),) = timed([ours], repeat)
        else:
            peer = lambda a=(cls, settings, data, sm_starts): fit_statsmodels(*a)  # noqa: E731
            (t_sm, ll_sm), (t_us, ll_us) = timed([peer, ours], repeat)
        print(
            f"{name:24s} {sm_starts:3d}/{starts:<3d} {ll_sm:16.5f} {ll_us:14.5f} {published:11.5f} "
            f"{t_sm:7.3f} {t_us:7.3f} {t_sm / t_us:5.1f}x"
        )

    n_series, length = (200 if args.quick else 1000), 200
    series = panel(n_series, length)
    y = np.concatenate(series)

    def fit_panel(y, n):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MarkovRegression(2, n_init=1, random_state=0).fit(y, lengths=[length] * n)

    ((t_cold, _),) = timed([lambda: fit_panel(np.concatenate(series[:100]), 100)], 1)
    ((t_us, fitted),) = timed([lambda: fit_panel(y, n_series)], repeat)
    k = min(args.sm_series, n_series)
    t0 = time.perf_counter()
    for s in series[:k]:
        fit_statsmodels(MarkovRegression, dict(k_regimes=2), dict(y=s), 1)
    t_sm = (time.perf_counter() - t0) * n_series / k
    print(
        f"panel {n_series} x {length}: latentem one fit {t_us:.2f} s (llf {fitted.llf_:.2f}; "
        f"a first, cold fit of 100 series {t_cold:.2f} s); "
        f"statsmodels one fit per series {t_sm:.1f} s (timed on {k}, scaled); "
        f"ratio {t_sm / t_us:.0f}x"
    )
    print(f"# load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
