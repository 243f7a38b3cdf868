r"""Depth-sweep speed: a plain PyG loop against gdepth's seed-batched engine, in one process.

Runs the same sweep (one model, depths × seeds × epochs, Adam lr 0.01 wd 5e-4, hidden 64,
dropout 0.5 before every conv, ReLU, test accuracy at the first epoch of best validation
accuracy, evaluation after every epoch) two ways, interleaved depth by depth (the order
alternates, so drifting load on a shared machine hits both):

* ``pyg``: as PyG's examples write it (``examples/gcn.py``): a ``GCNConv(cached=True)`` stack
  with its own normalization on ``edge_index``, dense features, one seed after another;
* ``batched``: ``gdepth.engine.run_seeds``: all seeds at once, sparse features, cached adjacency
  (``--adjacency``, as the ``adjacency=`` option: auto is dense on CUDA for Cora, else sparse);
* ``loop`` (optional, ``--engines pyg,batched,loop``): gdepth's training loop in batches of one
  seed (``engine=loop``: ``run_seeds`` with ``max_seeds=1``).

Accuracy agreement: per depth, Welch's t-test of the seeds' test accuracies of ``pyg`` vs
``batched`` (the engines draw different dropout masks, so they agree in distribution, not run
by run); a depth disagrees when p < 0.05 / (number of depths) (Bonferroni), and the summary
gives the pooled z of the mean differences, :math:`\sum_d \Delta_d / \sqrt{\sum_d SE_d^2}`.

Floor: the FLOPs the workload cannot avoid — per seed-epoch the sparse first layer
:math:`2\,\mathrm{nnz}(X)h`, the dense :math:`2Nd_{in}d_{out}` and :math:`2\,\mathrm{nnz}(\hat A)d`
products of every layer, twice again for the backward pass (once for the first layer, whose
input needs no gradient) and once more for the evaluation forward — divided by the FLOP/s of
a large plain matmul measured here, on the same device and threads.

    python benchmarks/sweep_speed.py --quick                  # ~1 min smoke run (Cora)
    python benchmarks/sweep_speed.py --workload cora          # gcn_res, depth 2..64, 10 seeds
    python benchmarks/sweep_speed.py --workload coauthor_cs   # gcn, depth 2..32, 10 seeds
    python benchmarks/sweep_speed.py --workload all --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from gdepth import config, data, engine
from gdepth.cell import prepare
from gdepth.nn.kernels import adjacency_storage

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {  # model, dataset, depths, seeds, epochs
    "cora": ("gcn_res", "cora", [2, 4, 8, 16, 32, 64], 10, 200),
    "coauthor_cs": ("gcn", "coauthor_cs", [2, 4, 8, 16, 32], 10, 200),
    "quick": ("gcn_res", "cora", [2, 8], 3, 20),
}
HIDDEN, DROPOUT, LR, WD = 64, 0.5, 0.01, 5e-4


class PygNet(torch.nn.Module):
    """PyG's example GCN, ``depth`` convs; ``residual`` adds GCN-res's hidden skips."""

    def __init__(self, in_dim: int, out_dim: int, depth: int, residual: bool) -> None:
        super().__init__()
        dims = [in_dim] + [HIDDEN] * (depth - 1) + [out_dim]
        self.convs = torch.nn.ModuleList(GCNConv(a, b, cached=True)
                                         for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.residual = residual

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs[:-1]):
            h = conv(F.dropout(x, p=DROPOUT, training=self.training), edge_index).relu()
            x = h + x if self.residual and i > 0 else h
        return self.convs[-1](F.dropout(x, p=DROPOUT, training=self.training), edge_index)


def run_pyg(graph, depth: int, residual: bool, seed: int, epochs: int) -> float:
    """One seed, written as PyG's examples; the test accuracy at the best validation accuracy."""
    torch.manual_seed(seed)
    model = PygNet(graph.num_features, graph.num_classes, depth, residual).to(graph.x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WD)
    x, ei, y = graph.x, graph.edge_index, graph.y
    masks = (graph.train_mask, graph.val_mask, graph.test_mask)
    best_val = test_acc = 0.0
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        out = model(x, ei)
        F.cross_entropy(out[graph.train_mask], y[graph.train_mask]).backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            pred = model(x, ei).argmax(dim=-1)
        _, val, test = [int((pred[m] == y[m]).sum()) / int(m.sum()) for m in masks]
        if val > best_val:
            best_val, test_acc = val, test
    return test_acc


