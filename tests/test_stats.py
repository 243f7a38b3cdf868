"""Curve statistics (gdepth/stats.py) against hand-computed values and constructed curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gdepth import stats


def curve(means_by_depth: dict[int, list[float]]) -> pd.DataFrame:
    """A depth × seed frame, as :func:`stats.curves` returns."""
    return pd.DataFrame(means_by_depth).T.rename_axis("depth")


def test_holm_matches_the_hand_computed_step_down():
    # sorted: .005 (x4), .01 (x3), .03 (x2), .04 (x1, but never below the step before)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.01, math.nan, 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_paired_difference_p_value_and_interval_by_hand():
    a = curve({2: [80, 82, 81, 83], 4: [70, 70, 71, 69]})
    b = curve({2: [78, 81, 80, 80], 4: [70, 71, 70, 69]})
    rows = stats.compare(a, b, resamples=5000, seed=1)
    first = rows[0]
    d = np.array([2.0, 1.0, 1.0, 3.0])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * sps.t.sf(abs(t), df=len(d) - 1)  # Student's t, from its definition
    assert (first.depth, first.n, first.diff) == (2, 4, pytest.approx(1.75))
    assert first.p == pytest.approx(p, rel=1e-9)
    assert d.min() <= first.low <= 1.75 <= first.high <= d.max()
    second = rows[1]  # differences 0, -1, 1, 0: no effect
    assert second.diff == pytest.approx(0.0) and second.p == pytest.approx(1.0)
    assert [r.p_holm for r in rows] == pytest.approx(stats.holm([first.p, second.p]))
    again = stats.compare(a, b, resamples=5000, seed=1)
    assert (again[0].low, again[0].high) == (first.low, first.high)  # seeded


def test_only_seeds_both_rows_have_are_paired():
    a = curve({2: [80.0, 82.0, 81.0]})
    b = pd.DataFrame({0: [78.0], 1: [80.0]}, index=pd.Index([2], name="depth"))
    (row,) = stats.compare(a, b, resamples=1000)
    assert row.n == 2 and row.diff == pytest.approx(2.0)  # (80-78 + 82-80) / 2


@pytest.mark.parametrize(
    ("means", "delta", "baseline", "expected"),
    [
        ({2: 80, 4: 81, 8: 79.5, 16: 78.9, 32: 60}, 2.0, None, 16),  # 78.9 < 81 - 2
        ({2: 80, 4: 81, 8: 79.5, 16: 78.9, 32: 60}, 2.0, 79.6, 8),  # at the mlp baseline
        ({2: 80, 4: 81, 8: 79.5, 16: 78.9, 32: 60}, 25.0, None, math.inf),  # holds
        ({2: 50, 4: 70, 8: 71}, 2.0, None, math.inf),  # rising to its best: no collapse
        ({2: 50, 4: 75, 8: 72, 16: 60}, 2.0, None, 8),  # from the best on only
    ],
)
def test_collapse_depth_on_constructed_curves(means, delta, baseline, expected):
    c = curve({d: [m - 0.5, m + 0.5] for d, m in means.items()})
    assert stats.collapse_depth(c, delta, baseline) == expected


def test_collapse_interval_is_a_point_when_every_seed_agrees_and_wide_when_not():
    clear = curve({2: [80, 80.2, 79.8], 4: [80, 80.1, 79.9], 8: [40, 41, 39]})
    result = stats.collapse(clear, resamples=500)
    assert (result.depth, result.low, result.high) == (8, 8, 8)
    # one seed collapses at 4, the others hold: resamples disagree
    mixed = curve({2: [80, 80, 80], 4: [80, 80, 70], 8: [80, 80, 70]})
    found = stats.collapse(mixed, resamples=2000, seed=3)
    assert found.depth == 4 and found.low == 4 and found.high == math.inf
    assert stats.collapse_text(found, 8) == "L=4 [4, none]"


def test_vectorized_resamples_equal_collapse_depth_one_by_one():
    """collapse()'s numpy path gives, per resample, what collapse_depth gives on that resample
    (missing seeds and an all-missing depth included)."""
    rng = np.random.default_rng(7)
    values = rng.normal(75, 4, size=(5, 4))
    values[rng.random(values.shape) < 0.25] = np.nan
    values[2] = np.nan
    c = pd.DataFrame(values, index=pd.Index([2, 4, 8, 16, 32], name="depth"), columns=[3, 5, 6, 9])
    picks = rng.integers(0, 4, size=(300, 4))
    for baseline in (None, 72.0):
        fast = stats._collapse_depths(c, picks, 2.0, baseline)
        slow = [stats.collapse_depth(c.iloc[:, list(p)], 2.0, baseline) for p in picks]
        np.testing.assert_array_equal(fast, np.array(slow, dtype=float))
