"""What a benchmark's JSON says about where and how it ran, and where it is written.

Every benchmark in this folder writes ``{"benchmark": <name>, "meta": meta(...), "results":
...}`` to ``benchmarks/results/<name>[_<variant>].json`` (or ``--json PATH``);
``benchmarks/render.py`` turns those files into the Markdown tables of the docs. The meta block
holds what a reader needs to weigh a timing: the CPU model and cores (and how many this process
may use), the torch threads, the device, the load average when the run started (another
process on the machine slows both sides of a comparison, not only one), the library versions
and the git commit of the code measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, logical cores, the cores this process may use, memory, load average."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "memory_gib": memory, "load_average_at_start": load,
            "platform": platform.platform(), "python": platform.python_version()}


def versions() -> dict[str, str]:
    """torch, PyG and gdepth versions (gdepth's from the package imported, this tree's)."""
    import torch
    import torch_geometric

    import gdepth

    return {"torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "gdepth": gdepth.__version__}


def git() -> dict[str, Any]:
    """The commit measured and whether tracked files differed from it."""
    def out(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True,
                                  text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = out("status", "--porcelain", "--untracked-files=no")
    return {"commit": out("rev-parse", "HEAD"), "dirty": bool(status) if status is not None
            else None}


def device_info(device: Any) -> dict[str, Any]:
    """The device's name, and the GPU's model and memory on CUDA."""
    import torch

    found: dict[str, Any] = {"name": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(torch.device(device))
        found.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                     cuda=torch.version.cuda)
    return found


def add_io_args(parser: Any, default_json: str, mirror: bool = True) -> None:
    """The options every benchmark shares: ``--mirror`` (the raw datasets; left out with
    ``mirror=False`` for a benchmark on generated data), ``--note`` (free text for the JSON)
    and ``--json`` (the results file; ``default_json`` names its default)."""
    if mirror:
        parser.add_argument("--mirror", default=os.environ.get(
            "GDEPTH_DATA_MIRROR", str(ROOT.parent / "shared" / "datasets")))
    parser.add_argument("--note", help="free text for the JSON (e.g. what else loads the CPU)")
    parser.add_argument("--json", help=f"results file (default: benchmarks/results/{default_json})")


def parser(doc: str | None, default_json: str, threads: int | None = 1, mirror: bool = True
           ) -> argparse.ArgumentParser:
    """A benchmark's command line: described by the first paragraph of its docstring ``doc``,
    with ``--threads`` (torch CPU threads; default ``threads``, ``None`` = torch's own) and the
    shared ``--mirror``/``--note``/``--json`` (``default_json`` names the results file;
    ``mirror=False``: no ``--mirror``, the benchmark's data are generated)."""
    description = (doc or "").strip().split("\n\n")[0].replace("\n", " ")
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--threads", type=int, default=threads, help="torch CPU threads")
    add_io_args(found, default_json, mirror)
    return found


def start(args: argparse.Namespace, device: Any = "cpu") -> tuple[Any, dict[str, Any]]:
    """Set torch's CPU threads from ``args.threads`` (unset: torch's default stays) and return
    the device and the meta block, which records the threads torch then uses."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(device)
    return device, meta(device, torch.get_num_threads(), args.note)


def meta(device: Any, threads: int, note: str | None = None) -> dict[str, Any]:
    """The meta block of a benchmark's JSON."""
    return {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command(), "machine": machine(),
            "threads": threads, "device": device_info(device), "versions": versions(),
            "git": git(), "note": note}


def command() -> str:
    """The command line, the script's path relative to the repository (no local paths)."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else Path(script.name)
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def finish(info: dict[str, Any]) -> dict[str, Any]:
    """Add the load average at the end of the run to ``info`` (the machine's contention)."""
    if hasattr(os, "getloadavg"):
        info["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return info


def default_path(name: str) -> Path:
    """``benchmarks/results/<name>.json``."""
    return RESULTS / f"{name}.json"


def write(path: str | Path, benchmark: str, info: dict[str, Any], results: Any,
          quiet: bool = False) -> Path:
    """Write ``{"benchmark", "meta", "results"}`` to ``path`` (folders made); the path."""
    path = Path(path)
    finish(info)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": benchmark, "meta": info, "results": results},
                               indent=1) + "\n")
    if not quiet:
        print(f"results written to {path}", flush=True)
    return path
