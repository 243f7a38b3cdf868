"""``gdepth tune-report DIR``: what the per-cell searches below DIR chose, and the tuned table.

Writes into DIR:

- ``hyperparameters.csv``: one row per searched cell (dataset, model, norm, depth), the values
  its best trial chose, that trial's mean validation accuracy, the budget (trials × seeds per
  trial) and the final cell's test accuracy over the full seeds;
- ``tuned.md``: accuracy against depth, a ``tuned`` row per (dataset, model, norm) next to the
  ``fixed`` row of the same cells run without a search in the same folder, if any; the
  budget and the search space in its header.

The search never reads a test accuracy (:func:`gdepth.search.study.objective`); this report
does, for the final cells only, after the search is over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gdepth.search import study
from gdepth.sweep import collect, records


def _test(record: dict[str, Any] | None) -> tuple[float, float, int]:
    """Mean, std (ddof 0, as ``gdepth table``) and n of a record's ok seeds' test accuracy."""
    if record is None or record.get("status") not in records.DONE:
        return np.nan, np.nan, 0
    values = [100 * s["test_acc"] for s in record.get("seeds", [])
              if s.get("status", "ok") == "ok" and s.get("test_acc") is not None]
    if not values:
        return np.nan, np.nan, 0
    return float(np.mean(values)), float(np.std(values)), len(values)


def _row(config: dict[str, Any]) -> str:
    return (f"{config['dataset']['name']} {config['model']['name']}·"
            f"{config['norm']['name']}")


def hyperparameters(directory: Path) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """One row per study below ``directory``; and the records by key."""
    by_key = {r["key"]: r for r in collect.load(directory, planned=False)}
    rows = []
    for summary in study.load_summaries(directory):
        config, best = summary["config"], summary.get("best") or {}
        final = by_key.get((summary.get("final") or {}).get("key"))
        mean, std, n = _test(final)
        row = {"dataset": config["dataset"]["name"], "model": config["model"]["name"],
               "norm": config["norm"]["name"], "depth": config["depth"],
               "trials": summary["search"]["trials"],
               "seeds_per_trial": summary["search"]["seeds"],
               "completed": sum(t["state"] == "COMPLETE" for t in summary["trials"]),
               "best_trial": best.get("number"),
               "best_val_acc": 100 * best["val_acc"] if best else np.nan,
               "test_acc": mean, "test_std": std, "test_n": n}
        row.update({f"best.{k}": v for k, v in (best.get("params") or {}).items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["dataset", "model", "norm", "depth"], kind="stable")
    return frame, by_key


def tuned_table(directory: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Tuned rows (the finals) beside fixed rows (other done cells, not trials)."""
    summaries = study.load_summaries(directory)
    _, by_key = hyperparameters(directory)
    finals = {(s.get("final") or {}).get("key") for s in summaries} - {None}
    trials = study.trial_only_keys(directory)
    cells: dict[str, dict[int, str]] = {}
    for key, record in by_key.items():
        if key in trials:
            continue
        kind = "tuned" if key in finals else "fixed"
        mean, std, n = _test(record)
        text = f"{mean:.1f} ± {std:.1f} ({n})" if n else record.get("status", "–")
        cells.setdefault(f"{_row(record['config'])} {kind}", {})[
            int(record["config"]["depth"])] = text
    table = pd.DataFrame(cells).T
    if not table.empty:
        table = table.reindex(columns=sorted(table.columns)).fillna("–").sort_index()
        table.columns = [f"L={d}" for d in table.columns]
        table.index.name = "dataset model·norm"
    return table, summaries


def header(summaries: list[dict[str, Any]]) -> str:
    """Budget and space, once per distinct search setting."""
    seen, lines = set(), []
    for s in summaries:
        search = s["search"]
        text = (f"- search={search['name']}: {search['trials']} trials per cell, "
                f"{search['seeds']} seeds per trial, TPE seed {search['sampler_seed']} after "
                f"{search['startup_trials']} random trials; objective: mean validation "
                f"accuracy; space: " + "; ".join(f"{k} {v}" for k, v in s["space"].items()))
        if text not in seen:
            seen.add(text)
            lines.append(text)
    return "\n".join(lines)


def write(directory: Path) -> str | None:
    """Write ``hyperparameters.csv`` and ``tuned.md`` into ``directory``; their Markdown, or
    None if no search ran there."""
    frame, _ = hyperparameters(directory)
    if frame.empty:
        return None
    table, summaries = tuned_table(directory)
    frame.to_csv(directory / "hyperparameters.csv", index=False)
    text = f"{header(summaries)}\n\n{table.to_markdown()}\n"
    (directory / "tuned.md").write_text(text)
    return f"{text}\n{frame.round(4).to_markdown(index=False)}"


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gdepth tune-report")
    parser.add_argument("dir")
    parser.add_argument("--trials", action="store_true", help="list every trial of every cell")
    ns = parser.parse_args(args)
    directory = Path(ns.dir)
    if not directory.is_dir():
        print(f"gdepth: error: no such folder '{ns.dir}'", file=sys.stderr)
        return 2
    text = write(directory)
    if text is None:
        print(f"gdepth: error: no search below '{ns.dir}' (run a sweep with search=default)",
              file=sys.stderr)
        return 2
    print(text)
    if ns.trials:
        for s in study.load_summaries(directory):
            print(f"\n{s['label']} ({s['study']}):")
            print(pd.DataFrame([{"trial": t["number"], "state": t["state"],
                                 "val_acc": t["val_acc"], **t["params"]}
                                for t in s["trials"]]).to_markdown(index=False))
    print(f"written: {directory / 'hyperparameters.csv'}, {directory / 'tuned.md'}",
          file=sys.stderr)
    return 0
