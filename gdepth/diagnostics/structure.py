r"""Graph-structure descriptors: why depth behaves differently on a small world and on a grid.

:func:`describe` summarises one graph (simple, undirected, given as a PyG ``edge_index`` with both
directions) in one :class:`Structure`:

* size, mean degree 2|E|/n and edge homophily (PyG's ``utils.homophily``, ``method="edge"``:
  the share of edges joining equal labels; nodes labelled ``-1`` and their edges are ignored);
* the **largest connected component** (LCC): distances and the spectrum are only meaningful on a
  connected graph, and Cora, CiteSeer, … are disconnected, so the diameter, the mean shortest
  path and the spectral gap are computed on the LCC (the standard choice) and say so;
* diameter: exact (BFS from every LCC node, scipy's ``csgraph.shortest_path``) up to
  ``exact_limit`` nodes, otherwise the double-sweep lower bound (BFS from a node, then BFS from
  the farthest node found; repeated ``sweeps`` times from seeded starts, the largest
  eccentricity kept) — reported as "≥";
* mean shortest path over ordered pairs of distinct LCC nodes: exact up to ``exact_limit``,
  otherwise the mean over ``samples`` seeded source nodes;
* average clustering coefficient :math:`\frac1n\sum_v \frac{2T_v}{d_v(d_v-1)}` (0 for
  :math:`d_v<2`; networkx's ``average_clustering`` convention) from sparse products;
* spectral gap :math:`1-\lambda_2` of the normalized adjacency :math:`D^{-1/2}AD^{-1/2}` (no
  self-loops) of the LCC, :math:`\lambda_2` its second-largest eigenvalue (algebraically, not
  in absolute value; equivalently the smallest non-zero eigenvalue of the normalized Laplacian
  :math:`I-D^{-1/2}AD^{-1/2}`). Large for expanders and small worlds, :math:`O(1/n)` on grids and
  :math:`1-\cos(2\pi/n)` on the n-cycle; it sets how fast repeated averaging mixes;
* Balanced Forman curvature (:func:`balanced_forman`) of every edge (or of ``curvature_edges``
  seeded sampled edges on bigger graphs): minimum, 5th percentile and share of edges below -1;
* receptive-field fraction for k = 1..``hops``: :math:`\frac1n\sum_v |B_k(v)|/n` with
  :math:`B_k(v)` the nodes within k hops of v, v included (exact up to ``exact_limit``, else the
  mean over ``samples`` seeded sources) — how much of the graph k message-passing layers see.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.sparse import csgraph, csr_matrix

EXACT_LIMIT = 5000  # nodes: all-pairs BFS up to here, sampled sources above
SAMPLES = 256  # sampled BFS sources on bigger graphs
CURVATURE_EDGES = 50_000  # undirected edges: all up to here, a seeded sample above
HOPS = 8


@dataclass
class Structure:
    """One graph's descriptors (see the module docstring for each definition)."""

    nodes: int
    edges: int  # undirected
    mean_degree: float
    homophily: float  # nan without labels
    components: int
    lcc_nodes: int
    diameter: int  # of the LCC
    diameter_exact: bool  # False: double-sweep lower bound
    mean_path: float  # of the LCC
    path_sources: int | None  # None: exact over all pairs
    clustering: float
    spectral_gap: float  # 1 - lambda_2 of D^-1/2 A D^-1/2 on the LCC
    bfc_min: float
    bfc_p05: float
    bfc_below_minus1: float  # share of edges with curvature < -1
    bfc_edges: int  # edges evaluated
    bfc_sampled: bool
    receptive_field: list[float]  # k = 1..hops
    rf_sources: int | None  # None: every node

    def as_dict(self) -> dict:
        """Flat ``{field: value}``, the receptive field as ``receptive_field_k1`` … ``_k<hops>``."""
        out = asdict(self)
        for k, value in enumerate(out.pop("receptive_field"), start=1):
            out[f"receptive_field_k{k}"] = value
        return out


def adjacency(edge_index: torch.Tensor, num_nodes: int) -> csr_matrix:
    """The binary symmetric scipy CSR adjacency of a PyG ``edge_index``."""
    from torch_geometric.utils import to_scipy_sparse_matrix

    a = to_scipy_sparse_matrix(edge_index.cpu(), num_nodes=num_nodes).tocsr()
    a.data[:] = 1.0
    return a


def largest_component(a: csr_matrix) -> tuple[int, np.ndarray]:
    """``(number of connected components, node ids of the largest one)``."""
    count, labels = csgraph.connected_components(a, directed=False)
    biggest = np.bincount(labels).argmax()
    return int(count), np.flatnonzero(labels == biggest)


def _bfs(a: csr_matrix, sources: np.ndarray, chunk: int = 256):
    """Hop distances (inf: unreachable) from ``sources``, ``chunk`` rows at a time."""
    for start in range(0, len(sources), chunk):
        yield csgraph.shortest_path(a, directed=False, unweighted=True,
                                    indices=sources[start:start + chunk])


