"""docs/configuration/reference.md: every key of the typed schemas, from ``gdepth/config/``.

Types and defaults come from the dataclasses themselves; the meaning of a key is the comment
written beside it in the source of the package's modules (read with :mod:`tokenize` and
:mod:`ast`, since comments are not part of a class at run time), else its comment in
``configs/config.yaml``.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import tokenize
from enum import Enum
from pathlib import Path

from gdepth import compose, config
from gdepth.docs.markdown import HEADER, cell, code, table, value
from gdepth.paths import config_dir

GROUPS = ("dataset", "model", "norm", "train", "diagnostics", "search", "tracking")


@dataclasses.dataclass
class Item:
    """One field (or enum member) of a class and the comment that documents it."""

    name: str
    doc: str = ""
    note: str = ""  # a section comment above it that is not its own doc (it has one)


def _comments(source: str) -> tuple[dict[int, str], set[int]]:
    """line → its comment text; the set of lines that hold code."""
    comments, lines = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return comments, lines


def _open(text: str) -> bool:
    return text.count("(") > text.count(")") or text.count("[") > text.count("]")


def class_items(source: str) -> dict[str, list[Item]]:
    """Each class of ``source`` → its fields / members with their comments.

    The source's conventions: a comment on the field's line is its doc; comment lines below it
    continue that doc while a parenthesis is open, or, when the next field has its own comment,
    while they start in lower case; other comment lines above a field are its doc if it has
    none on its line, else a section note shown before it. A field with no comment right after
    one documented only from above shares that comment.
    """
    comments, code_lines = _comments(source)
    out: dict[str, list[Item]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        items: list[Item] = []
        prev_end, prev_trailing = None, False
        for stmt in node.body:
            if not isinstance(stmt, ast.AnnAssign | ast.Assign):
                continue
            target = stmt.target if isinstance(stmt, ast.AnnAssign) else stmt.targets[0]
            item = Item(target.id, comments.get(stmt.end_lineno, ""))
            start = stmt.lineno if prev_end is None else prev_end + 1
            block = [comments[n] for n in range(start, stmt.lineno)
                     if n in comments and n not in code_lines]
            prev = items[-1] if items else None
            while prev and prev.doc and block and (
                    _open(prev.doc) or (item.doc and block[0][:1].islower())):
                prev.doc += " " + block.pop(0)
            if block and not item.doc:
                item.doc = " ".join(block)
            elif block:
                item.note = " ".join(block)
            elif not item.doc and prev and prev.doc and not prev_trailing:
                item.doc = f"as `{prev.name}`"
            prev_trailing = stmt.end_lineno in comments
            items.append(item)
            prev_end = stmt.end_lineno
        out[node.name] = items
    return out


def root_comments(path: Path) -> dict[str, str]:
    """Top-level key → its comment in ``configs/config.yaml`` (with indented continuations)."""
    out: dict[str, str] = {}
    key = None
    for line in path.read_text().splitlines():
        top = re.match(r"^(\w+):[^#]*#\s?(.*)$", line)
        more = re.match(r"^\s+#\s?(.*)$", line)
        if top:
            key, out[top.group(1)] = top.group(1), top.group(2).strip()
        elif more and key:
            out[key] += " " + more.group(1).strip()
        else:
            key = None
    return out


def _enum(annotation: str) -> type[Enum] | None:
    """The Enum of gdepth.config that ``annotation`` names, if any."""
    for name, obj in vars(config).items():
        if (isinstance(obj, type) and issubclass(obj, Enum)
                and obj.__module__.startswith(config.__name__ + ".")
                and re.search(rf"\b{name}\b", annotation)):
            return obj
    return None


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        return "{}" if made == {} else "[]" if made == [] else "…"
    return value(f.default)


def _rows(cls: type, items: dict[str, list[Item]], prefix: str = "",
          fallback: dict[str, str] | None = None) -> list[str]:
    """key | type | default | meaning of the fields ``cls`` declares (not those it inherits
    unchanged); ``fallback``: comments for the fields the schema leaves undocumented."""
    own = {i.name: i for i in items.get(cls.__name__, [])}
    inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
                 for f in dataclasses.fields(base)}
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in inherited and f.name not in own:
            continue
        item = own.get(f.name, Item(f.name))
        doc = item.doc
        if not doc and f.name in GROUPS:
            doc = f"the `{f.name}` group: its option's keys, [below](#{f.name})"
        elif not doc and dataclasses.is_dataclass(f.default_factory):
            doc = f"the `{f.name}.*` keys, [below](#{f.name})"
        elif not doc and fallback:
            doc = fallback.get(f.name, "")
        enum = _enum(str(f.type))
        kind = code(str(f.type))
        if enum:
            kind = code(" | ".join(m.value for m in enum))
            members = items.get(enum.__name__, [])
            doc = "; ".join([doc] * bool(doc) + [f"`{m.name}`: {m.doc}" for m in members if m.doc])
        if item.note:
            rows.append([f"*{cell(item.note)}*", "", "", ""])
        rows.append([code(prefix + f.name), kind, code(_default(f)), cell(doc)])
    return table(["key", "type", "default", "meaning"], rows)


def _schemas() -> dict[str, list[tuple[str, type]]]:
    """group → [(schema name, dataclass)] as ``compose.register`` stores them."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    compose.register()
    repo = ConfigStore.instance().repo["schema"]
    return {group: [(name.removesuffix(".yaml"), OmegaConf.get_type(node.node))
                    for name, node in repo[group].items()] for group in repo}


