"""``gdepth reproduce``: the published tables as shipped, experiment expansion, verdicts, and one
real (tiny) reproduction in a subprocess."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from gdepth.reproduce import cells, compare, experiment, published
from gdepth.sweep import collect, records, status

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "tables"
# shipped table -> the reference file it copies
COPIES = {"dropedge2020_semi": "dropedge2020_semi.csv",
          "dropedge2020_full": "dropedge2020_full.csv",
          "alon2021_treematch": "alon2021_treematch_train.csv"}
# shipped table -> every number in it, transcribed here from the official repository's README
# (no reference copy exists): chennnM/GCNII README.md "Results" (commit ca91f568), semi rows;
# VITA-Group/Deep_GCN_Benchmarking README.md "Main Results and Leaderboard" (commit 7aaf7564)
FROM_REPOSITORIES = {
    "gcnii2020": {("cora", "GCNII", "64"): 85.5, ("citeseer", "GCNII", "32"): 73.4,
                  ("pubmed", "GCNII", "16"): 80.3},
    "bot2021": {(d, m, "32"): v for d, ranking in {
        "cora": {"Ours": 85.48, "GCNII": 85.29, "APPNP": 83.68, "DAGNN": 83.39,
                 "GPRGNN": 83.13, "JKNet": 73.23, "SGC": 68.45},
        "citeseer": {"Ours": 73.35, "GCNII": 73.24, "DAGNN": 72.59, "APPNP": 72.13,
                     "GPRGNN": 71.01, "SGC": 61.92, "JKNet": 50.68},
        "pubmed": {"Ours": 80.76, "DAGNN": 80.58, "APPNP": 80.24, "GCNII": 79.91,
                   "GPRGNN": 78.46, "SGC": 66.61, "JKNet": 63.77},
        "ogbn_arxiv": {"Ours": 72.70, "GCNII": 72.60, "DAGNN": 71.46, "GPRGNN": 70.18,
                       "APPNP": 66.94, "JKNet": 66.31, "SGC": 34.22}}.items()
                for m, v in ranking.items()},
}


@pytest.fixture(scope="module")
def reference() -> Path:
    """``<repo>/../shared/reference/tables``; skipped when absent, failed under ``CI``."""
    if not REFERENCE.is_dir():
        message = f"reference tables not found at <repo>/../shared/reference/tables ({REFERENCE})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return REFERENCE


@pytest.mark.parametrize("name", sorted(COPIES))
def test_shipped_tables_equal_the_reference_exactly(name, reference):
    shipped = (published.TABLES / f"{name}.csv").read_bytes()
    assert shipped == (reference / COPIES[name]).read_bytes()


@pytest.mark.parametrize("name", sorted(FROM_REPOSITORIES))
def test_tables_read_from_the_repositories_hold_their_numbers(name):
    table = published.load(name)
    assert list(table.rows.columns) == ["dataset", "model", "depth", "test_acc", "note"]
    got = {(r["dataset"], r["model"], r["depth"]): published.number(r["test_acc"])
           for r in table.rows.to_dict("records")}
    assert got == FROM_REPOSITORIES[name]
    commit = {"gcnii2020": "github.com/chennnM/GCNII README.md",
              "bot2021": "github.com/VITA-Group/Deep_GCN_Benchmarking README.md"}[name]
    assert commit in table.source


def test_every_shipped_table_is_used_by_an_experiment():
    assert sorted({*COPIES, *FROM_REPOSITORIES}) == published.names()
    tables = {experiment.load(n).published.get("table") for n in experiment.names()}
    assert set(published.names()) <= tables


def test_tables_parse_with_source_numbers_and_missing_values():
    semi = published.load("dropedge2020_semi")
    assert "github.com/DropEdge/DropEdge" in semi.source and "390cd712" in semi.source
    assert list(semi.rows.columns) == ["dataset", "backbone", "depth", "variant", "test_acc",
                                       "note"]
    assert len(semi.rows) == 126
    row = semi.rows[(semi.rows.backbone == "GCN") & (semi.rows.depth == "64")
                    & (semi.rows.dataset == "cora") & (semi.rows.variant == "dropedge")]
    assert published.number(row.test_acc.item()) == 49.5
    oom = semi.rows[semi.rows.note == "OOM"]
    assert len(oom) == 4 and all(published.number(v) is None for v in oom.test_acc)
    with pytest.raises(ValueError,
                       match="valid: alon2021_treematch, bot2021, dropedge2020_full"):
        published.load("nosuch")


def test_experiments_expand_into_per_backbone_subsweeps():
    exp = experiment.load("dropedge2020_semi", ["dataset=cora", "depth=2..8", "seeds=3",
                                                "train.epochs=5", "threads=1"])
    assert len(exp.subsweeps) == 8  # 4 backbones x 2 variants, Cora only
    gcn, jk = exp.subsweeps[0], exp.subsweeps[4]
    assert gcn.labels == {"backbone": "GCN", "variant": "original"} and gcn.depths == [2, 4, 8]
    assert "train.dropedge=0.0" in gcn.overrides
    assert jk.depths == [4, 8] and "train.lr=0.001" in jk.overrides
    assert exp.deviations == ["train.epochs=5 (the protocol fixes this key otherwise)",
                              "seeds=3 (protocol: 1)"]  # threads= is not a deviation
    args = experiment.sweep_args(exp, jk)
    assert args[-3:] == ["train.epochs=5", "threads=1", "name=reproduce_dropedge2020_semi"]


def test_an_entry_key_restricts_the_experiment_and_its_published_rows():
    """model.conv=gcn dataset.depth_r=2,3 keep the GCN entries at r = 2, 3 (not appended as a
    deviation to every entry), and only their published rows stay in scope."""
    from gdepth.reproduce import compare

    exp = experiment.load("alon2021_treematch", ["model.conv=gcn", "dataset.depth_r=2,3"])
    assert [(s.overrides[-1], s.depths) for s in exp.subsweeps] == [
        ("model.conv=gcn", [3]), ("model.conv=gcn", [4])]
    assert all("dataset.depth_r=2" in s.overrides or "dataset.depth_r=3" in s.overrides
               for s in exp.subsweeps)
    assert exp.deviations == [] and exp.extra == []
    keep = {(r["model"], r["r"]) for r in published.load("alon2021_treematch").rows
            .astype(str).to_dict("records") if compare._in_scope(r, exp)}
    assert keep == {("gcn", "2"), ("gcn", "3")}


def test_a_model_restriction_keeps_only_that_backbones_published_rows():
    """model=gcn keeps DropEdge's GCN entries, so the ResGCN / JKNet / IncepGCN rows are out of
    scope (not listed as `not run`)."""
    from gdepth.reproduce import compare

    exp = experiment.load("dropedge2020_semi", ["dataset=cora", "model=gcn", "depth=2,4,8"])
    assert {s.labels["backbone"] for s in exp.subsweeps} == {"GCN"}
    keep = {(r["backbone"], r["depth"], r["variant"]) for r in
            published.load("dropedge2020_semi").rows.astype(str).to_dict("records")
            if compare._in_scope(r, exp)}
    assert keep == {("GCN", d, v) for d in ("2", "4", "8") for v in ("original", "dropedge")}


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "unknown experiment 'nosuch'; valid: alon2021_treematch"),
    (["alon2021_treematch", "model.conv=sage"],
     "alon2021_treematch has no model.conv 'sage'; valid: gat, gcn, ggnn, gin"),
    (["dropedge2020_semi", "dataset=texas"], "no dataset 'texas'; valid: citeseer, cora, pubmed"),
    (["dropedge2020_semi", "depth=3"], "runs none of depths [3]; valid: 2, 4, 8, 16, 32, 64"),
])
def test_bad_arguments_fail_in_one_line_naming_the_choices(args, message):
    with pytest.raises(ValueError) as err:
        experiment.load(args[0], args[1:])
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("pub, mean, std, expected", [
    (80.0, 81.4, 0.0, "match"), (80.0, 78.4, 0.0, "off"), (80.0, 76.0, 2.5, "match"),
    (80.0, 74.0, 2.5, "off"), (80.0, 81.6, 0.0, "above"), (80.0, 86.0, 2.5, "above"),
    (80.0, 85.0, 2.5, "match"), (None, 50.0, 1.0, "no published number")])
def test_verdict_is_two_std_or_one_and_a_half_points(pub, mean, std, expected):
    assert compare.verdict(pub, mean, std) == expected


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mirror, data_cache):
    """``gdepth reproduce dropedge2020_semi`` on Cora, GCN and ResGCN at depths 2 and 4, 1 seed,
    3 epochs: four sub-sweeps (two backbones, two variants), each a ``gdepth sweep`` process.
    JKNet and IncepGCN are the same code path (a sub-sweep per backbone and variant), so they
    are left out to halve the fixture's time; ``--dry-run`` tests plan them."""
    cwd = tmp_path_factory.mktemp("reproduce")
    env = dict(os.environ, GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
               OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1")
    args = ["reproduce", "dropedge2020_semi", "dataset=cora", "model=gcn,resgcn", "depth=2,4",
            "seeds=1",
            "train.epochs=3", "progress=false", "threads=1"]
    result = subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    return result, cwd / "outputs" / "sweeps" / "reproduce_dropedge2020_semi"


@pytest.mark.slow  # the tiny reproduction's fixture: ~45 s on 2 busy cores; CI runs it
def test_reproduce_compares_the_records_with_the_published_table(tiny):
    result, folder = tiny
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(folder / "comparison.csv", dtype={"depth": str})
    labels = sorted(zip(frame.backbone, frame.depth, frame.variant, strict=True))
    assert labels == sorted([(b, d, v) for b, d in [("GCN", "2"), ("GCN", "4"), ("ResGCN", "4")]
                             for v in ("original", "dropedge")])
    table = published.load("dropedge2020_semi").rows.set_index(
        ["dataset", "backbone", "depth", "variant"])
    found = {r["key"]: r for r in collect.load(folder)}
    for row in frame.itertuples():
        expected = float(table.loc[("cora", row.backbone, row.depth, row.variant), "test_acc"])
        assert row.published == expected
        stats = found[row.key]["summary"]["test_acc"]
        assert math.isclose(row.mean, 100 * stats["mean"]) and row.n == 1
        assert row.verdict == compare.verdict(expected, 100 * stats["mean"], 100 * stats["std"])
    for name in ("comparison.md", "comparison.png"):
        assert (folder / name).is_file()
    assert "| cora      | GCN        | 2       | original  | 81.1" in result.stdout
    assert "deviations from the paper's protocol: train.epochs=3" in result.stdout
    assert "6 rows (" in result.stderr
    seconds, count = status.recorded_compute(folder)  # from the records: --no-run keeps it
    assert count == 6 and seconds > 0
    spent = cells.rough_duration(seconds)
    assert (f"- compute in the sweep folder's records: {spent} over 6 records"
            in (folder / "comparison.md").read_text())
    assert "gdepth reproduce: wall time of this call: " in result.stderr


def test_reproduce_lists_and_dry_runs(cli_env, tmp_path):
    run = subprocess.run([*GDEPTH, "reproduce", "dropedge2020_semi", "dataset=cora", "depth=2",
                          "--dry-run"], env=cli_env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "backbone=GCN variant=original dataset=cora depth=2" in run.stdout
    assert "2 cells" in run.stderr and not (tmp_path / "outputs").exists()
    bad = subprocess.run([*GDEPTH, "reproduce", "nosuch"], env=cli_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "valid: alon2021_treematch" in bad.stderr


def test_gcnii_and_bot2021_plan_their_cells_with_each_models_settings():
    """gcnii2020: semi.sh's three lines x (GCNII, GCNII*); bot2021: the four baselines at 32
    layers, each with its options/configs/<model>.yml settings (train=bot2021's rows)."""
    gcnii = {(c.labels["dataset"], c.labels["model"], c.labels["depth"]): c.config
             for c in cells.plan(experiment.load("gcnii2020"))}
    assert sorted(gcnii) == sorted((d, m, str(L)) for d, L in
                                   [("cora", 64), ("citeseer", 32), ("pubmed", 16)]
                                   for m in ("GCNII", "GCNII*"))
    for (dataset, _, _), c in gcnii.items():
        setting = {"cora": (64, 0.5, 0.6, 0.01), "citeseer": (256, 0.6, 0.7, 0.01),
                   "pubmed": (256, 0.4, 0.5, 5e-4)}[dataset]
        assert (c["model"]["hidden"], c["model"]["lamda"], c["model"]["dropout"],
                c["train"]["weight_decay_graph"]) == setting
        assert (c["train"]["lr"], c["train"]["weight_decay"], c["model"]["alpha"],
                c["train"]["epochs"], c["train"]["patience"], c["seeds"]) == (
            0.01, 5e-4, 0.1, 1500, 100, 1)
    bot = {(c.labels["dataset"], c.labels["model"]): c.config
           for c in cells.plan(experiment.load("bot2021"))}
    assert sorted(bot) == sorted((d, m) for d in ("cora", "citeseer", "pubmed")
                                 for m in ("GCNII", "APPNP", "JKNet", "SGC"))
    assert {c["depth"] for c in bot.values()} == {32} and {c["seeds"] for c in bot.values()} \
        == {100}
    assert bot[("pubmed", "GCNII")]["train"]["weight_decay_graph"] == 5e-4
    assert bot[("citeseer", "GCNII")]["model"]["hidden"] == 256
    assert bot[("cora", "APPNP")]["train"]["weight_decay_groups"] == {"input": 5e-3,
                                                                      "output": 0.0}
    assert bot[("cora", "JKNet")]["model"]["shared_dropout"] is True
    assert bot[("citeseer", "SGC")]["model"]["dropout"] == 0.7


def test_published_numbers_no_entry_covers_are_no_entry_not_failures(tmp_path):
    """bot2021's DAGNN / GPRGNN / Ours / ogbn-arxiv rows: no gdepth entry runs them; their
    verdict is `no entry` (a finished reproduction exits 0), the planned cells `not run`."""
    from gdepth.reproduce import cells

    exp = experiment.load("bot2021", ["dataset=cora"])
    frame = compare.build(exp, cells.plan(exp), tmp_path)
    verdicts = dict(zip(frame.model, frame.verdict, strict=True))
    assert verdicts == {"GCNII": "not run", "APPNP": "not run", "JKNet": "not run",
                        "SGC": "not run", "Ours": "no entry", "DAGNN": "no entry",
                        "GPRGNN": "no entry"}
    assert frame.set_index("model").published["APPNP"] == 83.68


@pytest.mark.slow  # plans all nine experiments on a fresh data cache: a minute on 2 cores
def test_reproduce_list_prints_every_experiment_with_its_cells(cli_env, tmp_path):
    """``gdepth reproduce --list`` end to end: one row per experiment, its planned cell count
    (the in-process test below checks the counts and the cache on a few experiments)."""
    listed = subprocess.run([*GDEPTH, "reproduce", "--list"], env=cli_env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:-1]}
    assert sorted(names) == experiment.names()
    assert names["gcnii2020"] == "6" and names["bot2021"] == "12"
    from gdepth.reproduce import cells

    assert names["dropedge2020_semi"] == str(len(cells.plan(experiment.load(
        "dropedge2020_semi"))))


def test_reproduce_dry_runs_gcnii_and_bot2021(cli_env, tmp_path):
    dry = subprocess.run([*GDEPTH, "reproduce", "bot2021", "dataset=cora", "--dry-run"],
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "model=APPNP dataset=cora depth=32" in dry.stdout
    assert ("model: hidden=64 dropout=0.5 dropout_layers=all activation=relu alpha=0.1 | "
            "train: lr=0.01 weight_decay=0.0 weight_decay_groups={input: 0.005, output: 0.0} "
            "epochs=1000 patience=100 selection=min_val_loss") in dry.stdout
    assert "hidden=16 dropout=0.5 dropout_layers=hidden activation=relu mode=cat " \
           "shared_dropout=True | train: lr=0.01 weight_decay=0.0005 epochs=1000" in dry.stdout
    assert "lamda=0.5 | train: lr=0.01 weight_decay=0.0005 weight_decay_graph=0.01" in dry.stdout
    assert "4 cells" in dry.stderr and not (tmp_path / "outputs").exists()
    dry = subprocess.run([*GDEPTH, "reproduce", "gcnii2020", "dataset=citeseer", "--dry-run"],
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert dry.stdout.count("model: hidden=256 dropout=0.7 dropout_layers=all activation=relu "
                            "alpha=0.1 lamda=0.6 | train: lr=0.01 weight_decay=0.0005 "
                            "weight_decay_graph=0.01 epochs=1500 patience=100") == 2


def test_wheel_ships_the_tables_and_experiments(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(root)], check=True, timeout=300)
    import zipfile

    names = set(zipfile.ZipFile(next(tmp_path.glob("gdepth-*.whl"))).namelist())
    for table in published.names():
        assert f"gdepth/reproduce/tables/{table}.csv" in names
    for name in experiment.names():
        assert f"gdepth/configs/experiment/{name}.yaml" in names


def test_estimates_follow_the_engine_and_the_tree_protocol():
    """--list's CPU estimate: tree_match cells cost what benchmarks/tree_speed.py measured per
    pass by levels (for (patience + 1) · passes_per_epoch passes), PyG's message passing
    (a fully-adjacent last layer) what train_trees measured before (r = 4: 2.1 s per pass,
    r = 6: 27 s); a seed-batched cell costs the batched engine's measured rate, a loop cell
    (engine=loop) the loop's."""
    from gdepth.reproduce import cells

    for conv in ("gcn", "gin"):
        exp = experiment.load("alon2021_treematch", [f"model.conv={conv}", "dataset.depth_r=4,6"])
        by_r = {c.config["dataset"]["depth_r"]: cells.estimate_seconds(c)
                for c in cells.plan(exp)}
        assert by_r == {r: 2100 * cells.TREE_PASS_SECONDS[conv][r] for r in (4, 6)}
        # the ceiling: every seed trains to the authors' cap of 50,000 passes
        ceiling = {c.config["dataset"]["depth_r"]: cells.estimate_ceiling(c)
                   for c in cells.plan(exp)}
        assert ceiling == {r: 50000 * cells.TREE_PASS_SECONDS[conv][r] for r in (4, 6)}
    exp = experiment.load("alon2021_treematch", ["model.conv=gcn", "dataset.depth_r=4,6",
                                                 "model.fully_adjacent_last=true"])
    by_r = {c.config["dataset"]["depth_r"]: cells.estimate_seconds(c) for c in cells.plan(exp)}
    assert 0.8 * 2.1 * 2100 < by_r[4] < 1.2 * 2.1 * 2100
    assert 0.8 * 27 * 2100 < by_r[6] < 1.2 * 27 * 2100

    (cell,) = cells.plan(experiment.load("nodenorm2021", ["dataset=cora", "depth=8",
                                                          "norm=none"]))
    assert cell.config["seeds"] > 1 and cell.config["model"]["name"] == "gcn_res"
    units = (cell.config["seeds"] * cell.config["train"]["epochs"] * 8
             * cell.config["model"]["hidden"] * cells.NODES["cora"])
    assert math.isclose(cells.estimate_seconds(cell), cells.BATCHED_SECONDS_PER_UNIT * units)
    assert cells.estimate_ceiling(cell) is None  # a graph cell's estimate counts every epoch
    looped = cells.Cell(cell.key, cell.labels, cell.overrides, {**cell.config, "engine": "loop"})
    assert math.isclose(cells.estimate_seconds(looped), cells.SECONDS_PER_UNIT * units)


def test_dry_run_gives_a_tree_cell_its_floor_and_its_pass_budget(capsys):
    """--dry-run prints a tree cell's floor ((patience + 1) rounds) and its ceiling (the
    50,000-pass budget), and the total of both; a graph experiment's lines carry no ceiling."""
    from gdepth.reproduce import cells, command

    exp = experiment.load("alon2021_treematch", ["model.conv=gcn", "dataset.depth_r=4"])
    planned = cells.plan(exp)
    assert command._dry_run(exp, planned, {}) == 0
    out, err = capsys.readouterr()
    per_pass = cells.TREE_PASS_SECONDS["gcn"][4]
    floor, ceiling = cells.rough_duration(2100 * per_pass), cells.rough_duration(50000 * per_pass)
    assert f"~{floor} (up to {ceiling} at its pass budget)" in out
    assert f"1 cells, ~{floor} (up to {ceiling} if every tree run" in err
    exp = experiment.load("nodenorm2021", ["dataset=cora", "depth=8", "norm=none"])
    assert command._dry_run(exp, cells.plan(exp), {}) == 0
    out, err = capsys.readouterr()
    assert "pass budget" not in out + err and "1 cells, ~" in err


def test_tree_pass_seconds_are_the_committed_benchmark():
    """cells.TREE_PASS_SECONDS is benchmarks/results/tree_speed.json's level-wise CPU seconds
    per pass (rounded to two significant digits), every conv and r it holds."""
    from gdepth.reproduce import cells

    root = Path(__file__).resolve().parents[1]
    bench = json.loads((root / "benchmarks" / "results" / "tree_speed.json").read_text())
    measured = {(row["model"], row["r"]): row["levels_cpu_s_per_pass"]
                for row in bench["results"]["rows"]}
    assert sorted(measured) == sorted((conv, r) for conv, by_r in cells.TREE_PASS_SECONDS.items()
                                      for r in by_r)
    for (conv, r), seconds in measured.items():
        assert cells.TREE_PASS_SECONDS[conv][r] == float(f"{seconds:.2g}")


def _seeds_record(cell_config: dict, key: str, accs: list[float], status: str = "ok") -> dict:
    seeds = [{"seed": i, "status": "ok", "train_acc": 1.0, "val_acc": a, "test_acc": a,
              "selected_epoch": 3, "epoch_s": 0.1}
             for i, a in enumerate(accs)]
    return {"schema": records.SCHEMA_VERSION, "key": key, "status": status,
            "config": cell_config, "seeds": seeds, "summary": records.summarize(seeds),
            "error": "boom" if status == "failed" else None,
            "finished_at": "2026-01-01T00:00:00+00:00"}


def _study_summary(cell, final_key: str | None, trials: int, seeds: int) -> dict:
    """A study summary as gdepth/search/study.py writes it (the keys compare reads and more)."""
    best = None if final_key is None else {"number": 0, "params": {"train.lr": 0.01},
                                           "val_acc": 0.7}
    return {"study": cell.key, "label": "cora gcn·none", "base_overrides": cell.overrides,
            "config": cell.config,
            "search": {"name": "default", "trials": trials, "seeds": seeds, "sampler_seed": 0,
                       "startup_trials": 10, "parallel": 1},
            "space": {"train.lr": {"low": 0.001, "high": 0.05, "log": True}},
            "trials": [{"number": i, "state": "COMPLETE" if best else "FAIL",
                        "params": {"train.lr": 0.01}, "val_acc": 0.7 if best else None,
                        "key": f"trial{i}{cell.key}"} for i in range(trials)],
            "best": best,
            "final": None if final_key is None else {"overrides": [], "key": final_key,
                                                     "status": "ok"},
            "written_at": "2026-01-01T00:00:00+00:00"}


def test_a_running_tree_cell_reads_its_checkpoints_lower_bound(tmp_path):
    """A one-seed tree cell without a record but with a checkpoint's progress: its selected
    train accuracy so far is a lower bound of the record's, so it is `running` below the
    published number less 1.5 points, `match or above (running)` from there, `above
    (running)` past the published number plus 1.5; Δ stays empty, ours reads `≥ x at N
    passes`; a record, once written, wins over a progress file left behind."""
    from gdepth.reproduce import cells
    from gdepth.sweep import layout
    from gdepth.sweep.checkpoint import BatchCheckpoint

    exp = experiment.load("alon2021_treematch", ["model.conv=gcn,gin", "dataset.depth_r=4,5"])
    by = {(c.labels["model"], c.labels["r"]): c for c in cells.plan(exp)}
    # published train accuracies (Alon & Yahav, figure 3): gcn 70 / 19, gin 77 / 29 at r = 4 / 5
    for (model, r), bound in {("gcn", "4"): 0.60, ("gin", "4"): 0.760, ("gcn", "5"): 0.25,
                              ("gin", "5"): 0.10}.items():
        key = by[(model, r)].key
        BatchCheckpoint(layout.checkpoint_dir(tmp_path, key) / "trees-0.pt", 1, [0]).save(
            {"epoch": 123}, progress={"epoch": 123, "passes": 12300,
                                      "lower_bounds": {"train_acc": bound, "val_acc": bound}})
    cell = by[("gin", "5")]  # finished: its record (train acc 30 %) wins over the old progress
    seeds = [{"seed": 0, "status": "ok", "train_acc": 0.30, "val_acc": 0.30, "test_acc": 0.2,
              "selected_epoch": 3, "epoch_s": 0.1}]
    records.write(records.record_path(tmp_path, cell.key),
                  {"schema": records.SCHEMA_VERSION, "key": cell.key, "status": "ok",
                   "config": cell.config, "seeds": seeds, "summary": records.summarize(seeds),
                   "error": None, "finished_at": "2026-01-01T00:00:00+00:00"})

    frame = compare.build(exp, list(by.values()), tmp_path)
    rows = frame.set_index(["model", "r"])
    assert rows.loc[("gcn", "4"), "verdict"] == "running"  # 60 < 70 - 1.5: could still be off
    assert rows.loc[("gin", "4"), "verdict"] == "match or above (running)"  # 76 >= 77 - 1.5
    assert rows.loc[("gcn", "5"), "verdict"] == "above (running)"  # 25 > 19 + 1.5
    assert rows.loc[("gin", "5"), "verdict"] == "match"  # the record: 30 against 29
    assert rows.loc[("gcn", "5"), "progress"] == "≥ 25.0 at 12,300 passes"
    assert rows.loc[("gcn", "5"), "n"] == 0 and math.isnan(rows.loc[("gcn", "5"), "delta"])
    text = compare.write(exp, frame, tmp_path, "# header")
    table = [[c.strip() for c in x.strip("|").split("|")] for x in text.splitlines()
             if x.startswith("| ")]
    (line,) = [cols for cols in table if cols[:2] == ["gcn", "5"]]
    assert line[-3:] == ["≥ 25.0 at 12,300 passes", "", "above (running)"]
    # the report reads the progress back from comparison.csv and shows it the same way
    from gdepth.report import reproduced

    loaded, labels, _ = reproduced.load(tmp_path)
    assert "progress" not in labels and reproduced.table(loaded, labels) == compare.render(
        frame, labels)


def test_search_shows_the_tuned_finals_verdict_beside_the_fixed_one(tmp_path):
    from gdepth.reproduce import cells
    from gdepth.search import study

    exp = experiment.load("dropedge2020_semi", ["dataset=cora", "model=gcn", "depth=2,8",
                                                "search=default", "search.trials=4",
                                                "search.seeds=2"])
    fixed, tuned = cells.plan(exp), cells.plan(exp, searched=True)
    assert [c.labels for c in fixed] == [c.labels for c in tuned]
    assert not {c.key for c in fixed} & {c.key for c in tuned}  # a searched cell is another
    by = {(c.labels["depth"], c.labels["variant"]): (f, c) for f, c in zip(fixed, tuned,
                                                                          strict=True)}
    # published (DropEdge README, Cora GCN): 2 original 81.1, 8 original 69.5,
    # 2 dropedge 82.8, 8 dropedge 75.8
    f, t = by[("8", "original")]  # fixed far off; tuned within 1.5 points: match after tuning
    recs = [_seeds_record(f.config, f.key, [0.344]),
            _seeds_record(t.config, "final8o", [0.70, 0.69])]
    summaries = [_study_summary(t, "final8o", 4, 2)]
    f, t = by[("2", "dropedge")]  # no fixed record; a tuned final a deep gap away
    recs.append(_seeds_record(t.config, "final2d", [0.60, 0.62]))
    summaries.append(_study_summary(t, "final2d", 4, 2))
    f, t = by[("8", "dropedge")]  # fixed failed; every trial failed: no final
    recs.append(_seeds_record(f.config, f.key, [], status="failed"))
    summaries.append(_study_summary(t, None, 4, 2))
    f, _ = by[("2", "original")]  # fixed matches; the search has not run
    recs.append(_seeds_record(f.config, f.key, [0.808]))
    for rec in recs:
        records.write(records.record_path(tmp_path, rec["key"]), rec)
    for summary in summaries:
        records.write(study.summary_path(tmp_path, summary["study"]), summary)

    frame = compare.build(exp, fixed, tmp_path, tuned=tuned)
    rows = frame.set_index(["depth", "variant"])
    budget = "4 trials × 2 seeds"
    assert rows.loc[("8", "original"), "verdict"] == "off"  # 34.4 vs 69.5
    assert rows.loc[("8", "original"), "tuned_verdict"] == f"match after tuning ({budget})"
    assert math.isclose(rows.loc[("8", "original"), "tuned_mean"], 69.5)  # (70 + 69) / 2
    assert math.isclose(rows.loc[("8", "original"), "tuned_std"], 0.5)  # population std
    assert rows.loc[("8", "original"), "tuned_n"] == 2
    assert rows.loc[("8", "original"), "tuned_key"] == "final8o"
    assert rows.loc[("2", "dropedge"), "verdict"] == "not run"
    assert rows.loc[("2", "dropedge"), "tuned_verdict"] == f"off after tuning ({budget})"
    assert math.isclose(rows.loc[("2", "dropedge"), "tuned_mean"], 61.0)  # 21.8 below 82.8
    assert rows.loc[("8", "dropedge"), "verdict"] == "failed"
    assert rows.loc[("8", "dropedge"), "tuned_verdict"] == "search failed"
    assert rows.loc[("2", "original"), "verdict"] == "match"
    assert rows.loc[("2", "original"), "tuned_verdict"] == "not tuned yet"
    assert rows.loc[("2", "original"), "budget"] == budget
    running = _study_summary(by[("8", "dropedge")][1], None, 4, 2)  # 2 of 4 trials failed so far
    running["trials"] = running["trials"][:2]
    records.write(study.summary_path(tmp_path, running["study"]), running)
    again = compare.build(exp, fixed, tmp_path, tuned=tuned).set_index(["depth", "variant"])
    assert again.loc[("8", "dropedge"), "tuned_verdict"] == "not tuned yet"
    records.write(study.summary_path(tmp_path, running["study"]), summaries[2])

    text = compare.write(exp, frame, tmp_path, "# header")
    line = next(x for x in text.splitlines() if "| 8 " in x and "original" in x)
    cells_of = [c.strip() for c in line.strip("|").split("|")]
    assert cells_of[-6:] == ["34.4 ± 0.0 (1)", "-35.1", "off", "69.5 ± 0.5 (2)", "+0.0",
                             f"match after tuning ({budget})"]
    saved = pd.read_csv(tmp_path / "comparison.csv", dtype={"depth": str})
    assert list(saved.columns[:4]) == ["dataset", "backbone", "depth", "variant"]
    assert set(saved["tuned_verdict"]) == {f"match after tuning ({budget})",
                                           f"off after tuning ({budget})", "search failed",
                                           "not tuned yet"}
    without = compare.build(exp, fixed, tmp_path)  # no search= given: the fixed columns only
    assert "tuned_verdict" not in without and "tuned verdict" not in compare.render(
        without, ["dataset", "backbone", "depth", "variant"])


def test_search_overrides_pass_to_every_subsweep_and_are_no_deviation():
    exp = experiment.load("dropedge2020_semi", ["dataset=cora", "model=gcn", "depth=2",
                                                "search=default", "search.trials=4"])
    assert exp.search == ["search=default", "search.trials=4"] and not exp.deviations
    for sub in exp.subsweeps:
        args = experiment.sweep_args(exp, sub)
        assert args[-3:] == ["search=default", "search.trials=4",
                             "name=reproduce_dropedge2020_semi"]
    assert experiment.load("dropedge2020_semi", ["dataset=cora", "search=none"]).search == []
    with pytest.raises(ValueError, match="search.trials=4 needs search=NAME"):
        experiment.load("dropedge2020_semi", ["search.trials=4"])


def test_reproduce_dry_run_lists_the_searched_cells_with_their_budget(cli_env, tmp_path):
    from gdepth.reproduce import cells

    args = ["dataset=cora", "model=gcn", "depth=2", "search=default", "search.trials=4",
            "search.seeds=2"]
    run = subprocess.run([*GDEPTH, "reproduce", "dropedge2020_semi", *args, "--dry-run"],
                         env=cli_env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    tuned = cells.plan(experiment.load("dropedge2020_semi", args), searched=True)
    assert len(tuned) == 2
    for cell in tuned:  # listed by the searched cell's key (its study's), with the budget
        at = run.stdout.index(cell.key)
        block = run.stdout[at:at + 2000].split("\n")[:4]
        assert "search=default search.trials=4 search.seeds=2" in block[1]
        assert block[3].strip() == ("searched (search=default search.trials=4 search.seeds=2): "
                                    "4 trials × 2 seeds per trial, then the best trial with "
                                    "the cell's 1")
    assert "2 searched cells" in run.stderr and not (tmp_path / "outputs").exists()


@pytest.mark.slow  # the tiny reproduction's fixture: ~45 s on 2 busy cores; CI runs it
def test_reproduce_with_search_compares_the_real_tuned_finals(tiny, cli_env):
    """After the fixed run (``tiny``), the same cells searched into the same folder: every
    searched cell's final is found through its study summary and gets a tuned verdict."""
    result, folder = tiny
    assert result.returncode == 0, result.stderr[-3000:]
    args = ["reproduce", "dropedge2020_semi", "dataset=cora", "model=gcn", "depth=2", "seeds=1",
            "train.epochs=3", "progress=false", "threads=1", "search=default",
            "search.trials=2", "search.seeds=1", "search.startup_trials=2"]
    run = subprocess.run([*GDEPTH, *args], env=cli_env, cwd=folder.parents[2],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    frame = pd.read_csv(folder / "comparison.csv", dtype={"depth": str})
    found = {r["key"]: r for r in collect.load(folder)}
    assert len(frame) == 2
    for row in frame.itertuples():
        assert row.key in found  # the fixed record of the tiny run, beside the tuned one
        final = found[row.tuned_key]
        assert final["config"]["search"]["name"] == "none" and final["key"] != row.key
        stats = final["summary"]["test_acc"]
        assert math.isclose(row.tuned_mean, 100 * stats["mean"])
        word = compare.verdict(row.published, 100 * stats["mean"], 100 * stats["std"])
        assert row.tuned_verdict == f"{word} after tuning (2 trials × 1 seed)"
    assert "tuned verdict" in run.stdout and "per-cell search: search=default" in run.stdout


def test_transfer_range_runs_depth_r_on_every_topology_with_and_without_fa():
    """transfer_range: 3 topologies x r = 3..8, depth = r in every sub-sweep (the fewest layers
    that reach the source), gcn / gin / gcn_res each with and without the fully-adjacent last
    layer; its cells are costed on the union's nodes (16 per ring instance at r = 8)."""
    from gdepth.reproduce import cells

    exp = experiment.load("transfer_range")
    pairs = set()
    for sub in exp.subsweeps:
        r = int(experiment._value(sub.overrides, "dataset.task_range"))
        assert sub.depths == [r]
        assert experiment._value(sub.overrides, "model") == "gcn,gin,gcn_res"
        assert experiment._value(sub.overrides, "model.fully_adjacent_last") == "false,true"
        pairs.add((sub.dataset, r))
    assert pairs == {(f"transfer_{t}", r) for t in ("ring", "crossed_ring", "clique_path")
                     for r in range(3, 9)}
    planned = cells.plan(experiment.load("transfer_range", [
        "dataset=transfer_ring", "dataset.task_range=8", "model=gcn"]))
    assert [c.config["model"]["fully_adjacent_last"] for c in planned] == [False, True]
    assert len({c.key for c in planned}) == 2
    from gdepth.reproduce.command import settings  # the dry run shows the layer only when on
    assert "fully_adjacent_last" not in settings(planned[0].config)
    assert "activation=relu fully_adjacent_last=True" in settings(planned[1].config)
    cell = planned[0].config
    assert cells.nodes(cell["dataset"]) == 16 * cell["dataset"]["num_graphs"] == 8000
    units = 3 * cell["train"]["epochs"] * 8 * cell["model"]["hidden"] * 8000
    assert math.isclose(cells.estimate_seconds(planned[0]),
                        cells.BATCHED_SECONDS_PER_UNIT * units)
    (gin,) = cells.plan(experiment.load("transfer_range", [
        "dataset=transfer_ring", "dataset.task_range=8", "model=gin",
        "model.fully_adjacent_last=false"]))
    assert math.isclose(cells.estimate_seconds(gin),
                        cells.LAYER_COST["gin"] * cells.estimate_seconds(planned[0]))
    clique = {"name": "transfer_clique_path", "task_range": 8, "num_graphs": 500}
    assert cells.nodes(clique) == 14 * 500 and cells.nodes({"name": "cora"}) == 2708


def test_comparison_plot_with_a_panel_not_run_yet(tmp_path):
    """A dataset whose cells have not run yet gets an empty panel, not matplotlib's "cannot be
    log-scaled" error (transfer_range's first partial run hit it)."""
    import pandas as pd

    from gdepth.reproduce import compare

    frame = pd.DataFrame({
        "dataset": ["ring", "ring", "lollipop", "lollipop"], "r": [3, 4, 3, 4],
        "model": ["gcn"] * 4, "depth": [3, 4, 3, 4], "published": [float("nan")] * 4,
        "mean": [100.0, 60.0, float("nan"), float("nan")], "std": [0.0, 5.0] + [float("nan")] * 2,
        "n": [3, 3, 0, 0]})
    path = tmp_path / "comparison.png"
    compare.plot(frame, ["dataset", "r", "model", "depth"], "depth", path)
    assert path.stat().st_size > 0
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # closed


def test_comparison_curves_ignore_a_key_that_follows_the_depth():
    """The tree task's r is depth - 1 and transfer_range's r is the depth: neither splits a
    model's curve into single points; a key that varies within a depth (the norm) does."""
    import pandas as pd

    from gdepth.reproduce import compare

    frame = pd.DataFrame({"dataset": ["tree"] * 4, "r": [2, 3, 2, 3], "model": ["gcn"] * 4,
                          "norm": ["none", "none", "pair", "pair"], "depth": [3, 4, 3, 4]})
    keys = compare.series_keys(frame, ["dataset", "r", "model", "norm", "depth"], "depth",
                               "dataset")
    assert keys == ["model", "norm"]
    assert len(frame.groupby(keys)) == 2 and all(len(g) == 2 for _, g in frame.groupby(keys))


def test_list_is_cached_by_the_configs_and_code(tmp_path, monkeypatch, capsys):
    """--list plans every experiment once; a second call with the same configs and code prints
    the same listing from the cache without planning; a changed source file plans again."""
    from gdepth.reproduce import cells, listing

    monkeypatch.setenv("GDEPTH_DATA", str(tmp_path / "cache"))
    planned: list[str] = []
    real_plan = cells.plan

    def counting_plan(exp, searched=False):
        planned.append(exp.name)
        return real_plan(exp, searched)

    monkeypatch.setattr(cells, "plan", counting_plan)
    names = ["gcnii2020", "sign_vs_depth"]
    monkeypatch.setattr(experiment, "names", lambda: names)
    source = tmp_path / "extra.yaml"
    source.write_text("a: 1\n")
    real_files = listing.source_files
    monkeypatch.setattr(listing, "source_files", lambda: [*real_files(), source])

    assert listing.print_list() == 0
    first = capsys.readouterr().out
    assert planned == names
    rows = {line.split()[0]: line.split()[1] for line in first.splitlines()[1:-1]}
    assert rows == {"gcnii2020": "6", "sign_vs_depth": "30"}
    assert listing.print_list() == 0
    assert capsys.readouterr().out == first and planned == names  # from the cache
    source.write_text("a: 2\n")
    assert listing.print_list() == 0
    assert capsys.readouterr().out == first and planned == names * 2  # planned again


def test_sign_estimate_counts_its_sparse_products():
    """SIGN on Cora / Coauthor CS costs (K+1)·nnz(X) + K(K+1)/2·nnz(Â) multiply-adds per hidden
    column, seed and epoch (its projected hops), and those counts are the benchmark's."""
    from gdepth.reproduce import cells

    bench = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                        / "sign_hops.json").read_text())
    for row in bench["results"]["rows"]:
        assert cells.SPARSE_STORED[row["dataset"]] == (row["nnz_x"], row["nnz_adj"])
    exp = experiment.load("sign_vs_depth", ["dataset=coauthor_cs", "model=sign",
                                            "depth=2,32"])
    by_k = {c.config["depth"]: cells.estimate_seconds(c) for c in cells.plan(exp)}
    x, a = cells.SPARSE_STORED["coauthor_cs"]
    per = cells.SIGN_SECONDS_PER_SPARSE_UNIT * 5 * 200 * 64  # seeds, epochs, hidden
    assert math.isclose(by_k[2], per * (3 * x + 3 * a))
    assert math.isclose(by_k[32], per * (33 * x + 528 * a))


def test_sign_seconds_per_sparse_unit_is_the_committed_measurement_of_its_deep_cell():
    """The constant is Coauthor CS's SIGN at K = 32 in the batch engine=auto takes there (the
    policy's table), from the committed batch-policy benchmark, to the two digits it keeps."""
    from gdepth.engine import policy
    from gdepth.reproduce import cells

    bench = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                        / "batch_policy_coauthor_cs.json").read_text())["results"]
    row = next(r for r in bench["rows"] if r["model"] == "sign" and r["depth"] == 32)
    size = policy.preferred_seeds("sign", torch.device("cpu"), policy.MEASURED_NODES["coauthor_cs"])
    per_seed = row["cpu_epoch_s"][str(size)] / bench["seeds"]
    x, a = cells.SPARSE_STORED["coauthor_cs"]
    measured = per_seed / (64 * (33 * x + 528 * a))  # the benchmark's hidden width: 64
    assert math.isclose(cells.SIGN_SECONDS_PER_SPARSE_UNIT, float(f"{measured:.2g}"))
