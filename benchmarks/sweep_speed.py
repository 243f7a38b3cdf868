r"""Depth-sweep speed in four steps, one process: PyG as its examples write it, PyG with sparse
features, gdepth's per-seed loop, gdepth's seed-batched engine; then ``gdepth sweep`` itself.

Runs the same sweep (one model, depths × seeds × epochs, Adam lr 0.01 wd 5e-4, hidden 64,
dropout 0.5 before every conv, ReLU, test accuracy at the first epoch of best validation
accuracy, evaluation after every epoch) several ways, interleaved depth by depth (the order
reverses every depth, so drifting load on a shared machine hits all of them alike; each column
first trains an untimed two-epoch cell, so that no column pays the process's one-time costs):

* ``pyg``: PyG's ``examples/gcn.py`` (``benchmarks/pyg_loop.py``): ``GCNConv(cached=True)``,
  dense features, one seed after another;
* ``pyg_sparse``: the same loop with the features as a sparse CSR matrix (the first step:
  sparse vs dense input);
* ``loop``: gdepth's training loop in batches of one seed (``engine=loop``: ``run_seeds`` with
  ``max_seeds=1``; sparse features, cached adjacency, gdepth's kernels: the second step);
* ``batched``: ``gdepth.engine.run_seeds``, all seeds in one batch (``engine=batched``: the
  third step, seed batching), adjacency stored as ``--adjacency`` says (as ``adjacency=``).

With ``--dropedge P`` every column trains with DropEdge at rate P (``train.dropedge``; the PyG
loops redraw ``dropout_edge`` each epoch, uncached). gdepth's batched engine then trains each
seed in its own batch with its own draws, as the loop does, unless ``train.shared_graph_dropout``
(one draw per epoch for all the seeds of a batch): the column ``batched_shared``.

Accuracy agreement: per depth, Welch's t-test of the seeds' test accuracies of each column
against ``pyg`` (else ``pyg_sparse``; the columns draw different dropout masks, so they agree
in distribution, not run by run); a depth disagrees when p < 0.05 / (number of depths)
(Bonferroni); the pooled z of the mean differences is
:math:`\sum_d \Delta_d / \sqrt{\sum_d SE_d^2}`.

Floor (without DropEdge): the FLOPs the workload cannot avoid — per seed-epoch the sparse first
layer :math:`2\,\mathrm{nnz}(X)h`, the dense :math:`2Nd_{in}d_{out}` and
:math:`2\,\mathrm{nnz}(\hat A)d` products of every layer, twice again for the backward pass
(once for the first layer, whose input needs no gradient) and once more for the evaluation
forward — divided by the FLOP/s of a large plain matmul measured here, same device and threads.

End to end (``--cli``, default on): the same sweep as one ``gdepth sweep ... engine=batched``
subprocess after the library calls (``benchmarks/cli_timing.py``); its wall time beside the
batched column's gives the CLI's overhead.

Results: ``benchmarks/results/sweep_speed_<workload>[_dropedge<P>].json`` (or ``--json``),
rendered by ``python benchmarks/render.py``.

    python benchmarks/sweep_speed.py --quick                    # ~2 min smoke run (Cora)
    python benchmarks/sweep_speed.py --workload cora_small --threads 1
    python benchmarks/sweep_speed.py --workload cora_d16 --threads 1 --dropedge 0.3 \
        --engines pyg_sparse,loop,batched,batched_shared --no-cli
    python benchmarks/sweep_speed.py --workload cora            # gcn_res, depth 2..64, 10 seeds
    python benchmarks/sweep_speed.py --workload coauthor_cs     # gcn, depth 2..32, 10 seeds
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli_timing  # noqa: E402
import meta  # noqa: E402
from pyg_loop import DROPOUT, HIDDEN, LR, WD, run_pyg  # noqa: E402
from render import step_gains  # noqa: E402

from gdepth import config, data, engine  # noqa: E402
from gdepth.cell import prepare  # noqa: E402
from gdepth.engine import slices  # noqa: E402
from gdepth.nn.propagation import adjacency_storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # model, dataset, depths, seeds, epochs
    "cora": ("gcn_res", "cora", [2, 4, 8, 16, 32, 64], 10, 200),
    "cora_small": ("gcn_res", "cora", [2, 8, 32], 5, 100),
    "cora_d16": ("gcn_res", "cora", [16], 5, 100),  # with --dropedge: DropEdge's depth
    "coauthor_cs": ("gcn", "coauthor_cs", [2, 4, 8, 16, 32], 10, 200),
    "quick": ("gcn_res", "cora", [2, 8], 3, 20),
}
ENGINES = ("pyg", "pyg_sparse", "loop", "batched", "batched_shared")
DEFAULT_ENGINES = "pyg,pyg_sparse,loop,batched"


def cell_cfg(model: str, dataset_cfg: config.DatasetConfig, depth: int, seeds: int,
             epochs: int, dropedge: float, shared: bool) -> config.GdepthConfig:
    """The cell's typed config for ``engine.run_seeds``: the benchmark's hyperparameters."""
    return config.typed({
        "model": {"name": model, "hidden": HIDDEN, "dropout": DROPOUT, "dropout_layers": "all",
                  "activation": "relu"},
        "norm": {"name": "none"}, "depth": depth, "seeds": seeds,
        "dataset": dataclasses.asdict(dataset_cfg),
        "train": {"name": "benchmark", "optimizer": "adam", "lr": LR, "weight_decay": WD,
                  "epochs": epochs, "patience": None, "selection": "best_val_acc",
                  "dropedge": dropedge, "shared_graph_dropout": shared}})


def matmul_flops(device: torch.device, n: int = 2048) -> float:
    """FLOP/s of a large plain fp32 matmul (median of 7)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    times = []
    for _ in range(8):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times[1:])


