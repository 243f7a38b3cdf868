r"""Graph-transfer tasks of Di Giovanni et al. as node classification on a disjoint union.

Di Giovanni, Giusti, Barbero, Luise, Liò, Bronstein, *On over-squashing in message passing
neural networks: the impact of width, depth, and topology*, ICML 2023 (arXiv:2302.02941; tasks
from Bodnar et al. 2021; official code lrnzgiusti/on-oversquashing ``data/ring_transfer.py``).
Each instance is a small graph with a readout node and a source node r hops apart (r =
``task_range``); features are all ones (dimension C = ``num_classes``), zeros on the readout
node, and one-hot(label) on the source node; the label is read out at the readout node.

* ``transfer_ring``: the 2r-cycle, readout 0, source r (the opposite node).
* ``transfer_crossed_ring``: the same cycle plus the code's "crosses" i ↔ n−1−i (i < n/2)
  and i ↔ n+1−i (2 ≤ i < n/2); the source stays r hops away.
* ``transfer_clique_path``: a clique on the first r−1 nodes, then a path of r−1 nodes attached
  to the clique's last node (the paper's lollipop, n = 2(r−1), r ≥ 3); readout 0 in the clique,
  source at the end of the path.

They fit gdepth's node-level framework as one graph: ``num_graphs`` instances side by side
(disjoint union, instance t = nodes t·n … t·n+n−1, label t mod C, so the classes are balanced
and everything is deterministic; :attr:`gdepth.data.Graph.instance` holds t for each node),
where only the readout nodes carry a label and every other node has label ``-1``
("unlabelled": no split ever selects it, edge homophily ignores it). A full-batch GCN on the
union is the paper's graph-level model with the readout at node 0. The readout's output with
fewer than r layers does not depend on the source, so it is at chance (1/C); with r layers the
label is in its receptive field.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gdepth.data.graph import BaseGraph, make_base

TOPOLOGIES = ("ring", "crossed_ring", "clique_path")


def instance(topology: str, task_range: int) -> tuple[list[tuple[int, int]], int, int]:
    """``(edges, number of nodes, source node)`` of one instance; the readout node is 0."""
    r = int(task_range)
    if topology in ("ring", "crossed_ring"):
        if r < 2:
            raise ValueError(f"transfer_{topology}: task_range={r} must be >= 2")
        n = 2 * r
        edges = [(i, (i + 1) % n) for i in range(n)]
        if topology == "crossed_ring":
            for i in range(n // 2):
                edges += [(i, n - 1 - i)] + ([(i, n + 1 - i)] if i >= 2 else [])
        return edges, n, n // 2
    if topology == "clique_path":
        if r < 3:
            raise ValueError(f"transfer_clique_path: task_range={r} must be >= 3")
        half = r - 1
        edges = [(i, j) for i in range(half) for j in range(i + 1, half)]
        edges += [(i, i + 1) for i in range(half - 1, 2 * half - 1)]
        return edges, 2 * half, 2 * half - 1
    raise ValueError(f"unknown transfer topology '{topology}'; valid: {', '.join(TOPOLOGIES)}")


def transfer(topology: str, task_range: int = 5, num_graphs: int = 1000, num_classes: int = 5
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x [N, C], y [N] with -1 off the readouts, edge_index [2, E] one direction)``."""
    if num_graphs < 1 or num_classes < 2:
        raise ValueError(f"transfer_{topology}: num_graphs={num_graphs} must be >= 1 and "
                         f"num_classes={num_classes} >= 2")
    edges, n, source = instance(topology, task_range)
    local = torch.tensor(edges, dtype=torch.long).t()
    offsets = torch.arange(num_graphs) * n
    edge_index = (local.unsqueeze(-1) + offsets).reshape(2, -1)
    labels = torch.arange(num_graphs) % num_classes
    x = torch.ones(num_graphs * n, num_classes, dtype=torch.float32)  # any default dtype
    x[offsets] = 0.0
    x[offsets + source] = torch.nn.functional.one_hot(labels, num_classes).float()
    y = torch.full((num_graphs * n,), -1, dtype=torch.long)
    y[offsets] = labels
    return x, y, edge_index


def instances(topology: str, task_range: int, num_graphs: int) -> torch.Tensor:
    """``[N]``: the instance of each node of :func:`transfer`'s union (node ``t·n + i`` → t)."""
    _, n, _ = instance(topology, task_range)
    return torch.arange(num_graphs).repeat_interleave(n)


def loader(topology: str):
    """The registry loader of ``transfer_<topology>`` (folders unused)."""

    def load(params: dict, root: Path | None = None, mirror: Path | None = None) -> BaseGraph:
        r, num_graphs = int(params["task_range"]), int(params["num_graphs"])
        x, y, edge_index = transfer(topology, r, num_graphs, int(params["num_classes"]))
        return make_base(x, y, edge_index, int(params["num_classes"]),
                         instance=instances(topology, r, num_graphs))

    return load