def distances(a: csr_matrix, exact_limit: int, samples: int, sweeps: int = 4, seed: int = 0
              ) -> tuple[int, bool, float, int | None]:
    """``(diameter, exact?, mean shortest path, sources or None)`` of the connected graph ``a``."""
    n = a.shape[0]
    if n < 2:
        return 0, True, math.nan, None
    if n <= exact_limit:
        diameter, total = 0.0, 0.0
        for d in _bfs(a, np.arange(n)):
            diameter, total = max(diameter, d.max()), total + d.sum()
        return int(diameter), True, float(total / (n * (n - 1))), None
    rng = np.random.default_rng(seed)
    sources = rng.choice(n, size=min(samples, n), replace=False)
    total = sum(float(d.sum()) for d in _bfs(a, sources))
    mean_path = total / (len(sources) * (n - 1))
    diameter = 0
    for start in rng.choice(n, size=sweeps, replace=False):  # double sweep
        far = int(next(_bfs(a, np.array([start])))[0].argmax())
        diameter = max(diameter, int(next(_bfs(a, np.array([far])))[0].max()))
    return diameter, False, mean_path, len(sources)


def receptive_field(a: csr_matrix, hops: int = HOPS, exact_limit: int = EXACT_LIMIT,
                    samples: int = SAMPLES, seed: int = 0) -> tuple[list[float], int | None]:
    """Mean ``|B_k(v)| / n`` for k = 1..hops (v included), and the number of sources used."""
    n = a.shape[0]
    if n <= exact_limit:
        sources, used = np.arange(n), None
    else:
        sources = np.random.default_rng(seed).choice(n, size=samples, replace=False)
        used = samples
    counts = np.zeros(hops)
    for d in _bfs(a, sources):
        counts += [(d <= k).sum() for k in range(1, hops + 1)]
    return (counts / (len(sources) * n)).tolist(), used


def clustering(a: csr_matrix) -> float:
    """Average clustering coefficient (networkx's ``average_clustering``, from sparse products)."""
    degree = np.asarray(a.sum(axis=1)).ravel()
    twice_triangles = np.asarray((a @ a).multiply(a).sum(axis=1)).ravel()
    pairs = degree * (degree - 1)
    local = np.divide(twice_triangles, pairs, out=np.zeros_like(pairs), where=pairs > 0)
    return float(local.mean()) if len(local) else math.nan


def spectral_gap(a: csr_matrix) -> float:
    r"""``1 - λ₂`` of :math:`D^{-1/2}AD^{-1/2}` for a connected graph (no self-loops).

    λ₂ is the second-largest eigenvalue, found as the second-smallest eigenvalue of the
    normalized Laplacian :math:`I - D^{-1/2}AD^{-1/2}` (PyG's ``get_laplacian(...,
    normalization="sym")``): dense ``eigvalsh`` up to 1000 nodes, else scipy's ``eigsh`` in
    shift-invert mode around a small negative shift (exact to solver tolerance, also when the
    gap is tiny, as on grids).
    """
    from scipy.sparse.linalg import eigsh
    from torch_geometric.utils import from_scipy_sparse_matrix, get_laplacian

    n = a.shape[0]
    if n < 2:
        return math.nan
    index, weight = get_laplacian(from_scipy_sparse_matrix(a)[0], normalization="sym",
                                  dtype=torch.float64, num_nodes=n)
    lap = csr_matrix((weight.numpy(), index.numpy()), shape=(n, n))
    if n <= 1000:
        values = np.linalg.eigvalsh(lap.toarray())
    else:
        values = eigsh(lap.tocsc(), k=2, sigma=-1e-3, which="LM", return_eigenvectors=False)
    return float(np.sort(values)[1])


