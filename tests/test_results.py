"""The committed studies under ``results/`` regenerate from their own records.

A study is a sweep folder committed under ``results/`` (``gdepth sweep ... out_dir=results
name=NAME`` writes ``results/sweeps/NAME/``; ``gdepth reproduce NAME out_dir=results`` writes
``results/sweeps/reproduce_NAME/``). ``.gitignore`` keeps only its small JSON (``plan.json``,
``records/*.json``, ``search/*.json``), the outputs gdepth generates from them and a README.

Each test copies only those kept JSON files into a fresh folder (what a clone has), runs gdepth's
own report code there and asserts that the committed table files equal the regenerated text
exactly, so no committed number was edited by hand or left stale. A folder with a
``comparison.md`` is regenerated with ``gdepth reproduce NAME ... --no-run``, the arguments read
from the ``gdepth reproduce`` line of the study's README.

``python tests/test_results.py`` rewrites every study's generated files the same way (from the
kept JSON only, so a cell that was running when its sweep was stopped reads ``missing``), which is
how they are produced before a commit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
KEPT = ("plan.json", "records/*.json", "search/*.json")  # what .gitignore keeps as data
TABLES = ("md", "csv", "tex")
REPRODUCE = re.compile(r"^\s*(?:\S*/)?gdepth reproduce (\S+)(.*)$", re.MULTILINE)


def studies() -> list[Path]:
    """Every study folder under results/ (the rule the docs generator uses too)."""
    from gdepth.docs.results import studies as found

    return found(RESULTS) if RESULTS.is_dir() else []


def clean_copy(study: Path, dest: Path) -> Path:
    """The study's kept JSON files (and nothing else) copied to ``dest``."""
    for pattern in KEPT:
        for path in study.glob(pattern):
            target = dest / path.relative_to(study)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    return dest


def metrics(study: Path) -> list[str]:
    """test_acc, plus every metric a committed ``table_<metric>.md`` was made for."""
    return ["test_acc", *sorted(p.stem.removeprefix("table_")
                                for p in study.glob("table_*.md"))]


def reproduce_args(study: Path) -> list[str] | None:
    """``[NAME, args...]`` of the ``gdepth reproduce`` line in the study's README, without
    ``out_dir=`` and the run flags; None when the study has no comparison."""
    if not (study / "comparison.md").exists():
        return None
    readme = study / "README.md"
    match = REPRODUCE.search(readme.read_text()) if readme.exists() else None
    assert match, f"{study} has comparison.md but its README has no `gdepth reproduce` line"
    args = [a for a in match.group(2).split()
            if not a.startswith("out_dir=") and a not in ("--no-run", "--dry-run")]
    return [match.group(1), *args]


def regenerate(study: Path, work: Path, env: dict[str, str] | None = None,
               results: Path | None = None) -> Path:
    """Regenerate the study's outputs in ``work`` from its kept files; return the folder.

    ``env``: the environment of the ``gdepth reproduce`` subprocess (its dataset mirror);
    ``results``: the folder the study lies under (``results/``)."""
    from gdepth import report

    rel = study.relative_to(results or RESULTS)
    folder = clean_copy(study, work / rel)
    for metric in metrics(study):
        report.write_report(folder, metric)
    if tuned(study):
        from gdepth.search import report as search_report

        search_report.write(folder)  # gdepth tune-report: tuned.md, hyperparameters.csv
    args = reproduce_args(study)
    if args:
        # reproduce finds its folder as <out_dir>/sweeps/<name>: the study's own place in work
        assert rel.parts[0] == "sweeps", f"{study}: a reproduce study lives in results/sweeps/"
        name = [] if any(a.startswith("name=") for a in args) else [f"name={rel.parts[1]}"]
        subprocess.run([sys.executable, "-m", "gdepth.cli", "reproduce", *args, *name,
                        f"out_dir={work}", "--no-run"], check=True, cwd=ROOT,
                       capture_output=True, text=True, env=env)
    return folder


def tuned(study: Path) -> bool:
    """Whether the study searched its cells (``search=...``: its ``search/*.json``)."""
    return any(study.glob("search/*.json"))


def generated(study: Path) -> list[str]:
    """The committed generated text files of a study, relative to it."""
    names = [f"{'table' if m == 'test_acc' else 'table_' + m}.{fmt}"
             for m in metrics(study) for fmt in TABLES]
    names.append("results.csv")
    if tuned(study):
        names += ["tuned.md", "hyperparameters.csv"]
    if (study / "comparison.md").exists():
        names += ["comparison.md", "comparison.csv"]
    return names


def test_results_hold_a_study():
    assert studies(), "results/ holds no study (results/sweeps/<name>/ with records)"


