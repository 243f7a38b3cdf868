"""Seed-native DropEdge backbones (resgcn, densegcn, incepgcn) and GIN (issue 17).

Three properties, each in float64:

* S = 1 computes what PyG's layers compute with the same weights copied in: ``GCNConv
  (normalize=False)`` wired as the DropEdge formulas (module docstring of
  :mod:`gdepth.models.dropedge_backbones`), ``GINConv`` on the original directed edges; in
  training mode with the dropout masks the model drew (injected), forward and input gradient.
* Seed s's initial weights are the ones the PyG loop model drew after ``torch.manual_seed(s)``:
  the reference re-creates that model's layers in its construction order (``GCNConv`` draws
  Glorot twice, its ``Linear`` when built and ``reset_parameters`` again; ``GINConv`` draws its
  MLP twice the same way), whichever other seeds share the batch.
* S = 3 seeds are three S = 1 runs: same logits and gradients with each seed's own masks.

Tolerances: every value is a float64 sum of at most a few hundred products of O(1) terms, a
few hundred ulps (~1e-13 relative) apart at worst when the summation order differs (batched vs
single ``bmm``, sparse vs dense products); 1e-10 relative (1e-12 absolute near 0) has three
orders of margin and is 1e6 times tighter than any float32 difference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv, GINConv

from gdepth import config, models, train
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gcn_tricks import SeedGCNConv
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import concat_seeds
from gdepth.norms import build_norm

N, IN, OUT, D = 15, 6, 3, 8
TOL = {"rtol": 1e-10, "atol": 1e-12}
SEEDS = [4, 0, 11]


def directed_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique directed edges without self loops; features float64."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 45), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]].unique(dim=1)
    return edge_index, torch.randn(N, IN, generator=gen, dtype=torch.float64)


def cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


def norm_cfg(norm: str):
    return None if norm == "none" else config.norm(norm)


class SeedMasks:
    """``mask_fn`` for a model of ``seeds``: each seed draws from its own generator, so a seed
    gets the same masks in an S-seed model as in its one-seed model; ``drawn`` keeps them."""

    def __init__(self, seeds) -> None:
        self.gens = [torch.Generator().manual_seed(1000 + s) for s in seeds]
        self.drawn: list[torch.Tensor] = []

    def __call__(self, shape, p):
        mask = torch.stack([(torch.rand(shape, generator=g, dtype=torch.float64) >= p).double()
                            / (1 - p) for g in self.gens])
        self.drawn.append(mask)
        return mask


def native(name, depth, seeds, norm="none", **kw):
    return models.build_seeded(cfg(name, **kw), norm_cfg(norm), depth, IN, OUT, seeds).double()


# --- DropEdge backbones: the PyG reference -------------------------------------------------

DROPEDGE = [("resgcn", 6, {"nbaseblocklayer": 2}), ("resgcn", 5, {}), ("densegcn", 5, {}),
            ("incepgcn", 5, {})]


def dropedge_layout(name: str, depth: int, nbaseblocklayer: int = 1) -> list[list[int]]:
    """The hidden units' chains as the formulas wire them: resgcn blocks, densegcn one chain,
    incepgcn branches of 1..k (each list: one chain, its length)."""
    k = depth - 2
    if name == "resgcn":
        b = nbaseblocklayer or k
        return [[b] for _ in range(k // b)]
    if name == "densegcn":
        return [[k]]
    return [[j] for j in range(1, k + 1)]


def old_dropedge_layers(name, depth, kw, norm, seed):
    """The PyG loop model's layers, built in its order after ``torch.manual_seed(seed)``:
    ``(GCNConv, norm)`` per unit (input first), then the output ``GCNConv``."""
    torch.manual_seed(seed)

    def unit(a):
        return GCNConv(a, D, normalize=False), build_norm(norm_cfg(norm), D)

    units = [unit(IN)]
    for (length,) in dropedge_layout(name, depth, kw.get("nbaseblocklayer", 1)):
        units += [unit(D) for _ in range(length)]
    out_in = D if name == "resgcn" else D * (depth - 1)
    return units, GCNConv(out_in, OUT, normalize=False)


def pyg_dropedge(name, depth, kw, units, output, x, adj, masks, act):
    """``u(H) = drop(act(norm(GCNConv(H, adj))))`` wired as the module docstring says, with the
    masks in the order the model drew them (None: eval)."""
    masks = None if masks is None else list(masks)
    it = iter(units)

    def u(h):
        conv, norm = next(it)
        h = act(norm(conv(h, adj)))
        return h if masks is None else h * masks.pop(0)

    h0 = u(x)
    layout = dropedge_layout(name, depth, kw.get("nbaseblocklayer", 1))
    if name == "resgcn":
        h = h0
        for (length,) in layout:
            y = h
            for _ in range(length):
                y = u(y)
            h = y + h
        z = h
    elif name == "densegcn":
        hs = [h0]
        for _ in range(layout[0][0]):
            hs.append(u(hs[-1]))
        z = torch.cat(hs, dim=1)
    else:
        outs = [h0]
        for (length,) in layout:
            y = h0
            for _ in range(length):
                y = u(y)
            outs.append(y)
        z = torch.cat(outs, dim=1)
    assert masks is None or not masks  # every mask drawn was used
    return output(z, adj)


def copy_gcnconv(conv: GCNConv, seed_conv: SeedGCNConv, s: int = 0) -> GCNConv:
    with torch.no_grad():
        conv.lin.weight.copy_(seed_conv.weight[s].t())
        conv.bias.copy_(seed_conv.bias[s])
    return conv


@pytest.mark.parametrize(("name", "depth", "kw"), DROPEDGE, ids=str)
@pytest.mark.parametrize(("norm", "activation"), [("none", "relu"), ("nodenorm", "relu"),
                                                  ("pairnorm", "tanh"), ("batchnorm", "elu")])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_dropedge_one_seed_equals_pyg_gcnconv(name, depth, kw, norm, activation, training):
    edge_index, x = directed_graph()
    adj = normalized_adjacency(edge_index, N).double()
    model = native(name, depth, [0], norm, activation=activation, **kw).train(training)
    model.mask_fn = masks = SeedMasks([0])
    x = x.clone().requires_grad_(True)
    out = model(StackedInput(x), Propagation(adj))[:, 0]
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    convs = [m for m in model.modules() if isinstance(m, SeedGCNConv)]
    units = [(copy_gcnconv(GCNConv(c.d_in, c.d_out, normalize=False), c),
              build_norm(norm_cfg(norm), D).double().train(training)) for c in convs[:-1]]
    output = copy_gcnconv(GCNConv(convs[-1].d_in, OUT, normalize=False), convs[-1])
    units, output = [(c.double(), n) for c, n in units], output.double()
    act = {"relu": torch.relu, "tanh": torch.tanh, "elu": F.elu}[activation]
    drawn = [m[0] for m in masks.drawn] if training else None
    assert len(masks.drawn) == (len(convs) - 1 if training else 0)
    expected = pyg_dropedge(name, depth, kw, units, output, x, adj, drawn, act)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), x)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(grad, expected_grad, **TOL)


@pytest.mark.parametrize(("name", "depth", "kw"), DROPEDGE, ids=str)
def test_dropedge_initial_weights_are_the_pyg_loop_models(name, depth, kw):
    """``build_seeded(seeds=[a, b, c])`` slice s, ``build_seeded(seeds=[s])`` and
    ``models.build`` after ``torch.manual_seed(s)`` all hold the PyG loop model's draws."""
    batch = native(name, depth, SEEDS, "batchnorm", **kw)
    for i, seed in enumerate(SEEDS):
        units, output = old_dropedge_layers(name, depth, kw, "batchnorm", seed)
        expected = [c for c, _ in units] + [output]
        torch.manual_seed(seed)
        loop = models.build(cfg(name, **kw), norm_cfg("batchnorm"), depth, IN, OUT).native
        for model, s in ((batch, i), (native(name, depth, [seed], "batchnorm", **kw), 0),
                         (loop, 0)):
            convs = [m for m in model.modules() if isinstance(m, SeedGCNConv)]
            assert len(convs) == len(expected)
            for ours, ref in zip(convs, expected, strict=True):
                assert torch.equal(ours.weight[s].float(), ref.lin.weight.t())
                assert torch.equal(ours.bias[s].float(), ref.bias)
        # the L1 penalty's tensors: what the loop model named *weight* (convs, BatchNorm scale)
        ref_l1 = sum(p.abs().sum() for c, n in units for m in (c, n)
                     for name_, p in m.named_parameters() if "weight" in name_)
        ref_l1 = ref_l1 + output.lin.weight.abs().sum()
        assert torch.allclose(train.l1_penalty(models.build_seeded(
            cfg(name, **kw), norm_cfg("batchnorm"), depth, IN, OUT, [seed]), 1), ref_l1)


