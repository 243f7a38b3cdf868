"""Seed-native ``appnp``, ``sgc``, ``sign`` and ``mlp`` (issue 17): one seed equals PyG (or the
formula written with torch ops) with the same weights; seed s starts from the weights the
one-seed ``torch.nn.Linear`` model drew after ``torch.manual_seed(s)``; S seeds are S runs of
one seed, logits and gradients, with the same dropout masks; SGC's row-wise scoring is the full
forward's rows.

Tolerances (float64, eps = 2.2e-16): the compared computations are the same sums, reordered at
most (a product's blocking, ``embedding_bag`` against ``torch.sparse.mm``, up to 64 propagation
steps on rows of <= 15 terms), so they agree to a few hundred eps relative: ``rtol = 1e-10``
with ``atol = 1e-12`` for entries that cancel to ~0 leaves a margin of ~10^3 over that bound.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch import nn
from torch_geometric.data import Data
from torch_geometric.nn import APPNP, SGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor

from gdepth import config, models
from gdepth.diagnostics.run import layer_outputs
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import NotBatchable, StackedInput
from gdepth.nn.one_seed import OneSeed
from gdepth.nn.propagation import Propagation
from gdepth.nn.seeds import concat_seeds, select_seeds
from gdepth.norms import build_norm

N, IN, OUT, D = 15, 6, 3, 8
RTOL, ATOL = 1e-10, 1e-12
SEEDS = [3, 0, 11]
NORMS = [None, config.norm("batchnorm"), config.norm("nodenorm")]


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=RTOL, atol=ATOL)


def graph(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random undirected graph: ``edge_index``, its normalized adjacency, features."""
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    x = torch.randn(N, IN, generator=gen, dtype=dtype)
    x[x < -0.5] = 0.0  # a few zeros: a sparse X has fewer stored values than entries
    # gdepth's normalized adjacency, computed in ``dtype`` (normalized_adjacency's is float32)
    loops, weight = gcn_norm(edge_index, None, N, add_self_loops=True, dtype=dtype)
    adj = to_torch_csr_tensor(loops.flip(0), weight, size=(N, N))
    ours = normalized_adjacency(edge_index, N)
    assert torch.equal(adj.crow_indices(), ours.crow_indices())
    assert torch.equal(adj.col_indices(), ours.col_indices())
    torch.testing.assert_close(adj.values().float(), ours.values())
    return edge_index, adj, x


def cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


def seed_slice(p: torch.Tensor, s: int, seeds: int) -> torch.Tensor:
    """Seed ``s``'s slice of a seed-major tensor ``[S, ...]``."""
    assert p.shape[0] == seeds
    return p[s]


def t(w: torch.Tensor) -> torch.Tensor:
    """Seed 0's ``[d_in, d_out]`` weight as ``torch.nn.Linear`` stores it, ``[d_out, d_in]``."""
    return w[0].t()


# --------------------------------------------------------------------- initialization


def loop_init(name: str, norm, depth: int, bias: bool = True) -> list[nn.Linear]:
    """The ``torch.nn.Linear`` layers the one-seed model built, in its construction order
    (norms built where it built them), from the current global RNG."""
    if name == "appnp":
        first = nn.Linear(IN, D)
        build_norm(norm, D)
        return [first, nn.Linear(D, OUT)]
    if name == "sgc":
        return [nn.Linear(IN, OUT, bias=bias)]
    if name == "sign":
        lins = [nn.Linear(IN, D) for _ in range(depth + 1)]
        for _ in range(depth + 1):
            build_norm(norm, D)
        return [*lins, nn.Linear(D * (depth + 1), OUT)]
    dims = [IN] + [D] * (depth - 1) + [OUT]
    lins = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)]
    for _ in range(depth - 1):
        build_norm(norm, D)
    return lins


def native_linears(model: nn.Module) -> list[nn.Module]:
    if hasattr(model, "lin1"):
        return [model.lin1, model.lin2]
    if hasattr(model, "lin"):
        return [model.lin]
    return [*model.lins, *([model.lin_out] if hasattr(model, "lin_out") else [])]


@pytest.mark.parametrize(("name", "norm"), [
    ("appnp", None), ("appnp", config.norm("batchnorm")), ("sgc", None), ("sign", None),
    ("sign", config.norm("batchnorm")), ("mlp", None), ("mlp", config.norm("batchnorm"))])
