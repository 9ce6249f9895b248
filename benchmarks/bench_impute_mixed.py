"""latentem.MixedImputer vs scikit-learn's imputers on mixed tables (continuous and
categorical columns), side by side in one process.

Tables (bundled with statsmodels, offline), some columns treated as categorical:

* **anes96** (944 rows): PID, educ (7 levels each) and vote (binary) categorical;
  popul, TVnews, selfLR, ClinLR, DoleLR, age, income continuous;
* **fair** (2,000 of 6,366 rows): rate_marriage, religious, occupation,
  occupation_husb categorical; age, yrs_married, children, educ, affairs continuous;
* **randhie** (2,000 of 20,190 rows): idp, hlthg, hlthf, hlthp (binary) and
  lncoins (5 levels) categorical; mdvis, lpi, fmde, physlm, disea continuous.

Continuous columns are standardised. 10%, 30% and 50% of all cells are hidden
completely at random (continuous and categorical alike), three seeds each.
Reported: RMSE on hidden continuous cells (standard deviations), accuracy on
hidden categorical cells, and the time of ``fit_transform`` (all seeds).

Methods: ``MixedImputer()`` (latent classes plus an effect of every
categorical level on the continuous means; number of classes chosen on
held-out cells; the targets are checked on it) and
``MixedImputer(category_effects=False)`` (latent classes alone);
``IterativeImputer`` (BayesianRidge) on the one-hot encoded table, a level
filled as the argmax of its imputed one-hot block; **missForest-style**:
``IterativeImputer`` with ``RandomForestRegressor(100 trees, max_features=
"sqrt")`` on the one-hot table (``max_iter=10``), levels by argmax; and
mean / most-frequent filling. latentem is timed after a warm-up call.

Then multiple imputation: in ``--coverage`` simulated tables (default 200),
a pooled regression slope's 95% interval (five copies, Rubin's rules) is
checked to cover the complete-data estimate.

Targets (issue 18): continuous RMSE no worse than IterativeImputer, categorical
accuracy at least missForest-style's, at least 20x faster than missForest-style,
coverage at least 90%.

Run:  python benchmarks/bench_impute_mixed.py [--quick] [--seeds 3] [--coverage 200]
      (also run by ``python benchmarks/bench_impute.py`` after its own cases)
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

TABLES = {
    "anes96": (
        None,
        ["PID", "educ", "vote"],
        ["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", "income"],
    ),
    "fair": (
        2000,
        ["rate_marriage", "religious", "occupation", "occupation_husb"],
        ["age", "yrs_married", "children", "educ", "affairs"],
    ),
    "randhie": (
        2000,
        ["idp", "hlthg", "hlthf", "hlthp", "lncoins"],
        ["mdvis", "lpi", "fmde", "physlm", "disea"],
    ),
}


def load(name):
    """(continuous block standardised, categorical codes (float), n_levels)."""
    import statsmodels.api as sm

    rows, cats, conts = TABLES[name]
    df = getattr(sm.datasets, name).load_pandas().data
    if rows is not None:
        df = df.sample(rows, random_state=0)
    C = df[conts].to_numpy(dtype=np.float64)
    C = (C - C.mean(axis=0)) / C.std(axis=0)
    codes, levels = [], []
    for c in cats:
        u, inv = np.unique(df[c].to_numpy(), return_inverse=True)
        codes.append(inv.astype(np.float64))
        levels.append(len(u))
    return C, np.column_stack(codes), levels


def hide(T, frac, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(T.shape) < frac
    full = mask.all(axis=1)
    mask[full, rng.integers(T.shape[1], size=full.sum())] = False
    out = T.copy()
    out[mask] = np.nan
    return out, mask


def one_hot(K, levels):
    """Codes (NaN gaps) as one-hot blocks (NaN across a gap's whole block)."""
    blocks = []
    for d, L in enumerate(levels):
        B = np.zeros((K.shape[0], L))
        seen = ~np.isnan(K[:, d])
        B[seen, K[seen, d].astype(int)] = 1.0
        B[~seen] = np.nan
        blocks.append(B)
    return np.hstack(blocks)


def from_one_hot(F, levels):
    out, a = [], 0
    for L in levels:
        out.append(F[:, a : a + L].argmax(axis=1))
        a += L
    return np.column_stack(out).astype(np.float64)


def sklearn_method(make):
    def run(C, K, levels):
        Dc = C.shape[1]
        F = make().fit_transform(np.hstack([C, one_hot(K, levels)]))
        return F[:, :Dc], from_one_hot(F[:, Dc:], levels)

    return run


def methods():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer, SimpleImputer

    from latentem import MixedImputer

    def mixed_imputer(effects):
        def mixed(C, K, levels):
            Dc = C.shape[1]
            X = np.hstack([C, K])
            imp = MixedImputer(
                categorical_features=list(range(Dc, X.shape[1])),
                category_effects=effects,
                random_state=0,
            )
            F = imp.fit_transform(X)
            mixed.classes.append(imp.n_components_)
            return F[:, :Dc], F[:, Dc:]

        mixed.classes = []
        return mixed

    def mean_mode(C, K, levels):
        Fc = SimpleImputer().fit_transform(C)
        Fk = SimpleImputer(strategy="most_frequent").fit_transform(K)
        return Fc, Fk

    forest = lambda: RandomForestRegressor(  # noqa: E731
        n_estimators=100, max_features="sqrt", n_jobs=1, random_state=0
    )
    return {
        "MixedImputer": mixed_imputer(True),
        "MixedImputer(category_effects=False)": mixed_imputer(False),
        "IterativeImputer (one-hot)": sklearn_method(lambda: IterativeImputer(random_state=0)),
        "missForest-style": sklearn_method(
            lambda: IterativeImputer(estimator=forest(), max_iter=10, random_state=0)
        ),
        "mean / mode": mean_mode,
    }


def run_case(C, K, levels, frac, seeds, skip=()):
    T = np.hstack([C, K])
    Dc = C.shape[1]
    res = {}
    for name, run in methods().items():
        if name in skip:
            continue
        rmse, acc, secs = [], [], 0.0
        for seed in seeds:
            Tm, mask = hide(T, frac, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                Fc, Fk = run(Tm[:, :Dc], Tm[:, Dc:], levels)
                secs += time.perf_counter() - t
            mc, mk = mask[:, :Dc], mask[:, Dc:]
            rmse.append(np.sqrt(np.mean((Fc[mc] - C[mc]) ** 2)))
            acc.append(np.mean(Fk[mk] == K[mk]))
        res[name] = (float(np.mean(rmse)), float(np.mean(acc)), secs)
        if name.startswith("MixedImputer"):
            res[name] += (list(run.classes),)
    return res


def coverage(n_tables, n=300, seed0=1000):
    """Share of simulated tables whose pooled 95% interval of a slope covers the
    complete-data estimate (five copies, Rubin's rules)."""
    import pandas as pd

    from latentem import MixedImputer, pool_estimates

    def ols(X, y):
        A = np.column_stack([np.ones(len(y)), X])
        beta = np.linalg.lstsq(A, y, rcond=None)[0]
        r = y - A @ beta
        return beta, np.diag(r @ r / (len(y) - A.shape[1]) * np.linalg.inv(A.T @ A))

    hits = []
    for rep in range(n_tables):
        rng = np.random.default_rng(seed0 + rep)
        g = rng.integers(0, 3, n)
        x = rng.normal(1.0 * g, 1.0)
        y = 1.0 + 0.5 * x + 0.7 * (g == 2) + rng.normal(0, 1.0, n)
        full = pd.DataFrame({"g": pd.Categorical(np.array(["a", "b", "c"])[g]), "x": x, "y": y})
        beta, _ = ols(np.column_stack([x, g == 1, g == 2]), y)
        gappy = full.copy()
        for c in ["g", "x", "y"]:
            gappy.loc[rng.random(n) < 0.25, c] = np.nan
        imp = MixedImputer(random_state=rep).fit(gappy)
        est, var = [], []
        for c in imp.sample_imputations(gappy, 5):
            gg = c["g"].astype(str).to_numpy()
            b, v = ols(np.column_stack([c["x"], gg == "b", gg == "c"]), c["y"].to_numpy())
            est.append(b[1])
            var.append(v[1])
        low, high = pool_estimates(est, var, dfcom=n - 4).confint()
        hits.append(low <= beta[1] <= high)
    return float(np.mean(hits))


def warm_up():
    from latentem import MixedImputer

    rng = np.random.default_rng(0)
    # two continuous columns with gaps (one alone takes other paths through the
    # Gaussian-with-gaps kernels), both models: everything the cases compile
    X = np.column_stack([rng.normal(size=(1500, 2)), rng.integers(0, 3, 1500)]).astype(float)
    X[rng.random(X.shape) < 0.2] = np.nan
    t = time.perf_counter()
    for effects in (True, False):
        MixedImputer(
            n_components=2, categorical_features=[2], category_effects=effects, random_state=0
        ).fit_transform(X)
    return time.perf_counter() - t


def main(argv=None, only=()):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one fraction, two seeds, 40 tables")
    ap.add_argument("--seeds", type=int, default=0, help="draws of hidden cells (default 3)")
    ap.add_argument("--coverage", type=int, default=-1, help="simulated tables (default 200)")
    ap.add_argument(
        "--tables", default="", help="comma-separated tables to run (default all; 'none': none)"
    )
    ap.add_argument(
        "--fractions",
        default="",
        help="comma-separated shares of hidden cells (default 0.1,0.3,0.5)",
    )
    args = ap.parse_args(argv)
    if args.tables:
        only = [t for t in args.tables.split(",") if t]
    import os

    print(f"\n## Mixed tables (load average {os.getloadavg()[0]:.2f})\n")
    print(f"first MixedImputer call (numba cache load or compile): {warm_up():.2f} s")
    seeds = list(range(args.seeds)) if args.seeds else [0, 1] if args.quick else [0, 1, 2]
    fracs = [0.3] if args.quick else [0.1, 0.3, 0.5]
    if args.fractions:
        fracs = [float(f) for f in args.fractions.split(",") if f]
    failures = []
    print(
        "\n| table | missing | method | RMSE (continuous) | accuracy (categorical) | "
        "time (s, all seeds) | classes |"
    )
    print("|---|---:|---|---:|---:|---:|---|")
    for name in TABLES:
        if only and name not in only:
            continue
        C, K, levels = load(name)
        for frac in fracs:
            res = run_case(C, K, levels, frac, seeds)
            for m, r in res.items():
                classes = ",".join(map(str, r[3])) if len(r) > 3 else ""
                print(
                    f"| {name} ({len(C)} x {C.shape[1] + K.shape[1]}) | {frac:.0%} | {m} | "
                    f"{r[0]:.4f} | {r[1]:.4f} | {r[2]:.2f} | {classes} |"
                )
            ours, it, rf = (
                res["MixedImputer"],
                res["IterativeImputer (one-hot)"],
                res["missForest-style"],
            )
            if ours[0] > it[0]:
                failures.append(f"{name} {frac:.0%}: RMSE {ours[0]:.4f} > {it[0]:.4f}")
            if ours[1] < rf[1]:
                failures.append(f"{name} {frac:.0%}: accuracy {ours[1]:.4f} < {rf[1]:.4f}")
            if rf[2] / ours[2] < 20:
                failures.append(f"{name} {frac:.0%}: only {rf[2] / ours[2]:.1f}x faster")
    n_cov = args.coverage if args.coverage >= 0 else 40 if args.quick else 200
    if n_cov:
        t = time.perf_counter()
        share = coverage(n_cov)
        print(
            f"\nmultiple imputation: pooled 95% intervals of the slope cover the complete-data "
            f"estimate in {share:.1%} of {n_cov} simulated tables ({time.perf_counter() - t:.1f} s)"
        )
        if share < 0.9:
            failures.append(f"coverage {share:.1%} < 90%")
    print("\nMixed-table targets:", "all met" if not failures else "MISSED: " + "; ".join(failures))
    return failures


if __name__ == "__main__":
    main()
