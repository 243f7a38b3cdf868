"""``gdepth reproduce --list``: every experiment, its cell count and estimated CPU time.

Planning an experiment composes each combination of its comma lists with Hydra and types every
cell (225 composes and 578 typed configs for the packaged experiments: 30-70 s on a 2-core
machine). The listing depends only on the packaged ``configs/`` tree and gdepth's own code, so
it is kept in the data cache folder (``$GDEPTH_DATA``, else the user cache folder), keyed by a
hash of their contents: a second ``--list`` prints at once, and any change to a config or to the
code (an estimate's constants included) makes it plan again. Hydra has no cache of composed
configs to reuse, hence this one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from gdepth import __version__
from gdepth.data.folders import resolve_root
from gdepth.paths import config_dir
from gdepth.reproduce import cells as cells_mod
from gdepth.reproduce import experiment

CACHE_NAME = "reproduce_list.json"
FOOTER = ("(est. CPU: threads=1 on a shared 2-core machine, every epoch run, seed-batched where "
          "the engine can; tree_match: patience + 1 rounds, a floor, --dry-run gives each cell's "
          "ceiling; rough)")


def source_files() -> list[Path]:
    """The files a listing depends on: the packaged configs and gdepth's Python modules."""
    package = Path(__file__).resolve().parents[1]
    configs = sorted(p for p in Path(config_dir()).rglob("*") if p.is_file())
    return configs + sorted(package.rglob("*.py"))


def content_key(files: list[Path]) -> str:
    """sha256 over ``files``' names and bytes and gdepth's version."""
    digest = hashlib.sha256(__version__.encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _rows() -> Iterator[list]:
    for name in experiment.names():
        exp = experiment.load(name)
        planned = cells_mod.plan(exp)
        seconds = sum(cells_mod.estimate_seconds(c) for c in planned)
        yield [name, len(planned), seconds, exp.title]


def _line(row: list) -> str:
    name, count, seconds, title = row
    return f"{name:<22} {count:>5} {cells_mod.rough_duration(seconds):>9}  {title}"


def print_list() -> int:
    """Print the listing: from the cache when the configs and code are unchanged, else by
    planning every experiment (printing each row as it is ready) and caching the result."""
    print(f"{'name':<22} {'cells':>5} {'est. CPU':>9}  paper")
    key = content_key(source_files())
    cache = resolve_root(None) / CACHE_NAME
    try:
        stored = json.loads(cache.read_text())
        rows = stored["rows"] if stored.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError):
        rows = None
    if rows is None:
        rows = []
        for row in _rows():
            rows.append(row)
            print(_line(row), flush=True)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(f"{CACHE_NAME}.{os.getpid()}.tmp")
            partial.write_text(json.dumps({"key": key, "rows": rows}))
            partial.replace(cache)
        except OSError:
            pass  # a read-only cache folder: the listing is still printed, only not kept
    else:
        for row in rows:
            print(_line(row))
    print(FOOTER)
    return 0
