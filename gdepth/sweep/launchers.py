"""Launcher support: pool threads, a Slurm launcher that waits for every job, one-line errors.

``configs/launcher/<name>.yaml`` picks a Hydra launcher plugin (``local``: basic, ``pool``:
joblib, ``slurm``: submitit, ``ray``: Ray) and its settings; the CLI turns ``launcher=NAME``
into ``+launcher=NAME``. The Hydra plugin classes live in ``hydra_plugins/gdepth_plugins`` (Hydra
only loads plugins from that namespace) and are thin subclasses of what is written here.

Hydra's submitit launcher collects results job by job and raises at the first job that died
without one (killed, out of time, out of memory), leaving the others unwaited. ``SlurmMixin``
instead waits for every job, writes a ``queued`` marker per submitted cell (``gdepth status``)
and returns the Slurm reason of each dead job, which the sweeper records as a ``failed`` cell.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger("gdepth")

# sbatch/submitit error text → the setting to change.
HINTS = (
    (r"invalid partition", "hydra.launcher.partition (sinfo lists the partitions)"),
    (r"node configuration is not available|More processors requested|CPU count per node"
     r"|Memory specification|gres|Invalid generic resource",
     "hydra.launcher.cpus_per_task / mem_gb / gpus_per_node (more than a node has)"),
    (r"[Ii]nvalid account", "hydra.launcher.account"),
    (r"[Ii]nvalid qos", "hydra.launcher.qos"),
    (r"time limit|Requested time limit", "hydra.launcher.timeout_min"),
    (r"Could not detect \"srun\"|No such file or directory: 'sbatch'",
     "launcher= (no Slurm on this machine: use launcher=local or launcher=pool)"),
)


# squeue reasons of a pending job that can never start → the setting to change.
HOPELESS = {
    "PartitionConfig": "hydra.launcher.cpus_per_task / mem_gb / gpus_per_node (more than a "
                       "node of the partition has)",
    "PartitionNodeLimit": "hydra.launcher.nodes / cpus_per_task",
    "PartitionTimeLimit": "hydra.launcher.timeout_min (above the partition's limit)",
    "BadConstraints": "hydra.launcher.constraint",
    "InvalidAccount": "hydra.launcher.account",
    "InvalidQOS": "hydra.launcher.qos",
}
POLL_S = 2.0


class ChoiceError(ValueError):
    """An unknown ``launcher=`` value, or one whose plugin is not installed."""


def check_choice(name: str, config_dir: str) -> str:
    """``name`` if ``configs/launcher/<name>.yaml`` exists and its plugin is importable."""
    valid = sorted(p.stem for p in Path(config_dir, "launcher").glob("*.yaml"))
    if name not in valid:
        raise ChoiceError(f"unknown launcher '{name}'; valid: {', '.join(valid)}")
    if name == "ray":
        try:
            import hydra_plugins.hydra_ray_launcher  # noqa: F401
        except ImportError:
            raise ChoiceError("launcher=ray needs Hydra's Ray launcher: "
                              "pip install 'gdepth[ray]'") from None
    return name


def unwritable(folder: Path) -> str | None:
    """Why the sweep/run folder ``folder`` cannot be written, or None if it can."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"cannot write to '{folder}': '{probe}' is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        test = folder / f".write-test-{os.getpid()}"
        test.write_text("")
        test.unlink()
    except OSError as err:
        return f"cannot write to '{folder}': {err.strerror or err}"
    return None


class SubmissionError(RuntimeError):
    """The scheduler refused the jobs; the message is one line naming the setting to change."""


def threads_per_job(n_jobs: Any) -> int:
    """Torch threads for each of ``n_jobs`` pool processes: max(1, usable CPUs // n_jobs)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = int(n_jobs) if n_jobs not in (None, "", -1, "-1") else (cpus or 1)
    return max(1, (cpus or 1) // max(1, n))


def register_resolvers() -> None:
    """``${gdepth_threads_per_job:N}`` for ``configs/launcher/pool.yaml`` (idempotent)."""
    if not OmegaConf.has_resolver("gdepth_threads_per_job"):
        OmegaConf.register_new_resolver("gdepth_threads_per_job", threads_per_job)


def one_line(err: BaseException | str) -> str:
    """The informative line of an error (sbatch's ``error:`` line, else the last line)."""
    text = str(err).strip() or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln and "Batch job submission failed" not in ln]
    return (errors or lines or [text])[0][:300]


def submission_message(err: BaseException) -> str:
    """``Slurm refused the jobs: <sbatch's error> — change <setting>``."""
    text = str(err)
    hint = next((h for pattern, h in HINTS if re.search(pattern, text)), None)
    line = one_line(err).replace("sbatch: error: ", "")
    return f"Slurm refused the jobs: {line}" + (f"; change {hint}" if hint else "")


