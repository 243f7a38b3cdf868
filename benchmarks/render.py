"""Markdown tables from the benchmarks' JSON results (``benchmarks/results/*.json``).

Every table of timings in the docs is generated here from a committed JSON file, never typed:
``render(path)`` returns one file's Markdown (the machine and versions first, then its tables),
``render_all()`` all of them. Standard library only, so that a docs build can import it
without torch::

    python benchmarks/render.py                    # every results file, to stdout
    python benchmarks/render.py --write            # beside each results/X.json, results/X.md
    python benchmarks/render.py benchmarks/results/sweep_speed_cora_small.json

``tests/test_benchmarks.py`` checks that each committed ``.md`` is what ``render`` makes of its
``.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
LABELS = {"pyg": "PyG, dense features", "pyg_sparse": "PyG, sparse features",
          "loop": "gdepth loop (batches of 1)", "batched": "gdepth batched",
          "batched_shared": "gdepth batched, shared DropEdge draws"}
# (step, from, to): each step's gain is the wall time of `from` over that of `to`
STEPS = (("sparse features", "pyg", "pyg_sparse"),
         ("gdepth's loop and kernels", "pyg_sparse", "loop"),
         ("seed batching", "loop", "batched"),
         ("shared DropEdge draws", "batched", "batched_shared"))


def step_gains(wall: dict[str, float]) -> list[dict[str, Any]]:
    """Each step whose two columns were measured: ``{"step", "from", "to", "ratio"}``, then
    all of them: the first PyG column measured against gdepth's batched engine."""
    steps = [*STEPS]
    base = next((e for e in ("pyg", "pyg_sparse") if e in wall), None)
    if base is not None:
        steps.append((f"all: {LABELS[base]} → gdepth batched", base, "batched"))
    return [{"step": step, "from": a, "to": b, "ratio": wall[a] / wall[b]}
            for step, a, b in steps if a in wall and b in wall and wall[b] > 0]


def _table(head: list[str], align: str, rows: list[list[str]]) -> str:
    marks = {"l": ":--", "r": "--:"}
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f}"


def _acc(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.1f} ± {100 * sd:.1f}"


def header(info: dict[str, Any]) -> str:
    """One paragraph: machine, threads, device, versions, commit, date, command, note."""
    m, v, g, d = info["machine"], info["versions"], info["git"], info["device"]
    load, end = m.get("load_average_at_start"), m.get("load_average_at_end")
    where = (f"{m['cpu']} ({m['cores']} cores, {m['usable_cores']} usable"
             + (f"; 1-min load average {load[0]:.2f} at the start" if load else "")
             + (f", {end[0]:.2f} at the end" if end else "") + ")")
    device = d["name"] + (f" ({d['gpu']}, {d['gpu_memory_gib']} GiB)" if d.get("gpu") else "")
    commit = (g.get("commit") or "unknown")[:10] + (" with uncommitted changes"
                                                     if g.get("dirty") else "")
    text = (f"Measured on {where}, {info['threads']} torch thread(s), device {device}; "
            f"torch {v['torch']}, PyG {v['torch_geometric']}, gdepth {v['gdepth']}, "
            f"commit `{commit}`, {info['started_at']}.\n\nCommand: `{info['command']}`")
    if info.get("note"):
        text += f"\n\nNote: {info['note']}"
    return text


def _sweep_speed(r: dict[str, Any]) -> str:
    engines, wall = r["engines"], r["wall_s"]
    title = (f"### {r['workload']}: {r['model']} on {r['dataset']}, depths "
             f"{', '.join(map(str, r['depths']))} × {r['seeds']} seeds × {r['epochs']} epochs"
             + (f", DropEdge {r['dropedge']:g}" if r["dropedge"] else ""))
    if r.get("complete") is False:
        title += f" (stopped after depth {r['rows'][-1]['depth']}: an incomplete run)"
    adj = r["adjacency"]
    split = r.get("seeds_per_batch") or {}
    batches = "".join(f"; {LABELS[e]}: {n} seed(s) per batch" for e, n in split.items())
    parts = [title, f"Wall time (s), the columns interleaved depth by depth; gdepth's "
             f"adjacency `{adj['requested']}` ({adj['used']}){batches}:"]
    rows = [[str(row["depth"]), *(_s(row["wall_s"][e]) for e in engines)] for row in r["rows"]]
    rows.append(["all", *(f"**{_s(wall[e])}**" for e in engines)])
    parts.append(_table(["depth", *(LABELS[e] for e in engines)], "r" * (len(engines) + 1),
                        rows))
    parts.append("Each step's gain (wall time before / after):")
    parts.append(_table(["step", "before", "after", "gain"], "lllr",
                        [[s["step"], LABELS[s["from"]], LABELS[s["to"]], f"{s['ratio']:.2f}×"]
                         for s in step_gains(wall)]))
    parts.append(_accuracy(r))
    if r.get("floor_s"):
        times = ", ".join(f"{LABELS[e]} {wall[e] / r['floor_s']:.1f}×" for e in engines)
        parts.append(f"Floor (the products the workload cannot avoid at the measured "
                     f"{r['matmul_gflops']:.1f} GFLOP/s of a plain matmul): "
                     f"{r['floor_s']:.1f} s; {times} the floor.")
    if "cli" in r:
        parts.append(_cli(r["cli"]))
    return "\n\n".join(parts)


