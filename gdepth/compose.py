"""What a ``gdepth run|sweep`` command line will run, composed before anything is launched.

The CLI composes every cell of a command line with Hydra's compose API (the same config tree
and overrides a job composes) before it hands the command to Hydra's multirun, so that

- a bad value fails at once, in one line, before any folder is made (``model=transformer``,
  ``seeds=0``, ``+depht=4``);
- ``--cfg job`` prints the configuration each cell will really run: resolved, with the train
  preset's protocol merged in and the command line winning over it (:mod:`gdepth.protocol`);
- ``--dry-run`` lists the cells with their record keys and effective settings.

Hydra's compose API composes one config; a sweep's comma lists are expanded here into one
override list per cell, in Hydra's own order (the Cartesian product, first override slowest).
``depth`` is a plain top-level key, so the depths of one combination share one composition.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gdepth import config as schema
from gdepth import protocol
from gdepth.sweep import plan


class ComposeError(ValueError):
    """A command line that cannot run; the message is one line naming the bad value."""


@dataclass
class Cell:
    """One cell of a command line: its overrides, record key, label and effective config."""

    overrides: list[str]
    key: str
    label: str
    config: dict[str, Any]  # resolved, preset merged, command line winning (what will run)
    applied: dict[str, dict[str, Any]]  # what the train preset set in dataset / model


def register() -> None:
    """Put the schemas of :mod:`gdepth.config` into Hydra's ConfigStore (idempotent): the
    YAML options name them in their defaults lists (``/schema/<group>/<name>@_here_``)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="gdepth_schema", node=schema.GdepthConfig)
    for group, name, node in [
        ("dataset", "dataset", schema.DatasetConfig),
        ("dataset", "csbm", schema.CSBMConfig),
        ("dataset", "range_task", schema.RangeTaskConfig),
        ("dataset", "grid2d", schema.Grid2dConfig),
        ("dataset", "small_world", schema.SmallWorldConfig),
        ("dataset", "transfer", schema.TransferConfig),
        ("dataset", "tree_match", schema.TreeMatchConfig),
        ("model", "model", schema.ModelConfig),
        ("model", "gcn", schema.GCNConfig),
        ("model", "appnp", schema.APPNPConfig),
        ("model", "gcnii", schema.GCNIIConfig),
        ("model", "resgcn", schema.ResGCNConfig),
        ("model", "jknet", schema.JKNetConfig),
        ("model", "sgc", schema.SGCConfig),
        ("model", "sign", schema.SIGNConfig),
        ("model", "gat", schema.GATConfig),
        ("model", "gin", schema.GINConfig),
        ("model", "bottleneck", schema.BottleneckConfig),
        ("norm", "norm", schema.NormConfig),
        ("norm", "pairnorm", schema.PairNormConfig),
        ("norm", "nodenorm", schema.NodeNormConfig),
        ("norm", "layernorm", schema.LayerNormConfig),
        ("norm", "groupnorm", schema.GroupNormConfig),
        ("norm", "graphnorm", schema.GraphNormConfig),
        ("norm", "combnorm", schema.CombNormConfig),
        ("train", "train", schema.TrainConfig),
        ("diagnostics", "diagnostics", schema.DiagnosticsConfig),
        ("search", "search", schema.SearchConfig),
        ("tracking", "tracking", schema.TrackingConfig),
        ("tracking", "mlflow", schema.MLflowTrackingConfig),
        ("tracking", "tensorboard", schema.TensorBoardTrackingConfig),
    ]:
        cs.store(group=f"schema/{group}", name=name, node=node)