# --- GIN: the PyG reference ------------------------------------------------------------------


def old_gin_layers(depth, train_eps, activation, norm, seed):
    """The PyG loop model's layers in its order after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    convs = [GINConv(torch.nn.Sequential(torch.nn.Linear(a, D), act(), torch.nn.Linear(D, D)),
                     train_eps=train_eps) for a in [IN] + [D] * (depth - 1)]
    norms = [build_norm(norm_cfg(norm), D) for _ in range(depth)]
    return convs, norms, torch.nn.Linear(D, OUT)


def copy_linear(lin, seed_linear, s: int = 0):
    with torch.no_grad():
        lin.weight.copy_(seed_linear.weight[s].t())
        lin.bias.copy_(seed_linear.bias[s])
    return lin


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(("norm", "activation", "dropout_layers"),
                         [("none", "relu", "all"), ("batchnorm", "tanh", "io"),
                          ("nodenorm", "relu", "hidden")])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_gin_one_seed_equals_pyg_ginconv(norm, activation, dropout_layers, sparse, training):
    edge_index, x = directed_graph(1)
    x = x.relu()
    depth = 3
    adj = normalized_adjacency(edge_index, N).double()
    model = native("gin", depth, [0], norm, activation=activation, train_eps=True,
                   dropout_layers=dropout_layers).train(training)
    with torch.no_grad():
        for conv in model.convs:
            conv.eps.uniform_(-0.5, 0.5)
    model.mask_fn = masks = SeedMasks([0])
    features = x.to_sparse_csr() if sparse else x
    out = model(StackedInput(features), Propagation(adj))[:, 0]
    convs, norms, lin_out = old_gin_layers(depth, True, activation, norm, 0)
    convs, lin_out = [c.double() for c in convs], lin_out.double()  # then copy: float64 eps
    for conv, ours in zip(convs, model.convs, strict=True):
        copy_linear(conv.nn[0], ours.lin1), copy_linear(conv.nn[2], ours.lin2)
        conv.eps.data.copy_(ours.eps[0])
    copy_linear(lin_out, model.lin_out)
    act = {"relu": torch.relu, "tanh": torch.tanh}[activation]
    drawn = [m[0] for m in masks.drawn]
    at = {"all": range(depth + 1), "io": (0, depth), "hidden": range(1, depth + 1)}
    assert len(drawn) == (len(at[dropout_layers]) if training else 0)
    h = x
    for i, (conv, norm_) in enumerate(zip(convs, norms, strict=True)):
        if training and i in at[dropout_layers]:
            # the first mask acts on the stored values of sparse features (zeros stay zero)
            mask = drawn.pop(0)
            h = (torch.sparse_csr_tensor(features.crow_indices(), features.col_indices(),
                                         features.values() * mask, features.shape).to_dense()
                 if sparse and i == 0 else h * mask)
        h = act(norm_.double().train(training)(conv(h, edge_index)))
    if training and depth in at[dropout_layers]:
        h = h * drawn.pop(0)
    torch.testing.assert_close(out, lin_out(h), **TOL)


@pytest.mark.parametrize("train_eps", [False, True])
def test_gin_initial_weights_are_the_pyg_loop_models(train_eps):
    depth = 3
    batch = native("gin", depth, SEEDS, "batchnorm", train_eps=train_eps)
    for i, seed in enumerate(SEEDS):
        convs, norms, lin_out = old_gin_layers(depth, train_eps, "relu", "batchnorm", seed)
        torch.manual_seed(seed)
        loop = models.build(cfg("gin", train_eps=train_eps), norm_cfg("batchnorm"), depth, IN,
                            OUT).native
        for model, s in ((batch, i), (native("gin", depth, [seed], "batchnorm",
                                             train_eps=train_eps), 0), (loop, 0)):
            for ours, ref in zip(model.convs, convs, strict=True):
                for lin, ref_lin in ((ours.lin1, ref.nn[0]), (ours.lin2, ref.nn[2])):
                    assert torch.equal(lin.weight[s].float(), ref_lin.weight.t())
                    assert torch.equal(lin.bias[s].float(), ref_lin.bias)
                assert float(ours.eps[s].detach()) == float(ref.eps.detach()) == 0.0
                assert isinstance(ours.eps, torch.nn.Parameter) == train_eps
            assert torch.equal(model.lin_out.weight[s].float(), lin_out.weight.t())
            assert torch.equal(model.lin_out.bias[s].float(), lin_out.bias)
        ref_l1 = sum(p.abs().sum() for m in [*convs, *norms, lin_out]
                     for name_, p in m.named_parameters() if "weight" in name_)
        assert torch.allclose(train.l1_penalty(models.build_seeded(
            cfg("gin", train_eps=train_eps), norm_cfg("batchnorm"), depth, IN, OUT, [seed]),
            1), ref_l1)
    # parameters counted as the loop model's (eps a parameter only when learned)
    one = native("gin", depth, [SEEDS[-1]], "batchnorm", train_eps=train_eps)
    assert models.count_parameters(one) == sum(
        p.numel() for m in [*convs, *norms, lin_out] for p in m.parameters())


# --- S seeds are S one-seed runs -------------------------------------------------------------

EQUIVALENCE = [(name, depth, kw, norm) for name, depth, kw in DROPEDGE
               for norm in ("none", "batchnorm")] + [
    ("resgcn", 5, {"activation": "tanh"}, "pairnorm"),
    ("incepgcn", 5, {}, "nodenorm"),
    ("gin", 3, {"train_eps": True}, "none"),
    ("gin", 3, {}, "batchnorm"),
    ("gin", 2, {"dropout_layers": "io", "activation": "tanh"}, "pairnorm"),
]


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize(("name", "depth", "kw", "norm"), EQUIVALENCE, ids=str)
def test_three_seeds_are_three_one_seed_runs(name, depth, kw, norm, sparse):
    edge_index, x = directed_graph(2)
    adj = Propagation(normalized_adjacency(edge_index, N).double())
    x_in = StackedInput(x.relu().to_sparse_csr() if sparse else x)
    y = torch.arange(N) % OUT

    def run(seeds):
        model = native(name, depth, seeds, norm, **kw).train()
        if name == "gin" and kw.get("train_eps"):
            with torch.no_grad():  # a learned eps away from its initial 0, per seed
                for conv in model.convs:
                    conv.eps.copy_(torch.tensor([[0.1 * s - 0.3] for s in seeds]))
        model.mask_fn = SeedMasks(seeds)
        out = model(x_in, adj)
        sum(F.cross_entropy(out[:, s], y) for s in range(len(seeds))).backward()
        return model, out.detach()

    batch, out = run(SEEDS)
    assert out.shape == (N, len(SEEDS), OUT)
    for i, seed in enumerate(SEEDS):
        single, single_out = run([seed])
        torch.testing.assert_close(out[:, i], single_out[:, 0], **TOL)
        named = dict(single.named_parameters())
        for pname, p in batch.named_parameters():  # seed-major: slice i is seed i's
            assert p.shape[0] == len(SEEDS), pname
            torch.testing.assert_close(p.grad[i], named[pname].grad[0], **TOL, msg=pname)
        buffers = dict(single.named_buffers())  # BatchNorm's running statistics, per seed
        for bname, b in batch.named_buffers():
            if b.dim() > 0:
                torch.testing.assert_close(b[i], buffers[bname][0], **TOL, msg=bname)


@pytest.mark.parametrize(("name", "depth"), [("resgcn", 4), ("densegcn", 4), ("incepgcn", 4),
                                             ("gin", 2)])
def test_concat_seeds_of_the_one_seed_models_is_the_seeded_model(name, depth):
    """``concat_seeds`` of the one-seed models built per seed is ``build_seeded(seeds)``."""
    loop = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        loop.append(models.build(cfg(name), norm_cfg("batchnorm"), depth, IN, OUT))
    stacked = concat_seeds([m.native for m in loop])
    batch = models.build_seeded(cfg(name), norm_cfg("batchnorm"), depth, IN, OUT, SEEDS)
    assert type(stacked) is type(batch) and stacked.num_seeds == len(SEEDS)
    for (n1, p1), (n2, p2) in zip(stacked.named_parameters(), batch.named_parameters(),
                                  strict=True):
        assert n1 == n2 and torch.equal(p1, p2)


@pytest.mark.parametrize(("name", "depth", "cls"), [("resgcn", 4, "ResGCN"),
                                                    ("incepgcn", 4, "IncepGCN"), ("gin", 2, "GIN")])
def test_no_first_layer_and_rows(name, depth, cls):
    """No ``first_layer()`` (Kipf & Welling's decay is refused with the loop's message, batched
    and per seed); ``rows`` selects logits rows."""
    message = f"train.weight_decay_first_only=true but model {cls} has no first_layer()"
    model = native(name, depth, SEEDS)
    with pytest.raises(NotBatchable, match=message):
        model.first_layer_parameters()
    one = models.build(cfg(name), None, depth, IN, OUT)
    train_cfg = config.make(config.TrainConfig, name="test", optimizer="adam", lr=0.01,
                                  weight_decay=5e-4, weight_decay_first_only=True)
    with pytest.raises(ValueError, match=message):
        train.make_optimizer(one, train_cfg)
    edge_index, x = directed_graph()
    adj = Propagation(normalized_adjacency(edge_index, N).double())
    model.eval()
    rows = torch.tensor([3, 0, 7])
    torch.testing.assert_close(model(StackedInput(x), adj, rows), model(StackedInput(x), adj)[rows])


def test_gin_neighbour_sum_is_the_edge_structure():
    """The neighbour matrix has a 1 per directed edge j -> i at [i, j], no diagonal, whatever
    the normalized adjacency's weights and self loops."""
    from gdepth.models.gin import neighbour_matrix

    edge_index, _ = directed_graph()
    for self_loops in (True, False):
        adj = normalized_adjacency(edge_index, N, self_loops=self_loops)
        a = neighbour_matrix(adj)
        assert a.layout == torch.sparse_csr
        expected = torch.zeros(N, N)
        expected[edge_index[1], edge_index[0]] = 1.0
        assert torch.equal(a.to_dense(), expected)
