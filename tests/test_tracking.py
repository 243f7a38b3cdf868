"""tracking=mlflow|tensorboard: a real sweep's runs read back equal to its records.

Each sweep test runs ``gdepth sweep`` in a subprocess (csbm, depths 1 and 2, 2 seeds, 5 epochs)
and reads the tracker's store back with the tracker's own reader (MLflow's client on the
default sqlite store, TensorBoard's EventAccumulator on the event files).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from gdepth import cli
from gdepth.paths import config_dir
from gdepth.sweep import collect, plan, tracking

GDEPTH = [str(Path(sys.executable).with_name("gdepth"))]
TINY = ["dataset=csbm", "depth=1,2", "seeds=2", "train.epochs=5", "progress=false",
        "threads=1", "name=t"]
PER_SEED = ("train_acc", "val_acc", "test_acc", "train_loss", "val_loss", "selected_epoch",
            "epochs_run")
ROOT = Path(__file__).resolve().parents[1]


def need(module: str) -> None:
    """Skip without the optional extra; fail under CI, which installs it (``.[dev]``)."""
    if importlib.util.find_spec(module) is None:
        message = f"{module} not installed (pip install 'gdepth[{module}]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1",
                GDEPTH_DATA=str(tmp_path / "data"))


def sweep(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, dict]:
    """Run ``gdepth sweep TINY args``; its records by key."""
    done = subprocess.run([*GDEPTH, "sweep", *TINY, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "could not log" not in done.stderr and "gdepth[" not in done.stderr, done.stderr
    found = collect.load(cwd / "outputs/sweeps/t", planned=False)  # seed jobs' parts merged
    assert sorted(r["config"]["depth"] for r in found) == [1, 2]
    assert all(r["status"] == "ok" and len(r["seeds"]) == 2 for r in found)
    return {r["key"]: r for r in found}


def check_mlflow(found: dict[str, dict], uri: str, parts: bool = False) -> None:
    """Every record (or seed job's part of one) is a FINISHED run of experiment ``t`` in the
    store at ``uri`` whose parameters, metrics and curves are the record's."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("t")  # the default experiment: the sweep's name
    runs = client.search_runs([experiment.experiment_id])
    per_cell = 2 if parts else 1  # seeds_per_job=1: one run per seed job
    assert sorted(r.data.tags["gdepth.key"] for r in runs) == sorted(per_cell * list(found))
    seen = []
    for run in runs:
        record = found[run.data.tags["gdepth.key"]]
        seeds = record["seeds"]
        name = f"csbm-gcn-none-L{record['config']['depth']}"
        if parts:
            (seed,) = [s for s in seeds if f"{s['seed']}-{s['seed'] + 1}" ==
                       run.data.tags["gdepth.seeds"]]
            seeds, name = [seed], f"{name}-seeds{seed['seed']}-{seed['seed'] + 1}"
        seen += [(record["key"], s["seed"]) for s in seeds]
        assert run.info.status == "FINISHED"
        assert run.info.run_name == name
        params = run.data.params
        assert params["depth"] == str(record["config"]["depth"])
        assert (params["model.name"], params["dataset.name"]) == ("gcn", "csbm")
        assert (params["train.epochs"], params["seeds"], params["train.lr"]) == ("5", "2", "0.01")

        def history(metric, run_id=run.info.run_id):
            return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))

        for metric in PER_SEED:  # step = seed, the recorded value exactly (float64 store)
            assert history(metric) == [(s["seed"], s[metric]) for s in seeds]
        for metric in ("test_acc", "val_acc"):  # a seed job's part has no cell mean
            summary = record["summary"][metric]
            assert history(f"mean/{metric}") == ([] if parts else [(0, summary["mean"])])
            assert history(f"std/{metric}") == ([] if parts else [(0, summary["std"])])
        for seed in seeds:  # per-epoch curves: one point per epoch run
            val = history(f"curve/seed_{seed['seed']}/val_acc")
            test = dict(history(f"curve/seed_{seed['seed']}/test_acc"))
            assert [e for e, _ in val] == list(range(1, seed["epochs_run"] + 1))
            best = max(v for _, v in val)  # best_val_acc: the first epoch at the best val
            assert seed["selected_epoch"] == next(e for e, v in val if v == best)
            assert seed["val_acc"] == best
            assert test[seed["selected_epoch"]] == seed["test_acc"]
    assert sorted(seen) == sorted((k, s["seed"]) for k, r in found.items() for s in r["seeds"])


