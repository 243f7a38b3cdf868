"""Where a sweep stands, read from its folder alone: ``gdepth status DIR``.

The launching process is not the source of truth (a Slurm sweep outlives it, a killed one
leaves jobs behind); the folder is. Three kinds of files tell a cell's state:

- ``plan.json`` (``gdepth.sweep.plan``): the cells the sweeps into this folder asked for;
- ``records/<key>.json``: a finished cell (``ok | diverged | oom | failed``; ``pruned``: a
  search's trial its study stopped, finished like a done cell: :mod:`gdepth.search.prune`);
- ``running/<key>.json``: the live marker of a cell a job runs, or a Slurm job waits to run
  (:mod:`gdepth.sweep.markers`); it is removed when the cell ends.

A cell split into seed jobs (``seeds_per_job``, :mod:`gdepth.sweep.parts`) has these files per part,
named ``<key>.seeds-<lo>-<hi>.json``; the cell is done when done parts cover its seeds, and
otherwise takes the state of its worst unfinished part (failed, running, missing), the detail
naming each (``1/2 seed jobs done; seeds 2–3 failed (ValueError: …)``).

A cell with neither a record nor a live marker is ``missing``. A dead marker means the cell's
process died without a result (``kill -9``, the OOM killer, a lost node): the cell counts as
missing and runs again on resume. A marker left as ``write_failed`` (the job could not write its
record: full disk, unwritable ``records/``) reads as ``failed`` with that error, and the cell
runs again on resume.

A searched cell's trials not asked yet are in no plan: the search's summary
(:mod:`gdepth.search.progress`) says how much of its budget is told.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from gdepth.search import progress as search_progress
from gdepth.sweep import layout, markers, parts, plan, progress, records

# What `gdepth status` sums up as done / running / failed / corrupt / missing (/ pruned).
GROUPS = {"ok": "done", "diverged": "done", "running": "running", "oom": "failed",
          "failed": "failed", "corrupt": "corrupt", "missing": "missing",
          records.PRUNED: "pruned"}
FINISHED = (*records.DONE, records.PRUNED)  # nothing left to run: listed with --all only


@dataclasses.dataclass
class CellState:
    """One planned (or recorded) cell: its key, label, status and a one-line detail."""

    key: str
    label: str
    status: str
    detail: str | None = None
    config: dict[str, Any] | None = None


def _unit_state(sweep_dir: Path, key: str, config: dict[str, Any] | None) -> CellState:
    """The state of one job's unit (a whole cell's key, or a part's ``<key>.seeds-<lo>-<hi>``)
    from its own record and marker alone."""
    record, problem = records.inspect(records.record_path(sweep_dir, key))
    if record is not None:
        detail = (records.pruned_text(record) if record["status"] == records.PRUNED
                  else record.get("error"))
        return CellState(key, plan.label(record["config"]), record["status"], detail,
                         record["config"])
    try:
        marker = json.loads(markers.marker_path(sweep_dir, key).read_text())
    except (OSError, ValueError):
        marker = None
    if isinstance(marker, dict) and marker.get("state") == markers.WRITE_FAILED:
        return CellState(key, plan.label(config or {}), "failed",
                         f"the cell ended but its record could not be written: "
                         f"{marker.get('error')}", config)
    if problem and not marker:
        return CellState(key, plan.label(config or {}), "corrupt", problem, config)
    if marker:
        alive, detail = markers.marker_state(marker)
        if alive:
            return CellState(key, plan.label(config or {}), "running", detail, config)
        return CellState(key, plan.label(config or {}), "missing",
                         detail + saved_text(sweep_dir, key), config)
    saved = saved_text(sweep_dir, key)
    return CellState(key, plan.label(config or {}), "missing",
                     f"not running{saved}" if saved else "not started", config)


def saved_text(sweep_dir: Path, key: str) -> str:
    """``; resumes from its checkpoints: ...`` where the cell of ``key`` (a cell's or a part's
    unit) has kept training state (:mod:`gdepth.sweep.checkpoint`): its checkpoint files and
    how many finished seeds are kept, a tree-task seed's passes and selected train accuracy so
    far (its small ``.progress.json``); ``""`` if none. Otherwise from the file names only: a
    checkpoint can be hundreds of MB, and a committed one's time is its checkout's."""
    from gdepth.sweep import checkpoint

    cell = parts.parse(key)[0]
    folder = layout.checkpoint_dir(sweep_dir, cell)
    try:
        found = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return ""
    progress = checkpoint.read_progress(sweep_dir, cell) \
        if any(name.endswith(".progress.json") for name in found) else {}

    def state(name: str) -> str:
        seed = name.removeprefix("trees-").removesuffix(".pt")
        entry = progress.get(int(seed)) if name.startswith("trees-") and seed.isdigit() else None
        if not entry:
            return name
        acc = (entry.get("lower_bounds") or {}).get("train_acc")
        best = "" if acc is None else f", train acc {100 * acc:.2f} % so far"
        return f"{name} ({int(entry.get('passes') or 0):,} passes{best})"

    states = [state(name) for name in found if name.endswith(".pt")]
    done = [name for name in found if name.endswith(".done.json")]
    what = [", ".join(states)] if states else []
    if done:
        what.append(f"{len(done)} finished seed{'s' if len(done) > 1 else ''} kept")
    return "; resumes from its checkpoints: " + ", ".join(what) if what else ""


def part_state(sweep_dir: Path, key: str, part: parts.Part,
               config: dict[str, Any] | None) -> CellState:
    """The state of one part of a split cell; done too when other done parts cover its seeds
    (e.g. an earlier sweep with another ``seeds_per_job``)."""
    state = _unit_state(sweep_dir, parts.unit(key, part), config)
    if state.status in records.DONE or state.status == "running":
        return state
    done: set[int] = set()
    for other in parts.found(sweep_dir, key):
        if other != part and _unit_state(sweep_dir, parts.unit(key, other),
                                         config).status in records.DONE:
            done.update(range(*other))
    if set(range(*part)) <= done:
        return dataclasses.replace(state, status="ok", detail="its seeds are in other parts")
    return state


def _split_state(sweep_dir: Path, key: str, config: dict[str, Any] | None,
                 jobs: list[parts.Part] | None) -> CellState | None:
    """The state of a cell split into seed jobs (None: no part planned, recorded or running)."""
    known = sorted(set(jobs or []) | set(parts.found(sweep_dir, key)))
    if not known:
        return None
    units = {p: _unit_state(sweep_dir, parts.unit(key, p), config) for p in known}
    config = config or next((u.config for u in units.values() if u.config), None)
    if config is None:  # only markers of parts that never wrote a record: nothing to name
        return None
    status, detail = parts.combine(int(config["seeds"]),
                                   {p: (u.status, u.detail) for p, u in units.items()}, jobs)
    return CellState(key, plan.label(config), status, detail, config)


def _state(sweep_dir: Path, key: str, config: dict[str, Any] | None,
           jobs: list[parts.Part] | None = None) -> CellState:
    """The state of a cell: its whole-cell record or marker, or its parts (``jobs``: the parts
    the plan names, if it split the cell). As ``records.load``: a whole-cell record wins unless
    it is not done and the parts are."""
    whole = _unit_state(sweep_dir, key, config)
    if whole.status in records.DONE:
        return whole
    split = _split_state(sweep_dir, key, config, jobs)
    if split is None:
        return whole
    if split.status in records.DONE:
        return split
    has_record = records.inspect(records.record_path(sweep_dir, key))[0] is not None
    return whole if has_record or whole.status == "running" else split


def cell_status(sweep_dir: str | Path, key: str) -> str:
    """The status of one cell of the sweep in ``sweep_dir``."""
    return _state(Path(sweep_dir), key, None).status


def cell_states(directory: str | Path) -> list[CellState]:
    """Every planned cell below ``directory``, then every recorded cell no plan names."""
    out: dict[str, CellState] = {}
    for sweep_dir, sweep_plan in plan.planned(directory).items():
        for key, cell in sweep_plan["cells"].items():
            jobs = [(int(lo), int(hi)) for lo, hi in cell.get("parts") or []]
            state = _state(sweep_dir, key, cell.get("config"), jobs or None)
            if key not in out or out[key].status not in records.DONE:
                out[key] = state
    for path in sorted(Path(directory).rglob(f"{layout.RECORDS}/*.json")):
        key = parts.parse(path.stem)[0]
        if key not in out:
            out[key] = _state(path.parent.parent, key, None)
    return list(out.values())


def summary(states: list[CellState]) -> dict[str, int]:
    """How many cells are done, running, failed (``failed``/``oom``), corrupt and missing;
    and ``pruned`` (search trials stopped by their study), when there are any."""
    counts = {"done": 0, "running": 0, "failed": 0, "corrupt": 0, "missing": 0}
    for state in states:
        group = GROUPS.get(state.status, "failed")
        counts[group] = counts.get(group, 0) + 1
    return counts


def recorded_compute(directory: str | Path) -> tuple[float, int]:
    """The seconds the records below ``directory`` took and how many there are: the sum of
    every record file's ``wall_s`` (search trials and seed-job parts included, as each cost
    its time). ``wall_s`` is the time of the call that wrote the record, and a re-run
    overwrites its cell's record, so a cell resumed or re-run counts only its last call, and a
    run killed before it wrote a record counts nothing: a lower bound on the machine time a
    study took."""
    total, count = 0.0, 0
    for path in Path(directory).rglob(f"{layout.RECORDS}/*.json"):
        record = records.read(path)
        if record is None:
            continue
        count += 1
        total += float(record.get("wall_s") or 0.0)
    return total, count


def is_sweep(directory: str | Path) -> bool:
    """Whether ``directory`` holds a sweep or run: a ``plan.json`` or a record below it."""
    found = Path(directory).rglob
    records_glob = f"{layout.RECORDS}/*.json"
    return any(True for _ in found(plan.PLAN)) or any(True for _ in found(records_glob))


def main(args: list[str]) -> int:
    """``gdepth status DIR [--all]``: exit 0 when every cell is done, 1 otherwise, 2 when DIR is
    not a sweep folder."""
    parser = argparse.ArgumentParser(prog="gdepth status")
    parser.add_argument("dir")
    parser.add_argument("--all", action="store_true", help="list done cells too")
    ns = parser.parse_args(args)
    if not Path(ns.dir).is_dir():
        print(f"gdepth: error: no such folder '{ns.dir}'", file=sys.stderr, flush=True)
        return 2
    if not is_sweep(ns.dir):
        print(f"gdepth: error: '{ns.dir}' is not a sweep folder (no {plan.PLAN} and no "
              "records/ below it)", file=sys.stderr, flush=True)
        return 2
    states = sorted(cell_states(ns.dir), key=lambda s: (s.status, s.label))
    counts = summary(states)
    for state in states:
        if ns.all or state.status not in FINISHED:
            detail = f"  ({state.detail.splitlines()[0]})" if state.detail else ""
            print(f"{state.status:<9} {state.label:<28} {state.key}{detail}")
    # A searched cell's trials not asked yet are in no plan: only its summary knows the budget
    searches = search_progress.search_states(ns.dir, {s.key: s.status for s in states})
    for search in sorted(searches, key=lambda s: (s.status, s.label)):
        if ns.all or search.status != "done":
            print(f"{search.status:<9} {search.label:<28} {search.study}  (search: "
                  f"{search.detail})")
    seconds, count = recorded_compute(ns.dir)
    print(f"compute in the records: {progress.duration(seconds)} over {count} record"
          f"{'s' * (count != 1)} (each record's wall_s summed; a lower bound)")
    shown = {g: n for g, n in counts.items() if n or g != "corrupt"}  # corrupt: only if any
    print(f"{len(states)} cells: " + ", ".join(f"{n} {g}" for g, n in shown.items()))
    if searches:
        tally = {g: sum(s.status == g for s in searches) for g in ("done", "searching", "failed")}
        print(f"{len(searches)} search{'es' if len(searches) != 1 else ''}: "
              + ", ".join(f"{n} {g}" for g, n in tally.items() if n or g != "failed"))
    searched = all(s.status == "done" for s in searches)
    return 0 if searched and counts["done"] + counts.get("pruned", 0) == len(states) else 1
