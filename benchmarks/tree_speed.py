r"""Tree-NeighborsMatch training speed: seconds per pass over the training trees, old vs new.

``gdepth reproduce alon2021_treematch`` trains Alon & Yahav's model (``model=bottleneck``,
``train=alon2021``: their batch size for each r and conv, Adam, ``r + 1`` layers, the run scripts'
per-conv flags) with :func:`gdepth.train_trees.fit_trees`. This benchmark times one pass (one
shuffled epoch over the training trees, ``passes_per_epoch=1``) for each conv and depth ``r``,
two ways, in the same run and one after the other per (conv, r), each in its own process:

* ``old``: the code of commit ``--old`` (default ``aaf9cee``, before the level-wise path),
  extracted with ``git archive`` into a temporary folder and imported from there: PyG's message
  passing on a block-diagonal batch gathered from the whole graph's CSR rows;
* ``new``: this checkout (:mod:`gdepth.tree_levels`, :mod:`gdepth.models.bottleneck_trees`).

Each process loads the data as a cell does (``gdepth.cell.prepare``: sparse CSR features), runs
``--passes`` passes (``--old-passes`` for the old code at r >= 5, where a pass takes minutes) and
reports every pass's wall time (``on_epoch``). The first pass also holds the set-up and the one
evaluation of the test trees (``min_delta`` 2: no later epoch improves, so none evaluates again);
s/pass is the median of the later passes (the first one's where there is no other), in wall
time and in the process's CPU time (less sensitive to other processes on a shared machine).

    python benchmarks/tree_speed.py                          # r = 2..6, gcn gin gat ggnn
    python benchmarks/tree_speed.py --r 2 3 --models gcn     # a quick look
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "tree_speed.json"
CONV_FLAGS = {  # configs/experiment/alon2021_treematch.yaml
    "gcn": [], "gin": [],
    "gat": ["model.activation=identity"],
    "ggnn": ["model.activation=identity", "model.residual=false", "model.layer_norm=false"],
}


def worker(conv: str, depth_r: int, passes: int, threads: int) -> dict:
    """Time ``passes`` passes of the gdepth importable here; runs in a child process."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gdepth import cli, data, models, train_trees  # cli: the schemas, registered
    from gdepth.cell import prepare

    torch.set_num_threads(threads)
    overrides = ["model=bottleneck", "train=alon2021", "norm=none", "dataset=tree_match",
                 f"dataset.depth_r={depth_r}", f"depth={depth_r + 1}", f"model.conv={conv}",
                 *CONV_FLAGS[conv], f"train.epochs={passes}", f"train.patience={passes + 1}",
                 "train.min_delta=2.0", "train.stop_at=null"]
    with initialize_config_dir(config_dir=cli.config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    loaded = time.perf_counter()
    graph, adj, kind = prepare(data.load(cfg.dataset, cfg.data, 0),
                               OmegaConf.to_container(cfg.dataset), torch.device("cpu"))
    loaded = time.perf_counter() - loaded
    torch.manual_seed(0)
    model = models.build(cfg.model, cfg.norm, depth_r + 1, graph.num_features,
                         graph.num_classes)
    b = train_trees.batching(cfg.train, conv, depth_r)
    b = train_trees.Batching(b.batch_size, b.accum_grad, 1)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("gdepth").addHandler(handler)
    logging.getLogger("gdepth").setLevel(logging.INFO)
    stamps = [(time.perf_counter(), time.process_time())]
    result = train_trees.fit_trees(
        model, graph, adj, cfg.train, 0, b,
        on_epoch=lambda _: stamps.append((time.perf_counter(), time.process_time())))
    general = [m for m in messages if "message passing" in m]
    levels = getattr(train_trees, "tree_levels", None)  # absent in the old code
    path = "message passing"
    if levels is not None and not general:
        nodes = (b.batch_size or int(graph.train_mask.sum())) * (2 ** (depth_r + 1) - 1)
        path = ("levels" if levels.pays(model.train(), nodes)
                else "message passing (small batches), levels to evaluate")
    return {"pass_s": [b[0] - a[0] for a, b in zip(stamps[:-1], stamps[1:], strict=True)],
            "pass_cpu_s": [b[1] - a[1] for a, b in zip(stamps[:-1], stamps[1:], strict=True)],
            "train_acc": result.train_acc, "features": kind, "load_s": loaded,
            "batch_size": b.batch_size, "trees": int(graph.train_mask.sum()), "path": path}


def _child(code: Path, conv: str, depth_r: int, passes: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", conv, str(depth_r),
         str(passes), str(threads)], cwd=code, env=env, capture_output=True, text=True,
        check=False)
    if out.returncode:
        raise RuntimeError(f"{code.name} {conv} r={depth_r} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _per_pass(times: list[float]) -> float:
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


def _old_code(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True,
                             check=True).stdout
    tar_path = into / "old.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into / "old", filter="data")
    return into / "old"


def _versions() -> dict:
    import torch
    import torch_geometric

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
            "new_commit": commit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--r", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--models", nargs="+", default=list(CONV_FLAGS), choices=CONV_FLAGS)
    parser.add_argument("--passes", type=int, default=4, help="passes per process")
    parser.add_argument("--old-passes", type=int, default=2,
                        help="passes of the old code at r >= 5")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--old", default="aaf9cee", help="the commit timed as 'old'")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        conv, depth_r, passes, threads = args.worker
        print(json.dumps(worker(conv, int(depth_r), int(passes), int(threads))))
        return
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        old_code = _old_code(args.old, Path(tmp))
        for depth_r in args.r:
            for conv in args.models:
                old_passes = args.old_passes if depth_r >= 5 else args.passes
                old = _child(old_code, conv, depth_r, old_passes, args.threads)
                new = _child(ROOT, conv, depth_r, args.passes, args.threads)
                row = {"model": conv, "r": depth_r, "trees": new["trees"],
                       "batch_size": new["batch_size"], "features": new["features"],
                       "old_path": old["path"], "new_path": new["path"],
                       "old_s_per_pass": _per_pass(old["pass_s"]),
                       "new_s_per_pass": _per_pass(new["pass_s"]),
                       "old_cpu_s_per_pass": _per_pass(old["pass_cpu_s"]),
                       "new_cpu_s_per_pass": _per_pass(new["pass_cpu_s"]),
                       "old_pass_s": old["pass_s"], "new_pass_s": new["pass_s"],
                       "old_train_acc": old["train_acc"], "new_train_acc": new["train_acc"]}
                row["speedup"] = row["old_s_per_pass"] / row["new_s_per_pass"]
                row["cpu_speedup"] = row["old_cpu_s_per_pass"] / row["new_cpu_s_per_pass"]
                rows.append(row)
                print(f"{conv:5s} r={depth_r}: old {row['old_s_per_pass']:8.3f} s/pass, new "
                      f"{row['new_s_per_pass']:7.3f} s/pass, x{row['speedup']:.1f} (CPU time "
                      f"x{row['cpu_speedup']:.1f})", flush=True)
    out = {"benchmark": "tree_speed", "threads": args.threads, "old": args.old,
           "passes": args.passes, "old_passes_r_ge_5": args.old_passes, "note": args.note,
           "wall_s": time.perf_counter() - start, **_versions(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
