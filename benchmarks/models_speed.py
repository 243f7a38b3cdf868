r"""Seed batches against batches of one seed, per model, on one dataset, in one process.

For each model (and its depth) the same cell — ``seeds`` seeds, ``epochs`` epochs with evaluation
after every epoch — is trained several ways, the order rotating from model to model, and the
wall time of each, their ratios and the mean test accuracy of each are printed (the columns
draw different dropout masks, so the accuracies agree in distribution, not run by run):

* ``pyg`` (gat, gin, ggnn, mlp only): gdepth's per-seed loop of PyG layers as it was before
  these models were seed-native (``benchmarks/pyg_models.py``), one seed after another;
* ``loop``: ``gdepth.engine.run_seeds`` in batches of one seed (``max_seeds=1``:
  ``engine=loop``, the same training loop);
* ``batched_before``: all seeds in one batch with the first layer's kernel before
  ``gdepth.nn.sparse_input`` (one ``torch.sparse.mm`` per seed;
  ``benchmarks/first_layer_speed.py``'s ``before``), where the features are sparse;
* ``batched``: all seeds in one batch (``engine=batched``);
* ``auto`` (with ``--auto``): batches of ``engine=auto``'s size for the model
  (``gdepth/engine/policy.py``; ``run_seeds`` without ``max_seeds``).

Each column's wall time and the process's CPU time are kept (one thread: the CPU time is the
work done, which other processes on a shared machine barely move; the wall time is what a user
waits for on an idle one).

Models: by default the batched ones that ``benchmarks/sweep_speed.py`` does not time (sgc, sign,
appnp, jknet, gcnii, DropEdge's backbones), with their configs' defaults
(``configs/model/*.yaml``).

    python benchmarks/models_speed.py                                  # Cora, 10 seeds
    python benchmarks/models_speed.py --models gat:2,gin:2,ggnn:2,mlp:2 --auto
    python benchmarks/models_speed.py --models incepgcn:16 --seeds 1   # DropEdge's one seed

Results: ``benchmarks/results/models_speed_<dataset>.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402
import pyg_models  # noqa: E402

from gdepth import config, data, engine  # noqa: E402
from gdepth.cell import prepare  # noqa: E402
from gdepth.cli import config_dir  # noqa: E402
from gdepth.engine import policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "sgc:8,sign:8,appnp:10,jknet:8,gcnii:16,resgcn:16,incepgcn:8"


def cell_cfg(model: str, depth: int, seeds: int, epochs: int, dataset: str):
    """The cell's config as plain values (enums as names), as a sweep job hands it on."""
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[
            f"model={model}", f"depth={depth}", f"seeds={seeds}", f"dataset={dataset}",
            f"train.epochs={epochs}", "train.patience=null", "progress=false"])
    return config.typed(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "models_speed_<dataset>.json", threads=None)
    parser.add_argument("--models", default=DEFAULT, help="name:depth,...")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--auto", action="store_true", help="also time engine=auto's batches")
    args = parser.parse_args(argv)
    from first_layer_speed import before  # it imports cell_cfg from here

    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    device, info = meta.start(args)
    rows = []
    print(f"{args.dataset}, {args.seeds} seeds, {args.epochs} epochs, threads "
          f"{torch.get_num_threads()}")
    print(f"{'model':>10} {'depth':>5}  CPU s per column (ratio to batched), test acc")
    for i, item in enumerate(args.models.split(",")):
        name, depth = item.split(":")
        cfg = cell_cfg(name, int(depth), args.seeds, args.epochs, args.dataset)
        cfg.data.mirror = args.mirror
        if engine.unsupported(cfg) is not None:
            raise SystemExit(f"{name}: not batched ({engine.unsupported(cfg)})")
        prepared = [prepare(data.load(cfg.dataset, cfg.data, s), cfg.dataset, device)
                    for s in range(args.seeds)]
        adj, graphs = prepared[0][1], [p[0] for p in prepared]
        columns = (["pyg"] if name in pyg_models.MODELS else []) + ["loop"] + (
            ["batched_before"] if graphs[0].x.layout == torch.sparse_csr else []) + [
            "batched"] + (["auto"] if args.auto else [])
        shift = i % len(columns)
        wall, cpu, accs = {}, {}, {}
        for column in columns[shift:] + columns[:shift]:
            t0, c0 = time.perf_counter(), time.process_time()
            if column == "pyg":
                accs[column] = [pyg_models.run_pyg_model(name, cfg.model, cfg.train, graphs[s],
                                                         int(depth), s, args.epochs)
                                for s in range(args.seeds)]
            else:
                with before() if column == "batched_before" else contextlib.nullcontext():
                    results = engine.run_seeds(
                        cfg, lambda s, gs=graphs: gs[s], adj, device,
                        max_seeds={"loop": 1, "auto": None}.get(column, args.seeds))
                accs[column] = [r.test_acc for r in results]
            wall[column] = time.perf_counter() - t0
            cpu[column] = time.process_time() - c0
        shown = "  ".join(f"{c} {cpu[c]:.1f} ({cpu[c] / cpu['batched']:.2f}x) "
                          f"{100 * statistics.mean(accs[c]):.1f}" for c in columns)
        print(f"{name:>10} {depth:>5}  {shown}", flush=True)
        row = {"model": name, "depth": int(depth), "wall_s": wall, "cpu_s": cpu,
               "test_acc": accs}
        if args.auto:
            row["auto_seeds_per_batch"] = policy.preferred_seeds(name, device,
                                                                   graphs[0].num_nodes)
        rows.append(row)
    meta.write(args.json or meta.default_path(f"models_speed_{args.dataset}"), "models_speed",
               info, {"dataset": args.dataset, "seeds": args.seeds, "epochs": args.epochs,
                      "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
