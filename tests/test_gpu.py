"""The CUDA paths (marker ``gpu``): they run wherever torch sees a CUDA device and skip elsewhere.

* ``adjacency=auto`` stores the adjacency dense on CUDA up to ``DENSE_AUTO_MAX_NODES`` nodes
  (:func:`gdepth.nn.propagation.adjacency_storage`), and the dense product is the sparse one;
* the free-memory estimate reads ``torch.cuda.mem_get_info`` (:mod:`gdepth.engine.memory`), and
  its per-seed bytes bound what a seed really adds to a batch's peak on the GPU;
* a real CUDA out of memory (the caching allocator's own error, under a per-process memory cap)
  is recorded as status ``oom`` with its message, and the next cell runs.

``benchmarks/gpu_check.sh`` runs this file on a lent GPU.
"""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gdepth import cell, data, engine
from gdepth.cli import config_dir
from gdepth.engine import memory, slices
from gdepth.nn.propagation import DENSE_AUTO_MAX_NODES, adjacency_storage, propagation

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]
CUDA = torch.device("cuda")


def composed(mirror, data_cache, *overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[
            "name=g", "progress=false", "device=cuda", "dataset=cora", "checkpoint_every=null",
            f"data.root={data_cache}", f"data.mirror={mirror}", *overrides])
    return cfg


def identity(n: int, device: torch.device) -> torch.Tensor:
    """An ``n × n`` sparse identity (what the rule reads is the node count and the device)."""
    index = torch.arange(n, device=device).repeat(2, 1)
    return torch.sparse_coo_tensor(index, torch.ones(n, device=device), (n, n)).coalesce()


def test_auto_adjacency_is_dense_on_cuda_up_to_the_node_limit_and_sparse_elsewhere():
    assert adjacency_storage("auto", identity(DENSE_AUTO_MAX_NODES, CUDA)) == "dense"
    assert adjacency_storage("auto", identity(DENSE_AUTO_MAX_NODES + 1, CUDA)) == "sparse"
    assert adjacency_storage("auto", identity(DENSE_AUTO_MAX_NODES, torch.device("cpu"))) == (
        "sparse")
    assert adjacency_storage("sparse", identity(16, CUDA)) == "sparse"  # asked: kept


def test_dense_and_sparse_propagation_of_cora_agree_on_cuda(mirror, data_cache, float64):
    cfg = composed(mirror, data_cache)
    graph = data.load(cfg.dataset, cfg.data, 0)
    _, adj, _ = cell.prepare(graph, OmegaConf.to_container(cfg.dataset), CUDA)
    adj = adj.to(torch.float64)
    z = torch.randn(adj.shape[0], 32, device=CUDA, dtype=torch.float64)
    dense, sparse = propagation(adj, "dense")(z), propagation(adj, "sparse")(z)
    # float64: each entry sums at most max-degree + 1 products of weights <= 1 with |z| < ~6,
    # so the two summation orders differ by far less than 1e-10
    torch.testing.assert_close(dense, sparse, rtol=0, atol=1e-10)


def test_a_cora_cell_on_cuda_stores_the_adjacency_dense_and_learns(mirror, data_cache, tmp_path):
    record = cell.run_cell(composed(mirror, data_cache, "model=gcn", "depth=2", "seeds=2",
                                    "train.epochs=50"), tmp_path)
    assert record["status"] == "ok", record["error"]
    assert record["device"].startswith("cuda")
    assert record["engine"]["adjacency"] == "dense"  # auto, 2,708 nodes on CUDA
    assert record["engine"]["seeds_per_batch"] == 2
    assert record["peak_cuda_mb"] > 29  # at least the dense 2708² fp32 adjacency (29.3 MB)
    # a 2-layer GCN on Cora's public split reaches ~80 % in 50 epochs; chance is 1/7
    assert record["summary"]["test_acc"]["mean"] > 0.7


def test_free_memory_is_read_from_the_device_and_sets_the_seeds_per_batch(mirror, data_cache):
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(CUDA)
    seen = memory.available_bytes(CUDA)
    assert 0 < seen <= total
    assert abs(seen - free) <= 64 * 2**20  # another process on the GPU may move it a little
    block = torch.empty(512 * 2**20, dtype=torch.uint8, device=CUDA)
    assert memory.available_bytes(CUDA) <= seen - 512 * 2**20 + 64 * 2**20
    del block
    torch.cuda.empty_cache()
    cfg = composed(mirror, data_cache, "model=gcn_res", "depth=16", "seeds=1000000")
    per_seed = memory.seed_bytes(cfg, 2708, 100_000)
    before = memory.available_bytes(CUDA)
    step = memory.seeds_per_batch(cfg, 1_000_000, 2708, 100_000, CUDA)
    after = memory.available_bytes(CUDA)
    fits = sorted(int(memory.BUDGET_SHARE * f) // per_seed for f in (before, after))
    assert fits[0] - 1 <= step <= fits[1] + 1  # from the memory read just then


def test_the_per_seed_estimate_bounds_what_a_seed_adds_to_the_peak(mirror, data_cache):
    """Peak allocated memory of batches of 1 and of 4 seeds (gcn_res, depth 16, Cora, dense
    adjacency): the three extra seeds add at most three times :func:`memory.seed_bytes`."""
    cfg = composed(mirror, data_cache, "model=gcn_res", "depth=16", "seeds=4", "train.epochs=3")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    graph = data.load(cfg.dataset, cfg.data, 0)
    prepared, adj, _ = cell.prepare(graph, OmegaConf.to_container(cfg.dataset), CUDA)
    storage = adjacency_storage("auto", adj)
    peaks, params = {}, []
    for size in (1, 4):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(CUDA)
        base = torch.cuda.memory_allocated(CUDA)
        engine.run_seeds(cfg, lambda s: prepared, adj, CUDA, max_seeds=size,
                         seeds=list(range(size)), adjacency=storage,
                         on_model=lambda m: params.append(slices.parameters_per_seed(m)))
        peaks[size] = torch.cuda.max_memory_allocated(CUDA) - base
    per_seed = memory.seed_bytes(cfg, graph.num_nodes, params[0])
    assert peaks[4] > peaks[1]  # the batch does hold more seeds
    assert peaks[4] - peaks[1] <= 3 * per_seed, (peaks, per_seed)


def test_cuda_out_of_memory_is_recorded_as_oom_and_the_next_cell_runs(mirror, data_cache,
                                                                       tmp_path):
    """A per-process cap of 64 MiB (``torch.cuda.set_per_process_memory_fraction``): the
    caching allocator itself raises ``torch.cuda.OutOfMemoryError`` for a cell whose batch
    needs gigabytes (hidden 2048, 8 seeds: ~180 MB per activation); the record says ``oom``."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(CUDA).total_memory
    big = composed(mirror, data_cache, "model=gcn_res", "depth=8", "seeds=8", "model.hidden=2048",
                   "train.epochs=2")
    torch.cuda.set_per_process_memory_fraction(64 * 2**20 / total, CUDA)
    try:
        record = cell.run_cell(big, tmp_path)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
        torch.cuda.empty_cache()
    assert record["status"] == "oom", (record["status"], record["error"])
    assert record["error"].startswith("OutOfMemoryError: CUDA out of memory")
    on_disk = json.loads(next((tmp_path / "records").glob("*.json")).read_text())
    assert (on_disk["status"], on_disk["error"]) == ("oom", record["error"])
    small = cell.run_cell(composed(mirror, data_cache, "model=gcn", "depth=2", "seeds=1",
                                   "train.epochs=5"), tmp_path)
    assert small["status"] == "ok", small["error"]
