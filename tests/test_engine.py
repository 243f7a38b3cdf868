"""Seed-batched engine = S separate loop runs, given the same initial weights and dropout masks.

Each case builds S loop models (``torch.manual_seed(s)`` then ``models.build``), stacks copies of
their parameters into one :class:`StackedGCN`, and feeds both paths the same dropout masks: one
generator per seed, drawn in the same order (the loop models' ``common.dropout`` is patched to
draw from it, the stacked model gets the same draws through its ``mask_fn``). Then losses and
logits agree epoch by epoch, and ``fit_batched`` reports what ``train.fit`` reports.

Tolerances. The claim is that both paths compute the same function; they sum in other orders
(one SpMM for all seeds vs one per seed, ``bmm`` vs ``linear``, dense vs sparse Â), so in float32
they differ by rounding that depends on the CPU's kernels (a fixed ``atol=1e-5`` held on one CPU
and failed on another: 12 of 600 IncepGCN logits off by 1.9e-5). The comparisons of whole
trainings therefore run in float64 (:func:`float64`), where the same reorderings cost about
eps64 = 2.2e-16 per operation: :data:`TOL64` bounds that with a counted margin and sits 1000x
below one float32 rounding (eps32 = 1.2e-7), so an engine that is wrong anywhere, even by a
float32-sized error, fails (checked: every product scaled by 1 + 1.2e-7 fails 46 of the 54
step cases; the 8 left are SGC / SIGN, which precompute their hops without it, and JKNet with
PairNorm, which normalizes a scale away).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gdepth import data, engine, models, train
from gdepth.engine import StackedGCN, fit_batched
from gdepth.models import common
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import Propagation, StackedInput, propagation

torch.set_num_threads(1)
SEEDS = 3
# float64 comparisons of whole trainings: |batched - loop| <= TOL64 * max(1, |values|). A sum of
# n rounded terms is off by at most n · eps64 times its scale; a value here goes through at most
# 8 convolutions (IncepGCN depth 5) of inner products over <= 48 terms (40 features, or ~7
# neighbours plus self) and their backward, 5 times (5 steps): K = 2 · 8 · 48 · 5 ≈ 4·10³, so
# K · eps64 ≈ 1e-12 of the values' scale (logits and losses are O(1) here). Adam (lr 0.1) and
# the norms' divisions feed that back; a factor 100 for it gives TOL64 = 1e-10. Measured worst
# case over the 54 step cases (1 and 2 threads, sparse and dense Â): 6.7e-15 (GCNII), and over
# the fits 9e-16.
TOL64 = 1e-10


class SeedMasks:
    """One dropout-mask generator per seed: the k-th draw of seed s is the same in both paths."""

    def __init__(self, seeds: int) -> None:
        self.gens = [torch.Generator().manual_seed(1000 + s) for s in range(seeds)]
        self.current = 0  # the loop path's seed

    def draw(self, seed: int, shape: tuple[int, ...], p: float) -> torch.Tensor:
        keep = torch.rand(shape, generator=self.gens[seed]) >= p
        return keep.float() / (1.0 - p)

    def stacked(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        return torch.stack([self.draw(s, shape, p) for s in range(len(self.gens))])

    def loop_dropout(self, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
        if not training or p == 0.0:
            return x
        if x.layout == torch.sparse_csr:
            values = x.values() * self.draw(self.current, tuple(x.values().shape), p)
            return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.size())
        return x * self.draw(self.current, tuple(x.shape), p)


@pytest.fixture(scope="module")
def graphs():
    """A small CSBM graph, one random split per seed; and the same with sparse features."""
    cfg = OmegaConf.create({"name": "csbm", "split": "random_per_class", "num_nodes": 200,
                            "num_classes": 3, "avg_degree": 6.0, "homophily": 0.8, "snr": 1.0,
                            "num_features": 40, "graph_seed": 0})
    loaded = [data.load(cfg, OmegaConf.create({"root": None, "mirror": None}), s)
              for s in range(SEEDS)]
    x = loaded[0].x
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        sparse_x = torch.where(x > 1.6, x, torch.zeros_like(x)).to_sparse_csr()  # ~5 % dense
    dense = [replace(g, x=x) for g in loaded]
    sparse = [replace(g, x=sparse_x) for g in loaded]
    return {"dense": dense, "sparse": sparse,
            "adj": normalized_adjacency(loaded[0].edge_index, loaded[0].num_nodes)}


@pytest.fixture(scope="module")
def graphs64(graphs):
    """``graphs`` in float64: the same features (one tensor shared by the seeds, as the cell
    shares it) and adjacency, converted."""
    out = {"adj": graphs["adj"].to(torch.float64)}
    for kind in ("dense", "sparse"):
        x = graphs[kind][0].x.to(torch.float64)
        out[kind] = [replace(g, x=x) for g in graphs[kind]]
    return out


def _assert_close64(got, want, what=""):
    """``got`` equals ``want`` to :data:`TOL64` relative to the values' scale (at least 1)."""
    assert got.dtype == want.dtype == torch.float64
    scale = max(1.0, float(want.abs().max()))
    err = float((got - want).abs().max())
    assert err <= TOL64 * scale, f"{what}: max |diff| {err:.3g} > {TOL64 * scale:.3g}"
    return err / scale


