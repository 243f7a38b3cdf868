"""ogbn-arxiv through OGB's own ``PygNodePropPredDataset`` and ``Evaluator``.

Hu et al., *Open Graph Benchmark: Datasets for Machine Learning on Graphs*, NeurIPS 2020
(arXiv:2005.00687). The split is OGB's official time split (train ≤ 2017, val 2018,
test ≥ 2019); the citation graph is made undirected, as is usual for full-batch GNNs.

Two fixes for ogb 1.3.6 on a current stack:

* torch ≥ 2.6 loads with ``weights_only=True``, which refuses the PyG classes pickled in
  ogb's processed file; we allow exactly those (``DataEdgeAttr``, ``DataTensorAttr``,
  ``GlobalStorage``) with ``torch.serialization.add_safe_globals``.
* ogb asks ``input()`` when the folder lacks ``RELEASE_v1.txt`` (and before downloads over
  1 GB). We write the marker when the raw files are present and answer the prompts without
  reading stdin, so a run never blocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from gdepth.data.folders import prepare
from gdepth.data.graph import BaseGraph, make_base
from gdepth.data.splits import index_to_mask

OGB_NAME = "ogbn-arxiv"
URL = "http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip"  # ogb's master.csv
DIR_NAME = "ogbn_arxiv"
RELEASE = "RELEASE_v1.txt"
REQUIRED = [
    *(f"raw/{f}.csv.gz" for f in ("edge", "node-feat", "node-label", "node_year")),
    *(f"raw/num-{f}-list.csv.gz" for f in ("node", "edge")),
    *(f"split/time/{f}.csv.gz" for f in ("train", "valid", "test")),
]


class OgbAccuracy:
    """``(y_true, y_pred) -> accuracy`` through OGB's official ``Evaluator``.

    Both arguments are label tensors of shape ``[n]`` or ``[n, 1]``.
    """

    def __init__(self, name: str = OGB_NAME) -> None:
        from ogb.nodeproppred import Evaluator

        self.name = name
        self._evaluator = Evaluator(name)

    def __call__(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
        result = self._evaluator.eval(
            {
                "y_true": y_true.detach().cpu().reshape(-1, 1),
                "y_pred": y_pred.detach().cpu().reshape(-1, 1),
            }
        )
        return float(result["acc"])

    def __repr__(self) -> str:
        return f"OgbAccuracy({self.name!r})"


def allow_pyg_globals() -> None:
    """Let ``torch.load(weights_only=True)`` read the PyG objects in ogb's processed file."""
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    torch.serialization.add_safe_globals([DataEdgeAttr, DataTensorAttr, GlobalStorage])


def _refuse_large_download(prompt: str = "") -> str:
    raise RuntimeError(f"ogb asked for confirmation and stdin is not used: {prompt.strip()}")


@contextmanager
def _no_stdin_prompts() -> Iterator[None]:
    """Answer ogb's prompts without stdin: keep an existing folder, refuse > 1 GB downloads."""
    import ogb.nodeproppred.dataset_pyg as dataset_pyg
    import ogb.utils.url as url

    with (
        mock.patch.object(dataset_pyg, "input", lambda prompt="": "n", create=True),
        mock.patch.object(url, "input", _refuse_large_download, create=True),
    ):
        yield


def _build(family_root: Path) -> Any:
    from ogb.nodeproppred import PygNodePropPredDataset

    folder = family_root / DIR_NAME
    if folder.is_dir() and not (folder / RELEASE).exists() and (folder / "raw").is_dir():
        (folder / RELEASE).write_text("written by gdepth: raw files taken as the v1 release\n")
    with _no_stdin_prompts():
        return PygNodePropPredDataset(name=OGB_NAME, root=str(family_root))


def load_ogbn_arxiv(key: str, root: Path, mirror: Path | None) -> BaseGraph:
    """Load ogbn-arxiv from ``<root>/OGB/ogbn_arxiv`` (or the mirror, or OGB's download)."""
    allow_pyg_globals()
    dataset = prepare(key, "OGB", DIR_NAME, REQUIRED, root, mirror, _build, URL)
    data = dataset[0]
    n = int(data.num_nodes)
    idx = dataset.get_idx_split()
    masks = tuple(index_to_mask(idx[k], n) for k in ("train", "valid", "test"))
    return make_base(
        data.x,
        data.y,
        data.edge_index,
        dataset.num_classes,
        fixed_splits={"ogb": masks},  # type: ignore[dict-item]
        evaluator=OgbAccuracy(OGB_NAME),
    )
