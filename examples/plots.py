"""Pictures of fits, written as PNG files (the ones docs/plots.md shows).

    python examples/plots.py                 # full size, into examples/images/
    python examples/plots.py --small --out pictures   # the fast version the tests run

Needs matplotlib: pip install "latentem[plot]".
"""

from __future__ import annotations

import argparse
import os
import warnings

import matplotlib

matplotlib.use("Agg")  # files only, no window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import latentem  # noqa: E402
from latentem.datasets import load_old_faithful  # noqa: E402
from latentem.models.imputer import EMImputer  # noqa: E402
from latentem.plotting import (  # noqa: E402
    plot_convergence,
    plot_hmm_states,
    plot_imputation,
    plot_mixture,
)

HERE = os.path.dirname(os.path.abspath(__file__))


def main(out: str, small: bool) -> list[str]:
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    written = []

    def save(ax, name):
        path = os.path.join(out, name)
        ax.figure.savefig(path, dpi=60 if small else 100)
        plt.close(ax.figure)
        written.append(path)

    # 2-D mixture: Old Faithful, with the convergence of three restarts.
    X, columns = load_old_faithful()
    gmm = latentem.GaussianMixture(2, n_init=3, random_state=0).fit(X)
    save(plot_mixture(gmm, X, columns=columns), "mixture_2d.png")
    result = latentem.fit_em(
        latentem.GaussianMixture(3, random_state=0), X, n_init=3, tol=1e-8, random_state=1
    )
    save(plot_convergence(result, per_sample=True), "convergence.png")

    # 1-D mixture: three overlapping groups.
    n = 300 if small else 3000
    x = np.concatenate([rng.normal(-3, 1, n), rng.normal(1, 0.7, n // 2), rng.normal(4, 1.2, n)])
    save(
        plot_mixture(latentem.GaussianMixture(3, random_state=0).fit(x[:, None]), x),
        "mixture_1d.png",
    )

    # HMM: regimes in a noisy signal.
    T = 200 if small else 600
    states = np.repeat(rng.integers(0, 3, T // 25), 25)
    y = rng.normal(np.array([-2.0, 0.5, 3.0])[states], 0.8)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hmm = latentem.GaussianHMM(3, n_iter=100, random_state=0).fit(y)
    save(plot_hmm_states(hmm, y), "hmm_states.png")

    # Imputation: a correlated column with 30% gaps, filled by EM.
    m = 300 if small else 2000
    Z = rng.multivariate_normal([0, 0], [[1, 0.85], [0.85, 1]], m)
    gappy = Z.copy()
    gappy[rng.random(m) < 0.3, 1] = np.nan
    filled = EMImputer(random_state=0).fit_transform(gappy)
    save(plot_imputation(gappy, filled, column=1), "imputation.png")
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "images"), help="output folder")
    parser.add_argument("--small", action="store_true", help="small data, fast (for CI)")
    args = parser.parse_args()
    for path in main(args.out, args.small):
        print("wrote", os.path.relpath(path))