def _accuracy(r: dict[str, Any]) -> str:
    engines, agree = r["engines"], r.get("agreement", {})
    head, rows = ["depth"], []
    for e in engines:
        head += [LABELS[e]] + (["p"] if e in agree else [])
    for row in r["rows"]:
        cells = [str(row["depth"])]
        for e in engines:
            cells.append(_acc(row["test_acc"][e]))
            if e in agree:
                p = agree[e]["p"].get(str(row["depth"]))
                cells.append("–" if p is None else f"{p:.2f}")
        rows.append(cells)
    base = r.get("baseline", "pyg")  # None: no PyG column, nothing to test against
    base = LABELS[base] if base else None
    against = f"; p: Welch's test against {base}, per depth" if base else ""
    text = (f"Test accuracy (%, mean ± sample std over the seeds{against}):\n\n"
            + _table(head, "r" * len(head), rows))
    verdicts = [f"{LABELS[e]}: {a['verdict']}" + ("" if a["z"] is None
                                                   else f" (pooled z {a['z']:+.2f})")
                for e, a in agree.items()]
    if verdicts:
        text += (f"\n\nAgreement with {base} (no depth's p below 0.05 / depths and "
                 "|pooled z| < 2): " + "; ".join(verdicts) + ".")
    return text


def _cli(c: dict[str, Any]) -> str:
    rows = [["library calls, `engine.run_seeds` (the batched column)", _s(c["library_wall_s"]),
             ""],
            ["`gdepth sweep`, one process end to end", _s(c["wall_s"]), ""],
            ["of which its cells (the records' `wall_s`)", _s(c["cells_wall_s"]), ""],
            ["of which outside the cells (start, Hydra, plan, table)", _s(c["outside_cells_s"]),
             f"{100 * c['outside_cells_s'] / c['wall_s']:.0f} %"],
            ["CLI overhead (`gdepth sweep` − library calls)", _s(c["overhead_s"]),
             f"{100 * c['overhead_share']:.0f} %"]]
    return ("End to end, the same sweep by the CLI (`engine=batched`), after the library "
            "calls (not interleaved with them: where the load changes between the two, their "
            "difference moves with it; the part outside the cells is measured within the one "
            "process):\n\n" + _table(["", "s", "share of the CLI's time"], "lrr", rows)
            + f"\n\nCommand: `{c['command']}`")


MODEL_COLUMNS = {"pyg": "PyG per-seed loop (before seed-native)", "loop": LABELS["loop"],
                 "batched_before": "gdepth batched, first layer before",
                 "batched": LABELS["batched"], "auto": "gdepth engine=auto"}


def _models_speed(r: dict[str, Any]) -> str:
    clock = "cpu_s" if all("cpu_s" in row for row in r["rows"]) else "wall_s"
    used = [c for c in MODEL_COLUMNS if any(c in row[clock] for row in r["rows"])]
    shown = [c for c in used if c != "batched"]
    head = (["model", "depth"] + [f"{MODEL_COLUMNS[c]} s" for c in used]
            + [f"{MODEL_COLUMNS[c]} / batched" for c in shown])
    if "auto" in used and "pyg" in used:
        head.append("PyG per-seed loop / engine=auto")
    rows = []
    for row in r["rows"]:
        t = row[clock]
        cells = ([row["model"], str(row["depth"])] + [_s(t.get(c)) for c in used]
                 + [f"{t[c] / t['batched']:.2f}×" if c in t else "–" for c in shown])
        if "auto" in used and "pyg" in used:
            cells.append(f"{t['pyg'] / t['auto']:.2f}×" if "pyg" in t and "auto" in t else "–")
        rows.append(cells)
    accuracy = _table(["model", *(MODEL_COLUMNS[c] for c in used)], "l" + "r" * len(used),
                      [[row["model"]] + [_acc(row["test_acc"][c]) if c in row["test_acc"]
                                         else "–" for c in used] for row in r["rows"]])
    what = ("the process's CPU time (s; one thread: the work done, which other processes "
            "barely move; the wall times are in the JSON)" if clock == "cpu_s"
            else "wall time (s)")
    auto = [f"{row['model']} {row['auto_seeds_per_batch']}" for row in r["rows"]
            if row.get("auto_seeds_per_batch")]
    sizes = (f" engine=auto's seeds per batch: {', '.join(auto)}." if auto else "")
    return (f"{r['dataset']}, {r['seeds']} seeds, {r['epochs']} epochs, {what} of the "
            f"cell per column, the columns interleaved.{sizes}\n\n"
            + _table(head, "lr" + "r" * (len(head) - 2), rows)
            + "\n\nTest accuracy (%, mean ± sample std over the seeds; the columns draw "
            "different dropout masks):\n\n" + accuracy)


