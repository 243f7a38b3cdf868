r"""Synthetic graphs with a node task of known range k: a grid, a ring and a small world.

The three graphs are meant to be compared at the same size (``num_nodes``) and task range
(``task_range``): a 4-neighbour lattice and a Watts–Strogatz graph with ``neighbors=4`` have the
same mean degree, but the lattice's k-hop receptive field grows like 2k² while the small world's
grows exponentially.

* ``grid2d``: the 4-neighbour ``height × width`` lattice (networkx ``grid_2d_graph``; PyG's
  ``utils.grid`` is an 8-neighbour grid with self-loops, so it is not used), ``width`` null
  for a square, ``periodic`` for a torus.
* ``ring``: the n-cycle (networkx ``cycle_graph``).
* ``small_world``: Watts & Strogatz, *Collective dynamics of 'small-world' networks*, Nature
  1998 — a ring lattice where each node joins its ``neighbors`` nearest nodes, each edge
  rewired with probability ``rewire_prob``; networkx's ``connected_watts_strogatz_graph``
  (redrawn until connected) with ``seed=graph_seed``.

**Task: distance to the nearest source** (the task of PyG's ``InfectionDataset``). ``num_sources``
nodes, drawn with a ``torch.Generator`` seeded ``graph_seed``, are sources ("infected"). Node
features are one-hot ``[not source, source]``. The label of v is its hop distance to the nearest
source, d(v) ∈ {0, …, k}, or k + 1 when d(v) > k: k + 2 classes.

* *Fewer than k layers cannot solve it.* An L-layer message-passing network computes v's output
  from the features and edges within L hops of v (its L-hop ball). For L ≤ k − 1, a node at
  distance exactly k and a node at distance > k both see a ball without any source; where their
  balls are isomorphic (always on the ring and the torus, in the interior of the grid), every
  such network gives them the same output, so at most one of the labels k and k + 1 is right.
  ``tests/test_synthetic.py`` checks this with random (k−1)-layer GCNs on the ring.
* *k layers suffice.* With s the source indicator, :math:`d(v) \le t \iff ((A+I)^t s)_v > 0`,
  so the label is :math:`\min\{t \le k : ((A+I)^t s)_v > 0\}` (else k+1): k sum-aggregation
  steps, each followed by a threshold, which a k-layer GIN can represent exactly.

Splits: ``random_per_class`` as for ``csbm`` (a class with fewer nodes gives what it has).
Everything is deterministic from the parameters.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from gdepth.data.graph import BaseGraph, make_base


def _edges(graph: Any) -> torch.Tensor:
    """A networkx graph with nodes 0..n-1 → a ``[2, E]`` edge list (one direction)."""
    edges = list(graph.edges())
    if not edges:
        return torch.empty(2, 0, dtype=torch.long)
    return torch.tensor(edges, dtype=torch.long).t()


def grid2d_edges(num_nodes: int, width: int | None = None, periodic: bool = False
                 ) -> torch.Tensor:
    """The 4-neighbour lattice of ``num_nodes = height × width`` nodes, row-major numbering."""
    import networkx as nx

    if width is None:
        width = math.isqrt(num_nodes)
        if width * width != num_nodes:
            lo, hi = width * width, (width + 1) ** 2
            raise ValueError(f"grid2d: num_nodes={num_nodes} is not a square; use {lo} or {hi} "
                             "or set dataset.width")
    if width < 1 or num_nodes % width:
        raise ValueError(f"grid2d: width={width} must be >= 1 and divide num_nodes={num_nodes}")
    graph = nx.grid_2d_graph(num_nodes // width, width, periodic=periodic)
    return _edges(nx.convert_node_labels_to_integers(graph, ordering="sorted"))


def ring_edges(num_nodes: int) -> torch.Tensor:
    """The n-cycle 0-1-…-(n-1)-0."""
    import networkx as nx

    return _edges(nx.cycle_graph(num_nodes))


def small_world_edges(num_nodes: int, neighbors: int = 4, rewire_prob: float = 0.1,
                      graph_seed: int = 0) -> torch.Tensor:
    """A connected Watts–Strogatz graph (networkx, ``seed=graph_seed``)."""
    import networkx as nx

    if neighbors < 2 or neighbors % 2 or neighbors >= num_nodes:
        raise ValueError(f"small_world: neighbors={neighbors} must be even, >= 2 and < "
                         f"num_nodes={num_nodes}")
    if not 0.0 <= rewire_prob <= 1.0:
        raise ValueError(f"small_world: rewire_prob={rewire_prob} must be in [0, 1]")
    graph = nx.connected_watts_strogatz_graph(num_nodes, neighbors, rewire_prob, tries=1000,
                                              seed=int(graph_seed))
    return _edges(graph)


def source_distance_task(edge_index: torch.Tensor, num_nodes: int, task_range: int,
                         num_sources: int, graph_seed: int = 0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[not source, source]`` and labels ``min(hop distance to a source, k + 1)``.

    Sources are the first ``num_sources`` entries of a ``torch.randperm`` drawn from a generator
    seeded ``graph_seed``; distances are one multi-source BFS (scipy ``csgraph``).
    """
    import numpy as np
    from scipy.sparse import csgraph

    from gdepth.diagnostics.structure import adjacency

    if task_range < 1:
        raise ValueError(f"task_range={task_range} must be >= 1")
    if not 1 <= num_sources <= num_nodes:
        raise ValueError(f"num_sources={num_sources} must be in [1, num_nodes={num_nodes}]")
    gen = torch.Generator().manual_seed(int(graph_seed))
    sources = torch.randperm(num_nodes, generator=gen)[:num_sources]
    hops = csgraph.shortest_path(adjacency(edge_index, num_nodes), directed=False,
                                 unweighted=True, indices=sources.numpy()).min(axis=0)
    y = torch.from_numpy(np.minimum(hops, task_range + 1).astype(np.int64))
    x = torch.zeros(num_nodes, 2)
    x[:, 0] = 1.0
    x[sources] = torch.tensor([0.0, 1.0])
    return x, y


