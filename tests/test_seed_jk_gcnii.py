"""Seed-native JKNet (cat / max / lstm) and GCNII / GCNII* (issue 17).

PyG is the oracle: one seed of the native model equals PyG's ``GCNConv`` + ``JumpingKnowledge``
+ ``torch.nn.Linear`` (JKNet) or ``torch.nn.Linear`` + ``GCN2Conv`` (GCNII; GCNII* through its
rescaled weights and the official formula) with that seed's weights copied in. The initial
weights are those the PyG layers draw after ``torch.manual_seed(seed)`` in the old loop model's
order. S = 3 seeds equal three one-seed runs (the same initial weights; with the same injected
dropout masks the same logits and gradients), float64.

Tolerances: float64 (eps 2.2e-16). The models here are a few layers of sums over at most
~50 terms of O(1) values, so two summation orders differ by well under 1e-13; 1e-10 (relative,
and absolute on O(1) numbers) leaves three orders of margin and still fails any real error.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCN2Conv, GCNConv, JumpingKnowledge

from gdepth import config, models
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gcnii import GCNII
from gdepth.models.jknet import JKNet, SeedJumpingKnowledge
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.one_seed import OneSeed
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import concat_seeds, select_seeds
from gdepth.norms import build_norm

N, IN, OUT, D = 15, 6, 3, 8
TOL = {"rtol": 1e-10, "atol": 1e-10}
SEEDS = [3, 11, 5]


def random_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen, dtype=torch.get_default_dtype())


def model_cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


def pyg_edges(adj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index`` (source j -> target i) and ``edge_weight`` of ``Â[i, j]``: PyG's
    ``GCNConv(normalize=False)`` then computes ``Â X W`` by its own message passing."""
    coo = adj.to_sparse_coo().coalesce()
    row, col = coo.indices()
    return torch.stack([col, row]), coo.values()


def to_pyg_jk(jk: SeedJumpingKnowledge, seed: int) -> JumpingKnowledge:
    """PyG's ``JumpingKnowledge`` holding seed ``seed``'s weights of ``jk``."""
    ref = JumpingKnowledge(jk.mode, channels=jk.channels, num_layers=jk.num_layers)
    if jk.mode == "lstm":
        ref = ref.to(jk.att_weight.dtype)
        with torch.no_grad():
            for p, q in zip(ref.lstm.parameters(), jk.lstm_parameters(), strict=True):
                p.copy_(q[seed])
            ref.att.weight.copy_(jk.att_weight[seed].t())
            ref.att.bias.copy_(jk.att_bias[seed])
    return ref


def seed_slice(t: torch.Tensor, k: int, seeds: int) -> torch.Tensor:
    """Seed ``k``'s part of a seed-major tensor (``[S, ...]``; the transitional stacked norms
    keep ``[S·d]``, the same memory order)."""
    return t.reshape(seeds, -1)[k]


class Masks:
    """Injected dropout masks (``mask_fn``): call k draws ``[S_all, *shape]`` from a seeded
    generator, and this model's seeds get their rows, so a one-seed run of seed ``k`` sees row
    ``k`` of what the S-seed run sees (each run's calls come in the same order)."""

    def __init__(self, rows: slice = slice(None), seeds: int = len(SEEDS)) -> None:
        self.gen = torch.Generator().manual_seed(7)
        self.rows, self.seeds = rows, seeds
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        self.shapes.append(tuple(shape))
        keep = torch.rand((self.seeds, *shape), generator=self.gen) >= p
        return (keep.to(torch.get_default_dtype()) / (1.0 - p))[self.rows]


# ---------------------------------------------------------------- initial weights


def old_jknet_draws(mode: str, norm, depth: int) -> dict[str, torch.Tensor]:
    """The old loop JKNet's constructor, written out on PyG's layers (its draw order):
    GCNConv per layer, the norms, JumpingKnowledge, torch.nn.Linear; tensors by native name."""
    convs = [GCNConv(a, D, normalize=False) for a in [IN] + [D] * (depth - 1)]
    norms = [build_norm(norm, D) for _ in range(depth)]
    jk = JumpingKnowledge(mode, channels=D, num_layers=depth)
    lin_out = nn.Linear(D * depth if mode == "cat" else D, OUT)
    out = {}
    for i, conv in enumerate(convs):
        out[f"convs.{i}.weight"] = conv.lin.weight.t()
        out[f"convs.{i}.bias"] = conv.bias
    for i, norm_module in enumerate(norms):
        for name, p in norm_module.named_parameters():
            out[f"norms.{i}.{name.split('.')[-1]}"] = p
    if mode == "lstm":
        out.update({f"jk.{n}": p for n, p in jk.lstm.named_parameters()})
        out["jk.att_weight"], out["jk.att_bias"] = jk.att.weight.t(), jk.att.bias
    out["lin_out.weight"], out["lin_out.bias"] = lin_out.weight.t(), lin_out.bias
    return out