@pytest.mark.parametrize("study", studies(), ids=lambda p: str(p.relative_to(RESULTS)))
def test_study_regenerates_exactly(study: Path, tmp_path: Path, request):
    assert (study / "README.md").exists(), f"{study} has no README.md (command, machine, time)"
    assert list(study.glob("records/*.json")), f"{study} has no records"
    # reproduce checks its datasets: it needs the mirror (a plain sweep's tables do not)
    env = request.getfixturevalue("cli_env") if reproduce_args(study) else None
    fresh = regenerate(study, tmp_path, env)
    for name in generated(study):
        committed = study / name
        assert committed.exists(), f"{committed} is not committed; regenerate it"
        assert committed.read_text() == (fresh / name).read_text(), (
            f"{committed} differs from what gdepth generates from the committed records: "
            "run `python tests/test_results.py` and commit the result")


def test_reproduce_study_regenerates_from_its_readme(tmp_path: Path, cli_env):
    """The comparison branch, on a copy of a committed sweep study given a reproduce README:
    ``seed_table_cora``'s GCN-res cells are keyed as ``nodenorm2021``'s (seeds=5) cells."""
    source = RESULTS / "sweeps" / "seed_table_cora"
    if not source.is_dir():
        pytest.skip("results/sweeps/seed_table_cora is not there")
    study = clean_copy(source, tmp_path / "results" / "sweeps" / "seed_table_cora")
    (study / "comparison.md").write_text("")
    (study / "README.md").write_text("```bash\ngdepth reproduce nodenorm2021 dataset=cora "
                                     "depth=2 seeds=5 name=seed_table_cora out_dir=results\n```\n")
    assert reproduce_args(study) == ["nodenorm2021", "dataset=cora", "depth=2", "seeds=5",
                                     "name=seed_table_cora"]
    fresh = regenerate(study, tmp_path / "work", cli_env, tmp_path / "results")
    text = (fresh / "comparison.md").read_text()
    assert "- restricted to: dataset=['cora'], depth=[2]" in text
    rows = [line for line in text.splitlines() if line.startswith("| cora")]
    assert len(rows) == 3 and all("(5)" in row and "not run" not in row for row in rows), text


def test_results_index_names_every_study():
    index = (RESULTS / "README.md").read_text()
    for study in studies():
        assert str(study.relative_to(RESULTS)) in index, f"results/README.md omits {study}"


