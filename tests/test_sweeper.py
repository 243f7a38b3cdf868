"""The resuming sweeper with other sweeps in the same folder: job folders reserved per launch,
a cell running elsewhere not started again, progress and the summary counting this sweep's
cells only."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import test_launchers
from test_faults import patched
from test_launchers import GDEPTH, TINY
from test_records import make_record

from gdepth.sweep import callbacks, collect, markers, plan, progress, records, sweeper

env = test_launchers.env  # the fixture: one thread, offline, a private data cache


def _overrides(folder: Path) -> dict[int, str]:
    """Each job folder's number → its depth override (from ``.hydra/overrides.yaml``)."""
    out = {}
    for job in (folder / "jobs").iterdir():
        text = (job / ".hydra" / "overrides.yaml").read_text()
        out[int(job.name)] = re.search(r"depth=(\d+)", text).group(1)
    return out


def test_concurrent_launches_reserve_disjoint_job_folders_after_the_existing_ones(tmp_path):
    """4 processes reserve 3 job folders each, 5 times, at once: 60 numbers, none twice, all
    after the folders an older gdepth left (jobs/0..2) and recorded per launch in the plan."""
    for n in range(3):
        (tmp_path / "jobs" / str(n)).mkdir(parents=True)
    code = ("import sys; from gdepth.sweep import plan\n"
            "for i in range(5):\n"
            "    print(plan.reserve_jobs(sys.argv[2], 3, f'{sys.argv[1]}-{i}'))\n")
    environ = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code, uuid.uuid4().hex[:6], str(tmp_path)],
                              env=environ, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    firsts = [int(line) for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert [p.returncode for p in procs] == [0] * 4
    numbers = sorted(n for first in firsts for n in range(first, first + 3))
    assert numbers == list(range(3, 63))
    reserved = [tuple(r) for s in plan.read(tmp_path)["sweeps"] for r in s["jobs"]]
    assert sorted(reserved) == sorted((f, f + 3) for f in firsts)


def test_progress_counts_this_launchs_units_written_since_it_planned(tmp_path, monkeypatch):
    failed, todo, other = (make_record(d) for d in (2, 4, 8))
    path = records.record_path(tmp_path, failed["key"])
    records.write(path, {**failed, "status": "failed"})
    units = {u["key"]: progress.record_mtime(tmp_path, u["key"]) for u in (failed, todo)}
    plan.add(tmp_path, {}, launch={"launch": "L1", "units": units})
    monkeypatch.setenv(progress.LAUNCH_ENV, "L1")
    monkeypatch.setenv(progress.TOTAL_ENV, "3")
    monkeypatch.setenv(progress.SKIPPED_ENV, "1")
    monkeypatch.setenv(progress.START_ENV, str(time.time() - 10))
    assert progress.sweep_line(tmp_path) == "[1/3]"
    records.write(records.record_path(tmp_path, other["key"]), other)  # another sweep's cell
    assert progress.sweep_line(tmp_path) == "[1/3]"
    time.sleep(0.01)
    records.write(path, failed)  # the rerun rewrites the failed record: same number of files
    assert re.fullmatch(r"\[2/3\] ETA \d+s", progress.sweep_line(tmp_path))
    records.write(records.record_path(tmp_path, todo["key"]), todo)
    assert progress.sweep_line(tmp_path) == "[3/3]"


def test_summary_counts_this_sweeps_cells_and_who_ran_them(tmp_path, monkeypatch, capsys):
    start = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    before, mine, theirs, other, old = (make_record(d) for d in (2, 4, 8, 16, 32))
    for record in (mine, theirs, other):
        record["finished_at"] = "2026-01-03T00:00:00+00:00"
    theirs["started_at"] = "2026-01-02T12:00:00+00:00"  # a sweep started after this one
    old["finished_at"] = "2026-01-03T00:00:00+00:00"
    old["started_at"] = "2026-01-01T12:00:00+00:00"  # a job of a launch before this one
    for record in (before, mine, theirs, other, old):
        records.write(records.record_path(tmp_path, record["key"]), record)
    monkeypatch.setenv(progress.START_ENV, str(start.timestamp()))
    monkeypatch.setattr(sweeper, "LAST", {
        "keys": [r["key"] for r in (before, mine, theirs, old)], "launched": {mine["key"]}})
    callbacks.finish(tmp_path)
    assert ("5 cells (5 ok; 3 run now (1 by a job of an earlier launch, 1 by another sweep "
            "running alongside), 1 skipped as already done)") in capsys.readouterr().err


def test_a_cell_started_elsewhere_after_planning_is_not_trained_again(env, tmp_path):
    """Sweep B plans depth 4 and 8; before its jobs start, another process starts depth 4 (a
    live marker) and another sweep A into the same folder runs depth 2. B's job for depth 4
    does not train it, B logs it as running elsewhere, and no two jobs share a folder."""
    sleeper = subprocess.Popen(["sleep", "120"])
    a_args = ["sweep", "depth=2", "name=conc", *TINY]
    patch = ("import json, os, subprocess, time\n"
             "from gdepth.sweep import markers, plan\n"
             "reserve = plan.reserve_jobs\n"
             "def reserve_then_others_start(sweep_dir, count, launch):\n"
             "    first = reserve(sweep_dir, count, launch)\n"
             "    key = next(k for k, c in plan.read(sweep_dir)['cells'].items()\n"
             "               if c['config']['depth'] == 4)\n"
             "    records.write(markers.marker_path(sweep_dir, key), {\n"
             "        'key': key, 'state': 'running', 'host': markers.platform.node(),\n"
             "        'pid': int(os.environ['SLEEPER']), 'heartbeat': time.time(),\n"
             "        'beat_s': 30})\n"
             f"    subprocess.run({[*GDEPTH, *a_args]!r}, check=True,\n"
             "                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
             "    return first\n"
             "plan.reserve_jobs = reserve_then_others_start")
    folder = tmp_path / "outputs/sweeps/conc"
    try:
        out = patched(patch, ["sweep", "depth=4,8", "name=conc", *TINY],
                      {**env, "SLEEPER": str(sleeper.pid)}, tmp_path)
        found = {r["config"]["depth"]: r for r in collect.load(folder)}
    finally:
        sleeper.kill()
        sleeper.wait()
    key4 = found[4]["key"]
    assert re.search(rf"skip csbm gcn·none L=4: running elsewhere \(on \S+ pid {sleeper.pid}, "
                     rf"heartbeat \d+ s ago\), not started again \({key4}\)", out.stderr), \
        out.stderr[-3000:]
    assert "L=4: ok" not in out.stderr and "job depth=4" not in out.stderr
    assert {d: r["status"] for d, r in found.items()} == {2: "ok", 4: "running", 8: "ok"}
    assert out.returncode == 1 and "not every cell is done (1 running)" in out.stderr
    # B's summary: its own cells only (depth 2 is A's), nothing "of an earlier launch"
    assert "3 cells (2 ok, 1 running; 1 run now, 0 skipped as already done)" in out.stderr
    assert _overrides(folder) == {0: "4", 1: "8", 2: "2"}  # B reserved 0-1 before A ran
    assert not markers.marker_path(folder, found[8]["key"]).exists()


@pytest.mark.slow  # two sweeps at once: 15-30 s on 2 cores
def test_two_sweeps_started_together_share_no_job_folder_and_train_each_cell_once(env, tmp_path):
    args = [["sweep", "depth=2,4,8", "name=conc", "train.epochs=60", *TINY[1:]],
            ["sweep", "depth=4,8,16", "name=conc", "train.epochs=60", *TINY[1:]]]
    procs = []
    for a in args:
        procs.append(subprocess.Popen([*GDEPTH, *a], env=env, cwd=tmp_path, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    errs = [p.communicate(timeout=600)[1] for p in procs]
    for proc, err in zip(procs, errs, strict=True):
        assert proc.returncode == 0 or "not every cell is done (1 running)" in err, err[-3000:]
    folder = tmp_path / "outputs/sweeps/conc"
    trained = re.findall(r"csbm gcn·none L=(\d+): ok test", "".join(errs))
    assert sorted(trained, key=int) == ["2", "4", "8", "16"]  # each cell once
    launched = sum(int(n) for e in errs for n in re.findall(r"Launching (\d+) jobs", e))
    jobs = _overrides(folder)
    assert sorted(jobs) == list(range(launched))
    for job in (folder / "jobs").iterdir():  # one job's log each, not two interleaved
        assert len(re.findall(r"L=\d+: ok test", (job / "gdepth.log").read_text())) <= 1
    assert {r["status"] for r in collect.load(folder)} == {"ok"}
    assert not any("earlier launch" in e for e in errs[:1])  # A started first
