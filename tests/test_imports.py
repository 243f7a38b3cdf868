"""No import cycles among gdepth's modules (issue 17): the module graph is a DAG.

Every ``import`` / ``from ... import`` of a gdepth module counts, at the top of a file or inside
a function (an import deferred into a function to dodge a cycle is still a cycle: the two
modules still need each other), and importing ``gdepth.a.b`` counts as importing the package
``gdepth.a`` too (its ``__init__`` runs first).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gdepth"


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` is, or the deepest one above it (``gdepth.a.b.fn`` → ``gdepth.a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module → the gdepth modules it imports (anywhere in the file), packages included."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                if target.split(".")[0] != "gdepth":
                    continue
                owner = _owner(target, modules)
                if owner is not None:
                    deps |= _with_parents(owner)
        deps -= _with_parents(name)  # a module's own packages are imported before it
        graph[name] = deps & set(modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_gdepth_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the scan found the package
    found = cycles(graph)
    assert not found, "import cycles among gdepth modules: " + "; ".join(
        " <-> ".join(c) for c in found)


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, [["a", "b", "c"]]),
])
def test_cycle_finder_finds_exactly_the_cycles(edges, expected):
    assert cycles(edges) == expected


def test_a_deferred_import_and_a_package_import_count(tmp_path):
    pkg = tmp_path / "gdepth"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from gdepth import top\n")
    (pkg / "sub" / "leaf.py").write_text("X = 1\n")
    (pkg / "top.py").write_text("def f():\n    from gdepth.sub.leaf import X\n    return X\n")
    graph = import_graph(pkg)
    assert graph["gdepth.top"] == {"gdepth.sub", "gdepth.sub.leaf"}
    assert cycles(graph) == [["gdepth.sub", "gdepth.top"]]


# The cell runner and below (DESIGN.md "Nothing below the cell knows about Hydra"): the cell
# (its Hydra job hands it plain arguments), the typed schemas, the training code, models,
# norms, data and diagnostics must run from a plain script with no Hydra.
BELOW_THE_CELL = ("gdepth.cell", "gdepth.config", "gdepth.data", "gdepth.models", "gdepth.nn",
                  "gdepth.norms", "gdepth.train", "gdepth.train_trees", "gdepth.engine",
                  "gdepth.diagnostics.oversmoothing", "gdepth.diagnostics.run",
                  "gdepth.diagnostics.structure", "gdepth.graph_dropout", "gdepth.stats")


def external_imports(path: Path) -> set[str]:
    """The top-level names of the non-relative imports in a file, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def reached(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [m for m in graph if m == start or m.startswith(start + ".")]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    return seen


@pytest.mark.parametrize("start", BELOW_THE_CELL)
def test_nothing_below_the_cell_imports_hydra(start):
    graph, modules = import_graph(), _modules(PACKAGE)
    assert any(m == start or m.startswith(start + ".") for m in modules), start
    offenders = sorted(m for m in reached(graph, start)
                       if external_imports(modules[m]) & {"hydra", "hydra_plugins"})
    assert not offenders, f"{start} reaches Hydra through {offenders}"


def test_the_hydra_check_sees_a_hydra_import(tmp_path):
    pkg = tmp_path / "gdepth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("from gdepth import mid\n")
    (pkg / "mid.py").write_text("def f():\n    from hydra.core.hydra_config import HydraConfig\n")
    graph, modules = import_graph(pkg), _modules(pkg)
    assert reached(graph, "gdepth.low") == {"gdepth.low", "gdepth.mid"}
    assert "hydra" in external_imports(modules["gdepth.mid"])
