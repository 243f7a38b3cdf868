"""Mini-batch training over the trees of Tree-NeighborsMatch, as Alon & Yahav's code trains.

Alon and Yahav, "On the Bottleneck of Graph Neural Networks and its Practical Implications",
ICLR 2021, arXiv 2006.05205; code github.com/tech-srl/bottleneck, ``experiment.py``
(``Experiment.run``) and ``run-{gcn,gat,gin,ggnn}-2-8.py`` (batch sizes per depth r):

- one *epoch* is one shuffled pass over the training trees repeated ``passes_per_epoch`` times
  (their ``DataLoader(X_train * eval_every, shuffle=True)``: a random order of all
  ``passes · T_train`` tree instances, cut into batches of ``batch_size`` trees, the last one
  partial; a tree may occur twice in one batch);
- every ``accum_grad`` batches one optimizer step on the sum of the batches' mean losses divided
  by ``accum_grad``; gradients left over at the end of an epoch are discarded (their
  ``zero_grad`` at the start of each epoch);
- the epoch's train accuracy is the running accuracy of the roots over its batches, in train
  mode, before each step; the lr scheduler (``ReduceLROnPlateau(mode='max', factor, patience,
  threshold 1e-4 abs)``) steps on it; the test accuracy is read in eval mode;
- an epoch improves if its train accuracy exceeds the best by more than ``min_delta``; training
  stops once an improving epoch reaches ``stop_at`` or after ``patience`` epochs without
  improvement, or after ``min(epochs, max_passes // passes_per_epoch)`` epochs. The seed
  reports the best train accuracy and the test accuracy of that epoch.

Batches are cut from the disjoint union of all trees that ``dataset=tree_match`` loads
(:mod:`gdepth.tree_batch`: trees are contiguous node ranges ``ptr[t] .. ptr[t+1]``, root first;
batch sizes per depth from the authors' table). The bottleneck model (without the
fully-adjacent last layer or dropout) computes a batch's root logits level by level
(:func:`gdepth.tree_levels.fast_forward`, :mod:`gdepth.models.bottleneck_trees`: reshapes
instead of message passing, only the nodes the roots depend on, the levels every tree shares
once; the same numbers up to rounding; ``benchmarks/tree_speed.py`` times both).
Any other model (or ``fast=False``) runs its own forward on the block-diagonal batch of
:func:`gdepth.tree_batch.tree_batch`. With
``batch_size: null`` every epoch pass is one batch of all training trees (full batch); the
authors never train full batch (their smallest ratio is 64 of 76 trees at r = 2).

One seed per run, as a one-seed module (``models.build``: ``forward(x, adj) -> [N, C]``, for a
seed-native model its :class:`gdepth.nn.one_seed.OneSeed`): each seed draws its own order of
trees, so seeds share no step to batch, and the Alon & Yahav model's fully-adjacent last layer
takes ``root_of``, which the seed-native ``forward(x_in, adj, rows)`` does not carry. The
optimizer, selection (:class:`gdepth.train.Selector` on the running train accuracy with
``min_delta``), patience, clipping and the result are :mod:`gdepth.train`'s, as in the
full-batch loop.

A ``checkpoint`` (:class:`gdepth.sweep.checkpoint.BatchCheckpoint` of the one seed) saves,
every ``checkpoint.every`` epochs, everything the next epoch depends on: the model, Adam's and
the plateau scheduler's state, the selection (best accuracy, its epoch and test accuracy,
epochs since), the clipper's norms, the tree-order generator and torch's generators, the
optimizer steps taken, the selected epoch's kept state and the wall time so far. A run resumed
from it continues as the uninterrupted run would have (``tests/test_train_trees_checkpoint.py``:
equal numbers). An epoch here is ``passes_per_epoch`` passes, minutes to an hour at r ≥ 5, and
a cell at r = 6 runs longer than many machines are lent for; the state is a few hundred KB.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gdepth import train_progress, tree_levels
from gdepth.config import TrainConfig
from gdepth.options import unknown
from gdepth.sweep.checkpoint import BatchCheckpoint, rng_state, set_rng_state
from gdepth.train import Clipper, SeedResult, Selector, make_optimizer, seed_result, should_stop
from gdepth.tree_batch import Batching, batching, check_within_trees, tree_batch, tree_ptr

log = logging.getLogger("gdepth")
PLATEAU_THRESHOLD = 1e-4  # torch's default threshold, threshold_mode='abs' in their scheduler


def _forward(model: torch.nn.Module, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    x, adj, root_of, roots = batch
    if getattr(model, "fully_adjacent_last", False):
        return model(x, adj, root_of=root_of)[roots]
    return model(x, adj)[roots]


def _chunks(trees: Tensor, size: int | None) -> list[Tensor]:
    return list(trees.split(size)) if size else [trees]


def evaluate(model: torch.nn.Module, forward: Callable[[Tensor], Tensor], ptr: Tensor,
             y: Tensor, trees: Tensor, size: int | None) -> float:
    """Root accuracy over ``trees`` in eval mode, ``size`` trees at a time (``forward``: tree
    ids → their roots' logits)."""
    if not len(trees):
        return math.nan
    model.eval()
    correct = 0
    with torch.no_grad():
        for chunk in _chunks(trees, size):
            correct += int((forward(chunk).argmax(-1) == y[ptr[chunk]]).sum())
    return correct / len(trees)


def _progress(epoch: int, passes_per_epoch: int, selector: Selector, wall_s: float,
              optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A checkpoint's progress (:meth:`BatchCheckpoint.save`): passes run, the selected pass
    and its metrics so far. The selection is the best train accuracy, replaced only by a
    higher one, so the selected ``train_acc`` (= ``val_acc`` here) can only rise until the run
    ends: the record will hold at least this value (``lower_bounds``), which lets a comparison
    say that a running cell already reaches a published number."""
    chosen = {k: float(v) for k, v in selector.metrics.items()}
    bounds = {k: chosen[k] for k in ("train_acc", "val_acc") if k in chosen}
    return {"epoch": epoch, "passes": epoch * passes_per_epoch,
            "selected_passes": selector.epoch * passes_per_epoch, "selected": chosen,
            "lower_bounds": bounds, "wall_s": wall_s,
            "lr": float(optimizer.param_groups[0]["lr"])}


def fit_trees(
    model: torch.nn.Module,
    graph: Any,
    adj: Tensor,
    train_cfg: TrainConfig,
    seed: int,
    batches: Batching | None = None,
    on_epoch: Callable[[int], None] | None = None,
    keep_state: dict[str, Any] | None = None,
    fast: bool = True,
    checkpoint: BatchCheckpoint | None = None,
) -> SeedResult:
    """Train ``model`` on mini-batches of trees (module docstring); the best train accuracy.

    ``graph`` is the tree_match graph on the model's device (``x`` dense or sparse CSR), ``adj``
    its sparse CSR normalized adjacency; ``batches`` defaults to :func:`batching` without a
    table entry. ``keep_state`` receives the selected epoch's ``state_dict`` under ``"state"``.
    ``train.selection`` must be ``best_val_acc``: on tree_match val = train, and the train
    accuracy is the authors' running one. The batch order is drawn from ``seed``. Every epoch
    is logged (``gdepth`` logger) and is this process's current progress
    (:mod:`gdepth.train_progress`, the epoch ``gdepth status`` shows). ``fast=False``: the
    model's own forward even where the level-wise one applies (the reference).
    ``checkpoint``: save the training state every ``checkpoint.every`` epochs, and resume from
    the last one saved (module docstring).
    """
    rule = str(train_cfg.selection)
    if rule != "best_val_acc":
        raise ValueError(f"train.selection={rule}: fit_trees selects on train accuracy (Alon & "
                         "Yahav); valid: best_val_acc (tree_match: val = train)")
    schedule = str(train_cfg.lr_schedule)
    if schedule not in ("none", "plateau"):
        raise unknown("lr_schedule", schedule, ("none", "plateau"))
    b = batches or batching(train_cfg, None, 0)
    ptr = tree_ptr(graph)
    check_within_trees(adj, ptr)
    levels, general = (tree_levels.fast_forward(model, graph, adj, ptr) if fast
                       else (None, "fast=False"))
    if levels is None:
        log.info("train_trees: PyG's message passing on each batch (%s)", general)
    x, tree_nodes = graph.x, int(ptr[1] - ptr[0])

    def forward(trees: Tensor) -> Tensor:
        if levels is not None and tree_levels.pays(model, len(trees) * tree_nodes):
            return levels(trees)
        return _forward(model, tree_batch(x, adj, ptr, trees))
    roots = ptr[:-1]
    train_trees = torch.nonzero(graph.train_mask[roots]).flatten()
    test_trees = torch.nonzero(graph.test_mask[roots]).flatten()
    y = graph.y
    optimizer = make_optimizer(model, train_cfg)
    clipper = Clipper(train_cfg)  # per optimizer step (grad_clip: none by default)
    scheduler = None
    if schedule == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=float(train_cfg.lr_factor),
            patience=int(train_cfg.lr_patience), threshold=PLATEAU_THRESHOLD,
            threshold_mode="abs")
    max_passes = train_cfg.max_passes
    epochs = int(train_cfg.epochs)
    if max_passes is not None:
        epochs = min(epochs, int(max_passes) // b.passes_per_epoch)
    patience, min_delta = train_cfg.patience, float(train_cfg.min_delta)
    stop_at = train_cfg.stop_at
    gen = torch.Generator().manual_seed(seed)
    # val = train on tree_match: the selector's val_acc / val_loss are the running train ones
    selector = Selector(rule, min_delta)
    status, done, steps, before = "ok", 0, 0, 0.0  # done: epochs before a resume, their time
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        selector.restore(saved["selector"])
        clipper.history = saved["clip_history"]
        gen.set_state(saved["order_rng"])
        set_rng_state(saved["rng"])
        done, steps, before = saved["epoch"], saved["steps"], saved["wall_s"]
        if keep_state is not None and saved["kept"] is not None:
            keep_state["state"] = saved["kept"]
        log.info("seed %d resumes from its checkpoint at epoch %d (%d passes)", seed, done,
                 done * b.passes_per_epoch)
    start, cpu = time.perf_counter() - before, time.process_time()
    tracker = train_progress.Tracker([seed], epochs, "train acc", first=done + 1,
                                     logs=False)  # logs below
    epoch = done
    for epoch in range(done + 1, epochs + 1):
        model.train()
        instances = len(train_trees) * b.passes_per_epoch
        order = train_trees[(torch.randperm(instances, generator=gen) % len(train_trees))
                            .to(train_trees.device)]
        optimizer.zero_grad()
        correct, loss_sum = 0, 0.0
        for i, trees in enumerate(_chunks(order, b.batch_size)):
            logits = forward(trees)
            target = y[ptr[trees]]
            loss = F.cross_entropy(logits, target)
            if not torch.isfinite(loss):
                status = "diverged"
                break
            loss_sum += float(loss.detach()) * len(trees)
            correct += int((logits.detach().argmax(-1) == target).sum())
            (loss / b.accum_grad).backward()
            if (i + 1) % b.accum_grad == 0:
                steps += 1
                clipper(model, steps)
                optimizer.step()
                optimizer.zero_grad()
        if status != "ok":
            break
        train_acc = correct / instances
        if scheduler is not None:
            scheduler.step(train_acc)
        loss_avg = loss_sum / instances
        metrics = {"train_acc": train_acc, "val_acc": train_acc, "train_loss": loss_avg,
                   "val_loss": loss_avg}
        tracker.record(seed, epoch, {"train_acc": train_acc, "train_loss": loss_avg})
        if selector.update(epoch, metrics):
            selector.metrics["test_acc"] = evaluate(model, forward, ptr, y, test_trees,
                                                    b.batch_size)
            if keep_state is not None:
                keep_state["state"] = {k: v.detach().clone()
                                       for k, v in model.state_dict().items()}
        log.info("epoch %d (%d passes): train acc %.4f%s, lr %.2g, %.0f s (process CPU %.0f s)",
                 epoch, epoch * b.passes_per_epoch, train_acc,
                 " (best)" if selector.epoch == epoch else "", optimizer.param_groups[0]["lr"],
                 time.perf_counter() - start, time.process_time() - cpu)
        tracker.epoch(epoch, [selector.best], [selector.epoch])
        if on_epoch is not None:
            on_epoch(epoch)
        if (stop_at is not None and selector.epoch == epoch and train_acc >= float(stop_at)) or (
                should_stop(rule, "patience", patience, selector, epoch, [])):
            break
        if checkpoint is not None and checkpoint.due(epoch):
            checkpoint.save({
                "epoch": epoch, "steps": steps, "wall_s": time.perf_counter() - start,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "selector": selector.state(), "clip_history": clipper.history,
                "order_rng": gen.get_state(), "rng": rng_state(),
                "kept": None if keep_state is None else keep_state.get("state")},
                progress=_progress(epoch, b.passes_per_epoch, selector,
                                   time.perf_counter() - start, optimizer))
    wall = time.perf_counter() - start
    tracker.close()
    return seed_result(seed, status, selector, epoch if status == "ok" else epoch - 1,
                       graph.split, wall_s=wall)
