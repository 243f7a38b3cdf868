"""Loaders behind PyG's own dataset classes: Planetoid, Coauthor, Amazon.

* Planetoid (Cora, CiteSeer, PubMed): Yang, Cohen, Salakhutdinov, *Revisiting
  Semi-Supervised Learning with Graph Embeddings*, ICML 2016 (arXiv:1603.08861). The
  ``public`` split is theirs (20 labelled nodes per class, 500 val, 1000 test).
* Coauthor (CS, Physics) and Amazon (Computers, Photo): Shchur, Mumme, Bojchevski,
  Günnemann, *Pitfalls of Graph Neural Network Evaluation*, arXiv:1811.05868. They come
  without a split; the default is their random 20/30/rest per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gdepth.data.folders import prepare
from gdepth.data.graph import BaseGraph, make_base
from gdepth.data.splits import planetoid_fixed

_PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
_NPZ = {
    ("Coauthor", "CS"): "ms_academic_cs.npz",
    ("Coauthor", "Physics"): "ms_academic_phy.npz",
    ("Amazon", "Computers"): "amazon_electronics_computers.npz",
    ("Amazon", "Photo"): "amazon_electronics_photo.npz",
}


def raw_files(family: str, name: str) -> list[str]:
    """The raw files PyG reads, relative to the dataset folder ``<family>/<name>``."""
    if family == "Planetoid":
        return [f"raw/ind.{name.lower()}.{s}" for s in _PLANETOID_SUFFIXES]
    return [f"raw/{_NPZ[(family, name)]}"]


def _dataset_class(family: str) -> Any:
    from torch_geometric.datasets import Amazon, Coauthor, Planetoid

    return {"Planetoid": Planetoid, "Coauthor": Coauthor, "Amazon": Amazon}[family]


def load_pyg(key: str, family: str, name: str, root: Path, mirror: Path | None) -> BaseGraph:
    """Load ``<family>/<name>`` through PyG's class, via cache → mirror → download.

    Planetoid datasets carry their ``public`` masks and the ``fastgcn`` and ``public_rest``
    splits derived from them as fixed splits (:func:`gdepth.data.splits.planetoid_fixed`).
    """
    cls = _dataset_class(family)

    def build(family_root: Path) -> Any:
        return cls(str(family_root), name)

    url = str(cls.url)
    dataset = prepare(key, family, name, raw_files(family, name), root, mirror, build, url)
    data = dataset[0]
    fixed = {}
    if family == "Planetoid":
        fixed = planetoid_fixed(data.train_mask, data.val_mask, data.test_mask)
    return make_base(data.x, data.y, data.edge_index, dataset.num_classes, fixed)
