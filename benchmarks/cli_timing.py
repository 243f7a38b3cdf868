"""The same sweep as ``sweep_speed.py``'s library calls, run end to end by ``gdepth sweep``.

One real ``gdepth sweep`` subprocess (this tree's code first on ``PYTHONPATH``) with the
benchmark's model, dataset, depths, seeds, epochs, threads, device and ``engine=batched``,
everything else at the CLI's defaults, as a user types it (progress bar off; a checkpoint every
50 epochs and a record per cell, as by default). Its wall time against the library calls' gives
the CLI's overhead; the records' own ``wall_s`` (each cell's time inside the process) splits it
into the cells' time and the rest (interpreter and imports, Hydra's composition, planning,
collecting the table).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def gdepth_executable() -> list[str]:
    """The ``gdepth`` console script beside this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).with_name("gdepth")
    found = str(beside) if beside.exists() else shutil.which("gdepth")
    if found is None:
        raise SystemExit("gdepth's console script not found (pip install -e .)")
    return [found]


def overrides(model: str, dataset: str, depths: list[int], seeds: int, epochs: int,
              device: str, threads: int, adjacency: str, dropedge: float,
              shared: bool = False) -> list[str]:
    """The ``gdepth sweep`` overrides of the benchmark's workload."""
    args = [f"model={model}", f"dataset={dataset}", f"depth={','.join(map(str, depths))}",
            f"seeds={seeds}", f"train.epochs={epochs}", "engine=batched", f"device={device}",
            f"threads={threads}", f"adjacency={adjacency}", "progress=false", "name=speed"]
    if dropedge:
        args.append(f"train.dropedge={dropedge}")
        if shared:
            args.append("train.shared_graph_dropout=true")
    return args


def run_cli(args: list[str], env_extra: dict[str, str]) -> dict[str, Any]:
    """Run ``gdepth sweep <args>`` in a fresh folder; its wall time and records."""
    with tempfile.TemporaryDirectory(prefix="gdepth-speed-") as tmp:
        env = dict(os.environ, GDEPTH_OFFLINE="1", **env_extra)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
        cmd = [*gdepth_executable(), "sweep", *args, f"out_dir={tmp}/outputs"]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise SystemExit(f"gdepth sweep failed (exit {done.returncode}):\n{tail}")
        found = [json.loads(p.read_text())
                 for p in Path(tmp, "outputs/sweeps/speed/records").glob("*.json")]
    cells = {int(r["config"]["depth"]): r for r in found}
    return {"command": "gdepth sweep " + " ".join(args), "wall_s": wall,
            "cells_wall_s": sum(r["wall_s"] for r in found),
            "cells": {str(d): {"wall_s": r["wall_s"], "status": r["status"],
                               "engine": r.get("engine"),
                               "test_acc": [s["test_acc"] for s in r["seeds"]]}
                      for d, r in sorted(cells.items())}}


def compare(cli: dict[str, Any], library_s: float) -> dict[str, Any]:
    """The CLI's timing beside the library calls': overhead in seconds and as a share of the
    CLI's wall time; the part outside the cells (process start, Hydra, plan, table)."""
    overhead = cli["wall_s"] - library_s
    return {**cli, "library_wall_s": library_s, "overhead_s": overhead,
            "overhead_share": overhead / cli["wall_s"],
            "outside_cells_s": cli["wall_s"] - cli["cells_wall_s"]}
