r"""What the over-smoothing measures need of one graph, computed once per graph and process.

:func:`graph_info` gives, for a graph and the model's operator (``dataset.self_loops``,
``dataset.adjacency``): the edges without self loops and the degrees :math:`\tilde d_i` (for the
Dirichlet energies), the unit invariant vectors of the propagation operator per connected
component (Oono & Suzuki, *Graph Neural Networks Exponentially Lose Expressive Power for Node
Classification*, ICLR 2020: :math:`u_m = \tilde D^{1/2}\mathbf 1_{C_m} / \lVert\tilde
D^{1/2}\mathbf 1_{C_m}\rVert` for ``sym``, :math:`\mathbf 1_{C_m}` normalised for ``row``), a
seeded node sample of the pairwise measures, and MADGap's hop masks on it (Chen et al., AAAI 2020:
neighbours at hop :math:`\le 3`, remote at hop :math:`\ge 8`). Components and hop distances come
from SciPy's ``csgraph`` (BFS as unit-weight Dijkstra, radius-limited); PyG has no cached
per-graph bundle of these, so the bundle is written here. Measures: :mod:`.oversmoothing`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import remove_self_loops, scatter


@dataclass(frozen=True)
class GraphInfo:
    """What the measures need of one graph, computed once by :func:`graph_info` (CPU tensors).

    Attributes:
        num_nodes: N. edge_index: ``[2, E]`` without self loops (for ``dirichlet``).
        degree: ``[N]`` float64 diagonal of :math:`\\tilde D` (in-degree, +1 with self loops as
            the model's operator), for ``dirichlet_sym``.
        basis: ``[N]`` float64 entries of the unit vectors :math:`u_m` (one per component).
        component: ``[N]`` component id of every node; num_components: their number.
        sample: ``[S]`` sorted node ids of the pairwise measures.
        neighbour_mask, remote_mask: ``[S, S]`` bool, hop ≤ near_hops / hop ≥ far_hops.
        labels: ``[S]`` labels of the sample (−1: unlabelled), or None.
    """

    num_nodes: int
    edge_index: Tensor
    degree: Tensor
    basis: Tensor
    component: Tensor
    num_components: int
    sample: Tensor
    neighbour_mask: Tensor
    remote_mask: Tensor
    labels: Tensor | None


_INFO: dict[tuple, GraphInfo] = {}  # per-process cache, keyed by the graph's content


def graph_info(
    edge_index: Tensor, num_nodes: int, y: Tensor | None = None, *, self_loops: bool = True,
    normalization: str = "sym", max_nodes: int = 4096, seed: int = 0, near_hops: int = 3,
    far_hops: int = 8,
) -> GraphInfo:
    """The cached :class:`GraphInfo` of a graph (computed on the first call per process).

    Args:
        edge_index: ``[2, E]`` source → target (both directions for an undirected graph).
        num_nodes: N. y: ``[N]`` labels (negative: unlabelled), for the group ratio; or None.
        self_loops, normalization: the model's operator (``dataset.self_loops``,
            ``dataset.adjacency``: ``sym`` or ``row``), which fixes the Oono–Suzuki subspace.
        max_nodes: sample size S of the pairwise measures (all nodes when N ≤ max_nodes).
        seed: seed of the node sample. near_hops, far_hops: MADGap's 3 and 8.
    """
    if normalization not in ("sym", "row"):
        raise ValueError(f"unknown normalization '{normalization}'; valid: row, sym")
    if not 0 <= near_hops < far_hops:
        raise ValueError(f"need 0 <= near_hops < far_hops, got {near_hops}, {far_hops}")
    edge_index = remove_self_loops(edge_index.detach().cpu().long())[0]
    digest = hashlib.sha1(edge_index.numpy().tobytes())
    if y is not None:
        digest.update(y.detach().cpu().long().numpy().tobytes())
    key = (digest.hexdigest(), int(num_nodes), y is None, self_loops, normalization,
           max_nodes, seed, near_hops, far_hops)
    if key not in _INFO:
        _INFO[key] = _build_info(edge_index, int(num_nodes), y, self_loops, normalization,
                                 max_nodes, seed, near_hops, far_hops)
    return _INFO[key]


def _build_info(edge_index: Tensor, n: int, y: Tensor | None, self_loops: bool,
                normalization: str, max_nodes: int, seed: int, near: int, far: int) -> GraphInfo:
    from scipy.sparse import csgraph, csr_matrix

    src, dst = edge_index.numpy()
    graph = csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    count, comp = csgraph.connected_components(graph, directed=True, connection="weak")
    component = torch.from_numpy(comp).long()
    deg = scatter(torch.ones(edge_index.size(1), dtype=torch.float64), edge_index[1], 0,
                  dim_size=n, reduce="sum") + float(self_loops)  # as gdepth's gcn_norm adjacency
    if normalization == "sym":  # eigenvector D~^{1/2} 1 of D~^{-1/2} A~ D~^{-1/2} per component
        vec = deg.sqrt()
    else:  # row: D~^{-1} A~ keeps the constants of each component
        vec = torch.ones(n, dtype=torch.float64)
    norm = scatter(vec.square(), component, 0, dim_size=count, reduce="sum").sqrt()
    basis = vec / norm[component].clamp_min(1e-300)
    gen = torch.Generator().manual_seed(int(seed))
    sample = (torch.arange(n) if n <= max_nodes
              else torch.randperm(n, generator=gen)[:max_nodes].sort().values)
    hops = _hops(graph, sample.numpy(), far - 1)
    labels = None if y is None else y.detach().cpu().long()[sample]
    return GraphInfo(
        num_nodes=n, edge_index=edge_index, degree=deg,
        basis=basis, component=component, num_components=int(count), sample=sample,
        neighbour_mask=torch.from_numpy(hops <= near), remote_mask=torch.from_numpy(hops >= far),
        labels=labels,
    )


def _hops(graph, sample: np.ndarray, limit: int, chunk: int = 256) -> np.ndarray:
    """``[S, S]`` undirected hop distances between sampled nodes, ``inf`` beyond ``limit``: SciPy
    BFS (unit-weight Dijkstra) from chunks of sources, keeping only the sampled columns."""
    from scipy.sparse import csgraph

    rows = [csgraph.dijkstra(graph, directed=False, indices=sample[i:i + chunk],
                             unweighted=True, limit=limit)[:, sample]
            for i in range(0, len(sample), chunk)]
    return np.concatenate(rows) if rows else np.zeros((0, 0))
