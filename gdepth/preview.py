"""What a ``gdepth run|sweep`` command line would run, shown and launching nothing:
``--cfg`` (each cell's composed config as YAML) and ``--dry-run`` (each cell's key, label,
record state and settings). Both read the cells :func:`gdepth.compose.cells` makes, the
preset applied and the command line winning, as the launch would.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import OmegaConf

from gdepth import compose
from gdepth.paths import config_dir
from gdepth.sweep import status


class UnknownPackage(ValueError):
    """``--cfg … --package KEY`` names a key the shown config does not have."""


def show_cfg(cfg: str, package: str | None, cells: list, overrides: list[str]) -> int:
    """``--cfg job|hydra|all [-p PACKAGE]``: what each cell will run (the preset applied, the
    command line winning), one YAML document per cell; :class:`UnknownPackage` for a
    ``PACKAGE`` no cell has."""
    hydra_node = compose.hydra_node(overrides, config_dir()) if cfg != "job" else None
    for i, cell in enumerate(cells):
        shown: dict = {} if cfg == "hydra" else dict(cell.config)
        if hydra_node is not None:
            shown["hydra"] = hydra_node
        node = OmegaConf.create(shown)
        if package:
            node = OmegaConf.select(node, package)
            if node is None:
                raise UnknownPackage(f"--package {package}: no such key; valid: "
                                     f"{', '.join(shown)}")
        if len(cells) > 1:
            print(f"# cell {i + 1}/{len(cells)}: {cell.label}  key {cell.key}")
        text = OmegaConf.to_yaml(node) if OmegaConf.is_config(node) else f"{node}\n"
        print(text, end="" if i + 1 == len(cells) else "---\n")
        if cfg == "hydra":
            break  # the hydra node is the same for every cell
    return 0


def dry_run(cells: list, folder: Path) -> int:
    """``--dry-run``: each cell's key, label, whether its record is done, and the dataset /
    model / train settings it will run with (the preset applied), launching nothing."""
    done = 0
    for cell in cells:
        state = status.cell_status(folder, cell.key) if folder.is_dir() else "missing"
        state = "done" if state in ("ok", "diverged") else "to run" if state == "missing" \
            else state
        done += state == "done"
        search = cell.config.get("search") or {}
        if search.get("name", "none") != "none":
            state = (f"search={search['name']}: {search['trials']} trials × {search['seeds']} "
                     f"seeds, then the best with {cell.config['seeds']} seeds")
        print(f"{cell.key}  {cell.label:<28} {state}")
        for section in ("dataset", "model", "norm", "train"):
            values = {k: v for k, v in cell.config[section].items()
                      if k not in ("dataset_overrides", "model_overrides", "tree_batches",
                                   "per_model")}
            print(f"    {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
        for section, values in cell.applied.items():
            print(f"    train={cell.config['train']['name']} sets {section}: "
                  + ", ".join(f"{k}={v}" for k, v in values.items()))
    where = f"folder {folder}" if folder.name not in ("sweeps", "runs") else "a new folder"
    print(f"{len(cells)} cells: {done} done, {len(cells) - done} to run; {where}; "
          "nothing launched (--dry-run)", file=sys.stderr)
    return 0
