"""Named reproductions: ``configs/experiment/<name>.yaml`` read as data and expanded into sweeps.

A published table is rarely one Cartesian grid: DropEdge's scripts use another learning rate,
weight decay, dropout, keep ratio and adjacency normalization for every backbone and dataset.
So an experiment lists **entries**; each is one ordinary ``gdepth sweep`` (its own overrides,
comma lists and a depth range allowed) run into the experiment's one sweep folder::

    published: {table: dropedge2020_semi, value: test_acc, metric: test_acc, scale: 100}
    seeds: 1                         # the protocol's seeds per cell
    common: [train=dropedge2020]     # overrides of every entry
    columns: {dataset: dataset.name, depth: depth}   # table column <- config path of a cell
    variant_column: variant          # (default) the column the `variants` keys fill in
    entries:
      - row: {backbone: GCN}         # table columns that are constant for the entry
        overrides: [dataset=cora, model=gcn, depth=2..64]
        variants: {original: [train.dropedge=0.0], dropedge: [train.dropedge=0.6]}

Every (entry, variant) pair is a :class:`SubSweep`. A cell's published row is found from its
composed config (``columns``) plus the entry's ``row`` and variant (``gdepth.reproduce.compare``).

``search=<name>`` (and ``search.*`` overrides) makes every cell a searched one: each sub-sweep
runs with them (``gdepth.search``: trials, then the best trial with the cell's seeds), into the
same folder as the fixed-protocol cells, and the comparison shows the tuned final's verdict
beside the fixed cell's (``Experiment.search``; not a deviation: the fixed verdict stays).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gdepth.depth import parse_depths

# Overrides that say where and how cells run, not what they compute: never a deviation.
NOT_PROTOCOL = re.compile(
    r"^[+~]*(threads|name|out_dir|progress|device|engine|launcher|data\.|hydra"
    r"|seeds_per_job|checkpoint_every)")


def experiment_dir() -> Path:
    from gdepth.paths import config_dir

    return Path(config_dir()) / "experiment"


def names() -> list[str]:
    return sorted(p.stem for p in experiment_dir().glob("*.yaml"))


@dataclass
class SubSweep:
    """One ``gdepth sweep``: its overrides (without seeds / name) and the labels it fixes."""

    overrides: list[str]
    labels: dict[str, str]
    dataset: str | None
    depths: list[int]


@dataclass
class Experiment:
    """A parsed ``configs/experiment/<name>.yaml`` (keys as in the module docstring)."""

    name: str
    title: str
    spec: dict[str, Any]
    subsweeps: list[SubSweep] = field(default_factory=list)
    seeds: int = 1
    deviations: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    folder: str = ""  # the sweep name: ``reproduce_<name>`` unless the user gives ``name=``
    out_dir: str = "outputs"
    datasets: list[str] | None = None  # the user's dataset= restriction (None: all)
    # the user's restrictions on other keys the entries set (model.conv=gcn, dataset.depth_r=2)
    filters: dict[str, list[str]] = field(default_factory=dict)
    depths: list[int] | None = None  # the user's depth= restriction (None: all)
    search: list[str] = field(default_factory=list)  # search=NAME and search.* (empty: none)

    @property
    def published(self) -> dict[str, Any]:
        return self.spec.get("published") or {}

    @property
    def columns(self) -> dict[str, str]:
        return dict(self.spec.get("columns") or {})


def _value(overrides: list[str], key: str) -> str | None:
    for item in overrides:
        k, sep, v = item.partition("=")
        if sep and k.lstrip("+~") == key:
            return v
    return None


def _entry_keys(spec: dict[str, Any]) -> set[str]:
    """The keys the experiment's entries set (besides ``dataset`` and ``depth``)."""
    keys = {o.partition("=")[0].lstrip("+~") for e in spec.get("entries") or []
            for o in e["overrides"]}
    return keys - {"dataset", "depth"}


def _replace(overrides: list[str], key: str, value: str) -> list[str]:
    return [f"{key}={value}" if o.partition("=")[0].lstrip("+~") == key else o
            for o in overrides]


