"""Pictures of fits: convergence, mixture densities and ellipses, HMM states, imputations
(numeric, and mixed tables).

matplotlib is an optional extra (``pip install "latentem[plot]"``), imported
only when a function here is called. Every function draws on ``ax`` (a new
figure's axes when ``ax`` is None) and returns the axes, so you can add to
the plot or save it with ``ax.figure.savefig(path)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "plot_convergence",
    "plot_hmm_states",
    "plot_imputation",
    "plot_mixed_imputation",
    "plot_mixture",
    "plot_regimes",
    "plot_smoothed_states",
]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "latentem.plotting needs matplotlib; install it with: pip install 'latentem[plot]'"
        ) from None
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    return _plt().subplots(figsize=(6.4, 4.2), layout="constrained")[1]


def plot_convergence(fit: Any, ax: Any = None, per_sample: bool = False):
    """The log-likelihood at every EM iteration.

    Parameters
    ----------
    fit : fitted model, EMResult or array
        A model with ``history_`` (every latentem model), the
        :class:`~latentem.EMResult` of :func:`~latentem.fit_em` (all its
        restarts are drawn, the kept one solid), or a 1-D array.
    ax : matplotlib Axes, optional
    per_sample : bool
        Divide by the number of samples (needs an EMResult).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem import GaussianMixture
    >>> from latentem.plotting import plot_convergence
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> ax = plot_convergence(GaussianMixture(3, random_state=0).fit(X))
    >>> len(ax.lines)
    1
    """
    ax = _axes(ax)
    histories = getattr(fit, "histories", None)
    if histories is not None:  # an EMResult
        scale = 1.0 / fit.n_samples if per_sample else 1.0
        for i, h in enumerate(histories):
            kept = i == fit.best_init
            ax.plot(
                np.arange(1, len(h) + 1),
                np.asarray(h) * scale,
                lw=2 if kept else 1,
                alpha=1.0 if kept else 0.5,
                ls="-" if kept else "--",
                label=f"restart {i + 1}" + (" (kept)" if kept else ""),
            )
        if len(histories) > 1:
            ax.legend()
    else:
        h = getattr(fit, "history_", fit)
        try:
            h = np.asarray(h, dtype=float)
        except (TypeError, ValueError):
            h = np.empty(0)
        if h.ndim != 1 or h.size == 0:
            raise ValueError(
                "plot_convergence needs a fitted model (with history_), an EMResult or a 1-D "
                f"array of log-likelihoods; got {type(fit).__name__}."
            )
        ax.plot(np.arange(1, h.size + 1), h, marker="o" if h.size <= 30 else None, ms=3)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("log-likelihood per sample" if per_sample else "log-likelihood")
    ax.set_title("Convergence")
    return ax


def _gmm_parts(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """weights (K,), means (K, D), full covariances (K, D, D) of a GaussianMixture."""
    if not hasattr(model, "weights_") or not hasattr(model, "covariance_type"):
        raise ValueError("plot_mixture needs a fitted GaussianMixture.")
    w, mu, cov = model.weights_, model.means_, np.asarray(model.covariances_)
    K, D = mu.shape
    ct = model.covariance_type
    if ct == "tied":
        cov = np.broadcast_to(cov, (K, D, D))
    elif ct == "diag":
        cov = np.stack([np.diag(c) for c in cov])
    elif ct == "spherical":
        cov = np.stack([np.eye(D) * c for c in cov])
    return w, mu, cov


def plot_mixture(model: Any, X: Any, ax: Any = None, columns: Any = None, bins: int = 40):
    """A Gaussian mixture over its data: densities in 1-D, ellipses in 2-D.

    1-D data: a histogram (as a density) with each weighted component
    density and their sum. 2-D data: the points coloured by their most
    probable component, with 1 and 2 standard-deviation ellipses of every
    component.

    Parameters
    ----------
    model : GaussianMixture
        Fitted on one or two features.
    X : array-like (n_samples, n_features)
    ax : matplotlib Axes, optional
    columns : list of str, optional
        Axis labels.
    bins : int
        Histogram bins (1-D).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from latentem import GaussianMixture
    >>> from latentem.datasets import load_old_faithful
    >>> from latentem.plotting import plot_mixture
    >>> X, columns = load_old_faithful()
    >>> gm = GaussianMixture(2, random_state=0).fit(X)
    >>> ax = plot_mixture(gm, X, columns=columns)
    >>> len(ax.patches)  # two ellipses per component
    4
    """
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    w, mu, cov = _gmm_parts(model)
    if X.shape[1] != mu.shape[1]:
        raise ValueError(f"X has {X.shape[1]} features but the model has {mu.shape[1]}.")
    if X.shape[1] not in (1, 2):
        raise ValueError(
            f"plot_mixture draws 1-D or 2-D mixtures; this one has {X.shape[1]} features. "
            "Fit a model to one or two columns to picture it."
        )
    ax = _axes(ax)
    colors = [f"C{k % 10}" for k in range(len(w))]
    if X.shape[1] == 1:
        x = X[:, 0]
        ax.hist(x, bins=bins, density=True, color="0.8", label="data")
        pad = 0.1 * (x.max() - x.min() + 1e-12)
        grid = np.linspace(x.min() - pad, x.max() + pad, 400)
        sd = np.sqrt(cov[:, 0, 0])
        dens = w * np.exp(-0.5 * ((grid[:, None] - mu[:, 0]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        for k in range(len(w)):
            ax.plot(grid, dens[:, k], color=colors[k], lw=1.5, label=f"component {k}")
        ax.plot(grid, dens.sum(axis=1), color="k", lw=2, label="mixture")
        ax.set_xlabel(columns[0] if columns else "x")
        ax.set_ylabel("density")
        ax.legend()
    else:
        from matplotlib.patches import Ellipse

        labels = model.predict(X)
        ax.scatter(X[:, 0], X[:, 1], s=8, c=[colors[k] for k in labels], alpha=0.6, lw=0)
        for k in range(len(w)):
            vals, vecs = np.linalg.eigh(cov[k])
            angle = np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1]))
            for n_sd in (1, 2):
                width, height = 2 * n_sd * np.sqrt(vals[::-1])
                ax.add_patch(
                    Ellipse(
                        mu[k],
                        width,
                        height,
                        angle=angle,
                        fill=False,
                        color=colors[k],
                        lw=2 if n_sd == 1 else 1,
                        ls="-" if n_sd == 1 else "--",
                    )
                )
            ax.plot(*mu[k], "x", color="k", ms=8)
        ax.set_xlabel(columns[0] if columns else "x0")
        ax.set_ylabel(columns[1] if columns else "x1")
    ax.set_title(f"Gaussian mixture, {len(w)} components")
    return ax


def plot_hmm_states(
    model: Any, X: Any, lengths: Any = None, ax: Any = None, feature: int = 0, sequence: int = 0
):
    """One sequence over time, the background shaded by its Viterbi states.

    Parameters
    ----------
    model : fitted HMM (any latentem HMM)
    X : array-like (n_samples, n_features)
    lengths : array of int, optional
        Sequence lengths, as in ``fit``.
    ax : matplotlib Axes, optional
    feature : int
        Column of X to draw.
    sequence : int
        Which sequence to draw.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem import GaussianHMM
    >>> from latentem.plotting import plot_hmm_states
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(np.repeat([-2.0, 2.0, -2.0], 100), 1.0)[:, None]
    >>> model = GaussianHMM(2, n_iter=30, random_state=0).fit(X)
    >>> ax = plot_hmm_states(model, X)
    >>> len(ax.patches)  # one band per run of a state
    3
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    states = np.asarray(model.predict(X, lengths))
    bounds = np.concatenate(([0], np.cumsum(lengths if lengths is not None else [len(X)])))
    if not 0 <= sequence < len(bounds) - 1:
        raise ValueError(f"sequence must be in 0..{len(bounds) - 2}; got {sequence}.")
    if not 0 <= feature < X.shape[1]:
        raise ValueError(f"feature must be in 0..{X.shape[1] - 1}; got {feature}.")
    lo, hi = bounds[sequence], bounds[sequence + 1]
    s, y = states[lo:hi], X[lo:hi, feature].astype(float)
    t = np.arange(len(s))
    ax = _axes(ax)
    change = np.flatnonzero(np.diff(s)) + 1
    starts, ends = np.concatenate(([0], change)), np.concatenate((change, [len(s)]))
    seen = set()
    for a, b in zip(starts, ends):
        k = int(s[a])
        ax.axvspan(a - 0.5, b - 0.5, color=f"C{k % 10}", alpha=0.2, lw=0,
                   label=None if k in seen else f"state {k}")  # fmt: skip
        seen.add(k)
    ax.plot(t, y, color="k", lw=0.8)
    ax.set_xlim(-0.5, len(s) - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel(f"feature {feature}")
    ax.set_title("Most likely states (Viterbi)")
    ax.legend(loc="upper right")
    return ax


def plot_regimes(
    model: Any,
    y: Any,
    exog: Any = None,
    lengths: Any = None,
    sequence: int = 0,
    feature: int = 0,
    axes: Any = None,
):
    """A series above its smoothed regime (or state) probabilities, stacked.

    Parameters
    ----------
    model : fitted MarkovRegression, MarkovAutoregression or any latentem HMM
    y : array-like
        The series as ``fit`` took it (for an HMM: X).
    exog : array-like, optional
        Regressors of a MarkovRegression.
    lengths : array of int, optional
        Sequence lengths, as in ``fit``.
    sequence : int
        Which sequence to draw.
    feature : int
        For an HMM with several features, the column of X to draw.
    axes : two matplotlib Axes, optional
        Where to draw the series and the probabilities (a new figure if None).

    Returns
    -------
    ndarray of two matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem import MarkovRegression
    >>> from latentem.plotting import plot_regimes
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(np.repeat([0.0, 3.0, 0.0], 80), 1.0)
    >>> model = MarkovRegression(2, random_state=0).fit(y)
    >>> top, bottom = plot_regimes(model, y)
    >>> len(bottom.collections)  # one band per regime
    2
    """
    if hasattr(model, "k_regimes"):
        series = np.asarray(y, dtype=np.float64).reshape(-1)
        probs = model.smooth(series, exog, lengths=lengths).smoothed_marginal_probabilities
        label = "regime"
        # an autoregression's first `order` steps of each sequence have no probabilities
        order = int(getattr(model, "order", 0) or 0)
    else:
        X = np.asarray(y, dtype=np.float64)
        X = X[:, None] if X.ndim == 1 else X
        if not 0 <= feature < X.shape[1]:
            raise ValueError(f"feature must be in 0..{X.shape[1] - 1}; got {feature}.")
        series = X[:, feature]
        probs = np.asarray(model.predict_proba(X, lengths))
        label, order = "state", 0
    bounds = np.concatenate(([0], np.cumsum(lengths if lengths is not None else [len(series)])))
    if not 0 <= sequence < len(bounds) - 1:
        raise ValueError(f"sequence must be in 0..{len(bounds) - 2}; got {sequence}.")
    lo, hi = bounds[sequence], bounds[sequence + 1]
    p_lo = lo - order * sequence
    p = probs[p_lo : p_lo + (hi - lo - order)]
    if axes is None:
        axes = _plt().subplots(2, 1, figsize=(7.0, 5.0), sharex=True, layout="constrained")[1]
    top, bottom = axes
    t = np.arange(hi - lo)
    top.plot(t, series[lo:hi], color="k", lw=0.8)
    top.set_ylabel("series")
    top.set_title(f"Series and smoothed {label} probabilities")
    bottom.stackplot(
        t[order:], p.T, labels=[f"{label} {k}" for k in range(p.shape[1])], alpha=0.7, lw=0
    )
    bottom.set_ylim(0.0, 1.0)
    bottom.set_xlim(-0.5, len(t) - 0.5)
    bottom.set_xlabel("time step")
    bottom.set_ylabel("probability")
    bottom.legend(loc="upper right")
    return np.asarray(axes)


def plot_imputation(X_missing: Any, X_filled: Any, column: int = 0, ax: Any = None, bins: int = 30):
    """Observed against imputed values of one column (a diagnostic for imputations).

    Imputed values far outside the observed ones, or a very different shape,
    point at a model that does not fit the data (for example a multimodal
    column imputed under one normal: try more components).

    Parameters
    ----------
    X_missing : array-like (n_samples, n_features)
        The data with NaN gaps.
    X_filled : array-like, same shape
        The imputed data.
    column : int
    ax : matplotlib Axes, optional
    bins : int

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem.plotting import plot_imputation
    >>> X = np.array([[1.0, 2.0], [np.nan, 3.0], [2.0, np.nan], [1.5, 2.5]])
    >>> filled = np.array([[1.0, 2.0], [1.4, 3.0], [2.0, 2.6], [1.5, 2.5]])
    >>> ax = plot_imputation(X, filled, column=0)
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['observed (3)', 'imputed (1)']
    """
    A, B = np.asarray(X_missing, dtype=float), np.asarray(X_filled, dtype=float)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(
            f"X_missing and X_filled must be 2-D arrays of one shape; got {A.shape}, {B.shape}."
        )
    gap = np.isnan(A[:, column])
    obs, imp = A[~gap, column], B[gap, column]
    ax = _axes(ax)
    both = np.concatenate([obs, imp])
    edges = np.histogram_bin_edges(both[np.isfinite(both)], bins=bins)
    ax.hist(obs, bins=edges, density=True, alpha=0.5, color="C0", label=f"observed ({obs.size})")
    ax.hist(imp, bins=edges, density=True, alpha=0.5, color="C3", label=f"imputed ({imp.size})")
    ax.set_xlabel(f"column {column}")
    ax.set_ylabel("density")
    ax.set_title("Observed and imputed values")
    ax.legend()
    return ax


def _panel_values(table: Any, name: Any) -> tuple[list, bool]:
    """A column's values as a list and whether it is numeric (not categorical)."""
    if hasattr(table, "columns") and hasattr(table, "iloc"):
        s = table[name]
        kind = getattr(s.dtype, "kind", "O")
        numeric = kind in "iuf" and s.dropna().nunique() > 2
        return s.astype(object).where(s.notna(), None).tolist(), bool(numeric)
    col = np.asarray(table, dtype=float)[:, int(name)]
    values = [None if np.isnan(v) else float(v) for v in col]
    return values, bool(np.unique(col[~np.isnan(col)]).size > 2)


def plot_mixed_imputation(
    X_missing: Any, X_filled: Any, columns: Any = None, ncols: int = 3, bins: int = 25
):
    """Observed against imputed values of every column of a mixed table, one panel each.

    Numeric columns get overlaid histograms (densities), categorical ones
    (text, category, boolean, and columns with two values) the share of each
    level among the observed and among the imputed cells. Imputed values
    whose distribution differs a lot from the observed one are worth a look:
    either the gaps are not missing at random (then a difference is
    expected), or the model misses the column's shape.

    Parameters
    ----------
    X_missing : DataFrame or array (n_samples, n_features)
        The table with its gaps (NaN, None or ``pd.NA``).
    X_filled : same type and shape
        The imputed table (for example ``MixedImputer().fit_transform``).
    columns : list, optional
        Column names (DataFrames) or indices (arrays) to draw; default all
        columns with a gap.
    ncols : int
        Panels per row.
    bins : int

    Returns
    -------
    ndarray of matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem.plotting import plot_mixed_imputation
    >>> X = np.array([[1.0, 0.0], [np.nan, 1.0], [2.0, np.nan], [1.5, 1.0], [0.5, 0.0]])
    >>> filled = np.array([[1.0, 0.0], [1.4, 1.0], [2.0, 1.0], [1.5, 1.0], [0.5, 0.0]])
    >>> axes = plot_mixed_imputation(X, filled)
    >>> [ax.get_title() for ax in axes.ravel() if ax.get_visible()]
    ['0', '1']
    """
    plt = _plt()
    frame = hasattr(X_missing, "columns") and hasattr(X_missing, "iloc")
    if columns is None:
        if frame:
            columns = [c for c in X_missing.columns if X_missing[c].isna().any()]
        else:
            columns = list(np.flatnonzero(np.isnan(np.asarray(X_missing, float)).any(axis=0)))
    if not len(columns):
        raise ValueError("X_missing has no gaps to compare; pass columns= to draw some anyway.")
    ncols = max(1, min(int(ncols), len(columns)))
    nrows = -(-len(columns) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows), layout="constrained", squeeze=False
    )
    for ax, name in zip(axes.ravel(), columns):
        before, numeric = _panel_values(X_missing, name)
        after, _ = _panel_values(X_filled, name)
        gap = np.array([v is None for v in before])
        obs = [v for v, g in zip(before, gap) if not g]
        imp = [v for v, g in zip(after, gap) if g]
        if numeric:
            o, i = np.asarray(obs, dtype=float), np.asarray(imp, dtype=float)
            edges = np.histogram_bin_edges(np.concatenate([o, i]), bins=bins)
            ax.hist(o, bins=edges, density=True, alpha=0.5, color="C0", label="observed")
            ax.hist(i, bins=edges, density=True, alpha=0.5, color="C3", label="imputed")
        else:
            levels = sorted({str(v) for v in obs} | {str(v) for v in imp})
            x = np.arange(len(levels))
            for shift, vals, color, label in (
                (-0.2, obs, "C0", "observed"),
                (0.2, imp, "C3", "imputed"),
            ):
                counts = np.array([sum(str(v) == lv for v in vals) for lv in levels], dtype=float)
                ax.bar(
                    x + shift,
                    counts / max(counts.sum(), 1.0),
                    0.4,
                    color=color,
                    alpha=0.7,
                    label=label,
                )
            ax.set_xticks(x, levels, rotation=30 if len(levels) > 4 else 0)
        ax.set_title(str(name))
    for ax in axes.ravel()[len(columns) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize="small")
    return axes


