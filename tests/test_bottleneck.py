"""gdepth.models.bottleneck and gdepth.train_trees: Alon & Yahav's model and tree training."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gdepth import config, models, train_trees, tree_batch
from gdepth.cli import config_dir
from gdepth.data import tree_match as tm
from gdepth.models.adjacency import normalized_adjacency

torch.set_num_threads(1)


def composed(*overrides: str):
    """``train=alon2021`` (and the bottleneck model) composed through Hydra."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=["model=bottleneck", "train=alon2021", "name=x",
                                            *overrides])


def preset(*overrides: str):
    """:func:`composed` as the cell types it (gdepth.config.typed)."""
    cfg = composed(*overrides)
    return config.typed(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def trees(r: int, count: int | None = None) -> NS:
    """The tree_match graph of depth ``r`` (its first ``count`` trees) as cell.prepare gives
    it: edges child -> parent, the sym-normalized adjacency with self loops."""
    d = tm.tree_match(r)
    n = 2 ** (r + 1) - 1
    keep = d.num_nodes if count is None else count * n
    src, dst = d.edge_index
    ei = d.edge_index[:, (src != dst) & (src < keep) & (dst < keep)]
    masks = {k: getattr(d, k)[:keep] for k in ("train_mask", "test_mask")}
    return NS(x=d.x[:keep], y=d.y[:keep], num_classes=d.num_classes, num_nodes=keep,
              num_features=d.x.size(1), edge_index=ei, adj=normalized_adjacency(ei, keep),
              val_mask=masks["train_mask"], split="paper", **masks)


def build(depth: int, in_dim: int, out_dim: int, **keys) -> torch.nn.Module:
    return models.build(config.group("model", name="bottleneck", **keys), None, depth, in_dim,
                        out_dim)


def test_one_layer_equals_hand_forward_with_the_same_weights():
    g = trees(2, count=2)
    torch.manual_seed(0)
    model = build(1, g.num_features, 4)
    torch.nn.init.normal_(model.norms[0].weight)
    torch.nn.init.normal_(model.norms[0].bias)
    torch.nn.init.normal_(model.convs[0].bias)
    a = torch.zeros(g.num_nodes, g.num_nodes)
    a[g.edge_index[1], g.edge_index[0]] = 1.0  # a[target, source]: child -> parent
    a += torch.eye(g.num_nodes)
    d = a.sum(1).pow(-0.5)  # in-degree with the self loop (PyG gcn_norm)
    conv, norm = model.convs[0], model.norms[0]
    h0 = g.x @ model.lin_in.weight.T + model.lin_in.bias
    new = torch.relu((d[:, None] * a * d[None, :]) @ (h0 @ conv.lin.weight.T) + conv.bias)
    h1 = F.layer_norm(h0 + new, (32,), norm.weight, norm.bias, eps=1e-5)
    torch.testing.assert_close(model(g.x, g.adj), h1 @ model.lin_out.weight.T)
    assert model.lin_out.bias is None and models.count_parameters(model) == (
        g.num_features * 32 + 32 + 32 * 32 + 32 + 2 * 32 + 32 * 4)


def test_fully_adjacent_last_layer_links_every_node_to_its_root_only():
    g = trees(2, count=3)
    ptr = tree_batch.tree_ptr(g)
    x, adj, root_of, roots = tree_batch.tree_batch(g.x, g.adj, ptr, torch.tensor([2, 0]))
    assert roots.tolist() == [0, 7] and root_of.tolist() == [0] * 7 + [7] * 7
    fa = build(1, g.num_features, 4, fully_adjacent_last=True).fully_adjacent_edges(14, root_of)
    assert fa.tolist() == [list(range(14)), [0] * 7 + [7] * 7]
    # depth 1, FA: a root sees every node of its tree (leaves 2 hops away too), nothing else
    torch.manual_seed(0)
    model = build(1, g.num_features, 4, fully_adjacent_last=True).eval()
    x = x.clone().requires_grad_(True)
    out = model(x, adj, root_of=root_of)
    grad_root0 = torch.autograd.grad(out[0].sum(), x, retain_graph=True)[0].abs().sum(1)
    assert bool((grad_root0[:7] > 0).all()) and bool((grad_root0[7:] == 0).all())
    inner = torch.autograd.grad(out[1].sum(), x)[0].abs().sum(1)  # node 1: itself only
    assert inner.nonzero().flatten().tolist() == [1]
    with pytest.raises(ValueError, match="needs root_of"):
        model(x, adj)


@pytest.mark.parametrize("sparse", [False, True])
def test_tree_batch_is_the_block_diagonal_restriction(sparse):
    g = trees(3, count=5)
    ptr = tree_batch.tree_ptr(g)
    picked = torch.tensor([3, 0, 3])  # repeats allowed, as in their repeated DataLoader
    x = g.x.to_sparse_csr() if sparse else g.x
    xb, adj, root_of, roots = tree_batch.tree_batch(x, g.adj, ptr, picked)
    nodes = torch.cat([torch.arange(int(ptr[t]), int(ptr[t + 1])) for t in picked])
    dense = g.adj.to_dense()
    expected = torch.block_diag(*[dense[ptr[t]:ptr[t + 1], ptr[t]:ptr[t + 1]] for t in picked])
    torch.testing.assert_close(adj.to_dense(), expected, atol=0, rtol=0)
    torch.testing.assert_close(xb.to_dense(), g.x[nodes], atol=0, rtol=0)
    assert roots.tolist() == [0, 15, 30] and torch.equal(root_of, roots.repeat_interleave(15))
    tree_batch.check_within_trees(g.adj, ptr)
    with pytest.raises(ValueError, match="edges between trees"):
        bad = torch.cat([g.edge_index, torch.tensor([[20], [0]])], 1)
        tree_batch.check_within_trees(normalized_adjacency(bad, g.num_nodes), ptr)


@pytest.mark.parametrize("conv", ["gcn", "gin", "gat", "ggnn"])
def test_every_conv_builds_forwards_and_backpropagates(conv):
    g = trees(2, count=4)
    model = build(3, g.num_features, 4, conv=conv)
    out = model(g.x, g.adj)
    assert out.shape == (g.num_nodes, 4) and torch.isfinite(out).all()
    out.sum().backward()
    assert model.lin_in.weight.grad.abs().sum() > 0
    assert "depth L = number of graph layers" in models.convention("bottleneck")


def test_invalid_choices_fail_in_one_line_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"^unknown bottleneck conv 'sage'; valid: gat, gcn, ggnn, "
                                         r"gin$"):
        build(2, 8, 4, conv="sage")
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        build(0, 8, 4)
    with pytest.raises(ValueError, match="takes norm=none"):
        models.build(config.group("model", name="bottleneck"),
                     config.norm("pairnorm"), 2, 8, 4)
    with pytest.raises(ValueError, match="'relu6'; valid: elu, identity, relu, tanh"):
        build(2, 8, 4, activation="relu6")
    bad = config.make(config.TrainConfig, name="t", tree_batches={"all": {"r2": {"batchsize": 8}}})
    with pytest.raises(ValueError, match="'batchsize'; valid: accum_grad, batch_size, passes"):
        tree_batch.batching(bad, "gcn", 2)
    cfg = preset("dataset=tree_match", "train.selection=min_val_loss")
    g = trees(2, count=2)
    with pytest.raises(ValueError, match="valid: best_val_acc"):
        train_trees.fit_trees(build(3, 8, 4), g, g.adj, cfg.train, 0)