def _loop_models(graph, name, norm, depth, dropout_layers="all"):
    built = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        built.append(models.build(
            OmegaConf.create({"name": name, "hidden": 8, "dropout": 0.5,
                              "dropout_layers": dropout_layers}),
            OmegaConf.create(norm), depth, graph.num_features, graph.num_classes))
    return built


def _train_cfg(**kw):
    base = {"optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 12,
            "patience": None, "selection": "best_val_acc"}
    return OmegaConf.create({**base, **kw})


CASES = [
    # norm none + ReLU: hidden layers seed-major (batched.seed_major_layer)
    ("gcn", {"name": "none"}, 3, "all", "dense"),
    ("gcn_res", {"name": "none"}, 5, "all", "sparse"),
    ("gcn_res", {"name": "none"}, 4, "io", "dense"),
    ("gcn", {"name": "none"}, 3, "all", "sparse"),
    ("gcn_res", {"name": "nodenorm", "variant": "n"}, 4, "io", "sparse"),
    ("gcn_res", {"name": "pairnorm", "mode": "PN"}, 4, "all", "dense"),
    ("gcn", {"name": "pairnorm", "mode": "PN-SI"}, 3, "all", "sparse"),
    ("gcn", {"name": "none"}, 4, "hidden", "sparse"),  # DropEdge's placement: X undropped
    ("gcn_res", {"name": "pairnorm", "mode": "PN-SCS"}, 3, "io", "dense"),
    # SGD here: the bias of a conv followed by BatchNorm has a gradient that is exactly 0 in
    # exact arithmetic; Adam divides its float noise (1e-9) by its own size and moves the bias
    # by a full lr step in a random direction, in either engine (and between two loop runs
    # with another summation order), which the eval-mode output (running statistics) shows.
    ("gcn_res", {"name": "batchnorm"}, 4, "all", "sparse"),
    # APPNP: a 2-layer MLP, then K weightless propagation steps (one SpMM for all seeds)
    ("appnp", {"name": "none"}, 5, "all", "dense"),
    ("appnp", {"name": "nodenorm", "variant": "n"}, 10, "all", "sparse"),
    ("appnp", {"name": "batchnorm"}, 3, "all", "dense"),
    # JKNet: GCN layers, then concatenation of every layer's output, then a linear layer
    ("jknet", {"name": "none"}, 4, "all", "sparse"),
    ("jknet", {"name": "pairnorm", "mode": "PN"}, 3, "io", "dense"),
    # GCNII: initial residual + identity mapping, linear input and output layers
    ("gcnii", {"name": "none"}, 6, "all", "sparse"),
    ("gcnii", {"name": "nodenorm", "variant": "n"}, 4, "all", "dense"),
    # SGC: the propagated features once, one linear layer per seed (dropout on Â^K X)
    ("sgc", {"name": "none"}, 3, "all", "sparse"),
    ("sgc", {"name": "none"}, 2, "all", "dense"),
    # SIGN: K + 1 hop branches (one product per hop for all seeds), concatenated, then linear
    ("sign", {"name": "none"}, 3, "all", "sparse"),
    ("sign", {"name": "pairnorm", "mode": "PN"}, 2, "all", "dense"),
    ("sign", {"name": "batchnorm"}, 2, "all", "sparse"),
    # DropEdge's backbones: residual blocks, a dense chain, inception branches of GCN units
    ("resgcn", {"name": "none"}, 5, "all", "sparse"),
    ("resgcn", {"name": "batchnorm"}, 4, "all", "dense"),
    ("densegcn", {"name": "none"}, 4, "all", "dense"),
    ("incepgcn", {"name": "pairnorm", "mode": "PN"}, 5, "all", "sparse"),
    ("incepgcn", {"name": "none"}, 5, "all", "dense"),  # ReLU + dropout fused (relu_dropout)
]
OPTIMIZER = {"batchnorm": "sgd"}