def _users(group: str) -> dict[str, list[str]]:
    """schema name → the options of ``configs/<group>/`` built on it."""
    users: dict[str, list[str]] = {}
    for path in sorted(Path(config_dir(), group).glob("*.yaml")):
        match = re.search(rf"/schema/{group}/(\w+)@_here_", path.read_text())
        if match:
            users.setdefault(match.group(1), []).append(path.stem)
    return users


def reference() -> str:
    """The whole page."""
    items = {name: found for path in sorted(Path(config.__file__).parent.glob("*.py"))
             for name, found in class_items(path.read_text()).items()}
    lines = [HEADER.format(source="the dataclasses of gdepth/config/"),
             "# Configuration reference", "",
             "Every key gdepth's config accepts, read from its typed schemas: a value of the "
             "wrong type or a key not listed here fails when Hydra composes the config, naming "
             "the key. Set any of them on the command line (`depth=8`, `train.lr=0.005`, "
             "`model.hidden=128`); [Config groups](groups.md) lists the options that fill "
             "each group and the values each one sets. `required` keys are set by the group's "
             "options. Keys marked *not identity* say where or how a cell runs and are left "
             "out of its key.", "", "## Top level", ""]
    top = config.GdepthConfig
    lines += _rows(top, items, fallback=root_comments(Path(config_dir(), "config.yaml")))
    for f in dataclasses.fields(top):  # data, trial: a node of keys of its own
        if dataclasses.is_dataclass(f.default_factory):
            lines += ["", f"### {f.name}", "", *_rows(f.default_factory, items, f"{f.name}.")]
    schemas = _schemas()
    for group in (g for g in GROUPS if g in schemas):
        users = _users(group)
        lines += ["", f"## {group}", ""]
        for name, cls in schemas[group]:
            base = next((b for b in cls.__mro__[1:] if dataclasses.is_dataclass(b)), None)
            options = ", ".join(f"`{o}`" for o in users.get(name, [])) or "none yet"
            doc = (cls.__doc__ or "").strip()
            doc = "" if doc.startswith(cls.__name__ + "(") else " " + doc  # not dataclass's own
            what = (f"extends `{base.__name__}` with the keys below" if base
                    else "the keys every option of the group has")
            lines += [f"### {group}: `{name}`", "",
                      f"Schema `{cls.__name__}`: {what}. Options built on it: {options}.{doc}",
                      "", *_rows(cls, items)]
    return "\n".join(lines) + "\n"
