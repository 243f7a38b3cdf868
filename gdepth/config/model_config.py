"""The ``model`` group's schemas (``configs/model/``): :class:`ModelConfig` and the models
that extend it."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from gdepth.config.choices import DropoutLayers, Skip


@dataclass
class ModelConfig:
    name: str = MISSING  # registry key in gdepth.models.MODELS
    hidden: int = 64
    dropout: float = 0.5
    dropout_layers: DropoutLayers = DropoutLayers.all
    activation: str = "relu"
    # the last layer on each instance's complete graph (Alon & Yahav 2021 §4): gcn, gcn_res, gin
    # on datasets with instance ids (gdepth/models/fully_adjacent.py); bottleneck: its own
    fully_adjacent_last: bool = False


@dataclass
class GCNConfig(ModelConfig):
    skip: Skip = Skip.none  # none: Kipf GCN; else Bag of Tricks' GCN with linear in/out layers
    skip_alpha: float = 0.1  # α of the residual / initial connections
    identity_mapping: bool = False  # GCNII-style β_l = log(λ/l + 1) on the hidden convs
    lamda: float = 0.5  # λ of identity mapping
    embedding_dropout: float = 0.6  # Bag of Tricks: dropout before the linear in/out layers


@dataclass
class APPNPConfig(ModelConfig):
    alpha: float = 0.1  # teleport probability


@dataclass
class GCNIIConfig(ModelConfig):
    alpha: float = 0.1  # initial-residual strength α
    lamda: float = 0.5  # identity-mapping λ: θ_l = log(λ / l + 1)


@dataclass
class JKNetConfig(ModelConfig):
    mode: str = "cat"  # jumping-knowledge aggregation: cat | max | lstm
    shared_dropout: bool = False  # one mask per layer output for the next layer and JK (BoT's)


@dataclass
class GATConfig(ModelConfig):
    heads: int = 8  # concatenated heads per hidden layer (hidden must be a multiple)
    output_heads: int = 1  # averaged heads of the output layer
    attention_dropout: float = 0.6  # dropout on the attention coefficients


@dataclass
class GINConfig(ModelConfig):
    train_eps: bool = False  # learn GIN's epsilon (False: GIN-0, epsilon fixed to 0)


@dataclass
class BottleneckConfig(ModelConfig):
    """bottleneck: Alon & Yahav's GraphModel (ICLR 2021, github.com/tech-srl/bottleneck)."""

    conv: str = "gcn"  # gcn | gin | gat | ggnn
    hidden: int = 32  # their --dim
    dropout: float = 0.0  # their code has none
    residual: bool = True  # x = x + act(conv(x)) (False: their --no_residual)
    layer_norm: bool = True  # LayerNorm after each layer (False: their --no_layer_norm)
    fully_adjacent_last: bool = False  # last layer: every node -> its tree's root (paper §4)


@dataclass
class SGCConfig(ModelConfig):
    dropout: float = 0.0  # on A^K X before the linear layer (paper: none)
    bias: bool = True  # the linear layer's bias b (false: logits = A^K X W, as BoT's SGC)


@dataclass
class SIGNConfig(ModelConfig):
    operator: str = "sym"  # hop operator: sym (Â^k X) | ppr (truncated PPR iterates)
    ppr_alpha: float = 0.15  # teleport probability of the ppr operator


@dataclass
class ResGCNConfig(ModelConfig):
    nbaseblocklayer: int = 1  # convs per residual block (DropEdge's name); 0: one block of L-2
