"""The cells of an experiment: each sub-sweep expanded, composed, keyed and labelled.

Every cell is composed with Hydra's compose API exactly as a sweep job composes it, and keyed
with :func:`gdepth.sweep.plan.cell_identity` (the record key ``cell.run_cell`` writes), so the
comparison finds a cell's record by key, never by guessing from file names or overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gdepth import data
from gdepth.compose import expand
from gdepth.reproduce.experiment import NOT_PROTOCOL, Experiment

# Rough CPU cost: seconds per node · hidden unit · convolution · epoch, measured with
# threads=1 on a shared 2-core machine (Cora, GCN, hidden 128: about 35 ms per conv-epoch).
SECONDS_PER_UNIT = 1.0e-7
# The same for a seed-batched cell, per seed (benchmarks/sweep_speed.py, Cora gcn_res depth
# 2..64, 10 seeds, threads=1 on the shared machine: 1,821 s for 4.37e10 units).
BATCHED_SECONDS_PER_UNIT = 4.2e-8
# Tree-NeighborsMatch with model=bottleneck by levels (gdepth/tree_levels.py: no fully-adjacent
# last layer, no dropout): CPU seconds per pass over the training trees at the alon2021 preset's
# batch sizes, by model.conv and r (benchmarks/results/tree_speed.json, levels_cpu_s_per_pass,
# threads=1 on the shared 2-core machine under a load average of 3.5-7, so high on a quieter
# one; tests/test_reproduce.py checks them against that file).
# Another r: the largest r's, scaled by the training trees' nodes.
TREE_PASS_SECONDS = {
    "gcn": {2: 0.0063, 3: 0.42, 4: 0.34, 5: 0.85, 6: 2.1},
    "gin": {2: 0.017, 3: 1.0, 4: 0.82, 5: 4.7, 6: 9.7},
    "gat": {2: 0.014, 3: 1.1, 4: 0.73, 5: 2.3, 6: 4.6},
    "ggnn": {2: 0.014, 3: 0.97, 4: 0.52, 5: 2.2, 6: 5.3},
}
# Any other tree_match cell (each batch by PyG's message passing, train_trees.py): per node of the
# training trees, pass, convolution and hidden unit (model=bottleneck gcn, threads=1: 2.1 s per
# pass at r = 4, 27 s at r = 6, i.e. 3.3e-8 and 3.7e-8 per unit; the per-batch overhead included).
TREE_SECONDS_PER_UNIT = 3.5e-8
# Cost of a layer relative to a GCN layer where it differs much: GIN's layer is a two-layer MLP
# on hidden-wide features (transfer_ring r = 8, 1000 instances, depth 8, hidden 64, 3 seeds
# batched, threads=1 on the shared machine: 1.80 s per epoch against gcn's 1.15 s).
LAYER_COST = {"gin": 1.6}
# Nodes per dataset for the estimate (the real datasets: gdepth.data.NODES; csbm: its default
# size; the transfer tasks: :func:`nodes`; the others count as 3000).
NODES = {**data.NODES, "csbm": 1000}

# SIGN from a sparse X (gdepth.models.sign, hops=projected, what auto takes on the CPU for these
# datasets): its time goes to (K+1)·nnz(X) + K(K+1)/2·nnz(Â) sparse multiply-adds per hidden
# column of each seed, not to K dense layers. Stored entries of X and of Â with self-loops
# (benchmarks/results/sign_hops.json), and CPU seconds per such multiply-add and column per
# epoch, with the batch engine=auto takes there (one seed: gdepth.engine.policy): Coauthor CS at
# K = 32, 15.5 s an epoch for 5 seeds × 64 columns × 1.32e8 multiply-adds
# (benchmarks/results/batch_policy_coauthor_cs.json), 3.7e-10 s; at K = 8 the same file gives
# 4.5e-10 (the count leaves out the per-hop dense work, which weighs more where K is small).
SPARSE_STORED = {"cora": (49216, 13264), "coauthor_cs": (1092079, 182121)}
SIGN_SECONDS_PER_SPARSE_UNIT = 3.7e-10


def nodes(dataset: dict[str, Any]) -> int:
    """Nodes of a cell's graph for the estimate: :data:`NODES`, the transfer tasks' union
    (``num_graphs`` instances of their size at ``task_range``), else 3000."""
    name = str(dataset["name"])
    if name.startswith("transfer_"):
        from gdepth.data.transfer import instance

        _, size, _ = instance(name.removeprefix("transfer_"), int(dataset["task_range"]))
        return size * int(dataset["num_graphs"])
    return NODES.get(name, 3000)


@dataclass
class Cell:
    """One planned cell: its record key, published-table labels and identity config."""

    key: str
    labels: dict[str, str]
    overrides: list[str]
    config: dict[str, Any]


def _get(config: dict[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def plan(exp: Experiment, searched: bool = False) -> list[Cell]:
    """Every cell of ``exp`` (after the user's restrictions), in sub-sweep order; with
    ``searched``, the cells as ``search=…`` plans them (keyed as their studies are).

    One Hydra compose per combination of the comma lists; the depths of a sub-sweep reuse it
    (``depth`` is a plain top-level key), which keeps ``--list`` and ``--dry-run`` quick.
    """
    from hydra import compose, initialize_config_dir

    from gdepth import compose as gdepth_compose
    from gdepth.paths import config_dir
    from gdepth.sweep import plan as sweep_plan

    gdepth_compose.register()  # the schemas the YAML options name (idempotent)
    out: list[Cell] = []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for sub in exp.subsweeps:
            base = [o for o in sub.overrides if not NOT_PROTOCOL.match(o)
                    and o.partition("=")[0].lstrip("+~") != "depth"]
            extra = [o for o in exp.extra if not NOT_PROTOCOL.match(o)]
            extra += exp.search if searched else []
            for overrides in expand([*base, f"seeds={exp.seeds}", *extra]):
                cfg = compose("config", overrides=overrides)
                for depth in sub.depths:
                    cfg.depth = depth
                    key, ident = sweep_plan.cell_identity(cfg, overrides)
                    labels = dict(sub.labels)
                    for column, path in exp.columns.items():
                        labels[column] = str(_get(ident, path))
                    out.append(Cell(key, labels, [*overrides, f"depth={depth}"], ident))
    return out


def _tree_passes(typed: Any) -> tuple[int, int]:
    """A ``tree_match`` cell's passes over its training trees: the fewest a run takes that does
    not reach ``stop_at`` early (``(patience + 1)`` rounds), and the most its budget allows
    (``epochs`` rounds, capped at ``max_passes``). Both per seed."""
    from gdepth import tree_batch

    train = typed.train
    b = tree_batch.batching(train, getattr(typed.model, "conv", None), int(typed.dataset.depth_r))
    rounds = train.epochs if train.patience is None else min(train.epochs, train.patience + 1)
    least, most = rounds * b.passes_per_epoch, train.epochs * b.passes_per_epoch
    if train.max_passes is not None:
        least, most = min(least, train.max_passes), min(most, train.max_passes)
    return least, most


def _tree_seconds(typed: Any, convs: int, passes: int) -> float:
    """CPU seconds of a ``tree_match`` cell (``typed``: its typed config) for ``passes`` passes
    of each seed."""
    from gdepth.data import tree_match

    data, model = typed.dataset, typed.model
    r, conv = int(data.depth_r), getattr(model, "conv", None)

    def nodes(depth_r: int) -> float:  # the training trees' nodes
        return (tree_match.example_count(depth_r) * data.train_fraction
                * (2 ** (depth_r + 1) - 1))

    by_r = TREE_PASS_SECONDS.get(str(conv), {})
    if (model.name == "bottleneck" and by_r and not model.fully_adjacent_last
            and not model.dropout):
        if r in by_r:
            return typed.seeds * passes * by_r[r]
        top = max(by_r)
        return typed.seeds * passes * by_r[top] * nodes(r) / nodes(top)
    return TREE_SECONDS_PER_UNIT * typed.seeds * passes * nodes(r) * convs * model.hidden


def estimate_ceiling(cell: Cell) -> float | None:
    """A ``tree_match`` cell's CPU time if every seed trains to its budget (``epochs`` rounds,
    capped at ``max_passes``: the authors' 50,000 passes), the case of a run that keeps gaining
    by more than ``min_delta`` without reaching ``stop_at``, as GCN at r = 4 did; None for any
    other cell, whose :func:`estimate_seconds` already counts every epoch."""
    from gdepth import config, models

    typed = config.typed(cell.config)
    if typed.dataset.name != "tree_match":
        return None
    convs = models.convolutions(typed.model.name, typed.depth)
    return _tree_seconds(typed, convs, _tree_passes(typed)[1])


def estimate_seconds(cell: Cell) -> float:
    """A rough single-thread CPU time of the cell (all seeds, every epoch run: an upper bound
    where early stopping or ``train.stop_at`` ends it sooner).

    SIGN on a dataset of :data:`SPARSE_STORED` costs its sparse multiply-adds (the projected
    hops), :data:`SIGN_SECONDS_PER_SPARSE_UNIT` each per hidden column, seed and epoch.
    Seed-batched cells (``engine`` not ``loop``, a seed-native model whose seeds share their
    kernels, :func:`gdepth.engine.batched_kernels`) cost :data:`BATCHED_SECONDS_PER_UNIT` per
    unit;
    ``tree_match`` cells cost the measured seconds per pass of :data:`TREE_PASS_SECONDS`
    (the bottleneck model by levels), else per training-tree node and pass, for ``(patience +
    1) · passes_per_epoch`` passes (capped at ``max_passes``): the fewest a run takes that does
    not reach ``stop_at`` early, as the authors' deeper trees do not. A run that keeps gaining
    goes on to the authors' cap of 50,000 passes (GCN at r = 4 did: 24 times the floor's
    passes); that ceiling is :func:`estimate_ceiling`.
    """
    from gdepth import config, engine, models

    typed = config.typed(cell.config)
    convs = models.convolutions(typed.model.name, typed.depth)
    if typed.dataset.name == "tree_match":
        return _tree_seconds(typed, convs, _tree_passes(typed)[0])
    stored = SPARSE_STORED.get(str(typed.dataset.name))
    if typed.model.name == "sign" and stored is not None:
        k = typed.depth
        macs = (k + 1) * stored[0] + k * (k + 1) / 2 * stored[1]
        return (SIGN_SECONDS_PER_SPARSE_UNIT * typed.seeds * typed.train.epochs
                * typed.model.hidden * macs)
    work = (typed.seeds * typed.train.epochs * convs * typed.model.hidden
            * nodes(cell.config["dataset"]) * LAYER_COST.get(typed.model.name, 1.0))
    # one seed batched costs about what a seed of ten does (Cora gcn_res depth 8, two
    # threads: 1.0e-8 and 8.5e-9 s per unit), so the batched rate holds for any seed count
    batched = typed.engine != "loop" and engine.batched_kernels(typed)
    return (BATCHED_SECONDS_PER_UNIT if batched else SECONDS_PER_UNIT) * work


def budget(cell: Cell) -> tuple[int, int] | None:
    """A searched cell's (trials, seeds per trial); None for a fixed cell."""
    search = cell.config.get("search") or {}
    if search.get("name", "none") == "none":
        return None
    return int(search["trials"]), int(search["seeds"])


def estimate_searched(cell: Cell) -> float:
    """:func:`estimate_seconds` of a searched cell: its trials (``search.seeds`` each) and the
    final run with the cell's seeds, at the fixed cell's cost per seed."""
    per_seed = estimate_seconds(cell) / max(int(cell.config["seeds"]), 1)
    found = budget(cell)
    trials, seeds = found if found else (0, 0)
    return per_seed * (trials * seeds + int(cell.config["seeds"]))


def rough_duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h``: two significant figures at most, for estimates and
    study totals (:func:`gdepth.sweep.progress.duration` gives ``12m05s`` for a measured time
    on a progress line)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
