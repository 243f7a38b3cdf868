"""gdepth.engine.policy: engine=auto's batch size is the measured one (the committed benchmark
result, by the stated rule), capped by memory; engine=batched and engine=loop unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gdepth import config, engine
from gdepth.engine import memory, policy

RESULT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "batch_policy_cora.json"
CPU = torch.device("cpu")


def test_the_table_is_the_rule_applied_to_the_committed_measurement():
    rows = json.loads(RESULT.read_text())["results"]["rows"]
    measured = {row["model"]: policy.choose({int(b): t for b, t in row["cpu_epoch_s"].items()})
                for row in rows}
    assert policy.CPU_BATCH == measured


def test_choose_takes_the_largest_batch_within_the_tolerance_of_the_fastest():
    assert policy.choose({1: 1.0, 2: 0.9, 5: 0.8, 10: 0.83}) == 10  # 0.83 <= 1.05 · 0.8
    assert policy.choose({1: 1.0, 2: 0.9, 5: 0.8, 10: 0.85}) == 5
    assert policy.choose({1: 0.5, 2: 0.6, 5: 0.7, 10: 0.9}) == 1
    assert policy.choose({1: 0.5, 2: 0.6}, tolerance=0.25) == 2


def _cfg(model: str, **top):
    return config.typed({"model": {"name": model}, "depth": 8, "norm": {"name": "none"},
                         "dataset": {"name": "cora", "split": "public"},
                         "train": {"name": "default"}, **top})


def _graphs(n: int) -> list:
    x, y = torch.zeros(5, 3), torch.zeros(5, dtype=torch.long)
    return [SimpleNamespace(x=x, y=y, num_nodes=5) for _ in range(n)]


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
    preferred = policy.CPU_BATCH[model]
    auto, batched = _cfg(model), _cfg(model, engine="batched")
    memory_for(auto, 10)
    assert engine.batch_size(auto, _graphs(10), 100, CPU) == (min(preferred, 10), None)
    assert engine.batch_size(batched, _graphs(10), 100, CPU) == (10, None)
    assert engine.batch_size(auto, _graphs(10), 100, CPU, max_seeds=1) == (1, None)  # loop
    memory_for(auto, 1)  # memory caps the preference
    assert engine.batch_size(auto, _graphs(10), 100, CPU) == (1, None)
    memory_for(auto, 10)
    assert engine.batch_size(auto, _graphs(3), 100, CPU)[0] == min(preferred, 3)


def test_an_explicit_seeds_per_batch_wins_over_the_policy(memory_for):
    cfg = _cfg("jknet", seeds_per_batch=4)
    memory_for(cfg, 10)
    assert policy.CPU_BATCH["jknet"] != 4
    assert engine.batch_size(cfg, _graphs(10), 100, CPU) == (4, None)


def test_off_the_cpu_or_for_an_unmeasured_model_auto_batches_what_fits():
    assert policy.preferred_seeds("jknet", torch.device("cuda")) is None
    assert policy.preferred_seeds("bottleneck", CPU) is None
    assert policy.preferred_seeds("jknet", CPU) == policy.CPU_BATCH["jknet"]