@pytest.mark.parametrize(("conv", "r", "expected"), [
    ("gcn", 2, (64, 1, 1000)), ("gat", 3, (64, 1, 100)), ("gcn", 5, (1024, 1, 100)),
    ("gcn", 7, (2048, 1, 100)), ("gat", 8, (1024, 2, 100)), ("gin", 7, (1024, 2, 100)),
    ("ggnn", 8, (512, 4, 100)), ("gin", 4, (1024, 1, 100)),
])
def test_preset_batch_sizes_are_the_run_scripts(conv, r, expected):
    cfg = preset(f"model.conv={conv}")
    assert tuple(vars(tree_batch.batching(cfg.train, conv, r)).values()) == expected
    assert (cfg.train.lr, cfg.train.patience, cfg.train.stop_at, cfg.train.max_passes) == (
        0.001, 20, 1.0, 50000)
    assert (cfg.model.hidden, cfg.model.dropout, cfg.model.conv) == (32, 0.0, conv)


def _fit(r: int, passes: int, epochs: int, lr: float = 0.001) -> tuple[Any, dict]:
    """GCN, L = r + 1, trained by the alon2021 preset (its batch size for r) with epochs of
    ``passes`` passes and learning rate ``lr``."""
    cfg = preset("dataset=tree_match", f"dataset.depth_r={r}", f"train.epochs={epochs}",
                 f"train.lr={lr}")
    g = trees(r)
    torch.manual_seed(0)
    model = build(r + 1, g.num_features, g.num_classes)
    b = tree_batch.batching(cfg.train, "gcn", r)
    b = tree_batch.Batching(b.batch_size, b.accum_grad, passes)
    kept: dict = {}
    return train_trees.fit_trees(model, g, g.adj, cfg.train, 0, b, keep_state=kept), kept


