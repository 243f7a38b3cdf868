"""The ``gdepth`` command end to end, in real subprocesses with real Hydra multiruns."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gdepth.sweep import collect

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]  # the installed console script
# A small, fast CSBM so a sweep of several cells takes seconds.
SMALL = ["dataset.num_nodes=300", "dataset.num_classes=3", "train.epochs=15", "progress=false"]


def gdepth(args, env, cwd, timeout=300):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mirror, data_cache):
    """One real sweep of 2 models × 3 depths × 2 seeds, then the same command again."""
    import os

    cwd = tmp_path_factory.mktemp("sweep")
    env = dict(os.environ, GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
               OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1")
    args = ["sweep", "model=gcn,gcn_res", "depth=2..8", "seeds=2", "name=demo", *SMALL]
    first = gdepth(args, env, cwd)
    folder = cwd / "outputs" / "sweeps" / "demo"
    before = {p.name: p.read_text() for p in (folder / "records").glob("*.json")}
    second = gdepth(args, env, cwd)
    return first, second, folder, before, env, cwd


def test_sweep_writes_one_ok_record_per_cell_and_the_table(sweep):
    first, _, folder, before, _, _ = sweep
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(before) == 6
    found = collect.load(folder)
    assert sorted((r["config"]["model"]["name"], r["config"]["depth"]) for r in found) == [
        ("gcn", 2), ("gcn", 4), ("gcn", 8), ("gcn_res", 2), ("gcn_res", 4), ("gcn_res", 8)]
    assert all(r["status"] == "ok" and len(r["seeds"]) == 2 for r in found)
    record = found[0]
    for field in ("convention", "params", "threads", "versions", "device", "peak_rss_mb"):
        assert record[field], field
    assert "| gcn·none" in first.stdout and "| gcn_res·none" in first.stdout
    assert "[6/6]" in first.stderr
    assert "6 cells (6 ok; 6 run now, 0 skipped as already done)" in first.stderr


def test_table_cells_equal_the_records(sweep):
    _, _, folder, _, _, _ = sweep
    lines = (folder / "table.md").read_text().splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "model·norm [mean ± std (ddof=0) (n)]", "collapse δ=2", "L=2", "L=4", "L=8"]
    by_model: dict[str, dict[int, list[float]]] = {}
    for record in collect.load(folder):
        accs = [100 * s["test_acc"] for s in record["seeds"]]
        by_model.setdefault(record["config"]["model"]["name"], {})[record["config"]["depth"]] = accs
        text = f"{np.mean(accs):.1f} ± {np.std(accs):.1f} (2)"
        row = next(line for line in lines
                   if line.startswith(f"| {record['config']['model']['name']}·none "))
        assert text in row
    for model, by_depth in by_model.items():  # the collapse column, by hand
        row = next(line for line in lines if line.startswith(f"| {model}·none "))
        shown = row.strip("|").split("|")[1].strip()
        assert shown == _collapse_by_hand(by_depth, 2.0), (row, by_depth)
    csv = (folder / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 12


def _collapse_by_hand(by_depth: dict[int, list[float]], delta: float) -> str:
    """Two seeds: the bootstrap draws {0, 0}, {1, 1} or {0, 1}, each often enough out of 2000
    that the 2.5 / 97.5 % quantiles are the least and greatest of their collapse depths."""
    def first(pick: list[int]) -> float:
        means = {d: np.mean([v[i] for i in pick]) for d, v in sorted(by_depth.items())}
        peak = max(means, key=means.get)  # the first depth of the best mean
        return next((d for d, m in means.items() if d >= peak and m < means[peak] - delta),
                    np.inf)

    def word(d: float) -> str:
        return "none" if d == np.inf else str(int(d))

    point, draws = first([0, 1]), [first([0, 0]), first([1, 1]), first([0, 1])]
    head = f"L={int(point)}" if point != np.inf else f"none (holds to L={max(by_depth)})"
    return f"{head} [{word(min(draws))}, {word(max(draws))}]"


def test_second_identical_sweep_trains_nothing(sweep):
    _, second, folder, before, _, _ = sweep
    assert second.returncode == 0, second.stderr[-3000:]
    after = {p.name: p.read_text() for p in (folder / "records").glob("*.json")}
    assert after == before  # byte-identical: no cell retrained
    assert len(re.findall(r"skip .*record is ok", second.stderr)) == 6
    assert "6 cells (6 ok; 0 run now, 6 skipped as already done)" in second.stderr


def test_table_command_reaggregates_in_every_format(sweep):
    _, _, folder, _, env, cwd = sweep
    out = gdepth(["table", str(folder), "--format", "csv", "--metric", "val_acc"], env, cwd)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == ("model·norm [mean ± std (ddof=0) (n)],collapse δ=2,"
                                          "L=2,L=4,L=8")
    assert (folder / "table_val_acc.md").exists()
    out = gdepth(["table", str(folder), "--ddof", "1", "--delta", "100"], env, cwd)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "model·norm [mean ± std (ddof=1) (n)]" in lines[0] and "collapse δ=100" in lines[0]
    for record in collect.load(folder):
        accs = [100 * s["test_acc"] for s in record["seeds"]]
        row = next(line for line in lines
                   if line.startswith(f"| {record['config']['model']['name']}·none "))
        assert f"{np.mean(accs):.1f} ± {np.std(accs, ddof=1):.1f} (2)" in row
        assert row.strip("|").split("|")[1].strip() == "none (holds to L=8) [none, none]"
    assert "ddof=1" in (folder / "table.md").read_text().splitlines()[0]
    gdepth(["table", str(folder)], env, cwd)  # back to the defaults for the other tests
    bad_ddof = gdepth(["table", str(folder), "--ddof", "2"], env, cwd)
    assert bad_ddof.returncode == 2 and "invalid choice: 2" in bad_ddof.stderr
    bad = gdepth(["table", str(folder / "nope")], env, cwd)
    assert bad.returncode == 2 and "no such folder" in bad.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["sweep", "depth=64..2"], 2, "invalid depth '64..2'"),
        (["sweep", "depth=3..64"], 2, "accepted forms: 2..64 (doubling)"),
        (["run", "depth=2,4"], 2, "gdepth run takes one depth"),
        (["run", "dataset=imagenet"], 2, "Could not find 'dataset/imagenet'; valid: "),
        (["run", "model=transformer"], 2, "Could not find 'model/transformer'; valid: appnp"),
        (["run", "norm=foo"], 2, "Could not find 'norm/foo'; valid: batchnorm"),
        (["run", "train.lr=fast"], 2, "Value 'fast' of type 'str' could not be converted"),
        (["frobnicate"], 2, "unknown command 'frobnicate'; valid: run, sweep, table, compare"),
        (["run", "depth=2", "--cfg", "job", "-p", "modle"], 2,
         "--package modle: no such key; valid: dataset, model, norm, train, diagnostics"),
    ],
)
def test_bad_input_gives_the_promised_message_and_exit_code(args, code, message, cli_env,
                                                             tmp_path):
    out = gdepth(args, cli_env, tmp_path)
    assert out.returncode == code, out.stderr[-2000:]
    assert message in out.stderr
    if code == 2:
        assert not (tmp_path / "outputs").exists()  # nothing launched


def test_missing_dataset_is_a_failed_cell_with_a_one_line_reason(cli_env, tmp_path):
    out = gdepth(["run", "dataset=pubmed", "name=pm", "seeds=1"], cli_env, tmp_path)
    assert out.returncode == 1
    error = re.search(r"failed \((DatasetUnavailable: .*)\)", out.stderr)
    assert error and "pubmed" in error.group(1) and "GDEPTH_DATA_MIRROR" in error.group(1)
    assert "downloads are off: GDEPTH_OFFLINE is set" in error.group(1)
    record = collect.load(tmp_path / "outputs" / "runs" / "pm")[0]
    assert record["status"] == "failed" and "pubmed" in record["error"]
    assert "failed" in (tmp_path / "outputs" / "runs" / "pm" / "table.md").read_text()


def test_list_shows_every_registry(cli_env, tmp_path):
    out = gdepth(["list"], cli_env, tmp_path)
    assert out.returncode == 0
    for name in ("gcn_res", "nodenorm", "pairnorm", "coauthor_cs", "csbm", "ogbn_arxiv",
                 "default"):
        assert re.search(rf"^  {name} ", out.stdout, re.M), name
    # which models run one module per seed, and why; the seed-native ones say nothing
    from gdepth import models

    per_seed = [k for k, v in models.MODELS.items() if v.per_seed is not None]
    assert per_seed == ["bottleneck"]
    line = re.search(r"^  bottleneck .*$", out.stdout, re.M).group(0)
    assert "[seeds one module each: its layers are PyG's own" in line
    assert not re.search(r"^  gcn_res .*one module each", out.stdout, re.M)


def test_wheel_ships_the_config_tree(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(repo)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("gdepth-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"gdepth/configs/{p.relative_to(repo / 'configs')}"
                for p in (repo / "configs").rglob("*.yaml")}
    assert expected <= names
    assert "gdepth/configs/config.yaml" in names
    meta = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gdepth = gdepth.cli:main" in zipfile.ZipFile(wheel).read(meta).decode()


@pytest.mark.parametrize("group", ["dataset", "model", "norm"])
def test_config_options_equal_registry_keys(group):
    from gdepth import data, models, norms
    from gdepth.cli import config_dir

    registry = {"dataset": data.DATASETS, "model": models.MODELS, "norm": norms.NORMS}[group]
    options = {p.stem for p in Path(config_dir(), group).glob("*.yaml")}
    assert options == set(registry)


def test_diverging_cell_is_recorded_and_the_sweep_goes_on(cli_env, tmp_path):
    """lr=1e30 blows the weights up: a non-finite loss marks the cell, the next cell still runs."""
    out = gdepth(["sweep", "train.lr=1e30,0.01", "name=div", "seeds=2", *SMALL], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    found = {r["config"]["train"]["lr"]: r for r in collect.load(tmp_path / "outputs/sweeps/div")}
    assert found[1e30]["status"] == "diverged"
    assert all(s["status"] == "diverged" for s in found[1e30]["seeds"])
    assert found[0.01]["status"] == "ok"
    assert re.search(r"\| gcn·none lr=1e\+30 +\| – +\| diverged +\|", out.stdout)  # no collapse


@pytest.mark.parametrize(
    ("preset", "expected"),
    [("gcnii2020", {"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": 0.01,
                    "epochs": 1500, "patience": 100, "selection": "min_val_loss"}),
     ("pairnorm2020", {"lr": 0.005, "weight_decay": 5e-4, "weight_decay_graph": None,
                       "epochs": 1500, "patience": None, "selection": "best_val_acc"})],
)
def test_train_presets_hold_the_published_settings(preset, expected):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gdepth.cli import config_dir

    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"train={preset}", "name=x"])
    train = OmegaConf.to_container(cfg.train, enum_to_str=True)
    assert {k: train[k] for k in expected} == expected
    assert train["name"] == preset


def test_compare_pairs_the_rows_seed_by_seed(sweep):
    _, _, folder, _, env, cwd = sweep
    out = gdepth(["compare", str(folder), "gcn·none", "gcn_res·none", "--resamples", "500"],
                 env, cwd)
    assert out.returncode == 0, out.stderr
    found = {(r["config"]["model"]["name"], r["config"]["depth"]):
             {s["seed"]: 100 * s["test_acc"] for s in r["seeds"]} for r in collect.load(folder)}
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("|") and "---" not in ln]
    assert len(lines) == 1 + 3  # header + depths 2, 4, 8
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        depth, diff = int(cells[0]), float(cells[4])
        a, b = found[("gcn", depth)], found[("gcn_res", depth)]
        expected = np.mean([a[s] - b[s] for s in a])
        assert diff == pytest.approx(expected, abs=0.006)  # shown with two decimals
    assert "gcn·none: " in out.stdout and "collapse depth" in out.stdout
    bad = gdepth(["compare", str(folder), "gcn·none", "gat·none"], env, cwd)
    assert bad.returncode == 2 and "no row 'gat·none'" in bad.stderr
    assert "valid: gcn·none, gcn_res·none" in bad.stderr
