"""Published numbers next to ours: ``comparison.csv``, ``comparison.md``, ``comparison.png``.

One row per planned cell (and per published number in scope that no cell covers): the
published value, our ``mean ± std (n)`` over seeds from the cell's record (population std, as
``gdepth.sweep.records.summarize``), Δ = ours − published, and a verdict:

- ``match``: |Δ| ≤ max(2 · std, 1.5 points) — within two of our standard deviations, or
  1.5 points, which is the spread the papers' own single-seed numbers carry (GCNII issue #15,
  DropEdge issue #8: ±1–2 points even with the official code);
- ``above``: ours higher than the published number by more than that (the published number is
  reached and beaten: a deep cell that a tuned run, or a stronger training, takes past the
  paper's number shows the number was no limit of the architecture);
- ``off``: lower than the published number by more than that;
- ``not run`` (no record yet), ``failed`` / ``oom`` / ``diverged`` (the record's status),
  ``dataset not available`` (not in the cache or mirror, offline), ``no published number``;
- ``running``, ``match or above (running)``, ``above (running)``: a one-seed tree-task cell
  with no record yet but a checkpoint's progress (``trees-<s>.progress.json``, committed with
  the checkpoint when a session stops mid-cell). Its selected train accuracy can only rise
  until the run ends (:func:`gdepth.train_trees.fit_trees` replaces the selection only by a
  higher one), so the value so far is a lower bound of the record's: at least the published
  number less the tolerance gives ``match or above``, more than the published number plus the
  tolerance gives ``above`` already (one seed: std 0); ours then reads
  ``≥ 45.1 at 12,300 passes``, and Δ stays empty;
- ``no entry``: a published number no entry of the experiment covers (a model gdepth does not
  have: DropEdge's GraphSage, Bag of Tricks' DAGNN); it does not make ``reproduce`` fail.

With ``search=…`` (:func:`build`'s ``tuned``), each row also gets the tuned final of the same
(dataset, model, norm, depth, variant) cell: the study summary ``search/<key>.json`` of the
searched cell names its final record (``final.key``), and the tuned verdict is ``match after
tuning (T trials × S seeds)`` / ``above after tuning (…)`` / ``off after tuning (…)`` by the
same rule, or ``not tuned yet``
(no summary or final record yet), ``search failed`` (every trial of the budget failed),
``failed`` / ``oom`` (the final's status). A published deep number that no budget reaches
stays ``off after tuning``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from gdepth import frames
from gdepth.reproduce import published
from gdepth.reproduce.cells import Cell
from gdepth.reproduce.experiment import Experiment
from gdepth.sweep import checkpoint, collect

TUNED = ("tuned_mean", "tuned_std", "tuned_n", "budget", "tuned_verdict", "tuned_key")
# the frame's columns that are not the experiment's labels
NOT_LABELS = ("published", "mean", "std", "n", "key", "note", "verdict", "delta", "progress",
              *TUNED)
TOLERANCE_POINTS = 1.5
TOLERANCE_STDS = 2.0


def verdict(published_value: float | None, mean: float, std: float) -> str:
    """``match`` if |mean − published| ≤ max(2·std, 1.5), else ``above`` (ours higher) or
    ``off`` (ours lower) (module docstring)."""
    if published_value is None:
        return "no published number"
    delta = mean - published_value
    if abs(delta) <= max(TOLERANCE_STDS * std, TOLERANCE_POINTS):
        return "match"
    return "above" if delta > 0 else "off"


def _times(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _running(cell: Cell, folder: Path, metric: str, scale: float,
             published_value: float | None) -> dict[str, Any] | None:
    """The row of a one-seed cell that is still training (module docstring): its progress
    text and verdict from the checkpoint's lower bound of ``metric``; None for any other."""
    if int(cell.config.get("seeds") or 0) != 1:
        return None
    found = checkpoint.read_progress(folder, cell.key)
    if len(found) != 1:
        return None
    (entry,) = found.values()
    bound = (entry.get("lower_bounds") or {}).get(metric)
    if not isinstance(bound, int | float) or math.isnan(bound):
        return None
    low = scale * float(bound)
    text = f"≥ {low:.1f} at {int(entry.get('passes') or 0):,} passes"
    word = "running"
    if published_value is not None and low > published_value + TOLERANCE_POINTS:
        word = "above (running)"
    elif published_value is not None and low >= published_value - TOLERANCE_POINTS:
        word = "match or above (running)"
    return {"progress": text, "verdict": word}


def _published_index(exp: Experiment) -> tuple[list[str], dict[tuple, dict[str, str]]]:
    spec = exp.published
    if not spec.get("table"):
        return [], {}
    table = published.load(spec["table"])
    keys = [c for c in table.rows.columns if c not in (spec["value"], "note")]
    index = {tuple(row[k] for k in keys): row for row in table.rows.to_dict("records")}
    return keys, index


