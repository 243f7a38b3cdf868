"""gdepth.models: JKNet, MLP and SIGN, each checked against PyG or a hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from test_seed_jk_gcnii import to_pyg_jk
from torch_geometric.data import Data
from torch_geometric.nn import APPNP, JumpingKnowledge

from gdepth import config, models
from gdepth.cli import config_dir
from gdepth.models import sign
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.sign import hop_features
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation

N, IN, OUT, D = 15, 6, 3, 8
NAMES = ["jknet", "mlp", "sign"]
VARIANTS = {  # id -> model config keys
    "jknet_cat": {"name": "jknet", "mode": "cat"},
    "jknet_max": {"name": "jknet", "mode": "max"},
    "jknet_lstm": {"name": "jknet", "mode": "lstm"},
    "mlp": {"name": "mlp"},
    "sign_sym": {"name": "sign", "operator": "sym"},
    "sign_ppr": {"name": "sign", "operator": "ppr", "ppr_alpha": 0.2},
}


def random_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen)


def model_cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


def bilstm_attention(jk: JumpingKnowledge, xs: list[torch.Tensor]) -> torch.Tensor:
    """JK-LSTM written out: a bidirectional LSTM over the layers, a linear score, softmax."""
    lstm, seq = jk.lstm, torch.stack(xs, dim=1)  # [N, L, C]

    def run(suffix: str, steps: range) -> list[torch.Tensor]:
        w_ih, w_hh = getattr(lstm, f"weight_ih_l0{suffix}"), getattr(lstm, f"weight_hh_l0{suffix}")
        b = getattr(lstm, f"bias_ih_l0{suffix}") + getattr(lstm, f"bias_hh_l0{suffix}")
        h = c = seq.new_zeros(seq.size(0), lstm.hidden_size)
        out = {}
        for t in steps:
            i, f, g, o = (seq[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = out[t] = torch.sigmoid(o) * torch.tanh(c)
        return [out[t] for t in range(len(xs))]

    fwd, bwd = run("", range(len(xs))), run("_reverse", range(len(xs) - 1, -1, -1))
    states = torch.stack([torch.cat(p, dim=1) for p in zip(fwd, bwd, strict=True)], dim=1)
    scores = torch.softmax((states @ jk.att.weight.T + jk.att.bias).squeeze(-1), dim=-1)
    return (seq * scores.unsqueeze(-1)).sum(dim=1)


def manual_jk(jk: JumpingKnowledge, mode: str, xs: list[torch.Tensor]) -> torch.Tensor:
    if mode == "cat":
        return torch.cat(xs, dim=1)
    if mode == "max":
        return torch.stack(xs).amax(dim=0)
    return bilstm_attention(jk, xs)


@pytest.mark.parametrize("mode", ["cat", "max", "lstm"])
@pytest.mark.parametrize("depth", [1, 4])
def test_jk_aggregation_equals_pyg_and_hand_formula(mode, depth):
    model = models.build(model_cfg("jknet", mode=mode), None, depth, IN, OUT).native.eval()
    gen = torch.Generator().manual_seed(depth)
    xs = [torch.randn(N, D, generator=gen) for _ in range(depth)]
    reference = to_pyg_jk(model.jk, 0)  # PyG's JumpingKnowledge with the seed's weights
    expected = manual_jk(reference, mode, xs)
    torch.testing.assert_close(reference(xs), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(model.jk([x[:, None] for x in xs])[:, 0], expected, atol=1e-5,
                               rtol=0)


def hand_jknet(model, mode: str, a: torch.Tensor, x: torch.Tensor, masks=None) -> torch.Tensor:
    """One-seed JKNet written out: relu(Â (h W) + b) per layer, each output times its mask
    (``masks``: one per layer, as Bag of Tricks' shared dropout), JK, linear."""
    h, xs = x, []
    for conv in model.convs:
        h = torch.relu(a @ (h @ conv.weight[0]) + conv.bias[0])
        if masks is not None:
            h = h * masks.mask((N, D), model.dropout)
        xs.append(h)
    jk = manual_jk(to_pyg_jk(model.jk, 0), mode, xs)
    return jk @ model.lin_out.weight[0] + model.lin_out.bias[0]


@pytest.mark.parametrize("mode", ["cat", "max", "lstm"])
def test_jknet_forward_equals_hand_computation(mode):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    depth = 3
    model = models.build(model_cfg("jknet", mode=mode), None, depth, IN, OUT).eval()
    expected = hand_jknet(model.native, mode, adj.to_dense(), x)
    torch.testing.assert_close(model(x, adj), expected, atol=1e-5, rtol=0)
    assert len(model.native.convs) == depth
    width = D * depth if mode == "cat" else D
    assert model.native.lin_out.d_in == width


def test_jknet_dropout_layers():
    model = models.build(model_cfg("jknet", dropout_layers="io"), None, 5, IN, OUT).native
    assert model.dropout_at == {0, 5}  # first GCN layer and the output layer
    model = models.build(model_cfg("jknet"), None, 5, IN, OUT).native
    assert model.dropout_at == set(range(6))


class Masks:
    """Dropout masks (0 or 1/(1-p)) from a seeded generator, injected as the model's
    ``mask_fn`` (one seed: ``[1, *shape]``); records each shape."""

    def __init__(self, seed: int = 7) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.shapes: list[tuple[int, ...]] = []

    def mask(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        self.shapes.append(tuple(shape))
        return (torch.rand(shape, generator=self.gen) >= p).float() / (1 - p)

    def mask_fn(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        return self.mask(shape, p)[None]


@pytest.mark.parametrize("mode", ["cat", "max", "lstm"])
def test_jknet_shared_dropout_is_bag_of_tricks_jknet(mode):
    """shared_dropout + dropout_layers=hidden = Bag of Tricks' models/JKNet.py, written out:
    x = dropout(relu(conv(x))) appended to the list and fed to the next layer; no dropout on
    the input features nor after the aggregation (one mask per layer, shared)."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    depth, p = 3, 0.5
    model = models.build(model_cfg("jknet", mode=mode, dropout=p, dropout_layers="hidden",
                                   shared_dropout=True), None, depth, IN, OUT).train()
    masks = Masks()
    model.native.mask_fn = masks.mask_fn
    got = model(x, adj)
    assert masks.shapes == [(N, D)] * depth  # one mask per layer output, none on x or after JK
    expected = hand_jknet(model.native, mode, adj.to_dense(), x, Masks())  # the same draws
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_jknet_without_shared_dropout_draws_its_own_masks():
    """The default (shared_dropout off, dropout_layers=all): a mask before every GCN layer,
    the input features included, and another on the aggregation before lin_out."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    depth, p = 3, 0.5
    model = models.build(model_cfg("jknet", dropout=p), None, depth, IN, OUT).train()
    native = model.native
    assert native.shared_dropout is False
    masks = Masks()
    native.mask_fn = masks.mask_fn
    got = model(x, adj)
    assert masks.shapes == [(N, IN)] + [(N, D)] * (depth - 1) + [(N, D * depth)]
    hand = Masks()
    a, h, xs = adj.to_dense(), x, []
    for conv in native.convs:
        h = torch.relu(a @ ((h * hand.mask(tuple(h.shape), p)) @ conv.weight[0]) + conv.bias[0])
        xs.append(h)
    jk = torch.cat(xs, dim=1) * hand.mask((N, D * depth), p)
    torch.testing.assert_close(got, jk @ native.lin_out.weight[0] + native.lin_out.bias[0],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_sign_sym_hops_equal_pyg_transform_and_dense_powers(steps):
    """PyG's T.SIGN normalizes the (weighted) adjacency itself, so it gets A + I unnormalized."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    data = T.SIGN(steps)(T.AddSelfLoops()(Data(x=x, edge_index=edge_index)))
    hops = hop_features(x, adj, steps)
    assert len(hops) == steps + 1 and hops[0] is x
    for k in range(1, steps + 1):
        torch.testing.assert_close(hops[k], data[f"x{k}"], atol=1e-5, rtol=0)
        power = torch.linalg.matrix_power(adj.to_dense(), k) @ x
        torch.testing.assert_close(hops[k], power, atol=1e-5, rtol=0)


@pytest.mark.parametrize("alpha", [0.15, 0.5])
def test_sign_ppr_hops_equal_pyg_appnp_and_converge_to_ppr_matrix(alpha):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    a = adj.to_dense()
    hops = hop_features(x, adj, 4, "ppr", alpha)
    for k in range(1, 5):
        torch.testing.assert_close(hops[k], APPNP(k, alpha)(x, edge_index), atol=1e-5, rtol=0)
        series = sum(alpha * (1 - alpha) ** j * torch.linalg.matrix_power(a, j) for j in range(k))
        closed = (series + (1 - alpha) ** k * torch.linalg.matrix_power(a, k)) @ x
        torch.testing.assert_close(hops[k], closed, atol=1e-5, rtol=0)
    ppr = alpha * torch.linalg.inv(torch.eye(N) - (1 - alpha) * a.double()) @ x.double()
    limit = hop_features(x, adj, 200, "ppr", alpha)[-1]
    torch.testing.assert_close(limit, ppr.float(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("operator", ["sym", "ppr"])
def test_sign_forward_equals_hand_computation(operator):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    depth = 3
    cfg = model_cfg("sign", operator=operator, ppr_alpha=0.3)
    model = models.build(cfg, None, depth, IN, OUT).eval()
    m = model.native  # one seed: weights [1, d_in, d_out]
    if operator == "sym":
        hops = [torch.linalg.matrix_power(adj.to_dense(), k) @ x for k in range(depth + 1)]
    else:
        hops = [x] + [APPNP(k, 0.3)(x, edge_index) for k in range(1, depth + 1)]
    pairs = zip(hops, m.lins, strict=True)
    z = torch.cat([torch.relu(h @ lin.weight[0] + lin.bias[0]) for h, lin in pairs], dim=1)
    expected = z @ m.lin_out.weight[0] + m.lin_out.bias[0]
    torch.testing.assert_close(model(x, adj), expected, atol=1e-5, rtol=0)
    assert len(m.lins) == depth + 1 and m.lin_out.d_in == D * (depth + 1)


def test_sign_precomputes_once_per_input(monkeypatch):
    calls = []
    real = sign.hop_features
    monkeypatch.setattr(sign, "hop_features", lambda *a: calls.append(1) or real(*a))
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build(model_cfg("sign"), None, 3, IN, OUT)
    for _ in range(3):
        model.train()(x, adj).sum().backward()
        model.eval()(x, adj)
    assert len(calls) == 1

    def features(x: torch.Tensor) -> list[torch.Tensor]:  # the hops as the native sees them
        return model.native.features(StackedInput(x), Propagation(adj))

    hops, expected = features(x), model(x, adj)
    assert features(x)[1] is hops[1] and hops[0] is x
    x2 = x.clone()
    torch.testing.assert_close(model(x2, adj), expected)  # a new tensor: computed again
    x2.mul_(2.0)  # in place: the cache sees the version change
    torch.testing.assert_close(features(x2)[2], 2 * hops[2])
    assert len(calls) == 3
    model(x2, normalized_adjacency(edge_index, N))  # a new adj: computed again
    assert len(calls) == 4
    xg = x.clone().requires_grad_()  # a Jacobian diagnostic: autograd through the hops, no cache
    model(xg, adj).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0 and len(calls) == 5
    assert model.native._cache[0] is not xg
    assert not any("cache" in key for key in model.state_dict())


@pytest.mark.parametrize("operator", ["sym", "ppr"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_sign_projected_hops_equal_cached_hops(operator, sparse):
    """hops=projected, Â^k (X Θ_k), gives the cached hops' (Â^k X) Θ_k: outputs and every
    gradient, for three seeds with dropout masks, in float64 (the two differ only by the order
    of the sums, far below the 1e-10 asked)."""
    edge_index, x = random_graph()
    x = x.double()
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    inputs = x.to_sparse_csr() if sparse else x
    runs = {}
    for hops in ("cached", "projected"):
        torch.manual_seed(0)
        model = sign.SIGN(IN, D, OUT, depth=4, operator=operator, ppr_alpha=0.3, num_seeds=3,
                          hops=hops, dropout=0.5).double().train()
        masks = torch.Generator().manual_seed(1)
        model.mask_fn = lambda shape, p, g=masks: (  # a [S, N, d] mask per call
            torch.rand((3, *shape), generator=g) >= p) / (1 - p)
        out = model(StackedInput(inputs), Propagation(adj))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out).double()).sum().backward()
        runs[hops] = (out.detach(), {k: p.grad for k, p in model.named_parameters()})
        assert (model._cache is None) == (hops == "projected")
    (cached, grads_c), (projected, grads_p) = runs["cached"], runs["projected"]
    torch.testing.assert_close(projected, cached, rtol=1e-10, atol=1e-10)
    assert grads_c.keys() == grads_p.keys()
    for key, grad in grads_c.items():
        torch.testing.assert_close(grads_p[key], grad, rtol=1e-10, atol=1e-10, msg=key)


def test_sign_auto_hops_follow_the_cost_rule():
    """hops=auto projects first when X is sparse and c·(K·nnz(X) + K(K+1)/2 · nnz(Â)) < K·N·F,
    c = SPARSE_MAC_COST."""
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(100, 1000)
    x.view(-1)[torch.randperm(100_000, generator=gen)[:500]] = 1.0  # 500 stored entries
    adj = torch.sparse_coo_tensor(torch.randint(0, 100, (2, 600), generator=gen),
                                  torch.ones(600), (100, 100)).coalesce()
    stored = adj._nnz()
    csr = x.to_sparse_csr()
    # c·(500 + (K+1)/2·nnz) < 1e5  ⟺  K + 1 < 2·(1e5/c − 500)/nnz: the largest such K
    below = math.ceil(2 * (100_000 / sign.SPARSE_MAC_COST - 500) / stored) - 2
    assert below >= 1
    assert sign.projected_is_cheaper(csr, adj, below)
    assert not sign.projected_is_cheaper(csr, adj, below + 1)
    assert not sign.projected_is_cheaper(x, adj, 1)  # a dense X: the paper's cached hops
    edge_index, small = random_graph()
    a = normalized_adjacency(edge_index, N)
    wide = torch.zeros(N, 200)
    wide[torch.arange(N), torch.arange(N) * 7] = 1.0  # one word per node: a wide sparse X
    model = models.build(model_cfg("sign"), None, 3, 200, OUT).eval()
    out = model(wide.to_sparse_csr(), a)
    assert model.native.projects(wide.to_sparse_csr(), a) and model.native._cache is None
    hops = [torch.linalg.matrix_power(a.to_dense(), k) @ wide for k in range(4)]
    m = model.native
    z = torch.cat([torch.relu(h @ lin.weight[0] + lin.bias[0]) for h, lin in zip(hops, m.lins,
                                                                              strict=True)], 1)
    torch.testing.assert_close(out, z @ m.lin_out.weight[0] + m.lin_out.bias[0], atol=1e-5,
                               rtol=0)
    with pytest.raises(ValueError, match="unknown sign hops 'lazy'; valid: auto, cached, "
                                         "projected"):
        sign.SIGN(IN, D, OUT, depth=2, hops="lazy")


def test_mlp_ignores_the_graph_and_equals_hand_computation():
    edge_index, x = random_graph()
    other, _ = random_graph(seed=1)
    model = models.build(model_cfg("mlp"), None, 3, IN, OUT).eval()
    out = model(x, normalized_adjacency(edge_index, N))
    torch.testing.assert_close(model(x, normalized_adjacency(other, N, normalization="row")), out)
    lins = model.native.lins  # one seed: weights [1, d_in, d_out]
    torch.testing.assert_close(model.native(StackedInput(x), None)[:, 0], out)  # no graph
    h = x
    for lin in lins[:-1]:
        h = torch.relu(h @ lin.weight[0] + lin.bias[0])
    expected = h @ lins[-1].weight[0] + lins[-1].bias[0]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    assert len(lins) == 3
    assert len(models.build(model_cfg("mlp"), None, 1, IN, OUT).native.lins) == 1


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("depth", [1, 2, 8, 64])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_forward_backward(variant, depth, sparse):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    torch.manual_seed(0)
    cfg = model_cfg(**VARIANTS[variant], dropout=0.5)
    model = models.build(cfg, None, depth, IN, OUT).train()
    inputs = x.to_sparse_csr() if sparse else x
    out = model(inputs, adj)
    assert out.shape == (N, OUT) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.arange(N) % OUT).backward()
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
    model.eval()
    torch.testing.assert_close(model(inputs, adj), model(x, adj), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_norm_is_applied(name):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N)
    torch.manual_seed(0)
    plain = models.build(model_cfg(name), None, 3, IN, OUT).eval()
    torch.manual_seed(0)
    normed = models.build(model_cfg(name), config.norm("nodenorm"), 3, IN, OUT).eval()
    assert not torch.allclose(plain(x, adj), normed(x, adj))


def test_unknown_choices_name_the_valid_ones():
    with pytest.raises(ValueError, match="unknown jk mode 'sum'; valid: cat, lstm, max"):
        models.build(model_cfg("jknet", mode="sum"), None, 2, IN, OUT)
    with pytest.raises(ValueError, match="unknown sign operator 'heat'; valid: ppr, sym"):
        models.build(model_cfg("sign", operator="heat"), None, 2, IN, OUT)


@pytest.mark.parametrize("name", NAMES)
def test_yaml_composes_and_builds(composed_models, name):
    cfg = composed_models[name]
    assert cfg.name == name and (Path(config_dir()) / "model" / f"{name}.yaml").is_file()
    model = models.build(cfg, None, 2, IN, OUT)
    assert "depth" in models.convention(name)
    if name == "jknet":
        native = model.native
        assert native.jk.mode == "cat" and native.lin_out.d_in == 2 * cfg.hidden
        assert cfg.shared_dropout is False and native.shared_dropout is False
    if name == "sign":
        assert (model.native.operator, model.native.ppr_alpha) == ("sym", 0.15)