@pytest.mark.parametrize("adjacency", ["sparse", "dense"])
@pytest.mark.parametrize(("name", "norm", "depth", "dropout_layers", "kind"), CASES)
def test_step_by_step_losses_and_logits_match(graphs64, float64, monkeypatch, name, norm, depth,
                                              dropout_layers, kind, adjacency):
    """Five training steps of S loop models and of their stack, in float64: the losses of each
    step and the eval-mode logits after it agree to :data:`TOL64`, with the adjacency stored
    sparse (CSR SpMM) or dense (one matmul) in the stacked model (issue 16)."""
    gs, adj = graphs64[kind], graphs64["adj"]
    loop = _loop_models(gs[0], name, norm, depth, dropout_layers)
    assert all(p.dtype == torch.float64 for m in loop for p in m.parameters())
    stacked = engine.stack(copy.deepcopy(loop))
    assert type(stacked).__name__ == {"appnp": "StackedAPPNP", "jknet": "StackedJKNet",
                                      "gcnii": "StackedGCNII", "sgc": "StackedSGC",
                                      "sign": "StackedSIGN", "resgcn": "StackedDropEdgeBackbone",
                                      "densegcn": "StackedDropEdgeBackbone",
                                      "incepgcn": "StackedDropEdgeBackbone"}.get(
        name, "StackedGCN")
    masks = SeedMasks(SEEDS)  # the loop's draws; the stacked model's, the same again:
    stacked.mask_fn = SeedMasks(SEEDS).stacked
    monkeypatch.setattr(common, "dropout", masks.loop_dropout)
    cfg = _train_cfg(optimizer=OPTIMIZER.get(norm["name"], "adam"), lr=0.1)
    loop_opts = [train.make_optimizer(m, cfg) for m in loop]
    stacked_opt = engine.fit.make_optimizer(stacked, cfg)
    x_in, prop = StackedInput(gs[0].x), propagation(adj, adjacency)
    y = gs[0].y
    for step in range(5):
        losses = []
        for s, (model, opt) in enumerate(zip(loop, loop_opts, strict=True)):
            masks.current = s
            model.train()
            opt.zero_grad()
            mask = gs[s].train_mask
            loss = F.cross_entropy(model(gs[s].x, adj)[mask], y[mask])
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        stacked.train()
        stacked_opt.zero_grad()
        logits = stacked(x_in, prop)
        batched = torch.stack([F.cross_entropy(logits[gs[s].train_mask, s], y[gs[s].train_mask])
                               for s in range(SEEDS)])
        batched.sum().backward()
        stacked_opt.step()
        _assert_close64(batched.detach(), torch.stack(losses), f"step {step} losses")
        stacked.eval()
        with torch.no_grad():
            out = stacked(x_in, prop)
            for s, model in enumerate(loop):
                model.eval()
                _assert_close64(out[:, s], model(gs[s].x, adj), f"step {step} seed {s} logits")


def _compare_fits(gs, adj, loop, stacked, cfg, monkeypatch, adjacency="sparse",
                  train_adj=None, statuses=("ok",) * SEEDS):
    """Train the loop models with ``train.fit`` and their stack with ``fit_batched`` on the same
    dropout masks, in float64 (the caller uses the ``float64`` fixture and ``graphs64``), and
    check that every seed reports the same: the status (``statuses``, ``ok`` for every seed
    unless the test is about divergence), selected epoch, epochs run and split; for an ``ok``
    seed, finite metrics, the same number of correctly classified nodes in each mask (exact)
    and losses within :data:`TOL64` times max(1, |loss|); a diverged seed reports nan in both.

    ``train_adj``: a factory of per-epoch adjacency samplers, one per seed and one for the
    batch (each must replay the same graphs)."""
    assert all(p.dtype == torch.float64 for m in loop for p in m.parameters())
    masks = SeedMasks(SEEDS)
    monkeypatch.setattr(common, "dropout", masks.loop_dropout)
    expected = []
    for s, model in enumerate(loop):
        masks.current = s
        expected.append(train.fit(model, gs[s], adj, cfg, s,
                                  train_adj=train_adj() if train_adj else None))
    stacked.mask_fn = SeedMasks(SEEDS).stacked  # the same draws as the loop's
    got = fit_batched(stacked, gs, adj, cfg, list(range(SEEDS)), adjacency=adjacency,
                      train_adj=train_adj() if train_adj else None)
    keys = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss")
    for g, want, a, b in zip(gs, statuses, expected, got, strict=True):
        assert a.status == b.status == want, (a, b)
        assert (a.selected_epoch, a.epochs_run, a.split) == (
            b.selected_epoch, b.epochs_run, b.split), (a, b)
        if want != "ok":
            assert all(math.isnan(getattr(r, k)) for r in (a, b) for k in keys), (a, b)
            continue
        assert all(math.isfinite(getattr(r, k)) for r in (a, b) for k in keys), (a, b)
        for split in ("train", "val", "test"):  # accuracies: the same count of correct nodes
            size = int(getattr(g, f"{split}_mask").sum())
            counts = [getattr(r, f"{split}_acc") * size for r in (a, b)]
            # float32 accuracies: count · (1 ± eps32), off an integer by < size · eps32 < 1e-4
            assert all(abs(c - round(c)) < 1e-3 for c in counts), (split, counts)
            assert round(counts[0]) == round(counts[1]), (split, counts)
        for key in ("train_loss", "val_loss"):
            va, vb = getattr(a, key), getattr(b, key)
            assert abs(va - vb) <= TOL64 * max(1.0, abs(va)), (key, va, vb)
    return expected, got