def expand(overrides: Sequence[str]) -> list[list[str]]:
    """The Cartesian product of Hydra's comma lists (``model=gcn,gat``), as plain overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception as err:  # Hydra's OverrideParseException: several lines
        raise ComposeError(_one_line(err)) from None
    choices = []
    for text, override in zip(overrides, parsed, strict=True):
        key = text.partition("=")[0]
        if override.is_sweep_override():
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(combo) for combo in itertools.product(*choices)]


def first_values(overrides: Sequence[str]) -> list[str]:
    """``overrides`` with each comma list reduced to its first value (one cell's overrides)."""
    return expand(overrides)[0] if overrides else []


def _close(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _one_line(err: BaseException) -> str:
    """Hydra's and OmegaConf's several-line composition errors as one line."""
    from hydra.errors import MissingConfigException

    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    head = lines[0].rstrip(".") if lines else type(err).__name__
    if isinstance(err, MissingConfigException) and err.options:
        return f"{head}; valid: {', '.join(err.options)}"
    cause = err.__cause__
    if cause is not None:
        detail = str(cause).splitlines()[0].strip()
        kind = getattr(cause, "object_type", None)
        key = getattr(cause, "key", None)
        if "not in" in detail and dataclasses.is_dataclass(kind) and isinstance(key, str):
            names = [f.name for f in dataclasses.fields(kind)]
            detail += f"{_close(key, names)}; valid: {', '.join(names)}"
        return f"{head}: {detail}"
    return head


def _check_added(cfg: DictConfig, overrides: Sequence[str], groups: set[str]) -> None:
    """Refuse ``+key=v`` / ``++key=v`` that adds a key the typed schema does not have.

    Hydra lets ``+`` add any key, even into a typed config (it is its hint after a misspelt
    key), and gdepth would then run with the key silently ignored. Adding into a free-form
    dict (``+train.model_overrides.gcn.dropout=0.3``) or choosing a group (``+launcher=pool``)
    stays allowed.
    """
    for text in overrides:
        key, sep, _ = text.partition("=")
        if not sep or not key.startswith("+"):
            continue
        path = key.lstrip("+").partition("@")[0]
        parent, _, leaf = path.rpartition(".")
        if not parent and leaf in groups:
            continue
        node = OmegaConf.select(cfg, parent) if parent else cfg
        kind = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
        if kind is None or not dataclasses.is_dataclass(kind):
            continue
        names = [f.name for f in dataclasses.fields(kind)]
        if leaf not in names:
            where = f"'{parent}' ({kind.__name__})" if parent else "the root config"
            raise ComposeError(f"{text}: {where} has no key '{leaf}'{_close(leaf, names)}; "
                               f"valid: {', '.join(names)}")


def effective(cfg: DictConfig, overrides: Sequence[str]
              ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The config a job composed from ``overrides`` runs (as ``cell.run_cell`` makes it).

    A top-level value that only a running job can resolve (the pool's ``threads``, which
    reads ``${hydra:launcher.n_jobs}``) is kept as its interpolation.
    """
    raw = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    assert isinstance(raw, dict)
    raw.pop("hydra", None)
    config: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            node = cfg[key]
            config[key] = (OmegaConf.to_container(node, resolve=True, enum_to_str=True)
                           if isinstance(node, DictConfig) else
                           getattr(node, "name", node))  # an Enum as its name
        except Exception:  # needs the running job (HydraConfig)
            config[key] = value
    return protocol.apply(config, protocol.explicit_keys(overrides))


def cells(overrides: Sequence[str], config_dir: str) -> list[Cell]:
    """Every cell of ``overrides`` (depths already expanded by the CLI), composed and checked.

    Raises:
        ComposeError: the first cell that cannot compose or fails :func:`gdepth.config.check`.
    """
    from hydra import compose, initialize_config_dir

    register()
    groups = {p.name for p in Path(config_dir).iterdir() if p.is_dir()} | {"hydra"}
    depth_of = [o for o in overrides if o.partition("=")[0].lstrip("+") == "depth"]
    rest = [o for o in overrides if o not in depth_of]
    depths = [c[0].partition("=")[2] for c in expand(depth_of[-1:])] if depth_of else [None]
    out: list[Cell] = []
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        for combo in expand(rest):
            try:
                cfg = compose("config", overrides=combo)
            except Exception as err:
                raise ComposeError(_one_line(err)) from None
            _check_added(cfg, combo, groups)
            for depth in depths:
                job = list(combo)
                if depth is not None:
                    job.append(f"depth={depth}")
                    try:
                        cfg.depth = int(depth)
                    except Exception as err:
                        raise ComposeError(f"depth={depth}: {_one_line(err)}") from None
                config, applied = effective(cfg, job)
                try:
                    schema.check(config)
                    if (config.get("search") or {}).get("name", "none") != "none":
                        from gdepth.search import space

                        space.check(config["search"], config)
                        if config.get("seeds_per_job") is not None:
                            raise ValueError("search=... trains each trial as one job: "
                                             "drop seeds_per_job")
                except ValueError as err:
                    raise ComposeError(str(err)) from None
                key, _ = plan.cell_identity(cfg, job)
                out.append(Cell(job, key, plan.label(config), config, applied))
    return out


def hydra_node(overrides: Sequence[str], config_dir: str) -> dict[str, Any]:
    """The ``hydra`` node of one cell's config, unresolved (as Hydra's ``--cfg hydra``)."""
    from hydra import compose, initialize_config_dir

    register()
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        cfg = compose("config", overrides=first_values(overrides), return_hydra_config=True)
    node = OmegaConf.to_container(cfg.hydra, resolve=False, enum_to_str=True)
    assert isinstance(node, dict)
    return node
