"""A cell's running marker (``gdepth.sweep.markers``): its heartbeat, its liveness, and the claim
that keeps two jobs from running one cell."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from gdepth.sweep import markers, records


def test_marker_beats_while_the_cell_runs_and_goes_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv(markers.HEARTBEAT_ENV, "0.05")
    path = markers.marker_path(tmp_path, "k1")
    with markers.running(tmp_path, "k1"):
        first = json.loads(path.read_text())
        time.sleep(0.3)
        later = json.loads(path.read_text())
        assert later["heartbeat"] > first["heartbeat"]
        assert markers.marker_state(later) == (True, markers.marker_state(later)[1])
        assert later["pid"] > 0 and later["state"] == "running"
    assert not path.exists()


def test_a_job_does_not_start_a_cell_whose_live_marker_is_another_process(tmp_path):
    path = markers.marker_path(tmp_path, "k1")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        records.write(path, {"key": "k1", "state": "running", "host": markers.platform.node(),
                             "pid": sleeper.pid, "heartbeat": time.time(), "beat_s": 30})
        with pytest.raises(markers.RunningElsewhere,
                           match=rf"^running elsewhere \(on .* pid {sleeper.pid}, heartbeat \d+ s "
                                 r"ago\), not started again$"):
            with markers.running(tmp_path, "k1"):
                raise AssertionError("the cell started a second time")
        assert json.loads(path.read_text())["pid"] == sleeper.pid  # its marker is untouched
    finally:
        sleeper.kill()
        sleeper.wait()
    with markers.running(tmp_path, "k1"):  # its process died: the cell is free to run again
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_a_job_starts_its_own_queued_slurm_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setattr(markers, "_in_squeue", lambda job: True)  # Slurm lists the job
    markers.mark_queued(tmp_path, "mine", "77_3")
    records.write(markers.marker_path(tmp_path, "other"), {
        "key": "other", "state": "queued", "slurm_job_id": "78_0", "host": "login",
        "pid": 1, "heartbeat": time.time(), "beat_s": 30})
    with markers.running(tmp_path, "mine"):
        assert json.loads(markers.marker_path(tmp_path, "mine").read_text())["state"] == \
            "running"
    with pytest.raises(markers.RunningElsewhere, match="queued as Slurm job 78_0"):
        with markers.running(tmp_path, "other"):
            pass
