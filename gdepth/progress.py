"""Progress display: cells done / total with an ETA for the sweep, epochs for the current cell.

The sweep's total and start time travel from the CLI to every job through environment
variables (they reach joblib workers and Slurm jobs alike); "done" is counted from the records
in the sweep folder, so the count is right whichever launcher runs the cells.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOTAL_ENV = "GDEPTH_SWEEP_TOTAL"
START_ENV = "GDEPTH_SWEEP_START"
DONE_ENV = "GDEPTH_SWEEP_DONE_AT_START"
SKIPPED_ENV = "GDEPTH_SWEEP_SKIPPED"  # the cells (seed jobs) the sweep found done


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def count_records(base_dir: str | Path) -> int:
    return len(list((Path(base_dir) / "records").glob("*.json")))


def sweep_line(base_dir: str | Path) -> str:
    """``[done/total] ETA …`` for the sweep writing into ``base_dir`` (or ``[done]``).

    done = the cells this sweep skipped as already done + the records written since it
    started, so a sweep into a folder holding other cells' records counts only its own.
    """
    count = count_records(base_dir)
    total = int(os.environ.get(TOTAL_ENV, "0") or 0)
    if total <= 0:
        return f"[{count}]"
    done_now = count - int(os.environ.get(DONE_ENV, "0") or 0)
    done = min(int(os.environ.get(SKIPPED_ENV, "0") or 0) + done_now, total)
    line = f"[{done}/{total}]"
    start = float(os.environ.get(START_ENV, "0") or 0)
    if start and done_now > 0 and done < total:
        eta = (time.time() - start) / done_now * (total - done)
        line += f" ETA {_duration(eta)}"
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
