"""Which schema each group option uses, and the schemas built from plain values: :func:`schema`,
:func:`make`, :func:`group` (and :func:`dataset`, :func:`model`, :func:`norm`), :func:`typed`."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

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
from gdepth.config.gdepth_config import DataConfig, GdepthConfig
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
from gdepth.config.search_config import SearchConfig, TrialConfig
from gdepth.config.tracking_config import (
    MLflowTrackingConfig,
    TensorBoardTrackingConfig,
    TrackingConfig,
)
from gdepth.config.train_config import TrainConfig

T = TypeVar("T")


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
                           "search": SearchConfig, "data": DataConfig, "trial": TrialConfig}


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
