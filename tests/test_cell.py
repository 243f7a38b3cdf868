"""cell.prepare: features and adjacency fixed per dataset, built once, as the config says."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from gdepth import cell, data

CPU = torch.device("cpu")


def _cora(mirror, data_cache, **options):
    cfg = {"name": "cora", "split": "public", **options}
    folders = OmegaConf.create({"root": str(data_cache), "mirror": str(mirror)})
    return data.load(OmegaConf.create(cfg), folders, 0), cfg


def test_default_is_raw_sparse_features_and_symmetric_adjacency(mirror, data_cache):
    graph, cfg = _cora(mirror, data_cache)
    prepared, adj, kind = cell.prepare(graph, cfg, CPU)
    assert kind == "sparse_csr (density 1.27%)"
    assert torch.equal(prepared.x.to_dense(), graph.x)
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T)
    deg = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes).float() + 1
    assert torch.allclose(dense.diagonal(), 1 / deg)  # self-loop weight 1/(d_i + 1)
    again = cell.prepare(graph, cfg, CPU)
    assert again[0].x is prepared.x and again[1] is adj  # cached, not rebuilt


def test_row_normalized_features_and_row_adjacency_without_self_loops(mirror, data_cache):
    graph, cfg = _cora(mirror, data_cache, normalize_features=True, adjacency="row",
                       self_loops=False)
    prepared, adj, _ = cell.prepare(graph, cfg, CPU)
    sums = prepared.x.to_dense().sum(1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())))
    dense = adj.to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(graph.num_nodes))
    assert dense.diagonal().abs().sum() == 0
