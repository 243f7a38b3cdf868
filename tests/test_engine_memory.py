"""gdepth.engine.memory: how many seeds one batch of the batched engine trains."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from gdepth.engine import memory


def cfg(model: str = "gcn_res", depth: int = 64, hidden: int = 64, **top):
    return OmegaConf.create({"model": {"name": model, "hidden": hidden}, "depth": depth,
                             "seeds_per_batch": None, **top})


def test_seed_bytes_counts_products_nodes_width_and_parameters():
    per_seed = memory.seed_bytes(cfg(depth=4, hidden=16), num_nodes=100, parameters=1000)
    assert per_seed == (memory.ACTIVATION_COPIES * 5 * 100 * 16 * 4
                        + memory.PARAMETER_COPIES * 1000 * 4)
    # IncepGCN keeps (L-2)(L-1)/2 + 2 convolutions' products: 1955 at L = 64
    assert memory.products(cfg("incepgcn", depth=64)) == 1955
    assert memory.products(cfg("sign", depth=8)) == 10


def test_seeds_per_batch_fits_the_budget_share_of_the_memory_at_hand():
    c = cfg()
    one = memory.seed_bytes(c, 169_343, 300_000)
    # room for exactly 3 seeds within the budget share
    free = int(3.5 * one / memory.BUDGET_SHARE)
    assert memory.seeds_per_batch(c, 10, 169_343, 300_000, torch.device("cpu"), free) == 3
    assert memory.seeds_per_batch(c, 2, 169_343, 300_000, torch.device("cpu"), free) == 2
    # not even one seed fits: one at a time, never zero
    assert memory.seeds_per_batch(c, 10, 169_343, 300_000, torch.device("cpu"), 1) == 1


def test_an_explicit_seeds_per_batch_wins_and_a_bad_one_names_itself():
    c = cfg(seeds_per_batch=4)
    assert memory.seeds_per_batch(c, 10, 2708, 1000, torch.device("cpu"), 1) == 4
    assert memory.seeds_per_batch(c, 3, 2708, 1000, torch.device("cpu"), 1) == 3
    with pytest.raises(ValueError, match=r"seeds_per_batch=-1: valid: a positive integer"):
        memory.seeds_per_batch(cfg(seeds_per_batch=-1), 3, 2708, 1000, torch.device("cpu"))


def test_the_cpu_memory_at_hand_is_read_on_linux():
    free = memory.available_bytes(torch.device("cpu"))
    if free is None:
        pytest.skip("no /proc/meminfo or cgroup memory files here")
    assert 0 < free < 2**50