def test_r2_gcn_reaches_train_accuracy_one_fast():
    """r = 2, GCN, batch 64 as the authors, but lr 0.01 and 100-pass epochs (about 600 steps,
    under 10 s alone on one core; their lr 1e-3 takes ~3000 passes: the slow test below)."""
    result, kept = _fit(2, passes=100, epochs=20, lr=0.01)
    assert result.status == "ok" and result.train_acc == 1.0
    assert result.selected_epoch == result.epochs_run  # stopped at 1.0
    assert "state" in kept and result.val_acc == result.train_acc


@pytest.mark.slow
def test_r2_gcn_reaches_train_accuracy_one_with_the_authors_protocol():
    """r = 2 exactly as the authors: Adam 1e-3, batch 64, 1000-pass epochs (1.0 at epoch 3 in
    our run, ~15 s on one core)."""
    result, _ = _fit(2, passes=1000, epochs=10)
    assert result.train_acc == 1.0


@pytest.mark.slow
def test_r3_gcn_fits_the_training_trees_with_the_authors_protocol():
    """r = 3 as the authors (Adam 1e-3, batch 64, 100-pass epochs; ~40 CPU-s per epoch).
    Our sweep: running train accuracy 0.415, 0.767, 0.956, 0.987, 0.996, 0.998, 0.998, 0.999
    over epochs 1-8 (published: 1.0); the bar is 0.99 within 8 epochs."""
    result, _ = _fit(3, passes=100, epochs=8)
    assert result.train_acc >= 0.99


@pytest.mark.parametrize("depth", [1, 2, 8, 64])
def test_yaml_builds_and_forwards_on_a_generic_graph(composed_models, depth):
    """Not only trees: on any graph (here random, undirected) every node is read out."""
    cfg = composed_models["bottleneck"]
    gen = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 30, (2, 80), generator=gen)
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    x = torch.randn(30, 6, generator=gen)
    model = models.build(cfg, config.norm("none"), depth, 6, 3)
    out = model(x, normalized_adjacency(edge_index, 30))
    assert out.shape == (30, 3) and torch.isfinite(out).all() and len(model.convs) == depth


def test_run_cell_trains_tree_match_on_tree_batches(tmp_path):
    """cell.run_cell routes dataset=tree_match to fit_trees and records the batching."""
    from gdepth import cell

    cfg = composed("dataset=tree_match", "dataset.depth_r=2", "depth=3", "seeds=1", "threads=1",
                 "progress=false", "device=cpu", "train.epochs=2",
                 "+train.tree_batches.gcn.r2.batch_size=32",  # a conv's entry wins over "all"
                 "+train.tree_batches.gcn.r2.passes_per_epoch=2")
    record = cell.run_cell(cfg, tmp_path)
    assert record["status"] == "ok", record.get("error")
    assert record["tree_batching"] == {"batch_size": 32, "accum_grad": 1, "passes_per_epoch": 2}
    seed = record["seeds"][0]
    assert seed["epochs_run"] <= 2 and 0.0 <= seed["train_acc"] <= 1.0
    assert seed["val_acc"] == seed["train_acc"]
    assert "r + 1" in record["convention"]
