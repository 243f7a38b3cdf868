"""``gdepth inspect dataset=A[,B,…] [dataset.KEY=V …] [name=N] [out_dir=D]``: graph structure.

Each dataset's config is composed through Hydra from the real config tree (so every dataset the
registry knows works, with its typed schema), the graph is loaded with :func:`gdepth.data.load`
and described by :func:`gdepth.diagnostics.structure.describe`. A ``dataset.KEY=V`` override
goes to every listed dataset whose config has KEY (``dataset=grid2d,small_world
dataset.num_nodes=400``); one that fits none of them is an error. The table (one column per
dataset) is printed to stdout and written with the receptive-field plot to
``<out_dir>/inspect/<name>/`` (name: the datasets joined by ``+``): ``table.md``,
``structure.csv`` (raw numbers) and ``receptive_field.png``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

USAGE = ("usage: gdepth inspect dataset=NAME[,NAME...] [dataset.KEY=VALUE ...] [name=N] "
         "[out_dir=D] [data.root=...]")


def _fail(message: str, code: int = 2) -> int:
    print(f"gdepth inspect: error: {message}", file=sys.stderr)
    return code


def _fmt(value: float, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, spec)


def _pct(value: float) -> str:
    percent = 100 * value
    return f"{percent:.{1 if percent >= 10 else 2 if percent >= 1 else 3}f}%"


def rows(s: Any) -> dict[str, str]:
    """The printed table's column for one :class:`~gdepth.diagnostics.structure.Structure`."""
    diameter = str(s.diameter) if s.diameter_exact else f"≥ {s.diameter} (double sweep)"
    sources = "all" if s.path_sources is None and s.rf_sources is None else \
        f"{s.path_sources or s.rf_sources} sampled"
    out = {
        "nodes": str(s.nodes),
        "edges (undirected)": str(s.edges),
        "mean degree": _fmt(s.mean_degree, ".2f"),
        "edge homophily": _fmt(s.homophily, ".3f"),
        "connected components": str(s.components),
        "largest component (LCC)": f"{s.lcc_nodes} ({s.lcc_nodes / s.nodes:.1%})",
        "diameter (LCC)": diameter,
        "mean shortest path (LCC)": _fmt(s.mean_path, ".2f"),
        "BFS sources (path, receptive field)": sources,
        "avg clustering": _fmt(s.clustering, ".3f"),
        "spectral gap 1-λ₂ (LCC)": _fmt(s.spectral_gap, ".4g"),
        "BFC min": _fmt(s.bfc_min, ".3f"),
        "BFC 5th percentile": _fmt(s.bfc_p05, ".3f"),
        "BFC share < -1": _fmt(s.bfc_below_minus1, ".1%"),
        "BFC edges": f"{s.bfc_edges}" + (" (sampled)" if s.bfc_sampled else ""),
    }
    for k, value in enumerate(s.receptive_field, start=1):
        out[f"receptive field k={k}"] = _pct(value)
    return out


def plot(structures: dict[str, Any], path: Path) -> None:
    """Receptive-field fraction against k, one line per dataset (log y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, s in structures.items():
        hops = range(1, len(s.receptive_field) + 1)
        ax.plot(hops, s.receptive_field, marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("k (hops = message-passing layers)")
    ax.set_ylabel("mean |B_k(v)| / n")
    ax.set_title("receptive field: share of the graph within k hops")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _parse(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(datasets, dataset.* overrides, other overrides)``; raises ValueError."""
    datasets: list[str] = []
    per_dataset, others = [], []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ValueError(f"unexpected argument '{arg}'; expected KEY=VALUE overrides")
        if key == "dataset":
            datasets += [v.strip() for v in value.split(",") if v.strip()]
        elif key.lstrip("+~").startswith("dataset."):
            per_dataset.append(arg)
        else:
            others.append(arg)
    return datasets, per_dataset, others


def compose_all(datasets: list[str], per_dataset: list[str], others: list[str]) -> list[Any]:
    """One composed config per dataset, each with the ``dataset.*`` overrides it has keys for."""
    from hydra import compose, initialize_config_dir

    from gdepth.paths import config_dir

    used: set[str] = set()
    configs = []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for name in datasets:
            base = compose("config", overrides=[f"dataset={name}", *others])
            fits = [o for o in per_dataset
                    if o.partition("=")[0].lstrip("+~").split(".", 1)[1] in base.dataset]
            used.update(fits)
            configs.append(compose("config", overrides=[f"dataset={name}", *others, *fits]))
    unused = [o for o in per_dataset if o not in used]
    if unused:
        raise ValueError(f"{unused[0]} fits none of the datasets {', '.join(datasets)}")
    return configs


def main(argv: list[str]) -> int:
    """Run ``gdepth inspect``; returns the exit code (2: bad command line, 1: a load failed)."""
    from gdepth import data

    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1].strip())
        return 0
    try:
        datasets, per_dataset, others = _parse(argv)
    except ValueError as err:
        return _fail(str(err))
    if not datasets:
        return _fail("name the datasets: dataset=NAME[,NAME...]; valid: "
                     + ", ".join(sorted(data.DATASETS)))
    for name in datasets:
        if name not in data.DATASETS:
            return _fail(f"unknown dataset '{name}'; valid: {', '.join(sorted(data.DATASETS))}")
    try:
        configs = compose_all(datasets, per_dataset, others)
    except Exception as err:  # Hydra's own message (and its cause's) names the bad key or value
        cause = err.__cause__
        text = f"{err}: {cause}" if cause is not None else str(err)
        return _fail(" ".join(line.strip() for line in text.strip().splitlines()))

    import pandas as pd
    from omegaconf import OmegaConf

    from gdepth.diagnostics.structure import describe

    structures = {}
    for name, cfg in zip(datasets, configs, strict=True):
        start = time.perf_counter()
        try:
            graph = data.load(OmegaConf.to_object(cfg.dataset), OmegaConf.to_object(cfg.data),
                              seed=0)
        except (data.DatasetUnavailable, ValueError) as err:
            return _fail(str(err), code=1)
        structures[name] = describe(graph.edge_index, graph.num_nodes, graph.y)
        print(f"inspect: {name}: {graph.num_nodes} nodes, {time.perf_counter() - start:.1f} s",
              file=sys.stderr)

    folder_name = configs[0].name or "+".join(datasets)
    out = Path(configs[0].out_dir, "inspect", folder_name)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({name: rows(s) for name, s in structures.items()})
    table.index.name = "measure"
    markdown = table.to_markdown()
    (out / "table.md").write_text(markdown + "\n")
    raw = pd.DataFrame({name: s.as_dict() for name, s in structures.items()})
    raw.to_csv(out / "structure.csv", index_label="measure")
    plot(structures, out / "receptive_field.png")
    print(markdown)
    print(f"\nstructure of {len(structures)} dataset(s) in {out}/ (table.md, structure.csv, "
          "receptive_field.png); diameter, mean path and spectral gap on the largest connected "
          "component")
    return 0
