"""What a command line will run (gdepth/compose.py, gdepth/protocol.py): command-line values
beat every train preset's protocol entries, bad values fail at compose time in one line, and
``--cfg`` / ``--help`` / ``--info`` / ``--dry-run`` show it without writing anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gdepth import compose, protocol
from gdepth.cli import config_dir
from gdepth.sweep import collect

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
PRESETS = sorted(p.stem for p in Path(config_dir(), "train").glob("*.yaml"))


def gdepth(args, env, cwd, timeout=300):
    return subprocess.run([*GDEPTH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def other(value):
    """A value of the same type that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 3
    if isinstance(value, float):
        return round(value / 2 + 0.013, 6)
    return None  # strings: not every key has a second valid choice; numbers cover the rule


def preset_entries():
    """(preset, section, entry, key, preset value) for every numeric / boolean entry."""
    out = []
    for preset in PRESETS:
        spec = OmegaConf.to_container(OmegaConf.load(Path(config_dir(), "train",
                                                          f"{preset}.yaml")))
        for section, field in protocol.SECTIONS.items():
            for entry, values in (spec.get(field) or {}).items():
                for key, value in (values or {}).items():
                    if other(value) is not None:
                        out.append((preset, section, entry, key, value))
    return out


ENTRIES = preset_entries()


def test_every_preset_with_protocol_entries_is_covered():
    covered = {e[0] for e in ENTRIES}
    for preset in PRESETS:
        spec = OmegaConf.load(Path(config_dir(), "train", f"{preset}.yaml"))
        if spec.get("model_overrides") or spec.get("dataset_overrides"):
            assert preset in covered, preset


@pytest.mark.parametrize(("preset", "section", "entry", "key", "value"), ENTRIES,
                         ids=[f"{p}-{s}.{e}.{k}" for p, s, e, k, _ in ENTRIES])
def test_a_command_line_value_beats_the_preset(preset, section, entry, key, value):
    group = {"dataset": "cora", "model": "gcn"}
    if entry != protocol.WILDCARD:
        group[section] = entry
    base = [f"train={preset}", f"dataset={group['dataset']}", f"model={group['model']}",
            "depth=4"]
    (plain,) = compose.cells(base, config_dir())
    assert plain.config[section][key] == value  # the preset applies when nothing says else
    wanted = other(value)
    (mine,) = compose.cells([*base, f"{section}.{key}={wanted}"], config_dir())
    assert mine.config[section][key] == wanted
    assert key not in mine.applied.get(section, {})
    assert mine.key != plain.key  # another cell: never skipped as the preset's "done" one


def test_the_issue_example_keeps_every_command_line_value():
    (cell,) = compose.cells(["dataset=citeseer", "model=gcnii", "train=gcnii2020", "depth=32",
                             "model.hidden=256", "model.lamda=0.6", "model.dropout=0.7"],
                            config_dir())
    model = cell.config["model"]
    assert (model["hidden"], model["lamda"], model["dropout"]) == (256, 0.6, 0.7)
    assert model["alpha"] == 0.1 and cell.config["dataset"]["normalize_features"] is True
    assert cell.applied["model"] == {"alpha": 0.1}


def test_explicit_keys_name_what_the_command_line_sets():
    assert protocol.explicit_keys(["model=gcn", "model.hidden=4", "+dataset.x=1",
                                   "++model.dropout=0.1", "~model.lamda", "depth=2"]) == {
        "model", "model.hidden", "dataset.x", "model.dropout", "depth"}


def test_cells_expand_comma_lists_and_depths_in_hydra_order():
    found = compose.cells(["model=gcn,gcn_res", "depth=2,4,8", "seeds=2"], config_dir())
    assert [(c.config["model"]["name"], c.config["depth"]) for c in found] == [
        ("gcn", 2), ("gcn", 4), ("gcn", 8), ("gcn_res", 2), ("gcn_res", 4), ("gcn_res", 8)]
    assert len({c.key for c in found}) == 6


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seeds=0"], "seeds=0: must be a whole number >= 1"),
        (["seeds=-1"], "seeds=-1: must be a whole number >= 1"),
        (["seeds=2,0"], "seeds=0: must be a whole number >= 1"),
        (["seeds_per_job=0"], "seeds_per_job=0: must be a whole number >= 1 (or null)"),
        (["threads=-2"], "threads=-2"),
        (["+depht=4"], "has no key 'depht' (did you mean 'depth'?)"),
        (["+model.hiden=4"], "'model' (GCNConfig) has no key 'hiden' (did you mean 'hidden'?)"),
        (["model.hiden=4"], "Key 'hiden' not in 'GCNConfig' (did you mean 'hidden'?)"),
        (["model=transformer"], "Could not find 'model/transformer'; valid: appnp,"),
        (["train.lr=fast"], "Value 'fast' of type 'str' could not be converted to Float"),
    ],
)
def test_bad_values_fail_at_compose_time_in_one_line(overrides, message):
    with pytest.raises(compose.ComposeError) as err:
        compose.cells([*overrides, "depth=2"], config_dir())
    assert message in str(err.value) and "\n" not in str(err.value)