def old_gcnii_draws(variant: bool, norm, depth: int) -> dict[str, torch.Tensor]:
    """The old loop GCNII's constructor written out: torch.nn.Linear in, per layer the official
    code's U(-1/sqrt(d), 1/sqrt(d)) weight (d x d, GCNII*: 2d x d), the norms, Linear out."""
    lin_in = nn.Linear(IN, D)
    weights = []
    for _ in range(depth):
        w = torch.empty(2 * D if variant else D, D)
        nn.init.uniform_(w, -1.0 / math.sqrt(D), 1.0 / math.sqrt(D))
        weights.append(w)
    norms = [build_norm(norm, D) for _ in range(depth)]
    lin_out = nn.Linear(D, OUT)
    out = {"lin_in.weight": lin_in.weight.t(), "lin_in.bias": lin_in.bias}
    out.update({f"convs.{i}.weight": w for i, w in enumerate(weights)})
    for i, norm_module in enumerate(norms):
        for name, p in norm_module.named_parameters():
            out[f"norms.{i}.{name.split('.')[-1]}"] = p
    out["lin_out.weight"], out["lin_out.bias"] = lin_out.weight.t(), lin_out.bias
    return out


@pytest.mark.parametrize("norm", [None, config.norm("batchnorm")], ids=["none", "batchnorm"])
@pytest.mark.parametrize(("name", "kw"), [
    ("jknet", {"mode": "cat"}), ("jknet", {"mode": "max"}), ("jknet", {"mode": "lstm"}),
    ("gcnii", {}), ("gcnii_star", {})], ids=["cat", "max", "lstm", "gcnii", "gcnii_star"])
def test_initial_weights_are_the_pyg_layers_draws_after_manual_seed(name, kw, norm):
    depth, seed = 3, 4
    torch.manual_seed(seed)
    if name == "jknet":
        expected = old_jknet_draws(kw["mode"], norm, depth)
    else:
        expected = old_gcnii_draws(name == "gcnii_star", norm, depth)
    after_old = torch.rand(3)
    model = models.build_seeded(model_cfg(name, **kw), norm, depth, IN, OUT, seeds=[seed])
    assert torch.equal(torch.rand(3), after_old)  # the global RNG left where the old model did
    got = dict(model.named_parameters())
    assert sorted(got) == sorted(expected)
    for key, p in got.items():
        assert p.numel() == expected[key].numel(), key
        assert torch.equal(seed_slice(p, 0, 1), expected[key].flatten()), key
    one = models.build(model_cfg(name, **kw), norm, depth, IN, OUT)  # after manual_seed(seed)
    assert isinstance(one, OneSeed) and one.native.num_seeds == 1


@pytest.mark.parametrize(("name", "kw"), [
    ("jknet", {"mode": "cat"}), ("jknet", {"mode": "lstm", "shared_dropout": True}),
    ("gcnii", {}), ("gcnii_star", {})])
def test_each_seed_starts_as_its_one_seed_model_and_stack_concatenates(name, kw):
    cfg = model_cfg(name, **kw)
    many = models.build_seeded(cfg, None, 3, IN, OUT, seeds=SEEDS)
    ones = [models.build_seeded(cfg, None, 3, IN, OUT, seeds=[s]) for s in SEEDS]
    assert many.num_seeds == len(SEEDS)
    for k, one in enumerate(ones):
        for (key, p), (key1, q) in zip(many.named_parameters(), one.named_parameters(),
                                       strict=True):
            assert key == key1 and torch.equal(p[k], q[0]), key
        for (key, p), q in zip(select_seeds(many, [k]).named_parameters(), one.parameters(),
                               strict=True):
            assert torch.equal(p, q), key
    stacked = concat_seeds([OneSeed(m).native for m in ones])
    assert type(stacked) is type(many) and stacked.num_seeds == len(SEEDS)
    for (key, p), q in zip(stacked.named_parameters(), many.parameters(), strict=True):
        assert torch.equal(p, q), key


