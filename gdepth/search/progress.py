"""Where each hyperparameter search below a folder stands, from its summaries alone.

``gdepth status DIR`` lists a searched cell's trials and final like any other cell (they are
ordinary planned cells), but the trials its study has not asked yet are in no plan: a sweep
killed between two trials leaves every planned cell done while the search still has most of
its budget to spend. Only the study's summary (``search/<study key>.json``,
:mod:`gdepth.search.study`) knows the budget, so this module reads it: a search is ``done``
when its study has told ``search.trials`` trials and its final cell (the best trial's values
with the cell's full seeds) has a done record; ``failed`` when every trial failed (there is no
tuned cell to run); ``searching`` otherwise, which the same command resumes.

No Optuna here: the summary is plain JSON, and ``gdepth status`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdepth.sweep import layout, plan, records

#: Trial states a study will not run again (:data:`gdepth.search.study.FINISHED`, by name).
TOLD = ("COMPLETE", "FAIL", "PRUNED")


@dataclasses.dataclass
class SearchState:
    """One searched cell's study: its key, the cell's label, status and a one-line detail."""

    study: str
    label: str
    status: str  # done | searching | failed
    detail: str


def read_summary(path: Path) -> dict[str, Any] | None:
    """A study summary (written atomically by :func:`gdepth.sweep.records.write`), or None."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "study" in found else None


def load_summaries(directory: str | Path) -> list[dict[str, Any]]:
    """Every study summary below ``directory``."""
    found = (read_summary(p) for p in sorted(Path(directory).rglob(f"{layout.SEARCH}/*.json")))
    return [summary for summary in found if summary is not None]


def state(summary: dict[str, Any], final_status: str | None) -> SearchState:
    """The state of the study ``summary``; ``final_status``: its final cell's status as
    ``gdepth status`` reads it (None: no final cell asked yet)."""
    budget, seeds = int(summary["search"]["trials"]), summary["config"]["seeds"]
    trials = summary.get("trials") or []
    told = sum(t.get("state") in TOLD for t in trials)
    running = sum(t.get("state") == "RUNNING" for t in trials)
    best = (summary.get("best") or {}).get("val_acc")
    best_text = f"best val {100 * best:.1f} %" if best is not None else "no complete trial yet"
    told_text = f"{told} of {budget} trials told, {best_text}"
    final = summary.get("final")
    if told >= budget and best is None and not final:
        status, detail = "failed", f"every one of its {told} trials failed: no tuned cell"
    elif final and final_status in records.DONE:
        status, detail = "done", f"{told_text}; final ({seeds} seeds) {final_status}"
    elif told < budget:
        asked = f", {running} asked, not yet told" if running else ""
        status, detail = "searching", told_text + asked
    else:
        status = "searching"
        detail = f"{told_text}; its final ({seeds} seeds) is {final_status or 'not run'}"
    return SearchState(summary["study"], summary.get("label", "?"), status, detail)


def search_states(directory: str | Path,
                  cell_status: Mapping[str, str]) -> list[SearchState]:
    """Each search below ``directory``; ``cell_status``: key → status of the cells ``gdepth
    status`` read (a final it does not list is ``missing``). A final asked but not yet told
    (running, or killed) has no key in its summary: it is the cell that ``plan.json`` marks with
    the study's key and the final's overrides."""
    planned = {(cell["search"], tuple(cell.get("overrides") or ())): key
               for sweep_plan in plan.planned(directory).values()
               for key, cell in sweep_plan["cells"].items() if cell.get("search")}
    out = []
    for summary in load_summaries(directory):
        final = summary.get("final") or {}
        key = final.get("key") or planned.get((summary["study"],
                                               tuple(final.get("overrides") or ())))
        out.append(state(summary, cell_status.get(key, "missing") if key else None))
    return out