def _sgc_speed(r: dict[str, Any]) -> str:
    rows = [["precompute A^K X", f"{r['precompute_s']['before']:.3f} s",
             f"{r['precompute_s']['after']:.3f} s",
             f"{r['precompute_s']['before'] / r['precompute_s']['after']:.2f}×"]]
    for e in r["epochs_s"]:
        rows.append([f"epochs, dropout {e['dropout']:.1f} (per epoch)",
                     f"{1e3 * e['before_s']:.2f} ms", f"{1e3 * e['after_s']:.2f} ms",
                     f"{e['before_s'] / e['after_s']:.2f}×"])
    c = r["cell_s"]
    rows.append([f"cell, dropout {r['dropout']:.1f}", f"{c['before']:.2f} s",
                 f"{c['after']:.2f} s", f"{c['before'] / c['after']:.2f}×"])
    return (f"SGC on {r['dataset']}, depth {r['depth']}, {r['seeds']} seeds, {r['epochs']} "
            f"epochs, median of {r['repeats']}; APPNP's cell at the same depth: "
            f"{c['appnp']:.2f} s.\n\n" + _table(["", "before", "after", "gain"], "lrrr", rows))


def _sign_hops(r: dict[str, Any]) -> str:
    rows = []
    for row in r["rows"]:
        step, cached = row["step_s"], row["step_s"].get("cached")
        rows.append([row["dataset"], str(row["K"]), f"{row['nnz_x']:,}", f"{row['nnz_adj']:,}",
                     f"{row['cache_gib']:.2f}", _ms(step["projected"]),
                     _ms(cached) if cached else "left out",
                     f"{cached / step['projected']:.1f}×" if cached else "–",
                     f"{row['precompute_s']:.2f} s" if cached else "–",
                     f"{row['max_abs_diff']:.1e} of {row['max_abs_logit']:.1f}" if cached
                     else "–", row["auto"]])
    return (f"SIGN, one training step of {r['seeds']} seeds (forward, loss, backward), median of "
            f"{r['repeats']}; cached hops left out above {r['max_cache_gib']:g} GiB.\n\n"
            + _table(["dataset", "K", "nnz(X)", "nnz(Â)", "hops GiB", "projected ms",
                      "cached ms", "gain", "precompute", "max |Δ logit|", "auto"],
                     "lrrrrrrrrrl", rows))


def _memory_arxiv(r: dict[str, Any]) -> str:
    return (f"{r['model']} depth {r['depth']}, hidden {r['hidden']}, {r['epochs']} epoch(s) "
            "on a synthetic graph of ogbn-arxiv's size:\n\n"
            + _table(["mode", "peak RSS GiB", "s per epoch", "train loss"], "lrrr",
                     [[m["mode"], f"{m['peak_rss_gib']:.2f}", f"{m['epoch_s']:.1f}",
                       f"{m['train_loss']:.4f}"] for m in r["modes"] if "peak_rss_gib" in m]))


