"""``gdepth reproduce``: published depth tables rerun with their protocols, side by side.

- :mod:`gdepth.reproduce.published`: the published tables, shipped as CSV in ``tables/``;
- :mod:`gdepth.reproduce.experiment`: ``configs/experiment/<name>.yaml`` read as data and
  expanded into one ``gdepth sweep`` per entry and variant (per-backbone settings);
- :mod:`gdepth.reproduce.cells`: every cell composed and keyed as the sweep keys its record;
- :mod:`gdepth.reproduce.compare`: published | ours | Δ | verdict, as Markdown, CSV and PNG;
- :mod:`gdepth.reproduce.listing`: ``--list``, every experiment's cells and CPU estimate, cached;
- :mod:`gdepth.reproduce.command`: the command line.
"""

from __future__ import annotations

from gdepth.reproduce.command import main

__all__ = ["main"]
