r"""Full-batch training of S ≥ 1 seeds at once: :func:`fit_batched`, gdepth's one training loop.

``engine=batched`` trains a cell's seeds in batches of up to ``seeds_per_batch``
(:mod:`gdepth.engine.memory`), ``engine=loop`` in batches of one seed, one after another: the
same code, the model a seed-native one (:mod:`gdepth.nn.seeds`, built by
:func:`gdepth.models.build_seeded`). The optimizer, selection, stopping, clipping and result
rules are :mod:`gdepth.train`'s, shared with the tree task's mini-batch loop.

Each epoch is one optimizer step of the stacked model on the summed loss
:math:`\mathcal{L} = \sum_s \mathcal{L}_s`, then one evaluation forward. The seeds share no
parameter, no loss term, no normalization statistic (every stacked block acts per seed) and no
optimizer state (Adam, AdamW and SGD act element by element), so
:math:`\partial\mathcal{L}/\partial\theta_s = \partial\mathcal{L}_s/\partial\theta_s` and seed s
follows exactly the trajectory of its own run (a batch of one). Per seed, with :math:`M_s` its
training mask and :math:`\ell_{is}` the (label-smoothed) cross-entropy of node i,
:math:`\mathcal{L}_s = \frac{1}{|M_s|}\sum_{i \in M_s} \ell_{is} + \lambda \sum |w_s|`.

Early stopping and divergence are per seed: a seed that stops (patience, window rule) or
diverges has its selected metrics, ``selected_epoch`` and ``epochs_run`` frozen at that
epoch, exactly what its own run reports. It is then still stepped with the others (a
diverged seed with its loss term zeroed) until every seed has stopped: cheaper than
re-slicing the stacked tensors, and harmless, because nothing of a seed flows into another
seed and nothing it does after it stopped is reported. Selection rules, stopping rules,
label smoothing, the L1 penalty and NodeNorm's adaptive gradient clipping (per seed) follow
:mod:`gdepth.train`. ``keep_states`` receives each seed's state at its selected epoch (its
slices of the model's state, :func:`gdepth.engine.slices.seed_state`) for the diagnostics;
``checkpoint`` saves the whole batch every ``checkpoint_every`` epochs and resumes from it
(:mod:`gdepth.sweep.checkpoint`) with the numbers of the uninterrupted run.

A *row-wise* stacked model (``rowwise = True``: node i's logits depend on row i of features
fixed for the whole training and on nothing else, as SGC's on :math:`\hat{A}^K X`) is asked
for the training step's logits on the rows of the training masks only and for the
evaluation's on the rows of any mask (``model(x_in, adj, rows=index)``, ``[R, S, C]``): the
other rows enter no loss and no metric, so the numbers are the same and the work is that of R
rows instead of N (Cora's public split: 140 and 1,640 of 2,708).

Timings: a batch of one seed reports the seed's own ``wall_s`` / ``epoch_s`` (wall time over
epochs run). A batch of several measures the batch's wall time and epochs
(``SeedResult.batch``, the same entry for each of its seeds); a seed's own ``wall_s`` /
``epoch_s`` are then nan, since its epochs ran inside the batch's and were not timed apart.
Progress goes to a :class:`gdepth.train_progress.Tracker` after every epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth import train_progress
from gdepth.config import TrainConfig
from gdepth.engine.slices import seed_state
from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import propagation
from gdepth.sweep.checkpoint import BatchCheckpoint, rng_state, set_rng_state
from gdepth.train import (
    Clipper,
    SeedResult,
    Selector,
    accuracy,
    l1_penalty,
    make_optimizer,
    progress_metric,
    seed_result,
    selection_rule,
    should_stop,
    stopping_rule,
)

log = logging.getLogger("gdepth")


def _masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Per-seed mean of ``values [N, S]`` over a mask given as ``weights = mask / |mask|``."""
    return (values * weights).sum(dim=0)


@dataclass
class _Rows:
    """The nodes one forward is scored on: ``index`` into the N nodes (``None``: all), their
    labels ``y [R]`` and ``y_flat [R·S]`` (seed-minor, as ``logits.reshape(R·S, C)``), and per
    mask ``train | val | test`` its mean weights and the mask itself, ``[R, S]``."""

    index: Tensor | None
    y: Tensor
    y_flat: Tensor
    weights: dict[str, Tensor]
    masks: dict[str, Tensor]


def _rows(index: Tensor | None, y: Tensor, masks: dict[str, Tensor],
          weights: dict[str, Tensor]) -> _Rows:
    def pick(t: Tensor) -> Tensor:
        return t if index is None else t[index]

    num = masks["train"].shape[1]
    y_r = pick(y)
    return _Rows(index, y_r, y_r[:, None].expand(len(y_r), num).reshape(-1),
                 {k: pick(w) for k, w in weights.items()}, {k: pick(m) for k, m in masks.items()})