def check_tensorboard(found: dict[str, dict], root: Path, parts: bool = False) -> None:
    """Every record is a run folder under ``root`` whose event files hold its scalars (as
    float32), curves and config (as hparams)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    folders = {p.name.rsplit("-", 1)[1]: p for p in root.iterdir()}
    assert sorted(folders) == sorted(found)
    for key, record in found.items():
        depth = record["config"]["depth"]
        assert folders[key].name == f"csbm-gcn-none-L{depth}-{key}"
        assert len(list(folders[key].glob("events.out.tfevents.*"))) == (2 if parts else 1)
        events = EventAccumulator(str(folders[key]), size_guidance={"scalars": 0})
        events.Reload()  # a folder's event files are one run

        def scalars(tag, events=events):
            return sorted((e.step, e.value) for e in events.Scalars(tag))

        def f32(value):  # TensorBoard keeps float32 scalars
            return float(np.float32(value))

        for metric in PER_SEED:  # step = seed
            assert scalars(metric) == [(s["seed"], f32(s[metric])) for s in record["seeds"]]
        mean = f32(record["summary"]["test_acc"]["mean"])  # seed jobs' parts: no cell mean
        assert ("mean/test_acc" in events.Tags()["scalars"]) == (not parts)
        if not parts:
            assert scalars("mean/test_acc") == [(0, mean)]
        for seed in record["seeds"]:
            test = dict(scalars(f"curve/seed_{seed['seed']}/test_acc"))
            assert sorted(test) == list(range(1, seed["epochs_run"] + 1))
            assert test[seed["selected_epoch"]] == f32(seed["test_acc"])
        start = events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
        hparams = HParamsPluginData.FromString(start).session_start_info.hparams
        assert hparams["depth"].number_value == depth
        assert hparams["model.name"].string_value == "gcn"
        assert hparams["train.epochs"].number_value == 5


def test_mlflow_each_cell_a_run_equal_to_its_record(env, tmp_path, monkeypatch):
    """A local file store (the default sqlite store costs ~7 s to create: the slow test)."""
    need("mlflow")
    for where in (env, os.environ):  # MLflow >= 3.7 opens a file store only when asked to
        monkeypatch.setitem(where, "MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file:{tmp_path / 'mlruns'}"
    found = sweep(["tracking=mlflow", f"tracking.uri={uri}"], env, tmp_path)
    check_mlflow(found, uri)


def test_mlflow_default_store_and_experiment_are_the_sweeps(tmp_path):
    uri, experiment = tracking.mlflow_target({"uri": None, "experiment": None}, tmp_path, "t")
    assert (uri, experiment) == (f"sqlite:///{tmp_path.resolve()}/mlflow.db", "t")
    assert tracking.mlflow_target({"uri": "http://h:5000", "experiment": "e"}, tmp_path,
                                  "t") == ("http://h:5000", "e")


def test_tensorboard_each_cell_a_run_equal_to_its_record(env, tmp_path):
    need("tensorboard")
    found = sweep(["tracking=tensorboard"], env, tmp_path)
    check_tensorboard(found, tmp_path / "outputs/sweeps/t/tensorboard")  # the default log dir


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlflow", "tensorboard"])
def test_tracking_from_pool_workers_with_seed_jobs(name, env, tmp_path):
    """Two joblib worker processes log at once (MLflow: into one sqlite store), each cell
    split into two seed jobs (``seeds_per_job=1``)."""
    need(name)
    found = sweep([f"tracking={name}", "launcher=pool", "seeds_per_job=1"], env, tmp_path)
    if name == "mlflow":  # the default store: sqlite in the sweep folder
        check_mlflow(found, f"sqlite:///{tmp_path}/outputs/sweeps/t/mlflow.db", parts=True)
    else:
        check_tensorboard(found, tmp_path / "outputs/sweeps/t/tensorboard", parts=True)


@pytest.mark.parametrize("name", ["none", "mlflow", "tensorboard"])
def test_tracking_is_not_part_of_a_cells_identity(name):
    from hydra import compose, initialize_config_dir

    from gdepth import compose as gdepth_compose

    gdepth_compose.register()
    overrides = ["model=gcn", "depth=2", f"tracking={name}"]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    assert cfg.tracking.name == name
    assert plan.cell_identity(cfg, overrides)[0] == "c6c09a39e0e113dd"  # tests/test_cell_keys


def test_an_unknown_tracker_is_a_one_line_error(capsys):
    assert cli.main(["sweep", "tracking=wandb", "depth=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tracking/wandb" in err
    assert err.endswith("valid: mlflow, none, tensorboard")
    assert tracking.check("wandb") == "unknown tracking 'wandb'; valid: none, mlflow, tensorboard"


def _job(tmp_path: Path, settings: dict, record: dict) -> tuple[object, JobReturn]:
    """A job config whose sweep folder is ``tmp_path``, and a job that returned ``record``."""
    config = OmegaConf.create({"tracking": settings, "hydra": {
        "mode": "MULTIRUN", "sweep": {"dir": str(tmp_path)}, "run": {"dir": "unused"}}})
    return config, JobReturn(status=JobStatus.COMPLETED, _return_value=record)


def _committed_record() -> dict:
    path = sorted(ROOT.glob("results/sweeps/*/records/*.json"))[0]
    return json.loads(path.read_text())


def test_a_tracking_failure_is_a_warning_and_the_record_stays(tmp_path, caplog):
    need("mlflow")
    record = _committed_record()
    config, job = _job(tmp_path, {"name": "mlflow", "uri": "nosuchstore://x", "curves": True},
                       record)
    callback = tracking.TrackingCallback()
    with caplog.at_level(logging.WARNING, logger="gdepth"):
        callback.on_job_start(config)
        record["started_at"] = dt.datetime.now(dt.timezone.utc).isoformat()  # ran by this job
        callback.on_job_end(config, job)  # must not raise
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1
    assert f"tracking=mlflow could not log cell {record['key']}" in warning[0]
    assert warning[0].endswith("its record is kept")


@pytest.mark.parametrize("status, run_status", [("ok", "FINISHED"), ("diverged", "FINISHED"),
                                                ("pruned", "KILLED"), ("failed", "FAILED")])
def test_mlflow_run_status_follows_the_record(status, run_status, tmp_path, monkeypatch):
    """A pruned search trial was stopped on purpose: KILLED, not FAILED as a broken cell."""
    need("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    record = {**_committed_record(), "status": status}
    uri = f"file:{tmp_path / 'mlruns'}"
    run_id = tracking.log_mlflow({"uri": uri, "experiment": "t", "curves": False}, tmp_path,
                                 record, {})
    assert MlflowClient(uri).get_run(run_id).info.status == run_status


def test_a_job_that_skipped_a_done_cell_logs_nothing_again(tmp_path):
    need("tensorboard")
    record = _committed_record()  # started long before this job
    config, job = _job(tmp_path, {"name": "tensorboard", "log_dir": None, "curves": True},
                       record)
    callback = tracking.TrackingCallback()
    callback.on_job_start(config)
    callback.on_job_end(config, job)
    assert not (tmp_path / "tensorboard").exists()
    record["started_at"] = dt.datetime.now(dt.timezone.utc).isoformat()  # ran by this job
    callback.on_job_end(config, job)
    (folder,) = (tmp_path / "tensorboard").iterdir()
    assert folder.name.endswith(record["key"]) and any(folder.glob("events.out.tfevents.*"))


def test_config_flattened_to_parameters():
    flat = tracking.flat_params({"depth": 4, "model": {"name": "gcn", "dropout": 0.5},
                                 "train": {"patience": None, "tree_batches": {},
                                           "dataset_overrides": {"cora": {"split": "public"}}},
                                 "diagnostics": {"measures": ["mad", "dirichlet"]},
                                 "progress": True})
    assert flat == {"depth": 4, "model.name": "gcn", "model.dropout": 0.5,
                    "train.patience": "null", "train.tree_batches": "{}",
                    "train.dataset_overrides.cora.split": "public",
                    "diagnostics.measures": '["mad", "dirichlet"]', "progress": True}


def test_tracking_options_equal_the_trackers():
    options = {p.stem for p in Path(config_dir(), "tracking").glob("*.yaml")}
    assert options == set(tracking.TRACKERS)
