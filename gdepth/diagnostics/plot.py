"""``gdepth plot smoothing|influence DIR``: the diagnostics of a sweep's records as figures.

* ``smoothing``: a measure (default the Dirichlet energy, log scale) against the layer index, one
  curve per model·norm and depth (mean over seeds), at the selected epoch (``--at init`` for
  initialization); then the table of its last-hidden-layer value against depth
  (``<measure>_last``, the same as ``gdepth table DIR --metric <measure>_last``).
* ``influence``: the normalized influence I_k against the hop k, one curve per model·norm and
  depth; then the table of the influence-weighted receptive field R against depth.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from gdepth import report
from gdepth.diagnostics.oversmoothing import MEASURES
from gdepth.sweep import collect, records


def _label(record: dict[str, Any]) -> str:
    config = record["config"]
    return f"{config['model']['name']}·{config['norm']['name']} L={config['depth']}"


def _curves(found: list[dict[str, Any]], kind: str, pick) -> dict[str, np.ndarray]:
    """Mean curve over seeds per cell label (cells without that diagnostics are skipped)."""
    curves: dict[str, list[list[float]]] = defaultdict(list)
    for record in sorted(found, key=lambda r: (_label(r).split(" L=")[0], r["config"]["depth"])):
        diag = record.get("diagnostics") or {}
        if diag.get("kind") != kind:
            continue
        for seed in diag.get("seeds", []):
            values = pick(seed)
            if values:
                curves[_label(record)].append(values)
    return {k: np.nanmean(np.array(v, dtype=float), axis=0) for k, v in curves.items()}


def _figure(curves: dict[str, np.ndarray], xlabel: str, ylabel: str, log: bool, path: Path
            ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.4))
    # one colour map and line style per model·norm, shades by depth: more than ten curves stay
    # distinguishable (matplotlib's default cycle repeats after ten)
    groups = list(dict.fromkeys(label.split(" L=")[0] for label in curves))
    maps = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys")
    styles = ("-", "--", "-.", ":")
    for g, group in enumerate(groups):
        members = [label for label in curves if label.split(" L=")[0] == group]
        cmap = plt.get_cmap(maps[g % len(maps)])
        for i, label in enumerate(members):
            shade = 0.45 + 0.5 * (i / max(len(members) - 1, 1))
            values = curves[label]
            ax.plot(np.arange(len(values)), values, label=label, linewidth=1.3,
                    color=cmap(shade), linestyle=styles[g % len(styles)])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if len(curves) <= 16:
        ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gdepth plot")
    parser.add_argument("kind", choices=("smoothing", "influence"))
    parser.add_argument("dir")
    parser.add_argument("--measure", default="dirichlet", choices=MEASURES,
                        help="smoothing: the measure to plot (default: dirichlet)")
    parser.add_argument("--at", default="selected", choices=("selected", "init"),
                        help="smoothing: the selected epoch's model or the initialization")
    ns = parser.parse_args(argv)
    folder = Path(ns.dir)
    found = collect.load(folder) if folder.is_dir() else []
    if not found:
        print(f"gdepth: error: no gdepth records below '{folder}'", file=sys.stderr)
        return 2
    if ns.kind == "smoothing":
        curves = _curves(found, "smoothing", lambda s: (s.get(ns.at) or {}).get(ns.measure))
        path, metric = folder / f"smoothing_{ns.measure}_{ns.at}.png", f"{ns.measure}_last"
        xlabel, ylabel, log = "layer (0 = input features, last = logits)", ns.measure, True
    else:
        curves = _curves(found, "influence", lambda s: s.get("influence"))
        path, metric = folder / "influence.png", "receptive_field"
        xlabel, ylabel, log = "hop k", "influence I_k / I_0", True
    if not curves:
        print(f"gdepth: error: no record below '{folder}' has diagnostics={ns.kind}; run the "
              f"sweep with diagnostics={ns.kind}", file=sys.stderr)
        return 2
    _figure(curves, xlabel, ylabel, log, path)
    frame = records.to_frame(found)
    if ns.kind == "smoothing" and ns.at == "init":
        print(f"{ns.measure} at initialization, per layer: see {path}")
    else:
        print(report.render(report.build_table(frame, metric), "md"))
    print(f"\nfigure: {path}", file=sys.stderr)
    return 0
