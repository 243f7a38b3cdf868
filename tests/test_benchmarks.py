"""benchmarks/: the rendered tables carry the JSON's numbers, each committed results file matches
its committed Markdown, the PyG baseline with sparse features is the same model as with dense
ones, and ``sweep_speed.py`` writes what the renderer reads (slow: a real run)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of scripts beside the package
from benchmarks import meta, pyg_loop, render  # noqa: E402

META = {"started_at": "2026-01-02T03:04:05+00:00",
        "command": "python benchmarks/sweep_speed.py --workload t",
        "machine": {"cpu": "Test CPU 9000", "cores": 8, "usable_cores": 2, "memory_gib": 16.0,
                    "load_average_at_start": [1.5, 1.0, 0.5],
                    "load_average_at_end": [2.25, 1.0, 1.0], "platform": "Linux",
                    "python": "3.11.7"},
        "threads": 1, "device": {"name": "cpu"},
        "versions": {"torch": "2.13.0", "torch_geometric": "2.8.1", "gdepth": "0.1.0"},
        "git": {"commit": "0123456789abcdef" + "0" * 24, "dirty": False},
        "note": "another job on one core"}
ACC = [0.80, 0.81, 0.82]  # mean 81.0 %, sample std 1.0 %
WALL = {2: {"pyg": 10.0, "pyg_sparse": 5.0, "loop": 2.0, "batched": 1.0},
        8: {"pyg": 20.0, "pyg_sparse": 10.0, "loop": 8.0, "batched": 4.0}}


def sweep_result() -> dict:
    engines = ["pyg", "pyg_sparse", "loop", "batched"]
    wall = {e: sum(w[e] for w in WALL.values()) for e in engines}  # 30, 15, 10, 5
    return {"workload": "t", "model": "gcn_res", "dataset": "cora", "depths": [2, 8],
            "seeds": 3, "epochs": 10, "dropedge": 0.0,
            "adjacency": {"requested": "auto", "used": "sparse"}, "engines": engines,
            "wall_s": wall, "floor_s": 2.5, "matmul_gflops": 100.0,
            "rows": [{"depth": d, "wall_s": w, "test_acc": dict.fromkeys(engines, ACC)}
                     for d, w in WALL.items()],
            "seeds_per_batch": {"loop": 1, "batched": 3}, "baseline": "pyg",
            "agreement": {e: {"verdict": "agree", "z": 0.5, "p": {"2": 0.42, "8": 0.9}}
                          for e in engines[1:]},
            "cli": {"command": "gdepth sweep model=gcn_res", "wall_s": 10.0,
                    "cells_wall_s": 7.0, "library_wall_s": 6.0, "overhead_s": 4.0,
                    "overhead_share": 0.4, "outside_cells_s": 3.0}}


def write(tmp_path: Path, benchmark: str, results) -> Path:
    path = tmp_path / f"{benchmark}_x.json"
    path.write_text(json.dumps({"benchmark": benchmark, "meta": META, "results": results}))
    return path


def test_sweep_speed_tables_carry_the_json_numbers(tmp_path):
    text = render.render(write(tmp_path, "sweep_speed", [sweep_result()]))
    lines = text.splitlines()
    assert lines[0] == "## sweep_speed_x"
    assert ("Measured on Test CPU 9000 (8 cores, 2 usable; 1-min load average 1.50 at the start, "
            "2.25 at the end), 1 torch thread(s), device cpu; torch 2.13.0, PyG 2.8.1, gdepth "
            "0.1.0, commit `0123456789`, 2026-01-02T03:04:05+00:00.") in lines
    assert "Note: another job on one core" in lines
    assert "### t: gcn_res on cora, depths 2, 8 × 3 seeds × 10 epochs" in lines
    for row in ("| 2 | 10.0 | 5.0 | 2.0 | 1.0 |", "| 8 | 20.0 | 10.0 | 8.0 | 4.0 |",
                "| all | **30.0** | **15.0** | **10.0** | **5.0** |",
                "| sparse features | PyG, dense features | PyG, sparse features | 2.00× |",
                "| gdepth's loop and kernels | PyG, sparse features | gdepth loop (batches of 1) "
                "| 1.50× |",
                "| seed batching | gdepth loop (batches of 1) | gdepth batched | 2.00× |",
                "| all: PyG, dense features → gdepth batched | PyG, dense features | gdepth "
                "batched | 6.00× |",
                "| 2 | 81.0 ± 1.0 | 81.0 ± 1.0 | 0.42 | 81.0 ± 1.0 | 0.42 | 81.0 ± 1.0 | 0.42 |",
                "| library calls, `engine.run_seeds` (the batched column) | 6.0 |  |",
                "| of which outside the cells (start, Hydra, plan, table) | 3.0 | 30 % |",
                "| CLI overhead (`gdepth sweep` − library calls) | 4.0 | 40 % |"):
        assert row in lines, row
    assert "gdepth batched: 3 seed(s) per batch" in text
    assert "2.5 s; PyG, dense features 12.0×, PyG, sparse features 6.0×" in text
    assert "gdepth batched: agree (pooled z +0.50)" in text
    assert "shared DropEdge" not in text  # no such column: no such step


def test_step_gains_without_the_dense_column_start_from_pyg_sparse():
    steps = render.step_gains({"pyg_sparse": 12.0, "loop": 6.0, "batched": 6.0,
                               "batched_shared": 4.0})
    assert [(s["step"], s["ratio"]) for s in steps] == [
        ("gdepth's loop and kernels", 2.0), ("seed batching", 1.0),
        ("shared DropEdge draws", 1.5), ("all: PyG, sparse features → gdepth batched", 2.0)]


def test_a_run_without_pyg_columns_renders_without_a_test(tmp_path):
    r = sweep_result()
    r.update(engines=["loop", "batched"], baseline=None, agreement={}, dropedge=0.3,
             floor_s=None, wall_s={"loop": 10.0, "batched": 5.0})
    for row in r["rows"]:
        row["wall_s"] = {"loop": 5.0, "batched": 2.5}
    text = render.render(write(tmp_path, "sweep_speed", [r]))
    assert "| seed batching | gdepth loop (batches of 1) | gdepth batched | 2.00× |" in text
    assert "DropEdge 0.3" in text and "Welch" not in text and "Floor" not in text


def test_models_and_sgc_speed_tables(tmp_path):
    rows = [{"model": "appnp", "depth": 10, "wall_s": {"loop": 8.0, "batched": 2.5},
             "test_acc": {"loop": ACC, "batched": [0.82, 0.83, 0.84]}}]
    text = render.render(write(tmp_path, "models_speed",
                               {"dataset": "cora", "seeds": 3, "epochs": 50, "rows": rows}))
    assert "cora, 3 seeds, 50 epochs, wall time (s) of the cell per column" in text  # no CPU
    assert "| appnp | 10 | 8.0 | 2.5 | 3.20× |" in text.splitlines()
    assert "| appnp | 81.0 ± 1.0 | 83.0 ± 1.0 |" in text.splitlines()
    rows = [{"model": "gat", "depth": 2,
             "wall_s": {"pyg": 12.0, "loop": 8.0, "batched_before": 6.0, "batched": 4.0},
             "test_acc": dict.fromkeys(("pyg", "loop", "batched_before", "batched"), ACC)},
            *rows]
    lines = render.render(write(tmp_path, "models_speed", {"dataset": "cora", "seeds": 3,
                                                           "epochs": 50, "rows": rows}))
    lines = lines.splitlines()
    assert "| gat | 2 | 12.0 | 8.0 | 6.0 | 4.0 | 3.00× | 2.00× | 1.50× |" in lines
    assert "| appnp | 10 | – | 8.0 | – | 2.5 | – | 3.20× | – |" in lines
    for row in rows:  # the CPU clock where every row has it; engine=auto's column
        row["cpu_s"] = {k: v / 2 for k, v in row["wall_s"].items()}
    rows[0]["cpu_s"]["auto"], rows[0]["auto_seeds_per_batch"] = 1.5, 5
    rows[0]["test_acc"]["auto"] = ACC
    lines = render.render(write(tmp_path, "models_speed", {"dataset": "cora", "seeds": 3,
                                                           "epochs": 50, "rows": rows}))
    assert "the process's CPU time" in lines and "engine=auto's seeds per batch: gat 5." in lines
    lines = lines.splitlines()
    assert "| gat | 2 | 6.0 | 4.0 | 3.0 | 2.0 | 1.5 | 3.00× | 2.00× | 1.50× | 0.75× | 4.00× |" \
        in lines
    sgc = {"dataset": "cora", "depth": 32, "seeds": 3, "epochs": 200, "repeats": 3,
           "dropout": 0.6, "precompute_s": {"before": 0.5, "after": 0.125},
           "epochs_s": [{"dropout": 0.0, "before_s": 0.004, "after_s": 0.001}],
           "cell_s": {"before": 9.0, "after": 3.0, "appnp": 6.0}}
    lines = render.render(write(tmp_path, "sgc_speed", sgc)).splitlines()
    assert "| precompute A^K X | 0.500 s | 0.125 s | 4.00× |" in lines
    assert "| epochs, dropout 0.0 (per epoch) | 4.00 ms | 1.00 ms | 4.00× |" in lines
    assert "| cell, dropout 0.6 | 9.00 s | 3.00 s | 3.00× |" in lines


def test_prune_search_tables_carry_the_json_numbers(tmp_path):
    def arm(cpu, states, epochs, vals, best):
        return {"cpu_s": cpu, "wall_s": 2 * cpu, "best": {"number": best, "val_acc": 0.805},
                "search": {"pruner": "median", "pruner_startup_trials": 1,
                           "pruner_warmup_epochs": 4, "pruner_interval": 2},
                "final": {"test_acc": ACC},
                "trials": [{"state": s, "epochs": e, "val_acc": v}
                           for s, e, v in zip(states, epochs, vals, strict=True)]}

    result = {"dataset": "cora", "model": "gcn_res", "norm": "none", "depth": 4, "trials": 2,
              "startup_trials": 1, "search_seeds": 3, "seeds": 10, "epochs": 10,
              "arms": {"none": arm(100.0, ["COMPLETE"] * 2, [10, 10], [0.805, 0.7], 0),
                       "median": arm(60.0, ["COMPLETE", "PRUNED"], [10, 4], [0.805, 0.5], 0)}}
    lines = render.render(write(tmp_path, "prune_search", result)).splitlines()
    assert "| none | 2 / 0 | 20 of 20 | 100 | 1.00× | 200 | 80.5 (trial 0) | 81.0 ± 1.0 |" in lines
    assert "| median | 1 / 1 | 14 of 20 | 60 | 0.60× | 120 | 80.5 (trial 0) | 81.0 ± 1.0 |" in lines
    assert "| 1 | complete | 10 | 70.0 | pruned | 4 | 50.0 |" in lines


def test_tree_speed_table(tmp_path):
    row = {"model": "gat", "r": 4, "trees": 12800, "batch_size": 1024,
           "features": "sparse_csr", "levels_path": "levels",
           "message_passing_s_per_pass": 3.0, "levels_s_per_pass": 0.5,
           "message_passing_cpu_s_per_pass": 2.5, "levels_cpu_s_per_pass": 0.4,
           "speedup": 6.0, "cpu_speedup": 6.25,
           "message_passing_train_acc": 0.0625, "levels_train_acc": 0.06171875}
    text = render.render(write(tmp_path, "tree_speed", {"threads": 1, "passes": 4,
                                                        "mp_passes_r_ge_5": 2, "wall_s": 812.4,
                                                        "rows": [row]}))
    assert "(4 passes; 2 by message passing at r ≥ 5)" in text and "812 s in all" in text
    # rows at r = 4, 5 layers: 5 · 31 = 155 by message passing; by levels 8 + 12 + 6 + 3 + 1
    # = 30 (layer k: the levels from 4 - k, which the leaves reach, to 3, and up to 5 - k, which
    # the root needs, 2^level rows each)
    assert ("| gat | 4 | 12800 | 1024 | levels | 3 | 0.5 | 6.0× | 2.5 | 0.4 | 6.2× | 5.2× "
            "| 0.0625 / 0.0617 |") in text.splitlines()


def test_first_layer_speed_tables(tmp_path):
    found = {"dataset": "cora", "features": "sparse_csr (density 1.27%)", "shape": [5, 7],
             "hidden": 64, "dropout": 0.5, "repeats": 3,
             "own": [{"seeds": 10, "before": 0.08, "after": 0.02, "dense": 0.7}],
             "density": [{"density": 0.1, "1": {"sparse": 0.01, "dense": 0.04},
                          "10": {"sparse": 0.1, "dense": 0.5}}]}
    lines = render.render(write(tmp_path, "first_layer_speed", found)).splitlines()
    assert "| 10 | 80.00 | 20.00 | 700.00 | 4.00× | 35.00× |" in lines
    assert "| 10 % | 10.00 | 40.00 | 4.00× | 100.00 | 500.00 | 5.00× |" in lines


def test_batch_policy_and_incepgcn_memory_tables(tmp_path):
    found = {"dataset": "cora", "seeds": 10, "epochs": 4, "repeats": 2, "sizes": [1, 2, 5, 10],
             "rows": [{"model": "gcn", "depth": 8, "best": 5,
                       "cpu_epoch_s": {"1": 0.4, "2": 0.3, "5": 0.2, "10": 0.25},
                       "wall_epoch_s": {"1": 0.8, "2": 0.6, "5": 0.4, "10": 0.5}}]}
    lines = render.render(write(tmp_path, "batch_policy", found)).splitlines()
    assert "| gcn | 8 | 0.400 | 0.300 | **0.200** | 0.250 | 5 | 2.00× | 1.25× |" in lines
    mib = 2 ** 20
    step = {"loss": 1.5, "tensor_peak_bytes": 100 * mib, "rss_before_bytes": 300 * mib,
            "rss_peak_bytes": 420 * mib, "parameter_bytes": mib}
    found = {"model": "incepgcn", "dataset": "cora", "depth": 64, "old": "1d1170a" + "0" * 33,
             "rows": [{"seeds": 1, "before": step, "now": {**step, "rss_peak_bytes": 360 * mib}}]}
    lines = render.render(write(tmp_path, "incepgcn_memory", found)).splitlines()
    assert "| 1 | before | 100.0 | 300.0 | 420.0 | 1.00 | 1.500000 |" in lines
    assert "| 1 | now | 100.0 | 300.0 | 360.0 | 1.00 | 1.500000 |" in lines


def test_sign_hops_table(tmp_path):
    common = {"dataset": "coauthor_cs", "features": "sparse_csr", "nodes": 10, "in_dim": 5,
              "nnz_x": 12345, "nnz_adj": 678, "auto": "projected"}
    rows = [{**common, "K": 2, "cache_gib": 0.5, "step_s": {"projected": 0.05, "cached": 0.4},
             "precompute_s": 1.25, "max_abs_diff": 2.5e-7, "max_abs_logit": 12.0},
            {**common, "K": 32, "cache_gib": 16.0, "step_s": {"projected": 0.5}}]
    text = render.render(write(tmp_path, "sign_hops", {"seeds": 5, "repeats": 3,
                                                       "max_cache_gib": 4.0, "rows": rows}))
    lines = text.splitlines()
    assert "one training step of 5 seeds" in text and "left out above 4 GiB" in text
    assert ("| coauthor_cs | 2 | 12,345 | 678 | 0.50 | 50.00 | 400.00 | 8.0× | 1.25 s | "
            "2.5e-07 of 12.0 | projected |") in lines
    assert "| coauthor_cs | 32 | 12,345 | 678 | 16.00 | 500.00 | left out | – | – | – | " \
           "projected |" in lines


def test_the_shared_command_line_sets_and_records_the_threads():
    """``meta.parser``/``meta.start``: every benchmark's ``--threads`` reaches torch and the
    JSON's meta block records the threads torch then uses; unset, torch's own count stays."""
    before = torch.get_num_threads()
    parser = meta.parser("One line.\nstill the first paragraph.\n\nUsage: not this.", "x.json")
    assert parser.description == "One line. still the first paragraph."
    assert parser.parse_args([]).threads == 1
    wanted = 2 if before == 1 else 1
    try:
        args = parser.parse_args(["--threads", str(wanted), "--note", "busy"])
        device, info = meta.start(args)
        assert torch.get_num_threads() == wanted
        assert (str(device), info["threads"], info["note"]) == ("cpu", wanted, "busy")
        assert info["device"] == {"name": "cpu"}
        torch.set_num_threads(before)
        unset = meta.parser(None, "x.json", threads=None, mirror=False).parse_args([])
        assert unset.threads is None and unset.json is None and not hasattr(unset, "mirror")
        assert parser.parse_args(["--mirror", "m"]).mirror == "m"
        assert meta.start(unset)[1]["threads"] == before == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_an_unknown_benchmark_is_one_line_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"unknown benchmark 'nope'; valid: batch_policy, "
                                         r"incepgcn_memory, first_layer_speed, sweep_speed, "
                                         r"models_speed, sgc_speed, memory_arxiv, prune_search, "
                                         r"tree_speed, sign_hops$"):
        render.render(write(tmp_path, "nope", {}))


def test_committed_results_match_their_committed_markdown():
    """Generated, not typed: each results/X.json has its X.md, exactly ``render``'s output
    (``python benchmarks/render.py --write`` makes them)."""
    found = sorted(render.RESULTS.glob("*.json"))
    assert {"sweep_speed_cora_small.json", "sweep_speed_cora_d16_dropedge0.3.json"} <= {
        p.name for p in found}
    for path in found:
        md = path.with_suffix(".md")
        assert md.exists(), f"{md.name} missing: python benchmarks/render.py --write"
        assert md.read_text() == render.render(path), f"{md.name} is stale"
        info = json.loads(path.read_text())["meta"]
        assert len(info["git"]["commit"]) == 40 and info["threads"] >= 1
        assert info["machine"]["cpu"] and info["versions"]["torch"]


def test_sparse_dropout_keeps_the_pattern_and_drops_at_the_rate():
    torch.manual_seed(0)
    dense = (torch.rand(400, 300) < 0.05) * torch.rand(400, 300)
    x = dense.to_sparse_csr()
    assert pyg_loop.sparse_dropout(x, 0.5, training=False) is x
    out = pyg_loop.sparse_dropout(x, 0.5, training=True)
    assert torch.equal(out.crow_indices(), x.crow_indices())
    assert torch.equal(out.col_indices(), x.col_indices())
    kept = out.values() != 0
    torch.testing.assert_close(out.values()[kept], 2 * x.values()[kept])  # scaled by 1/(1-p)
    n = x.values().numel()  # Binomial(n, 1/2) dropped: within 5 standard deviations
    assert abs(int((~kept).sum()) - n / 2) < 5 * math.sqrt(n / 4)


def test_the_pyg_baseline_is_the_same_model_on_sparse_and_dense_features(mirror, data_cache,
                                                                         float64):
    from gdepth import config, data

    graph = data.load(config.dataset("cora", split="public"),
                      config.DataConfig(root=str(data_cache), mirror=str(mirror)), 0)
    x = graph.x.to(torch.float64)
    torch.manual_seed(0)
    model = pyg_loop.PygNet(graph.num_features, graph.num_classes, 4, residual=True).eval()
    with torch.no_grad():
        dense = model(x, graph.edge_index)
        sparse = model(x.to_sparse_csr(), graph.edge_index)
    # float64, the same products summed in another order: far below 1e-10
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-10)


@pytest.mark.slow  # two real runs, one with a gdepth sweep subprocess: ~40 s on 2 cores
def test_sweep_speed_writes_what_the_renderer_reads(tmp_path, mirror, data_cache):
    env = dict(os.environ, GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
               OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    script = [sys.executable, str(ROOT / "benchmarks/sweep_speed.py"), "--workload", "quick",
              "--depths", "2", "--seeds", "2", "--epochs", "2", "--threads", "1"]
    out = tmp_path / "speed.json"
    done = subprocess.run([*script, "--json", str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(out.read_text())
    assert found["benchmark"] == "sweep_speed"
    assert found["meta"]["threads"] == 1 and found["meta"]["versions"]["torch"] == (
        torch.__version__)
    (r,) = found["results"]
    assert r["engines"] == ["pyg", "pyg_sparse", "loop", "batched"]
    assert r["seeds_per_batch"] == {"loop": 1, "batched": 2}
    for e in r["engines"]:
        assert r["wall_s"][e] == pytest.approx(sum(row["wall_s"][e] for row in r["rows"]))
        (row,) = r["rows"]
        assert len(row["test_acc"][e]) == 2 and all(0 <= a <= 1 for a in row["test_acc"][e])
    for step in r["steps"]:
        assert step["ratio"] == pytest.approx(r["wall_s"][step["from"]] / r["wall_s"][step["to"]])
    cli = r["cli"]
    assert cli["library_wall_s"] == r["wall_s"]["batched"]
    assert cli["overhead_s"] == pytest.approx(cli["wall_s"] - cli["library_wall_s"])
    assert cli["wall_s"] > cli["cells_wall_s"] > 0
    cell = cli["cells"]["2"]
    assert cell["status"] == "ok" and len(cell["test_acc"]) == 2
    assert (cell["engine"]["used"], cell["engine"]["seeds_per_batch"]) == ("batched", 2)
    text = render.render(out)
    assert f"| 2 | {r['wall_s']['pyg']:.1f} | {r['wall_s']['pyg_sparse']:.1f} |" in text

    # DropEdge: the batched engine trains each seed alone (its own draws), unless shared
    out = tmp_path / "dropedge.json"
    done = subprocess.run([*script, "--dropedge", "0.3", "--engines",
                           "loop,batched,batched_shared", "--no-cli", "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (r,) = json.loads(out.read_text())["results"]
    assert r["dropedge"] == 0.3 and r["floor_s"] is None and "cli" not in r
    assert r["seeds_per_batch"] == {"loop": 1, "batched": 1, "batched_shared": 2}
    assert "DropEdge 0.3" in render.render(out)
