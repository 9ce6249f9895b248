"""Plots draw what they say, fail clearly, and the example script writes its PNGs."""

import os
import runpy
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT  # noqa: E402

from latentem import GaussianHMM, GaussianMixture, fit_em  # noqa: E402
from latentem.plotting import (  # noqa: E402
    plot_convergence,
    plot_hmm_states,
    plot_imputation,
    plot_mixture,
)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_convergence_from_model_result_and_array():
    X = np.random.default_rng(0).normal(size=(100, 2))
    gm = GaussianMixture(2, random_state=0).fit(X)
    ax = plot_convergence(gm)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), gm.history_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_em(GaussianMixture(2), X, n_init=3, max_iter=5, random_state=0)
    ax = plot_convergence(result, per_sample=True)
    assert len(ax.lines) == 3 and ax.lines[result.best_init].get_linewidth() == 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), result.histories[0] / 100)
    assert len(plot_convergence([1.0, 2.0, 2.5]).lines) == 1
    with pytest.raises(ValueError, match="needs a fitted model"):
        plot_convergence(GaussianMixture(2))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mixture_ellipses_in_2d(covariance_type):
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))])
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    ax = plot_mixture(gm, X)
    assert len(ax.patches) == 4
    centers = sorted(tuple(np.round(p.center, 6)) for p in ax.patches[::2])
    assert centers == sorted(tuple(np.round(m, 6)) for m in gm.means_)


def test_mixture_density_in_1d_integrates_to_one():
    x = np.random.default_rng(2).normal(0, 1, 500)
    gm = GaussianMixture(2, random_state=0).fit(x[:, None])
    ax = plot_mixture(gm, x)
    total = ax.lines[-1]
    grid, dens = total.get_xdata(), total.get_ydata()
    np.testing.assert_allclose(dens, np.exp(gm.score_samples(grid[:, None])), rtol=1e-10)


def test_mixture_refuses_three_features():
    X = np.random.default_rng(3).normal(size=(50, 3))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        plot_mixture(GaussianMixture(1).fit(X), X)


def test_hmm_state_bands_follow_viterbi():
    rng = np.random.default_rng(4)
    X = rng.normal(np.repeat([-3.0, 3.0, -3.0, 3.0], 50), 0.5)[:, None]
    model = GaussianHMM(2, n_iter=20, random_state=0).fit(X, [100, 100])
    ax = plot_hmm_states(model, X, [100, 100], sequence=1)
    assert len(ax.patches) == 2 and len(ax.lines[0].get_ydata()) == 100
    with pytest.raises(ValueError, match="sequence must be"):
        plot_hmm_states(model, X, [100, 100], sequence=2)


def test_imputation_histograms_count_gaps():
    X = np.array([[1.0], [np.nan], [3.0], [np.nan]])
    ax = plot_imputation(X, np.array([[1.0], [2.0], [3.0], [2.5]]))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["observed (2)", "imputed (2)"]
    with pytest.raises(ValueError, match="one shape"):
        plot_imputation(X, X[:2])


def test_missing_matplotlib_is_a_clear_error(monkeypatch):
    import latentem.plotting as plotting

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'latentem\[plot\]'"):
        plotting.plot_convergence([1.0, 2.0])


def test_plot_example_writes_every_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["plots.py", "--small", "--out", str(tmp_path)])
    runpy.run_path(str(ROOT / "examples" / "plots.py"), run_name="__main__")
    names = {"mixture_2d.png", "mixture_1d.png", "convergence.png", "hmm_states.png",
             "imputation.png"}  # fmt: skip
    assert set(os.listdir(tmp_path)) == names
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The docs show the full-size versions, checked in next to the script.
    text = (ROOT / "docs" / "plots.md").read_text(encoding="utf-8")
    for name in names:
        assert f"../examples/images/{name}" in text and (ROOT / "examples/images" / name).exists()


def test_plot_regimes_for_an_autoregression_and_an_hmm():
    from latentem import GaussianHMM, MarkovAutoregression
    from latentem.plotting import plot_regimes

    rng = np.random.default_rng(1)
    y = rng.normal(np.repeat([0.0, 4.0, 0.0, 4.0], 50), 1.0)
    model = MarkovAutoregression(2, order=2, random_state=0).fit(y, lengths=[100, 100])
    top, bottom = plot_regimes(model, y, lengths=[100, 100], sequence=1)
    stacked = bottom.collections
    assert len(stacked) == 2
    # the bands add up to 1 and start after the autoregression's first two steps
    upper = stacked[-1].get_paths()[0].vertices
    assert upper[:, 0].min() == pytest.approx(2.0)
    assert upper[:, 1].max() == pytest.approx(1.0) and upper[:, 1].min() >= -1e-12
    assert len(top.lines[0].get_xdata()) == 100

    X = y[:, None]
    hmm = GaussianHMM(2, random_state=0).fit(X, [100, 100])
    _, bottom = plot_regimes(hmm, X, lengths=[100, 100])
    assert len(bottom.collections) == 2
    with pytest.raises(ValueError, match="sequence must be in 0..1"):
        plot_regimes(hmm, X, lengths=[100, 100], sequence=2)
    with pytest.raises(ValueError, match="feature"):
        plot_regimes(hmm, X, feature=1)
