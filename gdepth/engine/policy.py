"""How many seeds ``engine=auto`` puts in one batch: the measured fastest, capped by memory.

A batch of S seeds does one product per layer for all of them, but on a CPU thread the work
per seed hardly shrinks with S (the products are already large enough to run near the
thread's speed), while S seeds' ``[N, S, d]`` tensors leave the caches that one seed's fit in.
Which effect wins depends on the model: on Cora at depth 8, 10 seeds, one thread
(``benchmarks/results/batch_policy_cora.json``, written by ``benchmarks/batch_policy.py``),
SGC, APPNP and GAT run fastest with all seeds in one batch, JKNet, IncepGCN and GIN with one
seed per batch (all 10 in one batch costs them 20-43 % more), the others best at 2 or 5 seeds,
often within a few percent of the other sizes.

The rule, :func:`choose`: the largest batch whose CPU time per epoch is within
:data:`TOLERANCE` of the fastest measured (differences that small are within the
measurement's noise, and the largest such batch is the closest to the engine's former "as
many as fit"). :data:`CPU_BATCH` is that rule applied to the committed result
(``tests/test_engine_policy.py`` checks they agree). A table and not a formula of N, d and S:
one dataset was measured, and its data show no common cut-off between the models.

The table applies on the CPU only: on CUDA nothing was measured here, and there a larger batch
fills the device better, so ``engine=auto`` batches as many seeds as fit there, as
``engine=batched`` does everywhere. A model missing from the table (none measured) does the
same. In every case the memory estimate (:mod:`gdepth.engine.memory`) caps the batch, and an
explicit ``seeds_per_batch`` wins.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

TOLERANCE = 0.05
# Seeds per batch on the CPU: choose() of benchmarks/results/batch_policy_cora.json's rows.
CPU_BATCH: dict[str, int] = {
    "gcn": 10, "gcn_res": 5, "appnp": 10, "sgc": 10, "sign": 10, "gcnii": 5, "gcnii_star": 5,
    "jknet": 1, "mlp": 5, "resgcn": 2, "densegcn": 5, "incepgcn": 1, "gat": 10, "gin": 1,
    "ggnn": 5}


def choose(epoch_s: Mapping[int, float], tolerance: float = TOLERANCE) -> int:
    """The largest batch size whose seconds per epoch are at most ``1 + tolerance`` times the
    fastest's (``epoch_s``: batch size → the cell's seconds per epoch)."""
    fastest = min(epoch_s.values())
    return max(b for b, t in epoch_s.items() if t <= (1 + tolerance) * fastest)


def preferred_seeds(model: str, device: torch.device) -> int | None:
    """The batch size ``engine=auto`` aims at for ``model`` on ``device``; ``None``: no
    preference (as many seeds as fit)."""
    return CPU_BATCH.get(model) if device.type == "cpu" else None
