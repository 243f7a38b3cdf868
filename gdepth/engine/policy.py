"""How many seeds ``engine=auto`` puts in one batch: the measured fastest, capped by memory.

A batch of S seeds does one product per layer for all of them, but on a CPU thread the work
per seed hardly shrinks with S (the products are already large enough to run near the
thread's speed), while S seeds' ``[N, S, d]`` tensors leave the caches that one seed's fit in.
Which effect wins depends on the model and on the graph's size, so the batch size is measured
(``benchmarks/batch_policy.py``: a cell's CPU time per epoch at each batch size, one thread) on
two graphs:

* Cora (2,708 nodes; depth 8, 10 seeds: ``benchmarks/results/batch_policy_cora.json``): SGC,
  APPNP and GAT run fastest with all seeds in one batch, JKNet, IncepGCN and GIN with one seed
  per batch (all 10 in one batch costs them 20-43 % more), the others best at 2 or 5 seeds,
  often within a few percent of the other sizes.
* Coauthor CS (18,333 nodes; depth 8 and, for GCN, GCN-res and SIGN, the deep cells the
  studies run; 5 seeds: ``benchmarks/results/batch_policy_coauthor_cs.json``): 11 of the 15
  models run fastest with one seed per batch (5 seeds in one batch cost them 11-47 % more at
  depth 8, and SIGN at K = 32 83 % more: 28.4 against 15.5 CPU seconds an epoch); APPNP is
  within 2 % at 2 seeds, GGNN within 3 % at 5, and only SGC and GAT are faster with all 5
  seeds in one batch (58 % and 7 % less than one seed per batch).

The rule, :func:`choose`: the largest batch whose CPU time per epoch is within
:data:`TOLERANCE` of the fastest measured (differences that small are within the
measurement's noise, and the largest such batch is the closest to the engine's former "as
many as fit"); a model measured at several depths takes the largest batch within the
tolerance at each of them. :data:`CPU_BATCH` is that rule applied to each committed result
(``tests/test_engine_policy.py`` checks they agree), and a graph takes the table of the
measured graph nearest to it in the logarithm of the node count (:func:`nearest_measured`:
Cora's up to about 7,000 nodes, Coauthor CS's above). Tables and not a formula of N, d and S:
the data show no common cut-off between the models.

The tables apply on the CPU only: on CUDA nothing was measured here, and there a larger batch
fills the device better, so ``engine=auto`` batches as many seeds as fit there, as
``engine=batched`` does everywhere. A model missing from the table (none measured) does the
same. In every case the memory estimate (:mod:`gdepth.engine.memory`) caps the batch, and an
explicit ``seeds_per_batch`` wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from gdepth import data

TOLERANCE = 0.05
# The measured graphs' node counts.
MEASURED_NODES: dict[str, int] = {name: data.NODES[name] for name in ("cora", "coauthor_cs")}
# Seeds per batch on the CPU, per measured graph: choose() of the rows of
# benchmarks/results/batch_policy_<graph>.json.
CPU_BATCH: dict[str, dict[str, int]] = {
    "cora": {
        "gcn": 10, "gcn_res": 5, "appnp": 10, "sgc": 10, "sign": 10, "gcnii": 5,
        "gcnii_star": 5, "jknet": 1, "mlp": 5, "resgcn": 2, "densegcn": 5, "incepgcn": 1,
        "gat": 10, "gin": 1, "ggnn": 5},
    "coauthor_cs": {
        "gcn": 1, "gcn_res": 1, "appnp": 2, "sgc": 5, "sign": 1, "gcnii": 1, "gcnii_star": 1,
        "jknet": 1, "mlp": 1, "resgcn": 1, "densegcn": 1, "incepgcn": 1, "gat": 5, "gin": 1,
        "ggnn": 5},
}


def choose(epoch_s: Mapping[int, float] | Sequence[Mapping[int, float]],
           tolerance: float = TOLERANCE) -> int:
    """The largest batch size whose seconds per epoch are at most ``1 + tolerance`` times the
    fastest's (``epoch_s``: batch size → the cell's seconds per epoch; or one such mapping per
    measured depth, each judged against its own fastest, the batch within the tolerance at
    every depth). Where no batch is within it at every depth: the batch whose worst ratio to a
    depth's fastest is the smallest."""
    rows = [epoch_s] if isinstance(epoch_s, Mapping) else list(epoch_s)
    sizes = set.intersection(*(set(row) for row in rows))
    worst = {b: max(row[b] / min(row.values()) for row in rows) for b in sizes}
    within = [b for b, ratio in worst.items() if ratio <= 1 + tolerance]
    return max(within) if within else min(worst, key=worst.__getitem__)


def nearest_measured(num_nodes: int) -> str:
    """The measured graph (:data:`MEASURED_NODES`) nearest to a graph of ``num_nodes`` nodes in
    the logarithm of the node count."""
    return min(MEASURED_NODES,
               key=lambda name: abs(math.log(max(num_nodes, 1) / MEASURED_NODES[name])))


def preferred_seeds(model: str, device: torch.device, num_nodes: int) -> int | None:
    """The batch size ``engine=auto`` aims at for ``model`` on ``device`` and a graph of
    ``num_nodes`` nodes; ``None``: no preference (as many seeds as fit)."""
    if device.type != "cpu":
        return None
    return CPU_BATCH[nearest_measured(num_nodes)].get(model)
