"""The seed-native ``gcn`` / ``gcn_res`` / Bag-of-Tricks ``gcn`` (issue 17) against PyG.

The oracle is the one-seed model these classes replace, written here from PyG's own layers
(``GCNConv(normalize=False)``, ``torch.nn.Linear``; the norms from :func:`gdepth.norms.build_norm`,
the one-seed norms tests/test_seed_norms.py checks against PyG and the official code):

* one seed (S = 1) computes the reference's logits with the same weights copied in, for every
  skip, identity mapping and dropout placement, with dropout off (eval) and with the same
  dropout masks injected into both;
* ``build_seeded(..., seeds=[s])`` (and ``models.build`` after ``torch.manual_seed(s)``) starts
  from the weights the reference draws after ``torch.manual_seed(s)``;
* S = 3 (seeds 3, 5, 7) equals three S = 1 runs: initial weights, and with injected masks the
  logits and every parameter's gradient;
* activation checkpointing recomputes the layers and gives the same gradients.

Tolerances (float64, eps 2.2e-16): a logit here is a chain of at most ~10 layers of sums of
<= 40 products of O(1) numbers (width 8, degree < 10, 40 nodes); rounding stays below
~1e-13 relative to the logits' scale, so 1e-10 (``close``) leaves three orders of margin and
still fails on any wrong formula, mask or weight (those differ at O(1e-2) and more).
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GCNConv

from gdepth import config, models
from gdepth.models import common, gcn_tricks
from gdepth.models import gcn as gcn_module
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gcn import GCN
from gdepth.models.gcn_tricks import SKIPS, SeedGCNConv, TricksGCN
from gdepth.nn.kernels import StackedInput
from gdepth.nn.one_seed import OneSeed
from gdepth.nn.propagation import Propagation
from gdepth.nn.seed_major import seed_major_layer
from gdepth.nn.seeds import SeedLinear
from gdepth.norms import NORMS, build_norm

N, IN, HIDDEN, OUT = 40, 6, 8, 3
SEEDS = (3, 5, 7)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = float(b.detach().abs().max()) if b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * max(scale, 1.0))


@pytest.fixture()
def graph(float64):
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, N, (2, 120), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    x = torch.randn(N, IN, generator=gen, dtype=torch.float64)
    y = torch.arange(N) % OUT
    return x, adj, y


class Masks:
    """An injected ``mask_fn``: call k gives seed ``seeds[j]`` the mask drawn from a generator
    seeded ``1000 * seeds[j] + k`` (0 or 1/(1-p)), so a seed's masks do not depend on the
    other seeds of its model, and the reference (``one(shape, p)``) draws the same ones."""

    def __init__(self, seeds) -> None:
        self.seeds, self.calls = list(seeds), 0

    def __call__(self, shape, p):
        k, self.calls = self.calls, self.calls + 1
        masks = []
        for s in self.seeds:
            gen = torch.Generator().manual_seed(1000 * s + k)
            keep = torch.rand(tuple(shape), generator=gen, dtype=torch.float64) >= p
            masks.append(keep.to(torch.get_default_dtype()) / (1.0 - p))
        return torch.stack(masks)


# --- the PyG reference: the one-seed models the seed-native ones replace ------------------

def ref_conv(conv: GCNConv, x, adj, beta: float):
    """PyG ``GCNConv`` (beta 1) or Bag of Tricks' identity mapping with its weights."""
    if beta == 1.0:
        return conv(x, adj)
    support = torch.sparse.mm(adj, x)
    out = beta * conv.lin(support) + (1.0 - beta) * support
    return out if conv.bias is None else out + conv.bias


class RefBase(nn.Module):
    mask_fn = None
    taps: list | None = None  # the former loop models' common.tap points

    def tap(self, x):
        if self.taps is not None:
            self.taps.append(x.detach())
        return x

    def drop(self, x, p: float):
        if not self.training or p == 0.0:
            return x
        if self.mask_fn is not None:
            return x * self.mask_fn(tuple(x.shape), p)[0]
        return F.dropout(x, p, True)


