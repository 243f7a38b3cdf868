"""Protocol presets (configs/train/*.yaml): composed through Hydra, applied to the dataset and
model configs, and their splits' sizes checked on the real datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gdepth import config as schema
from gdepth import data, protocol
from gdepth.cli import config_dir
from gdepth.data import DATASETS, splits
from gdepth.sweep import collect

PRESETS = ("kipf2017", "nodenorm2021", "pairnorm2020", "dropedge2020", "gcnii2020", "bot2021")


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "name=x"])
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return protocol.apply(config)[0]


def load(dataset: dict, folders: dict, seed: int):
    """``data.load`` on plain values, typed as a cell types them (the dataset's own split
    unless one is given)."""
    values = {"split": DATASETS[dataset["name"]].default_split, **dataset}
    return data.load(schema.group("dataset", values), schema.DataConfig(**folders), seed)


def sizes(config: dict, seed: int, mirror: Path, cache: Path) -> tuple[int, int, int]:
    graph = load(config["dataset"], {"root": str(cache), "mirror": str(mirror)}, seed)
    masks = (graph.train_mask, graph.val_mask, graph.test_mask)
    assert not (masks[0] & masks[1]).any() and not (masks[0] & masks[2]).any()
    assert not (masks[1] & masks[2]).any()
    return tuple(int(m.sum()) for m in masks)  # type: ignore[return-value]


def class_counts(name: str, mirror: Path, cache: Path) -> torch.Tensor:
    graph = load({"name": name}, {"root": str(cache), "mirror": str(mirror)}, 0)
    return torch.bincount(graph.y, minlength=graph.num_classes)


def test_every_preset_is_listed_and_composes():
    stems = {p.stem for p in Path(config_dir(), "train").glob("*.yaml")}
    assert set(PRESETS) <= stems
    for preset in PRESETS:
        assert composed(f"train={preset}", "dataset=cora")["train"]["name"] == preset


@pytest.mark.parametrize(
    ("preset", "dataset", "expected"),
    [
        ("kipf2017", "cora", (140, 500, 1000)),
        ("gcnii2020", "cora", (140, 500, 1000)),
        ("bot2021", "cora", (140, 500, 1000)),
        ("bot2021", "citeseer", (120, 500, 1000)),
        ("bot2021", "coauthor_cs", (15 * 20, 15 * 30, 18333 - 15 * 50)),
        ("nodenorm2021", "cora", (140, 500, 1000)),
        ("nodenorm2021", "citeseer", (120, 500, 1000)),
        ("nodenorm2021", "coauthor_cs", (15 * 20, 15 * 30, 18333 - 15 * 50)),
        ("pairnorm2020", "cora", (140, 500, 2708 - 640)),
        ("pairnorm2020", "citeseer", (120, 500, 3327 - 620)),
        ("dropedge2020", "cora", (140, 500, 1000)),
    ],
)
def test_preset_split_sizes(preset, dataset, expected, mirror, data_cache):
    config = composed(f"train={preset}", f"dataset={dataset}")
    assert sizes(config, 0, mirror, data_cache) == expected


def test_nodenorm_splits_differ_per_seed_and_cycle_every_50(mirror, data_cache):
    config = composed("train=nodenorm2021", "dataset=cora")
    cache = {"root": str(data_cache), "mirror": str(mirror)}
    g0, g1, g50 = (load(config["dataset"], cache, s) for s in (0, 1, 50))
    assert not torch.equal(g0.val_mask, g1.val_mask)
    assert torch.equal(g0.train_mask, g50.train_mask) and torch.equal(g0.test_mask, g50.test_mask)
    assert torch.bincount(g0.y[g0.train_mask]).tolist() == [20] * 7
    assert "split=0" in g50.split


def test_nodenorm_preset_sets_their_model_and_training():
    config = composed("train=nodenorm2021", "dataset=coauthor_cs", "model=gcn_res")
    assert {k: config["model"][k] for k in ("hidden", "dropout", "dropout_layers")} == {
        "hidden": 64, "dropout": 0.8, "dropout_layers": "nodenorm"}
    train = config["train"]
    assert (train["l1_weight"], train["grad_clip"], train["epochs"], train["patience"]) == (
        1e-3, "adaptive", 400, None)
    assert config["dataset"]["normalize_features"] is True


def test_pairnorm_coauthor_split_is_3_10_87_per_class(mirror, data_cache):
    config = composed("train=pairnorm2020", "dataset=coauthor_cs")
    counts = class_counts("coauthor_cs", mirror, data_cache)
    train = int((counts * 3 // 100).sum())
    val = int((counts * 10 // 100).sum())
    got = sizes(config, 0, mirror, data_cache)
    # floor(frac * n_c) per class; float rounding of 0.03 * n may differ by one node per class
    assert abs(got[0] - train) <= 15 and abs(got[1] - val) <= 15
    assert sum(got) == 18333
    assert config["dataset"]["adjacency"] == "row"
    assert sizes(config, 0, mirror, data_cache) == sizes(config, 7, mirror, data_cache)


def test_fastgcn_split_is_dropedge_full_supervised(mirror, data_cache):
    cache = {"root": str(data_cache), "mirror": str(mirror)}
    cora = load({"name": "cora", "split": "fastgcn"}, cache, 0)
    assert (int(cora.train_mask.sum()), int(cora.val_mask.sum()),
            int(cora.test_mask.sum())) == (1208, 500, 1000)
    assert cora.train_mask[:1208].all() and cora.val_mask[1208:1708].all()
    citeseer = load({"name": "citeseer", "split": "fastgcn"}, cache, 0)
    n_ally = int(citeseer.test_mask.nonzero().min())
    assert n_ally == 2312  # len(ind.citeseer.allx)
    assert int(citeseer.train_mask.sum()) == n_ally - 500


def test_full_supervised_is_60_20_20_per_class(mirror, data_cache):
    cache = {"root": str(data_cache), "mirror": str(mirror)}
    counts = class_counts("cora", mirror, data_cache)
    spec = {"name": "cora", "split": "full_supervised", "num_splits": 10}
    g = load(spec, cache, 3)
    per_class = torch.bincount(g.y[g.train_mask], minlength=7)
    assert per_class.tolist() == [int(0.6 * int(c)) for c in counts]
    assert int(g.val_mask.sum()) == sum(int(0.2 * int(c)) for c in counts)
    assert int((g.train_mask | g.val_mask | g.test_mask).sum()) == 2708
    assert torch.equal(g.train_mask, load(spec, cache, 13).train_mask)
    assert not torch.equal(g.train_mask, load(spec, cache, 4).train_mask)


def test_random_counts_on_a_toy_label_vector():
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    train, val, test = splits.random_counts(y, 3, 1, val_size=4, test_size=2, seed=0)
    assert torch.bincount(y[train], minlength=3).tolist() == [1, 1, 1]
    assert (int(val.sum()), int(test.sum())) == (4, 2)
    with pytest.raises(ValueError, match="exceed the 7 nodes"):
        splits.random_counts(y, 3, 1, val_size=6, test_size=2, seed=0)


def test_unknown_override_key_names_the_valid_keys():
    config = composed("dataset=cora")
    config["train"]["dataset_overrides"] = {"cora": {"splitt": "public"}}
    with pytest.raises(ValueError, match=r"overrides\.cora\.splitt.*no key 'splitt'; valid: split"):
        protocol.apply(config)
    config["train"]["dataset_overrides"] = {}
    config["train"]["model_overrides"] = {"all": {"hiden": 3}}
    with pytest.raises(ValueError, match=r"model 'gcn' has no key 'hiden'; valid: hidden"):
        protocol.apply(config)


def test_the_record_holds_the_dataset_the_preset_imposed(cli_env, tmp_path):
    import subprocess
    import sys


    cmd = [sys.executable, "-m", "gdepth.cli", "run", "train=nodenorm2021", "dataset=cora",
           "model=gcn_res", "depth=2", "seeds=1", "train.epochs=3", "name=nn", "progress=false"]
    out = subprocess.run(cmd, cwd=tmp_path, env=cli_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    record = collect.load(tmp_path / "outputs" / "runs" / "nn")[0]
    assert record["config"]["dataset"]["val_size"] == 500
    assert record["config"]["model"]["dropout"] == 0.8
    assert record["seeds"][0]["split"] == "random_per_class(20/c, 500, 1000, split=0)"


# train=bot2021 per model and dataset, as read from github.com/VITA-Group/Deep_GCN_Benchmarking
# (commit 7aaf7564): options/configs/<model>.yml for the baselines, options/base_options.py and
# tricks/tricks_comb.py for the GCN backbone and every other model.
BOT = {
    ("gcnii", "cora"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": 0.01},
                        {"hidden": 64, "dropout": 0.6, "alpha": 0.1, "lamda": 0.5}),
    ("gcnii", "citeseer"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": 0.01},
                            {"hidden": 256, "dropout": 0.7, "alpha": 0.1, "lamda": 0.6}),
    ("gcnii", "pubmed"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": 5e-4},
                          {"hidden": 256, "dropout": 0.6, "alpha": 0.1, "lamda": 0.4}),
    ("appnp", "cora"): ({"lr": 0.01, "weight_decay_graph": None,
                         "weight_decay_groups": {"input": 5e-3, "output": 0.0}},
                        {"hidden": 64, "dropout": 0.5, "alpha": 0.1}),
    ("appnp", "pubmed"): ({"lr": 0.01, "weight_decay_graph": None,
                           "weight_decay_groups": {"input": 5e-3, "output": 0.0}},
                          {"hidden": 64, "dropout": 0.5, "alpha": 0.1}),
    ("jknet", "citeseer"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": None,
                             "weight_decay_groups": {}},
                            {"hidden": 16, "dropout": 0.5, "dropout_layers": "hidden",
                             "shared_dropout": True, "mode": "cat"}),
    ("sgc", "cora"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": None},
                      {"dropout": 0.6, "bias": False}),
    ("sgc", "citeseer"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": None},
                          {"dropout": 0.7}),
    ("gcn", "cora"): ({"lr": 0.005, "weight_decay": 5e-4, "weight_decay_graph": 0.01},
                      {"hidden": 64, "dropout": 0.6, "lamda": 0.5, "embedding_dropout": 0.6}),
    ("gcn", "citeseer"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": 0.01},
                          {"hidden": 256, "dropout": 0.7, "lamda": 0.6}),
    ("gcn", "pubmed"): ({"lr": 0.01, "weight_decay_graph": 0.01},
                        {"hidden": 256, "dropout": 0.5, "lamda": 0.5}),
    ("gcn_res", "citeseer"): ({"lr": 0.01, "weight_decay": 5e-4, "weight_decay_graph": None},
                              {"hidden": 256, "dropout": 0.7}),
}


@pytest.mark.parametrize(("model", "dataset"), sorted(BOT), ids=[f"{m}-{d}" for m, d in
                                                                  sorted(BOT)])
def test_bot2021_chooses_each_models_official_settings(model, dataset):
    config = composed("train=bot2021", f"dataset={dataset}", f"model={model}", "depth=32")
    train, model_keys = BOT[(model, dataset)]
    assert {k: config["train"][k] for k in train} == train
    assert {k: config["model"][k] for k in model_keys} == model_keys
    assert (config["train"]["epochs"], config["train"]["patience"],
            config["train"]["selection"]) == (1000, 100, "min_val_loss")


@pytest.mark.parametrize("model", ["gcnii", "appnp", "jknet", "sgc"])
def test_bot2021_builds_every_baselines_optimizer(model):
    """Each baseline gets an optimizer under train=bot2021 (APPNP, JKNet and SGC used to fail
    every cell: weight_decay_graph=0.01 and no graph layers)."""
    from gdepth import models
    from gdepth import train as training

    config = composed("train=bot2021", "dataset=cora", f"model={model}", "depth=4")
    net = models.build(schema.group("model", config["model"]), None, 4, 20, 3)
    optimizer = training.make_optimizer(net, schema.make(schema.TrainConfig, config["train"]))
    assert optimizer.defaults["lr"] == 0.01


def test_a_command_line_value_beats_the_bot2021_row():
    from gdepth import compose

    (cell,) = compose.cells(["train=bot2021", "dataset=pubmed", "model=gcnii", "depth=32",
                             "train.lr=0.02", "model.hidden=8",
                             "train.per_model.rows.gcnii.pubmed.lamda=0.3"], config_dir())
    assert (cell.config["train"]["lr"], cell.config["model"]["hidden"]) == (0.02, 8)
    assert cell.config["model"]["lamda"] == 0.3  # the row itself, edited
    assert cell.config["train"]["weight_decay_graph"] == 5e-4  # the rest of the row
