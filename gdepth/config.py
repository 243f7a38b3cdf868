"""Typed schemas of the Hydra config tree (``configs/``): every default lives here.

Every YAML option of a group starts from one of these dataclasses (its defaults list names
``/schema/<group>/<schema>@_here_``; :func:`gdepth.compose.register` stores them in Hydra's
ConfigStore), so a wrong type (``depth=2..64`` without the CLI's expansion, ``train.lr=fast``)
or an unknown key (``model.hiden=64``) fails when Hydra composes the config, with the key
named, before any cell starts. Values that must be one of a set of names (a norm's mode, a
model name) are checked by the registry that owns them, which lists the valid choices.

A cell turns its resolved config into these dataclasses once (:func:`typed`); the code below
the cell reads attributes and never repeats a default. :func:`make` builds one schema from
plain values (scripts and tests), checked and converted as Hydra would. This module does not
import Hydra: the training code can use it from a plain script.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class Choice(str, Enum):
    """A name out of a fixed set; ``str()`` and f-strings give the name (``"last"``, not
    ``"Selection.last"``), and it equals its plain string."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Engine(Choice):
    """How a cell trains its seeds (gdepth/engine): batched together or one after another."""

    auto = "auto"  # batched where the cell supports it, else the per-seed loop
    batched = "batched"  # batched, or the cell fails with the reason
    loop = "loop"  # the same loop, batches of one seed


class Adjacency(Choice):
    """How the seed-batched engine stores the normalized adjacency it propagates with."""

    auto = "auto"  # dense on CUDA for graphs up to nn.kernels.DENSE_AUTO_MAX_NODES, else sparse
    sparse = "sparse"  # CSR (embedding_bag rows on CPU, torch.sparse.mm elsewhere)
    dense = "dense"  # a dense [N, N] matrix and dense matmuls


class Selection(Choice):
    """Model-selection rule: which epoch's test metric a seed reports."""

    best_val_acc = "best_val_acc"
    min_val_loss = "min_val_loss"
    last = "last"


class DropoutLayers(Choice):
    all = "all"  # dropout before every convolution (Kipf & Welling)
    io = "io"  # only before the first and the last convolution
    hidden = "hidden"  # before every convolution but the first: not on the input (DropEdge)
    nodenorm = "nodenorm"  # after the input block and on the logits (NodeNorm's code; gcn, gcn_res)


@dataclass
class DatasetConfig:
    name: str = MISSING  # registry key in gdepth.data.DATASETS
    split: str = MISSING  # public | random_per_class | full_supervised | fastgcn | ... | ogb
    train_per_class: int = 20  # random_per_class: training nodes per class
    val_per_class: int = 30  # random_per_class: validation nodes per class (unless val_size)
    val_size: int | None = None  # random_per_class: validation nodes drawn from the rest
    test_size: int | None = None  # random_per_class: test nodes drawn after val (None: rest)
    train_frac: float = 0.6  # full_supervised: share of each class for training
    val_frac: float = 0.2  # full_supervised: share of each class for validation (rest: test)
    num_splits: int | None = None  # random splits: seed i uses split i % num_splits
    normalize_features: bool = False  # row-L1-normalize x (GCN, GCNII, PairNorm, NodeNorm code)
    adjacency: str = "sym"  # sym: D^-1/2 A D^-1/2 | row: D^-1 A (PairNorm's code)
    self_loops: bool = True  # add I to A before normalizing


@dataclass
class CSBMConfig(DatasetConfig):
    num_nodes: int = 1000
    num_classes: int = 4
    avg_degree: float = 8.0
    homophily: float = 0.7
    snr: float = 0.5
    num_features: int = 32
    graph_seed: int = 0


@dataclass
class RangeTaskConfig(DatasetConfig):
    """grid2d, ring, small_world: a graph plus the distance-to-nearest-source task of range k."""

    num_nodes: int = 1024
    task_range: int = 4  # k: labels are hop distances 0..k to the nearest source, or k+1
    num_sources: int = 32
    graph_seed: int = 0  # the sources (and small_world's rewiring)


