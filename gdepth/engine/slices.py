"""One seed of a seed-native model (:mod:`gdepth.nn.seeds`): its state, its one-seed module.

The training loop trains S seeds in one model; what looks at one seed (a seed's kept state at
its selected epoch, the diagnostics, activation checkpointing of a per-seed stack) goes
through these helpers, which know only the contract: every parameter and buffer is seed-major
(``[S, ...]``), :func:`gdepth.nn.seeds.select_seeds` cuts seeds out, and
:class:`gdepth.nn.seeds.SeedStack` holds the one-seed module of a model that is not
seed-native yet.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from gdepth.nn.one_seed import OneSeed
from gdepth.nn.seeds import SeedStack, select_seeds


def seed_state(model: nn.Module, index: int) -> dict[str, Tensor]:
    """A copy of seed ``index``'s slice of ``model.state_dict()``, each tensor ``[1, ...]``
    (0-dim entries as they are): the ``state_dict`` of ``select_seeds(model, [index])``."""
    return {k: (v.detach()[index:index + 1] if v.dim() > 0 else v.detach()).clone()
            for k, v in model.state_dict().items()}


def one_seed(model: nn.Module, index: int, state: dict[str, Any] | None = None) -> nn.Module:
    """Seed ``index`` of ``model`` behind the one-seed interface ``forward(x [N, F], adj)
    -> [N, C]`` (what the diagnostics measure), a copy: :class:`OneSeed` of the one-seed
    native model; for a :class:`SeedStack`, its one-seed module holding seed ``index``'s
    tensors (it taps its layer outputs itself). ``state``: a :func:`seed_state` to load
    first (the seed at its selected epoch)."""
    single = select_seeds(model, [index])
    if state is not None:
        single.load_state_dict(state)
    if not isinstance(single, SeedStack):
        return OneSeed(single).train(model.training)
    module = copy.deepcopy(single.module())
    with torch.no_grad():
        for name, tensor in single.seed_state(0).items():
            target = (module.get_parameter(name) if name in dict(module.named_parameters())
                      else module.get_buffer(name))
            target.copy_(tensor)
    return module.train(model.training)


def checkpoint_layers(model: nn.Module) -> None:
    """``activation_checkpointing=true`` on a seed-native model
    (:func:`gdepth.models.checkpoint_layers`).

    A :class:`SeedStack` is refused (after its one-seed module's own checks, so that the model
    and norm refusals read the same): it runs its one-seed module with each seed's tensors
    swapped in for the forward only (``torch.func.functional_call``), and a checkpointed
    layer's recomputation in the backward pass would see the module's own tensors instead.
    """
    from gdepth import models

    if not isinstance(model, SeedStack):
        models.checkpoint_layers(model)
        return
    base = model.module()
    models.checkpoint_layers(base)
    base.checkpoint_layers = False
    raise ValueError(f"activation_checkpointing: model {type(base).__name__} is not written "
                     "seed-native yet (it runs per seed in gdepth.nn.seeds.SeedStack, where a "
                     "recomputed layer would not see the seed's tensors)")


def parameters_per_seed(model: nn.Module) -> int:
    """Trainable scalars of one seed (:func:`gdepth.models.count_parameters` / S)."""
    from gdepth import models

    return models.count_parameters(model) // max(int(getattr(model, "num_seeds", 1)), 1)