class RefGCN(RefBase):
    """Kipf & Welling's GCN / GCN-res on PyG ``GCNConv`` (the former loop model)."""

    def __init__(self, depth, norm_cfg=None, activation="relu", dropout=0.5,
                 dropout_layers="all", identity_mapping=False, lamda=0.5, residual=False):
        super().__init__()
        dims = [IN] + [HIDDEN] * (depth - 1) + [OUT]
        self.convs = nn.ModuleList(GCNConv(a, b, normalize=False)
                                   for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.norms = nn.ModuleList(build_norm(norm_cfg, HIDDEN) for _ in range(depth - 1))
        self.act = common.activation(activation)
        self.p, self.at, self.residual = dropout, common.dropout_positions(dropout_layers,
                                                                           depth), residual
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping and 0 < i < depth - 1
                      else 1.0 for i in range(depth)]

    def forward(self, x, adj):
        x = self.tap(x)
        last = len(self.convs) - 1
        for i in range(last):
            h = self.drop(x, self.p * (i in self.at))
            h = self.act(self.norms[i](ref_conv(self.convs[i], h, adj, self.betas[i])))
            x = self.tap(h + x if self.residual and i > 0 else h)
        return self.tap(self.convs[last](self.drop(x, self.p * (last in self.at)), adj))


class RefTricks(RefBase):
    """Bag of Tricks' GCN on PyG ``GCNConv`` and ``torch.nn.Linear`` (the former TricksGCN)."""

    def __init__(self, depth, skip, norm_cfg=None, skip_alpha=0.1, identity_mapping=False,
                 lamda=0.5, embedding_dropout=0.6, activation="relu", dropout=0.5,
                 dropout_layers="all"):
        super().__init__()
        self.skip, self.alpha = skip, skip_alpha
        self.betas = [math.log(lamda / (i + 1) + 1) if identity_mapping else 1.0
                      for i in range(depth)]
        self.lin_in = nn.Linear(IN, HIDDEN)
        self.convs = nn.ModuleList(GCNConv(HIDDEN, HIDDEN, normalize=False, bias=False)
                                   for _ in range(depth))
        self.norms = nn.ModuleList(build_norm(norm_cfg, HIDDEN) for _ in range(depth))
        self.dense = nn.ModuleList(nn.Linear((i + 2) * HIDDEN, HIDDEN) for i in range(depth)
                                   ) if skip == "dense" else nn.ModuleList()
        self.lin_out = nn.Linear((depth + 1) * HIDDEN if skip == "jumping" else HIDDEN, OUT)
        self.act = common.activation(activation)
        self.p, self.pe = dropout, embedding_dropout
        self.at = common.dropout_positions(dropout_layers, depth)

    def forward(self, x, adj):
        x = self.tap(x)
        x = self.tap(self.act(self.lin_in(self.drop(x, self.pe))))
        xs = [x]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = self.drop(x, self.p * (i in self.at))
            x = self.act(norm(ref_conv(conv, h, adj, self.betas[i])))
            xs.append(x)
            if self.skip == "residual":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[-2]
            elif self.skip == "initial":
                x = (1 - self.alpha) * xs[-1] + self.alpha * xs[0]
            elif self.skip == "dense":
                x = self.dense[i](torch.cat(xs, dim=-1))
            x = self.tap(x)
        if self.skip == "jumping":
            return self.tap(self.lin_out(torch.cat(xs, dim=-1)))
        return self.tap(self.lin_out(self.drop(x, self.pe)))


def reference(name: str, depth: int, norm_cfg, kw: dict) -> nn.Module:
    """The PyG model of ``model=name`` with the keys ``kw`` (built from the global RNG)."""
    keys = dict(kw)
    skip = keys.pop("skip", "none")
    if skip != "none":
        return RefTricks(depth, skip, norm_cfg, **keys)
    for key in ("skip_alpha", "embedding_dropout"):  # Bag of Tricks' keys only
        keys.pop(key, None)
    return RefGCN(depth, norm_cfg, residual=name == "gcn_res", **keys)


def native(name: str, depth: int, norm_cfg, kw: dict, seeds=(0,)) -> nn.Module:
    keys = {f.name for f in dataclasses.fields(config.schema("model", name))}
    cfg = config.model(name, hidden=HIDDEN, **{k: v for k, v in kw.items() if k in keys})
    return models.build_seeded(cfg, norm_cfg, depth, IN, OUT, seeds=list(seeds))


