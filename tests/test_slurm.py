"""gdepth on a real single-node Slurm (``.ci/slurm-ci.sh``): sweep, status, resume and faults.

Run with ``pytest -m slurm``. The module starts Slurm with the script if it is not up (root
and apt needed: ``.ci/run`` does this); elsewhere it skips, except under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import test_launchers
from test_faults import live_markers, wait_for
from test_launchers import GDEPTH, TINY, gdepth, snapshot

from gdepth.sweep import collect, markers, progress, status

pytestmark = pytest.mark.slurm
SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "slurm-ci.sh"
env = test_launchers.env  # the fixture
# A cell that trains for a while (tens of seconds) so a test can signal its job mid-training.
# The per-seed loop (engine=loop) checkpoints its training state every 50 epochs.
LONG = ["seeds=1", "train.epochs=6000", "dataset.num_nodes=300", "progress=false",
        "engine=loop", "checkpoint_every=50"]


@pytest.fixture(scope="module", autouse=True)
def slurm() -> None:
    """A running Slurm with accounting (sacct), started by the project's script if needed."""
    if subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        message = "no Slurm running and cannot install one (needs root and apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if not shutil.which("slurmctld"):
        subprocess.run(["bash", str(SCRIPT), "install"], check=True, timeout=900)
    subprocess.run(["bash", str(SCRIPT), "up"], check=True, timeout=300)


def squeue(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-o", "%T %r", "-j", job], capture_output=True,
                         text=True)
    return out.stdout.strip()


def test_sweep_runs_each_cell_as_a_slurm_job_and_resumes_without_submitting(env, tmp_path):
    args = ["sweep", "model=gcn,gcn_res", "depth=2,4", "launcher=slurm", "name=s",
            "hydra.launcher.mem_gb=1", *TINY]
    out = gdepth(args, env, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = tmp_path / "outputs/sweeps/s"
    found = collect.load(folder)
    assert len(found) == 4 and {r["status"] for r in found} == {"ok"}
    jobs = {r["slurm_job"] for r in found}
    assert len(jobs) == 4 and all(re.fullmatch(r"\d+_[0-3]", j) for j in jobs)
    assert {r["threads"] for r in found} == {1}  # cpus_per_task=1
    table = (folder / "table.md").read_text()
    for record in found:
        acc = 100 * record["seeds"][0]["test_acc"]
        assert f"{acc:.1f} ± 0.0 (1)" in table
    st = subprocess.run([*GDEPTH, "status", str(folder)], env=env, capture_output=True,
                        text=True)
    seconds, count = status.recorded_compute(folder)
    assert count == 4 and st.returncode == 0
    assert st.stdout.splitlines() == [
        f"compute in the records: {progress.duration(seconds)} over 4 records (each record's "
        "wall_s summed; a lower bound)", "4 cells: 4 done, 0 running, 0 failed, 0 missing"]
    before = snapshot(folder)
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0
    assert "4 cells planned: 0 to run, 4 skipped" in again.stderr
    assert "submitted" not in again.stderr and snapshot(folder) == before


def test_cancelled_job_is_failed_with_slurms_reason_and_a_preempted_one_requeues(env, tmp_path):
    args = ["sweep", "depth=2,4,8", "launcher=slurm", "name=f", "hydra.launcher.mem_gb=1",
            *LONG]
    proc = subprocess.Popen([*GDEPTH, *args], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / "outputs/sweeps/f"
    running = wait_for(lambda: (m := live_markers(folder)) and len(m) >= 2 and m, timeout=180)
    preempt = min(running, key=lambda m: m["slurm_job_id"])
    wait_for(lambda: list(folder.glob(f"checkpoints/{preempt['key']}/batch-0-*.pt")),
             timeout=120)
    # cancel a job that is still training now (a fast machine may have finished the first one)
    cancel = wait_for(lambda: next((m for m in live_markers(folder)
                                    if m["key"] != preempt["key"]), None), timeout=120)
    subprocess.run(["scancel", cancel["slurm_job_id"]], check=True)
    subprocess.run(["scancel", "--signal=USR2", preempt["slurm_job_id"]], check=True)
    signalled = time.time()
    wait_for(lambda: squeue(preempt["slurm_job_id"]).startswith("PENDING"), timeout=60)
    marker = json.loads(markers.marker_path(folder, preempt["key"]).read_text())
    assert marker["state"] == "queued" and marker["requeued"]
    # Slurm holds a requeued job back for a while (BeginTime); let it start now
    subprocess.run(["scontrol", "update", f"jobid={preempt['slurm_job_id']}", "starttime=now"],
                   check=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    found = {r["key"]: r for r in collect.load(folder)}
    assert len(found) == 3
    dead = found[cancel["key"]]
    assert dead["status"] == "failed"
    assert re.match(rf"Slurm job {cancel['slurm_job_id']} ended CANCELLED", dead["error"])
    again = found[preempt["key"]]
    assert again["status"] == "ok" and again["slurm_job"] == preempt["slurm_job_id"]
    started = time.mktime(time.strptime(again["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert started - time.timezone >= int(signalled) - 1  # the cell restarted after requeue
    logs = "".join(p.read_text(errors="replace") for p in folder.rglob("*")
                   if p.is_file() and p.suffix in (".log", ".err", ".out"))
    assert re.search(r"seeds \[0(, \d+)*\] resume from their checkpoint at epoch [1-9]\d*0\b",
                     logs)
    assert not (folder / "checkpoints" / preempt["key"]).exists()
    assert "gdepth: not every cell is done (1 failed)" in err
    assert re.search(r"^\| gcn·none +\|(.*\|)? failed +\|", out, re.M)  # marked in the table


@pytest.mark.parametrize(("setting", "message"), [
    ("hydra.launcher.partition=nope", "gdepth: error: Slurm refused the jobs: invalid partition "
     "specified: nope; change hydra.launcher.partition (sinfo lists the partitions)"),
    ("hydra.launcher.cpus_per_task=512", "gdepth: error: Slurm cannot run the jobs (pending, "
     "reason PartitionConfig); change hydra.launcher.cpus_per_task / mem_gb / gpus_per_node "
     "(more than a node of the partition has)"),
])
def test_bad_launcher_settings_are_one_line_naming_the_setting(setting, message, env, tmp_path):
    out = gdepth(["sweep", "launcher=slurm", "name=b", setting, *TINY], env, tmp_path,
                 timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in out.stderr and "| gcn" not in out.stdout


def test_killed_launcher_leaves_the_jobs_running_and_the_folder_tells(env, tmp_path):
    args = ["sweep", "depth=2,4,8", "launcher=slurm", "name=k", "hydra.launcher.mem_gb=1",
            "seeds=1", "train.epochs=300", "dataset.num_nodes=300", "progress=false"]
    proc = subprocess.Popen([*GDEPTH, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "outputs/sweeps/k"
    wait_for(lambda: live_markers(folder), timeout=180)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    st = subprocess.run([*GDEPTH, "status", str(folder)], env=env, capture_output=True,
                        text=True)
    assert st.returncode == 1 and re.search(r"\d running", st.stdout)
    # the jobs go on without their launcher and write their records
    wait_for(lambda: len(collect.load(folder, planned=False)) == 3, timeout=300, every=1)
    assert {r["status"] for r in collect.load(folder)} == {"ok"}
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0 and "3 cells planned: 0 to run, 3 skipped" in again.stderr
