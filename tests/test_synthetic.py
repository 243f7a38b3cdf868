"""Synthetic graphs (gdepth.data.synthetic, .transfer): structure, task range, configs."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from torch_geometric.nn.models import GCN
from torch_geometric.utils import k_hop_subgraph, to_networkx

from gdepth import config
from gdepth.data import load
from gdepth.data.synthetic import grid2d_edges, load_ring, small_world_edges, source_distance_task
from gdepth.data.transfer import transfer

SMALL = {"num_nodes": 64, "task_range": 3, "num_sources": 3, "graph_seed": 0}
RANGE_SETS = ["grid2d", "ring", "small_world"]
TRANSFER_SETS = ["transfer_ring", "transfer_crossed_ring", "transfer_clique_path"]


def graph(name: str, **params):
    return load(config.dataset(name, split="random_per_class", **params), None, seed=0)


def nx_graph(edge_index: torch.Tensor, n: int) -> nx.Graph:
    from torch_geometric.data import Data

    return to_networkx(Data(edge_index=edge_index, num_nodes=n), to_undirected=True)


def test_grid2d_is_the_4_neighbour_lattice():
    e = grid2d_edges(12, width=4)  # 3 × 4, row-major
    rows, cols = e // 4, e % 4
    assert e.size(1) == 3 * 3 + 2 * 4  # horizontal + vertical edges, no diagonals, no loops
    assert bool(((rows[0] - rows[1]).abs() + (cols[0] - cols[1]).abs() == 1).all())
    torus = graph("grid2d", **SMALL, periodic=True)
    assert torch.bincount(torus.edge_index[0]).tolist() == [4] * 64
    with pytest.raises(ValueError, match=r"grid2d: num_nodes=50 is not a square; use 49 or 64"):
        grid2d_edges(50)


def test_ring_and_small_world():
    ring = graph("ring", **SMALL)
    assert ring.num_edges == 2 * 64 and torch.bincount(ring.edge_index[0]).tolist() == [2] * 64
    sw = graph("small_world", **SMALL, neighbors=4, rewire_prob=0.2)
    assert sw.num_edges == 2 * 2 * 64  # Watts–Strogatz keeps n·k/2 edges
    assert nx.is_connected(nx_graph(sw.edge_index, 64))
    assert torch.equal(small_world_edges(64, 4, 0.2, 0), small_world_edges(64, 4, 0.2, 0))
    assert not torch.equal(small_world_edges(64, 4, 0.2, 0), small_world_edges(64, 4, 0.2, 1))
    with pytest.raises(ValueError, match="neighbors=3 must be even"):
        small_world_edges(64, 3)


@pytest.mark.parametrize("name", RANGE_SETS)
def test_labels_are_capped_distances_to_the_nearest_source(name):
    rng = torch.get_rng_state()
    g = graph(name, **SMALL)
    assert torch.equal(torch.get_rng_state(), rng), "the generator used the global RNG"
    sources = (g.x[:, 1] == 1).nonzero().flatten().tolist()
    assert len(sources) == 3 and g.num_classes == 5 and g.num_features == 2
    hops = nx.multi_source_dijkstra_path_length(nx_graph(g.edge_index, 64), sources)
    assert g.y.tolist() == [min(hops.get(v, 99), 4) for v in range(64)]
    again = load_ring(SMALL) if name == "ring" else None
    assert again is None or torch.equal(again.y, g.y)


def _reached_within(edge_index: torch.Tensor, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Sum-aggregation message passing with a threshold: step t marks 'a source within t hops'."""
    n = x.size(0)
    a = torch.sparse_coo_tensor(edge_index, torch.ones(edge_index.size(1)), (n, n))
    reached = [x[:, 1] > 0]
    for _ in range(steps):
        reached.append((reached[-1].float() + torch.sparse.mm(a, reached[-1].float()[:, None])
                        .squeeze(1)) > 0)
    return reached


@pytest.mark.parametrize("name", RANGE_SETS)
def test_task_is_solved_exactly_by_k_message_passing_steps(name):
    g = graph(name, **SMALL)
    k = SMALL["task_range"]
    reached = _reached_within(g.edge_index, g.x, k)
    predicted = torch.full((g.num_nodes,), k + 1)
    for t in range(k, -1, -1):
        predicted[reached[t]] = t
    assert torch.equal(predicted, g.y)


