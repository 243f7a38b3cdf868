"""Tidy result frames: which config keys make a table's rows, how a row is labelled, which
metrics a frame can be tabulated on (shared by :mod:`gdepth.report` and :mod:`gdepth.stats`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gdepth.search import study
from gdepth.sweep import collect, records

ROW_KEYS = ("model.name", "norm.name")
# Keys that vary between cells without defining a row of their own.
NOT_ROW = ("depth", "seed")


def row_keys(frame: pd.DataFrame) -> list[str]:
    """model.name, norm.name, then every other config key whose value varies between cells.

    Keys a per-cell search chose (``frame.attrs["searched"]``, set by :func:`write_report`)
    vary by design and make no rows: ``hyperparameters.csv`` lists them per cell. Nor does a
    key that moves one to one with the depth (a task's range r with depth = r or r + 1, as in
    ``transfer_range`` and ``alon2021_treematch``): it would give every depth a row of its own.
    """
    config_cols = [c for c in frame.columns if "." in c or c == "seeds"]
    searched = set(frame.attrs.get("searched", ()))
    varying = [
        c
        for c in config_cols
        if c not in ROW_KEYS and c not in NOT_ROW and c not in searched
        and frame[c].astype(str).nunique() > 1 and not follows_depth(frame, c)
    ]
    return [*ROW_KEYS, *sorted(varying)]


def follows_depth(frame: pd.DataFrame, key: str, depth: str = "depth") -> bool:
    """Whether ``key`` and the ``depth`` column determine each other over the frame's cells."""
    if depth not in frame.columns or key == depth:
        return False
    pairs = frame[[depth, key]].astype(str).drop_duplicates()
    return bool(pairs[depth].is_unique and pairs[key].is_unique)


def short(key: str) -> str:
    """A row key as the label names it: a group's choice by the group (``dataset.name`` →
    ``dataset``), a one-level option by its leaf (``model.dropout`` → ``dropout``)."""
    if key.endswith(".name") and key.count(".") == 1:
        return key.split(".", 1)[0]
    return key.split(".", 1)[-1] if key.count(".") == 1 else key


def label(keys: list[str], values: tuple) -> str:
    """A table row's label: model·norm, then ``key=value`` for the other row keys."""
    head = "·".join(str(v) for v in values[:2])
    rest = [str(v) if k == "dataset.name" else f"{short(k)}={v}"
            for k, v in zip(keys[2:], values[2:], strict=True)]
    return " ".join([head, *rest])


def is_accuracy(metric: str) -> bool:
    """Accuracies are shown in percent with one decimal and a best mark per column."""
    return metric in records.METRICS


def check_metric(frame: pd.DataFrame, metric: str) -> None:
    """Raise a one-line ValueError naming the valid metrics when ``metric`` is not one."""
    skip = {"key", "seed", "depth", "seeds", "status", "seed_status", "error"}
    numeric = [c for c in frame.columns if "." not in c and c not in skip
               and pd.api.types.is_numeric_dtype(frame[c])]
    valid = list(dict.fromkeys([*records.METRICS, *sorted(numeric)]))
    if metric not in valid:
        raise ValueError(f"unknown metric '{metric}'; valid: {', '.join(valid)}")


def table_records(directory: str | Path) -> tuple[list[dict], list[str]]:
    """The records a table of ``directory`` is made of, and the keys a per-cell search chose.

    A search's trial cells are left out (its final cell, re-run with the full seeds, stands for
    them: ``gdepth tune-report`` shows the trials), so ``gdepth table``, ``gdepth compare`` and
    ``gdepth report`` see the same rows."""
    trials = study.trial_only_keys(directory)
    found = [r for r in collect.load(directory) if r["key"] not in trials]
    searched = sorted({k for s in study.load_summaries(directory) for k in s["space"]})
    return found, searched


def table_frame(found: list[dict], searched: list[str]) -> pd.DataFrame:
    """The tidy frame of :func:`table_records`' records, the searched keys in its attrs."""
    frame = records.to_frame(found)
    frame.attrs["searched"] = list(searched)
    return frame
