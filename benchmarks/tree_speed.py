r"""Tree-NeighborsMatch training speed: seconds per pass by levels against PyG's message passing.

``gdepth reproduce alon2021_treematch`` trains Alon & Yahav's model (``model=bottleneck``,
``train=alon2021``: their batch size for each r and conv, Adam, ``r + 1`` layers, the run scripts'
per-conv flags) with :func:`gdepth.train_trees.fit_trees`. This benchmark times one pass (one
shuffled epoch over the training trees, ``passes_per_epoch=1``) for each conv and depth ``r``,
two ways, one after the other per (conv, r) (alternating which goes first), each in its own
process of this checkout:

* ``message_passing`` (the baseline): ``fit_trees(fast=False)``, PyG's layers
  (:meth:`gdepth.models.bottleneck.Bottleneck.forward`) on a block-diagonal batch gathered from
  the whole graph's CSR rows, the path every tree_match cell took before the level-wise one;
* ``levels``: ``fit_trees()`` as a cell runs it (:mod:`gdepth.tree_levels`,
  :mod:`gdepth.models.bottleneck_trees`; GIN's small batches still by message passing,
  :func:`gdepth.tree_levels.pays`).

Each process loads the data as a cell does (``gdepth.cell.prepare``: sparse CSR features), runs
``--passes`` passes (``--mp-passes`` for message passing at r >= 5, where a pass takes up to a
minute) and reports every pass's wall time (``on_epoch``). The first pass also holds the set-up
and the one evaluation of the test trees (``min_delta`` 2: no later epoch improves, so none
evaluates again); s/pass is the median of the later passes (the first one's where there is no
other), in wall time and in the process's CPU time (less sensitive to other processes on a
shared machine). Both paths start from the same initial model and batch order, so their train
accuracies agree (up to rounding: GIN's BatchNorm sums in another order).

    python benchmarks/tree_speed.py                          # r = 2..6, gcn gin gat ggnn
    python benchmarks/tree_speed.py --r 2 3 --models gcn     # a quick look

Results: ``benchmarks/results/tree_speed.json`` (or ``--json``), rendered by
``python benchmarks/render.py``; ``gdepth.reproduce.cells.TREE_PASS_SECONDS`` (the
``--list`` estimate) holds its level-wise CPU seconds per pass.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONV_FLAGS = {  # configs/experiment/alon2021_treematch.yaml
    "gcn": [], "gin": [],
    "gat": ["model.activation=identity"],
    "ggnn": ["model.activation=identity", "model.residual=false", "model.layer_norm=false"],
}
PATHS = ("message_passing", "levels")


def worker(conv: str, depth_r: int, passes: int, threads: int, fast: bool) -> dict:
    """Time ``passes`` passes of one path; runs in a child process."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gdepth import compose as gdepth_compose
    from gdepth import config, data, models, train_trees, tree_batch
    from gdepth.cell import prepare
    from gdepth.paths import config_dir

    torch.set_num_threads(threads)
    overrides = ["model=bottleneck", "train=alon2021", "norm=none", "dataset=tree_match",
                 f"dataset.depth_r={depth_r}", f"depth={depth_r + 1}", f"model.conv={conv}",
                 *CONV_FLAGS[conv], f"train.epochs={passes}", f"train.patience={passes + 1}",
                 "train.min_delta=2.0", "train.stop_at=null"]
    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        composed = compose("config", overrides=overrides)
    cfg = config.typed(OmegaConf.to_container(composed, resolve=True, enum_to_str=True))
    loaded = time.perf_counter()
    graph, adj, kind = prepare(data.load(cfg.dataset, cfg.data, 0), cfg.dataset,
                               torch.device("cpu"))
    loaded = time.perf_counter() - loaded
    torch.manual_seed(0)
    model = models.build(cfg.model, cfg.norm, depth_r + 1, graph.num_features,
                         graph.num_classes)
    b = tree_batch.batching(cfg.train, conv, depth_r)
    b = tree_batch.Batching(b.batch_size, b.accum_grad, 1)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("gdepth").addHandler(handler)
    logging.getLogger("gdepth").setLevel(logging.INFO)
    stamps = [(time.perf_counter(), time.process_time())]
    result = train_trees.fit_trees(
        model, graph, adj, cfg.train, 0, b, fast=fast,
        on_epoch=lambda _: stamps.append((time.perf_counter(), time.process_time())))
    path = "message passing"
    if fast and not any("message passing" in m for m in messages):
        nodes = (b.batch_size or int(graph.train_mask.sum())) * (2 ** (depth_r + 1) - 1)
        path = ("levels" if train_trees.tree_levels.pays(model.train(), nodes)
                else "message passing (small batches), levels to evaluate")
    return {"pass_s": [b[0] - a[0] for a, b in zip(stamps[:-1], stamps[1:], strict=True)],
            "pass_cpu_s": [b[1] - a[1] for a, b in zip(stamps[:-1], stamps[1:], strict=True)],
            "train_acc": result.train_acc, "features": kind, "load_s": loaded,
            "batch_size": b.batch_size, "trees": int(graph.train_mask.sum()), "path": path}


