"""The sweep plan: ``<sweep dir>/plan.json`` lists every cell a sweep into that folder asked for.

The sweeper writes it before it launches anything, so the folder alone tells which cells are
planned, and ``gdepth status`` / ``gdepth table`` can name the ones still running or missing
after the launching process is gone. A second sweep into the same folder merges its cells in
(under an exclusive lock, then an atomic rename), so two sweeps never lose each other's plan.

Each launch (one ``gdepth sweep`` process) adds an entry to ``sweeps``: its id, the job units it
launches with the modification time (ns) their record had then (``gdepth.sweep.progress`` counts
those written since), and the job folders it reserved, ``jobs/<lo>`` … ``jobs/<hi - 1>``
(:func:`reserve_jobs`: numbered after every folder and reservation already there, under the
lock, so two sweeps started together never share a job folder).

``plan.json``::

    {"version": 1,
     "cells": {"<key>": {"label": "csbm gcn·none L=4", "overrides": ["model=gcn", "depth=4"],
                         "config": {<the cell's identity config>},
                         "parts": [[0, 2], [2, 4]]}, ...},   # only if split (seeds_per_job)
     "sweeps": [{"started_at": "...", "host": "...", "command": "...", "cells": 12,
                 "launch": "<id>", "units": {"<key>": null, ...}, "jobs": [[0, 12]]}, ...]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gdepth.sweep import layout, records

PLAN = layout.PLAN
log = logging.getLogger("gdepth")


def cell_identity(cfg: DictConfig, overrides: list[str] | None = None
                  ) -> tuple[str, dict[str, Any]]:
    """The record key and identity config of a composed job config (its ``hydra`` node ignored).

    ``cell.run_cell`` keys its record with it too (resolve, merge the train preset's
    protocol, hash the identity). ``overrides``: the job's command-line overrides, whose
    ``model.x`` / ``dataset.x`` values win over the preset's (:func:`protocol.apply`). The
    keys that are not part of the identity (``threads``, ``name``, …) are dropped before
    resolving, so an interpolation that needs the running job (the pool's ``threads``) is
    never evaluated here.
    """
    raw = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    assert isinstance(raw, dict)
    raw.pop("hydra", None)
    for key in records.NOT_IDENTITY:
        raw.pop(key, None)
    ident = OmegaConf.to_container(OmegaConf.create(raw), resolve=True, enum_to_str=True)
    assert isinstance(ident, dict)
    try:  # run_cell hashes the config after the train preset's protocol is merged in
        from gdepth import protocol

        ident, _ = protocol.apply(ident, protocol.explicit_keys(overrides or []))
    except (ImportError, ValueError, KeyError, TypeError):
        pass  # a bad preset fails the cell itself, with the reason
    return records.cell_key(ident), records.identity(ident)


def label(config: dict[str, Any]) -> str:
    """``csbm gcn_res·nodenorm L=8``: a cell's label (``cell.describe``), without torch."""
    try:
        return (f"{config['dataset']['name']} {config['model']['name']}·"
                f"{config['norm']['name']} L={config['depth']}")
    except (KeyError, TypeError):
        return "?"


def read(sweep_dir: str | Path) -> dict[str, Any]:
    """The plan of ``sweep_dir`` (an empty one if there is none or it cannot be read)."""
    path = Path(sweep_dir) / PLAN
    try:
        plan = json.loads(path.read_text())
        if isinstance(plan, dict) and isinstance(plan.get("cells"), dict):
            plan.setdefault("sweeps", [])
            return plan
        log.warning("ignoring %s: not a gdepth plan", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable plan %s: %s", path, err)
    return {"version": 1, "cells": {}, "sweeps": []}


@contextlib.contextmanager
def locked(folder: Path, name: str = layout.PLAN_LOCK) -> Iterator[None]:
    """An exclusive lock on ``folder/name`` (``fcntl.flock``) while the block runs."""
    with open(folder / name, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def add(sweep_dir: str | Path, cells: dict[str, dict[str, Any]],
        launch: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``cells`` (key → label, overrides, config) into the folder's plan; return it.

    ``launch`` (``launch``: its id, ``units``) goes into this sweep's entry of ``sweeps``.
    """
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with locked(sweep_dir):
        plan = read(sweep_dir)
        plan["cells"].update(cells)
        plan["sweeps"].append({
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "host": platform.node(), "pid": os.getpid(),
            "command": " ".join(sys.argv), "cells": len(cells), **(launch or {})})
        records.write(sweep_dir / PLAN, plan)
    return plan


def extend(sweep_dir: str | Path, cells: dict[str, dict[str, Any]], launch: str,
           units: dict[str, Any]) -> None:
    """Merge ``cells`` planned during the launch ``launch`` (a search's trials) into the plan,
    and their ``units`` into that launch's entry (progress counts them)."""
    with locked(Path(sweep_dir)):
        plan = read(sweep_dir)
        plan["cells"].update(cells)
        entry = launch_entry(plan, launch)
        if entry is not None:
            entry.setdefault("units", {}).update(units)
        records.write(Path(sweep_dir) / PLAN, plan)


def launch_entry(plan: dict[str, Any], launch: str) -> dict[str, Any] | None:
    """The ``sweeps`` entry of the launch ``launch`` (None if the plan has none)."""
    return next((s for s in reversed(plan["sweeps"]) if s.get("launch") == launch), None)


def reserve_jobs(sweep_dir: str | Path, count: int, launch: str) -> int:
    """Reserve ``count`` job folders for the launch ``launch``; return the first number.

    Numbered after every ``jobs/<n>`` folder and every reservation in the plan, under the
    plan's lock: a resumed sweep never reuses an earlier job's folder, and two sweeps started
    together never share one.
    """
    sweep_dir = Path(sweep_dir)
    with locked(sweep_dir):
        plan = read(sweep_dir)
        taken = [int(p.name) for p in (sweep_dir / layout.JOBS).glob("*") if p.name.isdigit()]
        taken += [int(hi) - 1 for s in plan["sweeps"] for _, hi in s.get("jobs") or []]
        first = max(taken, default=-1) + 1
        entry = launch_entry(plan, launch)
        if entry is None:  # not planned through ``add`` (e.g. a test): an entry of its own
            entry = {"launch": launch}
            plan["sweeps"].append(entry)
        entry.setdefault("jobs", []).append([first, first + count])
        records.write(sweep_dir / PLAN, plan)
    return first


def planned(directory: str | Path) -> dict[Path, dict[str, Any]]:
    """Every plan below ``directory`` (its sweep folder → plan)."""
    return {p.parent: read(p.parent) for p in sorted(Path(directory).rglob(PLAN))}
