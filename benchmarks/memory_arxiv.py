r"""Peak memory of a deep GCN on an ogbn-arxiv-sized graph, with and without activation
checkpointing, in one run.

The graph is synthetic at ogbn-arxiv's size (Hu et al., NeurIPS 2020: 169,343 nodes, 1,166,243
edges, made undirected as gdepth loads arxiv; 128 features, 40 classes; a random 54/18/28 %
split like its time split's sizes): random edges, Gaussian features, random labels — the
memory and time of a training step do not depend on what the numbers mean. Each setting trains
``gcn_res`` (default: depth 64, hidden 64, dropout 0.5, Adam, evaluation every epoch) through
gdepth's own ``models.build_seeded`` and its training loop (one seed) in a fresh child
process, so that the peak
resident memory (``ru_maxrss``) is that setting's alone:

* ``plain``: autograd keeps every layer's intermediate tensors for the backward pass;
* ``checkpointing``: ``activation_checkpointing=true`` (``gdepth.models.checkpoint_layers``):
  each hidden layer keeps its input only and recomputes the rest in the backward pass.

Prints peak RSS and seconds per epoch of each, and the ratio against ``plain``.

    python benchmarks/memory_arxiv.py                       # depth 64, hidden 64, 2 epochs
    python benchmarks/memory_arxiv.py --depth 16 --epochs 1 # smaller, faster

Results: ``benchmarks/results/memory_arxiv.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

NODES, EDGES, FEATURES, CLASSES = 169_343, 1_166_243, 128, 40


def synthetic_arxiv(seed: int = 0):
    """A :class:`gdepth.data.graph.Graph` of ogbn-arxiv's size (random content).

    Not PyG's ``FakeDataset``: it draws the node count uniformly in [3/4, 5/4] of the requested
    one, and the point here is arxiv's exact size.
    """
    import torch
    from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

    from gdepth.data.graph import Graph

    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, NODES, (2, EDGES), generator=gen)
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = coalesce(to_undirected(edge_index, num_nodes=NODES), num_nodes=NODES)
    order = torch.randperm(NODES, generator=gen)
    n_train, n_val = int(0.54 * NODES), int(0.18 * NODES)
    masks = [torch.zeros(NODES, dtype=torch.bool) for _ in range(3)]
    masks[0][order[:n_train]] = True
    masks[1][order[n_train:n_train + n_val]] = True
    masks[2][order[n_train + n_val:]] = True
    return Graph(name="synthetic_arxiv", x=torch.randn(NODES, FEATURES, generator=gen),
                 y=torch.randint(0, CLASSES, (NODES,), generator=gen), edge_index=edge_index,
                 num_classes=CLASSES, train_mask=masks[0], val_mask=masks[1],
                 test_mask=masks[2], split="random 54/18/28")


def child(args: argparse.Namespace) -> None:
    """One setting, in this (fresh) process: print a JSON line with its figures."""
    import torch

    from gdepth import config, models
    from gdepth.engine import fit_batched, slices
    from gdepth.models.adjacency import normalized_adjacency

    torch.set_num_threads(args.threads)
    graph = synthetic_arxiv()
    adj = normalized_adjacency(graph.edge_index, NODES)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = models.build_seeded(config.model(args.model, hidden=args.hidden), None, args.depth,
                                FEATURES, CLASSES, seeds=[0])
    if args.mode == "checkpointing":
        slices.checkpoint_layers(model)
    cfg = config.make(config.TrainConfig, name="benchmark", optimizer="adam", lr=0.01,
                      weight_decay=5e-4, epochs=args.epochs, patience=None,
                      selection="best_val_acc")
    start = time.perf_counter()
    (result,) = fit_batched(model, [graph], adj, cfg, [0])
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"mode": args.mode, "peak_rss_gib": peak / 2**20,
                      "graph_rss_gib": before / 2**20, "epoch_s": wall / args.epochs,
                      "train_loss": result.train_loss, "edges": graph.edge_index.shape[1]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gcn_res", choices=["gcn", "gcn_res"])
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="plain,checkpointing")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # set in the child process
    parser.add_argument("--note", help="free text for the JSON (e.g. what else loads the CPU)")
    parser.add_argument("--json", help="results file (default: benchmarks/results/"
                                       "memory_arxiv.json)")
    args = parser.parse_args(argv)
    if args.mode:
        child(args)
        return 0
    print(f"synthetic ogbn-arxiv size: {NODES} nodes, {EDGES} random edges made undirected, "
          f"{FEATURES} "
          f"features, {CLASSES} classes; {args.model} depth {args.depth} hidden {args.hidden}, "
          f"{args.epochs} epochs, {args.threads} threads", flush=True)
    rows = []
    for mode in args.modes.split(","):
        cmd = [sys.executable, __file__, "--mode", mode, *(argv or sys.argv[1:])]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            print(f"{mode:14s} failed (exit {done.returncode}): {tail[0]}", flush=True)
            rows.append({"mode": mode, "failed": done.returncode})
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        base = rows[0] if "peak_rss_gib" in rows[0] else row
        print(f"{mode:14s} peak RSS {row['peak_rss_gib']:6.2f} GiB "
              f"({row['peak_rss_gib'] / base['peak_rss_gib']:.2f}x plain; graph and data alone "
              f"{row['graph_rss_gib']:.2f} GiB)   {row['epoch_s']:6.1f} s/epoch "
              f"({row['epoch_s'] / base['epoch_s']:.2f}x plain)   train loss "
              f"{row['train_loss']:.4f}", flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import meta

    info = meta.meta("cpu", args.threads, args.note)
    meta.write(args.json or meta.default_path("memory_arxiv"), "memory_arxiv", info,
               {"model": args.model, "depth": args.depth, "hidden": args.hidden,
                "epochs": args.epochs, "modes": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
