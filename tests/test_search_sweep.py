"""``gdepth sweep ... search=default`` end to end: real Hydra multirun, trials as ordinary
cells, the tuned table, ``gdepth tune-report``, and a second run that trains nothing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gdepth import frames
from gdepth.search import study
from gdepth.sweep import collect, markers, progress, status

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
ARGS = ["sweep", "search=default", "search.trials=3", "search.startup_trials=2",
        "search.seeds=1", "depth=2,4", "seeds=2", "dataset.num_nodes=300",
        "dataset.num_classes=3", "train.epochs=5", "progress=false", "name=tune"]


def gdepth(args, env, cwd, timeout=600):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, mirror, data_cache):
    import os

    cwd = tmp_path_factory.mktemp("tune")
    env = dict(os.environ, GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
               OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1")
    first = gdepth(ARGS, env, cwd)
    folder = cwd / "outputs" / "sweeps" / "tune"
    before = {p.name: p.read_text() for p in (folder / "records").glob("*.json")}
    second = gdepth(ARGS, env, cwd)
    return first, second, folder, before, env, cwd


def test_each_cell_spends_the_budget_then_reruns_its_best(tuned):
    first, _, folder, before, _, _ = tuned
    assert first.returncode == 0, first.stderr[-3000:]
    summaries = study.load_summaries(folder)
    assert len(summaries) == 2 and len(before) == 2 * (3 + 1)  # trials + final per cell
    by_key = {r["key"]: r for r in collect.load(folder, planned=False)}
    for summary in summaries:
        trials = summary["trials"]
        assert [t["state"] for t in trials] == ["COMPLETE"] * 3
        for t in trials:  # each trial is an ordinary cell with the trial's values, 1 seed
            record = by_key[t["key"]]
            assert len(record["seeds"]) == 1 and record["config"]["search"] == {"name": "none"}
            assert record["config"]["train"]["lr"] == pytest.approx(t["params"]["train.lr"])
            assert t["val_acc"] == pytest.approx(record["seeds"][0]["val_acc"])
        best = max(trials, key=lambda t: t["val_acc"])
        final = by_key[summary["final"]["key"]]
        assert len(final["seeds"]) == 2  # the cell's full seeds
        assert final["config"]["model"]["hidden"] == best["params"]["model.hidden"]


def test_the_table_has_one_row_of_finals_and_tune_report_lists_the_choices(tuned):
    first, _, folder, _, env, cwd = tuned
    table = (folder / "table.md").read_text().splitlines()
    assert len(table) == 3 and table[2].startswith("| gcn·none ")  # no row per lr / hidden
    assert "6 search trials beside them" in first.stderr
    out = gdepth(["tune-report", str(folder)], env, cwd)
    assert out.returncode == 0, out.stderr
    hyper = pd.read_csv(folder / "hyperparameters.csv")
    assert list(hyper["depth"]) == [2, 4] and (hyper["completed"] == 3).all()
    summaries = {s["config"]["depth"]: s for s in study.load_summaries(folder)}
    for _, row in hyper.iterrows():
        best = summaries[row["depth"]]["best"]
        assert row["best.train.lr"] == pytest.approx(best["params"]["train.lr"])
        assert row["best_val_acc"] == pytest.approx(100 * best["val_acc"])
    assert "csbm gcn·none tuned" in (folder / "tuned.md").read_text()
    assert "3 trials per cell, 1 seeds per trial" in out.stdout


def test_a_second_run_trains_nothing(tuned):
    _, second, folder, before, _, _ = tuned
    assert second.returncode == 0, second.stderr[-3000:]
    after = {p.name: p.read_text() for p in (folder / "records").glob("*.json")}
    assert after == before
    assert "Launching" not in second.stderr
    # the studies hold every trial told: only the finals are looked up, and found done
    assert len(re.findall(r"skip .*record is ok", second.stderr)) == 2
    assert "2 cells (2 ok; 0 run now, 2 skipped as already done)" in second.stderr
    plan = json.loads((folder / "plan.json").read_text())
    assert len(plan["cells"]) == 8  # trials and finals are planned cells: gdepth status sees them
    searches = {s["study"] for s in study.load_summaries(folder)}
    assert {c.get("search") for c in plan["cells"].values()} == searches  # each marked


def test_a_trial_in_flight_makes_no_row_of_its_own(tuned, tmp_path):
    """A sweep killed while a trial runs leaves a planned trial cell that no summary names yet
    (the study tells a trial, and saves its key, only when its record is back). The tables must
    not show it: with 1 seed beside the finals' 2 it would make ``seeds`` a row key, renaming
    every row (``gcn·none seeds=2``) and breaking ``gdepth compare DIR "gcn·none" ...``."""
    folder = tmp_path / "tune"
    shutil.copytree(tuned[2], folder)
    before = frames.table_frame(*frames.table_records(folder))
    summary_path = next((folder / "search").glob("*.json"))
    summary = json.loads(summary_path.read_text())
    in_flight = summary["trials"].pop()  # killed before it was told: no key in the summary
    (folder / "records" / f"{in_flight['key']}.json").unlink()  # and no record yet
    summary_path.write_text(json.dumps(summary))
    states = {s.key: s.status for s in status.cell_states(folder)}
    assert states[in_flight["key"]] == "missing"  # gdepth status still lists it
    found, _ = frames.table_records(folder)
    assert in_flight["key"] not in {r["key"] for r in found}
    after = frames.table_frame(found, before.attrs["searched"])
    assert frames.row_keys(after) == frames.row_keys(before) == ["model.name", "norm.name"]
    assert sorted(after["key"]) == sorted(before["key"])  # the two finals, nothing else


def _compute_line(folder) -> str:
    """The line `gdepth status` prints for the records' summed wall time (tests/test_status.py
    checks the sum itself)."""
    seconds, count = status.recorded_compute(folder)
    return (f"compute in the records: {progress.duration(seconds)} over {count} records (each "
            "record's wall_s summed; a lower bound)")


def test_status_says_a_search_killed_between_trials_is_not_done(tuned, tmp_path):
    """A sweep killed after a trial's record and before the next trial was asked leaves every
    planned cell done: `gdepth status` must still say the search is not (exit 1), from its
    summary, and the finished folder reads done (exit 0) with its searches counted."""
    _, _, done_folder, _, env, cwd = tuned
    out = gdepth(["status", str(done_folder)], env, cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-2:] == ["8 cells: 8 done, 0 running, 0 failed, 0 missing",
                                            "2 searches: 2 done, 0 searching"]
    folder = tmp_path / "tune"
    shutil.copytree(done_folder, folder)
    summary_path = sorted((folder / "search").glob("*.json"))[0]
    summary = json.loads(summary_path.read_text())
    first, *unasked = summary["trials"]
    gone = [t["key"] for t in unasked] + [summary["final"]["key"]]
    summary.update(trials=[first], best={k: first[k] for k in ("number", "params", "val_acc")},
                   final=None)
    summary_path.write_text(json.dumps(summary))
    plan_path = folder / "plan.json"
    plan = json.loads(plan_path.read_text())
    for key in gone:  # never asked, never planned, never recorded
        (folder / "records" / f"{key}.json").unlink()
        del plan["cells"][key]
    plan_path.write_text(json.dumps(plan))
    out = gdepth(["status", str(folder)], env, cwd)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines == [f"searching {summary['label']:<28} {summary['study']}  (search: 1 of 3 "
                     f"trials told, best val {100 * first['val_acc']:.1f} %)",
                     _compute_line(folder),
                     "5 cells: 5 done, 0 running, 0 failed, 0 missing",  # every planned cell
                     "2 searches: 1 done, 1 searching"]
    all_lines = gdepth(["status", str(folder), "--all"], env, cwd).stdout.splitlines()
    assert sum(line.startswith("done ") and "(search: 3 of 3 trials told" in line
               for line in all_lines) == 1


def test_status_finds_a_final_in_flight_through_the_plan(tuned, tmp_path):
    """A search whose final is running, or was killed running, has no record key for it in its
    summary yet, only the final's overrides: `gdepth status` finds the cell by those in
    plan.json (marked with the study's key) and says the final is running, or missing."""
    _, _, done_folder, _, env, cwd = tuned
    folder = tmp_path / "tune"
    shutil.copytree(done_folder, folder)
    summary_path = sorted((folder / "search").glob("*.json"))[0]
    summary = json.loads(summary_path.read_text())
    final, seeds = summary["final"], summary["config"]["seeds"]
    plan = json.loads((folder / "plan.json").read_text())
    assert plan["cells"][final["key"]]["overrides"] == final["overrides"]  # what it is found by
    assert plan["cells"][final["key"]]["search"] == summary["study"]
    (folder / "records" / f"{final['key']}.json").unlink()  # as study.run saves it, asked
    summary["final"] = {"overrides": final["overrides"], "key": None, "status": "asked"}
    summary_path.write_text(json.dumps(summary))
    head = f"searching {summary['label']:<28} {summary['study']}  (search: 3 of 3 trials told"
    with markers.running(folder, final["key"]):
        out = gdepth(["status", str(folder)], env, cwd)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"running   {summary['label']:<28} {final['key']}  (on ")
    assert lines[1].startswith(head) and lines[1].endswith(
        f"; its final ({seeds} seeds) is running)")
    assert lines[2:] == [_compute_line(folder),
                         "8 cells: 7 done, 1 running, 0 failed, 0 missing",
                         "2 searches: 1 done, 1 searching"]
    out = gdepth(["status", str(folder)], env, cwd)  # killed: no record, no live marker
    assert out.returncode == 1
    assert out.stdout.splitlines()[1].endswith(f"; its final ({seeds} seeds) is missing)")


def test_a_bad_search_is_refused_before_anything_runs(tuned):
    _, _, _, _, env, cwd = tuned
    for args, message in [
        (["search.trials=0"], "search.trials=0: must be a whole number >= 1"),
        (["search=nope"], "Could not find 'search/nope'; valid: default, none"),
        (["search.pruner=hyperband"],
         "search.pruner=hyperband: unknown pruner; valid: none, median"),
        (["+search.space.depth={low: 2, high: 8}"], "'depth' cannot be searched"),
        (["+search.models.gcn={model.hiden: {low: 2, high: 8}}"],
         "the cell's config has no key 'model.hiden'; valid: model.name, model.hidden"),
    ]:
        out = gdepth(["sweep", "search=default", *args, "name=bad"], env, cwd)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert not (cwd / "outputs" / "sweeps" / "bad").exists()
