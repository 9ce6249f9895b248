"""Compose latent models on a networkx graph and fit the whole graph with one EM.

Nodes are latent structures (:class:`Categorical`, :class:`MarkovChain`),
emission families (:class:`Gaussian`, :class:`Discrete`, :class:`Poisson`,
or any family through :class:`Family`) and whole HMMs (``GaussianHMM`` and
friends, expanded into a Markov chain and its emission family). An edge
``parent -> child`` means "the parent's latent state selects the child's
parameter set": a child under a parent with S states (which itself has R
parameter sets) gets R * S parameter sets.

One EM runs over the whole tree. In the E-step children pass their per-unit
log-likelihoods up (per row, or per whole sequence), each latent node turns
them into posteriors, and parents pass posteriors down as the weights of
their children's statistics. The graph is itself a
:class:`~latentem.protocol.LatentModel`, so :func:`latentem.fit_em`,
restarts and the monotone guard work on it unchanged.

The package's files: :mod:`~latentem.graph.specs` (the nodes a user adds),
:mod:`~latentem.graph.nodes` (the compiled tree: family leaves and latent
nodes over :mod:`latentem.latent` parts), :mod:`~latentem.graph.model`
(:class:`ModelGraph`: compile, fit, save) and :mod:`~latentem.graph.drawing`.
"""

from latentem.graph.model import ModelGraph
from latentem.graph.nodes import GraphData
from latentem.graph.specs import Categorical, Discrete, Family, Gaussian, MarkovChain, Poisson

__all__ = [
    "ModelGraph",
    "Categorical",
    "MarkovChain",
    "Gaussian",
    "Discrete",
    "Poisson",
    "Family",
    "GraphData",
]
