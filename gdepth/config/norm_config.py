"""The ``norm`` group's schemas (``configs/norm/``): :class:`NormConfig` and the norms with keys
of their own."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class NormConfig:
    name: str = MISSING  # registry key in gdepth.norms.NORMS


@dataclass
class PairNormConfig(NormConfig):
    mode: str = "PN"  # PN | PN-SI | PN-SCS
    scale: float = 1.0
    eps: float = 1e-5


@dataclass
class NodeNormConfig(NormConfig):
    variant: str = "n"  # n | v | srv | pr | m
    power: float = 2.0
    eps: float = 1e-5


@dataclass
class LayerNormConfig(NormConfig):
    eps: float = 1e-5
    affine: bool = True


@dataclass
class GroupNormConfig(NormConfig):
    groups: int = 10  # DiffGroupNorm's G
    lamda: float = 0.01  # skip weight λ (PyG's spelling)
    eps: float = 1e-5


@dataclass
class GraphNormConfig(NormConfig):
    eps: float = 1e-5


@dataclass
class CombNormConfig(GroupNormConfig):
    variant: str = "n"  # the NodeNorm that follows the group norm
    power: float = 2.0
