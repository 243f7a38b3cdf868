"""gdepth.models: GAT, GIN and GGNN, each checked against the same PyG layers with copied weights
on the original (directed) edge_index. (GIN is seed-native: ``models.build`` gives its one-seed
interface, whose ``native`` holds the ``[1, ...]`` tensors copied into the PyG layers.)"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv, GatedGraphConv, GINConv

from gdepth import config, models
from gdepth.cli import config_dir
from gdepth.models.adjacency import edge_index_from_adj, normalized_adjacency

N, IN, OUT, D = 15, 6, 3, 8
NAMES = ["gat", "gin", "ggnn"]


def directed_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique directed edges without self loops (one direction only for most pairs)."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 45), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]].unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen)


def model_cfg(name: str, **kw):
    """The model's config, hidden ``D``; GAT with 2 heads (the other models have no heads)."""
    heads = {"heads": 2} if name == "gat" else {}
    return config.model(name, **{"hidden": D, **heads, **kw})


def edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


@pytest.mark.parametrize("self_loops", [True, False])
def test_edge_index_from_adj_is_source_to_target(self_loops):
    edge_index, _ = directed_graph()
    assert edge_set(edge_index) != edge_set(edge_index.flip(0))  # really directed
    adj = normalized_adjacency(edge_index, N, self_loops=self_loops)
    derived = edge_index_from_adj(adj)
    assert derived.dtype == torch.long and edge_set(derived) == edge_set(edge_index)
    assert edge_set(edge_index_from_adj(adj.to_sparse_coo())) == edge_set(edge_index)


def test_neighbour_sum_is_cached_per_adjacency_object():
    edge_index, x = directed_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg("gin"), None, 2, IN, OUT).eval()
    sums = model.native.sums
    model(x, adj)
    first = sums._cache[0][3]
    model(x, adj)
    assert len(sums._cache) == 1 and sums._cache[0][3] is first
    model(x, normalized_adjacency(edge_index, N))
    assert sums._cache[0][3] is not first and sums._cache[1][3] is first  # two most recent


def pyg_gat_convs(model):
    """PyG ``GATConv`` layers holding seed 0's weights of the seed-native GAT behind ``model``."""
    refs = []
    for conv in model.native.convs:
        ref = GATConv(conv.d_in, conv.channels, heads=conv.heads, concat=conv.concat)
        with torch.no_grad():
            ref.lin.weight.copy_(conv.weight[0].t())
            ref.att_src.copy_(conv.att_src[:1])
            ref.att_dst.copy_(conv.att_dst[:1])
            ref.bias.copy_(conv.bias[0])
        refs.append(ref.eval())
    return refs


def reference_gat(model, x, edge_index, act):
    refs = pyg_gat_convs(model)
    for ref in refs[:-1]:
        x = act(ref(x, edge_index))
    return refs[-1](x, edge_index)


def _copy(lin, seed_linear):
    """Seed 0 of a ``SeedLinear`` into the torch ``Linear`` ``lin``; returns ``lin``."""
    lin.weight.data.copy_(seed_linear.weight[0].t())
    lin.bias.data.copy_(seed_linear.bias[0])
    return lin


def reference_gin(model, x, edge_index, act):
    native = model.native
    for conv in native.convs:
        mlp = torch.nn.Sequential(torch.nn.Linear(conv.lin1.d_in, D), copy.deepcopy(conv.act),
                                  torch.nn.Linear(D, D))
        ref = GINConv(mlp, train_eps=True)  # its reset_parameters redraws the MLP: copy after
        _copy(ref.nn[0], conv.lin1), _copy(ref.nn[2], conv.lin2)
        ref.eps.data.copy_(conv.eps[0])
        x = act(ref(x, edge_index))
    return _copy(torch.nn.Linear(D, OUT), native.lin_out)(x)


