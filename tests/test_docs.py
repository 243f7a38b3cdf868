"""The documentation: generated parts current, the README's promises kept, the site builds.

``gdepth.docs`` writes the pages and blocks of ``docs/`` that come from the code, the configs,
committed studies and benchmark results; these tests fail when a committed one is stale (run
``python -m gdepth.docs``), and check the generator against the schemas it reads.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gdepth import config
from gdepth.docs import build, results, schema
from gdepth.docs.markdown import value

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_generated_docs_are_current():
    stale = build.stale()
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    assert not stale, f"stale generated docs: {names}; run `python -m gdepth.docs` and commit"


def test_check_mode_names_a_stale_page_and_writes_nothing(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    for page in build.pages():
        target = tmp_path / page.relative_to(build.ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page.read_text())
    speed = (docs / "speed.md").read_text()
    start = speed.index("<!-- gdepth.docs: speed -->") + len("<!-- gdepth.docs: speed -->")
    (docs / "speed.md").write_text(speed[:start] + "\n| a typed | table |" + speed[start:])
    monkeypatch.setattr(build, "DOCS", docs)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    before = (docs / "speed.md").read_text()
    assert build.main(["--check"]) == 1
    assert (docs / "speed.md").read_text() == before
    assert build.main([]) == 0 and build.main(["--check"]) == 0


def test_fill_replaces_only_the_marked_block():
    page = "intro\n<!-- gdepth.docs: x -->\nold\n<!-- /gdepth.docs: x -->\noutro\n"
    assert build.fill(page, "x", "new\n") == (
        "intro\n<!-- gdepth.docs: x -->\nnew\n<!-- /gdepth.docs: x -->\noutro\n")
    with pytest.raises(ValueError, match="gdepth.docs: y"):
        build.fill(page, "y", "new")


def test_class_items_follow_the_comment_conventions():
    source = '''
class C:
    a: int = 1  # on the line
    b: int = 2  # opens a parenthesis (that
    # closes here)
    c: int = 3  # has its own
    # lower-case continuation of c
    # Section Title
    d: int = 4  # d's own
    # above e, which has none on its line
    e: dict = 5
    f: dict = 6
'''
    items = {i.name: i for i in schema.class_items(source)["C"]}
    assert items["a"].doc == "on the line"
    assert items["b"].doc == "opens a parenthesis (that closes here)"
    assert items["c"].doc == "has its own lower-case continuation of c"
    assert (items["d"].doc, items["d"].note) == ("d's own", "Section Title")
    assert items["e"].doc == "above e, which has none on its line"
    assert items["f"].doc == "as `e`"


def _reference_rows() -> dict[str, list[tuple[str, str, str]]]:
    """section title → (key, type, default) of each row of the committed reference page."""
    rows: dict[str, list[tuple[str, str, str]]] = {}
    section = ""
    text = (build.DOCS / "configuration" / "reference.md").read_text()
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.lstrip("# ")
        match = re.match(r"^\| `([\w.]+)` \| (.+?) \| `(.*?)` \| ", line)
        if match:
            rows.setdefault(section, []).append(match.groups())
    return rows


def test_reference_lists_every_schema_key_with_its_default():
    rows = _reference_rows()
    top = {key: default for key, _, default in rows["Top level"]}
    for f in dataclasses.fields(config.GdepthConfig):
        assert f.name in top, f"reference omits top-level key {f.name}"
        if f.default is not dataclasses.MISSING:
            assert top[f.name] == value(f.default), f.name
    assert {k for k, _, _ in rows["data"]} == {"data.root", "data.mirror"}
    for group, entries in schema._schemas().items():
        for name, cls in entries:
            listed = {key: default for key, _, default in rows[f"{group}: `{name}`"]}
            own = set(vars(cls).get("__annotations__", {}))
            assert own <= set(listed), f"{group}/{name}: missing {own - set(listed)}"
            for f in dataclasses.fields(cls):
                if f.name in listed and f.default is not dataclasses.MISSING:
                    assert listed[f.name] == value(f.default), (group, name, f.name)


def test_reference_types_name_every_enum_choice():
    rows = {key: kind for key, kind, _ in _reference_rows()["Top level"]}
    assert rows["engine"] == " \\| ".join(f"`{m.value}`" for m in config.Engine)
    assert rows["threads"] == "`int` \\| `None`"


def test_speed_block_includes_each_rendered_benchmark(tmp_path):
    folder = tmp_path / "benchmarks" / "results"
    assert "python -m gdepth.docs" in results.speed_block(folder)  # none yet: says how
    folder.mkdir(parents=True)
    for name in ("b", "a"):
        (folder / f"{name}.json").write_text("{}")
        (folder / f"{name}.md").write_text(f"## {name}\n")
    (folder / "c.json").write_text("{}")  # no Markdown rendered for it: not included
    block = results.speed_block(folder)
    assert block.splitlines()[::2] == [f'--8<-- "{folder}/a.md"', f'--8<-- "{folder}/b.md"']
    committed = results.speed_block()
    for md in sorted((ROOT / "benchmarks" / "results").glob("*.md")):
        assert f'"benchmarks/results/{md.name}"' in committed


def _quickstart_block() -> list[str]:
    text = README.read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def test_readme_quickstart_table_is_the_committed_study():
    table = (ROOT / "results" / "sweeps" / "quickstart" / "table.md").read_text().splitlines()
    assert shown_table(_quickstart_block()) == table, (
        "README's quickstart table differs from results/sweeps/quickstart/table.md")


def _setup_commands() -> list[str]:
    section = README.read_text().split("## Set up", 1)[1]
    return section.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()


def test_readme_quickstart_output_comes_from_its_command():
    command = _setup_commands()[0].split(".venv/bin/gdepth sweep ", 1)[1].split()
    lines = _quickstart_block()
    job = next(line for line in lines if "#0 : " in line).split("#0 : ", 1)[1].split()
    assert [a.split("=")[0] for a in job] == [a.split("=")[0] for a in command]
    assert {a for a in command if "," not in a and ".." not in a} <= set(job)
    name = next(a for a in command if a.startswith("name=")).removeprefix("name=")
    assert lines[-len(shown_table(lines)) - 2].startswith("6 cells (6 ok")
    assert f"report in outputs/sweeps/{name}/" in lines[-len(shown_table(lines)) - 2]


def shown_table(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("|")]


def test_readme_setup_is_what_ci_runs():
    """README's two set-up commands: .ci/run installs the same way and runs the same tests."""
    first, second = _setup_commands()
    install = first.split(" && ")[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_install = next(line for line in ci if line.startswith(".venv/bin/pip install"))
    assert [a for a in shlex.split(ci_install) if a != "--quiet"] == shlex.split(install)
    assert second in ci


def test_readme_is_a_short_guide_with_working_links():
    """The guide stays short; the generated "What gdepth found" block (one table per study, as
    the results issue asks, and growing with the studies) is not counted."""
    text = README.read_text()
    guide = re.sub(r"<!-- gdepth.docs: found -->.*<!-- /gdepth.docs: found -->", "", text,
                   flags=re.S)
    assert guide != text, "README.md has no generated found block"
    lines = guide.splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text()):
        assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None and not os.environ.get("CI"),
                    reason="mkdocs not installed (pip install -e '.[docs]'); CI has it")
