"""``gdepth inspect``: a real subprocess on the real Cora files, and the override routing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gdepth import inspect_graphs

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The printed Markdown table as ``{measure: [cell per dataset]}``."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not set(line) <= set("|:- "):
            rows[cells[0]] = cells[1:]
    return rows


def test_cora_and_grid2d_side_by_side(cli_env, tmp_path):
    out = subprocess.run([*GDEPTH, "inspect", "dataset=cora,grid2d"], env=cli_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = table_rows(out.stdout)
    assert rows["measure"] == ["cora", "grid2d"]
    assert rows["nodes"] == ["2708", "1024"]
    assert rows["edges (undirected)"] == ["5278", "1984"]  # Cora: 10556 directed
    assert float(rows["edge homophily"][0]) == pytest.approx(0.81, abs=0.005)
    assert rows["largest component (LCC)"][0] == "2485 (91.8%)"
    assert rows["connected components"] == ["78", "1"]
    assert rows["diameter (LCC)"] == ["19", "62"]  # 32×32 grid: 31 + 31
    assert rows["avg clustering"] == ["0.241", "0.000"]
    assert rows["BFC min"][1] == "0.000" and rows["BFC share < -1"][1] == "0.0%"
    folder = tmp_path / "outputs" / "inspect" / "cora+grid2d"
    assert f"in {Path('outputs/inspect/cora+grid2d')}/" in out.stdout
    assert (folder / "receptive_field.png").stat().st_size > 10_000
    assert (folder / "table.md").read_text().strip() == out.stdout.split("\n\n")[0].strip()
    raw = pd.read_csv(folder / "structure.csv", index_col="measure")
    assert float(raw.loc["edges", "cora"]) == 5278
    assert float(raw.loc["receptive_field_k1", "cora"]) == pytest.approx((1 + 10556 / 2708) / 2708)
    grid_k8 = float(raw.loc["receptive_field_k8", "grid2d"])
    assert grid_k8 < float(raw.loc["receptive_field_k8", "cora"]) / 5  # a small world vs a grid


def test_dataset_overrides_go_where_they_fit(tmp_path, capsys):
    code = inspect_graphs.main(["dataset=grid2d,small_world", "dataset.num_nodes=100",
                         "dataset.neighbors=6", f"out_dir={tmp_path}", "name=pair"])
    assert code == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows["nodes"] == ["100", "100"]
    assert rows["mean degree"] == ["3.60", "6.00"]  # 10×10 grid: 2·180/100; neighbors only hits WS
    assert (tmp_path / "inspect" / "pair" / "receptive_field.png").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["dataset=imagenet"], "unknown dataset 'imagenet'; valid: amazon_computers, "),
    (["dataset=grid2d", "dataset.neighbors=6"], "dataset.neighbors=6 fits none of the datasets"),
    (["dataset=ring", "dataset.num_nodes=many"], "num_nodes"),
    (["cora"], "unexpected argument 'cora'"),
    ([f"out_dir={Path('x')}"], "name the datasets: dataset=NAME"),
])
def test_bad_command_lines_fail_with_one_line(args, message, capsys):
    assert inspect_graphs.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