# ---------------------------------------------------------------- one seed = PyG


@pytest.mark.parametrize("mode", ["cat", "max", "lstm"])
@pytest.mark.parametrize("depth", [1, 4])
def test_seed_jk_equals_pyg_jumping_knowledge_forward_and_gradients(float64, mode, depth):
    """Each seed of the native aggregation equals PyG's JumpingKnowledge holding its weights
    (lstm: a bidirectional torch.nn.LSTM, the score Linear and the softmax over layers)."""
    torch.manual_seed(0)
    jk = SeedJumpingKnowledge(len(SEEDS), mode, D, depth)
    gen = torch.Generator().manual_seed(depth)
    xs = [torch.randn(N, len(SEEDS), D, generator=gen, requires_grad=True) for _ in range(depth)]
    out = jk(xs)
    width = D * depth if mode == "cat" else D
    assert out.shape == (N, len(SEEDS), width)
    weight = torch.randn(out.shape, generator=gen)
    (out * weight).sum().backward()
    for s in range(len(SEEDS)):
        ref = to_pyg_jk(jk, s)
        ref_xs = [x.detach()[:, s].clone().requires_grad_() for x in xs]
        expected = ref(ref_xs)
        torch.testing.assert_close(out[:, s], expected, **TOL)
        (expected * weight[:, s]).sum().backward()
        for x, rx in zip(xs, ref_xs, strict=True):
            torch.testing.assert_close(x.grad[:, s], rx.grad, **TOL)
        if mode == "lstm":
            grads = [p.grad[s] for p in jk.lstm_parameters()]
            for g, p in zip(grads, ref.lstm.parameters(), strict=True):
                torch.testing.assert_close(g, p.grad, **TOL)
            torch.testing.assert_close(jk.att_weight.grad[s], ref.att.weight.grad.t(), **TOL)
            torch.testing.assert_close(jk.att_bias.grad[s], ref.att.bias.grad, **TOL)


def jknet_reference(model: JKNet, x: torch.Tensor, edge_index, edge_weight, masks=None):
    """Seed 0 of ``model`` on PyG's GCNConv, JumpingKnowledge and F.linear (no norm); with
    ``masks`` (a list of [N, d] masks, one per dropout, in the model's order) as in training."""
    depth, p_at = len(model.convs), model.dropout_at
    masks = list(masks or [])
    h, outs = x, []
    for i, conv in enumerate(model.convs):
        ref = GCNConv(conv.d_in, conv.d_out, normalize=False).to(x.dtype)
        with torch.no_grad():
            ref.lin.weight.copy_(conv.weight[0].t())
            ref.bias.copy_(conv.bias[0])
        if not model.shared_dropout or i == 0:
            h = h * masks.pop(0) if masks and i in p_at else h
        h = model.act(ref(h, edge_index, edge_weight))
        if model.shared_dropout and masks and i + 1 in p_at:
            h = h * masks.pop(0)
        outs.append(h)
    jk = to_pyg_jk(model.jk, 0)(outs)
    if not model.shared_dropout and masks and depth in p_at:
        jk = jk * masks.pop(0)
    assert not masks
    return F.linear(jk, model.lin_out.weight[0].t(), model.lin_out.bias[0])


@pytest.mark.parametrize("mode", ["cat", "max", "lstm"])
def test_one_seed_jknet_equals_pyg_layers_eval(float64, mode):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    model = models.build_seeded(model_cfg("jknet", mode=mode), None, 3, IN, OUT, seeds=[1]).eval()
    out = OneSeed(model)(x, adj)
    torch.testing.assert_close(out, jknet_reference(model, x, *pyg_edges(adj)), **TOL)


@pytest.mark.parametrize(("mode", "shared", "layers"), [
    ("cat", False, "all"), ("max", True, "hidden"), ("lstm", False, "all"),
    ("lstm", True, "hidden"), ("cat", True, "all")])
