"""Looking at a model graph: a text tree, Graphviz DOT, a matplotlib drawing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentem.graph.nodes import _Latent
from latentem.graph.specs import Family

if TYPE_CHECKING:
    from latentem.graph.model import ModelGraph


def describe(graph: ModelGraph) -> str:
    """A text drawing of the tree: node, kind, states or columns, parameter sets."""
    root = graph._compile() if graph._root is None else graph._root
    lines: list[str] = []

    def walk(node, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(f"{prefix}{branch}{node.name}: {node.spec!r} x{node.n_sets} parameter sets")
        kids = node.children if isinstance(node, _Latent) else []
        for i, kid in enumerate(kids):
            walk(
                kid,
                prefix + ("" if top else ("    " if last else "│   ")),
                i == len(kids) - 1,
                False,
            )

    walk(root, "", True, True)
    return "\n".join(lines)


def to_dot(graph: ModelGraph) -> str:
    """The graph in Graphviz DOT format."""
    out = ["digraph latentem {", "  node [shape=box];"]
    for name, attrs in graph.graph.nodes(data=True):
        spec = attrs["spec"]
        shape = "box" if isinstance(spec, Family) else "ellipse"
        label = f"{name}\\n{spec!r}" if not _is_hmm(spec) else f"{name}\\n{type(spec).__name__}"
        out.append(f'  "{name}" [label="{label}", shape={shape}];')
    for a, b in graph.graph.edges:
        out.append(f'  "{a}" -> "{b}";')
    out.append("}")
    return "\n".join(out)


def draw(graph: ModelGraph, ax=None):
    """Draw the graph with matplotlib (``pip install matplotlib``); returns the axes."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("draw() needs matplotlib: pip install matplotlib") from None
    import networkx as nx

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    pos = nx.bfs_layout(graph.graph, next(n for n in graph.graph if graph.graph.in_degree(n) == 0))
    labels = {n: f"{n}\n{_short(graph.graph.nodes[n]['spec'])}" for n in graph.graph}
    nx.draw_networkx(
        graph.graph,
        pos=pos,
        ax=ax,
        labels=labels,
        node_color="#dde8f5",
        node_size=2200,
        font_size=8,
    )
    ax.set_axis_off()
    return ax


def _short(spec) -> str:
    return type(spec).__name__ if _is_hmm(spec) else repr(spec)


def _is_hmm(spec) -> bool:
    from latentem.models.hmm import HMM

    return isinstance(spec, HMM)
