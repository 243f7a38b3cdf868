"""gdepth.models: DropEdge's ResGCN, DenseGCN and IncepGCN, each against a hand computation.

``models.build`` gives the one-seed interface (:class:`gdepth.nn.one_seed.OneSeed`); its ``native``
is the seed-native backbone (one seed), whose tensors the hand computations read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gdepth import config, models
from gdepth.cli import config_dir
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.dropedge_backbones import GCNUnit
from gdepth.models.gcn_tricks import SeedGCNConv
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation
from gdepth.norms import NORMS

N, IN, OUT, D = 15, 6, 3, 8
NAMES = ["resgcn", "densegcn", "incepgcn"]


def random_graph(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, N, (2, 40), generator=gen)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1).unique(dim=1)
    return normalized_adjacency(edge_index, N), torch.randn(N, IN, generator=gen)


def model_cfg(name: str, **kw):
    return config.group("model", {"name": name, "hidden": D, **kw})


class RecordedMasks:
    """A ``mask_fn`` for a one-seed model that keeps the masks it hands out, in order."""

    def __init__(self, seed: int = 1) -> None:
        self.gen, self.drawn = torch.Generator().manual_seed(seed), []

    def __call__(self, shape, p):
        mask = (torch.rand((1, *shape), generator=self.gen) >= p).float() / (1 - p)
        self.drawn.append(mask[0])
        return mask


def conv_count(name: str, depth: int) -> int:
    """Graph convolutions the convention promises: L, or (L-2)(L-1)/2 + 2 for the inception."""
    return (depth - 2) * (depth - 1) // 2 + 2 if name == "incepgcn" else depth


# --- the manual forward: the aggregation really is residual / concatenation / inception -------


def manual_forward(name: str, model, x, a, masks: list | None, nodenorm: bool):
    """The backbone written out with the (one-seed native) model's weights, the dense adjacency
    ``a`` and, in training, the dropout ``masks`` in the order the model drew them."""

    def norm(h):
        if not nodenorm:
            return h
        mu = h.mean(dim=1, keepdim=True)
        return (h - mu) / (((h - mu) ** 2).mean(dim=1, keepdim=True) + 1e-5).sqrt()

    masks = None if masks is None else list(masks)

    def conv(c, h):
        return a @ (h @ c.weight[0]) + c.bias[0]

    def u(unit, h):  # conv -> norm -> relu -> dropout
        h = torch.relu(norm(conv(unit.conv, h)))
        return h if masks is None else h * masks.pop(0)

    h0 = u(model.input, x)
    if name == "resgcn":
        h = h0
        for block in model.blocks:
            y = h
            for unit in block:
                y = u(unit, y)
            h = y + h  # the skip over the whole block
        z = h
    elif name == "densegcn":
        hs = [h0]
        for unit in model.layers:
            hs.append(u(unit, hs[-1]))  # a chain: each conv reads only the previous output
        z = torch.cat(hs, dim=1)
    else:
        outs = [h0]
        for branch in model.branches:
            y = h0  # every branch starts from the input conv's output
            for unit in branch:
                y = u(unit, y)
            outs.append(y)
        z = torch.cat(outs, dim=1)
    return conv(model.output, z)


CASES = [
    ("resgcn", 5, {}),  # three blocks of one conv
    ("resgcn", 6, {"nbaseblocklayer": 2}),  # two blocks of two convs
    ("resgcn", 6, {"nbaseblocklayer": 0}),  # one block of four convs, a single skip
    ("densegcn", 5, {}),
    ("incepgcn", 5, {}),  # branches of 1, 2, 3 convs
]


@pytest.mark.parametrize(("name", "depth", "kw"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("norm", ["none", "nodenorm"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_forward_equals_manual_computation(name, depth, kw, norm, training):
    adj, x = random_graph()
    a = adj.to_dense()
    model = models.build(model_cfg(name, **kw), config.norm(norm), depth, IN, OUT)
    model.train(training)
    model.native.mask_fn = recorded = RecordedMasks()  # train mode: the masks drawn, in order
    out = model(x, adj)
    assert len(recorded.drawn) == (conv_count(name, depth) - 1 if training else 0)
    expected = manual_forward(name, model.native, x, a, recorded.drawn if training else None,
                              norm == "nodenorm")
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_aggregations_differ_from_a_plain_chain():
    """Same weights, skip removed: the residual sum changes the output (it is not a no-op)."""
    adj, x = random_graph()
    model = models.build(model_cfg("resgcn"), None, 4, IN, OUT).eval()
    native, prop = model.native, Propagation(adj)
    h = native.input(StackedInput(x), prop, None)
    for block in native.blocks:
        for unit in block:
            h = unit(h, prop, None)
    assert not torch.allclose(model(x, adj), native.output(h, prop)[:, 0])


# --- depth accounting ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [3, 4, 8, 16])
def test_depth_counts_graph_convolutions(name, depth):
    model = models.build(model_cfg(name), config.norm("batchnorm"), depth, IN, OUT).native
    convs = [m for m in model.modules() if isinstance(m, SeedGCNConv)]
    units = [m for m in model.modules() if isinstance(m, GCNUnit)]
    assert len(convs) == conv_count(name, depth) and len(units) == len(convs) - 1
    # each norm has the width of its convolution's output: BatchNorm's scale and shift, D each
    assert all(sum(p.numel() for p in unit.norm.parameters()) == 2 * D for unit in units)
    assert all(unit.conv.weight.shape == (1, unit.conv.d_in, D) for unit in units)
    concat = name != "resgcn"
    assert (convs[0].d_in, model.output.d_out) == (IN, OUT)
    assert model.output.d_in == (D * (depth - 1) if concat else D)
    assert "depth L" in models.convention(name)


@pytest.mark.parametrize(
    ("name", "kw"),
    [(n, {}) for n in NAMES]
    + [("resgcn", {"nbaseblocklayer": 2}), ("resgcn", {"nbaseblocklayer": 0})],
    ids=lambda v: str(v),
)
@pytest.mark.parametrize("depth", [4, 8, 16])
def test_longest_path_is_depth_hops(name, kw, depth):
    """On a path graph the output at node 0 depends on node ``depth`` but not ``depth + 1``:
    ``depth`` graph convolutions on the longest input->output path."""
    n = depth + 4
    edge_index = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    adj = normalized_adjacency(torch.cat([edge_index, edge_index.flip(0)], 1), n).double()
    model = models.build(model_cfg(name, activation="identity", **kw), None, depth, IN, OUT)
    model = model.double().eval()
    x = torch.randn(n, IN, dtype=torch.float64, requires_grad=True)
    model(x, adj)[0].sum().backward()
    reach = x.grad.abs().sum(dim=1)
    assert reach[depth] > 0 and (reach[depth + 1 :] == 0).all()


# --- valid depths, forward + backward, dense and sparse features ---------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("depth", [2, 4, 8, 16, 32, 64])
def test_forward_backward_dense_and_sparse(name, depth):
    adj, _ = random_graph()
    torch.manual_seed(0)
    x = torch.rand(N, 40)
    x[x < 0.8] = 0.0  # bag-of-words-like features
    if depth == 2:
        with pytest.raises(ValueError, match=rf"{name}: depth 2 is not valid; valid: L >= 3"):
            models.build(model_cfg(name), None, depth, 40, OUT)
        return
    model = models.build(model_cfg(name), None, depth, 40, OUT)
    if depth <= 16:  # sparse CSR features give the dense result (skipped deep: time)
        model.eval()
        torch.testing.assert_close(
            model(x, adj), model(x.to_sparse_csr(), adj), atol=1e-5, rtol=1e-5
        )
        model.train()
    for features in (x, x.to_sparse_csr()):
        model.zero_grad()
        out = model(features, adj)
        assert out.shape == (N, OUT) and torch.isfinite(out).all()
        F.cross_entropy(out, torch.arange(N) % OUT).backward()
        grad = model.native.input.conv.weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        if name == "resgcn" and depth == 64:
            assert grad.abs().sum() > 0  # the skips carry the gradient to the input layer


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("norm", sorted(NORMS))
def test_every_norm_fits_every_layer(name, norm):
    adj, x = random_graph()
    model = models.build(model_cfg(name), config.norm(norm), 5, IN, OUT)
    out = model(x, adj)
    F.cross_entropy(out, torch.arange(N) % OUT).backward()
    grad = model.native.input.conv.weight.grad
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()


def test_invalid_settings_name_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"depth 5 is not valid with nbaseblocklayer=2; "
        r"valid: L = 2 \+ n\*2, n >= 1 \(4, 6, 8, …\)",
    ):
        models.build(model_cfg("resgcn", nbaseblocklayer=2), None, 5, IN, OUT)
    with pytest.raises(ValueError, match="nbaseblocklayer must be >= 0"):
        models.build(model_cfg("resgcn", nbaseblocklayer=-1), None, 4, IN, OUT)
    for name in NAMES:
        with pytest.raises(ValueError, match=f"dropout_layers for {name} 'io'; valid: all"):
            models.build(model_cfg(name, dropout_layers="io"), None, 4, IN, OUT)
        with pytest.raises(ValueError, match="depth 1 is not valid; valid: L >= 3"):
            models.build(model_cfg(name), None, 1, IN, OUT)


# --- the YAML configs ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_yaml_composes_and_builds_with_the_defaults(composed_models, name):
    cfg = composed_models[name]
    assert cfg.name == name and (Path(config_dir()) / "model" / f"{name}.yaml").is_file()
    model = models.build(cfg, None, 4, IN, OUT).native
    assert model.input.conv.d_out == 64 and model.input.dropout == 0.5
    assert isinstance(model.input.act, torch.nn.ReLU)
    if name == "resgcn":
        assert cfg.nbaseblocklayer == 1 and len(model.blocks) == 2
