"""gdepth.models: adjacency, GCN and GCN-res, each checked against a second computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from gdepth import config, models
from gdepth.models import gcn as gcn_module
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gcn_tricks import SeedGCNConv
from gdepth.norms import NORMS

N, IN, OUT = 15, 6, 3
VALID = (
    "appnp, bottleneck, densegcn, gat, gcn, gcn_res, gcnii, gcnii_star, ggnn, gin, incepgcn, "
    "jknet, mlp, resgcn, sgc, sign"
)


NORM_CFGS = [config.norm(name) for name in sorted(NORMS)]


def random_graph(seed: int = 0, directed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    if not directed:
        edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen)


def model_cfg(name: str = "gcn", **kw):
    return config.group("model", {"name": name, "hidden": 8, **kw})


def test_sym_adjacency_equals_dense_formula():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])  # path 0-1-2-3
    adj = normalized_adjacency(edge_index, 5)  # node 4 isolated: only its self loop
    assert adj.layout == torch.sparse_csr and adj.shape == (5, 5)
    a = torch.zeros(5, 5)
    a[edge_index[1], edge_index[0]] = 1.0
    a_tilde = a + torch.eye(5)
    d = a_tilde.sum(dim=1).pow(-0.5)
    torch.testing.assert_close(adj.to_dense(), d[:, None] * a_tilde * d[None, :])
    no_loops = normalized_adjacency(edge_index, 5, self_loops=False).to_dense()
    d0 = a.sum(dim=1).pow(-0.5).nan_to_num(posinf=0.0)
    torch.testing.assert_close(no_loops, d0[:, None] * a * d0[None, :])


@pytest.mark.parametrize("self_loops", [True, False])
def test_row_adjacency_rows_sum_to_one(self_loops):
    edge_index, _ = random_graph(directed=True)
    dense = normalized_adjacency(
        edge_index, N, self_loops=self_loops, normalization="row"
    ).to_dense()
    has_in_edges = torch.zeros(N, dtype=torch.bool)
    has_in_edges[edge_index[1]] = True
    expected = torch.where(has_in_edges | self_loops, 1.0, 0.0)
    torch.testing.assert_close(dense.sum(dim=1), expected)


def test_bad_normalization_raises():
    with pytest.raises(ValueError, match="'left'.*row, sym"):
        normalized_adjacency(torch.zeros(2, 0, dtype=torch.long), 3, normalization="left")


@pytest.mark.parametrize("directed", [False, True])
def test_gcnconv_on_adjacency_equals_pyg_normalized_conv(directed):
    edge_index, x = random_graph(directed=directed)
    reference = GCNConv(IN, 4)
    torch.nn.init.normal_(reference.bias)
    model = models.build(model_cfg(), None, 1, IN, 4)
    with torch.no_grad():  # seed 0's [d_in, d_out] weight is GCNConv's lin.weight transposed
        model.native.convs[0].weight[0].copy_(reference.lin.weight.t())
        model.native.convs[0].bias[0].copy_(reference.bias)
    model.eval()
    out = model(x, normalized_adjacency(edge_index, N))
    torch.testing.assert_close(out, reference(x, edge_index), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gcn", "gcn_res"])
@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_depth_counts_gcnconv_layers(name, depth):
    model = models.build(model_cfg(name), config.norm("nodenorm"), depth, IN,
                         OUT)
    convs = [m for m in model.modules() if isinstance(m, SeedGCNConv)]
    assert len(convs) == depth
    assert (convs[0].d_in, convs[-1].d_out) == (IN, OUT)
    assert len(model.native.norms) == depth - 1
    assert "depth L" in models.convention(name)


def test_gcn_res_forward_equals_manual_residual_computation():
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    a = adj.to_dense()
    model = models.build(model_cfg("gcn_res"), config.norm("nodenorm"), 4, IN,
                         OUT).eval()

    def conv(i: int, h: torch.Tensor) -> torch.Tensor:
        c = model.native.convs[i]
        return a @ (h @ c.weight[0]) + c.bias[0]

    def nodenorm(h: torch.Tensor) -> torch.Tensor:
        mu = h.mean(dim=1, keepdim=True)
        return (h - mu) / (((h - mu) ** 2).mean(dim=1, keepdim=True) + 1e-5).sqrt()

    h = torch.relu(nodenorm(conv(0, x)))  # input layer: no residual
    h = torch.relu(nodenorm(conv(1, h))) + h
    h = torch.relu(nodenorm(conv(2, h))) + h
    torch.testing.assert_close(model(x, adj), conv(3, h), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["gcn", "gcn_res"])
@pytest.mark.parametrize("norm_cfg", NORM_CFGS, ids=lambda c: c.name)
@pytest.mark.parametrize("depth", [1, 2, 8, 64])
def test_forward_backward(name, norm_cfg, depth):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    torch.manual_seed(0)
    model = models.build(model_cfg(name), norm_cfg, depth, IN, OUT)
    out = model(x, adj)
    assert out.shape == (N, OUT) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.arange(N) % OUT).backward()
    grad = model.native.convs[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    if name == "gcn_res" and depth == 64:
        assert grad.abs().sum() > 0


class RecordedMasks:
    """An injected ``mask_fn`` (one seed) that keeps each mask it draws, from the global RNG."""

    def __init__(self) -> None:
        self.masks: list[torch.Tensor] = []

    def __call__(self, shape, p):
        mask = (torch.rand(1, *shape) >= p).float() / (1 - p)
        self.masks.append(mask[0])
        return mask


def test_dropout_layers_io_vs_all():
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    io = models.build(model_cfg(dropout_layers="io"), None, 4, IN, OUT)
    every = models.build(model_cfg(dropout_layers="all"), None, 4, IN, OUT)
    every.load_state_dict(io.state_dict())
    assert io.native.dropout_at == {0, 3} and every.native.dropout_at == {0, 1, 2, 3}
    convs = io.native.convs

    def manual(dropout_at: set[int], masks: list[torch.Tensor]) -> torch.Tensor:
        h, drawn = x, iter(masks)
        for i, conv in enumerate(convs):
            h = h * next(drawn) if i in dropout_at else h
            h = adj @ (h @ conv.weight[0]) + conv.bias[0]
            h = h if i == 3 else torch.relu(h)
        return h

    outs = {}
    for key, model, at in [("io", io, {0, 3}), ("all", every, {0, 1, 2, 3})]:
        torch.manual_seed(1)
        model.native.mask_fn = RecordedMasks()
        outs[key] = model.train()(x, adj)
        assert len(model.native.mask_fn.masks) == len(at)
        torch.testing.assert_close(outs[key], manual(at, model.native.mask_fn.masks))
    assert not torch.allclose(outs["io"], outs["all"])
    torch.testing.assert_close(io.eval()(x, adj), every.eval()(x, adj), atol=0, rtol=0)


def test_dropout_layers_hidden_spares_the_input_features():
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg(dropout_layers="hidden", dropout=0.9), None, 4, IN, OUT)
    assert model.native.dropout_at == {1, 2, 3}
    masks = model.native.mask_fn = RecordedMasks()
    out = model.train()(x, adj)
    assert [tuple(m.shape) for m in masks.masks] == [(N, 8)] * 3  # never on x [N, IN]
    convs = model.native.convs
    h = torch.relu(adj @ (x @ convs[0].weight[0]) + convs[0].bias[0])  # raw features
    for i, conv in enumerate(convs[1:], start=1):
        h = adj @ ((h * masks.masks[i - 1]) @ conv.weight[0]) + conv.bias[0]
        h = torch.relu(h) if i < 3 else h
    torch.testing.assert_close(out, h)
    one = models.build(model_cfg(dropout_layers="hidden"), None, 1, IN, OUT)
    assert one.native.dropout_at == set()


def test_parameter_count_closed_form():
    model = models.build(model_cfg(hidden=16), None, 3, 10, 3)
    assert models.count_parameters(model) == 10 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3
    bn = models.build(model_cfg(hidden=16), config.norm("batchnorm"), 3, 10, 3)
    assert models.count_parameters(bn) == models.count_parameters(model) + 2 * (2 * 16)


def test_config_defaults_and_errors():
    model = models.build(config.group("model", {"name": "gcn"}), None, 2, IN, OUT).native
    assert model.convs[0].d_out == 64 and model.dropout == 0.5
    assert model.dropout_at == {0, 1} and isinstance(model.act, torch.nn.ReLU)
    with pytest.raises(ValueError, match=f"'gatv2'; valid: {VALID}"):
        models.build(config.group("model", {"name": "gatv2"}), None, 2, IN, OUT)
    with pytest.raises(ValueError, match=f"'gatv2'; valid: {VALID}"):
        models.convention("gatv2")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        models.build(config.group("model", {"name": "gcn"}), None, 0, IN, OUT)
    with pytest.raises(ValueError, match="'swish'; valid: elu, identity, relu, tanh"):
        models.build(model_cfg(activation="swish"), None, 2, IN, OUT)
    # a choice the schema types (an enum) fails when the config is made, naming the choices
    with pytest.raises(ValueError, match=r"^GCNConfig.dropout_layers: Invalid value 'some', "
                                         r"expected one of \[all, io, hidden, nodenorm\]$"):
        model_cfg(dropout_layers="some")


def test_string_enum_config_values_are_read():
    cfg = config.group("model", name="gcn_res", dropout_layers=config.DropoutLayers.io)
    assert models.build(cfg, None, 4, IN, OUT).native.dropout_at == {0, 3}


def test_sparse_dropout_matches_dense_dropout_semantics():
    from gdepth.models.common import dropout

    torch.manual_seed(0)
    x = torch.rand(400, 300)
    x[x < 0.9] = 0.0
    out = dropout(x.to_sparse_csr(), 0.5, training=True).to_dense()
    kept = out != 0
    assert not (kept & (x == 0)).any()  # zeros stay zero
    assert torch.allclose(out[kept], 2.0 * x[kept])  # survivors scaled by 1/(1-p)
    share = kept.sum().item() / (x != 0).sum().item()
    assert abs(share - 0.5) < 0.03  # ~12k stored values: 3 % is > 6 standard deviations
    assert dropout(x.to_sparse_csr(), 0.5, training=False).to_dense().equal(x)


@pytest.mark.parametrize("name", ["gcn", "gcn_res"])
def test_sparse_features_give_the_dense_result(name):
    torch.manual_seed(0)
    x = torch.rand(50, 40)
    x[x < 0.8] = 0.0
    edge_index = torch.randint(0, 50, (2, 200))
    adj = normalized_adjacency(torch.cat([edge_index, edge_index.flip(0)], 1), 50)
    model = models.build(model_cfg(name), None, 3, 40, 4).eval()
    dense = model(x, adj)
    sparse = model(x.to_sparse_csr(), adj)
    assert torch.allclose(dense, sparse, atol=1e-5)
    sparse.sum().backward()
    assert model.native.convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "norm"), [
    ("gcn", None), ("gcn_res", config.norm("nodenorm")),
    ("gcn_res", config.norm("pairnorm"))])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(monkeypatch, name, norm):
    """Through the one-seed interface: the hidden layers run again in the backward pass
    (their convolutions counted), with the same masks, loss and gradients bit for bit
    (tests/test_seed_gcn.py checks S seeds and the tricks model)."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    plain = models.build(model_cfg(name=name), norm, 6, IN, OUT)
    saved = models.build(model_cfg(name=name), norm, 6, IN, OUT)
    saved.load_state_dict(plain.state_dict())
    models.checkpoint_layers(saved)
    count = [0]

    def counted(real):
        def call(*args):
            count[0] += 1
            return real(*args)
        return call

    # norm none: the seed-major hidden layers; else the node-major convolutions
    monkeypatch.setattr(gcn_module, "seed_major_layer", counted(gcn_module.seed_major_layer))
    monkeypatch.setattr(gcn_module, "identity_mapped", counted(gcn_module.identity_mapped))
    grads, calls = [], []
    for model in (plain, saved):
        count[0] = 0
        torch.manual_seed(3)  # the same dropout masks, recomputed ones included
        loss = model.train()(x, adj).logsumexp(-1).mean()
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        calls.append(count[0])
    assert calls[1] == calls[0] + 4  # the 4 hidden layers ran again in the backward pass
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert saved.checkpoint_layers and not plain.checkpoint_layers
    torch.testing.assert_close(saved.eval()(x, adj), plain.eval()(x, adj), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["gcn", "gcn_res"])
