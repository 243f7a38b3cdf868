"""Record files under faults: truncated or foreign files, other schema versions, a full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gdepth import report
from gdepth.sweep import collect, plan, records

CONFIG = {"dataset": {"name": "csbm"}, "model": {"name": "gcn"}, "norm": {"name": "none"},
          "depth": 2, "seeds": 1, "train": {"name": "default", "lr": 0.01}}


def make_record(depth: int, acc: float = 0.5, schema: int = records.SCHEMA_VERSION) -> dict:
    config = {**CONFIG, "depth": depth}
    seed = {"seed": 0, "status": "ok", "train_acc": acc, "val_acc": acc, "test_acc": acc,
            "selected_epoch": 1, "epoch_s": 0.01}
    return {"schema": schema, "key": records.cell_key(config), "status": "ok", "error": None,
            "config": config, "seeds": [seed], "summary": records.summarize([seed]),
            "finished_at": "2026-01-01T00:00:00+00:00"}


def test_truncated_foreign_and_other_schema_records_are_marked_not_dropped(tmp_path):
    good, cut, foreign, old, new, v1 = (make_record(d) for d in (2, 4, 8, 16, 32, 64))
    for rec in (good, cut, foreign, old, new, v1):
        plan.add(tmp_path, {rec["key"]: {"label": plan.label(rec["config"]), "overrides": [],
                                         "config": rec["config"]}})
    records.write(records.record_path(tmp_path, good["key"]), good)
    text = json.dumps(cut)
    records.record_path(tmp_path, cut["key"]).write_text(text[: len(text) // 2])  # truncated
    records.record_path(tmp_path, foreign["key"]).write_text('{"hello": 1}')
    records.write(records.record_path(tmp_path, old["key"]), {**old, "schema": 0})
    records.write(records.record_path(tmp_path, new["key"]), {**new, "schema": 99})
    records.write(records.record_path(tmp_path, v1["key"]), {**v1, "schema": 1})

    _, why = records.inspect(records.record_path(tmp_path, cut["key"]))
    assert why.startswith(f"unreadable record {cut['key']}.json: JSONDecodeError")
    assert "not a gdepth record" in records.inspect(records.record_path(tmp_path,
                                                                        foreign["key"]))[1]
    assert "schema 0, this gdepth reads 1, 2: the cell runs again on resume" in \
        records.inspect(records.record_path(tmp_path, old["key"]))[1]
    assert "schema 99, this gdepth reads 1, 2: upgrade gdepth" in \
        records.inspect(records.record_path(tmp_path, new["key"]))[1]

    found = {r["config"]["depth"]: r for r in collect.load(tmp_path)}
    assert {d: r["status"] for d, r in found.items()} == {
        2: "ok", 4: "corrupt", 8: "corrupt", 16: "corrupt", 32: "corrupt", 64: "ok"}
    assert "schema 99" in found[32]["error"]
    table, _ = report.write_report(tmp_path)
    assert list(table.loc["gcn·none"]) == ["50.0 ± 0.0 (1)", "corrupt", "corrupt", "corrupt",
                                           "corrupt", "50.0 ± 0.0 (1)"]


def test_write_is_atomic_and_a_full_disk_keeps_the_old_record(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {mounted.stderr.strip()}")
    try:
        path = records.record_path(disk, "abc")
        first = make_record(2, acc=0.25)
        records.write(path, first)
        filler = disk / "filler"
        with open(filler, "wb", buffering=0) as fh:  # fill the disk to the last byte
            with pytest.raises(OSError) as full:
                while True:
                    fh.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        big = {**make_record(2, acc=0.75), "curve": ["x" * 1000] * 200}
        with pytest.raises(records.RecordWriteError) as caught:
            records.write(path, big)
        assert caught.value.errno == errno.ENOSPC
        assert str(caught.value) == f"[Errno 28] cannot write {path}: No space left on device"
        assert json.loads(path.read_text()) == first  # the finished record is intact
        assert sorted(p.name for p in path.parent.iterdir()) == ["abc.json"]  # no temp file
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_unwritable_folder_gives_one_line_with_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(records.RecordWriteError, match=r"cannot write .*file/records/k.json"):
        records.write(records.record_path(blocker, "k"), make_record(2))


def test_concurrent_plan_updates_lose_no_cell(tmp_path):
    """4 processes merge 25 cells each into one plan.json at once: all 100 are there."""
    code = ("import sys; from gdepth.sweep import plan\n"
            "for i in range(25):\n"
            "    k = f'{sys.argv[1]}-{i}'\n"
            "    plan.add(sys.argv[2], {k: {'label': k, 'overrides': [], 'config': {}}})\n")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code, uuid.uuid4().hex[:6], str(tmp_path)],
                              env=env) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    merged = plan.read(tmp_path)
    assert len(merged["cells"]) == 100 and len(merged["sweeps"]) == 100
    assert not list(Path(tmp_path).glob(".*.tmp"))


def test_options_at_their_neutral_value_keep_the_old_cell_key():
    """A config written before the tricks / diagnostics existed hashes like one that has them at
    their neutral values, so upgrading gdepth does not orphan finished records."""
    import copy

    old = {"dataset": {"name": "cora", "split": "public"},
           "model": {"name": "gcn", "hidden": 64}, "norm": {"name": "none"},
           "train": {"name": "default", "lr": 0.01}, "depth": 2, "seeds": 3}
    new = copy.deepcopy(old)
    new["dataset"].update(val_size=None, num_splits=None, train_frac=0.6)
    new["model"].update(skip="none", lamda=0.5, identity_mapping=False)
    new["train"].update(dropedge=0.0, label_smoothing=0.0, dataset_overrides={})
    new["diagnostics"] = dict(records.NEUTRAL["diagnostics"])
    before = copy.deepcopy(new)
    assert records.cell_key(new) == records.cell_key(old)
    assert new == before  # the config itself is not modified
    new["train"]["dropedge"] = 0.5
    assert records.cell_key(new) != records.cell_key(old)
    new["train"]["dropedge"] = 0.0
    new["diagnostics"]["name"] = "smoothing"
    assert records.cell_key(new) != records.cell_key(old)


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_records_honour_the_umask_as_any_other_file(tmp_path, umask):
    """On a shared cluster the group reads (0o022) or also writes (0o002) the records."""
    old = os.umask(umask)
    try:
        path = records.record_path(tmp_path, "abc")
        records.write(path, make_record(2))
        records.write(path, make_record(4))  # a rewrite too (it replaces the file)
        plan.add(tmp_path, {"abc": {"label": "x", "overrides": [], "config": {}}})
        (tmp_path / "other.txt").write_text("")  # what any other file gets
    finally:
        os.umask(old)
    expected = (tmp_path / "other.txt").stat().st_mode & 0o777
    assert expected == 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == expected
    assert (tmp_path / plan.PLAN).stat().st_mode & 0o777 == expected
    assert records.read(path)["config"]["depth"] == 4
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.json"]  # no temp file


def test_a_presets_per_model_table_is_not_part_of_a_cells_identity():
    base = {"dataset": {"name": "cora"}, "model": {"name": "appnp", "hidden": 64},
            "norm": {"name": "none"}, "depth": 4,
            "train": {"name": "bot2021", "lr": 0.01,
                      "per_model": {"rows": {"appnp": {"all": {"lr": 0.01}},
                                             "gcnii": {"all": {"lr": 0.01}}},
                                    "cell": {"lr": 0.01}}}}
    edited = json.loads(json.dumps(base))
    edited["train"]["per_model"]["rows"]["gcnii"]["all"]["lr"] = 0.5  # another model's row
    assert records.cell_key(edited) == records.cell_key(base)
    changed = json.loads(json.dumps(base))
    changed["train"]["lr"] = 0.02  # this cell's own value
    assert records.cell_key(changed) != records.cell_key(base)
    assert "per_model" not in records.identity(base)["train"]
