r"""The first layer on sparse features with per-seed dropout: the kernel against its baseline.

Every model whose first layer multiplies the raw features (gcn, gcn_res, gat, gin, ggnn, mlp,
gcnii, jknet, appnp, DropEdge's backbones, ...) does it through
:class:`gdepth.nn.kernels.StackedInput`: :math:`(X \odot M_s) W_s` for S seeds, a dropout
mask per seed on X's stored values. Timed here, forward and backward (the weight gradient) of
that one call, the masks drawn inside it as in training, median of ``--repeats``, each case's
columns interleaved and their order alternated:

1. on the dataset's own features (stored as the cell stores them: sparse CSR for Cora),
   S = 1 and S = ``--seeds``: ``before`` (one ``torch.sparse.mm`` per seed on a per-seed
   masked CSR matrix, autograd's backward, still the path off the CPU), ``after``
   (:func:`gdepth.nn.sparse_input.masked_product`), and ``dense`` (the same features stored
   dense: ``[S, N, F]`` masked copies and one ``bmm``);
2. the density at which the sparse kernel stops paying: synthetic features of the dataset's
   shape with each entry stored with probability ``density`` (row-normalized uniform
   values), ``after`` against ``dense``, for the densities of ``--densities``. The cell's
   threshold :data:`gdepth.cell.graphs.SPARSE_DENSITY` is read from this table.

    python benchmarks/first_layer_speed.py --threads 1          # Cora, S = 1 and 10

Results: ``benchmarks/results/first_layer_speed_<dataset>.json`` (or ``--json``), rendered by
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

from gdepth import data  # noqa: E402
from gdepth.cell import prepare  # noqa: E402
from gdepth.nn.kernels import StackedInput  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DENSITIES = "0.005,0.01,0.02,0.05,0.1,0.2,0.35,0.5"


@contextlib.contextmanager
def before() -> Iterator[None]:
    """The first layer as it was: one ``torch.sparse.mm`` per seed (the path off the CPU)."""
    saved = StackedInput.rows
    StackedInput.rows = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        StackedInput.rows = saved  # type: ignore[method-assign]


def step_s(x_in: StackedInput, weight: torch.Tensor, p: float,
           old: bool = False) -> Callable[[], float]:
    """A timer of one forward + backward of ``x_in`` (the masks drawn inside)."""
    def run() -> float:
        with before() if old else contextlib.nullcontext():
            t0 = time.perf_counter()
            out = x_in(weight, p, None)
            out.backward(torch.ones_like(out))
            took = time.perf_counter() - t0
        weight.grad = None
        return took
    return run


def interleaved(timers: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """The median of ``repeats`` calls of each timer, the order reversed every round (after
    one untimed call each)."""
    for run in timers.values():
        run()
    took: dict[str, list[float]] = {k: [] for k in timers}
    names = list(timers)
    for i in range(repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            took[name].append(timers[name]())
    return {k: statistics.median(v) for k, v in took.items()}


def synthetic(n: int, f: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """``[n, f]`` features, each entry stored with probability ``density``, row-normalized."""
    x = torch.rand(n, f, generator=generator) * (torch.rand(n, f, generator=generator)
                                                 < density)
    return x / x.sum(dim=1, keepdim=True).clamp(min=1e-12)


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "first_layer_speed_<dataset>.json")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--densities", default=DENSITIES)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    device, info = meta.start(args)
    cfg = cell_cfg("gcn", 2, 1, 1, args.dataset)
    cfg.data.mirror = args.mirror
    graph, _, kind = prepare(data.load(cfg.dataset, cfg.data, 0), cfg.dataset, device)
    x = graph.x
    n, f = x.shape
    print(f"{args.dataset}: features {n} x {f}, {kind}; hidden {args.hidden}, dropout "
          f"{args.dropout}, threads {torch.get_num_threads()}, median of {args.repeats}")
    found = {"dataset": args.dataset, "features": kind, "shape": [n, f], "hidden": args.hidden,
             "dropout": args.dropout, "repeats": args.repeats, "own": [], "density": []}
    dense_x = x.to_dense() if x.layout == torch.sparse_csr else x
    sparse_x = x if x.layout == torch.sparse_csr else x.to_sparse_csr()
    for seeds in sorted({1, args.seeds}):
        weight = torch.randn(seeds, f, args.hidden, requires_grad=True)
        sparse_in, dense_in = StackedInput(sparse_x), StackedInput(dense_x)
        t = interleaved({"before": step_s(sparse_in, weight, args.dropout, old=True),
                         "after": step_s(sparse_in, weight, args.dropout),
                         "dense": step_s(dense_in, weight, args.dropout)}, args.repeats)
        found["own"].append({"seeds": seeds, **t})
        print(f"S={seeds:>2}: before {1e3 * t['before']:8.2f} ms  after {1e3 * t['after']:8.2f}"
              f" ms  dense {1e3 * t['dense']:8.2f} ms  before/after "
              f"{t['before'] / t['after']:5.2f}x  dense/after {t['dense'] / t['after']:6.2f}x",
              flush=True)
    generator = torch.Generator().manual_seed(0)
    for density in (float(d) for d in args.densities.split(",")):
        dense_syn = synthetic(n, f, density, generator)
        sparse_syn = dense_syn.to_sparse_csr()
        row = {"density": density}
        for seeds in sorted({1, args.seeds}):
            weight = torch.randn(seeds, f, args.hidden, requires_grad=True)
            t = interleaved({"sparse": step_s(StackedInput(sparse_syn), weight, args.dropout),
                             "dense": step_s(StackedInput(dense_syn), weight, args.dropout)},
                            args.repeats)
            row[str(seeds)] = t
            print(f"density {density:5.3f} S={seeds:>2}: sparse {1e3 * t['sparse']:8.2f} ms  "
                  f"dense {1e3 * t['dense']:8.2f} ms  dense/sparse "
                  f"{t['dense'] / t['sparse']:6.2f}x", flush=True)
        found["density"].append(row)
    meta.write(args.json or meta.default_path(f"first_layer_speed_{args.dataset}"),
               "first_layer_speed", info, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
