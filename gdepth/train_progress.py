"""Training progress of the cell this process runs: a job-log line every N seconds, and the
current epoch for ``gdepth status``.

The epoch bar (:func:`gdepth.sweep.progress.epoch_bar`) shows only on a terminal; a job whose stderr
is a file (Slurm, a joblib worker, Hydra's ``gdepth.log``) would say nothing from its first
epoch to its record. The training loops (:func:`gdepth.engine.fit.fit_batched` for a seed or a
batch of seeds, :func:`gdepth.train_trees.fit_trees`) therefore report every epoch to a
:class:`Tracker`, which

- logs ``seed 0: epoch 120/1000, best val acc 0.8120 (epoch 97), 0.36 s/epoch`` to the
  ``gdepth`` logger every :func:`interval_s` seconds (at the end of the first epoch past it),
  only when stderr is not a terminal (there the bar shows progress);
- keeps the latest such state as this process's *current progress*, a lock-guarded snapshot
  that :func:`current` copies for another thread (the running marker's heartbeat,
  :mod:`gdepth.sweep.markers`) and :func:`describe` words.

``s/epoch`` is measured over the epochs since the previous line (the first line: since the
training started); for a seed batch it is the time of one epoch of all its seeds together.
The interval: :func:`configure` (the cell, from the config), else the environment variable
``GDEPTH_PROGRESS_S``, else :data:`DEFAULT_INTERVAL_S`; 0 logs every epoch, a negative value or
``configure(None)`` never.

While :func:`collect_curves` is on (``tracking=...``: :mod:`gdepth.sweep.tracking` turns it on
for the
job it runs), every epoch's metrics of every seed are kept too (:meth:`Tracker.record`), and
:func:`take_curves` hands them over: the per-epoch curves, which a record does not keep.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("gdepth")

INTERVAL_ENV = "GDEPTH_PROGRESS_S"
DEFAULT_INTERVAL_S = 60.0
_UNSET = object()
_configured: Any = _UNSET  # configure()'s value, while set
_lock = threading.Lock()
_current: dict[str, Any] | None = None  # the snapshot of the running Tracker
# While collect_curves() is on: {seed: {metric: [(epoch, value), ...]}} of this process's job.
Curves = dict[int, dict[str, list[tuple[int, float]]]]
_curves: Curves | None = None


def collect_curves() -> None:
    """From now on keep every epoch's metrics of the seeds this process trains (none yet)."""
    global _curves
    _curves = {}


def take_curves() -> Curves:
    """The curves kept since :func:`collect_curves` (``{}`` if off); stop keeping them."""
    global _curves
    out, _curves = _curves or {}, None
    return out


def configure(seconds: float | None | object = _UNSET) -> None:
    """Set the interval between log lines (``None``: never log); without an argument, go back
    to ``GDEPTH_PROGRESS_S`` / the default."""
    global _configured
    _configured = seconds


def interval_s() -> float | None:
    """Seconds between two progress lines; ``None``: no lines."""
    value = _configured
    if value is _UNSET:
        value = os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S
    if value is None:
        return None
    seconds = float(value)  # type: ignore[arg-type]
    return None if seconds < 0 else seconds


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def current() -> dict[str, Any] | None:
    """A copy of this process's current training progress (``None`` when nothing trains):
    ``seeds``, ``epoch``, ``epochs``, ``best`` (the metric's name), ``value`` (one per seed),
    ``best_epoch`` (one per seed), ``running`` (seeds still training), ``epoch_s``, ``time``."""
    with _lock:
        return None if _current is None else {k: list(v) if isinstance(v, list) else v
                                              for k, v in _current.items()}


