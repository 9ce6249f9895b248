""":class:`SaveMixin`, the base that gives latentem's estimators ``save(path,
metadata=None)``. Models import it at import time, so this module (and the package)
imports no model module at the top: model classes are looked up lazily, by name.
"""

from __future__ import annotations

import os

from latentem.persistence.files import save


class SaveMixin:
    """Gives an estimator ``save(path, metadata=None)``; see :func:`save`.

    Examples
    --------
    >>> from latentem import GaussianMixture
    >>> from latentem.persistence import SaveMixin
    >>> issubclass(GaussianMixture, SaveMixin)
    True
    """

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
        """Write this model to a model file (JSON metadata + ``.npz`` arrays; no pickle).

        Load it back with ``latentem.persistence.load(path)``; see
        :func:`latentem.persistence.save` for the parameters.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from latentem import GaussianMixture
        >>> from latentem.persistence import load
        >>> X = np.random.default_rng(1).normal(size=(40, 1))
        >>> path = os.path.join(tempfile.mkdtemp(), "one.lem")
        >>> GaussianMixture(1).fit(X).save(path)
        >>> type(load(path)).__name__
        'GaussianMixture'
        """
        save(self, path, metadata=metadata)