def plot_smoothed_states(
    model: Any,
    X: Any,
    lengths: Any = None,
    inputs: Any = None,
    states: Any = None,
    level: float = 0.95,
    ax: Any = None,
):
    """The smoothed states of a :class:`~latentem.LinearGaussianSSM` with their bands.

    Parameters
    ----------
    model : fitted LinearGaussianSSM
    X, lengths, inputs
        As for ``model.smooth`` (gaps allowed); sequences are drawn one after
        the other on the same time axis.
    states : sequence of int, optional
        The state dimensions to draw (default: all).
    level : float
        Coverage of the band around each smoothed mean (normal quantiles).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from latentem import LinearGaussianSSM
    >>> from latentem.plotting import plot_smoothed_states
    >>> y = np.cumsum(np.random.default_rng(0).normal(size=100)) + 0.5
    >>> y[40:50] = np.nan
    >>> model = LinearGaussianSSM(1, random_state=0, n_iter=50, tol=1e-2).fit(y)
    >>> ax = plot_smoothed_states(model, y)
    >>> len(ax.lines), len(ax.collections)
    (1, 1)
    """
    from statistics import NormalDist

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1; got {level!r}.")
    out = model.smooth(X, lengths, inputs)
    n_states = out.state_means.shape[1]
    chosen = range(n_states) if states is None else [int(k) for k in states]
    for k in chosen:
        if not 0 <= k < n_states:
            raise ValueError(f"state {k} does not exist; the model has {n_states} states.")
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    ax = _axes(ax)
    t = np.arange(len(out.state_means))
    for k in chosen:
        mean = out.state_means[:, k]
        half = z * np.sqrt(np.maximum(out.state_covs[:, k, k], 0.0))
        (line,) = ax.plot(t, mean, lw=1.2, label=f"state {k}")
        ax.fill_between(t, mean - half, mean + half, color=line.get_color(), alpha=0.25, lw=0)
    ax.set_xlabel("time step")
    ax.set_ylabel("smoothed state")
    ax.set_title(f"Smoothed states with {level:.0%} bands")
    ax.legend(loc="best", fontsize="small")
    return ax
