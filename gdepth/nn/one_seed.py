r"""The one-seed interface over a seed-native model or norm (:mod:`gdepth.nn.seeds`).

:class:`OneSeed` presents a seed-native model built with S = 1 as ``forward(x [N, F], adj) ->
[N, C]``, the signature the diagnostics, the tree task and scripts call; :class:`OneSeedNorm`
presents a one-seed norm as ``[N, d] -> [N, d]``. Both wrap the seed-native module itself, so
there is one definition of each model and norm and nothing is copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gdepth.nn.kernels import StackedInput
from gdepth.nn.propagation import Propagation


class _FirstSlice:
    """A layer sink that keeps seed 0's ``[N, d]`` slice of each ``[N, 1, d]`` output."""

    def __init__(self, sink: list) -> None:
        self.sink = sink

    def append(self, h: Tensor) -> None:
        self.sink.append(h[:, 0] if h.dim() == 3 else h)


class _Params(nn.Module):
    """A parameter holder whose ``parameters()`` are the given ones (``first_layer()``)."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self.held = nn.ParameterList(params)


class _Cache:
    """One cached (key, value) pair that a deep copy does not carry (sparse CSR tensors cannot
    be deep-copied; the copy rebuilds its own on first use)."""

    def __init__(self) -> None:
        self.key: Any = None
        self.value: Any = None

    def __deepcopy__(self, memo: dict) -> _Cache:
        return _Cache()


class OneSeed(nn.Module):
    """A one-seed seed-native model behind the one-seed interface ``forward(x [N, F], adj)
    -> [N, C]`` (the diagnostics, the tree task and scripts call models that way).
    ``native`` holds the tensors; nothing is copied."""

    def __init__(self, native: nn.Module) -> None:
        super().__init__()
        if getattr(native, "num_seeds", 1) != 1:
            raise ValueError(f"OneSeed wraps a one-seed model, got {native.num_seeds} seeds")
        self.native = native
        self.layer_sink: list | None = None
        self.layer_outputs = bool(getattr(native, "layer_outputs", False))
        self._props = _Cache()  # the Propagation of the last adjacency seen

    def _propagation(self, adj: Tensor) -> Any:
        if adj is None:  # a graph-free model (mlp)
            return None
        if self._props.key is not adj:
            self._props.key, self._props.value = adj, Propagation(adj)  # transposed once per adj
        return self._props.value

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        self.native.layer_sink = None if self.layer_sink is None else _FirstSlice(
            self.layer_sink)
        try:
            return self.native(StackedInput(x), self._propagation(adj))[:, 0]
        finally:
            self.native.layer_sink = None

    def first_layer(self) -> nn.Module:
        return _Params(self.native.first_layer_parameters())

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.native.weight_parameters())

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("named_parameter_groups", "parameter_groups", "rowwise",
                        "checkpoint_layers"):
                return getattr(self._modules["native"], name)
            raise


class OneSeedNorm(nn.Module):
    """A one-seed seed-native norm behind the one-seed interface ``[N, d] -> [N, d]``
    (:func:`gdepth.norms.build_norm`; the per-seed models and old callers use it):
    ``module(h[:, None])[:, 0]``. ``module`` holds the tensors (``[1, d]``); nothing is
    copied."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if getattr(module, "num_seeds", 1) != 1:
            raise ValueError(f"OneSeedNorm wraps a one-seed norm, got {module.num_seeds} seeds")
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.unsqueeze(1)).squeeze(1)

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.module.weight_parameters())


__all__ = ["OneSeed", "OneSeedNorm"]