@pytest.mark.parametrize("train_kw", [
    {"selection": "best_val_acc"},
    {"selection": "min_val_loss", "patience": 3, "lr": 0.05, "epochs": 40},
    {"selection": "last", "patience": 3, "stopping": "window", "lr": 0.05, "epochs": 40},
    {"selection": "best_val_acc", "l1_weight": 1e-3, "grad_clip": "adaptive",
     "grad_clip_window": 3, "label_smoothing": 0.1, "optimizer": "adamw"},
    {"selection": "last", "weight_decay_first_only": True},
])
def test_fit_batched_reports_what_fit_reports(graphs64, float64, monkeypatch, train_kw):
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = _loop_models(gs[0], "gcn_res", {"name": "nodenorm"}, 3)
    stacked = StackedGCN.from_models(copy.deepcopy(loop))
    expected, _ = _compare_fits(gs, adj, loop, stacked, _train_cfg(**train_kw), monkeypatch)
    if "patience" in train_kw:  # the case exercises early stopping
        assert any(r.epochs_run < train_kw["epochs"] for r in expected)


@pytest.mark.parametrize("name", ["gcn_res", "resgcn"])
def test_fit_batched_with_a_shared_dropedge_graph_reports_what_fit_reports(graphs64, float64,
                                                                           monkeypatch, name):
    """train.shared_graph_dropout: the batch trains each epoch on one DropEdge draw; fed the
    same sequence of draws, every loop seed gives the same numbers (evaluation on the full
    graph in both)."""
    from gdepth import graph_dropout

    gs, adj = graphs64["sparse"], graphs64["adj"]
    cfg = _train_cfg()
    torch.manual_seed(0)
    draw = graph_dropout.sampler(gs[0].edge_index, gs[0].num_nodes, dropedge=0.3)
    sequence = [draw().to(torch.float64) for _ in range(cfg.epochs)]
    assert not torch.equal(sequence[0].to_dense(), sequence[1].to_dense())

    def replay():
        draws = iter(sequence)
        return lambda: next(draws)

    loop = _loop_models(gs[0], name, {"name": "none"}, 4)
    stacked = engine.stack(copy.deepcopy(loop))
    expected, _ = _compare_fits(gs, adj, loop, stacked, cfg, monkeypatch, train_adj=replay)
    # the same weights and masks on the full graph: the draws changed the training
    loop = _loop_models(gs[0], name, {"name": "none"}, 4)
    full, _ = _compare_fits(gs, adj, loop, engine.stack(copy.deepcopy(loop)), cfg, monkeypatch)
    assert all(abs(a.train_loss - b.train_loss) > 1e-4 for a, b in zip(expected, full, strict=True))


def test_fit_batched_appnp_reports_what_fit_reports(graphs64, float64, monkeypatch):
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = _loop_models(gs[0], "appnp", {"name": "none"}, 8)
    stacked = engine.stack(copy.deepcopy(loop))
    _compare_fits(gs, adj, loop, stacked, _train_cfg(l1_weight=1e-3), monkeypatch)


def test_fit_batched_jknet_max_reports_what_fit_reports(graphs64, float64, monkeypatch):
    gs, adj = graphs64["dense"], graphs64["adj"]
    loop = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        loop.append(models.build(OmegaConf.create({"name": "jknet", "hidden": 8, "mode": "max"}),
                                 OmegaConf.create({"name": "none"}), 3, gs[0].num_features,
                                 gs[0].num_classes))
    stacked = engine.stack(copy.deepcopy(loop))
    _compare_fits(gs, adj, loop, stacked, _train_cfg(), monkeypatch)