def _child(conv: str, depth_r: int, passes: int, threads: int, fast: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", conv, str(depth_r),
         str(passes), str(threads), str(int(fast))], cwd=ROOT, env=env, capture_output=True,
        text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{conv} r={depth_r} fast={fast} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _per_pass(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def row(conv: str, depth_r: int, runs: dict[str, dict]) -> dict:
    """One (conv, r): both paths' s/pass (wall, CPU), the ratios, each path's accuracy."""
    lv = runs["levels"]
    out = {"model": conv, "r": depth_r, "trees": lv["trees"], "batch_size": lv["batch_size"],
           "features": lv["features"], "levels_path": lv["path"]}
    for name, run in runs.items():
        out[f"{name}_s_per_pass"] = _per_pass(run["pass_s"])
        out[f"{name}_cpu_s_per_pass"] = _per_pass(run["pass_cpu_s"])
        out[f"{name}_pass_s"] = run["pass_s"]
        out[f"{name}_train_acc"] = run["train_acc"]
    out["speedup"] = out["message_passing_s_per_pass"] / out["levels_s_per_pass"]
    out["cpu_speedup"] = out["message_passing_cpu_s_per_pass"] / out["levels_cpu_s_per_pass"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "tree_speed.json", mirror=False)  # generated trees
    parser.add_argument("--r", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--models", nargs="+", default=list(CONV_FLAGS), choices=CONV_FLAGS)
    parser.add_argument("--passes", type=int, default=4, help="passes per process")
    parser.add_argument("--mp-passes", type=int, default=2,
                        help="passes by message passing at r >= 5")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        conv, depth_r, passes, threads, fast = args.worker
        print(json.dumps(worker(conv, int(depth_r), int(passes), int(threads), fast == "1")))
        return 0
    import torch

    info = meta.meta(torch.device("cpu"), args.threads, args.note)
    rows, start = [], time.perf_counter()
    for depth_r in args.r:
        for conv in args.models:
            order = PATHS if len(rows) % 2 == 0 else PATHS[::-1]
            runs = {}
            for path in order:
                passes = args.mp_passes if path == PATHS[0] and depth_r >= 5 else args.passes
                runs[path] = _child(conv, depth_r, passes, args.threads, path == "levels")
            rows.append(row(conv, depth_r, runs))
            r = rows[-1]
            print(f"{conv:5s} r={depth_r}: message passing {r['message_passing_s_per_pass']:8.3f}"
                  f" s/pass, levels {r['levels_s_per_pass']:7.3f} s/pass, x{r['speedup']:.1f} "
                  f"(CPU time x{r['cpu_speedup']:.1f})", flush=True)
    results = {"threads": args.threads, "passes": args.passes,
               "mp_passes_r_ge_5": args.mp_passes, "wall_s": time.perf_counter() - start,
               "rows": rows}
    meta.write(args.json or meta.default_path("tree_speed"), "tree_speed", info, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
