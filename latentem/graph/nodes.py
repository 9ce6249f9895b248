"""The compiled tree: data split per node, family leaves and latent nodes (each a
latent part from :mod:`latentem.latent` over its children)."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._vector import family_parts
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.sequences import Sequences


# ------------------------------------------------------------------------------ data
class GraphData(Sequences):
    """X with its sequences, and each family node's columns, validated once per fit."""

    def __init__(self, X: Any, offsets: np.ndarray, leaves: dict[str, np.ndarray]):
        super().__init__(X, offsets)
        self.row_sequence = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        self.leaves = leaves


# --------------------------------------------------------------------------- runtime nodes
class _Leaf:
    def __init__(self, name: str, spec: Any, n_sets: int):
        self.name = name
        self.spec = spec
        self.n_sets = n_sets
        self.family = spec.build(n_sets)
        self.unit = "row"
        self.last_weights: np.ndarray | None = None

    def init(self, data: GraphData, rng: np.random.Generator, path: tuple = ()) -> None:
        X = data.leaves[self.name]
        self.family.init_params(X, rng, self.family.param_letters)
        self.family.check_params()
        if len(path) > 1 and getattr(self.family, "means_", None) is not None:
            # Nested latent nodes (say a chain whose states are mixtures): start from
            # k-means within k-means, so the sets of one parent state start close, and
            # take one hard-assignment M-step to give each set its own spread.
            labels = _nested_labels(X, path, rng)
            hard = np.zeros((len(X), self.n_sets))
            hard[np.arange(len(X)), labels] = 1.0
            self.family.m_step(self.family.accumulate(X, hard), self.family.param_letters)
            self.family.check_params()

    def evidence(self, data: GraphData, full: bool = False) -> np.ndarray:
        return np.asarray(self.family.log_prob(data.leaves[self.name]), dtype=np.float64)

    def accumulate(self, data: GraphData, weights: np.ndarray, stats: dict) -> None:
        self.last_weights = weights
        stats[self.name] = self.family.accumulate(data.leaves[self.name], weights)

    def m_step(self, stats: dict) -> None:
        self.family.m_step(stats[self.name], self.family.param_letters)

    def log_prior(self) -> float:
        prior = getattr(self.family, "log_prior", None)
        return float(prior()) if callable(prior) else 0.0

    def vector_parts(self) -> list:
        return family_parts(self.family, f"node {self.name!r}")

    def nodes(self):
        yield self


class _Latent:
    """A latent node at run time: a latent part (:mod:`latentem.latent`) with
    ``n_sets`` independent parameter sets, and its children. Subclasses say how
    the part turns the children's evidence into posteriors."""

    def __init__(self, name: str, spec, n_sets: int, children: list, part) -> None:
        self.name = name
        self.spec = spec
        self.n_states = spec.n_states
        self.n_sets = n_sets
        self.children = children
        self.unit = spec.unit
        self.part = part
        self.posterior: np.ndarray | None = None

    # -- parameters
    def init(self, data: GraphData, rng: np.random.Generator, path: tuple = ()) -> None:
        self.part.init(rng)
        for child in self.children:
            child.init(data, rng, self._inner_path(path))

    def _inner_path(self, path: tuple) -> tuple:
        return path + (self.n_states,)

    def _child_evidence(self, data: GraphData, full: bool) -> np.ndarray:
        total = None
        for child in self.children:
            e = child.evidence(data, full)
            total = e if total is None else total + e
        return total

    def parameters(self) -> dict[str, np.ndarray]:
        """The part's parameter arrays, by attribute name."""
        return {attr: getattr(holder, attr) for holder, attr, _ in self.part.vector_parts()}

    def set_parameter(self, key: str, value: Any) -> None:
        allowed = tuple(self.parameters())
        if key not in allowed:
            raise ValueError(f"node {self.name!r} takes {allowed}; got {key!r}.")
        value = np.array(value, dtype=np.float64)
        current = getattr(self.part, key)
        expected = value.shape if current is None else current.shape  # None: being loaded
        if value.shape != expected:
            raise ValueError(
                f"{key} of node {self.name!r} must have shape {expected}; got {value.shape}."
            )
        setattr(self.part, key, value)

    def log_prior(self) -> float:
        return self.part.log_prior()

    def vector_parts(self) -> list:
        return self.part.vector_parts()

    def m_step(self, stats: dict) -> None:
        self._own_m_step(stats[self.name])
        for child in self.children:
            child.m_step(stats)

    def nodes(self):
        yield self
        for child in self.children:
            yield from child.nodes()