def test_fit_batched_gcnii_star_with_two_decays_reports_what_fit_reports(graphs64, float64,
                                                                         monkeypatch):
    """GCNII* (variant) with the official wd1 / wd2 parameter groups."""
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        loop.append(models.build(OmegaConf.create({"name": "gcnii", "hidden": 8,
                                                   "variant": True}),
                                 OmegaConf.create({"name": "none"}), 4, gs[0].num_features,
                                 gs[0].num_classes))
    stacked = engine.stack(copy.deepcopy(loop))
    cfg = _train_cfg(weight_decay=5e-4, weight_decay_graph=0.01)
    _compare_fits(gs, adj, loop, stacked, cfg, monkeypatch)


def test_fit_batched_sgc_reports_what_fit_reports(graphs64, float64, monkeypatch):
    """SGC with dropout on Â^K X (the propagation computed once, shared by the seeds)."""
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = _loop_models(gs[0], "sgc", {"name": "none"}, 3)
    assert loop[0].dropout == 0.5
    stacked = engine.stack(copy.deepcopy(loop))
    _compare_fits(gs, adj, loop, stacked, _train_cfg(l1_weight=1e-3), monkeypatch)
    assert stacked._cache is not None and stacked._cache[0] is gs[0].x


def test_fit_batched_sign_ppr_reports_what_fit_reports(graphs64, float64, monkeypatch):
    """SIGN with the PPR operator and NodeNorm per hop, early stopping on the loss."""
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        loop.append(models.build(OmegaConf.create({"name": "sign", "hidden": 8,
                                                   "operator": "ppr", "ppr_alpha": 0.2}),
                                 OmegaConf.create({"name": "nodenorm"}), 3,
                                 gs[0].num_features, gs[0].num_classes))
    stacked = engine.stack(copy.deepcopy(loop))
    cfg = _train_cfg(selection="min_val_loss", patience=3, lr=0.05, epochs=40)
    _compare_fits(gs, adj, loop, stacked, cfg, monkeypatch)


@pytest.mark.parametrize(("name", "extra"), [("resgcn", {"nbaseblocklayer": 2}),
                                             ("incepgcn", {})])
def test_fit_batched_dropedge_backbones_report_what_fit_reports(graphs64, float64, monkeypatch,
                                                                name, extra):
    """ResGCN with two-unit residual blocks, IncepGCN's branches, L1 and early stopping."""
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = []
    for s in range(SEEDS):
        torch.manual_seed(s)
        loop.append(models.build(OmegaConf.create({"name": name, "hidden": 8, **extra}),
                                 OmegaConf.create({"name": "none"}), 6,
                                 gs[0].num_features, gs[0].num_classes))
    stacked = engine.stack(copy.deepcopy(loop))
    cfg = _train_cfg(selection="min_val_loss", patience=3, lr=0.05, epochs=30, l1_weight=1e-3)
    _compare_fits(gs, adj, loop, stacked, cfg, monkeypatch)


def test_sgc_first_layer_decay_falls_back_to_the_loops_error(graphs):
    """SGC has no first layer in either engine: the batched engine declines (the loop then
    raises its one-line error)."""
    from gdepth.nn.kernels import NotBatchable

    stacked = engine.stack(_loop_models(graphs["dense"][0], "sgc", {"name": "none"}, 2))
    with pytest.raises(NotBatchable, match="first_layer"):
        engine.fit.make_optimizer(stacked, _train_cfg(weight_decay_first_only=True))


def test_a_diverged_seed_does_not_touch_the_others(graphs64, float64, monkeypatch):
    gs, adj = graphs64["dense"], graphs64["adj"]
    loop = _loop_models(gs[0], "gcn", {"name": "none"}, 3)
    with torch.no_grad():
        loop[1].convs[0].lin.weight[0, 0] = math.inf
    stacked = StackedGCN.from_models(copy.deepcopy(loop))
    _, got = _compare_fits(gs, adj, loop, stacked, _train_cfg(), monkeypatch,
                           statuses=["ok", "diverged", "ok"])
    assert [r.status for r in got] == ["ok", "diverged", "ok"]


def _cell_cfg(**kw):
    base = {"model": {"name": "gcn_res", "hidden": 8}, "norm": {"name": "nodenorm"},
            "train": dict(_train_cfg()), "depth": 3, "seeds": SEEDS}
    return OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(kw))


