"""Write or check every generated page and block (``python -m gdepth.docs [--check]``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gdepth.docs import configs, results, schema
from gdepth.docs.markdown import DOCS, ROOT


def fill(text: str, name: str, block: str) -> str:
    """``text`` with the content between the NAME markers replaced by ``block``."""
    start, end = f"<!-- gdepth.docs: {name} -->", f"<!-- /gdepth.docs: {name} -->"
    if start not in text or end not in text:
        raise ValueError(f"the page has no `{start}` … `{end}` block")
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{block.strip()}\n{end}{rest.split(end, 1)[1]}"


def pages(docs: Path | None = None) -> dict[Path, str]:
    """Every generated file of ``docs`` (default: the checkout's) → the text it must have now."""
    docs = docs or DOCS
    out = {docs / "configuration" / "reference.md": schema.reference(),
           docs / "configuration" / "groups.md": configs.groups()}
    blocks = [("configuration/presets.md", "presets", configs.presets_block()),
              ("guide/depth.md", "conventions", configs.conventions_block()),
              ("reproduce.md", "experiments", configs.experiments_block()),
              ("results.md", "results", results.results_block()),
              ("speed.md", "speed", results.speed_block())]
    for page, name, block in blocks:
        out[docs / page] = fill((docs / page).read_text(), name, block)
    readme = docs.parent / "README.md"
    out[readme] = fill(readme.read_text(), "found", results.found_block())
    return out


def stale(docs: Path | None = None) -> dict[Path, str]:
    """The generated files whose committed text differs from what they must be now."""
    return {path: text for path, text in pages(docs).items()
            if not path.exists() or path.read_text() != text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gdepth.docs",
                                     description="write the generated parts of docs/")
    parser.add_argument("--check", action="store_true", help="name stale files, write nothing")
    args = parser.parse_args(argv)
    old = stale()
    names = ", ".join(p.relative_to(ROOT).as_posix() for p in old)
    if args.check:
        print(f"stale (run python -m gdepth.docs): {names}" if old else "docs are up to date")
        return 1 if old else 0
    for path, text in old.items():
        path.write_text(text)
    print(f"rewritten: {names}" if old else "docs are up to date")
    return 0