def _prune_search(r: dict[str, Any]) -> str:
    """Per arm: CPU, wall, trials by state, epochs trained, best val, final test; then each
    trial of both arms side by side."""
    arms = r["arms"]
    base = arms["none"]
    rows = []
    for arm, a in arms.items():
        states = [t["state"] for t in a["trials"]]
        epochs = sum(t["epochs"] or 0 for t in a["trials"])
        rows.append([arm, f"{states.count('COMPLETE')} / {states.count('PRUNED')}",
                     f"{epochs} of {len(states) * r['epochs']}", f"{a['cpu_s']:.0f}",
                     f"{a['cpu_s'] / base['cpu_s']:.2f}×", f"{a['wall_s']:.0f}",
                     f"{100 * a['best']['val_acc']:.1f} (trial {a['best']['number']})",
                     _acc(a["final"]["test_acc"])])
    search = arms["median"]["search"]
    head = (f"{r['model']} · {r['norm']} on {r['dataset']}, depth {r['depth']}: "
            f"{r['trials']} trials ({r['startup_trials']} random, then TPE) of "
            f"{r['search_seeds']} seeds × {r['epochs']} epochs, the best re-run with "
            f"{r['seeds']} seeds; median pruner after {search['pruner_startup_trials']} "
            f"complete trials, from epoch {search['pruner_warmup_epochs']}, every "
            f"{search['pruner_interval']} epochs. CPU and wall seconds of the whole search "
            "(trials and final re-run); the two arms ran at the same time:")
    table = _table(["pruner", "complete / pruned", "epochs trained", "CPU s", "CPU vs none",
                    "wall s", "best val acc %", "final test acc % (mean ± sd)"], "lrrrrrrr",
                   rows)
    trials = []
    for i in range(r["trials"]):
        cells = [str(i)]
        for a in arms.values():
            t = a["trials"][i]
            cells += [t["state"].lower(), str(t["epochs"]), f"{100 * t['val_acc']:.1f}"]
        trials.append(cells)
    names = list(arms)
    per_trial = _table(["trial", *(f"{n}: {c}" for n in names
                                    for c in ("state", "epochs", "val %"))],
                       "r" + "lrr" * len(names), trials)
    return "\n\n".join([head, table, "Each trial (val %: its objective; a pruned trial's last "
                         "report):", per_trial])


def _row_ratio(conv: str, depth_r: int) -> float:
    """Node rows message passing computes per level-wise row (r + 1 layers; GIN's BatchNorm
    keeps every level): what levels can gain at equal cost per row."""
    from gdepth.models.bottleneck_trees import tree_rows  # lazy: torch for one table only

    levels, passing = tree_rows(depth_r, depth_r + 1, every_level=conv == "gin")
    return passing / levels


def _tree_speed(r: dict[str, Any]) -> str:
    head = ["conv", "r", "trees", "batch", "path by levels", "message passing s/pass",
            "levels s/pass", "gain", "CPU s/pass, message passing", "CPU s/pass, levels",
            "CPU gain", "rows, message passing / levels", "train acc (message passing / levels)"]
    rows = [[w["model"], str(w["r"]), str(w["trees"]), str(w["batch_size"]), w["levels_path"],
             f"{w['message_passing_s_per_pass']:.3g}", f"{w['levels_s_per_pass']:.3g}",
             f"{w['speedup']:.1f}×", f"{w['message_passing_cpu_s_per_pass']:.3g}",
             f"{w['levels_cpu_s_per_pass']:.3g}", f"{w['cpu_speedup']:.1f}×",
             f"{_row_ratio(w['model'], w['r']):.1f}×",
             f"{w['message_passing_train_acc']:.4f} / {w['levels_train_acc']:.4f}"]
            for w in r["rows"]]
    return (f"Tree-NeighborsMatch, `model=bottleneck train=alon2021` (depth r + 1, the preset's "
            f"batch size), seconds per pass over the training trees: the median of each "
            f"process's passes but the first ({r['passes']} passes; {r['mp_passes_r_ge_5']} by "
            f"message passing at r ≥ 5), each path in its own process; {r['wall_s']:.0f} s in "
            "all. Train accuracy: the last pass's running one. Rows: the node rows the graph "
            "layers compute one by one per tree, message passing's (every node at every layer) "
            "per level-wise one (`gdepth.models.bottleneck_trees.tree_rows`: the levels the "
            "leaves have reached and the root needs; GIN's BatchNorm in training mode needs "
            "every level), the gain levels can reach where a row costs the same on both "
            "paths.\n\n"
            + _table(head, "lrrrlrrrrrrrl", rows))


def _ms(seconds: float) -> str:
    return f"{1e3 * seconds:.2f}"


