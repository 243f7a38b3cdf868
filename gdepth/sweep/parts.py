"""Seed jobs: a cell split into parts, each training a range of the cell's seeds.

With ``seeds_per_job: k`` the sweeper launches a cell of N seeds as ceil(N/k) jobs; job j runs
seeds ``[j·k, min((j+1)·k, N))`` (its ``seed_range``, half-open as Python's ``range``). A
part trains exactly the seeds the whole cell would (seed i: ``torch.manual_seed(i)`` and split
i), so the parts together compute what the whole cell computes. Neither key is part of the
cell's identity: a split cell has the same key as the whole one.

Each part writes ``records/<key>.seeds-<lo>-<hi>.json`` (a cell record with ``seed_range``
``[lo, hi]``) and marks itself running as ``running/<key>.seeds-<lo>-<hi>.json``: the *unit*
name ``<key>.seeds-<lo>-<hi>`` stands for the key wherever a job is named. Readers merge the
parts of a key into one cell (:func:`merge`): seeds in order, summary recomputed, done only
when every seed is covered by a done part. A whole-cell record wins over the parts of its key
unless it is not done and the parts are (:func:`prefer`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gdepth.sweep import layout, records

Part = tuple[int, int]
SEP = ".seeds-"
_UNIT = re.compile(r"^(?P<key>[^.]+)\.seeds-(?P<lo>\d+)-(?P<hi>\d+)$")
# Which state of an unfinished part names the split cell's state (first match wins).
PRIORITY = ("failed", "oom", "corrupt", "running", "missing")


def ranges(seeds: int, per_job: int | None) -> list[Part] | None:
    """The parts of a cell of ``seeds`` seeds, or None when it runs as one job."""
    if per_job is None:
        return None
    if int(per_job) < 1:
        raise ValueError(f"seeds_per_job={per_job}: must be a number of seeds >= 1, or null "
                         "to run every seed of a cell in one job")
    k = int(per_job)
    if k >= seeds:
        return None
    return [(lo, min(lo + k, seeds)) for lo in range(0, seeds, k)]


def seed_range(config: Mapping[str, Any]) -> Part | None:
    """The part ``(lo, hi)`` a job's config asks for (``seed_range``), or None: the whole cell."""
    value = config.get("seed_range")
    if value is None:
        return None
    seeds = int(config["seeds"])
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError):
        lo, hi = -1, -1
    if not 0 <= lo < hi <= seeds:
        raise ValueError(f"seed_range={list(value)}: must be [lo, hi] with 0 <= lo < hi <= "
                         f"seeds ({seeds}); the sweeper sets it from seeds_per_job")
    return lo, hi


def bounds(config: Mapping[str, Any]) -> Part:
    """The seeds ``(lo, hi)`` a job trains: its part, or ``(0, seeds)``."""
    return seed_range(config) or (0, int(config["seeds"]))


def unit(key: str, part: Part | None) -> str:
    """The name of a job's record and marker: the key, or ``<key>.seeds-<lo>-<hi>``."""
    return key if part is None else f"{key}{SEP}{part[0]}-{part[1]}"


def parse(name: str) -> tuple[str, Part | None]:
    """``(key, part)`` of a unit name (a record or marker file's stem)."""
    match = _UNIT.match(name)
    if match is None:
        return name, None
    return match["key"], (int(match["lo"]), int(match["hi"]))


def label(part: Part) -> str:
    """``seed 2`` or ``seeds 2–3`` (inclusive, for people)."""
    lo, hi = part
    return f"seed {lo}" if hi - lo == 1 else f"seeds {lo}–{hi - 1}"


def found(sweep_dir: str | Path, key: str) -> list[Part]:
    """The parts of ``key`` with a record or a marker in ``sweep_dir``."""
    out = set()
    for folder in (layout.RECORDS, layout.MARKERS):
        for path in (Path(sweep_dir) / folder).glob(f"{key}{SEP}*.json"):
            part = parse(path.stem)[1]
            if part is not None:
                out.add(part)
    return sorted(out)


def _runs(seeds: Iterable[int]) -> list[Part]:
    """Contiguous runs of sorted seed numbers as parts: 1, 2, 3, 6 → (1, 4), (6, 7)."""
    out: list[list[int]] = []
    for s in seeds:
        if out and out[-1][1] == s:
            out[-1][1] = s + 1
        else:
            out.append([s, s + 1])
    return [(lo, hi) for lo, hi in out]