@dataclass
class Grid2dConfig(RangeTaskConfig):
    width: int | None = None  # None: a square num_nodes = width²
    periodic: bool = False  # True: a torus


@dataclass
class SmallWorldConfig(RangeTaskConfig):
    neighbors: int = 4  # Watts–Strogatz k: each node joins its k nearest ring neighbours (even)
    rewire_prob: float = 0.1  # Watts–Strogatz p


@dataclass
class TransferConfig(DatasetConfig):
    """transfer_ring, transfer_crossed_ring, transfer_clique_path (Di Giovanni et al. 2023)."""

    task_range: int = 5  # r: hops between the readout node and the source node
    num_graphs: int = 1000  # instances in the disjoint union
    num_classes: int = 5


@dataclass
class TreeMatchConfig(DatasetConfig):
    """tree_match: Tree-NeighborsMatch of Alon & Yahav (ICLR 2021), generated as their code."""

    depth_r: int = 4  # r in 2..8: tree depth, 2^r leaves = classes; their models use r+1 layers
    graph_seed: int = 11  # the authors' seed: their examples and split
    train_fraction: float = 0.8  # stratified train share; the rest is test


@dataclass
class ModelConfig:
    name: str = MISSING  # registry key in gdepth.models.MODELS
    hidden: int = 64
    dropout: float = 0.5
    dropout_layers: DropoutLayers = DropoutLayers.all
    activation: str = "relu"
    # the last layer on each instance's complete graph (Alon & Yahav 2021 §4): gcn, gcn_res, gin
    # on datasets with instance ids (gdepth/models/fully_adjacent.py); bottleneck: its own
    fully_adjacent_last: bool = False


@dataclass
class NormConfig:
    name: str = MISSING  # registry key in gdepth.norms.NORMS


@dataclass
class PairNormConfig(NormConfig):
    mode: str = "PN"  # PN | PN-SI | PN-SCS
    scale: float = 1.0
    eps: float = 1e-5


@dataclass
class NodeNormConfig(NormConfig):
    variant: str = "n"  # n | v | srv | pr | m
    power: float = 2.0
    eps: float = 1e-5


@dataclass
class LayerNormConfig(NormConfig):
    eps: float = 1e-5
    affine: bool = True


@dataclass
class GroupNormConfig(NormConfig):
    groups: int = 10  # DiffGroupNorm's G
    lamda: float = 0.01  # skip weight λ (PyG's spelling)
    eps: float = 1e-5


@dataclass
class GraphNormConfig(NormConfig):
    eps: float = 1e-5


@dataclass
class CombNormConfig(GroupNormConfig):
    variant: str = "n"  # the NodeNorm that follows the group norm
    power: float = 2.0


class Skip(Choice):
    """Bag-of-Tricks skip connections (Chen et al. 2021, official code skipConnections.py)."""

    none = "none"
    residual = "residual"
    initial = "initial"
    dense = "dense"
    jumping = "jumping"


@dataclass
class GCNConfig(ModelConfig):
    skip: Skip = Skip.none  # none: Kipf GCN; else Bag of Tricks' GCN with linear in/out layers
    skip_alpha: float = 0.1  # α of the residual / initial connections
    identity_mapping: bool = False  # GCNII-style β_l = log(λ/l + 1) on the hidden convs
    lamda: float = 0.5  # λ of identity mapping
    embedding_dropout: float = 0.6  # Bag of Tricks: dropout before the linear in/out layers


@dataclass
class APPNPConfig(ModelConfig):
    alpha: float = 0.1  # teleport probability


@dataclass
class GCNIIConfig(ModelConfig):
    alpha: float = 0.1  # initial-residual strength α
    lamda: float = 0.5  # identity-mapping λ: θ_l = log(λ / l + 1)


@dataclass
class JKNetConfig(ModelConfig):
    mode: str = "cat"  # jumping-knowledge aggregation: cat | max | lstm
    shared_dropout: bool = False  # one mask per layer output for the next layer and JK (BoT's)