def _first_layer_speed(r: dict[str, Any]) -> str:
    n, f = r["shape"]
    own = _table(["seeds", "before ms", "after ms", "dense ms", "before / after",
                  "dense / after"], "rrrrrr",
                 [[str(o["seeds"]), _ms(o["before"]), _ms(o["after"]), _ms(o["dense"]),
                   f"{o['before'] / o['after']:.2f}×", f"{o['dense'] / o['after']:.2f}×"]
                  for o in r["own"]])
    seeds = sorted({k for row in r["density"] for k in row if k != "density"}, key=int)
    head = ["density"] + [f"{h} S={s}" for s in seeds for h in ("sparse ms", "dense ms",
                                                                   "dense / sparse")]
    rows = [[f"{100 * row['density']:g} %"] + [
        c for s in seeds for c in (_ms(row[s]["sparse"]), _ms(row[s]["dense"]),
                                   f"{row[s]['dense'] / row[s]['sparse']:.2f}×")]
        for row in r["density"]]
    return (f"The first layer (forward + weight gradient, per-seed dropout {r['dropout']:g} "
            f"drawn inside) on {r['dataset']}'s features ({n} × {f}, {r['features']}), hidden "
            f"{r['hidden']}, median of {r['repeats']}; before: one `torch.sparse.mm` per seed, "
            "after: `gdepth.nn.sparse_input`, dense: the same features stored dense:\n\n"
            + own + "\n\nSynthetic features of the same shape by density, the sparse kernel "
            "against the dense product:\n\n" + _table(head, "r" * len(head), rows))


def _batch_policy(r: dict[str, Any]) -> str:
    sizes = [str(b) for b in r["sizes"]]
    rows = []
    for row in r["rows"]:
        cpu, best = row["cpu_epoch_s"], str(row["best"])
        rows.append([row["model"], str(row["depth"])]
                    + [(f"**{cpu[b]:.3f}**" if b == best else f"{cpu[b]:.3f}") for b in sizes]
                    + [best, f"{cpu[sizes[0]] / cpu[best]:.2f}×",
                       f"{cpu[sizes[-1]] / cpu[best]:.2f}×"])
    return (f"{r['dataset']}, {r['seeds']} seeds: the cell's steady CPU seconds per epoch in "
            f"batches of b seeds ({r['epochs']} epochs per batch, the first untimed; median of "
            f"{r['repeats']} rounds; the wall times are in the JSON). Bold: the fastest.\n\n"
            + _table(["model", "depth", *(f"b={b}" for b in sizes), "fastest b",
                      f"b={sizes[0]} / fastest", f"b={sizes[-1]} / fastest"],
                     "lr" + "r" * (len(sizes) + 3), rows))


def _incepgcn_memory(r: dict[str, Any]) -> str:
    mib = 2 ** 20
    rows = [[str(row["seeds"]), tree, f"{row[tree]['tensor_peak_bytes'] / mib:.1f}",
             f"{row[tree]['rss_before_bytes'] / mib:.1f}",
             f"{row[tree]['rss_peak_bytes'] / mib:.1f}",
             f"{row[tree]['parameter_bytes'] / mib:.2f}", f"{row[tree]['loss']:.6f}"]
            for row in r["rows"] for tree in ("before", "now")]
    return (f"{r['model']} depth {r['depth']} on {r['dataset']}, one training step (forward, "
            f"loss, backward), each in a fresh process; before: the engine twin at "
            f"`{r['old'][:10]}`. Tensor peak: `torch.profiler`'s allocated bytes during the "
            "step; RSS: the process's resident memory before the step and its peak during "
            "it.\n\n"
            + _table(["S", "tree", "tensor peak MiB", "RSS before MiB", "RSS peak MiB",
                      "parameters MiB", "loss"], "llrrrrr", rows))


BODIES: dict[str, Callable[[Any], str]] = {
    "batch_policy": _batch_policy, "incepgcn_memory": _incepgcn_memory,
    "first_layer_speed": _first_layer_speed,
    "sweep_speed": lambda results: "\n\n".join(_sweep_speed(r) for r in results),
    "models_speed": _models_speed, "sgc_speed": _sgc_speed, "memory_arxiv": _memory_arxiv,
    "prune_search": _prune_search, "tree_speed": _tree_speed, "sign_hops": _sign_hops}


def render(path: str | Path) -> str:
    """The Markdown of one results file: a heading, the machine and versions, the tables."""
    path = Path(path)
    found = json.loads(path.read_text())
    kind = found.get("benchmark")
    if kind not in BODIES:
        raise ValueError(f"{path}: unknown benchmark {kind!r}; valid: {', '.join(BODIES)}")
    return (f"## {path.stem}\n\n{header(found['meta'])}\n\n{BODIES[kind](found['results'])}"
            "\n")


def render_all(folder: str | Path = RESULTS) -> str:
    """Every ``*.json`` of ``folder``, by name."""
    return "\n".join(render(p) for p in sorted(Path(folder).glob("*.json")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="results files (default: all of results/)")
    parser.add_argument("--write", action="store_true", help="write X.md beside each X.json")
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.paths] or sorted(RESULTS.glob("*.json"))
    for path in paths:
        text = render(path)
        if args.write:
            path.with_suffix(".md").write_text(text)
        else:
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
