"""A sweep folder's records as one list: :func:`load` (part records merged, planned cells
without a usable record as placeholders). Above :mod:`gdepth.sweep.records`,
:mod:`gdepth.sweep.parts`
and :mod:`gdepth.sweep.status`, which it reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gdepth.sweep import layout, parts, records, status


def load(directory: str | Path, planned: bool = True) -> list[dict[str, Any]]:
    """Every record below ``directory``; where a key occurs twice, the newest ok one wins.

    The part records of a cell split into seed jobs are merged into one record per key
    (:func:`gdepth.sweep.parts.merge`; a whole-cell record wins unless it is not done and the parts
    are). A merged cell whose parts are not all done has ``partial: true`` and the seeds done.

    With ``planned``, every cell of a ``plan.json`` below ``directory`` that has no usable
    record is added as a placeholder (no seeds) whose ``status`` is ``running``, ``missing`` or
    ``corrupt`` and whose ``error`` says why (see ``gdepth.sweep.status``).
    """
    best: dict[str, dict[str, Any]] = {}
    split: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(directory).rglob(f"{layout.RECORDS}/*.json")):
        record = records.read(path)
        if record is None:
            continue
        if record.get("seed_range"):  # one part of a cell split into seed jobs
            split.setdefault(record["key"], []).append(record)
            continue
        old = best.get(record["key"])
        rank = (record["status"] == "ok", record.get("finished_at", ""))
        if old is None or rank > (old["status"] == "ok", old.get("finished_at", "")):
            best[record["key"]] = record
    for key, found in split.items():
        best[key] = parts.prefer(best.get(key), parts.merge(found))
    if planned:
        for state in status.cell_states(directory):
            record = best.get(state.key)
            if record is None and state.config is not None:
                best[state.key] = {"key": state.key, "status": state.status,
                                   "error": state.detail, "config": state.config, "seeds": []}
            elif record is not None and record.get("partial") and state.status not in records.DONE:
                record["status"], record["error"] = state.status, state.detail  # e.g. running
    return list(best.values())