def workload_flops(x: torch.Tensor, adj: torch.Tensor, classes: int, depth: int) -> float:
    """Unavoidable FLOPs of one seed-epoch: train forward + backward, eval forward."""
    n = adj.shape[0]
    nnz_x = x.values().numel() if x.layout == torch.sparse_csr else int(torch.count_nonzero(x))
    nnz_a = adj.values().numel()
    dims = [HIDDEN] * (depth - 1) + [classes]
    first = 2 * nnz_x * dims[0] + 2 * nnz_a * dims[0]
    rest = sum(2 * n * a * b + 2 * nnz_a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    # forward 1x, backward: first layer weight grad 1x (+ its spmm), others 2x; eval 1x
    return (first + rest) + (first + 2 * rest) + (first + rest)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Δmean, its standard error and Welch's two-sided p-value."""
    from scipy import stats

    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    delta = statistics.fmean(a) - statistics.fmean(b)
    p = 1.0 if se == 0 else float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return delta, se, p


def agreement(accs: dict[int, list[float]], base: dict[int, list[float]]) -> dict[str, Any]:
    """Welch per depth (Bonferroni) and the pooled z of one column against the baseline."""
    depths = sorted(accs)
    if min(len(v) for v in [*accs.values(), *base.values()]) < 2:
        return {"verdict": "n/a (one seed)", "z": None, "p": {}}
    tests = {d: welch(accs[d], base[d]) for d in depths}
    bad = [d for d, t in tests.items() if t[2] < 0.05 / len(depths)]
    se = math.sqrt(sum(t[1] ** 2 for t in tests.values()))
    z = sum(t[0] for t in tests.values()) / se if se else 0.0
    verdict = ("agree" if not bad and abs(z) < 2 else f"DISAGREE at depths {bad}" if bad
               else "DISAGREE (|pooled z| >= 2)")
    return {"verdict": verdict, "z": z, "p": {str(d): t[2] for d, t in tests.items()}}


def _to(graph, device):
    from dataclasses import replace

    fields = ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask")
    return replace(graph, **{f: getattr(graph, f).to(device) for f in fields})


def run_engine(eng: str, depth: int, spec: dict, args, device) -> list[float]:
    """One column's cell at ``depth``: its seeds' test accuracies."""
    model, seeds, epochs, dropedge = spec["model"], spec["seeds"], spec["epochs"], args.dropedge
    if eng in ("pyg", "pyg_sparse"):
        x = spec["x_dense"] if eng == "pyg" else spec["x_sparse"]
        return [run_pyg(g, x, depth, model == "gcn_res", s, epochs, dropedge)
                for s, g in enumerate(spec["pyg_graphs"])]
    prepared = [prepare(g, spec["dataset_cfg"], device) for g in spec["raw"]]
    adj, graphs = prepared[0][1], [p[0] for p in prepared]
    cfg = cell_cfg(model, spec["dataset_cfg"], depth, seeds, epochs, dropedge,
                   eng == "batched_shared")
    max_seeds = 1 if eng == "loop" else None
    probe = slices.parameters_per_seed(engine.build(cfg, graphs[0], [0], device, False))
    spec["split"][eng], _ = engine.batch_size(cfg, graphs, probe, device, max_seeds)
    results = engine.run_seeds(cfg, lambda s: graphs[s], adj, device, max_seeds=max_seeds,
                               adjacency=adjacency_storage(args.adjacency, adj))
    return [r.test_acc for r in results]


def run_workload(name: str, args: argparse.Namespace, device: torch.device,
                 engines: list[str], save: Any = None) -> dict[str, Any]:
    """The workload's columns depth by depth, then ``gdepth sweep``; ``save(result)`` after
    every depth (``"complete": false`` until the end), so a run cut short keeps its rows."""
    model, dataset, depths, seeds, epochs = WORKLOADS[name]
    depths, seeds = args.depths or depths, args.seeds or seeds
    epochs = args.epochs or epochs
    dataset_cfg = config.dataset(dataset, split=data.spec(dataset).default_split,
                                 normalize_features=False, adjacency="sym", self_loops=True)
    data_cfg = config.DataConfig(root=args.data_root, mirror=args.mirror)
    raw = [data.load(dataset_cfg, data_cfg, s) for s in range(seeds)]
    pyg_graphs = [_to(g, device) for g in raw]
    x_dense = pyg_graphs[0].x
    spec = {"model": model, "seeds": seeds, "epochs": epochs, "raw": raw,
            "dataset_cfg": dataset_cfg, "pyg_graphs": pyg_graphs, "x_dense": x_dense,
            "x_sparse": x_dense.to_sparse_csr(), "split": {}}
    base = next((e for e in ("pyg", "pyg_sparse") if e in engines), None)
    g0, adj0, _ = prepare(raw[0], dataset_cfg, device)
    storage = adjacency_storage(args.adjacency, adj0)
    print(f"\n== {name}: {model} on {dataset}, depths {depths}, {seeds} seeds, {epochs} epochs, "
          f"device {device}, threads {torch.get_num_threads()}, adjacency {args.adjacency} "
          f"({storage}), DropEdge {args.dropedge or 'off'}", flush=True)
    warm = {**spec, "epochs": 2}  # untimed: first calls pay one-time costs (lazy inits)
    for eng in engines:
        run_engine(eng, depths[0], warm, args, device)
    rate = matmul_flops(device)
    print(f"plain 2048^3 fp32 matmul: {rate / 1e9:.1f} GFLOP/s", flush=True)
    print(f"{'depth':>5} " + " ".join(f"{e + ' s':>16}" for e in engines)
          + "   test acc " + " | ".join(engines), flush=True)
    wall = dict.fromkeys(engines, 0.0)
    accs: dict[str, dict[int, list[float]]] = {e: {} for e in engines}
    flops, rows = 0.0, []
    for i, depth in enumerate(depths):
        took: dict[str, float] = {}
        for eng in (engines if i % 2 == 0 else engines[::-1]):
            _sync(device)
            t0 = time.perf_counter()
            accs[eng][depth] = run_engine(eng, depth, spec, args, device)
            _sync(device)
            took[eng] = time.perf_counter() - t0
            wall[eng] += took[eng]
        rows.append({"depth": depth, "wall_s": took,
                     "test_acc": {e: accs[e][depth] for e in engines}})
        flops += seeds * epochs * workload_flops(g0.x, adj0, g0.num_classes, depth)
        means = " | ".join(f"{100 * statistics.fmean(accs[e][depth]):.1f}" for e in engines)
        print(f"{depth:5d} " + " ".join(f"{took[e]:16.1f}" for e in engines) + f"   {means}",
              flush=True)
        result = {"workload": name, "model": model, "dataset": dataset, "depths": depths,
                  "seeds": seeds, "epochs": epochs, "dropedge": args.dropedge,
                  "adjacency": {"requested": args.adjacency, "used": storage},
                  "engines": engines, "wall_s": dict(wall), "rows": rows,
                  "floor_s": None if args.dropedge else flops / rate,
                  "matmul_gflops": rate / 1e9, "steps": step_gains(wall),
                  "seeds_per_batch": spec["split"], "baseline": base,
                  "agreement": {e: agreement(accs[e], accs[base]) for e in engines
                                if base is not None and e != base},
                  "complete": False}
        if save is not None:
            save(result)
    if args.cli and "batched" in engines:
        cli = cli_timing.run_cli(
            cli_timing.overrides(model, dataset, depths, seeds, epochs, device.type,
                                 torch.get_num_threads(), args.adjacency, args.dropedge),
            {k: v for k, v in (("GDEPTH_DATA", args.data_root),
                               ("GDEPTH_DATA_MIRROR", args.mirror)) if v})
        result["cli"] = cli_timing.compare(cli, wall["batched"])
    result["complete"] = True
    _print_summary(result)
    return result


def _print_summary(r: dict[str, Any]) -> None:
    wall = r["wall_s"]
    for eng, took in wall.items():
        floor = f" = {took / r['floor_s']:6.1f}x the floor" if r["floor_s"] else ""
        print(f"  {eng:15s} {took:8.1f} s{floor}")
    for step in r["steps"]:
        print(f"  {step['step']:28s} {step['from']:>15} -> {step['to']:<15} "
              f"{step['ratio']:6.2f}x")
    for eng, found in r["agreement"].items():
        z = "" if found["z"] is None else f", pooled z {found['z']:+.2f}"
        print(f"  accuracy {eng} vs {r['baseline']}: {found['verdict']}{z}")
    if "cli" in r:
        c = r["cli"]
        print(f"  gdepth sweep {c['wall_s']:.1f} s (cells {c['cells_wall_s']:.1f} s) vs library "
              f"{c['library_wall_s']:.1f} s: overhead {c['overhead_s']:+.1f} s "
              f"({100 * c['overhead_share']:+.0f} %)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "sweep_speed_<workload>[_dropedge<P>].json", threads=None)
    parser.add_argument("--workload", default="cora", choices=[*WORKLOADS, "all"])
    parser.add_argument("--quick", action="store_true", help="the smoke run (--workload quick)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--engines", default=None,
                        help=f"comma-separated, of {', '.join(ENGINES)} (default: "
                             f"{DEFAULT_ENGINES}, and batched_shared with --dropedge)")
    parser.add_argument("--adjacency", default="auto", choices=["auto", "sparse", "dense"],
                        help="gdepth's adjacency storage (as adjacency=)")
    parser.add_argument("--dropedge", type=float, default=0.0, help="train.dropedge rate")
    parser.add_argument("--depths", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--no-cli", dest="cli", action="store_false",
                        help="skip the end-to-end gdepth sweep timing")
    parser.add_argument("--data-root", default=os.environ.get("GDEPTH_DATA"))
    args = parser.parse_args(argv)
    engines = (args.engines or DEFAULT_ENGINES + (",batched_shared" if args.dropedge else "")
               ).split(",")
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        parser.error(f"unknown engine '{bad[0]}'; valid: {', '.join(ENGINES)}")
    if not 0.0 <= args.dropedge < 1.0:
        parser.error(f"--dropedge {args.dropedge}: valid: a rate in [0, 1)")
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    workload = "quick" if args.quick else args.workload
    names = ["cora", "coauthor_cs"] if workload == "all" else [workload]
    device, info = meta.start(args, args.device)
    suffix = f"_dropedge{args.dropedge:g}" if args.dropedge else ""
    if args.depths or args.seeds or args.epochs:  # not the named workload: keep its file
        suffix += "_custom"
    path = args.json or meta.default_path(f"sweep_speed_{workload}{suffix}")
    results: list[dict[str, Any]] = []
    for n in names:
        results.append(run_workload(
            n, args, device, engines,
            save=lambda partial: meta.write(path, "sweep_speed", info, [*results, partial],
                                            quiet=True)))
        meta.write(path, "sweep_speed", info, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
