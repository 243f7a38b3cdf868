r"""Over-smoothing measures of node features, per layer: how fast representations collapse.

Every measure is a pure function of a feature matrix :math:`X \in \mathbb{R}^{N \times F}` (a
layer's output) and the graph; :func:`smoothing_profile` computes all of them for a list of
layer outputs, with the graph-only parts (adjacency, connected components, hop masks, node
sample) computed once per graph and cached per process by
:func:`gdepth.diagnostics.graph_info.graph_info`. PyG has none of these measures except the
group-distance ratio (``DiffGroupNorm.group_distance_ratio``, reused here), so the rest is
written out below. Notation: :math:`A` without self loops, :math:`\tilde A = A + I`,
:math:`\tilde D` its (in-)degree matrix, :math:`\mathcal{N}_i` the in-neighbours of :math:`i`
along ``edge_index`` (source → target).

* ``dirichlet`` — Rusch, Bronstein, Mishra, *A Survey on Oversmoothing in Graph Neural
  Networks* (arXiv 2303.10993), :math:`\mu(X) = \sqrt{E(X)}` with
  :math:`E(X) = \frac{1}{|V|}\sum_{i \in V}\sum_{j \in \mathcal{N}_i}\lVert X_i - X_j\rVert_2^2`
  (ordered neighbour pairs; with both directions stored, :math:`E = \frac{2}{N}\operatorname{tr}
  (X^\top L X)`). Its kernel is the constant vectors.
* ``dirichlet_sym`` — Cai & Wang, *A Note on Over-Smoothing for Graph Neural Networks*
  (arXiv 2006.13318): :math:`E_{norm}(X) = \operatorname{tr}(X^\top \tilde\Delta X)`,
  :math:`\tilde\Delta = I - \tilde D^{-1/2}\tilde A\tilde D^{-1/2}`, i.e.
  :math:`\frac12\sum_{i,j}\tilde a_{ij}\lVert X_i/\sqrt{1+d_i} - X_j/\sqrt{1+d_j}\rVert^2`
  (not square-rooted, as in the paper); kernel :math:`\tilde D^{1/2}\mathbf 1`.
* ``feature_norm`` :math:`\lVert X\rVert_F` and ``energy_ratio`` :math:`E(X)/\lVert X\rVert_F^2`
  (a Rayleigh quotient: collapse, not mere shrinkage, drives it to 0).
* ``subspace_distance`` — Oono & Suzuki, *Graph Neural Networks Exponentially Lose Expressive
  Power for Node Classification* (ICLR 2020, arXiv 1905.10947): :math:`d_M(X)/\lVert X\rVert_F`,
  :math:`d_M(X) = \lVert X - \Pi_U X\rVert_F`, :math:`\Pi_U = \sum_m u_m u_m^\top`,
  :math:`u_m = \tilde D^{1/2}\mathbf 1_{C_m} / \lVert\tilde D^{1/2}\mathbf 1_{C_m}\rVert` over the
  connected components :math:`C_m` (for the ``row`` operator :math:`\tilde D^{-1}\tilde A` the
  invariant vectors are :math:`\mathbf 1_{C_m}` instead).
* ``numerical_rank`` :math:`\lVert X\rVert_F^2/\lVert X\rVert_2^2` (stable rank; Zhang, Deidda,
  Higham, Tudisco, arXiv 2502.04591) and ``effective_rank`` — Roy & Vetterli, *The effective rank*
  (EUSIPCO 2007): :math:`\exp(-\sum_k p_k\log p_k)`, :math:`p_k = \sigma_k/\sum_j\sigma_j`.
  Both are 0 for :math:`X = 0`.
* ``mad``, ``mad_neb``, ``mad_rmt``, ``mad_gap`` — Chen, Lin, Li, Li, Zhou, Sun, *Measuring and
  Relieving the Over-smoothing Problem for Graph Neural Networks from the Topological View*
  (AAAI 2020, arXiv 1909.03211; official code victorchen96/MadGap ``madgap.py``):
  :math:`D_{ij} = 1 - \frac{X_i\cdot X_j}{\lVert X_i\rVert\lVert X_j\rVert}`,
  :math:`D^{tgt} = D \circ M^{tgt}`, :math:`\bar d_i = \sum_j D^{tgt}_{ij} /
  \#\{j: D^{tgt}_{ij} \ne 0\}`, :math:`MAD^{tgt} = \sum_i \bar d_i / \#\{i: \bar d_i \ne 0\}`
  (zero entries are left out of both averages, as in the official code). Global MAD: all pairs;
  :math:`MADGap = MAD^{rmt} - MAD^{neb}` with neighbours at hop :math:`\le 3` and remote nodes at
  hop :math:`\ge 8` (unreachable pairs count as remote). A zero row has cosine distance 1 to all.
* ``group_distance_ratio`` — Zhou, Huang, Zha, Chen, Li, Choi, Hu, *Towards Deeper Graph Neural
  Networks with Differentiable Group Normalization* (NeurIPS 2020, arXiv 2006.06972): mean
  inter-class over mean intra-class Euclidean distance, PyG's
  ``DiffGroupNorm.group_distance_ratio`` on the labelled nodes (classes renumbered to those
  present, so an absent class does not divide by zero; fewer than 2 classes: NaN).

The pairwise measures (MAD, MADGap, group ratio) are :math:`O(S^2 F)` on a node sample of size
:math:`S = \min(N, \text{max\_nodes})` drawn once per graph with a seeded generator (Cora,
CiteSeer: all nodes). Hop distances are one BFS per sampled node (SciPy, radius-limited to
``far_hops - 1``), once per graph.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from gdepth.diagnostics.graph_info import GraphInfo

MEASURES = (
    "dirichlet", "dirichlet_sym", "feature_norm", "energy_ratio", "subspace_distance",
    "numerical_rank", "effective_rank", "mad", "mad_neb", "mad_rmt", "mad_gap",
    "group_distance_ratio",
)


def _dense(x: Tensor) -> Tensor:
    x = x.detach()
    return (x.to_dense() if x.layout != torch.strided else x).to(torch.float64)


def dirichlet_energy(x: Tensor, edge_index: Tensor) -> float:
    """Survey form :math:`E(X) = \\frac1N\\sum_i\\sum_{j\\in\\mathcal N_i}\\lVert X_i-X_j\\rVert^2`
    (Rusch, Bronstein, Mishra 2023); the reported ``dirichlet`` measure is its square root."""
    x = _dense(x)
    src, dst = edge_index.to(x.device)
    return float((x[dst] - x[src]).square().sum()) / max(x.size(0), 1)


def dirichlet_energy_sym(x: Tensor, edge_index: Tensor, degree: Tensor) -> float:
    """Cai & Wang (2020): :math:`\\operatorname{tr}(X^\\top(I - \\hat A)X)`,
    :math:`\\hat A = \\tilde D^{-1/2}\\tilde A\\tilde D^{-1/2}` (the operator of
    :func:`gdepth.models.adjacency.normalized_adjacency`), in its edge form
    :math:`\\frac12\\sum_{(j \\to i)}\\lVert X_i/\\sqrt{\\tilde d_i} - X_j/\\sqrt{\\tilde d_j}
    \\rVert^2` (self loops add 0; equal to the trace form for an undirected ``edge_index``), which
    has no cancellation near the kernel. ``degree``: :math:`\\tilde d` from
    :func:`.graph_info.graph_info`."""
    x = _dense(x)
    scaled = x / degree.to(x.device, torch.float64).clamp_min(1e-300).sqrt()[:, None]
    src, dst = edge_index.to(x.device)
    return 0.5 * float((scaled[dst] - scaled[src]).square().sum())


def feature_norm(x: Tensor) -> float:
    """Frobenius norm :math:`\\lVert X\\rVert_F`."""
    return float(torch.linalg.matrix_norm(_dense(x)))


def energy_ratio(x: Tensor, edge_index: Tensor) -> float:
    """:math:`E(X)/\\lVert X\\rVert_F^2` (survey energy over squared norm); NaN for X = 0."""
    sq = feature_norm(x) ** 2
    return dirichlet_energy(x, edge_index) / sq if sq > 0 else math.nan


def subspace_distance(x: Tensor, basis: Tensor, component: Tensor, relative: bool = True
                      ) -> float:
    """Oono & Suzuki (2020): :math:`\\lVert X - \\Pi_U X\\rVert_F` (over
    :math:`\\lVert X\\rVert_F` if ``relative``; NaN for X = 0), ``basis``/``component`` from
    :func:`.graph_info.graph_info`."""
    x = _dense(x)
    u, comp = basis.to(x.device, torch.float64), component.to(x.device)
    coef = scatter(u[:, None] * x, comp, 0, dim_size=int(comp.max()) + 1, reduce="sum")
    dist = float(torch.linalg.matrix_norm(x - u[:, None] * coef[comp]))
    if not relative:
        return dist
    total = float(torch.linalg.matrix_norm(x))
    return dist / total if total > 0 else math.nan


def _stable_rank(s: Tensor) -> float:
    return float(s.square().sum() / s[0].square()) if len(s) and s[0] > 0 else 0.0


def _effective_rank(s: Tensor) -> float:
    if not len(s) or s[0] <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def numerical_rank(x: Tensor) -> float:
    """Stable rank :math:`\\lVert X\\rVert_F^2/\\lVert X\\rVert_2^2` (0 for X = 0)."""
    return _stable_rank(torch.linalg.svdvals(_dense(x)))


def effective_rank(x: Tensor) -> float:
    """Roy & Vetterli (2007): :math:`\\exp(-\\sum_k p_k\\log p_k)`,
    :math:`p_k = \\sigma_k/\\sum_j\\sigma_j` (0 for X = 0)."""
    return _effective_rank(torch.linalg.svdvals(_dense(x)))


def cosine_distances(x: Tensor) -> Tensor:
    """``[N, N]`` :math:`1 - \\cos(X_i, X_j)` in [0, 2], zero diagonal; a zero row has distance 1
    to every other row (as sklearn's ``pairwise_distances(metric='cosine')``). Distances below
    1e-10 (float64 rounding of equal directions) are set to 0, so that MAD's non-zero counting
    leaves equal rows out exactly."""
    xn = torch.nn.functional.normalize(_dense(x), dim=1)
    dist = (1.0 - xn @ xn.t()).clamp_(0.0, 2.0)
    dist = dist.masked_fill_(dist < 1e-10, 0.0)
    return dist.fill_diagonal_(0.0)


def mad(dist: Tensor, mask: Tensor | None = None) -> float:
    """Chen et al. (2020) MAD of a cosine-distance matrix restricted to ``mask`` (all pairs if
    None): row means over non-zero entries, then the mean over rows whose mean is non-zero."""
    d = dist if mask is None else torch.where(mask.to(dist.device), dist, 0.0)
    rows = d.sum(1) / torch.count_nonzero(d, dim=1).clamp_min(1)
    kept = rows != 0
    return float(rows[kept].mean()) if bool(kept.any()) else 0.0


def mad_gap(dist: Tensor, neighbour_mask: Tensor, remote_mask: Tensor) -> float:
    """:math:`MAD^{rmt} - MAD^{neb}` (Chen et al. 2020)."""
    return mad(dist, remote_mask) - mad(dist, neighbour_mask)


def group_distance_ratio(x: Tensor, y: Tensor, eps: float = 1e-5) -> float:
    """Zhou et al. (2020) inter-/intra-class distance ratio via PyG's
    ``DiffGroupNorm.group_distance_ratio`` on nodes with ``y >= 0``; NaN for < 2 classes."""
    from torch_geometric.nn.norm import DiffGroupNorm

    y = y.to(x.device)
    keep = y >= 0
    classes, y = torch.unique(y[keep], return_inverse=True)
    if len(classes) < 2:
        return math.nan
    return float(DiffGroupNorm.group_distance_ratio(_dense(x)[keep], y, eps))


def smoothing_profile(layer_outputs: list[Tensor], graph_info: GraphInfo,
                      measures: tuple[str, ...] = MEASURES) -> dict[str, list[float]]:
    """``measures`` (default: all of :data:`MEASURES`) of every layer output (``[N, F_l]``, dense
    or sparse, any device), as ``{measure: [value per layer]}``. A non-finite output gives NaN
    throughout; ``group_distance_ratio`` is NaN when ``graph_info`` has no labels.

    Cost per layer: the label-free measures are :math:`O(E F + N F^2)`; ``mad*`` and
    ``group_distance_ratio`` build ``[S, S]`` float64 distance matrices, :math:`O(S^2 F)` time and
    a few :math:`8 S^2` bytes: on a graph of thousands of nodes the pairwise measures dominate,
    and ``max_nodes`` (the node sample, :math:`S`) bounds them quadratically.
    """
    unknown_names = sorted(set(measures) - set(MEASURES))
    if unknown_names:
        raise ValueError(f"unknown measure '{unknown_names[0]}'; valid: {', '.join(MEASURES)}")
    out: dict[str, list[float]] = {m: [] for m in measures}
    for h in layer_outputs:
        x = _dense(h)
        values = _layer(x, graph_info, measures) if bool(torch.isfinite(x).all()) else {}
        for m in measures:
            out[m].append(values.get(m, math.nan))
    return out


_PAIRWISE = {"mad", "mad_neb", "mad_rmt", "mad_gap", "group_distance_ratio"}


@torch.no_grad()
def _layer(x: Tensor, info: GraphInfo, measures: tuple[str, ...]) -> dict[str, float]:
    if x.size(0) != info.num_nodes:
        raise ValueError(f"layer output has {x.size(0)} rows; the graph has {info.num_nodes}")
    energy = dirichlet_energy(x, info.edge_index)
    s = torch.linalg.svdvals(x)
    sq = float(s.square().sum())
    values = {
        "dirichlet": math.sqrt(energy),
        "dirichlet_sym": dirichlet_energy_sym(x, info.edge_index, info.degree),
        "feature_norm": math.sqrt(sq),
        "energy_ratio": energy / sq if sq > 0 else math.nan,
        "subspace_distance": subspace_distance(x, info.basis, info.component),
        "numerical_rank": _stable_rank(s),
        "effective_rank": _effective_rank(s),
    }
    if _PAIRWISE & set(measures):
        xs = x[info.sample.to(x.device)]
        dist = cosine_distances(xs)
        neb, rmt = mad(dist, info.neighbour_mask), mad(dist, info.remote_mask)
        values.update(mad=mad(dist), mad_neb=neb, mad_rmt=rmt, mad_gap=rmt - neb)
        if info.labels is not None and "group_distance_ratio" in measures:
            values["group_distance_ratio"] = group_distance_ratio(xs, info.labels)
    return values
