"""Launchers chosen on the command line: local, a real joblib pool, Ray; resume without resubmit."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gdepth.sweep import collect, launchers, plan, records

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
TINY = ["seeds=1", "train.epochs=5", "dataset.num_nodes=300", "progress=false"]


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    """One torch thread, no downloads, a private dataset cache (csbm needs no files)."""
    return dict(os.environ, OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1", RAY_AUTH_MODE="disabled",
                GDEPTH_DATA=str(tmp_path / "data"))


def gdepth(args, env, cwd, timeout=300):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (folder / "records").glob("*.json")}


def test_threads_per_job_splits_the_cpus():
    cpus = len(os.sched_getaffinity(0))
    assert launchers.threads_per_job(1) == cpus
    assert launchers.threads_per_job(cpus) == 1
    assert launchers.threads_per_job(4 * cpus) == 1
    assert launchers.threads_per_job(-1) == 1


def test_pool_runs_cells_in_parallel_processes_and_resumes_without_resubmitting(env, tmp_path):
    args = ["sweep", "model=gcn,gcn_res", "depth=2,4", "launcher=pool", "name=p", *TINY]
    first = gdepth(args, env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    folder = tmp_path / "outputs/sweeps/p"
    assert "Joblib.Parallel(n_jobs=2," in first.stderr
    found = collect.load(folder)
    assert sorted((r["config"]["model"]["name"], r["config"]["depth"], r["status"])
                  for r in found) == [("gcn", 2, "ok"), ("gcn", 4, "ok"), ("gcn_res", 2, "ok"),
                                      ("gcn_res", 4, "ok")]
    expected_threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {r["threads"] for r in found} == {expected_threads}
    assert {r["config"]["threads"] for r in found} == {expected_threads}
    assert sorted(plan.read(folder)["cells"]) == sorted(r["key"] for r in found)
    before = snapshot(folder)

    again = gdepth(args, env, tmp_path)  # nothing to do: nothing is submitted
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 cells planned: 0 to run, 4 skipped" in again.stderr
    assert len(re.findall(r"skip csbm .*: record is ok", again.stderr)) == 4
    assert "Joblib.Parallel" not in again.stderr
    assert snapshot(folder) == before
    assert sorted(int(p.name) for p in (folder / "jobs").iterdir()) == [0, 1, 2, 3]

    # 2 more cells, run by another launcher into the same folder
    more = gdepth([*args[:2], "depth=2,4,8", "launcher=local", *args[4:]], env, tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert "6 cells planned: 2 to run, 4 skipped" in more.stderr
    assert "6 cells (6 ok; 2 run now, 4 skipped as already done)" in more.stderr
    assert sorted(int(p.name) for p in (folder / "jobs").iterdir()) == [0, 1, 2, 3, 4, 5]
    assert {k: v for k, v in snapshot(folder).items() if k in before} == before


def test_threads_on_the_command_line_win_over_the_pool_default(env, tmp_path):
    out = gdepth(["run", "launcher=pool", "threads=2", "--cfg", "job", "-p", "threads"], env,
                 tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2"


@pytest.mark.parametrize(("value", "message"), [
    ("nope", "unknown launcher 'nope'; valid: local, pool, ray, slurm"),
    pytest.param("ray", "launcher=ray needs Hydra's Ray launcher: pip install 'gdepth[ray]'",
                 marks=pytest.mark.skipif(
                     importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None,
                     reason="the Ray launcher is installed")),
])
def test_bad_launcher_choice_is_one_line_and_launches_nothing(value, message, env, tmp_path):
    out = gdepth(["sweep", f"launcher={value}", *TINY], env, tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"gdepth: error: {message}"
    assert not (tmp_path / "outputs").exists()


def test_slurm_launcher_without_slurm_names_the_setting(env, tmp_path):
    if any(Path(d, "sbatch").exists() for d in os.environ["PATH"].split(":")):
        pytest.skip("Slurm is installed here; tests/test_slurm.py covers it")
    out = gdepth(["sweep", "launcher=slurm", "name=s", *TINY], env, tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        'gdepth: error: Slurm refused the jobs: Could not detect "srun", are you indeed on a '
        "slurm cluster?; change launcher= (no Slurm on this machine: use launcher=local or "
        "launcher=pool)")


@pytest.mark.slow  # two sweeps, each starting a local Ray: ~1 min on 2 cores; .ci/run runs it
def test_ray_runs_the_cells_on_a_local_ray(env, tmp_path):
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        message = "Ray launcher not installed (pip install 'gdepth[ray]')"
        if os.environ.get("CI"):  # .ci/run installs the ray extra: never skip it silently there
            pytest.fail(message)
        pytest.skip(message)
    args = ["sweep", "model=gcn,gcn_res", "depth=2", "launcher=ray", "name=r", *TINY]
    out = gdepth(args, env, tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    found = collect.load(tmp_path / "outputs/sweeps/r")
    assert sorted((r["config"]["model"]["name"], r["status"], r["threads"]) for r in found) == [
        ("gcn", "ok", 1), ("gcn_res", "ok", 1)]
    again = gdepth(args, env, tmp_path, timeout=600)
    assert "2 cells planned: 0 to run, 2 skipped" in again.stderr
    record = json.loads(next((tmp_path / "outputs/sweeps/r/records").glob("*.json")).read_text())
    assert "+launcher=ray" in record["overrides"]


def test_progress_counts_only_this_sweeps_cells_in_a_shared_folder(env, tmp_path):
    """A second sweep into a folder holding other cells counts [1/1], not [3/1]; a resumed
    sweep counts the cells it skipped as done."""
    first = gdepth(["sweep", "depth=2,4", "name=p", *TINY], env, tmp_path)
    assert first.returncode == 0 and "[2/2] csbm gcn·none L=4: ok" in first.stderr
    other = gdepth(["sweep", "depth=8", "name=p", *TINY], env, tmp_path)
    assert other.returncode == 0 and "[1/1] csbm gcn·none L=8: ok" in other.stderr
    next((tmp_path / "outputs/sweeps/p/records").glob("*.json")).unlink()
    again = gdepth(["sweep", "depth=2,4,8", "name=p", *TINY], env, tmp_path)
    assert again.returncode == 0 and "3 cells planned: 1 to run, 2 skipped" in again.stderr
    assert re.search(r"\[3/3\] csbm gcn·none L=\d: ok", again.stderr), again.stderr[-2000:]


def test_progress_of_a_resumed_sweep_counts_rewritten_corrupt_and_failed_records(env, tmp_path):
    """A rerun rewrites a corrupt and a failed record: the count goes [2/3], [3/3], not [1/3]
    for every line (the number of record files does not change)."""
    args = ["sweep", "depth=2,4,8", "name=c", *TINY]
    first = gdepth(args, env, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    folder = tmp_path / "outputs/sweeps/c"
    found = {r["config"]["depth"]: r for r in collect.load(folder)}
    records.record_path(folder, found[4]["key"]).write_text("{")  # corrupt
    records.write(records.record_path(folder, found[8]["key"]),
                  {**found[8], "status": "failed", "error": "boom"})
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 cells planned: 2 to run, 1 skipped" in again.stderr
    lines = re.findall(r"\[\d+/\d+\].*csbm gcn·none L=\d+: ok", again.stderr)
    assert [line.split()[0] for line in lines] == ["[2/3]", "[3/3]"], again.stderr[-2000:]
