"""Training checkpoints: a killed, preempted or timed-out cell resumes where it stopped.

With ``checkpoint_every: N`` (epochs; ``null`` turns it off) the training loop saves, every N
epochs, everything the next epoch of a batch of seeds depends on: the stacked model's and the
optimizer's state, each seed's selection state (selected epoch and metrics, epochs since the
last improvement), validation-loss history (stopping rule), status and epochs run, the
adaptive clipper's per-seed norm history, the seeds' kept states of a diagnostics run, and the
torch random number generators (dropout masks, DropEdge draws). A batch resumed from epoch k
therefore continues exactly as the uninterrupted run would have (``tests/test_checkpoint.py``
checks equal numbers, bit for bit in float64, for batches of one and of several seeds). A
finished seed is saved as its result, so a restarted cell skips it.

Layout, below the sweep (or run) folder::

    checkpoints/<key>/batch-<first>-<last>.pt  a running batch's state at its last checkpoint
    checkpoints/<key>/seed-<s>.done.json       a finished seed: its values (and params,
                                               diagnostics)
    checkpoints/<key>/trees-<s>.pt             a tree-task seed's state at its last checkpoint
                                               (:meth:`CellCheckpoints.trees`)
    checkpoints/<key>/trees-<s>.progress.json  the same checkpoint's progress, readable
                                               without torch: passes run, the selection so
                                               far (:func:`read_progress`)

A batch's file holds the list of its seeds; a restarted cell whose batches are cut otherwise
(another ``seeds_per_batch``) does not resume from it. Files are written to a temporary name
and renamed (atomic on POSIX), so a kill mid-write leaves the previous checkpoint. A seed's
files are removed once the record holding it is written. Which state is saved is decided by
the training loop (:func:`gdepth.engine.fit.fit_batched`); this module only stores it. Why not
a library: torch's ``save``/``load`` are the format; what to save and when to resume is
specific to this loop (Lightning's checkpointing needs its Trainer).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from gdepth.sweep import layout

log = logging.getLogger("gdepth")


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


class BatchCheckpoint:
    """Save / load the training state of one batch of ``seeds`` every ``every`` epochs
    (``every`` ≥ 1)."""

    def __init__(self, path: Path, every: int, seeds: Iterable[int] = ()) -> None:
        self.path, self.every, self.seeds = path, every, [int(s) for s in seeds]

    def due(self, epoch: int) -> bool:
        return epoch % self.every == 0

    @property
    def progress_path(self) -> Path:
        """``<name>.progress.json`` beside the state file."""
        return self.path.with_name(f"{self.path.stem}.progress.json")

    def save(self, state: dict[str, Any], progress: dict[str, Any] | None = None) -> None:
        """Save ``state``; with ``progress`` (JSON), also :attr:`progress_path`, written after
        the state so that it never describes a state that is not on disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {**state, "seeds": self.seeds}
        _atomic(self.path, lambda p: torch.save(state, p))
        if progress is not None:
            text = json.dumps({**progress, "seeds": self.seeds})
            _atomic(self.progress_path, lambda p: p.write_text(text))

    def remove(self) -> None:
        """The batch is finished: its state is no longer needed."""
        self.path.unlink(missing_ok=True)
        self.progress_path.unlink(missing_ok=True)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None (no checkpoint, or an unreadable one: logged, ignored)."""
        if not self.path.exists():
            return None
        try:  # our own file: optimizer state and python floats need the full unpickler
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - a torn or foreign file: start the batch again
            log.warning("ignoring unreadable checkpoint %s: %s", self.path, err)
            return None
        if not isinstance(state, dict) or state.get("seeds") != self.seeds:
            log.warning("ignoring checkpoint %s: it holds seeds %s, not %s", self.path,
                        state.get("seeds") if isinstance(state, dict) else None, self.seeds)
            return None
        return state


class CellCheckpoints:
    """The checkpoints of one cell: per-seed training state and finished seeds."""

    def __init__(self, base_dir: str | Path, key: str, every: int | None) -> None:
        if every is not None and int(every) < 1:
            raise ValueError(f"checkpoint_every={every}: must be a number of epochs >= 1, "
                             "or null to turn checkpoints off")
        self.folder = layout.checkpoint_dir(base_dir, key)
        self.every = None if every is None else int(every)

    def batch(self, seeds: list[int]) -> BatchCheckpoint | None:
        """The training checkpoint of the batch of ``seeds`` (None when checkpoints are off)."""
        if self.every is None:
            return None
        return BatchCheckpoint(self.folder / f"batch-{seeds[0]}-{seeds[-1]}.pt", self.every,
                               seeds)

    def trees(self, seed: int, passes_per_epoch: int) -> BatchCheckpoint | None:
        """The training checkpoint of one tree-task seed (:func:`gdepth.train_trees.fit_trees`;
        None when checkpoints are off). ``checkpoint_every`` counts passes over the training
        data, as a full-batch epoch is one; a tree epoch is ``passes_per_epoch`` passes, so its
        state is saved every ``checkpoint_every // passes_per_epoch`` epochs, at least every
        epoch (the authors' 100 passes: every epoch)."""
        if self.every is None:
            return None
        return BatchCheckpoint(self.folder / f"trees-{seed}.pt",
                               max(1, self.every // max(1, int(passes_per_epoch))), [seed])

    def finished(self, seed: int) -> dict[str, Any] | None:
        """What :meth:`finish` kept of a finished seed, or None."""
        path = self.folder / f"seed-{seed}.done.json"
        if self.every is None or not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            return None

    def finish(self, seed: int, entry: dict[str, Any]) -> None:
        """Keep a finished seed's result ``entry`` (JSON: its ``values`` and what the record
        needs from it); its training checkpoint is no longer needed."""
        if self.every is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(entry)
        _atomic(self.folder / f"seed-{seed}.done.json", lambda p: p.write_text(text))
        (self.folder / f"seed-{seed}.pt").unlink(missing_ok=True)

    def clear(self, seeds: Iterable[int]) -> None:
        """Remove the checkpoints of ``seeds`` (their record is written), then the cell's and
        the checkpoints folder if nothing else is left in them (another seed job of the cell,
        another cell may still be running)."""
        seeds = {int(s) for s in seeds}
        for seed in seeds:  # seed-<s>.pt: an older gdepth's per-seed checkpoint
            for name in (f"seed-{seed}.pt", f"seed-{seed}.done.json", f"trees-{seed}.pt",
                         f"trees-{seed}.progress.json"):
                (self.folder / name).unlink(missing_ok=True)
        for path in self.folder.glob("batch-*-*.pt") if self.folder.is_dir() else []:
            ends = path.stem.split("-")[1:]
            if all(e.isdigit() for e in ends) and seeds & {int(e) for e in ends}:
                path.unlink(missing_ok=True)
        for folder in (self.folder, self.folder.parent):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone)


def read_progress(base_dir: str | Path, key: str) -> dict[int, dict[str, Any]]:
    """The progress of a cell's running tree-task seeds (``trees-<s>.progress.json`` below
    ``base_dir``), by seed; an unreadable file is left out (logged)."""
    folder = layout.checkpoint_dir(base_dir, key)
    out: dict[int, dict[str, Any]] = {}
    for path in sorted(folder.glob("trees-*.progress.json")) if folder.is_dir() else []:
        seed = path.name.removeprefix("trees-").removesuffix(".progress.json")
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable %s: %s", path, err)
            continue
        if seed.isdigit() and isinstance(entry, dict):
            out[int(seed)] = entry
    return out


def rng_state() -> dict[str, Any]:
    """The torch generators' states (CPU, and every CUDA device when there is one)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
