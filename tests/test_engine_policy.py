"""gdepth.engine.policy: engine=auto's batch size is the measured one (the committed benchmark
result, by the stated rule), capped by memory; engine=batched and engine=loop unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gdepth import config, engine
from gdepth.engine import memory, policy

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
CPU = torch.device("cpu")
CORA_NODES = 2708


def test_each_table_is_the_rule_applied_to_its_committed_measurement():
    """One table per committed ``batch_policy_<graph>.json``, each model's entry ``choose`` of
    its rows (all its measured depths), and every measured graph's node count known."""
    found = {}
    for path in sorted(RESULTS.glob("batch_policy_*.json")):
        result = json.loads(path.read_text())["results"]
        by_model: dict[str, list[dict[int, float]]] = {}
        for row in result["rows"]:
            by_model.setdefault(row["model"], []).append(
                {int(b): t for b, t in row["cpu_epoch_s"].items()})
        found[result["dataset"]] = {m: policy.choose(rows) for m, rows in by_model.items()}
    assert set(found) == {"cora", "coauthor_cs"}
    assert policy.CPU_BATCH == found
    assert set(policy.MEASURED_NODES) == set(found)


def test_choose_takes_the_largest_batch_within_the_tolerance_of_the_fastest():
    assert policy.choose({1: 1.0, 2: 0.9, 5: 0.8, 10: 0.83}) == 10  # 0.83 <= 1.05 · 0.8
    assert policy.choose({1: 1.0, 2: 0.9, 5: 0.8, 10: 0.85}) == 5
    assert policy.choose({1: 0.5, 2: 0.6, 5: 0.7, 10: 0.9}) == 1
    assert policy.choose({1: 0.5, 2: 0.6}, tolerance=0.25) == 2


def test_choose_over_several_depths_takes_the_largest_batch_within_the_tolerance_at_each():
    # depth 8 alone would take 1, depth 16 alone 2 (1.01 of its fastest): 2 is 1.14 at depth 8
    assert policy.choose([{1: 0.82, 2: 0.94, 5: 0.93}, {1: 1.68, 2: 1.70, 5: 1.86}]) == 1
    # 2 is within 5 % at both depths (1.04 and 1.00), 5 at neither
    assert policy.choose([{1: 2.28, 2: 2.36, 5: 2.86}, {1: 15.5, 2: 15.4, 5: 28.4}]) == 2
    # no batch within the tolerance at both: the smallest worst ratio (2: 1.2 against 1.5)
    assert policy.choose([{1: 1.0, 2: 1.2, 5: 1.5}, {1: 1.5, 2: 1.2, 5: 1.0}]) == 2
    assert policy.choose([{1: 1.0, 2: 0.9}]) == policy.choose({1: 1.0, 2: 0.9}) == 2


def test_a_graph_takes_the_table_of_the_measured_graph_nearest_in_log_nodes():
    assert policy.nearest_measured(2708) == policy.nearest_measured(3327) == "cora"
    assert policy.nearest_measured(18333) == policy.nearest_measured(169343) == "coauthor_cs"
    cut = math.sqrt(2708 * 18333)  # the geometric mean: equally far from both in log nodes
    assert policy.nearest_measured(math.floor(cut)) == "cora"
    assert policy.nearest_measured(math.ceil(cut)) == "coauthor_cs"
    assert policy.nearest_measured(1) == policy.nearest_measured(0) == "cora"
    # the models whose measured batch differs between the two graphs get each graph's own
    differs = [m for m in policy.CPU_BATCH["cora"]
               if policy.CPU_BATCH["cora"][m] != policy.CPU_BATCH["coauthor_cs"].get(m)]
    assert differs
    for model in differs:
        assert policy.preferred_seeds(model, CPU, 2708) == policy.CPU_BATCH["cora"][model]
        assert (policy.preferred_seeds(model, CPU, 18333)
                == policy.CPU_BATCH["coauthor_cs"][model])


def _cfg(model: str, **top):
    return config.typed({"model": {"name": model}, "depth": 8, "norm": {"name": "none"},
                         "dataset": {"name": "cora", "split": "public"},
                         "train": {"name": "default"}, **top})


def _graphs(n: int, nodes: int = 5) -> list:
    """``n`` seeds' graphs sharing features and labels; ``nodes`` picks the table (5: Cora's)."""
    x, y = torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)
    return [SimpleNamespace(x=x, y=y, num_nodes=nodes) for _ in range(n)]


@pytest.fixture()
def memory_for(monkeypatch):
    """Make the memory at hand room for exactly ``k`` seeds of a cell."""
    def room(cfg, k: int) -> None:
        per_seed = memory.seed_bytes(cfg, 5, 100)
        monkeypatch.setattr(memory, "available_bytes",
                            lambda device: int((k + 0.5) * per_seed / memory.BUDGET_SHARE))
    return room


@pytest.mark.parametrize("model", ["jknet", "sgc", "gcn_res"])
def test_auto_takes_the_measured_batch_capped_by_memory_and_batched_takes_what_fits(
        model, memory_for):
    preferred = policy.CPU_BATCH["cora"][model]
    auto, batched = _cfg(model), _cfg(model, engine="batched")
    memory_for(auto, 10)
    assert engine.batch_size(auto, _graphs(10), 100, CPU) == (min(preferred, 10), None)
    assert engine.batch_size(batched, _graphs(10), 100, CPU) == (10, None)
    assert engine.batch_size(auto, _graphs(10), 100, CPU, max_seeds=1) == (1, None)  # loop
    memory_for(auto, 1)  # memory caps the preference
    assert engine.batch_size(auto, _graphs(10), 100, CPU) == (1, None)
    memory_for(auto, 10)
    assert engine.batch_size(auto, _graphs(3), 100, CPU)[0] == min(preferred, 3)


def test_auto_on_a_larger_graph_takes_that_graph_s_measured_batch(monkeypatch):
    """The engine hands the graph's node count to the policy: the same model and seeds get
    Cora's batch on a Cora-sized graph and Coauthor CS's on a CS-sized one."""
    monkeypatch.setattr(memory, "seeds_per_batch", lambda *args, **kwargs: 10)
    cora, cs = policy.CPU_BATCH["cora"], policy.CPU_BATCH["coauthor_cs"]
    model = next(m for m in cora if cs.get(m) not in (None, cora[m]))
    cfg = _cfg(model)
    assert engine.batch_size(cfg, _graphs(10, 2708), 100, CPU) == (cora[model], None)
    assert engine.batch_size(cfg, _graphs(10, 18333), 100, CPU) == (cs[model], None)


def test_an_explicit_seeds_per_batch_wins_over_the_policy(memory_for):
    cfg = _cfg("jknet", seeds_per_batch=4)
    memory_for(cfg, 10)
    assert policy.CPU_BATCH["cora"]["jknet"] != 4
    assert engine.batch_size(cfg, _graphs(10), 100, CPU) == (4, None)


def test_off_the_cpu_or_for_an_unmeasured_model_auto_batches_what_fits():
    assert policy.preferred_seeds("jknet", torch.device("cuda"), CORA_NODES) is None
    assert policy.preferred_seeds("bottleneck", CPU, CORA_NODES) is None
    assert policy.preferred_seeds("jknet", CPU, CORA_NODES) == policy.CPU_BATCH["cora"]["jknet"]