def balanced_forman(neighbours: list[set[int]], i: int, j: int) -> float:
    r"""Balanced Forman curvature of the edge i~j (Topping et al., *Understanding
    over-squashing and bottlenecks on graphs via curvature*, ICLR 2022, arXiv:2111.14522, Def. 1).

    With :math:`S_1(v)` the neighbours of v and :math:`d_v = |S_1(v)|`: 0 if
    :math:`\min(d_i, d_j) = 1`, else

    .. math:: \mathrm{Ric}(i,j) = \frac2{d_i} + \frac2{d_j} - 2
              + 2\frac{|\sharp_\Delta|}{\max(d_i,d_j)} + \frac{|\sharp_\Delta|}{\min(d_i,d_j)}
              + \frac{|\sharp^i_\square| + |\sharp^j_\square|}{\gamma_{\max}\max(d_i,d_j)}

    where :math:`\sharp_\Delta = S_1(i)\cap S_1(j)` (triangles on the edge),
    :math:`\sharp^i_\square = \{k \in S_1(i)\setminus S_1(j), k\ne j :
    (S_1(k)\cap S_1(j))\setminus(S_1(i)\cup\{i\}) \ne \emptyset\}` (neighbours of i that start
    a 4-cycle through i~j without a diagonal), :math:`\sharp^j_\square` symmetrically,
    :math:`\gamma_{\max}` the largest :math:`|(S_1(k)\cap S_1(j))\setminus(S_1(i)\cup\{i\})|`
    over those k (and symmetrically), and the last term is present only when
    :math:`\gamma_{\max} > 0`. K_n gives n/(n-1), cycles of length ≥ 6 and grid interiors 0, an
    edge between two degree-3 tree nodes -2/3; values near -2 mark bottlenecks.

    Written by hand because neither PyG nor networkx implements it; the official code
    (jctops/understanding-oversquashing) is a dense numba kernel with a ``break`` where a
    ``continue`` is meant, so it is not ported.
    """
    ni, nj = neighbours[i], neighbours[j]
    di, dj = len(ni), len(nj)
    if min(di, dj) == 1:
        return 0.0
    triangles = len(ni & nj)
    high, low = max(di, dj), min(di, dj)
    value = 2 / di + 2 / dj - 2 + 2 * triangles / high + triangles / low
    squares, gamma = 0, 0
    for a, b, na, nb in ((i, j, ni, nj), (j, i, nj, ni)):
        for k in na - nb - {b}:
            through = len((neighbours[k] & nb) - na - {a})
            if through:
                squares, gamma = squares + 1, max(gamma, through)
    if gamma:
        value += squares / (gamma * high)
    return round(value, 12) + 0.0  # exact zeros (grids, cycles) stay 0.0, not -1e-16 or -0.0


def curvature(a: csr_matrix, max_edges: int = CURVATURE_EDGES, seed: int = 0
              ) -> tuple[np.ndarray, bool]:
    """Balanced Forman curvature of every undirected edge, or of ``max_edges`` sampled ones.

    Returns ``(values, sampled?)``; the sample is drawn with a numpy generator seeded ``seed``.
    """
    from scipy.sparse import triu

    rows, cols = triu(a, k=1).nonzero()
    sampled = len(rows) > max_edges
    if sampled:
        keep = np.random.default_rng(seed).choice(len(rows), size=max_edges, replace=False)
        rows, cols = rows[keep], cols[keep]
    neighbours = [set(a.indices[a.indptr[v]:a.indptr[v + 1]].tolist()) for v in range(a.shape[0])]
    values = [balanced_forman(neighbours, int(i), int(j)) for i, j in zip(rows, cols, strict=True)]
    return np.array(values, dtype=float), sampled


def edge_homophily(edge_index: torch.Tensor, y: torch.Tensor | None) -> float:
    """PyG's edge homophily over the edges whose two ends are labelled (``y >= 0``)."""
    from torch_geometric.utils import homophily

    if y is None:
        return math.nan
    keep = (y[edge_index[0]] >= 0) & (y[edge_index[1]] >= 0)
    if not bool(keep.any()):
        return math.nan
    return float(homophily(edge_index[:, keep], y, method="edge"))


def describe(edge_index: torch.Tensor, num_nodes: int, y: torch.Tensor | None = None, *,
             hops: int = HOPS, exact_limit: int = EXACT_LIMIT, samples: int = SAMPLES,
             curvature_edges: int = CURVATURE_EDGES, seed: int = 0) -> Structure:
    """All descriptors of one simple undirected graph (both directions in ``edge_index``)."""
    a = adjacency(edge_index, num_nodes)
    components, lcc = largest_component(a)
    core = a[lcc][:, lcc].tocsr()
    diameter, exact, mean_path, path_sources = distances(core, exact_limit, samples, seed=seed)
    rf, rf_sources = receptive_field(a, hops, exact_limit, samples, seed)
    bfc, sampled = curvature(a, curvature_edges, seed)
    has = len(bfc) > 0
    return Structure(
        nodes=num_nodes,
        edges=int(a.nnz // 2),
        mean_degree=a.nnz / num_nodes if num_nodes else math.nan,
        homophily=edge_homophily(edge_index, y),
        components=components,
        lcc_nodes=len(lcc),
        diameter=diameter,
        diameter_exact=exact,
        mean_path=mean_path,
        path_sources=path_sources,
        clustering=clustering(a),
        spectral_gap=spectral_gap(core),
        bfc_min=float(bfc.min()) if has else math.nan,
        bfc_p05=float(np.percentile(bfc, 5)) if has else math.nan,
        bfc_below_minus1=float((bfc < -1).mean()) if has else math.nan,
        bfc_edges=len(bfc),
        bfc_sampled=sampled,
        receptive_field=rf,
        rf_sources=rf_sources,
    )
