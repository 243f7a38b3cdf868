"""Tests for gdepth.data: real datasets through the read-only mirror, checked numbers."""

from __future__ import annotations

import gzip
import hashlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
import torch

from gdepth import config
from gdepth.data import DATASETS, NODES, DatasetUnavailable, Graph, clear_cache, load
from gdepth.data.csbm import csbm

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "datasets"

needs_mirror = pytest.mark.usefixtures("mirror")  # skips locally, fails in CI, if absent


@pytest.fixture(scope="session")
def cache_root(data_cache: Path) -> Path:
    """The session's writable cache (conftest's ``data_cache``)."""
    return data_cache


def ds(**values):
    """The dataset config ``values`` give, with the dataset's own split unless one is given."""
    spec = DATASETS.get(values["name"])
    values.setdefault("split", spec.default_split if spec else "public")
    return config.group("dataset", **values)


@pytest.fixture(scope="session")
def data_cfg(cache_root: Path) -> NS:
    return NS(root=str(cache_root), mirror=str(MIRROR))


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def _check_graph(g: Graph, nodes: int, edges: int, features: int, classes: int) -> None:
    from torch_geometric.utils import contains_self_loops, is_undirected

    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (
        nodes,
        edges,
        features,
        classes,
    )
    assert g.x.dtype == torch.float32 and g.y.dtype == torch.int64
    assert g.edge_index.dtype == torch.int64 and g.y.shape == (nodes,)
    assert is_undirected(g.edge_index, num_nodes=nodes)
    assert not contains_self_loops(g.edge_index)
    masks = g.train_mask.int() + g.val_mask.int() + g.test_mask.int()
    assert int(masks.max()) <= 1, "masks overlap"


def _sizes(g: Graph) -> tuple[int, int, int]:
    return int(g.train_mask.sum()), int(g.val_mask.sum()), int(g.test_mask.sum())


@needs_mirror
def test_cora_public_split_via_mirror(data_cfg: NS, cache_root: Path) -> None:
    before = _snapshot(MIRROR)
    cfg = config.group("dataset", name="cora", split="public")
    g = load(cfg, data_cfg, seed=0)
    _check_graph(g, 2708, 10556, 1433, 7)
    assert g.num_nodes == NODES["cora"]  # the count estimates and the batch policy read
    assert _sizes(g) == (140, 500, 1000) and g.split == "public"
    assert _snapshot(MIRROR) == before, "the mirror was written to"
    assert (cache_root / "Planetoid" / "Cora" / "raw" / "ind.cora.x").is_file()
    assert not [p for p in (cache_root / "Planetoid").iterdir() if p.name.startswith(".")]
    again = load(cfg, data_cfg, seed=1)  # per-process cache: same tensors, not re-parsed
    assert again.x is g.x and torch.equal(again.train_mask, g.train_mask)


@needs_mirror
def test_cora_random_per_class(data_cfg: NS) -> None:
    g = load(ds(name="cora", split="random_per_class"), data_cfg, seed=4)
    assert _sizes(g) == (140, 210, 2708 - 350)
    assert g.split == "random_per_class(20/30/rest, seed=4)"


@needs_mirror
def test_citeseer(data_cfg: NS) -> None:
    g = load(ds(name="citeseer"), data_cfg, seed=0)
    _check_graph(g, 3327, 9104, 3703, 6)
    assert g.num_nodes == NODES["citeseer"]
    assert _sizes(g) == (120, 500, 1000)
    assert repr(g).startswith("Graph(name='citeseer', nodes=3327, edges=9104, features=3703")


@needs_mirror
def test_coauthor_cs_random_splits(data_cfg: NS) -> None:
    rng_before = torch.get_rng_state()
    g0 = load(ds(name="coauthor_cs"), data_cfg, seed=0)
    _check_graph(g0, 18333, 163788, 6805, 15)
    assert g0.num_nodes == NODES["coauthor_cs"]
    per_class = lambda m: torch.bincount(g0.y[m], minlength=15)  # noqa: E731
    assert per_class(g0.train_mask).tolist() == [20] * 15
    assert per_class(g0.val_mask).tolist() == [30] * 15
    covered = g0.train_mask.int() + g0.val_mask.int() + g0.test_mask.int()
    assert bool((covered == 1).all()), "masks must be disjoint and cover every node"
    assert _sizes(g0) == (300, 450, 18333 - 750)
    g1 = load(ds(name="coauthor_cs"), data_cfg, seed=1)
    g0b = load(ds(name="coauthor_cs"), data_cfg, seed=0)
    assert not torch.equal(g0.train_mask, g1.train_mask)
    assert torch.equal(g0.train_mask, g0b.train_mask) and torch.equal(g0.val_mask, g0b.val_mask)
    assert torch.equal(torch.get_rng_state(), rng_before), "split used the global RNG"


