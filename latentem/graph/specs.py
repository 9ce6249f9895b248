"""Node specifications: what a user adds to a :class:`~latentem.graph.ModelGraph`."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_positive_int
from latentem.graph.nodes import _ChainNode, _Latent, _MixtureNode
from latentem.latent import CategoricalLatent, MarkovLatent

_UNITS = ("row", "sequence")


# --------------------------------------------------------------------------- node specs
class Categorical:
    """A latent categorical variable with ``n_states`` states.

    ``unit="row"``: one state per row (a mixture over rows).
    ``unit="sequence"``: one state per whole sequence (a mixture of
    sequence models, such as a mixture of HMMs).
    ``weights_prior`` is a Dirichlet pseudo-count (1.0: maximum likelihood).

    Examples
    --------
    >>> from latentem import Categorical
    >>> Categorical(3), Categorical(2, unit="sequence")
    (Categorical(3 states, unit=row), Categorical(2 states, unit=sequence))
    """

    kind = "categorical"

    def __init__(self, n_states: int, *, unit: str = "row", weights_prior: float = 1.0):
        self.n_states = check_positive_int(n_states, "n_states")
        if unit not in _UNITS:
            raise ValueError(f"unit must be one of {_UNITS}; got {unit!r}.")
        self.unit = unit
        self.weights_prior = weights_prior

    def __repr__(self) -> str:
        return f"Categorical({self.n_states} states, unit={self.unit})"

    def runtime(self, name: str, n_sets: int, children: list) -> _Latent:
        """The compiled node: mixture weights for each of ``n_sets`` parameter sets."""
        part = CategoricalLatent(self.n_states, self.weights_prior, floor=0.0, n_sets=n_sets)
        return _MixtureNode(name, self, n_sets, children, part)

    def to_state(self, name: str) -> dict:
        """The node's entry in a model file."""
        return {
            "type": "Categorical",
            "n_states": self.n_states,
            "unit": self.unit,
            "weights_prior": self.weights_prior,
        }

    @classmethod
    def from_state(cls, entry: dict) -> Categorical:
        return cls(entry["n_states"], unit=entry["unit"], weights_prior=entry["weights_prior"])


class MarkovChain:
    """A latent Markov chain with ``n_states`` states over the rows of each sequence.

    ``startprob_prior`` and ``transmat_prior`` are Dirichlet pseudo-counts.
    ``initial`` is where each sequence's first state comes from: ``"free"``
    (estimated start probabilities) or ``"stationary"`` (the stationary
    distribution of the transition matrix, as
    :class:`latentem.latent.MarkovLatent` and the HMMs take it).

    Examples
    --------
    >>> from latentem import MarkovChain
    >>> MarkovChain(4)
    MarkovChain(4 states)
    """

    kind = "markov"
    unit = "sequence"

    def __init__(
        self,
        n_states: int,
        *,
        startprob_prior: float = 1.0,
        transmat_prior: float = 1.0,
        initial: str = "free",
    ):
        self.n_states = check_positive_int(n_states, "n_states")
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        if not (isinstance(initial, str) and initial in ("free", "stationary")):
            # a fixed start would need one vector per parameter set: set startprob_ instead
            raise ValueError(
                f'initial must be "free" or "stationary" in a model graph; got {initial!r}.'
            )
        self.initial = initial

    def __repr__(self) -> str:
        start = ", stationary start" if self.initial == "stationary" else ""
        return f"MarkovChain({self.n_states} states{start})"

    def runtime(self, name: str, n_sets: int, children: list) -> _Latent:
        """The compiled node: a chain for each of ``n_sets`` parameter sets."""
        part = MarkovLatent(
            self.n_states, self.startprob_prior, self.transmat_prior, n_sets, self.initial
        )
        return _ChainNode(name, self, n_sets, children, part)

    def to_state(self, name: str) -> dict:
        """The node's entry in a model file."""
        return {
            "type": "MarkovChain",
            "n_states": self.n_states,
            "startprob_prior": self.startprob_prior,
            "transmat_prior": self.transmat_prior,
            "initial": self.initial,
        }

    @classmethod
    def from_state(cls, entry: dict) -> MarkovChain:
        return cls(
            entry["n_states"],
            startprob_prior=entry["startprob_prior"],
            transmat_prior=entry["transmat_prior"],
            initial=entry.get("initial", "free"),  # files before the option: free
        )


