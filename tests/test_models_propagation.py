"""gdepth.models: APPNP, SGC, GCNII and GCNII*, each checked against PyG or a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch_geometric.nn import APPNP, GCN2Conv, SGConv

from gdepth import config, models
from gdepth.cli import config_dir
from gdepth.models import sgc
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.appnp import appnp_propagate
from gdepth.models.gcnii import GCNIILayer
from gdepth.nn.propagation import Propagation

N, IN, OUT, D = 15, 6, 3, 8
NAMES = ["appnp", "sgc", "gcnii", "gcnii_star"]


def random_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen)


def model_cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


def copy_linear(seeded: torch.nn.Module, linear: torch.nn.Module) -> None:
    """A PyG / torch ``Linear``'s weight ``[out, in]`` (and bias) into a one-seed
    ``SeedLinear`` (``[1, in, out]``)."""
    with torch.no_grad():
        seeded.weight[0].copy_(linear.weight.t())
        if linear.bias is not None:
            seeded.bias[0].copy_(linear.bias)


@pytest.mark.parametrize("steps", [1, 2, 10])
@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_appnp_propagation_equals_pyg(steps, alpha):
    edge_index, h = random_graph()
    adj = normalized_adjacency(edge_index, N)
    expected = APPNP(steps, alpha)(h, edge_index)
    torch.testing.assert_close(appnp_propagate(h, adj, steps, alpha), expected, atol=1e-5, rtol=0)


def test_appnp_model_is_mlp_then_pyg_propagation():
    edge_index, x = random_graph()
    model = models.build(model_cfg("appnp", alpha=0.2), None, 5, IN, OUT).eval()
    m = model.native  # one seed: weights [1, d_in, d_out]
    h = torch.relu(x @ m.lin1.weight[0] + m.lin1.bias[0]) @ m.lin2.weight[0] + m.lin2.bias[0]
    expected = APPNP(5, 0.2)(h, edge_index)
    out = model(x, normalized_adjacency(edge_index, N))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_sgc_equals_pyg_sgconv_and_dense_powers(steps):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    reference = SGConv(IN, OUT, K=steps)
    model = models.build(model_cfg("sgc"), None, steps, IN, OUT).eval()
    copy_linear(model.native.lin, reference.lin)
    torch.testing.assert_close(model(x, adj), reference(x, edge_index), atol=1e-5, rtol=0)
    powers = torch.linalg.matrix_power(adj.to_dense(), steps) @ x  # SIGN-style Â^K X
    torch.testing.assert_close(model.native.propagated(x, adj), powers, atol=1e-5, rtol=0)


def test_sgc_propagates_once_per_input_and_reuses_it_in_eval(monkeypatch):
    calls = []
    real = sgc.propagate_features
    monkeypatch.setattr(sgc, "propagate_features", lambda *a: calls.append(1) or real(*a))
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg("sgc", dropout=0.5), None, 3, IN, OUT)
    for _ in range(3):
        model.train()(x, adj).sum().backward()
        model.eval()(x, adj)
    assert len(calls) == 1
    lin = model.native.lin
    ax, expected = model.native.propagated(x, adj), model(x, adj)
    x2 = x.clone()
    torch.testing.assert_close(model(x2, adj), expected)  # a new tensor: computed again
    x2.mul_(2.0)  # in place: the cache sees the version change
    torch.testing.assert_close(model(x2, adj), 2 * ax @ lin.weight[0] + lin.bias[0])
    assert len(calls) == 3
    xg = x.clone().requires_grad_()  # a Jacobian diagnostic: autograd through Â^K X, no cache
    model(xg, adj).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0 and len(calls) == 4
    assert "_cache" not in dict(model.named_buffers()) and set(model.state_dict()) == {
        "native.lin.weight",
        "native.lin.bias",
    }


def test_sgc_without_bias_equals_pyg_sgconv_without_bias(composed_models):
    """model.bias (issue 22): true by default (configs/model/sgc.yaml, today's SGC); false is
    logits = Â^K X W, PyG's SGConv(bias=False) and Bag of Tricks' SGC."""
    assert composed_models["sgc"].bias is True
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["model=sgc", "model.bias=false", "name=x"])
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(cfg.model, cfg.norm, 3, IN, OUT).eval()
    reference = SGConv(IN, OUT, K=3, bias=False)
    assert model.native.lin.bias is None and set(model.state_dict()) == {"native.lin.weight"}
    copy_linear(model.native.lin, reference.lin)
    torch.testing.assert_close(model(x, adj), reference(x, edge_index), atol=1e-5, rtol=0)
    assert models.build(composed_models["sgc"], None, 3, IN, OUT).native.lin.bias is not None


@pytest.mark.parametrize("layer", [1, 2, 7])
def test_gcnii_layer_equals_pyg_gcn2conv(layer):
    edge_index, _ = random_graph()
    gen = torch.Generator().manual_seed(layer)
    h, h0 = torch.randn(N, D, generator=gen), torch.randn(N, D, generator=gen)
    theta = math.log(0.5 / layer + 1)
    ours = GCNIILayer(1, D, 0.1, theta)  # one seed
    reference = GCN2Conv(D, 0.1, theta=0.5, layer=layer, shared_weights=True)
    reference.weight1.data.copy_(ours.weight.data[0])
    expected = reference(h, h0, edge_index)
    out = ours(h[:, None], Propagation(normalized_adjacency(edge_index, N)), h0[:, None])[:, 0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layer", [1, 2, 7])
@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_gcnii_star_layer_equals_official_formula_and_rescaled_pyg(layer, alpha):
    """Official GCNII*: θ[P̂h ‖ h0]W + (1−θ)((1−α)P̂h + αh0), W 2d×d. PyG's shared_weights=False
    is the same function with weight1 = W[:d]/(1−α), weight2 = W[d:]/α."""
    edge_index, _ = random_graph()
    adj = normalized_adjacency(edge_index, N)
    gen = torch.Generator().manual_seed(layer)
    h, h0 = torch.randn(N, D, generator=gen), torch.randn(N, D, generator=gen)
    theta = math.log(0.5 / layer + 1)
    ours = GCNIILayer(1, D, alpha, theta, variant=True)  # one seed
    w = ours.weight.detach()[0]
    p = adj.to_dense() @ h
    official = theta * torch.cat([p, h0], dim=1) @ w + (1 - theta) * ((1 - alpha) * p + alpha * h0)
    out = ours(h[:, None], Propagation(adj), h0[:, None])[:, 0]
    torch.testing.assert_close(out, official, atol=1e-5, rtol=0)
    reference = GCN2Conv(D, alpha, theta=0.5, layer=layer, shared_weights=False)
    reference.weight1.data.copy_(w[:D] / (1 - alpha))
    reference.weight2.data.copy_(w[D:] / alpha)
    torch.testing.assert_close(out, reference(h, h0, edge_index), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gcnii", "gcnii_star"])
def test_gcnii_model_equals_official_loop_on_pyg_layers(name):
    edge_index, x = random_graph()
    depth, alpha, lamda = 4, 0.2, 0.6
    cfg = model_cfg(name, alpha=alpha, lamda=lamda)
    model = models.build(cfg, None, depth, IN, OUT).eval()
    native = model.native  # one seed: its tensors are slice 0
    h0 = torch.relu(x @ native.lin_in.weight[0] + native.lin_in.bias[0])
    h = h0
    for layer, conv in enumerate(native.convs, start=1):
        w = conv.weight.detach()[0]
        reference = GCN2Conv(D, alpha, theta=lamda, layer=layer, shared_weights=name == "gcnii")
        if name == "gcnii":
            reference.weight1.data.copy_(w)
        else:
            reference.weight1.data.copy_(w[:D] / (1 - alpha))
            reference.weight2.data.copy_(w[D:] / alpha)
        h = torch.relu(reference(h, h0, edge_index))
    out = model(x, normalized_adjacency(edge_index, N))
    expected = h @ native.lin_out.weight[0] + native.lin_out.bias[0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert len(native.convs) == depth


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [1, 2, 8, 64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_forward_backward(name, depth, sparse):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    torch.manual_seed(0)
    model = models.build(model_cfg(name, dropout=0.5), None, depth, IN, OUT).train()
    inputs = x.to_sparse_csr() if sparse else x
    out = model(inputs, adj)
    assert out.shape == (N, OUT) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.arange(N) % OUT).backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
    first = {"appnp": "lin1", "sgc": "lin"}.get(name, "lin_in")
    grad = getattr(getattr(model, "native", model), first).weight.grad  # native: seed-native
    if name.startswith("gcnii") and depth == 64:
        assert grad.abs().sum() > 0  # the input layer still learns through 64 layers
    model.eval()
    torch.testing.assert_close(model(inputs, adj), model(x, adj), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gcnii", "gcnii_star"])
@pytest.mark.parametrize("norm", ["none", "batchnorm"])
def test_parameter_groups_cover_every_parameter_once(name, norm):
    model = models.build(model_cfg(name), config.norm(norm), 3, IN, OUT)
    groups = model.named_parameter_groups()  # the official wd1 / wd2 groups
    assert tuple(groups) == ("graph", "dense")
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    native = model.native
    dense = {id(p) for p in [*native.lin_in.parameters(), *native.lin_out.parameters()]}
    assert {id(p) for p in groups["dense"]} == dense
    torch.optim.Adam([{"params": g, "weight_decay": d} for g, d in
                      zip(groups.values(), (0.01, 5e-4), strict=True)], lr=0.01)  # valid spec


def test_norms_appnp_gcnii_apply_sgc_rejects():
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    for name in ["appnp", "gcnii"]:
        torch.manual_seed(0)
        plain = models.build(model_cfg(name), None, 3, IN, OUT).eval()
        torch.manual_seed(0)
        normed = models.build(model_cfg(name), config.norm("nodenorm"), 3, IN, OUT).eval()
        assert not torch.allclose(plain(x, adj), normed(x, adj)), name
    with pytest.raises(ValueError, match="sgc has no hidden layer.*'pairnorm'"):
        models.build(model_cfg("sgc"), config.norm("pairnorm"), 2, IN, OUT)
    models.build(model_cfg("sgc"), config.norm("none"), 2, IN, OUT)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_composes_and_builds(composed_models, name):
    cfg = composed_models[name]
    assert cfg.name == name and (Path(config_dir()) / "model" / f"{name}.yaml").is_file()
    model = models.build(cfg, None, 2, IN, OUT)
    assert "depth" in models.convention(name)
    if name.startswith("gcnii"):
        conv = model.native.convs[0]
        assert (conv.alpha, conv.theta) == (0.1, math.log(0.5 / 1 + 1))
    if name == "sgc":
        assert model.native.dropout == 0.0
