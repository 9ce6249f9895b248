"""The four model-graph recipes of docs/model_graph.md, on synthetic data.

python examples/model_graph.py            # full size
python examples/model_graph.py --quick    # small and fast (what the tests run)
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import latentem
from latentem import Categorical, Discrete, Gaussian, MarkovChain, ModelGraph, Poisson


def hmm_with_mixture_emissions(rng, n_seq):
    """(a) A 2-state HMM whose states each emit from a mixture of 2 Gaussians."""
    means = np.array([[-6.0, -3.0], [3.0, 6.0]])  # state x mixture component
    X, lengths = [], []
    for _ in range(n_seq):
        state, rows = rng.integers(2), []
        for _ in range(100):
            rows.append(rng.normal(means[state, rng.integers(2)], 0.7))
            state = state if rng.random() < 0.95 else 1 - state
        X.append(np.array(rows)[:, None])
        lengths.append(100)
    g = ModelGraph()
    g.add_node("regime", MarkovChain(2))
    g.add_node("mixture", Categorical(2))
    g.add_node("value", Gaussian("diag"))
    g.add_edge("regime", "mixture")
    g.add_edge("mixture", "value")
    X = np.concatenate(X)
    g.fit(X, lengths, random_state=0)
    print("(a) regime transition matrix:\n", g.parameters("regime")["transmat_"][0].round(3))
    print("    component means:", np.sort(g.parameters("value")["means_"].ravel()).round(2))


def mixture_of_hmms(rng, n_seq):
    """(b) Cluster whole sequences: a mixture of two 2-state Gaussian HMMs."""
    X, lengths, truth = [], [], []
    for i in range(n_seq):
        group = i % 2
        stay = 0.95 if group == 0 else 0.5
        offset = -5.0 if group == 0 else 5.0
        state, rows = rng.integers(2), []
        for _ in range(60):
            rows.append(rng.normal(offset + 3.0 * state, 1.0))
            state = state if rng.random() < stay else 1 - state
        X.append(np.array(rows)[:, None])
        lengths.append(60)
        truth.append(group)
    X = np.concatenate(X)
    g = ModelGraph()
    g.add_node("cluster", Categorical(2), unit="sequence")
    g.add_node("dynamics", latentem.GaussianHMM(2, covariance_type="diag"))
    g.add_edge("cluster", "dynamics")
    g.fit(X, lengths, random_state=0)
    labels = g.predict(X, lengths, node="cluster")
    agree = max(np.mean(labels == truth), np.mean(labels != truth))
    print(f"(b) sequences put in their generating group: {agree:.0%}")


def mixed_type_mixture(rng, n):
    """(c) A mixture over a table of mixed types: Gaussian x categorical x Poisson columns."""
    z = rng.integers(3, size=n)
    position = rng.normal(np.array([[-4, 0], [0, 4], [4, 0]])[z], 1.0)
    kind = (z + (rng.random(n) < 0.2)) % 3
    events = rng.poisson(np.array([1.0, 6.0, 15.0])[z])
    X = np.column_stack([position, kind, events]).astype(float)
    g = ModelGraph()
    g.add_node("cluster", Categorical(3))
    g.add_node("position", Gaussian("full"), columns=[0, 1])
    g.add_node("kind", Discrete(), columns=[2])
    g.add_node("events", Poisson(), columns=[3])
    for child in ("position", "kind", "events"):
        g.add_edge("cluster", child)
    g.fit(X, random_state=0, n_init=3)
    print(
        "(c) Poisson rates per cluster:",
        np.sort(g.parameters("events")["lambdas_"].ravel()).round(1),
    )


def clustering_with_gaps(rng, n):
    """(d) Cluster a table with missing cells, and impute them from the fitted clusters."""
    z = rng.integers(2, size=n)
    full = np.array([[-3.0, -3.0, 0.0], [3.0, 3.0, 5.0]])[z] + rng.normal(size=(n, 3))
    X = full.copy()
    hide = rng.random(X.shape) < 0.2
    X[hide] = np.nan
    g = ModelGraph()
    g.add_node("cluster", Categorical(2))
    g.add_node("table", Gaussian("full"))
    g.add_edge("cluster", "table")
    g.fit(X, random_state=0)
    filled = g.impute(X, node="table")
    rmse = np.sqrt(np.nanmean((filled - full)[hide] ** 2))
    print(f"(d) {hide.sum()} missing cells imputed, RMSE {rmse:.2f} (noise sd 1)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    scale = 4 if args.quick else 1
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", latentem.ConvergenceWarning)
        hmm_with_mixture_emissions(rng, 20 // scale)
        mixture_of_hmms(rng, 40 // scale)
        mixed_type_mixture(rng, 2000 // scale)
        clustering_with_gaps(rng, 2000 // scale)


if __name__ == "__main__":
    main()
