"""``gdepth report DIR [DIR…] [-o FILE]``: the HTML report of sweep folders (:mod:`.html`).

The tables and the static PNG of a folder are ``gdepth table DIR``'s (also written at the end
of every sweep); this command writes only the HTML file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

USAGE = "gdepth report DIR [DIR ...] [-o FILE] [--metric M] [--ddof 0|1] [--delta 2] " \
    "[--no-structure]"


def _fail(message: str, code: int = 2) -> int:
    print(f"gdepth report: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str]) -> int:
    """Run ``gdepth report``; returns the exit code (2: bad command line or folder)."""
    from gdepth.report.html import write_html

    parser = argparse.ArgumentParser(prog="gdepth report", usage=USAGE, description=(
        "One self-contained HTML file (Plotly inlined, opens offline): accuracy against depth "
        "with interval bands and collapse depths, the table, per-layer smoothing, influence "
        "per hop, the datasets' structure, published vs ours; hover or click a point for its "
        "cell's config, engine, time and memory."))
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep folders (records below)")
    parser.add_argument("-o", "--output", default=None,
                        help="the HTML file (default: DIR/report.html for one folder, "
                             "./report.html for several)")
    parser.add_argument("--metric", default="test_acc",
                        help="the curve's metric: test_acc (default), val_acc, train_acc or "
                             "any per-seed number of the records")
    parser.add_argument("--ddof", type=int, default=0, choices=(0, 1),
                        help="the std's delta degrees of freedom (0: population, default)")
    parser.add_argument("--delta", type=float, default=2.0,
                        help="collapse: points below the row's best mean (default 2)")
    parser.add_argument("--no-structure", action="store_true",
                        help="leave out the datasets' structure table (it loads each dataset)")
    ns = parser.parse_args(argv)
    for folder in ns.dirs:
        if not Path(folder).is_dir():
            return _fail(f"no such folder '{folder}'")
    if ns.delta < 0:
        return _fail(f"--delta {ns.delta}: must be >= 0")
    start = time.perf_counter()
    try:
        path = write_html(ns.dirs, ns.output, ns.metric, ns.ddof, ns.delta,
                          structure=not ns.no_structure)
    except (FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    size = path.stat().st_size / 2**20
    print(f"report of {len(ns.dirs)} folder(s): {path} ({size:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s; opens offline)", file=sys.stderr)
    print(path)
    return 0