def pairs(model: nn.Module, ref: nn.Module, s: int = 0, grad: bool = False):
    """(seed s's tensor of the native model as the reference lays it out, the reference's
    tensor), for every parameter, in the reference's layer order: conv / linear weights
    ``[S, d_in, d_out]`` against ``[d_out, d_in]``, the rest ``[S, ...]`` against ``[...]``;
    their gradients with ``grad``."""
    def mine(p):
        p = p.grad if grad else p
        return p[s].t() if p.dim() == 3 else p[s]

    def seed(p, like):  # [S, ...] or flat [S·d] (seed-major either way)
        return (p.grad if grad else p).reshape(model.num_seeds, -1)[s].view(like.shape)

    def theirs(q):
        return q.grad if grad else q

    out = []
    if isinstance(ref, RefTricks):
        out += [(mine(model.lin_in.weight), theirs(ref.lin_in.weight)),
                (mine(model.lin_in.bias), theirs(ref.lin_in.bias))]
    for conv, rconv in zip(model.convs, ref.convs, strict=True):
        out.append((mine(conv.weight), theirs(rconv.lin.weight)))
        if rconv.bias is not None:
            out.append((mine(conv.bias), theirs(rconv.bias)))
    for norm, rnorm in zip(model.norms, ref.norms, strict=True):
        mine_params, ref_params = list(norm.parameters()), list(rnorm.parameters())
        assert len(mine_params) == len(ref_params)
        out += [(seed(p, q), theirs(q)) for p, q in zip(mine_params, ref_params, strict=True)]
    if isinstance(ref, RefTricks):
        for lin, rlin in zip(model.dense, ref.dense, strict=True):
            out += [(mine(lin.weight), theirs(rlin.weight)), (mine(lin.bias), theirs(rlin.bias))]
        out += [(mine(model.lin_out.weight), theirs(ref.lin_out.weight)),
                (mine(model.lin_out.bias), theirs(ref.lin_out.bias))]
    return out


def copy_into(model, ref, s: int = 0) -> None:
    """Seed s's weights of the native ``model`` into the PyG ``ref``."""
    with torch.no_grad():
        for a, b in pairs(model, ref, s):
            b.copy_(a)


def copy_from(ref, model, s: int = 0) -> None:
    """The PyG ``ref``'s weights into seed s of the native ``model`` (through views)."""
    with torch.no_grad():
        for a, b in pairs(model, ref, s):
            a.copy_(b)


GCN_CASES = [  # (name, model keys)
    ("gcn", {}),
    ("gcn_res", {}),
    ("gcn", {"identity_mapping": True, "lamda": 0.7}),
    ("gcn", {"activation": "elu", "dropout_layers": "io"}),
    ("gcn_res", {"dropout_layers": "hidden"}),
    *[("gcn", {"skip": skip, "skip_alpha": 0.3}) for skip in SKIPS if skip != "none"],
    *[("gcn", {"skip": skip, "identity_mapping": True, "dropout_layers": "io",
               "embedding_dropout": 0.3}) for skip in SKIPS if skip != "none"],
]


def _id(case):
    name, kw = case
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


# --- S = 1 against PyG ---------------------------------------------------------------------

@pytest.mark.parametrize("case", GCN_CASES, ids=_id)
@pytest.mark.parametrize("depth", [1, 2, 3, 6])
def test_one_seed_equals_the_pyg_reference(graph, case, depth):
    """Eval (no dropout) and training with dropout 0, then training with the same injected
    masks: the seed-native model's logits are the PyG model's with the same weights, and so
    are the gradients of a loss on them (the hand-written backwards: seed-major layers,
    stacked convolutions, the propagation's transpose)."""
    x, adj, y = graph
    name, kw = case
    model = native(name, depth, None, kw)
    ref = reference(name, depth, None, kw)
    copy_into(model, ref)
    x_in, prop = StackedInput(x), Propagation(adj)
    close(model.eval()(x_in, prop)[:, 0], ref.eval()(x, adj))
    model.train()
    ref.train()
    model.mask_fn, ref.mask_fn = Masks([11]), Masks([11])
    logits, ref_logits = model(x_in, prop)[:, 0], ref(x, adj)
    close(logits, ref_logits)
    assert model.mask_fn.calls == ref.mask_fn.calls  # the same dropouts, in the same order
    F.cross_entropy(logits, y).backward()
    F.cross_entropy(ref_logits, y).backward()
    for a, b in pairs(model, ref, grad=True):
        close(a, b)
    zero = {**kw, "dropout": 0.0, "embedding_dropout": 0.0}
    model0, ref0 = native(name, depth, None, zero), reference(name, depth, None, zero)
    copy_into(model0, ref0)
    close(model0.train()(x_in, prop)[:, 0], ref0.train()(x, adj))


