"""gdepth.models.bottleneck_trees and gdepth.tree_levels: Alon & Yahav's model on trees by level
equals the model's own forward (PyG's layers, message passing on the batch's edge list)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace as NS

import pytest
import torch

from gdepth import config, models, train_trees, tree_batch, tree_levels
from gdepth.data import tree_match as tm
from gdepth.models import bottleneck_trees as bt
from gdepth.models import heap_level
from gdepth.models.adjacency import normalized_adjacency
from gdepth.models.pooled_batch_norm import pooled_batch_norm

torch.set_num_threads(1)
EPS = torch.finfo(torch.float32).eps
HIDDEN = 32


def trees(r: int, sparse: bool = False) -> NS:
    """The tree_match graph of depth ``r`` as cell.prepare gives it (edges child -> parent, the
    sym-normalized adjacency with self loops; features sparse CSR where ``sparse``)."""
    d = tm.tree_match(r)
    ei = d.edge_index[:, d.edge_index[0] != d.edge_index[1]]
    return NS(x=d.x.to_sparse_csr() if sparse else d.x, y=d.y, num_classes=d.num_classes,
              num_nodes=d.num_nodes, adj=normalized_adjacency(ei, d.num_nodes),
              train_mask=d.train_mask, val_mask=d.train_mask, test_mask=d.test_mask,
              split="paper", dense_x=d.x)


def build(conv: str, depth: int, g: NS, **keys) -> torch.nn.Module:
    torch.manual_seed(0)
    return models.build(config.model("bottleneck", conv=conv, **keys), None, depth,
                        g.dense_x.size(1), g.num_classes)


def general(model: torch.nn.Module, g: NS, ptr: torch.Tensor):
    return lambda t: train_trees._forward(model, tree_batch.tree_batch(g.x, g.adj, ptr, t))


def tolerance(model: torch.nn.Module, nodes: int) -> float:
    """Relative tolerance of a reordered float32 computation: every layer's outputs are sums
    the two paths add in another order, of at most ``3 · hidden`` products (the matrix product
    after a three-term aggregation; GCN's weight applied before or after it) or, for
    BatchNorm's statistics, ``nodes`` terms; the worst-case relative error of such a sum is
    ``terms · eps`` (Higham, Accuracy and Stability of Numerical Algorithms, 2002, §4.2), and it
    adds up over the layers (the input layer, each graph layer, the readout)."""
    terms = max(3 * HIDDEN, nodes if model.conv_name == "gin" else 0)
    return (len(model.convs) + 2) * terms * EPS


@pytest.mark.parametrize("conv", ["gcn", "gin", "gat", "ggnn"])
@pytest.mark.parametrize(("r", "sparse"), [(2, False), (3, True)])
@pytest.mark.parametrize("training", [True, False])
def test_levels_equal_the_pyg_layers_logits_and_gradients(conv, r, sparse, training):
    """Root logits and every parameter's gradient equal those of Bottleneck.forward on the
    block-diagonal batch, for depths below, at and above r + 1, repeated trees included
    (GIN in training mode: BatchNorm's statistics over every node of the batch)."""
    g = trees(r, sparse)
    ptr = tree_batch.tree_ptr(g)
    picked = torch.tensor([3, 0, 3, 5, 7, 1, 2, 9, 11, 4, 40, 41])
    target = g.y[ptr[picked]]
    for depth in (1, r, r + 1, r + 3):
        model = build(conv, depth, g)
        with torch.no_grad():  # away from the initialization's symmetries (zero biases)
            for p in model.parameters():
                p.normal_(std=0.5)
        fast, why = tree_levels.fast_forward(model, g, g.adj, ptr)
        assert why is None
        model.train(training)
        results = []
        for forward in (fast, general(model, g, ptr)):
            state = {k: v.clone() for k, v in model.state_dict().items()}
            model.zero_grad()
            logits = forward(picked)
            torch.nn.functional.cross_entropy(logits, target).backward()
            results.append({"logits": [logits.detach()],
                            "gradients": [p.grad.clone() for p in model.parameters()],
                            "buffers": [b.clone().float() for b in model.buffers()]})
            model.load_state_dict(state)
        tol = tolerance(model, len(picked) * (2 ** (r + 1) - 1))
        ours, theirs = results
        for group, tensors in theirs.items():  # the error bound scales with the group's size
            scale = max((float(t.abs().max()) for t in tensors), default=0.0) or 1.0
            for a, b in zip(ours[group], tensors, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=tol * scale)


def test_pooled_batch_norm_equals_batch_norm_on_the_repeated_rows():
    """A tail row standing for w nodes: BatchNorm1d on the rows repeated w times (training
    mode), its gradients summed over the copies, the same running statistics."""
    gen = torch.Generator().manual_seed(0)
    head = (torch.randn(6, 4, generator=gen) * 3 + 2).requires_grad_()
    tail = torch.randn(3, 4, generator=gen).requires_grad_()
    w = torch.tensor([4.0, 1.0, 2.0])
    ours, theirs = torch.nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    with torch.no_grad():
        for bn in (ours, theirs):
            bn.weight.copy_(torch.tensor([0.5, -1.0, 2.0, 1.5]))
            bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3, 0.0]))
    y_head, y_tail = pooled_batch_norm(ours, head, tail, w)
    rows = torch.cat([head, tail.repeat_interleave(w.long(), 0)])
    y = theirs(rows)
    g = torch.randn(len(rows), 4, generator=gen)
    g_tail = torch.stack([part.sum(0) for part in g[6:].split(w.long().tolist())])
    mine = torch.autograd.grad((y_head * g[:6]).sum() + (y_tail * g_tail).sum(),
                               [head, tail, ours.weight, ours.bias])
    ref = torch.autograd.grad((y * g).sum(), [head, tail, theirs.weight, theirs.bias])
    # 13 nodes: sums of at most 13 terms per statistic, each layer of it float32 (Higham §4.2)
    tol = 13 * 4 * EPS
    torch.testing.assert_close(y_head, y[:6], rtol=tol, atol=tol)
    torch.testing.assert_close(y_tail, y[[6, 10, 11]], rtol=tol, atol=tol)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * float(b.abs().max()))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), rtol=tol, atol=tol)


