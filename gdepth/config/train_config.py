"""The ``train`` group's schema (``configs/train/``): :class:`TrainConfig`, one for every
preset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from gdepth.config.choices import GradClip, LRSchedule, Selection, Stopping


@dataclass
class TrainConfig:
    name: str = MISSING  # the preset's name, recorded with every result
    optimizer: str = "adam"
    lr: float = 0.01
    weight_decay: float = 5e-4
    weight_decay_graph: float | None = None  # graph layers' own decay (GCNII's wd1), if set
    # decay per parameter group the model declares (models.common.optimizer_groups), e.g.
    # {input: 5e-3, output: 0}; groups not named: weight_decay. weight_decay_graph = {graph: x}
    weight_decay_groups: dict[str, float] = field(default_factory=dict)
    weight_decay_first_only: bool = False  # decay only the first layer (Kipf & Welling code)
    epochs: int = 200
    patience: int | None = None  # stop after this many epochs without improvement
    stopping: Stopping = Stopping.patience
    selection: Selection = Selection.best_val_acc
    label_smoothing: float = 0.0  # Bag of Tricks' LabelSmoothing uses 0.03
    l1_weight: float = 0.0  # NodeNorm code: + l1_weight * sum |w| over parameters named *weight*
    grad_clip: GradClip = GradClip.none
    grad_clip_window: int = 50  # adaptive clipping: epochs averaged (NodeNorm: 50)
    grad_clip_norm: float = 1.0  # adaptive clipping: the p of the p-norm (NodeNorm: 1)
    dropedge: float = 0.0  # share of edges dropped, re-drawn each epoch (Rong et al. 2020)
    dropnode: float = 0.0  # share of nodes whose edges are dropped each epoch (Bag of Tricks)
    shared_graph_dropout: bool = False  # batched engine: one DropEdge/DropNode draw per epoch
    # shared by the seeds trained together (opt-in; without it such cells loop over seeds)
    # Mini-batches of trees (gdepth/train_trees.py; dataset=tree_match only, Alon & Yahav 2021)
    batch_size: int | None = None  # trees per mini-batch (None: all training trees at once)
    accum_grad: int = 1  # mini-batches whose gradients add up before one optimizer step
    passes_per_epoch: int = 1  # passes over the training trees per epoch (their eval_every)
    max_passes: int | None = None  # at most this many passes in all (their max_epochs = 50000)
    min_delta: float = 0.0  # an epoch improves if train acc > best + min_delta (theirs: 1e-4)
    stop_at: float | None = None  # stop once train accuracy reaches this (theirs: 1.0)
    lr_schedule: LRSchedule = LRSchedule.none  # plateau: halve lr on a train-acc plateau
    lr_factor: float = 0.5  # plateau: lr multiplier
    lr_patience: int = 10  # plateau: epochs without a gain > 1e-4 before lowering lr
    # {model.conv or "*": {"r<depth_r>": {batch_size|accum_grad|passes_per_epoch: value}}}
    tree_batches: dict[str, Any] = field(default_factory=dict)
    # Protocol data the preset imposes (gdepth/protocol.py): {name or "*": {key: value}}
    dataset_overrides: dict[str, Any] = field(default_factory=dict)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # A preset's per-model (and per-dataset) values, read by its own keys' interpolations:
    # {rows: {model or all: {dataset or all: {key: value}}}, cell: the row this cell uses}
    per_model: dict[str, Any] = field(default_factory=dict)