@pytest.mark.parametrize("norm", sorted(NORMS))
@pytest.mark.parametrize("case", [("gcn_res", {}), ("gcn", {"identity_mapping": True}),
                                  ("gcn", {"skip": "dense"})], ids=_id)
def test_one_seed_equals_the_pyg_reference_with_every_norm(graph, norm, case):
    """Every norm, in training mode (batch statistics) with injected masks, and in eval."""
    x, adj, _ = graph
    name, kw = case
    norm_cfg = config.norm(norm)
    torch.manual_seed(1)
    model = native(name, 4, norm_cfg, kw)
    ref = reference(name, 4, norm_cfg, kw)
    copy_into(model, ref)
    x_in, prop = StackedInput(x), Propagation(adj)
    model.mask_fn, ref.mask_fn = Masks([2]), Masks([2])
    close(model.train()(x_in, prop)[:, 0], ref.train()(x, adj))
    close(model.eval()(x_in, prop)[:, 0], ref.eval()(x, adj))


@pytest.mark.parametrize("norm", ["none", "groupnorm", "batchnorm"])
@pytest.mark.parametrize("case", GCN_CASES[:3] + GCN_CASES[5:9], ids=_id)
def test_initial_weights_are_the_pyg_models(graph, case, norm):
    """``build_seeded(seeds=[s])`` and ``models.build`` after ``torch.manual_seed(s)`` hold the
    weights the PyG model draws after ``torch.manual_seed(s)`` (GCNConv's glorot, drawn twice
    by GCNConv, zero bias; nn.Linear's kaiming; the norms' own draws, DiffGroupNorm's linear);
    and both leave the global RNG where building the PyG model left it."""
    name, kw = case
    depth = 3
    for s in SEEDS:
        torch.manual_seed(s)
        ref = reference(name, depth, config.norm(norm), kw)
        after_ref = torch.rand(3)
        model = native(name, depth, config.norm(norm), kw, seeds=[s])
        after_native = torch.rand(3)
        torch.manual_seed(s)
        one = models.build(config.group("model", {"name": name, "hidden": HIDDEN, **kw}),
                           config.norm(norm), depth, IN, OUT)
        after_one = torch.rand(3)
        assert isinstance(one, OneSeed)
        for a, b in [*pairs(model, ref), *pairs(one.native, ref)]:
            assert torch.equal(a, b)
        assert torch.equal(after_ref, after_native) and torch.equal(after_ref, after_one)


# --- S = 3 against three S = 1 ---------------------------------------------------------------

