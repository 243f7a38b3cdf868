"""Published depth tables, shipped as CSV files in ``gdepth/reproduce/tables/``.

Each file is a byte-for-byte copy of a table transcribed from the paper's official repository
(the reference tables the project keeps beside the code; ``tests/test_reproduce.py`` checks the
copies). Its first line is a ``#`` comment naming the source (paper, repository, file, commit)
and the unit; then a header and one row per published number. A missing number keeps its row
with an empty value and the reason in the ``note`` column (DropEdge's ``OOM``). The protocol
behind each table is in ``configs/experiment/<name>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TABLES = Path(__file__).resolve().parent / "tables"


@dataclass(frozen=True)
class Table:
    """A published table: its ``source`` comment line and its rows (every column as text)."""

    name: str
    source: str
    rows: pd.DataFrame


def names() -> list[str]:
    """The shipped tables (file stems)."""
    return sorted(p.stem for p in TABLES.glob("*.csv"))


def load(name: str) -> Table:
    """The table ``tables/<name>.csv``; unknown names fail with the list of valid ones."""
    path = TABLES / f"{name}.csv"
    if not path.is_file():
        raise ValueError(f"no published table '{name}'; valid: {', '.join(names())}")
    first = path.read_text().splitlines()[0]
    source = first.lstrip("#").strip() if first.startswith("#") else ""
    rows = pd.read_csv(path, comment=None, skiprows=1 if source else 0, dtype=str,
                       keep_default_na=False)
    return Table(name, source, rows)


def number(text: str) -> float | None:
    """The published value as a float, or None where the table has no number (blank, OOM)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
