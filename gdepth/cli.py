"""The ``gdepth`` command: a thin dispatcher over one ``@hydra.main`` task.

``gdepth run|sweep [overrides]`` rewrites ``sys.argv`` (expanding the depth grammar, adding
``--multirun`` and a unique sweep name) and calls the Hydra app, so every Hydra feature works
unchanged: launchers, ``--cfg``, ``--info``, tab completion, output folders. Hydra's compose
API cannot multirun, hence the dispatcher. ``table``, ``report`` and ``list`` need no Hydra at
all.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gdepth import __version__, compose, preview
from gdepth.depth import DepthError, parse_depths
from gdepth.paths import config_dir
from gdepth.sweep import launchers, progress

compose.register()
launchers.register_resolvers()  # the pool's threads per job; job processes import this module

USAGE = """usage: gdepth COMMAND [ARGS]

commands:
  run   [overrides]           run one cell (e.g. gdepth run dataset=cora model=gcn depth=2)
  sweep [overrides]           run every cell of the comma lists and depth ranges given
                              (e.g. gdepth sweep model=gcn,gcn_res depth=2..64 seeds=5)
  table DIR [--metric M] [--format md|csv|tex] [--ddof 0|1] [--delta 2]
                              re-aggregate the records below DIR into the report files
                              (mean ± std with the ddof stated; each row's collapse depth)
  report DIR [DIR...] [-o FILE] [--metric M] [--ddof 0|1] [--delta 2] [--no-structure]
                              one self-contained HTML file (opens offline): curves with
                              interval bands and collapse depths, diagnostics, structure,
                              published vs ours; each cell's config, engine, time, memory
  compare DIR A B [--metric M] [--delta 2]
                              two table rows per depth: paired differences over the same
                              seeds, Holm-corrected p-values, bootstrap 95 % intervals,
                              and each row's collapse depth
  tune-report DIR [--trials]  what each cell's search=... chose (hyperparameters.csv) and the
                              tuned rows beside the fixed ones (tuned.md)
  status DIR [--all]          cells done / running / failed / missing, from the folder alone
launchers: sweep ... launcher=local|pool|slurm|ray (configs/launcher/, docs/sweeps/launchers.md)
  list  [models|norms|datasets|train|experiments]
                              what each config group offers
  inspect dataset=A[,B] [dataset.KEY=V]
                              graph structure side by side (docs/diagnostics/structure.md)
  plot  smoothing|influence DIR [--measure M] [--at selected|init]
                              per-layer diagnostics of a diagnostics=... sweep
  reproduce NAME [overrides] [--dry-run|--no-run] | reproduce --list
                              rerun a paper's depth table, print ours next to it (docs/reproduce.md)

depth ranges: {forms}
After run/sweep: --cfg job|hydra|all [-p KEY] prints the config each cell will run (the train
preset applied; command-line values win over it), --dry-run lists the cells, their record keys
and whether each is done; --help, --hydra-help, --info [defaults|...]: Hydra's. None of them
launches or writes anything.
Every option and the output layout: docs/ (configuration/reference.md, guide/sweep-folder.md)."""


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def hydra_task(cfg: DictConfig) -> dict:
    """The Hydra job: one cell, recorded below the run or sweep folder."""
    from gdepth.cell import run_cell

    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    base = Path(hc.sweep.dir if multirun else hc.run.dir)
    from gdepth.sweep import markers, parts, plan

    overrides = list(hc.overrides.task)
    key, _ = plan.cell_identity(cfg, overrides)
    unit = parts.unit(key, parts.seed_range(cfg))  # a part of a split cell: <key>.seeds-<lo>-<hi>
    with markers.running(base, unit):  # a marker with a heartbeat: `gdepth status` sees the cell
        return run_cell(cfg, base, overrides=overrides)


def _fail(message: str, code: int = 2) -> int:
    print(f"gdepth: error: {message}", file=sys.stderr)
    return code


def _expand_depths(command: str, args: list[str]) -> list[str]:
    """Expand depth ranges and check the launcher's name and single-cell ``run``."""
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "launcher":
            arg = f"+launcher={launchers.check_choice(value, config_dir())}"
        if sep and key.lstrip("+~") == "depth":
            depths = parse_depths(value)
            if command == "run" and len(depths) > 1:
                raise DepthError(value, "gdepth run takes one depth (use gdepth sweep for several)")
            arg = f"{key}={','.join(map(str, depths))}"
        out.append(arg)
    return out


def _named(overrides: list[str]) -> list[str]:
    """``overrides`` with a unique sweep name added unless one is given: two sweeps started
    in the same second do not collide."""
    if any(o.partition("=")[0] == "name" for o in overrides):
        return overrides
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return [*overrides, f"name={stamp}_{secrets.token_hex(2)}"]


def _folder(command: str, overrides: list[str]) -> Path:
    """The run or sweep folder of a command line (its parent if no ``name=`` is given)."""
    values = dict(o.split("=", 1) for o in overrides if "=" in o)
    return Path(values.get("out_dir", "outputs"), "sweeps" if command == "sweep" else "runs",
                values.get("name", ""))


def _hydra_flags(args: list[str]) -> tuple[argparse.Namespace, list[str], bool]:
    """Hydra's own options (parsed with Hydra's parser, anywhere on the line), the overrides,
    and gdepth's ``--dry-run``."""
    from hydra._internal.utils import get_args_parser

    dry = "--dry-run" in args
    ns = get_args_parser().parse_intermixed_args([a for a in args if a != "--dry-run"])
    return ns, list(ns.overrides), dry


def _hydra_shows(ns: argparse.Namespace, overrides: list[str]) -> int:
    """Hydra's ``--help``, ``--hydra-help``, ``--info``: one cell's config, nothing written."""
    flags = ["--help"] if ns.help else ["--hydra-help"] if ns.hydra_help else \
        ["--info", ns.info]
    sys.argv = ["gdepth", *flags, *compose.first_values(overrides)]
    try:
        hydra_task()
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def _launch(command: str, args: list[str]) -> int:
    try:
        ns, overrides, dry = _hydra_flags(args)
    except SystemExit as bad:  # argparse printed its one-line usage error
        return int(bad.code or 0)
    try:
        overrides = _expand_depths(command, overrides)
        if ns.help or ns.hydra_help or ns.info:
            return _hydra_shows(ns, overrides)
        cells = compose.cells(overrides, config_dir())
    except (DepthError, launchers.ChoiceError, compose.ComposeError) as err:
        return _fail(str(err))
    if ns.cfg:
        try:
            return preview.show_cfg(ns.cfg, ns.package, cells, overrides)
        except preview.UnknownPackage as err:
            return _fail(str(err))
    if dry:
        return preview.dry_run(cells, _folder(command, overrides))
    overrides = _named(overrides)
    folder = _folder(command, overrides)
    os.environ[progress.TOTAL_ENV] = str(len(cells) if command == "sweep" else 1)
    os.environ[progress.START_ENV] = str(time.time())
    os.environ[progress.SKIPPED_ENV] = "0"  # the sweeper sets it once it has planned
    os.environ[progress.DONE_ENV] = str(progress.count_records(folder))  # resumed: no ETA
    problem = launchers.unwritable(folder)
    if problem:
        return _fail(f"{problem}; choose another out_dir=... or name=...", 1)
    hydra_args = [*(["--multirun", "hydra/sweeper=gdepth"] if command == "sweep" else []),
                  *overrides]  # gdepth's sweeper: plan.json, skip done cells, record dead jobs
    sys.argv = [f"gdepth {command}", *hydra_args]
    from gdepth.sweep import callbacks, sweeper

    callbacks.LAST.clear()
    sweeper.LAST.clear()
    hydra_task()
    if sweeper.LAST.get("launch_error"):
        return _fail(sweeper.LAST["launch_error"], 1)
    statuses = callbacks.LAST.get("statuses", [])
    if sweeper.LAST.get("keys"):  # this sweep's cells only: another sweep may share the folder
        from gdepth.sweep import status

        statuses = [status.cell_status(sweeper.LAST["dir"], k) for k in sweeper.LAST["keys"]]
    bad = {s: statuses.count(s) for s in ("failed", "oom", "corrupt", "running", "missing")
           if s in statuses}
    if bad:
        counts = ", ".join(f"{n} {s}" for s, n in bad.items())
        print(f"gdepth: not every cell is done ({counts}); errors are in the records and job "
              f"logs, `gdepth status {folder}` lists them, the same command resumes",
              file=sys.stderr)
        return 1
    return 0


def _table(args: list[str]) -> int:
    from gdepth import report

    parser = argparse.ArgumentParser(prog="gdepth table")
    parser.add_argument("dir")
    parser.add_argument("--metric", default="test_acc",
                        help="test_acc, val_acc, train_acc or any per-seed number of the records "
                             "(e.g. dirichlet_last with diagnostics=smoothing)")
    parser.add_argument("--format", default="md", choices=("md", "csv", "tex"))
    parser.add_argument("--ddof", type=int, default=0, choices=(0, 1),
                        help="the std's delta degrees of freedom: 0 population (default), "
                             "1 sample; stated in the table's header and the plot")
    parser.add_argument("--delta", type=float, default=2.0,
                        help="collapse column: points below the row's best mean (default 2)")
    ns = parser.parse_args(args)
    if not Path(ns.dir).is_dir():
        return _fail(f"no such folder '{ns.dir}'")
    if ns.delta < 0:
        return _fail(f"--delta {ns.delta}: must be >= 0")
    try:
        table, _ = report.write_report(ns.dir, ns.metric, ns.ddof, ns.delta)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    print(report.render(table, ns.format))
    return 0


def _list(args: list[str]) -> int:
    from gdepth import data, models, norms

    groups = {
        "models": {k: v.description + ("" if v.per_seed is None else
                                       f" [seeds one module each: {v.per_seed}]")
                   for k, v in models.MODELS.items()},
        "norms": {k: v.description for k, v in norms.NORMS.items()},
        "datasets": {k: v.description for k, v in data.DATASETS.items()},
        "train": {p.stem: p.read_text().splitlines()[0].lstrip("# ")
                  for p in sorted(Path(config_dir(), "train").glob("*.yaml"))},
        "experiments": {p.stem: p.read_text().splitlines()[0].lstrip("# ")
                        for p in sorted(Path(config_dir(), "experiment").glob("*.yaml"))},
    }
    wanted = args or list(groups)
    for name in wanted:
        if name not in groups:
            return _fail(f"unknown group '{name}'; valid: {', '.join(groups)}")
        print(f"{name}:")
        for key, text in sorted(groups[name].items()):
            print(f"  {key:<18} {text}")
        if not groups[name]:
            print("  (none yet)")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(forms=__import__("gdepth.depth").depth.FORMS))
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"gdepth {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command in ("run", "sweep"):
        return _launch(command, rest)
    if command == "table":
        return _table(rest)
    if command == "report":
        from gdepth.report import command as report_command

        return report_command.main(rest)
    if command == "list":
        return _list(rest)
    if command == "status":
        from gdepth.sweep import status

        return status.main(rest)
    if command == "inspect":
        from gdepth import inspect_graphs

        return inspect_graphs.main(rest)
    if command == "plot":
        from gdepth.diagnostics import plot

        return plot.main(rest)
    if command == "tune-report":
        from gdepth.search import report as search_report

        return search_report.main(rest)
    if command == "compare":
        from gdepth import stats

        return stats.main(rest)
    if command == "reproduce":
        from gdepth import reproduce

        return reproduce.main(rest)
    return _fail(f"unknown command '{command}'; valid: run, sweep, table, compare, tune-report, "
                 "list, status, inspect, plot, reproduce, report")


if __name__ == "__main__":
    sys.exit(main())