class Family:
    """An emission-family node (see :class:`latentem.families.base.EmissionFamily`).

    ``family`` is either a family *instance*, used as a template (each
    compiled node gets ``family.fresh(n_sets)``: the same settings with as
    many parameter sets as its parents give it), or a factory
    ``factory(n_sets) -> family``. A graph whose template families are
    registered (every latentem family, and yours after
    :func:`latentem.register_family`) can be saved in model files; a graph
    with a factory cannot. ``columns`` selects the columns of X the family
    models (indices, or names when X is a DataFrame); None means all.

    Examples
    --------
    >>> from latentem import Family
    >>> from latentem.families.poisson import PoissonFamily
    >>> node = Family(PoissonFamily(1, lambdas_prior=0.5), columns=[2], name="Counts")
    >>> node, node.build(3).n_components, node.build(3).lambdas_prior
    (Counts(columns [2]), 3, 0.5)
    >>> Family(lambda n_sets: PoissonFamily(n_sets)).build(2).n_components
    2
    """

    kind = "family"

    def __init__(self, family, columns: Any = None, name: str | None = None, config=None):
        template = callable(getattr(family, "fresh", None))
        self.factory = family.fresh if template else family
        self.columns = columns
        self.label = (type(family).__name__ if template else "Family") if name is None else name
        # How the node is re-created from a model file: a built-in node's settings
        # (Gaussian, Discrete, Poisson) or the template family itself; None for a
        # user's factory, which model files cannot store.
        self.config = {"type": "Family", "template": family} if template else config

    def build(self, n_sets: int):
        family = self.factory(n_sets)
        if family.n_components != n_sets:
            raise ValueError(
                f"the family built for this node has {family.n_components} components but its "
                f"parents give it {n_sets} parameter sets; they must agree."
            )
        return family

    def __repr__(self) -> str:
        cols = "all columns" if self.columns is None else f"columns {list(self.columns)}"
        return f"{self.label}({cols})"

    def to_state(self, name: str) -> dict:
        """The node's entry in a model file: its settings or its template family."""
        if self.config is None:
            raise ValueError(
                f"node {name!r} is built by your own factory, which a model file "
                "cannot store; build it as Family(<a family instance>) from a "
                "registered family (latentem.register_family) instead."
            )
        columns = None if self.columns is None else list(np.atleast_1d(self.columns))
        return {**self.config, "columns": columns}

    @classmethod
    def from_state(cls, entry: dict) -> Family:
        settings = {k: v for k, v in entry.items() if k != "type"}
        if entry["type"] == "Family":
            return cls(settings["template"], settings.get("columns"))
        # the built-in nodes' settings (files written before template families)
        makers = {"Gaussian": Gaussian, "Discrete": Discrete, "Poisson": Poisson}
        return makers[entry["type"]](**settings)


def Gaussian(
    covariance_type: str = "diag",
    *,
    columns: Any = None,
    min_covar: float = 1e-3,
    covars_prior: float = 1e-2,
    covars_weight: float = 1.0,
    reg_covar: float = 1e-6,
) -> Family:
    """Gaussian emissions; NaN entries are marginalised (and :meth:`ModelGraph.impute` fills them).

    The M-step is :class:`latentem.GaussianHMM`'s (hmmlearn's MAP rule with
    ``covars_prior``), plus ``reg_covar`` on the diagonal (as in scikit-learn's
    mixtures: it keeps a component that shrinks onto a few points positive
    definite; ``reg_covar=0`` gives GaussianHMM's numbers exactly); ``covariance_type="tied"``
    shares one covariance across all parameter sets of the node.

    Examples
    --------
    >>> from latentem import Gaussian
    >>> Gaussian("full", columns=["x", "y"])
    Gaussian[full](columns ['x', 'y'])
    """
    from latentem.families.gaussian_hmm import GaussianEmission

    def factory(n_sets):
        return GaussianEmission(
            n_sets,
            covariance_type,
            min_covar=min_covar,
            covars_prior=covars_prior,
            covars_weight=covars_weight,
            reg_covar=reg_covar,
        )

    config = {
        "type": "Gaussian",
        "covariance_type": covariance_type,
        "min_covar": min_covar,
        "covars_prior": covars_prior,
        "covars_weight": covars_weight,
        "reg_covar": reg_covar,
    }
    return Family(factory, columns, name=f"Gaussian[{covariance_type}]", config=config)


def Discrete(*, columns: Any = None, n_features: int | None = None) -> Family:
    """Categorical emissions: one column of integer symbols 0..n_features-1 (NaN or -1: missing).

    Examples
    --------
    >>> from latentem import Discrete
    >>> Discrete(columns=[2])
    Discrete(columns [2])
    """
    from latentem.families.categorical import CategoricalFamily

    config = {"type": "Discrete", "n_features": n_features}
    return Family(
        lambda n: CategoricalFamily(n, n_features), columns, name="Discrete", config=config
    )


def Poisson(*, columns: Any = None) -> Family:
    """Independent Poisson counts per selected column (NaN: missing).

    Examples
    --------
    >>> from latentem import Poisson
    >>> Poisson()
    Poisson(all columns)
    """
    from latentem.families.poisson import PoissonFamily

    return Family(lambda n: PoissonFamily(n), columns, name="Poisson", config={"type": "Poisson"})


def spec_to_state(spec: Any, name: str) -> dict:
    """A node's entry in a model file (an HMM node is saved as the model it is)."""
    to_state = getattr(spec, "to_state", None)
    return to_state(name) if callable(to_state) else {"type": "HMM", "model": spec}


def spec_from_state(entry: dict) -> Any:
    """The node spec a model file's entry describes."""
    kind = entry.get("type")
    if kind == "HMM":
        return entry["model"]
    spec = LATENT_SPECS.get(kind) or (Family if kind in _FAMILY_TYPES else None)
    if spec is None:
        raise ValueError(f"unknown graph node type {kind!r} in the model file")
    return spec.from_state(entry)


#: The latent-structure specs, by the type name their model-file entries carry: a new
#: latent structure adds its spec here (with ``runtime``, ``to_state``, ``from_state``).
LATENT_SPECS = {"Categorical": Categorical, "MarkovChain": MarkovChain}
#: Family entries: template families, and the built-in nodes of older files.
_FAMILY_TYPES = ("Family", "Gaussian", "Discrete", "Poisson")