def _with_task(edges: torch.Tensor, params: dict[str, Any]) -> BaseGraph:
    n, k = int(params["num_nodes"]), int(params["task_range"])
    edge_index = torch.cat([edges, edges.flip(0)], dim=1)
    x, y = source_distance_task(edge_index, n, k, int(params["num_sources"]),
                                int(params["graph_seed"]))
    return make_base(x, y, edge_index, num_classes=k + 2)


def _check_size(name: str, num_nodes: int, smallest: int) -> None:
    if num_nodes < smallest:
        raise ValueError(f"{name}: num_nodes={num_nodes} must be >= {smallest}")


def load_grid2d(params: dict, root: Path | None = None, mirror: Path | None = None) -> BaseGraph:
    """Registry loader for ``grid2d`` (folders unused)."""
    _check_size("grid2d", int(params["num_nodes"]), 1)
    width = params["width"]
    edges = grid2d_edges(int(params["num_nodes"]), None if width is None else int(width),
                         bool(params["periodic"]))
    return _with_task(edges, params)


def load_ring(params: dict, root: Path | None = None, mirror: Path | None = None) -> BaseGraph:
    """Registry loader for ``ring`` (folders unused)."""
    _check_size("ring", int(params["num_nodes"]), 3)
    return _with_task(ring_edges(int(params["num_nodes"])), params)


def load_small_world(params: dict, root: Path | None = None, mirror: Path | None = None
                     ) -> BaseGraph:
    """Registry loader for ``small_world`` (folders unused)."""
    _check_size("small_world", int(params["num_nodes"]), 3)
    edges = small_world_edges(int(params["num_nodes"]), int(params["neighbors"]),
                              float(params["rewire_prob"]), int(params["graph_seed"]))
    return _with_task(edges, params)
