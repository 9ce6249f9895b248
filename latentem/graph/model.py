"""The :class:`ModelGraph`: building, compiling, fitting and saving a tree of nodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from latentem._validation import check_random_state
from latentem._vector import get_vector, set_vector
from latentem.families.base import dirichlet_m_step
from latentem.graph import drawing
from latentem.graph.drawing import _is_hmm
from latentem.graph.nodes import GraphData, _Latent, _Leaf, _MixtureNode
from latentem.graph.specs import (
    _UNITS,
    Categorical,
    Family,
    MarkovChain,
    spec_from_state,
    spec_to_state,
)
from latentem.kernels.kmeans import kmeans_plusplus, lloyd
from latentem.persistence import SaveMixin
from latentem.registry import register
from latentem.runner import fit_em, is_out_of_core, is_sequence_data
from latentem.sequences import offsets_from_lengths


@register
class ModelGraph(SaveMixin):
    """A tree of latent structures and emission families, fitted by one EM.

    Examples
    --------
    A mixture of two 2-state HMMs that clusters whole sequences:

    >>> import numpy as np
    >>> import latentem
    >>> from latentem.graph import ModelGraph, Categorical
    >>> rng = np.random.default_rng(0)
    >>> def sequence(offset):
    ...     states = np.repeat(rng.permutation([0, 1]), 25)
    ...     return rng.normal(offset + 3.0 * states, 0.5)[:, None]
    >>> X = np.concatenate([sequence(-10.0 if i % 2 else 10.0) for i in range(20)])
    >>> g = ModelGraph()
    >>> g.add_node("cluster", Categorical(2), unit="sequence")
    >>> g.add_node("dynamics", latentem.GaussianHMM(2, covariance_type="diag"))
    >>> g.add_edge("cluster", "dynamics")
    >>> labels = g.fit(X, lengths=[50] * 20, random_state=0).predict(X, [50] * 20, node="cluster")
    >>> bool(np.all(labels[::2] == labels[0]) and np.all(labels[1::2] != labels[0]))
    True
    """

    def __init__(self) -> None:
        import networkx as nx  # imported on first use: it is slow to import

        self.graph = nx.DiGraph()
        self._root: _Latent | None = None

    # -- building
    def add_node(
        self, name: str, spec: Any, *, unit: str | None = None, columns: Any = None
    ) -> None:
        """Add a node: a latent structure, an emission family, or a whole HMM.

        ``unit`` sets a :class:`Categorical`'s unit (``"row"`` or
        ``"sequence"``); ``columns`` selects a family's columns.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"node names must be non-empty strings; got {name!r}.")
        if name in self.graph:
            raise ValueError(f"there is already a node named {name!r}.")
        if unit is not None:
            if not isinstance(spec, Categorical):
                raise ValueError(f"unit= applies to Categorical nodes only (node {name!r}).")
            if unit not in _UNITS:
                raise ValueError(f"unit must be one of {_UNITS}; got {unit!r}.")
            spec.unit = unit
        if columns is not None:
            if not isinstance(spec, Family):
                raise ValueError(f"columns= applies to family nodes only (node {name!r}).")
            spec.columns = columns
        # a latent structure's spec compiles itself (runtime); families and HMMs are leaves
        latent = callable(getattr(spec, "runtime", None))
        if not (latent or isinstance(spec, Family) or _is_hmm(spec)):
            raise ValueError(
                f"node {name!r}: {type(spec).__name__} is not a graph node; use Categorical, "
                "MarkovChain, Gaussian, Discrete, Poisson, Family or an HMM such as GaussianHMM."
            )
        self.graph.add_node(name, spec=spec)
        self._root = None

    def add_edge(self, parent: str, child: str) -> None:
        """``parent``'s latent state selects ``child``'s parameter set."""
        for n in (parent, child):
            if n not in self.graph:
                raise ValueError(f"no node named {n!r}; add it with add_node first.")
        self.graph.add_edge(parent, child)
        self._root = None

    # -- validation and compilation
    def _compile(self) -> _Latent:
        import networkx as nx

        g = self.graph
        if g.number_of_nodes() == 0:
            raise ValueError("the graph is empty; add nodes and edges first.")
        if not nx.is_directed_acyclic_graph(g):
            cycle = nx.find_cycle(g)
            raise ValueError(f"the graph has a cycle: {' -> '.join(e[0] for e in cycle)}.")
        for n in g:
            if g.in_degree(n) > 1:
                raise ValueError(
                    f"node {n!r} has {g.in_degree(n)} parents; a latentem graph is a tree "
                    "(each node has at most one parent)."
                )
        roots = [n for n in g if g.in_degree(n) == 0]
        if len(roots) != 1:
            raise ValueError(
                f"the graph needs exactly one root (a node without parent); found {roots}."
            )
        root_spec = g.nodes[roots[0]]["spec"]
        if isinstance(root_spec, Family):
            raise ValueError(
                f"the root {roots[0]!r} is an emission family; put a latent node "
                "(Categorical, MarkovChain or an HMM) above it."
            )
        root = self._build(roots[0], 1, None)
        assert isinstance(root, _Latent)
        return root

    def _build(self, name: str, n_sets: int, parent_unit: str | None):
        g = self.graph
        spec = g.nodes[name]["spec"]
        kids = list(g.successors(name))
        if _is_hmm(spec):
            if kids:
                raise ValueError(
                    f"node {name!r} is a whole HMM with its own emissions; it cannot have "
                    "children. Build it from a MarkovChain node and family nodes instead."
                )
            chain = MarkovChain(
                spec.n_components,
                startprob_prior=spec.startprob_prior,
                transmat_prior=spec.transmat_prior,
            )
            template = spec._family()
            emission = Family(
                lambda n, t=template: _replicate_family(t, n), None, name=type(template).__name__
            )
            leaf = _Leaf(f"{name}.emission", emission, n_sets * spec.n_components)
            node = chain.runtime(name, n_sets, [leaf])
        elif isinstance(spec, Family):
            if kids:
                raise ValueError(f"family node {name!r} cannot have children.")
            node = _Leaf(name, spec, n_sets)
        else:
            if not kids:
                raise ValueError(
                    f"latent node {name!r} has no children, so nothing gives it evidence (no "
                    "parameters to fit); add an emission family or a model under it."
                )
            children = [self._build(k, n_sets * spec.n_states, _child_unit(spec)) for k in kids]
            node = spec.runtime(name, n_sets, children)
        if parent_unit is not None and node.unit != parent_unit:
            if parent_unit == "sequence":
                raise ValueError(
                    f"node {name!r} gives one value per row, but its parent works on whole "
                    "sequences; put a sequence node (a MarkovChain or an HMM) in between."
                )
            raise ValueError(
                f"node {name!r} works on whole sequences, but its parent gives one state per "
                "row; make the parent a Categorical(unit='sequence') or the root."
            )
        return node

    def _data(self, X: Any, lengths: Any) -> GraphData:
        if X is None or len(X) == 0:
            raise ValueError("X is empty (0 rows); pass at least one row.")
        names = list(X.columns) if hasattr(X, "columns") else None
        n_cols = len(names) if names is not None else np.shape(X)[1] if np.ndim(X) == 2 else 1
        leaves = {}
        root = self._root
        assert root is not None
        for node in root.nodes():
            if isinstance(node, _Leaf):
                cols = _column_indices(node.spec.columns, names, n_cols, node.name)
                if names is not None:
                    part = X.iloc[:, cols].to_numpy()
                else:
                    arr = np.asarray(X)
                    part = arr.reshape(-1, 1)[:, cols] if arr.ndim == 1 else arr[:, cols]
                leaves[node.name] = node.family.validate_data(part)
        offsets = offsets_from_lengths(lengths, len(X))
        return GraphData(X, offsets, leaves)

    # -- the LatentModel protocol
    def validate_data(self, data: Any) -> GraphData:
        if isinstance(data, GraphData):
            return data
        if is_sequence_data(data):  # a block of whole sequences from an out-of-core fit
            return self._data(np.asarray(data.X), np.diff(data.offsets))
        return self._data(data, None)

    def init_params(self, data: GraphData, rng: np.random.Generator) -> None:
        root = self._root
        root.init(data, rng)
        if isinstance(root, _MixtureNode) and root.unit == "sequence":
            self._seed_sequence_clusters(data, rng)

    def _seed_sequence_clusters(self, data: GraphData, rng: np.random.Generator) -> None:
        """Start a sequence mixture from k-means++ on per-sequence means of the numeric columns,
        with one M-step of the children on those hard groups."""
        root = self._root
        feats = []
        for arr in data.leaves.values():
            if arr.ndim == 2 and arr.dtype.kind == "f":
                sums = np.add.reduceat(np.nan_to_num(arr), data.offsets[:-1], axis=0)
                counts = np.add.reduceat((~np.isnan(arr)).astype(float), data.offsets[:-1], axis=0)
                feats.append(sums / np.maximum(counts, 1.0))
        if not feats:
            return
        F = np.ascontiguousarray(np.hstack(feats), dtype=np.float64)
        S = root.n_states
        if len(F) < S:
            return
        uniforms = rng.random((S - 1, 2 + int(np.log(S)))) if S > 1 else np.empty((0, 1))
        idx = kmeans_plusplus(F, S, int(rng.integers(len(F))), uniforms)
        _, labels, _ = lloyd(F, np.ascontiguousarray(F[idx]), 100)
        hard = np.zeros((len(F), S))
        hard[np.arange(len(F)), labels] = 1.0
        stats: dict = {}
        for child in root.children:
            child.evidence(data, full=True)
            child.accumulate(data, hard, stats)
            child.m_step(stats)
        root.part.weights_ = dirichlet_m_step(hard.sum(axis=0)[None], 2.0, root.part.weights_)

    def e_step(self, data: GraphData) -> tuple[dict, float]:
        root = self._root
        evidence = root.evidence(data, full=True)
        stats: dict = {}
        root.accumulate(data, np.ones((len(evidence), 1)), stats)
        return stats, float(evidence.sum())

    def m_step(self, stats: dict) -> None:
        self._root.m_step(stats)

    def log_likelihood(self, data: GraphData) -> float:
        return float(self._root.evidence(data).sum())

    def log_prior(self) -> float:
        """Sum of every node's log-prior (Dirichlet on latent probabilities, the families'
        own); EM maximises the log-likelihood plus this."""
        return float(sum(node.log_prior() for node in self._root.nodes()))

    # -- the parameter-vector view, for accelerate="squarem"
    def _vector_parts(self) -> list:
        """(holder, attribute, is_simplex) for every parameter array, in tree order."""
        return [part for node in self._root.nodes() for part in node.vector_parts()]

    def _check_families(self) -> None:
        for node in self._root.nodes():
            if isinstance(node, _Leaf):
                node.family.check_params()

    def get_param_vector(self) -> np.ndarray:
        """Every node's parameters as one float64 vector."""
        return get_vector(self._vector_parts())

    def set_param_vector(self, theta: np.ndarray) -> bool:
        """Set every node's parameters; False (and nothing changed) if any is infeasible."""
        return set_vector(self._vector_parts(), theta, self._check_families)

    # -- public API
    def fit(
        self,
        X: Any,
        lengths: Any = None,
        *,
        max_iter: int = 100,
        tol: float = 1e-6,
        n_init: int = 1,
        random_state: Any = None,
        verbose: bool = False,
        warm_start: bool = False,
        accelerate: str | None = None,
    ) -> ModelGraph:
        """Fit every node of the graph by one EM over the whole tree.

        Parameters
        ----------
        X : array or DataFrame (n_rows, n_columns)
            All sequences stacked (when there are sequences).
        lengths : array of int, optional
            Sequence lengths (they add up to the number of rows). Needed for
            sequence-level nodes; without it X is one sequence.
        warm_start : bool
            Start from the current parameters (after :meth:`initialize` and
            :meth:`set_parameters`, or a previous fit) instead of
            initialising them.
        accelerate : None or "squarem"
            SQUAREM over the parameters of every node (see :func:`latentem.fit_em`).
        """
        if not (warm_start and self._root is not None):
            self._root = self._compile()
        if is_out_of_core(X):
            # The backends validate (and turn into GraphData) one block at a time; rows
            # are independent only under a row-level root without sequences.
            if lengths is None and self._root.unit == "row":
                data = X
            else:
                # rows left where they are; the backends cut them between sequences
                from latentem.sequences import Sequences

                data = Sequences(X, offsets_from_lengths(lengths, len(X)))
        else:
            data = self._data(X, lengths)
        result = fit_em(
            self,
            data,
            max_iter=max_iter,
            tol=tol,
            n_init=n_init,
            random_state=check_random_state(random_state),
            verbose=verbose,
            warm_start=warm_start,
            accelerate=accelerate,
        )
        self.result_ = result
        self.history_ = result.history
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        return self

    def initialize(self, X: Any, lengths: Any = None, *, random_state: Any = None) -> ModelGraph:
        """Build the tree and initialise every node from X, without fitting.

        Then :meth:`set_parameters` can set chosen starting values, and
        ``fit(..., warm_start=True)`` starts from them.
        """
        self._root = self._compile()
        self.init_params(self._data(X, lengths), check_random_state(random_state))
        self.result_ = self.history_ = None
        return self

    def set_parameters(self, node: str, **values: Any) -> ModelGraph:
        """Set parameters of a node by name (after :meth:`initialize` or :meth:`fit`).

        Latent nodes: ``weights_`` (n_sets, n_states) for a Categorical,
        ``startprob_`` (n_sets, n_states) and ``transmat_`` (n_sets, n_states,
        n_states) for a MarkovChain. Family nodes: the family's attributes,
        e.g. ``means_`` and ``covariances_`` with one entry per parameter set.
        """
        target = self._node(node, fitted=False)
        for key, value in values.items():
            if isinstance(target, _Leaf):
                if not hasattr(target.family, key):
                    raise ValueError(f"node {node!r} has no parameter {key!r}.")
                setattr(target.family, key, np.array(value, dtype=np.float64))
            else:
                target.set_parameter(key, value)
        if isinstance(target, _Leaf):
            target.family.check_params()
        return self

    def _fitted(self) -> _Latent:
        if getattr(self, "history_", None) is None or self._root is None:
            raise ValueError("this ModelGraph is not fitted yet (or changed since); call fit.")
        return self._root

    # -- model files (latentem.persistence)
    def _to_state(self) -> dict:
        nodes = [
            {"name": name, "spec": spec_to_state(attrs["spec"], name)}
            for name, attrs in self.graph.nodes(data=True)
        ]
        state = {"nodes": nodes, "edges": [list(e) for e in self.graph.edges]}
        if self._root is not None and getattr(self, "history_", None) is not None:
            fitted = {}
            for node in self._root.nodes():
                if isinstance(node, _Leaf):
                    fitted[node.name] = {"family": node.family}
                else:
                    fitted[node.name] = node.parameters()
            state["fitted"] = fitted
            state["history_"] = np.asarray(self.history_)
            state["converged_"] = bool(self.converged_)
        return state

    def _check_loaded(self) -> None:
        """After loading a model file: every latent node's part (shapes, finite values,
        probabilities on the simplex)."""
        from latentem.persistence.checks import _check_graph

        _check_graph(self)

    @classmethod
    def _from_state(cls, state: dict) -> ModelGraph:
        g = cls()
        for entry in state["nodes"]:
            g.add_node(entry["name"], spec_from_state(entry["spec"]))
        for a, b in state["edges"]:
            g.add_edge(a, b)
        fitted = state.get("fitted")
        if fitted is not None:
            g._root = g._compile()
            for node in g._root.nodes():
                values = fitted[node.name]
                if isinstance(node, _Leaf):
                    node.family = values["family"]
                    node.family.check_params()
                else:
                    for key, value in values.items():
                        node.set_parameter(key, value)
            g.history_ = state["history_"]
            g.converged_ = state["converged_"]
            g.n_iter_ = len(g.history_)
            g.result_ = None
        return g

    def _node(self, name: str, fitted: bool = True):
        if not fitted and self._root is None:
            raise ValueError("call initialize(X) or fit(X) before setting parameters.")
        for node in (self._fitted() if fitted else self._root).nodes():
            if node.name == name:
                return node
        raise ValueError(f"no node named {name!r}; nodes: {list(self.graph)}.")

    def score(self, X: Any, lengths: Any = None) -> float:
        """Total log-likelihood of X under the fitted graph."""
        self._fitted()
        return self.log_likelihood(self._data(X, lengths))

    def predict_proba(self, X: Any, lengths: Any = None, *, node: str) -> np.ndarray:
        """Posterior probabilities of a latent node's states, one row per unit of the node
        (rows, or sequences for ``Categorical(unit="sequence")``)."""
        target = self._node(node)
        if not isinstance(target, _Latent):
            raise ValueError(f"node {node!r} is an emission family; ask a latent node.")
        self.e_step(self._data(X, lengths))
        return target.posterior

    def predict(self, X: Any, lengths: Any = None, *, node: str) -> np.ndarray:
        """Most probable state of a latent node per unit (posterior maximum)."""
        return np.argmax(self.predict_proba(X, lengths, node=node), axis=1)

    def impute(self, X: Any, lengths: Any = None, *, node: str) -> np.ndarray:
        """X (as a float array) with the NaN entries of a Gaussian node's columns replaced by
        their conditional means under the fitted graph. X itself is not modified."""
        target = self._node(node)
        if not isinstance(target, _Leaf) or not hasattr(target.family, "fill"):
            raise ValueError(f"node {node!r} is not a Gaussian node; only those can impute.")
        data = self._data(X, lengths)
        self.e_step(data)
        filled = target.family.fill(data.leaves[node], target.last_weights)
        names = list(X.columns) if hasattr(X, "columns") else None
        out = np.array(X, dtype=np.float64, copy=True)
        if out.ndim == 1:
            out = out.reshape(-1, 1)
        cols = _column_indices(target.spec.columns, names, out.shape[1], node)
        out[:, cols] = filled
        return out

    def parameters(self, node: str) -> dict[str, Any]:
        """The fitted parameters of a node, by name."""
        target = self._node(node)
        if isinstance(target, _Leaf):
            fam = target.family
            return {k: v for k, v in vars(fam).items() if k.endswith("_") and not k.startswith("_")}
        return target.parameters()

    # -- looking at it
    def describe(self) -> str:
        """A text drawing of the tree: node, kind, states or columns, parameter sets."""
        return drawing.describe(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT format."""
        return drawing.to_dot(self)

    def draw(self, ax=None):
        """Draw the graph with matplotlib (``pip install matplotlib``); returns the axes."""
        return drawing.draw(self, ax)


def _child_unit(spec) -> str:
    """The unit a latent node's children must work on."""
    if spec.kind == "markov":
        return "row"
    return spec.unit


def _replicate_family(template, n_sets: int):
    """A fresh, unfitted copy of an HMM's emission family with ``n_sets`` components."""
    import copy

    if callable(getattr(template, "fresh", None)):
        return template.fresh(n_sets)

    family = copy.deepcopy(template)
    family.n_components = n_sets
    for attr in ("means_", "covariances_", "covars_", "weights_", "emissionprob_", "lambdas_"):
        if hasattr(family, attr):
            setattr(family, attr, None)
    if hasattr(family, "_inner_family"):
        family._inner_family = None
    return family


def _column_indices(columns: Any, names: list | None, n_cols: int, node: str) -> list[int]:
    if columns is None:
        return list(range(n_cols))
    cols = [columns] if isinstance(columns, (str, int, np.integer)) else list(columns)
    out = []
    for c in cols:
        if isinstance(c, str):
            if names is None or c not in names:
                raise ValueError(
                    f"node {node!r} refers to column {c!r}, which X does not have"
                    + (f" (columns: {names})." if names is not None else "; X has no column names.")
                )
            out.append(names.index(c))
        elif isinstance(c, (int, np.integer)):
            if not -n_cols <= int(c) < n_cols:
                raise ValueError(
                    f"node {node!r} refers to column {int(c)}, but X has {n_cols} columns."
                )
            out.append(int(c) % n_cols)
        else:
            raise ValueError(f"node {node!r}: columns must be indices or names; got {c!r}.")
    return out
