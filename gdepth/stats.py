"""Statistics between depth curves: which differences are real, and where a curve collapses.

A depth table row is a curve: at each depth, one value per seed (seed i also draws split i,
so two rows' seed-i values share a split and are *paired*). For two rows A and B:

- per depth, the paired differences ``d_i = A_i - B_i`` over the seeds both rows have;
- a two-sided paired t-test on ``d`` (``scipy.stats.ttest_rel``; Student, 1908), one p-value
  per depth, then Holm's step-down correction over the depths compared (Holm, 1979,
  "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6:65-70):
  with the m p-values sorted ascending, ``p'_(k) = max_{j <= k} min(1, (m - j + 1) p_(j))``;
- a percentile bootstrap 95 % interval of the mean difference (Efron & Tibshirani, 1993),
  resampling seeds with replacement (``scipy.stats.bootstrap``), seeded.

The **collapse depth** of a row is the first depth, from the depth of its best mean on,
whose mean falls more than ``delta`` points below that best, or to the graph-free baseline (the
``mlp`` row's best mean on the same data), if one is given; depths before the best are rising,
not collapsing. Its interval resamples the seeds jointly
across depths (seed i of every depth shares split i) and takes the 2.5 / 97.5 % quantiles of
the collapse depth over the resamples; a resample that never collapses counts as "beyond the
deepest depth".

Holm's correction is written here (six lines) because neither scipy nor pandas has it and
statsmodels is not a dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from gdepth import frames
from gdepth.sweep import records

BEYOND = math.inf  # a curve that does not collapse within the depths measured


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order (NaN stays NaN and is not counted)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m, running, out = len(order), 0.0, [math.nan] * len(pvalues)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def curves(frame: pd.DataFrame, metric: str = "test_acc") -> dict[str, pd.DataFrame]:
    """Each table row (labelled as ``gdepth table`` labels it) as a depth × seed frame of
    ``metric`` (percent for accuracies), from done cells' ok seeds only."""
    keys = frames.row_keys(frame)
    ok = frame[frame["status"].isin(records.DONE) & (frame["seed_status"] == "ok")]
    scale = 100.0 if frames.is_accuracy(metric) else 1.0
    out = {}
    for values, group in ok.groupby(keys, sort=True, dropna=False):
        label = frames.label(keys, values if isinstance(values, tuple) else (values,))
        wide = group.pivot_table(index="depth", columns="seed", values=metric, aggfunc="first")
        out[label] = wide.sort_index() * scale
    return out


@dataclass
class Paired:
    """One depth of a comparison: A − B over the seeds both have."""

    depth: int
    n: int
    mean_a: float
    mean_b: float
    diff: float
    low: float  # bootstrap 95 % interval of the mean difference
    high: float
    p: float  # paired t-test, two-sided
    p_holm: float = math.nan