@dataclass
class GATConfig(ModelConfig):
    heads: int = 8  # concatenated heads per hidden layer (hidden must be a multiple)
    output_heads: int = 1  # averaged heads of the output layer
    attention_dropout: float = 0.6  # dropout on the attention coefficients


@dataclass
class GINConfig(ModelConfig):
    train_eps: bool = False  # learn GIN's epsilon (False: GIN-0, epsilon fixed to 0)


@dataclass
class BottleneckConfig(ModelConfig):
    """bottleneck: Alon & Yahav's GraphModel (ICLR 2021, github.com/tech-srl/bottleneck)."""

    conv: str = "gcn"  # gcn | gin | gat | ggnn
    hidden: int = 32  # their --dim
    dropout: float = 0.0  # their code has none
    residual: bool = True  # x = x + act(conv(x)) (False: their --no_residual)
    layer_norm: bool = True  # LayerNorm after each layer (False: their --no_layer_norm)
    fully_adjacent_last: bool = False  # last layer: every node -> its tree's root (paper §4)


@dataclass
class SGCConfig(ModelConfig):
    dropout: float = 0.0  # on A^K X before the linear layer (paper: none)
    bias: bool = True  # the linear layer's bias b (false: logits = A^K X W, as BoT's SGC)


@dataclass
class SIGNConfig(ModelConfig):
    operator: str = "sym"  # hop operator: sym (Â^k X) | ppr (truncated PPR iterates)
    ppr_alpha: float = 0.15  # teleport probability of the ppr operator


@dataclass
class ResGCNConfig(ModelConfig):
    nbaseblocklayer: int = 1  # convs per residual block (DropEdge's name); 0: one block of L-2


class Stopping(Choice):
    """When ``patience`` ends training early."""

    patience = "patience"  # no improvement of the selection criterion for `patience` epochs
    window = "window"  # Kipf & Welling: val loss above the mean of the previous `patience`


class LRSchedule(Choice):
    none = "none"
    plateau = "plateau"  # ReduceLROnPlateau(mode=max) on train accuracy (Alon & Yahav's code)


class GradClip(Choice):
    none = "none"
    adaptive = "adaptive"  # NodeNorm code: clip to the mean norm of the previous window


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


@dataclass
class DiagnosticsConfig:
    name: str = "none"  # none | smoothing | influence (gdepth/diagnostics/run.py)
    max_nodes: int = 1024  # smoothing: node sample of the pairwise measures
    measures: list[str] | None = None  # smoothing: None = all
    hops: int = 8  # influence: k
    samples: int = 50  # influence: sampled nodes


@dataclass
class SearchConfig:
    """Per-cell hyperparameter search (gdepth/search/, configs/search/)."""

    name: str = MISSING  # none | default | a search/ option of your own
    trials: int = 30  # Optuna trials per cell: the equal budget
    seeds: int = 3  # seeds (splits) per trial; objective: their mean validation accuracy
    sampler_seed: int = 0  # TPE's seed
    startup_trials: int = 10  # random trials before TPE
    parallel: int = 1  # trials launched together
    space: dict[str, Any] = field(default_factory=dict)  # key: {low, high, log} | {choices}
    models: dict[str, Any] = field(default_factory=dict)  # model name: its own extra space


@dataclass
class TrackingConfig:
    """Experiment tracking of every cell (gdepth/sweep/tracking.py, configs/tracking/); not
    identity."""

    name: str = "none"  # none | mlflow | tensorboard
    curves: bool = True  # also log every seed's per-epoch train/val/test curves


@dataclass
class MLflowTrackingConfig(TrackingConfig):
    uri: str | None = None  # tracking URI (None: sqlite:///<sweep dir>/mlflow.db)
    experiment: str | None = None  # experiment name (None: the sweep's name)


@dataclass
class TensorBoardTrackingConfig(TrackingConfig):
    log_dir: str | None = None  # event files' root (None: <sweep dir>/tensorboard)


