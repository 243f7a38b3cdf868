"""What every seed-native norm of :mod:`gdepth.norms` has: :class:`SeedNormBase`."""

from __future__ import annotations

from torch import nn


class SeedNormBase(nn.Module):
    """What every seed-native norm has: ``num_seeds``, ``reset_seed(s)`` (seed ``s``'s initial
    tensors), and ``weight_parameters()`` (the tensors the module it replaces named
    ``*weight*``: the L1 penalty's)."""

    def __init__(self, num_seeds: int) -> None:
        super().__init__()
        if num_seeds < 1:
            raise ValueError(f"a norm needs at least one seed, got {num_seeds}")
        self.num_seeds = int(num_seeds)

    def reset_seed(self, s: int) -> None:
        """Seed ``s``'s initial tensors (none here: no parameters)."""

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if "weight" in name]