def test_run_seeds_trains_every_seed_like_the_loop(graphs):
    gs, adj = graphs["dense"], graphs["adj"]
    cfg = _cell_cfg(train={"epochs": 40, "lr": 0.05})
    params = []
    results = engine.run_seeds(cfg, lambda s: gs[s], adj, torch.device("cpu"),
                               on_model=lambda m: params.append(models.count_parameters(m)))
    assert [r.seed for r in results] == list(range(SEEDS))
    assert all(r.status == "ok" and r.epochs_run == 40 for r in results)
    loop = [train.fit(m, gs[s], adj, cfg.train, s)
            for s, m in enumerate(_loop_models(gs[0], "gcn_res", {"name": "nodenorm"}, 3))]
    mean = [sum(r.test_acc for r in rs) / SEEDS for rs in (results, loop)]
    assert abs(mean[0] - mean[1]) < 0.1  # other dropout draws only
    assert params and params[0] > 0


@pytest.mark.parametrize(("shared", "per_batch"), [(True, SEEDS), (False, 1)])
def test_dropedge_cells_batch_with_shared_or_per_seed_graphs(graphs, shared, per_batch):
    """DropEdge cells run batched: train.shared_graph_dropout=true draws one graph per epoch
    for all seeds of a batch; without it each seed trains alone with its own draws, as the
    loop. Every seed trains, and the seeds differ (their own weights and masks)."""
    gs, adj = graphs["dense"], graphs["adj"]
    cfg = _cell_cfg(train={"dropedge": 0.3, "shared_graph_dropout": shared})
    assert engine.unsupported(cfg) is None
    assert engine.graph_dropout_mode(cfg) == ("shared" if shared else "per seed")
    split = []
    results = engine.run_seeds(cfg, lambda s: gs[s], adj, torch.device("cpu"),
                               on_split=split.append)
    assert split == [per_batch]
    assert [r.seed for r in results] == list(range(SEEDS))
    assert all(r.status == "ok" for r in results)
    assert len({r.train_loss for r in results}) == SEEDS


@pytest.mark.parametrize("override", [
    {"model": {"name": "gat"}},
    {"norm": {"name": "groupnorm"}},
    {"model": {"name": "gcn", "skip": "residual"}},
])
def test_unbatchable_cells_fall_back_to_the_loop(graphs, override):
    gs, adj = graphs["dense"], graphs["adj"]
    cfg = _cell_cfg(**override)
    assert engine.unsupported(cfg)
    assert engine.run_seeds(cfg, lambda s: gs[s], adj, torch.device("cpu")) is None


@pytest.mark.parametrize("p", [0.5, 0.25, 0.75, 0.125, 0.6, 0.1])
def test_keep_mask_has_dropouts_distribution(p: float) -> None:
    """The batched engine's dropout mask: values exactly {0, 1/(1-p)}, P(0) = p within 5
    binomial standard errors, no correlation between neighbouring elements (the table path
    packs several elements into one random byte)."""
    from gdepth.nn.kernels import keep_mask

    torch.manual_seed(0)
    mask = keep_mask(torch.empty(257, 3, 129), p)  # odd sizes: the byte packing's tail
    assert mask.shape == (257, 3, 129)
    values = mask.unique().tolist()
    assert values == [0.0, pytest.approx(1.0 / (1.0 - p))]
    dropped = (mask == 0).double().flatten()
    n = dropped.numel()
    assert abs(dropped.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    both = (dropped[:-1] * dropped[1:]).mean().item()  # P(two neighbours dropped) = p²
    assert abs(both - p * p) < 5 * math.sqrt(p * p * (1 - p * p) / n)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5])
def test_relu_dropout_is_relu_then_dropout_forward_and_backward(p: float) -> None:
    """``relu_dropout`` (in place, only the output saved) against autograd's ReLU then mask,
    fed the same mask: equal outputs and input gradients, exactly."""
    from gdepth.nn.kernels import relu_dropout

    gen = torch.Generator().manual_seed(3)
    z = torch.randn(50, 3, 7, generator=gen)
    grad = torch.randn(50, 3, 7, generator=gen)
    masks = SeedMasks(3)
    drawn = masks.stacked((50, 7), p) if p > 0 else None
    ref_in = z.clone().requires_grad_()
    ref = torch.relu(ref_in)
    if drawn is not None:
        ref = ref * drawn.movedim(0, 1)
    ref.backward(grad)
    leaf = z.clone().requires_grad_()
    fused_in = leaf * 1.0  # relu_dropout works in place on a non-leaf (a conv's output)
    out = relu_dropout(fused_in, p, True, lambda shape, q: drawn)
    assert out.data_ptr() == fused_in.data_ptr()
    out.backward(grad)
    assert torch.equal(out.detach(), ref.detach())
    assert torch.equal(leaf.grad, ref_in.grad)