def _in_scope(row: dict[str, str], exp: Experiment) -> bool:
    """A published row the user's ``dataset=`` / ``depth=`` / entry-key restrictions keep."""
    if exp.datasets is not None and "dataset" in row and row["dataset"] not in exp.datasets:
        return False
    for column, path in exp.columns.items():
        wanted = exp.filters.get(path)
        if wanted is not None and column in row and str(row[column]) not in wanted:
            return False
    if exp.filters and not any(  # model=gcn: only the rows of the entries it kept (backbone)
            all(str(row[k]) == v for k, v in sub.labels.items() if k in row)
            for sub in exp.subsweeps):
        return False
    depth_column = next((c for c, p in exp.columns.items() if p == "depth"), None)
    return not (exp.depths is not None and depth_column
                and int(float(row.get(depth_column, 0))) not in exp.depths)


def _tuned(row: dict[str, Any], cell: Cell, folder: Path, found: dict[str, dict],
           metric: str, scale: float) -> dict[str, Any]:
    """The tuned-final columns of a row: the searched ``cell``'s study summary, its final."""
    from gdepth.search import study

    trials, seeds = int(cell.config["search"]["trials"]), int(cell.config["search"]["seeds"])
    summary = study.read_summary(study.summary_path(folder, cell.key)) or {}
    if summary.get("search"):
        trials, seeds = int(summary["search"]["trials"]), int(summary["search"]["seeds"])
    budget = f"{trials} trial{'s' * (trials != 1)} × {seeds} seed{'s' * (seeds != 1)}"
    out: dict[str, Any] = {"tuned_mean": math.nan, "tuned_std": math.nan, "tuned_n": 0,
                           "budget": budget, "tuned_key": "", "tuned_verdict": "not tuned yet"}
    final = summary.get("final") or {}
    done = [t for t in summary.get("trials", []) if t.get("state") in ("COMPLETE", "FAIL")]
    if summary and not summary.get("best") and len(done) >= trials:
        out["tuned_verdict"] = "search failed"  # every trial of the budget failed
        return out
    record = found.get(final.get("key") or "")
    if record is None:
        return out
    out["tuned_key"] = record["key"]
    if record["status"] in ("failed", "oom"):
        out["tuned_verdict"] = record["status"]
        return out
    stats = record["summary"][metric]
    out.update(tuned_mean=scale * stats["mean"], tuned_std=scale * stats["std"],
               tuned_n=stats["n"])
    word = verdict(row["published"], out["tuned_mean"], out["tuned_std"])
    out["tuned_verdict"] = word if word == "no published number" else \
        f"{word} after tuning ({budget})"
    return out


def build(exp: Experiment, cells: list[Cell], folder: Path,
          unavailable: set[str] = frozenset(), tuned: list[Cell] | None = None
          ) -> pd.DataFrame:
    """The comparison frame of ``cells`` against the records below ``folder``.

    ``tuned``: the same cells planned with ``search=…`` (:func:`gdepth.reproduce.cells.plan`);
    each row then gets its tuned final's columns (:data:`TUNED`) beside the fixed verdict.
    """
    spec = exp.published
    scale, metric = float(spec.get("scale", 100)), spec.get("metric", "test_acc")
    table_scale = float(spec.get("table_scale", 1))  # the table's unit -> points
    found = {r["key"]: r for r in collect.load(folder, planned=False)} if folder.is_dir() else {}
    keys, index = _published_index(exp)
    label_keys = keys or list(dict.fromkeys(k for c in cells for k in c.labels))
    rows, seen = [], set()
    searched = {tuple(c.labels.get(k, "") for k in label_keys): c for c in tuned or []}
    for cell in cells:
        ident = tuple(cell.labels.get(k, "") for k in label_keys)
        seen.add(ident)
        pub_row = index.get(ident, {})
        pub = published.number(pub_row.get(spec.get("value"), "")) if pub_row else None
        pub = None if pub is None else pub * table_scale
        row: dict[str, Any] = {**dict(zip(label_keys, ident, strict=True)), "published": pub,
                               "mean": math.nan, "std": math.nan, "n": 0, "key": cell.key,
                               "note": pub_row.get("note", "")}
        record = found.get(cell.key)
        dataset = cell.config["dataset"]["name"]
        running = None if record is not None or dataset in unavailable else \
            _running(cell, folder, metric, scale, pub)
        if running is not None:
            row.update(running)
        elif record is None:
            row["verdict"] = "dataset not available" if dataset in unavailable else "not run"
        elif record["status"] in ("failed", "oom"):
            row["verdict"], row["note"] = record["status"], (record.get("error") or "")[:120]
        else:
            stats = record["summary"][metric]
            row.update(mean=scale * stats["mean"], std=scale * stats["std"], n=stats["n"])
            row["verdict"] = verdict(pub, row["mean"], row["std"])
            if record["status"] == "diverged":
                row["verdict"] += " (diverged seeds)"
        if ident in searched:
            row.update(_tuned(row, searched[ident], folder, found, metric, scale))
        rows.append(row)
    for ident, pub_row in index.items():  # published numbers no cell covers
        if ident not in seen and _in_scope(pub_row, exp):
            why = ("dataset not available" if pub_row.get("dataset") in unavailable
                   else "no entry")  # no cell of the experiment can run it: not a failure
            rows.append({**dict(zip(label_keys, ident, strict=True)),
                         "published": _times(published.number(pub_row[spec["value"]]),
                                             table_scale),
                         "mean": math.nan, "std": math.nan, "n": 0, "key": "",
                         "note": pub_row.get("note") or "no entry in the experiment",
                         "verdict": why})
    frame = pd.DataFrame(rows)
    if "progress" in frame:  # only where a cell is running: other comparisons keep their columns
        frame["progress"] = frame["progress"].fillna("")
    frame["delta"] = frame["mean"] - frame["published"].astype(float)
    return frame