def test_adding_into_free_form_dicts_and_groups_is_allowed():
    (cell,) = compose.cells(["train=dropedge2020", "+train.model_overrides.gcn.dropout=0.3",
                             "+launcher=local", "depth=2"], config_dir())
    assert cell.config["model"]["dropout"] == 0.3


SHOWS = [
    ["sweep", "--help"], ["sweep", "-h"], ["run", "--hydra-help"], ["sweep", "--info"],
    ["sweep", "--info", "defaults", "depth=2..8"], ["run", "--cfg", "job", "depth=2"],
    ["sweep", "depth=2", "name=x", "--cfg", "job"], ["sweep", "--cfg", "job", "depth=2..8"],
    ["sweep", "--cfg", "hydra", "model=gcn,gcn_res"], ["run", "--cfg", "all", "-p", "model"],
    ["sweep", "model=gcn,gcn_res", "depth=2..4", "--dry-run"],
    # refused: exit 2, nothing written either
    ["sweep", "seeds=0", "depth=2"], ["sweep", "+depht=4"], ["run", "model=transformer"],
    ["sweep", "seeds=-1", "depth=2", "--cfg", "job"],
]


@pytest.mark.parametrize("args", SHOWS, ids=[" ".join(a) for a in SHOWS])
def test_showing_or_refusing_writes_nothing(args, cli_env, tmp_path):
    out = gdepth(args, cli_env, tmp_path)
    refused = any(a in args for a in ("seeds=0", "+depht=4", "model=transformer", "seeds=-1"))
    assert out.returncode == (2 if refused else 0), out.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # no outputs/ folder, no timestamped sweep
    if refused:
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    elif "--help" in args or "-h" in args:
        assert "gdepth run|sweep [overrides]" in out.stdout and "--dry-run" in out.stdout
        assert "model: appnp, bottleneck" in out.stdout  # the config groups, from Hydra
    elif "--cfg" in args and "hydra" not in args:
        assert "name: gcn" in out.stdout or "hidden:" in out.stdout


def test_cfg_job_prints_what_will_run(cli_env, tmp_path):
    out = gdepth(["sweep", "dataset=citeseer", "model=gcnii", "train=gcnii2020", "depth=32",
                  "model.hidden=256", "--cfg", "job"], cli_env, tmp_path)
    assert out.returncode == 0, out.stderr
    shown = OmegaConf.create(out.stdout)
    assert shown.model.hidden == 256  # the command line beats the preset's 64
    assert shown.model.dropout == 0.6 and shown.dataset.normalize_features is True  # preset
    assert shown.depth == 32 and "hydra" not in shown


def test_cfg_lists_every_cell_of_a_sweep(cli_env, tmp_path):
    out = gdepth(["sweep", "model=gcn,gcn_res", "depth=2..4", "--cfg", "job", "-p", "depth"],
                 cli_env, tmp_path)
    assert out.returncode == 0, out.stderr
    docs = out.stdout.split("---\n")
    assert len(docs) == 4
    assert [d.splitlines()[1] for d in docs] == ["2", "4", "2", "4"]
    assert docs[2].startswith("# cell 3/4: csbm gcn_res·none L=2  key ")


SMALL = ["dataset.num_nodes=200", "dataset.num_classes=3", "train.epochs=5", "progress=false",
         "seeds=1"]


def test_dry_run_keys_equal_the_records_a_sweep_writes(cli_env, tmp_path):
    args = ["sweep", "model=gcnii,gcnii_star", "train=gcnii2020", "model.hidden=16", "depth=2",
            "name=dry", *SMALL]
    before = gdepth([*args, "--dry-run"], cli_env, tmp_path)
    assert before.returncode == 0, before.stderr
    assert not (tmp_path / "outputs").exists()
    listed = [line.split()[0] for line in before.stdout.splitlines()
              if not line.startswith(" ")]
    assert len(listed) == 2 and before.stdout.count(" to run") == 2
    assert "hidden=16" in before.stdout and "train=gcnii2020 sets model: dropout=0.6" in \
        before.stdout
    run = gdepth(args, cli_env, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    written = collect.load(tmp_path / "outputs" / "sweeps" / "dry")
    assert sorted(r["key"] for r in written) == sorted(listed)
    assert {r["config"]["model"]["hidden"] for r in written} == {16}  # the command line won
    after = gdepth([*args, "--dry-run"], cli_env, tmp_path)
    assert after.stdout.count(" done") == 2 and "2 cells: 2 done, 0 to run" in after.stderr
