"""``gdepth reproduce NAME [overrides] [--dry-run | --no-run]`` and ``gdepth reproduce --list``.

Runs every sub-sweep of ``configs/experiment/NAME.yaml`` through the ordinary ``gdepth sweep``
(one subprocess each, all into ``<out_dir>/sweeps/reproduce_NAME``, so any launcher works and a
second call resumes), then writes and prints the comparison with the published table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from gdepth.reproduce import cells as cells_mod
from gdepth.reproduce import compare, experiment, listing
from gdepth.sweep import status

USAGE = "gdepth reproduce NAME [dataset=A,B] [depth=RANGE] [seeds=N] [search=NAME " \
        "[search.KEY=V]] [overrides] [--dry-run|--no-run] | gdepth reproduce --list"


def _fail(message: str, code: int = 2) -> int:
    print(f"gdepth: error: {message}", file=sys.stderr)
    return code


def unavailable(cells: list[cells_mod.Cell], extra: list[str]) -> dict[str, str]:
    """Datasets of ``cells`` that are in neither the cache nor the mirror (and no download)."""
    from gdepth import config, data

    folders = {k.split(".", 1)[1]: v for k, _, v in (o.partition("=") for o in extra)
               if k.startswith("data.")}
    data_cfg = config.make(config.DataConfig, folders) if folders else None
    missing: dict[str, str] = {}
    for name, dataset_cfg in {c.config["dataset"]["name"]: c.config["dataset"]
                              for c in cells}.items():
        spec = data.DATASETS.get(name)
        if spec is None or not spec.uses_files:
            continue
        try:
            data.load(config.group("dataset", dataset_cfg), data_cfg, 0)
        except data.DatasetUnavailable as err:
            missing[name] = str(err)
    return missing


def _header(exp: experiment.Experiment, n_cells: int) -> str:
    spec = exp.spec
    lines = [f"# {exp.name}: {exp.title}", "",
             f"- paper: {spec.get('paper', '?')}",
             f"- source: {spec.get('source', '?')}",
             f"- protocol: {' '.join(str(spec.get('protocol', '?')).split())}",
             f"- cells: {n_cells}, seeds per cell: {exp.seeds}"]
    if exp.datasets or exp.depths or exp.filters:
        more = "".join(f", {k}={','.join(v)}" for k, v in exp.filters.items())
        lines.append(f"- restricted to: dataset={exp.datasets or 'all'}, "
                     f"depth={exp.depths or 'all'}{more}")
    if exp.search:
        lines.append(f"- per-cell search: {experiment.search_label(exp)}; each cell's tuned "
                     "final (trials × seeds per trial) is compared beside the fixed protocol's")
    lines.append("- deviations from the paper's protocol: "
                 + ("; ".join(exp.deviations) if exp.deviations else "none requested"))
    for note in spec.get("differences") or []:
        lines.append(f"- known difference: {' '.join(str(note).split())}")
    return "\n".join(lines)


# The train keys a dry run shows for every cell, and those it shows only where they are set.
SHOWN_TRAIN = ("lr", "weight_decay", "weight_decay_graph", "weight_decay_groups",
               "weight_decay_first_only", "epochs", "patience", "selection", "dropedge",
               "dropnode")
UNSET = {"weight_decay_graph": None, "weight_decay_groups": {}, "weight_decay_first_only": False,
         "dropedge": 0.0, "dropnode": 0.0}
# Model options every model has that are shown only when set (the layer most models lack)
MODEL_UNSET = {"fully_adjacent_last": False}


def _text(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def settings(config: dict) -> str:
    """The effective model and training settings of a cell's config (the train preset's
    per-model values and overrides applied, the command line winning), on one line."""
    model = " ".join(f"{k}={_text(v)}" for k, v in config["model"].items()
                     if k != "name" and (k not in MODEL_UNSET or v != MODEL_UNSET[k]))
    train = config["train"]
    shown = [f"{k}={_text(train[k])}" for k in SHOWN_TRAIN
             if k in train and (k not in UNSET or train[k] != UNSET[k])]
    return f"model: {model} | train: {' '.join(shown)}"


def _dry_run(exp: experiment.Experiment, planned: list[cells_mod.Cell],
             missing: dict[str, str]) -> int:
    """Each cell: key, labels, estimate (a tree cell's also at its pass budget), overrides,
    settings; a searched cell its budget."""
    cost = cells_mod.estimate_searched if exp.search else cells_mod.estimate_seconds
    ceilings = [] if exp.search else [cells_mod.estimate_ceiling(c) for c in planned]
    for i, cell in enumerate(planned):
        labels = " ".join(f"{k}={v}" for k, v in cell.labels.items())
        state = " (dataset not available)" if cell.config["dataset"]["name"] in missing else ""
        est = cells_mod.rough_duration(cost(cell))
        if ceilings and ceilings[i] is not None:
            est += f" (up to {cells_mod.rough_duration(ceilings[i])} at its pass budget)"
        budget = cells_mod.budget(cell)
        searched = "" if budget is None else (
            f"\n    searched ({experiment.search_label(exp)}): {budget[0]} trials × {budget[1]} "
            f"seeds per trial, then the best trial with the cell's {cell.config['seeds']}")
        print(f"{cell.key}  {labels}  ~{est}{state}\n    {' '.join(cell.overrides)}\n"
              f"    {settings(cell.config)}{searched}")
    costs = [cost(c) for c in planned]
    total = f"~{cells_mod.rough_duration(sum(costs))}"
    if any(c is not None for c in ceilings):
        most = sum(c if c is not None else f for c, f in zip(ceilings, costs, strict=True))
        total += (f" (up to {cells_mod.rough_duration(most)} if every tree run trains to its pass "
                  "budget)")
    what = "searched cells" if exp.search else "cells"
    print(f"{len(planned)} {what}, {total} CPU; sweep folder {experiment.folder(exp)}",
          file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gdepth reproduce", usage=USAGE)
    parser.add_argument("name", nargs="?")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--list", action="store_true", help="the experiments, cells, CPU time")
    parser.add_argument("--dry-run", action="store_true", help="list the cells, run nothing")
    parser.add_argument("--no-run", action="store_true",
                        help="compare the records already there, run nothing")
    ns = parser.parse_args(argv)
    if ns.list:
        return listing.print_list()
    if not ns.name:
        return _fail(f"name an experiment; valid: {', '.join(experiment.names())}")
    try:
        exp = experiment.load(ns.name, ns.overrides)
        planned = cells_mod.plan(exp)
        tuned = cells_mod.plan(exp, searched=True) if exp.search else None
    except ValueError as err:
        return _fail(str(err))
    missing = unavailable(planned, exp.extra)
    for name, why in missing.items():
        print(f"gdepth reproduce: {name}: dataset not available, its cells are skipped ({why})",
              file=sys.stderr)
    if ns.dry_run:
        return _dry_run(exp, tuned or planned, missing)
    for deviation in exp.deviations:
        print(f"gdepth reproduce: deviates from the paper's protocol: {deviation}",
              file=sys.stderr)
    start = time.perf_counter()
    folder = experiment.folder(exp)
    if not ns.no_run:
        for sub in exp.subsweeps:
            if sub.dataset in missing:
                continue
            args = [sys.executable, "-m", "gdepth.cli", "sweep", *experiment.sweep_args(exp, sub)]
            head = " ".join(sub.labels.values())
            print(f"gdepth reproduce: {head + ': ' if head else ''}"
                  f"gdepth sweep {' '.join(args[4:])}", file=sys.stderr, flush=True)
            subprocess.run(args, stdout=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    frame = compare.build(exp, planned, Path(folder), set(missing), tuned)
    header = _header(exp, len(planned))
    if Path(folder).is_dir():  # from the records, so `--no-run` regenerates the same line
        seconds, count = status.recorded_compute(folder)
        spent = cells_mod.rough_duration(seconds)
        header += (f"\n- compute in the sweep folder's records: {spent} "
                   f"over {count} records (every call into it, trials included; each record's "
                   "wall_s summed, a lower bound)")
    text = compare.write(exp, frame, Path(folder), header)
    print(text)
    if not ns.no_run:
        print(f"gdepth reproduce: wall time of this call: {cells_mod.rough_duration(wall)}",
              file=sys.stderr)
    counts = frame["verdict"].value_counts().to_dict()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    print(f"{len(frame)} rows ({summary}); comparison in {folder}/ (comparison.md, "
          f"comparison.csv, comparison.png)", file=sys.stderr)
    column = "tuned_verdict" if tuned else "verdict"  # with search=, only searched cells run
    bad = (frame[column].isin(["failed", "oom", "not run", "not tuned yet", "search failed"])
           | frame[column].astype(str).str.contains("running", regex=False)).any()
    return 1 if bad and not ns.no_run else 0
