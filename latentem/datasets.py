"""Small data sets that ship with latentem, for demos, docs and tests."""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["load_old_faithful"]


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