def _seeds_text(seeds: Sequence[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ",".join(str(s) for s in seeds)


def describe(progress: dict[str, Any] | None) -> str:
    """One line for a :func:`current` snapshot, e.g. ``seeds 0–4: epoch 120/1000, best val acc
    0.8120 (mean; 0.8010–0.8230), 3.61 s/epoch, 4/5 running``; ``""`` for ``None`` or a
    snapshot it cannot read (a marker is read from a file another process wrote)."""
    try:
        return _describe(progress) if progress else ""
    except (KeyError, TypeError, ValueError, IndexError):
        return ""


def _describe(progress: dict[str, Any]) -> str:
    seeds, values = progress["seeds"], [v for v in progress["value"] if not math.isnan(v)]
    text = f"{_seeds_text(seeds)}: epoch {progress['epoch']}/{progress['epochs']}"
    if values and len(seeds) == 1:
        text += f", best {progress['best']} {values[0]:.4f} (epoch {progress['best_epoch'][0]})"
    elif values:
        mean = sum(values) / len(values)
        text += (f", best {progress['best']} {mean:.4f} (mean; {min(values):.4f}–"
                 f"{max(values):.4f})")
    if progress.get("epoch_s") is not None:
        text += f", {progress['epoch_s']:.3g} s/epoch"
    if len(seeds) > 1 and progress["running"] < len(seeds):
        text += f", {progress['running']}/{len(seeds)} running"
    return text


class Tracker:
    """The progress of one training (one seed, or one seed batch): call :meth:`epoch` after
    every epoch and :meth:`close` at the end.

    Args:
        seeds: the seeds trained.
        epochs: the epochs asked for.
        best: the name of the selection metric shown, e.g. ``val acc``.
        first: the epoch training starts at (a resumed seed: its checkpoint's epoch + 1).
        logs: write the progress lines (``False``: the caller logs every epoch itself, as
            :func:`gdepth.train_trees.fit_trees`; the snapshot is kept all the same).
    """

    def __init__(self, seeds: Sequence[int], epochs: int, best: str = "val acc",
                 first: int = 1, logs: bool = True) -> None:
        self.seeds, self.epochs, self.best = [int(s) for s in seeds], int(epochs), best
        every = interval_s()
        self.logs = logs and every is not None and not _stderr_is_terminal()
        self.every = DEFAULT_INTERVAL_S if every is None else every  # also s/epoch's window
        self.mark = (time.perf_counter(), first - 1)  # (time, epoch) of the previous line
        self.epoch_s: float | None = None

    def epoch(self, epoch: int, values: Sequence[float], best_epochs: Sequence[int],
              running: int | None = None) -> None:
        """Epoch ``epoch`` has ended; ``values`` / ``best_epochs``: per seed, the selection
        metric at the selected epoch so far and that epoch; ``running``: seeds still
        training (default all)."""
        global _current
        now = time.perf_counter()
        since, at = now - self.mark[0], self.mark[1]
        due = since >= self.every
        if due or self.epoch_s is None:
            self.epoch_s = since / max(epoch - at, 1)
        snapshot = {"seeds": self.seeds, "epoch": int(epoch), "epochs": self.epochs,
                    "best": self.best, "value": [float(v) for v in values],
                    "best_epoch": [int(e) for e in best_epochs],
                    "running": len(self.seeds) if running is None else int(running),
                    "epoch_s": self.epoch_s, "time": time.time()}
        with _lock:
            _current = snapshot
        if due:
            self.mark = (now, epoch)
            if self.logs:
                log.info("%s", describe(snapshot))

    def record(self, seed: int, epoch: int, metrics: dict[str, float]) -> None:
        """Seed ``seed``'s metrics of epoch ``epoch`` (kept only while collecting curves)."""
        if _curves is not None:
            per_metric = _curves.setdefault(int(seed), {})
            for name, value in metrics.items():
                per_metric.setdefault(name, []).append((int(epoch), float(value)))

    def close(self) -> None:
        """Training ended: this process trains nothing now (until the next tracker)."""
        global _current
        with _lock:
            if _current is not None and _current["seeds"] == self.seeds:
                _current = None
