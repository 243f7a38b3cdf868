"""The fully-adjacent last layer of gcn, gcn_res and gin (``model.fully_adjacent_last``).

The oracle: the same network written with PyG's own ``GCNConv`` / ``GINConv`` whose last layer
runs on the *materialized* complete graph of every instance, self loops included (Alon &
Yahav's ``block_map = eq(batch, batch)`` → ``dense_to_sparse``), the other layers on the
graph's edges; weights copied from seed 0 of the seed-native model.

Tolerances (float64, eps 2.2e-16): a logit is a chain of at most 4 layers of sums of <= 8
products of O(1) numbers (width 8, instances of <= 7 nodes); rounding stays below ~1e-13
relative to the logits' scale, so 1e-10 leaves three orders of margin and still fails on a
wrong aggregation (a mean instead of a sum, the self loop dropped, another instance's nodes
read): those differ at O(1e-2) and more.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv, GINConv
from torch_geometric.utils import dense_to_sparse

from gdepth import config, models
from gdepth.models.adjacency import normalized_adjacency

SIZES = (4, 7, 5)  # nodes per instance: unequal, so a wrong divisor shows
IN, HIDDEN, OUT = 5, 8, 3
SEEDS = (3, 5, 7)
NAMES = ("gcn", "gcn_res", "gin")


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = float(b.detach().abs().max()) if b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * max(scale, 1.0))


def union() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, edge_index, instance)``: three random connected-ish graphs side by side."""
    gen = torch.Generator().manual_seed(0)
    edges, start = [], 0
    for n in SIZES:
        ring = torch.arange(n)
        chords = torch.randint(0, n, (2, n), generator=gen)
        local = torch.cat([torch.stack([ring, (ring + 1) % n]), chords], dim=1) + start
        edges.append(local)
        start += n
    e = torch.cat(edges, dim=1)
    e = e[:, e[0] != e[1]]
    e = torch.cat([e, e.flip(0)], dim=1).unique(dim=1)
    instance = torch.arange(len(SIZES)).repeat_interleave(torch.tensor(SIZES))
    x = torch.randn(sum(SIZES), IN, generator=gen, dtype=torch.float64)
    return x, e, instance


def complete_edges(instance: torch.Tensor) -> torch.Tensor:
    """The authors' fully-adjacent edges: every pair of one instance, the diagonal included."""
    block_map = torch.eq(instance.unsqueeze(0), instance.unsqueeze(-1)).int()
    edges, _ = dense_to_sparse(block_map)
    return edges


def cfg(name: str, fa: bool = True, **kw):
    return config.model(name, hidden=HIDDEN, dropout=0.0, fully_adjacent_last=fa, **kw)


def one_seed(name: str, depth: int, instance: torch.Tensor, fa: bool = True, **kw):
    torch.manual_seed(depth)
    model = models.build(cfg(name, fa, **kw), None, depth, IN, OUT)
    models.set_instances(model, instance)
    return model


def _gcn_conv(conv, normalize: bool) -> GCNConv:
    """``GCNConv`` with seed 0's weights; ``normalize``: PyG's own symmetric normalization with
    self loops (the complete graph's), else the given normalized adjacency's weights."""
    ref = GCNConv(conv.d_in, conv.d_out, normalize=normalize)
    with torch.no_grad():
        ref.lin.weight.copy_(conv.weight[0].t())
        ref.bias.copy_(conv.bias[0])
    return ref


def _linear(seeded) -> torch.nn.Linear:
    lin = torch.nn.Linear(seeded.d_in, seeded.d_out)
    with torch.no_grad():
        lin.weight.copy_(seeded.weight[0].t())
        lin.bias.copy_(seeded.bias[0])
    return lin