def _write_csv_gz(path: Path, rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("".join(",".join(str(v) for v in row) + "\n" for row in rows))


def _fake_arxiv(folder: Path, n: int = 60, feats: int = 128, release: bool = True) -> dict:
    """A tiny dataset in ogbn-arxiv's raw layout: a ring plus one chord, directed."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, feats, generator=gen)
    y = torch.arange(n) % 40
    edges = [[i, (i + 1) % n] for i in range(n)] + [[0, n // 2]]
    raw = folder / "raw"
    _write_csv_gz(raw / "edge.csv.gz", edges)
    _write_csv_gz(raw / "node-feat.csv.gz", [[f"{v:.6f}" for v in row] for row in x.tolist()])
    _write_csv_gz(raw / "node-label.csv.gz", [[int(v)] for v in y])
    _write_csv_gz(raw / "node_year.csv.gz", [[2010 + i % 10] for i in range(n)])
    _write_csv_gz(raw / "num-node-list.csv.gz", [[n]])
    _write_csv_gz(raw / "num-edge-list.csv.gz", [[len(edges)]])
    parts = {"train": range(0, 40), "valid": range(40, 50), "test": range(50, n)}
    for part, idx in parts.items():
        _write_csv_gz(folder / "split" / "time" / f"{part}.csv.gz", [[i] for i in idx])
    if release:
        (folder / "RELEASE_v1.txt").write_text("v1\n")
    return {"x": x, "y": y, "num_edges": 2 * len(edges)}


@pytest.mark.parametrize("release", [True, False], ids=["release", "no-release-file"])
def test_ogbn_arxiv_from_tiny_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, release: bool
) -> None:
    from torch_geometric.utils import is_undirected

    mirror = tmp_path / "mirror"
    truth = _fake_arxiv(mirror / "OGB" / "ogbn_arxiv", release=release)
    before = _snapshot(mirror)

    def no_stdin(*args: object) -> str:
        raise AssertionError("the loader read stdin")

    monkeypatch.setattr("builtins.input", no_stdin)
    g = load(ds(name="ogbn_arxiv"), NS(root=tmp_path / "cache", mirror=mirror), seed=0)
    assert _snapshot(mirror) == before
    assert (g.num_nodes, g.num_features, g.num_classes) == (60, 128, 40)
    assert _sizes(g) == (40, 10, 10) and g.split == "ogb"
    assert g.train_mask[:40].all() and g.test_mask[50:].all()
    assert g.num_edges == truth["num_edges"] and is_undirected(g.edge_index)
    assert torch.allclose(g.x, truth["x"], atol=1e-5) and torch.equal(g.y, truth["y"])
    pred = g.y.clone()
    pred[:15] = (pred[:15] + 1) % 40  # 15 of 60 wrong
    assert g.evaluator is not None
    assert g.evaluator(g.y, pred) == pytest.approx(0.75)
    assert g.evaluator(g.y.view(-1, 1), g.y.view(-1, 1)) == pytest.approx(1.0)


CSBM = {
    "num_nodes": 2000,
    "num_classes": 4,
    "avg_degree": 10.0,
    "snr": 2.0,
    "num_features": 16,
    "graph_seed": 7,
}


@pytest.mark.parametrize("h", [0.8, 0.2])
def test_csbm_statistics(h: float) -> None:
    """Homophily within 0.03, mean degree within 0.5, class-mean distance within 0.15."""
    from torch_geometric.utils import homophily

    g = load(ds(name="csbm", homophily=h, **CSBM), None, seed=0)
    n, c, f = CSBM["num_nodes"], CSBM["num_classes"], CSBM["num_features"]
    _check_graph(g, n, g.num_edges, f, c)
    assert abs(homophily(g.edge_index, g.y, method="edge") - h) < 0.03
    assert abs(g.num_edges / n - CSBM["avg_degree"]) < 0.5
    means = torch.stack([g.x[g.y == k].mean(0) for k in range(c)]).double()
    sq = [(means[a] - means[b]).pow(2).sum() for a in range(c) for b in range(a + 1, c)]
    # E‖m̂_a − m̂_b‖² = snr² + 2F/n_c (the empirical means carry noise of variance 1/n_c)
    snr_hat = float(torch.stack(sq).mean() - 2 * f / (n / c)) ** 0.5
    assert abs(snr_hat - CSBM["snr"]) < 0.15
    assert _sizes(g) == (80, 120, n - 200)


_HASH = (
    "import hashlib, torch; from gdepth.data.csbm import csbm; "
    "t = csbm(**{args}); print(hashlib.sha256(b''.join(v.numpy().tobytes() for v in t))"
    ".hexdigest())"
)


def test_csbm_deterministic_across_processes() -> None:
    args = dict(CSBM, homophily=0.8)
    rng_before = torch.get_rng_state()
    a, b = csbm(**args), csbm(**args)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert torch.equal(torch.get_rng_state(), rng_before), "csbm advanced the global RNG"
    assert not torch.equal(a[2], csbm(**dict(args, graph_seed=8))[2])
    here = hashlib.sha256(b"".join(v.numpy().tobytes() for v in a)).hexdigest()
    code = _HASH.format(args=repr(args))
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == here


def test_csbm_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="num_features"):
        csbm(num_features=2, num_classes=4)
    with pytest.raises(ValueError, match="edge probability"):
        csbm(num_nodes=20, avg_degree=50.0)


def test_pubmed_unavailable_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_geometric.datasets  # noqa: F401  (import time is not download time)

    def blocked(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.delenv("GDEPTH_OFFLINE", raising=False)
    root, mirror = tmp_path / "cache", tmp_path / "mirror"
    mirror.mkdir()
    clear_cache()
    for _ in range(2):  # a failed attempt leaves nothing that breaks the next one
        start = time.perf_counter()
        with pytest.raises(DatasetUnavailable) as info:
            load(ds(name="pubmed"), NS(root=root, mirror=mirror), seed=0)
        assert time.perf_counter() - start < 5.0
        msg = str(info.value)
        assert "\n" not in msg and "'pubmed'" in msg
        assert str(root / "Planetoid" / "PubMed") in msg
        assert str(mirror / "Planetoid" / "PubMed") in msg and "GDEPTH_DATA_MIRROR" in msg
        assert not (root / "Planetoid" / "PubMed").exists()
        assert not list((root / "Planetoid").iterdir()), "staging folder left behind"


def test_download_gives_up_on_a_hanging_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a DNS lookup that hangs is abandoned after the download timeout."""
    import gdepth.data.folders as folders

    def hang(*args: object, **kwargs: object) -> None:
        time.sleep(3.0)
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(folders, "DOWNLOAD_TIMEOUT_S", 0.5)
    monkeypatch.delenv("GDEPTH_OFFLINE", raising=False)
    monkeypatch.delenv("GDEPTH_DATA_MIRROR", raising=False)  # a mirror would serve the files
    clear_cache()
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="amazon_photo.*cannot reach github.com:443"):
        load(ds(name="amazon_photo"), NS(root=tmp_path, mirror=None), seed=0)
    assert time.perf_counter() - start < 2.5


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(ValueError) as info:
        load(ds(name="foo"), None, seed=0)
    assert str(info.value) == f"unknown dataset 'foo'; valid: {', '.join(sorted(DATASETS))}"
    assert "citeseer, coauthor_cs" in str(info.value)


def test_invalid_split_names_choices() -> None:
    valid = "public, fastgcn, public_rest, random_per_class, full_supervised"
    with pytest.raises(ValueError, match=rf"invalid split 'ogb'.*valid: {valid}"):
        load(ds(name="cora", split="ogb"), None, seed=0)


def test_registry_has_descriptions() -> None:
    assert {
        "cora",
        "citeseer",
        "pubmed",
        "coauthor_cs",
        "coauthor_physics",
        "amazon_computers",
        "amazon_photo",
        "ogbn_arxiv",
        "csbm",
    } <= set(DATASETS)
    for spec in DATASETS.values():
        assert spec.description and "\n" not in spec.description
        assert spec.default_split in spec.splits


def test_offline_switch_never_touches_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used although GDEPTH_OFFLINE is set")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setenv("GDEPTH_OFFLINE", "1")
    monkeypatch.delenv("GDEPTH_DATA_MIRROR", raising=False)  # a mirror would serve the files
    clear_cache()
    with pytest.raises(DatasetUnavailable, match="downloads are off: GDEPTH_OFFLINE is set"):
        load(ds(name="citeseer"), NS(root=tmp_path / "cache", mirror=None), seed=0)
