"""SIGN's two ways to the hop products: cached hops (the paper's) against projected first.

``gdepth.models.sign``: SIGN multiplies K + 1 hop features by their own weights. ``cached``
precomputes the dense hops :math:`\\hat{A}^k X` once and multiplies them every step
(:math:`K \\cdot N \\cdot F` per output column, :math:`K \\cdot N \\cdot F` floats kept);
``projected`` computes :math:`\\hat{A}^k (X \\Theta_k)` every step from the sparse X
(:math:`(K+1)\\,\\mathrm{nnz}(X) + K(K+1)/2\\,\\mathrm{nnz}(\\hat{A})` per output column,
nothing kept). ``auto`` (the default) picks by that cost. Timed here for each dataset and K,
both in the same process, alternating which runs first: one training step (forward, loss,
backward) of S seeds at once, the median over ``--repeats`` steps after one warm-up step, the
cache's one-time precomputation apart; and the largest difference between the two outputs.
A cached run whose hops would need more than ``--max-cache-gib`` is left out (its size noted).

    python benchmarks/sign_hops.py                            # cora and coauthor_cs, K = 2, 8, 32
    python benchmarks/sign_hops.py --datasets cora --steps 2,4 --seeds 3

Results: ``benchmarks/results/sign_hops.json`` (or ``--json``), rendered by
``python benchmarks/render.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402
from models_speed import cell_cfg  # noqa: E402

from gdepth import data, models  # noqa: E402
from gdepth.cell import prepare  # noqa: E402
from gdepth.models import sign  # noqa: E402
from gdepth.nn.kernels import StackedInput  # noqa: E402
from gdepth.nn.propagation import propagation  # noqa: E402

FLOAT = 4  # bytes


def step(model: torch.nn.Module, x_in: StackedInput, adj, y: torch.Tensor,
         train: torch.Tensor) -> tuple[float, torch.Tensor]:
    """One training step (forward, cross-entropy on the train rows of every seed, backward):
    its seconds and the logits."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    out = model(x_in, adj)
    rows = out[train]  # [T, S, C]
    loss = F.cross_entropy(rows.flatten(0, 1), y[train].repeat_interleave(rows.shape[1]))
    loss.backward()
    return time.perf_counter() - t0, out.detach()


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "sign_hops.json")
    parser.add_argument("--datasets", default="cora,coauthor_cs")
    parser.add_argument("--steps", default="2,8,32", help="K, comma-separated")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-cache-gib", type=float, default=4.0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"Sparse CSR tensor support")
    device, info = meta.start(args)
    found = {"seeds": args.seeds, "repeats": args.repeats, "max_cache_gib": args.max_cache_gib,
             "rows": []}
    for dataset in args.datasets.split(","):
        cfg = cell_cfg("sign", 2, args.seeds, 1, dataset)
        cfg.data.mirror = args.mirror
        graph, adj, kind = prepare(data.load(cfg.dataset, cfg.data, 0), cfg.dataset, device)
        x, y, train = graph.x, graph.y, graph.train_mask
        n, f = x.shape
        prop = propagation(adj)
        for k in (int(v) for v in args.steps.split(",")):
            cache_gib = k * n * f * FLOAT / 2**30
            row = {"dataset": dataset, "features": kind, "nodes": n, "in_dim": f, "K": k,
                   "nnz_x": sign._stored(x), "nnz_adj": sign._stored(adj),
                   "auto": "projected" if sign.projected_is_cheaper(x, adj, k) else "cached",
                   "cache_gib": cache_gib}
            modes = ["projected"] + (["cached"] if cache_gib <= args.max_cache_gib else [])
            built, times, outs = {}, {m: [] for m in modes}, {}
            for mode in modes:
                model = models.build_seeded(cfg.model, cfg.norm, k, f, int(y.max()) + 1,
                                            seeds=list(range(args.seeds)))
                model.hops = mode
                built[mode] = model.train()
                if mode == "cached":  # the one-time precomputation, apart from the steps
                    t0 = time.perf_counter()
                    model.features(StackedInput(x), prop)
                    row["precompute_s"] = time.perf_counter() - t0
                step(model, StackedInput(x), prop, y, train)  # warm-up
            for i in range(args.repeats):
                for mode in (modes if i % 2 == 0 else modes[::-1]):
                    took, outs[mode] = step(built[mode], StackedInput(x), prop, y, train)
                    times[mode].append(took)
            row["step_s"] = {m: statistics.median(v) for m, v in times.items()}
            if "cached" in outs:  # the same weights (seed-drawn), different dropout masks:
                built["cached"].eval()  # compare in eval mode
                built["projected"].eval()
                with torch.no_grad():
                    a = built["cached"](StackedInput(x), prop)
                    b = built["projected"](StackedInput(x), prop)
                row["max_abs_diff"] = float((a - b).abs().max())
                row["max_abs_logit"] = float(a.abs().max())
            found["rows"].append(row)
            cached = row["step_s"].get("cached")
            print(f"{dataset} K={k}: projected {1e3 * row['step_s']['projected']:8.1f} ms/step"
                  + (f", cached {1e3 * cached:8.1f} ms/step "
                     f"({cached / row['step_s']['projected']:.1f}x; precompute "
                     f"{row['precompute_s']:.2f} s, max |diff| {row['max_abs_diff']:.1e})"
                     if cached else f", cached left out ({cache_gib:.1f} GiB of hops)")
                  + f"; auto: {row['auto']}", flush=True)
            del built, outs
    meta.write(args.json or meta.default_path("sign_hops"), "sign_hops", info, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