def load(name: str, user: list[str] | None = None) -> Experiment:
    """Read ``name`` and expand it, restricted by the user's ``dataset=``, ``depth=``, ``seeds=``.

    A user override ``KEY=V[,V…]`` of a key the experiment's entries set (``model.conv=gcn``,
    ``dataset.depth_r=2,3``) restricts the experiment to those values, as ``dataset=`` does.
    Every other user override is appended to every sub-sweep; those that change what a cell
    computes are listed in ``deviations`` (as is a ``seeds`` other than the protocol's).
    Raises ValueError (one line, the valid choices) for an unknown name, a dataset or another
    entry key's value the experiment does not cover, or depths it never runs.
    """
    path = experiment_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown experiment '{name}'; valid: {', '.join(names())}")
    title = path.read_text().splitlines()[0].lstrip("# ").strip()
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(spec, dict)
    exp = Experiment(name, title, spec, seeds=int(spec.get("seeds", 1)),
                     folder=f"reproduce_{name}")
    datasets = depths = None
    for item in user or []:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if not sep:
            raise ValueError(f"override '{item}' is not KEY=VALUE")
        if key == "dataset":
            datasets = value.split(",")
        elif key == "depth":
            depths = parse_depths(value)
        elif key == "seeds":
            exp.seeds = int(value)
        elif key == "name":
            exp.folder = value
        elif key == "out_dir":
            exp.out_dir = value
            exp.extra.append(item)
        elif key in _entry_keys(spec):
            exp.filters[key] = value.split(",")
        elif key == "search" or key.startswith("search."):
            exp.search.append(f"{key}={value}")
        else:
            exp.extra.append(item)
            if not NOT_PROTOCOL.match(item):
                exp.deviations.append(f"{item} (the protocol fixes this key otherwise)")
    _check_search(exp)
    protocol_seeds = int(spec.get("seeds", 1))
    if exp.seeds != protocol_seeds:
        exp.deviations.append(f"seeds={exp.seeds} (protocol: {protocol_seeds})")
    exp.datasets, exp.depths = datasets, depths
    _expand(exp, datasets, depths)
    return exp


def _check_search(exp: Experiment) -> None:
    """``search=none`` is no search; ``search.*`` needs ``search=NAME``; one value each."""
    name = _value(exp.search, "search")
    if name == "none":
        exp.search = []
    elif exp.search and name is None:
        raise ValueError(f"{' '.join(exp.search)} needs search=NAME (e.g. search=default)")
    for item in exp.search:
        if "," in item.partition("=")[2] and "[" not in item:
            raise ValueError(f"'{item}': one search setting per reproduce call")


def search_label(exp: Experiment) -> str:
    """``search=default search.trials=5``, or '' without a search."""
    return " ".join(exp.search)


def _expand(exp: Experiment, datasets: list[str] | None, depths: list[int] | None) -> None:
    entries = exp.spec.get("entries") or []
    covered = sorted({_value(e["overrides"], "dataset") or "?" for e in entries})
    for wanted in datasets or []:
        if wanted not in covered:
            raise ValueError(f"{exp.name} has no dataset '{wanted}'; valid: {', '.join(covered)}")
    column = exp.spec.get("variant_column", "variant")
    all_depths: set[int] = set()
    for key, wanted in exp.filters.items():
        valid = sorted({v for e in entries for v in (_value(e["overrides"], key) or "").split(",")
                        if v})
        for value in wanted:
            if value not in valid:
                raise ValueError(f"{exp.name} has no {key} '{value}'; valid: {', '.join(valid)}")
    for entry in entries:
        overrides = list(entry["overrides"])
        dataset = _value(overrides, "dataset")
        if datasets and dataset not in datasets:
            continue
        narrowed = {k: [v for v in (_value(overrides, k) or "").split(",") if v in w]
                    for k, w in exp.filters.items()}
        if not all(narrowed.values()):
            continue  # this entry sets none of the wanted values (or not the key at all)
        for key, kept in narrowed.items():
            overrides = _replace(overrides, key, ",".join(kept))
        own = parse_depths(_value(overrides, "depth") or "2")
        all_depths.update(own)
        chosen = [d for d in own if depths is None or d in depths]
        if not chosen:
            continue
        overrides = _replace(overrides, "depth", ",".join(map(str, chosen)))
        variants = entry.get("variants") or {None: []}
        for variant, extra in variants.items():
            labels = {k: str(v) for k, v in (entry.get("row") or {}).items()}
            if variant is not None:
                labels[column] = str(variant)
            exp.subsweeps.append(SubSweep([*exp.spec.get("common", []), *overrides, *extra],
                                          labels, dataset, chosen))
    if depths and not exp.subsweeps:
        valid = ", ".join(map(str, sorted(all_depths)))
        raise ValueError(f"{exp.name} runs none of depths {depths}; valid: {valid}")


def sweep_args(exp: Experiment, sub: SubSweep) -> list[str]:
    """The ``gdepth sweep`` arguments of one sub-sweep, into the experiment's sweep folder."""
    return [*sub.overrides, f"seeds={exp.seeds}", *exp.extra, *exp.search,
            f"name={exp.folder}"]


def folder(exp: Experiment) -> Path:
    return Path(exp.out_dir, "sweeps", exp.folder)
