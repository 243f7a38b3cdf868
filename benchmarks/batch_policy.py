r"""Seconds per epoch of a cell's seeds by batch size, per model: the data of ``engine=auto``.

A cell of ``--seeds`` seeds (default 10) trains in batches of b seeds (``engine.run_seeds``
with ``max_seeds=b``: ``seeds_per_batch=b``), for each b of ``--sizes`` (1, 2, 5, 10), every
model at its depth (``--models name:depth,...``), its configs' defaults, one thread. Measured
per batch: the steady epochs only, (time at the last epoch − time at the first) / (epochs − 1)
from the engine's per-epoch callback, so neither the model's construction nor the first
epoch's one-time work (caches, transposed adjacency) counts; summed over the cell's batches:
the cell's seconds per epoch at that batch size. Both clocks are kept: the process's CPU time
(with one thread, the work done, which other processes on a shared machine barely move) and
the wall time; the policy reads the CPU time. ``--repeats`` rounds over the sizes, the order
reversed every round and from model to model, the median of each.

:data:`gdepth.engine.policy.CPU_BATCH` is read from this file's committed results, one table
per dataset (a model given at several depths: the largest batch within the tolerance at each).

    python benchmarks/batch_policy.py --threads 1                  # Cora, every model, depth 8
    python benchmarks/batch_policy.py --models gcn:8,gat:8 --epochs 8
    python benchmarks/batch_policy.py --dataset coauthor_cs --seeds 5 --sizes 1,2,5 \
        --models sign:32,gcn_res:16,gcn:16,gcn:8,gcn_res:8,...     # the committed CS run

Results: ``benchmarks/results/batch_policy_<dataset>.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402
from models_speed import cell_cfg  # noqa: E402

from gdepth import data, engine  # noqa: E402
from gdepth.cell import prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ",".join(f"{m}:8" for m in (
    "gcn", "gcn_res", "appnp", "sgc", "sign", "gcnii", "gcnii_star", "jknet", "mlp", "resgcn",
    "densegcn", "incepgcn", "gat", "gin", "ggnn"))


class EpochClock:
    """``on_epoch`` of the engine: when each epoch of the current batch ended, on the wall
    clock and on the process's CPU clock."""

    def __init__(self) -> None:
        self.batches: list[dict[int, tuple[float, float]]] = []

    def start_batch(self) -> None:
        self.batches.append({})

    def __call__(self, epoch: int) -> None:
        ends = self.batches[-1]
        if epoch not in ends:
            ends[epoch] = (time.perf_counter(), time.process_time())

    def steady_epoch_s(self) -> tuple[float, float]:
        """The sum over batches of each batch's steady seconds per epoch: (wall, CPU)."""
        wall = cpu = 0.0
        for ends in self.batches:
            first, last = min(ends), max(ends)
            span = max(last - first, 1)
            wall += (ends[last][0] - ends[first][0]) / span
            cpu += (ends[last][1] - ends[first][1]) / span
        return wall, cpu


def cell_epoch_s(cfg, graphs, adj, seeds: int, size: int) -> tuple[float, float]:
    """The cell's steady seconds per epoch in batches of ``size`` seeds: (wall, CPU)."""
    clock = EpochClock()
    for lo in range(0, seeds, size):
        batch = list(range(lo, min(lo + size, seeds)))
        clock.start_batch()
        model = engine.build(cfg, graphs[0], batch, torch.device("cpu"))
        engine.train_batch(cfg, model, [graphs[s] for s in batch], adj, batch, "sparse",
                           on_epoch=clock)
    return clock.steady_epoch_s()


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "batch_policy_<dataset>.json")
    parser.add_argument("--models", default=DEFAULT, help="name:depth,...")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--sizes", default="1,2,5,10")
    parser.add_argument("--epochs", type=int, default=5, help="per batch (the first untimed)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the sizes")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    device, info = meta.start(args)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    print(f"{args.dataset}, {args.seeds} seeds, steady CPU s/epoch of the cell by batch size "
          f"(median of {args.repeats}), threads {torch.get_num_threads()}")
    print(f"{'model':>10} {'depth':>5} " + " ".join(f"{f'b={b}':>8}" for b in sizes)
          + "   best")
    for i, item in enumerate(args.models.split(",")):
        name, depth = item.split(":")
        cfg = cell_cfg(name, int(depth), args.seeds, args.epochs, args.dataset)
        cfg.data.mirror = args.mirror
        prepared = [prepare(data.load(cfg.dataset, cfg.data, s), cfg.dataset, device)
                    for s in range(args.seeds)]
        adj, graphs = prepared[0][1], [p[0] for p in prepared]
        walls: dict[int, list[float]] = {b: [] for b in sizes}
        cpus: dict[int, list[float]] = {b: [] for b in sizes}
        for r in range(args.repeats):
            for size in (sizes if (i + r) % 2 == 0 else sizes[::-1]):
                wall, cpu = cell_epoch_s(cfg, graphs, adj, args.seeds, size)
                walls[size].append(wall)
                cpus[size].append(cpu)
        wall = {b: statistics.median(v) for b, v in walls.items()}
        cpu = {b: statistics.median(v) for b, v in cpus.items()}
        best = min(cpu, key=cpu.get)
        print(f"{name:>10} {depth:>5} " + " ".join(f"{cpu[b]:8.3f}" for b in sizes)
              + f"   b={best}   (wall: " + " ".join(f"{wall[b]:.3f}" for b in sizes) + ")",
              flush=True)
        rows.append({"model": name, "depth": int(depth),
                     "cpu_epoch_s": {str(b): cpu[b] for b in sizes},
                     "wall_epoch_s": {str(b): wall[b] for b in sizes}, "best": best})
    meta.write(args.json or meta.default_path(f"batch_policy_{args.dataset}"), "batch_policy",
               info, {"dataset": args.dataset, "seeds": args.seeds, "epochs": args.epochs,
                      "repeats": args.repeats, "sizes": sizes, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