def _interval(diffs: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    if len(diffs) < 2 or np.all(diffs == diffs[0]):
        return float(diffs.mean()), float(diffs.mean())  # no spread: a point
    res = sps.bootstrap((diffs,), np.mean, confidence_level=0.95, n_resamples=resamples,
                        method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(a: pd.DataFrame, b: pd.DataFrame, resamples: int = 10_000, seed: int = 0
            ) -> list[Paired]:
    """Per-depth paired comparison of two curves (:func:`curves`), Holm over the depths."""
    out = []
    for depth in sorted(set(a.index) & set(b.index)):
        both = pd.concat([a.loc[depth], b.loc[depth]], axis=1, keys=["a", "b"]).dropna()
        diffs = (both["a"] - both["b"]).to_numpy(dtype=float)
        if len(diffs) == 0:
            continue
        p = math.nan
        if len(diffs) >= 2 and np.ptp(diffs) > 0:
            p = float(sps.ttest_rel(both["a"], both["b"]).pvalue)
        elif len(diffs) >= 2:
            p = 1.0 if diffs[0] == 0 else 0.0  # identical nonzero differences: no variance
        low, high = _interval(diffs, resamples, seed)
        out.append(Paired(int(depth), len(diffs), float(both["a"].mean()),
                          float(both["b"].mean()), float(diffs.mean()), low, high, p))
    for row, adjusted in zip(out, holm([r.p for r in out]), strict=True):
        row.p_holm = adjusted
    return out


def collapse_depth(curve: pd.DataFrame, delta: float = 2.0, baseline: float | None = None
                   ) -> float:
    """The first depth from the best one on whose mean is more than ``delta`` below the best
    mean, or at or below ``baseline``; :data:`BEYOND` if none is. Depths shallower than the
    best are not a collapse (a curve that rises first has not yet peaked)."""
    means = curve.mean(axis=1, skipna=True).dropna()
    if means.empty:
        return math.nan
    floor = means.max() - delta
    for depth, mean in means.loc[means.idxmax():].items():
        if mean < floor or (baseline is not None and mean <= baseline):
            return float(depth)
    return BEYOND


def _collapse_depths(curve: pd.DataFrame, picks: np.ndarray, delta: float,
                     baseline: float | None) -> np.ndarray:
    """:func:`collapse_depth` of each resample at once (``picks``: resamples × seed columns),
    in numpy: a table of many rows computes thousands of them."""
    values = curve.to_numpy(dtype=float)[:, picks]  # depth × resample × seed
    counts = (~np.isnan(values)).sum(axis=2)
    means = np.where(counts > 0, np.nansum(values, axis=2) / np.maximum(counts, 1), np.nan)
    has = counts > 0
    scored = np.where(has, means, -np.inf)
    best = scored.max(axis=0)  # per resample
    beyond = np.arange(len(means))[:, None] >= scored.argmax(axis=0)[None, :]  # from the best
    low = (means < best - delta) & has & beyond
    if baseline is not None:
        low |= (means <= baseline) & has & beyond
    depths = curve.index.to_numpy(dtype=float)
    first = np.where(low.any(axis=0), depths[low.argmax(axis=0)], BEYOND)
    return np.where(has.any(axis=0), first, math.nan)


@dataclass
class Collapse:
    depth: float  # BEYOND when the curve holds up to its deepest depth
    low: float
    high: float


def collapse(curve: pd.DataFrame, delta: float = 2.0, baseline: float | None = None,
             resamples: int = 2000, seed: int = 0) -> Collapse:
    """:func:`collapse_depth` with a bootstrap 95 % interval (seeds resampled jointly)."""
    point = collapse_depth(curve, delta, baseline)
    seeds = list(curve.columns)
    if len(seeds) < 2:
        return Collapse(point, point, point)
    rng = np.random.default_rng(seed)
    picks = np.array([rng.choice(len(seeds), size=len(seeds)) for _ in range(resamples)])
    draws = _collapse_depths(curve, picks, delta, baseline)
    low, high = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")
    return Collapse(point, float(low), float(high))


def depth_text(depth: float) -> str:
    return "none" if depth == BEYOND else "–" if math.isnan(depth) else f"L={int(depth)}"


def collapse_text(c: Collapse, deepest: int) -> str:
    """``L=16 [8, 32]``, or ``none (holds to L=64) [32, none]``."""
    def one(d: float) -> str:
        return "none" if d == BEYOND else str(int(d))
    head = depth_text(c.depth) if c.depth != BEYOND else f"none (holds to L={deepest})"
    return f"{head} [{one(c.low)}, {one(c.high)}]"


def comparison_frame(rows: list[Paired], alpha: float = 0.05) -> pd.DataFrame:
    """The per-depth comparison as a table (differences in the metric's units)."""
    return pd.DataFrame({
        "depth": [r.depth for r in rows], "n": [r.n for r in rows],
        "A": [round(r.mean_a, 2) for r in rows], "B": [round(r.mean_b, 2) for r in rows],
        "A − B": [round(r.diff, 2) for r in rows],
        "95% CI": [f"[{r.low:.2f}, {r.high:.2f}]" for r in rows],
        "p": [f"{r.p:.3g}" for r in rows], "p (Holm)": [f"{r.p_holm:.3g}" for r in rows],
        "differs": ["yes" if r.p_holm < alpha else "no" for r in rows],
    })


def baseline_of(label: str, all_curves: dict[str, pd.DataFrame]) -> float | None:
    """The graph-free baseline of a row: the best mean of the ``mlp·none`` row with the same
    other keys (dataset, …), or None if the folder has none."""
    head, _, rest = label.partition(" ")
    if head.startswith("mlp·"):
        return None
    twin = " ".join(["mlp·none", rest]).strip()
    curve = all_curves.get(twin)
    return None if curve is None else float(curve.mean(axis=1).max())


def main(args: list[str]) -> int:
    """``gdepth compare DIR A B``: per-depth paired differences of two table rows."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="gdepth compare")
    parser.add_argument("dir")
    parser.add_argument("a", help="a row label as `gdepth table DIR` prints it")
    parser.add_argument("b")
    parser.add_argument("--metric", default="test_acc")
    parser.add_argument("--delta", type=float, default=2.0,
                        help="collapse: points below the row's best mean (default 2)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    ns = parser.parse_args(args)

    def fail(message: str) -> int:
        print(f"gdepth: error: {message}", file=sys.stderr)
        return 2

    from pathlib import Path

    if not Path(ns.dir).is_dir():
        return fail(f"no such folder '{ns.dir}'")
    found, searched = frames.table_records(ns.dir)  # as `gdepth table` sees the folder
    if not found:
        return fail(f"no gdepth records below '{ns.dir}'")
    frame = frames.table_frame(found, searched)
    try:
        frames.check_metric(frame, ns.metric)
    except ValueError as err:
        return fail(str(err))
    rows = curves(frame, ns.metric)
    for label in (ns.a, ns.b):
        if label not in rows:
            return fail(f"no row '{label}' in {ns.dir}; valid: {', '.join(rows)}")
    if ns.resamples < 100 or not 0 < ns.alpha < 1 or ns.delta < 0:
        return fail(f"--resamples {ns.resamples} (>= 100), --alpha {ns.alpha} (0..1), "
                    f"--delta {ns.delta} (>= 0): one is out of range")
    paired = compare(rows[ns.a], rows[ns.b], ns.resamples, ns.seed)
    if not paired:
        return fail(f"rows '{ns.a}' and '{ns.b}' share no depth with a seed in common")
    unit = "points" if frames.is_accuracy(ns.metric) else "units"
    print(f"A = {ns.a}, B = {ns.b}; {ns.metric}, A − B per depth over the seeds both have "
          f"(seed i = split i): paired t-test, Holm over {len(paired)} depths, bootstrap 95 % "
          f"interval ({ns.resamples} resamples, seed {ns.seed}); differs: Holm p < {ns.alpha}\n")
    print(comparison_frame(paired, ns.alpha).to_markdown(index=False))
    print(f"\ncollapse depth (first depth > {ns.delta:g} {unit} below the row's best mean, or "
          "at the mlp baseline; bootstrap 95 % interval):")
    for label in (ns.a, ns.b):
        base = baseline_of(label, rows)
        result = collapse(rows[label], ns.delta, base, seed=ns.seed)
        extra = f", mlp baseline {base:.1f}" if base is not None else ""
        deepest = int(max(rows[label].index))  # the row's own, as the table says
        print(f"  {label}: {collapse_text(result, deepest)}{extra}")
    return 0