def test_each_seed_starts_from_the_one_seed_models_initial_weights(name, norm):
    depth = 3
    seeded = models.build_seeded(cfg(name), norm, depth, IN, OUT, seeds=SEEDS)
    assert seeded.num_seeds == len(SEEDS)
    for s, seed in enumerate(SEEDS):
        torch.manual_seed(seed)
        reference = loop_init(name, norm, depth)
        one = select_seeds(seeded, [s])
        torch.manual_seed(seed)
        built = models.build(cfg(name), norm, depth, IN, OUT)  # the per-seed loop's model
        assert isinstance(built, OneSeed)
        for lin, mine, loop in zip(reference, native_linears(one),
                                   native_linears(built.native), strict=True):
            torch.testing.assert_close(t(mine.weight), lin.weight, rtol=0, atol=0)
            torch.testing.assert_close(mine.bias[0], lin.bias, rtol=0, atol=0)
            torch.testing.assert_close(loop.weight, mine.weight, rtol=0, atol=0)
    # the one-seed models, side by side (concat_seeds), are the S-seed model
    loop = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        loop.append(models.build(cfg(name), norm, depth, IN, OUT))
    stacked = concat_seeds([m.native for m in loop])
    assert type(stacked) is type(seeded)
    for (key, a), (_, b) in zip(stacked.state_dict().items(), seeded.state_dict().items(),
                                strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_sgc_without_bias_draws_the_weight_alone():
    seeded = models.build_seeded(cfg("sgc", bias=False), None, 2, IN, OUT, seeds=[5])
    torch.manual_seed(5)
    reference = nn.Linear(IN, OUT, bias=False)
    assert seeded.lin.bias is None and set(seeded.state_dict()) == {"lin.weight"}
    torch.testing.assert_close(t(seeded.lin.weight), reference.weight, rtol=0, atol=0)


# ------------------------------------------------------------- one seed against PyG


def run(model: nn.Module, x: torch.Tensor, adj: torch.Tensor, **kw) -> torch.Tensor:
    return model(StackedInput(x), Propagation(adj), **kw)


@pytest.mark.parametrize("depth", [1, 5, 64])
@pytest.mark.parametrize("alpha", [0.1, 0.5])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_appnp_one_seed_equals_mlp_then_pyg_appnp(float64, depth, alpha, sparse):
    edge_index, adj, x = graph()
    model = models.build_seeded(cfg("appnp", alpha=alpha), None, depth, IN, OUT).eval()
    inputs = x.to_sparse_csr() if sparse else x
    out = run(model, inputs, adj)
    assert out.shape == (N, 1, OUT)
    h = F.linear(torch.relu(F.linear(x, t(model.lin1.weight), model.lin1.bias[0])),
                 t(model.lin2.weight), model.lin2.bias[0])
    close(out[:, 0], APPNP(depth, alpha)(h, edge_index))


@pytest.mark.parametrize("depth", [1, 3, 32])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_sgc_one_seed_equals_pyg_sgconv(float64, depth, bias, sparse):
    edge_index, adj, x = graph()
    model = models.build_seeded(cfg("sgc", bias=bias), None, depth, IN, OUT).eval()
    reference = SGConv(IN, OUT, K=depth, bias=bias)
    with torch.no_grad():
        reference.lin.weight.copy_(t(model.lin.weight))
        if bias:
            reference.lin.bias.copy_(model.lin.bias[0])
    close(run(model, x.to_sparse_csr() if sparse else x, adj)[:, 0],
          reference(x, edge_index))


@pytest.mark.parametrize("operator", ["sym", "ppr"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_sign_one_seed_equals_pyg_hops_and_the_formula(float64, operator, sparse):
    edge_index, adj, x = graph()
    depth, alpha = 3, 0.3
    model = models.build_seeded(cfg("sign", operator=operator, ppr_alpha=alpha), None, depth,
                                IN, OUT).eval()
    if operator == "sym":  # PyG's SIGN transform normalizes A + I itself
        data = T.SIGN(depth)(T.AddSelfLoops()(Data(x=x, edge_index=edge_index)))
        hops = [x] + [data[f"x{k}"] for k in range(1, depth + 1)]
    else:
        hops = [x] + [APPNP(k, alpha)(x, edge_index) for k in range(1, depth + 1)]
    z = torch.cat([torch.relu(F.linear(h, t(lin.weight), lin.bias[0]))
                   for h, lin in zip(hops, model.lins, strict=True)], dim=1)
    expected = F.linear(z, t(model.lin_out.weight), model.lin_out.bias[0])
    close(run(model, x.to_sparse_csr() if sparse else x, adj)[:, 0], expected)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_mlp_one_seed_equals_the_formula_and_ignores_the_graph(float64, depth, sparse):
    _, adj, x = graph()
    model = models.build_seeded(cfg("mlp"), None, depth, IN, OUT).eval()
    inputs = x.to_sparse_csr() if sparse else x
    out = run(model, inputs, adj)
    h = x
    for lin in model.lins[:-1]:
        h = torch.relu(F.linear(h, t(lin.weight), lin.bias[0]))
    close(out[:, 0], F.linear(h, t(model.lins[-1].weight), model.lins[-1].bias[0]))
    close(model(StackedInput(inputs), None), out)  # no graph at all


class Masks:
    """Injected dropout masks: draws ``[S, *shape]`` masks from a seeded generator and records
    them; ``replay(s)`` hands back seed ``s``'s slices of the recorded masks, in order."""

    def __init__(self, seeds: int, seed: int = 7) -> None:
        self.seeds, self.gen = seeds, torch.Generator().manual_seed(seed)
        self.drawn: list[torch.Tensor] = []

    def __call__(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        mask = (torch.rand((self.seeds, *shape), generator=self.gen) >= p).double() / (1 - p)
        self.drawn.append(mask)
        return mask

    def replay(self, s: int):
        drawn = iter(self.drawn)

        def mask_fn(shape: tuple[int, ...], p: float) -> torch.Tensor:
            mask = next(drawn)
            assert tuple(mask.shape[1:]) == tuple(shape)
            return mask[s:s + 1]

        return mask_fn


@pytest.mark.parametrize("name", ["appnp", "mlp"])
@pytest.mark.parametrize("norm", NORMS, ids=["none", "batchnorm", "nodenorm"])
def test_appnp_and_mlp_with_dropout_equal_the_formula_with_its_masks(float64, name, norm):
    """Training mode, one seed: dropout before each linear layer (APPNP: input and hidden;
    MLP: every layer), the masks the model was handed; forward and gradients."""
    _, adj, x = graph()
    model = models.build_seeded(cfg(name, dropout=0.5), norm, 3, IN, OUT).train()
    masks = Masks(1)
    model.mask_fn = masks
    out = run(model, x, adj)
    target = torch.arange(N) % OUT
    F.cross_entropy(out[:, 0], target).backward()
    ref = {k: seed_slice(p.detach(), 0, 1).clone().requires_grad_()
           for k, p in model.named_parameters()}
    norm_ref = build_norm(norm, D).train().double()
    given = iter(m[0] for m in masks.drawn)

    def layer(h: torch.Tensor, key: str) -> torch.Tensor:
        return h @ ref[f"{key}.weight"] + ref[f"{key}.bias"]

    def normed(h: torch.Tensor, key: str) -> torch.Tensor:
        if norm is None or norm.name != "batchnorm":
            return norm_ref(h)
        return F.batch_norm(h, None, None, ref[f"{key}.weight"], ref[f"{key}.bias"],
                            training=True, eps=norm_ref.module.eps)

    if name == "appnp":
        h = torch.relu(normed(layer(x * next(given), "lin1"), "norm"))
        h = layer(h * next(given), "lin2")
        expected = h
        for _ in range(3):  # alpha 0.1
            expected = 0.9 * (adj.to_dense() @ expected) + 0.1 * h
    else:
        h = x
        for i in range(2):
            h = torch.relu(normed(layer(h * next(given), f"lins.{i}"), f"norms.{i}"))
        expected = layer(h * next(given), "lins.2")
    assert next(given, None) is None  # every mask drawn was used
    close(out[:, 0], expected)
    F.cross_entropy(expected, target).backward()
    for key, p in model.named_parameters():
        close(seed_slice(p.grad, 0, 1), ref[key].grad)


# ---------------------------------------------------------- S seeds = S runs of one


def seed_runs(name: str, norm, depth: int, sparse: bool, **kw):
    """Logits and gradients of the S-seed model, and of S one-seed models of the same seeds
    fed seed s's masks: (logits [N, S, C], grads {key: [S, ...]}) for each."""
    _, adj, x = graph()
    inputs = x.to_sparse_csr() if sparse else x
    target = torch.arange(N) % OUT

    def train(model: nn.Module, mask_fn) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model.train().mask_fn = mask_fn
        out = run(model, inputs, adj)
        losses = torch.stack([F.cross_entropy(out[:, s], target) for s in range(out.shape[1])])
        losses.sum().backward()  # each seed's gradient is its own loss's
        return out.detach(), {k: p.grad for k, p in model.named_parameters()}

    masks = Masks(len(SEEDS))
    together = train(models.build_seeded(cfg(name, **kw), norm, depth, IN, OUT, seeds=SEEDS),
                     masks)
    runs = [train(models.build_seeded(cfg(name, **kw), norm, depth, IN, OUT, seeds=[seed]),
                  masks.replay(s)) for s, seed in enumerate(SEEDS)]
    apart = (torch.cat([r[0] for r in runs], dim=1),
             {k: torch.cat([r[1][k] for r in runs]) for k in together[1]})
    return together, apart


@pytest.mark.parametrize(("name", "norm", "depth", "kw"), [
    ("appnp", None, 10, {}),
    ("appnp", config.norm("batchnorm"), 3, {"alpha": 0.2}),
    ("appnp", config.norm("nodenorm"), 64, {}),
    ("sgc", None, 3, {"dropout": 0.5}),
    ("sgc", None, 2, {"dropout": 0.5, "bias": False}),
    ("sign", None, 3, {}),
    ("sign", config.norm("batchnorm"), 2, {"operator": "ppr"}),
    ("sign", config.norm("pairnorm"), 2, {}),
    ("mlp", None, 4, {}),
    ("mlp", config.norm("batchnorm"), 3, {"dropout_layers": "io"}),
    ("mlp", config.norm("nodenorm"), 2, {"activation": "elu"}),
    ("mlp", None, 1, {}),
])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse_csr"])
def test_s_seeds_are_s_one_seed_runs(float64, name, norm, depth, kw, sparse):
    (out, grads), (out_apart, grads_apart) = seed_runs(name, norm, depth, sparse, **kw)
    assert out.shape == (N, len(SEEDS), OUT)
    close(out, out_apart)
    for key, g in grads.items():
        assert g.shape[0] == len(SEEDS) and torch.isfinite(g).all(), key  # seed-major
        close(g, grads_apart[key])


# --------------------------------------------------------------- SGC's rows and cache


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_sgc_rows_are_the_full_forwards_rows(float64, dropout):
    _, adj, x = graph()
    model = models.build_seeded(cfg("sgc", dropout=dropout), None, 4, IN, OUT, seeds=SEEDS)
    assert model.rowwise
    x_in, prop = StackedInput(x), Propagation(adj)
    rows = torch.tensor([0, 3, 4, 9, 14])
    target = torch.arange(len(rows)) % OUT
    for mode in ("train", "eval"):
        getattr(model, mode)()
        masks = Masks(len(SEEDS))
        model.mask_fn = masks
        full = model(x_in, prop)
        model.mask_fn = _again(masks)
        part = model(x_in, prop, rows=rows)
        assert part.shape == (len(rows), len(SEEDS), OUT)
        close(part, full[rows])
        grads = []
        for logits in (full[rows], part):
            model.zero_grad()
            F.cross_entropy(logits.reshape(-1, OUT), target.repeat_interleave(len(SEEDS))
                            ).backward(retain_graph=True)
            grads.append([p.grad.clone() for p in model.parameters()])
        for a, b in zip(*grads, strict=True):
            close(a, b)


def _again(masks: Masks):
    """The masks ``masks`` drew, all seeds, handed out again in order."""
    drawn = iter(list(masks.drawn))
    return lambda shape, p: next(drawn)


def test_sgc_propagates_once_per_input_and_row_set(monkeypatch):
    from gdepth.models import sgc

    calls = []
    real = sgc.propagate_features
    monkeypatch.setattr(sgc, "propagate_features", lambda *a: calls.append(1) or real(*a))
    _, adj, x = graph(torch.float32)
    model = models.build_seeded(cfg("sgc", dropout=0.5), None, 3, IN, OUT, seeds=SEEDS)
    x_in, prop, rows = StackedInput(x), Propagation(adj), torch.tensor([1, 2, 5])
    for _ in range(3):
        model.train()(x_in, prop, rows=rows).sum().backward()
        model.eval()(x_in, prop)
    assert len(calls) == 1
    assert model.features(x_in, prop, rows) is model.features(x_in, prop, rows)
    torch.testing.assert_close(model.features(x_in, prop, rows), model.propagated(x, adj)[rows])
    copied = copy.deepcopy(model)  # select_seeds / pickling: the cache stays behind
    assert copied._cache is None and model._cache is not None
    x.mul_(2.0)  # in place: the version counter changes
    model.eval()(x_in, prop)
    assert len(calls) == 2
    xg = x.clone().requires_grad_()  # a Jacobian diagnostic: autograd, not cached
    model(StackedInput(xg), prop).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0 and len(calls) == 3
    assert model._cache[0] is x


@pytest.mark.parametrize("name", ["sgc", "sign", "mlp"])
def test_models_without_a_first_layer_refuse_first_layer_decay(name):
    from gdepth import train

    model = models.build(cfg(name), None, 2, IN, OUT)
    label = {"sgc": "SGC", "sign": "SIGN", "mlp": "MLP"}[name]
    message = f"train.weight_decay_first_only=true but model {label} has no first_layer()"
    with pytest.raises(NotBatchable, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.native.first_layer_parameters()
    train_cfg = config.make(config.TrainConfig, name="test", optimizer="adam", lr=0.01,
                                  weight_decay=5e-4, weight_decay_first_only=True)
    with pytest.raises(ValueError, match="has no first_layer"):
        train.make_optimizer(model, train_cfg)


def test_appnp_first_layer_groups_and_weights():
    model = models.build_seeded(cfg("appnp"), config.norm("batchnorm"), 2, IN, OUT, seeds=SEEDS)
    assert model.first_layer_parameters() == [model.lin1.weight, model.lin1.bias]
    groups = model.named_parameter_groups()
    assert list(groups) == ["input", "output"]
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in groups["output"]} == {id(model.lin2.weight), id(model.lin2.bias)}
    # the loop model's *weight* tensors: lin1.weight, norm.module.weight, lin2.weight
    assert len(model.weight_parameters()) == 3


@pytest.mark.parametrize(("name", "expected"), [
    ("sgc", 1), ("sign", 2 * 3 + 1), ("mlp", 3 + 2)])
def test_weight_parameters_are_the_loop_models_weights(name, expected):
    """The loop model's ``*weight*`` tensors (the L1 penalty's): the linear layers' and the
    norms' scales (BatchNorm's ``module.weight``), no bias."""
    norm = None if name == "sgc" else config.norm("batchnorm")
    model = models.build_seeded(cfg(name), norm, 2 if name != "mlp" else 3, IN, OUT)
    weights = model.weight_parameters()
    named = {id(p) for key, p in model.named_parameters() if key.endswith("weight")}
    assert len(weights) == expected and {id(w) for w in weights} == named


# ------------------------------------------------------------------- diagnostics taps


@pytest.mark.parametrize(("name", "depth", "count"), [("appnp", 4, 1 + 1 + 4),
                                                      ("mlp", 3, 1 + 2 + 1)])
def test_layer_outputs_are_the_loop_models_taps(name, depth, count):
    """APPNP taps the input, the MLP's prediction and every step (the last: the logits); MLP
    the input, each hidden layer and the logits. The fused ReLU-dropout path (no taps) gives
    the same logits."""
    _, adj, x = graph(torch.float32)
    model = models.build(cfg(name), None, depth, IN, OUT)
    taps = layer_outputs(model, x, adj)
    assert len(taps) == count and torch.equal(taps[0], x)
    assert taps[1].shape == ((N, OUT) if name == "appnp" else (N, D))
    torch.testing.assert_close(taps[-1], model.eval()(x, adj), rtol=0, atol=0)
    if name == "mlp":
        lins = model.native.lins
        hidden = torch.relu(x @ lins[0].weight[0] + lins[0].bias[0])
        torch.testing.assert_close(taps[1], hidden)


@pytest.mark.parametrize("masked", [False, True])
def test_precomputed_product_is_autograds_product(float64, masked):
    """SGC's and SIGN's product with the shared dense features: forward, weight and feature
    gradients equal autograd's of (X ⊙ M_s) W_s."""
    from gdepth.models.sgc import precomputed_product

    gen = torch.Generator().manual_seed(1)
    s, n, f, d = 3, 11, 9, 4
    x = torch.randn(n, f, generator=gen, requires_grad=True)
    weight = torch.randn(s, f, d, generator=gen, requires_grad=True)
    mask = (torch.rand(s, n, f, generator=gen) >= 0.5) * 2.0 if masked else None
    grad = torch.randn(n, s, d, generator=gen)
    out = precomputed_product(x, weight, mask)
    got = torch.autograd.grad(out, (x, weight), grad)
    xs = x * mask if masked else x.expand(s, n, f)
    want_out = torch.einsum("snf,sfd->nsd", xs, weight)
    want = torch.autograd.grad(want_out, (x, weight), grad)
    close(out, want_out)
    for a, b in zip(got, want, strict=True):
        close(a, b)