def test_fewer_than_k_layers_cannot_separate_labels_k_and_k_plus_1():
    k = 3
    x, y = source_distance_task(_ring(40), 40, task_range=k, num_sources=1)
    u = int((y == k).nonzero()[0])  # exactly k hops from the source
    w = int((y == k + 1).nonzero()[0])  # farther than k
    for v in (u, w):  # identical (k-1)-hop views: a path of 2k-1 nodes, none a source
        subset, sub_edges, _, _ = k_hop_subgraph(v, k - 1, _ring(40))
        assert len(subset) == 2 * k - 1 and bool((x[subset, 1] == 0).all())
    torch.manual_seed(0)
    for _ in range(3):  # any (k-1)-layer GCN gives them the same output
        model = GCN(2, 8, num_layers=k - 1, out_channels=k + 2).eval()
        out = model(x, _ring(40))
        assert torch.allclose(out[u], out[w], atol=1e-6)
    deeper = GCN(2, 8, num_layers=k, out_channels=k + 2).eval()  # k layers see the source
    out = deeper(x, _ring(40))
    assert not torch.allclose(out[u], out[w], atol=1e-6)


def _ring(n: int) -> torch.Tensor:
    i = torch.arange(n)
    e = torch.stack([i, (i + 1) % n])
    return torch.cat([e, e.flip(0)], dim=1)


@pytest.mark.parametrize(("name", "nodes"), [("transfer_ring", 10), ("transfer_crossed_ring", 10),
                                             ("transfer_clique_path", 8)])
def test_transfer_tasks_put_the_label_r_hops_from_the_readout(name, nodes):
    r = 5
    x, y, e = transfer(name.removeprefix("transfer_"), task_range=r, num_graphs=10, num_classes=5)
    assert x.shape == (10 * nodes, 5) and (y >= 0).sum() == 10
    readouts = (y >= 0).nonzero().flatten()
    assert torch.equal(readouts, torch.arange(10) * nodes)
    assert y[readouts].tolist() == [t % 5 for t in range(10)]
    g = nx_graph(torch.cat([e, e.flip(0)], 1), 10 * nodes)
    assert nx.number_connected_components(g) == 10
    for t, v in enumerate(readouts.tolist()):
        source = int((x[v:v + nodes].sum(1) == 1).nonzero()[0]) + v  # the one-hot row
        assert nx.shortest_path_length(g, v, source) == r
        assert int(x[source].argmax()) == t % 5 and bool((x[v] == 0).all())


@pytest.mark.parametrize("name", TRANSFER_SETS)
def test_transfer_readout_is_blind_below_r_layers(name):
    g = graph(name, task_range=4, num_graphs=10)
    ro = (g.y >= 0).nonzero().flatten()
    torch.manual_seed(0)
    shallow = GCN(5, 8, num_layers=3, out_channels=5).eval()(g.x, g.edge_index)[ro]
    assert torch.allclose(shallow, shallow[:1].expand_as(shallow), atol=1e-6)
    deep = GCN(5, 8, num_layers=4, out_channels=5).eval()(g.x, g.edge_index)[ro]
    assert not torch.allclose(deep[0], deep[1], atol=1e-6)
    masks = g.train_mask | g.val_mask | g.test_mask
    assert torch.equal(masks, g.y >= 0), "only readouts are ever in a split"


@pytest.mark.parametrize("name", RANGE_SETS + TRANSFER_SETS)
def test_yaml_schema_and_registry_defaults_agree(name):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gdepth import data
    from gdepth.cli import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"dataset={name}"]).dataset
    assert cfg.name == name and OmegaConf.get_type(cfg) is config.schema("dataset", name)
    # the YAML's graph parameters (what the loader is given) are the schema's defaults
    yaml = data.params(config.group("dataset", OmegaConf.to_container(cfg, resolve=True)))
    assert yaml == data.params(config.dataset(name, split=cfg.split)) and yaml


@pytest.mark.parametrize(("name", "nodes"), [("transfer_ring", 8), ("transfer_crossed_ring", 8),
                                             ("transfer_clique_path", 6)])
def test_transfer_graphs_carry_each_nodes_instance(name, nodes):
    from gdepth import data

    g = graph(name, task_range=4, num_graphs=7)
    assert g.instance is not None and g.instance.dtype == torch.long
    assert g.instance.tolist() == [t for t in range(7) for _ in range(nodes)]
    # every edge stays inside its instance, and the readouts are the instances' first nodes
    assert torch.equal(g.instance[g.edge_index[0]], g.instance[g.edge_index[1]])
    assert g.instance[g.y >= 0].tolist() == list(range(7))
    assert data.spec(name).instances and name in data.with_instances()


@pytest.mark.parametrize("name", RANGE_SETS + ["csbm"])
def test_graphs_that_are_not_unions_have_no_instances(name):
    from gdepth import data

    params = SMALL if name in RANGE_SETS else {}
    assert graph(name, **params).instance is None
    assert not data.spec(name).instances and name not in data.with_instances()