@pytest.mark.parametrize("norm", ["none", "nodenorm", "batchnorm", "layernorm"])
@pytest.mark.parametrize("case", GCN_CASES, ids=_id)
def test_three_seeds_are_three_one_seed_runs(graph, case, norm):
    """Seeds 3, 5, 7 in one model: the same initial weights, logits and gradients (of the
    summed per-seed losses) as three one-seed models, with the same masks injected."""
    x, adj, y = graph
    name, kw = case
    depth = 4
    norm_cfg = config.norm(norm)
    three = native(name, depth, norm_cfg, kw, seeds=SEEDS).train()
    ones = [native(name, depth, norm_cfg, kw, seeds=[s]).train() for s in SEEDS]
    x_in, prop = StackedInput(x), Propagation(adj)
    three.mask_fn = Masks(SEEDS)
    logits = three(x_in, prop)
    loss = sum(F.cross_entropy(logits[:, j], y) for j in range(len(SEEDS)))
    loss.backward()
    for j, (s, one) in enumerate(zip(SEEDS, ones, strict=True)):
        one.mask_fn = Masks([s])
        out = one(x_in, prop)
        F.cross_entropy(out[:, 0], y).backward()
        close(logits[:, j].detach(), out[:, 0].detach())
        def seed(t, k, num):  # [S, ...] or flat [S·d] (seed-major either way)
            return t.detach().reshape(num, -1)[k]

        for (pname, p), (qname, q) in zip(three.named_parameters(), one.named_parameters(),
                                          strict=True):
            assert pname == qname
            close(seed(p, j, 3), seed(q, 0, 1))  # the initial weights
            close(seed(p.grad, j, 3), seed(q.grad, 0, 1))
        for (_, b), (_, c) in zip(three.named_buffers(), one.named_buffers(), strict=True):
            if b.dim() > 0:  # BatchNorm's running statistics, updated per seed
                close(seed(b, j, 3), seed(c, 0, 1))


def test_concat_seeds_of_the_one_seed_models_is_the_three_seed_model(graph):
    """``concat_seeds`` of three ``models.build`` models (OneSeed) is the three-seed model."""
    from gdepth.nn.seeds import concat_seeds

    x, adj, _ = graph
    cfg = config.model("gcn_res", hidden=HIDDEN)
    loop = []
    for s in SEEDS:
        torch.manual_seed(s)
        loop.append(models.build(cfg, config.norm("nodenorm"), 4, IN, OUT))
    stacked = concat_seeds([m.native for m in loop])
    three = models.build_seeded(cfg, config.norm("nodenorm"), 4, IN, OUT, seeds=SEEDS)
    assert type(stacked) is type(three) and stacked.num_seeds == 3
    x_in, prop = StackedInput(x), Propagation(adj)
    close(stacked.eval()(x_in, prop), three.eval()(x_in, prop))
    for j, one in enumerate(loop):
        close(stacked(x_in, prop)[:, j], one.eval()(x, adj))


# --- what the training loop asks of the model ------------------------------------------------

@pytest.mark.parametrize("norm", ["none", "batchnorm", "groupnorm"])
@pytest.mark.parametrize("case", GCN_CASES[:3] + GCN_CASES[5:9], ids=_id)
def test_training_hooks_name_what_the_pyg_model_named(graph, case, norm):
    """``weight_parameters`` (L1): the tensors the PyG model names ``*weight*``;
    ``first_layer_parameters``: its first layer's (input conv, or Bag of Tricks' input linear);
    ``named_parameter_groups`` only where the PyG model had ``parameter_groups`` (the tricks
    model: graph = convolutions, dense = the rest), a partition of the parameters."""
    name, kw = case
    ref = reference(name, 3, config.norm(norm), kw)
    model = native(name, 3, config.norm(norm), kw, seeds=[0])
    with torch.no_grad():  # distinct values: equal values below mean the same tensor
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape))
    copy_from(ref, model)
    named = [p for n, p in ref.named_parameters() if "weight" in n]
    mine = model.weight_parameters()
    assert len(mine) == len(named)
    linear = {id(m.weight) for m in model.modules() if isinstance(m, (SeedGCNConv, SeedLinear))}
    for p, q in zip(mine, named, strict=True):
        assert torch.equal(p[0].t() if id(p) in linear else p.reshape(q.shape), q)
    params = {id(p): p for p in model.parameters()}
    assert {id(p) for p in mine} <= set(params)
    first = ref.lin_in if isinstance(ref, RefTricks) else ref.convs[0]
    first_mine = model.first_layer_parameters()
    assert len(first_mine) == len(list(first.parameters())) == 2
    if kw.get("skip", "none") == "none":
        assert common.declared_groups(model) == () == models.groups(name)
        assert first_mine == [model.convs[0].weight, model.convs[0].bias]
    else:
        groups = model.named_parameter_groups()
        assert tuple(groups) == ("graph", "dense") == common.declared_groups(OneSeed(model))
        assert [id(p) for p in groups["graph"]] == [id(c.weight) for c in model.convs]
        ids = [id(p) for g in groups.values() for p in g]
        assert sorted(ids) == sorted(params)
        assert first_mine == [model.lin_in.weight, model.lin_in.bias]


