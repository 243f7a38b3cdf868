r"""Contextual stochastic block model (CSBM): a synthetic graph with known signal in both
the edges and the features, generated offline and deterministically.

The model is the contextual SBM of Deshpande, Sen, Montanari, Mossel, *Contextual Stochastic
Block Models*, NeurIPS 2018 (arXiv:1807.09596), which Chien, Peng, Li, Milenkovic use to
vary homophily in *Adaptive Universal Generalized PageRank Graph Neural Network* (GPRGNN,
ICLR 2021, arXiv:2006.07988) and on which Wu, Chen, Wang, Jadbabaie analyse oversmoothing in
*A Non-Asymptotic Analysis of Oversmoothing in Graph Neural Networks* (ICLR 2023,
arXiv:2212.10701). Here it has C classes and is parameterised by mean degree and edge
homophily, as in PyG's ``RandomPartitionGraphDataset`` (Kim & Oh, *How to Find Your
Friendly Neighborhood*, ICLR 2021):

* **Labels.** ``num_nodes`` = N nodes in C classes of (nearly) equal size; node order is
  class 0 first, then class 1, … (``N mod C`` leftover nodes go one each to the first classes).
* **Edges.** Each unordered pair {i, j}, i ≠ j, is an edge independently with probability

  .. math:: p_{in} = \frac{h\,d}{n_c}\ \text{if}\ y_i = y_j, \qquad
            p_{out} = \frac{(1-h)\,d}{n_c\,(C-1)}\ \text{otherwise},

  with d = ``avg_degree``, h = ``homophily`` and n_c = N / C, so that the expected degree
  is ≈ d and the expected edge homophily (fraction of edges inside a class) is ≈ h
  (exactly h·(n_c−1)/n_c over h·(n_c−1)/n_c + 1 − h). Drawn with PyG's
  ``stochastic_blockmodel_graph`` (O(N²) memory: keep N ≲ 10⁴).
* **Features.** :math:`x_i = \mu_{y_i} + \varepsilon_i`, :math:`\varepsilon_i \sim
  \mathcal N(0, I_F)`, with class means :math:`\mu_a = \frac{s}{\sqrt 2} q_a` for
  orthonormal random directions :math:`q_1..q_C \in \mathbb R^F` (F ≥ C), so that
  :math:`\lVert \mu_a - \mu_b \rVert = s` = ``snr`` for every a ≠ b: the feature
  signal-to-noise ratio in units of the noise standard deviation.

Everything is drawn from one torch RNG stream seeded with ``graph_seed`` inside
``torch.random.fork_rng`` (the caller's global RNG is untouched), so the same parameters give
bit-identical tensors in every process on the same platform.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from gdepth.data.graph import BaseGraph, make_base


def edge_probabilities(
    num_nodes: int, num_classes: int, avg_degree: float, homophily: float
) -> tuple[float, float]:
    """``(p_in, p_out)`` for mean degree ``avg_degree`` and edge homophily ``homophily``."""
    n_c = num_nodes / num_classes
    p_in = homophily * avg_degree / n_c
    p_out = (1.0 - homophily) * avg_degree / (n_c * (num_classes - 1))
    return p_in, p_out


def csbm(
    num_nodes: int = 1000,
    num_classes: int = 4,
    avg_degree: float = 8.0,
    homophily: float = 0.7,
    snr: float = 0.5,
    num_features: int = 32,
    graph_seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw a CSBM graph (see the module docstring for the model).

    Args:
        num_nodes: N (default 1000). num_classes: C ≥ 2 (default 4).
        avg_degree: expected mean degree d (default 8). homophily: expected edge homophily
            h in [0, 1] (default 0.7). snr: distance between class means in noise-std units
            (default 0.5). num_features: F ≥ C (default 32). graph_seed: RNG seed (default 0).

    Returns:
        ``(x [N, F] float32, y [N] int64, edge_index [2, E] int64 undirected, coalesced)``.
    """
    from torch_geometric.utils import stochastic_blockmodel_graph

    _check(num_nodes, num_classes, avg_degree, homophily, snr, num_features)
    p_in, p_out = edge_probabilities(num_nodes, num_classes, avg_degree, homophily)
    if max(p_in, p_out) > 1.0:
        raise ValueError(
            f"csbm: edge probability {max(p_in, p_out):.3g} > 1; lower avg_degree or raise "
            "num_nodes"
        )
    sizes = [num_nodes // num_classes + (c < num_nodes % num_classes) for c in range(num_classes)]
    probs = torch.full((num_classes, num_classes), p_out, dtype=torch.float64)
    probs.fill_diagonal_(p_in)
    y = torch.repeat_interleave(torch.arange(num_classes), torch.tensor(sizes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(graph_seed))
        edge_index = stochastic_blockmodel_graph(sizes, probs.to(torch.float), directed=False)
        directions, _ = torch.linalg.qr(torch.randn(num_features, num_classes, dtype=torch.float64))
        means = (snr / math.sqrt(2.0)) * directions.t()
        noise = torch.randn(num_nodes, num_features, dtype=torch.float64)
    x = (means[y] + noise).to(torch.float32)
    return x, y, edge_index


def load_csbm(params: dict, root: Path | None = None, mirror: Path | None = None) -> BaseGraph:
    """Registry loader: ``params`` are :func:`csbm`'s keyword arguments; folders are unused."""
    x, y, edge_index = csbm(**params)
    num_classes = int(params["num_classes"])
    return make_base(x, y, edge_index, num_classes)


def _check(
    num_nodes: int,
    num_classes: int,
    avg_degree: float,
    homophily: float,
    snr: float,
    num_features: int,
) -> None:
    problems = []
    if num_classes < 2:
        problems.append(f"num_classes={num_classes} must be >= 2")
    if num_nodes < num_classes:
        problems.append(f"num_nodes={num_nodes} must be >= num_classes={num_classes}")
    if avg_degree <= 0:
        problems.append(f"avg_degree={avg_degree} must be > 0")
    if not 0.0 <= homophily <= 1.0:
        problems.append(f"homophily={homophily} must be in [0, 1]")
    if snr < 0:
        problems.append(f"snr={snr} must be >= 0")
    if num_features < num_classes:
        problems.append(f"num_features={num_features} must be >= num_classes={num_classes}")
    if problems:
        raise ValueError("csbm: " + "; ".join(problems))
