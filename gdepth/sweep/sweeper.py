"""The resuming sweeper: plan every cell, launch only those not done, record what died.

Hydra's basic sweeper launches every combination; a re-run of a 64-cell Slurm sweep would
submit 64 jobs that each find their record and exit. This one (``hydra/sweeper=gdepth``, set by
the CLI) composes every job's config first, as the basic sweeper does to validate them, and:

1. writes the cells into ``plan.json`` (``gdepth.sweep.plan``), so the folder knows the whole sweep,
   with this launch's entry (an id, the units it launches: ``gdepth.sweep.progress`` counts them);
2. skips a cell whose record is ``ok``/``diverged`` or that runs elsewhere (a live marker, e.g.
   a Slurm job of an earlier, killed launch, or a job of another sweep into the same folder),
   logging one ``skip`` line each; a job that finds its cell started elsewhere meanwhile does
   not start it (``markers.RunningElsewhere``) and is logged as a skip too;
3. launches the rest with whatever launcher was chosen, in job folders ``jobs/<n>`` numbered
   after every existing and reserved one (``plan.reserve_jobs``, under the plan's lock), so a
   resumed sweep never overwrites an earlier job's logs and two sweeps started together never
   share a folder. A cell with ``seeds_per_job: k`` is launched as ceil(seeds/k) jobs, one per
   part (``gdepth.sweep.parts``), each with its ``seed_range``; a part is skipped when done or
   running, so a re-run launches only the missing or failed parts;
4. if the launcher itself breaks (a pool worker killed with ``kill -9`` takes the pool down),
   launches the cells still without a record once more; a cell whose process died twice, or
   whose Slurm job ended without a result (the launcher reports the reason), gets a ``failed``
   record that says why, and the sweep goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from gdepth.search import study as search_study
from gdepth.sweep import layout, markers, parts, plan, progress, records, status
from gdepth.sweep.launchers import SubmissionError, one_line

log = logging.getLogger("gdepth")
# Read by the CLI after the sweep: a one-line launch error, if the launcher refused the jobs.
LAST: dict[str, Any] = {}


def failed_record(key: str, config: dict[str, Any], error: str,
                  part: parts.Part | None = None) -> dict[str, Any]:
    """A ``failed`` record for a cell (or a part of it) whose job ended without writing one."""
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    record = {"schema": records.SCHEMA_VERSION, "key": key, "status": "failed", "error": error,
              "config": config, "overrides": [], "seeds": [], "summary": {},
              "started_at": None, "finished_at": now, "written_by": "sweeper"}
    if part is not None:
        record["seed_range"] = list(part)
    return record


def _searched(config: dict[str, Any]) -> bool:
    """Whether a cell is tuned by a search (``search=<name>``, not ``none``)."""
    return (config.get("search") or {}).get("name", "none") != "none"


def _entries(cells: dict[tuple[str, ...], tuple[str, dict, list[parts.Part] | None]],
             search: str | None = None) -> dict[str, dict[str, Any]]:
    """``plan.json`` entries of planned cells; ``search``: the study key of the search that
    launched them (its trials and final), so a table leaves out a trial still in flight."""
    return {key: {"label": plan.label(config), "overrides": list(job), "config": config,
                  **({"parts": [list(p) for p in split]} if split else {}),
                  **({"search": search} if search else {})}
            for job, (key, config, split) in cells.items()}


@dataclasses.dataclass
class Unit:
    """One job to launch: a whole cell, or one part of a cell split into seed jobs."""

    job: list[str]  # the Hydra overrides (a part's end with its seed_range=[lo,hi])
    name: str  # its record and marker name: the key, or <key>.seeds-<lo>-<hi>
    key: str
    config: dict[str, Any]
    part: parts.Part | None = None

    def record(self, error: str) -> dict[str, Any]:
        return failed_record(self.key, self.config, error, self.part)


def _record_failed(sweep_dir: Path, unit: Unit, reason: str) -> None:
    """Write the ``failed`` record of a unit whose job died; log it if even that fails."""
    try:
        records.write(records.record_path(sweep_dir, unit.name), unit.record(reason))
    except records.RecordWriteError as err:
        log.error("%s: %s (%s)", unit.name, reason, err.strerror or err)
        return
    markers.marker_path(sweep_dir, unit.name).unlink(missing_ok=True)


def _refused(value: Any) -> bool:
    """Whether a job's result says its cell runs elsewhere (``markers.RunningElsewhere``)."""
    return isinstance(value, markers.RunningElsewhere) or \
        type(value).__name__ == markers.RunningElsewhere.__name__  # a second copy of the module


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
        self.launch_id = ""  # this launch's entry in plan.json (set by ``sweep``)
        self.refused: set[str] = set()  # units whose job found them running elsewhere

    def _plan(self, jobs: list[list[str]]
              ) -> dict[tuple[str, ...], tuple[str, dict, list[parts.Part] | None]]:
        """Each job's cell: its key, identity config and parts (None: one job)."""
        assert self.hydra_context is not None and self.config is not None
        cells = {}
        for job in jobs:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
            key, config = plan.cell_identity(cfg, list(job))
            cells[tuple(job)] = (key, config, parts.ranges(int(cfg.seeds),
                                                           cfg.get("seeds_per_job")))
        return cells

    def _units(self, sweep_dir: Path, job: list[str], key: str, config: dict,
               split: list[parts.Part] | None) -> list[Unit]:
        """The jobs the cell still needs (logging a ``skip`` line for what it does not)."""
        label = plan.label(config)
        state = status._state(sweep_dir, key, config, split)
        whole = status._unit_state(sweep_dir, key, config)
        if state.status in records.DONE:
            log.info("skip %s: record is %s (%s)", label, state.status, key)
            return []
        running = whole if whole.status == "running" else state
        if running.status == "running" and (split is None or running is whole):
            log.info("skip %s: running elsewhere (%s) (%s)", label, running.detail, key)
            return []
        if split is None:
            return [Unit(list(job), key, key, config)]
        todo = []
        for part in split:
            found = status.part_state(sweep_dir, key, part, config)
            name = parts.unit(key, part)
            if found.status in records.DONE or found.status == "running":
                why = (f"record is {found.status}" if found.status in records.DONE
                       else f"running elsewhere ({found.detail})")
                log.info("skip %s %s: %s (%s)", label, parts.label(part), why, name)
            else:
                todo.append(Unit([*job, f"seed_range=[{part[0]},{part[1]}]"], name, key,
                                 config, part))
        return todo

    def _launch(self, batch: list[Unit], sweep_dir: Path) -> Exception | None:
        assert self.launcher is not None
        self.launcher.gdepth_keys = {tuple(u.job): u.name for u in batch}  # type: ignore[attr-defined]
        first = plan.reserve_jobs(sweep_dir, len(batch), self.launch_id)
        try:
            results = self.launcher.launch([u.job for u in batch], initial_job_idx=first)
        except SubmissionError:
            raise
        except Exception as err:  # the launcher broke (e.g. a pool worker was killed)
            log.error("the launcher stopped: %s: %s", type(err).__name__, one_line(err))
            return err
        failures = getattr(self.launcher, "gdepth_failures", {})
        units = {tuple(u.job): u for u in batch}
        for ret in results:  # a task that raised outside the cell (e.g. the disk is full)
            if ret.status.name != "FAILED" or ret.overrides is None:
                continue
            unit = units.get(tuple(ret.overrides))
            if _refused(ret._return_value) and unit is not None:
                self.refused.add(unit.name)  # the job found a live marker of another process
                where = f" {parts.label(unit.part)}" if unit.part else ""
                log.info("skip %s%s: %s (%s)", plan.label(unit.config), where,
                         one_line(ret._return_value), unit.name)
                continue
            log.error("job %s failed: %s: %s", " ".join(ret.overrides),
                      type(ret._return_value).__name__, one_line(ret._return_value))
        for name, reason in failures.items():
            unit = next((u for u in batch if u.name == name), None)
            path = records.record_path(sweep_dir, name)
            if unit is not None and records.read(path) is None:
                _record_failed(sweep_dir, unit, reason)
        return None

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        LAST.clear()  # one sweep per process in the CLI; tests run several
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / layout.MULTIRUN)
        jobs = [job for batch in self.overrides for job in batch]
        try:
            cells = self._plan(jobs)
        except ValueError as err:  # e.g. seeds_per_job=0: the CLI prints it as one line
            LAST["launch_error"] = str(err)
            return []
        # a cell with search=<name> is not run itself: its study runs trials, then its best
        searched = {job: cell for job, cell in cells.items() if _searched(cell[1])}
        cells = {job: cell for job, cell in cells.items() if job not in searched}
        jobs = [job for job in jobs if tuple(job) in cells]
        todo = self._todo(sweep_dir, jobs, cells)
        # this launch in plan.json: its id, and its units with their record's mtime now, from
        # which the jobs count their progress (gdepth.sweep.progress) and reserve their job folders
        self.launch_id = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        self.refused = set()
        units = {u.name: progress.record_mtime(sweep_dir, u.name) for u in todo}
        plan.add(sweep_dir, _entries(cells), launch={"launch": self.launch_id, "units": units})
        LAST.update(dir=sweep_dir, keys=[key for key, _, _ in cells.values()])
        n_units = sum(len(split or [None]) for _, _, split in cells.values())
        n_trials = sum(int(c["search"]["trials"]) + 1 for _, c, _ in searched.values())
        os.environ[progress.TOTAL_ENV] = str(n_units + n_trials)  # jobs: one record each
        os.environ[progress.SKIPPED_ENV] = str(n_units - len(todo))
        os.environ[progress.DONE_ENV] = str(progress.count_records(sweep_dir))
        os.environ[progress.LAUNCH_ENV] = self.launch_id
        if searched:
            log.info("%d cells searched (search=%s): up to %d trial and final cells", len(searched),
                     next(iter(searched.values()))[1]["search"]["name"], n_trials)
        if n_units == len(jobs):
            log.info("%d cells planned: %d to run, %d skipped", len(jobs), len(todo),
                     len(jobs) - len(todo))
        else:
            log.info("%d cells planned as %d seed jobs: %d to run, %d skipped", len(jobs),
                     n_units, len(todo), n_units - len(todo))
        size = self.max_batch_size or len(todo) or 1
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            try:
                crash = self._launch(batch, sweep_dir)
                if crash is not None:
                    self._retry(batch, sweep_dir, crash)
            except SubmissionError as err:  # the CLI prints it as its one-line error
                LAST["launch_error"] = str(err)
                return []
        # the cells this launch's jobs ran (the report tells them from others'): not those
        # whose every job found the cell running elsewhere
        LAST["launched"] = {u.key for u in todo if u.name not in self.refused}
        for job, (key, config, _) in searched.items():
            try:
                summary = search_study.run(sweep_dir, key, plan.label(config), list(job),
                                           config["search"], config,
                                           lambda trial_jobs, key=key: self._trials(
                                               sweep_dir, trial_jobs, key))
            except SubmissionError as err:
                LAST["launch_error"] = str(err)
                return []
            final = (summary.get("final") or {}).get("key")
            LAST["keys"].append(final or key)  # no final: the cell is reported as not done
        return []

    def _todo(self, sweep_dir: Path, jobs: list[list[str]],
              cells: dict[tuple[str, ...], tuple[str, dict, list[parts.Part] | None]]
              ) -> list[Unit]:
        """The units of ``jobs`` still to run, each once."""
        todo: list[Unit] = []
        for job in jobs:
            for unit in self._units(sweep_dir, job, *cells[tuple(job)]):
                if all(u.name != unit.name for u in todo):
                    todo.append(unit)
        return todo

    def _trials(self, sweep_dir: Path, jobs: list[list[str]], study_key: str
                ) -> list[dict[str, Any] | None]:
        """A search's trial (or final) cells: planned (marked with ``study_key``), launched
        unless done (or pruned by this very job: a trial told pruned is finished for its
        study), their records."""
        cells = self._plan(jobs)
        todo = []
        for unit in self._todo(sweep_dir, jobs, cells):
            if search_study.pruned_here(records.read(records.record_path(sweep_dir, unit.name)),
                                        unit.job):
                log.info("skip %s: record is pruned (%s)", plan.label(unit.config), unit.name)
            else:
                todo.append(unit)
        plan.extend(sweep_dir, _entries(cells, study_key), self.launch_id,
                    {u.name: progress.record_mtime(sweep_dir, u.name) for u in todo})
        if todo:
            crash = self._launch(todo, sweep_dir)
            if crash is not None:
                self._retry(todo, sweep_dir, crash)
            LAST["launched"] |= {u.key for u in todo if u.name not in self.refused}
        return [records.read(records.record_path(sweep_dir, cells[tuple(job)][0]))
                for job in jobs]

    def _retry(self, batch: list[Unit], sweep_dir: Path, crash: Exception) -> None:
        """Launch the batch's jobs still without a record once more; record those that die."""
        def unfinished() -> list[Unit]:
            return [u for u in batch if u.name not in self.refused
                    and records.read(records.record_path(sweep_dir, u.name)) is None
                    and status._unit_state(sweep_dir, u.name, None).status != "running"]

        again = unfinished()
        if again:
            log.info("launching the %d cells without a record once more", len(again))
            crash = self._launch(again, sweep_dir) or crash
        for unit in unfinished():
            reason = (f"the cell's process died without a result twice (killed, e.g. by kill -9 "
                      f"or the OOM killer); launcher: {type(crash).__name__}: {one_line(crash)}")
            _record_failed(sweep_dir, unit, reason)
