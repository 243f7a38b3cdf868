"""The one training loop: a batch of S seeds = S runs of one seed, given the same initial
weights and dropout masks; and the kernels the seed-native layers share.

Each case builds the seed-native model of seeds [0, 1, 2] and the three one-seed models of [0],
[1], [2] with :func:`gdepth.models.build_seeded` (the contract of :mod:`gdepth.nn.seeds`: seed
s's initial weights do not depend on the batch; checked exactly). Then both train in float64,
step by step (each step's per-seed losses, training logits, every parameter's per-seed
gradient and the eval-mode logits after it agree) and as whole fits
(:func:`gdepth.engine.fit.fit_batched` with every selection and stopping rule: the same status,
selected epoch, epochs run, correct counts and losses).

Dropout masks, two ways:

* injected (``model.mask_fn``, a model written seed-native): one generator per seed, drawn in
  the same order by the batch and by that seed's own run (:class:`SeedMasks`), at dropout 0.5;
* the production mask code: dropout 0 (``model.dropout=0``), so the production forward runs
  with nothing injected and nothing random after the initial weights; the shared structure
  (one product of all seeds' columns, the seed-major layers, the norms' per-seed statistics)
  is what is compared. A fixed generator per seed cannot replay production draws: a batch
  draws one mask ``[S, ...]`` per dropout site (gdepth.nn.dropout.keep_mask) where a run of
  one seed draws ``[1, ...]`` from the same global generator, so the draws interleave
  differently. A model that runs per seed inside one module (:class:`gdepth.nn.seeds.SeedStack`)
  takes no injected masks: it is checked at dropout 0 only (the injected case skips, saying so).

Tolerances. Both paths compute the same function; they sum in other orders (one product for
all seeds vs one per seed, ``bmm`` blocking over S, dense vs sparse Â), so in float32 they
differ by rounding that depends on the CPU's kernels. The comparisons therefore run in float64
(:func:`float64`), where each reordered sum of n terms is off by at most n · eps64
(eps64 = 2.2e-16) of its scale: a value here goes through at most 8 convolutions (IncepGCN
depth 5) of inner products over <= 48 terms (40 features, or ~7 neighbours plus self) and their
backward, 5 times (5 steps): K = 2 · 8 · 48 · 5 ≈ 4·10³, K · eps64 ≈ 1e-12 of the values'
scale (logits and losses are O(1) here). Adam (lr 0.1) and the norms' divisions feed that
back; a factor 100 for it gives :data:`TOL64` = 1e-10, still 1000x below one float32 rounding
(eps32 = 1.2e-7), so a batch that is wrong anywhere, even by a float32-sized error, fails.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from gdepth import config, data, engine, models, train
from gdepth.engine import fit_batched, slices
from gdepth.models.adjacency import normalized_adjacency
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation, propagation

torch.set_num_threads(1)
SEEDS = 3
# float64: |batch - alone| <= TOL64 * max(1, |values|) (module docstring)
TOL64 = 1e-10


def _seed_major_layer():
    """The seed-major GCN layer kernel (the seed-native gcn family's, gdepth.nn.seed_major)."""
    from gdepth.nn.seed_major import seed_major_layer

    return seed_major_layer


class SeedMasks:
    """One dropout-mask generator per seed: the k-th draw of seed s is the same in the batch
    and in seed s's own run."""

    def __init__(self, seeds: int) -> None:
        self.gens = [torch.Generator().manual_seed(1000 + s) for s in range(seeds)]

    def draw(self, seed: int, shape: tuple[int, ...], p: float) -> torch.Tensor:
        keep = torch.rand(shape, generator=self.gens[seed]) >= p
        return keep.to(torch.get_default_dtype()) / (1.0 - p)

    def stacked(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        return torch.stack([self.draw(s, shape, p) for s in range(len(self.gens))])

    def of(self, seeds: list[int]):
        """The ``mask_fn`` of a model holding ``seeds``."""
        return lambda shape, p: torch.stack([self.draw(s, shape, p) for s in seeds])


@pytest.fixture(scope="module")
def graphs():
    """A small CSBM graph, one random split per seed; and the same with sparse features."""
    cfg = config.group("dataset", name="csbm", split="random_per_class", num_nodes=200,
                       num_classes=3, avg_degree=6.0, homophily=0.8, snr=1.0, num_features=40,
                       graph_seed=0)
    loaded = [data.load(cfg, None, s) for s in range(SEEDS)]
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


def _build(graph, name, norm, depth, seeds, dropout=0.5, dropout_layers="all", **extra):
    if name == "gat" and dropout == 0.0:  # GAT's other dropout, on the attention coefficients
        extra = {"attention_dropout": 0.0, **extra}
    return models.build_seeded(
        config.group("model", name=name, hidden=8, dropout=dropout,
                     dropout_layers=dropout_layers, **extra),
        config.group("norm", norm), depth, graph.num_features, graph.num_classes, seeds=seeds)


def _batch_and_alone(graph, name, norm, depth, dropout=0.5, dropout_layers="all", **extra):
    """The model of seeds 0..S-1 and the S one-seed models, float64; their initial weights
    are checked equal, seed by seed."""
    batch = _build(graph, name, norm, depth, list(range(SEEDS)), dropout, dropout_layers,
                   **extra)
    alone = [_build(graph, name, norm, depth, [s], dropout, dropout_layers, **extra)
             for s in range(SEEDS)]
    assert batch.num_seeds == SEEDS and all(m.num_seeds == 1 for m in alone)
    assert all(v.dtype == torch.float64 for v in batch.state_dict().values()
               if v.is_floating_point())
    for key, value in batch.state_dict().items():
        for s, model in enumerate(alone):
            mine = model.state_dict()[key]
            if value.dim() == 0:
                assert torch.equal(value, mine), key
            else:
                assert torch.equal(value[s:s + 1], mine), (key, s)
    return batch, alone


def _inject(batch, alone):
    """Injected masks (SeedMasks) where the model takes them; False for a SeedStack."""
    if not hasattr(batch, "mask_fn"):
        return False
    batch.mask_fn = SeedMasks(SEEDS).of(list(range(SEEDS)))
    replay = SeedMasks(SEEDS)  # the same draws again, seed by seed
    for s, model in enumerate(alone):
        model.mask_fn = replay.of([s])
    return True


TRAIN = {"name": "test", "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "epochs": 12,
         "patience": None, "selection": "best_val_acc"}


def _train_cfg(**kw):
    return config.make(config.TrainConfig, TRAIN, **kw)


CASES = [
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
    # by a full lr step in a random direction, in either path (and between two runs of one
    # seed with another summation order), which the eval-mode output (running statistics)
    # shows.
    ("gcn_res", {"name": "batchnorm"}, 4, "all", "sparse"),
    ("appnp", {"name": "none"}, 5, "all", "dense"),
    ("appnp", {"name": "nodenorm", "variant": "n"}, 10, "all", "sparse"),
    ("appnp", {"name": "batchnorm"}, 3, "all", "dense"),
    ("jknet", {"name": "none"}, 4, "all", "sparse"),
    ("jknet", {"name": "pairnorm", "mode": "PN"}, 3, "io", "dense"),
    ("gcnii", {"name": "none"}, 6, "all", "sparse"),
    ("gcnii", {"name": "nodenorm", "variant": "n"}, 4, "all", "dense"),
    ("sgc", {"name": "none"}, 3, "all", "sparse"),
    ("sgc", {"name": "none"}, 2, "all", "dense"),
    ("sign", {"name": "none"}, 3, "all", "sparse"),
    ("sign", {"name": "pairnorm", "mode": "PN"}, 2, "all", "dense"),
    ("sign", {"name": "batchnorm"}, 2, "all", "sparse"),
    ("resgcn", {"name": "none"}, 5, "all", "sparse"),
    ("resgcn", {"name": "batchnorm"}, 4, "all", "dense"),
    ("densegcn", {"name": "none"}, 4, "all", "dense"),
    ("incepgcn", {"name": "pairnorm", "mode": "PN"}, 5, "all", "sparse"),
    ("incepgcn", {"name": "none"}, 5, "all", "dense"),  # ReLU + dropout fused (relu_dropout)
    # models that were never seed-batched before issue 17
    ("gat", {"name": "none"}, 3, "all", "dense"),
    ("gin", {"name": "none"}, 3, "all", "sparse"),
    ("mlp", {"name": "none"}, 3, "all", "dense"),
    ("gcn", {"name": "groupnorm"}, 3, "all", "sparse"),
]
OPTIMIZER = {"batchnorm": "sgd", "groupnorm": "sgd"}


def _steps(gs, adj, batch, alone, cfg, adjacency, steps=5):
    """``steps`` training steps of the batch and of each one-seed model, compared after each:
    per-seed losses, training logits, per-seed gradients of every parameter, eval logits."""
    opt_batch = train.make_optimizer(batch, cfg)
    opt_alone = [train.make_optimizer(m, cfg) for m in alone]
    x_in, prop = StackedInput(gs[0].x), propagation(adj, adjacency)
    y = gs[0].y
    masks = torch.stack([g.train_mask for g in gs], dim=1)

    def loss_of(logits, index):  # [N, k, C] -> [k]
        return torch.stack([F.cross_entropy(logits[masks[:, s], j], y[masks[:, s]])
                            for j, s in enumerate(index)])

    named_alone = [dict(m.named_parameters()) for m in alone]
    for step in range(steps):
        batch.train()
        opt_batch.zero_grad()
        logits = batch(x_in, prop)
        losses = loss_of(logits, range(SEEDS))
        losses.sum().backward()
        for s, (model, opt) in enumerate(zip(alone, opt_alone, strict=True)):
            model.train()
            opt.zero_grad()
            own = model(x_in, prop)
            loss = loss_of(own, [s])
            loss.sum().backward()
            _assert_close64(losses[s].detach(), loss[0].detach(), f"step {step} seed {s} loss")
            _assert_close64(logits[:, s].detach(), own[:, 0].detach(),
                            f"step {step} seed {s} training logits")
            for name, p in batch.named_parameters():
                q = named_alone[s][name]
                assert (p.grad is None) == (q.grad is None), name
                if p.grad is not None:
                    _assert_close64(p.grad[s:s + 1], q.grad, f"step {step} seed {s} grad {name}")
            opt.step()
        opt_batch.step()
        batch.eval()
        with torch.no_grad():
            out = batch(x_in, prop)
            for s, model in enumerate(alone):
                _assert_close64(out[:, s], model.eval()(x_in, prop)[:, 0],
                                f"step {step} seed {s} eval logits")


@pytest.mark.parametrize("adjacency", ["sparse", "dense"])
@pytest.mark.parametrize(("name", "norm", "depth", "dropout_layers", "kind"), CASES)
def test_step_by_step_with_injected_masks(graphs64, float64, name, norm, depth,
                                          dropout_layers, kind, adjacency):
    """Five training steps of the batch of 3 seeds and of the 3 one-seed models at dropout 0.5,
    the same masks injected (SeedMasks): losses, logits and gradients agree to TOL64, with Â
    stored sparse (CSR products) or dense."""
    gs, adj = graphs64[kind], graphs64["adj"]
    batch, alone = _batch_and_alone(gs[0], name, norm, depth, 0.5, dropout_layers)
    if not _inject(batch, alone):
        pytest.skip(f"model {name} is not written seed-native here (gdepth.nn.seeds.SeedStack "
                    "draws its masks inside the one-seed module); see the dropout-0 case")
    _steps(gs, adj, batch, alone, _train_cfg(optimizer=OPTIMIZER.get(norm["name"], "adam"),
                                             lr=0.1), adjacency)


@pytest.mark.parametrize("adjacency", ["sparse", "dense"])
@pytest.mark.parametrize(("name", "norm", "depth", "dropout_layers", "kind"), CASES)
def test_step_by_step_with_the_production_code(graphs64, float64, name, norm, depth,
                                               dropout_layers, kind, adjacency):
    """The same at dropout 0: nothing injected, the production forward and backward."""
    gs, adj = graphs64[kind], graphs64["adj"]
    batch, alone = _batch_and_alone(gs[0], name, norm, depth, 0.0, dropout_layers)
    _steps(gs, adj, batch, alone, _train_cfg(optimizer=OPTIMIZER.get(norm["name"], "adam"),
                                             lr=0.1), adjacency)


def _compare_fits(gs, adj, batch, alone, cfg, adjacency="sparse", train_adj=None,
                  statuses=("ok",) * SEEDS):
    """``fit_batched`` of the batch and of each one-seed model (a batch of one), in float64:
    every seed reports the same status (``statuses``), selected epoch, epochs run and split;
    for an ``ok`` seed, finite metrics, the same count of correctly classified nodes per mask
    (exact) and losses within TOL64 · max(1, |loss|); a diverged seed reports nan in both.

    ``train_adj``: a factory of per-epoch adjacency samplers, one per run (each must replay
    the same graphs)."""
    expected = [fit_batched(m, [gs[s]], adj, cfg, [s], adjacency=adjacency,
                            train_adj=train_adj() if train_adj else None)[0]
                for s, m in enumerate(alone)]
    got = fit_batched(batch, gs, adj, cfg, list(range(SEEDS)), adjacency=adjacency,
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
        assert a.batch is None and a.epoch_s > 0 and b.batch["seeds"] == list(range(SEEDS))
    return expected, got


def _pair(gs, name="gcn_res", norm=None, depth=3, **extra):
    """Batch and one-seed models with injected masks at dropout 0.5 (seed-native), else at
    dropout 0."""
    norm = norm or {"name": "nodenorm"}
    batch, alone = _batch_and_alone(gs[0], name, norm, depth, 0.5, **extra)
    if not _inject(batch, alone):
        batch, alone = _batch_and_alone(gs[0], name, norm, depth, 0.0, **extra)
    return batch, alone


@pytest.mark.parametrize("adjacency", ["sparse", "dense"])
@pytest.mark.parametrize("train_kw", [
    {"selection": "best_val_acc"},
    {"selection": "min_val_loss", "patience": 3, "lr": 0.05, "epochs": 40},
    {"selection": "last", "patience": 3, "stopping": "window", "lr": 0.05, "epochs": 40},
    {"selection": "best_val_acc", "l1_weight": 1e-3, "grad_clip": "adaptive",
     "grad_clip_window": 3, "label_smoothing": 0.1, "optimizer": "adamw"},
    {"selection": "last", "weight_decay_first_only": True},
])
def test_a_batch_reports_what_its_seeds_report_alone(graphs64, float64, train_kw, adjacency):
    gs, adj = graphs64["sparse"], graphs64["adj"]
    batch, alone = _pair(gs)
    expected, _ = _compare_fits(gs, adj, batch, alone, _train_cfg(**train_kw), adjacency)
    if "patience" in train_kw:  # the case exercises early stopping
        assert any(r.epochs_run < train_kw["epochs"] for r in expected)


@pytest.mark.parametrize(("name", "extra", "train_kw"), [
    ("appnp", {}, {"weight_decay_groups": {"input": 0.01, "output": 0.0}}),
    ("jknet", {"mode": "max"}, {"weight_decay_graph": 0.0}),
    ("gcnii_star", {}, {"weight_decay_graph": 0.01, "selection": "min_val_loss",
                        "patience": 3, "lr": 0.05, "epochs": 30}),
    ("sgc", {}, {"l1_weight": 1e-3}),
    ("sign", {"operator": "ppr"}, {}),
    ("resgcn", {"nbaseblocklayer": 2}, {}),
    ("incepgcn", {}, {"selection": "min_val_loss", "patience": 3, "lr": 0.05, "epochs": 30}),
])
def test_other_models_and_parameter_groups_report_what_their_seeds_report_alone(
        graphs64, float64, name, extra, train_kw):
    gs, adj = graphs64["sparse"], graphs64["adj"]
    batch, alone = _pair(gs, name, {"name": "none"}, 4, **extra)
    _compare_fits(gs, adj, batch, alone, _train_cfg(**train_kw))


@pytest.mark.parametrize("name", ["gcn_res", "resgcn"])
def test_a_shared_dropedge_graph_reports_what_its_seeds_report_alone(graphs64, float64, name):
    """train.shared_graph_dropout: the batch trains each epoch on one DropEdge draw; fed the
    same sequence of draws, every seed alone gives the same numbers (evaluation on the full
    graph in both)."""
    from gdepth import graph_dropout

    gs, adj = graphs64["sparse"], graphs64["adj"]
    cfg = _train_cfg()
    torch.manual_seed(0)
    draw = graph_dropout.sampler(gs[0].edge_index, gs[0].num_nodes, dropedge=0.3)
    sequence = [draw().to(torch.float64) for _ in range(cfg.epochs)]
    assert not torch.equal(sequence[0].to_dense(), sequence[1].to_dense())

    def replay():
        it = iter(sequence)
        return lambda: next(it)

    batch, alone = _pair(gs, name, {"name": "none"}, 4)
    _compare_fits(gs, adj, batch, alone, cfg, train_adj=replay)


def test_sgc_first_layer_decay_raises_the_loops_error(graphs):
    """SGC has no first layer: weight_decay_first_only fails the cell with one line."""
    model = _build(graphs["dense"][0], "sgc", {"name": "none"}, 2, [0, 1])
    with pytest.raises(ValueError, match="first_layer"):
        train.make_optimizer(model, _train_cfg(weight_decay_first_only=True))


def test_a_diverged_seed_does_not_touch_the_others(graphs64, float64):
    gs, adj = graphs64["dense"], graphs64["adj"]
    batch, alone = _pair(gs, "gcn", {"name": "none"}, 3)
    with torch.no_grad():  # seed 1's first weight tensor, in the batch and alone
        name, p = next(iter(batch.named_parameters()))
        p[1].view(-1)[0] = math.inf
        dict(alone[1].named_parameters())[name][0].view(-1)[0] = math.inf
    _, got = _compare_fits(gs, adj, batch, alone, _train_cfg(),
                           statuses=["ok", "diverged", "ok"])
    assert [r.status for r in got] == ["ok", "diverged", "ok"]


def _cell_cfg(**kw):
    base = {"model": {"name": "gcn_res", "hidden": 8}, "norm": {"name": "nodenorm"},
            "train": TRAIN, "depth": 3, "seeds": SEEDS,
            "dataset": {"name": "csbm", "split": "random_per_class"}}
    merged = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(base), OmegaConf.create(kw)))
    return config.typed(merged)


@pytest.mark.parametrize("max_seeds", [None, 1])
def test_run_seeds_trains_every_seed_in_batches(graphs, max_seeds):
    """All seeds in one batch (engine=batched) or in batches of one (engine=loop); the seeds'
    results agree in distribution (other dropout draws)."""
    gs, adj = graphs["dense"], graphs["adj"]
    cpu = torch.device("cpu")
    cfg = _cell_cfg(train={"epochs": 40, "lr": 0.05})
    params = slices.parameters_per_seed(engine.build(cfg, gs[0], [0], cpu))
    per = max_seeds or SEEDS
    assert params > 0
    assert engine.batch_size(cfg, gs, params, cpu, max_seeds) == (per, None)
    results = engine.run_seeds(cfg, lambda s: gs[s], adj, cpu, max_seeds=max_seeds)
    # a batch of several: each seed reports the batch's timings; a batch of one: its own
    assert [r.batch and r.batch["seeds"] for r in results] == (
        [[0, 1, 2]] * 3 if per == SEEDS else [None] * 3)
    assert [r.seed for r in results] == list(range(SEEDS))
    assert all(r.status == "ok" and r.epochs_run == 40 for r in results)
    assert sum(r.test_acc for r in results) / SEEDS > 0.6  # learned (chance 1/3)


@pytest.mark.parametrize(("shared", "per_batch"), [(True, SEEDS), (False, 1)])
def test_dropedge_cells_batch_with_shared_or_per_seed_graphs(graphs, shared, per_batch):
    """train.shared_graph_dropout=true draws one graph per epoch for all seeds of a batch;
    without it each seed trains alone with its own draws. Every seed trains, and the seeds
    differ (their own weights and masks)."""
    gs, adj = graphs["dense"], graphs["adj"]
    cfg = _cell_cfg(train={"dropedge": 0.3, "shared_graph_dropout": shared})
    assert engine.unsupported(cfg) is None
    assert engine.graph_dropout_mode(cfg) == ("shared" if shared else "per seed")
    assert engine.batch_size(cfg, gs, 1, torch.device("cpu")) == (per_batch, None)
    results = engine.run_seeds(cfg, lambda s: gs[s], adj, torch.device("cpu"))
    assert all((r.batch is None) == (per_batch == 1) for r in results)
    assert [r.seed for r in results] == list(range(SEEDS))
    assert all(r.status == "ok" for r in results)
    assert len({r.train_loss for r in results}) == SEEDS


def test_only_the_tree_task_cannot_batch(graphs):
    """engine.unsupported: every model, norm and option batches (gat, groupnorm, gcn skips,
    per-group decays, diagnostics); the tree task does not."""
    for override in ({"model": {"name": "gat"}}, {"norm": {"name": "groupnorm"}},
                     {"model": {"name": "gcn", "skip": "residual"}},
                     {"train": {"weight_decay_graph": 0.01}}):
        assert engine.unsupported(_cell_cfg(**override)) is None, override
    reason = engine.unsupported(_cell_cfg(dataset={"name": "tree_match"}))
    assert reason.startswith("dataset tree_match") and "\n" not in reason


def test_run_seeds_with_its_own_graph_per_seed_trains_batches_of_one(graphs):
    gs, adj = graphs["dense"], graphs["adj"]
    own = [replace(g, x=g.x.clone()) for g in gs]
    cfg = _cell_cfg(train={"epochs": 3})
    assert engine.batch_size(cfg, own, 1, torch.device("cpu")) == (1, engine.OWN_INPUTS)
    results = engine.run_seeds(cfg, lambda s: own[s], adj, torch.device("cpu"))
    assert len(results) == SEEDS and all(r.batch is None for r in results)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.75, 0.125, 0.6, 0.1])
def test_keep_mask_has_dropouts_distribution(p: float) -> None:
    """The batched engine's dropout mask: values exactly {0, 1/(1-p)}, P(0) = p within 5
    binomial standard errors, no correlation between neighbouring elements (the table path
    packs several elements into one random byte)."""
    from gdepth.nn.dropout import keep_mask

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
    from gdepth.nn.dropout import relu_dropout

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
    from gdepth.nn.dropout import relu_dropout

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


def test_adjacency_storage_auto_is_sparse_on_cpu_and_names_the_choices():
    from gdepth.nn.propagation import DensePropagation, adjacency_storage, propagation

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