def reference(name: str, model, x, edge_index, adj, instance, act):
    """``(logits, [(reference parameter, the model's parameter as [1, ...] slice), ...])``; the
    graph layers on ``edge_index`` (GIN) or its normalized ``adj`` (GCN, as the model reads it),
    the last one on :func:`complete_edges`."""
    native, full = model.native, complete_edges(instance)
    pairs = []
    if name == "gin":
        h = x
        for i, conv in enumerate(native.convs):
            mlp = torch.nn.Sequential(_linear(conv.lin1), copy.deepcopy(conv.act),
                                      _linear(conv.lin2))
            ref = GINConv(mlp, train_eps=True)
            with torch.no_grad():  # GINConv.reset_parameters redrew the MLP: copy again
                for lin, seeded in ((ref.nn[0], conv.lin1), (ref.nn[2], conv.lin2)):
                    lin.weight.copy_(seeded.weight[0].t())
                    lin.bias.copy_(seeded.bias[0])
                ref.eps.copy_(conv.eps[0, 0])
            last = i == len(native.convs) - 1
            h = act(ref(h, full if last else edge_index))
            pairs += [(ref.nn[0].weight, conv.lin1.weight), (ref.nn[2].weight, conv.lin2.weight)]
        out = _linear(native.lin_out)
        pairs.append((out.weight, native.lin_out.weight))
        return out(h), pairs
    last = len(native.convs) - 1
    convs = [_gcn_conv(c, i == last) for i, c in enumerate(native.convs)]
    pairs = [(r.lin.weight, c.weight) for r, c in zip(convs, native.convs, strict=True)]
    h = x
    for i, ref in enumerate(convs[:-1]):
        new = act(ref(h, adj))
        h = new + h if name == "gcn_res" and i > 0 else new
    return convs[-1](h, full), pairs


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize(("name", "act", "kw"), [
    ("gcn", F.relu, {}),              # depth 4: the seed-major path
    ("gcn", torch.tanh, {"activation": "tanh"}),  # node-major at any depth
    ("gcn_res", F.relu, {}),
    ("gin", F.relu, {"train_eps": True}),
])
def test_one_seed_equals_pyg_on_the_materialized_complete_graphs(float64, name, act, kw, depth):
    x, edge_index, instance = union()
    model = one_seed(name, depth, instance, **kw)
    if name == "gin":
        with torch.no_grad():
            for i, conv in enumerate(model.native.convs):
                conv.eps.fill_(0.3 + 0.2 * i)  # nonzero: the self term and the loop both show
    adj = normalized_adjacency(edge_index, x.shape[0]).to(torch.float64)
    xg = x.clone().requires_grad_()
    out = model(xg, adj)
    xr = x.clone().requires_grad_()
    expected, pairs = reference(name, model, xr, edge_index, adj, instance, act)
    close(out, expected)
    probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * probe).sum().backward()
    (expected * probe).sum().backward()
    close(xg.grad, xr.grad)
    for ref, ours in pairs:
        close(ours.grad[0], ref.grad.t())
    # the readout-free check that the last layer really is per instance: nodes of one instance
    # share the gcn logits (mean), and without FA they do not
    if name != "gin":
        for t in range(len(SIZES)):
            rows = out[instance == t]
            close(rows, rows[:1].expand_as(rows))
    plain = one_seed(name, depth, instance, fa=False, **kw)
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(x, adj), out, atol=1e-3)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_three_seeds_equal_three_one_seed_models(float64, name, depth):
    """S = 3 (seeds 3, 5, 7) in one model: the logits and every parameter's gradient of seed s
    are those of the S = 1 model of seed s (the complete graph's block-diagonal copies of the
    seed-major path keep the seeds apart)."""
    x, edge_index, instance = union()
    adj = normalized_adjacency(edge_index, x.shape[0]).to(torch.float64)
    from gdepth.nn.kernels import StackedInput
    from gdepth.nn.propagation import Propagation

    def run(seeds):
        model = models.build_seeded(cfg(name), None, depth, IN, OUT, seeds=list(seeds))
        models.set_instances(model, instance)
        out = model(StackedInput(x), Propagation(adj))
        weights = torch.randn(out.shape[0], 1, OUT, generator=torch.Generator().manual_seed(2))
        (out * weights).sum().backward()
        return model, out

    stacked, out = run(SEEDS)
    for s, seed in enumerate(SEEDS):
        single, one = run([seed])
        close(out[:, s], one[:, 0])
        for (key, p), q in zip(stacked.named_parameters(), single.parameters(), strict=True):
            close(p.grad[s:s + 1], q.grad), key


def _transfer(name: str, r: int):
    from gdepth import data
    from gdepth.cell.graphs import prepare

    ds = config.dataset(name, split="random_per_class", task_range=r, num_graphs=10,
                        train_per_class=1, val_per_class=1)
    g, adj, _ = prepare(data.load(ds, None, seed=0), ds, torch.device("cpu"))
    return g, adj


