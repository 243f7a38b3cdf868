"""Faults on a real machine: kill -9 of a cell and of the launcher, concurrent writers, a cell
that raises or runs out of GPU memory, a full disk, an unwritable folder. Nothing finished is
ever lost, nothing half-written is ever read, and the table marks every cell."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import test_launchers
from test_launchers import GDEPTH, TINY, gdepth, snapshot

from gdepth.sweep import collect, layout, markers, records, status

env = test_launchers.env  # the fixture: one thread, offline, a private data cache

# The real CLI with one function replaced, in a fresh process (the basic launcher runs the
# cells in that process, so the replacement is what the cells call).
PATCHED = ("import sys, torch\nfrom gdepth import engine\nfrom gdepth.sweep import records\n"
           "{patch}\nfrom gdepth.cli import main\nsys.exit(main(sys.argv[1:]))")


def patched(patch: str, args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PATCHED.format(patch=patch), *args], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def wait_for(predicate, timeout: float = 120.0, every: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def live_markers(folder: Path) -> list[dict]:
    out = []
    for path in (folder / layout.MARKERS).glob("*.json"):
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if marker.get("state") == "running" and markers.marker_state(marker)[0]:
            out.append(marker)
    return out


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), to clean up after a killed launcher."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


@pytest.mark.slow  # pool start-up dominates: ~30 s idle, minutes on a busy box
def test_kill_9_of_a_cell_in_the_pool_reruns_it_and_the_sweep_finishes(env, tmp_path):
    args = ["sweep", "depth=8,16", "launcher=pool", "name=k", "seeds=1", "train.epochs=150",
            "dataset.num_nodes=300", "progress=false"]
    proc = subprocess.Popen([*GDEPTH, *args], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / "outputs/sweeps/k"
    victim = wait_for(lambda: live_markers(folder))[0]
    assert victim["pid"] != proc.pid  # a pool worker, not the launching process
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.time()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "the launcher stopped: TerminatedWorkerError" in err
    assert re.search(r"launching the \d cells without a record once more", err)
    found = {r["key"]: r for r in collect.load(folder)}
    assert len(found) == 2 and {r["status"] for r in found.values()} == {"ok"}
    rerun = found[victim["key"]]
    started = time.mktime(time.strptime(rerun["started_at"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert started - time.timezone >= int(killed_at) - 1  # trained again after the kill
    assert not list((folder / "records").glob(".*.tmp")) and not live_markers(folder)


@pytest.mark.slow  # pool start-up dominates: ~30 s idle, minutes on a busy box
def test_kill_9_of_the_launcher_then_the_same_command_resumes(env, tmp_path):
    args = ["sweep", "model=gcn,gcn_res", "depth=2,4,8", "launcher=pool", "name=l", "seeds=1",
            "train.epochs=60", "dataset.num_nodes=300", "progress=false"]
    proc = subprocess.Popen([*GDEPTH, *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "outputs/sweeps/l"
    wait_for(lambda: len(list((folder / "records").glob("*.json"))) >= 2, every=0.05)
    workers = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:  # the pool's workers finish the cell they hold, then idle (loky: 300 s) and exit
        wait_for(lambda: not live_markers(folder), timeout=120)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    before = snapshot(folder)
    assert 2 <= len(before) < 6
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    todo = 6 - len(before)
    assert f"6 cells planned: {todo} to run, {len(before)} skipped" in again.stderr
    assert len(re.findall(r"csbm gcn\w*·none L=\d+: ok test", again.stderr)) == todo
    after = snapshot(folder)
    assert len(after) == 6 and {k: after[k] for k in before} == before  # not retrained


@pytest.mark.slow  # pool start-up dominates: ~30 s idle, minutes on a busy box
def test_two_sweeps_and_four_workers_into_one_folder_lose_and_duplicate_nothing(env, tmp_path):
    """A 4-worker pool sweep (8 cells) and a local sweep (5 cells, 4 shared) at once."""
    pool = ["sweep", "model=gcn,gcn_res", "depth=2,4,8,16", "launcher=pool",
            "hydra.launcher.n_jobs=4", "name=c", *TINY]
    local = ["sweep", "model=gcn", "depth=2,4,8,16,32", "name=c", *TINY]
    folder = tmp_path / "outputs/sweeps/c"
    bad: list[str] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:  # what a concurrent `gdepth table` sees: complete records only
        while not stop.is_set():
            for path in list((folder / "records").glob("*.json")):
                record, problem = records.inspect(path)
                if problem and path.exists():
                    bad.append(problem)
                reads[0] += record is not None
            time.sleep(0.01)

    thread = threading.Thread(target=reader)
    thread.start()
    procs = [subprocess.Popen([*GDEPTH, *a], env=env, cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for a in (pool, local)]
    outs = [p.communicate(timeout=600) for p in procs]
    stop.set()
    thread.join()
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert bad == [] and reads[0] > 0
    files = sorted(p.stem for p in (folder / "records").glob("*.json"))
    found = collect.load(folder)
    assert len(files) == len(found) == 9  # 8 + 1: one record per cell
    assert sorted((r["config"]["model"]["name"], r["config"]["depth"]) for r in found) == sorted(
        [(m, d) for m in ("gcn", "gcn_res") for d in (2, 4, 8, 16)] + [("gcn", 32)])
    assert {r["status"] for r in found} == {"ok"}
    assert status.summary(status.cell_states(folder)) == {"done": 9, "running": 0,
                                                          "failed": 0, "corrupt": 0,
                                                          "missing": 0}
    assert not list((folder / "records").glob(".*.tmp"))


def test_cuda_oom_and_a_raising_cell_are_recorded_and_the_sweep_goes_on(env, tmp_path):
    patch = ("fit = engine.fit_batched\n"
             "def boom(model, graphs, adj, cfg, seeds, *args, **kw):\n"
             "    if cfg.lr == 0.02:\n"
             "        raise torch.cuda.OutOfMemoryError(\n"
             "            'CUDA out of memory. Tried to allocate 2 GiB')\n"
             "    if cfg.lr == 0.03:\n"
             "        raise ValueError('bad things')\n"
             "    return fit(model, graphs, adj, cfg, seeds, *args, **kw)\n"
             "engine.fit_batched = boom")
    # engine=loop: the patched loop trains every seed in batches of one
    out = patched(patch, ["sweep", "train.lr=0.01,0.02,0.03", "name=o", "engine=loop", *TINY],
                  env, tmp_path)
    assert out.returncode == 1
    found = {r["config"]["train"]["lr"]: r for r in collect.load(tmp_path / "outputs/sweeps/o")}
    assert {lr: r["status"] for lr, r in found.items()} == {0.01: "ok", 0.02: "oom",
                                                            0.03: "failed"}
    assert found[0.02]["error"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"
    assert found[0.03]["error"] == "ValueError: bad things"
    assert "csbm gcn·none L=2: oom (OutOfMemoryError: CUDA out of memory." in out.stderr
    assert re.search(r"\| gcn·none lr=0\.02 +\| – +\| oom +\|", out.stdout)  # – : no collapse
    assert re.search(r"\| gcn·none lr=0\.03 +\| – +\| failed +\|", out.stdout)
    assert "gdepth: not every cell is done (1 failed, 1 oom)" in out.stderr


def test_full_disk_on_record_write_is_one_line_and_exit_1(env, tmp_path):
    patch = ("import errno\n"
             "write = records.write\n"
             "def full(path, record):\n"
             "    if 'records' in str(path):\n"
             "        raise records.RecordWriteError(errno.ENOSPC, f'cannot write {path}: '\n"
             "                                       'No space left on device')\n"
             "    write(path, record)\n"
             "records.write = full")
    out = patched(patch, ["sweep", "depth=2,4", "name=f", *TINY], env, tmp_path)
    assert out.returncode == 1
    lines = re.findall(r"job depth=\d .* failed: RecordWriteError: \[Errno 28\] cannot write "
                       r"\S+/records/\w+\.json: No space left on device", out.stderr)
    assert len(lines) == 2  # each cell says so; the sweep goes on to the next
    assert "gdepth: not every cell is done (2 failed)" in out.stderr  # not "missing": it ran
    assert "| failed" in out.stdout  # the table marks the planned cells


@pytest.mark.slow  # three CLI runs: ~20 s on 2 cores
def test_records_folder_unwritable_mid_sweep_status_says_the_write_failed(env, tmp_path):
    """The first record is written, then ``records/`` refuses writes (as after a chmod; made to
    fail here, since the tests may run as root, whom a chmod does not stop). ``gdepth status``
    says the record could not be written and why, not ``missing (not started)``; the same
    command then reruns that cell."""
    patch = ("import errno\n"
             "from pathlib import Path\n"
             "write = records.write\n"
             "def denied(path, record):\n"
             "    folder = Path(path).parent\n"
             "    if folder.name == 'records' and any(folder.glob('*.json')):\n"
             "        raise records.RecordWriteError(errno.EACCES, f'cannot write {path}: '\n"
             "                                       'Permission denied')\n"
             "    write(path, record)\n"
             "records.write = denied")
    args = ["sweep", "depth=2,4", "name=w", *TINY]
    out = patched(patch, args, env, tmp_path)
    assert out.returncode == 1
    assert re.search(r"\w+: the cell ended but its record could not be written: cannot write "
                     r"\S+/records/\w+\.json: Permission denied", out.stderr), out.stderr[-2000:]
    assert "gdepth: not every cell is done (1 failed)" in out.stderr
    folder = tmp_path / "outputs/sweeps/w"
    st = gdepth(["status", str(folder)], env, tmp_path)
    assert st.returncode == 1
    assert re.search(r"^failed +csbm gcn·none L=4 +\w+  \(the cell ended but its record could "
                     r"not be written: cannot write \S+/records/\w+\.json: Permission denied\)$",
                     st.stdout, re.M), st.stdout
    assert st.stdout.splitlines()[-1] == "2 cells: 1 done, 0 running, 1 failed, 0 missing"
    again = gdepth(args, env, tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 cells planned: 1 to run, 1 skipped" in again.stderr
    assert status.summary(status.cell_states(folder)) == {"done": 2, "running": 0, "failed": 0,
                                                          "corrupt": 0, "missing": 0}
    assert not list((folder / layout.MARKERS).glob("*.json"))


def test_unwritable_output_folder_is_one_line_and_exit_1(env, tmp_path):
    (tmp_path / "taken").write_text("a file where the output folder should be")
    out = gdepth(["sweep", "out_dir=taken/out", "name=u", *TINY], env, tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == ("gdepth: error: cannot write to 'taken/out/sweeps/u': 'taken' "
                                  "is a file, not a folder; choose another out_dir=... or name=...")