@dataclass
class DataConfig:
    root: str | None = "${oc.env:GDEPTH_DATA,null}"  # writable cache (None: user cache)
    mirror: str | None = "${oc.env:GDEPTH_DATA_MIRROR,null}"  # read-only raw-layout folder


@dataclass
class GdepthConfig:
    dataset: Any = MISSING
    model: ModelConfig = MISSING
    norm: Any = MISSING
    train: TrainConfig = MISSING
    diagnostics: DiagnosticsConfig = MISSING
    search: Any = MISSING  # {name: none} or a SearchConfig (configs/search/)
    tracking: TrackingConfig = MISSING  # none | mlflow | tensorboard (configs/tracking/)
    data: DataConfig = field(default_factory=DataConfig)
    depth: int = 2  # message-passing layers; see each model's convention
    seeds: int = 3  # independent seeds per cell (seed i also draws split i)
    seeds_per_job: int | None = None  # sweep: seeds per job (None: all; gdepth/sweep/parts.py)
    seed_range: list[int] | None = None  # [lo, hi]: a part's seeds (set by the sweeper)
    name: str | None = None  # sweep name -> <out_dir>/sweeps/<name>; the CLI fills it in
    device: Device = Device.auto
    engine: Engine = Engine.auto  # seeds batched (gdepth/engine) or looped; not identity
    adjacency: Adjacency = Adjacency.auto  # batched engine's adjacency storage; not identity
    seeds_per_batch: int | None = None  # batched engine: seeds trained together (None: as
    # many as fit in memory, gdepth/engine/memory.py); not identity
    out_dir: str = "outputs"
    threads: int | None = None  # torch CPU threads (results depend on it; recorded)
    progress: bool = True  # per-epoch progress bar on a terminal
    progress_log_s: float | None = 60.0  # seconds between progress lines in the job log when
    # stderr is not a terminal (0: every epoch; None: none); not identity
    checkpoint_every: int | None = 50  # epochs between training checkpoints (None: off)
    activation_checkpointing: bool = False  # recompute layers in backward; not identity


# Top-level counts a cell cannot run without (null where the schema allows it). Hydra's typed
# schema checks types, not ranges, hence this check on the composed config.
POSITIVE = ("seeds", "depth", "seeds_per_job", "seeds_per_batch", "threads", "checkpoint_every")


def check(config: Any) -> None:
    """Raise ValueError (one line, the key and value named) if a count is not positive.

    ``config``: a composed config, as a dict or DictConfig. ``threads`` that a running job
    resolves later (the pool's interpolation) is left to it.
    """
    for key in POSITIVE:
        value = config.get(key)
        if value is None or isinstance(value, str):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key}={value}: must be a whole number >= 1"
                             + (" (or null)" if key != "seeds" and key != "depth" else ""))



# The schema of each group option that extends its group's base (every other option uses the
# base: DatasetConfig, ModelConfig, NormConfig), by registry name. Its YAML names the same
# schema in its defaults list (tests/test_config.py checks that they agree).
SCHEMAS: dict[str, dict[str, type]] = {
    "dataset": {"csbm": CSBMConfig, "grid2d": Grid2dConfig, "ring": RangeTaskConfig,
                "small_world": SmallWorldConfig, "transfer_ring": TransferConfig,
                "transfer_crossed_ring": TransferConfig, "transfer_clique_path": TransferConfig,
                "tree_match": TreeMatchConfig},
    "model": {"gcn": GCNConfig, "appnp": APPNPConfig, "gcnii": GCNIIConfig,
              "gcnii_star": GCNIIConfig, "resgcn": ResGCNConfig, "jknet": JKNetConfig,
              "sgc": SGCConfig, "sign": SIGNConfig, "gat": GATConfig, "gin": GINConfig,
              "bottleneck": BottleneckConfig},
    "norm": {"pairnorm": PairNormConfig, "nodenorm": NodeNormConfig,
             "layernorm": LayerNormConfig, "groupnorm": GroupNormConfig,
             "graphnorm": GraphNormConfig, "combnorm": CombNormConfig},
    "tracking": {"mlflow": MLflowTrackingConfig, "tensorboard": TensorBoardTrackingConfig},
}
BASES: dict[str, type] = {"dataset": DatasetConfig, "model": ModelConfig, "norm": NormConfig,
                          "tracking": TrackingConfig}
