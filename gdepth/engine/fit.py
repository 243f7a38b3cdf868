r"""Full-batch training of S seeds at once: :func:`fit_batched`, the seed-batched ``train.fit``.

Each epoch is one optimizer step of the stacked model on the summed loss
:math:`\mathcal{L} = \sum_s \mathcal{L}_s`, then one evaluation forward. The seeds share no
parameter, no loss term, no normalization statistic (every stacked block acts per seed) and no
optimizer state (Adam, AdamW and SGD act element by element), so
:math:`\partial\mathcal{L}/\partial\theta_s = \partial\mathcal{L}_s/\partial\theta_s` and seed s
follows exactly the trajectory of its own ``train.fit`` run. Per seed, with :math:`M_s` its
training mask and :math:`\ell_{is}` the (label-smoothed) cross-entropy of node i,
:math:`\mathcal{L}_s = \frac{1}{|M_s|}\sum_{i \in M_s} \ell_{is} + \lambda \sum |w_s|`.

Early stopping and divergence are per seed: a seed that stops (patience, window rule) or
diverges has its selected metrics, ``selected_epoch`` and ``epochs_run`` frozen at that
epoch, exactly what its loop run reports. It is then still stepped with the others (a
diverged seed with its loss term zeroed) until every seed has stopped: cheaper than
re-slicing the stacked tensors, and harmless, because nothing of a seed flows into another
seed and nothing it does after it stopped is reported. Selection rules, stopping rules,
label smoothing, the L1 penalty and NodeNorm's adaptive gradient clipping (per seed) follow
:mod:`gdepth.train`.

A *row-wise* stacked model (``rowwise = True``: node i's logits depend on row i of features
fixed for the whole training and on nothing else, as SGC's on :math:`\hat{A}^K X`) is asked
for the training step's logits on the rows of the training masks only and for the
evaluation's on the rows of any mask (``model(x_in, adj, rows=index)``, ``[R, S, C]``): the
other rows enter no loss and no metric, so the numbers are the same and the work is that of R
rows instead of N (Cora's public split: 140 and 1,640 of 2,708).

Timings: the batch's wall time and epochs are measured (``SeedResult.batch``, the same entry
for each of its seeds); a seed's own ``wall_s`` / ``epoch_s`` are nan, since its epochs ran
inside the batch's and were not timed apart. Progress goes to a
:class:`gdepth.train_progress.Tracker` after every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdepth import train_progress
from gdepth.models import common
from gdepth.nn.kernels import NotBatchable, StackedInput, propagation
from gdepth.options import option, unknown
from gdepth.train import (
    SeedResult,
    _name,
    _Selector,
    _should_stop,
    accuracy,
    progress_metric,
)

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def make_optimizer(model: nn.Module, train_cfg: Any) -> torch.optim.Optimizer:
    """``train.make_optimizer`` for the stacked model (element-wise optimizers only)."""
    name = str(train_cfg.optimizer)
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS)
    params: Any = list(model.parameters())
    try:  # parameter groups, as train.make_optimizer; the loop reports a bad request
        if common.requested_decays(train_cfg):
            params = common.optimizer_groups(model, train_cfg)
    except ValueError as err:
        raise NotBatchable(str(err)) from None
    if option(train_cfg, "weight_decay_first_only", False):
        first = {id(p) for p in model.first_layer_parameters()}
        params = [{"params": [p for p in params if id(p) in first]},
                  {"params": [p for p in params if id(p) not in first], "weight_decay": 0.0}]
    return OPTIMIZERS[name](params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def per_seed(t: Tensor, seeds: int) -> Tensor:
    """``[S, -1]`` view of a stacked parameter or gradient (seed-major in every layout)."""
    return t.reshape(seeds, -1)


class _StackedClipper:
    """``train._Clipper`` per seed: seed s clips to the mean of its own last ``window``
    post-clipping gradient norms, ``clip_grad_norm_``'s rule
    :math:`g_s \\leftarrow g_s \\min(1, c_s / (\\|g_s\\|_p + 10^{-6}))`."""

    def __init__(self, train_cfg: Any, seeds: int) -> None:
        mode = _name(train_cfg, "grad_clip", "none")
        if mode not in ("none", "adaptive"):
            raise unknown("grad_clip", mode, ("none", "adaptive"))
        self.on = mode == "adaptive"
        self.window = int(option(train_cfg, "grad_clip_window", 50))
        self.norm = float(option(train_cfg, "grad_clip_norm", 1.0))
        self.seeds = seeds
        self.history: list[Tensor] = []  # [S] per epoch

    def _norms(self, grads: list[Tensor]) -> Tensor:
        each = torch.stack([torch.linalg.vector_norm(per_seed(g, self.seeds), self.norm, dim=1)
                            for g in grads])  # [P, S]
        return torch.linalg.vector_norm(each, self.norm, dim=0)

    def __call__(self, model: nn.Module, epoch: int) -> None:
        if not self.on:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if epoch > self.window + 1:
            limit = torch.stack(self.history[-self.window:]).sum(0) / self.window
            coef = (limit / (self._norms(grads) + 1e-6)).clamp(max=1.0)
            for g in grads:
                per_seed(g, self.seeds).mul_(coef[:, None])
        self.history.append(self._norms(grads).detach())


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
    """Per node and seed cross-entropy ``[R, S]`` of ``logits [R, S, C]``."""
    r, num, c = logits.shape
    return F.cross_entropy(logits.reshape(r * num, c), rows.y_flat, reduction="none",
                           label_smoothing=smoothing).view(r, num)


def fit_batched(
    model: nn.Module,
    graphs: Sequence[Any],
    adj: Tensor,
    train_cfg: Any,
    seeds: Sequence[int],
    on_epoch: Callable[[int], None] | None = None,
    adjacency: str = "sparse",
    train_adj: Callable[[], Tensor] | None = None,
) -> list[SeedResult]:
    """Train the S seeds of ``model`` together; one :class:`SeedResult` per seed.

    ``graphs[s]`` is seed s's graph (its split's masks; ``x``, ``y`` shared by all), on the
    model's device, ``adj`` the shared normalized adjacency. ``on_epoch(epoch)`` is called once
    per running seed and epoch (a progress bar of seeds × epochs). Each seed's ``batch`` entry
    holds what was measured for the batch: ``seeds``, ``epochs`` (run by the batch: its longest
    seed's, or the epoch all diverged at), ``wall_s`` and ``epoch_s`` (their quotient); its
    ``wall_s`` / ``epoch_s`` are nan. ``adjacency``: ``sparse`` or ``dense`` storage of ``adj``
    for the propagations (:func:`gdepth.nn.kernels.adjacency_storage` resolves ``auto``).
    ``train_adj``, if given, returns each training step's adjacency, one for all seeds
    (``train.shared_graph_dropout``: DropEdge / DropNode); evaluation uses ``adj``.
    """
    num = len(graphs)
    if model.num_seeds != num or len(seeds) != num:
        raise ValueError(f"{model.num_seeds} stacked seeds, {len(graphs)} graphs, "
                         f"{len(seeds)} seeds")
    x_in, y, prop = StackedInput(graphs[0].x), graphs[0].y, propagation(adj, adjacency)
    masks = {k: torch.stack([getattr(g, f"{k}_mask") for g in graphs], dim=1)
             for k in ("train", "val", "test")}  # [N, S] bool
    dtype = next(model.parameters()).dtype  # the loop's means are in the model's dtype
    mean_w = {k: m.to(dtype) / m.sum(dim=0).clamp(min=1) for k, m in masks.items()}
    nonempty = {k: m.any(dim=0).tolist() for k, m in masks.items()}
    scored = masks["train"] | masks["val"] | masks["test"]
    fit_rows = _rows(_row_index(model, masks["train"].any(dim=1)), y, masks, mean_w)
    eval_rows = _rows(_row_index(model, scored.any(dim=1)), y, masks, mean_w)
    evaluator = graphs[0].evaluator
    optimizer = make_optimizer(model, train_cfg)
    rule = str(getattr(train_cfg.selection, "value", train_cfg.selection))
    stopping = _name(train_cfg, "stopping", "patience")
    if stopping not in ("patience", "window"):
        raise unknown("stopping", stopping, ("patience", "window"))
    patience = train_cfg.patience
    smoothing = float(option(train_cfg, "label_smoothing", 0.0))
    l1_weight = float(option(train_cfg, "l1_weight", 0.0))
    clipper = _StackedClipper(train_cfg, num)
    selectors = [_Selector(rule) for _ in range(num)]
    val_losses: list[list[float]] = [[] for _ in range(num)]
    status = ["ok"] * num
    epochs_run = [0] * num
    running = set(range(num))
    shown, shown_key = progress_metric(rule)
    tracker = train_progress.Tracker(seeds, int(train_cfg.epochs), shown)
    epoch = 0
    start = time.perf_counter()
    for epoch in range(1, int(train_cfg.epochs) + 1):
        model.train()
        optimizer.zero_grad()
        step_adj = prop if train_adj is None else propagation(train_adj(), adjacency)
        loss = _masked_mean(_nll(_forward(model, x_in, step_adj, fit_rows), fit_rows, smoothing),
                            fit_rows.weights["train"])  # [S]
        if l1_weight:
            loss = loss + l1_weight * sum(per_seed(p.abs(), num).sum(dim=1)
                                          for p in model.weight_parameters())
        finite = torch.isfinite(loss)
        torch.where(finite, loss, torch.zeros_like(loss)).sum().backward()
        clipper(model, epoch)
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = _forward(model, x_in, prop, eval_rows)
            correct = logits.argmax(dim=-1) == eval_rows.y[:, None]
            # count / size, as the loop: a sum of rounded 1/size weights gives equal counts
            # unequal values and breaks best_val_acc's first-best tie rule (issue 16)
            rows = [(correct & m).sum(dim=0) / m.sum(dim=0).clamp(min=1)
                    for m in (eval_rows.masks[k] for k in ("train", "val", "test"))]
            rows += [loss.detach(), _masked_mean(_nll(logits, eval_rows), eval_rows.weights["val"]),
                     finite.float()]
            stats = torch.stack(rows).tolist()  # the epoch's one device → host copy
        for s in sorted(running):
            if not stats[5][s]:
                status[s], epochs_run[s] = "diverged", epoch - 1
                running.discard(s)
                continue
            metrics = _metrics(stats, s, eval_rows.masks, nonempty, logits, eval_rows.y,
                               evaluator)
            val_losses[s].append(metrics["val_loss"])
            selectors[s].update(epoch, metrics)
            epochs_run[s] = epoch
            if on_epoch is not None:
                on_epoch(epoch)
            if _should_stop(rule, stopping, patience, selectors[s], epoch, val_losses[s]):
                running.discard(s)
        tracker.epoch(epoch, [sel.metrics.get(shown_key, math.nan) for sel in selectors],
                      [sel.epoch for sel in selectors], len(running))
        if not running:
            break
    wall = time.perf_counter() - start
    tracker.close()
    batch = {"seeds": [int(s) for s in seeds], "epochs": epoch, "wall_s": wall,
             "epoch_s": wall / max(epoch, 1)}
    return [_result(seeds[s], status[s], selectors[s], epochs_run[s], graphs[s].split, batch)
            for s in range(num)]


def _metrics(stats: list[list[float]], s: int, masks: dict[str, Tensor],
             nonempty: dict[str, list[bool]], logits: Tensor, y: Tensor, evaluator: Any
             ) -> dict[str, float]:
    """Seed s's epoch metrics (those of an empty mask are nan, as in ``train.fit``)."""
    acc = {k: stats[i][s] if nonempty[k][s] else math.nan
           for i, k in enumerate(("train", "val", "test"))}
    if evaluator is not None:
        acc = {k: accuracy(logits[:, s], y, masks[k][:, s], evaluator) for k in acc}
    return {"train_acc": acc["train"], "val_acc": acc["val"], "test_acc": acc["test"],
            "train_loss": stats[3][s], "val_loss": stats[4][s] if nonempty["val"][s] else math.nan}


def _result(seed: int, status: str, selector: _Selector, epochs_run: int, split: str,
            batch: dict[str, Any]) -> SeedResult:
    chosen, nan = selector.metrics, math.nan
    return SeedResult(seed=seed, status=status, selected_epoch=selector.epoch,
                      epochs_run=epochs_run, train_acc=chosen.get("train_acc", nan),
                      val_acc=chosen.get("val_acc", nan), test_acc=chosen.get("test_acc", nan),
                      train_loss=chosen.get("train_loss", nan),
                      val_loss=chosen.get("val_loss", nan), wall_s=nan, epoch_s=nan,
                      split=split, batch=dict(batch))
