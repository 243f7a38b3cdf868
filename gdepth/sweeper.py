"""The resuming sweeper: plan every cell, launch only those not done, record what died.

Hydra's basic sweeper launches every combination; a re-run of a 64-cell Slurm sweep would
submit 64 jobs that each find their record and exit. This one (``hydra/sweeper=gdepth``, set by
the CLI) composes every job's config first, as the basic sweeper does to validate them, and:

1. writes the cells into ``plan.json`` (``gdepth.plan``), so the folder knows the whole sweep;
2. skips a cell whose record is ``ok``/``diverged`` or that runs elsewhere (a live marker, e.g.
   a Slurm job of an earlier, killed launch), logging one ``skip`` line each;
3. launches the rest with whatever launcher was chosen, numbering the new job folders after
   the existing ones (``jobs/<n>``), so a resumed sweep never overwrites an earlier job's logs;
4. if the launcher itself breaks (a pool worker killed with ``kill -9`` takes the pool down),
   launches the cells still without a record once more; a cell whose process died twice, or
   whose Slurm job ended without a result (the launcher reports the reason), gets a ``failed``
   record that says why, and the sweep goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gdepth import plan, records, status
from gdepth.launchers import SubmissionError, one_line

log = logging.getLogger("gdepth")
# Read by the CLI after the sweep: a one-line launch error, if the launcher refused the jobs.
LAST: dict[str, Any] = {}


def failed_record(key: str, config: dict[str, Any], error: str) -> dict[str, Any]:
    """A ``failed`` record for a cell whose job ended without writing one."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    return {"schema": records.SCHEMA_VERSION, "key": key, "status": "failed", "error": error,
            "config": config, "overrides": [], "seeds": [], "summary": {}, "started_at": None,
            "finished_at": now, "written_by": "sweeper"}


def _next_job_number(sweep_dir: Path) -> int:
    numbers = [int(p.name) for p in (sweep_dir / "jobs").glob("*") if p.name.isdigit()]
    return max(numbers, default=-1) + 1


class ResumeSweeper(BasicSweeper):
    """Hydra's basic sweeper (same grammar, same batches) that resumes from the sweep folder."""

    def __init__(self, max_batch_size: int | None = None,
                 params: dict[str, str] | None = None) -> None:
        # BasicSweeper.__init__ calls super(BasicSweeper, self), which fails when Hydra's plugin
        # scan has loaded a second copy of its module; set its fields here instead.
        self.overrides = None
        self.batch_index = 0
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.hydra_context = None
        self.config = None
        self.launcher = None

    def _plan(self, jobs: list[list[str]]) -> dict[tuple[str, ...], tuple[str, dict]]:
        assert self.hydra_context is not None and self.config is not None
        cells = {}
        for job in jobs:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
            cells[tuple(job)] = plan.cell_identity(cfg)
        return cells

    def _launch(self, batch: list[list[str]], sweep_dir: Path,
                cells: dict[tuple[str, ...], tuple[str, dict]]) -> Exception | None:
        assert self.launcher is not None
        self.launcher.gdepth_keys = {k: v[0] for k, v in cells.items()}  # type: ignore[attr-defined]
        try:
            results = self.launcher.launch(batch, initial_job_idx=_next_job_number(sweep_dir))
        except SubmissionError:
            raise
        except Exception as err:  # the launcher broke (e.g. a pool worker was killed)
            log.error("the launcher stopped: %s: %s", type(err).__name__, one_line(err))
            return err
        failures = getattr(self.launcher, "gdepth_failures", {})
        for ret in results:  # a task that raised outside the cell (e.g. the disk is full)
            if ret.status.name == "FAILED" and ret.overrides is not None:
                log.error("job %s failed: %s: %s", " ".join(ret.overrides),
                          type(ret._return_value).__name__, one_line(ret._return_value))
        for key, reason in failures.items():
            config = next((c for k, c in cells.values() if k == key), None)
            path = records.record_path(sweep_dir, key)
            if config is not None and records.read(path) is None:
                records.write(path, failed_record(key, config, reason))
                status.marker_path(sweep_dir, key).unlink(missing_ok=True)
        return None

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        jobs = [job for batch in self.overrides for job in batch]
        cells = self._plan(jobs)
        plan.add(sweep_dir, {key: {"label": plan.label(config), "overrides": list(job),
                                   "config": config} for job, (key, config) in cells.items()})
        LAST.update(dir=sweep_dir, keys=[key for key, _ in cells.values()])
        todo = []
        for job in jobs:
            key, config = cells[tuple(job)]
            state = status._state(sweep_dir, key, config)
            if state.status in records.DONE or state.status == "running":
                why = f"record is {state.status}" if state.status != "running" else state.detail
                log.info("skip %s: %s (%s)", plan.label(config), why, key)
            else:
                todo.append(job)
        log.info("%d cells planned: %d to run, %d skipped", len(jobs), len(todo),
                 len(jobs) - len(todo))
        size = self.max_batch_size or len(todo) or 1
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            try:
                crash = self._launch(batch, sweep_dir, cells)
                if crash is not None:
                    self._retry(batch, sweep_dir, cells, crash)
            except SubmissionError as err:  # the CLI prints it as its one-line error
                LAST["launch_error"] = str(err)
                return []
        return []

    def _retry(self, batch: list[list[str]], sweep_dir: Path,
               cells: dict[tuple[str, ...], tuple[str, dict]], crash: Exception) -> None:
        """Launch the batch's cells still without a record once more; record those that die."""
        def unfinished() -> list[list[str]]:
            return [job for job in batch if records.read(records.record_path(
                sweep_dir, cells[tuple(job)][0])) is None
                and status._state(sweep_dir, cells[tuple(job)][0], None).status != "running"]

        again = unfinished()
        if again:
            log.info("launching the %d cells without a record once more", len(again))
            crash = self._launch(again, sweep_dir, cells) or crash
        for job in unfinished():
            key, config = cells[tuple(job)]
            reason = (f"the cell's process died without a result twice (killed, e.g. by kill -9 "
                      f"or the OOM killer); launcher: {type(crash).__name__}: {one_line(crash)}")
            records.write(records.record_path(sweep_dir, key), failed_record(key, config, reason))
            status.marker_path(sweep_dir, key).unlink(missing_ok=True)