def _row_index(model: Any, keep: Tensor) -> Tensor | None:
    """The rows ``keep [N]`` selects for a row-wise ``model``; ``None`` (all rows) otherwise."""
    if not getattr(model, "rowwise", False) or bool(keep.all()):
        return None
    return keep.nonzero().flatten()


def _forward(model: Any, x_in: StackedInput, adj: Any, rows: _Rows) -> Tensor:
    """``model``'s logits ``[R, S, C]`` on ``rows``."""
    return model(x_in, adj) if rows.index is None else model(x_in, adj, rows=rows.index)


def _nll(logits: Tensor, rows: _Rows, smoothing: float = 0.0) -> Tensor:
    """Per node and seed cross-entropy ``[R, S]`` of ``logits [R, S, C]``; 0 at unlabelled
    nodes (label ``-1``, as the transfer tasks' non-readout nodes: no mask selects them, so
    their terms have weight 0 anyway, but a -1 target is out of range for the loss)."""
    r, num, c = logits.shape
    return F.cross_entropy(logits.reshape(r * num, c), rows.y_flat, reduction="none",
                           ignore_index=-1, label_smoothing=smoothing).view(r, num)


def fit_batched(
    model: nn.Module,
    graphs: Sequence[Any],
    adj: Tensor,
    train_cfg: TrainConfig,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
    adjacency: str = "sparse",
    train_adj: Callable[[], Tensor] | None = None,
    keep_states: list[dict[str, Tensor] | None] | None = None,
    checkpoint: BatchCheckpoint | None = None,
    monitor: Callable[[int, dict[int, float]], None] | None = None,
) -> list[SeedResult]:
    """Train the S seeds of the seed-native ``model`` together; one :class:`SeedResult` per seed.

    ``graphs[s]`` is seed s's graph (its split's masks; ``x``, ``y`` shared by all), on the
    model's device, ``adj`` the shared normalized adjacency. ``on_epoch(epoch)`` is called once
    per running seed and epoch (a progress bar of seeds × epochs). A batch of one seed reports
    its ``wall_s`` / ``epoch_s``; in a batch of several, each seed's ``batch`` entry holds what
    was measured for the batch: ``seeds``, ``epochs`` (run by the batch: its longest seed's, or
    the epoch all diverged at), ``wall_s`` and ``epoch_s`` (their quotient), and its own
    ``wall_s`` / ``epoch_s`` are nan. ``adjacency``: ``sparse`` or ``dense`` storage of ``adj``
    for the propagations (:func:`gdepth.nn.propagation.adjacency_storage` resolves ``auto``).
    ``train_adj``, if given, returns each training step's adjacency, one for all seeds
    (DropEdge / DropNode; per seed: batches of one); evaluation uses ``adj``.
    ``keep_states``, if given (a list), receives per seed its state at its selected epoch
    (:func:`gdepth.engine.slices.seed_state`; ``None`` while no epoch is selected).
    ``checkpoint``, if given, saves the batch's training state every ``checkpoint.every``
    epochs and resumes from the last saved one (:mod:`gdepth.sweep.checkpoint`).
    ``monitor``, if given, is called after every epoch with the epoch and, per seed of the batch,
    the validation accuracy at its selected epoch so far (what it would report were training to
    stop now; nan before one is selected): a search's pruner (:mod:`gdepth.search.prune`), which
    may raise to end the training there.
    """
    num = len(graphs)
    if getattr(model, "num_seeds", None) != num or len(seeds) != num:
        raise ValueError(f"{getattr(model, 'num_seeds', None)} stacked seeds, {len(graphs)} "
                         f"graphs, {len(seeds)} seeds")
    x_in, y, prop = StackedInput(graphs[0].x), graphs[0].y, propagation(adj, adjacency)
    masks = {k: torch.stack([getattr(g, f"{k}_mask") for g in graphs], dim=1)
             for k in ("train", "val", "test")}  # [N, S] bool
    dtype = next(model.parameters()).dtype  # the means are in the model's dtype
    mean_w = {k: m.to(dtype) / m.sum(dim=0).clamp(min=1) for k, m in masks.items()}
    nonempty = {k: m.any(dim=0).tolist() for k, m in masks.items()}
    scored = masks["train"] | masks["val"] | masks["test"]
    fit_rows = _rows(_row_index(model, masks["train"].any(dim=1)), y, masks, mean_w)
    eval_rows = _rows(_row_index(model, scored.any(dim=1)), y, masks, mean_w)
    evaluator = graphs[0].evaluator
    optimizer = make_optimizer(model, train_cfg)
    rule, stopping = selection_rule(train_cfg), stopping_rule(train_cfg)
    patience = train_cfg.patience
    smoothing = float(train_cfg.label_smoothing)
    l1_weight = float(train_cfg.l1_weight)
    clipper = Clipper(train_cfg, num)
    selectors = [Selector(rule) for _ in range(num)]
    val_losses: list[list[float]] = [[] for _ in range(num)]
    status = ["ok"] * num
    epochs_run = [0] * num
    running = set(range(num))
    kept: list[dict[str, Tensor] | None] = [None] * num
    done, before = 0, 0.0  # the epochs before a resume and their wall time
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        for selector, state in zip(selectors, saved["selectors"], strict=True):
            selector.restore(state)
        val_losses, clipper.history = saved["val_losses"], saved["clip_history"]
        status, epochs_run, running = saved["status"], saved["epochs_run"], set(saved["running"])
        kept, done, before = saved["kept"], saved["epoch"], saved["wall_s"]
        set_rng_state(saved["rng"])
        log.info("seeds %s resume from their checkpoint at epoch %d", list(seeds), done)
    shown, shown_key = progress_metric(rule)
    tracker = train_progress.Tracker(seeds, int(train_cfg.epochs), shown, done + 1)
    start = time.perf_counter() - before
    epoch = done
    for epoch in range(done + 1, int(train_cfg.epochs) + 1):
        model.train()
        optimizer.zero_grad()
        step_adj = prop if train_adj is None else propagation(train_adj(), adjacency)
        loss = _masked_mean(_nll(_forward(model, x_in, step_adj, fit_rows), fit_rows, smoothing),
                            fit_rows.weights["train"])  # [S]
        if l1_weight:
            loss = loss + l1_weight * l1_penalty(model, num)
        finite = torch.isfinite(loss)
        torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        clipper(model, epoch)
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = _forward(model, x_in, prop, eval_rows)
            correct = logits.argmax(dim=-1) == eval_rows.y[:, None]
            # count / size: a sum of rounded 1/size weights gives equal counts unequal values
            # and breaks best_val_acc's first-best tie rule
            rows = [(correct & m).sum(dim=0) / m.sum(dim=0).clamp(min=1)
                    for m in (eval_rows.masks[k] for k in ("train", "val", "test"))]
            rows += [loss.detach(), _masked_mean(_nll(logits, eval_rows), eval_rows.weights["val"]),
                     finite.to(loss.dtype)]
            stats = torch.stack(rows).tolist()  # the epoch's one device → host copy
        selected, ran = [], 0
        for s in sorted(running):
            if not stats[5][s]:
                status[s], epochs_run[s] = "diverged", epoch - 1
                running.discard(s)
                continue
            metrics = _metrics(stats, s, eval_rows.masks, nonempty, logits, eval_rows.y,
                               evaluator)
            val_losses[s].append(metrics["val_loss"])
            tracker.record(seeds[s], epoch, metrics)  # the per-epoch curves (tracking)
            if selectors[s].update(epoch, metrics):
                selected.append(s)
            epochs_run[s], ran = epoch, ran + 1
            if should_stop(rule, stopping, patience, selectors[s], epoch, val_losses[s]):
                running.discard(s)
        if keep_states is not None:
            for s in selected:
                kept[s] = seed_state(model, s)
        tracker.epoch(epoch, [sel.metrics.get(shown_key, math.nan) for sel in selectors],
                      [sel.epoch for sel in selectors], len(running))
        for _ in range(ran if on_epoch is not None else 0):  # after the progress snapshot
            on_epoch(epoch)
        if monitor is not None:
            monitor(epoch, {int(seeds[s]): sel.metrics.get("val_acc", math.nan)
                            for s, sel in enumerate(selectors)})
        if not running:
            break
        if checkpoint is not None and checkpoint.due(epoch):
            checkpoint.save({
                "epoch": epoch, "wall_s": time.perf_counter() - start,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "selectors": [sel.state() for sel in selectors], "val_losses": val_losses,
                "clip_history": clipper.history, "status": status, "epochs_run": epochs_run,
                "running": sorted(running), "kept": kept, "rng": rng_state()})
    wall = time.perf_counter() - start
    tracker.close()
    if keep_states is not None:
        keep_states[:] = kept
    if num == 1:  # a seed trained alone: its own timings
        return [seed_result(seeds[0], status[0], selectors[0], epochs_run[0], graphs[0].split,
                            wall_s=wall)]
    batch = {"seeds": [int(s) for s in seeds], "epochs": epoch, "wall_s": wall,
             "epoch_s": wall / max(epoch, 1)}
    return [seed_result(seeds[s], status[s], selectors[s], epochs_run[s], graphs[s].split,
                        batch=batch) for s in range(num)]


def _metrics(stats: list[list[float]], s: int, masks: dict[str, Tensor],
             nonempty: dict[str, list[bool]], logits: Tensor, y: Tensor, evaluator: Any
             ) -> dict[str, float]:
    """Seed s's epoch metrics (those of an empty mask are nan)."""
    acc = {k: stats[i][s] if nonempty[k][s] else math.nan
           for i, k in enumerate(("train", "val", "test"))}
    if evaluator is not None:
        acc = {k: accuracy(logits[:, s], y, masks[k][:, s], evaluator) for k in acc}
    return {"train_acc": acc["train"], "val_acc": acc["val"], "test_acc": acc["test"],
            "train_loss": stats[3][s], "val_loss": stats[4][s] if nonempty["val"][s] else math.nan}
