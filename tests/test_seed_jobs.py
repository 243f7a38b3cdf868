"""Cells split into seed jobs (``seeds_per_job``): part records, merge, resume, status, table."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gdepth.sweep import collect, parts, plan, records

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
CELLS = ["model=gcn,gcn_res", "depth=2", "seeds=4", "engine=loop", "train.epochs=5",
         "dataset.num_nodes=300", "progress=false"]
SPLIT = [*CELLS, "seeds_per_job=2"]


def gdepth(args, env, cwd, timeout=300):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def env_for(folder: Path) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1",
                GDEPTH_DATA=str(folder / "data"))


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """One split sweep (2 cells × 2 seed jobs) and the same sweep unsplit, side by side."""
    root = tmp_path_factory.mktemp("seed-jobs")
    for args in (["sweep", *SPLIT, "name=split"], ["sweep", *CELLS, "name=whole"]):
        out = gdepth(args, env_for(root), root)
        assert out.returncode == 0, out.stderr[-3000:]
    return root


def copy_of(swept: Path, tmp_path: Path) -> Path:
    """A private copy of the split sweep (``out_dir=<tmp_path>/outputs``, ``name=split``)."""
    shutil.copytree(swept / "outputs/sweeps/split", tmp_path / "outputs/sweeps/split")
    return tmp_path / "outputs/sweeps/split"


def per_seed(folder: Path) -> dict[tuple[str, int], float]:
    return {(r["config"]["model"]["name"], s["seed"]): s["test_acc"]
            for r in collect.load(folder) for s in r["seeds"]}


def test_split_cells_write_part_records_and_equal_the_unsplit_sweep(swept, tmp_path):
    folder = swept / "outputs/sweeps/split"
    names = sorted(p.name for p in (folder / "records").glob("*.json"))
    keys = sorted({n.split(".")[0] for n in names})
    assert names == sorted(f"{k}.seeds-{lo}-{hi}.json" for k in keys for lo, hi in
                           ((0, 2), (2, 4)))
    part = json.loads((folder / "records" / names[1]).read_text())
    assert part["seed_range"] == [2, 4] and [s["seed"] for s in part["seeds"]] == [2, 3]
    assert [c["parts"] for c in plan.read(folder)["cells"].values()] == [[[0, 2], [2, 4]]] * 2

    found = collect.load(folder)
    assert sorted(r["key"] for r in found) == keys
    assert all(r["status"] == "ok" and not r["partial"] for r in found)
    assert all([s["seed"] for s in r["seeds"]] == [0, 1, 2, 3] for r in found)
    assert all(r["summary"]["test_acc"]["n"] == 4 for r in found)
    # engine=loop: the parts train exactly the seeds (and splits) the whole cell trains
    assert per_seed(folder) == per_seed(swept / "outputs/sweeps/whole")
    assert len(per_seed(folder)) == 8
    table = (folder / "table.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| gcn")]
    assert len(rows) == 2 and all(re.search(r"\(4\)\*?\*? \|$", r) for r in rows), table
    assert sorted(pd.read_csv(folder / "results.csv")["seed"]) == [0, 0, 1, 1, 2, 2, 3, 3]

    # the same sweep without seeds_per_job finds every cell done: nothing is launched
    copy_of(swept, tmp_path)
    again = gdepth(["sweep", *CELLS, "name=split"], env_for(tmp_path), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 cells planned: 0 to run, 2 skipped" in again.stderr
    assert "Launching" not in again.stderr


def test_status_names_a_missing_part_and_a_rerun_trains_only_it(swept, tmp_path):
    folder = copy_of(swept, tmp_path)
    key = plan.read(folder)["cells"].popitem()[0]
    lost = records.record_path(folder, parts.unit(key, (2, 4)))
    kept = records.record_path(folder, parts.unit(key, (0, 2)))
    lost.unlink()
    status = gdepth(["status", str(folder)], env_for(tmp_path), tmp_path)
    assert status.returncode == 1
    assert re.search(rf"^missing +csbm gcn(_res)?·none L=2 +{key}  \(1/2 seed jobs done; "
                     r"seeds 2–3 missing \(not started\)\)$", status.stdout, re.M), status.stdout
    assert status.stdout.splitlines()[-1] == "2 cells: 1 done, 0 running, 0 failed, 1 missing"
    table = gdepth(["table", str(folder)], env_for(tmp_path), tmp_path)
    assert re.search(r"\| [\d.]+ ± [\d.]+ \(2/4, missing\) +\|", table.stdout), table.stdout

    before = {p.name: (p.stat().st_mtime_ns, p.read_text())
              for p in (folder / "records").glob("*.json")}
    jobs = len(list((folder / "jobs").iterdir()))
    out = gdepth(["sweep", *SPLIT, "name=split"], env_for(tmp_path), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 cells planned as 4 seed jobs: 1 to run, 3 skipped" in out.stderr
    assert re.search(r"#\d+ : .* seed_range=\[2,4\]$", out.stderr, re.M)
    assert len(list((folder / "jobs").iterdir())) == jobs + 1
    after = {p.name: (p.stat().st_mtime_ns, p.read_text())
             for p in (folder / "records").glob("*.json")}
    assert {k: v for k, v in after.items() if k != lost.name} == before
    assert kept.name in after and lost.exists()
    assert per_seed(folder) == per_seed(swept / "outputs/sweeps/whole")


def test_a_failed_part_fails_its_cell_with_the_reason_and_only_it_reruns(swept, tmp_path):
    folder = copy_of(swept, tmp_path)
    cells = plan.read(folder)["cells"]
    bad = next(k for k, c in cells.items() if c["config"]["model"]["name"] == "gcn_res")
    path = records.record_path(folder, parts.unit(bad, (0, 2)))
    failed = {**json.loads(path.read_text()), "status": "failed", "seeds": [],
              "error": "RuntimeError: node lost"}
    records.write(path, failed)

    found = {r["key"]: r for r in collect.load(folder)}
    assert found[bad]["status"] == "failed" and found[bad]["partial"]
    assert found[bad]["error"] == ("1/2 seed jobs done; seeds 0–1 failed (RuntimeError: node "
                                   "lost)")
    other = next(k for k in cells if k != bad)
    assert found[other]["status"] == "ok" and found[other]["summary"]["test_acc"]["n"] == 4
    status = gdepth(["status", str(folder)], env_for(tmp_path), tmp_path)
    assert re.search(rf"^failed +csbm gcn_res·none L=2 +{bad}  \(1/2 seed jobs done; seeds "
                     r"0–1 failed \(RuntimeError: node lost\)\)$", status.stdout, re.M)
    assert status.stdout.splitlines()[-1] == "2 cells: 1 done, 0 running, 1 failed, 0 missing"
    table = gdepth(["table", str(folder)], env_for(tmp_path), tmp_path).stdout
    assert re.search(r"^\| gcn_res·none +\| – +\| failed +\|$", table, re.M), table
    assert re.search(r"^\| gcn·none +\| none \(holds to L=2\) \[none, none\] +\| [\d.]+ ± [\d.]+ "
                     r"\(4\) +\|$", table, re.M), table

    out = gdepth(["sweep", *SPLIT, "name=split"], env_for(tmp_path), tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 cells planned as 4 seed jobs: 1 to run, 3 skipped" in out.stderr
    assert records.read(path)["status"] == "ok"


def test_parts_ranges_and_seed_range_checks():
    assert parts.ranges(5, None) is None and parts.ranges(5, 5) is None
    assert parts.ranges(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert parts.ranges(3, 1) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="seeds_per_job=0: must be"):
        parts.ranges(3, 0)
    assert parts.bounds({"seeds": 4, "seed_range": None}) == (0, 4)
    assert parts.bounds({"seeds": 4, "seed_range": [2, 4]}) == (2, 4)
    with pytest.raises(ValueError, match=r"seed_range=\[3, 9\]: must be"):
        parts.seed_range({"seeds": 4, "seed_range": [3, 9]})
    assert parts.parse("abc.seeds-2-4") == ("abc", (2, 4)) and parts.parse("abc") == ("abc", None)
    assert parts.label((2, 3)) == "seed 2" and parts.label((2, 4)) == "seeds 2–3"
    for key in ("seeds_per_job", "seed_range"):
        assert key in records.NOT_IDENTITY


def _part(seeds, part, status="ok", when="2026-01-01"):
    config = {"dataset": {"name": "csbm"}, "model": {"name": "gcn"}, "norm": {"name": "none"},
              "depth": 2, "seeds": seeds, "seed_range": list(part)}
    values = [{"seed": s, "status": "ok", "train_acc": 1.0, "val_acc": 0.5, "test_acc": s / 10,
               "selected_epoch": 1, "epoch_s": 0.1} for s in range(*part)]
    return {"schema": records.SCHEMA_VERSION, "key": "k", "status": status, "config": config,
            "error": None if status == "ok" else "boom", "seed_range": list(part),
            "seeds": values if status == "ok" else [], "finished_at": when}


def test_merge_covers_seeds_across_parts_and_a_done_whole_record_wins():
    merged = parts.merge([_part(4, (2, 4)), _part(4, (0, 2), "failed"),
                          _part(4, (0, 1), when="2026-01-02"), _part(4, (1, 2))])
    assert merged["status"] == "ok" and [s["seed"] for s in merged["seeds"]] == [0, 1, 2, 3]
    assert merged["summary"]["test_acc"]["n"] == 4 and merged["config"]["seed_range"] is None
    partial = parts.merge([_part(4, (0, 2))])
    assert partial["partial"] and partial["status"] == "missing"
    assert partial["error"] == "1/2 seed jobs done; seeds 2–3 missing (no record)"
    whole = {**_part(4, (0, 2)), "seed_range": None, "status": "ok"}
    assert parts.prefer(whole, merged) is whole
    assert parts.prefer({**whole, "status": "failed"}, merged) is merged
    assert parts.prefer({**whole, "status": "failed"}, partial)["status"] == "failed"


def test_a_bad_seeds_per_job_is_one_line_and_launches_nothing(tmp_path):
    out = gdepth(["sweep", "seeds_per_job=0", "name=bad", "progress=false"], env_for(tmp_path),
                 tmp_path)
    assert out.returncode == 2  # refused when the command line is composed
    assert out.stderr.strip().splitlines() == [
        "gdepth: error: seeds_per_job=0: must be a whole number >= 1 (or null)"]
    assert not (tmp_path / "outputs").exists()
