"""Pages and blocks generated from the config tree (``configs/``) and the model registry."""

from __future__ import annotations

import re
from pathlib import Path

from gdepth.docs.markdown import HEADER, cell, summary, table
from gdepth.paths import config_dir

GROUPS = ("dataset", "model", "norm", "train", "diagnostics", "search", "tracking", "launcher",
          "experiment")


def _yamls(group: str) -> list[Path]:
    return sorted(Path(config_dir(), group).glob("*.yaml"))


def groups() -> str:
    """docs/configuration/groups.md: each group's options, their schema, their YAML files."""
    root = Path(config_dir())
    lines = [HEADER.format(source="the YAML files under configs/"), "# Config groups", "",
             "A config group is a folder of `configs/`; pick one option per group on the "
             "command line (`dataset=cora model=gcn_res norm=nodenorm train=nodenorm2021`), "
             "or a comma list to sweep them. `gdepth list` prints the same options. The keys "
             "each schema accepts are in the [reference](reference.md); open an option below "
             "for the values it sets and where they come from.", ""]
    for group in GROUPS:
        rows = []
        for path in _yamls(group):
            match = re.search(rf"/schema/{group}/(\w+)@_here_", path.read_text())
            rows.append([f"`{path.stem}`", f"`{match.group(1)}`" if match else "–",
                         cell(summary(path))])
        lines += [f"## {group}", "", *table(["option", "schema", "what it is"], rows), ""]
        for path in _yamls(group):
            rel = path.relative_to(root.parent).as_posix()
            lines += [f'??? example "`{rel}`"', "", "    ```yaml", f'    --8<-- "{rel}"',
                      "    ```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def presets_block() -> str:
    """The ``train=`` presets: name and the first sentence of the YAML's header comment."""
    return "\n".join(table(["`train=`", "protocol"],
                           [[f"`{p.stem}`", cell(summary(p))] for p in _yamls("train")]))


def experiments_block() -> str:
    """``gdepth reproduce``'s experiments: name, the YAML's first line, the table it ships."""
    import yaml

    rows = []
    for path in _yamls("experiment"):
        published = yaml.safe_load(path.read_text()).get("published") or {}
        shipped = f"`{published['table']}.csv`" if published.get("table") else \
            "none (protocol only)"
        first = path.read_text().splitlines()[0].lstrip("# ")
        rows.append([f"`{path.stem}`", cell(first), shipped])
    return "\n".join(table(["`gdepth reproduce NAME`", "what it reruns",
                            "published numbers shipped"], rows))


def conventions_block() -> str:
    """Each model's depth convention, as its registry entry (and so every record) states it."""
    from gdepth.models import MODELS

    return "\n".join(table(["`model=`", "depth convention"],
                           [[f"`{name}`", cell(spec.convention)]
                            for name, spec in MODELS.items()]))