@pytest.mark.parametrize(("case", "norm"), [
    (("gcn", {}), None),  # the seed-major path
    (("gcn_res", {}), None),
    (("gcn_res", {}), config.norm("nodenorm")),
    (("gcn", {"identity_mapping": True}), None),
    *[(("gcn", {"skip": skip}), None) for skip in SKIPS if skip != "none"],
], ids=lambda c: _id(c) if isinstance(c, tuple) else str(c))
def test_layer_taps_are_the_pyg_models(graph, case, norm):
    """``layer_outputs``: seed 0's input, layer outputs and logits through OneSeed's sink (what
    :mod:`gdepth.diagnostics` reads) are the PyG model's at its former ``common.tap`` points."""
    x, adj, _ = graph
    name, kw = case
    torch.manual_seed(0)
    model = models.build(config.group("model", {"name": name, "hidden": HIDDEN, **kw}), norm, 6,
                         IN, OUT).eval()
    ref = reference(name, 6, norm, kw).eval()
    copy_into(model.native, ref)
    sink: list = []
    model.layer_sink, ref.taps = sink, []
    out = model(x, adj)
    model.layer_sink = None
    ref(x, adj)
    assert model.layer_outputs and len(sink) == len(ref.taps) > 3
    assert torch.equal(sink[0], x) and torch.equal(sink[-1], out.detach())
    for mine, theirs in zip(sink, ref.taps, strict=True):
        close(mine, theirs)


# --- the seed-major kernel -------------------------------------------------------------------

@pytest.mark.parametrize(("residual", "masked"), [(True, True), (False, True), (True, False)])
def test_seed_major_layer_matches_autograd_of_its_parts(float64, residual, masked):
    """seed_major_layer's hand-written backward (ReLU gate from a boolean mask, the residual
    gradient fused into the dropout's) = autograd of ReLU(Â(H⊙M)W + b) (+ H), on a directed
    row-normalized Â (its transpose differs from it), float64."""
    s, n, d = 3, 6, 5
    gen = torch.Generator().manual_seed(5)
    edge_index = torch.randint(0, n, (2, 14), generator=gen)
    adj = normalized_adjacency(edge_index, n, normalization="row").to(torch.float64)
    blocks = Propagation(adj).block_diagonal(s)
    h, weight = torch.randn(s, n, d, generator=gen), torch.randn(s, d, d, generator=gen)
    bias = torch.randn(s, d, generator=gen)
    mask = (torch.rand(s, n, d, generator=gen) > 0.5).to(h.dtype) * 2 if masked else None
    upstream = torch.randn(s, n, d, generator=gen)
    leaves = [t.clone().requires_grad_() for t in (h, weight, bias)]
    refs = [t.clone().requires_grad_() for t in (h, weight, bias)]
    out = seed_major_layer(leaves[0], mask, leaves[1], leaves[2], blocks, residual)
    (out * upstream).sum().backward()
    dense = adj.to_dense()
    x = refs[0] * mask if masked else refs[0]
    ref = torch.stack([(dense @ (x[k] @ refs[1][k]) + refs[2][k]).relu() for k in range(s)])
    if residual:
        ref = ref + refs[0]
    (ref * upstream).sum().backward()
    close(out.detach(), ref.detach())
    for got, want in zip(leaves, refs, strict=True):
        close(got.grad, want.grad)
    with torch.no_grad():  # evaluation: the same numbers, nothing kept for a backward
        close(seed_major_layer(h, mask, weight, bias, blocks, residual),
              ref.detach())


def test_seed_major_path_is_taken_with_norm_none_and_relu_only(graph, monkeypatch):
    x, adj, _ = graph
    calls = []
    real = gcn_module.seed_major_layer
    monkeypatch.setattr(gcn_module, "seed_major_layer", lambda *a: calls.append(1) or real(*a))
    x_in, prop = StackedInput(x), Propagation(adj)
    for name, kw, norm, taken in [("gcn_res", {}, None, True), ("gcn", {}, None, True),
                                  ("gcn_res", {}, config.norm("nodenorm"), False),
                                  ("gcn", {"activation": "elu"}, None, False),
                                  ("gcn", {"identity_mapping": True}, None, False)]:
        calls.clear()
        native(name, 4, norm, kw, seeds=SEEDS)(x_in, prop)
        assert bool(calls) is taken, (name, kw, norm)


