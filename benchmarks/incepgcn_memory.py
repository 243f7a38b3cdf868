r"""IncepGCN's training-step memory now against the engine twin before the one-definition rewrite.

Until commit ``1d1170a`` the batched engine stacked S one-seed IncepGCN models into its own twin
(``gdepth/engine/dropedge.py``, ``engine.stack``); since then the model is written once,
seed-native (``gdepth/models/dropedge_backbones.py``). This measures, for each S of
``--seeds`` and each of the two trees (the current one, and ``--old`` exported with
``git archive`` into a temporary folder), the memory of one training step of IncepGCN at
``--depth`` on Cora (raw sparse features, symmetric normalized adjacency with self loops, the
config's defaults: hidden 64, dropout 0.5, no norm): forward in training mode, the summed
cross-entropy of the training nodes, backward. Each measurement runs in a fresh process (the
tree on its ``PYTHONPATH``), after one untimed step (the caches every step reuses: transposed
adjacency, mask buffers) with the gradients freed, ``torch.manual_seed(0)`` before the step,
the two trees in alternating order. Two numbers per step:

* **tensor peak** (a later step than the RSS one: the profiler's own records would count in
  the resident memory): the largest total of tensor bytes allocated during the step and not yet
  freed (``torch.profiler`` with ``profile_memory=True``: the CPU allocator's running total,
  the ``Total Allocated`` of its memory events, counted from the step's start): what the step
  itself holds at its peak;
* **RSS peak**: the process's peak resident memory during the second step, unprofiled (Linux
  ``VmHWM``, reset through ``/proc/self/clear_refs`` just before), beside its resident memory
  just before that step: the tensors plus what the allocator keeps around them, plus the
  process itself (Python, torch, PyG, the graph, the model; memory the allocator kept from the
  first step is already resident before, so the peak, not its difference to the start, is
  the comparable number).

The step's loss is printed for both trees: with the same initial weights and the same dropout
masks they agree to float rounding, so the two measure the same computation.

    python benchmarks/incepgcn_memory.py --threads 1            # depth 64, S = 1 and 2

Results: ``benchmarks/results/incepgcn_memory_<dataset>.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OLD = "1d1170a"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _cora(mirror: str):
    """Cora from the mirror through PyG (a temporary root: the mirror is read-only)."""
    from torch_geometric.datasets import Planetoid

    root = Path(tempfile.mkdtemp(prefix="gdepth-cora-"))
    shutil.copytree(Path(mirror) / "Planetoid" / "Cora" / "raw", root / "Cora" / "raw")
    graph = Planetoid(str(root), "Cora")[0]
    shutil.rmtree(root)
    return graph


def _model(depth: int, seeds: int, in_dim: int, out_dim: int):
    """IncepGCN for ``seeds`` seeds as the tree on the path builds it, and its input and
    propagation classes."""
    import torch

    from gdepth import models

    if hasattr(models, "build_seeded"):  # the one definition, seed-native
        from gdepth import config
        from gdepth.nn.kernels import StackedInput
        from gdepth.nn.propagation import propagation

        model = models.build_seeded(config.group("model", name="incepgcn"),
                                    config.group("norm", name="none"), depth, in_dim, out_dim,
                                    seeds=list(range(seeds)))
        return model, StackedInput, propagation
    from gdepth.engine.layers import StackedInput, propagation

    from gdepth import engine  # the engine twin: S one-seed models stacked

    options = {"name": "incepgcn", "hidden": 64, "dropout": 0.5, "dropout_layers": "all",
               "activation": "relu"}
    loop = []
    for s in range(seeds):
        torch.manual_seed(s)
        loop.append(models.build(options, {"name": "none"}, depth, in_dim, out_dim))
    return engine.stack(loop), StackedInput, propagation


def worker(depth: int, seeds: int, mirror: str, threads: int) -> dict[str, Any]:
    """One tree's measurements (module docstring), as a dict."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    import gdepth
    from gdepth.models.adjacency import normalized_adjacency

    torch.set_num_threads(threads)
    graph = _cora(mirror)
    x = graph.x.to_sparse_csr()
    adj = normalized_adjacency(graph.edge_index, graph.num_nodes, self_loops=True,
                               normalization="sym")
    model, stacked_input, propagation = _model(depth, seeds, graph.num_features,
                                               int(graph.y.max()) + 1)
    x_in, prop = stacked_input(x), propagation(adj)
    train, y = graph.train_mask, graph.y

    def step() -> float:
        model.train()
        out = model(x_in, prop)[train]  # [R, S, C]
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]),
                               y[train][:, None].expand(-1, seeds).reshape(-1), reduction="sum")
        loss.backward()
        return float(loss) / seeds

    def fresh() -> None:
        for p in model.parameters():
            p.grad = None
        torch.manual_seed(0)

    fresh()
    step()  # the caches a step builds once
    fresh()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    step()
    peak = _status_kib("VmHWM")
    fresh()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        loss = step()
    trace = Path(tempfile.mkstemp(suffix=".json")[1])
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    trace.unlink()
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"tree": str(Path(gdepth.__file__).resolve().parents[1]), "seeds": seeds,
            "loss": loss, "tensor_peak_bytes": max(totals), "rss_before_bytes": before * 1024,
            "rss_peak_bytes": peak * 1024,
            "parameter_bytes": params}


def measure(tree: Path, depth: int, seeds: int, mirror: str, threads: int) -> dict[str, Any]:
    """:func:`worker` in a fresh process with ``tree`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, __file__, "--worker", "--depth", str(depth),
                           "--seeds", str(seeds), "--mirror", mirror, "--threads",
                           str(threads)], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker for {tree} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(found["tree"]) != tree.resolve():
        raise SystemExit(f"worker imported gdepth from {found['tree']}, not {tree}")
    return found


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import meta  # standard library only at import: the worker's old tree is untouched

    parser = meta.parser(__doc__, "incepgcn_memory_cora.json")
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--seeds", default="1,2", help="the S to measure, comma-separated")
    parser.add_argument("--old", default=OLD, help="the commit of the engine twin")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.depth, int(args.seeds), args.mirror, args.threads)))
        return 0
    info = meta.meta("cpu", args.threads, args.note)
    old = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.old], capture_output=True,
                         text=True, check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="gdepth-old-") as folder:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", old, "gdepth"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        trees = {"now": ROOT, "before": Path(folder)}
        print(f"IncepGCN depth {args.depth} on Cora, one training step; before = {old[:10]}")
        print(f"{'S':>2} {'tree':>6} {'tensor peak MiB':>15} {'RSS before MiB':>14} "
              f"{'RSS peak MiB':>12} "
              f"{'params MiB':>10} {'loss':>10}")
        for i, seeds in enumerate(int(s) for s in args.seeds.split(",")):
            row: dict[str, Any] = {"seeds": seeds}
            for name in (("before", "now") if i % 2 == 0 else ("now", "before")):
                found = measure(trees[name], args.depth, seeds, args.mirror, args.threads)
                found.pop("tree")
                row[name] = found
                print(f"{seeds:>2} {name:>6} {found['tensor_peak_bytes'] / 2**20:15.1f} "
                      f"{found['rss_before_bytes'] / 2**20:14.1f} "
                      f"{found['rss_peak_bytes'] / 2**20:12.1f} "
                      f"{found['parameter_bytes'] / 2**20:10.2f} {found['loss']:10.6f}",
                      flush=True)
            rows.append(row)
    meta.write(args.json or meta.default_path("incepgcn_memory_cora"), "incepgcn_memory", info,
               {"model": "incepgcn", "dataset": "cora", "depth": args.depth, "old": old,
                "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