def test_one_seed_jknet_with_masks_equals_pyg_layers(float64, mode, shared, layers):
    """Training mode with injected masks: a mask before every GCN layer and on the aggregation
    (shared_dropout off), or one per layer output shared by the next layer and the aggregation
    (Bag of Tricks' JKNet with dropout_layers=hidden)."""
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    depth, p = 3, 0.5
    cfg = model_cfg("jknet", mode=mode, dropout=p, dropout_layers=layers, shared_dropout=shared)
    model = models.build_seeded(cfg, None, depth, IN, OUT, seeds=[2]).train()
    model.mask_fn = Masks(seeds=1)
    out = OneSeed(model)(x, adj)
    width = D * depth if mode == "cat" else D
    if shared:
        expected_shapes = ([(N, IN)] if layers == "all" else []) + [(N, D)] * depth
    else:
        expected_shapes = ([(N, IN)] if layers == "all" else []) + [(N, D)] * (depth - 1) + \
            [(N, width)]
    assert model.mask_fn.shapes == expected_shapes
    hand = Masks(seeds=1)
    masks = [hand(s, p)[0] for s in expected_shapes]
    expected = jknet_reference(model, x, *pyg_edges(adj), masks)
    torch.testing.assert_close(out, expected, **TOL)


def gcnii_reference(model: GCNII, x, edge_index, edge_weight, lamda: float):
    """Seed 0 of ``model`` on PyG's GCN2Conv (GCNII* through its rescaled weights)."""
    h0 = torch.relu(F.linear(x, model.lin_in.weight[0].t(), model.lin_in.bias[0]))
    h = h0
    for layer, conv in enumerate(model.convs, start=1):
        w, alpha = conv.weight[0].detach(), conv.alpha
        ref = GCN2Conv(D, alpha, theta=lamda, layer=layer, shared_weights=not conv.variant,
                       normalize=False).to(x.dtype)
        with torch.no_grad():
            if conv.variant:
                ref.weight1.copy_(w[:D] / (1 - alpha))
                ref.weight2.copy_(w[D:] / alpha)
            else:
                ref.weight1.copy_(w)
        h = torch.relu(ref(h, h0, edge_index, edge_weight))
    return F.linear(h, model.lin_out.weight[0].t(), model.lin_out.bias[0])


@pytest.mark.parametrize("name", ["gcnii", "gcnii_star"])
@pytest.mark.parametrize("depth", [1, 4])
def test_one_seed_gcnii_equals_pyg_gcn2conv(float64, name, depth):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    alpha, lamda = 0.2, 0.6
    model = models.build_seeded(model_cfg(name, alpha=alpha, lamda=lamda), None, depth, IN, OUT,
                                seeds=[0]).eval()
    assert len(model.convs) == depth
    assert [c.theta for c in model.convs] == [math.log(lamda / layer + 1)
                                              for layer in range(1, depth + 1)]
    out = OneSeed(model)(x, adj)
    torch.testing.assert_close(out, gcnii_reference(model, x, *pyg_edges(adj), lamda), **TOL)


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_gcnii_star_layer_is_the_official_formula(float64, alpha):
    """Official GCNII*: θ[P̂h ‖ h0]W + (1−θ)((1−α)P̂h + αh0), W 2d×d, per seed."""
    from gdepth.models.gcnii import GCNIILayer

    edge_index, _ = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    gen = torch.Generator().manual_seed(1)
    h, h0 = torch.randn(N, 2, D, generator=gen), torch.randn(N, 2, D, generator=gen)
    theta = math.log(0.5 / 3 + 1)
    torch.manual_seed(0)
    layer = GCNIILayer(2, D, alpha, theta, variant=True)
    out = layer(h, Propagation(adj), h0)
    for s in range(2):
        p = adj.to_dense() @ h[:, s]
        official = (theta * torch.cat([p, h0[:, s]], dim=1) @ layer.weight[s]
                    + (1 - theta) * ((1 - alpha) * p + alpha * h0[:, s]))
        torch.testing.assert_close(out[:, s], official, **TOL)


# ---------------------------------------------------------------- S seeds = S one-seed runs


CASES = [  # (model, model keys, norm, input features)
    ("jknet", {"mode": "cat"}, None, "dense"),
    ("jknet", {"mode": "max"}, config.norm("pairnorm", mode="PN"), "sparse"),
    ("jknet", {"mode": "lstm"}, None, "dense"),
    ("jknet", {"mode": "lstm", "shared_dropout": True, "dropout_layers": "hidden"},
     config.norm("batchnorm"), "sparse"),
    ("jknet", {"mode": "cat", "shared_dropout": True}, config.norm("nodenorm"), "dense"),
    ("gcnii", {}, None, "sparse"),
    ("gcnii", {"dropout_layers": "io"}, config.norm("batchnorm"), "dense"),
    ("gcnii_star", {}, config.norm("nodenorm"), "dense"),
]