def pyg_ggnn(model):
    """``(lin_in, GatedGraphConv, lin_out)``, torch / PyG modules holding seed 0's weights of
    the seed-native GGNN behind ``model``."""
    native = model.native
    lin_in, lin_out = (torch.nn.Linear(lin.d_in, lin.d_out) for lin in (native.lin_in,
                                                                          native.lin_out))
    ref = GatedGraphConv(D, num_layers=native.ggc.num_layers)
    with torch.no_grad():
        for lin, seeded in ((lin_in, native.lin_in), (lin_out, native.lin_out)):
            lin.weight.copy_(seeded.weight[0].t())
            lin.bias.copy_(seeded.bias[0])
        ref.weight.copy_(native.ggc.weight[0])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref.rnn, name).copy_(getattr(native.ggc.rnn, name)[0])
    return lin_in, ref, lin_out


def reference_ggnn(model, x, edge_index, act):
    lin_in, ref, lin_out = pyg_ggnn(model)
    return lin_out(ref(lin_in(x), edge_index))


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize(
    ("name", "kw", "reference", "act"),
    [
        ("gat", {"activation": "elu"}, reference_gat, F.elu),
        ("gat", {"output_heads": 3}, reference_gat, F.relu),
        ("gin", {"train_eps": True}, reference_gin, F.relu),
        ("gin", {"activation": "tanh"}, reference_gin, torch.tanh),
        ("ggnn", {}, reference_ggnn, None),
    ],
)
def test_forward_equals_pyg_layers_on_the_original_edges(name, kw, reference, act, depth):
    torch.manual_seed(depth)
    edge_index, x = directed_graph(depth)
    model = models.build(model_cfg(name, **kw), None, depth, IN, OUT).eval()
    if name == "gin" and kw.get("train_eps"):
        with torch.no_grad():
            for conv in model.native.convs:
                conv.eps.fill_(torch.rand(()).item())
    adj = normalized_adjacency(edge_index, N)
    out = model(x, adj)
    with torch.no_grad():
        expected = reference(model, x, edge_index, act)
    assert out.shape == (N, OUT)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # sparse CSR features give the same numbers
    torch.testing.assert_close(
        model(x.relu().to_sparse_csr(), adj), model(x.relu(), adj), atol=1e-5, rtol=1e-5
    )
    # flipping every edge changes the result: the direction is read from adj, not symmetrized
    assert not torch.allclose(model(x, normalized_adjacency(edge_index.flip(0), N)), out)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 8, 32])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_dense_and_sparse(name, depth, sparse):
    torch.manual_seed(0)
    edge_index, x = directed_graph()
    x = x.relu().to_sparse_csr() if sparse else x
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg(name), config.norm("layernorm"), depth, IN, OUT).train()
    out = model(x, adj)
    assert out.shape == (N, OUT) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_errors():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        models.build(model_cfg("ggnn"), None, 0, IN, OUT)
    with pytest.raises(ValueError, match=r"hidden \(8\) must be a multiple of heads \(3\)"):
        models.build(model_cfg("gat", heads=3), None, 2, IN, OUT)
    with pytest.raises(ValueError, match="sparse CSR or COO"):
        edge_index_from_adj(torch.eye(3))


def test_shapes_and_parameter_counts():
    gat = models.build(model_cfg("gat", heads=4), None, 3, IN, OUT)
    assert [(c.heads, c.channels, c.concat) for c in gat.native.convs] == [
        (4, 2, True),
        (4, 2, True),
        (1, OUT, False),
    ]
    gin = models.build(model_cfg("gin"), None, 2, IN, OUT)
    mlps = (IN * D + D + D * D + D) + (D * D + D + D * D + D)
    assert models.count_parameters(gin) == mlps + D * OUT + OUT
    ggnn = models.build(model_cfg("ggnn"), None, 4, IN, OUT)
    gru = 3 * (D * D + D) * 2
    assert models.count_parameters(ggnn) == IN * D + D + 4 * D * D + gru + D * OUT + OUT


@pytest.mark.parametrize("name", NAMES)
def test_yaml_composes_and_builds(composed_models, name):
    cfg = composed_models[name]
    assert cfg.name == name and (Path(config_dir()) / "model" / f"{name}.yaml").is_file()
    model = models.build(cfg, None, 2, IN, OUT)
    edge_index, x = directed_graph()
    assert model(x, normalized_adjacency(edge_index, N)).shape == (N, OUT)
    assert "depth" in models.convention(name)
