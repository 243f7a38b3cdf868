"""Model registry: ``model=<name>`` → a builder, its depth convention and a description.

Every model maps ``forward(x [N, in_dim], adj)`` to logits ``[N, out_dim]``, where ``adj`` is the
sparse CSR normalized adjacency from :func:`gdepth.models.adjacency.normalized_adjacency`,
computed once by the caller and reused by every layer and epoch. ``depth`` counts propagation
layers as each model's ``convention`` says; every result record stores that text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from gdepth.models import (
    appnp,
    bottleneck,
    common,
    dropedge_backbones,
    gat,
    gcn,
    gcnii,
    ggnn,
    gin,
    jknet,
    mlp,
    sgc,
    sign,
)
from gdepth.nn.one_seed import OneSeed
from gdepth.nn.seeds import SeedStack, reset_seeds
from gdepth.options import unknown


class PerSeed:
    """The builder of a model whose layers are not seed-native: S one-seed modules behind the
    seed-native contract (:class:`gdepth.nn.seeds.SeedStack`); ``one_seed`` builds one."""

    def __init__(self, one_seed: Callable[[Any, Any, int, int, int], nn.Module]) -> None:
        self.one_seed = one_seed

    def __call__(self, model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int,
                 num_seeds: int) -> nn.Module:
        return SeedStack(lambda: self.one_seed(model_cfg, norm_cfg, depth, in_dim, out_dim),
                         num_seeds)


class ModelSpec(NamedTuple):
    """A registry entry, the one place a model is declared.

    ``builder(model_cfg, norm_cfg, depth, in_dim, out_dim, num_seeds) -> nn.Module``: the
    seed-native model (:mod:`gdepth.nn.seeds`: S seeds side by side, logits ``[N, S, C]``);
    ``convention``: how ``depth`` counts layers; ``description``: one line for ``gdepth list
    models``; ``groups``: the parameter groups the model declares for
    ``train.weight_decay_groups`` (its ``named_parameter_groups()``; see
    :func:`gdepth.models.common.optimizer_groups`); ``per_seed``: ``None`` when the model's
    layers compute every seed at once, else why its seeds run one module each
    (:class:`gdepth.nn.seeds.SeedStack`, same training loop and numbers, S forward passes);
    ``fully_adjacent``: whether ``model.fully_adjacent_last=true`` is defined for it (its last
    layer on each graph's complete graph, Alon & Yahav 2021 §4).
    """

    builder: Callable[[Any, Any, int, int, int, int], nn.Module]
    convention: str
    description: str
    groups: tuple[str, ...] = ()
    per_seed: str | None = None
    fully_adjacent: bool = False


MODELS: dict[str, ModelSpec] = {
    "gcn": ModelSpec(
        gcn.build_gcn,
        gcn.GCN_CONVENTION,
        "GCN (Kipf & Welling, ICLR 2017): GCNConv stack; Bag-of-Tricks skips, identity mapping",
        fully_adjacent=True,
    ),
    "gcn_res": ModelSpec(
        gcn.build_gcn_res,
        gcn.GCN_RES_CONVENTION,
        "GCN-res (Zhou et al., CIKM 2021, NodeNorm code): residual hidden GCN blocks",
        fully_adjacent=True,
    ),
    "appnp": ModelSpec(
        appnp.build_appnp,
        appnp.APPNP_CONVENTION,
        "APPNP (Gasteiger et al., ICLR 2019): 2-layer MLP then K personalized-PageRank steps",
        ("input", "output"),
    ),
    "sgc": ModelSpec(
        sgc.build_sgc,
        sgc.SGC_CONVENTION,
        "SGC (Wu et al., ICML 2019): linear on cached A^K X",
    ),
    "gcnii": ModelSpec(
        gcnii.build_gcnii,
        gcnii.GCNII_CONVENTION,
        "GCNII (Chen et al., ICML 2020, official code): initial residual + identity mapping",
        common.LEGACY_GROUPS,
    ),
    "gcnii_star": ModelSpec(
        gcnii.build_gcnii_star,
        gcnii.GCNII_STAR_CONVENTION,
        "GCNII* (Chen et al., ICML 2020, official code): separate weights for A H and H0",
        common.LEGACY_GROUPS,
    ),
    "jknet": ModelSpec(
        jknet.build_jknet,
        jknet.JKNET_CONVENTION,
        "JKNet (Xu et al., ICML 2018): GCN layers, jumping knowledge (cat|max|lstm), linear out",
        ("graph", "output"),
    ),
    "mlp": ModelSpec(
        mlp.build_mlp,
        mlp.MLP_CONVENTION,
        "MLP: graph-free baseline, depth = linear layers",
    ),
    "sign": ModelSpec(
        sign.build_sign,
        sign.SIGN_CONVENTION,
        "SIGN (Frasca et al., 2020): one linear per cached hop [X, AX, ..., A^K X], concatenated",
    ),
    "resgcn": ModelSpec(
        dropedge_backbones.build_resgcn,
        dropedge_backbones.RESGCN_CONVENTION,
        "ResGCN (DropEdge, Rong et al., ICLR 2020, official code): GCN blocks with a skip each",
    ),
    "densegcn": ModelSpec(
        dropedge_backbones.build_densegcn,
        dropedge_backbones.DENSEGCN_CONVENTION,
        "DenseGCN (DropEdge code; its README's JKNet): GCN chain, all outputs concatenated",
    ),
    "incepgcn": ModelSpec(
        dropedge_backbones.build_incepgcn,
        dropedge_backbones.INCEPGCN_CONVENTION,
        "IncepGCN (DropEdge code): branches of 1..L-2 GCN layers, outputs concatenated",
    ),
    "gat": ModelSpec(
        gat.build_gat,
        gat.GAT_CONVENTION,
        "GAT (Velickovic et al., ICLR 2018): GATConv stack, multi-head hidden layers",
    ),
    "gin": ModelSpec(
        gin.build_gin,
        gin.GIN_CONVENTION,
        "GIN (Xu et al., ICLR 2019): GINConv layers (sum, 2-layer MLP each), linear out",
        fully_adjacent=True,
    ),
    "ggnn": ModelSpec(
        ggnn.build_ggnn,
        ggnn.GGNN_CONVENTION,
        "GGNN (Li et al., ICLR 2016): linear in, GatedGraphConv (L GRU steps), linear out",
    ),
    "bottleneck": ModelSpec(
        PerSeed(bottleneck.build_bottleneck),
        bottleneck.BOTTLENECK_CONVENTION,
        "Alon & Yahav (ICLR 2021) GraphModel: gcn|gin|gat|ggnn layers, residual + LayerNorm",
        per_seed="its layers are PyG's own (GCNConv, GINConv, GATConv, GatedGraphConv) over "
                 "mini-batches of trees (dataset tree_match, one seed per run)",
        fully_adjacent=True,
    ),
}


def _spec(name: Any) -> ModelSpec:
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    return MODELS[name]


def build(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int) -> nn.Module:
    """One seed of the model named ``model_cfg.name`` behind the one-seed interface
    ``model(x [N, F], adj) -> [N, C]`` (diagnostics, the tree task, scripts).

    Its initial tensors are drawn from the global RNG as :func:`build_seeded` draws seed 0's
    (every block's ``reset_seed(0)``, in module order, from the RNG state this call found):
    after ``torch.manual_seed(s)`` it equals ``build_seeded(..., seeds=[s])``.

    Args:
        model_cfg: the model's config, its schema in :mod:`gdepth.config` (``name`` and the
            model's keys; :func:`gdepth.config.group` makes one from plain values).
        norm_cfg: the norm's config for :func:`gdepth.norms.build_seeded_norm` (``None``: no
            norm).
        depth: number of layers as the model's convention counts them, >= 1.
        in_dim: input features.
        out_dim: output features (classes).
    """
    spec, args = _checked(model_cfg, norm_cfg, depth, in_dim, out_dim)
    if isinstance(spec.builder, PerSeed):
        return spec.builder.one_seed(*args)
    state = torch.get_rng_state()
    model = spec.builder(*args, 1)
    torch.set_rng_state(state)  # the constructor's own draws are redrawn below
    with torch.no_grad():
        for block in [m for m in model.modules() if hasattr(m, "reset_seed")]:
            block.reset_seed(0)
    return OneSeed(model)


def build_seeded(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int,
                 seeds: Sequence[int] = (0,)) -> nn.Module:
    """The model named ``model_cfg.name`` for the seeds ``seeds`` at once, seed-native
    (:mod:`gdepth.nn.seeds`): logits ``[N, S, C]``, seed ``s`` initialized after
    ``torch.manual_seed(seeds[s])``. Arguments as :func:`build`."""
    spec, args = _checked(model_cfg, norm_cfg, depth, in_dim, out_dim)
    return reset_seeds(spec.builder(*args, len(seeds)), seeds)


def _checked(model_cfg: Any, norm_cfg: Any, depth: int, in_dim: int, out_dim: int
             ) -> tuple[ModelSpec, tuple[Any, Any, int, int, int]]:
    spec = _spec(model_cfg.name)
    if int(depth) < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if getattr(model_cfg, "fully_adjacent_last", False) and not spec.fully_adjacent:
        raise ValueError(f"model.fully_adjacent_last=true: model {model_cfg.name} has no "
                         "fully-adjacent last layer; models with one: "
                         f"{', '.join(fully_adjacent_models())}")
    return spec, (model_cfg, norm_cfg, int(depth), int(in_dim), int(out_dim))


def fully_adjacent_models() -> list[str]:
    """The models that define ``model.fully_adjacent_last=true`` (bottleneck: on tree_match)."""
    return [name for name, spec in MODELS.items() if spec.fully_adjacent]


def set_instances(model: nn.Module, instance: Any) -> None:
    """Give ``model`` (seed-native, or its :class:`gdepth.nn.one_seed.OneSeed`) the node →
    instance ids ``instance [N]`` its fully-adjacent last layer reads
    (:class:`gdepth.models.fully_adjacent.FullyAdjacentLast`; the cell passes
    :attr:`gdepth.data.Graph.instance`)."""
    native = getattr(model, "native", model)
    if not hasattr(native, "set_instances"):
        raise ValueError(f"model {type(native).__name__} takes no instance ids; models with a "
                         "fully-adjacent last layer on them: gcn, gcn_res, gin")
    native.set_instances(instance)


def per_seed(name: str) -> str | None:
    """Why model ``name``'s seeds run one module each (``None``: its layers are seed-native)."""
    return _spec(name).per_seed


def convention(name: str) -> str:
    """The depth convention of model ``name``, stored in every result record."""
    return _spec(name).convention


def groups(name: str) -> tuple[str, ...]:
    """The parameter groups model ``name`` declares (``()``: none; ``gcn`` declares ``graph`` /
    ``dense`` only with a ``model.skip``, which the registry cannot say)."""
    return _spec(name).groups


def convolutions(model: str, depth: int) -> int:
    """Graph convolutions one forward pass of ``model`` at ``depth`` computes (IncepGCN's
    branches: (L-2)(L-1)/2 + 2; SGC: one propagated input)."""
    if model == "incepgcn":
        return (depth - 2) * (depth - 1) // 2 + 2
    if model == "sgc":
        return 1
    return depth


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (``requires_grad`` parameters; buffers such as BatchNorm's
    running statistics are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def checkpoint_layers(model: nn.Module) -> None:
    """Turn on activation checkpointing (``activation_checkpointing=true``) in ``model`` (a
    seed-native model, or its :class:`gdepth.nn.one_seed.OneSeed`).

    Each hidden layer then keeps only its input for the backward pass and recomputes its
    output there: activation memory ~ one ``[N, S, hidden]`` tensor per layer instead of
    several, for about one more forward pass per step. :class:`gdepth.models.gcn.GCN`,
    ``GCNRes`` and :class:`gdepth.models.gcn_tricks.TricksGCN` (``gcn`` with ``model.skip``)
    implement it. A norm that keeps running statistics (batchnorm, and the BatchNorm inside
    groupnorm / combnorm) is refused: the recomputed forward would update them a second time.
    """
    from gdepth.models.gcn import GCN
    from gdepth.models.gcn_tricks import TricksGCN

    native = getattr(model, "native", model)
    if not isinstance(native, (GCN, TricksGCN)):
        raise ValueError(f"activation_checkpointing: model {type(model).__name__} does not "
                         "implement it; models that do: gcn, gcn_res")
    stateful = next((type(norm).__name__ for norm in native.norms for m in norm.modules()
                     if getattr(m, "track_running_stats", False)), None)
    if stateful is not None:
        raise ValueError(f"activation_checkpointing with norm {stateful}: the recomputed forward "
                         "would update its running statistics twice; norms without them: none, "
                         "nodenorm, pairnorm, layernorm, meannorm, graphnorm")
    native.checkpoint_layers = True


__all__ = ["MODELS", "ModelSpec", "PerSeed", "build", "build_seeded", "checkpoint_layers",
           "convention", "count_parameters", "fully_adjacent_models", "groups", "per_seed",
           "set_instances"]
