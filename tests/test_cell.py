"""cell.prepare: features and adjacency fixed per dataset, built once, as the config says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gdepth import cell, config, data
from gdepth.cell.record import CellRecord, EngineInfo

CPU = torch.device("cpu")


def _cora(mirror, data_cache, **options):
    cfg = config.group("dataset", name="cora", split="public", **options)
    folders = config.DataConfig(root=str(data_cache), mirror=str(mirror))
    return data.load(cfg, folders, 0), cfg


def test_default_is_raw_sparse_features_and_symmetric_adjacency(mirror, data_cache):
    graph, cfg = _cora(mirror, data_cache)
    prepared, adj, kind = cell.prepare(graph, cfg, CPU)
    assert kind == "sparse_csr (density 1.27%)"
    assert torch.equal(prepared.x.to_dense(), graph.x)
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T)
    deg = torch.bincount(graph.edge_index[1], minlength=graph.num_nodes).float() + 1
    assert torch.allclose(dense.diagonal(), 1 / deg)  # self-loop weight 1/(d_i + 1)
    again = cell.prepare(graph, cfg, CPU)
    assert again[0].x is prepared.x and again[1] is adj  # cached, not rebuilt


def test_row_normalized_features_and_row_adjacency_without_self_loops(mirror, data_cache):
    graph, cfg = _cora(mirror, data_cache, normalize_features=True, adjacency="row",
                       self_loops=False)
    prepared, adj, _ = cell.prepare(graph, cfg, CPU)
    sums = prepared.x.to_dense().sum(1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())))
    dense = adj.to_dense()
    assert torch.allclose(dense.sum(1), torch.ones(graph.num_nodes))
    assert dense.diagonal().abs().sum() == 0


RECORDS = sorted(Path(__file__).resolve().parents[1].glob("results/sweeps/*/records/*.json"))


@pytest.mark.parametrize("path", RECORDS[:5], ids=lambda p: p.stem)
def test_a_committed_record_is_a_cell_record_written_as_it_was(path):
    """CellRecord holds a committed record and writes it back byte for byte (the fields, their
    order, the optional ones left out)."""
    text = path.read_text()
    stored = json.loads(text)
    record = CellRecord(**{**stored, "engine": EngineInfo(**stored["engine"])})
    assert json.dumps(record.to_json(), indent=1) == json.dumps(stored, indent=1)


def test_a_fresh_record_has_the_fields_of_a_committed_one_in_their_order(tmp_path):
    """A cell run now writes the keys a committed record has, in the same order (plus the
    optional ones it sets: none for a plain cell)."""
    from hydra import compose, initialize_config_dir

    from gdepth import compose as gdepth_compose
    from gdepth.paths import config_dir

    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["name=t", "progress=false", "threads=1", "seeds=1",
                                           "train.epochs=2", "dataset.num_nodes=300"])
    fresh = cell.run_cell(cfg, tmp_path)
    assert fresh["status"] == "ok", fresh["error"]
    committed = json.loads(RECORDS[0].read_text())
    assert list(fresh) == list(committed)
    assert list(fresh["engine"]) == list(committed["engine"])
    on_disk = (tmp_path / "records" / f"{fresh['key']}.json").read_text()
    assert on_disk == json.dumps(fresh, indent=1, default=str)


def test_a_record_keeps_no_dataset_folder_of_the_machine(tmp_path, mirror, data_cache):
    """data.root / data.mirror (here a real Cora mirror and cache) load the data but are not
    stored: a committed record names no local path."""
    from hydra import compose, initialize_config_dir

    from gdepth import compose as gdepth_compose
    from gdepth.paths import config_dir

    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[
            "name=t", "progress=false", "threads=1", "seeds=1", "train.epochs=2",
            "dataset=cora", "model.hidden=8", f"data.root={data_cache}", f"data.mirror={mirror}"])
    fresh = cell.run_cell(cfg, tmp_path)
    assert fresh["status"] == "ok", fresh["error"]
    assert fresh["config"]["data"] == {"root": None, "mirror": None}
    text = (tmp_path / "records" / f"{fresh['key']}.json").read_text()
    assert str(data_cache) not in text and str(mirror) not in text
