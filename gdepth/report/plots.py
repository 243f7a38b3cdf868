"""The static figure of a report: ``accuracy_vs_depth.png`` (matplotlib), mean ± std over log₂
depth, one line per table row (the interactive twin is :mod:`gdepth.report.figures`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gdepth import frames
from gdepth.frames import is_accuracy, row_keys
from gdepth.sweep import records


def plot(table: pd.DataFrame, frame: pd.DataFrame, metric: str, path: Path, ddof: int = 0
         ) -> None:
    """Mean ± std (``ddof``) of ``metric`` over log₂ depth, one line per table row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = row_keys(frame)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = frame[frame["status"].isin(records.DONE) & (frame["seed_status"] == "ok")]
    for values, group in ok.groupby(keys, sort=True, dropna=False):
        label = frames.label(keys, values if isinstance(values, tuple) else (values,))
        scale = 100 if is_accuracy(metric) else 1
        stats = group.groupby("depth")[metric].agg(["mean", lambda s: s.std(ddof=ddof)]) * scale
        stats.columns = ["mean", "std"]
        stats = stats.dropna(subset=["mean"])  # e.g. epoch_s of seed-batched cells: nan
        if stats.empty:
            continue
        line = ax.plot(stats.index, stats["mean"], marker="o", label=label)[0]
        ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                        color=line.get_color(), alpha=0.2)
    if ax.lines:  # a log axis with nothing on it cannot be drawn (e.g. no test nodes)
        ax.set_xscale("log", base=2)
    depths = sorted(frame["depth"].dropna().astype(int).unique())
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel(metric.replace("_", " ") + (" (%)" if is_accuracy(metric) else "")
                  + f", mean ± std (ddof={ddof})")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
