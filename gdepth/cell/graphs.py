"""The graph a cell trains on, prepared once per process: device, features, adjacency.

The normalized adjacency and the features (sparse where they are sparse) are fixed per dataset:
:func:`prepare` builds them once and every seed, layer and epoch of every cell of the process
reuses them; the labels on the device are cached too, so that every seed gets the same tensor,
as the seed-batched engine requires to put seeds in one batch (:func:`gdepth.engine.batch_size`).
"""

from __future__ import annotations

import dataclasses
import warnings

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import NormalizeFeatures

from gdepth import data
from gdepth.config import DatasetConfig
from gdepth.models.adjacency import normalized_adjacency

# Per-process cache, keyed by the dataset's config and the device: (features, adjacency, kind).
_PREPARED: dict[str, tuple[torch.Tensor, torch.Tensor, str]] = {}
# The labels on the device, per the same key: (the loaded graph's y, its copy on the device).
_LABELS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
# Features at most this dense (bag-of-words sets) are kept as a sparse CSR matrix: the first
# layer multiplies it sparsely and dropout touches only the stored values. Measured
# (benchmarks/results/first_layer_speed_cora.json, Cora's shape, forward + backward with
# dropout, one thread): the sparse kernel beats the dense product at every density up to 20 %
# (about 2x at 20 %, 3-5x at 10 %, 30x and more at Cora's 1.3 %), breaks even near 35 % and
# loses at 50 %; so this threshold is on the safe side. It stays at 10 % rather than moving
# towards 30 %: which side a dataset falls on decides its dropout draws (over the stored values
# or all N·F entries), and PubMed's TF-IDF features (about 10 % dense) could move, changing its
# numbers. The
# mirrored datasets sit on the same side of any threshold from 2 % to 30 % (Cora, CiteSeer,
# Coauthor at most 1.3 %, Amazon 35 %).
SPARSE_DENSITY = 0.1


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when torch sees it, else the CPU), ``cpu`` or ``cuda``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was asked for but torch sees no CUDA device; "
                           "use device=auto or device=cpu")
    return torch.device(name)


def prepare(graph: data.Graph, dataset_cfg: DatasetConfig, device: torch.device
            ) -> tuple[data.Graph, torch.Tensor, str]:
    """``(graph on device with the cached features, cached normalized adjacency, features kind)``.

    ``dataset.normalize_features`` row-normalizes the features (PyG's ``NormalizeFeatures``),
    ``dataset.adjacency`` / ``dataset.self_loops`` choose the adjacency's normalization; the
    kind says whether the features are stored dense or sparse, with their density.
    """
    key = f"{sorted(dataclasses.asdict(dataset_cfg).items())}|{device}"
    if key not in _PREPARED:
        x = graph.x
        if dataset_cfg.normalize_features:
            x = NormalizeFeatures()(Data(x=x)).x
        density = float(torch.count_nonzero(x)) / max(x.numel(), 1)
        x = x.to(device)
        kind = f"dense (density {density:.2%})"
        if density <= SPARSE_DENSITY:
            with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
                warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
                x, kind = x.to_sparse_csr(), f"sparse_csr (density {density:.2%})"
        adj = normalized_adjacency(graph.edge_index, graph.num_nodes,
                                   self_loops=bool(dataset_cfg.self_loops),
                                   normalization=str(dataset_cfg.adjacency))
        _PREPARED[key] = (x, adj.to(device), kind)
    x, adj, kind = _PREPARED[key]
    source, y = _LABELS.get(key, (None, None))
    if source is not graph.y:
        y = graph.y.to(device)
        _LABELS[key] = (graph.y, y)
    masks = ("edge_index", "train_mask", "val_mask", "test_mask")
    instance = None if graph.instance is None else graph.instance.to(device)
    moved = dataclasses.replace(graph, x=x, y=y, instance=instance,
                                **{f: getattr(graph, f).to(device) for f in masks})
    return moved, adj, kind
