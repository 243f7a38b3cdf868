"""gdepth.config: the typed schemas a cell reads (``typed``, ``make``, ``schema``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gdepth import config
from gdepth.paths import config_dir

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted(ROOT.glob("results/sweeps/*/records/*.json"))
OPTIONS = [(group, path.stem) for group in ("dataset", "model", "norm", "tracking")
           for path in sorted(Path(config_dir(), group).glob("*.yaml"))]


@pytest.fixture(scope="module")
def composed() -> dict[tuple[str, str], object]:
    from gdepth import compose as gdepth_compose

    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return {(group, name): compose("config", overrides=[f"{group}={name}", "name=x"])[group]
                for group, name in OPTIONS}


@pytest.mark.parametrize(("group", "name"), OPTIONS, ids=lambda v: v)
def test_each_yaml_option_composes_to_the_schema_the_cell_types_it_with(composed, group, name):
    """The YAML's defaults list and config.SCHEMAS name the same schema, so a cell types its
    resolved config (plain values) as Hydra typed it when composing."""
    node = composed[(group, name)]
    assert OmegaConf.get_type(node) is config.schema(group, name)
    typed = config.group(group, OmegaConf.to_container(node, resolve=True))
    assert typed == OmegaConf.to_object(node)


def test_the_table_names_only_options_that_exist():
    for group, names in config.SCHEMAS.items():
        assert set(names) <= {n for g, n in OPTIONS if g == group}, group


@pytest.mark.parametrize("path", RECORDS[:8], ids=lambda p: p.stem)
def test_a_committed_records_config_types_without_loss(path):
    """The resolved config a record stores becomes the dataclasses and back, value for value:
    typing changes no value (enums read back as their names) and adds no key but the options
    added after the record was written, at their neutral value (records.NEUTRAL: what the
    cell computed before the option existed)."""
    from gdepth.sweep.records import NEUTRAL

    stored = json.loads(path.read_text())["config"]
    typed = config.typed(stored)
    for group in ("dataset", "model", "norm", "train", "diagnostics", "data"):
        back = OmegaConf.to_container(OmegaConf.structured(getattr(typed, group)),
                                      enum_to_str=True)
        added = {k for k in set(back) - set(stored[group])
                 if f"{group}.{k}" in NEUTRAL and back[k] == NEUTRAL[f"{group}.{k}"]}
        assert {k: v for k, v in back.items() if k not in added} == stored[group], group
    assert (typed.depth, typed.seeds, str(typed.engine)) == (
        stored["depth"], stored["seeds"], stored["engine"])


def test_make_converts_and_names_a_bad_key_or_value_in_one_line():
    train = config.make(config.TrainConfig, name="t", lr=1, selection="last")
    assert train.lr == 1.0 and isinstance(train.lr, float)
    assert train.selection is config.Selection.last and f"{train.selection}" == "last"
    assert train.grad_clip_window == 50  # the schema's default: the only place it is written
    with pytest.raises(ValueError, match=r"^GCNConfig.hiden: Key 'hiden' not in 'GCNConfig'$"):
        config.model("gcn", hiden=8)
    with pytest.raises(ValueError, match=r"^TrainConfig.lr: Value 'fast' of type 'str' could "
                                         r"not be converted to Float$"):
        config.make(config.TrainConfig, name="t", lr="fast")
    with pytest.raises(ValueError, match=r"^GdepthConfig.depht: Key 'depht' not in"):
        config.typed({"dataset": {"name": "csbm", "split": "random_per_class"},
                      "model": {"name": "gcn"}, "norm": {"name": "none"},
                      "train": {"name": "t"}, "depht": 4})


def test_options_without_their_own_schema_use_the_groups_base():
    assert type(config.model("gcn_res")) is config.ModelConfig
    assert type(config.model("gcnii_star", alpha=0.2)) is config.GCNIIConfig
    assert type(config.norm("batchnorm")) is config.NormConfig
    assert type(config.dataset("cora", split="public")) is config.DatasetConfig
