"""Cell keys do not change (issue 17): a record written before a refactor still resumes.

The keys below were computed by gdepth at commit 1d1170a (before the seed-native models); a
change to what enters a cell's identity (``plan.cell_identity``) that re-keys any of them makes
a resumed sweep run every such cell again. The committed studies under ``results/sweeps`` are
checked too: each record's key is recomputed from its own overrides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from gdepth import compose as gdepth_compose
from gdepth.paths import config_dir
from gdepth.sweep import plan

ROOT = Path(__file__).resolve().parents[1]
PINNED = [
    (["model=gcn", "depth=2"], "c6c09a39e0e113dd"),
    (["model=gcn_res", "norm=nodenorm", "depth=16", "seeds=5"], "e76d115c1fc22c4a"),
    (["model=gcn", "model.skip=initial", "model.identity_mapping=true", "depth=8"],
     "a8ca52193bccce43"),
    (["model=appnp", "depth=10", "++train.weight_decay_groups={input: 0.005}"], "b65843acd6052b9d"),
    (["model=sgc", "depth=4", "dataset=cora"], "5f5776d0e4b84334"),
    (["model=sign", "depth=3", "norm=batchnorm"], "79c3ce63afd61eac"),
    (["model=jknet", "model.mode=lstm", "depth=6"], "1ac68350280b09c7"),
    (["model=gcnii", "depth=32", "train=gcnii2020"], "66e7dddcc2fa8567"),
    (["model=gcnii_star", "depth=16"], "5d550c55cc9c67e9"),
    (["model=incepgcn", "depth=8", "train.dropedge=0.3"], "a841f93d35dfafcd"),
    (["model=gat", "depth=4", "norm=pairnorm"], "06cb0446f2cfba02"),
    (["model=gin", "depth=4", "norm=groupnorm"], "f2ca314286edb5a5"),
    (["model=ggnn", "depth=4"], "140888fac2cd8aa9"),
    (["model=mlp", "depth=3", "norm=layernorm"], "c5e4edae65c2d27d"),
    (["model=resgcn", "depth=16", "engine=loop"], "6d51edce439d103b"),
    (["model=bottleneck", "dataset=tree_match", "depth=4"], "a87659a6f51a5c98"),
]


def _key(overrides: list[str]) -> str:
    gdepth_compose.register()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return plan.cell_identity(cfg, list(overrides))[0]


@pytest.mark.parametrize("overrides, key", PINNED, ids=[" ".join(o) for o, _ in PINNED])
def test_representative_cell_keys_are_pinned(overrides, key):
    assert _key(overrides) == key


# Studies whose protocol preset was corrected after they ran: their records keep the keys of the
# old preset, which no command composes any more. Kept for comparison, never resumed; each entry
# says exactly what changed, and the test below checks that every record of it has the old value.
SUPERSEDED = {
    "seed_table_cora_io": ("model", "dropout_layers", "io"),  # nodenorm2021: io -> nodenorm
}


def _committed() -> list[Path]:
    return sorted(p for p in ROOT.glob("results/sweeps/*/records/*.json")
                  if p.parent.parent.name not in SUPERSEDED)


@pytest.mark.parametrize("study", sorted(SUPERSEDED))
def test_superseded_studies_differ_only_by_the_corrected_value(study):
    group, key, old = SUPERSEDED[study]
    paths = sorted((ROOT / "results" / "sweeps" / study / "records").glob("*.json"))
    assert paths, f"results/sweeps/{study} has no records"
    for path in paths:
        record = json.loads(path.read_text())
        assert record["config"][group][key] == old, path.name


def _rekeyed(paths: list[Path]) -> list[str]:
    """The records of ``paths`` whose key, recomputed from their overrides, has changed."""
    wrong = []
    for path in paths:
        record = json.loads(path.read_text())
        if _key(record["overrides"]) != record["key"]:
            wrong.append(path.name)
    return wrong


def _one_per_shape(paths: list[Path]) -> list[Path]:
    """One record per study and command-line shape: the override names, with the values of
    the config-group choices (``model=gin``, ``norm=…``, ``train=…``: each composes other
    files) but not of plain keys (depths, seeds, a search's trial values), so every kind of
    command line the studies used is recomposed in a number of composes that does not grow
    with the depths and trials run."""
    shapes: dict[tuple, Path] = {}
    for path in paths:
        names = tuple(o if "." not in o.partition("=")[0] and not o.startswith(
            ("depth=", "seeds=", "threads=", "out_dir=", "name=")) else o.partition("=")[0]
            for o in json.loads(path.read_text())["overrides"])
        shapes.setdefault((path.parent.parent.name, names), path)
    return sorted(shapes.values())


def test_committed_records_keep_their_keys():
    """One committed record of each command-line shape: the default suite's check (a Hydra
    compose each); the slow test below recomposes every record."""
    paths = _committed()
    assert paths, "no committed study records found under results/sweeps"
    sample = _one_per_shape(paths)
    assert len({p.parent.parent.name for p in sample}) == len(
        {p.parent.parent.name for p in paths})  # every study is in the sample
    wrong = _rekeyed(sample)
    assert not wrong, f"re-keyed committed records: {wrong}"


@pytest.mark.slow
def test_every_committed_record_keeps_its_key():
    wrong = _rekeyed(_committed())
    assert not wrong, f"re-keyed committed records: {wrong}"


def test_committed_searches_keep_their_study_keys():
    """A searched cell's key names its study (``search/<key>.journal``): options added to the
    search (its pruner) must not re-key it, or a resumed study would start again."""
    summaries = sorted(ROOT.glob("results/sweeps/*/search/*.json"))
    assert summaries, "no committed search summaries found under results/sweeps"
    wrong = []
    for path in summaries:
        summary = json.loads(path.read_text())
        if _key(summary["base_overrides"]) != summary["study"]:
            wrong.append(path.name)
    assert not wrong, f"re-keyed committed studies: {wrong}"


def test_a_pruner_keys_its_study_apart():
    """A study with a pruner is another study (other trials end pruned); without one (the
    default) the key is that of the search before pruners existed."""
    base = ["model=gcn_res", "depth=4", "search=default"]
    assert _key([*base, "search.pruner=none"]) == _key(base)
    assert _key([*base, "search.pruner=median"]) != _key(base)
