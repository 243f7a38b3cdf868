"""A cell's live marker: ``running/<key>.json``, what tells `gdepth status` that a job runs it.

A job writes the marker when its cell starts (host, pid, Slurm job id, start time) and a heartbeat
thread refreshes it every ``GDEPTH_HEARTBEAT_S`` seconds (30), with the training's progress
(:mod:`gdepth.train_progress`); it is removed when the cell ends. The Slurm launcher writes one
with ``state: queued`` when it submits a job, and a requeued job turns its own back to queued.

A marker is live if its process is alive (same host), or its heartbeat is recent (other hosts:
younger than 3 beats), or, for a queued Slurm job, if ``squeue`` still lists the job. A job does
not start a cell whose live marker belongs to another process: :class:`RunningElsewhere`. A job
whose record could not be written leaves its marker with ``state: write_failed`` and the error.

Written by hand: Hydra's launchers and submitit know their own jobs, not a cell that another
sweep into the same folder, or a killed launcher's orphan, is running; only the folder is shared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gdepth import train_progress
from gdepth.sweep import layout, plan, records

HEARTBEAT_ENV = "GDEPTH_HEARTBEAT_S"
WRITE_FAILED = "write_failed"  # the state of a marker whose job could not write its record
log = logging.getLogger("gdepth")


class RunningElsewhere(RuntimeError):
    """The cell's marker is live and belongs to another process: this job does not start it."""


def heartbeat_s() -> float:
    return float(os.environ.get(HEARTBEAT_ENV, "30") or 30)


def marker_path(sweep_dir: str | Path, key: str) -> Path:
    return layout.marker_path(sweep_dir, key)


def mark_queued(sweep_dir: str | Path, key: str, job_id: str) -> None:
    """Note that the cell ``key`` was submitted as Slurm job ``job_id`` (not yet started)."""
    records.write(marker_path(sweep_dir, key), {
        "key": key, "state": "queued", "slurm_job_id": job_id, "host": platform.node(),
        "pid": os.getpid(), "heartbeat": time.time(), "beat_s": heartbeat_s()})


# The marker of the cell this process runs now: (path, marker), for ``requeued``.
CURRENT: dict[str, Any] = {}


def requeued() -> None:
    """Turn this process's running marker into a ``queued`` one (Slurm requeued its job)."""
    if CURRENT:
        marker = CURRENT["marker"]
        marker.update(state="queued", requeued=True, heartbeat=time.time())
        with contextlib.suppress(OSError):
            records.write(CURRENT["path"], marker)


def _ours(marker: dict[str, Any]) -> bool:
    """Whether a marker was written for this process: by it, or as the ``queued`` marker of the
    Slurm job it is (submitted, or requeued)."""
    job = records.slurm_job_id()
    if job and str(marker.get("slurm_job_id")) == job:
        return True
    return marker.get("host") == platform.node() and marker.get("pid") == os.getpid()


def _claim(path: Path, marker: dict[str, Any]) -> None:
    """Write the running ``marker`` at ``path``, unless a live marker of another process is
    there (``RunningElsewhere``). Under a lock, so two jobs starting one cell at once cannot
    both claim it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with plan.locked(path.parent, layout.CLAIM_LOCK):
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and old.get("state") in ("running", "queued") and \
                not _ours(old):
            alive, detail = marker_state(old)
            if alive:
                raise RunningElsewhere(f"running elsewhere ({detail}), not started again")
        records.write(path, marker)


def _write_failed(path: Path, marker: dict[str, Any], err: OSError) -> None:
    """Leave the marker of a cell whose record could not be written, with the error, and log it."""
    error = err.strerror or str(err)
    log.error("%s: the cell ended but its record could not be written: %s; `gdepth status` "
              "shows it, the same command runs it again", marker["key"], error)
    marker.update(state=WRITE_FAILED, error=error, heartbeat=time.time())
    try:
        records.write(path, marker)
    except OSError as again:
        log.error("%s: no marker either: %s", marker["key"], again.strerror or again)


@contextlib.contextmanager
def running(sweep_dir: str | Path, key: str) -> Iterator[None]:
    """Mark the cell ``key`` as running (refreshed by a heartbeat thread) while the block runs.

    Raises ``RunningElsewhere`` (the block does not run) if another process's live marker is
    there. If the block fails to write the record (``records.RecordWriteError``), the marker
    stays, as ``write_failed`` with the error, and the error goes on.
    """
    path, beat = marker_path(sweep_dir, key), heartbeat_s()
    marker = {"key": key, "state": "running", "slurm_job_id": records.slurm_job_id(),
              "host": platform.node(), "pid": os.getpid(), "started": time.time(),
              "heartbeat": time.time(), "beat_s": beat}
    stop = threading.Event()

    def beat_loop() -> None:
        while not stop.wait(beat):
            marker["heartbeat"] = time.time()
            marker["progress"] = train_progress.current()  # epoch / total, best val
            with contextlib.suppress(OSError):
                records.write(path, marker)

    try:
        _claim(path, marker)
    except OSError:  # an unwritable folder fails the record write, with the reason, later
        yield
        return
    thread = threading.Thread(target=beat_loop, name="gdepth-heartbeat", daemon=True)
    thread.start()
    CURRENT.update(path=path, marker=marker)
    unwritten: OSError | None = None
    try:
        yield
    except records.RecordWriteError as err:
        unwritten = err
        raise
    finally:
        stop.set()
        thread.join()
        CURRENT.clear()
        if unwritten is not None:
            _write_failed(path, marker, unwritten)
        elif not marker.get("requeued"):  # a requeued job's cell is queued again, not gone
            path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _in_squeue(job_id: str) -> bool | None:
    if not shutil.which("squeue"):
        return None
    out = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", job_id], capture_output=True,
                         text=True, timeout=30)
    return out.returncode == 0 and bool(out.stdout.strip())


def marker_state(marker: dict[str, Any]) -> tuple[bool, str]:
    """``(alive, detail)`` of a running/queued marker."""
    job = marker.get("slurm_job_id")
    where = f"{marker.get('host')} pid {marker.get('pid')}" + (f", Slurm job {job}" if job
                                                               else "")
    age = time.time() - float(marker.get("heartbeat", 0))
    if marker.get("state") == "queued":
        alive = _in_squeue(str(job)) if job else None
        return alive is not False, f"queued as Slurm job {job}"
    if marker.get("host") == platform.node():
        alive = _pid_alive(int(marker.get("pid", 0)))
    else:
        alive = age < 3 * float(marker.get("beat_s", heartbeat_s()))
    if alive:
        progress = train_progress.describe(marker.get("progress"))  # "" before an epoch ends
        return True, f"on {where}, heartbeat {age:.0f} s ago" + (f"; {progress}" if progress
                                                                 else "")
    return False, f"its process died without a result ({where}, last heartbeat {age:.0f} s ago)"