def run_loop(cfg, graphs, adj, storage) -> list[float]:
    """gdepth's loop in batches of one seed (``engine=loop``)."""
    results = engine.run_seeds(cfg, lambda s: graphs[s], adj, graphs[0].x.device, max_seeds=1,
                               adjacency=storage)
    return [r.test_acc for r in results]


def cell_cfg(model: str, dataset_cfg: config.DatasetConfig, depth: int, seeds: int,
             epochs: int) -> config.GdepthConfig:
    return config.typed({
        "model": {"name": model, "hidden": HIDDEN, "dropout": DROPOUT, "dropout_layers": "all",
                  "activation": "relu"},
        "norm": {"name": "none"}, "dataset": dataclasses.asdict(dataset_cfg), "depth": depth,
        "seeds": seeds,
        "train": {"name": "benchmark", "optimizer": "adam", "lr": LR, "weight_decay": WD,
                  "epochs": epochs, "patience": None, "selection": "best_val_acc"}})


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


def _stats(accs: list[float]) -> tuple[float, float]:
    return statistics.fmean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0


def welch(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Δmean, its standard error and Welch's two-sided p-value."""
    from scipy import stats

    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    delta = statistics.fmean(a) - statistics.fmean(b)
    p = 1.0 if se == 0 and delta == 0 else float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return delta, se, p


def run_workload(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    model, dataset, depths, seeds, epochs = WORKLOADS[name]
    depths, seeds = args.depths or depths, args.seeds or seeds
    epochs = args.epochs or epochs
    engines = args.engines.split(",")
    dataset_cfg = config.dataset(dataset, split=data.spec(dataset).default_split,
                                 normalize_features=False, adjacency="sym", self_loops=True)
    data_cfg = config.DataConfig(root=args.data_root, mirror=args.mirror)
    raw = [data.load(dataset_cfg, data_cfg, s) for s in range(seeds)]
    pyg_graphs = [_to(g, device) for g in raw]
    print(f"\n== {name}: {model} on {dataset}, depths {depths}, {seeds} seeds, {epochs} epochs, "
          f"device {device}, threads {torch.get_num_threads()}, engines {engines}, "
          f"adjacency {args.adjacency}", flush=True)
    rate = matmul_flops(device)
    print(f"plain {2048}^3 fp32 matmul: {rate / 1e9:.1f} GFLOP/s", flush=True)
    print(f"{'depth':>5} " + " ".join(f"{e + ' s':>10}" for e in engines)
          + "   test acc: " + " | ".join(engines) + "   Welch p", flush=True)
    wall = dict.fromkeys(engines, 0.0)
    accs: dict[str, dict[int, list[float]]] = {e: {} for e in engines}
    flops, rows = 0.0, []
    for i, depth in enumerate(depths):
        order = engines if i % 2 == 0 else engines[::-1]
        took: dict[str, float] = {}
        cfg = cell_cfg(model, dataset_cfg, depth, seeds, epochs)
        for eng in order:
            _sync(device)
            t0 = time.perf_counter()
            if eng == "pyg":
                accs[eng][depth] = [run_pyg(g, depth, model == "gcn_res", s, epochs)
                                    for s, g in enumerate(pyg_graphs)]
            else:
                prepared = [prepare(g, dataset_cfg, device) for g in raw]
                adj = prepared[0][1]
                graphs = [p[0] for p in prepared]
                storage = adjacency_storage(args.adjacency, adj)
                if eng == "batched":
                    results = engine.run_seeds(cfg, lambda s, gs=graphs: gs[s], adj, device,
                                               adjacency=storage)
                    accs[eng][depth] = [r.test_acc for r in results]
                else:
                    accs[eng][depth] = run_loop(cfg, graphs, adj, storage)
            _sync(device)
            took[eng] = time.perf_counter() - t0
            wall[eng] += took[eng]
            rows.append({"depth": depth, "engine": eng, "wall_s": took[eng]})
        g0, adj0, _ = prepare(raw[0], dataset_cfg, device)
        flops += seeds * epochs * workload_flops(g0.x, adj0, g0.num_classes, depth)
        cells = " ".join(f"{took[e]:10.1f}" for e in engines)
        acc_txt = " | ".join("{:.1f} ± {:.1f}".format(*(100 * v for v in _stats(accs[e][depth])))
                             for e in engines)
        p = welch(accs["pyg"][depth], accs["batched"][depth])[2] if len(engines) > 1 else math.nan
        print(f"{depth:5d} {cells}   {acc_txt}   {p:.2f}", flush=True)
    return _summary(name, engines, depths, wall, accs, flops, rate, rows)


def _to(graph, device):
    from dataclasses import replace

    fields = ("x", "y", "edge_index", "train_mask", "val_mask", "test_mask")
    return replace(graph, **{f: getattr(graph, f).to(device) for f in fields})


def _summary(name, engines, depths, wall, accs, flops, rate, rows) -> dict:
    floor = flops / rate
    print(f"floor: {flops / 1e12:.2f} TFLOP unavoidable / {rate / 1e9:.1f} GFLOP/s "
          f"= {floor:.1f} s")
    for eng in engines:
        print(f"  {eng:8s} {wall[eng]:8.1f} s = {wall[eng] / floor:6.1f}x the floor")
    verdict, z = "n/a", math.nan
    if {"pyg", "batched"} <= set(engines):
        tests = [welch(accs["pyg"][d], accs["batched"][d]) for d in depths]
        bad = [d for d, t in zip(depths, tests, strict=True) if t[2] < 0.05 / len(depths)]
        se = math.sqrt(sum(t[1] ** 2 for t in tests))
        z = sum(t[0] for t in tests) / se if se else 0.0
        verdict = "agree" if not bad and abs(z) < 2 else f"DISAGREE at depths {bad}, z={z:.2f}"
        print(f"accuracy pyg vs batched: {verdict} (Welch per depth, Bonferroni 0.05/"
              f"{len(depths)}; pooled z of the mean differences {z:+.2f})")
    ratio = wall["pyg"] / wall["batched"] if {"pyg", "batched"} <= set(engines) else math.nan
    print(f"RESULT {name}: pyg {wall.get('pyg', math.nan):.1f} s, batched "
          f"{wall.get('batched', math.nan):.1f} s, speedup pyg/batched = {ratio:.2f}x", flush=True)
    return {"workload": name, "wall_s": wall, "ratio": ratio, "floor_s": floor, "z": z,
            "verdict": verdict, "rows": rows,
            "accs": {e: {str(d): v for d, v in a.items()} for e, a in accs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="cora", choices=[*WORKLOADS, "all"])
    parser.add_argument("--quick", action="store_true", help="the ~1 minute smoke run")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--engines", default="pyg,batched", help="pyg,batched[,loop]")
    parser.add_argument("--adjacency", default="auto", choices=["auto", "sparse", "dense"],
                        help="the batched engine's adjacency storage (as adjacency=)")
    parser.add_argument("--depths", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--data-root", default=os.environ.get("GDEPTH_DATA"))
    parser.add_argument("--mirror", default=os.environ.get(
        "GDEPTH_DATA_MIRROR", str(ROOT.parent / "shared" / "datasets")))
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = ["quick"] if args.quick else (
        ["cora", "coauthor_cs"] if args.workload == "all" else [args.workload])
    results = [run_workload(n, args, device) for n in names]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
