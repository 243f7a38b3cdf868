"""How many seeds one batch of the seed-batched engine can train within the memory at hand.

A batch of S seeds holds S copies of every activation the backward pass keeps, so a cell whose
seeds do not fit together is trained in consecutive batches of at most ``seeds_per_batch`` seeds
(:func:`gdepth.engine.batch_size`). The estimate counts, per seed,

.. math::
    B_{seed} = c_{act} \\, \\ell \\, N d \\cdot 4\\,\\mathrm{B} + c_{par} P \\cdot 4\\,\\mathrm{B}

with :math:`\\ell` the hidden products a forward pass keeps (``depth``; IncepGCN's
:math:`(L-2)(L-1)/2 + 2` convolutions; SIGN's and SGC's hops), :math:`N` nodes, :math:`d` the
widest hidden width, :math:`P` the seed's parameters and :math:`c_{act}, c_{par}` the tensors kept
per product and per parameter (:data:`ACTIVATION_COPIES` or :data:`MODEL_COPIES`,
:data:`PARAMETER_COPIES`: from measured peaks of the batched engine, see their comments).
Neither PyTorch nor PyG offers such an estimate for a training step, hence this module. The
memory at hand is ``torch.cuda.mem_get_info`` on CUDA and, on the CPU, Linux's ``MemAvailable``
(capped by a cgroup v2 ``memory.max``); where neither can be read, every seed goes in one batch.
What every seed of a batch shares and the model allocates on its first forward pass, after the
memory at hand was read (SIGN's cached hops :math:`K N F`, SGC's :math:`\\hat{A}^K X`: the
model's ``cache_bytes``, :func:`shared_bytes`), is taken off the memory at hand first: on
Coauthor Physics with :math:`K = 32` cached hops that is 37 GB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdepth.config import GdepthConfig

# Tensors of N × d floats the batched engine keeps per hidden product for the backward pass
# (layer input, dropout output, propagated product, pre-activation, output...), about 1.8×
# what was measured: the peak RSS added per seed (batches of 1 and of 4-8 seeds, 3 epochs, one
# thread, Cora; Coauthor CS for gcn_res depth 16), over N·d·4 bytes per product, was 4.3-4.4
# for gcn_res (depth 16 and 64), 4.8 incepgcn (8), 1.0 appnp (10), 7.3 jknet cat (16), 8.9
# sign (8) and 13.7 gcnii (32; its initial residual and identity mapping keep more per layer).
ACTIVATION_COPIES = 8
MODEL_COPIES = {"jknet": 13, "sign": 16, "gcnii": 25}
# Per parameter: value, gradient, Adam's two moments, the selected epoch's copy, the stacking.
PARAMETER_COPIES = 6
# Share of the memory at hand a batch may take (the rest: the graph, features, the evaluation
# forward pass, the allocator's slack and whatever else the process holds).
BUDGET_SHARE = 0.5
FLOAT = 4


def products(cfg: GdepthConfig) -> int:
    """Hidden products of ``N × d`` a forward pass of the cell's model keeps for backward."""
    from gdepth.models import convolutions

    name, depth = cfg.model.name, int(cfg.depth)
    if name == "incepgcn":
        return convolutions(name, depth)
    if name in ("sign", "sgc"):
        return depth + 2  # the hops' products, the head
    return depth + 1  # the layers, the input layer's output


def seed_bytes(cfg: GdepthConfig, num_nodes: int, parameters: int) -> int:
    """The estimated bytes one seed of the cell ``cfg`` adds to a batch (module docstring)."""
    width = max(int(cfg.model.hidden), 1)
    copies = MODEL_COPIES.get(cfg.model.name, ACTIVATION_COPIES)
    act = copies * products(cfg) * num_nodes * width * FLOAT
    return act + PARAMETER_COPIES * parameters * FLOAT


def shared_bytes(model: Any, x: Tensor, adj: Tensor) -> int:
    """Bytes ``model`` will cache for the features ``x`` and adjacency ``adj``, shared by all the
    seeds of a batch (its ``cache_bytes``; 0 for a model without such a cache)."""
    found = getattr(model, "cache_bytes", None)
    return int(found(x, adj)) if callable(found) else 0


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (bytes), or ``None`` where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        found.append(max(limit - used, 0))
    return min(found) if found else None


def seeds_per_batch(cfg: GdepthConfig, seeds: int, num_nodes: int, parameters: int,
                    device: torch.device, available: int | None = None,
                    shared: int = 0) -> int:
    """Seeds per batch for the cell ``cfg``: ``cfg.seeds_per_batch`` when set, else as many of
    the ``seeds`` as fit in :data:`BUDGET_SHARE` of ``available`` (default: what
    :func:`available_bytes` reads) less the ``shared`` bytes the model will cache
    (:func:`shared_bytes`), at least 1."""
    asked = cfg.seeds_per_batch
    if asked is not None:
        if asked < 1:
            raise ValueError(f"seeds_per_batch={asked!r}: valid: a positive integer, or null "
                             "(as many seeds as fit in memory)")
        return min(asked, seeds)
    free = available_bytes(device) if available is None else available
    if free is None:
        return seeds
    fit = int(BUDGET_SHARE * max(free - shared, 0)) // max(seed_bytes(cfg, num_nodes,
                                                                      parameters), 1)
    return max(1, min(seeds, fit))