# --- activation checkpointing ---------------------------------------------------------------

@pytest.mark.parametrize(("case", "norm"), [
    (("gcn", {}), None),  # norm none + ReLU: the seed-major path
    (("gcn_res", {}), None),
    (("gcn_res", {}), config.norm("nodenorm")),
    (("gcn", {"identity_mapping": True}), config.norm("pairnorm")),
    (("gcn", {"skip": "residual", "identity_mapping": True}), config.norm("nodenorm")),
    (("gcn", {"skip": "dense"}), None),
], ids=lambda c: _id(c) if isinstance(c, tuple) else str(c))
def test_activation_checkpointing_recomputes_with_the_same_gradients(graph, monkeypatch,
                                                                     case, norm):
    """Two seeds natively and one through OneSeed: the layers run again in the backward pass
    (counted), the dropout masks are the same (torch.utils.checkpoint restores the RNG), so the
    loss and every gradient are bit for bit those without checkpointing."""
    x, adj, _ = graph
    name, kw = case
    depth = 6
    counts = [0]

    def counted(real):
        def call(*args):
            counts[0] += 1
            return real(*args)
        return call

    monkeypatch.setattr(gcn_module, "seed_major_layer", counted(gcn_module.seed_major_layer))
    monkeypatch.setattr(gcn_module, "identity_mapped", counted(gcn_module.identity_mapped))
    monkeypatch.setattr(gcn_tricks, "identity_mapped", counted(gcn_tricks.identity_mapped))
    for seeds in ([3, 5], [3]):
        runs = []
        for on in (False, True):
            model = native(name, depth, norm, kw, seeds=seeds)
            if len(seeds) == 1:
                model = OneSeed(model)
            if on:
                models.checkpoint_layers(model)
            assert bool(model.checkpoint_layers) is on
            counts[0] = 0
            torch.manual_seed(9)  # the same dropout masks, recomputed ones included
            if isinstance(model, OneSeed):
                loss = model.train()(x, adj).logsumexp(-1).mean()
            else:
                loss = model.train()(StackedInput(x), Propagation(adj)).logsumexp(-1).mean()
            loss.backward()
            runs.append((loss.detach(), [p.grad.clone() for p in model.parameters()], counts[0]))
        (loss0, grads0, calls0), (loss1, grads1, calls1) = runs
        convs = depth if kw.get("skip", "none") != "none" else depth - 2
        assert calls1 == calls0 + convs  # each checkpointed layer's conv ran again
        assert torch.equal(loss0, loss1)
        for a, b in zip(grads0, grads1, strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_activation_checkpointing_refuses_running_statistics_and_other_models():
    cfg = config.model("gcn", hidden=HIDDEN)
    for norm, kind in [("batchnorm", "BatchNorm"), ("groupnorm", "DiffGroupNorm"),
                       ("combnorm", "CombNorm")]:
        model = models.build(cfg, config.norm(norm), 3, IN, OUT)
        with pytest.raises(ValueError, match=f"norm {kind}: the recomputed forward would "
                                             "update its running statistics twice"):
            models.checkpoint_layers(model)
        assert not model.checkpoint_layers
    with pytest.raises(ValueError, match="models that do: gcn, gcn_res"):
        models.checkpoint_layers(models.build(config.group("model", {"name": "mlp"}), None, 2, IN,
                                              OUT))
    model = models.build(cfg, config.norm("nodenorm"), 3, IN, OUT)
    state = torch.get_rng_state()
    models.checkpoint_layers(model)
    assert model.checkpoint_layers
    assert torch.equal(state, torch.get_rng_state())  # checking draws nothing


def test_unknown_skip_and_depth_are_refused():
    with pytest.raises(ValueError, match="unknown skip 'highway'; valid: none, residual"):
        TricksGCN(8, 8, 3, 2, skip="highway")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        GCN(8, 8, 3, 0)