def test_shared_levels_and_tables_are_what_the_task_holds():
    """Tree-NeighborsMatch, r = 3: inner levels one zero row (the input layer's bias), the
    roots a table of the L keys, the leaves of the L² (position, value) pairs."""
    g = trees(3, sparse=True)
    ptr = tree_batch.tree_ptr(g)
    n, edges, leaves = tm.tree_structure(3)
    order = tree_levels.heap_order(edges, n)
    assert order[7:].tolist() == leaves  # heap order: the leaves last, left to right
    assert [order[(p - 1) // 2].item() for p in range(1, n)] == [
        dict((c, p) for c, p in edges)[order[p].item()] for p in range(1, n)]
    inputs = tree_levels.TreeInputs.build(g.x, ptr, 3, order)
    assert [None if rows is None else len(rows) for rows in inputs.rows] == [8, 1, 1, 64]
    assert float(inputs.rows[1].abs().sum()) == 0.0
    model = build("gcn", 4, g)
    levels = inputs.levels(model, torch.tensor([0, 5]))
    assert [lv.kind for lv in levels] == [heap_level.TABLE, heap_level.SHARED,
                                          heap_level.SHARED, heap_level.TABLE]
    assert levels[1].value is levels[2].value  # one row, computed once
    torch.testing.assert_close(levels[1].value[0, 0], model.lin_in.bias)
    # pruning: after layer k of L = 4 only depths <= 4 - k are computed
    assert [bt.top_level(model, 3, k) for k in range(5)] == [3, 3, 2, 1, 0]
    assert bt.top_level(build("gin", 4, g).train(), 3, 2) == 3  # BatchNorm: every level


def test_small_batches_of_a_batch_norm_model_go_by_message_passing():
    g = trees(2)
    gin, gcn = build("gin", 3, g).train(), build("gcn", 3, g).train()
    small = tree_levels.SMALL_BATCH_NODES - 1
    assert not tree_levels.pays(gin, small) and tree_levels.pays(gin, small + 1)
    assert tree_levels.pays(gcn, 1) and tree_levels.pays(gin.eval(), 1)


def test_other_models_and_graphs_take_the_general_path():
    g = trees(2)
    ptr = tree_batch.tree_ptr(g)
    for keys, why in (({"fully_adjacent_last": True}, "fully_adjacent_last"),
                      ({"dropout": 0.1}, "dropout")):
        assert tree_levels.fast_forward(build("gcn", 3, g, **keys), g, g.adj, ptr)[1].startswith(
            why)
    gcn = models.build(config.model("gcn"), config.norm("none"), 2, 8, 4)
    assert "not the bottleneck model" in tree_levels.fast_forward(gcn, g, g.adj, ptr)[1]
    undirected = torch.cat([g.adj.to_sparse_coo().indices(),
                            g.adj.to_sparse_coo().indices().flip(0)], 1)
    both = normalized_adjacency(undirected, g.num_nodes)
    assert "child -> parent" in tree_levels.fast_forward(build("gcn", 3, g), g, both, ptr)[1]
    with pytest.raises(ValueError, match="not a complete binary tree"):
        tree_levels.heap_order([(1, 0), (2, 0), (3, 1)], 4)


LINE = re.compile(r"^epoch (\d+) \(\d+ passes\): train acc ([0-9.]+)")


@pytest.mark.parametrize("conv", ["gcn", "gin"])
def test_fit_trees_follows_the_same_trajectory_on_both_paths(conv, caplog, monkeypatch):
    """r = 2, batches of 16 trees, two per optimizer step, 3 epochs of 2 passes (Adam lr 1e-2):
    the same running train accuracy every epoch, the same logits after every epoch up to
    rounding grown over the steps, and the same result (GIN's small batches by levels too)."""
    monkeypatch.setattr(tree_levels, "SMALL_BATCH_NODES", 0)
    g = trees(2)
    ptr = tree_batch.tree_ptr(g)
    cfg = config.make(config.TrainConfig, name="t", selection="best_val_acc",
                      lr_schedule="plateau", optimizer="adam", lr=0.01, weight_decay=0.0,
                      epochs=3, patience=10, min_delta=0.0)
    runs = []
    for fast in (True, False):
        model = build(conv, 3, g)
        seen = []

        def snapshot(epoch, model=model, seen=seen):
            # in training mode (its running statistics put back): GIN's biases before
            # BatchNorm get zero gradients up to rounding, which Adam turns into steps of lr
            # either way; batch statistics cancel them, running ones would not
            state, mode = {k: v.clone() for k, v in model.state_dict().items()}, model.training
            model.train()
            with torch.no_grad():
                seen.append(general(model, g, ptr)(torch.arange(len(ptr) - 1)))
            model.load_state_dict(state)
            model.train(mode)

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="gdepth"):
            result = train_trees.fit_trees(model, g, g.adj, cfg, 7,
                                           tree_batch.Batching(16, 2, 2), on_epoch=snapshot,
                                           fast=fast)
        accs = [float(m.group(2)) for rec in caplog.records
                if (m := LINE.match(rec.getMessage()))]
        runs.append((result, accs, seen))
    (ours, our_accs, our_logits), (theirs, their_accs, their_logits) = runs
    assert len(our_accs) == 3 and our_accs == their_accs
    assert (ours.train_acc, ours.test_acc, ours.selected_epoch) == (
        theirs.train_acc, theirs.test_acc, theirs.selected_epoch)
    assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-4)
    # each optimizer step adds its rounding (the tolerance above, on a batch of 16 trees) and
    # carries the earlier ones: 5 steps per epoch (10 batches of 2 · 76 tree instances)
    step_tol = tolerance(build(conv, 3, g), 16 * 7)
    for epoch, (a, b) in enumerate(zip(our_logits, their_logits, strict=True), 1):
        torch.testing.assert_close(a, b, rtol=0, atol=5 * epoch * step_tol * float(b.abs().max()))