def _run(model, x, adj, y, masks):
    """Logits and every parameter's gradient of the summed per-seed cross-entropy."""
    model.train()
    model.mask_fn = masks
    logits = model(StackedInput(x), Propagation(adj))
    s = logits.shape[1]
    loss = F.cross_entropy(logits.reshape(-1, OUT), y.repeat_interleave(s), reduction="sum")
    model.zero_grad()
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(("name", "kw", "norm", "kind"), CASES)
def test_s_seeds_equal_s_one_seed_runs(float64, name, kw, norm, kind):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    if kind == "sparse":
        x = torch.where(x > 0.5, x, torch.zeros_like(x)).to_sparse_csr()
    y = torch.arange(N) % OUT
    cfg = model_cfg(name, dropout=0.5, **kw)
    many = models.build_seeded(cfg, norm, 3, IN, OUT, seeds=SEEDS)
    logits, grads = _run(many, x, adj, y, Masks())
    assert logits.shape == (N, len(SEEDS), OUT) and torch.isfinite(logits).all()
    for k, seed in enumerate(SEEDS):
        one = models.build_seeded(cfg, norm, 3, IN, OUT, seeds=[seed])
        logit, grad = _run(one, x, adj, y, Masks(slice(k, k + 1)))
        torch.testing.assert_close(logits[:, k], logit[:, 0], **TOL)
        assert grads.keys() == grad.keys()
        for key, g in grads.items():
            torch.testing.assert_close(seed_slice(g, k, len(SEEDS)), seed_slice(grad[key], 0, 1),
                                       **TOL, msg=key)
    many.eval()  # eval: no masks, BatchNorm's running statistics
    out = many(StackedInput(x), Propagation(adj))
    rows = torch.tensor([0, 4, 9])
    torch.testing.assert_close(many(StackedInput(x), Propagation(adj), rows=rows), out[rows])


# ---------------------------------------------------------------- the training loop's methods


@pytest.mark.parametrize(("name", "kw", "groups"), [
    ("jknet", {"mode": "cat"}, ("graph", "output")),
    ("jknet", {"mode": "lstm"}, ("graph", "output")),
    ("gcnii", {}, ("graph", "dense")), ("gcnii_star", {}, ("graph", "dense"))])
def test_groups_weights_and_first_layer(name, kw, groups):
    model = models.build_seeded(model_cfg(name, **kw), config.norm("batchnorm"), 3, IN, OUT,
                                seeds=SEEDS)
    declared = model.named_parameter_groups()
    assert tuple(declared) == groups == models.groups(name)
    ids = [id(p) for params in declared.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    graph = {names[id(p)].split(".")[0] for p in declared["graph"]}
    assert graph == {"convs", "norms"}
    # the tensors the old loop model named *weight*: convs, norms, LSTM and score, linears
    weights = sorted(names[id(p)] for p in model.weight_parameters())
    old = {"jknet": ["convs.{}.weight", "norms.{}.weight"], "gcnii": ["convs.{}.weight",
                                                                      "norms.{}.weight"]}
    expected = [f.format(i) for f in old["jknet" if name == "jknet" else "gcnii"]
                for i in range(3)]
    expected += ["lin_out.weight"] + (["lin_in.weight"] if name != "jknet" else [])
    if kw.get("mode") == "lstm":
        expected += ["jk.att_weight", *(f"jk.weight_{k}_l0{r}" for k in ("ih", "hh")
                                        for r in ("", "_reverse"))]
    assert weights == sorted(expected)
    with pytest.raises(NotBatchable, match="weight_decay_first_only=true but model "
                       f"{type(model).__name__} has no first_layer"):
        model.first_layer_parameters()


@pytest.mark.parametrize(("name", "depth", "count"), [("jknet", 3, 5), ("gcnii", 4, 7)])
def test_taps_are_the_old_models_input_layers_and_logits(name, depth, count):
    edge_index, x = random_graph()
    adj = normalized_adjacency(edge_index, N).to(torch.get_default_dtype())
    model = models.build_seeded(model_cfg(name), None, depth, IN, OUT, seeds=SEEDS).eval()
    sink: list = []
    model.layer_sink = sink
    out = model(StackedInput(x), Propagation(adj))
    model.layer_sink = None
    assert len(sink) == count and torch.equal(sink[0], x)
    assert all(h.shape[:2] == (N, len(SEEDS)) for h in sink[1:])
    torch.testing.assert_close(sink[-1], out, rtol=0, atol=0)
