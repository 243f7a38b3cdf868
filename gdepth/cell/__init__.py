"""One cell of a sweep: (dataset, model, norm, depth, train, …) × its seeds → one record.

``run_cell(cfg, base_dir)`` is what every Hydra job calls (:mod:`gdepth.cell.run`). It knows
nothing about Hydra: it takes the composed config and the folder to write ``records/<key>.json``
into. The parts: :mod:`~gdepth.cell.resume` (what a restarted cell still has to do),
:mod:`~gdepth.cell.graphs` (the prepared graph), :mod:`~gdepth.cell.trainers` (the training
loop of the dataset's task), :mod:`~gdepth.cell.record` (the typed record).
"""

from gdepth.cell.graphs import prepare, resolve_device
from gdepth.cell.record import CellRecord, SeedOutcome, describe, summary_line
from gdepth.cell.run import run_cell

__all__ = ["CellRecord", "SeedOutcome", "describe", "prepare", "resolve_device", "run_cell",
           "summary_line"]
