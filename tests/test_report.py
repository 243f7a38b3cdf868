"""Records → tidy frame → accuracy-vs-depth table: numbers, layout, marks, failed cells."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from gdepth import report
from gdepth.sweep import collect, records


def _record(model, norm, depth, accs, status="ok", lr=0.01, key=None):
    config = {"dataset": {"name": "csbm"}, "model": {"name": model}, "norm": {"name": norm},
              "train": {"lr": lr}, "depth": depth, "seeds": max(len(accs), 2), "name": "x",
              "out_dir": "outputs", "device": "cpu"}
    seeds = [{"seed": i, "status": "ok", "train_acc": 1.0, "val_acc": a, "test_acc": a,
              "selected_epoch": 3, "epoch_s": 0.1} for i, a in enumerate(accs)]
    return {"schema": records.SCHEMA_VERSION, "key": key or records.cell_key(config),
            "status": status, "config": config,
            "error": "boom" if status == "failed" else None,
            "seeds": [] if status == "failed" else seeds,
            "finished_at": "2026-01-01T00:00:00"}


def _write(tmp_path, recs):
    for rec in recs:
        records.write(records.record_path(tmp_path, rec["key"]), rec)


def test_atomic_write_leaves_no_temp_file_and_roundtrips(tmp_path):
    rec = _record("gcn", "none", 2, [0.5, 0.7])
    path = records.record_path(tmp_path, rec["key"])
    records.write(path, rec)
    assert records.read(path) == json.loads(json.dumps(rec))
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_key_ignores_where_and_how_but_not_what():
    base = _record("gcn", "none", 2, [0.5])["config"]
    moved = {**base, "name": "other", "out_dir": "/elsewhere", "device": "cuda"}
    deeper = {**base, "depth": 4}
    assert records.cell_key(base) == records.cell_key(moved)
    assert records.cell_key(base) != records.cell_key(deeper)


def test_corrupt_record_is_ignored(tmp_path):
    _write(tmp_path, [_record("gcn", "none", 2, [0.5])])
    (tmp_path / "records" / "bad.json").write_text('{"key": "x", "stat')
    assert len(collect.load(tmp_path)) == 1


def test_table_numbers_rows_columns_and_best_mark(tmp_path):
    accs = {("gcn", 2): [0.80, 0.82, 0.78], ("gcn", 8): [0.40, 0.50, 0.45],
            ("gcn_res", 2): [0.81, 0.79, 0.80], ("gcn_res", 8): [0.70, 0.72, 0.74]}
    _write(tmp_path, [_record(m, "none", d, a) for (m, d), a in accs.items()])
    table, md = report.write_report(tmp_path)
    assert list(table.columns) == ["L=2", "L=8"]
    assert list(report.with_collapse(table).columns) == ["collapse δ=2", "L=2", "L=8"]
    assert table.index.name == "model·norm [mean ± std (ddof=0) (n)]"
    assert list(table.index) == ["gcn·none", "gcn_res·none"]
    for (model, depth), values in accs.items():
        mean, std = 100 * np.mean(values), 100 * np.std(values)
        assert table.loc[f"{model}·none", f"L={depth}"] == f"{mean:.1f} ± {std:.1f} (3)"
    assert "**80.0 ± 1.6 (3)**" in md  # gcn L=2 is the best at depth 2
    assert "**72.0 ± 1.6 (3)**" in md
    for name in ("results.csv", "table.md", "table.csv", "table.tex", "accuracy_vs_depth.png"):
        assert (tmp_path / name).stat().st_size > 0
    tidy = (tmp_path / "results.csv").read_text().splitlines()
    assert len(tidy) == 1 + 12  # one row per seed per cell
    assert "\\textbf{80.0 $\\pm$ 1.6 (3)}" in (tmp_path / "table.tex").read_text()


def test_varying_keys_become_row_keys_and_failed_cells_are_shown(tmp_path):
    _write(tmp_path, [
        _record("gcn", "pairnorm", 2, [0.6, 0.7], lr=0.01),
        _record("gcn", "pairnorm", 2, [0.5, 0.5], lr=0.1),
        _record("gcn", "pairnorm", 4, [], status="failed", lr=0.1),
    ])
    table, _ = report.write_report(tmp_path)
    assert table.index.name == "model·norm · train.lr [mean ± std (ddof=0) (n)]"
    assert list(table.index) == ["gcn·pairnorm lr=0.01", "gcn·pairnorm lr=0.1"]
    assert table.loc["gcn·pairnorm lr=0.1", "L=4"] == "failed"
    assert table.loc["gcn·pairnorm lr=0.01", "L=4"] == "–"  # not run: shown, not dropped


def test_unknown_metric_and_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no gdepth records"):
        report.write_report(tmp_path)
    _write(tmp_path, [_record("gcn", "none", 2, [0.5])])
    with pytest.raises(ValueError, match="valid: train_acc, val_acc, test_acc"):
        report.write_report(tmp_path, "f1")


def test_summary_uses_population_std_and_skips_diverged_seeds():
    seeds = [{"status": "ok", "test_acc": v, "train_acc": v, "val_acc": v, "selected_epoch": 1,
              "epoch_s": 1.0} for v in (0.2, 0.4)]
    seeds.append({**seeds[0], "status": "diverged", "test_acc": math.nan})
    summary = records.summarize(seeds)["test_acc"]
    assert summary["n"] == 2
    assert summary["mean"] == pytest.approx(0.3)
    assert summary["std"] == pytest.approx(0.1)


def test_a_single_row_marks_no_best(tmp_path):
    _write(tmp_path, [_record("gcn", "none", 2, [0.5, 0.6]), _record("gcn", "none", 4, [0.4])])
    _, md = report.write_report(tmp_path)
    assert "**" not in md and "55.0 ± 5.0 (2)" in md


def _first_below(means: dict[int, float], delta: float, base: float | None) -> str:
    """The collapse depth by hand: the first depth under best − δ, or at the baseline."""
    best = max(means.values())
    for depth in sorted(means):
        if means[depth] < best - delta or (base is not None and means[depth] <= base):
            return f"L={depth}"
    return f"none (holds to L={max(means)})"


def test_collapse_column_equals_the_hand_computed_depth_and_interval(tmp_path):
    accs = {  # seeds agree: each interval is a point
        "gcn": {2: [0.83, 0.84, 0.82], 4: [0.82, 0.83, 0.81], 8: [0.50, 0.52, 0.48]},
        # within 2 points of its own best everywhere, but at 4 it falls to the mlp's best
        "gcn_res": {2: [0.82, 0.82, 0.82], 4: [0.80, 0.80, 0.80], 8: [0.81, 0.81, 0.81]},
        "mlp": {2: [0.805, 0.805, 0.805], 4: [0.80, 0.80, 0.80], 8: [0.795, 0.795, 0.795]},
        # seed 2 alone collapses at 4: resamples with it collapse at 4 (70 %), others never
        "gcnii": {2: [0.85, 0.85, 0.85], 4: [0.85, 0.85, 0.75], 8: [0.85, 0.85, 0.75]},
    }
    _write(tmp_path, [_record(m, "none", d, a) for m, by in accs.items() for d, a in by.items()])
    table, md = report.write_report(tmp_path)
    means = {m: {d: 100 * np.mean(a) for d, a in by.items()} for m, by in accs.items()}
    base = max(means["mlp"].values())  # 80.5
    expected = {
        "gcn·none": _first_below(means["gcn"], 2, base) + " [8, 8]",
        "gcn_res·none": _first_below(means["gcn_res"], 2, base) + " [4, 4]",
        "mlp·none": _first_below(means["mlp"], 2, None) + " [none, none]",
        "gcnii·none": _first_below(means["gcnii"], 2, base) + " [4, none]",
    }
    assert expected["gcn_res·none"].startswith("L=4")  # the mlp baseline decides it
    assert _first_below(means["gcn_res"], 2, None).startswith("none")
    assert expected["gcn·none"].startswith("L=8") and expected["gcnii·none"].startswith("L=4")
    assert report.with_collapse(table)["collapse δ=2"].to_dict() == expected
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    assert header == ["model·norm [mean ± std (ddof=0) (n)]", "collapse δ=2", "L=2", "L=4",
                      "L=8"]
    for line in md.splitlines()[2:]:  # the Markdown file shows the same texts
        label, shown = [c.strip() for c in line.strip("|").split("|")][:2]
        assert shown == expected[label]
    assert "L=4 [4, none]" in (tmp_path / "table.csv").read_text()
    tex = (tmp_path / "table.tex").read_text()
    assert "collapse $\\delta$=2" in tex and "L=8 [8, 8]" in tex
    # a δ of 40: gcn's 50 at L=8 is within 40 of its best 83, but under the mlp's 80.5
    table, _ = report.write_report(tmp_path, delta=40)
    assert _first_below(means["gcn"], 40, None).startswith("none")
    shown = report.with_collapse(table)
    assert shown.loc["gcn·none", "collapse δ=40"] == _first_below(means["gcn"], 40, base) + \
        " [8, 8]" == "L=8 [8, 8]"
    assert shown.loc["mlp·none", "collapse δ=40"] == "none (holds to L=8) [none, none]"


def test_ddof_is_selectable_and_stated_in_every_output(tmp_path):
    accs = {2: [0.80, 0.82, 0.78], 4: [0.40, 0.50, 0.45], 8: [0.6]}
    recs = [_record("gcn", "none", d, a) for d, a in accs.items()]
    recs[2]["config"]["seeds"] = 3  # a cell with one seed of three ok (same row)
    recs[2]["key"] = records.cell_key(recs[2]["config"])
    _write(tmp_path, recs)
    for ddof in (0, 1):
        table, md = report.write_report(tmp_path, ddof=ddof)
        for depth in (2, 4):
            mean, std = 100 * np.mean(accs[depth]), 100 * np.std(accs[depth], ddof=ddof)
            assert table.loc["gcn·none", f"L={depth}"] == f"{mean:.1f} ± {std:.1f} (3)"
        # one seed: no sample std
        assert table.loc["gcn·none", "L=8"] == ("60.0 ± 0.0 (1)" if ddof == 0 else
                                                "60.0 ± – (1)")
        stated = f"mean ± std (ddof={ddof}) (n)"
        assert stated in md.splitlines()[0]
        assert (tmp_path / "table.csv").read_text().startswith(
            f"model·norm [{stated}],collapse δ=2,L=2")
        assert f"(ddof={ddof})" in (tmp_path / "table.tex").read_text()
    assert "82.0 ± 2.0 (3)" not in md and "80.0 ± 2.0 (3)" in md  # ddof=1: std of 78/80/82
    with pytest.raises(ValueError, match="ddof 2; valid: 0"):
        report.write_report(tmp_path, ddof=2)


def test_a_varying_dataset_labels_rows_by_its_name():
    frame = pd.DataFrame([
        {"model.name": "gcn", "norm.name": "none", "dataset.name": ds, "depth": d, "seed": 0,
         "test_acc": 0.5, "status": "ok", "seed_status": "ok"}
        for ds in ("grid2d", "ring") for d in (2, 4)])
    table = report.build_table(frame)
    assert table.index.name == "model·norm · dataset [mean ± std (ddof=0) (n)]"
    assert list(table.index) == ["gcn·none grid2d", "gcn·none ring"]


def test_sweep_summary_tells_cells_finished_by_an_earlier_launchs_job(tmp_path, monkeypatch,
                                                                       capsys):
    import datetime as dt

    from gdepth.sweep import callbacks, progress, sweeper

    start = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    old, mine, orphan = (_record("gcn", "none", d, [0.5]) for d in (2, 4, 8))
    old["finished_at"] = "2026-01-01T00:00:00+00:00"  # before this sweep: skipped
    mine["finished_at"] = orphan["finished_at"] = "2026-01-03T00:00:00+00:00"
    _write(tmp_path, [old, mine, orphan])
    monkeypatch.setenv(progress.START_ENV, str(start.timestamp()))
    monkeypatch.setattr(sweeper, "LAST", {"launched": {mine["key"]}})
    callbacks.finish(tmp_path)
    err = capsys.readouterr().err
    assert ("3 cells (3 ok; 2 run now (1 by a job of an earlier launch), 1 skipped as already "
            "done)") in err
    monkeypatch.setattr(sweeper, "LAST", {"launched": {mine["key"], orphan["key"]}})
    callbacks.finish(tmp_path)
    assert "3 cells (3 ok; 2 run now, 1 skipped as already done);" in capsys.readouterr().err


def test_a_key_that_moves_with_the_depth_makes_no_rows():
    """transfer_range's r (depth = r) and the tree task's r (depth = r + 1) would give each depth
    a row of its own; a key that varies independently of the depth still makes rows."""
    import pandas as pd

    from gdepth import frames

    frame = pd.DataFrame({"model.name": ["gcn"] * 4, "norm.name": ["none"] * 4,
                          "depth": [3, 4, 3, 4], "dataset.task_range": [3, 4, 3, 4],
                          "model.fully_adjacent_last": [False, False, True, True],
                          "dataset.depth_r": [2, 3, 2, 3]})
    assert frames.row_keys(frame) == ["model.name", "norm.name", "model.fully_adjacent_last"]
    frame["dataset.task_range"] = [3, 3, 4, 4]  # now crossed with the depth: rows again
    assert "dataset.task_range" in frames.row_keys(frame)