def _ours(row: pd.Series) -> str:
    if not row["n"]:
        return row.get("progress") or "–"
    return f"{row['mean']:.1f} ± {row['std']:.1f} ({int(row['n'])})"


def render(frame: pd.DataFrame, label_keys: list[str]) -> str:
    """The comparison as a Markdown table."""
    shown = frame[label_keys].copy()
    shown["published"] = [("–" if pd.isna(v) else f"{v:.1f}") if not note else
                          (f"{v:.1f}" if not pd.isna(v) else note)
                          for v, note in zip(frame["published"], frame["note"], strict=True)]
    shown["ours mean ± std (n)"] = frame.apply(_ours, axis=1)
    shown["Δ"] = ["" if pd.isna(d) else f"{d:+.1f}" for d in frame["delta"]]
    shown["verdict"] = frame["verdict"]
    if "tuned_verdict" in frame:
        tuned = pd.DataFrame({"mean": frame["tuned_mean"], "std": frame["tuned_std"],
                              "n": frame["tuned_n"].fillna(0)})
        shown["tuned mean ± std (n)"] = [
            _ours(r) if isinstance(v, str) else "" for (_, r), v in
            zip(tuned.iterrows(), frame["tuned_verdict"], strict=True)]
        shown["tuned Δ"] = ["" if pd.isna(m) or pd.isna(p) else f"{m - p:+.1f}" for m, p in
                            zip(frame["tuned_mean"], frame["published"], strict=True)]
        shown["tuned verdict"] = frame["tuned_verdict"].fillna("")
    return shown.to_markdown(index=False, disable_numparse=True)


def series_keys(frame: pd.DataFrame, label_keys: list[str], depth_key: str,
                panel_key: str | None) -> list[str]:
    """The keys that make one curve of the comparison plot: the label keys but the depth, the
    panel's key and any key that moves one to one with the depth (transfer_range's r = depth,
    the tree task's r = depth - 1), which would split every curve into single points; the rule
    is the tables' (:func:`gdepth.frames.follows_depth`)."""
    return [k for k in label_keys if k not in (depth_key, panel_key)
            and not frames.follows_depth(frame, k, depth_key)]


def plot(frame: pd.DataFrame, label_keys: list[str], depth_key: str, path: Path) -> None:
    """Published points (crosses) over our mean ± std curves, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panel_key = "dataset" if "dataset" in label_keys else None
    panels = sorted(frame[panel_key].unique()) if panel_key else [None]
    keys = series_keys(frame, label_keys, depth_key, panel_key)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        part = frame if panel is None else frame[frame[panel_key] == panel]
        for values, group in part.groupby(keys, sort=True):
            label = " ".join(map(str, values if isinstance(values, tuple) else (values,)))
            group = group.assign(x=group[depth_key].astype(float)).sort_values("x")
            ours = group[group["n"] > 0]
            line = ax.plot(ours["x"], ours["mean"], marker="o", label=label)[0]
            ax.fill_between(ours["x"], ours["mean"] - ours["std"], ours["mean"] + ours["std"],
                            color=line.get_color(), alpha=0.15)
            pub = group.dropna(subset=["published"])
            ax.plot(pub["x"], pub["published"], "x--", color=line.get_color(), alpha=0.7)
        if any(len(line.get_xdata()) for line in ax.lines):
            ax.set_xscale("log", base=2)  # matplotlib refuses a log axis with nothing on it
        else:
            ax.text(0.5, 0.5, "no cell run yet", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title(f"{panel} (×, dashed: published; o: ours)" if panel else
                     "× dashed: published; o: ours", fontsize="small")
        ax.set_xlabel(depth_key)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="x-small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(exp: Experiment, frame: pd.DataFrame, folder: Path, header: str) -> str:
    """Write ``comparison.{csv,md,png}`` into ``folder``; return the Markdown text."""
    folder.mkdir(parents=True, exist_ok=True)
    label_keys = [c for c in frame.columns if c not in NOT_LABELS]
    frame.to_csv(folder / "comparison.csv", index=False)
    text = f"{header}\n\n{render(frame, label_keys)}\n"
    (folder / "comparison.md").write_text(text)
    depth_key = next((c for c, p in exp.columns.items() if p == "depth"), None)
    if depth_key and (frame["n"] > 0).any() | frame["published"].notna().any():
        plot(frame, label_keys, depth_key, folder / "comparison.png")
    return text
