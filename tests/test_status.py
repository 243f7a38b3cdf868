"""`gdepth status` on a sweep folder: its cells' states from records and markers, its exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from test_records import make_record

from gdepth.sweep import collect, layout, markers, plan, records, status

GDEPTH = [sys.executable, "-m", "gdepth.cli"]


def _plan(folder, *recs):
    plan.add(folder, {r["key"]: {"label": plan.label(r["config"]), "overrides": [],
                                 "config": r["config"]} for r in recs})


def test_states_done_running_missing_dead_corrupt_and_the_status_command(tmp_path):
    done, live, dead, remote, never, broken = (make_record(d) for d in (2, 4, 8, 16, 32, 64))
    _plan(tmp_path, done, live, dead, remote, never, broken)
    records.write(records.record_path(tmp_path, done["key"]), done)
    records.record_path(tmp_path, broken["key"]).write_text("{")
    sleeper = subprocess.Popen(["sleep", "60"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        base = {"state": "running", "heartbeat": time.time(), "beat_s": 30}
        records.write(markers.marker_path(tmp_path, live["key"]),
                      {**base, "host": markers.platform.node(), "pid": sleeper.pid})
        records.write(markers.marker_path(tmp_path, dead["key"]),
                      {**base, "host": markers.platform.node(), "pid": gone.pid})
        records.write(markers.marker_path(tmp_path, remote["key"]),
                      {**base, "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 600})
        states = {s.label: s for s in status.cell_states(tmp_path)}
        assert {k: s.status for k, s in states.items()} == {
            "csbm gcn·none L=2": "ok", "csbm gcn·none L=4": "running",
            "csbm gcn·none L=8": "missing", "csbm gcn·none L=16": "missing",
            "csbm gcn·none L=32": "missing", "csbm gcn·none L=64": "corrupt"}
        assert "died without a result" in states["csbm gcn·none L=8"].detail
        assert "last heartbeat 600 s ago" in states["csbm gcn·none L=16"].detail
        assert states["csbm gcn·none L=32"].detail == "not started"
        assert "resumes from" not in states["csbm gcn·none L=8"].detail
        saved = layout.checkpoint_dir(tmp_path, dead["key"])  # its kept state, by file name
        saved.mkdir(parents=True)
        (saved / "batch-2-3.pt").write_bytes(b"")
        for seed in (0, 1):
            (saved / f"seed-{seed}.done.json").write_text("{}")
        (saved / ".batch-2-3.pt.99.tmp").write_bytes(b"")  # a write in progress: not named
        again = {s.label: s for s in status.cell_states(tmp_path)}
        assert again["csbm gcn·none L=8"].detail.endswith(
            "; resumes from its checkpoints: batch-2-3.pt, 2 finished seeds kept")
        assert status.summary(list(states.values())) == {"done": 1, "running": 1, "failed": 0,
                                                         "corrupt": 1, "missing": 3}
        out = subprocess.run([*GDEPTH, "status", str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 1
        assert out.stdout.splitlines()[-1] == ("6 cells: 1 done, 1 running, 0 failed, 1 corrupt, "
                                               "3 missing")
        assert out.stdout.splitlines()[-2] == ("compute in the records: 0s over 1 record "
                                               "(each record's wall_s summed; a lower bound)")
        assert re.search(rf"^running +csbm gcn·none L=4 +{live['key']}  \(on .* pid "
                         rf"{sleeper.pid}, heartbeat \d+ s ago\)$", out.stdout, re.M)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the sleeper is gone now: its cell is missing too, and the table marks every cell
    assert status._state(tmp_path, live["key"], live["config"]).status == "missing"
    statuses = sorted(r["status"] for r in collect.load(tmp_path))
    assert statuses == ["corrupt", "missing", "missing", "missing", "missing", "ok"]


def test_compute_in_the_records_sums_every_readable_record_and_trial(tmp_path):
    cell, trial, rerun, unknown, broken = (make_record(d) for d in (2, 4, 8, 16, 32))
    records.write(records.record_path(tmp_path, cell["key"]), {**cell, "wall_s": 1800.0})
    nested = tmp_path / "sub"  # a second sweep below the folder, as search trials may be
    records.write(records.record_path(nested, trial["key"]), {**trial, "wall_s": 5400.0})
    records.write(records.record_path(nested, rerun["key"]),
                  {**rerun, "status": "failed", "error": "ValueError: x", "wall_s": 36.0})
    records.write(records.record_path(tmp_path, unknown["key"]), unknown)  # no wall_s: 0
    records.record_path(tmp_path, broken["key"]).write_text("{")  # unreadable: not counted
    assert status.recorded_compute(tmp_path) == (1800.0 + 5400.0 + 36.0, 4)
    out = subprocess.run([*GDEPTH, "status", str(tmp_path)], capture_output=True, text=True)
    assert out.stdout.splitlines()[-2].startswith("compute in the records: 2h00m over 4 records")


def test_status_of_a_missing_folder_is_a_usage_error(tmp_path):
    out = subprocess.run([*GDEPTH, "status", str(tmp_path / "nope")], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "no such folder" in out.stderr


def test_status_of_a_folder_that_is_not_a_sweep_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not a sweep")
    out = subprocess.run([*GDEPTH, "status", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (f"gdepth: error: '{tmp_path}' is not a sweep folder (no plan.json and "
                          "no records/ below it)\n")


def test_a_record_that_cannot_be_written_reads_as_failed_with_the_error(tmp_path):
    done, lost = make_record(2), make_record(4)
    _plan(tmp_path, done, lost)
    records.write(records.record_path(tmp_path, done["key"]), done)
    error = f"cannot write {records.record_path(tmp_path, lost['key'])}: Permission denied"
    with pytest.raises(records.RecordWriteError):
        with markers.running(tmp_path, lost["key"]):
            raise records.RecordWriteError(13, error)
    marker = json.loads(markers.marker_path(tmp_path, lost["key"]).read_text())
    assert marker["state"] == "write_failed" and marker["error"] == error
    state = status._state(tmp_path, lost["key"], lost["config"])
    assert (state.status, state.detail) == (
        "failed", f"the cell ended but its record could not be written: {error}")
    out = subprocess.run([*GDEPTH, "status", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 1
    assert re.search(rf"^failed +csbm gcn·none L=4 +{lost['key']}  \(the cell ended but its "
                     rf"record could not be written: cannot write \S+: Permission denied\)$",
                     out.stdout, re.M), out.stdout
    assert out.stdout.splitlines()[-1] == "2 cells: 1 done, 0 running, 1 failed, 0 missing"
    with markers.running(tmp_path, lost["key"]):  # the rerun takes the cell over
        pass
    assert not markers.marker_path(tmp_path, lost["key"]).exists()