def test_dropout_layers_nodenorm_drops_the_second_input_and_the_logits(name):
    """NodeNorm's code (miafei/NodeNorm config.py get_structure, dropout.layer=[1, -1]) puts
    nn.Dropout after the input block and after the output layer: never on the features."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg(name, dropout_layers="nodenorm"), None, 4, IN, OUT)
    assert model.native.dropout_at == {1} and model.native.logits_dropout
    convs = model.native.convs

    def manual(masks: list[torch.Tensor]) -> torch.Tensor:
        h = x
        for i, conv in enumerate(convs):
            z = adj @ ((h * masks[0] if i == 1 else h) @ conv.weight[0]) + conv.bias[0]
            h = z if i == 3 else (torch.relu(z) + h if name == "gcn_res" and 0 < i else
                                  torch.relu(z))
        return h * masks[1]

    torch.manual_seed(1)
    model.native.mask_fn = RecordedMasks()
    out = model.train()(x, adj)
    shapes = [tuple(m.shape) for m in model.native.mask_fn.masks]
    assert shapes == [(N, 8), (N, OUT)]  # the hidden input of layer 1, then the logits
    torch.testing.assert_close(out, manual(model.native.mask_fn.masks))
    eval_out = model.eval()(x, adj)
    torch.testing.assert_close(eval_out, manual([torch.ones(N, 8), torch.ones(N, OUT)]))


@pytest.mark.parametrize("name", ["gat", "jknet", "gin", "mlp"])
def test_dropout_layers_nodenorm_is_refused_where_the_logits_are_not_dropped(name):
    with pytest.raises(ValueError, match=r"dropout_layers=nodenorm .*model=gcn and gcn_res only"):
        models.build(model_cfg(name, dropout_layers="nodenorm"), None, 4, IN, OUT)