# Groups a record written before the group existed lacks: their value then.
ABSENT: dict[str, dict[str, Any]] = {"tracking": {"name": "none"}}
# Groups with one schema for every option.
GROUPS: dict[str, type] = {"train": TrainConfig, "diagnostics": DiagnosticsConfig,
                           "search": SearchConfig, "data": DataConfig}


def schema(group: str, name: str) -> type:
    """The schema of option ``name`` of ``group`` (``dataset``, ``model`` or ``norm``)."""
    return SCHEMAS[group].get(name, BASES[group])


def make(cls: type[T], values: Mapping[str, Any] | None = None, /, **overrides: Any) -> T:
    """An instance of the schema ``cls`` from plain ``values`` and ``overrides`` (the rest: its
    defaults), checked and converted as Hydra composes (``"io"`` → ``DropoutLayers.io``,
    ``2`` → ``2.0``; interpolations resolved). Raises ValueError (one line, the key named) for
    an unknown key, a wrong type or a missing value."""
    try:
        node = OmegaConf.merge(_structured(cls), dict(values or {}), overrides)
        return OmegaConf.to_object(node)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise _one_line(cls, err) from None


def _one_line(cls: type, err: OmegaConfBaseException) -> ValueError:
    key = getattr(err, "full_key", None)
    where = f"{cls.__name__}.{key}" if key else cls.__name__
    return ValueError(f"{where}: {str(err).splitlines()[0]}")


@functools.cache
def _structured(cls: type) -> Any:
    """The schema's structured node, made once (merging into it copies it)."""
    return OmegaConf.structured(cls)


def group(kind: str, values: Mapping[str, Any] | None = None, /, **overrides: Any) -> Any:
    """The option of ``kind`` (dataset, model, norm) named by ``name`` in ``values`` /
    ``overrides``, as its schema: ``group("model", name="gcn", hidden=8)`` is a GCNConfig."""
    name = {**dict(values or {}), **overrides}.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{kind}: no name given (a {kind} option needs one)")
    return make(schema(kind, name), values, **overrides)


def dataset(name: str, **values: Any) -> DatasetConfig:
    """``group("dataset", name=name, **values)``."""
    return group("dataset", name=name, **values)


def model(name: str, **values: Any) -> ModelConfig:
    """``group("model", name=name, **values)``: ``model("gcn", hidden=8)`` is a GCNConfig."""
    return group("model", name=name, **values)


def norm(name: str, **values: Any) -> NormConfig:
    """``group("norm", name=name, **values)``."""
    return group("norm", name=name, **values)


def typed(config: Mapping[str, Any]) -> GdepthConfig:
    """The resolved config of a cell (a plain dict, as its record stores it) as dataclasses:
    each group as its option's schema, the top-level keys as :class:`GdepthConfig`'s. Groups
    left out take their defaults (``train`` needs a ``name``)."""
    values = dict(config)
    nodes: dict[str, Any] = {g: group(g, values.pop(g) if g in values else ABSENT[g])
                             for g in BASES}
    for key, cls in GROUPS.items():
        node = values.pop(key, None)
        nodes[key] = make(cls, node if node is not None else (
            {"name": "none"} if key == "search" else {}))
    try:  # the top-level keys checked and converted, the groups (made above) left out
        node = OmegaConf.merge(_structured(GdepthConfig), values)
        top = OmegaConf.to_container(node, resolve=True, enum_to_str=False)
    except OmegaConfBaseException as err:
        raise _one_line(GdepthConfig, err) from None
    return GdepthConfig(**{**top, **nodes})  # type: ignore[arg-type]