def test_readme_links_only_committed_results():
    """README.md's "What gdepth found" links results/ files that exist; its tables are only the
    generated block (``tests/test_docs.py`` checks that it is current)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What gdepth found", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\]\((results/[^)#]+)", section)
    assert links, "the section links no results/ file"
    for link in links:
        assert (ROOT / link).exists(), f"README.md links {link}, which does not exist"
    # numbers only inside the block gdepth.docs copies from the committed tables
    typed = re.sub(r"<!-- gdepth.docs: found -->.*<!-- /gdepth.docs: found -->", "", section,
                   flags=re.S)
    assert "<!-- gdepth.docs: found -->" in section
    assert not re.search(r"\d+\.\d ± \d+\.\d", typed), "numbers typed into README.md"


def main() -> int:
    """Rewrite every study's generated files from its kept JSON (see the module docstring)."""
    import tempfile

    for study in studies():
        with tempfile.TemporaryDirectory() as tmp:
            fresh = regenerate(study, Path(tmp))
            names = [*generated(study), "accuracy_vs_depth.png"]
            names += [f"{m}_vs_depth.png" for m in metrics(study)[1:]]
            if (study / "comparison.md").exists():
                names.append("comparison.png")
            for name in names:
                if (fresh / name).exists():
                    shutil.copy2(fresh / name, study / name)
        print(f"regenerated {study.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


INSPECT = re.compile(r"^\s*gdepth inspect (.*)$", re.MULTILINE)


def inspect_commands() -> list[tuple[Path, list[str]]]:
    """``(study, args)`` of every ``gdepth inspect`` line in a committed study README."""
    found = []
    for readme in sorted(RESULTS.rglob("README.md")):
        for match in INSPECT.finditer(readme.read_text()):
            found.append((readme.parent, match.group(1).split()))
    return found


@pytest.mark.parametrize(("study", "args"), inspect_commands(),
                         ids=lambda v: v.name if isinstance(v, Path) else " ".join(v))
def test_committed_structure_tables_regenerate(study: Path, args: list[str], tmp_path: Path,
                                               cli_env):
    """A study's ``gdepth inspect`` table (synthetic graphs: no data needed) equals a rerun."""
    name = next(a.partition("=")[2] for a in args if a.startswith("name="))
    out_dir = next(a.partition("=")[2] for a in args if a.startswith("out_dir="))
    rest = [a for a in args if not a.startswith(("out_dir=", "name="))]
    subprocess.run([sys.executable, "-m", "gdepth.cli", "inspect", *rest, f"name={name}",
                    f"out_dir={tmp_path}"], check=True, cwd=ROOT, capture_output=True,
                   text=True, env=cli_env)
    committed = ROOT / out_dir / "inspect" / name / "table.md"
    assert committed.read_text() == (tmp_path / "inspect" / name / "table.md").read_text()


LOCAL_PATH = re.compile(r'"(/(?:tmp|work|home|root|Users|mnt|scratch|var|opt)/[^"]*)"')


def test_committed_records_name_no_local_path():
    """Records and plans are machine-free: no absolute path of the machine that ran them
    (a dataset cache given through GDEPTH_DATA, say) is committed."""
    leaks = {}
    kept = [p for study in studies() for pattern in KEPT for p in study.glob(pattern)]
    assert kept
    for path in sorted(kept):
        found = LOCAL_PATH.findall(path.read_text())
        if found:
            leaks[str(path.relative_to(ROOT))] = sorted(set(found))[:3]
    assert not leaks, f"local paths in committed results: {leaks}"


CHECKPOINT_BYTES = 2 ** 20  # a tree cell's state: the r = 6 GIN's weights and Adam's, ~0.2 MB


def test_committed_checkpoints_are_small_and_of_unfinished_cells():
    """The only checkpoints ``.gitignore`` lets a study commit are those a cell longer than a
    session needs to resume on another machine: the tree task's training state
    (``checkpoints/<key>/trees-<seed>.pt``) and a graph cell's finished seeds
    (``seed-<s>.done.json``, the seed's result), and a tree state's progress
    (``trees-<s>.progress.json``, beside its state, which the comparison reads). Each is under
    1 MiB, of a cell the study planned, and gone once its record is ok (the cell clears it; a
    stale one would be committed dead weight); a finished seed's file holds that seed's
    result."""
    from gdepth.cell.record import SeedOutcome
    from gdepth.sweep import collect, records

    found = [p for study in studies()
             for pattern in ("trees-*.pt", "seed-*.done.json", "trees-*.progress.json")
             for p in study.glob(f"checkpoints/*/{pattern}")]
    for path in found:
        study, key = path.parents[2], path.parent.name
        assert path.stat().st_size < CHECKPOINT_BYTES, path
        cells = {r["key"]: r for r in collect.load(study)}
        assert key in cells, f"{path}: no planned cell {key}"
        assert cells[key]["status"] not in records.DONE, f"{path}: its cell is finished"
        if path.name.endswith(".progress.json"):
            assert path.with_name(path.name.replace(".progress.json", ".pt")).is_file(), path
            bound = json.loads(path.read_text())["lower_bounds"]["train_acc"]
            assert 0 <= bound <= 1, path
        elif path.suffix == ".json":
            seed = int(path.name.split("-")[1].split(".")[0])
            assert seed < int(cells[key]["config"]["seeds"]), path
            values = SeedOutcome.from_json(seed, json.loads(path.read_text())).values
            assert values["seed"] == seed and 0 <= values["test_acc"] <= 1, path


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="not a git checkout")
def test_gitignore_admits_only_the_checkpoints_a_session_must_carry():
    """Under results/, a tree cell's state (and its progress) and a finished seed's result are
    committed; a graph batch's training state, an old per-seed state and a job's files are
    not."""
    paths = {"results/sweeps/s/checkpoints/0123456789abcdef/trees-0.pt": False,
             "results/sweeps/s/checkpoints/0123456789abcdef/seed-3.done.json": False,
             "results/sweeps/s/checkpoints/0123456789abcdef/trees-0.progress.json": False,
             "results/sweeps/s/checkpoints/0123456789abcdef/batch-0-4.pt": True,
             "results/sweeps/s/checkpoints/0123456789abcdef/seed-3.pt": True,
             "results/sweeps/s/jobs/0/log.txt": True,
             "results/sweeps/s/records/0123456789abcdef.json": False}
    for path, ignored in paths.items():
        check = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert (check.returncode == 0) == ignored, (path, ignored)


def test_compare_on_a_searched_study_sees_the_table_rows(capsys):
    """``gdepth compare`` on a per-cell search folder pairs the tuned cells (the table's rows),
    not the trials: a trial's label (with its hyperparameters) is not a row."""
    from gdepth import stats
    from gdepth.report import tables

    study = RESULTS / "sweeps" / "fair_depth_cora"
    if not (study / "search").is_dir():
        pytest.skip("results/sweeps/fair_depth_cora is not there")
    _, frame = tables.load_frame(study)
    labels = sorted(stats.curves(frame))
    assert labels == ["gcn_res·nodenorm", "gcn_res·none"]  # the tuned cells; no trial row
    assert stats.main([str(study), *labels]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("|") and "depth" not in line
            and "---" not in line]
    assert rows and all(int(line.split("|")[2]) == 10 for line in rows)  # n = 10 paired seeds
    # each row's collapse depth as the committed table gives it (its own deepest depth)
    table = {cells[0]: cells[1] for line in (study / "table.md").read_text().splitlines()[2:]
             if (cells := [c.strip() for c in line.strip("|").split("|")])}
    for label in labels:
        assert f"  {label}: {table[label]}" in out.splitlines()
    assert stats.main([str(study), "gcn_res·none seeds=3", labels[0]]) == 2  # a trial's row
