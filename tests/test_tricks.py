"""Training tricks (label smoothing, L1, adaptive clipping, Kipf's stopping window, first-layer
decay), graph dropout (DropEdge, DropNode) and the Bag-of-Tricks GCN (skips, identity mapping)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from gdepth import config, data, graph_dropout, models, train
from gdepth.engine import fit_batched
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.gcn_tricks import SKIPS, TricksGCN, identity_mapped
from gdepth.nn.propagation import Propagation
from gdepth.train import Clipper, Selector, l1_penalty, should_stop


@pytest.fixture(scope="module")
def graph():
    cfg = config.dataset("csbm", split="random_per_class", num_nodes=200, num_classes=3,
                         avg_degree=6.0, homophily=0.8, snr=1.0, num_features=8,
                         graph_seed=0)
    g = data.load(cfg, None, 0)
    return g, normalized_adjacency(g.edge_index, g.num_nodes)


def cfg(**kw):
    base = {"name": "test", "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 5,
            "patience": None, "selection": "last"}
    return config.make(config.TrainConfig, {**base, **kw})


def fit(graph, adj, train_cfg, train_adj=None, depth=2, **model_kw):
    """A 2-layer GCN of seed 0 trained alone (a batch of one seed of the training loop)."""
    model = models.build_seeded(config.group("model", {"name": "gcn", "hidden": 8, **model_kw}),
                                config.norm("none"), depth, graph.num_features,
                                graph.num_classes, seeds=[0])
    return fit_batched(model, [graph], adj, train_cfg, [0], train_adj=train_adj)[0]


def gcn(graph, depth=2, **model_kw):
    torch.manual_seed(0)
    return models.build(config.group("model", {"name": "gcn", "hidden": 8, **model_kw}),
                        config.norm("none"), depth, graph.num_features,
                        graph.num_classes)


# --- training tricks ------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.03, 0.3])  # Bag of Tricks' value; a large one
def test_label_smoothing_loss_is_bag_of_tricks_mix(graph, eps):
    """The training loss gdepth reports with ``label_smoothing=ε`` (the training loop, one seed
    alone and in a batch of two), is Bag of Tricks' ``LabelSmoothing``: per training node
    (1-ε)·(−log p_y) + ε·mean_c(−log p_c), averaged, with log p computed here from the model's
    logits (logits − logsumexp). Dropout 0 and one epoch: the reported loss is that of the
    initial weights, before the optimizer step. float64, so that the only difference is
    rounding: |loss − formula| ≤ 1e-12 (~10⁴ float64 operations of O(1) values, eps64 2.2e-16)."""
    g, adj = graph
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        g, adj = replace(g, x=g.x.double()), adj.double()
        model = gcn(g, dropout=0.0)
        with torch.no_grad():
            logits = model.train()(g.x, adj)[g.train_mask]
        logp = logits - logits.logsumexp(dim=-1, keepdim=True)
        y = g.y[g.train_mask]
        nll = -logp[torch.arange(len(y)), y]
        formula = float(((1 - eps) * nll + eps * (-logp).mean(dim=-1)).mean())
        loop = fit(g, adj, cfg(epochs=1, label_smoothing=eps), dropout=0.0)
        pair = models.build_seeded(config.group("model", {"name": "gcn", "hidden": 8,
                                                     "dropout": 0.0}),
                                   config.norm("none"), 2, g.num_features,
                                   g.num_classes, seeds=[0, 1])
        batched = fit_batched(pair, [g, replace(g, split="again")], adj,
                              cfg(epochs=1, label_smoothing=eps), [0, 1])[0]
    finally:
        torch.set_default_dtype(before)
    assert abs(formula - float(nll.mean())) > 1e-3  # the smoothing term matters here
    assert loop.train_loss == pytest.approx(formula, rel=1e-12, abs=0)
    assert batched.train_loss == pytest.approx(formula, rel=1e-12, abs=0)


def test_label_smoothing_changes_the_training_loss(graph):
    g, adj = graph
    plain = fit(g, adj, cfg(epochs=1)).train_loss
    smooth = fit(g, adj, cfg(epochs=1, label_smoothing=0.3)).train_loss
    assert smooth != pytest.approx(plain, abs=1e-4)


def test_l1_penalty_sums_weights_only_and_enters_the_loss(graph):
    g, adj = graph
    model = gcn(g)
    expected = sum(p.abs().sum() for n, p in model.named_parameters() if n.endswith("weight"))
    assert float(l1_penalty(model, 1).detach()) == pytest.approx(float(expected))
    assert any("bias" in n for n, _ in model.named_parameters())
    plain = fit(g, adj, cfg(epochs=1)).train_loss
    with_l1 = fit(g, adj, cfg(epochs=1, l1_weight=1e-3)).train_loss
    assert with_l1 - plain == pytest.approx(1e-3 * float(expected), rel=1e-4)


def test_adaptive_clipping_caps_at_the_window_mean():
    layer = torch.nn.Linear(3, 1, bias=False)
    clipper = Clipper(cfg(grad_clip="adaptive", grad_clip_window=2, grad_clip_norm=1.0))
    for epoch, scale in enumerate([1.0, 3.0, 100.0, 100.0], start=1):
        layer.weight.grad = torch.full_like(layer.weight, scale)
        clipper(layer, epoch)
    # NodeNorm clips once the 0-based epoch exceeds the window: 1-based epochs 1..3 unclipped
    # (L1 norms 3, 9, 300); epoch 4 is clipped to the mean of the previous two, (9 + 300) / 2
    norms = [float(h) for h in clipper.history]  # one [S] tensor per step, S = 1
    assert norms[:3] == pytest.approx([3.0, 9.0, 300.0])
    assert float(layer.weight.grad.abs().sum()) == pytest.approx(154.5, rel=1e-5)
    assert norms[3] == pytest.approx(154.5, rel=1e-5)


def test_kipf_window_stopping_rule():
    losses = [1.0] * 11 + [0.9]
    sel = Selector("last")
    assert not should_stop("last", "window", 10, sel, 12, losses)  # below the window mean
    assert should_stop("last", "window", 10, sel, 12, [1.0] * 11 + [1.1])
    assert not should_stop("last", "window", 10, sel, 11, [1.0] * 10 + [1.1])  # too early


def test_weight_decay_first_only_puts_decay_on_the_first_conv(graph):
    g, _ = graph
    model = gcn(g)
    opt = train.make_optimizer(model, cfg(weight_decay_first_only=True))
    first = {id(p) for p in model.native.convs[0].parameters()}
    assert {id(p) for p in opt.param_groups[0]["params"]} == first
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[1]["weight_decay"] == 0


# --- graph dropout ----------------------------------------------------------------------------

def test_dropedge_keeps_an_exact_count_redrawn_each_call(graph):
    g, _ = graph
    torch.manual_seed(0)
    a, b = (graph_dropout.drop_edges(g.edge_index, 0.6) for _ in range(2))
    assert a.size(1) == b.size(1) == int(g.edge_index.size(1) * 0.4)
    assert not torch.equal(a, b)
    full = {tuple(e) for e in g.edge_index.t().tolist()}
    assert {tuple(e) for e in a.t().tolist()} <= full


def test_dropnode_keeps_only_edges_between_kept_nodes(graph):
    g, _ = graph
    torch.manual_seed(1)
    kept = graph_dropout.drop_nodes(g.edge_index, g.num_nodes, 0.5)
    torch.manual_seed(1)
    keep = torch.rand(g.num_nodes) >= 0.5
    assert keep[kept[0]].all() and keep[kept[1]].all()
    both = keep[g.edge_index[0]] & keep[g.edge_index[1]]
    assert kept.size(1) == int(both.sum())


def test_sampler_renormalizes_and_training_uses_it_evaluation_does_not(graph):
    g, adj = graph
    draw = graph_dropout.sampler(g.edge_index, g.num_nodes, dropedge=0.5, normalization="row")
    sums = draw().to_dense().sum(1)
    assert torch.allclose(sums, torch.ones_like(sums))  # row-normalized with self loops
    calls = []

    def counted():
        calls.append(1)
        return draw()

    fit(g, adj, cfg(epochs=4), train_adj=counted)
    assert len(calls) == 4
    assert graph_dropout.sampler(g.edge_index, g.num_nodes) is None
    with pytest.raises(ValueError, match="train.dropedge=1.0 must be in"):
        graph_dropout.sampler(g.edge_index, g.num_nodes, dropedge=1.0)


# --- Bag-of-Tricks GCN ----------------------------------------------------------------------

def lin(layer, h):
    """Seed 0 of a seed-native linear layer (``SeedLinear``): h W + b."""
    return h @ layer.weight[0] + layer.bias[0]


def conv(layer, h, adj):
    """Seed 0 of a seed-native GCN convolution: A (h W) (+ b)."""
    out = adj @ (h @ layer.weight[0])
    return out if layer.bias is None else out + layer.bias[0]


def test_identity_mapping_formula(graph):
    g, adj = graph
    layer = gcn(g, depth=3).native.convs[1]
    x = torch.randn(g.num_nodes, 8)
    s = adj @ x
    beta = math.log(0.5 / 2 + 1)
    expected = beta * (s @ layer.weight[0]) + (1 - beta) * s + layer.bias[0]
    prop = Propagation(adj)
    assert torch.allclose(identity_mapped(layer, x[:, None], prop, beta)[:, 0], expected,
                          atol=1e-5)
    assert torch.allclose(identity_mapped(layer, x[:, None], prop, 1.0)[:, 0],
                          conv(layer, x, adj), atol=1e-6)


def test_initial_with_alpha_one_carries_the_input_embedding_through(graph):
    g, adj = graph
    model = gcn(g, depth=4, skip="initial", skip_alpha=1.0).eval()
    net = model.native
    x0 = torch.relu(lin(net.lin_in, g.x))
    assert torch.allclose(model(g.x, adj), lin(net.lin_out, x0), atol=1e-5)


def test_residual_mixes_the_previous_layers_output_by_hand(graph):
    """BoT's ResidualConnection: x_l = (1-a) h_l + a h_{l-1}, h the layers' outputs before the
    skip (its x_list), h_0 the input embedding."""
    g, adj = graph
    a = 0.3
    model = gcn(g, depth=2, skip="residual", skip_alpha=a).eval()
    net = model.native
    h0 = torch.relu(lin(net.lin_in, g.x))
    h1 = torch.relu(conv(net.convs[0], h0, adj))
    x1 = (1 - a) * h1 + a * h0
    h2 = torch.relu(conv(net.convs[1], x1, adj))
    x2 = (1 - a) * h2 + a * h1
    assert torch.allclose(model(g.x, adj), lin(net.lin_out, x2), atol=1e-5)


def test_dense_and_jumping_by_hand(graph):
    g, adj = graph
    model = gcn(g, depth=2, skip="dense").eval()
    net = model.native
    x0 = torch.relu(lin(net.lin_in, g.x))
    h1 = torch.relu(conv(net.convs[0], x0, adj))
    x1 = lin(net.dense[0], torch.cat([x0, h1], -1))
    h2 = torch.relu(conv(net.convs[1], x1, adj))
    x2 = lin(net.dense[1], torch.cat([x0, h1, h2], -1))
    assert torch.allclose(model(g.x, adj), lin(net.lin_out, x2), atol=1e-5)
    jk = gcn(g, depth=2, skip="jumping").eval()
    net = jk.native
    x0 = torch.relu(lin(net.lin_in, g.x))
    h1 = torch.relu(conv(net.convs[0], x0, adj))
    h2 = torch.relu(conv(net.convs[1], h1, adj))
    assert torch.allclose(jk(g.x, adj), lin(net.lin_out, torch.cat([x0, h1, h2], -1)), atol=1e-5)


@pytest.mark.parametrize("skip", [s for s in SKIPS if s != "none"])
@pytest.mark.parametrize("depth", [1, 2, 8, 64])
def test_every_skip_builds_trains_and_reaches_the_first_layer(graph, skip, depth):
    g, adj = graph
    model = gcn(g, depth=depth, skip=skip, identity_mapping=True)
    net = model.native
    assert isinstance(net, TricksGCN) and len(net.convs) == depth
    loss = F.cross_entropy(model(g.x, adj)[g.train_mask], g.y[g.train_mask])
    loss.backward()
    assert torch.isfinite(loss)
    assert float(net.lin_in.weight.grad.abs().sum()) > 0
    groups = model.named_parameter_groups()
    assert tuple(groups) == ("graph", "dense")
    ids = [id(p) for group in groups.values() for p in group]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_unknown_skip_names_the_choices(graph):
    g, _ = graph
    with pytest.raises(ValueError, match="unknown skip 'highway'; valid: none, residual"):
        TricksGCN(8, 8, 3, 2, skip="highway")
