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

One module per group of ``configs/`` (``<group>_config.py``, named after the group's base
schema), the root in :mod:`.gdepth_config`, the enums in :mod:`.choices`, and which option
uses which schema in :mod:`.schemas`; every name is re-exported here
(``from gdepth.config import GCNConfig``).
"""

from __future__ import annotations

from gdepth.config.choices import (
    Adjacency,
    Choice,
    Device,
    DropoutLayers,
    Engine,
    GradClip,
    LRSchedule,
    Selection,
    Skip,
    Stopping,
)
from gdepth.config.dataset_config import (
    CSBMConfig,
    DatasetConfig,
    Grid2dConfig,
    RangeTaskConfig,
    SmallWorldConfig,
    TransferConfig,
    TreeMatchConfig,
)
from gdepth.config.diagnostics_config import DiagnosticsConfig
from gdepth.config.gdepth_config import POSITIVE, DataConfig, GdepthConfig, check
from gdepth.config.model_config import (
    APPNPConfig,
    BottleneckConfig,
    GATConfig,
    GCNConfig,
    GCNIIConfig,
    GINConfig,
    JKNetConfig,
    ModelConfig,
    ResGCNConfig,
    SGCConfig,
    SIGNConfig,
)
from gdepth.config.norm_config import (
    CombNormConfig,
    GraphNormConfig,
    GroupNormConfig,
    LayerNormConfig,
    NodeNormConfig,
    NormConfig,
    PairNormConfig,
)
from gdepth.config.schemas import (
    ABSENT,
    BASES,
    GROUPS,
    SCHEMAS,
    dataset,
    group,
    make,
    model,
    norm,
    schema,
    typed,
)
from gdepth.config.search_config import SearchConfig, TrialConfig
from gdepth.config.tracking_config import (
    MLflowTrackingConfig,
    TensorBoardTrackingConfig,
    TrackingConfig,
)
from gdepth.config.train_config import TrainConfig

__all__ = [
    "ABSENT", "APPNPConfig", "Adjacency", "BASES", "BottleneckConfig", "CSBMConfig", "Choice",
    "CombNormConfig", "DataConfig", "DatasetConfig", "Device", "DiagnosticsConfig",
    "DropoutLayers", "Engine", "GATConfig", "GCNConfig", "GCNIIConfig", "GINConfig", "GROUPS",
    "GdepthConfig", "GradClip", "GraphNormConfig", "Grid2dConfig", "GroupNormConfig",
    "JKNetConfig", "LRSchedule", "LayerNormConfig", "MLflowTrackingConfig", "ModelConfig",
    "NodeNormConfig", "NormConfig", "POSITIVE", "PairNormConfig", "RangeTaskConfig",
    "ResGCNConfig", "SCHEMAS", "SGCConfig", "SIGNConfig", "SearchConfig", "Selection", "Skip",
    "SmallWorldConfig", "Stopping", "TensorBoardTrackingConfig", "TrackingConfig",
    "TrainConfig", "TransferConfig", "TreeMatchConfig", "TrialConfig", "check", "dataset",
    "group", "make", "model", "norm", "schema", "typed",
]
