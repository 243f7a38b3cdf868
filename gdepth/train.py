"""Full-batch training of one seed, with the model-selection rules the depth papers use.

Each epoch: one optimizer step on the training nodes (train mode, dropout on), then one
evaluation forward (eval mode) that scores train / val / test. The selection rule picks the
epoch whose test metric a seed reports:

- ``best_val_acc``: the first epoch with the highest validation accuracy (strict ``>``, as the
  NodeNorm and PairNorm code);
- ``min_val_loss``: the first epoch with the lowest validation loss (GCNII, DropEdge);
- ``last``: the last epoch run.

``patience`` stops training early. ``stopping=patience``: after that many epochs without
improvement of the selection criterion (ignored by ``last``); ``stopping=window``: the rule of
Kipf & Welling's code (``gcn/train.py``), stop once ``epoch > patience`` and the validation
loss exceeds the mean of the previous ``patience`` ones (used with ``selection=last``).
A non-finite training loss ends the seed as ``diverged``.

Progress: after every epoch the seed's epoch and selected metric go to a
:class:`gdepth.train_progress.Tracker` (a job-log line every ``GDEPTH_PROGRESS_S`` seconds when
stderr is not a terminal; the epoch ``gdepth status`` shows).

Training tricks, all off by default:

- ``label_smoothing`` ε: cross-entropy against ``(1-ε)·onehot + ε/C`` (torch's
  ``label_smoothing``; the Bag-of-Tricks ``LabelSmoothing`` is 0.97·NLL + 0.03·mean_c(−log p_c),
  i.e. ε = 0.03);
- ``l1_weight`` λ: adds λ·Σ|w| over every parameter whose name contains ``weight`` (NodeNorm
  code, ``worker.get_l1_regularization``); the reported training loss includes it;
- ``grad_clip=adaptive``: from epoch ``window + 1`` on, gradients are clipped to the mean of the
  previous ``window`` epochs' (post-clipping) gradient ``grad_clip_norm``-norms (NodeNorm code,
  ``worker.train``: ``clip_grad_norm_`` with ``get_clip_value``, window 50, L1 norm);
- ``dropedge`` / ``dropnode``: a new dropped graph every training step, see
  :mod:`gdepth.graph_dropout`; evaluation always sees the full graph.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from gdepth import train_progress
from gdepth.checkpoint import SeedCheckpoint, rng_state, set_rng_state
from gdepth.options import option, unknown

log = logging.getLogger("gdepth")


@dataclass
class SeedResult:
    """What one seed reports: metrics at the selected epoch and how the run went."""

    seed: int
    status: str  # ok | diverged
    selected_epoch: int
    epochs_run: int
    train_acc: float
    val_acc: float
    test_acc: float
    train_loss: float
    val_loss: float
    wall_s: float
    epoch_s: float
    split: str
    # seed-batched (gdepth.engine.fit): the batch's measured timings, shared by its seeds; the
    # seed's own wall_s / epoch_s are then nan (not measured per seed)
    batch: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["batch"] is None:  # a seed trained alone: its own timings, no batch entry
            del out["batch"]
        return out


def accuracy(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, evaluator=None) -> float:
    """Share of correctly classified nodes in ``mask`` (OGB's Evaluator where there is one)."""
    pred = logits[mask].argmax(dim=-1)
    if evaluator is not None:
        return float(evaluator(y[mask], pred))
    return float((pred == y[mask]).float().mean()) if int(mask.sum()) else math.nan


def make_optimizer(model: torch.nn.Module, train_cfg: Any) -> torch.optim.Optimizer:
    """The optimizer named by ``train.optimizer`` with ``lr`` and ``weight_decay``.

    Where ``train.weight_decay_groups`` (or its shorthand ``weight_decay_graph``, the group
    ``graph``) is set, each parameter group the model declares gets its decay and the others
    ``weight_decay`` (:func:`gdepth.models.common.optimizer_groups`; e.g. GCNII's wd1 / wd2,
    APPNP's input / output). With
    ``train.weight_decay_first_only`` only the first layer (``model.first_layer()``) is decayed,
    as in Kipf & Welling's code (L2 loss on the first layer's weights).
    """
    from gdepth.models import common  # parameter groups

    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    name = str(train_cfg.optimizer)
    if name not in kinds:
        raise unknown("optimizer", name, kinds)
    group_decays = common.requested_decays(train_cfg)
    params: Any = model.parameters()
    if option(train_cfg, "weight_decay_first_only", False):
        if not hasattr(model, "first_layer"):
            raise ValueError(f"train.weight_decay_first_only=true but model "
                             f"{type(model).__name__} has no first_layer()")
        first = {id(p) for p in model.first_layer().parameters()}  # OneSeed: the native's
        params = [
            {"params": [p for p in model.parameters() if id(p) in first]},
            {"params": [p for p in model.parameters() if id(p) not in first],
             "weight_decay": 0.0},
        ]
    elif group_decays:  # parameter groups: the model's named groups, each with its decay
        params = common.optimizer_groups(model, train_cfg)
    return kinds[name](params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


class _Selector:
    """Tracks the selected epoch under one selection rule."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.best = math.inf if rule == "min_val_loss" else -math.inf
        self.metrics: dict[str, float] = {}
        self.epoch = 0
        self.since = 0  # epochs since the criterion last improved

    def update(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.rule == "last":
            improved = True
        elif self.rule == "min_val_loss":
            improved = metrics["val_loss"] < self.best
            self.best = min(self.best, metrics["val_loss"]) if improved else self.best
        else:
            improved = metrics["val_acc"] > self.best
            self.best = metrics["val_acc"] if improved else self.best
        if improved:
            self.epoch, self.metrics, self.since = epoch, dict(metrics), 0
        else:
            self.since += 1


class _Clipper:
    """NodeNorm's adaptive gradient clipping (see the module docstring); ``none`` is a no-op."""

    def __init__(self, train_cfg: Any) -> None:
        mode = _name(train_cfg, "grad_clip", "none")
        if mode not in ("none", "adaptive"):
            raise unknown("grad_clip", mode, ("none", "adaptive"))
        self.on = mode == "adaptive"
        self.window = int(option(train_cfg, "grad_clip_window", 50))
        self.norm = float(option(train_cfg, "grad_clip_norm", 1.0))
        self.history: list[float] = []

    def __call__(self, model: torch.nn.Module, epoch: int) -> None:
        if not self.on:
            return
        params = [p for p in model.parameters() if p.grad is not None]
        if epoch > self.window + 1:  # the NodeNorm code's 0-based `epoch > ref_window`
            limit = sum(self.history[-self.window:]) / self.window
            torch.nn.utils.clip_grad_norm_(params, limit, norm_type=self.norm)
        grads = [p.grad.detach() for p in params]
        self.history.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g, self.norm) for g in grads]), self.norm)))


