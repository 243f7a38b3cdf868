"""Seed-native GAT and GGNN (issue 17): one seed equals PyG's ``GATConv`` / ``GatedGraphConv``
with the same weights, the initial weights are the draws of the PyG / torch layers built after
``torch.manual_seed(seed)`` (the old loop models' construction order), and S seeds computed
together equal S one-seed runs, forward and gradients, with the same injected dropout masks.

Tolerances: float64 throughout where two computations must agree; each logit is a few hundred
floating-point operations deep (a softmax over a handful of edges, sums over 8-wide products,
a few layers), so rounding differences are O(1e-14) relative; ``rtol = 1e-10`` leaves four
orders of margin and still catches any real difference (a wrong mask, a seed mixed up, a
missing term all move results by O(1e-2) or more).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import GATConv, GatedGraphConv

from gdepth import config, models
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gat import GAT, attention_edges
from gdepth.models.ggnn import GGNN
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.one_seed import OneSeed
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import concat_seeds, select_seeds
from gdepth.norms import build_norm

N, IN, OUT, D = 17, 6, 3, 8
TOL = {"rtol": 1e-10, "atol": 1e-12}
SEEDS = [3, 11, 5]


def directed_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique directed edges without self loops, features ``[N, IN]``."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 50), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]].unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen, dtype=torch.get_default_dtype())


def cfg(name: str, **kw):
    base = {"name": name, "hidden": D}
    if name == "gat":
        base.update(heads=2, output_heads=2)
    return config.group("model", {**base, **kw})


# ---------------------------------------------------------------- S = 1 equals PyG's layers


def copy_gat(conv, s: int) -> GATConv:
    ref = GATConv(conv.d_in, conv.channels, heads=conv.heads, concat=conv.concat,
                  dropout=conv.attention_dropout)
    with torch.no_grad():
        ref.lin.weight.copy_(conv.weight[s].t())
        ref.att_src.copy_(conv.att_src[s:s + 1])
        ref.att_dst.copy_(conv.att_dst[s:s + 1])
        ref.bias.copy_(conv.bias[s])
    return ref


def reference_gat(native: GAT, s: int, x, edge_index, act, training: bool):
    convs = [copy_gat(c, s).train(training) for c in native.convs]
    for conv in convs[:-1]:
        x = act(conv(x, edge_index))
    return convs[-1](x, edge_index)


def copy_ggc(native: GGNN, s: int) -> GatedGraphConv:
    ref = GatedGraphConv(D, num_layers=native.ggc.num_layers)
    with torch.no_grad():
        ref.weight.copy_(native.ggc.weight[s])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref.rnn, name).copy_(getattr(native.ggc.rnn, name)[s])
    return ref


def reference_ggnn(native: GGNN, s: int, x, edge_index, ref=None):
    ref = copy_ggc(native, s) if ref is None else ref
    lin_in, lin_out = native.lin_in, native.lin_out
    h = x @ lin_in.weight[s] + lin_in.bias[s]
    return ref(h, edge_index) @ lin_out.weight[s] + lin_out.bias[s]


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("kw", [{"activation": "elu"}, {"output_heads": 1, "heads": 4}])
def test_gat_one_seed_equals_pyg_gatconv(float64, kw, depth, training):
    edge_index, x = directed_graph(depth)
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    model = models.build_seeded(cfg("gat", dropout=0.0, attention_dropout=0.0, **kw), None,
                                depth, IN, OUT, seeds=[depth]).train(training)
    out = model(StackedInput(x), Propagation(adj))
    assert out.shape == (N, 1, OUT)
    act = F.elu if kw.get("activation") == "elu" else F.relu
    expected = reference_gat(model, 0, x, edge_index, act, training)
    torch.testing.assert_close(out[:, 0], expected, **TOL)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("depth", [1, 4])
def test_ggnn_one_seed_equals_pyg_gatedgraphconv(float64, depth, training):
    edge_index, x = directed_graph(depth)
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    model = models.build_seeded(cfg("ggnn", dropout=0.0), None, depth, IN, OUT,
                                seeds=[depth]).train(training)
    out = model(StackedInput(x), Propagation(adj))
    torch.testing.assert_close(out[:, 0], reference_ggnn(model, 0, x, edge_index), **TOL)


def test_gat_gradients_equal_pygs(float64):
    """The hand-written backward passes (edge softmax, attention-weighted sum) against autograd
    through PyG's GATConv: every parameter's gradient and the input's."""
    edge_index, x = directed_graph(5)
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    model = models.build_seeded(cfg("gat", dropout=0.0, attention_dropout=0.0), None, 3, IN,
                                OUT, seeds=[5]).train()
    weights = torch.randn(N, OUT, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    xg = x.clone().requires_grad_()
    convs = [copy_gat(c, 0).train() for c in model.convs]
    h = xg
    for conv in convs[:-1]:
        h = F.relu(conv(h, edge_index))
    (convs[-1](h, edge_index) * weights).sum().backward()
    # the model's input features take no gradient: the input's is checked on a second layer
    (model(StackedInput(x), Propagation(adj))[:, 0] * weights).sum().backward()
    for conv, ref in zip(model.convs, convs, strict=True):
        torch.testing.assert_close(conv.weight.grad[0], ref.lin.weight.grad.t(), **TOL)
        torch.testing.assert_close(conv.att_src.grad[0], ref.att_src.grad[0], **TOL)
        torch.testing.assert_close(conv.att_dst.grad[0], ref.att_dst.grad[0], **TOL)
        torch.testing.assert_close(conv.bias.grad[0], ref.bias.grad, **TOL)
    conv, ref = model.convs[1], convs[1]
    z = torch.randn(N, 1, D, dtype=torch.float64, requires_grad=True)
    zr = z.detach()[:, 0].clone().requires_grad_()
    edges = model.edges(adj)
    (conv(conv.transform(z), edges, True)[:, 0] * weights.sum()).sum().backward()
    (ref(zr, edge_index) * weights.sum()).sum().backward()
    torch.testing.assert_close(z.grad[:, 0], zr.grad, **TOL)


def test_ggnn_gradients_equal_pygs(float64):
    """The GRU cell and the stacked sum aggregation against autograd through PyG's
    GatedGraphConv and torch's GRUCell: every parameter's gradient."""
    edge_index, x = directed_graph(6)
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    model = models.build_seeded(cfg("ggnn", dropout=0.0), None, 3, IN, OUT, seeds=[6]).train()
    weights = torch.randn(N, OUT, generator=torch.Generator().manual_seed(2),
                          dtype=torch.float64)
    ref = copy_ggc(model, 0)
    (reference_ggnn(model, 0, x, edge_index, ref) * weights).sum().backward()
    lin_grads = {n: p.grad.clone() for n, p in model.named_parameters() if "lin" in n}
    model.zero_grad()
    (model(StackedInput(x), Propagation(adj))[:, 0] * weights).sum().backward()
    torch.testing.assert_close(model.ggc.weight.grad[0], ref.weight.grad, **TOL)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        torch.testing.assert_close(getattr(model.ggc.rnn, name).grad[0],
                                   getattr(ref.rnn, name).grad, **TOL, msg=name)
    for n, g in lin_grads.items():
        torch.testing.assert_close(dict(model.named_parameters())[n].grad, g, **TOL, msg=n)


@pytest.mark.parametrize("name", ["gat", "ggnn"])
def test_only_the_structure_of_adj_counts(float64, name):
    """GAT and GGNN read the edges of adj, not its values or dtype, and handle self loops
    themselves (GAT adds one per node, GGNN drops them): all of these adjacencies give one
    result."""
    edge_index, x = directed_graph()
    model = models.build_seeded(cfg(name), None, 2, IN, OUT, seeds=[0]).eval()
    base = normalized_adjacency(edge_index, N).to(torch.float64)
    out = model(StackedInput(x), Propagation(base))
    for adj in (normalized_adjacency(edge_index, N, self_loops=False, normalization="row"),
                base.to_sparse_coo() * 7.0, normalized_adjacency(edge_index, N)):  # float32
        torch.testing.assert_close(model(StackedInput(x), Propagation(adj)), out, **TOL)


def test_attention_edges_are_gatconvs_edge_set_sorted_by_target():
    edge_index, _ = directed_graph()
    edges = attention_edges(normalized_adjacency(edge_index, N))
    got = set(zip(edges.src.tolist(), edges.dst.tolist(), strict=True))
    want = set(map(tuple, edge_index.t().tolist())) | {(i, i) for i in range(N)}
    assert got == want and len(got) == edges.src.numel()
    assert torch.equal(edges.dst, edges.dst.sort().values)
    assert torch.equal(edges.ptr[1:] - edges.ptr[:-1], torch.bincount(edges.dst, minlength=N))


@pytest.mark.parametrize("name", ["gat", "ggnn"])
def test_structure_is_cached_per_adjacency_object(name):
    edge_index, x = directed_graph()
    adj = normalized_adjacency(edge_index, N)
    model = models.build_seeded(cfg(name), None, 2, IN, OUT, seeds=[0]).eval()
    cache = model.edges if name == "gat" else model.adjacency
    model(StackedInput(x), Propagation(adj))
    first = cache._value
    model(StackedInput(x), Propagation(adj))
    assert cache._value is first
    model(StackedInput(x), Propagation(normalized_adjacency(edge_index, N)))
    assert cache._value is not first


# ------------------------------------------------------------ initial weights: the old draws


def old_gat_draws(seed: int, depth: int, heads: int, output_heads: int) -> list[GATConv]:
    """The GATConv layers the PyG loop model built after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    dims = [IN] + [D] * (depth - 1)
    convs = [GATConv(a, D // heads, heads=heads, concat=True, dropout=0.6) for a in dims[:-1]]
    return convs + [GATConv(dims[-1], OUT, heads=output_heads, concat=False, dropout=0.6)]


def old_ggnn_draws(seed: int, depth: int) -> tuple[nn.Linear, GatedGraphConv, nn.Linear]:
    """lin_in, GatedGraphConv, lin_out as the PyG loop model built them after the seed."""
    torch.manual_seed(seed)
    lin_in = nn.Linear(IN, D)
    ggc = GatedGraphConv(D, num_layers=depth, aggr="add")
    return lin_in, ggc, nn.Linear(D, OUT)


@pytest.mark.parametrize("norm", [None, config.norm("layernorm")])
@pytest.mark.parametrize("depth", [1, 3])
def test_gat_initial_weights_are_the_pyg_models_draws(depth, norm):
    model = models.build_seeded(cfg("gat"), norm, depth, IN, OUT, seeds=SEEDS)
    for s, seed in enumerate(SEEDS):
        for conv, ref in zip(model.convs, old_gat_draws(seed, depth, 2, 2), strict=True):
            assert torch.equal(conv.weight[s], ref.lin.weight.t())
            assert torch.equal(conv.att_src[s], ref.att_src[0])
            assert torch.equal(conv.att_dst[s], ref.att_dst[0])
            assert torch.equal(conv.bias[s], ref.bias)
    # the one-seed model of the registry starts where the same seed's column does
    torch.manual_seed(SEEDS[1])
    one = models.build(cfg("gat"), norm, depth, IN, OUT)
    assert isinstance(one, OneSeed)
    assert torch.equal(one.native.convs[0].weight[0], model.convs[0].weight[1])


@pytest.mark.parametrize("depth", [1, 3])
def test_ggnn_initial_weights_are_the_pyg_models_draws(depth):
    model = models.build_seeded(cfg("ggnn"), config.norm("layernorm"), depth, IN, OUT,
                                seeds=SEEDS)
    for s, seed in enumerate(SEEDS):
        lin_in, ggc, lin_out = old_ggnn_draws(seed, depth)
        for seeded, ref in ((model.lin_in, lin_in), (model.lin_out, lin_out)):
            assert torch.equal(seeded.weight[s], ref.weight.t())
            assert torch.equal(seeded.bias[s], ref.bias)
        assert torch.equal(model.ggc.weight[s], ggc.weight)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert torch.equal(getattr(model.ggc.rnn, name)[s], getattr(ggc.rnn, name))
    torch.manual_seed(SEEDS[2])
    one = models.build(cfg("ggnn"), None, depth, IN, OUT)
    assert torch.equal(one.native.ggc.rnn.weight_hh[0], model.ggc.rnn.weight_hh[2])


def test_weight_parameters_are_what_the_loop_models_named_weight():
    gat = models.build_seeded(cfg("gat"), config.norm("layernorm"), 3, IN, OUT, seeds=[0, 1])
    names = {id(p): n for n, p in gat.named_parameters()}
    got = [names[id(p)] for p in gat.weight_parameters()]
    # GATConv: lin.weight only (att_src / att_dst / bias are not named weight), norms' weight
    assert [n for n in got if n.startswith("convs")] == [f"convs.{i}.weight" for i in range(3)]
    per_norm = sum("weight" in n for n, _ in build_norm(config.norm("layernorm"), D)
                   .named_parameters())
    assert per_norm and len(got) == 3 + 2 * per_norm  # and the two norms' weights
    ggnn = models.build_seeded(cfg("ggnn"), None, 2, IN, OUT, seeds=[0, 1])
    names = {id(p): n for n, p in ggnn.named_parameters()}
    assert [names[id(p)] for p in ggnn.weight_parameters()] == [
        "lin_in.weight", "ggc.weight", "ggc.rnn.weight_ih", "ggc.rnn.weight_hh",
        "lin_out.weight"]
    for model, name in ((gat, "GAT"), (ggnn, "GGNN")):
        with pytest.raises(NotBatchable, match=f"model {name} has no first_layer"):
            model.first_layer_parameters()


# ----------------------------------------------- S seeds together equal S one-seed runs


class Masks:
    """An injected ``mask_fn``: records the masks of an S-seed run (drawn from its own
    generator), then replays seed ``s``'s slice of each for a one-seed run."""

    def __init__(self, num_seeds: int) -> None:
        self.num_seeds, self.calls = num_seeds, []
        self.gen = torch.Generator().manual_seed(1234)

    def draw(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        keep = torch.rand((self.num_seeds, *shape), generator=self.gen) >= p
        self.calls.append(keep.to(torch.float64) / (1.0 - p))
        return self.calls[-1]

    def replay(self, s: int):
        calls = iter(self.calls)

        def mask_fn(shape: tuple[int, ...], p: float) -> torch.Tensor:
            mask = next(calls)
            assert tuple(mask.shape[1:]) == tuple(shape)
            return mask[s:s + 1]
        return mask_fn


def run(model, x, adj, weights):
    """Forward in training mode and the backward of ``sum(out * weights)``: logits and each
    parameter's gradient by name."""
    model.zero_grad()
    out = model(StackedInput(x), Propagation(adj))
    (out * weights).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(("name", "kw", "norm"), [
    ("gat", {"dropout": 0.5, "attention_dropout": 0.6}, None),
    ("gat", {"dropout": 0.3, "attention_dropout": 0.25, "activation": "elu"},
     config.norm("pairnorm")),
    ("ggnn", {"dropout": 0.5}, None),
    ("ggnn", {"dropout": 0.4}, config.norm("batchnorm")),
])
def test_seeds_together_equal_seeds_apart(float64, name, kw, norm, sparse):
    edge_index, x = directed_graph(7)
    x = x.relu().to_sparse_csr() if sparse else x
    adj = normalized_adjacency(edge_index, N).to(torch.float64)
    depth = 3
    together = models.build_seeded(cfg(name, **kw), norm, depth, IN, OUT, seeds=SEEDS).train()
    masks = Masks(len(SEEDS))
    together.mask_fn = masks.draw
    weights = torch.randn(N, len(SEEDS), OUT, generator=torch.Generator().manual_seed(9),
                          dtype=torch.float64)
    out, grads = run(together, x, adj, weights)
    assert masks.calls, "no dropout mask was asked for"
    for s, seed in enumerate(SEEDS):
        alone = models.build_seeded(cfg(name, **kw), norm, depth, IN, OUT, seeds=[seed])
        alone.train().mask_fn = masks.replay(s)
        out1, grads1 = run(alone, x, adj, weights[:, s:s + 1])
        torch.testing.assert_close(out[:, s:s + 1], out1, **TOL)
        assert grads.keys() == grads1.keys()
        for n, g in grads.items():  # seed s's slice (a seed-major or seed-concatenated tensor)
            torch.testing.assert_close(g.reshape(len(SEEDS), -1)[s], grads1[n].reshape(-1),
                                       **TOL, msg=n)


@pytest.mark.parametrize("name", ["gat", "ggnn"])
def test_concat_and_select_seeds_round_trip(float64, name):
    """engine.stack concatenates one-seed natives: the same model as building the seeds
    together; select_seeds cuts one back out."""
    edge_index, x = directed_graph(2)
    adj = Propagation(normalized_adjacency(edge_index, N).to(torch.float64))
    together = models.build_seeded(cfg(name), None, 2, IN, OUT, seeds=SEEDS).eval()
    ones = [models.build_seeded(cfg(name), None, 2, IN, OUT, seeds=[s]) for s in SEEDS]
    joined = concat_seeds(ones).eval()
    assert joined.num_seeds == len(SEEDS)
    out = together(StackedInput(x), adj)
    torch.testing.assert_close(joined(StackedInput(x), adj), out, **TOL)
    torch.testing.assert_close(select_seeds(together, [2])(StackedInput(x), adj),
                               out[:, 2:], **TOL)


@pytest.mark.parametrize("name", ["gat", "ggnn"])
def test_one_seed_interface(name):
    """The registry's ``build`` is the per-seed model ``forward(x, adj) -> [N, C]``."""
    edge_index, x = directed_graph()
    adj = normalized_adjacency(edge_index, N)
    torch.manual_seed(4)
    one = models.build(cfg(name), None, 2, IN, OUT).eval()
    native = models.build_seeded(cfg(name), None, 2, IN, OUT, seeds=[4]).eval()
    assert one(x, adj).shape == (N, OUT)
    torch.testing.assert_close(one(x, adj), native(StackedInput(x), Propagation(adj))[:, 0])
