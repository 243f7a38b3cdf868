"""The cells of an experiment: each sub-sweep expanded, composed, keyed and labelled.

Every cell is composed with Hydra's compose API exactly as a sweep job composes it, and keyed
with :func:`gdepth.plan.cell_identity` (the record key ``cell.run_cell`` writes), so the
comparison finds a cell's record by key, never by guessing from file names or overrides.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from gdepth.reproduce.experiment import NOT_PROTOCOL, Experiment

# Rough CPU cost: seconds per node · hidden unit · convolution · epoch, measured with
# threads=1 on a shared 2-core machine (Cora, GCN, hidden 128: about 35 ms per conv-epoch).
SECONDS_PER_UNIT = 1.0e-7
# Nodes per dataset for the estimate (PyG's statistics; the others count as 3000).
NODES = {"cora": 2708, "citeseer": 3327, "pubmed": 19717, "coauthor_cs": 18333,
         "coauthor_physics": 34493, "amazon_computers": 13752, "amazon_photo": 7650,
         "ogbn_arxiv": 169343, "csbm": 1000}


@dataclass
class Cell:
    """One planned cell: its record key, published-table labels and identity config."""

    key: str
    labels: dict[str, str]
    overrides: list[str]
    config: dict[str, Any]


def expand(overrides: list[str]) -> list[list[str]]:
    """The Cartesian product of Hydra's comma lists (``model=gcn,gat``), as plain overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for text, override in zip(overrides, parsed, strict=True):
        key = text.partition("=")[0]
        if override.is_sweep_override():
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([text])
    return [list(combo) for combo in itertools.product(*choices)]


def _get(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def plan(exp: Experiment) -> list[Cell]:
    """Every cell of ``exp`` (after the user's restrictions), in sub-sweep order.

    One Hydra compose per combination of the comma lists; the depths of a sub-sweep reuse it
    (``depth`` is a plain top-level key), which keeps ``--list`` and ``--dry-run`` quick.
    """
    from hydra import compose, initialize_config_dir

    from gdepth import plan as sweep_plan
    from gdepth.cli import config_dir

    out: list[Cell] = []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for sub in exp.subsweeps:
            base = [o for o in sub.overrides if not NOT_PROTOCOL.match(o)
                    and o.partition("=")[0].lstrip("+~") != "depth"]
            extra = [o for o in exp.extra if not NOT_PROTOCOL.match(o)]
            for overrides in expand([*base, f"seeds={exp.seeds}", *extra]):
                cfg = compose("config", overrides=overrides)
                for depth in sub.depths:
                    cfg.depth = depth
                    key, ident = sweep_plan.cell_identity(cfg)
                    labels = dict(sub.labels)
                    for column, path in exp.columns.items():
                        labels[column] = str(_get(ident, path))
                    out.append(Cell(key, labels, [*overrides, f"depth={depth}"], ident))
    return out


def convolutions(model: str, depth: int) -> int:
    """Graph convolutions one forward pass computes (IncepGCN: (L-2)(L-1)/2 + 2)."""
    if model == "incepgcn":
        return (depth - 2) * (depth - 1) // 2 + 2
    if model == "sgc":
        return 1
    return depth


def estimate_seconds(cell: Cell) -> float:
    """A rough single-thread CPU time of the cell (all seeds, every epoch run)."""
    c = cell.config
    nodes = NODES.get(c["dataset"]["name"], 3000)
    convs = convolutions(c["model"]["name"], int(c["depth"]))
    work = int(c["seeds"]) * int(c["train"]["epochs"]) * convs * int(c["model"]["hidden"])
    return SECONDS_PER_UNIT * nodes * work


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