def test_site_builds_strictly(tmp_path):
    """The real MkDocs build, as CI runs it: any warning (a broken link or anchor, a page
    missing from the nav, a snippet that is not there) fails."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "reference" / "index.html").exists()


def test_found_block_copies_each_summarized_study_and_its_table(tmp_path, monkeypatch):
    from gdepth.docs import markdown

    monkeypatch.setattr(results, "ROOT", tmp_path)
    monkeypatch.setattr(markdown, "ROOT", tmp_path)
    for name, short in (("a", "Two sentences. Here."), ("b", None)):
        study = tmp_path / "results" / "sweeps" / name
        (study / "records").mkdir(parents=True)
        (study / "table.md").write_text(f"| {name} | 1.0 ± 0.1 (3) |\n")
        text = f"# {name} — Title {name}\n\nIntro.\n"
        (study / "README.md").write_text(text + (f"\n## In short\n\n{short}\n\n## Command\n"
                                                 if short else ""))
    block = results.found_block(tmp_path / "results")
    assert block.splitlines() == ["**[Title a](results/sweeps/a/README.md).** Two sentences. "
                                  "Here.", "", "| a | 1.0 ± 0.1 (3) |"]
    # a reproduction shows its comparison with the paper (the paper's metric) instead, when a
    # published number is there to compare with; a comparison without one keeps table.md
    table = ["| model | published | ours mean ± std (n) | verdict |", "|:--|:--|:--|:--|",
             "| gcn | 70.0 | 71.0 ± 1.0 (3) | match |", "| gin | – | – | not run |"]
    study = tmp_path / "results" / "sweeps" / "a"
    (study / "comparison.md").write_text("# a\n\n- paper: P\n\n" + "\n".join(table) + "\n")
    assert results.found_block(tmp_path / "results").splitlines()[2:] == table
    (study / "comparison.md").write_text("# a\n\n" + "\n".join(
        row.replace("70.0", "–") for row in table) + "\n")
    assert results.found_block(tmp_path / "results").splitlines()[2:] == ["| a | 1.0 ± 0.1 (3) |"]