def _name(cfg: Any, key: str, default: str) -> str:
    """A config value that may be an Enum member or its name, as a plain string."""
    value = option(cfg, key, default)
    return str(getattr(value, "value", value))


def _l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    if hasattr(model, "weight_parameters"):  # a seed-native model names its own
        return sum(p.abs().sum() for p in model.weight_parameters())
    return sum(p.abs().sum() for n, p in model.named_parameters() if "weight" in n)


def progress_metric(rule: str) -> tuple[str, str]:
    """The selection metric a progress line shows under ``rule``: (label, metrics key)."""
    return ("val loss", "val_loss") if rule == "min_val_loss" else ("val acc", "val_acc")


def _should_stop(rule: str, stopping: str, patience: int | None, selector: _Selector,
                 epoch: int, val_losses: list[float]) -> bool:
    if patience is None:
        return False
    if stopping == "window":
        previous = val_losses[-(patience + 1):-1]
        return epoch > patience + 1 and val_losses[-1] > sum(previous) / len(previous)
    return rule != "last" and selector.since >= patience


def fit(
    model: torch.nn.Module,
    graph: Any,
    adj: torch.Tensor,
    train_cfg: Any,
    seed: int,
    on_epoch: Callable[[int], None] | None = None,
    train_adj: Callable[[], torch.Tensor] | None = None,
    keep_state: dict[str, Any] | None = None,
    checkpoint: SeedCheckpoint | None = None,
) -> SeedResult:
    """Train ``model`` on ``graph`` (full batch) and return the selected epoch's metrics.

    ``graph`` carries ``x, y, train_mask, val_mask, test_mask, split, evaluator`` on the
    model's device and ``adj`` is the normalized adjacency the model propagates with.
    ``train_adj``, if given, returns the adjacency of each training step (DropEdge /
    DropNode); evaluation always uses ``adj``. ``keep_state``, if given, receives under
    ``"state"`` a copy of the model's ``state_dict`` at the selected epoch (for diagnostics).
    The caller seeds torch before building the model so that the same seed gives the same
    numbers. ``checkpoint``, if given, saves the training state every ``checkpoint.every``
    epochs and resumes from the last saved one (:mod:`gdepth.checkpoint`): the resumed seed
    ends with the metrics of the uninterrupted run.
    """
    optimizer = make_optimizer(model, train_cfg)
    rule = str(getattr(train_cfg.selection, "value", train_cfg.selection))
    stopping = _name(train_cfg, "stopping", "patience")
    if stopping not in ("patience", "window"):
        raise unknown("stopping", stopping, ("patience", "window"))
    patience = train_cfg.patience
    smoothing = float(option(train_cfg, "label_smoothing", 0.0))
    l1_weight = float(option(train_cfg, "l1_weight", 0.0))
    clipper = _Clipper(train_cfg)
    selector = _Selector(rule)
    status, epoch = "ok", 0
    x, y, evaluator = graph.x, graph.y, graph.evaluator
    train_y = y[graph.train_mask]
    val_losses: list[float] = []
    first, before = 1, 0.0  # the first epoch to run; wall time of the epochs before it
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        selector.__dict__.update(saved["selector"])
        val_losses, clipper.history = saved["val_losses"], saved["clip_history"]
        if keep_state is not None and saved["kept"] is not None:
            keep_state["state"] = saved["kept"]
        epoch, before = saved["epoch"], saved["wall_s"]
        first = epoch + 1
        set_rng_state(saved["rng"])
        log.info("seed %d resumes from its checkpoint at epoch %d", seed, saved["epoch"])
    start = time.perf_counter() - before
    shown, shown_key = progress_metric(rule)
    tracker = train_progress.Tracker([seed], int(train_cfg.epochs), shown, first)
    for epoch in range(first, int(train_cfg.epochs) + 1):
        model.train()
        optimizer.zero_grad()
        logits = model(x, adj if train_adj is None else train_adj())
        loss = F.cross_entropy(logits[graph.train_mask], train_y, label_smoothing=smoothing)
        if l1_weight:
            loss = loss + l1_weight * _l1_penalty(model)
        if not torch.isfinite(loss):
            status = "diverged"
            break
        loss.backward()
        clipper(model, epoch)
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x, adj)
            val_loss = F.cross_entropy(logits[graph.val_mask], y[graph.val_mask])
        metrics = {
            "train_acc": accuracy(logits, y, graph.train_mask, evaluator),
            "val_acc": accuracy(logits, y, graph.val_mask, evaluator),
            "test_acc": accuracy(logits, y, graph.test_mask, evaluator),
            "train_loss": float(loss.detach()),
            "val_loss": float(val_loss),
        }
        val_losses.append(metrics["val_loss"])
        selector.update(epoch, metrics)
        if keep_state is not None and selector.epoch == epoch:
            keep_state["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        tracker.epoch(epoch, [selector.metrics.get(shown_key, math.nan)], [selector.epoch])
        if on_epoch is not None:
            on_epoch(epoch)
        if _should_stop(rule, stopping, patience, selector, epoch, val_losses):
            break
        if checkpoint is not None and checkpoint.due(epoch):
            checkpoint.save({
                "epoch": epoch, "wall_s": time.perf_counter() - start,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "selector": dict(selector.__dict__), "val_losses": val_losses,
                "clip_history": clipper.history, "rng": rng_state(),
                "kept": keep_state.get("state") if keep_state is not None else None})
    wall = time.perf_counter() - start
    tracker.close()
    epochs_run = epoch if status == "ok" else epoch - 1
    nan = math.nan
    chosen = selector.metrics
    return SeedResult(
        seed=seed,
        status=status,
        selected_epoch=selector.epoch,
        epochs_run=epochs_run,
        train_acc=chosen.get("train_acc", nan),
        val_acc=chosen.get("val_acc", nan),
        test_acc=chosen.get("test_acc", nan),
        train_loss=chosen.get("train_loss", nan),
        val_loss=chosen.get("val_loss", nan),
        wall_s=wall,
        epoch_s=wall / max(epochs_run, 1),
        split=graph.split,
    )
