"""Seed-batched SGC against its own baseline (the engine before issue 22) in one process.

Issue 22: a 32-hop SGC on Cora (``train=bot2021``: dropout 0.6 on the propagated features)
took 5x APPNP's time per epoch at the same depth, although it is linear and propagates once.
Why: :math:`\\hat{A}^K X` is dense ``[N, F]`` (Cora 2,708 × 1,433, where X is 1.3 % dense),
and every epoch multiplied all of it three times (training forward, weight gradient,
evaluation), with dropout after masking S dense copies of it. The fix reads only the rows the
epoch scores (``rowwise``, :mod:`gdepth.engine.fit`) and propagates with ``embedding_bag`` on
CPU (:func:`gdepth.models.sgc.propagate_features`). Timed here, each against the baseline in
the same process, alternating which runs first:

1. the precomputation :math:`\\hat{A}^K X`: ``torch.sparse.mm`` steps (before) vs now;
2. the epochs alone (features already cached): every row (before: ``rowwise`` off) vs the
   scored rows, with ``configs/model/sgc.yaml``'s dropout (0) and with ``--dropout`` (0.6,
   bot2021's Cora value);
3. the whole cell as ``gdepth run`` trains it (``engine.run_seeds``), SGC with ``--dropout``
   before and after, and APPNP (its config's defaults) at the same depth for reference.

    python benchmarks/sgc_speed.py                       # Cora, depth 32, 3 seeds, 200 epochs
    python benchmarks/sgc_speed.py --threads 1 --repeats 5

Results: ``benchmarks/results/sgc_speed_<dataset>.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402
from models_speed import cell_cfg  # noqa: E402

from gdepth import data, engine, models  # noqa: E402
from gdepth.cell import prepare  # noqa: E402
from gdepth.engine import fit_batched  # noqa: E402
from gdepth.models import sgc as model_sgc  # noqa: E402
from gdepth.models.sgc import SGC  # noqa: E402
from gdepth.nn.kernels import StackedInput  # noqa: E402
from gdepth.nn.propagation import propagation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sparse_mm_steps(x: torch.Tensor, adj: torch.Tensor, steps: int) -> torch.Tensor:
    """The precomputation before: ``steps`` products ``torch.sparse.mm(adj, h)``."""
    h = x.to_dense() if x.layout != torch.strided else x
    for _ in range(steps):
        h = torch.sparse.mm(adj, h)
    return h


@contextlib.contextmanager
def before() -> Iterator[None]:
    """The engine as it was: every row scored, ``sparse.mm`` propagation."""
    saved = (SGC.rowwise, model_sgc.propagate_features)
    SGC.rowwise, model_sgc.propagate_features = False, sparse_mm_steps
    try:
        yield
    finally:
        SGC.rowwise, model_sgc.propagate_features = saved


def best_of(repeats: int, run: Callable[[], float]) -> float:
    """The median of ``repeats`` timings of ``run`` (seconds)."""
    return statistics.median(run() for _ in range(repeats))


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "sgc_speed_<dataset>.json")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dropout", type=float, default=0.6, help="SGC's, cases 2 and 3")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    device, info = meta.start(args)
    found = {"dataset": args.dataset, "depth": args.depth, "seeds": args.seeds,
             "epochs": args.epochs, "repeats": args.repeats, "dropout": args.dropout,
             "epochs_s": []}
    cfg = cell_cfg("sgc", args.depth, args.seeds, args.epochs, args.dataset)
    cfg.data.mirror = args.mirror
    graphs, adj = [], None
    for s in range(args.seeds):
        graph, adj, kind = prepare(data.load(cfg.dataset, cfg.data, s), cfg.dataset, device)
        graphs.append(graph)
    print(f"{args.dataset} ({kind} features, adjacency {adj.layout}), depth {args.depth}, "
          f"{args.seeds} seeds, {args.epochs} epochs, threads {torch.get_num_threads()}, "
          f"median of {args.repeats}")

    x = graphs[0].x
    old = best_of(args.repeats, lambda: timed(lambda: sparse_mm_steps(x, adj, args.depth)))
    new = best_of(args.repeats, lambda: timed(
        lambda: model_sgc.propagate_features(x, adj, args.depth)))
    found["precompute_s"] = {"before": old, "after": new}
    print(f"precompute A^K X    sparse.mm {old:7.3f} s   embedding_bag {new:7.3f} s   "
          f"{old / new:5.2f}x")

    for dropout in (float(cfg.model.dropout), args.dropout):
        cfg.model.dropout = dropout

        def epochs(rowwise: bool) -> float:
            stacked = models.build_seeded(cfg.model, cfg.norm, args.depth,
                                          graphs[0].num_features, graphs[0].num_classes,
                                          seeds=list(range(args.seeds)))
            stacked.rowwise = rowwise
            stacked.features(StackedInput(x), propagation(adj))  # cached: epochs alone
            return timed(lambda: fit_batched(stacked, graphs, adj, cfg.train,
                                             list(range(args.seeds)))) / args.epochs

        took = {True: [], False: []}
        for i in range(args.repeats):
            for rowwise in ((False, True) if i % 2 == 0 else (True, False)):
                took[rowwise].append(epochs(rowwise))
        all_rows, scored = (statistics.median(took[k]) for k in (False, True))
        found["epochs_s"].append({"dropout": dropout, "before_s": all_rows, "after_s": scored})
        print(f"epochs, dropout {dropout:.1f}  every row {1e3 * all_rows:7.2f} ms/epoch   "
              f"scored rows {1e3 * scored:7.2f} ms/epoch   {all_rows / scored:5.2f}x")

    def cell(name: str, old_engine: bool) -> float:
        cell_config = cell_cfg(name, args.depth, args.seeds, args.epochs, args.dataset)
        if name == "sgc":
            cell_config.model.dropout = args.dropout
        context = before() if old_engine else contextlib.nullcontext()
        with context:
            return timed(lambda: engine.run_seeds(cell_config, lambda s: graphs[s], adj,
                                                  device))

    took = {"before": [], "after": [], "appnp": []}
    for i in range(args.repeats):
        order = ("before", "after", "appnp") if i % 2 == 0 else ("appnp", "after", "before")
        for what in order:
            took[what].append(cell("appnp" if what == "appnp" else "sgc", what == "before"))
    t = {k: statistics.median(v) for k, v in took.items()}
    print(f"cell, sgc dropout {args.dropout:.1f}: sgc before {t['before']:6.2f} s   "
          f"sgc after {t['after']:6.2f} s   appnp {t['appnp']:6.2f} s   "
          f"(sgc/appnp before {t['before'] / t['appnp']:.2f}, after {t['after'] / t['appnp']:.2f})")
    print(f"sgc cell before/after: {t['before'] / t['after']:.2f}x")
    found["cell_s"] = t
    meta.write(args.json or meta.default_path(f"sgc_speed_{args.dataset}"), "sgc_speed", info,
               found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
