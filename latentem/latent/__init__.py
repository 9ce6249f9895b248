"""Latent structures as parts: each owns its parameters, statistics, M-step and prior.

A latent structure turns the (n, K) log-densities of an emission family
into posteriors (which the family receives as row weights) and into its
own statistics:

* :class:`CategoricalLatent` -- independent rows, one label each (mixture
  weights): over a family it makes a mixture;
* :class:`MarkovLatent` -- a Markov chain along each sequence (start and
  transition probabilities, forward-backward, Viterbi): over a family it
  makes a hidden Markov model.

Estimators (:class:`latentem.Mixture`, :class:`latentem.HMM`, their
subclasses) and :class:`latentem.ModelGraph` nodes hold these parts and
call them; they never re-implement them. Both parts take a leading
``n_sets`` axis: a model-graph node under a parent with R parameter sets
holds R independent sets of weights (or chains) in one part.
"""

from latentem.latent.categorical import CategoricalLatent
from latentem.latent.markov import MarkovLatent

__all__ = ["CategoricalLatent", "MarkovLatent"]
