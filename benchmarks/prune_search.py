r"""Where pruning pays: one searched cell tuned without and with ``search.pruner=median``.

Runs the same ``gdepth sweep ... search=default`` twice, as two processes started together (so
that the load of a shared machine falls on both alike): once with ``search.pruner=none`` (the
baseline), once with ``search.pruner=median``; the same space, sampler seed, trials, seeds and
``threads``. Each process runs every trial and the final cell in-process (the basic launcher),
so its CPU time (user + system, ``os.wait4``) is the search's compute. Reported per arm: CPU and
wall time, each trial's state, the epochs it trained (a pruned trial: the epoch it stopped at)
and its objective (validation accuracy; a pruned trial's last report), the best trial's
validation accuracy, and the final cell's test accuracy (its re-run with the cell's full seeds:
the only test accuracy read, after the search).

The two arms draw the same random trials until the TPE sampler starts (``startup_trials``);
after that each proposes from its own history (pruned trials are in it), so the later trials
differ.

    python benchmarks/prune_search.py --quick                     # ~3 min smoke run
    python benchmarks/prune_search.py --depth 4 --trials 12 --startup-trials 6 --threads 1

Results: ``benchmarks/results/prune_search_<dataset>_d<depth>.json`` (or ``--json``), rendered
by ``python benchmarks/render.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import meta  # noqa: E402

from gdepth.search import study  # noqa: E402
from gdepth.sweep import collect  # noqa: E402

ARMS = ("none", "median")


def command(args: argparse.Namespace, arm: str, out: Path) -> list[str]:
    """The ``gdepth sweep`` of one arm."""
    pruner = [f"search.pruner={arm}"] + ([
        f"search.pruner_startup_trials={args.pruner_startup_trials}",
        f"search.pruner_warmup_epochs={args.pruner_warmup_epochs}",
        f"search.pruner_interval={args.pruner_interval}"] if arm != "none" else [])
    return ["gdepth", "sweep", f"model={args.model}", f"norm={args.norm}", f"depth={args.depth}",
            f"dataset={args.dataset}", "search=default", f"search.trials={args.trials}",
            f"search.startup_trials={args.startup_trials}", f"search.seeds={args.search_seeds}",
            f"seeds={args.seeds}", f"train.epochs={args.epochs}", *pruner,
            f"threads={args.threads}", "progress=false", f"out_dir={out}", f"name={arm}"]


def run_arms(args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    """Both arms at once; per arm its CPU and wall seconds and return code."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), GDEPTH_OFFLINE="1",
               GDEPTH_DATA_MIRROR=args.mirror)
    exe = str(Path(sys.executable).with_name("gdepth"))
    procs, start = {}, time.perf_counter()
    for arm in ARMS:
        cmd = command(args, arm, out)
        log = open(out / f"{arm}.log", "w")  # noqa: SIM115 - closed below
        procs[arm] = (subprocess.Popen([exe, *cmd[1:]], env=env, stdout=log, stderr=log), log)
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(procs):
        pid, status, usage = os.wait4(-1, 0)
        arm = next(a for a, (p, _) in procs.items() if p.pid == pid)
        procs[arm][1].close()
        found[arm] = {"cpu_s": usage.ru_utime + usage.ru_stime,
                      "wall_s": time.perf_counter() - start,
                      "returncode": os.waitstatus_to_exitcode(status)}
        if found[arm]["returncode"] != 0:
            sys.exit(f"{arm}: gdepth sweep failed; see {out / f'{arm}.log'}")
    return found


def arm_result(folder: Path, epochs: int) -> dict[str, Any]:
    """Trials, best and final of the one searched cell in ``folder``."""
    (summary,) = study.load_summaries(folder)
    by_key = {r["key"]: r for r in collect.load(folder, planned=False)}
    trials = []
    for t in summary["trials"]:
        record = by_key.get(t["key"]) or {}
        trained = (record.get("pruned") or {}).get("epoch") if t["state"] == "PRUNED" else \
            max((s.get("epochs_run") or epochs for s in record.get("seeds", [])), default=None)
        trials.append({"number": t["number"], "state": t["state"], "val_acc": t["val_acc"],
                       "epochs": trained, "wall_s": record.get("wall_s"),
                       "params": t["params"]})
    final = by_key[summary["final"]["key"]]
    seeds = [s for s in final["seeds"] if s.get("status", "ok") == "ok"]
    return {"study": summary["study"], "search": summary["search"], "trials": trials,
            "best": summary["best"],
            "final": {"test_acc": [s["test_acc"] for s in seeds],
                      "val_acc": [s["val_acc"] for s in seeds], "wall_s": final["wall_s"]}}


def main(argv: list[str] | None = None) -> int:
    parser = meta.parser(__doc__, "prune_search_<dataset>_<model>_<norm>_d<depth>.json")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--model", default="gcn_res")
    parser.add_argument("--norm", default="none")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--startup-trials", type=int, default=10)
    parser.add_argument("--search-seeds", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=10, help="the final re-run's seeds")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--pruner-startup-trials", type=int, default=5)
    parser.add_argument("--pruner-warmup-epochs", type=int, default=50)
    parser.add_argument("--pruner-interval", type=int, default=10)
    parser.add_argument("--quick", action="store_true",
                        help="depth 2, 6 trials (3 random), 60 epochs, 3 final seeds")
    parser.add_argument("--out", help="sweep folders (default: a new temporary folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.depth, args.trials, args.startup_trials, args.epochs, args.seeds = 2, 6, 3, 60, 3
        args.pruner_startup_trials, args.pruner_warmup_epochs = 2, 20
    out = Path(args.out or tempfile.mkdtemp(prefix="prune_search_"))
    out.mkdir(parents=True, exist_ok=True)
    info = meta.meta("cpu", args.threads, args.note)
    timings = run_arms(args, out)
    arms = {arm: {**timings[arm], "command": " ".join(command(args, arm, Path("OUT"))),
                  **arm_result(out / "sweeps" / arm, args.epochs)} for arm in ARMS}
    results = {"dataset": args.dataset, "model": args.model, "norm": args.norm,
               "depth": args.depth, "trials": args.trials, "startup_trials": args.startup_trials,
               "search_seeds": args.search_seeds, "seeds": args.seeds, "epochs": args.epochs,
               "arms": arms}
    path = Path(args.json) if args.json else meta.default_path(
        f"prune_search_{args.dataset}_d{args.depth}" + ("_quick" if args.quick else ""))
    meta.write(path, "prune_search", info, results)
    base, pruned = arms["none"], arms["median"]
    print(f"CPU s: none {base['cpu_s']:.0f}, median {pruned['cpu_s']:.0f} "
          f"({pruned['cpu_s'] / base['cpu_s']:.2f}x); best val: "
          f"{100 * base['best']['val_acc']:.1f} vs {100 * pruned['best']['val_acc']:.1f}; "
          f"final test: {100 * statistics.fmean(base['final']['test_acc']):.1f} vs "
          f"{100 * statistics.fmean(pruned['final']['test_acc']):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
