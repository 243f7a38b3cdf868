"""Blocks generated from committed results: the studies of ``results/`` and the benchmark
results of ``benchmarks/results/``."""

from __future__ import annotations

from pathlib import Path

from gdepth.docs.markdown import ROOT


def studies(results: Path = ROOT / "results") -> list[Path]:
    """Every committed study: a folder under results/ with a plan.json or records/ (the one
    rule; ``tests/test_results.py`` uses it too)."""
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


IN_SHORT = "## In short"


def in_short(readme: Path) -> str | None:
    """The paragraph under a study README's ``## In short`` heading (its two-sentence
    summary), or None when it has none."""
    text = readme.read_text() if readme.exists() else ""
    if IN_SHORT not in text:
        return None
    return text.split(IN_SHORT, 1)[1].split("\n## ", 1)[0].strip()


def found_block(results: Path = ROOT / "results") -> str:
    """README's "What gdepth found": for each study with an ``## In short`` summary, its
    title (linked), the summary and its generated table, copied as it is: a reproduction's
    comparison with the paper (:func:`published_table`; the published metric, which may not be
    the table's: the tree task's is train accuracy) where it has one, else ``table.md``."""
    out = []
    for study in studies(results):
        readme = study / "README.md"
        summary = in_short(readme)
        table = published_table(study / "comparison.md")
        if table is None and (study / "table.md").exists():
            table = (study / "table.md").read_text().strip()
        if summary is None or table is None:
            continue
        rel = study.relative_to(ROOT).as_posix()
        title = readme.read_text().splitlines()[0].lstrip("# ").split(" — ", 1)[-1]
        out += [f"**[{title}]({rel}/README.md).** {summary}", "", table, ""]
    return "\n".join(out) or "No study with a summary is committed under `results/` yet."


def published_table(comparison: Path) -> str | None:
    """The Markdown table of a ``comparison.md`` (``gdepth reproduce``'s, without its header)
    when some row has a published number; None when there is no comparison or no published
    column to compare with (a controlled comparison such as ``transfer_range``)."""
    if not comparison.exists():
        return None
    rows = [line for line in comparison.read_text().splitlines() if line.startswith("|")]
    if len(rows) < 3:
        return None
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    if "published" not in header:
        return None
    col = header.index("published")
    values = [[c.strip() for c in row.strip("|").split("|")][col] for row in rows[2:]]
    return "\n".join(rows) if any(v not in ("", "–", "nan") for v in values) else None


def speed_block(folder: Path = ROOT / "benchmarks" / "results") -> str:
    """Each committed benchmark result: the Markdown ``benchmarks/render.py`` made from its
    JSON (``tests/test_benchmarks.py`` checks the pair), included with pymdownx.snippets."""
    files = sorted(p for p in folder.glob("*.json") if p.with_suffix(".md").exists()) \
        if folder.is_dir() else []
    if not files:
        return ("No benchmark result is committed yet. The commands under *Running the "
                "benchmarks* above write them into `benchmarks/results/`; commit those JSON "
                "files with `python benchmarks/render.py --write`'s Markdown and run "
                "`python -m gdepth.docs`, and their tables appear here.")
    rel = folder.relative_to(ROOT).as_posix() if folder.is_relative_to(ROOT) else folder
    return "\n".join(f'--8<-- "{rel}/{path.with_suffix(".md").name}"\n' for path in files)