@pytest.mark.parametrize("conv", ["gcn", "gin", "gat", "ggnn"])
@pytest.mark.parametrize("r", [2, 3, 4])
def test_tree_rows_counts_the_rows_the_layers_compute(conv, r, monkeypatch):
    """bt.tree_rows (the work ratio benchmarks/tree_speed.py reports) equals the node rows the
    level-wise layers compute one by one on a real batch (training mode: GIN keeps every level),
    and message passing's count is the batch's nodes times the layers."""
    g = trees(r)
    ptr = tree_batch.tree_ptr(g)
    model = build(conv, r + 1, g)
    model.train()
    counted = []
    real = bt.layer

    def counting(*args, **kwargs):
        out = real(*args, **kwargs)
        counted.append(sum(lv.value.shape[:-1].numel() for lv in out if lv.kind == heap_level.TREE))
        return out

    monkeypatch.setattr(bt, "layer", counting)
    forward, _ = tree_levels.fast_forward(model, g, g.adj, ptr)
    batch = torch.arange(10)
    forward(batch)
    levels, passing = bt.tree_rows(r, r + 1, bt.keeps_every_level(model))
    assert len(counted) == r + 1 and sum(counted) == len(batch) * levels
    assert passing * len(batch) == (r + 1) * int(ptr[10])
