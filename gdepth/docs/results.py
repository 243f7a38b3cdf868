"""Blocks generated from committed results: the studies of ``results/`` and the benchmark
JSON files of ``benchmarks/results/``."""

from __future__ import annotations

import json
from pathlib import Path

from gdepth.docs.markdown import ROOT, cell, table, value


def studies(results: Path = ROOT / "results") -> list[Path]:
    """Every committed study: a folder under results/ with a plan.json or records/ (as
    ``tests/test_results.py`` finds them)."""
    found = {p.parent for p in results.rglob("plan.json")}
    found |= {p.parent for p in results.rglob("records") if p.is_dir()}
    return sorted(f for f in found if not {"jobs", "checkpoints", "running"} & set(f.parts))


def results_block(results: Path = ROOT / "results") -> str:
    """Each study: its README's title and link, its table.md (and comparison.md) included
    with pymdownx.snippets, its plots (``docs/studies`` links to ``results/``)."""
    out = []
    for study in studies(results):
        rel = study.relative_to(results).as_posix()
        readme = study / "README.md"
        title = readme.read_text().splitlines()[0].lstrip("# ") if readme.exists() else rel
        out += [f"## {title}", "", f"[The study: command, machine, state](studies/{rel}/README.md)"
                f" · folder `results/{rel}/`", ""]
        out += [f'--8<-- "results/{rel}/{name}"\n' for name in ("table.md", "comparison.md")
                if (study / name).exists()]
        out += [f"![{png.stem.replace('_', ' ')}](studies/{rel}/{png.name})\n"
                for png in sorted(study.glob("*.png"))]
    return "\n".join(out) or "No study is committed under `results/` yet."


def _fmt(obj: object) -> str:
    if isinstance(obj, float):
        return f"{obj:.4g}"
    if isinstance(obj, dict | list):
        return json.dumps(obj, separators=(",", ":"))
    return value(obj)


def _flat(obj: dict, prefix: str = "") -> dict[str, object]:
    """Nested objects of plain values flattened to ``a.b`` keys."""
    out: dict[str, object] = {}
    for key, item in obj.items():
        if isinstance(item, dict) and item and not any(isinstance(v, dict | list)
                                                       for v in item.values()):
            out.update(_flat(item, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = item
    return out


def _records(obj: object) -> bool:
    return isinstance(obj, list) and bool(obj) and all(isinstance(x, dict) for x in obj)


def _rows_table(rows: list[dict]) -> list[str]:
    flat = [_flat(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    return table([f"`{c}`" for c in columns],
                 [[cell(_fmt(r.get(c, ""))) for c in columns] for r in flat])


def render_benchmark(data: object) -> list[str]:
    """One benchmark JSON as Markdown, whatever the benchmark wrote: an object's plain fields
    as a list and each of its lists of objects as a table (nested objects flattened to ``a.b``
    columns); a list of flat objects as one table; a list of objects with lists, each in turn."""
    if _records(data):
        if not any(_records(v) for d in data for v in d.values()):
            return _rows_table(data)
        return [line for d in data for line in [*render_benchmark(d), ""]][:-1]
    if not isinstance(data, dict):
        return [f"`{_fmt(data)}`"]
    out = [f"- `{k}`: {cell(_fmt(v))}" for k, v in _flat(data).items() if not _records(v)]
    for key, item in data.items():
        if _records(item):
            out += ["", f"`{key}`:", "", *_rows_table(item)]
    return out


def speed_block(folder: Path = ROOT / "benchmarks" / "results") -> str:
    """Each committed benchmark result, rendered by :func:`render_benchmark`."""
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return ("No benchmark result is committed yet. The commands under *Running the "
                "benchmarks* above write them into `benchmarks/results/`; commit those JSON "
                "files and run `python -m gdepth.docs`, and their tables appear here.")
    out = []
    for path in files:
        out += [f"### `{path.relative_to(folder.parent.parent).as_posix()}`", "",
                *render_benchmark(json.loads(path.read_text())), ""]
    return "\n".join(out)