class _MixtureNode(_Latent):
    """Independent categorical states (per row, or per sequence)."""

    def _inner_path(self, path: tuple) -> tuple:
        # Row-level nesting only: a sequence-level cluster is seeded separately.
        return path + (self.n_states,) if self.unit == "row" else path

    def evidence(self, data: GraphData, full: bool = False) -> np.ndarray:
        """(n_units, n_sets) log-likelihood of each unit under each parameter set."""
        self._joint = self.part.joint(self._child_evidence(data, full))
        return self.part.evidence(self._joint)

    def accumulate(self, data: GraphData, weights: np.ndarray, stats: dict) -> None:
        resp = self.part.responsibilities(self._joint) * weights[:, :, None]
        self.posterior = resp.sum(axis=1)
        stats[self.name] = {"counts": resp.sum(axis=0)}
        child_weights = np.ascontiguousarray(resp.reshape(len(resp), self.n_sets * self.n_states))
        for child in self.children:
            child.accumulate(data, child_weights, stats)

    def _own_m_step(self, own: dict) -> None:
        self.part.m_step(own["counts"])


class _ChainNode(_Latent):
    """A Markov chain over the rows of each sequence."""

    def __init__(self, name: str, spec, n_sets: int, children: list, part) -> None:
        super().__init__(name, spec, n_sets, children, part)
        self._passes: list | None = None  # the forward-backward of each set, from evidence

    def evidence(self, data: GraphData, full: bool = False) -> np.ndarray:
        """(n_sequences, n_sets) log-likelihood of each sequence under each set.

        ``full`` (an E-step follows): run forward-backward now and keep the
        posteriors, so :meth:`accumulate` need not run it again; otherwise
        (scoring) the forward pass alone is enough.
        """
        S = self.n_states
        self._log_b = self._child_evidence(data, full)
        self._passes = [] if full else None
        out = np.empty((data.n_sequences, self.n_sets))
        for r in range(self.n_sets):
            if full:
                self._passes.append(self._forward_backward(data, r, None))
                out[:, r] = self._passes[r][3]
            else:
                log_b = np.ascontiguousarray(self._log_b[:, r * S : (r + 1) * S])
                out[:, r] = self.part.log_likelihood(log_b, data.offsets, data.groups, s=r)
        return out

    def _forward_backward(self, data: GraphData, r: int, w_seq: np.ndarray | None) -> tuple:
        S = self.n_states
        log_b = np.ascontiguousarray(self._log_b[:, r * S : (r + 1) * S])
        return self.part.forward_backward(log_b, data.offsets, data.groups, w_seq, s=r)

    def accumulate(self, data: GraphData, weights: np.ndarray, stats: dict) -> None:
        R, S = self.n_sets, self.n_states
        starts = np.zeros((R, S))
        trans = np.zeros((R, S, S))
        child_weights = np.empty((len(data), R * S))
        posterior = np.zeros((len(data), S))
        for r in range(R):
            w_seq = np.ascontiguousarray(weights[:, r])
            if self._passes is not None and np.all(w_seq == 1.0):
                post, st, tr, seq_ll = self._passes[r]  # from evidence(full=True)
            else:  # the counts need the sequences' weights
                post, st, tr, seq_ll = self._forward_backward(data, r, w_seq)
            if not np.isfinite(seq_ll).all():
                raise ValueError(
                    f"node {self.name!r}: a sequence has zero probability under the "
                    "current parameters (zeros in its start or transition probabilities)."
                )
            starts[r], trans[r] = st, tr
            block = post * w_seq[data.row_sequence][:, None]
            child_weights[:, r * S : (r + 1) * S] = block
            posterior += block
        self.posterior = posterior
        stats[self.name] = {"start": starts, "trans": trans}
        for child in self.children:
            child.accumulate(data, child_weights, stats)

    def _own_m_step(self, own: dict) -> None:
        self.part.m_step(own["start"], own["trans"])


def _nested_labels(X: np.ndarray, sizes: tuple, rng: np.random.Generator) -> np.ndarray:
    """A set index in 0..prod(sizes)-1 per row, ordered as the flattened state path:
    k-means with sizes[0] clusters, then k-means with sizes[1] inside each, and so on."""
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X).astype(np.float64)
    labels = np.zeros(len(filled), dtype=np.int64)
    for size in sizes:
        new = labels * size
        for group in np.unique(labels):
            rows = np.flatnonzero(labels == group)
            if size == 1 or len(rows) < size:
                continue  # too few rows to split: all stay in the first child
            part = np.ascontiguousarray(filled[rows])
            uniforms = rng.random((size - 1, 2 + int(np.log(size))))
            idx = kmeans_plusplus(part, size, int(rng.integers(len(part))), uniforms)
            _, sub, _ = lloyd(part, np.ascontiguousarray(part[idx]), 50)
            new[rows] += sub
        labels = new
    return labels
