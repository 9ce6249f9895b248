"""Small data sets that ship with latentem, for demos, docs and tests."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_hamilton_gnp", "load_old_faithful"]


def load_old_faithful() -> tuple[np.ndarray, list[str]]:
    """Old Faithful geyser eruptions: 272 rows of (eruption minutes, waiting minutes).

    The classic two-cluster example for Gaussian mixtures (Azzalini and
    Bowman, 1990; the ``faithful`` data set of R).

    Returns
    -------
    X : ndarray of shape (272, 2)
        Eruption duration and waiting time to the next eruption, in minutes.
    columns : list of str
        ``["eruptions", "waiting"]``.

    Examples
    --------
    >>> from latentem.datasets import load_old_faithful
    >>> X, columns = load_old_faithful()
    >>> X.shape, columns
    ((272, 2), ['eruptions', 'waiting'])
    """
    path = resources.files("latentem") / "data" / "old_faithful.csv"
    with path.open("r", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        X = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return X, header


def load_hamilton_gnp() -> dict[str, np.ndarray]:
    """US real GNP growth, 1951Q2 to 1984Q4, with the NBER recession indicator.

    The data of Hamilton (1989), "A new approach to the economic analysis of
    nonstationary time series and the business cycle": 100 times the
    quarterly log change of real GNP (135 quarters), as statsmodels' tests
    and Stata's and E-views' manuals use it.

    Returns
    -------
    dict of ndarray
        ``year``, ``quarter`` (int), ``growth`` (float) and ``recession``
        (0/1, int), 135 values each.

    Examples
    --------
    >>> from latentem.datasets import load_hamilton_gnp
    >>> gnp = load_hamilton_gnp()
    >>> len(gnp["growth"]), int(gnp["recession"].sum())
    (135, 27)
    """
    path = resources.files("latentem") / "data" / "hamilton_gnp.csv"
    with path.open("r", encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    out = {name: table[:, i] for i, name in enumerate(header)}
    for name in ("year", "quarter", "recession"):
        out[name] = out[name].astype(np.int64)
    return out
