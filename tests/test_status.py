"""Running markers, their heartbeat and liveness, and ``gdepth status`` on a sweep folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from test_records import make_record

from gdepth import plan, records, status

GDEPTH = [sys.executable, "-m", "gdepth.cli"]


def _plan(folder, *recs):
    plan.add(folder, {r["key"]: {"label": plan.label(r["config"]), "overrides": [],
                                 "config": r["config"]} for r in recs})


def test_marker_beats_while_the_cell_runs_and_goes_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv(status.HEARTBEAT_ENV, "0.05")
    path = status.marker_path(tmp_path, "k1")
    with status.running(tmp_path, "k1"):
        first = json.loads(path.read_text())
        time.sleep(0.3)
        later = json.loads(path.read_text())
        assert later["heartbeat"] > first["heartbeat"]
        assert status.marker_state(later) == (True, status.marker_state(later)[1])
        assert later["pid"] > 0 and later["state"] == "running"
    assert not path.exists()


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
        records.write(status.marker_path(tmp_path, live["key"]),
                      {**base, "host": status.platform.node(), "pid": sleeper.pid})
        records.write(status.marker_path(tmp_path, dead["key"]),
                      {**base, "host": status.platform.node(), "pid": gone.pid})
        records.write(status.marker_path(tmp_path, remote["key"]),
                      {**base, "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 600})
        states = {s.label: s for s in status.cell_states(tmp_path)}
        assert {k: s.status for k, s in states.items()} == {
            "csbm gcn·none L=2": "ok", "csbm gcn·none L=4": "running",
            "csbm gcn·none L=8": "missing", "csbm gcn·none L=16": "missing",
            "csbm gcn·none L=32": "missing", "csbm gcn·none L=64": "corrupt"}
        assert "died without a result" in states["csbm gcn·none L=8"].detail
        assert "last heartbeat 600 s ago" in states["csbm gcn·none L=16"].detail
        assert states["csbm gcn·none L=32"].detail == "not started"
        assert status.summary(list(states.values())) == {"done": 1, "running": 1, "failed": 1,
                                                         "missing": 3}
        out = subprocess.run([*GDEPTH, "status", str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 1
        assert out.stdout.splitlines()[-1] == "6 cells: 1 done, 1 running, 1 failed, 3 missing"
        assert re.search(rf"^running +csbm gcn·none L=4 +{live['key']}  \(on .* pid "
                         rf"{sleeper.pid}, heartbeat \d+ s ago\)$", out.stdout, re.M)
    finally:
        sleeper.kill()
        sleeper.wait()
    # the sleeper is gone now: its cell is missing too, and the table marks every cell
    assert status._state(tmp_path, live["key"], live["config"]).status == "missing"
    statuses = sorted(r["status"] for r in records.load(tmp_path))
    assert statuses == ["corrupt", "missing", "missing", "missing", "missing", "ok"]


def test_status_of_a_missing_folder_is_a_usage_error(tmp_path):
    out = subprocess.run([*GDEPTH, "status", str(tmp_path / "nope")], capture_output=True,
                         text=True)
    assert out.returncode == 2 and "no such folder" in out.stderr