@pytest.mark.parametrize("p", [0.3, 0.6, 0.5])  # 0.5: keep_mask's table path
def test_relu_dropout_own_masks_drop_p_and_rescale(p: float) -> None:
    """Without injected masks: each positive entry is dropped with probability p (within 5
    binomial standard errors) or kept times 1/(1-p); the gradient flows where it is kept."""
    from gdepth.nn.kernels import relu_dropout

    torch.manual_seed(0)
    leaf = torch.rand(400, 2, 64).add_(0.1).requires_grad_()  # all positive: only dropout zeroes
    out = relu_dropout(leaf * 1.0, p, True, None)
    dropped = (out == 0).double()
    n = dropped.numel()
    assert abs(dropped.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    kept = out != 0
    torch.testing.assert_close(out[kept], leaf.detach()[kept] / (1 - p))
    out.sum().backward()
    assert torch.equal(leaf.grad == 0, ~kept)
    torch.testing.assert_close(leaf.grad[kept], torch.full_like(leaf.grad[kept], 1 / (1 - p)))


def _directed_adjacency(n: int, layout: torch.layout) -> torch.Tensor:
    """A random non-symmetric weighted adjacency with self-loops (so Â ≠ Âᵀ)."""
    gen = torch.Generator().manual_seed(7)
    dense = ((torch.rand(n, n, generator=gen) < 0.3).to(torch.get_default_dtype())
             * torch.rand(n, n, generator=gen))
    dense += torch.eye(n)
    assert not torch.equal(dense, dense.t())
    return dense.to_sparse_csr() if layout == torch.sparse_csr else dense.to_sparse_coo()


@pytest.mark.parametrize("layout", [torch.sparse_csr, torch.sparse_coo])
def test_propagation_backward_is_the_transposed_product(float64, layout: torch.layout) -> None:
    """Propagation's hand-written backward (Âᵀ G, both kernels: embedding_bag for CSR,
    sparse.mm otherwise) equals autograd through the dense product, on a directed graph
    (float64, to :data:`TOL64`)."""
    adj = _directed_adjacency(9, layout)
    prop = Propagation(adj)
    assert prop.bags == (layout == torch.sparse_csr)
    z = torch.randn(9, 5, requires_grad=True)
    z_ref = z.detach().clone().requires_grad_()
    upstream = torch.randn(9, 5)
    (prop(z) * upstream).sum().backward()
    out_ref = adj.to_dense() @ z_ref
    (out_ref * upstream).sum().backward()
    _assert_close64(prop(z.detach()), out_ref.detach(), "product")
    _assert_close64(z.grad, z_ref.grad, "gradient")
    assert prop.transposed.transposed is prop


def test_stacked_conv_matches_autograd_of_its_parts(float64) -> None:
    """stacked_conv (hand-written forward and backward over node-major buffers) gives the
    outputs and the gradients of h, weight and bias that autograd gives for per-seed
    ``Â (H_s W_s) + b_s``, on a directed graph and a non-contiguous input (float64)."""
    from gdepth.nn.kernels import stacked_conv

    n, s, d_in, d_out = 9, 3, 4, 6
    adj = _directed_adjacency(n, torch.sparse_csr)
    prop = Propagation(adj)
    gen = torch.Generator().manual_seed(3)
    h = torch.randn(s, n, d_in, generator=gen).movedim(0, 1)  # [N, S, d] non-contiguous
    weight = torch.randn(s, d_in, d_out, generator=gen)
    bias = torch.randn(s, d_out, generator=gen)
    upstream = torch.randn(n, s, d_out, generator=gen)
    leaves = [t.clone().requires_grad_() for t in (h, weight, bias)]
    refs = [t.clone().requires_grad_() for t in (h, weight, bias)]
    out = stacked_conv(*leaves, prop)
    (out * upstream).sum().backward()
    dense = adj.to_dense()
    out_ref = torch.stack([dense @ (refs[0][:, k] @ refs[1][k]) + refs[2][k]
                           for k in range(s)], dim=1)
    (out_ref * upstream).sum().backward()
    assert out.shape == (n, s, d_out)
    _assert_close64(out.detach(), out_ref.detach(), "output")
    for name, got, want in zip(("h", "weight", "bias"), leaves, refs, strict=True):
        _assert_close64(got.grad, want.grad, f"gradient of {name}")


def test_block_diagonal_propagation_is_one_graph_copy_per_seed() -> None:
    """I_S ⊗ Â: each seed's rows [s·N, (s+1)·N) of a seed-major stack use their own copy."""
    adj = _directed_adjacency(6, torch.sparse_csr)
    blocks = Propagation(adj).block_diagonal(3)
    assert Propagation(adj).block_diagonal(3).adj.shape == (18, 18)
    torch.testing.assert_close(blocks.adj.to_dense(), torch.block_diag(*[adj.to_dense()] * 3))
    coo = Propagation(adj.to_sparse_coo()).block_diagonal(2)
    assert not coo.bags
    torch.testing.assert_close(coo.adj.to_dense(), torch.block_diag(*[adj.to_dense()] * 2))


@pytest.mark.parametrize(("residual", "masked"), [(True, True), (False, True), (True, False)])
def test_seed_major_layer_matches_autograd_of_its_parts(float64, residual: bool,
                                                        masked: bool) -> None:
    """seed_major_layer's hand-written backward (ReLU gate from a boolean mask, the residual
    gradient fused into the dropout's) = autograd of ReLU(Â(H⊙M)W + b) (+ H), directed Â
    (float64)."""
    from gdepth.engine.batched import seed_major_layer

    s, n, d = 3, 6, 5
    adj = _directed_adjacency(n, torch.sparse_csr)
    blocks = Propagation(adj).block_diagonal(s)
    gen = torch.Generator().manual_seed(5)
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
    _assert_close64(out.detach(), ref.detach(), "output")
    for name, got, want in zip(("h", "weight", "bias"), leaves, refs, strict=True):
        _assert_close64(got.grad, want.grad, f"gradient of {name}")
    with torch.no_grad():  # evaluation: the same numbers, nothing kept for a backward
        _assert_close64(seed_major_layer(h, mask, weight, bias, blocks, residual),
                        ref.detach(), "evaluation output")


def test_gcn_res_without_norm_trains_seed_major(graphs64, float64, monkeypatch):
    """gcn_res with norm none and ReLU takes the seed-major path (and fit reports as the loop);
    with a norm it does not."""
    from gdepth.engine import batched

    calls = []
    real = batched.seed_major_layer
    monkeypatch.setattr(batched, "seed_major_layer",
                        lambda *a: calls.append(1) or real(*a))
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = _loop_models(gs[0], "gcn_res", {"name": "none"}, 4)
    stacked = engine.stack(copy.deepcopy(loop))
    _compare_fits(gs, adj, loop, stacked, _train_cfg(selection="min_val_loss", patience=3,
                                                     lr=0.05, epochs=30), monkeypatch)
    assert calls
    calls.clear()
    normed = engine.stack(_loop_models(gs[0], "gcn_res", {"name": "nodenorm"}, 4))
    normed(StackedInput(gs[0].x), Propagation(adj))
    assert not calls


@pytest.mark.parametrize(("name", "norm"), [("gcn_res", {"name": "none"}),
                                            ("gcn_res", {"name": "nodenorm"}),
                                            ("appnp", {"name": "none"})])
def test_fit_batched_with_a_dense_adjacency_reports_what_fit_reports(graphs64, float64, monkeypatch,
                                                                     name, norm):
    """adjacency=dense (seed-major: one batched matmul per layer; node-major; APPNP's steps)."""
    gs, adj = graphs64["sparse"], graphs64["adj"]
    loop = _loop_models(gs[0], name, norm, 4)
    stacked = engine.stack(copy.deepcopy(loop))
    _compare_fits(gs, adj, loop, stacked, _train_cfg(), monkeypatch, adjacency="dense")


def test_adjacency_storage_auto_is_sparse_on_cpu_and_names_the_choices():
    from gdepth.nn.kernels import DensePropagation, adjacency_storage, propagation

    adj = _directed_adjacency(5, torch.sparse_csr)
    assert adjacency_storage("auto", adj) == "sparse"
    assert adjacency_storage("dense", adj) == "dense"
    assert isinstance(propagation(adj, "dense"), DensePropagation)
    with pytest.raises(ValueError, match="unknown adjacency 'csr'; valid: auto, sparse, dense"):
        adjacency_storage("csr", adj)
    dense = propagation(adj, "dense")
    z = torch.randn(10, 3)  # two seed-major copies of 5 nodes
    torch.testing.assert_close(dense.block_diagonal(2).product(z),
                               Propagation(adj).block_diagonal(2).product(z))
    torch.testing.assert_close(dense.block_diagonal(2).transposed.product(z),
                               Propagation(adj).block_diagonal(2).transposed.product(z))
