"""The training rules every loop of gdepth shares: optimizer, selection, stopping, clipping,
the reported result.

The loops themselves are :func:`gdepth.engine.fit.fit_batched` (full-batch training of S ≥ 1
seeds of one seed-native model, ``engine=batched`` and ``engine=loop`` alike) and
:func:`gdepth.train_trees.fit_trees` (mini-batches of trees, one seed). Each epoch: one
optimizer step on the training nodes (train mode, dropout on), then one evaluation forward
(eval mode) that scores train / val / test. The selection rule picks the epoch whose test
metric a seed reports (:class:`Selector`):

- ``best_val_acc``: the first epoch with the highest validation accuracy (strict ``>``, as the
  NodeNorm and PairNorm code);
- ``min_val_loss``: the first epoch with the lowest validation loss (GCNII, DropEdge);
- ``last``: the last epoch run.

``patience`` stops training early (:func:`should_stop`). ``stopping=patience``: after that many
epochs without improvement of the selection criterion (ignored by ``last``);
``stopping=window``: the rule of Kipf & Welling's code (``gcn/train.py``), stop once
``epoch > patience`` and the validation loss exceeds the mean of the previous ``patience``
ones (used with ``selection=last``). A non-finite training loss ends the seed as ``diverged``.

Training tricks, all off by default:

- ``label_smoothing`` ε: cross-entropy against ``(1-ε)·onehot + ε/C`` (torch's
  ``label_smoothing``; the Bag-of-Tricks ``LabelSmoothing`` is 0.97·NLL + 0.03·mean_c(−log p_c),
  i.e. ε = 0.03);
- ``l1_weight`` λ: adds λ·Σ|w| over every parameter the model names a weight
  (``weight_parameters()``; NodeNorm code, ``worker.get_l1_regularization``); the reported
  training loss includes it;
- ``grad_clip=adaptive``: from epoch ``window + 1`` on, gradients are clipped to the mean of the
  previous ``window`` epochs' (post-clipping) gradient ``grad_clip_norm``-norms (NodeNorm code,
  ``worker.train``: ``clip_grad_norm_`` with ``get_clip_value``, window 50, L1 norm), per seed
  (:class:`Clipper`);
- ``dropedge`` / ``dropnode``: a new dropped graph every training step, see
  :mod:`gdepth.graph_dropout`; evaluation always sees the full graph.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.config import TrainConfig
from gdepth.options import unknown

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


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
    # a batch of several seeds (gdepth.engine.fit): the batch's measured timings, shared by its
    # seeds; the seed's own wall_s / epoch_s are then nan (not measured per seed)
    batch: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["batch"] is None:  # a seed trained alone: its own timings, no batch entry
            del out["batch"]
        return out


def seed_result(seed: int, status: str, selector: Selector, epochs_run: int, split: str,
                wall_s: float = math.nan, batch: dict[str, Any] | None = None) -> SeedResult:
    """The :class:`SeedResult` of a seed whose selection is ``selector`` (nan metrics when no
    epoch was selected); ``epoch_s`` = ``wall_s / epochs_run`` (nan with ``wall_s``)."""
    chosen, nan = selector.metrics, math.nan
    return SeedResult(seed=int(seed), status=status, selected_epoch=selector.epoch,
                      epochs_run=epochs_run, train_acc=chosen.get("train_acc", nan),
                      val_acc=chosen.get("val_acc", nan), test_acc=chosen.get("test_acc", nan),
                      train_loss=chosen.get("train_loss", nan),
                      val_loss=chosen.get("val_loss", nan), wall_s=wall_s,
                      epoch_s=wall_s / max(epochs_run, 1), split=split,
                      batch=None if batch is None else dict(batch))


def accuracy(logits: Tensor, y: Tensor, mask: Tensor, evaluator=None) -> float:
    """Share of correctly classified nodes in ``mask`` (OGB's Evaluator where there is one)."""
    pred = logits[mask].argmax(dim=-1)
    if evaluator is not None:
        return float(evaluator(y[mask], pred))
    return float((pred == y[mask]).float().mean()) if int(mask.sum()) else math.nan


def selection_rule(train_cfg: TrainConfig) -> str:
    """``train.selection`` as a plain string."""
    return str(train_cfg.selection)


def stopping_rule(train_cfg: TrainConfig) -> str:
    """``train.stopping`` (``patience`` or ``window``) as a plain string."""
    return str(train_cfg.stopping)


def first_layer_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The input layer's parameters (``weight_decay_first_only``): a seed-native model's
    ``first_layer_parameters()``, a one-seed module's ``first_layer().parameters()``; the old
    loop's ValueError where the model has no first layer."""
    try:
        if hasattr(model, "first_layer_parameters"):
            return list(model.first_layer_parameters())
        return list(model.first_layer().parameters())
    except AttributeError:
        raise ValueError(f"train.weight_decay_first_only=true but model "
                         f"{type(model).__name__} has no first_layer()") from None


def make_optimizer(model: nn.Module, train_cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``train.optimizer`` with ``lr`` and ``weight_decay``.

    Where ``train.weight_decay_groups`` (or its shorthand ``weight_decay_graph``, the group
    ``graph``) is set, each parameter group the model declares gets its decay and the others
    ``weight_decay`` (:func:`gdepth.models.common.optimizer_groups`; e.g. GCNII's wd1 / wd2,
    APPNP's input / output). With ``train.weight_decay_first_only`` only the first layer
    (:func:`first_layer_parameters`) is decayed, as in Kipf & Welling's code (L2 loss on the
    first layer's weights). Adam, AdamW and SGD act element by element, so on a seed-native
    model (parameters ``[S, ...]``) every seed is stepped as its own run.
    """
    from gdepth.models import common  # parameter groups

    name = str(train_cfg.optimizer)
    if name not in OPTIMIZERS:
        raise unknown("optimizer", name, OPTIMIZERS)
    params: Any = list(model.parameters())
    if common.requested_decays(train_cfg):  # also refuses them with weight_decay_first_only
        params = common.optimizer_groups(model, train_cfg)
    elif train_cfg.weight_decay_first_only:
        first = {id(p) for p in first_layer_parameters(model)}
        params = [{"params": [p for p in params if id(p) in first]},
                  {"params": [p for p in params if id(p) not in first], "weight_decay": 0.0}]
    return OPTIMIZERS[name](params, lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)


def per_seed(t: Tensor, seeds: int) -> Tensor:
    """``[S, -1]`` view of a seed-major parameter or gradient."""
    return t.reshape(seeds, -1)


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The tensors the L1 penalty sums: the model's ``weight_parameters()``, else every
    parameter whose name contains ``weight``."""
    if hasattr(model, "weight_parameters"):
        return list(model.weight_parameters())
    return [p for n, p in model.named_parameters() if "weight" in n]


def l1_penalty(model: nn.Module, seeds: int) -> Tensor:
    r""":math:`\sum |w_s|` per seed ``[S]`` over :func:`weight_parameters` (seed-major)."""
    return sum(per_seed(p.abs(), seeds).sum(dim=1) for p in weight_parameters(model))


class Clipper:
    r"""NodeNorm's adaptive gradient clipping per seed (module docstring); ``none`` is a
    no-op. Seed s clips to the mean of its own last ``window`` post-clipping gradient norms,
    ``clip_grad_norm_``'s rule :math:`g_s \leftarrow g_s \min(1, c_s / (\|g_s\|_p + 10^{-6}))`,
    from step ``window + 2`` on (the NodeNorm code's 0-based ``epoch > ref_window``).
    ``history``: one ``[S]`` tensor of norms per step."""

    def __init__(self, train_cfg: TrainConfig, seeds: int = 1) -> None:
        self.on = train_cfg.grad_clip == "adaptive"
        self.window = int(train_cfg.grad_clip_window)
        self.norm = float(train_cfg.grad_clip_norm)
        self.seeds = seeds
        self.history: list[Tensor] = []

    def _norms(self, grads: list[Tensor]) -> Tensor:
        each = torch.stack([torch.linalg.vector_norm(per_seed(g, self.seeds), self.norm, dim=1)
                            for g in grads])  # [P, S]
        return torch.linalg.vector_norm(each, self.norm, dim=0)

    def __call__(self, model: nn.Module, step: int) -> None:
        if not self.on:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if step > self.window + 1:
            limit = torch.stack(self.history[-self.window:]).sum(0) / self.window
            coef = (limit / (self._norms(grads) + 1e-6)).clamp(max=1.0)
            for g in grads:
                per_seed(g, self.seeds).mul_(coef[:, None])
        self.history.append(self._norms(grads).detach())


class Selector:
    """Tracks one seed's selected epoch under one selection rule (module docstring).

    ``min_delta``: an epoch improves only by more than that (the tree task's rule; 0 elsewhere).
    """

    def __init__(self, rule: str, min_delta: float = 0.0) -> None:
        self.rule, self.min_delta = rule, float(min_delta)
        self.best = math.inf if rule == "min_val_loss" else -math.inf
        self.metrics: dict[str, float] = {}
        self.epoch = 0
        self.since = 0  # epochs since the criterion last improved

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Score ``epoch``; True when it is the newly selected one."""
        if self.rule == "last":
            improved = True
        elif self.rule == "min_val_loss":
            improved = metrics["val_loss"] < self.best - self.min_delta
            self.best = metrics["val_loss"] if improved else self.best
        else:
            improved = metrics["val_acc"] > self.best + self.min_delta
            self.best = metrics["val_acc"] if improved else self.best
        if improved:
            self.epoch, self.metrics, self.since = epoch, dict(metrics), 0
        else:
            self.since += 1
        return improved

    def state(self) -> dict[str, Any]:
        """What :meth:`restore` needs (a checkpoint)."""
        return dict(self.__dict__)

    def restore(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def should_stop(rule: str, stopping: str, patience: int | None, selector: Selector,
                epoch: int, val_losses: list[float]) -> bool:
    """Whether a seed stops after ``epoch`` (module docstring; ``patience=None``: never)."""
    if patience is None:
        return False
    if stopping == "window":
        previous = val_losses[-(patience + 1):-1]
        return epoch > patience + 1 and val_losses[-1] > sum(previous) / len(previous)
    return rule != "last" and selector.since >= patience


def progress_metric(rule: str) -> tuple[str, str]:
    """The selection metric a progress line shows under ``rule``: (label, metrics key)."""
    return ("val loss", "val_loss") if rule == "min_val_loss" else ("val acc", "val_acc")
