"""Progress display: cells done / total with an ETA for the sweep, epochs for the current cell.

The sweep's total and start time travel from the CLI to every job through environment
variables (they reach joblib workers and Slurm jobs alike), and so does the launch id the
sweeper gives each ``gdepth sweep``; "done" is counted from the records in the sweep folder
(the units this launch runs, listed in ``plan.json``, whose record was written since it
started), so the count is right whichever launcher runs the cells, when a rerun rewrites a
failed or corrupt record, and when another sweep writes into the same folder.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gdepth.sweep import layout

TOTAL_ENV = "GDEPTH_SWEEP_TOTAL"
START_ENV = "GDEPTH_SWEEP_START"
DONE_ENV = "GDEPTH_SWEEP_DONE_AT_START"
SKIPPED_ENV = "GDEPTH_SWEEP_SKIPPED"  # the cells (seed jobs) the sweep found done
LAUNCH_ENV = "GDEPTH_SWEEP_LAUNCH"  # this launch's entry in plan.json (gdepth.sweep.plan)


def duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h24m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def count_records(base_dir: str | Path) -> int:
    return len(list((Path(base_dir) / layout.RECORDS).glob("*.json")))


def record_mtime(base_dir: str | Path, unit: str) -> int | None:
    """The modification time (ns) of the unit's record file, None if it has none."""
    try:
        return layout.record_path(base_dir, unit).stat().st_mtime_ns
    except OSError:
        return None


def _written(base_dir: str | Path) -> int | None:
    """How many of this launch's units have had their record written since it planned them
    (None: no launch of this process in the folder's plan, e.g. ``gdepth run``)."""
    launch = os.environ.get(LAUNCH_ENV)
    if not launch:
        return None
    from gdepth.sweep import plan  # it imports omegaconf and pandas: not at the CLI's start

    entry = plan.launch_entry(plan.read(base_dir), launch)
    if entry is None or not isinstance(entry.get("units"), dict):
        return None
    return sum(record_mtime(base_dir, unit) not in (None, before)
               for unit, before in entry["units"].items())


def sweep_line(base_dir: str | Path) -> str:
    """``[done/total] ETA …`` for the sweep writing into ``base_dir`` (or ``[done]``).

    done = the cells this sweep skipped as already done + those of its units whose record was
    written since it started (a record rewritten by a rerun counts; another sweep's cells in the
    same folder do not). Without a launch in the plan (``gdepth run``): the records added since
    the start.
    """
    total = int(os.environ.get(TOTAL_ENV, "0") or 0)
    if total <= 0:
        return f"[{count_records(base_dir)}]"
    done_now = _written(base_dir)
    if done_now is None:
        done_now = count_records(base_dir) - int(os.environ.get(DONE_ENV, "0") or 0)
    done = min(int(os.environ.get(SKIPPED_ENV, "0") or 0) + done_now, total)
    line = f"[{done}/{total}]"
    start = float(os.environ.get(START_ENV, "0") or 0)
    if start and done_now > 0 and done < total:
        eta = (time.time() - start) / done_now * (total - done)
        line += f" ETA {duration(eta)}"
    return line


@contextmanager
def epoch_bar(description: str, total: int, enabled: bool = True) -> Iterator:
    """A transient rich bar over the cell's epochs (all seeds), shown only on a terminal.

    Yields a callable ``advance()``.
    """
    if not (enabled and sys.stderr.isatty()):
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total} epochs"), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