def combine(seeds: int, states: Mapping[Part, tuple[str, str | None]],
            jobs: Iterable[Part] | None = None) -> tuple[str, str]:
    """Status and one-line detail of a split cell from its parts' ``(status, detail)``.

    ``jobs`` are the parts that count as its seed jobs (the plan's; default: those in
    ``states``); seeds that none of them covers count as one missing part per run. The cell is
    done (``ok``, or ``diverged`` if a done part is) when done parts cover every seed.
    """
    done: set[int] = set()
    for (lo, hi), (state, _) in states.items():
        if state in records.DONE:
            done.update(range(lo, hi))
    parts = sorted(set(jobs if jobs is not None else states))
    planned = set().union(*(range(lo, hi) for lo, hi in parts)) if parts else set()
    parts += _runs(s for s in range(seeds) if s not in planned)
    open_ = [p for p in parts if not set(range(*p)) <= done]
    if not open_:
        diverged = any(s == "diverged" for s, _ in states.values())
        return ("diverged" if diverged else "ok"), f"{len(parts)} seed jobs"
    texts, found_states = [], []
    for part in open_:
        state, detail = states.get(part, ("missing", "no record"))
        found_states.append(state)
        texts.append(f"{label(part)} {state}" + (f" ({detail})" if detail else ""))
    status = next((s for s in PRIORITY if s in found_states), "missing")
    return status, (f"{len(parts) - len(open_)}/{len(parts)} seed jobs done; "
                    + "; ".join(texts))


def merge(found_records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One cell record from the part records of one key (several per part: the newest done).

    Complete (every seed covered by a done part): status ``ok``/``diverged``, the seeds in
    order, the summary recomputed. Otherwise ``partial`` is true, ``seeds`` holds the done
    parts' seeds, and ``status``/``error`` say which parts are not done and why.
    """
    best: dict[Part, dict[str, Any]] = {}
    for record in found_records:
        part = (int(record["seed_range"][0]), int(record["seed_range"][1]))
        rank = (record["status"] in records.DONE, record.get("finished_at") or "")
        old = best.get(part)
        if old is None or rank > (old["status"] in records.DONE, old.get("finished_at") or ""):
            best[part] = record
    first = best[min(best)]
    seeds = int(first["config"]["seeds"])
    status, detail = combine(seeds, {p: (r["status"], r.get("error")) for p, r in best.items()})
    by_seed: dict[int, dict[str, Any]] = {}
    measured: dict[int, dict[str, Any]] = {}  # diagnostics per seed (diagnostics=...)
    done = sorted((r for r in best.values() if r["status"] in records.DONE),
                  key=lambda r: r.get("finished_at") or "")
    for record in done:  # the newest done part wins a seed two parts trained
        lo = int(record["seed_range"][0])
        for i, values in enumerate(record.get("seeds") or []):
            by_seed[int(values.get("seed", lo + i))] = values
        for entry in (record.get("diagnostics") or {}).get("seeds") or []:
            measured[int(entry["seed"])] = entry
    kept = [by_seed[s] for s in sorted(by_seed) if s < seeds]
    complete = status in records.DONE
    if complete:
        status = "diverged" if any(v.get("status") == "diverged" for v in kept) else "ok"
    merged = {k: v for k, v in first.items() if k != "traceback"}
    if isinstance(first.get("diagnostics"), dict):
        merged["diagnostics"] = {**first["diagnostics"],
                                 "seeds": [measured[s] for s in sorted(measured) if s < seeds]}
    times = [r.get("finished_at") or "" for r in best.values()]
    merged.update(
        status=status, error=None if complete else detail, partial=not complete,
        seed_range=None, config={**first["config"], "seed_range": None}, seeds=kept,
        summary=records.summarize(kept), finished_at=max(times) or None,
        started_at=min((r.get("started_at") or "" for r in best.values()), default="") or None,
        wall_s=sum(float(r.get("wall_s") or 0.0) for r in best.values()),
        parts=[{"seed_range": list(p), "status": r["status"], "error": r.get("error"),
                "finished_at": r.get("finished_at"), "wall_s": r.get("wall_s"),
                "host": r.get("host"), "slurm_job": r.get("slurm_job")}
               for p, r in sorted(best.items())])
    return merged


def prefer(whole: dict[str, Any] | None, merged: dict[str, Any]) -> dict[str, Any]:
    """The record that stands for a cell with both: the whole-cell record, unless it is not
    done and the parts are."""
    if whole is None or (whole["status"] not in records.DONE and merged["status"] in records.DONE):
        return merged
    return whole


def done_record(base_dir: str | Path, key: str, part: Part | None) -> dict[str, Any] | None:
    """What a job for ``key`` (``part``: a part of it) finds in ``base_dir``: a done record
    that covers its seeds (its own; for a part the whole cell's; for a whole cell its merged
    parts), else its own record, or None."""
    own = records.read(records.record_path(base_dir, unit(key, part)))
    if own is not None and own["status"] in records.DONE:
        return own
    if part is not None:
        whole = records.read(records.record_path(base_dir, key))
        return whole if whole is not None and whole["status"] in records.DONE else own
    found_records = [r for r in (records.read(p) for p in sorted(
        (Path(base_dir) / layout.RECORDS).glob(f"{key}{SEP}*.json"))) if r and r.get("seed_range")]
    merged = merge(found_records) if found_records else None
    return merged if merged is not None and merged["status"] in records.DONE else own
