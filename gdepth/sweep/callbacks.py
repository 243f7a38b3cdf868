"""Hydra callbacks: write and print the accuracy-vs-depth report when a run or sweep ends."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gdepth import report
from gdepth.sweep import collect, progress, records, sweeper

log = logging.getLogger("gdepth")

# The last report written in this process, read by the CLI for its summary and exit code.
LAST: dict[str, Any] = {}


def finish(directory: Path) -> None:
    """Write the report for ``directory``, print its table and remember the cell statuses."""
    from gdepth.search import report as search_report
    from gdepth.search import study

    LAST.clear()
    LAST["dir"] = directory
    trials = study.trial_only_keys(directory)  # a search's trials: shown by tune-report
    found = [r for r in collect.load(directory) if r["key"] not in trials]
    LAST["statuses"] = [r["status"] for r in found]
    if not found:
        log.warning("no records in %s: nothing to tabulate", directory)
        return
    _, text = report.write_report(directory)
    counts = {s: LAST["statuses"].count(s) for s in records.STATUSES if s in LAST["statuses"]}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    start = os.environ.get(progress.START_ENV)
    if start:  # cells finished before this sweep started were skipped (resume)
        summary += "; " + _run_now(found, float(start))
    print(f"\n{text}\n", flush=True)
    print(f"{len(found)} cells ({summary}); report in {directory}/ (table.md, table.csv, "
          "table.tex, results.csv, accuracy_vs_depth.png)", file=sys.stderr, flush=True)
    if trials:
        search_report.write(directory)
        print(f"{len(trials)} search trials beside them: `gdepth tune-report {directory}` "
              "(hyperparameters.csv, tuned.md)", file=sys.stderr, flush=True)


def _run_now(found: list[dict[str, Any]], start: float) -> str:
    """``N run now (k by …), M skipped as already done`` for the sweep started at ``start``.

    Counts this sweep's cells only (another sweep may share the folder). Of those finished
    since it started, the ones its own jobs did not run were run by a job started before it
    (an earlier launch, e.g. a killed sweep's Slurm job) or after it (another sweep running
    alongside, that it found running the cell).
    """
    since = dt.datetime.fromtimestamp(start, dt.timezone.utc).isoformat()
    keys = sweeper.LAST.get("keys")  # this sweep's cells
    finished = [r for r in found if r.get("finished_at")  # not placeholders
                and (keys is None or r["key"] in keys)]
    new = [r for r in finished if r["finished_at"] >= since]
    launched = sweeper.LAST.get("launched")  # the cell keys this sweep's jobs ran
    others = [] if launched is None else [r for r in new if r["key"] not in launched]
    alongside = sum((r.get("started_at") or "") >= since for r in others)
    by = [f"{n} by {who}" for n, who in ((len(others) - alongside, "a job of an earlier launch"),
                                         (alongside, "another sweep running alongside")) if n]
    return (f"{len(new)} run now" + (f" ({', '.join(by)})" if by else "")
            + f", {len(finished) - len(new)} skipped as already done")


class ReportCallback(Callback):
    """Aggregates the records of a finished ``gdepth run`` or ``gdepth sweep``."""

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        finish(Path(config.hydra.run.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if sweeper.LAST.get("launch_error"):  # nothing ran: the CLI prints the one-line error
            return
        finish(Path(config.hydra.sweep.dir))