@pytest.mark.parametrize("name", NAMES)
def test_the_readout_sees_the_source_beyond_the_depth_only_when_fully_adjacent(float64, name):
    """transfer_ring, r = 4, depth 2 (< r): perturbing the source's feature changes its readout's
    logits with the fully-adjacent last layer and leaves them exactly unchanged without it; the
    other instances' readouts never change (the complete graph stays inside an instance)."""
    g, adj = _transfer("transfer_ring", 4)
    readouts = (g.y >= 0).nonzero().flatten()
    source = int(readouts[0]) + 4  # node r of instance 0: its one-hot label
    x = g.x.to_dense().to(torch.float64) if g.x.is_sparse else g.x.to(torch.float64)
    moved = x.clone()
    moved[source] = torch.roll(moved[source], 1)  # another class's one-hot
    adj = adj.to(torch.float64)
    for fa in (True, False):
        torch.manual_seed(0)
        model = models.build(cfg(name, fa), None, 2, x.shape[1], g.num_classes).eval()
        models.set_instances(model, g.instance)
        with torch.no_grad():
            before, after = model(x, adj)[readouts], model(moved, adj)[readouts]
        close(after[1:], before[1:])
        changed = float((after[0] - before[0]).abs().max())
        if fa:
            assert changed > 1e-6, f"{name}: the readout does not see its source"
        else:
            assert changed == 0.0, f"{name}: the source is {4} hops away, beyond 2 layers"


def test_refusals_are_one_line_and_name_the_choices():
    x, edge_index, instance = union()
    with pytest.raises(ValueError) as err:
        models.build(cfg("gat", heads=2), None, 2, IN, OUT)
    assert str(err.value) == ("model.fully_adjacent_last=true: model gat has no fully-adjacent "
                              "last layer; models with one: gcn, gcn_res, gin, bottleneck")
    with pytest.raises(ValueError, match=r"^model.fully_adjacent_last=true with model.skip="
                                         r"residual: .*use model.skip=none$"):
        models.build(cfg("gcn", skip="residual"), None, 2, IN, OUT)
    with pytest.raises(ValueError, match=r"model MLP takes no instance ids; models with a "
                                         r"fully-adjacent last layer on them: gcn, gcn_res, gin"):
        models.set_instances(models.build(config.model("mlp"), None, 2, IN, OUT), instance)
    unset = models.build(cfg("gcn"), None, 2, IN, OUT)
    adj = normalized_adjacency(edge_index, x.shape[0])
    with pytest.raises(ValueError, match=r"has no node -> instance ids; call gdepth.models."
                                         r"set_instances"):
        unset(x.float(), adj)
    models.set_instances(unset, instance[:-1])
    with pytest.raises(ValueError, match=r"15 instance ids for 16 nodes; set the ids of th"):
        unset(x.float(), adj)


def _cell(tmp_path, *overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    from gdepth import cell
    from gdepth import compose as gdepth_compose
    from gdepth.paths import config_dir

    gdepth_compose.register()  # the schemas the YAML options name
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["name=fa", "progress=false", "threads=1", "seeds=2",
                                           "train.epochs=3", "model.fully_adjacent_last=true",
                                           *overrides])
    return cell.run_cell(cfg, tmp_path)


def test_a_cell_on_a_dataset_without_instances_fails_naming_the_ones_with_them(tmp_path):
    """The real cell path (composed config → graph trainer → engine.build): a ``failed``
    record with the one-line reason; on a transfer task the same cell runs."""
    record = _cell(tmp_path, "dataset=csbm", "model=gcn")
    assert record["status"] == "failed"
    assert record["error"] == (
        "ValueError: model.fully_adjacent_last=true needs each node's graph (instance) id; "
        "dataset csbm has none; datasets with them: transfer_ring, transfer_crossed_ring, "
        "transfer_clique_path")
    ok = _cell(tmp_path, "dataset=transfer_ring", "dataset.num_graphs=50",
               "dataset.train_per_class=4", "dataset.val_per_class=2", "model=gin", "depth=2")
    assert ok["status"] == "ok" and ok["config"]["model"]["fully_adjacent_last"] is True