def hopeless(array_id: str) -> str | None:
    """The one-line error if the array's pending jobs can never start (squeue's reason)."""
    out = subprocess.run(["squeue", "-h", "-o", "%T %r", "-j", array_id], capture_output=True,
                         text=True, timeout=60)
    for line in out.stdout.splitlines():
        state, _, reason = line.partition(" ")
        if state == "PENDING" and reason in HOPELESS:
            return (f"Slurm cannot run the jobs (pending, reason {reason}); change "
                    f"{HOPELESS[reason]}")
    return None


def wait_all(jobs: list[Any]) -> None:
    """Wait for every job; cancel the array and raise ``SubmissionError`` if it cannot start."""
    array_id = jobs[0].job_id.split("_")[0]
    while not all(job.done() for job in jobs):
        problem = hopeless(array_id)
        if problem:
            subprocess.run(["scancel", array_id], capture_output=True, timeout=60)
            raise SubmissionError(problem)
        time.sleep(POLL_S)


def dead_job_reason(job: Any, err: BaseException) -> str:
    """Why a Slurm job ended without a result, from sacct's state and the job's error stream."""
    try:
        state = job.state  # sacct: TIMEOUT, CANCELLED by 0, OUT_OF_MEMORY, FAILED, NODE_FAIL…
    except Exception:  # no accounting: the state is unknown
        state = "UNKNOWN"
    text = str(err)
    detail = next((ln.strip() for ln in reversed(text.splitlines())
                   if re.search(r"\*\*\*|oom|Killed|CANCELLED|TIME LIMIT|not requeued", ln)), "")
    reason = f"Slurm job {job.job_id} ended {state} without a result"
    return f"{reason} ({detail})" if detail else reason


class SlurmMixin:
    """``launch`` of hydra-submitit-launcher 1.2, except that every job is waited for.

    Mixed into its ``SlurmLauncher``; the sweeper sets ``gdepth_keys`` (overrides → cell key)
    before launching and reads ``gdepth_failures`` (cell key → reason) afterwards.
    """

    gdepth_keys: dict[tuple[str, ...], str]
    gdepth_failures: dict[str, str]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Preempted or timed out (submitit's USR2): requeue; the cell resumes.

        The requeued job runs the cell again (``cell.run_cell`` skips it if its record got
        written meanwhile): seeds that finished keep their results and the running seed
        continues from its last training checkpoint (``checkpoint_every`` epochs,
        :mod:`gdepth.sweep.checkpoint`; the seed-batched engine restarts its batch). The marker says
        ``queued`` until the requeued job starts.
        """
        from gdepth.sweep import markers

        markers.requeued()
        return super().checkpoint(*args, **kwargs)  # type: ignore[misc]

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[Any]:
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import JobReturn, JobStatus, filter_overrides
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        from gdepth.sweep import markers

        params: dict[str, Any] = dict(self.params)  # type: ignore[attr-defined]
        init = {"folder": params.pop("submitit_folder"),
                f"{self._EXECUTOR}_max_num_timeout": params.pop("max_num_timeout", 0)}  # type: ignore[attr-defined]
        try:
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)  # type: ignore[attr-defined]
        except RuntimeError as err:
            raise SubmissionError(submission_message(err)) from err
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v  # type: ignore[attr-defined]
                                      for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # type: ignore[attr-defined]
        sweep_dir.mkdir(parents=True, exist_ok=True)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                               Singleton.get_state()))
        try:
            jobs = executor.map_array(self, *zip(*job_params, strict=True))
        except (submitit.core.utils.FailedJobError, OSError) as err:
            raise SubmissionError(submission_message(err)) from err
        keys = [getattr(self, "gdepth_keys", {}).get(tuple(o)) for o in job_overrides]
        for key, job in zip(keys, jobs, strict=True):
            if key:
                markers.mark_queued(sweep_dir, key, job.job_id)
        log.info("submitted %d Slurm jobs (%s); `gdepth status %s` shows their progress",
                 len(jobs), jobs[0].job_id.split("_")[0] if jobs else "-", sweep_dir)
        try:
            wait_all(jobs)
        except SubmissionError:
            for key in keys:
                if key:
                    markers.marker_path(sweep_dir, key).unlink(missing_ok=True)
            raise
        self.gdepth_failures = {}
        results = []
        for key, job in zip(keys, jobs, strict=True):
            try:
                results.append(job.results()[0])
            except Exception as err:  # died without a result: record why, wait for the rest
                reason = dead_job_reason(job, err)
                log.error("%s", reason)
                self.gdepth_failures[key or job.job_id] = reason
                ret = JobReturn()
                ret.status, ret._return_value = JobStatus.FAILED, err
                results.append(ret)
        return results
